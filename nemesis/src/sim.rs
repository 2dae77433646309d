//! The `sim` backend: faults on a simulated bundled cluster ([`SimCluster`]), in virtual time.
//! The same [`Desired`] state as the bundled backend's, pushed straight into the world: fault
//! layers set, nodes killed and restarted from their records, paused and resumed.

use faultline_targets::sim::SimCluster;

use crate::Backend;
use crate::desired::{Desired, Process};
use crate::fault::{Fault, Kind, NodeId, name};
use crate::strobe::{Strobe, strobing};

/// Applies faults to a simulated cluster.
pub struct SimBackend {
    cluster: SimCluster,
    desired: Desired,
    strobe: Strobe,
}

impl SimBackend {
    /// A backend for `cluster`.
    pub fn new(cluster: SimCluster) -> Self {
        SimBackend {
            desired: Desired::new(cluster.nodes()),
            cluster,
            strobe: Strobe::default(),
        }
    }

    /// Brings each of `nodes` to its wanted state: its life first, then its fault layer.
    fn push(&self, nodes: &[NodeId]) {
        self.cluster.with_world(|world| {
            for &node in nodes {
                let wanted = self.desired.node(node);
                match wanted.process {
                    Process::Running => {
                        world.restart(node);
                        world.resume(node);
                    }
                    Process::Killed => world.kill(node),
                    Process::Paused => world.pause(node),
                }
                world.set_faults(node, wanted.faults());
            }
        });
    }

    /// Who the running nodes say leads: the node most of them name, if any.
    async fn leader(&self) -> Option<NodeId> {
        let nodes = self.desired.len();
        let named: Vec<NodeId> = self.cluster.with_world(|world| {
            (0..nodes as NodeId)
                .filter_map(|node| world.describe(node))
                .filter_map(|state| {
                    let leader = state["leader"].as_str()?.to_string();
                    (0..nodes as NodeId).find(|&i| name(i) == leader)
                })
                .collect()
        });
        crate::most_named(named, nodes)
    }
}

impl Backend for SimBackend {
    fn unsupported(&self, _kinds: &[Kind]) -> Vec<(Kind, String)> {
        Vec::new()
    }

    async fn apply(&mut self, fault: &Fault) -> Result<Fault, String> {
        let resolved = crate::resolve_leader(fault, self.desired.len(), || self.leader())
            .await
            .unwrap_or_else(|| fault.clone());
        let changed = self.desired.apply(&resolved);
        self.push(&changed);
        if let Some((nodes, period)) = strobing(&resolved) {
            let (cluster, desired) = (self.cluster.clone(), self.desired.clone());
            self.strobe.start(period, move |on| {
                cluster.with_world(|world| {
                    for &node in &nodes {
                        let mut faults = desired.node(node).faults();
                        if !on {
                            faults.clock_offset_ms = 0;
                        }
                        world.set_faults(node, faults);
                    }
                });
                std::future::ready(())
            });
        }
        Ok(resolved)
    }

    async fn heal(&mut self, fault: &Fault) -> Result<(), String> {
        if matches!(fault, Fault::Clock { .. }) {
            self.strobe.stop().await;
        }
        let changed = self.desired.heal(fault);
        self.push(&changed);
        Ok(())
    }

    async fn heal_all(&mut self) -> Result<(), String> {
        self.strobe.stop().await;
        self.desired.heal_all();
        let every: Vec<NodeId> = (0..self.desired.len() as NodeId).collect();
        self.push(&every);
        Ok(())
    }
}
