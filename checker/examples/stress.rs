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

fn main() {
    let mut timeout = Duration::from_secs(20);
    let mut stale = false;
    let mut reduce_info = true;
    let mut cas = true;
    let mut args = std::env::args().skip(1);
    while let Some(flag) = args.next() {
        match flag.as_str() {
            "--timeout" => {
                let secs: f64 = args
                    .next()
                    .and_then(|v| v.parse().ok())
                    .expect("--timeout SECONDS");
                timeout = Duration::from_secs_f64(secs);
            }
            "--stale" => stale = true,
            "--no-reductions" => reduce_info = false,
            "--read-write" => cas = false,
            other => {
                panic!("unknown flag {other}; use --timeout SECONDS, --stale, --no-reductions")
            }
        }
    }
    let mut cases = Vec::new();
    for (i, ops) in [200, 500, 1000, 2000].into_iter().enumerate() {
        for info in [0.05, 0.1, 0.2] {
            cases.push((
                format!("3 processes, {:>2}% info", info * 100.0),
                ops,
                3,
                info,
                i,
            ));
        }
        for clients in [20, 30] {
            cases.push((
                format!("{clients} processes, 1% info"),
                ops,
                clients,
                0.01,
                i,
            ));
        }
    }
    let (mut decided, mut total, mut wrong) = (0, 0, 0);
    for (seed, (name, ops, clients, info, _)) in cases.into_iter().enumerate() {
        let mut synth = generate(&SynthConfig {
            ops,
            keys: 1,
            clients,
            info_rate: info,
            cas,
            seed: seed as u64 + 1,
        });
        let planted = if stale {
            match synth.plant_stale_read() {
                Some(at) => Some(at),
                None => continue,
            }
        } else {
            None
        };
        let history = pair(synth.events()).expect("a generated history pairs");
        let options = Options {
            timeout: Some(timeout),
            reduce_info,
            ..Options::default()
        };
        let started = Instant::now();
        let report = check_linearizability(&history, &options).expect("the model fits");
        let took = started.elapsed();
        total += 1;
        let expected = if stale {
            Validity::Fail
        } else {
            Validity::Pass
        };
        if report.validity != Validity::Unknown {
            decided += 1;
        }
        if report.validity != expected && report.validity != Validity::Unknown {
            wrong += 1;
        }
        let named = planted.map(|at| {
            let (process, call) = synth.who_and_when(at);
            match report.failures.first() {
                Some(f) if f.op.process == process && f.op.call == call => {
                    format!(" names the stale read (line {})", f.op.line)
                }
                Some(f) => {
                    wrong += 1;
                    format!(" names line {}, not the stale read", f.op.line)
                }
                None => String::new(),
            }
        });
        let info = history
            .ops
            .iter()
            .filter(|o| o.status == faultline_checker::Status::Info && !o.is_read())
            .count();
        println!(
            "{name:<26} {ops:>5} ops: {:<7} {:>9.3}s  info writes {info}: {} bounded, {} dropped{}",
            report.validity.as_str(),
            took.as_secs_f64(),
            report.info_bounded,
            report.info_dropped,
            named.unwrap_or_default()
        );
    }
    println!(
        "decided {decided} of {total} within {timeout:?}; {wrong} wrong (expected {})",
        if stale { "FAIL" } else { "PASS" }
    );
    assert_eq!(wrong, 0, "a verdict contradicts the construction");
}
