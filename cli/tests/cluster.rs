//! Real quorum clusters on ephemeral loopback ports: node processes started through the
//! library API with this build's `faultline` binary, faults set through `POST /admin/faults`,
//! crashes by SIGKILL.

use std::time::Duration;

mod common;

use faultline_targets::cluster::Cluster;
use faultline_targets::systems::quorum::Ring;
use serde_json::{Value, json};

async fn cluster(nodes: u32, settings: &str) -> Cluster {
    common::start_cluster(nodes, settings).await
}

/// The owners (preference list) of `key`, as node indices.
fn owners(cluster: &Cluster, key: &str) -> Vec<usize> {
    let s = cluster.settings().quorum().expect("a quorum cluster");
    let ids: Vec<u32> = (0..s.nodes).collect();
    Ring::new(&ids, s.vnodes)
        .preference_list(key, s.n as usize)
        .into_iter()
        .map(|n| n as usize)
        .collect()
}

struct Http(reqwest::Client);

impl Http {
    fn new() -> Self {
        Http(
            reqwest::Client::builder()
                .timeout(Duration::from_secs(10))
                .build()
                .unwrap(),
        )
    }

    async fn put(&self, cluster: &Cluster, node: usize, key: &str, body: Value) -> (u16, Value) {
        let url = format!("{}/kv/{key}", cluster.urls()[node]);
        let r = self.0.put(url).json(&body).send().await.unwrap();
        (r.status().as_u16(), r.json().await.unwrap_or(Value::Null))
    }

    async fn get(&self, cluster: &Cluster, node: usize, key: &str) -> (u16, Value) {
        let url = format!("{}/kv/{key}", cluster.urls()[node]);
        let r = self.0.get(url).send().await.unwrap();
        (r.status().as_u16(), r.json().await.unwrap_or(Value::Null))
    }

    async fn local(&self, cluster: &Cluster, node: usize, key: &str) -> Value {
        let url = format!("{}/admin/state?key={key}", cluster.urls()[node]);
        let state: Value = self.0.get(url).send().await.unwrap().json().await.unwrap();
        state["local"].clone()
    }

    async fn faults(&self, cluster: &Cluster, node: usize, faults: Value) {
        let url = format!("{}/admin/faults", cluster.urls()[node]);
        let r = self.0.post(url).json(&faults).send().await.unwrap();
        assert_eq!(r.status(), 200, "{}", r.text().await.unwrap());
    }

    /// Cuts `side` off from every other node, both ways.
    async fn partition(&self, cluster: &Cluster, side: &[usize]) {
        let n = cluster.nodes().len();
        for node in 0..n {
            let others: Vec<String> = (0..n)
                .filter(|o| side.contains(o) != side.contains(&node))
                .map(|o| format!("n{}", o + 1))
                .collect();
            self.faults(
                cluster,
                node,
                json!({ "drop_to": others, "drop_from": others }),
            )
            .await;
        }
    }

    async fn heal(&self, cluster: &Cluster) {
        for node in 0..cluster.nodes().len() {
            self.faults(cluster, node, json!({})).await;
        }
    }
}

#[tokio::test]
async fn writes_with_n3_w2_survive_one_crash_not_two_partitioned() {
    let mut cluster = cluster(5, "n=3,r=2,w=2,timeout-ms=300").await;
    let http = Http::new();
    let owners = owners(&cluster, "k");
    cluster.kill(owners[1] as u32).unwrap();
    let (status, _) = http
        .put(&cluster, owners[0], "k", json!({"value": 1}))
        .await;
    assert_eq!(status, 200, "one replica down: W=2 still reachable");
    cluster.restart(owners[1]).await.unwrap();
    http.partition(&cluster, &[owners[1], owners[2]]).await;
    let (status, body) = http
        .put(&cluster, owners[0], "k", json!({"value": 2}))
        .await;
    assert!(status == 503 || status == 504, "{status} {body}");
}

#[tokio::test]
async fn w1_writes_succeed_while_partitioned() {
    let cluster = cluster(5, "n=3,r=1,w=1").await;
    let http = Http::new();
    let owners = owners(&cluster, "k");
    http.partition(&cluster, &[owners[0]]).await;
    let (status, _) = http
        .put(&cluster, owners[0], "k", json!({"value": 1}))
        .await;
    assert_eq!(status, 200);
}

#[tokio::test]
async fn a_node_restarted_after_sigkill_serves_what_it_acknowledged() {
    let mut cluster = cluster(3, "n=3,r=1,w=3").await;
    let http = Http::new();
    for i in 0..20 {
        let (status, _) = http
            .put(&cluster, i % 3, &format!("k{i}"), json!({"value": i}))
            .await;
        assert_eq!(status, 200);
    }
    // Every replica acked every write (w=3); crash one and isolate it after restart.
    cluster.kill(2).unwrap();
    cluster.restart(2).await.unwrap();
    http.partition(&cluster, &[2]).await;
    for i in 0..20 {
        let (status, body) = http.get(&cluster, 2, &format!("k{i}")).await;
        assert_eq!((status, &body["value"]), (200, &json!(i)), "k{i}: {body}");
    }
}

#[tokio::test]
async fn sloppy_quorums_hand_hints_to_the_owner_after_healing() {
    let cluster = cluster(5, "n=3,r=1,w=2,sloppy=true,timeout-ms=600").await;
    let http = Http::new();
    let owners = owners(&cluster, "k");
    http.partition(&cluster, &[owners[1], owners[2]]).await;
    let (status, body) = http
        .put(&cluster, owners[0], "k", json!({"value": "hinted"}))
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        http.local(&cluster, owners[1], "k").await["versions"],
        json!([])
    );
    http.heal(&cluster).await;
    let mut delivered = false;
    for _ in 0..100 {
        let local = http.local(&cluster, owners[1], "k").await;
        if local["versions"][0]["value"] == json!("hinted") {
            delivered = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(delivered, "the hint reached the owner");
}

#[tokio::test]
async fn lww_with_a_fast_clock_drops_the_later_write() {
    let cluster = cluster(3, "n=3,r=3,w=3").await;
    let http = Http::new();
    http.faults(&cluster, 0, json!({ "clock_offset_ms": 60_000 }))
        .await;
    assert_eq!(
        http.put(&cluster, 0, "k", json!({"value": "first"}))
            .await
            .0,
        200
    );
    assert_eq!(
        http.put(&cluster, 1, "k", json!({"value": "second"}))
            .await
            .0,
        200
    );
    let (status, body) = http.get(&cluster, 2, "k").await;
    assert_eq!(status, 200);
    assert_eq!(
        body["value"],
        json!("first"),
        "the later write was lost to clock skew"
    );
}

#[tokio::test]
async fn vector_clock_siblings_over_http() {
    let cluster = cluster(3, "n=3,r=3,w=3,resolution=vclock").await;
    let http = Http::new();
    assert_eq!(
        http.put(&cluster, 0, "k", json!({"value": "a"})).await.0,
        200
    );
    assert_eq!(
        http.put(&cluster, 1, "k", json!({"value": "b"})).await.0,
        200
    );
    let (_, body) = http.get(&cluster, 2, "k").await;
    assert_eq!(
        body["meta"]["siblings"].as_array().map(Vec::len),
        Some(2),
        "{body}"
    );
    let context = body["meta"]["context"].clone();
    let (status, _) = http
        .put(&cluster, 2, "k", json!({"value": "c", "context": context}))
        .await;
    assert_eq!(status, 200);
    let (_, body) = http.get(&cluster, 0, "k").await;
    assert_eq!(body["value"], json!("c"));
    assert!(body["meta"].get("siblings").is_none(), "{body}");
}

#[tokio::test]
async fn bad_input_is_refused_and_the_node_keeps_serving() {
    let cluster = cluster(1, "n=1,r=1,w=1").await;
    let client = reqwest::Client::new();
    let url = &cluster.urls()[0];
    let cases: Vec<(reqwest::RequestBuilder, u16)> = vec![
        (client.put(format!("{url}/kv/k")).body("{not json"), 400),
        (client.put(format!("{url}/kv/k")).body("{}"), 400),
        (
            client
                .post(format!("{url}/kv/k/cas"))
                .body(r#"{"value": 1}"#),
            400,
        ),
        (
            client
                .put(format!("{url}/kv/{}", "x".repeat(300)))
                .body(r#"{"value": 1}"#),
            400,
        ),
        (
            client
                .put(format!("{url}/kv/k"))
                .body(format!(r#"{{"value": "{}"}}"#, "x".repeat(70_000))),
            413,
        ),
        (
            client
                .post(format!("{url}/admin/faults"))
                .body(r#"{"loss": 3}"#),
            400,
        ),
    ];
    for (request, want) in cases {
        let r = request.send().await.unwrap();
        assert_eq!(r.status().as_u16(), want);
        let body: Value = r.json().await.expect("a JSON error body");
        assert!(body["error"].is_string(), "{body}");
    }
    let r = client.get(format!("{url}/health")).send().await.unwrap();
    assert_eq!(r.status(), 200);
}

#[tokio::test]
async fn a_repeated_idempotency_key_returns_the_first_result() {
    let cluster = cluster(1, "n=1,r=1,w=1").await;
    let client = reqwest::Client::new();
    let url = &cluster.urls()[0];
    let cas = || {
        client
            .post(format!("{url}/kv/k/cas"))
            .header("Idempotency-Key", "order-1")
            .body(r#"{"expect": null, "value": 1}"#)
    };
    assert_eq!(cas().send().await.unwrap().status(), 200);
    // Without the key, this cas would now fail with 412: the value is 1.
    assert_eq!(cas().send().await.unwrap().status(), 200);
}

#[tokio::test]
async fn stopping_the_cluster_leaves_no_process() {
    let mut cluster = cluster(3, "").await;
    let pids: Vec<i32> = cluster
        .nodes()
        .iter()
        .map(|n| n.pid().unwrap() as i32)
        .collect();
    cluster.stop();
    for pid in pids {
        let alive = nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), None).is_ok();
        assert!(!alive, "node {pid} outlived the cluster");
    }
}
