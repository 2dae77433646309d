//! The PostgreSQL client's completions on recorded error cases, against a real local server:
//! a transaction that loses a write conflict (40001) is a definite abort, and so is one whose
//! time runs out before COMMIT was sent, and so is the victim of a deadlock (40P01); a committed
//! transaction reads what it wrote; a COMMIT whose answer never comes (the time limit passes, or
//! the connection is lost while it waits for a synchronous standby that does not exist) is unknown.
//!
//! Needs PostgreSQL's server (Debian: postgresql); skipped with a notice where it is absent, a
//! failure when `CI=true`.

use std::time::Duration;

use faultline_targets::client::{Client, Completion, Op};
use faultline_targets::postgres::{Isolation, PgClient, PgServer, PgSettings, PgSpec};
use serde_json::json;
use tokio_postgres::NoTls;

fn postgres_present() -> bool {
    match faultline_targets::postgres::find_bin_dir(None) {
        Ok(_) => true,
        Err(e) if std::env::var("CI").as_deref() == Ok("true") => {
            panic!("CI=true but PostgreSQL is missing: {e}")
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

/// A fresh local server and a client at `isolation` that reached it.
async fn start(isolation: Isolation) -> (PgServer, PgClient) {
    let server = PgServer::start(PgSpec {
        bin_dir: None,
        settings: PgSettings::default(),
    })
    .await
    .expect("the server starts");
    let client = PgClient::new(server.url(), isolation, false);
    client
        .check_reachable(Duration::from_secs(5))
        .await
        .unwrap();
    (server, client)
}

/// A plain session on the server, for the other side of a conflict.
async fn session(server: &PgServer) -> tokio_postgres::Client {
    let (session, connection) = tokio_postgres::connect(&server.url(), NoTls).await.unwrap();
    tokio::spawn(connection);
    session
}

#[tokio::test]
async fn conflicts_and_late_commits_are_definite_aborts() {
    if !postgres_present() {
        return;
    }
    let (server, client) = start(Isolation::Serializable).await;
    // Committed: the transaction reads its own append.
    let ok = client
        .invoke(0, &append(1, 1), Duration::from_secs(5))
        .await;
    assert_eq!(
        ok,
        Completion::Ok {
            value: json!([["append", 1, 1], ["r", 1, [1]]]),
            meta: None
        }
    );
    // Another transaction holds the row while ours waits for it.
    let other = session(&server).await;
    other
        .batch_execute(
            "BEGIN ISOLATION LEVEL SERIALIZABLE; \
             UPDATE lists SET v = v || ',9' WHERE k = 1",
        )
        .await
        .unwrap();
    // Out of time before COMMIT was sent: nothing committed, a definite abort.
    let late = client
        .invoke(0, &append(1, 2), Duration::from_millis(300))
        .await;
    assert!(
        matches!(&late, Completion::Fail { error } if error.contains("before COMMIT")),
        "{late:?}"
    );
    // The other commits while ours waits: ours loses the conflict (40001).
    let waiting = tokio::spawn({
        let client = PgClient::new(server.url(), Isolation::Serializable, false);
        async move {
            client
                .invoke(0, &append(1, 3), Duration::from_secs(10))
                .await
        }
    });
    tokio::time::sleep(Duration::from_millis(300)).await;
    other.batch_execute("COMMIT").await.unwrap();
    let lost = waiting.await.unwrap();
    assert!(
        matches!(&lost, Completion::Fail { error } if error.starts_with("40001")),
        "{lost:?}"
    );
    // What committed is exactly the first append and the other's.
    let read = client
        .invoke(
            0,
            &Op::Txn {
                ops: vec![json!(["r", 1, null])],
            },
            Duration::from_secs(5),
        )
        .await;
    assert_eq!(
        read,
        Completion::Ok {
            value: json!([["r", 1, [1, 9]]]),
            meta: None
        }
    );
}

/// Waits until some session of the server is waiting for a row lock.
async fn until_a_session_waits_for_a_lock(watcher: &tokio_postgres::Client) {
    for _ in 0..1000 {
        let waiting: i64 = watcher
            .query_one(
                "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock'",
                &[],
            )
            .await
            .unwrap()
            .get(0);
        if waiting > 0 {
            return;
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    panic!("no session began to wait for a lock within 2 s");
}

#[tokio::test]
async fn a_deadlock_victim_is_a_definite_abort() {
    if !postgres_present() {
        return;
    }
    let (server, client) = start(Isolation::ReadCommitted).await;
    for key in [2, 3] {
        let created = client
            .invoke(0, &append(key, 1), Duration::from_secs(5))
            .await;
        assert!(matches!(created, Completion::Ok { .. }), "{created:?}");
    }
    let (other, watcher) = (session(&server).await, session(&server).await);
    // The other session holds key 2 and, with a long deadlock_timeout, never looks for the
    // deadlock itself: the server's detector runs in our client's session, which is the victim.
    other
        .batch_execute(
            "BEGIN; SET LOCAL deadlock_timeout = '60s'; \
             UPDATE lists SET v = v || ',9' WHERE k = 2",
        )
        .await
        .unwrap();
    let ours = tokio::spawn({
        let client = PgClient::new(server.url(), Isolation::ReadCommitted, false);
        async move {
            let txn = Op::Txn {
                ops: vec![json!(["append", 3, 2]), json!(["append", 2, 2])],
            };
            client.invoke(1, &txn, Duration::from_secs(30)).await
        }
    });
    // Ours holds key 3 and waits for key 2; the other now waits for key 3: a cycle.
    until_a_session_waits_for_a_lock(&watcher).await;
    let others_update = tokio::spawn(async move {
        let result = other
            .batch_execute("UPDATE lists SET v = v || ',9' WHERE k = 3; COMMIT")
            .await;
        (other, result)
    });
    let victim = ours.await.unwrap();
    assert!(
        matches!(&victim, Completion::Fail { error } if error.starts_with("40P01")),
        "{victim:?}"
    );
    let (_other, result) = others_update.await.unwrap();
    result.expect("the other transaction commits once ours is rolled back");
    // Ours left nothing behind: each key holds its first append and the other's.
    let read = client
        .invoke(
            0,
            &Op::Txn {
                ops: vec![json!(["r", 2, null]), json!(["r", 3, null])],
            },
            Duration::from_secs(5),
        )
        .await;
    assert_eq!(
        read,
        Completion::Ok {
            value: json!([["r", 2, [1, 9]], ["r", 3, [1, 9]]]),
            meta: None
        }
    );
}

/// The sessions whose COMMIT was sent and waits for a synchronous standby.
async fn commits_waiting(watcher: &tokio_postgres::Client) -> Vec<i32> {
    let rows = watcher
        .query(
            "SELECT pid FROM pg_stat_activity WHERE wait_event = 'SyncRep'",
            &[],
        )
        .await
        .unwrap();
    rows.iter().map(|row| row.get(0)).collect()
}

/// Waits until a session other than `known` waits in COMMIT; its pid.
async fn until_a_commit_waits(watcher: &tokio_postgres::Client, known: &[i32]) -> i32 {
    for _ in 0..1000 {
        let waiting = commits_waiting(watcher).await;
        if let Some(pid) = waiting.into_iter().find(|pid| !known.contains(pid)) {
            return pid;
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    panic!("no COMMIT began to wait for a standby within 2 s");
}

#[tokio::test]
async fn a_commit_without_an_answer_is_unknown() {
    if !postgres_present() {
        return;
    }
    let (server, client) = start(Isolation::Serializable).await;
    let admin = session(&server).await;
    // A synchronous standby that never comes: every COMMIT waits after it was sent.
    for statement in [
        "ALTER SYSTEM SET synchronous_standby_names = 'nobody'",
        "SELECT pg_reload_conf()",
    ] {
        admin.batch_execute(statement).await.unwrap();
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    // The time limit passes during COMMIT: it may have committed.
    let late = client
        .invoke(0, &append(4, 1), Duration::from_millis(500))
        .await;
    assert!(
        matches!(&late, Completion::Info { error } if error.contains("COMMIT")),
        "{late:?}"
    );
    // The connection is lost during COMMIT: it may have committed.
    let earlier = commits_waiting(&admin).await;
    let ours = tokio::spawn({
        let client = PgClient::new(server.url(), Isolation::Serializable, false);
        async move {
            client
                .invoke(1, &append(5, 1), Duration::from_secs(30))
                .await
        }
    });
    let pid = until_a_commit_waits(&admin, &earlier).await;
    admin
        .execute("SELECT pg_terminate_backend($1)", &[&pid])
        .await
        .unwrap();
    let lost = ours.await.unwrap();
    assert!(
        matches!(&lost, Completion::Info { error } if error.starts_with("during COMMIT")),
        "{lost:?}"
    );
}

/// Gives the server a self-signed certificate for 127.0.0.1 and turns TLS on; the
/// certificate's path.
async fn serve_tls(server: &PgServer) -> std::path::PathBuf {
    use std::os::unix::fs::MetadataExt;
    let dir = server.data_dir();
    let made = std::process::Command::new("openssl")
        .args([
            "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
        ])
        .args([
            "-subj",
            "/CN=127.0.0.1",
            "-addext",
            "subjectAltName=IP:127.0.0.1",
        ])
        // A server's certificate, not an authority's (rustls refuses a CA as the end entity).
        .args(["-addext", "basicConstraints=critical,CA:FALSE"])
        .args(["-keyout", "server.key", "-out", "server.crt"])
        .current_dir(dir)
        .output()
        .expect("openssl runs");
    assert!(made.status.success(), "{made:?}");
    // The server reads its key only if its own account owns it and nobody else may read it.
    let owner = std::fs::metadata(dir).unwrap();
    for file in ["server.key", "server.crt"] {
        let path = dir.join(file);
        std::os::unix::fs::chown(&path, Some(owner.uid()), Some(owner.gid())).unwrap();
        std::fs::set_permissions(&path, std::os::unix::fs::PermissionsExt::from_mode(0o600))
            .unwrap();
    }
    let admin = session(server).await;
    for statement in ["ALTER SYSTEM SET ssl = on", "SELECT pg_reload_conf()"] {
        admin.batch_execute(statement).await.unwrap();
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    dir.join("server.crt")
}

#[tokio::test]
async fn a_url_asking_for_tls_gets_it_with_the_certificate_verified() {
    if !postgres_present() {
        return;
    }
    let (server, _) = start(Isolation::Serializable).await;
    let cert = serve_tls(&server).await;
    // Trusting the server's certificate: the transactions run over TLS.
    let url = format!(
        "{}?sslmode=require&sslrootcert={}",
        server.url(),
        cert.display()
    );
    let client = PgClient::new(url, Isolation::Serializable, false);
    client
        .check_reachable(Duration::from_secs(5))
        .await
        .expect("a TLS connection to a server whose certificate is trusted");
    let ok = client
        .invoke(0, &append(7, 1), Duration::from_secs(5))
        .await;
    assert!(matches!(ok, Completion::Ok { .. }), "{ok:?}");
    let admin = session(&server).await;
    let encrypted: i64 = admin
        .query_one("SELECT count(*) FROM pg_stat_ssl WHERE ssl", &[])
        .await
        .unwrap()
        .get(0);
    assert!(encrypted >= 1, "a client connection uses TLS");
    // Not trusting it: the connection is refused, and the error says why.
    let untrusted = PgClient::new(
        format!("{}?sslmode=require", server.url()),
        Isolation::Serializable,
        false,
    );
    let refused = untrusted
        .check_reachable(Duration::from_secs(5))
        .await
        .expect_err("a self-signed certificate nobody trusts");
    assert!(refused.0.contains("certificate"), "{refused}");
}
