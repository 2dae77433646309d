//! `faultline check`: read each file, check it, print the verdicts, choose the exit code.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Instant;

use faultline_checker::causal::Consistency;
use faultline_checker::txn::{Model, TxnOptions};
use faultline_checker::{Checker, Evidence, History, Options, format};
use faultline_results::{FileCheck, explanation, json_document, report, table, totals};
use rayon::prelude::*;

use crate::args::{CheckArgs, CheckModel, ConsistencyArg, OutputFormat};

/// Runs `faultline check`.
pub(crate) fn run(args: &CheckArgs) -> ExitCode {
    let options = Options {
        model: match args.model {
            Some(CheckModel::Single(model)) => Some(model),
            Some(CheckModel::Txn(_)) | None => None,
        },
        initial: args.initial.clone(),
        semantics: args.semantics,
        timeout: args.timeout,
        max_cache_bytes: args.max_cache,
        ..Options::default()
    };
    let (checks, histories): (Vec<FileCheck>, Vec<Option<History>>) = args
        .files
        .par_iter()
        .map(|path| check_file(path, args, &options))
        .unzip();

    for check in &checks {
        for warning in &check.warnings {
            eprintln!("faultline: warning: {}: {warning}", check.file);
        }
    }
    match args.format {
        OutputFormat::Json => println!(
            "{}",
            serde_json::to_string_pretty(&json_document(&checks)).expect("JSON values serialize")
        ),
        OutputFormat::Table => print_table(&checks),
    }
    let mut code = exit_code(&checks);
    for (i, ((path, check), history)) in args.files.iter().zip(&checks).zip(&histories).enumerate()
    {
        let Ok(judged) = &check.outcome else { continue };
        let out = args
            .html
            .as_ref()
            .map(|out| report_path(out, path, i, args.files.len()));
        if let (Some(out), Some(history)) = (&out, history) {
            match write_report(path, out, history, &judged.verdicts) {
                Ok(written) => crate::report::say(&written),
                Err(e) => {
                    eprintln!("faultline: the HTML report was not written: {e}");
                    code = ExitCode::from(4);
                }
            }
        }
        let title = format!("faultline check {}", path.display());
        crate::report::summarize(&title, &judged.verdicts, out.as_deref());
    }
    code
}

/// Where the report of file `i` of `count` goes: `out` itself for one file, else
/// `out` with `-<file stem>` before its extension.
fn report_path(out: &Path, file: &Path, i: usize, count: usize) -> PathBuf {
    if count == 1 {
        return out.to_path_buf();
    }
    let stem = out
        .file_stem()
        .map_or_else(|| "report".into(), |s| s.to_string_lossy().into_owned());
    let name = file
        .file_stem()
        .map_or_else(|| i.to_string(), |s| s.to_string_lossy().into_owned());
    out.with_file_name(format!("{stem}-{name}.html"))
}

/// The report of `history`, read from `path` (a file, or a run directory with its run.json),
/// to `out`.
fn write_report(
    path: &Path,
    out: &Path,
    history: &History,
    verdicts: &[faultline_checker::Verdict],
) -> Result<faultline_results::report::Written, String> {
    let started = Instant::now();
    let run = std::fs::read_to_string(path.join("run.json"))
        .ok()
        .and_then(|text| serde_json::from_str::<serde_json::Value>(&text).ok());
    let notes = report::raft_notes_of(path, run.as_ref());
    let title = format!("faultline check {}", path.display());
    let input = report::ReportInput {
        title: &title,
        history,
        verdicts,
        run: run.as_ref(),
        raft_notes: notes.as_deref(),
    };
    report::write_html(
        out,
        &report::render_run(&report::run_report(&input)),
        started,
    )
}

/// Checks one file; its history too when a report will be drawn from it.
fn check_file(path: &Path, args: &CheckArgs, options: &Options) -> (FileCheck, Option<History>) {
    let file = path.display().to_string();
    let read = match format::read_path(path, args.input_format) {
        Ok(read) => read,
        Err(e) => {
            let check = FileCheck {
                file,
                format: None,
                warnings: Vec::new(),
                operations: 0,
                outcome: Err(e.to_string()),
                elapsed: Default::default(),
            };
            return (check, None);
        }
    };
    let started = Instant::now();
    let outcome = match crate::plan::RunRecord::read(path) {
        // A run directory is judged by the checkers its workload names...
        Ok(Some(record))
            if args
                .consistency
                .is_none_or(|c| c == ConsistencyArg::Causal(Consistency::Linearizable)) =>
        {
            crate::judge::judge(&read.history, &record, path)
                .map_err(|e| format!("{}/{e}", path.display()))
        }
        // ... and anything else by the checker the flags and the history name.
        Ok(_) => crate::judge::judge_with(
            &[checker(args, options, &read.history)],
            &Evidence::history(&read.history),
        )
        .map_err(|e| format!("{}:{e}", path.display())),
        Err(e) => Err(e),
    };
    let check = FileCheck {
        file,
        format: read.format.map(|f| f.name().to_string()),
        warnings: read.history.warnings.clone(),
        operations: read.history.ops.len(),
        outcome,
        elapsed: started.elapsed(),
    };
    (check, args.html.is_some().then_some(read.history))
}

/// The checker for a file that is not a run directory: the transactional checker for a
/// history of transactions (or when --model or --consistency names a transactional one), a
/// causal checker when --consistency names one, else linearizability.
fn checker(args: &CheckArgs, options: &Options, history: &History) -> Checker {
    let txn_history = history.ops.iter().any(|op| op.f == "txn");
    let txn_kind = match args.model {
        Some(CheckModel::Txn(kind)) => Some(kind),
        _ => None,
    };
    match args.consistency {
        Some(ConsistencyArg::Causal(c)) if c != Consistency::Linearizable => Checker::Causal(c),
        Some(ConsistencyArg::Txn(model)) => Checker::Transactional(TxnOptions {
            kind: txn_kind,
            consistency: model,
            assume: args.assume.clone(),
            timeout: args.timeout,
        }),
        _ if txn_history || txn_kind.is_some() => Checker::Transactional(TxnOptions {
            kind: txn_kind,
            consistency: Model::StrictSerializable,
            assume: args.assume.clone(),
            timeout: args.timeout,
        }),
        _ => Checker::Linearizability(options.clone()),
    }
}

fn print_table(checks: &[FileCheck]) {
    println!("{}", table(checks));
    println!("{}", totals(checks));
    for check in checks {
        match &check.outcome {
            Ok(judged) if judged.validity() != faultline_checker::Validity::Pass => {
                println!("\n{} {}", check.verdict_word(), check.file);
                for verdict in &judged.verdicts {
                    print!("{}", explanation(verdict));
                }
            }
            Ok(_) => {}
            Err(e) => println!("\nERROR {e}"),
        }
    }
}

fn exit_code(checks: &[FileCheck]) -> ExitCode {
    let word = |w: &str| checks.iter().any(|c| c.verdict_word() == w);
    ExitCode::from(if word("ERROR") {
        4
    } else if word("FAIL") {
        1
    } else if word("UNKNOWN") {
        3
    } else {
        0
    })
}
