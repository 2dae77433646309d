//! The HTML report (DESIGN §7): one self-contained file — inline SVG and CSS, a little plain
//! JavaScript for zoom, nothing fetched — for a run (`report.html` in its directory), a
//! check (`faultline check --html`) and a comparison (`compare.html`).
//!
//! Building is separate from drawing: [`run_report`] turns a history, its verdicts and the
//! run's record into a [`RunReport`] — plain data with every coordinate computed (the
//! `plots`, `failures` and `scale` modules) — and [`render_run`] hands it to a template
//! (minijinja) that only places it. The data is what the tests look at.

pub mod compare;
pub mod failures;
pub mod plots;
pub mod scale;
mod summary;

use std::path::{Path, PathBuf};
use std::time::Instant;

use faultline_checker::raft::NodeNotes;
use faultline_checker::stats::{self, PeriodStats};
use faultline_checker::{History, Validity, Verdict};
use serde::Serialize;
use serde_json::Value;

pub use compare::write_compare_report;
use failures::FailureView;
use plots::{Band, LatencyPlot, RatePlot};
pub use summary::{append_step_summary, step_summary};

/// The drawings' width, in SVG units (they scale to the page).
const WIDTH: f64 = 1000.0;

/// A fact about the run, for the header.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Fact {
    /// What.
    pub name: String,
    /// Its value.
    pub value: String,
}

/// One verdict, for the header.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct VerdictRow {
    /// The checker.
    pub checker: String,
    /// PASS, FAIL or UNKNOWN.
    pub valid: &'static str,
    /// Its one line.
    pub summary: String,
}

/// One row of the per-fault-window table.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct PeriodRow {
    /// `healthy` or a fault kind.
    pub period: String,
    /// Seconds in all.
    pub seconds: String,
    /// Operations invoked.
    pub count: usize,
    /// Share answered.
    pub availability: String,
    /// Completed ok per second.
    pub ok_per_s: String,
    /// Latency percentiles, ms.
    pub p50: String,
    /// Latency percentiles, ms.
    pub p99: String,
}

/// Everything the run report shows, drawn.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct RunReport {
    /// The page's title.
    pub title: String,
    /// The verdict of all the checkers together.
    pub verdict: &'static str,
    /// Each checker's.
    pub verdicts: Vec<VerdictRow>,
    /// Target, workload, settings, seed, ….
    pub facts: Vec<Fact>,
    /// The command that replays the run (its seed pinned).
    pub replay: Option<String>,
    /// Operations in the history.
    pub operations: usize,
    /// The fault windows, across every time plot.
    pub bands: Vec<Band>,
    /// Latency over time, one plot per operation kind.
    pub latency: Vec<LatencyPlot>,
    /// Throughput and availability over time.
    pub rates: RatePlot,
    /// The per-fault-window table.
    pub periods: Vec<PeriodRow>,
    /// Each FAIL, drawn.
    pub failures: Vec<FailureView>,
}

/// What a report is made of: a history, its verdicts, and (for a run) its `run.json`.
#[derive(Clone, Copy, Debug)]
pub struct ReportInput<'a> {
    /// The page's title.
    pub title: &'a str,
    /// The history.
    pub history: &'a History,
    /// The checkers' verdicts.
    pub verdicts: &'a [Verdict],
    /// The run's record, when there was a run.
    pub run: Option<&'a Value>,
    /// A bundled Raft cluster's notes, when the run kept them.
    pub raft_notes: Option<&'a [NodeNotes]>,
}

/// The verdict of several: FAIL if any failed, else UNKNOWN if any was unknown, else PASS.
pub fn overall(verdicts: &[Verdict]) -> Validity {
    if verdicts.iter().any(|v| v.valid == Validity::Fail) {
        Validity::Fail
    } else if verdicts.iter().any(|v| v.valid == Validity::Unknown) {
        Validity::Unknown
    } else {
        Validity::Pass
    }
}

/// Builds the report's data.
pub fn run_report(input: &ReportInput<'_>) -> RunReport {
    let history = input.history;
    let (start, end) = plots::span(history);
    let latency_frame = scale::Frame::new(WIDTH, 190.0);
    let axis = scale::TimeAxis::new(latency_frame, start, end);
    let stats = stats::stats(history);
    RunReport {
        title: input.title.to_string(),
        verdict: overall(input.verdicts).as_str(),
        verdicts: (input.verdicts.iter())
            .map(|v| VerdictRow {
                checker: v.checker.clone(),
                valid: v.valid.as_str(),
                summary: v.summary.clone(),
            })
            .collect(),
        facts: facts(input),
        replay: input.run.and_then(replay_command),
        operations: history.ops.len(),
        bands: plots::bands(history, &axis, end),
        latency: plots::latency_plots(history, latency_frame),
        rates: plots::rate_plot(history, scale::Frame::new(WIDTH, 150.0)),
        periods: stats.by_period.iter().map(period_row).collect(),
        failures: (input.verdicts.iter())
            .filter(|v| v.valid == Validity::Fail)
            .map(|v| failures::view(v, history, input.raft_notes, WIDTH))
            .collect(),
    }
}

fn period_row(p: &PeriodStats) -> PeriodRow {
    PeriodRow {
        period: p.period.clone(),
        seconds: format!("{:.1}", p.seconds),
        count: p.ops.count,
        availability: format!("{:.1}%", p.availability * 100.0),
        ok_per_s: format!("{:.0}", p.ops.ok_per_s),
        p50: format!("{:.2}", p.ops.p50_ms),
        p99: format!("{:.2}", p.ops.p99_ms),
    }
}

/// The header's facts, from `run.json` when there is one.
fn facts(input: &ReportInput<'_>) -> Vec<Fact> {
    let mut facts = Vec::new();
    let mut add = |name: &str, value: String| {
        if !value.is_empty() && value != "null" {
            facts.push(Fact {
                name: name.into(),
                value,
            });
        }
    };
    if let Some(run) = input.run {
        let text = |k: &str| match &run[k] {
            Value::String(s) => s.clone(),
            Value::Array(items) => items
                .iter()
                .map(|i| i.as_str().map_or_else(|| i.to_string(), str::to_string))
                .collect::<Vec<_>>()
                .join(", "),
            other => other.to_string(),
        };
        add("target", text("target"));
        add("workload", text("workload"));
        add("nodes", text("nodes"));
        add("settings", text("settings"));
        add("seed", text("seed"));
        add("started", text("started"));
        add("clients", text("clients"));
        add("rate (ops/s)", text("rate"));
        add("faults", text("nemesis"));
        add("faultline", text("faultline"));
    }
    add("operations", input.history.ops.len().to_string());
    facts
}

/// `run.json`'s command line with its seed pinned, quoted for a POSIX shell.
fn replay_command(run: &Value) -> Option<String> {
    let mut argv: Vec<String> = (run["command"].as_array()?.iter())
        .filter_map(|a| a.as_str().map(str::to_string))
        .collect();
    if argv.is_empty() {
        return None;
    }
    let seed = run["seed"].as_u64()?.to_string();
    match argv.iter().position(|a| a == "--seed") {
        Some(i) if i + 1 < argv.len() => argv[i + 1] = seed,
        _ => {
            argv.retain(|a| !a.starts_with("--seed="));
            argv.extend(["--seed".to_string(), seed]);
        }
    }
    argv[0] = "faultline".into();
    Some(
        argv.iter()
            .map(|a| shell_quote(a))
            .collect::<Vec<_>>()
            .join(" "),
    )
}

fn shell_quote(arg: &str) -> String {
    let plain = |c: char| c.is_ascii_alphanumeric() || "_-./:=,@%+".contains(c);
    if !arg.is_empty() && arg.chars().all(plain) {
        arg.to_string()
    } else {
        format!("'{}'", arg.replace('\'', r"'\''"))
    }
}

/// The templates, with HTML escaping.
fn environment() -> minijinja::Environment<'static> {
    let mut env = minijinja::Environment::new();
    env.add_template("run.html", include_str!("../../templates/run.html"))
        .expect("the run template parses");
    env.add_template("compare.html", include_str!("../../templates/compare.html"))
        .expect("the compare template parses");
    env.add_template("style.css", include_str!("../../templates/style.css"))
        .expect("the style parses");
    env
}

/// The run report as one HTML page.
pub fn render_run(report: &RunReport) -> String {
    environment()
        .get_template("run.html")
        .and_then(|t| t.render(minijinja::context! { r => report }))
        .expect("the run template renders its data")
}

/// A report written: where, how big, how long it took.
#[derive(Clone, Debug)]
pub struct Written {
    /// The file.
    pub path: PathBuf,
    /// Its size in bytes.
    pub bytes: usize,
    /// Milliseconds to build and write it.
    pub millis: u128,
}

/// Writes `report.html` into run directory `dir` from its `history.jsonl`, `verdict.json`
/// and `run.json`.
pub fn write_run_report(dir: &Path) -> Result<Written, String> {
    let started = Instant::now();
    let read = faultline_checker::format::read_path(&dir.join("history.jsonl"), None)
        .map_err(|e| format!("{}: {e}", dir.join("history.jsonl").display()))?;
    let verdict = read_json(&dir.join("verdict.json"))?;
    let verdicts: Vec<Verdict> = serde_json::from_value(verdict["checkers"].clone())
        .map_err(|e| format!("{}: {e}", dir.join("verdict.json").display()))?;
    write_run_report_of(dir, &read.history, &verdicts, started)
}

/// Writes `report.html` into run directory `dir` for its `history` (already read) and the
/// checkers' `verdicts`, with its `run.json`; `started` is when the work began.
pub fn write_run_report_of(
    dir: &Path,
    history: &History,
    verdicts: &[Verdict],
    started: Instant,
) -> Result<Written, String> {
    let run = read_json(&dir.join("run.json")).ok();
    // The directory's own name, also when reached through `latest`.
    let real = dir.canonicalize().unwrap_or_else(|_| dir.to_path_buf());
    let name = (real.file_name()).map_or_else(String::new, |n| n.to_string_lossy().into_owned());
    let title = format!("faultline run {name}");
    let notes = raft_notes_of(dir, run.as_ref());
    let input = ReportInput {
        title: &title,
        history,
        verdicts,
        run: run.as_ref(),
        raft_notes: notes.as_deref(),
    };
    write_html(
        &dir.join("report.html"),
        &render_run(&run_report(&input)),
        started,
    )
}

/// The Raft notes a run directory `dir` kept (`raft-notes/<node>.jsonl` for the nodes its
/// `run` record names), if any.
pub fn raft_notes_of(dir: &Path, run: Option<&Value>) -> Option<Vec<NodeNotes>> {
    let nodes: Vec<String> = (run
        .and_then(|r| r["nodes"].as_array())
        .into_iter()
        .flatten())
    .filter_map(|n| n.as_str().map(str::to_string))
    .collect();
    faultline_checker::raft::read_notes(&dir.join("raft-notes"), &nodes)
        .ok()
        .flatten()
}

/// Writes `html` to `path`; how big and how long since `started`.
pub fn write_html(path: &Path, html: &str, started: Instant) -> Result<Written, String> {
    std::fs::write(path, html).map_err(|e| format!("{}: {e}", path.display()))?;
    Ok(Written {
        path: path.to_path_buf(),
        bytes: html.len(),
        millis: started.elapsed().as_millis(),
    })
}

fn read_json(path: &Path) -> Result<Value, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
    serde_json::from_str(&text).map_err(|e| format!("{}: {e}", path.display()))
}

#[cfg(test)]
mod tests;
