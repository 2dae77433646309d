//! `faultline report`: (re)builds the HTML reports of run and comparison directories, and
//! the writing of reports and CI job summaries that `run`, `compare` and `check` share.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use faultline_checker::Verdict;
use faultline_results::report::{self, Written};

use crate::args::ReportArgs;
use crate::run::CANNOT_RUN;

/// Runs `faultline report`.
pub(crate) fn run(args: &ReportArgs) -> ExitCode {
    let mut failed = false;
    for dir in &args.dirs {
        let written = if dir.join("compare.json").exists() {
            rebuild_comparison(dir)
        } else {
            report::write_run_report(dir).map(|w| vec![w])
        };
        match written {
            Ok(written) => written.iter().for_each(say),
            Err(e) => {
                eprintln!("faultline: {e}");
                failed = true;
            }
        }
    }
    if failed {
        ExitCode::from(CANNOT_RUN)
    } else {
        ExitCode::SUCCESS
    }
}

/// A comparison's runs' reports, then its own.
fn rebuild_comparison(dir: &Path) -> Result<Vec<Written>, String> {
    let mut written = Vec::new();
    let entries = std::fs::read_dir(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let mut runs: Vec<PathBuf> = (entries.flatten().map(|e| e.path()))
        .filter(|p| p.join("verdict.json").exists())
        .collect();
    runs.sort();
    for run in runs {
        written.push(report::write_run_report(&run)?);
    }
    written.push(report::write_compare_report(dir)?);
    Ok(written)
}

/// Says where a report went, how big it is and how long it took.
pub(crate) fn say(written: &Written) {
    eprintln!(
        "faultline: report {} ({:.1} MB, {} ms)",
        written.path.display(),
        written.bytes as f64 / 1e6,
        written.millis
    );
}

/// Appends the verdicts to the CI job summary (`GITHUB_STEP_SUMMARY`), if there is one.
pub(crate) fn summarize(title: &str, verdicts: &[Verdict], report: Option<&Path>) {
    let markdown = report::step_summary(title, verdicts, report);
    if let Err(e) = report::append_step_summary(&markdown) {
        eprintln!("faultline: cannot write the job summary: {e}");
    }
}
