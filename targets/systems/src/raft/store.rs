//! The replicated state machine: a key-value map in which `cas` is atomic, and the table of
//! first results by idempotency key. Both are computed by applying the committed log in
//! order, so every node holds the same ones — a client that retries through another node
//! after a leader change gets the first result, applied once.

use std::collections::{BTreeMap, HashMap};

use serde_json::Value;

use super::messages::Command;
use crate::ClientReply;

/// The key-value map and the dedup table.
#[derive(Debug, Default)]
pub(super) struct KvStore {
    kv: BTreeMap<String, Value>,
    /// The first result of every idempotency key applied.
    dedup: HashMap<String, ClientReply>,
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
