//! The backend for a local database server (`local:postgres`, `local:mariadb`): `kill`
//! (SIGKILL the server and its processes; the heal restarts it on the same data directory,
//! where crash recovery must keep every acknowledged commit), `pause` (SIGSTOP and SIGCONT
//! the server's process group) and `packet` (delay, jitter and loss on a faultline proxy the
//! clients reach the server through). One server has no network to partition, and its clock
//! is the host's.

use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use faultline_targets::mariadb::MariaServer;
use std::net::SocketAddr;

use faultline_targets::postgres::{PgServer, wait_accepting};
use faultline_targets::proxy::{Proxy, Toxics};

use crate::Backend;
use crate::desired::Desired;
use crate::fault::{Fault, Kind};
use crate::processes::Processes;

/// How long a restarted server may take to accept connections (crash recovery included).
const RESTART_WITHIN: Duration = Duration::from_secs(60);

/// A database server faultline runs: its processes, its URL, and how to tell it serves.
pub trait LocalServer: crate::processes::LocalProcesses + 'static {
    /// Its name in errors.
    const NAME: &'static str;
    /// Its client URL.
    fn url(&self) -> String;
    /// Waits until the server at `url` accepts connections again.
    fn wait_serving(url: &str, within: Duration)
    -> impl Future<Output = Result<(), String>> + Send;
}

impl LocalServer for PgServer {
    const NAME: &'static str = "local:postgres";
    fn url(&self) -> String {
        PgServer::url(self)
    }
    async fn wait_serving(url: &str, within: Duration) -> Result<(), String> {
        wait_accepting(url, within).await
    }
}

impl LocalServer for MariaServer {
    const NAME: &'static str = "local:mariadb";
    fn url(&self) -> String {
        MariaServer::url(self)
    }
    async fn wait_serving(url: &str, within: Duration) -> Result<(), String> {
        faultline_targets::mariadb::wait_accepting(url, within).await
    }
}

/// Applies faults to a local database server.
pub struct ServerBackend<S> {
    processes: Processes<S>,
    url: String,
    desired: Desired,
    /// The proxy between the clients and the server, when packet faults are planned.
    proxy: Option<Proxy>,
}

/// The backend of a local PostgreSQL server.
pub type LocalPostgresBackend = ServerBackend<PgServer>;
/// The backend of a local MariaDB server.
pub type LocalMariadbBackend = ServerBackend<MariaServer>;

impl<S: LocalServer> ServerBackend<S> {
    /// A backend for the server in `server` (shared with whoever stops it at the end), with
    /// a proxy in front of it when `proxied`; the URL the clients are to use.
    pub async fn new(
        server: Arc<Mutex<Option<S>>>,
        proxied: bool,
    ) -> Result<(Self, String), String> {
        let url = server
            .lock()
            .map_err(|_| "the server lock is poisoned".to_string())?
            .as_ref()
            .ok_or("the server is not running")?
            .url();
        let (proxy, client_url) = if proxied {
            let (upstream, rewrite) = address_of(&url)?;
            let proxy = Proxy::start("127.0.0.1:0".parse().expect("an address"), upstream)
                .await
                .map_err(|e| format!("cannot start a proxy for {url}: {e}"))?;
            let client_url = rewrite(proxy.addr());
            (Some(proxy), client_url)
        } else {
            (None, url.clone())
        };
        let backend = ServerBackend {
            processes: Processes::new(server),
            url,
            desired: Desired::new(1),
            proxy,
        };
        Ok((backend, client_url))
    }

    /// The kinds a local server cannot take, each with the reason.
    pub fn unsupported_kinds(kinds: &[Kind]) -> Vec<(Kind, String)> {
        kinds
            .iter()
            .filter_map(|&k| {
                let why = match k {
                    Kind::Kill | Kind::Pause | Kind::Packet => return None,
                    Kind::Partition => "one server has no network to partition",
                    Kind::Clock => "the server reads the host's clock",
                    Kind::Crash => crate::CRASH_NEEDS_BUNDLED,
                };
                Some((k, why.to_string()))
            })
            .collect()
    }

    async fn push(&mut self) -> Result<(), String> {
        let wanted = self.desired.node(0).process;
        if self.processes.reconcile(0, wanted)? {
            S::wait_serving(&self.url, RESTART_WITHIN).await?;
            self.processes.serving(0);
        }
        if let Some(proxy) = &self.proxy {
            let packet = self.desired.node(0).packet;
            proxy.set(Toxics {
                delay_ms: packet.delay_ms,
                jitter_ms: packet.jitter_ms,
                loss: packet.loss,
                ..Toxics::default()
            });
        }
        Ok(())
    }
}

impl<S: LocalServer> Backend for ServerBackend<S> {
    fn unsupported(&self, kinds: &[Kind]) -> Vec<(Kind, String)> {
        Self::unsupported_kinds(kinds)
    }

    async fn apply(&mut self, fault: &Fault) -> Result<Fault, String> {
        // One server: whatever nodes the fault chose, it is node 0.
        let fault = match fault {
            Fault::Kill { .. } => Fault::Kill { nodes: vec![0] },
            Fault::Pause { .. } => Fault::Pause { nodes: vec![0] },
            // A TCP stream cannot be duplicated into: no duplicates.
            Fault::Packet {
                delay_ms,
                jitter_ms,
                loss,
                ..
            } if self.proxy.is_some() => Fault::Packet {
                nodes: vec![0],
                delay_ms: *delay_ms,
                jitter_ms: *jitter_ms,
                loss: *loss,
                duplicate: 0.0,
            },
            other => {
                return Err(format!(
                    "{} faults are not supported on local:postgres",
                    other.kind()
                ));
            }
        };
        self.desired.apply(&fault);
        self.push().await?;
        Ok(fault)
    }

    async fn heal(&mut self, fault: &Fault) -> Result<(), String> {
        self.desired.heal(fault);
        self.push().await
    }

    async fn heal_all(&mut self) -> Result<(), String> {
        self.desired.heal_all();
        self.push().await
    }
}

/// The address in a database URL (`scheme://user@host:port/db`), and how to write the URL
/// with another address.
fn address_of(url: &str) -> Result<(SocketAddr, impl Fn(SocketAddr) -> String), String> {
    let (head, rest) = url
        .split_once("://")
        .ok_or_else(|| format!("`{url}` has no scheme"))?;
    let (user, rest) = rest.split_once('@').map_or(("", rest), |(u, r)| (u, r));
    let (host_port, path) = rest.split_once('/').map_or((rest, ""), |(h, p)| (h, p));
    let address: SocketAddr = host_port
        .parse()
        .map_err(|e| format!("`{url}`: {host_port} is not an address: {e}"))?;
    let (head, user, path) = (head.to_string(), user.to_string(), path.to_string());
    let at = if user.is_empty() { "" } else { "@" };
    Ok((address, move |a: SocketAddr| {
        format!("{head}://{user}{at}{a}/{path}")
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_database_url_points_at_the_proxy() {
        let (address, rewrite) =
            address_of("postgres://faultline@127.0.0.1:5432/postgres").unwrap();
        assert_eq!(address, "127.0.0.1:5432".parse().unwrap());
        assert_eq!(
            rewrite("127.0.0.1:9".parse().unwrap()),
            "postgres://faultline@127.0.0.1:9/postgres"
        );
    }
}
