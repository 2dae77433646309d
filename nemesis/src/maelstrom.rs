//! The `maelstrom` backend: faults on Maelstrom-protocol nodes faultline runs, with faultline
//! as their network. Partitions (one-way too) and packet faults are decisions of the router;
//! kill is SIGKILL to the node's process group and, at the heal, a fresh start of the binary
//! that gets `init` again — its memory is gone, as in Maelstrom; pause is SIGSTOP/SIGCONT.

use std::io;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use faultline_targets::maelstrom::MaelstromCluster;
use faultline_targets::maelstrom::network::NodeFaults;
use nix::sys::signal::Signal;

use crate::Backend;
use crate::desired::{Desired, NodeState};
use crate::fault::{Fault, Kind, NodeId};
use crate::processes::{LocalProcesses, Processes};

/// The nodes of a Maelstrom cluster, shared with the run that stops them.
pub type SharedCluster = Arc<Mutex<Option<Arc<MaelstromCluster>>>>;

impl LocalProcesses for Arc<MaelstromCluster> {
    fn kill(&mut self, i: NodeId) -> io::Result<()> {
        MaelstromCluster::kill(self, i as usize);
        Ok(())
    }
    fn signal(&self, i: NodeId, signal: Signal) -> io::Result<()> {
        MaelstromCluster::signal(self, i as usize, signal);
        Ok(())
    }
    fn respawn(&mut self, i: NodeId) -> io::Result<()> {
        MaelstromCluster::respawn(self, i as usize).map_err(io::Error::other)
    }
}

/// Applies faults to a Maelstrom cluster.
pub struct MaelstromBackend {
    cluster: Arc<MaelstromCluster>,
    processes: Processes<Arc<MaelstromCluster>>,
    desired: Desired,
}

impl MaelstromBackend {
    /// A backend for the cluster in `shared`.
    pub fn new(shared: SharedCluster) -> Result<Self, String> {
        let cluster = (shared
            .lock()
            .map_err(|_| "the cluster lock is poisoned".to_string())?)
        .clone()
        .ok_or("the Maelstrom nodes are not running")?;
        Ok(MaelstromBackend {
            desired: Desired::new(cluster.names().len()),
            cluster,
            processes: Processes::new(shared),
        })
    }

    /// The kinds no Maelstrom cluster takes, with the reason.
    pub fn unsupported_kinds(kinds: &[Kind]) -> Vec<(Kind, String)> {
        (kinds.iter())
            .filter_map(|&k| {
                let why = match k {
                    Kind::Partition | Kind::Packet | Kind::Kill | Kind::Pause => return None,
                    Kind::Clock => {
                        "Maelstrom nodes read the machine's clock; faultline cannot skew it"
                    }
                    Kind::Crash => crate::CRASH_NEEDS_BUNDLED,
                };
                Some((k, why.to_string()))
            })
            .collect()
    }

    /// Brings each of `nodes` to its wanted state: its process (a killed node restarts and
    /// answers `init`), then what the network does to its messages.
    async fn push(&mut self, nodes: &[NodeId]) -> Result<(), String> {
        for &node in nodes {
            let wanted = self.desired.node(node).clone();
            if self.processes.reconcile(node, wanted.process)? {
                self.cluster.initialized(node as usize).await?;
                self.processes.serving(node);
            }
            self.cluster
                .set_faults(node as usize, network_faults(&wanted));
        }
        Ok(())
    }
}

/// What the router does to a node in `state`.
fn network_faults(state: &NodeState) -> NodeFaults {
    let indices = |nodes: &[NodeId]| nodes.iter().map(|&n| n as usize).collect();
    NodeFaults {
        drop_from: indices(&state.drop_from),
        drop_to: indices(&state.drop_to),
        delay: Duration::from_millis(state.packet.delay_ms),
        jitter: Duration::from_millis(state.packet.jitter_ms),
        loss: state.packet.loss,
        duplicate: state.packet.duplicate,
    }
}

impl Backend for MaelstromBackend {
    fn unsupported(&self, kinds: &[Kind]) -> Vec<(Kind, String)> {
        Self::unsupported_kinds(kinds)
    }

    async fn apply(&mut self, fault: &Fault) -> Result<Fault, String> {
        let changed = self.desired.apply(fault);
        self.push(&changed).await?;
        Ok(fault.clone())
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::desired::{Packet, Process};

    #[test]
    fn a_nodes_state_becomes_the_routers_faults() {
        let state = NodeState {
            drop_from: vec![1, 2],
            drop_to: vec![3],
            packet: Packet {
                delay_ms: 5,
                jitter_ms: 2,
                loss: 0.1,
                duplicate: 0.2,
            },
            process: Process::Running,
            ..NodeState::default()
        };
        let f = network_faults(&state);
        assert_eq!((f.drop_from, f.drop_to), (vec![1, 2], vec![3]));
        assert_eq!(
            (f.delay, f.jitter),
            (Duration::from_millis(5), Duration::from_millis(2))
        );
        assert_eq!((f.loss, f.duplicate), (0.1, 0.2));
        let kinds = MaelstromBackend::unsupported_kinds(&Kind::ALL);
        let refused: Vec<Kind> = kinds.iter().map(|(k, _)| *k).collect();
        assert_eq!(refused, [Kind::Clock, Kind::Crash]);
    }
}
