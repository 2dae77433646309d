//! The replicated state machine: a key-value map in which `cas` is atomic, and the table of
//! first results by idempotency key. Both are computed by applying the committed log in
//! order, so every node holds the same ones — a client that retries through another node
//! after a leader change gets the first result, applied once.

use std::collections::BTreeMap;

use serde_json::Value;

use super::messages::Command;
use crate::ClientReply;

/// The key-value map and the dedup table.
#[derive(Debug, Default)]
pub(super) struct KvStore {
    kv: BTreeMap<String, Value>,
    /// The first result of every idempotency key applied.
    dedup: BTreeMap<String, ClientReply>,
}

impl KvStore {
    /// Applies a committed command; its result for the client that asked (`None` for a no-op).
    pub(super) fn apply(&mut self, command: Command) -> Option<ClientReply> {
        match command {
            Command::Noop => None,
            Command::Write {
                key,
                value,
                idempotency_key,
            } => Some(self.once(idempotency_key, |kv| {
                kv.insert(key, value);
                write_ok()
            })),
            Command::Txn {
                ops,
                idempotency_key,
            } => Some(self.once(idempotency_key, |kv| {
                let mut staged = Staged {
                    kv,
                    staged: BTreeMap::new(),
                };
                match crate::run_txn(&ops, &mut staged) {
                    // All of it, or (a malformed micro-operation) none of it.
                    Ok(done) => {
                        let writes = staged.staged;
                        kv.extend(writes);
                        ClientReply::Ok {
                            value: Value::Array(done),
                            meta: Value::Null,
                        }
                    }
                    Err(why) => ClientReply::Refused(why),
                }
            })),
            Command::Cas {
                key,
                expect,
                value,
                idempotency_key,
            } => Some(self.once(idempotency_key, |kv| {
                let current = kv.get(&key).cloned().unwrap_or(Value::Null);
                if current == expect {
                    kv.insert(key, value);
                    write_ok()
                } else {
                    ClientReply::Mismatch
                }
            })),
        }
    }

    /// Applies a command once per idempotency key; a repeat gets the first result.
    fn once(
        &mut self,
        key: Option<String>,
        apply: impl FnOnce(&mut BTreeMap<String, Value>) -> ClientReply,
    ) -> ClientReply {
        if let Some(first) = key.as_ref().and_then(|k| self.dedup.get(k)) {
            return first.clone();
        }
        let result = apply(&mut self.kv);
        if let Some(key) = key {
            self.dedup.insert(key, result.clone());
        }
        result
    }

    /// The value of `key`, if it is set.
    pub(super) fn get(&self, key: &str) -> Option<&Value> {
        self.kv.get(key)
    }

    /// Whether `key` is set.
    #[cfg(test)]
    pub(super) fn contains_key(&self, key: &str) -> bool {
        self.kv.contains_key(key)
    }

    /// How many keys are set.
    pub(super) fn len(&self) -> usize {
        self.kv.len()
    }
}

fn write_ok() -> ClientReply {
    ClientReply::Ok {
        value: Value::Null,
        meta: Value::Null,
    }
}

/// A transaction's writes, staged over the store until the whole transaction has run.
struct Staged<'a> {
    kv: &'a BTreeMap<String, Value>,
    staged: BTreeMap<String, Value>,
}

impl crate::TxnState for Staged<'_> {
    fn get(&self, key: &str) -> Value {
        self.staged
            .get(key)
            .or_else(|| self.kv.get(key))
            .cloned()
            .unwrap_or(Value::Null)
    }

    fn set(&mut self, key: &str, value: Value) {
        self.staged.insert(key.to_string(), value);
    }
}
