//! What clients see of the cluster: requests taken by the leader (writes wait for their
//! entry to apply; reads go through ReadIndex, section 6.4 of the paper), requests a follower
//! forwards to the leader it knows and relays the answer of, and every client's deadline.

use serde_json::{Value, json};

use super::election::Role;
use super::messages::{Command, Entry, Message, Record};
use super::{Bug, RaftNode};
use crate::kv::node_name;
use crate::{ClientReply, ClientRequest, NodeId, Output, RequestId};

/// A read waiting for ReadIndex: leadership confirmed by a majority's echo of a heartbeat
/// round, and the commit index of that moment applied.
#[derive(Clone, Debug)]
pub(super) struct PendingRead {
    client: RequestId,
    key: String,
    /// The round that must be echoed by a majority.
    round: u64,
    /// The commit index to wait for; `None` until an entry of this term is committed.
    index: Option<u64>,
    deadline: u64,
}

/// Handles of forwarded requests live above this, apart from the runtime's request ids.
pub(super) const REMOTE_BASE: RequestId = 1 << 62;

impl RaftNode {
    /// Answers a client: the runtime's, or a follower's that forwarded it here.
    pub(super) fn reply(&mut self, client: RequestId, reply: ClientReply) {
        match self.remote.remove(&client) {
            Some((follower, id)) => self.send(follower, Message::ForwardReply { id, reply }),
            None => self.outbox.push_back(Output::Reply { id: client, reply }),
        }
    }

    /// Answers every waiting client of a leader that stops leading.
    pub(super) fn abandon_clients(&mut self, why: &str) {
        let waiting: Vec<RequestId> = std::mem::take(&mut self.waiting)
            .into_values()
            .map(|(c, _, _)| c)
            .collect();
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
    pub(super) fn serve_reads(&mut self) {
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

    /// A client request, from the runtime or forwarded by a follower (`client` above
    /// [`REMOTE_BASE`]).
    pub(super) fn on_client(&mut self, client: RequestId, request: ClientRequest) {
        if let ClientRequest::Get { key } = &request {
            if self.bug(Bug::StaleRead) {
                let reply = self.read_value(key);
                self.reply(client, reply);
                return;
            }
        }
        if !matches!(self.role, Role::Leader(_)) {
            self.forward(client, request);
            return;
        }
        let command = match request {
            ClientRequest::Get { key } => return self.read(client, key),
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
            // A transaction, reads and all, goes through the log: it applies atomically at
            // its index, so its reads are of that point (strict serializable).
            ClientRequest::Txn {
                ops,
                idempotency_key,
            } => Command::Txn {
                ops,
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
        self.append(client, command);
    }

    /// A follower hands a runtime client's request to the leader it knows (its answer comes
    /// back as a ForwardReply); a forwarded request, or one with no leader known, is refused.
    fn forward(&mut self, client: RequestId, request: ClientRequest) {
        match self.leader {
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
    }

    /// The leader reads `key` once the next round of heartbeats confirms it still leads (at
    /// once with the `no-read-index` bug).
    fn read(&mut self, client: RequestId, key: String) {
        if self.bug(Bug::NoReadIndex) {
            let reply = self.read_value(&key);
            self.reply(client, reply);
            return;
        }
        let Role::Leader(leader) = &self.role else {
            unreachable!("only a leader reads")
        };
        let round = leader.round + 1;
        self.reads.push(PendingRead {
            client,
            key,
            round,
            index: None,
            deadline: self.now.mono_ms + self.settings.timeout_ms,
        });
        self.broadcast();
        self.serve_reads();
    }

    /// The leader appends `command` to its log for `client`, who is answered when it applies.
    fn append(&mut self, client: RequestId, command: Command) {
        let deadline = self.now.mono_ms + self.settings.timeout_ms;
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

    /// A follower forwarded a client's request to this node.
    /// A copy of a Forward already taken (the network may deliver a message twice) is
    /// dropped: the first copy's answer is on its way. Handles are remembered for twice the
    /// client timeout, long past any duplicate.
    pub(super) fn on_forward(&mut self, from: NodeId, id: u64, request: ClientRequest) {
        let now = self.now.mono_ms;
        let window = 2 * self.settings.timeout_ms;
        self.forwards_seen
            .retain(|_, &mut seen| now.saturating_sub(seen) <= window);
        if self.forwards_seen.insert((from, id), now).is_some() {
            return;
        }
        let handle = self.next_remote;
        self.next_remote += 1;
        self.remote.insert(handle, (from, id));
        self.on_client(handle, request);
    }

    /// The leader answered a request this node forwarded.
    pub(super) fn on_forward_reply(&mut self, id: u64, reply: ClientReply) {
        if let Some((client, _)) = self.forwarded.remove(&id) {
            self.outbox.push_back(Output::Reply { id: client, reply });
        }
    }

    /// Answers the clients whose deadline has passed: a write not committed in time (it may
    /// still be), a forwarded request the leader did not answer, a read whose leadership was
    /// not confirmed.
    pub(super) fn expire_clients(&mut self) {
        let now = self.now.mono_ms;
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

    /// The earliest deadline of a client request.
    pub(super) fn next_client_deadline(&self) -> Option<u64> {
        let writes = self.waiting.values().map(|&(_, _, deadline)| deadline);
        let forwarded = self.forwarded.values().map(|&(_, deadline)| deadline);
        let reads = self.reads.iter().map(|r| r.deadline);
        writes.chain(forwarded).chain(reads).min()
    }
}
