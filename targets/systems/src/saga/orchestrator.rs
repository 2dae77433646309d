//! The saga orchestrator: runs each order's steps in order (inventory, payment, shipping),
//! and on a declined step runs the compensations of the completed steps in reverse. Every
//! transition is written to the saga log before it is acted on, so an orchestrator restarted
//! on its log resumes every in-flight order where it stood: a step with no answer is sent
//! again (services apply a step key once), forever, until the order ends.

use std::collections::{BTreeMap, VecDeque};

use serde_json::{Value, json};

use super::{Message, Record, SERVICE_NAMES, Status};
use crate::orders::{Order, Waiting};
use crate::{ClientReply, Now, Output, RequestId};

/// One order's saga.
#[derive(Clone, Debug)]
struct Saga {
    order: Order,
    status: Status,
    /// Steps done, in order.
    done: usize,
    /// The step that was declined, and why.
    failed: Option<(usize, String)>,
    /// While compensating: the step to undo next (counting down).
    undo_next: usize,
    /// When the current message was last sent (monotonic ms; 0: send at the next tick).
    last_sent: u64,
    /// Wall-clock ms of the first applied step and of the end: the half-done window.
    first_applied: Option<u64>,
    finished: Option<u64>,
}

impl Saga {
    fn describe(&self) -> Value {
        json!({
            "order": self.order.order,
            "status": self.status.name(),
            "steps_done": self.done,
            "failed_step": self.failed.as_ref().map(|(s, _)| SERVICE_NAMES[*s]),
            "reason": self.failed.as_ref().map(|(_, r)| r),
            "half_done_ms": match (self.first_applied, self.finished) {
                (Some(a), Some(b)) => Some(b.saturating_sub(a)),
                _ => None,
            },
        })
    }
}

/// The orchestrator node.
#[derive(Debug)]
pub struct Orchestrator {
    sagas: BTreeMap<String, Saga>,
    waiting: Waiting,
    retry_ms: u64,
    timeout_ms: u64,
    compensate: bool,
    durable: bool,
    now: Now,
    pub(super) outbox: VecDeque<Output<Message, Record>>,
}

impl Orchestrator {
    /// An orchestrator recovered from its saga log. `compensate: false` and `durable: false`
    /// are the no-compensation and volatile-log bugs.
    pub fn new(
        retry_ms: u64,
        timeout_ms: u64,
        compensate: bool,
        durable: bool,
        records: Vec<Record>,
    ) -> Self {
        let mut o = Orchestrator {
            sagas: BTreeMap::new(),
            waiting: Waiting::default(),
            retry_ms,
            timeout_ms,
            compensate,
            durable,
            now: Now::default(),
            outbox: VecDeque::new(),
        };
        for record in records {
            o.replay(record);
        }
        o
    }

    fn replay(&mut self, record: Record) {
        match record {
            Record::Started(order) => {
                let saga = Saga {
                    order: order.clone(),
                    status: Status::Pending,
                    done: 0,
                    failed: None,
                    undo_next: 0,
                    last_sent: 0,
                    first_applied: None,
                    finished: None,
                };
                self.sagas.insert(order.order, saga);
            }
            Record::StepOk { order, at_ms } => {
                if let Some(s) = self.sagas.get_mut(&order) {
                    s.done += 1;
                    s.first_applied.get_or_insert(at_ms);
                }
            }
            Record::StepFailed {
                order,
                reason,
                status,
            } => {
                if let Some(s) = self.sagas.get_mut(&order) {
                    s.failed = Some((s.done, reason));
                    s.status = status;
                    s.undo_next = s.done.saturating_sub(1);
                }
            }
            Record::Undone { order } => {
                if let Some(s) = self.sagas.get_mut(&order) {
                    s.undo_next = s.undo_next.saturating_sub(1);
                }
            }
            Record::Finished {
                order,
                status,
                at_ms,
            } => {
                if let Some(s) = self.sagas.get_mut(&order) {
                    s.status = status;
                    s.finished = Some(at_ms);
                }
            }
            _ => {}
        }
    }

    /// Writes `record` to the saga log (unless the log is volatile) and applies it.
    fn log(&mut self, record: Record) {
        if self.durable {
            self.outbox.push_back(Output::Persist(record.clone()));
        }
        self.replay(record);
    }

    /// Sends the message `order`'s saga waits on.
    fn send_current(&mut self, id: &str) {
        let Some(saga) = self.sagas.get_mut(id) else {
            return;
        };
        let (service, undo) = match saga.status {
            Status::Pending => (saga.done, false),
            Status::Compensating => (saga.undo_next, true),
            _ => return,
        };
        saga.last_sent = self.now.mono_ms.max(1);
        self.outbox.push_back(Output::Send {
            to: service as u32 + 1,
            msg: Message::Step {
                order: saga.order.clone(),
                undo,
            },
        });
    }

    /// Moves a saga recovered from the log on: an order whose every step is logged done but
    /// whose end is not (a crash between the two records) ends now; others send their current
    /// message again.
    fn advance(&mut self, id: &str) {
        let complete = self
            .sagas
            .get(id)
            .is_some_and(|s| s.status == Status::Pending && s.done == SERVICE_NAMES.len());
        if complete {
            self.finish(id, Status::Completed);
        } else {
            self.send_current(id);
        }
    }

    fn finish(&mut self, id: &str, status: Status) {
        self.log(Record::Finished {
            order: id.to_string(),
            status,
            at_ms: self.now.wall_ms,
        });
        let outcome = self.outcome(id);
        for client in self.waiting.take(id) {
            self.outbox.push_back(Output::Reply {
                id: client,
                reply: outcome.clone(),
            });
        }
    }

    fn outcome(&self, id: &str) -> ClientReply {
        match self.sagas.get(id) {
            Some(saga) => ClientReply::Ok {
                value: saga.describe(),
                meta: Value::Null,
            },
            None => ClientReply::NotFound { meta: Value::Null },
        }
    }

    /// `POST /orders`: starts the order's saga, or joins the one running for its id.
    pub fn place(&mut self, now: Now, client: RequestId, order: Order) {
        self.now = now;
        let known = self.sagas.get(&order.order).map(|s| &s.order);
        if let Some(reply) = crate::orders::refusal(&order, known) {
            self.outbox.push_back(Output::Reply { id: client, reply });
            return;
        }
        let id = order.order.clone();
        match self.sagas.get(&id) {
            Some(saga) if saga.status.is_final() => {
                let reply = self.outcome(&id);
                self.outbox.push_back(Output::Reply { id: client, reply });
                return;
            }
            Some(_) => {}
            None => {
                self.log(Record::Started(order));
                self.send_current(&id);
            }
        }
        self.waiting.add(client, id, now.mono_ms + self.timeout_ms);
    }

    /// `GET /orders/{id}`.
    pub fn get(&mut self, client: RequestId, id: &str) {
        let reply = self.outcome(id);
        self.outbox.push_back(Output::Reply { id: client, reply });
    }

    /// A service answered a step.
    pub fn on_step_done(
        &mut self,
        now: Now,
        id: &str,
        service: usize,
        undo: bool,
        outcome: Result<(), String>,
    ) {
        self.now = now;
        let Some(saga) = self.sagas.get(id) else {
            return;
        };
        let expected = match saga.status {
            Status::Pending => !undo && saga.done == service,
            Status::Compensating => undo && saga.undo_next == service,
            _ => false,
        };
        if !expected {
            return; // an answer to a message sent again, already acted on
        }
        match (saga.status, outcome) {
            (Status::Pending, Ok(())) => {
                self.log(Record::StepOk {
                    order: id.to_string(),
                    at_ms: now.wall_ms,
                });
                if self.sagas[id].done == SERVICE_NAMES.len() {
                    self.finish(id, Status::Completed);
                } else {
                    self.send_current(id);
                }
            }
            (Status::Pending, Err(reason)) => {
                let done = saga.done;
                let status = if done > 0 && self.compensate {
                    Status::Compensating
                } else {
                    Status::Pending
                };
                self.log(Record::StepFailed {
                    order: id.to_string(),
                    reason,
                    status,
                });
                match (done, self.compensate) {
                    (0, _) => self.finish(id, Status::Rejected),
                    // The bug: declare it compensated and leave the earlier steps applied.
                    (_, false) => self.finish(id, Status::Compensated),
                    _ => self.send_current(id),
                }
            }
            (Status::Compensating, _) => {
                let last = saga.undo_next == 0;
                self.log(Record::Undone {
                    order: id.to_string(),
                });
                if last {
                    self.finish(id, Status::Compensated);
                } else {
                    self.send_current(id);
                }
            }
            _ => {}
        }
    }

    /// When [`Orchestrator::on_tick`] must next run: a running saga's retry (at once for one
    /// recovered from the log), or a waiting client's deadline.
    pub fn next_deadline(&self) -> Option<u64> {
        let retries = self
            .sagas
            .values()
            .filter(|s| !s.status.is_final())
            .map(|s| match s.last_sent {
                0 => 0,
                sent => sent + self.retry_ms,
            });
        retries.chain(self.waiting.next_deadline()).min()
    }

    /// Time passed: send again what has waited too long; a client whose wait is over learns
    /// that its order is pending.
    pub fn on_tick(&mut self, now: Now) {
        self.now = now;
        let due: Vec<String> = self
            .sagas
            .iter()
            .filter(|(_, s)| {
                !s.status.is_final()
                    && (s.last_sent == 0 || now.mono_ms >= s.last_sent + self.retry_ms)
            })
            .map(|(id, _)| id.clone())
            .collect();
        for id in due {
            self.advance(&id);
        }
        // An order still running is durably accepted: the saga log will see it through, so
        // the client is told it is pending rather than left in doubt.
        let sagas = &self.sagas;
        self.waiting
            .expire(now.mono_ms, &mut self.outbox, |id| match sagas.get(id) {
                Some(saga) => ClientReply::Ok {
                    value: saga.describe(),
                    meta: Value::Null,
                },
                None => ClientReply::NotFound { meta: Value::Null },
            });
    }

    /// Every order's saga, for `GET /state` and the saga checker.
    pub fn describe(&self) -> Value {
        let orders: serde_json::Map<String, Value> = self
            .sagas
            .iter()
            .map(|(id, s)| (id.clone(), s.describe()))
            .collect();
        json!({ "role": "orchestrator", "orders": orders })
    }

    /// One order's saga.
    pub fn describe_order(&self, id: &str) -> Value {
        self.sagas.get(id).map_or(Value::Null, Saga::describe)
    }
}
