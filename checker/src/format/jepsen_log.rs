//! Jepsen log lines, as in Porcupine's etcd test data:
//! `INFO  jepsen.util - <process>\t:<type>\t:<f>\t<value>`.
//!
//! Lines without `jepsen.util - ` are other log output and are skipped. The value is EDN.
//! A `:fail :cas` is a failed comparison (DESIGN §2); an `:info` line's value (often
//! `:timed-out`) is not a result and is ignored.

use super::edn::{Edn, EdnReader};
use super::{EventSink, ReadError, is_truncated_last_line};
use crate::history::{Event, EventKind, Process};

const MARKER: &str = "jepsen.util - ";

/// Reads every op line of `text` into `sink`.
pub(super) fn read(text: &str, sink: &mut EventSink) -> Result<(), ReadError> {
    for (i, line) in text.lines().enumerate() {
        let line_no = i + 1;
        let Some(at) = line.find(MARKER) else {
            continue;
        };
        if is_truncated_last_line(text, line_no) {
            // A value such as `12` cut to `1` still parses: a last line without its newline
            // cannot be trusted.
            sink.truncated(line_no, "the file ends without a newline");
            break;
        }
        sink.push(parse_line(&line[at + MARKER.len()..], line_no)?, None)?;
    }
    Ok(())
}

fn parse_line(rest: &str, line: usize) -> Result<Event, ReadError> {
    let expected = "expected `<process> :<type> :<f> <value>` after `jepsen.util - `";
    let (process, rest) = next_field(rest);
    let (kind, rest) = next_field(rest);
    let (f, value_text) = next_field(rest);
    if f.is_empty() {
        return Err(ReadError::at(line, expected));
    }
    let value_text = value_text.trim();
    let process = match process {
        ":nemesis" => Process::Nemesis,
        p => Process::Client(p.parse().map_err(|_| {
            ReadError::at(
                line,
                format!("the process `{p}` is not a number or :nemesis"),
            )
        })?),
    };
    let kind = match kind {
        ":invoke" => EventKind::Invoke,
        ":ok" => EventKind::Ok,
        ":fail" => EventKind::Fail,
        ":info" => EventKind::Info,
        other => {
            return Err(ReadError::at(
                line,
                format!("the type `{other}` is not one of :invoke, :ok, :fail, :info; {expected}"),
            ));
        }
    };
    let Some(f) = f.strip_prefix(':') else {
        return Err(ReadError::at(
            line,
            format!("the operation `{f}` should be a keyword such as :read"),
        ));
    };
    let value = if value_text.is_empty() {
        Edn::Nil
    } else {
        let mut reader = EdnReader::new(value_text, line);
        match reader.next_form() {
            Some(Ok(v)) => v,
            Some(Err(e)) => {
                return Err(ReadError::at(line, format!("the value: {}", e.message)));
            }
            None => Edn::Nil,
        }
    };
    let value = if kind == EventKind::Info && matches!(value, Edn::Keyword(_)) {
        serde_json::Value::Null
    } else {
        value.to_json()
    };
    Ok(Event {
        time: 0,
        process,
        kind,
        mismatch: kind == EventKind::Fail && f == "cas",
        f: f.to_string(),
        key: None,
        value,
        error: None,
        line,
    })
}

/// Splits off the first whitespace-separated field.
fn next_field(text: &str) -> (&str, &str) {
    let text = text.trim_start();
    let end = text.find(char::is_whitespace).unwrap_or(text.len());
    text.split_at(end)
}
