//! Real PostgreSQL, started by faultline (`local:postgres`): its isolation levels as the
//! transactional checker sees them, and nothing left behind. Needs PostgreSQL's server
//! (Debian: postgresql); without it these tests say why and pass, except under `CI=true`,
//! where a missing server is a failure.

use std::process::Command;

mod common;

use common::reachable_tempdir;
use serde_json::Value;

fn postgres_present() -> bool {
    common::server_present(
        "PostgreSQL",
        faultline_targets::postgres::find_bin_dir(None),
    )
}

/// `faultline run --target local:postgres ARGS`, its temporary files under `tmp`.
fn run(tmp: &std::path::Path, args: &[&str]) -> (Option<i32>, Value) {
    common::run_target("local:postgres", tmp, args)
}

/// What a run with its temporary files under `tmp` left: processes whose command line names
/// a directory there, and the directories themselves.
fn leftovers(tmp: &std::path::Path) -> Vec<String> {
    let processes = common::processes_naming(&tmp.display().to_string()).into_iter();
    let dirs = std::fs::read_dir(tmp)
        .unwrap()
        .flatten()
        .map(|e| e.path().display().to_string());
    processes.chain(dirs).collect()
}

#[test]
fn serializable_passes_and_repeatable_read_shows_write_skew() {
    if !postgres_present() {
        return;
    }
    let tmp = reachable_tempdir();
    let (code, verdict) = run(
        tmp.path(),
        &[
            "--workload",
            "list-append",
            "--set",
            "isolation=serializable",
            "--time-limit",
            "5s",
            "--seed",
            "1",
        ],
    );
    let txn = &verdict["checkers"][0];
    assert_eq!(txn["valid"], "PASS", "{txn}");
    assert_eq!(
        txn["details"]["consistency"], "serializable",
        "the level set is the one judged"
    );
    assert_eq!(code, Some(0));
    assert!(txn["details"]["committed"].as_u64().unwrap() > 50, "{txn}");
    let (code, verdict) = run(
        tmp.path(),
        &[
            "--workload",
            "list-append",
            "--set",
            "isolation=repeatable-read",
            "--time-limit",
            "8s",
            "--seed",
            "1",
        ],
    );
    let txn = &verdict["checkers"][0];
    assert_eq!(code, Some(1), "{txn}");
    let found = common::anomalies(txn);
    assert!(
        found.contains(&"G2-item"),
        "PostgreSQL's repeatable read is snapshot isolation: {found:?}"
    );
    assert!(
        leftovers(tmp.path()).is_empty(),
        "left behind: {:?}",
        leftovers(tmp.path())
    );
}

#[test]
fn rw_register_shows_write_skew_at_repeatable_read_assuming_wfr_keys() {
    if !postgres_present() {
        return;
    }
    let tmp = reachable_tempdir();
    let (code, verdict) = run(
        tmp.path(),
        &[
            "--workload",
            "rw-register",
            "--set",
            "isolation=repeatable-read",
            "--rate",
            "2000",
            "--time-limit",
            "10s",
            "--seed",
            "1",
        ],
    );
    let txn = &verdict["checkers"][0];
    assert_eq!(
        txn["details"]["assumed"],
        serde_json::json!(["wfr-keys"]),
        "a database's rw-register run assumes wfr-keys unless told otherwise: {txn}"
    );
    assert_eq!(code, Some(1), "{txn}");
    let found = common::anomalies(txn);
    assert!(found.contains(&"G2-item"), "write skew: {found:?}");
    assert!(
        txn["explanation"]
            .as_str()
            .unwrap()
            .contains("assuming: wfr-keys"),
        "{txn}"
    );
}

#[test]
fn acknowledged_commits_survive_kill_pause_and_packet_faults() {
    if !postgres_present() {
        return;
    }
    let tmp = reachable_tempdir();
    let (code, verdict) = run(
        tmp.path(),
        &[
            "--workload",
            "list-append",
            "--nemesis",
            "kill,pause,packet",
            "--nemesis-interval",
            "1s",
            "--time-limit",
            "8s",
            "--seed",
            "2",
        ],
    );
    let txn = &verdict["checkers"][0];
    assert_eq!(txn["valid"], "PASS", "{txn}");
    assert_eq!(code, Some(0), "{verdict}");
    assert!(
        leftovers(tmp.path()).is_empty(),
        "left behind: {:?}",
        leftovers(tmp.path())
    );
}

#[test]
fn databases_take_transactional_workloads_only() {
    if !postgres_present() {
        return;
    }
    let output = Command::new(env!("CARGO_BIN_EXE_faultline"))
        .args(["run", "--target", "local:postgres", "--workload", "cas"])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&output.stderr).contains("is a database"));
    let output = Command::new(env!("CARGO_BIN_EXE_faultline"))
        .args([
            "run",
            "--target",
            "local:postgres",
            "--workload",
            "list-append",
            "--set",
            "isolation=snapshot",
        ])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&output.stderr)
            .contains("expected read-committed, repeatable-read or serializable")
    );
}

/// Starts a 60 s list-append run on `local:postgres` with its temporary files under `tmp`, and
/// returns once it has recorded some history: the running faultline and its results directory.
fn start_recording(tmp: &std::path::Path) -> (std::process::Child, tempfile::TempDir) {
    let out = tempfile::tempdir().unwrap();
    let child = Command::new(env!("CARGO_BIN_EXE_faultline"))
        .args([
            "run",
            "--target",
            "local:postgres",
            "--workload",
            "list-append",
        ])
        .args(["--time-limit", "60s", "--out"])
        .arg(out.path())
        .env("TMPDIR", tmp)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let history = out.path().join("latest/history.jsonl");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while !std::fs::metadata(&history).is_ok_and(|m| m.len() > 1000) {
        assert!(
            std::time::Instant::now() < deadline,
            "the run never started recording"
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    (child, out)
}

/// After `kill -9` of faultline, the server dies with it and the next start removes the
/// killed run's data directory. See: issue 17.
#[test]
fn a_killed_run_leaves_no_server_and_the_next_start_removes_its_directory() {
    if !postgres_present() {
        return;
    }
    let tmp = reachable_tempdir();
    let (mut child, _out) = start_recording(tmp.path());
    child.kill().unwrap();
    child.wait().unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    loop {
        let servers: Vec<String> = leftovers(tmp.path())
            .into_iter()
            .filter(|l| l.contains("postgres -D"))
            .collect();
        if servers.is_empty() {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "servers outlived faultline: {servers:?}"
        );
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    assert!(
        !leftovers(tmp.path()).is_empty(),
        "the killed run's directory is still there"
    );
    let (code, _) = run(
        tmp.path(),
        &["--workload", "list-append", "--time-limit", "1s"],
    );
    assert_eq!(code, Some(0));
    assert!(
        leftovers(tmp.path()).is_empty(),
        "left behind: {:?}",
        leftovers(tmp.path())
    );
}

/// Ctrl-C stops the run (exit 130) and the server with it, and removes its directory.
#[test]
fn ctrl_c_stops_the_server_and_removes_its_directory() {
    if !postgres_present() {
        return;
    }
    let tmp = reachable_tempdir();
    let (mut child, _out) = start_recording(tmp.path());
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(child.id() as i32),
        nix::sys::signal::Signal::SIGINT,
    )
    .unwrap();
    assert_eq!(child.wait().unwrap().code(), Some(130));
    assert!(
        leftovers(tmp.path()).is_empty(),
        "left behind: {:?}",
        leftovers(tmp.path())
    );
}
