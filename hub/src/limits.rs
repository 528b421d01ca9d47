//! What the hub accepts from anyone, in one place: ids and text, numeric values, times. The admin
//! API (`catalog::resources`) and ingest (`ingest::check`) both ask these rules, so a value one
//! refuses the other cannot store. Each rule says what is wrong in words a caller can act on.

use solarhub_proto::contract::{Field, plausible_range};

/// The oldest time a reading may carry: 2000-01-01T00:00:00Z (no inverter this hub reads was
/// logging before it; year 0001 and `i64::MIN` are clocks gone wrong).
pub const EARLIEST_MS: i64 = 946_684_800_000;
/// The longest free text (names, status words) in characters.
pub const MAX_TEXT_CHARS: usize = 200;
/// The most of a refused id or text an answer repeats back.
const SHOWN_CHARS: usize = 64;

/// Why `text` cannot be stored, or `None`: too long, or holding a control character (a NUL byte
/// is refused by Postgres and truncates strings in C clients; a newline forges log lines).
pub fn text_problem(text: &str) -> Option<String> {
    let chars = text.chars().count();
    if chars > MAX_TEXT_CHARS {
        return Some(format!(
            "must be at most {MAX_TEXT_CHARS} characters, got {chars}"
        ));
    }
    text.chars().find(|c| c.is_control()).map(|c| {
        format!(
            "must not contain control characters, found U+{:04X}",
            c as u32
        )
    })
}

/// `text` as an answer may repeat it: at most 64 characters, control characters escaped.
pub fn shown(text: &str) -> String {
    let mut shown: String = text
        .chars()
        .take(SHOWN_CHARS)
        .flat_map(char::escape_debug)
        .collect();
    if text.chars().count() > SHOWN_CHARS {
        shown.push('…');
    }
    shown
}

/// What is wrong with a numeric value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ValueProblem {
    /// NaN or an infinity.
    NotFinite,
    /// Outside the plausible range of its field's unit (`contract::plausible_range`).
    OutOfRange,
}

/// Why `value` of `field` cannot be stored, or `None`.
pub fn value_problem(field: &Field, value: f64) -> Option<(ValueProblem, String)> {
    if !value.is_finite() {
        return Some((
            ValueProblem::NotFinite,
            format!("{} is {value}, not a finite number", field.name),
        ));
    }
    let range = plausible_range(field.unit)?;
    (!range.contains(&value)).then(|| {
        (
            ValueProblem::OutOfRange,
            format!(
                "{} = {value} {} is outside {} to {} {}",
                field.name,
                field.unit,
                range.start(),
                range.end(),
                field.unit
            ),
        )
    })
}

/// Why a position in a pack (a battery's or a cell's index, from 1) is not one, or `None`.
pub fn index_problem(index: i32) -> Option<String> {
    (index < 1).then(|| format!("must be 1 or more, got {index}"))
}

/// What one call may cost, the limits every hub serves with (DESIGN §7): below `auth` and `grpc`,
/// which both ask.
pub mod rpc {
    use std::time::Duration;

    /// The largest request a catalog, live or history call may send.
    pub const MAX_REQUEST_BYTES: usize = 4 * 1024 * 1024;
    /// The largest telemetry batch (a few thousand readings with cells fit in a few MiB).
    pub const MAX_BATCH_BYTES: usize = 16 * 1024 * 1024;
    /// The largest answer (a history of years of hours).
    pub const MAX_ANSWER_BYTES: usize = 64 * 1024 * 1024;
    /// Calls one connection may have in progress at once.
    pub const CONCURRENCY_PER_CONNECTION: usize = 64;
    /// How long a unary call may take before the hub answers DEADLINE_EXCEEDED (streams are not
    /// cut: their handlers answer at once and the stream lives on).
    pub const UNARY_DEADLINE: Duration = Duration::from_secs(60);
    /// HTTP/2 pings on an idle connection, so a vanished collector's stream is noticed.
    pub const KEEPALIVE_INTERVAL: Duration = Duration::from_secs(30);
    pub const KEEPALIVE_TIMEOUT: Duration = Duration::from_secs(10);

    /// tonic answers a request over its size limit with OUT_OF_RANGE; gRPC names the case
    /// RESOURCE_EXHAUSTED ("message larger than the configured maximum"), and clients retry on
    /// that knowledge. Rewrites the status of such an answer (a trailers-only response: the
    /// request was refused before its handler ran).
    pub fn oversized_is_resource_exhausted(headers: &mut http::HeaderMap) {
        let out_of_range = headers
            .get("grpc-status")
            .is_some_and(|code| code.as_bytes() == b"11");
        let oversized = headers.get("grpc-message").is_some_and(|message| {
            message
                .as_bytes()
                .windows(b"message%20length%20too%20large".len())
                .any(|w| w == b"message%20length%20too%20large")
        });
        if out_of_range && oversized {
            headers.insert("grpc-status", http::HeaderValue::from_static("8"));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use solarhub_proto::contract::inverter;

    #[test]
    fn text_with_a_nul_or_a_newline_or_too_long_is_refused() {
        assert_eq!(text_problem("Normal"), None);
        assert!(text_problem("a\0b").unwrap().contains("U+0000"));
        assert!(text_problem("a\nb").unwrap().contains("U+000A"));
        assert!(text_problem(&"x".repeat(201)).unwrap().contains("201"));
        assert_eq!(text_problem(&"é".repeat(200)), None);
    }

    #[test]
    fn a_long_id_is_shown_cut_and_escaped() {
        assert_eq!(shown("inv1"), "inv1");
        assert_eq!(shown("a\0b"), "a\\0b");
        let long = shown(&"x".repeat(1_500_000));
        assert_eq!(long.chars().count(), 65);
    }

    #[test]
    fn values_outside_their_units_range_or_not_finite_are_refused() {
        let power = inverter::ALL
            .iter()
            .find(|f| f.name == inverter::PV_POWER_W)
            .unwrap();
        assert_eq!(value_problem(power, 4200.0), None);
        assert_eq!(
            value_problem(power, -5e9).unwrap().0,
            ValueProblem::OutOfRange
        );
        assert_eq!(
            value_problem(power, f64::NAN).unwrap().0,
            ValueProblem::NotFinite
        );
        assert_eq!(
            value_problem(power, f64::INFINITY).unwrap().0,
            ValueProblem::NotFinite
        );
    }
}
