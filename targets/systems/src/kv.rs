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
    /// `POST /txn`: micro-operations `["r", k, null]`, `["append", k, v]`, `["w", k, v]`.
    Txn {
        /// The micro-operations, reads with null values.
        ops: Vec<Value>,
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
    /// 409: the transaction was aborted; nothing of it was applied.
    Aborted(String),
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
            ClientReply::Aborted(_) => 409,
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
            | ClientReply::Refused(why)
            | ClientReply::Aborted(why) => {
                serde_json::json!({ "error": why })
            }
        }
    }
}

/// The state a transaction reads and writes: a key's value (a list for appends; `null` when
/// absent).
pub trait TxnState {
    /// The value of `key`.
    fn get(&self, key: &str) -> Value;
    /// Sets `key`.
    fn set(&mut self, key: &str, value: Value);
}

/// Runs a transaction's micro-operations, in order, on `state`: fills each read with what it
/// saw. Whether the whole runs atomically is the caller's business. `Err` names a
/// micro-operation that is not one.
pub fn run_txn(ops: &[Value], state: &mut impl TxnState) -> Result<Vec<Value>, String> {
    let mut done = Vec::with_capacity(ops.len());
    for (i, op) in ops.iter().enumerate() {
        let parts = op.as_array().filter(|p| p.len() == 3);
        let (Some(p), Some(f)) = (parts, parts.and_then(|p| p[0].as_str())) else {
            return Err(format!(
                "micro-operation {i} is {op}; expected [f, key, value]"
            ));
        };
        let key = match &p[1] {
            Value::String(s) => s.clone(),
            other => other.to_string(),
        };
        match f {
            "r" => done.push(serde_json::json!(["r", p[1], state.get(&key)])),
            "w" => {
                state.set(&key, p[2].clone());
                done.push(op.clone());
            }
            "append" => {
                let mut list = match state.get(&key) {
                    Value::Array(list) => list,
                    Value::Null => Vec::new(),
                    other => {
                        return Err(format!("key {key} holds {other}, not a list to append to"));
                    }
                };
                list.push(p[2].clone());
                state.set(&key, Value::Array(list));
                done.push(op.clone());
            }
            other => {
                return Err(format!(
                    "micro-operation {i}: unknown `{other}`; expected r, w or append"
                ));
            }
        }
    }
    Ok(done)
}
