//! `local:etcd`: a real etcd cluster that faultline starts, breaks and stops itself.
//!
//! Each member is an `etcd` process with its own data directory, in its own process group,
//! killed by the kernel if faultline dies. With root (and `ip`, `nft`) each member lives in its
//! own network namespace ([`super::netns`]) so partitions and loss are kernel-level drops;
//! without, members share loopback. Either way the runner reaches each member through a
//! [`Proxy`] in front of its client address, and on loopback the members reach each other
//! through proxies in front of their peer addresses, so delay, loss and bandwidth faults need
//! neither root nor netem.

use std::fs::File;
use std::io;
use std::net::{SocketAddr, TcpListener};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use nix::sys::signal::{Signal, killpg};
use nix::unistd::Pid;

use super::EtcdSettings;
use super::netns::{self, Namespaces};
use crate::cluster::{ClusterError, data_dir, stop_groups};
use crate::proxy::Proxy;
use crate::systems::NodeId;
use crate::systems::kv::node_name;

/// How members reach each other.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Network {
    /// Each member in its own network namespace (root): partitions and loss are real drops.
    Namespaces,
    /// Every member on 127.0.0.1: kill, pause and proxy faults only.
    Loopback,
}

impl Network {
    /// Its name in settings and reports.
    pub fn name(self) -> &'static str {
        match self {
            Network::Namespaces => "netns",
            Network::Loopback => "loopback",
        }
    }
}

/// What etcd cluster to start.
#[derive(Clone, Debug)]
pub struct EtcdSpec {
    /// How many members.
    pub nodes: u32,
    /// The etcd binary; found on PATH when `None`.
    pub bin: Option<PathBuf>,
    /// Where members keep their data and logs; a temporary directory, removed at stop, when
    /// `None`.
    pub data_dir: Option<PathBuf>,
    /// Timing, network and read mode.
    pub settings: EtcdSettings,
}

/// One member process.
#[derive(Debug)]
struct Member {
    name: String,
    /// Where its client port really is (inside its namespace, or on loopback).
    client: SocketAddr,
    data_dir: PathBuf,
    args: Vec<String>,
    child: Option<Child>,
}

/// A running local etcd cluster. Dropping it stops every member and removes every namespace,
/// link and rule it made.
#[derive(Debug)]
pub struct EtcdCluster {
    members: Vec<Member>,
    bin: PathBuf,
    network: Network,
    client_proxies: Vec<Proxy>,
    peer_proxies: Vec<Proxy>,
    namespaces: Option<Namespaces>,
    data_dir: PathBuf,
    started_in: Duration,
    _temp: Option<tempfile::TempDir>,
}

/// How long a cluster may take to elect a leader and serve.
const READY_WITHIN: Duration = Duration::from_secs(20);

/// Finds the etcd binary: `bin` if given, else `etcd` on PATH.
pub fn find_etcd(bin: Option<&Path>) -> Result<PathBuf, ClusterError> {
    if let Some(bin) = bin {
        return if bin.is_file() {
            Ok(bin.to_path_buf())
        } else {
            Err(ClusterError::Spec(format!(
                "--etcd-bin {}: no such file",
                bin.display()
            )))
        };
    }
    std::env::var_os("PATH")
        .iter()
        .flat_map(std::env::split_paths)
        .map(|dir| dir.join("etcd"))
        .find(|p| p.is_file())
        .ok_or_else(|| {
            ClusterError::Spec(
                "etcd is not on PATH: install it (Debian: apt-get install etcd-server) or pass \
                 --etcd-bin /path/to/etcd"
                    .into(),
            )
        })
}

/// Resolves `network=auto`: namespaces where they work, loopback otherwise (with the reason).
pub fn resolve_network(wanted: Option<Network>) -> Result<(Network, Option<String>), String> {
    match (wanted, netns::available()) {
        (Some(Network::Namespaces), Err(why)) => Err(format!("network=netns: {why}")),
        (Some(n), _) => Ok((n, None)),
        (None, Ok(())) => Ok((Network::Namespaces, None)),
        (None, Err(why)) => Ok((Network::Loopback, Some(why))),
    }
}

fn free_port() -> io::Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

impl EtcdCluster {
    /// Starts the cluster and waits until every member reports itself healthy (a leader is
    /// elected and it serves).
    pub async fn start(spec: EtcdSpec) -> Result<EtcdCluster, ClusterError> {
        let started = Instant::now();
        if !(1..=9).contains(&spec.nodes) {
            return Err(ClusterError::Spec(format!(
                "--nodes {}: a local etcd cluster has 1 to 9 members",
                spec.nodes
            )));
        }
        let bin = find_etcd(spec.bin.as_deref())?;
        let (network, _) = resolve_network(spec.settings.network).map_err(ClusterError::Spec)?;
        let (data_dir, temp) = data_dir(spec.data_dir.as_deref(), "faultline-etcd-")?;
        let n = spec.nodes as usize;
        let namespaces = match network {
            Network::Namespaces => {
                netns::clean_leftovers();
                Some(Namespaces::create(n)?)
            }
            Network::Loopback => None,
        };
        // (client address, peer listen address, peer address the others use)
        let mut addrs = Vec::with_capacity(n);
        let mut peer_proxies = Vec::new();
        for i in 0..n {
            match &namespaces {
                Some(ns) => {
                    let ip = ns.node_ip(i);
                    let peer = SocketAddr::from((ip, 2380));
                    addrs.push((SocketAddr::from((ip, 2379)), peer, peer));
                }
                None => {
                    let client = SocketAddr::from(([127, 0, 0, 1], free_port()?));
                    let peer = SocketAddr::from(([127, 0, 0, 1], free_port()?));
                    let proxy =
                        Proxy::start("127.0.0.1:0".parse().expect("an address"), peer).await?;
                    addrs.push((client, peer, proxy.addr()));
                    peer_proxies.push(proxy);
                }
            }
        }
        let peers: Vec<String> = addrs
            .iter()
            .map(|(_, peer, _)| format!("http://{peer}/version"))
            .collect();
        let initial: Vec<String> = addrs
            .iter()
            .enumerate()
            .map(|(i, (_, _, advertised))| format!("{}=http://{advertised}", node_name(i as u32)))
            .collect();
        let s = &spec.settings;
        let mut members = Vec::with_capacity(n);
        for (i, (client, peer, advertised)) in addrs.iter().enumerate() {
            let name = node_name(i as u32);
            let member_dir = data_dir.join(&name);
            let args = vec![
                format!("--name={name}"),
                format!("--data-dir={}", member_dir.display()),
                format!("--listen-client-urls=http://{client}"),
                format!("--advertise-client-urls=http://{client}"),
                format!("--listen-peer-urls=http://{peer}"),
                format!("--initial-advertise-peer-urls=http://{advertised}"),
                format!("--initial-cluster={}", initial.join(",")),
                "--initial-cluster-state=new".into(),
                format!("--initial-cluster-token=faultline-{}", std::process::id()),
                format!("--heartbeat-interval={}", s.heartbeat_ms),
                format!("--election-timeout={}", s.election_ms),
                "--logger=zap".into(),
                "--log-outputs=stderr".into(),
            ];
            members.push(Member {
                name,
                client: *client,
                data_dir: member_dir,
                args,
                child: None,
            });
        }
        let mut client_proxies = Vec::with_capacity(n);
        for member in &members {
            client_proxies.push(
                Proxy::start("127.0.0.1:0".parse().expect("an address"), member.client).await?,
            );
        }
        let mut cluster = EtcdCluster {
            members,
            bin,
            network,
            client_proxies,
            peer_proxies,
            namespaces,
            data_dir,
            started_in: Duration::ZERO,
            _temp: temp,
        };
        // One at a time: a starting member asks every peer whether it is already part of a
        // cluster and gives one that accepted the connection but does not answer yet a whole
        // second, so members started together wait a second per peer.
        for (i, version_url) in peers.iter().enumerate() {
            cluster.spawn(i)?;
            cluster.wait_peer_port(i, version_url).await;
        }
        for i in 0..n {
            cluster.wait_ready(i).await?;
        }
        cluster.started_in = started.elapsed();
        Ok(cluster)
    }

    /// How long the start took, from the call to every member healthy.
    pub fn started_in(&self) -> Duration {
        self.started_in
    }

    /// The members' client URLs as the runner uses them (through the client proxies).
    pub fn urls(&self) -> Vec<String> {
        self.client_proxies
            .iter()
            .map(|p| format!("http://{}", p.addr()))
            .collect()
    }

    /// The members' own client URLs (not through a proxy).
    pub fn direct_urls(&self) -> Vec<String> {
        self.members
            .iter()
            .map(|m| format!("http://{}", m.client))
            .collect()
    }

    /// How the members reach each other.
    pub fn network(&self) -> Network {
        self.network
    }

    /// The namespaces, when the members live in them.
    pub fn namespaces(&self) -> Option<&Namespaces> {
        self.namespaces.as_ref()
    }

    /// The proxies in front of member `i`: its client port, and on loopback its peer port.
    pub fn proxies(&self, i: NodeId) -> (&Proxy, Option<&Proxy>) {
        (
            &self.client_proxies[i as usize],
            self.peer_proxies.get(i as usize),
        )
    }

    /// How many members.
    pub fn len(&self) -> usize {
        self.members.len()
    }

    /// Whether it has no members (never, once started).
    pub fn is_empty(&self) -> bool {
        self.members.is_empty()
    }

    /// Member `i`'s process id while it runs.
    pub fn pid(&self, i: usize) -> Option<u32> {
        self.members[i].child.as_ref().map(Child::id)
    }

    /// The cluster's data directory.
    pub fn data_dir(&self) -> &Path {
        &self.data_dir
    }

    fn log_path(&self, i: usize) -> PathBuf {
        self.members[i].data_dir.with_extension("log")
    }

    fn spawn(&mut self, i: usize) -> io::Result<()> {
        let log = File::options()
            .create(true)
            .append(true)
            .open(self.log_path(i))?;
        let mut command = match &self.namespaces {
            Some(ns) => ns.command(i, &self.bin),
            None => Command::new(&self.bin),
        };
        command
            .args(&self.members[i].args)
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .process_group(0);
        crate::cluster::die_with_parent(&mut command);
        self.members[i].child = Some(command.spawn()?);
        Ok(())
    }

    /// Waits (at most a second) until member `i` serves its peer port at `version_url`.
    async fn wait_peer_port(&mut self, i: usize, version_url: &str) {
        let client = reqwest::Client::new();
        let started = Instant::now();
        while started.elapsed() < Duration::from_secs(1) {
            let exited = self.members[i]
                .child
                .as_mut()
                .is_some_and(|c| matches!(c.try_wait(), Ok(Some(_))));
            if exited {
                return; // wait_ready reports it with the log
            }
            let answer = client
                .get(version_url)
                .timeout(Duration::from_millis(200))
                .send()
                .await;
            if answer.is_ok_and(|r| r.status().is_success()) {
                return;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }

    async fn wait_ready(&mut self, i: usize) -> Result<(), ClusterError> {
        let started = Instant::now();
        let url = format!("http://{}/health", self.members[i].client);
        let client = reqwest::Client::new();
        let mut last = String::from("no answer yet");
        while started.elapsed() < READY_WITHIN {
            if let Some(status) = self.members[i]
                .child
                .as_mut()
                .and_then(|c| c.try_wait().ok().flatten())
            {
                last = format!("the process exited ({status})");
                break;
            }
            match client
                .get(&url)
                .timeout(Duration::from_millis(500))
                .send()
                .await
            {
                Ok(r) => {
                    let text = r.text().await.unwrap_or_default();
                    if text.contains("\"true\"") {
                        return Ok(());
                    }
                    last = format!("/health said {text}");
                }
                Err(e) => last = e.to_string(),
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let log = self.log_path(i);
        let text = std::fs::read_to_string(&log).unwrap_or_default();
        let tail: Vec<&str> = text.lines().rev().take(20).collect();
        Err(ClusterError::Unhealthy {
            node: self.members[i].name.clone(),
            seconds: READY_WITHIN.as_secs(),
            why: last,
            log: log.display().to_string(),
            tail: tail.into_iter().rev().collect::<Vec<_>>().join("\n"),
        })
    }

    /// Sends `signal` to member `i`'s process group (SIGSTOP pauses, SIGCONT resumes).
    pub fn signal(&self, i: NodeId, signal: Signal) -> io::Result<()> {
        let Some(pid) = self.pid(i as usize) else {
            return Ok(());
        };
        killpg(Pid::from_raw(pid as i32), signal).map_err(io::Error::from)
    }

    /// Kills member `i` with SIGKILL (a crash) and reaps it.
    pub fn kill(&mut self, i: NodeId) -> io::Result<()> {
        self.signal(i, Signal::SIGKILL)?;
        if let Some(mut child) = self.members[i as usize].child.take() {
            child.wait()?;
        }
        Ok(())
    }

    /// Starts member `i` again on its data directory without waiting; see [`wait_serving`].
    pub fn respawn(&mut self, i: NodeId) -> io::Result<()> {
        if self.members[i as usize].child.is_some() {
            self.kill(i)?;
        }
        self.spawn(i as usize)
    }

    /// Stops every member (SIGTERM, a grace period, SIGKILL), closes the proxies and removes
    /// the namespaces. Idempotent.
    pub fn stop(&mut self) {
        stop_groups(
            self.members
                .iter_mut()
                .filter_map(|m| m.child.take())
                .collect(),
        );
        self.client_proxies.clear();
        self.peer_proxies.clear();
        if let Some(ns) = &mut self.namespaces {
            ns.remove();
        }
    }
}

impl Drop for EtcdCluster {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Waits until the etcd member at `url` answers `GET /version` (it runs; it may not yet see a
/// leader), for at most `within`.
pub async fn wait_serving(url: &str, within: Duration) -> Result<(), String> {
    let client = reqwest::Client::new();
    let started = Instant::now();
    let mut last = String::from("no answer");
    while started.elapsed() < within {
        match client
            .get(format!("{url}/version"))
            .timeout(Duration::from_millis(500))
            .send()
            .await
        {
            Ok(r) if r.status().is_success() => return Ok(()),
            Ok(r) => last = format!("/version answered {}", r.status()),
            Err(e) => last = e.to_string(),
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    Err(format!("{url} not serving after {within:?}: {last}"))
}
