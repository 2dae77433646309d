//! The client side every key-value reference system shares: requests, replies, node ids and
//! the time a runtime reads for its node.

use serde_json::Value;

/// A node's index in its cluster, from 0; its name is `n{id + 1}`.
pub type NodeId = u32;

/// The runtime's handle on one client request.
pub type RequestId = u64;

/// The name of a node: `n1`, `n2`, ...
pub fn node_name(id: NodeId) -> String {
    format!("n{}", id + 1)
}

/// Two readings of the node's clock: `mono` for deadlines (never skewed), `wall` for what the
/// system stamps on data (skewed by the clock fault).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Now {
    /// Milliseconds of a monotonic clock.
    pub mono_ms: u64,
    /// Milliseconds since the Unix epoch, plus the node's clock offset.
    pub wall_ms: u64,
}

/// A client's request, as the faultline KV protocol carries it (DESIGN §4).
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub enum ClientRequest {
    /// `GET /kv/{key}`.
    Get {
        /// The key.
        key: String,
    },
    /// `PUT /kv/{key}`; `context` is what an earlier read returned in `meta.context`.
    Put {
        /// The key.
        key: String,
        /// The value.
        value: Value,
        /// The causal context of the read this write follows, if any.
        context: Option<Value>,
        /// The request's `Idempotency-Key`, for systems that replicate their dedup table.
        idempotency_key: Option<String>,
    },
    /// `POST /kv/{key}/cas`.
    Cas {
        /// The key.
        key: String,
        /// The value the key must hold.
        expect: Value,
        /// The value to write if it does.
        value: Value,
        /// The request's `Idempotency-Key`.
        idempotency_key: Option<String>,
    },
}

/// The answer to a client request, mapped onto HTTP by the runtime.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub enum ClientReply {
    /// 200 with `{"value": v, "meta": m}`; `value` is null for writes.
    Ok {
        /// The value read.
        value: Value,
        /// What the system returns beside the value (version, context, siblings).
        meta: Value,
    },
    /// 404: the key is absent (value null).
    NotFound {
        /// Beside the absence (a context to write with).
        meta: Value,
    },
    /// 412: a cas found another value.
    Mismatch,
    /// 503: nothing was applied.
    Unavailable(String),
    /// 504: indeterminate, some replicas may hold the write.
    Timeout(String),
    /// 400: the request makes no sense to this system; nothing was applied.
    Refused(String),
}

impl ClientReply {
    /// The HTTP status the protocol gives this reply.
    pub fn status(&self) -> u16 {
        match self {
            ClientReply::Ok { .. } => 200,
            ClientReply::NotFound { .. } => 404,
            ClientReply::Mismatch => 412,
            ClientReply::Unavailable(_) => 503,
            ClientReply::Timeout(_) => 504,
            ClientReply::Refused(_) => 400,
        }
    }

    /// The JSON body the protocol gives this reply.
    pub fn body(&self) -> Value {
        match self {
            ClientReply::Ok { value, meta } => {
                if meta.is_null() {
                    serde_json::json!({ "value": value })
                } else {
                    serde_json::json!({ "value": value, "meta": meta })
                }
            }
            ClientReply::NotFound { meta } => {
                if meta.is_null() {
                    serde_json::json!({ "value": null })
                } else {
                    serde_json::json!({ "value": null, "meta": meta })
                }
            }
            ClientReply::Mismatch => serde_json::json!({ "error": "mismatch" }),
            ClientReply::Unavailable(why)
            | ClientReply::Timeout(why)
            | ClientReply::Refused(why) => {
                serde_json::json!({ "error": why })
            }
        }
    }
}
