//! Mapping times and values to SVG coordinates: the plots' frame, a linear time axis and a
//! log latency axis, with ticks a person can read. Coordinates are rounded to a tenth of a
//! pixel: a report of a million operations stays small.

use serde::Serialize;

/// A drawing's size and its plot area inside the margins.
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
pub struct Frame {
    /// The whole drawing.
    pub width: f64,
    /// The whole drawing.
    pub height: f64,
    /// The plot area's left edge.
    pub left: f64,
    /// The plot area's top edge.
    pub top: f64,
    /// The plot area's right edge.
    pub right: f64,
    /// The plot area's bottom edge.
    pub bottom: f64,
}

impl Frame {
    /// A drawing `width` × `height` with room for axis labels left and below.
    pub fn new(width: f64, height: f64) -> Self {
        Frame {
            width,
            height,
            left: 64.0,
            top: 10.0,
            right: width - 16.0,
            bottom: height - 26.0,
        }
    }

    /// The plot area's width.
    pub fn plot_width(&self) -> f64 {
        self.right - self.left
    }
}

/// A labelled tick on an axis.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Tick {
    /// Where, in drawing coordinates.
    pub at: f64,
    /// What it says.
    pub label: String,
}

/// `x` rounded to a tenth.
pub fn r1(x: f64) -> f64 {
    (x * 10.0).round() / 10.0
}

/// Time (nanoseconds since the run began) along the x axis of `frame`.
#[derive(Clone, Copy, Debug)]
pub struct TimeAxis {
    frame: Frame,
    start: u64,
    end: u64,
}

impl TimeAxis {
    /// The axis from `start` to `end` (nanoseconds) across `frame`.
    pub fn new(frame: Frame, start: u64, end: u64) -> Self {
        TimeAxis {
            frame,
            start,
            end: end.max(start + 1),
        }
    }

    /// The x of time `t`, clamped to the plot.
    pub fn x(&self, t: u64) -> f64 {
        let t = t.clamp(self.start, self.end);
        let share = (t - self.start) as f64 / (self.end - self.start) as f64;
        r1(self.frame.left + share * self.frame.plot_width())
    }

    /// Ticks at round seconds (or fractions of one for short spans), about eight of them.
    pub fn ticks(&self) -> Vec<Tick> {
        let span = (self.end - self.start) as f64 / 1e9;
        let step = nice_step(span / 8.0);
        let mut ticks = Vec::new();
        let mut s = (self.start as f64 / 1e9 / step).ceil() * step;
        while s * 1e9 <= self.end as f64 {
            let label = if step >= 1.0 {
                format!("{s:.0} s")
            } else if step >= 0.1 {
                format!("{s:.1} s")
            } else if step >= 0.001 {
                format!("{:.0} ms", s * 1e3)
            } else {
                format!("{:.2} ms", s * 1e3)
            };
            ticks.push(Tick {
                at: self.x((s * 1e9) as u64),
                label,
            });
            s += step;
        }
        ticks
    }
}

/// A round step (1, 2 or 5 times a power of ten) of at least `raw`.
fn nice_step(raw: f64) -> f64 {
    let raw = raw.max(1e-3);
    let power = 10f64.powf(raw.log10().floor());
    [1.0, 2.0, 5.0, 10.0]
        .into_iter()
        .map(|m| m * power)
        .find(|s| *s >= raw)
        .unwrap_or(10.0 * power)
}

/// Latency in milliseconds along the y axis of `frame`, on a log scale.
#[derive(Clone, Copy, Debug)]
pub struct LogAxis {
    frame: Frame,
    low: f64,
    high: f64,
}

impl LogAxis {
    /// The axis covering `low..=high` milliseconds (widened to whole powers of ten, a value on
    /// a power of ten a decade inside, off the axis line).
    pub fn new(frame: Frame, low: f64, high: f64) -> Self {
        let low = 10f64.powf((low.max(0.01) * 0.999).log10().floor());
        let high = 10f64.powf((high.max(low * 10.0) * 1.001).log10().ceil());
        LogAxis { frame, low, high }
    }

    /// The y of `ms`.
    pub fn y(&self, ms: f64) -> f64 {
        let ms = ms.clamp(self.low, self.high);
        let share = (ms.log10() - self.low.log10()) / (self.high.log10() - self.low.log10());
        r1(self.frame.bottom - share * (self.frame.bottom - self.frame.top))
    }

    /// A tick at each power of ten.
    pub fn ticks(&self) -> Vec<Tick> {
        let mut ticks = Vec::new();
        let mut v = self.low;
        while v <= self.high * 1.0001 {
            let label = if v >= 1000.0 {
                format!("{:.0} s", v / 1000.0)
            } else if v >= 1.0 {
                format!("{v:.0} ms")
            } else {
                format!("{v} ms")
            };
            ticks.push(Tick {
                at: self.y(v),
                label,
            });
            v *= 10.0;
        }
        ticks
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn axes_map_their_ends_to_the_plots_edges() {
        let f = Frame::new(1000.0, 200.0);
        let t = TimeAxis::new(f, 0, 10_000_000_000);
        assert_eq!(
            (t.x(0), t.x(10_000_000_000), t.x(u64::MAX)),
            (f.left, f.right, f.right)
        );
        let labels: Vec<String> = t.ticks().into_iter().map(|t| t.label).collect();
        assert_eq!(labels.first().map(String::as_str), Some("0 s"));
        assert!(labels.len() >= 5 && labels.len() <= 11, "{labels:?}");
        let short = TimeAxis::new(f, 0, 8_000_000).ticks();
        let labels: Vec<&str> = short.iter().map(|t| t.label.as_str()).collect();
        assert_eq!(
            labels,
            [
                "0 ms", "1 ms", "2 ms", "3 ms", "4 ms", "5 ms", "6 ms", "7 ms", "8 ms"
            ]
        );
        let l = LogAxis::new(f, 0.3, 450.0);
        assert_eq!((l.y(0.1), l.y(1000.0)), (f.bottom, f.top));
        let labels: Vec<String> = l.ticks().into_iter().map(|t| t.label).collect();
        assert_eq!(labels, ["0.1 ms", "1 ms", "10 ms", "100 ms", "1 s"]);
    }
}
