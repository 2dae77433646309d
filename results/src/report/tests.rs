use faultline_checker::format::read_str;
use faultline_checker::{Checker, Evidence, ModelKind, Options, check_all};

use super::*;

/// A stale read under a partition: p0 writes 1 to x, then p1 reads nothing.
const STALE: &str = r#"{"process":0,"type":"invoke","f":"write","key":"x","value":1,"time":1000000}
{"process":0,"type":"ok","f":"write","key":"x","value":1,"time":2000000}
{"process":"nemesis","type":"info","f":"partition","value":{"action":"start"},"time":3000000}
{"process":1,"type":"invoke","f":"read","key":"x","value":null,"time":5000000}
{"process":1,"type":"ok","f":"read","key":"x","value":null,"time":6000000}
{"process":"nemesis","type":"info","f":"partition","value":{"action":"heal"},"time":8000000}
{"process":0,"type":"invoke","f":"read","key":"x","value":null,"time":9000000}
{"process":0,"type":"info","f":"read","key":"x","value":null,"time":10000000}
"#;

fn judged(text: &str) -> (History, Vec<Verdict>) {
    let history = read_str(text, None).unwrap().history;
    let options = Options {
        model: Some(ModelKind::Kv),
        ..Options::default()
    };
    let verdicts = check_all(
        &[Checker::Linearizability(options)],
        &Evidence::history(&history),
    )
    .unwrap();
    (history, verdicts)
}

fn report_of(history: &History, verdicts: &[Verdict], run: Option<&Value>) -> RunReport {
    run_report(&ReportInput {
        title: "test",
        history,
        verdicts,
        run,
        raft_notes: None,
    })
}

#[test]
fn the_data_of_a_failing_run() {
    let (history, verdicts) = judged(STALE);
    let run = serde_json::json!({
        "command": ["/usr/bin/faultline", "run", "--set", "n=3,w=1,r=1", "--seed", "9"],
        "seed": 9, "target": "bundled:quorum", "workload": "register",
    });
    let report = report_of(&history, &verdicts, Some(&run));
    insta::assert_json_snapshot!(report);
}

#[test]
fn the_failing_operation_is_drawn_and_the_page_fetches_nothing() {
    let (history, verdicts) = judged(STALE);
    let report = report_of(&history, &verdicts, None);
    let timeline = report.failures[0].timeline.as_ref().expect("a timeline");
    let failing: Vec<_> = timeline
        .bars
        .iter()
        .filter(|b| b.role == "failing")
        .collect();
    assert_eq!(failing.len(), 1);
    assert!(failing[0].title.contains("p1 read"), "{}", failing[0].title);
    let prefix: Vec<_> = timeline
        .bars
        .iter()
        .filter(|b| b.role == "prefix")
        .collect();
    assert!(
        prefix
            .iter()
            .all(|b| b.point.is_some_and(|p| p >= b.x && p <= b.x + b.w))
    );
    let html = render_run(&report);
    assert_eq!(html.matches(r#"id="failing-op""#).count(), 1);
    assert!(html.contains(r#"class="band fault partition""#));
    for fetching in ["src=\"http", "href=\"http", "url(http", "@import", "<link"] {
        assert!(!html.contains(fetching), "the page fetches: {fetching}");
    }
}

#[test]
fn a_big_history_is_drawn_in_columns_and_stays_small() {
    let mut text = String::new();
    for i in 0..200_000u64 {
        let (p, t) = (i % 16, i * 50_000);
        let (kind, f) = if i % 97 == 0 {
            ("info", "write")
        } else {
            ("ok", if i % 2 == 0 { "read" } else { "write" })
        };
        text.push_str(&format!(
            "{{\"process\":{p},\"type\":\"invoke\",\"f\":\"{f}\",\"key\":\"k{}\",\"value\":{i},\"time\":{t}}}\n\
             {{\"process\":{p},\"type\":\"{kind}\",\"f\":\"{f}\",\"key\":\"k{}\",\"value\":{i},\"time\":{}}}\n",
            i % 5,
            i % 5,
            t + 1_000_000 + (i % 13) * 300_000
        ));
    }
    let history = read_str(&text, None).unwrap().history;
    let report = report_of(&history, &[], None);
    for plot in &report.latency {
        assert!(
            plot.dots.is_empty() && !plot.columns.is_empty(),
            "{} not aggregated",
            plot.f
        );
        let total: usize = plot.columns.iter().map(|c| c.count).sum();
        assert_eq!(total, plot.operations);
        assert!(plot.columns.len() <= 3 * plot.frame.plot_width() as usize + 3);
    }
    let html = render_run(&report);
    assert!(
        html.len() < 1_000_000,
        "{} bytes for 200,000 operations",
        html.len()
    );
}

#[test]
fn the_replay_command_pins_the_seed_and_quotes() {
    let run = serde_json::json!({"command": ["./faultline", "run", "--target", "exec:python3 c.py"], "seed": 42});
    assert_eq!(
        replay_command(&run).unwrap(),
        "faultline run --target 'exec:python3 c.py' --seed 42"
    );
    let run = serde_json::json!({"command": ["faultline", "run", "--seed", "1"], "seed": 1});
    assert_eq!(replay_command(&run).unwrap(), "faultline run --seed 1");
}

#[test]
fn the_step_summary_names_the_verdicts_and_the_report() {
    let (_, verdicts) = judged(STALE);
    let md = step_summary(
        "faultline check h.jsonl",
        &verdicts,
        Some(Path::new("out/report.html")),
    );
    assert!(
        md.starts_with("### faultline check h.jsonl: FAIL\n"),
        "{md}"
    );
    assert!(md.contains("| linearizability | **FAIL** |"), "{md}");
    assert!(md.contains("Report: `out/report.html`"), "{md}");
}

#[test]
fn a_causal_violation_is_drawn_with_its_edges() {
    // p0 writes x=1 then y=1; p1 reads y=1 then x=null: writes-follow... a WriteCOInitRead.
    let text = r#"{"process":0,"type":"invoke","f":"write","key":"x","value":1,"time":1}
{"process":0,"type":"ok","f":"write","key":"x","value":1,"time":2}
{"process":0,"type":"invoke","f":"write","key":"y","value":1,"time":3}
{"process":0,"type":"ok","f":"write","key":"y","value":1,"time":4}
{"process":1,"type":"invoke","f":"read","key":"y","value":null,"time":5}
{"process":1,"type":"ok","f":"read","key":"y","value":1,"time":6}
{"process":1,"type":"invoke","f":"read","key":"x","value":null,"time":7}
{"process":1,"type":"ok","f":"read","key":"x","value":null,"time":8}
"#;
    let history = read_str(text, None).unwrap().history;
    let consistency = faultline_checker::causal::Consistency::All;
    let verdicts = check_all(
        &[Checker::Causal(consistency)],
        &Evidence::history(&history),
    )
    .unwrap();
    let report = report_of(&history, &verdicts, None);
    let pattern = (report.failures.iter())
        .find_map(|f| f.pattern.as_ref())
        .expect("a causal FAIL drawn");
    assert!(pattern.bars.len() >= 3, "{pattern:?}");
    let rels: Vec<&str> = pattern.edges.iter().map(|e| e.rel).collect();
    assert!(rels.contains(&"rf") && rels.contains(&"so"), "{rels:?}");
    assert!(render_run(&report).contains("class=\"edge rf\""));
}

#[test]
fn a_transactional_cycle_is_drawn_as_a_graph() {
    // T1 appends to x and y; T2 sees its append to y but not to x: read skew (G-single).
    let text = r#"{"process":0,"type":"invoke","f":"txn","value":[["append","x",1],["append","y",1]],"time":1}
{"process":0,"type":"ok","f":"txn","value":[["append","x",1],["append","y",1]],"time":2}
{"process":1,"type":"invoke","f":"txn","value":[["r","x",null],["r","y",null]],"time":3}
{"process":1,"type":"ok","f":"txn","value":[["r","x",[]],["r","y",[1]]],"time":4}
{"process":2,"type":"invoke","f":"txn","value":[["r","x",null]],"time":5}
{"process":2,"type":"ok","f":"txn","value":[["r","x",[1]]],"time":6}
"#;
    let history = read_str(text, None).unwrap().history;
    let options = faultline_checker::txn::TxnOptions::default();
    let verdicts = check_all(
        &[Checker::Transactional(options)],
        &Evidence::history(&history),
    )
    .unwrap();
    assert_eq!(verdicts[0].valid, Validity::Fail, "{}", verdicts[0].summary);
    let report = report_of(&history, &verdicts, None);
    let cycle = report.failures[0].cycle.as_ref().expect("a cycle drawn");
    assert_eq!(cycle.nodes.len(), 2, "{cycle:?}");
    let rels: Vec<&str> = cycle.edges.iter().map(|e| e.rel.as_str()).collect();
    assert!(rels.contains(&"wr") && rels.contains(&"rw"), "{rels:?}");
    assert!(cycle.edges.iter().all(|e| !e.why.is_empty()));
    assert!(render_run(&report).contains("class=\"txn\""));
}

#[test]
fn raft_terms_and_leaders_are_drawn_with_the_conflicts_marked() {
    use faultline_checker::raft::{self, NodeNotes, parse_notes};
    let notes = |node: &str, text: &str| NodeNotes {
        node: node.into(),
        notes: Some(parse_notes(node, text).unwrap()),
    };
    let nodes = vec![
        notes(
            "n1",
            "{\"led\": 1}\n{\"applied\": 1, \"term\": 1, \"command\": \"a\"}\n",
        ),
        notes(
            "n2",
            "{\"led\": 2}\n{\"applied\": 1, \"term\": 2, \"command\": \"b\"}\n",
        ),
        notes("n3", "{\"led\": 2}\n"),
    ];
    let verdict = raft::check(&nodes, None).verdict();
    assert_eq!(verdict.valid, Validity::Fail);
    let history = read_str("", None).unwrap().history;
    let report = run_report(&ReportInput {
        title: "raft",
        history: &history,
        verdicts: std::slice::from_ref(&verdict),
        run: None,
        raft_notes: Some(&nodes),
    });
    let view = report.failures[0].raft.as_ref().expect("a Raft view");
    assert_eq!(view.lanes.len(), 3);
    let contested: Vec<&str> = (view.led.iter())
        .filter(|c| c.conflict)
        .map(|c| c.title.as_str())
        .collect();
    assert_eq!(contested, ["n2 led term 2", "n3 led term 2"]);
    assert_eq!(
        view.marks.len(),
        2,
        "both entries at index 1: {:?}",
        view.marks
    );
    assert!(view.marks.iter().any(|m| m.title.contains("applied \"b\"")));
}

#[test]
fn a_saga_order_shows_its_services_and_attempts() {
    use faultline_checker::saga::{self, Effect, OrderFacts, SagaFacts, ServiceState};
    let effect = |applied| {
        std::collections::BTreeMap::from([("o1".to_string(), Effect { applied, undone: 0 })])
    };
    let service = |totals: &[(&str, i64)], applied| ServiceState {
        totals: totals.iter().map(|(k, v)| (k.to_string(), *v)).collect(),
        orders: effect(applied),
        blocked_ms: Vec::new(),
    };
    let facts = SagaFacts {
        initial_stock: [("sku-1".to_string(), 10)].into(),
        initial_balances: [("acct-1".to_string(), 100)].into(),
        orders: vec![OrderFacts {
            order: "o1".into(),
            sku: "sku-1".into(),
            qty: 1,
            account: "acct-1".into(),
            amount: 10,
            client_saw: Some("completed".into()),
            final_status: Some("completed".into()),
            half_done_ms: None,
            coordinator: Value::Null,
        }],
        services: [
            ("inventory".to_string(), service(&[("sku-1", 9)], 1)),
            ("payment".to_string(), service(&[("acct-1", 80)], 2)),
            ("shipping".to_string(), service(&[("shipments", 1)], 1)),
        ]
        .into(),
    };
    let verdict = saga::check(&facts).verdict();
    assert_eq!(verdict.valid, Validity::Fail, "{}", verdict.summary);
    let text = r#"{"process":3,"type":"invoke","f":"order","key":"o1","value":{"order":"o1"},"time":1000}
{"process":3,"type":"info","f":"order","key":"o1","value":null,"time":5000}
{"process":4,"type":"invoke","f":"order","key":"o1","value":{"order":"o1"},"time":6000}
{"process":4,"type":"ok","f":"order","key":"o1","value":{"status":"completed"},"time":9000}
"#;
    let history = read_str(text, None).unwrap().history;
    let report = report_of(&history, std::slice::from_ref(&verdict), None);
    let order = report.failures[0].order.as_ref().expect("an order view");
    assert_eq!(order.order, "o1");
    assert_eq!(order.bars.len(), 2, "two attempts");
    assert!(
        order.services.contains(&("payment".to_string(), 2, 0)),
        "{:?}",
        order.services
    );
    assert!(render_run(&report).contains("class=\"services\""));
}
