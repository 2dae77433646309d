//! The set checker (DESIGN §3.3): every acknowledged `add` must be in the final reads.
//!
//! Adds are operations `add` with the element as value; final reads are `read` operations that
//! completed `ok` with the whole set as a JSON array, with the key `final` (the Maelstrom
//! workloads' reads through every node after the quiet period) or, when no read is so
//! marked, begun after every add had ended (the set workload reads only at the end). Elements are counted as:
//!
//! - **lost**: acknowledged, and in no final read — the verdict is FAIL;
//! - **unexpected**: in a final read, but never added — FAIL;
//! - **stale**: acknowledged and in some final reads but missing from others (replicas that have
//!   not converged); reported, not a failure by itself — except where every node must hold
//!   every element after the quiet period ([`check_everywhere`]: Maelstrom's broadcast and
//!   g-set), where it is;
//! - **recovered**: an `add` that ended `info`, present after all.
//!
//! No final read at all gives UNKNOWN. When there were reads during the run too (Maelstrom's
//! broadcast and g-set), the report gives each acknowledged element's *stable latency* as
//! Maelstrom does: from its acknowledgement to the last read begun after it that missed it.

use std::collections::{BTreeMap, BTreeSet};

use serde::Serialize;
use serde_json::Value;

use crate::history::{History, Operation, Status};
use crate::verdict::{Validity, Verdict};

/// What the set checker found.
#[derive(Clone, Debug, Serialize)]
pub struct SetReport {
    /// PASS, FAIL or UNKNOWN.
    pub validity: Validity,
    /// Whether every final read must hold every acknowledged element.
    pub everywhere: bool,
    /// Adds invoked.
    pub attempted: usize,
    /// Adds acknowledged.
    pub acknowledged: usize,
    /// Final reads that completed.
    pub final_reads: usize,
    /// Acknowledged and absent from every final read.
    pub lost: Vec<Value>,
    /// Present in a final read, never added.
    pub unexpected: Vec<Value>,
    /// Acknowledged, present in some final reads and missing from others.
    pub stale: Vec<Value>,
    /// Added with `info`, present after all.
    pub recovered: Vec<Value>,
    /// Quantiles (0, 0.5, 0.95, 0.99, 1) of the stable latencies in milliseconds, when reads
    /// were made during the run.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stable_latency_ms: Option<BTreeMap<String, f64>>,
}

/// Checks a set history.
pub fn check(history: &History) -> SetReport {
    let mut adds: BTreeMap<String, (Value, Status)> = BTreeMap::new();
    for op in history.ops.iter().filter(|op| op.f == "add") {
        adds.insert(op.input.to_string(), (op.input.clone(), op.status));
    }
    let add_ops: Vec<&Operation> = history.ops.iter().filter(|op| op.f == "add").collect();
    let finals = crate::counter::FinalReads::of(history, &add_ops);
    let all_reads: Vec<(&Operation, BTreeSet<String>)> = history
        .ops
        .iter()
        .filter(|op| op.f == "read" && op.status == Status::Ok)
        .map(|op| {
            let items = op.output.as_array();
            (
                op,
                items
                    .map(|items| items.iter().map(Value::to_string).collect())
                    .unwrap_or_default(),
            )
        })
        .collect();
    let is_final = |op: &Operation| finals.contains(op);
    let reads: Vec<&BTreeSet<String>> = (all_reads.iter())
        .filter(|(op, _)| is_final(op))
        .map(|(_, items)| items)
        .collect();
    let seen_in = |e: &str| reads.iter().filter(|r| r.contains(e)).count();
    let mut report = SetReport {
        validity: Validity::Pass,
        attempted: adds.len(),
        acknowledged: adds.values().filter(|(_, s)| *s == Status::Ok).count(),
        final_reads: reads.len(),
        lost: Vec::new(),
        unexpected: Vec::new(),
        stale: Vec::new(),
        recovered: Vec::new(),
        stable_latency_ms: None,
        everywhere: false,
    };
    for (text, (value, status)) in &adds {
        let seen = seen_in(text);
        match status {
            Status::Ok if seen == 0 => report.lost.push(value.clone()),
            Status::Ok if seen < reads.len() => report.stale.push(value.clone()),
            Status::Info if seen > 0 => report.recovered.push(value.clone()),
            _ => {}
        }
    }
    if all_reads.iter().any(|(op, _)| !is_final(op)) {
        let never: Vec<Value> = report.lost.iter().chain(&report.stale).cloned().collect();
        report.stable_latency_ms = Some(stable_latencies(&add_ops, &all_reads, &never));
    }
    let everything: BTreeSet<&String> = reads.iter().copied().flatten().collect();
    for text in everything {
        if !adds.contains_key(text) {
            report
                .unexpected
                .push(serde_json::from_str(text).unwrap_or(Value::Null));
        }
    }
    report.validity = if reads.is_empty() {
        Validity::Unknown
    } else if !report.lost.is_empty() || !report.unexpected.is_empty() {
        Validity::Fail
    } else {
        Validity::Pass
    };
    report
}

/// Quantiles of the acknowledged elements' stable latencies (but for those in `never`, which
/// never became stable): from the add's
/// acknowledgement to the start of the last read begun after it that missed the element (0 if
/// none did).
/// Checks a set every node must hold whole after the quiet period (Maelstrom's broadcast and
/// g-set): an acknowledged element missing from any final read fails.
pub fn check_everywhere(history: &History) -> SetReport {
    let mut report = check(history);
    report.everywhere = true;
    if report.validity == Validity::Pass && !report.stale.is_empty() {
        report.validity = Validity::Fail;
    }
    report
}

fn stable_latencies(
    adds: &[&Operation],
    reads: &[(&Operation, BTreeSet<String>)],
    never: &[Value],
) -> BTreeMap<String, f64> {
    let mut latencies: Vec<u64> = adds
        .iter()
        .filter(|op| op.status == Status::Ok && !never.contains(&op.input))
        .filter_map(|op| {
            let acked = op.ret?;
            let element = op.input.to_string();
            let last_missing = (reads.iter())
                .filter(|(r, items)| r.call > acked && !items.contains(&element))
                .map(|(r, _)| r.call)
                .max();
            Some(last_missing.map_or(0, |t| t - acked))
        })
        .collect();
    latencies.sort_unstable();
    let at = |q: f64| {
        let i = ((latencies.len() as f64 - 1.0) * q).round() as usize;
        latencies.get(i).map_or(0.0, |&ns| ns as f64 / 1e6)
    };
    [
        ("0", 0.0),
        ("0.5", 0.5),
        ("0.95", 0.95),
        ("0.99", 0.99),
        ("1", 1.0),
    ]
    .into_iter()
    .map(|(name, q)| (name.to_string(), at(q)))
    .collect()
}

fn sample(values: &[Value]) -> String {
    let shown: Vec<String> = values.iter().take(10).map(Value::to_string).collect();
    let more = values.len().saturating_sub(10);
    if more > 0 {
        format!("{} and {more} more", shown.join(", "))
    } else {
        shown.join(", ")
    }
}

impl SetReport {
    /// The report in the common verdict shape.
    pub fn verdict(&self) -> Verdict {
        let summary = match self.validity {
            Validity::Unknown => "unknown: no final read of the set completed".to_string(),
            _ => {
                let mut parts = vec![format!(
                    "{} of {} acknowledged adds; {} final read(s)",
                    self.acknowledged, self.attempted, self.final_reads
                )];
                if !self.lost.is_empty() {
                    parts.push(format!("{} lost: {}", self.lost.len(), sample(&self.lost)));
                }
                if !self.unexpected.is_empty() {
                    parts.push(format!(
                        "{} unexpected: {}",
                        self.unexpected.len(),
                        sample(&self.unexpected)
                    ));
                }
                if !self.stale.is_empty() {
                    let what = if self.everywhere {
                        "missing from some node's final read"
                    } else {
                        "stale"
                    };
                    parts.push(format!(
                        "{} {what}: {}",
                        self.stale.len(),
                        sample(&self.stale)
                    ));
                }
                if !self.recovered.is_empty() {
                    parts.push(format!("{} recovered", self.recovered.len()));
                }
                if let Some(q) = &self.stable_latency_ms {
                    parts.push(format!(
                        "stable after {:.0} ms median, {:.0} ms at most",
                        q["0.5"], q["1"]
                    ));
                }
                parts.join("; ")
            }
        };
        Verdict {
            valid: self.validity,
            checker: "set".into(),
            summary,
            explanation: String::new(),
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
    fn counts_lost_stale_unexpected_and_recovered() {
        let h = history(&[
            r#"{"process":0,"type":"invoke","f":"add","key":"set","value":1}"#,
            r#"{"process":0,"type":"ok","f":"add","key":"set","value":1}"#,
            r#"{"process":0,"type":"invoke","f":"add","key":"set","value":2}"#,
            r#"{"process":0,"type":"ok","f":"add","key":"set","value":2}"#,
            r#"{"process":0,"type":"invoke","f":"add","key":"set","value":3}"#,
            r#"{"process":0,"type":"info","f":"add","key":"set","value":3}"#,
            r#"{"process":1,"type":"invoke","f":"add","key":"set","value":4}"#,
            r#"{"process":1,"type":"ok","f":"add","key":"set","value":4}"#,
            r#"{"process":5,"type":"invoke","f":"read","key":"set","value":null}"#,
            r#"{"process":5,"type":"ok","f":"read","key":"set","value":[1,3,9]}"#,
            r#"{"process":6,"type":"invoke","f":"read","key":"set","value":null}"#,
            r#"{"process":6,"type":"ok","f":"read","key":"set","value":[1,2]}"#,
        ]);
        let r = check(&h);
        assert_eq!(r.validity, Validity::Fail);
        assert_eq!(r.lost, vec![serde_json::json!(4)]);
        assert_eq!(r.stale, vec![serde_json::json!(2)]);
        assert_eq!(r.unexpected, vec![serde_json::json!(9)]);
        assert_eq!(r.recovered, vec![serde_json::json!(3)]);
        assert_eq!((r.attempted, r.acknowledged, r.final_reads), (4, 3, 2));
        assert!(
            r.verdict().summary.contains("1 lost: 4"),
            "{}",
            r.verdict().summary
        );
    }

    #[test]
    fn no_final_read_is_unknown_and_all_present_passes() {
        let h = history(&[
            r#"{"process":0,"type":"invoke","f":"add","key":"set","value":1}"#,
            r#"{"process":0,"type":"ok","f":"add","key":"set","value":1}"#,
        ]);
        assert_eq!(check(&h).validity, Validity::Unknown);
        let h = history(&[
            r#"{"process":0,"type":"invoke","f":"add","key":"set","value":1}"#,
            r#"{"process":0,"type":"ok","f":"add","key":"set","value":1}"#,
            r#"{"process":1,"type":"invoke","f":"read","key":"set","value":null}"#,
            r#"{"process":1,"type":"ok","f":"read","key":"set","value":[1]}"#,
        ]);
        assert_eq!(check(&h).validity, Validity::Pass);
    }
}
