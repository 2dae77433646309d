//! `faultline run`: resolve the target, start it if it is bundled, drive the workload while
//! the nemesis breaks things, heal, stop every node, check, write the run directory and report.
//!
//! [`execute`] is one run from a resolved [`Plan`] to a [`Finished`] run directory; `faultline
//! run` prints its tables, `faultline compare` collects many of them into one.

use std::io::IsTerminal;
use std::process::ExitCode;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use faultline_checker::stats::Stats;
use faultline_checker::{Validity, format, stats};
use faultline_nemesis::{BundledBackend, Kind, Schedule, Shape};
use faultline_results::{Judged, RunDir, period_table, stats_table, verdict_table};
use faultline_targets::client::HttpClient;
use faultline_targets::cluster::{Cluster, ClusterSpec, check_spec};
use faultline_targets::systems::kv::node_name;
use faultline_workloads::{EventLine, Recorder, RunConfig, RunSummary, Who, Workload};
use serde_json::{Value, json};
use tokio::sync::watch;

use crate::args::{OutputFormat, RunArgs, RunOptions};

/// Exit code for a harness or target that could not run.
pub(crate) const CANNOT_RUN: u8 = 4;

/// Where the operations go.
#[derive(Clone)]
pub(crate) enum Target {
    Bundled(ClusterSpec),
    Http(Vec<String>),
}

/// A run with every choice resolved and checked, nothing started yet.
#[derive(Clone)]
pub(crate) struct Plan {
    /// The target as written (with its settings).
    pub(crate) label: String,
    pub(crate) target: Target,
    pub(crate) kinds: Vec<Kind>,
}

/// A run that ended: its directory and what the checkers said.
pub(crate) struct Finished {
    pub(crate) dir: RunDir,
    pub(crate) judged: Judged,
    pub(crate) stats: Stats,
    pub(crate) verdict_json: Value,
    pub(crate) summary: RunSummary,
    /// A fault the nemesis could not apply or heal: the run is not the one planned.
    pub(crate) nemesis_error: Option<String>,
}

/// Checks the options every run shares.
pub(crate) fn check_options(opts: &RunOptions) -> Result<(), String> {
    if opts.clients == 0 {
        return Err("--clients must be at least 1".into());
    }
    if !(opts.rate >= 0.0 && opts.rate.is_finite()) {
        return Err(format!(
            "--rate {} must be 0 (as fast as possible) or more",
            opts.rate
        ));
    }
    if opts.keys == 0 {
        return Err("--keys must be at least 1".into());
    }
    Ok(())
}

/// Resolves and checks a target with its settings, and the faults to inject into it.
pub(crate) fn plan(target: &str, settings: &[String], opts: &RunOptions) -> Result<Plan, String> {
    let resolved = resolve(target, settings, opts)?;
    let kinds = nemesis_kinds(opts, &resolved)?;
    let label = if settings.is_empty() {
        target.to_string()
    } else {
        format!("{target}?{}", settings.join(","))
    };
    Ok(Plan {
        label,
        target: resolved,
        kinds,
    })
}

fn resolve(target: &str, settings: &[String], opts: &RunOptions) -> Result<Target, String> {
    if let Some(system) = target.strip_prefix("bundled:") {
        let spec = ClusterSpec {
            system: system.to_string(),
            nodes: opts.nodes,
            settings: settings.to_vec(),
            data_dir: None,
            exe: std::env::current_exe()
                .map_err(|e| format!("cannot find my own executable to start nodes: {e}"))?,
            seed: opts.seed.unwrap_or(0),
        };
        check_spec(&spec).map_err(|e| format!("{target}: {e}"))?;
        return Ok(Target::Bundled(spec));
    }
    if let Some(rest) = target
        .strip_prefix("http://")
        .or(target.strip_prefix("https://"))
    {
        if !settings.is_empty() {
            return Err(format!(
                "{target}: settings configure bundled targets only; this target is a URL"
            ));
        }
        let scheme = if target.starts_with("https://") {
            "https"
        } else {
            "http"
        };
        let urls: Vec<String> = rest
            .split(',')
            .filter(|s| !s.is_empty())
            .map(|hp| {
                let hp = hp
                    .trim_start_matches("http://")
                    .trim_start_matches("https://");
                format!("{scheme}://{}", hp.trim_end_matches('/'))
            })
            .collect();
        if urls.is_empty() {
            return Err(format!("--target {target}: no host:port"));
        }
        return Ok(Target::Http(urls));
    }
    Err(format!(
        "--target {target}: expected bundled:quorum or http://host:port[,host:port...]"
    ))
}

/// The faults to inject, resolved for the target: partition and clock skew for bundled
/// targets unless told otherwise, nothing for URLs (no backend can reach them yet).
fn nemesis_kinds(opts: &RunOptions, target: &Target) -> Result<Vec<Kind>, String> {
    match (&opts.nemesis, target) {
        (None, Target::Bundled(_)) => Ok(vec![Kind::Partition, Kind::Clock]),
        (None, Target::Http(_)) => Ok(Vec::new()),
        (Some(list), target) => {
            let kinds = Kind::parse_list(list).map_err(|e| format!("--nemesis: {e}"))?;
            if !kinds.is_empty() && matches!(target, Target::Http(_)) {
                return Err(
                    "no nemesis backend for this target; use --nemesis none or a bundled target"
                        .into(),
                );
            }
            Ok(kinds)
        }
    }
}

/// The run's seed: the one given, or one from the clock (printed, so it can be replayed).
pub(crate) fn seed(opts: &RunOptions) -> u64 {
    opts.seed.unwrap_or_else(|| {
        SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .map_or(1, |d| d.as_nanos() as u64)
    })
}

/// Watches Ctrl-C: the first stops the run gracefully (the receiver turns true), the second
/// exits at once (nodes die with faultline: they are told to on their parent's death).
pub(crate) fn interrupts() -> watch::Receiver<bool> {
    let (stop_tx, stop_rx) = watch::channel(false);
    tokio::spawn(async move {
        if tokio::signal::ctrl_c().await.is_err() {
            return;
        }
        eprintln!("\nfaultline: stopping (Ctrl-C again to quit at once)");
        let _ = stop_tx.send(true);
        if tokio::signal::ctrl_c().await.is_ok() {
            std::process::exit(130);
        }
    });
    stop_rx
}

/// Builds the runtime every async command uses.
pub(crate) fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("a tokio runtime starts")
}

/// Runs `faultline run`.
pub(crate) fn run(args: &RunArgs) -> ExitCode {
    let opts = &args.options;
    let planned = check_options(opts).and_then(|()| plan(&args.target, &args.settings, opts));
    let planned = match planned {
        Ok(p) => p,
        Err(e) => {
            eprintln!("faultline: {e}");
            return ExitCode::from(2);
        }
    };
    runtime().block_on(async {
        let seed = seed(opts);
        eprintln!("faultline: seed {seed} (replay the choices with --seed {seed})");
        let dir = match RunDir::create(&opts.out, &args.target, opts.workload.name()) {
            Ok(dir) => dir,
            Err(e) => {
                eprintln!(
                    "faultline: cannot create a run directory under {}: {e}",
                    opts.out.display()
                );
                return ExitCode::from(CANNOT_RUN);
            }
        };
        let finished = match execute(opts, planned, seed, dir, interrupts(), true).await {
            Ok(f) => f,
            Err(e) => {
                eprintln!("faultline: {e}");
                return ExitCode::from(CANNOT_RUN);
            }
        };
        if let Err(e) = finished.dir.point_latest(&opts.out) {
            eprintln!(
                "faultline: cannot point {}/latest at the run: {e}",
                opts.out.display()
            );
        }
        print_run(args.format, &finished);
        exit_code(&finished)
    })
}

/// The exit code of one run: 130 interrupted, 4 the nemesis failed, else by the verdict.
fn exit_code(finished: &Finished) -> ExitCode {
    if finished.summary.interrupted {
        eprintln!("faultline: interrupted; the verdict covers the history recorded so far");
        return ExitCode::from(130);
    }
    if let Some(e) = &finished.nemesis_error {
        // The verdict covers what happened, but the faults were not the ones planned.
        eprintln!("faultline: the nemesis could not apply or heal a fault: {e}");
        return ExitCode::from(CANNOT_RUN);
    }
    ExitCode::from(match finished.judged.validity() {
        Validity::Pass => 0,
        Validity::Fail => 1,
        Validity::Unknown => 3,
    })
}

fn print_run(format: OutputFormat, finished: &Finished) {
    match format {
        OutputFormat::Json => println!(
            "{}",
            serde_json::to_string_pretty(&finished.verdict_json).expect("JSON values serialize")
        ),
        OutputFormat::Table => {
            println!("{}", stats_table(&finished.stats));
            if finished.stats.by_period.len() > 1 {
                println!("{}", period_table(&finished.stats));
            }
            let verdicts: Vec<_> = finished
                .judged
                .verdicts
                .iter()
                .map(|(v, _)| v.clone())
                .collect();
            println!("{}", verdict_table(&verdicts));
            for (verdict, explanation) in &finished.judged.verdicts {
                if verdict.valid != Validity::Pass && !explanation.is_empty() {
                    println!("\n{} {}", verdict.valid.as_str(), verdict.checker);
                    print!("{explanation}");
                }
            }
            println!("\nresults: {}", finished.dir.path.display());
        }
    }
}

/// One whole run into `dir`: start the target, record the workload under the nemesis, heal,
/// run the final reads, stop every node, check, and write `verdict.json` and `junit.xml`.
pub(crate) async fn execute(
    opts: &RunOptions,
    plan: Plan,
    seed: u64,
    dir: RunDir,
    stop: watch::Receiver<bool>,
    show: bool,
) -> Result<Finished, String> {
    let cluster: Arc<Mutex<Option<Cluster>>> = Arc::default();
    // Systems that name their leader can also have it cut off.
    let shapes = match (&plan.target, opts.partition_shapes.is_empty()) {
        (Target::Bundled(spec), true) if spec.system == "raft" => Shape::ALL.to_vec(),
        _ => opts.partition_shapes.clone(),
    };
    let (urls, settings) = match plan.target {
        Target::Bundled(mut spec) => {
            spec.seed = seed;
            if show {
                eprintln!(
                    "faultline: starting a {}-node {} cluster",
                    spec.nodes, spec.system
                );
            }
            let started = Cluster::start(spec)
                .await
                .map_err(|e| format!("the bundled cluster did not start: {e}"))?;
            let urls = started.urls();
            let settings = json!(started.settings());
            *cluster.lock().expect("not poisoned") = Some(started);
            (urls, settings)
        }
        Target::Http(urls) => (urls, Value::Null),
    };
    // Dropping the cluster stops every node; this runs on every path out of here.
    let _stop_nodes = StopOnDrop(cluster.clone());
    let client = Arc::new(
        HttpClient::new(urls.clone(), opts.auth_token.clone()).map_err(|e| e.to_string())?,
    );
    client
        .check_reachable(Duration::from_secs(2))
        .await
        .map_err(|e| e.to_string())?;
    let nodes: Vec<String> = (0..urls.len() as u32).map(node_name).collect();
    let config = RunConfig {
        workload: opts.workload,
        keys: opts.keys,
        clients: opts.clients,
        rate: opts.rate,
        time_limit: Some(opts.time_limit),
        ops: opts.ops,
        op_timeout: opts.op_timeout,
        seed,
        nodes: nodes.clone(),
        sticky: opts.workload != Workload::Causal || opts.sticky,
    };
    let run_json = json!({
        "faultline": env!("CARGO_PKG_VERSION"),
        "command": std::env::args().collect::<Vec<_>>(),
        "started": humantime::format_rfc3339_seconds(SystemTime::now()).to_string(),
        "target": plan.label,
        "urls": urls,
        "nodes": nodes,
        "settings": settings,
        "workload": opts.workload.name(),
        "checkers": opts.workload.checkers(),
        "seed": seed,
        "rng": "ChaCha8",
        "clients": opts.clients,
        "rate": opts.rate,
        "time_limit_s": opts.time_limit.as_secs_f64(),
        "ops": opts.ops,
        "op_timeout_ms": opts.op_timeout.as_millis() as u64,
        "keys": opts.keys,
        "sticky": config.sticky,
        "nemesis": plan.kinds.iter().map(|k| k.name()).collect::<Vec<_>>(),
        "nemesis_interval_ms": opts.nemesis_interval.as_millis() as u64,
        "partition_shapes": opts.partition_shapes.iter().map(|s| s.name()).collect::<Vec<_>>(),
    });
    let io = |e: std::io::Error| format!("{}: {e}", dir.path.display());
    dir.write_json("run.json", &run_json).map_err(io)?;
    let recorder = Arc::new(Recorder::create(&dir.history()).map_err(io)?);
    if show {
        eprintln!("faultline: recording {}", dir.history().display());
    }

    let progress = show.then(|| tokio::spawn(show_progress(recorder.clone(), opts.time_limit)));
    let (nemesis_stop, nemesis_stopped) = watch::channel(false);
    let nemesis = if plan.kinds.is_empty() {
        None
    } else {
        let mut backend = BundledBackend::new(cluster.clone())?;
        let mut schedule = Schedule::new(
            plan.kinds.clone(),
            shapes,
            opts.nemesis_interval,
            urls.len(),
            seed,
        );
        let recorder = recorder.clone();
        Some(tokio::spawn(async move {
            let report = |f: &str, value: Value| nemesis_event(&recorder, f, &value, show);
            let outcome =
                faultline_nemesis::run(&mut schedule, &mut backend, report, nemesis_stopped).await;
            (backend, outcome)
        }))
    };
    let outcome = faultline_workloads::run(
        config.clone(),
        client.clone(),
        recorder.clone(),
        stop.clone(),
    )
    .await;
    let _ = nemesis_stop.send(true);
    let mut nemesis_error = None;
    if let Some(task) = nemesis {
        match task.await {
            Ok((mut backend, outcome)) => {
                if let Err(e) = outcome {
                    nemesis_error = Some(e);
                }
                // Everything healed before the final reads.
                if let Err(e) = backend.heal_all().await {
                    nemesis_error.get_or_insert(e);
                }
                let healed = json!({"action": "heal", "healed": "everything"});
                nemesis_event(&recorder, "all", &healed, show);
            }
            Err(e) => nemesis_error = Some(format!("the nemesis task failed: {e}")),
        }
    }
    let outcome = match outcome {
        Ok(summary) if opts.workload == Workload::Set && !summary.interrupted => {
            faultline_workloads::final_reads(&config, client, recorder.clone(), &summary, stop)
                .await
                .map(|()| summary)
        }
        other => other,
    };
    if let Some(progress) = progress {
        progress.abort();
        let _ = progress.await;
    }
    cluster.lock().expect("not poisoned").take();
    let summary = outcome.map_err(|e| format!("the run failed: {e}"))?;
    let (judged, stats, verdict_json) = judge_run(opts, &dir, &summary, seed)?;
    Ok(Finished {
        dir,
        judged,
        stats,
        verdict_json,
        summary,
        nemesis_error,
    })
}

/// Stops the cluster when dropped.
struct StopOnDrop(Arc<Mutex<Option<Cluster>>>);

impl Drop for StopOnDrop {
    fn drop(&mut self) {
        if let Ok(mut cluster) = self.0.lock() {
            cluster.take();
        }
    }
}

/// Records a nemesis event in the history and, if `show`, says it on the terminal.
fn nemesis_event(recorder: &Recorder, f: &str, value: &Value, show: bool) {
    let line = EventLine {
        process: Who::Nemesis("nemesis"),
        kind: "info",
        f,
        key: None,
        value,
        node: None,
        error: None,
        meta: None,
    };
    if let Err(e) = recorder.record(&line) {
        eprintln!("faultline: cannot record a nemesis event: {e}");
    }
    if show {
        eprintln!(
            "[{:>6.1}s] nemesis {f}: {value}",
            recorder.elapsed().as_secs_f64()
        );
    }
}

/// Prints a progress line: a live bar on a terminal, a line every 5 s otherwise.
async fn show_progress(recorder: Arc<Recorder>, limit: Duration) {
    let counts = &recorder.counts;
    let line = |r: &Recorder| {
        let secs = r.elapsed().as_secs_f64();
        let invoked = counts.invoked.load(Ordering::Relaxed);
        format!(
            "{invoked} ops | ok {} fail {} info {} | {:.0} ops/s",
            counts.ok.load(Ordering::Relaxed),
            counts.fail.load(Ordering::Relaxed),
            counts.info.load(Ordering::Relaxed),
            invoked as f64 / secs.max(0.001)
        )
    };
    if std::io::stderr().is_terminal() {
        let bar = indicatif::ProgressBar::new(limit.as_millis() as u64);
        bar.set_style(
            indicatif::ProgressStyle::with_template("{spinner} [{elapsed_precise}] {bar:30} {msg}")
                .expect("a valid template"),
        );
        let _clear = ClearOnDrop(bar.clone());
        loop {
            bar.set_position(recorder.elapsed().as_millis() as u64);
            bar.set_message(line(&recorder));
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    } else {
        loop {
            tokio::time::sleep(Duration::from_secs(5)).await;
            eprintln!(
                "[{:>6.1}s] {}",
                recorder.elapsed().as_secs_f64(),
                line(&recorder)
            );
        }
    }
}

/// Clears the progress bar when the progress task is aborted.
struct ClearOnDrop(indicatif::ProgressBar);

impl Drop for ClearOnDrop {
    fn drop(&mut self) {
        self.0.finish_and_clear();
    }
}

/// Checks the recorded history and writes `verdict.json` and `junit.xml`.
fn judge_run(
    opts: &RunOptions,
    dir: &RunDir,
    summary: &RunSummary,
    seed: u64,
) -> Result<(Judged, Stats, Value), String> {
    let read = format::read_path(&dir.history(), None).map_err(|e| e.to_string())?;
    for warning in &read.history.warnings {
        eprintln!("faultline: warning: {}: {warning}", dir.history().display());
    }
    let judged = crate::judge::judge(&read.history, opts.workload)?;
    let stats = stats::stats(&read.history);
    let verdicts: Vec<_> = judged.verdicts.iter().map(|(v, _)| v.clone()).collect();
    let verdict_json = json!({
        "verdict": judged.validity().as_str(),
        "workload": opts.workload.name(),
        "seed": seed,
        "interrupted": summary.interrupted,
        "checkers": verdicts,
        "stats": stats,
    });
    let io = |e: std::io::Error| format!("{}: {e}", dir.path.display());
    dir.write_json("verdict.json", &verdict_json).map_err(io)?;
    dir.write_junit(
        &format!("faultline run {}", opts.workload),
        &judged.verdicts,
    )
    .map_err(io)?;
    Ok((judged, stats, verdict_json))
}
