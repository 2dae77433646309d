//! Shrinking a failing seed's fault schedule (`faultline hunt`): the fewest faults, held the
//! shortest, in the shortest run, that still make the same checker fail.
//!
//! The seed's schedule is written out as a schedule file; every trial replays a smaller file
//! with the same seed (so the workload and the network draw as before) and keeps it if the
//! checker that failed still fails. Faults go first (delta debugging: halves, then quarters,
//! ... removed while the failure stays; then neighbours of one kind joined into one), then
//! each hold is halved while it can be, then the run is cut short.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use faultline_nemesis::{PlannedStep, ScheduleFile};

use crate::args::HuntArgs;
use crate::hunt::{Outcome, RunCommand};

/// Trials against a time budget, each a replay of a schedule with the failing seed.
struct Trials<'a> {
    command: &'a RunCommand,
    checker: String,
    scratch: &'a Path,
    started: Instant,
    budget: Duration,
    runs: u32,
}

impl Trials<'_> {
    /// Whether `steps` in a run of `time_limit` still fail the checker (`false` once the
    /// budget is spent or the user pressed Ctrl-C: nothing more is removed).
    fn fails(&mut self, steps: &[PlannedStep], time_limit: Duration) -> Result<bool, String> {
        if self.stopped() {
            return Ok(false);
        }
        self.runs += 1;
        let file = self.scratch.join("trial.json");
        write(&file, steps)?;
        let trial = self.replaying(&file, time_limit);
        let outcome: Outcome = trial.outcome(self.scratch)?;
        Ok(outcome.failing.contains(&self.checker))
    }

    /// Whether trials must end: the budget is spent or the hunt was interrupted.
    fn stopped(&self) -> bool {
        self.started.elapsed() >= self.budget || crate::hunt::interrupted()
    }

    /// The failing command with `file`'s faults instead of the seed's.
    fn replaying(&self, file: &Path, time_limit: Duration) -> RunCommand {
        RunCommand {
            nemesis: None,
            nemesis_interval: None,
            schedule: Some(file.to_path_buf()),
            time_limit,
            ..self.command.clone()
        }
    }
}

fn write(path: &Path, steps: &[PlannedStep]) -> Result<(), String> {
    let file = ScheduleFile::new(steps.to_vec());
    let text = serde_json::to_string_pretty(&file).expect("schedules serialise");
    std::fs::write(path, text + "\n").map_err(|e| format!("{}: cannot write: {e}", path.display()))
}

/// Writes the faults `command`'s seed draws as `schedule.json` in `kept`: the steps and
/// where they went.
pub(crate) fn keep_schedule(
    command: &RunCommand,
    kept: &Path,
) -> Result<(Vec<PlannedStep>, PathBuf), String> {
    let plan = command.plan(false)?;
    // Every fault that can start before the nemesis stops (the last operation may end up to
    // an operation timeout after the time limit).
    let horizon = command.time_limit + plan.opts.op_timeout + Duration::from_secs(1);
    let steps = crate::run::schedule(&plan, plan.nodes())
        .planned(horizon)
        .steps;
    let path = kept.join("schedule.json");
    write(&path, &steps)?;
    Ok((steps, path))
}

/// Shrinks the schedule of the failing `command` and writes the full and the shrunk schedule
/// into its run directory `kept`.
pub(crate) fn shrink(
    command: &RunCommand,
    outcome: &Outcome,
    args: &HuntArgs,
    kept: &Path,
) -> Result<(), String> {
    let (full, full_path) = keep_schedule(command, kept)?;
    let scratch =
        tempfile::tempdir().map_err(|e| format!("cannot make a scratch directory: {e}"))?;
    let mut trials = Trials {
        command,
        checker: outcome.failing.first().cloned().unwrap_or_default(),
        scratch: scratch.path(),
        started: Instant::now(),
        budget: args.shrink_time,
        runs: 0,
    };
    let mut time_limit = command.time_limit;
    if !trials.fails(&full, time_limit)? {
        if crate::hunt::interrupted() {
            println!(
                "shrunk:   not shrunk (interrupted); its {} faults are in {}",
                full.len(),
                full_path.display()
            );
            return Ok(());
        }
        println!(
            "shrunk:   not shrunk: its {} faults replayed from {} did not fail {} again",
            full.len(),
            full_path.display(),
            trials.checker
        );
        return Ok(());
    }
    let mut steps = fewest_faults(&mut trials, full.clone(), time_limit)?;
    if merge_neighbours(&mut trials, &mut steps, time_limit)? {
        steps = fewest_faults(&mut trials, steps, time_limit)?;
    }
    shorten_holds(&mut trials, &mut steps, time_limit)?;
    while time_limit > Duration::from_secs(1) {
        let shorter = time_limit / 2;
        let kept_steps: Vec<PlannedStep> = (steps.iter())
            .filter(|s| Duration::from_millis(s.at_ms) < shorter)
            .cloned()
            .collect();
        if kept_steps.len() < steps.len() || !trials.fails(&kept_steps, shorter)? {
            break;
        }
        time_limit = shorter;
    }
    let shrunk_path: PathBuf = kept.join("schedule-shrunk.json");
    write(&shrunk_path, &steps)?;
    print_shrunk(&trials, full.len(), &steps, time_limit, &shrunk_path);
    Ok(())
}

/// Prints what shrinking left and the command that replays it.
fn print_shrunk(
    trials: &Trials<'_>,
    faults: usize,
    steps: &[PlannedStep],
    time_limit: Duration,
    path: &Path,
) {
    let stopped = if crate::hunt::interrupted() {
        ", interrupted"
    } else if trials.started.elapsed() >= trials.budget {
        ", the --shrink-time budget spent"
    } else {
        ""
    };
    println!(
        "shrunk:   {faults} faults → {} in a {} run ({} runs, {:.1} s{}); the same checker ({}) fails",
        steps.len(),
        humantime::format_duration(time_limit),
        trials.runs,
        trials.started.elapsed().as_secs_f64(),
        stopped,
        trials.checker
    );
    for step in steps {
        let mut what = step.fault.describe();
        if let Some(map) = what.as_object_mut() {
            map.remove("action");
        }
        println!(
            "          at {:.3} s for {:.3} s: {} {what}",
            step.at_ms as f64 / 1000.0,
            step.hold_ms as f64 / 1000.0,
            step.fault.kind()
        );
    }
    println!("replay:   {}", trials.replaying(path, time_limit).shell());
}

/// Delta debugging over the faults: removes chunks (halves, then smaller) while the failure
/// stays, and tries each chunk alone.
fn fewest_faults(
    trials: &mut Trials<'_>,
    mut steps: Vec<PlannedStep>,
    time_limit: Duration,
) -> Result<Vec<PlannedStep>, String> {
    if trials.fails(&[], time_limit)? {
        return Ok(Vec::new());
    }
    let mut parts = 2;
    while steps.len() >= 2 {
        let chunk = steps.len().div_ceil(parts);
        let chunks: Vec<Vec<PlannedStep>> = steps.chunks(chunk).map(<[_]>::to_vec).collect();
        let mut reduced = false;
        for (i, alone) in chunks.iter().enumerate() {
            if trials.fails(alone, time_limit)? {
                steps = alone.clone();
                parts = 2;
                reduced = true;
                break;
            }
            let rest: Vec<PlannedStep> = (chunks.iter().enumerate())
                .filter(|&(j, _)| j != i)
                .flat_map(|(_, c)| c.iter().cloned())
                .collect();
            if trials.fails(&rest, time_limit)? {
                steps = rest;
                parts = (parts - 1).max(2);
                reduced = true;
                break;
            }
        }
        if !reduced {
            if parts >= steps.len() {
                break;
            }
            parts = (parts * 2).min(steps.len());
        }
    }
    Ok(steps)
}

/// Joins neighbouring faults of one kind into one fault held from the first's start to the
/// second's end (the first's choices kept) while the failure stays; whether any were joined.
fn merge_neighbours(
    trials: &mut Trials<'_>,
    steps: &mut Vec<PlannedStep>,
    time_limit: Duration,
) -> Result<bool, String> {
    let mut merged = false;
    let mut i = 0;
    while i + 1 < steps.len() {
        let (a, b) = (&steps[i], &steps[i + 1]);
        if a.fault.kind() != b.fault.kind() {
            i += 1;
            continue;
        }
        let mut joined = steps.clone();
        joined[i].hold_ms = (b.at_ms + b.hold_ms).saturating_sub(a.at_ms);
        joined.remove(i + 1);
        if trials.fails(&joined, time_limit)? {
            *steps = joined;
            merged = true;
        } else {
            i += 1;
        }
    }
    Ok(merged)
}

/// Halves each fault's hold while the failure stays (down to 10 ms).
fn shorten_holds(
    trials: &mut Trials<'_>,
    steps: &mut [PlannedStep],
    time_limit: Duration,
) -> Result<(), String> {
    for i in 0..steps.len() {
        while steps[i].hold_ms > 10 {
            let mut shorter = steps.to_vec();
            shorter[i].hold_ms /= 2;
            if !trials.fails(&shorter, time_limit)? {
                break;
            }
            steps[i].hold_ms = shorter[i].hold_ms;
        }
    }
    Ok(())
}
