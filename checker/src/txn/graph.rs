//! The dependency graph of transactions and the search for its cycles.
//!
//! Vertices are transactions (indices into the checker's transaction list); an edge carries a
//! set of [`Rel`]s (ww, wr, rw, process, realtime) and, for data edges, the reason it exists.
//! Cycles are found per strongly connected component (Tarjan, iterative) and, within one, by
//! breadth-first search restricted to the relations an anomaly allows, so that each cycle
//! reported is a shortest one of its class — short explanations (Elle's approach).

use std::collections::VecDeque;

use rustc_hash::FxHashMap;

/// A kind of dependency, as a bit.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(crate) enum Rel {
    /// T1 wrote a version, T2 the next one.
    Ww,
    /// T2 read what T1 wrote.
    Wr,
    /// T1 read a version, T2 wrote the next one (anti-dependency).
    Rw,
    /// T1 and T2 ran on the same process, T1 first.
    Process,
    /// T1 completed before T2 was invoked.
    Realtime,
}

impl Rel {
    pub(crate) const fn bit(self) -> u8 {
        match self {
            Rel::Ww => 1,
            Rel::Wr => 2,
            Rel::Rw => 4,
            Rel::Process => 8,
            Rel::Realtime => 16,
        }
    }

    /// Its name in anomaly explanations.
    pub(crate) fn name(self) -> &'static str {
        match self {
            Rel::Ww => "ww",
            Rel::Wr => "wr",
            Rel::Rw => "rw",
            Rel::Process => "process",
            Rel::Realtime => "realtime",
        }
    }

    pub(crate) const ALL: [Rel; 5] = [Rel::Ww, Rel::Wr, Rel::Rw, Rel::Process, Rel::Realtime];
}

/// The data relations.
pub(crate) const DATA: u8 = Rel::Ww.bit() | Rel::Wr.bit() | Rel::Rw.bit();

/// Why a data edge exists: the key and the values that show it.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Why {
    pub(crate) rel: Rel,
    pub(crate) key: u32,
    /// The version the first transaction wrote or read (`None`: the initial state).
    pub(crate) from: Option<u32>,
    /// The version the second transaction wrote or read.
    pub(crate) to: Option<u32>,
}

/// A directed graph of transactions with typed edges. An edge is stored once per relation
/// (no merging: the search does not mind parallel edges), with its reason inline, so that
/// building a graph of millions of edges needs no hash map.
#[derive(Default)]
pub(crate) struct Graph {
    /// Per vertex: its edges.
    out: Vec<Vec<Edge>>,
}

/// One edge: its target, relation and (for data edges) the key and versions that show it.
#[derive(Clone, Copy)]
struct Edge {
    to: u32,
    rel: u8,
    key: u32,
    from_value: u32,
    to_value: u32,
}

/// Stands for "no value" in an edge's versions.
const NONE: u32 = u32::MAX;

impl Graph {
    /// A graph of `n` vertices and no edges.
    pub(crate) fn new(n: usize) -> Self {
        Graph {
            out: vec![Vec::new(); n],
        }
    }

    /// Adds the relation `rel` from `a` to `b` (self-edges are ignored), with its reason.
    pub(crate) fn add(&mut self, a: u32, b: u32, rel: Rel, why: Option<Why>) {
        if a == b {
            return;
        }
        let edges = &mut self.out[a as usize];
        // The same edge again (several keys can give it) adds nothing.
        if edges
            .last()
            .is_some_and(|e| e.to == b && e.rel == rel.bit())
        {
            return;
        }
        let (key, from_value, to_value) = why.map_or((NONE, NONE, NONE), |w| {
            (w.key, w.from.unwrap_or(NONE), w.to.unwrap_or(NONE))
        });
        edges.push(Edge {
            to: b,
            rel: rel.bit(),
            key,
            from_value,
            to_value,
        });
    }

    /// The reason for `rel` from `a` to `b`, if the edge is a data edge.
    pub(crate) fn why(&self, a: u32, b: u32, rel: Rel) -> Option<Why> {
        let e = self.out[a as usize]
            .iter()
            .find(|e| e.to == b && e.rel == rel.bit() && e.key != NONE)?;
        let value = |v: u32| (v != NONE).then_some(v);
        Some(Why {
            rel,
            key: e.key,
            from: value(e.from_value),
            to: value(e.to_value),
        })
    }

    /// Strongly connected components with more than one vertex, over edges with any of
    /// `mask`'s relations (Tarjan's algorithm, without recursion).
    pub(crate) fn sccs(&self, mask: u8) -> Vec<Vec<u32>> {
        let n = self.out.len();
        const UNSEEN: u32 = u32::MAX;
        let mut index = vec![UNSEEN; n];
        let mut low = vec![0u32; n];
        let mut on_stack = vec![false; n];
        let mut stack: Vec<u32> = Vec::new();
        let mut next = 0u32;
        let mut found = Vec::new();
        // (vertex, position in its edge list)
        let mut calls: Vec<(u32, usize)> = Vec::new();
        for root in 0..n as u32 {
            if index[root as usize] != UNSEEN {
                continue;
            }
            calls.push((root, 0));
            while let Some(&mut (v, ref mut at)) = calls.last_mut() {
                let vu = v as usize;
                if *at == 0 && index[vu] == UNSEEN {
                    index[vu] = next;
                    low[vu] = next;
                    next += 1;
                    stack.push(v);
                    on_stack[vu] = true;
                }
                let edges = &self.out[vu];
                let mut descended = false;
                while *at < edges.len() {
                    let Edge {
                        to: w, rel: rels, ..
                    } = edges[*at];
                    *at += 1;
                    if rels & mask == 0 {
                        continue;
                    }
                    let wu = w as usize;
                    if index[wu] == UNSEEN {
                        calls.push((w, 0));
                        descended = true;
                        break;
                    } else if on_stack[wu] {
                        low[vu] = low[vu].min(index[wu]);
                    }
                }
                if descended {
                    continue;
                }
                calls.pop();
                if let Some(&(parent, _)) = calls.last() {
                    let pu = parent as usize;
                    low[pu] = low[pu].min(low[vu]);
                }
                if low[vu] == index[vu] {
                    let mut component = Vec::new();
                    loop {
                        let w = stack.pop().expect("v is on the stack");
                        on_stack[w as usize] = false;
                        component.push(w);
                        if w == v {
                            break;
                        }
                    }
                    if component.len() > 1 {
                        found.push(component);
                    }
                }
            }
        }
        found
    }

    /// The shortest cycle through the edge `first` (a, b, with relation `first_rel`) whose
    /// other edges each have one of `mask`'s relations, staying inside `within`. Returns the
    /// cycle as steps (from, to, relation).
    pub(crate) fn shortest_cycle_through(
        &self,
        (a, b, first_rel): (u32, u32, Rel),
        mask: u8,
        within: &FxHashMap<u32, ()>,
        budget: &mut u64,
    ) -> Option<Vec<Step>> {
        // BFS from b back to a.
        let mut parent: FxHashMap<u32, (u32, Rel)> = FxHashMap::default();
        let mut queue = VecDeque::from([b]);
        parent.insert(b, (a, first_rel));
        while let Some(v) = queue.pop_front() {
            if v == a {
                break;
            }
            for &Edge {
                to: w, rel: rels, ..
            } in &self.out[v as usize]
            {
                *budget = budget.saturating_sub(1);
                if *budget == 0 {
                    return None;
                }
                let allowed = rels & mask;
                if allowed == 0 || !within.contains_key(&w) || parent.contains_key(&w) {
                    continue;
                }
                parent.insert(w, (v, best_rel(allowed)));
                queue.push_back(w);
            }
        }
        if a != b && !parent.contains_key(&a) {
            return None;
        }
        let mut steps = Vec::new();
        let mut at = a;
        loop {
            let &(from, rel) = parent.get(&at)?;
            steps.push(Step { from, to: at, rel });
            if at == b {
                break;
            }
            at = from;
        }
        steps.reverse();
        Some(steps)
    }

    /// The shortest cycle through `(a, b)` (an rw edge) in which no two rw edges are adjacent
    /// (the cycle wraps around) and there are at least two rw edges: G-nonadjacent.
    pub(crate) fn shortest_nonadjacent_cycle(
        &self,
        (a, b): (u32, u32),
        other: u8,
        within: &FxHashMap<u32, ()>,
        budget: &mut u64,
    ) -> Option<Vec<Step>> {
        // States: (vertex, last edge was rw, an rw edge besides the first was taken).
        type State = (u32, bool, bool);
        let start: State = (b, true, false);
        let mut parent: FxHashMap<State, (State, Rel)> = FxHashMap::default();
        let mut queue = VecDeque::from([start]);
        let mut seen: FxHashMap<State, ()> = FxHashMap::default();
        seen.insert(start, ());
        let mut goal = None;
        while let Some(state @ (v, last_rw, more)) = queue.pop_front() {
            // Back at a, by a non-rw edge (the first edge is rw), with a second rw edge.
            if v == a && !last_rw && more {
                goal = Some(state);
                break;
            }
            for &Edge {
                to: w, rel: rels, ..
            } in &self.out[v as usize]
            {
                *budget = budget.saturating_sub(1);
                if *budget == 0 {
                    return None;
                }
                if !within.contains_key(&w) {
                    continue;
                }
                let mut choices = Vec::with_capacity(2);
                if rels & other != 0 {
                    choices.push((best_rel(rels & other), false));
                }
                if rels & Rel::Rw.bit() != 0 && !last_rw && w != b {
                    choices.push((Rel::Rw, true));
                }
                for (rel, is_rw) in choices {
                    let next = (w, is_rw, more || is_rw);
                    if seen.insert(next, ()).is_none() {
                        parent.insert(next, (state, rel));
                        queue.push_back(next);
                    }
                }
            }
        }
        let mut at = goal?;
        let mut steps = Vec::new();
        while at != start {
            let &(prev, rel) = parent.get(&at)?;
            steps.push(Step {
                from: prev.0,
                to: at.0,
                rel,
            });
            at = prev;
        }
        steps.push(Step {
            from: a,
            to: b,
            rel: Rel::Rw,
        });
        steps.reverse();
        Some(steps)
    }

    /// Every edge from `v`: (target, relation bit).
    pub(crate) fn edges(&self, v: u32) -> impl Iterator<Item = (u32, u8)> + '_ {
        self.out[v as usize].iter().map(|e| (e.to, e.rel))
    }
}

/// One edge of a cycle.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Step {
    pub(crate) from: u32,
    pub(crate) to: u32,
    pub(crate) rel: Rel,
}

/// The relation to name for an edge that has several: data before process before realtime,
/// and among data, the one that makes the explanation strongest (ww, wr, rw).
fn best_rel(bits: u8) -> Rel {
    Rel::ALL
        .into_iter()
        .find(|r| bits & r.bit() != 0)
        .expect("some relation is set")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sccs_and_shortest_cycles() {
        let mut g = Graph::new(5);
        g.add(0, 1, Rel::Ww, None);
        g.add(1, 2, Rel::Wr, None);
        g.add(2, 0, Rel::Rw, None);
        g.add(2, 1, Rel::Ww, None);
        g.add(3, 4, Rel::Ww, None);
        let sccs = g.sccs(DATA);
        assert_eq!(sccs.len(), 1);
        let mut scc = sccs[0].clone();
        scc.sort_unstable();
        assert_eq!(scc, [0, 1, 2]);
        let within: FxHashMap<u32, ()> = scc.iter().map(|&v| (v, ())).collect();
        let mut budget = 1000;
        let cycle = g
            .shortest_cycle_through(
                (2, 0, Rel::Rw),
                Rel::Ww.bit() | Rel::Wr.bit(),
                &within,
                &mut budget,
            )
            .unwrap();
        let rels: Vec<Rel> = cycle.iter().map(|s| s.rel).collect();
        assert_eq!(rels, [Rel::Rw, Rel::Ww, Rel::Wr]);
        assert_eq!(g.sccs(Rel::Ww.bit()).len(), 0, "no ww-only cycle");
    }

    #[test]
    fn nonadjacent_rw_edges() {
        // 0 -rw-> 1 -wr-> 2 -rw-> 3 -ww-> 0
        let mut g = Graph::new(4);
        g.add(0, 1, Rel::Rw, None);
        g.add(1, 2, Rel::Wr, None);
        g.add(2, 3, Rel::Rw, None);
        g.add(3, 0, Rel::Ww, None);
        let within: FxHashMap<u32, ()> = (0..4).map(|v| (v, ())).collect();
        let mut budget = 1000;
        let cycle = g
            .shortest_nonadjacent_cycle((0, 1), Rel::Ww.bit() | Rel::Wr.bit(), &within, &mut budget)
            .unwrap();
        assert_eq!(cycle.len(), 4);
        assert_eq!(cycle.iter().filter(|s| s.rel == Rel::Rw).count(), 2);
    }
}
