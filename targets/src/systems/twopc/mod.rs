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

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::orders::{Order, OrderRequest};
use super::saga::{Bug, Settings, initial_totals};
use super::{ClientReply, ClientRequest, Node, NodeId, Now, Output, RequestId};

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

/// A node of the two-phase commit system.
#[derive(Debug)]
pub enum TwoPcNode {
    /// n1.
    Coordinator(Coordinator),
    /// n2, n3, n4.
    Participant(Box<Participant>),
}

impl TwoPcNode {
    /// Node `id` of a two-phase commit cluster, recovered from `records`.
    pub fn new(id: NodeId, settings: &Settings, seed: u64, records: Vec<Record>) -> Self {
        let bug = |b: Bug| settings.bug == Some(b);
        if id == 0 {
            TwoPcNode::Coordinator(Coordinator::new(
                settings.retry_ms,
                settings.timeout_ms,
                !bug(Bug::NoDecisionLog),
                records,
            ))
        } else {
            let kind = (id as usize - 1).min(2);
            TwoPcNode::Participant(Box::new(Participant::new(
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
            TwoPcNode::Coordinator(c) => &mut c.outbox,
            TwoPcNode::Participant(p) => &mut p.outbox,
        }
    }
}

impl Node for TwoPcNode {
    type Message = Message;
    type Record = Record;

    fn handle_client(&mut self, _now: Now, id: RequestId, _request: ClientRequest) {
        self.outbox().push_back(Output::Reply {
            id,
            reply: ClientReply::Refused(
                "the twopc system takes orders (POST /orders), not the KV protocol".into(),
            ),
        });
    }

    fn handle_order(
        &mut self,
        now: Now,
        id: RequestId,
        request: OrderRequest,
    ) -> Option<ClientReply> {
        let TwoPcNode::Coordinator(c) = self else {
            return Some(ClientReply::Refused(
                "this is a participant; send orders to the coordinator, n1".into(),
            ));
        };
        match request {
            OrderRequest::Place { order, .. } => c.place(now, id, order),
            OrderRequest::Get { id: order } => c.get(id, &order),
        }
        None
    }

    fn handle_peer(&mut self, now: Now, from: NodeId, msg: Message) {
        match self {
            TwoPcNode::Coordinator(c) => c.on_message(now, msg),
            TwoPcNode::Participant(p) => p.on_message(now, from, msg),
        }
    }

    fn handle_tick(&mut self, now: Now) {
        match self {
            TwoPcNode::Coordinator(c) => c.on_tick(now),
            TwoPcNode::Participant(p) => p.on_tick(now),
        }
    }

    fn poll_output(&mut self) -> Option<Output<Message, Record>> {
        self.outbox().pop_front()
    }

    fn describe(&self) -> Value {
        match self {
            TwoPcNode::Coordinator(c) => c.describe(),
            TwoPcNode::Participant(p) => p.describe(),
        }
    }

    fn describe_key(&self, key: &str) -> Value {
        match self {
            TwoPcNode::Coordinator(c) => c.describe_order(key),
            TwoPcNode::Participant(p) => p.describe_order(key),
        }
    }
}
