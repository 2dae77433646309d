//! The FIFO queue: `enqueue` a value, `dequeue` the oldest (`null` when the queue is empty).

use std::sync::Arc;

use serde_json::Value;

use super::{Interner, Model, ModelError, ModelKind, Outcome, unknown_operation};
use crate::history::Operation;

/// A queue of interned values; the front is index 0.
#[derive(Debug)]
pub(crate) struct Queue {
    values: Interner,
    initial: Arc<[u32]>,
}

/// A compiled queue operation.
#[derive(Debug, Clone, Copy)]
pub(crate) enum QueueOp {
    Enqueue(u32),
    /// A dequeue that returned this value (`NULL`: the queue was empty).
    Dequeue(u32),
    /// A dequeue whose result is unknown: it took the front, if any.
    DequeueUnknown,
}

impl Queue {
    /// Compiles one queue's operations. A dequeue of `null` means the queue was empty in both
    /// semantics: Knossos' nil convention is about reads.
    pub(crate) fn build(
        ops: &[&Operation],
        initial: &Value,
    ) -> Result<(Self, Vec<QueueOp>), ModelError> {
        let mut values = Interner::new();
        let initial: Arc<[u32]> = match initial {
            Value::Null => Arc::from([]),
            Value::Array(items) => items.iter().map(|i| values.intern(i)).collect(),
            other => {
                return Err(ModelError {
                    line: ops.first().map_or(0, |op| op.line),
                    message: format!("a queue's --initial is an array (front first), not {other}"),
                });
            }
        };
        let compiled = ops
            .iter()
            .map(|op| {
                Ok(match op.f.as_str() {
                    "enqueue" => QueueOp::Enqueue(values.intern(&op.input)),
                    "dequeue" if Outcome::of(op) == Outcome::Unknown => QueueOp::DequeueUnknown,
                    "dequeue" => QueueOp::Dequeue(values.intern(&op.output)),
                    _ => return Err(unknown_operation(ModelKind::Queue, op)),
                })
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok((Queue { values, initial }, compiled))
    }
}

impl Model for Queue {
    type Op = QueueOp;
    type State = Arc<[u32]>;

    fn init(&self) -> Arc<[u32]> {
        self.initial.clone()
    }

    fn step(&self, state: &Arc<[u32]>, op: &QueueOp) -> Option<Arc<[u32]>> {
        match *op {
            QueueOp::Enqueue(v) => {
                let mut next = Vec::with_capacity(state.len() + 1);
                next.extend_from_slice(state);
                next.push(v);
                Some(next.into())
            }
            QueueOp::Dequeue(Interner::NULL) => state.is_empty().then(|| state.clone()),
            QueueOp::Dequeue(v) => (state.first() == Some(&v)).then(|| state[1..].into()),
            QueueOp::DequeueUnknown => Some(if state.is_empty() {
                state.clone()
            } else {
                state[1..].into()
            }),
        }
    }

    fn describe(&self, state: &Arc<[u32]>) -> String {
        let items: Vec<String> = state
            .iter()
            .map(|&id| self.values.value(id).to_string())
            .collect();
        super::shorten(format!("[{}]", items.join(" ")), 80)
    }

    fn heap_bytes(&self, state: &Arc<[u32]>) -> usize {
        state.len() * 4 + 16
    }
}
