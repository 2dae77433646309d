//! A run as data: the [`RunPlan`] every choice of a run resolves to before anything starts,
//! and the [`RunRecord`] it is written down as (`run.json`), which `faultline check RUN_DIR`
//! reads back.
//!
//! The plan is built from the command line's options in one place ([`RunPlan::new`]) and
//! checked there: a bad target, a workload the target cannot take, a fault its backend cannot
//! apply are usage errors (exit 2) before any process starts. What each target can do comes
//! from [`Target`]; what each fault backend can do from the nemesis crate.

use std::path::Path;
use std::time::{Duration, SystemTime};

use faultline_checker::Checker;
use faultline_checker::txn::{Assumption, Model};
use faultline_nemesis::{
    Backend, CommandBackend, Kind, LocalEtcdBackend, LocalMariadbBackend, LocalPostgresBackend,
    MaelstromBackend, ProxyBackend, ScheduleFile, Shape, SshBackend,
};
use faultline_targets::etcd::Network;
use faultline_targets::runtime::{CrashPlan, CrashPoint};
use faultline_targets::ssh::cluster_file::ClusterFile;
use faultline_targets::systems::system_info;
use faultline_targets::target::{Target, TargetContext};
use faultline_workloads::Workload;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::args::{RunAssumption, RunOptions, Runtime};

/// A run with every choice resolved and checked, nothing started yet.
#[derive(Clone)]
pub(crate) struct RunPlan {
    /// The target as written, with its settings (`bundled:quorum?w=2,r=2`).
    pub(crate) label: String,
    /// Where the operations go.
    pub(crate) target: Target,
    /// The checkers that judge the run.
    pub(crate) checkers: Vec<Checker>,
    /// The faults to inject (empty: no nemesis).
    pub(crate) kinds: Vec<Kind>,
    /// The partition shapes to choose from (every shape when the target names its leader
    /// and none were asked for).
    pub(crate) shapes: Vec<Shape>,
    /// The seed of every choice of the run.
    pub(crate) seed: u64,
    /// The options as given.
    pub(crate) opts: RunOptions,
    /// The cluster file, for a cluster on other machines.
    pub(crate) cluster: Option<ClusterFile>,
    /// The faults to replay instead of the seed's (`--schedule`).
    pub(crate) schedule: Option<ScheduleFile>,
    /// Whether the run writes its HTML report (a hunt's many runs do not).
    pub(crate) write_report: bool,
}

impl RunPlan {
    /// Resolves and checks a target with its settings, the workload and the faults to inject
    /// into it. Every error is a usage error naming the flag.
    pub(crate) fn new(
        target: &str,
        settings: &[String],
        opts: &RunOptions,
    ) -> Result<Self, String> {
        check_options(opts)?;
        let cluster = opts.cluster.as_deref().map(ClusterFile::read).transpose()?;
        let (target, nodes_addr) =
            with_cluster_addresses(target, &opts.nodes_addr, cluster.as_ref())?;
        let target = target.as_str();
        let cx = TargetContext {
            nodes: opts.nodes,
            etcd_bin: opts.etcd_bin.clone(),
            pg_bin: opts.pg_bin.clone(),
            nodes_addr,
            exe: std::env::current_exe()
                .map_err(|e| format!("cannot find my own executable to start nodes: {e}"))?,
        };
        let parsed = Target::parse(target, settings, &cx)?;
        if let Some(notice) = &parsed.notice {
            eprintln!("faultline: {notice}");
        }
        let mut resolved = parsed.target;
        match (&opts.topology, &mut resolved) {
            (Some(shape), Target::Maelstrom(nodes)) => nodes.topology = *shape,
            (Some(_), _) => {
                return Err("--topology: only a maelstrom: target's nodes take a topology".into());
            }
            (None, _) => {}
        }
        check_workload(target, &resolved, opts.workload)?;
        if cluster.is_some() && resolved.started_by_faultline() {
            return Err(format!(
                "--cluster names a cluster on other machines; {target} is one faultline starts here"
            ));
        }
        check_crash_points(&opts.crash_points, &resolved)?;
        check_runtime(opts, &resolved)?;
        let schedule = read_schedule(opts, &resolved)?;
        let kinds = match &schedule {
            Some(file) => schedule_kinds(file, opts, &resolved)?,
            None => nemesis_kinds(opts, &resolved, cluster.as_ref())?,
        };
        let shapes = if opts.partition_shapes.is_empty() && resolved.names_leader() {
            Shape::ALL.to_vec()
        } else {
            opts.partition_shapes.clone()
        };
        let label = if settings.is_empty() {
            target.to_string()
        } else {
            format!("{target}?{}", settings.join(","))
        };
        Ok(RunPlan {
            label,
            checkers: crate::judge::checkers_of(
                opts.workload,
                resolved.writes_notes(),
                consistency(opts, &resolved),
                &assumptions(opts, &resolved),
            ),
            target: resolved,
            kinds,
            shapes,
            seed: run_seed(opts),
            opts: opts.clone(),
            cluster,
            schedule,
            write_report: true,
        })
    }

    /// How many nodes the target's cluster has.
    pub(crate) fn nodes(&self) -> usize {
        cluster_nodes(&self.opts, &self.target)
    }

    /// Whether its nodes run in the simulator.
    pub(crate) fn simulated(&self) -> bool {
        self.opts.runtime == Runtime::Sim
    }

    /// The same plan under another seed (a comparison's repeated runs).
    pub(crate) fn with_seed(&self, seed: u64) -> Self {
        RunPlan {
            seed,
            ..self.clone()
        }
    }

    /// Whether clients of the workload stay with one node (always, but for causal sessions
    /// that were not asked to).
    pub(crate) fn sticky(&self) -> bool {
        self.opts.workload != Workload::Causal || self.opts.sticky
    }
}

/// The run's seed: the one given, or one from the clock (printed, so it can be replayed).
pub(crate) fn run_seed(opts: &RunOptions) -> u64 {
    opts.seed.unwrap_or_else(|| {
        SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .map_or(1, |d| d.as_nanos() as u64)
    })
}

/// The model a transactional run is judged for: --consistency, else the model the target
/// claims (a database's isolation level), else strict-serializable.
pub(crate) fn consistency(opts: &RunOptions, target: &Target) -> Option<Model> {
    opts.consistency
        .or_else(|| target.claimed_model().and_then(|name| name.parse().ok()))
}

/// What rw-register inference assumes of each key: `--assume` when given (`none`: nothing);
/// on a SQL database, wfr-keys — a row lock puts a transaction's write after the version it
/// read, at every isolation level, so a read followed by a write of the same key orders the
/// two versions (Jepsen's SQL tests assume the same); elsewhere nothing.
pub(crate) fn assumptions(opts: &RunOptions, target: &Target) -> Vec<Assumption> {
    if opts.assume.is_empty() {
        let sql = target.is_database() && opts.workload == Workload::RwRegister;
        return if sql {
            vec![Assumption::WfrKeys]
        } else {
            Vec::new()
        };
    }
    opts.assume
        .iter()
        .filter_map(|a| match a {
            RunAssumption::Key(a) => Some(*a),
            RunAssumption::Nothing => None,
        })
        .collect()
}

/// Checks the options every run shares.
fn check_options(opts: &RunOptions) -> Result<(), String> {
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

/// The checkout systems take the checkout workload and nothing else, and it runs on nothing
/// else.
fn check_workload(label: &str, target: &Target, workload: Workload) -> Result<(), String> {
    let maelstrom = matches!(target, Target::Maelstrom(_));
    if workload.maelstrom_only() && !maelstrom {
        return Err(format!(
            "--workload {workload} is one of Maelstrom's: run it against nodes with \
             --target 'maelstrom:COMMAND ARGS...'"
        ));
    }
    let maelstrom_takes = workload.maelstrom_only()
        || matches!(workload, Workload::Register | Workload::Cas) // lin-kv
        || workload.is_transactional();
    if maelstrom && !maelstrom_takes {
        return Err(format!(
            "--workload {workload}: Maelstrom nodes take echo, unique-ids, broadcast, g-set, \
             g-counter, pn-counter, lin-kv, txn-list-append or txn-rw-register"
        ));
    }
    if target.is_database() && !workload.is_transactional() {
        return Err(format!(
            "{label} is a database: run it with --workload list-append or rw-register"
        ));
    }
    if workload.is_transactional() && !target.runs_transactions() {
        return Err(format!(
            "--workload {workload}: {label} does not run transactions (bundled:raft, \
             bundled:quorum, etcd, PostgreSQL, MariaDB, exec: programs and http:// targets with \
             POST /txn do)"
        ));
    }
    match (target.takes_orders(), workload == Workload::Checkout) {
        (true, false) => Err(format!(
            "{label} is a checkout system: run it with --workload checkout"
        )),
        (false, true) => Err(format!(
            "--workload checkout needs a checkout system (bundled:saga or bundled:twopc); {label} is not one"
        )),
        _ => Ok(()),
    }
}

/// Every kind a `--crash-points` point names must be one the target's nodes send or log
/// (a point that names an unknown kind would never strike).
fn check_crash_points(plans: &[CrashPlan], target: &Target) -> Result<(), String> {
    let Target::Bundled(spec) = target else {
        return Ok(());
    };
    let info = system_info(&spec.system)?;
    for planned in plans.iter().flat_map(|p| &p.0) {
        let (kinds, known, what) = match &planned.point {
            CrashPoint::Persist(kinds) => (kinds, info.record_kinds, "log records"),
            CrashPoint::Send(kinds) => (kinds, info.message_kinds, "messages"),
        };
        if let Some(unknown) = kinds.iter().find(|k| !known.contains(&k.as_str())) {
            return Err(format!(
                "--crash-points {}: bundled:{} has no {what} of the kind `{unknown}`; its kinds: {}",
                planned.point,
                info.name,
                known.join(", ")
            ));
        }
    }
    Ok(())
}

/// The target with the cluster file's addresses filled in where it names none (`etcd://`,
/// `http://`), and `--nodes-addr` filled in for an `exec:` target given none.
fn with_cluster_addresses(
    target: &str,
    nodes_addr: &[String],
    cluster: Option<&ClusterFile>,
) -> Result<(String, Vec<String>), String> {
    let Some(file) = cluster else {
        return Ok((target.to_string(), nodes_addr.to_vec()));
    };
    let addresses = || {
        file.addresses().ok_or_else(|| {
            format!(
                "--target {target} names no nodes, and not every node of --cluster has an address"
            )
        })
    };
    if let Some(scheme) = ["etcd://", "http://", "https://"]
        .into_iter()
        .find(|s| target == *s)
    {
        return Ok((
            format!("{scheme}{}", addresses()?.join(",")),
            nodes_addr.to_vec(),
        ));
    }
    if target.starts_with("exec:") && nodes_addr.is_empty() {
        return Ok((target.to_string(), addresses()?));
    }
    Ok((target.to_string(), nodes_addr.to_vec()))
}

/// The faults to inject, resolved for the target and checked against what its backend can
/// do: partition and clock skew for bundled targets unless told otherwise, partition, kill and
/// pause for local:etcd, nothing for URLs.
fn nemesis_kinds(
    opts: &RunOptions,
    target: &Target,
    cluster: Option<&ClusterFile>,
) -> Result<Vec<Kind>, String> {
    let kinds = match &opts.nemesis {
        Some(list) => Kind::parse_list(list).map_err(|e| format!("--nemesis: {e}"))?,
        None => default_kinds(target),
    };
    if !opts.nemesis_cmd.is_empty() && target.started_by_faultline() {
        return Err(
            "--nemesis-cmd is for clusters faultline does not run; this target is \
                    started and broken by faultline itself"
                .into(),
        );
    }
    let (unsupported, over) = match cluster {
        Some(_) if !opts.nemesis_cmd.is_empty() => {
            return Err(
                "--nemesis-cmd and --cluster both say how to break the cluster: give one".into(),
            );
        }
        Some(file) => (SshBackend::unsupported_kinds(file, &kinds), "over ssh"),
        None => (unsupported_on(opts, target, &kinds)?, "to this target"),
    };
    if let Some((kind, why)) = unsupported.first() {
        return Err(format!("--nemesis {kind}: cannot be applied {over}: {why}"));
    }
    if opts.partition_shapes.contains(&Shape::Leader) && !target.names_leader() {
        return Err(
            "--partition-shapes leader: only bundled:raft and local:etcd name their leader \
             to faultline"
                .into(),
        );
    }
    Ok(kinds)
}

/// `--runtime sim` runs bundled systems only; `--check-determinism` needs it.
fn check_runtime(opts: &RunOptions, target: &Target) -> Result<(), String> {
    if opts.runtime == Runtime::Sim && !matches!(target, Target::Bundled(_)) {
        return Err(
            "--runtime sim: only bundled targets (bundled:quorum, bundled:raft, \
             bundled:saga, bundled:twopc) run in the simulator"
                .into(),
        );
    }
    if opts.check_determinism && opts.runtime != Runtime::Sim {
        return Err("--check-determinism compares two simulated runs: add --runtime sim".into());
    }
    Ok(())
}

/// The schedule file `--schedule` names, read and checked against the target's nodes.
fn read_schedule(opts: &RunOptions, target: &Target) -> Result<Option<ScheduleFile>, String> {
    let Some(path) = &opts.schedule else {
        return Ok(None);
    };
    if opts.nemesis.is_some() {
        return Err("--schedule and --nemesis both say which faults to inject: give one".into());
    }
    ScheduleFile::read(path, cluster_nodes(opts, target)).map(Some)
}

/// How many nodes the target's cluster has: a bundled system's own count, else `--nodes`.
fn cluster_nodes(opts: &RunOptions, target: &Target) -> usize {
    match target {
        Target::Bundled(spec) => spec.nodes as usize,
        _ => opts.nodes as usize,
    }
}

/// The kinds of a schedule file's faults, each checked against the target as `--nemesis`
/// would be.
fn schedule_kinds(
    file: &ScheduleFile,
    opts: &RunOptions,
    target: &Target,
) -> Result<Vec<Kind>, String> {
    let mut kinds: Vec<Kind> = file.steps.iter().map(|s| s.fault.kind()).collect();
    kinds.sort();
    kinds.dedup();
    if let Some((kind, why)) = unsupported_on(opts, target, &kinds)?.first() {
        return Err(format!(
            "--schedule: a {kind} fault cannot be applied to this target: {why}"
        ));
    }
    Ok(kinds)
}

/// The faults a target gets when `--nemesis` is not given.
fn default_kinds(target: &Target) -> Vec<Kind> {
    match target {
        Target::Bundled(_) => vec![Kind::Partition, Kind::Clock],
        Target::LocalEtcd(_) if target.etcd_network() == Some(Network::Loopback) => {
            vec![Kind::Kill, Kind::Pause]
        }
        Target::LocalEtcd(_) => vec![Kind::Partition, Kind::Kill, Kind::Pause],
        Target::Http(_) | Target::Etcd(..) | Target::Exec(_) | Target::Maelstrom(_) => Vec::new(),
        Target::LocalPostgres(_) | Target::Postgres(..) => Vec::new(),
        Target::LocalMariadb(_) | Target::Mysql(..) => Vec::new(),
    }
}

/// The kinds among `kinds` that the backend of `target` (with the run's `--nemesis-cmd`s)
/// cannot apply, each with the reason.
fn unsupported_on(
    opts: &RunOptions,
    target: &Target,
    kinds: &[Kind],
) -> Result<Vec<(Kind, String)>, String> {
    // The user's commands, with packet faults through proxies when no command takes them.
    let commands = |hosts: Vec<String>| -> Result<Vec<(Kind, String)>, String> {
        let commands = CommandBackend::new(&opts.nemesis_cmd, hosts, opts.nemesis_cmd_timeout)?;
        let mut missing = commands.unsupported(kinds);
        missing.retain(|(k, _)| *k != Kind::Packet || commands.handles(Kind::Packet));
        Ok(missing)
    };
    Ok(match target {
        Target::Bundled(_) => Vec::new(),
        Target::LocalEtcd(_) => LocalEtcdBackend::unsupported_on(
            target.etcd_network().unwrap_or(Network::Loopback),
            kinds,
        ),
        Target::Http(urls) | Target::Etcd(urls, _) if !opts.nemesis_cmd.is_empty() => {
            commands(urls.clone())?
        }
        Target::Exec(exec) if exec.nodes.is_empty() && !kinds.is_empty() => {
            return Err(format!(
                "--nemesis {}: an exec: target takes faults on the nodes --nodes-addr names; \
                 give them (host:port,...)",
                kinds[0]
            ));
        }
        Target::Exec(exec) if !opts.nemesis_cmd.is_empty() => commands(exec.nodes.clone())?,
        Target::Http(_) | Target::Etcd(..) | Target::Exec(_) => {
            ProxyBackend::unsupported_kinds(kinds)
        }
        Target::LocalPostgres(_) => LocalPostgresBackend::unsupported_kinds(kinds),
        Target::LocalMariadb(_) => LocalMariadbBackend::unsupported_kinds(kinds),
        Target::Maelstrom(_) => MaelstromBackend::unsupported_kinds(kinds),
        Target::Postgres(..) | Target::Mysql(..) => (kinds.iter())
            .map(|&k| {
                (
                    k,
                    "a server faultline does not run takes no faults yet".to_string(),
                )
            })
            .collect(),
    })
}

/// What started: the addresses the target answers on, its node names and its resolved
/// settings.
pub(crate) struct Started {
    /// Every node's client URL.
    pub(crate) urls: Vec<String>,
    /// Every node's name (`n1`...).
    pub(crate) nodes: Vec<String>,
    /// The target's settings as resolved (defaults filled in).
    pub(crate) settings: Value,
}

/// `run.json`: the plan of a run as it started, written before the first operation.
#[derive(Serialize, Deserialize)]
pub(crate) struct RunRecord {
    /// The faultline version that ran it.
    #[serde(default)]
    pub(crate) faultline: String,
    /// The command line.
    #[serde(default)]
    pub(crate) command: Vec<String>,
    /// When it started (RFC 3339, UTC).
    #[serde(default)]
    pub(crate) started: String,
    /// The target with its settings, as written.
    #[serde(default)]
    pub(crate) target: String,
    /// Every node's client URL.
    #[serde(default)]
    pub(crate) urls: Vec<String>,
    /// Every node's name.
    #[serde(default)]
    pub(crate) nodes: Vec<String>,
    /// The target's resolved settings.
    #[serde(default)]
    pub(crate) settings: Value,
    /// The workload.
    #[serde(with = "workload_name")]
    pub(crate) workload: Workload,
    /// The names of the verdicts the checkers give.
    #[serde(default)]
    pub(crate) checkers: Vec<String>,
    /// The seed, and the generator it seeds.
    #[serde(default)]
    pub(crate) seed: u64,
    #[serde(default)]
    pub(crate) rng: String,
    #[serde(default)]
    pub(crate) clients: usize,
    #[serde(default)]
    pub(crate) rate: f64,
    #[serde(default)]
    pub(crate) time_limit_s: f64,
    #[serde(default)]
    pub(crate) ops: Option<u64>,
    #[serde(default)]
    pub(crate) op_timeout_ms: u64,
    #[serde(default)]
    pub(crate) retries: u32,
    #[serde(default)]
    pub(crate) quiet_ms: u64,
    #[serde(default)]
    pub(crate) keys: usize,
    /// Transactional workloads: the isolation level judged, micro-operations per transaction
    /// and writes per key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) consistency: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) txn_len: Option<(usize, usize)>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) max_writes_per_key: Option<u64>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub(crate) assume: Vec<String>,
    #[serde(default)]
    pub(crate) sticky: bool,
    /// The fault kinds, their pacing and their choices.
    #[serde(default)]
    pub(crate) nemesis: Vec<String>,
    #[serde(default)]
    pub(crate) nemesis_interval_ms: u64,
    #[serde(default)]
    pub(crate) nemesis_gap_ms: Option<u64>,
    #[serde(default)]
    pub(crate) crash_all: bool,
    #[serde(default)]
    pub(crate) crash_points: Vec<String>,
    #[serde(default)]
    pub(crate) crash_down_ms: u64,
    #[serde(default)]
    pub(crate) partition_shapes: Vec<String>,
    /// Where the nodes ran: `process` or `sim`.
    #[serde(default)]
    pub(crate) runtime: String,
    /// The schedule file replayed, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) schedule: Option<String>,
}

fn millis(d: Duration) -> u64 {
    d.as_millis() as u64
}

impl RunRecord {
    /// The record of `plan` as it started as `started`.
    pub(crate) fn new(plan: &RunPlan, started: &Started) -> Self {
        let opts = &plan.opts;
        let names = |list: &[String]| list.to_vec();
        RunRecord {
            faultline: env!("CARGO_PKG_VERSION").into(),
            command: std::env::args().collect(),
            started: humantime::format_rfc3339_seconds(SystemTime::now()).to_string(),
            target: plan.label.clone(),
            urls: names(&started.urls),
            nodes: names(&started.nodes),
            settings: started.settings.clone(),
            workload: opts.workload,
            checkers: plan
                .checkers
                .iter()
                .flat_map(|c| c.verdict_names().iter().map(|n| n.to_string()))
                .collect(),
            seed: plan.seed,
            rng: "ChaCha8".into(),
            clients: opts.clients,
            rate: opts.rate,
            time_limit_s: opts.time_limit.as_secs_f64(),
            ops: opts.ops,
            op_timeout_ms: millis(opts.op_timeout),
            retries: opts.retries,
            quiet_ms: millis(opts.quiet),
            keys: opts.keys,
            consistency: opts.workload.is_transactional().then(|| {
                consistency(opts, &plan.target)
                    .unwrap_or(Model::StrictSerializable)
                    .name()
                    .to_string()
            }),
            txn_len: opts.workload.is_transactional().then_some(opts.txn_len),
            max_writes_per_key: opts
                .workload
                .is_transactional()
                .then_some(opts.max_writes_per_key),
            assume: assumptions(opts, &plan.target)
                .iter()
                .map(|a| a.name().to_string())
                .collect(),
            sticky: plan.sticky(),
            nemesis: plan.kinds.iter().map(|k| k.name().to_string()).collect(),
            nemesis_interval_ms: millis(opts.nemesis_interval),
            nemesis_gap_ms: opts.nemesis_gap.map(millis),
            crash_all: opts.crash_all,
            crash_points: opts.crash_points.iter().map(|p| p.to_string()).collect(),
            crash_down_ms: millis(opts.crash_down),
            partition_shapes: plan.shapes.iter().map(|s| s.name().to_string()).collect(),
            runtime: opts.runtime.name().into(),
            schedule: opts.schedule.as_ref().map(|p| p.display().to_string()),
        }
    }

    /// Reads a run directory's `run.json`; `None` for anything that is not a run directory.
    pub(crate) fn read(dir: &Path) -> Result<Option<Self>, String> {
        let path = dir.join("run.json");
        if !dir.is_dir() || !path.is_file() {
            return Ok(None);
        }
        let text = std::fs::read_to_string(&path)
            .map_err(|e| format!("{}: cannot read: {e}", path.display()))?;
        serde_json::from_str(&text)
            .map(Some)
            .map_err(|e| format!("{}: {e}", path.display()))
    }
}

/// A workload as its name in `run.json`.
mod workload_name {
    use faultline_workloads::Workload;
    use serde::{Deserialize, Deserializer, Serializer};

    pub(super) fn serialize<S: Serializer>(w: &Workload, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(w.name())
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Workload, D::Error> {
        let name = String::deserialize(d)?;
        name.parse().map_err(serde::de::Error::custom)
    }
}
