//! The process runtime: one reference-system node as an OS process (DESIGN §4.1).
//!
//! It serves the faultline KV protocol over HTTP on loopback ([`http`]), links to its peers over
//! TCP ([`transport`]), applies the fault layer to every message and to its clock ([`faults`]),
//! persists records with fsync before acting on them ([`storage`]), and drives the node state
//! machine from one task that owns it: feed an input, drain every output in order, repeat.
//! Ticks come every 10 ms.

mod faults;
mod http;
mod storage;
mod transport;

pub use faults::{Fate, FaultLayer, Faults};
pub use http::{MAX_BODY, MAX_KEY};
pub use storage::Storage;

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
use crate::systems::{ClientReply, ClientRequest, Node, NodeId, Now, Output, RequestId};

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
            run_node(config, nodes, "quorum.log", move |records| {
                QuorumNode::new(id, settings, records)
            })
            .await
        }
        SystemSettings::Raft(settings) => {
            let seed = config.seed;
            run_node(config, nodes, "raft.log", move |records| {
                RaftNode::new(id, settings, seed, records)
            })
            .await
        }
        SystemSettings::Saga(settings) => {
            let seed = config.seed;
            run_node(config, nodes, "saga.log", move |records| {
                SagaNode::new(id, &settings, seed, records)
            })
            .await
        }
        SystemSettings::TwoPc(settings) => {
            let seed = config.seed;
            run_node(config, nodes, "twopc.log", move |records| {
                TwoPcNode::new(id, &settings, seed, records)
            })
            .await
        }
    }
}

/// Runs node `config.id` of a cluster of `nodes`, built by `make` from its recovered records.
pub async fn run_node<N: Node>(
    config: NodeConfig,
    nodes: u32,
    log_name: &str,
    make: impl FnOnce(Vec<N::Record>) -> N,
) -> io::Result<()> {
    let (storage, records) = Storage::open::<N::Record>(&config.data_dir.join(log_name))?;
    let node = make(records);
    let peer_listener = TcpListener::bind(config.peers[config.id as usize]).await?;
    let http_listener = TcpListener::bind(config.http).await?;
    let (peer_tx, peer_rx) = mpsc::channel(4096);
    tokio::spawn(transport::listen::<N::Message>(peer_listener, peer_tx));
    let (command_tx, command_rx) = mpsc::channel(4096);
    let owner = Owner {
        id: config.id,
        node,
        storage,
        links: transport::connect_peers(config.id, &config.peers),
        faults: FaultLayer::new(nodes, config.seed ^ u64::from(config.id)),
        nodes,
        waiting: HashMap::new(),
        next_request: 1,
        started: Instant::now(),
        counters: Counters::default(),
    };
    tokio::spawn(owner.run(command_rx, peer_rx));
    http::serve(http_listener, command_tx, node_name(config.id)).await
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
}

/// The task that owns the node state machine.
struct Owner<N: Node> {
    id: NodeId,
    node: N,
    storage: Storage,
    links: Vec<Option<mpsc::UnboundedSender<Vec<u8>>>>,
    faults: FaultLayer,
    nodes: u32,
    waiting: HashMap<RequestId, oneshot::Sender<ClientReply>>,
    next_request: RequestId,
    started: Instant,
    counters: Counters,
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
    ) {
        let mut tick = tokio::time::interval(Duration::from_millis(10));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
        loop {
            tokio::select! {
                Some(command) = commands.recv() => self.on_command(command),
                Some((from, msg)) = peers.recv() => {
                    self.counters.messages_received += 1;
                    if self.faults.drops_from(from) {
                        self.counters.dropped_incoming += 1;
                    } else {
                        let now = self.now();
                        self.node.handle_peer(now, from, msg);
                    }
                }
                _ = tick.tick() => {
                    let now = self.now();
                    self.node.handle_tick(now);
                }
                else => return,
            }
            self.drain();
        }
    }

    fn on_command(&mut self, command: Command) {
        match command {
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
                let _ = reply.send(self.node.describe());
            }
            Command::State { key, reply, .. } => {
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

    /// Acts on every output in order: a record is synced before anything after it leaves.
    fn drain(&mut self) {
        while let Some(output) = self.node.poll_output() {
            match output {
                Output::Persist(record) => {
                    if let Err(e) = self.storage.append(&record) {
                        // A node that cannot persist must not acknowledge anything: stop.
                        eprintln!(
                            "{}: cannot write {}: {e}; stopping",
                            node_name(self.id),
                            self.storage.path().display()
                        );
                        std::process::exit(1);
                    }
                }
                Output::Reply { id, reply } => {
                    if let Some(waiter) = self.waiting.remove(&id) {
                        let _ = waiter.send(reply);
                    }
                }
                Output::Send { to, msg } => self.send(to, &msg),
            }
        }
    }

    fn send(&mut self, to: NodeId, msg: &N::Message) {
        let Some(Some(link)) = self.links.get(to as usize) else {
            return;
        };
        let fate = self.faults.outgoing(to);
        if fate.copies == 0 {
            self.counters.dropped_outgoing += 1;
            return;
        }
        let frame = transport::Frame { from: self.id, msg };
        let Ok(mut bytes) = serde_json::to_vec(&frame) else {
            return;
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
    }
}
