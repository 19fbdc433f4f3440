//! Japan time. Every person a deployment serves reads times in it, so pages, mails, exports and
//! the demo's scripted days all convert here.

use chrono::{DateTime, FixedOffset, NaiveTime, Offset, TimeDelta, Utc};

/// Japan Standard Time. Japan has no daylight saving, so a fixed offset is exact.
pub fn jst() -> FixedOffset {
    // 9 hours is always a valid offset; the fallback only keeps this total.
    FixedOffset::east_opt(9 * 3600).unwrap_or(Utc.fix())
}

/// Midnight, Japan time, of the Japan day `at` falls on.
pub fn japan_midnight(at: DateTime<Utc>) -> DateTime<Utc> {
    let offset = TimeDelta::seconds(i64::from(jst().local_minus_utc()));
    (at + offset)
        .date_naive()
        .and_time(NaiveTime::MIN)
        .and_utc()
        - offset
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn japan_is_nine_hours_ahead() {
        let at = Utc
            .with_ymd_and_hms(2026, 3, 4, 15, 5, 0)
            .single()
            .expect("valid");
        assert_eq!(
            at.with_timezone(&jst()).to_rfc3339(),
            "2026-03-05T00:05:00+09:00"
        );
    }

    #[test]
    fn midnight_is_the_start_of_the_japan_day() {
        // 00:05 in Japan on 5 March is still 4 March in UTC.
        let at = Utc
            .with_ymd_and_hms(2026, 3, 4, 15, 5, 0)
            .single()
            .expect("valid");
        let midnight = Utc
            .with_ymd_and_hms(2026, 3, 4, 15, 0, 0)
            .single()
            .expect("valid");
        assert_eq!(japan_midnight(at), midnight);
        // 08:59 in Japan on 4 March.
        let at = Utc
            .with_ymd_and_hms(2026, 3, 3, 23, 59, 0)
            .single()
            .expect("valid");
        let midnight = Utc
            .with_ymd_and_hms(2026, 3, 3, 15, 0, 0)
            .single()
            .expect("valid");
        assert_eq!(japan_midnight(at), midnight);
        assert_eq!(japan_midnight(midnight), midnight);
    }
}
