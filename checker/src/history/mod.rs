//! The history model (DESIGN §2): events as read from a file, and operations, the paired form
//! every checker works on.
//!
//! A reader turns a file into [`Event`]s; [`pair`] turns events into a [`History`] of
//! [`Operation`]s. Nothing here knows any file format or any consistency model.

mod pair;

pub use pair::{PairError, Pairer, pair};

use serde::Serialize;
use serde_json::Value;

/// Who issued an event.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Process {
    /// A client's logical process number. A process runs one operation at a time.
    Client(u64),
    /// The fault injector; its events are `info` only and are not operations.
    Nemesis,
}

/// The kind of an event: an invocation or one of the three completions.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EventKind {
    /// The operation was sent.
    Invoke,
    /// It happened, with this result.
    Ok,
    /// It certainly did not happen.
    Fail,
    /// Unknown: it may have happened, at any time after its invocation.
    Info,
}

/// One line of a history, whatever file format it came from.
#[derive(Clone, Debug, PartialEq)]
pub struct Event {
    /// Nanoseconds since the run started, or the event's position when the format has no times.
    pub time: u64,
    /// Who issued it.
    pub process: Process,
    /// Invoke or completion.
    pub kind: EventKind,
    /// The operation's name: `read`, `write`, `cas`, `get`, `put`, `append`, `add`, ...
    pub f: String,
    /// The object it acts on; `None` for single-object histories.
    pub key: Option<String>,
    /// The operation's argument (on invoke) or result (on completion).
    pub value: Value,
    /// Error text of a completion, if any.
    pub error: Option<String>,
    /// A `fail` of a `cas` that says the comparison failed (DESIGN §2).
    pub mismatch: bool,
    /// The 1-based line of the file the event came from, for messages.
    pub line: usize,
}

/// How an operation completed, as the checkers see it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Status {
    /// Completed `ok`: it happened, with the recorded output.
    Ok,
    /// Completed `fail`: it did not happen.
    Fail,
    /// A `cas` that completed `fail` because the value was not the expected one: it wrote
    /// nothing, and it observed that the value differed.
    Mismatch,
    /// Completed `info`, or never completed: it may have happened at any time after its call.
    Info,
}

/// An invocation paired with its completion.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Operation {
    /// Position in [`History::ops`], in order of invocation.
    pub id: usize,
    /// The client process that ran it.
    pub process: u64,
    /// The operation's name.
    pub f: String,
    /// The object it acts on.
    pub key: Option<String>,
    /// The argument from the invocation (`null` for reads).
    pub input: Value,
    /// The result from the completion (`null` unless `ok`).
    pub output: Value,
    /// Time of the invocation.
    pub call: u64,
    /// Time of the completion; `None` means infinity (an `info` or unfinished operation).
    pub ret: Option<u64>,
    /// How it completed.
    pub status: Status,
    /// The line of the invocation in the source file.
    pub line: usize,
}

impl History {
    /// A history for unit tests from JSONL `lines` (the faultline format).
    #[cfg(test)]
    pub(crate) fn from_lines(lines: &[&str]) -> History {
        crate::format::read_str(&(lines.join("\n") + "\n"), None)
            .expect("test lines are a history")
            .history
    }
}

impl Operation {
    /// An operation for unit tests: `f` with `input` and `output`, completed `status` over
    /// `call..ret` (an `info` one returns at infinity); line 1, process 0, no key.
    #[cfg(test)]
    pub(crate) fn test(
        f: &str,
        input: Value,
        output: Value,
        status: Status,
        call: u64,
        ret: u64,
    ) -> Operation {
        Operation {
            id: 0,
            process: 0,
            f: f.into(),
            key: None,
            input,
            output,
            call,
            ret: (status != Status::Info).then_some(ret),
            status,
            line: 1,
        }
    }

    /// A read returning `value`, or another operation taking it as input, for unit tests.
    #[cfg(test)]
    pub(crate) fn test_of(f: &str, value: Value, status: Status, call: u64, ret: u64) -> Self {
        if f == "read" {
            Self::test(f, Value::Null, value, status, call, ret)
        } else {
            Self::test(f, value, Value::Null, status, call, ret)
        }
    }

    /// Whether this operation only observes (reads change nothing).
    pub fn is_read(&self) -> bool {
        matches!(self.f.as_str(), "read" | "get")
    }
}

/// Something the nemesis did: a fault started or healed (DESIGN §6).
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct NemesisEvent {
    /// When.
    pub time: u64,
    /// The fault kind (`partition`, `clock`, `kill`, `pause`, `packet`).
    pub f: String,
    /// What was done to which nodes; `{"action": "start", ...}` or `{"action": "heal", ...}`.
    pub value: Value,
}

/// A paired history: every client operation, in order of invocation.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct History {
    /// The operations, `ops[i].id == i`.
    pub ops: Vec<Operation>,
    /// The nemesis's events, in time order.
    pub nemesis: Vec<NemesisEvent>,
    /// Things a person should know that did not stop the reading (a truncated last line, ...).
    pub warnings: Vec<String>,
}
