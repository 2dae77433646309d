//! The entry list of the search: a call and a return entry per operation, in time order, as
//! a doubly linked list from which an operation's two entries are lifted when it is
//! linearized and put back, in reverse order, when the search backtracks.
//!
//! Order: by time; at equal times calls come before returns, because intervals are closed
//! (two operations that touch at one instant may be ordered either way). An operation that
//! completed `info` returns at infinity: after every finite entry.

const NIL: u32 = u32::MAX;

/// Node `2i` is operation `i`'s call, `2i + 1` its return; node `2n` is the head.
pub(super) struct Entries {
    next: Vec<u32>,
    prev: Vec<u32>,
    head: u32,
}

/// What the walk found at a node.
pub(super) enum Entry {
    Call(usize),
    Return(usize),
}

impl Entries {
    /// `intervals[i]` is operation `i`'s (call, return) time; `None` returns at infinity.
    pub(super) fn new(intervals: &[(u64, Option<u64>)]) -> Self {
        let n = intervals.len();
        let mut order: Vec<u32> = (0..2 * n as u32).collect();
        let sort_key = |node: u32| {
            let (call, ret) = intervals[node as usize / 2];
            if node % 2 == 0 {
                (call, 0)
            } else {
                (ret.unwrap_or(u64::MAX), 1)
            }
        };
        order.sort_by_key(|&node| (sort_key(node), node));
        let head = 2 * n as u32;
        let mut next = vec![NIL; 2 * n + 1];
        let mut prev = vec![NIL; 2 * n + 1];
        let mut last = head;
        for node in order {
            next[last as usize] = node;
            prev[node as usize] = last;
            last = node;
        }
        Entries { next, prev, head }
    }

    /// The first entry still in the list.
    pub(super) fn first(&self) -> Option<u32> {
        self.after(self.head)
    }

    /// The entry after `node`.
    pub(super) fn after(&self, node: u32) -> Option<u32> {
        let next = self.next[node as usize];
        (next != NIL).then_some(next)
    }

    pub(super) fn entry(node: u32) -> Entry {
        let op = node as usize / 2;
        if node % 2 == 0 {
            Entry::Call(op)
        } else {
            Entry::Return(op)
        }
    }

    /// The call node of operation `op`.
    pub(super) fn call_node(op: usize) -> u32 {
        2 * op as u32
    }

    fn unlink(&mut self, node: u32) {
        let (p, n) = (self.prev[node as usize], self.next[node as usize]);
        self.next[p as usize] = n;
        if n != NIL {
            self.prev[n as usize] = p;
        }
    }

    fn relink(&mut self, node: u32) {
        let (p, n) = (self.prev[node as usize], self.next[node as usize]);
        self.next[p as usize] = node;
        if n != NIL {
            self.prev[n as usize] = node;
        }
    }

    /// Removes operation `op`'s call and return entries.
    pub(super) fn lift(&mut self, op: usize) {
        self.unlink(2 * op as u32);
        self.unlink(2 * op as u32 + 1);
    }

    /// Puts back what the latest [`lift`](Self::lift) still in effect removed; lifts and
    /// unlifts must nest like a stack.
    pub(super) fn unlift(&mut self, op: usize) {
        self.relink(2 * op as u32 + 1);
        self.relink(2 * op as u32);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn walk(e: &Entries) -> Vec<String> {
        let mut out = Vec::new();
        let mut node = e.first();
        while let Some(n) = node {
            out.push(match Entries::entry(n) {
                Entry::Call(i) => format!("c{i}"),
                Entry::Return(i) => format!("r{i}"),
            });
            node = e.after(n);
        }
        out
    }

    #[test]
    fn orders_calls_first_at_equal_times_and_info_last() {
        let e = Entries::new(&[(0, Some(5)), (5, Some(6)), (1, None), (2, Some(3))]);
        assert_eq!(walk(&e), ["c0", "c2", "c3", "r3", "c1", "r0", "r1", "r2"]);
    }

    #[test]
    fn lift_and_unlift_nest() {
        let mut e = Entries::new(&[(0, Some(5)), (1, Some(6)), (2, Some(3))]);
        let before = walk(&e);
        e.lift(2);
        e.lift(0);
        assert_eq!(walk(&e), ["c1", "r1"]);
        e.unlift(0);
        assert_eq!(walk(&e), ["c0", "c1", "r0", "r1"]);
        e.unlift(2);
        assert_eq!(walk(&e), before);
    }
}
