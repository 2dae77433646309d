//! Real MariaDB, started by faultline (`local:mariadb`): serializable holds, repeatable read
//! does not (InnoDB's repeatable read does not prevent lost updates), and nothing is left
//! behind. Needs MariaDB's server (Debian: mariadb-server); without it these tests say why and
//! pass, except under `CI=true`, where a missing server is a failure.

use std::os::unix::fs::PermissionsExt;
use std::process::Command;

use serde_json::Value;

fn mariadb_present() -> bool {
    match faultline_targets::mariadb::find_binaries() {
        Ok(_) => true,
        Err(e) if std::env::var("CI").as_deref() == Ok("true") => {
            panic!("CI=true but MariaDB is missing: {e}")
        }
        Err(e) => {
            eprintln!("skipping: {e}");
            false
        }
    }
}

/// `faultline run --target local:mariadb ARGS`, its temporary files under `tmp`.
fn run(tmp: &std::path::Path, args: &[&str]) -> (Option<i32>, Value) {
    let out = tempfile::tempdir().unwrap();
    let output = Command::new(env!("CARGO_BIN_EXE_faultline"))
        .args([
            "run",
            "--target",
            "local:mariadb",
            "--format",
            "json",
            "--out",
        ])
        .arg(out.path())
        .args(args)
        .env("TMPDIR", tmp)
        .output()
        .unwrap();
    let verdict = serde_json::from_slice(&output.stdout)
        .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&output.stderr)));
    (output.status.code(), verdict)
}

#[test]
fn serializable_holds_and_repeatable_read_does_not() {
    if !mariadb_present() {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    std::fs::set_permissions(tmp.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let args = |level: &'static str| {
        [
            "--workload",
            "list-append",
            "--set",
            level,
            "--time-limit",
            "8s",
            "--seed",
            "1",
        ]
    };
    let (code, verdict) = run(tmp.path(), &args("isolation=serializable"));
    let txn = &verdict["checkers"][0];
    assert_eq!(txn["valid"], "PASS", "{txn}");
    assert_eq!(code, Some(0));
    let (code, verdict) = run(tmp.path(), &args("isolation=repeatable-read"));
    let txn = &verdict["checkers"][0];
    assert_eq!(code, Some(1), "{txn}");
    let found: Vec<&str> = txn["details"]["counts"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|c| c[0].as_str())
        .collect();
    assert!(
        found
            .iter()
            .any(|a| ["lost-update", "G-single", "G2-item"].contains(a)),
        "{found:?}"
    );
    let left: Vec<_> = std::fs::read_dir(tmp.path()).unwrap().flatten().collect();
    assert!(left.is_empty(), "left behind: {left:?}");
}
