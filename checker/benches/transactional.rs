//! Benchmarks of the transactional checker (`cargo bench -p faultline-checker --bench
//! transactional`): synthetic list-append histories, strict serializable by construction (1–4
//! micro-operations per transaction, 100 active keys each retired after 32 appends, 32
//! processes), of 10k and 100k transactions, checked for strict-serializable from memory. For
//! 1M transactions, time the whole process on the `synth` example's output (see the README).

use divan::Bencher;
use faultline_checker::synth::list_append_events;
use faultline_checker::txn::{self, TxnOptions};
use faultline_checker::{Validity, history};

fn main() {
    divan::main();
}

#[divan::bench(args = [10_000, 100_000], sample_count = 5)]
fn list_append_strict_serializable(bencher: Bencher, txns: usize) {
    let history = history::pair(list_append_events(txns, 100, 32, 32, 1)).expect("pairs");
    bencher.bench(|| {
        let report = txn::check(&history, &TxnOptions::default()).expect("transactions");
        assert_eq!(report.validity, Validity::Pass);
    });
}
