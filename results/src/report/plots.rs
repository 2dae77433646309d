//! The run's plots as data the template draws: latency over time per operation kind (a point
//! per operation, coloured ok/fail/info, on a log scale; above [`MAX_POINTS`] operations of a
//! kind, per-pixel columns of min–max and counts instead), throughput and availability over
//! time, and the fault windows shaded across them.

use faultline_checker::{History, Operation, Status};
use serde::Serialize;

use super::scale::{Frame, LogAxis, Tick, TimeAxis, r1};

/// Above this many operations of one kind the latency plot aggregates.
pub const MAX_POINTS: usize = 4000;

/// A fault window.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Band {
    /// Its left edge.
    pub x: f64,
    /// Its width.
    pub w: f64,
    /// The fault kind (`partition`, `kill`, ...).
    pub kind: String,
    /// For hover: the kind and when.
    pub title: String,
}

/// One operation's point.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Dot {
    /// Where.
    pub x: f64,
    /// Where.
    pub y: f64,
    /// `ok`, `fail` or `info`.
    pub status: &'static str,
}

/// One pixel column of one status, aggregated.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Column {
    /// Where.
    pub x: f64,
    /// The fastest's y.
    pub y1: f64,
    /// The slowest's y.
    pub y2: f64,
    /// `ok`, `fail` or `info`.
    pub status: &'static str,
    /// How many operations it stands for.
    pub count: usize,
}

/// The latency plot of one operation kind.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct LatencyPlot {
    /// The operation kind (`read`, `write`, ...).
    pub f: String,
    /// How many operations it shows.
    pub operations: usize,
    /// The drawing's frame.
    pub frame: Frame,
    /// Time ticks.
    pub x_ticks: Vec<Tick>,
    /// Latency ticks.
    pub y_ticks: Vec<Tick>,
    /// One point per operation (when not aggregated); `info` ones on the top edge.
    pub dots: Vec<Dot>,
    /// Columns, when aggregated.
    pub columns: Vec<Column>,
}

/// Throughput and availability over time.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct RatePlot {
    /// The drawing's frame.
    pub frame: Frame,
    /// Time ticks.
    pub x_ticks: Vec<Tick>,
    /// Throughput ticks (left).
    pub y_ticks: Vec<Tick>,
    /// Completed ok per second, as SVG polyline points.
    pub throughput: String,
    /// Share of the operations invoked in each slice that were answered (0–100 % on the
    /// plot's height), as SVG polyline points.
    pub availability: String,
}

/// The span the plots cover: from the first invocation to the last event, in nanoseconds.
pub fn span(history: &History) -> (u64, u64) {
    let start = history.ops.iter().map(|o| o.call).min().unwrap_or(0);
    let end = (history.ops.iter())
        .map(|o| o.ret.unwrap_or(o.call))
        .chain(history.nemesis.iter().map(|e| e.time))
        .max()
        .unwrap_or(start);
    (start, end.max(start + 1))
}

/// The fault windows across `frame` (the same for every plot of that width).
pub fn bands(history: &History, axis: &TimeAxis, end: u64) -> Vec<Band> {
    let mut bands = Vec::new();
    for (kind, windows) in faultline_checker::stats::fault_windows(history, end) {
        for (from, to) in windows {
            let (x1, x2) = (axis.x(from), axis.x(to));
            bands.push(Band {
                x: x1,
                w: r1((x2 - x1).max(1.0)),
                title: format!("{kind} {:.3}–{:.3} s", from as f64 / 1e9, to as f64 / 1e9),
                kind: kind.clone(),
            });
        }
    }
    bands
}

fn status_name(status: Status) -> &'static str {
    match status {
        Status::Ok | Status::Mismatch => "ok",
        Status::Fail => "fail",
        Status::Info => "info",
    }
}

/// Latency plots, one per operation kind in first-seen order.
pub fn latency_plots(history: &History, frame: Frame) -> Vec<LatencyPlot> {
    let (start, end) = span(history);
    let axis = TimeAxis::new(frame, start, end);
    let mut kinds: Vec<&str> = Vec::new();
    for op in &history.ops {
        if !kinds.contains(&op.f.as_str()) {
            kinds.push(&op.f);
        }
    }
    kinds
        .into_iter()
        .map(|f| {
            let ops: Vec<&Operation> = history.ops.iter().filter(|o| o.f == f).collect();
            latency_plot(f, &ops, frame, &axis)
        })
        .collect()
}

fn latency_ms(op: &Operation) -> Option<f64> {
    op.ret.map(|r| r.saturating_sub(op.call) as f64 / 1e6)
}

fn latency_plot(f: &str, ops: &[&Operation], frame: Frame, axis: &TimeAxis) -> LatencyPlot {
    let latencies = ops.iter().filter_map(|o| latency_ms(o));
    let (low, high) = latencies.fold((f64::MAX, 0f64), |(lo, hi), l| (lo.min(l), hi.max(l)));
    let log = LogAxis::new(frame, if low == f64::MAX { 0.1 } else { low }, high);
    let y_of = |op: &Operation| latency_ms(op).map_or(frame.top, |ms| log.y(ms));
    let mut plot = LatencyPlot {
        f: f.to_string(),
        operations: ops.len(),
        frame,
        x_ticks: axis.ticks(),
        y_ticks: log.ticks(),
        dots: Vec::new(),
        columns: Vec::new(),
    };
    if ops.len() <= MAX_POINTS {
        plot.dots = (ops.iter())
            .map(|op| Dot {
                x: axis.x(op.call),
                y: y_of(op),
                status: status_name(op.status),
            })
            .collect();
        return plot;
    }
    // One column per pixel and status: the fastest and slowest there, and how many.
    let mut cells: std::collections::BTreeMap<(i64, &'static str), (f64, f64, usize)> =
        std::collections::BTreeMap::new();
    for op in ops {
        let key = (axis.x(op.call).round() as i64, status_name(op.status));
        let y = y_of(op);
        let cell = cells.entry(key).or_insert((y, y, 0));
        cell.0 = cell.0.max(y);
        cell.1 = cell.1.min(y);
        cell.2 += 1;
    }
    plot.columns = (cells.into_iter())
        .map(|((x, status), (low_y, high_y, count))| Column {
            x: x as f64,
            y1: low_y,
            y2: high_y,
            status,
            count,
        })
        .collect();
    plot
}

/// Throughput and availability in about 100 slices of the run.
pub fn rate_plot(history: &History, frame: Frame) -> RatePlot {
    const SLICES: usize = 100;
    let (start, end) = span(history);
    let axis = TimeAxis::new(frame, start, end);
    let width = ((end - start) / SLICES as u64).max(1);
    let mut ok = [0usize; SLICES];
    let mut invoked = [0usize; SLICES];
    let mut answered = [0usize; SLICES];
    let slice = |t: u64| (((t.saturating_sub(start)) / width) as usize).min(SLICES - 1);
    for op in &history.ops {
        invoked[slice(op.call)] += 1;
        let good = matches!(op.status, Status::Ok | Status::Mismatch);
        answered[slice(op.call)] += good as usize;
        if let (true, Some(ret)) = (good, op.ret) {
            ok[slice(ret)] += 1;
        }
    }
    let per_s: Vec<f64> = ok
        .iter()
        .map(|&n| n as f64 / (width as f64 / 1e9))
        .collect();
    let top = per_s.iter().copied().fold(1.0, f64::max);
    let height = frame.bottom - frame.top;
    let mid = |i: usize| axis.x(start + width * i as u64 + width / 2);
    let line = |ys: Vec<Option<f64>>| {
        (ys.into_iter().enumerate())
            .filter_map(|(i, y)| y.map(|y| format!("{},{}", mid(i), r1(y))))
            .collect::<Vec<_>>()
            .join(" ")
    };
    let throughput = line(
        per_s
            .iter()
            .map(|v| Some(frame.bottom - v / top * height))
            .collect(),
    );
    let availability = line(
        (0..SLICES)
            .map(|i| {
                (invoked[i] > 0)
                    .then(|| frame.bottom - answered[i] as f64 / invoked[i] as f64 * height)
            })
            .collect(),
    );
    let y_ticks = [0.0, 0.5, 1.0]
        .into_iter()
        .map(|share| Tick {
            at: r1(frame.bottom - share * height),
            label: format!("{:.0}/s", top * share),
        })
        .collect();
    RatePlot {
        frame,
        x_ticks: axis.ticks(),
        y_ticks,
        throughput,
        availability,
    }
}
