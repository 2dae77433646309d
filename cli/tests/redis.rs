//! Real Redis through the example exec client (examples/clients/redis_client.py): a primary
//! and two replicas on loopback, started here and stopped afterwards, each replica's link to the
//! primary through a proxy that delays it by 20 ms (replication lag, as between machines, so
//! the outcome does not hang on how loaded this machine is). Reads from the primary are
//! linearizable; reads from a replica are not — asynchronous replication serves stale values,
//! which the checker names. Needs redis-server (Debian: redis-server) and python3; without
//! them these tests say why and pass, except under `CI=true`.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

mod common;

fn redis_present() -> bool {
    let found = Command::new("redis-server")
        .arg("--version")
        .output()
        .map_err(|e| format!("redis-server: {e}"));
    common::server_present("redis-server", found)
}

/// A primary and its replicas, each a redis-server on a free loopback port with nothing
/// saved to disk; killed when dropped.
struct Replicated {
    servers: Vec<Child>,
    ports: Vec<u16>,
}

impl Replicated {
    fn start(dir: &Path, replicas: usize) -> Replicated {
        let ports: Vec<u16> = (0..=replicas)
            .map(|_| {
                let listener = TcpListener::bind("127.0.0.1:0").unwrap();
                listener.local_addr().unwrap().port()
            })
            .collect();
        let servers = ports
            .iter()
            .enumerate()
            .map(|(i, port)| {
                let mut command = Command::new("redis-server");
                command
                    .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
                    .args(["--save", "", "--appendonly", "no"])
                    .arg("--dir")
                    .arg(dir)
                    .stdout(Stdio::null());
                if i > 0 {
                    let lagging = lagging_proxy(ports[0], Duration::from_millis(20));
                    command.args(["--replicaof", "127.0.0.1", &lagging.to_string()]);
                }
                command.spawn().expect("redis-server starts")
            })
            .collect();
        let started = Replicated { servers, ports };
        started.wait_for_replicas();
        started
    }

    /// Waits until every replica's link to the primary is up.
    fn wait_for_replicas(&self) {
        let deadline = Instant::now() + Duration::from_secs(20);
        for port in &self.ports[1..] {
            loop {
                let info = Command::new("redis-cli")
                    .args(["-p", &port.to_string(), "info", "replication"])
                    .output()
                    .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
                    .unwrap_or_default();
                if info.contains("master_link_status:up") {
                    break;
                }
                assert!(
                    Instant::now() < deadline,
                    "replica {port} not linked: {info}"
                );
                std::thread::sleep(Duration::from_millis(50));
            }
        }
    }

    fn addresses(&self) -> String {
        let hosts: Vec<String> = self
            .ports
            .iter()
            .map(|p| format!("127.0.0.1:{p}"))
            .collect();
        hosts.join(",")
    }
}

/// A proxy to `upstream` on a free loopback port that holds everything coming from upstream
/// for `lag` before passing it on; its port. Its threads end with the test process.
fn lagging_proxy(upstream: u16, lag: Duration) -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for client in listener.incoming().flatten() {
            let Ok(server) = TcpStream::connect(("127.0.0.1", upstream)) else {
                continue;
            };
            let (mut to_server, mut from_client) = (server.try_clone().unwrap(), client);
            let (mut from_server, mut to_client) = (server, from_client.try_clone().unwrap());
            std::thread::spawn(move || copy(&mut from_client, &mut to_server, Duration::ZERO));
            std::thread::spawn(move || copy(&mut from_server, &mut to_client, lag));
        }
    });
    port
}

/// Copies `from` to `to`, each chunk `lag` after it arrived, until either side closes.
fn copy(from: &mut TcpStream, to: &mut TcpStream, lag: Duration) {
    let (chunks, delayed) = std::sync::mpsc::channel::<(Instant, Vec<u8>)>();
    let mut writer = to.try_clone().unwrap();
    std::thread::spawn(move || {
        for (arrived, chunk) in delayed {
            std::thread::sleep((arrived + lag).saturating_duration_since(Instant::now()));
            if writer.write_all(&chunk).is_err() {
                break;
            }
        }
    });
    let mut buf = vec![0; 64 * 1024];
    while let Ok(n @ 1..) = from.read(&mut buf) {
        if chunks.send((Instant::now(), buf[..n].to_vec())).is_err() {
            break;
        }
    }
    let _ = to.shutdown(std::net::Shutdown::Both);
}

impl Drop for Replicated {
    fn drop(&mut self) {
        for server in &mut self.servers {
            let _ = server.kill();
            let _ = server.wait();
        }
    }
}

/// The linearizability verdict of a register run through the example client, reading as
/// `read` says, as fast as it goes.
fn verdict(redis: &Replicated, read: &str, seed: &str) -> Value {
    let client = Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/clients/redis_client.py");
    let out = tempfile::tempdir().unwrap();
    let output = Command::new(env!("CARGO_BIN_EXE_faultline"))
        .args(["run", "--target"])
        .arg(format!("exec:python3 {}", client.display()))
        .args([
            "--nodes-addr",
            &redis.addresses(),
            "--set",
            &format!("read={read}"),
        ])
        .args([
            "--workload",
            "register",
            "--rate",
            "0",
            "--time-limit",
            "5s",
        ])
        .args(["--seed", seed, "--format", "json", "--out"])
        .arg(out.path())
        .output()
        .unwrap();
    let verdict: Value = serde_json::from_slice(&output.stdout)
        .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&output.stderr)));
    verdict["checkers"][0].clone()
}

#[test]
fn replica_reads_are_stale_and_primary_reads_are_not() {
    if !redis_present() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let redis = Replicated::start(dir.path(), 2);
    let primary = verdict(&redis, "primary", "1");
    assert_eq!(primary["valid"], "PASS", "{primary}");
    let replica = verdict(&redis, "replica", "1");
    assert_eq!(replica["valid"], "FAIL", "{replica}");
    let explanation = replica["explanation"].as_str().unwrap_or_default();
    assert!(
        explanation.contains("read"),
        "the stale read is named: {explanation}"
    );
}
