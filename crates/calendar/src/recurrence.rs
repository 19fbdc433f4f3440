//! Recurrence rules: the part of RFC 5545's RRULE that Musubi's events need ("every Thursday",
//! "the second Tuesday of each month", "every other week until March"), and their expansion
//! into dates.
//!
//! Supported: FREQ=DAILY|WEEKLY|MONTHLY|YEARLY, INTERVAL, COUNT, UNTIL, BYDAY (with ordinals
//! for MONTHLY and YEARLY), BYMONTHDAY, BYMONTH and WKST. Everything else (BYSETPOS, BYHOUR,
//! BYWEEKNO, sub-daily frequencies, …) is refused with [`RuleError::Unsupported`] rather than
//! silently ignored, so a rule is never shown with different dates than its author meant.
//!
//! Expansion works on dates: the time of day belongs to the event, and Asia/Tokyo has no
//! daylight saving, so every occurrence keeps it unchanged.

use std::collections::BTreeSet;
use std::fmt;
use std::str::FromStr;

use chrono::{Datelike, Days, NaiveDate, NaiveTime, TimeDelta, Weekday};

/// The longest rule text [`Rule::parse`] looks at.
pub const MAX_RULE_LEN: usize = 500;
pub const MAX_INTERVAL: u16 = 99;
pub const MAX_COUNT: u16 = 1000;
/// More BY values than this cannot come from a sensible rule and would only slow expansion.
pub const MAX_BY_VALUES: usize = 64;
/// Candidate days (plus periods) [`occurrences`] examines before giving up: about a thousand
/// years of a daily rule, a few milliseconds.
const SCAN_BUDGET: u32 = 400_000;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Freq {
    Daily,
    Weekly,
    Monthly,
    Yearly,
}

impl Freq {
    pub fn as_str(self) -> &'static str {
        match self {
            Freq::Daily => "DAILY",
            Freq::Weekly => "WEEKLY",
            Freq::Monthly => "MONTHLY",
            Freq::Yearly => "YEARLY",
        }
    }
}

/// A recurrence rule. The fields are public for building rules in code; [`Rule::validate`]
/// says whether such a rule is one [`Rule::parse`] would accept, and [`occurrences`] yields
/// nothing for a rule that is not.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Rule {
    pub freq: Freq,
    /// 1..=[`MAX_INTERVAL`].
    pub interval: u16,
    /// Total number of occurrences, the first (DTSTART) included; 1..=[`MAX_COUNT`].
    pub count: Option<u16>,
    /// Last date an occurrence may fall on (inclusive). Not together with `count`.
    pub until: Option<NaiveDate>,
    /// Weekdays, each optionally with an ordinal (2 = second, -1 = last) counted within the
    /// month (MONTHLY, or YEARLY with BYMONTH) or the year (YEARLY without BYMONTH).
    pub by_day: Vec<(Option<i8>, Weekday)>,
    /// Days of the month, 1..=31 or -31..=-1 (-1 = last day). Not with WEEKLY.
    pub by_month_day: Vec<i8>,
    /// Months, 1..=12.
    pub by_month: Vec<u8>,
    /// First day of the week (WKST); only matters for WEEKLY with an interval above 1.
    pub week_start: Weekday,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RuleError {
    #[error("the recurrence rule is longer than {MAX_RULE_LEN} characters")]
    TooLong,
    #[error("the recurrence rule is empty")]
    Empty,
    #[error("malformed rule part `{0}` (expected NAME=VALUE)")]
    Syntax(String),
    #[error("rule part {0} is given twice")]
    Duplicate(String),
    #[error("the recurrence rule has no FREQ")]
    MissingFreq,
    #[error("unsupported in recurrence rules: {0}")]
    Unsupported(String),
    #[error("invalid {part} value `{value}`")]
    InvalidValue { part: &'static str, value: String },
    #[error("COUNT and UNTIL cannot both be given")]
    CountAndUntil,
    #[error("invalid recurrence rule: {0}")]
    Invalid(&'static str),
}

impl Rule {
    /// A rule with only a frequency: every day, week, month or year on DTSTART's pattern.
    pub fn new(freq: Freq) -> Rule {
        Rule {
            freq,
            interval: 1,
            count: None,
            until: None,
            by_day: Vec::new(),
            by_month_day: Vec::new(),
            by_month: Vec::new(),
            week_start: Weekday::Mon,
        }
    }

    /// Parses RRULE text such as `FREQ=WEEKLY;INTERVAL=2;BYDAY=MO,TH;UNTIL=20270331`, with or
    /// without a leading `RRULE:`, names and values in any case. UNTIL may be a DATE or a
    /// DATE-TIME; a DATE-TIME is reduced to its Asia/Tokyo date (UTC + 9 h when it ends in
    /// `Z`), and occurrences on that whole date are kept. Lists are sorted and deduplicated, so
    /// `to_string()` gives one canonical text per rule.
    pub fn parse(input: &str) -> Result<Rule, RuleError> {
        if input.chars().nth(MAX_RULE_LEN).is_some() {
            return Err(RuleError::TooLong);
        }
        let upper = input.trim().to_ascii_uppercase();
        let body = upper.strip_prefix("RRULE:").unwrap_or(&upper);
        if body.is_empty() {
            return Err(RuleError::Empty);
        }

        let mut freq = None;
        let mut interval = None;
        let mut count = None;
        let mut until = None;
        let mut by_day = None;
        let mut by_month_day = None;
        let mut by_month = None;
        let mut week_start = None;
        // Empty parts are skipped: some writers end the rule with a `;`.
        for part in body.split(';').filter(|p| !p.is_empty()) {
            let Some((name, value)) = part.split_once('=') else {
                return Err(RuleError::Syntax(clip(part)));
            };
            if name.is_empty() || !name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-') {
                return Err(RuleError::Syntax(clip(part)));
            }
            match name {
                "FREQ" => set_once(&mut freq, name, parse_freq(value)?)?,
                "INTERVAL" => set_once(&mut interval, name, parse_number(value, "INTERVAL")?)?,
                "COUNT" => set_once(&mut count, name, parse_number(value, "COUNT")?)?,
                "UNTIL" => set_once(&mut until, name, parse_until(value)?)?,
                "BYDAY" => set_once(&mut by_day, name, parse_list(value, parse_by_day)?)?,
                "BYMONTHDAY" => {
                    set_once(&mut by_month_day, name, parse_list(value, parse_month_day)?)?
                }
                "BYMONTH" => set_once(&mut by_month, name, parse_list(value, parse_month)?)?,
                "WKST" => set_once(&mut week_start, name, parse_weekday(value, "WKST")?)?,
                _ => return Err(RuleError::Unsupported(clip(name))),
            }
        }

        let mut rule = Rule {
            freq: freq.ok_or(RuleError::MissingFreq)?,
            interval: interval.unwrap_or(1),
            count,
            until,
            by_day: by_day.unwrap_or_default(),
            by_month_day: by_month_day.unwrap_or_default(),
            by_month: by_month.unwrap_or_default(),
            week_start: week_start.unwrap_or(Weekday::Mon),
        };
        rule.by_day
            .sort_by_key(|&(n, wd)| (wd.num_days_from_monday(), n));
        rule.by_day.dedup();
        rule.by_month_day.sort_unstable();
        rule.by_month_day.dedup();
        rule.by_month.sort_unstable();
        rule.by_month.dedup();
        rule.validate()?;
        Ok(rule)
    }

    /// Whether the rule is within what Musubi supports and RFC 5545 allows.
    pub fn validate(&self) -> Result<(), RuleError> {
        if !(1..=MAX_INTERVAL).contains(&self.interval) {
            return Err(RuleError::InvalidValue {
                part: "INTERVAL",
                value: self.interval.to_string(),
            });
        }
        if let Some(count) = self.count {
            if !(1..=MAX_COUNT).contains(&count) {
                return Err(RuleError::InvalidValue {
                    part: "COUNT",
                    value: count.to_string(),
                });
            }
            if self.until.is_some() {
                return Err(RuleError::CountAndUntil);
            }
        }
        if self.by_day.len() > MAX_BY_VALUES
            || self.by_month_day.len() > MAX_BY_VALUES
            || self.by_month.len() > MAX_BY_VALUES
        {
            return Err(RuleError::Invalid("too many BY values"));
        }
        for &(ordinal, weekday) in &self.by_day {
            if let Some(n) = ordinal {
                if n == 0 || !(-53..=53).contains(&n) {
                    return Err(RuleError::InvalidValue {
                        part: "BYDAY",
                        value: format!("{n}{}", weekday_code(weekday)),
                    });
                }
                // RFC 5545 3.3.10: ordinals only with MONTHLY or YEARLY.
                if matches!(self.freq, Freq::Daily | Freq::Weekly) {
                    return Err(RuleError::Invalid(
                        "BYDAY ordinals (like 2TU) need FREQ=MONTHLY or FREQ=YEARLY",
                    ));
                }
            }
        }
        for &day in &self.by_month_day {
            if day == 0 || !(-31..=31).contains(&day) {
                return Err(RuleError::InvalidValue {
                    part: "BYMONTHDAY",
                    value: day.to_string(),
                });
            }
        }
        if !self.by_month_day.is_empty() && self.freq == Freq::Weekly {
            return Err(RuleError::Invalid(
                "BYMONTHDAY cannot be used with FREQ=WEEKLY",
            ));
        }
        for &month in &self.by_month {
            if !(1..=12).contains(&month) {
                return Err(RuleError::InvalidValue {
                    part: "BYMONTH",
                    value: month.to_string(),
                });
            }
        }
        Ok(())
    }

    /// The RRULE value for an iCalendar event. RFC 5545 wants UNTIL as a UTC DATE-TIME when
    /// DTSTART has a time (`timed`), so there UNTIL becomes the end of that day in Asia/Tokyo
    /// (23:59:59 JST = 14:59:59Z), which [`Rule::parse`] reads back as the same date. For
    /// all-day events this is the same as `to_string()`.
    pub fn ical_value(&self, timed: bool) -> String {
        let mut out = String::new();
        self.write(&mut out, timed);
        out
    }

    fn write(&self, out: &mut String, timed_until: bool) {
        use std::fmt::Write as _;
        // Writing to a String cannot fail.
        let _ = write!(out, "FREQ={}", self.freq.as_str());
        if self.interval != 1 {
            let _ = write!(out, ";INTERVAL={}", self.interval);
        }
        if let Some(count) = self.count {
            let _ = write!(out, ";COUNT={count}");
        }
        if let Some(until) = self.until {
            let _ = write!(out, ";UNTIL={}", until.format("%Y%m%d"));
            if timed_until {
                out.push_str("T145959Z");
            }
        }
        if !self.by_month.is_empty() {
            out.push_str(";BYMONTH=");
            join(out, self.by_month.iter().map(|m| m.to_string()));
        }
        if !self.by_month_day.is_empty() {
            out.push_str(";BYMONTHDAY=");
            join(out, self.by_month_day.iter().map(|d| d.to_string()));
        }
        if !self.by_day.is_empty() {
            out.push_str(";BYDAY=");
            join(
                out,
                self.by_day.iter().map(|&(n, wd)| match n {
                    Some(n) => format!("{n}{}", weekday_code(wd)),
                    None => weekday_code(wd).to_owned(),
                }),
            );
        }
        if self.week_start != Weekday::Mon {
            let _ = write!(out, ";WKST={}", weekday_code(self.week_start));
        }
    }

    /// Whether `date` fits the BY parts (and, without BYDAY/BYMONTHDAY, DTSTART's pattern).
    /// Whether it falls in one of the rule's periods (INTERVAL) is the caller's business.
    /// Whether a series starting on `start` has `start` among its own days. RFC 5545 leaves a
    /// series undefined when it does not, and calendar applications then disagree (some add
    /// the start as an extra occurrence): such a series is refused at input.
    pub fn produces(&self, start: NaiveDate) -> bool {
        self.validate().is_ok() && self.matches(start, start)
    }

    fn matches(&self, start: NaiveDate, date: NaiveDate) -> bool {
        if !self.month_allowed(start, date.month()) {
            return false;
        }
        if !self.by_month_day.is_empty() {
            let last = days_in_month(date);
            let day = i64::from(date.day());
            let hit = self.by_month_day.iter().any(|&md| {
                let md = i64::from(md);
                if md > 0 {
                    md == day
                } else {
                    i64::from(last) + 1 + md == day
                }
            });
            if !hit {
                return false;
            }
        }
        if !self.by_day.is_empty() {
            let hit = self.by_day.iter().any(|&(ordinal, weekday)| {
                date.weekday() == weekday && ordinal.is_none_or(|n| self.is_nth_weekday(date, n))
            });
            if !hit {
                return false;
            }
        }
        if self.by_day.is_empty() && self.by_month_day.is_empty() {
            return match self.freq {
                Freq::Daily => true,
                Freq::Weekly => date.weekday() == start.weekday(),
                // A day the month lacks (31, or 29 February) is skipped, not moved.
                Freq::Monthly | Freq::Yearly => date.day() == start.day(),
            };
        }
        true
    }

    /// Whether the month passes BYMONTH, or for YEARLY without any day-level part, whether
    /// it is DTSTART's month. Lets the expansion skip whole months.
    fn month_allowed(&self, start: NaiveDate, month: u32) -> bool {
        if !self.by_month.is_empty() {
            return self.by_month.iter().any(|&m| u32::from(m) == month);
        }
        if self.freq == Freq::Yearly && self.by_day.is_empty() && self.by_month_day.is_empty() {
            return month == start.month();
        }
        true
    }

    fn is_nth_weekday(&self, date: NaiveDate, n: i8) -> bool {
        // The scope ordinals count in: the year for YEARLY without BYMONTH, else the month.
        let (index, len) = if self.freq == Freq::Yearly && self.by_month.is_empty() {
            let len = if date.leap_year() { 366 } else { 365 };
            (date.ordinal(), len)
        } else {
            (date.day(), days_in_month(date))
        };
        let n = i32::from(n);
        let from_start = i32::try_from((index - 1) / 7 + 1).unwrap_or(i32::MAX);
        let from_end = i32::try_from((len - index) / 7 + 1).unwrap_or(i32::MAX);
        if n > 0 {
            n == from_start
        } else {
            -n == from_end
        }
    }
}

impl fmt::Display for Rule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut out = String::new();
        self.write(&mut out, false);
        f.write_str(&out)
    }
}

impl FromStr for Rule {
    type Err = RuleError;

    fn from_str(s: &str) -> Result<Rule, RuleError> {
        Rule::parse(s)
    }
}

/// The dates of the series inside `window_from..=window_to_inclusive`, in order, at most
/// `limit` of them.
///
/// `start` (DTSTART) is always the first occurrence, as RFC 5545 has it, and COUNT includes
/// it; later occurrences are the days after `start` that the rule produces, up to UNTIL.
/// `exdates` are removed after COUNT has been applied, so an excluded day still uses up one of
/// the COUNT occurrences. A rule that fails [`Rule::validate`] gives no dates. Expansion stops
/// after a bounded amount of work (roughly a thousand years of a daily rule), so a rule that
/// rarely or never matches in the window returns quickly, possibly with fewer dates.
pub fn occurrences(
    rule: &Rule,
    start: NaiveDate,
    exdates: &[NaiveDate],
    window_from: NaiveDate,
    window_to_inclusive: NaiveDate,
    limit: usize,
) -> Vec<NaiveDate> {
    let mut out = Vec::new();
    let window_to = window_to_inclusive;
    if limit == 0 || window_from > window_to || start > window_to || rule.validate().is_err() {
        return out;
    }
    let excluded: BTreeSet<NaiveDate> = exdates.iter().copied().collect();
    // Returns false once nothing more is wanted.
    let mut emit = |date: NaiveDate| -> bool {
        if date > window_to {
            return false;
        }
        if date >= window_from && !excluded.contains(&date) {
            out.push(date);
        }
        out.len() < limit
    };

    if !emit(start) {
        return out;
    }
    let mut produced: u32 = 1;
    let wanted = rule.count.map(u32::from);
    if wanted.is_some_and(|w| produced >= w) {
        return out;
    }
    let last = match rule.until {
        Some(until) => until.min(window_to),
        None => window_to,
    };

    let periods = Periods::new(rule, start);
    // Without COUNT nothing before the window matters: begin at the period holding
    // `window_from`. With COUNT every earlier occurrence has to be counted.
    let mut index = if wanted.is_none() && window_from > start {
        periods.index_of(window_from)
    } else {
        0
    };
    let mut budget = SCAN_BUDGET;
    loop {
        let Some((first, period_last)) = periods.bounds(index) else {
            return out;
        };
        if first > last {
            return out;
        }
        budget = budget.saturating_sub(1);
        let mut day = first;
        while day <= period_last {
            if !rule.month_allowed(start, day.month()) {
                // Skip to the first of the next month.
                match first_of_next_month(day) {
                    Some(next) => {
                        day = next;
                        continue;
                    }
                    None => return out,
                }
            }
            if day > last || budget == 0 {
                return out;
            }
            budget -= 1;
            if day > start && rule.matches(start, day) {
                if !emit(day) {
                    return out;
                }
                produced += 1;
                if wanted.is_some_and(|w| produced >= w) {
                    return out;
                }
            }
            match day.succ_opt() {
                Some(next) => day = next,
                None => return out,
            }
        }
        if budget == 0 {
            return out;
        }
        index = match index.checked_add(1) {
            Some(i) => i,
            None => return out,
        };
    }
}

/// The rule's periods (a day, a week, a month or a year, every INTERVAL of them), numbered
/// from the one that holds DTSTART.
struct Periods {
    freq: Freq,
    interval: i64,
    /// First day of period 0.
    origin: NaiveDate,
}

impl Periods {
    fn new(rule: &Rule, start: NaiveDate) -> Periods {
        let origin = match rule.freq {
            Freq::Daily => start,
            Freq::Weekly => {
                let back = (7 + start.weekday().num_days_from_monday()
                    - rule.week_start.num_days_from_monday())
                    % 7;
                start
                    .checked_sub_days(Days::new(u64::from(back)))
                    .unwrap_or(start)
            }
            Freq::Monthly => start.with_day(1).unwrap_or(start),
            Freq::Yearly => start.with_ordinal(1).unwrap_or(start),
        };
        Periods {
            freq: rule.freq,
            interval: i64::from(rule.interval.max(1)),
            origin,
        }
    }

    /// The index of the last period that begins on or before `date` (`date` >= origin).
    fn index_of(&self, date: NaiveDate) -> i64 {
        let units = match self.freq {
            Freq::Daily => (date - self.origin).num_days(),
            Freq::Weekly => (date - self.origin).num_days() / 7,
            Freq::Monthly => month_number(date) - month_number(self.origin),
            Freq::Yearly => i64::from(date.year()) - i64::from(self.origin.year()),
        };
        units.max(0) / self.interval
    }

    /// First and last day of period `index`, None past chrono's range.
    fn bounds(&self, index: i64) -> Option<(NaiveDate, NaiveDate)> {
        let step = index.checked_mul(self.interval)?;
        match self.freq {
            Freq::Daily => {
                let day = self.origin.checked_add_signed(TimeDelta::try_days(step)?)?;
                Some((day, day))
            }
            Freq::Weekly => {
                let first = self
                    .origin
                    .checked_add_signed(TimeDelta::try_days(step.checked_mul(7)?)?)?;
                Some((first, first.checked_add_days(Days::new(6))?))
            }
            Freq::Monthly => {
                let number = month_number(self.origin).checked_add(step)?;
                let year = i32::try_from(number.div_euclid(12)).ok()?;
                let month = u32::try_from(number.rem_euclid(12)).ok()? + 1;
                let first = NaiveDate::from_ymd_opt(year, month, 1)?;
                let last = first_of_next_month(first)?.pred_opt()?;
                Some((first, last))
            }
            Freq::Yearly => {
                let year = i64::from(self.origin.year()).checked_add(step)?;
                let year = i32::try_from(year).ok()?;
                Some((
                    NaiveDate::from_ymd_opt(year, 1, 1)?,
                    NaiveDate::from_ymd_opt(year, 12, 31)?,
                ))
            }
        }
    }
}

fn month_number(date: NaiveDate) -> i64 {
    i64::from(date.year()) * 12 + i64::from(date.month0())
}

fn first_of_next_month(date: NaiveDate) -> Option<NaiveDate> {
    if date.month() == 12 {
        NaiveDate::from_ymd_opt(date.year().checked_add(1)?, 1, 1)
    } else {
        NaiveDate::from_ymd_opt(date.year(), date.month() + 1, 1)
    }
}

fn days_in_month(date: NaiveDate) -> u32 {
    first_of_next_month(date)
        .and_then(|next| next.pred_opt())
        .map_or(31, |last| last.day())
}

/// Appends the items separated by commas.
fn join(out: &mut String, items: impl Iterator<Item = String>) {
    for (i, item) in items.enumerate() {
        if i > 0 {
            out.push(',');
        }
        out.push_str(&item);
    }
}

fn weekday_code(weekday: Weekday) -> &'static str {
    match weekday {
        Weekday::Mon => "MO",
        Weekday::Tue => "TU",
        Weekday::Wed => "WE",
        Weekday::Thu => "TH",
        Weekday::Fri => "FR",
        Weekday::Sat => "SA",
        Weekday::Sun => "SU",
    }
}

/// A short, printable excerpt of user input for an error message.
fn clip(text: &str) -> String {
    text.chars().take(40).collect()
}

fn set_once<T>(slot: &mut Option<T>, name: &str, value: T) -> Result<(), RuleError> {
    if slot.is_some() {
        return Err(RuleError::Duplicate(name.to_owned()));
    }
    *slot = Some(value);
    Ok(())
}

fn parse_freq(value: &str) -> Result<Freq, RuleError> {
    match value {
        "DAILY" => Ok(Freq::Daily),
        "WEEKLY" => Ok(Freq::Weekly),
        "MONTHLY" => Ok(Freq::Monthly),
        "YEARLY" => Ok(Freq::Yearly),
        "SECONDLY" | "MINUTELY" | "HOURLY" => Err(RuleError::Unsupported(format!("FREQ={value}"))),
        _ => Err(RuleError::InvalidValue {
            part: "FREQ",
            value: clip(value),
        }),
    }
}

/// An unsigned decimal of at most four digits; the range is checked by `validate`.
fn parse_number(value: &str, part: &'static str) -> Result<u16, RuleError> {
    let invalid = || RuleError::InvalidValue {
        part,
        value: clip(value),
    };
    if value.is_empty() || value.len() > 4 || !value.bytes().all(|b| b.is_ascii_digit()) {
        return Err(invalid());
    }
    value.parse().map_err(|_| invalid())
}

/// `[+|-]digits` with at most two digits.
fn parse_signed(value: &str) -> Option<i8> {
    let (negative, digits) = match value.as_bytes().first()? {
        b'-' => (true, value.get(1..)?),
        b'+' => (false, value.get(1..)?),
        _ => (false, value),
    };
    if digits.is_empty() || digits.len() > 2 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let n: i8 = digits.parse().ok()?;
    Some(if negative { -n } else { n })
}

fn parse_list<T>(value: &str, item: fn(&str) -> Result<T, RuleError>) -> Result<Vec<T>, RuleError> {
    value.split(',').map(item).collect()
}

fn parse_weekday(value: &str, part: &'static str) -> Result<Weekday, RuleError> {
    Ok(match value {
        "MO" => Weekday::Mon,
        "TU" => Weekday::Tue,
        "WE" => Weekday::Wed,
        "TH" => Weekday::Thu,
        "FR" => Weekday::Fri,
        "SA" => Weekday::Sat,
        "SU" => Weekday::Sun,
        _ => {
            return Err(RuleError::InvalidValue {
                part,
                value: clip(value),
            })
        }
    })
}

fn parse_by_day(item: &str) -> Result<(Option<i8>, Weekday), RuleError> {
    let invalid = || RuleError::InvalidValue {
        part: "BYDAY",
        value: clip(item),
    };
    let split = item.len().checked_sub(2).ok_or_else(invalid)?;
    let (Some(ordinal), Some(code)) = (item.get(..split), item.get(split..)) else {
        return Err(invalid());
    };
    let weekday = parse_weekday(code, "BYDAY").map_err(|_| invalid())?;
    let ordinal = if ordinal.is_empty() {
        None
    } else {
        Some(parse_signed(ordinal).ok_or_else(invalid)?)
    };
    Ok((ordinal, weekday))
}

fn parse_month_day(item: &str) -> Result<i8, RuleError> {
    parse_signed(item).ok_or_else(|| RuleError::InvalidValue {
        part: "BYMONTHDAY",
        value: clip(item),
    })
}

fn parse_month(item: &str) -> Result<u8, RuleError> {
    let invalid = || RuleError::InvalidValue {
        part: "BYMONTH",
        value: clip(item),
    };
    if item.is_empty() || item.len() > 2 || !item.bytes().all(|b| b.is_ascii_digit()) {
        return Err(invalid());
    }
    item.parse().map_err(|_| invalid())
}

/// `YYYYMMDD`, `YYYYMMDDTHHMMSS` (floating: taken as Asia/Tokyo) or `YYYYMMDDTHHMMSSZ`.
fn parse_until(value: &str) -> Result<NaiveDate, RuleError> {
    let invalid = || RuleError::InvalidValue {
        part: "UNTIL",
        value: clip(value),
    };
    let digits = |s: Option<&str>| -> Result<u32, RuleError> {
        let s = s.ok_or_else(invalid)?;
        if s.bytes().all(|b| b.is_ascii_digit()) {
            s.parse().map_err(|_| invalid())
        } else {
            Err(invalid())
        }
    };
    if !value.is_ascii() || !matches!(value.len(), 8 | 15 | 16) {
        return Err(invalid());
    }
    let year = i32::try_from(digits(value.get(0..4))?).map_err(|_| invalid())?;
    let date = NaiveDate::from_ymd_opt(year, digits(value.get(4..6))?, digits(value.get(6..8))?)
        .ok_or_else(invalid)?;
    if value.len() == 8 {
        return Ok(date);
    }
    if value.get(8..9) != Some("T") {
        return Err(invalid());
    }
    let (hour, minute) = (digits(value.get(9..11))?, digits(value.get(11..13))?);
    // A leap second (60) is legal in RFC 5545 but not in chrono.
    let second = digits(value.get(13..15))?.min(59);
    let time = NaiveTime::from_hms_opt(hour, minute, second).ok_or_else(invalid)?;
    match value.get(15..) {
        Some("") => Ok(date),
        Some("Z") => {
            let tokyo = date
                .and_time(time)
                .checked_add_signed(TimeDelta::hours(9))
                .ok_or_else(invalid)?;
            Ok(tokyo.date())
        }
        _ => Err(invalid()),
    }
}
