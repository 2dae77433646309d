//! The quorum node driven by an in-test network: no sockets, no clocks. The driver delivers,
//! drops and reorders messages, owns each node's clock, and keeps what each node persisted.

use std::collections::{HashSet, VecDeque};

use serde_json::{Value, json};

use super::*;
use crate::Kinded;
use crate::{ClientReply, ClientRequest, Node, NodeId, Now, Output};

struct Net {
    nodes: Vec<QuorumNode>,
    settings: Settings,
    queue: VecDeque<(NodeId, NodeId, Message)>,
    replies: Vec<(RequestId, ClientReply)>,
    persisted: Vec<Vec<Record>>,
    /// Links (from, to) whose messages are lost.
    cut: HashSet<(NodeId, NodeId)>,
    mono: u64,
    /// Per node: milliseconds added to its wall clock.
    skew: Vec<i64>,
    next_request: RequestId,
}

impl Net {
    fn new(settings: Settings) -> Self {
        let nodes = (0..settings.nodes)
            .map(|id| QuorumNode::new(id, settings.clone(), []))
            .collect();
        Net {
            nodes,
            queue: VecDeque::new(),
            replies: Vec::new(),
            persisted: vec![Vec::new(); settings.nodes as usize],
            cut: HashSet::new(),
            mono: 1_000,
            skew: vec![0; settings.nodes as usize],
            next_request: 1,
            settings,
        }
    }

    fn now(&self, node: NodeId) -> Now {
        Now {
            mono_ms: self.mono,
            wall_ms: (1_700_000_000_000 + self.mono as i64 + self.skew[node as usize]) as u64,
        }
    }

    fn drain(&mut self, node: NodeId) {
        while let Some(out) = self.nodes[node as usize].poll_output() {
            match out {
                Output::Send { to, msg } => {
                    assert_eq!(msg.kind(), crate::serde_variant(&msg));
                    if !self.cut.contains(&(node, to)) {
                        self.queue.push_back((node, to, msg));
                    }
                }
                Output::Reply { id, reply } => self.replies.push((id, reply)),
                Output::Persist(r) => {
                    assert_eq!(r.kind(), crate::serde_variant(&r));
                    self.persisted[node as usize].push(r)
                }
                Output::Note(_) => {}
            }
        }
    }

    /// Delivers until no message is left (bounded).
    fn deliver(&mut self) {
        for _ in 0..10_000 {
            let Some((from, to, msg)) = self.queue.pop_front() else {
                return;
            };
            let now = self.now(to);
            self.nodes[to as usize].handle_peer(now, from, msg);
            self.drain(to);
        }
        panic!("messages never stopped");
    }

    /// Sends a request to `node` and returns its id.
    fn request(&mut self, node: NodeId, request: ClientRequest) -> RequestId {
        let id = self.next_request;
        self.next_request += 1;
        let now = self.now(node);
        self.nodes[node as usize].handle_client(now, id, request);
        self.drain(node);
        id
    }

    /// Lets `ms` pass in steps of 10 ms, ticking and delivering.
    fn wait(&mut self, ms: u64) {
        for _ in 0..ms / 10 {
            self.mono += 10;
            for id in 0..self.nodes.len() as NodeId {
                let now = self.now(id);
                self.nodes[id as usize].handle_tick(now);
                self.drain(id);
            }
            self.deliver();
        }
    }

    fn reply(&self, id: RequestId) -> Option<&ClientReply> {
        self.replies.iter().find(|(r, _)| *r == id).map(|(_, r)| r)
    }

    /// Runs a request to completion (delivering and waiting up to its timeout).
    fn run(&mut self, node: NodeId, request: ClientRequest) -> ClientReply {
        let id = self.request(node, request);
        self.deliver();
        let mut waited = 0;
        while self.reply(id).is_none() {
            assert!(waited <= 2 * self.settings.timeout_ms, "no reply");
            self.wait(10);
            waited += 10;
        }
        self.reply(id).cloned().expect("just checked")
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

    /// Cuts every link between `nodes` and the rest, both ways.
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

    fn owners(&self, key: &str) -> Vec<NodeId> {
        self.nodes[0]
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
    net.isolate(&[owners[1]]);
    assert_eq!(net.put(coordinator, "k", json!(1)).status(), 200);
    net.isolate(&[owners[2]]);
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
    net.isolate(&[owners[0]]);
    assert_eq!(net.put(owners[0], "k", json!(1)).status(), 200);
    // The majority side never saw it.
    assert_eq!(value_of(&net.get(owners[1], "k")), Value::Null);
}

#[test]
fn a_skewed_coordinator_clock_drops_the_later_write() {
    let mut net = Net::new(settings("n=3,r=3,w=3"));
    net.skew[0] = 60_000; // n1 runs a minute fast
    assert_eq!(net.put(0, "k", json!("early")).status(), 200);
    net.wait(100);
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
    net.isolate(&[owners[1], owners[2]]);
    assert_eq!(net.put(coordinator, "k", json!(7)).status(), 200);
    let held: usize = net.nodes.iter().map(|n| n.hints.len()).sum();
    assert!(held >= 1, "a fallback holds a hint");
    assert!(!net.nodes[owners[1] as usize].store.contains_key("k"));
    net.cut.clear();
    net.wait(1_000);
    for owner in &owners {
        let versions = &net.nodes[*owner as usize].store["k"];
        assert_eq!(versions[0].value, json!(7), "owner {owner} got the handoff");
    }
    assert_eq!(net.nodes.iter().map(|n| n.hints.len()).sum::<usize>(), 0);
    // A fallback's log says the hint went; restarted from it, it holds no hint.
    for (id, records) in net.persisted.iter().enumerate() {
        if records.iter().any(|r| matches!(r, Record::Hint { .. })) {
            assert!(
                matches!(records.last(), Some(Record::HandedOff { key, .. }) if key == "k"),
                "{records:?}"
            );
            let restarted = QuorumNode::new(id as NodeId, net.settings.clone(), records.clone());
            assert!(restarted.hints.is_empty());
        }
    }
}

#[test]
fn read_repair_fixes_stale_replicas() {
    for repair in ["async", "blocking"] {
        let mut net = Net::new(settings(&format!("n=3,r=3,w=1,read-repair={repair}")));
        let owners = net.owners("k");
        net.isolate(&[owners[2]]);
        assert_eq!(net.put(owners[0], "k", json!(1)).status(), 200);
        net.wait(100);
        net.cut.clear();
        assert_eq!(net.put(owners[0], "k2", json!(0)).status(), 200); // clears suspicion
        assert_eq!(value_of(&net.get(owners[1], "k")), json!(1));
        net.wait(50);
        assert_eq!(
            net.nodes[owners[2] as usize].store["k"][0].value,
            json!(1),
            "read-repair={repair}"
        );
    }
}

#[test]
fn abd_reads_write_back() {
    let mut net = Net::new(settings("n=3,r=2,w=2,mode=abd"));
    let owners = net.owners("k");
    net.isolate(&[owners[2]]);
    assert_eq!(net.put(owners[0], "k", json!(1)).status(), 200);
    assert_eq!(net.put(owners[1], "k", json!(2)).status(), 200);
    net.cut.clear();
    net.isolate(&[owners[0]]);
    // owners[2] missed both writes; the read sees owners[1]'s and writes it back.
    assert_eq!(value_of(&net.get(owners[2], "k")), json!(2));
    assert_eq!(net.nodes[owners[2] as usize].store["k"][0].value, json!(2));
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
    let records = net.persisted[owner as usize].clone();
    let restarted = QuorumNode::new(owner, net.settings.clone(), records);
    assert_eq!(restarted.store["k"][0].value, json!(9));
}

#[test]
fn reordered_and_duplicated_messages_change_nothing() {
    let mut net = Net::new(settings("n=3,r=2,w=2"));
    let id = net.request(
        0,
        ClientRequest::Put {
            key: "k".into(),
            value: json!(1),
            context: None,
            idempotency_key: None,
        },
    );
    // Deliver in reverse order, each message twice.
    let mut messages: Vec<_> = net.queue.drain(..).collect();
    messages.reverse();
    for m in messages.clone().into_iter().chain(messages) {
        net.queue.push_back(m);
    }
    net.deliver();
    assert_eq!(net.reply(id).map(ClientReply::status), Some(200));
    assert_eq!(value_of(&net.get(1, "k")), json!(1));
    assert_eq!(
        net.replies.iter().filter(|(r, _)| *r == id).count(),
        1,
        "one reply per request"
    );
}
