//! The process runtime: one reference-system node as an OS process (DESIGN §4.1).
//!
//! It serves the faultline KV protocol over HTTP on loopback ([`http`]), links to its peers over
//! TCP ([`transport`]), applies the fault layer to every message and to its clock ([`crate::systems::faults`]),
//! persists records with fsync before acting on them ([`storage`]), and drives the node state
//! machine from one task that owns it: feed an input, drain every output in order, repeat.
//! Ticks come every 10 ms.
//!
//! A crash point of the fault layer crashes the node in place: the state machine and every
//! output it had not yet acted on are dropped, waiting clients get a 504, and after the down
//! time a new state machine is built from the log, as after a SIGKILL and a restart. Messages
//! already sent stay in the network.

mod http;
mod storage;
mod transport;

pub use crate::systems::faults::{
    CrashPlan, CrashPoint, CrashRule, Done, Fate, FaultLayer, Faults, PlannedCrash,
};
pub use http::{MAX_BODY, MAX_KEY};
pub use storage::{NOTES_FILE, Notes, Storage};

use std::collections::HashMap;
use std::io;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde_json::{Value, json};
use tokio::net::TcpListener;
use tokio::sync::{mpsc, oneshot};

use crate::systems::SystemSettings;
use crate::systems::kv::node_name;
use crate::systems::orders::OrderRequest;
use crate::systems::quorum::QuorumNode;
use crate::systems::raft::RaftNode;
use crate::systems::saga::SagaNode;
use crate::systems::twopc::TwoPcNode;
use crate::systems::{ClientReply, ClientRequest, Kinded, Node, NodeId, Now, Output, RequestId};

/// Where one node listens and keeps its data.
#[derive(Clone, Debug)]
pub struct NodeConfig {
    /// This node's id.
    pub id: NodeId,
    /// The client-facing HTTP address.
    pub http: SocketAddr,
    /// Every node's peer address, by id (this node's own included).
    pub peers: Vec<SocketAddr>,
    /// The data directory (created if missing).
    pub data_dir: PathBuf,
    /// Seed of the fault layer's random choices.
    pub seed: u64,
}

/// A request to the task that owns the node.
enum Command {
    Client {
        request: ClientRequest,
        reply: oneshot::Sender<ClientReply>,
    },
    Order {
        request: OrderRequest,
        reply: oneshot::Sender<ClientReply>,
    },
    State {
        key: Option<String>,
        /// Only the system's own state, without the runtime's faults and counters.
        bare: bool,
        reply: oneshot::Sender<Value>,
    },
    SetFaults {
        faults: Faults,
        reply: oneshot::Sender<Result<Faults, String>>,
    },
}

/// Runs a node of the system `settings` belong to until the process is stopped.
pub async fn run_system(config: NodeConfig, settings: SystemSettings) -> io::Result<()> {
    let id = config.id;
    let nodes = config.peers.len() as u32;
    match settings {
        SystemSettings::Quorum(settings) => {
            run_node(config, nodes, 0, "quorum.log", move |records, _| {
                QuorumNode::new(id, settings.clone(), records)
            })
            .await
        }
        SystemSettings::Raft(settings) => {
            let seed = config.seed;
            let link_ms = settings.link_ms;
            run_node(
                config,
                nodes,
                link_ms,
                "raft.log",
                move |records, incarnation| {
                    let seed = seed ^ incarnation.wrapping_mul(0x9e37_79b9_7f4a_7c15);
                    RaftNode::new(id, settings.clone(), seed, records)
                },
            )
            .await
        }
        SystemSettings::Saga(settings) => {
            let seed = config.seed;
            run_node(config, nodes, 0, "saga.log", move |records, _| {
                SagaNode::new(id, &settings, seed, records)
            })
            .await
        }
        SystemSettings::TwoPc(settings) => {
            let seed = config.seed;
            run_node(config, nodes, 0, "twopc.log", move |records, _| {
                TwoPcNode::new(id, &settings, seed, records)
            })
            .await
        }
    }
}

/// Runs node `config.id` of a cluster of `nodes` whose messages take `link_ms` each way,
/// built by `make` from its recovered records and an incarnation number (again after every
/// crash). The incarnation differs from one start to the next (it counts the records and the
/// crashes), so that a node that draws random timeouts does not repeat its last life's draws.
pub async fn run_node<N: Node>(
    config: NodeConfig,
    nodes: u32,
    link_ms: u64,
    log_name: &str,
    make: impl Fn(Vec<N::Record>, u64) -> N + Send + 'static,
) -> io::Result<()> {
    let (storage, records) = Storage::open::<N::Record>(&config.data_dir.join(log_name))?;
    let incarnation = records.len() as u64;
    let node = make(records, incarnation);
    let peer_listener = TcpListener::bind(config.peers[config.id as usize]).await?;
    let http_listener = TcpListener::bind(config.http).await?;
    let (peer_tx, peer_rx) = mpsc::channel(4096);
    tokio::spawn(transport::listen::<N::Message>(peer_listener, peer_tx));
    let (command_tx, command_rx) = mpsc::channel(4096);
    let owner = Owner {
        id: config.id,
        node,
        storage,
        notes: Notes::open(&config.data_dir)?,
        links: transport::connect_peers(config.id, &config.peers),
        faults: FaultLayer::new(nodes, link_ms, config.seed ^ u64::from(config.id)),
        nodes,
        waiting: HashMap::new(),
        next_request: 1,
        started: Instant::now(),
        counters: Counters::default(),
        make: Box::new(make),
        down_until: None,
    };
    let owner = tokio::spawn(owner.run(command_rx, peer_rx));
    // The node stops when either half does: the server, or the state machine's owner (which
    // ends only when it cannot persist).
    tokio::select! {
        served = http::serve(http_listener, command_tx, node_name(config.id)) => served,
        owned = owner => owned.map_err(io::Error::other)?,
    }
}

#[derive(Debug, Default, serde::Serialize)]
struct Counters {
    messages_sent: u64,
    messages_received: u64,
    dropped_outgoing: u64,
    dropped_incoming: u64,
    duplicated: u64,
    delayed: u64,
    client_requests: u64,
    crashes: u64,
}

/// The task that owns the node state machine.
struct Owner<N: Node> {
    id: NodeId,
    node: N,
    storage: Storage,
    notes: Notes,
    links: Vec<Option<mpsc::UnboundedSender<Vec<u8>>>>,
    faults: FaultLayer,
    nodes: u32,
    waiting: HashMap<RequestId, oneshot::Sender<ClientReply>>,
    next_request: RequestId,
    started: Instant,
    counters: Counters,
    /// Builds the state machine from the log (at a restart after a crash point).
    make: Box<dyn Fn(Vec<N::Record>, u64) -> N + Send>,
    /// Until when the node is down after a crash point.
    down_until: Option<Instant>,
}

impl<N: Node> Owner<N> {
    fn now(&self) -> Now {
        let wall = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default()
            .as_millis() as i64;
        Now {
            mono_ms: self.started.elapsed().as_millis() as u64,
            wall_ms: (wall + self.faults.faults().clock_offset_ms).max(0) as u64,
        }
    }

    async fn run(
        mut self,
        mut commands: mpsc::Receiver<Command>,
        mut peers: mpsc::Receiver<(NodeId, N::Message)>,
    ) -> io::Result<()> {
        loop {
            if self.down_until.is_some_and(|t| Instant::now() >= t) {
                self.down_until = None;
            }
            let down = self.down_until.is_some();
            let wake = tokio::time::Instant::from_std(self.next_wake());
            tokio::select! {
                Some(command) = commands.recv() => self.on_command(command),
                Some((from, msg)) = peers.recv() => {
                    self.counters.messages_received += 1;
                    if down || self.faults.drops_from(from) {
                        self.counters.dropped_incoming += 1;
                    } else {
                        let now = self.now();
                        self.node.handle_peer(now, from, msg);
                    }
                }
                () = tokio::time::sleep_until(wake) => {
                    if !down {
                        let now = self.now();
                        self.node.handle_tick(now);
                    }
                }
                else => return Ok(()),
            }
            self.drain()?;
        }
    }

    /// When to wake the node next: when a crashed node comes back, else at the deadline the
    /// node asked for (at least a millisecond away, so a deadline the node leaves in the past
    /// cannot spin), else an hour from now (an input wakes it sooner).
    fn next_wake(&self) -> Instant {
        let now = Instant::now();
        if let Some(up) = self.down_until {
            return up;
        }
        match self.node.poll_timeout() {
            Some(ms) => {
                (self.started + Duration::from_millis(ms)).max(now + Duration::from_millis(1))
            }
            None => now + Duration::from_secs(3600),
        }
    }

    fn on_command(&mut self, command: Command) {
        match command {
            Command::Client { reply, .. } | Command::Order { reply, .. }
                if self.down_until.is_some() =>
            {
                self.counters.client_requests += 1;
                let why = "the node crashed and is restarting".to_string();
                let _ = reply.send(ClientReply::Unavailable(why));
            }
            Command::Client { request, reply } => {
                self.counters.client_requests += 1;
                let id = self.next_request;
                self.next_request += 1;
                self.waiting.insert(id, reply);
                let now = self.now();
                self.node.handle_client(now, id, request);
            }
            Command::Order { request, reply } => {
                self.counters.client_requests += 1;
                let id = self.next_request;
                self.next_request += 1;
                let now = self.now();
                match self.node.handle_order(now, id, request) {
                    Some(answer) => {
                        let _ = reply.send(answer);
                    }
                    None => {
                        self.waiting.insert(id, reply);
                    }
                }
            }
            Command::State {
                key: None,
                bare: true,
                reply,
            } => {
                self.catch_up();
                let _ = reply.send(self.node.describe());
            }
            Command::State { key, reply, .. } => {
                self.catch_up();
                let mut state = self.node.describe();
                state["faults"] = json!(self.faults.faults());
                state["clock_offset_ms"] = json!(self.faults.faults().clock_offset_ms);
                state["counters"] = json!(self.counters);
                state["log"] = json!(self.storage.path());
                if let Some(key) = key {
                    state["local"] = self.node.describe_key(&key);
                }
                let _ = reply.send(state);
            }
            Command::SetFaults { faults, reply } => {
                let result = faults.validate(self.nodes).map(|()| {
                    self.faults.set(faults);
                    self.faults.faults().clone()
                });
                let _ = reply.send(result);
            }
        }
    }

    /// Lets a running node see the time before its state is read (a node with no timer armed
    /// is otherwise not woken, and its clock would be that of its last input).
    fn catch_up(&mut self) {
        if self.down_until.is_none() {
            let now = self.now();
            self.node.handle_tick(now);
        }
    }

    /// Acts on every output in order: a record is synced before anything after it leaves. A
    /// record that cannot be synced stops the node (the error), so that nothing after it is
    /// acknowledged.
    fn drain(&mut self) -> io::Result<()> {
        while let Some(output) = self.node.poll_output() {
            let crash = match output {
                Output::Persist(record) => {
                    if let Err(e) = self.storage.append(&record) {
                        return Err(unable_to_persist(self.id, self.storage.path(), &e));
                    }
                    self.faults.crashes_after(Done::Persisted(record.kind()))
                }
                Output::Reply { id, reply } => {
                    if let Some(waiter) = self.waiting.remove(&id) {
                        let _ = waiter.send(reply);
                    }
                    None
                }
                Output::Note(note) => {
                    self.notes.write(&note);
                    None
                }
                Output::Send { to, msg } => self
                    .send(to, &msg)
                    .then(|| self.faults.crashes_after(Done::Sent(msg.kind())))
                    .flatten(),
            };
            if let Some(down_ms) = crash {
                self.crash(down_ms)?;
                break;
            }
        }
        self.notes.flush();
        Ok(())
    }

    /// Crashes in place: what is not in the log is lost; a new state machine is built from the
    /// log and starts after the down time.
    fn crash(&mut self, down_ms: u64) -> io::Result<()> {
        self.counters.crashes += 1;
        for (_, waiter) in self.waiting.drain() {
            let why = "the node crashed; the request may or may not have taken effect";
            let _ = waiter.send(ClientReply::Timeout(why.into()));
        }
        let path = self.storage.path().to_path_buf();
        let (storage, records) =
            Storage::open::<N::Record>(&path).map_err(|e| unable_to_persist(self.id, &path, &e))?;
        self.storage = storage;
        let incarnation = records.len() as u64 + (self.counters.crashes << 32);
        self.node = (self.make)(records, incarnation);
        let down = Duration::from_millis(down_ms);
        self.down_until = Some(Instant::now() + down);
        Ok(())
    }

    /// Sends `msg` to `to` through the fault layer; whether it left.
    fn send(&mut self, to: NodeId, msg: &N::Message) -> bool {
        let Some(Some(link)) = self.links.get(to as usize) else {
            return false;
        };
        let fate = self.faults.outgoing(to);
        if fate.copies == 0 {
            self.counters.dropped_outgoing += 1;
            return false;
        }
        let frame = transport::Frame { from: self.id, msg };
        let Ok(mut bytes) = serde_json::to_vec(&frame) else {
            return false;
        };
        bytes.push(b'\n');
        if fate.copies > 1 {
            self.counters.duplicated += 1;
            bytes.extend_from_slice(&bytes.clone());
        }
        self.counters.messages_sent += 1;
        if fate.delay_ms == 0 {
            let _ = link.send(bytes);
        } else {
            self.counters.delayed += 1;
            let link = link.clone();
            tokio::spawn(async move {
                tokio::time::sleep(Duration::from_millis(fate.delay_ms)).await;
                let _ = link.send(bytes);
            });
        }
        true
    }
}

/// Why a node that cannot persist stops: it must not acknowledge anything after a record it
/// could not sync.
fn unable_to_persist(id: NodeId, path: &std::path::Path, e: &io::Error) -> io::Error {
    io::Error::new(
        e.kind(),
        format!(
            "{}: cannot use {}: {e}; stopping",
            node_name(id),
            path.display()
        ),
    )
}
