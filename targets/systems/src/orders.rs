//! What a checkout client sends: orders (DESIGN §4.1 `saga`), shared by the saga and two-phase
//! commit systems.

use std::collections::VecDeque;

use serde::{Deserialize, Serialize};

use super::{ClientReply, Output, RequestId};

/// One order: reserve `qty` of `sku`, charge `amount` to `account`, ship it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Order {
    /// The order's id, unique per order (a retry carries the same id).
    pub order: String,
    /// The item.
    pub sku: String,
    /// How many.
    pub qty: i64,
    /// Who pays.
    pub account: String,
    /// How much.
    pub amount: i64,
}

impl Order {
    /// Checks the fields a person could get wrong.
    pub fn validate(&self) -> Result<(), String> {
        if self.order.is_empty() || self.order.len() > 256 {
            return Err("`order` must be 1 to 256 bytes".into());
        }
        if self.qty <= 0 || self.amount <= 0 {
            return Err("`qty` and `amount` must be positive".into());
        }
        Ok(())
    }
}

/// A client's request to an order coordinator.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum OrderRequest {
    /// `POST /orders`: run the checkout (once per order id).
    Place {
        /// The order.
        order: Order,
        /// The request's `Idempotency-Key`.
        idempotency_key: Option<String>,
    },
    /// `GET /orders/{id}`.
    Get {
        /// The order's id.
        id: String,
    },
}

/// Clients waiting for their order's outcome at a coordinator, each until a deadline.
#[derive(Debug, Default)]
pub struct Waiting {
    clients: Vec<(RequestId, String, u64)>,
}

impl Waiting {
    /// `client` waits for `order` until the monotonic time `deadline_ms`.
    pub fn add(&mut self, client: RequestId, order: String, deadline_ms: u64) {
        self.clients.push((client, order, deadline_ms));
    }

    /// Removes and returns the clients waiting for `order`.
    pub fn take(&mut self, order: &str) -> Vec<RequestId> {
        let (ready, rest) = std::mem::take(&mut self.clients)
            .into_iter()
            .partition(|w| w.1 == order);
        self.clients = rest;
        ready.into_iter().map(|(client, _, _)| client).collect()
    }

    /// The earliest deadline of a waiting client.
    pub fn next_deadline(&self) -> Option<u64> {
        self.clients.iter().map(|w| w.2).min()
    }

    /// Removes the clients whose deadline passed at `now_ms` and answers each with
    /// `answer(order)`.
    pub fn expire<M, R>(
        &mut self,
        now_ms: u64,
        outbox: &mut VecDeque<Output<M, R>>,
        answer: impl Fn(&str) -> ClientReply,
    ) {
        let (late, rest): (Vec<_>, Vec<_>) = std::mem::take(&mut self.clients)
            .into_iter()
            .partition(|w| now_ms >= w.2);
        self.clients = rest;
        for (client, id, _) in late {
            outbox.push_back(Output::Reply {
                id: client,
                reply: answer(&id),
            });
        }
    }
}

/// Whether a coordinator that knows `known` (the order placed before under this id, if any)
/// must refuse `order`: a malformed order, or an id reused with other contents.
pub fn refusal(order: &Order, known: Option<&Order>) -> Option<ClientReply> {
    if let Err(why) = order.validate() {
        return Some(ClientReply::Refused(why));
    }
    match known {
        Some(before) if before != order => Some(ClientReply::Refused(format!(
            "order {} was placed before with other contents",
            order.order
        ))),
        _ => None,
    }
}
