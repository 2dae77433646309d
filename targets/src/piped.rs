//! Programs faultline talks to in lines — the exec client programs and the Maelstrom nodes:
//! starting one with its stdin and stdout piped, and reading its stdout line by line, each
//! line capped.

use std::fs::OpenOptions;
use std::io;
use std::path::Path;
use std::process::Stdio;

use tokio::io::{AsyncBufRead, AsyncBufReadExt};
use tokio::process::{Child, ChildStdin, ChildStdout};

/// Starts `argv` with `env` in its own process group (so it and whatever it starts can be
/// killed together), dying with faultline, its stderr appended to `log`, its stdin and stdout
/// piped; the child is killed when dropped. Errors name the log or the command.
pub(crate) fn spawn(
    argv: &[String],
    env: impl IntoIterator<Item = (String, String)>,
    log: &Path,
) -> Result<(Child, ChildStdin, ChildStdout), String> {
    let stderr = OpenOptions::new()
        .create(true)
        .append(true)
        .open(log)
        .map_err(|e| format!("cannot open {}: {e}", log.display()))?;
    let mut command = std::process::Command::new(&argv[0]);
    command
        .args(&argv[1..])
        .envs(env)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(stderr);
    std::os::unix::process::CommandExt::process_group(&mut command, 0);
    crate::cluster::die_with_parent(&mut command);
    let mut command = tokio::process::Command::from(command);
    command.kill_on_drop(true);
    let mut child = command
        .spawn()
        .map_err(|e| format!("cannot start `{}`: {e}", argv.join(" ")))?;
    let (Some(stdin), Some(stdout)) = (child.stdin.take(), child.stdout.take()) else {
        unreachable!("stdin and stdout are piped");
    };
    Ok((child, stdin, stdout))
}

/// The longest line a program may print (a longer one is a protocol error).
const MAX_LINE: usize = 16 << 20;

/// The next non-blank line of `reader`, without its newline (or `\r\n`); `None` at its end.
pub(crate) async fn read_line<R: AsyncBufRead + Unpin>(
    reader: &mut R,
) -> io::Result<Option<String>> {
    let mut bytes = Vec::new();
    loop {
        let buf = reader.fill_buf().await?;
        if buf.is_empty() {
            return Ok((!bytes.is_empty()).then(|| String::from_utf8_lossy(&bytes).into()));
        }
        let (taken, done) = match buf.iter().position(|&b| b == b'\n') {
            Some(at) => (at + 1, true),
            None => (buf.len(), false),
        };
        bytes.extend_from_slice(&buf[..taken]);
        reader.consume(taken);
        if bytes.len() > MAX_LINE {
            return Err(io::Error::other(format!(
                "a line longer than {} MiB",
                MAX_LINE >> 20
            )));
        }
        if done {
            bytes.pop();
            if bytes.last() == Some(&b'\r') {
                bytes.pop();
            }
            if bytes.iter().all(u8::is_ascii_whitespace) {
                bytes.clear();
                continue;
            }
            return Ok(Some(String::from_utf8_lossy(&bytes).into()));
        }
    }
}
