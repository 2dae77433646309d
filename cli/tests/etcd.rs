//! `faultline run` against real etcd: `local:etcd` under partition, kill and pause passes
//! linearizability and leaves nothing behind (on exit and on Ctrl-C); a crashed run's leftovers
//! are cleaned; `etcd://` with the command backend (commands see the fault; a failing command
//! is an error) and with the proxy backend.
//!
//! Needs `etcd` on PATH (Debian: etcd-server; `.ci/run` installs it); skipped with a notice
//! where it is absent, a failure when `CI=true`. Partitions need root (network namespaces).

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use faultline_targets::etcd::{EtcdCluster, EtcdSettings, EtcdSpec, Network, netns};
use serde_json::Value;

fn etcd_present() -> bool {
    match faultline_targets::etcd::find_etcd(None) {
        Ok(_) => true,
        Err(e) if std::env::var("CI").as_deref() == Ok("true") => {
            panic!("CI=true but etcd is missing: {e}")
        }
        Err(e) => {
            eprintln!("skipping: {e}");
            false
        }
    }
}

/// Whether network namespaces can be made (root with `ip` and `nft`). Under `CI=true` they
/// must be: a test that needs them fails rather than skipping.
fn root() -> bool {
    match netns::available() {
        Ok(_) => true,
        Err(e) if std::env::var("CI").as_deref() == Ok("true") => {
            panic!("CI=true but network namespaces are not available: {e}")
        }
        Err(_) => false,
    }
}

fn faultline() -> Command {
    Command::new(env!("CARGO_BIN_EXE_faultline"))
}

fn latest(out: &Path) -> PathBuf {
    std::fs::canonicalize(out.join("latest")).expect("results/latest points at the run")
}

/// etcd processes started by the faultline process `pid` (their cluster token names it).
fn members_of(pid: u32) -> Vec<u32> {
    let token = format!("--initial-cluster-token=faultline-{pid}");
    std::fs::read_dir("/proc")
        .unwrap()
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter(|p| {
            std::fs::read(format!("/proc/{p}/cmdline"))
                .is_ok_and(|c| String::from_utf8_lossy(&c).contains(&token))
        })
        .collect()
}

/// Namespaces and links made by the faultline process `pid`.
fn network_of(pid: u32) -> Vec<String> {
    let tag = format!("{:06x}", pid & 0xff_ffff);
    netns::existing()
        .into_iter()
        .filter(|x| x.contains(&tag))
        .collect()
}

#[test]
fn local_etcd_passes_under_faults_and_leaves_nothing_behind() {
    if !etcd_present() {
        return;
    }
    let out = tempfile::tempdir().unwrap();
    let nemesis = if root() {
        "partition,kill,pause"
    } else {
        "kill,pause"
    };
    let child = faultline()
        .args([
            "run",
            "--target",
            "local:etcd",
            "--nodes",
            "3",
            "--workload",
            "cas",
        ])
        .args(["--nemesis", nemesis, "--nemesis-interval", "700ms"])
        .args([
            "--time-limit",
            "8s",
            "--seed",
            "4",
            "--rate",
            "200",
            "--out",
        ])
        .arg(out.path())
        .spawn()
        .unwrap();
    let pid = child.id();
    let output = child.wait_with_output().unwrap();
    assert_eq!(
        output.status.code(),
        Some(0),
        "etcd is linearizable under {nemesis}"
    );
    let dir = latest(out.path());
    let verdict: Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("verdict.json")).unwrap()).unwrap();
    assert_eq!(verdict["verdict"], "PASS");
    let events = common::nemesis_events(&dir.join("history.jsonl"));
    assert!(
        events
            .iter()
            .any(|(f, v)| f == "kill" && v["action"] == "start")
    );
    let run: Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("run.json")).unwrap()).unwrap();
    assert_eq!(
        run["settings"]["network"],
        if root() { "netns" } else { "loopback" }
    );
    assert!(members_of(pid).is_empty(), "etcd members outlived the run");
    assert!(
        network_of(pid).is_empty(),
        "left behind: {:?}",
        network_of(pid)
    );
}

#[test]
fn ctrl_c_stops_every_member_and_removes_the_network() {
    if !etcd_present() {
        return;
    }
    let out = tempfile::tempdir().unwrap();
    let mut child = faultline()
        .args([
            "run",
            "--target",
            "local:etcd",
            "--nodes",
            "3",
            "--nemesis",
            "kill",
        ])
        .args(["--time-limit", "60s", "--out"])
        .arg(out.path())
        .spawn()
        .unwrap();
    let pid = child.id();
    let started = Instant::now();
    while members_of(pid).len() < 3 && started.elapsed() < Duration::from_secs(20) {
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(members_of(pid).len(), 3, "three members run");
    std::thread::sleep(Duration::from_secs(2));
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(pid as i32),
        nix::sys::signal::Signal::SIGINT,
    )
    .unwrap();
    let status = child.wait().unwrap();
    assert_eq!(status.code(), Some(130));
    assert!(members_of(pid).is_empty(), "etcd members outlived Ctrl-C");
    assert!(
        network_of(pid).is_empty(),
        "left behind: {:?}",
        network_of(pid)
    );
}

#[test]
fn leftovers_of_a_crashed_run_are_cleaned() {
    if !etcd_present() || !root() {
        eprintln!("skipping: needs root for namespaces");
        return;
    }
    // A tag whose pid can never exist (above Linux's largest pid_max).
    let ns = "faultline-ffffff01-n0";
    let bridge = "flbffffff01";
    assert!(
        Command::new("ip")
            .args(["netns", "add", ns])
            .status()
            .unwrap()
            .success()
    );
    assert!(
        Command::new("ip")
            .args(["link", "add", bridge, "type", "bridge"])
            .status()
            .unwrap()
            .success()
    );
    // Another test's faultline may clean them first, at its own start: either way they go.
    netns::clean_leftovers();
    assert!(
        !netns::existing().iter().any(|x| x.contains("ffffff01")),
        "still there: {:?}",
        netns::existing()
    );
}

async fn start_etcd() -> EtcdCluster {
    EtcdCluster::start(EtcdSpec {
        nodes: 3,
        bin: None,
        data_dir: None,
        settings: EtcdSettings {
            network: Some(Network::Loopback),
            ..EtcdSettings::default()
        },
    })
    .await
    .expect("a local etcd cluster starts")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn etcd_urls_take_faults_from_commands_and_proxies() {
    if !etcd_present() {
        return;
    }
    let cluster = start_etcd().await;
    let target = format!(
        "etcd://{}",
        cluster
            .direct_urls()
            .iter()
            .map(|u| u.trim_start_matches("http://").to_string())
            .collect::<Vec<_>>()
            .join(",")
    );
    let work = tempfile::tempdir().unwrap();
    // The commands find a node's process by its name: what a user's ssh script would do.
    let pids: String = (0..3)
        .map(|i| format!("n{} {}\n", i + 1, cluster.pid(i).unwrap()))
        .collect();
    let map = work.path().join("pids");
    std::fs::write(&map, pids).unwrap();
    let log = work.path().join("commands.log");
    let signal = |sig: &str| {
        format!(
            "for n in $FAULTLINE_TARGETS; do kill -{sig} $(grep \"^$n \" {} | cut -d' ' -f2); \
             done; echo \"$FAULTLINE_ACTION $FAULTLINE_FAULT $FAULTLINE_TARGETS\" >> {}",
            map.display(),
            log.display()
        )
    };
    let out = work.path().join("results");
    let target_for_run = target.clone();
    let (pause, resume) = (signal("STOP"), signal("CONT"));
    let output = tokio::task::spawn_blocking(move || {
        faultline()
            .args(["run", "--target", &target_for_run, "--workload", "cas"])
            .args(["--nemesis", "pause,packet", "--nemesis-interval", "500ms"])
            .arg("--nemesis-cmd")
            .arg(format!("pause={pause}"))
            .arg("--nemesis-cmd")
            .arg(format!("resume={resume}"))
            .args([
                "--time-limit",
                "6s",
                "--seed",
                "2",
                "--rate",
                "200",
                "--out",
            ])
            .arg(&out)
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(0), "{stderr}");
    let seen = std::fs::read_to_string(&log).unwrap();
    assert!(seen.contains("start pause n"), "{seen}");
    assert!(seen.contains("heal pause n"), "{seen}");
    let dir = latest(&work.path().join("results"));
    let events = common::nemesis_events(&dir.join("history.jsonl"));
    assert!(
        events
            .iter()
            .any(|(f, v)| f == "packet" && v["action"] == "start"),
        "packet faults went through the proxies: {events:?}"
    );

    // A command that fails is an error in the history and on the terminal: exit 4.
    let out = work.path().join("failing");
    let output = tokio::task::spawn_blocking(move || {
        faultline()
            .args(["run", "--target", &target, "--workload", "register"])
            .args(["--nemesis", "kill", "--nemesis-interval", "200ms"])
            .args(["--nemesis-cmd", "kill=echo no ssh key >&2; exit 7"])
            .args(["--nemesis-cmd", "restart=true"])
            .args(["--time-limit", "3s", "--seed", "1", "--out"])
            .arg(&out)
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(4), "{stderr}");
    assert!(stderr.contains("no ssh key"), "{stderr}");
    let dir = latest(&work.path().join("failing"));
    let events = common::nemesis_events(&dir.join("history.jsonl"));
    let error = events
        .iter()
        .find(|(_, v)| v["action"] == "error")
        .expect("the failure is in the history");
    assert!(
        error.1["error"]
            .as_str()
            .unwrap()
            .contains("exit status: 7")
    );
}

#[test]
fn faults_a_target_cannot_take_are_refused_before_the_run() {
    if !etcd_present() {
        return;
    }
    let refused = |args: &[&str], expect: &str| {
        let output = faultline().arg("run").args(args).output().unwrap();
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(2), "{stderr}");
        assert!(stderr.contains(expect), "{stderr}");
    };
    refused(
        &["--target", "local:etcd", "--nemesis", "clock"],
        "clock: cannot be applied",
    );
    refused(
        &["--target", "etcd://127.0.0.1:1", "--nemesis", "kill"],
        "--nemesis-cmd",
    );
    refused(
        &["--target", "etcd://127.0.0.1:1", "--set", "election-ms=100"],
        "valid keys: serializable",
    );
    refused(
        &["--target", "local:etcd", "--nemesis-cmd", "kill=true"],
        "faultline does not run",
    );
}

/// Transactions on etcd (a read, then one txn guarded by every key's mod_revision) are strict
/// serializable under partitions, kills and pauses. See: issue 17.
#[test]
fn etcd_transactions_are_strict_serializable_under_faults() {
    if !etcd_present() {
        return;
    }
    let out = tempfile::tempdir().unwrap();
    let nemesis = if root() {
        "partition,kill,pause"
    } else {
        "kill,pause"
    };
    let output = faultline()
        .args(["run", "--target", "local:etcd", "--workload", "list-append"])
        .args([
            "--nemesis",
            nemesis,
            "--nemesis-interval",
            "1s",
            "--time-limit",
            "6s",
        ])
        .args(["--seed", "3", "--format", "json", "--out"])
        .arg(out.path())
        .output()
        .unwrap();
    let verdict: serde_json::Value = serde_json::from_slice(&output.stdout)
        .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&output.stderr)));
    let txn = &verdict["checkers"][0];
    assert_eq!(txn["checker"], "transactional");
    assert_eq!(txn["valid"], "PASS", "{txn}");
    assert!(txn["details"]["committed"].as_u64().unwrap() > 50, "{txn}");
    assert_eq!(output.status.code(), Some(0));
}
