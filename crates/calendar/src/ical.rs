//! iCalendar (RFC 5545) output for the personal calendar feeds that phones and desktop
//! calendars subscribe to.
//!
//! Only writing: Musubi publishes its events and never imports a feed. Times are Asia/Tokyo
//! wall times with a `TZID` and the matching VTIMEZONE, so clients show them unchanged
//! wherever they are.

use chrono::{DateTime, Days, NaiveDate, NaiveDateTime, Utc};

use crate::recurrence::Rule;

pub const PRODID: &str = "-//Musubi//Musubi Calendar//JA";
pub const TZID: &str = "Asia/Tokyo";

/// Japan has kept +09:00 without daylight saving since 1951, so one STANDARD block covers
/// every date a feed can hold.
pub const VTIMEZONE: &str = "BEGIN:VTIMEZONE\r\n\
TZID:Asia/Tokyo\r\n\
BEGIN:STANDARD\r\n\
DTSTART:19700101T000000\r\n\
TZOFFSETFROM:+0900\r\n\
TZOFFSETTO:+0900\r\n\
TZNAME:JST\r\n\
END:STANDARD\r\n\
END:VTIMEZONE\r\n";

/// The longest line RFC 5545 allows, in octets, without the CRLF.
const MAX_LINE_OCTETS: usize = 75;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Calendar {
    /// Shown by clients as the subscription's name (X-WR-CALNAME).
    pub name: String,
    pub events: Vec<Event>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Event {
    /// Stable across edits of the same event, unique across events.
    pub uid: String,
    pub summary: String,
    pub description: Option<String>,
    pub location: Option<String>,
    pub categories: Vec<String>,
    pub start: When,
    /// For an all-day event the last day of the event (inclusive: a one-day event has
    /// `end == start`); the feed writes the day after, as RFC 5545's DTEND is exclusive.
    /// For a timed event the end time. Should be the same kind as `start`; see
    /// [`Calendar::render`] for what happens otherwise.
    pub end: When,
    pub rule: Option<Rule>,
    /// Dates of occurrences removed from the series; the time of day comes from `start`.
    pub exdates: Vec<NaiveDate>,
    /// Bumped on every change that attendees should notice (RFC 5545 SEQUENCE).
    pub sequence: u32,
    /// When this feed was generated (DTSTAMP).
    pub stamp: DateTime<Utc>,
    pub last_modified: Option<DateTime<Utc>>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum When {
    /// An all-day event's date (`VALUE=DATE`).
    Date(NaiveDate),
    /// A wall-clock time in Asia/Tokyo.
    Local(NaiveDateTime),
}

impl Calendar {
    /// The whole feed as iCalendar text: CRLF line ends, lines folded at 75 octets.
    ///
    /// Inputs are never rejected. Control characters other than line breaks and tabs are
    /// dropped from text (they are not allowed and would let a summary break the format). An
    /// `end` of the other kind than `start` is converted (a timed end of an all-day event
    /// becomes its date, an all-day end of a timed event becomes midnight after that day); an
    /// all-day end before the start becomes the start day; a timed end not after the start is
    /// left out, which RFC 5545 reads as an event without duration.
    pub fn render(&self) -> String {
        let mut out = String::new();
        line(&mut out, "BEGIN:VCALENDAR");
        line(&mut out, &format!("PRODID:{PRODID}"));
        line(&mut out, "VERSION:2.0");
        line(&mut out, "CALSCALE:GREGORIAN");
        line(&mut out, "METHOD:PUBLISH");
        line(
            &mut out,
            &format!("X-WR-CALNAME:{}", escape_text(&self.name)),
        );
        line(&mut out, &format!("X-WR-TIMEZONE:{TZID}"));
        out.push_str(VTIMEZONE);
        for event in &self.events {
            event.render(&mut out);
        }
        line(&mut out, "END:VCALENDAR");
        out
    }
}

impl Event {
    fn render(&self, out: &mut String) {
        line(out, "BEGIN:VEVENT");
        line(out, &format!("UID:{}", escape_text(&self.uid)));
        line(out, &format!("DTSTAMP:{}", utc(self.stamp)));
        line(out, &format!("DTSTART{}", when_value(self.start)));
        if let Some(end) = self.exclusive_end() {
            line(out, &format!("DTEND{}", when_value(end)));
        }
        if let Some(rule) = &self.rule {
            let timed = matches!(self.start, When::Local(_));
            line(out, &format!("RRULE:{}", rule.ical_value(timed)));
        }
        let mut exdates = self.exdates.clone();
        exdates.sort_unstable();
        exdates.dedup();
        for date in exdates {
            let when = match self.start {
                When::Date(_) => When::Date(date),
                When::Local(start) => When::Local(date.and_time(start.time())),
            };
            line(out, &format!("EXDATE{}", when_value(when)));
        }
        line(out, &format!("SUMMARY:{}", escape_text(&self.summary)));
        if let Some(description) = &self.description {
            line(out, &format!("DESCRIPTION:{}", escape_text(description)));
        }
        if let Some(location) = &self.location {
            line(out, &format!("LOCATION:{}", escape_text(location)));
        }
        if !self.categories.is_empty() {
            let list: Vec<String> = self.categories.iter().map(|c| escape_text(c)).collect();
            line(out, &format!("CATEGORIES:{}", list.join(",")));
        }
        line(out, &format!("SEQUENCE:{}", self.sequence));
        if let Some(modified) = self.last_modified {
            line(out, &format!("LAST-MODIFIED:{}", utc(modified)));
        }
        line(out, "END:VEVENT");
    }

    /// DTEND in RFC 5545's terms, of the same kind as DTSTART; None to leave it out.
    fn exclusive_end(&self) -> Option<When> {
        match (self.start, self.end) {
            (When::Date(start), end) => {
                let last = match end {
                    When::Date(last) => last,
                    When::Local(at) => at.date(),
                };
                let day_after = last.max(start).checked_add_days(Days::new(1))?;
                Some(When::Date(day_after))
            }
            (When::Local(start), end) => {
                let end = match end {
                    When::Local(at) => at,
                    When::Date(last) => last
                        .checked_add_days(Days::new(1))?
                        .and_time(chrono::NaiveTime::MIN),
                };
                (end > start).then_some(When::Local(end))
            }
        }
    }
}

/// `;VALUE=DATE:20270415` or `;TZID=Asia/Tokyo:20270415T140000`: what follows a
/// DTSTART, DTEND or EXDATE name.
fn when_value(when: When) -> String {
    match when {
        When::Date(date) => format!(";VALUE=DATE:{}", date.format("%Y%m%d")),
        When::Local(at) => format!(";TZID={TZID}:{}", at.format("%Y%m%dT%H%M%S")),
    }
}

fn utc(at: DateTime<Utc>) -> String {
    at.format("%Y%m%dT%H%M%SZ").to_string()
}

/// RFC 5545 TEXT escaping. Every line break (CRLF, CR or LF) becomes `\n`; other control
/// characters except tab are dropped, as TEXT cannot hold them.
pub fn escape_text(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\\' => out.push_str("\\\\"),
            ';' => out.push_str("\\;"),
            ',' => out.push_str("\\,"),
            '\r' => {
                if chars.peek() == Some(&'\n') {
                    chars.next();
                }
                out.push_str("\\n");
            }
            '\n' => out.push_str("\\n"),
            '\t' => out.push('\t'),
            c if c.is_control() => {}
            c => out.push(c),
        }
    }
    out
}

/// Appends one content line, folded so that no physical line exceeds 75 octets (a
/// continuation starts with a space, which counts), never inside a UTF-8 character.
fn line(out: &mut String, content: &str) {
    let mut used = 0;
    for c in content.chars() {
        let len = c.len_utf8();
        if used + len > MAX_LINE_OCTETS {
            out.push_str("\r\n ");
            used = 1;
        }
        out.push(c);
        used += len;
    }
    out.push_str("\r\n");
}
