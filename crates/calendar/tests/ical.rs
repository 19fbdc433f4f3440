//! iCalendar output: line folding, TEXT escaping, date values and the fixed blocks, checked
//! with a small unfolder and unescaper written here.

#![allow(clippy::unwrap_used)]

use chrono::{DateTime, NaiveDate, NaiveDateTime, TimeZone, Utc};
use musubi_calendar::ical::{escape_text, Calendar, Event, When, VTIMEZONE};
use musubi_calendar::recurrence::Rule;

fn d(y: i32, m: u32, day: u32) -> NaiveDate {
    NaiveDate::from_ymd_opt(y, m, day).unwrap()
}

fn at(y: i32, m: u32, day: u32, h: u32, min: u32) -> NaiveDateTime {
    d(y, m, day).and_hms_opt(h, min, 0).unwrap()
}

fn stamp() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2027, 3, 1, 0, 30, 5).unwrap()
}

fn event(summary: &str) -> Event {
    Event {
        uid: "0190f3a2-7c1e-7000-8000-000000000001@musubi".to_owned(),
        summary: summary.to_owned(),
        description: None,
        location: None,
        categories: Vec::new(),
        start: When::Date(d(2027, 4, 15)),
        end: When::Date(d(2027, 4, 15)),
        rule: None,
        exdates: Vec::new(),
        sequence: 0,
        stamp: stamp(),
        last_modified: None,
    }
}

fn render(events: Vec<Event>) -> String {
    Calendar {
        name: "ひまわり訪問看護 予定".to_owned(),
        events,
    }
    .render()
}

/// RFC 5545 3.1: a CRLF followed by one space or tab is removed.
fn unfold(text: &str) -> Vec<String> {
    assert!(text.ends_with("\r\n"), "missing final CRLF");
    let joined = text.replace("\r\n ", "").replace("\r\n\t", "");
    let body = joined.strip_suffix("\r\n").unwrap();
    assert!(
        !body.contains('\n') || body.split("\r\n").all(|l| !l.contains('\n')),
        "bare LF"
    );
    body.split("\r\n").map(str::to_owned).collect()
}

/// RFC 5545 3.3.11, the reverse of escaping.
fn unescape(value: &str) -> String {
    let mut out = String::new();
    let mut chars = value.chars();
    while let Some(c) = chars.next() {
        if c == '\\' {
            match chars.next() {
                Some('n' | 'N') => out.push('\n'),
                Some(other @ ('\\' | ';' | ',')) => out.push(other),
                other => panic!("bad escape \\{other:?} in {value:?}"),
            }
        } else {
            out.push(c);
        }
    }
    out
}

/// The value of the first unfolded line whose name (before `;` or `:`) is `name`, inside the
/// first VEVENT.
fn property(lines: &[String], name: &str) -> Option<String> {
    let begin = lines.iter().position(|l| l == "BEGIN:VEVENT")?;
    lines[begin..].iter().find_map(|l| {
        let (head, value) = l.split_once(':')?;
        let prop = head.split(';').next()?;
        (prop == name).then(|| value.to_owned())
    })
}

/// The unfolded lines from the first VEVENT on that start with `prefix`.
fn full_line<'a>(lines: &'a [String], prefix: &str) -> Vec<&'a str> {
    let begin = lines
        .iter()
        .position(|l| l == "BEGIN:VEVENT")
        .unwrap_or(lines.len());
    lines[begin..]
        .iter()
        .filter(|l| l.starts_with(prefix))
        .map(String::as_str)
        .collect()
}

/// Every physical line: at most 75 octets, valid UTF-8 on its own, no stray CR or LF.
fn assert_physical_lines_ok(text: &str) {
    let bytes = text.as_bytes();
    let mut lines = Vec::new();
    let mut start = 0;
    let mut i = 0;
    while i + 1 < bytes.len() {
        if bytes[i] == b'\r' && bytes[i + 1] == b'\n' {
            lines.push(&bytes[start..i]);
            start = i + 2;
            i += 2;
        } else {
            i += 1;
        }
    }
    assert_eq!(start, bytes.len(), "text does not end with CRLF");
    for (n, line) in lines.iter().enumerate() {
        assert!(line.len() <= 75, "line {n} has {} octets", line.len());
        let line =
            std::str::from_utf8(line).unwrap_or_else(|e| panic!("line {n} is not UTF-8: {e}"));
        assert!(
            !line.contains(['\r', '\n']),
            "line {n} has a stray line break"
        );
    }
}

#[test]
fn long_japanese_summary_is_folded_and_unfolds_exactly() {
    let summary =
        "【重要】ひまわり訪問看護ステーション 定例カンファレンス（第2火曜）：担当者会議、\
        褥瘡ケアの症例検討、夜間オンコール体制の見直し、ご家族への説明資料の確認 🎌 😀 — \
        終了後に事務連絡があります。ABC-123 mixed ascii text to shift the octet boundaries x";
    for pad in 0..4 {
        // Shift the text by one octet each time so every fold position lands mid-character
        // for some run.
        let summary = format!("{}{summary}", "a".repeat(pad));
        let mut e = event(&summary);
        e.description = Some(summary.repeat(3));
        e.location = Some(format!("東京都世田谷区{}", "桜丘".repeat(40)));
        let text = render(vec![e]);
        assert_physical_lines_ok(&text);
        assert!(
            text.lines().any(|l| l.starts_with(' ')),
            "nothing was folded"
        );
        let lines = unfold(&text);
        assert_eq!(unescape(&property(&lines, "SUMMARY").unwrap()), summary);
        assert_eq!(
            unescape(&property(&lines, "DESCRIPTION").unwrap()),
            summary.repeat(3)
        );
        assert_eq!(
            unescape(&property(&lines, "LOCATION").unwrap()),
            format!("東京都世田谷区{}", "桜丘".repeat(40))
        );
    }
}

#[test]
fn a_line_of_exactly_75_octets_is_not_folded() {
    // "SUMMARY:" is 8 octets; 67 ASCII octets more make 75.
    let text = render(vec![event(&"x".repeat(67))]);
    assert!(text.contains(&format!("\r\nSUMMARY:{}\r\n", "x".repeat(67))));
    let text = render(vec![event(&"x".repeat(68))]);
    assert!(text.contains(&format!("\r\nSUMMARY:{}\r\n x\r\n", "x".repeat(67))));
    // Three-octet characters: 8 + 22 × 3 = 74, the 23rd would make 77.
    let text = render(vec![event(&"あ".repeat(23))]);
    assert!(text.contains(&format!("\r\nSUMMARY:{}\r\n あ\r\n", "あ".repeat(22))));
}

#[test]
fn text_escaping_round_trips() {
    let tricky = "a\\b;c,d\ne\r\nf\rg \t h:i \"quoted\" ;;,, \\n literal";
    let mut e = event(tricky);
    e.description = Some(tricky.to_owned());
    e.location = Some("会議室A, 2階; 奥".to_owned());
    e.categories = vec!["訪問".to_owned(), "会議, 定例".to_owned(), "a;b".to_owned()];
    let text = render(vec![e]);
    assert_physical_lines_ok(&text);
    let lines = unfold(&text);
    let normalised = tricky.replace("\r\n", "\n").replace('\r', "\n");
    assert_eq!(unescape(&property(&lines, "SUMMARY").unwrap()), normalised);
    assert_eq!(
        unescape(&property(&lines, "DESCRIPTION").unwrap()),
        normalised
    );
    assert_eq!(
        property(&lines, "LOCATION").unwrap(),
        "会議室A\\, 2階\\; 奥"
    );
    // CATEGORIES is a list: unescaped commas separate, escaped ones belong to a value.
    assert_eq!(
        property(&lines, "CATEGORIES").unwrap(),
        "訪問,会議\\, 定例,a\\;b"
    );
    assert_eq!(escape_text("a\\;b"), "a\\\\\\;b");
}

#[test]
fn control_characters_cannot_break_the_format() {
    let nasty =
        "予定\r\nEND:VEVENT\r\nBEGIN:VEVENT\r\nSUMMARY:偽物\u{0}\u{7}\u{1b}[31m\u{7f}\u{85}x";
    let mut e = event(nasty);
    e.uid = "uid\r\nX-EVIL:1".to_owned();
    let text = render(vec![e]);
    assert_physical_lines_ok(&text);
    let lines = unfold(&text);
    assert_eq!(full_line(&lines, "BEGIN:VEVENT").len(), 1);
    assert_eq!(full_line(&lines, "END:VEVENT").len(), 1);
    assert_eq!(full_line(&lines, "X-EVIL").len(), 0);
    assert_eq!(
        unescape(&property(&lines, "SUMMARY").unwrap()),
        "予定\nEND:VEVENT\nBEGIN:VEVENT\nSUMMARY:偽物[31mx"
    );
}

#[test]
fn all_day_end_is_exclusive() {
    let one_day = event("研修");
    let mut three_days = event("研修旅行");
    three_days.end = When::Date(d(2027, 4, 17));
    let mut backwards = event("逆順");
    backwards.end = When::Date(d(2027, 4, 10));
    let mut year_end = event("年末");
    year_end.start = When::Date(d(2027, 12, 31));
    year_end.end = When::Date(d(2027, 12, 31));
    let mut timed_end = event("混在");
    timed_end.end = When::Local(at(2027, 4, 16, 9, 0));

    let expect = [
        (one_day, "20270415", "20270416"),
        (three_days, "20270415", "20270418"),
        (backwards, "20270415", "20270416"),
        (year_end, "20271231", "20280101"),
        (timed_end, "20270415", "20270417"),
    ];
    for (e, start, end) in expect {
        let summary = e.summary.clone();
        let lines = unfold(&render(vec![e]));
        assert_eq!(
            full_line(&lines, "DTSTART"),
            [format!("DTSTART;VALUE=DATE:{start}")],
            "{summary}"
        );
        assert_eq!(
            full_line(&lines, "DTEND"),
            [format!("DTEND;VALUE=DATE:{end}")],
            "{summary}"
        );
    }
}

#[test]
fn timed_events_use_tokyo_wall_time() {
    let mut e = event("木曜午後 休診");
    e.start = When::Local(at(2027, 4, 1, 14, 0));
    e.end = When::Local(at(2027, 4, 1, 18, 30));
    e.rule = Some(Rule::parse("FREQ=WEEKLY;BYDAY=TH;UNTIL=20270930").unwrap());
    e.exdates = vec![d(2027, 4, 29), d(2027, 4, 15), d(2027, 4, 29)];
    let lines = unfold(&render(vec![e]));
    assert_eq!(
        full_line(&lines, "DTSTART"),
        ["DTSTART;TZID=Asia/Tokyo:20270401T140000"]
    );
    assert_eq!(
        full_line(&lines, "DTEND"),
        ["DTEND;TZID=Asia/Tokyo:20270401T183000"]
    );
    // UNTIL of a timed event: a UTC DATE-TIME (RFC 5545), the end of 2027-09-30 in Tokyo.
    assert_eq!(
        full_line(&lines, "RRULE"),
        ["RRULE:FREQ=WEEKLY;UNTIL=20270930T145959Z;BYDAY=TH"]
    );
    assert_eq!(
        full_line(&lines, "EXDATE"),
        [
            "EXDATE;TZID=Asia/Tokyo:20270415T140000",
            "EXDATE;TZID=Asia/Tokyo:20270429T140000"
        ]
    );

    // An end not after the start is left out; an all-day end becomes the next midnight.
    let mut instant = event("瞬間");
    instant.start = When::Local(at(2027, 4, 1, 14, 0));
    instant.end = When::Local(at(2027, 4, 1, 14, 0));
    assert!(full_line(&unfold(&render(vec![instant])), "DTEND").is_empty());
    let mut mixed = event("混在");
    mixed.start = When::Local(at(2027, 4, 1, 14, 0));
    mixed.end = When::Date(d(2027, 4, 1));
    assert_eq!(
        full_line(&unfold(&render(vec![mixed])), "DTEND"),
        ["DTEND;TZID=Asia/Tokyo:20270402T000000"]
    );
}

#[test]
fn rrule_line_is_the_rules_text() {
    for text in [
        "FREQ=MONTHLY;BYDAY=2TU",
        "FREQ=WEEKLY;INTERVAL=2;UNTIL=20270331;BYDAY=MO,TH",
        "FREQ=YEARLY;COUNT=10;BYMONTH=1;BYDAY=2MO",
        "FREQ=MONTHLY;BYMONTHDAY=-1;WKST=SU",
    ] {
        let rule = Rule::parse(text).unwrap();
        let mut e = event("定例");
        e.rule = Some(rule.clone());
        e.exdates = vec![d(2027, 5, 11)];
        let lines = unfold(&render(vec![e]));
        assert_eq!(full_line(&lines, "RRULE"), [format!("RRULE:{rule}")]);
        assert_eq!(full_line(&lines, "EXDATE"), ["EXDATE;VALUE=DATE:20270511"]);
        assert_eq!(
            Rule::parse(&property(&lines, "RRULE").unwrap()).unwrap(),
            rule
        );
    }
}

#[test]
fn calendar_header_and_timezone_are_exact() {
    let text = render(Vec::new());
    let want = "BEGIN:VCALENDAR\r\n\
        PRODID:-//Musubi//Musubi Calendar//JA\r\n\
        VERSION:2.0\r\n\
        CALSCALE:GREGORIAN\r\n\
        METHOD:PUBLISH\r\n\
        X-WR-CALNAME:ひまわり訪問看護 予定\r\n\
        X-WR-TIMEZONE:Asia/Tokyo\r\n\
        BEGIN:VTIMEZONE\r\n\
        TZID:Asia/Tokyo\r\n\
        BEGIN:STANDARD\r\n\
        DTSTART:19700101T000000\r\n\
        TZOFFSETFROM:+0900\r\n\
        TZOFFSETTO:+0900\r\n\
        TZNAME:JST\r\n\
        END:STANDARD\r\n\
        END:VTIMEZONE\r\n\
        END:VCALENDAR\r\n";
    assert_eq!(text, want);
    assert!(want.contains(VTIMEZONE));
    // The calendar name is TEXT too.
    let text = Calendar {
        name: "A,B;C\\D\nE".to_owned(),
        events: Vec::new(),
    }
    .render();
    assert!(text.contains("\r\nX-WR-CALNAME:A\\,B\\;C\\\\D\\nE\r\n"));
}

#[test]
fn a_whole_event_is_exact() {
    let mut e = event("第2火曜 カンファレンス");
    e.start = When::Local(at(2027, 1, 12, 14, 0));
    e.end = When::Local(at(2027, 1, 12, 15, 30));
    e.description = Some("議題:\n1. 症例検討".to_owned());
    e.location = Some("本部 会議室".to_owned());
    e.categories = vec!["会議".to_owned()];
    e.rule = Some(Rule::parse("FREQ=MONTHLY;BYDAY=2TU;COUNT=12").unwrap());
    e.exdates = vec![d(2027, 5, 11)];
    e.sequence = 3;
    e.last_modified = Some(Utc.with_ymd_and_hms(2027, 2, 20, 8, 0, 0).unwrap());
    let text = render(vec![e.clone(), event("研修")]);
    let vevent = "BEGIN:VEVENT\r\n\
        UID:0190f3a2-7c1e-7000-8000-000000000001@musubi\r\n\
        DTSTAMP:20270301T003005Z\r\n\
        DTSTART;TZID=Asia/Tokyo:20270112T140000\r\n\
        DTEND;TZID=Asia/Tokyo:20270112T153000\r\n\
        RRULE:FREQ=MONTHLY;COUNT=12;BYDAY=2TU\r\n\
        EXDATE;TZID=Asia/Tokyo:20270511T140000\r\n\
        SUMMARY:第2火曜 カンファレンス\r\n\
        DESCRIPTION:議題:\\n1. 症例検討\r\n\
        LOCATION:本部 会議室\r\n\
        CATEGORIES:会議\r\n\
        SEQUENCE:3\r\n\
        LAST-MODIFIED:20270220T080000Z\r\n\
        END:VEVENT\r\n\
        BEGIN:VEVENT\r\n\
        UID:0190f3a2-7c1e-7000-8000-000000000001@musubi\r\n\
        DTSTAMP:20270301T003005Z\r\n\
        DTSTART;VALUE=DATE:20270415\r\n\
        DTEND;VALUE=DATE:20270416\r\n\
        SUMMARY:研修\r\n\
        SEQUENCE:0\r\n\
        END:VEVENT\r\n\
        END:VCALENDAR\r\n";
    assert!(
        text.ends_with(&format!("END:VTIMEZONE\r\n{vevent}")),
        "{text}"
    );
}
