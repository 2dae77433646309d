//! One node binary, running: started in its own process group (it dies with faultline), its
//! stderr appended to `nodes/<id>.log`, each line it prints parsed and handed to the router,
//! and the lines the router delivers written to its stdin.

use std::path::Path;

use nix::sys::signal::{Signal, killpg};
use nix::unistd::Pid;
use tokio::io::{AsyncWriteExt, BufReader, BufWriter};
use tokio::process::Child;
use tokio::sync::mpsc;

use super::message::Message;
use super::router::Input;

/// A running node process.
#[derive(Debug)]
pub(super) struct NodeProcess {
    child: Child,
    pid: i32,
}

/// What starting a node needs.
pub(super) struct Launch<'a> {
    /// The command line.
    pub(super) argv: &'a [String],
    /// Its index and name.
    pub(super) node: usize,
    pub(super) name: &'a str,
    /// Which start of this node it is (the router ignores lines from older ones).
    pub(super) generation: u64,
    /// Where its stderr goes.
    pub(super) log: &'a Path,
}

impl NodeProcess {
    /// Starts a node and attaches it to `router`: its printed lines go there, and the lines the
    /// router delivers to it reach its stdin.
    pub(super) fn start(
        launch: &Launch<'_>,
        router: mpsc::UnboundedSender<Input>,
    ) -> Result<NodeProcess, String> {
        let name = launch.name;
        let (child, stdin, stdout) =
            crate::piped::spawn(launch.argv, [], launch.log).map_err(|e| format!("{name}: {e}"))?;
        let pid = child.id().map_or(0, |p| p as i32);
        let (lines, mut queued) = mpsc::unbounded_channel::<String>();
        tokio::spawn(async move {
            let mut stdin = BufWriter::new(stdin);
            while let Some(line) = queued.recv().await {
                let mut sent = stdin.write_all(line.as_bytes()).await;
                while let Ok(line) = queued.try_recv() {
                    sent = sent.and(stdin.write_all(line.as_bytes()).await);
                }
                if sent.and(stdin.flush().await).is_err() {
                    return; // it exited; the reader reports how
                }
            }
        });
        // The router learns of this start before any line of it: a node that prints or dies
        // at once is not mistaken for an older start of itself.
        let (node, generation) = (launch.node, launch.generation);
        let why = String::new();
        let attach = Input::Attach {
            node,
            generation,
            stdin: Some(lines),
            why,
        };
        router
            .send(attach)
            .map_err(|_| format!("{name}: the router stopped"))?;
        tokio::spawn(async move {
            let mut stdout = BufReader::new(stdout);
            let why = loop {
                match crate::piped::read_line(&mut stdout).await {
                    Ok(Some(line)) => {
                        let line = Message::parse(&line);
                        if router
                            .send(Input::Printed {
                                node,
                                generation,
                                line,
                            })
                            .is_err()
                        {
                            return;
                        }
                    }
                    Ok(None) => break "it closed its stdout".to_string(),
                    Err(e) => break format!("its stdout: {e}"),
                }
            };
            let _ = router.send(Input::Ended {
                node,
                generation,
                why,
            });
        });
        Ok(NodeProcess { child, pid })
    }

    /// Sends `signal` to its process group.
    pub(super) fn signal(&self, signal: Signal) {
        let _ = killpg(Pid::from_raw(self.pid), signal);
    }

    /// How it ended, if it has: its exit status, as words.
    pub(super) fn exited(&mut self) -> Option<String> {
        match self.child.try_wait() {
            Ok(Some(status)) => Some(format!("it exited ({status})")),
            _ => None,
        }
    }
}

impl Drop for NodeProcess {
    /// Kills its whole process group (whatever it started too); `kill_on_drop` reaps it.
    fn drop(&mut self) {
        let _ = killpg(Pid::from_raw(self.pid), Signal::SIGCONT);
        let _ = killpg(Pid::from_raw(self.pid), Signal::SIGKILL);
    }
}
