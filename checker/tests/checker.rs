//! Behaviour of the linearizability checker on histories built for the purpose: valid by
//! construction, made invalid by one stale read, the two semantics, the bounds that give
//! UNKNOWN, and cancellation of slow keys by a quick FAIL.

use std::time::Duration;

use faultline_checker::synth::{SynthConfig, generate};
use faultline_checker::{
    History, ModelKind, Options, Semantics, Status, Validity, format, history, linearizability,
};
use proptest::prelude::*;
use serde_json::json;

fn check(history: &History, options: &Options) -> linearizability::LinearizabilityReport {
    linearizability::check(history, options).expect("the history fits the model")
}

fn jsonl(lines: &[&str]) -> History {
    format::read_str(&(lines.join("\n") + "\n"), None)
        .expect("readable")
        .history
}

/// Changes one read to a stale value: a read r whose key had a write w, then (strictly after
/// w) another acknowledged write w2, both before r began. Written values are unique per key,
/// so r returning w's value has no valid order. Returns the read's id.
fn make_stale(history: &mut History) -> Option<usize> {
    let writes: Vec<(usize, serde_json::Value)> = history
        .ops
        .iter()
        .filter(|op| op.status == Status::Ok && matches!(op.f.as_str(), "write" | "cas"))
        .map(|op| {
            let value = if op.f == "cas" {
                op.input[1].clone()
            } else {
                op.input.clone()
            };
            (op.id, value)
        })
        .collect();
    for read in history
        .ops
        .iter()
        .filter(|o| o.f == "read" && o.status == Status::Ok)
    {
        for (w, value) in &writes {
            let w = &history.ops[*w];
            let overwritten = writes.iter().any(|(w2, _)| {
                let w2 = &history.ops[*w2];
                w2.key == read.key
                    && w2.id != w.id
                    && w.ret.is_some_and(|r| r < w2.call)
                    && w2.ret.is_some_and(|r| r < read.call)
            });
            if w.key == read.key && overwritten && read.output != *value {
                let id = read.id;
                history.ops[id].output = value.clone();
                return Some(id);
            }
        }
    }
    None
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn valid_by_construction_passes_and_a_stale_read_fails(
        seed in any::<u64>(),
        ops in 20..400usize,
        keys in 1..4usize,
        clients in 2..8usize,
    ) {
        let config = SynthConfig { ops, keys, clients, info_rate: 0.05, cas: true, seed };
        let mut history = history::pair(generate(&config).events()).unwrap();
        let report = check(&history, &Options::default());
        prop_assert_eq!(report.validity, Validity::Pass, "{:?}", report.failures);
        // Inferred from the operations: a short history may have no cas.
        let has_cas = history.ops.iter().any(|op| op.f == "cas");
        let expected = if has_cas { ModelKind::CasRegister } else { ModelKind::Register };
        prop_assert_eq!(report.model, expected);

        let Some(read) = make_stale(&mut history) else { return Ok(()) };
        let key = history.ops[read].key.clone();
        let report = check(&history, &Options::default());
        prop_assert_eq!(report.validity, Validity::Fail);
        prop_assert_eq!(&report.failures[0].key, &key);
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    /// Read/write registers with unique values, some with a stale read: the zones, the
    /// stale-read proof and the reductions give the plain search's verdict.
    #[test]
    fn decisions_without_a_search_match_the_search(
        seed in any::<u64>(),
        ops in 20..300usize,
        clients in 2..10usize,
        stale in any::<bool>(),
    ) {
        let config = SynthConfig { ops, keys: 1, clients, info_rate: 0.05, cas: false, seed };
        let mut history = history::pair(generate(&config).events()).unwrap();
        if stale {
            make_stale(&mut history);
        }
        let fast = check(&history, &Options::default());
        let plain = Options { reduce_info: false, ..Options::default() };
        let searched = check(&history, &plain);
        prop_assert_eq!(fast.validity, searched.validity);
        if let (Some(a), Some(b)) = (fast.failures.first(), searched.failures.first()) {
            prop_assert_eq!(&a.key, &b.key);
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    /// Cas registers with few clients (quiescent points, so the search runs in segments), some
    /// with a read of a value nobody wrote (no proof without a search finds it): the segmented
    /// search gives the plain search's verdict, on the same key.
    #[test]
    fn segmented_searches_match_the_plain_search(
        seed in any::<u64>(),
        ops in 100..600usize,
        clients in 2..4usize,
        plant in any::<bool>(),
    ) {
        let config = SynthConfig { ops, keys: 1, clients, info_rate: 0.02, cas: true, seed };
        let mut history = history::pair(generate(&config).events()).unwrap();
        if plant {
            let late = history.ops.len() * 3 / 4;
            if let Some(read) = history.ops[late..]
                .iter()
                .position(|op| op.f == "read" && op.status == Status::Ok)
            {
                history.ops[late + read].output = serde_json::json!(-1);
            }
        }
        let fast = check(&history, &Options::default());
        let plain = Options { reduce_info: false, ..Options::default() };
        let searched = check(&history, &plain);
        prop_assert_eq!(fast.validity, searched.validity);
        if let (Some(a), Some(b)) = (fast.failures.first(), searched.failures.first()) {
            prop_assert_eq!(&a.op, &b.op);
        }
    }
}

#[test]
fn a_read_of_null_after_a_write_fails_strict_but_passes_knossos() {
    let history = jsonl(&[
        r#"{"process":0,"type":"invoke","f":"write","value":1}"#,
        r#"{"process":0,"type":"ok","f":"write","value":1}"#,
        r#"{"process":1,"type":"invoke","f":"read","value":null}"#,
        r#"{"process":1,"type":"ok","f":"read","value":null}"#,
    ]);
    let strict = check(&history, &Options::default());
    assert_eq!(strict.validity, Validity::Fail);
    assert_eq!(strict.failures[0].op.f, "read");
    assert_eq!(strict.failures[0].states_before, ["1"]);
    let knossos = Options {
        semantics: Semantics::Knossos,
        ..Options::default()
    };
    assert_eq!(check(&history, &knossos).validity, Validity::Pass);
}

#[test]
fn a_cas_mismatch_is_an_observation_only_in_strict() {
    // The cas failed although the value was 1: a bug only strict semantics sees.
    let history = jsonl(&[
        r#"{"process":0,"type":"invoke","f":"write","value":1}"#,
        r#"{"process":0,"type":"ok","f":"write","value":1}"#,
        r#"{"process":1,"type":"invoke","f":"cas","value":[1,2]}"#,
        r#"{"process":1,"type":"fail","f":"cas","value":[1,2],"error":"mismatch"}"#,
        r#"{"process":1,"type":"invoke","f":"read","value":null}"#,
        r#"{"process":1,"type":"ok","f":"read","value":1}"#,
    ]);
    let strict = check(&history, &Options::default());
    assert_eq!(strict.validity, Validity::Fail);
    assert_eq!(strict.failures[0].op.status, Status::Mismatch);
    let knossos = Options {
        semantics: Semantics::Knossos,
        ..Options::default()
    };
    assert_eq!(check(&history, &knossos).validity, Validity::Pass);
}

#[test]
fn an_info_write_may_take_effect_late() {
    let history = jsonl(&[
        r#"{"process":0,"type":"invoke","f":"write","value":1}"#,
        r#"{"process":0,"type":"info","f":"write","value":1}"#,
        r#"{"process":1,"type":"invoke","f":"read","value":null}"#,
        r#"{"process":1,"type":"ok","f":"read","value":null}"#,
        r#"{"process":1,"type":"invoke","f":"read","value":null}"#,
        r#"{"process":1,"type":"ok","f":"read","value":1}"#,
    ]);
    assert_eq!(
        check(&history, &Options::default()).validity,
        Validity::Pass
    );
}

#[test]
fn the_model_is_inferred_and_initial_values_count() {
    let history = jsonl(&[
        r#"{"process":0,"type":"invoke","f":"read","value":null}"#,
        r#"{"process":0,"type":"ok","f":"read","value":0}"#,
    ]);
    let report = check(&history, &Options::default());
    assert_eq!(report.validity, Validity::Fail);
    assert!(report.model_inferred);
    assert_eq!(report.model, ModelKind::Register);
    let options = Options {
        initial: json!(0),
        ..Options::default()
    };
    assert_eq!(check(&history, &options).validity, Validity::Pass);
}

#[test]
fn a_queue_is_fifo() {
    let history = jsonl(&[
        r#"{"process":0,"type":"invoke","f":"enqueue","value":1}"#,
        r#"{"process":0,"type":"ok","f":"enqueue","value":1}"#,
        r#"{"process":0,"type":"invoke","f":"enqueue","value":2}"#,
        r#"{"process":0,"type":"ok","f":"enqueue","value":2}"#,
        r#"{"process":1,"type":"invoke","f":"dequeue","value":null}"#,
        r#"{"process":1,"type":"ok","f":"dequeue","value":2}"#,
    ]);
    let report = check(&history, &Options::default());
    assert_eq!(report.model, ModelKind::Queue);
    assert_eq!(report.validity, Validity::Fail);
}

/// A key whose search is hopeless: `n` concurrent acknowledged writes, and a read of a value
/// none wrote, concurrent with all of them (and a cas, so that only a search can decide it).
/// Proving it FAIL means trying every subset of the writes.
fn hopeless_key(key: &str, n: usize, process_base: usize) -> Vec<String> {
    let mut lines = Vec::new();
    for i in 0..n {
        lines.push(format!(
            r#"{{"process":{},"type":"invoke","f":"write","key":"{key}","value":{i}}}"#,
            process_base + i
        ));
    }
    lines.push(format!(
        r#"{{"process":{},"type":"invoke","f":"read","key":"{key}","value":null}}"#,
        process_base + n
    ));
    lines.push(format!(
        r#"{{"process":{},"type":"ok","f":"read","key":"{key}","value":-1}}"#,
        process_base + n
    ));
    // A cas keeps the zones (read/write registers only) from deciding it without a search.
    lines.push(format!(
        r#"{{"process":{},"type":"invoke","f":"cas","key":"{key}","value":[-2,-3]}}"#,
        process_base + n + 1
    ));
    lines.push(format!(
        r#"{{"process":{},"type":"fail","f":"cas","key":"{key}","value":[-2,-3],"error":"mismatch"}}"#,
        process_base + n + 1
    ));
    // Acknowledged, so no reduction removes them: every subset of them is a configuration.
    for i in 0..n {
        lines.push(format!(
            r#"{{"process":{},"type":"ok","f":"write","key":"{key}","value":{i}}}"#,
            process_base + i
        ));
    }
    lines
}

#[test]
fn a_quick_fail_cancels_slow_keys() {
    let mut lines = hopeless_key("slow", 40, 0);
    lines.extend([
        r#"{"process":100,"type":"invoke","f":"read","key":"quick","value":null}"#.to_string(),
        r#"{"process":100,"type":"ok","f":"read","key":"quick","value":7}"#.to_string(),
    ]);
    let refs: Vec<&str> = lines.iter().map(String::as_str).collect();
    let report = check(&jsonl(&refs), &Options::default());
    assert_eq!(report.validity, Validity::Fail);
    assert_eq!(report.failures.len(), 1);
    assert_eq!(report.failures[0].key.as_deref(), Some("quick"));
}

#[test]
fn a_timeout_gives_unknown_with_the_reason() {
    let lines = hopeless_key("k", 40, 0);
    let refs: Vec<&str> = lines.iter().map(String::as_str).collect();
    let options = Options {
        timeout: Some(Duration::from_millis(50)),
        ..Options::default()
    };
    let report = check(&jsonl(&refs), &options);
    assert_eq!(report.validity, Validity::Unknown);
    assert!(
        report.unknown_reasons[0].contains("timed out after 50ms"),
        "{:?}",
        report.unknown_reasons
    );
    assert!(
        report.unknown_reasons[1].contains("the search had linearized at most")
            && report.unknown_reasons[1].contains("of the 42 operations of key \"k\""),
        "how far it got: {:?}",
        report.unknown_reasons
    );
}

#[test]
fn the_cache_bound_gives_unknown_with_the_reason() {
    let lines = hopeless_key("k", 40, 0);
    let refs: Vec<&str> = lines.iter().map(String::as_str).collect();
    let options = Options {
        max_cache_bytes: 1 << 20,
        ..Options::default()
    };
    let report = check(&jsonl(&refs), &options);
    assert_eq!(report.validity, Validity::Unknown);
    assert!(
        report.unknown_reasons[0].contains("search cache passed its bound of 1 MiB"),
        "{:?}",
        report.unknown_reasons
    );
}

#[test]
fn an_operation_the_model_lacks_is_an_error_with_its_line() {
    let history = jsonl(&[
        r#"{"process":0,"type":"invoke","f":"cas","value":[1,2]}"#,
        r#"{"process":0,"type":"ok","f":"cas","value":[1,2]}"#,
    ]);
    let options = Options {
        model: Some(ModelKind::Register),
        ..Options::default()
    };
    let err = linearizability::check(&history, &options).unwrap_err();
    assert_eq!(err.line, 1);
    assert!(err.message.contains("--model cas-register"));
}
