//! Helpers shared by the integration tests that start real clusters.

use std::path::Path;

use faultline_targets::cluster::{Cluster, ClusterSpec};
use serde_json::Value;

/// Starts a quorum cluster of `nodes` with `settings`, using this build's `faultline` binary.
#[allow(dead_code)] // each test binary uses its own part of this module
pub(crate) async fn start_cluster(nodes: u32, settings: &str) -> Cluster {
    Cluster::start(ClusterSpec {
        system: "quorum".into(),
        nodes,
        settings: vec![settings.into()],
        data_dir: None,
        exe: env!("CARGO_BIN_EXE_faultline").into(),
        seed: 1,
    })
    .await
    .expect("the cluster starts")
}

/// The nemesis events of a history: (fault kind, what was done), times left out.
#[allow(dead_code)] // each test binary uses its own part of this module
pub(crate) fn nemesis_events(history: &Path) -> Vec<(String, Value)> {
    std::fs::read_to_string(history)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).unwrap())
        .filter(|e| e["process"] == "nemesis")
        .map(|e| (e["f"].as_str().unwrap().to_string(), e["value"].clone()))
        .collect()
}
