//! Causal consistency (DESIGN §3.2): CC, causal memory (CM) and causal convergence (CCv) by
//! the bad patterns of Bouajjani, Enea, Guerraoui and Hamza ("On Verifying Causal
//! Consistency", POPL 2017), and the session guarantees of Terry et al.
//!
//! The checkers need a *differentiated* history of reads and writes: every (key, value) written
//! at most once, and no write of the initial value (`null`). Anything else is UNKNOWN, naming
//! the value written twice; the checker never guesses which write a read saw.
//!
//! Uncertain operations: an `info` write counts iff some read saw its value; `info` and `fail`
//! reads are dropped; a `fail` write is dropped (so a read of its value is a ThinAirRead). A
//! session is a process; after `info` a client continues under a fresh process, so its
//! session ends there.
//!
//! [`prepare`] builds the [`Causal`] form (operations by session, reads-from, and causal
//! order as vector clocks from one topological pass); [`models`] finds the bad patterns and
//! [`session`] the session guarantees.

mod models;
mod session;

use std::collections::HashMap;

use serde::Serialize;
use serde_json::Value;

use crate::history::{History, Operation, Status};
use crate::verdict::{Validity, Verdict};

use models::check_models;
use session::check_sessions;

/// What to check, as `faultline check --consistency` names it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Consistency {
    /// Linearizability (not a causal model; the default for non-causal histories).
    Linearizable,
    /// Causal consistency (CC).
    Causal,
    /// Causal memory (CM).
    CausalMemory,
    /// Causal convergence (CCv, "causal+").
    CausalConvergence,
    /// The five session guarantees.
    Session,
    /// The three causal models and the session guarantees.
    All,
}

impl std::str::FromStr for Consistency {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(match s {
            "linearizable" | "linearizability" => Consistency::Linearizable,
            "causal" | "cc" => Consistency::Causal,
            "causal-memory" | "cm" => Consistency::CausalMemory,
            "causal-convergence" | "ccv" => Consistency::CausalConvergence,
            "session" => Consistency::Session,
            "all" => Consistency::All,
            other => {
                return Err(format!(
                    "unknown consistency `{other}`; expected linearizable, causal, causal-memory, \
                     causal-convergence, session or all"
                ));
            }
        })
    }
}

/// One operation of a causal history.
#[derive(Clone, Debug)]
pub(crate) struct Op {
    /// Index into the history's operations (for reports).
    pub(crate) id: usize,
    pub(crate) session: usize,
    /// Position in its session, from 0.
    pub(crate) pos: u32,
    pub(crate) key: u32,
    pub(crate) write: bool,
    /// For a read: the write it read from, `None` for the initial value.
    pub(crate) reads_from: Option<usize>,
}

/// A prepared causal history.
#[derive(Debug)]
pub(crate) struct Causal<'h> {
    pub(crate) history: &'h History,
    pub(crate) ops: Vec<Op>,
    /// Per session, its operations in session order.
    pub(crate) sessions: Vec<Vec<usize>>,
    /// Per (session, key): positions and ops of the session's writes to the key, in order.
    pub(crate) writes_by: HashMap<(usize, u32), Vec<(u32, usize)>>,
    /// Reads whose value nobody wrote.
    pub(crate) thin_air: Vec<usize>,
}

/// A bad pattern found, with the operations that form it.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Violation {
    /// The pattern's name (`WriteCORead`, `CyclicCO`, `read-your-writes`, ...).
    pub pattern: String,
    /// The operations (history indices) that form it.
    pub ops: Vec<usize>,
    /// The pattern told with the operations, for a person.
    pub explanation: String,
}

impl Causal<'_> {
    /// `write x=3 (p2, line 14)`.
    pub(crate) fn describe(&self, op: usize) -> String {
        let o = &self.history.ops[self.ops[op].id];
        let value = if self.ops[op].write {
            &o.input
        } else {
            &o.output
        };
        format!(
            "{} {}={} (p{}, line {})",
            if self.ops[op].write { "write" } else { "read" },
            o.key.as_deref().unwrap_or("-"),
            value,
            o.process,
            o.line
        )
    }

    pub(crate) fn violation(&self, pattern: &str, ops: &[usize], explanation: String) -> Violation {
        Violation {
            pattern: pattern.to_string(),
            ops: ops.iter().map(|&o| self.ops[o].id).collect(),
            explanation,
        }
    }
}

fn is_read(op: &Operation) -> bool {
    matches!(op.f.as_str(), "read" | "get")
}

fn is_write(op: &Operation) -> bool {
    matches!(op.f.as_str(), "write" | "put")
}

/// Builds the causal form of a history, or says why it cannot be judged.
pub(crate) fn prepare(history: &History) -> Result<Causal<'_>, String> {
    if let Some(op) = history.ops.iter().find(|o| !is_read(o) && !is_write(o)) {
        return Err(format!(
            "the causal checkers judge reads and writes only; line {} has `{}`",
            op.line, op.f
        ));
    }
    let key_of = |o: &Operation| o.key.clone().unwrap_or_default();
    // Which (key, value) pairs some ok read saw.
    let mut seen: HashMap<(String, String), usize> = HashMap::new();
    for o in history
        .ops
        .iter()
        .filter(|o| is_read(o) && o.status == Status::Ok)
    {
        if !o.output.is_null() {
            seen.insert((key_of(o), o.output.to_string()), o.id);
        }
    }
    let counts = |o: &Operation| match o.status {
        Status::Ok => true,
        Status::Info => seen.contains_key(&(key_of(o), o.input.to_string())),
        Status::Fail | Status::Mismatch => false,
    };
    let mut keys: HashMap<String, u32> = HashMap::new();
    let mut writer: HashMap<(u32, String), usize> = HashMap::new();
    let mut ops: Vec<Op> = Vec::new();
    let mut by_process: HashMap<u64, usize> = HashMap::new();
    let mut sessions: Vec<Vec<usize>> = Vec::new();
    let mut order: Vec<&Operation> = history
        .ops
        .iter()
        .filter(|o| {
            if is_read(o) {
                o.status == Status::Ok
            } else {
                counts(o)
            }
        })
        .collect();
    order.sort_by_key(|o| (o.call, o.id));
    for o in order {
        let next_key = keys.len() as u32;
        let key = *keys.entry(key_of(o)).or_insert(next_key);
        let session = *by_process.entry(o.process).or_insert_with(|| {
            sessions.push(Vec::new());
            sessions.len() - 1
        });
        let index = ops.len();
        if is_write(o) {
            if o.input.is_null() {
                return Err(format!(
                    "line {}: a write of null, the initial value, makes the history not \
                     differentiated",
                    o.line
                ));
            }
            if let Some(&first) = writer.get(&(key, o.input.to_string())) {
                return Err(format!(
                    "the value {} is written to key {:?} twice (lines {} and {}); the causal \
                     checkers need every value written at most once",
                    o.input,
                    key_of(o),
                    history.ops[ops[first].id].line,
                    o.line
                ));
            }
            writer.insert((key, o.input.to_string()), index);
        }
        ops.push(Op {
            id: o.id,
            session,
            pos: sessions[session].len() as u32,
            key,
            write: is_write(o),
            reads_from: None,
        });
        sessions[session].push(index);
    }
    let mut thin_air = Vec::new();
    for (i, op) in ops.iter_mut().enumerate().filter(|(_, o)| !o.write) {
        let output: &Value = &history.ops[op.id].output;
        if output.is_null() {
            continue;
        }
        match writer.get(&(op.key, output.to_string())) {
            Some(&w) => op.reads_from = Some(w),
            None => thin_air.push(i),
        }
    }
    let mut writes_by: HashMap<(usize, u32), Vec<(u32, usize)>> = HashMap::new();
    for (i, op) in ops.iter().enumerate().filter(|(_, o)| o.write) {
        writes_by
            .entry((op.session, op.key))
            .or_default()
            .push((op.pos, i));
    }
    Ok(Causal {
        history,
        ops,
        sessions,
        writes_by,
        thin_air,
    })
}

/// Vector clocks of an order given as edges beside session order: `clock[o][s]` is one more
/// than the last position in session `s` that precedes or is `o` (0: none). `Err` holds the
/// operations of a cycle.
pub(crate) fn vector_clocks(
    causal: &Causal<'_>,
    extra_in: &[Vec<usize>],
) -> Result<Vec<Vec<u32>>, Vec<usize>> {
    let n = causal.ops.len();
    let s = causal.sessions.len();
    // In-degree: session predecessor plus extra incoming edges.
    let mut indegree = vec![0u32; n];
    let mut out: Vec<Vec<usize>> = vec![Vec::new(); n];
    for (to, froms) in extra_in.iter().enumerate() {
        for &from in froms {
            out[from].push(to);
            indegree[to] += 1;
        }
    }
    for session in &causal.sessions {
        for pair in session.windows(2) {
            out[pair[0]].push(pair[1]);
            indegree[pair[1]] += 1;
        }
    }
    let mut clock = vec![vec![0u32; s]; n];
    let mut ready: Vec<usize> = (0..n).filter(|&i| indegree[i] == 0).collect();
    let mut done = 0;
    while let Some(o) = ready.pop() {
        done += 1;
        let me = &causal.ops[o];
        clock[o][me.session] = clock[o][me.session].max(me.pos + 1);
        let mine = clock[o].clone();
        for &next in &out[o] {
            for (c, m) in clock[next].iter_mut().zip(&mine) {
                *c = (*c).max(*m);
            }
            indegree[next] -= 1;
            if indegree[next] == 0 {
                ready.push(next);
            }
        }
    }
    if done == n {
        return Ok(clock);
    }
    Err(find_cycle(&out, &indegree))
}

/// A cycle among the nodes a topological pass could not order: every such node has an
/// unordered predecessor, so walking back from one must repeat a node.
fn find_cycle(out: &[Vec<usize>], indegree: &[u32]) -> Vec<usize> {
    let stuck: Vec<bool> = indegree.iter().map(|&d| d > 0).collect();
    let mut back: Vec<Option<usize>> = vec![None; out.len()];
    for (from, tos) in out.iter().enumerate() {
        for &to in tos {
            if stuck[from] && stuck[to] {
                back[to] = Some(from);
            }
        }
    }
    let start = stuck
        .iter()
        .position(|&s| s)
        .expect("a cycle leaves nodes unordered");
    let mut seen = vec![usize::MAX; out.len()];
    let mut path = Vec::new();
    let mut node = start;
    loop {
        if seen[node] != usize::MAX {
            let mut cycle = path[seen[node]..].to_vec();
            cycle.reverse(); // walked backwards
            return cycle;
        }
        seen[node] = path.len();
        path.push(node);
        node = back[node].expect("an unordered node has an unordered predecessor");
    }
}

/// Whether `a` precedes `b` in the order the clocks describe.
pub(crate) fn before(causal: &Causal<'_>, clock: &[Vec<u32>], a: usize, b: usize) -> bool {
    a != b && clock[b][causal.ops[a].session] > causal.ops[a].pos
}

/// The last write to `key` in `session` at a position below `bound`.
pub(crate) fn last_write_below(
    causal: &Causal<'_>,
    session: usize,
    key: u32,
    bound: u32,
) -> Option<(u32, usize)> {
    let writes = causal.writes_by.get(&(session, key))?;
    let i = writes.partition_point(|&(pos, _)| pos < bound);
    (i > 0).then(|| writes[i - 1])
}

/// One verdict per checker, from the violations it found.
pub(crate) fn verdict(checker: &str, found: Vec<Violation>, what: &str) -> Verdict {
    let valid = if found.is_empty() {
        Validity::Pass
    } else {
        Validity::Fail
    };
    let summary = match found.first() {
        None => format!("{what}: no bad pattern found"),
        Some(v) => format!(
            "{} violation(s); first: {}: {}",
            found.len(),
            v.pattern,
            v.explanation
        ),
    };
    let mut explanation: String = found
        .iter()
        .take(10)
        .map(|v| format!("  {}: {}\n", v.pattern, v.explanation))
        .collect();
    if found.len() > 10 {
        explanation.push_str(&format!("  ... and {} more\n", found.len() - 10));
    }
    Verdict {
        valid,
        checker: checker.to_string(),
        summary,
        explanation,
        details: serde_json::json!({ "violations": found }),
    }
}

/// Every causal checker's name, in report order: the three models, then the guarantees.
pub const CHECKERS: &[&str] = &[
    "causal",
    "causal-memory",
    "causal-convergence",
    "read-your-writes",
    "monotonic-reads",
    "monotonic-writes",
    "writes-follow-reads",
    "pram",
];

/// The names of the verdicts `consistency` asks for, in report order.
pub fn checker_names(consistency: Consistency) -> &'static [&'static str] {
    match consistency {
        Consistency::Causal => &CHECKERS[..1],
        Consistency::CausalMemory => &CHECKERS[1..2],
        Consistency::CausalConvergence => &CHECKERS[2..3],
        Consistency::Session => &CHECKERS[3..],
        Consistency::All | Consistency::Linearizable => CHECKERS,
    }
}

/// The verdicts `consistency` asks for. A history the checkers cannot judge gets UNKNOWN
/// verdicts with the reason.
pub fn check(history: &History, consistency: Consistency) -> Vec<Verdict> {
    let names = checker_names(consistency);
    let causal = match prepare(history) {
        Ok(c) => c,
        Err(reason) => {
            return names
                .iter()
                .map(|n| Verdict {
                    valid: Validity::Unknown,
                    checker: n.to_string(),
                    summary: format!("unknown: {reason}"),
                    explanation: String::new(),
                    details: Value::Null,
                })
                .collect();
        }
    };
    let mut verdicts = Vec::new();
    let models: Vec<&str> = names
        .iter()
        .copied()
        .filter(|n| n.starts_with("causal"))
        .collect();
    if !models.is_empty() {
        verdicts.extend(check_models(&causal, &models));
    }
    let guarantees: Vec<&str> = names
        .iter()
        .copied()
        .filter(|n| !n.starts_with("causal"))
        .collect();
    if !guarantees.is_empty() {
        verdicts.extend(check_sessions(&causal, &guarantees));
    }
    verdicts
}
