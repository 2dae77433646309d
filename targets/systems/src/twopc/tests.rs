//! The two-phase commit nodes in the simulator: seeded latencies, the coordinator cut off,
//! and crashed at crash points (right after a record or a message), restarting from what it
//! persisted.

use serde_json::Value;

use super::*;
use crate::Node;
use crate::faults::{CrashPlan, Faults};
use crate::orders::OrderRequest;
use crate::sim::testnet::TestNet;
use crate::sim::{DEFAULT_LATENCY, Request, Sim};

struct Net {
    net: TestNet<TwoPcNode>,
}

impl Net {
    fn new(settings: &str) -> Net {
        let settings = Settings::new("twopc").apply([settings]).unwrap();
        let make = move |id, records, _| TwoPcNode::new(id, &settings, 1, records);
        Net {
            net: TestNet::new(Sim::new(4, DEFAULT_LATENCY, 1, Box::new(make))),
        }
    }

    fn node(&self, id: NodeId) -> &TwoPcNode {
        self.net.node(id)
    }

    fn run_for(&mut self, ms: u64) {
        self.net.wait(ms);
    }

    /// Places order `id` with the coordinator.
    fn place(&mut self, id: &str) {
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
        self.net.sim.submit(0, Request::Order(request));
    }

    /// Runs events until `done` holds (within a simulated minute).
    fn run_until(&mut self, done: impl Fn(&Net) -> bool) {
        while !done(self) {
            assert!(self.net.sim.now() < 60_000, "never happened");
            assert!(self.net.sim.run_next(), "nothing more happens");
        }
    }

    /// Arms a crash point on the coordinator (`send:Decide`, `persist:Decided`): it crashes
    /// there once and restarts from its log 10 ms later.
    fn crash_coordinator_after(&mut self, point: &str) {
        let plan = CrashPlan::parse(&format!("{point}@1")).unwrap();
        self.net.sim.set_faults(
            0,
            Faults {
                crash_after: plan.rules(1.0),
                crash_down_ms: 10,
                ..Faults::default()
            },
        );
    }

    /// Disarms it once it struck.
    fn disarm(&mut self) {
        self.net.sim.set_faults(0, Faults::default());
    }

    fn status(&self, id: &str) -> Value {
        self.node(0).describe_key(id)["status"].clone()
    }

    fn state(&self, participant: NodeId, id: &str) -> Value {
        self.node(participant).describe_key(id)["state"].clone()
    }
}

#[test]
fn all_yes_commits_everywhere_and_one_no_aborts_everywhere() {
    let mut net = Net::new("");
    net.place("o1");
    net.run_for(100);
    assert_eq!(net.status("o1"), "completed");
    for p in 1..=3 {
        assert_eq!(net.state(p, "o1"), "committed");
    }
    assert_eq!(net.node(2).describe()["totals"]["acct-1"], 50_000 - 10);

    let mut net = Net::new("fail.payment=1");
    net.place("o2");
    net.run_for(100);
    assert_eq!(net.status("o2"), "rejected");
    for p in 1..=3 {
        assert_eq!(net.state(p, "o2"), "aborted");
    }
    assert_eq!(
        net.node(1).describe()["totals"]["sku-1"],
        5_000,
        "the lock was released"
    );
}

#[test]
fn a_prepared_participant_stays_blocked_until_the_decision_arrives() {
    let mut net = Net::new("");
    net.place("o1");
    // Every participant prepares and votes, the coordinator decides, and it is cut off
    // while its decisions are on the way (they are dropped on arrival).
    let decided =
        |net: &Net| (net.net.sim.records(0).iter()).any(|r| matches!(r, Record::Decided { .. }));
    net.run_until(decided);
    net.net.isolate(&[0]);
    net.run_for(2_000);
    for p in 1..=3 {
        assert_eq!(net.state(p, "o1"), "prepared", "in doubt, holding its lock");
    }
    assert!(
        net.net.sim.describe(2).unwrap()["longest_in_doubt_ms"]
            .as_u64()
            .unwrap()
            >= 2_000
    );
    net.net.heal();
    net.run_for(500);
    assert_eq!(net.status("o1"), "completed");
    let blocked = net.net.sim.describe(2).unwrap()["blocked_ms"][0]
        .as_u64()
        .unwrap();
    assert!(blocked >= 2_000, "blocked {blocked} ms");
}

#[test]
fn a_restarted_coordinator_delivers_its_decisions_and_aborts_the_undecided() {
    // Decided commit, crashed before any participant heard it.
    let mut net = Net::new("");
    net.crash_coordinator_after("persist:Decided");
    net.place("o1");
    net.run_until(|net| net.net.sim.counters().crashes == 1);
    net.disarm();
    net.run_for(500);
    assert_eq!(net.status("o1"), "completed");
    for p in 1..=3 {
        assert_eq!(net.state(p, "o1"), "committed");
    }

    // Crashed while collecting votes (right after its first Prepare left): presumed abort.
    let mut net = Net::new("");
    net.crash_coordinator_after("send:Prepare");
    net.place("o2");
    net.run_until(|net| net.net.sim.counters().crashes == 1);
    net.disarm();
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
    // The commit decision leaves for one participant only; then the coordinator crashes.
    net.crash_coordinator_after("send:Decide");
    net.place("o1");
    net.run_until(|net| net.net.sim.counters().crashes == 1);
    net.disarm();
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
