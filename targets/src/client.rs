//! Clients of targets: send one operation, get one completion, mapped exactly as the faultline
//! KV protocol table says (DESIGN §4).
//!
//! | outcome | GET | PUT | cas |
//! |---|---|---|---|
//! | ok | 200 (value), 404 (null) | 200 | 200 |
//! | fail | 503, other 4xx, connection refused | 503, other 4xx, connection refused | 412 (mismatch), 503, other 4xx, refused |
//! | info | timeout, reset, other 5xx, a 200 with an unreadable body | timeout, reset, 504, other 5xx | as PUT |
//!
//! A refused connection is `fail` because nothing was sent; anything that can go wrong after
//! the request left is `info`: it may have been applied. A transaction (`POST /txn`) completes
//! ok with the 200's `{"ops": [...]}`, fail on 409 (aborted) or 503, info otherwise.

use std::time::Duration;

use serde_json::{Value, json};

/// An operation as the runner sends it.
#[derive(Clone, Debug, PartialEq)]
pub enum Op {
    /// Read a key.
    Read {
        /// The key.
        key: String,
    },
    /// Write a value.
    Write {
        /// The key.
        key: String,
        /// The value.
        value: Value,
    },
    /// Compare-and-set.
    Cas {
        /// The key.
        key: String,
        /// The value the key must hold.
        expect: Value,
        /// The value to write.
        value: Value,
    },
    /// A transaction: micro-operations `["r", k, null]`, `["append", k, v]`, `["w", k, v]`,
    /// run atomically (or as the target's isolation allows). Completes `ok` with the
    /// micro-operations, reads filled in.
    Txn {
        /// The micro-operations.
        ops: Vec<Value>,
    },
    /// Add to a whole-object value: an element to a set (broadcast, g-set) or a delta to a
    /// counter. Maelstrom targets only.
    Add {
        /// The element or delta.
        value: Value,
    },
    /// Read a whole-object value (the set, the counter). Maelstrom targets only.
    ReadAll,
    /// Ask for `value` back. Maelstrom targets only.
    Echo {
        /// The payload.
        value: Value,
    },
    /// Ask for a new unique id. Maelstrom targets only.
    Generate,
}

impl Op {
    /// Whether only a Maelstrom target takes it (the KV protocol has no such request).
    pub fn maelstrom_only(&self) -> bool {
        matches!(
            self,
            Op::Add { .. } | Op::ReadAll | Op::Echo { .. } | Op::Generate
        )
    }
}

/// The completion of an operation a target does not take.
pub fn not_taken(op: &Op) -> Completion {
    Completion::Fail {
        error: format!("this target does not take {op:?}"),
    }
}

/// How an operation ended, as the history records it.
#[derive(Clone, Debug, PartialEq)]
pub enum Completion {
    /// It happened, with this result (reads: the value; writes: null).
    Ok {
        /// The value read.
        value: Value,
        /// What the target said beside it.
        meta: Option<Value>,
    },
    /// It certainly did not happen.
    Fail {
        /// Why; `"mismatch"` for a cas whose comparison failed.
        error: String,
    },
    /// Unknown: it may have happened.
    Info {
        /// What went wrong.
        error: String,
    },
}

/// A target the runner can send operations to.
pub trait Client: Send + Sync {
    /// Runs one operation against node `node` (an index into the target's nodes), waiting at
    /// most `timeout`.
    fn invoke(
        &self,
        node: usize,
        op: &Op,
        timeout: Duration,
    ) -> impl std::future::Future<Output = Completion> + Send;

    /// Runs one operation for runner client `client` (its number): a target whose clients
    /// keep state of their own (exec programs) keeps each to its own; others ignore it.
    fn invoke_as(
        &self,
        client: usize,
        node: usize,
        op: &Op,
        timeout: Duration,
    ) -> impl std::future::Future<Output = Completion> + Send {
        let _ = client;
        self.invoke(node, op, timeout)
    }

    /// How many nodes the target has.
    fn nodes(&self) -> usize;
}

/// A client of any server that speaks the faultline KV protocol.
#[derive(Clone, Debug)]
pub struct HttpClient {
    http: reqwest::Client,
    urls: Vec<String>,
    token: Option<String>,
}

/// A target URL that cannot be used.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct TargetError(pub String);

impl HttpClient {
    /// A client of the nodes at `urls` (`http://host:port`), with an optional bearer token.
    pub fn new(urls: Vec<String>, token: Option<String>) -> Result<Self, TargetError> {
        for url in &urls {
            if !(url.starts_with("http://") || url.starts_with("https://")) {
                return Err(TargetError(format!(
                    "`{url}` is not an http:// or https:// URL"
                )));
            }
            if url.starts_with("https://") && !cfg!(feature = "https") {
                return Err(TargetError(format!(
                    "`{url}` needs TLS: build faultline with `--features https`"
                )));
            }
        }
        let http = reqwest::Client::builder()
            .pool_max_idle_per_host(256)
            .tcp_nodelay(true)
            .build()
            .map_err(|e| TargetError(format!("cannot build an HTTP client: {e}")))?;
        Ok(HttpClient {
            http,
            urls: urls
                .into_iter()
                .map(|u| u.trim_end_matches('/').to_string())
                .collect(),
            token,
        })
    }

    /// The nodes' base URLs.
    pub fn urls(&self) -> &[String] {
        &self.urls
    }

    /// Checks that every node answers `GET /health`; the error names the first that does not.
    pub async fn check_reachable(&self, timeout: Duration) -> Result<(), TargetError> {
        for url in &self.urls {
            let health = format!("{url}/health");
            let mut request = self.http.get(&health).timeout(timeout);
            if let Some(token) = &self.token {
                request = request.bearer_auth(token);
            }
            match request.send().await {
                Ok(r) if r.status().is_success() => {}
                Ok(r) => {
                    return Err(TargetError(format!(
                        "{health} answered {}; is this a faultline KV server?",
                        r.status()
                    )));
                }
                Err(e) => {
                    return Err(TargetError(format!(
                        "cannot reach {url}: {}",
                        error_text(&e)
                    )));
                }
            }
        }
        Ok(())
    }
}

/// The innermost cause of a reqwest error, which says what actually happened.
pub(crate) fn error_text(e: &reqwest::Error) -> String {
    let mut source: &dyn std::error::Error = e;
    while let Some(inner) = source.source() {
        source = inner;
    }
    if e.is_timeout() {
        format!("timed out ({source})")
    } else {
        source.to_string()
    }
}

/// Maps an HTTP answer for `op` to a completion.
pub fn completion(op: &Op, status: u16, body: &[u8]) -> Completion {
    completion_of(op, status, serde_json::from_slice(body).ok())
}

/// [`completion`] of a body already parsed (`None`: not JSON).
pub fn completion_of(op: &Op, status: u16, parsed: Option<Value>) -> Completion {
    let error_of = |parsed: &Option<Value>| {
        parsed
            .as_ref()
            .and_then(|b| b.get("error"))
            .and_then(Value::as_str)
            .map(str::to_string)
            .unwrap_or_else(|| format!("HTTP {status}"))
    };
    match (op, status) {
        (Op::Txn { .. }, 200) => match parsed {
            Some(body) if body.get("ops").is_some_and(Value::is_array) => Completion::Ok {
                value: body["ops"].clone(),
                meta: body.get("meta").cloned(),
            },
            _ => Completion::Info {
                error: "200 with a body that is not {\"ops\": [...]}".into(),
            },
        },
        (Op::Txn { .. }, 409) => Completion::Fail {
            error: format!("aborted: {}", error_of(&parsed)),
        },
        (Op::Read { .. }, 200) => match parsed {
            Some(body) if body.get("value").is_some() => Completion::Ok {
                value: body["value"].clone(),
                meta: body.get("meta").cloned(),
            },
            _ => Completion::Info {
                error: "200 with a body that is not {\"value\": ...}".into(),
            },
        },
        (Op::Read { .. }, 404) => Completion::Ok {
            value: Value::Null,
            meta: parsed.and_then(|b| b.get("meta").cloned()),
        },
        (_, 200) => Completion::Ok {
            value: Value::Null,
            meta: parsed.and_then(|b| b.get("meta").cloned()),
        },
        (Op::Cas { .. }, 412) => Completion::Fail {
            error: "mismatch".into(),
        },
        (_, 503) => Completion::Fail {
            error: format!("503: {}", error_of(&parsed)),
        },
        (_, 400..=499) => Completion::Fail {
            error: format!("{status}: {}", error_of(&parsed)),
        },
        _ => Completion::Info {
            error: format!("{status}: {}", error_of(&parsed)),
        },
    }
}

fn encode_key(key: &str) -> String {
    key.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                char::from(b).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

impl Client for HttpClient {
    async fn invoke(&self, node: usize, op: &Op, timeout: Duration) -> Completion {
        let base = &self.urls[node % self.urls.len()];
        let request = match op {
            Op::Add { .. } | Op::ReadAll | Op::Echo { .. } | Op::Generate => return not_taken(op),
            Op::Read { key } => self.http.get(format!("{base}/kv/{}", encode_key(key))),
            Op::Write { key, value } => self
                .http
                .put(format!("{base}/kv/{}", encode_key(key)))
                .json(&json!({ "value": value })),
            Op::Cas { key, expect, value } => self
                .http
                .post(format!("{base}/kv/{}/cas", encode_key(key)))
                .json(&json!({ "expect": expect, "value": value })),
            Op::Txn { ops } => self
                .http
                .post(format!("{base}/txn"))
                .json(&json!({ "ops": ops })),
        };
        let mut request = request.timeout(timeout);
        if let Some(token) = &self.token {
            request = request.bearer_auth(token);
        }
        let response = match request.send().await {
            Ok(r) => r,
            Err(e) if e.is_connect() => {
                return Completion::Fail {
                    error: format!("not sent: {}", error_text(&e)),
                };
            }
            Err(e) => {
                return Completion::Info {
                    error: error_text(&e),
                };
            }
        };
        let status = response.status().as_u16();
        match response.bytes().await {
            Ok(body) => completion(op, status, &body),
            // The answer was cut off: the status alone still tells a write was applied.
            Err(e) if status == 200 && !matches!(op, Op::Read { .. } | Op::Txn { .. }) => {
                let _ = e;
                completion(op, status, b"")
            }
            Err(e) => Completion::Info {
                error: format!("{status} with a body cut short: {}", error_text(&e)),
            },
        }
    }

    fn nodes(&self) -> usize {
        self.urls.len()
    }
}

/// The client of whichever kind of target a run uses.
#[derive(Clone, Debug)]
pub enum AnyClient {
    /// A faultline KV protocol server.
    Http(HttpClient),
    /// etcd's v3 JSON gateway.
    Etcd(crate::etcd::EtcdClient),
    /// A PostgreSQL server.
    Postgres(std::sync::Arc<crate::postgres::PgClient>),
    /// A MariaDB server.
    Mariadb(std::sync::Arc<crate::mariadb::MariaClient>),
    /// The user's client programs.
    Exec(std::sync::Arc<crate::exec::ExecClient>),
    /// Maelstrom nodes, through faultline's router.
    Maelstrom(std::sync::Arc<crate::maelstrom::MaelstromClient>),
    /// A simulated bundled cluster.
    Sim(crate::sim::SimCluster),
}

impl AnyClient {
    /// Checks that every node answers as its kind of server should.
    pub async fn check_reachable(&self, timeout: Duration) -> Result<(), TargetError> {
        match self {
            AnyClient::Http(c) => c.check_reachable(timeout).await,
            AnyClient::Etcd(c) => c.check_reachable(timeout).await,
            AnyClient::Postgres(c) => c.check_reachable(timeout).await,
            AnyClient::Mariadb(c) => c.check_reachable(timeout).await,
            AnyClient::Exec(c) => c.check_reachable(timeout).await,
            // Every node answered `init` before the run began.
            AnyClient::Maelstrom(_) => Ok(()),
            // Simulated nodes are in this process.
            AnyClient::Sim(_) => Ok(()),
        }
    }
}

impl Client for AnyClient {
    async fn invoke(&self, node: usize, op: &Op, timeout: Duration) -> Completion {
        match self {
            AnyClient::Http(c) => c.invoke(node, op, timeout).await,
            AnyClient::Etcd(c) => c.invoke(node, op, timeout).await,
            AnyClient::Postgres(c) => c.invoke(node, op, timeout).await,
            AnyClient::Mariadb(c) => c.invoke(node, op, timeout).await,
            AnyClient::Exec(c) => c.invoke(node, op, timeout).await,
            AnyClient::Maelstrom(c) => c.invoke(node, op, timeout).await,
            AnyClient::Sim(c) => c.invoke(node, op, timeout).await,
        }
    }

    async fn invoke_as(
        &self,
        client: usize,
        node: usize,
        op: &Op,
        timeout: Duration,
    ) -> Completion {
        match self {
            AnyClient::Exec(c) => c.invoke_as(client, node, op, timeout).await,
            AnyClient::Maelstrom(c) => c.invoke_as(client, node, op, timeout).await,
            other => other.invoke(node, op, timeout).await,
        }
    }

    fn nodes(&self) -> usize {
        match self {
            AnyClient::Http(c) => c.nodes(),
            AnyClient::Etcd(c) => c.nodes(),
            AnyClient::Postgres(c) => c.nodes(),
            AnyClient::Mariadb(c) => c.nodes(),
            AnyClient::Exec(c) => c.nodes(),
            AnyClient::Maelstrom(c) => c.nodes(),
            AnyClient::Sim(c) => Client::nodes(c),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_protocol_table() {
        let read = Op::Read { key: "k".into() };
        let write = Op::Write {
            key: "k".into(),
            value: json!(1),
        };
        let cas = Op::Cas {
            key: "k".into(),
            expect: json!(1),
            value: json!(2),
        };
        assert_eq!(
            completion(&read, 200, br#"{"value": 3}"#),
            Completion::Ok {
                value: json!(3),
                meta: None
            }
        );
        assert!(matches!(
            completion(&read, 404, b""),
            Completion::Ok {
                value: Value::Null,
                ..
            }
        ));
        assert!(matches!(
            completion(&read, 200, b"garbage"),
            Completion::Info { .. }
        ));
        assert!(matches!(
            completion(&read, 503, b""),
            Completion::Fail { .. }
        ));
        assert!(matches!(
            completion(&read, 500, b""),
            Completion::Info { .. }
        ));
        assert!(matches!(
            completion(&write, 200, b"garbage"),
            Completion::Ok { .. }
        ));
        assert!(matches!(
            completion(&write, 503, b"{}"),
            Completion::Fail { .. }
        ));
        assert!(matches!(
            completion(&write, 504, b""),
            Completion::Info { .. }
        ));
        assert!(matches!(
            completion(&write, 502, b""),
            Completion::Info { .. }
        ));
        assert!(matches!(
            completion(&write, 400, b""),
            Completion::Fail { .. }
        ));
        assert_eq!(
            completion(&cas, 412, b""),
            Completion::Fail {
                error: "mismatch".into()
            }
        );
        assert!(matches!(
            completion(&cas, 504, b""),
            Completion::Info { .. }
        ));
        assert_eq!(encode_key("a b/c"), "a%20b%2Fc");
    }
}
