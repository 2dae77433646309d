//! The transactional isolation checker (DESIGN §3.4; the Elle class: Kingsbury & Alvaro,
//! "Elle: Inferring Isolation Anomalies from Experimental Observations", VLDB 2021).
//!
//! From a history of transactions over list-append or read-write registers it infers each
//! key's version order, builds the dependency graph of the transactions (ww, wr, rw edges from
//! the data; process and real-time edges from the history), finds the cycles each anomaly
//! class is made of (Adya's G0, G1c, G-single, G-nonadjacent, G2-item, each with `-process` and
//! `-realtime` variants) and the anomalies no graph shows (G1a, G1b, internal, dirty-update,
//! duplicate-elements, incompatible-order, lost-update, garbage-read, future-read), and says
//! which consistency models ([`Model`]) the history therefore is not.
//!
//! A verdict names every transaction it rests on. The search is bounded: past `--timeout`, or
//! past its step budget inside one strongly connected component, the verdict is UNKNOWN with
//! the reason unless an anomaly the model forbids was already found.

mod graph;
mod history;
mod list_append;
mod models;
mod rw_register;
mod search;

pub(crate) use history::looks_like_mops;
pub use models::{ALL_MODELS, Model};

use std::time::{Duration, Instant};

use serde::Serialize;
use serde_json::Value;

use crate::history::History;
use crate::model::ModelError;
use crate::verdict::{Validity, Verdict};
use graph::{Graph, Rel};
use history::{Id, Interner, Mop, Observed, Txn};

/// The data type a transactional history works on.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum TxnKind {
    /// Lists that transactions append unique values to and read whole.
    ListAppend,
    /// Registers that transactions write unique values to and read.
    RwRegister,
}

impl std::str::FromStr for TxnKind {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "list-append" => Ok(TxnKind::ListAppend),
            "rw-register" => Ok(TxnKind::RwRegister),
            other => Err(format!(
                "unknown transactional model `{other}`; expected list-append or rw-register"
            )),
        }
    }
}

impl TxnKind {
    /// Its name.
    pub fn name(self) -> &'static str {
        match self {
            TxnKind::ListAppend => "list-append",
            TxnKind::RwRegister => "rw-register",
        }
    }
}

/// What rw-register inference may assume about each key, as Elle's flags do.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Assumption {
    /// Each key is linearizable: versions are ordered by the real time of their writes.
    LinearizableKeys,
    /// Each key is sequentially consistent: versions are ordered by each process's order.
    SequentialKeys,
    /// Writes follow reads: a transaction that reads a key and then writes it wrote the next
    /// version.
    WfrKeys,
}

impl Assumption {
    /// The assumption's name, as `--assume` takes it.
    pub fn name(self) -> &'static str {
        match self {
            Assumption::LinearizableKeys => "linearizable-keys",
            Assumption::SequentialKeys => "sequential-keys",
            Assumption::WfrKeys => "wfr-keys",
        }
    }
}

impl std::str::FromStr for Assumption {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        [
            Assumption::LinearizableKeys,
            Assumption::SequentialKeys,
            Assumption::WfrKeys,
        ]
        .into_iter()
        .find(|a| a.name() == s)
        .ok_or_else(|| {
            format!(
                "unknown assumption `{s}`; expected linearizable-keys, sequential-keys or wfr-keys"
            )
        })
    }
}

/// What to check against.
#[derive(Clone, Debug)]
pub struct TxnOptions {
    /// The data type; inferred from the micro-operations when `None`.
    pub kind: Option<TxnKind>,
    /// The model the verdict is for.
    pub consistency: Model,
    /// rw-register assumptions.
    pub assume: Vec<Assumption>,
    /// Give up (UNKNOWN unless a forbidden anomaly is found) after this long.
    pub timeout: Option<Duration>,
}

impl Default for TxnOptions {
    fn default() -> Self {
        TxnOptions {
            kind: None,
            consistency: Model::StrictSerializable,
            assume: Vec::new(),
            timeout: None,
        }
    }
}

/// A transaction an anomaly rests on, as the history has it.
#[derive(Clone, Debug, Serialize)]
pub struct TxnRef {
    /// `T{n}` in explanations.
    pub name: String,
    /// Its position among the history's operations.
    pub op: usize,
    /// Its process.
    pub process: u64,
    /// The line of its invocation.
    pub line: usize,
    /// `ok`, `fail` or `info`.
    pub status: crate::history::Status,
    /// Its micro-operations as completed (reads filled in).
    pub value: String,
}

/// One edge of a cycle, with its reason in words.
#[derive(Clone, Debug, Serialize)]
pub struct CycleStep {
    /// From `T{n}`.
    pub from: String,
    /// To `T{n}`.
    pub to: String,
    /// `ww`, `wr`, `rw`, `process` or `realtime`.
    pub rel: &'static str,
    /// Why the edge exists.
    pub why: String,
}

/// An anomaly found, with the transactions that show it.
#[derive(Clone, Debug, Serialize)]
pub struct Anomaly {
    /// Its class: `G-single`, `G1a`, `lost-update`, ...
    pub name: String,
    /// The anomaly in words.
    pub explanation: String,
    /// For a cycle, its edges in order.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub cycle: Vec<CycleStep>,
    /// The transactions involved.
    pub txns: Vec<TxnRef>,
}

/// What the transactional checker found.
#[derive(Clone, Debug, Serialize)]
pub struct TxnReport {
    /// PASS, FAIL (the model forbids an anomaly found) or UNKNOWN.
    pub validity: Validity,
    /// The data type.
    pub kind: TxnKind,
    /// The model checked.
    pub consistency: Model,
    /// What rw-register inference assumed of each key (empty for list-append).
    pub assumed: Vec<Assumption>,
    /// Transactions, and how many committed.
    pub transactions: usize,
    /// Committed transactions.
    pub committed: usize,
    /// Every anomaly class found, with how many instances.
    pub counts: Vec<(String, usize)>,
    /// Examples of each (at most a few per class).
    pub anomalies: Vec<Anomaly>,
    /// The models the history is not, strongest first.
    pub not: Vec<Model>,
    /// The strongest models it may still be.
    pub possible: Vec<Model>,
    /// Why the verdict is UNKNOWN, or what was left unsearched.
    pub unknown_reasons: Vec<String>,
}

/// How many examples of one anomaly class a report keeps.
const EXAMPLES: usize = 4;

/// A raw finding: an anomaly class, its text, its transactions and, for cycles, the steps.
pub(crate) struct Finding {
    name: String,
    text: String,
    txns: Vec<u32>,
    cycle: Vec<graph::Step>,
}

impl Finding {
    /// A non-cycle anomaly over `txns`.
    pub(crate) fn txns(name: &str, text: String, txns: &[u32]) -> Self {
        Finding {
            name: name.to_string(),
            text,
            txns: txns.to_vec(),
            cycle: Vec::new(),
        }
    }
}

/// What inference produces: the graph, the findings, and what it could not judge.
pub(crate) struct Inference<'a> {
    pub(crate) graph: Graph,
    findings: Vec<Finding>,
    counts: Vec<(String, usize)>,
    unknown: Vec<String>,
    interner: &'a Interner,
    kind: TxnKind,
}

impl Inference<'_> {
    /// Records a finding (keeping a few examples of each class, counting all).
    pub(crate) fn found(&mut self, finding: Finding) {
        match self.counts.iter_mut().find(|(n, _)| *n == finding.name) {
            Some((_, count)) => *count += 1,
            None => self.counts.push((finding.name.clone(), 1)),
        }
        let kept = self
            .findings
            .iter()
            .filter(|f| f.name == finding.name)
            .count();
        if kept < EXAMPLES {
            self.findings.push(finding);
        }
    }

    /// Notes something that makes the verdict UNKNOWN unless a forbidden anomaly is found.
    pub(crate) fn unknown(&mut self, why: String) {
        if !self.unknown.contains(&why) {
            self.unknown.push(why);
        }
    }

    /// The text of an interned key or value.
    pub(crate) fn name(&self, id: Id) -> &str {
        self.interner.name(id)
    }

    /// A list as `[1 2 3]`; a long one as its first and last few elements.
    pub(crate) fn list(&self, list: &[Id]) -> String {
        const SHOWN: usize = 4;
        let names = |part: &[Id]| {
            part.iter()
                .map(|&v| self.name(v))
                .collect::<Vec<_>>()
                .join(" ")
        };
        if list.len() <= 3 * SHOWN {
            format!("[{}]", names(list))
        } else {
            format!(
                "[{} … {}] ({} elements)",
                names(&list[..SHOWN]),
                names(&list[list.len() - SHOWN..]),
                list.len()
            )
        }
    }
}

/// Checks a transactional history. An error names an operation that is not a transaction the
/// checker can read.
pub fn check(history: &History, options: &TxnOptions) -> Result<TxnReport, ModelError> {
    let started = Instant::now();
    let mut interner = Interner::default();
    let txns = history::transactions(history, &mut interner)?;
    let kind = options.kind.unwrap_or_else(|| infer_kind(&txns));
    let mut inference = Inference {
        graph: Graph::new(txns.len()),
        findings: Vec::new(),
        counts: Vec::new(),
        unknown: Vec::new(),
        interner: &interner,
        kind,
    };
    match kind {
        TxnKind::ListAppend => list_append::infer(&txns, &mut inference),
        TxnKind::RwRegister => rw_register::infer(&txns, &options.assume, &mut inference),
    }
    order_edges(&txns, &mut inference.graph);
    let deadline = options.timeout.map(|t| started + t);
    search::cycles(&mut inference, deadline);
    let assumed = match kind {
        TxnKind::RwRegister => options.assume.clone(),
        TxnKind::ListAppend => Vec::new(),
    };
    Ok(report(kind, options.consistency, assumed, &txns, inference))
}

/// list-append if any micro-operation appends or reads a list, else rw-register.
fn infer_kind(txns: &[Txn]) -> TxnKind {
    let list = txns.iter().flat_map(|t| &t.mops).any(|m| {
        matches!(
            m,
            Mop::Append { .. }
                | Mop::Read {
                    value: Some(Observed::List(_)),
                    ..
                }
        )
    });
    if list {
        TxnKind::ListAppend
    } else {
        TxnKind::RwRegister
    }
}

/// Process edges (each committed transaction to its process's next) and real-time edges (a
/// transaction to those invoked after it completed), the latter reduced to a frontier so that
/// their number stays linear: a transaction that completed before another one completed after
/// it is reached through that one.
fn order_edges(txns: &[Txn], graph: &mut Graph) {
    use crate::history::Status;
    let mut last_of: rustc_hash::FxHashMap<u64, u32> = Default::default();
    let mut by_call: Vec<u32> = (0..txns.len() as u32)
        .filter(|&t| txns[t as usize].status == Status::Ok)
        .collect();
    by_call.sort_by_key(|&t| (txns[t as usize].call, t));
    for &t in &by_call {
        if let Some(prev) = last_of.insert(txns[t as usize].process, t) {
            graph.add(prev, t, Rel::Process, None);
        }
    }
    // Events: (time, 0 = invoke / 1 = complete, txn); at equal times invocations first, as
    // intervals are closed.
    let mut events: Vec<(u64, u8, u32)> = Vec::new();
    for (t, txn) in txns.iter().enumerate() {
        if txn.status == Status::Fail {
            continue;
        }
        events.push((txn.call, 0, t as u32));
        if let (Some(ret), Status::Ok) = (txn.ret, txn.status) {
            events.push((ret, 1, t as u32));
        }
    }
    events.sort_unstable();
    // The frontier: transactions completed and not yet reached through a later completion,
    // each with the number of completions when it completed. A transaction completing removes
    // those that had completed before it was invoked.
    let mut frontier: Vec<(u64, u32)> = Vec::new();
    let mut completions = 0u64;
    let mut completed_at_invoke: Vec<u64> = vec![0; txns.len()];
    for (_, kind, t) in events {
        if kind == 0 {
            for &(_, p) in &frontier {
                graph.add(p, t, Rel::Realtime, None);
            }
            completed_at_invoke[t as usize] = completions;
        } else {
            let before = completed_at_invoke[t as usize];
            frontier.retain(|&(at, _)| at > before);
            completions += 1;
            frontier.push((completions, t));
        }
    }
}

fn report(
    kind: TxnKind,
    consistency: Model,
    assumed: Vec<Assumption>,
    txns: &[Txn],
    inference: Inference<'_>,
) -> TxnReport {
    let names: Vec<&str> = inference.counts.iter().map(|(n, _)| n.as_str()).collect();
    let not = models::ruled_out(&names);
    let possible = models::strongest_possible(&names);
    let validity = if not.contains(&consistency) {
        Validity::Fail
    } else if !inference.unknown.is_empty() {
        Validity::Unknown
    } else {
        Validity::Pass
    };
    let anomalies = inference
        .findings
        .iter()
        .map(|f| search::describe(f, txns, &inference))
        .collect();
    TxnReport {
        validity,
        kind,
        consistency,
        assumed,
        transactions: txns.len(),
        committed: txns
            .iter()
            .filter(|t| t.status == crate::history::Status::Ok)
            .count(),
        counts: inference.counts,
        anomalies,
        not,
        possible,
        unknown_reasons: inference.unknown,
    }
}

impl TxnReport {
    /// The report in the common verdict shape.
    pub fn verdict(&self) -> Verdict {
        let found: Vec<String> = self
            .counts
            .iter()
            .map(|(n, c)| {
                if *c > 1 {
                    format!("{n} ×{c}")
                } else {
                    n.clone()
                }
            })
            .collect();
        let summary = match self.validity {
            Validity::Pass if found.is_empty() => format!(
                "{}: {} transactions ({} committed), no anomaly",
                self.consistency, self.transactions, self.committed
            ),
            Validity::Pass => format!(
                "{}: allows what was found ({}); {} transactions",
                self.consistency,
                found.join(", "),
                self.transactions
            ),
            Validity::Fail => format!("not {}: {}", self.consistency, found.join(", ")),
            Validity::Unknown => format!("unknown: {}", self.unknown_reasons.join("; ")),
        };
        Verdict {
            valid: self.validity,
            checker: "transactional".into(),
            summary,
            explanation: if self.validity == Validity::Pass && self.anomalies.is_empty() {
                String::new()
            } else {
                self.explanation()
            },
            details: serde_json::to_value(self).unwrap_or(Value::Null),
        }
    }

    /// The anomalies, the models ruled out, and each example in words.
    pub fn explanation(&self) -> String {
        let names = |ms: &[Model]| ms.iter().map(|m| m.name()).collect::<Vec<_>>().join(", ");
        let mut text = format!(
            "  {} history, {} transactions ({} committed), checked for {}\n",
            self.kind.name(),
            self.transactions,
            self.committed,
            self.consistency
        );
        if !self.assumed.is_empty() {
            let assumed: Vec<&str> = self.assumed.iter().map(|a| a.name()).collect();
            text.push_str(&format!("  assuming: {}\n", assumed.join(", ")));
        }
        if !self.not.is_empty() {
            text.push_str(&format!("  not: {}\n", names(&self.not)));
        }
        if !self.possible.is_empty() && !self.counts.is_empty() {
            text.push_str(&format!("  may still be: {}\n", names(&self.possible)));
        }
        for reason in &self.unknown_reasons {
            text.push_str(&format!("  unknown: {reason}\n"));
        }
        for anomaly in &self.anomalies {
            text.push_str(&format!("  {}: {}\n", anomaly.name, anomaly.explanation));
            for step in &anomaly.cycle {
                text.push_str(&format!(
                    "    {} -{}-> {}: {}\n",
                    step.from, step.rel, step.to, step.why
                ));
            }
            for t in &anomaly.txns {
                text.push_str(&format!(
                    "    {} = process {}, op {}, line {}, {}: {}\n",
                    t.name,
                    t.process,
                    t.op,
                    t.line,
                    match t.status {
                        crate::history::Status::Ok => "ok",
                        crate::history::Status::Fail | crate::history::Status::Mismatch => "fail",
                        crate::history::Status::Info => "info",
                    },
                    t.value
                ));
            }
        }
        text
    }
}
