//! `--runtime sim`: a bundled system in the simulator. The run is the same as on processes —
//! the runner, the nemesis and the checkers are the same code — but on a current-thread tokio
//! runtime whose clock is paused, so time is virtual: it jumps to the next thing that happens,
//! and a seed gives the same history, byte for byte.

use faultline_results::RunDir;
use faultline_targets::cluster::ClusterSpec;
use faultline_targets::sim::SimCluster;
use faultline_targets::systems::SystemSettings;
use faultline_targets::systems::kv::node_name;
use serde_json::json;
use tokio::sync::watch;

use crate::plan::RunPlan;
use crate::run::{Answering, Finished, execute};

/// The runtime a run takes: a simulated one's ([`runtime`]), or the usual one.
pub(crate) fn runtime_for(simulated: bool) -> tokio::runtime::Runtime {
    if simulated {
        runtime()
    } else {
        crate::run::runtime()
    }
}

/// The runtime a simulated run takes: one thread, the clock paused (it advances only when
/// every task waits on a timer).
pub(crate) fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .start_paused(true)
        .build()
        .expect("a tokio runtime starts")
}

/// Starts the simulated cluster a bundled target names; what answers where (`sim:n1`, ...)
/// and its settings.
pub(crate) fn start(
    spec: ClusterSpec,
    plan: &RunPlan,
    show: bool,
) -> Result<(SimCluster, Answering), String> {
    let settings = SystemSettings::parse(
        &spec.system,
        spec.nodes,
        spec.settings.iter().map(String::as_str),
    )?;
    if show {
        eprintln!(
            "faultline: simulating a {}-node {} cluster (virtual time)",
            spec.nodes, spec.system
        );
    }
    let trace = plan.opts.check_determinism;
    let sim = SimCluster::start(&settings, spec.nodes, plan.seed, trace);
    let urls = (0..spec.nodes)
        .map(|i| format!("sim:{}", node_name(i)))
        .collect();
    Ok((sim, (urls, json!(settings))))
}

/// Prints how far virtual time ran ahead of the wall clock while `operations` were recorded
/// in `wall`.
pub(crate) fn print_speed(sim: &SimCluster, operations: u64, wall: std::time::Duration) {
    let virtual_s = sim.now_ms() as f64 / 1000.0;
    let wall_s = wall.as_secs_f64().max(1e-9);
    eprintln!(
        "faultline: simulated {virtual_s:.1} s in {wall_s:.2} s of wall time ({:.0}× real time): \
         {operations} client operations, {:.0} per second of wall time",
        virtual_s / wall_s,
        operations as f64 / wall_s
    );
}

/// Writes the notes the simulated nodes wrote about themselves into the run directory, one
/// file per node as the process runtime's nodes leave them.
pub(crate) fn keep_notes(sim: &SimCluster, dir: &RunDir) -> Result<(), String> {
    let notes_dir = dir.path.join(crate::judge::RAFT_NOTES);
    std::fs::create_dir_all(&notes_dir)
        .map_err(|e| format!("{}: cannot create: {e}", notes_dir.display()))?;
    let mut files = vec![String::new(); sim.nodes()];
    for (node, note) in sim.notes() {
        files[node as usize].push_str(&note.to_string());
        files[node as usize].push('\n');
    }
    for (node, text) in files.iter().enumerate() {
        let path = notes_dir.join(format!("{}.jsonl", node_name(node as u32)));
        std::fs::write(&path, text)
            .map_err(|e| format!("{}: cannot write: {e}", path.display()))?;
    }
    Ok(())
}

/// Runs `plan` again, simulated, into a scratch directory that lives as long as the returned
/// guard.
pub(crate) fn run_again(plan: &RunPlan) -> Result<(tempfile::TempDir, Finished), String> {
    let scratch =
        tempfile::tempdir().map_err(|e| format!("cannot make a scratch directory: {e}"))?;
    let dir = RunDir::create_named(scratch.path(), "again")
        .map_err(|e| format!("cannot make a scratch run directory: {e}"))?;
    let (_keep, stop) = watch::channel(false);
    let again = runtime().block_on(execute(plan, dir, stop, false))?;
    Ok((scratch, again))
}

/// The determinism guard: runs `plan` again on a fresh simulator and compares every event and
/// the history's bytes with the run `first` made; the first difference, if any.
pub(crate) fn check_determinism(plan: &RunPlan, first: &Finished) -> Result<(), String> {
    eprintln!("faultline: running seed {} again to compare", plan.seed);
    let (_scratch, again) = run_again(plan)?;
    let (Some(a), Some(b)) = (&first.trace, &again.trace) else {
        return Err("a run kept no trace of its events".into());
    };
    if let Some(difference) = a.first_difference(b) {
        return Err(difference);
    }
    let read = |d: &RunDir| {
        std::fs::read(d.history()).map_err(|e| format!("{}: {e}", d.history().display()))
    };
    let (ha, hb) = (read(&first.dir)?, read(&again.dir)?);
    if ha != hb {
        let line = ha
            .split(|&b| b == b'\n')
            .zip(hb.split(|&b| b == b'\n'))
            .position(|(x, y)| x != y)
            .map_or(0, |i| i + 1);
        return Err(format!(
            "the events agree, but the histories differ first at line {line}"
        ));
    }
    eprintln!(
        "faultline: deterministic: a second run of seed {} gave the same {} events and the same \
         {} history bytes",
        plan.seed,
        a.len(),
        ha.len()
    );
    Ok(())
}
