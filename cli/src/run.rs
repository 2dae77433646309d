//! `faultline run`: resolve the target, start it if it is bundled, drive the workload, record
//! the history, stop every node, check, write the run directory and report.

use std::io::IsTerminal;
use std::process::ExitCode;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use faultline_checker::{Validity, format, stats};
use faultline_nemesis::{BundledBackend, Kind, Schedule};
use faultline_results::{RunDir, period_table, stats_table, verdict_table};
use faultline_targets::client::HttpClient;
use faultline_targets::cluster::{Cluster, ClusterSpec, check_spec};
use faultline_workloads::{EventLine, Recorder, RunConfig, RunSummary, Who, Workload};
use serde_json::json;
use tokio::sync::watch;

use crate::args::{OutputFormat, RunArgs};

/// Where the operations go.
enum Target {
    Bundled(ClusterSpec),
    Http(Vec<String>),
}

/// The faults to inject, resolved for the target: partition and clock skew for bundled
/// targets unless told otherwise, nothing for URLs (no backend can reach them yet).
fn nemesis_kinds(args: &RunArgs, target: &Target) -> Result<Vec<Kind>, String> {
    match (&args.nemesis, target) {
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

/// Exit code for a harness or target that could not run.
const CANNOT_RUN: u8 = 4;

/// Checks the flags and resolves the target; nothing is started yet.
fn resolve(args: &RunArgs) -> Result<Target, String> {
    if args.clients == 0 {
        return Err("--clients must be at least 1".into());
    }
    if !(args.rate >= 0.0 && args.rate.is_finite()) {
        return Err(format!(
            "--rate {} must be 0 (as fast as possible) or more",
            args.rate
        ));
    }
    if args.keys == 0 {
        return Err("--keys must be at least 1".into());
    }
    if let Some(system) = args.target.strip_prefix("bundled:") {
        let spec = ClusterSpec {
            system: system.to_string(),
            nodes: args.nodes,
            settings: args.settings.clone(),
            data_dir: None,
            exe: std::env::current_exe()
                .map_err(|e| format!("cannot find my own executable to start nodes: {e}"))?,
            seed: args.seed.unwrap_or(0),
        };
        check_spec(&spec).map_err(|e| e.to_string())?;
        return Ok(Target::Bundled(spec));
    }
    if let Some(rest) = args
        .target
        .strip_prefix("http://")
        .or(args.target.strip_prefix("https://"))
    {
        if !args.settings.is_empty() {
            return Err("--set configures bundled targets only; this target is a URL".into());
        }
        let scheme = if args.target.starts_with("https://") {
            "https"
        } else {
            "http"
        };
        let urls = rest
            .split(',')
            .filter(|s| !s.is_empty())
            .map(|hp| {
                let hp = hp
                    .trim_start_matches("http://")
                    .trim_start_matches("https://");
                format!("{scheme}://{}", hp.trim_end_matches('/'))
            })
            .collect::<Vec<_>>();
        if urls.is_empty() {
            return Err(format!("--target {}: no host:port", args.target));
        }
        return Ok(Target::Http(urls));
    }
    Err(format!(
        "--target {}: expected bundled:quorum or http://host:port[,host:port...]",
        args.target
    ))
}

/// Runs `faultline run`.
pub(crate) fn run(args: &RunArgs) -> ExitCode {
    let (target, kinds) = match resolve(args).and_then(|t| {
        let kinds = nemesis_kinds(args, &t)?;
        Ok((t, kinds))
    }) {
        Ok(resolved) => resolved,
        Err(e) => {
            eprintln!("faultline: {e}");
            return ExitCode::from(2);
        }
    };
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("a tokio runtime starts")
        .block_on(async {
            match run_target(args, target, kinds).await {
                Ok(code) => code,
                Err(e) => {
                    eprintln!("faultline: {e}");
                    ExitCode::from(CANNOT_RUN)
                }
            }
        })
}

async fn run_target(args: &RunArgs, target: Target, kinds: Vec<Kind>) -> Result<ExitCode, String> {
    let seed = args.seed.unwrap_or_else(|| {
        SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .map_or(1, |d| d.as_nanos() as u64)
    });
    eprintln!("faultline: seed {seed} (replay the choices with --seed {seed})");
    let cluster: Arc<Mutex<Option<Cluster>>> = Arc::default();
    let (urls, settings) = match target {
        Target::Bundled(mut spec) => {
            spec.seed = seed;
            eprintln!(
                "faultline: starting a {}-node {} cluster",
                spec.nodes, spec.system
            );
            let started = Cluster::start(spec)
                .await
                .map_err(|e| format!("the bundled cluster did not start: {e}"))?;
            let urls = started.urls();
            let settings = json!(started.settings());
            *cluster.lock().expect("not poisoned") = Some(started);
            (urls, settings)
        }
        Target::Http(urls) => (urls, serde_json::Value::Null),
    };
    let stop_cluster = || {
        // Dropping the cluster stops every node.
        cluster.lock().expect("not poisoned").take();
    };
    let client = match HttpClient::new(urls.clone(), args.auth_token.clone()) {
        Ok(c) => Arc::new(c),
        Err(e) => {
            stop_cluster();
            return Err(e.to_string());
        }
    };
    if let Err(e) = client.check_reachable(Duration::from_secs(2)).await {
        stop_cluster();
        return Err(e.to_string());
    }
    let nodes: Vec<String> = (0..urls.len() as u32)
        .map(faultline_targets::systems::kv::node_name)
        .collect();
    let dir = RunDir::create(&args.out, &args.target, args.workload.name()).map_err(|e| {
        format!(
            "cannot create a run directory under {}: {e}",
            args.out.display()
        )
    })?;
    let config = RunConfig {
        workload: args.workload,
        keys: args.keys,
        clients: args.clients,
        rate: args.rate,
        time_limit: Some(args.time_limit),
        ops: args.ops,
        op_timeout: args.op_timeout,
        seed,
        nodes: nodes.clone(),
    };
    let run_json = json!({
        "faultline": env!("CARGO_PKG_VERSION"),
        "command": std::env::args().collect::<Vec<_>>(),
        "started": humantime::format_rfc3339_seconds(SystemTime::now()).to_string(),
        "target": args.target,
        "urls": urls,
        "nodes": nodes,
        "settings": settings,
        "workload": args.workload.name(),
        "checkers": args.workload.checkers(),
        "seed": seed,
        "rng": "ChaCha8",
        "clients": args.clients,
        "rate": args.rate,
        "time_limit_s": args.time_limit.as_secs_f64(),
        "ops": args.ops,
        "op_timeout_ms": args.op_timeout.as_millis() as u64,
        "keys": args.keys,
        "nemesis": kinds.iter().map(|k| k.name()).collect::<Vec<_>>(),
        "nemesis_interval_ms": args.nemesis_interval.as_millis() as u64,
        "partition_shapes": args.partition_shapes.iter().map(|s| s.name()).collect::<Vec<_>>(),
    });
    dir.write_json("run.json", &run_json)
        .map_err(|e| format!("{}: {e}", dir.path.display()))?;
    let recorder = Arc::new(
        Recorder::create(&dir.history())
            .map_err(|e| format!("{}: {e}", dir.history().display()))?,
    );
    eprintln!("faultline: recording {}", dir.history().display());

    let (stop_tx, stop_rx) = watch::channel(false);
    let interrupts = tokio::spawn({
        let cluster = cluster.clone();
        async move {
            if tokio::signal::ctrl_c().await.is_err() {
                return;
            }
            eprintln!("\nfaultline: stopping (Ctrl-C again to quit at once)");
            let _ = stop_tx.send(true);
            if tokio::signal::ctrl_c().await.is_ok() {
                cluster.lock().map(|mut c| c.take()).ok();
                std::process::exit(130);
            }
        }
    });
    let progress = tokio::spawn(show_progress(recorder.clone(), args.time_limit));
    let (nemesis_stop, nemesis_stopped) = watch::channel(false);
    let nemesis = if kinds.is_empty() {
        None
    } else {
        let mut backend = BundledBackend::new(cluster.clone())?;
        let mut schedule = Schedule::new(
            kinds,
            args.partition_shapes.clone(),
            args.nemesis_interval,
            urls.len(),
            seed,
        );
        let recorder = recorder.clone();
        Some(tokio::spawn(async move {
            let report = |f: &str, value: serde_json::Value| nemesis_event(&recorder, f, &value);
            let outcome =
                faultline_nemesis::run(&mut schedule, &mut backend, report, nemesis_stopped).await;
            (backend, outcome)
        }))
    };
    let outcome = faultline_workloads::run(
        config.clone(),
        client.clone(),
        recorder.clone(),
        stop_rx.clone(),
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
                nemesis_event(
                    &recorder,
                    "all",
                    &json!({"action": "heal", "healed": "everything"}),
                );
            }
            Err(e) => nemesis_error = Some(format!("the nemesis task failed: {e}")),
        }
    }
    let outcome = match outcome {
        Ok(summary) if args.workload == Workload::Set && !summary.interrupted => {
            faultline_workloads::final_reads(&config, client, recorder.clone(), &summary, stop_rx)
                .await
                .map(|()| summary)
        }
        other => other,
    };
    progress.abort();
    let _ = progress.await;
    stop_cluster();
    interrupts.abort();
    let summary: RunSummary = outcome.map_err(|e| format!("the run failed: {e}"))?;
    let code = report(args, &dir, &summary, seed)?;
    if let Some(e) = nemesis_error {
        // The verdict covers what happened, but the faults were not the ones planned.
        eprintln!("faultline: the nemesis could not apply or heal a fault: {e}");
        return Ok(ExitCode::from(CANNOT_RUN));
    }
    Ok(code)
}

/// Records a nemesis event in the history and says it on the terminal.
fn nemesis_event(recorder: &Recorder, f: &str, value: &serde_json::Value) {
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
    eprintln!(
        "[{:>6.1}s] nemesis {f}: {value}",
        recorder.elapsed().as_secs_f64()
    );
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
        let _guard = scopeguard(bar.clone());
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

/// Clears the bar when the progress task is aborted.
fn scopeguard(bar: indicatif::ProgressBar) -> impl Drop {
    struct Clear(indicatif::ProgressBar);
    impl Drop for Clear {
        fn drop(&mut self) {
            self.0.finish_and_clear();
        }
    }
    Clear(bar)
}

/// Checks the recorded history, writes verdict.json and junit.xml, prints, and picks the exit
/// code.
fn report(
    args: &RunArgs,
    dir: &RunDir,
    summary: &RunSummary,
    seed: u64,
) -> Result<ExitCode, String> {
    let read = format::read_path(&dir.history(), None).map_err(|e| e.to_string())?;
    for warning in &read.history.warnings {
        eprintln!("faultline: warning: {}: {warning}", dir.history().display());
    }
    let judged = crate::judge::judge(&read.history, args.workload)?;
    let stats = stats::stats(&read.history);
    let validity = judged.validity();
    let verdicts: Vec<_> = judged.verdicts.iter().map(|(v, _)| v.clone()).collect();
    let verdict_json = json!({
        "verdict": validity.as_str(),
        "workload": args.workload.name(),
        "seed": seed,
        "interrupted": summary.interrupted,
        "checkers": verdicts,
        "stats": stats,
    });
    let io = |e: std::io::Error| format!("{}: {e}", dir.path.display());
    dir.write_json("verdict.json", &verdict_json).map_err(io)?;
    dir.write_junit(
        &format!("faultline run {}", args.workload),
        &judged.verdicts,
    )
    .map_err(io)?;
    dir.point_latest(&args.out).map_err(io)?;
    match args.format {
        OutputFormat::Json => println!(
            "{}",
            serde_json::to_string_pretty(&verdict_json).expect("JSON values serialize")
        ),
        OutputFormat::Table => {
            println!("{}", stats_table(&stats));
            if !read.history.nemesis.is_empty() {
                println!("{}", period_table(&stats));
            }
            println!("{}", verdict_table(&verdicts));
            for (verdict, explanation) in &judged.verdicts {
                if verdict.valid != Validity::Pass && !explanation.is_empty() {
                    println!("\n{} {}", verdict.valid.as_str(), verdict.checker);
                    print!("{explanation}");
                }
            }
            println!("\nresults: {}", dir.path.display());
        }
    }
    if summary.interrupted {
        eprintln!("faultline: interrupted; the verdict covers the history recorded so far");
        return Ok(ExitCode::from(130));
    }
    Ok(ExitCode::from(match validity {
        Validity::Pass => 0,
        Validity::Fail => 1,
        Validity::Unknown => 3,
    }))
}
