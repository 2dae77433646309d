//! The `checkout` workload (DESIGN §5): clients place orders on a checkout system's
//! coordinator (`POST /orders`), each with an `Idempotency-Key`, retrying after a timeout or a
//! 5xx with the same order and key (up to `retries` times), and now and then sending the same
//! order twice at once (a double click). After the run and a quiet period it reads every
//! order's status from the coordinator and every service's state: the facts the saga checker
//! judges.
//!
//! Every attempt is an operation in the history: `f` `order`, `key` the order id, invoked with
//! the order, completed `ok` with the outcome (`completed`, `compensated`, `rejected`, or
//! `pending` when the coordinator accepted it durably and will finish it later), `fail` when it
//! certainly did not run (400, refused connection), `info` otherwise.

use std::collections::BTreeMap;
use std::io;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use faultline_checker::saga::{Effect, OrderFacts, SERVICES, SagaFacts, ServiceState};
use rand::{RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde_json::{Value, json};
use tokio::sync::watch;
use tokio::task::JoinSet;

use crate::recorder::{EventLine, Recorder, Who};
use crate::runner::{Pace, RunSummary, stop_fired};

/// What to run.
#[derive(Clone, Debug)]
pub struct CheckoutConfig {
    /// Concurrent clients.
    pub clients: usize,
    /// Orders per second in total (first attempts); 0: as fast as possible.
    pub rate: f64,
    /// Stop placing new orders after this long.
    pub time_limit: Duration,
    /// Stop after this many orders.
    pub ops: Option<u64>,
    /// An attempt without an answer after this long completes `info`.
    pub op_timeout: Duration,
    /// Attempts after the first, for an order whose outcome is unknown.
    pub retries: u32,
    /// Share of orders sent twice at once.
    pub double_click: f64,
    /// Seed of the choices.
    pub seed: u64,
}

/// The world before the run: what the services held.
#[derive(Clone, Debug, Default)]
pub struct Initial {
    stock: BTreeMap<String, i64>,
    balances: BTreeMap<String, i64>,
}

/// What the clients saw of each order.
#[derive(Debug, Default)]
pub struct Placed {
    orders: Vec<OrderFacts>,
}

struct Shared<S> {
    config: CheckoutConfig,
    shop: Arc<S>,
    recorder: Arc<Recorder>,
    initial: Initial,
    rng: Mutex<ChaCha8Rng>,
    issued: AtomicU64,
    next_process: AtomicU64,
    placed: Mutex<Vec<OrderFacts>>,
}

/// A checkout system as the workload reaches it: its coordinator takes orders, every node
/// shows its state. Over HTTP ([`HttpShop`]) or in the simulator.
pub trait Shop: Send + Sync + 'static {
    /// Places `order` under the idempotency `key`: the status and body answered, if any came
    /// within `timeout`.
    fn place(
        &self,
        order: &Value,
        key: &str,
        timeout: Duration,
    ) -> impl Future<Output = Result<(u16, Option<Value>), Unanswered>> + Send;
    /// Node `node`'s own state (`GET /state`: the coordinator first, then the services).
    fn state(&self, node: usize) -> impl Future<Output = Result<Value, String>> + Send;
    /// What to call node `node` in an error.
    fn name(&self, node: usize) -> String;
    /// How many nodes.
    fn nodes(&self) -> usize;
}

/// An attempt that got no answer.
#[derive(Debug)]
pub enum Unanswered {
    /// The request was never sent (a refused connection): the order certainly did not run.
    NotSent(String),
    /// The request left; what became of it is unknown.
    Lost(String),
}

/// A checkout system served over HTTP: `urls` the coordinator's, then the services'.
pub struct HttpShop {
    http: reqwest::Client,
    urls: Vec<String>,
}

impl HttpShop {
    /// A shop at `urls`.
    pub fn new(urls: &[String]) -> io::Result<Self> {
        Ok(HttpShop {
            http: reqwest::Client::builder()
                .pool_max_idle_per_host(256)
                .tcp_nodelay(true)
                .build()
                .map_err(io::Error::other)?,
            urls: urls.to_vec(),
        })
    }
}

impl Shop for HttpShop {
    async fn place(
        &self,
        order: &Value,
        key: &str,
        timeout: Duration,
    ) -> Result<(u16, Option<Value>), Unanswered> {
        let answer = self
            .http
            .post(format!("{}/orders", self.urls[0]))
            .header("Idempotency-Key", key)
            .json(order)
            .timeout(timeout)
            .send()
            .await;
        match answer {
            Err(e) if e.is_connect() => Err(Unanswered::NotSent(e.to_string())),
            Err(e) => Err(Unanswered::Lost(e.to_string())),
            Ok(response) => {
                let status = response.status().as_u16();
                Ok((status, response.json().await.ok()))
            }
        }
    }

    async fn state(&self, node: usize) -> Result<Value, String> {
        let url = format!("{}/state", self.urls[node]);
        let response = (self.http.get(&url))
            .timeout(Duration::from_secs(10))
            .send()
            .await
            .map_err(|e| format!("{url}: {e}"))?;
        if !response.status().is_success() {
            return Err(format!("{url} answered {}", response.status()));
        }
        response.json().await.map_err(|e| format!("{url}: {e}"))
    }

    fn name(&self, node: usize) -> String {
        format!("{}/state", self.urls[node])
    }

    fn nodes(&self) -> usize {
        self.urls.len()
    }
}

/// Whichever shop a run uses.
pub enum AnyShop {
    /// Over HTTP.
    Http(HttpShop),
    /// In the simulator.
    Sim(faultline_targets::sim::SimCluster),
}

impl Shop for AnyShop {
    async fn place(
        &self,
        order: &Value,
        key: &str,
        timeout: Duration,
    ) -> Result<(u16, Option<Value>), Unanswered> {
        match self {
            AnyShop::Http(shop) => shop.place(order, key, timeout).await,
            AnyShop::Sim(shop) => Shop::place(shop, order, key, timeout).await,
        }
    }

    async fn state(&self, node: usize) -> Result<Value, String> {
        match self {
            AnyShop::Http(shop) => shop.state(node).await,
            AnyShop::Sim(shop) => Shop::state(shop, node).await,
        }
    }

    fn name(&self, node: usize) -> String {
        match self {
            AnyShop::Http(shop) => shop.name(node),
            AnyShop::Sim(shop) => Shop::name(shop, node),
        }
    }

    fn nodes(&self) -> usize {
        match self {
            AnyShop::Http(shop) => shop.nodes(),
            AnyShop::Sim(shop) => Shop::nodes(shop),
        }
    }
}

impl Shop for faultline_targets::sim::SimCluster {
    async fn place(
        &self,
        order: &Value,
        key: &str,
        timeout: Duration,
    ) -> Result<(u16, Option<Value>), Unanswered> {
        match faultline_targets::sim::SimCluster::place(self, order, key, timeout).await {
            Some(Ok((status, body))) => Ok((status, Some(body))),
            Some(Err(refused)) => Err(Unanswered::NotSent(refused)),
            None => Err(Unanswered::Lost(format!("no answer within {timeout:?}"))),
        }
    }

    async fn state(&self, node: usize) -> Result<Value, String> {
        faultline_targets::sim::SimCluster::state(self, node as u32)
            .ok_or_else(|| format!("{} is not running", self.name(node)))
    }

    fn name(&self, node: usize) -> String {
        faultline_targets::systems::kv::node_name(node as u32)
    }

    fn nodes(&self) -> usize {
        faultline_targets::sim::SimCluster::nodes(self)
    }
}

/// Reads what the services hold before the run (`urls`: coordinator first, then inventory,
/// payment, shipping).
pub async fn initial_state(shop: &impl Shop) -> Result<Initial, String> {
    if shop.nodes() != 4 {
        return Err(format!(
            "a checkout system has a coordinator and three services; this target has {} nodes",
            shop.nodes()
        ));
    }
    let totals = |v: &Value| -> BTreeMap<String, i64> {
        v["totals"]
            .as_object()
            .map(|m| {
                m.iter()
                    .filter_map(|(k, v)| Some((k.clone(), v.as_i64()?)))
                    .collect()
            })
            .unwrap_or_default()
    };
    let inventory = shop.state(1).await?;
    let payment = shop.state(2).await?;
    let initial = Initial {
        stock: totals(&inventory),
        balances: totals(&payment),
    };
    if initial.stock.is_empty() || initial.balances.is_empty() {
        return Err(format!(
            "{} and {} hold no stock or no accounts: is this a checkout system?",
            shop.name(1),
            shop.name(2)
        ));
    }
    Ok(initial)
}

/// Places orders until the time or order budget is spent, or the stop signal fires.
pub async fn run<S: Shop>(
    config: CheckoutConfig,
    shop: Arc<S>,
    initial: Initial,
    recorder: Arc<Recorder>,
    stop: watch::Receiver<bool>,
) -> io::Result<(RunSummary, Placed)> {
    let shared = Arc::new(Shared {
        rng: Mutex::new(ChaCha8Rng::seed_from_u64(config.seed)),
        shop,
        issued: AtomicU64::new(0),
        next_process: AtomicU64::new(config.clients as u64),
        placed: Mutex::new(Vec::new()),
        initial,
        config,
        recorder: recorder.clone(),
    });
    let mut clients = JoinSet::new();
    for i in 0..shared.config.clients {
        clients.spawn(client_loop(shared.clone(), i as u64, stop.clone()));
    }
    crate::runner::drive(clients, &recorder).await?;
    let counts = &recorder.counts;
    let summary = RunSummary {
        invoked: counts.invoked.load(Ordering::Relaxed),
        ok: counts.ok.load(Ordering::Relaxed),
        fail: counts.fail.load(Ordering::Relaxed),
        info: counts.info.load(Ordering::Relaxed),
        interrupted: *stop.borrow(),
        elements: 0,
        next_process: shared.next_process.load(Ordering::Relaxed),
    };
    let orders = std::mem::take(&mut *shared.placed.lock().expect("not poisoned"));
    Ok((summary, Placed { orders }))
}

/// How one attempt ended.
enum Attempt {
    /// The order ended with this outcome.
    Outcome(String),
    /// It certainly did not run.
    Refused,
    /// Unknown.
    Unknown,
}

async fn client_loop<S: Shop>(
    shared: Arc<Shared<S>>,
    index: u64,
    stop: watch::Receiver<bool>,
) -> io::Result<()> {
    let config = &shared.config;
    let mut process = index;
    let pace = Pace {
        issued: &shared.issued,
        ops: config.ops,
        rate: config.rate,
        time_limit: Some(config.time_limit),
        recorder: &shared.recorder,
    };
    while let Some(k) = pace.next(&stop).await {
        let (order, double) = {
            let mut rng = shared.rng.lock().expect("not poisoned");
            let skus: Vec<&String> = shared.initial.stock.keys().collect();
            let accounts: Vec<&String> = shared.initial.balances.keys().collect();
            let order = json!({
                "order": format!("o{k}"),
                "sku": skus[rng.random_range(0..skus.len())],
                "qty": rng.random_range(1..=3),
                "account": accounts[rng.random_range(0..accounts.len())],
                "amount": rng.random_range(1..=100),
            });
            (order, rng.random_bool(config.double_click))
        };
        let key = format!("checkout-{}", order["order"].as_str().unwrap_or_default());
        let mut saw = None;
        for attempt in 0..=config.retries {
            let outcome = if double && attempt == 0 {
                // A double click: the same order twice at once, from two processes.
                let twin = shared.next_process.fetch_add(1, Ordering::Relaxed);
                let (a, b) = tokio::join!(
                    place(&shared, process, &order, &key, stop.clone()),
                    place(&shared, twin, &order, &key, stop.clone()),
                );
                match (a?, b?) {
                    (Some(Attempt::Outcome(s)), _) | (_, Some(Attempt::Outcome(s))) => {
                        Some(Attempt::Outcome(s))
                    }
                    (a, _) => a,
                }
            } else {
                place(&shared, process, &order, &key, stop.clone()).await?
            };
            match outcome {
                None => return Ok(()), // stopped mid-attempt
                Some(Attempt::Outcome(status)) => {
                    saw = Some(status);
                    break;
                }
                Some(Attempt::Refused) => break,
                Some(Attempt::Unknown) => {
                    // Its request may still be running: go on as a new process.
                    process = shared.next_process.fetch_add(1, Ordering::Relaxed);
                }
            }
        }
        let str_of = |f: &str| order[f].as_str().unwrap_or_default().to_string();
        shared
            .placed
            .lock()
            .expect("not poisoned")
            .push(OrderFacts {
                order: str_of("order"),
                sku: str_of("sku"),
                qty: order["qty"].as_i64().unwrap_or(0),
                account: str_of("account"),
                amount: order["amount"].as_i64().unwrap_or(0),
                client_saw: saw,
                final_status: None,
                half_done_ms: None,
                coordinator: Value::Null,
            });
    }
    Ok(())
}

/// One attempt at placing `order`, recorded; `None` if the stop signal cut it short.
async fn place<S: Shop>(
    shared: &Shared<S>,
    process: u64,
    order: &Value,
    key: &str,
    stop: watch::Receiver<bool>,
) -> io::Result<Option<Attempt>> {
    let id = order["order"].as_str().unwrap_or_default();
    let record = |kind: &str, value: &Value, error: Option<&str>| {
        shared.recorder.record(&EventLine {
            process: Who::Client(process),
            kind,
            f: "order",
            key: Some(id),
            value,
            node: Some("n1"),
            error,
            meta: None,
        })
    };
    record("invoke", order, None)?;
    let timeout = shared.config.op_timeout;
    let request = shared.shop.place(order, key, timeout);
    let answer = tokio::select! {
        biased;
        a = request => a,
        _ = stop_fired(stop) => return Ok(None),
    };
    let (attempt, value, error) = match answer {
        Err(Unanswered::NotSent(e)) => (Attempt::Refused, Value::Null, Some(e)),
        Err(Unanswered::Lost(e)) => (Attempt::Unknown, Value::Null, Some(e)),
        Ok((status, body)) => {
            let outcome = body
                .as_ref()
                .and_then(|b| b["value"]["status"].as_str())
                .map(str::to_string);
            match (status, outcome) {
                // `pending` and `compensating`: the coordinator accepted the order durably and
                // will finish it; a retry would only join it.
                (200, Some(s))
                    if matches!(
                        s.as_str(),
                        "completed" | "compensated" | "rejected" | "pending" | "compensating"
                    ) =>
                {
                    (Attempt::Outcome(s.clone()), json!(s), None)
                }
                (400..=499, _) => (
                    Attempt::Refused,
                    Value::Null,
                    Some(format!("{status}: {}", body.unwrap_or_default())),
                ),
                _ => (
                    Attempt::Unknown,
                    Value::Null,
                    Some(format!("{status}: {}", body.unwrap_or_default())),
                ),
            }
        }
    };
    let kind = match attempt {
        Attempt::Outcome(_) => "ok",
        Attempt::Refused => "fail",
        Attempt::Unknown => "info",
    };
    record(
        kind,
        if kind == "ok" { &value } else { order },
        error.as_deref(),
    )?;
    Ok(Some(attempt))
}

/// After the quiet period: every order's final status and every service's state.
pub async fn final_state(shop: &impl Shop, initial: Initial, placed: Placed) -> SagaFacts {
    let mut facts = SagaFacts {
        initial_stock: initial.stock,
        initial_balances: initial.balances,
        orders: placed.orders,
        services: BTreeMap::new(),
    };
    let read = |node: usize| async move {
        for _ in 0..5 {
            if let Ok(v) = shop.state(node).await {
                return Some(v);
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
        None
    };
    if let Some(coordinator) = read(0).await {
        for order in &mut facts.orders {
            let saga = &coordinator["orders"][&order.order];
            order.final_status = saga["status"].as_str().map(str::to_string);
            order.half_done_ms = saga["half_done_ms"].as_u64();
            order.coordinator = saga.clone();
        }
    }
    for (i, name) in SERVICES.iter().enumerate() {
        let Some(state) = read(i + 1).await else {
            continue;
        };
        let totals = state["totals"]
            .as_object()
            .map(|m| {
                m.iter()
                    .filter_map(|(k, v)| Some((k.clone(), v.as_i64()?)))
                    .collect()
            })
            .unwrap_or_default();
        let orders = state["orders"]
            .as_object()
            .map(|m| {
                m.iter()
                    .map(|(k, v)| {
                        let n = |f: &str| v[f].as_u64().unwrap_or(0) as u32;
                        (
                            k.clone(),
                            Effect {
                                applied: n("applied"),
                                undone: n("undone"),
                            },
                        )
                    })
                    .collect()
            })
            .unwrap_or_default();
        let blocked_ms = state["blocked_ms"]
            .as_array()
            .map(|a| a.iter().filter_map(Value::as_u64).collect())
            .unwrap_or_default();
        facts.services.insert(
            name.to_string(),
            ServiceState {
                totals,
                orders,
                blocked_ms,
            },
        );
    }
    facts
}
