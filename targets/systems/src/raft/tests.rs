//! The Raft node driven by an in-test network that owns the clock, delivers, drops and
//! isolates; nodes restart from what they persisted.

use std::collections::{BTreeMap, HashSet, VecDeque};

use serde_json::{Value, json};

use super::*;
use crate::{ClientReply, Kinded};

struct Net {
    nodes: Vec<RaftNode>,
    settings: Settings,
    queue: VecDeque<(NodeId, NodeId, Message)>,
    replies: Vec<(RequestId, ClientReply)>,
    persisted: Vec<Vec<Record>>,
    /// What each node noted for the harness (who led, what was applied).
    notes: Vec<Vec<Value>>,
    cut: HashSet<(NodeId, NodeId)>,
    down: HashSet<NodeId>,
    mono: u64,
    next_request: RequestId,
    /// Every (term, leader) ever seen.
    leaders: BTreeMap<u64, HashSet<NodeId>>,
}

impl Net {
    fn new(nodes: u32, settings: &str) -> Self {
        let settings = Settings::new(nodes).apply([settings]).unwrap();
        Net {
            nodes: (0..nodes)
                .map(|id| RaftNode::new(id, settings.clone(), 7, []))
                .collect(),
            settings,
            queue: VecDeque::new(),
            replies: Vec::new(),
            persisted: vec![Vec::new(); nodes as usize],
            notes: vec![Vec::new(); nodes as usize],
            cut: HashSet::new(),
            down: HashSet::new(),
            mono: 1,
            next_request: 1,
            leaders: BTreeMap::new(),
        }
    }

    fn now(&self) -> Now {
        Now {
            mono_ms: self.mono,
            wall_ms: self.mono,
        }
    }

    fn drain(&mut self, node: NodeId) {
        while let Some(out) = self.nodes[node as usize].poll_output() {
            match out {
                Output::Send { to, msg } => {
                    assert_eq!(msg.kind(), crate::serde_variant(&msg));
                    if !self.cut.contains(&(node, to)) && !self.down.contains(&to) {
                        self.queue.push_back((node, to, msg));
                    }
                }
                Output::Reply { id, reply } => self.replies.push((id, reply)),
                Output::Persist(r) => {
                    assert_eq!(r.kind(), crate::serde_variant(&r));
                    self.persisted[node as usize].push(r)
                }
                Output::Note(note) => self.notes[node as usize].push(note),
            }
        }
        let n = &self.nodes[node as usize];
        if matches!(n.role, Role::Leader(_)) {
            self.leaders.entry(n.term).or_default().insert(node);
        }
    }

    fn deliver(&mut self) {
        while let Some((from, to, msg)) = self.queue.pop_front() {
            if self.down.contains(&to) {
                continue;
            }
            let now = self.now();
            self.nodes[to as usize].handle_peer(now, from, msg);
            self.drain(to);
        }
    }

    fn wait(&mut self, ms: u64) {
        for _ in 0..ms / 5 {
            self.mono += 5;
            for id in 0..self.nodes.len() as NodeId {
                if self.down.contains(&id) {
                    continue;
                }
                let now = self.now();
                self.nodes[id as usize].handle_tick(now);
                self.drain(id);
            }
            self.deliver();
        }
    }

    /// Moves the clock straight to the earliest deadline any node asked for and ticks the
    /// nodes whose deadline it is (as a runtime that sleeps on `poll_timeout` does); returns
    /// false if no node armed a timer.
    fn jump_to_next_deadline(&mut self) -> bool {
        let next = (0..self.nodes.len())
            .filter(|&i| !self.down.contains(&(i as NodeId)))
            .filter_map(|i| self.nodes[i].poll_timeout())
            .min();
        let Some(next) = next else {
            return false;
        };
        assert!(
            next >= self.mono,
            "a deadline in the past: {next} < {}",
            self.mono
        );
        self.mono = next;
        for id in 0..self.nodes.len() as NodeId {
            if self.nodes[id as usize].poll_timeout() == Some(next) {
                let now = self.now();
                self.nodes[id as usize].handle_tick(now);
                self.drain(id);
            }
        }
        self.deliver();
        true
    }

    fn leader(&self) -> Option<NodeId> {
        (0..self.nodes.len() as NodeId).find(|&id| {
            !self.down.contains(&id)
                && matches!(self.nodes[id as usize].role, Role::Leader(_))
                && self.nodes[id as usize].term == self.max_term()
        })
    }

    fn max_term(&self) -> u64 {
        self.nodes.iter().map(|n| n.term).max().unwrap_or(0)
    }

    fn request(&mut self, node: NodeId, request: ClientRequest) -> ClientReply {
        let id = self.next_request;
        self.next_request += 1;
        let now = self.now();
        self.nodes[node as usize].handle_client(now, id, request);
        self.drain(node);
        for _ in 0..400 {
            if let Some((_, reply)) = self.replies.iter().find(|(r, _)| *r == id) {
                return reply.clone();
            }
            self.wait(5);
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
        let id = self.next_request;
        self.next_request += 1;
        let now = self.now();
        self.nodes[node as usize].handle_client(now, id, request);
        self.drain(node);
    }

    fn get(&mut self, node: NodeId, key: &str) -> ClientReply {
        self.request(node, ClientRequest::Get { key: key.into() })
    }

    fn isolate(&mut self, nodes: &[NodeId]) {
        for &a in nodes {
            for b in 0..self.nodes.len() as NodeId {
                if !nodes.contains(&b) {
                    self.cut.insert((a, b));
                    self.cut.insert((b, a));
                }
            }
        }
    }

    /// Crashes and restarts `node` from what it persisted.
    fn restart(&mut self, node: NodeId) {
        let records = self.persisted[node as usize].clone();
        self.nodes[node as usize] = RaftNode::new(node, self.settings.clone(), 99, records);
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
    for n in &net.nodes {
        assert_eq!(n.leader, Some(leader), "everyone follows it");
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
    net.down.insert(old);
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
    net.down.remove(&old);
    net.restart(old);
    net.wait(2000);
    assert_eq!(net.nodes[old as usize].kv.get("k4"), Some(&json!(4)));
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
        let before = net.nodes[voter as usize].voted_for;
        assert!(before.is_some());
        net.restart(voter);
        assert_eq!(
            net.nodes[voter as usize].voted_for.is_some(),
            durable,
            "{settings}"
        );
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
    net.cut.clear();
    net.wait(2000);
    let rejoined = &net.nodes[old as usize];
    assert_eq!(rejoined.kv.get("kept"), Some(&json!(1)));
    assert!(
        !rejoined.kv.contains_key("lost0"),
        "uncommitted entries were replaced"
    );
    assert_eq!(rejoined.log.len(), net.nodes[new as usize].log.len());
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
    net.down.insert(old);
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
    for other in 0..5 {
        if other != l1 && other != a {
            net.cut.insert((l1, other));
            net.cut.insert((other, l1));
        }
    }
    net.submit(l1, put_x(1));
    net.deliver();
    // (b) L1 and A crash; B is elected by the other three, appends x=2 alone, and crashes.
    net.down.extend([l1, a]);
    net.cut.clear();
    net.wait(2000);
    let b = net.leader().expect("a leader among the other three");
    for other in 0..5 {
        net.cut.insert((b, other));
    }
    net.submit(b, put_x(2));
    net.down.insert(b);
    net.cut.clear();
    // (c) L1 and A come back; the new leader spreads what it has to a majority.
    net.restart(l1);
    net.restart(a);
    net.down.remove(&l1);
    net.down.remove(&a);
    net.wait(2000);
    let l3 = net.leader().expect("a leader");
    let committed = net.nodes[l3 as usize].kv.get("x").cloned();
    // (d) L1 and A crash again; B comes back.
    net.down.extend([l1, a]);
    net.restart(b);
    net.down.remove(&b);
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
    net.down.extend([1, 2]);
    let mut waited = 0;
    while !matches!(net.nodes[0].role, Role::Candidate(_)) {
        net.wait(5);
        waited += 5;
        assert!(waited < 2000, "n1 never stood");
    }
    let term = net.nodes[0].term;
    // Its requests were lost; the peer comes back well before the election times out.
    net.down.remove(&1);
    net.wait(150);
    assert!(
        matches!(net.nodes[0].role, Role::Leader(_)),
        "n1 did not ask again: {:?}",
        net.nodes[0].role
    );
    assert_eq!(net.nodes[0].term, term, "won in the term it stood in");
}

#[test]
fn the_nodes_note_who_led_and_what_they_applied() {
    let mut net = Net::new(3, "");
    net.wait(1000);
    let leader = net.leader().unwrap();
    assert_eq!(net.put(leader, "k", json!(7)).status(), 200);
    net.wait(200);
    let term = net.nodes[leader as usize].term;
    assert!(net.notes[leader as usize].contains(&json!({ "led": term })));
    for notes in &net.notes {
        let write = notes
            .iter()
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

/// A measuring tool, not a check: runs the simulation with the chaos and settings given in
/// the environment and prints how many seeds broke safety. For example:
///
/// ```text
/// N=3 MIN_DELAY=150 MAX_DELAY=150 CRASH=0.005 DOWN=50 ISOLATE=0 ISOLATION=300 WITH_LEADER=0 WRITE_EVERY=5 \
///   CRASH_AFTER_VOTE=1 CRASH_AFTER_ENTRIES=0 \
///   SET=election-ms=300,heartbeat-ms=50,bug=forget-vote SEEDS=10 MS=60000 \
///   cargo test --release -p faultline-targets --lib explore_chaos -- --ignored --nocapture
/// ```
#[test]
#[ignore = "a measuring tool driven by environment variables"]
fn explore_chaos() {
    let var = |k: &str| -> f64 {
        let text = std::env::var(k).unwrap_or_else(|_| panic!("set {k}"));
        text.parse()
            .unwrap_or_else(|_| panic!("{k}={text}: expected a number"))
    };
    let chaos = super::sim::Chaos {
        nodes: var("N") as u32,
        min_delay_ms: var("MIN_DELAY") as u64,
        max_delay_ms: var("MAX_DELAY") as u64,
        crash_per_ms: var("CRASH"),
        max_down_ms: var("DOWN") as u64,
        isolate_per_ms: var("ISOLATE"),
        max_isolation_ms: var("ISOLATION") as u64,
        with_leader: var("WITH_LEADER") as usize,
        write_every_ms: var("WRITE_EVERY") as u64,
        crash_after_vote: var("CRASH_AFTER_VOTE"),
        crash_after_entries: var("CRASH_AFTER_ENTRIES"),
    };
    let settings = std::env::var("SET").unwrap_or_default();
    let seeds = var("SEEDS") as u64;
    let mut broken = 0;
    for seed in 0..seeds {
        if let Err(why) = super::sim::simulate(&chaos, &settings, seed, var("MS") as u64) {
            broken += 1;
            println!("seed {seed}: {why}");
        }
    }
    println!("{settings}: safety broken in {broken} of {seeds} seeds");
}

#[test]
fn with_pre_vote_a_new_leader_follows_a_crashed_one_and_commits() {
    let mut net = Net::new(5, "pre-vote=true");
    net.wait(2000);
    let old = net.leader().expect("a leader with pre-vote");
    assert_eq!(net.put(old, "k", json!(1)).status(), 200);
    net.down.insert(old);
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
    let before = net.nodes[leader as usize].term;
    let loner = (leader + 1) % 5;
    net.isolate(&[loner]);
    net.wait(3000);
    net.cut.clear();
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

/// Driven only at the deadlines the nodes give (no polling), a cluster elects a leader,
/// commits a write and keeps its leader with heartbeats, waking a few times per heartbeat
/// interval rather than every millisecond.
#[test]
fn nodes_driven_only_at_their_deadlines_elect_and_commit() {
    let mut net = Net::new(3, "election-ms=300,heartbeat-ms=50");
    // The first clock reading arms every node's election timer.
    net.wait(5);
    let mut wakes = 0;
    while net.leader().is_none() {
        assert!(
            net.jump_to_next_deadline(),
            "a follower always has an election timer"
        );
        wakes += 1;
        assert!(wakes < 50, "no leader after {wakes} wake-ups");
    }
    let leader = net.leader().unwrap();
    let id = net.next_request;
    net.submit(
        leader,
        ClientRequest::Put {
            key: "k".into(),
            value: json!(1),
            context: None,
            idempotency_key: None,
        },
    );
    // Delivery is instant here, so the write commits as soon as the messages are delivered.
    net.deliver();
    assert!(
        net.replies
            .iter()
            .any(|(r, reply)| *r == id && reply.status() == 200),
        "{:?}",
        net.replies
    );
    let (start, term) = (net.mono, net.nodes[leader as usize].term);
    let mut wakes = 0;
    while net.mono < start + 2_000 {
        assert!(net.jump_to_next_deadline());
        wakes += 1;
    }
    assert_eq!(net.leader(), Some(leader), "heartbeats kept the leader");
    assert_eq!(net.nodes[leader as usize].term, term);
    // One wake per heartbeat (50 ms) for 2 s, give or take: not 2,000.
    assert!((30..=60).contains(&wakes), "{wakes} wake-ups in 2 s");
}
