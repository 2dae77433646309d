//! What a dead faultline left behind: temporary data directories named after their owner's
//! pid, found and removed at the next start.
//!
//! A faultline killed with SIGKILL cannot clean up; its nodes die with it (they are told to
//! on their parent's death) but their data stays. Every temporary directory this crate makes
//! is named `<prefix><pid>-<random>`, so a later start can tell whose it was and remove the
//! ones whose process is gone.

use std::io;
use std::path::{Path, PathBuf};

/// Whether the process `pid` is gone (and is not this one).
pub(crate) fn is_dead(pid: u32) -> bool {
    pid != std::process::id() && !Path::new(&format!("/proc/{pid}")).exists()
}

/// A fresh temporary directory `<prefix><pid>-…` under `root`, removed when the guard drops;
/// first removes the ones with the same prefix whose owner is gone.
pub(crate) fn temp_dir(root: &Path, prefix: &str) -> io::Result<tempfile::TempDir> {
    clean_temp_dirs(root, prefix);
    tempfile::Builder::new()
        .prefix(&format!("{prefix}{}-", std::process::id()))
        .tempdir_in(root)
}

/// Removes every `<prefix><pid>-…` directory under `root` whose process is gone; returns what
/// it removed.
pub(crate) fn clean_temp_dirs(root: &Path, prefix: &str) -> Vec<PathBuf> {
    let Ok(entries) = std::fs::read_dir(root) else {
        return Vec::new();
    };
    let mut removed = Vec::new();
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(owner) = name
            .to_str()
            .and_then(|n| n.strip_prefix(prefix))
            .and_then(|rest| rest.split_once('-'))
            .and_then(|(pid, _)| pid.parse::<u32>().ok())
        else {
            continue;
        };
        let path = entry.path();
        if is_dead(owner) && path.is_dir() && std::fs::remove_dir_all(&path).is_ok() {
            removed.push(path);
        }
    }
    removed
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_dead_owners_directory_is_removed_and_a_live_ones_kept() {
        let root = tempfile::tempdir().unwrap();
        // A pid above the kernel's maximum (4194304) belongs to no process.
        let dead = root.path().join("faultline-cluster-9999999-abc");
        let live = root
            .path()
            .join(format!("faultline-cluster-{}-def", std::process::id()));
        let other = root.path().join("faultline-etcd-9999999-abc");
        for dir in [&dead, &live, &other] {
            std::fs::create_dir_all(dir.join("n1")).unwrap();
        }
        let fresh = temp_dir(root.path(), "faultline-cluster-").unwrap();
        assert!(!dead.exists(), "the dead run's directory is removed");
        assert!(live.exists(), "a running faultline's directory is kept");
        assert!(other.exists(), "another prefix is not touched");
        let name = fresh
            .path()
            .file_name()
            .unwrap()
            .to_str()
            .unwrap()
            .to_string();
        assert!(name.starts_with(&format!("faultline-cluster-{}-", std::process::id())));
    }
}
