//! The old app's timestamps as it wrote them: ISO 8601 with an offset (`2025-06-01T12:00:05.123456
//! +05:00`, a space instead of `T`, `Z`, `+0500`), or naive local time from its early versions.
//! Naive ones are read in a zone here; [`super::zone::OffsetIndex`] reads them with the offsets the
//! file itself used around them.

use chrono::{DateTime, NaiveDateTime, TimeZone};
use chrono_tz::Tz;

/// How a legacy timestamp was read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TimestampKind {
    WithOffset,
    Naive,
    /// In a repeated (fall-back) hour: read as the first of the two.
    NaiveAmbiguous,
    /// In a skipped (spring-forward) hour: read as that far past the jump.
    NaiveInGap,
}

/// A timestamp as written: an exact instant, or a wall-clock time that needs a zone.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Stamp {
    /// UTC epoch milliseconds.
    Exact(i64),
    Naive(NaiveDateTime),
}

/// Reads the text of a timestamp; `None` when it is not one.
pub(crate) fn read_stamp(text: &str) -> Option<Stamp> {
    let text = text.trim();
    if let Ok(parsed) = DateTime::parse_from_rfc3339(text) {
        return Some(Stamp::Exact(parsed.timestamp_millis()));
    }
    for format in [
        "%Y-%m-%d %H:%M:%S%.f%:z",
        "%Y-%m-%dT%H:%M:%S%.f%:z",
        "%Y-%m-%d %H:%M:%S%.f%#z",
        "%Y-%m-%dT%H:%M:%S%.f%#z",
    ] {
        if let Ok(parsed) = DateTime::parse_from_str(text, format) {
            return Some(Stamp::Exact(parsed.timestamp_millis()));
        }
    }
    [
        "%Y-%m-%dT%H:%M:%S%.f",
        "%Y-%m-%d %H:%M:%S%.f",
        "%Y-%m-%dT%H:%M",
        "%Y-%m-%d %H:%M",
    ]
    .iter()
    .find_map(|format| NaiveDateTime::parse_from_str(text, format).ok())
    .map(Stamp::Naive)
}

/// A wall-clock time read in `tz`.
pub(crate) fn in_zone(naive: NaiveDateTime, tz: Tz) -> (i64, TimestampKind) {
    match tz.from_local_datetime(&naive) {
        chrono::LocalResult::Single(local) => (local.timestamp_millis(), TimestampKind::Naive),
        chrono::LocalResult::Ambiguous(earliest, _) => {
            (earliest.timestamp_millis(), TimestampKind::NaiveAmbiguous)
        }
        chrono::LocalResult::None => {
            // A wall-clock time the DST jump skipped: read it as that far past the jump.
            let shifted = naive + chrono::Duration::hours(1);
            let ms = tz
                .from_local_datetime(&shifted)
                .earliest()
                .map(|local| local.timestamp_millis())
                .unwrap_or_else(|| shifted.and_utc().timestamp_millis());
            (ms, TimestampKind::NaiveInGap)
        }
    }
}

/// Reads an existing-app timestamp as UTC epoch milliseconds, naive local times in `timezone`.
pub fn parse_legacy_timestamp(text: &str, timezone: Tz) -> Option<(i64, TimestampKind)> {
    Some(match read_stamp(text)? {
        Stamp::Exact(ms) => (ms, TimestampKind::WithOffset),
        Stamp::Naive(naive) => in_zone(naive, timezone),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_with_offsets_naive_and_across_dst() {
        let karachi: Tz = "Asia/Karachi".parse().unwrap();
        let berlin: Tz = "Europe/Berlin".parse().unwrap();
        // 12:00:05.123456+05:00 is 07:00:05.123Z.
        let expected = chrono::Utc
            .with_ymd_and_hms(2025, 6, 1, 7, 0, 5)
            .unwrap()
            .timestamp_millis()
            + 123;
        assert_eq!(
            parse_legacy_timestamp("2025-06-01T12:00:05.123456+05:00", karachi),
            Some((expected, TimestampKind::WithOffset))
        );
        assert_eq!(
            parse_legacy_timestamp("2025-06-01 12:00:05.123456+05:00", berlin),
            Some((expected, TimestampKind::WithOffset))
        );
        assert_eq!(
            parse_legacy_timestamp("2025-06-01 12:00:05.123456+0500", berlin),
            Some((expected, TimestampKind::WithOffset))
        );
        assert_eq!(
            parse_legacy_timestamp("2025-06-01T12:00:05.123456", karachi),
            Some((expected, TimestampKind::Naive))
        );
        // Berlin falls back on 2025-10-26 at 03:00 CEST: 02:30 happens twice.
        let first = chrono::Utc
            .with_ymd_and_hms(2025, 10, 26, 0, 30, 0)
            .unwrap()
            .timestamp_millis();
        assert_eq!(
            parse_legacy_timestamp("2025-10-26T02:30:00", berlin),
            Some((first, TimestampKind::NaiveAmbiguous))
        );
        assert_eq!(
            parse_legacy_timestamp("2025-10-26T02:30:00+01:00", berlin).map(|p| p.0),
            Some(first + 3_600_000)
        );
        // Berlin springs forward on 2025-03-30 at 02:00: 02:30 does not exist.
        let after_gap = chrono::Utc
            .with_ymd_and_hms(2025, 3, 30, 1, 30, 0)
            .unwrap()
            .timestamp_millis();
        assert_eq!(
            parse_legacy_timestamp("2025-03-30 02:30:00", berlin),
            Some((after_gap, TimestampKind::NaiveInGap))
        );
        assert_eq!(parse_legacy_timestamp("yesterday", berlin), None);
    }
}
