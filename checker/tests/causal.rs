//! The causal checkers against the specification examples of ../shared/histories/causal
//! (EXPECTED.tsv gives each file's CC, CM and CCv verdicts and the patterns that witness a
//! FAIL), against simulated stores, and against bad patterns built by hand.

mod common;

use faultline_checker::causal::{Consistency, check};
use faultline_checker::history::{Event, EventKind, Process};
use faultline_checker::{History, Validity, format, history};
use proptest::prelude::*;
use serde_json::{Value, json};

fn verdict_of(history: &History, name: &str) -> (Validity, Vec<String>) {
    let v = check(history, Consistency::All)
        .into_iter()
        .find(|v| v.checker == name)
        .unwrap();
    let patterns = v.details["violations"]
        .as_array()
        .map(|vs| {
            vs.iter()
                .map(|x| x["pattern"].as_str().unwrap().to_string())
                .collect()
        })
        .unwrap_or_default();
    (v.valid, patterns)
}

#[test]
fn every_example_gets_its_expected_verdicts() {
    let Some(dir) = common::shared_histories("causal", "EXPECTED.tsv") else {
        return;
    };
    let expected = std::fs::read_to_string(dir.join("EXPECTED.tsv")).unwrap();
    let mut checked = 0;
    for row in expected.lines().skip(1) {
        let cols: Vec<&str> = row.split('\t').collect();
        let history = format::read_path(&dir.join(cols[0]), None).unwrap().history;
        let listed: Vec<&str> = cols[4].split(',').collect();
        for (name, want) in [
            ("causal", cols[1]),
            ("causal-memory", cols[2]),
            ("causal-convergence", cols[3]),
        ] {
            let (valid, patterns) = verdict_of(&history, name);
            assert_eq!(valid.as_str(), want, "{} {name}: {patterns:?}", cols[0]);
            if valid == Validity::Fail {
                assert!(
                    patterns.iter().any(|p| listed.contains(&p.as_str())),
                    "{} {name}: found {patterns:?}, expected one of {listed:?}",
                    cols[0]
                );
            }
        }
        checked += 1;
    }
    assert_eq!(checked, 9);
}

/// A history from sessions of (process, f, key, value) in the order given (each op completes
/// before the next starts).
fn history(ops: &[(u64, &str, &str, Value)]) -> History {
    let mut events = Vec::new();
    for (i, (p, f, k, v)) in ops.iter().enumerate() {
        let event = |kind, value: Value, t| Event {
            time: t,
            process: Process::Client(*p),
            kind,
            f: f.to_string(),
            key: Some(k.to_string()),
            value,
            error: None,
            mismatch: false,
            line: 2 * i + 1,
        };
        let input = if *f == "write" {
            v.clone()
        } else {
            Value::Null
        };
        events.push(event(EventKind::Invoke, input, 2 * i as u64));
        events.push(event(EventKind::Ok, v.clone(), 2 * i as u64 + 1));
    }
    history::pair(events).unwrap()
}

#[test]
fn hand_built_bad_patterns() {
    // ThinAirRead
    let h = history(&[(0, "read", "x", json!(9))]);
    assert_eq!(verdict_of(&h, "causal").1, ["ThinAirRead"]);
    // CyclicCO: each session reads the other's later write.
    let h = history(&[
        (0, "read", "x", json!(2)),
        (1, "read", "y", json!(1)),
        (0, "write", "y", json!(1)),
        (1, "write", "x", json!(2)),
    ]);
    assert_eq!(verdict_of(&h, "causal").1, ["CyclicCO"]);
    // WriteCORead: p1 reads 2, then reads the older 1.
    let h = history(&[
        (0, "write", "x", json!(1)),
        (0, "write", "x", json!(2)),
        (1, "read", "x", json!(2)),
        (1, "read", "x", json!(1)),
    ]);
    assert_eq!(verdict_of(&h, "causal").1, ["WriteCORead"]);
    // Not differentiated: UNKNOWN naming the value.
    let h = history(&[(0, "write", "x", json!(1)), (1, "write", "x", json!(1))]);
    let v = check(&h, Consistency::Causal);
    assert_eq!(v[0].valid, Validity::Unknown);
    assert!(
        v[0].summary.contains("written to key \"x\" twice"),
        "{}",
        v[0].summary
    );
}

#[test]
fn session_guarantees_one_by_one() {
    // Read-your-writes broken: a session reads the initial value after writing.
    let h = history(&[(0, "write", "x", json!(1)), (0, "read", "x", Value::Null)]);
    assert_eq!(verdict_of(&h, "read-your-writes").0, Validity::Fail);
    assert_eq!(verdict_of(&h, "monotonic-reads").0, Validity::Pass);
    // Monotonic reads broken: reads 2 then the older 1 of another session's writes... and a
    // third write arbitration makes it cyclic.
    let h = history(&[
        (0, "write", "x", json!(1)),
        (1, "write", "x", json!(2)),
        (2, "read", "x", json!(1)),
        (2, "read", "x", json!(2)),
        (2, "read", "x", json!(1)),
    ]);
    assert_eq!(verdict_of(&h, "monotonic-reads").0, Validity::Fail);
    assert_eq!(verdict_of(&h, "read-your-writes").0, Validity::Pass);
    // Monotonic writes: p0 writes 1 then 2; p1 sees 2, then (MR) must not go back to 1.
    let h = history(&[
        (0, "write", "x", json!(1)),
        (0, "write", "x", json!(2)),
        (1, "read", "x", json!(2)),
        (1, "read", "x", json!(1)),
    ]);
    assert_eq!(verdict_of(&h, "pram").0, Validity::Fail);
    // Writes-follow-reads: each session writes after reading the other's write, so each write
    // would have to be arbitrated before the other.
    let h = history(&[
        (0, "read", "x", json!(2)),
        (1, "read", "y", json!(1)),
        (0, "write", "y", json!(1)),
        (1, "write", "x", json!(2)),
    ]);
    assert_eq!(verdict_of(&h, "writes-follow-reads").0, Validity::Fail);
    assert_eq!(verdict_of(&h, "monotonic-writes").0, Validity::Pass);
}

/// Sessions over a simulated store: each op applies to one global register per key in the
/// order generated (sequentially consistent), or, with `stale`, reads come from a random
/// earlier version.
fn simulated(ops: &[(u8, bool, u8, u8)], stale: bool) -> History {
    let mut values: Vec<Vec<u64>> = vec![Vec::new(); 3];
    let mut next = 1u64;
    let mut out: Vec<(u64, &str, &str, Value)> = Vec::new();
    let keys = ["a", "b", "c"];
    for &(session, write, key, pick) in ops {
        let k = key as usize % 3;
        if write {
            values[k].push(next);
            out.push((u64::from(session % 4), "write", keys[k], json!(next)));
            next += 1;
        } else {
            let versions = &values[k];
            let v = if versions.is_empty() {
                Value::Null
            } else if stale {
                json!(versions[pick as usize % versions.len()])
            } else {
                json!(versions[versions.len() - 1])
            };
            out.push((u64::from(session % 4), "read", keys[k], v));
        }
    }
    history(&out)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]

    #[test]
    fn a_sequentially_consistent_store_passes_everything(ops in prop::collection::vec((0u8..4, any::<bool>(), 0u8..3, any::<u8>()), 1..60)) {
        let h = simulated(&ops, false);
        for v in check(&h, Consistency::All) {
            prop_assert_eq!(v.valid, Validity::Pass, "{}: {}", v.checker, v.summary);
        }
    }
}

#[test]
fn a_store_that_reads_random_stale_versions_fails() {
    let mut runner = proptest::test_runner::TestRunner::deterministic();
    let strategy = prop::collection::vec((0u8..4, any::<bool>(), 0u8..3, any::<u8>()), 40..80);
    use proptest::strategy::ValueTree;
    let mut failed = 0;
    for _ in 0..50 {
        let ops = strategy.new_tree(&mut runner).unwrap().current();
        let h = simulated(&ops, true);
        if check(&h, Consistency::Causal)[0].valid == Validity::Fail {
            failed += 1;
        }
    }
    assert!(
        failed >= 40,
        "only {failed} of 50 stale histories failed CC"
    );
}
