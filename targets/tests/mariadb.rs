//! The MariaDB client's completions on recorded error cases, against a real local server:
//! the victim of a deadlock (1213) and a transaction whose lock wait timed out (1205) are
//! definite aborts that leave nothing behind; a COMMIT that never reaches the server (held by a
//! proxy until the time limit passes) or whose connection is lost is unknown.
//!
//! Needs MariaDB's server (Debian: mariadb-server); skipped with a notice where it is absent, a
//! failure when `CI=true`.

use std::time::Duration;

use faultline_targets::client::{Client, Completion, Op};
use faultline_targets::mariadb::{MariaClient, MariaServer};
use faultline_targets::postgres::Isolation;
use mysql_async::prelude::Queryable;
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

fn mariadb_present() -> bool {
    match faultline_targets::mariadb::find_binaries() {
        Ok(_) => true,
        Err(e) if std::env::var("CI").as_deref() == Ok("true") => {
            panic!("CI=true but MariaDB is missing: {e}")
        }
        Err(e) => {
            eprintln!("skipping: {e}");
            false
        }
    }
}

fn append(key: i64, value: i64) -> Op {
    Op::Txn {
        ops: vec![json!(["append", key, value]), json!(["r", key, null])],
    }
}

fn read(keys: &[i64]) -> Op {
    Op::Txn {
        ops: keys.iter().map(|k| json!(["r", k, null])).collect(),
    }
}

/// A fresh local server, and a client of `url` (the server's when `None`) that reached it.
async fn start() -> (MariaServer, MariaClient) {
    let server = MariaServer::start().await.expect("the server starts");
    let client = client_of(server.url()).await;
    (server, client)
}

async fn client_of(url: String) -> MariaClient {
    let client = MariaClient::new(url, Isolation::RepeatableRead, false).unwrap();
    client
        .check_reachable(Duration::from_secs(5))
        .await
        .unwrap();
    client
}

/// A plain session on the server, for the other side of a conflict.
async fn session(server: &MariaServer) -> mysql_async::Conn {
    let opts = mysql_async::Opts::from_url(&server.url()).unwrap();
    mysql_async::Conn::new(opts).await.unwrap()
}

/// Waits until some transaction of the server waits for a row lock. InnoDB refreshes what
/// INNODB_TRX shows only when it was last read more than 0.1 s ago: poll slower than that.
async fn until_a_transaction_waits(watcher: &mut mysql_async::Conn) {
    for _ in 0..50 {
        tokio::time::sleep(Duration::from_millis(200)).await;
        let waiting: Option<i64> = watcher
            .query_first(
                "SELECT count(*) FROM information_schema.INNODB_TRX WHERE trx_state = 'LOCK WAIT'",
            )
            .await
            .unwrap();
        if waiting > Some(0) {
            return;
        }
    }
    panic!("no transaction began to wait for a lock within 10 s");
}

#[tokio::test]
async fn a_deadlock_victim_and_a_lock_wait_timeout_are_definite_aborts() {
    if !mariadb_present() {
        return;
    }
    let (server, client) = start().await;
    for key in [2, 3] {
        let created = client
            .invoke(0, &append(key, 1), Duration::from_secs(5))
            .await;
        assert!(matches!(created, Completion::Ok { .. }), "{created:?}");
    }
    let (mut other, mut watcher) = (session(&server).await, session(&server).await);
    // The other transaction holds key 2 and has written more rows than ours will: InnoDB rolls
    // back the transaction that changed fewer rows, so ours is the victim.
    other
        .query_drop(
            "START TRANSACTION; \
             INSERT INTO lists (k, v) VALUES (100, '0'), (101, '0'), (102, '0'), (103, '0'); \
             UPDATE lists SET v = CONCAT(v, ',9') WHERE k = 2",
        )
        .await
        .unwrap();
    let ours = tokio::spawn({
        let client = client_of(server.url()).await;
        async move {
            let txn = Op::Txn {
                ops: vec![json!(["append", 3, 2]), json!(["append", 2, 2])],
            };
            client.invoke(1, &txn, Duration::from_secs(30)).await
        }
    });
    // Ours holds key 3 and waits for key 2; the other now asks for key 3: a cycle.
    until_a_transaction_waits(&mut watcher).await;
    assert!(
        !ours.is_finished(),
        "ours ended before the cycle: {:?}",
        ours.await
    );
    let others_update = tokio::spawn(async move {
        let result = other
            .query_drop("UPDATE lists SET v = CONCAT(v, ',9') WHERE k = 3; COMMIT")
            .await;
        (other, result)
    });
    let victim = ours.await.unwrap();
    assert!(
        matches!(&victim, Completion::Fail { error } if error.starts_with("1213")),
        "{victim:?}"
    );
    let (_other, result) = others_update.await.unwrap();
    result.expect("the other transaction commits once ours is rolled back");
    let both = client
        .invoke(0, &read(&[2, 3]), Duration::from_secs(5))
        .await;
    assert_eq!(
        both,
        Completion::Ok {
            value: json!([["r", 2, [1, 9]], ["r", 3, [1, 9]]]),
            meta: None
        },
        "the victim left nothing behind"
    );

    // A lock held longer than innodb_lock_wait_timeout: ours gives up before COMMIT (1205).
    watcher
        .query_drop("SET GLOBAL innodb_lock_wait_timeout = 1")
        .await
        .unwrap();
    let mut holder = session(&server).await;
    holder
        .query_drop("START TRANSACTION; UPDATE lists SET v = CONCAT(v, ',8') WHERE k = 3")
        .await
        .unwrap();
    let waited = client_of(server.url())
        .await
        .invoke(
            0,
            &Op::Txn {
                ops: vec![json!(["append", 2, 3]), json!(["append", 3, 3])],
            },
            Duration::from_secs(30),
        )
        .await;
    assert!(
        matches!(&waited, Completion::Fail { error } if error.starts_with("1205")),
        "{waited:?}"
    );
    holder.query_drop("ROLLBACK").await.unwrap();
    let after = client
        .invoke(0, &read(&[2, 3]), Duration::from_secs(5))
        .await;
    assert_eq!(
        after,
        Completion::Ok {
            value: json!([["r", 2, [1, 9]], ["r", 3, [1, 9]]]),
            meta: None
        },
        "the timed-out transaction's first append was rolled back"
    );
}

/// What the proxy does with a connection once the client sends COMMIT.
#[derive(Clone, Copy)]
enum AtCommit {
    /// Stops forwarding, keeping the connection open: no answer ever comes.
    Hold,
    /// Closes both sides: the connection is lost.
    Close,
}

/// A proxy to `server` on a free loopback port that forwards until the client sends COMMIT.
async fn commit_breaking_proxy(server: u16, at_commit: AtCommit) -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        while let Ok((client, _)) = listener.accept().await {
            let upstream = TcpStream::connect(("127.0.0.1", server)).await.unwrap();
            tokio::spawn(forward(client, upstream, at_commit));
        }
    });
    port
}

async fn forward(client: TcpStream, upstream: TcpStream, at_commit: AtCommit) {
    let (mut from_client, mut to_client) = client.into_split();
    let (mut from_server, mut to_server) = upstream.into_split();
    let back = tokio::spawn(async move {
        let mut buf = vec![0; 65536];
        while let Ok(n @ 1..) = from_server.read(&mut buf).await {
            if to_client.write_all(&buf[..n]).await.is_err() {
                break;
            }
        }
    });
    let mut buf = vec![0; 65536];
    while let Ok(n @ 1..) = from_client.read(&mut buf).await {
        if buf[..n].windows(6).any(|w| w == b"COMMIT") {
            back.abort();
            match at_commit {
                AtCommit::Hold => std::future::pending::<()>().await,
                AtCommit::Close => return,
            }
        }
        if to_server.write_all(&buf[..n]).await.is_err() {
            break;
        }
    }
}

#[tokio::test]
async fn a_commit_without_an_answer_is_unknown() {
    if !mariadb_present() {
        return;
    }
    let (server, client) = start().await;
    let port = server
        .url()
        .split(':')
        .nth(2)
        .and_then(|rest| rest.split('/').next())
        .and_then(|port| port.parse::<u16>().ok())
        .expect("the URL names a port");
    let through = |proxy: u16| {
        server
            .url()
            .replace(&format!(":{port}/"), &format!(":{proxy}/"))
    };

    // COMMIT sent, never answered: when the time limit passes it may have committed.
    let held = client_of(through(commit_breaking_proxy(port, AtCommit::Hold).await)).await;
    let late = held.invoke(0, &append(4, 1), Duration::from_secs(1)).await;
    assert!(
        matches!(&late, Completion::Info { error } if error.contains("COMMIT")),
        "{late:?}"
    );
    // COMMIT sent, then the connection is lost: it may have committed.
    let closed = client_of(through(commit_breaking_proxy(port, AtCommit::Close).await)).await;
    let lost = closed
        .invoke(0, &append(5, 1), Duration::from_secs(5))
        .await;
    assert!(
        matches!(&lost, Completion::Info { error } if error.starts_with("during COMMIT")),
        "{lost:?}"
    );
    // Neither reached the server: the keys are empty.
    let neither = client
        .invoke(0, &read(&[4, 5]), Duration::from_secs(5))
        .await;
    assert_eq!(
        neither,
        Completion::Ok {
            value: json!([["r", 4, []], ["r", 5, []]]),
            meta: None
        }
    );
}
