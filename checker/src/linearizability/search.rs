//! The WGL search (Wing & Gong, with Lowe's memoisation) over one object's operations.
//!
//! Walk the entry list. At a call entry, try to linearize that operation now: step the model;
//! if the step is legal and (linearized set, new state) was never seen, remember it, push,
//! lift the operation's entries and restart from the head. At a return entry, the operation
//! returning there was not linearized and nothing pending could be placed before it: pop the
//! last linearized operation, put its entries back, restore the state and try the next
//! candidate after it. An empty stack at a return entry means not linearizable; an empty list
//! means linearizable.
//!
//! One reduction prunes the candidates: an operation that only observes (a read, a cas
//! mismatch: wherever it can happen it changes nothing) and can happen now is linearized first
//! and alone. Any linearization from here can be rearranged to start with it (it is legal now,
//! every operation that had to precede it already has — its call is before every pending
//! return — and moving a step that changes nothing leaves the others legal), so
//! the configuration succeeds exactly when the one after it does: the other candidates need
//! not be tried, and when that branch fails the search backtracks past it.

use std::hash::BuildHasher;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Instant;

use hashbrown::HashTable;
use hashbrown::hash_table::Entry as Slot;

use super::bitset::LinearizedSet;
use super::entries::{Entries, Entry};
use crate::model::Model;

/// Limits shared by every search of one check.
pub(super) struct Budget {
    /// Stop with [`Stop::Timeout`] after this instant.
    pub(super) deadline: Option<Instant>,
    /// Set when another part failed: stop with [`Stop::Cancelled`].
    pub(super) cancel: AtomicBool,
    /// Bytes held by all caches of this check.
    pub(super) cache_bytes: AtomicU64,
    /// Stop with [`Stop::CacheFull`] past this many bytes.
    pub(super) max_cache_bytes: u64,
}

/// Why a search stopped without a verdict.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Stop {
    Timeout,
    Cancelled,
    CacheFull,
}

/// What a search found.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Found {
    Linearizable,
    /// Not linearizable. `prefix` is the longest linearization the search built (operation
    /// indices in order) before it met the return of `failing`, which it could not place.
    NotLinearizable {
        prefix: Vec<usize>,
        failing: usize,
    },
    Stopped(Stop),
}

/// A cache entry: a linearized set (its words in the search's arena) and the state it led to.
struct Seen<S> {
    hash: u64,
    /// Index of the set's words in [`Search::arena`], in units of the set's length.
    at: usize,
    state: S,
}

/// How often (in loop iterations) the budget is looked at.
const CHECK_EVERY: u64 = 1 << 10;

/// One search over one object's compiled operations. It can run in slices: [`Search::run`]
/// stops after a given number of steps and the next call resumes where it stopped, so a
/// scheduler can interleave many searches and a quick FAIL never waits behind a slow one.
pub(super) struct Search<'a, M: Model> {
    model: &'a M,
    ops: &'a [M::Op],
    budget: &'a Budget,
    entries: Entries,
    /// The next entry to look at; `None` when the list is empty (linearizable).
    node: Option<u32>,
    linearized: LinearizedSet,
    state: M::State,
    /// Linearized operations, with the state before each and whether it was forced (changed
    /// nothing, so its configuration had no other candidate worth trying).
    stack: Vec<(usize, M::State, bool)>,
    cache: HashTable<Seen<M::State>>,
    /// The words of every cached linearized set, one after another (one allocation, not one
    /// per entry).
    arena: Vec<u64>,
    /// (depth, failing op) of the deepest failure so far, and the linearization it had.
    best: Option<(usize, usize)>,
    best_prefix: Vec<usize>,
    entry_bytes: u64,
    cache_bytes: u64,
    /// The part of `cache_bytes` added to the budget's total (given back on drop).
    reported_bytes: u64,
    iterations: u64,
    /// Per operation, the one it may only be linearized after (interchangeable operations
    /// taken in call order); empty when there are none.
    waits_for: &'a [Option<usize>],
    /// An operation whose return the caller wants to watch (see [`Search::states_at`]).
    focus: Option<usize>,
    focus_states: Vec<M::State>,
    focus_cap: usize,
}

impl<M: Model> Drop for Search<'_, M> {
    fn drop(&mut self) {
        self.budget
            .cache_bytes
            .fetch_sub(self.reported_bytes, Ordering::Relaxed);
    }
}

impl<'a, M: Model> Search<'a, M> {
    /// A search over `ops`, where `intervals[i]` is op `i`'s (call, return) time.
    pub(super) fn new(
        model: &'a M,
        ops: &'a [M::Op],
        intervals: &[(u64, Option<u64>)],
        budget: &'a Budget,
    ) -> Self {
        let n = ops.len();
        let entries = Entries::new(intervals);
        Search {
            model,
            ops,
            budget,
            node: None,
            entries,
            linearized: LinearizedSet::new(n),
            state: model.init(),
            stack: Vec::with_capacity(n),
            cache: HashTable::new(),
            arena: Vec::new(),
            best: None,
            best_prefix: Vec::new(),
            entry_bytes: (std::mem::size_of::<Seen<M::State>>() + 8 * n.div_ceil(64) + 8) as u64,
            cache_bytes: 0,
            reported_bytes: 0,
            iterations: 0,
            waits_for: &[],
            focus: None,
            focus_states: Vec::new(),
            focus_cap: 0,
        }
        .at_first_candidate()
    }

    /// Starts the walk of the current configuration: at the first callable operation that
    /// changes nothing, if there is one (it is the only candidate worth trying), else at the
    /// head of the list.
    fn at_first_candidate(mut self) -> Self {
        self.node = self.first_candidate();
        self
    }

    fn first_candidate(&self) -> Option<u32> {
        let first = self.entries.first();
        let mut node = first;
        while let Some(at) = node {
            let Entry::Call(op) = Entries::entry(at) else {
                break;
            };
            if self.model.observes_now(&self.state, &self.ops[op]) {
                return Some(at);
            }
            node = self.entries.after(at);
        }
        first
    }

    /// Makes the search start from `state` instead of the model's initial one.
    pub(super) fn starting_at(mut self, state: M::State) -> Self {
        self.state = state;
        self.at_first_candidate()
    }

    /// Makes the search linearize operation `i` only after `waits_for[i]`, when that names one:
    /// for interchangeable operations, which need not be tried in every order.
    pub(super) fn waiting(mut self, waits_for: &'a [Option<usize>]) -> Self {
        self.waits_for = waits_for;
        self
    }

    /// Makes the search collect, up to `cap` distinct ones, the states the model is in each
    /// time the walk reaches `op`'s return with `op` not linearized: the states it could be
    /// in just before `op` had to take effect. Such a search ignores cancellation.
    pub(super) fn states_at(mut self, op: usize, cap: usize) -> Self {
        self.focus = Some(op);
        self.focus_cap = cap;
        self
    }

    /// The states collected for [`states_at`](Self::states_at).
    pub(super) fn focus_states(&self) -> &[M::State] {
        &self.focus_states
    }

    /// The most operations any linearization the search built so far held.
    pub(super) fn progress(&self) -> usize {
        self.best
            .map_or(0, |(depth, _)| depth)
            .max(self.stack.len())
    }

    /// Looks at the budget: `Some` when it says stop.
    fn over_budget(&mut self) -> Option<Stop> {
        let delta = self.cache_bytes - self.reported_bytes;
        let total = self.budget.cache_bytes.fetch_add(delta, Ordering::Relaxed) + delta;
        self.reported_bytes = self.cache_bytes;
        if total > self.budget.max_cache_bytes {
            return Some(Stop::CacheFull);
        }
        if self.focus.is_none() && self.budget.cancel.load(Ordering::Relaxed) {
            return Some(Stop::Cancelled);
        }
        if self.budget.deadline.is_some_and(|d| Instant::now() >= d) {
            return Some(Stop::Timeout);
        }
        None
    }

    /// Runs at most `slice` steps: `Some` verdict, or `None` to be resumed later.
    pub(super) fn run(&mut self, slice: u64) -> Option<Found> {
        if let Some(stop) = self.over_budget() {
            return Some(Found::Stopped(stop));
        }
        let end = self.iterations.saturating_add(slice);
        while let Some(at) = self.node {
            self.iterations += 1;
            if self.iterations % CHECK_EVERY == 0 {
                if let Some(stop) = self.over_budget() {
                    return Some(Found::Stopped(stop));
                }
            }
            if self.iterations >= end {
                return None;
            }
            let ended = match Entries::entry(at) {
                Entry::Call(op) => self.at_call(op, at),
                Entry::Return(op) => self.at_return(op),
            };
            if ended.is_some() {
                return ended;
            }
        }
        Some(Found::Linearizable)
    }

    /// At operation `op`'s call entry (node `at`): linearizes it if it can happen now and the
    /// configuration after it is new, and walks on. `Some` when the search ends.
    fn at_call(&mut self, op: usize, at: u32) -> Option<Found> {
        let waiting = (self.waits_for.get(op).copied().flatten())
            .is_some_and(|before| !self.linearized.contains(before));
        if waiting {
            self.node = self.entries.after(at);
            return None;
        }
        let Some(next_state) = self.model.step(&self.state, &self.ops[op]) else {
            self.node = self.entries.after(at);
            return None;
        };
        let forced = self.model.only_observes(&self.ops[op]);
        self.linearized.insert(op);
        if self.remember(&next_state) {
            let previous = std::mem::replace(&mut self.state, next_state);
            self.stack.push((op, previous, forced));
            self.entries.lift(op);
            self.node = self.first_candidate();
            return None;
        }
        self.linearized.remove(op);
        if forced {
            // The configuration after it failed before, so this one fails.
            return self.backtrack();
        }
        self.node = self.entries.after(at);
        None
    }

    /// Caches (the linearized set, `state`); false when it was there already.
    fn remember(&mut self, state: &M::State) -> bool {
        let hash = self.linearized.hash() ^ rustc_hash::FxBuildHasher.hash_one(state);
        let words = self.linearized.words();
        let arena = &mut self.arena;
        let slot = self.cache.entry(
            hash,
            |seen| {
                seen.hash == hash
                    && arena[seen.at * words.len()..][..words.len()] == *words
                    && seen.state == *state
            },
            |seen| seen.hash,
        );
        let Slot::Vacant(slot) = slot else {
            return false;
        };
        self.cache_bytes += self.entry_bytes + self.model.heap_bytes(state) as u64;
        let at = arena.len() / words.len().max(1);
        arena.extend_from_slice(words);
        slot.insert(Seen {
            hash,
            at,
            state: state.clone(),
        });
        true
    }

    /// At operation `op`'s return entry, with `op` not linearized: this configuration fails.
    /// Notes the deepest failure (and the state, when `op` is watched), then backtracks.
    fn at_return(&mut self, op: usize) -> Option<Found> {
        let depth = self.stack.len();
        if self.best.is_none_or(|(best, _)| depth > best) {
            self.best = Some((depth, op));
            self.best_prefix.clear();
            self.best_prefix
                .extend(self.stack.iter().map(|(i, _, _)| *i));
        }
        if self.focus == Some(op)
            && self.focus_states.len() < self.focus_cap
            && !self.focus_states.contains(&self.state)
        {
            self.focus_states.push(self.state.clone());
        }
        self.backtrack()
    }

    /// The current configuration failed: undoes linearized operations — past every forced one,
    /// whose configuration had no other candidate — and resumes at the next candidate of the
    /// first configuration that has one. `Some` when the stack runs out: not linearizable.
    fn backtrack(&mut self) -> Option<Found> {
        loop {
            let Some((last, previous, forced)) = self.stack.pop() else {
                let (_, failing) = self.best.expect("set at the first return entry");
                return Some(Found::NotLinearizable {
                    prefix: std::mem::take(&mut self.best_prefix),
                    failing,
                });
            };
            self.state = previous;
            self.linearized.remove(last);
            self.entries.unlift(last);
            if !forced {
                self.node = self.entries.after(Entries::call_node(last));
                return None;
            }
        }
    }
}
