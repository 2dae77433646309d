//! A local cluster of reference-system nodes, each its own OS process (`faultline node`).
//!
//! [`Cluster::start`] checks the settings before anything starts, picks free loopback ports,
//! starts every node in its own process group with its log in the data directory, and waits
//! until every node answers `GET /health`. The cluster owns its children: [`Cluster::stop`]
//! (also run on drop, so on panic too) sends SIGTERM to each group, waits, then SIGKILLs.
//! Each node also asks the kernel to stop it if faultline dies, and the pids are written to
//! `<data-dir>/pids` so a crashed faultline's nodes can be found.

use std::fs::File;
use std::io;
use std::net::{SocketAddr, TcpListener};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use nix::sys::signal::{Signal, killpg};
use nix::unistd::Pid;

use crate::systems::kv::node_name;
use crate::systems::{NodeId, SystemSettings, system_info};

/// What cluster to start.
#[derive(Clone, Debug)]
pub struct ClusterSpec {
    /// The reference system (`quorum`).
    pub system: String,
    /// How many nodes.
    pub nodes: u32,
    /// `key=value` settings (each string may hold several, comma-separated).
    pub settings: Vec<String>,
    /// Where nodes keep their data and logs; a fresh temporary directory, removed at stop,
    /// when `None`.
    pub data_dir: Option<PathBuf>,
    /// The `faultline` executable that runs `faultline node`.
    pub exe: PathBuf,
    /// Seed of the nodes' fault layers.
    pub seed: u64,
}

/// Why a cluster could not start.
#[derive(Debug, thiserror::Error)]
pub enum ClusterError {
    /// The spec is impossible; nothing was started.
    #[error("{0}")]
    Spec(String),
    /// Starting or watching a process failed.
    #[error("{0}")]
    Io(#[from] io::Error),
    /// A node did not become healthy.
    #[error(
        "{node} did not become healthy within {seconds}s: {why}\n--- last lines of {log} ---\n{tail}"
    )]
    Unhealthy {
        /// The node's name.
        node: String,
        /// How long faultline waited.
        seconds: u64,
        /// What was seen.
        why: String,
        /// The node's log file.
        log: String,
        /// Its last lines.
        tail: String,
    },
}

/// One node process of a cluster.
#[derive(Debug)]
pub struct NodeProcess {
    /// `n1`, `n2`, ...
    pub name: String,
    /// Its client URL, `http://127.0.0.1:PORT`.
    pub url: String,
    /// Its data directory.
    pub data_dir: PathBuf,
    args: Vec<String>,
    child: Option<Child>,
}

impl NodeProcess {
    /// The node's process id while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    fn log_path(&self) -> PathBuf {
        self.data_dir.with_extension("log")
    }
}

/// A running local cluster. Dropping it stops every node.
#[derive(Debug)]
pub struct Cluster {
    nodes: Vec<NodeProcess>,
    settings: SystemSettings,
    system: String,
    exe: PathBuf,
    data_dir: PathBuf,
    _temp: Option<tempfile::TempDir>,
}

/// How long a node may take to answer `/health` after starting.
const HEALTHY_WITHIN: Duration = Duration::from_secs(10);
/// How long a node may take to exit after SIGTERM before it is killed.
const GRACE: Duration = Duration::from_secs(2);

/// Checks a spec without starting anything; returns the resolved settings.
pub fn check_spec(spec: &ClusterSpec) -> Result<SystemSettings, ClusterError> {
    let info = system_info(&spec.system).map_err(ClusterError::Spec)?;
    if !(1..=64).contains(&spec.nodes) {
        return Err(ClusterError::Spec(format!(
            "--nodes {} must be between 1 and 64",
            spec.nodes
        )));
    }
    if let Some(fixed) = info.fixed_nodes.filter(|&n| n != spec.nodes) {
        return Err(ClusterError::Spec(format!(
            "--nodes {}: the {} system is {fixed} nodes, a coordinator and three services",
            spec.nodes, spec.system
        )));
    }
    SystemSettings::parse(
        &spec.system,
        spec.nodes,
        spec.settings.iter().map(String::as_str),
    )
    .map_err(ClusterError::Spec)
}

/// Free loopback ports, found by binding port 0 (released just before the nodes bind them).
fn free_addrs(count: usize) -> io::Result<Vec<SocketAddr>> {
    let listeners = (0..count)
        .map(|_| TcpListener::bind("127.0.0.1:0"))
        .collect::<io::Result<Vec<_>>>()?;
    listeners.iter().map(TcpListener::local_addr).collect()
}

impl Cluster {
    /// Starts the cluster and waits until every node is healthy. Ports are picked free and
    /// then handed to the nodes, so another process can take one in between: a node that finds
    /// its port taken makes the start begin again on fresh ports (three tries).
    pub async fn start(spec: ClusterSpec) -> Result<Cluster, ClusterError> {
        let mut tries = 1;
        loop {
            match Cluster::start_once(&spec).await {
                Err(ClusterError::Unhealthy { tail, .. })
                    if tries < 3 && tail.contains("Address already in use") =>
                {
                    tries += 1;
                }
                other => return other,
            }
        }
    }

    async fn start_once(spec: &ClusterSpec) -> Result<Cluster, ClusterError> {
        let settings = check_spec(spec)?;
        let (data_dir, temp) = data_dir(spec.data_dir.as_deref(), "faultline-cluster-")?;
        let n = spec.nodes as usize;
        let addrs = free_addrs(2 * n)?;
        let (http, peers) = addrs.split_at(n);
        let peer_list: Vec<String> = peers.iter().map(SocketAddr::to_string).collect();
        let mut nodes = Vec::with_capacity(n);
        for (id, http) in http.iter().enumerate() {
            let name = node_name(id as u32);
            let node_dir = data_dir.join(&name);
            let mut args = vec![
                "node".to_string(),
                "--system".into(),
                spec.system.clone(),
                "--id".into(),
                id.to_string(),
                "--http".into(),
                http.to_string(),
                "--peers".into(),
                peer_list.join(","),
                "--data-dir".into(),
                node_dir.display().to_string(),
                "--seed".into(),
                spec.seed.to_string(),
                "--exit-with-parent".into(),
            ];
            for s in &spec.settings {
                args.push("--set".into());
                args.push(s.clone());
            }
            nodes.push(NodeProcess {
                name,
                url: format!("http://{http}"),
                data_dir: node_dir,
                args,
                child: None,
            });
        }
        let mut cluster = Cluster {
            nodes,
            settings,
            system: spec.system.clone(),
            exe: spec.exe.clone(),
            data_dir,
            _temp: temp,
        };
        for i in 0..n {
            cluster.spawn(i)?;
        }
        for i in 0..n {
            cluster.wait_healthy(i).await?;
        }
        Ok(cluster)
    }

    /// The nodes, in id order.
    pub fn nodes(&self) -> &[NodeProcess] {
        &self.nodes
    }

    /// Every node's client URL, in id order.
    pub fn urls(&self) -> Vec<String> {
        self.nodes.iter().map(|n| n.url.clone()).collect()
    }

    /// The resolved settings.
    pub fn settings(&self) -> &SystemSettings {
        &self.settings
    }

    /// The system's name.
    pub fn system(&self) -> &str {
        &self.system
    }

    /// The cluster's data directory.
    pub fn data_dir(&self) -> &Path {
        &self.data_dir
    }

    fn spawn(&mut self, i: usize) -> io::Result<()> {
        let node = &mut self.nodes[i];
        let log = File::options()
            .create(true)
            .append(true)
            .open(node.log_path())?;
        let child = Command::new(&self.exe)
            .args(&node.args)
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .process_group(0)
            .spawn()?;
        node.child = Some(child);
        self.write_pids()
    }

    fn write_pids(&self) -> io::Result<()> {
        let lines: String = self
            .nodes
            .iter()
            .filter_map(|n| n.pid().map(|pid| format!("{} {pid}\n", n.name)))
            .collect();
        std::fs::write(self.data_dir.join("pids"), lines)
    }

    async fn wait_healthy(&mut self, i: usize) -> Result<(), ClusterError> {
        let started = Instant::now();
        let client = reqwest::Client::new();
        let url = self.nodes[i].url.clone();
        let mut last = String::from("no answer yet");
        while started.elapsed() < HEALTHY_WITHIN {
            let node = &mut self.nodes[i];
            if let Some(status) = node
                .child
                .as_mut()
                .and_then(|c| c.try_wait().ok().flatten())
            {
                last = format!("the process exited ({status})");
                break;
            }
            match health(&client, &url).await {
                Ok(()) => return Ok(()),
                Err(why) => last = why,
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        let node = &self.nodes[i];
        let log = node.log_path();
        let text = std::fs::read_to_string(&log).unwrap_or_default();
        let tail: Vec<&str> = text.lines().rev().take(20).collect();
        Err(ClusterError::Unhealthy {
            node: node.name.clone(),
            seconds: HEALTHY_WITHIN.as_secs(),
            why: last,
            log: log.display().to_string(),
            tail: tail.into_iter().rev().collect::<Vec<_>>().join("\n"),
        })
    }

    /// Sends `signal` to node `i`'s process group (SIGSTOP pauses, SIGCONT resumes).
    pub fn signal(&self, i: NodeId, signal: Signal) -> io::Result<()> {
        let Some(pid) = self.nodes[i as usize].pid() else {
            return Ok(());
        };
        killpg(Pid::from_raw(pid as i32), signal).map_err(io::Error::from)
    }

    /// Kills node `i` with SIGKILL (a crash) and reaps it.
    pub fn kill(&mut self, i: NodeId) -> io::Result<()> {
        self.signal(i, Signal::SIGKILL)?;
        if let Some(mut child) = self.nodes[i as usize].child.take() {
            child.wait()?;
        }
        Ok(())
    }

    /// Starts node `i` again on its data directory and waits until it is healthy.
    pub async fn restart(&mut self, i: usize) -> Result<(), ClusterError> {
        self.respawn(i as NodeId)?;
        self.wait_healthy(i).await
    }

    /// Starts node `i` again on its data directory (killing it first if it runs) without
    /// waiting for it; see [`wait_healthy`] for a wait that needs no lock on the cluster.
    pub fn respawn(&mut self, i: NodeId) -> io::Result<()> {
        if self.nodes[i as usize].child.is_some() {
            self.kill(i)?;
        }
        self.spawn(i as usize)
    }

    /// Stops every node: SIGTERM to each group, a grace period, then SIGKILL. Idempotent.
    pub fn stop(&mut self) {
        stop_groups(
            self.nodes
                .iter_mut()
                .filter_map(|n| n.child.take())
                .collect(),
        );
        let _ = std::fs::remove_file(self.data_dir.join("pids"));
    }
}

/// Stops child processes that lead their own process groups: SIGCONT (a paused process cannot
/// act on SIGTERM) and SIGTERM to each group, a grace period, then SIGKILL to what is left.
/// Makes `command`'s process die with faultline (SIGKILL when its parent dies), even if
/// faultline is killed with SIGKILL and cannot stop it.
pub(crate) fn die_with_parent(command: &mut std::process::Command) {
    use std::os::unix::process::CommandExt;
    // SAFETY: prctl is async-signal-safe and touches no memory of the parent.
    unsafe {
        command
            .pre_exec(|| nix::sys::prctl::set_pdeathsig(Signal::SIGKILL).map_err(io::Error::from));
    }
}

pub(crate) fn stop_groups(children: Vec<Child>) {
    for child in &children {
        let group = Pid::from_raw(child.id() as i32);
        let _ = killpg(group, Signal::SIGCONT);
        let _ = killpg(group, Signal::SIGTERM);
    }
    let deadline = Instant::now() + GRACE;
    for mut child in children {
        loop {
            match child.try_wait() {
                Ok(Some(_)) | Err(_) => break,
                Ok(None) if Instant::now() >= deadline => {
                    let _ = killpg(Pid::from_raw(child.id() as i32), Signal::SIGKILL);
                    let _ = child.wait();
                    break;
                }
                Ok(None) => std::thread::sleep(Duration::from_millis(10)),
            }
        }
    }
}

/// The data directory to use: `given` (created if missing), or a fresh temporary one named
/// `prefix<pid>-…` that is removed when the returned guard drops (and, should faultline be
/// killed, by the next start: see [`crate::leftovers`]).
pub(crate) fn data_dir(
    given: Option<&Path>,
    prefix: &str,
) -> io::Result<(PathBuf, Option<tempfile::TempDir>)> {
    match given {
        Some(dir) => {
            std::fs::create_dir_all(dir)?;
            Ok((dir.to_path_buf(), None))
        }
        None => {
            let temp = crate::leftovers::temp_dir(&std::env::temp_dir(), prefix)?;
            Ok((temp.path().to_path_buf(), Some(temp)))
        }
    }
}

/// One `GET /health` of the node at `url`: `Err` says what was seen instead of a 200.
async fn health(client: &reqwest::Client, url: &str) -> Result<(), String> {
    match client
        .get(format!("{url}/health"))
        .timeout(Duration::from_millis(500))
        .send()
        .await
    {
        Ok(r) if r.status().is_success() => Ok(()),
        Ok(r) => Err(format!("/health answered {}", r.status())),
        Err(e) => Err(e.to_string()),
    }
}

/// Waits until `url` answers `GET /health`, for at most `within`.
pub async fn wait_healthy(url: &str, within: Duration) -> Result<(), String> {
    let client = reqwest::Client::new();
    let started = Instant::now();
    let mut last = String::from("no answer");
    while started.elapsed() < within {
        match health(&client, url).await {
            Ok(()) => return Ok(()),
            Err(why) => last = why,
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    Err(format!("{url} not healthy after {within:?}: {last}"))
}

impl Drop for Cluster {
    fn drop(&mut self) {
        self.stop();
    }
}
