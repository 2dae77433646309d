//! The quorum system: a Dynamo-style leaderless store (DESIGN §4.1 `quorum`).
//!
//! Any node coordinates any request. A key's replicas are the first N nodes clockwise from it
//! on a consistent-hash [`Ring`]. A write goes to all N and succeeds with W acks; a read asks
//! all N and answers with the newest of the first R replies. Versions are ordered by the
//! coordinator's wall clock (`resolution=lww`) or by vector clocks that keep concurrent writes
//! as siblings (`resolution=vclock`). `mode=abd` runs multi-writer ABD instead, which is
//! linearizable for reads and writes when R + W > N.
//!
//! `cas` is read-compare-write through the coordinator: a quorum read, a comparison, a quorum
//! write. It is **not atomic** — two coordinators can both see the expected value and both
//! write — and the linearizability checker shows it.
//!
//! Failure handling: a coordinator that waits past `timeout-ms` answers 504 if it sent a write
//! (some replicas may hold it) and 503 otherwise. A peer that has not answered for a whole
//! timeout is suspected down; while fewer than R (or W) replicas are up, the coordinator sends
//! nothing and answers 503 at once. Suspected peers are pinged until they answer. With
//! `sloppy=true`, a write whose owners do not ack within a third of the timeout goes to the
//! next nodes on the ring with a hint naming the owner; those nodes hand the write off when
//! the owner answers again.

mod ring;
mod settings;
mod version;

pub use ring::{Ring, position};
pub use settings::{Mode, ReadRepair, Resolution, Settings};
pub use version::{Causality, Merge, Stamp, VClock, Version};

use std::collections::{BTreeMap, HashMap, VecDeque};

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::kv::node_name;
use super::{ClientReply, ClientRequest, Node, NodeId, Now, Output, RequestId};

/// How often hints are offered to their owners and suspected peers are pinged.
const RETRY_MS: u64 = 250;

/// Messages between quorum nodes.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum Message {
    /// A coordinator asks a replica for its versions of `key`.
    Read {
        /// The coordinator's operation.
        op: u64,
        /// The key.
        key: String,
    },
    /// A replica's versions of the key asked for.
    ReadReply {
        /// The coordinator's operation.
        op: u64,
        /// The replica's versions.
        versions: Vec<Version>,
    },
    /// A coordinator asks a replica to store versions (for `hint_for`, on its behalf).
    Write {
        /// The coordinator's operation (0: nobody waits for the ack).
        op: u64,
        /// The key.
        key: String,
        /// The versions to merge.
        versions: Vec<Version>,
        /// The owner this node holds the write for, when it is a sloppy-quorum fallback.
        hint_for: Option<NodeId>,
    },
    /// The replica stored (and persisted) the write.
    WriteAck {
        /// The coordinator's operation.
        op: u64,
    },
    /// A fallback hands a hinted write to its owner.
    Handoff {
        /// The key.
        key: String,
        /// The hinted versions.
        versions: Vec<Version>,
    },
    /// The owner stored the handed-off versions.
    HandoffAck {
        /// The key.
        key: String,
        /// The versions it stored.
        versions: Vec<Version>,
    },
    /// Are you there?
    Ping,
    /// Yes.
    Pong,
}

crate::kinded!(Message {
    Read,
    ReadReply,
    Write,
    WriteAck,
    Handoff,
    HandoffAck,
    Ping,
    Pong
});

/// Durable state: the last record for a key (or a hint) wins on recovery.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum Record {
    /// A key's versions on this replica.
    Store {
        /// The key.
        key: String,
        /// Its versions.
        versions: Vec<Version>,
    },
    /// A hinted write held for `owner`; empty versions: handed off.
    Hint {
        /// The owner.
        owner: NodeId,
        /// The key.
        key: String,
        /// The versions held.
        versions: Vec<Version>,
    },
    /// The vector-clock counter of writes this node coordinated.
    Counter(u64),
}

crate::kinded!(Record {
    Store,
    Hint,
    Counter
});

/// What a client asked, as the coordinator remembers it.
#[derive(Clone, Debug)]
enum Request {
    Get,
    Put { value: Value, context: VClock },
    Cas { expect: Value, value: Value },
}

/// Where a coordinated operation is.
#[derive(Clone, Debug)]
enum Phase {
    /// Waiting for `need` read replies.
    Reading {
        need: usize,
        replies: Vec<(NodeId, Vec<Version>)>,
    },
    /// Waiting for `need` acks of `versions`; then answering `reply`.
    Writing {
        need: usize,
        versions: Vec<Version>,
        asked: Vec<NodeId>,
        acked: Vec<NodeId>,
        /// When to try fallbacks for owners that have not acked (sloppy quorums).
        fallback_at: Option<u64>,
        reply: ClientReply,
    },
}

#[derive(Clone, Debug)]
struct Pending {
    client: RequestId,
    key: String,
    request: Request,
    phase: Phase,
    deadline: u64,
}

/// What this node knows of a peer's liveness.
#[derive(Clone, Copy, Debug, Default)]
struct Liveness {
    /// When it was last heard from.
    heard: u64,
    /// When the oldest request it has not answered since was sent, if any.
    waiting_since: Option<u64>,
}

/// One node of a quorum cluster.
#[derive(Debug)]
pub struct QuorumNode {
    id: NodeId,
    settings: Settings,
    ring: Ring,
    store: HashMap<String, Vec<Version>>,
    hints: BTreeMap<(NodeId, String), Vec<Version>>,
    counter: u64,
    pending: HashMap<u64, Pending>,
    next_op: u64,
    peers: Vec<Liveness>,
    outbox: VecDeque<Output<Message, Record>>,
    local: VecDeque<Message>,
    now: Now,
    next_retry: u64,
}

impl QuorumNode {
    /// Node `id` of a cluster with `settings`, recovered from its persisted `records`.
    pub fn new(id: NodeId, settings: Settings, records: impl IntoIterator<Item = Record>) -> Self {
        let ids: Vec<NodeId> = (0..settings.nodes).collect();
        let mut node = QuorumNode {
            id,
            ring: Ring::new(&ids, settings.vnodes),
            peers: vec![Liveness::default(); settings.nodes as usize],
            settings,
            store: HashMap::new(),
            hints: BTreeMap::new(),
            counter: 0,
            pending: HashMap::new(),
            next_op: 1,
            outbox: VecDeque::new(),
            local: VecDeque::new(),
            now: Now::default(),
            next_retry: 0,
        };
        for record in records {
            match record {
                Record::Store { key, versions } => {
                    node.store.insert(key, versions);
                }
                Record::Hint {
                    owner,
                    key,
                    versions,
                } if versions.is_empty() => {
                    node.hints.remove(&(owner, key));
                }
                Record::Hint {
                    owner,
                    key,
                    versions,
                } => {
                    node.hints.insert((owner, key), versions);
                }
                Record::Counter(c) => node.counter = node.counter.max(c),
            }
        }
        node
    }

    fn merge_rule(&self) -> Merge {
        match (self.settings.mode, self.settings.resolution) {
            (Mode::Dynamo, Resolution::Vclock) => Merge::Siblings,
            _ => Merge::Newest,
        }
    }

    fn send(&mut self, to: NodeId, msg: Message) {
        if to == self.id {
            self.local.push_back(msg);
            return;
        }
        let expects_answer = matches!(
            msg,
            Message::Read { .. } | Message::Write { op: 1.., .. } | Message::Ping
        );
        if expects_answer {
            let peer = &mut self.peers[to as usize];
            peer.waiting_since.get_or_insert(self.now.mono_ms);
        }
        self.outbox.push_back(Output::Send { to, msg });
    }

    fn reply(&mut self, client: RequestId, reply: ClientReply) {
        self.outbox.push_back(Output::Reply { id: client, reply });
    }

    /// Whether `peer` is suspected down: asked something a whole timeout ago, silent since.
    fn suspected(&self, peer: NodeId) -> bool {
        peer != self.id
            && self.peers[peer as usize]
                .waiting_since
                .is_some_and(|since| self.now.mono_ms >= since + self.settings.timeout_ms)
    }

    /// The replicas of `key` to contact: its owners, with fallbacks standing in for suspected
    /// owners when quorums are sloppy. Each entry is (node, the owner it stands in for).
    fn targets(&self, key: &str, sloppy_writes: bool) -> Vec<(NodeId, Option<NodeId>)> {
        let walk = self.ring.walk(key);
        let n = self.settings.n as usize;
        let mut targets: Vec<(NodeId, Option<NodeId>)> = Vec::new();
        let mut fallbacks = walk[n..].iter().filter(|f| !self.suspected(**f));
        for &owner in &walk[..n] {
            if !self.suspected(owner) {
                targets.push((owner, None));
            } else if sloppy_writes && let Some(&f) = fallbacks.next() {
                targets.push((f, Some(owner)));
            }
        }
        targets
    }

    fn start(&mut self, client: RequestId, request: ClientRequest) {
        let (key, request) = match request {
            ClientRequest::Get { key } => (key, Request::Get),
            ClientRequest::Put {
                key,
                value,
                context,
                ..
            } => {
                let context = context
                    .and_then(|c| serde_json::from_value(c).ok())
                    .unwrap_or_default();
                (key, Request::Put { value, context })
            }
            ClientRequest::Cas {
                key, expect, value, ..
            } => (key, Request::Cas { expect, value }),
        };
        let op = self.next_op;
        self.next_op += 1;
        let deadline = self.now.mono_ms + self.settings.timeout_ms;
        let plain_put =
            matches!(request, Request::Put { .. }) && self.settings.mode == Mode::Dynamo;
        if plain_put {
            let Request::Put { value, context } = &request else {
                unreachable!("matched above")
            };
            let version = self.new_version(value.clone(), context.clone(), &[]);
            let pending = Pending {
                client,
                key,
                request,
                phase: Phase::Reading {
                    need: 0,
                    replies: Vec::new(),
                },
                deadline,
            };
            self.start_write(op, pending, vec![version], write_ok());
            return;
        }
        // Everything else starts with a quorum read.
        let targets = self.targets(&key, false);
        let need = self.settings.r as usize;
        if targets.len() < need {
            let up = targets.len();
            self.reply(
                client,
                ClientReply::Unavailable(format!(
                    "only {up} of the {} replicas of this key are reachable; r={need}",
                    self.settings.n
                )),
            );
            return;
        }
        for (node, _) in &targets {
            self.send(
                *node,
                Message::Read {
                    op,
                    key: key.clone(),
                },
            );
        }
        self.pending.insert(
            op,
            Pending {
                client,
                key,
                request,
                phase: Phase::Reading {
                    need,
                    replies: Vec::new(),
                },
                deadline,
            },
        );
    }

    /// A new version of a key written by this coordinator, after having read `read`.
    fn new_version(&mut self, value: Value, context: VClock, read: &[Version]) -> Version {
        match (self.settings.mode, self.settings.resolution) {
            (Mode::Abd, _) => {
                let seq = read.iter().map(|v| v.stamp.time).max().unwrap_or(0) + 1;
                Version {
                    value,
                    stamp: Stamp {
                        time: seq,
                        node: self.id,
                    },
                    clock: VClock::default(),
                }
            }
            (Mode::Dynamo, Resolution::Lww) => Version {
                value,
                stamp: Stamp {
                    time: self.now.wall_ms,
                    node: self.id,
                },
                clock: VClock::default(),
            },
            (Mode::Dynamo, Resolution::Vclock) => {
                let mut clock = read.iter().fold(context, |c, v| c.merge(&v.clock));
                self.counter = self.counter.max(clock.get(self.id)) + 1;
                clock.0.insert(self.id, self.counter);
                self.outbox
                    .push_back(Output::Persist(Record::Counter(self.counter)));
                Version {
                    value,
                    stamp: Stamp {
                        time: self.now.wall_ms,
                        node: self.id,
                    },
                    clock,
                }
            }
        }
    }

    fn start_write(
        &mut self,
        op: u64,
        mut pending: Pending,
        versions: Vec<Version>,
        reply: ClientReply,
    ) {
        let targets = self.targets(&pending.key, self.settings.sloppy);
        let need = self.settings.w as usize;
        if targets.len() < need {
            let up = targets.len();
            let why = format!(
                "only {up} of the {} replicas of this key are reachable; w={need}",
                self.settings.n
            );
            // A write that follows a read phase of ABD or cas has still written nothing.
            self.reply(pending.client, ClientReply::Unavailable(why));
            return;
        }
        let asked: Vec<NodeId> = targets.iter().map(|(n, _)| *n).collect();
        for (node, hint_for) in targets {
            self.send(
                node,
                Message::Write {
                    op,
                    key: pending.key.clone(),
                    versions: versions.clone(),
                    hint_for,
                },
            );
        }
        pending.phase = Phase::Writing {
            need,
            versions,
            asked,
            acked: Vec::new(),
            fallback_at: self
                .settings
                .sloppy
                .then(|| self.now.mono_ms + self.settings.timeout_ms / 3),
            reply,
        };
        self.pending.insert(op, pending);
    }

    /// A read quorum answered: decide what the operation does next.
    fn finish_read(&mut self, op: u64, mut pending: Pending, replies: Vec<(NodeId, Vec<Version>)>) {
        let rule = self.merge_rule();
        let mut merged: Vec<Version> = Vec::new();
        for (_, versions) in &replies {
            rule.merge(&mut merged, versions);
        }
        let request = pending.request.clone();
        match request {
            Request::Get => {
                let reply = read_reply(&merged);
                let stale: Vec<NodeId> = replies
                    .iter()
                    .filter(|(_, v)| rule.merge(&mut v.clone(), &merged))
                    .map(|(n, _)| *n)
                    .collect();
                if merged.is_empty() {
                    self.reply(pending.client, reply);
                } else if self.settings.mode == Mode::Abd {
                    self.start_write(op, pending, merged, reply);
                } else {
                    match self.settings.read_repair {
                        ReadRepair::Off => self.reply(pending.client, reply),
                        ReadRepair::Async => {
                            self.reply(pending.client, reply);
                            for node in stale {
                                self.send(
                                    node,
                                    Message::Write {
                                        op: 0,
                                        key: pending.key.clone(),
                                        versions: merged.clone(),
                                        hint_for: None,
                                    },
                                );
                            }
                        }
                        ReadRepair::Blocking if stale.is_empty() => {
                            self.reply(pending.client, reply)
                        }
                        ReadRepair::Blocking => {
                            for &node in &stale {
                                self.send(
                                    node,
                                    Message::Write {
                                        op,
                                        key: pending.key.clone(),
                                        versions: merged.clone(),
                                        hint_for: None,
                                    },
                                );
                            }
                            pending.phase = Phase::Writing {
                                need: stale.len(),
                                versions: merged,
                                asked: stale,
                                acked: Vec::new(),
                                fallback_at: None,
                                reply,
                            };
                            self.pending.insert(op, pending);
                        }
                    }
                }
            }
            Request::Put { value, context } => {
                let version = self.new_version(value, context, &merged);
                self.start_write(op, pending, vec![version], write_ok());
            }
            Request::Cas { expect, value } => {
                let matches = match merged.as_slice() {
                    [] => expect.is_null(),
                    [only] => only.value == expect,
                    _ => false,
                };
                if !matches {
                    self.reply(pending.client, ClientReply::Mismatch);
                    return;
                }
                let context = merged
                    .iter()
                    .fold(VClock::default(), |c, v| c.merge(&v.clock));
                let version = self.new_version(value, context, &merged);
                self.start_write(op, pending, vec![version], write_ok());
            }
        }
    }

    fn on_message(&mut self, from: NodeId, msg: Message) {
        if from != self.id {
            let peer = &mut self.peers[from as usize];
            peer.heard = self.now.mono_ms;
            peer.waiting_since = None;
        }
        match msg {
            Message::Read { op, key } => {
                let versions = self.store.get(&key).cloned().unwrap_or_default();
                self.send(from, Message::ReadReply { op, versions });
            }
            Message::Write {
                op,
                key,
                versions,
                hint_for,
            } => {
                let rule = self.merge_rule();
                match hint_for {
                    Some(owner) if owner != self.id => {
                        let held = self.hints.entry((owner, key.clone())).or_default();
                        if rule.merge(held, &versions) {
                            let versions = held.clone();
                            self.outbox.push_back(Output::Persist(Record::Hint {
                                owner,
                                key,
                                versions,
                            }));
                        }
                    }
                    _ => self.store_versions(key, &versions),
                }
                if op != 0 {
                    self.send(from, Message::WriteAck { op });
                }
            }
            Message::Handoff { key, versions } => {
                self.store_versions(key.clone(), &versions);
                self.send(from, Message::HandoffAck { key, versions });
            }
            Message::HandoffAck { key, versions } => {
                let hint = (from, key);
                if self.hints.get(&hint) == Some(&versions) {
                    self.hints.remove(&hint);
                    self.outbox.push_back(Output::Persist(Record::Hint {
                        owner: hint.0,
                        key: hint.1,
                        versions: Vec::new(),
                    }));
                }
            }
            Message::ReadReply { op, versions } => {
                let Some(mut pending) = self.pending.remove(&op) else {
                    return; // Late: the operation already finished.
                };
                let Phase::Reading { need, replies } = &mut pending.phase else {
                    self.pending.insert(op, pending);
                    return;
                };
                if !replies.iter().any(|(n, _)| *n == from) {
                    replies.push((from, versions));
                }
                if replies.len() >= *need {
                    let replies = std::mem::take(replies);
                    self.finish_read(op, pending, replies);
                } else {
                    self.pending.insert(op, pending);
                }
            }
            Message::WriteAck { op } => {
                let Some(pending) = self.pending.get_mut(&op) else {
                    return;
                };
                let Phase::Writing { need, acked, .. } = &mut pending.phase else {
                    return;
                };
                if !acked.contains(&from) {
                    acked.push(from);
                }
                if acked.len() >= *need {
                    let pending = self.pending.remove(&op).expect("just looked it up");
                    if let Phase::Writing { reply, .. } = pending.phase {
                        self.reply(pending.client, reply);
                    }
                }
            }
            Message::Ping => self.send(from, Message::Pong),
            Message::Pong => {}
        }
    }

    fn store_versions(&mut self, key: String, versions: &[Version]) {
        let rule = self.merge_rule();
        let current = self.store.entry(key.clone()).or_default();
        if rule.merge(current, versions) {
            let versions = current.clone();
            self.outbox
                .push_back(Output::Persist(Record::Store { key, versions }));
        }
    }

    fn drain_local(&mut self) {
        while let Some(msg) = self.local.pop_front() {
            self.on_message(self.id, msg);
        }
    }

    fn on_tick(&mut self) {
        let now = self.now.mono_ms;
        let expired: Vec<u64> = self
            .pending
            .iter()
            .filter(|(_, p)| now >= p.deadline)
            .map(|(op, _)| *op)
            .collect();
        for op in expired {
            let pending = self.pending.remove(&op).expect("listed above");
            let reply = match &pending.phase {
                Phase::Reading { need, replies } => ClientReply::Unavailable(format!(
                    "{} of the r={need} replies arrived within {} ms; nothing was written",
                    replies.len(),
                    self.settings.timeout_ms
                )),
                Phase::Writing { need, acked, .. } => ClientReply::Timeout(format!(
                    "{} of the {need} acks arrived within {} ms; some replicas may hold the write",
                    acked.len(),
                    self.settings.timeout_ms
                )),
            };
            self.reply(pending.client, reply);
        }
        self.send_fallbacks();
        if now >= self.next_retry {
            self.next_retry = now + RETRY_MS;
            let hints: Vec<(NodeId, String, Vec<Version>)> = self
                .hints
                .iter()
                .map(|((owner, key), v)| (*owner, key.clone(), v.clone()))
                .collect();
            for (owner, key, versions) in hints {
                self.send(owner, Message::Handoff { key, versions });
            }
            for peer in 0..self.settings.nodes {
                if self.suspected(peer) {
                    self.send(peer, Message::Ping);
                }
            }
        }
    }

    /// Sloppy quorums: writes whose owners are slow to ack go to fallbacks too, with hints.
    fn send_fallbacks(&mut self) {
        let now = self.now.mono_ms;
        let due: Vec<u64> = self
            .pending
            .iter()
            .filter(|(_, p)| {
                matches!(p.phase, Phase::Writing { fallback_at: Some(at), .. } if now >= at)
            })
            .map(|(op, _)| *op)
            .collect();
        for op in due {
            let pending = self.pending.get_mut(&op).expect("listed above");
            let Phase::Writing {
                versions,
                asked,
                acked,
                fallback_at,
                ..
            } = &mut pending.phase
            else {
                continue;
            };
            *fallback_at = None;
            let walk = self.ring.walk(&pending.key);
            let n = self.settings.n as usize;
            let silent: Vec<NodeId> = walk[..n]
                .iter()
                .filter(|o| asked.contains(o) && !acked.contains(o))
                .copied()
                .collect();
            let unasked: Vec<NodeId> = walk[n..]
                .iter()
                .filter(|f| !asked.contains(f))
                .copied()
                .collect();
            let mut fallbacks = unasked.into_iter();
            let mut sends = Vec::new();
            for owner in silent {
                if let Some(f) = fallbacks.next() {
                    asked.push(f);
                    sends.push((
                        f,
                        Message::Write {
                            op,
                            key: pending.key.clone(),
                            versions: versions.clone(),
                            hint_for: Some(owner),
                        },
                    ));
                }
            }
            for (to, msg) in sends {
                self.send(to, msg);
            }
        }
    }
}

fn write_ok() -> ClientReply {
    ClientReply::Ok {
        value: Value::Null,
        meta: Value::Null,
    }
}

/// The answer to a read of `versions`: the newest value, with the context to write after it
/// and, under vector clocks, every sibling.
fn read_reply(versions: &[Version]) -> ClientReply {
    let context = versions
        .iter()
        .fold(VClock::default(), |c, v| c.merge(&v.clock));
    let context = if context.0.is_empty() {
        Value::Null
    } else {
        serde_json::to_value(&context).unwrap_or(Value::Null)
    };
    let Some(newest) = versions.iter().max_by_key(|v| v.stamp) else {
        let meta = if context.is_null() {
            Value::Null
        } else {
            json!({ "context": context })
        };
        return ClientReply::NotFound { meta };
    };
    let mut meta = json!({ "version": newest.stamp });
    if !context.is_null() {
        meta["context"] = context;
    }
    if versions.len() > 1 {
        meta["siblings"] = versions.iter().map(|v| v.value.clone()).collect();
    }
    ClientReply::Ok {
        value: newest.value.clone(),
        meta,
    }
}

impl Node for QuorumNode {
    type Message = Message;
    type Record = Record;

    fn handle_client(&mut self, now: Now, id: RequestId, request: ClientRequest) {
        self.now = now;
        self.start(id, request);
        self.drain_local();
    }

    fn handle_peer(&mut self, now: Now, from: NodeId, msg: Message) {
        self.now = now;
        self.on_message(from, msg);
        self.drain_local();
    }

    fn handle_tick(&mut self, now: Now) {
        self.now = now;
        self.on_tick();
        self.drain_local();
    }

    fn poll_output(&mut self) -> Option<Output<Message, Record>> {
        self.outbox.pop_front()
    }

    fn describe_key(&self, key: &str) -> Value {
        let hints: Vec<Value> = self
            .hints
            .iter()
            .filter(|((_, k), _)| k == key)
            .map(|((owner, _), v)| json!({ "owner": node_name(*owner), "versions": v }))
            .collect();
        json!({
            "versions": self.store.get(key).cloned().unwrap_or_default(),
            "hints": hints,
        })
    }

    fn describe(&self) -> Value {
        let suspected: Vec<String> = (0..self.settings.nodes)
            .filter(|&p| self.suspected(p))
            .map(node_name)
            .collect();
        json!({
            "node": node_name(self.id),
            "system": "quorum",
            "settings": self.settings,
            "ring": self.ring.points().iter().map(|(p, n)| json!([p, node_name(*n)])).collect::<Vec<_>>(),
            "keys": self.store.len(),
            "hints": self.hints.len(),
            "pending": self.pending.len(),
            "suspected": suspected,
            "wall_ms": self.now.wall_ms,
        })
    }
}

#[cfg(test)]
mod tests;
