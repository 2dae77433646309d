//! The `etcd://` adapter: operations through etcd's v3 JSON gateway (grpc-gateway).
//!
//! | op | request | ok | fail | info |
//! |---|---|---|---|---|
//! | read | `POST /v3/kv/range {key}` (`serializable` when asked) | 200: `kvs[0].value`, or null when there is no `kvs` | any error answer, refused | timeout, a 200 that is not a range answer |
//! | write | `POST /v3/kv/put {key, value}` | 200 | refused; errors that prove nothing was proposed (bad request, too many requests, no leader) | timeout, `request timed out`, `leader changed`, other 5xx |
//! | cas | `POST /v3/kv/txn` comparing the VALUE (or `create_revision` 0 for null) | 200 with `succeeded: true` | 200 without `succeeded` (mismatch), as write | as write |
//! | txn | a read-only `txn` of ranges over every key it touches; then, if it writes, one `txn` whose compares guard each key's `mod_revision` (or absence) and whose success branch puts the new values | the write `txn` succeeded (or a read-only transaction read) | the read failed; a compare failed (a key changed since it was read: aborted); as write | as write |
//!
//! Keys and values travel base64-encoded; a value is stored as its JSON text, so `5` is the
//! bytes `5` and a read of bytes that are not JSON yields them as a string. Revisions are JSON
//! strings in the gateway's answers; they go into the completion's `meta`.

use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use serde_json::{Value, json};

use crate::client::{Client, Completion, Op, TargetError, error_text, not_taken};

/// A client of an etcd cluster's members through the v3 JSON gateway.
#[derive(Clone, Debug)]
pub struct EtcdClient {
    http: reqwest::Client,
    urls: Vec<String>,
    serializable: bool,
}

impl EtcdClient {
    /// A client of the members at `urls` (`http://host:port`, their client URLs); reads are
    /// linearizable unless `serializable` (etcd's local, possibly stale reads).
    pub fn new(urls: Vec<String>, serializable: bool) -> Result<Self, TargetError> {
        if urls.is_empty() {
            return Err(TargetError(
                "an etcd target needs at least one host:port".into(),
            ));
        }
        let http = reqwest::Client::builder()
            .pool_max_idle_per_host(256)
            .tcp_nodelay(true)
            .build()
            .map_err(|e| TargetError(format!("cannot build an HTTP client: {e}")))?;
        Ok(EtcdClient {
            http,
            urls,
            serializable,
        })
    }

    /// The members' client URLs.
    pub fn urls(&self) -> &[String] {
        &self.urls
    }

    /// Checks that every member answers `GET /version` as etcd does.
    pub async fn check_reachable(&self, timeout: Duration) -> Result<(), TargetError> {
        for url in &self.urls {
            let version = format!("{url}/version");
            let answer = self.http.get(&version).timeout(timeout).send().await;
            let body: Option<Value> = match answer {
                Ok(r) => r.json().await.ok(),
                Err(e) => {
                    return Err(TargetError(format!(
                        "cannot reach etcd at {url}: {}",
                        error_text(&e)
                    )));
                }
            };
            if body.as_ref().and_then(|b| b.get("etcdserver")).is_none() {
                return Err(TargetError(format!(
                    "{version} did not answer as etcd does ({{\"etcdserver\": ...}}); \
                     is this an etcd client URL?"
                )));
            }
        }
        Ok(())
    }
}

/// The gateway path and JSON body that carry `op` (a transaction takes two requests of its
/// own: see `EtcdClient::txn`).
pub fn request(op: &Op, serializable: bool) -> (&'static str, Value) {
    match op {
        Op::Txn { .. } => ("/v3/kv/txn", json!({})),
        // `invoke` answers these itself; the gateway has nothing like them.
        Op::Add { .. } | Op::ReadAll | Op::Echo { .. } | Op::Generate => {
            ("/v3/kv/range", json!({}))
        }
        Op::Read { key } => {
            let mut body = json!({ "key": B64.encode(key) });
            if serializable {
                body["serializable"] = json!(true);
            }
            ("/v3/kv/range", body)
        }
        Op::Write { key, value } => (
            "/v3/kv/put",
            json!({ "key": B64.encode(key), "value": encode_value(value) }),
        ),
        Op::Cas { key, expect, value } => {
            let key = B64.encode(key);
            let compare = if expect.is_null() {
                json!({"key": key, "target": "CREATE", "result": "EQUAL", "create_revision": "0"})
            } else {
                json!({"key": key, "target": "VALUE", "result": "EQUAL", "value": encode_value(expect)})
            };
            (
                "/v3/kv/txn",
                json!({
                    "compare": [compare],
                    "success": [{"requestPut": {"key": key, "value": encode_value(value)}}],
                }),
            )
        }
    }
}

fn encode_value(value: &Value) -> String {
    B64.encode(value.to_string())
}

/// The value etcd holds as base64 text: its JSON, or the bytes as a string if not JSON.
fn decode_value(text: &str) -> Option<Value> {
    let bytes = B64.decode(text).ok()?;
    Some(serde_json::from_slice(&bytes).unwrap_or_else(|_| json!(String::from_utf8_lossy(&bytes))))
}

/// Whether an etcd error on a mutation proves it was never proposed, by its gRPC code and
/// message: malformed requests, rate limits and "no leader" are refused before Raft sees them;
/// a timeout, a leader change or a stopping server may still commit.
fn refused_before_proposal(code: Option<i64>, message: &str) -> bool {
    let message = message.to_ascii_lowercase();
    if message.contains("timed out")
        || message.contains("leader changed")
        || message.contains("stopped")
    {
        return false;
    }
    match code {
        // InvalidArgument, NotFound, AlreadyExists, PermissionDenied, ResourceExhausted,
        // FailedPrecondition, OutOfRange, Unimplemented, Unauthenticated.
        Some(3 | 5 | 6 | 7 | 8 | 9 | 11 | 12 | 16) => true,
        // Unavailable: only "no leader" and "too many requests" say nothing was proposed.
        Some(14) => message.contains("no leader") || message.contains("too many requests"),
        _ => false,
    }
}

/// Maps a gateway answer for `op` to a completion.
pub fn completion(op: &Op, status: u16, body: &[u8]) -> Completion {
    let parsed: Option<Value> = serde_json::from_slice(body).ok();
    if status != 200 {
        let message = parsed
            .as_ref()
            .and_then(|b| b.get("error").or(b.get("message")))
            .and_then(Value::as_str)
            .map_or_else(|| format!("HTTP {status}"), str::to_string);
        let code = parsed.as_ref().and_then(|b| b["code"].as_i64());
        let error = format!("{status}: {message}");
        return match op {
            // A read changes nothing: whatever went wrong, it did not happen.
            Op::Read { .. } => Completion::Fail { error },
            _ if code.is_none() && (400..500).contains(&status) => Completion::Fail { error },
            _ if refused_before_proposal(code, &message) => Completion::Fail { error },
            _ => Completion::Info { error },
        };
    }
    let Some(body) = parsed.filter(|b| b.get("header").is_some()) else {
        return match op {
            // The status alone says a put was applied; a txn's outcome is in its body.
            Op::Write { .. } => Completion::Ok {
                value: Value::Null,
                meta: None,
            },
            _ => Completion::Info {
                error: "200 with a body that is not an etcd answer".into(),
            },
        };
    };
    let revision = body["header"]["revision"].clone();
    match op {
        Op::Read { .. } => {
            let Some(kv) = body["kvs"].as_array().and_then(|kvs| kvs.first()) else {
                return Completion::Ok {
                    value: Value::Null,
                    meta: Some(json!({ "revision": revision })),
                };
            };
            // The gateway leaves out empty fields: no "value" is the empty value.
            let text = kv["value"].as_str().unwrap_or("");
            match decode_value(text) {
                Some(value) => Completion::Ok {
                    value,
                    meta: Some(json!({
                        "revision": revision,
                        "mod_revision": kv["mod_revision"].clone(),
                    })),
                },
                None => Completion::Info {
                    error: format!("a value that is not base64: {text:?}"),
                },
            }
        }
        Op::Write { .. } => Completion::Ok {
            value: Value::Null,
            meta: Some(json!({ "revision": revision })),
        },
        Op::Txn { .. } => Completion::Info {
            error: "a transaction's answer is read by the transaction itself".into(),
        },
        Op::Add { .. } | Op::ReadAll | Op::Echo { .. } | Op::Generate => not_taken(op),
        Op::Cas { .. } => {
            if body["succeeded"].as_bool() == Some(true) {
                Completion::Ok {
                    value: Value::Null,
                    meta: Some(json!({ "revision": revision })),
                }
            } else {
                Completion::Fail {
                    error: "mismatch".into(),
                }
            }
        }
    }
}

impl EtcdClient {
    /// Posts `body` to member `node`'s `path`: the status and body, or the completion a
    /// transport error gives (`fail` when nothing was sent or the request only reads).
    async fn post(
        &self,
        node: usize,
        path: &str,
        body: &Value,
        timeout: Duration,
        read_only: bool,
    ) -> Result<(u16, Vec<u8>), Completion> {
        let base = &self.urls[node % self.urls.len()];
        let sent = self
            .http
            .post(format!("{base}{path}"))
            .json(body)
            .timeout(timeout)
            .send()
            .await;
        let response = match sent {
            Ok(r) => r,
            Err(e) if e.is_connect() => {
                return Err(Completion::Fail {
                    error: format!("not sent: {}", error_text(&e)),
                });
            }
            Err(e) if read_only => {
                return Err(Completion::Fail {
                    error: error_text(&e),
                });
            }
            Err(e) => {
                return Err(Completion::Info {
                    error: error_text(&e),
                });
            }
        };
        let status = response.status().as_u16();
        match response.bytes().await {
            Ok(body) => Ok((status, body.to_vec())),
            Err(e) => {
                let error = format!("{status} with a body cut short: {}", error_text(&e));
                Err(if read_only {
                    Completion::Fail { error }
                } else {
                    Completion::Info { error }
                })
            }
        }
    }

    /// A transaction: read every key it touches in one read-only `txn`, run it on what was
    /// read, then write in one `txn` guarded by every key's `mod_revision` — optimistic
    /// concurrency control, serializable and, as etcd's reads are linearizable, strict.
    async fn txn(&self, node: usize, ops: &[Value], timeout: Duration) -> Completion {
        let mut keys: Vec<String> = ops.iter().map(|op| key_text(&op[1])).collect();
        keys.sort();
        keys.dedup();
        let ranges: Vec<Value> = keys
            .iter()
            .map(|k| json!({"requestRange": {"key": B64.encode(k)}}))
            .collect();
        let read = json!({ "success": ranges });
        let (status, body) = match self.post(node, "/v3/kv/txn", &read, timeout, true).await {
            Ok(answer) => answer,
            Err(completion) => return completion,
        };
        let Some(mut state) = read_state(&keys, status, &body) else {
            let text = String::from_utf8_lossy(&body);
            return Completion::Fail {
                error: format!(
                    "the reads failed: {status} {}",
                    text.chars().take(200).collect::<String>()
                ),
            };
        };
        let done = match crate::systems::run_txn(ops, &mut state) {
            Ok(done) => done,
            Err(why) => return Completion::Fail { error: why },
        };
        if state.written.is_empty() {
            return Completion::Ok {
                value: Value::Array(done),
                meta: None,
            };
        }
        let write = state.guarded_write();
        match self.post(node, "/v3/kv/txn", &write, timeout, false).await {
            Err(completion) => completion,
            // The write is a compare-and-set of many keys: answered as one.
            Ok((status, body)) => match completion(&WRITE_AS_CAS, status, &body) {
                Completion::Ok { meta, .. } => Completion::Ok {
                    value: Value::Array(done),
                    meta,
                },
                Completion::Fail { error } if error == "mismatch" => Completion::Fail {
                    error: "aborted: a key changed since the transaction read it".into(),
                },
                other => other,
            },
        }
    }
}

/// The operation whose answers a transaction's guarded write is read as.
const WRITE_AS_CAS: Op = Op::Cas {
    key: String::new(),
    expect: Value::Null,
    value: Value::Null,
};

/// A micro-operation's key as etcd's key text.
fn key_text(key: &Value) -> String {
    match key {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// What a transaction read: each key's value and `mod_revision` (none: absent), and what it
/// wrote.
struct ReadState {
    keys: Vec<(String, Option<String>, Value)>,
    written: std::collections::BTreeMap<String, Value>,
}

impl ReadState {
    /// One `txn` comparing every key read with what was read, putting every key written.
    fn guarded_write(&self) -> Value {
        let compare: Vec<Value> = self
            .keys
            .iter()
            .map(|(k, revision, _)| match revision {
                Some(rev) => json!({"key": B64.encode(k), "target": "MOD", "result": "EQUAL", "mod_revision": rev}),
                None => json!({"key": B64.encode(k), "target": "CREATE", "result": "EQUAL", "create_revision": "0"}),
            })
            .collect();
        let puts: Vec<Value> = self
            .written
            .iter()
            .map(|(k, v)| json!({"requestPut": {"key": B64.encode(k), "value": encode_value(v)}}))
            .collect();
        json!({ "compare": compare, "success": puts })
    }
}

impl crate::systems::TxnState for ReadState {
    fn get(&self, key: &str) -> Value {
        self.written.get(key).cloned().unwrap_or_else(|| {
            self.keys
                .iter()
                .find(|(k, _, _)| k == key)
                .map_or(Value::Null, |(_, _, v)| v.clone())
        })
    }

    fn set(&mut self, key: &str, value: Value) {
        self.written.insert(key.to_string(), value);
    }
}

/// The keys' values and revisions from a read-only `txn`'s answer; `None` if it is not one.
fn read_state(keys: &[String], status: u16, body: &[u8]) -> Option<ReadState> {
    if status != 200 {
        return None;
    }
    let body: Value = serde_json::from_slice(body).ok()?;
    let responses = body["responses"].as_array()?;
    let mut read = Vec::with_capacity(keys.len());
    for (key, response) in keys.iter().zip(responses) {
        let range = response
            .get("response_range")
            .or_else(|| response.get("responseRange"))?;
        let (revision, value) = match range["kvs"].as_array().and_then(|kvs| kvs.first()) {
            Some(kv) => (
                Some(kv["mod_revision"].as_str().unwrap_or("0").to_string()),
                decode_value(kv["value"].as_str().unwrap_or(""))?,
            ),
            None => (None, Value::Null),
        };
        read.push((key.clone(), revision, value));
    }
    (read.len() == keys.len()).then_some(ReadState {
        keys: read,
        written: Default::default(),
    })
}

impl Client for EtcdClient {
    async fn invoke(&self, node: usize, op: &Op, timeout: Duration) -> Completion {
        if let Op::Txn { ops } = op {
            return self.txn(node, ops, timeout).await;
        }
        if op.maelstrom_only() {
            return not_taken(op);
        }
        let (path, body) = request(op, self.serializable);
        let read_only = matches!(op, Op::Read { .. });
        match self.post(node, path, &body, timeout, read_only).await {
            Ok((status, body)) => completion(op, status, &body),
            Err(completion) => completion,
        }
    }

    fn nodes(&self) -> usize {
        self.urls.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read() -> Op {
        Op::Read { key: "foo".into() }
    }
    fn write() -> Op {
        Op::Write {
            key: "foo".into(),
            value: json!(5),
        }
    }
    fn cas() -> Op {
        Op::Cas {
            key: "foo".into(),
            expect: json!(5),
            value: json!(6),
        }
    }

    // Answers recorded from etcd 3.4.23 (Debian's etcd-server).
    const RANGE_HIT: &str = r#"{"header":{"cluster_id":"5995744186972308161","member_id":"6566013454123969325","revision":"2","raft_term":"2"},"kvs":[{"key":"Zm9v","create_revision":"2","mod_revision":"2","version":"1","value":"NQ=="}],"count":"1"}"#;
    const RANGE_MISS: &str = r#"{"header":{"cluster_id":"5995744186972308161","member_id":"6566013454123969325","revision":"2","raft_term":"2"}}"#;
    const PUT_OK: &str = r#"{"header":{"cluster_id":"5995744186972308161","member_id":"6591732889282553802","revision":"2","raft_term":"2"}}"#;
    const TXN_OK: &str = r#"{"header":{"cluster_id":"5995744186972308161","member_id":"6566013454123969325","revision":"3","raft_term":"2"},"succeeded":true,"responses":[{"response_put":{"header":{"revision":"3"}}}]}"#;
    const TXN_MISMATCH: &str = r#"{"header":{"cluster_id":"5995744186972308161","member_id":"6566013454123969325","revision":"2","raft_term":"2"}}"#;
    const TIMED_OUT: &str = r#"{"error":"etcdserver: request timed out","message":"etcdserver: request timed out","code":14}"#;
    const LEADER_CHANGED: &str = r#"{"error":"etcdserver: leader changed","message":"etcdserver: leader changed","code":14}"#;
    const NO_LEADER: &str =
        r#"{"error":"etcdserver: no leader","message":"etcdserver: no leader","code":14}"#;
    const BAD_JSON: &str = r#"{"error":"invalid character 'g' looking for beginning of value","message":"invalid character 'g' looking for beginning of value","code":3}"#;

    #[test]
    fn requests_carry_base64_keys_and_json_values() {
        let (path, body) = request(&read(), false);
        assert_eq!(path, "/v3/kv/range");
        assert_eq!(body, json!({"key": "Zm9v"}));
        let (_, body) = request(&read(), true);
        assert_eq!(body["serializable"], json!(true));
        let (path, body) = request(&write(), false);
        assert_eq!(path, "/v3/kv/put");
        assert_eq!(body, json!({"key": "Zm9v", "value": "NQ=="}));
        let (path, body) = request(&cas(), false);
        assert_eq!(path, "/v3/kv/txn");
        assert_eq!(body["compare"][0]["target"], "VALUE");
        assert_eq!(body["compare"][0]["value"], "NQ==");
        assert_eq!(body["success"][0]["requestPut"]["value"], "Ng==");
        let absent = Op::Cas {
            key: "foo".into(),
            expect: Value::Null,
            value: json!(1),
        };
        let (_, body) = request(&absent, false);
        assert_eq!(body["compare"][0]["target"], "CREATE");
        assert_eq!(body["compare"][0]["create_revision"], "0");
    }

    #[test]
    fn successful_answers() {
        assert_eq!(
            completion(&read(), 200, RANGE_HIT.as_bytes()),
            Completion::Ok {
                value: json!(5),
                meta: Some(json!({"revision": "2", "mod_revision": "2"})),
            }
        );
        assert!(matches!(
            completion(&read(), 200, RANGE_MISS.as_bytes()),
            Completion::Ok {
                value: Value::Null,
                ..
            }
        ));
        assert!(matches!(
            completion(&write(), 200, PUT_OK.as_bytes()),
            Completion::Ok { .. }
        ));
        assert!(matches!(
            completion(&cas(), 200, TXN_OK.as_bytes()),
            Completion::Ok { .. }
        ));
        assert_eq!(
            completion(&cas(), 200, TXN_MISMATCH.as_bytes()),
            Completion::Fail {
                error: "mismatch".into()
            }
        );
    }

    #[test]
    fn values_that_are_not_json_read_as_strings_and_empty_values_as_empty() {
        let raw = r#"{"header":{"revision":"4"},"kvs":[{"key":"Zm9v","mod_revision":"4","value":"YmFy"}]}"#;
        assert!(matches!(
            completion(&read(), 200, raw.as_bytes()),
            Completion::Ok { value, .. } if value == json!("bar")
        ));
        let empty = r#"{"header":{"revision":"4"},"kvs":[{"key":"Zm9v","mod_revision":"4"}]}"#;
        assert!(matches!(
            completion(&read(), 200, empty.as_bytes()),
            Completion::Ok { value, .. } if value == json!("")
        ));
        let not_base64 = r#"{"header":{"revision":"4"},"kvs":[{"key":"Zm9v","value":"%%%"}]}"#;
        assert!(matches!(
            completion(&read(), 200, not_base64.as_bytes()),
            Completion::Info { .. }
        ));
    }

    #[test]
    fn errors_map_by_what_they_prove() {
        // A timed-out put may still commit; so may one whose leader changed.
        for body in [TIMED_OUT, LEADER_CHANGED] {
            assert!(matches!(
                completion(&write(), 503, body.as_bytes()),
                Completion::Info { .. }
            ));
            assert!(matches!(
                completion(&cas(), 503, body.as_bytes()),
                Completion::Info { .. }
            ));
            // A read changes nothing.
            assert!(matches!(
                completion(&read(), 503, body.as_bytes()),
                Completion::Fail { .. }
            ));
        }
        for body in [NO_LEADER, BAD_JSON] {
            let status = if body == BAD_JSON { 400 } else { 503 };
            assert!(matches!(
                completion(&write(), status, body.as_bytes()),
                Completion::Fail { .. }
            ));
        }
        let Completion::Info { error } = completion(&write(), 503, TIMED_OUT.as_bytes()) else {
            unreachable!("checked above")
        };
        assert_eq!(error, "503: etcdserver: request timed out");
    }

    #[test]
    fn garbage_never_counts_as_a_result() {
        assert!(matches!(
            completion(&read(), 200, b"garbage"),
            Completion::Info { .. }
        ));
        assert!(matches!(
            completion(&cas(), 200, b"{}"),
            Completion::Info { .. }
        ));
        // The status alone says a put was applied.
        assert!(matches!(
            completion(&write(), 200, b""),
            Completion::Ok { .. }
        ));
        assert!(matches!(
            completion(&write(), 502, b"<html>bad gateway</html>"),
            Completion::Info { .. }
        ));
        assert!(matches!(
            completion(&write(), 404, b"not found"),
            Completion::Fail { .. }
        ));
    }
}
