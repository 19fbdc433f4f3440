//! Dates and times as people in Japan read them: Japan time, no seconds.

use crate::i18n::Lang;
use chrono::{DateTime, Utc};
use musubi_config::time::jst;

/// "2026年3月4日 14:05" / "4 Mar 2026, 14:05".
pub(crate) fn date_time(lang: Lang, at: DateTime<Utc>) -> String {
    let local = at.with_timezone(&jst());
    match lang {
        Lang::Ja => local.format("%Y年%-m月%-d日 %H:%M").to_string(),
        Lang::En => local.format("%-d %b %Y, %H:%M").to_string(),
    }
}

/// "2026年3月4日" / "4 Mar 2026".
pub(crate) fn date(lang: Lang, at: DateTime<Utc>) -> String {
    let local = at.with_timezone(&jst());
    match lang {
        Lang::Ja => local.format("%Y年%-m月%-d日").to_string(),
        Lang::En => local.format("%-d %b %Y").to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn times_are_shown_in_japan_time() {
        let at = Utc
            .with_ymd_and_hms(2026, 3, 4, 15, 5, 59)
            .single()
            .expect("valid");
        assert_eq!(date_time(Lang::Ja, at), "2026年3月5日 00:05");
        assert_eq!(date_time(Lang::En, at), "5 Mar 2026, 00:05");
        assert_eq!(date(Lang::Ja, at), "2026年3月5日");
    }
}
