//! Transactions as the transactional checker sees them: each operation of a history whose
//! value is a list of micro-operations (`["append", k, v]`, `["w", k, v]`, `["r", k, …]`),
//! with keys and values interned to small integers.

use rustc_hash::FxHashMap;
use serde_json::Value;

use crate::history::{History, Operation, Status};
use crate::model::ModelError;

/// A key or a value, interned.
pub(crate) type Id = u32;

/// One micro-operation.
#[derive(Clone, Debug, PartialEq)]
pub(crate) enum Mop {
    /// Append `value` to the list at `key`.
    Append { key: Id, value: Id },
    /// Set the register `key` to `value`.
    Write { key: Id, value: Id },
    /// Read `key`: the list read (list-append), or the value (`None`: nil; rw-register); `None`
    /// as a whole when the read's result is not known (not committed).
    Read { key: Id, value: Option<Observed> },
}

/// What a committed read saw.
#[derive(Clone, Debug, PartialEq)]
pub(crate) enum Observed {
    /// A list-append read: the elements, in order.
    List(Vec<Id>),
    /// A register read: the value, or nil.
    Register(Option<Id>),
}

/// A transaction: one operation of the history.
#[derive(Clone, Debug)]
pub(crate) struct Txn {
    /// The operation's position in the history.
    pub(crate) op: usize,
    pub(crate) process: u64,
    pub(crate) status: Status,
    pub(crate) call: u64,
    pub(crate) ret: Option<u64>,
    pub(crate) line: usize,
    pub(crate) mops: Vec<Mop>,
}

/// Interns JSON scalars (numbers, strings) to ids, keeping their text for explanations.
#[derive(Default)]
pub(crate) struct Interner {
    ints: FxHashMap<i64, Id>,
    texts: FxHashMap<String, Id>,
    names: Vec<String>,
}

impl Interner {
    fn intern(&mut self, value: &Value) -> Option<Id> {
        let next = self.names.len() as Id;
        match value {
            Value::Number(n) => {
                if let Some(i) = n.as_i64() {
                    return Some(*self.ints.entry(i).or_insert_with(|| {
                        self.names.push(i.to_string());
                        next
                    }));
                }
                self.intern_text(n.to_string())
            }
            Value::String(s) => self.intern_text(format!("{s:?}")),
            Value::Bool(_) => self.intern_text(value.to_string()),
            Value::Null | Value::Array(_) | Value::Object(_) => None,
        }
    }

    fn intern_text(&mut self, text: String) -> Option<Id> {
        let next = self.names.len() as Id;
        if let Some(&id) = self.texts.get(&text) {
            return Some(id);
        }
        self.names.push(text.clone());
        self.texts.insert(text, next);
        Some(next)
    }

    /// The text of an id, as it was written in the history.
    pub(crate) fn name(&self, id: Id) -> &str {
        &self.names[id as usize]
    }
}

/// Whether an operation is a transaction: `f` is `txn`, or its value is a list of
/// micro-operations (histories from other tools may have no `f`).
pub(crate) fn is_txn(op: &Operation) -> bool {
    op.f == "txn"
}

/// Whether a value is a list of micro-operations (what makes an event without `f` a
/// transaction).
pub(crate) fn looks_like_mops(value: &Value) -> bool {
    value.as_array().is_some_and(|list| {
        !list.is_empty()
            && list.iter().all(|m| {
                m.as_array()
                    .and_then(|m| m.first())
                    .and_then(Value::as_str)
                    .is_some_and(|f| matches!(f, "append" | "r" | "w"))
            })
    })
}

/// Every transaction of `history`, with keys and values interned into `interner`.
pub(crate) fn transactions(
    history: &History,
    interner: &mut Interner,
) -> Result<Vec<Txn>, ModelError> {
    let mut txns = Vec::with_capacity(history.ops.len());
    for op in history.ops.iter().filter(|op| is_txn(op)) {
        txns.push(transaction(op, interner)?);
    }
    Ok(txns)
}

fn transaction(op: &Operation, interner: &mut Interner) -> Result<Txn, ModelError> {
    let input = mops_of(op, &op.input)?;
    // A committed transaction's reads are in its completion; others' are unknown.
    let output = match op.status {
        Status::Ok => Some(mops_of(op, &op.output)?),
        _ => None,
    };
    if let Some(out) = &output {
        if out.len() != input.len() {
            return Err(ModelError::new(
                op,
                format!(
                    "the transaction completed with {} micro-operations but was invoked with {}",
                    out.len(),
                    input.len()
                ),
            ));
        }
    }
    let mut mops = Vec::with_capacity(input.len());
    for (i, (f, key, value)) in input.iter().enumerate() {
        let key = interner.intern(key).ok_or_else(|| {
            ModelError::new(
                op,
                format!("micro-operation {i}: the key {key} is not a number or a string"),
            )
        })?;
        let scalar = |interner: &mut Interner, v: &Value| {
            interner.intern(v).ok_or_else(|| {
                ModelError::new(
                    op,
                    format!("micro-operation {i}: the value {v} is not a number or a string"),
                )
            })
        };
        mops.push(match *f {
            "append" => Mop::Append {
                key,
                value: scalar(interner, value)?,
            },
            "w" => Mop::Write {
                key,
                value: scalar(interner, value)?,
            },
            _ => {
                let read = output.as_ref().map(|out| &out[i].2);
                let value = match read {
                    None => None,
                    Some(Value::Null) => Some(Observed::Register(None)),
                    Some(Value::Array(list)) => {
                        let mut elements = Vec::with_capacity(list.len());
                        for element in list {
                            elements.push(scalar(interner, element)?);
                        }
                        Some(Observed::List(elements))
                    }
                    Some(v) => Some(Observed::Register(Some(scalar(interner, v)?))),
                };
                Mop::Read { key, value }
            }
        });
    }
    Ok(Txn {
        op: op.id,
        process: op.process,
        status: op.status,
        call: op.call,
        ret: op.ret,
        line: op.line,
        mops,
    })
}

/// The micro-operations of a transaction's value: (f, key, value).
fn mops_of<'a>(
    op: &Operation,
    value: &'a Value,
) -> Result<Vec<(&'a str, &'a Value, &'a Value)>, ModelError> {
    let Some(list) = value.as_array() else {
        return Err(ModelError::new(
            op,
            format!(
                "a transaction's value is a list of micro-operations such as [[\"append\", 1, 2], [\"r\", 1, null]], not {value}"
            ),
        ));
    };
    list.iter()
        .enumerate()
        .map(|(i, m)| {
            let parts = m.as_array().filter(|p| p.len() == 3);
            let f = parts.and_then(|p| p[0].as_str());
            match (parts, f) {
                (Some(p), Some(f @ ("append" | "r" | "w"))) => Ok((f, &p[1], &p[2])),
                _ => Err(ModelError::new(
                    op,
                    format!("micro-operation {i} is {m}; expected [\"append\", k, v], [\"w\", k, v] or [\"r\", k, v]"),
                )),
            }
        })
        .collect()
}
