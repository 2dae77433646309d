//! Real MariaDB as a target: `local:mariadb`, a server faultline starts itself, and
//! `mysql://user:pass@host:port/db`, one the user runs.
//!
//! A local server is `mariadb-install-db`'d into a temporary data directory (removed at stop,
//! and by the next start if faultline was killed), listens on 127.0.0.1 and a free port with
//! its socket in that directory, runs in its own process group and dies with faultline. As
//! root it runs as the `mysql` account the Debian package creates. It starts with
//! `--skip-grant-tables`: any user connects, as befits a throwaway server on loopback.

mod client;

pub use client::MariaClient;

use std::fs::File;
use std::io;
use std::net::TcpListener;
use std::os::unix::fs::chown;
use std::os::unix::process::CommandExt as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use nix::sys::signal::Signal;
use nix::unistd::User;
use serde::Serialize;

use crate::cluster::ClusterError;
use crate::postgres::Isolation;
use crate::server::{ServerProcess, unhealthy};
use crate::systems::{NodeId, key_values};

/// How long a server may take to accept connections.
const READY_WITHIN: Duration = Duration::from_secs(60);

/// `--set` for MariaDB targets.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct MariaSettings {
    /// `isolation=read-committed|repeatable-read|serializable` (default serializable).
    pub isolation: Isolation,
}

impl Default for MariaSettings {
    fn default() -> Self {
        MariaSettings {
            isolation: Isolation::Serializable,
        }
    }
}

impl MariaSettings {
    /// Applies `key=value` pairs.
    pub fn apply<'a>(mut self, pairs: impl IntoIterator<Item = &'a str>) -> Result<Self, String> {
        for (k, v) in key_values(pairs, "isolation")? {
            match k {
                "isolation" => self.isolation = Isolation::parse(v)?,
                _ => return Err(format!("unknown setting `{k}`; valid keys: isolation")),
            }
        }
        Ok(self)
    }
}

/// Where MariaDB's server binaries are: `mariadbd` (in /usr/sbin on Debian) and
/// `mariadb-install-db`.
pub fn find_binaries() -> Result<(PathBuf, PathBuf), String> {
    let find = |name: &str| {
        ["/usr/sbin", "/usr/bin", "/usr/local/bin", "/usr/local/sbin"]
            .iter()
            .map(|d| Path::new(d).join(name))
            .find(|p| p.is_file())
    };
    match (find("mariadbd"), find("mariadb-install-db")) {
        (Some(server), Some(install)) => Ok((server, install)),
        _ => {
            Err("MariaDB's server is not installed (Debian: apt-get install mariadb-server)".into())
        }
    }
}

/// Waits until the server at `url` accepts a connection, for at most `within`.
pub async fn wait_accepting(url: &str, within: Duration) -> Result<(), String> {
    let started = Instant::now();
    let mut last = String::from("no answer yet");
    while started.elapsed() < within {
        match client::create_tables(url).await {
            Ok(()) => return Ok(()),
            Err(e) => last = e,
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    Err(format!(
        "{url} not accepting connections after {within:?}: {last}"
    ))
}

/// A local MariaDB server, stopped on drop.
pub struct MariaServer {
    server: PathBuf,
    data_dir: PathBuf,
    port: u16,
    user: Option<User>,
    process: ServerProcess,
    _temp: tempfile::TempDir,
}

impl MariaServer {
    /// Installs a fresh data directory and starts the server; ready when it accepts a
    /// connection and the tables exist.
    pub async fn start() -> Result<MariaServer, ClusterError> {
        let (server, install) = find_binaries().map_err(ClusterError::Spec)?;
        let root = std::env::temp_dir();
        let temp = crate::leftovers::temp_dir(&root, "faultline-mariadb-")?;
        let data_dir = temp.path().join("data");
        let user = if nix::unistd::geteuid().is_root() {
            crate::postgres::reachable_by_others(&root).map_err(ClusterError::Spec)?;
            let user = User::from_name("mysql").ok().flatten().ok_or_else(|| {
                ClusterError::Spec(
                    "faultline is root and there is no `mysql` account to run MariaDB as".into(),
                )
            })?;
            eprintln!("faultline: running MariaDB as the `mysql` account (faultline is root)");
            chown(
                temp.path(),
                Some(user.uid.as_raw()),
                Some(user.gid.as_raw()),
            )?;
            Some(user)
        } else {
            None
        };
        let mut install_cmd = Command::new(&install);
        // Its temporary files go into the run's own directory, which the server's account owns.
        install_cmd
            .env("TMPDIR", temp.path())
            .arg(format!("--tmpdir={}", temp.path().display()))
            .arg(format!("--datadir={}", data_dir.display()))
            .args(["--auth-root-authentication-method=normal", "--skip-test-db"]);
        if let Some(user) = &user {
            install_cmd.arg(format!("--user={}", user.name));
        }
        let output = install_cmd.output()?;
        if !output.status.success() {
            return Err(ClusterError::Spec(format!(
                "mariadb-install-db failed: {}",
                String::from_utf8_lossy(&output.stderr)
            )));
        }
        let port = TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
        let mut started = MariaServer {
            server,
            data_dir,
            port,
            user,
            process: ServerProcess::default(),
            _temp: temp,
        };
        started.spawn()?;
        started.wait_ready().await?;
        Ok(started)
    }

    fn log_path(&self) -> PathBuf {
        self.data_dir.with_extension("log")
    }

    fn spawn(&mut self) -> io::Result<()> {
        let log = File::options()
            .create(true)
            .append(true)
            .open(self.log_path())?;
        let socket = self.data_dir.with_extension("sock");
        let mut command = Command::new(&self.server);
        let tmp = self
            .data_dir
            .parent()
            .expect("the data directory has a parent");
        command
            .env("TMPDIR", tmp)
            .arg("--no-defaults")
            .arg(format!("--tmpdir={}", tmp.display()))
            .arg(format!("--datadir={}", self.data_dir.display()))
            .arg(format!("--socket={}", socket.display()))
            .arg(format!("--port={}", self.port))
            .args(["--bind-address=127.0.0.1", "--skip-grant-tables"])
            .args(["--innodb-buffer-pool-size=64M", "--max-connections=200"])
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .process_group(0);
        if let Some(user) = &self.user {
            command.arg(format!("--user={}", user.name));
        }
        crate::cluster::die_with_parent(&mut command);
        self.process.started(command.spawn()?);
        Ok(())
    }

    /// Waits until the server accepts a connection and knows the tables.
    pub async fn wait_ready(&mut self) -> Result<(), ClusterError> {
        let started = Instant::now();
        let mut last = String::from("no answer yet");
        while started.elapsed() < READY_WITHIN {
            if let Some(status) = self.process.exited() {
                last = format!("the server exited ({status})");
                break;
            }
            match client::create_tables(&self.url()).await {
                Ok(()) => return Ok(()),
                Err(e) => last = e,
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        Err(unhealthy("mariadb", READY_WITHIN, last, &self.log_path()))
    }

    /// The server's URL for clients.
    pub fn url(&self) -> String {
        format!("mysql://root@127.0.0.1:{}/faultline", self.port)
    }

    /// The data directory.
    pub fn data_dir(&self) -> &Path {
        &self.data_dir
    }

    /// Sends `signal` to the server's process group.
    pub fn signal(&self, _node: NodeId, signal: Signal) -> io::Result<()> {
        self.process.signal(signal)
    }

    /// Kills the server with SIGKILL (a crash) and reaps it.
    pub fn kill(&mut self, _node: NodeId) -> io::Result<()> {
        self.process.kill()
    }

    /// Starts the server again on its data directory (its crash recovery runs); ready when
    /// it accepts connections again.
    pub fn respawn(&mut self, node: NodeId) -> io::Result<()> {
        if self.process.running() {
            self.kill(node)?;
        }
        self.spawn()
    }

    /// Stops the server: SIGTERM to its group, then SIGKILL after a grace period.
    pub fn stop(&mut self) {
        self.process.stop();
    }
}

impl Drop for MariaServer {
    fn drop(&mut self) {
        self.stop();
    }
}
