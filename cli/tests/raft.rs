//! The bundled Raft cluster: correct under faults, and a cut-off leader does not answer.

use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use faultline_nemesis::{Backend, BundledBackend, Fault, Shape};
use faultline_targets::cluster::{Cluster, ClusterSpec};
use serde_json::{Value, json};

/// `faultline run --target bundled:raft --workload cas` for 5 s with `nemesis` (seed `seed`);
/// returns its exit code and verdict.json.
fn run_cas(out: &std::path::Path, nemesis: &[&str], seed: &str) -> (Option<i32>, Value) {
    let output = Command::new(env!("CARGO_BIN_EXE_faultline"))
        .args(["run", "--target", "bundled:raft", "--workload", "cas"])
        .args(nemesis)
        .args([
            "--time-limit",
            "5s",
            "--seed",
            seed,
            "--format",
            "json",
            "--out",
        ])
        .arg(out)
        .output()
        .unwrap();
    let verdict = serde_json::from_slice(&output.stdout).expect("verdict.json");
    (output.status.code(), verdict)
}

#[test]
fn raft_passes_cas_under_partitions_crashes_and_pauses() {
    let out = tempfile::tempdir().unwrap();
    let nemesis = [
        "--nemesis",
        "partition,kill,pause",
        "--nemesis-interval",
        "500ms",
    ];
    let (code, verdict) = run_cas(out.path(), &nemesis, "3");
    assert_eq!(verdict["verdict"], "PASS", "{verdict}");
    assert_eq!(code, Some(0));
    let raft = checker(&verdict, "raft-safety");
    assert_eq!(raft["valid"], "PASS", "{verdict}");
    assert!(
        raft["details"]["terms_led"].as_u64().unwrap() >= 1,
        "{raft}"
    );
    assert!(
        raft["details"]["indexes_applied"].as_u64().unwrap() >= 1,
        "{raft}"
    );
}

/// The verdict of `name` among a verdict.json's checkers.
fn checker<'a>(verdict: &'a Value, name: &str) -> &'a Value {
    verdict["checkers"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["checker"] == name)
        .unwrap_or_else(|| panic!("no {name} verdict in {verdict}"))
}

#[test]
fn raft_runs_keep_the_nodes_notes_and_check_judges_them_again() {
    let out = tempfile::tempdir().unwrap();
    let (code, verdict) = run_cas(out.path(), &["--nemesis", "none"], "5");
    assert_eq!(code, Some(0), "{verdict}");
    assert_eq!(checker(&verdict, "raft-safety")["valid"], "PASS");
    let run = out.path().join("latest");
    let notes = run.join("raft-notes");
    for node in ["n1", "n2", "n3"] {
        let text = std::fs::read_to_string(notes.join(format!("{node}.jsonl"))).unwrap();
        assert!(
            text.contains("\"applied\""),
            "{node} applied nothing: {text}"
        );
    }
    // Whoever led term t: a second leader of that term is what forget-vote produces.
    let leader_notes = ["n1", "n2", "n3"]
        .into_iter()
        .find_map(|node| {
            let text = std::fs::read_to_string(notes.join(format!("{node}.jsonl"))).unwrap();
            let led = text.lines().find(|l| l.contains("\"led\""))?.to_string();
            Some((node, led))
        })
        .expect("someone led");
    let other = if leader_notes.0 == "n1" { "n2" } else { "n1" };
    let path = notes.join(format!("{other}.jsonl"));
    let mut text = std::fs::read_to_string(&path).unwrap();
    text.push_str(&format!("{}\n", leader_notes.1));
    std::fs::write(&path, text).unwrap();
    let (code, stdout) = check(&run);
    assert_eq!(code, Some(1), "{stdout}");
    assert!(stdout.contains("Election Safety:"), "{stdout}");
    assert!(
        stdout.contains(&format!("{other} and")) || stdout.contains(&format!("and {other}")),
        "{stdout}"
    );
    // A node's notes gone: Raft's safety cannot be judged.
    std::fs::remove_file(&path).unwrap();
    let (code, stdout) = check(&run);
    assert_eq!(code, Some(3), "{stdout}");
    assert!(stdout.contains("left no notes"), "{stdout}");
}

/// `faultline check <run>`: its exit code and what it printed.
fn check(run: &std::path::Path) -> (Option<i32>, String) {
    let output = Command::new(env!("CARGO_BIN_EXE_faultline"))
        .arg("check")
        .arg(run)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    (output.status.code(), stdout)
}

#[tokio::test]
async fn a_leader_cut_off_from_the_majority_answers_no_request() {
    let cluster = raft_cluster(&["timeout-ms=400"]).await;
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
        .get(format!("{}/kv/k", urls[leader as usize]))
        .send()
        .await
        .unwrap();
    assert_ne!(
        read.status(),
        200,
        "the cut-off leader must not serve a read"
    );
    let write = http
        .put(format!("{}/kv/k", urls[leader as usize]))
        .json(&json!({"value": 2}))
        .send()
        .await
        .unwrap();
    assert_ne!(write.status(), 200, "nor commit a write");
    backend.heal_all().await.unwrap();
}

async fn raft_cluster(settings: &[&str]) -> Cluster {
    Cluster::start(ClusterSpec {
        system: "raft".into(),
        nodes: 3,
        settings: settings.iter().map(|s| s.to_string()).collect(),
        data_dir: None,
        exe: env!("CARGO_BIN_EXE_faultline").into(),
        seed: 1,
    })
    .await
    .unwrap()
}

/// Writes `value` to `k` through `url` until a leader takes it; returns the status and how
/// long the accepted write took.
async fn write_when_led(http: &reqwest::Client, url: &str, value: i64) -> (u16, Duration) {
    for _ in 0..100 {
        let started = std::time::Instant::now();
        let status = http
            .put(format!("{url}/kv/k"))
            .json(&json!({ "value": value }))
            .send()
            .await
            .map_or(0, |r| r.status().as_u16());
        if status == 200 {
            return (status, started.elapsed());
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    (0, Duration::ZERO)
}

#[tokio::test]
async fn a_node_crashed_right_after_a_log_write_restarts_from_its_log() {
    let cluster = raft_cluster(&[]).await;
    let urls = cluster.urls();
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(5))
        .build()
        .unwrap();
    assert_eq!(write_when_led(&http, &urls[0], 1).await.0, 200);
    let arm = |url: &String, faults: Value| {
        let request = http.post(format!("{url}/admin/faults")).json(&faults);
        async move { request.send().await.unwrap().status().as_u16() }
    };
    let crash = json!({
        "crash_after": [{"point": {"persist": []}, "chance": 1.0}],
        "crash_down_ms": 300
    });
    for url in &urls {
        assert_eq!(arm(url, crash.clone()).await, 200);
    }
    // The leader crashes right after it logs the entry: the client cannot know the outcome.
    let status = http
        .put(format!("{}/kv/k", urls[0]))
        .json(&json!({ "value": 2 }))
        .send()
        .await
        .unwrap()
        .status()
        .as_u16();
    assert!(matches!(status, 503 | 504), "{status}");
    let mut crashes = 0;
    for url in &urls {
        assert_eq!(arm(url, json!({})).await, 200);
        let state = get_json(&http, &format!("{url}/admin/state")).await;
        crashes += state["counters"]["crashes"].as_u64().unwrap();
    }
    assert!(crashes >= 1, "someone crashed");
    // Back from their logs, the nodes elect a leader and still hold the acknowledged write
    // (1), or the one whose outcome the client could not know (2), never nothing.
    let held = read_when_led(&http, &urls[2]).await;
    assert!(
        held == json!(1) || held == json!(2),
        "k holds {held} after the crash"
    );
    assert_eq!(write_when_led(&http, &urls[1], 3).await.0, 200);
    let read = get_json(&http, &format!("{}/kv/k", urls[2])).await;
    assert_eq!(read["value"], json!(3));
}

/// Reads `k` through `url` until a leader answers; returns the value read.
async fn read_when_led(http: &reqwest::Client, url: &str) -> Value {
    for _ in 0..100 {
        if let Ok(r) = http.get(format!("{url}/kv/k")).send().await {
            if r.status().as_u16() == 200 {
                return r.json::<Value>().await.unwrap()["value"].clone();
            }
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("no leader answered a read of k through {url} in 10 s");
}

/// The JSON body of `GET url`.
async fn get_json(http: &reqwest::Client, url: &str) -> Value {
    http.get(url).send().await.unwrap().json().await.unwrap()
}

#[tokio::test]
async fn link_latency_delays_every_message_between_nodes() {
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(5))
        .build()
        .unwrap();
    let cluster = raft_cluster(&["link-ms=100", "election-ms=1000", "heartbeat-ms=100"]).await;
    let (status, took) = write_when_led(&http, &cluster.urls()[0], 1).await;
    assert_eq!(status, 200);
    // Commit needs the entry to reach a follower and its answer to come back: 2 × 100 ms.
    assert!(took >= Duration::from_millis(190), "{took:?}");
}

#[test]
fn crash_faults_run_on_bundled_targets_and_are_refused_elsewhere() {
    let out = tempfile::tempdir().unwrap();
    let nemesis = [
        "--nemesis",
        "crash",
        "--crash-points",
        "persist,send:AppendReply",
        "--nemesis-interval",
        "300ms",
    ];
    let (code, verdict) = run_cas(out.path(), &nemesis, "2");
    assert_eq!(verdict["verdict"], "PASS", "{verdict}");
    assert_eq!(
        code,
        Some(0),
        "PASS, and the nemesis applied and healed every crash"
    );
    let history = std::fs::read_to_string(out.path().join("latest").join("history.jsonl")).unwrap();
    let crash_starts = history
        .lines()
        .filter(|l| l.contains("\"crash\"") && l.contains("\"after\""))
        .count();
    assert!(crash_starts >= 1, "no crash fault in {history}");

    let refused = Command::new(env!("CARGO_BIN_EXE_faultline"))
        .args([
            "run",
            "--target",
            "http://127.0.0.1:1",
            "--nemesis",
            "crash",
        ])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert_eq!(refused.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("crash points need"), "{stderr}");

    // A kind the nodes never send would never strike: refused, with the kinds there are.
    let unknown = Command::new(env!("CARGO_BIN_EXE_faultline"))
        .args(["run", "--target", "bundled:raft", "--nemesis", "crash"])
        .args(["--crash-points", "send:VoteReply"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&unknown.stderr);
    assert_eq!(unknown.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("no messages of the kind `VoteReply`")
            && stderr.contains("VoteGranted, VoteRefused"),
        "{stderr}"
    );

    let bad = Command::new(env!("CARGO_BIN_EXE_faultline"))
        .args(["run", "--crash-points", "fsync"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&bad.stderr);
    assert_eq!(bad.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("expected persist, persist:KIND"),
        "{stderr}"
    );
}
