//! Reading history files: faultline JSONL, Jepsen log lines and Jepsen EDN, detected from the
//! content or named by the caller.
//!
//! Each reader turns lines into [`Event`]s and feeds them to a [`Pairer`]; this module owns
//! what they share: format detection, the error type that names file and line, and the rule
//! for a truncated last line (a crashed run): reported as a warning, and the prefix is checked.

mod edn;
mod edn_history;
mod jepsen_log;
mod jsonl;

use std::fmt;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use crate::history::{Event, History, PairError, Pairer};

/// A history file format.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    /// faultline's JSON Lines: one event object per line (DESIGN §2).
    Jsonl,
    /// Jepsen log lines: `INFO  jepsen.util - <process>\t:<type>\t:<f>\t<value>`.
    JepsenLog,
    /// EDN op maps: a Jepsen `history.edn` vector, or one map per line.
    Edn,
}

impl Format {
    /// The name used on the command line.
    pub fn name(self) -> &'static str {
        match self {
            Format::Jsonl => "jsonl",
            Format::JepsenLog => "jepsen-log",
            Format::Edn => "edn",
        }
    }

    /// Guesses the format from the first meaningful line; `None` if the text has none.
    pub fn detect(text: &str) -> Option<Format> {
        let line = text
            .lines()
            .map(str::trim_start)
            .find(|l| !l.is_empty() && !l.starts_with(';'))?;
        Some(if line.contains("jepsen.util - ") {
            Format::JepsenLog
        } else if is_json_object(line)
            || line.strip_prefix('[').is_some_and(|rest| {
                is_json_object(rest.trim_start())
                    || rest.trim().is_empty() && json_array_follows(text)
            })
        {
            Format::Jsonl
        } else {
            Format::Edn
        })
    }
}

fn is_json_object(text: &str) -> bool {
    text.starts_with("{\"") || text.starts_with("{ \"")
}

/// A `[` alone on its line, then a JSON object: a pretty-printed JSON array of events.
fn json_array_follows(text: &str) -> bool {
    text.lines()
        .map(str::trim_start)
        .filter(|l| !l.is_empty())
        .nth(1)
        .is_some_and(is_json_object)
}

impl FromStr for Format {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "jsonl" | "json" => Ok(Format::Jsonl),
            "jepsen-log" | "jepsen" | "log" => Ok(Format::JepsenLog),
            "edn" => Ok(Format::Edn),
            other => Err(format!(
                "unknown history format `{other}`; expected jsonl, jepsen-log or edn"
            )),
        }
    }
}

impl fmt::Display for Format {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A history that could not be read: which file, which line, and what was expected.
#[derive(Debug, thiserror::Error)]
pub struct ReadError {
    /// The file, when reading from one.
    pub path: Option<PathBuf>,
    /// The 1-based line, when the problem has one.
    pub line: Option<usize>,
    /// What is wrong, for a person.
    pub message: String,
}

impl fmt::Display for ReadError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(path) = &self.path {
            write!(f, "{}:", path.display())?;
        }
        if let Some(line) = self.line {
            write!(f, "{line}:")?;
        }
        if self.path.is_some() || self.line.is_some() {
            f.write_str(" ")?;
        }
        f.write_str(&self.message)
    }
}

impl ReadError {
    pub(crate) fn at(line: usize, message: impl Into<String>) -> Self {
        ReadError {
            path: None,
            line: Some(line),
            message: message.into(),
        }
    }
}

impl From<PairError> for ReadError {
    fn from(e: PairError) -> Self {
        ReadError::at(e.line, e.message)
    }
}

/// A history read from a file, and the format it was read as.
#[derive(Debug)]
pub struct ReadHistory {
    /// The paired operations and any warnings.
    pub history: History,
    /// The format used; `None` for an empty file.
    pub format: Option<Format>,
}

/// Reads a history file, or the `history.jsonl` of a run directory.
///
/// `format` overrides detection.
pub fn read_path(path: &Path, format: Option<Format>) -> Result<ReadHistory, ReadError> {
    let file = if path.is_dir() {
        path.join("history.jsonl")
    } else {
        path.to_path_buf()
    };
    let with_path = |mut e: ReadError| {
        e.path = Some(file.clone());
        e
    };
    let bytes = std::fs::read(&file).map_err(|e| {
        with_path(ReadError {
            path: None,
            line: None,
            message: format!("cannot read the file: {e}"),
        })
    })?;
    let text = String::from_utf8(bytes).map_err(|e| {
        let line = 1 + e.as_bytes()[..e.utf8_error().valid_up_to()]
            .iter()
            .filter(|&&b| b == b'\n')
            .count();
        with_path(ReadError::at(line, "the file is not UTF-8 text"))
    })?;
    read_str(&text, format).map_err(with_path)
}

/// Reads a history from text; `format` overrides detection.
pub fn read_str(text: &str, format: Option<Format>) -> Result<ReadHistory, ReadError> {
    let Some(format) = format.or_else(|| Format::detect(text)) else {
        return Ok(ReadHistory {
            history: History::default(),
            format: None,
        });
    };
    let mut sink = EventSink::default();
    // About two lines an operation: room for them all at once, not a million doublings.
    sink.pairer.reserve(line_count(text) / 2);
    match format {
        Format::Jsonl => jsonl::read(text, &mut sink)?,
        Format::JepsenLog => jepsen_log::read(text, &mut sink)?,
        Format::Edn => edn_history::read(text, &mut sink)?,
    }
    let mut history = sink.pairer.finish();
    history.warnings.splice(0..0, sink.warnings);
    Ok(ReadHistory {
        history,
        format: Some(format),
    })
}

/// How many lines `text` has (at most).
fn line_count(text: &str) -> usize {
    text.bytes().filter(|&b| b == b'\n').count() + 1
}

/// Where readers put events: the pairer, the time rule and the warnings.
#[derive(Default)]
pub(crate) struct EventSink {
    pairer: Pairer,
    warnings: Vec<String>,
    /// Whether the file gives times; decided by its first event.
    timed: Option<bool>,
    events: u64,
}

impl EventSink {
    /// Adds an event. `time` is the file's own time if it has one; files without times use
    /// the event's position, which is real-time order too. A file must not mix the two.
    pub(crate) fn push(&mut self, mut event: Event, time: Option<u64>) -> Result<(), ReadError> {
        let timed = *self.timed.get_or_insert(time.is_some());
        event.time = match (timed, time) {
            (true, Some(t)) => t,
            (false, None) => self.events,
            (true, None) => {
                return Err(ReadError::at(
                    event.line,
                    "this event has no time, but the first event of the file has one",
                ));
            }
            (false, Some(_)) => {
                return Err(ReadError::at(
                    event.line,
                    "this event has a time, but the first event of the file has none",
                ));
            }
        };
        self.events += 1;
        Ok(self.pairer.push(event)?)
    }

    /// Reports a truncated last line: the prefix before it is checked.
    pub(crate) fn truncated(&mut self, line: usize, why: &str) {
        self.warnings.push(format!(
            "line {line}: the last line is truncated ({why}); checked the events before it"
        ));
    }
}

/// Whether a problem at `line` is a truncated last line: the text does not end with a newline
/// and the line is the last one.
pub(crate) fn is_truncated_last_line(text: &str, line: usize) -> bool {
    !text.is_empty() && !text.ends_with('\n') && line == text.lines().count()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn detects_each_format() {
        assert_eq!(
            Format::detect("\n{\"process\":1,\"type\":\"invoke\"}"),
            Some(Format::Jsonl)
        );
        assert_eq!(
            Format::detect("INFO  jepsen.util - 0\t:invoke\t:read\tnil"),
            Some(Format::JepsenLog)
        );
        assert_eq!(
            Format::detect("; comment\n[{:process 0}]"),
            Some(Format::Edn)
        );
        assert_eq!(Format::detect("{:process 0}"), Some(Format::Edn));
        assert_eq!(Format::detect("  \n"), None);
    }

    #[test]
    fn same_history_in_three_formats() {
        let jsonl = concat!(
            "{\"process\":0,\"type\":\"invoke\",\"f\":\"write\",\"value\":1}\n",
            "{\"process\":1,\"type\":\"invoke\",\"f\":\"cas\",\"value\":[2,3]}\n",
            "{\"process\":0,\"type\":\"ok\",\"f\":\"write\",\"value\":1}\n",
            "{\"process\":1,\"type\":\"fail\",\"f\":\"cas\",\"value\":[2,3],\"error\":\"mismatch\"}\n",
            "{\"process\":\"nemesis\",\"type\":\"info\",\"f\":\"partition\",\"value\":null}\n",
            "{\"process\":0,\"type\":\"invoke\",\"f\":\"read\",\"value\":null}\n",
            "{\"process\":0,\"type\":\"ok\",\"f\":\"read\",\"value\":1}\n",
        );
        let log = concat!(
            "INFO  jepsen.util - 0\t:invoke\t:write\t1\n",
            "INFO  jepsen.util - 1\t:invoke\t:cas\t[2 3]\n",
            "INFO  jepsen.util - 0\t:ok\t:write\t1\n",
            "INFO  jepsen.util - 1\t:fail\t:cas\t[2 3]\n",
            "INFO  jepsen.util - :nemesis\t:info\t:start\tnil\n",
            "INFO  jepsen.util - 0\t:invoke\t:read\tnil\n",
            "INFO  jepsen.util - 0\t:ok\t:read\t1\n",
        );
        let edn = concat!(
            "[{:process 0, :type :invoke, :f :write, :value 1}\n",
            " {:process 1, :type :invoke, :f :cas, :value [2 3]}\n",
            " {:process 0, :type :ok, :f :write, :value 1}\n",
            " {:process 1, :type :fail, :f :cas, :value [2 3]}\n",
            " {:process :nemesis, :type :info, :f :start, :value nil}\n",
            " {:process 0, :type :invoke, :f :read, :value nil}\n",
            " {:process 0, :type :ok, :f :read, :value 1}]\n",
        );
        let read = |t: &str| read_str(t, None).unwrap().history.ops;
        let a = read(jsonl);
        assert_eq!(a.len(), 3);
        assert_eq!(a[1].status, crate::history::Status::Mismatch);
        assert_eq!(a[2].output, serde_json::json!(1));
        assert_eq!(a, read(log));
        assert_eq!(a, read(edn));
        // Knossos' own examples write the history as a list. See: issue 22.
        let list = format!("({})\n", &edn.trim_end()[1..edn.trim_end().len() - 1]);
        assert!(list.starts_with("({:process 0"), "{list}");
        assert_eq!(a, read(&list));
        // As Knossos writes them: comments between the maps, the paren on its own line.
        let commented = list
            .replacen("\n", "\n ; a comment, as in rethink-fail-minimal.edn\n", 1)
            .replace("}))", "})\n)");
        let without_lines = |ops: Vec<crate::history::Operation>| {
            ops.into_iter()
                .map(|op| crate::history::Operation { line: 0, ..op })
                .collect::<Vec<_>>()
        };
        assert_eq!(
            without_lines(a.clone()),
            without_lines(read(&commented)),
            "{commented}"
        );
        let unclosed = read_str(&list[..list.len() - 2], None).unwrap();
        assert!(
            unclosed.history.warnings[0].contains("the history list has no closing `)`"),
            "{:?}",
            unclosed.history.warnings
        );
    }

    #[test]
    fn truncated_last_line_is_a_warning() {
        let text = "{\"process\":0,\"type\":\"invoke\",\"f\":\"read\",\"value\":null}\n{\"process\":0,\"ty";
        let read = read_str(text, None).unwrap();
        assert_eq!(read.history.ops.len(), 1);
        assert!(
            read.history.warnings[0].contains("line 2: the last line is truncated"),
            "{:?}",
            read.history.warnings
        );
        let text = "{:process 0, :type :invoke, :f :read, :value nil}\n{:process 0, :type :ok";
        let read = read_str(text, None).unwrap();
        assert_eq!(read.history.ops.len(), 1);
        assert!(read.history.warnings[0].contains("line 2"));
        let text = "INFO  jepsen.util - 0\t:invoke\t:read\tnil\nINFO  jepsen.util - 0\t:ok\t:re";
        let read = read_str(text, None).unwrap();
        assert_eq!(read.history.ops.len(), 1);
        assert!(read.history.warnings[0].contains("line 2"));
    }

    #[test]
    fn malformed_lines_are_errors_with_line_numbers() {
        let cases = [
            (
                "{\"process\":0,\"type\":\"invoke\",\"f\":\"read\"}\n{\"process\":0,\"type\":\"okay\",\"f\":\"read\"}\n",
                2,
                "unknown variant",
            ),
            ("{\"process\":0}\n", 1, "missing field"),
            (
                "{:process 0, :type :invoke, :f :read}\n{:process 0 :type}\n",
                2,
                "without a value",
            ),
            ("{:process 0, :type :invoke}\n", 1, "`:f`"),
            ("INFO  jepsen.util - 0\t:invoke\tread\tnil\n", 1, "keyword"),
            ("INFO  jepsen.util - x\t:invoke\t:read\tnil\n", 1, "process"),
        ];
        for (text, line, needle) in cases {
            let err = read_str(text, None).unwrap_err();
            assert_eq!(err.line, Some(line), "{text:?}: {err}");
            assert!(err.message.contains(needle), "{text:?}: {err}");
        }
    }

    #[test]
    fn mixed_times_are_an_error() {
        let text = "{\"time\":1,\"process\":0,\"type\":\"invoke\",\"f\":\"read\"}\n{\"process\":0,\"type\":\"ok\",\"f\":\"read\"}\n";
        let err = read_str(text, None).unwrap_err();
        assert_eq!(err.line, Some(2));
    }
}
