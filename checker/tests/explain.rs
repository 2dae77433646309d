//! The text people read when a check fails, pinned by snapshots.

use faultline_checker::linearizability::{LinearizabilityReport, PREFIX_SHOWN};
use faultline_checker::{Options, format, linearizability};

fn report(text: &str) -> LinearizabilityReport {
    let history = format::read_str(text, None).unwrap().history;
    linearizability::check(&history, &Options::default()).unwrap()
}

fn explain_report(report: &LinearizabilityReport) -> String {
    report.verdict().explanation
}

#[test]
fn a_stale_read_explained() {
    let report = report(concat!(
        "INFO  jepsen.util - 0\t:invoke\t:write\t1\n",
        "INFO  jepsen.util - 0\t:ok\t:write\t1\n",
        "INFO  jepsen.util - 1\t:invoke\t:cas\t[1 2]\n",
        "INFO  jepsen.util - 2\t:invoke\t:write\t3\n",
        "INFO  jepsen.util - 1\t:ok\t:cas\t[1 2]\n",
        "INFO  jepsen.util - 2\t:info\t:write\t:timed-out\n",
        "INFO  jepsen.util - 0\t:invoke\t:read\tnil\n",
        "INFO  jepsen.util - 0\t:ok\t:read\t1\n",
    ));
    insta::assert_snapshot!(explain_report(&report));
}

#[test]
fn a_long_prefix_is_cut_to_the_last_operations() {
    let mut text = String::new();
    for i in 0..50 {
        text.push_str(&format!(
            "{{\"process\":0,\"type\":\"invoke\",\"f\":\"write\",\"value\":{i}}}\n\
             {{\"process\":0,\"type\":\"ok\",\"f\":\"write\",\"value\":{i}}}\n"
        ));
    }
    text.push_str("{\"process\":1,\"type\":\"invoke\",\"f\":\"read\",\"value\":null}\n");
    // A value never written: no proof without a search, so the search explains it.
    text.push_str("{\"process\":1,\"type\":\"ok\",\"f\":\"read\",\"value\":-1}\n");
    let report = report(&text);
    assert_eq!(report.failures[0].prefix.len(), 50);
    let explanation = explain_report(&report);
    assert!(explanation.contains("50 operation(s), the last 10 shown"));
    assert_eq!(explanation.matches(" ⇒ ").count(), PREFIX_SHOWN);
    insta::assert_snapshot!(explanation);
}
