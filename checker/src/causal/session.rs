//! Session guarantees (Terry et al.; Viotti & Vukolić), each its own verdict (DESIGN §3.2).
//!
//! Over an abstract execution with visibility `vis` and an arbitration order `ar` of writes (a
//! read returns the ar-last write visible to it). For each guarantee: start with vis = RF,
//! close it under the guarantee's vis rules (monotone, so the least closure is the best
//! witness), collect ar constraints (the guarantee's ar rules, and for each read of x returning
//! w: every other x-write visible to it is ar-before w; a read of the initial value may see no
//! x-write at all), and FAIL iff the constraints are cyclic, naming the cycle.
//!
//! - read-your-writes: a session's earlier writes are visible to its later reads;
//! - monotonic reads: what a session's read saw, its later reads see;
//! - monotonic writes: a session's writes are arbitrated in session order;
//! - writes-follow-reads: what a session's read saw is arbitrated before its later writes;
//! - PRAM: read-your-writes, monotonic reads and monotonic writes together.

use std::collections::HashMap;

use super::{Causal, Violation, verdict};
use crate::verdict::Verdict;

#[derive(Clone, Copy)]
struct Rules {
    ryw: bool,
    mr: bool,
    mw: bool,
    wfr: bool,
}

fn rules(name: &str) -> Rules {
    let none = Rules {
        ryw: false,
        mr: false,
        mw: false,
        wfr: false,
    };
    match name {
        "read-your-writes" => Rules { ryw: true, ..none },
        "monotonic-reads" => Rules { mr: true, ..none },
        "monotonic-writes" => Rules { mw: true, ..none },
        "writes-follow-reads" => Rules { wfr: true, ..none },
        _ => Rules {
            ryw: true,
            mr: true,
            mw: true,
            ..none
        },
    }
}

/// A directed graph over the operations plus virtual nodes (numbered after them).
struct Graph {
    out: Vec<Vec<usize>>,
}

impl Graph {
    fn node(&mut self) -> usize {
        self.out.push(Vec::new());
        self.out.len() - 1
    }

    fn edge(&mut self, from: usize, to: usize) {
        self.out[from].push(to);
    }

    /// A cycle, if there is one (iterative depth-first search).
    fn cycle(&self) -> Option<Vec<usize>> {
        let n = self.out.len();
        let mut state = vec![0u8; n]; // 0 new, 1 on the stack, 2 done
        let mut parent = vec![usize::MAX; n];
        for start in 0..n {
            if state[start] != 0 {
                continue;
            }
            let mut stack = vec![(start, 0usize)];
            state[start] = 1;
            while let Some(&mut (node, ref mut next)) = stack.last_mut() {
                if let Some(&succ) = self.out[node].get(*next) {
                    *next += 1;
                    match state[succ] {
                        0 => {
                            state[succ] = 1;
                            parent[succ] = node;
                            stack.push((succ, 0));
                        }
                        1 => {
                            let mut cycle = vec![succ];
                            let mut at = node;
                            while at != succ {
                                cycle.push(at);
                                at = parent[at];
                            }
                            cycle.reverse();
                            return Some(cycle);
                        }
                        _ => {}
                    }
                } else {
                    state[node] = 2;
                    stack.pop();
                }
            }
        }
        None
    }
}

fn check_one(causal: &Causal<'_>, rules: Rules) -> Vec<Violation> {
    let n = causal.ops.len();
    let mut graph = Graph {
        out: vec![Vec::new(); n],
    };
    let mut found = Vec::new();
    for session in &causal.sessions {
        // Per key: the x-writes visible to the session's next read (beyond its own RF).
        let mut visible: HashMap<u32, Vec<usize>> = HashMap::new();
        let mut last_write: Option<usize> = None;
        // Writes-follow-reads: a chain of virtual nodes, one per read, that every later write
        // of the session hangs from.
        let mut follow: Option<usize> = None;
        for &o in session {
            let op = &causal.ops[o];
            if op.write {
                if rules.mw {
                    if let Some(prev) = last_write {
                        graph.edge(prev, o);
                    }
                }
                if rules.wfr {
                    if let Some(f) = follow {
                        graph.edge(f, o);
                    }
                }
                if rules.ryw {
                    visible.entry(op.key).or_default().push(o);
                }
                last_write = Some(o);
                continue;
            }
            let seen = visible.get(&op.key).cloned().unwrap_or_default();
            match op.reads_from {
                None if !causal.thin_air.contains(&o) => {
                    if let Some(&w) = seen.first() {
                        found.push(causal.violation(
                            "visible write, initial value read",
                            &[w, o],
                            format!(
                                "{} is visible to {}, which saw the initial value",
                                causal.describe(w),
                                causal.describe(o)
                            ),
                        ));
                    }
                }
                None => {}
                Some(w) => {
                    for &other in seen.iter().filter(|&&v| v != w) {
                        graph.edge(other, w);
                    }
                    if rules.mr {
                        let list = visible.entry(op.key).or_default();
                        if !list.contains(&w) {
                            list.push(w);
                        }
                    }
                    if rules.wfr {
                        let node = graph.node();
                        graph.edge(w, node);
                        if let Some(f) = follow {
                            graph.edge(f, node);
                        }
                        follow = Some(node);
                    }
                }
            }
        }
    }
    if let Some(cycle) = graph.cycle() {
        let writes: Vec<usize> = cycle.into_iter().filter(|&o| o < n).collect();
        let mut parts: Vec<String> = writes.iter().map(|&w| causal.describe(w)).collect();
        if let Some(first) = parts.first().cloned() {
            parts.push(first);
        }
        found.push(causal.violation(
            "cyclic arbitration",
            &writes,
            format!(
                "the writes would have to be arbitrated in a cycle: {}",
                parts.join(" → ")
            ),
        ));
    }
    found
}

/// The verdicts of the guarantees named.
pub(crate) fn check_sessions(causal: &Causal<'_>, names: &[&str]) -> Vec<Verdict> {
    names
        .iter()
        .map(|&name| {
            let mut found = check_one(causal, rules(name));
            for &r in &causal.thin_air {
                found.push(causal.violation(
                    "ThinAirRead",
                    &[r],
                    format!("{} returns a value no write wrote", causal.describe(r)),
                ));
            }
            verdict(name, found, name)
        })
        .collect()
}
