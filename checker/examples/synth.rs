//! Writes a synthetic history, linearizable by construction, as faultline JSONL on stdout.
//!
//! ```text
//! cargo run --release -p faultline-checker --example synth -- \
//!     --ops 1000000 --keys 10000 --clients 32 --info 0.01 --seed 1 > big.jsonl
//! faultline check big.jsonl
//! ```
//!
//! With `--causal-sessions N`, a differentiated history of a sequentially consistent store
//! instead (for `faultline check --consistency ...`). With `--txns N`, a list-append history
//! of N transactions over `--keys` active keys (each retired after `--max-appends` appends,
//! default 32), strict serializable by construction (for the transactional checker):
//!
//! ```text
//! cargo run --release -p faultline-checker --example synth -- \
//!     --txns 100000 --keys 100 --clients 32 --seed 1 > txn.jsonl
//! faultline check txn.jsonl
//! ```

use std::io::{BufWriter, Write};

use faultline_checker::synth::{
    SynthConfig, causal_events, generate, list_append_events, write_events,
};

fn main() {
    let mut config = SynthConfig::default();
    let mut causal_sessions: Option<usize> = None;
    let mut txns: Option<usize> = None;
    let mut max_appends = 32;
    let mut args = std::env::args().skip(1);
    while let Some(flag) = args.next() {
        let value = args
            .next()
            .unwrap_or_else(|| usage(&format!("{flag} needs a value")));
        let number = || -> f64 {
            value
                .parse()
                .unwrap_or_else(|_| usage(&format!("{flag}: `{value}` is not a number")))
        };
        match flag.as_str() {
            "--ops" => config.ops = number() as usize,
            "--keys" => config.keys = number() as usize,
            "--clients" => config.clients = number() as usize,
            "--info" => config.info_rate = number(),
            "--seed" => config.seed = number() as u64,
            "--causal-sessions" => causal_sessions = Some(number() as usize),
            "--txns" => txns = Some(number() as usize),
            "--max-appends" => max_appends = number() as usize,
            other => usage(&format!("unknown flag {other}")),
        }
    }
    let out = std::io::stdout().lock();
    let mut out = BufWriter::new(out);
    let written = match (txns, causal_sessions) {
        (Some(txns), _) => write_events(
            &list_append_events(txns, config.keys, config.clients, max_appends, config.seed),
            &mut out,
        ),
        (None, Some(sessions)) => write_events(
            &causal_events(config.ops, sessions, config.keys, config.seed),
            &mut out,
        ),
        (None, None) => generate(&config).write_jsonl(&mut out),
    };
    written
        .and_then(|()| out.flush())
        .unwrap_or_else(|e| usage(&format!("cannot write: {e}")));
}

fn usage(problem: &str) -> ! {
    eprintln!(
        "synth: {problem}\nusage: synth [--ops N] [--keys N] [--clients N] [--info RATE] [--seed N] [--causal-sessions N] [--txns N [--max-appends N]]"
    );
    std::process::exit(2)
}
