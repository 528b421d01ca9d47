//! Local time of a system: its timezone, local wall times as UTC instants, the times people type,
//! and local hours and days as UTC [start, end) buckets (DESIGN §3.3). A spring-forward day has 23
//! hour buckets, a fall-back day 25, each distinct; labels (`date`, `hour`) are local, keys are the
//! UTC start. A ground-floor module: rollups, live, the legacy copy and the config import all read
//! local time through it, and it imports nothing of theirs.

use chrono::{NaiveDate, NaiveTime, TimeZone, Timelike};
use chrono_tz::Tz;

pub const HOUR_MS: i64 = 3_600_000;

#[derive(Debug, Clone, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Bucket {
    pub start: i64,
    pub end: i64,
    /// Local date, YYYY-MM-DD.
    pub date: String,
    /// Local hour of the start (0-23); `None` for a day.
    pub hour: Option<i32>,
}

/// The zone an IANA name names: the one place a zone name is parsed (the catalog, the config
/// import and the legacy upgrade refuse, with their field, a name this refuses).
pub fn zone(name: &str) -> Result<Tz, String> {
    name.parse::<Tz>()
        .map_err(|_| format!("{name:?} is not an IANA timezone name (like Europe/Berlin)"))
}

/// A system's timezone. The catalog refuses a name [`zone`] refuses on every write, so only a
/// row edited by hand can have one: it is used as UTC, and said so.
pub fn timezone(system: &crate::installation::System) -> Tz {
    zone(&system.timezone).unwrap_or_else(|reason| {
        tracing::warn!(system = %system.system_id, "system.timezone: {reason}; local hours and days of this system are UTC's until it is set");
        chrono_tz::UTC
    })
}

/// UTC epoch ms of a local wall time; in a DST gap, the first instant after it.
pub fn local_ms(tz: Tz, day: NaiveDate, time: NaiveTime) -> i64 {
    let wall = day.and_time(time);
    match tz.from_local_datetime(&wall) {
        chrono::LocalResult::Single(t) => t.timestamp_millis(),
        chrono::LocalResult::Ambiguous(first, _) => first.timestamp_millis(),
        chrono::LocalResult::None => {
            // Spring forward: the wall time does not exist; take the hour after.
            let later = wall + chrono::Duration::hours(1);
            tz.from_local_datetime(&later)
                .earliest()
                .map(|t| t.timestamp_millis())
                .unwrap_or_else(|| later.and_utc().timestamp_millis())
        }
    }
}

fn local(tz: Tz, ts: i64) -> chrono::DateTime<Tz> {
    tz.timestamp_millis_opt(ts).single().unwrap_or_else(|| {
        chrono::DateTime::from_timestamp_millis(ts)
            .unwrap_or_default()
            .with_timezone(&tz)
    })
}

/// The local hour that contains `ts`.
pub fn hour_of(tz: Tz, ts: i64) -> Bucket {
    let at = local(tz, ts);
    let into_hour = i64::from(at.minute()) * 60_000
        + i64::from(at.second()) * 1000
        + i64::from(at.timestamp_subsec_millis());
    let start = ts - into_hour;
    let at_start = local(tz, start);
    Bucket {
        start,
        end: start + HOUR_MS,
        date: at_start.format("%Y-%m-%d").to_string(),
        hour: Some(at_start.hour() as i32),
    }
}

/// Every local hour that overlaps [from, to), in order.
pub fn hours(tz: Tz, from: i64, to: i64) -> Vec<Bucket> {
    let mut buckets = Vec::new();
    if from >= to {
        return buckets;
    }
    let mut bucket = hour_of(tz, from);
    while bucket.start < to {
        let next = bucket.end;
        buckets.push(bucket);
        bucket = hour_of(tz, next);
    }
    buckets
}

/// UTC epoch ms of local midnight starting `day`.
pub fn midnight(tz: Tz, day: NaiveDate) -> i64 {
    local_ms(tz, day, NaiveTime::MIN)
}

/// The local day with this date.
pub fn day(tz: Tz, date: NaiveDate) -> Bucket {
    let next = date.succ_opt().unwrap_or(date);
    Bucket {
        start: midnight(tz, date),
        end: midnight(tz, next),
        date: date.format("%Y-%m-%d").to_string(),
        hour: None,
    }
}

/// The local date of `ts`.
pub fn local_date(tz: Tz, ts: i64) -> NaiveDate {
    local(tz, ts).date_naive()
}

/// The local day an hour bucket belongs to.
pub fn day_of(tz: Tz, hour: &Bucket) -> Bucket {
    let date = NaiveDate::parse_from_str(&hour.date, "%Y-%m-%d")
        .unwrap_or_else(|_| local(tz, hour.start).date_naive());
    day(tz, date)
}

/// A time a person typed: RFC 3339 (`2025-06-01T00:00:00+05:00`), or a plain date
/// (`2025-06-01`), which means local midnight of that day in `tz`.
pub fn parse_time(text: &str, tz: Tz) -> Option<i64> {
    let text = text.trim();
    if let Ok(time) = chrono::DateTime::parse_from_rfc3339(text) {
        return Some(time.timestamp_millis());
    }
    NaiveDate::parse_from_str(text, "%Y-%m-%d")
        .ok()
        .map(|date| midnight(tz, date))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dst_days_have_23_and_25_distinct_hours() {
        let tz: Tz = "Europe/Berlin".parse().unwrap();
        let spring = day(tz, NaiveDate::from_ymd_opt(2025, 3, 30).unwrap());
        let fall = day(tz, NaiveDate::from_ymd_opt(2025, 10, 26).unwrap());
        assert_eq!(hours(tz, spring.start, spring.end).len(), 23);
        let fall_hours = hours(tz, fall.start, fall.end);
        assert_eq!(fall_hours.len(), 25);
        let labels: Vec<i32> = fall_hours.iter().map(|b| b.hour.unwrap()).collect();
        assert_eq!(&labels[..4], &[0, 1, 2, 2]);
        assert!(fall_hours.iter().all(|b| b.date == "2025-10-26"));
    }

    #[test]
    fn typed_times_are_rfc_3339_or_local_dates() {
        let karachi: Tz = "Asia/Karachi".parse().unwrap();
        let midnight_utc = chrono::Utc
            .with_ymd_and_hms(2025, 5, 31, 19, 0, 0)
            .unwrap()
            .timestamp_millis();
        assert_eq!(parse_time("2025-06-01", karachi), Some(midnight_utc));
        assert_eq!(
            parse_time("2025-06-01T00:00:00+05:00", karachi),
            Some(midnight_utc)
        );
        assert_eq!(
            parse_time("2025-06-01T00:00:00Z", karachi),
            Some(midnight_utc + 5 * HOUR_MS)
        );
        assert_eq!(parse_time("June 1st", karachi), None);
    }

    #[test]
    fn half_hour_zones_bucket_on_local_hours() {
        let tz: Tz = "Asia/Kolkata".parse().unwrap();
        // 2025-06-01 12:00 UTC is 17:30 local: the bucket starts at 17:00 local = 11:30 UTC.
        let ts = chrono::Utc
            .with_ymd_and_hms(2025, 6, 1, 12, 0, 0)
            .unwrap()
            .timestamp_millis();
        let bucket = hour_of(tz, ts);
        assert_eq!(bucket.start, ts - 30 * 60_000);
        assert_eq!(bucket.hour, Some(17));
    }
}
