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
//! Transactions (`POST /txn`) run with no isolation: their micro-operations one after another
//! as ordinary quorum operations ([`txn`]).
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
mod txn;
mod version;

pub use ring::{Ring, position};
pub use settings::{Mode, ReadRepair, Resolution, Settings};
pub use version::{Causality, Merge, Stamp, VClock, Version};

use std::collections::{BTreeMap, VecDeque};

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
    /// A coordinator asks a replica to store versions (for `hint_for`, on its behalf) and to
    /// acknowledge them.
    Write {
        /// The coordinator's operation.
        op: u64,
        /// The key.
        key: String,
        /// The versions to merge.
        versions: Vec<Version>,
        /// The owner this node holds the write for, when it is a sloppy-quorum fallback.
        hint_for: Option<NodeId>,
    },
    /// Asynchronous read repair: store these newer versions; nobody waits for an answer.
    Repair {
        /// The key.
        key: String,
        /// The versions to merge.
        versions: Vec<Version>,
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
    Repair,
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
    /// A hinted write held for `owner`.
    Hint {
        /// The owner.
        owner: NodeId,
        /// The key.
        key: String,
        /// The versions held.
        versions: Vec<Version>,
    },
    /// The hint for `owner`'s `key` was handed off: this node holds it no more.
    HandedOff {
        /// The owner.
        owner: NodeId,
        /// The key.
        key: String,
    },
    /// The vector-clock counter of writes this node coordinated (and ABD's tags).
    Counter(u64),
    /// This node started coordinating in this life (its operations' ids carry it, so that a
    /// late answer to an operation of an earlier life is never taken for a new one's).
    Incarnation(u64),
}

crate::kinded!(Record {
    Store,
    Hint,
    HandedOff,
    Counter,
    Incarnation
});

/// What a client asked, as the coordinator remembers it.
#[derive(Clone, Debug)]
enum Request {
    Get,
    Put { value: Value, context: VClock },
    Cas { expect: Value, value: Value },
}

/// Where a coordinated operation is. Every operation but a plain put starts `Reading`; a
/// put, a cas that matched and ABD's write-back go on `Writing`; a read whose replicas
/// disagree goes `Repairing` under blocking read repair.
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
    /// Waiting for every stale replica (`need` of them) to ack the merged versions; then
    /// answering the read with `reply`.
    Repairing {
        need: usize,
        acked: Vec<NodeId>,
        reply: ClientReply,
    },
}

/// A client's operation as its coordinator holds it.
#[derive(Clone, Debug)]
struct Operation {
    client: RequestId,
    key: String,
    request: Request,
    /// When the client is answered whatever happened.
    deadline: u64,
}

/// One operation this node coordinates: what it is, and where it is.
#[derive(Clone, Debug)]
struct Coordinator {
    operation: Operation,
    phase: Phase,
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
    store: BTreeMap<String, Vec<Version>>,
    hints: BTreeMap<(NodeId, String), Vec<Version>>,
    counter: u64,
    /// The operations this node coordinates, by operation number.
    coordinating: BTreeMap<u64, Coordinator>,
    next_op: u64,
    /// This life's number: one more than the last life that coordinated anything.
    incarnation: u64,
    /// Whether this life's number is persisted (before its first operation's messages).
    incarnation_kept: bool,
    peers: Vec<Liveness>,
    outbox: VecDeque<Output<Message, Record>>,
    /// Transactions in progress, by the id of their current sub-request.
    txns: BTreeMap<RequestId, txn::TxnRun>,
    next_txn_request: RequestId,
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
            store: BTreeMap::new(),
            hints: BTreeMap::new(),
            counter: 0,
            coordinating: BTreeMap::new(),
            next_op: 1,
            incarnation: 1,
            incarnation_kept: false,
            outbox: VecDeque::new(),
            txns: BTreeMap::new(),
            next_txn_request: txn::TXN_BASE,
            local: VecDeque::new(),
            now: Now::default(),
            next_retry: 0,
        };
        for record in records {
            match record {
                Record::Store { key, versions } => {
                    node.store.insert(key, versions);
                }
                Record::HandedOff { owner, key } => {
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
                Record::Incarnation(n) => node.incarnation = node.incarnation.max(n + 1),
            }
        }
        node.next_op = (node.incarnation << 32) | 1;
        node
    }

    /// The id of a new operation this node coordinates; the first of a life persists the
    /// life's number first.
    fn new_op(&mut self) -> u64 {
        if !self.incarnation_kept {
            self.incarnation_kept = true;
            self.outbox
                .push_back(Output::Persist(Record::Incarnation(self.incarnation)));
        }
        let op = self.next_op;
        self.next_op += 1;
        op
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
            Message::Read { .. } | Message::Write { .. } | Message::Ping
        );
        if expects_answer {
            let peer = &mut self.peers[to as usize];
            peer.waiting_since.get_or_insert(self.now.mono_ms);
        }
        self.outbox.push_back(Output::Send { to, msg });
    }

    fn reply(&mut self, client: RequestId, reply: ClientReply) {
        match self.txns.remove(&client) {
            Some(mut run) => {
                let next = run.on_reply(reply);
                self.txn_step(run, next);
            }
            None => self.outbox.push_back(Output::Reply { id: client, reply }),
        }
    }

    /// Starts a transaction's next sub-request, or answers its client.
    fn txn_step(&mut self, run: txn::TxnRun, next: txn::Next) {
        match next {
            txn::Next::Done(reply) => self.reply(run.client, reply),
            txn::Next::Send(request) => {
                let id = self.next_txn_request;
                self.next_txn_request += 1;
                self.txns.insert(id, run);
                self.start(id, request);
            }
        }
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
            ClientRequest::Txn { ops, .. } => {
                let mut run = txn::TxnRun::new(client, ops);
                let next = run.next();
                self.txn_step(run, next);
                return;
            }
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
        let op = self.new_op();
        let operation = Operation {
            client,
            key,
            request,
            deadline: self.now.mono_ms + self.settings.timeout_ms,
        };
        match &operation.request {
            // A plain put needs nothing read first.
            Request::Put { value, context } if self.settings.mode == Mode::Dynamo => {
                let version = self.new_version(value.clone(), context.clone(), &[]);
                self.start_write(op, operation, vec![version], write_ok());
            }
            // Everything else starts with a quorum read.
            _ => self.start_read(op, operation),
        }
    }

    /// Asks every reachable replica of the key for its versions; the read phase needs R.
    fn start_read(&mut self, op: u64, operation: Operation) {
        let targets = self.targets(&operation.key, false);
        let need = self.settings.r as usize;
        if targets.len() < need {
            let up = targets.len();
            self.reply(
                operation.client,
                ClientReply::Unavailable(format!(
                    "only {up} of the {} replicas of this key are reachable; r={need}",
                    self.settings.n
                )),
            );
            return;
        }
        for (node, _) in &targets {
            let key = operation.key.clone();
            self.send(*node, Message::Read { op, key });
        }
        let phase = Phase::Reading {
            need,
            replies: Vec::new(),
        };
        self.coordinating
            .insert(op, Coordinator { operation, phase });
    }

    /// A new version of a key written by this coordinator, after having read `read`.
    fn new_version(&mut self, value: Value, context: VClock, read: &[Version]) -> Version {
        match (self.settings.mode, self.settings.resolution) {
            (Mode::Abd, _) => {
                // The tag: above every tag the read saw, and above every tag this node issued
                // before (two writes it coordinates at once read the same tags; they must not
                // both take the next one). Persisted, so a restart does not reuse one either.
                let seen = read.iter().map(|v| v.stamp.time).max().unwrap_or(0);
                self.counter = self.counter.max(seen) + 1;
                self.outbox
                    .push_back(Output::Persist(Record::Counter(self.counter)));
                Version {
                    value,
                    stamp: Stamp {
                        time: self.counter,
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

    /// Sends `versions` to every reachable replica (fallbacks for suspected owners under
    /// sloppy quorums); the write phase needs W acks, then answers `reply`.
    fn start_write(
        &mut self,
        op: u64,
        operation: Operation,
        versions: Vec<Version>,
        reply: ClientReply,
    ) {
        let targets = self.targets(&operation.key, self.settings.sloppy);
        let need = self.settings.w as usize;
        if targets.len() < need {
            let up = targets.len();
            let why = format!(
                "only {up} of the {} replicas of this key are reachable; w={need}",
                self.settings.n
            );
            // A write that follows a read phase of ABD or cas has still written nothing.
            self.reply(operation.client, ClientReply::Unavailable(why));
            return;
        }
        let asked: Vec<NodeId> = targets.iter().map(|(n, _)| *n).collect();
        for (node, hint_for) in targets {
            self.send(
                node,
                Message::Write {
                    op,
                    key: operation.key.clone(),
                    versions: versions.clone(),
                    hint_for,
                },
            );
        }
        let phase = Phase::Writing {
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
        self.coordinating
            .insert(op, Coordinator { operation, phase });
    }

    /// A read quorum answered: decide what the operation does next.
    fn finish_read(&mut self, op: u64, operation: Operation, replies: Vec<(NodeId, Vec<Version>)>) {
        let rule = self.merge_rule();
        let mut merged: Vec<Version> = Vec::new();
        for (_, versions) in &replies {
            rule.merge(&mut merged, versions);
        }
        match operation.request.clone() {
            Request::Get => {
                let reply = read_reply(&merged);
                let stale: Vec<NodeId> = replies
                    .iter()
                    .filter(|(_, v)| rule.merge(&mut v.clone(), &merged))
                    .map(|(n, _)| *n)
                    .collect();
                if merged.is_empty() {
                    self.reply(operation.client, reply);
                } else if self.settings.mode == Mode::Abd {
                    self.start_write(op, operation, merged, reply);
                } else {
                    match self.settings.read_repair {
                        ReadRepair::Off => self.reply(operation.client, reply),
                        ReadRepair::Async => {
                            self.reply(operation.client, reply);
                            for node in stale {
                                let key = operation.key.clone();
                                let versions = merged.clone();
                                self.send(node, Message::Repair { key, versions });
                            }
                        }
                        ReadRepair::Blocking if stale.is_empty() => {
                            self.reply(operation.client, reply)
                        }
                        ReadRepair::Blocking => {
                            for &node in &stale {
                                self.send(
                                    node,
                                    Message::Write {
                                        op,
                                        key: operation.key.clone(),
                                        versions: merged.clone(),
                                        hint_for: None,
                                    },
                                );
                            }
                            let phase = Phase::Repairing {
                                need: stale.len(),
                                acked: Vec::new(),
                                reply,
                            };
                            self.coordinating
                                .insert(op, Coordinator { operation, phase });
                        }
                    }
                }
            }
            Request::Put { value, context } => {
                let version = self.new_version(value, context, &merged);
                self.start_write(op, operation, vec![version], write_ok());
            }
            Request::Cas { expect, value } => {
                let matches = match merged.as_slice() {
                    [] => expect.is_null(),
                    [only] => only.value == expect,
                    _ => false,
                };
                if !matches {
                    self.reply(operation.client, ClientReply::Mismatch);
                    return;
                }
                let context = merged
                    .iter()
                    .fold(VClock::default(), |c, v| c.merge(&v.clock));
                let version = self.new_version(value, context, &merged);
                self.start_write(op, operation, vec![version], write_ok());
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
                self.send(from, Message::WriteAck { op });
            }
            Message::Repair { key, versions } => self.store_versions(key, &versions),
            Message::Handoff { key, versions } => {
                self.store_versions(key.clone(), &versions);
                self.send(from, Message::HandoffAck { key, versions });
            }
            Message::HandoffAck { key, versions } => {
                let hint = (from, key);
                if self.hints.get(&hint) == Some(&versions) {
                    self.hints.remove(&hint);
                    self.outbox.push_back(Output::Persist(Record::HandedOff {
                        owner: hint.0,
                        key: hint.1,
                    }));
                }
            }
            Message::ReadReply { op, versions } => self.on_read_reply(from, op, versions),
            Message::WriteAck { op } => self.on_ack(from, op),
            Message::Ping => self.send(from, Message::Pong),
            Message::Pong => {}
        }
    }

    /// A replica's versions for operation `op`: with R of them the read phase ends.
    fn on_read_reply(&mut self, from: NodeId, op: u64, versions: Vec<Version>) {
        let Some(Coordinator {
            phase: Phase::Reading { need, replies },
            ..
        }) = self.coordinating.get_mut(&op)
        else {
            return; // Late: the operation already read enough, or finished.
        };
        if !replies.iter().any(|(n, _)| *n == from) {
            replies.push((from, versions));
        }
        if replies.len() >= *need {
            let replies = std::mem::take(replies);
            let coordinator = self.coordinating.remove(&op).expect("just looked it up");
            self.finish_read(op, coordinator.operation, replies);
        }
    }

    /// A replica acknowledged operation `op`'s write or repair: with enough, the client is
    /// answered.
    fn on_ack(&mut self, from: NodeId, op: u64) {
        let Some(coordinator) = self.coordinating.get_mut(&op) else {
            return;
        };
        let (Phase::Writing { need, acked, .. } | Phase::Repairing { need, acked, .. }) =
            &mut coordinator.phase
        else {
            return;
        };
        if !acked.contains(&from) {
            acked.push(from);
        }
        if acked.len() >= *need {
            let coordinator = self.coordinating.remove(&op).expect("just looked it up");
            if let Phase::Writing { reply, .. } | Phase::Repairing { reply, .. } = coordinator.phase
            {
                self.reply(coordinator.operation.client, reply);
            }
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
            .coordinating
            .iter()
            .filter(|(_, c)| now >= c.operation.deadline)
            .map(|(op, _)| *op)
            .collect();
        for op in expired {
            let coordinator = self.coordinating.remove(&op).expect("listed above");
            let timeout_ms = self.settings.timeout_ms;
            let reply = match &coordinator.phase {
                Phase::Reading { need, replies } => ClientReply::Unavailable(format!(
                    "{} of the r={need} replies arrived within {timeout_ms} ms; nothing was written",
                    replies.len(),
                )),
                Phase::Writing { need, acked, .. } => ClientReply::Timeout(format!(
                    "{} of the {need} acks arrived within {timeout_ms} ms; some replicas may hold the write",
                    acked.len(),
                )),
                Phase::Repairing { need, acked, .. } => ClientReply::Timeout(format!(
                    "{} of the {need} stale replicas acked the read repair within {timeout_ms} ms",
                    acked.len(),
                )),
            };
            self.reply(coordinator.operation.client, reply);
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
            .coordinating
            .iter()
            .filter(|(_, c)| {
                matches!(c.phase, Phase::Writing { fallback_at: Some(at), .. } if now >= at)
            })
            .map(|(op, _)| *op)
            .collect();
        for op in due {
            let coordinator = self.coordinating.get_mut(&op).expect("listed above");
            let Phase::Writing {
                versions,
                asked,
                acked,
                fallback_at,
                ..
            } = &mut coordinator.phase
            else {
                continue;
            };
            *fallback_at = None;
            let walk = self.ring.walk(&coordinator.operation.key);
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
                            key: coordinator.operation.key.clone(),
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

    fn poll_timeout(&self) -> Option<u64> {
        let coordinating = self.coordinating.values().flat_map(|c| {
            let fallback = match c.phase {
                Phase::Writing { fallback_at, .. } => fallback_at,
                Phase::Reading { .. } | Phase::Repairing { .. } => None,
            };
            [Some(c.operation.deadline), fallback]
        });
        // Hints are offered and suspected peers pinged every RETRY_MS.
        coordinating.flatten().chain([self.next_retry]).min()
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
            "pending": self.coordinating.len(),
            "suspected": suspected,
            "wall_ms": self.now.wall_ms,
        })
    }
}

#[cfg(test)]
mod tests;
