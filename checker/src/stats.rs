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

/// Stats of a whole history.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Stats {
    /// From the first invocation to the last completion, in seconds.
    pub seconds: f64,
    /// One row per operation name, in first-seen order.
    pub by_f: Vec<OpStats>,
    /// Everything together.
    pub all: OpStats,
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
    }
}
