//! `exec:` targets: the user's own client program, in any language, speaking a JSON-lines
//! protocol on its stdin and stdout ([`protocol`]). faultline starts one program per client
//! (`--clients`), each in its own process group, with its stderr in `clients/<n>.log` of the
//! run directory; a program that exits, breaks the protocol or does not answer in time is
//! replaced (its operation completes `info`, the message names the line) and the run says so.
//!
//! Each program's environment: `FAULTLINE_CLIENT` (its number), `FAULTLINE_NODES` (node names,
//! space-separated, as `--nemesis-cmd` commands get them) and `FAULTLINE_HOSTS` (their
//! `host:port`s, or the proxies' in front of them under packet faults), `FAULTLINE_SEED`, `FAULTLINE_OP_TIMEOUT_MS`, and `FAULTLINE_SET_<NAME>`
//! for each setting.

mod program;
pub mod protocol;

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;

use tokio::sync::Mutex;
use tokio::task::JoinHandle;
use tokio::time::Instant;

use crate::client::{Client, Completion, Op, TargetError};
use program::{Exchange, Program};

/// How long a program has to print its hello (an interpreter on a loaded machine is slow).
const HELLO_WITHIN: Duration = Duration::from_secs(20);

/// `exec:COMMAND ARGS…` as given: the program and what it is told.
#[derive(Clone, Debug, PartialEq)]
pub struct ExecTarget {
    /// The command line, split as a shell would (no shell runs it).
    pub argv: Vec<String>,
    /// `--set` settings, passed as `FAULTLINE_SET_<NAME>`.
    pub settings: Vec<(String, String)>,
    /// `--nodes-addr`: the cluster's nodes, `host:port` each.
    pub nodes: Vec<String>,
}

impl ExecTarget {
    /// Parses `exec:COMMAND ARGS…` (the text after `exec:`), its settings and node addresses.
    pub fn parse(command: &str, settings: &[String], nodes: &[String]) -> Result<Self, String> {
        let argv = shell_words::split(command)
            .map_err(|e| format!("exec:{command}: {e} (quote as a shell would)"))?;
        if argv.is_empty() {
            return Err("exec: names no command; e.g. --target 'exec:python3 client.py'".into());
        }
        let settings = crate::systems::key_values(settings.iter().map(String::as_str), "any")?
            .into_iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        for node in nodes {
            let port = node
                .rsplit_once(':')
                .and_then(|(_, p)| p.parse::<u16>().ok());
            if port.is_none() {
                return Err(format!("--nodes-addr {node}: expected host:port"));
            }
        }
        Ok(ExecTarget {
            argv,
            settings,
            nodes: nodes.to_vec(),
        })
    }

    /// `FAULTLINE_SET_<NAME>` for a setting's name: upper case, `-` and `.` as `_`.
    pub fn variable(name: &str) -> String {
        let name: String = name
            .chars()
            .map(|c| match c {
                '-' | '.' => '_',
                c => c.to_ascii_uppercase(),
            })
            .collect();
        format!("FAULTLINE_SET_{name}")
    }
}

/// Everything the programs of one run are started with.
#[derive(Clone, Debug)]
pub struct ExecSpec {
    /// The target.
    pub target: ExecTarget,
    /// What the programs connect to: the nodes' `host:port`s, or the proxies' in front.
    pub hosts: Vec<String>,
    /// The nodes' names, in the order of `hosts`.
    pub names: Vec<String>,
    /// The run's seed.
    pub seed: u64,
    /// The run's name (its directory's), unique: programs prefix their keys with it when the
    /// system keeps data from run to run.
    pub run: String,
    /// `--op-timeout`: how long faultline waits for an answer.
    pub op_timeout: Duration,
    /// Where each program's stderr goes (`<n>.log`).
    pub log_dir: PathBuf,
    /// How many programs (`--clients`).
    pub clients: usize,
    /// The operations the workload needs (a hello that lacks one is refused).
    pub needs: Vec<&'static str>,
}

impl ExecSpec {
    /// Program `client`'s environment.
    fn env(&self, client: usize) -> Vec<(String, String)> {
        let mut env = vec![
            ("FAULTLINE_CLIENT".to_string(), client.to_string()),
            ("FAULTLINE_NODES".to_string(), self.names.join(" ")),
            ("FAULTLINE_HOSTS".to_string(), self.hosts.join(" ")),
            ("FAULTLINE_SEED".to_string(), self.seed.to_string()),
            ("FAULTLINE_RUN".to_string(), self.run.clone()),
            (
                "FAULTLINE_OP_TIMEOUT_MS".to_string(),
                self.op_timeout.as_millis().to_string(),
            ),
        ];
        for (name, value) in &self.target.settings {
            env.push((ExecTarget::variable(name), value.clone()));
        }
        env
    }
}

/// One program's place: running, being started (on a task of its own, so that a slow start
/// outlives the operation that began it), or stopped.
#[derive(Debug)]
enum Slot {
    Stopped,
    Starting(JoinHandle<Result<Program, String>>),
    Running(Box<Program>),
}

/// A client that drives the user's programs, one per runner client.
#[derive(Debug)]
pub struct ExecClient {
    spec: Arc<ExecSpec>,
    programs: Vec<Mutex<Slot>>,
    /// For operations with no client of their own (final reads): the next program to use.
    next: AtomicUsize,
    /// The last operation id sent: ids are unique in the run, across restarts.
    last_id: AtomicU64,
    restarts: AtomicU64,
}

impl ExecClient {
    /// A client of `spec`'s programs; none runs until [`ExecClient::check_reachable`].
    pub fn new(spec: ExecSpec) -> Result<Self, TargetError> {
        std::fs::create_dir_all(&spec.log_dir)
            .map_err(|e| TargetError(format!("cannot create {}: {e}", spec.log_dir.display())))?;
        let programs = (0..spec.clients.max(1))
            .map(|_| Mutex::new(Slot::Stopped))
            .collect();
        Ok(ExecClient {
            spec: Arc::new(spec),
            programs,
            next: AtomicUsize::new(0),
            last_id: AtomicU64::new(0),
            restarts: AtomicU64::new(0),
        })
    }

    /// Starts every program and checks that its hello offers what the workload needs.
    pub async fn check_reachable(&self, timeout: Duration) -> Result<(), TargetError> {
        let deadline = Instant::now() + timeout.max(HELLO_WITHIN);
        // All at once: on a loaded machine one interpreter's start can take seconds.
        let starts: Vec<_> = (0..self.programs.len())
            .map(|n| {
                let spec = self.spec.clone();
                tokio::spawn(async move { Program::start(&spec, n, deadline).await })
            })
            .collect();
        let mut starts = starts.into_iter();
        for (n, slot) in self.programs.iter().enumerate() {
            let start = starts.next().expect("one start per program");
            let started = start
                .await
                .unwrap_or_else(|e| Err(format!("its start failed: {e}")))
                .map_err(|e| TargetError(self.failed_to_start(n, &e)))
                .and_then(|program| self.offers_what_is_needed(n, program));
            match started {
                Ok(program) => *slot.lock().await = Slot::Running(Box::new(program)),
                Err(e) => {
                    // The others' programs die with their tasks.
                    starts.for_each(|start| start.abort());
                    return Err(e);
                }
            }
        }
        Ok(())
    }

    /// `program` if its hello offers every operation the workload needs.
    fn offers_what_is_needed(&self, n: usize, program: Program) -> Result<Program, TargetError> {
        let missing: Vec<&str> = (self.spec.needs.iter())
            .filter(|need| !program.ops.iter().any(|op| op == *need))
            .copied()
            .collect();
        if missing.is_empty() {
            return Ok(program);
        }
        Err(TargetError(format!(
            "exec client {n} offers {} (its hello); the workload needs {} as well",
            program.ops.join(", "),
            missing.join(", ")
        )))
    }

    /// How many programs were replaced during the run.
    pub fn restarts(&self) -> u64 {
        self.restarts.load(Ordering::Relaxed)
    }

    /// Appends a line of faultline's to program `n`'s log, between what it wrote.
    fn note(&self, n: usize, line: &str) {
        use std::io::Write;
        let log = self.spec.log_dir.join(format!("{n}.log"));
        if let Ok(mut file) = std::fs::OpenOptions::new().append(true).open(log) {
            let _ = writeln!(file, "--- faultline: {line}");
        }
    }

    fn failed_to_start(&self, n: usize, why: &str) -> String {
        let log = self.spec.log_dir.join(format!("{n}.log"));
        format!(
            "exec client {n} (`{}`): {why}; its stderr is in {}",
            self.spec.target.argv.join(" "),
            log.display()
        )
    }

    /// Runs `op` for runner client `n` on its own program, starting the program first if it
    /// is not running. Until `timeout` passes; an operation whose program is still starting
    /// then was not sent.
    async fn run_for(&self, n: usize, node: usize, op: &Op, timeout: Duration) -> Completion {
        let deadline = Instant::now() + timeout;
        let n = n % self.programs.len();
        let mut slot = self.programs[n].lock().await;
        if matches!(*slot, Slot::Stopped) {
            let spec = self.spec.clone();
            let start_by = Instant::now() + timeout.max(HELLO_WITHIN);
            *slot = Slot::Starting(tokio::spawn(async move {
                Program::start(&spec, n, start_by).await
            }));
        }
        if let Slot::Starting(start) = &mut *slot {
            let started = match tokio::time::timeout_at(deadline, start).await {
                Err(_) => {
                    return Completion::Fail {
                        error: format!("not sent: exec client {n} is still starting"),
                    };
                }
                Ok(Ok(started)) => started,
                Ok(Err(e)) => Err(format!("its start failed: {e}")),
            };
            match started {
                Ok(program) => *slot = Slot::Running(Box::new(program)),
                Err(why) => {
                    *slot = Slot::Stopped;
                    let why = self.failed_to_start(n, &why);
                    eprintln!("faultline: {why}");
                    return Completion::Fail {
                        error: format!("not sent: {why}"),
                    };
                }
            }
        }
        let Slot::Running(program) = &mut *slot else {
            unreachable!("started above");
        };
        let name = self.spec.names.get(node).map(String::as_str);
        let id = self.last_id.fetch_add(1, Ordering::Relaxed) + 1;
        match program.exchange(id, op, name, deadline).await {
            Exchange::Done(completion) => completion,
            Exchange::Broken(completion, why) => {
                *slot = Slot::Stopped;
                self.restarts.fetch_add(1, Ordering::Relaxed);
                let why = format!("exec client {n} is restarted: {why}");
                eprintln!("faultline: {why}");
                self.note(n, &why);
                completion
            }
        }
    }
}

impl Drop for ExecClient {
    /// Stops the starts still running (their programs die with them); running programs stop
    /// as their slots drop.
    fn drop(&mut self) {
        for slot in &mut self.programs {
            if let Slot::Starting(start) = slot.get_mut() {
                start.abort();
            }
        }
    }
}

impl Client for ExecClient {
    async fn invoke(&self, node: usize, op: &Op, timeout: Duration) -> Completion {
        let n = self.next.fetch_add(1, Ordering::Relaxed);
        self.run_for(n, node, op, timeout).await
    }

    async fn invoke_as(
        &self,
        client: usize,
        node: usize,
        op: &Op,
        timeout: Duration,
    ) -> Completion {
        self.run_for(client, node, op, timeout).await
    }

    fn nodes(&self) -> usize {
        self.spec.names.len().max(1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets_parse_as_a_shell_would_split_them() {
        let target = ExecTarget::parse(
            "python3 'my client.py' --fast",
            &["read=replica,wait-ms=5".into()],
            &["127.0.0.1:6379".into()],
        )
        .unwrap();
        assert_eq!(target.argv, ["python3", "my client.py", "--fast"]);
        assert_eq!(
            target.settings,
            [
                ("read".to_string(), "replica".to_string()),
                ("wait-ms".to_string(), "5".to_string())
            ]
        );
        assert_eq!(ExecTarget::variable("wait-ms"), "FAULTLINE_SET_WAIT_MS");
        assert!(ExecTarget::parse("", &[], &[]).is_err());
        assert!(ExecTarget::parse("'unclosed", &[], &[]).is_err());
        assert!(
            ExecTarget::parse("c", &[], &["nohost".into()])
                .unwrap_err()
                .contains("--nodes-addr nohost")
        );
    }
}
