//! The collector's clock: what stamps readings and batches. It is the system's UTC clock, shifted
//! by `SOLARHUB_CLOCK_OFFSET_SECS` when that is set: a way to run a collector with a wrong clock,
//! as a site without NTP has (the fault suite's clock-skew test, or reproducing such a site).

use std::sync::OnceLock;

/// Now, in UTC epoch milliseconds, as this collector's clock says.
pub fn now_ms() -> i64 {
    static OFFSET_MS: OnceLock<i64> = OnceLock::new();
    let offset = *OFFSET_MS.get_or_init(|| {
        std::env::var("SOLARHUB_CLOCK_OFFSET_SECS")
            .ok()
            .and_then(|v| v.trim().parse::<f64>().ok())
            .map_or(0, |secs| (secs * 1000.0) as i64)
    });
    chrono::Utc::now().timestamp_millis() + offset
}
