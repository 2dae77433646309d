//! faultline's JSON Lines history format (DESIGN §2): one event object per line.
//!
//! Fields other than those below (`index`, `node`, `meta`, ...) are allowed and ignored here.

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
    f: String,
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

/// Reads every line of `text` into `sink`.
pub(super) fn read(text: &str, sink: &mut EventSink) -> Result<(), ReadError> {
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
            Err(e) => {
                return Err(ReadError::at(
                    line_no,
                    format!(
                        "expected an event object such as \
                         {{\"process\":0,\"type\":\"invoke\",\"f\":\"read\",\"value\":null}}: {e}"
                    ),
                ));
            }
        };
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
        let mismatch =
            kind == EventKind::Fail && raw.f == "cas" && error.as_deref() == Some("mismatch");
        let event = Event {
            time: 0,
            process,
            kind,
            f: raw.f,
            key: raw.key.map(|k| match k {
                RawKey::Text(s) => s,
                RawKey::Number(n) => n.to_string(),
            }),
            value: raw.value,
            error,
            mismatch,
            line: line_no,
        };
        match sink.push(event, raw.time) {
            Err(e) if is_truncated_last_line(text, line_no) => {
                sink.truncated(line_no, &e.message);
                break;
            }
            result => result?,
        }
    }
    Ok(())
}
