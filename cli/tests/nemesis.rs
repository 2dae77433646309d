//! The nemesis against real bundled clusters: every fault kind has an effect you can see, the
//! same seed gives the same faults, and healing leaves nothing broken.

use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use faultline_nemesis::{Backend, BundledBackend, ClockMode, Fault, Schedule, Shape};
mod common;

use faultline_targets::cluster::Cluster;
use serde_json::{Value, json};

type Shared = Arc<Mutex<Option<Cluster>>>;

async fn cluster(nodes: u32, settings: &str) -> (Shared, Vec<String>) {
    let cluster = common::start_cluster(nodes, settings).await;
    let urls = cluster.urls();
    (Arc::new(Mutex::new(Some(cluster))), urls)
}

fn http() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(Duration::from_secs(5))
        .build()
        .unwrap()
}

async fn put(url: &str, key: &str, value: Value) -> u16 {
    http()
        .put(format!("{url}/kv/{key}"))
        .json(&json!({ "value": value }))
        .send()
        .await
        .map_or(0, |r| r.status().as_u16())
}

async fn get(url: &str, key: &str) -> Value {
    let r = http().get(format!("{url}/kv/{key}")).send().await.unwrap();
    r.json::<Value>().await.unwrap()["value"].clone()
}

async fn state(url: &str) -> Value {
    http()
        .get(format!("{url}/admin/state"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

/// n1 alone against n2 and n3, both ways.
fn halves_of_three() -> Fault {
    Fault::Partition {
        shape: Shape::Halves,
        one_way: false,
        groups: vec![vec![0], vec![1, 2]],
        cuts: vec![(0, 1), (0, 2), (1, 0), (2, 0)],
    }
}

#[tokio::test]
async fn a_partition_fails_w3_writes_and_lets_w1_writes_through_on_both_sides() {
    for (w, expect) in [(3, false), (1, true)] {
        let (shared, urls) = cluster(3, &format!("n=3,r=1,w={w},timeout-ms=300")).await;
        let mut backend = BundledBackend::new(shared.clone()).unwrap();
        backend.apply(&halves_of_three()).await.unwrap();
        for (side, url) in [(0, &urls[0]), (1, &urls[2])] {
            let status = put(url, &format!("k{side}"), json!(side)).await;
            assert_eq!(status == 200, expect, "w={w}, side {side}: {status}");
        }
        backend.heal_all().await.unwrap();
        // Peers suspected during the partition are pinged back within a few hundred ms.
        let mut healed = false;
        for _ in 0..40 {
            if put(&urls[0], "after", json!(1)).await == 200 {
                healed = true;
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        assert!(healed, "writes succeed again after healing");
    }
}

#[tokio::test]
async fn a_clock_bump_makes_lww_keep_the_older_write() {
    let (shared, urls) = cluster(3, "n=3,r=3,w=3").await;
    let mut backend = BundledBackend::new(shared).unwrap();
    let bump = Fault::Clock {
        mode: ClockMode::Bump,
        offsets: vec![(0, 60_000)],
    };
    backend.apply(&bump).await.unwrap();
    assert_eq!(state(&urls[0]).await["clock_offset_ms"], 60_000);
    assert_eq!(put(&urls[0], "k", json!("older")).await, 200);
    assert_eq!(put(&urls[1], "k", json!("newer")).await, 200);
    assert_eq!(get(&urls[2], "k").await, json!("older"));
    backend.heal(&bump).await.unwrap();
    assert_eq!(state(&urls[0]).await["clock_offset_ms"], 0);
}

#[tokio::test]
async fn kill_and_restart_keeps_acknowledged_writes() {
    let (shared, urls) = cluster(3, "n=3,r=1,w=3").await;
    let mut backend = BundledBackend::new(shared.clone()).unwrap();
    assert_eq!(put(&urls[0], "k", json!("kept")).await, 200);
    let kill = Fault::Kill { nodes: vec![2] };
    let old_pid = shared.lock().unwrap().as_ref().unwrap().nodes()[2].pid();
    backend.apply(&kill).await.unwrap();
    assert!(
        http()
            .get(format!("{}/health", urls[2]))
            .send()
            .await
            .is_err(),
        "killed"
    );
    backend.heal(&kill).await.unwrap();
    let new_pid = shared.lock().unwrap().as_ref().unwrap().nodes()[2].pid();
    assert_ne!(old_pid, new_pid, "restarted as a new process");
    let local = http()
        .get(format!("{}/admin/state?key=k", urls[2]))
        .send()
        .await
        .unwrap()
        .json::<Value>()
        .await
        .unwrap();
    assert_eq!(local["local"]["versions"][0]["value"], json!("kept"));
}

#[tokio::test]
async fn a_pause_makes_requests_time_out_then_recover() {
    let (shared, urls) = cluster(3, "n=3,r=1,w=1").await;
    let mut backend = BundledBackend::new(shared).unwrap();
    let pause = Fault::Pause { nodes: vec![1] };
    backend.apply(&pause).await.unwrap();
    let quick = reqwest::Client::builder()
        .timeout(Duration::from_millis(300))
        .build()
        .unwrap();
    let paused = quick.get(format!("{}/kv/k", urls[1])).send().await;
    assert!(
        paused.is_err_and(|e| e.is_timeout()),
        "a paused node does not answer"
    );
    backend.heal(&pause).await.unwrap();
    let r = quick
        .get(format!("{}/health", urls[1]))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
}

#[tokio::test]
async fn packet_loss_makes_peer_messages_vanish() {
    let (shared, urls) = cluster(3, "n=3,r=1,w=1").await;
    let mut backend = BundledBackend::new(shared).unwrap();
    let loss = Fault::Packet {
        nodes: vec![0],
        delay_ms: 0,
        jitter_ms: 0,
        loss: 1.0,
        duplicate: 0.0,
    };
    backend.apply(&loss).await.unwrap();
    for i in 0..5 {
        assert_eq!(
            put(&urls[0], &format!("k{i}"), json!(i)).await,
            200,
            "w=1: local ack"
        );
    }
    let counters = &state(&urls[0]).await["counters"];
    assert!(
        counters["dropped_outgoing"].as_u64().unwrap() >= 5,
        "{counters}"
    );
    assert_eq!(counters["messages_sent"], 0, "{counters}");
    backend.heal(&loss).await.unwrap();
}

#[tokio::test]
async fn heal_all_leaves_nothing_paused_partitioned_skewed_or_dead() {
    let (shared, urls) = cluster(5, "").await;
    let mut backend = BundledBackend::new(shared.clone()).unwrap();
    let mut schedule = Schedule::new(vec![], vec![], Duration::from_secs(1), 5, 9);
    backend
        .apply(&schedule.partition(Shape::Bridge))
        .await
        .unwrap();
    backend
        .apply(&Fault::Clock {
            mode: ClockMode::Strobe { period_ms: 20 },
            offsets: vec![(1, -5_000)],
        })
        .await
        .unwrap();
    backend
        .apply(&Fault::Kill { nodes: vec![3] })
        .await
        .unwrap();
    backend
        .apply(&Fault::Pause { nodes: vec![4] })
        .await
        .unwrap();
    backend.heal_all().await.unwrap();
    let pids: Vec<u32> = shared
        .lock()
        .unwrap()
        .as_ref()
        .unwrap()
        .nodes()
        .iter()
        .map(|n| n.pid().expect("every node runs"))
        .collect();
    for (i, url) in urls.iter().enumerate() {
        let s = state(url).await;
        assert_eq!(s["faults"]["drop_to"], json!([]), "n{}", i + 1);
        assert_eq!(s["faults"]["drop_from"], json!([]), "n{}", i + 1);
        assert_eq!(s["clock_offset_ms"], 0, "n{}", i + 1);
        let stat = std::fs::read_to_string(format!("/proc/{}/stat", pids[i])).unwrap();
        let process_state = stat[stat.rfind(')').unwrap() + 2..].chars().next().unwrap();
        assert_ne!(process_state, 'T', "n{} is still stopped", i + 1);
    }
    // Stopping the cluster leaves no process.
    shared.lock().unwrap().take();
    for pid in pids {
        let alive = nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid as i32), None).is_ok();
        assert!(!alive, "{pid} outlived the cluster");
    }
}

fn nemesis_lines(out: &std::path::Path) -> Vec<(String, Value)> {
    common::nemesis_events(
        &std::fs::canonicalize(out.join("latest"))
            .unwrap()
            .join("history.jsonl"),
    )
}

#[test]
fn the_same_seed_gives_the_same_nemesis_events() {
    let run = || {
        let out = tempfile::tempdir().unwrap();
        let status = Command::new(env!("CARGO_BIN_EXE_faultline"))
            .args(["run", "--time-limit", "3s", "--rate", "100", "--seed", "42"])
            .args([
                "--nemesis",
                "partition,clock,kill,pause,packet",
                "--nemesis-interval",
                "200ms",
            ])
            .args(["--nodes", "3", "--format", "json", "--out"])
            .arg(out.path())
            .output()
            .unwrap();
        assert!(
            matches!(status.status.code(), Some(0 | 1 | 3)),
            "{}",
            String::from_utf8_lossy(&status.stderr)
        );
        nemesis_lines(out.path())
    };
    let (a, b) = (run(), run());
    // Both runs last 3 s of wall time, so they may end one fault apart (a start and its heal),
    // never more: a run that stopped early fails here rather than passing on a short prefix.
    // A fault cycle is at most 2 × 200 ms of wait and 2 × 200 ms of hold, so 3 s holds at
    // least two whole faults even with slow kills and restarts.
    let (short, long) = if a.len() <= b.len() {
        (&a, &b)
    } else {
        (&b, &a)
    };
    assert!(
        long.len() - short.len() <= 2,
        "runs diverged:\n{a:?}\n{b:?}"
    );
    assert!(short.len() >= 5, "too few nemesis events: {short:?}");
    let common = short.len() - 1; // the last line is the final heal-all
    assert_eq!(a[..common], b[..common]);
    assert_eq!(a.last().unwrap().0, "all");
    assert_eq!(b.last().unwrap().0, "all");
}
