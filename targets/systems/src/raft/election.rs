//! Leader election (section 5.2 of the paper, with the pre-vote and leader stickiness of
//! section 9.6): roles, canvasses, RequestVote and its answers, and stepping down.

use std::collections::BTreeSet;

use rand::RngExt;

use serde_json::json;

use super::messages::{Command, Entry, Message, Record};
use super::replication::Leader;
use super::timers::Timer;
use super::{Bug, RaftNode};
use crate::{NodeId, Output};

/// What a node is doing in its term.
#[derive(Clone, Debug)]
pub(super) enum Role {
    Follower,
    /// Asking for pre-votes before standing (`pre-vote=true`).
    PreCandidate(Canvass),
    Candidate(Canvass),
    Leader(Leader),
}

/// A (pre-)candidate's election: who granted and who answered at all (the peers that did not
/// are asked again when [`Timer::VoteRetry`] fires: the paper's servers retry RPCs that get no
/// response).
#[derive(Clone, Debug)]
pub(super) struct Canvass {
    votes: BTreeSet<NodeId>,
    answered: BTreeSet<NodeId>,
}

impl Canvass {
    /// A canvass with `id`'s own vote.
    fn new(id: NodeId) -> Self {
        Canvass {
            votes: BTreeSet::from([id]),
            answered: BTreeSet::from([id]),
        }
    }

    /// Notes `from`'s answer.
    fn count(&mut self, from: NodeId, granted: bool) {
        self.answered.insert(from);
        if granted {
            self.votes.insert(from);
        }
    }
}

impl RaftNode {
    /// Arms the election timer at a random point in [election-ms, 2 × election-ms).
    pub(super) fn reset_election(&mut self) {
        let e = self.settings.election_ms;
        let at = self.now.mono_ms + e + self.rng.random_range(0..e);
        self.timers.set(Timer::Election, at);
    }

    /// Steps down to follower in `term` (a newer term, or a leader of this one appeared).
    pub(super) fn become_follower(&mut self, term: u64, leader: Option<NodeId>) {
        if term > self.term {
            self.term = term;
            self.voted_for = None;
            self.persist_meta();
        }
        if matches!(self.role, Role::Leader(_)) {
            self.abandon_clients("leadership lost; the write may or may not be applied");
        }
        self.role = Role::Follower;
        self.leader = leader;
        self.timers.stop(Timer::Heartbeat);
        self.timers.stop(Timer::VoteRetry);
        self.reset_election();
    }

    /// Whether this node believes a leader exists: it leads, or heard from the leader within
    /// the shortest election timeout. With `pre-vote=true` such a node grants no (pre-)votes
    /// (leader stickiness, section 6 of the paper), so a node that was cut off cannot depose a
    /// working leader when it comes back.
    fn leader_is_alive(&self) -> bool {
        if !self.settings.pre_vote {
            return false;
        }
        matches!(self.role, Role::Leader(_))
            || self
                .heard_leader_ms
                .is_some_and(|at| self.now.mono_ms < at + self.settings.election_ms)
    }

    /// Asks for pre-votes: the node stands only if a majority would vote for it, so a node
    /// that cannot win does not raise everyone's term.
    pub(super) fn start_pre_vote(&mut self) {
        self.leader = None;
        self.role = Role::PreCandidate(self.new_canvass());
        self.reset_election();
        self.request_votes(self.term + 1, true, &self.others());
        self.maybe_stand();
    }

    /// Asks `peers` for their vote (or pre-vote) in `term`, with this node's last log
    /// position.
    fn request_votes(&mut self, term: u64, pre: bool, peers: &[NodeId]) {
        let (last_index, last_term) = (self.last_index(), self.term_at(self.last_index()));
        for &peer in peers {
            let msg = if pre {
                Message::PreVote {
                    term,
                    last_index,
                    last_term,
                }
            } else {
                Message::Vote {
                    term,
                    last_index,
                    last_term,
                }
            };
            self.send(peer, msg);
        }
    }

    /// A canvass that starts now, with this node's own vote; unanswered peers are asked again
    /// a heartbeat interval from now.
    fn new_canvass(&mut self) -> Canvass {
        let retry = self.now.mono_ms + self.settings.heartbeat_ms;
        self.timers.set(Timer::VoteRetry, retry);
        Canvass::new(self.id)
    }

    /// Asks again the peers that have not answered this (pre-)election, every heartbeat
    /// interval: a request lost to a partition or a peer's restart is not the end of it.
    pub(super) fn retry_vote_requests(&mut self) {
        let (pre, canvass) = match &self.role {
            Role::PreCandidate(canvass) => (true, canvass),
            Role::Candidate(canvass) => (false, canvass),
            _ => return,
        };
        let retry = self.now.mono_ms + self.settings.heartbeat_ms;
        let silent: Vec<NodeId> = (0..self.settings.nodes)
            .filter(|n| !canvass.answered.contains(n))
            .collect();
        self.timers.set(Timer::VoteRetry, retry);
        let term = if pre { self.term + 1 } else { self.term };
        self.request_votes(term, pre, &silent);
    }

    fn maybe_stand(&mut self) {
        if let Role::PreCandidate(canvass) = &self.role {
            if canvass.votes.len() >= self.majority() {
                self.start_election();
            }
        }
    }

    /// Whether a candidate whose log ends at (`last_term`, `last_index`) is at least as
    /// up to date as this node.
    pub(super) fn up_to_date(&self, last_term: u64, last_index: u64) -> bool {
        (last_term, last_index) >= (self.term_at(self.last_index()), self.last_index())
    }

    pub(super) fn start_election(&mut self) {
        self.term += 1;
        self.voted_for = Some(self.id);
        self.persist_meta();
        self.leader = None;
        self.role = Role::Candidate(self.new_canvass());
        self.reset_election();
        self.request_votes(self.term, false, &self.others());
        self.maybe_win();
    }

    fn maybe_win(&mut self) {
        let Role::Candidate(canvass) = &self.role else {
            return;
        };
        if canvass.votes.len() < self.majority() {
            return;
        }
        let n = self.settings.nodes as usize;
        // A no-op of the new term, so that the older entries commit with it (the fix for
        // Figure 8 of the paper). The no-term-check bug goes without, as such code does.
        if !self.bug(Bug::NoTermCheck) {
            self.log.push(Entry {
                term: self.term,
                command: Command::Noop,
            });
            let index = self.last_index();
            self.outbox.push_back(Output::Persist(Record::Entries {
                from: index,
                entries: vec![self.log[index as usize - 1].clone()],
            }));
        }
        let first_index = self.last_index();
        let mut matched = vec![0; n];
        matched[self.id as usize] = first_index;
        self.role = Role::Leader(Leader::new(n, first_index, matched));
        self.timers.stop(Timer::Election);
        self.timers.stop(Timer::VoteRetry);
        self.leader = Some(self.id);
        self.outbox
            .push_back(Output::Note(json!({ "led": self.term })));
        self.broadcast();
        self.advance_commit();
    }

    /// A message of an election: (pre-)vote requests and their answers.
    pub(super) fn on_election_message(&mut self, from: NodeId, msg: Message) {
        match msg {
            Message::PreVote {
                term,
                last_index,
                last_term,
            } => {
                let granted = term > self.term
                    && self.up_to_date(last_term, last_index)
                    && !self.leader_is_alive();
                let term = if granted { term } else { self.term };
                self.send(from, Message::PreVoteReply { term, granted });
            }
            Message::PreVoteReply { term, granted } => {
                if term > self.term && !granted {
                    self.become_follower(term, None);
                    return;
                }
                // A refusal carries the voter's own term, a grant the term asked about.
                if !granted || term == self.term + 1 {
                    if let Role::PreCandidate(canvass) = &mut self.role {
                        canvass.count(from, granted);
                    }
                    self.maybe_stand();
                }
            }
            Message::Vote {
                term,
                last_index,
                last_term,
            } => {
                if term > self.term && self.leader_is_alive() {
                    // Leader stickiness: neither the term nor the vote changes.
                    self.send(from, Message::VoteRefused { term: self.term });
                    return;
                }
                if term > self.term {
                    self.become_follower(term, None);
                }
                let granted = term == self.term
                    && self.up_to_date(last_term, last_index)
                    && self.voted_for.is_none_or(|v| v == from);
                if granted {
                    self.voted_for = Some(from);
                    self.persist_meta();
                    self.reset_election();
                }
                let term = self.term;
                let reply = if granted {
                    Message::VoteGranted { term }
                } else {
                    Message::VoteRefused { term }
                };
                self.send(from, reply);
            }
            Message::VoteGranted { term } | Message::VoteRefused { term } => {
                let granted = matches!(msg, Message::VoteGranted { .. });
                if term > self.term {
                    self.become_follower(term, None);
                    return;
                }
                if term == self.term {
                    if let Role::Candidate(canvass) = &mut self.role {
                        canvass.count(from, granted);
                    }
                    self.maybe_win();
                }
            }
            Message::Append(_)
            | Message::AppendReply { .. }
            | Message::Forward { .. }
            | Message::ForwardReply { .. } => {
                unreachable!("on_message routes only election messages here")
            }
        }
    }
}
