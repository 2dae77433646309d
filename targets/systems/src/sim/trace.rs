//! The events of a simulated run, kept when asked for, so that two runs of one seed can be
//! compared event by event (the determinism guard).

use crate::NodeId;

/// What happened.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum What {
    /// A node's deadline came.
    Tick,
    /// A message of this kind was delivered from `other`.
    Deliver(&'static str),
    /// A client request (its id in `other`) reached the node.
    Client,
    /// A crash point struck.
    Crash,
    /// The node was killed.
    Kill,
    /// The node started again from its records.
    Restart,
    /// The node was paused.
    Pause,
    /// The node was resumed.
    Resume,
    /// The node's faults were replaced.
    Faults,
}

/// One event: when, what, at which node, and the other party (a sender or a request id).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TraceEvent {
    /// Virtual milliseconds.
    pub at: u64,
    /// What happened.
    pub what: What,
    /// The node it happened at.
    pub node: NodeId,
    /// The sender of a delivered message, or a client request's id.
    pub other: u64,
}

impl TraceEvent {
    fn at(at: u64, what: What, node: NodeId) -> Self {
        TraceEvent {
            at,
            what,
            node,
            other: 0,
        }
    }

    pub(super) fn tick(at: u64, node: NodeId) -> Self {
        Self::at(at, What::Tick, node)
    }

    pub(super) fn deliver(at: u64, from: NodeId, to: NodeId, kind: &'static str) -> Self {
        TraceEvent {
            other: u64::from(from),
            ..Self::at(at, What::Deliver(kind), to)
        }
    }

    pub(super) fn client(at: u64, node: NodeId, request: u64) -> Self {
        TraceEvent {
            other: request,
            ..Self::at(at, What::Client, node)
        }
    }

    pub(super) fn crash(at: u64, node: NodeId) -> Self {
        Self::at(at, What::Crash, node)
    }

    pub(super) fn kill(at: u64, node: NodeId) -> Self {
        Self::at(at, What::Kill, node)
    }

    pub(super) fn restart(at: u64, node: NodeId) -> Self {
        Self::at(at, What::Restart, node)
    }

    pub(super) fn pause(at: u64, node: NodeId) -> Self {
        Self::at(at, What::Pause, node)
    }

    pub(super) fn resume(at: u64, node: NodeId) -> Self {
        Self::at(at, What::Resume, node)
    }

    pub(super) fn faults(at: u64, node: NodeId) -> Self {
        Self::at(at, What::Faults, node)
    }
}

impl std::fmt::Display for TraceEvent {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let node = crate::kv::node_name(self.node);
        match self.what {
            What::Deliver(kind) => write!(
                f,
                "at {} ms: {kind} from {} delivered to {node}",
                self.at,
                crate::kv::node_name(self.other as NodeId)
            ),
            What::Client => write!(
                f,
                "at {} ms: request {} reached {node}",
                self.at, self.other
            ),
            other => write!(f, "at {} ms: {other:?} at {node}", self.at),
        }
    }
}

/// Every event of a run, in order.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Trace(Vec<TraceEvent>);

impl Trace {
    pub(super) fn push(&mut self, event: TraceEvent) {
        self.0.push(event);
    }

    /// The events, in order.
    pub fn events(&self) -> &[TraceEvent] {
        &self.0
    }

    /// How many events.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Whether none was kept.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The first place where two runs' events differ, described; `None` if they agree.
    pub fn first_difference(&self, other: &Trace) -> Option<String> {
        let differs = self.0.iter().zip(&other.0).position(|(a, b)| a != b);
        match differs {
            Some(i) => Some(format!(
                "event {i} differs: {} in the first run, {} in the second",
                self.0[i], other.0[i]
            )),
            None if self.0.len() != other.0.len() => Some(format!(
                "the runs agree for {} events, then one has {} and the other {}",
                self.0.len().min(other.0.len()),
                self.0.len(),
                other.0.len()
            )),
            None => None,
        }
    }
}
