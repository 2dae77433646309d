//! The saga nodes driven by an in-test network that owns the clock, delivers or drops
//! messages, and crashes the orchestrator at chosen points (it restarts from what it
//! persisted).

use std::collections::VecDeque;

use serde_json::Value;

use super::*;
use crate::orders::OrderRequest;
use crate::{ClientReply, Node};

struct Net {
    settings: Settings,
    nodes: Vec<SagaNode>,
    persisted: Vec<Vec<Record>>,
    queue: VecDeque<(NodeId, NodeId, Message)>,
    replies: Vec<(RequestId, ClientReply)>,
    /// Every step message, as (service, order, undo), in the order sent.
    steps: Vec<(NodeId, String, bool)>,
    /// Drop the next this-many answers from services.
    drop_answers: usize,
    mono: u64,
}

impl Net {
    fn new(settings: &str) -> Net {
        let settings = Settings::new("saga").apply([settings]).unwrap();
        let nodes = (0..4)
            .map(|id| SagaNode::new(id, &settings, 1, Vec::new()))
            .collect();
        Net {
            settings,
            nodes,
            persisted: vec![Vec::new(); 4],
            queue: VecDeque::new(),
            replies: Vec::new(),
            steps: Vec::new(),
            drop_answers: 0,
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
                    if let Message::Step { order, undo } = &msg {
                        self.steps.push((to, order.order.clone(), *undo));
                    }
                    if matches!(msg, Message::StepDone { .. }) && self.drop_answers > 0 {
                        self.drop_answers -= 1;
                        continue;
                    }
                    self.queue.push_back((id, to, msg));
                }
            }
        }
    }

    /// Delivers one message; false when none is queued.
    fn step(&mut self) -> bool {
        let Some((from, to, msg)) = self.queue.pop_front() else {
            return false;
        };
        let now = self.now();
        self.nodes[to as usize].handle_peer(now, from, msg);
        self.drain(to);
        true
    }

    fn tick(&mut self, ms: u64) {
        self.mono += ms;
        let now = self.now();
        self.nodes[0].handle_tick(now);
        self.drain(0);
    }

    /// Runs until nothing is queued and the orchestrator has nothing to send again.
    fn settle(&mut self) {
        for _ in 0..200 {
            while self.step() {}
            self.tick(self.settings.retry_ms);
            if self.queue.is_empty() {
                while self.step() {}
                self.tick(self.settings.retry_ms);
                if self.queue.is_empty() {
                    return;
                }
            }
        }
    }

    fn place(&mut self, client: RequestId, order: Order) {
        let now = self.now();
        let request = OrderRequest::Place {
            order,
            idempotency_key: None,
        };
        assert!(self.nodes[0].handle_order(now, client, request).is_none());
        self.drain(0);
    }

    /// Crashes the orchestrator and restarts it from its saga log.
    fn restart_orchestrator(&mut self) {
        let records = self.persisted[0].clone();
        self.nodes[0] = SagaNode::new(0, &self.settings, 1, records);
        // Whatever it had in flight is lost with the process.
        self.queue.retain(|(from, to, _)| *from != 0 && *to != 0);
    }

    fn status(&self, id: &str) -> Value {
        self.nodes[0].describe_key(id)["status"].clone()
    }

    fn effect(&self, service: usize, id: &str) -> (u64, u64) {
        let e = self.nodes[service].describe_key(id);
        (
            e["applied"].as_u64().unwrap(),
            e["undone"].as_u64().unwrap(),
        )
    }

    fn total(&self, service: usize, name: &str) -> i64 {
        self.nodes[service].describe()["totals"][name]
            .as_i64()
            .unwrap()
    }
}

fn order(id: &str) -> Order {
    Order {
        order: id.into(),
        sku: "sku-1".into(),
        qty: 2,
        account: "acct-1".into(),
        amount: 30,
    }
}

#[test]
fn an_order_completes_with_each_step_applied_once() {
    let mut net = Net::new("");
    net.place(7, order("o1"));
    net.settle();
    assert_eq!(net.status("o1"), "completed");
    for service in 1..=3 {
        assert_eq!(net.effect(service, "o1"), (1, 0));
    }
    assert_eq!(net.total(1, "sku-1"), 5_000 - 2);
    assert_eq!(net.total(2, "acct-1"), 50_000 - 30);
    assert_eq!(net.total(3, "shipments"), 1);
    let (client, reply) = &net.replies[0];
    assert_eq!(*client, 7);
    let ClientReply::Ok { value, .. } = reply else {
        panic!("{reply:?}")
    };
    assert_eq!(value["status"], "completed");
    assert!(value["half_done_ms"].as_u64().is_some());
}

#[test]
fn compensations_run_in_reverse() {
    let mut net = Net::new("fail.shipping=1");
    net.place(1, order("o1"));
    net.settle();
    assert_eq!(net.status("o1"), "compensated");
    let sent: Vec<(NodeId, bool)> = net.steps.iter().map(|(to, _, undo)| (*to, *undo)).collect();
    assert_eq!(
        sent,
        vec![(1, false), (2, false), (3, false), (2, true), (1, true)],
        "reserve, charge, ship (declined), refund, release"
    );
    assert_eq!(net.effect(1, "o1"), (1, 1));
    assert_eq!(net.effect(2, "o1"), (1, 1));
    assert_eq!(net.effect(3, "o1"), (0, 0));
    assert_eq!(net.total(1, "sku-1"), 5_000);
    assert_eq!(net.total(2, "acct-1"), 50_000);
}

#[test]
fn a_first_step_declined_is_rejected_with_nothing_to_undo() {
    let mut net = Net::new("stock=1");
    net.place(1, order("o1"));
    net.settle();
    assert_eq!(net.status("o1"), "rejected");
    assert!(
        net.nodes[0].describe_key("o1")["reason"]
            .as_str()
            .unwrap()
            .contains("out of stock")
    );
    assert_eq!(net.steps.len(), 1);
}

#[test]
fn a_replayed_step_key_is_applied_once_unless_no_idempotency() {
    for (settings, applied) in [("", 1), ("bug=no-idempotency", 2)] {
        let mut net = Net::new(settings);
        // The payment's answer is lost: the orchestrator sends the charge again.
        net.place(1, order("o1"));
        while net.step() {
            if net.steps.len() == 2 {
                net.drop_answers = 1;
                net.step();
                break;
            }
        }
        net.settle();
        assert_eq!(net.status("o1"), "completed", "{settings}");
        assert_eq!(net.effect(2, "o1").0, applied, "{settings}");
        assert_eq!(net.total(2, "acct-1"), 50_000 - 30 * applied as i64);
    }
}

#[test]
fn a_compensation_before_its_step_leaves_a_tombstone() {
    let mut net = Net::new("");
    let now = net.now();
    net.nodes[2].handle_peer(
        now,
        0,
        Message::Step {
            order: order("o9"),
            undo: true,
        },
    );
    net.nodes[2].handle_peer(
        now,
        0,
        Message::Step {
            order: order("o9"),
            undo: false,
        },
    );
    net.drain(2);
    let answers: Vec<&Message> = net.queue.iter().map(|(_, _, m)| m).collect();
    assert!(matches!(
        answers[1],
        Message::StepDone { outcome: Err(why), .. } if why.contains("compensated before")
    ));
    assert_eq!(net.effect(2, "o9"), (0, 0));
}

/// Crashes the orchestrator right after its `k`-th record reached the disk (records written
/// after it in the same step are lost with the process), restarts it, and lets the order
/// finish; returns the net.
fn crash_after(settings: &str, k: usize) -> Net {
    let mut net = Net::new(settings);
    net.place(1, order("o1"));
    while net.persisted[0].len() < k && net.step() {}
    assert!(
        net.persisted[0].len() >= k,
        "the saga writes at least {k} records"
    );
    net.persisted[0].truncate(k);
    net.restart_orchestrator();
    net.settle();
    net
}

#[test]
fn the_saga_log_recovers_from_a_crash_at_every_step_boundary() {
    // A completing order writes 5 records (started, 3 steps, finished); a compensated one 7
    // (started, 2 steps, failed, 2 undos, finished).
    for (settings, records, status, effect) in [
        ("", 5, "completed", [(1, 0), (1, 0), (1, 0)]),
        (
            "fail.shipping=1",
            7,
            "compensated",
            [(1, 1), (1, 1), (0, 0)],
        ),
    ] {
        for k in 1..records {
            let net = crash_after(settings, k);
            assert_eq!(net.status("o1"), status, "{settings}, crash after {k}");
            for (service, want) in (1..=3).zip(effect) {
                assert_eq!(
                    net.effect(service, "o1"),
                    want,
                    "{settings}, crash after {k}, {}",
                    SERVICE_NAMES[service - 1]
                );
            }
        }
    }
}

#[test]
fn a_volatile_log_forgets_an_order_in_flight() {
    let mut net = Net::new("bug=volatile-log");
    net.place(1, order("o1"));
    // Reserve and charge happen, then the orchestrator crashes.
    while net.steps.len() < 2 && net.step() {}
    net.step();
    net.restart_orchestrator();
    net.settle();
    assert_eq!(net.status("o1"), Value::Null, "the order is forgotten");
    assert_eq!(net.effect(1, "o1"), (1, 0), "its stock stays reserved");
}

#[test]
fn no_compensation_leaves_earlier_steps_applied() {
    let mut net = Net::new("fail.shipping=1,bug=no-compensation");
    net.place(1, order("o1"));
    net.settle();
    assert_eq!(net.status("o1"), "compensated");
    assert_eq!(net.effect(1, "o1"), (1, 0));
    assert_eq!(net.effect(2, "o1"), (1, 0));
}

#[test]
fn a_retried_order_joins_its_saga_and_a_reused_id_is_refused() {
    let mut net = Net::new("");
    net.place(1, order("o1"));
    net.place(2, order("o1"));
    net.settle();
    assert_eq!(net.replies.len(), 2);
    assert_eq!(net.effect(2, "o1"), (1, 0));
    let mut other = order("o1");
    other.amount = 99;
    let now = net.now();
    let request = OrderRequest::Place {
        order: other,
        idempotency_key: None,
    };
    net.nodes[0].handle_order(now, 3, request);
    net.drain(0);
    assert!(matches!(
        net.replies.last(),
        Some((3, ClientReply::Refused(_)))
    ));
}
