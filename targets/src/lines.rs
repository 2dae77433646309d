//! Reading a child's stdout line by line, each line capped: what the exec client programs
//! and the Maelstrom nodes print.

use std::io;

use tokio::io::{AsyncBufRead, AsyncBufReadExt};

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
