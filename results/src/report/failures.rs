//! What a FAIL looks like in the report: for linearizability, the failing key's operations as
//! bars per process over real time, the longest linearizable prefix with each operation's
//! linearization point, and the operation that cannot be placed; for transactions, the cycle
//! as a small graph of transactions with labelled edges; for the other checkers, their
//! explanation.

use std::collections::hash_map::Entry;
use std::collections::{HashMap, VecDeque};

use faultline_checker::raft::{NodeNotes, Note};
use faultline_checker::{History, Operation, Status, Verdict};
use serde::Serialize;
use serde_json::Value;

use super::scale::{Frame, Tick, TimeAxis, r1};

/// Operations drawn around a failing one, at most.
const WINDOW_OPS: usize = 300;
/// Prefix operations whose span the window covers.
const PREFIX_SHOWN: usize = 8;
/// A process lane's height.
const LANE: f64 = 22.0;

/// One FAIL, drawn.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct FailureView {
    /// The checker.
    pub checker: String,
    /// Its one line.
    pub summary: String,
    /// Its explanation, as text.
    pub explanation: String,
    /// Linearizability: the failing key's timeline.
    pub timeline: Option<Timeline>,
    /// Transactions: the first cycle found.
    pub cycle: Option<CycleGraph>,
    /// Causal consistency and session guarantees: the first violating pattern.
    pub pattern: Option<PatternView>,
    /// Saga: the first order with its services' effects, and its client's attempts.
    pub order: Option<OrderView>,
    /// Raft safety: terms and leaders per node, the conflicts marked.
    pub raft: Option<RaftView>,
}

/// A saga order's client attempts over time and each service's effects for it.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct OrderView {
    /// The order.
    pub order: String,
    /// What is wrong with it.
    pub kind: String,
    /// In words.
    pub detail: String,
    /// The drawing's frame (the client's attempts).
    pub frame: Frame,
    /// Time ticks.
    pub x_ticks: Vec<Tick>,
    /// One per client process that placed it.
    pub lanes: Vec<Lane>,
    /// One per attempt.
    pub bars: Vec<Bar>,
    /// Per service: (service, times its step was applied, times it was undone).
    pub services: Vec<(String, u64, u64)>,
}

/// Terms and leaders per node, and the entries in conflict.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct RaftView {
    /// The drawing's frame; x is the term.
    pub frame: Frame,
    /// Term ticks.
    pub x_ticks: Vec<Tick>,
    /// One per node.
    pub lanes: Vec<Lane>,
    /// A cell per term a node led; `conflict` when another node led it too.
    pub led: Vec<TermCell>,
    /// A mark per applied entry in conflict, at its term on its node's lane.
    pub marks: Vec<TermCell>,
}

/// One term on one node's lane.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct TermCell {
    /// Its left edge.
    pub x: f64,
    /// Its width.
    pub w: f64,
    /// Its lane's top.
    pub y: f64,
    /// Whether it is part of a violation.
    pub conflict: bool,
    /// For hover.
    pub title: String,
}

/// An edge between two operations of a pattern: session order or reads-from.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct OpEdge {
    /// From (the source bar's end).
    pub x1: f64,
    /// From.
    pub y1: f64,
    /// To (the target bar's start).
    pub x2: f64,
    /// To.
    pub y2: f64,
    /// `so` (session order) or `rf` (reads from).
    pub rel: &'static str,
}

/// The operations of a causal or session-guarantee violation, with the edges among them.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct PatternView {
    /// The pattern (`WriteCORead`, `read-your-writes`, ...).
    pub pattern: String,
    /// It told with the operations.
    pub explanation: String,
    /// The drawing's frame.
    pub frame: Frame,
    /// Time ticks.
    pub x_ticks: Vec<Tick>,
    /// One per process.
    pub lanes: Vec<Lane>,
    /// One per operation of the pattern.
    pub bars: Vec<Bar>,
    /// Session-order and reads-from edges among them.
    pub edges: Vec<OpEdge>,
}

/// A process's lane.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Lane {
    /// Its middle.
    pub y: f64,
    /// `p3`.
    pub label: String,
}

/// One operation's bar.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Bar {
    /// From its invocation…
    pub x: f64,
    /// …to its completion (the window's end for an unfinished one).
    pub w: f64,
    /// Its lane's top.
    pub y: f64,
    /// `ok`, `fail` or `info`.
    pub status: &'static str,
    /// `prefix` (in the longest linearizable prefix), `failing`, or `other`.
    pub role: &'static str,
    /// Its linearization point, for a prefix operation.
    pub point: Option<f64>,
    /// For hover: the operation, and the model's state before and after it.
    pub title: String,
}

/// The failing key's operations over real time.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Timeline {
    /// The key.
    pub key: String,
    /// The drawing's frame.
    pub frame: Frame,
    /// Time ticks.
    pub x_ticks: Vec<Tick>,
    /// One per process.
    pub lanes: Vec<Lane>,
    /// One per operation in the window.
    pub bars: Vec<Bar>,
    /// The operation that cannot be placed, in words.
    pub failing: String,
    /// The states the model could be in just before it.
    pub states_before: Vec<String>,
    /// A proof without search (a stale read), when there is one.
    pub proof: Option<String>,
}

/// A transaction in a cycle.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct TxnNode {
    /// Its centre.
    pub x: f64,
    /// Its centre.
    pub y: f64,
    /// `T3`.
    pub name: String,
    /// Its micro-operations.
    pub title: String,
}

/// An edge of a cycle.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct TxnEdge {
    /// From (at the edge of the source's circle).
    pub x1: f64,
    /// From.
    pub y1: f64,
    /// To (at the edge of the target's circle).
    pub x2: f64,
    /// To.
    pub y2: f64,
    /// Where its label goes.
    pub lx: f64,
    /// Where its label goes.
    pub ly: f64,
    /// `ww`, `wr`, `rw`, `process`, `realtime`.
    pub rel: String,
    /// Why it exists.
    pub why: String,
}

/// A transactional anomaly's cycle.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct CycleGraph {
    /// Its class (`G-single`, ...).
    pub anomaly: String,
    /// In words.
    pub explanation: String,
    /// The transactions, on a circle.
    pub nodes: Vec<TxnNode>,
    /// The edges, in cycle order.
    pub edges: Vec<TxnEdge>,
}

/// The view of a failing `verdict` over `history` (and a Raft cluster's `notes`), drawn
/// `width` wide.
pub fn view(
    verdict: &Verdict,
    history: &History,
    notes: Option<&[NodeNotes]>,
    width: f64,
) -> FailureView {
    let details = &verdict.details;
    FailureView {
        checker: verdict.checker.clone(),
        summary: verdict.summary.clone(),
        explanation: verdict.explanation.clone(),
        timeline: (verdict.checker == "linearizability")
            .then(|| {
                details["failures"]
                    .get(0)
                    .map(|f| timeline(f, history, width))
            })
            .flatten(),
        cycle: (verdict.checker == "transactional")
            .then(|| details["anomalies"].as_array()?.iter().find_map(cycle))
            .flatten(),
        pattern: (verdict.checker.starts_with("causal")
            || details["violations"][0]["pattern"].is_string())
        .then(|| {
            details["violations"]
                .get(0)
                .map(|v| pattern(v, history, width))
        })
        .flatten(),
        order: (verdict.checker == "saga")
            .then(|| order_view(details, history, width))
            .flatten(),
        raft: (verdict.checker == faultline_checker::raft::CHECKER)
            .then_some(notes)
            .flatten()
            .map(|notes| raft_view(details, notes, width)),
    }
}

/// The processes of `ops`, in order, and where each one's lane starts in `frame`.
fn lanes_of(ops: &[&Operation], frame_top: f64) -> (Vec<u64>, impl Fn(u64) -> f64) {
    let mut processes: Vec<u64> = ops.iter().map(|o| o.process).collect();
    processes.sort_unstable();
    processes.dedup();
    let order = processes.clone();
    let top = move |p: u64| {
        let i = order.iter().position(|&q| q == p).unwrap_or(0);
        r1(frame_top + LANE * i as f64)
    };
    (processes, top)
}

/// Whether `op` writes (the causal workload's writes).
fn writes(op: &Operation) -> bool {
    op.f.contains("write") || op.f == "put"
}

/// A history's session-order and reads-from steps, to find causal paths along.
struct CausalSteps {
    /// Each operation's next one in its process.
    next_in_session: HashMap<usize, usize>,
    /// Each write's readers.
    readers: HashMap<usize, Vec<usize>>,
}

impl CausalSteps {
    fn of(history: &History) -> Self {
        let written: HashMap<(Option<&String>, String), usize> = (history.ops.iter().enumerate())
            .filter(|(_, o)| writes(o) && o.status == Status::Ok)
            .map(|(i, o)| ((o.key.as_ref(), o.input.to_string()), i))
            .collect();
        let mut next_in_session = HashMap::new();
        let mut last: HashMap<u64, usize> = HashMap::new();
        for (i, o) in history.ops.iter().enumerate() {
            if let Some(prev) = last.insert(o.process, i) {
                next_in_session.insert(prev, i);
            }
        }
        let mut readers: HashMap<usize, Vec<usize>> = HashMap::new();
        for (i, o) in history.ops.iter().enumerate() {
            if writes(o) || o.status != Status::Ok {
                continue;
            }
            if let Some(&w) = written.get(&(o.key.as_ref(), o.output.to_string())) {
                readers.entry(w).or_default().push(i);
            }
        }
        CausalSteps {
            next_in_session,
            readers,
        }
    }

    /// The operations on a shortest path from `from` to `to` (history positions), both
    /// included; empty if there is none within a bound.
    fn path(&self, from: usize, to: usize) -> Vec<usize> {
        let mut came_from: HashMap<usize, usize> = HashMap::from([(from, from)]);
        let mut queue = VecDeque::from([from]);
        while let Some(at) = queue.pop_front() {
            if at == to || came_from.len() > 100_000 {
                break;
            }
            let next_in_session = self.next_in_session.get(&at).into_iter();
            for &next in next_in_session.chain(self.readers.get(&at).into_iter().flatten()) {
                if let Entry::Vacant(e) = came_from.entry(next) {
                    e.insert(at);
                    queue.push_back(next);
                }
            }
        }
        if !came_from.contains_key(&to) {
            return Vec::new();
        }
        let mut path = vec![to];
        let mut at = to;
        while let Some(&prev) = came_from.get(&at).filter(|&&p| p != at) {
            path.push(prev);
            at = prev;
        }
        path
    }
}

/// The edges among `ops` (in time order): reads-from (`rf`) from a write to a read of its
/// value, and session order (`so`) to the next operation of the same process.
fn related<'a>(ops: &[&'a Operation]) -> Vec<(&'a Operation, &'a Operation, &'static str)> {
    let mut edges = Vec::new();
    for (i, &a) in ops.iter().enumerate() {
        let later = &ops[i + 1..];
        let next_of_process = later.iter().find(|b| b.process == a.process).map(|b| b.id);
        for &b in later {
            let rf = writes(a)
                && !writes(b)
                && a.key == b.key
                && b.output == a.input
                && !a.input.is_null();
            if rf {
                edges.push((a, b, "rf"));
            } else if Some(b.id) == next_of_process {
                edges.push((a, b, "so"));
            }
        }
    }
    edges
}

/// The positions of a violation's operations and of those on the causal paths between them.
fn members(violation: &Value, history: &History) -> Vec<usize> {
    let named: Vec<usize> = (violation["ops"].as_array().into_iter().flatten())
        .filter_map(|i| i.as_u64().map(|i| i as usize))
        .filter(|&i| i < history.ops.len())
        .collect();
    let steps = CausalSteps::of(history);
    let mut members = named.clone();
    for &a in &named {
        for &b in &named {
            if a != b && history.ops[a].call < history.ops[b].call {
                members.extend(steps.path(a, b));
            }
        }
    }
    members.sort_unstable();
    members.dedup();
    members
}

/// The operations of a causal violation (`violation`: a `Violation` as JSON, its `ops`
/// positions in the history), the causal paths between them, and their session-order and
/// reads-from edges.
fn pattern(violation: &Value, history: &History, width: f64) -> PatternView {
    let mut ops: Vec<&Operation> = (members(violation, history).into_iter())
        .map(|i| &history.ops[i])
        .collect();
    ops.sort_by_key(|o| (o.call, o.id));
    let start = ops.iter().map(|o| o.call).min().unwrap_or(0);
    let end = ops
        .iter()
        .map(|o| o.ret.unwrap_or(o.call))
        .max()
        .unwrap_or(start)
        .max(start + 1);
    let pad = (end - start) / 20 + 1;
    let (processes, lane_top) = lanes_of(&ops, 10.0);
    let frame = Frame::new(width, 40.0 + LANE * processes.len() as f64);
    let axis = TimeAxis::new(frame, start.saturating_sub(pad), end + pad);
    let span = |o: &Operation| {
        (
            axis.x(o.call),
            o.ret
                .map_or(frame.right, |r| axis.x(r))
                .max(axis.x(o.call) + 2.0),
        )
    };
    let bars = (ops.iter())
        .map(|op| {
            let (x, to) = span(op);
            Bar {
                x,
                w: r1(to - x),
                y: lane_top(op.process),
                status: status_name(op.status),
                role: "pattern",
                point: None,
                title: describe(op),
            }
        })
        .collect();
    let edges = (related(&ops).into_iter())
        .map(|(a, b, rel)| {
            let ((_, x1), (x2, _)) = (span(a), span(b));
            let mid = LANE / 2.0 + 3.0;
            let (y1, y2) = (r1(lane_top(a.process) + mid), r1(lane_top(b.process) + mid));
            OpEdge {
                x1,
                y1,
                x2,
                y2,
                rel,
            }
        })
        .collect();
    PatternView {
        pattern: violation["pattern"].as_str().unwrap_or("").to_string(),
        explanation: violation["explanation"].as_str().unwrap_or("").to_string(),
        frame,
        x_ticks: axis.ticks(),
        lanes: (processes.iter())
            .map(|&p| Lane {
                y: r1(lane_top(p) + LANE / 2.0),
                label: format!("p{p}"),
            })
            .collect(),
        bars,
        edges,
    }
}

fn status_name(status: Status) -> &'static str {
    match status {
        Status::Ok | Status::Mismatch => "ok",
        Status::Fail => "fail",
        Status::Info => "info",
    }
}

/// `p1 read → null (line 4, ok)`: what a person needs to find the operation.
fn describe(op: &Operation) -> String {
    // A read's result is what matters (null included); a write that echoes its input is not.
    let answered = op.status == Status::Ok && (op.input.is_null() || op.output != op.input);
    let result = if answered {
        format!(" → {}", op.output)
    } else {
        String::new()
    };
    let input = if op.input.is_null() {
        String::new()
    } else {
        format!(" {}", op.input)
    };
    let status = status_name(op.status);
    format!(
        "p{} {}{input}{result} (line {}, {status})",
        op.process, op.f, op.line
    )
}

/// The timeline of one linearizability failure (`failure`: a `KeyFailure` as JSON).
fn timeline(failure: &Value, history: &History, width: f64) -> Timeline {
    let key = failure["key"].as_str().map(str::to_string);
    let line_of = |v: &Value| v["line"].as_u64().unwrap_or(0) as usize;
    let failing_line = line_of(&failure["op"]);
    let prefix: Vec<(usize, String)> = (failure["prefix"].as_array().into_iter().flatten())
        .map(|step| {
            (
                line_of(&step["op"]),
                step["state"].as_str().unwrap_or("").to_string(),
            )
        })
        .collect();
    let of_key: Vec<&Operation> = history.ops.iter().filter(|o| o.key == key).collect();
    let find = |line: usize| of_key.iter().copied().find(|o| o.line == line);
    let failing = find(failing_line);
    let (window, start, end) = window(&of_key, &prefix, failing, &find);
    let (processes, lane_top) = lanes_of(&window, 10.0);
    let frame = Frame::new(width, 40.0 + LANE * processes.len() as f64);
    let axis = TimeAxis::new(frame, start, end);
    let points = linearization_points(&prefix, &find);
    let before_after = states_around(&prefix);
    let states_before: Vec<String> = (failure["states_before"].as_array().into_iter().flatten())
        .filter_map(|s| s.as_str().map(str::to_string))
        .collect();
    let bars = (window.iter())
        .map(|op| {
            let x = axis.x(op.call);
            let to = op.ret.map_or(frame.right, |r| axis.x(r));
            let (role, title) = if op.line == failing_line {
                let states = states_before.join(" | ");
                (
                    "failing",
                    format!(
                        "{} — cannot be placed; the model could be in: {states}",
                        describe(op)
                    ),
                )
            } else if let Some((before, after)) = before_after.get(&op.line) {
                (
                    "prefix",
                    format!(
                        "{} — linearized; state before: {before}; after: {after}",
                        describe(op)
                    ),
                )
            } else {
                ("other", describe(op))
            };
            let point = points.get(&op.line).map(|&t| axis.x(t));
            let (y, status) = (lane_top(op.process), status_name(op.status));
            Bar {
                x,
                w: r1((to - x).max(2.0)),
                y,
                status,
                role,
                point,
                title,
            }
        })
        .collect();
    Timeline {
        key: key.unwrap_or_else(|| "(one object)".into()),
        frame,
        x_ticks: axis.ticks(),
        lanes: (processes.iter())
            .map(|&p| Lane {
                y: r1(lane_top(p) + LANE / 2.0),
                label: format!("p{p}"),
            })
            .collect(),
        bars,
        failing: failing.map_or_else(|| format!("line {failing_line}"), describe),
        states_before,
        proof: failure["proof"].as_str().map(str::to_string),
    }
}

/// The operations of `of_key` around the failure — from the last [`PREFIX_SHOWN`] operations
/// of the prefix to the failing one, padded, at most [`WINDOW_OPS`] nearest the failing one —
/// in order, and the window's start and end.
fn window<'a>(
    of_key: &[&'a Operation],
    prefix: &[(usize, String)],
    failing: Option<&'a Operation>,
    find: &impl Fn(usize) -> Option<&'a Operation>,
) -> (Vec<&'a Operation>, u64, u64) {
    let shown_from = prefix.len().saturating_sub(PREFIX_SHOWN);
    let anchors: Vec<&Operation> = (prefix[shown_from..].iter().filter_map(|(l, _)| find(*l)))
        .chain(failing)
        .collect();
    let start = anchors.iter().map(|o| o.call).min().unwrap_or(0);
    let end = (anchors.iter().map(|o| o.ret.unwrap_or(o.call)).max())
        .unwrap_or(start)
        .max(start + 1);
    let pad = (end - start) / 20;
    let (start, end) = (start.saturating_sub(pad), end + pad);
    let mut window: Vec<&Operation> = (of_key.iter().copied())
        .filter(|o| o.call <= end && o.ret.is_none_or(|r| r >= start))
        .collect();
    let centre = failing.map_or(start, |f| f.call);
    window.sort_by_key(|o| o.call.abs_diff(centre));
    window.truncate(WINDOW_OPS);
    window.sort_by_key(|o| o.call);
    (window, start, end)
}

/// For each prefix operation (by line): the model's state before it and after it.
fn states_around(prefix: &[(usize, String)]) -> HashMap<usize, (String, String)> {
    let mut before = "the initial state".to_string();
    let mut around = HashMap::new();
    for (line, state) in prefix {
        around.insert(*line, (before.clone(), state.clone()));
        before.clone_from(state);
    }
    around
}

/// Each prefix operation's linearization point: the earliest moment not before its
/// invocation nor before the previous operation's point (the prefix is a linearization, so
/// it falls before the operation's completion).
fn linearization_points<'a>(
    prefix: &[(usize, String)],
    find: &impl Fn(usize) -> Option<&'a Operation>,
) -> HashMap<usize, u64> {
    let mut at = 0;
    let mut points = HashMap::new();
    for (line, _) in prefix {
        if let Some(op) = find(*line) {
            at = op.call.max(at);
            if let Some(ret) = op.ret {
                at = at.min(ret);
            }
            points.insert(*line, at);
        }
    }
    points
}

/// The cycle of a transactional anomaly (`anomaly`: an `Anomaly` as JSON), if it has one.
fn cycle(anomaly: &Value) -> Option<CycleGraph> {
    let steps = anomaly["cycle"].as_array().filter(|s| !s.is_empty())?;
    let mut names: Vec<String> = Vec::new();
    for step in steps {
        for end in ["from", "to"] {
            let name = step[end].as_str().unwrap_or("?").to_string();
            if !names.contains(&name) {
                names.push(name);
            }
        }
    }
    let (cx, cy, radius) = (170.0, 130.0, 95.0);
    let at = |i: usize| {
        let angle =
            std::f64::consts::TAU * i as f64 / names.len() as f64 - std::f64::consts::FRAC_PI_2;
        (cx + radius * angle.cos(), cy + radius * angle.sin())
    };
    let txns = anomaly["txns"].as_array().cloned().unwrap_or_default();
    let title = |name: &str| {
        (txns.iter())
            .find(|t| t["name"] == name)
            .map(|t| {
                format!(
                    "{name} (line {}): {}",
                    t["line"],
                    t["value"].as_str().unwrap_or("")
                )
            })
            .unwrap_or_else(|| name.to_string())
    };
    let nodes = (names.iter().enumerate())
        .map(|(i, name)| {
            let (x, y) = at(i);
            TxnNode {
                x: r1(x),
                y: r1(y),
                name: name.clone(),
                title: title(name),
            }
        })
        .collect();
    let index = |name: &Value| names.iter().position(|n| name == n.as_str()).unwrap_or(0);
    let edges = steps
        .iter()
        .map(|step| {
            let ((x1, y1), (x2, y2)) = (at(index(&step["from"])), at(index(&step["to"])));
            let (dx, dy) = (x2 - x1, y2 - y1);
            let len = (dx * dx + dy * dy).sqrt().max(1.0);
            let (ux, uy) = (dx / len, dy / len);
            let node = 20.0;
            TxnEdge {
                x1: r1(x1 + ux * node),
                y1: r1(y1 + uy * node),
                x2: r1(x2 - ux * (node + 4.0)),
                y2: r1(y2 - uy * (node + 4.0)),
                // Beside the middle, to the edge's left, so two opposite edges do not collide.
                lx: r1((x1 + x2) / 2.0 + uy * 14.0),
                ly: r1((y1 + y2) / 2.0 - ux * 14.0),
                rel: step["rel"].as_str().unwrap_or("").to_string(),
                why: step["why"].as_str().unwrap_or("").to_string(),
            }
        })
        .collect();
    Some(CycleGraph {
        anomaly: anomaly["name"].as_str().unwrap_or("").to_string(),
        explanation: anomaly["explanation"].as_str().unwrap_or("").to_string(),
        nodes,
        edges,
    })
}

/// The first violating order of a saga FAIL that names its services' effects: the client's
/// attempts at it over time, and what each service did for it.
fn order_view(details: &Value, history: &History, width: f64) -> Option<OrderView> {
    let violation = (details["violations"].as_array()?.iter()).find(|v| {
        v["evidence"]
            .as_object()
            .is_some_and(|e| e.values().any(|s| s.get("applied").is_some()))
    })?;
    let order = violation["order"].as_str().unwrap_or("");
    let attempts: Vec<&Operation> = (history.ops.iter())
        .filter(|o| o.f == "order" && o.key.as_deref() == Some(order))
        .collect();
    let start = attempts.iter().map(|o| o.call).min().unwrap_or(0);
    let end = (attempts.iter().map(|o| o.ret.unwrap_or(o.call)).max())
        .unwrap_or(start)
        .max(start + 1);
    let pad = (end - start) / 20 + 1;
    let (processes, lane_top) = lanes_of(&attempts, 10.0);
    let frame = Frame::new(width, 40.0 + LANE * processes.len().max(1) as f64);
    let axis = TimeAxis::new(frame, start.saturating_sub(pad), end + pad);
    let bars = (attempts.iter())
        .map(|op| {
            let x = axis.x(op.call);
            let to = op.ret.map_or(frame.right, |r| axis.x(r)).max(x + 2.0);
            let (status, title) = (status_name(op.status), describe(op));
            Bar {
                x,
                w: r1(to - x),
                y: lane_top(op.process),
                status,
                role: "other",
                point: None,
                title,
            }
        })
        .collect();
    let services = (violation["evidence"].as_object().into_iter().flatten())
        .map(|(name, e)| {
            let n = |k: &str| e[k].as_u64().unwrap_or(0);
            (name.clone(), n("applied"), n("undone"))
        })
        .collect();
    Some(OrderView {
        order: order.to_string(),
        kind: violation["kind"].as_str().unwrap_or("").to_string(),
        detail: violation["detail"].as_str().unwrap_or("").to_string(),
        frame,
        x_ticks: axis.ticks(),
        lanes: (processes.iter())
            .map(|&p| Lane {
                y: r1(lane_top(p) + LANE / 2.0),
                label: format!("p{p}"),
            })
            .collect(),
        bars,
        services,
    })
}

/// Terms and leaders per node from the nodes' `notes`, with the violations of `details`
/// marked: two leaders of one term, and entries applied differently at one index.
fn raft_view(details: &Value, notes: &[NodeNotes], width: f64) -> RaftView {
    let violations = details["violations"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    let contested: Vec<u64> = (violations.iter())
        .filter(|v| v["property"] == "election-safety")
        .filter_map(|v| v["term"].as_u64())
        .collect();
    let led = |n: &NodeNotes| -> Vec<u64> {
        (n.notes.iter().flatten())
            .filter_map(|note| match note {
                Note::Led { led } => Some(*led),
                Note::Applied { .. } => None,
            })
            .collect()
    };
    let entries: Vec<(String, u64, String)> = (violations.iter())
        .filter(|v| v["property"] == "state-machine-safety")
        .flat_map(|v| {
            let index = v["index"].clone();
            ["first", "other"].map(|which| {
                let e = &v[which];
                let node = e["node"].as_str().unwrap_or("").to_string();
                let title = format!(
                    "index {index}: {node} applied {} (term {})",
                    e["command"], e["term"]
                );
                (node, e["term"].as_u64().unwrap_or(0), title)
            })
        })
        .collect();
    let max_term = (notes.iter().flat_map(led))
        .chain(entries.iter().map(|e| e.1))
        .max()
        .unwrap_or(1);
    let frame = Frame::new(width, 40.0 + LANE * notes.len() as f64);
    let cell = frame.plot_width() / (max_term + 1) as f64;
    let x = |term: u64| r1(frame.left + cell * term as f64);
    let lane_top = |i: usize| r1(frame.top + LANE * i as f64);
    let lane_of = |node: &str| notes.iter().position(|n| n.node == node).unwrap_or(0);
    let step = (max_term / 10).max(1);
    let contested = &contested;
    RaftView {
        frame,
        x_ticks: (0..=max_term)
            .step_by(step as usize)
            .map(|t| Tick {
                at: r1(x(t) + cell / 2.0),
                label: format!("term {t}"),
            })
            .collect(),
        lanes: (notes.iter().enumerate())
            .map(|(i, n)| Lane {
                y: r1(lane_top(i) + LANE / 2.0),
                label: n.node.clone(),
            })
            .collect(),
        led: (notes.iter().enumerate())
            .flat_map(|(i, n)| {
                led(n).into_iter().map(move |t| TermCell {
                    x: x(t),
                    w: r1(cell.max(2.0)),
                    y: lane_top(i),
                    conflict: contested.contains(&t),
                    title: format!("{} led term {t}", n.node),
                })
            })
            .collect(),
        marks: (entries.into_iter())
            .map(|(node, term, title)| TermCell {
                x: r1(x(term) + cell / 2.0 - 3.0),
                w: 6.0,
                y: lane_top(lane_of(&node)),
                conflict: true,
                title,
            })
            .collect(),
    }
}
