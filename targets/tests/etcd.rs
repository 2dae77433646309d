//! A real local etcd cluster: startup, the adapter against it, namespace partitions that
//! observably cut traffic, and cleanup that leaves nothing behind.
//!
//! Needs `etcd` on PATH (Debian: etcd-server); skipped with a notice where it is absent, a
//! failure when `CI=true`. The partition part needs root (namespaces and nftables).

use std::time::Duration;

use faultline_targets::client::{Client, Completion, Op};
use faultline_targets::etcd::{EtcdClient, EtcdCluster, EtcdSettings, EtcdSpec, Network, netns};
use serde_json::json;

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

fn alive(pid: u32) -> bool {
    std::path::Path::new(&format!("/proc/{pid}")).exists()
        && !std::fs::read_to_string(format!("/proc/{pid}/stat"))
            .unwrap_or_default()
            .contains(") Z ")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_local_cluster_serves_partitions_and_cleans_up() {
    if !etcd_present() {
        return;
    }
    let cluster = EtcdCluster::start(EtcdSpec {
        nodes: 3,
        bin: None,
        data_dir: None,
        settings: EtcdSettings::default(),
    })
    .await
    .expect("a 3-member cluster starts");
    eprintln!(
        "3 members ready in {:?} ({})",
        cluster.started_in(),
        cluster.network().name()
    );
    let client = EtcdClient::new(cluster.urls(), false).unwrap();
    client
        .check_reachable(Duration::from_secs(2))
        .await
        .unwrap();
    let long = Duration::from_secs(5);
    let write = Op::Write {
        key: "k".into(),
        value: json!(7),
    };
    assert!(matches!(
        client.invoke(0, &write, long).await,
        Completion::Ok { .. }
    ));
    for node in 0..3 {
        let read = client
            .invoke(node, &Op::Read { key: "k".into() }, long)
            .await;
        assert!(
            matches!(&read, Completion::Ok { value, .. } if *value == json!(7)),
            "{read:?}"
        );
    }
    let cas = Op::Cas {
        key: "k".into(),
        expect: json!(1),
        value: json!(2),
    };
    assert_eq!(
        client.invoke(1, &cas, long).await,
        Completion::Fail {
            error: "mismatch".into()
        }
    );

    let pids: Vec<u32> = (0..3).filter_map(|i| cluster.pid(i)).collect();
    assert_eq!(pids.len(), 3);
    let tag = cluster.namespaces().map(|ns| ns.tag().to_string());
    if let Some(ns) = cluster.namespaces() {
        // Cut n1 off from the others, both ways.
        ns.set_rules(0, &[1, 2], 0.0).unwrap();
        ns.set_rules(1, &[0], 0.0).unwrap();
        ns.set_rules(2, &[0], 0.0).unwrap();
        assert!(ns.rules(0).unwrap().contains("drop"));
        // The majority side still writes, once it has a leader (n1 may have led).
        let write = Op::Write {
            key: "k".into(),
            value: json!(8),
        };
        let deadline = std::time::Instant::now() + Duration::from_secs(15);
        loop {
            let done = client.invoke(1, &write, long).await;
            if matches!(done, Completion::Ok { .. }) {
                break;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "no write on the majority: {done:?}"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        // A linearizable read on the cut-off member cannot be served; a serializable one is,
        // and it is stale: etcd's documented weaker mode.
        let read = Op::Read { key: "k".into() };
        let cut = client.invoke(0, &read, Duration::from_secs(3)).await;
        assert!(matches!(cut, Completion::Fail { .. }), "{cut:?}");
        let local = EtcdClient::new(cluster.urls(), true).unwrap();
        let stale = local.invoke(0, &read, long).await;
        assert!(
            matches!(&stale, Completion::Ok { value, .. } if *value == json!(7)),
            "{stale:?}"
        );
        for i in 0..3 {
            ns.set_rules(i, &[], 0.0).unwrap();
        }
    } else {
        assert_eq!(cluster.network(), Network::Loopback);
        eprintln!("not root: the partition part needs network namespaces");
    }
    drop(cluster);
    for pid in pids {
        assert!(!alive(pid), "member {pid} still runs after stop");
    }
    if let Some(tag) = tag {
        let left: Vec<String> = netns::existing()
            .into_iter()
            .filter(|x| x.contains(&tag))
            .collect();
        assert!(left.is_empty(), "left behind: {left:?}");
    }
}
