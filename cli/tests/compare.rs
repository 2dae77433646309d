//! `faultline compare` end to end: rows, run directories, and the JSON and Markdown that must
//! say the same thing.

mod common;

use std::path::Path;

use common::nemesis_events;
use std::process::Command;

use serde_json::Value;

#[test]
fn two_settings_give_two_rows_and_agreeing_json_and_markdown() {
    let out = tempfile::tempdir().unwrap();
    let output = Command::new(env!("CARGO_BIN_EXE_faultline"))
        .args([
            "compare",
            "--workload",
            "register",
            "--nodes",
            "3",
            "--time-limit",
            "2s",
        ])
        .args([
            "--rate",
            "100",
            "--seed",
            "11",
            "--nemesis",
            "partition,clock",
        ])
        .args(["--nemesis-interval", "200ms"])
        .args([
            "--target",
            "bundled:quorum?n=3",
            "--set",
            "r=1,w=1",
            "--set",
            "r=1,w=1",
            "--out",
        ])
        .arg(out.path())
        .output()
        .unwrap();
    assert_eq!(
        output.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let dir = std::fs::canonicalize(out.path().join("latest")).unwrap();
    let doc: Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("compare.json")).unwrap()).unwrap();
    let rows = doc["table"]["rows"].as_array().unwrap();
    assert_eq!(rows.len(), 2);
    assert_eq!(rows[0][0], "bundled:quorum?n=3,r=1,w=1");
    // The Markdown is the same table.
    let markdown = std::fs::read_to_string(dir.join("compare.md")).unwrap();
    let lines: Vec<&str> = markdown.lines().collect();
    assert_eq!(lines.len(), 4, "header, rule and two rows:\n{markdown}");
    for (line, row) in lines[2..].iter().zip(rows) {
        let cells: Vec<&str> = line.trim_matches('|').split('|').map(str::trim).collect();
        let json_cells: Vec<&str> = row
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c.as_str().unwrap())
            .collect();
        assert_eq!(cells, json_cells);
    }
    // Each cell has its run directory; equal settings and seeds got the same faults.
    let run_dirs: Vec<_> = doc["rows"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["dirs"][0].as_str().unwrap().to_string())
        .collect();
    let a = nemesis_events(&Path::new(&run_dirs[0]).join("history.jsonl"));
    let b = nemesis_events(&Path::new(&run_dirs[1]).join("history.jsonl"));
    let common = a.len().min(b.len()) - 1;
    assert!(common >= 2, "{a:?}");
    assert_eq!(a[..common], b[..common]);
    assert!(
        std::fs::read_to_string(dir.join("junit.xml"))
            .unwrap()
            .contains("seed 11")
    );
}

#[test]
fn an_invalid_setting_stops_the_whole_comparison_before_anything_runs() {
    let out = tempfile::tempdir().unwrap();
    let output = Command::new(env!("CARGO_BIN_EXE_faultline"))
        .args(["compare", "--set", "w=1", "--set", "w=9", "--out"])
        .arg(out.path())
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("w=9 must be between 1 and n=3"), "{stderr}");
    assert_eq!(
        std::fs::read_dir(out.path()).unwrap().count(),
        0,
        "nothing ran"
    );
}
