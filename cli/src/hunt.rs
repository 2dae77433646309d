//! `faultline hunt`: simulated runs of many seeds on every core until one fails, then the
//! failure confirmed by a replay and shrunk ([`crate::shrink`]).
//!
//! Every run is a `faultline run --runtime sim` command line ([`RunCommand`]), parsed as the
//! user's would be: what the hunt prints as the replay command is exactly what it ran.

use std::path::Path;
use std::process::ExitCode;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use clap::Parser;
use faultline_checker::Validity;
use faultline_nemesis::Kind;
use faultline_results::RunDir;
use faultline_targets::systems::system_info;
use faultline_workloads::Workload;
use rand::seq::SliceRandom;
use rand::{RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;
use tokio::sync::watch;

use crate::args::{Cli, Command, HuntArgs};
use crate::plan::RunPlan;
use crate::run::{CANNOT_RUN, Finished, execute};

/// One simulated run, as the command line that makes it.
#[derive(Clone, Debug)]
pub(crate) struct RunCommand {
    /// `--target`: a bundled system.
    pub(crate) target: String,
    /// `--set`, each as given.
    pub(crate) settings: Vec<String>,
    /// `--workload`.
    pub(crate) workload: Workload,
    /// `--nodes`.
    pub(crate) nodes: u32,
    /// `--clients`.
    pub(crate) clients: usize,
    /// `--rate`.
    pub(crate) rate: f64,
    /// `--time-limit`: the run's virtual length.
    pub(crate) time_limit: Duration,
    /// The fault kinds, or `None` when a schedule file gives the faults.
    pub(crate) nemesis: Option<String>,
    /// `--nemesis-interval`, when chosen (by --swarm).
    pub(crate) nemesis_interval: Option<Duration>,
    /// `--schedule`: the faults to replay instead of the seed's.
    pub(crate) schedule: Option<std::path::PathBuf>,
    /// `--seed`.
    pub(crate) seed: u64,
    /// The user's own run options, passed as they are.
    pub(crate) extra: Vec<String>,
}

impl RunCommand {
    /// `faultline run --runtime sim ...`, word by word.
    pub(crate) fn argv(&self) -> Vec<String> {
        let mut argv: Vec<String> = ["faultline", "run", "--runtime", "sim", "--target"]
            .map(String::from)
            .to_vec();
        argv.push(self.target.clone());
        for set in &self.settings {
            argv.extend(["--set".into(), set.clone()]);
        }
        let duration = |d: Duration| humantime::format_duration(d).to_string();
        argv.extend([
            "--workload".into(),
            self.workload.name().into(),
            "--nodes".into(),
            self.nodes.to_string(),
            "--clients".into(),
            self.clients.to_string(),
            "--rate".into(),
            self.rate.to_string(),
            "--time-limit".into(),
            duration(self.time_limit),
        ]);
        if let Some(kinds) = &self.nemesis {
            argv.extend(["--nemesis".into(), kinds.clone()]);
        }
        if let Some(interval) = self.nemesis_interval {
            argv.extend(["--nemesis-interval".into(), duration(interval)]);
        }
        if let Some(file) = &self.schedule {
            argv.extend(["--schedule".into(), file.display().to_string()]);
        }
        argv.extend(["--seed".into(), self.seed.to_string()]);
        argv.extend(self.extra.iter().cloned());
        argv
    }

    /// The command as a person types it.
    pub(crate) fn shell(&self) -> String {
        shell_words::join(self.argv())
    }

    /// The run's plan, checked as `faultline run` checks it; without the HTML report unless
    /// `report`.
    pub(crate) fn plan(&self, report: bool) -> Result<RunPlan, String> {
        let cli = Cli::try_parse_from(self.argv()).map_err(|e| e.to_string())?;
        let Command::Run(args) = cli.command else {
            unreachable!("the command line says run")
        };
        let mut plan = RunPlan::new(&args.target, &args.settings, &args.options)?;
        plan.write_report = report;
        Ok(plan)
    }

    /// Runs it into `dir`.
    pub(crate) fn run(&self, dir: RunDir, report: bool) -> Result<Finished, String> {
        let plan = self.plan(report)?;
        let (_keep, stop) = watch::channel(false);
        crate::sim::runtime().block_on(execute(&plan, dir, stop, false))
    }

    /// Runs it in a scratch directory under `scratch`, removed after: its outcome.
    pub(crate) fn outcome(&self, scratch: &Path) -> Result<Outcome, String> {
        let dir = RunDir::create_named(scratch, &format!("seed-{}", self.seed))
            .map_err(|e| format!("cannot make a scratch run directory: {e}"))?;
        let path = dir.path.clone();
        let finished = self.run(dir, false);
        let _ = std::fs::remove_dir_all(&path);
        finished.map(|f| Outcome::of(&f))
    }
}

/// How a run ended, as the hunt needs to know it.
#[derive(Clone, Debug)]
pub(crate) struct Outcome {
    /// The run's verdict.
    pub(crate) validity: Validity,
    /// The checkers that failed.
    pub(crate) failing: Vec<String>,
    /// The first failing checker's summary.
    pub(crate) why: String,
}

impl Outcome {
    fn of(finished: &Finished) -> Self {
        let failing: Vec<_> = (finished.judged.verdicts.iter())
            .filter(|v| v.valid == Validity::Fail)
            .collect();
        Outcome {
            validity: finished.judged.validity(),
            why: failing
                .first()
                .map(|v| format!("{}: {}", v.checker, v.summary))
                .unwrap_or_default(),
            failing: failing.iter().map(|v| v.checker.clone()).collect(),
        }
    }
}

/// The base of every run of a hunt, before a seed (and with --swarm, its choices).
fn base_command(args: &HuntArgs) -> Result<(RunCommand, Vec<Kind>), String> {
    let system = args.target.strip_prefix("bundled:").ok_or_else(|| {
        format!(
            "--target {}: the hunt simulates bundled systems only (bundled:quorum, \
             bundled:raft, bundled:saga, bundled:twopc)",
            args.target
        )
    })?;
    let info = system_info(system).map_err(|e| format!("--target: {e}"))?;
    let kinds = match &args.nemesis {
        Some(list) => Kind::parse_list(list).map_err(|e| format!("--nemesis: {e}"))?,
        None => Kind::ALL.to_vec(),
    };
    let workload = args.workload.unwrap_or(if info.takes_orders {
        Workload::Checkout
    } else {
        Workload::Cas
    });
    let command = RunCommand {
        target: args.target.clone(),
        settings: args.settings.clone(),
        workload,
        nodes: info.fixed_nodes.unwrap_or(args.nodes),
        clients: args.clients,
        rate: args.rate,
        time_limit: args.run_time,
        nemesis: Some(kind_list(&kinds)),
        nemesis_interval: None,
        schedule: None,
        seed: 0,
        extra: args.run_options.clone(),
    };
    // A bad setting or option is refused once, before any run.
    command.plan(false)?;
    Ok((command, kinds))
}

fn kind_list(kinds: &[Kind]) -> String {
    if kinds.is_empty() {
        return "none".into();
    }
    let names: Vec<&str> = kinds.iter().map(|k| k.name()).collect();
    names.join(",")
}

/// The run of `seed`: the base with the seed, and with --swarm the seed's own fault mix,
/// rate, clients, cluster size and fault pacing (drawn from a stream of their own).
fn command_for(base: &RunCommand, kinds: &[Kind], seed: u64, swarm: bool) -> RunCommand {
    let mut command = RunCommand {
        seed,
        ..base.clone()
    };
    if !swarm || kinds.is_empty() {
        return command;
    }
    let mut rng = ChaCha8Rng::seed_from_u64(seed ^ 0x7377_6172_6d21);
    let mut mix: Vec<Kind> = kinds
        .iter()
        .copied()
        .filter(|_| rng.random_bool(0.5))
        .collect();
    if mix.is_empty() {
        let mut all = kinds.to_vec();
        all.shuffle(&mut rng);
        mix.push(all[0]);
    }
    command.nemesis = Some(kind_list(&mix));
    command.rate = [10.0, 30.0, 100.0, 300.0][rng.random_range(0..4)];
    command.clients = rng.random_range(2..=10);
    if system_info(base.target.trim_start_matches("bundled:"))
        .is_ok_and(|info| info.fixed_nodes.is_none())
    {
        command.nodes = [3, 5][rng.random_range(0..2)];
    }
    command.nemesis_interval = Some(Duration::from_millis(rng.random_range(200..=3000)));
    command
}

/// What the hunt found.
struct Found {
    command: RunCommand,
    outcome: Outcome,
}

/// Runs `faultline hunt`.
pub(crate) fn run(args: &HuntArgs) -> ExitCode {
    match hunt(args) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("faultline: {e}");
            ExitCode::from(CANNOT_RUN)
        }
    }
}

/// Set by the first Ctrl-C of a hunt: no more seeds are started and shrinking stops where it
/// is; the second Ctrl-C exits at once.
static INTERRUPTED: AtomicBool = AtomicBool::new(false);

/// Whether the user asked the hunt to stop.
pub(crate) fn interrupted() -> bool {
    INTERRUPTED.load(Ordering::Relaxed)
}

/// Watches Ctrl-C in a thread of its own: the first sets [`interrupted`], the second exits.
/// The handler is in place when this returns.
fn watch_interrupts() {
    use tokio::signal::unix::{SignalKind, signal};
    let Ok(runtime) = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    else {
        return;
    };
    let registered = {
        let _inside = runtime.enter();
        signal(SignalKind::interrupt())
    };
    let Ok(mut sigint) = registered else { return };
    std::thread::spawn(move || {
        runtime.block_on(async {
            if sigint.recv().await.is_none() {
                return;
            }
            eprintln!(
                "\nfaultline: stopping after the runs in progress (Ctrl-C again to quit at once)"
            );
            INTERRUPTED.store(true, Ordering::Relaxed);
            if sigint.recv().await.is_some() {
                std::process::exit(130);
            }
        });
    });
}

fn hunt(args: &HuntArgs) -> Result<ExitCode, String> {
    let (base, kinds) = base_command(args)?;
    watch_interrupts();
    let jobs = args
        .jobs
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()))
        .max(1);
    let (first, last) = args.seeds;
    eprintln!(
        "faultline: hunting seeds {first}..{last} of {} ({} jobs, at most {}{})",
        base.target,
        jobs,
        humantime::format_duration(args.time_limit),
        if args.swarm { ", swarm" } else { "" }
    );
    let scratch =
        tempfile::tempdir().map_err(|e| format!("cannot make a scratch directory: {e}"))?;
    let hunt = Hunt {
        args,
        base,
        kinds,
        scratch: scratch.path(),
        started: Instant::now(),
        next: AtomicU64::new(first),
        done: AtomicU64::new(0),
        passed: AtomicU64::new(0),
        stop: AtomicBool::new(false),
        running: AtomicUsize::new(jobs),
        found: Mutex::new(None),
        error: Mutex::new(None),
    };
    std::thread::scope(|scope| {
        for _ in 0..jobs {
            scope.spawn(|| hunt.work());
        }
        scope.spawn(|| progress(&hunt.done, &hunt.running, hunt.started));
    });
    if let Some(e) = hunt.error.into_inner().expect("not poisoned") {
        return Err(e);
    }
    let done = hunt.done.load(Ordering::Relaxed);
    let elapsed = hunt.started.elapsed();
    let Some(found) = hunt.found.into_inner().expect("not poisoned") else {
        let passed = hunt.passed.load(Ordering::Relaxed);
        if interrupted() {
            println!(
                "interrupted: no failure in {done} seeds ({passed} PASS, {} UNKNOWN) in {:.1} s",
                done - passed,
                elapsed.as_secs_f64()
            );
            return Ok(ExitCode::from(130));
        }
        println!(
            "no failure in {done} seeds ({passed} PASS, {} UNKNOWN) in {:.1} s ({:.0} runs/s)",
            done - passed,
            elapsed.as_secs_f64(),
            done as f64 / elapsed.as_secs_f64().max(1e-9)
        );
        return Ok(ExitCode::SUCCESS);
    };
    report_failure(args, &found, done, elapsed)?;
    Ok(ExitCode::from(1))
}

/// What the workers of a hunt share.
struct Hunt<'a> {
    args: &'a HuntArgs,
    base: RunCommand,
    kinds: Vec<Kind>,
    scratch: &'a Path,
    started: Instant,
    /// The next seed to hand out.
    next: AtomicU64,
    /// Seeds run, and of them passed.
    done: AtomicU64,
    passed: AtomicU64,
    /// Set at the first failure or error: no more seeds are handed out.
    stop: AtomicBool,
    /// Workers still running.
    running: AtomicUsize,
    /// The lowest failing seed among those run.
    found: Mutex<Option<Found>>,
    /// The first run that could not be made.
    error: Mutex<Option<String>>,
}

impl Hunt<'_> {
    /// One worker: runs seeds until they run out, the time is up, or a seed fails.
    fn work(&self) {
        let _leaving = Leaving(&self.running);
        while !self.stop.load(Ordering::Relaxed)
            && !interrupted()
            && self.started.elapsed() < self.args.time_limit
        {
            let seed = self.next.fetch_add(1, Ordering::Relaxed);
            if seed > self.args.seeds.1 {
                break;
            }
            let command = command_for(&self.base, &self.kinds, seed, self.args.swarm);
            match command.outcome(self.scratch) {
                Ok(outcome) => self.count(command, outcome),
                Err(e) => {
                    self.stop.store(true, Ordering::Relaxed);
                    self.error.lock().expect("not poisoned").get_or_insert(e);
                }
            }
        }
    }

    /// Counts a run; a failure stops the hunt (the lowest failing seed is kept).
    fn count(&self, command: RunCommand, outcome: Outcome) {
        self.done.fetch_add(1, Ordering::Relaxed);
        match outcome.validity {
            Validity::Fail => {
                self.stop.store(true, Ordering::Relaxed);
                let mut found = self.found.lock().expect("not poisoned");
                if found.as_ref().is_none_or(|f| f.command.seed > command.seed) {
                    *found = Some(Found { command, outcome });
                }
            }
            Validity::Pass => {
                self.passed.fetch_add(1, Ordering::Relaxed);
            }
            Validity::Unknown => {}
        }
    }
}

/// Counts a worker out when it leaves, however it leaves.
struct Leaving<'a>(&'a AtomicUsize);

impl Drop for Leaving<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

/// Prints how far the hunt got every few seconds, until every worker has left.
fn progress(done: &AtomicU64, running: &AtomicUsize, started: Instant) {
    let mut last_print = Instant::now();
    while running.load(Ordering::Relaxed) > 0 {
        std::thread::sleep(Duration::from_millis(50));
        if last_print.elapsed() >= Duration::from_secs(5) {
            last_print = Instant::now();
            eprintln!(
                "faultline: {} seeds in {:.0} s, no failure yet",
                done.load(Ordering::Relaxed),
                started.elapsed().as_secs_f64()
            );
        }
    }
}

/// Prints the failure, confirms that its seed replays to the same verdict and history bytes,
/// keeps its run directory, and shrinks its schedule.
fn report_failure(
    args: &HuntArgs,
    found: &Found,
    done: u64,
    elapsed: Duration,
) -> Result<(), String> {
    let command = &found.command;
    println!(
        "FAIL at seed {} after {done} seeds in {:.1} s: {}",
        command.seed,
        elapsed.as_secs_f64(),
        found.outcome.why
    );
    println!("replay:   {}", command.shell());
    let dir = RunDir::create(&args.out, &command.target, command.workload.name()).map_err(|e| {
        format!(
            "cannot create a run directory under {}: {e}",
            args.out.display()
        )
    })?;
    if let Err(e) = dir.point_latest(&args.out) {
        eprintln!(
            "faultline: cannot point {}/latest at the run: {e}",
            args.out.display()
        );
    }
    let kept = command.run(dir, true)?;
    let (_scratch, again) = crate::sim::run_again(&command.plan(false)?)?;
    let bytes = |f: &Finished| std::fs::read(f.dir.history()).unwrap_or_default();
    let (a, b) = (bytes(&kept), bytes(&again));
    let same_verdict = Outcome::of(&kept).failing == found.outcome.failing
        && Outcome::of(&again).failing == found.outcome.failing;
    if same_verdict && a == b {
        println!(
            "replayed: twice, the same verdict and the same {} history bytes",
            a.len()
        );
    } else {
        println!(
            "replayed: NOT the same (verdict the same: {same_verdict}, histories the same: {}); \
             this is a bug in faultline's simulator: please report it with the command above",
            a == b
        );
    }
    println!("run:      {}", kept.dir.path.display());
    if args.no_shrink {
        let (steps, path) = crate::shrink::keep_schedule(command, &kept.dir.path)?;
        println!("schedule: {} faults in {}", steps.len(), path.display());
        return Ok(());
    }
    crate::shrink::shrink(command, &found.outcome, args, &kept.dir.path)
}
