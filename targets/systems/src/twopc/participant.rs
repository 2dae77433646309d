//! A two-phase commit participant: inventory, payment or shipping. `Prepare` locks what the
//! order needs (stock or money held back) and votes yes, or votes no; `Commit` makes the held
//! change permanent; `Abort` releases it. A participant that voted yes may not decide alone: it
//! stays prepared, holding its locks, until the coordinator's decision reaches it — the time it
//! spends so is measured as blocked time.

use std::collections::{BTreeMap, VecDeque};

use rand::{RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde_json::{Value, json};

use super::{Message, Record};
use crate::orders::Order;
use crate::saga::SERVICE_NAMES;
use crate::{NodeId, Now, Output};

/// Where one order stands at a participant.
#[derive(Clone, Debug, PartialEq)]
enum State {
    /// Voted yes; holding the order's resources since this wall-clock time.
    Prepared(Order, u64),
    /// Committed this many times (more than once only with the no-idempotency bug).
    Committed(u32),
    /// Voted no, or aborted.
    Aborted,
}

/// One participant.
#[derive(Debug)]
pub struct Participant {
    kind: usize,
    totals: BTreeMap<String, i64>,
    held: BTreeMap<String, i64>,
    orders: BTreeMap<String, State>,
    /// How long each decided order was held prepared, in ms.
    blocked: Vec<u64>,
    fail: f64,
    reapply: bool,
    rng: ChaCha8Rng,
    now: Now,
    pub(super) outbox: VecDeque<Output<Message, Record>>,
}

impl Participant {
    /// Participant `kind` with its initial totals, recovered from `records`.
    pub fn new(
        kind: usize,
        initial: BTreeMap<String, i64>,
        fail: f64,
        reapply: bool,
        seed: u64,
        records: Vec<Record>,
    ) -> Self {
        let mut p = Participant {
            kind,
            totals: initial,
            held: BTreeMap::new(),
            orders: BTreeMap::new(),
            blocked: Vec::new(),
            fail,
            reapply,
            rng: ChaCha8Rng::seed_from_u64(seed ^ (kind as u64 + 11)),
            now: Now::default(),
            outbox: VecDeque::new(),
        };
        for record in records {
            p.replay(record);
        }
        p
    }

    fn delta(&self, order: &Order) -> (String, i64) {
        match self.kind {
            0 => (order.sku.clone(), -order.qty),
            1 => (order.account.clone(), -order.amount),
            _ => ("shipments".to_string(), 1),
        }
    }

    fn replay(&mut self, record: Record) {
        match record {
            Record::Prepared { order, at_ms } => {
                let (total, delta) = self.delta(&order);
                *self.held.entry(total).or_default() += delta;
                self.orders
                    .insert(order.order.clone(), State::Prepared(order, at_ms));
            }
            Record::Committed { order, at_ms } => {
                let state = self.orders.get(&order.order).cloned();
                let (total, delta) = self.delta(&order);
                match state {
                    Some(State::Prepared(_, since)) => {
                        *self.held.entry(total.clone()).or_default() -= delta;
                        *self.totals.entry(total).or_default() += delta;
                        self.blocked.push(at_ms.saturating_sub(since));
                        self.orders.insert(order.order, State::Committed(1));
                    }
                    Some(State::Committed(n)) => {
                        // Only the no-idempotency bug commits twice.
                        *self.totals.entry(total).or_default() += delta;
                        self.orders.insert(order.order, State::Committed(n + 1));
                    }
                    _ => {}
                }
            }
            Record::Aborted { order, at_ms } => {
                if let Some(State::Prepared(held, since)) = self.orders.get(&order).cloned() {
                    let (total, delta) = self.delta(&held);
                    *self.held.entry(total).or_default() -= delta;
                    self.blocked.push(at_ms.saturating_sub(since));
                }
                if !matches!(self.orders.get(&order), Some(State::Committed(_))) {
                    self.orders.insert(order, State::Aborted);
                }
            }
            _ => {}
        }
    }

    fn log(&mut self, record: Record) {
        self.outbox.push_back(Output::Persist(record.clone()));
        self.replay(record);
    }

    fn send(&mut self, to: NodeId, msg: Message) {
        self.outbox.push_back(Output::Send { to, msg });
    }

    /// Time passed (it only keeps the clock that `describe` measures blocked time with).
    pub fn on_tick(&mut self, now: Now) {
        self.now = now;
    }

    /// A coordinator's message arrived.
    pub fn on_message(&mut self, now: Now, from: NodeId, msg: Message) {
        self.now = now;
        let kind = self.kind;
        match msg {
            Message::Prepare { order } => {
                let id = order.order.clone();
                let vote = match self.orders.get(&id) {
                    Some(State::Prepared(..) | State::Committed(_)) => Ok(()),
                    Some(State::Aborted) => Err("aborted before".to_string()),
                    None => match self.refusal(&order) {
                        Some(reason) => {
                            self.log(Record::Aborted {
                                order: id.clone(),
                                at_ms: now.wall_ms,
                            });
                            Err(reason)
                        }
                        None => {
                            self.log(Record::Prepared {
                                order,
                                at_ms: now.wall_ms,
                            });
                            Ok(())
                        }
                    },
                };
                self.send(
                    from,
                    Message::Vote {
                        order: id,
                        service: kind,
                        vote,
                    },
                );
            }
            Message::Decide { order, commit } => {
                let id = order.order.clone();
                let state = self.orders.get(&id).cloned();
                match (commit, state) {
                    (true, Some(State::Prepared(..))) => self.log(Record::Committed {
                        order,
                        at_ms: now.wall_ms,
                    }),
                    (true, Some(State::Committed(_))) if self.reapply => {
                        self.log(Record::Committed {
                            order,
                            at_ms: now.wall_ms,
                        })
                    }
                    (false, Some(State::Prepared(..)) | None) => self.log(Record::Aborted {
                        order: id.clone(),
                        at_ms: now.wall_ms,
                    }),
                    _ => {}
                }
                self.send(
                    from,
                    Message::Ack {
                        order: id,
                        service: kind,
                    },
                );
            }
            Message::Vote { .. } | Message::Ack { .. } => {}
        }
    }

    /// Why the order cannot be prepared here, if it cannot.
    fn refusal(&mut self, order: &Order) -> Option<String> {
        let (total, delta) = self.delta(order);
        let free = self.totals.get(&total).copied().unwrap_or(0)
            + self.held.get(&total).copied().unwrap_or(0);
        if delta < 0 && free + delta < 0 {
            return Some(match self.kind {
                0 => format!("out of stock: {free} of {total} free"),
                _ => format!("insufficient funds: {total} has {free} free"),
            });
        }
        if self.fail > 0.0 && self.rng.random_bool(self.fail) {
            return Some(format!(
                "declined by {} (fail share)",
                SERVICE_NAMES[self.kind]
            ));
        }
        None
    }

    /// The full state, for `GET /state` and the saga checker: totals are committed values;
    /// `held` is what prepared orders lock.
    pub fn describe(&self) -> Value {
        let mut in_doubt = 0;
        let orders: serde_json::Map<String, Value> = self
            .orders
            .iter()
            .map(|(id, s)| {
                let (applied, state) = match s {
                    State::Prepared(..) => {
                        in_doubt += 1;
                        (0, "prepared")
                    }
                    State::Committed(n) => (*n, "committed"),
                    State::Aborted => (0, "aborted"),
                };
                (
                    id.clone(),
                    json!({"applied": applied, "undone": 0, "state": state}),
                )
            })
            .collect();
        let longest_open = self
            .orders
            .values()
            .filter_map(|s| match s {
                State::Prepared(_, since) => Some(self.now.wall_ms.saturating_sub(*since)),
                _ => None,
            })
            .max();
        json!({
            "service": SERVICE_NAMES[self.kind],
            "totals": self.totals,
            "held": self.held,
            "orders": orders,
            "in_doubt": in_doubt,
            "longest_in_doubt_ms": longest_open,
            "blocked_ms": self.blocked,
        })
    }

    /// What this participant holds for one order.
    pub fn describe_order(&self, id: &str) -> Value {
        match self.orders.get(id) {
            Some(State::Prepared(_, since)) => json!({"state": "prepared", "since_ms": since}),
            Some(State::Committed(n)) => json!({"state": "committed", "times": n}),
            Some(State::Aborted) => json!({"state": "aborted"}),
            None => Value::Null,
        }
    }
}
