//! Sequential specifications: what each kind of object may legally do, one operation at a time.
//!
//! A [`Model`] is a pure function from (state, operation) to the next state, or to "illegal".
//! Before a search, each object's operations are compiled into the model's own small operation
//! type, with values interned to integers (DESIGN §3.1), so a step is integer work. The search
//! in [`crate::linearizability`] drives models through this trait and knows nothing else of them.

mod interner;
mod queue;
mod register;
mod set;
mod text;

use std::fmt;
use std::hash::Hash;
use std::str::FromStr;

use serde::Serialize;
use serde_json::Value;

use crate::history::{Operation, Status};

pub(crate) use interner::Interner;
pub(crate) use queue::Queue;
pub(crate) use register::Register;
pub(crate) use set::Set;
pub(crate) use text::TextRegister;

/// A sequential specification of one object.
///
/// Contract: `step` is pure and deterministic; `State` equality is exact (two states are equal
/// only if every future behaves the same), and `Hash` agrees with it. The search caches
/// (linearized operations, state) pairs, so an equality that is too coarse gives wrong verdicts.
pub(crate) trait Model: Sync {
    /// One compiled operation: its input and what it returned (or that its output is unknown).
    type Op: Sync;
    /// The object's state.
    type State: Clone + Eq + Hash + Send;

    /// The state before any operation.
    fn init(&self) -> Self::State;

    /// The state after `op`, or `None` if `op` cannot happen in `state` with the recorded output.
    fn step(&self, state: &Self::State, op: &Self::Op) -> Option<Self::State>;

    /// The state for a person, short enough for one line of a report.
    fn describe(&self, state: &Self::State) -> String;

    /// Whether `op` only observes: wherever it can happen it leaves the state as it was (a
    /// read, a cas mismatch — not an `info` cas, which changes the state when it matches). The
    /// search linearizes such an operation as soon as it can.
    fn only_observes(&self, _op: &Self::Op) -> bool {
        false
    }

    /// Whether `op` only observes and can happen in `state` (no new state is made to say so).
    fn observes_now(&self, state: &Self::State, op: &Self::Op) -> bool {
        self.only_observes(op) && self.step(state, op).is_some()
    }

    /// Heap bytes a state holds beyond its own size, for the cache memory bound.
    fn heap_bytes(&self, _state: &Self::State) -> usize {
        0
    }
}

/// Which sequential specification a history is checked against.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum ModelKind {
    /// A register per key: `read`, `write`.
    Register,
    /// A compare-and-set register per key: `read`, `write`, `cas` (input `[expected, new]`).
    CasRegister,
    /// Independent keys, each a register of its own: `read`/`get`, `write`/`put`, `cas`, and
    /// `append` on strings (an absent key reads as `""`).
    Kv,
    /// A set per key: `add` an element, `read` the whole set (a JSON array).
    Set,
    /// A FIFO queue per key: `enqueue` a value, `dequeue` the oldest (`null` when empty).
    Queue,
}

impl ModelKind {
    /// Every model, in the order `--help` lists them.
    pub const ALL: [ModelKind; 5] = [
        ModelKind::Register,
        ModelKind::CasRegister,
        ModelKind::Kv,
        ModelKind::Set,
        ModelKind::Queue,
    ];

    /// The name used on the command line.
    pub fn name(self) -> &'static str {
        match self {
            ModelKind::Register => "register",
            ModelKind::CasRegister => "cas-register",
            ModelKind::Kv => "kv",
            ModelKind::Set => "set",
            ModelKind::Queue => "queue",
        }
    }

    /// The operation names this model accepts.
    pub fn operations(self) -> &'static [&'static str] {
        match self {
            ModelKind::Register => &["read", "write"],
            ModelKind::CasRegister => &["read", "write", "cas"],
            ModelKind::Kv => &["read", "get", "write", "put", "cas", "append"],
            ModelKind::Set => &["add", "read"],
            ModelKind::Queue => &["enqueue", "dequeue"],
        }
    }

    /// The model the operations of a history call for: queue operations make a queue, `add`
    /// a set, `get`/`put`/`append` a kv store, `cas` a cas-register, else a register.
    pub fn infer(ops: &[Operation]) -> ModelKind {
        let has = |names: &[&str]| ops.iter().any(|op| names.contains(&op.f.as_str()));
        if has(&["enqueue", "dequeue"]) {
            ModelKind::Queue
        } else if has(&["add"]) {
            ModelKind::Set
        } else if has(&["get", "put", "append"]) {
            ModelKind::Kv
        } else if has(&["cas"]) {
            ModelKind::CasRegister
        } else {
            ModelKind::Register
        }
    }
}

impl FromStr for ModelKind {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        ModelKind::ALL
            .into_iter()
            .find(|m| m.name() == s)
            .ok_or_else(|| {
                let names: Vec<_> = ModelKind::ALL.iter().map(|m| m.name()).collect();
                format!("unknown model `{s}`; expected one of {}", names.join(", "))
            })
    }
}

impl fmt::Display for ModelKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// How to read reads of `null` and failed operations.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Semantics {
    /// faultline's semantics (DESIGN §2): a read of `null` means the key was absent, and a
    /// `cas` that failed with a mismatch observed that the value was not the expected one.
    #[default]
    Strict,
    /// Knossos' conventions, for re-checking old Jepsen histories: a read that returned
    /// `nil` matches any value, and every `fail` is dropped, mismatched `cas` included. They
    /// hide bugs strict semantics find (a read of nil that should have seen a value, a cas
    /// that failed although the value matched).
    Knossos,
}

impl FromStr for Semantics {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "strict" => Ok(Semantics::Strict),
            "knossos" => Ok(Semantics::Knossos),
            other => Err(format!(
                "unknown semantics `{other}`; expected strict or knossos"
            )),
        }
    }
}

/// An operation the chosen model cannot judge.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("line {line}: {message}")]
pub struct ModelError {
    /// The line of the operation's invocation.
    pub line: usize,
    /// What is wrong and what to do.
    pub message: String,
}

impl ModelError {
    pub(crate) fn new(op: &Operation, message: impl Into<String>) -> Self {
        ModelError {
            line: op.line,
            message: message.into(),
        }
    }
}

/// What a compiled operation returned.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Outcome {
    /// It completed `ok` with the recorded output.
    Ok,
    /// A `cas` whose comparison failed.
    Mismatch,
    /// Completed `info`: it may or may not have taken effect, output unknown.
    Unknown,
}

impl Outcome {
    pub(crate) fn of(op: &Operation) -> Outcome {
        match op.status {
            Status::Ok => Outcome::Ok,
            Status::Mismatch => Outcome::Mismatch,
            Status::Info | Status::Fail => Outcome::Unknown,
        }
    }
}

/// The `[expected, new]` input of a cas.
pub(crate) fn cas_input(op: &Operation) -> Result<(&Value, &Value), ModelError> {
    match &op.input {
        Value::Array(pair) if pair.len() == 2 => Ok((&pair[0], &pair[1])),
        other => Err(ModelError::new(
            op,
            format!("a cas takes [expected, new], but this one has {other}"),
        )),
    }
}

/// The error for an operation name the model does not have.
pub(crate) fn unknown_operation(kind: ModelKind, op: &Operation) -> ModelError {
    let suggestion = match op.f.as_str() {
        "cas" => " (use --model cas-register or kv)",
        "get" | "put" | "append" => " (use --model kv)",
        "add" => " (use --model set)",
        "enqueue" | "dequeue" => " (use --model queue)",
        _ => "",
    };
    ModelError::new(
        op,
        format!(
            "the {kind} model has no operation `{}`; it knows {}{suggestion}",
            op.f,
            kind.operations().join(", ")
        ),
    )
}

/// Shortens a description to about `max` characters, keeping the end (where appends land).
pub(crate) fn shorten(text: String, max: usize) -> String {
    let count = text.chars().count();
    if count <= max {
        return text;
    }
    let tail: String = text.chars().skip(count - max).collect();
    format!("…{tail} ({count} chars)")
}
