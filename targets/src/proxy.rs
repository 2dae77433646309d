//! faultline's own TCP proxy (the toxiproxy idea), for faults on processes faultline did not
//! write and without root or netem: put a [`Proxy`] between a node and whoever talks to it,
//! then set its [`Toxics`].
//!
//! Every toxic acts on the chunks read from either side of each connection, so the byte
//! stream is never corrupted:
//! - `delay_ms` + random `jitter_ms` before each chunk is passed on;
//! - `loss`: each chunk, with this probability, waits a retransmission timeout (200 ms) more,
//!   which is what a lost segment costs a TCP stream;
//! - `bandwidth_kbps`: the bytes passed on are paced to this rate;
//! - `reset`: each chunk, with this probability, resets both sides of its connection;
//! - `blackhole`: nothing is read or passed on and new connections wait, as in a partition;
//!   when it is lifted the bytes flow again (TCP would have retransmitted them).

use std::net::SocketAddr;
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use rand::RngExt;
use serde::{Deserialize, Serialize};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::AbortHandle;

/// What a proxy does to the bytes it passes on. The default passes them untouched.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Toxics {
    /// Added delay per chunk, in milliseconds.
    pub delay_ms: u64,
    /// Random extra delay per chunk, up to this many milliseconds.
    pub jitter_ms: u64,
    /// Share of chunks that wait a retransmission timeout.
    pub loss: f64,
    /// Bytes per second allowed through, in kilobytes (0: no limit).
    pub bandwidth_kbps: u64,
    /// Share of chunks whose connection is reset.
    pub reset: f64,
    /// Nothing passes while set.
    pub blackhole: bool,
}

/// What a lost segment costs a TCP stream: Linux's shortest retransmission timeout.
const RETRANSMIT: Duration = Duration::from_millis(200);

/// A running proxy; dropping it closes the listener and every connection.
#[derive(Debug)]
pub struct Proxy {
    addr: SocketAddr,
    upstream: SocketAddr,
    toxics: Arc<RwLock<Toxics>>,
    changed: watch::Sender<()>,
    tasks: Arc<Mutex<Vec<AbortHandle>>>,
}

impl Proxy {
    /// Listens on `listen` (port 0 picks one) and passes connections on to `upstream`.
    pub async fn start(listen: SocketAddr, upstream: SocketAddr) -> std::io::Result<Proxy> {
        let listener = TcpListener::bind(listen).await?;
        let addr = listener.local_addr()?;
        let toxics = Arc::new(RwLock::new(Toxics::default()));
        let (changed, _) = watch::channel(());
        let tasks: Arc<Mutex<Vec<AbortHandle>>> = Arc::default();
        let accept = tokio::spawn(accept_loop(
            listener,
            upstream,
            toxics.clone(),
            changed.clone(),
            tasks.clone(),
        ));
        tasks
            .lock()
            .expect("not poisoned")
            .push(accept.abort_handle());
        Ok(Proxy {
            addr,
            upstream,
            toxics,
            changed,
            tasks,
        })
    }

    /// Where it listens.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Where it passes connections on to.
    pub fn upstream(&self) -> SocketAddr {
        self.upstream
    }

    /// Replaces its toxics; connections see the change at their next chunk (a lifted
    /// blackhole at once).
    pub fn set(&self, toxics: Toxics) {
        *self.toxics.write().expect("not poisoned") = toxics;
        self.changed.send_replace(());
    }

    /// Its current toxics.
    pub fn toxics(&self) -> Toxics {
        *self.toxics.read().expect("not poisoned")
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        for task in self.tasks.lock().expect("not poisoned").drain(..) {
            task.abort();
        }
    }
}

async fn accept_loop(
    listener: TcpListener,
    upstream: SocketAddr,
    toxics: Arc<RwLock<Toxics>>,
    changed: watch::Sender<()>,
    tasks: Arc<Mutex<Vec<AbortHandle>>>,
) {
    loop {
        let Ok((client, _)) = listener.accept().await else {
            continue;
        };
        let toxics = toxics.clone();
        let changed = changed.subscribe();
        let task = tokio::spawn(async move {
            let _ = connection(client, upstream, toxics, changed).await;
        });
        let mut tasks = tasks.lock().expect("not poisoned");
        tasks.retain(|t| !t.is_finished());
        tasks.push(task.abort_handle());
    }
}

/// Waits while the blackhole is on.
async fn through_blackhole(toxics: &RwLock<Toxics>, changed: &mut watch::Receiver<()>) {
    while toxics.read().expect("not poisoned").blackhole {
        if changed.changed().await.is_err() {
            // The proxy is gone; its tasks are being aborted.
            std::future::pending::<()>().await;
        }
    }
}

async fn connection(
    client: TcpStream,
    upstream: SocketAddr,
    toxics: Arc<RwLock<Toxics>>,
    mut changed: watch::Receiver<()>,
) -> std::io::Result<()> {
    through_blackhole(&toxics, &mut changed).await;
    let server = TcpStream::connect(upstream).await?;
    client.set_nodelay(true)?;
    server.set_nodelay(true)?;
    let (client_read, client_write) = client.into_split();
    let (server_read, server_write) = server.into_split();
    let (reset_tx, mut reset_rx) = watch::channel(false);
    let up = pump(
        client_read,
        server_write,
        toxics.clone(),
        changed.clone(),
        reset_tx.clone(),
    );
    let down = pump(server_read, client_write, toxics, changed, reset_tx);
    tokio::select! {
        _ = async { tokio::join!(up, down) } => Ok(()),
        _ = reset_rx.wait_for(|r| *r) => Ok(()),
    }
}

/// Passes chunks from `from` to `to` under the toxics; a reset drops both halves with a zero
/// linger, so each side sees a reset rather than an orderly close.
async fn pump(
    mut from: tokio::net::tcp::OwnedReadHalf,
    mut to: tokio::net::tcp::OwnedWriteHalf,
    toxics: Arc<RwLock<Toxics>>,
    mut changed: watch::Receiver<()>,
    reset: watch::Sender<bool>,
) {
    let mut buf = vec![0u8; 16 * 1024];
    loop {
        through_blackhole(&toxics, &mut changed).await;
        let n = match from.read(&mut buf).await {
            Ok(0) | Err(_) => {
                let _ = to.shutdown().await;
                return;
            }
            Ok(n) => n,
        };
        // The blackhole may have started while this read waited.
        through_blackhole(&toxics, &mut changed).await;
        let now = *toxics.read().expect("not poisoned");
        let (wait, reset_now) = {
            let mut rng = rand::rng();
            let mut wait = Duration::from_millis(now.delay_ms);
            if now.jitter_ms > 0 {
                wait += Duration::from_millis(rng.random_range(0..=now.jitter_ms));
            }
            if now.loss > 0.0 && rng.random_bool(now.loss.min(1.0)) {
                wait += RETRANSMIT;
            }
            if now.bandwidth_kbps > 0 {
                wait += Duration::from_secs_f64(n as f64 / (now.bandwidth_kbps as f64 * 1000.0));
            }
            (wait, now.reset > 0.0 && rng.random_bool(now.reset.min(1.0)))
        };
        if reset_now {
            let _ = from.as_ref().set_zero_linger();
            let _ = to.as_ref().set_zero_linger();
            let _ = reset.send(true);
            return;
        }
        if !wait.is_zero() {
            tokio::time::sleep(wait).await;
        }
        if to.write_all(&buf[..n]).await.is_err() {
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Instant;

    /// An echo server on loopback.
    async fn echo() -> SocketAddr {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            while let Ok((mut s, _)) = listener.accept().await {
                tokio::spawn(async move {
                    let (mut r, mut w) = s.split();
                    let _ = tokio::io::copy(&mut r, &mut w).await;
                });
            }
        });
        addr
    }

    async fn round_trip(addr: SocketAddr, within: Duration) -> std::io::Result<Vec<u8>> {
        tokio::time::timeout(within, async {
            let mut s = TcpStream::connect(addr).await?;
            s.write_all(b"ping").await?;
            let mut buf = [0u8; 4];
            s.read_exact(&mut buf).await?;
            Ok(buf.to_vec())
        })
        .await
        .map_err(|_| std::io::Error::new(std::io::ErrorKind::TimedOut, "timed out"))?
    }

    #[tokio::test]
    async fn passes_bytes_delays_blackholes_and_resets() {
        let proxy = Proxy::start("127.0.0.1:0".parse().unwrap(), echo().await)
            .await
            .unwrap();
        let long = Duration::from_secs(5);
        assert_eq!(round_trip(proxy.addr(), long).await.unwrap(), b"ping");

        proxy.set(Toxics {
            delay_ms: 150,
            ..Toxics::default()
        });
        let started = Instant::now();
        assert_eq!(round_trip(proxy.addr(), long).await.unwrap(), b"ping");
        // Once each way.
        assert!(started.elapsed() >= Duration::from_millis(300));

        proxy.set(Toxics {
            blackhole: true,
            ..Toxics::default()
        });
        let cut = round_trip(proxy.addr(), Duration::from_millis(300)).await;
        assert_eq!(cut.unwrap_err().kind(), std::io::ErrorKind::TimedOut);
        // Bytes sent into the blackhole arrive once it is lifted.
        let mut s = TcpStream::connect(proxy.addr()).await.unwrap();
        s.write_all(b"late").await.unwrap();
        tokio::time::sleep(Duration::from_millis(100)).await;
        proxy.set(Toxics::default());
        let mut buf = [0u8; 4];
        tokio::time::timeout(long, s.read_exact(&mut buf))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(&buf, b"late");

        proxy.set(Toxics {
            reset: 1.0,
            ..Toxics::default()
        });
        assert!(round_trip(proxy.addr(), long).await.is_err());
        proxy.set(Toxics::default());
        assert_eq!(round_trip(proxy.addr(), long).await.unwrap(), b"ping");
    }

    #[tokio::test]
    async fn dropping_the_proxy_closes_it() {
        let proxy = Proxy::start("127.0.0.1:0".parse().unwrap(), echo().await)
            .await
            .unwrap();
        let addr = proxy.addr();
        drop(proxy);
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert!(TcpStream::connect(addr).await.is_err());
    }
}
