//! Signals to the processes of a cluster faultline started itself, shared by the backends that
//! own one: SIGKILL and a respawn on the same data, SIGSTOP and SIGCONT. It remembers who is
//! down or stopped, and [`Processes::reconcile`] brings a node's process to the state the
//! nemesis wants it in.

use std::collections::BTreeSet;
use std::io;
use std::sync::{Arc, Mutex};

use faultline_targets::cluster::Cluster;
use faultline_targets::etcd::EtcdCluster;
use faultline_targets::postgres::PgServer;
use nix::sys::signal::Signal;

use crate::desired::Process;
use crate::fault::NodeId;

/// A cluster whose nodes are local processes.
pub trait LocalProcesses: Send {
    /// SIGKILLs node `i` and reaps it.
    fn kill(&mut self, i: NodeId) -> io::Result<()>;
    /// Sends `signal` to node `i`'s process group.
    fn signal(&self, i: NodeId, signal: Signal) -> io::Result<()>;
    /// Starts node `i` again on its data.
    fn respawn(&mut self, i: NodeId) -> io::Result<()>;
}

impl LocalProcesses for Cluster {
    fn kill(&mut self, i: NodeId) -> io::Result<()> {
        Cluster::kill(self, i)
    }
    fn signal(&self, i: NodeId, signal: Signal) -> io::Result<()> {
        Cluster::signal(self, i, signal)
    }
    fn respawn(&mut self, i: NodeId) -> io::Result<()> {
        Cluster::respawn(self, i)
    }
}

impl LocalProcesses for EtcdCluster {
    fn kill(&mut self, i: NodeId) -> io::Result<()> {
        EtcdCluster::kill(self, i)
    }
    fn signal(&self, i: NodeId, signal: Signal) -> io::Result<()> {
        EtcdCluster::signal(self, i, signal)
    }
    fn respawn(&mut self, i: NodeId) -> io::Result<()> {
        EtcdCluster::respawn(self, i)
    }
}

impl LocalProcesses for faultline_targets::mariadb::MariaServer {
    fn kill(&mut self, i: NodeId) -> io::Result<()> {
        faultline_targets::mariadb::MariaServer::kill(self, i)
    }
    fn signal(&self, i: NodeId, signal: Signal) -> io::Result<()> {
        faultline_targets::mariadb::MariaServer::signal(self, i, signal)
    }
    fn respawn(&mut self, i: NodeId) -> io::Result<()> {
        faultline_targets::mariadb::MariaServer::respawn(self, i)
    }
}

impl LocalProcesses for PgServer {
    fn kill(&mut self, i: NodeId) -> io::Result<()> {
        PgServer::kill(self, i)
    }
    fn signal(&self, i: NodeId, signal: Signal) -> io::Result<()> {
        PgServer::signal(self, i, signal)
    }
    fn respawn(&mut self, i: NodeId) -> io::Result<()> {
        PgServer::respawn(self, i)
    }
}

/// The processes of a cluster shared with whoever stops it at the end, and which of them this
/// backend killed or stopped.
pub(crate) struct Processes<C> {
    cluster: Arc<Mutex<Option<C>>>,
    killed: BTreeSet<NodeId>,
    paused: BTreeSet<NodeId>,
}

impl<C: LocalProcesses> Processes<C> {
    /// Control over the cluster in `cluster`.
    pub(crate) fn new(cluster: Arc<Mutex<Option<C>>>) -> Self {
        Processes {
            cluster,
            killed: BTreeSet::new(),
            paused: BTreeSet::new(),
        }
    }

    /// Runs `f` on the cluster, unless it was stopped.
    pub(crate) fn with_cluster<T>(
        &self,
        f: impl FnOnce(&mut C) -> io::Result<T>,
    ) -> Result<T, String> {
        let mut guard = self
            .cluster
            .lock()
            .map_err(|_| "the cluster lock is poisoned".to_string())?;
        let cluster = guard.as_mut().ok_or("the cluster was stopped")?;
        f(cluster).map_err(|e| e.to_string())
    }

    /// Whether node `i` is killed or stopped (it cannot answer).
    pub(crate) fn is_out(&self, i: NodeId) -> bool {
        self.killed.contains(&i) || self.paused.contains(&i)
    }

    /// Brings node `i`'s process to `wanted`: kills, stops or continues it. `Ok(true)` means
    /// it was killed and has been respawned: the caller waits until it serves, then calls
    /// [`Processes::serving`].
    pub(crate) fn reconcile(&mut self, i: NodeId, wanted: Process) -> Result<bool, String> {
        match wanted {
            Process::Running if self.paused.contains(&i) => {
                self.with_cluster(|c| c.signal(i, Signal::SIGCONT))?;
                self.paused.remove(&i);
                Ok(false)
            }
            Process::Running if self.killed.contains(&i) => {
                self.with_cluster(|c| c.respawn(i))?;
                Ok(true)
            }
            Process::Killed if !self.killed.contains(&i) => {
                // SIGKILL ends a stopped process too.
                self.with_cluster(|c| c.kill(i))?;
                self.paused.remove(&i);
                self.killed.insert(i);
                Ok(false)
            }
            Process::Paused if !self.paused.contains(&i) && !self.killed.contains(&i) => {
                self.with_cluster(|c| c.signal(i, Signal::SIGSTOP))?;
                self.paused.insert(i);
                Ok(false)
            }
            Process::Running | Process::Killed | Process::Paused => Ok(false),
        }
    }

    /// Node `i`, respawned, serves again.
    pub(crate) fn serving(&mut self, i: NodeId) {
        self.killed.remove(&i);
    }
}
