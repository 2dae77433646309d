//! The fault vocabulary (DESIGN §6): kinds, partition shapes, and a decided [`Fault`] that says
//! exactly what to do to which nodes. Deciding is pure; applying is a backend's job.

use std::fmt;
use std::str::FromStr;

use faultline_targets::runtime::CrashRule;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

/// A node's index in its cluster: the one node id type of every crate.
pub use faultline_targets::systems::NodeId;

/// A kind of fault.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Kind {
    /// Cut the network between groups of nodes.
    Partition,
    /// Skew node clocks (bump or strobe).
    Clock,
    /// SIGKILL nodes; the heal restarts them on their data.
    Kill,
    /// SIGSTOP nodes; the heal continues them.
    Pause,
    /// Delay, lose, duplicate and reorder messages on chosen links.
    Packet,
    /// Crash nodes at an unlucky point (right after a log write or a message) and restart
    /// them from their log (bundled targets).
    Crash,
}

impl Kind {
    /// Every kind, in `--help` order.
    pub const ALL: [Kind; 6] = [
        Kind::Partition,
        Kind::Clock,
        Kind::Kill,
        Kind::Pause,
        Kind::Packet,
        Kind::Crash,
    ];

    /// The name on the command line and in the history.
    pub fn name(self) -> &'static str {
        match self {
            Kind::Partition => "partition",
            Kind::Clock => "clock",
            Kind::Kill => "kill",
            Kind::Pause => "pause",
            Kind::Packet => "packet",
            Kind::Crash => "crash",
        }
    }

    /// Parses `--nemesis`: a comma-separated list of kinds, or `none`.
    pub fn parse_list(text: &str) -> Result<Vec<Kind>, String> {
        if text.trim() == "none" {
            return Ok(Vec::new());
        }
        let mut kinds = Vec::new();
        for name in text.split(',').map(str::trim).filter(|s| !s.is_empty()) {
            let kind: Kind = name.parse()?;
            if !kinds.contains(&kind) {
                kinds.push(kind);
            }
        }
        Ok(kinds)
    }
}

impl FromStr for Kind {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Kind::ALL.into_iter().find(|k| k.name() == s).ok_or_else(|| {
            format!("unknown fault `{s}`; expected none or a list of partition, clock, kill, pause, packet, crash")
        })
    }
}

impl fmt::Display for Kind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// How a partition splits the nodes (Jepsen's vocabulary).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Shape {
    /// The first half of the nodes (by name) against the second.
    Halves,
    /// A random half against the rest.
    RandomHalves,
    /// One random node alone.
    One,
    /// A random minority (at least one node) against the majority.
    Minority,
    /// A random majority against the minority.
    Majority,
    /// Every node sees a majority (itself and its ring neighbours), but no two nodes see the
    /// same one.
    MajoritiesRing,
    /// Two halves that cannot talk, and one bridge node that talks to both.
    Bridge,
    /// The current leader alone (for systems with one; the backend asks who leads).
    Leader,
}

impl Shape {
    /// Every shape.
    pub const ALL: [Shape; 8] = [
        Shape::Halves,
        Shape::RandomHalves,
        Shape::One,
        Shape::Minority,
        Shape::Majority,
        Shape::MajoritiesRing,
        Shape::Bridge,
        Shape::Leader,
    ];

    /// The shapes any system can take (all but `leader`, which is last in [`Shape::ALL`]).
    pub const LEADERLESS: &'static [Shape] = Shape::ALL.split_at(7).0;

    /// The name on the command line and in the history.
    pub fn name(self) -> &'static str {
        match self {
            Shape::Halves => "halves",
            Shape::RandomHalves => "random-halves",
            Shape::One => "one",
            Shape::Minority => "minority",
            Shape::Majority => "majority",
            Shape::MajoritiesRing => "majorities-ring",
            Shape::Bridge => "bridge",
            Shape::Leader => "leader",
        }
    }

    /// Whether the shape is a plain split into groups (and so has a one-way variant).
    pub fn has_one_way(self) -> bool {
        !matches!(self, Shape::MajoritiesRing | Shape::Bridge | Shape::Leader)
    }
}

impl FromStr for Shape {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Shape::ALL
            .into_iter()
            .find(|k| k.name() == s)
            .ok_or_else(|| {
                let names: Vec<_> = Shape::ALL.iter().map(|s| s.name()).collect();
                format!(
                    "unknown partition shape `{s}`; expected {}",
                    names.join(", ")
                )
            })
    }
}

/// How a clock fault moves clocks.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ClockMode {
    /// Set each chosen node's offset once.
    Bump,
    /// Switch each chosen node between its offset and none, every `period_ms`, until healed.
    Strobe {
        /// Half a strobe cycle, in milliseconds.
        period_ms: u64,
    },
}

/// A fault with every choice made: what to do, to which nodes (by index: `n1` is 0). In a
/// schedule file, `{"kind": "partition", ...}` with these fields.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case", deny_unknown_fields)]
pub enum Fault {
    /// Messages from `a` to `b` are dropped for every `(a, b)` in `cuts`.
    Partition {
        /// The shape it came from.
        shape: Shape,
        /// Whether only one direction is cut.
        one_way: bool,
        /// The groups (for bridge: the two sides and the bridge; for majorities-ring: what each
        /// node sees).
        groups: Vec<Vec<NodeId>>,
        /// Directed cuts: (from, to).
        cuts: Vec<(NodeId, NodeId)>,
    },
    /// Clock offsets, in milliseconds, per chosen node.
    Clock {
        /// Bump or strobe.
        mode: ClockMode,
        /// (node, offset).
        offsets: Vec<(NodeId, i64)>,
    },
    /// SIGKILL these nodes.
    Kill {
        /// The nodes.
        nodes: Vec<NodeId>,
    },
    /// SIGSTOP these nodes.
    Pause {
        /// The nodes.
        nodes: Vec<NodeId>,
    },
    /// Degrade every message these nodes send.
    Packet {
        /// The nodes whose outgoing links are degraded.
        nodes: Vec<NodeId>,
        /// Added delay.
        delay_ms: u64,
        /// Random extra delay (reorders).
        jitter_ms: u64,
        /// Share lost.
        loss: f64,
        /// Share duplicated.
        duplicate: f64,
    },
    /// These nodes crash at the points of `rules`, each with its chance at every pass, and
    /// restart from their log `down_ms` later.
    Crash {
        /// The nodes.
        nodes: Vec<NodeId>,
        /// Where they crash, and how likely.
        rules: Vec<CrashRule>,
        /// How long each crash keeps a node down.
        down_ms: u64,
    },
}

/// `n1`, `n2`, ... (the names the nodes themselves use).
pub fn name(node: NodeId) -> String {
    faultline_targets::systems::kv::node_name(node)
}

fn names(nodes: &[NodeId]) -> Vec<String> {
    nodes.iter().map(|&n| name(n)).collect()
}

impl Fault {
    /// Its kind.
    pub fn kind(&self) -> Kind {
        match self {
            Fault::Partition { .. } => Kind::Partition,
            Fault::Clock { .. } => Kind::Clock,
            Fault::Kill { .. } => Kind::Kill,
            Fault::Pause { .. } => Kind::Pause,
            Fault::Packet { .. } => Kind::Packet,
            Fault::Crash { .. } => Kind::Crash,
        }
    }

    /// Every node it names.
    pub fn nodes(&self) -> Vec<NodeId> {
        match self {
            Fault::Partition { groups, cuts, .. } => (groups.iter().flatten().copied())
                .chain(cuts.iter().flat_map(|&(a, b)| [a, b]))
                .collect(),
            Fault::Clock { offsets, .. } => offsets.iter().map(|&(n, _)| n).collect(),
            Fault::Kill { nodes }
            | Fault::Pause { nodes }
            | Fault::Packet { nodes, .. }
            | Fault::Crash { nodes, .. } => nodes.clone(),
        }
    }

    /// The `leader` partition once the leader is known: `leader` alone, the rest together.
    pub fn leader_cut_off(leader: NodeId, nodes: usize) -> Fault {
        let rest: Vec<NodeId> = (0..nodes as NodeId).filter(|&n| n != leader).collect();
        let groups = vec![vec![leader], rest];
        let cuts = group_cuts(&groups, false);
        Fault::Partition {
            shape: Shape::Leader,
            one_way: false,
            groups,
            cuts,
        }
    }

    /// A `leader` partition when no node leads: nothing is cut.
    pub fn no_leader_to_cut_off() -> Fault {
        Fault::Partition {
            shape: Shape::Leader,
            one_way: false,
            groups: Vec::new(),
            cuts: Vec::new(),
        }
    }

    /// What the history records when the fault starts: what is done to which nodes.
    pub fn describe(&self) -> Value {
        match self {
            Fault::Partition {
                shape: Shape::Leader,
                groups,
                ..
            } if groups.is_empty() => json!({
                "action": "start",
                "shape": "leader",
                "groups": [],
                "cut_off": "nobody: no node led for 5 s",
            }),
            Fault::Partition {
                shape,
                one_way,
                groups,
                ..
            } => json!({
                "action": "start",
                "shape": shape.name(),
                "one_way": one_way,
                "groups": groups.iter().map(|g| names(g)).collect::<Vec<_>>(),
            }),
            Fault::Clock { mode, offsets } => {
                let offsets: serde_json::Map<String, Value> =
                    offsets.iter().map(|(n, o)| (name(*n), json!(o))).collect();
                match mode {
                    ClockMode::Bump => {
                        json!({"action": "start", "mode": "bump", "offsets_ms": offsets})
                    }
                    ClockMode::Strobe { period_ms } => json!({
                        "action": "start", "mode": "strobe", "offsets_ms": offsets, "period_ms": period_ms
                    }),
                }
            }
            Fault::Kill { nodes } | Fault::Pause { nodes } => {
                json!({"action": "start", "nodes": names(nodes)})
            }
            Fault::Packet {
                nodes,
                delay_ms,
                jitter_ms,
                loss,
                duplicate,
            } => json!({
                "action": "start",
                "nodes": names(nodes),
                "delay_ms": delay_ms,
                "jitter_ms": jitter_ms,
                "loss": loss,
                "duplicate": duplicate,
            }),
            Fault::Crash {
                nodes,
                rules,
                down_ms,
            } => json!({
                "action": "start",
                "nodes": names(nodes),
                "after": rules.iter().map(|r| r.to_string()).collect::<Vec<_>>().join("+"),
                "down_ms": down_ms,
            }),
        }
    }

    /// What the history records when it is healed.
    pub fn describe_heal(&self) -> Value {
        match self {
            Fault::Kill { nodes } => json!({"action": "heal", "restarted": names(nodes)}),
            Fault::Pause { nodes } => json!({"action": "heal", "continued": names(nodes)}),
            Fault::Clock { offsets, .. } => {
                let nodes: Vec<NodeId> = offsets.iter().map(|(n, _)| *n).collect();
                json!({"action": "heal", "reset": names(&nodes)})
            }
            Fault::Partition { .. } | Fault::Packet { .. } | Fault::Crash { .. } => {
                json!({"action": "heal"})
            }
        }
    }
}

/// Directed cuts that keep each group talking only within itself; one-way keeps only the cuts
/// from the first group to the others.
pub(crate) fn group_cuts(groups: &[Vec<NodeId>], one_way: bool) -> Vec<(NodeId, NodeId)> {
    let mut cuts = Vec::new();
    for (gi, a_group) in groups.iter().enumerate() {
        if one_way && gi > 0 {
            break;
        }
        for (gj, b_group) in groups.iter().enumerate() {
            if gi == gj {
                continue;
            }
            for &a in a_group {
                for &b in b_group {
                    cuts.push((a, b));
                }
            }
        }
    }
    cuts
}

/// Directed cuts from a "who sees whom" relation: `a` cannot reach `b` unless `b ∈ sees[a]`.
pub(crate) fn visibility_cuts(sees: &[Vec<NodeId>]) -> Vec<(NodeId, NodeId)> {
    let n = sees.len() as NodeId;
    let mut cuts = Vec::new();
    for a in 0..n {
        for b in 0..n {
            let sees = |x: NodeId, y: NodeId| sees[x as usize].contains(&y);
            if a != b && !(sees(a, b) && sees(b, a)) {
                cuts.push((a, b));
            }
        }
    }
    cuts
}
