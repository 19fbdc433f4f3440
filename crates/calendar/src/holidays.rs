//! Japanese public holidays (国民の祝日 and the days the holiday law makes 休日), computed from
//! the rules of 国民の祝日に関する法律 (昭和23年法律第178号) and its amendments and special laws.
//!
//! Supported range: 1948-07-20 (the day the law took effect) through 2099-12-31. The equinox
//! days are announced each February for the next year (国立天文台's 暦要項); the usual
//! approximation formula used here is only valid up to 2099. Outside the range
//! every function answers "not a holiday" (`None`, `false`, nothing listed): callers that need
//! older or later years must not rely on this module.
//!
//! A future special law (a new one-off holiday, another moved day) needs a code change here.

use chrono::{Datelike, Days, NaiveDate, Weekday};

/// The first day the holiday law applied.
pub const FIRST_SUPPORTED: NaiveDate = ymd(1948, 7, 20);
/// The last day the equinox formula is valid for.
pub const LAST_SUPPORTED: NaiveDate = ymd(2099, 12, 31);

/// The substitute-holiday rule (振替休日) took effect on this day (昭和48年法律第10号).
const SUBSTITUTE_FROM: NaiveDate = ymd(1973, 4, 12);
/// From this day a substitute holiday is the next day that is not a 祝日, not only the Monday
/// (平成17年法律第43号).
const SUBSTITUTE_NEXT_FREE_FROM: NaiveDate = ymd(2007, 1, 1);
/// The sandwiched-day rule (国民の休日) took effect on this day (昭和60年法律第103号); the first
/// day it produced was 1988-05-04.
const CITIZENS_HOLIDAY_FROM: NaiveDate = ymd(1985, 12, 27);

/// The name given to a substitute holiday (the law only says 休日; this is the usual name).
pub const SUBSTITUTE_HOLIDAY: &str = "振替休日";
/// The name given to a day between two 祝日 (国民の祝日に関する法律 第3条第3項).
pub const CITIZENS_HOLIDAY: &str = "国民の休日";

const fn ymd(y: i32, m: u32, d: u32) -> NaiveDate {
    match NaiveDate::from_ymd_opt(y, m, d) {
        Some(date) => date,
        None => panic!("invalid constant date"),
    }
}

/// The holiday's Japanese name, or `None` on a working day or outside
/// [`FIRST_SUPPORTED`]..=[`LAST_SUPPORTED`].
pub fn holiday_name(date: NaiveDate) -> Option<&'static str> {
    if !(FIRST_SUPPORTED..=LAST_SUPPORTED).contains(&date) {
        return None;
    }
    if let Some(name) = national_holiday(date) {
        return Some(name);
    }
    if is_substitute(date) {
        return Some(SUBSTITUTE_HOLIDAY);
    }
    if is_citizens_holiday(date) {
        return Some(CITIZENS_HOLIDAY);
    }
    None
}

/// Whether the day is a public holiday (a 祝日, a 振替休日 or a 国民の休日).
pub fn is_holiday(date: NaiveDate) -> bool {
    holiday_name(date).is_some()
}

/// Every holiday from `from` through `to_inclusive`, in date order. Days outside the
/// supported range are left out.
pub fn holidays_between(
    from: NaiveDate,
    to_inclusive: NaiveDate,
) -> Vec<(NaiveDate, &'static str)> {
    let from = from.max(FIRST_SUPPORTED);
    let to = to_inclusive.min(LAST_SUPPORTED);
    let mut out = Vec::new();
    let mut day = from;
    while day <= to {
        if let Some(name) = holiday_name(day) {
            out.push((day, name));
        }
        match day.succ_opt() {
            Some(next) => day = next,
            None => break,
        }
    }
    out
}

/// A 国民の祝日 proper, including the one-off days the special laws made holidays. Those laws
/// deem the day a 祝日 for the sandwich rule, which is what made 2019-04-30 and 2019-05-02
/// 国民の休日; none of them fell on a Sunday, so the substitute rule never met them.
fn national_holiday(date: NaiveDate) -> Option<&'static str> {
    if date < FIRST_SUPPORTED || date > LAST_SUPPORTED {
        return None;
    }
    let y = date.year();
    let d = date.day();
    let monday = |n: u32| date.weekday() == Weekday::Mon && (d - 1) / 7 + 1 == n;
    let name = match date.month() {
        1 if d == 1 => "元日",
        1 if (y <= 1999 && d == 15) || (y >= 2000 && monday(2)) => "成人の日",
        2 if y >= 1967 && d == 11 => "建国記念の日",
        2 if y >= 2020 && d == 23 => "天皇誕生日",
        2 if y == 1989 && d == 24 => "昭和天皇の大喪の礼",
        3 if d == vernal_equinox_day(y) => "春分の日",
        4 if d == 29 => match y {
            ..=1988 => "天皇誕生日",
            1989..=2006 => "みどりの日",
            _ => "昭和の日",
        },
        4 if y == 1959 && d == 10 => "皇太子明仁親王の結婚の儀",
        5 if d == 3 => "憲法記念日",
        5 if y >= 2007 && d == 4 => "みどりの日",
        5 if d == 5 => "こどもの日",
        5 if y == 2019 && d == 1 => "天皇の即位の日",
        6 if y == 1993 && d == 9 => "皇太子徳仁親王の結婚の儀",
        7 if is_sea_day(y, d, monday(3)) => "海の日",
        7 if (y == 2020 && d == 24) || (y == 2021 && d == 23) => "スポーツの日",
        8 if is_mountain_day(y, d) => "山の日",
        9 if ((1966..=2002).contains(&y) && d == 15) || (y >= 2003 && monday(3)) => "敬老の日",
        9 if d == autumnal_equinox_day(y) => "秋分の日",
        10 if ((1966..=1999).contains(&y) && d == 10)
            || ((2000..=2019).contains(&y) && monday(2)) =>
        {
            "体育の日"
        }
        // 2020 and 2021 moved it to the Olympic opening (July).
        10 if y >= 2022 && monday(2) => "スポーツの日",
        10 if y == 2019 && d == 22 => "即位礼正殿の儀",
        11 if d == 3 => "文化の日",
        11 if d == 23 => "勤労感謝の日",
        11 if y == 1990 && d == 12 => "即位礼正殿の儀",
        12 if (1989..=2018).contains(&y) && d == 23 => "天皇誕生日",
        _ => return None,
    };
    Some(name)
}

fn is_sea_day(y: i32, d: u32, third_monday: bool) -> bool {
    match y {
        ..=1995 => false,
        1996..=2002 => d == 20,
        // Moved for the Tokyo Olympics (平成30年法律第57号, 令和2年法律第68号).
        2020 => d == 23,
        2021 => d == 22,
        _ => third_monday,
    }
}

fn is_mountain_day(y: i32, d: u32) -> bool {
    match y {
        ..=2015 => false,
        2020 => d == 10,
        2021 => d == 8,
        _ => d == 11,
    }
}

/// Since 1973-04-12 a 祝日 on a Sunday gives a holiday: until 2006 the Monday after it, from
/// 2007 the first following day that is not itself a 祝日 (so a Sunday 5/3 moves to 5/6).
fn is_substitute(date: NaiveDate) -> bool {
    if date < SUBSTITUTE_FROM || national_holiday(date).is_some() {
        return false;
    }
    let Some(prev) = date.pred_opt() else {
        return false;
    };
    if date < SUBSTITUTE_NEXT_FREE_FROM {
        return prev >= SUBSTITUTE_FROM
            && prev.weekday() == Weekday::Sun
            && national_holiday(prev).is_some();
    }
    // Walk back through the unbroken run of 祝日 just before this day; any Sunday in it moves
    // to here. A run is at most a few days long (Golden Week).
    let mut day = prev;
    while national_holiday(day).is_some() {
        if day.weekday() == Weekday::Sun {
            return day >= SUBSTITUTE_FROM;
        }
        match day.pred_opt() {
            Some(p) => day = p,
            None => return false,
        }
    }
    false
}

/// A working day between two 祝日 (since 1985-12-27). Until 2006 the law excluded Sundays
/// and substitute holidays; the 2007 wording only requires that it not be a 祝日 itself,
/// which cannot change the outcome for any real calendar because the caller checks the
/// substitute rule first.
fn is_citizens_holiday(date: NaiveDate) -> bool {
    if date < CITIZENS_HOLIDAY_FROM || national_holiday(date).is_some() {
        return false;
    }
    if date < SUBSTITUTE_NEXT_FREE_FROM && date.weekday() == Weekday::Sun {
        return false;
    }
    let (Some(prev), Some(next)) = (date.pred_opt(), date.checked_add_days(Days::new(1))) else {
        return false;
    };
    national_holiday(prev).is_some() && national_holiday(next).is_some()
}

/// 春分の日 (day of March), by the usual approximation (valid 1900–2099), in integer
/// millionths so no floating-point rounding can move a day.
fn vernal_equinox_day(y: i32) -> u32 {
    equinox_day(y, 20_835_700, 20_843_100)
}

/// 秋分の日 (day of September).
fn autumnal_equinox_day(y: i32) -> u32 {
    equinox_day(y, 23_258_800, 23_248_800)
}

fn equinox_day(y: i32, base_before_1980: i64, base_from_1980: i64) -> u32 {
    let y = i64::from(y);
    let offset = y - 1980;
    let (base, leap_shift) = if y < 1980 {
        // Truncating division, as the published formula is written (`int()`): flooring
        // would move e.g. 1978's vernal equinox to the 22nd.
        (base_before_1980, (y - 1983) / 4)
    } else {
        (base_from_1980, offset.div_euclid(4))
    };
    let millionths = base + 242_194 * offset - leap_shift * 1_000_000;
    // Between 19 and 24 for every supported year; 0 means "no such day" to the callers.
    u32::try_from(millionths.div_euclid(1_000_000)).unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn equinox_formula_matches_published_days() {
        // Announced in the Official Gazette (官報) for these years.
        assert_eq!(vernal_equinox_day(2024), 20);
        assert_eq!(autumnal_equinox_day(2024), 22);
        assert_eq!(vernal_equinox_day(2025), 20);
        assert_eq!(autumnal_equinox_day(2025), 23);
        assert_eq!(vernal_equinox_day(2026), 20);
        assert_eq!(autumnal_equinox_day(2026), 23);
        assert_eq!(vernal_equinox_day(2027), 21);
    }
}
