//! The runner: concurrent clients, paced to a total rate, for a time or an operation count,
//! each operation recorded as an invoke and a completion.
//!
//! Every client runs one operation at a time under its process number, bound to one node
//! (round-robin). An operation past `op_timeout` completes `info`; after an `info` the client
//! goes on under a fresh process number (its old request may still be in flight). When the
//! stop signal fires (Ctrl-C), clients stop at once: operations in flight stay without a
//! completion, which the checker reads as `info`.

use std::io;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use faultline_targets::client::{Client, Completion, Op};
use serde_json::{Value, json};
use tokio::sync::watch;
use tokio::task::JoinSet;

use crate::generator::{Generator, Workload, WorkloadOp, element_key};
use crate::recorder::{EventLine, Recorder, Who};

/// What to run.
#[derive(Clone, Debug)]
pub struct RunConfig {
    /// The workload.
    pub workload: Workload,
    /// Keys for register and cas.
    pub keys: usize,
    /// Concurrent clients.
    pub clients: usize,
    /// Operations per second in total; 0 means as fast as possible.
    pub rate: f64,
    /// Stop issuing after this long.
    pub time_limit: Option<Duration>,
    /// Stop after this many operations.
    pub ops: Option<u64>,
    /// An operation still running after this completes `info`.
    pub op_timeout: Duration,
    /// Seed of the workload's random choices.
    pub seed: u64,
    /// The target's node names, by index (`n1`, ...).
    pub nodes: Vec<String>,
    /// Whether each client talks to one node (round-robin); otherwise every operation goes to
    /// a random node.
    pub sticky: bool,
    /// How transactions are made (list-append, rw-register).
    pub txn: crate::txn::TxnShape,
}

/// How a run went.
#[derive(Clone, Debug, Default)]
pub struct RunSummary {
    /// Operations invoked.
    pub invoked: u64,
    /// Completed ok.
    pub ok: u64,
    /// Completed fail.
    pub fail: u64,
    /// Completed info.
    pub info: u64,
    /// Whether the stop signal ended it early.
    pub interrupted: bool,
    /// Set elements added (`0..elements`), for [`final_reads`].
    pub elements: u64,
    /// The first process number not yet used.
    pub next_process: u64,
}

struct Shared<C> {
    config: RunConfig,
    client: Arc<C>,
    recorder: Arc<Recorder>,
    generator: Mutex<Generator>,
    issued: AtomicU64,
    next_process: AtomicU64,
}

/// Runs the workload's main phase; returns when the time or operation budget is spent, or at
/// the stop signal. The set workload's final reads are [`final_reads`], run after the faults
/// are healed.
pub async fn run<C: Client + 'static>(
    config: RunConfig,
    client: Arc<C>,
    recorder: Arc<Recorder>,
    stop: watch::Receiver<bool>,
) -> io::Result<RunSummary> {
    if config.workload == Workload::Checkout {
        return Err(io::Error::other(
            "the checkout workload has its own runner: faultline_workloads::checkout::run",
        ));
    }
    let shared = Arc::new(Shared {
        generator: Mutex::new(
            Generator::new(config.workload, config.keys, config.seed).with_txn_shape(config.txn),
        ),
        issued: AtomicU64::new(0),
        next_process: AtomicU64::new(config.clients as u64),
        config,
        client,
        recorder: recorder.clone(),
    });
    let mut clients = JoinSet::new();
    for i in 0..shared.config.clients {
        clients.spawn(client_loop(shared.clone(), i, stop.clone()));
    }
    drive(clients, &recorder).await?;
    let counts = &recorder.counts;
    Ok(RunSummary {
        invoked: counts.invoked.load(Ordering::Relaxed),
        ok: counts.ok.load(Ordering::Relaxed),
        fail: counts.fail.load(Ordering::Relaxed),
        info: counts.info.load(Ordering::Relaxed),
        interrupted: *stop.borrow(),
        elements: shared
            .generator
            .lock()
            .expect("never held across a panic")
            .elements(),
        next_process: shared.next_process.load(Ordering::Relaxed),
    })
}

/// Waits for every client while flushing the history at least every
/// [`crate::recorder::FLUSH_EVERY`]; the first client error, if any, is the result.
pub(crate) async fn drive(
    mut clients: JoinSet<io::Result<()>>,
    recorder: &Arc<Recorder>,
) -> io::Result<()> {
    let flusher = {
        let recorder = recorder.clone();
        tokio::spawn(async move {
            let mut every = tokio::time::interval(crate::recorder::FLUSH_EVERY);
            loop {
                every.tick().await;
                if recorder.flush().is_err() {
                    return;
                }
            }
        })
    };
    let mut result = Ok(());
    while let Some(done) = clients.join_next().await {
        match done {
            Ok(Ok(())) => {}
            Ok(Err(e)) => result = Err(e),
            Err(e) => result = Err(io::Error::other(format!("a client task failed: {e}"))),
        }
    }
    flusher.abort();
    recorder.flush()?;
    result
}

fn stopped(stop: &watch::Receiver<bool>) -> bool {
    *stop.borrow()
}

/// How clients share out operations: a count, a rate and a time limit over all of them.
pub(crate) struct Pace<'a> {
    /// Operations handed out so far.
    pub(crate) issued: &'a AtomicU64,
    /// At most this many operations.
    pub(crate) ops: Option<u64>,
    /// Operations per second over all clients; 0 means as fast as possible.
    pub(crate) rate: f64,
    /// No operation starts after this.
    pub(crate) time_limit: Option<Duration>,
    /// Whose clock the time limit is on.
    pub(crate) recorder: &'a Recorder,
}

impl Pace<'_> {
    /// Waits for the next operation's slot and returns its number; `None` when the client
    /// must stop instead (stop fired, every operation handed out, or the time is up).
    pub(crate) async fn next(&self, stop: &watch::Receiver<bool>) -> Option<u64> {
        if stopped(stop) {
            return None;
        }
        let k = self.issued.fetch_add(1, Ordering::Relaxed);
        if self.ops.is_some_and(|n| k >= n) {
            return None;
        }
        let time_up = |t: Duration| self.time_limit.is_some_and(|limit| t >= limit);
        if self.rate > 0.0 {
            let at = Duration::from_secs_f64(k as f64 / self.rate);
            if time_up(at) {
                return None;
            }
            if let Some(wait) = at.checked_sub(self.recorder.elapsed()) {
                tokio::select! {
                    biased;
                    _ = tokio::time::sleep(wait) => {}
                    _ = stop_fired(stop.clone()) => return None,
                }
            }
        }
        (!time_up(self.recorder.elapsed())).then_some(k)
    }
}

/// Waits until the stop signal fires (forever if its sender is gone without firing).
pub(crate) async fn stop_fired(mut stop: watch::Receiver<bool>) {
    if stop.wait_for(|s| *s).await.is_err() {
        std::future::pending::<()>().await;
    }
}

async fn client_loop<C: Client>(
    shared: Arc<Shared<C>>,
    index: usize,
    stop: watch::Receiver<bool>,
) -> io::Result<()> {
    let config = &shared.config;
    let recorder = &shared.recorder;
    let nodes = shared.client.nodes().max(1);
    let mut node = index % nodes;
    let mut process = index as u64;
    let pace = Pace {
        issued: &shared.issued,
        ops: config.ops,
        rate: config.rate,
        time_limit: config.time_limit,
        recorder,
    };
    while pace.next(&stop).await.is_some() {
        let op = {
            let mut generator = shared.generator.lock().expect("never held across a panic");
            if !config.sticky {
                node = generator.pick_node(nodes);
            }
            generator.next_op()
        };
        let node_name = config.nodes.get(node).cloned();
        recorder.record(&EventLine {
            process: Who::Client(process),
            kind: "invoke",
            f: op.f,
            key: (!op.key.is_empty()).then_some(op.key.as_str()),
            value: &op.value,
            node: node_name.as_deref(),
            error: None,
            meta: None,
        })?;
        let call = shared
            .client
            .invoke_as(index, node, &op.op, config.op_timeout);
        let completion = tokio::select! {
            biased;
            c = tokio::time::timeout(config.op_timeout + Duration::from_millis(20), call) => {
                c.unwrap_or_else(|_| Completion::Info {
                    error: format!("no answer within {:?}", config.op_timeout),
                })
            }
            _ = stop_fired(stop.clone()) => return Ok(()),
        };
        let kind = record_completion(recorder, process, &op, node_name.as_deref(), &completion)?;
        if kind == "info" {
            process = shared.next_process.fetch_add(1, Ordering::Relaxed);
        }
    }
    Ok(())
}

/// Records how `op` of `process` ended; its kind (`ok`, `fail`, `info`).
fn record_completion(
    recorder: &Recorder,
    process: u64,
    op: &WorkloadOp,
    node: Option<&str>,
    completion: &Completion,
) -> io::Result<&'static str> {
    let (kind, value, error, meta) = match completion {
        // A read completes with the value read, a transaction with its reads filled in,
        // an echo with what came back, a generate with its id; the rest repeat their input.
        Completion::Ok { value, meta } => (
            "ok",
            if matches!(
                op.op,
                Op::Read { .. } | Op::Txn { .. } | Op::ReadAll | Op::Echo { .. } | Op::Generate
            ) {
                value
            } else {
                &op.value
            },
            None,
            meta.as_ref(),
        ),
        Completion::Fail { error } => ("fail", &op.value, Some(error.as_str()), None),
        Completion::Info { error } => ("info", &op.value, Some(error.as_str()), None),
    };
    recorder.record(&EventLine {
        process: Who::Client(process),
        kind,
        f: op.f,
        key: (!op.key.is_empty()).then_some(op.key.as_str()),
        value,
        node,
        error,
        meta,
    })?;
    Ok(kind)
}

/// One node's final read as the history records it: a `read` of `key` by a fresh process,
/// numbered after every one the main phase used.
struct FinalRead<'a> {
    recorder: &'a Recorder,
    process: u64,
    key: &'a str,
    node: Option<String>,
}

impl<'a> FinalRead<'a> {
    fn new(
        config: &RunConfig,
        recorder: &'a Recorder,
        summary: &RunSummary,
        node: usize,
        key: &'a str,
    ) -> Self {
        FinalRead {
            recorder,
            process: summary.next_process + node as u64,
            key,
            node: config.nodes.get(node).cloned(),
        }
    }

    /// Records its invocation or completion.
    fn record(&self, kind: &str, value: &Value, error: Option<&str>) -> io::Result<()> {
        self.recorder.record(&EventLine {
            process: Who::Client(self.process),
            kind,
            f: "read",
            key: Some(self.key),
            value,
            node: self.node.as_deref(),
            error,
            meta: None,
        })
    }
}

/// The end of a Maelstrom set or counter workload (broadcast, g-set, g-counter,
/// pn-counter): one read of the whole value through every node, recorded as a `read` with the
/// key `final` (which the set and counter checkers take as the final reads).
pub async fn final_whole_reads<C: Client + 'static>(
    config: &RunConfig,
    client: Arc<C>,
    recorder: Arc<Recorder>,
    summary: &RunSummary,
) -> io::Result<()> {
    for node in 0..client.nodes() {
        let read = FinalRead::new(
            config,
            &recorder,
            summary,
            node,
            faultline_checker::counter::FINAL,
        );
        let record =
            |kind: &str, value: &Value, error: Option<&str>| read.record(kind, value, error);
        record("invoke", &Value::Null, None)?;
        match client.invoke(node, &Op::ReadAll, config.op_timeout).await {
            Completion::Ok { value, .. } => record("ok", &value, None)?,
            Completion::Fail { error } => record("fail", &Value::Null, Some(&error))?,
            Completion::Info { error } => record("info", &Value::Null, Some(&error))?,
        }
    }
    recorder.flush()
}

/// The set workload's end: through every node, read every element that was added, and record
/// one `read` of the whole set per node.
pub async fn final_reads<C: Client + 'static>(
    config: &RunConfig,
    client: Arc<C>,
    recorder: Arc<Recorder>,
    summary: &RunSummary,
    stop: watch::Receiver<bool>,
) -> io::Result<()> {
    let elements = summary.elements;
    for node in 0..client.nodes() {
        let read = FinalRead::new(config, &recorder, summary, node, "set");
        let record =
            |kind: &str, value: &Value, error: Option<&str>| read.record(kind, value, error);
        record("invoke", &Value::Null, None)?;
        let mut present = Vec::new();
        let mut unsure = 0;
        for chunk in (0..elements).collect::<Vec<_>>().chunks(64) {
            if stopped(&stop) {
                return Ok(());
            }
            let mut reads = JoinSet::new();
            for &e in chunk {
                let client = client.clone();
                let timeout = config.op_timeout;
                reads.spawn(async move {
                    let op = Op::Read {
                        key: element_key(e),
                    };
                    (e, client.invoke(node, &op, timeout).await)
                });
            }
            while let Some(read) = reads.join_next().await {
                match read {
                    Ok((_, Completion::Ok { value, .. })) if value.is_null() => {}
                    // The element, or whatever else the key held (the checker calls it
                    // unexpected).
                    Ok((_, Completion::Ok { value, .. })) => present.push(value),
                    _ => unsure += 1,
                }
            }
        }
        present.sort_by_key(|v| (v.as_u64().unwrap_or(u64::MAX), v.to_string()));
        if unsure == 0 {
            record("ok", &json!(present), None)?;
        } else {
            let why = format!("{unsure} of {elements} element reads did not complete");
            record("info", &Value::Null, Some(&why))?;
        }
    }
    recorder.flush()
}
