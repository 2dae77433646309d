//! Peer links on loopback: one TCP connection per peer, carrying newline-delimited JSON frames
//! `{"from": id, "msg": ...}`.
//!
//! The network is allowed to lose messages, and so is this transport: a message that cannot be
//! written (the peer is down, restarting or paused past the write timeout) is dropped, and the
//! link reconnects for later ones. The reference systems are built to survive exactly that.

use std::net::SocketAddr;
use std::time::Duration;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio::time::{Instant, timeout};

use crate::systems::NodeId;

/// One message on the wire.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct Frame<M> {
    pub(crate) from: NodeId,
    pub(crate) msg: M,
}

/// How long a connection attempt or a write may take before the message is dropped.
const IO_TIMEOUT: Duration = Duration::from_millis(500);
/// How long to wait before reconnecting to a peer that refused.
const RETRY: Duration = Duration::from_millis(100);

/// Starts a link to every peer but `me`; returns the queues that feed them (`None` for `me`).
pub(crate) fn connect_peers(
    me: NodeId,
    peers: &[SocketAddr],
) -> Vec<Option<mpsc::UnboundedSender<Vec<u8>>>> {
    peers
        .iter()
        .enumerate()
        .map(|(i, addr)| {
            (i as NodeId != me).then(|| {
                let (tx, rx) = mpsc::unbounded_channel();
                tokio::spawn(link(*addr, rx));
                tx
            })
        })
        .collect()
}

async fn link(addr: SocketAddr, mut rx: mpsc::UnboundedReceiver<Vec<u8>>) {
    let mut conn: Option<TcpStream> = None;
    let mut retry_at = Instant::now();
    while let Some(first) = rx.recv().await {
        let mut batch = first;
        while let Ok(more) = rx.try_recv() {
            batch.extend_from_slice(&more);
        }
        if conn.is_none() && Instant::now() >= retry_at {
            match timeout(IO_TIMEOUT, TcpStream::connect(addr)).await {
                Ok(Ok(stream)) => {
                    let _ = stream.set_nodelay(true);
                    conn = Some(stream);
                }
                _ => retry_at = Instant::now() + RETRY,
            }
        }
        if let Some(stream) = conn.as_mut() {
            if !matches!(
                timeout(IO_TIMEOUT, stream.write_all(&batch)).await,
                Ok(Ok(()))
            ) {
                conn = None;
            }
        }
    }
}

/// Accepts peer connections and forwards every frame to `deliver`.
pub(crate) async fn listen<M: DeserializeOwned + Send + 'static>(
    listener: TcpListener,
    deliver: mpsc::Sender<(NodeId, M)>,
) {
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            continue;
        };
        let deliver = deliver.clone();
        tokio::spawn(async move {
            let mut lines = BufReader::new(stream).lines();
            while let Ok(Some(line)) = lines.next_line().await {
                // A frame that does not parse comes from something that is not a peer.
                if let Ok(frame) = serde_json::from_str::<Frame<M>>(&line) {
                    if deliver.send((frame.from, frame.msg)).await.is_err() {
                        return;
                    }
                }
            }
        });
    }
}
