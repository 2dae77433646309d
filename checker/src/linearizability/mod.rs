//! The linearizability checker (DESIGN §3.1): is there a total order of the operations, each
//! placed between its call and its return, that the model accepts?
//!
//! [`check`] prepares the history (drops what cannot matter, splits it by key, compiles each
//! key's operations for the model), runs the WGL [`search`] on every key in parallel on all
//! cores, cancels the rest at the first FAIL, and explains each failure. Which operations take
//! part:
//!
//! - `fail` operations did not happen and are dropped, except a `cas` mismatch under strict
//!   semantics, which is kept as the observation "the value was not the expected one";
//! - `info` reads are dropped: they had no effect and their result is unknown;
//! - other `info` operations return at infinity: they may take effect any time after their call;
//!   on registers, under strict semantics, those whose value was observed return with their
//!   first observer and those nothing could have observed are dropped ([`reduce`]).

mod bitset;
mod entries;
mod explain;
mod reduce;
mod schedule;
mod search;
mod segments;
mod stale;
mod zones;

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use rayon::prelude::*;
use serde::Serialize;
use serde_json::Value;

use crate::history::{History, Operation, Status};
use crate::model::{Model, ModelError, ModelKind, Queue, Register, Semantics, Set, TextRegister};
use crate::verdict::{Validity, Verdict};
use search::{Budget, Found, Search, Stop};

pub use explain::PREFIX_SHOWN;

/// How many distinct states an explanation lists before the failing operation.
const MAX_STATES: usize = 8;

/// What to check against, and the limits of the search.
#[derive(Clone, Debug)]
pub struct Options {
    /// The model; `None` infers it from the operations ([`ModelKind::infer`]).
    pub model: Option<ModelKind>,
    /// Every object's value before the first operation.
    pub initial: Value,
    /// How reads of null and failed operations are read.
    pub semantics: Semantics,
    /// Give UNKNOWN after this long.
    pub timeout: Option<Duration>,
    /// Give UNKNOWN when the search caches of one check hold more than this many bytes.
    pub max_cache_bytes: u64,
    /// Whether to bound or drop `info` register writes before the search ([`reduce`]) and
    /// decide what can be decided without one (stale reads, read/write zones); off only to
    /// measure what they gain, or to hold them to the plain search.
    pub reduce_info: bool,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            model: None,
            initial: Value::Null,
            semantics: Semantics::Strict,
            timeout: None,
            max_cache_bytes: 2 << 30,
            reduce_info: true,
        }
    }
}

/// The outcome of a linearizability check.
#[derive(Clone, Debug, Serialize)]
pub struct LinearizabilityReport {
    /// PASS, FAIL or UNKNOWN.
    pub validity: Validity,
    /// The model the history was checked against.
    pub model: ModelKind,
    /// Whether the model was inferred from the operations rather than given.
    pub model_inferred: bool,
    /// The semantics used.
    pub semantics: Semantics,
    /// Operations that took part (after dropping `fail`s, `info` reads and the `info` writes
    /// nothing could have observed).
    pub operations: usize,
    /// `info` writes dropped because no operation could have observed them.
    pub info_dropped: usize,
    /// `info` writes given a return: their first observer's.
    pub info_bounded: usize,
    /// Independent objects (keys) the history split into.
    pub keys: usize,
    /// One explanation per key found not linearizable.
    pub failures: Vec<KeyFailure>,
    /// Why the verdict is UNKNOWN, when it is.
    pub unknown_reasons: Vec<String>,
}

/// Why one key is not linearizable.
#[derive(Clone, Debug, Serialize)]
pub struct KeyFailure {
    /// The key (`None` for a single-object history).
    pub key: Option<String>,
    /// The operation that could not be linearized.
    pub op: Operation,
    /// The longest linearizable prefix the search found: operations in order, with the state
    /// after each.
    pub prefix: Vec<LinearizedOp>,
    /// When the history was searched in segments: the write every linearization of the
    /// operations before `prefix` ends with (they are left out of it), and its value.
    pub prefix_from: Option<LinearizedOp>,
    /// States the model could be in just before `op` had to take effect.
    pub states_before: Vec<String>,
    /// Whether `states_before` lists every such state (false when the list was capped or the
    /// search for them ran out of time).
    pub states_complete: bool,
    /// When the failure was proved without a search (a stale read): why, in words, naming the
    /// operations that prove it.
    pub proof: Option<String>,
}

/// One step of a linearization.
#[derive(Clone, Debug, Serialize)]
pub struct LinearizedOp {
    /// The operation.
    pub op: Operation,
    /// The model's state after it.
    pub state: String,
}

impl LinearizabilityReport {
    /// The report in the common verdict shape: the explanation a person reads, and the whole
    /// report as details.
    pub fn verdict(&self) -> Verdict {
        let summary = match self.validity {
            Validity::Pass => format!(
                "linearizable: {} operations on {} key(s), model {}",
                self.operations, self.keys, self.model
            ),
            Validity::Fail => {
                let f = &self.failures[0];
                format!(
                    "not linearizable: {}{} (line {}) cannot be placed",
                    f.key
                        .as_ref()
                        .map(|k| format!("on key {k:?}, "))
                        .unwrap_or_default(),
                    describe_op(&f.op),
                    f.op.line
                )
            }
            Validity::Unknown => format!("unknown: {}", self.unknown_reasons.join("; ")),
        };
        let explanation = match self.validity {
            Validity::Pass => String::new(),
            Validity::Fail | Validity::Unknown => explain::explain_report(self),
        };
        Verdict {
            valid: self.validity,
            checker: "linearizability".into(),
            summary,
            explanation,
            details: serde_json::to_value(self).unwrap_or(Value::Null),
        }
    }
}

/// Describes an operation in one line: `p3 cas [1,2] → mismatch`.
pub fn describe_op(op: &Operation) -> String {
    let input = if op.input.is_null() {
        String::new()
    } else {
        format!(" {}", op.input)
    };
    let outcome = match op.status {
        Status::Ok if op.is_read() || op.f == "dequeue" => format!(" → {}", op.output),
        Status::Ok => " → ok".to_string(),
        Status::Mismatch => " → mismatch".to_string(),
        Status::Fail => " → fail".to_string(),
        Status::Info => " → info".to_string(),
    };
    let text = format!("p{} {}{input}{outcome}", op.process, op.f);
    crate::model::shorten(text, 160)
}

/// Whether an operation takes part in the check (see the module documentation).
fn takes_part(op: &Operation, semantics: Semantics) -> bool {
    match op.status {
        Status::Ok => true,
        Status::Fail => false,
        Status::Mismatch => semantics == Semantics::Strict,
        Status::Info => !op.is_read(),
    }
}

/// One key's operations, compiled for its model.
enum Compiled {
    Register(Register, Vec<<Register as Model>::Op>),
    Text(TextRegister, Vec<<TextRegister as Model>::Op>),
    Set(Set, Vec<<Set as Model>::Op>),
    Queue(Queue, Vec<<Queue as Model>::Op>),
}

/// One independent object of the history.
struct Part<'h> {
    key: Option<String>,
    ops: Vec<&'h Operation>,
    /// Each operation's (call, return); `None` returns at infinity.
    intervals: Vec<(u64, Option<u64>)>,
    /// Per operation: whether it writes a value nothing observes ([`reduce`]); empty: none.
    blind: Vec<bool>,
    /// Per operation: the interchangeable one it must be linearized after; empty: none.
    waits_for: Vec<Option<usize>>,
    /// The independent segments it is searched in, in order; empty: the whole part at once.
    segments: Vec<segments::Segment>,
}

/// What checking one part gave.
enum PartOutcome {
    Pass,
    Fail(Box<KeyFailure>),
    /// No verdict: why, and how far the search got (the longest linearizable prefix it built).
    Stopped(Stop, usize),
}

/// Checks `history` for linearizability.
///
/// Errors when an operation does not fit the model (an unknown operation name, a malformed
/// `cas` input); the error names the operation's line.
pub fn check(history: &History, options: &Options) -> Result<LinearizabilityReport, ModelError> {
    let started = Instant::now();
    let kind = options
        .model
        .unwrap_or_else(|| ModelKind::infer(&history.ops));
    let mut parts = split_by_key(history, options.semantics);
    let (info_dropped, info_bounded) = reduce_parts(&mut parts, kind, options);
    let operations = parts.iter().map(|p| p.ops.len()).sum();
    let compiled: Vec<Compiled> = parts
        .par_iter()
        .map(|part| compile(kind, part, options))
        .collect::<Result<_, _>>()?;
    let budget = Budget {
        deadline: options.timeout.map(|t| started + t),
        cancel: AtomicBool::new(false),
        cache_bytes: AtomicU64::new(0),
        max_cache_bytes: options.max_cache_bytes,
    };
    let outcomes = schedule::run(tasks(&parts, &compiled, kind, options, &budget));
    let (failures, unknown_reasons) = judge(&parts, outcomes, options);
    let validity = if !failures.is_empty() {
        Validity::Fail
    } else if !unknown_reasons.is_empty() {
        Validity::Unknown
    } else {
        Validity::Pass
    };
    Ok(LinearizabilityReport {
        validity,
        model: kind,
        model_inferred: options.model.is_none(),
        semantics: options.semantics,
        operations,
        info_dropped,
        info_bounded,
        keys: parts.len(),
        failures,
        unknown_reasons,
    })
}

/// Whether the register shortcuts apply — the `info` reductions, segments, the stale-read
/// proof and the zones: strict semantics (a null read observes null), a register model, and
/// not turned off.
fn register_shortcuts(kind: ModelKind, options: &Options) -> bool {
    options.reduce_info
        && options.semantics == Semantics::Strict
        && matches!(
            kind,
            ModelKind::Register | ModelKind::CasRegister | ModelKind::Kv
        )
}

/// Applies the register reductions to every part; (dropped, bounded) `info` operations.
fn reduce_parts(parts: &mut [Part<'_>], kind: ModelKind, options: &Options) -> (usize, usize) {
    if !register_shortcuts(kind, options) {
        return (0, 0);
    }
    parts
        .par_iter_mut()
        .map(|part| reduce_part(part, kind, options))
        .reduce(|| (0, 0), |a, b| (a.0 + b.0, a.1 + b.1))
}

/// Every part's task: decided without a search where it can be (a failure so decided still
/// searched, within bounds, for the usual explanation), searched otherwise.
fn tasks<'a>(
    parts: &'a [Part<'a>],
    compiled: &'a [Compiled],
    kind: ModelKind,
    options: &Options,
    budget: &'a Budget,
) -> Vec<(usize, Box<dyn Task + 'a>)> {
    let proofs: Vec<Option<PartOutcome>> = parts
        .par_iter()
        .map(|part| decide_without_search(part, kind, options))
        .collect();
    parts
        .iter()
        .zip(compiled)
        .zip(proofs)
        .enumerate()
        .map(|(i, ((part, compiled), proof))| {
            let task: Box<dyn Task + 'a> = match proof {
                Some(PartOutcome::Fail(failure)) => Box::new(Explained {
                    proof: Some(failure),
                    search: task(part, compiled, budget),
                    steps_left: EXPLAIN_STEPS,
                    budget,
                }),
                Some(outcome) => Box::new(Proved {
                    outcome: Some(outcome),
                }),
                None => task(part, compiled, budget),
            };
            (i, task)
        })
        .collect()
}

/// The parts' outcomes as the report has them: the failures (by key), and, when there is none,
/// why the verdict is unknown — the bound hit and how far the search got.
fn judge(
    parts: &[Part<'_>],
    outcomes: Vec<(usize, PartOutcome)>,
    options: &Options,
) -> (Vec<KeyFailure>, Vec<String>) {
    let mut failures = Vec::new();
    let mut stops: Vec<(Stop, usize)> = Vec::new();
    let mut furthest: Option<(usize, usize)> = None;
    for (i, outcome) in outcomes {
        match outcome {
            PartOutcome::Pass => {}
            PartOutcome::Fail(failure) => failures.push(*failure),
            PartOutcome::Stopped(stop, depth) => {
                stops.push((stop, i));
                // The undecided key whose search was furthest from done.
                let left = parts[i].ops.len().saturating_sub(depth);
                if furthest.is_none_or(|(j, d)| left > parts[j].ops.len().saturating_sub(d)) {
                    furthest = Some((i, depth));
                }
            }
        }
    }
    failures.sort_by(|a, b| a.key.cmp(&b.key));
    if !failures.is_empty() {
        return (failures, Vec::new());
    }
    let of_key = |i: usize, word: &str| {
        parts[i]
            .key
            .as_ref()
            .map(|k| format!(" {word} key {k:?}"))
            .unwrap_or_default()
    };
    let mut unknown_reasons = Vec::new();
    if stops.iter().any(|(s, _)| *s == Stop::Timeout) {
        unknown_reasons.push(format!(
            "the check timed out after {} with {} of {} key(s) undecided (raise --timeout)",
            humanize(options.timeout.unwrap_or_default()),
            stops.len(),
            parts.len()
        ));
    }
    if let Some((_, i)) = stops.iter().find(|(s, _)| *s == Stop::CacheFull) {
        unknown_reasons.push(format!(
            "the search cache passed its bound of {} MiB{} (raise --max-cache)",
            options.max_cache_bytes >> 20,
            of_key(*i, "on")
        ));
    }
    if let Some((i, depth)) = furthest {
        unknown_reasons.push(format!(
            "the search had linearized at most {depth} of the {} operations{}",
            parts[i].ops.len(),
            of_key(i, "of")
        ));
    }
    (failures, unknown_reasons)
}

fn humanize(d: Duration) -> String {
    if d.subsec_millis() == 0 {
        format!("{}s", d.as_secs())
    } else {
        format!("{}ms", d.as_millis())
    }
}

/// Splits the operations that take part by key, keeping invocation order within each key.
fn split_by_key(history: &History, semantics: Semantics) -> Vec<Part<'_>> {
    let mut index: HashMap<Option<&str>, usize> = HashMap::new();
    let mut parts: Vec<Part<'_>> = Vec::new();
    for op in history.ops.iter().filter(|op| takes_part(op, semantics)) {
        let i = *index.entry(op.key.as_deref()).or_insert_with(|| {
            parts.push(Part {
                key: op.key.clone(),
                ops: Vec::new(),
                intervals: Vec::new(),
                blind: Vec::new(),
                waits_for: Vec::new(),
                segments: Vec::new(),
            });
            parts.len() - 1
        });
        parts[i].ops.push(op);
        parts[i].intervals.push((op.call, op.ret));
    }
    parts
}

/// Applies the register reductions to one part; (dropped, bounded) `info` operations. A part
/// with an operation the model lacks is left whole, so that compiling it names the operation.
fn reduce_part(part: &mut Part<'_>, kind: ModelKind, options: &Options) -> (usize, usize) {
    let known = |op: &&Operation| kind.operations().contains(&op.f.as_str());
    if !reduce::applies(&part.ops) || !part.ops.iter().all(known) {
        return (0, 0);
    }
    let reduced = reduce::reduce(&part.ops, &options.initial);
    part.ops = reduced.ops;
    part.intervals = reduced.intervals;
    part.blind = reduced.blind;
    part.waits_for = reduced.waits_for;
    part.segments = segments::cut(&part.ops, &part.intervals, &part.waits_for);
    (reduced.dropped, reduced.bounded)
}

fn compile(kind: ModelKind, part: &Part<'_>, options: &Options) -> Result<Compiled, ModelError> {
    let (initial, semantics, ops) = (&options.initial, options.semantics, &part.ops);
    Ok(match kind {
        ModelKind::Kv if ops.iter().any(|op| op.f == "append") => {
            let (m, c) = TextRegister::build(ops, initial, semantics)?;
            Compiled::Text(m, c)
        }
        ModelKind::Register | ModelKind::CasRegister | ModelKind::Kv => {
            let (m, c) = Register::build(kind, ops, initial, semantics, &part.blind)?;
            Compiled::Register(m, c)
        }
        ModelKind::Set => {
            let (m, c) = Set::build(ops, initial, semantics)?;
            Compiled::Set(m, c)
        }
        ModelKind::Queue => {
            let (m, c) = Queue::build(ops, initial)?;
            Compiled::Queue(m, c)
        }
    })
}

/// A part's search, as the scheduler sees it.
trait Task: Send {
    /// Runs at most `slice` search steps; `Some` once the part has an outcome.
    fn advance(&mut self, slice: u64) -> Option<PartOutcome>;
}

fn task<'a>(part: &'a Part<'a>, compiled: &'a Compiled, budget: &'a Budget) -> Box<dyn Task + 'a> {
    match compiled {
        Compiled::Register(m, ops) => Box::new(PartTask::new(part, m, ops, budget)),
        Compiled::Text(m, ops) => Box::new(PartTask::new(part, m, ops, budget)),
        Compiled::Set(m, ops) => Box::new(PartTask::new(part, m, ops, budget)),
        Compiled::Queue(m, ops) => Box::new(PartTask::new(part, m, ops, budget)),
    }
}

/// A part proved linearizable without a search.
struct Proved {
    outcome: Option<PartOutcome>,
}

impl Task for Proved {
    fn advance(&mut self, _slice: u64) -> Option<PartOutcome> {
        self.outcome.take()
    }
}

/// How many search steps a part proved not linearizable may spend on the usual explanation (the
/// longest linearizable prefix, the states before the failing operation) before the proof
/// alone is reported.
const EXPLAIN_STEPS: u64 = 1 << 22;

/// A part proved not linearizable without a search: the search runs, within
/// [`EXPLAIN_STEPS`], only to explain it the usual way too.
struct Explained<'a> {
    proof: Option<Box<KeyFailure>>,
    search: Box<dyn Task + 'a>,
    steps_left: u64,
    budget: &'a Budget,
}

impl Task for Explained<'_> {
    fn advance(&mut self, slice: u64) -> Option<PartOutcome> {
        let steps = slice.min(self.steps_left);
        self.steps_left -= steps;
        let searched = self.search.advance(steps);
        match searched {
            None if self.steps_left > 0 => None,
            Some(PartOutcome::Fail(mut failure)) => {
                failure.proof = self.proof.take().and_then(|p| p.proof);
                Some(PartOutcome::Fail(failure))
            }
            // Out of steps, stopped, or (never, if the proof is right) a pass: the proof stands,
            // and the other keys need not be searched on.
            _ => {
                self.budget.cancel.store(true, Ordering::Relaxed);
                self.proof.take().map(PartOutcome::Fail)
            }
        }
    }
}

/// Decides a register part without a search when it can: a stale read proved, or the zones
/// of a read/write register with unique values (strict semantics only).
fn decide_without_search(
    part: &Part<'_>,
    kind: ModelKind,
    options: &Options,
) -> Option<PartOutcome> {
    if !register_shortcuts(kind, options) || !reduce::applies(&part.ops) {
        return None;
    }
    let (ops, key) = (&part.ops, part.key.clone());
    if let Some(stale) = stale::find(ops, &part.intervals, &options.initial) {
        let failure = explain::stale_failure(key, ops, stale);
        return Some(PartOutcome::Fail(Box::new(failure)));
    }
    match zones::decide(ops, &part.intervals, &options.initial)? {
        zones::Decision::Linearizable => Some(PartOutcome::Pass),
        zones::Decision::NotLinearizable { op, why } => {
            Some(PartOutcome::Fail(Box::new(KeyFailure {
                key,
                op: ops[op].clone(),
                prefix: Vec::new(),
                prefix_from: None,
                states_before: Vec::new(),
                states_complete: false,
                proof: Some(format!("    {why}")),
            })))
        }
    }
}

/// One part's search — segment after segment, when it was cut — and what it needs to explain
/// a failure.
struct PartTask<'a, M: Model> {
    part: &'a Part<'a>,
    model: &'a M,
    ops: &'a [M::Op],
    budget: &'a Budget,
    /// The segment being searched (always 0 for a part not cut).
    segment: usize,
    search: Search<'a, M>,
}

impl<'a, M: Model> PartTask<'a, M> {
    fn new(part: &'a Part<'a>, model: &'a M, ops: &'a [M::Op], budget: &'a Budget) -> Self {
        PartTask {
            part,
            model,
            ops,
            budget,
            segment: 0,
            search: Self::search_of(part, model, ops, budget, 0),
        }
    }

    /// The state a segment starts from: the initial one, or the value its forced write wrote.
    fn start_state(model: &M, ops: &[M::Op], start: Option<usize>) -> M::State {
        let init = model.init();
        match start {
            // A write steps from any state to its value.
            Some(w) => model.step(&init, &ops[w]).unwrap_or(init),
            None => init,
        }
    }

    /// The search of segment `s` (the whole part, for a part not cut).
    fn search_of(
        part: &'a Part<'a>,
        model: &'a M,
        ops: &'a [M::Op],
        budget: &'a Budget,
        s: usize,
    ) -> Search<'a, M> {
        match part.segments.get(s) {
            None => Search::new(model, ops, &part.intervals, budget).waiting(&part.waits_for),
            Some(seg) => Search::new(
                model,
                &ops[seg.lo..seg.hi],
                &part.intervals[seg.lo..seg.hi],
                budget,
            )
            .waiting(&seg.waits_for)
            .starting_at(Self::start_state(model, ops, seg.start)),
        }
    }

    /// Where the current segment starts, and the write that forced its state.
    fn offset(&self) -> (usize, Option<usize>) {
        self.part
            .segments
            .get(self.segment)
            .map_or((0, None), |seg| (seg.lo, seg.start))
    }

    /// Explains a failure in the current segment (`prefix` and `failing` are its positions):
    /// the prefix with the state after each operation, and the states the model could be in
    /// before the failing one.
    fn explain(&self, prefix: Vec<usize>, failing: usize) -> KeyFailure {
        let (model, ops, part) = (self.model, self.ops, self.part);
        let (lo, start) = self.offset();
        let mut state = Self::start_state(model, ops, start);
        let prefix = prefix
            .into_iter()
            .map(|i| {
                // The search built this prefix by legal steps from the segment's state.
                state = model
                    .step(&state, &ops[lo + i])
                    .expect("a prefix the search linearized replays");
                LinearizedOp {
                    op: part.ops[lo + i].clone(),
                    state: model.describe(&state),
                }
            })
            .collect();
        // A second search that watches the failing operation's return collects the states
        // the model could be in there. It ignores cancellation (this part's own FAIL set
        // it), but not the deadline or the cache bound.
        let mut watch = Self::search_of(part, model, ops, self.budget, self.segment)
            .states_at(failing, MAX_STATES + 1);
        let finished = matches!(watch.run(u64::MAX), Some(Found::NotLinearizable { .. }));
        let states = watch.focus_states();
        KeyFailure {
            key: part.key.clone(),
            op: part.ops[lo + failing].clone(),
            prefix,
            prefix_from: start.map(|w| LinearizedOp {
                op: part.ops[w].clone(),
                state: model.describe(&Self::start_state(model, ops, Some(w))),
            }),
            states_before: states
                .iter()
                .take(MAX_STATES)
                .map(|s| model.describe(s))
                .collect(),
            states_complete: finished && states.len() <= MAX_STATES,
            proof: None,
        }
    }
}

impl<M: Model> Task for PartTask<'_, M>
where
    M::State: Sync,
{
    fn advance(&mut self, slice: u64) -> Option<PartOutcome> {
        Some(match self.search.run(slice)? {
            Found::Linearizable if self.segment + 1 < self.part.segments.len() => {
                self.segment += 1;
                let (part, model, ops, budget) = (self.part, self.model, self.ops, self.budget);
                self.search = Self::search_of(part, model, ops, budget, self.segment);
                return None;
            }
            Found::Linearizable => PartOutcome::Pass,
            Found::Stopped(stop) => {
                PartOutcome::Stopped(stop, self.offset().0 + self.search.progress())
            }
            Found::NotLinearizable { prefix, failing } => {
                self.budget.cancel.store(true, Ordering::Relaxed);
                PartOutcome::Fail(Box::new(self.explain(prefix, failing)))
            }
        })
    }
}
