//! What every node of a cluster faultline runs should be suffering, computed once from the
//! faults in effect: the backends that own a cluster (bundled, etcd in namespaces) only push
//! a node's [`NodeState`] to it — an admin request, nftables rules and proxy toxics, signals —
//! never decide it.
//!
//! [`Desired::apply`] and [`Desired::heal`] change the wanted state and return the nodes whose
//! state changed; a backend then brings each of those nodes to its wanted state.

use faultline_targets::runtime::{CrashRule, Faults};

use crate::fault::{Fault, NodeId, name};

/// Whether a node's process runs, is killed, or is stopped.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) enum Process {
    /// Running.
    #[default]
    Running,
    /// SIGKILLed; healing restarts it on its data.
    Killed,
    /// SIGSTOPped; healing continues it.
    Paused,
}

/// How a node's outgoing messages are degraded.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub(crate) struct Packet {
    pub(crate) delay_ms: u64,
    pub(crate) jitter_ms: u64,
    pub(crate) loss: f64,
    pub(crate) duplicate: f64,
}

/// Everything one node should be suffering now.
#[derive(Clone, Debug, Default, PartialEq)]
pub(crate) struct NodeState {
    /// Peers whose messages to this node are dropped.
    pub(crate) drop_from: Vec<NodeId>,
    /// Peers this node's messages to are dropped.
    pub(crate) drop_to: Vec<NodeId>,
    /// The offset of its clock, in milliseconds.
    pub(crate) clock_offset_ms: i64,
    /// Its outgoing messages' degradation.
    pub(crate) packet: Packet,
    /// Where it crashes, and for how long (bundled nodes only).
    pub(crate) crash: Option<(Vec<CrashRule>, u64)>,
    /// Its process.
    pub(crate) process: Process,
}

impl NodeState {
    /// The fault layer configuration of a node in this state (bundled nodes, in processes
    /// or simulated).
    pub(crate) fn faults(&self) -> Faults {
        let names = |nodes: &[NodeId]| nodes.iter().map(|&n| name(n)).collect();
        let (crash_after, crash_down_ms) = self.crash.clone().unwrap_or_default();
        Faults {
            drop_to: names(&self.drop_to),
            drop_from: names(&self.drop_from),
            loss: self.packet.loss,
            duplicate: self.packet.duplicate,
            delay_ms: self.packet.delay_ms,
            jitter_ms: self.packet.jitter_ms,
            clock_offset_ms: self.clock_offset_ms,
            crash_after,
            crash_down_ms,
        }
    }
}

/// The wanted state of every node.
#[derive(Clone, Debug)]
pub(crate) struct Desired {
    nodes: Vec<NodeState>,
}

impl Desired {
    /// A healthy cluster of `nodes`.
    pub(crate) fn new(nodes: usize) -> Self {
        Desired {
            nodes: vec![NodeState::default(); nodes],
        }
    }

    /// Node `i`'s wanted state.
    pub(crate) fn node(&self, i: NodeId) -> &NodeState {
        &self.nodes[i as usize]
    }

    /// How many nodes.
    pub(crate) fn len(&self) -> usize {
        self.nodes.len()
    }

    /// Adds `fault` to what the nodes suffer; the nodes whose state changed.
    pub(crate) fn apply(&mut self, fault: &Fault) -> Vec<NodeId> {
        self.change(|nodes| match fault {
            Fault::Partition { cuts, .. } => {
                for (i, node) in nodes.iter_mut().enumerate() {
                    let i = i as NodeId;
                    node.drop_to = cuts.iter().filter(|c| c.0 == i).map(|c| c.1).collect();
                    node.drop_from = cuts.iter().filter(|c| c.1 == i).map(|c| c.0).collect();
                }
            }
            Fault::Clock { offsets, .. } => {
                for &(i, offset) in offsets {
                    nodes[i as usize].clock_offset_ms = offset;
                }
            }
            Fault::Kill { nodes: chosen } => set_process(nodes, chosen, Process::Killed),
            Fault::Pause { nodes: chosen } => set_process(nodes, chosen, Process::Paused),
            Fault::Packet {
                nodes: chosen,
                delay_ms,
                jitter_ms,
                loss,
                duplicate,
            } => {
                let packet = Packet {
                    delay_ms: *delay_ms,
                    jitter_ms: *jitter_ms,
                    loss: *loss,
                    duplicate: *duplicate,
                };
                for &i in chosen {
                    nodes[i as usize].packet = packet;
                }
            }
            Fault::Crash {
                nodes: chosen,
                rules,
                down_ms,
            } => {
                for &i in chosen {
                    nodes[i as usize].crash = Some((rules.clone(), *down_ms));
                }
            }
        })
    }

    /// Takes `fault` away from what the nodes suffer; the nodes whose state changed.
    pub(crate) fn heal(&mut self, fault: &Fault) -> Vec<NodeId> {
        self.change(|nodes| match fault {
            Fault::Partition { .. } => {
                for node in nodes.iter_mut() {
                    node.drop_to.clear();
                    node.drop_from.clear();
                }
            }
            Fault::Clock { offsets, .. } => {
                for &(i, _) in offsets {
                    nodes[i as usize].clock_offset_ms = 0;
                }
            }
            Fault::Kill { nodes: chosen } | Fault::Pause { nodes: chosen } => {
                set_process(nodes, chosen, Process::Running);
            }
            Fault::Packet { nodes: chosen, .. } => {
                for &i in chosen {
                    nodes[i as usize].packet = Packet::default();
                }
            }
            Fault::Crash { nodes: chosen, .. } => {
                for &i in chosen {
                    nodes[i as usize].crash = None;
                }
            }
        })
    }

    /// Heals everything; the nodes whose state changed.
    pub(crate) fn heal_all(&mut self) -> Vec<NodeId> {
        self.change(|nodes| nodes.fill(NodeState::default()))
    }

    /// Runs `edit` on the nodes' states and returns the nodes it changed.
    fn change(&mut self, edit: impl FnOnce(&mut [NodeState])) -> Vec<NodeId> {
        let before = self.nodes.clone();
        edit(&mut self.nodes);
        (0..self.nodes.len())
            .filter(|&i| before[i] != self.nodes[i])
            .map(|i| i as NodeId)
            .collect()
    }
}

fn set_process(nodes: &mut [NodeState], chosen: &[NodeId], process: Process) {
    for &i in chosen {
        nodes[i as usize].process = process;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fault::Shape;

    #[test]
    fn a_partition_cuts_both_ends_and_its_heal_restores_only_what_it_changed() {
        let mut desired = Desired::new(3);
        let clock = Fault::Clock {
            mode: crate::fault::ClockMode::Bump,
            offsets: vec![(2, 500)],
        };
        assert_eq!(desired.apply(&clock), [2]);
        let partition = Fault::Partition {
            shape: Shape::One,
            one_way: true,
            groups: vec![vec![0], vec![1, 2]],
            cuts: vec![(0, 1), (0, 2)],
        };
        assert_eq!(desired.apply(&partition), [0, 1, 2]);
        assert_eq!(desired.node(0).drop_to, [1, 2]);
        assert_eq!(desired.node(2).drop_from, [0]);
        assert!(desired.node(0).drop_from.is_empty(), "one way");
        assert_eq!(desired.heal(&partition), [0, 1, 2]);
        assert_eq!(
            desired.node(2).clock_offset_ms,
            500,
            "the clock fault stays"
        );
        assert_eq!(desired.heal_all(), [2]);
        assert_eq!(
            desired.heal_all(),
            Vec::<NodeId>::new(),
            "nothing left to heal"
        );
    }

    #[test]
    fn kills_and_pauses_are_process_states() {
        let mut desired = Desired::new(3);
        let kill = Fault::Kill { nodes: vec![1] };
        assert_eq!(desired.apply(&kill), [1]);
        assert_eq!(desired.node(1).process, Process::Killed);
        assert_eq!(desired.apply(&Fault::Pause { nodes: vec![0] }), [0]);
        assert_eq!(desired.heal(&kill), [1]);
        assert_eq!(desired.node(1).process, Process::Running);
        assert_eq!(desired.node(0).process, Process::Paused);
    }
}
