//! What the checkout systems (saga, two-phase commit) share: a node is either the coordinator
//! (n1), which takes orders, or one of the three services (n2–n4); the HTTP-facing behaviour
//! of both is the same, so one [`CheckoutNode`] drives the parts of either system.

use std::collections::VecDeque;

use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;

use super::orders::{Order, OrderRequest};
use super::{ClientReply, ClientRequest, Kinded, Node, NodeId, Now, Output, RequestId};

/// A coordinator's or a service's state machine.
pub trait Part {
    /// Messages between the parts.
    type Message: Serialize + DeserializeOwned + Kinded + Clone + Send + std::fmt::Debug + 'static;
    /// What the part persists.
    type Record: Serialize + DeserializeOwned + Kinded + Clone + Send + 'static;
    /// A peer's message arrived.
    fn step(&mut self, now: Now, from: NodeId, msg: Self::Message);
    /// Time passed.
    fn tick(&mut self, now: Now);
    /// When [`Part::tick`] must next be called (see [`Node::poll_timeout`]).
    fn next_deadline(&self) -> Option<u64>;
    /// What the part has to do.
    fn outbox(&mut self) -> &mut VecDeque<Output<Self::Message, Self::Record>>;
    /// The whole state, for `GET /state`.
    fn state(&self) -> Value;
    /// What it holds for one order.
    fn order_state(&self, id: &str) -> Value;
}

/// The part that takes orders.
pub trait Coordinating: Part {
    /// The system's name, for refusals.
    const SYSTEM: &'static str;
    /// `POST /orders`.
    fn place(&mut self, now: Now, client: RequestId, order: Order);
    /// `GET /orders/{id}`.
    fn get(&mut self, client: RequestId, id: &str);
}

/// A node of a checkout system.
#[derive(Debug)]
pub enum CheckoutNode<C, S> {
    /// n1.
    Coordinator(C),
    /// n2, n3, n4.
    Service(Box<S>),
}

impl<C, S> CheckoutNode<C, S>
where
    C: Coordinating,
    S: Part<Message = C::Message, Record = C::Record>,
{
    fn part(&mut self) -> &mut dyn Part<Message = C::Message, Record = C::Record> {
        match self {
            CheckoutNode::Coordinator(c) => c,
            CheckoutNode::Service(s) => s.as_mut(),
        }
    }
}

impl<C, S> Node for CheckoutNode<C, S>
where
    C: Coordinating + Send + 'static,
    S: Part<Message = C::Message, Record = C::Record> + Send + 'static,
{
    type Message = C::Message;
    type Record = C::Record;

    fn handle_client(&mut self, _now: Now, id: RequestId, _request: ClientRequest) {
        let why = format!(
            "the {} system takes orders (POST /orders), not the KV protocol",
            C::SYSTEM
        );
        self.part().outbox().push_back(Output::Reply {
            id,
            reply: ClientReply::Refused(why),
        });
    }

    fn handle_order(
        &mut self,
        now: Now,
        id: RequestId,
        request: OrderRequest,
    ) -> Option<ClientReply> {
        let CheckoutNode::Coordinator(c) = self else {
            return Some(ClientReply::Refused(
                "this is a service; send orders to the coordinator, n1".into(),
            ));
        };
        match request {
            OrderRequest::Place { order, .. } => c.place(now, id, order),
            OrderRequest::Get { id: order } => c.get(id, &order),
        }
        None
    }

    fn handle_peer(&mut self, now: Now, from: NodeId, msg: C::Message) {
        self.part().step(now, from, msg);
    }

    fn handle_tick(&mut self, now: Now) {
        self.part().tick(now);
    }

    fn poll_timeout(&self) -> Option<u64> {
        match self {
            CheckoutNode::Coordinator(c) => c.next_deadline(),
            CheckoutNode::Service(s) => s.next_deadline(),
        }
    }

    fn poll_output(&mut self) -> Option<Output<C::Message, C::Record>> {
        self.part().outbox().pop_front()
    }

    fn describe(&self) -> Value {
        match self {
            CheckoutNode::Coordinator(c) => c.state(),
            CheckoutNode::Service(s) => s.state(),
        }
    }

    fn describe_key(&self, key: &str) -> Value {
        match self {
            CheckoutNode::Coordinator(c) => c.order_state(key),
            CheckoutNode::Service(s) => s.order_state(key),
        }
    }
}
