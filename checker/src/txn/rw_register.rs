//! Read-write register inference (Elle §4): written values are unique per key, so a read
//! names the write it saw (wr edges). Which version came after which is known only in part:
//! the initial state (nil) precedes every write; a transaction's later write of a key follows
//! its earlier one; and, as the user assumes (Elle's flags), a
//! transaction that read a key then wrote it wrote the next version (`wfr-keys`), each process
//! sees a key's versions in order (`sequential-keys`), or writes are ordered by real time
//! (`linearizable-keys`). Each known pair of versions gives ww and rw edges.

use rustc_hash::FxHashMap;

use super::graph::{Rel, Why};
use super::history::{Id, Mop, Observed, Txn};
use super::{Assumption, Finding, Inference};
use crate::history::Status;

/// Who wrote a value to a key: (transaction, whether it was its last write of that key).
#[derive(Clone, Copy)]
struct Write {
    txn: u32,
    last: bool,
}

/// Infers the dependency graph and the non-cycle anomalies of an rw-register history.
pub(crate) fn infer(txns: &[Txn], assume: &[Assumption], out: &mut Inference) {
    let writes = writes(txns, out);
    let Seen {
        readers,
        mut after,
        lost,
    } = observe(txns, assume, &writes, out);
    wr_edges(&readers, &writes, txns, out);
    // nil precedes every write of the key.
    for (&(key, value), w) in &writes {
        if txns[w.txn as usize].status != Status::Fail && readers.contains_key(&(key, None)) {
            after.push((key, None, value));
        }
    }
    if assume.contains(&Assumption::SequentialKeys) {
        sequential(txns, &mut after);
    }
    if assume.contains(&Assumption::LinearizableKeys) {
        linearizable(txns, &mut after);
    }
    version_edges(after, &readers, &writes, txns, out);
    lost_updates(lost, out);
}

/// What the committed transactions' own micro-operations show.
struct Seen {
    /// Per key: the external readers of each version (None: nil).
    readers: FxHashMap<(Id, Option<Id>), Vec<u32>>,
    /// Known version orders: (key, earlier or nil, later).
    after: Vec<(Id, Option<Id>, Id)>,
    /// Per key and version read: the transactions that read it first and then wrote the key.
    lost: FxHashMap<(Id, Option<Id>), Vec<u32>>,
}

/// Walks each committed transaction: its reads (checked against its own writes, and against
/// the writes they name), the version orders its writes give, and read-then-write pairs.
fn observe(
    txns: &[Txn],
    assume: &[Assumption],
    writes: &FxHashMap<(Id, Id), Write>,
    out: &mut Inference,
) -> Seen {
    let mut readers: FxHashMap<(Id, Option<Id>), Vec<u32>> = FxHashMap::default();
    let mut after: Vec<(Id, Option<Id>, Id)> = Vec::new();
    let mut lost: FxHashMap<(Id, Option<Id>), Vec<u32>> = FxHashMap::default();
    for (t, txn) in txns.iter().enumerate() {
        if txn.status != Status::Ok {
            continue;
        }
        let t = t as u32;
        let mut state: FxHashMap<Id, (bool, Option<Id>)> = FxHashMap::default();
        let mut first_read: FxHashMap<Id, Option<Id>> = FxHashMap::default();
        for (m, mop) in txn.mops.iter().enumerate() {
            match mop {
                Mop::Write { key, value } => {
                    if let Some(&read) = first_read.get(key) {
                        if assume.contains(&Assumption::WfrKeys)
                            && !state.get(key).is_some_and(|s| s.0)
                        {
                            after.push((*key, read, *value));
                        }
                        if !state.get(key).is_some_and(|s| s.0) {
                            lost.entry((*key, read)).or_default().push(t);
                        }
                    }
                    // Within one transaction, a later write of a key follows an earlier one.
                    if let Some(&(true, Some(earlier))) = state.get(key) {
                        after.push((*key, Some(earlier), *value));
                    }
                    state.insert(*key, (true, Some(*value)));
                }
                Mop::Read {
                    key,
                    value: Some(Observed::Register(value)),
                } => {
                    read_one(t, txn, m, *key, *value, writes, txns, out);
                    match state.get(key) {
                        Some((_, expected)) if expected != value => out.found(Finding::txns(
                            "internal",
                            format!(
                                "T{t} read key {} = {}, but its own earlier reads and writes say {}",
                                out.name(*key),
                                show(out, *value),
                                show(out, *expected)
                            ),
                            &[t],
                        )),
                        Some(_) => {}
                        None => {
                            first_read.insert(*key, *value);
                            readers.entry((*key, *value)).or_default().push(t);
                            state.insert(*key, (false, *value));
                        }
                    }
                }
                Mop::Read { .. } | Mop::Append { .. } => {}
            }
        }
    }
    Seen {
        readers,
        after,
        lost,
    }
}

/// wr: each version's writer to its external readers.
fn wr_edges(
    readers: &FxHashMap<(Id, Option<Id>), Vec<u32>>,
    writes: &FxHashMap<(Id, Id), Write>,
    txns: &[Txn],
    out: &mut Inference,
) {
    for ((key, value), reading) in readers {
        if let Some(v) = value {
            if let Some(w) = writes
                .get(&(*key, *v))
                .filter(|w| txns[w.txn as usize].status != Status::Fail)
            {
                for &r in reading {
                    out.graph
                        .add(w.txn, r, Rel::Wr, Some(why(Rel::Wr, *key, Some(*v), None)));
                }
            }
        }
    }
}

/// ww and rw from each known pair of versions: the earlier's writer to the later's, and the
/// earlier's readers to the later's writer.
fn version_edges(
    mut after: Vec<(Id, Option<Id>, Id)>,
    readers: &FxHashMap<(Id, Option<Id>), Vec<u32>>,
    writes: &FxHashMap<(Id, Id), Write>,
    txns: &[Txn],
    out: &mut Inference,
) {
    after.sort_unstable();
    after.dedup();
    for (key, earlier, later) in after {
        let Some(w2) = writes
            .get(&(key, later))
            .filter(|w| txns[w.txn as usize].status != Status::Fail)
        else {
            continue;
        };
        if let Some(v1) = earlier {
            if let Some(w1) = writes
                .get(&(key, v1))
                .filter(|w| txns[w.txn as usize].status != Status::Fail)
            {
                out.graph.add(
                    w1.txn,
                    w2.txn,
                    Rel::Ww,
                    Some(why(Rel::Ww, key, Some(v1), Some(later))),
                );
            }
        }
        for &r in readers.get(&(key, earlier)).map_or(&[][..], Vec::as_slice) {
            out.graph.add(
                r,
                w2.txn,
                Rel::Rw,
                Some(why(Rel::Rw, key, earlier, Some(later))),
            );
        }
    }
}

/// lost-update: two transactions that read the same version of a key and both wrote it.
fn lost_updates(lost: FxHashMap<(Id, Option<Id>), Vec<u32>>, out: &mut Inference) {
    let mut groups: Vec<_> = lost.into_iter().filter(|(_, ts)| ts.len() > 1).collect();
    groups.sort_unstable_by_key(|(_, ts)| ts[0]);
    for ((key, value), ts) in groups {
        out.found(Finding::txns(
            "lost-update",
            format!(
                "T{} and T{} both read key {} = {} and both wrote it: each update missed the other",
                ts[0],
                ts[1],
                out.name(key),
                show(out, value)
            ),
            &ts[..2],
        ));
    }
}

fn show(out: &Inference<'_>, value: Option<Id>) -> String {
    value.map_or("nil".to_string(), |v| out.name(v).to_string())
}

fn why(rel: Rel, key: Id, from: Option<Id>, to: Option<Id>) -> Why {
    Why { rel, key, from, to }
}

fn writes(txns: &[Txn], out: &mut Inference) -> FxHashMap<(Id, Id), Write> {
    let mut all: FxHashMap<(Id, Id), Write> = FxHashMap::default();
    for (t, txn) in txns.iter().enumerate() {
        for (m, mop) in txn.mops.iter().enumerate() {
            let Mop::Write { key, value } = *mop else {
                continue;
            };
            let last = !txn.mops[m + 1..]
                .iter()
                .any(|later| matches!(later, Mop::Write { key: k, .. } if *k == key));
            if let Some(first) = all.insert(
                (key, value),
                Write {
                    txn: t as u32,
                    last,
                },
            ) {
                if first.txn != t as u32 {
                    out.unknown(format!(
                        "the value {} was written to key {} twice (lines {} and {}); rw-register needs unique values per key",
                        out.name(value),
                        out.name(key),
                        txns[first.txn as usize].line,
                        txn.line
                    ));
                }
            }
        }
    }
    all
}

/// The anomalies one read shows by itself.
#[allow(clippy::too_many_arguments)]
fn read_one(
    t: u32,
    txn: &Txn,
    at: usize,
    key: Id,
    value: Option<Id>,
    writes: &FxHashMap<(Id, Id), Write>,
    txns: &[Txn],
    out: &mut Inference,
) {
    let Some(v) = value else {
        return;
    };
    let later_own = txn.mops[at + 1..]
        .iter()
        .any(|m| matches!(m, Mop::Write { key: k, value: w } if *k == key && *w == v));
    if later_own {
        out.found(Finding::txns(
            "future-read",
            format!(
                "T{t} read key {} = {}, a value it writes only later",
                out.name(key),
                out.name(v)
            ),
            &[t],
        ));
        return;
    }
    match writes.get(&(key, v)) {
        None => out.found(Finding::txns(
            "garbage-read",
            format!("T{t} read key {} = {}, which no transaction wrote", out.name(key), out.name(v)),
            &[t],
        )),
        Some(w) if txns[w.txn as usize].status == Status::Fail => out.found(Finding::txns(
            "G1a",
            format!(
                "T{t} read key {} = {}, written by T{}, which aborted",
                out.name(key),
                out.name(v),
                w.txn
            ),
            &[t, w.txn],
        )),
        Some(w) if !w.last && w.txn != t => out.found(Finding::txns(
            "G1b",
            format!(
                "T{t} read key {} = {}: an intermediate write of T{}, which wrote key {} again after it",
                out.name(key),
                out.name(v),
                w.txn,
                out.name(key)
            ),
            &[t, w.txn],
        )),
        Some(_) => {}
    }
}

/// Each process sees a key's versions in order: the versions it read or wrote, in the order of
/// its committed transactions.
fn sequential(txns: &[Txn], after: &mut Vec<(Id, Option<Id>, Id)>) {
    let mut seen: FxHashMap<(u64, Id), Option<Id>> = FxHashMap::default();
    let mut order: Vec<usize> = (0..txns.len())
        .filter(|&t| txns[t].status == Status::Ok)
        .collect();
    order.sort_by_key(|&t| (txns[t].call, t));
    for t in order {
        let txn = &txns[t];
        for mop in &txn.mops {
            let (key, version) = match mop {
                Mop::Write { key, value } => (*key, Some(*value)),
                Mop::Read {
                    key,
                    value: Some(Observed::Register(value)),
                } => (*key, *value),
                _ => continue,
            };
            let previous = seen.insert((txn.process, key), version);
            if let (Some(earlier), Some(later)) = (previous, version) {
                if earlier != Some(later) {
                    after.push((key, earlier, later));
                }
            }
        }
    }
}

/// Writes are ordered by real time: a write whose transaction completed before another's was
/// invoked came first.
fn linearizable(txns: &[Txn], after: &mut Vec<(Id, Option<Id>, Id)>) {
    let mut by_key: FxHashMap<Id, Vec<(u64, u64, Id)>> = FxHashMap::default();
    for txn in txns.iter().filter(|t| t.status == Status::Ok) {
        let Some(ret) = txn.ret else { continue };
        let mut last: FxHashMap<Id, Id> = FxHashMap::default();
        for mop in &txn.mops {
            if let Mop::Write { key, value } = mop {
                last.insert(*key, *value);
            }
        }
        for (key, value) in last {
            by_key.entry(key).or_default().push((txn.call, ret, value));
        }
    }
    for (key, mut list) in by_key {
        list.sort_unstable();
        // The latest-completing write among those completed before each write's invocation
        // is the one it follows; earlier ones are reached through it.
        let mut done: Vec<(u64, Id)> = Vec::new();
        let mut ends: Vec<(u64, Id)> = list.iter().map(|&(_, ret, v)| (ret, v)).collect();
        ends.sort_unstable();
        let mut next_end = 0;
        for &(call, _, value) in &list {
            while next_end < ends.len() && ends[next_end].0 < call {
                done.push(ends[next_end]);
                next_end += 1;
            }
            if let Some(&(_, before)) = done.last() {
                after.push((key, Some(before), value));
            }
        }
    }
}
