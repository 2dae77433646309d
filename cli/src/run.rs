//! `faultline run`: one run from a [`RunPlan`] to a [`Finished`] run directory, as a short
//! sequence of named steps — start the target, record the workload under the nemesis, heal,
//! the final reads, stop every node, judge — each its own function below.
//!
//! `faultline run` prints the tables of one run; `faultline compare` collects many of them
//! into one.

use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use faultline_checker::stats::Stats;
use faultline_checker::{History, Validity, format, stats};
use faultline_nemesis::{
    AnyBackend, Backend, BundledBackend, CommandBackend, Kind, LocalEtcdBackend,
    LocalMariadbBackend, LocalPostgresBackend, MaelstromBackend, ProxyBackend, Schedule,
    SharedCluster, SimBackend, SshBackend,
};
use faultline_results::{
    Judged, RunDir, explanation, period_table, report, stats_table, verdict_table,
};
use faultline_targets::client::{AnyClient, HttpClient};
use faultline_targets::cluster::{Cluster, ClusterSpec};
use faultline_targets::etcd::{EtcdClient, EtcdCluster, EtcdSpec};
use faultline_targets::exec::{ExecClient, ExecSpec};
use faultline_targets::maelstrom::{Dialect, MaelstromCluster, MaelstromTarget};
use faultline_targets::mariadb::{MariaClient, MariaServer, MariaSettings};
use faultline_targets::postgres::{PgClient, PgServer, PgSpec};
use faultline_targets::sim::SimCluster;
use faultline_targets::systems::kv::node_name;
use faultline_targets::systems::sim::Trace;
use faultline_targets::target::Target;
use faultline_workloads::checkout::{self, AnyShop, CheckoutConfig, HttpShop, Initial, Placed};
use faultline_workloads::{EventLine, Recorder, RunConfig, RunSummary, TxnShape, Who, Workload};
use serde_json::{Value, json};
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::args::{OutputFormat, RunArgs};
use crate::plan::{RunPlan, RunRecord, Started};

/// Exit code for a harness or target that could not run.
pub(crate) const CANNOT_RUN: u8 = 4;

/// A run that ended: its directory and what the checkers said.
pub(crate) struct Finished {
    pub(crate) dir: RunDir,
    pub(crate) judged: Judged,
    pub(crate) stats: Stats,
    pub(crate) verdict_json: Value,
    pub(crate) summary: RunSummary,
    /// A fault the nemesis could not apply or heal: the run is not the one planned.
    pub(crate) nemesis_error: Option<String>,
    /// The routed network's table (Maelstrom nodes).
    pub(crate) network: Option<String>,
    /// The HTML report, if it could be written.
    pub(crate) report: Option<PathBuf>,
    /// Every simulated event, when the run was simulated with a trace (the determinism
    /// guard).
    pub(crate) trace: Option<Trace>,
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
    let plan = match RunPlan::new(&args.target, &args.settings, opts) {
        Ok(p) => p,
        Err(e) => {
            eprintln!("faultline: {e}");
            return ExitCode::from(2);
        }
    };
    let seed = plan.seed;
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
    let runtime = crate::sim::runtime_for(plan.simulated());
    let finished = match runtime.block_on(async { execute(&plan, dir, interrupts(), true).await }) {
        Ok(finished) => finished,
        Err(e) => {
            eprintln!("faultline: {e}");
            return ExitCode::from(CANNOT_RUN);
        }
    };
    print_run(args.format, &finished);
    let name = finished
        .dir
        .path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned());
    crate::report::summarize(
        &format!("faultline run {}", name.unwrap_or_default()),
        &finished.judged.verdicts,
        finished.report.as_deref(),
    );
    if plan.opts.check_determinism {
        if let Err(e) = crate::sim::check_determinism(&plan, &finished) {
            eprintln!("faultline: the simulation is not deterministic: {e}");
            return ExitCode::from(CANNOT_RUN);
        }
    }
    exit_code(&finished)
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
            if let Some(network) = &finished.network {
                println!("{network}");
            }
            if finished.stats.by_period.len() > 1 {
                println!("{}", period_table(&finished.stats));
            }
            println!("{}", verdict_table(&finished.judged.verdicts));
            for verdict in &finished.judged.verdicts {
                if verdict.valid != Validity::Pass {
                    println!("\n{} {}", verdict.valid.as_str(), verdict.checker);
                    print!("{}", explanation(verdict));
                }
            }
            println!("\nresults: {}", finished.dir.path.display());
            if let Some(report) = &finished.report {
                println!("report:  {} (open it in a browser)", report.display());
            }
        }
    }
}

/// One whole run into `dir`: start the target, record the workload under the nemesis, heal,
/// run the final reads, stop every node, judge, and write `verdict.json` and `junit.xml`.
pub(crate) async fn execute(
    plan: &RunPlan,
    dir: RunDir,
    stop: watch::Receiver<bool>,
    show: bool,
) -> Result<Finished, String> {
    let mut live = start(plan, &dir, show).await?;
    dir.write_json("run.json", &RunRecord::new(plan, &live.started))
        .map_err(|e| in_dir(&dir, e))?;
    let recorder = Arc::new(Recorder::create(&dir.history()).map_err(|e| in_dir(&dir, e))?);
    if show {
        eprintln!("faultline: recording {}", dir.history().display());
    }
    // A simulated run is over in moments; its virtual clock would only flood the terminal.
    let progress = (show && !plan.simulated())
        .then(|| tokio::spawn(show_progress(recorder.clone(), plan.opts.time_limit)));
    let nemesis = live
        .backend
        .take()
        .map(|b| spawn_nemesis(plan, &live, b, &recorder, show));
    let wall = std::time::Instant::now();
    let recorded = record(plan, &live, &recorder, stop.clone()).await;
    let nemesis_error = match nemesis {
        Some(nemesis) => heal(nemesis, &recorder, show).await,
        None => None,
    };
    let summary = after(plan, &live, &recorder, &dir, recorded, stop, show).await;
    if let (Some(sim), Ok(summary), true) = (live.sim(), &summary, show) {
        crate::sim::print_speed(&sim, summary.invoked, wall.elapsed());
    }
    if let AnyClient::Exec(programs) = &*live.client
        && programs.restarts() > 0
    {
        eprintln!(
            "faultline: exec clients were restarted {} times (why: in {}/clients/<n>.log)",
            programs.restarts(),
            dir.path.display()
        );
    }
    if let Some(progress) = progress {
        progress.abort();
        let _ = progress.await;
    }
    let network = network_figures(&live, &dir, &summary).await?;
    let trace = live.stop(&dir, plan.target.writes_notes()).await?;
    let summary = summary?;
    let (judged, stats, verdict_json, history) = judge_run(
        plan,
        &dir,
        &summary,
        network.as_ref().map(|(report, _)| report),
    )?;
    let started = std::time::Instant::now();
    let report = if plan.write_report {
        match report::write_run_report_of(&dir.path, &history, &judged.verdicts, started) {
            Ok(written) => Some(written.path),
            Err(e) => {
                eprintln!("faultline: the HTML report was not written: {e}");
                None
            }
        }
    } else {
        None
    };
    Ok(Finished {
        report,
        network: network.map(|(_, table)| table),
        dir,
        judged,
        stats,
        verdict_json,
        summary,
        nemesis_error,
        trace,
    })
}

/// For Maelstrom nodes: the routed network's figures, written to `network.json`, and their
/// table.
async fn network_figures(
    live: &Live,
    dir: &RunDir,
    summary: &Result<RunSummary, String>,
) -> Result<Option<(Value, String)>, String> {
    let nodes = live.held.maelstrom.lock().expect("not poisoned").clone();
    let Some(nodes) = nodes else {
        return Ok(None);
    };
    let stats = nodes.stats().await;
    let operations = summary.as_ref().map_or(0, |s| s.invoked);
    let report = crate::network::report(&stats, operations);
    dir.write_json("network.json", &report)
        .map_err(|e| in_dir(dir, e))?;
    Ok(Some((report, crate::network::table(&stats, operations))))
}

/// `path: error` for an I/O error in the run directory.
fn in_dir(dir: &RunDir, e: std::io::Error) -> String {
    format!("{}: {e}", dir.path.display())
}

/// A target that is up: whatever faultline started, how the runner reaches it, and how the
/// nemesis breaks it. Dropping it stops every node and member it started.
struct Live {
    held: Held,
    started: Started,
    /// The nemesis backend, until the nemesis task takes it (none without faults).
    backend: Option<AnyBackend>,
    client: Arc<AnyClient>,
}

/// Whatever faultline started for a run: a bundled cluster, a local etcd cluster or a local
/// PostgreSQL server. Dropped — on every path out of a run, error or panic — it stops them.
#[derive(Default)]
struct Held {
    cluster: Arc<Mutex<Option<Cluster>>>,
    etcd: Arc<Mutex<Option<EtcdCluster>>>,
    postgres: Arc<Mutex<Option<PgServer>>>,
    mariadb: Arc<Mutex<Option<MariaServer>>>,
    maelstrom: SharedCluster,
    remote: tokio::sync::Mutex<Option<crate::remote::Remote>>,
    sim: Mutex<Option<SimCluster>>,
}

impl Drop for Held {
    fn drop(&mut self) {
        if let Ok(mut cluster) = self.cluster.lock() {
            cluster.take();
        }
        if let Ok(mut etcd) = self.etcd.lock() {
            etcd.take();
        }
        if let Ok(mut postgres) = self.postgres.lock() {
            postgres.take();
        }
        if let Ok(mut mariadb) = self.mariadb.lock() {
            mariadb.take();
        }
        if let Some(nodes) = self.maelstrom.lock().ok().and_then(|mut m| m.take()) {
            nodes.stop();
        }
    }
}

impl Live {
    /// Step 5, stop: every node (keeping the notes of a system whose nodes write them) and
    /// every member; a cluster on other machines is stopped over ssh and its logs kept. A
    /// simulated run's events, if they were kept.
    async fn stop(&mut self, dir: &RunDir, notes: bool) -> Result<Option<Trace>, String> {
        if let Some(mut remote) = self.held.remote.lock().await.take() {
            remote.stop(&dir.path).await?;
        }
        if let Some(mut stopped) = self.held.cluster.lock().expect("not poisoned").take() {
            stopped.stop();
            if notes {
                keep_notes(&stopped, dir)?;
            }
        }
        self.held.etcd.lock().expect("not poisoned").take();
        self.held.postgres.lock().expect("not poisoned").take();
        self.held.mariadb.lock().expect("not poisoned").take();
        if let Some(nodes) = self.held.maelstrom.lock().expect("not poisoned").take() {
            nodes.stop();
        }
        if let Some(sim) = self.held.sim.lock().expect("not poisoned").take() {
            if notes {
                crate::sim::keep_notes(&sim, dir)?;
            }
            return Ok(sim.trace());
        }
        Ok(None)
    }

    /// The simulated cluster, if the run is simulated.
    fn sim(&self) -> Option<SimCluster> {
        self.held.sim.lock().expect("not poisoned").clone()
    }

    /// The checkout system the workload places orders with.
    fn shop(&self) -> std::io::Result<AnyShop> {
        Ok(match self.sim() {
            Some(sim) => AnyShop::Sim(sim),
            None => AnyShop::Http(HttpShop::new(&self.started.urls)?),
        })
    }
}

/// Step 1, start: the target if faultline runs it, the nemesis backend, a client that reaches
/// every node.
async fn start(plan: &RunPlan, dir: &RunDir, show: bool) -> Result<Live, String> {
    // Whatever starts is held here from the first moment: dropped, it stops.
    let held = Held::default();
    let started = start_target(plan, &held, &dir.path, show).await?;
    if let Some(file) = &plan.cluster {
        *held.remote.lock().await = Some(crate::remote::Remote::start(file.clone(), show).await?);
    }
    let (backend, client_urls) = backend(plan, &held, &started.urls).await?;
    let live = Live {
        client: Arc::new(client(plan, &held, client_urls, &started.nodes, dir)?),
        held,
        started,
        backend,
    };
    // A cluster just started over ssh may take a while to serve.
    let patience = if plan.cluster.is_some() {
        Duration::from_secs(30)
    } else {
        Duration::ZERO
    };
    let deadline = std::time::Instant::now() + patience;
    loop {
        match live.client.check_reachable(Duration::from_secs(2)).await {
            Ok(()) => return Ok(live),
            Err(e) if std::time::Instant::now() >= deadline => return Err(e.to_string()),
            Err(_) => tokio::time::sleep(Duration::from_millis(300)).await,
        }
    }
}

/// Starts what a plan names if faultline runs it (a bundled cluster, etcd members, a
/// database server, Maelstrom nodes), holding it in `held`; what answers where.
async fn start_target(
    plan: &RunPlan,
    held: &Held,
    dir: &std::path::Path,
    show: bool,
) -> Result<Started, String> {
    let (urls, settings) = match plan.target.clone() {
        Target::Bundled(spec) if plan.simulated() => {
            let (sim, answering) = crate::sim::start(spec, plan, show)?;
            *held.sim.lock().expect("not poisoned") = Some(sim);
            answering
        }
        Target::Bundled(spec) => start_bundled(spec, plan.seed, held, show).await?,
        Target::LocalEtcd(spec) => start_local_etcd(spec, held, show).await?,
        Target::LocalPostgres(spec) => start_postgres(spec, held, show).await?,
        Target::LocalMariadb(settings) => start_mariadb(settings, held, show).await?,
        Target::Maelstrom(target) => start_maelstrom(target, plan, held, dir, show).await?,
        Target::Postgres(url, settings) => (vec![url], json!(settings)),
        Target::Mysql(url, settings) => (vec![url], json!(settings)),
        Target::Etcd(urls, settings) => (urls, json!(settings)),
        Target::Http(urls) => (urls, Value::Null),
        Target::Exec(exec) => {
            let settings: serde_json::Map<String, Value> = (exec.settings.iter())
                .map(|(k, v)| (k.clone(), Value::String(v.clone())))
                .collect();
            let urls = exec.nodes.iter().map(|hp| format!("tcp://{hp}")).collect();
            (urls, Value::Object(settings))
        }
    };
    let nodes = (0..urls.len() as u32).map(node_name).collect();
    Ok(Started {
        urls,
        nodes,
        settings,
    })
}

/// What a started target answers on, and its resolved settings.
pub(crate) type Answering = (Vec<String>, Value);

async fn start_bundled(
    mut spec: ClusterSpec,
    seed: u64,
    held: &Held,
    show: bool,
) -> Result<Answering, String> {
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
    let found = (started.urls(), json!(started.settings()));
    *held.cluster.lock().expect("not poisoned") = Some(started);
    Ok(found)
}

async fn start_local_etcd(spec: EtcdSpec, held: &Held, show: bool) -> Result<Answering, String> {
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
    *held.etcd.lock().expect("not poisoned") = Some(started);
    Ok((urls, settings))
}

async fn start_postgres(spec: PgSpec, held: &Held, show: bool) -> Result<Answering, String> {
    let settings = json!(spec.settings);
    let started = PgServer::start(spec)
        .await
        .map_err(|e| format!("the local PostgreSQL server did not start: {e}"))?;
    if show {
        eprintln!(
            "faultline: PostgreSQL ready at {} (data in {})",
            started.url(),
            started.data_dir().display()
        );
    }
    let url = started.url();
    *held.postgres.lock().expect("not poisoned") = Some(started);
    Ok((vec![url], settings))
}

async fn start_mariadb(
    settings: MariaSettings,
    held: &Held,
    show: bool,
) -> Result<Answering, String> {
    let started = MariaServer::start()
        .await
        .map_err(|e| format!("the local MariaDB server did not start: {e}"))?;
    if show {
        eprintln!(
            "faultline: MariaDB ready at {} (data in {})",
            started.url(),
            started.data_dir().display()
        );
    }
    let url = started.url();
    *held.mariadb.lock().expect("not poisoned") = Some(started);
    Ok((vec![url], json!(settings)))
}

/// Starts the Maelstrom nodes, their logs under the run's `nodes/`; the broadcast workload
/// sends them its topology.
async fn start_maelstrom(
    target: MaelstromTarget,
    plan: &RunPlan,
    held: &Held,
    dir: &std::path::Path,
    show: bool,
) -> Result<Answering, String> {
    let settings = json!({
        "command": target.argv.join(" "),
        "latency_ms": target.latency.base.as_millis() as u64,
        "jitter_ms": target.latency.jitter.as_millis() as u64,
        "topology": target.topology.name(),
    });
    let send_topology = plan.opts.workload == Workload::Broadcast;
    let nodes = MaelstromCluster::start(target, plan.seed, dir.join("nodes"), send_topology)
        .await
        .map_err(|e| format!("the Maelstrom nodes did not start: {e}"))?;
    if show {
        eprintln!(
            "faultline: {} Maelstrom nodes answered init",
            nodes.names().len()
        );
    }
    let urls = (nodes.names().iter())
        .map(|n| format!("maelstrom:{n}"))
        .collect();
    *held.maelstrom.lock().expect("not poisoned") = Some(Arc::new(nodes));
    Ok((urls, settings))
}

/// The client the workload drives the target through, at `urls` (the nodes', or proxies');
/// client programs write their logs under `dir`.
fn client(
    plan: &RunPlan,
    held: &Held,
    urls: Vec<String>,
    nodes: &[String],
    dir: &RunDir,
) -> Result<AnyClient, String> {
    Ok(match &plan.target {
        Target::Maelstrom(_) => {
            let nodes = held.maelstrom.lock().expect("not poisoned").clone();
            let nodes = nodes.ok_or("the Maelstrom nodes are not running")?;
            AnyClient::Maelstrom(Arc::new(nodes.client(dialect(plan.opts.workload))))
        }
        Target::Exec(target) => AnyClient::Exec(Arc::new(
            ExecClient::new(ExecSpec {
                target: target.clone(),
                hosts: urls
                    .iter()
                    .map(|u| {
                        u.split_once("://")
                            .map_or(u.as_str(), |(_, hp)| hp)
                            .to_string()
                    })
                    .collect(),
                names: nodes.to_vec(),
                seed: plan.seed,
                run: (dir.path.file_name())
                    .map_or_else(String::new, |n| n.to_string_lossy().into_owned()),
                op_timeout: plan.opts.op_timeout,
                log_dir: dir.path.join("clients"),
                clients: plan.opts.clients,
                needs: plan.opts.workload.ops_needed().to_vec(),
            })
            .map_err(|e| e.to_string())?,
        )),
        Target::Etcd(_, s) => {
            AnyClient::Etcd(EtcdClient::new(urls, s.serializable).map_err(|e| e.to_string())?)
        }
        Target::LocalEtcd(spec) => AnyClient::Etcd(
            EtcdClient::new(urls, spec.settings.serializable).map_err(|e| e.to_string())?,
        ),
        Target::Bundled(_) if plan.simulated() => {
            let sim = held.sim.lock().expect("not poisoned").clone();
            AnyClient::Sim(sim.ok_or("the simulated cluster is not running")?)
        }
        Target::Bundled(_) | Target::Http(_) => AnyClient::Http(
            HttpClient::new(urls, plan.opts.auth_token.clone()).map_err(|e| e.to_string())?,
        ),
        Target::LocalMariadb(settings) | Target::Mysql(_, settings) => {
            let registers = plan.opts.workload == Workload::RwRegister;
            let url = urls.into_iter().next().unwrap_or_default();
            let client =
                MariaClient::new(url, settings.isolation, registers).map_err(|e| e.to_string())?;
            AnyClient::Mariadb(Arc::new(client))
        }
        Target::LocalPostgres(PgSpec { settings, .. }) | Target::Postgres(_, settings) => {
            let registers = plan.opts.workload == Workload::RwRegister;
            let url = urls.into_iter().next().unwrap_or_default();
            AnyClient::Postgres(Arc::new(PgClient::new(url, settings.isolation, registers)))
        }
    })
}

/// The request shapes of a Maelstrom workload's adds and whole reads.
fn dialect(workload: Workload) -> Dialect {
    match workload {
        Workload::Broadcast => Dialect::Broadcast,
        Workload::GSet => Dialect::GSet,
        Workload::GCounter | Workload::PnCounter => Dialect::Counter,
        _ => Dialect::Plain,
    }
}

/// The nemesis, running: a task that applies the plan's fault schedule until told to stop,
/// then hands its backend back for the final heal.
struct Nemesis {
    stop: watch::Sender<bool>,
    task: JoinHandle<(AnyBackend, Result<(), String>)>,
}

/// Starts the nemesis on its own task, its schedule from the plan's seed.
fn spawn_nemesis(
    plan: &RunPlan,
    live: &Live,
    mut backend: AnyBackend,
    recorder: &Arc<Recorder>,
    show: bool,
) -> Nemesis {
    let nodes = live.started.urls.len();
    let mut schedule = schedule(plan, nodes);
    let (stop, stopped) = watch::channel(false);
    let recorder = recorder.clone();
    let task = tokio::spawn(async move {
        let report = |f: &str, value: Value| nemesis_event(&recorder, f, &value, show);
        let outcome = faultline_nemesis::run(&mut schedule, &mut backend, report, stopped).await;
        (backend, outcome)
    });
    Nemesis { stop, task }
}

/// The plan's fault schedule on `nodes` nodes: its schedule file's, or drawn from its seed.
pub(crate) fn schedule(plan: &RunPlan, nodes: usize) -> Schedule {
    let opts = &plan.opts;
    if let Some(file) = &plan.schedule {
        return Schedule::replaying(file);
    }
    let mut schedule = Schedule::new(
        plan.kinds.clone(),
        plan.shapes.clone(),
        opts.nemesis_interval,
        nodes,
        plan.seed,
    )
    .with_crash_plans(opts.crash_points.clone(), opts.crash_down);
    if let Some(gap) = opts.nemesis_gap {
        schedule = schedule.with_gap(gap);
    }
    if opts.crash_all {
        schedule = schedule.crashing_every_node();
    }
    schedule
}

/// What the record step left: the workload's outcome, and for a checkout what the services
/// held before and what the clients saw of each order.
struct Recorded {
    outcome: std::io::Result<RunSummary>,
    orders: Option<(Initial, Placed)>,
}

/// The runner's configuration of a plan's KV workload.
fn run_config(plan: &RunPlan, live: &Live) -> RunConfig {
    let opts = &plan.opts;
    RunConfig {
        workload: opts.workload,
        keys: opts.keys,
        clients: opts.clients,
        rate: opts.rate,
        time_limit: Some(opts.time_limit),
        ops: opts.ops,
        op_timeout: opts.op_timeout,
        seed: plan.seed,
        nodes: live.started.nodes.clone(),
        sticky: plan.sticky(),
        txn: TxnShape {
            len: opts.txn_len,
            max_writes_per_key: opts.max_writes_per_key,
        },
    }
}

/// Step 2, record: drives the workload (orders for a checkout system) until the time or
/// operation limit, or Ctrl-C.
async fn record(
    plan: &RunPlan,
    live: &Live,
    recorder: &Arc<Recorder>,
    stop: watch::Receiver<bool>,
) -> Recorded {
    if plan.opts.workload != Workload::Checkout {
        let config = run_config(plan, live);
        let outcome =
            faultline_workloads::run(config, live.client.clone(), recorder.clone(), stop).await;
        return Recorded {
            outcome,
            orders: None,
        };
    }
    let opts = &plan.opts;
    let shop = match live.shop() {
        Ok(shop) => Arc::new(shop),
        Err(e) => {
            return Recorded {
                outcome: Err(e),
                orders: None,
            };
        }
    };
    let initial = match checkout::initial_state(&*shop).await {
        Ok(initial) => initial,
        Err(e) => {
            return Recorded {
                outcome: Err(std::io::Error::other(e)),
                orders: None,
            };
        }
    };
    let config = CheckoutConfig {
        clients: opts.clients,
        rate: opts.rate,
        time_limit: opts.time_limit,
        ops: opts.ops,
        op_timeout: opts.op_timeout,
        retries: opts.retries,
        double_click: 0.05,
        seed: plan.seed,
    };
    match checkout::run(config, shop, initial.clone(), recorder.clone(), stop).await {
        Ok((summary, placed)) => Recorded {
            outcome: Ok(summary),
            orders: Some((initial, placed)),
        },
        Err(e) => Recorded {
            outcome: Err(e),
            orders: None,
        },
    }
}

/// Step 3, heal: stops the nemesis and heals everything before the final reads; what went
/// wrong applying or healing a fault, if anything.
async fn heal(nemesis: Nemesis, recorder: &Recorder, show: bool) -> Option<String> {
    let _ = nemesis.stop.send(true);
    let (mut backend, outcome) = match nemesis.task.await {
        Ok(done) => done,
        Err(e) => return Some(format!("the nemesis task failed: {e}")),
    };
    let mut error = outcome.err();
    if let Err(e) = backend.heal_all().await {
        error.get_or_insert(e);
    }
    let healed = json!({"action": "heal", "healed": "everything"});
    nemesis_event(recorder, "all", &healed, show);
    error
}

/// Step 4, the final reads: a set workload reads the whole set through every node; a
/// checkout waits `--quiet` for orders in flight, then reads every service's final state into
/// the saga checker's facts.
async fn after(
    plan: &RunPlan,
    live: &Live,
    recorder: &Arc<Recorder>,
    dir: &RunDir,
    recorded: Recorded,
    stop: watch::Receiver<bool>,
    show: bool,
) -> Result<RunSummary, String> {
    let summary = recorded
        .outcome
        .map_err(|e| format!("the run failed: {e}"))?;
    if summary.interrupted {
        return Ok(summary);
    }
    if plan.opts.workload.reads_whole_at_end() {
        if show {
            eprintln!(
                "faultline: waiting {} for the nodes to converge, then reading through every node",
                humantime::format_duration(plan.opts.quiet)
            );
        }
        tokio::time::sleep(plan.opts.quiet).await;
        let config = run_config(plan, live);
        faultline_workloads::final_whole_reads(
            &config,
            live.client.clone(),
            recorder.clone(),
            &summary,
        )
        .await
        .map_err(|e| format!("the run failed: {e}"))?;
    }
    if plan.opts.workload == Workload::Set {
        let config = run_config(plan, live);
        faultline_workloads::final_reads(
            &config,
            live.client.clone(),
            recorder.clone(),
            &summary,
            stop,
        )
        .await
        .map_err(|e| format!("the run failed: {e}"))?;
    }
    if let Some((initial, placed)) = recorded.orders {
        if show {
            eprintln!(
                "faultline: waiting {} for orders in flight to end, then reading the final state",
                humantime::format_duration(plan.opts.quiet)
            );
        }
        tokio::time::sleep(plan.opts.quiet).await;
        let shop = live.shop().map_err(|e| format!("the run failed: {e}"))?;
        let facts = checkout::final_state(&shop, initial, placed).await;
        dir.write_json(crate::judge::SAGA_FACTS, &json!(facts))
            .map_err(|e| in_dir(dir, e))?;
    }
    Ok(summary)
}

/// Step 6, judge: checks the recorded history and writes `verdict.json` and `junit.xml`.
/// Also returns the history read, for the report.
fn judge_run(
    plan: &RunPlan,
    dir: &RunDir,
    summary: &RunSummary,
    network: Option<&Value>,
) -> Result<(Judged, Stats, Value, History), String> {
    let read = format::read_path(&dir.history(), None).map_err(|e| e.to_string())?;
    for warning in &read.history.warnings {
        eprintln!("faultline: warning: {}: {warning}", dir.history().display());
    }
    let record = RunRecord::read(&dir.path)?
        .ok_or_else(|| in_dir(dir, std::io::ErrorKind::NotFound.into()))?;
    let judged = crate::judge::judge(&read.history, &record, &dir.path)?;
    let stats = stats::stats(&read.history);
    let mut verdict_json = json!({
        "verdict": judged.validity().as_str(),
        "workload": plan.opts.workload.name(),
        "seed": plan.seed,
        "interrupted": summary.interrupted,
        "checkers": judged.verdicts,
        "stats": stats,
    });
    if let Some(network) = network {
        verdict_json["network"] = network.clone();
    }
    dir.write_json("verdict.json", &verdict_json)
        .map_err(|e| in_dir(dir, e))?;
    dir.write_junit(
        &format!("faultline run {}", plan.opts.workload),
        &judged.verdicts,
    )
    .map_err(|e| in_dir(dir, e))?;
    Ok((judged, stats, verdict_json, read.history))
}

/// The nemesis backend for a run's target (none without faults), and the URLs the runner
/// talks to: the nodes', or the proxies' in front of them when a URL target takes packet
/// faults through proxies.
async fn backend(
    plan: &RunPlan,
    held: &Held,
    urls: &[String],
) -> Result<(Option<AnyBackend>, Vec<String>), String> {
    let opts = &plan.opts;
    if plan.kinds.is_empty() {
        return Ok((None, urls.to_vec()));
    }
    if let (Some(file), Some(remote)) = (&plan.cluster, held.remote.lock().await.as_ref()) {
        let backend = SshBackend::new(remote.ssh.clone(), file.clone()).await?;
        return Ok((Some(AnyBackend::Ssh(Box::new(backend))), urls.to_vec()));
    }
    let backend = match &plan.target {
        Target::Bundled(_) if plan.simulated() => {
            let sim = held.sim.lock().expect("not poisoned").clone();
            AnyBackend::Sim(SimBackend::new(
                sim.ok_or("the simulated cluster is not running")?,
            ))
        }
        Target::Bundled(_) => AnyBackend::Bundled(BundledBackend::new(held.cluster.clone())?),
        Target::LocalEtcd(_) => AnyBackend::LocalEtcd(LocalEtcdBackend::new(held.etcd.clone())?),
        Target::LocalPostgres(_) => {
            let proxied = plan.kinds.contains(&Kind::Packet);
            let (b, url) = LocalPostgresBackend::new(held.postgres.clone(), proxied).await?;
            return Ok((Some(AnyBackend::LocalPostgres(b)), vec![url]));
        }
        Target::LocalMariadb(_) => {
            let proxied = plan.kinds.contains(&Kind::Packet);
            let (b, url) = LocalMariadbBackend::new(held.mariadb.clone(), proxied).await?;
            return Ok((Some(AnyBackend::LocalMariadb(b)), vec![url]));
        }
        Target::Postgres(..) | Target::Mysql(..) => {
            unreachable!("nemesis_kinds refused faults on a database URL")
        }
        Target::Maelstrom(_) => {
            AnyBackend::Maelstrom(MaelstromBackend::new(held.maelstrom.clone())?)
        }
        Target::Http(_) | Target::Etcd(..) | Target::Exec(_) => {
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

/// Copies the notes a bundled cluster's nodes wrote about themselves (who led, what was
/// applied where) into the run directory, for the checks of the system's own invariants.
fn keep_notes(cluster: &Cluster, dir: &RunDir) -> Result<(), String> {
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
