//! The set: `add` an element, `read` the whole set as a JSON array (order ignored).

use std::sync::Arc;

use serde_json::Value;

use super::{Interner, Model, ModelError, ModelKind, Semantics, unknown_operation};
use crate::history::Operation;

/// A set of interned elements, kept sorted.
#[derive(Debug)]
pub(crate) struct Set {
    values: Interner,
    initial: Arc<[u32]>,
}

/// A compiled set operation.
#[derive(Debug, Clone)]
pub(crate) enum SetOp {
    Add(u32),
    /// A read that returned these elements (sorted, distinct); `None` matches any set.
    Read(Option<Arc<[u32]>>),
}

fn elements(values: &mut Interner, op: &Operation, v: &Value) -> Result<Arc<[u32]>, ModelError> {
    match v {
        Value::Null => Ok(Arc::from([])),
        Value::Array(items) => {
            let mut ids: Vec<u32> = items.iter().map(|i| values.intern(i)).collect();
            ids.sort_unstable();
            ids.dedup();
            Ok(ids.into())
        }
        other => Err(ModelError::new(
            op,
            format!("a set read returns an array of elements, but this one returned {other}"),
        )),
    }
}

impl Set {
    /// Compiles one set's operations.
    pub(crate) fn build(
        ops: &[&Operation],
        initial: &Value,
        semantics: Semantics,
    ) -> Result<(Self, Vec<SetOp>), ModelError> {
        let mut values = Interner::new();
        let initial = match ops.first() {
            Some(first) => elements(&mut values, first, initial)?,
            None => Arc::from([]),
        };
        let compiled = ops
            .iter()
            .map(|op| {
                Ok(match op.f.as_str() {
                    "add" => SetOp::Add(values.intern(&op.input)),
                    "read" if semantics == Semantics::Knossos && op.output.is_null() => {
                        SetOp::Read(None)
                    }
                    "read" => SetOp::Read(Some(elements(&mut values, op, &op.output)?)),
                    _ => return Err(unknown_operation(ModelKind::Set, op)),
                })
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok((Set { values, initial }, compiled))
    }
}

impl Model for Set {
    type Op = SetOp;
    type State = Arc<[u32]>;

    fn init(&self) -> Arc<[u32]> {
        self.initial.clone()
    }

    fn step(&self, state: &Arc<[u32]>, op: &SetOp) -> Option<Arc<[u32]>> {
        match op {
            SetOp::Add(e) => match state.binary_search(e) {
                Ok(_) => Some(state.clone()),
                Err(at) => {
                    let mut next = Vec::with_capacity(state.len() + 1);
                    next.extend_from_slice(&state[..at]);
                    next.push(*e);
                    next.extend_from_slice(&state[at..]);
                    Some(next.into())
                }
            },
            SetOp::Read(None) => Some(state.clone()),
            SetOp::Read(Some(seen)) => (seen == state).then(|| state.clone()),
        }
    }

    fn only_observes(&self, op: &SetOp) -> bool {
        matches!(op, SetOp::Read(_))
    }

    fn describe(&self, state: &Arc<[u32]>) -> String {
        let items: Vec<String> = state
            .iter()
            .map(|&id| self.values.value(id).to_string())
            .collect();
        super::shorten(format!("#{{{}}}", items.join(" ")), 80)
    }

    fn heap_bytes(&self, state: &Arc<[u32]>) -> usize {
        state.len() * 4 + 16
    }
}
