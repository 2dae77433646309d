//! The job summary of a CI pipeline: with `GITHUB_STEP_SUMMARY` set (GitHub Actions sets it
//! to a file per step), `run`, `compare` and `check` append their verdict table as Markdown —
//! and, for a FAIL, the explanation's first paragraph and where the report is.

use std::io::Write;
use std::path::Path;

use faultline_checker::{Validity, Verdict};

/// The summary of `title`'s `verdicts`, with the report at `report` if one was written.
pub fn step_summary(title: &str, verdicts: &[Verdict], report: Option<&Path>) -> String {
    let overall = super::overall(verdicts);
    let mut md = format!(
        "### {title}: {}\n\n| checker | verdict | summary |\n|---|---|---|\n",
        overall.as_str()
    );
    for v in verdicts {
        let summary = v.summary.replace('|', "\\|").replace('\n', " ");
        md.push_str(&format!(
            "| {} | **{}** | {summary} |\n",
            v.checker,
            v.valid.as_str()
        ));
    }
    for v in verdicts.iter().filter(|v| v.valid == Validity::Fail) {
        let first = v.explanation.split("\n\n").next().unwrap_or("").trim();
        if !first.is_empty() {
            md.push_str(&format!("\n**{}**:\n\n```\n{first}\n```\n", v.checker));
        }
    }
    if let Some(report) = report {
        md.push_str(&format!("\nReport: `{}`\n", report.display()));
    }
    md.push('\n');
    md
}

/// Appends `markdown` to the file `GITHUB_STEP_SUMMARY` names, if it is set; an error says
/// which file could not be written.
pub fn append_step_summary(markdown: &str) -> Result<(), String> {
    let Some(path) = std::env::var_os("GITHUB_STEP_SUMMARY").filter(|p| !p.is_empty()) else {
        return Ok(());
    };
    let path = Path::new(&path);
    std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .and_then(|mut f| f.write_all(markdown.as_bytes()))
        .map_err(|e| format!("GITHUB_STEP_SUMMARY={}: {e}", path.display()))
}
