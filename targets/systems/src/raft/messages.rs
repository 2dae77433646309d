//! What Raft nodes say to each other and keep: log entries and their commands, the messages
//! of elections, replication and forwarding, and the records of durable state.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::{ClientReply, ClientRequest, NodeId};

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
    /// A transaction, applied atomically: its micro-operations in order.
    Txn {
        /// The micro-operations (reads with null values).
        ops: Vec<Value>,
        /// The client's `Idempotency-Key`.
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
