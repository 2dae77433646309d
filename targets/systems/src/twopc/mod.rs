//! The two-phase commit checkout (DESIGN §4.1 `twopc`): the saga's services as participants —
//! inventory (n2), payment (n3), shipping (n4) — and a coordinator (n1), with the same
//! `POST /orders`, `GET /orders/{id}` and `GET /state`.
//!
//! Prepare locks the order's stock and money; the coordinator commits only if every
//! participant voted yes, writes its decision to a durable log, and delivers it until every
//! participant acknowledged. No order is ever visible half-done for longer than the decision
//! takes to arrive — but a participant that voted yes and cannot hear the coordinator stays
//! blocked, holding its locks; `GET /state` on a participant reports how long each order was
//! held (`blocked_ms`) and what is in doubt now.
//!
//! Bug switches: `no-decision-log` (the coordinator does not log its decisions: restarted, it
//! presumes abort for orders some participants already committed), `no-idempotency`
//! (participants apply a repeated commit again).

mod coordinator;
mod participant;
#[cfg(test)]
mod tests;

pub use coordinator::Coordinator;
pub use participant::Participant;

use std::collections::VecDeque;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::checkout::{CheckoutNode, Coordinating, Part};
use super::orders::Order;
use super::saga::{Bug, Settings, initial_totals};
use super::{NodeId, Now, Output, RequestId};

/// Messages between the coordinator and the participants.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum Message {
    /// Lock what the order needs and vote.
    Prepare {
        /// The order.
        order: Order,
    },
    /// A participant's vote.
    Vote {
        /// The order's id.
        order: String,
        /// Which participant (0 inventory, 1 payment, 2 shipping).
        service: usize,
        /// Yes, or no with the reason.
        vote: Result<(), String>,
    },
    /// The decision.
    Decide {
        /// The order.
        order: Order,
        /// Commit or abort.
        commit: bool,
    },
    /// A participant applied the decision.
    Ack {
        /// The order's id.
        order: String,
        /// Which participant.
        service: usize,
    },
}

crate::kinded!(Message {
    Prepare,
    Vote,
    Decide,
    Ack
});

/// What nodes persist.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum Record {
    /// The coordinator began an order.
    Begun(Order),
    /// The coordinator decided.
    Decided {
        /// The order.
        order: String,
        /// Commit or abort.
        commit: bool,
        /// Why it aborted.
        reason: Option<String>,
    },
    /// Every participant acknowledged the decision.
    Ended {
        /// The order.
        order: String,
        /// What was decided.
        commit: bool,
    },
    /// A participant voted yes and holds the order's resources.
    Prepared {
        /// The order.
        order: Order,
        /// When.
        at_ms: u64,
    },
    /// A participant committed.
    Committed {
        /// The order.
        order: Order,
        /// When.
        at_ms: u64,
    },
    /// A participant voted no or aborted.
    Aborted {
        /// The order.
        order: String,
        /// When.
        at_ms: u64,
    },
}

crate::kinded!(Record {
    Begun,
    Decided,
    Ended,
    Prepared,
    Committed,
    Aborted
});

/// A node of the two-phase commit system: the coordinator (n1) or a participant.
pub type TwoPcNode = CheckoutNode<Coordinator, Participant>;

impl TwoPcNode {
    /// Node `id` of a two-phase commit cluster, recovered from `records`.
    pub fn new(id: NodeId, settings: &Settings, seed: u64, records: Vec<Record>) -> Self {
        let bug = |b: Bug| settings.bug == Some(b);
        if id == 0 {
            CheckoutNode::Coordinator(Coordinator::new(
                settings.retry_ms,
                settings.timeout_ms,
                !bug(Bug::NoDecisionLog),
                records,
            ))
        } else {
            let kind = (id as usize - 1).min(2);
            CheckoutNode::Service(Box::new(Participant::new(
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

impl Part for Coordinator {
    type Message = Message;
    type Record = Record;

    fn step(&mut self, now: Now, _from: NodeId, msg: Message) {
        self.on_message(now, msg);
    }

    fn tick(&mut self, now: Now) {
        self.on_tick(now);
    }

    fn next_deadline(&self) -> Option<u64> {
        Coordinator::next_deadline(self)
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

impl Coordinating for Coordinator {
    const SYSTEM: &'static str = "twopc";

    fn place(&mut self, now: Now, client: RequestId, order: Order) {
        Coordinator::place(self, now, client, order);
    }

    fn get(&mut self, client: RequestId, id: &str) {
        Coordinator::get(self, client, id);
    }
}

impl Part for Participant {
    type Message = Message;
    type Record = Record;

    fn step(&mut self, now: Now, from: NodeId, msg: Message) {
        self.on_message(now, from, msg);
    }

    fn tick(&mut self, now: Now) {
        self.on_tick(now);
    }

    /// A participant only answers; its clock moves with the messages it gets and the runtime's
    /// reads of its state.
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
