//! What a checkout client sends: orders (DESIGN §4.1 `saga`), shared by the saga and two-phase
//! commit systems.

use serde::{Deserialize, Serialize};

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
