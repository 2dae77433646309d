//! Transactional workloads end to end: bundled:raft runs transactions atomically through its
//! log and passes strict serializability under faults; bundled:quorum runs them with no
//! isolation and is caught.

use std::process::Command;

use serde_json::Value;

fn run(args: &[&str]) -> (Option<i32>, Value) {
    let out = tempfile::tempdir().unwrap();
    let output = Command::new(env!("CARGO_BIN_EXE_faultline"))
        .args(["run", "--format", "json", "--out"])
        .arg(out.path())
        .args(args)
        .output()
        .unwrap();
    let verdict = serde_json::from_slice(&output.stdout)
        .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&output.stderr)));
    (output.status.code(), verdict)
}

fn transactional(verdict: &Value) -> &Value {
    verdict["checkers"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["checker"] == "transactional")
        .expect("a transactional verdict")
}

#[test]
fn raft_transactions_are_strict_serializable_under_faults() {
    for workload in ["list-append", "rw-register"] {
        let (code, verdict) = run(&[
            "--target",
            "bundled:raft",
            "--workload",
            workload,
            "--nemesis",
            "partition,kill,pause",
            "--nemesis-interval",
            "500ms",
            "--time-limit",
            "5s",
            "--seed",
            "4",
        ]);
        let txn = transactional(&verdict);
        assert_eq!(txn["valid"], "PASS", "{workload}: {txn}");
        assert_eq!(code, Some(0), "{workload}: {verdict}");
        assert!(txn["details"]["committed"].as_u64().unwrap() > 50, "{txn}");
    }
}

#[test]
fn quorum_transactions_have_no_isolation_and_are_caught() {
    let (code, verdict) = run(&[
        "--target",
        "bundled:quorum",
        "--workload",
        "list-append",
        "--nemesis",
        "none",
        "--time-limit",
        "3s",
        "--seed",
        "4",
    ]);
    let txn = transactional(&verdict);
    assert_eq!(txn["valid"], "FAIL", "{txn}");
    assert_eq!(code, Some(1));
    let not = txn["details"]["not"].as_array().unwrap();
    assert!(not.contains(&Value::from("serializable")), "{not:?}");
    assert!(!txn["details"]["anomalies"].as_array().unwrap().is_empty());
}

#[test]
fn targets_without_transactions_are_refused_before_the_run() {
    let output = Command::new(env!("CARGO_BIN_EXE_faultline"))
        .args([
            "run",
            "--target",
            "bundled:saga",
            "--workload",
            "list-append",
        ])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&output.stderr).contains("does not run transactions"));
}
