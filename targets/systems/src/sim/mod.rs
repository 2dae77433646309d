//! The simulation runtime (DESIGN §4.1): every node of a cluster in one thread, on virtual
//! time, with a seeded network between them.
//!
//! [`Sim`] owns the nodes, their durable records and an event queue ordered by (virtual time,
//! sequence number). Messages pass through each sender's [`FaultLayer`] — the same partitions,
//! loss, duplication, delay and crash points the process runtime applies — and then take a
//! latency drawn from their link's own distribution ([`Link`]: each link's range is drawn from
//! the seed), so they reorder as on a real network. A node is
//! ticked exactly at the deadline it asks for. A crash drops the node and every output it had
//! not acted on, and restarts it from its records; a pause holds its inputs until it resumes.
//!
//! Nothing here reads a clock or iterates a hash map: a seed and the calls made give one run,
//! event for event. [`Sim::trace`] keeps every event when asked, so that two runs of a seed can
//! be compared (the determinism guard).

mod links;
mod systems;
#[cfg(test)]
pub(crate) mod testnet;
#[cfg(test)]
mod tests;
mod trace;

pub use links::{Latency, Link};
pub use systems::{DEFAULT_LATENCY, World, for_system};
pub use trace::{Trace, TraceEvent, What};

use std::collections::{BTreeMap, VecDeque};

use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

use crate::faults::{Done, FaultLayer, Faults};
use crate::kv::node_name;
use crate::orders::OrderRequest;
use crate::{ClientReply, ClientRequest, Kinded, Node, NodeId, Now, Output, RequestId};
use links::Links;

/// The wall clock a simulated run starts at (2023-11-14), so that systems stamping data see
/// plausible times.
pub const EPOCH_MS: u64 = 1_700_000_000_000;

/// A request from a simulated client.
#[derive(Clone, Debug, PartialEq)]
pub enum Request {
    /// A key-value request.
    Kv(ClientRequest),
    /// An order (checkout systems).
    Order(OrderRequest),
}

/// What a client gets back.
#[derive(Clone, Debug, PartialEq)]
pub enum Answer {
    /// The node's reply.
    Reply(ClientReply),
    /// The node was down when the request arrived: nothing ran (on processes, a refused
    /// connection).
    Refused(String),
}

/// A node's life.
enum Slot<N: Node> {
    Up(N),
    /// Crashed or killed; a crash point's restart is queued, a kill waits for [`Sim::restart`].
    Down,
    /// Stopped: inputs wait in `held` until it resumes.
    Paused {
        node: N,
        held: Vec<Input<N::Message>>,
    },
}

/// Something delivered to a node.
enum Input<M> {
    Peer { from: NodeId, msg: M },
    Client { id: RequestId, request: Request },
}

/// A queued event.
enum Event<M> {
    Deliver {
        from: NodeId,
        to: NodeId,
        msg: M,
    },
    Restart {
        node: NodeId,
    },
    /// A client's request reaches its node.
    Arrive {
        node: NodeId,
        id: RequestId,
        request: Request,
    },
    /// A reply reaches its client.
    Answer {
        id: RequestId,
        answer: Answer,
    },
}

/// How a node is built: from its id, its records and an incarnation number (which differs
/// at every start, so a node drawing random timeouts does not repeat its last life's draws).
pub type Make<N> = Box<dyn FnMut(NodeId, Vec<<N as Node>::Record>, u64) -> N + Send>;

/// Counts of what the simulated network did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Counters {
    /// Messages sent (each copy of a duplicate once).
    pub messages_sent: u64,
    /// Messages delivered to a running node.
    pub messages_delivered: u64,
    /// Messages lost: dropped by a partition or loss, or sent to a node that was down.
    pub messages_dropped: u64,
    /// Crash-point crashes.
    pub crashes: u64,
    /// Client requests taken.
    pub client_requests: u64,
}

/// A cluster of `N` nodes on virtual time.
pub struct Sim<N: Node> {
    now: u64,
    seq: u64,
    queue: BTreeMap<(u64, u64), Event<N::Message>>,
    slots: Vec<Slot<N>>,
    /// Each node's deadline as it last asked, and whether it was ticked at that time already.
    deadlines: Vec<Option<u64>>,
    records: Vec<Vec<N::Record>>,
    faults: Vec<FaultLayer>,
    links: Links,
    rng: ChaCha8Rng,
    make: Make<N>,
    starts: u64,
    /// Nodes killed from outside: a crash point's queued restart leaves them down.
    killed: Vec<bool>,
    /// Requests a node has taken and not answered, by id: the node.
    pending: BTreeMap<RequestId, NodeId>,
    next_request: RequestId,
    replies: VecDeque<(RequestId, Answer)>,
    notes: Vec<(NodeId, serde_json::Value)>,
    counters: Counters,
    trace: Option<Trace>,
    /// Tests: sees every message a node sends and keeps it (true) or drops it.
    #[cfg(test)]
    pub(crate) send_hook: Option<SendHook<N::Message>>,
    /// Tests: crashes a node right after it persists its k-th record (node, k).
    #[cfg(test)]
    pub(crate) crash_at_record: Option<(NodeId, usize)>,
}

/// A test's look at every message sent (from, to, message): keep it or drop it.
#[cfg(test)]
pub(crate) type SendHook<M> = Box<dyn FnMut(NodeId, NodeId, &M) -> bool + Send>;

impl<N: Node> Sim<N> {
    /// A cluster of `nodes` built by `make`, each link's latency range drawn inside `latency`;
    /// `seed` drives the network and the fault layers.
    pub fn new(nodes: u32, latency: Latency, seed: u64, mut make: Make<N>) -> Self {
        let slots = (0..nodes)
            .map(|id| Slot::Up(make(id, Vec::new(), 0)))
            .collect();
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let links = Links::drawn(nodes as usize, latency, &mut rng);
        let mut sim = Sim {
            now: 0,
            seq: 0,
            queue: BTreeMap::new(),
            slots,
            deadlines: vec![None; nodes as usize],
            records: vec![Vec::new(); nodes as usize],
            faults: (0..nodes)
                .map(|id| FaultLayer::new(nodes, 0, seed ^ (u64::from(id) << 48) ^ 0xfa17))
                .collect(),
            links,
            rng,
            make,
            starts: nodes as u64,
            killed: vec![false; nodes as usize],
            pending: BTreeMap::new(),
            next_request: 1,
            replies: VecDeque::new(),
            notes: Vec::new(),
            counters: Counters::default(),
            trace: None,
            #[cfg(test)]
            send_hook: None,
            #[cfg(test)]
            crash_at_record: None,
        };
        // A starting node reads its clock (and arms its timers), as a starting process does.
        for id in 0..nodes {
            sim.tick(id);
        }
        sim
    }

    /// Keeps every event from now on in [`Sim::trace`].
    pub fn with_trace(mut self) -> Self {
        self.trace = Some(Trace::default());
        self
    }

    /// The events kept, if asked for.
    pub fn trace(&self) -> Option<&Trace> {
        self.trace.as_ref()
    }

    /// `link`'s latency range.
    pub fn latency(&self, link: Link) -> Latency {
        self.links.range(link)
    }

    /// Gives `link` the latency range `latency` from now on (a slow or a steady link).
    ///
    /// # Panics
    ///
    /// If `latency.min_ms` exceeds `latency.max_ms`, or the link names a node the cluster
    /// does not have.
    pub fn set_latency(&mut self, link: Link, latency: Latency) {
        assert!(
            latency.min_ms <= latency.max_ms,
            "an empty range: {latency:?}"
        );
        self.links.set(link, latency);
    }

    /// Virtual milliseconds since the start.
    pub fn now(&self) -> u64 {
        self.now
    }

    /// How many nodes.
    pub fn len(&self) -> usize {
        self.slots.len()
    }

    /// Whether the cluster has no nodes.
    pub fn is_empty(&self) -> bool {
        self.slots.is_empty()
    }

    /// What the network did so far.
    pub fn counters(&self) -> &Counters {
        &self.counters
    }

    /// Node `id`, unless it is down.
    pub fn node(&self, id: NodeId) -> Option<&N> {
        match &self.slots[id as usize] {
            Slot::Up(node) | Slot::Paused { node, .. } => Some(node),
            Slot::Down => None,
        }
    }

    /// The records node `id` persisted.
    pub fn records(&self, id: NodeId) -> &[N::Record] {
        &self.records[id as usize]
    }

    /// The notes nodes wrote, in order, each with its node.
    pub fn notes(&self) -> &[(NodeId, serde_json::Value)] {
        &self.notes
    }

    /// Node `id`'s clock reading now.
    fn clock(&self, id: NodeId) -> Now {
        let offset = self.faults[id as usize].faults().clock_offset_ms;
        Now {
            mono_ms: self.now,
            wall_ms: (EPOCH_MS as i64 + self.now as i64 + offset).max(0) as u64,
        }
    }

    /// When the next event happens: a queued one or a node's deadline.
    pub fn next_at(&self) -> Option<u64> {
        let queued = self.queue.keys().next().map(|&(at, _)| at);
        let deadline = self.deadlines.iter().flatten().min().copied();
        match (queued, deadline) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// Runs every event due by `t`, in order, and moves the clock to `t`.
    pub fn run_until(&mut self, t: u64) {
        while let Some(at) = self.next_at().filter(|&at| at <= t) {
            self.now = self.now.max(at);
            self.step();
        }
        self.now = self.now.max(t);
    }

    /// Runs the next event, whenever it is; false if nothing is due ever.
    pub fn run_next(&mut self) -> bool {
        let Some(at) = self.next_at() else {
            return false;
        };
        self.now = self.now.max(at);
        self.step();
        true
    }

    /// Runs one event: the earliest of the queue and the deadlines (the queue first at a tie,
    /// then the lowest node).
    fn step(&mut self) {
        let queued = self.queue.keys().next().copied();
        let due = (0..self.slots.len() as NodeId)
            .filter(|&id| self.deadlines[id as usize].is_some_and(|d| d <= self.now))
            .find(|_| queued.is_none_or(|(at, _)| at > self.now));
        if let Some(id) = due {
            self.deadlines[id as usize] = None;
            self.record_event(TraceEvent::tick(self.now, id));
            self.tick(id);
            return;
        }
        let Some(key) = queued else { return };
        let event = self.queue.remove(&key).expect("the first key is queued");
        match event {
            Event::Deliver { from, to, msg } => {
                self.record_event(TraceEvent::deliver(self.now, from, to, msg.kind()));
                self.input(to, Input::Peer { from, msg });
            }
            Event::Restart { node } if !self.killed[node as usize] => self.restart(node),
            Event::Restart { .. } => {}
            Event::Arrive { node, id, request } => {
                self.record_event(TraceEvent::client(self.now, node, id));
                self.input(node, Input::Client { id, request });
            }
            Event::Answer { id, answer } => self.replies.push_back((id, answer)),
        }
    }

    /// Sends a client request to node `node`: it arrives after a link's latency, and its
    /// reply comes out of [`Sim::replies`] a link's latency after the node gives it.
    pub fn submit(&mut self, node: NodeId, request: Request) -> RequestId {
        let id = self.next_request;
        self.next_request += 1;
        self.counters.client_requests += 1;
        let at = self.now + self.links.draw(Link::Client(node), &mut self.rng);
        self.schedule(at, Event::Arrive { node, id, request });
        id
    }

    /// Sends node `node`'s reply back to its client.
    fn answer(&mut self, node: NodeId, id: RequestId, reply: ClientReply) {
        self.answer_with(node, id, Answer::Reply(reply));
    }

    fn answer_with(&mut self, node: NodeId, id: RequestId, answer: Answer) {
        let at = self.now + self.links.draw(Link::Client(node), &mut self.rng);
        self.schedule(at, Event::Answer { id, answer });
    }

    /// The replies given since the last call, in order.
    pub fn replies(&mut self) -> impl Iterator<Item = (RequestId, Answer)> + '_ {
        self.replies.drain(..)
    }

    fn input(&mut self, id: NodeId, input: Input<N::Message>) {
        let now = self.clock(id);
        let drops = match &input {
            Input::Peer { from, .. } => self.faults[id as usize].drops_from(*from),
            Input::Client { .. } => false,
        };
        match &mut self.slots[id as usize] {
            Slot::Down => match input {
                Input::Peer { .. } => self.counters.messages_dropped += 1,
                Input::Client { id: rid, .. } => {
                    let why = format!("{} is down", node_name(id));
                    self.answer_with(id, rid, Answer::Refused(why));
                }
            },
            Slot::Paused { held, .. } => held.push(input),
            Slot::Up(_) if drops => self.counters.messages_dropped += 1,
            Slot::Up(node) => {
                match input {
                    Input::Peer { from, msg } => {
                        self.counters.messages_delivered += 1;
                        node.handle_peer(now, from, msg);
                    }
                    Input::Client { id: rid, request } => match request {
                        Request::Kv(request) => {
                            self.pending.insert(rid, id);
                            node.handle_client(now, rid, request);
                        }
                        Request::Order(order) => match node.handle_order(now, rid, order) {
                            Some(reply) => self.answer(id, rid, reply),
                            None => {
                                self.pending.insert(rid, id);
                            }
                        },
                    },
                }
                self.drain(id);
            }
        }
    }

    /// Acts on node `id`'s outputs in order until none is left or a crash point strikes.
    fn drain(&mut self, id: NodeId) {
        loop {
            let Slot::Up(node) = &mut self.slots[id as usize] else {
                return;
            };
            let Some(output) = node.poll_output() else {
                break;
            };
            let crash = match output {
                Output::Persist(record) => {
                    let kind = record.kind();
                    #[cfg(test)]
                    assert_eq!(
                        kind,
                        crate::serde_variant(&record),
                        "a record's kind is its name"
                    );
                    self.records[id as usize].push(record);
                    #[cfg(test)]
                    if self.crash_at_record == Some((id, self.records[id as usize].len())) {
                        self.crash_at_record = None;
                        self.crash(id, 1);
                        return;
                    }
                    self.faults[id as usize].crashes_after(Done::Persisted(kind))
                }
                Output::Reply { id: rid, reply } => {
                    self.pending.remove(&rid);
                    self.answer(id, rid, reply);
                    None
                }
                Output::Note(note) => {
                    self.notes.push((id, note));
                    None
                }
                Output::Send { to, msg } => {
                    let kind = msg.kind();
                    #[cfg(test)]
                    assert_eq!(
                        kind,
                        crate::serde_variant(&msg),
                        "a message's kind is its name"
                    );
                    self.send(id, to, msg)
                        .then(|| self.faults[id as usize].crashes_after(Done::Sent(kind)))
                        .flatten()
                }
            };
            if let Some(down_ms) = crash {
                self.crash(id, down_ms);
                return;
            }
        }
        self.deadlines[id as usize] = match &self.slots[id as usize] {
            // A deadline at or before now runs at the next millisecond: a node that leaves
            // one in the past cannot spin.
            Slot::Up(node) => node.poll_timeout().map(|d| d.max(self.now + 1)),
            _ => None,
        };
    }

    /// A crash point struck node `id`: down now, back from its records `down_ms` later.
    fn crash(&mut self, id: NodeId, down_ms: u64) {
        self.counters.crashes += 1;
        self.record_event(TraceEvent::crash(self.now, id));
        self.take_down(id);
        self.schedule(self.now + down_ms.max(1), Event::Restart { node: id });
    }

    /// Sends `msg` through the sender's fault layer; whether it left.
    fn send(&mut self, from: NodeId, to: NodeId, msg: N::Message) -> bool {
        #[cfg(test)]
        if let Some(keep) = &mut self.send_hook {
            if !keep(from, to, &msg) {
                self.counters.messages_dropped += 1;
                return false;
            }
        }
        let fate = self.faults[from as usize].outgoing(to);
        if fate.copies == 0 || to as usize >= self.slots.len() {
            self.counters.messages_dropped += 1;
            return false;
        }
        for _ in 1..fate.copies {
            self.put_on_link(from, to, fate.delay_ms, msg.clone());
        }
        self.put_on_link(from, to, fate.delay_ms, msg);
        true
    }

    /// Queues one copy of a message, after the fault layer's delay and the link's latency.
    fn put_on_link(&mut self, from: NodeId, to: NodeId, delay_ms: u64, msg: N::Message) {
        let at = self.now + delay_ms + self.links.draw(Link::Peer { from, to }, &mut self.rng);
        self.counters.messages_sent += 1;
        self.schedule(at, Event::Deliver { from, to, msg });
    }

    fn schedule(&mut self, at: u64, event: Event<N::Message>) {
        self.seq += 1;
        self.queue.insert((at, self.seq), event);
    }

    /// Drops node `id` and whatever it had not acted on; its waiting clients learn it may or
    /// may not have done what they asked.
    fn take_down(&mut self, id: NodeId) {
        self.slots[id as usize] = Slot::Down;
        self.deadlines[id as usize] = None;
        let lost: Vec<RequestId> = self
            .pending
            .iter()
            .filter(|&(_, &node)| node == id)
            .map(|(&rid, _)| rid)
            .collect();
        for rid in lost {
            self.pending.remove(&rid);
            let why = format!(
                "{} crashed; the request may or may not have taken effect",
                node_name(id)
            );
            self.answer(id, rid, ClientReply::Timeout(why));
        }
    }

    /// Kills node `id` (as SIGKILL): it stays down until [`Sim::restart`].
    pub fn kill(&mut self, id: NodeId) {
        self.killed[id as usize] = true;
        if !matches!(self.slots[id as usize], Slot::Down) {
            self.record_event(TraceEvent::kill(self.now, id));
            self.take_down(id);
        }
    }

    /// Starts node `id` again from its records, if it is down.
    pub fn restart(&mut self, id: NodeId) {
        self.killed[id as usize] = false;
        if !matches!(self.slots[id as usize], Slot::Down) {
            return;
        }
        self.record_event(TraceEvent::restart(self.now, id));
        self.starts += 1;
        let records = self.records[id as usize].clone();
        let incarnation = records.len() as u64 + (self.starts << 32);
        self.slots[id as usize] = Slot::Up((self.make)(id, records, incarnation));
        self.tick(id);
    }

    /// Pauses node `id` (as SIGSTOP): it gets no input and no tick until [`Sim::resume`].
    pub fn pause(&mut self, id: NodeId) {
        let slot = std::mem::replace(&mut self.slots[id as usize], Slot::Down);
        self.slots[id as usize] = match slot {
            Slot::Up(node) => {
                self.record_event(TraceEvent::pause(self.now, id));
                self.deadlines[id as usize] = None;
                Slot::Paused {
                    node,
                    held: Vec::new(),
                }
            }
            other => other,
        };
    }

    /// Resumes node `id`: what arrived while it was stopped is delivered, in order, and it
    /// sees the time.
    pub fn resume(&mut self, id: NodeId) {
        let slot = std::mem::replace(&mut self.slots[id as usize], Slot::Down);
        let Slot::Paused { node, held } = slot else {
            self.slots[id as usize] = slot;
            return;
        };
        self.record_event(TraceEvent::resume(self.now, id));
        self.slots[id as usize] = Slot::Up(node);
        self.tick(id);
        for input in held {
            self.input(id, input);
        }
    }

    /// Ticks node `id` now if it runs.
    fn tick(&mut self, id: NodeId) {
        let now = self.clock(id);
        if let Slot::Up(node) = &mut self.slots[id as usize] {
            node.handle_tick(now);
            self.drain(id);
        }
    }

    /// Replaces node `id`'s faults (already validated).
    pub fn set_faults(&mut self, id: NodeId, faults: Faults) {
        self.record_event(TraceEvent::faults(self.now, id));
        self.faults[id as usize].set(faults);
    }

    /// Node `id`'s faults in force.
    pub fn faults(&self, id: NodeId) -> &Faults {
        self.faults[id as usize].faults()
    }

    /// Node `id`'s state as `GET /admin/state` gives it (bare), if it runs; it sees the time
    /// first, as the process runtime's does.
    pub fn describe(&mut self, id: NodeId) -> Option<serde_json::Value> {
        self.tick(id);
        match &self.slots[id as usize] {
            Slot::Up(node) => Some(node.describe()),
            _ => None,
        }
    }

    fn record_event(&mut self, event: TraceEvent) {
        if let Some(trace) = &mut self.trace {
            trace.push(event);
        }
    }
}
