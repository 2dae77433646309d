//! The saga checkout (DESIGN §4.1 `saga`): an orchestrator (n1) and three services —
//! inventory (n2), payment (n3), shipping (n4) — each a node with durable state.
//!
//! `POST /orders` on the orchestrator runs the order's saga: reserve stock, charge the
//! account, schedule the shipment, each step sent with the order id as its step key so a
//! service applies it at most once. A declined step (out of stock, insufficient funds, or a
//! share of steps declined on purpose with `fail.<service>`) runs the compensations of the
//! steps already done, in reverse. The saga log is written before every transition; a
//! restarted orchestrator resumes or compensates every order in flight. Steps without an
//! answer are sent again every `retry-ms` until the order ends. `GET /orders/{id}` gives its
//! status (pending, compensating, completed, compensated, rejected) and `GET /state` each
//! node's whole state.
//!
//! Bug switches: `no-idempotency` (services apply a retried step again), `no-compensation`
//! (a failed saga leaves its earlier steps applied), `volatile-log` (the saga log is not
//! written: a crash forgets the orders in flight).

mod orchestrator;
mod service;
mod settings;
#[cfg(test)]
mod tests;

pub use orchestrator::Orchestrator;
pub use service::{Effect, Service};
pub use settings::{Bug, Settings};

use std::collections::{BTreeMap, VecDeque};

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::checkout::{CheckoutNode, Coordinating, Part};
use super::orders::Order;
use super::{NodeId, Now, Output, RequestId};

/// The services, in saga order; service `i` is node `i + 1`.
pub const SERVICE_NAMES: [&str; 3] = ["inventory", "payment", "shipping"];

/// Where an order's saga stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Status {
    /// Steps are running.
    Pending,
    /// A step was declined; the done steps are being undone.
    Compensating,
    /// Every step applied.
    Completed,
    /// Every done step undone.
    Compensated,
    /// The first step was declined: nothing to undo.
    Rejected,
}

impl Status {
    /// Its name in answers.
    pub fn name(self) -> &'static str {
        match self {
            Status::Pending => "pending",
            Status::Compensating => "compensating",
            Status::Completed => "completed",
            Status::Compensated => "compensated",
            Status::Rejected => "rejected",
        }
    }

    /// Whether the order has ended.
    pub fn is_final(self) -> bool {
        matches!(
            self,
            Status::Completed | Status::Compensated | Status::Rejected
        )
    }
}

/// Messages between the orchestrator and the services.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum Message {
    /// Apply (or undo) the order's step at the receiving service.
    Step {
        /// The order.
        order: Order,
        /// A compensation.
        undo: bool,
    },
    /// A service's answer.
    StepDone {
        /// The order's id.
        order: String,
        /// Which service answers (0 inventory, 1 payment, 2 shipping).
        service: usize,
        /// Whether it was a compensation.
        undo: bool,
        /// Applied, or declined with the reason.
        outcome: Result<(), String>,
    },
}

crate::kinded!(Message { Step, StepDone });

/// What nodes persist: the orchestrator's saga log, the services' applied steps.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum Record {
    /// An order's saga began.
    Started(Order),
    /// Its next step applied, at this wall-clock time.
    StepOk {
        /// The order.
        order: String,
        /// When.
        at_ms: u64,
    },
    /// Its next step was declined.
    StepFailed {
        /// The order.
        order: String,
        /// Why.
        reason: String,
        /// What the saga does next (compensating, or pending until it finishes).
        status: Status,
    },
    /// One compensation done.
    Undone {
        /// The order.
        order: String,
    },
    /// The order ended.
    Finished {
        /// The order.
        order: String,
        /// How.
        status: Status,
        /// When.
        at_ms: u64,
    },
    /// A service applied (or undid) an order's step.
    Applied {
        /// The order.
        order: Order,
        /// An undo.
        undo: bool,
    },
    /// A service declined an order's step.
    Declined {
        /// The order.
        order: String,
        /// Why.
        reason: String,
    },
    /// A compensation came before its step.
    Tombstone {
        /// The order.
        order: String,
    },
}

crate::kinded!(Record {
    Started,
    StepOk,
    StepFailed,
    Undone,
    Finished,
    Applied,
    Declined,
    Tombstone
});

/// The initial totals of service `kind` under `settings`.
pub fn initial_totals(kind: usize, settings: &Settings) -> BTreeMap<String, i64> {
    match kind {
        0 => (1..=settings.skus)
            .map(|i| (format!("sku-{i}"), settings.stock))
            .collect(),
        1 => (1..=settings.accounts)
            .map(|i| (format!("acct-{i}"), settings.balance))
            .collect(),
        _ => BTreeMap::from([("shipments".to_string(), 0)]),
    }
}

/// A node of the saga system: the orchestrator (n1) or a service.
pub type SagaNode = CheckoutNode<Orchestrator, Service>;

impl SagaNode {
    /// Node `id` of a saga cluster, recovered from `records`.
    pub fn new(id: NodeId, settings: &Settings, seed: u64, records: Vec<Record>) -> Self {
        let bug = |b: Bug| settings.bug == Some(b);
        if id == 0 {
            CheckoutNode::Coordinator(Orchestrator::new(
                settings.retry_ms,
                settings.timeout_ms,
                !bug(Bug::NoCompensation),
                !bug(Bug::VolatileLog),
                records,
            ))
        } else {
            let kind = (id as usize - 1).min(2);
            CheckoutNode::Service(Box::new(Service::new(
                kind,
                initial_totals(kind, settings),
                settings.fail[kind],
                bug(Bug::NoIdempotency),
                seed,
                records,
            )))
        }
    }
}

impl Part for Orchestrator {
    type Message = Message;
    type Record = Record;

    fn step(&mut self, now: Now, _from: NodeId, msg: Message) {
        if let Message::StepDone {
            order,
            service,
            undo,
            outcome,
        } = msg
        {
            self.on_step_done(now, &order, service, undo, outcome);
        }
    }

    fn tick(&mut self, now: Now) {
        self.on_tick(now);
    }

    fn next_deadline(&self) -> Option<u64> {
        Orchestrator::next_deadline(self)
    }

    fn outbox(&mut self) -> &mut VecDeque<Output<Message, Record>> {
        &mut self.outbox
    }

    fn state(&self) -> Value {
        self.describe()
    }

    fn order_state(&self, id: &str) -> Value {
        self.describe_order(id)
    }
}

impl Coordinating for Orchestrator {
    const SYSTEM: &'static str = "saga";

    fn place(&mut self, now: Now, client: RequestId, order: Order) {
        Orchestrator::place(self, now, client, order);
    }

    fn get(&mut self, client: RequestId, id: &str) {
        Orchestrator::get(self, client, id);
    }
}

impl Part for Service {
    type Message = Message;
    type Record = Record;

    fn step(&mut self, _now: Now, from: NodeId, msg: Message) {
        if let Message::Step { order, undo } = msg {
            self.on_step(from, order, undo);
        }
    }

    fn tick(&mut self, _now: Now) {}

    /// A service only answers; it has no timer.
    fn next_deadline(&self) -> Option<u64> {
        None
    }

    fn outbox(&mut self) -> &mut VecDeque<Output<Message, Record>> {
        &mut self.outbox
    }

    fn state(&self) -> Value {
        self.describe()
    }

    fn order_state(&self, id: &str) -> Value {
        self.describe_order(id)
    }
}
