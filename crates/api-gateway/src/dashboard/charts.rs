//! A queue's charts as inline SVG, drawn on the server from its per-minute
//! history (`Admin::history`): completed jobs, failed runs and the mean wait,
//! over the last hour (a bar per minute) or the last day (a bar per 30 minutes).

use std::fmt::Write;

use maud::{Markup, PreEscaped, html};
use queue_core::MinuteStats;
use serde::Deserialize;

use super::format;

/// The window a chart covers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub(super) enum Range {
    #[default]
    Hour,
    Day,
}

impl Range {
    pub const ALL: [Range; 2] = [Range::Hour, Range::Day];

    pub fn as_str(self) -> &'static str {
        match self {
            Range::Hour => "hour",
            Range::Day => "day",
        }
    }

    pub fn label(self) -> &'static str {
        match self {
            Range::Hour => "Last hour",
            Range::Day => "Last day",
        }
    }

    /// Minutes it covers, and minutes per bar.
    fn shape(self) -> (usize, usize) {
        match self {
            Range::Hour => (60, 1),
            Range::Day => (24 * 60, 30),
        }
    }

    fn per(self) -> &'static str {
        match self {
            Range::Hour => "per minute",
            Range::Day => "per 30 minutes",
        }
    }
}

/// What a chart shows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Metric {
    Completed,
    Failed,
    Wait,
}

impl Metric {
    pub const ALL: [Metric; 3] = [Metric::Completed, Metric::Failed, Metric::Wait];

    pub fn as_str(self) -> &'static str {
        match self {
            Metric::Completed => "completed",
            Metric::Failed => "failed",
            Metric::Wait => "wait",
        }
    }
}

/// The key a page and the live stream name a chart by: `qr:hour:failed`.
pub(super) fn key(queue: &str, range: Range, metric: Metric) -> String {
    format!("{queue}:{}:{}", range.as_str(), metric.as_str())
}

#[derive(Debug, Clone, Copy, Default)]
struct Bucket {
    completed: u64,
    failed: u64,
    wait_ms_total: u64,
    waited: u64,
}

/// The last `range` of `history` (oldest first, any length), in bars.
fn buckets(history: &[MinuteStats], range: Range) -> Vec<Bucket> {
    let (minutes, per_bar) = range.shape();
    let recent = &history[history.len().saturating_sub(minutes)..];
    // Pad the front when the history is shorter than the range.
    let missing = minutes - recent.len();
    let mut bars = vec![Bucket::default(); minutes / per_bar];
    for (i, m) in recent.iter().enumerate() {
        let b = &mut bars[(missing + i) / per_bar];
        b.completed += m.completed;
        b.failed += m.failed;
        b.wait_ms_total += m.wait_ms_total;
        b.waited += m.waited;
    }
    bars
}

const WIDTH: f64 = 320.0;
const HEIGHT: f64 = 96.0;
const LEFT: f64 = 4.0;
const TOP: f64 = 14.0;
const BOTTOM: f64 = 80.0;

/// One chart's `<svg>`.
pub(super) fn svg(history: &[MinuteStats], range: Range, metric: Metric) -> Markup {
    let bars = buckets(history, range);
    let values: Vec<Option<u64>> = bars
        .iter()
        .map(|b| match metric {
            Metric::Completed => Some(b.completed),
            Metric::Failed => Some(b.failed),
            Metric::Wait => (b.waited > 0).then(|| b.wait_ms_total / b.waited),
        })
        .collect();
    let peak = values.iter().flatten().copied().max().unwrap_or(0);
    let show = |v: u64| match metric {
        Metric::Wait => format::age_ms(v),
        _ => v.to_string(),
    };
    let summary = match metric {
        Metric::Wait => {
            let (total, n) = bars
                .iter()
                .fold((0, 0), |(t, n), b| (t + b.wait_ms_total, n + b.waited));
            match total.checked_div(n) {
                Some(mean) => format!(
                    "mean wait {}, worst {} {}",
                    format::age_ms(mean),
                    show(peak),
                    range.per()
                ),
                None => "no job ran".to_owned(),
            }
        }
        _ => {
            let total: u64 = values.iter().flatten().sum();
            format!("{total} in all, at most {peak} {}", range.per())
        }
    };
    let class = match metric {
        Metric::Completed => "bar",
        Metric::Failed => "bar failed",
        Metric::Wait => "bar wait",
    };
    let step = (WIDTH - 2.0 * LEFT) / values.len() as f64;
    let scale = if peak == 0 {
        0.0
    } else {
        (BOTTOM - TOP) / peak as f64
    };
    let mut rects = String::new();
    for (i, v) in values.iter().enumerate() {
        let Some(v) = *v else { continue };
        if v == 0 {
            continue;
        }
        // At least a pixel, so a small count still shows next to a large one.
        let h = (v as f64 * scale).max(1.0);
        let _ = write!(
            rects,
            r#"<rect class="{class}" x="{:.1}" y="{:.1}" width="{:.1}" height="{h:.1}"><title>{}</title></rect>"#,
            LEFT + i as f64 * step + step * 0.1,
            BOTTOM - h,
            (step * 0.8).max(0.5),
            show(v),
        );
    }
    let start = match range {
        Range::Hour => "−60 min",
        Range::Day => "−24 h",
    };
    html! {
        svg viewBox={ "0 0 " (WIDTH) " " (HEIGHT) } role="img" aria-label=(summary)
            xmlns="http://www.w3.org/2000/svg" {
            text x=(LEFT) y="10" { "peak " (show(peak)) }
            line.axis x1=(LEFT) y1=(BOTTOM) x2={ (WIDTH - LEFT) } y2=(BOTTOM) {}
            (PreEscaped(rects))
            text x=(LEFT) y={ (HEIGHT - 2.0) } { (start) }
            text x={ (WIDTH - LEFT) } y={ (HEIGHT - 2.0) } text-anchor="end" { "now" }
        }
    }
}

/// A queue's three charts over `range`, each in a `[data-chart]` box the live
/// stream refreshes.
pub(super) fn figures(queue: &str, history: &[MinuteStats], range: Range) -> Markup {
    html! {
        @for metric in Metric::ALL {
            figure.chart {
                figcaption { (match metric {
                    Metric::Completed => "Completed",
                    Metric::Failed => "Failed runs",
                    Metric::Wait => "Mean wait",
                }) " " span.hint { (range.per()) } }
                div data-chart=(key(queue, range, metric)) { (svg(history, range, metric)) }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn minute(minute: u64, completed: u64, failed: u64) -> MinuteStats {
        MinuteStats {
            minute,
            completed,
            failed,
            wait_ms_total: completed * 100,
            waited: completed,
            ..MinuteStats::default()
        }
    }

    #[test]
    fn a_day_is_48_bars_of_30_minutes_and_an_hour_60_bars_of_one() {
        let history: Vec<_> = (0..1440).map(|m| minute(m, 1, m % 2)).collect();
        let day = buckets(&history, Range::Day);
        assert_eq!(day.len(), 48);
        assert!(day.iter().all(|b| b.completed == 30 && b.failed == 15));
        let hour = buckets(&history, Range::Hour);
        assert_eq!(hour.len(), 60);
        assert_eq!(
            hour.last().map(|b| b.failed),
            Some(1),
            "the current minute last"
        );
    }

    #[test]
    fn a_short_history_fills_the_right_end() {
        let history = [minute(7, 3, 0), minute(8, 5, 2)];
        let hour = buckets(&history, Range::Hour);
        assert_eq!(hour[58].completed, 3);
        assert_eq!(hour[59].completed, 5);
        assert!(hour[..58].iter().all(|b| b.completed == 0));
    }

    #[test]
    fn a_chart_says_what_it_shows_for_screen_readers() {
        let history = [minute(7, 3, 0), minute(8, 5, 2)];
        let svg = svg(&history, Range::Hour, Metric::Completed).into_string();
        assert!(
            svg.contains(r#"aria-label="8 in all, at most 5 per minute""#),
            "{svg}"
        );
        assert_eq!(svg.matches("<rect").count(), 2, "{svg}");
        let svg = svg_of_wait(&history);
        assert!(svg.contains("mean wait 100ms"), "{svg}");
    }

    fn svg_of_wait(history: &[MinuteStats]) -> String {
        svg(history, Range::Hour, Metric::Wait).into_string()
    }
}
