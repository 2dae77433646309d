//! The HTTP face of a node: the faultline KV protocol (DESIGN §4) plus the admin endpoints.
//!
//! | route | what |
//! |---|---|
//! | `GET /kv/{key}` | 200 `{"value": v, "meta": ...}`, 404 absent, 503 |
//! | `PUT /kv/{key}` `{"value": v, "context"?: c}` | 200, 503 nothing applied, 504 indeterminate |
//! | `POST /kv/{key}/cas` `{"expect": a, "value": b}` | 200, 412 mismatch, 503, 504 |
//! | `POST /txn` `{"ops": [["r", k, null], ["append", k, v], ["w", k, v]]}` | 200 `{"ops": [...reads filled...]}`, 409 aborted, 400 refused (a system that runs none), 503, 504 |
//! | `POST /orders` `{"order", "sku", "qty", "account", "amount"}` | checkout systems: 200 with the order's status (a saga answers `pending` for one accepted and still running), 504 in doubt, 400 |
//! | `GET /orders/{id}` | 200 the order's status, 404 unknown |
//! | `GET /state` | the system's whole state (a checkout service's totals and orders) |
//! | `GET /health` | 200 |
//! | `POST /admin/faults` | replace the fault layer's faults (`{}` heals) |
//! | `GET /admin/state[?key=k]` | ring, settings, faults, clock offset, counters (and what this node holds for `k`) |
//!
//! Limits: keys up to [`MAX_KEY`] bytes (longer: 400), bodies up to [`MAX_BODY`] bytes
//! (larger: 413). Bad JSON or a missing field: 400. Every error body is `{"error": "..."}`.
//! A mutation with an `Idempotency-Key` header is answered with the first *definite* result
//! for that key again (409 while the first is still running); a 504 or other unknown outcome
//! is not remembered, so a retry is evaluated afresh. The node remembers keys until it restarts.

use std::collections::HashMap;
use std::io;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde::Deserialize;
use serde_json::{Value, json};
use tokio::net::TcpListener;
use tokio::sync::{mpsc, oneshot};

use super::{Command, Faults};
use crate::systems::ClientRequest;
use crate::systems::orders::{Order, OrderRequest};

/// The longest key accepted, in bytes.
pub const MAX_KEY: usize = 256;
/// The largest request body accepted, in bytes.
pub const MAX_BODY: usize = 64 * 1024;

/// How long a handler waits for the node before answering 504 itself.
const NODE_WAIT: Duration = Duration::from_secs(70);

#[derive(Clone)]
struct App {
    commands: mpsc::Sender<Command>,
    idempotency: Arc<IdempotencyMemory>,
    name: String,
}

/// What the node remembers of mutations by their `Idempotency-Key`: the ones running and the
/// definite results of the ones that ended.
#[derive(Default)]
struct IdempotencyMemory(Mutex<HashMap<String, Remembered>>);

enum Remembered {
    Running,
    Done(u16, Value),
}

/// What to do with a mutation that carries an `Idempotency-Key`.
enum Begin<'a> {
    /// Run it; the guard forgets the key unless a definite result is remembered.
    Run(Running<'a>),
    /// Answer this remembered definite result again.
    Repeat(u16, Value),
    /// A request with this key is still running.
    StillRunning,
}

/// A mutation in flight under its key. Dropped without [`Running::finish`] (the handler was
/// cancelled), the key is forgotten, so a retry runs instead of waiting forever.
struct Running<'a> {
    memory: &'a IdempotencyMemory,
    key: Option<String>,
}

impl IdempotencyMemory {
    fn begin(&self, key: String) -> Begin<'_> {
        let mut seen = self.0.lock().expect("never held across a panic");
        match seen.get(&key) {
            Some(Remembered::Done(status, body)) => Begin::Repeat(*status, body.clone()),
            Some(Remembered::Running) => Begin::StillRunning,
            None => {
                seen.insert(key.clone(), Remembered::Running);
                Begin::Run(Running {
                    memory: self,
                    key: Some(key),
                })
            }
        }
    }
}

/// Whether a status is a definite outcome worth answering again: success, a refusal (4xx) or
/// 503 (nothing applied). A 504 and any other 5xx leave the outcome unknown.
fn is_definite(status: u16) -> bool {
    (200..500).contains(&status) || status == 503
}

impl Running<'_> {
    /// Remembers the outcome if it is definite; forgets the key otherwise.
    fn finish(mut self, status: u16, body: &Value) {
        let key = self.key.take().expect("finished once");
        let mut seen = self.memory.0.lock().expect("never held across a panic");
        if is_definite(status) {
            seen.insert(key, Remembered::Done(status, body.clone()));
        } else {
            seen.remove(&key);
        }
    }
}

impl Drop for Running<'_> {
    fn drop(&mut self) {
        if let Some(key) = self.key.take() {
            if let Ok(mut seen) = self.memory.0.lock() {
                seen.remove(&key);
            }
        }
    }
}

pub(super) async fn serve(
    listener: TcpListener,
    commands: mpsc::Sender<Command>,
    name: String,
) -> io::Result<()> {
    let app = App {
        commands,
        idempotency: Arc::default(),
        name,
    };
    let router = Router::new()
        .route("/health", get(health))
        .route("/kv/{key}", get(read).put(write))
        .route("/kv/{key}/cas", post(cas))
        .route("/txn", post(txn))
        .route("/orders", post(place_order))
        .route("/orders/{id}", get(get_order))
        .route("/state", get(bare_state))
        .route("/admin/faults", post(set_faults))
        .route("/admin/state", get(state))
        .with_state(app);
    axum::serve(listener, router).await
}

/// A request refused with a status and a message, answered as `{"error": message}`.
struct Refusal(StatusCode, String);

impl IntoResponse for Refusal {
    fn into_response(self) -> Response {
        (self.0, axum::Json(json!({ "error": self.1 }))).into_response()
    }
}

fn error(status: StatusCode, message: impl Into<String>) -> Response {
    Refusal(status, message.into()).into_response()
}

fn respond(status: u16, body: Value) -> Response {
    let status = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    (status, axum::Json(body)).into_response()
}

async fn health(State(app): State<App>) -> Response {
    respond(200, json!({ "status": "ok", "node": app.name }))
}

fn check_key(key: &str) -> Result<(), Refusal> {
    if key.len() > MAX_KEY {
        return Err(Refusal(
            StatusCode::BAD_REQUEST,
            format!("the key is {} bytes; the limit is {MAX_KEY}", key.len()),
        ));
    }
    Ok(())
}

/// Reads a JSON body within [`MAX_BODY`].
async fn json_body<T: serde::de::DeserializeOwned>(body: Body) -> Result<T, Refusal> {
    let bytes = axum::body::to_bytes(body, MAX_BODY).await.map_err(|_| {
        Refusal(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!("the body is over the limit of {MAX_BODY} bytes"),
        )
    })?;
    serde_json::from_slice(&bytes).map_err(|e| {
        Refusal(
            StatusCode::BAD_REQUEST,
            format!("the body is not the expected JSON: {e}"),
        )
    })
}

async fn ask(app: &App, request: ClientRequest) -> (u16, Value) {
    let (reply, answer) = oneshot::channel();
    if app
        .commands
        .send(Command::Client { request, reply })
        .await
        .is_err()
    {
        return (503, json!({ "error": "the node is shutting down" }));
    }
    match tokio::time::timeout(NODE_WAIT, answer).await {
        Ok(Ok(reply)) => (reply.status(), reply.body()),
        Ok(Err(_)) => (503, json!({ "error": "the node is shutting down" })),
        Err(_) => (504, json!({ "error": "the node did not answer in time" })),
    }
}

fn idempotency_key(headers: &HeaderMap) -> Option<String> {
    headers
        .get("idempotency-key")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string)
}

/// Runs a mutation once per `Idempotency-Key` on this node (systems that replicate their
/// dedup table, like Raft, also get the key and honour it across nodes).
async fn mutate(app: &App, headers: &HeaderMap, request: ClientRequest) -> Response {
    let (status, body) = mutate_once(app, headers, request).await;
    respond(status, body)
}

/// The status and body of a mutation, run once per `Idempotency-Key`.
async fn mutate_once(app: &App, headers: &HeaderMap, request: ClientRequest) -> (u16, Value) {
    let key = idempotency_key(headers);
    let Some(key) = key else {
        return ask(app, request).await;
    };
    let running = match app.idempotency.begin(key) {
        Begin::Run(running) => running,
        Begin::Repeat(status, body) => return (status, body),
        Begin::StillRunning => {
            let why = "a request with this Idempotency-Key is still running";
            return (409, json!({ "error": why }));
        }
    };
    let (status, body) = ask(app, request).await;
    running.finish(status, &body);
    (status, body)
}

async fn read(State(app): State<App>, Path(key): Path<String>) -> Result<Response, Refusal> {
    check_key(&key)?;
    let (status, body) = ask(&app, ClientRequest::Get { key }).await;
    Ok(respond(status, body))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct WriteBody {
    value: Value,
    #[serde(default)]
    context: Option<Value>,
}

async fn write(
    State(app): State<App>,
    Path(key): Path<String>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, Refusal> {
    check_key(&key)?;
    let body: WriteBody = json_body(body).await?;
    let request = ClientRequest::Put {
        key,
        value: body.value,
        context: body.context,
        idempotency_key: idempotency_key(&headers),
    };
    Ok(mutate(&app, &headers, request).await)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CasBody {
    expect: Value,
    value: Value,
}

async fn cas(
    State(app): State<App>,
    Path(key): Path<String>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, Refusal> {
    check_key(&key)?;
    let body: CasBody = json_body(body).await?;
    let request = ClientRequest::Cas {
        key,
        expect: body.expect,
        value: body.value,
        idempotency_key: idempotency_key(&headers),
    };
    Ok(mutate(&app, &headers, request).await)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct TxnBody {
    ops: Vec<Value>,
}

/// `POST /txn`: 200 `{"ops": [...reads filled...]}`, 409 aborted, else as a write.
async fn txn(State(app): State<App>, headers: HeaderMap, body: Body) -> Result<Response, Refusal> {
    let body: TxnBody = json_body(body).await?;
    if body.ops.is_empty() {
        return Err(Refusal(
            StatusCode::BAD_REQUEST,
            "a transaction needs at least one micro-operation".into(),
        ));
    }
    let request = ClientRequest::Txn {
        ops: body.ops,
        idempotency_key: idempotency_key(&headers),
    };
    let (status, mut body) = mutate_once(&app, &headers, request).await;
    if status == 200 {
        body = json!({ "ops": body["value"].take() });
    }
    Ok(respond(status, body))
}

async fn ask_order(app: &App, request: OrderRequest) -> Response {
    let (reply, answer) = oneshot::channel();
    if app
        .commands
        .send(Command::Order { request, reply })
        .await
        .is_err()
    {
        return error(StatusCode::SERVICE_UNAVAILABLE, "the node is shutting down");
    }
    match tokio::time::timeout(NODE_WAIT, answer).await {
        Ok(Ok(reply)) => respond(reply.status(), reply.body()),
        Ok(Err(_)) => error(StatusCode::SERVICE_UNAVAILABLE, "the node is shutting down"),
        Err(_) => error(
            StatusCode::GATEWAY_TIMEOUT,
            "the node did not answer in time",
        ),
    }
}

/// `POST /orders`: the coordinator dedups by order id in its durable log, so the
/// `Idempotency-Key` goes to the system rather than to this node's memory.
async fn place_order(State(app): State<App>, headers: HeaderMap, body: Body) -> Response {
    let order: Order = match json_body(body).await {
        Ok(order) => order,
        Err(refusal) => return refusal.into_response(),
    };
    let request = OrderRequest::Place {
        order,
        idempotency_key: idempotency_key(&headers),
    };
    ask_order(&app, request).await
}

async fn get_order(State(app): State<App>, Path(id): Path<String>) -> Result<Response, Refusal> {
    check_key(&id)?;
    Ok(ask_order(&app, OrderRequest::Get { id }).await)
}

/// `GET /state`: the system's own state, nothing of the runtime's.
async fn bare_state(State(app): State<App>) -> Response {
    ask_state(&app, None, true).await
}

/// Asks the node for its state.
async fn ask_state(app: &App, key: Option<String>, bare: bool) -> Response {
    let (reply, answer) = oneshot::channel();
    let command = Command::State { key, bare, reply };
    if app.commands.send(command).await.is_err() {
        return error(StatusCode::SERVICE_UNAVAILABLE, "the node is shutting down");
    }
    match answer.await {
        Ok(state) => respond(200, state),
        Err(_) => error(StatusCode::SERVICE_UNAVAILABLE, "the node is shutting down"),
    }
}

async fn set_faults(State(app): State<App>, body: Body) -> Response {
    let faults: Faults = match json_body(body).await {
        Ok(f) => f,
        Err(refusal) => return refusal.into_response(),
    };
    let (reply, answer) = oneshot::channel();
    if app
        .commands
        .send(Command::SetFaults { faults, reply })
        .await
        .is_err()
    {
        return error(StatusCode::SERVICE_UNAVAILABLE, "the node is shutting down");
    }
    match answer.await {
        Ok(Ok(faults)) => respond(200, json!(faults)),
        Ok(Err(why)) => error(StatusCode::BAD_REQUEST, why),
        Err(_) => error(StatusCode::SERVICE_UNAVAILABLE, "the node is shutting down"),
    }
}

#[derive(Deserialize)]
struct StateQuery {
    key: Option<String>,
}

async fn state(State(app): State<App>, Query(query): Query<StateQuery>) -> Response {
    ask_state(&app, query.key, false).await
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::systems::ClientReply;

    #[test]
    fn replies_map_to_protocol_statuses() {
        let ok = ClientReply::Ok {
            value: json!(1),
            meta: Value::Null,
        };
        assert_eq!((ok.status(), ok.body()), (200, json!({ "value": 1 })));
        assert_eq!(ClientReply::Mismatch.status(), 412);
        assert_eq!(ClientReply::Unavailable("x".into()).status(), 503);
        assert_eq!(ClientReply::Timeout("x".into()).status(), 504);
    }

    /// A retried write whose first try timed out is evaluated again, never told the stale
    /// 504 forever. See: issue 22.
    #[test]
    fn an_unknown_outcome_is_not_remembered() {
        let memory = IdempotencyMemory::default();
        let Begin::Run(first) = memory.begin("k".into()) else {
            panic!("a new key runs");
        };
        assert!(matches!(memory.begin("k".into()), Begin::StillRunning));
        first.finish(504, &json!({"error": "timeout"}));
        let Begin::Run(retry) = memory.begin("k".into()) else {
            panic!("a key whose outcome is unknown runs again");
        };
        retry.finish(200, &json!({"value": null}));
        assert!(matches!(memory.begin("k".into()), Begin::Repeat(200, _)));
    }

    #[test]
    fn definite_refusals_are_remembered_and_cancelled_requests_forgotten() {
        let memory = IdempotencyMemory::default();
        for (status, definite) in [(412, true), (503, true), (400, true), (500, false)] {
            let key = format!("k{status}");
            let Begin::Run(running) = memory.begin(key.clone()) else {
                panic!("a new key runs");
            };
            running.finish(status, &Value::Null);
            let repeated = matches!(memory.begin(key), Begin::Repeat(s, _) if s == status);
            assert_eq!(repeated, definite, "status {status}");
        }
        let cancelled = memory.begin("gone".into());
        drop(cancelled);
        assert!(matches!(memory.begin("gone".into()), Begin::Run(_)));
    }
}
