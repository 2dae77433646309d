//! Helpers shared by the integration tests that start real clusters.

use std::path::Path;

use faultline_targets::cluster::{Cluster, ClusterSpec};
use serde_json::Value;

/// Starts a quorum cluster of `nodes` with `settings`, using this build's `faultline` binary.
#[allow(dead_code)] // each test binary uses its own part of this module
pub(crate) async fn start_cluster(nodes: u32, settings: &str) -> Cluster {
    Cluster::start(ClusterSpec {
        system: "quorum".into(),
        nodes,
        settings: vec![settings.into()],
        data_dir: None,
        exe: env!("CARGO_BIN_EXE_faultline").into(),
        seed: 1,
    })
    .await
    .expect("the cluster starts")
}

/// The nemesis events of a history: (fault kind, what was done), times left out.
#[allow(dead_code)] // each test binary uses its own part of this module
pub(crate) fn nemesis_events(history: &Path) -> Vec<(String, Value)> {
    std::fs::read_to_string(history)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).unwrap())
        .filter(|e| e["process"] == "nemesis")
        .map(|e| (e["f"].as_str().unwrap().to_string(), e["value"].clone()))
        .collect()
}

/// Whether a server the tests need was found: `found` is the lookup's result. A missing server
/// is a notice and a skip on a developer's machine, and a failure under `CI=true`.
#[allow(dead_code)] // each test binary uses its own part of this module
pub(crate) fn server_present<T>(name: &str, found: Result<T, String>) -> bool {
    match found {
        Ok(_) => true,
        Err(e) if std::env::var("CI").as_deref() == Ok("true") => {
            panic!("CI=true but {name} is missing: {e}")
        }
        Err(e) => {
            eprintln!("skipping: {e}");
            false
        }
    }
}

/// `faultline run --target TARGET ARGS --format json`, its temporary files under `tmp`: the
/// exit code and the verdict.
#[allow(dead_code)] // each test binary uses its own part of this module
pub(crate) fn run_target(target: &str, tmp: &Path, args: &[&str]) -> (Option<i32>, Value) {
    let out = tempfile::tempdir().unwrap();
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_faultline"))
        .args(["run", "--target", target, "--format", "json", "--out"])
        .arg(out.path())
        .args(args)
        .env("TMPDIR", tmp)
        .output()
        .unwrap();
    let verdict = serde_json::from_slice(&output.stdout)
        .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&output.stderr)));
    (output.status.code(), verdict)
}

/// The anomaly classes a transactional verdict found.
#[allow(dead_code)] // each test binary uses its own part of this module
pub(crate) fn anomalies(txn: &Value) -> Vec<&str> {
    txn["details"]["counts"]
        .as_array()
        .expect("a transactional verdict counts what it found")
        .iter()
        .filter_map(|c| c[0].as_str())
        .collect()
}

/// A temporary directory a server's unprivileged account can enter (databases run as their
/// own account when the tests run as root).
#[allow(dead_code)] // each test binary uses its own part of this module
pub(crate) fn reachable_tempdir() -> tempfile::TempDir {
    use std::os::unix::fs::PermissionsExt;
    let tmp = tempfile::tempdir().unwrap();
    std::fs::set_permissions(tmp.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    tmp
}

/// Whether python3 runs (a failure under `CI=true`).
#[allow(dead_code)] // each test binary uses its own part of this module
pub(crate) fn python_present() -> bool {
    let found = std::process::Command::new("python3")
        .arg("--version")
        .output()
        .map_err(|e| format!("python3: {e}"))
        .and_then(|o| {
            if o.status.success() {
                Ok(())
            } else {
                Err("python3 --version failed".into())
            }
        });
    server_present("python3", found)
}

/// The command lines of the running processes that name `text` (a path, usually).
#[allow(dead_code)] // each test binary uses its own part of this module
pub(crate) fn processes_naming(text: &str) -> Vec<String> {
    std::fs::read_dir("/proc")
        .unwrap()
        .flatten()
        .filter_map(|e| std::fs::read(e.path().join("cmdline")).ok())
        .map(|c| String::from_utf8_lossy(&c).replace('\0', " "))
        .filter(|c| c.contains(text))
        .collect()
}
