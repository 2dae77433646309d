//! The PostgreSQL client: transactions of list-append or rw-register micro-operations on two
//! tables, at one isolation level, with completions mapped as a database's outcomes are:
//!
//! | what happened | completion |
//! |---|---|
//! | `COMMIT` succeeded | ok, reads filled in |
//! | an error before `COMMIT` was sent (serialization failure 40001, deadlock 40P01, any other) | fail: the transaction was rolled back |
//! | `COMMIT` refused with an SQL error (e.g. 40001) | fail |
//! | the connection lost, or the time limit passed, during `COMMIT` | info: it may have committed |
//!
//! A list is stored as its elements joined by commas in a text column; an append is an
//! upsert that concatenates (`INSERT … ON CONFLICT (k) DO UPDATE SET v = t.v || ',' || $2`), as
//! Jepsen's PostgreSQL test does; a register is an upsert of an integer.

use std::sync::Mutex;
use std::time::Duration;

use serde_json::{Value, json};
use tokio::time::Instant;
use tokio_postgres::Client as Connection;
use tokio_postgres::error::SqlState;

use super::Isolation;
use crate::client::{Client, Completion, Op, TargetError};

/// Connects to `url` (over TLS when its `sslmode` asks and faultline has the `https` feature;
/// `sslrootcert=PATH` in its query names certificates to trust, as libpq's does), driving the
/// connection on its own task.
pub(super) async fn connect(url: &str) -> Result<Connection, String> {
    let (url, root_cert) = split_root_cert(url);
    #[cfg(feature = "https")]
    let (client, connection) = {
        let tls = super::tls::connector(root_cert.as_deref())?;
        tokio_postgres::connect(&url, tls)
            .await
            .map_err(|e| with_causes(&e))?
    };
    #[cfg(not(feature = "https"))]
    let (client, connection) = {
        let needs_tls = |e: String| format!("{e}: build faultline with `--features https` for TLS");
        if root_cert.is_some() {
            return Err(needs_tls("sslrootcert is for TLS".into()));
        }
        tokio_postgres::connect(&url, tokio_postgres::NoTls)
            .await
            .map_err(|e| {
                let text = e.to_string();
                if text.contains("TLS") {
                    needs_tls(text)
                } else {
                    text
                }
            })?
    };
    tokio::spawn(async move {
        let _ = connection.await;
    });
    Ok(client)
}

/// An error and what caused it, outermost first: "error performing TLS handshake: invalid
/// peer certificate: UnknownIssuer".
#[cfg(feature = "https")]
fn with_causes(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(cause) = source {
        let more = cause.to_string();
        if !text.contains(&more) {
            text = format!("{text}: {more}");
        }
        source = cause.source();
    }
    text
}

/// `url` without its `sslrootcert=PATH` query parameter (tokio-postgres does not take it),
/// and the path.
fn split_root_cert(url: &str) -> (String, Option<String>) {
    let Some((base, query)) = url.split_once('?') else {
        return (url.to_string(), None);
    };
    let mut root_cert = None;
    let kept: Vec<&str> = query
        .split('&')
        .filter(|pair| match pair.strip_prefix("sslrootcert=") {
            Some(path) => {
                root_cert = Some(path.to_string());
                false
            }
            None => true,
        })
        .collect();
    if kept.is_empty() {
        (base.to_string(), root_cert)
    } else {
        (format!("{base}?{}", kept.join("&")), root_cert)
    }
}

/// Creates the tables the workloads use, if they are not there.
pub(super) async fn create_tables(conn: &Connection) -> Result<(), String> {
    conn.batch_execute(
        "CREATE TABLE IF NOT EXISTS lists (k BIGINT PRIMARY KEY, v TEXT NOT NULL);
         CREATE TABLE IF NOT EXISTS registers (k BIGINT PRIMARY KEY, v BIGINT NOT NULL);",
    )
    .await
    .map_err(|e| e.to_string())
}

/// A client of one PostgreSQL server: a pool of connections, one per transaction in flight.
pub struct PgClient {
    url: String,
    isolation: Isolation,
    /// Whether reads are of registers (rw-register) rather than lists (list-append).
    registers: bool,
    idle: Mutex<Vec<Connection>>,
}

impl std::fmt::Debug for PgClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PgClient")
            .field("url", &self.url)
            .field("isolation", &self.isolation)
            .finish()
    }
}

/// How a transaction ended before its completion is decided.
enum Ended {
    Committed(Vec<Value>),
    /// Rolled back, or never committed: nothing applied.
    Aborted(String),
    /// Lost during COMMIT: unknown.
    Unknown(String),
}

impl PgClient {
    /// A client of the server at `url`, running every transaction at `isolation`; reads are
    /// of registers when `registers`, else of lists.
    pub fn new(url: String, isolation: Isolation, registers: bool) -> Self {
        PgClient {
            url,
            isolation,
            registers,
            idle: Mutex::new(Vec::new()),
        }
    }

    /// Checks that the server answers, and creates the tables.
    pub async fn check_reachable(&self, timeout: Duration) -> Result<(), TargetError> {
        let conn = tokio::time::timeout(timeout, connect(&self.url))
            .await
            .map_err(|_| TargetError(format!("{}: no answer within {timeout:?}", self.url)))?
            .map_err(|e| TargetError(format!("cannot reach {}: {e}", self.url)))?;
        create_tables(&conn)
            .await
            .map_err(|e| TargetError(format!("{}: cannot create the tables: {e}", self.url)))?;
        self.idle.lock().expect("not poisoned").push(conn);
        Ok(())
    }

    async fn connection(&self) -> Result<Connection, String> {
        let idle = self.idle.lock().expect("not poisoned").pop();
        match idle {
            Some(conn) if !conn.is_closed() => Ok(conn),
            _ => connect(&self.url).await,
        }
    }

    /// Runs `ops` as one transaction on `conn` within `deadline`.
    async fn transaction(&self, conn: &Connection, ops: &[Value], deadline: Instant) -> Ended {
        let begin = format!("BEGIN ISOLATION LEVEL {}", self.isolation.sql());
        if let Err(why) = step(deadline, conn.batch_execute(&begin)).await {
            return Ended::Aborted(why);
        }
        let mut done = Vec::with_capacity(ops.len());
        for op in ops {
            match step(deadline, micro_op(conn, op, self.registers))
                .await
                .and_then(|r| r)
            {
                Ok(value) => done.push(value),
                Err(why) => {
                    // Rolled back on the server whatever happens to this connection.
                    let _ = tokio::time::timeout(
                        Duration::from_millis(200),
                        conn.batch_execute("ROLLBACK"),
                    )
                    .await;
                    return Ended::Aborted(why);
                }
            }
        }
        match tokio::time::timeout_at(deadline, conn.batch_execute("COMMIT")).await {
            Ok(Ok(())) => Ended::Committed(done),
            Ok(Err(e)) if e.code().is_some() => Ended::Aborted(describe(&e)),
            Ok(Err(e)) => Ended::Unknown(format!("during COMMIT: {}", describe(&e))),
            Err(_) => Ended::Unknown("no answer to COMMIT in time".into()),
        }
    }
}

/// One step of a transaction before COMMIT, within the deadline.
async fn step<T>(
    deadline: Instant,
    future: impl std::future::Future<Output = Result<T, tokio_postgres::Error>>,
) -> Result<T, String> {
    match tokio::time::timeout_at(deadline, future).await {
        Ok(Ok(value)) => Ok(value),
        Ok(Err(e)) => Err(describe(&e)),
        Err(_) => Err("the time limit passed before COMMIT".into()),
    }
}

/// An error as `40001 serialization failure: …`.
fn describe(e: &tokio_postgres::Error) -> String {
    let code = e.code().map(SqlState::code).unwrap_or("");
    let kind = match e.code() {
        Some(c) if *c == SqlState::T_R_SERIALIZATION_FAILURE => "serialization failure: ",
        Some(c) if *c == SqlState::T_R_DEADLOCK_DETECTED => "deadlock: ",
        _ => "",
    };
    let message = e
        .as_db_error()
        .map_or_else(|| e.to_string(), |db| db.message().to_string());
    format!("{code} {kind}{message}").trim().to_string()
}

/// Runs one micro-operation; its completed form.
async fn micro_op(
    conn: &Connection,
    op: &Value,
    registers: bool,
) -> Result<Result<Value, String>, tokio_postgres::Error> {
    let (Some(f), Some(key)) = (op[0].as_str(), op[1].as_i64()) else {
        return Ok(Err(format!(
            "micro-operation {op}: expected [f, integer key, value]"
        )));
    };
    Ok(Ok(match f {
        "append" => {
            let element = op[2].to_string();
            conn.execute(
                "INSERT INTO lists AS t (k, v) VALUES ($1, $2) \
                 ON CONFLICT (k) DO UPDATE SET v = t.v || ',' || $2",
                &[&key, &element],
            )
            .await?;
            op.clone()
        }
        "w" => {
            let Some(value) = op[2].as_i64() else {
                return Ok(Err(format!(
                    "micro-operation {op}: a register holds integers"
                )));
            };
            conn.execute(
                "INSERT INTO registers AS t (k, v) VALUES ($1, $2) \
                 ON CONFLICT (k) DO UPDATE SET v = $2",
                &[&key, &value],
            )
            .await?;
            op.clone()
        }
        "r" if registers => {
            let row = conn
                .query_opt("SELECT v FROM registers WHERE k = $1", &[&key])
                .await?;
            let value: Option<i64> = row.map(|r| r.get(0));
            json!(["r", key, value])
        }
        "r" => {
            let row = conn
                .query_opt("SELECT v FROM lists WHERE k = $1", &[&key])
                .await?;
            let text: Option<String> = row.map(|r| r.get(0));
            json!(["r", key, list_of(text.as_deref())])
        }
        other => return Ok(Err(format!("micro-operation {op}: unknown `{other}`"))),
    }))
}

/// A list as a text column holds it (elements joined by commas; none when absent).
pub(crate) fn list_of(text: Option<&str>) -> Vec<Value> {
    text.iter()
        .flat_map(|t| t.split(','))
        .map(|e| serde_json::from_str(e).unwrap_or_else(|_| json!(e)))
        .collect()
}

impl Client for PgClient {
    async fn invoke(&self, _node: usize, op: &Op, timeout: Duration) -> Completion {
        let Op::Txn { ops } = op else {
            return Completion::Fail {
                error: "PostgreSQL targets run the list-append and rw-register workloads".into(),
            };
        };
        let deadline = Instant::now() + timeout;
        let conn = match tokio::time::timeout_at(deadline, self.connection()).await {
            Ok(Ok(conn)) => conn,
            Ok(Err(e)) => {
                return Completion::Fail {
                    error: format!("not sent: {e}"),
                };
            }
            Err(_) => {
                return Completion::Fail {
                    error: "no connection in time".into(),
                };
            }
        };
        let ended = self.transaction(&conn, ops, deadline).await;
        let reusable = !conn.is_closed() && !matches!(ended, Ended::Unknown(_));
        if reusable {
            self.idle.lock().expect("not poisoned").push(conn);
        }
        match ended {
            Ended::Committed(done) => Completion::Ok {
                value: Value::Array(done),
                meta: None,
            },
            Ended::Aborted(error) => Completion::Fail { error },
            Ended::Unknown(error) => Completion::Info { error },
        }
    }

    fn nodes(&self) -> usize {
        1
    }
}

#[cfg(test)]
mod tests {
    use super::split_root_cert;

    #[test]
    fn sslrootcert_is_taken_out_of_the_url() {
        let base = "postgres://u@h:5432/db";
        assert_eq!(split_root_cert(base), (base.to_string(), None));
        assert_eq!(
            split_root_cert(&format!("{base}?sslrootcert=/ca.pem")),
            (base.to_string(), Some("/ca.pem".to_string()))
        );
        assert_eq!(
            split_root_cert(&format!("{base}?sslmode=require&sslrootcert=/ca.pem&x=1")),
            (
                format!("{base}?sslmode=require&x=1"),
                Some("/ca.pem".to_string())
            )
        );
    }
}
