//! Japanese holidays: every day of 1990..=2050 against PyPI's `jpholiday` (an independent
//! implementation, see `data/jpholiday.py`), plus the edges of the rules.

#![allow(clippy::unwrap_used)]

use std::collections::BTreeMap;

use chrono::{Datelike, NaiveDate, Weekday};
use musubi_calendar::holidays::{holiday_name, holidays_between, is_holiday};

const JPHOLIDAY_CSV: &str = include_str!("data/jpholiday-1990-2050.csv");

fn d(y: i32, m: u32, day: u32) -> NaiveDate {
    NaiveDate::from_ymd_opt(y, m, day).unwrap()
}

/// Days whose jpholiday name differs from the official one. Each entry: (date, jpholiday's
/// name, the official name Musubi uses, why).
const KNOWN_NAME_DIFFERENCES: &[(&str, &str, &str, &str)] = &[
    (
        "1990-11-12",
        "即位の礼正殿の儀",
        "即位礼正殿の儀",
        "the day is named in 即位礼正殿の儀の行われる日を休日とする法律 (平成2年法律第24号) \
         and the Cabinet Office holiday list; jpholiday adds a の",
    ),
    (
        "1993-06-09",
        "皇太子・皇太子徳仁親王の結婚の儀",
        "皇太子徳仁親王の結婚の儀",
        "皇太子徳仁親王の結婚の儀の行われる日を休日とする法律 (平成5年法律第32号); \
         jpholiday repeats 皇太子",
    ),
];

/// jpholiday names a substitute holiday after the 祝日 it replaces ("こどもの日 振替休日");
/// the law calls every one of them 休日 and Musubi, like most calendars, 振替休日.
fn official_name(jpholiday_name: &str) -> &str {
    if jpholiday_name.ends_with(" 振替休日") {
        "振替休日"
    } else {
        jpholiday_name
    }
}

fn expected_from_csv() -> BTreeMap<NaiveDate, String> {
    let mut expected = BTreeMap::new();
    let mut lines = JPHOLIDAY_CSV.lines().filter(|l| !l.starts_with('#'));
    assert_eq!(lines.next(), Some("date,name"), "CSV header");
    for line in lines {
        let (date, name) = line.split_once(',').expect("a date,name line");
        let date: NaiveDate = date.parse().expect("an ISO date");
        let mut name = official_name(name).to_owned();
        if let Some(&(_, theirs, ours, _)) = KNOWN_NAME_DIFFERENCES
            .iter()
            .find(|(day, ..)| day.parse::<NaiveDate>().unwrap() == date)
        {
            assert_eq!(
                name, theirs,
                "known difference on {date} no longer matches the CSV"
            );
            name = ours.to_owned();
        }
        assert!(expected.insert(date, name).is_none(), "duplicate {date}");
    }
    expected
}

#[test]
fn every_day_1990_to_2050_matches_jpholiday() {
    let expected = expected_from_csv();
    assert!(
        expected.len() > 1000,
        "CSV looks truncated: {}",
        expected.len()
    );

    let mut mismatches = Vec::new();
    let mut day = d(1990, 1, 1);
    let mut days = 0;
    while day <= d(2050, 12, 31) {
        let ours = holiday_name(day);
        let theirs = expected.get(&day).map(String::as_str);
        if ours != theirs || is_holiday(day) != theirs.is_some() {
            mismatches.push(format!(
                "{day} ({:?}): musubi {ours:?}, jpholiday {theirs:?}",
                day.weekday()
            ));
        }
        days += 1;
        day = day.succ_opt().unwrap();
    }
    assert_eq!(days, 22_280);
    assert!(
        mismatches.is_empty(),
        "{} mismatches:\n{}",
        mismatches.len(),
        mismatches.join("\n")
    );

    let listed = holidays_between(d(1990, 1, 1), d(2050, 12, 31));
    let listed: BTreeMap<NaiveDate, String> = listed
        .into_iter()
        .map(|(date, name)| (date, name.to_owned()))
        .collect();
    assert_eq!(listed, expected);
}

#[test]
fn substitute_before_2007_is_only_the_monday() {
    // 2001: Sunday 4/29 (みどりの日) → Monday 4/30.
    assert_eq!(d(2001, 4, 29).weekday(), Weekday::Sun);
    assert_eq!(holiday_name(d(2001, 4, 30)), Some("振替休日"));
    // 1998-05-03 was a Sunday: Monday 5/4 became the 振替休日 (not a 国民の休日), and 5/6
    // stayed a working day because the old rule only looked at the Monday.
    assert_eq!(holiday_name(d(1998, 5, 4)), Some("振替休日"));
    assert_eq!(holiday_name(d(1998, 5, 6)), None);
    // 2006-12-23 (天皇誕生日) was a Saturday: no substitute for Saturdays.
    assert_eq!(holiday_name(d(2006, 12, 25)), None);
}

#[test]
fn substitute_since_2007_is_the_next_free_day() {
    // 2008-05-04 (みどりの日) was a Sunday: 5/5 is こどもの日, so the 振替休日 is Tuesday 5/6.
    assert_eq!(d(2008, 5, 4).weekday(), Weekday::Sun);
    assert_eq!(holiday_name(d(2008, 5, 5)), Some("こどもの日"));
    assert_eq!(holiday_name(d(2008, 5, 6)), Some("振替休日"));
    // 2009-05-03 (憲法記念日) on a Sunday: 5/4 and 5/5 are 祝日, Wednesday 5/6 is the 振替休日.
    assert_eq!(holiday_name(d(2009, 5, 6)), Some("振替休日"));
    // 2007-04-29 (the first 昭和の日) was a Sunday.
    assert_eq!(holiday_name(d(2007, 4, 30)), Some("振替休日"));
    // 2027: Sunday 5/2 is no 祝日, 5/3..5/5 Monday..Wednesday, 5/6 a working day.
    assert_eq!(holiday_name(d(2027, 5, 6)), None);
}

#[test]
fn the_substitute_rule_starts_1973_04_12() {
    // 1973-02-11 (建国記念の日) was a Sunday before the amendment: no holiday on 2/12.
    assert_eq!(d(1973, 2, 11).weekday(), Weekday::Sun);
    assert_eq!(holiday_name(d(1973, 2, 12)), None);
    // 1973-04-29 was the first Sunday 祝日 under the new rule.
    assert_eq!(holiday_name(d(1973, 4, 30)), Some("振替休日"));
}

#[test]
fn golden_week_2019() {
    let got = holidays_between(d(2019, 4, 27), d(2019, 5, 7));
    let want = [
        (d(2019, 4, 29), "昭和の日"),
        (d(2019, 4, 30), "国民の休日"),
        (d(2019, 5, 1), "天皇の即位の日"),
        (d(2019, 5, 2), "国民の休日"),
        (d(2019, 5, 3), "憲法記念日"),
        (d(2019, 5, 4), "みどりの日"),
        (d(2019, 5, 5), "こどもの日"),
        (d(2019, 5, 6), "振替休日"),
    ];
    assert_eq!(got, want);
    assert_eq!(holiday_name(d(2019, 10, 22)), Some("即位礼正殿の儀"));
    // No 天皇誕生日 in 2019: Akihito had abdicated, Naruhito's birthday was not yet a 祝日.
    assert_eq!(holiday_name(d(2019, 12, 23)), None);
    assert_eq!(holiday_name(d(2019, 2, 23)), None);
}

#[test]
fn citizens_holiday_rule() {
    // The first 国民の休日: 1988-05-04.
    assert_eq!(holiday_name(d(1988, 5, 4)), Some("国民の休日"));
    // Before the law (1985): a working day.
    assert_eq!(holiday_name(d(1985, 5, 4)), None);
    // 1986-05-04 was a Sunday, which the old rule excluded.
    assert_eq!(holiday_name(d(1986, 5, 4)), None);
    // Silver weeks: 敬老の日 on Monday, 秋分の日 on Wednesday.
    assert_eq!(holiday_name(d(2009, 9, 22)), Some("国民の休日"));
    assert_eq!(holiday_name(d(2015, 9, 22)), Some("国民の休日"));
    assert_eq!(holiday_name(d(2026, 9, 22)), Some("国民の休日"));
    assert_eq!(holiday_name(d(2032, 9, 21)), Some("国民の休日"));
}

#[test]
fn one_off_days_and_era_changes() {
    assert_eq!(
        holiday_name(d(1959, 4, 10)),
        Some("皇太子明仁親王の結婚の儀")
    );
    assert_eq!(holiday_name(d(1989, 2, 24)), Some("昭和天皇の大喪の礼"));
    assert_eq!(holiday_name(d(1990, 11, 12)), Some("即位礼正殿の儀"));
    assert_eq!(
        holiday_name(d(1993, 6, 9)),
        Some("皇太子徳仁親王の結婚の儀")
    );
    assert_eq!(holiday_name(d(1988, 4, 29)), Some("天皇誕生日"));
    assert_eq!(holiday_name(d(1989, 4, 29)), Some("みどりの日"));
    assert_eq!(holiday_name(d(1988, 12, 23)), None);
    assert_eq!(holiday_name(d(1989, 12, 23)), Some("天皇誕生日"));
    assert_eq!(holiday_name(d(2018, 12, 23)), Some("天皇誕生日"));
    assert_eq!(holiday_name(d(2018, 12, 24)), Some("振替休日"));
    assert_eq!(holiday_name(d(2020, 2, 23)), Some("天皇誕生日"));
    assert_eq!(holiday_name(d(2020, 2, 24)), Some("振替休日"));
    assert_eq!(holiday_name(d(2006, 5, 4)), Some("国民の休日"));
    assert_eq!(holiday_name(d(2007, 5, 4)), Some("みどりの日"));
    assert_eq!(holiday_name(d(2007, 4, 29)), Some("昭和の日"));
    assert_eq!(holiday_name(d(1966, 9, 15)), Some("敬老の日"));
    assert_eq!(holiday_name(d(1965, 9, 15)), None);
    assert_eq!(holiday_name(d(1966, 2, 11)), None);
    assert_eq!(holiday_name(d(1967, 2, 11)), Some("建国記念の日"));
    assert_eq!(holiday_name(d(1995, 7, 20)), None);
    assert_eq!(holiday_name(d(1996, 7, 20)), Some("海の日"));
    assert_eq!(holiday_name(d(2015, 8, 11)), None);
    assert_eq!(holiday_name(d(2016, 8, 11)), Some("山の日"));
}

#[test]
fn happy_monday_changes() {
    assert_eq!(holiday_name(d(1999, 1, 15)), Some("成人の日"));
    assert_eq!(holiday_name(d(2000, 1, 15)), None);
    assert_eq!(holiday_name(d(2000, 1, 10)), Some("成人の日"));
    assert_eq!(holiday_name(d(1999, 10, 10)), Some("体育の日"));
    assert_eq!(holiday_name(d(2000, 10, 9)), Some("体育の日"));
    assert_eq!(holiday_name(d(2002, 7, 20)), Some("海の日"));
    assert_eq!(holiday_name(d(2003, 7, 21)), Some("海の日"));
    assert_eq!(holiday_name(d(2002, 9, 15)), Some("敬老の日"));
    assert_eq!(holiday_name(d(2003, 9, 15)), Some("敬老の日"));
    assert_eq!(holiday_name(d(2019, 10, 14)), Some("体育の日"));
    assert_eq!(holiday_name(d(2022, 10, 10)), Some("スポーツの日"));
    // 2027: 1/11, 7/19, 9/20, 10/11.
    assert_eq!(holiday_name(d(2027, 1, 11)), Some("成人の日"));
    assert_eq!(holiday_name(d(2027, 7, 19)), Some("海の日"));
    assert_eq!(holiday_name(d(2027, 9, 20)), Some("敬老の日"));
    assert_eq!(holiday_name(d(2027, 10, 11)), Some("スポーツの日"));
}

#[test]
fn olympic_moves() {
    let summer = |y| holidays_between(d(y, 7, 1), d(y, 8, 31));
    assert_eq!(
        summer(2020),
        [
            (d(2020, 7, 23), "海の日"),
            (d(2020, 7, 24), "スポーツの日"),
            (d(2020, 8, 10), "山の日")
        ]
    );
    assert_eq!(
        summer(2021),
        [
            (d(2021, 7, 22), "海の日"),
            (d(2021, 7, 23), "スポーツの日"),
            (d(2021, 8, 8), "山の日"),
            (d(2021, 8, 9), "振替休日"),
        ]
    );
    assert!(holidays_between(d(2020, 10, 1), d(2021, 10, 31))
        .iter()
        .all(|(date, name)| !(date.month() == 10 && *name == "スポーツの日")));
}

#[test]
fn outside_the_supported_range() {
    assert_eq!(holiday_name(d(1948, 7, 19)), None);
    assert_eq!(holiday_name(d(1948, 1, 1)), None);
    assert_eq!(holiday_name(d(1948, 9, 23)), Some("秋分の日"));
    assert_eq!(holiday_name(d(2099, 11, 3)), Some("文化の日"));
    assert_eq!(holiday_name(d(2100, 1, 1)), None);
    assert!(!is_holiday(d(2100, 5, 5)));
    assert!(!is_holiday(NaiveDate::MIN));
    assert!(!is_holiday(NaiveDate::MAX));
    assert!(holidays_between(d(2100, 1, 1), d(2100, 12, 31)).is_empty());
    assert!(holidays_between(d(1900, 1, 1), d(1948, 7, 19)).is_empty());
    assert!(holidays_between(d(2027, 5, 5), d(2027, 5, 3)).is_empty());
    assert_eq!(
        holidays_between(NaiveDate::MIN, NaiveDate::MAX).len(),
        holidays_between(d(1948, 1, 1), d(2099, 12, 31)).len()
    );
}
