//! The command line: every command and flag, defined once with its documentation. Parsing only
//! validates; commands resolve what they need from these values.

use std::path::PathBuf;
use std::time::Duration;

use clap::{Parser, Subcommand, ValueEnum};
use faultline_checker::format::Format;
use faultline_checker::{ModelKind, Semantics};

/// faultline tells you whether a distributed system keeps the consistency it promises.
///
/// It runs a workload against a cluster (a bundled reference system or your server's URL)
/// while a nemesis breaks it on purpose, records every operation, and checks the history for
/// linearizability, causal consistency, session guarantees or lost writes. The verdict is
/// PASS, FAIL with an explanation, or UNKNOWN with the reason.
#[derive(Debug, Parser)]
#[command(name = "faultline", version, propagate_version = true)]
pub(crate) struct Cli {
    #[command(subcommand)]
    pub(crate) command: Command,
}

#[derive(Debug, Subcommand)]
pub(crate) enum Command {
    Run(RunArgs),
    Compare(CompareArgs),
    Check(CheckArgs),
    /// Start and manage a local cluster of a bundled reference system.
    #[command(subcommand)]
    Cluster(ClusterCommand),
    Report(ReportArgs),
    Hunt(HuntArgs),
    /// Run one node of a bundled cluster (started by `faultline cluster up`).
    #[command(hide = true)]
    Node(NodeArgs),
}

/// Run a workload against a target, record the history, check it and report.
///
/// With no options this is the demo: a five-node bundled quorum cluster (n=3 r=2 w=2, last
/// writer wins), the cas workload from 8 clients at 500 ops/s for 20 seconds under network
/// partitions and clock skew, then the verdict: R+W>N alone is not linearizability.
///
/// The nemesis alternates a fault and a heal at random gaps (--nemesis-interval), every choice
/// from the seed; each is an event in the history and a line on the terminal. At the end every
/// fault is healed before the final reads, and the stats are split into healthy periods and
/// periods under each fault kind: availability under partition, measured. Availability is the
/// share of operations a working system answered (ok, or a cas told its comparison failed).
///
/// Every run writes results/<utc>-<target>-<workload>/ (run.json, history.jsonl, verdict.json,
/// junit.xml; saga.json for the checkout workload; raft-notes/ for bundled:raft, whose nodes
/// note who led each term and what they applied, judged by the raft-safety checker) and points
/// results/latest at it as soon as the run starts; `faultline check results/latest` re-checks
/// it, even a run that was killed.
///
/// Exit codes:
///   0  every verdict PASS
///   1  some verdict FAIL
///   3  some verdict UNKNOWN and none FAIL
///   4  the harness or the target could not run (unreachable target, bad settings, I/O)
///   130 interrupted by Ctrl-C (after stopping every node and flushing the history)
///   2  bad usage
///
/// Examples:
///   faultline run
///   faultline run --workload register --set n=3,r=1,w=1 --time-limit 10s
///   faultline run --workload register --set n=3,w=1,r=1 --nemesis partition --time-limit 15s
///   faultline run --set mode=abd --workload register --nemesis partition,kill,pause
///   faultline run --target http://127.0.0.1:8001,127.0.0.1:8002 --workload set --ops 2000
///   faultline run --target bundled:raft --workload cas --nemesis partition,kill,pause
///   faultline run --target bundled:raft --nodes 3 --rate 5 --time-limit 60s \
///       --set bug=no-term-check,election-ms=100,heartbeat-ms=20 --nemesis crash --crash-all \
///       --nemesis-gap 0s --crash-points persist:Entries@0.7 --crash-down 1s --nemesis-interval 1s
///   faultline run --target bundled:saga --workload checkout --nemesis kill,partition
///   faultline run --runtime sim --target bundled:raft --seed 7 --check-determinism
///   faultline run --runtime sim --target bundled:quorum --set n=3,r=1,w=1 --workload register \
///       --schedule results/latest/schedule-shrunk.json --seed 1
///   faultline run --target local:etcd --nodes 3 --nemesis partition,kill,pause --time-limit 30s
///   faultline run --target local:etcd --nodes 3 --set serializable=true --nemesis partition
///   faultline run --target etcd:// --cluster cluster.toml --nemesis partition,kill,pause
///   faultline run --target 'maelstrom:python3 examples/maelstrom/broadcast_gossip.py' \
///       --workload broadcast --nodes 5 --rate 20 --nemesis partition,kill
///   faultline run --target etcd://10.0.0.1:2379,10.0.0.2:2379,10.0.0.3:2379 \
///       --nemesis kill --nemesis-cmd kill='ssh ${FAULTLINE_TARGET_HOSTS%:*} pkill -9 etcd' \
///       --nemesis-cmd restart='ssh ${FAULTLINE_TARGET_HOSTS%:*} systemctl start etcd'
#[derive(Debug, clap::Args)]
#[command(verbatim_doc_comment)]
pub(crate) struct RunArgs {
    /// What to test: bundled:quorum, bundled:raft, bundled:saga or bundled:twopc (started and
    /// stopped by faultline; the last two take --workload checkout);
    /// local:etcd (a real etcd cluster faultline starts: in network namespaces as root);
    /// etcd://host:port[,host:port...] for an etcd cluster you run;
    /// http://host:port[,host:port...] for any server speaking the faultline KV protocol;
    /// local:postgres or local:mariadb (a real database faultline starts: --set
    /// isolation=read-committed|repeatable-read|serializable; they take list-append and
    /// rw-register); postgres://user:pass@host:port/db or mysql://... for a database you run;
    /// 'exec:COMMAND ARGS...' for your own client program in any language, one per client:
    /// it prints {"type":"hello","ops":["read","write",...]}, then answers each operation line
    /// {"id":7,"f":"read","key":"k1","value":null,"node":"n1"} with {"id":7,"type":"ok",
    /// "value":3} (or "fail"/"info" with "error"); --set name=value reaches it as
    /// FAULTLINE_SET_NAME, --nodes-addr as FAULTLINE_HOSTS (see the README's "exec:" section);
    /// 'maelstrom:COMMAND ARGS...' for Maelstrom-protocol node binaries (--nodes of them),
    /// faultline their network and their services (lin-kv, seq-kv, lww-kv, lin-tso): --set
    /// latency-ms=N,jitter-ms=N,topology=grid|line|total|tree2|tree3|tree4; workloads echo,
    /// unique-ids, broadcast, g-set, g-counter, pn-counter, lin-kv, txn-list-append,
    /// txn-rw-register; faults partition (one-way too), packet, kill (a fresh start and init:
    /// memory lost), pause.
    #[arg(long, default_value = "bundled:quorum", env = "FAULTLINE_TARGET")]
    pub(crate) target: String,

    /// Settings of the target as key=value, comma-separated; repeatable (see `faultline
    /// cluster up --help`; etcd targets take serializable=true for etcd's stale-able reads).
    #[arg(long = "set", value_name = "KEY=VALUE,...", env = "FAULTLINE_SET")]
    pub(crate) settings: Vec<String>,

    #[command(flatten)]
    pub(crate) options: RunOptions,

    /// How to print the result: tables, or verdict.json on stdout.
    #[arg(long, value_enum, default_value_t = OutputFormat::Table, env = "FAULTLINE_FORMAT")]
    pub(crate) format: OutputFormat,
}

/// The options of a run that `faultline run` and `faultline compare` share.
#[derive(Debug, Clone, clap::Args)]
pub(crate) struct RunOptions {
    /// The workload: register (read/write), cas (read/write/cas), set (adds, final reads),
    /// causal (sessions writing unique values and reading across keys), checkout (orders on
    /// bundled:saga, retried with idempotency keys, judged by the saga checker), or
    /// list-append and rw-register (transactions, judged by the transactional checker at
    /// --consistency: on bundled:raft, bundled:quorum, etcd, PostgreSQL and MariaDB);
    /// for maelstrom: targets also Maelstrom's echo, unique-ids, broadcast and g-set (every
    /// acknowledged element in every node's final read), g-counter and pn-counter (final
    /// reads within the adds' bounds), and its names lin-kv (= cas), txn-list-append and
    /// txn-rw-register.
    #[arg(long, default_value = "cas", env = "FAULTLINE_WORKLOAD", value_parser = parse_workload)]
    pub(crate) workload: faultline_workloads::Workload,

    /// maelstrom: broadcast: the topology sent to the nodes — grid (Maelstrom's default),
    /// line, total, tree2, tree3 or tree4 (the same as --set topology=…).
    #[arg(long, value_name = "SHAPE", env = "FAULTLINE_TOPOLOGY", value_parser = parse_topology)]
    pub(crate) topology: Option<faultline_targets::maelstrom::topology::Topology>,

    /// Nodes of a cluster faultline starts (bundled, local:etcd, maelstrom:).
    #[arg(long, default_value_t = 5, env = "FAULTLINE_NODES")]
    pub(crate) nodes: u32,

    /// Concurrent clients; each is bound to one node, round-robin.
    #[arg(long, default_value_t = 8, env = "FAULTLINE_CLIENTS")]
    pub(crate) clients: usize,

    /// Operations per second over all clients; 0 means as fast as possible.
    #[arg(long, default_value_t = 500.0, env = "FAULTLINE_RATE")]
    pub(crate) rate: f64,

    /// How long to issue operations (e.g. 20s, 2m).
    #[arg(long, default_value = "20s", env = "FAULTLINE_TIME_LIMIT", value_parser = parse_duration)]
    pub(crate) time_limit: Duration,

    /// Stop after this many operations (whichever of this and --time-limit comes first).
    #[arg(long, env = "FAULTLINE_OPS")]
    pub(crate) ops: Option<u64>,

    /// An operation without an answer after this long completes info.
    #[arg(long, default_value = "2s", env = "FAULTLINE_OP_TIMEOUT", value_parser = parse_duration)]
    pub(crate) op_timeout: Duration,

    /// Checkout workload: attempts after the first for an order whose outcome is unknown
    /// (timeout, 5xx), with the same order id and Idempotency-Key.
    #[arg(long, default_value_t = 3, env = "FAULTLINE_RETRIES")]
    pub(crate) retries: u32,

    /// Checkout workload: how long to wait after the faults are healed before reading every
    /// order's status and every service's state; Maelstrom's broadcast, g-set and counters:
    /// before the final read through every node.
    #[arg(long, default_value = "3s", env = "FAULTLINE_QUIET", value_parser = parse_duration)]
    pub(crate) quiet: Duration,

    /// Keys for the register, cas and causal workloads.
    #[arg(long, default_value_t = 5, env = "FAULTLINE_KEYS")]
    pub(crate) keys: usize,

    /// list-append and rw-register: micro-operations per transaction, N or MIN..MAX.
    #[arg(long, default_value = "1..4", env = "FAULTLINE_TXN_LEN", value_parser = parse_txn_len)]
    pub(crate) txn_len: (usize, usize),

    /// list-append and rw-register: writes after which a key retires and a fresh key takes its
    /// place (keeps reads short).
    #[arg(long, default_value_t = 256, env = "FAULTLINE_MAX_WRITES_PER_KEY")]
    pub(crate) max_writes_per_key: u64,

    /// list-append and rw-register: the isolation level the verdict is for (default
    /// strict-serializable); the report also lists every model the history is not.
    #[arg(long, value_name = "MODEL", env = "FAULTLINE_CONSISTENCY", value_parser = parse_txn_model)]
    pub(crate) consistency: Option<faultline_checker::txn::Model>,

    /// rw-register: what the checker may assume of each key (wfr-keys, sequential-keys,
    /// linearizable-keys), as `faultline check --assume`, or `none`. Default on a SQL database:
    /// wfr-keys (its row locks put a transaction's write after the version it read, as Jepsen's
    /// SQL tests assume); elsewhere nothing.
    #[arg(long = "assume", value_name = "ASSUMPTIONS", value_delimiter = ',', env = "FAULTLINE_RUN_ASSUME", value_parser = parse_run_assumption)]
    pub(crate) assume: Vec<RunAssumption>,

    /// Causal workload: each session talks to one node (otherwise every operation goes to a
    /// random node). Clients of the other workloads always talk to one node each.
    #[arg(long, env = "FAULTLINE_STICKY")]
    pub(crate) sticky: bool,

    /// Seed of every random choice (printed and stored in run.json); random when absent.
    #[arg(long, env = "FAULTLINE_SEED")]
    pub(crate) seed: Option<u64>,

    /// Where run directories go.
    #[arg(long, default_value = "results", env = "FAULTLINE_OUT")]
    pub(crate) out: PathBuf,

    /// Faults to inject: a comma-separated mix of partition, clock, kill, pause, packet,
    /// crash, or none. crash (bundled targets) makes chosen nodes crash right after a log
    /// write or a message they send, and restart from their log (see --crash-points). Default: partition,clock for bundled targets; partition,kill,pause for local:etcd
    /// (kill,pause without root); none for URL targets, where packet faults go through
    /// faultline's proxies and other kinds need --nemesis-cmd.
    #[arg(long, value_name = "KINDS", env = "FAULTLINE_NEMESIS")]
    pub(crate) nemesis: Option<String>,

    /// A shell command that applies or heals a fault on a cluster faultline does not run:
    /// KEY='command' with KEY a fault kind (partition, kill, pause, clock, packet) or its heal
    /// (heal-KIND, restart for kill, resume for pause, or heal for any). Repeatable. Each runs
    /// under `sh -c` with FAULTLINE_FAULT, FAULTLINE_ACTION, FAULTLINE_NODES (n1 n2 ...),
    /// FAULTLINE_HOSTS (host:port, same order), FAULTLINE_TARGETS and FAULTLINE_TARGET_HOSTS
    /// (the nodes it acts on), FAULTLINE_GROUPS (n1,n2 n3,n4,n5), FAULTLINE_CUTS (n1>n3 ...),
    /// FAULTLINE_OFFSETS_MS, FAULTLINE_DELAY_MS, FAULTLINE_JITTER_MS, FAULTLINE_LOSS,
    /// FAULTLINE_DUPLICATE and FAULTLINE_FAULT_JSON. A command that fails or times out is an
    /// error in the history and on the terminal, and the run exits 4.
    #[arg(long = "nemesis-cmd", value_name = "KEY=COMMAND")]
    pub(crate) nemesis_cmd: Vec<String>,

    /// How long one --nemesis-cmd command may run before it is killed (an error).
    #[arg(long, default_value = "60s", env = "FAULTLINE_NEMESIS_CMD_TIMEOUT", value_parser = parse_duration)]
    pub(crate) nemesis_cmd_timeout: Duration,

    /// The etcd binary for local:etcd (default: etcd on PATH).
    #[arg(long, value_name = "PATH", env = "FAULTLINE_ETCD_BIN")]
    pub(crate) etcd_bin: Option<PathBuf>,

    /// exec: targets: the cluster's nodes, host:port,... — passed to the client programs
    /// (FAULTLINE_HOSTS), and where faults go: packet faults through faultline's proxies (the
    /// programs are then given the proxies' addresses), other kinds through --nemesis-cmd.
    #[arg(
        long,
        value_name = "HOST:PORT,...",
        value_delimiter = ',',
        env = "FAULTLINE_NODES_ADDR"
    )]
    pub(crate) nodes_addr: Vec<String>,

    /// A cluster on other machines, reached over ssh: the cluster file (see `faultline
    /// cluster check --help` and the README). Its `setup` and `start` commands run on every
    /// node first and `stop` at the end; faults go through nftables and its lifecycle
    /// commands over ssh; `etcd://`, `http://` and `exec:` targets take their addresses from
    /// it when given none (`--target etcd://`).
    #[arg(long, value_name = "FILE", env = "FAULTLINE_CLUSTER")]
    pub(crate) cluster: Option<PathBuf>,

    /// The directory of PostgreSQL's server binaries (initdb, postgres) for local:postgres
    /// (default: the newest /usr/lib/postgresql/<v>/bin, else initdb on PATH).
    #[arg(long, value_name = "DIR", env = "FAULTLINE_PG_BIN")]
    pub(crate) pg_bin: Option<PathBuf>,

    /// Mean time between nemesis actions: each fault starts after a random wait in
    /// [0, 2×interval) and is healed after another.
    #[arg(long, default_value = "3s", env = "FAULTLINE_NEMESIS_INTERVAL", value_parser = parse_duration)]
    pub(crate) nemesis_interval: Duration,

    /// The longest quiet time between a heal and the next fault: waits are drawn in [0, gap)
    /// (default: 2 × --nemesis-interval). 0s puts faults back to back — a fault storm, as
    /// crash points that stay armed all run long.
    #[arg(long, value_name = "DURATION", env = "FAULTLINE_NEMESIS_GAP", value_parser = parse_duration)]
    pub(crate) nemesis_gap: Option<Duration>,

    /// Partition shapes to choose from: halves, random-halves, one, minority, majority,
    /// majorities-ring, bridge, leader (default: all; leader only for bundled:raft, which
    /// names its leader; halves-like shapes are sometimes one-way).
    #[arg(long, value_name = "SHAPES", value_delimiter = ',', env = "FAULTLINE_PARTITION_SHAPES", value_parser = parse_shape)]
    pub(crate) partition_shapes: Vec<faultline_nemesis::Shape>,

    /// Where crash faults strike: persist (right after a record is synced to the node's
    /// log), persist:KIND (after records of that kind, as persist:Entries), send (right after
    /// it sends any message), or send:KIND (after that message, as send:VoteGranted; several
    /// kinds as send:VoteGranted|Append). Each crash fault picks one entry of the list, a
    /// chance per pass (0.2 to 1) and a down time; an entry can arm several points at once,
    /// each with its own chance (@) and down time (~):
    /// send:VoteGranted@1~50ms+send:Append@0.01~1s. Default: persist,send. A KIND the
    /// target's nodes never send or log is refused, with the list of its kinds.
    #[arg(long, value_name = "POINTS", value_delimiter = ',', env = "FAULTLINE_CRASH_POINTS", value_parser = parse_crash_point)]
    pub(crate) crash_points: Vec<faultline_targets::runtime::CrashPlan>,

    /// The longest a crash fault keeps a crashed node down before it restarts from its log
    /// (each crash fault draws its down time up to this).
    #[arg(long, default_value = "1s", env = "FAULTLINE_CRASH_DOWN", value_parser = parse_duration)]
    pub(crate) crash_down: Duration,

    /// Crash faults arm every node (by default each arms a random number of them).
    #[arg(long, env = "FAULTLINE_CRASH_ALL")]
    pub(crate) crash_all: bool,

    /// A bearer token sent with every request to an http:// target.
    #[arg(long, env = "FAULTLINE_AUTH_TOKEN", hide_env_values = true)]
    pub(crate) auth_token: Option<String>,

    /// Where a bundled system runs: process (each node an OS process on loopback, real
    /// clocks) or sim (every node in this process on virtual time, a seeded network: a run
    /// takes milliseconds, and a seed replays it byte for byte). sim takes bundled targets.
    #[arg(long, value_enum, default_value_t = Runtime::Process, env = "FAULTLINE_RUNTIME")]
    pub(crate) runtime: Runtime,

    /// Replay the faults of a schedule file (as `faultline hunt` writes one) instead of
    /// drawing them from the seed; on either runtime (a schedule that fails in the simulator
    /// may pass on real processes, whose timing is not the simulator's).
    #[arg(long, value_name = "FILE", env = "FAULTLINE_SCHEDULE")]
    pub(crate) schedule: Option<PathBuf>,

    /// With --runtime sim: run the seed twice and compare every simulated event and the
    /// history's bytes (the determinism guard); exit 4 naming the first difference.
    #[arg(long, env = "FAULTLINE_CHECK_DETERMINISM")]
    pub(crate) check_determinism: bool,
}

/// Where a bundled system's nodes run.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum Runtime {
    /// One OS process per node, real sockets and clocks.
    Process,
    /// Every node in one thread, on virtual time.
    Sim,
}

impl Runtime {
    /// Its name on the command line and in `run.json`.
    pub(crate) fn name(self) -> &'static str {
        match self {
            Runtime::Process => "process",
            Runtime::Sim => "sim",
        }
    }
}

/// Hunt for a failing seed: many simulated runs of a bundled system on every core, then the
/// failure shrunk to the fewest faults that still fail.
///
/// Each seed is a whole `faultline run --runtime sim` (workload, faults, checkers) of
/// --run-time virtual seconds, taking milliseconds of wall time. With --swarm each seed also
/// draws its own fault mix, rate, clients, cluster size and fault pacing (swarm testing: a
/// narrow mix finds what a broad one dilutes). At the first FAIL (or the lowest failing seed
/// among those running), the hunt stops, replays the seed to confirm the same verdict and the
/// same history bytes, and shrinks its fault schedule: faults removed (delta debugging), holds
/// shortened, the run cut short, as long as the same checker still fails. The shrunk schedule
/// is written as a file `faultline run --schedule` replays, on the simulator or on processes
/// (where it may pass: real timing is not the simulator's).
///
/// Exit codes: 0 no seed failed, 1 a seed failed (printed with the command that replays it),
/// 4 a run could not be made, 2 bad usage, 130 interrupted before a seed failed (Ctrl-C stops
/// after the runs in progress, or stops shrinking where it is; a second Ctrl-C quits at once).
///
/// Examples:
///   faultline hunt --target bundled:raft --set bug=no-read-index --workload cas
///   faultline hunt --target bundled:quorum --set n=3,r=1,w=1 --workload register --nemesis partition
///   faultline hunt --target bundled:raft --swarm --seeds 1..10000 --time-limit 10m
///   faultline hunt --target bundled:raft --set bug=forget-vote,link-ms=100 --nemesis crash,partition \
///       -- --crash-points 'send:VoteGranted@1~50ms' --partition-shapes leader --crash-all
#[derive(Debug, clap::Args)]
#[command(verbatim_doc_comment)]
pub(crate) struct HuntArgs {
    /// The bundled system: bundled:quorum, bundled:raft, bundled:saga or bundled:twopc.
    #[arg(long, default_value = "bundled:quorum", env = "FAULTLINE_TARGET")]
    pub(crate) target: String,

    /// Settings of the system as key=value, comma-separated; repeatable (`bug=...` plants a
    /// bug; see `faultline cluster up --help`).
    #[arg(long = "set", value_name = "KEY=VALUE,...")]
    pub(crate) settings: Vec<String>,

    /// The workload (default: checkout for bundled:saga and bundled:twopc, cas otherwise).
    #[arg(long, value_parser = parse_workload)]
    pub(crate) workload: Option<faultline_workloads::Workload>,

    /// The faults each run may inject (default: every kind the system takes); with --swarm,
    /// each seed draws a mix of these.
    #[arg(long, value_name = "KINDS")]
    pub(crate) nemesis: Option<String>,

    /// The seeds to try, as FIRST..LAST (inclusive).
    #[arg(long, default_value = "1..100000", value_parser = parse_seeds)]
    pub(crate) seeds: (u64, u64),

    /// Stop hunting after this much wall time (shrinking has its own --shrink-time).
    #[arg(long, default_value = "60s", value_parser = parse_duration)]
    pub(crate) time_limit: Duration,

    /// Each seed also draws its fault mix, rate, clients, cluster size and fault pacing.
    #[arg(long)]
    pub(crate) swarm: bool,

    /// The virtual length of each run.
    #[arg(long, default_value = "10s", value_parser = parse_duration)]
    pub(crate) run_time: Duration,

    /// Nodes per run (systems with a fixed size ignore it; --swarm draws 3 or 5).
    #[arg(long, default_value_t = 5)]
    pub(crate) nodes: u32,

    /// Concurrent clients per run.
    #[arg(long, default_value_t = 5)]
    pub(crate) clients: usize,

    /// Operations per second per run (virtual).
    #[arg(long, default_value_t = 100.0)]
    pub(crate) rate: f64,

    /// Runs at once (default: one per core).
    #[arg(long)]
    pub(crate) jobs: Option<usize>,

    /// The longest shrinking may take.
    #[arg(long, default_value = "60s", value_parser = parse_duration)]
    pub(crate) shrink_time: Duration,

    /// Report the failing seed without shrinking its schedule.
    #[arg(long)]
    pub(crate) no_shrink: bool,

    /// Where the failing seed's run directory and the shrunk schedule are written.
    #[arg(long, default_value = "results", env = "FAULTLINE_OUT")]
    pub(crate) out: PathBuf,

    /// Options passed to every run as they are (after `--`), such as --crash-points,
    /// --partition-shapes or --op-timeout.
    #[arg(last = true, value_name = "RUN OPTIONS")]
    pub(crate) run_options: Vec<String>,
}

/// Parses `FIRST..LAST`.
fn parse_seeds(s: &str) -> Result<(u64, u64), String> {
    let parsed = s
        .split_once("..")
        .and_then(|(a, b)| Some((a.trim().parse().ok()?, b.trim().parse().ok()?)));
    match parsed {
        Some((first, last)) if first <= last => Ok((first, last)),
        _ => Err(format!(
            "`{s}` is not a seed range; write FIRST..LAST, as 1..100000"
        )),
    }
}

/// Run the same workload, faults and seed against several settings and compare them.
///
/// Every cell (each --target, with each --set) runs the same workload with the same seed, so
/// the nemesis applies the same faults at the same times and rows differ only by their
/// setting. Each run lands in its own directory under results/<utc>-compare-<workload>/, next to
/// compare.json, compare.md (the table as Markdown) and a junit.xml over all cells.
///
/// A target may carry its own settings after `?`; a --set applies to every target. Every
/// setting is checked before anything runs.
///
/// Exit codes: 0 every cell ran (compare reports, it does not judge; see --fail-on-violation),
/// 1 some cell FAILed with --fail-on-violation, 4 a cell could not run, 130 interrupted.
///
/// Examples:
///   faultline compare --set n=3,w=1,r=1 --set n=3,w=2,r=2 --time-limit 10s
///   faultline compare --workload register --nemesis partition,clock --set n=3,w=1,r=1 \
///       --set n=3,w=2,r=2 --set n=3,w=3,r=1 --set n=3,w=2,r=2,mode=abd --repeat 5 --time-limit 15s
///   faultline compare --target 'bundled:quorum?n=3,w=1,r=1' --target 'bundled:quorum?mode=abd'
#[derive(Debug, clap::Args)]
#[command(verbatim_doc_comment)]
pub(crate) struct CompareArgs {
    /// A target, optionally with its own settings after `?`; repeatable.
    #[arg(long = "target", default_value = "bundled:quorum")]
    pub(crate) targets: Vec<String>,

    /// One setting to compare (key=value, comma-separated); repeat for more rows. Each applies
    /// to every target.
    #[arg(long = "set", value_name = "KEY=VALUE,...")]
    pub(crate) sets: Vec<String>,

    /// Run each cell this many times, with seeds seed..seed+K-1, and count the verdicts.
    #[arg(long, default_value_t = 1, env = "FAULTLINE_REPEAT")]
    pub(crate) repeat: u32,

    /// Exit 1 if any run of any cell FAILs (for CI).
    #[arg(long)]
    pub(crate) fail_on_violation: bool,

    #[command(flatten)]
    pub(crate) options: RunOptions,
}

fn parse_crash_point(s: &str) -> Result<faultline_targets::runtime::CrashPlan, String> {
    faultline_targets::runtime::CrashPlan::parse(s)
}

fn parse_shape(s: &str) -> Result<faultline_nemesis::Shape, String> {
    s.parse()
}

fn parse_topology(s: &str) -> Result<faultline_targets::maelstrom::topology::Topology, String> {
    s.parse()
}

fn parse_workload(s: &str) -> Result<faultline_workloads::Workload, String> {
    s.parse()
}

/// What `faultline cluster` does.
#[derive(Debug, Subcommand)]
pub(crate) enum ClusterCommand {
    Up(ClusterUpArgs),
    Check(ClusterCheckArgs),
}

/// Check that every node of a cluster file can be reached and broken: the first thing to run.
///
/// For each node of the cluster file: ssh reaches it and runs a harmless command, `nft` is
/// there (partitions and packet faults are nftables rules), and the program each lifecycle
/// command starts with exists. Prints what is missing per node; exit 0 when nothing is, 4
/// otherwise. The file's shape is in the README ("Clusters on other machines").
///
/// Examples:
///   faultline cluster check --cluster cluster.toml
#[derive(Debug, clap::Args)]
#[command(verbatim_doc_comment)]
pub(crate) struct ClusterCheckArgs {
    /// The cluster file (TOML: [ssh], [[nodes]] with name, host and address, [commands]).
    #[arg(long, value_name = "FILE", env = "FAULTLINE_CLUSTER")]
    pub(crate) cluster: PathBuf,
}

/// Start a local cluster of a bundled reference system (or real etcd) and keep it running.
///
/// Starts every node as a child process on free loopback ports, waits until each answers
/// GET /health, prints the nodes' URLs and an example request, and stays in the foreground.
/// With --system etcd it starts real etcd members (found on PATH or --etcd-bin), each in its
/// own network namespace when run as root, and prints their client URLs.
/// Ctrl-C or SIGTERM stops every node. Nodes speak the faultline KV protocol (GET/PUT /kv/KEY,
/// POST /kv/KEY/cas) and take faults through POST /admin/faults; GET /admin/state shows the
/// ring, the settings, the faults and message counters.
///
/// Settings of the quorum system (--set key=value,...):
///   n            replicas per key (1..=nodes, default 3)
///   r, w         replies a read waits for, acks a write waits for (1..=n, default 2)
///   vnodes       virtual nodes per node on the ring (1..=1024, default 64)
///   resolution   lww (last writer wins by the coordinator's clock) | vclock (siblings)
///   read-repair  off | async | blocking
///   sloppy       true | false (writes go to fallback nodes with hints when owners are silent)
///   mode         dynamo | abd (multi-writer ABD: linearizable reads and writes when r+w>n)
///   timeout-ms   how long a coordinator waits for a quorum (default 1000)
/// cas is read-compare-write through the coordinator, not atomic.
///
/// Settings of the raft system:
///   election-ms   shortest election timeout; each is random in [e, 2e) (default 300)
///   heartbeat-ms  leader heartbeat interval (default 50)
///   timeout-ms    how long a request may wait for commit before a 504 (default 1000)
///   pre-vote      true | false: ask for pre-votes before standing, and grant no votes while
///                 a leader is heard from (leader stickiness) (default false, as in the paper)
///   bug           a planted bug: stale-read | no-read-index | forget-vote | early-commit |
///                 no-term-check (default: none)
/// Raft reads go through ReadIndex; followers forward requests to the leader; cas is atomic.
///
/// Settings of the checkout systems (--system saga or twopc; always four nodes):
///   fail.inventory, fail.payment, fail.shipping  share of steps declined (default 0)
///   skus, stock        SKUs sku-1.. and the stock of each (default 5, 5000)
///   accounts, balance  accounts acct-1.. and the balance of each (default 10, 50000)
///   retry-ms      how often an unanswered step or decision is sent again (default 200)
///   timeout-ms    how long POST /orders waits before a 504; twopc: how long votes may take
///   bug           saga: no-idempotency | no-compensation | volatile-log;
///                 twopc: no-idempotency | no-decision-log
///
/// Settings of etcd (--system etcd):
///   election-ms   etcd's --election-timeout (default 500)
///   heartbeat-ms  etcd's --heartbeat-interval (default 50)
///   network       auto | netns | loopback (default auto: a namespace per member as root)
///
/// Examples:
///   faultline cluster up
///   faultline cluster up --system raft --set bug=no-read-index
///   faultline cluster up --nodes 5 --set n=3,r=1,w=1
///   faultline cluster up --set resolution=vclock,sloppy=true --data-dir ./cluster-data
///   faultline cluster up --system saga --set fail.payment=0.1
///   faultline cluster up --system etcd --nodes 3
#[derive(Debug, clap::Args)]
#[command(verbatim_doc_comment)]
pub(crate) struct ClusterUpArgs {
    /// The system to run: quorum, raft, saga or twopc (bundled), or etcd (real etcd members).
    #[arg(long, default_value = "quorum", env = "FAULTLINE_SYSTEM")]
    pub(crate) system: String,

    /// The etcd binary for --system etcd (default: etcd on PATH).
    #[arg(long, value_name = "PATH", env = "FAULTLINE_ETCD_BIN")]
    pub(crate) etcd_bin: Option<PathBuf>,

    /// How many nodes.
    #[arg(long, default_value_t = 5, env = "FAULTLINE_NODES")]
    pub(crate) nodes: u32,

    /// System settings as key=value, comma-separated; repeatable (see above).
    #[arg(long = "set", value_name = "KEY=VALUE,...", env = "FAULTLINE_SET")]
    pub(crate) settings: Vec<String>,

    /// Keep node data and logs here (default: a temporary directory removed at exit).
    #[arg(long, value_name = "DIR", env = "FAULTLINE_DATA_DIR")]
    pub(crate) data_dir: Option<PathBuf>,

    /// Seed of the nodes' fault layers (random loss, duplication, jitter).
    #[arg(long, default_value_t = 0, env = "FAULTLINE_SEED")]
    pub(crate) seed: u64,
}

/// Run one node of a bundled cluster.
#[derive(Debug, clap::Args)]
pub(crate) struct NodeArgs {
    /// The reference system.
    #[arg(long, default_value = "quorum")]
    pub(crate) system: String,
    /// This node's id (0-based; its name is n<id+1>).
    #[arg(long)]
    pub(crate) id: u32,
    /// The client HTTP address.
    #[arg(long)]
    pub(crate) http: std::net::SocketAddr,
    /// Every node's peer address, in id order, comma-separated.
    #[arg(long, value_delimiter = ',', required = true)]
    pub(crate) peers: Vec<std::net::SocketAddr>,
    /// The data directory.
    #[arg(long)]
    pub(crate) data_dir: PathBuf,
    /// System settings as key=value, comma-separated; repeatable.
    #[arg(long = "set")]
    pub(crate) settings: Vec<String>,
    /// Seed of the fault layer.
    #[arg(long, default_value_t = 0)]
    pub(crate) seed: u64,
    /// Stop when the parent process dies.
    #[arg(long)]
    pub(crate) exit_with_parent: bool,
}

/// (Re)build the HTML reports of run and comparison directories.
///
/// For a run directory (history.jsonl, verdict.json, run.json): report.html beside them — the
/// verdicts, the command that replays the run, latency and throughput over time with the
/// fault windows shaded, the per-fault-window table, and each FAIL drawn (for
/// linearizability, the failing key's operations per process with the longest linearizable
/// prefix and the operation that cannot be placed; for transactions, the cycle). For a
/// comparison directory (compare.json): compare.html, and each of its runs' reports. One
/// self-contained file each: it fetches nothing and opens anywhere, offline. `run` and
/// `compare` write them at the end; this rebuilds them.
///
/// Examples:
///   faultline report results/latest
///   faultline report results/*-compare-register
#[derive(Debug, clap::Args)]
#[command(verbatim_doc_comment)]
pub(crate) struct ReportArgs {
    /// Run or comparison directories.
    #[arg(required = true, value_name = "DIR")]
    pub(crate) dirs: Vec<PathBuf>,
}

/// Check history files for linearizability or causal consistency.
///
/// Reads each FILE (faultline JSONL, a Jepsen log, or Jepsen EDN — a vector or list of op maps,
/// or one per line; detected from the content) or run directory (judged by the checkers its
/// run.json names), checks it and prints one row per file, then the explanation of each FAIL:
/// the operation that could not be linearized, the longest linearizable prefix found, and the
/// states the model could be in just before it.
///
/// Exit codes:
///   0  every file PASS
///   1  some file FAIL
///   3  some file UNKNOWN (timeout, memory bound) and none FAIL
///   4  some file could not be read or does not fit the model (wins over the verdicts)
///   2  bad usage
///
/// Examples:
///   faultline check history.jsonl
///   faultline check jepsen/*.log --model cas-register
///   faultline check history.edn --semantics knossos --timeout 30s --format json
///   faultline check history.jsonl --html report.html
#[derive(Debug, clap::Args)]
#[command(verbatim_doc_comment)]
pub(crate) struct CheckArgs {
    /// History files (or run directories holding a history.jsonl).
    #[arg(required = true, value_name = "FILE")]
    pub(crate) files: Vec<PathBuf>,

    /// Also write the HTML report (latency, faults, and each FAIL drawn) to this file; with
    /// several files, one report each, named OUT-<file>.html.
    #[arg(long, value_name = "OUT.html")]
    pub(crate) html: Option<PathBuf>,

    /// The model to check against; inferred from the operations when absent.
    ///
    /// register: read, write. cas-register: read, write, cas ([expected, new]). kv: independent
    /// keys with read/get, write/put, cas and append on strings (an absent key reads as "").
    /// set: add, read (the whole set). queue: enqueue, dequeue (FIFO; null when empty).
    /// Every model is checked per key: keys are independent objects.
    /// list-append and rw-register are transactional: each operation is a transaction whose
    /// value is a list of micro-operations ([["append", k, v], ["r", k, null]], ["w", k, v]),
    /// judged for isolation anomalies (see --consistency). A history of transactions is
    /// recognised as one without --model.
    #[arg(long, value_name = "MODEL", env = "FAULTLINE_MODEL", value_parser = parse_model)]
    pub(crate) model: Option<CheckModel>,

    /// Every object's value before the first operation, as JSON.
    #[arg(long, value_name = "JSON", default_value = "null", env = "FAULTLINE_INITIAL", value_parser = parse_json)]
    pub(crate) initial: serde_json::Value,

    /// How to read reads of null and failed operations.
    ///
    /// strict (the default): a read of null means the key was absent, and a cas that failed
    /// with a mismatch is kept as an observation (the value was not the expected one); other
    /// fails are dropped. knossos: Knossos' conventions, to re-check old Jepsen histories and
    /// get Knossos' verdicts: a read that returned nil matches any value, and every fail is
    /// dropped, mismatched cas included. strict finds bugs that knossos hides: a read of nil
    /// that should have seen a value, a cas that failed although the value matched.
    #[arg(long, value_name = "SEMANTICS", default_value = "strict", env = "FAULTLINE_SEMANTICS", value_parser = parse_semantics)]
    pub(crate) semantics: Semantics,

    /// Give UNKNOWN for a file whose check takes longer than this (e.g. 500ms, 30s, 2m).
    #[arg(long, value_name = "DURATION", env = "FAULTLINE_TIMEOUT", value_parser = parse_duration)]
    pub(crate) timeout: Option<Duration>,

    /// Give UNKNOWN when a file's search caches need more memory than this (e.g. 512MiB, 4GiB).
    #[arg(long, value_name = "SIZE", default_value = "2GiB", env = "FAULTLINE_MAX_CACHE", value_parser = parse_size)]
    pub(crate) max_cache: u64,

    /// The history format: jsonl, jepsen-log or edn; detected from each file's content when
    /// absent.
    #[arg(long, value_name = "FORMAT", env = "FAULTLINE_INPUT_FORMAT", value_parser = parse_format)]
    pub(crate) input_format: Option<Format>,

    /// How to print the verdicts: a table with explanations, or one JSON document.
    #[arg(long, value_enum, default_value_t = OutputFormat::Table, env = "FAULTLINE_FORMAT")]
    pub(crate) format: OutputFormat,

    /// What to check: linearizable (the default for plain files), or causal, causal-memory,
    /// causal-convergence, session (the five session guarantees) or all (the three causal
    /// models and the session guarantees, one verdict each; the default for a causal run).
    /// The causal checkers need every (key, value) written at most once.
    ///
    /// For transactions, the isolation level the verdict is for (default
    /// strict-serializable): strict-serializable, strong-session-serializable, serializable,
    /// strong-snapshot-isolation, strong-session-snapshot-isolation, snapshot-isolation,
    /// repeatable-read, update-serializable, consistent-view, parallel-snapshot-isolation,
    /// prefix, causal-cerone, read-atomic, monotonic-atomic-view, read-committed,
    /// read-uncommitted. Whatever the level, the report lists every anomaly found and every
    /// model the history is not.
    #[arg(long, value_name = "MODEL", env = "FAULTLINE_CONSISTENCY", value_parser = parse_consistency)]
    pub(crate) consistency: Option<ConsistencyArg>,

    /// What rw-register inference may assume of each key, comma-separated, as Elle's flags:
    /// wfr-keys (a transaction that reads a key, then writes it, wrote the next version),
    /// sequential-keys (each process sees a key's versions in order), linearizable-keys
    /// (writes are ordered by real time). Without them only the initial nil is known to
    /// come first, and fewer anomalies can be seen — never more.
    #[arg(long, value_name = "ASSUMPTIONS", value_delimiter = ',', env = "FAULTLINE_ASSUME", value_parser = parse_assumption)]
    pub(crate) assume: Vec<faultline_checker::txn::Assumption>,
}

/// `--consistency`: a causal model (or linearizable), or a transactional isolation level.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) enum ConsistencyArg {
    /// Linearizable, or a causal model or the session guarantees.
    Causal(faultline_checker::causal::Consistency),
    /// A transactional model.
    Txn(faultline_checker::txn::Model),
}

fn parse_consistency(s: &str) -> Result<ConsistencyArg, String> {
    if let Ok(causal) = s.parse() {
        return Ok(ConsistencyArg::Causal(causal));
    }
    s.parse().map(ConsistencyArg::Txn).map_err(|_| {
        let txn: Vec<&str> = faultline_checker::txn::ALL_MODELS
            .iter()
            .map(|m| m.name())
            .collect();
        format!(
            "unknown consistency model `{s}`; expected linearizable, causal, causal-memory, \
             causal-convergence, session, all, or for transactions {}",
            txn.join(", ")
        )
    })
}

fn parse_txn_len(s: &str) -> Result<(usize, usize), String> {
    faultline_workloads::TxnShape::parse_len(s)
}

fn parse_txn_model(s: &str) -> Result<faultline_checker::txn::Model, String> {
    s.parse()
}

fn parse_assumption(s: &str) -> Result<faultline_checker::txn::Assumption, String> {
    s.parse()
}

/// `run --assume`: an assumption about each key, or `none` (not even the target's default).
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) enum RunAssumption {
    /// Assume nothing.
    Nothing,
    /// Assume this.
    Key(faultline_checker::txn::Assumption),
}

fn parse_run_assumption(s: &str) -> Result<RunAssumption, String> {
    if s == "none" {
        return Ok(RunAssumption::Nothing);
    }
    s.parse()
        .map(RunAssumption::Key)
        .map_err(|e: String| format!("{e}, or none"))
}

/// `--model`: a sequential model for linearizability, or a transactional data type.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) enum CheckModel {
    /// A model for the linearizability checker.
    Single(ModelKind),
    /// list-append or rw-register.
    Txn(faultline_checker::txn::TxnKind),
}

/// How verdicts are printed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub(crate) enum OutputFormat {
    /// A table, then the explanation of each FAIL.
    Table,
    /// One JSON document with every verdict.
    Json,
}

fn parse_model(s: &str) -> Result<CheckModel, String> {
    if let Ok(txn) = s.parse() {
        return Ok(CheckModel::Txn(txn));
    }
    s.parse()
        .map(CheckModel::Single)
        .map_err(|e: String| format!("{e}; or, for transactions, list-append or rw-register"))
}

fn parse_semantics(s: &str) -> Result<Semantics, String> {
    s.parse()
}

fn parse_format(s: &str) -> Result<Format, String> {
    s.parse()
}

fn parse_json(s: &str) -> Result<serde_json::Value, String> {
    serde_json::from_str(s).map_err(|e| format!("not JSON ({e}); write a string as '\"text\"'"))
}

fn parse_duration(s: &str) -> Result<Duration, String> {
    humantime::parse_duration(s)
        .map_err(|e| format!("{e}; write a duration such as 500ms, 30s or 2m"))
}

/// Parses a size in bytes: `1048576`, `512MiB`, `4GiB`, `64M`, `2G`, `100KB`.
fn parse_size(s: &str) -> Result<u64, String> {
    let s = s.trim();
    let split = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let (digits, unit) = s.split_at(split);
    let number: u64 = digits
        .parse()
        .map_err(|_| format!("`{s}` is not a size; write one such as 512MiB or 4GiB"))?;
    let scale: u64 = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "k" | "kb" | "kib" => 1 << 10,
        "m" | "mb" | "mib" => 1 << 20,
        "g" | "gb" | "gib" => 1 << 30,
        "t" | "tb" | "tib" => 1 << 40,
        other => {
            return Err(format!(
                "unknown size unit `{other}`; use B, KiB, MiB, GiB or TiB"
            ));
        }
    };
    number
        .checked_mul(scale)
        .ok_or_else(|| format!("`{s}` is too large"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn the_command_line_is_well_formed() {
        Cli::command().debug_assert();
    }

    #[test]
    fn sizes() {
        assert_eq!(parse_size("2GiB"), Ok(2 << 30));
        assert_eq!(parse_size("512M"), Ok(512 << 20));
        assert_eq!(parse_size("100"), Ok(100));
        assert!(parse_size("lots").is_err());
        assert!(parse_size("3 parsecs").is_err());
    }

    #[test]
    fn check_flags() {
        let cli = Cli::try_parse_from([
            "faultline",
            "check",
            "a.log",
            "--model",
            "cas-register",
            "--initial",
            "0",
            "--semantics",
            "knossos",
            "--timeout",
            "2s",
            "--input-format",
            "jepsen-log",
            "--format",
            "json",
        ])
        .unwrap();
        let Command::Check(args) = cli.command else {
            panic!("parsed as check")
        };
        assert_eq!(args.model, Some(CheckModel::Single(ModelKind::CasRegister)));
        assert_eq!(args.initial, serde_json::json!(0));
        assert_eq!(args.semantics, Semantics::Knossos);
        assert_eq!(args.timeout, Some(Duration::from_secs(2)));
        assert_eq!(args.input_format, Some(Format::JepsenLog));
        assert_eq!(args.format, OutputFormat::Json);
        assert_eq!(args.max_cache, 2 << 30);
        assert!(Cli::try_parse_from(["faultline", "check", "a", "--model", "bogus"]).is_err());
        assert!(Cli::try_parse_from(["faultline", "check", "a", "--initial", "{"]).is_err());
        assert!(Cli::try_parse_from(["faultline", "check"]).is_err());
    }
}
