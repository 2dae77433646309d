//! The routed network's decisions, without I/O: for each message, whether it arrives and
//! after how long (once, twice, or never), from the run's seed, the base latency and the
//! faults each node suffers. The same messages offered in the same order get the same
//! decisions: the router's I/O shell ([`super::router`]) only keeps time and moves lines.
//!
//! Partitions cut links between nodes (clients and services are outside them, as in
//! Maelstrom); packet faults degrade every message a node sends.

use std::time::Duration;

use rand::{RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// Where a message comes from or goes to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Place {
    /// Node `i` (`n{i+1}`).
    Node(usize),
    /// A client or a service: outside every partition.
    Outside,
}

/// The latency every message gets: `mean` plus a uniform random share of `jitter`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Latency {
    /// The base delay.
    pub base: Duration,
    /// Up to this much more, drawn per message (so messages reorder).
    pub jitter: Duration,
}

/// What one node suffers now.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct NodeFaults {
    /// Nodes whose messages to this node are dropped.
    pub drop_from: Vec<usize>,
    /// Nodes this node's messages to are dropped.
    pub drop_to: Vec<usize>,
    /// Added delay on every message it sends.
    pub delay: Duration,
    /// Random extra delay on every message it sends, up to this.
    pub jitter: Duration,
    /// Share of its messages lost.
    pub loss: f64,
    /// Share of its messages delivered twice.
    pub duplicate: f64,
}

/// What happens to one message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Route {
    /// Delivered after each of these delays (two for a duplicate).
    Deliver(Vec<Duration>),
    /// Never delivered, and why.
    Dropped(Drop),
}

/// Why a message was dropped.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Drop {
    /// A partition cuts the link.
    Partition,
    /// A packet fault lost it.
    Loss,
}

/// The network's state: the seeded RNG, the base latency, and each node's faults.
#[derive(Debug)]
pub struct Network {
    rng: ChaCha8Rng,
    latency: Latency,
    faults: Vec<NodeFaults>,
}

impl Network {
    /// A network of `nodes` nodes with no faults.
    pub fn new(nodes: usize, latency: Latency, seed: u64) -> Self {
        Network {
            rng: ChaCha8Rng::seed_from_u64(seed),
            latency,
            faults: vec![NodeFaults::default(); nodes],
        }
    }

    /// Node `node` suffers `faults` from now on (replacing what it suffered).
    pub fn set_faults(&mut self, node: usize, faults: NodeFaults) {
        if let Some(slot) = self.faults.get_mut(node) {
            *slot = faults;
        }
    }

    /// Decides the fate of one message from `from` to `to`.
    pub fn route(&mut self, from: Place, to: Place) -> Route {
        if let (Place::Node(a), Place::Node(b)) = (from, to) {
            let cut = self.faults.get(b).is_some_and(|f| f.drop_from.contains(&a))
                || self.faults.get(a).is_some_and(|f| f.drop_to.contains(&b));
            if cut {
                return Route::Dropped(Drop::Partition);
            }
        }
        let sender = match from {
            Place::Node(a) => self.faults.get(a).cloned().unwrap_or_default(),
            Place::Outside => NodeFaults::default(),
        };
        if sender.loss > 0.0 && self.rng.random_bool(sender.loss.min(1.0)) {
            return Route::Dropped(Drop::Loss);
        }
        let copies = if sender.duplicate > 0.0 && self.rng.random_bool(sender.duplicate.min(1.0)) {
            2
        } else {
            1
        };
        let delays = (0..copies)
            .map(|_| {
                self.latency.base
                    + self.draw(self.latency.jitter)
                    + sender.delay
                    + self.draw(sender.jitter)
            })
            .collect();
        Route::Deliver(delays)
    }

    /// A uniform draw in `[0, up_to]`.
    fn draw(&mut self, up_to: Duration) -> Duration {
        if up_to.is_zero() {
            return Duration::ZERO;
        }
        Duration::from_micros(self.rng.random_range(0..=up_to.as_micros() as u64))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    fn faulty() -> Network {
        let latency = Latency {
            base: ms(5),
            jitter: ms(5),
        };
        let mut net = Network::new(3, latency, 7);
        net.set_faults(
            0,
            NodeFaults {
                loss: 0.3,
                duplicate: 0.3,
                jitter: ms(20),
                ..NodeFaults::default()
            },
        );
        net.set_faults(
            2,
            NodeFaults {
                drop_from: vec![1],
                ..NodeFaults::default()
            },
        );
        net
    }

    fn offer(net: &mut Network) -> Vec<Route> {
        let places = [
            Place::Node(0),
            Place::Node(1),
            Place::Node(2),
            Place::Outside,
        ];
        (0..2000)
            .map(|i| net.route(places[i % 4], places[(i / 4) % 4]))
            .collect()
    }

    #[test]
    fn the_same_messages_in_the_same_order_get_the_same_fates() {
        let (a, b) = (offer(&mut faulty()), offer(&mut faulty()));
        assert_eq!(a, b);
        let mut other = faulty();
        other.rng = ChaCha8Rng::seed_from_u64(8);
        assert_ne!(a, offer(&mut other));
    }

    #[test]
    fn partitions_cut_one_way_between_nodes_only() {
        let mut net = faulty();
        assert_eq!(
            net.route(Place::Node(1), Place::Node(2)),
            Route::Dropped(Drop::Partition)
        );
        assert!(matches!(
            net.route(Place::Node(2), Place::Node(1)),
            Route::Deliver(_)
        ));
        assert!(matches!(
            net.route(Place::Outside, Place::Node(2)),
            Route::Deliver(_)
        ));
    }

    #[test]
    fn packet_faults_lose_duplicate_and_delay_what_a_node_sends() {
        let mut net = faulty();
        let routes: Vec<Route> = (0..4000)
            .map(|_| net.route(Place::Node(0), Place::Node(1)))
            .collect();
        let lost = routes
            .iter()
            .filter(|r| **r == Route::Dropped(Drop::Loss))
            .count();
        let twice = routes
            .iter()
            .filter(|r| matches!(r, Route::Deliver(d) if d.len() == 2))
            .count();
        assert!((1000..1400).contains(&lost), "{lost} of 4000 lost at 30%");
        assert!(
            (700..1000).contains(&twice),
            "{twice} of 2800 duplicated at 30%"
        );
        for r in &routes {
            if let Route::Deliver(delays) = r {
                assert!(delays.iter().all(|d| *d >= ms(5) && *d <= ms(30)));
            }
        }
        // Node 1 has no faults: everything it sends arrives once, within the base latency.
        for _ in 0..100 {
            let Route::Deliver(d) = net.route(Place::Node(1), Place::Node(0)) else {
                panic!()
            };
            assert!(d.len() == 1 && d[0] >= ms(5) && d[0] <= ms(10));
        }
    }
}
