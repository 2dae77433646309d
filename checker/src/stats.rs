//! Stats (DESIGN §3.3): per operation and overall, how many, how they ended, how long they
//! took, and the throughput. Latencies are of operations that completed `ok` or `fail`; an
//! `info` operation has no known end.

use serde::Serialize;

use crate::history::{History, Operation, Status};

/// The figures for one kind of operation (or all of them).
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct OpStats {
    /// The operation, or `all`.
    pub f: String,
    /// Invoked.
    pub count: usize,
    /// Completed ok.
    pub ok: usize,
    /// Answered by a working system: completed ok, or a `cas` whose comparison failed (a
    /// definite answer). Availability is this share of the count.
    pub answered: usize,
    /// Completed fail.
    pub fail: usize,
    /// Completed info (or never).
    pub info: usize,
    /// Latency percentiles and maximum, in milliseconds.
    pub p50_ms: f64,
    /// 95th percentile.
    pub p95_ms: f64,
    /// 99th percentile.
    pub p99_ms: f64,
    /// Maximum.
    pub max_ms: f64,
    /// Operations completed ok per second of the run.
    pub ok_per_s: f64,
}

/// The figures of the operations invoked while the cluster was healthy, or during one fault
/// kind: availability under a fault, measured.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct PeriodStats {
    /// `healthy`, or a fault kind (`partition`, `clock`, ...).
    pub period: String,
    /// How long the period lasted in all, in seconds.
    pub seconds: f64,
    /// Share of its operations a working system answered: completed ok, or a `cas` told its
    /// comparison failed. Any other `fail` (refused, unavailable) and every `info` counts
    /// against it.
    pub availability: f64,
    /// Its operations' figures (`ok_per_s` over the period's own duration).
    pub ops: OpStats,
}

/// Stats of a whole history.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Stats {
    /// From the first invocation to the last completion, in seconds.
    pub seconds: f64,
    /// One row per operation name, in first-seen order.
    pub by_f: Vec<OpStats>,
    /// Everything together.
    pub all: OpStats,
    /// Healthy periods, then each fault kind in first-seen order (only `healthy` when the
    /// nemesis did nothing).
    pub by_period: Vec<PeriodStats>,
}

/// The fault windows of a history: per kind, the (start, end) times it was in effect. A heal
/// event of `all` closes every window; a window still open at the end closes at `end`.
pub fn fault_windows(history: &History, end: u64) -> Vec<(String, Vec<(u64, u64)>)> {
    let mut windows: Vec<(String, Vec<(u64, u64)>)> = Vec::new();
    let mut open: Vec<(String, u64)> = Vec::new();
    for event in &history.nemesis {
        match event.value.get("action").and_then(|a| a.as_str()) {
            Some("start") if !open.iter().any(|(f, _)| *f == event.f) => {
                open.push((event.f.clone(), event.time));
            }
            Some("heal") => {
                let closing: Vec<(String, u64)> = if event.f == "all" {
                    std::mem::take(&mut open)
                } else {
                    let (closing, rest) = open.drain(..).partition(|(f, _)| *f == event.f);
                    open = rest;
                    closing
                };
                for (f, start) in closing {
                    add_window(&mut windows, f, (start, event.time));
                }
            }
            _ => {}
        }
    }
    for (f, start) in open {
        add_window(&mut windows, f, (start, end.max(start)));
    }
    windows
}

fn add_window(windows: &mut Vec<(String, Vec<(u64, u64)>)>, f: String, window: (u64, u64)) {
    match windows.iter_mut().find(|(k, _)| *k == f) {
        Some((_, list)) => list.push(window),
        None => windows.push((f, vec![window])),
    }
}

/// Total length of a set of intervals, overlaps counted once, clipped to [lo, hi].
fn covered(mut intervals: Vec<(u64, u64)>, lo: u64, hi: u64) -> u64 {
    intervals.sort_unstable();
    let (mut total, mut reach) = (0u64, lo);
    for (a, b) in intervals {
        let (a, b) = (a.max(reach).max(lo), b.min(hi));
        if b > a {
            total += b - a;
            reach = b;
        }
    }
    total
}

fn by_period(history: &History, start: u64, end: u64) -> Vec<PeriodStats> {
    let windows = fault_windows(history, end);
    let inside = |t: u64, list: &[(u64, u64)]| list.iter().any(|&(a, b)| a <= t && t < b);
    let period = |name: &str, ops: Vec<&Operation>, nanos: u64| {
        let seconds = nanos as f64 / 1e9;
        let stats = op_stats(name, &ops, seconds);
        PeriodStats {
            period: name.to_string(),
            seconds,
            availability: if stats.count > 0 {
                stats.answered as f64 / stats.count as f64
            } else {
                0.0
            },
            ops: stats,
        }
    };
    let all_windows: Vec<(u64, u64)> = windows.iter().flat_map(|(_, l)| l.clone()).collect();
    let healthy_ops: Vec<&Operation> = history
        .ops
        .iter()
        .filter(|o| !inside(o.call, &all_windows))
        .collect();
    let mut periods = vec![period(
        "healthy",
        healthy_ops,
        (end - start) - covered(all_windows.clone(), start, end),
    )];
    for (f, list) in &windows {
        let ops: Vec<&Operation> = history
            .ops
            .iter()
            .filter(|o| inside(o.call, list))
            .collect();
        periods.push(period(f, ops, covered(list.clone(), start, end)));
    }
    periods
}

fn percentile(sorted: &[u64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let rank = ((p * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
    sorted[rank - 1] as f64 / 1e6
}

fn op_stats(f: &str, ops: &[&Operation], seconds: f64) -> OpStats {
    let count_of = |s: Status| ops.iter().filter(|o| o.status == s).count();
    let mut latencies: Vec<u64> = ops
        .iter()
        .filter_map(|o| o.ret.map(|r| r - o.call))
        .collect();
    latencies.sort_unstable();
    let ok = count_of(Status::Ok);
    OpStats {
        f: f.to_string(),
        count: ops.len(),
        ok,
        answered: ok + count_of(Status::Mismatch),
        fail: count_of(Status::Fail) + count_of(Status::Mismatch),
        info: count_of(Status::Info),
        p50_ms: percentile(&latencies, 0.50),
        p95_ms: percentile(&latencies, 0.95),
        p99_ms: percentile(&latencies, 0.99),
        max_ms: latencies.last().map_or(0.0, |&l| l as f64 / 1e6),
        ok_per_s: if seconds > 0.0 {
            ok as f64 / seconds
        } else {
            0.0
        },
    }
}

/// Computes the stats of a history whose times are nanoseconds.
pub fn stats(history: &History) -> Stats {
    let start = history.ops.iter().map(|o| o.call).min().unwrap_or(0);
    let end = history
        .ops
        .iter()
        .map(|o| o.ret.unwrap_or(o.call))
        .max()
        .unwrap_or(0);
    let seconds = (end - start) as f64 / 1e9;
    let mut names: Vec<&str> = Vec::new();
    for op in &history.ops {
        if !names.contains(&op.f.as_str()) {
            names.push(&op.f);
        }
    }
    let by_f = names
        .iter()
        .map(|f| {
            let ops: Vec<&Operation> = history.ops.iter().filter(|o| o.f == *f).collect();
            op_stats(f, &ops, seconds)
        })
        .collect();
    let all: Vec<&Operation> = history.ops.iter().collect();
    Stats {
        seconds,
        by_f,
        all: op_stats("all", &all, seconds),
        by_period: by_period(history, start, end),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_and_percentiles() {
        let text = [
            r#"{"time":0,"process":0,"type":"invoke","f":"read","value":null}"#,
            r#"{"time":1000000,"process":0,"type":"ok","f":"read","value":1}"#,
            r#"{"time":1000000,"process":0,"type":"invoke","f":"write","value":2}"#,
            r#"{"time":4000000,"process":0,"type":"fail","f":"write","value":2}"#,
            r#"{"time":4000000,"process":0,"type":"invoke","f":"write","value":3}"#,
            r#"{"time":1000000000,"process":0,"type":"info","f":"write","value":3}"#,
        ]
        .join("\n");
        let h = crate::format::read_str(&text, None).unwrap().history;
        let s = stats(&h);
        assert_eq!(s.by_f.len(), 2);
        assert_eq!(
            (s.all.count, s.all.ok, s.all.fail, s.all.info),
            (3, 1, 1, 1)
        );
        assert_eq!(s.by_f[0].p50_ms, 1.0);
        assert_eq!(s.by_f[1].max_ms, 3.0);
        assert_eq!(s.seconds, 0.004);
        assert_eq!(s.by_period.len(), 1);
        assert_eq!(s.by_period[0].ops.count, 3);
    }

    #[test]
    fn operations_fall_into_fault_windows() {
        let text = [
            r#"{"time":0,"process":0,"type":"invoke","f":"read","value":null}"#,
            r#"{"time":10,"process":0,"type":"ok","f":"read","value":1}"#,
            r#"{"time":20,"process":"nemesis","type":"info","f":"partition","value":{"action":"start"}}"#,
            r#"{"time":30,"process":0,"type":"invoke","f":"write","value":2}"#,
            r#"{"time":40,"process":0,"type":"fail","f":"write","value":2}"#,
            r#"{"time":50,"process":"nemesis","type":"info","f":"partition","value":{"action":"heal"}}"#,
            r#"{"time":60,"process":0,"type":"invoke","f":"write","value":3}"#,
            r#"{"time":70,"process":"nemesis","type":"info","f":"clock","value":{"action":"start"}}"#,
            r#"{"time":80,"process":0,"type":"ok","f":"write","value":3}"#,
            r#"{"time":90,"process":0,"type":"invoke","f":"write","value":4}"#,
            r#"{"time":100,"process":0,"type":"ok","f":"write","value":4}"#,
        ]
        .join("\n");
        let h = crate::format::read_str(&text, None).unwrap().history;
        let p = stats(&h).by_period;
        let names: Vec<&str> = p.iter().map(|p| p.period.as_str()).collect();
        assert_eq!(names, ["healthy", "partition", "clock"]);
        assert_eq!((p[0].ops.count, p[0].ops.ok), (2, 2));
        assert_eq!((p[1].ops.count, p[1].ops.fail), (1, 1));
        assert_eq!(p[1].availability, 0.0);
        assert_eq!(p[2].ops.count, 1);
        assert_eq!(p[1].seconds, 30e-9);
        assert_eq!(p[2].seconds, 30e-9, "an open window closes at the end");
        assert_eq!(p[0].seconds, 40e-9);
    }

    /// A cas told its comparison failed is an answer from a working system: with nothing
    /// else failing, the healthy period is 100% available. See: issue 22.
    #[test]
    fn a_cas_mismatch_counts_as_available() {
        let text = [
            r#"{"time":0,"process":0,"type":"invoke","f":"cas","value":[1,2]}"#,
            r#"{"time":10,"process":0,"type":"fail","f":"cas","value":[1,2],"error":"mismatch"}"#,
            r#"{"time":20,"process":0,"type":"invoke","f":"write","value":1}"#,
            r#"{"time":30,"process":0,"type":"ok","f":"write","value":1}"#,
            r#"{"time":40,"process":1,"type":"invoke","f":"write","value":3}"#,
            r#"{"time":50,"process":"nemesis","type":"info","f":"partition","value":{"action":"start"}}"#,
            r#"{"time":60,"process":1,"type":"fail","f":"write","value":3,"error":"unavailable"}"#,
            r#"{"time":70,"process":0,"type":"invoke","f":"write","value":4}"#,
            r#"{"time":80,"process":0,"type":"fail","f":"write","value":4,"error":"unavailable"}"#,
        ]
        .join("\n");
        let h = crate::format::read_str(&text, None).unwrap().history;
        let s = stats(&h);
        assert_eq!((s.all.ok, s.all.answered, s.all.fail), (1, 2, 3));
        let p = &s.by_period;
        assert_eq!(p[0].period, "healthy");
        assert_eq!((p[0].ops.count, p[0].ops.answered), (3, 2));
        assert_eq!(p[1].period, "partition");
        assert_eq!(
            p[1].availability, 0.0,
            "an unavailable write is not an answer"
        );
        let only_mismatch = text.lines().take(4).collect::<Vec<_>>().join("\n");
        let h = crate::format::read_str(&only_mismatch, None)
            .unwrap()
            .history;
        assert_eq!(stats(&h).by_period[0].availability, 1.0);
    }
}
