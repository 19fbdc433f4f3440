//! `GET /a/{slug}/g/{group_id}/duty?month=YYYY-MM`: a group's on-call duty rotation (当番表)
//! for a month (see `musubi_domain::calendar`): every slot by day (日中/夜間, 平日/土日/祝日),
//! who has it, their absences beside their names, what breaks a rule (未割当, 不在中の当番, …)
//! said in words at the top and at the slot, and the counts per person.
//!
//! Owners set the rotation up (`POST …/duty/settings`: the kinds of duty, whether Saturday is
//! a weekend day, who takes part with their unavailable and preferred weekdays, monthly
//! maximum, no nights and contact), draft a month (`…/duty/draft`; a second draft replaces the
//! first only when 「置き換える」 is ticked), change single slots (`…/duty/assign`) and publish
//! the month (`…/duty/publish`), optionally linked to the group's topic where it is discussed.
//! Members see a month once it is published; they ask a colleague to take one of their slots,
//! or to exchange it (`…/duty/swaps`), and answer or withdraw requests
//! (`…/duty/swaps/{id}`). The group page shows 「本日の当番医」 ([`on_call_today`]).

use super::calendar::{
    after, calendar_flash, day_label, day_name, days_between, fill, last_day_of, month_code,
    month_nav, parse_day, parse_month, person_name, professions, requested_month, span_suffix,
    weekday_short, with_flash, DayName, MonthNav,
};
use super::{nav, page_error, parse_id, unread_total, Flash, Place};
use crate::assets::{self, AssetUrls};
use crate::ctx::Ctx;
use crate::i18n::Translator;
use crate::layout::{Nav, Section};
use crate::pages::place::not_found_page;
use askama::Template;
use axum::extract::rejection::FormRejection;
use axum::extract::{Path, State};
use axum::response::Response;
use axum::Form;
use chrono::{Datelike, NaiveDate, Weekday};
use http::{StatusCode, Uri};
use musubi_calendar::rotation::{DutyKind, Problem};
use musubi_db::calendar::DutySettingsRow;
use musubi_domain::calendar::{
    self as cal, duty_kind, kind_code, weekdays_of, ParticipantRow, RotationView, SwapAnswer,
};
use musubi_domain::groups::GroupView;
use musubi_domain::types::{GroupId, GroupMemberStatus, PersonId, Profession};
use musubi_domain::{ErrorCode, Services};
use serde::Deserialize;
use std::collections::HashMap;
use uuid::Uuid;

const WEEKDAYS: [Weekday; 7] = [
    Weekday::Mon,
    Weekday::Tue,
    Weekday::Wed,
    Weekday::Thu,
    Weekday::Fri,
    Weekday::Sat,
    Weekday::Sun,
];

/// Longest contact the services keep.
const MAX_CONTACT: usize = 40;

/// 平日 / 土日 / 祝日.
fn class_label(t: Translator, class: &str) -> &'static str {
    t.get(match class {
        "weekend" => "duty.class.weekend",
        "holiday" => "duty.class.holiday",
        _ => "duty.class.weekday",
    })
}

fn kind_label(t: Translator, kind: DutyKind) -> &'static str {
    t.get(match kind {
        DutyKind::Day => "duty.kind.day",
        DutyKind::Night => "duty.kind.night",
    })
}

/// `2026-12-06|day`: a slot in a form.
fn slot_value(day: NaiveDate, kind: &str) -> String {
    format!("{day}|{kind}")
}

fn parse_slot(raw: &str) -> Option<(NaiveDate, DutyKind)> {
    let (day, kind) = raw.trim().split_once('|')?;
    let day = parse_day(day).ok().flatten()?;
    match kind {
        "day" => Some((day, DutyKind::Day)),
        "night" => Some((day, DutyKind::Night)),
        _ => None,
    }
}

/// One slot as the page shows it.
pub(crate) struct SlotCard {
    pub kind: &'static str,
    pub kind_label: &'static str,
    /// The holder's name, or 「未割当」.
    pub who: String,
    pub uncovered: bool,
    pub mine: bool,
    /// 「不在（午前）」 when the holder is away that day.
    pub absent: Option<String>,
    pub problems: Vec<String>,
    /// Open requests to hand it over.
    pub pending: Vec<String>,
    /// The slot in forms.
    pub value: String,
    /// The slot in element ids: `2026-12-06-day`.
    pub key: String,
    /// 「12月6日（日） 日中」, for labels.
    pub label: String,
    /// The owner's select: (person id, name, chosen); "" is uncovered.
    pub options: Vec<(String, String, bool)>,
    /// The holder may ask someone to take it.
    pub can_request: bool,
}

pub(crate) struct DutyDay {
    pub iso: String,
    pub name: DayName,
    /// `weekday`, `weekend` or `holiday`.
    pub class: &'static str,
    pub class_label: &'static str,
    pub holiday: Option<&'static str>,
    pub today: bool,
    pub slots: Vec<SlotCard>,
}

pub(crate) struct CountRow {
    pub name: String,
    pub weekday: u32,
    pub weekend: u32,
    pub holiday: u32,
    pub night: u32,
    pub total: u32,
}

pub(crate) struct SwapCard {
    pub text: String,
    pub note: String,
    pub action: String,
}

/// A weekday checkbox: (index 0 = Monday, label, ticked).
pub(crate) type DayBox = (usize, &'static str, bool);

pub(crate) struct ParticipantField {
    pub id: String,
    pub name: String,
    pub on: bool,
    pub unavailable: Vec<DayBox>,
    pub preferred: Vec<DayBox>,
    pub max: String,
    pub no_nights: bool,
    pub contact: String,
    pub error: Option<String>,
}

pub(crate) struct SettingsForm {
    pub weekday_day: bool,
    pub weekday_night: bool,
    pub weekend_day: bool,
    pub weekend_night: bool,
    pub saturday_weekend: bool,
    pub people: Vec<ParticipantField>,
}

#[derive(Template)]
#[template(path = "sns/duty.html")]
pub(crate) struct DutyPage<'a> {
    pub t: Translator,
    pub assets: &'static AssetUrls,
    pub nav: Nav<'a>,
    pub current_path: &'a str,
    pub csrf: &'a str,
    pub flash: Option<Flash>,
    pub slug: &'a str,
    pub group_id: String,
    pub group_name: String,
    /// `/a/{slug}/g/{group_id}/duty`.
    pub base: String,
    pub month_error: Option<String>,
    pub month: MonthNav,
    pub can_manage: bool,
    pub has_settings: bool,
    /// `draft`, `published`, or empty (nothing drafted yet).
    pub status: &'static str,
    pub published_on: String,
    /// The topic where the month is discussed: (href, title).
    pub topic: Option<(String, String)>,
    pub problems: Vec<String>,
    pub days: Vec<DutyDay>,
    pub counts: Vec<CountRow>,
    pub absences: Vec<String>,
    pub incoming: Vec<SwapCard>,
    pub outgoing: Vec<SwapCard>,
    pub settings: SettingsForm,
    pub settings_error: Option<String>,
    pub settings_open: bool,
    /// The group's topics, to link a published month to: (id, title).
    pub topics: Vec<(String, String)>,
    /// Colleagues to ask for a swap: (id, name).
    pub colleagues: Vec<(String, String)>,
    /// Their slots to take in exchange: (value, label).
    pub exchange: Vec<(String, String)>,
}

impl DutyPage<'_> {
    pub(crate) fn is_draft(&self) -> bool {
        self.status == "draft"
    }

    pub(crate) fn is_published(&self) -> bool {
        self.status == "published"
    }
}

/// Names by person, as the page says them (先生 for doctors).
fn names_of(
    t: Translator,
    group: &GroupView,
    view: &RotationView,
    known: &HashMap<PersonId, Profession>,
) -> HashMap<Uuid, String> {
    let mut names: HashMap<Uuid, String> = HashMap::new();
    let mut add = |id: PersonId, name: &str| {
        names
            .entry(id.uuid())
            .or_insert_with(|| person_name(t, name, known.get(&id).copied()));
    };
    for m in &group.members {
        add(m.user_id, &m.name);
    }
    for p in &view.participants {
        add(p.user_id, &p.name);
    }
    for d in &view.duties {
        if let (Some(id), Some(name)) = (d.user_id, d.user_name.as_deref()) {
            add(id, name);
        }
    }
    names
}

fn problem_slot(p: &Problem) -> Option<(NaiveDate, DutyKind)> {
    match p {
        Problem::Uncovered(s)
        | Problem::NotParticipant { slot: s, .. }
        | Problem::Absent { slot: s, .. }
        | Problem::UnavailableDay { slot: s, .. }
        | Problem::NoNights { slot: s, .. }
        | Problem::NightThenDay { day: s, .. } => Some((s.date, s.kind)),
        Problem::OverMax { .. } => None,
    }
}

/// A problem in words, without its slot.
fn problem_text(t: Translator, p: &Problem, names: &HashMap<Uuid, String>) -> String {
    let name = |id: &Uuid| {
        names
            .get(id)
            .cloned()
            .unwrap_or_else(|| t.get("duty.someone").to_owned())
    };
    match p {
        Problem::Uncovered(_) => t.get("duty.problem.uncovered").to_owned(),
        Problem::NotParticipant { person, .. } => {
            t.format("duty.problem.not_participant", &name(person))
        }
        Problem::Absent { person, .. } => t.format("duty.problem.absent", &name(person)),
        Problem::UnavailableDay { person, .. } => {
            t.format("duty.problem.unavailable_day", &name(person))
        }
        Problem::NoNights { person, .. } => t.format("duty.problem.no_nights", &name(person)),
        Problem::NightThenDay { person, .. } => {
            t.format("duty.problem.night_then_day", &name(person))
        }
        Problem::OverMax {
            person, count, max, ..
        } => fill(
            t,
            "duty.problem.over_max",
            &[&name(person), &count.to_string(), &max.to_string()],
        ),
    }
}

fn weekday_boxes(t: Translator, bits: i16) -> Vec<DayBox> {
    let on = weekdays_of(bits);
    WEEKDAYS
        .iter()
        .enumerate()
        .map(|(i, wd)| (i, weekday_short(t, *wd), on.contains(wd)))
        .collect()
}

fn bits_of(indexes: &[usize]) -> i16 {
    indexes
        .iter()
        .filter(|i| **i < 7)
        .fold(0, |bits, i| bits | (1 << i))
}

/// The settings form as stored (or, before any, weekday nights and weekend days and nights,
/// Saturday a weekend day, every doctor of the group taking part).
fn settings_form(
    t: Translator,
    group: &GroupView,
    view: &RotationView,
    names: &HashMap<Uuid, String>,
) -> SettingsForm {
    let has = |kinds: &[String], k: &str| kinds.iter().any(|x| x == k);
    let (weekday_day, weekday_night, weekend_day, weekend_night, saturday_weekend) =
        match &view.settings {
            Some(s) => (
                has(&s.weekday_kinds, "day"),
                has(&s.weekday_kinds, "night"),
                has(&s.weekend_kinds, "day"),
                has(&s.weekend_kinds, "night"),
                s.saturday_is_weekend,
            ),
            None => (false, true, true, true, true),
        };
    let people = group
        .members
        .iter()
        .filter(|m| m.status == GroupMemberStatus::Active)
        .map(|m| {
            let p = view.participants.iter().find(|p| p.user_id == m.user_id);
            let doctor = matches!(m.profession, Profession::Physician | Profession::Dentist);
            ParticipantField {
                id: m.user_id.to_string(),
                name: names
                    .get(&m.user_id.uuid())
                    .cloned()
                    .unwrap_or_else(|| m.name.clone()),
                on: p.is_some() || (view.settings.is_none() && doctor),
                unavailable: weekday_boxes(t, p.map_or(0, |p| p.unavailable_weekdays)),
                preferred: weekday_boxes(t, p.map_or(0, |p| p.preferred_weekdays)),
                max: p
                    .and_then(|p| p.max_per_month)
                    .map(|m| m.to_string())
                    .unwrap_or_default(),
                no_nights: p.is_some_and(|p| p.no_nights),
                contact: p.map(|p| p.contact.clone()).unwrap_or_default(),
                error: None,
            }
        })
        .collect();
    SettingsForm {
        weekday_day,
        weekday_night,
        weekend_day,
        weekend_night,
        saturday_weekend,
        people,
    }
}

fn swap_text(
    t: Translator,
    s: &cal::SwapRow,
    names: &HashMap<Uuid, String>,
    incoming: bool,
) -> String {
    let name = |id: PersonId, fallback: &Option<String>| {
        names
            .get(&id.uuid())
            .cloned()
            .or_else(|| fallback.clone())
            .unwrap_or_default()
    };
    let slot = format!(
        "{} {}",
        day_label(t, s.day),
        kind_label(t, duty_kind(&s.kind))
    );
    let mut text = if incoming {
        fill(
            t,
            "duty.swap.incoming",
            &[&name(s.from_user, &s.from_name), &slot],
        )
    } else {
        fill(
            t,
            "duty.swap.outgoing",
            &[&name(s.to_user, &s.to_name), &slot],
        )
    };
    if let (Some(od), Some(ok)) = (s.other_day, s.other_kind.as_deref()) {
        let other = format!("{} {}", day_label(t, od), kind_label(t, duty_kind(ok)));
        let key = if incoming {
            "duty.swap.in_exchange_incoming"
        } else {
            "duty.swap.in_exchange_outgoing"
        };
        text = format!("{text}{}", t.format(key, &other));
    }
    text
}

/// What a refused settings form leaves on the page.
struct SettingsTyped {
    form: SettingsForm,
    error: Option<String>,
}

pub(crate) async fn show(
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
    render(
        &services,
        &ctx,
        &p,
        parse_id(&id),
        month,
        bad,
        None,
        calendar_flash(t, &uri),
        status,
    )
    .await
}

#[allow(clippy::too_many_arguments)]
async fn render(
    services: &Services,
    ctx: &Ctx,
    p: &Place,
    group_id: GroupId,
    month: NaiveDate,
    bad_month: bool,
    typed: Option<SettingsTyped>,
    flash: Option<Flash>,
    status: StatusCode,
) -> Result<Response, Response> {
    let t = Translator::new(ctx.lang);
    let group = services
        .group_view(&p.actor(), group_id)
        .await
        .map_err(|e| page_error(ctx, "opening a group", e))?;
    let view = services
        .rotation(&p.actor(), group_id, month)
        .await
        .map_err(|e| page_error(ctx, "reading a rotation", e))?;
    let me = p.viewer.user().id;
    let known = professions(&group);
    let names = names_of(t, &group, &view, &known);
    let name_of = |id: PersonId| {
        names
            .get(&id.uuid())
            .cloned()
            .unwrap_or_else(|| t.get("duty.someone").to_owned())
    };
    let status_code: &'static str = match view.state.as_ref().map(|s| s.status.as_str()) {
        Some("published") => "published",
        Some(_) if !view.duties.is_empty() => "draft",
        _ => "",
    };
    let published = status_code == "published";
    let participating = view.participants.iter().any(|pt| pt.user_id == me);
    let base = format!("/a/{}/g/{group_id}/duty", p.slug());

    // Problems: at the top in full, and at their slot.
    let mut at_slot: HashMap<(NaiveDate, DutyKind), Vec<String>> = HashMap::new();
    let mut problems = Vec::new();
    for pr in &view.problems {
        let text = problem_text(t, pr, &names);
        match problem_slot(pr) {
            Some((day, kind)) => {
                problems.push(format!(
                    "{} {}：{text}",
                    day_label(t, day),
                    kind_label(t, kind)
                ));
                at_slot.entry((day, kind)).or_default().push(text);
            }
            None => problems.push(text),
        }
    }

    let options = |holder: Option<PersonId>| {
        let mut out = vec![(
            String::new(),
            t.get("duty.uncovered").to_owned(),
            holder.is_none(),
        )];
        out.extend(view.participants.iter().map(|pt| {
            (
                pt.user_id.to_string(),
                name_of(pt.user_id),
                holder == Some(pt.user_id),
            )
        }));
        out
    };
    let month_swaps: Vec<&cal::SwapRow> = view.swaps.iter().collect();
    let today = cal::today();
    let mut days = Vec::new();
    for d in days_between(view.month, last_day_of(view.month)) {
        let slots: Vec<SlotCard> = view
            .duties
            .iter()
            .filter(|x| x.day == d)
            .map(|x| {
                let kind = duty_kind(&x.kind);
                let absent = x.user_id.and_then(|u| {
                    view.absences
                        .iter()
                        .find(|a| a.user_id == u && a.first_day <= d && d <= a.last_day)
                        .map(|a| format!("{}{}", t.get("duty.absent"), span_suffix(t, &a.part)))
                });
                let pending = month_swaps
                    .iter()
                    .filter(|s| {
                        (s.day == d && s.kind == x.kind)
                            || (s.other_day == Some(d) && s.other_kind.as_deref() == Some(&x.kind))
                    })
                    .map(|s| {
                        fill(
                            t,
                            "duty.swap.pending",
                            &[&name_of(s.from_user), &name_of(s.to_user)],
                        )
                    })
                    .collect();
                let mine = x.user_id == Some(me);
                SlotCard {
                    kind: kind_code(kind),
                    kind_label: kind_label(t, kind),
                    who: x
                        .user_id
                        .map_or_else(|| t.get("duty.uncovered").to_owned(), name_of),
                    uncovered: x.user_id.is_none(),
                    mine,
                    absent,
                    problems: at_slot.remove(&(d, kind)).unwrap_or_default(),
                    pending,
                    value: slot_value(d, &x.kind),
                    key: format!("{d}-{}", x.kind),
                    label: format!("{} {}", day_label(t, d), kind_label(t, kind)),
                    options: if view.can_manage {
                        options(x.user_id)
                    } else {
                        Vec::new()
                    },
                    can_request: mine && published && participating,
                }
            })
            .collect();
        let class = view
            .duties
            .iter()
            .find(|x| x.day == d)
            .map_or_else(|| day_class_of(d, &view), |x| class_code(&x.class));
        days.push(DutyDay {
            iso: d.to_string(),
            name: day_name(t, d),
            class,
            class_label: class_label(t, class),
            holiday: view.holidays.iter().find(|(h, _)| *h == d).map(|(_, n)| *n),
            today: d == today,
            slots,
        });
    }

    let mut counts: Vec<CountRow> = view
        .participants
        .iter()
        .map(|pt| {
            let c = view
                .counts
                .iter()
                .find(|(id, _)| *id == pt.user_id.uuid())
                .map(|(_, c)| *c)
                .unwrap_or_default();
            CountRow {
                name: name_of(pt.user_id),
                weekday: c.weekday,
                weekend: c.weekend,
                holiday: c.holiday,
                night: c.night,
                total: c.total,
            }
        })
        .collect();
    for (id, c) in &view.counts {
        if !view.participants.iter().any(|pt| pt.user_id.uuid() == *id) {
            counts.push(CountRow {
                name: name_of(PersonId::from_uuid(*id)),
                weekday: c.weekday,
                weekend: c.weekend,
                holiday: c.holiday,
                night: c.night,
                total: c.total,
            });
        }
    }

    let absences = view
        .absences
        .iter()
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
            format!("{}：{days}{}", name_of(a.user_id), span_suffix(t, &a.part))
        })
        .collect();

    let swap_action = |id: Uuid| format!("{base}/swaps/{id}");
    let incoming = view
        .swaps
        .iter()
        .filter(|s| s.to_user == me)
        .map(|s| SwapCard {
            text: swap_text(t, s, &names, true),
            note: s.note.clone(),
            action: swap_action(s.id),
        })
        .collect();
    let outgoing = view
        .swaps
        .iter()
        .filter(|s| s.from_user == me)
        .map(|s| SwapCard {
            text: swap_text(t, s, &names, false),
            note: s.note.clone(),
            action: swap_action(s.id),
        })
        .collect();

    let topic = view.state.as_ref().and_then(|s| s.topic_id).map(|id| {
        let title = group
            .topics
            .iter()
            .find(|tp| tp.id.to_string() == id.to_string())
            .map_or_else(
                || t.get("duty.topic_untitled").to_owned(),
                |tp| tp.title.clone(),
            );
        (format!("/a/{}/t/{id}", p.slug()), title)
    });
    let (settings, settings_error, settings_open) = match typed {
        Some(s) => (s.form, s.error, true),
        None => (
            settings_form(t, &group, &view, &names),
            None,
            view.can_manage && view.settings.is_none(),
        ),
    };
    let colleagues = view
        .participants
        .iter()
        .filter(|pt| pt.user_id != me)
        .map(|pt| (pt.user_id.to_string(), name_of(pt.user_id)))
        .collect();
    let exchange = if published {
        view.duties
            .iter()
            .filter(|x| x.user_id.is_some_and(|u| u != me))
            .map(|x| {
                (
                    slot_value(x.day, &x.kind),
                    format!(
                        "{} {}（{}）",
                        day_label(t, x.day),
                        kind_label(t, duty_kind(&x.kind)),
                        x.user_id.map(name_of).unwrap_or_default()
                    ),
                )
            })
            .collect()
    } else {
        Vec::new()
    };
    let unread = unread_total(services, &p.viewer).await;
    let page = DutyPage {
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
        month: month_nav(t, &base, view.month),
        can_manage: view.can_manage && group.group.archived_at.is_none(),
        has_settings: view.settings.is_some(),
        status: status_code,
        published_on: view
            .state
            .as_ref()
            .and_then(|s| s.published_at)
            .map(|at| crate::datetime::date(ctx.lang, at))
            .unwrap_or_default(),
        topic,
        problems,
        days,
        counts,
        absences,
        incoming,
        outgoing,
        settings,
        settings_error,
        settings_open,
        topics: group
            .topics
            .iter()
            .map(|tp| (tp.id.to_string(), tp.title.clone()))
            .collect(),
        colleagues,
        exchange,
        base: base.clone(),
    };
    Ok(ctx.respond(status, &page))
}

fn class_code(class: &str) -> &'static str {
    match class {
        "weekend" => "weekend",
        "holiday" => "holiday",
        _ => "weekday",
    }
}

/// The class of a day without slots, as the settings would make it.
fn day_class_of(d: NaiveDate, view: &RotationView) -> &'static str {
    if view.holidays.iter().any(|(h, _)| *h == d) {
        return "holiday";
    }
    let saturday = view.settings.as_ref().is_none_or(|s| s.saturday_is_weekend);
    match d.weekday() {
        Weekday::Sun => "weekend",
        Weekday::Sat if saturday => "weekend",
        _ => "weekday",
    }
}

fn duty_path(slug: &str, group_id: GroupId, month: NaiveDate) -> String {
    format!("/a/{slug}/g/{group_id}/duty?month={}", month_code(month))
}

/// The month a form names (its hidden `month`), or this month.
fn form_month(raw: &str) -> NaiveDate {
    parse_month(raw)
        .ok()
        .flatten()
        .unwrap_or_else(|| cal::month_of(cal::today()))
}

// --- Owners' forms ---------------------------------------------------------------------------

pub(crate) async fn settings(
    State(services): State<Services>,
    ctx: Ctx,
    Path((slug, id)): Path<(String, String)>,
    body: axum::body::Bytes,
) -> Result<Response, Response> {
    let p = Place::open(&services, &ctx, &slug).await?;
    let group_id: GroupId = parse_id(&id);
    let t = Translator::new(ctx.lang);
    let pairs: Vec<(String, String)> = form_urlencoded::parse(&body)
        .take(2000)
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect();
    let values = |key: &str| -> Vec<&str> {
        pairs
            .iter()
            .filter(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
            .collect()
    };
    let one = |key: &str| {
        values(key)
            .first()
            .map(|v| (*v).to_owned())
            .unwrap_or_default()
    };
    let month = form_month(&one("month"));
    let group = services
        .group_view(&p.actor(), group_id)
        .await
        .map_err(|e| page_error(&ctx, "opening a group", e))?;
    let kinds = |key: &str| -> Vec<String> {
        ["day", "night"]
            .into_iter()
            .filter(|k| values(key).contains(k))
            .map(str::to_owned)
            .collect()
    };
    let row = DutySettingsRow {
        weekday_kinds: kinds("weekday_kind"),
        weekend_kinds: kinds("weekend_kind"),
        saturday_is_weekend: !values("saturday_weekend").is_empty(),
    };
    let on = values("on");
    let no_nights = values("no_nights");
    let indexes = |key: String| -> Vec<usize> {
        values(&key)
            .iter()
            .filter_map(|v| v.parse::<usize>().ok())
            .filter(|i| *i < 7)
            .collect()
    };
    let mut fields = Vec::new();
    let mut rows = Vec::new();
    let mut invalid = false;
    for m in group
        .members
        .iter()
        .filter(|m| m.status == GroupMemberStatus::Active)
    {
        let id = m.user_id.to_string();
        let unavailable = bits_of(&indexes(format!("unavailable_{id}")));
        let preferred = bits_of(&indexes(format!("preferred_{id}")));
        let max_raw = one(&format!("max_{id}")).trim().to_owned();
        let contact = one(&format!("contact_{id}")).trim().to_owned();
        let taking_part = on.contains(&id.as_str());
        let max = match max_raw.parse::<i16>() {
            _ if max_raw.is_empty() => Ok(None),
            Ok(n) if (1..=62).contains(&n) => Ok(Some(n)),
            _ => Err(t.get("duty.settings.error_max").to_owned()),
        };
        let mut error = max.as_ref().err().cloned();
        if contact.chars().count() > MAX_CONTACT {
            error = Some(t.format("duty.settings.error_contact", &MAX_CONTACT.to_string()));
        }
        if taking_part && error.is_some() {
            invalid = true;
        }
        if taking_part {
            rows.push(ParticipantRow {
                user_id: m.user_id,
                name: m.name.clone(),
                unavailable_weekdays: unavailable,
                preferred_weekdays: preferred,
                max_per_month: max.clone().ok().flatten(),
                no_nights: no_nights.contains(&id.as_str()),
                contact: contact.clone(),
            });
        }
        fields.push(ParticipantField {
            name: person_name(t, &m.name, Some(m.profession)),
            on: taking_part,
            unavailable: weekday_boxes(t, unavailable),
            preferred: weekday_boxes(t, preferred),
            max: max_raw,
            no_nights: no_nights.contains(&id.as_str()),
            contact,
            error: if taking_part { error } else { None },
            id,
        });
    }
    let form = SettingsForm {
        weekday_day: row.weekday_kinds.iter().any(|k| k == "day"),
        weekday_night: row.weekday_kinds.iter().any(|k| k == "night"),
        weekend_day: row.weekend_kinds.iter().any(|k| k == "day"),
        weekend_night: row.weekend_kinds.iter().any(|k| k == "night"),
        saturday_weekend: row.saturday_is_weekend,
        people: fields,
    };
    let again = |form: SettingsForm, error: Option<String>| {
        let (services, ctx, p) = (&services, &ctx, &p);
        async move {
            render(
                services,
                ctx,
                p,
                group_id,
                month,
                false,
                Some(SettingsTyped { form, error }),
                None,
                StatusCode::UNPROCESSABLE_ENTITY,
            )
            .await
        }
    };
    if invalid {
        return again(form, Some(t.get("duty.settings.error_fields").to_owned())).await;
    }
    if rows.is_empty() {
        return again(form, Some(t.get("duty.settings.error_nobody").to_owned())).await;
    }
    match services
        .set_duty_settings(&p.actor(), group_id, &row, &rows)
        .await
    {
        Ok(()) => Ok(ctx.redirect(&format!(
            "{}&done=duty_settings",
            duty_path(p.slug(), group_id, month)
        ))),
        Err(e) if e.code == ErrorCode::InvalidInput => {
            again(form, Some(t.get("duty.settings.error_fields").to_owned())).await
        }
        Err(e) => Err(page_error(&ctx, "setting up a rotation", e)),
    }
}

#[derive(Debug, Default, Deserialize)]
pub(crate) struct DraftForm {
    #[serde(default)]
    month: String,
    /// Ticked: an earlier draft may be replaced.
    replace: Option<String>,
}

pub(crate) async fn draft(
    State(services): State<Services>,
    ctx: Ctx,
    Path((slug, id)): Path<(String, String)>,
    form: Result<Form<DraftForm>, FormRejection>,
) -> Result<Response, Response> {
    let p = Place::open(&services, &ctx, &slug).await?;
    let group_id: GroupId = parse_id(&id);
    let form = form.map(|f| f.0).unwrap_or_default();
    let month = form_month(&form.month);
    let back = format!("{}#rotation", duty_path(p.slug(), group_id, month));
    let view = services
        .rotation(&p.actor(), group_id, month)
        .await
        .map_err(|e| page_error(&ctx, "reading a rotation", e))?;
    if !view.can_manage {
        return Err(not_found_page(&ctx));
    }
    match view.state.as_ref().map(|s| s.status.as_str()) {
        Some("published") => {
            return Ok(ctx.redirect(&with_flash(&back, "error", "published_month")))
        }
        Some(_) if !view.duties.is_empty() && form.replace.is_none() => {
            return Ok(ctx.redirect(&with_flash(&back, "error", "confirm_redraft")))
        }
        _ => {}
    }
    let seed = Uuid::new_v4().as_u64_pair().0;
    match services
        .draft_rotation(&p.actor(), group_id, month, seed)
        .await
    {
        Err(e) if e.code == ErrorCode::InvalidInput && e.field == Some("settings") => {
            Ok(ctx.redirect(&with_flash(&back, "error", "no_settings")))
        }
        Err(e) if e.code == ErrorCode::Conflict => {
            Ok(ctx.redirect(&with_flash(&back, "error", "published_month")))
        }
        result => Ok(after(&ctx, &back, result, "drafted", "drafting a rotation")),
    }
}

#[derive(Debug, Default, Deserialize)]
pub(crate) struct AssignForm {
    #[serde(default)]
    month: String,
    #[serde(default)]
    slot: String,
    #[serde(default)]
    user_id: String,
}

pub(crate) async fn assign(
    State(services): State<Services>,
    ctx: Ctx,
    Path((slug, id)): Path<(String, String)>,
    form: Result<Form<AssignForm>, FormRejection>,
) -> Result<Response, Response> {
    let p = Place::open(&services, &ctx, &slug).await?;
    let group_id: GroupId = parse_id(&id);
    let form = form.map(|f| f.0).unwrap_or_default();
    let month = form_month(&form.month);
    let Some((day, kind)) = parse_slot(&form.slot) else {
        let back = duty_path(p.slug(), group_id, month);
        return Ok(ctx.redirect(&with_flash(&back, "error", "invalid")));
    };
    let back = format!(
        "{}#duty-{day}",
        duty_path(p.slug(), group_id, cal::month_of(day))
    );
    let user: Option<PersonId> = match form.user_id.trim() {
        "" => None,
        other => Some(parse_id(other)),
    };
    match services
        .assign_duty(&p.actor(), group_id, day, kind, user)
        .await
    {
        Err(e) if e.code == ErrorCode::InvalidInput && e.field == Some("userId") => {
            Ok(ctx.redirect(&with_flash(&back, "error", "not_participant")))
        }
        result => Ok(after(&ctx, &back, result, "assigned", "assigning a slot")),
    }
}

#[derive(Debug, Default, Deserialize)]
pub(crate) struct PublishForm {
    #[serde(default)]
    month: String,
    #[serde(default)]
    topic_id: String,
}

pub(crate) async fn publish(
    State(services): State<Services>,
    ctx: Ctx,
    Path((slug, id)): Path<(String, String)>,
    form: Result<Form<PublishForm>, FormRejection>,
) -> Result<Response, Response> {
    let p = Place::open(&services, &ctx, &slug).await?;
    let group_id: GroupId = parse_id(&id);
    let form = form.map(|f| f.0).unwrap_or_default();
    let month = form_month(&form.month);
    let back = format!("{}#rotation", duty_path(p.slug(), group_id, month));
    let topic = match form.topic_id.trim() {
        "" => None,
        raw => Some(Uuid::parse_str(raw).unwrap_or(Uuid::nil())),
    };
    match services
        .publish_rotation(&p.actor(), group_id, month, topic)
        .await
    {
        Err(e) if e.code == ErrorCode::InvalidInput && e.field == Some("month") => {
            Ok(ctx.redirect(&with_flash(&back, "error", "draft_first")))
        }
        result => Ok(after(
            &ctx,
            &back,
            result,
            "published",
            "publishing a rotation",
        )),
    }
}

// --- Swaps -----------------------------------------------------------------------------------

#[derive(Debug, Default, Deserialize)]
pub(crate) struct SwapForm {
    #[serde(default)]
    month: String,
    #[serde(default)]
    slot: String,
    #[serde(default)]
    to_user_id: String,
    /// A slot of the colleague's to take in exchange, or empty.
    #[serde(default)]
    other: String,
    #[serde(default)]
    note: String,
}

pub(crate) async fn request_swap(
    State(services): State<Services>,
    ctx: Ctx,
    Path((slug, id)): Path<(String, String)>,
    form: Result<Form<SwapForm>, FormRejection>,
) -> Result<Response, Response> {
    let p = Place::open(&services, &ctx, &slug).await?;
    let group_id: GroupId = parse_id(&id);
    let form = form.map(|f| f.0).unwrap_or_default();
    let month = form_month(&form.month);
    let Some((day, kind)) = parse_slot(&form.slot) else {
        let back = duty_path(p.slug(), group_id, month);
        return Ok(ctx.redirect(&with_flash(&back, "error", "invalid")));
    };
    let back = format!(
        "{}#duty-{day}",
        duty_path(p.slug(), group_id, cal::month_of(day))
    );
    let other = match form.other.trim() {
        "" => None,
        raw => match parse_slot(raw) {
            Some(slot) => Some(slot),
            None => return Ok(ctx.redirect(&with_flash(&back, "error", "swap_other"))),
        },
    };
    let to: PersonId = parse_id(form.to_user_id.trim());
    let result = services
        .request_swap(&p.actor(), group_id, day, kind, to, other, &form.note)
        .await
        .map(|_| ());
    let code = match &result {
        Err(e) if e.code == ErrorCode::Conflict => Some("swap_open"),
        Err(e) if e.code == ErrorCode::InvalidInput => Some(match e.field {
            Some("otherDay") => "swap_other",
            Some("toUserId") => "not_participant",
            _ => "invalid",
        }),
        _ => None,
    };
    match code {
        Some(code) => Ok(ctx.redirect(&with_flash(&back, "error", code))),
        None => Ok(after(
            &ctx,
            &back,
            result,
            "swap_requested",
            "asking for a swap",
        )),
    }
}

#[derive(Debug, Default, Deserialize)]
pub(crate) struct AnswerForm {
    #[serde(default)]
    month: String,
    #[serde(default)]
    answer: String,
}

pub(crate) async fn answer_swap(
    State(services): State<Services>,
    ctx: Ctx,
    Path((slug, id, swap)): Path<(String, String, String)>,
    form: Result<Form<AnswerForm>, FormRejection>,
) -> Result<Response, Response> {
    let p = Place::open(&services, &ctx, &slug).await?;
    let group_id: GroupId = parse_id(&id);
    let form = form.map(|f| f.0).unwrap_or_default();
    let month = form_month(&form.month);
    let back = format!("{}#swaps", duty_path(p.slug(), group_id, month));
    let (answer, done) = match form.answer.as_str() {
        "accept" => (SwapAnswer::Accept, "swap_accepted"),
        "decline" => (SwapAnswer::Decline, "swap_declined"),
        "withdraw" => (SwapAnswer::Withdraw, "swap_withdrawn"),
        _ => return Ok(ctx.redirect(&with_flash(&back, "error", "invalid"))),
    };
    let swap_id: Uuid = parse_id(&swap);
    match services
        .answer_swap(&p.actor(), group_id, swap_id, answer)
        .await
    {
        Err(e) if e.code == ErrorCode::Conflict => {
            Ok(ctx.redirect(&with_flash(&back, "error", "swap_changed")))
        }
        result => Ok(after(&ctx, &back, result, done, "answering a swap")),
    }
}

// --- 本日の当番医 ------------------------------------------------------------------------------

/// Today's doctor on duty, as the group page shows them.
pub(crate) struct OnCallCard {
    pub kind_label: &'static str,
    pub name: String,
    pub contact: String,
    /// `tel:` for a contact that is a telephone number.
    pub tel: Option<String>,
}

/// `tel:0312345678` for something that reads as a telephone number.
fn tel_link(contact: &str) -> Option<String> {
    let digits: String = contact
        .chars()
        .filter(|c| c.is_ascii_digit() || *c == '+')
        .collect();
    let phone_like = contact
        .chars()
        .all(|c| c.is_ascii_digit() || matches!(c, '+' | '-' | ' ' | '(' | ')' | '‐' | '－'));
    (phone_like && digits.chars().filter(char::is_ascii_digit).count() >= 3)
        .then(|| format!("tel:{digits}"))
}

/// Who is on duty today in a group with a published rotation (nothing otherwise, and nothing
/// when it cannot be read: the group page stays usable).
pub(crate) async fn on_call_today(
    services: &Services,
    p: &Place,
    group: &GroupView,
    t: Translator,
) -> Vec<OnCallCard> {
    let known = professions(group);
    match services.on_call_today(&p.actor(), group.group.id).await {
        Ok(list) => list
            .into_iter()
            .filter_map(|o| {
                let name = o.name?;
                let profession = o.user_id.and_then(|u| known.get(&u).copied());
                Some(OnCallCard {
                    kind_label: kind_label(t, o.kind),
                    name: person_name(t, &name, profession),
                    tel: tel_link(&o.contact),
                    contact: o.contact,
                })
            })
            .collect(),
        Err(e) => {
            tracing::warn!(
                code = e.code.as_str(),
                "reading today's doctor on duty failed"
            );
            Vec::new()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slots_travel_as_day_and_kind() {
        let day = NaiveDate::from_ymd_opt(2026, 12, 6).expect("a date");
        assert_eq!(
            parse_slot(&slot_value(day, "night")),
            Some((day, DutyKind::Night))
        );
        assert_eq!(parse_slot("2026-12-06|evening"), None);
        assert_eq!(parse_slot("2026-12-32|day"), None);
        assert_eq!(parse_slot(""), None);
    }

    #[test]
    fn weekday_bits_are_monday_first() {
        assert_eq!(bits_of(&[0, 6]), 1 | 64);
        assert_eq!(bits_of(&[7, 9]), 0);
        assert_eq!(weekdays_of(bits_of(&[5])), vec![Weekday::Sat]);
    }

    #[test]
    fn telephone_numbers_become_links_and_other_contacts_do_not() {
        assert_eq!(
            tel_link("090-1234-5678").as_deref(),
            Some("tel:09012345678")
        );
        assert_eq!(
            tel_link("+81 3 1234 5678").as_deref(),
            Some("tel:+81312345678")
        );
        assert_eq!(tel_link("事務局経由"), None);
        assert_eq!(tel_link(""), None);
    }
}
