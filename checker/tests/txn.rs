//! The transactional checker on hand-written histories: one per anomaly class, each asserting
//! the anomaly, the transactions its explanation names and the models it rules out.

use faultline_checker::txn::{self, Assumption, Model, TxnKind, TxnOptions, TxnReport};
use faultline_checker::{Validity, format};
use serde_json::{Value, json};

/// A history written event by event: invoke, then complete, each on its own line and time.
#[derive(Default)]
struct H {
    lines: Vec<String>,
}

impl H {
    /// `process` invokes `mops` (reads sent as null).
    fn invoke(&mut self, process: u64, mops: &Value) -> &mut Self {
        let sent: Vec<Value> = mops
            .as_array()
            .unwrap()
            .iter()
            .map(|m| match m[0].as_str() {
                Some("r") => json!(["r", m[1], null]),
                _ => m.clone(),
            })
            .collect();
        self.event(process, "invoke", &json!(sent))
    }

    /// `process` completes with `kind` and `mops` (reads filled in).
    fn complete(&mut self, process: u64, kind: &str, mops: &Value) -> &mut Self {
        self.event(process, kind, mops)
    }

    /// A whole transaction, alone in time.
    fn txn(&mut self, process: u64, kind: &str, mops: Value) -> &mut Self {
        self.invoke(process, &mops).complete(process, kind, &mops)
    }

    fn event(&mut self, process: u64, kind: &str, value: &Value) -> &mut Self {
        let time = self.lines.len();
        self.lines.push(
            json!({"time": time, "process": process, "type": kind, "f": "txn", "value": value})
                .to_string(),
        );
        self
    }

    fn check(&self, consistency: Model) -> TxnReport {
        check_with(&self.lines.join("\n"), consistency, &[])
    }
}

fn check_with(text: &str, consistency: Model, assume: &[Assumption]) -> TxnReport {
    let history = format::read_str(text, None).unwrap().history;
    let options = TxnOptions {
        consistency,
        assume: assume.to_vec(),
        ..TxnOptions::default()
    };
    txn::check(&history, &options).unwrap()
}

/// The names of the anomalies found.
fn found(report: &TxnReport) -> Vec<&str> {
    report.counts.iter().map(|(n, _)| n.as_str()).collect()
}

/// The first example of `name`, its transactions' ops.
fn example<'a>(report: &'a TxnReport, name: &str) -> &'a txn::Anomaly {
    report
        .anomalies
        .iter()
        .find(|a| a.name == name)
        .unwrap_or_else(|| panic!("no {name} in {:?}", found(report)))
}

fn ops(anomaly: &txn::Anomaly) -> Vec<usize> {
    let mut ops: Vec<usize> = anomaly.txns.iter().map(|t| t.op).collect();
    ops.sort_unstable();
    ops
}

fn not(report: &TxnReport) -> Vec<&'static str> {
    report.not.iter().map(|m| m.name()).collect()
}

#[test]
fn a_serial_history_has_no_anomaly() {
    let mut h = H::default();
    h.txn(0, "ok", json!([["append", "x", 1], ["r", "x", [1]]]))
        .txn(1, "ok", json!([["append", "x", 2], ["r", "y", []]]))
        .txn(0, "ok", json!([["r", "x", [1, 2]]]));
    let report = h.check(Model::StrictSerializable);
    assert_eq!(report.validity, Validity::Pass, "{}", report.explanation());
    assert!(report.anomalies.is_empty() && report.not.is_empty());
    assert_eq!(report.kind, TxnKind::ListAppend);
}

#[test]
fn g0_write_cycle() {
    // T0 and T1 run together; x says T0 then T1, y says T1 then T0.
    let (t0, t1) = (
        json!([["append", "x", 1], ["append", "y", 1]]),
        json!([["append", "x", 2], ["append", "y", 2]]),
    );
    let mut h = H::default();
    h.invoke(0, &t0)
        .invoke(1, &t1)
        .complete(0, "ok", &t0)
        .complete(1, "ok", &t1);
    h.txn(2, "ok", json!([["r", "x", [1, 2]], ["r", "y", [2, 1]]]));
    let report = h.check(Model::ReadUncommitted);
    assert_eq!(report.validity, Validity::Fail);
    let g0 = example(&report, "G0");
    assert_eq!(ops(g0), [0, 1]);
    assert!(g0.cycle.iter().all(|s| s.rel == "ww"), "{:?}", g0.cycle);
    assert_eq!(
        report.not.len(),
        txn::ALL_MODELS.len(),
        "G0 is not even read uncommitted"
    );
}

#[test]
fn g1a_aborted_read() {
    let mut h = H::default();
    h.txn(0, "fail", json!([["append", "x", 1]]))
        .txn(1, "ok", json!([["r", "x", [1]]]));
    let report = h.check(Model::ReadCommitted);
    assert_eq!(report.validity, Validity::Fail);
    assert_eq!(ops(example(&report, "G1a")), [0, 1]);
    assert!(not(&report).contains(&"read-committed"));
    assert!(!not(&report).contains(&"read-uncommitted"));
}

#[test]
fn g1b_intermediate_read() {
    let t0 = json!([["append", "x", 1], ["append", "x", 2]]);
    let mut h = H::default();
    h.invoke(0, &t0)
        .txn(1, "ok", json!([["r", "x", [1]]]))
        .complete(0, "ok", &t0);
    let report = h.check(Model::ReadCommitted);
    assert_eq!(ops(example(&report, "G1b")), [0, 1]);
    assert!(example(&report, "G1b").explanation.contains("intermediate"));
    assert_eq!(report.validity, Validity::Fail);
}

#[test]
fn g1c_circular_information_flow() {
    let (t0, t1) = (
        json!([["append", "x", 1], ["r", "y", [1]]]),
        json!([["append", "y", 1], ["r", "x", [1]]]),
    );
    let mut h = H::default();
    h.invoke(0, &t0)
        .invoke(1, &t1)
        .complete(0, "ok", &t0)
        .complete(1, "ok", &t1);
    let report = h.check(Model::ReadCommitted);
    let g1c = example(&report, "G1c");
    assert_eq!(ops(g1c), [0, 1]);
    assert!(g1c.cycle.iter().all(|s| s.rel == "wr"));
    assert!(g1c.cycle[0].why.contains("saw"), "{}", g1c.cycle[0].why);
    assert_eq!(report.validity, Validity::Fail);
}

#[test]
fn g_single_read_skew() {
    // As elle-cli's list-append-anomaly-g-single-item: T1 appended to x after T0 but read y
    // before T0's append to y.
    let (t0, t1) = (
        json!([["append", "x", 1], ["append", "y", 1]]),
        json!([["append", "x", 2], ["r", "y", []]]),
    );
    let mut h = H::default();
    h.invoke(0, &t0)
        .invoke(1, &t1)
        .complete(0, "ok", &t0)
        .complete(1, "ok", &t1);
    h.txn(2, "ok", json!([["r", "x", [1, 2]]]));
    let report = h.check(Model::SnapshotIsolation);
    let single = example(&report, "G-single");
    assert_eq!(ops(single), [0, 1]);
    let rels: Vec<&str> = single.cycle.iter().map(|s| s.rel).collect();
    assert_eq!(rels.iter().filter(|r| **r == "rw").count(), 1);
    assert!(
        not(&report).contains(&"snapshot-isolation") && not(&report).contains(&"consistent-view")
    );
    assert!(!not(&report).contains(&"parallel-snapshot-isolation"));
    assert_eq!(report.validity, Validity::Fail);
}

#[test]
fn g_nonadjacent() {
    // T0 -rw-> T1 -wr-> T2 -rw-> T3 -wr-> T0, all concurrent.
    let t = [
        json!([["r", "a", []], ["r", "d", [1]]]),
        json!([["append", "a", 1], ["append", "b", 1]]),
        json!([["r", "b", [1]], ["r", "c", []]]),
        json!([["append", "c", 1], ["append", "d", 1]]),
    ];
    let mut h = H::default();
    for (p, mops) in t.iter().enumerate() {
        h.invoke(p as u64, mops);
    }
    for (p, mops) in t.iter().enumerate() {
        h.complete(p as u64, "ok", mops);
    }
    let report = h.check(Model::SnapshotIsolation);
    let cycle = example(&report, "G-nonadjacent");
    assert_eq!(ops(cycle), [0, 1, 2, 3]);
    assert!(not(&report).contains(&"snapshot-isolation"));
    assert!(!found(&report).contains(&"G-single"));
    assert_eq!(report.validity, Validity::Fail);
}

#[test]
fn g2_item_write_skew_is_allowed_by_snapshot_isolation() {
    let (t0, t1) = (
        json!([["r", "x", []], ["append", "y", 1]]),
        json!([["r", "y", []], ["append", "x", 1]]),
    );
    let mut h = H::default();
    h.invoke(0, &t0)
        .invoke(1, &t1)
        .complete(0, "ok", &t0)
        .complete(1, "ok", &t1);
    let si = h.check(Model::SnapshotIsolation);
    assert_eq!(ops(example(&si, "G2-item")), [0, 1]);
    assert_eq!(
        si.validity,
        Validity::Pass,
        "SI allows write skew: {}",
        si.explanation()
    );
    assert!(not(&si).contains(&"serializable") && not(&si).contains(&"repeatable-read"));
    let serializable = h.check(Model::Serializable);
    assert_eq!(serializable.validity, Validity::Fail);
}

#[test]
fn lost_update() {
    let (t0, t1) = (
        json!([["r", "x", []], ["append", "x", 1]]),
        json!([["r", "x", []], ["append", "x", 2]]),
    );
    let mut h = H::default();
    h.invoke(0, &t0)
        .invoke(1, &t1)
        .complete(0, "ok", &t0)
        .complete(1, "ok", &t1);
    h.txn(2, "ok", json!([["r", "x", [1, 2]]]));
    let report = h.check(Model::SnapshotIsolation);
    assert_eq!(ops(example(&report, "lost-update")), [0, 1]);
    assert!(not(&report).contains(&"snapshot-isolation"));
    assert_eq!(report.validity, Validity::Fail);
}

#[test]
fn internal_inconsistency() {
    let mut h = H::default();
    h.txn(0, "ok", json!([["append", "x", 1], ["r", "x", []]]));
    let report = h.check(Model::ReadAtomic);
    assert_eq!(ops(example(&report, "internal")), [0]);
    assert_eq!(report.validity, Validity::Fail);
    assert!(!not(&report).contains(&"read-committed"));
}

#[test]
fn future_read() {
    let mut h = H::default();
    h.txn(0, "ok", json!([["r", "x", [1]], ["append", "x", 1]]));
    let report = h.check(Model::ReadCommitted);
    assert_eq!(ops(example(&report, "future-read")), [0]);
    assert!(
        not(&report).contains(&"read-committed"),
        "a future read is a G1c"
    );
}

#[test]
fn duplicate_elements_incompatible_order_and_garbage() {
    let mut h = H::default();
    h.txn(0, "ok", json!([["append", "x", 1]]))
        .txn(1, "ok", json!([["append", "x", 2]]))
        .txn(2, "ok", json!([["r", "x", [1, 2]]]))
        .txn(3, "ok", json!([["r", "x", [2, 1]]]))
        .txn(4, "ok", json!([["r", "y", [1, 1]]]))
        .txn(5, "ok", json!([["r", "z", [9]]]));
    let report = h.check(Model::ReadUncommitted);
    assert_eq!(ops(example(&report, "incompatible-order")), [2, 3]);
    assert_eq!(ops(example(&report, "duplicate-elements")), [4]);
    assert!(
        report.anomalies.iter().any(
            |a| a.name == "garbage-read" && a.explanation.contains("no transaction appended 9")
        ),
        "{}",
        report.explanation()
    );
    assert_eq!(report.validity, Validity::Fail);
}

#[test]
fn dirty_update() {
    let mut h = H::default();
    h.txn(0, "fail", json!([["append", "x", 1]]))
        .txn(1, "ok", json!([["append", "x", 2]]))
        .txn(2, "ok", json!([["r", "x", [1, 2]]]));
    let report = h.check(Model::ReadCommitted);
    assert_eq!(ops(example(&report, "dirty-update")), [0, 1]);
    assert_eq!(report.validity, Validity::Fail);
}

#[test]
fn realtime_and_process_variants() {
    // T1 starts after T0 completed, yet reads x before T0's append.
    let mut h = H::default();
    h.txn(0, "ok", json!([["append", "x", 1]]))
        .txn(1, "ok", json!([["r", "x", []]]));
    let report = h.check(Model::StrictSerializable);
    let cycle = example(&report, "G-single-realtime");
    assert_eq!(ops(cycle), [0, 1]);
    assert!(cycle.cycle.iter().any(|s| s.rel == "realtime"));
    assert_eq!(
        not(&report),
        ["strict-serializable", "strong-snapshot-isolation"]
    );
    assert_eq!(report.validity, Validity::Fail);
    assert_eq!(h.check(Model::Serializable).validity, Validity::Pass);
    // The same on one process is a process anomaly: strong session models fail too.
    let mut h = H::default();
    h.txn(0, "ok", json!([["append", "x", 1]]))
        .txn(0, "ok", json!([["r", "x", []]]));
    let report = h.check(Model::StrongSessionSerializable);
    assert_eq!(ops(example(&report, "G-single-process")), [0, 1]);
    assert!(not(&report).contains(&"strong-session-serializable"));
    assert!(!not(&report).contains(&"serializable"));
    assert_eq!(report.validity, Validity::Fail);
}

#[test]
fn rw_register_anomalies() {
    let mut h = H::default();
    h.txn(0, "fail", json!([["w", "x", 1]]))
        .txn(1, "ok", json!([["r", "x", 1]]))
        .txn(2, "ok", json!([["w", "y", 1], ["w", "y", 2]]))
        .txn(3, "ok", json!([["r", "y", 1]]))
        .txn(4, "ok", json!([["w", "z", 5], ["r", "z", 6]]));
    let report = h.check(Model::ReadCommitted);
    assert_eq!(report.kind, TxnKind::RwRegister);
    assert_eq!(ops(example(&report, "G1a")), [0, 1]);
    assert_eq!(ops(example(&report, "G1b")), [2, 3]);
    assert_eq!(ops(example(&report, "internal")), [4]);
}

#[test]
fn rw_register_cycles_need_a_version_order() {
    // T0 and T1 each read the other's key as nil and write their own: nil precedes every
    // write, so each anti-depends on the other (write skew, G2-item).
    let (t0, t1) = (
        json!([["r", "x", null], ["w", "y", 1]]),
        json!([["r", "y", null], ["w", "x", 1]]),
    );
    let mut h = H::default();
    h.invoke(0, &t0)
        .invoke(1, &t1)
        .complete(0, "ok", &t0)
        .complete(1, "ok", &t1);
    let report = h.check(Model::Serializable);
    assert_eq!(ops(example(&report, "G2-item")), [0, 1]);
    // Read skew that only wfr-keys can see: T1 read x = 1 and then wrote x = 2 (so, writes
    // following reads, 2 came right after 1) and y = 1; T2 saw T1's y but read x = 1.
    let text = [
        r#"{"process":0,"type":"invoke","f":"txn","value":[["w","x",1]]}"#,
        r#"{"process":0,"type":"ok","f":"txn","value":[["w","x",1]]}"#,
        r#"{"process":1,"type":"invoke","f":"txn","value":[["r","x",null],["w","x",2],["w","y",1]]}"#,
        r#"{"process":2,"type":"invoke","f":"txn","value":[["r","x",null],["r","y",null]]}"#,
        r#"{"process":1,"type":"ok","f":"txn","value":[["r","x",1],["w","x",2],["w","y",1]]}"#,
        r#"{"process":2,"type":"ok","f":"txn","value":[["r","x",1],["r","y",1]]}"#,
    ]
    .join("\n");
    let without = check_with(&text, Model::Serializable, &[]);
    assert_eq!(
        without.validity,
        Validity::Pass,
        "{}",
        without.explanation()
    );
    let with = check_with(&text, Model::Serializable, &[Assumption::WfrKeys]);
    assert_eq!(
        ops(example(&with, "G-single")),
        [1, 2],
        "{}",
        with.explanation()
    );
}

#[test]
fn histories_from_other_tools() {
    // elle-cli's JSON: an array, no f, no time.
    let elle = r#"[{"index":0,"process":0,"type":"invoke","value":[["append",1,1],["append",2,1]]},
 {"index":1,"process":0,"type":"ok","value":[["append",1,1],["append",2,1]]},
 {"index":2,"process":1,"type":"invoke","value":[["append",1,2],["r",2,null]]},
 {"index":3,"process":1,"type":"ok","value":[["append",1,2],["r",2,[]]]},
 {"index":4,"process":2,"type":"invoke","value":[["r",1,null]]},
 {"index":5,"process":2,"type":"ok","value":[["r",1,[1,2]]]}]
"#;
    let report = check_with(elle, Model::Serializable, &[]);
    assert!(
        found(&report).contains(&"G-single"),
        "{}",
        report.explanation()
    );
    // Jepsen EDN, with keywords.
    let edn = "{:type :invoke, :f :txn, :value [[:append 1 1] [:r 2 nil]], :process 0}\n\
               {:type :ok, :f :txn, :value [[:append 1 1] [:r 2 []]], :process 0}\n\
               {:type :invoke, :f :txn, :value [[:append 2 1] [:r 1 nil]], :process 1}\n\
               {:type :ok, :f :txn, :value [[:append 2 1] [:r 1 []]], :process 1}\n";
    let report = check_with(edn, Model::StrictSerializable, &[]);
    // T1 began after T0 ended but missed T0's append: a real-time anomaly.
    assert!(
        found(&report).contains(&"G-single-process")
            || found(&report).contains(&"G-single-realtime")
    );
    // A truncated completion with no value is unknown, and its reads unknown.
    let info = "{\"process\":0,\"type\":\"invoke\",\"value\":[[\"append\",\"k\",1]]}\n\
                {\"process\":0,\"type\":\"info\"}\n\
                {\"process\":1,\"type\":\"invoke\",\"value\":[[\"r\",\"k\",null]]}\n\
                {\"process\":1,\"type\":\"ok\",\"value\":[[\"r\",\"k\",[1]]]}\n";
    let report = check_with(info, Model::StrictSerializable, &[]);
    assert_eq!(report.validity, Validity::Pass, "{}", report.explanation());
}

#[test]
fn past_the_time_limit_the_verdict_is_unknown_never_a_guess() {
    let (t0, t1) = (
        json!([["append", "x", 1], ["append", "y", 1]]),
        json!([["append", "x", 2], ["r", "y", []]]),
    );
    let mut h = H::default();
    h.invoke(0, &t0)
        .invoke(1, &t1)
        .complete(0, "ok", &t0)
        .complete(1, "ok", &t1);
    h.txn(2, "ok", json!([["r", "x", [1, 2]]]));
    let history = format::read_str(&h.lines.join("\n"), None).unwrap().history;
    let options = TxnOptions {
        timeout: Some(std::time::Duration::ZERO),
        ..TxnOptions::default()
    };
    let report = txn::check(&history, &options).unwrap();
    assert_eq!(report.validity, Validity::Unknown);
    assert!(
        report.unknown_reasons[0].contains("time limit"),
        "{:?}",
        report.unknown_reasons
    );
}
