//! List-append inference (Elle §4): appended values are unique per key, so every read of a
//! list names the appends it saw, in order. The longest read of a key gives its version order
//! (every other read must be a prefix of it); from that order come the ww, wr and rw edges
//! between transactions, and the anomalies no graph can show.

use rustc_hash::FxHashMap;

use super::graph::{Rel, Why};
use super::history::{Id, Mop, Observed, Txn};
use super::{Finding, Inference};
use crate::history::Status;

/// Who appended a value to a key: (transaction, position of the micro-operation, whether it
/// was the transaction's last append to that key).
#[derive(Clone, Copy)]
struct Append {
    txn: u32,
    mop: usize,
    last: bool,
}

/// A committed read of a key: (transaction, position, the list, whether it was external —
/// before the transaction's own appends to the key).
struct Read<'a> {
    txn: u32,
    list: &'a [Id],
    external: bool,
}

/// Infers the dependency graph and the non-cycle anomalies of a list-append history.
pub(crate) fn infer(txns: &[Txn], out: &mut Inference) {
    let appends = appends(txns, out);
    let mut reads: FxHashMap<Id, Vec<Read<'_>>> = FxHashMap::default();
    for (t, txn) in txns.iter().enumerate() {
        if txn.status != Status::Ok {
            continue;
        }
        internal(t as u32, txn, out);
        let mut appended: Vec<Id> = Vec::new();
        for (m, mop) in txn.mops.iter().enumerate() {
            match mop {
                Mop::Append { key, .. } => appended.push(*key),
                Mop::Read {
                    key,
                    value: Some(Observed::List(list)),
                } => {
                    future_read(t as u32, txn, m, *key, list, out);
                    reads.entry(*key).or_default().push(Read {
                        txn: t as u32,
                        list,
                        external: !appended.contains(key),
                    });
                }
                Mop::Read { .. } | Mop::Write { .. } => {}
            }
        }
    }
    let mut by_key: FxHashMap<Id, Vec<Id>> = FxHashMap::default();
    for &(key, value) in appends.keys() {
        by_key.entry(key).or_default().push(value);
    }
    let mut keys: Vec<&Id> = reads.keys().collect();
    keys.sort_unstable();
    for &key in keys {
        let appended = by_key.get(&key).map_or(&[][..], Vec::as_slice);
        per_key(key, &reads[&key], &appends, appended, txns, out);
    }
    lost_updates(txns, out);
}

/// Every append, by (key, value); a value appended twice to one key breaks the premise of the
/// inference and makes the verdict UNKNOWN.
fn appends(txns: &[Txn], out: &mut Inference) -> FxHashMap<(Id, Id), Append> {
    let mut all: FxHashMap<(Id, Id), Append> = FxHashMap::default();
    for (t, txn) in txns.iter().enumerate() {
        for (m, mop) in txn.mops.iter().enumerate() {
            let Mop::Append { key, value } = *mop else {
                continue;
            };
            let last = !txn.mops[m + 1..]
                .iter()
                .any(|later| matches!(later, Mop::Append { key: k, .. } if *k == key));
            let here = Append {
                txn: t as u32,
                mop: m,
                last,
            };
            if let Some(first) = all.insert((key, value), here) {
                if first.txn != here.txn || first.mop != here.mop {
                    out.unknown(format!(
                        "the value {} was appended to key {} twice (lines {} and {}); list-append needs unique values per key",
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

/// The reads, version order and edges of one key.
fn per_key(
    key: Id,
    reads: &[Read<'_>],
    appends: &FxHashMap<(Id, Id), Append>,
    appended: &[Id],
    txns: &[Txn],
    out: &mut Inference,
) {
    let order = version_order(key, reads, out);
    read_anomalies(key, reads, order, appends, txns, out);
    dirty_updates(key, order, appends, txns, out);
    dependency_edges(key, reads, order, appends, appended, txns, out);
}

/// The key's version order: its longest read (a read with an element twice is reported as
/// `duplicate-elements` and left out).
fn version_order<'r>(key: Id, reads: &[Read<'r>], out: &mut Inference) -> &'r [Id] {
    let mut order: &[Id] = &[];
    for read in reads {
        if has_duplicates(read.list) {
            out.found(Finding::txns(
                "duplicate-elements",
                format!(
                    "T{} read key {} as {} — a value appears twice",
                    read.txn,
                    out.name(key),
                    out.list(read.list)
                ),
                &[read.txn],
            ));
            continue;
        }
        if read.list.len() > order.len() {
            order = read.list;
        }
    }
    order
}

/// What the reads of a key show on their own: reads no single order explains
/// (`incompatible-order`), elements nobody appended (`garbage-read`) or an aborted
/// transaction appended (G1a), and reads ending in an intermediate append (G1b).
fn read_anomalies(
    key: Id,
    reads: &[Read<'_>],
    order: &[Id],
    appends: &FxHashMap<(Id, Id), Append>,
    txns: &[Txn],
    out: &mut Inference,
) {
    for read in reads {
        if !order.starts_with(read.list) && !has_duplicates(read.list) {
            let longest = reads
                .iter()
                .find(|r| r.list == order)
                .map_or(read.txn, |r| r.txn);
            out.found(Finding::txns(
                "incompatible-order",
                format!(
                    "T{} read key {} as {} and T{} read it as {}: no single order of appends gives both",
                    read.txn,
                    out.name(key),
                    out.list(read.list),
                    longest,
                    out.list(order)
                ),
                &[read.txn, longest],
            ));
        }
        for &value in read.list {
            match appends.get(&(key, value)) {
                None => out.found(Finding::txns(
                    "garbage-read",
                    format!(
                        "T{} read key {} as {}, but no transaction appended {}",
                        read.txn,
                        out.name(key),
                        out.list(read.list),
                        out.name(value)
                    ),
                    &[read.txn],
                )),
                Some(w) if txns[w.txn as usize].status == Status::Fail => out.found(Finding::txns(
                    "G1a",
                    format!(
                        "T{} read key {} as {}, but {} was appended by T{}, which aborted",
                        read.txn,
                        out.name(key),
                        out.list(read.list),
                        out.name(value),
                        w.txn
                    ),
                    &[read.txn, w.txn],
                )),
                Some(_) => {}
            }
        }
        if read.external {
            if let Some(&last) = read.list.last() {
                if let Some(w) = appends.get(&(key, last)) {
                    if !w.last && w.txn != read.txn {
                        out.found(Finding::txns(
                            "G1b",
                            format!(
                                "T{} read key {} as {}, ending in {}: an intermediate append of T{}, which appended more to key {} after it",
                                read.txn,
                                out.name(key),
                                out.list(read.list),
                                out.name(last),
                                w.txn,
                                out.name(key)
                            ),
                            &[read.txn, w.txn],
                        ));
                    }
                }
            }
        }
    }
}

/// The key's dependency edges: ww between consecutive versions (and to committed appends no
/// read saw), wr from an append to the reads ending in it, rw from a read to the append that
/// came next.
fn dependency_edges(
    key: Id,
    reads: &[Read<'_>],
    order: &[Id],
    appends: &FxHashMap<(Id, Id), Append>,
    appended: &[Id],
    txns: &[Txn],
    out: &mut Inference,
) {
    let writer = |v: Id| {
        appends
            .get(&(key, v))
            .filter(|w| txns[w.txn as usize].status != Status::Fail)
            .map(|w| w.txn)
    };
    // ww: each append and the next one in the version order.
    for pair in order.windows(2) {
        if let (Some(a), Some(b)) = (writer(pair[0]), writer(pair[1])) {
            out.graph.add(
                a,
                b,
                Rel::Ww,
                Some(why(Rel::Ww, key, Some(pair[0]), Some(pair[1]))),
            );
        }
    }
    // Committed appends no read saw came after everything read: after the last version,
    // and after every read of the whole known order.
    let unread = unread_appends(key, order, appends, appended, txns);
    if let Some(a) = order.last().and_then(|&last| writer(last)) {
        for &(value, w) in &unread {
            let why = why(Rel::Ww, key, order.last().copied(), Some(value));
            out.graph.add(a, w, Rel::Ww, Some(why));
        }
    }
    let whole = |r: &&Read<'_>| r.external && r.list == order;
    for read in reads.iter().filter(whole) {
        for &(value, w) in &unread {
            let why = why(Rel::Rw, key, read.list.last().copied(), Some(value));
            out.graph.add(read.txn, w, Rel::Rw, Some(why));
        }
    }
    for read in reads
        .iter()
        .filter(|r| r.external && order.starts_with(r.list))
    {
        // wr: the reader saw the append its list ends with.
        if let Some(&last) = read.list.last() {
            if let Some(w) = writer(last) {
                out.graph.add(
                    w,
                    read.txn,
                    Rel::Wr,
                    Some(why(Rel::Wr, key, Some(last), None)),
                );
            }
        }
        // rw: the reader did not see the append that came next.
        if let Some(&next) = order.get(read.list.len()) {
            if let Some(w) = writer(next) {
                let seen = read.list.last().copied();
                out.graph.add(
                    read.txn,
                    w,
                    Rel::Rw,
                    Some(why(Rel::Rw, key, seen, Some(next))),
                );
            }
        }
    }
}

/// The appends to `key` by committed transactions that no read saw: (value, transaction).
fn unread_appends(
    key: Id,
    order: &[Id],
    appends: &FxHashMap<(Id, Id), Append>,
    appended: &[Id],
    txns: &[Txn],
) -> Vec<(Id, u32)> {
    if appended.len() <= order.len() {
        return Vec::new();
    }
    let read: rustc_hash::FxHashSet<Id> = order.iter().copied().collect();
    let mut unread: Vec<(Id, u32)> = appended
        .iter()
        .filter(|v| !read.contains(v))
        .filter_map(|&v| appends.get(&(key, v)).map(|w| (v, w)))
        .filter(|(_, w)| txns[w.txn as usize].status == Status::Ok)
        .map(|(v, w)| (v, w.txn))
        .collect();
    unread.sort_unstable_by_key(|&(v, t)| (t, v));
    unread
}

fn why(rel: Rel, key: Id, from: Option<Id>, to: Option<Id>) -> Why {
    Why { rel, key, from, to }
}

fn has_duplicates(list: &[Id]) -> bool {
    if list.len() < 2 {
        return false;
    }
    let mut sorted = list.to_vec();
    sorted.sort_unstable();
    sorted.windows(2).any(|w| w[0] == w[1])
}

/// An aborted transaction's append that committed appends came after, in the version order.
fn dirty_updates(
    key: Id,
    order: &[Id],
    appends: &FxHashMap<(Id, Id), Append>,
    txns: &[Txn],
    out: &mut Inference,
) {
    let status = |v: &Id| {
        appends
            .get(&(key, *v))
            .map(|w| (w.txn, txns[w.txn as usize].status))
    };
    let Some(aborted_at) = order
        .iter()
        .position(|v| matches!(status(v), Some((_, Status::Fail))))
    else {
        return;
    };
    let (aborted, _) = status(&order[aborted_at]).expect("found above");
    if let Some((committed, _)) = order[aborted_at + 1..]
        .iter()
        .filter_map(status)
        .find(|(_, s)| *s == Status::Ok)
    {
        out.found(Finding::txns(
            "dirty-update",
            format!(
                "key {}: T{committed} appended after {}, which T{aborted} appended and then aborted",
                out.name(key),
                out.name(order[aborted_at])
            ),
            &[aborted, committed],
        ));
    }
}

/// A read of a key within a transaction that disagrees with what the transaction itself read
/// and appended before it.
fn internal(t: u32, txn: &Txn, out: &mut Inference) {
    // Per key: the list the transaction must see now, if it read the key before; else the
    // appends it made, which a read must end with.
    let mut known: FxHashMap<Id, (bool, Vec<Id>)> = FxHashMap::default();
    for mop in &txn.mops {
        match mop {
            Mop::Append { key, value } => known
                .entry(*key)
                .or_insert((false, Vec::new()))
                .1
                .push(*value),
            Mop::Read {
                key,
                value: Some(Observed::List(list)),
            } => {
                if let Some((whole, expected)) = known.get(key) {
                    let ok = if *whole {
                        list == expected
                    } else {
                        list.ends_with(expected)
                    };
                    if !ok {
                        let what = if *whole {
                            "expected"
                        } else {
                            "expected it to end with"
                        };
                        out.found(Finding::txns(
                            "internal",
                            format!(
                                "T{t} read key {} as {}, but {what} {} from its own earlier reads and appends",
                                out.name(*key),
                                out.list(list),
                                out.list(expected)
                            ),
                            &[t],
                        ));
                    }
                }
                known.insert(*key, (true, list.clone()));
            }
            Mop::Read { .. } | Mop::Write { .. } => {}
        }
    }
}

/// A read that contains a value the same transaction appends only later.
fn future_read(t: u32, txn: &Txn, at: usize, key: Id, list: &[Id], out: &mut Inference) {
    for later in &txn.mops[at + 1..] {
        if let Mop::Append { key: k, value } = later {
            if *k == key && list.contains(value) {
                out.found(Finding::txns(
                    "future-read",
                    format!(
                        "T{t} read key {} as {}, which holds {}: an append T{t} makes only later",
                        out.name(key),
                        out.list(list),
                        out.name(*value)
                    ),
                    &[t],
                ));
                return;
            }
        }
    }
}

/// Two committed transactions that read the same version of a key and both appended to it:
/// each overwrote a state the other did not see.
fn lost_updates(txns: &[Txn], out: &mut Inference) {
    let mut by_version: FxHashMap<(Id, Option<Id>, usize), Vec<u32>> = FxHashMap::default();
    for (t, txn) in txns
        .iter()
        .enumerate()
        .filter(|(_, t)| t.status == Status::Ok)
    {
        let mut read: FxHashMap<Id, &[Id]> = FxHashMap::default();
        let mut counted: Vec<Id> = Vec::new();
        for mop in &txn.mops {
            match mop {
                Mop::Read {
                    key,
                    value: Some(Observed::List(list)),
                } => {
                    read.entry(*key).or_insert(list);
                }
                Mop::Append { key, .. } if !counted.contains(key) => {
                    if let Some(list) = read.get(key) {
                        by_version
                            .entry((*key, list.last().copied(), list.len()))
                            .or_default()
                            .push(t as u32);
                    }
                    counted.push(*key);
                }
                _ => {}
            }
        }
    }
    let mut groups: Vec<_> = by_version
        .into_iter()
        .filter(|(_, ts)| ts.len() > 1)
        .collect();
    groups.sort_unstable_by_key(|((k, _, n), ts)| (*k, *n, ts[0]));
    for ((key, last, _), ts) in groups {
        let version = last.map_or("empty".to_string(), |v| {
            format!("ending in {}", out.name(v))
        });
        out.found(Finding::txns(
            "lost-update",
            format!(
                "T{} and T{} both read key {} ({version}) and both appended to it: each update missed the other",
                ts[0],
                ts[1],
                out.name(key)
            ),
            &ts[..2],
        ));
    }
}
