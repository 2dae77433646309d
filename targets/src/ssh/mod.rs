//! Clusters on other machines, reached over SSH (Jepsen's model: faultline on a control
//! machine, the nodes elsewhere): the [`cluster_file`], and [`Ssh`], which runs commands on
//! the nodes through the system's OpenSSH client with connection multiplexing — one
//! connection per node, kept open (ControlMaster/ControlPersist), so a command reaches a node
//! in milliseconds — and closes the connections when dropped.

pub mod cluster_file;

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::sync::Mutex;
use std::time::Duration;

use tokio::process::Command;

use self::cluster_file::SshOptions;

/// What a command on a node did.
#[derive(Clone, Debug, PartialEq)]
pub struct Ran {
    /// Whether it exited 0.
    pub success: bool,
    /// Its exit code (255: ssh itself failed).
    pub code: Option<i32>,
    /// Its stdout.
    pub stdout: String,
    /// Its stderr (ssh's own errors too).
    pub stderr: String,
}

/// Runs commands on nodes over ssh.
#[derive(Debug)]
pub struct Ssh {
    options: SshOptions,
    control: tempfile::TempDir,
    hosts: Mutex<BTreeSet<String>>,
}

impl Ssh {
    /// An ssh runner with `options`; its control sockets live in a private temporary directory.
    pub fn new(options: SshOptions) -> std::io::Result<Ssh> {
        let control = tempfile::Builder::new()
            .prefix("faultline-ssh-")
            .tempdir()?;
        Ok(Ssh {
            options,
            control,
            hosts: Mutex::new(BTreeSet::new()),
        })
    }

    fn control_path(&self) -> PathBuf {
        self.control.path().join("%C")
    }

    /// `ssh` with the file's options and multiplexing, running `script` on `host` with `env`.
    fn ssh(&self, host: &str, env: &[(&str, &str)], script: &str) -> std::process::Command {
        let mut command = std::process::Command::new("ssh");
        command.args([
            "-o",
            "BatchMode=yes",
            "-o",
            "ConnectTimeout=5",
            "-o",
            "ControlMaster=auto",
        ]);
        command
            .arg("-o")
            .arg(format!("ControlPath={}", self.control_path().display()));
        command.args(["-o", "ControlPersist=60", "-o", "LogLevel=ERROR"]);
        if let Some(port) = self.options.port {
            command.args(["-p", &port.to_string()]);
        }
        if let Some(identity) = &self.options.identity {
            command.arg("-i").arg(identity);
        }
        if let Some(user) = &self.options.user {
            command.args(["-l", user]);
        }
        for option in &self.options.options {
            command.args(["-o", option]);
        }
        let assignments: Vec<String> = (env.iter())
            .map(|(k, v)| format!("{k}={}", shell_words::quote(v)))
            .collect();
        let remote = format!(
            "{} sh -c {}",
            assignments.join(" "),
            shell_words::quote(script)
        );
        command.arg(host).arg("--").arg(remote.trim_start());
        command.stdin(std::process::Stdio::null());
        self.hosts
            .lock()
            .expect("not poisoned")
            .insert(host.to_string());
        command
    }

    /// Runs shell command `script` on `host` with `env` set, waiting at most `timeout`.
    pub async fn run(
        &self,
        host: &str,
        env: &[(&str, &str)],
        script: &str,
        timeout: Duration,
    ) -> Result<Ran, String> {
        let mut command = Command::from(self.ssh(host, env, script));
        command.kill_on_drop(true);
        let output = tokio::time::timeout(timeout, command.output())
            .await
            .map_err(|_| format!("{host}: no answer over ssh within {} s", timeout.as_secs()))?
            .map_err(|e| format!("cannot run ssh: {e} (is OpenSSH's client installed?)"))?;
        Ok(Ran {
            success: output.status.success(),
            code: output.status.code(),
            stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
        })
    }
}

impl Ssh {
    /// Runs `script` on `host` and waits, blocking: for the paths out of a run that cannot
    /// wait asynchronously (a panic's unwinding). Whether it succeeded.
    pub fn run_blocking(&self, host: &str, env: &[(&str, &str)], script: &str) -> bool {
        let mut command = self.ssh(host, env, script);
        command
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null());
        command.status().is_ok_and(|s| s.success())
    }
}

impl Drop for Ssh {
    /// Closes every connection it kept open.
    fn drop(&mut self) {
        let hosts = std::mem::take(&mut *self.hosts.lock().unwrap_or_else(|e| e.into_inner()));
        for host in hosts {
            let _ = std::process::Command::new("ssh")
                .arg("-o")
                .arg(format!("ControlPath={}", self.control_path().display()))
                .args(["-O", "exit", &host])
                .stdout(std::process::Stdio::null())
                .stderr(std::process::Stdio::null())
                .status();
        }
    }
}
