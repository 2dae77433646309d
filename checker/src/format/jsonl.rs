//! faultline's JSON Lines history format (DESIGN §2): one event object per line — or, as
//! elle-cli and Maelstrom write them, a JSON array of such objects.
//!
//! Fields other than those below (`index`, `node`, `meta`, ...) are allowed and ignored here.
//! Histories from other tools may have no `f`: an event whose value is a list of
//! micro-operations (`[["append", 1, 2], ["r", 1, null]]`) is a transaction, `f` = `txn`.

use serde::Deserialize;
use serde_json::Value;

use super::{EventSink, ReadError, is_truncated_last_line};
use crate::history::{Event, EventKind, Process};

#[derive(Deserialize)]
struct RawEvent {
    time: Option<u64>,
    process: RawProcess,
    #[serde(rename = "type")]
    kind: RawKind,
    #[serde(default)]
    f: Option<String>,
    #[serde(default)]
    key: Option<RawKey>,
    #[serde(default)]
    value: Value,
    #[serde(default)]
    error: Option<Value>,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum RawProcess {
    Client(u64),
    Named(String),
}

#[derive(Deserialize, Clone, Copy, PartialEq)]
#[serde(rename_all = "lowercase")]
enum RawKind {
    Invoke,
    Ok,
    Fail,
    Info,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum RawKey {
    Text(String),
    Number(serde_json::Number),
}

/// Reads every line of `text` into `sink`: one event per line, or a JSON array of events.
pub(super) fn read(text: &str, sink: &mut EventSink) -> Result<(), ReadError> {
    if text.trim_start().starts_with('[') {
        return read_array(text, sink);
    }
    for (i, line) in text.lines().enumerate() {
        let line_no = i + 1;
        if line.trim().is_empty() {
            continue;
        }
        let raw: RawEvent = match serde_json::from_str(line) {
            Ok(raw) => raw,
            Err(e) if is_truncated_last_line(text, line_no) => {
                sink.truncated(line_no, &e.to_string());
                break;
            }
            Err(e) => return Err(ReadError::at(line_no, not_an_event(&e))),
        };
        match push(raw, line_no, sink) {
            Err(e) if is_truncated_last_line(text, line_no) => {
                sink.truncated(line_no, &e.message);
                break;
            }
            result => result?,
        }
    }
    Ok(())
}

fn not_an_event(e: &serde_json::Error) -> String {
    format!(
        "expected an event object such as \
         {{\"process\":0,\"type\":\"invoke\",\"f\":\"read\",\"value\":null}}: {e}"
    )
}

/// A JSON array of events. Each event's line is where its object starts when the array has
/// one object per line (as elle-cli writes it); otherwise the whole array is parsed and an
/// event's line is its position in the array.
fn read_array(text: &str, sink: &mut EventSink) -> Result<(), ReadError> {
    let per_line: Option<Vec<(usize, RawEvent)>> = text
        .lines()
        .enumerate()
        .map(|(i, line)| {
            (
                i + 1,
                line.trim()
                    .trim_start_matches('[')
                    .trim_end_matches(']')
                    .trim_end_matches(',')
                    .trim(),
            )
        })
        .filter(|(_, line)| !line.is_empty())
        .map(|(n, line)| serde_json::from_str(line).ok().map(|raw| (n, raw)))
        .collect();
    let events = match per_line {
        Some(events) => events,
        None => {
            let all: Vec<RawEvent> = serde_json::from_str(text).map_err(|e| {
                ReadError::at(
                    e.line(),
                    format!("a JSON array of events: {}", not_an_event(&e)),
                )
            })?;
            all.into_iter()
                .enumerate()
                .map(|(i, raw)| (i + 1, raw))
                .collect()
        }
    };
    for (line_no, raw) in events {
        push(raw, line_no, sink)?;
    }
    Ok(())
}

/// Turns one raw event into an event and hands it to `sink`.
fn push(raw: RawEvent, line_no: usize, sink: &mut EventSink) -> Result<(), ReadError> {
    let process = match raw.process {
        RawProcess::Client(p) => Process::Client(p),
        RawProcess::Named(name) if name == "nemesis" => Process::Nemesis,
        RawProcess::Named(name) => {
            return Err(ReadError::at(
                line_no,
                format!("process {name:?} is neither a number nor \"nemesis\""),
            ));
        }
    };
    let kind = match raw.kind {
        RawKind::Invoke => EventKind::Invoke,
        RawKind::Ok => EventKind::Ok,
        RawKind::Fail => EventKind::Fail,
        RawKind::Info => EventKind::Info,
    };
    let error = raw.error.map(|e| match e {
        Value::String(s) => s,
        other => other.to_string(),
    });
    let f = match raw.f {
        Some(f) => f,
        None if crate::txn::looks_like_mops(&raw.value) => "txn".to_string(),
        // A completion without a value (an aborted or unknown transaction) takes its
        // invocation's `f`.
        None if kind != EventKind::Invoke && raw.value.is_null() => String::new(),
        None => {
            return Err(ReadError::at(
                line_no,
                "the event has no \"f\" (only transactions, whose value is a list of \
                 micro-operations, may leave it out)",
            ));
        }
    };
    let mismatch = kind == EventKind::Fail && f == "cas" && error.as_deref() == Some("mismatch");
    let event = Event {
        time: 0,
        process,
        kind,
        f,
        key: raw.key.map(|k| match k {
            RawKey::Text(s) => s,
            RawKey::Number(n) => n.to_string(),
        }),
        value: raw.value,
        error,
        mismatch,
        line: line_no,
    };
    sink.push(event, raw.time)
}
