//! The fault layer between a node and the network (DESIGN §4.1), the same for both runtimes:
//! the process runtime sets it through `POST /admin/faults`, the simulator ([`crate::sim`])
//! directly. It drops messages to or from given peers (partitions, one-way too), lose,
//! duplicate or delay a share of messages, offset the node's wall clock, and crash the node at
//! a chosen point (right after it writes its log or sends a message).

use rand::{RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use crate::NodeId;
use crate::kv::node_name;

/// The faults a node applies. Each `POST /admin/faults` replaces them all; `{}` heals.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Faults {
    /// Peers whose messages from this node are dropped (`["n2", "n3"]`).
    pub drop_to: Vec<String>,
    /// Peers whose messages to this node are dropped.
    pub drop_from: Vec<String>,
    /// Share of outgoing messages lost, 0 to 1.
    pub loss: f64,
    /// Share of outgoing messages sent twice, 0 to 1.
    pub duplicate: f64,
    /// Delay added to every outgoing message, in milliseconds.
    pub delay_ms: u64,
    /// Random extra delay up to this many milliseconds (reorders messages).
    pub jitter_ms: u64,
    /// Milliseconds added to the node's wall clock.
    pub clock_offset_ms: i64,
    /// Where the node may crash (right after a log write or a message it sends), each point
    /// with the chance that it crashes there at each pass.
    pub crash_after: Vec<CrashRule>,
    /// How long a crashed node stays down before it restarts from its log, in milliseconds.
    pub crash_down_ms: u64,
}

/// A point in a node's work where it can be made to crash.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum CrashPoint {
    /// Right after a record of one of these kinds (the record's name in the node's log, as
    /// `Entries`), or of any kind when empty, is synced to its log, before anything else
    /// happens.
    Persist(Vec<String>),
    /// Right after it sends a message of one of these kinds (the message's name in the peer
    /// protocol, as `VoteGranted`), or of any kind when empty.
    Send(Vec<String>),
}

impl CrashPoint {
    /// Parses `persist`, `persist:KIND|KIND...`, `send` or `send:KIND|KIND...`.
    pub fn parse(text: &str) -> Result<Self, String> {
        let (name, kinds) = match text.split_once(':') {
            None => (text, Vec::new()),
            Some((name, kinds)) if kinds.split('|').all(|k| !k.is_empty()) => {
                (name, kinds.split('|').map(str::to_string).collect())
            }
            Some(_) => ("", Vec::new()),
        };
        match name {
            "persist" => Ok(CrashPoint::Persist(kinds)),
            "send" => Ok(CrashPoint::Send(kinds)),
            _ => Err(format!(
                "unknown crash point `{text}`; expected persist, persist:KIND (a record name \
                 such as Entries), send or send:KIND (a message name such as VoteGranted; \
                 several as send:VoteGranted|Append)"
            )),
        }
    }
}

impl std::fmt::Display for CrashPoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let (name, kinds) = match self {
            CrashPoint::Persist(kinds) => ("persist", kinds),
            CrashPoint::Send(kinds) => ("send", kinds),
        };
        if kinds.is_empty() {
            f.write_str(name)
        } else {
            write!(f, "{name}:{}", kinds.join("|"))
        }
    }
}

/// A crash point, the chance, 0 to 1, that it strikes at each pass, and how long a crash
/// there keeps the node down (the fault's `crash_down_ms` when `None`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct CrashRule {
    /// Where.
    pub point: CrashPoint,
    /// The chance at each pass.
    pub chance: f64,
    /// The down time of a crash here, in milliseconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub down_ms: Option<u64>,
}

impl std::fmt::Display for CrashRule {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}@{}", self.point, self.chance)?;
        match self.down_ms {
            Some(ms) => write!(f, "~{ms}ms"),
            None => Ok(()),
        }
    }
}

/// One point of a [`CrashPlan`]: where, and the chance and down time if the plan names them.
#[derive(Clone, Debug, PartialEq)]
pub struct PlannedCrash {
    /// Where.
    pub point: CrashPoint,
    /// The chance at each pass; the fault draws one when `None`.
    pub chance: Option<f64>,
    /// The down time in milliseconds; the fault draws one when `None`.
    pub down_ms: Option<u64>,
}

impl PlannedCrash {
    /// A point with the chance and down time left to the fault.
    pub fn at(point: CrashPoint) -> Self {
        PlannedCrash {
            point,
            chance: None,
            down_ms: None,
        }
    }
}

/// What one crash fault arms: crash points joined by `+`, each with its own chance
/// (`send:Append@0.01`) and down time (`send:VoteGranted@1~50ms`), or those the fault draws.
#[derive(Clone, Debug, PartialEq)]
pub struct CrashPlan(pub Vec<PlannedCrash>);

impl std::fmt::Display for CrashPlan {
    /// The plan as `--crash-points` takes it: `send:VoteGranted@1~50ms+persist`.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        for (i, planned) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str("+")?;
            }
            write!(f, "{}", planned.point)?;
            if let Some(chance) = planned.chance {
                write!(f, "@{chance}")?;
            }
            if let Some(ms) = planned.down_ms {
                write!(f, "~{ms}ms")?;
            }
        }
        Ok(())
    }
}

impl CrashPlan {
    /// Parses `POINT[@CHANCE][~DOWN](+POINT[@CHANCE][~DOWN])*`, DOWN as `50ms` or `2s`.
    pub fn parse(text: &str) -> Result<Self, String> {
        let mut rules = Vec::new();
        for part in text.split('+') {
            let (rest, down_ms) = match part.split_once('~') {
                Some((rest, down)) => (rest, Some(parse_down(part, down)?)),
                None => (part, None),
            };
            let (point, chance) = match rest.split_once('@') {
                Some((point, chance)) => {
                    let chance: f64 = chance
                        .parse()
                        .ok()
                        .filter(|c| (0.0..=1.0).contains(c))
                        .ok_or_else(|| {
                            format!("crash point `{part}`: the chance after @ must be 0 to 1")
                        })?;
                    (point, Some(chance))
                }
                None => (rest, None),
            };
            rules.push(PlannedCrash {
                point: CrashPoint::parse(point)?,
                chance,
                down_ms,
            });
        }
        Ok(CrashPlan(rules))
    }

    /// The rules, with `chance` where the plan names none (and the fault's down time where
    /// it names none).
    pub fn rules(&self, chance: f64) -> Vec<CrashRule> {
        self.0
            .iter()
            .map(|planned| CrashRule {
                point: planned.point.clone(),
                chance: planned.chance.unwrap_or(chance),
                down_ms: planned.down_ms,
            })
            .collect()
    }
}

/// A down time after `~` in crash point `part`: whole milliseconds (`50ms`) or seconds (`2s`).
fn parse_down(part: &str, down: &str) -> Result<u64, String> {
    let ms = if let Some(ms) = down.strip_suffix("ms") {
        ms.parse::<u64>().ok()
    } else if let Some(s) = down.strip_suffix('s') {
        s.parse::<u64>().ok().and_then(|s| s.checked_mul(1000))
    } else {
        None
    };
    ms.filter(|&ms| ms >= 1).ok_or_else(|| {
        format!(
            "crash point `{part}`: the down time after ~ must be like 50ms or 2s (at least 1ms)"
        )
    })
}

/// Something a node just did, where a crash point may strike.
#[derive(Clone, Copy, Debug)]
pub enum Done<'a> {
    /// Synced a record of this kind.
    Persisted(&'a str),
    /// Sent a message of this kind.
    Sent(&'a str),
}

impl Faults {
    /// Refuses faults that name unknown nodes or impossible shares.
    pub fn validate(&self, nodes: u32) -> Result<(), String> {
        let names: Vec<String> = (0..nodes).map(node_name).collect();
        for name in self.drop_to.iter().chain(&self.drop_from) {
            if !names.contains(name) {
                return Err(format!(
                    "unknown node `{name}`; this cluster has {}",
                    names.join(", ")
                ));
            }
        }
        let chances = self.crash_after.iter().map(|r| ("crash chance", r.chance));
        for (what, p) in [("loss", self.loss), ("duplicate", self.duplicate)]
            .into_iter()
            .chain(chances)
        {
            if !(0.0..=1.0).contains(&p) {
                return Err(format!("{what}={p} must be between 0 and 1"));
            }
        }
        Ok(())
    }
}

/// What the fault layer does with one outgoing message.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Fate {
    /// Copies to send (0: lost or dropped).
    pub copies: u32,
    /// Delay before sending, in milliseconds.
    pub delay_ms: u64,
}

/// The faults in force and the seeded randomness that applies them.
#[derive(Debug)]
pub struct FaultLayer {
    faults: Faults,
    drop_to: Vec<bool>,
    drop_from: Vec<bool>,
    /// The network's own one-way latency, before any fault.
    link_ms: u64,
    rng: ChaCha8Rng,
}

impl FaultLayer {
    /// No faults, for a cluster of `nodes` whose every message takes `link_ms`; `seed`
    /// drives every random choice.
    pub fn new(nodes: u32, link_ms: u64, seed: u64) -> Self {
        FaultLayer {
            faults: Faults::default(),
            drop_to: vec![false; nodes as usize],
            drop_from: vec![false; nodes as usize],
            link_ms,
            rng: ChaCha8Rng::seed_from_u64(seed),
        }
    }

    /// Replaces the faults (already validated).
    pub fn set(&mut self, faults: Faults) {
        let nodes = self.drop_to.len() as NodeId;
        let mark = |names: &[String]| {
            (0..nodes)
                .map(|id| names.contains(&node_name(id)))
                .collect()
        };
        self.drop_to = mark(&faults.drop_to);
        self.drop_from = mark(&faults.drop_from);
        self.faults = faults;
    }

    /// The faults in force.
    pub fn faults(&self) -> &Faults {
        &self.faults
    }

    /// Whether a message from `from` is dropped on arrival.
    pub fn drops_from(&self, from: NodeId) -> bool {
        self.drop_from.get(from as usize).copied().unwrap_or(false)
    }

    /// Whether the node crashes now, having just done `done`: `Some(down time in ms)` if so.
    pub fn crashes_after(&mut self, done: Done) -> Option<u64> {
        let rule = self
            .faults
            .crash_after
            .iter()
            .find(|rule| match (&rule.point, done) {
                (CrashPoint::Persist(kinds), Done::Persisted(kind))
                | (CrashPoint::Send(kinds), Done::Sent(kind)) => {
                    kinds.is_empty() || kinds.iter().any(|k| k == kind)
                }
                _ => false,
            })?;
        let down_ms = rule.down_ms.unwrap_or(self.faults.crash_down_ms);
        (rule.chance > 0.0 && self.rng.random_bool(rule.chance)).then_some(down_ms)
    }

    /// What happens to a message to `to`.
    pub fn outgoing(&mut self, to: NodeId) -> Fate {
        let f = &self.faults;
        if self.drop_to.get(to as usize).copied().unwrap_or(false)
            || (f.loss > 0.0 && self.rng.random_bool(f.loss))
        {
            return Fate {
                copies: 0,
                delay_ms: 0,
            };
        }
        let copies = if f.duplicate > 0.0 && self.rng.random_bool(f.duplicate) {
            2
        } else {
            1
        };
        let jitter = if f.jitter_ms > 0 {
            self.rng.random_range(0..=f.jitter_ms)
        } else {
            0
        };
        Fate {
            copies,
            delay_ms: self.link_ms + f.delay_ms + jitter,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn drops_and_shares() {
        let mut layer = FaultLayer::new(3, 0, 1);
        assert_eq!(
            layer.outgoing(1),
            Fate {
                copies: 1,
                delay_ms: 0
            }
        );
        let faults = Faults {
            drop_to: vec!["n2".into()],
            drop_from: vec!["n3".into()],
            duplicate: 1.0,
            delay_ms: 5,
            ..Faults::default()
        };
        faults.validate(3).unwrap();
        layer.set(faults);
        assert_eq!(layer.outgoing(1).copies, 0);
        assert_eq!(
            layer.outgoing(2),
            Fate {
                copies: 2,
                delay_ms: 5
            }
        );
        assert!(layer.drops_from(2) && !layer.drops_from(1));
        let lossy = Faults {
            loss: 0.5,
            ..Faults::default()
        };
        layer.set(lossy);
        let lost = (0..1000).filter(|_| layer.outgoing(0).copies == 0).count();
        assert!((400..600).contains(&lost), "{lost}");
        assert!(
            Faults {
                drop_to: vec!["n9".into()],
                ..Faults::default()
            }
            .validate(3)
            .is_err()
        );
        assert!(
            Faults {
                loss: 2.0,
                ..Faults::default()
            }
            .validate(3)
            .is_err()
        );
    }

    #[test]
    fn crash_points_parse_and_print() {
        for text in [
            "persist",
            "persist:Entries",
            "send",
            "send:VoteReply",
            "send:VoteReply|Append",
        ] {
            assert_eq!(CrashPoint::parse(text).unwrap().to_string(), text);
        }
        assert!(CrashPoint::parse("send:").is_err());
        assert!(CrashPoint::parse("send:VoteReply|").is_err());
        assert!(CrashPoint::parse("fsync").is_err());
        assert!(CrashPoint::parse("fsync:Entries").is_err());
        for bad in [
            "persist~",
            "persist~5",
            "persist~0ms",
            "persist~1.5s",
            "persist@0.1~x",
        ] {
            assert!(CrashPlan::parse(bad).is_err(), "{bad}");
        }
        assert!(CrashPlan::parse("persist@2").is_err());
        assert!(CrashPlan::parse("persist@x").is_err());
        let plan = CrashPlan::parse("send:VoteGranted@1~50ms+send:Append@0.01~2s+persist").unwrap();
        let rules: Vec<String> = plan.rules(0.3).iter().map(|r| r.to_string()).collect();
        assert_eq!(
            rules,
            [
                "send:VoteGranted@1~50ms",
                "send:Append@0.01~2000ms",
                "persist@0.3"
            ]
        );
    }

    #[test]
    fn crash_points_strike_where_armed_for_their_down_time() {
        let mut layer = FaultLayer::new(3, 0, 1);
        assert_eq!(
            layer.crashes_after(Done::Persisted("Meta")),
            None,
            "unarmed"
        );
        let plan = CrashPlan::parse("send:VoteReply|Ping").unwrap();
        layer.set(Faults {
            crash_after: plan.rules(1.0),
            crash_down_ms: 700,
            ..Faults::default()
        });
        assert_eq!(layer.crashes_after(Done::Sent("VoteReply")), Some(700));
        assert_eq!(layer.crashes_after(Done::Sent("Ping")), Some(700));
        assert_eq!(layer.crashes_after(Done::Sent("Append")), None);
        assert_eq!(layer.crashes_after(Done::Persisted("Meta")), None);
        layer.set(Faults {
            crash_after: CrashPlan::parse("persist@0.5+send:Never@1")
                .unwrap()
                .rules(0.0),
            ..Faults::default()
        });
        let struck = (0..1000)
            .filter(|_| layer.crashes_after(Done::Persisted("Meta")).is_some())
            .count();
        assert!((400..600).contains(&struck), "{struck}");
        let bad = Faults {
            crash_after: CrashPlan::parse("persist").unwrap().rules(1.5),
            ..Faults::default()
        };
        assert!(bad.validate(3).is_err());
        // Each point crashes for its own down time, or the fault's.
        let plan = CrashPlan::parse("send:VoteReply~50ms+send:Append@1~2s+persist").unwrap();
        layer.set(Faults {
            crash_after: plan.rules(1.0),
            crash_down_ms: 300,
            ..Faults::default()
        });
        assert_eq!(layer.crashes_after(Done::Sent("VoteReply")), Some(50));
        assert_eq!(layer.crashes_after(Done::Sent("Append")), Some(2000));
        assert_eq!(layer.crashes_after(Done::Persisted("Meta")), Some(300));
        // A persist point with kinds strikes only after records of those kinds.
        layer.set(Faults {
            crash_after: CrashPlan::parse("persist:Entries").unwrap().rules(1.0),
            crash_down_ms: 10,
            ..Faults::default()
        });
        assert_eq!(layer.crashes_after(Done::Persisted("Meta")), None);
        assert_eq!(layer.crashes_after(Done::Persisted("Entries")), Some(10));
    }

    #[test]
    fn link_latency_comes_before_any_fault() {
        let mut layer = FaultLayer::new(3, 40, 1);
        assert_eq!(layer.outgoing(1).delay_ms, 40);
        layer.set(Faults {
            delay_ms: 5,
            ..Faults::default()
        });
        assert_eq!(layer.outgoing(1).delay_ms, 45);
    }
}
