//! The consistent-hash ring: 2^32 positions, `vnodes` virtual nodes per node, and the
//! preference list of a key (the first N distinct nodes clockwise from the key's position).

use super::NodeId;

/// A 32-bit position from FNV-1a, finished with a 64-bit mix so nearby names scatter.
pub fn position(text: &str) -> u32 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in text.bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    h ^= h >> 33;
    h = h.wrapping_mul(0xff51_afd7_ed55_8ccd);
    h ^= h >> 33;
    (h >> 32) as u32
}

/// The ring of a set of nodes.
#[derive(Clone, Debug)]
pub struct Ring {
    /// (position, node), sorted by position.
    points: Vec<(u32, NodeId)>,
    nodes: usize,
}

impl Ring {
    /// A ring of `nodes` (by id) with `vnodes` points each.
    pub fn new(nodes: &[NodeId], vnodes: u32) -> Self {
        let mut points: Vec<(u32, NodeId)> = nodes
            .iter()
            .flat_map(|&n| (0..vnodes).map(move |v| (position(&format!("n{}#{v}", n + 1)), n)))
            .collect();
        points.sort_unstable();
        Ring {
            points,
            nodes: nodes.len(),
        }
    }

    /// Every node in ring order starting at `key`'s position: the first N are its preference
    /// list, the rest its fallbacks in order.
    pub fn walk(&self, key: &str) -> Vec<NodeId> {
        let start = self.points.partition_point(|&(p, _)| p < position(key));
        let mut seen = Vec::with_capacity(self.nodes);
        for i in 0..self.points.len() {
            let node = self.points[(start + i) % self.points.len()].1;
            if !seen.contains(&node) {
                seen.push(node);
                if seen.len() == self.nodes {
                    break;
                }
            }
        }
        seen
    }

    /// The first `n` distinct nodes for `key`.
    pub fn preference_list(&self, key: &str, n: usize) -> Vec<NodeId> {
        let mut walk = self.walk(key);
        walk.truncate(n);
        walk
    }

    /// Points on the ring, for `GET /admin/state`.
    pub fn points(&self) -> &[(u32, NodeId)] {
        &self.points
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn owners(ring: &Ring, keys: &[String]) -> Vec<NodeId> {
        keys.iter().map(|k| ring.walk(k)[0]).collect()
    }

    #[test]
    fn adding_a_node_moves_about_one_share_of_keys() {
        let keys: Vec<String> = (0..100_000).map(|i| format!("key-{i}")).collect();
        let ten: Vec<NodeId> = (0..10).collect();
        let eleven: Vec<NodeId> = (0..11).collect();
        let before = owners(&Ring::new(&ten, 64), &keys);
        let after = owners(&Ring::new(&eleven, 64), &keys);
        let moved = before.iter().zip(&after).filter(|(a, b)| a != b).count();
        let expected = keys.len() as f64 / 11.0;
        assert!(
            (moved as f64 - expected).abs() <= 0.2 * expected,
            "moved {moved}, expected about {expected}"
        );
        // Every moved key moved to the new node.
        assert!(before.iter().zip(&after).all(|(a, b)| a == b || *b == 10));

        // Removing a node moves only its keys.
        let without_3: Vec<NodeId> = (0..10).filter(|&n| n != 3).collect();
        let removed = owners(&Ring::new(&without_3, 64), &keys);
        for (b, r) in before.iter().zip(&removed) {
            assert!(b == r || *b == 3, "a key of node {b} moved to {r}");
        }

        // A modulo hash moves most keys.
        let modulo = |k: &String, n: u32| position(k) % n;
        let moved_mod = keys
            .iter()
            .filter(|k| modulo(k, 10) != modulo(k, 11))
            .count();
        assert!(
            moved_mod as f64 > 0.8 * keys.len() as f64,
            "modulo moved {moved_mod}"
        );
    }

    #[test]
    fn preference_lists_are_distinct_nodes() {
        let ring = Ring::new(&[0, 1, 2, 3, 4], 16);
        for i in 0..1000 {
            let list = ring.preference_list(&format!("k{i}"), 3);
            assert_eq!(list.len(), 3);
            assert!(list[0] != list[1] && list[1] != list[2] && list[0] != list[2]);
        }
        assert_eq!(ring.walk("x").len(), 5);
    }
}
