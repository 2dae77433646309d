//! Durable storage for a node: an append-only log of JSON records, synced to disk before the
//! node acts on anything that depends on them.
//!
//! On open, the log is read back; a torn last line (the process died mid-write) is cut off,
//! so a node killed with SIGKILL restarts with every record it synced.

use std::fs::{File, OpenOptions};
use std::io::{self, Seek, Write};
use std::path::{Path, PathBuf};

use serde::Serialize;
use serde::de::DeserializeOwned;

/// An append-only record log.
#[derive(Debug)]
pub struct Storage {
    file: File,
    path: PathBuf,
}

impl Storage {
    /// Opens (or creates) the log at `path` and returns it with the records it holds.
    pub fn open<R: DeserializeOwned>(path: &Path) -> io::Result<(Storage, Vec<R>)> {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)?;
        }
        let mut records = Vec::new();
        let mut good_len: u64 = 0;
        if path.exists() {
            let bytes = std::fs::read(path)?;
            // Every record is written with its newline; bytes after the last newline are a
            // record the process died writing.
            let complete = bytes.iter().rposition(|&b| b == b'\n').map_or(0, |i| i + 1);
            for (i, line) in bytes[..complete].split(|&b| b == b'\n').enumerate() {
                if line.is_empty() {
                    continue;
                }
                let record = serde_json::from_slice::<R>(line).map_err(|e| {
                    io::Error::new(
                        io::ErrorKind::InvalidData,
                        format!("{}:{}: not a record: {e}", path.display(), i + 1),
                    )
                })?;
                records.push(record);
            }
            good_len = complete as u64;
        }
        let file = OpenOptions::new()
            .create(true)
            .read(true)
            .write(true)
            .truncate(false)
            .open(path)?;
        file.set_len(good_len)?;
        let mut storage = Storage {
            file,
            path: path.to_path_buf(),
        };
        storage.file.seek(io::SeekFrom::End(0))?;
        Ok((storage, records))
    }

    /// Appends a record and syncs it to disk; returns the line written (its JSON).
    pub fn append<R: Serialize>(&mut self, record: &R) -> io::Result<Vec<u8>> {
        let mut line = serde_json::to_vec(record).map_err(io::Error::other)?;
        line.push(b'\n');
        self.file.write_all(&line)?;
        self.file.sync_data()?;
        Ok(line)
    }

    /// Where the log lives.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

/// The file, in a node's data directory, where the runtime appends the node's notes
/// ([`crate::systems::Output::Note`]), one JSON object per line.
pub const NOTES_FILE: &str = "notes.jsonl";

/// The node's notes file: appended and flushed after every batch of outputs, never synced (the
/// notes are evidence for the harness, not state the node recovers).
#[derive(Debug)]
pub struct Notes {
    file: Option<io::BufWriter<File>>,
    path: PathBuf,
}

impl Notes {
    /// Opens (or creates) the notes file in `dir` for appending.
    pub fn open(dir: &Path) -> io::Result<Notes> {
        std::fs::create_dir_all(dir)?;
        let path = dir.join(NOTES_FILE);
        let file = OpenOptions::new().create(true).append(true).open(&path)?;
        Ok(Notes {
            file: Some(io::BufWriter::new(file)),
            path,
        })
    }

    /// Appends `note` as one line.
    pub fn write(&mut self, note: &serde_json::Value) {
        let Some(file) = self.file.as_mut() else {
            return;
        };
        let mut line = note.to_string();
        line.push('\n');
        if let Err(e) = file.write_all(line.as_bytes()) {
            self.give_up(&e);
        }
    }

    /// Hands what was written to the operating system, so that it survives a SIGKILL.
    pub fn flush(&mut self) {
        if let Some(Err(e)) = self.file.as_mut().map(|f| f.flush()) {
            self.give_up(&e);
        }
    }

    fn give_up(&mut self, e: &io::Error) {
        eprintln!(
            "cannot write {}: {e}; no more notes (the harness's invariant checks will say so)",
            self.path.display()
        );
        self.file = None;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_torn_last_line_is_cut_and_the_rest_kept() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("log.jsonl");
        {
            let (mut s, records) = Storage::open::<u32>(&path).unwrap();
            assert!(records.is_empty());
            s.append(&1u32).unwrap();
            s.append(&2u32).unwrap();
        }
        let mut f = OpenOptions::new().append(true).open(&path).unwrap();
        f.write_all(b"12").unwrap(); // a write cut short: no newline
        drop(f);
        let (mut s, records) = Storage::open::<u32>(&path).unwrap();
        assert_eq!(records, vec![1, 2]);
        s.append(&3u32).unwrap();
        let (_, records) = Storage::open::<u32>(&path).unwrap();
        assert_eq!(records, vec![1, 2, 3]);
    }

    #[test]
    fn a_corrupt_middle_line_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("log.jsonl");
        std::fs::write(&path, "1\nxx\n3\n").unwrap();
        let err = Storage::open::<u32>(&path).unwrap_err();
        assert!(err.to_string().contains("log.jsonl:2"), "{err}");
    }

    #[test]
    fn notes_are_appended_across_restarts_one_json_object_per_line() {
        let dir = tempfile::tempdir().unwrap();
        let mut notes = Notes::open(dir.path()).unwrap();
        notes.write(&serde_json::json!({"led": 1}));
        notes.flush();
        drop(notes);
        let mut notes = Notes::open(dir.path()).unwrap();
        notes.write(&serde_json::json!({"led": 2}));
        notes.flush();
        let text = std::fs::read_to_string(dir.path().join(NOTES_FILE)).unwrap();
        assert_eq!(text, "{\"led\":1}\n{\"led\":2}\n");
    }
}
