//! The `bundled` backend: faults on faultline's own reference clusters, through each node's
//! `POST /admin/faults` (partitions, clock offsets, packet faults) and signals to its process
//! (SIGKILL then restart on the same data directory, SIGSTOP then SIGCONT).
//!
//! What each node should suffer is decided once, in [`Desired`]; this backend only pushes a
//! node's wanted state to it whole (the fault layer takes its whole configuration at once)
//! and brings its process to the wanted state.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use faultline_targets::cluster::{Cluster, wait_healthy};
use faultline_targets::runtime::Faults;

use crate::Backend;
use crate::desired::{Desired, Process};
use crate::fault::{Fault, Kind, NodeId, name};
use crate::processes::Processes;
use crate::strobe::{Strobe, strobing};

/// How long a node may take to answer an admin request.
const ADMIN_TIMEOUT: Duration = Duration::from_secs(2);
/// How long a restarted node may take to become healthy.
const RESTART_WITHIN: Duration = Duration::from_secs(10);

/// Applies faults to a bundled cluster.
pub struct BundledBackend {
    processes: Processes<Cluster>,
    urls: Vec<String>,
    http: reqwest::Client,
    desired: Desired,
    strobe: Strobe,
}

impl BundledBackend {
    /// A backend for the cluster in `cluster` (shared with whoever stops it at the end).
    pub fn new(cluster: Arc<Mutex<Option<Cluster>>>) -> Result<Self, String> {
        let urls = cluster
            .lock()
            .map_err(|_| "the cluster lock is poisoned".to_string())?
            .as_ref()
            .ok_or("the cluster is not running")?
            .urls();
        Ok(BundledBackend {
            desired: Desired::new(urls.len()),
            urls,
            processes: Processes::new(cluster),
            http: reqwest::Client::new(),
            strobe: Strobe::default(),
        })
    }

    /// Brings each of `nodes` to its wanted state: its process first (a killed node restarts
    /// with no faults and waits until healthy), then its fault layer.
    async fn push(&mut self, nodes: &[NodeId]) -> Result<(), String> {
        for &node in nodes {
            let wanted = self.desired.node(node).clone();
            if self.processes.reconcile(node, wanted.process)? {
                wait_healthy(&self.urls[node as usize], RESTART_WITHIN).await?;
                self.processes.serving(node);
            }
            if wanted.process == Process::Running {
                post(&self.http, &self.urls[node as usize], &wanted.faults()).await?;
            }
        }
        Ok(())
    }

    /// Who the nodes say leads: the node most of them name, if any.
    async fn leader(&self) -> Option<NodeId> {
        let mut named = Vec::new();
        for (node, url) in self.urls.iter().enumerate() {
            if self.processes.is_out(node as NodeId) {
                continue;
            }
            let state: Option<serde_json::Value> = async {
                let r = self
                    .http
                    .get(format!("{url}/admin/state"))
                    .timeout(ADMIN_TIMEOUT)
                    .send()
                    .await
                    .ok()?;
                r.json().await.ok()
            }
            .await;
            let leader = state.as_ref().and_then(|s| s["leader"].as_str());
            let nodes = 0..self.urls.len() as NodeId;
            named.extend(leader.and_then(|n| nodes.clone().find(|&i| name(i) == n)));
        }
        crate::most_named(named, self.urls.len())
    }
}

impl Backend for BundledBackend {
    fn unsupported(&self, _kinds: &[Kind]) -> Vec<(Kind, String)> {
        Vec::new()
    }

    /// Starts `fault`; returns it as applied (a `leader` partition names the node it cut off).
    async fn apply(&mut self, fault: &Fault) -> Result<Fault, String> {
        let resolved = crate::resolve_leader(fault, self.urls.len(), || self.leader())
            .await
            .unwrap_or_else(|| fault.clone());
        let changed = self.desired.apply(&resolved);
        self.push(&changed).await?;
        if let Some((nodes, period)) = strobing(&resolved) {
            let nodes: Vec<(String, Faults)> = (nodes.iter())
                .map(|&n| (self.urls[n as usize].clone(), self.desired.node(n).faults()))
                .collect();
            let http = self.http.clone();
            self.strobe.start(period, move |on| {
                let (http, nodes) = (http.clone(), nodes.clone());
                async move {
                    for (url, mut faults) in nodes {
                        if !on {
                            faults.clock_offset_ms = 0;
                        }
                        let _ = post(&http, &url, &faults).await;
                    }
                }
            });
        }
        Ok(resolved)
    }

    async fn heal(&mut self, fault: &Fault) -> Result<(), String> {
        if matches!(fault, Fault::Clock { .. }) {
            self.strobe.stop().await;
        }
        let changed = self.desired.heal(fault);
        self.push(&changed).await
    }

    /// Heals everything: clocks reset, partitions and packet faults cleared, paused nodes
    /// continued, killed nodes restarted. Idempotent: every node is brought to health.
    async fn heal_all(&mut self) -> Result<(), String> {
        self.strobe.stop().await;
        self.desired.heal_all();
        let every: Vec<NodeId> = (0..self.desired.len() as NodeId).collect();
        self.push(&every).await
    }
}

/// Sets a node's faults, trying a few times: a loaded machine can delay an answer past the
/// timeout, and a fault that was not applied must not go unnoticed.
async fn post(http: &reqwest::Client, url: &str, faults: &Faults) -> Result<(), String> {
    let mut last = String::new();
    for attempt in 0..3 {
        if attempt > 0 {
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        match post_once(http, url, faults).await {
            Ok(()) => return Ok(()),
            Err(e) => last = e,
        }
    }
    Err(last)
}

async fn post_once(http: &reqwest::Client, url: &str, faults: &Faults) -> Result<(), String> {
    let response = http
        .post(format!("{url}/admin/faults"))
        .json(faults)
        .timeout(ADMIN_TIMEOUT)
        .send()
        .await
        .map_err(|e| format!("{url}/admin/faults: {e}"))?;
    if response.status().is_success() {
        Ok(())
    } else {
        Err(format!(
            "{url}/admin/faults answered {}: {}",
            response.status(),
            response.text().await.unwrap_or_default()
        ))
    }
}
