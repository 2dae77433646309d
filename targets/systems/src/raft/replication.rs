//! Log replication (section 5.3 of the paper): the leader's view of its followers,
//! AppendEntries with the consistency check and a fast back-off hint, the commit rule (only
//! entries of the leader's own term commit by counting, section 5.4.2), and applying committed
//! entries to the store.

use serde_json::json;

use super::election::Role;
use super::messages::{AppendEntries, Entry, Message, Record};
use super::timers::Timer;
use super::{Bug, RaftNode};
use crate::{ClientReply, NodeId, Output};

/// Entries sent in one AppendEntries at most.
const BATCH: usize = 64;

/// What a leader knows of its followers.
#[derive(Clone, Debug)]
pub(super) struct Leader {
    pub(super) next: Vec<u64>,
    pub(super) matched: Vec<u64>,
    /// The latest heartbeat round sent, and the latest round each follower echoed.
    pub(super) round: u64,
    pub(super) echoed: Vec<u64>,
    /// The index of this leader's first entry (its no-op).
    pub(super) first_index: u64,
}

impl Leader {
    /// A leader of `nodes` whose first entry is at `first_index`, with what each follower is
    /// known to hold.
    pub(super) fn new(nodes: usize, first_index: u64, matched: Vec<u64>) -> Self {
        Leader {
            next: vec![first_index; nodes],
            matched,
            round: 0,
            echoed: vec![0; nodes],
            first_index,
        }
    }
}

impl RaftNode {
    /// Sends every follower what it is missing (a heartbeat if nothing), in a new round.
    pub(super) fn broadcast(&mut self) {
        let Role::Leader(leader) = &mut self.role else {
            return;
        };
        leader.round += 1;
        let next = self.now.mono_ms + self.settings.heartbeat_ms;
        self.timers.set(Timer::Heartbeat, next);
        for peer in self.others() {
            self.send_append(peer);
        }
    }

    fn send_append(&mut self, peer: NodeId) {
        let Role::Leader(leader) = &self.role else {
            return;
        };
        let next = leader.next[peer as usize].max(1);
        let prev_index = next - 1;
        let entries: Vec<Entry> = self
            .log
            .iter()
            .skip(prev_index as usize)
            .take(BATCH)
            .cloned()
            .collect();
        let msg = Message::Append(AppendEntries {
            term: self.term,
            prev_index,
            prev_term: self.term_at(prev_index),
            entries,
            commit: self.commit,
            round: leader.round,
        });
        self.send(peer, msg);
    }

    /// Moves the commit index to the highest index a majority holds, of the current term
    /// (unless a bug says otherwise).
    pub(super) fn advance_commit(&mut self) {
        let Role::Leader(leader) = &self.role else {
            return;
        };
        if self.bug(Bug::EarlyCommit) {
            self.commit = self.last_index();
        } else {
            let mut matched = leader.matched.clone();
            matched.sort_unstable_by(|a, b| b.cmp(a));
            let majority_index = matched[self.majority() - 1];
            let own_term = self.term_at(majority_index) == self.term;
            if majority_index > self.commit && (own_term || self.bug(Bug::NoTermCheck)) {
                self.commit = majority_index;
            }
        }
        self.apply();
    }

    /// Applies the committed entries not yet applied, answering the clients that wait for
    /// them, then the reads they make servable.
    fn apply(&mut self) {
        while self.applied < self.commit && self.applied < self.last_index() {
            self.applied += 1;
            let entry = self.log[self.applied as usize - 1].clone();
            self.outbox.push_back(Output::Note(json!({
                "applied": self.applied,
                "term": entry.term,
                "command": entry.command,
            })));
            let result = self.kv.apply(entry.command);
            if let Some((client, term, _)) = self.waiting.remove(&self.applied) {
                if term == entry.term {
                    let reply = result.unwrap_or(ClientReply::Timeout("superseded".into()));
                    self.reply(client, reply);
                } else {
                    self.reply(
                        client,
                        ClientReply::Timeout("the entry was replaced by another leader's".into()),
                    );
                }
            }
        }
        self.serve_reads();
    }

    /// An AppendEntries from the leader `from`.
    /// Where a leader whose entry at `prev_index` does not match should go back to: past the
    /// whole conflicting term at once (or to this log's end if it is shorter).
    fn back_off_hint(&self, prev_index: u64) -> u64 {
        if prev_index > self.last_index() {
            return self.last_index();
        }
        let conflict = self.term_at(prev_index);
        let mut i = prev_index;
        while i > 0 && self.term_at(i) == conflict {
            i -= 1;
        }
        i
    }

    /// Stores `entries` after `prev_index`: an entry that conflicts with this log truncates it
    /// there; what changed is persisted in one record.
    fn store_entries(&mut self, prev_index: u64, entries: Vec<Entry>) {
        let mut changed_from = None;
        for (i, entry) in entries.into_iter().enumerate() {
            let index = prev_index + 1 + i as u64;
            if index <= self.last_index() {
                if self.term_at(index) == entry.term {
                    continue;
                }
                self.log.truncate(index as usize - 1);
            }
            changed_from.get_or_insert(index);
            self.log.push(entry);
        }
        if let Some(from_index) = changed_from {
            let entries = self.log[from_index as usize - 1..].to_vec();
            self.outbox.push_back(Output::Persist(Record::Entries {
                from: from_index,
                entries,
            }));
        }
    }

    pub(super) fn on_append(&mut self, from: NodeId, append: AppendEntries) {
        let AppendEntries {
            term,
            prev_index,
            prev_term,
            entries,
            commit,
            round,
        } = append;
        if term < self.term {
            let reply = Message::AppendReply {
                term: self.term,
                success: false,
                index: self.last_index(),
                round,
            };
            self.send(from, reply);
            return;
        }
        if term > self.term || !matches!(self.role, Role::Follower) || self.leader != Some(from) {
            self.become_follower(term, Some(from));
        }
        self.heard_leader_ms = Some(self.now.mono_ms);
        self.reset_election();
        if prev_index > self.last_index() || self.term_at(prev_index) != prev_term {
            let hint = self.back_off_hint(prev_index);
            self.send(
                from,
                Message::AppendReply {
                    term: self.term,
                    success: false,
                    index: hint,
                    round,
                },
            );
            return;
        }
        let last_new = prev_index + entries.len() as u64;
        self.store_entries(prev_index, entries);
        if commit > self.commit {
            self.commit = commit.min(last_new);
        }
        self.apply();
        self.send(
            from,
            Message::AppendReply {
                term: self.term,
                success: true,
                index: last_new,
                round,
            },
        );
    }

    /// A follower's answer to an AppendEntries.
    pub(super) fn on_append_reply(
        &mut self,
        from: NodeId,
        term: u64,
        success: bool,
        index: u64,
        round: u64,
    ) {
        if term > self.term {
            self.become_follower(term, None);
            return;
        }
        let Role::Leader(leader) = &mut self.role else {
            return;
        };
        if term < self.term {
            return;
        }
        let f = from as usize;
        leader.echoed[f] = leader.echoed[f].max(round);
        // Only a reply that tells something new sends more at once: a duplicated or stale
        // reply must not start a second stream of appends to the same follower (under
        // duplication they would multiply without end). The heartbeat resends anyway.
        if success {
            let news = index > leader.matched[f];
            leader.matched[f] = leader.matched[f].max(index);
            leader.next[f] = leader.matched[f] + 1;
            let behind = leader.next[f] <= self.log.len() as u64;
            self.advance_commit();
            if behind && news {
                self.send_append(from);
            }
        } else {
            let before = leader.next[f];
            leader.next[f] = (index + 1).min(leader.next[f].saturating_sub(1)).max(1);
            if leader.next[f] != before {
                self.send_append(from);
            }
        }
        self.serve_reads();
    }
}
