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
use faultline_nemesis::{
    AnyBackend, Backend, BundledBackend, CommandBackend, Kind, LocalBackend, ProxyBackend,
    Schedule, Shape,
};
use faultline_results::{Judged, RunDir, period_table, stats_table, verdict_table};
use faultline_targets::client::{AnyClient, HttpClient};
use faultline_targets::cluster::{Cluster, ClusterSpec, check_spec};
use faultline_targets::etcd::{EtcdClient, EtcdCluster, EtcdSettings, EtcdSpec, Network};
use faultline_targets::systems::kv::node_name;
use faultline_workloads::checkout::{self, CheckoutConfig};
use faultline_workloads::{EventLine, Recorder, RunConfig, RunSummary, Who, Workload};
use serde_json::{Value, json};
use tokio::sync::watch;

use crate::args::{OutputFormat, RunArgs, RunOptions};

/// Exit code for a harness or target that could not run.
pub(crate) const CANNOT_RUN: u8 = 4;

/// Where the operations go.
#[derive(Clone)]
pub(crate) enum Target {
    /// A reference cluster faultline starts.
    Bundled(ClusterSpec),
    /// A faultline KV protocol server at these URLs.
    Http(Vec<String>),
    /// An etcd cluster someone else runs, at these client URLs.
    Etcd(Vec<String>, EtcdSettings),
    /// A real etcd cluster faultline starts (its network resolved).
    LocalEtcd(EtcdSpec),
}

impl Target {
    /// Whether faultline starts (and so can break) the target itself.
    fn is_local(&self) -> bool {
        matches!(self, Target::Bundled(_) | Target::LocalEtcd(_))
    }
}

/// A run with every choice resolved and checked, nothing started yet.
#[derive(Clone)]
pub(crate) struct Plan {
    /// The target as written (with its settings).
    pub(crate) label: String,
    pub(crate) target: Target,
    pub(crate) kinds: Vec<Kind>,
}

/// Copies the notes a bundled cluster's nodes wrote about themselves (who led, what was
/// applied where) into the run directory, for the checks of the system's own invariants.
fn keep_notes(cluster: &Cluster, dir: &RunDir) -> Result<(), String> {
    // Only the Raft nodes note anything.
    if cluster.system() != "raft" {
        return Ok(());
    }
    let notes_dir = dir.path.join(crate::judge::RAFT_NOTES);
    std::fs::create_dir_all(&notes_dir)
        .map_err(|e| format!("{}: cannot create: {e}", notes_dir.display()))?;
    for node in cluster.nodes() {
        let from = node.data_dir.join(faultline_targets::runtime::NOTES_FILE);
        let to = notes_dir.join(format!("{}.jsonl", node.name));
        // A node that left no notes makes the Raft checks UNKNOWN, not the run an error.
        if let Err(e) = std::fs::copy(&from, &to) {
            eprintln!(
                "faultline: cannot keep {}'s notes ({} → {}): {e}",
                node.name,
                from.display(),
                to.display()
            );
        }
    }
    Ok(())
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
    check_workload(target, &resolved, opts.workload)?;
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
            // A checkout system is a coordinator and its three services.
            nodes: if CHECKOUT_SYSTEMS.contains(&system) {
                4
            } else {
                opts.nodes
            },
            settings: settings.to_vec(),
            data_dir: None,
            exe: std::env::current_exe()
                .map_err(|e| format!("cannot find my own executable to start nodes: {e}"))?,
            seed: opts.seed.unwrap_or(0),
        };
        check_spec(&spec).map_err(|e| format!("{target}: {e}"))?;
        return Ok(Target::Bundled(spec));
    }
    if target == "local:etcd" {
        let mut settings = EtcdSettings::default()
            .apply(settings.iter().map(String::as_str), true)
            .map_err(|e| format!("{target}: {e}"))?;
        if !(1..=9).contains(&opts.nodes) {
            return Err(format!(
                "--nodes {}: a local etcd cluster has 1 to 9 members",
                opts.nodes
            ));
        }
        faultline_targets::etcd::find_etcd(opts.etcd_bin.as_deref())
            .map_err(|e| format!("{target}: {e}"))?;
        let (network, why) = faultline_targets::etcd::resolve_network(settings.network)
            .map_err(|e| format!("{target}: {e}"))?;
        if let Some(why) = why {
            eprintln!(
                "faultline: local:etcd on loopback ({why}): no partitions; kill, pause and \
                 packet faults (through proxies) still work"
            );
        }
        settings.network = Some(network);
        return Ok(Target::LocalEtcd(EtcdSpec {
            nodes: opts.nodes,
            bin: opts.etcd_bin.clone(),
            data_dir: None,
            settings,
        }));
    }
    if let Some(rest) = target.strip_prefix("etcd://") {
        let settings = EtcdSettings::default()
            .apply(settings.iter().map(String::as_str), false)
            .map_err(|e| format!("{target}: {e}"))?;
        let urls = host_ports(target, rest, "http")?;
        return Ok(Target::Etcd(urls, settings));
    }
    if let Some(rest) = target
        .strip_prefix("http://")
        .or(target.strip_prefix("https://"))
    {
        if !settings.is_empty() {
            return Err(format!(
                "{target}: settings configure bundled and etcd targets only; this target is a URL"
            ));
        }
        let scheme = if target.starts_with("https://") {
            "https"
        } else {
            "http"
        };
        return Ok(Target::Http(host_ports(target, rest, scheme)?));
    }
    Err(format!(
        "--target {target}: expected bundled:quorum, bundled:raft, local:etcd, \
         etcd://host:port[,host:port...] or http://host:port[,host:port...]"
    ))
}

/// The checkout systems take the checkout workload and nothing else, and it runs on nothing
/// else.
fn check_workload(label: &str, target: &Target, workload: Workload) -> Result<(), String> {
    let checkout_system =
        matches!(target, Target::Bundled(spec) if CHECKOUT_SYSTEMS.contains(&spec.system.as_str()));
    match (checkout_system, workload == Workload::Checkout) {
        (true, false) => Err(format!(
            "{label} is a checkout system: run it with --workload checkout"
        )),
        (false, true) => Err(format!(
            "--workload checkout needs a checkout system (bundled:saga or bundled:twopc); {label} is not one"
        )),
        _ => Ok(()),
    }
}

/// The bundled systems that take orders rather than the KV protocol.
const CHECKOUT_SYSTEMS: &[&str] = &["saga", "twopc"];

/// `scheme://host:port` for each comma-separated `host:port` of a URL target.
fn host_ports(target: &str, list: &str, scheme: &str) -> Result<Vec<String>, String> {
    let urls: Vec<String> = list
        .split(',')
        .filter(|s| !s.is_empty())
        .map(|hp| {
            let hp = hp
                .trim_start_matches("http://")
                .trim_start_matches("https://")
                .trim_start_matches("etcd://");
            format!("{scheme}://{}", hp.trim_end_matches('/'))
        })
        .collect();
    if urls.is_empty() {
        return Err(format!("--target {target}: no host:port"));
    }
    Ok(urls)
}

/// The faults to inject, resolved for the target and checked against what its backend can
/// do: partition and clock skew for bundled targets unless told otherwise, partition, kill and
/// pause for local:etcd, nothing for URLs.
fn nemesis_kinds(opts: &RunOptions, target: &Target) -> Result<Vec<Kind>, String> {
    let kinds = match (&opts.nemesis, target) {
        (Some(list), _) => Kind::parse_list(list).map_err(|e| format!("--nemesis: {e}"))?,
        (None, Target::Bundled(_)) => vec![Kind::Partition, Kind::Clock],
        (None, Target::LocalEtcd(spec)) if spec.settings.network == Some(Network::Loopback) => {
            vec![Kind::Kill, Kind::Pause]
        }
        (None, Target::LocalEtcd(_)) => vec![Kind::Partition, Kind::Kill, Kind::Pause],
        (None, Target::Http(_) | Target::Etcd(..)) => Vec::new(),
    };
    if !opts.nemesis_cmd.is_empty() && target.is_local() {
        return Err(
            "--nemesis-cmd is for clusters faultline does not run; this target is \
                    started and broken by faultline itself"
                .into(),
        );
    }
    let unsupported = match target {
        Target::Bundled(_) => Vec::new(),
        Target::LocalEtcd(spec) => {
            LocalBackend::unsupported_on(spec.settings.network.unwrap_or(Network::Loopback), &kinds)
        }
        Target::Http(urls) | Target::Etcd(urls, _) if !opts.nemesis_cmd.is_empty() => {
            let commands =
                CommandBackend::new(&opts.nemesis_cmd, urls.clone(), opts.nemesis_cmd_timeout)?;
            let mut missing = commands.unsupported(&kinds);
            // Packet faults without a command go through proxies.
            missing.retain(|(k, _)| *k != Kind::Packet || commands.handles(Kind::Packet));
            missing
        }
        Target::Http(_) | Target::Etcd(..) => ProxyBackend::unsupported_kinds(&kinds),
    };
    if let Some((kind, why)) = unsupported.first() {
        return Err(format!(
            "--nemesis {kind}: cannot be applied to this target: {why}"
        ));
    }
    if opts.partition_shapes.contains(&Shape::Leader) && !names_leader(target) {
        return Err(
            "--partition-shapes leader: only bundled:raft and local:etcd name their leader \
             to faultline"
                .into(),
        );
    }
    Ok(kinds)
}

/// Whether faultline can ask the target who leads (for the `leader` partition shape).
fn names_leader(target: &Target) -> bool {
    match target {
        Target::Bundled(spec) => spec.system == "raft",
        Target::LocalEtcd(_) => true,
        Target::Http(_) | Target::Etcd(..) => false,
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
        // `latest` names the run as soon as it starts, so a run that dies (even by SIGKILL)
        // is the one `faultline check results/latest` reads.
        if let Err(e) = dir.point_latest(&opts.out) {
            eprintln!(
                "faultline: cannot point {}/latest at the run: {e}",
                opts.out.display()
            );
        }
        let finished = match execute(opts, planned, seed, dir, interrupts(), true).await {
            Ok(f) => f,
            Err(e) => {
                eprintln!("faultline: {e}");
                return ExitCode::from(CANNOT_RUN);
            }
        };
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
    let etcd: Arc<Mutex<Option<EtcdCluster>>> = Arc::default();
    // Dropping a cluster stops every node; this runs on every path out of here.
    let _stop_nodes = StopOnDrop(cluster.clone());
    let _stop_members = StopOnDrop(etcd.clone());
    // Systems that name their leader can also have it cut off.
    let shapes = match (&plan.target, opts.partition_shapes.is_empty()) {
        (target, true) if names_leader(target) => Shape::ALL.to_vec(),
        _ => opts.partition_shapes.clone(),
    };
    let (urls, settings) = match plan.target.clone() {
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
        Target::LocalEtcd(spec) => {
            let settings = json!(spec.settings);
            let started = EtcdCluster::start(spec)
                .await
                .map_err(|e| format!("the local etcd cluster did not start: {e}"))?;
            if show {
                eprintln!(
                    "faultline: {} etcd members ready in {} ms ({}; data and logs in {})",
                    started.len(),
                    started.started_in().as_millis(),
                    started.network().name(),
                    started.data_dir().display()
                );
            }
            let urls = started.direct_urls();
            *etcd.lock().expect("not poisoned") = Some(started);
            (urls, settings)
        }
        Target::Etcd(urls, settings) => (urls, json!(settings)),
        Target::Http(urls) => (urls, Value::Null),
    };
    let (backend, client_urls) = backend(&plan, opts, &cluster, &etcd, &urls).await?;
    let client = Arc::new(match &plan.target {
        Target::Etcd(_, s) => AnyClient::Etcd(
            EtcdClient::new(client_urls, s.serializable).map_err(|e| e.to_string())?,
        ),
        Target::LocalEtcd(spec) => AnyClient::Etcd(
            EtcdClient::new(client_urls, spec.settings.serializable).map_err(|e| e.to_string())?,
        ),
        Target::Bundled(_) | Target::Http(_) => AnyClient::Http(
            HttpClient::new(client_urls, opts.auth_token.clone()).map_err(|e| e.to_string())?,
        ),
    });
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
    let mut checkers = opts.workload.checkers().to_vec();
    if matches!(&plan.target, Target::Bundled(spec) if spec.system == "raft") {
        checkers.push(faultline_checker::raft::CHECKER);
    }
    let run_json = json!({
        "faultline": env!("CARGO_PKG_VERSION"),
        "command": std::env::args().collect::<Vec<_>>(),
        "started": humantime::format_rfc3339_seconds(SystemTime::now()).to_string(),
        "target": plan.label,
        "urls": urls,
        "nodes": nodes,
        "settings": settings,
        "workload": opts.workload.name(),
        "checkers": checkers,
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
        "nemesis_gap_ms": opts.nemesis_gap.map(|g| g.as_millis() as u64),
        "crash_all": opts.crash_all,
        "partition_shapes": opts.partition_shapes.iter().map(|s| s.name()).collect::<Vec<_>>(),
    });
    let io = |e: std::io::Error| format!("{}: {e}", dir.path.display());
    dir.write_json("run.json", &run_json).map_err(io)?;
    // The checkout workload starts from what the services hold.
    let checkout = if opts.workload == Workload::Checkout {
        Some(checkout::initial_state(&urls).await?)
    } else {
        None
    };
    let recorder = Arc::new(Recorder::create(&dir.history()).map_err(io)?);
    if show {
        eprintln!("faultline: recording {}", dir.history().display());
    }

    let progress = show.then(|| tokio::spawn(show_progress(recorder.clone(), opts.time_limit)));
    let (nemesis_stop, nemesis_stopped) = watch::channel(false);
    let nemesis = if let Some(mut backend) = backend {
        let mut schedule = Schedule::new(
            plan.kinds.clone(),
            shapes,
            opts.nemesis_interval,
            urls.len(),
            seed,
        )
        .with_crash_plans(opts.crash_points.clone(), opts.crash_down);
        if let Some(gap) = opts.nemesis_gap {
            schedule = schedule.with_gap(gap);
        }
        if opts.crash_all {
            schedule = schedule.crashing_every_node();
        }
        let recorder = recorder.clone();
        Some(tokio::spawn(async move {
            let report = |f: &str, value: Value| nemesis_event(&recorder, f, &value, show);
            let outcome =
                faultline_nemesis::run(&mut schedule, &mut backend, report, nemesis_stopped).await;
            (backend, outcome)
        }))
    } else {
        None
    };
    let mut placed = None;
    let outcome = match &checkout {
        Some(initial) => {
            let checkout_config = CheckoutConfig {
                clients: opts.clients,
                rate: opts.rate,
                time_limit: opts.time_limit,
                ops: opts.ops,
                op_timeout: opts.op_timeout,
                retries: opts.retries,
                double_click: 0.05,
                seed,
            };
            checkout::run(
                checkout_config,
                &urls,
                initial.clone(),
                recorder.clone(),
                stop.clone(),
            )
            .await
            .map(|(summary, orders)| {
                placed = Some(orders);
                summary
            })
        }
        None => {
            faultline_workloads::run(
                config.clone(),
                client.clone(),
                recorder.clone(),
                stop.clone(),
            )
            .await
        }
    };
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
    if let (Some(initial), Some(placed), Ok(summary)) = (checkout, placed, &outcome) {
        if !summary.interrupted {
            if show {
                eprintln!(
                    "faultline: waiting {} for orders in flight to end, then reading the final state",
                    humantime::format_duration(opts.quiet)
                );
            }
            tokio::time::sleep(opts.quiet).await;
            let facts = checkout::final_state(&urls, initial, placed).await;
            let io = |e: std::io::Error| format!("{}: {e}", dir.path.display());
            dir.write_json(crate::judge::SAGA_FACTS, &json!(facts))
                .map_err(io)?;
        }
    }
    if let Some(progress) = progress {
        progress.abort();
        let _ = progress.await;
    }
    if let Some(mut stopped) = cluster.lock().expect("not poisoned").take() {
        stopped.stop();
        keep_notes(&stopped, &dir)?;
    }
    etcd.lock().expect("not poisoned").take();
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

/// The nemesis backend for a run's target (none without faults), and the URLs the runner
/// talks to: the nodes', or the proxies' in front of them when a URL target takes packet
/// faults through proxies.
async fn backend(
    plan: &Plan,
    opts: &RunOptions,
    cluster: &Arc<Mutex<Option<Cluster>>>,
    etcd: &Arc<Mutex<Option<EtcdCluster>>>,
    urls: &[String],
) -> Result<(Option<AnyBackend>, Vec<String>), String> {
    if plan.kinds.is_empty() {
        return Ok((None, urls.to_vec()));
    }
    let backend = match &plan.target {
        Target::Bundled(_) => AnyBackend::Bundled(BundledBackend::new(cluster.clone())?),
        Target::LocalEtcd(_) => AnyBackend::Local(LocalBackend::new(etcd.clone())?),
        Target::Http(_) | Target::Etcd(..) => {
            let hosts: Vec<String> = urls
                .iter()
                .map(|u| {
                    u.split_once("://")
                        .map_or(u.as_str(), |(_, hp)| hp)
                        .to_string()
                })
                .collect();
            let commands = (!opts.nemesis_cmd.is_empty())
                .then(|| CommandBackend::new(&opts.nemesis_cmd, hosts, opts.nemesis_cmd_timeout))
                .transpose()?;
            let proxied = plan.kinds.contains(&Kind::Packet)
                && !commands.as_ref().is_some_and(|c| c.handles(Kind::Packet));
            let proxies = if proxied {
                Some(ProxyBackend::start(urls).await?)
            } else {
                None
            };
            let client_urls = proxies
                .as_ref()
                .map_or_else(|| urls.to_vec(), ProxyBackend::urls);
            let backend = match (commands, proxies) {
                (Some(c), p) => AnyBackend::Command(c, p),
                (None, Some(p)) => AnyBackend::Proxy(p),
                (None, None) => unreachable!("nemesis_kinds refused kinds with no backend"),
            };
            return Ok((Some(backend), client_urls));
        }
    };
    Ok((Some(backend), urls.to_vec()))
}

/// Stops a cluster when dropped.
struct StopOnDrop<T>(Arc<Mutex<Option<T>>>);

impl<T> Drop for StopOnDrop<T> {
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
    let judged = crate::judge::judge(&read.history, opts.workload, &dir.path)?;
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
