//! The bundled systems in the simulator, behind one object-safe [`World`], built from their
//! settings as the process runtime builds them.

use serde_json::Value;

use super::{Answer, Latency, Request, Sim, Trace};
use crate::faults::Faults;
use crate::quorum::QuorumNode;
use crate::raft::RaftNode;
use crate::saga::SagaNode;
use crate::twopc::TwoPcNode;
use crate::{Node, NodeId, RequestId, SystemSettings};

/// A simulated cluster, whatever its system: what a harness driving it needs.
pub trait World: Send {
    /// When the next event happens, if any is due.
    fn next_at(&self) -> Option<u64>;
    /// Runs every event due by `t` and moves the clock there.
    fn run_until(&mut self, t: u64);
    /// Gives a client request to a node.
    fn submit(&mut self, node: NodeId, request: Request) -> RequestId;
    /// The replies given since the last call.
    fn take_replies(&mut self) -> Vec<(RequestId, Answer)>;
    /// Replaces a node's faults.
    fn set_faults(&mut self, node: NodeId, faults: Faults);
    /// Kills a node until [`World::restart`].
    fn kill(&mut self, node: NodeId);
    /// Restarts a node that is down from its records.
    fn restart(&mut self, node: NodeId);
    /// Pauses a node until [`World::resume`].
    fn pause(&mut self, node: NodeId);
    /// Resumes a paused node.
    fn resume(&mut self, node: NodeId);
    /// A running node's state (`GET /admin/state`, bare).
    fn describe(&mut self, node: NodeId) -> Option<Value>;
    /// The notes the nodes wrote.
    fn notes(&self) -> &[(NodeId, Value)];
    /// The events kept, if asked for.
    fn trace(&self) -> Option<&Trace>;
    /// How many nodes.
    fn nodes(&self) -> usize;
}

impl<N: Node> World for Sim<N> {
    fn next_at(&self) -> Option<u64> {
        Sim::next_at(self)
    }
    fn run_until(&mut self, t: u64) {
        Sim::run_until(self, t);
    }
    fn submit(&mut self, node: NodeId, request: Request) -> RequestId {
        Sim::submit(self, node, request)
    }
    fn take_replies(&mut self) -> Vec<(RequestId, Answer)> {
        self.replies().collect()
    }
    fn set_faults(&mut self, node: NodeId, faults: Faults) {
        Sim::set_faults(self, node, faults);
    }
    fn kill(&mut self, node: NodeId) {
        Sim::kill(self, node);
    }
    fn restart(&mut self, node: NodeId) {
        Sim::restart(self, node);
    }
    fn pause(&mut self, node: NodeId) {
        Sim::pause(self, node);
    }
    fn resume(&mut self, node: NodeId) {
        Sim::resume(self, node);
    }
    fn describe(&mut self, node: NodeId) -> Option<Value> {
        Sim::describe(self, node)
    }
    fn notes(&self) -> &[(NodeId, Value)] {
        Sim::notes(self)
    }
    fn trace(&self) -> Option<&Trace> {
        Sim::trace(self)
    }
    fn nodes(&self) -> usize {
        self.len()
    }
}

/// The latency of a simulated link when a system names none: 1 to 5 ms, so messages
/// reorder as on a busy network.
pub const DEFAULT_LATENCY: Latency = Latency {
    min_ms: 1,
    max_ms: 5,
};

/// A simulated cluster of `nodes` nodes of the system `settings` belong to, seeded by `seed`,
/// keeping its events when `trace` (for the determinism guard).
pub fn for_system(settings: &SystemSettings, nodes: u32, seed: u64, trace: bool) -> Box<dyn World> {
    fn boxed<N: Node>(sim: Sim<N>, trace: bool) -> Box<dyn World> {
        Box::new(if trace { sim.with_trace() } else { sim })
    }
    match settings.clone() {
        SystemSettings::Quorum(s) => boxed(
            Sim::new(
                nodes,
                DEFAULT_LATENCY,
                seed,
                Box::new(move |id, records, _| QuorumNode::new(id, s.clone(), records)),
            ),
            trace,
        ),
        SystemSettings::Raft(s) => {
            let latency = Latency {
                min_ms: s.link_ms.max(DEFAULT_LATENCY.min_ms),
                max_ms: s.link_ms + DEFAULT_LATENCY.max_ms,
            };
            let make = move |id: NodeId, records, incarnation: u64| {
                let seed = seed ^ u64::from(id) ^ incarnation.wrapping_mul(0x9e37_79b9_7f4a_7c15);
                RaftNode::new(id, s.clone(), seed, records)
            };
            boxed(Sim::new(nodes, latency, seed, Box::new(make)), trace)
        }
        SystemSettings::Saga(s) => boxed(
            Sim::new(
                nodes,
                DEFAULT_LATENCY,
                seed,
                Box::new(move |id, records, _| SagaNode::new(id, &s, seed, records)),
            ),
            trace,
        ),
        SystemSettings::TwoPc(s) => boxed(
            Sim::new(
                nodes,
                DEFAULT_LATENCY,
                seed,
                Box::new(move |id, records, _| TwoPcNode::new(id, &s, seed, records)),
            ),
            trace,
        ),
    }
}
