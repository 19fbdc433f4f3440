//! Calendars (see `musubi_domain::calendar`).
//!
//! - `GET /calendar?month=YYYY-MM`: the person's own calendar, every group of theirs merged:
//!   holidays, events, the absences of people they share a group with and published duty. On
//!   a phone a list of the month's days that have something (today always); from 48em up a
//!   grid of weeks (same HTML, `static/app.css`). Under it: 「不在を登録」 (`POST
//!   /calendar/absences`, `POST /calendar/absences/{id}/delete`) and 「カレンダーを購読」
//!   (`POST /calendar/feeds`, whose answer shows the new address once, and `POST
//!   /calendar/feeds/{id}/revoke`).
//! - `GET /a/{slug}/g/{group_id}/calendar?month=`: one group's calendar with its members'
//!   absences and its duty (drafts too, marked, for owners), and the form to add an event
//!   (`POST …/calendar/events`; the repetition is turned into an RRULE here). Its author or the
//!   group's owner may change an event (`GET`/`POST …/calendar/events/{id}/edit`, with the
//!   version read: a change made meanwhile is said, and what was typed stays), delete it
//!   (`…/delete`) or cancel one day of a series (`…/cancel`).
//!
//! A month that cannot be read (`?month=2026-13`) shows this month with a message (422). What
//! the person may not see is the normal 404 page, as everywhere.

use super::{nav, page_error, parse_id, unread_total, Flash, Place};
use crate::assets::{self, AssetUrls};
use crate::ctx::Ctx;
use crate::i18n::Translator;
use crate::layout::{Nav, Section};
use crate::pages::field_message;
use crate::pages::flash::lookup;
use crate::pages::place::not_found_page;
use askama::Template;
use axum::extract::rejection::FormRejection;
use axum::extract::{Path, Query, State};
use axum::response::Response;
use axum::Form;
use chrono::{Datelike, Duration, Months, NaiveDate, NaiveTime, Weekday};
use http::{HeaderMap, StatusCode, Uri};
use musubi_calendar::recurrence::{Freq, Rule};
use musubi_domain::calendar::{
    self as cal, AbsenceSpan, CalendarView, EventCategory, EventInput, EventRow,
};
use musubi_domain::groups::GroupView;
use musubi_domain::sessions::Viewer;
use musubi_domain::types::{GroupId, GroupKind, GroupMemberStatus, PersonId, Profession};
use musubi_domain::{AppError, ErrorCode, Services};
use serde::Deserialize;
use std::collections::HashMap;
use uuid::Uuid;

// --- Months and days -----------------------------------------------------------------------

/// The years a calendar page goes to (holidays are known for them, and nothing overflows).
const FIRST_YEAR: i32 = 2000;
const LAST_YEAR: i32 = 2099;

#[derive(Debug, Default, Deserialize)]
struct MonthQuery {
    #[serde(default)]
    month: String,
    /// `all`: this month's days before today too, on a phone.
    #[serde(default)]
    days: String,
}

/// `YYYY-MM` (or `YYYY-M`): `Ok(None)` when empty, `Err` when it is not a month we show.
pub(crate) fn parse_month(raw: &str) -> Result<Option<NaiveDate>, ()> {
    let raw = raw.trim();
    if raw.is_empty() {
        return Ok(None);
    }
    let (y, m) = raw.split_once('-').ok_or(())?;
    let digits = |s: &str, max: usize| {
        !s.is_empty() && s.len() <= max && s.bytes().all(|b| b.is_ascii_digit())
    };
    if !digits(y, 4) || y.len() != 4 || !digits(m, 2) {
        return Err(());
    }
    let y: i32 = y.parse().map_err(|_| ())?;
    let m: u32 = m.parse().map_err(|_| ())?;
    if !(FIRST_YEAR..=LAST_YEAR).contains(&y) {
        return Err(());
    }
    NaiveDate::from_ymd_opt(y, m, 1).map(Some).ok_or(())
}

/// The month of the request's `?month=` (this month without one) and whether it was
/// unreadable (then this month is shown, with a message).
pub(crate) fn requested_month(uri: &Uri) -> (NaiveDate, bool) {
    let this = cal::month_of(cal::today());
    let Ok(q) = Query::<MonthQuery>::try_from_uri(uri) else {
        return (this, true);
    };
    match parse_month(&q.0.month) {
        Ok(Some(m)) => (m, false),
        Ok(None) => (this, false),
        Err(()) => (this, true),
    }
}

/// `?days=all`: the phone's list shows this month's days before today too (it starts today).
fn wants_all_days(uri: &Uri) -> bool {
    Query::<MonthQuery>::try_from_uri(uri).is_ok_and(|q| q.0.days == "all")
}

/// `2026-12`.
pub(crate) fn month_code(month: NaiveDate) -> String {
    month.format("%Y-%m").to_string()
}

pub(crate) fn next_month(month: NaiveDate) -> NaiveDate {
    month.checked_add_months(Months::new(1)).unwrap_or(month)
}

pub(crate) fn last_day_of(month: NaiveDate) -> NaiveDate {
    next_month(month).pred_opt().unwrap_or(month)
}

/// `2026年12月` / `December 2026`.
pub(crate) fn month_title(t: Translator, month: NaiveDate) -> String {
    if t.is("en") {
        month.format("%B %Y").to_string()
    } else {
        format!("{}年{}月", month.year(), month.month())
    }
}

/// The links to the month before, the month after and this month.
pub(crate) struct MonthNav {
    pub title: String,
    /// `2026-12`, for forms that come back to the month.
    pub code: String,
    pub prev: String,
    pub next: String,
    pub this: String,
    pub is_this: bool,
}

pub(crate) fn month_nav(t: Translator, base: &str, month: NaiveDate) -> MonthNav {
    let this = cal::month_of(cal::today());
    let prev = month
        .checked_sub_months(Months::new(1))
        .filter(|m| m.year() >= FIRST_YEAR)
        .unwrap_or(month);
    let next = Some(next_month(month))
        .filter(|m| m.year() <= LAST_YEAR)
        .unwrap_or(month);
    let link = |m: NaiveDate| format!("{base}?month={}", month_code(m));
    MonthNav {
        title: month_title(t, month),
        code: month_code(month),
        prev: link(prev),
        next: link(next),
        this: link(this),
        is_this: month == this,
    }
}

/// 月, 火, … / Mon, Tue, ….
pub(crate) fn weekday_short(t: Translator, wd: Weekday) -> &'static str {
    t.get(match wd {
        Weekday::Mon => "calendar.weekday.mon",
        Weekday::Tue => "calendar.weekday.tue",
        Weekday::Wed => "calendar.weekday.wed",
        Weekday::Thu => "calendar.weekday.thu",
        Weekday::Fri => "calendar.weekday.fri",
        Weekday::Sat => "calendar.weekday.sat",
        Weekday::Sun => "calendar.weekday.sun",
    })
}

/// `12月5日（土）` / `Sat 5 Dec`.
pub(crate) fn day_label(t: Translator, day: NaiveDate) -> String {
    day_name(t, day).text()
}

/// `2026年12月5日（土）` / `Sat 5 Dec 2026`.
pub(crate) fn full_day_label(t: Translator, day: NaiveDate) -> String {
    let wd = weekday_short(t, day.weekday());
    if t.is("en") {
        format!("{wd} {} {}", day.day(), day.format("%b %Y"))
    } else {
        format!("{}年{}月{}日（{wd}）", day.year(), day.month(), day.day())
    }
}

/// A day's name in parts, each with its class: the grid shows only the day (`main`); its
/// column says the weekday and the heading the month, except for the days of the months
/// before and after (app.css). Screen readers and the phone's list read every part.
pub(crate) struct DayName {
    /// (text, `cal-day__month` | `cal-day__main` | `cal-day__weekday`), in reading order.
    pub parts: Vec<(String, &'static str)>,
}

impl DayName {
    pub(crate) fn text(&self) -> String {
        self.parts.iter().map(|(p, _)| p.as_str()).collect()
    }
}

pub(crate) fn day_name(t: Translator, day: NaiveDate) -> DayName {
    let wd = weekday_short(t, day.weekday());
    let parts = if t.is("en") {
        vec![
            (format!("{wd} "), "cal-day__weekday"),
            (day.day().to_string(), "cal-day__main"),
            (format!(" {}", day.format("%b")), "cal-day__month"),
        ]
    } else {
        vec![
            (format!("{}月", day.month()), "cal-day__month"),
            (format!("{}日", day.day()), "cal-day__main"),
            (format!("（{wd}）"), "cal-day__weekday"),
        ]
    };
    DayName { parts }
}

/// `sat`, `sun` or `weekday`: the colour of the date (with the weekday in words beside it).
pub(crate) fn weekday_class(day: NaiveDate) -> &'static str {
    match day.weekday() {
        Weekday::Sat => "sat",
        Weekday::Sun => "sun",
        _ => "weekday",
    }
}

/// The days a month page shows: whole weeks, Monday first (five or six of them).
fn grid_range(month: NaiveDate) -> (NaiveDate, NaiveDate) {
    let last = last_day_of(month);
    let back = i64::from(month.weekday().num_days_from_monday());
    let ahead = 6 - i64::from(last.weekday().num_days_from_monday());
    (
        month
            .checked_sub_signed(Duration::days(back))
            .unwrap_or(month),
        last.checked_add_signed(Duration::days(ahead))
            .unwrap_or(last),
    )
}

/// Every day from `from` to `to`, both included.
pub(crate) fn days_between(from: NaiveDate, to: NaiveDate) -> Vec<NaiveDate> {
    let mut out = Vec::new();
    let mut day = Some(from);
    while let Some(d) = day.filter(|d| *d <= to) {
        out.push(d);
        day = d.succ_opt();
    }
    out
}

/// A date typed in a form (`2026-12-05`, or `2026/12/5`); `None` when empty; `Err` when not a
/// date the calendar takes.
pub(crate) fn parse_day(raw: &str) -> Result<Option<NaiveDate>, ()> {
    let raw = raw.trim();
    if raw.is_empty() {
        return Ok(None);
    }
    let day = NaiveDate::parse_from_str(raw, "%Y-%m-%d")
        .or_else(|_| NaiveDate::parse_from_str(raw, "%Y/%m/%d"))
        .map_err(|_| ())?;
    if (FIRST_YEAR..=LAST_YEAR).contains(&day.year()) {
        Ok(Some(day))
    } else {
        Err(())
    }
}

fn parse_time(raw: &str) -> Result<Option<NaiveTime>, ()> {
    let raw = raw.trim();
    if raw.is_empty() {
        return Ok(None);
    }
    NaiveTime::parse_from_str(raw, "%H:%M")
        .or_else(|_| NaiveTime::parse_from_str(raw, "%H:%M:%S"))
        .map(Some)
        .map_err(|_| ())
}

/// `{}` in a message replaced by each value in turn.
pub(crate) fn fill(t: Translator, key: &str, values: &[&str]) -> String {
    values
        .iter()
        .fold(t.get(key).to_owned(), |text, v| text.replacen("{}", v, 1))
}

/// A person as the calendar names them: 「川村 健一 先生」 for a doctor, 「青木 さくら さん」
/// for anyone else the page knows, the bare name when it does not know their profession.
pub(crate) fn person_name(t: Translator, name: &str, profession: Option<Profession>) -> String {
    match profession {
        Some(Profession::Physician | Profession::Dentist) => t.format("calendar.doctor", name),
        Some(_) => t.format("layout.user_name", name),
        None => name.to_owned(),
    }
}

/// 「（午前）」, 「（午後）」 or nothing for a whole day.
pub(crate) fn span_suffix(t: Translator, part: &str) -> &'static str {
    match part {
        "am" => t.get("calendar.absence.span_am"),
        "pm" => t.get("calendar.absence.span_pm"),
        _ => "",
    }
}

/// 日中 / 夜間.
pub(crate) fn duty_kind_label(t: Translator, kind: &str) -> &'static str {
    if kind == "night" {
        t.get("duty.kind.night")
    } else {
        t.get("duty.kind.day")
    }
}

fn category_label(t: Translator, code: &str) -> &'static str {
    t.get(match code {
        "absence" => "calendar.category.absence",
        "duty" => "calendar.category.duty",
        "visit" => "calendar.category.visit",
        "conference" => "calendar.category.conference",
        _ => "calendar.category.other",
    })
}

/// The professions of a group's active members, to name them properly.
pub(crate) fn professions(view: &GroupView) -> HashMap<PersonId, Profession> {
    view.members
        .iter()
        .filter(|m| m.status == GroupMemberStatus::Active)
        .map(|m| (m.user_id, m.profession))
        .collect()
}

// --- The month on a page ---------------------------------------------------------------------

/// One thing on a day.
pub(crate) struct Entry {
    /// `absence`, `duty`, `visit`, `conference` or `other`: the label's colour.
    pub kind: &'static str,
    /// The kind in words (never colour alone).
    pub label: &'static str,
    pub time: String,
    pub text: String,
    /// The group it belongs to (the personal calendar).
    pub group: Option<String>,
    /// Where it is seen in full (the personal calendar).
    pub href: Option<String>,
    /// The viewer's own duty or absence.
    pub mine: bool,
    /// Duty of a month not yet published (owners only).
    pub draft: bool,
    /// An event on its group's calendar: its details and what may be done with it.
    pub detail: Option<EventDetail>,
}

/// An event as its group's calendar shows it when opened.
pub(crate) struct EventDetail {
    /// `event-{id}-{day}`: where links to it land.
    pub anchor: String,
    pub when: String,
    pub repeat: Option<String>,
    pub place: String,
    pub notes: String,
    pub author: String,
    /// The author or an owner: edit, delete, cancel a day.
    pub can_edit: bool,
    pub edit_href: String,
    pub delete_action: String,
    pub confirm_delete: String,
    /// A series: this day alone may be cancelled.
    pub cancel_action: Option<String>,
    /// The day the occurrence starts (`YYYY-MM-DD`).
    pub day: String,
    pub confirm_cancel: String,
}

pub(crate) struct Day {
    pub iso: String,
    pub name: DayName,
    pub weekday_class: &'static str,
    pub holiday: Option<&'static str>,
    pub today: bool,
    /// Before or after the month shown (the grid's first and last weeks).
    pub outside: bool,
    /// Before today in this month: the phone's list starts today (the grid shows it).
    pub past: bool,
    pub entries: Vec<Entry>,
}

impl Day {
    /// Nothing to show that day (the phone's list leaves it out, unless it is today).
    pub(crate) fn is_empty(&self) -> bool {
        self.entries.is_empty() && self.holiday.is_none()
    }
}

/// A month of a calendar page.
pub(crate) struct MonthView {
    pub nav: MonthNav,
    /// The grid's column heads: (class, weekday).
    pub weekdays: Vec<(&'static str, &'static str)>,
    pub days: Vec<Day>,
    /// Nothing at all in the month.
    pub empty: bool,
    /// This month's days before today, on a phone (`?days=all`).
    pub past_link: Option<String>,
}

/// How the entries of a page link and what they offer.
enum Mode<'a> {
    /// The personal calendar: every entry links to its group.
    Personal,
    /// A group's calendar: events open in place, with their actions.
    Group {
        slug: &'a str,
        group_id: GroupId,
        professions: &'a HashMap<PersonId, Profession>,
    },
}

/// The month's links to other months and to its days before today.
fn set_links(grid: &mut MonthView, t: Translator, base: &str, month: NaiveDate) {
    grid.nav = month_nav(t, base, month);
    if grid.past_link.is_some() {
        grid.past_link = Some(format!(
            "{base}?month={}&days=all#month-title",
            month_code(month)
        ));
    }
}

fn time_text(e: &EventRow, first: NaiveDate, last: NaiveDate, day: NaiveDate) -> String {
    let (Some(s), Some(end)) = (e.starts_at, e.ends_at) else {
        return String::new();
    };
    let (s, end) = (s.format("%H:%M"), end.format("%H:%M"));
    if first == last {
        format!("{s}–{end}")
    } else if day == first {
        format!("{s}〜")
    } else if day == last {
        format!("〜{end}")
    } else {
        String::new()
    }
}

/// When an occurrence is, in words: 「12月5日（土） 10:00–11:00」, 「12月5日（土）〜12月6日（日）」.
fn when_text(t: Translator, e: &EventRow, first: NaiveDate, last: NaiveDate) -> String {
    let times = match (e.starts_at, e.ends_at) {
        (Some(s), Some(end)) => Some((s.format("%H:%M"), end.format("%H:%M"))),
        _ => None,
    };
    match times {
        Some((s, end)) if first == last => format!("{} {s}–{end}", day_label(t, first)),
        Some((s, end)) => format!("{} {s}〜{} {end}", day_label(t, first), day_label(t, last)),
        None if first == last => format!("{} {}", day_label(t, first), t.get("calendar.all_day")),
        None => format!("{}〜{}", day_label(t, first), day_label(t, last)),
    }
}

fn month_days(
    t: Translator,
    month: NaiveDate,
    view: &CalendarView,
    me: PersonId,
    mode: &Mode<'_>,
    all_days: bool,
) -> MonthView {
    let (from, to) = grid_range(month);
    let today = cal::today();
    let page_month = month_code(month);
    let mut days = Vec::new();
    for d in days_between(from, to) {
        let mut entries = Vec::new();
        for entry in view.duties.iter().filter(|e| e.duty.day == d) {
            let duty = &entry.duty;
            let who = duty.user_name.as_deref().map_or_else(
                || t.get("duty.uncovered").to_owned(),
                |n| match mode {
                    Mode::Group { professions, .. } => person_name(
                        t,
                        n,
                        duty.user_id.and_then(|u| professions.get(&u).copied()),
                    ),
                    Mode::Personal => n.to_owned(),
                },
            );
            // Only a group's owners are given drafted duty at all.
            let draft = matches!(mode, Mode::Group { .. }) && !duty.published;
            entries.push(Entry {
                kind: "duty",
                label: category_label(t, "duty"),
                time: String::new(),
                text: format!("{} {who}", duty_kind_label(t, &duty.kind)),
                group: matches!(mode, Mode::Personal).then(|| entry.group_name.clone()),
                href: matches!(mode, Mode::Personal).then(|| {
                    format!(
                        "/a/{}/g/{}/duty?month={}#duty-{}",
                        entry.association,
                        entry.group_id,
                        month_code(cal::month_of(d)),
                        d
                    )
                }),
                mine: duty.user_id == Some(me),
                draft,
                detail: None,
            });
        }
        for a in view
            .absences
            .iter()
            .filter(|a| a.first_day <= d && d <= a.last_day)
        {
            let profession = match mode {
                Mode::Group { professions, .. } => professions.get(&a.user_id).copied(),
                Mode::Personal => None,
            };
            let mut text = fill(
                t,
                "calendar.absence.entry",
                &[
                    &person_name(t, &a.user_name, profession),
                    span_suffix(t, &a.part),
                ],
            );
            if !a.note.is_empty() {
                text = format!("{text}（{}）", a.note);
            }
            entries.push(Entry {
                kind: "absence",
                label: category_label(t, "absence"),
                time: String::new(),
                text,
                group: None,
                href: None,
                mine: a.user_id == me,
                draft: false,
                detail: None,
            });
        }
        let mut seen: Vec<Uuid> = Vec::new();
        for o in view
            .occurrences
            .iter()
            .filter(|o| o.first_day <= d && d <= o.last_day)
        {
            // Two occurrences of one series on one day (a long event repeating often): once.
            if seen.contains(&o.event.id) {
                continue;
            }
            seen.push(o.event.id);
            let e = &o.event;
            let calendar = format!("/a/{}/g/{}/calendar", o.association, o.group_id);
            let anchor = format!("event-{}-{d}", e.id);
            let detail = match mode {
                Mode::Personal => None,
                Mode::Group { slug, group_id, .. } => {
                    let base = format!("/a/{slug}/g/{group_id}/calendar/events/{}", e.id);
                    Some(EventDetail {
                        anchor: anchor.clone(),
                        when: when_text(t, e, o.first_day, o.last_day),
                        repeat: e.rrule.as_deref().map(|r| repeat_text(t, r, e.first_day)),
                        place: e.place.clone(),
                        notes: e.notes.clone(),
                        author: e.creator_name.clone().unwrap_or_default(),
                        can_edit: o.can_edit,
                        edit_href: format!("{base}/edit?month={page_month}"),
                        delete_action: format!("{base}/delete"),
                        confirm_delete: if e.rrule.is_some() {
                            t.format("calendar.event.confirm_delete_series", &e.title)
                        } else {
                            t.format("calendar.event.confirm_delete", &e.title)
                        },
                        cancel_action: e.rrule.is_some().then(|| format!("{base}/cancel")),
                        day: o.first_day.to_string(),
                        confirm_cancel: fill(
                            t,
                            "calendar.event.confirm_cancel",
                            &[&day_label(t, o.first_day), &e.title],
                        ),
                    })
                }
            };
            entries.push(Entry {
                kind: EventCategory::from_code(&e.category).map_or("other", EventCategory::code),
                label: category_label(t, &e.category),
                time: time_text(e, o.first_day, o.last_day, d),
                text: e.title.clone(),
                group: matches!(mode, Mode::Personal).then(|| o.group_name.clone()),
                href: matches!(mode, Mode::Personal)
                    .then(|| format!("{calendar}?month={page_month}#{anchor}")),
                mine: false,
                draft: false,
                detail,
            });
        }
        days.push(Day {
            iso: d.to_string(),
            name: day_name(t, d),
            weekday_class: weekday_class(d),
            holiday: view
                .holidays
                .iter()
                .find(|(h, _)| *h == d)
                .map(|(_, name)| *name),
            today: d == today,
            outside: cal::month_of(d) != month,
            past: !all_days && d < today && cal::month_of(d) == month,
            entries,
        });
    }
    let empty = days.iter().all(|d| d.outside || d.is_empty());
    let weekdays = [
        Weekday::Mon,
        Weekday::Tue,
        Weekday::Wed,
        Weekday::Thu,
        Weekday::Fri,
        Weekday::Sat,
        Weekday::Sun,
    ]
    .into_iter()
    .map(|wd| {
        let class = match wd {
            Weekday::Sat => "sat",
            Weekday::Sun => "sun",
            _ => "weekday",
        };
        (class, weekday_short(t, wd))
    })
    .collect();
    let hidden_past = days.iter().any(|d| d.past);
    MonthView {
        nav: month_nav(t, "", month),
        weekdays,
        days,
        empty,
        past_link: hidden_past.then(String::new),
    }
}

// --- Messages after a form -------------------------------------------------------------------

#[derive(Debug, Default, Deserialize)]
struct FlashQuery {
    done: Option<String>,
    error: Option<String>,
}

/// The messages the calendar's and the rotation's forms may leave: (code, catalog key).
const DONE: &[(&str, &str)] = &[
    ("absence_added", "calendar.done.absence_added"),
    ("absence_deleted", "calendar.done.absence_deleted"),
    ("feed_revoked", "calendar.done.feed_revoked"),
    ("event_added", "calendar.done.event_added"),
    ("event_saved", "calendar.done.event_saved"),
    ("event_deleted", "calendar.done.event_deleted"),
    ("occurrence_cancelled", "calendar.done.occurrence_cancelled"),
    ("duty_settings", "duty.done.settings"),
    ("drafted", "duty.done.drafted"),
    ("assigned", "duty.done.assigned"),
    ("published", "duty.done.published"),
    ("swap_requested", "duty.done.swap_requested"),
    ("swap_accepted", "duty.done.swap_accepted"),
    ("swap_declined", "duty.done.swap_declined"),
    ("swap_withdrawn", "duty.done.swap_withdrawn"),
];

const ERRORS: &[(&str, &str)] = &[
    ("not_found", "sns.error.not_found"),
    ("conflict", "calendar.error.changed_meanwhile"),
    ("invalid", "sns.error.invalid"),
    ("archived", "sns.error.archived"),
    ("not_that_day", "calendar.error.not_that_day"),
    ("published_month", "duty.error.published_month"),
    ("no_settings", "duty.error.no_settings"),
    ("confirm_redraft", "duty.error.confirm_redraft"),
    ("draft_first", "duty.error.draft_first"),
    ("swap_open", "duty.error.swap_open"),
    ("swap_changed", "duty.error.swap_changed"),
    ("swap_answered", "duty.error.swap_answered"),
    ("not_participant", "duty.error.not_participant"),
    ("swap_other", "duty.error.swap_other"),
];

pub(crate) fn calendar_flash(t: Translator, uri: &Uri) -> Option<Flash> {
    let q = Query::<FlashQuery>::try_from_uri(uri)
        .map(|q| q.0)
        .unwrap_or_default();
    if let Some(key) = lookup(DONE, q.done.as_deref()) {
        return Some(Flash {
            text: t.get(key).to_owned(),
            success: true,
        });
    }
    lookup(ERRORS, q.error.as_deref()).map(|key| Flash {
        text: t.get(key).to_owned(),
        success: false,
    })
}

/// `path` with `?done=`/`?error=` added before its fragment.
pub(crate) fn with_flash(path: &str, key: &str, code: &str) -> String {
    let (path, fragment) = match path.split_once('#') {
        Some((p, f)) => (p, format!("#{f}")),
        None => (path, String::new()),
    };
    let sep = if path.contains('?') { '&' } else { '?' };
    format!("{path}{sep}{key}={code}{fragment}")
}

/// The `?error=` of a refused calendar form, or `None` for the 500 page.
pub(crate) fn error_code(e: &AppError) -> Option<&'static str> {
    Some(match e.code {
        ErrorCode::NotFound => "not_found",
        ErrorCode::Conflict => "conflict",
        ErrorCode::InvalidInput => "invalid",
        ErrorCode::GroupArchived => "archived",
        _ => return None,
    })
}

/// 303 back to `to` with `?done=`, or `?error=` for a refusal; the 404 page for what is not
/// there; anything unexpected is the 500 page.
pub(crate) fn after(
    ctx: &Ctx,
    to: &str,
    result: Result<(), AppError>,
    done: &str,
    doing: &'static str,
) -> Response {
    match result {
        Ok(()) => ctx.redirect(&with_flash(to, "done", done)),
        Err(e) if e.code == ErrorCode::NotFound => not_found_page(ctx),
        Err(e) => match error_code(&e) {
            Some(code) => ctx.redirect(&with_flash(to, "error", code)),
            None => ctx.fail(doing, e),
        },
    }
}

// --- The personal calendar -------------------------------------------------------------------

/// The absence form as typed.
#[derive(Debug, Clone, Default, Deserialize)]
pub(crate) struct AbsenceForm {
    #[serde(default)]
    pub first_day: String,
    #[serde(default)]
    pub last_day: String,
    /// `all`, `am` or `pm`.
    #[serde(default)]
    pub part: String,
    #[serde(default)]
    pub note: String,
}

#[derive(Debug, Default)]
pub(crate) struct AbsenceErrors {
    pub first_day: Option<String>,
    pub last_day: Option<String>,
    pub part: Option<String>,
    pub note: Option<String>,
}

impl AbsenceErrors {
    fn any(&self) -> bool {
        self.first_day.is_some()
            || self.last_day.is_some()
            || self.part.is_some()
            || self.note.is_some()
    }
}

/// One of the person's own absences, with its delete button.
pub(crate) struct AbsenceCard {
    pub text: String,
    pub delete_action: String,
    pub confirm: String,
}

pub(crate) struct FeedCard {
    pub created: String,
    pub with_patient_names: bool,
    pub last_used: String,
    pub revoke_action: String,
}

/// A feed just made: its address, shown this once.
pub(crate) struct NewFeed {
    pub url: String,
    /// The same address for a phone's calendar app (`webcal://`).
    pub webcal: String,
    pub with_patient_names: bool,
}

#[derive(Template)]
#[template(path = "sns/calendar.html")]
pub(crate) struct CalendarPage<'a> {
    pub t: Translator,
    pub assets: &'static AssetUrls,
    pub nav: Nav<'a>,
    pub current_path: &'a str,
    pub csrf: &'a str,
    pub flash: Option<Flash>,
    pub month_error: Option<String>,
    pub month: MonthView,
    pub absence: AbsenceForm,
    pub absence_errors: AbsenceErrors,
    pub absence_open: bool,
    pub my_absences: Vec<AbsenceCard>,
    pub feeds: Vec<FeedCard>,
    pub new_feed: Option<NewFeed>,
    pub feed_error: Option<String>,
    /// At most five feeds: the form is left out at five.
    pub may_add_feed: bool,
}

/// What a refused form leaves on the page, and a feed just made.
#[derive(Default)]
struct PersonalTyped {
    absence: Option<(AbsenceForm, AbsenceErrors)>,
    new_feed: Option<NewFeed>,
    feed_error: Option<String>,
}

pub(crate) async fn show(
    State(services): State<Services>,
    ctx: Ctx,
    uri: Uri,
) -> Result<Response, Response> {
    let viewer = ctx.require_viewer(&services).await?;
    let (month, bad) = requested_month(&uri);
    let t = Translator::new(ctx.lang);
    let status = if bad {
        StatusCode::UNPROCESSABLE_ENTITY
    } else {
        StatusCode::OK
    };
    render_personal(
        &services,
        &ctx,
        &viewer,
        month,
        wants_all_days(&uri),
        bad,
        PersonalTyped::default(),
        calendar_flash(t, &uri),
        status,
    )
    .await
}

#[allow(clippy::too_many_arguments)]
async fn render_personal(
    services: &Services,
    ctx: &Ctx,
    viewer: &Viewer,
    month: NaiveDate,
    all_days: bool,
    bad_month: bool,
    typed: PersonalTyped,
    flash: Option<Flash>,
    status: StatusCode,
) -> Result<Response, Response> {
    let t = Translator::new(ctx.lang);
    let (from, to) = grid_range(month);
    let view = services
        .calendar(viewer, &ctx.client, from, to, None)
        .await
        .map_err(|e| ctx.fail("reading the calendar", e))?;
    let feeds = services
        .feeds(viewer)
        .await
        .map_err(|e| ctx.fail("listing calendar feeds", e))?;
    let me = viewer.user().id;
    let mut grid = month_days(t, month, &view, me, &Mode::Personal, all_days);
    set_links(&mut grid, t, "/calendar", month);
    let code = grid.nav.code.clone();
    let my_absences = view
        .absences
        .iter()
        .filter(|a| a.user_id == me)
        .map(|a| {
            let days = if a.first_day == a.last_day {
                day_label(t, a.first_day)
            } else {
                format!(
                    "{}〜{}",
                    day_label(t, a.first_day),
                    day_label(t, a.last_day)
                )
            };
            let mut text = format!("{days}{}", span_suffix(t, &a.part));
            if !a.note.is_empty() {
                text = format!("{text}（{}）", a.note);
            }
            AbsenceCard {
                confirm: t.format("calendar.absence.confirm_delete", &text),
                text,
                delete_action: format!("/calendar/absences/{}/delete?month={code}", a.id),
            }
        })
        .collect();
    let feed_cards: Vec<FeedCard> = feeds
        .iter()
        .map(|f| FeedCard {
            created: crate::datetime::date(ctx.lang, f.created_at),
            with_patient_names: f.with_patient_names,
            last_used: f.last_used_at.map_or_else(
                || t.get("calendar.feed.never_used").to_owned(),
                |at| crate::datetime::date_time(ctx.lang, at),
            ),
            revoke_action: format!("/calendar/feeds/{}/revoke", f.id),
        })
        .collect();
    let today = cal::today().to_string();
    let (absence, absence_errors, absence_open) = match typed.absence {
        Some((form, errors)) => (form, errors, true),
        None => (
            AbsenceForm {
                first_day: today.clone(),
                last_day: today,
                part: "all".to_owned(),
                note: String::new(),
            },
            AbsenceErrors::default(),
            false,
        ),
    };
    let unread = unread_total(services, viewer).await;
    let path = "/calendar";
    let page = CalendarPage {
        t,
        assets: assets::urls(),
        nav: nav(viewer, ctx, unread, Section::Calendar),
        current_path: path,
        csrf: ctx.csrf.form_token(),
        flash,
        month_error: bad_month.then(|| t.get("calendar.error.month").to_owned()),
        month: grid,
        absence,
        absence_errors,
        absence_open,
        my_absences,
        may_add_feed: feed_cards.len() < 5,
        feeds: feed_cards,
        new_feed: typed.new_feed,
        feed_error: typed.feed_error,
    };
    Ok(ctx.respond(status, &page))
}

/// The month a form came from (`?month=` of its action), or this month.
fn form_month(uri: &Uri) -> NaiveDate {
    requested_month(uri).0
}

pub(crate) async fn add_absence(
    State(services): State<Services>,
    ctx: Ctx,
    uri: Uri,
    form: Result<Form<AbsenceForm>, FormRejection>,
) -> Result<Response, Response> {
    let p = Place::open_home(&services, &ctx).await?;
    let form = form.map(|f| f.0).unwrap_or_default();
    let t = Translator::new(ctx.lang);
    let mut errors = AbsenceErrors::default();
    let first = match parse_day(&form.first_day) {
        Ok(Some(d)) => Some(d),
        _ => {
            errors.first_day = Some(t.get("calendar.absence.error_first_day").to_owned());
            None
        }
    };
    let last = match parse_day(&form.last_day) {
        Ok(Some(d)) => Some(d),
        Ok(None) => first,
        Err(()) => {
            errors.last_day = Some(t.get("calendar.absence.error_last_day").to_owned());
            None
        }
    };
    let span = AbsenceSpan::from_code(form.part.trim()).unwrap_or(AbsenceSpan::AllDay);
    let again = |form: AbsenceForm, errors: AbsenceErrors| {
        let services = &services;
        let ctx = &ctx;
        let viewer = &p.viewer;
        let month = form_month(&uri);
        async move {
            render_personal(
                services,
                ctx,
                viewer,
                month,
                false,
                false,
                PersonalTyped {
                    absence: Some((form, errors)),
                    ..PersonalTyped::default()
                },
                None,
                StatusCode::UNPROCESSABLE_ENTITY,
            )
            .await
        }
    };
    let (Some(first), Some(last)) = (first, last) else {
        return again(form, errors).await;
    };
    match services
        .add_absence(&p.actor(), first, last, span, &form.note)
        .await
    {
        Ok(_) => Ok(ctx.redirect(&format!(
            "/calendar?month={}&done=absence_added#day-{first}",
            month_code(cal::month_of(first))
        ))),
        Err(e) if e.code == ErrorCode::InvalidInput => {
            let message = |key: &'static str| Some(field_message(t, &e, key));
            match e.field {
                Some("lastDay") => {
                    errors.last_day = message("calendar.absence.error_order");
                }
                Some("part") => errors.part = message("calendar.absence.error_half_day"),
                Some("note") => errors.note = message("calendar.absence.error_note"),
                _ => errors.first_day = message("calendar.absence.error_first_day"),
            }
            debug_assert!(errors.any());
            again(form, errors).await
        }
        Err(e) => Err(page_error(&ctx, "entering an absence", e)),
    }
}

pub(crate) async fn delete_absence(
    State(services): State<Services>,
    ctx: Ctx,
    uri: Uri,
    Path(id): Path<String>,
) -> Result<Response, Response> {
    let p = Place::open_home(&services, &ctx).await?;
    let month = form_month(&uri);
    let result = services.delete_absence(&p.actor(), parse_id(&id)).await;
    let back = format!("/calendar?month={}#absences", month_code(month));
    Ok(after(
        &ctx,
        &back,
        result,
        "absence_deleted",
        "withdrawing an absence",
    ))
}

#[derive(Debug, Default, Deserialize)]
pub(crate) struct FeedForm {
    with_patient_names: Option<String>,
}

/// The address people reach this server at, as their browser asked for it.
fn origin(ctx: &Ctx, headers: &HeaderMap) -> Option<(String, String)> {
    let host = ["x-forwarded-host", "host"].into_iter().find_map(|name| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.split(',').next())
            .map(str::trim)
            .filter(|h| {
                !h.is_empty()
                    && h.chars().all(|c| {
                        c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | ':' | '[' | ']')
                    })
            })
    })?;
    let scheme = if ctx.secure { "https" } else { "http" };
    Some((scheme.to_owned(), host.to_owned()))
}

pub(crate) async fn create_feed(
    State(services): State<Services>,
    ctx: Ctx,
    headers: HeaderMap,
    form: Result<Form<FeedForm>, FormRejection>,
) -> Result<Response, Response> {
    let p = Place::open_home(&services, &ctx).await?;
    let with_names = form
        .map(|f| f.0.with_patient_names.is_some())
        .unwrap_or(false);
    let t = Translator::new(ctx.lang);
    let month = cal::month_of(cal::today());
    let typed = match services.create_feed(&p.actor(), with_names).await {
        Ok((_, token)) => {
            let path = format!("/calendar/feed/{token}.ics");
            let (url, webcal) = match origin(&ctx, &headers) {
                Some((scheme, host)) => (
                    format!("{scheme}://{host}{path}"),
                    format!("webcal://{host}{path}"),
                ),
                None => (path.clone(), path),
            };
            PersonalTyped {
                new_feed: Some(NewFeed {
                    url,
                    webcal,
                    with_patient_names: with_names,
                }),
                ..PersonalTyped::default()
            }
        }
        Err(e) if e.code == ErrorCode::InvalidInput => PersonalTyped {
            feed_error: Some(t.get("calendar.feed.error_too_many").to_owned()),
            ..PersonalTyped::default()
        },
        Err(e) => return Err(page_error(&ctx, "making a calendar feed", e)),
    };
    let status = if typed.feed_error.is_some() {
        StatusCode::UNPROCESSABLE_ENTITY
    } else {
        StatusCode::OK
    };
    let res = render_personal(
        &services, &ctx, &p.viewer, month, false, false, typed, None, status,
    )
    .await?;
    Ok(no_store(res))
}

/// A page showing a secret address: kept by no cache, not even the browser's.
fn no_store(mut res: Response) -> Response {
    res.headers_mut().insert(
        http::header::CACHE_CONTROL,
        http::HeaderValue::from_static("no-store"),
    );
    res
}

pub(crate) async fn revoke_feed(
    State(services): State<Services>,
    ctx: Ctx,
    Path(id): Path<String>,
) -> Result<Response, Response> {
    let p = Place::open_home(&services, &ctx).await?;
    let result = services.revoke_feed(&p.actor(), parse_id(&id)).await;
    Ok(after(
        &ctx,
        "/calendar#feeds",
        result,
        "feed_revoked",
        "revoking a calendar feed",
    ))
}

// --- Repetition ------------------------------------------------------------------------------

/// The repetitions the event form offers.
const REPEATS: [&str; 5] = ["none", "weekly", "biweekly", "monthly_nth", "monthly_date"];

fn weekday_code(wd: Weekday) -> &'static str {
    match wd {
        Weekday::Mon => "MO",
        Weekday::Tue => "TU",
        Weekday::Wed => "WE",
        Weekday::Thu => "TH",
        Weekday::Fri => "FR",
        Weekday::Sat => "SA",
        Weekday::Sun => "SU",
    }
}

/// Which week of its month a day is in: 1 to 4, or -1 for the fifth (the last: not every
/// month has a fifth).
fn nth_of_month(day: NaiveDate) -> i8 {
    match (day.day() - 1) / 7 + 1 {
        n @ 1..=4 => i8::try_from(n).unwrap_or(1),
        _ => -1,
    }
}

/// The RRULE of a repetition chosen on the form, starting on `first`.
fn rrule_for(repeat: &str, first: NaiveDate, until: Option<NaiveDate>) -> Option<String> {
    let rule = match repeat {
        "weekly" => "FREQ=WEEKLY".to_owned(),
        "biweekly" => "FREQ=WEEKLY;INTERVAL=2".to_owned(),
        "monthly_nth" => format!(
            "FREQ=MONTHLY;BYDAY={}{}",
            nth_of_month(first),
            weekday_code(first.weekday())
        ),
        "monthly_date" => format!("FREQ=MONTHLY;BYMONTHDAY={}", first.day()),
        _ => return None,
    };
    Some(match until {
        Some(u) => format!("{rule};UNTIL={}", u.format("%Y%m%d")),
        None => rule,
    })
}

/// A stored rule as the form's choice and its last day; `keep` for a rule the form cannot
/// make (entered elsewhere): it is kept as it is unless another choice is made.
fn repeat_of(rrule: &str, first: NaiveDate) -> (&'static str, Option<NaiveDate>) {
    let Ok(rule) = Rule::parse(rrule) else {
        return ("keep", None);
    };
    if rule.count.is_some() || !rule.by_month.is_empty() {
        return ("keep", None);
    }
    let wd = first.weekday();
    let choice = match rule.freq {
        Freq::Weekly
            if rule.by_month_day.is_empty()
                && (rule.by_day.is_empty() || rule.by_day == [(None, wd)]) =>
        {
            match rule.interval {
                1 => "weekly",
                2 => "biweekly",
                _ => "keep",
            }
        }
        Freq::Monthly if rule.interval == 1 => {
            if rule.by_day.is_empty()
                && (rule.by_month_day.is_empty()
                    || rule.by_month_day == [i8::try_from(first.day()).unwrap_or(0)])
            {
                "monthly_date"
            } else if rule.by_month_day.is_empty()
                && rule.by_day == [(Some(nth_of_month(first)), wd)]
            {
                "monthly_nth"
            } else {
                "keep"
            }
        }
        _ => "keep",
    };
    (choice, rule.until)
}

/// A repetition in words: 「毎週 土曜」, 「毎月 第2火曜」, 「毎月 5日（2027年3月31日まで）」.
fn repeat_text(t: Translator, rrule: &str, first: NaiveDate) -> String {
    let (choice, until) = repeat_of(rrule, first);
    let wd = weekday_short(t, first.weekday());
    let nth = match nth_of_month(first) {
        -1 => t.get("calendar.repeat.last").to_owned(),
        n => t.format("calendar.repeat.nth", &n.to_string()),
    };
    let text = match choice {
        "weekly" => t.format("calendar.repeat.text_weekly", wd),
        "biweekly" => t.format("calendar.repeat.text_biweekly", wd),
        "monthly_nth" => fill(t, "calendar.repeat.text_monthly_nth", &[&nth, wd]),
        "monthly_date" => t.format(
            "calendar.repeat.text_monthly_date",
            &first.day().to_string(),
        ),
        _ => return t.format("calendar.repeat.text_other", rrule),
    };
    match until {
        Some(u) => fill(
            t,
            "calendar.repeat.text_until",
            &[&text, &full_day_label(t, u)],
        ),
        None => text,
    }
}

// --- Events ----------------------------------------------------------------------------------

/// The event form as typed.
#[derive(Debug, Clone, Default, Deserialize)]
pub(crate) struct EventForm {
    #[serde(default)]
    pub title: String,
    #[serde(default)]
    pub category: String,
    #[serde(default)]
    pub first_day: String,
    #[serde(default)]
    pub last_day: String,
    #[serde(default)]
    pub starts_at: String,
    #[serde(default)]
    pub ends_at: String,
    /// One of [`REPEATS`], or `keep` (editing a rule made elsewhere).
    #[serde(default)]
    pub repeat: String,
    #[serde(default)]
    pub until: String,
    #[serde(default)]
    pub place: String,
    #[serde(default)]
    pub notes: String,
    /// The version the form was filled from (editing).
    #[serde(default)]
    pub version: String,
    /// The month to come back to.
    #[serde(default)]
    pub month: String,
}

#[derive(Debug, Default)]
pub(crate) struct EventErrors {
    pub alert: Option<String>,
    pub title: Option<String>,
    pub first_day: Option<String>,
    pub last_day: Option<String>,
    pub time: Option<String>,
    pub repeat: Option<String>,
    pub place: Option<String>,
    pub notes: Option<String>,
}

impl EventErrors {
    fn any(&self) -> bool {
        self.alert.is_some()
            || self.title.is_some()
            || self.first_day.is_some()
            || self.last_day.is_some()
            || self.time.is_some()
            || self.repeat.is_some()
            || self.place.is_some()
            || self.notes.is_some()
    }
}

/// The choices of the event form's selects: (value, label, chosen).
pub(crate) type Choice = (&'static str, String, bool);

impl EventForm {
    /// An empty form for an event on `day`.
    fn new_on(day: NaiveDate, month: NaiveDate) -> Self {
        Self {
            category: "other".to_owned(),
            first_day: day.to_string(),
            repeat: "none".to_owned(),
            month: month_code(month),
            ..Self::default()
        }
    }

    /// The form filled from a stored event.
    fn of(e: &EventRow, month: NaiveDate) -> Self {
        let (repeat, until) = e
            .rrule
            .as_deref()
            .map_or(("none", None), |r| repeat_of(r, e.first_day));
        let time = |t: Option<NaiveTime>| t.map(|t| t.format("%H:%M").to_string());
        Self {
            title: e.title.clone(),
            category: e.category.clone(),
            first_day: e.first_day.to_string(),
            last_day: if e.last_day == e.first_day {
                String::new()
            } else {
                e.last_day.to_string()
            },
            starts_at: time(e.starts_at).unwrap_or_default(),
            ends_at: time(e.ends_at).unwrap_or_default(),
            repeat: repeat.to_owned(),
            until: until.map(|u| u.to_string()).unwrap_or_default(),
            place: e.place.clone(),
            notes: e.notes.clone(),
            version: e.version.to_string(),
            month: month_code(month),
        }
    }

    pub(crate) fn categories(&self, t: &Translator) -> Vec<Choice> {
        let t = *t;
        EventCategory::ALL
            .iter()
            .map(|c| {
                (
                    c.code(),
                    category_label(t, c.code()).to_owned(),
                    self.category == c.code(),
                )
            })
            .collect()
    }

    /// The repetitions, `keep` first when the stored rule is one the form cannot make.
    pub(crate) fn repeats(&self, t: &Translator, kept: Option<&str>) -> Vec<Choice> {
        let t = *t;
        let mut out = Vec::new();
        if let Some(rule) = kept {
            out.push((
                "keep",
                t.format("calendar.repeat.keep", rule),
                self.repeat == "keep",
            ));
        }
        out.extend(REPEATS.iter().map(|r| {
            let chosen = self.repeat == *r || (*r == "none" && self.repeat.is_empty());
            (
                *r,
                t.get(&format!("calendar.repeat.{r}")).to_owned(),
                chosen,
            )
        }));
        out
    }

    /// The event as the services take it, or what is wrong with the form. `kept` is the rule
    /// stored now, for `keep`.
    fn input(&self, t: Translator, kept: Option<&str>) -> Result<EventInput, Box<EventErrors>> {
        let mut errors = EventErrors::default();
        let first = match parse_day(&self.first_day) {
            Ok(Some(d)) => Some(d),
            _ => {
                errors.first_day = Some(t.get("calendar.event.error_first_day").to_owned());
                None
            }
        };
        let last = match parse_day(&self.last_day) {
            Ok(Some(d)) => Some(d),
            Ok(None) => first,
            Err(()) => {
                errors.last_day = Some(t.get("calendar.event.error_last_day").to_owned());
                None
            }
        };
        let times = match (parse_time(&self.starts_at), parse_time(&self.ends_at)) {
            (Ok(s), Ok(e)) if s.is_some() == e.is_some() => Some((s, e)),
            _ => {
                errors.time = Some(t.get("calendar.event.error_time").to_owned());
                None
            }
        };
        let until = match parse_day(&self.until) {
            Ok(u) => u,
            Err(()) => {
                errors.repeat = Some(t.get("calendar.event.error_until").to_owned());
                None
            }
        };
        let repeat = self.repeat.trim();
        if repeat != "keep" && !REPEATS.contains(&repeat) && !repeat.is_empty() {
            errors.repeat = Some(t.get("calendar.event.error_repeat").to_owned());
        }
        let (Some(first), Some(last), Some((starts_at, ends_at)), false) =
            (first, last, times, errors.any())
        else {
            return Err(Box::new(errors));
        };
        let rrule = if repeat == "keep" {
            kept.map(str::to_owned)
        } else {
            rrule_for(repeat, first, until)
        };
        Ok(EventInput {
            category: EventCategory::from_code(self.category.trim())
                .unwrap_or(EventCategory::Other),
            title: self.title.clone(),
            first_day: first,
            last_day: last,
            starts_at,
            ends_at,
            rrule,
            place: self.place.clone(),
            notes: self.notes.clone(),
        })
    }
}

/// A refusal of the services said at its field, or `None` for anything but a refused input.
fn event_errors(t: Translator, e: &AppError) -> Option<EventErrors> {
    let mut errors = EventErrors::default();
    match e.code {
        ErrorCode::InvalidInput => {
            let message = |key: &'static str| Some(field_message(t, e, key));
            match e.field {
                Some("title") => errors.title = message("calendar.event.error_title"),
                Some("lastDay") => errors.last_day = message("calendar.event.error_order"),
                Some("endsAt") => errors.time = message("calendar.event.error_time_order"),
                Some("rrule") => errors.repeat = message("calendar.event.error_repeat_order"),
                Some("place") => errors.place = message("calendar.event.error_place"),
                Some("notes") => errors.notes = message("calendar.event.error_notes"),
                _ => errors.alert = Some(t.get("sns.error.invalid").to_owned()),
            }
        }
        ErrorCode::GroupArchived => errors.alert = Some(t.get("sns.error.archived").to_owned()),
        _ => return None,
    }
    Some(errors)
}

#[derive(Template)]
#[template(path = "sns/group_calendar.html")]
pub(crate) struct GroupCalendarPage<'a> {
    pub t: Translator,
    pub assets: &'static AssetUrls,
    pub nav: Nav<'a>,
    pub current_path: &'a str,
    pub csrf: &'a str,
    pub flash: Option<Flash>,
    pub slug: &'a str,
    pub group_id: String,
    pub group_name: String,
    pub month_error: Option<String>,
    pub month: MonthView,
    /// Not a patient group: its rotation is a link away.
    pub has_duty: bool,
    /// Not archived: events may be added.
    pub can_add: bool,
    pub form: EventForm,
    pub errors: EventErrors,
    pub form_open: bool,
    pub action: String,
    /// A new event has no stored rule to keep.
    pub kept_rule: Option<String>,
}

pub(crate) async fn group_show(
    State(services): State<Services>,
    ctx: Ctx,
    Path((slug, id)): Path<(String, String)>,
    uri: Uri,
) -> Result<Response, Response> {
    let p = Place::open(&services, &ctx, &slug).await?;
    let (month, bad) = requested_month(&uri);
    let t = Translator::new(ctx.lang);
    let status = if bad {
        StatusCode::UNPROCESSABLE_ENTITY
    } else {
        StatusCode::OK
    };
    render_group(
        &services,
        &ctx,
        &p,
        parse_id(&id),
        month,
        wants_all_days(&uri),
        bad,
        None,
        calendar_flash(t, &uri),
        status,
    )
    .await
}

#[allow(clippy::too_many_arguments)]
async fn render_group(
    services: &Services,
    ctx: &Ctx,
    p: &Place,
    group_id: GroupId,
    month: NaiveDate,
    all_days: bool,
    bad_month: bool,
    typed: Option<(EventForm, EventErrors)>,
    flash: Option<Flash>,
    status: StatusCode,
) -> Result<Response, Response> {
    let t = Translator::new(ctx.lang);
    let group = services
        .group_view(&p.actor(), group_id)
        .await
        .map_err(|e| page_error(ctx, "opening a group", e))?;
    let (from, to) = grid_range(month);
    let view = services
        .calendar(&p.viewer, &ctx.client, from, to, Some((p.slug(), group_id)))
        .await
        .map_err(|e| page_error(ctx, "reading a group's calendar", e))?;
    let known = professions(&group);
    let mode = Mode::Group {
        slug: p.slug(),
        group_id,
        professions: &known,
    };
    let me = p.viewer.user().id;
    let mut grid = month_days(t, month, &view, me, &mode, all_days);
    let base = format!("/a/{}/g/{group_id}/calendar", p.slug());
    set_links(&mut grid, t, &base, month);
    let today = cal::today();
    let default_day = if cal::month_of(today) == month {
        today
    } else {
        month
    };
    let (form, errors, form_open) = match typed {
        Some((form, errors)) => (form, errors, true),
        None => (
            EventForm::new_on(default_day, month),
            EventErrors::default(),
            false,
        ),
    };
    let unread = unread_total(services, &p.viewer).await;
    let page = GroupCalendarPage {
        t,
        assets: assets::urls(),
        nav: nav(&p.viewer, ctx, unread, Section::Groups),
        current_path: &base,
        csrf: ctx.csrf.form_token(),
        flash,
        slug: p.slug(),
        group_id: group_id.to_string(),
        group_name: group.group.name.clone(),
        month_error: bad_month.then(|| t.get("calendar.error.month").to_owned()),
        month: grid,
        has_duty: group.group.kind != GroupKind::Patient,
        can_add: group.group.archived_at.is_none(),
        form,
        errors,
        form_open,
        action: format!("{base}/events"),
        kept_rule: None,
    };
    Ok(ctx.respond(status, &page))
}

fn calendar_path(slug: &str, group_id: GroupId, month: NaiveDate) -> String {
    format!(
        "/a/{slug}/g/{group_id}/calendar?month={}",
        month_code(month)
    )
}

/// The month a form names (its hidden `month`), or this month.
fn month_or_this(raw: &str) -> NaiveDate {
    parse_month(raw)
        .ok()
        .flatten()
        .unwrap_or_else(|| cal::month_of(cal::today()))
}

pub(crate) async fn create_event(
    State(services): State<Services>,
    ctx: Ctx,
    Path((slug, id)): Path<(String, String)>,
    form: Result<Form<EventForm>, FormRejection>,
) -> Result<Response, Response> {
    let p = Place::open(&services, &ctx, &slug).await?;
    let group_id: GroupId = parse_id(&id);
    let form = form.map(|f| f.0).unwrap_or_default();
    let t = Translator::new(ctx.lang);
    let month = month_or_this(&form.month);
    let errors = match form.input(t, None) {
        Ok(input) => match services.create_event(&p.actor(), group_id, &input).await {
            Ok(_) => {
                let at = input.first_day;
                return Ok(ctx.redirect(&format!(
                    "{}&done=event_added#day-{at}",
                    calendar_path(p.slug(), group_id, cal::month_of(at))
                )));
            }
            Err(e) => match event_errors(t, &e) {
                Some(errors) => errors,
                None => return Err(page_error(&ctx, "adding an event", e)),
            },
        },
        Err(errors) => *errors,
    };
    render_group(
        &services,
        &ctx,
        &p,
        group_id,
        month,
        false,
        false,
        Some((form, errors)),
        None,
        StatusCode::UNPROCESSABLE_ENTITY,
    )
    .await
}

#[derive(Template)]
#[template(path = "sns/event_edit.html")]
pub(crate) struct EventEditPage<'a> {
    pub t: Translator,
    pub assets: &'static AssetUrls,
    pub nav: Nav<'a>,
    pub current_path: &'a str,
    pub csrf: &'a str,
    pub group_name: String,
    pub back: String,
    pub form: EventForm,
    pub errors: EventErrors,
    /// The stored rule, when the form cannot make it.
    pub kept_rule: Option<String>,
    pub action: String,
    /// Someone else changed the event meanwhile: what is stored now.
    pub conflict: Option<String>,
}

/// The event of the path, if it is in the path's group and the viewer may change it.
async fn editable(
    services: &Services,
    ctx: &Ctx,
    p: &Place,
    group_id: GroupId,
    event_id: Uuid,
) -> Result<EventRow, Response> {
    let (event, can_edit) = services
        .event(&p.actor(), event_id)
        .await
        .map_err(|e| page_error(ctx, "opening an event", e))?;
    if event.group_id != group_id || !can_edit {
        return Err(not_found_page(ctx));
    }
    Ok(event)
}

/// The rule the form keeps as it is (`keep`), if the stored one is not the form's.
fn kept_rule(event: &EventRow) -> Option<String> {
    event
        .rrule
        .as_deref()
        .filter(|r| repeat_of(r, event.first_day).0 == "keep")
        .map(str::to_owned)
}

#[allow(clippy::too_many_arguments)]
async fn render_edit(
    services: &Services,
    ctx: &Ctx,
    p: &Place,
    group_id: GroupId,
    event: &EventRow,
    form: EventForm,
    errors: EventErrors,
    conflict: Option<String>,
    status: StatusCode,
) -> Result<Response, Response> {
    let t = Translator::new(ctx.lang);
    let group = services
        .group_view(&p.actor(), group_id)
        .await
        .map_err(|e| page_error(ctx, "opening a group", e))?;
    let month = month_or_this(&form.month);
    let unread = unread_total(services, &p.viewer).await;
    let action = format!(
        "/a/{}/g/{group_id}/calendar/events/{}/edit",
        p.slug(),
        event.id
    );
    let page = EventEditPage {
        t,
        assets: assets::urls(),
        nav: nav(&p.viewer, ctx, unread, Section::Groups),
        current_path: &action,
        csrf: ctx.csrf.form_token(),
        group_name: group.group.name.clone(),
        back: calendar_path(p.slug(), group_id, month),
        kept_rule: kept_rule(event),
        form,
        errors,
        action: action.clone(),
        conflict,
    };
    Ok(ctx.respond(status, &page))
}

pub(crate) async fn edit_event(
    State(services): State<Services>,
    ctx: Ctx,
    Path((slug, id, event)): Path<(String, String, String)>,
    uri: Uri,
) -> Result<Response, Response> {
    let p = Place::open(&services, &ctx, &slug).await?;
    let group_id: GroupId = parse_id(&id);
    let event = editable(&services, &ctx, &p, group_id, parse_id(&event)).await?;
    let month = requested_month(&uri).0;
    let form = EventForm::of(&event, month);
    render_edit(
        &services,
        &ctx,
        &p,
        group_id,
        &event,
        form,
        EventErrors::default(),
        None,
        StatusCode::OK,
    )
    .await
}

pub(crate) async fn update_event(
    State(services): State<Services>,
    ctx: Ctx,
    Path((slug, id, event)): Path<(String, String, String)>,
    form: Result<Form<EventForm>, FormRejection>,
) -> Result<Response, Response> {
    let p = Place::open(&services, &ctx, &slug).await?;
    let group_id: GroupId = parse_id(&id);
    let event = editable(&services, &ctx, &p, group_id, parse_id(&event)).await?;
    let mut form = form.map(|f| f.0).unwrap_or_default();
    let t = Translator::new(ctx.lang);
    // Not a number: a version nobody has, so the change is refused as a conflict.
    let version: i32 = form.version.trim().parse().unwrap_or(-1);
    let kept = event.rrule.clone();
    let (errors, conflict) = match form.input(t, kept.as_deref()) {
        Ok(input) => match services
            .update_event(&p.actor(), event.id, version, &input)
            .await
        {
            Ok(()) => {
                let at = input.first_day;
                return Ok(ctx.redirect(&format!(
                    "{}&done=event_saved#day-{at}",
                    calendar_path(p.slug(), group_id, cal::month_of(at))
                )));
            }
            Err(e) if e.code == ErrorCode::Conflict => {
                // What is stored now; the form keeps what was typed, and sending it again
                // replaces the other change knowingly.
                let current = editable(&services, &ctx, &p, group_id, event.id).await?;
                form.version = current.version.to_string();
                let saved = summary(t, &current);
                (EventErrors::default(), Some(saved))
            }
            Err(e) => match event_errors(t, &e) {
                Some(errors) => (errors, None),
                None => return Err(page_error(&ctx, "changing an event", e)),
            },
        },
        Err(errors) => (*errors, None),
    };
    // A change made meanwhile is 409; a refused field 422.
    let status = if conflict.is_some() {
        StatusCode::CONFLICT
    } else {
        StatusCode::UNPROCESSABLE_ENTITY
    };
    render_edit(
        &services, &ctx, &p, group_id, &event, form, errors, conflict, status,
    )
    .await
}

/// An event in one line: title, days, time, repetition, place.
fn summary(t: Translator, e: &EventRow) -> String {
    let mut parts = vec![e.title.clone(), when_text(t, e, e.first_day, e.last_day)];
    if let Some(r) = &e.rrule {
        parts.push(repeat_text(t, r, e.first_day));
    }
    if !e.place.is_empty() {
        parts.push(e.place.clone());
    }
    parts.join(t.get("sns.list_separator"))
}

#[derive(Debug, Default, Deserialize)]
pub(crate) struct EventActionForm {
    #[serde(default)]
    day: String,
    #[serde(default)]
    month: String,
}

pub(crate) async fn delete_event(
    State(services): State<Services>,
    ctx: Ctx,
    Path((slug, id, event)): Path<(String, String, String)>,
    form: Result<Form<EventActionForm>, FormRejection>,
) -> Result<Response, Response> {
    let p = Place::open(&services, &ctx, &slug).await?;
    let group_id: GroupId = parse_id(&id);
    let form = form.map(|f| f.0).unwrap_or_default();
    let month = month_or_this(&form.month);
    let result = services.delete_event(&p.actor(), parse_id(&event)).await;
    Ok(after(
        &ctx,
        &calendar_path(p.slug(), group_id, month),
        result,
        "event_deleted",
        "deleting an event",
    ))
}

pub(crate) async fn cancel_occurrence(
    State(services): State<Services>,
    ctx: Ctx,
    Path((slug, id, event)): Path<(String, String, String)>,
    form: Result<Form<EventActionForm>, FormRejection>,
) -> Result<Response, Response> {
    let p = Place::open(&services, &ctx, &slug).await?;
    let group_id: GroupId = parse_id(&id);
    let form = form.map(|f| f.0).unwrap_or_default();
    let month = month_or_this(&form.month);
    let back = calendar_path(p.slug(), group_id, month);
    let Ok(Some(day)) = parse_day(&form.day) else {
        return Ok(ctx.redirect(&with_flash(&back, "error", "not_that_day")));
    };
    let back = format!("{back}#day-{day}");
    match services
        .cancel_occurrence(&p.actor(), parse_id(&event), day)
        .await
    {
        Err(e) if e.code == ErrorCode::InvalidInput => {
            Ok(ctx.redirect(&with_flash(&back, "error", "not_that_day")))
        }
        result => Ok(after(
            &ctx,
            &back,
            result,
            "occurrence_cancelled",
            "cancelling a day of a series",
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::i18n::Lang;

    fn d(y: i32, m: u32, day: u32) -> NaiveDate {
        NaiveDate::from_ymd_opt(y, m, day).expect("a date")
    }

    #[test]
    fn months_are_read_strictly() {
        assert_eq!(parse_month("2026-12"), Ok(Some(d(2026, 12, 1))));
        assert_eq!(parse_month("2027-1"), Ok(Some(d(2027, 1, 1))));
        assert_eq!(parse_month(""), Ok(None));
        for bad in [
            "2026-13",
            "2026-00",
            "26-12",
            "2026",
            "2026-12-01",
            "１２",
            "9999-01",
            "1999-12",
            "-2026-1",
            "2026--1",
            "2026-+1",
        ] {
            assert_eq!(parse_month(bad), Err(()), "{bad}");
        }
    }

    #[test]
    fn a_month_page_shows_whole_weeks_from_monday() {
        // December 2026 starts on a Tuesday and ends on a Thursday.
        assert_eq!(grid_range(d(2026, 12, 1)), (d(2026, 11, 30), d(2027, 1, 3)));
        // February 2027 starts on a Monday and ends on a Sunday: four weeks exactly.
        assert_eq!(grid_range(d(2027, 2, 1)), (d(2027, 2, 1), d(2027, 2, 28)));
        let (from, to) = grid_range(d(2000, 1, 1));
        assert!(from < to && (to - from).num_days() < cal::MAX_RANGE_DAYS);
    }

    #[test]
    fn repetitions_become_rules_and_come_back() {
        // The second Tuesday of December 2026.
        let first = d(2026, 12, 8);
        let until = Some(d(2027, 3, 31));
        for repeat in ["weekly", "biweekly", "monthly_nth", "monthly_date"] {
            let rule = rrule_for(repeat, first, until).expect("a rule");
            assert!(Rule::parse(&rule).is_ok(), "{rule}");
            assert_eq!(repeat_of(&rule, first), (repeat, until), "{rule}");
        }
        assert_eq!(
            rrule_for("monthly_nth", first, None).as_deref(),
            Some("FREQ=MONTHLY;BYDAY=2TU")
        );
        // The fifth Thursday is the last one.
        assert_eq!(
            rrule_for("monthly_nth", d(2026, 12, 31), None).as_deref(),
            Some("FREQ=MONTHLY;BYDAY=-1TH")
        );
        assert_eq!(rrule_for("none", first, until), None);
        assert_eq!(repeat_of("FREQ=DAILY;COUNT=3", first).0, "keep");
        assert_eq!(repeat_of("nonsense", first).0, "keep");
        let t = Translator::new(Lang::Ja);
        assert_eq!(
            repeat_text(t, "FREQ=MONTHLY;BYDAY=2TU", first),
            "毎月 第2火曜"
        );
    }

    #[test]
    fn days_are_named_in_both_languages() {
        let sat = d(2026, 12, 5);
        assert_eq!(day_label(Translator::new(Lang::Ja), sat), "12月5日（土）");
        assert_eq!(day_label(Translator::new(Lang::En), sat), "Sat 5 Dec");
        assert_eq!(
            month_title(Translator::new(Lang::Ja), d(2027, 1, 1)),
            "2027年1月"
        );
    }

    const EVIL: &str = "<script>alert(1)</script>\"'&";

    /// December 2026 on a group's calendar as its owner sees it: a weekly visit (editable), a
    /// member's morning away, the viewer's own night duty in a draft month, and 天皇誕生日's
    /// neighbours (no holiday in December: 元日 is in the grid's last days, January 1st).
    fn group_page() -> String {
        use chrono::{TimeZone, Utc};
        let t = Translator::new(Lang::Ja);
        let me = PersonId::from_uuid(Uuid::now_v7());
        let other = PersonId::from_uuid(Uuid::now_v7());
        let group_id = GroupId::from_uuid(Uuid::now_v7());
        let visit = EventRow {
            id: Uuid::now_v7(),
            group_id,
            category: "visit".into(),
            title: EVIL.into(),
            first_day: d(2026, 12, 1),
            last_day: d(2026, 12, 1),
            starts_at: NaiveTime::from_hms_opt(10, 0, 0),
            ends_at: NaiveTime::from_hms_opt(11, 0, 0),
            rrule: Some("FREQ=WEEKLY".into()),
            until_day: None,
            place: EVIL.into(),
            notes: EVIL.into(),
            created_by: me,
            creator_name: Some("川村 健一".into()),
            updated_at: Utc
                .with_ymd_and_hms(2026, 11, 1, 0, 0, 0)
                .single()
                .expect("a time"),
            version: 1,
            exceptions: vec![],
        };
        let occurrence = |day: NaiveDate| cal::Occurrence {
            association: "minatogawa".into(),
            group_id,
            group_name: EVIL.into(),
            patient_group: false,
            first_day: day,
            last_day: day,
            can_edit: true,
            event: visit.clone(),
        };
        let view = CalendarView {
            from: Some(d(2026, 11, 30)),
            to: Some(d(2027, 1, 3)),
            holidays: vec![(d(2027, 1, 1), "元日")],
            occurrences: vec![occurrence(d(2026, 12, 1)), occurrence(d(2026, 12, 8))],
            absences: vec![cal::AbsenceRow {
                id: Uuid::now_v7(),
                user_id: other,
                user_name: "大野 浩".into(),
                first_day: d(2026, 12, 8),
                last_day: d(2026, 12, 8),
                part: "am".into(),
                note: EVIL.into(),
            }],
            duties: vec![cal::DutyEntry {
                association: "minatogawa".into(),
                group_id,
                group_name: EVIL.into(),
                duty: musubi_db::calendar::DutyRow {
                    group_id,
                    day: d(2026, 12, 8),
                    kind: "night".into(),
                    class: "weekday".into(),
                    user_id: Some(me),
                    user_name: Some("川村 健一".into()),
                    published: false,
                },
            }],
        };
        let known: HashMap<PersonId, Profession> =
            [(me, Profession::Physician), (other, Profession::Physician)].into();
        let mode = Mode::Group {
            slug: "minatogawa",
            group_id,
            professions: &known,
        };
        let month = month_days(t, d(2026, 12, 1), &view, me, &mode, true);
        GroupCalendarPage {
            t,
            assets: assets::urls(),
            nav: Nav::signed_in("川村 健一", "TOKEN"),
            current_path: "/a/minatogawa/g/g1/calendar",
            csrf: "TOKEN",
            flash: None,
            slug: "minatogawa",
            group_id: group_id.to_string(),
            group_name: EVIL.into(),
            month_error: None,
            month,
            has_duty: true,
            can_add: true,
            form: EventForm {
                title: EVIL.into(),
                ..EventForm::new_on(d(2026, 12, 5), d(2026, 12, 1))
            },
            errors: EventErrors {
                title: Some("件名を100文字以内で、1行で入れてください。".into()),
                ..EventErrors::default()
            },
            form_open: true,
            action: "/a/minatogawa/g/g1/calendar/events".into(),
            kept_rule: None,
        }
        .render()
        .expect("renders")
    }

    #[test]
    fn a_group_calendar_says_each_kind_in_words_and_escapes_what_people_typed() {
        let page = group_page();
        crate::pages::render_tests::assert_csp_clean(&page);
        assert!(!page.contains("<script>alert"), "escaped");
        // Whole weeks from Monday: 30 November to 3 January, December's days in the list.
        assert!(page.contains("id=\"day-2026-11-30\""));
        assert!(page.contains("id=\"day-2027-01-03\""));
        assert!(page.contains("<span lang=\"ja\">元日</span>"));
        // A weekly visit: each occurrence opens in place with its actions.
        assert_eq!(
            page.matches("<span class=\"cal-tag cal-tag--visit\">訪問</span>")
                .count(),
            2
        );
        assert!(page.contains("毎週 火曜"));
        assert!(page.contains("この日だけ中止"));
        assert!(page.contains("繰り返しごと削除"));
        assert!(page.contains("10:00–11:00"));
        // The absence with the doctor's title and the half day, the viewer's own draft duty.
        assert!(page.contains("大野 浩 先生 不在（午前）"));
        assert!(page.contains("夜間 川村 健一 先生"));
        assert!(page.contains("cal-entry--mine cal-entry--draft"));
        assert!(page.contains(">下書き</span>"));
        // The form as typed, its error at its field.
        assert!(page.contains("id=\"event-title-error\" role=\"alert\""));
        assert!(page.contains("aria-invalid=\"true\" aria-describedby=\"event-title-error\""));
        assert!(page.contains("<details class=\"help cal-add\" id=\"new-event\" open>"));
    }

    #[test]
    fn the_event_form_says_what_is_wrong_at_each_field() {
        let t = Translator::new(Lang::Ja);
        let form = EventForm {
            title: "カンファレンス".into(),
            first_day: "2026-02-30".into(),
            starts_at: "10:00".into(),
            until: "someday".into(),
            ..EventForm::default()
        };
        let errors = form.input(t, None).expect_err("refused");
        assert!(errors.first_day.is_some());
        assert!(errors.time.is_some());
        assert!(errors.repeat.is_some());
        let ok = EventForm {
            title: "カンファレンス".into(),
            first_day: "2026-12-08".into(),
            starts_at: "14:00".into(),
            ends_at: "15:00".into(),
            repeat: "monthly_nth".into(),
            ..EventForm::default()
        };
        let input = ok.input(t, None).expect("accepted");
        assert_eq!(input.rrule.as_deref(), Some("FREQ=MONTHLY;BYDAY=2TU"));
        assert_eq!(input.last_day, input.first_day);
    }
}
