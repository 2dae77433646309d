//! Porcupine's 109 test histories (../shared/histories/porcupine): every verdict must equal
//! the one in MANIFEST.tsv. Jepsen logs are checked with the cas-register model, kv files with
//! the kv model, both from an initial null.
//!
//! The histories live beside the workspace, not in it. Where they are absent (a user's clone)
//! the test prints a notice and passes; when `CI=true` their absence is a failure.

mod common;

use faultline_checker::{ModelKind, Options, Validity, format, linearizability};

#[test]
fn every_porcupine_verdict_matches_the_manifest() {
    let Some(dir) = common::shared_histories("porcupine", "MANIFEST.tsv") else {
        return;
    };
    let manifest = std::fs::read_to_string(dir.join("MANIFEST.tsv")).unwrap();
    let mut checked = 0;
    let mut wrong = Vec::new();
    for row in manifest.lines().skip(1) {
        let cols: Vec<&str> = row.split('\t').collect();
        let (file, model, operations, expected) = (cols[0], cols[2], cols[3], cols[4]);
        let read =
            format::read_path(&dir.join(file), None).unwrap_or_else(|e| panic!("{file}: {e}"));
        assert!(
            read.history.warnings.is_empty(),
            "{file}: {:?}",
            read.history.warnings
        );
        assert_eq!(
            read.history.ops.len(),
            operations.parse::<usize>().unwrap(),
            "{file}: operation count"
        );
        let options = Options {
            model: Some(model.parse::<ModelKind>().unwrap()),
            ..Options::default()
        };
        let report = linearizability::check(&read.history, &options).unwrap();
        let want = match expected {
            "linearizable" => Validity::Pass,
            "not-linearizable" => Validity::Fail,
            other => panic!("{file}: unknown expectation {other}"),
        };
        if report.validity != want {
            wrong.push(format!(
                "{file}: {:?}, expected {expected}",
                report.validity
            ));
        }
        if report.validity == Validity::Fail {
            let f = &report.failures[0];
            assert!(
                !f.states_before.is_empty(),
                "{file}: no states before the failure"
            );
        }
        checked += 1;
    }
    assert_eq!(checked, 109);
    assert!(
        wrong.is_empty(),
        "{} wrong verdicts:\n{}",
        wrong.len(),
        wrong.join("\n")
    );
}
