//! Sound reductions of one register's operations before the search, for `info` operations
//! that write (a `write`, or a `cas` whose new value would be written). Such an operation never
//! returns, so the search must consider it pending until the end — after a few hundred of them
//! the search space explodes. Two facts about registers remove most of them, under strict
//! semantics (a null read observes null, not "anything"):
//!
//! - **Bounded by its first observer.** If value `v` is written by this operation alone (and
//!   is not the initial value), an `ok` read of `v`, or an `ok` cas expecting `v`, observed
//!   its effect: in every linearization it takes effect before that observer's linearization
//!   point, so before the observer returned. Its return becomes the earliest such observer's
//!   return. Nothing is lost: every linearization of the original history already places it
//!   there, and every linearization of the reduced one is one of the original.
//! - **Dropped when nothing could have observed it.** If no `ok` read returns `v` and no cas
//!   (of any outcome but mismatch) expects `v`, then taking effect changes nothing any other
//!   operation saw — *except* a cas mismatch linearized while the register held `v` (a
//!   mismatch needs the value to differ from its expectation, and `v` may be what differed).
//!   So a write is kept when a mismatch on the key may be linearized after its call (returns at
//!   or after it), and a cas expecting `e` — which can only turn `e` into `v` — when such a
//!   mismatch expects `e`; otherwise it is dropped. Dropping is exact: an `info` operation may be placed
//!   last, where it affects nothing, so a linearization of the rest extends to one with it,
//!   and removing it from a linearization of the whole leaves every other step legal (no one
//!   read `v`, no cas needed it, no mismatch needed it).
//!
//! An `info` operation whose value is also written by another operation, or is only expected
//! by `info` cas operations, is left as it is.
//!
//! What is left is made cheaper in two more ways:
//!
//! - **Blind writes.** A value no read returns and no cas expects (not even one that
//!   mismatched) cannot be told apart from another such value by any operation: every `info`
//!   write of one is compiled as writing the same "unobserved" value, so states that differ
//!   only there are one state to the search. (Acknowledged writes keep their values, which
//!   explanations show.)
//! - **Interchangeable `info` writes.** Two `info` writes of unobserved values have the same
//!   effect and no return: whenever a linearization places the later-called one first, swapping
//!   them gives another (the earlier-called one was callable there too, and everything that had
//!   to precede either already had). So the search takes them in call order — `waits_for`
//!   names, for each, the one before it — and the 2^k subsets of k pending ones become k + 1.

use std::collections::{HashMap, HashSet};
use std::hash::{Hash, Hasher};

use serde_json::Value;

use crate::history::{Operation, Status};

/// One key's operations after the reductions.
pub(super) struct Reduced<'h> {
    /// The operations kept, in invocation order.
    pub(super) ops: Vec<&'h Operation>,
    /// Each kept operation's (call, return); bounded `info` operations return at their first
    /// observer's return.
    pub(super) intervals: Vec<(u64, Option<u64>)>,
    /// Per kept operation: whether it is an `info` write of a value nothing observes.
    pub(super) blind: Vec<bool>,
    /// Per kept operation: the interchangeable `info` write it must come after, if any.
    pub(super) waits_for: Vec<Option<usize>>,
    /// `info` operations dropped.
    pub(super) dropped: usize,
    /// `info` operations given a return.
    pub(super) bounded: usize,
}

/// Whether the reductions apply: every operation is a register read, write or cas.
pub(super) fn applies(ops: &[&Operation]) -> bool {
    ops.iter()
        .all(|op| matches!(op.f.as_str(), "read" | "get" | "write" | "put" | "cas"))
}

/// The value `op` would write, if it writes: a write's input, a cas's new value.
pub(super) fn written(op: &Operation) -> Option<&Value> {
    match op.f.as_str() {
        "write" | "put" => Some(&op.input),
        "cas" if op.status != Status::Mismatch => op.input.get(1),
        _ => None,
    }
}

/// The value a cas compares with.
fn expected(op: &Operation) -> Option<&Value> {
    (op.f == "cas").then(|| op.input.get(0)).flatten()
}

/// A value as a map key, compared and hashed in place (no text made of it).
#[derive(Clone, Copy)]
pub(super) struct Key<'v>(pub(super) &'v Value);

impl PartialEq for Key<'_> {
    fn eq(&self, other: &Self) -> bool {
        self.0 == other.0
    }
}

impl Eq for Key<'_> {}

impl Hash for Key<'_> {
    fn hash<H: Hasher>(&self, state: &mut H) {
        fn walk<H: Hasher>(v: &Value, state: &mut H) {
            match v {
                Value::Null => 0u8.hash(state),
                Value::Bool(b) => (1u8, b).hash(state),
                Value::Number(n) => {
                    2u8.hash(state);
                    match (n.as_u64(), n.as_i64(), n.as_f64()) {
                        (Some(u), _, _) => u.hash(state),
                        (_, Some(i), _) => i.hash(state),
                        (_, _, f) => f.map(f64::to_bits).hash(state),
                    }
                }
                Value::String(s) => (3u8, s).hash(state),
                Value::Array(items) => {
                    (4u8, items.len()).hash(state);
                    items.iter().for_each(|i| walk(i, state));
                }
                Value::Object(map) => {
                    (5u8, map.len()).hash(state);
                    for (k, v) in map {
                        k.hash(state);
                        walk(v, state);
                    }
                }
            }
        }
        walk(self.0, state);
    }
}

/// What one key's operations say about each value, for deciding each `info` write's fate.
struct Facts<'v> {
    initial: Key<'v>,
    /// How many operations may write each value (the initial value counts as one).
    writers: HashMap<Key<'v>, usize>,
    /// The earliest return of an `ok` operation that observed each value.
    observed_by: HashMap<Key<'v>, u64>,
    /// Values a read returned or a cas (but a mismatch) expected.
    seen: HashSet<Key<'v>>,
    /// Values some cas whose outcome is unknown expects.
    expected_by_unknown: HashSet<Key<'v>>,
    /// The latest return of a cas mismatch, and per value expected by one, the latest such.
    last_mismatch: Option<u64>,
    expected_by_mismatch: HashMap<Key<'v>, u64>,
}

impl<'v> Facts<'v> {
    fn gather(ops: &[&'v Operation], initial: &'v Value) -> Self {
        let mut facts = Facts {
            initial: Key(initial),
            writers: HashMap::from([(Key(initial), 1)]),
            observed_by: HashMap::new(),
            seen: HashSet::new(),
            expected_by_unknown: HashSet::new(),
            last_mismatch: None,
            expected_by_mismatch: HashMap::new(),
        };
        for op in ops {
            if let Some(v) = written(op) {
                *facts.writers.entry(Key(v)).or_default() += 1;
            }
            let looked_at = match (op.status, op.f.as_str()) {
                (Status::Ok, "read" | "get") => Some(&op.output),
                (Status::Mismatch, _) => None,
                _ => expected(op),
            };
            if let Some(v) = looked_at {
                facts.seen.insert(Key(v));
                if let (Status::Ok, Some(ret)) = (op.status, op.ret) {
                    let earliest = facts.observed_by.entry(Key(v)).or_insert(ret);
                    *earliest = (*earliest).min(ret);
                }
            }
            match (op.status, expected(op)) {
                (Status::Info, Some(v)) => {
                    facts.expected_by_unknown.insert(Key(v));
                }
                (Status::Mismatch, v) => {
                    let ret = op.ret.unwrap_or(u64::MAX);
                    facts.last_mismatch = Some(facts.last_mismatch.map_or(ret, |m| m.max(ret)));
                    if let Some(v) = v {
                        let latest = facts.expected_by_mismatch.entry(Key(v)).or_insert(ret);
                        *latest = (*latest).max(ret);
                    }
                }
                _ => {}
            }
        }
        facts
    }

    /// An `info` write's return: its first observer's (`Some(Some(_))`), still infinity
    /// (`Some(None)`), or `None` when it is dropped.
    fn fate(&self, op: &Operation, v: &Value) -> Option<Option<u64>> {
        let v = Key(v);
        match self.observed_by.get(&v) {
            Some(&first) if self.writers.get(&v) == Some(&1) => Some(Some(first.max(op.call))),
            Some(_) => Some(None),
            None => {
                let needed = self.expected_by_unknown.contains(&v);
                // A write may hide whatever the register held from a later mismatch; a cas
                // only the value it expected, so only a mismatch expecting that one can need it.
                let mismatch_after = match expected(op) {
                    Some(e) => {
                        (self.expected_by_mismatch.get(&Key(e))).is_some_and(|&m| m >= op.call)
                    }
                    None => self.last_mismatch.is_some_and(|m| m >= op.call),
                };
                (needed || mismatch_after).then_some(None)
            }
        }
    }

    /// Whether `v` is a value no operation can tell apart from another such.
    fn unobserved(&self, v: &Value) -> bool {
        let v = Key(v);
        v != self.initial && !self.seen.contains(&v) && !self.expected_by_mismatch.contains_key(&v)
    }
}

/// Reduces one register key's operations (which must pass [`applies`]), `initial` being its
/// value before them. Operations are in invocation order.
pub(super) fn reduce<'h>(ops: &[&'h Operation], initial: &Value) -> Reduced<'h> {
    let mut reduced = Reduced {
        ops: Vec::with_capacity(ops.len()),
        intervals: Vec::with_capacity(ops.len()),
        blind: Vec::new(),
        waits_for: Vec::new(),
        dropped: 0,
        bounded: 0,
    };
    let info_write = |op: &&&Operation| op.status == Status::Info && written(op).is_some();
    if !ops.iter().any(|op| info_write(&op)) {
        reduced.ops = ops.to_vec();
        reduced.intervals = ops.iter().map(|op| (op.call, op.ret)).collect();
        return reduced;
    }
    let facts = Facts::gather(ops, initial);
    let mut last_interchangeable: Option<usize> = None;
    for &op in ops {
        let mut ret = op.ret;
        let mut blind = false;
        if let (Status::Info, Some(v)) = (op.status, written(op)) {
            match facts.fate(op, v) {
                None => {
                    reduced.dropped += 1;
                    continue;
                }
                Some(bounded @ Some(_)) => {
                    ret = bounded;
                    reduced.bounded += 1;
                }
                Some(None) => {}
            }
            blind = facts.unobserved(v);
        }
        let interchangeable = blind && matches!(op.f.as_str(), "write" | "put");
        let at = reduced.ops.len();
        reduced.waits_for.push(if interchangeable {
            last_interchangeable.replace(at)
        } else {
            None
        });
        reduced.blind.push(blind);
        reduced.ops.push(op);
        reduced.intervals.push((op.call, ret));
    }
    reduced
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn op(f: &str, input: Value, output: Value, status: Status, call: u64, ret: u64) -> Operation {
        Operation::test(f, input, output, status, call, ret)
    }

    fn reduce_all(ops: &[Operation]) -> (Vec<(u64, Option<u64>)>, usize, usize) {
        let refs: Vec<&Operation> = ops.iter().collect();
        let r = reduce(&refs, &Value::Null);
        (r.intervals, r.dropped, r.bounded)
    }

    #[test]
    fn an_observed_write_returns_when_its_first_observer_does() {
        let ops = [
            op("write", json!(1), json!(null), Status::Info, 0, 0),
            op("read", json!(null), json!(1), Status::Ok, 5, 9),
            op("read", json!(null), json!(1), Status::Ok, 6, 7),
        ];
        assert_eq!(
            reduce_all(&ops),
            (vec![(0, Some(7)), (5, Some(9)), (6, Some(7))], 0, 1)
        );
    }

    #[test]
    fn an_unobserved_write_is_dropped() {
        let ops = [
            op("write", json!(1), json!(null), Status::Info, 0, 0),
            op("read", json!(null), json!(null), Status::Ok, 5, 9),
        ];
        assert_eq!(reduce_all(&ops), (vec![(5, Some(9))], 1, 0));
    }

    #[test]
    fn a_later_mismatch_keeps_an_unobserved_write() {
        // The mismatch needs the register to differ from 0 (null here): the write may be
        // what made it differ.
        let ops = [
            op("write", json!(1), json!(null), Status::Info, 0, 0),
            op("cas", json!([null, 2]), json!(null), Status::Mismatch, 5, 9),
        ];
        assert_eq!(reduce_all(&ops), (vec![(0, None), (5, Some(9))], 0, 0));
        // A mismatch that returned before the write was invoked cannot be after it.
        let ops = [
            op("cas", json!([3, 2]), json!(null), Status::Mismatch, 0, 1),
            op("write", json!(1), json!(null), Status::Info, 2, 0),
        ];
        assert_eq!(reduce_all(&ops), (vec![(0, Some(1))], 1, 0));
    }

    #[test]
    fn a_value_written_twice_or_needed_by_an_unknown_cas_is_kept() {
        let ops = [
            op("write", json!(1), json!(null), Status::Info, 0, 0),
            op("write", json!(1), json!(null), Status::Ok, 1, 2),
            op("read", json!(null), json!(1), Status::Ok, 5, 9),
        ];
        assert_eq!(reduce_all(&ops).1 + reduce_all(&ops).2, 0);
        let ops = [
            op("write", json!(1), json!(null), Status::Info, 0, 0),
            op("cas", json!([1, 2]), json!(null), Status::Info, 1, 0),
            op("read", json!(null), json!(2), Status::Ok, 5, 9),
        ];
        let (intervals, dropped, bounded) = reduce_all(&ops);
        assert_eq!(
            (dropped, bounded),
            (0, 1),
            "the cas is bounded by the read of 2"
        );
        assert_eq!(
            intervals[0],
            (0, None),
            "the write of 1 is needed by the cas"
        );
    }

    #[test]
    fn unobserved_info_writes_are_blind_and_taken_in_call_order() {
        // A later mismatch keeps both unobserved writes; neither value is read or expected.
        let ops = [
            op("write", json!(1), json!(null), Status::Info, 0, 0),
            op("write", json!(2), json!(null), Status::Info, 1, 0),
            op("write", json!(3), json!(null), Status::Ok, 2, 3),
            op("cas", json!([3, 4]), json!(null), Status::Mismatch, 5, 9),
        ];
        let refs: Vec<&Operation> = ops.iter().collect();
        let r = reduce(&refs, &Value::Null);
        assert_eq!(r.dropped, 0);
        assert_eq!(r.blind, [true, true, false, false]);
        assert_eq!(r.waits_for, [None, Some(0), None, None]);
    }

    #[test]
    fn an_unobserved_cas_is_kept_only_for_a_mismatch_expecting_what_it_replaces() {
        let ops = [
            op("cas", json!([1, 5]), json!(null), Status::Info, 0, 0),
            op("cas", json!([2, 6]), json!(null), Status::Mismatch, 5, 9),
        ];
        assert_eq!(reduce_all(&ops).1, 1, "no mismatch expects 1: dropped");
        let ops = [
            op("cas", json!([1, 5]), json!(null), Status::Info, 0, 0),
            op("cas", json!([1, 6]), json!(null), Status::Mismatch, 5, 9),
        ];
        assert_eq!(
            reduce_all(&ops).1,
            0,
            "it may have hidden 1 from the mismatch"
        );
    }
}
