//! Benchmarks of the linearizability checker (`cargo bench -p faultline-checker`).
//!
//! - `porcupine_etcd_all`: read and check all 103 Jepsen etcd logs of ../shared (Porcupine's
//!   test data), the way `faultline check jepsen/*.log` does, files in parallel.
//! - `porcupine_kv`: Porcupine's kv c50-ok and c50-bad.
//! - `synthetic`: generated keyed histories (32 clients, 1% info, keys = ops / 100) of 10k and
//!   100k operations, checked from memory. For 1M operations, use the `synth` example and time
//!   `faultline check` on its output (see the README).
//!
//! The Porcupine benches are skipped with a notice when ../shared is absent.

use std::path::{Path, PathBuf};

use divan::Bencher;
use faultline_checker::synth::{SynthConfig, generate};
use faultline_checker::{ModelKind, Options, format, history, linearizability};
use rayon::prelude::*;

fn main() {
    divan::main();
}

fn porcupine() -> Option<PathBuf> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../shared/histories/porcupine");
    if dir.is_dir() {
        Some(dir)
    } else {
        eprintln!("notice: {} not found; skipping", dir.display());
        None
    }
}

fn check_file(path: &Path, model: ModelKind) -> bool {
    let read = format::read_path(path, None).expect("readable");
    let options = Options {
        model: Some(model),
        ..Options::default()
    };
    linearizability::check(&read.history, &options)
        .expect("fits the model")
        .validity
        == faultline_checker::Validity::Pass
}

#[divan::bench(sample_count = 20)]
fn porcupine_etcd_all(bencher: Bencher) {
    let Some(dir) = porcupine() else { return };
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir.join("jepsen"))
        .expect("readable dir")
        .map(|e| e.expect("entry").path())
        .collect();
    files.sort();
    bencher.bench(|| {
        files
            .par_iter()
            .filter(|f| check_file(f, ModelKind::CasRegister))
            .count()
    });
}

#[divan::bench(args = ["c50-ok", "c50-bad"], sample_count = 20)]
fn porcupine_kv(bencher: Bencher, name: &str) {
    let Some(dir) = porcupine() else { return };
    let path = dir.join(format!("kv/{name}.txt"));
    bencher.bench(|| check_file(&path, ModelKind::Kv));
}

#[divan::bench(args = [10_000, 100_000], sample_count = 5)]
fn synthetic(bencher: Bencher, ops: usize) {
    let config = SynthConfig {
        ops,
        keys: ops / 100,
        clients: 32,
        ..SynthConfig::default()
    };
    let history = history::pair(generate(&config).events()).expect("pairs");
    bencher.bench(|| {
        linearizability::check(&history, &Options::default())
            .expect("fits")
            .validity
    });
}

/// The causal checkers on a differentiated history of 16 sessions over ops/100 keys: CC alone,
/// and everything (CC, CM, CCv and the five session guarantees).
#[divan::bench(args = [10_000, 100_000], sample_count = 3)]
fn causal_cc(bencher: Bencher, ops: usize) {
    let history = history::pair(faultline_checker::synth::causal_events(
        ops,
        16,
        ops / 100,
        1,
    ))
    .expect("pairs");
    bencher.bench(|| {
        faultline_checker::causal::check(&history, faultline_checker::causal::Consistency::Causal)
    });
}

#[divan::bench(args = [10_000, 100_000], sample_count = 3)]
fn causal_all(bencher: Bencher, ops: usize) {
    let history = history::pair(faultline_checker::synth::causal_events(
        ops,
        16,
        ops / 100,
        1,
    ))
    .expect("pairs");
    bencher.bench(|| {
        faultline_checker::causal::check(&history, faultline_checker::causal::Consistency::All)
    });
}
