//! The simulated network's links, each with its own latency distribution.
//!
//! A real cluster's links differ: one pair of machines shares a rack, another crosses a busy
//! switch; one link is steady, another jitters. So each link — node to node, each way, and
//! each node's link to its clients — draws its own range from the cluster's range when the
//! simulator starts, and each message then draws its latency from its link's range. A link
//! whose range is one value delivers in order; a wide one reorders.

use rand::RngExt;
use rand_chacha::ChaCha8Rng;

use crate::NodeId;

/// How long a message takes on a link: uniform in `min_ms..=max_ms`, drawn per message.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Latency {
    /// The shortest.
    pub min_ms: u64,
    /// The longest.
    pub max_ms: u64,
}

/// One link of the simulated network.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Link {
    /// From one node to another.
    Peer {
        /// The sending node.
        from: NodeId,
        /// The receiving node.
        to: NodeId,
    },
    /// Between a node and its clients, both ways.
    Client(NodeId),
}

/// Every link's latency range.
pub(super) struct Links {
    nodes: usize,
    /// Node-to-node links by `from * nodes + to`, then one client link per node.
    ranges: Vec<Latency>,
}

impl Links {
    /// The links of a cluster of `nodes`, each given a range inside `cluster`: its fastest
    /// time from the lower half of `cluster`, its slowest between that and `cluster`'s slowest.
    pub(super) fn drawn(nodes: usize, cluster: Latency, rng: &mut ChaCha8Rng) -> Self {
        let middle = cluster.min_ms + (cluster.max_ms - cluster.min_ms) / 2;
        let ranges = (0..nodes * nodes + nodes)
            .map(|_| {
                let min_ms = rng.random_range(cluster.min_ms..=middle);
                let max_ms = rng.random_range(min_ms..=cluster.max_ms);
                Latency { min_ms, max_ms }
            })
            .collect();
        Links { nodes, ranges }
    }

    fn index(&self, link: Link) -> usize {
        match link {
            Link::Peer { from, to } => from as usize * self.nodes + to as usize,
            Link::Client(node) => self.nodes * self.nodes + node as usize,
        }
    }

    /// `link`'s range.
    pub(super) fn range(&self, link: Link) -> Latency {
        self.ranges[self.index(link)]
    }

    /// Gives `link` the range `latency`.
    pub(super) fn set(&mut self, link: Link, latency: Latency) {
        let index = self.index(link);
        self.ranges[index] = latency;
    }

    /// One message's latency on `link`.
    pub(super) fn draw(&self, link: Link, rng: &mut ChaCha8Rng) -> u64 {
        let range = self.range(link);
        rng.random_range(range.min_ms..=range.max_ms)
    }
}
