//! The router: faultline as the network. One task owns the [`Network`]'s decisions, the
//! services and a queue of messages in flight ordered by delivery time; node processes, clients
//! and the nemesis talk to it through [`Input`]s. Every message between nodes, from clients to
//! nodes and between nodes and services passes through it, and is counted.

use std::cmp::Reverse;
use std::collections::{BTreeMap, BinaryHeap, HashMap};
use std::time::Duration;

use serde::Serialize;
use tokio::sync::{mpsc, oneshot};
use tokio::time::Instant;

use super::message::{Body, Message};
use super::network::{Drop, Latency, Network, NodeFaults, Place, Route};
use super::services::Services;

/// What the router is told.
#[derive(Debug)]
pub enum Input {
    /// A line node `node` printed (in its `generation`-th process), parsed.
    Printed {
        /// The node.
        node: usize,
        /// Which start of it printed the line.
        generation: u64,
        /// The message, or why the line is not one.
        line: Result<Message, String>,
    },
    /// Node `node`'s output ended (it exited or closed its stdout).
    Ended {
        /// The node.
        node: usize,
        /// Which start of it ended.
        generation: u64,
        /// How.
        why: String,
    },
    /// A request from a client (its `src` is `c…`) to node `node`; the answer goes to `reply`.
    Request {
        /// The request.
        message: Message,
        /// Its destination's index.
        node: usize,
        /// Where the answer goes.
        reply: oneshot::Sender<Answer>,
    },
    /// The client gave up waiting for `msg_id`.
    Forget {
        /// The client's name.
        client: String,
        /// The request's id.
        msg_id: u64,
    },
    /// Node `node` now reads from `stdin` (a new start), or is down (`None`, and why).
    Attach {
        /// The node.
        node: usize,
        /// Which start of it this is.
        generation: u64,
        /// Where lines for it go.
        stdin: Option<mpsc::UnboundedSender<String>>,
        /// Why it is down (when `stdin` is `None`).
        why: String,
    },
    /// Node `node` suffers `faults` from now on.
    Faults {
        /// The node.
        node: usize,
        /// What it suffers.
        faults: NodeFaults,
    },
    /// The message counts so far.
    Stats(oneshot::Sender<NetStats>),
}

/// How a client's request ended.
#[derive(Debug)]
pub enum Answer {
    /// The node's reply body.
    Reply(Body),
    /// The node cannot answer any more (it died, was killed, or printed garbage): why.
    Broken(String),
    /// The node was down when the request came: it was never delivered. Why.
    Undeliverable(String),
}

/// The messages the router saw, by kind.
#[derive(Clone, Debug, Default, Serialize)]
pub struct NetStats {
    /// Messages nodes sent each other.
    pub between_nodes: u64,
    /// Requests from clients and the nodes' replies to them.
    pub with_clients: u64,
    /// Requests from nodes to services and the services' replies.
    pub with_services: u64,
    /// Deliveries made (a duplicate counts twice).
    pub delivered: u64,
    /// Messages a partition dropped.
    pub dropped_partition: u64,
    /// Messages a packet fault lost.
    pub dropped_loss: u64,
    /// Messages for a node that was down.
    pub dropped_down: u64,
    /// Messages to nobody known.
    pub dropped_unknown: u64,
    /// Messages delivered twice.
    pub duplicated: u64,
    /// Messages between nodes, by body type.
    pub by_type: BTreeMap<String, u64>,
    /// Seconds since the router started.
    pub seconds: f64,
}

impl NetStats {
    /// Every message routed (sent, whatever became of it).
    pub fn routed(&self) -> u64 {
        self.between_nodes + self.with_clients + self.with_services
    }
}

/// Where a message in flight goes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Dest {
    Node(usize),
    Client,
    Service,
}

/// A message in flight, ordered by delivery time, then by the order it was sent.
#[derive(Debug)]
struct InFlight {
    at: Instant,
    seq: u64,
    to: Dest,
    message: Message,
}

impl PartialEq for InFlight {
    fn eq(&self, other: &Self) -> bool {
        (self.at, self.seq) == (other.at, other.seq)
    }
}
impl Eq for InFlight {}
impl PartialOrd for InFlight {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for InFlight {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        (self.at, self.seq).cmp(&(other.at, other.seq))
    }
}

/// A node as the router knows it.
#[derive(Debug, Default)]
struct Port {
    generation: u64,
    stdin: Option<mpsc::UnboundedSender<String>>,
    garbage_told: u32,
    /// Why it is down, when it is.
    down: Option<String>,
}

/// The router's state (owned by its task).
struct Router {
    network: Network,
    services: Services,
    names: Vec<String>,
    index: HashMap<String, usize>,
    ports: Vec<Port>,
    queue: BinaryHeap<Reverse<InFlight>>,
    seq: u64,
    waiting: HashMap<(String, u64), (usize, oneshot::Sender<Answer>)>,
    stats: NetStats,
    started: Instant,
}

/// Starts the router for nodes `names` on its own task; inputs go to the returned sender.
/// It ends when every sender is dropped.
pub fn spawn(names: Vec<String>, latency: Latency, seed: u64) -> mpsc::UnboundedSender<Input> {
    let (tx, rx) = mpsc::unbounded_channel();
    let router = Router {
        network: Network::new(names.len(), latency, seed),
        services: Services::new(seed),
        index: names
            .iter()
            .enumerate()
            .map(|(i, n)| (n.clone(), i))
            .collect(),
        ports: names.iter().map(|_| Port::default()).collect(),
        names,
        queue: BinaryHeap::new(),
        seq: 0,
        waiting: HashMap::new(),
        stats: NetStats::default(),
        started: Instant::now(),
    };
    tokio::spawn(router.run(rx));
    tx
}

impl Router {
    async fn run(mut self, mut inputs: mpsc::UnboundedReceiver<Input>) {
        loop {
            let next = self.queue.peek().map(|Reverse(m)| m.at);
            tokio::select! {
                biased;
                input = inputs.recv() => match input {
                    Some(input) => self.take(input),
                    None => return,
                },
                () = tokio::time::sleep_until(next.unwrap_or_else(Instant::now)), if next.is_some() => {
                    self.deliver_due();
                }
            }
        }
    }

    fn take(&mut self, input: Input) {
        match input {
            Input::Printed {
                node,
                generation,
                line,
            } if self.current(node, generation) => match line {
                Ok(message) => self.send(Place::Node(node), message),
                Err(why) => self.garbage(node, &why),
            },
            Input::Printed { .. } => {}
            Input::Ended {
                node,
                generation,
                why,
            } if self.current(node, generation) => self.ended(node, &why),
            Input::Ended { .. } => {}
            Input::Request {
                message,
                node,
                reply,
            } => self.request(message, node, reply),
            Input::Forget { client, msg_id } => {
                self.waiting.remove(&(client, msg_id));
            }
            Input::Attach {
                node,
                generation,
                stdin,
                why,
            } => {
                let down = stdin.is_none().then_some(why);
                self.ports[node] = Port {
                    generation,
                    stdin,
                    garbage_told: 0,
                    down: down.clone(),
                };
                if let Some(why) = down {
                    self.break_waiting(node, &why);
                }
            }
            Input::Faults { node, faults } => self.network.set_faults(node, faults),
            Input::Stats(reply) => {
                let mut stats = self.stats.clone();
                stats.seconds = self.started.elapsed().as_secs_f64();
                let _ = reply.send(stats);
            }
        }
    }

    /// Node `node`'s output ended on its own: said, and the requests waiting on it end.
    fn ended(&mut self, node: usize, why: &str) {
        if self.ports[node].stdin.take().is_some() {
            let name = &self.names[node];
            eprintln!("faultline: node {name} stopped: {why} (its stderr is in nodes/{name}.log)");
            let why = format!("{name} stopped: {why}");
            self.ports[node].down = Some(why.clone());
            self.break_waiting(node, &why);
        }
    }

    /// A client's request: to a node that is down it cannot be delivered (answered at once);
    /// otherwise it waits for the reply.
    fn request(&mut self, message: Message, node: usize, reply: oneshot::Sender<Answer>) {
        if self.ports[node].stdin.is_none() {
            let why = (self.ports[node].down.clone())
                .unwrap_or_else(|| format!("{} is not running", self.names[node]));
            let _ = reply.send(Answer::Undeliverable(why));
            return;
        }
        let id = (message
            .body
            .get("msg_id")
            .and_then(serde_json::Value::as_u64))
        .unwrap_or(0);
        self.waiting
            .insert((message.src.clone(), id), (node, reply));
        self.stats.with_clients += 1;
        self.dispatch(Place::Outside, Place::Node(node), Dest::Node(node), message);
    }

    fn current(&self, node: usize, generation: u64) -> bool {
        self.ports
            .get(node)
            .is_some_and(|p| p.generation == generation)
    }

    /// A message a node printed: counted, then routed.
    fn send(&mut self, from: Place, message: Message) {
        let (to, dest) = if let Some(&j) = self.index.get(&message.dest) {
            self.stats.between_nodes += 1;
            *self
                .stats
                .by_type
                .entry(message.kind().to_string())
                .or_default() += 1;
            (Place::Node(j), Dest::Node(j))
        } else if Services::is_service(&message.dest) {
            self.stats.with_services += 1;
            (Place::Outside, Dest::Service)
        } else if message.dest.starts_with('c') {
            self.stats.with_clients += 1;
            (Place::Outside, Dest::Client)
        } else {
            self.stats.dropped_unknown += 1;
            return;
        };
        self.dispatch(from, to, dest, message);
    }

    /// Puts `message` in flight as the network decides.
    fn dispatch(&mut self, from: Place, to: Place, dest: Dest, message: Message) {
        match self.network.route(from, to) {
            Route::Dropped(Drop::Partition) => self.stats.dropped_partition += 1,
            Route::Dropped(Drop::Loss) => self.stats.dropped_loss += 1,
            Route::Deliver(delays) => {
                let now = Instant::now();
                self.stats.duplicated += (delays.len() > 1) as u64;
                for delay in delays {
                    self.seq += 1;
                    let (seq, message) = (self.seq, message.clone());
                    self.queue.push(Reverse(InFlight {
                        at: now + delay,
                        seq,
                        to: dest,
                        message,
                    }));
                }
            }
        }
    }

    fn deliver_due(&mut self) {
        let now = Instant::now();
        while self.queue.peek().is_some_and(|Reverse(m)| m.at <= now) {
            let Reverse(m) = self.queue.pop().expect("peeked");
            self.deliver(m.to, m.message);
        }
    }

    fn deliver(&mut self, to: Dest, message: Message) {
        match to {
            Dest::Node(j) => match &self.ports[j].stdin {
                Some(stdin) => {
                    let mut line = message.to_line();
                    line.push('\n');
                    let _ = stdin.send(line);
                    self.stats.delivered += 1;
                }
                None => self.stats.dropped_down += 1,
            },
            Dest::Client => {
                self.stats.delivered += 1;
                let Some(id) = message.in_reply_to() else {
                    return;
                };
                if let Some((_, reply)) = self.waiting.remove(&(message.dest.clone(), id)) {
                    let _ = reply.send(Answer::Reply(message.body));
                }
            }
            Dest::Service => {
                self.stats.delivered += 1;
                let now = self.started.elapsed();
                let answer = self
                    .services
                    .handle(&message.dest, &message.src, &message.body, now);
                let (Some(body), Some(&j)) = (answer, self.index.get(&message.src)) else {
                    return;
                };
                self.stats.with_services += 1;
                let reply = Message {
                    src: message.dest,
                    dest: message.src,
                    body,
                };
                self.dispatch(Place::Outside, Place::Node(j), Dest::Node(j), reply);
            }
        }
    }

    /// Node `node` printed something that is not a message: said (the first few times), and
    /// the requests waiting on it end unknown.
    fn garbage(&mut self, node: usize, why: &str) {
        let name = self.names[node].clone();
        let port = &mut self.ports[node];
        port.garbage_told += 1;
        if port.garbage_told <= 3 {
            eprintln!("faultline: node {name} printed {why}");
        }
        self.break_waiting(node, &format!("{name} printed {why}"));
    }

    fn break_waiting(&mut self, node: usize, why: &str) {
        let broken: Vec<(String, u64)> = (self.waiting.iter())
            .filter(|(_, (n, _))| *n == node)
            .map(|(k, _)| k.clone())
            .collect();
        for key in broken {
            if let Some((_, reply)) = self.waiting.remove(&key) {
                let _ = reply.send(Answer::Broken(why.to_string()));
            }
        }
    }
}

/// How long a client waits for `init_ok` and `topology_ok`.
pub(super) const HANDSHAKE: Duration = Duration::from_secs(10);

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{Value, json};

    /// What node n3 receives when n1 and n2 each send it 100 messages at one instant, over a
    /// network with jitter, loss and duplication.
    async fn deliveries(seed: u64) -> Vec<String> {
        let names: Vec<String> = ["n1", "n2", "n3"].map(String::from).to_vec();
        let latency = Latency {
            base: Duration::from_millis(5),
            jitter: Duration::from_millis(20),
        };
        let router = spawn(names.clone(), latency, seed);
        let (stdin, mut received) = mpsc::unbounded_channel();
        let why = String::new();
        router
            .send(Input::Attach {
                node: 2,
                generation: 0,
                stdin: Some(stdin),
                why,
            })
            .unwrap();
        let faults = NodeFaults {
            loss: 0.1,
            duplicate: 0.2,
            ..NodeFaults::default()
        };
        router.send(Input::Faults { node: 0, faults }).unwrap();
        for i in 0..200 {
            let from = i % 2;
            let body = json!({"type": "gossip", "n": i})
                .as_object()
                .unwrap()
                .clone();
            let line = Ok(Message {
                src: names[from].clone(),
                dest: "n3".into(),
                body,
            });
            router
                .send(Input::Printed {
                    node: from,
                    generation: 0,
                    line,
                })
                .unwrap();
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
        let mut lines = Vec::new();
        while let Ok(line) = received.try_recv() {
            lines.push(line);
        }
        lines
    }

    #[tokio::test(start_paused = true)]
    async fn a_seed_delivers_the_same_inputs_in_the_same_order() {
        let first = deliveries(7).await;
        assert_eq!(first, deliveries(7).await);
        assert_ne!(first, deliveries(8).await);
        // The jitter reordered them, n1's losses and duplicates show.
        let order: Vec<u64> = first
            .iter()
            .map(|l| {
                serde_json::from_str::<Value>(l).unwrap()["body"]["n"]
                    .as_u64()
                    .unwrap()
            })
            .collect();
        assert!(
            order.windows(2).any(|w| w[0] > w[1]),
            "not reordered: {order:?}"
        );
        assert!(
            order.len() != 200,
            "no loss or duplicate in {} deliveries",
            order.len()
        );
    }
}

#[cfg(test)]
mod down {
    use super::*;
    use serde_json::json;

    #[tokio::test(start_paused = true)]
    async fn a_request_to_a_node_that_is_down_is_not_delivered_and_says_why() {
        let router = spawn(vec!["n1".into()], Latency::default(), 1);
        let (stdin, _lines) = mpsc::unbounded_channel();
        router
            .send(Input::Attach {
                node: 0,
                generation: 1,
                stdin: Some(stdin),
                why: String::new(),
            })
            .unwrap();
        // It dies before the request comes.
        router
            .send(Input::Ended {
                node: 0,
                generation: 1,
                why: "it exited (exit status: 3)".into(),
            })
            .unwrap();
        let (reply, answer) = oneshot::channel();
        let body = json!({"type": "init", "msg_id": 1})
            .as_object()
            .unwrap()
            .clone();
        let message = Message {
            src: "c0".into(),
            dest: "n1".into(),
            body,
        };
        router
            .send(Input::Request {
                message,
                node: 0,
                reply,
            })
            .unwrap();
        match tokio::time::timeout(Duration::from_millis(10), answer).await {
            Ok(Ok(Answer::Undeliverable(why))) => assert!(why.contains("exit status: 3"), "{why}"),
            other => panic!("not answered at once: {other:?}"),
        }
    }
}
