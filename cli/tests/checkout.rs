//! The checkout workload end to end: the saga and two-phase commit systems pass the saga
//! checker under partitions, crashes and pauses, and planted bugs are caught with the order
//! that proves them.

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;

fn run(out: &Path, args: &[&str]) -> (Option<i32>, String) {
    let output = Command::new(env!("CARGO_BIN_EXE_faultline"))
        .args(["run", "--workload", "checkout", "--rate", "300", "--out"])
        .arg(out)
        .args(args)
        .output()
        .unwrap();
    (
        output.status.code(),
        String::from_utf8_lossy(&output.stdout).into_owned()
            + &String::from_utf8_lossy(&output.stderr),
    )
}

fn latest(out: &Path) -> PathBuf {
    std::fs::canonicalize(out.join("latest")).unwrap()
}

fn json(path: PathBuf) -> Value {
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

#[test]
fn both_checkouts_pass_under_partitions_crashes_and_pauses() {
    for system in ["saga", "twopc"] {
        let out = tempfile::tempdir().unwrap();
        let target = format!("bundled:{system}");
        let (code, text) = run(
            out.path(),
            &[
                "--target",
                &target,
                "--set",
                "fail.payment=0.1",
                "--nemesis",
                "partition,kill,pause",
                "--nemesis-interval",
                "700ms",
                "--time-limit",
                "6s",
                "--seed",
                "3",
            ],
        );
        assert_eq!(code, Some(0), "{system}: {text}");
        let dir = latest(out.path());
        let verdict = json(dir.join("verdict.json"));
        assert_eq!(verdict["checkers"][0]["checker"], "saga");
        let details = &verdict["checkers"][0]["details"];
        let completed = details["by_status"]["completed"].as_u64().unwrap_or(0);
        assert!(completed > 100, "{system}: {details}");
        // Declined payments are undone: compensated (saga) or aborted (twopc).
        let undone = details["by_status"]["compensated"].as_u64().unwrap_or(0)
            + details["by_status"]["rejected"].as_u64().unwrap_or(0);
        assert!(undone > 10, "{system}: {details}");
        // The run directory can be checked again.
        let again = Command::new(env!("CARGO_BIN_EXE_faultline"))
            .arg("check")
            .arg(&dir)
            .output()
            .unwrap();
        assert_eq!(again.status.code(), Some(0));
    }
}

#[test]
fn a_missing_compensation_is_named_with_its_evidence() {
    let out = tempfile::tempdir().unwrap();
    let (code, text) = run(
        out.path(),
        &[
            "--target",
            "bundled:saga",
            "--set",
            "bug=no-compensation,fail.payment=0.2",
            "--nemesis",
            "none",
            "--time-limit",
            "3s",
        ],
    );
    assert_eq!(code, Some(1), "{text}");
    assert!(text.contains("half-done o"), "{text}");
    assert!(text.contains("inventory still hold"), "{text}");
}

#[test]
fn retried_steps_applied_twice_are_caught() {
    let out = tempfile::tempdir().unwrap();
    // Lost answers make the orchestrator send steps again.
    let (code, text) = run(
        out.path(),
        &[
            "--target",
            "bundled:saga",
            "--set",
            "bug=no-idempotency",
            "--nemesis",
            "packet",
            "--nemesis-interval",
            "500ms",
            "--time-limit",
            "6s",
            "--seed",
            "1",
        ],
    );
    assert_eq!(code, Some(1), "{text}");
    assert!(text.contains("applied-twice"), "{text}");
}

#[test]
fn a_forgetful_orchestrator_leaves_orders_half_done() {
    let out = tempfile::tempdir().unwrap();
    let (code, text) = run(
        out.path(),
        &[
            "--target",
            "bundled:saga",
            "--set",
            "bug=volatile-log",
            "--nemesis",
            "kill",
            "--nemesis-interval",
            "300ms",
            "--time-limit",
            "6s",
            "--seed",
            "1",
        ],
    );
    assert_eq!(code, Some(1), "{text}");
    assert!(text.contains("forgotten"), "{text}");
}

#[test]
fn checkout_and_kv_workloads_and_systems_do_not_mix() {
    let out = tempfile::tempdir().unwrap();
    let (code, text) = run(out.path(), &["--target", "bundled:quorum"]);
    assert_eq!(code, Some(2));
    assert!(text.contains("needs a checkout system"), "{text}");
    let output = Command::new(env!("CARGO_BIN_EXE_faultline"))
        .args(["run", "--target", "bundled:twopc", "--workload", "cas"])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&output.stderr).contains("--workload checkout"));
    let (code, text) = run(
        out.path(),
        &["--target", "bundled:twopc", "--set", "bug=volatile-log"],
    );
    assert_eq!(code, Some(2));
    assert!(text.contains("a bug of saga"), "{text}");
}

#[test]
fn a_coordinator_that_forgets_its_decisions_is_caught() {
    // The window is a crash between a commit decision and its last acknowledgement; each run
    // kills the coordinator a few times. Over a fixed set of seeds every run must end with a
    // verdict (no harness error), every FAIL must name the half-done order, and the bug must
    // show in at least one of them.
    let out = tempfile::tempdir().unwrap();
    let mut codes = Vec::new();
    for seed in ["1", "2", "3", "4", "5"] {
        let (code, text) = run(
            out.path(),
            &[
                "--target",
                "bundled:twopc",
                "--set",
                "bug=no-decision-log",
                "--nemesis",
                "kill",
                "--nemesis-interval",
                "200ms",
                "--time-limit",
                "8s",
                "--seed",
                seed,
            ],
        );
        match code {
            Some(1) => assert!(text.contains("half-done o"), "seed {seed}: {text}"),
            Some(0) => {}
            other => panic!("seed {seed}: exit {other:?}, expected a verdict: {text}"),
        }
        codes.push(code);
    }
    assert!(
        codes.contains(&Some(1)),
        "no-decision-log was caught in none of 5 runs: exit codes {codes:?}"
    );
}
