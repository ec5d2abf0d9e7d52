//! How the pages write numbers and times.

use chrono::{DateTime, TimeZone, Utc};

/// `850ms`, `42s`, `3m 5s`, `2h 10m`, `3d 4h`.
pub(super) fn age_ms(ms: u64) -> String {
    let s = ms / 1000;
    match s {
        _ if ms < 1000 => format!("{ms}ms"),
        0..60 => format!("{s}s"),
        60..3600 => format!("{}m {}s", s / 60, s % 60),
        3600..86400 => format!("{}h {}m", s / 3600, (s % 3600) / 60),
        _ => format!("{}d {}h", s / 86400, (s % 86400) / 3600),
    }
}

/// A time in UTC, to the second: `2026-12-05 20:31:07 UTC`.
pub(super) fn time(at: DateTime<Utc>) -> String {
    at.format("%Y-%m-%d %H:%M:%S UTC").to_string()
}

/// A time given in Unix milliseconds.
pub(super) fn time_ms(ms: i64) -> String {
    Utc.timestamp_millis_opt(ms)
        .single()
        .map_or_else(|| ms.to_string(), time)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ages_read_at_a_glance() {
        assert_eq!(age_ms(850), "850ms");
        assert_eq!(age_ms(42_000), "42s");
        assert_eq!(age_ms(185_000), "3m 5s");
        assert_eq!(age_ms(7_800_000), "2h 10m");
        assert_eq!(age_ms(3 * 86_400_000 + 4 * 3_600_000), "3d 4h");
    }
}
