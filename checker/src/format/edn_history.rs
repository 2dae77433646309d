//! Jepsen EDN histories: a `history.edn` vector of op maps, a list of them (as Knossos' own
//! examples are written: `({:type :invoke …} …)`), or one op map per line (as in Porcupine's kv
//! test data and newer Jepsen versions).
//!
//! Keys used: `:process` (a number or `:nemesis`), `:type`, `:f`, `:key`, `:value`, `:time`
//! (nanoseconds) and `:error`. A `:fail :cas` is a failed comparison (DESIGN §2).

use super::edn::{Edn, EdnError, EdnReader};
use super::{EventSink, ReadError};
use crate::history::{Event, EventKind, Process};

/// Reads every op map of `text` into `sink`.
pub(super) fn read(text: &str, sink: &mut EventSink) -> Result<(), ReadError> {
    let mut reader = EdnReader::new(text, 1);
    // A top-level vector or list of op maps: its closing bracket, and a name for messages.
    let enclosed = match reader.peek() {
        Some(b'[') => Some((b']', "vector")),
        Some(b'(') => Some((b')', "list")),
        _ => None,
    };
    if enclosed.is_some() {
        reader.bump();
    }
    loop {
        if let Some((close, what)) = enclosed {
            match reader.peek() {
                Some(c) if c == close => {
                    reader.bump();
                    if let Some(extra) = reader.peek() {
                        return Err(ReadError::at(
                            reader.line(),
                            format!(
                                "unexpected `{}` after the history {what} closed",
                                char::from(extra)
                            ),
                        ));
                    }
                    return Ok(());
                }
                None => {
                    let message =
                        format!("the history {what} has no closing `{}`", char::from(close));
                    sink.truncated(reader.line(), &message);
                    return Ok(());
                }
                Some(_) => {}
            }
        }
        let line = {
            if reader.peek().is_none() {
                return Ok(());
            }
            reader.line()
        };
        let form = match reader.next_form() {
            None => return Ok(()),
            Some(Ok(form)) => form,
            Some(Err(e)) if e.at_eof && !text.ends_with('\n') => {
                sink.truncated(line, &e.message);
                return Ok(());
            }
            Some(Err(EdnError { line, message, .. })) => {
                return Err(ReadError::at(line, message));
            }
        };
        sink.push(op_event(&form, line)?, time_of(&form, line)?)?;
    }
}

fn op_event(form: &Edn, line: usize) -> Result<Event, ReadError> {
    if !matches!(form, Edn::Map(_)) {
        return Err(ReadError::at(
            line,
            "expected an op map such as {:process 0, :type :invoke, :f :read, :value nil}",
        ));
    }
    let field = |name: &str| {
        form.get(name)
            .ok_or_else(|| ReadError::at(line, format!("the op map has no `:{name}`")))
    };
    let process = match field("process")? {
        Edn::Int(p) if *p >= 0 => Process::Client(*p as u64),
        Edn::Keyword(k) if k == "nemesis" => Process::Nemesis,
        other => {
            return Err(ReadError::at(
                line,
                format!(
                    "`:process` is {}, expected a number or :nemesis",
                    other.to_json()
                ),
            ));
        }
    };
    let kind = match field("type")? {
        Edn::Keyword(k) if k == "invoke" => EventKind::Invoke,
        Edn::Keyword(k) if k == "ok" => EventKind::Ok,
        Edn::Keyword(k) if k == "fail" => EventKind::Fail,
        Edn::Keyword(k) if k == "info" => EventKind::Info,
        other => {
            return Err(ReadError::at(
                line,
                format!(
                    "`:type` is {}, expected :invoke, :ok, :fail or :info",
                    other.to_json()
                ),
            ));
        }
    };
    let f = field("f")?.as_text();
    let value = form.get("value").unwrap_or(&Edn::Nil);
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
        f,
        key: form.get("key").map(Edn::as_text),
        value,
        error: form.get("error").map(Edn::as_text),
        line,
    })
}

fn time_of(form: &Edn, line: usize) -> Result<Option<u64>, ReadError> {
    match form.get("time") {
        None => Ok(None),
        Some(Edn::Int(t)) if *t >= 0 => Ok(Some(*t as u64)),
        Some(other) => Err(ReadError::at(
            line,
            format!(
                "`:time` is {}, expected nanoseconds as a whole number",
                other.to_json()
            ),
        )),
    }
}
