//! The saga nodes in the simulator: seeded latencies, every step message seen (and a
//! service's answer dropped when a test says so), the orchestrator crashed right after a
//! chosen record and restarted from its saga log.

use std::sync::{Arc, Mutex};

use serde_json::Value;

use super::*;
use crate::orders::OrderRequest;
use crate::sim::testnet::TestNet;
use crate::sim::{Answer, DEFAULT_LATENCY, Request, Sim};
use crate::{ClientReply, Node};

/// What the network saw and is told to do.
#[derive(Default)]
struct Wire {
    /// Every step message, as (service, order, undo), in the order sent.
    steps: Vec<(NodeId, String, bool)>,
    /// Drop the next this-many answers from services.
    drop_answers: usize,
}

struct Net {
    net: TestNet<SagaNode>,
    wire: Arc<Mutex<Wire>>,
}

impl Net {
    fn new(settings: &str) -> Net {
        let settings = Settings::new("saga").apply([settings]).unwrap();
        let make = move |id, records, _| SagaNode::new(id, &settings, 1, records);
        let mut sim = Sim::new(4, DEFAULT_LATENCY, 1, Box::new(make));
        let wire = Arc::new(Mutex::new(Wire::default()));
        let seen = wire.clone();
        sim.send_hook = Some(Box::new(move |_, to, msg: &Message| {
            let mut wire = seen.lock().unwrap();
            if let Message::Step { order, undo } = msg {
                wire.steps.push((to, order.order.clone(), *undo));
            }
            if matches!(msg, Message::StepDone { .. }) && wire.drop_answers > 0 {
                wire.drop_answers -= 1;
                return false;
            }
            true
        }));
        Net {
            net: TestNet::new(sim),
            wire,
        }
    }

    fn steps(&self) -> Vec<(NodeId, String, bool)> {
        self.wire.lock().unwrap().steps.clone()
    }

    /// Runs until the orders settle (ten retry periods and more).
    fn settle(&mut self) {
        self.net.wait(5_000);
    }

    /// Places `order`; the request's id.
    fn place(&mut self, order: Order) -> RequestId {
        let request = OrderRequest::Place {
            order,
            idempotency_key: None,
        };
        self.net.sim.submit(0, Request::Order(request))
    }

    fn reply(&self, id: RequestId) -> ClientReply {
        match self.net.answer(id) {
            Some(Answer::Reply(reply)) => reply.clone(),
            other => panic!("request {id}: {other:?}"),
        }
    }

    fn status(&self, id: &str) -> Value {
        self.net.node(0).describe_key(id)["status"].clone()
    }

    fn effect(&self, service: NodeId, id: &str) -> (u64, u64) {
        let e = self.net.node(service).describe_key(id);
        (
            e["applied"].as_u64().unwrap(),
            e["undone"].as_u64().unwrap(),
        )
    }

    fn total(&self, service: NodeId, name: &str) -> i64 {
        self.net.node(service).describe()["totals"][name]
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
    let id = net.place(order("o1"));
    net.settle();
    assert_eq!(net.status("o1"), "completed");
    for service in 1..=3 {
        assert_eq!(net.effect(service, "o1"), (1, 0));
    }
    assert_eq!(net.total(1, "sku-1"), 5_000 - 2);
    assert_eq!(net.total(2, "acct-1"), 50_000 - 30);
    assert_eq!(net.total(3, "shipments"), 1);
    let reply = net.reply(id);
    let ClientReply::Ok { value, .. } = &reply else {
        panic!("{reply:?}")
    };
    assert_eq!(value["status"], "completed");
    assert!(value["half_done_ms"].as_u64().is_some());
}

#[test]
fn compensations_run_in_reverse() {
    let mut net = Net::new("fail.shipping=1");
    net.place(order("o1"));
    net.settle();
    assert_eq!(net.status("o1"), "compensated");
    let steps = net.steps();
    let sent: Vec<(NodeId, bool)> = steps.iter().map(|(to, _, undo)| (*to, *undo)).collect();
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
    net.place(order("o1"));
    net.settle();
    assert_eq!(net.status("o1"), "rejected");
    assert!(
        net.net.node(0).describe_key("o1")["reason"]
            .as_str()
            .unwrap()
            .contains("out of stock")
    );
    assert_eq!(net.steps().len(), 1);
}

#[test]
fn a_replayed_step_key_is_applied_once_unless_no_idempotency() {
    for (settings, applied) in [("", 1), ("bug=no-idempotency", 2)] {
        let mut net = Net::new(settings);
        // The payment's answer is lost: the orchestrator sends the charge again.
        net.place(order("o1"));
        while net.steps().len() < 2 {
            assert!(net.net.sim.run_next());
        }
        net.wire.lock().unwrap().drop_answers = 1;
        net.settle();
        assert_eq!(net.status("o1"), "completed", "{settings}");
        assert_eq!(net.effect(2, "o1").0, applied, "{settings}");
        assert_eq!(net.total(2, "acct-1"), 50_000 - 30 * applied as i64);
    }
}

#[test]
fn a_compensation_before_its_step_leaves_a_tombstone() {
    // The payment service alone, its inputs straight from the test: the undo first.
    let settings = Settings::new("saga");
    let mut payment = SagaNode::new(2, &settings, 1, Vec::new());
    let now = Now::default();
    for undo in [true, false] {
        let step = Message::Step {
            order: order("o9"),
            undo,
        };
        payment.handle_peer(now, 0, step);
    }
    let answers: Vec<Message> = std::iter::from_fn(|| payment.poll_output())
        .filter_map(|out| match out {
            Output::Send { msg, .. } => Some(msg),
            _ => None,
        })
        .collect();
    assert!(matches!(
        &answers[1],
        Message::StepDone { outcome: Err(why), .. } if why.contains("compensated before")
    ));
    let effect = payment.describe_key("o9");
    assert_eq!(
        (effect["applied"].clone(), effect["undone"].clone()),
        (0.into(), 0.into())
    );
}

/// Crashes the orchestrator right after its `k`-th record reached the disk (what it had not
/// done yet is lost with the process), restarts it from its log, and lets the order finish;
/// returns the net.
fn crash_after(settings: &str, k: usize) -> Net {
    let mut net = Net::new(settings);
    net.net.sim.crash_at_record = Some((0, k));
    net.place(order("o1"));
    net.settle();
    assert_eq!(
        net.net.sim.counters().crashes,
        1,
        "the saga writes at least {k} records"
    );
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
                    SERVICE_NAMES[service as usize - 1]
                );
            }
        }
    }
}

#[test]
fn a_volatile_log_forgets_an_order_in_flight() {
    let mut net = Net::new("bug=volatile-log");
    net.place(order("o1"));
    // Reserve and charge happen, then the orchestrator crashes.
    while net.steps().len() < 2 {
        assert!(net.net.sim.run_next());
    }
    net.net.sim.kill(0);
    net.net.sim.restart(0);
    net.settle();
    assert_eq!(net.status("o1"), Value::Null, "the order is forgotten");
    assert_eq!(net.effect(1, "o1"), (1, 0), "its stock stays reserved");
}

#[test]
fn no_compensation_leaves_earlier_steps_applied() {
    let mut net = Net::new("fail.shipping=1,bug=no-compensation");
    net.place(order("o1"));
    net.settle();
    assert_eq!(net.status("o1"), "compensated");
    assert_eq!(net.effect(1, "o1"), (1, 0));
    assert_eq!(net.effect(2, "o1"), (1, 0));
}

#[test]
fn a_retried_order_joins_its_saga_and_a_reused_id_is_refused() {
    let mut net = Net::new("");
    let first = net.place(order("o1"));
    let retry = net.place(order("o1"));
    net.settle();
    assert_eq!(net.reply(first).status(), 200);
    assert_eq!(net.reply(retry).status(), 200);
    assert_eq!(net.effect(2, "o1"), (1, 0));
    let mut other = order("o1");
    other.amount = 99;
    let reused = net.place(other);
    net.net.wait(20);
    assert!(matches!(net.reply(reused), ClientReply::Refused(_)));
}
