//! Helpers shared by the integration tests that start real clusters.

use faultline_targets::cluster::{Cluster, ClusterSpec};

/// Starts a quorum cluster of `nodes` with `settings`, using this build's `faultline` binary.
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
