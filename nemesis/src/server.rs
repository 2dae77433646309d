//! The backend for a local database server (`local:postgres`, `local:mariadb`): `kill`
//! (SIGKILL the server and its processes; the heal restarts it on the same data directory,
//! where crash recovery must keep every acknowledged commit) and `pause` (SIGSTOP and SIGCONT
//! the server's process group). One server has no network to partition, and its clock is the
//! host's.

use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use faultline_targets::mariadb::MariaServer;
use faultline_targets::postgres::{PgServer, wait_accepting};

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
}

/// The backend of a local PostgreSQL server.
pub type LocalPostgresBackend = ServerBackend<PgServer>;
/// The backend of a local MariaDB server.
pub type LocalMariadbBackend = ServerBackend<MariaServer>;

impl<S: LocalServer> ServerBackend<S> {
    /// A backend for the server in `server` (shared with whoever stops it at the end).
    pub fn new(server: Arc<Mutex<Option<S>>>) -> Result<Self, String> {
        let url = server
            .lock()
            .map_err(|_| "the server lock is poisoned".to_string())?
            .as_ref()
            .ok_or("the server is not running")?
            .url();
        Ok(ServerBackend {
            processes: Processes::new(server),
            url,
            desired: Desired::new(1),
        })
    }

    /// The kinds a local server cannot take, each with the reason.
    pub fn unsupported_kinds(kinds: &[Kind]) -> Vec<(Kind, String)> {
        kinds
            .iter()
            .filter_map(|&k| {
                let why = match k {
                    Kind::Kill | Kind::Pause => return None,
                    Kind::Partition => "one server has no network to partition",
                    Kind::Clock => "PostgreSQL reads the host's clock",
                    Kind::Crash => crate::CRASH_NEEDS_BUNDLED,
                    Kind::Packet => "packet faults on a local database are not supported yet",
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
