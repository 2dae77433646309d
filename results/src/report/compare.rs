//! `compare.html`: a comparison's cells side by side — bars per setting for throughput,
//! availability under faults and p99 latency, and each checker's verdict counts — from its
//! `compare.json`.

use std::path::Path;
use std::time::Instant;

use serde::Serialize;
use serde_json::Value;

use super::scale::r1;
use super::{Written, environment, read_json, write_html};

/// One bar.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Bar {
    /// The cell's target and settings.
    pub label: String,
    /// Its length, 0–100 (% of the longest).
    pub length: f64,
    /// What it says.
    pub value: String,
}

/// One figure across the cells.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Chart {
    /// What is measured.
    pub title: String,
    /// `throughput`, `avail` or `p99` (the bars' colour).
    pub class: &'static str,
    /// One bar per cell.
    pub bars: Vec<Bar>,
}

/// A cell's verdict counts for one checker.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Counts {
    /// The cell.
    pub label: String,
    /// The checker.
    pub checker: String,
    /// Runs that gave PASS, FAIL, UNKNOWN.
    pub pass: u64,
    /// Runs that gave FAIL.
    pub fail: u64,
    /// Runs that gave UNKNOWN.
    pub unknown: u64,
}

/// The comparison, drawn.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct CompareReport {
    /// The page's title.
    pub title: String,
    /// The workload, seed and repeats.
    pub about: String,
    /// Throughput, availability under faults, p99.
    pub charts: Vec<Chart>,
    /// Verdict counts per cell and checker.
    pub verdicts: Vec<Counts>,
    /// Each cell's run directories (their reports).
    pub runs: Vec<(String, Vec<String>)>,
}

/// Builds the comparison's data from `compare.json`.
pub fn compare_report(title: &str, document: &Value) -> CompareReport {
    let rows = document["rows"].as_array().cloned().unwrap_or_default();
    let label = |row: &Value| row["target"].as_str().unwrap_or("").to_string();
    let chart = |title: &str, class, value: &dyn Fn(&Value) -> Option<f64>, unit: &str| {
        let values: Vec<Option<f64>> = rows.iter().map(value).collect();
        let top = values
            .iter()
            .flatten()
            .copied()
            .fold(0.0, f64::max)
            .max(1e-9);
        Chart {
            title: title.into(),
            class,
            bars: (rows.iter().zip(&values))
                .map(|(row, v)| Bar {
                    label: label(row),
                    length: r1(v.unwrap_or(0.0) / top * 100.0),
                    value: v.map_or_else(|| "—".into(), |v| format!("{v:.1}{unit}")),
                })
                .collect(),
        }
    };
    let available = |row: &Value| {
        let under = row["under_faults"].as_f64()?;
        (under > 0.0).then(|| row["ok_under_faults"].as_f64().unwrap_or(0.0) / under * 100.0)
    };
    let charts = vec![
        chart(
            "throughput (ok/s)",
            "throughput",
            &|r| r["ok_per_s"].as_f64(),
            "",
        ),
        chart("available under faults", "avail", &available, " %"),
        chart("p99 latency (ms)", "p99", &|r| r["p99_ms"].as_f64(), " ms"),
    ];
    let mut verdicts = Vec::new();
    for row in &rows {
        for v in row["verdicts"].as_array().into_iter().flatten() {
            let n = |i: usize| v[1][i].as_u64().unwrap_or(0);
            verdicts.push(Counts {
                label: label(row),
                checker: v[0].as_str().unwrap_or("").to_string(),
                pass: n(0),
                fail: n(1),
                unknown: n(2),
            });
        }
    }
    let runs = (rows.iter())
        .map(|row| {
            let dirs = (row["dirs"].as_array().into_iter().flatten())
                .filter_map(|d| d.as_str())
                // The cells' directories are inside the comparison's: link by name.
                .map(|d| {
                    Path::new(d)
                        .file_name()
                        .map_or_else(|| d.to_string(), |n| n.to_string_lossy().into_owned())
                })
                .collect();
            (label(row), dirs)
        })
        .collect();
    CompareReport {
        title: title.to_string(),
        about: format!(
            "workload {}, seed {}, {} run(s) per cell",
            document["workload"].as_str().unwrap_or("?"),
            document["seed"],
            document["repeat"]
        ),
        charts,
        verdicts,
        runs,
    }
}

/// The comparison as one HTML page.
pub fn render_compare(report: &CompareReport) -> String {
    environment()
        .get_template("compare.html")
        .and_then(|t| t.render(minijinja::context! { r => report }))
        .expect("the compare template renders its data")
}

/// Writes `compare.html` into comparison directory `dir` from its `compare.json`.
pub fn write_compare_report(dir: &Path) -> Result<Written, String> {
    let started = Instant::now();
    let document = read_json(&dir.join("compare.json"))?;
    let name = dir
        .file_name()
        .map_or_else(String::new, |n| n.to_string_lossy().into_owned());
    let report = compare_report(&format!("faultline compare {name}"), &document);
    write_html(&dir.join("compare.html"), &render_compare(&report), started)
}
