//! The systems' unit tests' network: a [`Sim`] with helpers to ask and wait, cut links and
//! skew clocks. Delivery is the simulator's: seeded latencies, so messages reorder.

use std::collections::BTreeSet;

use super::{Answer, Request, Sim};
use crate::faults::Faults;
use crate::kv::node_name;
use crate::{ClientReply, ClientRequest, Node, NodeId, RequestId};

/// A simulated cluster driven by a test.
pub(crate) struct TestNet<N: Node> {
    /// The simulator, for what the helpers do not cover.
    pub(crate) sim: Sim<N>,
    answers: Vec<(RequestId, Answer)>,
    /// Links (from, to) whose messages are dropped.
    cut: BTreeSet<(NodeId, NodeId)>,
    /// Each node's clock offset.
    offsets: Vec<i64>,
    /// Other faults every node applies (duplication, jitter, crash points).
    extra: Faults,
}

impl<N: Node> TestNet<N> {
    /// A test network over `sim`.
    pub(crate) fn new(sim: Sim<N>) -> Self {
        let nodes = sim.len();
        TestNet {
            sim,
            answers: Vec::new(),
            cut: BTreeSet::new(),
            offsets: vec![0; nodes],
            extra: Faults::default(),
        }
    }

    /// How many nodes.
    pub(crate) fn len(&self) -> usize {
        self.sim.len()
    }

    /// Node `id`, which must be running.
    pub(crate) fn node(&self, id: NodeId) -> &N {
        self.sim
            .node(id)
            .unwrap_or_else(|| panic!("{} is down", node_name(id)))
    }

    /// Lets `ms` of virtual time pass, keeping the answers given.
    pub(crate) fn wait(&mut self, ms: u64) {
        let until = self.sim.now() + ms;
        self.sim.run_until(until);
        self.answers.extend(self.sim.replies());
    }

    /// Lets `ms` pass a millisecond at a time, showing every running node to `watch` after
    /// each.
    pub(crate) fn wait_watching(&mut self, ms: u64, mut watch: impl FnMut(NodeId, &N)) {
        for _ in 0..ms {
            self.wait(1);
            for id in 0..self.len() as NodeId {
                if let Some(node) = self.sim.node(id) {
                    watch(id, node);
                }
            }
        }
    }

    /// Sends a request without waiting for its answer.
    pub(crate) fn submit(&mut self, node: NodeId, request: ClientRequest) -> RequestId {
        self.sim.submit(node, Request::Kv(request))
    }

    /// The answer to request `id`, if it came.
    pub(crate) fn answer(&self, id: RequestId) -> Option<&Answer> {
        self.answers.iter().find(|(r, _)| *r == id).map(|(_, a)| a)
    }

    /// How many answers request `id` got.
    pub(crate) fn answers_to(&self, id: RequestId) -> usize {
        self.answers.iter().filter(|(r, _)| *r == id).count()
    }

    /// Waits up to `within_ms` for the answer to request `id`: the reply (a refusal, from a
    /// node that was down, as a 503).
    pub(crate) fn await_reply(&mut self, id: RequestId, within_ms: u64) -> ClientReply {
        for waited in 0..=within_ms {
            if waited > 0 {
                self.wait(1);
            }
            if let Some(answer) = self.answer(id) {
                return match answer.clone() {
                    Answer::Reply(reply) => reply,
                    Answer::Refused(why) => ClientReply::Unavailable(why),
                };
            }
        }
        panic!("no answer to request {id} within {within_ms} ms");
    }

    /// Sends `request` to `node` and waits up to `within_ms` for its reply.
    pub(crate) fn call(&mut self, node: NodeId, request: Request, within_ms: u64) -> ClientReply {
        let id = self.sim.submit(node, request);
        self.await_reply(id, within_ms)
    }

    /// Cuts every link between `nodes` and the rest, both ways.
    pub(crate) fn isolate(&mut self, nodes: &[NodeId]) {
        for &a in nodes {
            for b in 0..self.len() as NodeId {
                if !nodes.contains(&b) {
                    self.cut.insert((a, b));
                    self.cut.insert((b, a));
                }
            }
        }
        self.push_faults();
    }

    /// Restores every link.
    pub(crate) fn heal(&mut self) {
        self.cut.clear();
        self.push_faults();
    }

    /// Moves node `id`'s wall clock by `ms`.
    pub(crate) fn skew(&mut self, id: NodeId, ms: i64) {
        self.offsets[id as usize] = ms;
        self.push_faults();
    }

    /// Faults every node applies besides cut links and clock offsets.
    pub(crate) fn with_faults(&mut self, faults: Faults) {
        self.extra = faults;
        self.push_faults();
    }

    fn push_faults(&mut self) {
        for id in 0..self.len() as NodeId {
            let names = |pick: &dyn Fn(&(NodeId, NodeId)) -> Option<NodeId>| {
                self.cut.iter().filter_map(pick).map(node_name).collect()
            };
            let faults = Faults {
                drop_to: names(&|&(a, b)| (a == id).then_some(b)),
                drop_from: names(&|&(a, b)| (b == id).then_some(a)),
                clock_offset_ms: self.offsets[id as usize],
                ..self.extra.clone()
            };
            self.sim.set_faults(id, faults);
        }
    }
}
