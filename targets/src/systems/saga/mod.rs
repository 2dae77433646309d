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

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::orders::{Order, OrderRequest};
use super::{ClientReply, ClientRequest, Node, NodeId, Now, Output, RequestId};

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

/// A node of the saga system.
#[derive(Debug)]
pub enum SagaNode {
    /// n1.
    Orchestrator(Orchestrator),
    /// n2, n3, n4.
    Service(Box<Service>),
}

impl SagaNode {
    /// Node `id` of a saga cluster, recovered from `records`.
    pub fn new(id: NodeId, settings: &Settings, seed: u64, records: Vec<Record>) -> Self {
        let bug = |b: Bug| settings.bug == Some(b);
        if id == 0 {
            SagaNode::Orchestrator(Orchestrator::new(
                settings.retry_ms,
                settings.timeout_ms,
                !bug(Bug::NoCompensation),
                !bug(Bug::VolatileLog),
                records,
            ))
        } else {
            let kind = (id as usize - 1).min(2);
            SagaNode::Service(Box::new(Service::new(
                kind,
                initial_totals(kind, settings),
                settings.fail[kind],
                bug(Bug::NoIdempotency),
                seed,
                records,
            )))
        }
    }

    fn outbox(&mut self) -> &mut std::collections::VecDeque<Output<Message, Record>> {
        match self {
            SagaNode::Orchestrator(o) => &mut o.outbox,
            SagaNode::Service(s) => &mut s.outbox,
        }
    }
}

impl Node for SagaNode {
    type Message = Message;
    type Record = Record;

    fn handle_client(&mut self, _now: Now, id: RequestId, _request: ClientRequest) {
        self.outbox().push_back(Output::Reply {
            id,
            reply: ClientReply::Refused(
                "the saga system takes orders (POST /orders), not the KV protocol".into(),
            ),
        });
    }

    fn handle_order(
        &mut self,
        now: Now,
        id: RequestId,
        request: OrderRequest,
    ) -> Option<ClientReply> {
        let SagaNode::Orchestrator(o) = self else {
            return Some(ClientReply::Refused(
                "this is a service; send orders to the orchestrator, n1".into(),
            ));
        };
        match request {
            OrderRequest::Place { order, .. } => o.place(now, id, order),
            OrderRequest::Get { id: order } => o.get(id, &order),
        }
        None
    }

    fn handle_peer(&mut self, now: Now, from: NodeId, msg: Message) {
        match (self, msg) {
            (SagaNode::Service(s), Message::Step { order, undo }) => s.on_step(from, order, undo),
            (
                SagaNode::Orchestrator(o),
                Message::StepDone {
                    order,
                    service,
                    undo,
                    outcome,
                },
            ) => o.on_step_done(now, &order, service, undo, outcome),
            _ => {}
        }
    }

    fn handle_tick(&mut self, now: Now) {
        if let SagaNode::Orchestrator(o) = self {
            o.on_tick(now);
        }
    }

    fn poll_output(&mut self) -> Option<Output<Message, Record>> {
        self.outbox().pop_front()
    }

    fn describe(&self) -> Value {
        match self {
            SagaNode::Orchestrator(o) => o.describe(),
            SagaNode::Service(s) => s.describe(),
        }
    }

    fn describe_key(&self, key: &str) -> Value {
        match self {
            SagaNode::Orchestrator(o) => o.describe_order(key),
            SagaNode::Service(s) => s.describe_order(key),
        }
    }
}
