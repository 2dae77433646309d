//! One client program, running: started in its own process group with its environment and
//! its stderr appended to its log, its hello read; then one operation at a time written to
//! its stdin and the answer read from its stdout.

use std::io;

use nix::sys::signal::{Signal, killpg};
use nix::unistd::Pid;
use tokio::io::{AsyncWriteExt, BufReader};
use tokio::process::{Child, ChildStdin, ChildStdout};
use tokio::time::Instant;

use super::ExecSpec;
use super::protocol::{self, Answer};
use crate::client::{Completion, Op};

/// A running client program.
#[derive(Debug)]
pub(super) struct Program {
    child: Child,
    stdin: ChildStdin,
    stdout: BufReader<ChildStdout>,
    /// The operations its hello offered.
    pub(super) ops: Vec<String>,
}

/// How one operation went.
#[derive(Debug)]
pub(super) enum Exchange {
    /// Answered; the program can take the next operation.
    Done(Completion),
    /// The program broke the protocol, exited, or did not answer in time: the completion,
    /// and why the program must be replaced.
    Broken(Completion, String),
}

impl Program {
    /// Starts client program `client` and reads its hello, waiting until `deadline`.
    pub(super) async fn start(
        spec: &ExecSpec,
        client: usize,
        deadline: Instant,
    ) -> Result<Program, String> {
        let log = spec.log_dir.join(format!("{client}.log"));
        let (child, stdin, stdout) =
            crate::piped::spawn(&spec.target.argv, spec.env(client), &log)?;
        let mut program = Program {
            child,
            stdin,
            stdout: BufReader::new(stdout),
            ops: Vec::new(),
        };
        let first = match tokio::time::timeout_at(deadline, program.read_line()).await {
            Ok(Ok(Some(line))) => line,
            Ok(Ok(None)) => return Err(format!("{} before its hello", program.exit().await)),
            Ok(Err(e)) => return Err(format!("its stdout: {e}")),
            Err(_) => return Err("no hello line in time".into()),
        };
        program.ops = protocol::parse_hello(&first)?;
        Ok(program)
    }

    /// Sends `op` as operation `id` (for `node`) and reads its answer, until `deadline`.
    pub(super) async fn exchange(
        &mut self,
        id: u64,
        op: &Op,
        node: Option<&str>,
        deadline: Instant,
    ) -> Exchange {
        let mut line = protocol::request(id, op, node);
        line.push('\n');
        let sent = async {
            self.stdin.write_all(line.as_bytes()).await?;
            self.stdin.flush().await
        };
        // The program may have read part of it before its stdin broke: unknown.
        match tokio::time::timeout_at(deadline, sent).await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => {
                let why = format!("could not send the operation ({e}); {}", self.exit().await);
                return broken_info(why);
            }
            Err(_) => return broken_info("its stdin was full until the time limit".into()),
        }
        match tokio::time::timeout_at(deadline, self.read_line()).await {
            Ok(Ok(Some(line))) => match protocol::parse_answer(&line, id, op) {
                Answer::Done(completion) => Exchange::Done(completion),
                Answer::Malformed(why) => broken_info(why),
            },
            Ok(Ok(None)) => broken_info(format!("{} during the operation", self.exit().await)),
            Ok(Err(e)) => broken_info(format!("its stdout: {e}")),
            Err(_) => broken_info("no answer in time".into()),
        }
    }

    /// The next line of its stdout, without the newline; `None` at its end.
    async fn read_line(&mut self) -> io::Result<Option<String>> {
        crate::piped::read_line(&mut self.stdout).await
    }

    /// How it ended, as words: "it exited with exit status: 1", or that it closed its stdout.
    async fn exit(&mut self) -> String {
        match tokio::time::timeout(std::time::Duration::from_millis(200), self.child.wait()).await {
            Ok(Ok(status)) => format!("it exited ({status})"),
            _ => "it closed its stdout".into(),
        }
    }
}

fn broken_info(why: String) -> Exchange {
    Exchange::Broken(
        Completion::Info {
            error: format!("{why}; the client is restarted"),
        },
        why,
    )
}

impl Drop for Program {
    /// Kills its whole process group (whatever it started too); `kill_on_drop` reaps it.
    fn drop(&mut self) {
        if let Some(pid) = self.child.id() {
            let _ = killpg(Pid::from_raw(pid as i32), Signal::SIGKILL);
        }
    }
}
