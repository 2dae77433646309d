//! The MariaDB client: the same transactions, tables and completion mapping as PostgreSQL's
//! (see `crate::postgres`): errors before `COMMIT` (deadlock 1213, lock wait timeout 1205,
//! any other) → fail; `COMMIT` refused by the server → fail; the connection lost or the time
//! limit passed during `COMMIT` → info. An append is
//! `INSERT … ON DUPLICATE KEY UPDATE v = CONCAT(v, ',', ?)`.

use std::time::Duration;

use mysql_async::prelude::Queryable;
use mysql_async::{Conn, Opts, OptsBuilder, Pool};
use serde_json::{Value, json};
use tokio::time::Instant;

use crate::client::{Client, Completion, Op, TargetError};
use crate::postgres::Isolation;
use crate::postgres::client::list_of;

/// Creates the database and tables the workloads use, if they are not there.
pub(super) async fn create_tables(url: &str) -> Result<(), String> {
    let base = url.rsplit_once('/').map_or(url, |(base, _)| base);
    let opts = tcp_only(Opts::from_url(base).map_err(|e| e.to_string())?);
    let mut conn = Conn::new(opts).await.map_err(|e| e.to_string())?;
    conn.query_drop(
        "CREATE DATABASE IF NOT EXISTS faultline;
         CREATE TABLE IF NOT EXISTS faultline.lists (k BIGINT PRIMARY KEY, v TEXT NOT NULL) ENGINE=InnoDB;
         CREATE TABLE IF NOT EXISTS faultline.registers (k BIGINT PRIMARY KEY, v BIGINT NOT NULL) ENGINE=InnoDB;",
    )
    .await
    .map_err(|e| e.to_string())?;
    let _ = conn.disconnect().await;
    Ok(())
}

/// `opts` without the driver's switch to the server's Unix socket after a TCP connection to
/// a loopback address: faultline tests the path it was given, which is where its proxy (packet
/// faults) sits.
fn tcp_only(opts: Opts) -> Opts {
    OptsBuilder::from_opts(opts).prefer_socket(false).into()
}

/// A client of one MariaDB server: a pool of connections.
#[derive(Debug)]
pub struct MariaClient {
    url: String,
    pool: Pool,
    isolation: Isolation,
    registers: bool,
}

enum Ended {
    Committed(Vec<Value>),
    Aborted(String),
    Unknown(String),
}

impl MariaClient {
    /// A client of the server at `url`, running every transaction at `isolation`; reads are
    /// of registers when `registers`, else of lists.
    pub fn new(url: String, isolation: Isolation, registers: bool) -> Result<Self, TargetError> {
        let opts = Opts::from_url(&url).map_err(|e| TargetError(format!("{url}: {e}")))?;
        if opts.ssl_opts().is_some() && !cfg!(feature = "https") {
            return Err(TargetError(format!(
                "{url} asks for TLS: build faultline with `--features https`"
            )));
        }
        let opts = tcp_only(opts);
        Ok(MariaClient {
            pool: Pool::new(opts),
            url,
            isolation,
            registers,
        })
    }

    /// Checks that the server answers, and creates the tables.
    pub async fn check_reachable(&self, timeout: Duration) -> Result<(), TargetError> {
        tokio::time::timeout(timeout, create_tables(&self.url))
            .await
            .map_err(|_| TargetError(format!("{}: no answer within {timeout:?}", self.url)))?
            .map_err(|e| TargetError(format!("cannot reach {}: {e}", self.url)))
    }

    async fn transaction(&self, conn: &mut Conn, ops: &[Value], deadline: Instant) -> Ended {
        let begin = format!(
            "SET TRANSACTION ISOLATION LEVEL {}; START TRANSACTION",
            self.isolation.sql()
        );
        if let Err(why) = step(deadline, conn.query_drop(begin)).await {
            return Ended::Aborted(why);
        }
        let mut done = Vec::with_capacity(ops.len());
        for op in ops {
            match micro_op(conn, op, self.registers, deadline).await {
                Ok(value) => done.push(value),
                Err(why) => {
                    let rollback = conn.query_drop("ROLLBACK");
                    let _ = tokio::time::timeout(Duration::from_millis(200), rollback).await;
                    return Ended::Aborted(why);
                }
            }
        }
        match tokio::time::timeout_at(deadline, conn.query_drop("COMMIT")).await {
            Ok(Ok(())) => Ended::Committed(done),
            Ok(Err(mysql_async::Error::Server(e))) => {
                Ended::Aborted(format!("{} {}", e.code, e.message))
            }
            Ok(Err(e)) => Ended::Unknown(format!("during COMMIT: {e}")),
            Err(_) => Ended::Unknown("no answer to COMMIT in time".into()),
        }
    }
}

async fn step<T>(
    deadline: Instant,
    future: impl std::future::Future<Output = Result<T, mysql_async::Error>>,
) -> Result<T, String> {
    match tokio::time::timeout_at(deadline, future).await {
        Ok(Ok(value)) => Ok(value),
        Ok(Err(mysql_async::Error::Server(e))) => Err(format!("{} {}", e.code, e.message)),
        Ok(Err(e)) => Err(e.to_string()),
        Err(_) => Err("the time limit passed before COMMIT".into()),
    }
}

async fn micro_op(
    conn: &mut Conn,
    op: &Value,
    registers: bool,
    deadline: Instant,
) -> Result<Value, String> {
    let (Some(f), Some(key)) = (op[0].as_str(), op[1].as_i64()) else {
        return Err(format!(
            "micro-operation {op}: expected [f, integer key, value]"
        ));
    };
    match f {
        "append" => {
            let element = op[2].to_string();
            let sql = "INSERT INTO lists (k, v) VALUES (?, ?) \
                       ON DUPLICATE KEY UPDATE v = CONCAT(v, ',', ?)";
            step(deadline, conn.exec_drop(sql, (key, &element, &element))).await?;
            Ok(op.clone())
        }
        "w" => {
            let value = op[2]
                .as_i64()
                .ok_or_else(|| format!("micro-operation {op}: a register holds integers"))?;
            let sql = "INSERT INTO registers (k, v) VALUES (?, ?) ON DUPLICATE KEY UPDATE v = ?";
            step(deadline, conn.exec_drop(sql, (key, value, value))).await?;
            Ok(op.clone())
        }
        "r" if registers => {
            let sql = "SELECT v FROM registers WHERE k = ?";
            let value: Option<i64> = step(deadline, conn.exec_first(sql, (key,))).await?;
            Ok(json!(["r", key, value]))
        }
        "r" => {
            let sql = "SELECT v FROM lists WHERE k = ?";
            let text: Option<String> = step(deadline, conn.exec_first(sql, (key,))).await?;
            Ok(json!(["r", key, list_of(text.as_deref())]))
        }
        other => Err(format!("micro-operation {op}: unknown `{other}`")),
    }
}

impl Client for MariaClient {
    async fn invoke(&self, _node: usize, op: &Op, timeout: Duration) -> Completion {
        let Op::Txn { ops } = op else {
            return Completion::Fail {
                error: "MariaDB targets run the list-append and rw-register workloads".into(),
            };
        };
        let deadline = Instant::now() + timeout;
        let mut conn = match tokio::time::timeout_at(deadline, self.pool.get_conn()).await {
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
        match self.transaction(&mut conn, ops, deadline).await {
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
