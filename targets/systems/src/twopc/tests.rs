//! The two-phase commit nodes driven by an in-test network that owns the clock, cuts the
//! coordinator off, and crashes it (it restarts from what it persisted).

use std::collections::VecDeque;

use serde_json::Value;

use super::*;
use crate::orders::OrderRequest;
use crate::{ClientReply, Node};

struct Net {
    settings: Settings,
    nodes: Vec<TwoPcNode>,
    persisted: Vec<Vec<Record>>,
    queue: VecDeque<(NodeId, NodeId, Message)>,
    replies: Vec<(RequestId, ClientReply)>,
    /// The coordinator's messages are dropped while set.
    coordinator_cut: bool,
    mono: u64,
}

impl Net {
    fn new(settings: &str) -> Net {
        let settings = Settings::new("twopc").apply([settings]).unwrap();
        Net {
            nodes: (0..4)
                .map(|id| TwoPcNode::new(id, &settings, 1, Vec::new()))
                .collect(),
            settings,
            persisted: vec![Vec::new(); 4],
            queue: VecDeque::new(),
            replies: Vec::new(),
            coordinator_cut: false,
            mono: 1,
        }
    }

    fn now(&self) -> Now {
        Now {
            mono_ms: self.mono,
            wall_ms: 1_000_000 + self.mono,
        }
    }

    fn drain(&mut self, id: NodeId) {
        while let Some(out) = self.nodes[id as usize].poll_output() {
            match out {
                Output::Persist(r) => self.persisted[id as usize].push(r),
                Output::Note(_) => {}
                Output::Reply { id, reply } => self.replies.push((id, reply)),
                Output::Send { to, msg } => {
                    if !(self.coordinator_cut && (id == 0 || to == 0)) {
                        self.queue.push_back((id, to, msg));
                    }
                }
            }
        }
    }

    fn step(&mut self) -> bool {
        let Some((from, to, msg)) = self.queue.pop_front() else {
            return false;
        };
        let now = self.now();
        self.nodes[to as usize].handle_peer(now, from, msg);
        self.drain(to);
        true
    }

    fn run_for(&mut self, ms: u64) {
        for _ in 0..ms / 10 {
            while self.step() {}
            self.mono += 10;
            let now = self.now();
            for id in 0..4 {
                self.nodes[id as usize].handle_tick(now);
                self.drain(id);
            }
        }
        while self.step() {}
    }

    fn place(&mut self, client: RequestId, id: &str) {
        let now = self.now();
        let request = OrderRequest::Place {
            order: Order {
                order: id.into(),
                sku: "sku-1".into(),
                qty: 1,
                account: "acct-1".into(),
                amount: 10,
            },
            idempotency_key: None,
        };
        assert!(self.nodes[0].handle_order(now, client, request).is_none());
        self.drain(0);
    }

    fn restart_coordinator(&mut self) {
        let records = self.persisted[0].clone();
        self.nodes[0] = TwoPcNode::new(0, &self.settings, 1, records);
        self.queue.retain(|(from, to, _)| *from != 0 && *to != 0);
    }

    fn status(&self, id: &str) -> Value {
        self.nodes[0].describe_key(id)["status"].clone()
    }

    fn state(&self, participant: usize, id: &str) -> Value {
        self.nodes[participant].describe_key(id)["state"].clone()
    }
}

#[test]
fn all_yes_commits_everywhere_and_one_no_aborts_everywhere() {
    let mut net = Net::new("");
    net.place(1, "o1");
    net.run_for(100);
    assert_eq!(net.status("o1"), "completed");
    for p in 1..=3 {
        assert_eq!(net.state(p, "o1"), "committed");
    }
    assert_eq!(net.nodes[2].describe()["totals"]["acct-1"], 50_000 - 10);

    let mut net = Net::new("fail.payment=1");
    net.place(1, "o2");
    net.run_for(100);
    assert_eq!(net.status("o2"), "rejected");
    for p in 1..=3 {
        assert_eq!(net.state(p, "o2"), "aborted");
    }
    assert_eq!(
        net.nodes[1].describe()["totals"]["sku-1"],
        5_000,
        "the lock was released"
    );
}

#[test]
fn a_prepared_participant_stays_blocked_until_the_decision_arrives() {
    let mut net = Net::new("");
    net.place(1, "o1");
    // Every participant prepares and votes; then the coordinator is cut off.
    for _ in 0..3 {
        net.step();
    }
    net.coordinator_cut = true;
    net.run_for(2_000);
    for p in 1..=3 {
        assert_eq!(net.state(p, "o1"), "prepared", "in doubt, holding its lock");
    }
    assert!(
        net.nodes[2].describe()["longest_in_doubt_ms"]
            .as_u64()
            .unwrap()
            >= 2_000
    );
    net.coordinator_cut = false;
    net.run_for(500);
    assert_eq!(net.status("o1"), "completed");
    let blocked = net.nodes[2].describe()["blocked_ms"][0].as_u64().unwrap();
    assert!(blocked >= 2_000, "blocked {blocked} ms");
}

#[test]
fn a_restarted_coordinator_delivers_its_decisions_and_aborts_the_undecided() {
    // Decided commit, crashed before every participant heard it.
    let mut net = Net::new("");
    net.place(1, "o1");
    while !net.persisted[0]
        .iter()
        .any(|r| matches!(r, Record::Decided { .. }))
    {
        assert!(net.step());
    }
    net.restart_coordinator();
    net.run_for(500);
    assert_eq!(net.status("o1"), "completed");
    for p in 1..=3 {
        assert_eq!(net.state(p, "o1"), "committed");
    }

    // Crashed while collecting votes: presumed abort.
    let mut net = Net::new("");
    net.place(1, "o2");
    net.step();
    net.restart_coordinator();
    net.run_for(500);
    assert_eq!(net.status("o2"), "rejected");
    for p in 1..=3 {
        assert_ne!(net.state(p, "o2"), "committed");
        assert_ne!(net.state(p, "o2"), "prepared");
    }
}

#[test]
fn no_decision_log_commits_in_some_places_and_aborts_in_others() {
    let mut net = Net::new("bug=no-decision-log");
    net.place(1, "o1");
    // The commit decision reaches the inventory only; then the coordinator crashes.
    while !net
        .queue
        .iter()
        .any(|(_, _, m)| matches!(m, Message::Decide { .. }))
    {
        assert!(net.step());
    }
    let first_decide = net
        .queue
        .iter()
        .position(|(_, _, m)| matches!(m, Message::Decide { .. }))
        .unwrap();
    let delivered = net.queue.remove(first_decide).unwrap();
    let now = net.now();
    net.nodes[delivered.1 as usize].handle_peer(now, 0, delivered.2);
    net.drain(delivered.1);
    net.restart_coordinator();
    net.run_for(500);
    assert_eq!(
        net.status("o1"),
        "rejected",
        "the forgotten decision became an abort"
    );
    let states: Vec<Value> = (1..=3).map(|p| net.state(p, "o1")).collect();
    assert!(states.contains(&Value::from("committed")), "{states:?}");
    assert!(states.contains(&Value::from("aborted")), "{states:?}");
}
