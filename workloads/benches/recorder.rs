//! The cost of recording (`cargo bench -p faultline-workloads`): appending one event to
//! `history.jsonl` as the runner does (stamp, serialize, buffered write, periodic flush).
//! At 5,000 operations per second a run records 10,000 events per second; multiply.

use divan::Bencher;
use faultline_workloads::{EventLine, Recorder, Who};
use serde_json::json;

fn main() {
    divan::main();
}

#[divan::bench]
fn record_event(bencher: Bencher) {
    let dir = tempfile::tempdir().expect("a temp dir");
    let recorder = Recorder::create(&dir.path().join("history.jsonl")).expect("creatable");
    let value = json!(12345);
    let meta = json!({"version": {"time": 1795688481019u64, "node": 2}});
    bencher.bench(|| {
        recorder
            .record(&EventLine {
                process: Who::Client(3),
                kind: "ok",
                f: "write",
                key: Some("k3"),
                value: &value,
                node: Some("n2"),
                error: None,
                meta: Some(&meta),
            })
            .expect("written")
    });
}
