//! Dates as people in Japan write them: Western (1945-04-01, 1945/4/1, 1945年4月1日, 19450401)
//! or by era (昭和20年4月1日, 昭和元年12月25日, S20.4.1, 昭20/4/1), full or half width. A date
//! outside its era (平成31年5月1日, which was 令和元年) or not on the calendar is refused, not
//! moved to a neighbouring day.

use chrono::{Datelike, NaiveDate};
use unicode_normalization::UnicodeNormalization;

/// Why a date was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DateError {
    /// Nothing was given.
    Empty,
    /// Not a way of writing a date that is understood.
    Unreadable,
    /// No such day (31 April, 30 February…).
    NoSuchDay,
    /// The era did not last until (or had not begun by) that day.
    OutsideEra,
}

/// The Japanese eras since the calendar reform, with the first day of each.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Era {
    Meiji,
    Taisho,
    Showa,
    Heisei,
    Reiwa,
}

impl Era {
    const ALL: [Era; 5] = [Era::Meiji, Era::Taisho, Era::Showa, Era::Heisei, Era::Reiwa];

    /// The first day of the era (Meiji: the calendar's first day of 明治元年, 1 January 1868 in
    /// the old calendar).
    fn start(self) -> NaiveDate {
        let (y, m, d) = match self {
            Era::Meiji => (1868, 1, 25),
            Era::Taisho => (1912, 7, 30),
            Era::Showa => (1926, 12, 25),
            Era::Heisei => (1989, 1, 8),
            Era::Reiwa => (2019, 5, 1),
        };
        NaiveDate::from_ymd_opt(y, m, d).unwrap_or(NaiveDate::MIN)
    }

    fn next(self) -> Option<Era> {
        match self {
            Era::Meiji => Some(Era::Taisho),
            Era::Taisho => Some(Era::Showa),
            Era::Showa => Some(Era::Heisei),
            Era::Heisei => Some(Era::Reiwa),
            Era::Reiwa => None,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Era::Meiji => "明治",
            Era::Taisho => "大正",
            Era::Showa => "昭和",
            Era::Heisei => "平成",
            Era::Reiwa => "令和",
        }
    }

    /// The era's initial as in S20.4.1.
    pub fn letter(self) -> char {
        match self {
            Era::Meiji => 'M',
            Era::Taisho => 'T',
            Era::Showa => 'S',
            Era::Heisei => 'H',
            Era::Reiwa => 'R',
        }
    }

    /// The era a day belongs to (`None` before Meiji).
    pub fn of(date: NaiveDate) -> Option<(Era, i32)> {
        Era::ALL
            .iter()
            .rev()
            .find(|e| e.start() <= date)
            .map(|e| (*e, date.year() - e.start().year() + 1))
    }
}

/// Reads a date written in any of the ways above.
pub fn parse_date(input: &str) -> Result<NaiveDate, DateError> {
    let s: String = input.nfkc().filter(|c| !c.is_whitespace()).collect();
    if s.is_empty() {
        return Err(DateError::Empty);
    }
    let (era, rest) = strip_era(&s);
    let rest = rest.strip_suffix('日').unwrap_or(rest);
    if era.is_none() && rest.len() == 8 && rest.bytes().all(|b| b.is_ascii_digit()) {
        let (y, md) = rest.split_at(4);
        let (m, d) = md.split_at(2);
        return ymd(number(y)?, number(m)?, number(d)?);
    }
    let parts: Vec<&str> = rest.split(['年', '月', '.', '/', '-']).collect();
    let [y, m, d] = parts.as_slice() else {
        return Err(DateError::Unreadable);
    };
    let (month, day) = (number(m)?, number(d)?);
    match era {
        None => {
            if y.len() != 4 {
                return Err(DateError::Unreadable);
            }
            ymd(number(y)?, month, day)
        }
        Some(era) => {
            let year = if *y == "元" { 1 } else { number(y)? };
            if year == 0 || year > 99 {
                return Err(DateError::OutsideEra);
            }
            let western = era.start().year() + i32::try_from(year).unwrap_or(0) - 1;
            let date = ymd(u32::try_from(western).unwrap_or(0), month, day)?;
            let within = date >= era.start() && era.next().is_none_or(|n| date < n.start());
            if within {
                Ok(date)
            } else {
                Err(DateError::OutsideEra)
            }
        }
    }
}

fn strip_era(s: &str) -> (Option<Era>, &str) {
    for era in Era::ALL {
        let name = era.name();
        if let Some(rest) = s.strip_prefix(name) {
            return (Some(era), rest);
        }
        // 昭20/4/1: the first character of the name alone.
        let first = name.chars().next().unwrap_or(' ');
        if let Some(rest) = s.strip_prefix(first) {
            return (Some(era), rest);
        }
    }
    let mut chars = s.chars();
    if let Some(c) = chars.next() {
        let c = c.to_ascii_uppercase();
        if let Some(era) = Era::ALL.iter().find(|e| e.letter() == c) {
            return (Some(*era), chars.as_str());
        }
    }
    (None, s)
}

fn number(s: &str) -> Result<u32, DateError> {
    if s.is_empty() || s.len() > 4 || !s.bytes().all(|b| b.is_ascii_digit()) {
        return Err(DateError::Unreadable);
    }
    s.parse().map_err(|_| DateError::Unreadable)
}

fn ymd(y: u32, m: u32, d: u32) -> Result<NaiveDate, DateError> {
    if !(1868..=9999).contains(&y) {
        return Err(DateError::Unreadable);
    }
    NaiveDate::from_ymd_opt(i32::try_from(y).unwrap_or(0), m, d).ok_or(DateError::NoSuchDay)
}

/// 昭和20年4月1日 (元年 for the first year); the Western date before Meiji.
pub fn format_wareki(date: NaiveDate) -> String {
    match Era::of(date) {
        Some((era, year)) => {
            let year = if year == 1 {
                "元".to_owned()
            } else {
                year.to_string()
            };
            format!("{}{year}年{}月{}日", era.name(), date.month(), date.day())
        }
        None => date.format("%Y年%-m月%-d日").to_string(),
    }
}

/// Age in whole years on `today` (a birthday on 29 February counts on 1 March in other years,
/// as Japanese law counts it the day before: either way, whole years since birth).
pub fn age_on(birth: NaiveDate, today: NaiveDate) -> u32 {
    let mut age = today.year() - birth.year();
    if (today.month(), today.day()) < (birth.month(), birth.day()) {
        age -= 1;
    }
    u32::try_from(age).unwrap_or(0)
}

/// The earliest birth date of someone aged at most `age` on `today`.
pub fn born_after_for_max_age(age: u32, today: NaiveDate) -> Option<NaiveDate> {
    let years = i32::try_from(age).ok()? + 1;
    let d = NaiveDate::from_ymd_opt(today.year() - years, today.month(), today.day())
        .or_else(|| NaiveDate::from_ymd_opt(today.year() - years, 2, 28))?;
    d.succ_opt()
}

/// The latest birth date of someone aged at least `age` on `today`.
pub fn born_before_for_min_age(age: u32, today: NaiveDate) -> Option<NaiveDate> {
    let years = i32::try_from(age).ok()?;
    NaiveDate::from_ymd_opt(today.year() - years, today.month(), today.day())
        .or_else(|| NaiveDate::from_ymd_opt(today.year() - years, 2, 28))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(y: i32, m: u32, day: u32) -> NaiveDate {
        NaiveDate::from_ymd_opt(y, m, day).expect("a date")
    }

    #[test]
    fn western_forms() {
        for s in [
            "1945-04-01",
            "1945/4/1",
            "1945.4.1",
            "1945年4月1日",
            "19450401",
            "１９４５年４月１日",
            " 1945 / 4 / 1 ",
        ] {
            assert_eq!(parse_date(s), Ok(d(1945, 4, 1)), "{s}");
        }
    }

    #[test]
    fn era_forms_and_abbreviations() {
        for s in [
            "昭和20年4月1日",
            "昭和２０年４月１日",
            "S20.4.1",
            "s20/4/1",
            "Ｓ２０．４．１",
            "昭20-4-1",
            "昭和20.4.1",
        ] {
            assert_eq!(parse_date(s), Ok(d(1945, 4, 1)), "{s}");
        }
        assert_eq!(parse_date("昭和元年12月25日"), Ok(d(1926, 12, 25)));
        assert_eq!(parse_date("H1.1.8"), Ok(d(1989, 1, 8)));
        assert_eq!(parse_date("平成31年4月30日"), Ok(d(2019, 4, 30)));
        assert_eq!(parse_date("令和元年5月1日"), Ok(d(2019, 5, 1)));
        assert_eq!(parse_date("R2.2.29"), Ok(d(2020, 2, 29)));
        assert_eq!(parse_date("T15.12.24"), Ok(d(1926, 12, 24)));
        assert_eq!(parse_date("明治45年7月29日"), Ok(d(1912, 7, 29)));
    }

    #[test]
    fn impossible_dates_are_refused() {
        assert_eq!(parse_date("平成31年5月1日"), Err(DateError::OutsideEra));
        assert_eq!(parse_date("昭和64年1月8日"), Err(DateError::OutsideEra));
        assert_eq!(parse_date("昭和元年12月24日"), Err(DateError::OutsideEra));
        assert_eq!(parse_date("令和0年5月1日"), Err(DateError::OutsideEra));
        assert_eq!(parse_date("S20.2.30"), Err(DateError::NoSuchDay));
        assert_eq!(parse_date("2023-02-29"), Err(DateError::NoSuchDay));
        assert_eq!(parse_date("1945-13-01"), Err(DateError::NoSuchDay));
        assert_eq!(parse_date(""), Err(DateError::Empty));
        assert_eq!(parse_date("   "), Err(DateError::Empty));
        for s in [
            "昨日",
            "20.4.1",
            "X20.4.1",
            "1945-4",
            "1945-4-1-2",
            "45/4/1",
            "1800-01-01",
        ] {
            assert_eq!(parse_date(s), Err(DateError::Unreadable), "{s}");
        }
    }

    #[test]
    fn written_back_by_era() {
        assert_eq!(format_wareki(d(1945, 4, 1)), "昭和20年4月1日");
        assert_eq!(format_wareki(d(2019, 5, 1)), "令和元年5月1日");
        assert_eq!(format_wareki(d(2019, 4, 30)), "平成31年4月30日");
        for s in ["昭和20年4月1日", "令和元年5月1日", "大正3年1月1日"] {
            assert_eq!(format_wareki(parse_date(s).expect("parses")), s);
        }
    }

    #[test]
    fn ages_and_their_birth_ranges() {
        let today = d(2026, 12, 5);
        assert_eq!(age_on(d(1945, 4, 1), today), 81);
        assert_eq!(age_on(d(1945, 12, 5), today), 81);
        assert_eq!(age_on(d(1945, 12, 6), today), 80);
        // Aged 80 to 80: born 1945-12-06 … 1946-12-05.
        assert_eq!(born_after_for_max_age(80, today), Some(d(1945, 12, 6)));
        assert_eq!(born_before_for_min_age(80, today), Some(d(1946, 12, 5)));
        for birth in [d(1945, 12, 6), d(1946, 12, 5), d(1946, 1, 1)] {
            assert_eq!(age_on(birth, today), 80, "{birth}");
        }
        assert_eq!(age_on(d(1945, 12, 5), today), 81);
        assert_eq!(age_on(d(1946, 12, 6), today), 79);
        // On 29 February, with 28 days in the February of the birth years.
        let leap = d(2028, 2, 29);
        assert_eq!(born_after_for_max_age(80, leap), Some(d(1947, 3, 1)));
        assert_eq!(age_on(d(1947, 3, 1), leap), 80);
        assert_eq!(age_on(d(1947, 2, 28), leap), 81);
        assert_eq!(born_before_for_min_age(80, leap), Some(d(1948, 2, 29)));
        assert_eq!(born_before_for_min_age(79, leap), Some(d(1949, 2, 28)));
    }
}
