//! The Raft node in the simulator: seeded link latencies, cut links, nodes killed and
//! restarted from what they persisted; every leader seen is kept to check one per term.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::{Value, json};

use super::*;
use crate::ClientReply;
use crate::sim::testnet::TestNet;
use crate::sim::{DEFAULT_LATENCY, Sim, What};

struct Net {
    net: TestNet<RaftNode>,
    /// Every (term, leader) ever seen.
    leaders: BTreeMap<u64, BTreeSet<NodeId>>,
}

impl Net {
    fn new(nodes: u32, settings: &str) -> Self {
        Self::with(nodes, settings, false)
    }

    /// A cluster whose every event is kept.
    fn traced(nodes: u32, settings: &str) -> Self {
        Self::with(nodes, settings, true)
    }

    fn with(nodes: u32, settings: &str, trace: bool) -> Self {
        let settings = Settings::new(nodes).apply([settings]).unwrap();
        let make = move |id, records, incarnation: u64| {
            RaftNode::new(id, settings.clone(), 7 + incarnation, records)
        };
        let sim = Sim::new(nodes, DEFAULT_LATENCY, 7, Box::new(make));
        Net {
            net: TestNet::new(if trace { sim.with_trace() } else { sim }),
            leaders: BTreeMap::new(),
        }
    }

    fn node(&self, id: NodeId) -> &RaftNode {
        self.net.node(id)
    }

    fn len(&self) -> NodeId {
        self.net.len() as NodeId
    }

    /// Lets `ms` pass, noting every leader seen.
    fn wait(&mut self, ms: u64) {
        let leaders = &mut self.leaders;
        self.net.wait_watching(ms, |id, node| {
            if matches!(node.role, Role::Leader(_)) {
                leaders.entry(node.term).or_default().insert(id);
            }
        });
    }

    fn leader(&self) -> Option<NodeId> {
        let max_term = self.max_term();
        (0..self.len()).find(|&id| {
            self.net
                .sim
                .node(id)
                .is_some_and(|node| matches!(node.role, Role::Leader(_)) && node.term == max_term)
        })
    }

    fn max_term(&self) -> u64 {
        (0..self.len())
            .filter_map(|id| self.net.sim.node(id))
            .map(|n| n.term)
            .max()
            .unwrap_or(0)
    }

    fn request(&mut self, node: NodeId, request: ClientRequest) -> ClientReply {
        let id = self.net.submit(node, request);
        for _ in 0..2_000 {
            if self.net.answer(id).is_some() {
                return self.net.await_reply(id, 0);
            }
            self.wait(1);
        }
        panic!("no reply");
    }

    fn put(&mut self, node: NodeId, key: &str, value: Value) -> ClientReply {
        self.request(
            node,
            ClientRequest::Put {
                key: key.into(),
                value,
                context: None,
                idempotency_key: None,
            },
        )
    }

    /// Hands a request to `node` without waiting for its answer.
    fn submit(&mut self, node: NodeId, request: ClientRequest) {
        self.net.submit(node, request);
    }

    fn get(&mut self, node: NodeId, key: &str) -> ClientReply {
        self.request(node, ClientRequest::Get { key: key.into() })
    }

    fn isolate(&mut self, nodes: &[NodeId]) {
        self.net.isolate(nodes);
    }

    fn heal(&mut self) {
        self.net.heal();
    }

    /// Kills `node`: it stays down until [`Net::start`].
    fn kill(&mut self, node: NodeId) {
        self.net.sim.kill(node);
    }

    /// Starts a killed `node` again from what it persisted.
    fn start(&mut self, node: NodeId) {
        self.net.sim.restart(node);
    }

    /// Crashes and restarts `node` from what it persisted.
    fn restart(&mut self, node: NodeId) {
        self.kill(node);
        self.start(node);
    }

    fn notes(&self, node: NodeId) -> Vec<&Value> {
        let notes = self.net.sim.notes().iter();
        notes
            .filter(|(id, _)| *id == node)
            .map(|(_, n)| n)
            .collect()
    }

    fn assert_one_leader_per_term(&self) {
        for (term, leaders) in &self.leaders {
            assert!(leaders.len() <= 1, "term {term} had leaders {leaders:?}");
        }
    }
}

#[test]
fn an_election_converges_on_one_leader() {
    let mut net = Net::new(5, "");
    net.wait(2000);
    let leader = net.leader().expect("a leader");
    for id in 0..5 {
        assert_eq!(net.node(id).leader, Some(leader), "everyone follows it");
    }
    net.assert_one_leader_per_term();
}

#[test]
fn writes_commit_and_reads_see_them_through_the_leader() {
    let mut net = Net::new(3, "");
    net.wait(2000);
    let leader = net.leader().unwrap();
    let follower = (leader + 1) % 3;
    assert_eq!(
        net.put(follower, "k", json!(1)).status(),
        200,
        "forwarded to the leader"
    );
    let cas = ClientRequest::Cas {
        key: "k".into(),
        expect: json!(5),
        value: json!(2),
        idempotency_key: None,
    };
    assert_eq!(net.request(leader, cas), ClientReply::Mismatch);
    let ClientReply::Ok { value, .. } = net.get(follower, "k") else {
        panic!()
    };
    assert_eq!(value, json!(1));
}

#[test]
fn committed_entries_survive_the_leader_crashing() {
    let mut net = Net::new(5, "");
    net.wait(2000);
    let old = net.leader().unwrap();
    for i in 0..5 {
        assert_eq!(net.put(old, &format!("k{i}"), json!(i)).status(), 200);
    }
    net.kill(old);
    net.wait(3000);
    let new = net.leader().expect("a new leader");
    assert_ne!(new, old);
    for i in 0..5 {
        let ClientReply::Ok { value, .. } = net.get(new, &format!("k{i}")) else {
            panic!("k{i} lost")
        };
        assert_eq!(value, json!(i));
    }
    // The old leader comes back from its log and catches up.
    net.start(old);
    net.wait(2000);
    assert_eq!(net.node(old).kv.get("k4"), Some(&json!(4)));
    net.assert_one_leader_per_term();
}

#[test]
fn a_minority_leader_cannot_serve_reads_or_writes() {
    let mut net = Net::new(5, "timeout-ms=300");
    net.wait(2000);
    let old = net.leader().unwrap();
    assert_eq!(net.put(old, "k", json!(1)).status(), 200);
    net.isolate(&[old]);
    assert_eq!(
        net.put(old, "k", json!(2)).status(),
        504,
        "no majority: not committed"
    );
    assert_eq!(net.get(old, "k").status(), 503, "leadership not confirmed");
    net.wait(2000);
    let new = net.leader().unwrap();
    assert_ne!(new, old);
    assert_eq!(net.put(new, "k", json!(3)).status(), 200);
    net.assert_one_leader_per_term();
}

#[test]
fn the_no_read_index_bug_serves_stale_reads_from_a_deposed_leader() {
    let mut net = Net::new(5, "bug=no-read-index");
    net.wait(2000);
    let old = net.leader().unwrap();
    assert_eq!(net.put(old, "k", json!(1)).status(), 200);
    net.isolate(&[old]);
    net.wait(2000);
    let new = net.leader().unwrap();
    assert_eq!(net.put(new, "k", json!(2)).status(), 200);
    let ClientReply::Ok { value, .. } = net.get(old, "k") else {
        panic!()
    };
    assert_eq!(
        value,
        json!(1),
        "the deposed leader answered from its stale state"
    );
}

#[test]
fn the_vote_is_durable_unless_forget_vote() {
    for (settings, durable) in [("", true), ("bug=forget-vote", false)] {
        let mut net = Net::new(3, settings);
        net.wait(2000);
        let voter = (net.leader().unwrap() + 1) % 3;
        let before = net.node(voter).voted_for;
        assert!(before.is_some());
        net.restart(voter);
        assert_eq!(net.node(voter).voted_for.is_some(), durable, "{settings}");
    }
}

#[test]
fn a_log_conflict_is_resolved_by_the_leader() {
    // A leader appends entries it cannot replicate, is deposed, and its uncommitted suffix is
    // replaced when it rejoins.
    let mut net = Net::new(3, "timeout-ms=200");
    net.wait(2000);
    let old = net.leader().unwrap();
    net.isolate(&[old]);
    for i in 0..3 {
        assert_eq!(net.put(old, &format!("lost{i}"), json!(i)).status(), 504);
    }
    net.wait(2000);
    let new = net.leader().unwrap();
    assert_eq!(net.put(new, "kept", json!(1)).status(), 200);
    net.heal();
    net.wait(2000);
    let rejoined = net.node(old);
    assert_eq!(rejoined.kv.get("kept"), Some(&json!(1)));
    assert!(
        !rejoined.kv.contains_key("lost0"),
        "uncommitted entries were replaced"
    );
    assert_eq!(rejoined.log.len(), net.node(new).log.len());
}

#[test]
fn an_idempotency_key_applies_once_across_a_leader_change() {
    let mut net = Net::new(5, "");
    net.wait(2000);
    let old = net.leader().unwrap();
    let cas = |value: i64| ClientRequest::Cas {
        key: "k".into(),
        expect: Value::Null,
        value: json!(value),
        idempotency_key: Some("order-7".into()),
    };
    assert_eq!(net.request(old, cas(1)).status(), 200);
    net.kill(old);
    net.wait(3000);
    let new = net.leader().unwrap();
    // Without the key this cas would fail: the value is 1, not null. The retry gets the first
    // result and applies nothing.
    assert_eq!(net.request(new, cas(2)).status(), 200);
    let ClientReply::Ok { value, .. } = net.get(new, "k") else {
        panic!()
    };
    assert_eq!(value, json!(1));
}

fn put_x(value: i64) -> ClientRequest {
    ClientRequest::Put {
        key: "x".into(),
        value: json!(value),
        context: None,
        idempotency_key: None,
    }
}

/// Figure 8 of the Raft paper: an entry of an older term, replicated to a majority by a later
/// leader, is overwritten by a candidate whose log ends in a newer term, unless commitment
/// waits for an entry of the leader's own term. Returns the value of x committed after step
/// (c), if any, and the value a leader reads at the end.
fn figure_8(settings: &str) -> (Option<Value>, Option<Value>) {
    let mut net = Net::new(5, settings);
    net.wait(2000);
    let l1 = net.leader().unwrap();
    let a = (l1 + 1) % 5;
    // (a) L1 appends x=1 and reaches only A.
    net.isolate(&[l1, a]);
    net.submit(l1, put_x(1));
    net.wait(20);
    // (b) L1 and A crash; B is elected by the other three, appends x=2 alone, and crashes.
    net.kill(l1);
    net.kill(a);
    net.heal();
    net.wait(2000);
    let b = net.leader().expect("a leader among the other three");
    net.isolate(&[b]);
    net.submit(b, put_x(2));
    net.wait(10);
    net.kill(b);
    net.heal();
    // (c) L1 and A come back; the new leader spreads what it has to a majority.
    net.start(l1);
    net.start(a);
    net.wait(2000);
    let l3 = net.leader().expect("a leader");
    let committed = net.node(l3).kv.get("x").cloned();
    // (d) L1 and A crash again; B comes back.
    net.kill(l1);
    net.kill(a);
    net.start(b);
    net.wait(3000);
    let leader = net.leader().expect("a leader among B and the other two");
    let last = match net.get(leader, "x") {
        ClientReply::Ok { value, .. } => Some(value),
        _ => None,
    };
    (committed, last)
}

#[test]
fn figure_8_keeps_committed_entries_and_loses_one_with_no_term_check() {
    // Correct Raft never commits the old-term x=1 by counting, and whatever it did commit is
    // what a leader reads at the end.
    let (committed, last) = figure_8("");
    assert_eq!(last, committed, "the committed state survives");
    let (committed, last) = figure_8("bug=no-term-check");
    assert_eq!(
        committed,
        Some(json!(1)),
        "the old-term x=1 was committed by counting"
    );
    assert_eq!(last, Some(json!(2)), "and B overwrote it");
}

/// Delays of up to 20 ms, a crash every 2 s per node (down up to 300 ms), the leader cut off
/// about once a second for up to half a second.
const CHAOS: super::sim::Chaos = super::sim::Chaos {
    nodes: 5,
    min_delay_ms: 1,
    max_delay_ms: 20,
    crash_per_ms: 0.0005,
    max_down_ms: 300,
    isolate_per_ms: 0.001,
    max_isolation_ms: 500,
    with_leader: 0,
    write_every_ms: 5,
    crash_after_vote: 0.0,
    crash_after_entries: 0.0,
};

#[test]
fn a_simulated_cluster_keeps_election_and_state_machine_safety_under_chaos() {
    for settings in ["", ",pre-vote=true"] {
        for seed in 1..=3 {
            let settings = format!("election-ms=100,heartbeat-ms=20{settings}");
            let result = super::sim::simulate(&CHAOS, &settings, seed, 20_000);
            assert_eq!(result, Ok(()), "{settings} seed {seed}");
        }
    }
}

#[test]
fn a_candidate_asks_again_a_peer_that_did_not_answer() {
    let mut net = Net::new(3, "election-ms=300,heartbeat-ms=50");
    net.kill(1);
    net.kill(2);
    let mut waited = 0;
    while !matches!(net.node(0).role, Role::Candidate(_)) {
        net.wait(5);
        waited += 5;
        assert!(waited < 2000, "n1 never stood");
    }
    let term = net.node(0).term;
    // Its requests were lost; the peer comes back well before the election times out.
    net.start(1);
    net.wait(150);
    assert!(
        matches!(net.node(0).role, Role::Leader(_)),
        "n1 did not ask again: {:?}",
        net.node(0).role
    );
    assert_eq!(net.node(0).term, term, "won in the term it stood in");
}

#[test]
fn the_nodes_note_who_led_and_what_they_applied() {
    let mut net = Net::new(3, "");
    net.wait(1000);
    let leader = net.leader().unwrap();
    assert_eq!(net.put(leader, "k", json!(7)).status(), 200);
    net.wait(200);
    let term = net.node(leader).term;
    assert!(net.notes(leader).contains(&&json!({ "led": term })));
    for id in 0..3 {
        let notes = net.notes(id);
        let write = (notes.iter())
            .find(|n| n["command"]["Write"]["value"] == json!(7))
            .expect("every node applied the write");
        assert_eq!(write["applied"], json!(2), "after the leader's no-op");
        assert_eq!(write["term"], json!(term));
    }
}

#[test]
fn the_simulation_catches_forget_vote_when_voters_crash_right_after_voting() {
    let chaos = super::sim::Chaos {
        nodes: 5,
        min_delay_ms: 100,
        max_delay_ms: 100,
        crash_per_ms: 0.0,
        max_down_ms: 50,
        isolate_per_ms: 0.001,
        max_isolation_ms: 1500,
        with_leader: 0,
        write_every_ms: 50,
        crash_after_vote: 1.0,
        crash_after_entries: 0.0,
    };
    for seed in 1..=3 {
        assert_eq!(super::sim::simulate(&chaos, "", seed, 10_000), Ok(()));
        let why = super::sim::simulate(&chaos, "bug=forget-vote", seed, 10_000)
            .expect_err("a forgotten vote must give a term two leaders");
        assert!(why.contains("two leaders"), "seed {seed}: {why}");
    }
}

#[test]
fn the_simulation_catches_early_commit() {
    for seed in 1..=3 {
        let result = super::sim::simulate(
            &CHAOS,
            "election-ms=100,heartbeat-ms=20,bug=early-commit",
            seed,
            20_000,
        );
        let why = result.expect_err("early-commit must apply different entries at one index");
        assert!(why.contains("applied"), "seed {seed}: {why}");
    }
}

#[test]
fn with_pre_vote_a_new_leader_follows_a_crashed_one_and_commits() {
    let mut net = Net::new(5, "pre-vote=true");
    net.wait(2000);
    let old = net.leader().expect("a leader with pre-vote");
    assert_eq!(net.put(old, "k", json!(1)).status(), 200);
    net.kill(old);
    net.wait(3000);
    let new = net.leader().expect("a new leader with pre-vote");
    assert_ne!(new, old);
    assert_eq!(net.put(new, "k", json!(2)).status(), 200);
    net.assert_one_leader_per_term();
}

/// Cuts one follower off for 3 s, heals, and returns (term before, term after, leader kept).
fn rejoin(settings: &str) -> (u64, u64, bool) {
    let mut net = Net::new(5, settings);
    net.wait(2000);
    let leader = net.leader().unwrap();
    let before = net.node(leader).term;
    let loner = (leader + 1) % 5;
    net.isolate(&[loner]);
    net.wait(3000);
    net.heal();
    net.wait(2000);
    net.assert_one_leader_per_term();
    (before, net.max_term(), net.leader() == Some(leader))
}

#[test]
fn pre_vote_keeps_a_node_that_was_cut_off_from_deposing_the_leader() {
    let (before, after, kept) = rejoin("pre-vote=true");
    assert_eq!(
        (after, kept),
        (before, true),
        "with pre-vote nothing changes"
    );
    let (before, after, _) = rejoin("");
    assert!(
        after > before + 1,
        "without pre-vote the loner raised its term in vain and deposed the leader ({before} → {after})"
    );
}

/// Driven only at the deadlines the nodes give (the simulator ticks a node at the deadline
/// it asked for and never polls), a cluster elects a leader, commits a write and keeps its
/// leader with heartbeats, waking a few times per heartbeat interval rather than every
/// millisecond.
#[test]
fn nodes_driven_only_at_their_deadlines_elect_and_commit() {
    let mut net = Net::traced(3, "election-ms=300,heartbeat-ms=50");
    net.wait(1_000);
    let leader = net.leader().expect("a leader within a second");
    assert_eq!(net.put(leader, "k", json!(1)).status(), 200);
    let term = net.node(leader).term;
    let ticks = |net: &Net| {
        let trace = net.net.sim.trace().expect("kept");
        (trace.events().iter())
            .filter(|e| e.what == What::Tick && e.node == leader)
            .count()
    };
    let before = ticks(&net);
    net.wait(2_000);
    assert_eq!(net.leader(), Some(leader), "heartbeats kept the leader");
    assert_eq!(net.node(leader).term, term);
    // One wake per heartbeat (50 ms) for 2 s, give or take: not 2,000.
    let wakes = ticks(&net) - before;
    assert!((30..=60).contains(&wakes), "{wakes} wake-ups in 2 s");
}
