//! The `command` backend: the user's own shell commands apply and heal faults, for clusters
//! on other machines (ssh + iptables, docker, kubectl with Chaos Mesh).
//!
//! `--nemesis-cmd KEY='command'`, where KEY is a fault kind (`partition`, `kill`, `pause`,
//! `clock`, `packet`) for its start, and its heal is the first given of `heal-KIND`, `restart`
//! (for kill), `resume` (for pause), or `heal` (any kind). Each runs under `sh -c` with the
//! variables of [`ENVIRONMENT`]; one that exits non-zero, or runs past its timeout, is an
//! error: recorded in the history, said on the terminal, and the run exits 4.

use std::collections::BTreeMap;
use std::process::Stdio;
use std::time::Duration;

use tokio::process::Command;

use crate::Backend;
use crate::fault::{Fault, Kind, NodeId, name};

/// The variables every command gets, with what they hold (for `--help` and the README).
pub const ENVIRONMENT: &[(&str, &str)] = &[
    (
        "FAULTLINE_FAULT",
        "the fault kind: partition, kill, pause, clock or packet",
    ),
    ("FAULTLINE_ACTION", "start or heal"),
    (
        "FAULTLINE_NODES",
        "every node's name, space-separated: n1 n2 n3",
    ),
    (
        "FAULTLINE_HOSTS",
        "every node's host:port from --target, in the same order",
    ),
    (
        "FAULTLINE_TARGETS",
        "the nodes the fault acts on (kill, pause, clock, packet; partition: every node cut off from another)",
    ),
    ("FAULTLINE_TARGET_HOSTS", "their host:port"),
    (
        "FAULTLINE_GROUPS",
        "partition groups, space-separated, members comma-separated: n1,n2 n3,n4,n5",
    ),
    (
        "FAULTLINE_CUTS",
        "directed cuts a>b (b stops hearing from a), space-separated",
    ),
    (
        "FAULTLINE_OFFSETS_MS",
        "clock offsets, space-separated: n1=1500 n3=-200",
    ),
    ("FAULTLINE_DELAY_MS", "packet: added delay"),
    ("FAULTLINE_JITTER_MS", "packet: random extra delay"),
    ("FAULTLINE_LOSS", "packet: share lost, 0 to 1"),
    ("FAULTLINE_DUPLICATE", "packet: share duplicated, 0 to 1"),
    (
        "FAULTLINE_FAULT_JSON",
        "the whole fault as the history records it",
    ),
];

/// Runs the user's commands.
pub struct CommandBackend {
    commands: BTreeMap<String, String>,
    hosts: Vec<String>,
    timeout: Duration,
    active: Vec<Fault>,
}

impl CommandBackend {
    /// A backend from `KEY=command` pairs for the nodes at `hosts` (`host:port`), each command
    /// allowed `timeout`.
    pub fn new(pairs: &[String], hosts: Vec<String>, timeout: Duration) -> Result<Self, String> {
        let mut commands = BTreeMap::new();
        for pair in pairs {
            let (key, command) = pair.split_once('=').ok_or_else(|| {
                format!("--nemesis-cmd `{pair}`: expected KEY='command', e.g. kill='ssh $NODE ...'")
            })?;
            let key = key.trim();
            let known = Kind::ALL.iter().any(|k| k.name() == key)
                || ["heal", "restart", "resume"].contains(&key)
                || key
                    .strip_prefix("heal-")
                    .is_some_and(|k| Kind::ALL.iter().any(|kind| kind.name() == k));
            if !known {
                return Err(format!(
                    "--nemesis-cmd {key}=...: unknown key; expected a fault kind (partition, \
                     kill, pause, clock, packet), heal, heal-KIND, restart or resume"
                ));
            }
            if command.trim().is_empty() {
                return Err(format!("--nemesis-cmd {key}=: the command is empty"));
            }
            commands.insert(key.to_string(), command.to_string());
        }
        Ok(CommandBackend {
            commands,
            hosts,
            timeout,
            active: Vec::new(),
        })
    }

    /// Whether a start command is given for `kind`.
    pub fn handles(&self, kind: Kind) -> bool {
        self.commands.contains_key(kind.name())
    }

    fn heal_command(&self, kind: Kind) -> Option<&String> {
        let specific = format!("heal-{}", kind.name());
        let alias = match kind {
            Kind::Kill => Some("restart"),
            Kind::Pause => Some("resume"),
            _ => None,
        };
        self.commands
            .get(&specific)
            .or_else(|| alias.and_then(|a| self.commands.get(a)))
            .or_else(|| self.commands.get("heal"))
    }

    /// The environment a command gets for `fault`.
    fn environment(&self, fault: &Fault, action: &str) -> Vec<(String, String)> {
        let all: Vec<String> = (0..self.hosts.len() as NodeId).map(name).collect();
        let mut env = vec![
            ("FAULTLINE_FAULT".into(), fault.kind().name().to_string()),
            ("FAULTLINE_ACTION".into(), action.to_string()),
            ("FAULTLINE_NODES".into(), all.join(" ")),
            ("FAULTLINE_HOSTS".into(), self.hosts.join(" ")),
            ("FAULTLINE_FAULT_JSON".into(), fault.describe().to_string()),
        ];
        let targets: Vec<NodeId> = match fault {
            Fault::Kill { nodes }
            | Fault::Pause { nodes }
            | Fault::Packet { nodes, .. }
            | Fault::Crash { nodes, .. } => nodes.clone(),
            Fault::Clock { offsets, .. } => offsets.iter().map(|(n, _)| *n).collect(),
            Fault::Partition { cuts, .. } => {
                let mut cut: Vec<NodeId> = cuts.iter().flat_map(|c| [c.0, c.1]).collect();
                cut.sort_unstable();
                cut.dedup();
                cut
            }
        };
        env.push((
            "FAULTLINE_TARGETS".into(),
            targets
                .iter()
                .map(|&n| name(n))
                .collect::<Vec<_>>()
                .join(" "),
        ));
        env.push((
            "FAULTLINE_TARGET_HOSTS".into(),
            targets
                .iter()
                .map(|&n| self.hosts[n as usize].clone())
                .collect::<Vec<_>>()
                .join(" "),
        ));
        match fault {
            Fault::Partition { groups, cuts, .. } => {
                let groups: Vec<String> = groups
                    .iter()
                    .map(|g| g.iter().map(|&n| name(n)).collect::<Vec<_>>().join(","))
                    .collect();
                env.push(("FAULTLINE_GROUPS".into(), groups.join(" ")));
                let cuts: Vec<String> = cuts
                    .iter()
                    .map(|(a, b)| format!("{}>{}", name(*a), name(*b)))
                    .collect();
                env.push(("FAULTLINE_CUTS".into(), cuts.join(" ")));
            }
            Fault::Clock { offsets, .. } => {
                let offsets: Vec<String> = offsets
                    .iter()
                    .map(|(n, o)| format!("{}={o}", name(*n)))
                    .collect();
                env.push(("FAULTLINE_OFFSETS_MS".into(), offsets.join(" ")));
            }
            Fault::Packet {
                delay_ms,
                jitter_ms,
                loss,
                duplicate,
                ..
            } => {
                env.push(("FAULTLINE_DELAY_MS".into(), delay_ms.to_string()));
                env.push(("FAULTLINE_JITTER_MS".into(), jitter_ms.to_string()));
                env.push(("FAULTLINE_LOSS".into(), loss.to_string()));
                env.push(("FAULTLINE_DUPLICATE".into(), duplicate.to_string()));
            }
            Fault::Kill { .. } | Fault::Pause { .. } | Fault::Crash { .. } => {}
        }
        env
    }

    /// Runs `command` for `fault`; `Err` carries its exit status and the end of its stderr.
    async fn execute(
        &self,
        key: &str,
        command: &str,
        fault: &Fault,
        action: &str,
    ) -> Result<(), String> {
        let mut child = Command::new("sh");
        child
            .arg("-c")
            .arg(command)
            .envs(self.environment(fault, action))
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        let output = child.output();
        let output = match tokio::time::timeout(self.timeout, output).await {
            Ok(Ok(output)) => output,
            Ok(Err(e)) => return Err(format!("--nemesis-cmd {key}: cannot run sh: {e}")),
            Err(_) => {
                return Err(format!(
                    "--nemesis-cmd {key} ran past {:?} and was killed",
                    self.timeout
                ));
            }
        };
        if output.status.success() {
            return Ok(());
        }
        let stderr = String::from_utf8_lossy(&output.stderr);
        let tail: Vec<&str> = stderr.lines().rev().take(5).collect();
        let tail: Vec<&str> = tail.into_iter().rev().collect();
        Err(format!(
            "--nemesis-cmd {key} failed ({}): {}",
            output.status,
            if tail.is_empty() {
                "no output on stderr".to_string()
            } else {
                tail.join(" | ")
            }
        ))
    }
}

impl Backend for CommandBackend {
    fn unsupported(&self, kinds: &[Kind]) -> Vec<(Kind, String)> {
        kinds
            .iter()
            .filter_map(|&k| {
                if k == Kind::Crash {
                    Some((k, crate::CRASH_NEEDS_BUNDLED.to_string()))
                } else if !self.handles(k) {
                    Some((k, format!("no --nemesis-cmd {}='...' was given", k.name())))
                } else if self.heal_command(k).is_none() {
                    Some((
                        k,
                        format!(
                            "no command heals it: give --nemesis-cmd heal-{}='...' or heal='...'",
                            k.name()
                        ),
                    ))
                } else {
                    None
                }
            })
            .collect()
    }

    async fn apply(&mut self, fault: &Fault) -> Result<Fault, String> {
        let key = fault.kind().name();
        let command = self
            .commands
            .get(key)
            .ok_or_else(|| format!("no --nemesis-cmd {key}='...' was given"))?
            .clone();
        // Whatever the command did before failing may need healing.
        self.active.push(fault.clone());
        self.execute(key, &command, fault, "start").await?;
        Ok(fault.clone())
    }

    async fn heal(&mut self, fault: &Fault) -> Result<(), String> {
        let command = self
            .heal_command(fault.kind())
            .ok_or_else(|| format!("no command heals a {} fault", fault.kind()))?
            .clone();
        self.execute("heal", &command, fault, "heal").await?;
        self.active.retain(|f| f != fault);
        Ok(())
    }

    async fn heal_all(&mut self) -> Result<(), String> {
        let mut first_error = None;
        for fault in std::mem::take(&mut self.active) {
            if let Err(e) = self.heal(&fault).await {
                first_error.get_or_insert(e);
            }
        }
        first_error.map_or(Ok(()), Err)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fault::Shape;

    fn backend(pairs: &[&str]) -> CommandBackend {
        let pairs: Vec<String> = pairs.iter().map(|s| s.to_string()).collect();
        let hosts = vec!["a:1".into(), "b:2".into(), "c:3".into()];
        CommandBackend::new(&pairs, hosts, Duration::from_secs(5)).unwrap()
    }

    #[test]
    fn keys_are_checked_and_heals_are_found() {
        let hosts = vec!["a:1".to_string()];
        let bad = CommandBackend::new(
            &["explode=true".into()],
            hosts.clone(),
            Duration::from_secs(1),
        );
        assert!(bad.err().unwrap().contains("unknown key"));
        let bad = CommandBackend::new(&["kill".into()], hosts, Duration::from_secs(1));
        assert!(bad.err().unwrap().contains("expected KEY='command'"));
        let b = backend(&["kill=true", "restart=true", "partition=true"]);
        assert!(b.unsupported(&[Kind::Kill]).is_empty());
        let missing = b.unsupported(&[Kind::Partition, Kind::Pause]);
        assert!(missing[0].1.contains("heal-partition"));
        assert!(missing[1].1.contains("no --nemesis-cmd pause"));
    }

    #[tokio::test]
    async fn commands_see_the_fault_and_failures_are_errors() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("env");
        let record = format!(
            "partition=echo \"$FAULTLINE_ACTION $FAULTLINE_GROUPS $FAULTLINE_CUTS\" >> {}",
            out.display()
        );
        let heal = format!(
            "heal=echo \"$FAULTLINE_ACTION $FAULTLINE_TARGETS $FAULTLINE_HOSTS\" >> {}",
            out.display()
        );
        let mut b = backend(&[&record, &heal, "kill=echo nope >&2; exit 3"]);
        let fault = Fault::Partition {
            shape: Shape::One,
            one_way: true,
            groups: vec![vec![0], vec![1, 2]],
            cuts: vec![(0, 1), (0, 2)],
        };
        b.apply(&fault).await.unwrap();
        b.heal(&fault).await.unwrap();
        let seen = std::fs::read_to_string(&out).unwrap();
        assert_eq!(
            seen,
            "start n1 n2,n3 n1>n2 n1>n3\nheal n1 n2 n3 a:1 b:2 c:3\n"
        );
        let error = b.apply(&Fault::Kill { nodes: vec![1] }).await.unwrap_err();
        assert!(
            error.contains("kill failed") && error.contains("nope"),
            "{error}"
        );
    }

    #[tokio::test]
    async fn a_command_that_hangs_is_killed_at_its_timeout() {
        let hosts = vec!["a:1".to_string()];
        let mut b = CommandBackend::new(
            &["pause=sleep 30".into(), "heal=true".into()],
            hosts,
            Duration::from_millis(200),
        )
        .unwrap();
        let started = std::time::Instant::now();
        let error = b.apply(&Fault::Pause { nodes: vec![0] }).await.unwrap_err();
        assert!(error.contains("ran past"), "{error}");
        assert!(started.elapsed() < Duration::from_secs(10));
    }
}
