//! Independent segments of a register's history: cut where every earlier operation has
//! returned before the next one is invoked (a quiescent point) *and* the register's value there
//! is forced — one acknowledged write was invoked after every other write of the prefix had
//! returned, so every linearization of the prefix ends with it. Then the history is
//! linearizable exactly when the prefix is and the rest is from that value: real time puts
//! every operation of the prefix before every later one, and the prefix can end in one state
//! only. Each segment is searched on its own, from its forced state, so a failure late in a
//! long history does not make the search try every order of everything before it (as Knossos'
//! and Porcupine's searches would).

use crate::history::{Operation, Status};

/// The fewest operations a segment is cut at (a search per handful of operations costs more
/// than it saves).
const MIN_SEGMENT: usize = 64;

/// One segment: operations `lo..hi` of the key, searched from the value `start` wrote.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) struct Segment {
    pub(super) lo: usize,
    pub(super) hi: usize,
    /// The write whose value the segment starts from; `None`: the initial value.
    pub(super) start: Option<usize>,
    /// Per operation of the segment, the interchangeable one it waits for (segment positions).
    pub(super) waits_for: Vec<Option<usize>>,
}

/// Whether `op` may change the register (a write, a cas that did not mismatch).
fn writes(op: &Operation) -> bool {
    match op.f.as_str() {
        "write" | "put" => true,
        "cas" => op.status != Status::Mismatch,
        _ => false,
    }
}

/// Cuts a register key's operations (in invocation order, with their reduced `intervals` and
/// `waits_for`) into segments; one segment when there is no cut.
pub(super) fn cut(
    ops: &[&Operation],
    intervals: &[(u64, Option<u64>)],
    waits_for: &[Option<usize>],
) -> Vec<Segment> {
    let mut cuts: Vec<(usize, Option<usize>)> = Vec::new();
    let mut latest_return: Option<u64> = Some(0);
    // The last write invoked, and the latest return of the writes before it.
    let mut last_writer: Option<usize> = None;
    let mut before_last: Option<u64> = None;
    let mut since_cut = 0;
    for (i, op) in ops.iter().enumerate() {
        let (call, ret) = intervals[i];
        let quiescent = i > 0 && latest_return.is_some_and(|latest| latest < call);
        let forced = match last_writer {
            None => true,
            Some(w) => {
                let plain_write = matches!(ops[w].f.as_str(), "write" | "put");
                plain_write && before_last.is_none_or(|before| before < intervals[w].0)
            }
        };
        if quiescent && forced && since_cut >= MIN_SEGMENT {
            cuts.push((i, last_writer));
            since_cut = 0;
        }
        since_cut += 1;
        latest_return = match (latest_return, ret) {
            (Some(latest), Some(ret)) => Some(latest.max(ret)),
            _ => None,
        };
        if writes(op) {
            if let Some(w) = last_writer {
                let w_ret = intervals[w].1.unwrap_or(u64::MAX);
                before_last = Some(before_last.map_or(w_ret, |b| b.max(w_ret)));
            }
            last_writer = Some(i);
        }
    }
    let mut segments = Vec::with_capacity(cuts.len() + 1);
    let mut lo = 0;
    let mut start = None;
    for (hi, next_start) in cuts.into_iter().chain([(ops.len(), None)]) {
        let waits_for = waits_for
            .get(lo..hi)
            .map(|w| {
                w.iter()
                    .map(|before| before.and_then(|b| b.checked_sub(lo)))
                    .collect()
            })
            .unwrap_or_default();
        segments.push(Segment {
            lo,
            hi,
            start,
            waits_for,
        });
        lo = hi;
        start = next_start;
    }
    segments
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn op(f: &str, value: i64, call: u64, ret: u64) -> Operation {
        Operation::test_of(f, json!(value), Status::Ok, call, ret)
    }

    fn segments_of(ops: &[Operation]) -> Vec<(usize, usize, Option<usize>)> {
        let refs: Vec<&Operation> = ops.iter().collect();
        let intervals: Vec<_> = ops.iter().map(|o| (o.call, o.ret)).collect();
        cut(&refs, &intervals, &[])
            .into_iter()
            .map(|s| (s.lo, s.hi, s.start))
            .collect()
    }

    #[test]
    fn sequential_writes_are_cut_once_a_segment_is_long_enough() {
        let ops: Vec<Operation> = (0..200)
            .map(|i| op("write", i, 2 * i as u64, 2 * i as u64 + 1))
            .collect();
        assert_eq!(
            segments_of(&ops),
            [
                (0, 64, None),
                (64, 128, Some(63)),
                (128, 192, Some(127)),
                (192, 200, Some(191))
            ]
        );
    }

    #[test]
    fn no_cut_while_an_operation_is_pending_or_the_state_is_open() {
        // Every write overlaps the next: never quiescent.
        let overlapping: Vec<Operation> = (0..200)
            .map(|i| op("write", i, 2 * i as u64, 2 * i as u64 + 3))
            .collect();
        assert_eq!(segments_of(&overlapping).len(), 1);
        // Quiescent, but the last two writes overlap each other: either may be last.
        let mut open: Vec<Operation> = Vec::new();
        for i in 0..100u64 {
            open.push(op("write", 2 * i as i64, 10 * i, 10 * i + 4));
            open.push(op("write", 2 * i as i64 + 1, 10 * i + 1, 10 * i + 5));
        }
        assert_eq!(segments_of(&open).len(), 1);
    }
}
