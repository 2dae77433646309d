//! Finding and naming the cycles of the dependency graph, and describing any finding in words.
//!
//! Per strongly connected component, a set of probes each looks for the shortest cycle that
//! starts with one kind of edge and continues over a set of relations; every cycle found is
//! named by what it is made of (no rw edge: G0 or G1c; one: G-single; several never adjacent:
//! G-nonadjacent; else G2-item; `-process` or `-realtime` when it needs such an edge), and the
//! shortest of each name is kept. A component whose search runs out of budget before any
//! probe succeeds is still reported, from any one cycle through it.

use std::time::Instant;

use rustc_hash::FxHashMap;

use super::graph::{DATA, Graph, Rel, Step};
use super::history::{Mop, Observed, Txn};
use super::{Anomaly, CycleStep, Finding, Inference, TxnRef};

/// The most edges one component's probes may look at.
const COMPONENT_BUDGET: u64 = 20_000_000;

const WW: u8 = Rel::Ww.bit();
const WR: u8 = Rel::Wr.bit();
const PROCESS: u8 = Rel::Process.bit();
const REALTIME: u8 = Rel::Realtime.bit();

/// How to look: the first edge's relation, the relations of the rest, and whether rw edges
/// must never be adjacent.
struct Probe {
    first: Rel,
    rest: u8,
    nonadjacent: bool,
}

const PROBES: &[Probe] = &[
    Probe {
        first: Rel::Ww,
        rest: WW,
        nonadjacent: false,
    },
    Probe {
        first: Rel::Wr,
        rest: WW | WR,
        nonadjacent: false,
    },
    Probe {
        first: Rel::Rw,
        rest: WW | WR,
        nonadjacent: false,
    },
    Probe {
        first: Rel::Rw,
        rest: WW | WR,
        nonadjacent: true,
    },
    Probe {
        first: Rel::Rw,
        rest: DATA,
        nonadjacent: false,
    },
    Probe {
        first: Rel::Process,
        rest: WW | WR | PROCESS,
        nonadjacent: false,
    },
    Probe {
        first: Rel::Rw,
        rest: WW | WR | PROCESS,
        nonadjacent: false,
    },
    Probe {
        first: Rel::Rw,
        rest: WW | WR | PROCESS,
        nonadjacent: true,
    },
    Probe {
        first: Rel::Process,
        rest: DATA | PROCESS,
        nonadjacent: false,
    },
    Probe {
        first: Rel::Realtime,
        rest: WW | WR | PROCESS | REALTIME,
        nonadjacent: false,
    },
    Probe {
        first: Rel::Rw,
        rest: WW | WR | PROCESS | REALTIME,
        nonadjacent: false,
    },
    Probe {
        first: Rel::Rw,
        rest: WW | WR | PROCESS | REALTIME,
        nonadjacent: true,
    },
    Probe {
        first: Rel::Realtime,
        rest: DATA | PROCESS | REALTIME,
        nonadjacent: false,
    },
];

/// Finds and records the cycles of every strongly connected component, the components
/// searched in parallel.
pub(super) fn cycles(out: &mut Inference<'_>, deadline: Option<Instant>) {
    use rayon::prelude::*;
    let all = DATA | PROCESS | REALTIME;
    let components = out.graph.sccs(all);
    let graph = &out.graph;
    let results: Vec<Option<Searched>> = components
        .par_iter()
        .map(|component| {
            if deadline.is_some_and(|d| Instant::now() >= d) {
                return None;
            }
            Some(search_component(graph, component))
        })
        .collect();
    for (component, result) in components.iter().zip(results) {
        let Some(searched) = result else {
            out.unknown("the time limit passed before every cycle was searched".into());
            continue;
        };
        if searched.exhausted {
            out.unknown(format!(
                "a cycle of {} transactions was too large to classify within the search budget",
                component.len()
            ));
        }
        for (name, cycle) in searched.cycles {
            let txns_in: Vec<u32> = cycle.iter().map(|s| s.from).collect();
            let text = format!("a cycle of {} transactions", txns_in.len());
            out.found(Finding {
                name,
                text,
                txns: txns_in,
                cycle,
            });
        }
    }
}

/// What the search of one component found: the shortest cycle of each class, and whether
/// the budget ran out before any was found.
struct Searched {
    cycles: Vec<(String, Vec<Step>)>,
    exhausted: bool,
}

fn search_component(graph: &Graph, component: &[u32]) -> Searched {
    let within: FxHashMap<u32, ()> = component.iter().map(|&v| (v, ())).collect();
    let mut best: Vec<(String, Vec<Step>)> = Vec::new();
    let mut budget = COMPONENT_BUDGET;
    'probes: for probe in PROBES {
        for &a in component {
            for (b, rels) in graph.edges(a) {
                if rels & probe.first.bit() == 0 || !within.contains_key(&b) {
                    continue;
                }
                let cycle = if probe.nonadjacent {
                    let other = probe.rest & !Rel::Rw.bit();
                    graph.shortest_nonadjacent_cycle((a, b), other, &within, &mut budget)
                } else {
                    graph.shortest_cycle_through(
                        (a, b, probe.first),
                        probe.rest,
                        &within,
                        &mut budget,
                    )
                };
                if budget == 0 {
                    break 'probes;
                }
                if let Some(cycle) = cycle {
                    keep_shortest(&mut best, name(&cycle), cycle);
                }
            }
        }
    }
    let exhausted = best.is_empty();
    if exhausted {
        if let Some(cycle) = any_cycle(graph, component, &within) {
            keep_shortest(&mut best, format!("cycle{}", suffix(&cycle)), cycle);
        }
    }
    drop_implied(&mut best);
    Searched {
        cycles: best,
        exhausted,
    }
}

fn keep_shortest(best: &mut Vec<(String, Vec<Step>)>, name: String, cycle: Vec<Step>) {
    match best.iter_mut().find(|(n, _)| *n == name) {
        Some((_, kept)) if kept.len() > cycle.len() => *kept = cycle,
        Some(_) => {}
        None => best.push((name, cycle)),
    }
}

/// Leaves out a `-process` or `-realtime` cycle when the same class was found without it (the
/// plain one implies it).
fn drop_implied(best: &mut Vec<(String, Vec<Step>)>) {
    let plain: Vec<String> = best
        .iter()
        .map(|(n, _)| n.clone())
        .filter(|n| !n.ends_with("-process") && !n.ends_with("-realtime"))
        .collect();
    best.retain(|(n, _)| {
        let base = n.trim_end_matches("-process").trim_end_matches("-realtime");
        base == n || !plain.iter().any(|p| p == base)
    });
    // A G-single or G-nonadjacent is a G2-item already: the latter adds nothing.
    let item_cycle = |n: &str| n.starts_with("G-single") || n.starts_with("G-nonadjacent");
    if best.iter().any(|(n, _)| item_cycle(n)) {
        best.retain(|(n, _)| !n.starts_with("G2-item"));
    }
    let process: Vec<String> = best
        .iter()
        .filter_map(|(n, _)| n.strip_suffix("-process").map(str::to_string))
        .collect();
    best.retain(|(n, _)| {
        n.strip_suffix("-realtime")
            .is_none_or(|base| !process.iter().any(|p| p == base))
    });
}

/// The anomaly a cycle is.
fn name(cycle: &[Step]) -> String {
    let rw: Vec<usize> = (0..cycle.len())
        .filter(|&i| cycle[i].rel == Rel::Rw)
        .collect();
    let base = match rw.len() {
        0 if cycle.iter().any(|s| s.rel == Rel::Wr) => "G1c",
        0 => "G0",
        1 => "G-single",
        n => {
            let adjacent = (0..n).any(|j| {
                let next = rw[(j + 1) % n];
                (rw[j] + 1) % cycle.len() == next
            });
            if adjacent { "G2-item" } else { "G-nonadjacent" }
        }
    };
    format!("{base}{}", suffix(cycle))
}

fn suffix(cycle: &[Step]) -> &'static str {
    if cycle.iter().any(|s| s.rel == Rel::Realtime) {
        "-realtime"
    } else if cycle.iter().any(|s| s.rel == Rel::Process) {
        "-process"
    } else {
        ""
    }
}

/// Some cycle through the component: from its first vertex, any path back to it.
fn any_cycle(graph: &Graph, component: &[u32], within: &FxHashMap<u32, ()>) -> Option<Vec<Step>> {
    let a = component[0];
    for (b, rels) in graph.edges(a) {
        if !within.contains_key(&b) {
            continue;
        }
        let first = Rel::ALL.into_iter().find(|r| rels & r.bit() != 0)?;
        let mut budget = u64::MAX;
        let all = DATA | PROCESS | REALTIME;
        if let Some(cycle) = graph.shortest_cycle_through((a, b, first), all, within, &mut budget) {
            return Some(cycle);
        }
    }
    None
}

/// A finding in the report's shape: the transactions named `T{n}` with their process, op
/// and line, and each cycle edge with its reason.
pub(super) fn describe(finding: &Finding, txns: &[Txn], inference: &Inference<'_>) -> Anomaly {
    let cycle: Vec<CycleStep> = finding
        .cycle
        .iter()
        .map(|s| CycleStep {
            from: format!("T{}", s.from),
            to: format!("T{}", s.to),
            rel: s.rel.name(),
            why: why(s, txns, inference),
        })
        .collect();
    let explanation = if cycle.is_empty() {
        finding.text.clone()
    } else {
        let path: Vec<String> = finding
            .cycle
            .iter()
            .map(|s| format!("T{}", s.from))
            .collect();
        format!(
            "{} ({} -> T{})",
            finding.text,
            path.join(" -> "),
            finding.cycle[0].from
        )
    };
    let mut seen = Vec::new();
    let txns_ref = finding
        .txns
        .iter()
        .filter(|t| {
            let new = !seen.contains(*t);
            seen.push(**t);
            new
        })
        .map(|&t| {
            let txn = &txns[t as usize];
            TxnRef {
                name: format!("T{t}"),
                op: txn.op,
                process: txn.process,
                line: txn.line,
                status: txn.status,
                value: mops_text(txn, inference),
            }
        })
        .collect();
    Anomaly {
        name: finding.name.clone(),
        explanation,
        cycle,
        txns: txns_ref,
    }
}

/// A transaction's micro-operations as `[append 1 2] [r 1 [2]]`.
fn mops_text(txn: &Txn, inference: &Inference<'_>) -> String {
    let parts: Vec<String> = txn
        .mops
        .iter()
        .map(|m| match m {
            Mop::Append { key, value } => format!(
                "[append {} {}]",
                inference.name(*key),
                inference.name(*value)
            ),
            Mop::Write { key, value } => {
                format!("[w {} {}]", inference.name(*key), inference.name(*value))
            }
            Mop::Read { key, value } => {
                let seen = match value {
                    None => "?".to_string(),
                    Some(Observed::List(list)) => inference.list(list),
                    Some(Observed::Register(None)) => "nil".to_string(),
                    Some(Observed::Register(Some(v))) => inference.name(*v).to_string(),
                };
                format!("[r {} {seen}]", inference.name(*key))
            }
        })
        .collect();
    parts.join(" ")
}

/// Why one edge of a cycle exists, in words.
fn why(step: &Step, txns: &[Txn], inference: &Inference<'_>) -> String {
    let (a, b) = (format!("T{}", step.from), format!("T{}", step.to));
    match step.rel {
        Rel::Process => format!(
            "{b} ran after {a} on process {}",
            txns[step.from as usize].process
        ),
        Rel::Realtime => format!("{a} completed before {b} was invoked"),
        rel => {
            let Some(w) = inference.graph.why(step.from, step.to, rel) else {
                return format!("{a} -{}-> {b}", rel.name());
            };
            let key = inference.name(w.key);
            let v =
                |x: Option<u32>| x.map_or("nothing".to_string(), |x| inference.name(x).to_string());
            let list_append = inference.kind == super::TxnKind::ListAppend;
            match (rel, list_append) {
                (Rel::Ww, true) => format!(
                    "{a} appended {} to key {key}, and {b} appended {} after it: {b} overwrote {a} (ww)",
                    v(w.from),
                    v(w.to)
                ),
                (Rel::Wr, true) => format!(
                    "{b} read key {key} ending in {}, which {a} appended: {b} saw {a} (wr)",
                    v(w.from)
                ),
                (Rel::Rw, true) => format!(
                    "{a} read key {key} {}, and {b} appended {} after that: {a} did not see {b} (rw)",
                    w.from.map_or("as empty".to_string(), |x| format!(
                        "ending in {}",
                        inference.name(x)
                    )),
                    v(w.to)
                ),
                (Rel::Ww, false) => format!(
                    "{a} wrote key {key} = {}, and {b} wrote the next version, {} (ww)",
                    v(w.from),
                    v(w.to)
                ),
                (Rel::Wr, false) => format!(
                    "{b} read key {key} = {}, which {a} wrote: {b} saw {a} (wr)",
                    v(w.from)
                ),
                (_, false) => format!(
                    "{a} read key {key} = {}, and {b} wrote the next version, {}: {a} did not see {b} (rw)",
                    w.from
                        .map_or("nil".to_string(), |x| inference.name(x).to_string()),
                    v(w.to)
                ),
                (_, true) => format!("{a} -{}-> {b}", rel.name()),
            }
        }
    }
}
