//! The two-phase commit coordinator: asks every participant to prepare, decides commit if all
//! vote yes and abort otherwise (or when a vote does not come within `timeout-ms`: presumed
//! abort), writes the decision to its log, and sends it until every participant has
//! acknowledged. Restarted on its log, it aborts the orders it had not decided and sends the
//! decisions it had not finished delivering.

use std::collections::{BTreeMap, VecDeque};

use serde_json::{Value, json};

use super::{Message, Record};
use crate::orders::{Order, Waiting};
use crate::saga::SERVICE_NAMES;
use crate::{ClientReply, Now, Output, RequestId};

const PARTICIPANTS: usize = SERVICE_NAMES.len();

#[derive(Clone, Debug)]
enum Phase {
    /// Collecting votes since this monotonic time.
    Voting {
        votes: [Option<bool>; PARTICIPANTS],
        since: u64,
    },
    /// Delivering the decision.
    Deciding {
        commit: bool,
        acks: [bool; PARTICIPANTS],
    },
    /// Every participant acknowledged.
    Done { commit: bool },
}

#[derive(Clone, Debug)]
struct Txn {
    order: Order,
    phase: Phase,
    reason: Option<String>,
    last_sent: u64,
    /// Wall-clock ms of the first and the last commit acknowledgement: the window in which
    /// some participants show the order and others do not.
    first_ack: Option<u64>,
    last_ack: Option<u64>,
}

impl Txn {
    fn status(&self) -> &'static str {
        match self.phase {
            Phase::Done { commit: true } => "completed",
            Phase::Done { commit: false } => "rejected",
            _ => "pending",
        }
    }

    fn describe(&self) -> Value {
        let decision = match self.phase {
            Phase::Voting { .. } => Value::Null,
            Phase::Deciding { commit, .. } | Phase::Done { commit } => {
                json!(if commit { "commit" } else { "abort" })
            }
        };
        json!({
            "order": self.order.order,
            "status": self.status(),
            "decision": decision,
            "reason": self.reason,
            "half_done_ms": match (self.first_ack, self.last_ack, &self.phase) {
                (Some(a), Some(b), Phase::Done { commit: true }) => Some(b.saturating_sub(a)),
                _ => None,
            },
        })
    }
}

/// The coordinator node.
#[derive(Debug)]
pub struct Coordinator {
    txns: BTreeMap<String, Txn>,
    waiting: Waiting,
    retry_ms: u64,
    timeout_ms: u64,
    log_decisions: bool,
    now: Now,
    pub(super) outbox: VecDeque<Output<Message, Record>>,
}

impl Coordinator {
    /// A coordinator recovered from its log; `log_decisions: false` is the no-decision-log bug.
    pub fn new(retry_ms: u64, timeout_ms: u64, log_decisions: bool, records: Vec<Record>) -> Self {
        let mut c = Coordinator {
            txns: BTreeMap::new(),
            waiting: Waiting::default(),
            retry_ms,
            timeout_ms,
            log_decisions,
            now: Now::default(),
            outbox: VecDeque::new(),
        };
        for record in records {
            c.replay(record);
        }
        c
    }

    fn replay(&mut self, record: Record) {
        match record {
            Record::Begun(order) => {
                let txn = Txn {
                    order: order.clone(),
                    phase: Phase::Voting {
                        votes: [None; PARTICIPANTS],
                        // Recovered undecided: decided (abort) at the first tick.
                        since: 0,
                    },
                    reason: None,
                    last_sent: 0,
                    first_ack: None,
                    last_ack: None,
                };
                self.txns.insert(order.order, txn);
            }
            Record::Decided {
                order,
                commit,
                reason,
            } => {
                if let Some(t) = self.txns.get_mut(&order) {
                    t.phase = Phase::Deciding {
                        commit,
                        acks: [false; PARTICIPANTS],
                    };
                    t.reason = reason;
                    t.last_sent = 0;
                }
            }
            Record::Ended { order, commit } => {
                if let Some(t) = self.txns.get_mut(&order) {
                    t.phase = Phase::Done { commit };
                }
            }
            _ => {}
        }
    }

    fn persist(&mut self, record: Record) {
        self.outbox.push_back(Output::Persist(record.clone()));
        self.replay(record);
    }

    fn send_all(&mut self, id: &str) {
        let Some(t) = self.txns.get_mut(id) else {
            return;
        };
        t.last_sent = self.now.mono_ms.max(1);
        let order = t.order.clone();
        let targets: Vec<(usize, Message)> = match &t.phase {
            Phase::Voting { votes, .. } => (0..PARTICIPANTS)
                .filter(|&p| votes[p].is_none())
                .map(|p| {
                    (
                        p,
                        Message::Prepare {
                            order: order.clone(),
                        },
                    )
                })
                .collect(),
            Phase::Deciding { commit, acks } => (0..PARTICIPANTS)
                .filter(|&p| !acks[p])
                .map(|p| {
                    (
                        p,
                        Message::Decide {
                            order: order.clone(),
                            commit: *commit,
                        },
                    )
                })
                .collect(),
            Phase::Done { .. } => Vec::new(),
        };
        for (p, msg) in targets {
            self.outbox.push_back(Output::Send {
                to: p as u32 + 1,
                msg,
            });
        }
    }

    fn decide(&mut self, id: &str, commit: bool, reason: Option<String>) {
        let record = Record::Decided {
            order: id.to_string(),
            commit,
            reason,
        };
        if self.log_decisions {
            self.persist(record);
        } else {
            self.replay(record);
        }
        self.send_all(id);
    }

    fn outcome(&self, id: &str) -> ClientReply {
        match self.txns.get(id) {
            Some(t) => ClientReply::Ok {
                value: t.describe(),
                meta: Value::Null,
            },
            None => ClientReply::NotFound { meta: Value::Null },
        }
    }

    fn end(&mut self, id: &str, commit: bool) {
        self.persist(Record::Ended {
            order: id.to_string(),
            commit,
        });
        let reply = self.outcome(id);
        for client in self.waiting.take(id) {
            self.outbox.push_back(Output::Reply {
                id: client,
                reply: reply.clone(),
            });
        }
    }

    /// `POST /orders`.
    pub fn place(&mut self, now: Now, client: RequestId, order: Order) {
        self.now = now;
        let known = self.txns.get(&order.order).map(|t| &t.order);
        if let Some(reply) = crate::orders::refusal(&order, known) {
            self.outbox.push_back(Output::Reply { id: client, reply });
            return;
        }
        let id = order.order.clone();
        match self.txns.get(&id) {
            Some(Txn {
                phase: Phase::Done { .. },
                ..
            }) => {
                let reply = self.outcome(&id);
                self.outbox.push_back(Output::Reply { id: client, reply });
                return;
            }
            Some(_) => {}
            None => {
                self.persist(Record::Begun(order));
                if let Some(Txn {
                    phase: Phase::Voting { since, .. },
                    ..
                }) = self.txns.get_mut(&id)
                {
                    *since = now.mono_ms.max(1);
                }
                self.send_all(&id);
            }
        }
        self.waiting.add(client, id, now.mono_ms + self.timeout_ms);
    }

    /// `GET /orders/{id}`.
    pub fn get(&mut self, client: RequestId, id: &str) {
        let reply = self.outcome(id);
        self.outbox.push_back(Output::Reply { id: client, reply });
    }

    /// A participant's vote or acknowledgement arrived.
    pub fn on_message(&mut self, now: Now, msg: Message) {
        self.now = now;
        match msg {
            Message::Vote {
                order,
                service,
                vote,
            } => {
                let Some(t) = self.txns.get_mut(&order) else {
                    return;
                };
                let Phase::Voting { votes, .. } = &mut t.phase else {
                    return;
                };
                if service >= PARTICIPANTS {
                    return;
                }
                votes[service] = Some(vote.is_ok());
                match vote {
                    Err(reason) => {
                        let why = format!("{} voted no: {reason}", SERVICE_NAMES[service]);
                        self.decide(&order, false, Some(why));
                    }
                    Ok(()) if votes.iter().all(|v| *v == Some(true)) => {
                        self.decide(&order, true, None);
                    }
                    Ok(()) => {}
                }
            }
            Message::Ack { order, service } => {
                let Some(t) = self.txns.get_mut(&order) else {
                    return;
                };
                let Phase::Deciding { commit, acks } = &mut t.phase else {
                    return;
                };
                if service >= PARTICIPANTS || acks[service] {
                    return;
                }
                acks[service] = true;
                if *commit {
                    t.first_ack.get_or_insert(now.wall_ms);
                    t.last_ack = Some(now.wall_ms);
                }
                if acks.iter().all(|a| *a) {
                    let commit = *commit;
                    self.end(&order, commit);
                }
            }
            Message::Prepare { .. } | Message::Decide { .. } => {}
        }
    }

    /// When [`Coordinator::on_tick`] must next run: a vote's time limit or a resend, at once for
    /// a transaction recovered from the log, or a waiting client's deadline.
    pub fn next_deadline(&self) -> Option<u64> {
        let txns = self.txns.values().filter_map(|t| match &t.phase {
            Phase::Voting { since: 0, .. } => Some(0),
            Phase::Voting { since, .. } => {
                Some((since + self.timeout_ms).min(t.last_sent + self.retry_ms))
            }
            Phase::Deciding { .. } if t.last_sent == 0 => Some(0),
            Phase::Deciding { .. } => Some(t.last_sent + self.retry_ms),
            Phase::Done { .. } => None,
        });
        txns.chain(self.waiting.next_deadline()).min()
    }

    /// Time passed: abort what waited too long for votes, send again what was not answered,
    /// answer clients whose wait is over.
    pub fn on_tick(&mut self, now: Now) {
        self.now = now;
        let mut abort = Vec::new();
        let mut resend = Vec::new();
        for (id, t) in &self.txns {
            match &t.phase {
                Phase::Voting { since: 0, .. } => abort.push((
                    id.clone(),
                    "undecided when the coordinator restarted: presumed abort".to_string(),
                )),
                Phase::Voting { since, votes } => {
                    if now.mono_ms >= since + self.timeout_ms {
                        let missing: Vec<&str> = (0..PARTICIPANTS)
                            .filter(|&p| votes[p].is_none())
                            .map(|p| SERVICE_NAMES[p])
                            .collect();
                        abort.push((
                            id.clone(),
                            format!("no vote from {} in time", missing.join(", ")),
                        ));
                    } else if now.mono_ms >= t.last_sent + self.retry_ms {
                        resend.push(id.clone());
                    }
                }
                Phase::Deciding { .. } => {
                    if t.last_sent == 0 || now.mono_ms >= t.last_sent + self.retry_ms {
                        resend.push(id.clone());
                    }
                }
                Phase::Done { .. } => {}
            }
        }
        for (id, why) in abort {
            self.decide(&id, false, Some(why));
        }
        for id in resend {
            self.send_all(&id);
        }
        // Undecided, or decided and not yet delivered: the client cannot be told an outcome.
        self.waiting.expire(now.mono_ms, &mut self.outbox, |id| {
            ClientReply::Timeout(format!("order {id} is still running; ask GET /orders/{id}"))
        });
    }

    /// Every order, for `GET /state`.
    pub fn describe(&self) -> Value {
        let orders: serde_json::Map<String, Value> = self
            .txns
            .iter()
            .map(|(id, t)| (id.clone(), t.describe()))
            .collect();
        json!({ "role": "coordinator", "orders": orders })
    }

    /// One order.
    pub fn describe_order(&self, id: &str) -> Value {
        self.txns.get(id).map_or(Value::Null, Txn::describe)
    }
}
