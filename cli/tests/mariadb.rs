//! Real MariaDB, started by faultline (`local:mariadb`): serializable holds, repeatable read
//! does not (InnoDB's repeatable read does not prevent lost updates), and nothing is left
//! behind. Needs MariaDB's server (Debian: mariadb-server); without it these tests say why and
//! pass, except under `CI=true`, where a missing server is a failure.

mod common;

use common::reachable_tempdir;
use serde_json::Value;

fn mariadb_present() -> bool {
    common::server_present("MariaDB", faultline_targets::mariadb::find_binaries())
}

/// `faultline run --target local:mariadb ARGS`, its temporary files under `tmp`.
fn run(tmp: &std::path::Path, args: &[&str]) -> (Option<i32>, Value) {
    common::run_target("local:mariadb", tmp, args)
}

#[test]
fn serializable_holds_and_repeatable_read_does_not() {
    if !mariadb_present() {
        return;
    }
    let tmp = reachable_tempdir();
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
    let found = common::anomalies(txn);
    assert!(
        found
            .iter()
            .any(|a| ["lost-update", "G-single", "G2-item"].contains(a)),
        "{found:?}"
    );
    let left: Vec<_> = std::fs::read_dir(tmp.path()).unwrap().flatten().collect();
    assert!(left.is_empty(), "left behind: {left:?}");
}
