//! A seeded chaos run of a Raft cluster in the simulator ([`crate::sim::Sim`]): random
//! message delays, crashes with restarts from what each node persisted (at random instants, or
//! at crash points: right after a granted vote or a log write), and isolation of the leader,
//! with clients writing all the while. It checks Election Safety (at most one leader per term)
//! and State Machine Safety (no two nodes apply different entries at one index) after every
//! simulated millisecond.

use std::collections::{BTreeMap, BTreeSet};

use rand::{RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde_json::json;

use super::*;
use crate::faults::{CrashPoint, CrashRule, Faults};
use crate::sim::{Latency, Request, Sim};

/// How hard the simulated world is on the cluster.
pub(super) struct Chaos {
    /// Nodes in the cluster.
    pub nodes: u32,
    /// Every message takes `min_delay_ms` to `max_delay_ms` milliseconds.
    pub min_delay_ms: u64,
    /// See `min_delay_ms`.
    pub max_delay_ms: u64,
    /// The chance, each millisecond, that a running node crashes.
    pub crash_per_ms: f64,
    /// A crashed node restarts after 1 to this many milliseconds (a crash point's: this many).
    pub max_down_ms: u64,
    /// The chance, each millisecond with no isolation going on, that the leader is cut off.
    pub isolate_per_ms: f64,
    /// An isolation lasts 50 to this many milliseconds.
    pub max_isolation_ms: u64,
    /// Up to this many other nodes (chosen at random) are cut off with the leader.
    pub with_leader: usize,
    /// A client writes every this many milliseconds.
    pub write_every_ms: u64,
    /// The chance that a node crashes right after it sends a granted vote (a crash point).
    pub crash_after_vote: f64,
    /// The chance that a node crashes right after it syncs log entries (a crash point).
    pub crash_after_entries: f64,
}

impl Chaos {
    /// Every node's fault layer: the crash points, and the cut links of an isolation.
    fn faults(&self, node: NodeId, isolated: Option<&[NodeId]>) -> Faults {
        let rule = |point, chance| CrashRule {
            point,
            chance,
            down_ms: None,
        };
        let across: Vec<String> = match isolated {
            Some(side) => (0..self.nodes)
                .filter(|&other| side.contains(&other) != side.contains(&node))
                .map(node_name)
                .collect(),
            None => Vec::new(),
        };
        Faults {
            drop_to: across.clone(),
            drop_from: across,
            crash_after: vec![
                rule(
                    CrashPoint::Send(vec!["VoteGranted".into()]),
                    self.crash_after_vote,
                ),
                rule(
                    CrashPoint::Persist(vec!["Entries".into()]),
                    self.crash_after_entries,
                ),
            ],
            crash_down_ms: self.max_down_ms,
            ..Faults::default()
        }
    }
}

/// What the checks have seen so far.
#[derive(Default)]
struct Seen {
    /// Every leader seen, by term.
    leaders: BTreeMap<u64, BTreeSet<NodeId>>,
    /// The entry applied at each index (by whichever node applied it first).
    applied: BTreeMap<u64, Entry>,
    /// How far each node's applied entries were compared.
    checked: Vec<u64>,
}

/// Runs `settings` (a `--set` string) for `ms` simulated milliseconds; returns the first
/// violation of Election Safety or State Machine Safety.
pub(super) fn simulate(chaos: &Chaos, settings: &str, seed: u64, ms: u64) -> Result<(), String> {
    let settings = Settings::new(chaos.nodes).apply([settings])?;
    let latency = Latency {
        min_ms: chaos.min_delay_ms,
        max_ms: chaos.max_delay_ms,
    };
    let make = move |id: NodeId, records, incarnation: u64| {
        RaftNode::new(
            id,
            settings.clone(),
            seed.wrapping_add(incarnation),
            records,
        )
    };
    let mut sim = Sim::new(chaos.nodes, latency, seed, Box::new(make));
    for id in 0..chaos.nodes {
        sim.set_faults(id, chaos.faults(id, None));
    }
    let mut rng = ChaCha8Rng::seed_from_u64(seed ^ 0x000c_4a05);
    let mut seen = Seen {
        checked: vec![0; chaos.nodes as usize],
        ..Seen::default()
    };
    let mut down_until: Vec<Option<u64>> = vec![None; chaos.nodes as usize];
    let mut isolated: Option<(Vec<NodeId>, u64)> = None;
    for now in 1..=ms {
        sim.run_until(now);
        for id in 0..chaos.nodes {
            match down_until[id as usize] {
                Some(up) if now >= up => {
                    down_until[id as usize] = None;
                    sim.restart(id);
                }
                None if sim.node(id).is_some() && rng.random_bool(chaos.crash_per_ms) => {
                    sim.kill(id);
                    down_until[id as usize] = Some(now + rng.random_range(1..=chaos.max_down_ms));
                }
                _ => {}
            }
        }
        isolate(chaos, &mut sim, &mut rng, &mut isolated, now);
        if now % chaos.write_every_ms == 0 {
            let put = ClientRequest::Put {
                key: "x".into(),
                value: json!(now),
                context: None,
                idempotency_key: None,
            };
            sim.submit(rng.random_range(0..chaos.nodes), Request::Kv(put));
        }
        let _ = sim.replies().count();
        for id in 0..chaos.nodes {
            if let Some(node) = sim.node(id) {
                seen.check(id, node, now)?;
            }
        }
    }
    Ok(())
}

/// Ends an isolation whose time is up, or cuts the leader (and maybe others) off.
fn isolate(
    chaos: &Chaos,
    sim: &mut Sim<RaftNode>,
    rng: &mut ChaCha8Rng,
    isolated: &mut Option<(Vec<NodeId>, u64)>,
    now: u64,
) {
    if isolated.as_ref().is_some_and(|(_, until)| now >= *until) {
        *isolated = None;
        for id in 0..chaos.nodes {
            sim.set_faults(id, chaos.faults(id, None));
        }
    }
    if isolated.is_some() || !rng.random_bool(chaos.isolate_per_ms) {
        return;
    }
    let leader = (0..chaos.nodes).find(|&id| {
        sim.node(id)
            .is_some_and(|node| matches!(node.role, Role::Leader(_)))
    });
    let Some(leader) = leader else { return };
    let until = now + rng.random_range(50..=chaos.max_isolation_ms);
    let mut side = vec![leader];
    for _ in 0..rng.random_range(0..=chaos.with_leader) {
        let other = rng.random_range(0..chaos.nodes);
        if !side.contains(&other) {
            side.push(other);
        }
    }
    for id in 0..chaos.nodes {
        sim.set_faults(id, chaos.faults(id, Some(&side)));
    }
    *isolated = Some((side, until));
}

impl Seen {
    /// Checks what node `id` leads and what it applied.
    fn check(&mut self, id: NodeId, node: &RaftNode, now: u64) -> Result<(), String> {
        if matches!(node.role, Role::Leader(_)) {
            let leaders = self.leaders.entry(node.term).or_default();
            leaders.insert(id);
            if leaders.len() > 1 {
                return Err(format!(
                    "at {now} ms: two leaders in term {}: {leaders:?}",
                    node.term
                ));
            }
        }
        let checked = &mut self.checked[id as usize];
        // A restarted node applies its log again from the start.
        if node.applied < *checked {
            *checked = 0;
        }
        while *checked < node.applied {
            *checked += 1;
            let index = *checked;
            let entry = &node.log[index as usize - 1];
            match self.applied.get(&index) {
                Some(first) if first != entry => {
                    return Err(format!(
                        "at {now} ms: {} applied {entry:?} at index {index}, where {first:?} \
                         was applied",
                        node_name(id)
                    ));
                }
                Some(_) => {}
                None => {
                    self.applied.insert(index, entry.clone());
                }
            }
        }
        Ok(())
    }
}
