//! Maelstrom-protocol node binaries as the cluster, with faultline as the network between
//! them (maelstrom's `doc/protocol.md`): `--target 'maelstrom:COMMAND ARGS…' --nodes 5`.
//!
//! Every node runs in its own process group, its stderr in `nodes/<id>.log`; it gets `init`
//! first (and `topology` for broadcast), then the workload's requests from clients `c1`, `c2`,
//! …. Every message goes through the [`router`], which applies latency, partitions and packet
//! faults from the run's seed ([`network`]), answers the [`services`], and counts messages.
//!
//! # Brief overview
//!
//! - [`MaelstromTarget`]: what `--target maelstrom:…` and its settings name.
//! - [`MaelstromCluster`]: the nodes, running, and the router; kill, pause and restart.
//! - [`MaelstromClient`]: the workload's operations as the workload's requests.

pub mod message;
pub mod network;
mod node;
pub mod router;
pub mod services;
pub mod topology;

use std::path::PathBuf;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use futures_util::future::join_all;
use nix::sys::signal::Signal;
use serde_json::{Value, json};
use tokio::sync::{mpsc, oneshot};

use self::message::{Body, KEY_MISSING, Message};
use self::network::{Latency, NodeFaults};
use self::node::{Launch, NodeProcess};
use self::router::{Answer, HANDSHAKE, Input, NetStats};
use self::topology::Topology;
use crate::client::{Client, Completion, Op};

/// A `maelstrom:` target, parsed and checked; nothing started.
#[derive(Clone, Debug)]
pub struct MaelstromTarget {
    /// The node binary's command line.
    pub argv: Vec<String>,
    /// How many nodes (`--nodes`).
    pub nodes: u32,
    /// Every message's latency (`--set latency-ms=…,jitter-ms=…`).
    pub latency: Latency,
    /// The broadcast workload's topology (`--set topology=…`, default grid).
    pub topology: Topology,
}

/// The settings a `maelstrom:` target takes, for errors and `--help`.
pub const SETTINGS: &str = "latency-ms (every message's delay, default 0), jitter-ms (up to this much more, \
    at random, default 0), topology (broadcast: grid, line, total, tree2, tree3, tree4; default grid)";

impl MaelstromTarget {
    /// Parses `maelstrom:COMMAND` (after the prefix) with `--set` settings and `--nodes`.
    pub fn parse(command: &str, settings: &[String], nodes: u32) -> Result<Self, String> {
        let argv = shell_words::split(command)
            .map_err(|e| format!("maelstrom:{command}: {e} (quote as a shell would)"))?;
        if argv.is_empty() {
            return Err(
                "maelstrom: names no command; e.g. --target 'maelstrom:python3 echo.py'".into(),
            );
        }
        if nodes == 0 {
            return Err("--nodes 0: a Maelstrom cluster needs at least one node".into());
        }
        let mut target = MaelstromTarget {
            argv,
            nodes,
            latency: Latency::default(),
            topology: Topology::Grid,
        };
        let ms = |k: &str, v: &str| {
            v.parse::<u64>()
                .map(Duration::from_millis)
                .map_err(|_| format!("--set {k}={v}: expected a whole number of milliseconds"))
        };
        for (k, v) in crate::systems::key_values(settings.iter().map(String::as_str), "maelstrom")?
        {
            match k {
                "latency-ms" => target.latency.base = ms(k, v)?,
                "jitter-ms" => target.latency.jitter = ms(k, v)?,
                "topology" => target.topology = v.parse()?,
                _ => return Err(format!("--set {k}: a maelstrom: target takes {SETTINGS}")),
            }
        }
        Ok(target)
    }

    /// The nodes' names: `n1`, `n2`, ….
    pub fn names(&self) -> Vec<String> {
        (1..=self.nodes).map(|i| format!("n{i}")).collect()
    }
}

/// Which request shapes a workload's adds and whole reads take.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Dialect {
    /// `broadcast` with `message`; `read` answers `messages`.
    Broadcast,
    /// `add` with `element`; `read` answers `value`.
    GSet,
    /// `add` with `delta`; `read` answers `value` (g-counter, pn-counter).
    Counter,
    /// No adds (echo, unique-ids, lin-kv, transactions).
    Plain,
}

/// The nodes, running, and the router between them. Dropped (or [`MaelstromCluster::stop`]),
/// every node's process group is killed.
#[derive(Debug)]
pub struct MaelstromCluster {
    target: MaelstromTarget,
    names: Vec<String>,
    router: mpsc::UnboundedSender<Input>,
    log_dir: PathBuf,
    processes: Mutex<Vec<Option<NodeProcess>>>,
    generations: Mutex<Vec<u64>>,
    inits: Mutex<Vec<Option<oneshot::Receiver<Answer>>>>,
    control_ids: AtomicU64,
    send_topology: bool,
}

impl MaelstromCluster {
    /// Starts every node with its stderr under `log_dir`, sends each `init` (and `topology`
    /// when `send_topology`, at every start) and waits for the answers. An error names the
    /// node.
    pub async fn start(
        target: MaelstromTarget,
        seed: u64,
        log_dir: PathBuf,
        send_topology: bool,
    ) -> Result<Self, String> {
        std::fs::create_dir_all(&log_dir)
            .map_err(|e| format!("cannot create {}: {e}", log_dir.display()))?;
        let names = target.names();
        let router = router::spawn(names.clone(), target.latency, seed);
        let cluster = MaelstromCluster {
            processes: Mutex::new(names.iter().map(|_| None).collect()),
            generations: Mutex::new(vec![0; names.len()]),
            inits: Mutex::new(names.iter().map(|_| None).collect()),
            send_topology,
            target,
            names,
            router,
            log_dir,
            control_ids: AtomicU64::new(0),
        };
        let starts = (0..cluster.names.len()).map(|i| cluster.launch(i));
        for started in join_all(starts).await {
            started?;
        }
        let sends = (0..cluster.names.len()).map(|i| cluster.send_topology(i));
        for sent in join_all(sends).await {
            sent?;
        }
        Ok(cluster)
    }

    /// Sends node `i` the topology and waits for `topology_ok`, if the workload has one.
    async fn send_topology(&self, i: usize) -> Result<(), String> {
        if !self.send_topology {
            return Ok(());
        }
        let neighbours = self.target.topology.neighbours(&self.names);
        self.handshake(i, "topology", json!({"topology": neighbours}))
            .await
    }

    /// The nodes' names.
    pub fn names(&self) -> &[String] {
        &self.names
    }

    /// Starts node `i` (again) and sends it `init`; its memory starts empty.
    async fn launch(&self, i: usize) -> Result<(), String> {
        let answer = self.spawn_node(i)?;
        self.await_handshake(i, "init", answer).await
    }

    /// Starts node `i` and sends it `init`; the answer will come on the receiver.
    fn spawn_node(&self, i: usize) -> Result<oneshot::Receiver<Answer>, String> {
        let name = &self.names[i];
        let generation = {
            let mut generations = self.generations.lock().expect("not poisoned");
            generations[i] += 1;
            generations[i]
        };
        let log = self.log_dir.join(format!("{name}.log"));
        let launch = Launch {
            argv: &self.target.argv,
            node: i,
            name,
            generation,
            log: &log,
        };
        let process = NodeProcess::start(&launch, self.router.clone())?;
        self.processes.lock().expect("not poisoned")[i] = Some(process);
        let init = json!({"node_id": name, "node_ids": self.names});
        Ok(self.control(i, "init", init))
    }

    /// Sends node `i` a `kind` request from `c0` with `fields`, and waits for `kind_ok`.
    async fn handshake(&self, i: usize, kind: &str, fields: Value) -> Result<(), String> {
        let answer = self.control(i, kind, fields);
        self.await_handshake(i, kind, answer).await
    }

    /// Sends node `i` a `kind` request from `c0` with `fields`; the answer comes on the receiver.
    fn control(&self, i: usize, kind: &str, fields: Value) -> oneshot::Receiver<Answer> {
        let name = &self.names[i];
        let msg_id = self.control_ids.fetch_add(1, Ordering::Relaxed) + 1;
        let mut body = message::request(kind, msg_id, []);
        if let Value::Object(fields) = fields {
            body.extend(fields);
        }
        let message = Message {
            src: "c0".into(),
            dest: name.clone(),
            body,
        };
        let (reply, answer) = oneshot::channel();
        let _ = self.router.send(Input::Request {
            message,
            node: i,
            reply,
        });
        answer
    }

    /// Waits for node `i`'s `kind_ok` on `answer`; an error names the node and its log.
    async fn await_handshake(
        &self,
        i: usize,
        kind: &str,
        answer: oneshot::Receiver<Answer>,
    ) -> Result<(), String> {
        let name = &self.names[i];
        let why = match tokio::time::timeout(HANDSHAKE, answer).await {
            Ok(Ok(Answer::Reply(body)))
                if body.get("type").and_then(Value::as_str) == Some(&format!("{kind}_ok")) =>
            {
                return Ok(());
            }
            Ok(Ok(Answer::Reply(body))) => {
                format!("it answered {kind} with {}", Value::Object(body))
            }
            Ok(Ok(Answer::Broken(why) | Answer::Undeliverable(why))) => {
                self.exit_status(i).await.unwrap_or(why)
            }
            Ok(Err(_)) => "the router stopped".into(),
            Err(_) => format!("no {kind}_ok within {} s", HANDSHAKE.as_secs()),
        };
        Err(format!(
            "node {name} did not start: {why}; its stderr is in {}",
            self.log_dir.join(format!("{name}.log")).display()
        ))
    }

    /// How node `i`'s process ended, if it has (waiting a moment for it).
    async fn exit_status(&self, i: usize) -> Option<String> {
        for _ in 0..20 {
            let status = (self.processes.lock().expect("not poisoned")[i].as_mut())
                .and_then(NodeProcess::exited);
            if status.is_some() {
                return status;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        None
    }

    /// SIGKILLs node `i`: messages to it are lost until it is restarted.
    pub fn kill(&self, i: usize) {
        let Ok(generations) = self.generations.lock() else {
            return;
        };
        let why = format!("{} was killed", self.names[i]);
        let _ = self.router.send(Input::Attach {
            node: i,
            generation: generations[i],
            stdin: None,
            why,
        });
        if let Ok(mut processes) = self.processes.lock() {
            processes[i].take();
        }
    }

    /// Starts killed node `i` again, with an empty memory, and sends it `init`;
    /// [`MaelstromCluster::initialized`] waits for its answer.
    pub fn respawn(&self, i: usize) -> Result<(), String> {
        let answer = self.spawn_node(i)?;
        self.inits.lock().expect("not poisoned")[i] = Some(answer);
        Ok(())
    }

    /// Waits until respawned node `i` has answered `init`, then sends it the topology again
    /// (broadcast): a node that starts over starts the workload over.
    pub async fn initialized(&self, i: usize) -> Result<(), String> {
        let answer = self.inits.lock().expect("not poisoned")[i].take();
        if let Some(answer) = answer {
            self.await_handshake(i, "init", answer).await?;
            self.send_topology(i).await?;
        }
        Ok(())
    }

    /// Sends `signal` (SIGSTOP, SIGCONT) to node `i`'s process group.
    pub fn signal(&self, i: usize, signal: Signal) {
        if let Some(p) = &self.processes.lock().expect("not poisoned")[i] {
            p.signal(signal);
        }
    }

    /// Node `i` suffers `faults` in the network from now on.
    pub fn set_faults(&self, i: usize, faults: NodeFaults) {
        let _ = self.router.send(Input::Faults { node: i, faults });
    }

    /// The message counts so far.
    pub async fn stats(&self) -> NetStats {
        let (tx, rx) = oneshot::channel();
        let _ = self.router.send(Input::Stats(tx));
        rx.await.unwrap_or_default()
    }

    /// A client speaking `dialect`.
    pub fn client(&self, dialect: Dialect) -> MaelstromClient {
        MaelstromClient {
            router: self.router.clone(),
            names: self.names.clone(),
            dialect,
            next_id: AtomicU64::new(0),
        }
    }

    /// Kills every node. Idempotent.
    pub fn stop(&self) {
        for i in 0..self.names.len() {
            self.kill(i);
        }
    }
}

impl Drop for MaelstromCluster {
    fn drop(&mut self) {
        self.stop();
    }
}

/// The workload's client: each runner client is `c1`, `c2`, …; every request goes through
/// the router and waits for its reply.
#[derive(Debug)]
pub struct MaelstromClient {
    router: mpsc::UnboundedSender<Input>,
    names: Vec<String>,
    dialect: Dialect,
    next_id: AtomicU64,
}

impl Client for MaelstromClient {
    async fn invoke(&self, node: usize, op: &Op, timeout: Duration) -> Completion {
        self.invoke_as(0, node, op, timeout).await
    }

    async fn invoke_as(
        &self,
        client: usize,
        node: usize,
        op: &Op,
        timeout: Duration,
    ) -> Completion {
        let msg_id = self.next_id.fetch_add(1, Ordering::Relaxed) + 1;
        let body = match request(self.dialect, op, msg_id) {
            Ok(body) => body,
            Err(error) => return Completion::Fail { error },
        };
        let src = format!("c{}", client + 1);
        let message = Message {
            src: src.clone(),
            dest: self.names[node].clone(),
            body,
        };
        let (reply, answer) = oneshot::channel();
        let _ = self.router.send(Input::Request {
            message,
            node,
            reply,
        });
        match tokio::time::timeout(timeout, answer).await {
            Ok(Ok(Answer::Reply(body))) => complete(self.dialect, op, &body),
            Ok(Ok(Answer::Broken(error))) => Completion::Info { error },
            // Never sent: it cannot have happened.
            Ok(Ok(Answer::Undeliverable(error))) => Completion::Fail { error },
            Ok(Err(_)) => Completion::Info {
                error: "the router stopped".into(),
            },
            Err(_) => {
                let _ = self.router.send(Input::Forget {
                    client: src,
                    msg_id,
                });
                Completion::Info {
                    error: format!("no reply within {} ms", timeout.as_millis()),
                }
            }
        }
    }

    fn nodes(&self) -> usize {
        self.names.len()
    }
}

/// The key Maelstrom's workloads use for the runner's key `k3`: the integer 3.
fn key(key: &str) -> Value {
    key.strip_prefix('k')
        .and_then(|n| n.parse::<u64>().ok())
        .map_or_else(|| Value::from(key), Value::from)
}

/// The request body for `op` in `dialect`.
fn request(dialect: Dialect, op: &Op, msg_id: u64) -> Result<Body, String> {
    let body =
        |kind, fields: Vec<(&'static str, Value)>| Ok(message::request(kind, msg_id, fields));
    match op {
        Op::Read { key: k } => body("read", vec![("key", key(k))]),
        Op::Write { key: k, value } => {
            body("write", vec![("key", key(k)), ("value", value.clone())])
        }
        Op::Cas {
            key: k,
            expect,
            value,
        } => body(
            "cas",
            vec![
                ("key", key(k)),
                ("from", expect.clone()),
                ("to", value.clone()),
            ],
        ),
        Op::Txn { ops } => body("txn", vec![("txn", Value::Array(ops.clone()))]),
        Op::Add { value } => match dialect {
            Dialect::Broadcast => body("broadcast", vec![("message", value.clone())]),
            Dialect::GSet => body("add", vec![("element", value.clone())]),
            Dialect::Counter => body("add", vec![("delta", value.clone())]),
            Dialect::Plain => Err("this workload has no adds".into()),
        },
        Op::ReadAll => body("read", vec![]),
        Op::Echo { value } => body("echo", vec![("echo", value.clone())]),
        Op::Generate => body("generate", vec![]),
    }
}

/// How `op` ended, from the node's reply `body`.
fn complete(dialect: Dialect, op: &Op, body: &Body) -> Completion {
    let kind = body.get("type").and_then(Value::as_str).unwrap_or("");
    if kind == "error" {
        if matches!(op, Op::Read { .. }) && message::error_code(body) == Some(KEY_MISSING) {
            return Completion::Ok {
                value: Value::Null,
                meta: None,
            };
        }
        return message::error_completion(body);
    }
    let asked = request(dialect, op, 0).ok();
    let asked = asked
        .as_ref()
        .and_then(|b| b.get("type"))
        .and_then(Value::as_str)
        .unwrap_or("");
    if kind != format!("{asked}_ok") {
        return Completion::Info {
            error: format!(
                "a `{asked}` request was answered with `{kind}`: {}",
                message::shorten(&Value::Object(body.clone()).to_string())
            ),
        };
    }
    let field = match (op, dialect) {
        (Op::Read { .. }, _) => Some("value"),
        (Op::ReadAll, Dialect::Broadcast) => Some("messages"),
        (Op::ReadAll, _) => Some("value"),
        (Op::Echo { .. }, _) => Some("echo"),
        (Op::Generate, _) => Some("id"),
        (Op::Txn { .. }, _) => Some("txn"),
        (Op::Write { .. } | Op::Cas { .. } | Op::Add { .. }, _) => None,
    };
    match field {
        None => Completion::Ok {
            value: Value::Null,
            meta: None,
        },
        Some(field) => match body.get(field) {
            Some(value) => Completion::Ok {
                value: value.clone(),
                meta: None,
            },
            None => Completion::Info {
                error: format!("`{kind}` without \"{field}\""),
            },
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reply(v: Value) -> Body {
        v.as_object().unwrap().clone()
    }

    #[test]
    fn requests_take_the_workloads_shapes() {
        let add = Op::Add { value: json!(5) };
        assert_eq!(request(Dialect::Broadcast, &add, 1).unwrap()["message"], 5);
        assert_eq!(request(Dialect::GSet, &add, 1).unwrap()["element"], 5);
        assert_eq!(request(Dialect::Counter, &add, 1).unwrap()["delta"], 5);
        let cas = Op::Cas {
            key: "k3".into(),
            expect: json!(1),
            value: json!(2),
        };
        let body = request(Dialect::Plain, &cas, 9).unwrap();
        assert_eq!(
            Value::Object(body),
            json!({"type": "cas", "msg_id": 9, "key": 3, "from": 1, "to": 2})
        );
    }

    #[test]
    fn replies_complete_operations() {
        let read = Op::Read { key: "k1".into() };
        let ok = complete(
            Dialect::Plain,
            &read,
            &reply(json!({"type": "read_ok", "value": 4})),
        );
        assert_eq!(
            ok,
            Completion::Ok {
                value: json!(4),
                meta: None
            }
        );
        let missing = complete(
            Dialect::Plain,
            &read,
            &reply(json!({"type": "error", "code": 20})),
        );
        assert_eq!(
            missing,
            Completion::Ok {
                value: Value::Null,
                meta: None
            }
        );
        let all = complete(
            Dialect::Broadcast,
            &Op::ReadAll,
            &reply(json!({"type": "read_ok", "messages": [1, 2]})),
        );
        assert_eq!(
            all,
            Completion::Ok {
                value: json!([1, 2]),
                meta: None
            }
        );
        let wrong = complete(
            Dialect::Plain,
            &Op::Generate,
            &reply(json!({"type": "echo_ok"})),
        );
        assert!(matches!(wrong, Completion::Info { .. }));
        let cas = Op::Cas {
            key: "k1".into(),
            expect: json!(1),
            value: json!(2),
        };
        let mismatch = complete(
            Dialect::Plain,
            &cas,
            &reply(json!({"type": "error", "code": 22})),
        );
        assert_eq!(
            mismatch,
            Completion::Fail {
                error: "mismatch".into()
            }
        );
        let crash = complete(
            Dialect::Plain,
            &cas,
            &reply(json!({"type": "error", "code": 13})),
        );
        assert!(matches!(crash, Completion::Info { .. }));
    }

    #[test]
    fn settings_are_checked() {
        let t =
            MaelstromTarget::parse("python3 node.py", &["latency-ms=5,topology=line".into()], 3)
                .unwrap();
        assert_eq!(
            (t.latency.base, t.topology, t.argv.len()),
            (Duration::from_millis(5), Topology::Line, 2)
        );
        assert!(
            MaelstromTarget::parse("x", &["topology=star".into()], 3)
                .unwrap_err()
                .contains("grid")
        );
        assert!(
            MaelstromTarget::parse("x", &["speed=1".into()], 3)
                .unwrap_err()
                .contains("latency-ms")
        );
        assert!(MaelstromTarget::parse("", &[], 3).is_err());
    }
}
