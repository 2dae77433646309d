//! A checkout service of the saga: inventory (stock per SKU), payment (balance per account) or
//! shipping (shipments). It applies an order's step at most once — the order id is the step
//! key — and undoes it on a compensation; a compensation that arrives before its step leaves a
//! tombstone, so the late step is refused rather than applied after its undo.

use std::collections::{BTreeMap, BTreeSet, VecDeque};

use rand::{RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde_json::{Value, json};

use super::{Message, Record, SERVICE_NAMES};
use crate::orders::Order;
use crate::{NodeId, Output};

/// What a service did for one order (the saga checker's `Effect`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Effect {
    /// Times the step was applied.
    pub applied: u32,
    /// Times it was undone.
    pub undone: u32,
}

/// One service.
#[derive(Debug)]
pub struct Service {
    /// 0 inventory, 1 payment, 2 shipping.
    kind: usize,
    totals: BTreeMap<String, i64>,
    orders: BTreeMap<String, Effect>,
    declined: BTreeMap<String, String>,
    tombstones: BTreeSet<String>,
    fail: f64,
    reapply: bool,
    rng: ChaCha8Rng,
    pub(super) outbox: VecDeque<Output<Message, Record>>,
}

impl Service {
    /// Service `kind` with its initial totals, recovered from `records`.
    pub fn new(
        kind: usize,
        initial: BTreeMap<String, i64>,
        fail: f64,
        reapply: bool,
        seed: u64,
        records: Vec<Record>,
    ) -> Self {
        let mut service = Service {
            kind,
            totals: initial,
            orders: BTreeMap::new(),
            declined: BTreeMap::new(),
            tombstones: BTreeSet::new(),
            fail,
            reapply,
            rng: ChaCha8Rng::seed_from_u64(seed ^ (kind as u64 + 1)),
            outbox: VecDeque::new(),
        };
        for record in records {
            match record {
                Record::Applied { order, undo } => service.change(&order, undo),
                Record::Declined { order, reason } => {
                    service.declined.insert(order, reason);
                }
                Record::Tombstone { order } => {
                    service.tombstones.insert(order);
                }
                _ => {}
            }
        }
        service
    }

    /// The name of the service.
    pub fn name(&self) -> &'static str {
        SERVICE_NAMES[self.kind]
    }

    /// The total a step of `order` changes, and by how much.
    fn delta(&self, order: &Order) -> (String, i64) {
        match self.kind {
            0 => (order.sku.clone(), -order.qty),
            1 => (order.account.clone(), -order.amount),
            _ => ("shipments".to_string(), 1),
        }
    }

    /// Applies (or undoes) `order`'s step to the totals.
    fn change(&mut self, order: &Order, undo: bool) {
        let (total, delta) = self.delta(order);
        let effect = self.orders.entry(order.order.clone()).or_default();
        if undo {
            effect.undone += 1;
            *self.totals.entry(total).or_default() -= delta;
        } else {
            effect.applied += 1;
            *self.totals.entry(total).or_default() += delta;
        }
    }

    fn persist(&mut self, record: Record) {
        self.outbox.push_back(Output::Persist(record));
    }

    fn answer(&mut self, to: NodeId, order: &str, undo: bool, outcome: Result<(), String>) {
        self.outbox.push_back(Output::Send {
            to,
            msg: Message::StepDone {
                order: order.to_string(),
                service: self.kind,
                undo,
                outcome,
            },
        });
    }

    /// A step (or its undo) for `order` arrived from the orchestrator `from`.
    pub fn on_step(&mut self, from: NodeId, order: Order, undo: bool) {
        let id = order.order.clone();
        if undo {
            let effect = self.orders.get(&id).copied().unwrap_or_default();
            if effect.applied > effect.undone {
                self.persist(Record::Applied {
                    order: order.clone(),
                    undo: true,
                });
                self.change(&order, true);
            } else if effect.applied == 0 && self.tombstones.insert(id.clone()) {
                // Its step may still be on its way: refuse it when it comes.
                self.persist(Record::Tombstone { order: id.clone() });
            }
            self.answer(from, &id, true, Ok(()));
            return;
        }
        if let Some(reason) = self.declined.get(&id).cloned() {
            self.answer(from, &id, false, Err(reason));
            return;
        }
        if self.tombstones.contains(&id) {
            self.answer(
                from,
                &id,
                false,
                Err("compensated before it arrived".into()),
            );
            return;
        }
        let effect = self.orders.get(&id).copied().unwrap_or_default();
        if effect.applied > 0 && !self.reapply {
            self.answer(from, &id, false, Ok(()));
            return;
        }
        let (total, delta) = self.delta(&order);
        let holds = self.totals.get(&total).copied().unwrap_or(0);
        let refusal = if delta < 0 && holds + delta < 0 {
            Some(match self.kind {
                0 => format!("out of stock: {holds} of {total} left"),
                _ => format!("insufficient funds: {total} holds {holds}"),
            })
        } else if self.fail > 0.0 && self.rng.random_bool(self.fail) {
            Some(format!("declined by {} (fail share)", self.name()))
        } else {
            None
        };
        match refusal {
            Some(reason) => {
                self.persist(Record::Declined {
                    order: id.clone(),
                    reason: reason.clone(),
                });
                self.declined.insert(id.clone(), reason.clone());
                self.answer(from, &id, false, Err(reason));
            }
            None => {
                self.persist(Record::Applied {
                    order: order.clone(),
                    undo: false,
                });
                self.change(&order, false);
                self.answer(from, &id, false, Ok(()));
            }
        }
    }

    /// The full state, for `GET /state` and the saga checker.
    pub fn describe(&self) -> Value {
        let orders: serde_json::Map<String, Value> = self
            .orders
            .iter()
            .map(|(id, e)| {
                (
                    id.clone(),
                    json!({"applied": e.applied, "undone": e.undone}),
                )
            })
            .collect();
        json!({
            "service": self.name(),
            "totals": self.totals,
            "orders": orders,
            "declined": self.declined.len(),
            "tombstones": self.tombstones.len(),
        })
    }

    /// What this service holds for one order.
    pub fn describe_order(&self, id: &str) -> Value {
        let e = self.orders.get(id).copied().unwrap_or_default();
        json!({
            "applied": e.applied,
            "undone": e.undone,
            "declined": self.declined.get(id),
            "tombstone": self.tombstones.contains(id),
        })
    }
}
