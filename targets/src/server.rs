//! One local server process (a database faultline starts) in its own process group: signals
//! to the group, a crash, a stop with a grace period, and the tail of its log when it does
//! not come up.

use std::io;
use std::path::Path;
use std::process::{Child, ExitStatus};
use std::time::Duration;

use nix::sys::signal::{Signal, killpg};
use nix::unistd::Pid;

use crate::cluster::{ClusterError, stop_groups};

/// The server's process, while it runs; stopped on drop.
#[derive(Debug, Default)]
pub(crate) struct ServerProcess {
    child: Option<Child>,
}

impl ServerProcess {
    /// Holds a freshly spawned server.
    pub(crate) fn started(&mut self, child: Child) {
        self.child = Some(child);
    }

    /// Whether a process is held.
    pub(crate) fn running(&self) -> bool {
        self.child.is_some()
    }

    /// How it exited, if it did.
    pub(crate) fn exited(&mut self) -> Option<ExitStatus> {
        self.child
            .as_mut()
            .and_then(|c| c.try_wait().ok().flatten())
    }

    /// Sends `signal` to its process group.
    pub(crate) fn signal(&self, signal: Signal) -> io::Result<()> {
        let Some(child) = &self.child else {
            return Ok(());
        };
        killpg(Pid::from_raw(child.id() as i32), signal).map_err(io::Error::from)
    }

    /// SIGKILLs its group (a crash) and reaps it.
    pub(crate) fn kill(&mut self) -> io::Result<()> {
        self.signal(Signal::SIGKILL)?;
        if let Some(mut child) = self.child.take() {
            child.wait()?;
        }
        Ok(())
    }

    /// SIGTERM to its group, then SIGKILL after a grace period.
    pub(crate) fn stop(&mut self) {
        if let Some(child) = self.child.take() {
            stop_groups(vec![child]);
        }
    }
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        self.stop();
    }
}

/// The error of a server that did not come up within `within`: why, and its log's tail.
pub(crate) fn unhealthy(node: &str, within: Duration, why: String, log: &Path) -> ClusterError {
    let text = std::fs::read_to_string(log).unwrap_or_default();
    let tail: Vec<&str> = text.lines().rev().take(20).collect();
    ClusterError::Unhealthy {
        node: node.into(),
        seconds: within.as_secs(),
        why,
        log: log.display().to_string(),
        tail: tail.into_iter().rev().collect::<Vec<_>>().join("\n"),
    }
}
