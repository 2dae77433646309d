//! The simulation runtime as the harness drives it (`--runtime sim`): a simulated cluster
//! ([`crate::systems::sim`]) on tokio's paused clock, so that the same runner, nemesis and
//! checkers that drive real processes drive it, in virtual time.
//!
//! One task owns the clock of the world: it sleeps (virtually) until the world's next event
//! and runs it. A client request first brings the world up to the current virtual time, then
//! enters it; replies go back to their waiting clients as the world gives them. Under a
//! current-thread runtime started paused, nothing here depends on the wall clock or on thread
//! timing: a seed gives one run.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::{Value, json};
use tokio::sync::{Notify, oneshot};
use tokio::task::JoinHandle;
use tokio::time::Instant;

use crate::client::{Client, Completion, Op, completion_of, not_taken};
use crate::systems::orders::{Order, OrderRequest};
use crate::systems::sim::{Answer, Request, Trace, World, for_system};
use crate::systems::{ClientRequest, NodeId, RequestId, SystemSettings};

/// The world and the clients waiting on it.
struct Shared {
    world: Mutex<Box<dyn World>>,
    waiting: Mutex<BTreeMap<RequestId, oneshot::Sender<Answer>>>,
    /// Wakes the clock task when a request or a fault changed what happens next.
    changed: Notify,
    /// Virtual time zero.
    start: Instant,
}

impl Shared {
    /// Virtual milliseconds since the start.
    fn now_ms(&self) -> u64 {
        self.start.elapsed().as_millis() as u64
    }

    /// Brings the world to now, runs `f` on it, hands out the replies it gave, and (when
    /// `wake`) tells the clock task that the next event may have moved.
    fn with_world<R>(&self, wake: bool, f: impl FnOnce(&mut dyn World) -> R) -> R {
        let (result, replies) = {
            let mut world = self.world.lock().expect("never held across a panic");
            world.run_until(self.now_ms());
            let result = f(world.as_mut());
            (result, world.take_replies())
        };
        if !replies.is_empty() {
            let mut waiting = self.waiting.lock().expect("never held across a panic");
            for (id, reply) in replies {
                if let Some(waiter) = waiting.remove(&id) {
                    let _ = waiter.send(reply);
                }
            }
        }
        if wake {
            self.changed.notify_one();
        }
        result
    }
}

/// A simulated cluster of a bundled system, running until dropped.
#[derive(Clone)]
pub struct SimCluster {
    shared: Arc<Shared>,
    clock: Arc<JoinHandle<()>>,
}

impl SimCluster {
    /// Starts a simulated cluster of `nodes` nodes (call inside a tokio runtime, paused for a
    /// deterministic run); `trace` keeps every event for the determinism guard.
    pub fn start(settings: &SystemSettings, nodes: u32, seed: u64, trace: bool) -> Self {
        let shared = Arc::new(Shared {
            world: Mutex::new(for_system(settings, nodes, seed, trace)),
            waiting: Mutex::new(BTreeMap::new()),
            changed: Notify::new(),
            start: Instant::now(),
        });
        let clock = tokio::spawn(run_clock(shared.clone()));
        SimCluster {
            shared,
            clock: Arc::new(clock),
        }
    }

    /// How many nodes.
    pub fn nodes(&self) -> usize {
        self.shared.with_world(false, |w| w.nodes())
    }

    /// Runs `f` on the world at the current virtual time (a fault, a kill, a look at a node).
    pub fn with_world<R>(&self, f: impl FnOnce(&mut dyn World) -> R) -> R {
        self.shared.with_world(true, f)
    }

    /// Sends `request` to `node` and waits up to `timeout` (virtual) for its answer.
    pub async fn request(
        &self,
        node: NodeId,
        request: Request,
        timeout: Duration,
    ) -> Option<Answer> {
        let (tx, rx) = oneshot::channel();
        let id = self.with_world(|w| {
            let id = w.submit(node, request);
            self.shared
                .waiting
                .lock()
                .expect("never held across a panic")
                .insert(id, tx);
            id
        });
        match tokio::time::timeout(timeout, rx).await {
            Ok(Ok(reply)) => Some(reply),
            _ => {
                self.shared
                    .waiting
                    .lock()
                    .expect("never held across a panic")
                    .remove(&id);
                None
            }
        }
    }

    /// A node's own state (`GET /state`), if it runs.
    pub fn state(&self, node: NodeId) -> Option<Value> {
        self.with_world(|w| w.describe(node))
    }

    /// The notes the nodes wrote, each with its node.
    pub fn notes(&self) -> Vec<(NodeId, Value)> {
        self.with_world(|w| w.notes().to_vec())
    }

    /// The events kept, if asked for at the start.
    pub fn trace(&self) -> Option<Trace> {
        self.with_world(|w| w.trace().cloned())
    }

    /// Virtual milliseconds since the start.
    pub fn now_ms(&self) -> u64 {
        self.shared.now_ms()
    }

    /// Places `order` with the coordinator under `key`: the HTTP status and body the process
    /// runtime would answer (`Err` when the coordinator was down: nothing ran), or `None` if
    /// no answer came within `timeout`.
    pub async fn place(
        &self,
        order: &Value,
        key: &str,
        timeout: Duration,
    ) -> Option<Result<(u16, Value), String>> {
        let order: Order = match serde_json::from_value(order.clone()) {
            Ok(order) => order,
            Err(e) => return Some(Ok((400, json!({ "error": e.to_string() })))),
        };
        let request = Request::Order(OrderRequest::Place {
            order,
            idempotency_key: Some(key.to_string()),
        });
        Some(match self.request(0, request, timeout).await? {
            Answer::Reply(reply) => Ok((reply.status(), reply.body())),
            Answer::Refused(why) => Err(why),
        })
    }
}

impl std::fmt::Debug for SimCluster {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SimCluster").finish_non_exhaustive()
    }
}

impl Drop for SimCluster {
    fn drop(&mut self) {
        if Arc::strong_count(&self.clock) == 1 {
            self.clock.abort();
        }
    }
}

/// Runs the world's events as virtual time reaches them.
async fn run_clock(shared: Arc<Shared>) {
    loop {
        let next = shared.with_world(false, |w| w.next_at());
        match next {
            Some(at) => {
                let due = shared.start + Duration::from_millis(at);
                tokio::select! {
                    biased;
                    () = shared.changed.notified() => {}
                    () = tokio::time::sleep_until(due) => {}
                }
            }
            None => shared.changed.notified().await,
        }
    }
}

/// The request the KV protocol makes of an operation, if it takes it.
fn request_of(op: &Op) -> Option<ClientRequest> {
    Some(match op.clone() {
        Op::Read { key } => ClientRequest::Get { key },
        Op::Write { key, value } => ClientRequest::Put {
            key,
            value,
            context: None,
            idempotency_key: None,
        },
        Op::Cas { key, expect, value } => ClientRequest::Cas {
            key,
            expect,
            value,
            idempotency_key: None,
        },
        Op::Txn { ops } => ClientRequest::Txn {
            ops,
            idempotency_key: None,
        },
        Op::Add { .. } | Op::ReadAll | Op::Echo { .. } | Op::Generate => return None,
    })
}

impl Client for SimCluster {
    async fn invoke(&self, node: usize, op: &Op, timeout: Duration) -> Completion {
        let Some(request) = request_of(op) else {
            return not_taken(op);
        };
        match self
            .request(node as NodeId, Request::Kv(request), timeout)
            .await
        {
            Some(Answer::Reply(reply)) => completion_of(op, reply.status(), Some(reply.body())),
            Some(Answer::Refused(why)) => Completion::Fail {
                error: format!("not sent: {why}"),
            },
            None => Completion::Info {
                error: format!("no answer within {timeout:?}"),
            },
        }
    }

    fn nodes(&self) -> usize {
        SimCluster::nodes(self)
    }
}
