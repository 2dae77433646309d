//! Versions of a key and how replicas merge them: by a total order of stamps (last writer wins
//! by wall clock, or ABD's tags), or by vector clocks that keep concurrent versions as siblings.

use std::cmp::Ordering;
use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::NodeId;

/// A vector clock: per node, how many of its events a version has seen.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct VClock(pub BTreeMap<NodeId, u64>);

/// How two vector clocks relate.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Causality {
    /// Identical.
    Equal,
    /// The first happened before the second.
    Before,
    /// The first happened after the second.
    After,
    /// Neither saw the other.
    Concurrent,
}

impl VClock {
    /// How `self` relates to `other`.
    pub fn compare(&self, other: &VClock) -> Causality {
        let (mut less, mut greater) = (false, false);
        for node in self.0.keys().chain(other.0.keys()) {
            let (a, b) = (self.get(*node), other.get(*node));
            less |= a < b;
            greater |= a > b;
        }
        match (less, greater) {
            (false, false) => Causality::Equal,
            (true, false) => Causality::Before,
            (false, true) => Causality::After,
            (true, true) => Causality::Concurrent,
        }
    }

    /// The count for `node`.
    pub fn get(&self, node: NodeId) -> u64 {
        self.0.get(&node).copied().unwrap_or(0)
    }

    /// The least clock that has seen both.
    pub fn merge(&self, other: &VClock) -> VClock {
        let mut out = self.0.clone();
        for (&node, &count) in &other.0 {
            let entry = out.entry(node).or_insert(0);
            *entry = (*entry).max(count);
        }
        VClock(out)
    }
}

/// A stamp that orders versions totally: a wall-clock time (LWW) or a sequence (ABD tag), with
/// the writing node breaking ties.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Stamp {
    /// Milliseconds of the coordinator's wall clock (LWW, and display order of siblings), or
    /// ABD's sequence number.
    pub time: u64,
    /// The coordinating node.
    pub node: NodeId,
}

/// One version of a key's value.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Version {
    /// The value.
    pub value: Value,
    /// The total-order stamp.
    pub stamp: Stamp,
    /// The vector clock (empty unless resolution is vclock).
    #[serde(default, skip_serializing_if = "is_empty")]
    pub clock: VClock,
}

fn is_empty(c: &VClock) -> bool {
    c.0.is_empty()
}

/// How a replica keeps versions.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Merge {
    /// Keep the one with the greatest stamp.
    Newest,
    /// Keep every version no other version's clock dominates (siblings).
    Siblings,
}

impl Merge {
    /// Merges `incoming` into `current`; returns whether `current` changed.
    pub fn merge(self, current: &mut Vec<Version>, incoming: &[Version]) -> bool {
        let before = current.clone();
        match self {
            Merge::Newest => {
                let newest = current
                    .iter()
                    .chain(incoming)
                    .max_by(|a, b| a.stamp.cmp(&b.stamp))
                    .cloned();
                current.clear();
                current.extend(newest);
            }
            Merge::Siblings => {
                for v in incoming {
                    let dominated_or_known = current.iter().any(|c| {
                        matches!(
                            c.clock.compare(&v.clock),
                            Causality::After | Causality::Equal
                        )
                    });
                    if !dominated_or_known {
                        current.retain(|c| c.clock.compare(&v.clock) != Causality::Before);
                        current.push(v.clone());
                    }
                }
                current.sort_by(|a, b| a.stamp.cmp(&b.stamp).then_with(|| order_clocks(a, b)));
            }
        }
        *current != before
    }
}

fn order_clocks(a: &Version, b: &Version) -> Ordering {
    a.clock.0.iter().cmp(b.clock.0.iter())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn clock(entries: &[(NodeId, u64)]) -> VClock {
        VClock(entries.iter().copied().collect())
    }

    #[test]
    fn clocks_compare() {
        let a = clock(&[(0, 1)]);
        let b = clock(&[(0, 2), (1, 1)]);
        let c = clock(&[(1, 3)]);
        assert_eq!(a.compare(&b), Causality::Before);
        assert_eq!(b.compare(&a), Causality::After);
        assert_eq!(a.compare(&c), Causality::Concurrent);
        assert_eq!(b.compare(&b.clone()), Causality::Equal);
        assert_eq!(a.compare(&clock(&[(0, 1), (2, 0)])), Causality::Equal);
        assert_eq!(a.merge(&c), clock(&[(0, 1), (1, 3)]));
    }

    fn version(value: i64, time: u64, c: &[(NodeId, u64)]) -> Version {
        Version {
            value: json!(value),
            stamp: Stamp { time, node: 0 },
            clock: clock(c),
        }
    }

    #[test]
    fn siblings_are_kept_until_a_dominating_version_arrives() {
        let mut current = vec![version(1, 10, &[(0, 1)])];
        assert!(Merge::Siblings.merge(&mut current, &[version(2, 5, &[(1, 1)])]));
        assert_eq!(current.len(), 2, "concurrent versions are siblings");
        assert!(!Merge::Siblings.merge(&mut current, &[version(1, 10, &[(0, 1)])]));
        assert!(Merge::Siblings.merge(&mut current, &[version(3, 1, &[(0, 2), (1, 1)])]));
        assert_eq!(current, vec![version(3, 1, &[(0, 2), (1, 1)])]);
    }

    #[test]
    fn newest_keeps_the_greatest_stamp() {
        let mut current = vec![version(1, 10, &[])];
        assert!(!Merge::Newest.merge(&mut current, &[version(2, 5, &[])]));
        assert!(Merge::Newest.merge(&mut current, &[version(3, 11, &[])]));
        assert_eq!(current[0].value, json!(3));
    }
}
