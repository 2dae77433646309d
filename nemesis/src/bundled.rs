//! The `bundled` backend: faults on faultline's own reference clusters, through each node's
//! `POST /admin/faults` (partitions, clock offsets, packet faults) and signals to its process
//! (SIGKILL then restart on the same data directory, SIGSTOP then SIGCONT).
//!
//! The fault layer of a node takes its whole configuration at once, so the backend keeps the
//! configuration it wants each node to have and sends it whole after every change.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use faultline_targets::cluster::{Cluster, wait_healthy};
use faultline_targets::runtime::Faults;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::Backend;
use crate::fault::{ClockMode, Fault, Kind, NodeId, name};
use crate::processes::Processes;

/// How long a node may take to answer an admin request.
const ADMIN_TIMEOUT: Duration = Duration::from_secs(2);
/// How long a restarted node may take to become healthy.
const RESTART_WITHIN: Duration = Duration::from_secs(10);

/// Applies faults to a bundled cluster.
pub struct BundledBackend {
    processes: Processes<Cluster>,
    urls: Vec<String>,
    http: reqwest::Client,
    desired: Vec<Faults>,
    strobe: Option<(watch::Sender<bool>, JoinHandle<()>)>,
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
            desired: vec![Faults::default(); urls.len()],
            urls,
            processes: Processes::new(cluster),
            http: reqwest::Client::new(),
            strobe: None,
        })
    }

    async fn push(&self, node: NodeId) -> Result<(), String> {
        if self.processes.is_killed(node) {
            return Ok(()); // it starts with no faults when restarted
        }
        post(&self.http, &self.urls[node], &self.desired[node]).await
    }

    async fn push_all(&self) -> Result<(), String> {
        for node in 0..self.urls.len() {
            self.push(node).await?;
        }
        Ok(())
    }

    /// Who the nodes say leads: the node most of them name, if any.
    async fn leader(&self) -> Option<NodeId> {
        let mut named = Vec::new();
        for (node, url) in self.urls.iter().enumerate() {
            if self.processes.is_out(node) {
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
            named.extend(leader.and_then(|n| (0..self.urls.len()).find(|&i| name(i) == n)));
        }
        crate::most_named(named, self.urls.len())
    }

    /// Starts `fault`; returns it as applied (a `leader` partition names the node it cut off).
    async fn apply_fault(&mut self, fault: &Fault) -> Result<Fault, String> {
        let resolved = crate::resolve_leader(fault, self.urls.len(), || self.leader())
            .await
            .unwrap_or_else(|| fault.clone());
        self.apply_decided(&resolved).await?;
        Ok(resolved)
    }

    async fn apply_decided(&mut self, fault: &Fault) -> Result<(), String> {
        match fault {
            Fault::Partition { cuts, .. } => {
                for (node, wanted) in self.desired.iter_mut().enumerate() {
                    wanted.drop_to = cuts
                        .iter()
                        .filter(|c| c.0 == node)
                        .map(|c| name(c.1))
                        .collect();
                    wanted.drop_from = cuts
                        .iter()
                        .filter(|c| c.1 == node)
                        .map(|c| name(c.0))
                        .collect();
                }
                self.push_all().await
            }
            Fault::Clock { mode, offsets } => {
                for &(node, offset) in offsets {
                    self.desired[node].clock_offset_ms = offset;
                }
                if let ClockMode::Strobe { period_ms } = *mode {
                    let (stop, stopped) = watch::channel(false);
                    let task = tokio::spawn(strobe(
                        self.http.clone(),
                        offsets
                            .iter()
                            .map(|&(n, _)| (self.urls[n].clone(), self.desired[n].clone()))
                            .collect(),
                        Duration::from_millis(period_ms),
                        stopped,
                    ));
                    self.strobe = Some((stop, task));
                    Ok(())
                } else {
                    for &(node, _) in offsets {
                        self.push(node).await?;
                    }
                    Ok(())
                }
            }
            Fault::Kill { nodes } => self.processes.kill(nodes),
            Fault::Pause { nodes } => self.processes.pause(nodes),
            Fault::Crash {
                nodes,
                rules,
                down_ms,
            } => {
                for &node in nodes {
                    let wanted = &mut self.desired[node];
                    wanted.crash_after = rules.clone();
                    wanted.crash_down_ms = *down_ms;
                    self.push(node).await?;
                }
                Ok(())
            }
            Fault::Packet {
                nodes,
                delay_ms,
                jitter_ms,
                loss,
                duplicate,
            } => {
                for &node in nodes {
                    let wanted = &mut self.desired[node];
                    wanted.delay_ms = *delay_ms;
                    wanted.jitter_ms = *jitter_ms;
                    wanted.loss = *loss;
                    wanted.duplicate = *duplicate;
                    self.push(node).await?;
                }
                Ok(())
            }
        }
    }

    async fn heal_fault(&mut self, fault: &Fault) -> Result<(), String> {
        match fault {
            Fault::Partition { .. } => {
                for wanted in &mut self.desired {
                    wanted.drop_to.clear();
                    wanted.drop_from.clear();
                }
                self.push_all().await
            }
            Fault::Clock { offsets, .. } => {
                self.stop_strobe().await;
                for &(node, _) in offsets {
                    self.desired[node].clock_offset_ms = 0;
                    self.push(node).await?;
                }
                Ok(())
            }
            Fault::Kill { nodes } => {
                for &node in nodes {
                    self.restart(node).await?;
                }
                Ok(())
            }
            Fault::Pause { nodes } => self.processes.resume(nodes),
            Fault::Crash { nodes, .. } => {
                for &node in nodes {
                    let wanted = &mut self.desired[node];
                    wanted.crash_after.clear();
                    wanted.crash_down_ms = 0;
                    self.push(node).await?;
                }
                Ok(())
            }
            Fault::Packet { nodes, .. } => {
                for &node in nodes {
                    let wanted = &mut self.desired[node];
                    wanted.delay_ms = 0;
                    wanted.jitter_ms = 0;
                    wanted.loss = 0.0;
                    wanted.duplicate = 0.0;
                    self.push(node).await?;
                }
                Ok(())
            }
        }
    }

    async fn restart(&mut self, node: NodeId) -> Result<(), String> {
        self.processes.respawn(node)?;
        wait_healthy(&self.urls[node], RESTART_WITHIN).await?;
        self.processes.serving(node);
        self.push(node).await
    }

    async fn stop_strobe(&mut self) {
        if let Some((stop, task)) = self.strobe.take() {
            let _ = stop.send(true);
            let _ = task.await;
        }
    }

    /// Heals everything: clocks reset, partitions and packet faults cleared, paused nodes
    /// continued, killed nodes restarted. Idempotent.
    async fn heal_everything(&mut self) -> Result<(), String> {
        self.stop_strobe().await;
        self.processes.resume_all()?;
        for node in self.processes.killed() {
            self.restart(node).await?;
        }
        self.desired = vec![Faults::default(); self.urls.len()];
        self.push_all().await
    }
}

impl Backend for BundledBackend {
    fn unsupported(&self, _kinds: &[Kind]) -> Vec<(Kind, String)> {
        Vec::new()
    }

    async fn apply(&mut self, fault: &Fault) -> Result<Fault, String> {
        self.apply_fault(fault).await
    }

    async fn heal(&mut self, fault: &Fault) -> Result<(), String> {
        self.heal_fault(fault).await
    }

    async fn heal_all(&mut self) -> Result<(), String> {
        self.heal_everything().await
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

/// Switches each node's clock between its offset and none until `stop` fires.
async fn strobe(
    http: reqwest::Client,
    nodes: Vec<(String, Faults)>,
    period: Duration,
    mut stop: watch::Receiver<bool>,
) {
    let mut on = true;
    loop {
        for (url, faults) in &nodes {
            let mut faults = faults.clone();
            if !on {
                faults.clock_offset_ms = 0;
            }
            let _ = post(&http, url, &faults).await;
        }
        on = !on;
        tokio::select! {
            _ = tokio::time::sleep(period) => {}
            _ = stop.wait_for(|s| *s) => return,
        }
    }
}
