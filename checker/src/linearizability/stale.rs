//! A stale read proved without a search: on a register whose written values are unique, a
//! read of `v` is impossible when `v` was written (by the one operation that writes it) and
//! then overwritten by an operation that certainly happened, invoked after that write
//! returned and returning before the read was invoked. Real time orders the three — write,
//! overwrite, read — and nothing writes `v` again, so the read cannot see it. The same for a
//! read of the initial value that no operation writes. Found in O(n log n), it decides at once
//! the most common failure, which a search would have to prove by trying every order of
//! everything before it.

use serde_json::Value;

use super::reduce::{Key, written};
use crate::history::{Operation, Status};

/// A read proved stale: positions in the key's operations.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct StaleRead {
    /// The read.
    pub(super) read: usize,
    /// The only operation that writes the value read; `None` for the initial value.
    pub(super) write: Option<usize>,
    /// An acknowledged write (or successful cas) that certainly came after it and before the
    /// read.
    pub(super) overwrite: usize,
}

/// The earliest (in invocation order) read of `ops` proved stale, if any. `intervals` are the
/// operations' (call, return), `info` writes bounded as [`super::reduce`] bounds them; under
/// strict semantics only (a null read there observes null).
pub(super) fn find(
    ops: &[&Operation],
    intervals: &[(u64, Option<u64>)],
    initial: &Value,
) -> Option<StaleRead> {
    let mut writers: std::collections::HashMap<Key<'_>, Vec<usize>> = Default::default();
    // Operations that certainly wrote, by invocation: (call, return, position).
    let mut certain: Vec<(u64, u64, usize)> = Vec::new();
    for (i, op) in ops.iter().enumerate() {
        if let Some(v) = written(op) {
            writers.entry(Key(v)).or_default().push(i);
            if let (Status::Ok, (call, Some(ret))) = (op.status, intervals[i]) {
                certain.push((call, ret, i));
            }
        }
    }
    if certain.is_empty() {
        return None;
    }
    certain.sort_unstable();
    // first_return[j]: among certain[j..], the earliest return and who returned then.
    let mut first_return = vec![(u64::MAX, 0); certain.len() + 1];
    for j in (0..certain.len()).rev() {
        let (_, ret, i) = certain[j];
        first_return[j] = first_return[j + 1].min((ret, i));
    }
    // The earliest return of a certain write invoked after `t` (any, for `None`).
    let overwritten_by = |after: Option<u64>| {
        let from = after.map_or(0, |t| certain.partition_point(|&(call, _, _)| call <= t));
        first_return[from]
    };
    for (r, op) in ops.iter().enumerate() {
        if op.status != Status::Ok || !op.is_read() {
            continue;
        }
        let (read_call, _) = intervals[r];
        let who_wrote = writers.get(&Key(&op.output)).map(Vec::as_slice);
        let (write, written_by) = match who_wrote {
            None if op.output == *initial => (None, None),
            Some([w]) if op.output != *initial => match intervals[*w] {
                (_, Some(ret)) => (Some(*w), Some(ret)),
                (_, None) => continue,
            },
            _ => continue,
        };
        let (ret, overwrite) = overwritten_by(written_by);
        if ret < read_call && Some(overwrite) != write {
            return Some(StaleRead {
                read: r,
                write,
                overwrite,
            });
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn op(f: &str, value: Value, status: Status, call: u64, ret: u64) -> Operation {
        let mut op = Operation::test_of(f, value, status, call, ret);
        op.ret = Some(ret);
        op
    }

    fn find_in(ops: &[Operation]) -> Option<StaleRead> {
        let refs: Vec<&Operation> = ops.iter().collect();
        let intervals: Vec<_> = ops.iter().map(|o| (o.call, o.ret)).collect();
        find(&refs, &intervals, &Value::Null)
    }

    #[test]
    fn a_value_overwritten_before_the_read_began_is_stale() {
        let ops = [
            op("write", json!(1), Status::Ok, 0, 1),
            op("write", json!(2), Status::Ok, 2, 3),
            op("read", json!(1), Status::Ok, 4, 5),
        ];
        assert_eq!(
            find_in(&ops),
            Some(StaleRead {
                read: 2,
                write: Some(0),
                overwrite: 1
            })
        );
    }

    #[test]
    fn overlaps_leave_room_and_prove_nothing() {
        // The overwrite was invoked before the write returned: it may have come first.
        let ops = [
            op("write", json!(1), Status::Ok, 0, 2),
            op("write", json!(2), Status::Ok, 1, 3),
            op("read", json!(1), Status::Ok, 4, 5),
        ];
        assert_eq!(find_in(&ops), None);
        // The overwrite returned after the read was invoked: the read may have come first.
        let ops = [
            op("write", json!(1), Status::Ok, 0, 1),
            op("write", json!(2), Status::Ok, 2, 5),
            op("read", json!(1), Status::Ok, 4, 6),
        ];
        assert_eq!(find_in(&ops), None);
        // The overwrite may not have happened.
        let ops = [
            op("write", json!(1), Status::Ok, 0, 1),
            op("write", json!(2), Status::Info, 2, 3),
            op("read", json!(1), Status::Ok, 4, 5),
        ];
        assert_eq!(find_in(&ops), None);
        // Two writes of 1: the second may be the one read.
        let ops = [
            op("write", json!(1), Status::Ok, 0, 1),
            op("write", json!(2), Status::Ok, 2, 3),
            op("write", json!(1), Status::Info, 3, 9),
            op("read", json!(1), Status::Ok, 4, 5),
        ];
        assert_eq!(find_in(&ops), None);
    }

    #[test]
    fn a_read_of_the_initial_value_after_a_write_is_stale() {
        let ops = [
            op("write", json!(2), Status::Ok, 0, 1),
            op("read", json!(null), Status::Ok, 2, 3),
        ];
        assert_eq!(
            find_in(&ops),
            Some(StaleRead {
                read: 1,
                write: None,
                overwrite: 0
            })
        );
    }
}
