//! The quorum node in the simulator: seeded link latencies (messages reorder), cut links,
//! skewed clocks, restarts from what each node persisted.

use serde_json::{Value, json};

use super::*;
use crate::sim::testnet::TestNet;
use crate::sim::{DEFAULT_LATENCY, Request, Sim};
use crate::{ClientReply, ClientRequest, NodeId};

/// A five-node quorum cluster under test.
struct Net {
    net: TestNet<QuorumNode>,
    settings: Settings,
}

impl Net {
    fn new(settings: Settings) -> Self {
        Self::seeded(settings, 1)
    }

    fn seeded(settings: Settings, seed: u64) -> Self {
        let make = {
            let settings = settings.clone();
            move |id, records, _| QuorumNode::new(id, settings.clone(), records)
        };
        let sim = Sim::new(settings.nodes, DEFAULT_LATENCY, seed, Box::new(make));
        Net {
            net: TestNet::new(sim),
            settings,
        }
    }

    fn node(&self, id: NodeId) -> &QuorumNode {
        self.net.node(id)
    }

    /// Runs a request to completion (waiting up to twice its timeout).
    fn run(&mut self, node: NodeId, request: ClientRequest) -> ClientReply {
        let within = 2 * self.settings.timeout_ms + 100;
        self.net.call(node, Request::Kv(request), within)
    }

    fn put(&mut self, node: NodeId, key: &str, value: Value) -> ClientReply {
        self.run(
            node,
            ClientRequest::Put {
                key: key.into(),
                value,
                context: None,
                idempotency_key: None,
            },
        )
    }

    fn get(&mut self, node: NodeId, key: &str) -> ClientReply {
        self.run(node, ClientRequest::Get { key: key.into() })
    }

    fn owners(&self, key: &str) -> Vec<NodeId> {
        self.node(0)
            .ring
            .preference_list(key, self.settings.n as usize)
    }
}

fn settings(pairs: &str) -> Settings {
    Settings::new(5).apply([pairs]).expect("valid settings")
}

fn value_of(reply: &ClientReply) -> Value {
    match reply {
        ClientReply::Ok { value, .. } => value.clone(),
        ClientReply::NotFound { .. } => Value::Null,
        other => panic!("not a read: {other:?}"),
    }
}

#[test]
fn writes_then_reads_the_newest() {
    let mut net = Net::new(settings("n=3,r=2,w=2"));
    assert_eq!(net.get(0, "k"), ClientReply::NotFound { meta: Value::Null });
    assert_eq!(net.put(1, "k", json!(1)).status(), 200);
    assert_eq!(net.put(2, "k", json!(2)).status(), 200);
    assert_eq!(value_of(&net.get(3, "k")), json!(2));
}

#[test]
fn a_write_survives_one_lost_replica_and_not_two() {
    let mut net = Net::new(settings("n=3,r=2,w=2"));
    let owners = net.owners("k");
    let coordinator = owners[0];
    net.net.isolate(&[owners[1]]);
    assert_eq!(net.put(coordinator, "k", json!(1)).status(), 200);
    net.net.isolate(&[owners[2]]);
    let first = net.put(coordinator, "k", json!(2));
    assert_eq!(first.status(), 504, "sent, then timed out: indeterminate");
    let next = net.put(coordinator, "k", json!(3));
    assert_eq!(next.status(), 503, "both peers suspected: nothing sent");
    assert!(matches!(next, ClientReply::Unavailable(why) if why.contains("only 1 of the 3")));
}

#[test]
fn w1_writes_succeed_inside_a_minority() {
    let mut net = Net::new(settings("n=3,r=1,w=1"));
    let owners = net.owners("k");
    net.net.isolate(&[owners[0]]);
    assert_eq!(net.put(owners[0], "k", json!(1)).status(), 200);
    // The majority side never saw it.
    assert_eq!(value_of(&net.get(owners[1], "k")), Value::Null);
}

#[test]
fn a_skewed_coordinator_clock_drops_the_later_write() {
    let mut net = Net::new(settings("n=3,r=3,w=3"));
    net.net.skew(0, 60_000); // n1 runs a minute fast
    assert_eq!(net.put(0, "k", json!("early")).status(), 200);
    net.net.wait(100);
    assert_eq!(net.put(1, "k", json!("later")).status(), 200);
    assert_eq!(
        value_of(&net.get(2, "k")),
        json!("early"),
        "last-writer-wins by wall clock lost the later write"
    );
}

#[test]
fn vector_clocks_keep_concurrent_writes_as_siblings_until_a_write_with_context() {
    let mut net = Net::new(settings("n=3,r=3,w=3,resolution=vclock"));
    // Two coordinators write without having read: concurrent versions.
    assert_eq!(net.put(0, "k", json!("a")).status(), 200);
    assert_eq!(net.put(1, "k", json!("b")).status(), 200);
    let read = net.get(2, "k");
    let ClientReply::Ok { meta, .. } = &read else {
        panic!("{read:?}")
    };
    let mut siblings = meta["siblings"].as_array().cloned().unwrap();
    siblings.sort_by_key(|v| v.to_string());
    assert_eq!(siblings, vec![json!("a"), json!("b")]);
    // A write that carries the read's context supersedes both.
    let context = Some(meta["context"].clone());
    let reply = net.run(
        3,
        ClientRequest::Put {
            key: "k".into(),
            value: json!("c"),
            context,
            idempotency_key: None,
        },
    );
    assert_eq!(reply.status(), 200);
    let ClientReply::Ok { value, meta } = net.get(4, "k") else {
        panic!()
    };
    assert_eq!(value, json!("c"));
    assert!(meta.get("siblings").is_none(), "{meta}");
}

#[test]
fn sloppy_quorums_write_through_fallbacks_and_hand_off() {
    let mut net = Net::new(settings("n=3,r=1,w=2,sloppy=true"));
    let owners = net.owners("k");
    let coordinator = owners[0];
    net.net.isolate(&[owners[1], owners[2]]);
    assert_eq!(net.put(coordinator, "k", json!(7)).status(), 200);
    let hints = |net: &Net| (0..5).map(|i| net.node(i).hints.len()).sum::<usize>();
    assert!(hints(&net) >= 1, "a fallback holds a hint");
    assert!(!net.node(owners[1]).store.contains_key("k"));
    net.net.heal();
    net.net.wait(1_000);
    for owner in &owners {
        let versions = &net.node(*owner).store["k"];
        assert_eq!(versions[0].value, json!(7), "owner {owner} got the handoff");
    }
    assert_eq!(hints(&net), 0);
    // A fallback's log says the hint went; restarted from it, it holds no hint.
    for id in 0..5 {
        let records = net.net.sim.records(id);
        if records.iter().any(|r| matches!(r, Record::Hint { .. })) {
            assert!(
                matches!(records.last(), Some(Record::HandedOff { key, .. }) if key == "k"),
                "{records:?}"
            );
            let restarted = QuorumNode::new(id, net.settings.clone(), records.to_vec());
            assert!(restarted.hints.is_empty());
        }
    }
}

#[test]
fn read_repair_fixes_stale_replicas() {
    for repair in ["async", "blocking"] {
        let mut net = Net::new(settings(&format!("n=3,r=3,w=1,read-repair={repair}")));
        let owners = net.owners("k");
        net.net.isolate(&[owners[2]]);
        assert_eq!(net.put(owners[0], "k", json!(1)).status(), 200);
        net.net.wait(100);
        net.net.heal();
        assert_eq!(net.put(owners[0], "k2", json!(0)).status(), 200); // clears suspicion
        assert_eq!(value_of(&net.get(owners[1], "k")), json!(1));
        net.net.wait(50);
        assert_eq!(
            net.node(owners[2]).store["k"][0].value,
            json!(1),
            "read-repair={repair}"
        );
    }
}

#[test]
fn abd_reads_write_back() {
    let mut net = Net::new(settings("n=3,r=2,w=2,mode=abd"));
    let owners = net.owners("k");
    net.net.isolate(&[owners[2]]);
    assert_eq!(net.put(owners[0], "k", json!(1)).status(), 200);
    assert_eq!(net.put(owners[1], "k", json!(2)).status(), 200);
    net.net.heal();
    net.net.isolate(&[owners[0]]);
    // owners[2] missed both writes; the read sees owners[1]'s and writes it back.
    assert_eq!(value_of(&net.get(owners[2], "k")), json!(2));
    assert_eq!(net.node(owners[2]).store["k"][0].value, json!(2));
}

#[test]
fn cas_compares_and_writes() {
    let mut net = Net::new(settings("n=3,r=2,w=2"));
    let cas = |expect, value| ClientRequest::Cas {
        key: "k".into(),
        expect,
        value,
        idempotency_key: None,
    };
    assert_eq!(net.run(0, cas(json!(null), json!(1))).status(), 200);
    assert_eq!(net.run(1, cas(json!(5), json!(2))), ClientReply::Mismatch);
    assert_eq!(net.run(2, cas(json!(1), json!(2))).status(), 200);
    assert_eq!(value_of(&net.get(3, "k")), json!(2));
}

#[test]
fn a_restarted_node_recovers_what_it_persisted() {
    let mut net = Net::new(settings("n=3,r=2,w=2"));
    assert_eq!(net.put(0, "k", json!(9)).status(), 200);
    let owner = net.owners("k")[0];
    let records = net.net.sim.records(owner).to_vec();
    let restarted = QuorumNode::new(owner, net.settings.clone(), records);
    assert_eq!(restarted.store["k"][0].value, json!(9));
    // The same through the simulator: killed and restarted, it serves what it persisted.
    net.net.sim.kill(owner);
    net.net.sim.restart(owner);
    assert_eq!(net.node(owner).store["k"][0].value, json!(9));
}

#[test]
fn reordered_and_duplicated_messages_change_nothing() {
    for seed in 1..=5 {
        let mut net = Net::seeded(settings("n=3,r=2,w=2"), seed);
        // Every message sent twice, each copy up to 20 ms late: they reorder.
        net.net.with_faults(crate::faults::Faults {
            duplicate: 1.0,
            jitter_ms: 20,
            ..crate::faults::Faults::default()
        });
        let id = net.net.submit(
            0,
            ClientRequest::Put {
                key: "k".into(),
                value: json!(1),
                context: None,
                idempotency_key: None,
            },
        );
        assert_eq!(net.net.await_reply(id, 1_000).status(), 200, "seed {seed}");
        assert_eq!(value_of(&net.get(1, "k")), json!(1));
        net.net.wait(100);
        assert_eq!(net.net.answers_to(id), 1, "one reply per request");
    }
}

#[test]
fn abd_writes_through_one_coordinator_at_once_take_distinct_tags() {
    let mut net = Net::new(settings("n=3,r=2,w=3,mode=abd"));
    let owners = net.owners("k");
    let put = |value: i64| ClientRequest::Put {
        key: "k".into(),
        value: json!(value),
        context: None,
        idempotency_key: None,
    };
    // Both read the same (no) tag before either writes.
    let a = net.net.submit(owners[0], put(1));
    let b = net.net.submit(owners[0], put(2));
    assert_eq!(net.net.await_reply(a, 2_000).status(), 200);
    assert_eq!(net.net.await_reply(b, 2_000).status(), 200);
    let held: Vec<(u64, Value)> = (owners.iter())
        .map(|&o| {
            let version = &net.node(o).store["k"][0];
            (version.stamp.time, version.value.clone())
        })
        .collect();
    assert!(
        held.windows(2).all(|w| w[0] == w[1]),
        "every replica holds the same last write: {held:?}"
    );
    assert_eq!(held[0].0, 2, "the second write took the next tag: {held:?}");
}

#[test]
fn a_restarted_coordinator_numbers_its_operations_anew() {
    let mut net = Net::new(settings("n=3,r=2,w=2,mode=abd"));
    assert_eq!(net.put(0, "k", json!(1)).status(), 200);
    let before = net.node(0).next_op;
    // Crashed and restarted: answers to its last life's operations may still be on the way.
    net.net.sim.kill(0);
    net.net.sim.restart(0);
    assert_eq!(net.put(0, "k", json!(2)).status(), 200);
    let after = net.node(0).next_op;
    assert!(
        after >> 32 > before >> 32,
        "a new life's operations have ids of their own: {before:#x} then {after:#x}"
    );
    assert_eq!(value_of(&net.get(1, "k")), json!(2));
}
