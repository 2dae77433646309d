//! Read/write registers with unique written values, decided in O(n log n) (Gibbons & Korach,
//! "Testing Shared Memories", SIAM J. Computing 26(4), 1997): no search, whatever the
//! concurrency.
//!
//! Every read names the one write it saw. A value's *cluster* is its write and its reads; its
//! write must take effect before the earliest return in the cluster (`f`), and the value must
//! still be there at the latest invocation in the cluster (`s`). When `f < s` the value must
//! stay the register's over all of `[f, s]`: a *forward zone*, which no other write may enter.
//! When `s ≤ f` the whole cluster fits at any instant of `[s, f]`: a *backward zone*, which must
//! not lie inside another value's forward zone. The history is linearizable exactly when no read
//! returns before its write is invoked, no two forward zones overlap, and no backward zone lies
//! inside a forward zone. The initial value's cluster has its write at the beginning of time.
//!
//! It applies to `read`/`write` keys only (no cas), under strict semantics, when every written
//! value is written once and every `info` write was bounded or dropped by [`super::reduce`].

use std::collections::HashMap;

use serde_json::Value;

use super::reduce::{Key, written};
use crate::history::{Operation, Status};

/// What the zones say.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) enum Decision {
    Linearizable,
    /// Not linearizable: the operation to name, and why, in words naming the others.
    NotLinearizable {
        op: usize,
        why: String,
    },
}

/// One value's cluster: its bounds and the operations that set them.
#[derive(Clone, Copy, Debug)]
struct Zone {
    /// The earliest return in the cluster, and whose (`None`: the initial value's write).
    f: (i128, Option<usize>),
    /// The latest invocation in the cluster, and whose.
    s: (i128, Option<usize>),
}

impl Zone {
    fn forward(&self) -> bool {
        self.f.0 < self.s.0
    }
}

/// Decides `ops` (one key, in invocation order, with `intervals` as reduced), or `None` when
/// the zones do not apply (a cas, a value written twice, a write that never returns).
pub(super) fn decide(
    ops: &[&Operation],
    intervals: &[(u64, Option<u64>)],
    initial: &Value,
) -> Option<Decision> {
    let read_write = |op: &&Operation| matches!(op.f.as_str(), "read" | "get" | "write" | "put");
    if !ops.iter().all(read_write) {
        return None;
    }
    let writes = unique_writes(ops, intervals, initial)?;
    Some(match clusters(ops, intervals, &writes) {
        Ok(zones) => compare(ops, zones),
        Err(failed) => failed,
    })
}

/// Each value's one write (`None` for the initial value's), or `None` when a value is written
/// twice or a write never returns.
fn unique_writes<'v>(
    ops: &[&'v Operation],
    intervals: &[(u64, Option<u64>)],
    initial: &'v Value,
) -> Option<HashMap<Key<'v>, Option<usize>>> {
    let mut writes = HashMap::from([(Key(initial), None)]);
    for (i, op) in ops.iter().enumerate() {
        if let Some(v) = written(op) {
            if intervals[i].1.is_none() || writes.insert(Key(v), Some(i)).is_some() {
                return None;
            }
        }
    }
    Some(writes)
}

/// Every value's zone, its cluster's bounds; `Err` when a read alone is impossible (of a value
/// nobody writes, or returning before its write was invoked).
fn clusters(
    ops: &[&Operation],
    intervals: &[(u64, Option<u64>)],
    writes: &HashMap<Key<'_>, Option<usize>>,
) -> Result<Vec<Zone>, Decision> {
    let time = |t: u64| t as i128;
    let mut zones: HashMap<Option<usize>, Zone> = (writes.values())
        .map(|&w| {
            let zone = match w {
                Some(w) => Zone {
                    f: (time(intervals[w].1.expect("writes return")), Some(w)),
                    s: (time(intervals[w].0), Some(w)),
                },
                None => Zone {
                    f: (i128::MIN, None),
                    s: (i128::MIN, None),
                },
            };
            (w, zone)
        })
        .collect();
    for (r, op) in ops.iter().enumerate() {
        if !op.is_read() || op.status != Status::Ok {
            continue;
        }
        let (call, ret) = intervals[r];
        let Some(&w) = writes.get(&Key(&op.output)) else {
            return Err(Decision::NotLinearizable {
                op: r,
                why: format!(
                    "no operation writes {}, and it is not the initial value",
                    op.output
                ),
            });
        };
        if let Some(w) = w.filter(|&w| ret.is_some_and(|ret| ret < intervals[w].0)) {
            return Err(Decision::NotLinearizable {
                op: r,
                why: format!(
                    "it returned before the only write of {}, {}, was invoked",
                    op.output,
                    at(ops, Some(w))
                ),
            });
        }
        let zone = zones.get_mut(&w).expect("every value has its zone");
        if let Some(ret) = ret {
            zone.f = zone.f.min((time(ret), Some(r)));
        }
        zone.s = zone.s.max((time(call), Some(r)));
    }
    Ok(zones.into_values().collect())
}

/// The zones' verdict: no two forward zones overlap, no backward zone lies inside a forward one.
fn compare(ops: &[&Operation], zones: Vec<Zone>) -> Decision {
    let (mut forward, mut backward): (Vec<Zone>, Vec<Zone>) =
        zones.into_iter().partition(Zone::forward);
    // Sorted to the operations too, so that the same history always names the same ones.
    forward.sort_by_key(|z| (z.f, z.s));
    backward.sort_by_key(|z| (z.s, z.f));
    for pair in forward.windows(2) {
        let (a, b) = (pair[0], pair[1]);
        if b.f.0 < a.s.0 {
            return overlap(ops, a, b);
        }
    }
    for zone in backward {
        // The forward zone that starts last at or before this backward zone's start.
        let at_or_before = forward.partition_point(|f| f.f.0 < zone.s.0);
        if let Some(outer) = at_or_before.checked_sub(1).map(|i| forward[i]) {
            if zone.f.0 < outer.s.0 {
                return inside(ops, zone, outer);
            }
        }
    }
    Decision::Linearizable
}

/// An operation for a person: `p3 read → 5 (line 12)`, or the initial value's write.
fn at(ops: &[&Operation], i: Option<usize>) -> String {
    match i {
        Some(i) => format!("{} (line {})", super::describe_op(ops[i]), ops[i].line),
        None => "the initial value".into(),
    }
}

fn value_of(ops: &[&Operation], zone: Zone) -> String {
    match zone.s.1.or(zone.f.1) {
        Some(i) => written(ops[i]).unwrap_or(&ops[i].output).to_string(),
        None => "the initial value".into(),
    }
}

/// The failure of two overlapping forward zones `a` (starting first) and `b`.
fn overlap(ops: &[&Operation], a: Zone, b: Zone) -> Decision {
    let why = format!(
        "{} had to be the register's value from when {} returned until {} was invoked, and {} \
         from when {} returned until {} was invoked; those windows overlap, so one value would \
         have been overwritten while it was still to be read",
        value_of(ops, a),
        at(ops, a.f.1),
        at(ops, a.s.1),
        value_of(ops, b),
        at(ops, b.f.1),
        at(ops, b.s.1),
    );
    Decision::NotLinearizable {
        op: b
            .s
            .1
            .or(a.s.1)
            .expect("a forward zone ends at an operation"),
        why,
    }
}

/// The failure of a backward zone `zone` inside the forward zone `outer`.
fn inside(ops: &[&Operation], zone: Zone, outer: Zone) -> Decision {
    let why = format!(
        "{} was written and read entirely between {} and {}, while {} had to stay the \
         register's value from when {} returned until {} was invoked",
        value_of(ops, zone),
        at(ops, zone.s.1),
        at(ops, zone.f.1),
        value_of(ops, outer),
        at(ops, outer.f.1),
        at(ops, outer.s.1),
    );
    Decision::NotLinearizable {
        op: zone.s.1.or(outer.s.1).expect("a zone ends at an operation"),
        why,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn op(f: &str, value: i64, call: u64, ret: u64) -> Operation {
        Operation::test_of(f, json!(value), Status::Ok, call, ret)
    }

    fn decide_all(ops: &[Operation]) -> Option<Decision> {
        let refs: Vec<&Operation> = ops.iter().collect();
        let intervals: Vec<_> = ops.iter().map(|o| (o.call, o.ret)).collect();
        decide(&refs, &intervals, &Value::Null)
    }

    #[test]
    fn a_sequence_of_writes_and_reads_is_linearizable() {
        let ops = [
            op("write", 1, 0, 1),
            op("read", 1, 2, 3),
            op("write", 2, 4, 5),
            op("read", 2, 4, 6),
        ];
        assert_eq!(decide_all(&ops), Some(Decision::Linearizable));
    }

    #[test]
    fn a_write_inside_a_forward_zone_fails() {
        // 1 must stay from 1 to 4 (its read is invoked at 4); 2 was written within.
        let ops = [
            op("write", 1, 0, 1),
            op("write", 2, 2, 3),
            op("read", 1, 4, 5),
        ];
        let Some(Decision::NotLinearizable { why, .. }) = decide_all(&ops) else {
            panic!("{:?}", decide_all(&ops));
        };
        assert!(
            why.contains("2 was written and read entirely between"),
            "{why}"
        );
    }

    #[test]
    fn overlapping_forward_zones_fail() {
        // Both writes returned before either read began, and the reads disagree.
        let ops = [
            op("write", 1, 0, 1),
            op("write", 2, 0, 1),
            op("read", 1, 2, 3),
            op("read", 2, 2, 3),
        ];
        let Some(Decision::NotLinearizable { why, .. }) = decide_all(&ops) else {
            panic!("{:?}", decide_all(&ops));
        };
        assert!(why.contains("overlap"), "{why}");
    }

    #[test]
    fn cas_or_a_repeated_value_is_not_for_zones() {
        let mut cas = op("write", 1, 0, 1);
        cas.f = "cas".into();
        assert_eq!(decide_all(&[cas]), None);
        let twice = [op("write", 1, 0, 1), op("write", 1, 2, 3)];
        assert_eq!(decide_all(&twice), None);
    }
}
