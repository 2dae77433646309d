//! faultline's verdict output: the table, the explanations and the JSON document that
//! `faultline check` prints.
//!
//! Reports render what checkers computed; they compute nothing themselves.
//!
//! # Brief overview
//!
//! - [`FileCheck`] is one checked file: its report, or why it could not be read.
//! - [`table`] renders one row per file (file, operations, keys, verdict, time).
//! - [`explanation`] is the text a person reads under a verdict that is not PASS.
//! - [`json_document`] is the whole run as one JSON document.
//! - [`RunDir`] writes a run's directory: `run.json`, `history.jsonl`, `verdict.json`,
//!   `junit.xml`, and `latest`; [`stats_table`] and [`verdict_table`] are a run's final tables.

pub mod report;
mod run_dir;

pub use run_dir::{RunDir, junit};

use std::time::Duration;

use faultline_checker::stats::Stats;
use faultline_checker::{Validity, Verdict};
use serde_json::{Value, json};
use tabled::settings::Style;
use tabled::{Table, Tabled};

/// One file given to `faultline check`.
#[derive(Debug)]
pub struct FileCheck {
    /// The file as the user named it.
    pub file: String,
    /// The format it was read as (`jsonl`, `jepsen-log`, `edn`), if it was read.
    pub format: Option<String>,
    /// Warnings from reading it (a truncated last line, ...).
    pub warnings: Vec<String>,
    /// Operations in the history.
    pub operations: usize,
    /// The verdicts, or the error that stopped the file from being checked.
    pub outcome: Result<Judged, String>,
    /// Time spent checking (not reading).
    pub elapsed: Duration,
}

/// What the checkers said of one history.
#[derive(Debug)]
pub struct Judged {
    /// One verdict per checker, in the order the checkers ran.
    pub verdicts: Vec<Verdict>,
}

impl Judged {
    /// FAIL if any verdict fails, else UNKNOWN if any is unknown, else PASS.
    pub fn validity(&self) -> Validity {
        Validity::combine(self.verdicts.iter().map(|v| v.valid))
    }

    /// The linearizability verdict's report, when that checker ran: its model (and whether
    /// it was inferred) and how many keys, for the table.
    fn linearizability(&self) -> Option<&Value> {
        self.verdicts
            .iter()
            .find(|v| v.checker == "linearizability")
            .map(|v| &v.details)
            .filter(|d| d.is_object())
    }
}

/// The text a person reads under a verdict that is not PASS: the checker's explanation, or
/// its one-line summary when it has none.
pub fn explanation(verdict: &Verdict) -> String {
    if verdict.explanation.is_empty() {
        format!(
            "  {}: {}: {}\n",
            verdict.checker,
            verdict.valid.as_str(),
            verdict.summary
        )
    } else {
        verdict.explanation.clone()
    }
}

impl FileCheck {
    /// The verdict word for the table: PASS, FAIL, UNKNOWN or ERROR.
    pub fn verdict_word(&self) -> &'static str {
        match &self.outcome {
            Ok(judged) => judged.validity().as_str(),
            Err(_) => "ERROR",
        }
    }
}

#[derive(Tabled)]
struct Row {
    file: String,
    operations: usize,
    keys: String,
    model: String,
    verdict: &'static str,
    time: String,
}

/// The table: one row per file, with the model used (and whether it was inferred).
pub fn table(checks: &[FileCheck]) -> String {
    let rows = checks.iter().map(|c| {
        let judged = c.outcome.as_ref().ok();
        let report = judged.and_then(Judged::linearizability);
        Row {
            file: c.file.clone(),
            operations: c.operations,
            keys: report.map_or("-".into(), |r| r["keys"].to_string()),
            model: match (report, judged) {
                (Some(r), _) => {
                    let model = r["model"].as_str().unwrap_or("-");
                    if r["model_inferred"] == true {
                        format!("{model} (inferred)")
                    } else {
                        model.to_string()
                    }
                }
                // A checker that names its data type (list-append, ...) shows it.
                (None, Some(j)) => j.verdicts.first().map_or("-".into(), |v| {
                    v.details["kind"]
                        .as_str()
                        .map_or_else(|| v.checker.clone(), str::to_string)
                }),
                (None, None) => "-".into(),
            },
            verdict: c.verdict_word(),
            time: format_duration(c.elapsed),
        }
    });
    Table::new(rows).with(Style::sharp()).to_string()
}

/// A duration for people: `850µs`, `12.3ms`, `1.24s`.
pub fn format_duration(d: Duration) -> String {
    let micros = d.as_micros();
    if micros < 1000 {
        format!("{micros}µs")
    } else if micros < 1_000_000 {
        format!("{:.1}ms", micros as f64 / 1000.0)
    } else {
        format!("{:.2}s", d.as_secs_f64())
    }
}

/// The totals line: `24 PASS, 79 FAIL, 0 UNKNOWN, 0 ERROR`.
pub fn totals(checks: &[FileCheck]) -> String {
    let count = |w: &str| checks.iter().filter(|c| c.verdict_word() == w).count();
    format!(
        "{} PASS, {} FAIL, {} UNKNOWN, {} ERROR",
        count("PASS"),
        count("FAIL"),
        count("UNKNOWN"),
        count("ERROR")
    )
}

/// Every file's verdict as one JSON document.
pub fn json_document(checks: &[FileCheck]) -> Value {
    let files: Vec<Value> = checks
        .iter()
        .map(|c| {
            let mut file = json!({
                "file": c.file,
                "format": c.format,
                "operations": c.operations,
                "verdict": c.verdict_word(),
                "seconds": c.elapsed.as_secs_f64(),
                "warnings": c.warnings,
            });
            match &c.outcome {
                Ok(judged) => {
                    file["verdicts"] = judged.verdicts.iter().map(|v| json!(v)).collect();
                }
                Err(e) => file["error"] = json!(e),
            }
            file
        })
        .collect();
    let verdict = if checks.iter().any(|c| c.outcome.is_err()) {
        "ERROR"
    } else {
        Validity::combine(
            checks
                .iter()
                .filter_map(|c| c.outcome.as_ref().ok())
                .map(Judged::validity),
        )
        .as_str()
    };
    json!({ "verdict": verdict, "files": files })
}

#[derive(Tabled)]
struct StatsRow {
    f: String,
    count: usize,
    ok: usize,
    fail: usize,
    info: usize,
    #[tabled(rename = "p50 ms")]
    p50: String,
    #[tabled(rename = "p95 ms")]
    p95: String,
    #[tabled(rename = "p99 ms")]
    p99: String,
    #[tabled(rename = "max ms")]
    max: String,
    #[tabled(rename = "ok/s")]
    throughput: String,
}

/// The stats table: a row per operation, then `all`.
pub fn stats_table(stats: &Stats) -> String {
    let rows = stats.by_f.iter().chain([&stats.all]).map(|s| StatsRow {
        f: s.f.clone(),
        count: s.count,
        ok: s.ok,
        fail: s.fail,
        info: s.info,
        p50: format!("{:.2}", s.p50_ms),
        p95: format!("{:.2}", s.p95_ms),
        p99: format!("{:.2}", s.p99_ms),
        max: format!("{:.2}", s.max_ms),
        throughput: format!("{:.0}", s.ok_per_s),
    });
    Table::new(rows).with(Style::sharp()).to_string()
}

#[derive(Tabled)]
struct VerdictRow {
    checker: String,
    verdict: &'static str,
    summary: String,
}

/// The verdict table: a row per checker.
pub fn verdict_table(verdicts: &[Verdict]) -> String {
    let rows = verdicts.iter().map(|v| VerdictRow {
        checker: v.checker.clone(),
        verdict: v.valid.as_str(),
        summary: v.summary.clone(),
    });
    Table::new(rows).with(Style::sharp()).to_string()
}

#[derive(Tabled)]
struct PeriodRow {
    period: String,
    seconds: String,
    count: usize,
    ok: usize,
    fail: usize,
    info: usize,
    #[tabled(rename = "available")]
    availability: String,
    #[tabled(rename = "ok/s")]
    throughput: String,
    #[tabled(rename = "p50 ms")]
    p50: String,
    #[tabled(rename = "p99 ms")]
    p99: String,
}

/// The table of healthy periods and fault windows: how available the system was under each
/// kind of fault.
pub fn period_table(stats: &Stats) -> String {
    let rows = stats.by_period.iter().map(|p| PeriodRow {
        period: p.period.clone(),
        seconds: format!("{:.1}", p.seconds),
        count: p.ops.count,
        ok: p.ops.ok,
        fail: p.ops.fail,
        info: p.ops.info,
        availability: format!("{:.1}%", 100.0 * p.availability),
        throughput: format!("{:.0}", p.ops.ok_per_s),
        p50: format!("{:.2}", p.ops.p50_ms),
        p99: format!("{:.2}", p.ops.p99_ms),
    });
    Table::new(rows).with(Style::sharp()).to_string()
}
