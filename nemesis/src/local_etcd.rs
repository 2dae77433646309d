//! The backend for a local etcd cluster (`local:etcd`), combining three mechanisms:
//! - `netns`: partitions and packet loss as nftables drop rules inside each member's network
//!   namespace (root only; on loopback partitions are refused before the run);
//! - `proxy`: delay and jitter (and, on loopback, loss) on the proxies in front of each
//!   member's client port and, on loopback, its peer port;
//! - signals: SIGKILL and a restart on the same data directory, SIGSTOP and SIGCONT.
//!
//! Clock faults are refused: etcd reads the host's clock and nothing here can skew one
//! process's clock.
//!
//! What each member should suffer is decided once, in [`Desired`]; this backend only pushes a
//! member's wanted state into its rules, its proxies and its process.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use faultline_targets::etcd::{EtcdCluster, Network, wait_serving};
use faultline_targets::proxy::Toxics;

use crate::Backend;
use crate::desired::Desired;
use crate::fault::{Fault, Kind, NodeId};
use crate::processes::Processes;

/// How long a restarted member may take to serve.
const RESTART_WITHIN: Duration = Duration::from_secs(20);

/// Applies faults to a local etcd cluster (`local:etcd`).
pub struct LocalEtcdBackend {
    processes: Processes<EtcdCluster>,
    network: Network,
    direct: Vec<String>,
    desired: Desired,
}

impl LocalEtcdBackend {
    /// A backend for the cluster in `cluster` (shared with whoever stops it at the end).
    pub fn new(cluster: Arc<Mutex<Option<EtcdCluster>>>) -> Result<Self, String> {
        let (network, direct) = {
            let guard = cluster
                .lock()
                .map_err(|_| "the cluster lock is poisoned".to_string())?;
            let c = guard.as_ref().ok_or("the cluster is not running")?;
            (c.network(), c.direct_urls())
        };
        Ok(LocalEtcdBackend {
            processes: Processes::new(cluster),
            network,
            desired: Desired::new(direct.len()),
            direct,
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

    /// Brings each of `nodes` to its wanted state: its process (a killed member restarts and
    /// is waited for until it serves), its namespace's drop rules (in the kernel, with random
    /// loss, on namespaces) and its proxies' toxics (delay, jitter, and loss on loopback).
    async fn push(&mut self, nodes: &[NodeId]) -> Result<(), String> {
        let in_kernel = self.network == Network::Namespaces;
        for &i in nodes {
            let wanted = self.desired.node(i).clone();
            if self.processes.reconcile(i, wanted.process)? {
                wait_serving(&self.direct[i as usize], RESTART_WITHIN).await?;
                self.processes.serving(i);
            }
            let packet = wanted.packet;
            let loss = if in_kernel { packet.loss } else { 0.0 };
            self.processes.with_cluster(|c| match c.namespaces() {
                Some(ns) => ns.set_rules(i, &wanted.drop_from, loss),
                None => Ok(()),
            })?;
            let toxics = Toxics {
                delay_ms: packet.delay_ms,
                jitter_ms: packet.jitter_ms,
                loss: if in_kernel { 0.0 } else { packet.loss },
                ..Toxics::default()
            };
            self.processes.with_cluster(|c| {
                let (client, peer) = c.proxies(i);
                client.set(toxics);
                if let Some(peer) = peer {
                    peer.set(toxics);
                }
                Ok(())
            })?;
        }
        Ok(())
    }

    /// The member most members name as leader (etcd's `/v3/maintenance/status`), if any.
    async fn leader(&self) -> Option<NodeId> {
        let http = reqwest::Client::new();
        let mut ids = vec![None; self.direct.len()];
        let mut named = Vec::new();
        for (i, url) in self.direct.iter().enumerate() {
            if self.processes.is_out(i as NodeId) {
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
                .map(|i| i as NodeId)
        });
        crate::most_named(members, self.direct.len())
    }
}

impl Backend for LocalEtcdBackend {
    fn unsupported(&self, kinds: &[Kind]) -> Vec<(Kind, String)> {
        LocalEtcdBackend::unsupported_on(self.network, kinds)
    }

    async fn apply(&mut self, fault: &Fault) -> Result<Fault, String> {
        if let Fault::Clock { .. } | Fault::Crash { .. } = fault {
            return Err(format!(
                "{} faults are not supported on local:etcd",
                fault.kind()
            ));
        }
        let mut resolved = crate::resolve_leader(fault, self.direct.len(), || self.leader())
            .await
            .unwrap_or_else(|| fault.clone());
        // TCP streams cannot be duplicated into: no duplicates.
        if let Fault::Packet { duplicate, .. } = &mut resolved {
            *duplicate = 0.0;
        }
        let changed = self.desired.apply(&resolved);
        self.push(&changed).await?;
        Ok(resolved)
    }

    async fn heal(&mut self, fault: &Fault) -> Result<(), String> {
        let changed = self.desired.heal(fault);
        self.push(&changed).await
    }

    async fn heal_all(&mut self) -> Result<(), String> {
        self.desired.heal_all();
        let every: Vec<NodeId> = (0..self.desired.len() as NodeId).collect();
        self.push(&every).await
    }
}
