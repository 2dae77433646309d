//! The Raft system (DESIGN §4.1 `raft`): a replicated key-value store, as the extended Raft
//! paper (Ongaro & Ousterhout) gives it.
//!
//! Randomized election timeouts; RequestVote with the up-to-date check; AppendEntries with the
//! consistency check and a fast back-off hint; only entries of the leader's own term are
//! committed by counting replicas; committed entries are applied to a key-value map in which
//! `cas` is atomic. Term, vote and log are persisted before the node answers. Reads go
//! through ReadIndex: the leader waits until an entry of its term is committed, notes the
//! commit index, confirms with a round of heartbeats that a majority still follows it, and
//! answers once that index is applied. A follower forwards client requests to the leader it
//! knows and relays the answer (504 if none comes in time); with no known leader it answers
//! 503.
//!
//! An `Idempotency-Key` travels in the log entry; the table of first results is built by
//! applying the log, so it is replicated and a client that retries through another node after a
//! leader change gets the first result, applied once.
//!
//! Bug switches ([`Bug`]) plant known bug classes so that the harness can be seen to catch
//! them; all are off by default.

mod settings;

pub use settings::{Bug, Settings};

use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};

use rand::{RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::kv::node_name;
use super::{ClientReply, ClientRequest, Node, NodeId, Now, Output, RequestId};

/// A replicated command.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum Command {
    /// The entry a new leader appends to commit something of its own term.
    Noop,
    /// Set a key.
    Write {
        /// The key.
        key: String,
        /// The value.
        value: Value,
        /// The client's `Idempotency-Key`: a repeat gets the first result, applied once.
        #[serde(default)]
        idempotency_key: Option<String>,
    },
    /// Set a key if it holds `expect`.
    Cas {
        /// The key.
        key: String,
        /// The value it must hold (`null`: absent).
        expect: Value,
        /// The value to set.
        value: Value,
        /// The client's `Idempotency-Key`.
        #[serde(default)]
        idempotency_key: Option<String>,
    },
}

/// A log entry.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Entry {
    /// The term it was created in.
    pub term: u64,
    /// What it does.
    pub command: Command,
}

/// Messages between Raft nodes.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum Message {
    /// RequestVote.
    Vote {
        /// The candidate's term.
        term: u64,
        /// Its last log index.
        last_index: u64,
        /// The term of its last entry.
        last_term: u64,
    },
    /// Pre-vote (`pre-vote=true`): would you vote for me in `term`? Nobody changes state.
    PreVote {
        /// The term the asker would stand in (its own plus one).
        term: u64,
        /// Its last log index.
        last_index: u64,
        /// The term of its last entry.
        last_term: u64,
    },
    /// The answer to a pre-vote.
    PreVoteReply {
        /// The term asked about if granted, else the voter's own term.
        term: u64,
        /// Whether the vote would be granted.
        granted: bool,
    },
    /// A RequestVote granted. (Granted and refused votes are two kinds of message, so that a
    /// crash point can strike right after a vote is given: `send:VoteGranted`.)
    VoteGranted {
        /// The voter's term.
        term: u64,
    },
    /// A RequestVote refused.
    VoteRefused {
        /// The voter's term.
        term: u64,
    },
    /// AppendEntries (a heartbeat when `entries` is empty).
    Append(AppendEntries),
    /// A follower hands a client's request to the leader.
    Forward {
        /// The follower's handle on it.
        id: u64,
        /// The request.
        request: ClientRequest,
    },
    /// The leader's answer to a forwarded request.
    ForwardReply {
        /// The follower's handle.
        id: u64,
        /// The answer.
        reply: ClientReply,
    },
    /// The answer to an AppendEntries.
    AppendReply {
        /// The follower's term.
        term: u64,
        /// Whether the entries matched and were stored.
        success: bool,
        /// On success the last index now matching; on failure where to back off to.
        index: u64,
        /// The round echoed.
        round: u64,
    },
}

crate::kinded!(Message {
    Vote,
    PreVote,
    PreVoteReply,
    VoteGranted,
    VoteRefused,
    Append,
    Forward,
    ForwardReply,
    AppendReply
});

/// An AppendEntries request.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct AppendEntries {
    /// The leader's term.
    pub term: u64,
    /// The index before the first entry.
    pub prev_index: u64,
    /// The term of that entry.
    pub prev_term: u64,
    /// The entries.
    pub entries: Vec<Entry>,
    /// The leader's commit index.
    pub commit: u64,
    /// The leader's heartbeat round, echoed back (ReadIndex).
    pub round: u64,
}

/// Durable state.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum Record {
    /// The current term and vote.
    Meta {
        /// The term.
        term: u64,
        /// Who this node voted for in it.
        voted_for: Option<NodeId>,
    },
    /// The log from index `from` on is replaced by `entries`.
    Entries {
        /// The first index replaced.
        from: u64,
        /// The entries from there.
        entries: Vec<Entry>,
    },
}

crate::kinded!(Record { Meta, Entries });

#[derive(Clone, Debug)]
enum Role {
    Follower,
    /// Asking for pre-votes before standing (`pre-vote=true`).
    PreCandidate(Canvass),
    Candidate(Canvass),
    Leader(Leader),
}

/// A (pre-)candidate's election: who granted, who answered at all, and when the peers that
/// did not answer are asked again (the paper: servers retry RPCs that get no response).
#[derive(Clone, Debug)]
struct Canvass {
    votes: BTreeSet<NodeId>,
    answered: BTreeSet<NodeId>,
    retry_due: u64,
}

impl Canvass {
    fn new(id: NodeId, now_ms: u64, heartbeat_ms: u64) -> Self {
        Canvass {
            votes: BTreeSet::from([id]),
            answered: BTreeSet::from([id]),
            retry_due: now_ms + heartbeat_ms,
        }
    }

    /// Notes `from`'s answer.
    fn count(&mut self, from: NodeId, granted: bool) {
        self.answered.insert(from);
        if granted {
            self.votes.insert(from);
        }
    }
}

#[derive(Clone, Debug)]
struct Leader {
    next: Vec<u64>,
    matched: Vec<u64>,
    heartbeat_due: u64,
    /// The latest heartbeat round sent, and the latest round each follower echoed.
    round: u64,
    echoed: Vec<u64>,
    /// The index of this leader's first entry (its no-op).
    first_index: u64,
}

#[derive(Clone, Debug)]
struct PendingRead {
    client: RequestId,
    key: String,
    /// The round that must be echoed by a majority.
    round: u64,
    /// The commit index to wait for; `None` until an entry of this term is committed.
    index: Option<u64>,
    deadline: u64,
}

/// Entries sent in one AppendEntries at most.
const BATCH: usize = 64;

/// One node of a Raft cluster.
#[derive(Debug)]
pub struct RaftNode {
    id: NodeId,
    settings: Settings,
    term: u64,
    voted_for: Option<NodeId>,
    log: Vec<Entry>,
    commit: u64,
    applied: u64,
    role: Role,
    leader: Option<NodeId>,
    /// When this node last heard from the leader of its term (leader stickiness).
    heard_leader_ms: Option<u64>,
    election_deadline: u64,
    rng: ChaCha8Rng,
    kv: BTreeMap<String, Value>,
    /// The first result of every idempotency key applied: replicated state, since it is
    /// computed from the log.
    dedup: HashMap<String, ClientReply>,
    /// Client writes waiting for their entry to apply: index → (client, term of the entry).
    waiting: HashMap<u64, (RequestId, u64, u64)>,
    reads: Vec<PendingRead>,
    /// Requests this leader runs for followers: its own handle → (follower, their handle).
    remote: HashMap<RequestId, (NodeId, u64)>,
    next_remote: RequestId,
    /// Requests this follower forwarded: handle → (client, deadline).
    forwarded: HashMap<u64, (RequestId, u64)>,
    outbox: VecDeque<Output<Message, Record>>,
    now: Now,
}

/// Handles of forwarded requests live above this, apart from the runtime's request ids.
const REMOTE_BASE: RequestId = 1 << 62;

impl RaftNode {
    /// Node `id` with `settings`, recovered from its `records`; `seed` drives its election
    /// timeouts.
    pub fn new(
        id: NodeId,
        settings: Settings,
        seed: u64,
        records: impl IntoIterator<Item = Record>,
    ) -> Self {
        let mut node = RaftNode {
            id,
            term: 0,
            voted_for: None,
            log: Vec::new(),
            commit: 0,
            applied: 0,
            role: Role::Follower,
            leader: None,
            heard_leader_ms: None,
            election_deadline: 0,
            rng: ChaCha8Rng::seed_from_u64(seed ^ (u64::from(id) << 32)),
            kv: BTreeMap::new(),
            dedup: HashMap::new(),
            waiting: HashMap::new(),
            reads: Vec::new(),
            remote: HashMap::new(),
            next_remote: REMOTE_BASE,
            forwarded: HashMap::new(),
            outbox: VecDeque::new(),
            now: Now::default(),
            settings,
        };
        for record in records {
            match record {
                Record::Meta { term, voted_for } => {
                    node.term = term;
                    node.voted_for = voted_for;
                }
                Record::Entries { from, entries } => {
                    node.log.truncate(from.saturating_sub(1) as usize);
                    node.log.extend(entries);
                }
            }
        }
        node
    }

    fn bug(&self, bug: Bug) -> bool {
        self.settings.bug == Some(bug)
    }

    fn majority(&self) -> usize {
        self.settings.nodes as usize / 2 + 1
    }

    fn last_index(&self) -> u64 {
        self.log.len() as u64
    }

    fn term_at(&self, index: u64) -> u64 {
        if index == 0 {
            0
        } else {
            self.log.get(index as usize - 1).map_or(0, |e| e.term)
        }
    }

    fn reset_election(&mut self) {
        let e = self.settings.election_ms;
        self.election_deadline = self.now.mono_ms + e + self.rng.random_range(0..e);
    }

    fn persist_meta(&mut self) {
        let voted_for = if self.bug(Bug::ForgetVote) {
            None
        } else {
            self.voted_for
        };
        self.outbox.push_back(Output::Persist(Record::Meta {
            term: self.term,
            voted_for,
        }));
    }

    fn send(&mut self, to: NodeId, msg: Message) {
        self.outbox.push_back(Output::Send { to, msg });
    }

    /// Answers a client: the runtime's, or a follower's that forwarded it here.
    fn reply(&mut self, client: RequestId, reply: ClientReply) {
        match self.remote.remove(&client) {
            Some((follower, id)) => self.send(follower, Message::ForwardReply { id, reply }),
            None => self.outbox.push_back(Output::Reply { id: client, reply }),
        }
    }

    fn others(&self) -> Vec<NodeId> {
        (0..self.settings.nodes).filter(|&n| n != self.id).collect()
    }

    /// Steps down to follower in `term` (a newer term, or a leader of this one appeared).
    fn become_follower(&mut self, term: u64, leader: Option<NodeId>) {
        if term > self.term {
            self.term = term;
            self.voted_for = None;
            self.persist_meta();
        }
        if matches!(self.role, Role::Leader(_)) {
            self.abandon_clients("leadership lost; the write may or may not be applied");
        }
        self.role = Role::Follower;
        self.leader = leader;
        self.reset_election();
    }

    /// Answers every waiting client of a leader that stops leading.
    fn abandon_clients(&mut self, why: &str) {
        let waiting: Vec<RequestId> = self.waiting.drain().map(|(_, (c, _, _))| c).collect();
        for client in waiting {
            self.reply(client, ClientReply::Timeout(why.to_string()));
        }
        let reads: Vec<RequestId> = self.reads.drain(..).map(|r| r.client).collect();
        for client in reads {
            self.reply(
                client,
                ClientReply::Unavailable("leadership lost before the read".into()),
            );
        }
    }

    /// Whether this node believes a leader exists: it leads, or heard from the leader within
    /// the shortest election timeout. With `pre-vote=true` such a node grants no (pre-)votes
    /// (leader stickiness, section 6 of the paper), so a node that was cut off cannot depose a
    /// working leader when it comes back.
    fn leader_is_alive(&self) -> bool {
        if !self.settings.pre_vote {
            return false;
        }
        matches!(self.role, Role::Leader(_))
            || self
                .heard_leader_ms
                .is_some_and(|at| self.now.mono_ms < at + self.settings.election_ms)
    }

    /// Asks for pre-votes: the node stands only if a majority would vote for it, so a node
    /// that cannot win does not raise everyone's term.
    fn start_pre_vote(&mut self) {
        self.leader = None;
        self.role = Role::PreCandidate(self.new_canvass());
        self.reset_election();
        self.request_votes(self.term + 1, true, &self.others());
        self.maybe_stand();
    }

    /// Asks `peers` for their vote (or pre-vote) in `term`, with this node's last log
    /// position.
    fn request_votes(&mut self, term: u64, pre: bool, peers: &[NodeId]) {
        let (last_index, last_term) = (self.last_index(), self.term_at(self.last_index()));
        for &peer in peers {
            let msg = if pre {
                Message::PreVote {
                    term,
                    last_index,
                    last_term,
                }
            } else {
                Message::Vote {
                    term,
                    last_index,
                    last_term,
                }
            };
            self.send(peer, msg);
        }
    }

    /// A canvass that starts now, with this node's own vote.
    fn new_canvass(&self) -> Canvass {
        Canvass::new(self.id, self.now.mono_ms, self.settings.heartbeat_ms)
    }

    /// Asks again the peers that have not answered this (pre-)election, every heartbeat
    /// interval: a request lost to a partition or a peer's restart is not the end of it.
    fn retry_vote_requests(&mut self) {
        let (pre, canvass) = match &mut self.role {
            Role::PreCandidate(canvass) => (true, canvass),
            Role::Candidate(canvass) => (false, canvass),
            _ => return,
        };
        if self.now.mono_ms < canvass.retry_due {
            return;
        }
        canvass.retry_due = self.now.mono_ms + self.settings.heartbeat_ms;
        let silent: Vec<NodeId> = (0..self.settings.nodes)
            .filter(|n| !canvass.answered.contains(n))
            .collect();
        let term = if pre { self.term + 1 } else { self.term };
        self.request_votes(term, pre, &silent);
    }

    fn maybe_stand(&mut self) {
        if let Role::PreCandidate(canvass) = &self.role {
            if canvass.votes.len() >= self.majority() {
                self.start_election();
            }
        }
    }

    /// Whether a candidate whose log ends at (`last_term`, `last_index`) is at least as
    /// up to date as this node.
    fn up_to_date(&self, last_term: u64, last_index: u64) -> bool {
        (last_term, last_index) >= (self.term_at(self.last_index()), self.last_index())
    }

    fn start_election(&mut self) {
        self.term += 1;
        self.voted_for = Some(self.id);
        self.persist_meta();
        self.leader = None;
        self.role = Role::Candidate(self.new_canvass());
        self.reset_election();
        self.request_votes(self.term, false, &self.others());
        self.maybe_win();
    }

    fn maybe_win(&mut self) {
        let Role::Candidate(canvass) = &self.role else {
            return;
        };
        if canvass.votes.len() < self.majority() {
            return;
        }
        let n = self.settings.nodes as usize;
        // A no-op of the new term, so that the older entries commit with it (the fix for
        // Figure 8 of the paper). The no-term-check bug goes without, as such code does.
        if !self.bug(Bug::NoTermCheck) {
            self.log.push(Entry {
                term: self.term,
                command: Command::Noop,
            });
            let index = self.last_index();
            self.outbox.push_back(Output::Persist(Record::Entries {
                from: index,
                entries: vec![self.log[index as usize - 1].clone()],
            }));
        }
        let first_index = self.last_index();
        let mut matched = vec![0; n];
        matched[self.id as usize] = first_index;
        self.role = Role::Leader(Leader {
            next: vec![first_index; n],
            matched,
            heartbeat_due: 0,
            round: 0,
            echoed: vec![0; n],
            first_index,
        });
        self.leader = Some(self.id);
        self.outbox
            .push_back(Output::Note(json!({ "led": self.term })));
        self.broadcast();
        self.advance_commit();
    }

    /// Sends every follower what it is missing (a heartbeat if nothing), in a new round.
    fn broadcast(&mut self) {
        let Role::Leader(leader) = &mut self.role else {
            return;
        };
        leader.round += 1;
        leader.heartbeat_due = self.now.mono_ms + self.settings.heartbeat_ms;
        for peer in self.others() {
            self.send_append(peer);
        }
    }

    fn send_append(&mut self, peer: NodeId) {
        let Role::Leader(leader) = &self.role else {
            return;
        };
        let next = leader.next[peer as usize].max(1);
        let prev_index = next - 1;
        let entries: Vec<Entry> = self
            .log
            .iter()
            .skip(prev_index as usize)
            .take(BATCH)
            .cloned()
            .collect();
        let msg = Message::Append(AppendEntries {
            term: self.term,
            prev_index,
            prev_term: self.term_at(prev_index),
            entries,
            commit: self.commit,
            round: leader.round,
        });
        self.send(peer, msg);
    }

    /// Moves the commit index to the highest index a majority holds, of the current term
    /// (unless a bug says otherwise).
    fn advance_commit(&mut self) {
        let Role::Leader(leader) = &self.role else {
            return;
        };
        if self.bug(Bug::EarlyCommit) {
            self.commit = self.last_index();
        } else {
            let mut matched = leader.matched.clone();
            matched.sort_unstable_by(|a, b| b.cmp(a));
            let majority_index = matched[self.majority() - 1];
            let own_term = self.term_at(majority_index) == self.term;
            if majority_index > self.commit && (own_term || self.bug(Bug::NoTermCheck)) {
                self.commit = majority_index;
            }
        }
        self.apply();
    }

    fn apply(&mut self) {
        while self.applied < self.commit && self.applied < self.last_index() {
            self.applied += 1;
            let entry = self.log[self.applied as usize - 1].clone();
            self.outbox.push_back(Output::Note(json!({
                "applied": self.applied,
                "term": entry.term,
                "command": entry.command,
            })));
            let result = match entry.command {
                Command::Noop => None,
                Command::Write {
                    key,
                    value,
                    idempotency_key,
                } => Some(self.once(idempotency_key, |kv| {
                    kv.insert(key, value);
                    ClientReply::Ok {
                        value: Value::Null,
                        meta: Value::Null,
                    }
                })),
                Command::Cas {
                    key,
                    expect,
                    value,
                    idempotency_key,
                } => Some(self.once(idempotency_key, |kv| {
                    let current = kv.get(&key).cloned().unwrap_or(Value::Null);
                    if current == expect {
                        kv.insert(key, value);
                        ClientReply::Ok {
                            value: Value::Null,
                            meta: Value::Null,
                        }
                    } else {
                        ClientReply::Mismatch
                    }
                })),
            };
            if let Some((client, term, _)) = self.waiting.remove(&self.applied) {
                if term == entry.term {
                    let reply = result.unwrap_or(ClientReply::Timeout("superseded".into()));
                    self.reply(client, reply);
                } else {
                    self.reply(
                        client,
                        ClientReply::Timeout("the entry was replaced by another leader's".into()),
                    );
                }
            }
        }
        self.serve_reads();
    }

    /// Applies a command once per idempotency key; a repeat gets the first result.
    fn once(
        &mut self,
        key: Option<String>,
        apply: impl FnOnce(&mut BTreeMap<String, Value>) -> ClientReply,
    ) -> ClientReply {
        if let Some(first) = key.as_ref().and_then(|k| self.dedup.get(k)) {
            return first.clone();
        }
        let result = apply(&mut self.kv);
        if let Some(key) = key {
            self.dedup.insert(key, result.clone());
        }
        result
    }

    fn read_value(&self, key: &str) -> ClientReply {
        match self.kv.get(key) {
            Some(v) => ClientReply::Ok {
                value: v.clone(),
                meta: json!({ "node": node_name(self.id), "index": self.applied }),
            },
            None => ClientReply::NotFound { meta: Value::Null },
        }
    }

    /// Answers the reads whose round a majority echoed and whose index is applied.
    fn serve_reads(&mut self) {
        let Role::Leader(leader) = &self.role else {
            return;
        };
        let mut echoed = leader.echoed.clone();
        echoed[self.id as usize] = u64::MAX;
        let own_committed = self.commit >= leader.first_index;
        let majority = self.majority();
        let mut ready = Vec::new();
        let mut keep = Vec::new();
        for mut read in std::mem::take(&mut self.reads) {
            if read.index.is_none() && own_committed {
                read.index = Some(self.commit);
            }
            let confirmed = echoed.iter().filter(|&&r| r >= read.round).count() >= majority;
            match read.index {
                Some(index) if confirmed && self.applied >= index => ready.push(read),
                _ => keep.push(read),
            }
        }
        self.reads = keep;
        for read in ready {
            let reply = self.read_value(&read.key);
            self.reply(read.client, reply);
        }
    }

    fn on_client(&mut self, client: RequestId, request: ClientRequest) {
        if let ClientRequest::Get { key } = &request {
            if self.bug(Bug::StaleRead) {
                let reply = self.read_value(key);
                self.reply(client, reply);
                return;
            }
        }
        if !matches!(self.role, Role::Leader(_)) {
            match self.leader {
                // Forward to the leader; its answer comes back as a ForwardReply.
                Some(leader) if client < REMOTE_BASE => {
                    let id = client;
                    let deadline = self.now.mono_ms + self.settings.timeout_ms;
                    self.forwarded.insert(id, (client, deadline));
                    self.send(leader, Message::Forward { id, request });
                }
                Some(leader) => {
                    let why = format!("not the leader; {} leads", node_name(leader));
                    self.reply(client, ClientReply::Unavailable(why));
                }
                None => {
                    let why = "no leader is known; try again shortly".to_string();
                    self.reply(client, ClientReply::Unavailable(why));
                }
            }
            return;
        }
        let deadline = self.now.mono_ms + self.settings.timeout_ms;
        let command = match request {
            ClientRequest::Get { key } => {
                if self.bug(Bug::NoReadIndex) {
                    let reply = self.read_value(&key);
                    self.reply(client, reply);
                    return;
                }
                let Role::Leader(leader) = &self.role else {
                    unreachable!("checked above")
                };
                // Confirm leadership with the next round of heartbeats.
                let round = leader.round + 1;
                self.reads.push(PendingRead {
                    client,
                    key,
                    round,
                    index: None,
                    deadline,
                });
                self.broadcast();
                self.serve_reads();
                return;
            }
            ClientRequest::Put {
                key,
                value,
                idempotency_key,
                ..
            } => Command::Write {
                key,
                value,
                idempotency_key,
            },
            ClientRequest::Cas {
                key,
                expect,
                value,
                idempotency_key,
            } => Command::Cas {
                key,
                expect,
                value,
                idempotency_key,
            },
        };
        self.log.push(Entry {
            term: self.term,
            command,
        });
        let index = self.last_index();
        self.outbox.push_back(Output::Persist(Record::Entries {
            from: index,
            entries: vec![self.log[index as usize - 1].clone()],
        }));
        self.waiting.insert(index, (client, self.term, deadline));
        if let Role::Leader(leader) = &mut self.role {
            leader.matched[self.id as usize] = index;
        }
        self.broadcast();
        self.advance_commit();
    }

    fn on_message(&mut self, from: NodeId, msg: Message) {
        match msg {
            Message::PreVote {
                term,
                last_index,
                last_term,
            } => {
                let granted = term > self.term
                    && self.up_to_date(last_term, last_index)
                    && !self.leader_is_alive();
                let term = if granted { term } else { self.term };
                self.send(from, Message::PreVoteReply { term, granted });
            }
            Message::PreVoteReply { term, granted } => {
                if term > self.term && !granted {
                    self.become_follower(term, None);
                    return;
                }
                // A refusal carries the voter's own term, a grant the term asked about.
                if !granted || term == self.term + 1 {
                    if let Role::PreCandidate(canvass) = &mut self.role {
                        canvass.count(from, granted);
                    }
                    self.maybe_stand();
                }
            }
            Message::Vote {
                term,
                last_index,
                last_term,
            } => {
                if term > self.term && self.leader_is_alive() {
                    // Leader stickiness: neither the term nor the vote changes.
                    self.send(from, Message::VoteRefused { term: self.term });
                    return;
                }
                if term > self.term {
                    self.become_follower(term, None);
                }
                let granted = term == self.term
                    && self.up_to_date(last_term, last_index)
                    && self.voted_for.is_none_or(|v| v == from);
                if granted {
                    self.voted_for = Some(from);
                    self.persist_meta();
                    self.reset_election();
                }
                let term = self.term;
                let reply = if granted {
                    Message::VoteGranted { term }
                } else {
                    Message::VoteRefused { term }
                };
                self.send(from, reply);
            }
            Message::Forward { id, request } => {
                let handle = self.next_remote;
                self.next_remote += 1;
                self.remote.insert(handle, (from, id));
                self.on_client(handle, request);
            }
            Message::ForwardReply { id, reply } => {
                if let Some((client, _)) = self.forwarded.remove(&id) {
                    self.outbox.push_back(Output::Reply { id: client, reply });
                }
            }
            Message::VoteGranted { term } | Message::VoteRefused { term } => {
                let granted = matches!(msg, Message::VoteGranted { .. });
                if term > self.term {
                    self.become_follower(term, None);
                    return;
                }
                if term == self.term {
                    if let Role::Candidate(canvass) = &mut self.role {
                        canvass.count(from, granted);
                    }
                    self.maybe_win();
                }
            }
            Message::Append(append) => self.on_append(from, append),
            Message::AppendReply {
                term,
                success,
                index,
                round,
            } => {
                if term > self.term {
                    self.become_follower(term, None);
                    return;
                }
                let Role::Leader(leader) = &mut self.role else {
                    return;
                };
                if term < self.term {
                    return;
                }
                let f = from as usize;
                leader.echoed[f] = leader.echoed[f].max(round);
                if success {
                    leader.matched[f] = leader.matched[f].max(index);
                    leader.next[f] = leader.matched[f] + 1;
                    let behind = leader.next[f] <= self.log.len() as u64;
                    self.advance_commit();
                    if behind {
                        self.send_append(from);
                    }
                } else {
                    leader.next[f] = (index + 1).min(leader.next[f].saturating_sub(1)).max(1);
                    self.send_append(from);
                }
                self.serve_reads();
            }
        }
    }

    fn on_append(&mut self, from: NodeId, append: AppendEntries) {
        let AppendEntries {
            term,
            prev_index,
            prev_term,
            entries,
            commit,
            round,
        } = append;
        if term < self.term {
            let reply = Message::AppendReply {
                term: self.term,
                success: false,
                index: self.last_index(),
                round,
            };
            self.send(from, reply);
            return;
        }
        if term > self.term || !matches!(self.role, Role::Follower) || self.leader != Some(from) {
            self.become_follower(term, Some(from));
        }
        self.heard_leader_ms = Some(self.now.mono_ms);
        self.reset_election();
        if prev_index > self.last_index() || self.term_at(prev_index) != prev_term {
            // Back off past the whole conflicting term at once.
            let hint = if prev_index > self.last_index() {
                self.last_index()
            } else {
                let conflict = self.term_at(prev_index);
                let mut i = prev_index;
                while i > 0 && self.term_at(i) == conflict {
                    i -= 1;
                }
                i
            };
            self.send(
                from,
                Message::AppendReply {
                    term: self.term,
                    success: false,
                    index: hint,
                    round,
                },
            );
            return;
        }
        let count = entries.len() as u64;
        let mut changed_from = None;
        for (i, entry) in entries.into_iter().enumerate() {
            let index = prev_index + 1 + i as u64;
            if index <= self.last_index() {
                if self.term_at(index) == entry.term {
                    continue;
                }
                self.log.truncate(index as usize - 1);
            }
            changed_from.get_or_insert(index);
            self.log.push(entry);
        }
        if let Some(from_index) = changed_from {
            let entries = self.log[from_index as usize - 1..].to_vec();
            self.outbox.push_back(Output::Persist(Record::Entries {
                from: from_index,
                entries,
            }));
        }
        let last_new = prev_index + count;
        if commit > self.commit {
            self.commit = commit.min(last_new);
        }
        self.apply();
        self.send(
            from,
            Message::AppendReply {
                term: self.term,
                success: true,
                index: last_new,
                round,
            },
        );
    }

    fn on_tick(&mut self) {
        let now = self.now.mono_ms;
        match &self.role {
            Role::Leader(leader) => {
                if now >= leader.heartbeat_due {
                    self.broadcast();
                }
            }
            _ => {
                if now >= self.election_deadline {
                    if self.settings.pre_vote {
                        self.start_pre_vote();
                    } else {
                        self.start_election();
                    }
                } else {
                    self.retry_vote_requests();
                }
            }
        }
        let expired: Vec<u64> = self
            .waiting
            .iter()
            .filter(|(_, (_, _, deadline))| now >= *deadline)
            .map(|(i, _)| *i)
            .collect();
        for index in expired {
            let (client, _, _) = self.waiting.remove(&index).expect("listed above");
            self.reply(
                client,
                ClientReply::Timeout("not committed in time; it may still be applied".into()),
            );
        }
        let lost: Vec<u64> = self
            .forwarded
            .iter()
            .filter(|(_, (_, deadline))| now >= *deadline)
            .map(|(id, _)| *id)
            .collect();
        for id in lost {
            let (client, _) = self.forwarded.remove(&id).expect("listed above");
            self.outbox.push_back(Output::Reply {
                id: client,
                reply: ClientReply::Timeout("the leader did not answer in time".into()),
            });
        }
        let (late, keep): (Vec<PendingRead>, Vec<PendingRead>) = std::mem::take(&mut self.reads)
            .into_iter()
            .partition(|r| now >= r.deadline);
        self.reads = keep;
        for read in late {
            self.reply(
                read.client,
                ClientReply::Unavailable("leadership not confirmed in time".into()),
            );
        }
    }

    /// Takes the time; the first time a node (new or restarted) sees the clock, its election
    /// timeout starts, whatever event brought it.
    fn advance_clock(&mut self, now: Now) {
        let first = self.now == Now::default();
        self.now = now;
        if first {
            self.reset_election();
        }
    }

    /// Who this node thinks leads (for the `leader` partition shape and `/admin/state`).
    pub fn leader(&self) -> Option<NodeId> {
        self.leader
    }
}

impl Node for RaftNode {
    type Message = Message;
    type Record = Record;

    fn handle_client(&mut self, now: Now, id: RequestId, request: ClientRequest) {
        self.advance_clock(now);
        self.on_client(id, request);
    }

    fn handle_peer(&mut self, now: Now, from: NodeId, msg: Message) {
        self.advance_clock(now);
        self.on_message(from, msg);
    }

    fn handle_tick(&mut self, now: Now) {
        self.advance_clock(now);
        self.on_tick();
    }

    fn poll_output(&mut self) -> Option<Output<Message, Record>> {
        self.outbox.pop_front()
    }

    fn describe(&self) -> Value {
        let role = match self.role {
            Role::Follower => "follower",
            Role::PreCandidate(_) => "pre-candidate",
            Role::Candidate(_) => "candidate",
            Role::Leader(_) => "leader",
        };
        json!({
            "node": node_name(self.id),
            "system": "raft",
            "settings": self.settings,
            "role": role,
            "term": self.term,
            "leader": self.leader.map(node_name),
            "log": self.last_index(),
            "commit": self.commit,
            "applied": self.applied,
            "keys": self.kv.len(),
        })
    }

    fn describe_key(&self, key: &str) -> Value {
        json!({ "value": self.kv.get(key) })
    }
}

#[cfg(test)]
mod sim;
#[cfg(test)]
mod tests;
