//! Plain-text output: aligned tables, short durations, timestamps.
//!
//! A table here is a few dozen lines; a table crate would bring box drawing and
//! terminal probing this tool does not want (its output is also read by scripts).

use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// How a column's cells line up.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Align {
    Left,
    Right,
}

/// A table of text cells with a header row, columns separated by two spaces.
#[derive(Debug)]
pub struct Table {
    columns: Vec<(String, Align)>,
    rows: Vec<Vec<String>>,
}

impl Table {
    pub fn new(columns: &[(&str, Align)]) -> Self {
        Self {
            columns: columns
                .iter()
                .map(|(name, align)| ((*name).to_owned(), *align))
                .collect(),
            rows: Vec::new(),
        }
    }

    /// Adds a row; missing cells are blank, extra cells are dropped.
    pub fn row(&mut self, cells: Vec<String>) {
        self.rows.push(cells);
    }

    /// The table as lines ending in `\n`, without trailing spaces.
    pub fn render(&self) -> String {
        let width = |s: &str| s.chars().count();
        let widths: Vec<usize> = self
            .columns
            .iter()
            .enumerate()
            .map(|(i, (name, _))| {
                self.rows
                    .iter()
                    .filter_map(|r| r.get(i))
                    .map(|c| width(c))
                    .chain([width(name)])
                    .max()
                    .unwrap_or(0)
            })
            .collect();
        let mut out = String::new();
        let header: Vec<&str> = self.columns.iter().map(|(n, _)| n.as_str()).collect();
        for cells in std::iter::once(header).chain(
            self.rows
                .iter()
                .map(|r| r.iter().map(String::as_str).collect()),
        ) {
            let mut line = String::new();
            for (i, (_, align)) in self.columns.iter().enumerate() {
                let cell = cells.get(i).copied().unwrap_or("");
                let pad = widths[i].saturating_sub(width(cell));
                if i > 0 {
                    line.push_str("  ");
                }
                match align {
                    Align::Left => {
                        line.push_str(cell);
                        line.extend(std::iter::repeat_n(' ', pad));
                    }
                    Align::Right => {
                        line.extend(std::iter::repeat_n(' ', pad));
                        line.push_str(cell);
                    }
                }
            }
            out.push_str(line.trim_end());
            out.push('\n');
        }
        out
    }
}

/// A duration in at most two units: `850ms`, `12s`, `3m12s`, `2h05m`, `3d04h`.
pub fn short_duration(d: Duration) -> String {
    let ms = d.as_millis();
    let s = d.as_secs();
    match s {
        0 => format!("{ms}ms"),
        1..60 => format!("{s}s"),
        60..3600 => format!("{}m{:02}s", s / 60, s % 60),
        3600..86_400 => format!("{}h{:02}m", s / 3600, s % 3600 / 60),
        _ => format!("{}d{:02}h", s / 86_400, s % 86_400 / 3600),
    }
}

/// A Unix-millisecond time as RFC 3339 UTC to the second (`2026-05-01T12:00:03Z`).
pub fn timestamp(unix_ms: i64) -> String {
    if unix_ms <= 0 {
        return "-".to_owned();
    }
    let at = UNIX_EPOCH + Duration::from_millis(unix_ms as u64);
    humantime::format_rfc3339_seconds(at).to_string()
}

/// A timestamp followed by how long ago it was: `2026-05-01T12:00:03Z (3m12s ago)`.
pub fn timestamp_with_age(unix_ms: i64, now: SystemTime) -> String {
    if unix_ms <= 0 {
        return "-".to_owned();
    }
    let at = UNIX_EPOCH + Duration::from_millis(unix_ms as u64);
    match now.duration_since(at) {
        Ok(age) => format!("{} ({} ago)", timestamp(unix_ms), short_duration(age)),
        Err(_) => timestamp(unix_ms),
    }
}

/// One line of at most `max` characters: newlines folded, an ellipsis when cut.
pub fn one_line(text: &str, max: usize) -> String {
    let folded = text.split_whitespace().collect::<Vec<_>>().join(" ");
    if folded.chars().count() <= max {
        return folded;
    }
    let mut cut: String = folded.chars().take(max.saturating_sub(1)).collect();
    cut.push('…');
    cut
}

/// `1 job`, `2 jobs`.
pub fn count(n: u64, singular: &str, plural: &str) -> String {
    format!("{n} {}", if n == 1 { singular } else { plural })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tables_align_numbers_right_and_text_left() {
        let mut t = Table::new(&[("QUEUE", Align::Left), ("WAITING", Align::Right)]);
        t.row(vec!["emails".into(), "3".into()]);
        t.row(vec!["qr".into(), "1200".into()]);
        assert_eq!(
            t.render(),
            "QUEUE   WAITING\nemails        3\nqr         1200\n"
        );
    }

    #[test]
    fn durations_are_short_and_readable() {
        assert_eq!(short_duration(Duration::from_millis(850)), "850ms");
        assert_eq!(short_duration(Duration::from_secs(12)), "12s");
        assert_eq!(short_duration(Duration::from_secs(192)), "3m12s");
        assert_eq!(short_duration(Duration::from_secs(2 * 3600 + 300)), "2h05m");
        assert_eq!(
            short_duration(Duration::from_secs(3 * 86_400 + 4 * 3600)),
            "3d04h"
        );
    }

    #[test]
    fn long_errors_become_one_short_line() {
        assert_eq!(one_line("a\n  b", 10), "a b");
        assert_eq!(one_line("abcdefghijkl", 5), "abcd…");
    }

    #[test]
    fn timestamps_are_utc_and_show_their_age() {
        assert_eq!(timestamp(1_700_000_000_000), "2023-11-14T22:13:20Z");
        let now = UNIX_EPOCH + Duration::from_millis(1_700_000_012_000);
        assert_eq!(
            timestamp_with_age(1_700_000_000_000, now),
            "2023-11-14T22:13:20Z (12s ago)"
        );
        assert_eq!(timestamp(0), "-");
    }
}
