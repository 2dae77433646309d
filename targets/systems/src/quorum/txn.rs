//! Transactions on the quorum store, with no isolation at all (documented): a transaction's
//! micro-operations run one after another as ordinary quorum operations — a read is a quorum
//! read; a write a quorum write; an append a quorum read of the list, then a quorum write of
//! the list with the value added. Nothing is atomic and nothing is isolated, so the
//! transactional checker shows what that gives (lost appends, read skew, ...).

use serde_json::{Value, json};

use crate::{ClientReply, ClientRequest, RequestId};

/// Sub-requests of transactions live above this, apart from the runtime's request ids.
pub(super) const TXN_BASE: RequestId = 1 << 61;

/// One transaction in progress on its coordinator.
#[derive(Clone, Debug)]
pub(super) struct TxnRun {
    /// The client that asked.
    pub(super) client: RequestId,
    ops: Vec<Value>,
    done: Vec<Value>,
    /// Whether a write was sent (then a failure leaves the outcome unknown).
    wrote: bool,
    /// An append waiting for its read: the list is being read.
    appending: bool,
}

/// What to do next for a transaction.
pub(super) enum Next {
    /// Send this sub-request.
    Send(ClientRequest),
    /// Answer the client.
    Done(ClientReply),
}

fn key_of(op: &Value) -> String {
    match &op[1] {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

impl TxnRun {
    /// A transaction of `ops` for `client`.
    pub(super) fn new(client: RequestId, ops: Vec<Value>) -> Self {
        TxnRun {
            client,
            ops,
            done: Vec::new(),
            wrote: false,
            appending: false,
        }
    }

    /// The next step: the sub-request of the next micro-operation, or the answer.
    pub(super) fn next(&mut self) -> Next {
        let Some(op) = self.ops.get(self.done.len()) else {
            return Next::Done(ClientReply::Ok {
                value: Value::Array(std::mem::take(&mut self.done)),
                meta: Value::Null,
            });
        };
        let key = key_of(op);
        match op[0].as_str() {
            Some("r") => Next::Send(ClientRequest::Get { key }),
            Some("append") => {
                self.appending = true;
                Next::Send(ClientRequest::Get { key })
            }
            Some("w") => {
                self.wrote = true;
                Next::Send(ClientRequest::Put {
                    key,
                    value: op[2].clone(),
                    context: None,
                    idempotency_key: None,
                })
            }
            _ => Next::Done(ClientReply::Refused(format!(
                "micro-operation {op}: expected r, w or append"
            ))),
        }
    }

    /// The answer to the last sub-request; then the next step.
    pub(super) fn on_reply(&mut self, reply: ClientReply) -> Next {
        let op = self.ops[self.done.len()].clone();
        let value = match reply {
            ClientReply::Ok { value, .. } => value,
            ClientReply::NotFound { .. } => Value::Null,
            failed => return Next::Done(self.failed(failed)),
        };
        if self.appending {
            self.appending = false;
            let mut list = match value {
                Value::Array(list) => list,
                Value::Null => Vec::new(),
                other => {
                    return Next::Done(self.failed(ClientReply::Refused(format!(
                        "key {} holds {other}, not a list",
                        key_of(&op)
                    ))));
                }
            };
            list.push(op[2].clone());
            self.wrote = true;
            // The append's write: the list read, with the value added.
            self.ops[self.done.len()] = json!(["append-write", op[1], op[2]]);
            return Next::Send(ClientRequest::Put {
                key: key_of(&op),
                value: Value::Array(list),
                context: None,
                idempotency_key: None,
            });
        }
        match op[0].as_str() {
            Some("r") => self.done.push(json!(["r", op[1], value])),
            Some("append-write") => self.done.push(json!(["append", op[1], op[2]])),
            _ => self.done.push(op),
        }
        self.next()
    }

    /// A sub-request failed: nothing was applied if nothing was written yet; else unknown.
    fn failed(&self, reply: ClientReply) -> ClientReply {
        let why = format!("{:?}", reply);
        match reply {
            ClientReply::Refused(_) if !self.wrote => reply,
            _ if !self.wrote => ClientReply::Unavailable(format!(
                "a micro-operation could not run, before any write: {why}"
            )),
            _ => ClientReply::Timeout(format!(
                "a micro-operation failed after earlier ones wrote: {why}"
            )),
        }
    }
}
