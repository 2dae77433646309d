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
//!
//! The node is split along its concerns: [`messages`] (what nodes say and keep), `election`
//! (roles, votes, stepping down), `replication` (AppendEntries, the commit rule, applying),
//! `store` (the key-value state machine and its dedup table), `clients` (forwarding,
//! ReadIndex, deadlines) and `timers` (the timer table the runtime sleeps on through
//! [`Node::poll_timeout`]).

mod clients;
mod election;
mod messages;
mod replication;
mod settings;
mod store;
mod timers;

pub use messages::{AppendEntries, Command, Entry, Message, Record};
pub use settings::{Bug, Settings};

use std::collections::{BTreeMap, VecDeque};

use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use serde_json::{Value, json};

use super::kv::node_name;
use super::{ClientRequest, Node, NodeId, Now, Output, RequestId};
use clients::{PendingRead, REMOTE_BASE};
use election::Role;
use store::KvStore;
use timers::{Timer, TimerTable};

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
    timers: TimerTable,
    rng: ChaCha8Rng,
    /// The replicated key-value map and its dedup table, computed by applying the log.
    kv: KvStore,
    /// Client writes waiting for their entry to apply: index → (client, term of the entry).
    waiting: BTreeMap<u64, (RequestId, u64, u64)>,
    reads: Vec<PendingRead>,
    /// Requests this leader runs for followers: its own handle → (follower, their handle).
    remote: BTreeMap<RequestId, (NodeId, u64)>,
    next_remote: RequestId,
    /// Forwarded requests taken lately, (follower, their handle) → when: a duplicated
    /// Forward is not run twice.
    forwards_seen: BTreeMap<(NodeId, u64), u64>,
    /// Requests this follower forwarded: handle → (client, deadline).
    forwarded: BTreeMap<u64, (RequestId, u64)>,
    outbox: VecDeque<Output<Message, Record>>,
    now: Now,
}

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
            timers: TimerTable::default(),
            rng: ChaCha8Rng::seed_from_u64(seed ^ (u64::from(id) << 32)),
            kv: KvStore::default(),
            waiting: BTreeMap::new(),
            reads: Vec::new(),
            remote: BTreeMap::new(),
            next_remote: REMOTE_BASE,
            forwards_seen: BTreeMap::new(),
            forwarded: BTreeMap::new(),
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

    fn others(&self) -> Vec<NodeId> {
        (0..self.settings.nodes).filter(|&n| n != self.id).collect()
    }

    fn on_message(&mut self, from: NodeId, msg: Message) {
        match msg {
            Message::PreVote { .. }
            | Message::PreVoteReply { .. }
            | Message::Vote { .. }
            | Message::VoteGranted { .. }
            | Message::VoteRefused { .. } => self.on_election_message(from, msg),
            Message::Append(append) => self.on_append(from, append),
            Message::AppendReply {
                term,
                success,
                index,
                round,
            } => self.on_append_reply(from, term, success, index, round),
            Message::Forward { id, request } => self.on_forward(from, id, request),
            Message::ForwardReply { id, reply } => self.on_forward_reply(id, reply),
        }
    }

    /// Acts on every timer whose deadline has come, then on every client deadline.
    fn on_timeouts(&mut self) {
        let now = self.now.mono_ms;
        if self.timers.expired(Timer::Heartbeat, now) {
            self.broadcast();
        }
        if self.timers.expired(Timer::Election, now) {
            if self.settings.pre_vote {
                self.start_pre_vote();
            } else {
                self.start_election();
            }
        } else if self.timers.expired(Timer::VoteRetry, now) {
            self.retry_vote_requests();
        }
        self.expire_clients();
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
        self.on_timeouts();
    }

    fn poll_timeout(&self) -> Option<u64> {
        match (self.timers.next(), self.next_client_deadline()) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
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
