//! Pairing events into operations: each invocation with the next completion of its process.
//!
//! The rules (DESIGN §2): a process runs one operation at a time; `info` completes an operation
//! at infinity, after which a process number may come back (Jepsen and faultline both give the
//! client a fresh number, but a reused one is harmless because the `info` operation stays
//! concurrent with everything after it); an invocation that never completes is `info` too.
//! Nemesis events are not operations; they are kept apart, for fault windows.

use std::collections::HashMap;

use super::{Event, EventKind, History, NemesisEvent, Operation, Process, Status};

/// An event that cannot be paired, with the line it came from.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("line {line}: {message}")]
pub struct PairError {
    /// The 1-based line of the offending event.
    pub line: usize,
    /// What is wrong, for a person.
    pub message: String,
}

/// Builds a [`History`] from events pushed in file order.
#[derive(Debug, Default)]
pub struct Pairer {
    history: History,
    /// Open operation (index into `history.ops`) of each process.
    open: HashMap<u64, usize>,
}

impl Pairer {
    /// Makes room for `ops` operations.
    pub fn reserve(&mut self, ops: usize) {
        self.history.ops.reserve(ops);
    }

    /// Adds the next event of the file.
    pub fn push(&mut self, event: Event) -> Result<(), PairError> {
        let Process::Client(process) = event.process else {
            self.history.nemesis.push(NemesisEvent {
                time: event.time,
                f: event.f,
                value: event.value,
            });
            return Ok(());
        };
        let fail = |message: String| PairError {
            line: event.line,
            message,
        };
        if event.kind == EventKind::Invoke {
            return self.invoke(process, event);
        }
        let Some(id) = self.open.remove(&process) else {
            return Err(fail(format!(
                "process {process} completes `{}` but has no operation in progress; \
                 expected an invoke event for it first",
                event.f
            )));
        };
        let op = &mut self.history.ops[id];
        // A completion may leave `f` out (histories from other tools): it is the invoke's.
        if op.f != event.f && !event.f.is_empty() {
            return Err(fail(format!(
                "process {process} completes `{}` but invoked `{}` at line {}",
                event.f, op.f, op.line
            )));
        }
        if op.key.is_some() && event.key.is_some() && op.key != event.key {
            return Err(fail(format!(
                "process {process} completes key {:?} but invoked key {:?} at line {}",
                event.key, op.key, op.line
            )));
        }
        if event.time < op.call {
            return Err(fail(format!(
                "completion at time {} is earlier than its invocation at time {} (line {})",
                event.time, op.call, op.line
            )));
        }
        match event.kind {
            EventKind::Ok => {
                op.status = Status::Ok;
                op.ret = Some(event.time);
                op.output = event.value;
            }
            EventKind::Fail => {
                op.status = if event.mismatch {
                    Status::Mismatch
                } else {
                    Status::Fail
                };
                op.ret = Some(event.time);
            }
            EventKind::Info | EventKind::Invoke => {}
        }
        Ok(())
    }

    /// Opens `process`'s operation at an invoke event.
    fn invoke(&mut self, process: u64, event: Event) -> Result<(), PairError> {
        if let Some(&open) = self.open.get(&process) {
            return Err(PairError {
                line: event.line,
                message: format!(
                    "process {process} invokes `{}` while its `{}` from line {} has not \
                     completed; a process runs one operation at a time",
                    event.f, self.history.ops[open].f, self.history.ops[open].line
                ),
            });
        }
        let id = self.history.ops.len();
        self.open.insert(process, id);
        self.history.ops.push(Operation {
            id,
            process,
            f: event.f,
            key: event.key,
            input: event.value,
            output: serde_json::Value::Null,
            call: event.time,
            ret: None,
            status: Status::Info,
            line: event.line,
        });
        Ok(())
    }

    /// Ends the file: operations still open become `info`.
    pub fn finish(mut self) -> History {
        if !self.open.is_empty() {
            let mut lines: Vec<usize> = self
                .open
                .values()
                .map(|&id| self.history.ops[id].line)
                .collect();
            lines.sort_unstable();
            self.history.warnings.push(format!(
                "{} operation(s) never completed (first at line {}); they are treated as info",
                lines.len(),
                lines[0]
            ));
        }
        self.history
    }
}

/// Pairs a whole sequence of events into a history.
pub fn pair(events: impl IntoIterator<Item = Event>) -> Result<History, PairError> {
    let mut pairer = Pairer::default();
    for event in events {
        pairer.push(event)?;
    }
    Ok(pairer.finish())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn ev(line: usize, process: u64, kind: EventKind, f: &str, value: serde_json::Value) -> Event {
        Event {
            time: line as u64,
            process: Process::Client(process),
            kind,
            f: f.into(),
            key: None,
            value,
            error: None,
            mismatch: false,
            line,
        }
    }

    #[test]
    fn pairs_ok_fail_info_and_unfinished() {
        let mut mismatch = ev(6, 2, EventKind::Fail, "cas", json!(null));
        mismatch.mismatch = true;
        let history = pair([
            ev(1, 1, EventKind::Invoke, "write", json!(3)),
            ev(2, 2, EventKind::Invoke, "cas", json!([1, 2])),
            ev(3, 1, EventKind::Ok, "write", json!(3)),
            ev(4, 1, EventKind::Invoke, "read", json!(null)),
            ev(5, 1, EventKind::Info, "read", json!(null)),
            mismatch,
            ev(7, 1, EventKind::Invoke, "read", json!(null)),
        ])
        .unwrap();
        let got: Vec<_> = history
            .ops
            .iter()
            .map(|o| (o.f.as_str(), o.call, o.ret, o.status))
            .collect();
        assert_eq!(
            got,
            vec![
                ("write", 1, Some(3), Status::Ok),
                ("cas", 2, Some(6), Status::Mismatch),
                ("read", 4, None, Status::Info),
                ("read", 7, None, Status::Info),
            ]
        );
        assert_eq!(history.warnings.len(), 1, "{:?}", history.warnings);
    }

    #[test]
    fn nemesis_events_are_not_operations() {
        let mut nemesis = ev(1, 0, EventKind::Info, "partition", json!(null));
        nemesis.process = Process::Nemesis;
        let history = pair([nemesis]).unwrap();
        assert!(history.ops.is_empty());
        assert_eq!(history.nemesis.len(), 1);
        assert_eq!(history.nemesis[0].f, "partition");
    }

    #[test]
    fn errors_name_the_line() {
        let err = pair([ev(4, 1, EventKind::Ok, "read", json!(1))]).unwrap_err();
        assert_eq!(err.line, 4);
        let err = pair([
            ev(1, 1, EventKind::Invoke, "read", json!(null)),
            ev(2, 1, EventKind::Invoke, "read", json!(null)),
        ])
        .unwrap_err();
        assert_eq!(err.line, 2);
        assert!(err.message.contains("line 1"), "{}", err.message);
        let err = pair([
            ev(1, 1, EventKind::Invoke, "read", json!(null)),
            ev(2, 1, EventKind::Ok, "write", json!(1)),
        ])
        .unwrap_err();
        assert!(err.message.contains("invoked `read`"), "{}", err.message);
    }
}
