//! `faultline run` end to end: against a bundled cluster, against a deliberately broken HTTP
//! target, interrupted by SIGINT, and against nothing at all.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use faultline_checker::{Status, format};
use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

fn faultline() -> Command {
    Command::new(env!("CARGO_BIN_EXE_faultline"))
}

fn latest(out: &Path) -> PathBuf {
    std::fs::canonicalize(out.join("latest")).expect("results/latest points at the run")
}

/// Each invoke has exactly one completion, indices are dense and times monotone.
fn assert_well_formed(history: &Path) {
    let text = std::fs::read_to_string(history).unwrap();
    let mut open: HashMap<u64, u64> = HashMap::new();
    let mut last_time = 0;
    for (i, line) in text.lines().enumerate() {
        let e: Value = serde_json::from_str(line).unwrap_or_else(|e| panic!("line {}: {e}", i + 1));
        assert_eq!(e["index"], i as u64, "indices are dense");
        let time = e["time"].as_u64().unwrap();
        assert!(time >= last_time, "times are monotone at line {}", i + 1);
        last_time = time;
        let Some(p) = e["process"].as_u64() else {
            continue;
        };
        if e["type"] == "invoke" {
            assert!(
                open.insert(p, i as u64).is_none(),
                "process {p} invoked twice"
            );
        } else {
            assert!(
                open.remove(&p).is_some(),
                "a completion without invoke at {}",
                i + 1
            );
        }
    }
    assert!(open.is_empty(), "operations without completion: {open:?}");
}

#[test]
fn a_bundled_run_writes_a_checkable_run_directory() {
    let out = tempfile::tempdir().unwrap();
    let output = faultline()
        .args([
            "run",
            "--time-limit",
            "2s",
            "--rate",
            "200",
            "--workload",
            "register",
        ])
        .args(["--set", "mode=abd", "--seed", "7", "--out"])
        .arg(out.path())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("seed 7"), "{stderr}");
    let dir = latest(out.path());
    assert_well_formed(&dir.join("history.jsonl"));
    let verdict: Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("verdict.json")).unwrap()).unwrap();
    let run: Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("run.json")).unwrap()).unwrap();
    assert_eq!(run["seed"], 7);
    assert_eq!(run["settings"]["mode"], "abd");
    // ABD is linearizable for reads and writes: the verdict is PASS, and the exit code says so.
    assert_eq!(verdict["verdict"], "PASS", "{verdict}");
    assert_eq!(output.status.code(), Some(0));
    assert!(verdict["stats"]["all"]["count"].as_u64().unwrap() > 100);
    let junit = std::fs::read_to_string(dir.join("junit.xml")).unwrap();
    assert!(junit.starts_with("<?xml") && junit.contains(r#"<testcase name="linearizability""#));
    // faultline check re-checks the run directory with the workload's checkers.
    let check = faultline()
        .arg("check")
        .arg(out.path().join("latest"))
        .output()
        .unwrap();
    assert_eq!(check.status.code(), Some(0));
}

#[test]
fn a_set_run_checks_every_acknowledged_add() {
    let out = tempfile::tempdir().unwrap();
    let output = faultline()
        .args([
            "run",
            "--workload",
            "set",
            "--ops",
            "300",
            "--rate",
            "0",
            "--nodes",
            "3",
        ])
        .args(["--format", "json", "--out"])
        .arg(out.path())
        .output()
        .unwrap();
    let verdict: Value = serde_json::from_slice(&output.stdout).expect("verdict.json on stdout");
    assert_eq!(verdict["checkers"][0]["checker"], "set");
    assert_eq!(verdict["checkers"][0]["details"]["final_reads"], 3);
    assert_eq!(verdict["checkers"][0]["details"]["acknowledged"], 300);
    assert_eq!(verdict["verdict"], "PASS", "{verdict}");
    assert_eq!(output.status.code(), Some(0));
}

/// What the broken server does, per key.
async fn broken_server() -> (String, tokio::task::JoinHandle<()>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let writes: Arc<Mutex<HashMap<String, Vec<String>>>> = Arc::default();
    let task = tokio::spawn(async move {
        loop {
            let (mut socket, _) = listener.accept().await.unwrap();
            let writes = writes.clone();
            tokio::spawn(async move {
                let mut buf = vec![0u8; 65536];
                let mut len = 0;
                loop {
                    let Ok(n) = socket.read(&mut buf[len..]).await else {
                        return;
                    };
                    if n == 0 {
                        return;
                    }
                    len += n;
                    let text = String::from_utf8_lossy(&buf[..len]).to_string();
                    let Some(head_end) = text.find("\r\n\r\n") else {
                        continue;
                    };
                    let head = &text[..head_end];
                    let body_len: usize = head
                        .lines()
                        .find_map(|l| {
                            l.to_ascii_lowercase()
                                .strip_prefix("content-length:")
                                .map(|v| v.trim().parse().unwrap_or(0))
                        })
                        .unwrap_or(0);
                    if len < head_end + 4 + body_len {
                        continue;
                    }
                    let body = text[head_end + 4..head_end + 4 + body_len].to_string();
                    let mut parts = head.split_whitespace();
                    let (method, path) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""));
                    let key = path
                        .trim_start_matches("/kv/")
                        .trim_end_matches("/cas")
                        .to_string();
                    let reply = |status: &str, body: &str| {
                        format!(
                            "HTTP/1.1 {status}\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n{body}",
                            body.len()
                        )
                    };
                    let response = match (method, path, key.as_str()) {
                        (_, "/health", _) => reply("200 OK", "{}"),
                        // k0: writes are kept, but reads return the first value ever written.
                        ("PUT", _, "k0") => {
                            let v: Value = serde_json::from_str(&body).unwrap();
                            writes
                                .lock()
                                .unwrap()
                                .entry(key)
                                .or_default()
                                .push(v["value"].to_string());
                            reply("200 OK", "{}")
                        }
                        ("GET", _, "k0") => {
                            let first = writes
                                .lock()
                                .unwrap()
                                .get("k0")
                                .and_then(|w| w.first().cloned());
                            match first {
                                Some(v) => reply("200 OK", &format!(r#"{{"value": {v}}}"#)),
                                None => reply("404 Not Found", r#"{"value": null}"#),
                            }
                        }
                        (_, _, "k1") => reply("503 Service Unavailable", r#"{"error": "down"}"#),
                        (_, _, "k2") => reply("200 OK", "this is not json").replace(
                            "200 OK",
                            if method == "GET" {
                                "200 OK"
                            } else {
                                "500 Internal Server Error"
                            },
                        ),
                        (_, _, "k3") => {
                            tokio::time::sleep(Duration::from_secs(3600)).await;
                            return;
                        }
                        _ => return, // k4: close without answering
                    };
                    if socket.write_all(response.as_bytes()).await.is_err() {
                        return;
                    }
                    len = 0;
                }
            });
        }
    });
    (url, task)
}

#[tokio::test(flavor = "multi_thread")]
async fn a_broken_target_gives_fail_for_stale_reads_and_the_protocol_table_for_the_rest() {
    let (url, server) = broken_server().await;
    let out = tempfile::tempdir().unwrap();
    let started = Instant::now();
    let output = tokio::process::Command::new(env!("CARGO_BIN_EXE_faultline"))
        .args([
            "run",
            "--target",
            &url,
            "--workload",
            "register",
            "--ops",
            "150",
        ])
        .args([
            "--rate",
            "0",
            "--clients",
            "6",
            "--op-timeout",
            "300ms",
            "--out",
        ])
        .arg(out.path())
        .output()
        .await
        .unwrap();
    server.abort();
    assert!(started.elapsed() < Duration::from_secs(60));
    assert_eq!(
        output.status.code(),
        Some(1),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let dir = latest(out.path());
    assert_well_formed(&dir.join("history.jsonl"));
    let verdict: Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("verdict.json")).unwrap()).unwrap();
    let failures = &verdict["checkers"][0]["details"]["failures"];
    assert_eq!(failures.as_array().map(Vec::len), Some(1), "{verdict}");
    assert_eq!(failures[0]["key"], "k0");

    let history = format::read_path(&dir.join("history.jsonl"), None)
        .unwrap()
        .history;
    for op in &history.ops {
        let key = op.key.as_deref().unwrap();
        let expected = match (key, op.f.as_str()) {
            ("k0", _) => Status::Ok,
            ("k1", _) => Status::Fail,
            ("k2", "read") => Status::Info, // a 200 whose body is garbage: result unknown
            ("k2", _) => Status::Info,      // 500
            ("k3", _) | ("k4", _) => Status::Info,
            _ => unreachable!(),
        };
        assert_eq!(op.status, expected, "{op:?}");
    }
    // Never waits past --op-timeout (with scheduling slack).
    let text = std::fs::read_to_string(dir.join("history.jsonl")).unwrap();
    let mut invoked: HashMap<u64, u64> = HashMap::new();
    for line in text.lines() {
        let e: Value = serde_json::from_str(line).unwrap();
        let (p, t) = (e["process"].as_u64().unwrap(), e["time"].as_u64().unwrap());
        if e["type"] == "invoke" {
            invoked.insert(p, t);
        } else {
            let waited = Duration::from_nanos(t - invoked[&p]);
            assert!(waited < Duration::from_millis(800), "waited {waited:?}");
        }
    }
}

#[test]
fn an_unreachable_target_is_exit_4_naming_the_url() {
    let out = tempfile::tempdir().unwrap();
    let output = faultline()
        .args([
            "run",
            "--target",
            "http://127.0.0.1:1",
            "--time-limit",
            "1s",
            "--out",
        ])
        .arg(out.path())
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(4));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("cannot reach http://127.0.0.1:1"),
        "{stderr}"
    );
}

/// The pids of `parent`'s children, from /proc.
fn children(parent: u32) -> Vec<i32> {
    let mut kids = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<i32>() else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(entry.path().join("stat")) else {
            continue;
        };
        let after = &stat[stat.rfind(')').unwrap_or(0) + 2..];
        let ppid: u32 = after
            .split_whitespace()
            .nth(1)
            .and_then(|s| s.parse().ok())
            .unwrap_or(0);
        if ppid == parent {
            kids.push(pid);
        }
    }
    kids
}

#[test]
fn sigint_mid_run_exits_130_with_a_readable_history_and_no_child_left() {
    let out = tempfile::tempdir().unwrap();
    let mut child = faultline()
        .args(["run", "--time-limit", "60s", "--rate", "300", "--out"])
        .arg(out.path())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    // Wait until operations are being recorded.
    let deadline = Instant::now() + Duration::from_secs(30);
    let history = loop {
        assert!(Instant::now() < deadline, "the run never started recording");
        let found = std::fs::read_dir(out.path())
            .ok()
            .and_then(|mut d| d.find_map(|e| e.ok().map(|e| e.path().join("history.jsonl"))));
        if let Some(h) = found.filter(|h| std::fs::metadata(h).is_ok_and(|m| m.len() > 2000)) {
            break h;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let nodes = children(child.id());
    assert_eq!(nodes.len(), 5, "five node processes");
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(child.id() as i32),
        nix::sys::signal::Signal::SIGINT,
    )
    .unwrap();
    let status = child.wait().unwrap();
    assert_eq!(status.code(), Some(130));
    let read = format::read_path(&history, None).expect("the history prefix reads");
    assert!(!read.history.ops.is_empty());
    for pid in nodes {
        let alive = nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), None).is_ok();
        assert!(!alive, "node {pid} outlived faultline");
    }
}

/// The `faultline-cluster-<pid>-…` data directories under `tmp` of the faultline `pid`.
fn cluster_dirs(tmp: &Path, pid: u32) -> Vec<PathBuf> {
    std::fs::read_dir(tmp)
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .filter(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with(&format!("faultline-cluster-{pid}-")))
        })
        .collect()
}

/// After `kill -9` of faultline, `results/latest` is the killed run (checkable from its
/// prefix), and the next run removes the killed run's cluster data. See: issue 22.
#[test]
fn a_killed_run_is_latest_and_its_leftovers_go_at_the_next_start() {
    let out = tempfile::tempdir().unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let mut child = faultline()
        .args(["run", "--time-limit", "60s", "--rate", "300", "--out"])
        .arg(out.path())
        .env("TMPDIR", tmp.path())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let killed = child.id();
    let deadline = Instant::now() + Duration::from_secs(30);
    let history = out.path().join("latest/history.jsonl");
    while !std::fs::metadata(&history).is_ok_and(|m| m.len() > 2000) {
        assert!(
            Instant::now() < deadline,
            "latest never showed a recording run"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let nodes = children(killed);
    child.kill().unwrap();
    child.wait().unwrap();
    // The nodes die with their parent; their data stays behind.
    let deadline = Instant::now() + Duration::from_secs(10);
    while nodes
        .iter()
        .any(|&pid| nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), None).is_ok())
    {
        assert!(Instant::now() < deadline, "a node outlived faultline");
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(
        cluster_dirs(tmp.path(), killed).len(),
        1,
        "the killed run's data is left"
    );
    let checked = faultline()
        .args(["check"])
        .arg(out.path().join("latest"))
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&checked.stdout);
    assert!(
        matches!(checked.status.code(), Some(0 | 1 | 3)),
        "latest is the killed run, checkable: {stdout}{}",
        String::from_utf8_lossy(&checked.stderr)
    );
    let again = faultline()
        .args(["run", "--time-limit", "1s", "--nemesis", "none", "--out"])
        .arg(out.path())
        .env("TMPDIR", tmp.path())
        .output()
        .unwrap();
    assert!(again.status.code().is_some_and(|c| c != 4), "{again:?}");
    assert!(
        cluster_dirs(tmp.path(), killed).is_empty(),
        "the next start removed the dead run's data"
    );
}

fn causal_run(settings: &str, seed: u64) -> Value {
    let out = tempfile::tempdir().unwrap();
    let output = faultline()
        .args([
            "run",
            "--workload",
            "causal",
            "--set",
            settings,
            "--nemesis",
            "partition",
        ])
        .args([
            "--nemesis-interval",
            "500ms",
            "--time-limit",
            "3s",
            "--rate",
            "1000",
        ])
        .args(["--seed", &seed.to_string(), "--format", "json", "--out"])
        .arg(out.path())
        .output()
        .unwrap();
    serde_json::from_slice(&output.stdout).expect("verdict.json on stdout")
}

#[test]
fn the_causal_workload_finds_weak_quorums_and_passes_abd() {
    let failed = (1..=4).any(|seed| causal_run("n=3,w=1,r=1", seed)["verdict"] == "FAIL");
    assert!(
        failed,
        "no seed of 4 found a causal or session violation with w=1,r=1"
    );
    let abd = causal_run("n=3,w=2,r=2,mode=abd", 1);
    assert_eq!(abd["checkers"].as_array().map(Vec::len), Some(8));
    assert_eq!(abd["verdict"], "PASS", "{abd}");
}
