//! The `ssh` backend: faults on a cluster on other machines, through the nodes' own tools
//! over ssh (a cluster file says how to reach them and their lifecycle commands).
//!
//! - partitions and packet loss: an nftables table per run on each node (`inet
//!   faultline_ssh_<pid>`, the control machine's pid as its tag), dropping what comes from the
//!   cut-off peers' hosts and what goes to them, and a random share of what the node sends;
//!   replaced whole at each change, deleted at the heal;
//! - kill, pause, resume: the file's `kill`, `pause`, `resume` commands, and `start` to bring a
//!   killed node back;
//! - clock: the file's `clock` command with `FAULTLINE_OFFSET_MS` (refused without one).
//!
//! A run that was itself killed leaves its tables behind: the next backend deletes every
//! `faultline_ssh_<pid>` table whose pid no longer runs here.

use std::sync::Arc;
use std::time::{Duration, Instant};

use faultline_targets::ssh::Ssh;
use faultline_targets::ssh::cluster_file::ClusterFile;
use futures_util::future::join_all;

use crate::Backend;
use crate::desired::{Desired, NodeState, Process};
use crate::fault::{Fault, Kind, NodeId};

/// How long one command on one node may take.
const COMMAND_WITHIN: Duration = Duration::from_secs(30);

/// The table name of this run's rules.
fn table() -> String {
    format!("faultline_ssh_{}", std::process::id())
}

/// What a node is now, as far as this backend has made it.
#[derive(Clone, Copy, Debug, Default)]
struct NodeNow {
    process: Process,
    clock_ms: i64,
    ruled: bool,
}

/// Applies faults to a cluster on other machines over ssh.
pub struct SshBackend {
    ssh: Arc<Ssh>,
    file: ClusterFile,
    desired: Desired,
    /// What each node is now.
    now: Vec<NodeNow>,
    /// How long each fault took to be in force on every node it touched.
    took: Vec<Duration>,
}

impl SshBackend {
    /// A backend for the cluster of `file`, reached through `ssh`; removes the rules a killed
    /// run left on its nodes.
    pub async fn new(ssh: Arc<Ssh>, file: ClusterFile) -> Result<Self, String> {
        let nodes = file.nodes.len();
        let backend = SshBackend {
            ssh,
            desired: Desired::new(nodes),
            now: vec![NodeNow::default(); nodes],
            took: Vec::new(),
            file,
        };
        let script = "nft list tables 2>/dev/null | awk '/faultline_ssh_/ {print $3}'";
        for (i, node) in backend.file.nodes.iter().enumerate() {
            let listed = backend.run(i, script, &[]).await?;
            for name in listed.split_whitespace() {
                let pid = name
                    .trim_start_matches("faultline_ssh_")
                    .parse::<i32>()
                    .ok();
                let alive = pid.is_some_and(|p| {
                    nix::sys::signal::kill(nix::unistd::Pid::from_raw(p), None).is_ok()
                });
                if !alive {
                    backend
                        .run(i, &format!("nft delete table inet {name}"), &[])
                        .await?;
                    eprintln!(
                        "faultline: removed the rules a killed run left on {}: {name}",
                        node.name
                    );
                }
            }
        }
        Ok(backend)
    }

    /// The kinds the cluster of `file` cannot take, each with the reason.
    pub fn unsupported_kinds(file: &ClusterFile, kinds: &[Kind]) -> Vec<(Kind, String)> {
        let c = &file.commands;
        (kinds.iter())
            .filter_map(|&k| {
                let why = match k {
                    Kind::Partition | Kind::Packet => {
                        let named = file.nodes.iter().find(|n| n.host.parse::<std::net::Ipv4Addr>().is_err());
                        named.map(|n| format!("node {}'s host {} is not an IPv4 address, which nftables rules need", n.name, n.host))?
                    }
                    Kind::Kill if c.kill.is_none() || c.start.is_none() => {
                        "the cluster file needs `kill` and `start` commands".into()
                    }
                    Kind::Pause if c.pause.is_none() || c.resume.is_none() => {
                        "the cluster file needs `pause` and `resume` commands".into()
                    }
                    Kind::Clock if c.clock.is_none() => {
                        "the cluster file has no `clock` command (it gets FAULTLINE_OFFSET_MS)".into()
                    }
                    Kind::Crash => crate::CRASH_NEEDS_BUNDLED.into(),
                    Kind::Kill | Kind::Pause | Kind::Clock => return None,
                };
                Some((k, why))
            })
            .collect()
    }

    /// Runs `script` on node `i` with its `FAULTLINE_*` variables and `extra` ones; its stdout,
    /// or an error naming the node and what it printed.
    async fn run(&self, i: usize, script: &str, extra: &[(&str, &str)]) -> Result<String, String> {
        let node = &self.file.nodes[i];
        let names = self.file.names();
        let mut env = vec![
            ("FAULTLINE_NODE", node.name.as_str()),
            ("FAULTLINE_NODES", names.as_str()),
        ];
        env.extend_from_slice(extra);
        let ran = self
            .ssh
            .run(&node.host, &env, script, COMMAND_WITHIN)
            .await?;
        if ran.success {
            Ok(ran.stdout)
        } else {
            let said = ran.stderr.trim();
            Err(format!(
                "{} (over ssh): `{script}` failed ({}): {said}",
                node.name,
                ran.code.unwrap_or(-1)
            ))
        }
    }

    /// The nftables script for node state `s`, or `None` for no rules.
    fn rules(&self, s: &NodeState) -> Option<String> {
        let hosts = |nodes: &[NodeId]| -> Vec<String> {
            nodes
                .iter()
                .map(|&j| self.file.nodes[j as usize].host.clone())
                .collect()
        };
        let per_mille = (s.packet.loss.clamp(0.0, 1.0) * 1000.0).round() as u32;
        if s.drop_from.is_empty() && s.drop_to.is_empty() && per_mille == 0 {
            return None;
        }
        let mut input = String::new();
        if !s.drop_from.is_empty() {
            input = format!("ip saddr {{ {} }} drop", hosts(&s.drop_from).join(", "));
        }
        let mut output = Vec::new();
        if !s.drop_to.is_empty() {
            output.push(format!(
                "ip daddr {{ {} }} drop",
                hosts(&s.drop_to).join(", ")
            ));
        }
        if per_mille > 0 {
            output.push(format!("numgen random mod 1000 < {per_mille} drop"));
        }
        let t = table();
        Some(format!(
            "table inet {t} {{\n chain input {{\n  type filter hook input priority -5; policy accept;\n  {input}\n }}\n \
             chain output {{\n  type filter hook output priority -5; policy accept;\n  {}\n }}\n}}\n",
            output.join("\n  ")
        ))
    }

    /// Brings node `i` to its wanted state in one ssh round trip: its process through the
    /// lifecycle commands, its clock (when it changes), its rules. Whether it has rules now.
    async fn push_one(&self, i: usize, was: NodeNow) -> Result<bool, String> {
        let wanted = self.desired.node(i as NodeId).clone();
        let c = &self.file.commands;
        let lifecycle = match (was.process, wanted.process) {
            (Process::Running | Process::Paused, Process::Killed) => c.kill.as_deref(),
            (Process::Killed, Process::Running) => c.start.as_deref(),
            (Process::Running, Process::Paused) => c.pause.as_deref(),
            (Process::Paused, Process::Running) => c.resume.as_deref(),
            _ => None,
        };
        let mut steps: Vec<String> = lifecycle.map(str::to_string).into_iter().collect();
        if let Some(clock) = c
            .clock
            .as_deref()
            .filter(|_| was.clock_ms != wanted.clock_offset_ms)
        {
            steps.push(format!(
                "export FAULTLINE_OFFSET_MS={}\n{clock}",
                wanted.clock_offset_ms
            ));
        }
        let t = table();
        let rules = self.rules(&wanted);
        if was.ruled {
            steps.push(format!("nft delete table inet {t}"));
        }
        if let Some(rules) = &rules {
            steps.push(format!("nft -f - <<'FAULTLINE'\n{rules}FAULTLINE"));
        }
        if !steps.is_empty() {
            self.run(i, &format!("set -e\n{}", steps.join("\n")), &[])
                .await?;
        }
        Ok(rules.is_some())
    }

    /// Brings `nodes` to their wanted states, all at once; remembers how long it took.
    async fn push(&mut self, nodes: &[NodeId]) -> Result<(), String> {
        let started = Instant::now();
        let pushes = nodes
            .iter()
            .map(|&n| self.push_one(n as usize, self.now[n as usize]));
        let results = join_all(pushes).await;
        for (&n, result) in nodes.iter().zip(results) {
            let wanted = self.desired.node(n);
            self.now[n as usize] = NodeNow {
                process: wanted.process,
                clock_ms: wanted.clock_offset_ms,
                ruled: result?,
            };
        }
        self.took.push(started.elapsed());
        Ok(())
    }

    /// How long faults took to be in force on every node they touched: (median, max).
    pub fn in_force_within(&self) -> Option<(Duration, Duration)> {
        let mut took = self.took.clone();
        took.sort();
        Some((*took.get(took.len() / 2)?, *took.last()?))
    }
}

impl Backend for SshBackend {
    fn unsupported(&self, kinds: &[Kind]) -> Vec<(Kind, String)> {
        Self::unsupported_kinds(&self.file, kinds)
    }

    async fn apply(&mut self, fault: &Fault) -> Result<Fault, String> {
        let changed = self.desired.apply(fault);
        self.push(&changed).await?;
        // nftables drops; it does not delay or duplicate: say what was applied.
        Ok(match fault {
            Fault::Packet { nodes, loss, .. } => Fault::Packet {
                nodes: nodes.clone(),
                delay_ms: 0,
                jitter_ms: 0,
                loss: *loss,
                duplicate: 0.0,
            },
            other => other.clone(),
        })
    }

    async fn heal(&mut self, fault: &Fault) -> Result<(), String> {
        let changed = self.desired.heal(fault);
        self.push(&changed).await
    }

    async fn heal_all(&mut self) -> Result<(), String> {
        self.desired.heal_all();
        let every: Vec<NodeId> = (0..self.desired.len() as NodeId).collect();
        self.push(&every).await?;
        if let Some((median, max)) = self.in_force_within() {
            eprintln!(
                "faultline: over ssh, each fault was in force on its nodes within {} ms (median), {} ms (max)",
                median.as_millis(),
                max.as_millis()
            );
        }
        Ok(())
    }
}
