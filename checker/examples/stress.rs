//! The hard cases of linearizability checking, measured: generated register histories on one
//! key (with cas unless `--read-write`), linearizable by construction — few processes with many indeterminate (`info`)
//! operations, and many concurrent processes — each checked with a time limit; prints for
//! each the verdict and the time, then the share decided. With `--stale`, one read in each
//! is made provably stale: each must FAIL, naming it.
//!
//! ```text
//! cargo run --release -p faultline-checker --example stress -- --timeout 20
//! cargo run --release -p faultline-checker --example stress -- --timeout 20 --stale
//! cargo run --release -p faultline-checker --example stress -- --timeout 20 --no-reductions
//! cargo run --release -p faultline-checker --example stress -- --timeout 20 --read-write
//! ```
//!
//! `--no-reductions` turns off what is decided before or instead of the search (the `info`
//! reductions, the stale-read proof, the zones); `--read-write` makes register histories
//! without cas (decided by the zones).

use std::time::{Duration, Instant};

use faultline_checker::history::pair;
use faultline_checker::linearizability::check as check_linearizability;
use faultline_checker::synth::{SynthConfig, generate};
use faultline_checker::{Options, Validity};

/// What to run, from the command line.
struct Args {
    timeout: Duration,
    stale: bool,
    reduce_info: bool,
    cas: bool,
}

impl Args {
    fn parse() -> Args {
        let mut parsed = Args {
            timeout: Duration::from_secs(20),
            stale: false,
            reduce_info: true,
            cas: true,
        };
        let mut args = std::env::args().skip(1);
        while let Some(flag) = args.next() {
            match flag.as_str() {
                "--timeout" => {
                    let secs: f64 =
                        (args.next().and_then(|v| v.parse().ok())).expect("--timeout SECONDS");
                    parsed.timeout = Duration::from_secs_f64(secs);
                }
                "--stale" => parsed.stale = true,
                "--no-reductions" => parsed.reduce_info = false,
                "--read-write" => parsed.cas = false,
                other => panic!(
                    "unknown flag {other}; use --timeout SECONDS, --stale, --no-reductions, \
                     --read-write"
                ),
            }
        }
        parsed
    }
}

/// One generated history: its name, operations, processes and share of `info`.
struct Case {
    name: String,
    ops: usize,
    clients: usize,
    info: f64,
}

/// The set: for each size, 3 processes with 5, 10 and 20% `info`, and 20 and 30 processes.
fn cases() -> Vec<Case> {
    let mut cases = Vec::new();
    for ops in [200, 500, 1000, 2000] {
        for info in [0.05, 0.1, 0.2] {
            let name = format!("3 processes, {:>2}% info", info * 100.0);
            cases.push(Case {
                name,
                ops,
                clients: 3,
                info,
            });
        }
        for clients in [20, 30] {
            let name = format!("{clients} processes, 1% info");
            cases.push(Case {
                name,
                ops,
                clients,
                info: 0.01,
            });
        }
    }
    cases
}

/// Checks one case (`None` when no read could be made stale); prints a line; whether it was
/// decided, and whether it was wrong.
fn run(case: &Case, seed: u64, args: &Args) -> Option<(bool, bool)> {
    let mut synth = generate(&SynthConfig {
        ops: case.ops,
        keys: 1,
        clients: case.clients,
        info_rate: case.info,
        cas: args.cas,
        seed,
    });
    let planted = if args.stale {
        Some(synth.plant_stale_read()?)
    } else {
        None
    };
    let history = pair(synth.events()).expect("a generated history pairs");
    let options = Options {
        timeout: Some(args.timeout),
        reduce_info: args.reduce_info,
        ..Options::default()
    };
    let started = Instant::now();
    let report = check_linearizability(&history, &options).expect("the model fits");
    let took = started.elapsed();
    let expected = if args.stale {
        Validity::Fail
    } else {
        Validity::Pass
    };
    let decided = report.validity != Validity::Unknown;
    let mut wrong = decided && report.validity != expected;
    let named = planted.map(|at| {
        let (process, call) = synth.who_and_when(at);
        match report.failures.first() {
            Some(f) if f.op.process == process && f.op.call == call => {
                format!(" names the stale read (line {})", f.op.line)
            }
            Some(f) => {
                wrong = true;
                format!(" names line {}, not the stale read", f.op.line)
            }
            None => String::new(),
        }
    });
    let info = (history.ops.iter())
        .filter(|o| o.status == faultline_checker::Status::Info && !o.is_read())
        .count();
    println!(
        "{:<26} {:>5} ops: {:<7} {:>9.3}s  info writes {info}: {} bounded, {} dropped{}",
        case.name,
        case.ops,
        report.validity.as_str(),
        took.as_secs_f64(),
        report.info_bounded,
        report.info_dropped,
        named.unwrap_or_default()
    );
    Some((decided, wrong))
}

fn main() {
    let args = Args::parse();
    let (mut decided, mut total, mut wrong) = (0, 0, 0);
    for (seed, case) in cases().iter().enumerate() {
        if let Some((was_decided, was_wrong)) = run(case, seed as u64 + 1, &args) {
            total += 1;
            decided += was_decided as usize;
            wrong += was_wrong as usize;
        }
    }
    println!(
        "decided {decided} of {total} within {:?}; {wrong} wrong (expected {})",
        args.timeout,
        if args.stale { "FAIL" } else { "PASS" }
    );
    assert_eq!(wrong, 0, "a verdict contradicts the construction");
}
