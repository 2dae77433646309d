//! Raft's timers, in quinn's shape: one enum, one table of deadlines on the node's monotonic
//! clock (milliseconds), and the next deadline as their minimum. A new timer is a new variant
//! here; what happens when each one fires is one match, in [`super::RaftNode`]'s
//! `on_timeouts`.
//!
//! A timer is armed only while it can fire — the election timer while the node does not lead,
//! the heartbeat timer while it leads, the vote-retry timer while it canvasses — so the next
//! deadline is always one a runtime must wake up for.

/// Every timer of a Raft node.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Timer {
    /// A follower or candidate that hears from no leader by then stands for election (after a
    /// pre-vote with `pre-vote=true`). Randomised in [election-ms, 2 × election-ms).
    Election,
    /// A leader's next round of AppendEntries (heartbeats when there is nothing new).
    Heartbeat,
    /// A (pre-)candidate asks again the peers that have not answered.
    VoteRetry,
}

impl Timer {
    const COUNT: usize = 3;

    fn slot(self) -> usize {
        match self {
            Timer::Election => 0,
            Timer::Heartbeat => 1,
            Timer::VoteRetry => 2,
        }
    }
}

/// When each timer fires, if it is armed.
#[derive(Clone, Debug, Default)]
pub(super) struct TimerTable {
    deadlines: [Option<u64>; Timer::COUNT],
}

impl TimerTable {
    /// Arms `timer` to fire at `at`.
    pub(super) fn set(&mut self, timer: Timer, at: u64) {
        self.deadlines[timer.slot()] = Some(at);
    }

    /// Disarms `timer`.
    pub(super) fn stop(&mut self, timer: Timer) {
        self.deadlines[timer.slot()] = None;
    }

    /// Whether `timer` is armed and its deadline has come.
    pub(super) fn expired(&self, timer: Timer, now: u64) -> bool {
        self.deadlines[timer.slot()].is_some_and(|at| now >= at)
    }

    /// The earliest armed deadline.
    pub(super) fn next(&self) -> Option<u64> {
        self.deadlines.iter().flatten().copied().min()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_next_deadline_is_the_earliest_armed_one() {
        let mut timers = TimerTable::default();
        assert_eq!(timers.next(), None);
        timers.set(Timer::Election, 300);
        timers.set(Timer::VoteRetry, 120);
        assert_eq!(timers.next(), Some(120));
        assert!(timers.expired(Timer::VoteRetry, 120));
        assert!(!timers.expired(Timer::Election, 299));
        assert!(
            !timers.expired(Timer::Heartbeat, 10_000),
            "unarmed never fires"
        );
        timers.stop(Timer::VoteRetry);
        assert_eq!(timers.next(), Some(300));
    }
}
