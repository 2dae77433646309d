//! The backend for a local etcd cluster (`local:etcd`), combining three mechanisms:
//! - `netns`: partitions and packet loss as nftables drop rules inside each member's network
//!   namespace (root only; on loopback partitions are refused before the run);
//! - `proxy`: delay and jitter (and, on loopback, loss) on the proxies in front of each
//!   member's client port and, on loopback, its peer port;
//! - signals: SIGKILL and a restart on the same data directory, SIGSTOP and SIGCONT.
//!
//! Clock faults are refused: etcd reads the host's clock and nothing here can skew one
//! process's clock.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use faultline_targets::etcd::{EtcdCluster, Network, wait_serving};
use faultline_targets::proxy::Toxics;

use crate::Backend;
use crate::fault::{Fault, Kind, NodeId};
use crate::processes::Processes;

/// How long a restarted member may take to serve.
const RESTART_WITHIN: Duration = Duration::from_secs(20);

/// Applies faults to a local etcd cluster.
pub struct LocalBackend {
    processes: Processes<EtcdCluster>,
    network: Network,
    direct: Vec<String>,
    drop_from: Vec<Vec<NodeId>>,
    loss: Vec<f64>,
}

impl LocalBackend {
    /// A backend for the cluster in `cluster` (shared with whoever stops it at the end).
    pub fn new(cluster: Arc<Mutex<Option<EtcdCluster>>>) -> Result<Self, String> {
        let (network, direct) = {
            let guard = cluster
                .lock()
                .map_err(|_| "the cluster lock is poisoned".to_string())?;
            let c = guard.as_ref().ok_or("the cluster is not running")?;
            (c.network(), c.direct_urls())
        };
        let n = direct.len();
        Ok(LocalBackend {
            processes: Processes::new(cluster),
            network,
            direct,
            drop_from: vec![Vec::new(); n],
            loss: vec![0.0; n],
        })
    }

    /// The kinds a cluster on `network` cannot take, each with the reason.
    pub fn unsupported_on(network: Network, kinds: &[Kind]) -> Vec<(Kind, String)> {
        kinds
            .iter()
            .filter_map(|&k| match (k, network) {
                (Kind::Crash, _) => Some((k, crate::CRASH_NEEDS_BUNDLED.to_string())),
                (Kind::Clock, _) => Some((
                    k,
                    "etcd reads the host's clock; nothing here can skew one member's clock"
                        .to_string(),
                )),
                (Kind::Partition, Network::Loopback) => Some((
                    k,
                    "partitions need network namespaces (run as root with ip and nft \
                     installed, or --set network=netns)"
                        .to_string(),
                )),
                _ => None,
            })
            .collect()
    }

    /// Writes node `i`'s wanted drop rules into its namespace.
    fn push_rules(&self, i: NodeId) -> Result<(), String> {
        let (drop_from, loss) = (self.drop_from[i].clone(), self.loss[i]);
        self.processes.with_cluster(|c| match c.namespaces() {
            Some(ns) => ns.set_rules(i, &drop_from, loss),
            None => Ok(()),
        })
    }

    fn set_toxics(&self, i: NodeId, toxics: Toxics) -> Result<(), String> {
        self.processes.with_cluster(|c| {
            let (client, peer) = c.proxies(i);
            client.set(toxics);
            if let Some(peer) = peer {
                peer.set(toxics);
            }
            Ok(())
        })
    }

    /// The member most members name as leader (etcd's `/v3/maintenance/status`), if any.
    async fn leader(&self) -> Option<NodeId> {
        let http = reqwest::Client::new();
        let mut ids = vec![None; self.direct.len()];
        let mut named = Vec::new();
        for (i, url) in self.direct.iter().enumerate() {
            if self.processes.is_out(i) {
                continue;
            }
            let status: Option<serde_json::Value> = async {
                let r = http
                    .post(format!("{url}/v3/maintenance/status"))
                    .body("{}")
                    .timeout(Duration::from_millis(500))
                    .send()
                    .await
                    .ok()?;
                r.json().await.ok()
            }
            .await;
            if let Some(status) = status {
                ids[i] = status["header"]["member_id"].as_str().map(str::to_string);
                if let Some(leader) = status["leader"].as_str() {
                    named.push(leader.to_string());
                }
            }
        }
        let members = named.iter().filter_map(|leader| {
            ids.iter()
                .position(|id| id.as_deref() == Some(leader.as_str()))
        });
        crate::most_named(members, self.direct.len())
    }

    /// Applies a fault whose every choice is made.
    async fn apply_decided(&mut self, fault: &Fault) -> Result<Fault, String> {
        match fault {
            Fault::Partition { cuts, .. } => {
                for (i, from) in self.drop_from.iter_mut().enumerate() {
                    *from = cuts.iter().filter(|c| c.1 == i).map(|c| c.0).collect();
                }
                for i in 0..self.direct.len() {
                    self.push_rules(i)?;
                }
                Ok(fault.clone())
            }
            Fault::Packet {
                nodes,
                delay_ms,
                jitter_ms,
                loss,
                ..
            } => {
                let in_kernel = self.network == Network::Namespaces;
                for &i in nodes {
                    if in_kernel {
                        self.loss[i] = *loss;
                        self.push_rules(i)?;
                    }
                    self.set_toxics(
                        i,
                        Toxics {
                            delay_ms: *delay_ms,
                            jitter_ms: *jitter_ms,
                            loss: if in_kernel { 0.0 } else { *loss },
                            ..Toxics::default()
                        },
                    )?;
                }
                // TCP streams cannot be duplicated into: no duplicates.
                Ok(Fault::Packet {
                    nodes: nodes.clone(),
                    delay_ms: *delay_ms,
                    jitter_ms: *jitter_ms,
                    loss: *loss,
                    duplicate: 0.0,
                })
            }
            Fault::Kill { nodes } => {
                self.processes.kill(nodes)?;
                Ok(fault.clone())
            }
            Fault::Pause { nodes } => {
                self.processes.pause(nodes)?;
                Ok(fault.clone())
            }
            Fault::Clock { .. } | Fault::Crash { .. } => Err(format!(
                "{} faults are not supported on local:etcd",
                fault.kind()
            )),
        }
    }

    async fn restart(&mut self, node: NodeId) -> Result<(), String> {
        self.processes.respawn(node)?;
        wait_serving(&self.direct[node], RESTART_WITHIN).await?;
        self.processes.serving(node);
        Ok(())
    }
}

impl Backend for LocalBackend {
    fn unsupported(&self, kinds: &[Kind]) -> Vec<(Kind, String)> {
        LocalBackend::unsupported_on(self.network, kinds)
    }

    async fn apply(&mut self, fault: &Fault) -> Result<Fault, String> {
        let resolved = crate::resolve_leader(fault, self.direct.len(), || self.leader())
            .await
            .unwrap_or_else(|| fault.clone());
        self.apply_decided(&resolved).await
    }

    async fn heal(&mut self, fault: &Fault) -> Result<(), String> {
        match fault {
            Fault::Partition { .. } => {
                for i in 0..self.direct.len() {
                    self.drop_from[i].clear();
                    self.push_rules(i)?;
                }
                Ok(())
            }
            Fault::Packet { nodes, .. } => {
                for &i in nodes {
                    self.loss[i] = 0.0;
                    self.push_rules(i)?;
                    self.set_toxics(i, Toxics::default())?;
                }
                Ok(())
            }
            Fault::Kill { nodes } => {
                for &i in nodes {
                    self.restart(i).await?;
                }
                Ok(())
            }
            Fault::Pause { nodes } => self.processes.resume(nodes),
            Fault::Clock { .. } | Fault::Crash { .. } => Ok(()),
        }
    }

    async fn heal_all(&mut self) -> Result<(), String> {
        self.processes.resume_all()?;
        for i in self.processes.killed() {
            self.restart(i).await?;
        }
        for i in 0..self.direct.len() {
            self.drop_from[i].clear();
            self.loss[i] = 0.0;
            self.push_rules(i)?;
            self.set_toxics(i, Toxics::default())?;
        }
        Ok(())
    }
}
