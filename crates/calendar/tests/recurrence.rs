//! Recurrence rules: parsing and canonical text, expansion against hand-checked calendars
//! (RFC 5545's own examples and 2027), random rules against a brute-force reference, and
//! random text that must never make the parser panic.

#![allow(clippy::unwrap_used)]

use chrono::{Datelike, Days, NaiveDate, Weekday};
use musubi_calendar::recurrence::{occurrences, Freq, Rule, RuleError};

fn d(y: i32, m: u32, day: u32) -> NaiveDate {
    NaiveDate::from_ymd_opt(y, m, day).unwrap()
}

fn ymd(text: &str) -> NaiveDate {
    NaiveDate::parse_from_str(text, "%Y-%m-%d").unwrap()
}

/// Every occurrence from `start`, up to `limit`, with a window wide enough for any test here.
fn series(rule: &str, start: NaiveDate, limit: usize) -> Vec<NaiveDate> {
    let rule = Rule::parse(rule).unwrap();
    occurrences(&rule, start, &[], start, d(2200, 12, 31), limit)
}

// ---------------------------------------------------------------------------------------
// Parsing

#[test]
fn parses_the_examples() {
    let rule = Rule::parse("FREQ=WEEKLY;INTERVAL=2;BYDAY=MO,TH;UNTIL=20270331").unwrap();
    assert_eq!(rule.freq, Freq::Weekly);
    assert_eq!(rule.interval, 2);
    assert_eq!(rule.count, None);
    assert_eq!(rule.until, Some(d(2027, 3, 31)));
    assert_eq!(
        rule.by_day,
        vec![(None, Weekday::Mon), (None, Weekday::Thu)]
    );
    assert_eq!(
        rule.to_string(),
        "FREQ=WEEKLY;INTERVAL=2;UNTIL=20270331;BYDAY=MO,TH"
    );

    let rule = Rule::parse("RRULE:FREQ=MONTHLY;BYDAY=2TU").unwrap();
    assert_eq!(rule.by_day, vec![(Some(2), Weekday::Tue)]);
    assert_eq!(rule.to_string(), "FREQ=MONTHLY;BYDAY=2TU");

    let rule = Rule::parse("rrule:freq=monthly;byday=-1fr,+1mo;bymonth=12,1,12").unwrap();
    assert_eq!(
        rule.by_day,
        vec![(Some(1), Weekday::Mon), (Some(-1), Weekday::Fri)]
    );
    assert_eq!(rule.by_month, vec![1, 12]);
    assert_eq!(rule.to_string(), "FREQ=MONTHLY;BYMONTH=1,12;BYDAY=1MO,-1FR");

    let rule = Rule::parse(" FREQ=YEARLY;COUNT=5;BYMONTHDAY=-1,15;WKST=SU; \r\n").unwrap();
    assert_eq!(rule.count, Some(5));
    assert_eq!(rule.by_month_day, vec![-1, 15]);
    assert_eq!(rule.week_start, Weekday::Sun);
    assert_eq!(
        rule.to_string(),
        "FREQ=YEARLY;COUNT=5;BYMONTHDAY=-1,15;WKST=SU"
    );

    assert_eq!(Rule::parse("FREQ=DAILY").unwrap(), Rule::new(Freq::Daily));
    assert_eq!(
        "FREQ=DAILY;INTERVAL=1".parse::<Rule>().unwrap().to_string(),
        "FREQ=DAILY"
    );
}

#[test]
fn until_as_date_or_date_time() {
    let until = |text: &str| Rule::parse(&format!("FREQ=DAILY;UNTIL={text}")).map(|r| r.until);
    assert_eq!(until("20270331"), Ok(Some(d(2027, 3, 31))));
    // End of the Tokyo day, as Google Calendar writes it.
    assert_eq!(until("20270331T145959Z"), Ok(Some(d(2027, 3, 31))));
    // 15:00 UTC is already the next day in Tokyo.
    assert_eq!(until("20270331T150000Z"), Ok(Some(d(2027, 4, 1))));
    // A floating time is Tokyo time.
    assert_eq!(until("20270331T235959"), Ok(Some(d(2027, 3, 31))));
    assert_eq!(until("20271231T235960Z"), Ok(Some(d(2028, 1, 1))));
    for bad in [
        "2027033",
        "20270231",
        "20270331T",
        "20270331T2500Z",
        "20270331T250000Z",
        "20270331X145959Z",
        "20270331T145959+",
        "2027-03-31",
        "+2027033",
        "２０２７0331",
    ] {
        assert!(
            matches!(
                until(bad),
                Err(RuleError::InvalidValue { part: "UNTIL", .. })
            ),
            "{bad}: {:?}",
            until(bad)
        );
    }
}

#[test]
fn rejects_what_it_does_not_support() {
    let unsupported = [
        "FREQ=MONTHLY;BYDAY=MO;BYSETPOS=-1",
        "FREQ=DAILY;BYHOUR=9",
        "FREQ=DAILY;BYMINUTE=30",
        "FREQ=DAILY;BYSECOND=1",
        "FREQ=YEARLY;BYWEEKNO=20",
        "FREQ=YEARLY;BYYEARDAY=100",
        "FREQ=DAILY;FOO=1",
        "FREQ=DAILY;X-NAME=1",
        "FREQ=HOURLY",
        "FREQ=MINUTELY",
        "FREQ=SECONDLY",
        "FREQ=YEARLY;RSCALE=JAPANESE",
    ];
    for text in unsupported {
        assert!(
            matches!(Rule::parse(text), Err(RuleError::Unsupported(_))),
            "{text}: {:?}",
            Rule::parse(text)
        );
    }
    assert_eq!(
        Rule::parse("FREQ=MONTHLY;BYSETPOS=-1")
            .unwrap_err()
            .to_string(),
        "unsupported in recurrence rules: BYSETPOS"
    );
}

#[test]
fn rejects_invalid_rules() {
    use RuleError::*;
    type Check = fn(&RuleError) -> bool;
    let cases: &[(&str, Check)] = &[
        ("", |e| *e == Empty),
        ("RRULE:", |e| *e == Empty),
        ("INTERVAL=2", |e| *e == MissingFreq),
        ("FREQ=DAILY;COUNT=3;UNTIL=20270101", |e| *e == CountAndUntil),
        ("FREQ=DAILY;UNTIL=20270101;COUNT=3", |e| *e == CountAndUntil),
        ("FREQ=DAILY;FREQ=WEEKLY", |e| *e == Duplicate("FREQ".into())),
        ("FREQ=DAILY;COUNT=2;COUNT=2", |e| {
            *e == Duplicate("COUNT".into())
        }),
        ("FREQ=DAILY;COUNT", |e| matches!(e, Syntax(_))),
        ("FREQ=DAILY;=3", |e| matches!(e, Syntax(_))),
        ("FREQ=DAILY; COUNT=3", |e| matches!(e, Syntax(_))),
        ("FREQ=FORTNIGHTLY", |e| {
            matches!(e, InvalidValue { part: "FREQ", .. })
        }),
        ("FREQ=DAILY;INTERVAL=0", |e| {
            matches!(
                e,
                InvalidValue {
                    part: "INTERVAL",
                    ..
                }
            )
        }),
        ("FREQ=DAILY;INTERVAL=100", |e| {
            matches!(
                e,
                InvalidValue {
                    part: "INTERVAL",
                    ..
                }
            )
        }),
        ("FREQ=DAILY;INTERVAL=-1", |e| {
            matches!(
                e,
                InvalidValue {
                    part: "INTERVAL",
                    ..
                }
            )
        }),
        ("FREQ=DAILY;INTERVAL=+2", |e| {
            matches!(
                e,
                InvalidValue {
                    part: "INTERVAL",
                    ..
                }
            )
        }),
        ("FREQ=DAILY;INTERVAL=", |e| {
            matches!(
                e,
                InvalidValue {
                    part: "INTERVAL",
                    ..
                }
            )
        }),
        ("FREQ=DAILY;COUNT=0", |e| {
            matches!(e, InvalidValue { part: "COUNT", .. })
        }),
        ("FREQ=DAILY;COUNT=1001", |e| {
            matches!(e, InvalidValue { part: "COUNT", .. })
        }),
        ("FREQ=DAILY;COUNT=99999999", |e| {
            matches!(e, InvalidValue { part: "COUNT", .. })
        }),
        ("FREQ=WEEKLY;BYDAY=XX", |e| {
            matches!(e, InvalidValue { part: "BYDAY", .. })
        }),
        ("FREQ=WEEKLY;BYDAY=MO,", |e| {
            matches!(e, InvalidValue { part: "BYDAY", .. })
        }),
        ("FREQ=MONTHLY;BYDAY=0MO", |e| {
            matches!(e, InvalidValue { part: "BYDAY", .. })
        }),
        ("FREQ=YEARLY;BYDAY=54MO", |e| {
            matches!(e, InvalidValue { part: "BYDAY", .. })
        }),
        ("FREQ=YEARLY;BYDAY=100MO", |e| {
            matches!(e, InvalidValue { part: "BYDAY", .. })
        }),
        ("FREQ=MONTHLY;BYDAY=--1MO", |e| {
            matches!(e, InvalidValue { part: "BYDAY", .. })
        }),
        ("FREQ=WEEKLY;BYDAY=2MO", |e| matches!(e, Invalid(_))),
        ("FREQ=DAILY;BYDAY=-1FR", |e| matches!(e, Invalid(_))),
        ("FREQ=WEEKLY;BYMONTHDAY=1", |e| matches!(e, Invalid(_))),
        ("FREQ=MONTHLY;BYMONTHDAY=0", |e| {
            matches!(
                e,
                InvalidValue {
                    part: "BYMONTHDAY",
                    ..
                }
            )
        }),
        ("FREQ=MONTHLY;BYMONTHDAY=32", |e| {
            matches!(
                e,
                InvalidValue {
                    part: "BYMONTHDAY",
                    ..
                }
            )
        }),
        ("FREQ=MONTHLY;BYMONTHDAY=-32", |e| {
            matches!(
                e,
                InvalidValue {
                    part: "BYMONTHDAY",
                    ..
                }
            )
        }),
        ("FREQ=YEARLY;BYMONTH=0", |e| {
            matches!(
                e,
                InvalidValue {
                    part: "BYMONTH",
                    ..
                }
            )
        }),
        ("FREQ=YEARLY;BYMONTH=13", |e| {
            matches!(
                e,
                InvalidValue {
                    part: "BYMONTH",
                    ..
                }
            )
        }),
        ("FREQ=YEARLY;BYMONTH=-1", |e| {
            matches!(
                e,
                InvalidValue {
                    part: "BYMONTH",
                    ..
                }
            )
        }),
        ("FREQ=WEEKLY;WKST=XX", |e| {
            matches!(e, InvalidValue { part: "WKST", .. })
        }),
        ("FREQ=WEEKLY;BYDAY=月", |e| {
            matches!(e, InvalidValue { part: "BYDAY", .. })
        }),
        ("FREQ=WEEKLY;BYDAY=1月", |e| {
            matches!(e, InvalidValue { part: "BYDAY", .. })
        }),
    ];
    for (text, ok) in cases {
        let result = Rule::parse(text);
        match &result {
            Err(e) if ok(e) => {}
            other => panic!("{text:?} gave {other:?}"),
        }
    }
}

#[test]
fn too_long_input() {
    let long = format!("FREQ=DAILY;{}", "BYMONTH=1;".repeat(60));
    assert!(long.len() > 500);
    assert_eq!(Rule::parse(&long), Err(RuleError::TooLong));
    assert_eq!(Rule::parse(&"x".repeat(100_000)), Err(RuleError::TooLong));
    // 500 characters exactly is still looked at (and here fails for its content).
    let just = format!("FREQ=DAILY;BYMONTH={}", "1,".repeat(240));
    assert_eq!(just.chars().count(), 499);
    assert!(matches!(
        Rule::parse(&just),
        Err(RuleError::InvalidValue { .. })
    ));
}

#[test]
fn canonical_text_round_trips() {
    let texts = [
        "FREQ=DAILY",
        "FREQ=DAILY;INTERVAL=3;COUNT=4",
        "FREQ=WEEKLY;BYDAY=TH",
        "FREQ=WEEKLY;INTERVAL=2;UNTIL=20270331;BYDAY=MO,TH",
        "FREQ=WEEKLY;INTERVAL=2;COUNT=4;BYDAY=TU,SU;WKST=SU",
        "FREQ=MONTHLY;BYDAY=2TU",
        "FREQ=MONTHLY;BYDAY=-1FR",
        "FREQ=MONTHLY;BYMONTHDAY=-3",
        "FREQ=MONTHLY;BYMONTHDAY=13;BYDAY=FR",
        "FREQ=YEARLY;BYMONTH=1;BYDAY=2MO",
        "FREQ=YEARLY;INTERVAL=2;COUNT=10;BYMONTH=1,2,3",
        "FREQ=YEARLY;BYDAY=20MO",
    ];
    for text in texts {
        let rule = Rule::parse(text).unwrap();
        assert_eq!(rule.to_string(), text);
        assert_eq!(Rule::parse(&rule.to_string()).unwrap(), rule);
        assert_eq!(rule.ical_value(false), text);
    }
    // In a timed event's RRULE, UNTIL is the end of the Tokyo day in UTC, read back as the
    // same date.
    let rule = Rule::parse("FREQ=WEEKLY;UNTIL=20270331;BYDAY=TH").unwrap();
    let timed = rule.ical_value(true);
    assert_eq!(timed, "FREQ=WEEKLY;UNTIL=20270331T145959Z;BYDAY=TH");
    assert_eq!(Rule::parse(&timed).unwrap(), rule);
}

#[test]
fn invalid_rules_built_in_code_expand_to_nothing() {
    let start = d(2027, 1, 1);
    let mut rule = Rule::new(Freq::Daily);
    rule.interval = 0;
    assert!(rule.validate().is_err());
    assert!(occurrences(&rule, start, &[], start, d(2027, 12, 31), 100).is_empty());
    let mut rule = Rule::new(Freq::Monthly);
    rule.by_month_day = vec![40];
    assert!(occurrences(&rule, start, &[], start, d(2027, 12, 31), 100).is_empty());
    let mut rule = Rule::new(Freq::Yearly);
    rule.by_month = vec![0, 13, 200];
    assert!(occurrences(&rule, start, &[], start, d(2027, 12, 31), 100).is_empty());
    let mut rule = Rule::new(Freq::Weekly);
    rule.by_day = vec![(Some(1), Weekday::Mon)];
    assert!(occurrences(&rule, start, &[], start, d(2027, 12, 31), 100).is_empty());
    let mut rule = Rule::new(Freq::Daily);
    rule.count = Some(3);
    rule.until = Some(start);
    assert_eq!(rule.validate(), Err(RuleError::CountAndUntil));
}

// ---------------------------------------------------------------------------------------
// Expansion: RFC 5545 section 3.8.5.3's examples (dates in America/New_York there, but
// the dates are what matter) and 2027 calendars checked by hand.

#[test]
fn rfc5545_examples() {
    let cases: &[(&str, &str, usize, &[&str])] = &[
        (
            "FREQ=DAILY;COUNT=10",
            "1997-09-02",
            99,
            &[
                "1997-09-02",
                "1997-09-03",
                "1997-09-04",
                "1997-09-05",
                "1997-09-06",
                "1997-09-07",
                "1997-09-08",
                "1997-09-09",
                "1997-09-10",
                "1997-09-11",
            ],
        ),
        (
            "FREQ=DAILY;INTERVAL=10;COUNT=5",
            "1997-09-02",
            99,
            &[
                "1997-09-02",
                "1997-09-12",
                "1997-09-22",
                "1997-10-02",
                "1997-10-12",
            ],
        ),
        (
            "FREQ=WEEKLY;INTERVAL=2;COUNT=8;WKST=SU;BYDAY=TU,TH",
            "1997-09-02",
            99,
            &[
                "1997-09-02",
                "1997-09-04",
                "1997-09-16",
                "1997-09-18",
                "1997-09-30",
                "1997-10-02",
                "1997-10-14",
                "1997-10-16",
            ],
        ),
        (
            "FREQ=WEEKLY;INTERVAL=2;COUNT=4;BYDAY=TU,SU;WKST=MO",
            "1997-08-05",
            99,
            &["1997-08-05", "1997-08-10", "1997-08-19", "1997-08-24"],
        ),
        (
            "FREQ=WEEKLY;INTERVAL=2;COUNT=4;BYDAY=TU,SU;WKST=SU",
            "1997-08-05",
            99,
            &["1997-08-05", "1997-08-17", "1997-08-19", "1997-08-31"],
        ),
        (
            "FREQ=MONTHLY;COUNT=10;BYDAY=1FR",
            "1997-09-05",
            99,
            &[
                "1997-09-05",
                "1997-10-03",
                "1997-11-07",
                "1997-12-05",
                "1998-01-02",
                "1998-02-06",
                "1998-03-06",
                "1998-04-03",
                "1998-05-01",
                "1998-06-05",
            ],
        ),
        (
            "FREQ=MONTHLY;INTERVAL=2;COUNT=10;BYDAY=1SU,-1SU",
            "1997-09-07",
            99,
            &[
                "1997-09-07",
                "1997-09-28",
                "1997-11-02",
                "1997-11-30",
                "1998-01-04",
                "1998-01-25",
                "1998-03-01",
                "1998-03-29",
                "1998-05-03",
                "1998-05-31",
            ],
        ),
        (
            "FREQ=MONTHLY;COUNT=6;BYDAY=-2MO",
            "1997-09-22",
            99,
            &[
                "1997-09-22",
                "1997-10-20",
                "1997-11-17",
                "1997-12-22",
                "1998-01-19",
                "1998-02-16",
            ],
        ),
        (
            "FREQ=MONTHLY;BYMONTHDAY=-3",
            "1997-09-28",
            6,
            &[
                "1997-09-28",
                "1997-10-29",
                "1997-11-28",
                "1997-12-29",
                "1998-01-29",
                "1998-02-26",
            ],
        ),
        (
            "FREQ=MONTHLY;COUNT=10;BYMONTHDAY=2,15",
            "1997-09-02",
            99,
            &[
                "1997-09-02",
                "1997-09-15",
                "1997-10-02",
                "1997-10-15",
                "1997-11-02",
                "1997-11-15",
                "1997-12-02",
                "1997-12-15",
                "1998-01-02",
                "1998-01-15",
            ],
        ),
        (
            "FREQ=MONTHLY;COUNT=10;BYMONTHDAY=1,-1",
            "1997-09-30",
            99,
            &[
                "1997-09-30",
                "1997-10-01",
                "1997-10-31",
                "1997-11-01",
                "1997-11-30",
                "1997-12-01",
                "1997-12-31",
                "1998-01-01",
                "1998-01-31",
                "1998-02-01",
            ],
        ),
        (
            "FREQ=MONTHLY;INTERVAL=18;COUNT=10;BYMONTHDAY=10,11,12,13,14,15",
            "1997-09-10",
            99,
            &[
                "1997-09-10",
                "1997-09-11",
                "1997-09-12",
                "1997-09-13",
                "1997-09-14",
                "1997-09-15",
                "1999-03-10",
                "1999-03-11",
                "1999-03-12",
                "1999-03-13",
            ],
        ),
        (
            "FREQ=MONTHLY;INTERVAL=2;BYDAY=TU",
            "1997-09-02",
            18,
            &[
                "1997-09-02",
                "1997-09-09",
                "1997-09-16",
                "1997-09-23",
                "1997-09-30",
                "1997-11-04",
                "1997-11-11",
                "1997-11-18",
                "1997-11-25",
                "1998-01-06",
                "1998-01-13",
                "1998-01-20",
                "1998-01-27",
                "1998-03-03",
                "1998-03-10",
                "1998-03-17",
                "1998-03-24",
                "1998-03-31",
            ],
        ),
        (
            "FREQ=YEARLY;COUNT=10;BYMONTH=6,7",
            "1997-06-10",
            99,
            &[
                "1997-06-10",
                "1997-07-10",
                "1998-06-10",
                "1998-07-10",
                "1999-06-10",
                "1999-07-10",
                "2000-06-10",
                "2000-07-10",
                "2001-06-10",
                "2001-07-10",
            ],
        ),
        (
            "FREQ=YEARLY;INTERVAL=2;COUNT=10;BYMONTH=1,2,3",
            "1997-03-10",
            99,
            &[
                "1997-03-10",
                "1999-01-10",
                "1999-02-10",
                "1999-03-10",
                "2001-01-10",
                "2001-02-10",
                "2001-03-10",
                "2003-01-10",
                "2003-02-10",
                "2003-03-10",
            ],
        ),
        (
            "FREQ=YEARLY;BYDAY=20MO",
            "1997-05-19",
            3,
            &["1997-05-19", "1998-05-18", "1999-05-17"],
        ),
        (
            "FREQ=YEARLY;BYMONTH=3;BYDAY=TH",
            "1997-03-13",
            11,
            &[
                "1997-03-13",
                "1997-03-20",
                "1997-03-27",
                "1998-03-05",
                "1998-03-12",
                "1998-03-19",
                "1998-03-26",
                "1999-03-04",
                "1999-03-11",
                "1999-03-18",
                "1999-03-25",
            ],
        ),
        (
            "FREQ=MONTHLY;BYDAY=SA;BYMONTHDAY=7,8,9,10,11,12,13",
            "1997-09-13",
            10,
            &[
                "1997-09-13",
                "1997-10-11",
                "1997-11-08",
                "1997-12-13",
                "1998-01-10",
                "1998-02-07",
                "1998-03-07",
                "1998-04-11",
                "1998-05-09",
                "1998-06-13",
            ],
        ),
        // "Everyday in January, for 3 years" (the RFC's UNTIL at 14:00Z is 23:00 in Tokyo).
        (
            "FREQ=DAILY;UNTIL=20000131T140000Z;BYMONTH=1",
            "1998-01-01",
            999,
            &[],
        ),
    ];
    for &(text, start, limit, want) in cases {
        let got = series(text, ymd(start), limit);
        if want.is_empty() {
            // The January example: 3 × 31 days, all in January.
            assert_eq!(got.len(), 93, "{text}");
            assert!(got
                .iter()
                .all(|day| day.month() == 1 && (1998..=2000).contains(&day.year())));
            continue;
        }
        let want: Vec<NaiveDate> = want.iter().map(|s| ymd(s)).collect();
        assert_eq!(got, want, "{text} from {start}");
    }
}

#[test]
fn friday_the_13th_with_dtstart_excluded() {
    // RFC 5545: DTSTART 1997-09-02 (itself excluded by EXDATE).
    let rule = Rule::parse("FREQ=MONTHLY;BYDAY=FR;BYMONTHDAY=13").unwrap();
    let start = d(1997, 9, 2);
    let got = occurrences(&rule, start, &[start], start, d(2000, 12, 31), 100);
    assert_eq!(
        got,
        [
            d(1998, 2, 13),
            d(1998, 3, 13),
            d(1998, 11, 13),
            d(1999, 8, 13),
            d(2000, 10, 13)
        ]
    );
}

#[test]
fn thursday_afternoon_closure_2027() {
    let rule = Rule::parse("FREQ=WEEKLY;BYDAY=TH").unwrap();
    let got = occurrences(
        &rule,
        d(2027, 1, 7),
        &[d(2027, 4, 29)],
        d(2027, 4, 1),
        d(2027, 4, 30),
        100,
    );
    // April 2027's Thursdays are 1, 8, 15, 22 and 29 (昭和の日, excluded).
    assert_eq!(
        got,
        [d(2027, 4, 1), d(2027, 4, 8), d(2027, 4, 15), d(2027, 4, 22)]
    );
    // Without BYDAY a weekly rule repeats DTSTART's weekday.
    let plain = Rule::parse("FREQ=WEEKLY").unwrap();
    assert_eq!(
        occurrences(
            &plain,
            d(2027, 1, 7),
            &[],
            d(2027, 4, 1),
            d(2027, 4, 30),
            100
        )
        .len(),
        5
    );
}

#[test]
fn second_tuesday_conference_2027() {
    let got = series("FREQ=MONTHLY;BYDAY=2TU;UNTIL=20271231", d(2027, 1, 12), 100);
    let days = [12, 9, 9, 13, 11, 8, 13, 10, 14, 12, 9, 14];
    let want: Vec<NaiveDate> = (1..=12).map(|m| d(2027, m, days[m as usize - 1])).collect();
    assert_eq!(got, want);
}

#[test]
fn last_friday_and_last_day_2027() {
    let got = series("FREQ=MONTHLY;BYDAY=-1FR;COUNT=12", d(2027, 1, 29), 100);
    let days = [29, 26, 26, 30, 28, 25, 30, 27, 24, 29, 26, 31];
    let want: Vec<NaiveDate> = (1..=12).map(|m| d(2027, m, days[m as usize - 1])).collect();
    assert_eq!(got, want);

    let got = series("FREQ=MONTHLY;BYMONTHDAY=-1;COUNT=4", d(2027, 1, 31), 100);
    assert_eq!(
        got,
        [
            d(2027, 1, 31),
            d(2027, 2, 28),
            d(2027, 3, 31),
            d(2027, 4, 30)
        ]
    );
    let got = series("FREQ=MONTHLY;BYMONTHDAY=-1;COUNT=2", d(2028, 1, 31), 100);
    assert_eq!(got, [d(2028, 1, 31), d(2028, 2, 29)]);
}

#[test]
fn months_without_the_day_are_skipped() {
    let got = series("FREQ=MONTHLY;UNTIL=20271231", d(2027, 1, 31), 100);
    let want = [
        d(2027, 1, 31),
        d(2027, 3, 31),
        d(2027, 5, 31),
        d(2027, 7, 31),
        d(2027, 8, 31),
        d(2027, 10, 31),
        d(2027, 12, 31),
    ];
    assert_eq!(got, want);
    let got = series("FREQ=MONTHLY;BYMONTHDAY=30", d(2027, 1, 30), 3);
    assert_eq!(got, [d(2027, 1, 30), d(2027, 3, 30), d(2027, 4, 30)]);
    let got = series("FREQ=YEARLY;COUNT=3", d(2024, 2, 29), 100);
    assert_eq!(got, [d(2024, 2, 29), d(2028, 2, 29), d(2032, 2, 29)]);
}

#[test]
fn every_other_week_until_march_2027() {
    let got = series(
        "FREQ=WEEKLY;INTERVAL=2;BYDAY=MO,TH;UNTIL=20270331",
        d(2027, 1, 4),
        100,
    );
    let want = [
        (1, 4),
        (1, 7),
        (1, 18),
        (1, 21),
        (2, 1),
        (2, 4),
        (2, 15),
        (2, 18),
        (3, 1),
        (3, 4),
        (3, 15),
        (3, 18),
        (3, 29),
    ];
    let want: Vec<NaiveDate> = want.iter().map(|&(m, day)| d(2027, m, day)).collect();
    assert_eq!(got, want);
}

#[test]
fn coming_of_age_day_as_a_yearly_rule() {
    let got = series(
        "FREQ=YEARLY;BYMONTH=1;BYDAY=2MO;COUNT=4",
        d(2027, 1, 11),
        100,
    );
    assert_eq!(
        got,
        [
            d(2027, 1, 11),
            d(2028, 1, 10),
            d(2029, 1, 8),
            d(2030, 1, 14)
        ]
    );
}

#[test]
fn dtstart_is_always_the_first_occurrence_and_counts() {
    // 2027-01-01 is a Friday; the rule says Mondays. RFC 5545: DTSTART is still the first.
    let got = series("FREQ=WEEKLY;BYDAY=MO;COUNT=3", d(2027, 1, 1), 100);
    assert_eq!(got, [d(2027, 1, 1), d(2027, 1, 4), d(2027, 1, 11)]);
    assert_eq!(
        series("FREQ=DAILY;COUNT=1", d(2027, 1, 1), 100),
        [d(2027, 1, 1)]
    );
    // A start that matches the rule is not counted twice.
    let got = series("FREQ=WEEKLY;BYDAY=FR;COUNT=2", d(2027, 1, 1), 100);
    assert_eq!(got, [d(2027, 1, 1), d(2027, 1, 8)]);
}

#[test]
fn exdates_are_removed_after_count() {
    let rule = Rule::parse("FREQ=DAILY;COUNT=5").unwrap();
    let start = d(2027, 5, 1);
    let got = occurrences(
        &rule,
        start,
        &[d(2027, 5, 3), d(2027, 5, 1), d(2030, 1, 1)],
        start,
        d(2027, 12, 31),
        100,
    );
    assert_eq!(got, [d(2027, 5, 2), d(2027, 5, 4), d(2027, 5, 5)]);
}

#[test]
fn window_and_limit() {
    let rule = Rule::parse("FREQ=DAILY;INTERVAL=7").unwrap();
    let start = d(2000, 1, 3); // a Monday
    let got = occurrences(&rule, start, &[], d(2027, 4, 1), d(2027, 4, 30), 100);
    assert_eq!(
        got,
        [
            d(2027, 4, 5),
            d(2027, 4, 12),
            d(2027, 4, 19),
            d(2027, 4, 26)
        ]
    );
    assert_eq!(
        occurrences(&rule, start, &[], d(2027, 4, 1), d(2027, 4, 30), 2).len(),
        2
    );
    assert!(occurrences(&rule, start, &[], d(2027, 4, 1), d(2027, 4, 30), 0).is_empty());
    assert!(occurrences(&rule, start, &[], d(2027, 4, 30), d(2027, 4, 1), 9).is_empty());
    // A window before the start.
    assert!(occurrences(&rule, start, &[], d(1999, 1, 1), d(1999, 12, 31), 9).is_empty());
    // The window starting on the start itself.
    assert_eq!(occurrences(&rule, start, &[], start, start, 9), [start]);
    // COUNT reached before the window: nothing.
    let counted = Rule::parse("FREQ=DAILY;COUNT=10").unwrap();
    assert!(occurrences(&counted, start, &[], d(2027, 1, 1), d(2027, 12, 31), 9).is_empty());
    // An UNTIL before the start leaves just DTSTART.
    let ended = Rule::parse("FREQ=DAILY;UNTIL=19991231").unwrap();
    assert_eq!(
        occurrences(&ended, start, &[], start, d(2000, 12, 31), 9),
        [start]
    );
}

#[test]
fn a_rule_that_never_matches_ends() {
    // The expansion's work is bounded, so these return (their speed is not timed here).
    for text in [
        "FREQ=YEARLY;BYMONTH=2;BYMONTHDAY=30",
        "FREQ=YEARLY;COUNT=1000;BYMONTH=2;BYMONTHDAY=30",
        "FREQ=MONTHLY;BYDAY=6MO",
        "FREQ=DAILY;BYMONTH=4;BYMONTHDAY=31",
        "FREQ=DAILY;COUNT=1000;BYMONTH=4;BYMONTHDAY=31",
        "FREQ=WEEKLY;COUNT=1000;BYMONTH=2;BYDAY=MO;INTERVAL=52",
    ] {
        let rule = Rule::parse(text).unwrap();
        let start = d(2027, 1, 1);
        let got = occurrences(&rule, start, &[], start, NaiveDate::MAX, usize::MAX);
        assert!(got.len() <= 1000, "{text}");
        assert_eq!(got.first(), Some(&start));
        let got = occurrences(&rule, start, &[], d(3000, 1, 1), NaiveDate::MAX, usize::MAX);
        assert!(got.len() <= 1000, "{text}");
    }
}

#[test]
fn the_ends_of_chrono_range_do_not_panic() {
    for text in [
        "FREQ=DAILY",
        "FREQ=WEEKLY;BYDAY=MO,SU;WKST=SU",
        "FREQ=MONTHLY;BYMONTHDAY=-1",
        "FREQ=YEARLY;INTERVAL=99",
        "FREQ=YEARLY;BYDAY=-1SU",
        "FREQ=MONTHLY;INTERVAL=99;COUNT=1000",
    ] {
        let rule = Rule::parse(text).unwrap();
        let late = NaiveDate::MAX.checked_sub_days(Days::new(40)).unwrap();
        let got = occurrences(&rule, late, &[], late, NaiveDate::MAX, usize::MAX);
        assert_eq!(got.first(), Some(&late), "{text}");
        let early = NaiveDate::MIN;
        let got = occurrences(&rule, early, &[], early, NaiveDate::MAX, 50);
        assert!(!got.is_empty(), "{text}");
        let got = occurrences(&rule, early, &[], d(2027, 1, 1), NaiveDate::MAX, 50);
        assert!(got.windows(2).all(|w| w[0] < w[1]), "{text}");
    }
}

// ---------------------------------------------------------------------------------------
// Random rules against a brute-force reference.

/// xorshift64*: reproducible without a dependency.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
    fn range(&mut self, lo: i64, hi_inclusive: i64) -> i64 {
        lo + i64::try_from(self.below(u64::try_from(hi_inclusive - lo + 1).unwrap())).unwrap()
    }
    fn chance(&mut self, percent: u64) -> bool {
        self.below(100) < percent
    }
}

const WEEKDAYS: [Weekday; 7] = [
    Weekday::Mon,
    Weekday::Tue,
    Weekday::Wed,
    Weekday::Thu,
    Weekday::Fri,
    Weekday::Sat,
    Weekday::Sun,
];

fn random_rule(rng: &mut Rng, start: NaiveDate) -> Rule {
    let freq = [Freq::Daily, Freq::Weekly, Freq::Monthly, Freq::Yearly][rng.below(4) as usize];
    let mut rule = Rule::new(freq);
    rule.interval = if rng.chance(60) {
        1
    } else if rng.chance(80) {
        rng.range(2, 4) as u16
    } else {
        rng.range(5, 99) as u16
    };
    if rng.chance(40) {
        rule.count = Some(rng.range(1, 40) as u16);
    } else if rng.chance(50) {
        rule.until = Some(start + Days::new(rng.below(900)));
    }
    if rng.chance(50) {
        for _ in 0..rng.range(1, 4) {
            let weekday = WEEKDAYS[rng.below(7) as usize];
            let ordinal = match freq {
                Freq::Monthly if rng.chance(50) => {
                    Some([1, 2, 3, 4, 5, -1, -2, -5][rng.below(8) as usize])
                }
                Freq::Yearly if rng.chance(50) => {
                    Some(rng.range(-53, 53) as i8).filter(|&n| n != 0)
                }
                _ => None,
            };
            rule.by_day.push((ordinal, weekday));
        }
    }
    if freq != Freq::Weekly && rng.chance(35) {
        for _ in 0..rng.range(1, 3) {
            let day = rng.range(1, 31) as i8;
            rule.by_month_day
                .push(if rng.chance(30) { -day } else { day });
        }
    }
    if rng.chance(30) {
        for _ in 0..rng.range(1, 4) {
            rule.by_month.push(rng.range(1, 12) as u8);
        }
    }
    if rng.chance(20) {
        rule.week_start = WEEKDAYS[rng.below(7) as usize];
    }
    rule
}

fn days_in_month(year: i32, month: u32) -> Vec<NaiveDate> {
    (1..=31)
        .filter_map(|day| NaiveDate::from_ymd_opt(year, month, day))
        .collect()
}

/// The rule's meaning, written the slow way: every day is tested on its own.
fn reference(
    rule: &Rule,
    start: NaiveDate,
    exdates: &[NaiveDate],
    from: NaiveDate,
    to: NaiveDate,
    limit: usize,
) -> Vec<NaiveDate> {
    let week_of = |day: NaiveDate| {
        let mut first = day;
        while first.weekday() != rule.week_start {
            first = first.pred_opt().unwrap();
        }
        first
    };
    let in_period = |day: NaiveDate| -> bool {
        let interval = i64::from(rule.interval);
        let units = match rule.freq {
            Freq::Daily => (day - start).num_days(),
            Freq::Weekly => (week_of(day) - week_of(start)).num_days() / 7,
            Freq::Monthly => {
                i64::from(day.year() - start.year()) * 12 + i64::from(day.month())
                    - i64::from(start.month())
            }
            Freq::Yearly => i64::from(day.year() - start.year()),
        };
        units % interval == 0
    };
    let nth_ok = |day: NaiveDate, weekday: Weekday, n: i8| -> bool {
        let scope: Vec<NaiveDate> = if rule.freq == Freq::Yearly && rule.by_month.is_empty() {
            (1..=12)
                .flat_map(|m| days_in_month(day.year(), m))
                .collect()
        } else {
            days_in_month(day.year(), day.month())
        };
        let same: Vec<NaiveDate> = scope
            .into_iter()
            .filter(|x| x.weekday() == weekday)
            .collect();
        let index = if n > 0 {
            usize::try_from(n - 1).ok()
        } else {
            same.len().checked_sub(usize::try_from(-n).unwrap())
        };
        index.and_then(|i| same.get(i)) == Some(&day)
    };
    let by_ok = |day: NaiveDate| -> bool {
        if !rule.by_month.is_empty() && !rule.by_month.contains(&(day.month() as u8)) {
            return false;
        }
        let month = days_in_month(day.year(), day.month());
        if !rule.by_month_day.is_empty()
            && !rule.by_month_day.iter().any(|&md| {
                let pick = if md > 0 {
                    month.get(md as usize - 1)
                } else {
                    month
                        .len()
                        .checked_sub((-md) as usize)
                        .and_then(|i| month.get(i))
                };
                pick == Some(&day)
            })
        {
            return false;
        }
        if !rule.by_day.is_empty()
            && !rule
                .by_day
                .iter()
                .any(|&(n, wd)| day.weekday() == wd && n.is_none_or(|n| nth_ok(day, wd, n)))
        {
            return false;
        }
        if rule.by_day.is_empty() && rule.by_month_day.is_empty() {
            return match rule.freq {
                Freq::Daily => true,
                Freq::Weekly => day.weekday() == start.weekday(),
                Freq::Monthly => day.day() == start.day(),
                Freq::Yearly => {
                    day.day() == start.day()
                        && (!rule.by_month.is_empty() || day.month() == start.month())
                }
            };
        }
        true
    };

    let mut all = vec![start];
    let end = rule.until.map_or(to, |u| u.min(to));
    let mut day = start.succ_opt().unwrap();
    while day <= end && rule.count.is_none_or(|c| all.len() < usize::from(c)) {
        if in_period(day) && by_ok(day) {
            all.push(day);
        }
        day = day.succ_opt().unwrap();
    }
    all.into_iter()
        .filter(|x| (from..=to).contains(x) && !exdates.contains(x))
        .take(limit)
        .collect()
}

#[test]
fn random_rules_match_the_reference() {
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let mut nonempty = 0;
    for case in 0..600 {
        let start = d(2025, 1, 1) + Days::new(rng.below(1500));
        let rule = random_rule(&mut rng, start);
        assert!(rule.validate().is_ok(), "{rule:?}");
        let from = if rng.chance(30) {
            start
        } else {
            start + Days::new(rng.below(1500))
        };
        let to = from + Days::new(rng.below(900));
        let mut exdates = Vec::new();
        for _ in 0..rng.below(6) {
            exdates.push(start + Days::new(rng.below(400)));
        }
        exdates.push(start);
        if rng.chance(50) {
            exdates.pop();
        }
        let limit = if rng.chance(20) {
            rng.range(1, 20) as usize
        } else {
            usize::MAX
        };

        let got = occurrences(&rule, start, &exdates, from, to, limit);
        let want = reference(&rule, start, &exdates, from, to, limit);
        assert_eq!(got, want, "case {case}: {rule} from {start}, window {from}..={to}, exdates {exdates:?}, limit {limit}");
        if got.len() > 1 {
            nonempty += 1;
        }

        // The properties, stated on their own.
        assert!(got.windows(2).all(|w| w[0] < w[1]));
        assert!(got
            .iter()
            .all(|x| (from..=to).contains(x) && !exdates.contains(x)));
        assert!(got.len() <= limit);
        if let Some(count) = rule.count {
            assert!(got.len() <= usize::from(count));
        }
        if let Some(until) = rule.until {
            assert!(got.iter().all(|&x| x <= until || x == start));
        }

        // Canonical text: parsing it gives the same rule with sorted, deduplicated lists.
        let reparsed = Rule::parse(&rule.to_string()).unwrap();
        let mut canonical = rule.clone();
        canonical
            .by_day
            .sort_by_key(|&(n, wd)| (wd.num_days_from_monday(), n));
        canonical.by_day.dedup();
        canonical.by_month_day.sort_unstable();
        canonical.by_month_day.dedup();
        canonical.by_month.sort_unstable();
        canonical.by_month.dedup();
        assert_eq!(reparsed, canonical, "{rule}");
        assert_eq!(
            reparsed.to_string(),
            Rule::parse(&reparsed.to_string()).unwrap().to_string()
        );
    }
    assert!(
        nonempty > 200,
        "too few cases produced occurrences: {nonempty}"
    );
}

#[test]
fn count_is_exact_when_the_window_is_wide() {
    let mut rng = Rng(42);
    let end = d(2400, 12, 31);
    for _ in 0..200 {
        let start = d(2026, 1, 1) + Days::new(rng.below(365));
        let mut rule = random_rule(&mut rng, start);
        rule.until = None;
        rule.interval = rule.interval.min(3);
        let count = rng.range(1, 60) as u16;
        rule.count = Some(count);
        let got = occurrences(&rule, start, &[], start, end, usize::MAX);
        let want = reference(&rule, start, &[], start, end, usize::MAX);
        assert_eq!(got, want, "{rule} from {start}");
        // Without BY parts every period has its occurrence (the day exists in every month).
        let plain =
            rule.by_day.is_empty() && rule.by_month_day.is_empty() && rule.by_month.is_empty();
        if plain && start.day() <= 28 {
            assert_eq!(got.len(), usize::from(count), "{rule} from {start}");
        }
    }
}

// ---------------------------------------------------------------------------------------
// Random text: the parser may refuse anything but must never panic, and whatever it accepts
// must print back to text it accepts again.

#[test]
fn random_text_never_panics() {
    let tokens = [
        "FREQ",
        "=",
        "DAILY",
        "WEEKLY",
        "MONTHLY",
        "YEARLY",
        "HOURLY",
        ";",
        ",",
        "RRULE:",
        "rrule:",
        "INTERVAL",
        "COUNT",
        "UNTIL",
        "BYDAY",
        "BYMONTHDAY",
        "BYMONTH",
        "BYSETPOS",
        "WKST",
        "MO",
        "TU",
        "SU",
        "FR",
        "1",
        "2",
        "-",
        "+",
        "0",
        "31",
        "53",
        "99",
        "1000",
        "20270331",
        "T145959Z",
        "T",
        "Z",
        "x",
        " ",
        "\r\n",
        "\0",
        "é",
        "日",
        "🎌",
        "\u{202e}",
        "9999999999",
        "-1FR",
        "2TU",
        "20270231",
        "::",
        "==",
    ];
    let mut rng = Rng(7);
    let mut accepted = 0;
    for _ in 0..30_000 {
        let mut text = String::new();
        let parts = rng.below(14);
        for _ in 0..parts {
            if rng.chance(8) {
                text.push(char::from_u32(rng.below(0x11_0000) as u32).unwrap_or('?'));
            } else {
                text.push_str(tokens[rng.below(tokens.len() as u64) as usize]);
            }
        }
        // A valid prefix now and then so the deeper checks run.
        if rng.chance(50) {
            text = format!(
                "FREQ={};{text}",
                ["DAILY", "WEEKLY", "MONTHLY", "YEARLY"][rng.below(4) as usize]
            );
        }
        if let Ok(rule) = Rule::parse(&text) {
            accepted += 1;
            let again = Rule::parse(&rule.to_string()).unwrap();
            assert_eq!(again, rule, "{text:?}");
            let start = d(2027, 1, 1);
            let got = occurrences(&rule, start, &[], start, d(2029, 12, 31), 50);
            assert_eq!(got.first(), Some(&start));
        }
    }
    assert!(accepted > 100, "only {accepted} random rules parsed");

    // Raw bytes that happen to be UTF-8, and long inputs.
    for _ in 0..5_000 {
        let len = rng.below(700) as usize;
        let bytes: Vec<u8> = (0..len).map(|_| rng.below(256) as u8).collect();
        let text = String::from_utf8_lossy(&bytes);
        let _ = Rule::parse(&text);
    }
}

#[test]
fn a_series_produces_its_first_day_only_when_the_rule_has_it() {
    let thursdays = Rule::parse("FREQ=WEEKLY;BYDAY=TH;COUNT=6").expect("a rule");
    let thursday = NaiveDate::from_ymd_opt(2027, 1, 7).expect("a day");
    assert!(thursdays.produces(thursday));
    assert!(!thursdays.produces(thursday - chrono::Days::new(3)));
    let second_tuesday = Rule::parse("FREQ=MONTHLY;BYDAY=2TU").expect("a rule");
    assert!(second_tuesday.produces(NaiveDate::from_ymd_opt(2027, 1, 12).expect("a day")));
    assert!(!second_tuesday.produces(NaiveDate::from_ymd_opt(2027, 1, 5).expect("a day")));
    // A rule without BY parts repeats its start's own day.
    assert!(Rule::parse("FREQ=MONTHLY")
        .expect("a rule")
        .produces(thursday));
}
