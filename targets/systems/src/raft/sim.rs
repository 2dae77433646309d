//! A seeded simulation of a Raft cluster under random message delays, crashes with restarts
//! from what each node persisted (at random instants, or at crash points: right after a granted
//! vote or a log write), and isolation of the leader, with clients writing all the while. It checks Election Safety (at most one leader per term) and State Machine Safety (no
//! two nodes apply different entries at one index) after every simulated millisecond.

use std::collections::{BTreeMap, BTreeSet};

use rand::{RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde_json::json;

use super::*;

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
    /// A crashed node restarts after 1 to this many milliseconds.
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

/// The simulated cluster.
struct World {
    settings: Settings,
    seed: u64,
    nodes: Vec<Option<RaftNode>>,
    persisted: Vec<Vec<Record>>,
    /// Messages in flight by (delivery time, sequence number).
    in_flight: BTreeMap<(u64, u64), (NodeId, NodeId, Message)>,
    sent: u64,
    restarts: u64,
    up_at: Vec<u64>,
    /// The nodes cut off from the rest, and until when.
    isolated: Option<(Vec<usize>, u64)>,
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
    let n = chaos.nodes as usize;
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut world = World {
        nodes: (0..n)
            .map(|i| Some(RaftNode::new(i as NodeId, settings.clone(), seed, [])))
            .collect(),
        settings,
        seed,
        persisted: vec![Vec::new(); n],
        in_flight: BTreeMap::new(),
        sent: 0,
        restarts: 0,
        up_at: vec![0; n],
        isolated: None,
        leaders: BTreeMap::new(),
        applied: BTreeMap::new(),
        checked: vec![0; n],
    };
    for now in 1..=ms {
        world.faults(chaos, &mut rng, now);
        let t = Now {
            mono_ms: now,
            wall_ms: now,
        };
        if now % chaos.write_every_ms == 0 {
            let i = rng.random_range(0..n);
            if let Some(node) = world.nodes[i].as_mut() {
                let put = ClientRequest::Put {
                    key: "x".into(),
                    value: json!(now),
                    context: None,
                    idempotency_key: None,
                };
                node.handle_client(t, now, put);
            }
        }
        let due: Vec<(u64, u64)> = world
            .in_flight
            .range(..(now + 1, 0))
            .map(|(k, _)| *k)
            .collect();
        for key in due {
            let (from, to, msg) = world.in_flight.remove(&key).expect("listed above");
            if let Some(node) = world.nodes[to as usize].as_mut() {
                node.handle_peer(t, from, msg);
            }
        }
        for node in world.nodes.iter_mut().flatten() {
            node.handle_tick(t);
        }
        for i in 0..n {
            world.collect(chaos, &mut rng, i, now)?;
        }
    }
    Ok(())
}

impl World {
    /// Restarts, crashes, isolations and their ends, at `now`.
    fn faults(&mut self, chaos: &Chaos, rng: &mut ChaCha8Rng, now: u64) {
        for i in 0..self.nodes.len() {
            if self.nodes[i].is_none() && now >= self.up_at[i] {
                self.restarts += 1;
                let records = self.persisted[i].clone();
                let seed = self.seed + self.restarts;
                self.nodes[i] = Some(RaftNode::new(
                    i as NodeId,
                    self.settings.clone(),
                    seed,
                    records,
                ));
                self.checked[i] = 0;
            } else if self.nodes[i].is_some() && rng.random_bool(chaos.crash_per_ms) {
                self.nodes[i] = None;
                self.up_at[i] = now + rng.random_range(1..=chaos.max_down_ms);
            }
        }
        if self
            .isolated
            .as_ref()
            .is_some_and(|(_, until)| now >= *until)
        {
            self.isolated = None;
        }
        if self.isolated.is_none() && rng.random_bool(chaos.isolate_per_ms) {
            let leader = (0..self.nodes.len()).find(|&i| {
                self.nodes[i]
                    .as_ref()
                    .is_some_and(|node| matches!(node.role, Role::Leader(_)))
            });
            if let Some(leader) = leader {
                let until = now + rng.random_range(50..=chaos.max_isolation_ms);
                let mut side = vec![leader];
                for _ in 0..rng.random_range(0..=chaos.with_leader) {
                    let other = rng.random_range(0..self.nodes.len());
                    if !side.contains(&other) {
                        side.push(other);
                    }
                }
                self.isolated = Some((side, until));
            }
        }
    }

    /// Takes node `i`'s outputs into the network and its disk, then checks what it leads and
    /// what it applied.
    fn collect(
        &mut self,
        chaos: &Chaos,
        rng: &mut ChaCha8Rng,
        i: usize,
        now: u64,
    ) -> Result<(), String> {
        let Some(node) = self.nodes[i].as_mut() else {
            return Ok(());
        };
        let mut crashed = false;
        while let Some(out) = node.poll_output() {
            match out {
                Output::Send { to, msg } => {
                    crashed = matches!(msg, Message::VoteGranted { .. })
                        && rng.random_bool(chaos.crash_after_vote);
                    let cut = self.isolated.as_ref().is_some_and(|(side, _)| {
                        side.contains(&i) != side.contains(&(to as usize))
                    });
                    if !cut {
                        self.sent += 1;
                        let at = now + rng.random_range(chaos.min_delay_ms..=chaos.max_delay_ms);
                        self.in_flight
                            .insert((at, self.sent), (i as NodeId, to, msg));
                    }
                }
                Output::Persist(record) => {
                    crashed = matches!(record, Record::Entries { .. })
                        && rng.random_bool(chaos.crash_after_entries);
                    self.persisted[i].push(record);
                }
                Output::Reply { .. } | Output::Note(_) => {}
            }
            if crashed {
                // What it had not done yet never happens; it restarts from its records.
                self.nodes[i] = None;
                self.up_at[i] = now + rng.random_range(1..=chaos.max_down_ms);
                return Ok(());
            }
        }
        if matches!(node.role, Role::Leader(_)) {
            let leaders = self.leaders.entry(node.term).or_default();
            leaders.insert(i as NodeId);
            if leaders.len() > 1 {
                return Err(format!(
                    "at {now} ms: two leaders in term {}: {leaders:?}",
                    node.term
                ));
            }
        }
        while self.checked[i] < node.applied {
            self.checked[i] += 1;
            let index = self.checked[i];
            let entry = &node.log[index as usize - 1];
            match self.applied.get(&index) {
                Some(first) if first != entry => {
                    return Err(format!(
                        "at {now} ms: n{} applied {entry:?} at index {index}, where {first:?} was applied",
                        i + 1
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
