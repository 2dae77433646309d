//! A cluster on other machines during a run (`--cluster`): its `setup` and `start` commands on
//! every node before the run, its `stop` after it, and its logs copied back into the run
//! directory (`nodes/<name>/`).

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use faultline_targets::ssh::Ssh;
use faultline_targets::ssh::cluster_file::ClusterFile;
use futures_util::future::join_all;

/// How long a lifecycle command may take on a node.
const WITHIN: Duration = Duration::from_secs(60);

/// The nodes of a cluster file, reached over ssh; stopped (best effort) when dropped before
/// [`Remote::stop`].
pub(crate) struct Remote {
    pub(crate) ssh: Arc<Ssh>,
    pub(crate) file: ClusterFile,
    stopped: bool,
}

impl Remote {
    /// Runs `setup` then `start` on every node (those the file gives).
    pub(crate) async fn start(file: ClusterFile, show: bool) -> Result<Remote, String> {
        let ssh = Ssh::new(file.ssh.clone())
            .map_err(|e| format!("cannot make a directory for ssh's control sockets: {e}"))?;
        let remote = Remote {
            ssh: Arc::new(ssh),
            file,
            stopped: false,
        };
        for (name, command) in [
            ("setup", &remote.file.commands.setup),
            ("start", &remote.file.commands.start),
        ] {
            if let Some(command) = command {
                if show {
                    eprintln!(
                        "faultline: {name} on {} nodes over ssh",
                        remote.file.nodes.len()
                    );
                }
                remote.on_every_node(name, command).await?;
            }
        }
        Ok(remote)
    }

    /// Runs `script` (the file's `name` command) on every node at once.
    async fn on_every_node(&self, name: &str, script: &str) -> Result<(), String> {
        let names = self.file.names();
        let runs = self.file.nodes.iter().map(|node| {
            let env = [
                ("FAULTLINE_NODE", node.name.as_str()),
                ("FAULTLINE_NODES", names.as_str()),
            ];
            let (ssh, host) = (&self.ssh, node.host.clone());
            async move {
                let ran = ssh.run(&host, &env, script, WITHIN).await?;
                if ran.success {
                    Ok(())
                } else {
                    Err(format!(
                        "{} (over ssh): `{name}` failed: {}",
                        node.name,
                        ran.stderr.trim()
                    ))
                }
            }
        });
        join_all(runs).await.into_iter().collect()
    }

    /// Runs `stop` on every node and copies each node's logs into `dir/nodes/<name>/`.
    pub(crate) async fn stop(&mut self, dir: &Path) -> Result<(), String> {
        self.stopped = true;
        if let Some(stop) = self.file.commands.stop.clone() {
            self.on_every_node("stop", &stop).await?;
        }
        let names = self.file.names();
        for node in &self.file.nodes {
            let env = [
                ("FAULTLINE_NODE", node.name.as_str()),
                ("FAULTLINE_NODES", names.as_str()),
            ];
            for log in &self.file.commands.logs {
                // The path as the node's shell sees it: $FAULTLINE_NODE may name the node's own.
                let script = format!("cat {log}");
                let Ok(ran) = self.ssh.run(&node.host, &env, &script, WITHIN).await else {
                    continue;
                };
                let to = dir.join("nodes").join(&node.name);
                let name = Path::new(&log.replace("$FAULTLINE_NODE", &node.name))
                    .file_name()
                    .map_or_else(|| "log".into(), |n| n.to_os_string());
                std::fs::create_dir_all(&to)
                    .and_then(|()| std::fs::write(to.join(name), ran.stdout))
                    .map_err(|e| format!("{}: {e}", to.display()))?;
            }
        }
        Ok(())
    }
}

impl Drop for Remote {
    /// A run that ends without [`Remote::stop`] (a panic) still stops the nodes.
    fn drop(&mut self) {
        if self.stopped {
            return;
        }
        if let Some(stop) = &self.file.commands.stop {
            let names = self.file.names();
            for node in &self.file.nodes {
                let env = [
                    ("FAULTLINE_NODE", node.name.as_str()),
                    ("FAULTLINE_NODES", names.as_str()),
                ];
                self.ssh.run_blocking(&node.host, &env, stop);
            }
        }
    }
}
