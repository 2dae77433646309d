//! The `topology` the broadcast workload sends first: which nodes each node should talk to,
//! in Maelstrom's shapes (`grid` by default).

use std::collections::BTreeMap;
use std::str::FromStr;

/// A topology's shape.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Topology {
    /// The nodes in a square grid (row by row), each with its neighbours above, below, left
    /// and right: Maelstrom's default.
    Grid,
    /// A line: each node with the one before and the one after.
    Line,
    /// Every node with every other.
    Total,
    /// A tree with this many children per node; each node with its parent and children.
    Tree(usize),
}

impl FromStr for Topology {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "grid" => Ok(Topology::Grid),
            "line" => Ok(Topology::Line),
            "total" => Ok(Topology::Total),
            "tree2" => Ok(Topology::Tree(2)),
            "tree3" => Ok(Topology::Tree(3)),
            "tree4" => Ok(Topology::Tree(4)),
            _ => Err(format!(
                "unknown topology `{s}`; expected grid, line, total, tree2, tree3 or tree4"
            )),
        }
    }
}

impl Topology {
    /// The name `--topology` takes.
    pub fn name(self) -> String {
        match self {
            Topology::Grid => "grid".into(),
            Topology::Line => "line".into(),
            Topology::Total => "total".into(),
            Topology::Tree(k) => format!("tree{k}"),
        }
    }

    /// Each node's neighbours, by name, for nodes `names` (in order).
    pub fn neighbours(self, names: &[String]) -> BTreeMap<String, Vec<String>> {
        let n = names.len();
        let of = |i: usize| -> Vec<usize> {
            match self {
                Topology::Grid => {
                    let side = (1..).find(|s| s * s >= n).unwrap_or(1);
                    let mut out = Vec::new();
                    if i >= side {
                        out.push(i - side);
                    }
                    if i + side < n {
                        out.push(i + side);
                    }
                    if i % side > 0 {
                        out.push(i - 1);
                    }
                    if i % side + 1 < side && i + 1 < n {
                        out.push(i + 1);
                    }
                    out
                }
                Topology::Line => [i.checked_sub(1), (i + 1 < n).then_some(i + 1)]
                    .into_iter()
                    .flatten()
                    .collect(),
                Topology::Total => (0..n).filter(|&j| j != i).collect(),
                Topology::Tree(k) => {
                    let parent = (i > 0).then(|| (i - 1) / k);
                    parent
                        .into_iter()
                        .chain((k * i + 1..=k * i + k).filter(|&c| c < n))
                        .collect()
                }
            }
        };
        (0..n)
            .map(|i| {
                let mut peers: Vec<String> = of(i).into_iter().map(|j| names[j].clone()).collect();
                peers.sort();
                (names[i].clone(), peers)
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(n: usize) -> Vec<String> {
        (1..=n).map(|i| format!("n{i}")).collect()
    }

    #[test]
    fn a_grid_of_five_is_two_rows_of_three_and_two() {
        let t = Topology::Grid.neighbours(&names(5));
        // n1 n2 n3
        // n4 n5
        assert_eq!(t["n1"], ["n2", "n4"]);
        assert_eq!(t["n2"], ["n1", "n3", "n5"]);
        assert_eq!(t["n3"], ["n2"]);
        assert_eq!(t["n5"], ["n2", "n4"]);
    }

    #[test]
    fn every_topology_is_symmetric_and_connected() {
        for shape in ["grid", "line", "total", "tree2", "tree3", "tree4"] {
            for n in 1..=12 {
                let parsed = shape.parse::<Topology>().unwrap();
                assert_eq!(parsed.name(), shape);
                let t = parsed.neighbours(&names(n));
                for (a, peers) in &t {
                    for b in peers {
                        assert!(t[b].contains(a), "{shape} {n}: {a}-{b} one way");
                    }
                }
                let mut seen = vec!["n1".to_string()];
                let mut i = 0;
                while i < seen.len() {
                    for b in &t[&seen[i]] {
                        if !seen.contains(b) {
                            seen.push(b.clone());
                        }
                    }
                    i += 1;
                }
                assert_eq!(seen.len(), n, "{shape} {n}: not connected");
            }
        }
    }
}
