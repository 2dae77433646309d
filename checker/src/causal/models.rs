//! The bad patterns of CC, CM and CCv (DESIGN §3.2).
//!
//! Causal order CO = (session order ∪ reads-from)⁺ is computed once as vector clocks, in a
//! topological pass that also finds CyclicCO. "Some write to x in o's causal past" then needs
//! only the last write to x of each session below o's clock: clocks grow along session order,
//! so that write is the one most likely to follow any other. CM saturates HB at the end of each
//! session; CCv looks for a cycle in conflict order and causal order together. Both reuse the
//! same pass with extra edges.

use crate::verdict::Verdict;

use super::{Causal, Violation, before, last_write_below, vector_clocks, verdict};

/// The extra edges of CO: each read's incoming edge from the write it read.
fn reads_from_edges(causal: &Causal<'_>) -> Vec<Vec<usize>> {
    causal
        .ops
        .iter()
        .map(|o| o.reads_from.into_iter().collect())
        .collect()
}

fn cycle_text(causal: &Causal<'_>, cycle: &[usize]) -> String {
    let mut parts: Vec<String> = cycle.iter().map(|&o| causal.describe(o)).collect();
    if let Some(first) = parts.first().cloned() {
        parts.push(first);
    }
    parts.join(" → ")
}

/// CC's patterns other than CyclicCO, given CO's clocks.
fn cc_patterns(causal: &Causal<'_>, clock: &[Vec<u32>]) -> Vec<Violation> {
    let mut found = Vec::new();
    for &r in &causal.thin_air {
        found.push(causal.violation(
            "ThinAirRead",
            &[r],
            format!("{} returns a value no write wrote", causal.describe(r)),
        ));
    }
    let sessions = causal.sessions.len();
    for (r, op) in causal.ops.iter().enumerate().filter(|(_, o)| !o.write) {
        if causal.thin_air.contains(&r) {
            continue;
        }
        match op.reads_from {
            None => {
                if let Some(w) = (0..sessions)
                    .find_map(|t| last_write_below(causal, t, op.key, clock[r][t]))
                    .map(|(_, w)| w)
                {
                    found.push(causal.violation(
                        "WriteCOInitRead",
                        &[w, r],
                        format!(
                            "{} precedes {} in causal order, yet the read saw the initial value",
                            causal.describe(w),
                            causal.describe(r)
                        ),
                    ));
                }
            }
            Some(w1) => {
                for t in 0..sessions {
                    let Some((_, w2)) = last_write_below(causal, t, op.key, clock[r][t]) else {
                        continue;
                    };
                    if w2 != w1 && before(causal, clock, w1, w2) {
                        found.push(causal.violation(
                            "WriteCORead",
                            &[w1, w2, r],
                            format!(
                                "{} precedes {} in causal order, and {} comes after both",
                                causal.describe(w1),
                                causal.describe(w2),
                                causal.describe(r)
                            ),
                        ));
                        break;
                    }
                }
            }
        }
    }
    found
}

/// CM's extra patterns: for the last operation of each session, saturate HB and look for a
/// cycle (CyclicHB) or a write that happens before a read of the initial value of its key
/// (WriteHBInitRead).
fn cm_patterns(causal: &Causal<'_>) -> Vec<Violation> {
    let mut found = Vec::new();
    let sessions = causal.sessions.len();
    for session in &causal.sessions {
        let Some(&last) = session.last() else {
            continue;
        };
        let mut edges = reads_from_edges(causal);
        let clock = loop {
            let clock = match vector_clocks(causal, &edges) {
                Ok(clock) => clock,
                Err(cycle) => {
                    found.push(causal.violation(
                        "CyclicHB",
                        &cycle,
                        format!(
                            "as seen from {}, happens-before is cyclic: {}",
                            causal.describe(last),
                            cycle_text(causal, &cycle)
                        ),
                    ));
                    break None;
                }
            };
            let mut changed = false;
            for &r2 in session {
                let op = &causal.ops[r2];
                let Some(w2) = op.reads_from.filter(|_| !op.write) else {
                    continue;
                };
                for t in 0..sessions {
                    if let Some((_, w1)) = last_write_below(causal, t, op.key, clock[r2][t]) {
                        if w1 != w2 && !before(causal, &clock, w1, w2) {
                            edges[w2].push(w1);
                            changed = true;
                        }
                    }
                }
            }
            if !changed {
                break Some(clock);
            }
        };
        let Some(clock) = clock else { continue };
        for &r in session {
            let op = &causal.ops[r];
            if op.write || op.reads_from.is_some() || causal.thin_air.contains(&r) {
                continue;
            }
            if let Some((_, w)) =
                (0..sessions).find_map(|t| last_write_below(causal, t, op.key, clock[r][t]))
            {
                found.push(causal.violation(
                    "WriteHBInitRead",
                    &[w, r, last],
                    format!(
                        "as seen from {}, {} happens before {}, which saw the initial value",
                        causal.describe(last),
                        causal.describe(w),
                        causal.describe(r)
                    ),
                ));
                break;
            }
        }
    }
    found
}

/// CCv's extra pattern: conflict order (w1 before w2 when a read of w2 follows w1 causally)
/// and causal order together are cyclic.
fn ccv_patterns(causal: &Causal<'_>, clock: &[Vec<u32>]) -> Vec<Violation> {
    let mut edges = reads_from_edges(causal);
    for (r2, op) in causal.ops.iter().enumerate().filter(|(_, o)| !o.write) {
        let Some(w2) = op.reads_from else { continue };
        for (t, &bound) in clock[r2].iter().enumerate() {
            if let Some((_, w1)) = last_write_below(causal, t, op.key, bound) {
                if w1 != w2 {
                    edges[w2].push(w1);
                }
            }
        }
    }
    match vector_clocks(causal, &edges) {
        Ok(_) => Vec::new(),
        Err(cycle) => vec![causal.violation(
            "CyclicCF",
            &cycle,
            format!(
                "conflict order and causal order form a cycle: {}",
                cycle_text(causal, &cycle)
            ),
        )],
    }
}

/// The verdicts of the models named (`causal`, `causal-memory`, `causal-convergence`).
pub(crate) fn check_models(causal: &Causal<'_>, models: &[&str]) -> Vec<Verdict> {
    let (cc, clock) = match vector_clocks(causal, &reads_from_edges(causal)) {
        Ok(clock) => (cc_patterns(causal, &clock), Some(clock)),
        Err(cycle) => (
            vec![causal.violation(
                "CyclicCO",
                &cycle,
                format!(
                    "session order and reads-from form a cycle: {}",
                    cycle_text(causal, &cycle)
                ),
            )],
            None,
        ),
    };
    models
        .iter()
        .map(|&model| {
            let mut found = cc.clone();
            if let Some(clock) = &clock {
                match model {
                    "causal-memory" => found.extend(cm_patterns(causal)),
                    "causal-convergence" => found.extend(ccv_patterns(causal, clock)),
                    _ => {}
                }
            }
            let what = match model {
                "causal" => "causally consistent",
                "causal-memory" => "causal memory",
                _ => "causally convergent",
            };
            verdict(model, found, what)
        })
        .collect()
}
