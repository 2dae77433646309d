//! Real PostgreSQL as a target: `local:postgres`, a server faultline starts itself, and
//! `postgres://user:pass@host:port/db`, one the user runs.
//!
//! A local server is `initdb`'d into a temporary data directory (removed at stop, and by the
//! next start if faultline was killed), listens on 127.0.0.1 and a free port with its socket
//! in that directory, runs in its own process group and dies with faultline. PostgreSQL
//! refuses to run as root: when faultline is root, the server runs as the `postgres` account
//! the Debian package creates. Transactions run at the configured isolation level ([`client`]).

pub(crate) mod client;
#[cfg(feature = "https")]
mod tls;

pub use client::PgClient;

use std::fs::File;
use std::io;
use std::net::TcpListener;
use std::os::unix::fs::chown;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use nix::sys::signal::Signal;
use nix::unistd::User;
use serde::Serialize;

use crate::cluster::ClusterError;
use crate::server::{ServerProcess, unhealthy};
use crate::systems::{NodeId, key_values};

/// How long a server may take to accept connections.
const READY_WITHIN: Duration = Duration::from_secs(30);

/// The isolation level every transaction runs at.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Isolation {
    /// READ COMMITTED.
    ReadCommitted,
    /// REPEATABLE READ (snapshot isolation in PostgreSQL).
    RepeatableRead,
    /// SERIALIZABLE (serializable snapshot isolation).
    Serializable,
}

impl Isolation {
    /// Parses `read-committed`, `repeatable-read` or `serializable`.
    pub fn parse(text: &str) -> Result<Self, String> {
        match text {
            "read-committed" => Ok(Isolation::ReadCommitted),
            "repeatable-read" => Ok(Isolation::RepeatableRead),
            "serializable" => Ok(Isolation::Serializable),
            _ => Err(format!(
                "isolation={text}: expected read-committed, repeatable-read or serializable"
            )),
        }
    }

    /// The SQL words.
    pub fn sql(self) -> &'static str {
        match self {
            Isolation::ReadCommitted => "READ COMMITTED",
            Isolation::RepeatableRead => "REPEATABLE READ",
            Isolation::Serializable => "SERIALIZABLE",
        }
    }

    /// The transactional model the level promises, as the checker names it.
    pub fn model(self) -> &'static str {
        match self {
            Isolation::ReadCommitted => "read-committed",
            Isolation::RepeatableRead => "repeatable-read",
            Isolation::Serializable => "serializable",
        }
    }
}

/// `--set` for PostgreSQL targets.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct PgSettings {
    /// `isolation=read-committed|repeatable-read|serializable` (default serializable).
    pub isolation: Isolation,
    /// `synchronous-commit=on|off` (local servers; default on).
    pub synchronous_commit: bool,
    /// `fsync=on|off` (local servers; default on).
    pub fsync: bool,
}

impl Default for PgSettings {
    fn default() -> Self {
        PgSettings {
            isolation: Isolation::Serializable,
            synchronous_commit: true,
            fsync: true,
        }
    }
}

impl PgSettings {
    /// Applies `key=value` pairs; `local` allows the server's own switches.
    pub fn apply<'a>(
        mut self,
        pairs: impl IntoIterator<Item = &'a str>,
        local: bool,
    ) -> Result<Self, String> {
        let keys = if local {
            "isolation, synchronous-commit, fsync"
        } else {
            "isolation"
        };
        let on_off = |k: &str, v: &str| match v {
            "on" | "true" => Ok(true),
            "off" | "false" => Ok(false),
            _ => Err(format!("{k}={v}: expected on or off")),
        };
        for (k, v) in key_values(pairs, keys)? {
            match (k, local) {
                ("isolation", _) => self.isolation = Isolation::parse(v)?,
                ("synchronous-commit", true) => self.synchronous_commit = on_off(k, v)?,
                ("fsync", true) => self.fsync = on_off(k, v)?,
                _ => return Err(format!("unknown setting `{k}`; valid keys: {keys}")),
            }
        }
        Ok(self)
    }
}

/// What local PostgreSQL server to start.
#[derive(Clone, Debug)]
pub struct PgSpec {
    /// The directory of `initdb` and `postgres`; found when `None`.
    pub bin_dir: Option<PathBuf>,
    /// The settings.
    pub settings: PgSettings,
}

/// The directory of PostgreSQL's server binaries: `given`, else the newest
/// `/usr/lib/postgresql/<v>/bin`, else the one holding `initdb` on the PATH.
pub fn find_bin_dir(given: Option<&Path>) -> Result<PathBuf, String> {
    let has = |dir: &Path| dir.join("initdb").is_file() && dir.join("postgres").is_file();
    if let Some(dir) = given {
        return if has(dir) {
            Ok(dir.to_path_buf())
        } else {
            Err(format!(
                "--pg-bin {}: no initdb and postgres there",
                dir.display()
            ))
        };
    }
    let mut versions: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .map(|d| {
            d.flatten()
                .map(|e| e.path().join("bin"))
                .filter(|p| has(p))
                .collect()
        })
        .unwrap_or_default();
    versions.sort_by_key(|p| {
        p.parent()
            .and_then(|v| v.file_name())
            .and_then(|v| v.to_str())
            .and_then(|v| v.parse::<u32>().ok())
            .unwrap_or(0)
    });
    if let Some(dir) = versions.pop() {
        return Ok(dir);
    }
    std::env::var_os("PATH")
        .and_then(|path| std::env::split_paths(&path).find(|d| has(d)))
        .ok_or_else(|| {
            "PostgreSQL's server is not installed (Debian: apt-get install postgresql), or say \
             where it is with --pg-bin DIR"
                .to_string()
        })
}

/// Waits until the server at `url` accepts a connection, for at most `within`.
pub async fn wait_accepting(url: &str, within: Duration) -> Result<(), String> {
    let started = Instant::now();
    let mut last = String::from("no answer yet");
    while started.elapsed() < within {
        match client::connect(url).await {
            Ok(_) => return Ok(()),
            Err(e) => last = e,
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    Err(format!(
        "{url} not accepting connections after {within:?}: {last}"
    ))
}

/// Whether another account (the server's) can reach `dir`: every directory on the way must
/// let others through.
pub(crate) fn reachable_by_others(dir: &Path) -> Result<(), String> {
    use std::os::unix::fs::PermissionsExt;
    for ancestor in dir.ancestors() {
        let mode = std::fs::metadata(ancestor)
            .map_err(|e| format!("{}: {e}", ancestor.display()))?
            .permissions()
            .mode();
        if mode & 0o001 == 0 {
            return Err(format!(
                "the server runs as its own account, which cannot enter {} (mode {:o}); \
                 set TMPDIR to a directory it can reach, such as /tmp",
                ancestor.display(),
                mode & 0o777
            ));
        }
    }
    Ok(())
}

/// A local PostgreSQL server, stopped on drop.
pub struct PgServer {
    bin_dir: PathBuf,
    data_dir: PathBuf,
    port: u16,
    /// The account the server runs as when faultline is root.
    user: Option<User>,
    settings: PgSettings,
    process: ServerProcess,
    _temp: tempfile::TempDir,
}

impl PgServer {
    /// `initdb`s a fresh data directory and starts the server; ready when it accepts a
    /// connection.
    pub async fn start(spec: PgSpec) -> Result<PgServer, ClusterError> {
        let bin_dir = find_bin_dir(spec.bin_dir.as_deref()).map_err(ClusterError::Spec)?;
        let root = std::env::temp_dir();
        if nix::unistd::geteuid().is_root() {
            reachable_by_others(&root).map_err(ClusterError::Spec)?;
        }
        let temp = crate::leftovers::temp_dir(&root, "faultline-pg-")?;
        let data_dir = temp.path().join("data");
        let user = if nix::unistd::geteuid().is_root() {
            let user = User::from_name("postgres").ok().flatten().ok_or_else(|| {
                ClusterError::Spec(
                    "PostgreSQL refuses to run as root and there is no `postgres` account to \
                     run it as; run faultline as another user"
                        .into(),
                )
            })?;
            eprintln!(
                "faultline: running PostgreSQL as the `postgres` account (faultline is root)"
            );
            chown(
                temp.path(),
                Some(user.uid.as_raw()),
                Some(user.gid.as_raw()),
            )?;
            Some(user)
        } else {
            None
        };
        let port = TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
        let mut server = PgServer {
            bin_dir,
            data_dir,
            port,
            user,
            settings: spec.settings,
            process: ServerProcess::default(),
            _temp: temp,
        };
        server.initdb()?;
        server.spawn()?;
        server.wait_ready().await?;
        Ok(server)
    }

    fn command(&self, program: &str) -> Command {
        let mut command = Command::new(self.bin_dir.join(program));
        if let Some(user) = &self.user {
            command.uid(user.uid.as_raw()).gid(user.gid.as_raw());
        }
        command
    }

    fn log_path(&self) -> PathBuf {
        self.data_dir.with_extension("log")
    }

    fn initdb(&self) -> io::Result<()> {
        let output = self
            .command("initdb")
            .args(["-D"])
            .arg(&self.data_dir)
            .args(["-U", "faultline", "--auth=trust", "--no-sync", "-E", "UTF8"])
            .output()?;
        if !output.status.success() {
            return Err(io::Error::other(format!(
                "initdb failed: {}",
                String::from_utf8_lossy(&output.stderr)
            )));
        }
        Ok(())
    }

    fn spawn(&mut self) -> io::Result<()> {
        let log = File::options()
            .create(true)
            .append(true)
            .open(self.log_path())?;
        if let Some(user) = &self.user {
            chown(
                self.log_path(),
                Some(user.uid.as_raw()),
                Some(user.gid.as_raw()),
            )?;
        }
        let on_off = |b: bool| if b { "on" } else { "off" };
        let mut command = self.command("postgres");
        command
            .arg("-D")
            .arg(&self.data_dir)
            .arg("-k")
            .arg(
                self.data_dir
                    .parent()
                    .expect("the data directory has a parent"),
            )
            .args(["-h", "127.0.0.1", "-p", &self.port.to_string()])
            .args(["-c", &format!("fsync={}", on_off(self.settings.fsync))])
            .args([
                "-c",
                &format!(
                    "synchronous_commit={}",
                    on_off(self.settings.synchronous_commit)
                ),
            ])
            .args(["-c", "max_connections=200"])
            // The workloads lock keys in random orders, so deadlocks are common; PostgreSQL's
            // default of 1 s before it looks for one would hold every client in that wait.
            .args(["-c", "deadlock_timeout=100ms"])
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .process_group(0);
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
            match client::connect(&self.url()).await {
                Ok(conn) => match client::create_tables(&conn).await {
                    Ok(()) => return Ok(()),
                    Err(e) => last = e,
                },
                Err(e) => last = e,
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        Err(unhealthy("postgres", READY_WITHIN, last, &self.log_path()))
    }

    /// The server's URL for clients.
    pub fn url(&self) -> String {
        format!("postgres://faultline@127.0.0.1:{}/postgres", self.port)
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

impl Drop for PgServer {
    fn drop(&mut self) {
        self.stop();
    }
}
