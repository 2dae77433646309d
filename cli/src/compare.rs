//! `faultline compare`: the same workload, faults and seed against several targets and
//! settings, one row each (DESIGN §7).
//!
//! Every cell runs through [`crate::run::execute`] into its own run directory under one
//! comparison directory; this module only plans the cells, sums their runs up into rows and
//! writes `compare.json`, `compare.md` and `junit.xml`.

use std::process::ExitCode;

use faultline_checker::{Validity, Verdict};
use faultline_results::{RunDir, junit};
use serde::Serialize;
use serde_json::json;
use tabled::builder::Builder;
use tabled::settings::Style;

use crate::args::CompareArgs;
use crate::plan::{RunPlan, run_seed};
use crate::run::{CANNOT_RUN, Finished, execute, interrupts};

/// Writes a comparison's `compare.json`, `compare.md` and `junit.xml`.
fn write_comparison(
    comparison: &RunDir,
    document: &serde_json::Value,
    markdown: &str,
    cases: &[faultline_checker::Verdict],
) -> std::io::Result<()> {
    comparison.write_json("compare.json", document)?;
    std::fs::write(comparison.path.join("compare.md"), format!("{markdown}\n"))?;
    let xml = junit("faultline compare", cases)?;
    std::fs::write(comparison.path.join("junit.xml"), xml)
}

/// Writes `compare.html` and appends the table to the CI job summary, saying what went wrong.
fn show_comparison(comparison: &RunDir, workload: &str, markdown: &str) {
    match faultline_results::report::write_compare_report(&comparison.path) {
        Ok(written) => println!("report:  {} (open it in a browser)", written.path.display()),
        Err(e) => eprintln!("faultline: the HTML report was not written: {e}"),
    }
    let summary = format!(
        "### faultline compare ({workload})\n\n{markdown}\n\nReport: `{}`\n\n",
        comparison.path.join("compare.html").display()
    );
    if let Err(e) = faultline_results::report::append_step_summary(&summary) {
        eprintln!("faultline: cannot write the job summary: {e}");
    }
}

/// One cell's runs, summed up.
#[derive(Debug, Default, Serialize)]
struct Row {
    target: String,
    runs: usize,
    errors: Vec<String>,
    /// Means over the runs.
    ok_per_s: f64,
    p50_ms: f64,
    p99_ms: f64,
    /// Totals over the runs.
    count: usize,
    ok: usize,
    fail: usize,
    info: usize,
    /// Operations invoked while a fault was in effect, and how many of them a working system
    /// answered (ok, or a cas told its comparison failed).
    under_faults: usize,
    ok_under_faults: usize,
    /// The same per fault kind: (operations, answered).
    by_kind: Vec<(String, usize, usize)>,
    /// Lost and stale elements (set workload only).
    lost: Option<usize>,
    stale: Option<usize>,
    /// Checkout only: the largest p99 and max over the runs of how long orders were visible
    /// half-done, and of how long two-phase commit participants were blocked, in ms.
    half_done_ms: Option<(u64, u64)>,
    blocked_ms: Option<(u64, u64)>,
    /// Per checker: runs that gave PASS, FAIL, UNKNOWN.
    verdicts: Vec<(String, [usize; 3])>,
    /// The run directories.
    dirs: Vec<String>,
}

impl Row {
    /// Adds one run's `outcome` (of cell `label` with `seed`), its verdicts to `junit_cases`,
    /// and what went wrong to the row's errors.
    fn record(
        &mut self,
        outcome: Result<Finished, String>,
        label: &str,
        seed: u64,
        junit_cases: &mut Vec<Verdict>,
    ) {
        match outcome {
            Ok(finished) if finished.nemesis_error.is_some() || finished.summary.interrupted => {
                if let Some(e) = &finished.nemesis_error {
                    self.errors.push(format!("seed {seed}: nemesis: {e}"));
                }
                self.add(&finished);
            }
            Ok(finished) => {
                eprintln!("        {}", one_line(&finished));
                for v in &finished.judged.verdicts {
                    let mut v = v.clone();
                    v.checker = format!("{label} seed {seed}: {}", v.checker);
                    junit_cases.push(v);
                }
                self.add(&finished);
            }
            Err(e) => {
                eprintln!("        could not run: {e}");
                self.errors.push(format!("seed {seed}: {e}"));
            }
        }
    }

    fn add(&mut self, finished: &Finished) {
        let n = self.runs as f64;
        let all = &finished.stats.all;
        self.ok_per_s = (self.ok_per_s * n + all.ok_per_s) / (n + 1.0);
        self.p50_ms = (self.p50_ms * n + all.p50_ms) / (n + 1.0);
        self.p99_ms = (self.p99_ms * n + all.p99_ms) / (n + 1.0);
        self.runs += 1;
        self.count += all.count;
        self.ok += all.ok;
        self.fail += all.fail;
        self.info += all.info;
        for period in finished
            .stats
            .by_period
            .iter()
            .filter(|p| p.period != "healthy")
        {
            self.under_faults += period.ops.count;
            self.ok_under_faults += period.ops.answered;
            match self.by_kind.iter_mut().find(|k| k.0 == period.period) {
                Some(kind) => {
                    kind.1 += period.ops.count;
                    kind.2 += period.ops.answered;
                }
                None => self.by_kind.push((
                    period.period.clone(),
                    period.ops.count,
                    period.ops.answered,
                )),
            }
        }
        for verdict in &finished.judged.verdicts {
            self.count_verdict(verdict);
        }
        self.dirs.push(finished.dir.path.display().to_string());
    }

    fn count_verdict(&mut self, verdict: &Verdict) {
        let i = match self
            .verdicts
            .iter()
            .position(|(c, _)| *c == verdict.checker)
        {
            Some(i) => i,
            None => {
                self.verdicts.push((verdict.checker.clone(), [0; 3]));
                self.verdicts.len() - 1
            }
        };
        let slot = match verdict.valid {
            Validity::Pass => 0,
            Validity::Fail => 1,
            Validity::Unknown => 2,
        };
        self.verdicts[i].1[slot] += 1;
        if verdict.checker == "saga" {
            let widest = |field: &str, into: &mut Option<(u64, u64)>| {
                let spread = &verdict.details[field];
                if let (Some(p99), Some(max)) = (spread["p99"].as_u64(), spread["max"].as_u64()) {
                    let (a, b) = into.get_or_insert((0, 0));
                    *a = (*a).max(p99);
                    *b = (*b).max(max);
                }
            };
            widest("half_done_ms", &mut self.half_done_ms);
            widest("blocked_ms", &mut self.blocked_ms);
        }
        if verdict.checker == "set" {
            let count = |field: &str| verdict.details[field].as_array().map_or(0, Vec::len);
            *self.lost.get_or_insert(0) += count("lost");
            *self.stale.get_or_insert(0) += count("stale");
        }
    }

    fn share(&self, part: usize) -> String {
        if self.count == 0 {
            "-".into()
        } else {
            format!("{:.1}%", 100.0 * part as f64 / self.count as f64)
        }
    }

    fn availability(&self) -> String {
        percent(self.ok_under_faults, self.under_faults)
    }

    fn availability_under(&self, kind: &str) -> String {
        self.by_kind
            .iter()
            .find(|k| k.0 == kind)
            .map_or("-".into(), |k| percent(k.2, k.1))
    }

    /// `FAIL 3/5` when some runs failed, else `PASS 5/5` (with unknowns named).
    fn verdict_text(counts: [usize; 3], runs: usize) -> String {
        let [pass, fail, unknown] = counts;
        let mut text = if fail > 0 {
            format!("FAIL {fail}/{runs}")
        } else {
            format!("PASS {pass}/{runs}")
        };
        if unknown > 0 {
            text.push_str(&format!(", UNKNOWN {unknown}"));
        }
        text
    }
}

/// `part` of `whole` as a percentage, `-` when there is no whole.
fn percent(part: usize, whole: usize) -> String {
    if whole == 0 {
        "-".into()
    } else {
        format!("{:.1}%", 100.0 * part as f64 / whole as f64)
    }
}

/// The table's header and cells, shared by the terminal and Markdown renderings.
fn table_cells(rows: &[Row]) -> (Vec<String>, Vec<Vec<String>>) {
    let columns = Columns::of(rows);
    let cells = rows.iter().map(|row| columns.cells(row)).collect();
    (columns.header(), cells)
}

/// The columns a comparison's rows need beside the fixed ones.
struct Columns {
    /// The checkers any row has a verdict of.
    checkers: Vec<String>,
    /// The fault kinds to show availability under, when there are several.
    kinds: Vec<String>,
    /// Whether a set workload's lost and stale elements are shown.
    with_set: bool,
    /// Whether a checkout's half-done and blocked times are shown.
    with_checkout: bool,
}

/// Every distinct name `names` gives over `rows`, in first-seen order.
fn distinct<'a>(rows: &'a [Row], names: impl Fn(&'a Row) -> Vec<&'a String>) -> Vec<String> {
    let mut seen: Vec<String> = Vec::new();
    for name in rows.iter().flat_map(names) {
        if !seen.contains(name) {
            seen.push(name.clone());
        }
    }
    seen
}

impl Columns {
    fn of(rows: &[Row]) -> Self {
        let checkers = distinct(rows, |r| r.verdicts.iter().map(|(c, _)| c).collect());
        let mut kinds = distinct(rows, |r| r.by_kind.iter().map(|(k, _, _)| k).collect());
        // With several fault kinds, availability under each one too.
        if kinds.len() < 2 {
            kinds.clear();
        }
        Columns {
            with_checkout: checkers.iter().any(|c| c == "saga"),
            with_set: rows.iter().any(|r| r.lost.is_some()),
            checkers,
            kinds,
        }
    }

    fn header(&self) -> Vec<String> {
        let mut header: Vec<String> = [
            "target",
            "runs",
            "ok/s",
            "p50 ms",
            "p99 ms",
            "ok",
            "fail",
            "info",
            "available under faults",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        header.extend(self.kinds.iter().map(|k| format!("under {k}")));
        if self.with_set {
            header.push("lost".into());
            header.push("stale".into());
        }
        if self.with_checkout {
            header.push("half-done p99/max ms".into());
            header.push("blocked p99/max ms".into());
        }
        header.extend(self.checkers.iter().cloned());
        header
    }

    fn cells(&self, row: &Row) -> Vec<String> {
        let mut cells = vec![
            row.target.clone(),
            row.runs.to_string(),
            format!("{:.0}", row.ok_per_s),
            format!("{:.2}", row.p50_ms),
            format!("{:.2}", row.p99_ms),
            row.share(row.ok),
            row.share(row.fail),
            row.share(row.info),
            row.availability(),
        ];
        cells.extend(self.kinds.iter().map(|k| row.availability_under(k)));
        if self.with_set {
            cells.push(row.lost.map_or("-".into(), |n| n.to_string()));
            cells.push(row.stale.map_or("-".into(), |n| n.to_string()));
        }
        if self.with_checkout {
            let pair = |p: Option<(u64, u64)>| p.map_or("-".into(), |(a, b)| format!("{a} / {b}"));
            cells.push(pair(row.half_done_ms));
            cells.push(pair(row.blocked_ms));
        }
        for checker in &self.checkers {
            cells.push(if !row.errors.is_empty() {
                format!("ERROR ({} runs)", row.errors.len())
            } else {
                (row.verdicts.iter())
                    .find(|(c, _)| c == checker)
                    .map_or("-".into(), |(_, counts)| {
                        Row::verdict_text(*counts, row.runs)
                    })
            });
        }
        cells
    }
}

/// The table for a terminal, or as Markdown.
fn render(header: &[String], cells: &[Vec<String>], markdown: bool) -> String {
    let mut builder = Builder::default();
    builder.push_record(header.to_vec());
    for row in cells {
        builder.push_record(row.clone());
    }
    let mut table = builder.build();
    if markdown {
        table.with(Style::markdown());
    } else {
        table.with(Style::sharp());
    }
    table.to_string()
}

/// Splits `bundled:quorum?n=3,w=1` into the target and its own settings.
fn split_target(text: &str) -> (&str, Option<&str>) {
    match text.split_once('?') {
        Some((target, settings)) => (target, Some(settings)),
        None => (text, None),
    }
}

/// Every cell of the comparison, each planned and checked before anything runs, all under
/// one seed.
fn cells(args: &CompareArgs) -> Result<Vec<RunPlan>, String> {
    if args.repeat == 0 {
        return Err("--repeat must be at least 1".into());
    }
    if args.options.check_determinism {
        return Err("--check-determinism checks one run: use it with faultline run".into());
    }
    let seed = run_seed(&args.options);
    let mut plans = Vec::new();
    for target in &args.targets {
        let (base, own) = split_target(target);
        let rows: Vec<Option<&String>> = if args.sets.is_empty() {
            vec![None]
        } else {
            args.sets.iter().map(Some).collect()
        };
        for set in rows {
            let settings: Vec<String> = own
                .map(str::to_string)
                .into_iter()
                .chain(set.cloned())
                .filter(|s| !s.is_empty())
                .collect();
            plans.push(RunPlan::new(base, &settings, &args.options)?.with_seed(seed));
        }
    }
    Ok(plans)
}

/// Runs `faultline compare`.
pub(crate) fn compare(args: &CompareArgs) -> ExitCode {
    let plans = match cells(args) {
        Ok(plans) => plans,
        Err(e) => {
            eprintln!("faultline: {e}");
            return ExitCode::from(2);
        }
    };
    let opts = &args.options;
    // Simulated cells run one after another on one paused clock.
    crate::sim::runtime_for(plans[0].simulated()).block_on(async {
        let seed = plans[0].seed;
        eprintln!(
            "faultline: {} cells × {} runs, seeds {seed}..{} (replay with --seed {seed})",
            plans.len(),
            args.repeat,
            seed + u64::from(args.repeat) - 1
        );
        let comparison = match RunDir::create(&opts.out, "compare", opts.workload.name()) {
            Ok(dir) => dir,
            Err(e) => {
                eprintln!("faultline: cannot create {}: {e}", opts.out.display());
                return ExitCode::from(CANNOT_RUN);
            }
        };
        if let Err(e) = comparison.point_latest(&opts.out) {
            eprintln!(
                "faultline: cannot point {}/latest at the comparison: {e}",
                opts.out.display()
            );
        }
        let stop = interrupts();
        let mut rows: Vec<Row> = Vec::new();
        let mut junit_cases: Vec<Verdict> = Vec::new();
        let total = plans.len() * args.repeat as usize;
        let mut done = 0;
        'cells: for (ci, plan) in plans.iter().enumerate() {
            let mut row = Row {
                target: plan.label.clone(),
                ..Row::default()
            };
            for r in 0..args.repeat {
                if *stop.borrow() {
                    rows.push(row);
                    break 'cells;
                }
                let run_seed = seed + u64::from(r);
                done += 1;
                eprintln!("[{done}/{total}] {} seed {run_seed}", plan.label);
                let name = format!("{:02}-{}-seed{run_seed}", ci + 1, plan.label);
                let outcome = match RunDir::create_named(&comparison.path, &name) {
                    Ok(dir) => execute(&plan.with_seed(run_seed), dir, stop.clone(), false).await,
                    Err(e) => Err(format!("cannot create the run directory: {e}")),
                };
                row.record(outcome, &plan.label, run_seed, &mut junit_cases);
            }
            rows.push(row);
        }
        let (header, cells) = table_cells(&rows);
        println!("{}", render(&header, &cells, false));
        let document = json!({
            "seed": seed,
            "repeat": args.repeat,
            "workload": opts.workload.name(),
            "table": { "header": header, "rows": cells },
            "rows": rows,
        });
        let markdown = render(&header, &cells, true);
        if let Err(e) = write_comparison(&comparison, &document, &markdown, &junit_cases) {
            eprintln!("faultline: cannot write {}: {e}", comparison.path.display());
            return ExitCode::from(CANNOT_RUN);
        }
        println!("\nresults: {}", comparison.path.display());
        show_comparison(&comparison, opts.workload.name(), &markdown);
        exit_code(&rows, *stop.borrow(), args.fail_on_violation)
    })
}

/// The exit code of a comparison: 130 interrupted, 4 a cell could not run (each said), 1 a
/// FAIL with `--fail-on-violation`, else 0.
fn exit_code(rows: &[Row], interrupted: bool, fail_on_violation: bool) -> ExitCode {
    if interrupted {
        return ExitCode::from(130);
    }
    if rows.iter().any(|r| !r.errors.is_empty()) {
        for row in rows {
            for e in &row.errors {
                eprintln!("faultline: {}: {e}", row.target);
            }
        }
        return ExitCode::from(CANNOT_RUN);
    }
    let failed = rows
        .iter()
        .any(|r| r.verdicts.iter().any(|(_, c)| c[1] > 0));
    if fail_on_violation && failed {
        return ExitCode::from(1);
    }
    ExitCode::SUCCESS
}

/// A run in one line: verdicts and throughput.
fn one_line(finished: &Finished) -> String {
    let verdicts: Vec<String> = finished
        .judged
        .verdicts
        .iter()
        .map(|v| format!("{} {}", v.checker, v.valid.as_str()))
        .collect();
    format!(
        "{}, {} ops, {:.0} ok/s",
        verdicts.join(", "),
        finished.stats.all.count,
        finished.stats.all.ok_per_s
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets_carry_their_settings() {
        assert_eq!(
            split_target("bundled:quorum?n=3,w=1"),
            ("bundled:quorum", Some("n=3,w=1"))
        );
        assert_eq!(split_target("http://h:1"), ("http://h:1", None));
    }

    #[test]
    fn verdict_counts_read_as_fractions() {
        assert_eq!(Row::verdict_text([2, 3, 0], 5), "FAIL 3/5");
        assert_eq!(Row::verdict_text([4, 0, 1], 5), "PASS 4/5, UNKNOWN 1");
    }
}
