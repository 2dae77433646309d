//! The history as it happens: every event appended to `history.jsonl` with a dense index and a
//! monotonic time, buffered, and flushed at least every 100 ms and at the end, so a crash of
//! the harness leaves a checkable prefix. Times are tokio's, so a simulated run (on a paused
//! clock) records virtual time.

use std::fs::File;
use std::io::{self, BufWriter, Write};
use std::path::Path;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use tokio::time::Instant;

use serde::Serialize;
use serde_json::Value;

/// How often the buffer is flushed at the latest.
pub(crate) const FLUSH_EVERY: Duration = Duration::from_millis(100);

/// Live counts of completions, for progress displays.
#[derive(Debug, Default)]
pub struct Counts {
    /// Operations invoked.
    pub invoked: AtomicU64,
    /// Completed ok.
    pub ok: AtomicU64,
    /// Completed fail.
    pub fail: AtomicU64,
    /// Completed info.
    pub info: AtomicU64,
}

/// Who issued an event.
#[derive(Clone, Copy, Debug, Serialize)]
#[serde(untagged)]
pub enum Who {
    /// A client process.
    Client(u64),
    /// The nemesis.
    Nemesis(&'static str),
}

/// One event, as written.
#[derive(Debug, Serialize)]
pub struct EventLine<'a> {
    /// The issuer.
    pub process: Who,
    /// `invoke`, `ok`, `fail` or `info`.
    #[serde(rename = "type")]
    pub kind: &'a str,
    /// The operation.
    pub f: &'a str,
    /// The key.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub key: Option<&'a str>,
    /// The value.
    pub value: &'a Value,
    /// The node that served it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub node: Option<&'a str>,
    /// Why it failed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<&'a str>,
    /// What the target returned beside the value.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub meta: Option<&'a Value>,
}

#[derive(Serialize)]
struct Stamped<'a> {
    index: u64,
    time: u64,
    #[serde(flatten)]
    event: &'a EventLine<'a>,
}

struct Inner {
    out: BufWriter<File>,
    index: u64,
    last_flush: Instant,
}

/// Appends events to a history file.
pub struct Recorder {
    inner: Mutex<Inner>,
    start: Instant,
    /// Live counts.
    pub counts: Counts,
}

impl Recorder {
    /// Creates (truncates) the history file; times count from now.
    pub fn create(path: &Path) -> io::Result<Self> {
        Ok(Recorder {
            inner: Mutex::new(Inner {
                out: BufWriter::with_capacity(1 << 16, File::create(path)?),
                index: 0,
                last_flush: Instant::now(),
            }),
            start: Instant::now(),
            counts: Counts::default(),
        })
    }

    /// Time since the run started.
    pub fn elapsed(&self) -> Duration {
        self.start.elapsed()
    }

    /// Appends an event, stamped with the next index and the current time (both taken under
    /// the same lock as the write, so file order, indices and times agree).
    pub fn record(&self, event: &EventLine<'_>) -> io::Result<()> {
        let counter = match event.kind {
            "invoke" => &self.counts.invoked,
            "ok" => &self.counts.ok,
            "fail" => &self.counts.fail,
            _ => &self.counts.info,
        };
        if !matches!(event.process, Who::Nemesis(_)) {
            counter.fetch_add(1, Ordering::Relaxed);
        }
        let mut inner = self.inner.lock().expect("never held across a panic");
        let stamped = Stamped {
            index: inner.index,
            time: self.start.elapsed().as_nanos() as u64,
            event,
        };
        serde_json::to_writer(&mut inner.out, &stamped).map_err(io::Error::other)?;
        inner.out.write_all(b"\n")?;
        inner.index += 1;
        if inner.last_flush.elapsed() >= FLUSH_EVERY {
            inner.out.flush()?;
            inner.last_flush = Instant::now();
        }
        Ok(())
    }

    /// Writes out everything buffered.
    pub fn flush(&self) -> io::Result<()> {
        let mut inner = self.inner.lock().expect("never held across a panic");
        inner.last_flush = Instant::now();
        inner.out.flush()
    }
}
