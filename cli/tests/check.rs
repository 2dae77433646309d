//! `faultline check` as a user runs it: rows, explanations, JSON, warnings and exit codes.

use std::path::PathBuf;

use assert_cmd::Command;
use predicates::prelude::*;
use tempfile::TempDir;

fn faultline() -> Command {
    Command::cargo_bin("faultline").expect("the binary is built")
}

/// A temporary directory with the given files in it.
fn files(contents: &[(&str, &str)]) -> TempDir {
    let dir = tempfile::tempdir().expect("a temp dir");
    for (name, text) in contents {
        std::fs::write(dir.path().join(name), text).expect("writable");
    }
    dir
}

const PASSING: &str = r#"{"process":0,"type":"invoke","f":"write","value":1}
{"process":0,"type":"ok","f":"write","value":1}
{"process":1,"type":"invoke","f":"read","value":null}
{"process":1,"type":"ok","f":"read","value":1}
"#;

const FAILING: &str = r#"{"process":0,"type":"invoke","f":"write","value":1}
{"process":0,"type":"ok","f":"write","value":1}
{"process":1,"type":"invoke","f":"read","value":null}
{"process":1,"type":"ok","f":"read","value":2}
"#;

fn shared_porcupine() -> Option<PathBuf> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../shared/histories/porcupine");
    if dir.join("MANIFEST.tsv").is_file() {
        return Some(dir);
    }
    assert!(
        std::env::var("CI").as_deref() != Ok("true"),
        "CI=true but {} is missing",
        dir.display()
    );
    eprintln!("notice: skipping: {} not found", dir.display());
    None
}

#[test]
fn pass_is_exit_0_and_a_row() {
    let dir = files(&[("ok.jsonl", PASSING)]);
    faultline()
        .current_dir(dir.path())
        .args(["check", "ok.jsonl"])
        .assert()
        .code(0)
        .stdout(predicate::str::contains("ok.jsonl"))
        .stdout(predicate::str::contains("PASS"))
        .stdout(predicate::str::contains(
            "1 PASS, 0 FAIL, 0 UNKNOWN, 0 ERROR",
        ));
}

#[test]
fn fail_is_exit_1_with_an_explanation() {
    let dir = files(&[("bad.jsonl", FAILING), ("ok.jsonl", PASSING)]);
    faultline()
        .current_dir(dir.path())
        .args(["check", "ok.jsonl", "bad.jsonl"])
        .assert()
        .code(1)
        .stdout(predicate::str::contains("1 PASS, 1 FAIL"))
        .stdout(predicate::str::contains("FAIL bad.jsonl"))
        .stdout(predicate::str::contains("p1 read → 2  (line 3"))
        .stdout(predicate::str::contains(
            "states the model could be in just before it: 1",
        ));
}

#[test]
fn unknown_is_exit_3() {
    let mut text = String::new();
    for i in 0..30 {
        text.push_str(&format!(
            "{{\"process\":{i},\"type\":\"invoke\",\"f\":\"write\",\"value\":{i}}}\n"
        ));
    }
    text.push_str("{\"process\":99,\"type\":\"invoke\",\"f\":\"read\",\"value\":null}\n");
    text.push_str("{\"process\":99,\"type\":\"ok\",\"f\":\"read\",\"value\":-1}\n");
    // A cas keeps it from the zones (read/write registers only): only a search decides it.
    text.push_str("{\"process\":98,\"type\":\"invoke\",\"f\":\"cas\",\"value\":[-2,-3]}\n");
    text.push_str(
        "{\"process\":98,\"type\":\"fail\",\"f\":\"cas\",\"value\":[-2,-3],\"error\":\"mismatch\"}\n",
    );
    // Acknowledged, so no reduction removes them: every subset of them must be tried.
    for i in 0..30 {
        text.push_str(&format!(
            "{{\"process\":{i},\"type\":\"ok\",\"f\":\"write\",\"value\":{i}}}\n"
        ));
    }
    let dir = files(&[("slow.jsonl", &text)]);
    faultline()
        .current_dir(dir.path())
        .args(["check", "slow.jsonl", "--timeout", "100ms"])
        .assert()
        .code(3)
        .stdout(predicate::str::contains("UNKNOWN"))
        .stdout(predicate::str::contains("timed out after 100ms"));
}

#[test]
fn unreadable_input_is_exit_4_naming_file_and_line() {
    let dir = files(&[
        (
            "broken.jsonl",
            "{\"process\":0,\"type\":\"invoke\",\"f\":\"read\"}\nnot json\n",
        ),
        ("ok.jsonl", PASSING),
    ]);
    faultline()
        .current_dir(dir.path())
        .args(["check", "broken.jsonl", "ok.jsonl", "missing.jsonl"])
        .assert()
        .code(4)
        .stdout(predicate::str::contains(
            "ERROR broken.jsonl:2: expected an event object",
        ))
        .stdout(predicate::str::contains(
            "ERROR missing.jsonl: cannot read the file",
        ))
        .stdout(predicate::str::contains(
            "1 PASS, 0 FAIL, 0 UNKNOWN, 2 ERROR",
        ));
}

#[test]
fn an_operation_the_model_lacks_is_exit_4() {
    let dir = files(&[(
        "cas.jsonl",
        "{\"process\":0,\"type\":\"invoke\",\"f\":\"cas\",\"value\":[1,2]}\n",
    )]);
    faultline()
        .current_dir(dir.path())
        .args(["check", "cas.jsonl", "--model", "register"])
        .assert()
        .code(4)
        .stdout(predicate::str::contains(
            "cas.jsonl:line 1: the register model has no operation `cas`",
        ));
}

#[test]
fn a_truncated_last_line_warns_and_checks_the_prefix() {
    let text = format!("{PASSING}{{\"process\":2,\"type\":\"inv");
    let dir = files(&[("crashed.jsonl", &text)]);
    faultline()
        .current_dir(dir.path())
        .args(["check", "crashed.jsonl"])
        .assert()
        .code(0)
        .stderr(predicate::str::contains(
            "warning: crashed.jsonl: line 5: the last line is truncated",
        ));
}

#[test]
fn json_output_is_one_document() {
    let dir = files(&[("bad.jsonl", FAILING), ("empty.log", "")]);
    let output = faultline()
        .current_dir(dir.path())
        .args(["check", "bad.jsonl", "empty.log", "--format", "json"])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(1));
    let doc: serde_json::Value = serde_json::from_slice(&output.stdout).expect("one JSON document");
    assert_eq!(doc["verdict"], "FAIL");
    assert_eq!(doc["files"][0]["verdict"], "FAIL");
    assert_eq!(doc["files"][0]["format"], "jsonl");
    let failure = &doc["files"][0]["verdicts"][0]["details"]["failures"][0];
    assert_eq!(failure["op"]["line"], 3);
    assert_eq!(failure["prefix"][0]["state"], "1");
    assert_eq!(doc["files"][1]["verdict"], "PASS");
    assert_eq!(doc["files"][1]["operations"], 0);
}

#[test]
fn input_format_overrides_detection() {
    let dir = files(&[("h.txt", PASSING)]);
    faultline()
        .current_dir(dir.path())
        .args(["check", "h.txt", "--input-format", "edn"])
        .assert()
        .code(4)
        .stdout(predicate::str::contains("h.txt:1:"));
}

#[test]
fn semantics_knossos_is_more_lenient() {
    let nil_read = PASSING.replace(
        "\"ok\",\"f\":\"read\",\"value\":1",
        "\"ok\",\"f\":\"read\",\"value\":null",
    );
    let dir = files(&[("nil.jsonl", &nil_read)]);
    faultline()
        .current_dir(dir.path())
        .args(["check", "nil.jsonl"])
        .assert()
        .code(1);
    faultline()
        .current_dir(dir.path())
        .args(["check", "nil.jsonl", "--semantics", "knossos"])
        .assert()
        .code(0);
}

#[test]
fn help_teaches_the_semantics_and_exit_codes() {
    faultline()
        .args(["check", "--help"])
        .assert()
        .code(0)
        .stdout(predicate::str::contains(
            "strict finds bugs that knossos hides",
        ))
        .stdout(predicate::str::contains("Exit codes"));
}

#[test]
fn jepsen_logs_match_the_manifest() {
    let Some(dir) = shared_porcupine() else {
        return;
    };
    let manifest = std::fs::read_to_string(dir.join("MANIFEST.tsv")).unwrap();
    let rows: Vec<(String, &str)> = manifest
        .lines()
        .skip(1)
        .map(|row| row.split('\t').collect::<Vec<_>>())
        .filter(|cols| cols[1] == "jepsen-log")
        .map(|cols| (cols[0].to_string(), cols[4]))
        .collect();
    assert_eq!(rows.len(), 103);
    let files: Vec<String> = rows.iter().map(|(f, _)| f.clone()).collect();
    let output = faultline()
        .current_dir(&dir)
        .arg("check")
        .args(&files)
        .args(["--model", "cas-register"])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(1));
    let stdout = String::from_utf8(output.stdout).unwrap();
    assert!(
        stdout.contains("24 PASS, 79 FAIL, 0 UNKNOWN, 0 ERROR"),
        "{stdout}"
    );
    for (file, expected) in rows {
        let row = stdout
            .lines()
            .find(|l| l.contains(&format!(" {file} ")))
            .unwrap_or_else(|| panic!("no row for {file}"));
        let want = if expected == "linearizable" {
            "PASS"
        } else {
            "FAIL"
        };
        assert!(row.contains(want), "{file}: {row}");
    }
}

/// A history of transactions is judged for isolation anomalies: the anomaly, the models it
/// rules out and each cycle edge in words, in the table and as JSON. See: issue 16.
#[test]
fn a_transactional_history_is_judged_for_isolation_anomalies() {
    let file = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../examples/histories/txn-read-skew.jsonl"
    );
    let output = Command::cargo_bin("faultline")
        .unwrap()
        .args(["check", file])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert_eq!(output.status.code(), Some(1), "{stdout}");
    assert!(stdout.contains("list-append"), "{stdout}");
    assert!(
        stdout.contains("G-single: a cycle of 2 transactions"),
        "{stdout}"
    );
    assert!(stdout.contains("not: strict-serializable"), "{stdout}");
    assert!(stdout.contains("T2 did not see T0 (rw)"), "{stdout}");
    // Read committed allows read skew.
    let rc = Command::cargo_bin("faultline")
        .unwrap()
        .args(["check", file, "--consistency", "read-committed"])
        .output()
        .unwrap();
    assert_eq!(rc.status.code(), Some(0));
    let json = Command::cargo_bin("faultline")
        .unwrap()
        .args(["check", file, "--format", "json"])
        .output()
        .unwrap();
    let doc: serde_json::Value = serde_json::from_slice(&json.stdout).unwrap();
    let details = &doc["files"][0]["verdicts"][0]["details"];
    assert_eq!(details["kind"], "list-append");
    assert_eq!(details["anomalies"][0]["name"], "G-single");
    assert_eq!(details["anomalies"][0]["cycle"][0]["rel"], "rw");
    assert!(
        details["not"]
            .as_array()
            .unwrap()
            .contains(&serde_json::json!("snapshot-isolation"))
    );
    // A model name that is neither causal nor transactional is a usage error.
    let bad = Command::cargo_bin("faultline")
        .unwrap()
        .args(["check", file, "--consistency", "snapshot"])
        .output()
        .unwrap();
    assert_eq!(bad.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&bad.stderr).contains("snapshot-isolation"));
}
