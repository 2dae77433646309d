//! The counter checker (DESIGN §3.3), for Maelstrom's `g-counter` and `pn-counter`: every
//! final read lies between the sum of the acknowledged adds plus every `info` add that could
//! only lower it, and that sum plus every `info` add that could only raise it.
//!
//! Adds are `add` operations with an integer delta; final reads are `read`s that completed
//! `ok` with the key `final` (the workload reads through every node after the faults are
//! healed and a quiet period), or, in a history with no read so marked, that began after
//! every add had ended. Reads during the run are not judged: the counters are eventually
//! consistent. No final read gives UNKNOWN.

use serde::Serialize;
use serde_json::Value;

use crate::history::{History, Operation, Status};
use crate::verdict::{Validity, Verdict};

/// A final read outside the bounds.
#[derive(Clone, Debug, Serialize)]
pub struct OutOfBounds {
    /// The read's line in the history.
    pub line: usize,
    /// What it read.
    pub value: Value,
}

/// What the counter checker found.
#[derive(Clone, Debug, Serialize)]
pub struct CounterReport {
    /// PASS, FAIL or UNKNOWN.
    pub validity: Validity,
    /// Adds invoked, and acknowledged.
    pub attempted: usize,
    /// Adds acknowledged.
    pub acknowledged: usize,
    /// The least value a final read may have.
    pub lower: i64,
    /// The greatest value a final read may have.
    pub upper: i64,
    /// The final reads' values, in order.
    pub final_reads: Vec<Value>,
    /// Final reads outside `[lower, upper]`, or not integers.
    pub out_of_bounds: Vec<OutOfBounds>,
    /// Adds whose delta is not an integer (their lines): the history cannot be judged.
    pub malformed_adds: Vec<usize>,
}

/// The key that marks a read as final (the Maelstrom workloads' reads through every node
/// after the quiet period).
pub const FINAL: &str = "final";

/// Which reads of a history are final: those marked with the key [`FINAL`] when any read is,
/// or else those begun after every add had ended (an `info` add counts from its invocation) —
/// the set workload reads only at the end. Decided once per history.
#[derive(Clone, Copy, Debug)]
pub(crate) enum FinalReads {
    /// The reads marked [`FINAL`].
    Marked,
    /// The reads begun after this time (none: every read).
    After(Option<u64>),
}

impl FinalReads {
    /// The rule for `history`, whose adds are `adds`.
    pub(crate) fn of(history: &History, adds: &[&Operation]) -> Self {
        let marked =
            (history.ops.iter()).any(|op| op.f == "read" && op.key.as_deref() == Some(FINAL));
        if marked {
            FinalReads::Marked
        } else {
            FinalReads::After(adds.iter().map(|op| op.ret.unwrap_or(op.call)).max())
        }
    }

    /// Whether `read` is a final read.
    pub(crate) fn contains(self, read: &Operation) -> bool {
        match self {
            FinalReads::Marked => read.key.as_deref() == Some(FINAL),
            FinalReads::After(end) => end.is_none_or(|end| read.call > end),
        }
    }
}

/// Checks a counter history.
pub fn check(history: &History) -> CounterReport {
    let adds: Vec<&Operation> = history.ops.iter().filter(|op| op.f == "add").collect();
    let finals = FinalReads::of(history, &adds);
    let mut report = CounterReport {
        validity: Validity::Pass,
        attempted: adds.len(),
        acknowledged: 0,
        lower: 0,
        upper: 0,
        final_reads: Vec::new(),
        out_of_bounds: Vec::new(),
        malformed_adds: Vec::new(),
    };
    for add in &adds {
        let Some(delta) = add.input.as_i64() else {
            report.malformed_adds.push(add.line);
            continue;
        };
        match add.status {
            Status::Ok => {
                report.acknowledged += 1;
                report.lower += delta;
                report.upper += delta;
            }
            Status::Info => {
                report.lower += delta.min(0);
                report.upper += delta.max(0);
            }
            Status::Fail | Status::Mismatch => {}
        }
    }
    let finals = history
        .ops
        .iter()
        .filter(|op| op.f == "read" && op.status == Status::Ok && finals.contains(op));
    for read in finals {
        report.final_reads.push(read.output.clone());
        let inside = read
            .output
            .as_i64()
            .is_some_and(|v| (report.lower..=report.upper).contains(&v));
        if !inside {
            report.out_of_bounds.push(OutOfBounds {
                line: read.line,
                value: read.output.clone(),
            });
        }
    }
    report.validity = if !report.malformed_adds.is_empty() || report.final_reads.is_empty() {
        Validity::Unknown
    } else if report.out_of_bounds.is_empty() {
        Validity::Pass
    } else {
        Validity::Fail
    };
    report
}

impl CounterReport {
    /// The report in the common verdict shape.
    pub fn verdict(&self) -> Verdict {
        let bounds = if self.lower == self.upper {
            format!("{}", self.lower)
        } else {
            format!("between {} and {}", self.lower, self.upper)
        };
        let summary = match self.validity {
            Validity::Unknown if !self.malformed_adds.is_empty() => format!(
                "unknown: {} add(s) without an integer delta (first on line {})",
                self.malformed_adds.len(),
                self.malformed_adds[0]
            ),
            Validity::Unknown => "unknown: no final read of the counter completed".into(),
            Validity::Pass => format!(
                "{} final read(s) all {bounds} ({} of {} adds acknowledged)",
                self.final_reads.len(),
                self.acknowledged,
                self.attempted
            ),
            Validity::Fail => format!(
                "{} of {} final read(s) not {bounds}",
                self.out_of_bounds.len(),
                self.final_reads.len()
            ),
        };
        let explanation = (self.out_of_bounds.iter())
            .map(|o| format!("the final read on line {} read {}", o.line, o.value))
            .collect::<Vec<_>>()
            .join("\n");
        let explanation = if explanation.is_empty() {
            explanation
        } else {
            format!(
                "{explanation}\nthe acknowledged adds sum to {}; with every unsure add the counter may read {bounds}",
                self.acknowledged_sum()
            )
        };
        Verdict {
            valid: self.validity,
            checker: "counter".into(),
            summary,
            explanation,
            details: serde_json::to_value(self).unwrap_or(Value::Null),
        }
    }

    /// The sum of the acknowledged adds alone.
    fn acknowledged_sum(&self) -> String {
        // lower and upper differ only by unsure adds, so the acknowledged sum lies between.
        if self.lower == self.upper {
            self.lower.to_string()
        } else {
            format!("at least {} and at most {}", self.lower, self.upper)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn history(lines: &[&str]) -> History {
        History::from_lines(lines)
    }

    const ADDS: [&str; 8] = [
        r#"{"process":0,"type":"invoke","f":"add","value":5,"time":1}"#,
        r#"{"process":0,"type":"ok","f":"add","value":5,"time":2}"#,
        r#"{"process":1,"type":"invoke","f":"add","value":-2,"time":3}"#,
        r#"{"process":1,"type":"info","f":"add","value":-2,"time":4}"#,
        r#"{"process":2,"type":"invoke","f":"add","value":3,"time":5}"#,
        r#"{"process":2,"type":"info","f":"add","value":3,"time":6}"#,
        r#"{"process":3,"type":"invoke","f":"add","value":7,"time":7}"#,
        r#"{"process":3,"type":"fail","f":"add","value":7,"time":8}"#,
    ];

    fn with_reads(values: &[&str]) -> History {
        let mut lines: Vec<String> = ADDS.iter().map(|s| s.to_string()).collect();
        for (i, v) in values.iter().enumerate() {
            let p = 10 + i;
            lines.push(format!(
                r#"{{"process":{p},"type":"invoke","f":"read","value":null,"time":{}}}"#,
                20 + 2 * i
            ));
            lines.push(format!(
                r#"{{"process":{p},"type":"ok","f":"read","value":{v},"time":{}}}"#,
                21 + 2 * i
            ));
        }
        history(&lines.iter().map(String::as_str).collect::<Vec<_>>())
    }

    #[test]
    fn final_reads_within_the_bounds_of_acknowledged_and_unsure_adds_pass() {
        // Acknowledged 5; the unsure -2 and +3 make the bounds [3, 8]; the failed 7 never counts.
        for v in ["3", "5", "8", "6"] {
            let r = check(&with_reads(&[v]));
            assert_eq!(
                (r.validity, r.lower, r.upper),
                (Validity::Pass, 3, 8),
                "{v}"
            );
        }
    }

    #[test]
    fn a_read_outside_the_bounds_fails_and_is_named() {
        let r = check(&with_reads(&["5", "12"]));
        assert_eq!(r.validity, Validity::Fail);
        assert_eq!(r.out_of_bounds.len(), 1);
        let v = r.verdict();
        assert!(
            v.summary
                .contains("1 of 2 final read(s) not between 3 and 8"),
            "{}",
            v.summary
        );
        assert!(v.explanation.contains("read 12"), "{}", v.explanation);
        assert_eq!(check(&with_reads(&["\"x\""])).validity, Validity::Fail);
    }

    #[test]
    fn reads_during_the_adds_are_not_judged_and_none_at_the_end_is_unknown() {
        let h = history(&[
            r#"{"process":0,"type":"invoke","f":"add","value":5,"time":1}"#,
            r#"{"process":1,"type":"invoke","f":"read","value":null,"time":2}"#,
            r#"{"process":1,"type":"ok","f":"read","value":0,"time":3}"#,
            r#"{"process":0,"type":"ok","f":"add","value":5,"time":4}"#,
        ]);
        assert_eq!(check(&h).validity, Validity::Unknown);
    }
}
