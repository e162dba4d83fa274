//! Time as the product sees it: an injected `Clock` and the one timestamp format used on the
//! wire, so tests can fix time and every response formats dates the same way.

use chrono::{DateTime, NaiveDate, NaiveDateTime, SecondsFormat, Utc};
use std::sync::Mutex;

pub trait Clock: Send + Sync + 'static {
    fn now(&self) -> DateTime<Utc>;
}

pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> DateTime<Utc> {
        Utc::now()
    }
}

/// A clock tests move by hand.
pub struct FixedClock(Mutex<DateTime<Utc>>);

impl FixedClock {
    pub fn new(at: DateTime<Utc>) -> Self {
        FixedClock(Mutex::new(at))
    }
    pub fn advance(&self, by: chrono::Duration) {
        if let Ok(mut t) = self.0.lock() {
            *t += by;
        }
    }
}

impl Clock for FixedClock {
    fn now(&self) -> DateTime<Utc> {
        self.0
            .lock()
            .map(|t| *t)
            .unwrap_or_else(|e| *e.into_inner())
    }
}

/// Stream's timestamp format: RFC 3339 in UTC with microseconds, e.g. `2024-01-02T03:04:05.123456Z`.
pub fn format_time(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Micros, true)
}

/// Parse a timestamp the SDKs send: RFC 3339 with or without offset and fraction (`T` or
/// space separator), a zone-less date-time or a bare date, both taken as UTC (Python's
/// `isoformat()` of a naive datetime).
pub fn parse_time(s: &str) -> Option<DateTime<Utc>> {
    let b = s.as_bytes();
    // Cheap shape check first: most strings compared by filters are not timestamps.
    if b.len() < 10 || !b[..4].iter().all(u8::is_ascii_digit) || b[4] != b'-' || b[7] != b'-' {
        return None;
    }
    if let Ok(t) = DateTime::parse_from_rfc3339(s) {
        return Some(t.with_timezone(&Utc));
    }
    if b.len() == 10 {
        return NaiveDate::parse_from_str(s, "%Y-%m-%d")
            .ok()?
            .and_hms_opt(0, 0, 0)
            .map(|t| t.and_utc());
    }
    [
        "%Y-%m-%dT%H:%M:%S%.f",
        "%Y-%m-%d %H:%M:%S%.f",
        "%Y-%m-%dT%H:%M",
    ]
    .iter()
    .find_map(|fmt| NaiveDateTime::parse_from_str(s, fmt).ok())
    .map(|t| t.and_utc())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_forms_the_sdks_send() {
        let utc = parse_time("2024-01-02T03:04:05Z").unwrap();
        assert_eq!(format_time(utc), "2024-01-02T03:04:05.000000Z");
        assert_eq!(parse_time("2024-01-02T03:04:05").unwrap(), utc);
        assert_eq!(parse_time("2024-01-02T05:04:05+02:00").unwrap(), utc);
        assert_eq!(
            parse_time("2024-01-02T03:04:05.5").unwrap(),
            utc + chrono::Duration::milliseconds(500)
        );
        assert_eq!(parse_time("2024-01-02 03:04:05").unwrap(), utc);
        assert!(parse_time("2024-01-02").is_some());
        assert!(parse_time("yesterday").is_none());
        assert!(parse_time("john-doe").is_none());
    }
}
