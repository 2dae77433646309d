//! The checkers of Maelstrom's simplest workloads: `echo` (every reply carries the request's
//! payload back) and `unique-ids` (no id generated twice). Both also report availability: the
//! share of requests answered.

use std::collections::BTreeMap;

use serde::Serialize;
use serde_json::Value;

use crate::history::{History, Status};
use crate::verdict::{Validity, Verdict};

/// An operation that proves a FAIL: its line and what it got.
#[derive(Clone, Debug, Serialize)]
pub struct Witness {
    /// The line of its invocation.
    pub line: usize,
    /// What it sent (echo) or the line of the first operation that got the same id.
    pub sent: Value,
    /// What came back.
    pub got: Value,
}

/// What the echo or unique-ids checker found.
#[derive(Clone, Debug, Serialize)]
pub struct EchoReport {
    /// Which checker: `echo` or `unique-ids`.
    pub checker: &'static str,
    /// PASS, FAIL or UNKNOWN.
    pub validity: Validity,
    /// Requests made.
    pub attempted: usize,
    /// Requests answered ok.
    pub ok: usize,
    /// The operations that prove a FAIL.
    pub wrong: Vec<Witness>,
}

/// Checks an echo history: every ok `echo` returned what it sent.
pub fn check_echo(history: &History) -> EchoReport {
    let echoes: Vec<_> = history.ops.iter().filter(|op| op.f == "echo").collect();
    let ok: Vec<_> = echoes.iter().filter(|op| op.status == Status::Ok).collect();
    let wrong = (ok.iter())
        .filter(|op| op.output != op.input)
        .map(|op| Witness {
            line: op.line,
            sent: op.input.clone(),
            got: op.output.clone(),
        })
        .collect();
    report("echo", echoes.len(), ok.len(), wrong)
}

/// Checks a unique-ids history: no two ok `generate`s returned the same id.
pub fn check_unique_ids(history: &History) -> EchoReport {
    let generated: Vec<_> = history.ops.iter().filter(|op| op.f == "generate").collect();
    let mut first: BTreeMap<String, usize> = BTreeMap::new();
    let mut wrong = Vec::new();
    let mut ok = 0;
    for op in generated.iter().filter(|op| op.status == Status::Ok) {
        ok += 1;
        let id = op.output.to_string();
        match first.get(&id) {
            Some(&line) => wrong.push(Witness {
                line: op.line,
                sent: Value::from(line),
                got: op.output.clone(),
            }),
            None => {
                first.insert(id, op.line);
            }
        }
    }
    report("unique-ids", generated.len(), ok, wrong)
}

fn report(checker: &'static str, attempted: usize, ok: usize, wrong: Vec<Witness>) -> EchoReport {
    let validity = if !wrong.is_empty() {
        Validity::Fail
    } else if ok == 0 {
        Validity::Unknown
    } else {
        Validity::Pass
    };
    EchoReport {
        checker,
        validity,
        attempted,
        ok,
        wrong,
    }
}

impl EchoReport {
    /// The report in the common verdict shape.
    pub fn verdict(&self) -> Verdict {
        let answered = format!(
            "{} of {} answered ({:.1}% available)",
            self.ok,
            self.attempted,
            100.0 * self.ok as f64 / self.attempted.max(1) as f64
        );
        let (summary, explanation) = match (self.validity, self.checker) {
            (Validity::Unknown, _) => (
                format!("unknown: no request was answered; {answered}"),
                String::new(),
            ),
            (Validity::Pass, "echo") => (
                format!("every reply echoed its request; {answered}"),
                String::new(),
            ),
            (Validity::Pass, _) => (format!("every id unique; {answered}"), String::new()),
            (Validity::Fail, "echo") => (
                format!(
                    "{} repl(ies) did not echo the request; {answered}",
                    self.wrong.len()
                ),
                (self.wrong.iter().take(10))
                    .map(|w| format!("line {}: sent {}, got {}", w.line, w.sent, w.got))
                    .collect::<Vec<_>>()
                    .join("\n"),
            ),
            (Validity::Fail, _) => (
                format!("{} id(s) generated twice; {answered}", self.wrong.len()),
                (self.wrong.iter().take(10))
                    .map(|w| {
                        format!(
                            "line {} got {}, already generated on line {}",
                            w.line, w.got, w.sent
                        )
                    })
                    .collect::<Vec<_>>()
                    .join("\n"),
            ),
        };
        Verdict {
            valid: self.validity,
            checker: self.checker.into(),
            summary,
            explanation,
            details: serde_json::to_value(self).unwrap_or(Value::Null),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn history(lines: &[&str]) -> History {
        History::from_lines(lines)
    }

    #[test]
    fn echoes_must_come_back_unchanged() {
        let good = history(&[
            r#"{"process":0,"type":"invoke","f":"echo","value":"a"}"#,
            r#"{"process":0,"type":"ok","f":"echo","value":"a"}"#,
            r#"{"process":1,"type":"invoke","f":"echo","value":"b"}"#,
            r#"{"process":1,"type":"info","f":"echo","value":"b"}"#,
        ]);
        let r = check_echo(&good);
        assert_eq!((r.validity, r.ok, r.attempted), (Validity::Pass, 1, 2));
        let bad = history(&[
            r#"{"process":0,"type":"invoke","f":"echo","value":"a"}"#,
            r#"{"process":0,"type":"ok","f":"echo","value":"b"}"#,
        ]);
        let v = check_echo(&bad).verdict();
        assert_eq!(v.valid, Validity::Fail);
        assert!(
            v.explanation.contains("sent \"a\", got \"b\""),
            "{}",
            v.explanation
        );
    }

    #[test]
    fn an_id_generated_twice_fails_naming_both_lines() {
        let h = history(&[
            r#"{"process":0,"type":"invoke","f":"generate","value":null}"#,
            r#"{"process":0,"type":"ok","f":"generate","value":"n1-1"}"#,
            r#"{"process":1,"type":"invoke","f":"generate","value":null}"#,
            r#"{"process":1,"type":"ok","f":"generate","value":"n2-1"}"#,
            r#"{"process":0,"type":"invoke","f":"generate","value":null}"#,
            r#"{"process":0,"type":"ok","f":"generate","value":"n1-1"}"#,
        ]);
        let v = check_unique_ids(&h).verdict();
        assert_eq!(v.valid, Validity::Fail);
        assert!(
            v.explanation
                .contains("line 5 got \"n1-1\", already generated on line 1"),
            "{}",
            v.explanation
        );
        assert_eq!(check_unique_ids(&history(&[])).validity, Validity::Unknown);
    }
}
