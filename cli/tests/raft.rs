//! The bundled Raft cluster: correct under faults, and a cut-off leader does not answer.

use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use faultline_nemesis::{Backend, BundledBackend, Fault, Shape};
use faultline_targets::cluster::{Cluster, ClusterSpec};
use serde_json::{Value, json};

#[test]
fn raft_passes_cas_under_partitions_crashes_and_pauses() {
    let out = tempfile::tempdir().unwrap();
    let output = Command::new(env!("CARGO_BIN_EXE_faultline"))
        .args(["run", "--target", "bundled:raft", "--workload", "cas"])
        .args([
            "--nemesis",
            "partition,kill,pause",
            "--nemesis-interval",
            "500ms",
        ])
        .args([
            "--time-limit",
            "5s",
            "--seed",
            "3",
            "--format",
            "json",
            "--out",
        ])
        .arg(out.path())
        .output()
        .unwrap();
    let verdict: Value = serde_json::from_slice(&output.stdout).expect("verdict.json");
    assert_eq!(verdict["verdict"], "PASS", "{verdict}");
    assert_eq!(output.status.code(), Some(0));
}

#[tokio::test]
async fn a_leader_cut_off_from_the_majority_answers_no_request() {
    let cluster = Cluster::start(ClusterSpec {
        system: "raft".into(),
        nodes: 3,
        settings: vec!["timeout-ms=400".into()],
        data_dir: None,
        exe: env!("CARGO_BIN_EXE_faultline").into(),
        seed: 1,
    })
    .await
    .unwrap();
    let urls = cluster.urls();
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(5))
        .build()
        .unwrap();
    // Wait for a leader, then write through it.
    let mut written = false;
    for _ in 0..100 {
        let r = http
            .put(format!("{}/kv/k", urls[0]))
            .json(&json!({"value": 1}))
            .send()
            .await
            .unwrap();
        if r.status() == 200 {
            written = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(written, "no leader elected");
    let shared = Arc::new(Mutex::new(Some(cluster)));
    let mut backend = BundledBackend::new(shared.clone()).unwrap();
    let cut = Fault::Partition {
        shape: Shape::Leader,
        one_way: false,
        groups: vec![],
        cuts: vec![],
    };
    let applied = backend.apply(&cut).await.unwrap();
    let Fault::Partition { groups, .. } = &applied else {
        panic!()
    };
    let leader = groups[0][0];
    let read = http
        .get(format!("{}/kv/k", urls[leader]))
        .send()
        .await
        .unwrap();
    assert_ne!(
        read.status(),
        200,
        "the cut-off leader must not serve a read"
    );
    let write = http
        .put(format!("{}/kv/k", urls[leader]))
        .json(&json!({"value": 2}))
        .send()
        .await
        .unwrap();
    assert_ne!(write.status(), 200, "nor commit a write");
    backend.heal_all().await.unwrap();
}
