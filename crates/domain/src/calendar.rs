//! Calendars: group events (with recurrence), people's absences, Japanese public holidays, the
//! on-call duty rotation of a collaborating-doctor group with its swaps, and personal iCalendar
//! feeds. Events follow their group's rules (active members only); a draft rotation is seen by
//! the group's owners only, a published one by its members.

use crate::audit::{AuditAction, AuditEntry, RequestMeta};
use crate::groups::active_role;
use crate::sessions::Viewer;
use crate::text;
use crate::types::{GroupId, PersonId};
use crate::{Actor, AppError, AppResult, ErrorCode, Services};
use chrono::{Datelike, Duration, NaiveDate, NaiveTime, Utc, Weekday};
use musubi_auth::token::{hash_token, is_well_formed, Token};
use musubi_authz::{Action, GroupRole, Object};
use musubi_calendar::recurrence::{occurrences, Rule};
use musubi_calendar::rotation::{self, AbsencePart, DayClass, DutyKind, Shape, Slot};
use musubi_calendar::{holidays, ical};
use musubi_db::calendar as repo;
use musubi_db::groups::{self as groups_repo, HostedGroup};
use uuid::Uuid;

pub use musubi_db::calendar::{AbsenceRow, EventRow, ParticipantRow, SwapRow};

/// A tiny closed set of codes (stored as text), for this module's own values.
macro_rules! text_enum_like {
    ($(#[$m:meta])* $name:ident { $($v:ident => $code:literal,)* }) => {
        $(#[$m])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum $name { $($v,)* }
        impl $name {
            pub const ALL: &'static [$name] = &[$($name::$v,)*];
            pub fn code(self) -> &'static str {
                match self { $($name::$v => $code,)* }
            }
            pub fn from_code(code: &str) -> Option<Self> {
                Self::ALL.iter().copied().find(|v| v.code() == code)
            }
        }
    };
}

/// Longest range one calendar request covers (a month view shows six weeks).
pub const MAX_RANGE_DAYS: i64 = 93;
/// Most occurrences of one series shown in one range.
const MAX_OCCURRENCES: usize = 400;
/// Months of published duty counted for fairness.
const HISTORY_MONTHS: i32 = 6;

/// Today in Japan.
pub fn today() -> NaiveDate {
    crate::patients::today()
}

/// The first day of `day`'s month.
pub fn month_of(day: NaiveDate) -> NaiveDate {
    day.with_day(1).unwrap_or(day)
}

/// The first day of the month after `month`'s.
fn next_month(month: NaiveDate) -> NaiveDate {
    month
        .checked_add_months(chrono::Months::new(1))
        .unwrap_or(month)
}

text_enum_like! {
    /// What an event is.
    EventCategory {
        Absence => "absence",
        Duty => "duty",
        Visit => "visit",
        Conference => "conference",
        Other => "other",
    }
}

text_enum_like! {
    /// Which part of a day an absence covers.
    AbsenceSpan {
        AllDay => "all",
        Morning => "am",
        Afternoon => "pm",
    }
}

/// An event as entered.
#[derive(Debug, Clone)]
pub struct EventInput {
    pub category: EventCategory,
    pub title: String,
    pub first_day: NaiveDate,
    pub last_day: NaiveDate,
    /// Both or neither: a timed event, or an all-day one.
    pub starts_at: Option<NaiveTime>,
    pub ends_at: Option<NaiveTime>,
    /// RFC 5545 RRULE text (the supported subset), if it repeats.
    pub rrule: Option<String>,
    pub place: String,
    pub notes: String,
}

/// An event checked: clean text, a valid rule and the last day it may start on.
struct CheckedEvent {
    category: EventCategory,
    title: String,
    first_day: NaiveDate,
    last_day: NaiveDate,
    starts_at: Option<NaiveTime>,
    ends_at: Option<NaiveTime>,
    rule: Option<Rule>,
    until_day: Option<NaiveDate>,
    place: String,
    notes: String,
}

fn check_event(input: &EventInput) -> AppResult<CheckedEvent> {
    let title = text::line("title", &input.title, 100)?;
    let place = text::optional_line("place", &input.place, 200)?.unwrap_or_default();
    let notes = text::optional_lines("notes", &input.notes, 2000)?;
    if input.last_day < input.first_day {
        return Err(AppError::invalid(
            "lastDay",
            "the event ends before it starts",
        ));
    }
    if (input.last_day - input.first_day).num_days() >= 366 {
        return Err(AppError::invalid(
            "lastDay",
            "an event lasts at most a year",
        ));
    }
    match (input.starts_at, input.ends_at) {
        (None, None) => {}
        (Some(s), Some(e)) => {
            if input.first_day == input.last_day && e <= s {
                return Err(AppError::invalid(
                    "endsAt",
                    "the event ends before it starts",
                ));
            }
        }
        _ => {
            return Err(AppError::invalid(
                "endsAt",
                "a timed event needs both a start and an end time",
            ))
        }
    }
    let rule = match input.rrule.as_deref().map(str::trim) {
        None | Some("") => None,
        Some(r) => Some(
            Rule::parse(r)
                .map_err(|e| AppError::invalid("rrule", format!("the recurrence rule: {e}")))?,
        ),
    };
    if let Some(r) = &rule {
        if !r.produces(input.first_day) {
            return Err(AppError::invalid(
                "rrule",
                "the first day must be one of the days the event repeats on",
            ));
        }
    }
    let until_day = match &rule {
        None => None,
        Some(r) => last_start(r, input.first_day)?,
    };
    Ok(CheckedEvent {
        category: input.category,
        title,
        first_day: input.first_day,
        last_day: input.last_day,
        starts_at: input.starts_at,
        ends_at: input.ends_at,
        rule,
        until_day,
        place,
        notes,
    })
}

/// The last day a series may start an occurrence (`None`: it never ends).
fn last_start(rule: &Rule, first: NaiveDate) -> AppResult<Option<NaiveDate>> {
    if let Some(until) = rule.until {
        if until < first {
            return Err(AppError::invalid(
                "rrule",
                "the series ends before it starts",
            ));
        }
        return Ok(Some(until));
    }
    let Some(count) = rule.count else {
        return Ok(None);
    };
    let far = first
        .checked_add_signed(Duration::days(366 * 100))
        .unwrap_or(NaiveDate::MAX);
    let all = occurrences(rule, first, &[], first, far, usize::from(count));
    Ok(all.last().copied().or(Some(first)))
}

/// One occurrence of an event on a calendar.
#[derive(Debug, Clone)]
pub struct Occurrence {
    pub association: String,
    pub group_id: GroupId,
    pub group_name: String,
    pub patient_group: bool,
    /// The occurrence's days (a series' later ones keep the first's length).
    pub first_day: NaiveDate,
    pub last_day: NaiveDate,
    /// The viewer may change or delete the event (its author, or the group's owner).
    pub can_edit: bool,
    pub event: EventRow,
}

/// A published (or, for owners, drafted) duty slot on a calendar.
#[derive(Debug, Clone)]
pub struct DutyEntry {
    pub association: String,
    pub group_id: GroupId,
    pub group_name: String,
    pub duty: repo::DutyRow,
}

/// Everything a calendar shows for a range of days.
#[derive(Debug, Clone, Default)]
pub struct CalendarView {
    pub from: Option<NaiveDate>,
    pub to: Option<NaiveDate>,
    pub holidays: Vec<(NaiveDate, &'static str)>,
    pub occurrences: Vec<Occurrence>,
    pub absences: Vec<AbsenceRow>,
    pub duties: Vec<DutyEntry>,
}

fn check_range(from: NaiveDate, to: NaiveDate) -> AppResult<()> {
    if to < from {
        return Err(AppError::invalid("to", "the range ends before it starts"));
    }
    if (to - from).num_days() >= MAX_RANGE_DAYS {
        return Err(AppError::invalid(
            "to",
            format!("a calendar shows at most {MAX_RANGE_DAYS} days at a time"),
        ));
    }
    Ok(())
}

/// The occurrences of `event` overlapping `from..=to`.
fn expand(event: &EventRow, from: NaiveDate, to: NaiveDate) -> Vec<(NaiveDate, NaiveDate)> {
    let span = event.last_day - event.first_day;
    let Some(rrule) = &event.rrule else {
        return if event.first_day <= to && event.last_day >= from {
            vec![(event.first_day, event.last_day)]
        } else {
            Vec::new()
        };
    };
    let Ok(rule) = Rule::parse(rrule) else {
        // A rule this version cannot read: its first occurrence, as stored.
        return if event.first_day <= to && event.last_day >= from {
            vec![(event.first_day, event.last_day)]
        } else {
            Vec::new()
        };
    };
    let window_from = from.checked_sub_signed(span).unwrap_or(from);
    occurrences(
        &rule,
        event.first_day,
        &event.exceptions,
        window_from,
        to,
        MAX_OCCURRENCES,
    )
    .into_iter()
    .filter_map(|d| Some((d, d.checked_add_signed(span)?)))
    .filter(|(_, last)| *last >= from)
    .collect()
}

impl Services {
    /// The calendars a person sees between `from` and `to` (inclusive): every group of theirs
    /// (or only `group`, by its host's slug), with holidays, the absences of people they share
    /// a group with, and published duty (drafts too for a group's owners when one group is
    /// asked for). Audited as one read in each association looked in.
    pub async fn calendar(
        &self,
        viewer: &Viewer,
        meta: &RequestMeta,
        from: NaiveDate,
        to: NaiveDate,
        group: Option<(&str, GroupId)>,
    ) -> AppResult<CalendarView> {
        check_range(from, to)?;
        let me = viewer.user.id;
        let rows = groups_repo::groups_of(self.db().pool(), me).await?;
        let hosts = crate::groups::by_association(&rows, |r| {
            r.status == crate::types::GroupMemberStatus::Active
                && r.kind != crate::groups::GroupKind::Direct
                && group.is_none_or(|(slug, id)| r.slug == slug && r.group_id == id)
        });
        if group.is_some() && hosts.is_empty() {
            return Err(AppError::not_found());
        }
        let mut view = CalendarView {
            from: Some(from),
            to: Some(to),
            holidays: holidays::holidays_between(from, to),
            ..CalendarView::default()
        };
        let mut absences_read = false;
        for (_, slug, _, ids) in hosts {
            let Ok(tenant) = self.db().resolve_tenant(&slug).await else {
                continue;
            };
            let actor = Actor::new(viewer, &tenant, meta);
            let mut c = self.change(&actor).await?;
            let groups = groups_repo::groups_by_ids(c.conn(), &tenant, me, &ids).await?;
            let groups: Vec<_> = groups
                .into_iter()
                .filter(|g| active_role(g).is_some())
                .collect();
            let ids: Vec<GroupId> = groups.iter().map(|g| g.id).collect();
            let name_of = |id: GroupId| groups.iter().find(|g| g.id == id);
            for event in repo::events_between(c.conn(), &ids, from, to).await? {
                let Some(g) = name_of(event.group_id) else {
                    continue;
                };
                let owner = active_role(g) == Some(GroupRole::Owner);
                for (first_day, last_day) in expand(&event, from, to) {
                    view.occurrences.push(Occurrence {
                        association: slug.clone(),
                        group_id: g.id,
                        group_name: g.name.clone(),
                        patient_group: g.kind == crate::types::GroupKind::Patient,
                        first_day,
                        last_day,
                        can_edit: owner || event.created_by == me,
                        event: event.clone(),
                    });
                }
            }
            let mut duties = repo::published_duties_between(c.conn(), &ids, from, to).await?;
            if let Some((_, gid)) = group {
                let owner = groups
                    .iter()
                    .any(|g| g.id == gid && active_role(g) == Some(GroupRole::Owner));
                if owner {
                    duties = repo::duties_between(c.conn(), gid, from, to).await?;
                }
            }
            for duty in duties {
                if let Some(g) = name_of(duty.group_id) {
                    view.duties.push(DutyEntry {
                        association: slug.clone(),
                        group_id: g.id,
                        group_name: g.name.clone(),
                        duty,
                    });
                }
            }
            if !absences_read {
                view.absences = match group {
                    // One group: its members' absences only.
                    Some((_, gid)) => {
                        let hosted = groups_repo::hosted_group(c.conn(), &tenant, gid)
                            .await?
                            .ok_or_else(AppError::not_found)?;
                        let people: Vec<PersonId> = groups_repo::members(c.conn(), &hosted)
                            .await?
                            .into_iter()
                            // Not those only invited or asking to join.
                            .filter(|m| m.status == crate::types::GroupMemberStatus::Active)
                            .map(|m| m.user_id)
                            .collect();
                        repo::absences_of(c.conn(), &people, from, to).await?
                    }
                    None => repo::absences_visible_to(c.conn(), me, from, to).await?,
                };
                absences_read = true;
            }
            let mut entry = c
                .entry(AuditAction::CalendarRead)
                .with_detail("from", from.to_string())
                .with_detail("to", to.to_string());
            if let Some((_, gid)) = group {
                entry = entry.with_detail("group_id", gid.to_string());
            }
            c.audit(entry);
            c.commit().await?;
        }
        if !absences_read {
            view.absences = self.own_absences(me, from, to).await?;
        }
        view.occurrences.sort_by(|a, b| {
            (a.first_day, a.event.starts_at, a.event.id).cmp(&(
                b.first_day,
                b.event.starts_at,
                b.event.id,
            ))
        });
        view.duties
            .sort_by(|a, b| (a.duty.day, &a.duty.kind).cmp(&(b.duty.day, &b.duty.kind)));
        Ok(view)
    }

    async fn own_absences(
        &self,
        me: PersonId,
        from: NaiveDate,
        to: NaiveDate,
    ) -> AppResult<Vec<AbsenceRow>> {
        let mut conn = self.db().pool().acquire().await.map_err(db_error)?;
        Ok(repo::absences_of(&mut conn, &[me], from, to).await?)
    }

    /// Puts an event on a group's calendar (any active member; not in an archived group).
    pub async fn create_event(
        &self,
        actor: &Actor<'_>,
        group_id: GroupId,
        input: &EventInput,
    ) -> AppResult<Uuid> {
        let e = check_event(input)?;
        let me = actor.viewer.user.id;
        let mut c = self.change(actor).await?;
        let (hosted, group) = groups_repo::group(c.conn(), actor.tenant, me, group_id)
            .await?
            .ok_or_else(AppError::not_found)?;
        c.about_group(&group.name);
        c.authorize(
            &hosted,
            active_role(&group),
            Object::Calendar,
            Action::Create,
        )
        .await?;
        if group.archived_at.is_some() {
            return Err(AppError::archived());
        }
        let id = Uuid::now_v7();
        let rrule = e.rule.as_ref().map(ToString::to_string);
        repo::insert_calendar_event(c.conn(), id, group_id, me, &fields(&e, rrule.as_deref()))
            .await?;
        let entry = c
            .entry(AuditAction::EventCreate)
            .on("event", id)
            .with_detail("group_id", group_id.to_string())
            .with_detail("category", e.category.code());
        c.audit(entry);
        c.commit().await?;
        Ok(id)
    }

    /// Loads an event the actor may change: its author or the group's owner.
    async fn editable_event(
        &self,
        c: &mut crate::change::Change<'_>,
        actor: &Actor<'_>,
        id: Uuid,
    ) -> AppResult<(HostedGroup, EventRow)> {
        let me = actor.viewer.user.id;
        let event = repo::event(c.conn(), id)
            .await?
            .ok_or_else(AppError::not_found)?;
        let (hosted, group) = groups_repo::group(c.conn(), actor.tenant, me, event.group_id)
            .await?
            .ok_or_else(AppError::not_found)?;
        c.about_group(&group.name);
        let role = active_role(&group);
        c.authorize(&hosted, role, Object::Calendar, Action::Read)
            .await?;
        if event.created_by != me {
            c.authorize(&hosted, role, Object::Calendar, Action::Moderate)
                .await?;
        }
        if group.archived_at.is_some() {
            return Err(AppError::archived());
        }
        Ok((hosted, event))
    }

    /// Changes an event written at `version` (its author or the group's owner).
    pub async fn update_event(
        &self,
        actor: &Actor<'_>,
        id: Uuid,
        version: i32,
        input: &EventInput,
    ) -> AppResult<()> {
        let e = check_event(input)?;
        let mut c = self.change(actor).await?;
        let (hosted, _) = self.editable_event(&mut c, actor, id).await?;
        let rrule = e.rule.as_ref().map(ToString::to_string);
        if !repo::update_event(c.conn(), id, version, &fields(&e, rrule.as_deref())).await? {
            return Err(AppError::new(
                ErrorCode::Conflict,
                "someone else changed this event meanwhile; reload it",
            ));
        }
        let entry = c
            .entry(AuditAction::EventUpdate)
            .on("event", id)
            .with_detail("group_id", hosted.id().to_string());
        c.audit(entry);
        c.commit().await
    }

    /// Cancels one occurrence of a series (the day it starts on).
    pub async fn cancel_occurrence(
        &self,
        actor: &Actor<'_>,
        id: Uuid,
        day: NaiveDate,
    ) -> AppResult<()> {
        let mut c = self.change(actor).await?;
        let (hosted, event) = self.editable_event(&mut c, actor, id).await?;
        // An occurrence *starts* on the day (a day inside a multi-day one is not one).
        let occurs = expand(&event, day, day).iter().any(|(d, _)| *d == day);
        if event.rrule.is_none() || !occurs {
            return Err(AppError::invalid(
                "day",
                "the event does not occur on that day",
            ));
        }
        repo::add_exception(c.conn(), id, day).await?;
        let entry = c
            .entry(AuditAction::EventUpdate)
            .on("event", id)
            .with_detail("group_id", hosted.id().to_string())
            .with_detail("cancelled", day.to_string());
        c.audit(entry);
        c.commit().await
    }

    pub async fn delete_event(&self, actor: &Actor<'_>, id: Uuid) -> AppResult<()> {
        let mut c = self.change(actor).await?;
        let (hosted, _) = self.editable_event(&mut c, actor, id).await?;
        repo::delete_event(c.conn(), id).await?;
        let entry = c
            .entry(AuditAction::EventDelete)
            .on("event", id)
            .with_detail("group_id", hosted.id().to_string());
        c.audit(entry);
        c.commit().await
    }

    /// One event the viewer may see (active member of its group).
    pub async fn event(&self, actor: &Actor<'_>, id: Uuid) -> AppResult<(EventRow, bool)> {
        let me = actor.viewer.user.id;
        let mut c = self.change(actor).await?;
        let event = repo::event(c.conn(), id)
            .await?
            .ok_or_else(AppError::not_found)?;
        let (hosted, group) = groups_repo::group(c.conn(), actor.tenant, me, event.group_id)
            .await?
            .ok_or_else(AppError::not_found)?;
        let role = active_role(&group);
        c.authorize(&hosted, role, Object::Calendar, Action::Read)
            .await?;
        c.commit().await?;
        let can_edit = group.archived_at.is_none()
            && (event.created_by == me || role == Some(GroupRole::Owner));
        Ok((event, can_edit))
    }

    // --- Absences --------------------------------------------------------------------------

    /// Enters an absence of the actor's own: a range of days, or half of one day.
    pub async fn add_absence(
        &self,
        actor: &Actor<'_>,
        first_day: NaiveDate,
        last_day: NaiveDate,
        span: AbsenceSpan,
        note: &str,
    ) -> AppResult<Uuid> {
        let note = text::optional_line("note", note, 200)?.unwrap_or_default();
        if last_day < first_day {
            return Err(AppError::invalid(
                "lastDay",
                "the absence ends before it starts",
            ));
        }
        if (last_day - first_day).num_days() >= 366 {
            return Err(AppError::invalid(
                "lastDay",
                "an absence lasts at most a year",
            ));
        }
        if span != AbsenceSpan::AllDay && first_day != last_day {
            return Err(AppError::invalid("part", "a half-day absence is one day"));
        }
        let me = actor.viewer.user.id;
        let mut c = self.change(actor).await?;
        let id = Uuid::now_v7();
        repo::insert_absence(c.conn(), id, me, first_day, last_day, span.code(), &note).await?;
        let entry = c
            .entry(AuditAction::AbsenceCreate)
            .on("absence", id)
            .with_detail("first_day", first_day.to_string())
            .with_detail("last_day", last_day.to_string())
            .with_detail("part", span.code());
        c.audit(entry);
        c.commit().await?;
        Ok(id)
    }

    /// Withdraws an absence of the actor's own.
    pub async fn delete_absence(&self, actor: &Actor<'_>, id: Uuid) -> AppResult<()> {
        let me = actor.viewer.user.id;
        let mut c = self.change(actor).await?;
        if !repo::delete_absence(c.conn(), id, me).await? {
            return Err(AppError::not_found());
        }
        let entry = c.entry(AuditAction::AbsenceDelete).on("absence", id);
        c.audit(entry);
        c.commit().await
    }

    // --- Duty rotation ---------------------------------------------------------------------

    /// A group loaded for a duty operation, with the actor's role authorized for `action`.
    async fn duty_group(
        &self,
        c: &mut crate::change::Change<'_>,
        actor: &Actor<'_>,
        group_id: GroupId,
        action: Action,
    ) -> AppResult<(HostedGroup, Option<GroupRole>)> {
        let me = actor.viewer.user.id;
        let (hosted, group) = groups_repo::group(c.conn(), actor.tenant, me, group_id)
            .await?
            .ok_or_else(AppError::not_found)?;
        c.about_group(&group.name);
        let role = active_role(&group);
        c.authorize(&hosted, role, Object::Duty, action).await?;
        if action != Action::Read && group.archived_at.is_some() {
            return Err(AppError::archived());
        }
        Ok((hosted, role))
    }

    /// A month of a group's rotation (`month`: any day in it). Members see it once published;
    /// owners see the draft too. `None` when there is nothing they may see yet.
    pub async fn rotation(
        &self,
        actor: &Actor<'_>,
        group_id: GroupId,
        month: NaiveDate,
    ) -> AppResult<RotationView> {
        let month = month_of(month);
        let mut c = self.change(actor).await?;
        let (_, role) = self
            .duty_group(&mut c, actor, group_id, Action::Read)
            .await?;
        let manage = role == Some(GroupRole::Owner);
        let settings = repo::duty_settings(c.conn(), group_id).await?;
        let participants = repo::participants(c.conn(), group_id).await?;
        let state = repo::duty_month(c.conn(), group_id, month).await?;
        let visible = state
            .as_ref()
            .is_some_and(|m| m.status == "published" || manage);
        let last = next_month(month).pred_opt().unwrap_or(month);
        let duties = if visible {
            repo::duties_between(c.conn(), group_id, month, last).await?
        } else {
            Vec::new()
        };
        let people: Vec<PersonId> = participants.iter().map(|p| p.user_id).collect();
        let absences = repo::absences_of(c.conn(), &people, month, last).await?;
        let swaps = if visible {
            repo::open_swaps(c.conn(), group_id).await?
        } else {
            Vec::new()
        };
        c.commit().await?;
        let assignments = assignments_of(&duties);
        let problems = rotation::check(
            &assignments,
            &participants.iter().map(participant).collect::<Vec<_>>(),
            &absences.iter().map(absence).collect::<Vec<_>>(),
        );
        let counts = rotation::counts(&assignments);
        Ok(RotationView {
            month,
            settings,
            participants,
            state,
            duties,
            absences,
            swaps,
            problems,
            counts,
            can_manage: manage,
            holidays: holidays::holidays_between(month, last),
        })
    }

    /// Sets the shape of duty and who takes part (owners).
    pub async fn set_duty_settings(
        &self,
        actor: &Actor<'_>,
        group_id: GroupId,
        settings: &repo::DutySettingsRow,
        participants: &[ParticipantRow],
    ) -> AppResult<()> {
        for kinds in [&settings.weekday_kinds, &settings.weekend_kinds] {
            if kinds.iter().any(|k| k != "day" && k != "night") {
                return Err(AppError::invalid("kinds", "duty is by day or by night"));
            }
        }
        if participants.len() > 100 {
            return Err(AppError::invalid("participants", "at most 100 take part"));
        }
        let mut c = self.change(actor).await?;
        let (hosted, _) = self
            .duty_group(&mut c, actor, group_id, Action::Update)
            .await?;
        let members: Vec<PersonId> = groups_repo::members(c.conn(), &hosted)
            .await?
            .into_iter()
            .filter(|m| m.status == crate::types::GroupMemberStatus::Active)
            .map(|m| m.user_id)
            .collect();
        let mut cleaned = Vec::with_capacity(participants.len());
        for p in participants {
            if !members.contains(&p.user_id) {
                return Err(AppError::invalid(
                    "participants",
                    "only members of the group take part",
                ));
            }
            if p.max_per_month.is_some_and(|m| !(1..=62).contains(&m)) {
                return Err(AppError::invalid("maxPerMonth", "between 1 and 62"));
            }
            let contact = text::optional_line("contact", &p.contact, 40)?.unwrap_or_default();
            cleaned.push(ParticipantRow {
                contact,
                unavailable_weekdays: p.unavailable_weekdays & 127,
                preferred_weekdays: p.preferred_weekdays & 127,
                ..p.clone()
            });
        }
        repo::put_duty_settings(c.conn(), group_id, settings).await?;
        for old in repo::participants(c.conn(), group_id).await? {
            if !cleaned.iter().any(|p| p.user_id == old.user_id) {
                repo::remove_participant(c.conn(), group_id, old.user_id).await?;
            }
        }
        for p in &cleaned {
            repo::put_participant(c.conn(), group_id, p).await?;
        }
        let entry = c
            .entry(AuditAction::DutySettings)
            .with_detail("group_id", group_id.to_string())
            .with_detail("participants", cleaned.len());
        c.audit(entry);
        c.commit().await
    }

    /// Drafts a month (owners): every slot of the month's shape, assigned fairly around
    /// absences and stated wishes; replaces an earlier draft. A published month is adjusted
    /// slot by slot instead.
    pub async fn draft_rotation(
        &self,
        actor: &Actor<'_>,
        group_id: GroupId,
        month: NaiveDate,
        seed: u64,
    ) -> AppResult<()> {
        let month = month_of(month);
        let mut c = self.change(actor).await?;
        self.duty_group(&mut c, actor, group_id, Action::Update)
            .await?;
        let settings = repo::duty_settings(c.conn(), group_id)
            .await?
            .ok_or_else(|| AppError::invalid("settings", "set up the rotation first"))?;
        let state = repo::lock_duty_month(c.conn(), group_id, month).await?;
        if state.status == "published" {
            return Err(AppError::new(
                ErrorCode::Conflict,
                "this month is published: change single slots instead",
            ));
        }
        let participants = repo::participants(c.conn(), group_id).await?;
        let last = next_month(month).pred_opt().unwrap_or(month);
        let people: Vec<PersonId> = participants.iter().map(|p| p.user_id).collect();
        let absences = repo::absences_of(c.conn(), &people, month, last).await?;
        let mut history = rotation::History::default();
        for (user, class, kind, n) in
            repo::duty_history(c.conn(), group_id, month, HISTORY_MONTHS).await?
        {
            let slot = Slot {
                date: month,
                kind: duty_kind(&kind),
                class: day_class(&class),
            };
            let counts = history.per_person.entry(user.uuid()).or_default();
            for _ in 0..n.clamp(0, 1000) {
                counts.add(&slot);
            }
        }
        let shape = shape_of(&settings);
        let slots =
            rotation::slots_for_month(month.year(), month.month(), &shape, &holidays::is_holiday)
                .map_err(|e| AppError::invalid("month", e.to_string()))?;
        let draft = rotation::draft(
            &slots,
            &participants.iter().map(participant).collect::<Vec<_>>(),
            &absences.iter().map(absence).collect::<Vec<_>>(),
            &history,
            &[],
            seed,
        );
        let rows: Vec<(NaiveDate, &str, &str, Option<PersonId>)> = draft
            .assignments
            .iter()
            .map(|(s, p)| {
                (
                    s.date,
                    kind_code(s.kind),
                    class_code(s.class),
                    p.map(PersonId::from_uuid),
                )
            })
            .collect();
        repo::replace_month_duties(c.conn(), group_id, month, &rows).await?;
        repo::touch_duty_month(c.conn(), group_id, month).await?;
        let entry = c
            .entry(AuditAction::DutyDraft)
            .with_detail("group_id", group_id.to_string())
            .with_detail("month", month.to_string())
            .with_detail("uncovered", draft.uncovered.len());
        c.audit(entry);
        c.commit().await
    }

    /// Assigns one slot by hand (owners); `None` leaves it uncovered.
    pub async fn assign_duty(
        &self,
        actor: &Actor<'_>,
        group_id: GroupId,
        day: NaiveDate,
        kind: DutyKind,
        user: Option<PersonId>,
    ) -> AppResult<()> {
        let mut c = self.change(actor).await?;
        self.duty_group(&mut c, actor, group_id, Action::Update)
            .await?;
        repo::lock_duty_month(c.conn(), group_id, month_of(day)).await?;
        if let Some(u) = user {
            let takes_part = repo::participants(c.conn(), group_id)
                .await?
                .iter()
                .any(|p| p.user_id == u);
            if !takes_part {
                return Err(AppError::invalid("userId", "only participants take duty"));
            }
        }
        if !repo::set_duty(c.conn(), group_id, day, kind_code(kind), user).await? {
            return Err(AppError::not_found());
        }
        repo::cancel_open_swaps_of(c.conn(), group_id, day, kind_code(kind)).await?;
        repo::touch_duty_month(c.conn(), group_id, month_of(day)).await?;
        let mut entry = c
            .entry(AuditAction::DutyAssign)
            .with_detail("group_id", group_id.to_string())
            .with_detail("day", day.to_string())
            .with_detail("kind", kind_code(kind));
        if let Some(u) = user {
            entry = entry.with_detail("user_id", u.to_string());
        }
        c.audit(entry);
        c.commit().await
    }

    /// Publishes a drafted month (owners), optionally linked to the topic where it is
    /// discussed.
    pub async fn publish_rotation(
        &self,
        actor: &Actor<'_>,
        group_id: GroupId,
        month: NaiveDate,
        topic: Option<Uuid>,
    ) -> AppResult<()> {
        let month = month_of(month);
        let me = actor.viewer.user.id;
        let mut c = self.change(actor).await?;
        self.duty_group(&mut c, actor, group_id, Action::Update)
            .await?;
        let has_slots = !repo::duties_between(
            c.conn(),
            group_id,
            month,
            next_month(month).pred_opt().unwrap_or(month),
        )
        .await?
        .is_empty();
        if !has_slots {
            return Err(AppError::invalid("month", "draft the month first"));
        }
        repo::lock_duty_month(c.conn(), group_id, month).await?;
        if let Some(t) = topic {
            let in_group = groups_repo::topic_access(c.conn(), actor.tenant, me, t.into())
                .await?
                .is_some_and(|(h, _)| h.id() == group_id);
            if !in_group {
                return Err(AppError::invalid("topicId", "a topic of this group"));
            }
            repo::set_duty_month_topic(c.conn(), group_id, month, Some(t)).await?;
        }
        repo::publish_duty_month(c.conn(), group_id, month, me).await?;
        let entry = c
            .entry(AuditAction::DutyPublish)
            .with_detail("group_id", group_id.to_string())
            .with_detail("month", month.to_string());
        c.audit(entry);
        c.commit().await
    }

    /// Asks a colleague to take one of the actor's published slots, or to exchange it for one
    /// of theirs.
    #[allow(clippy::too_many_arguments)]
    pub async fn request_swap(
        &self,
        actor: &Actor<'_>,
        group_id: GroupId,
        day: NaiveDate,
        kind: DutyKind,
        to: PersonId,
        other: Option<(NaiveDate, DutyKind)>,
        note: &str,
    ) -> AppResult<Uuid> {
        let note = text::optional_line("note", note, 200)?.unwrap_or_default();
        let me = actor.viewer.user.id;
        if to == me {
            return Err(AppError::invalid("toUserId", "ask someone else"));
        }
        let mut c = self.change(actor).await?;
        self.duty_group(&mut c, actor, group_id, Action::Read)
            .await?;
        let holder = published_holder(&mut c, group_id, day, kind).await?;
        if holder != Some(me) {
            return Err(AppError::invalid(
                "day",
                "only your own duty can be handed over",
            ));
        }
        if let Some((od, ok)) = other {
            if published_holder(&mut c, group_id, od, ok).await? != Some(to) {
                return Err(AppError::invalid(
                    "otherDay",
                    "the colleague's slot to take in exchange is not theirs",
                ));
            }
        }
        let takes_part = repo::participants(c.conn(), group_id)
            .await?
            .iter()
            .any(|p| p.user_id == to);
        if !takes_part {
            return Err(AppError::invalid("toUserId", "only participants take duty"));
        }
        let id = Uuid::now_v7();
        let other_codes = other.map(|(d, k)| (d, kind_code(k)));
        if !repo::insert_swap(
            c.conn(),
            id,
            group_id,
            day,
            kind_code(kind),
            me,
            to,
            other_codes,
            &note,
        )
        .await?
        {
            return Err(AppError::new(
                ErrorCode::Conflict,
                "a request for this duty is already open",
            ));
        }
        let entry = c
            .entry(AuditAction::DutySwapRequest)
            .on("swap", id)
            .with_detail("group_id", group_id.to_string())
            .with_detail("day", day.to_string())
            .with_detail("to_user_id", to.to_string());
        c.audit(entry);
        c.commit().await?;
        Ok(id)
    }

    /// Answers a request: the colleague asked accepts or declines; the requester may withdraw
    /// it. Accepting hands the slot(s) over if they are still held as when asked.
    pub async fn answer_swap(
        &self,
        actor: &Actor<'_>,
        group_id: GroupId,
        swap_id: Uuid,
        answer: SwapAnswer,
    ) -> AppResult<()> {
        let me = actor.viewer.user.id;
        let mut c = self.change(actor).await?;
        self.duty_group(&mut c, actor, group_id, Action::Read)
            .await?;
        let swap = repo::swap_for_update(c.conn(), swap_id)
            .await?
            .filter(|s| s.group_id == group_id && (s.to_user == me || s.from_user == me))
            .ok_or_else(AppError::not_found)?;
        if swap.status != "requested" {
            return Err(AppError::new(
                ErrorCode::Conflict,
                "this request was already answered",
            ));
        }
        let status = match answer {
            SwapAnswer::Withdraw if swap.from_user == me => "cancelled",
            SwapAnswer::Accept | SwapAnswer::Decline if swap.to_user == me => {
                if answer == SwapAnswer::Accept {
                    "accepted"
                } else {
                    "declined"
                }
            }
            _ => return Err(AppError::not_found()),
        };
        if status == "accepted" {
            // Months in one order, whoever answers: two crossed exchanges cannot deadlock.
            let mut months = vec![month_of(swap.day)];
            months.extend(swap.other_day.map(month_of));
            months.sort();
            months.dedup();
            for m in months {
                repo::lock_duty_month(c.conn(), group_id, m).await?;
            }
            let kind = duty_kind(&swap.kind);
            if published_holder(&mut c, group_id, swap.day, kind).await? != Some(swap.from_user) {
                return Err(AppError::new(
                    ErrorCode::Conflict,
                    "the duty changed hands meanwhile",
                ));
            }
            if let (Some(od), Some(ok)) = (swap.other_day, swap.other_kind.as_deref()) {
                if published_holder(&mut c, group_id, od, duty_kind(ok)).await?
                    != Some(swap.to_user)
                {
                    return Err(AppError::new(
                        ErrorCode::Conflict,
                        "the duty changed hands meanwhile",
                    ));
                }
                repo::set_duty(c.conn(), group_id, od, ok, Some(swap.from_user)).await?;
                repo::touch_duty_month(c.conn(), group_id, month_of(od)).await?;
            }
            repo::set_duty(c.conn(), group_id, swap.day, &swap.kind, Some(swap.to_user)).await?;
            repo::touch_duty_month(c.conn(), group_id, month_of(swap.day)).await?;
        }
        repo::decide_swap(c.conn(), swap_id, status).await?;
        if status == "accepted" {
            repo::cancel_open_swaps_of(c.conn(), group_id, swap.day, &swap.kind).await?;
            if let (Some(od), Some(ok)) = (swap.other_day, swap.other_kind.as_deref()) {
                repo::cancel_open_swaps_of(c.conn(), group_id, od, ok).await?;
            }
        }
        let entry = c
            .entry(AuditAction::DutySwapAnswer)
            .on("swap", swap_id)
            .with_detail("group_id", group_id.to_string())
            .with_detail("status", status);
        c.audit(entry);
        c.commit().await
    }

    /// Who is on duty today in a group (published rotations only), with how to reach them.
    pub async fn on_call_today(
        &self,
        actor: &Actor<'_>,
        group_id: GroupId,
    ) -> AppResult<Vec<OnCall>> {
        let day = today();
        let mut c = self.change(actor).await?;
        self.duty_group(&mut c, actor, group_id, Action::Read)
            .await?;
        let duties = repo::published_duties_between(c.conn(), &[group_id], day, day).await?;
        let participants = repo::participants(c.conn(), group_id).await?;
        c.commit().await?;
        Ok(duties
            .into_iter()
            .map(|d| OnCall {
                contact: d
                    .user_id
                    .and_then(|u| participants.iter().find(|p| p.user_id == u))
                    .map(|p| p.contact.clone())
                    .unwrap_or_default(),
                kind: duty_kind(&d.kind),
                day: d.day,
                user_id: d.user_id,
                name: d.user_name,
            })
            .collect())
    }

    // --- Feeds ------------------------------------------------------------------------------

    /// A new personal feed: returns its id and the secret token of its address (shown once).
    pub async fn create_feed(
        &self,
        actor: &Actor<'_>,
        with_patient_names: bool,
    ) -> AppResult<(Uuid, String)> {
        let me = actor.viewer.user.id;
        let mut c = self.change(actor).await?;
        if repo::feeds_of(c.conn(), me).await?.len() >= 5 {
            return Err(AppError::invalid(
                "feed",
                "at most five feeds: revoke one first",
            ));
        }
        let token = Token::generate().map_err(AppError::internal)?;
        let id = Uuid::now_v7();
        repo::insert_feed(c.conn(), id, me, &token.hash(), with_patient_names).await?;
        let entry = c
            .entry(AuditAction::FeedCreate)
            .on("feed", id)
            .with_detail("with_patient_names", with_patient_names);
        c.audit(entry);
        c.commit().await?;
        Ok((id, token.into_string()))
    }

    pub async fn revoke_feed(&self, actor: &Actor<'_>, id: Uuid) -> AppResult<()> {
        let me = actor.viewer.user.id;
        let mut c = self.change(actor).await?;
        if !repo::revoke_feed(c.conn(), id, me).await? {
            return Err(AppError::not_found());
        }
        let entry = c.entry(AuditAction::FeedRevoke).on("feed", id);
        c.audit(entry);
        c.commit().await
    }

    pub async fn feeds(&self, viewer: &Viewer) -> AppResult<Vec<repo::FeedRow>> {
        let mut conn = self.db().pool().acquire().await.map_err(db_error)?;
        Ok(repo::feeds_of(&mut conn, viewer.user.id).await?)
    }

    /// The iCalendar text of a feed: from 3 months back to 12 ahead, what its owner may see
    /// now; patient groups' names only if the feed says so. `None` for an unknown or revoked
    /// token, or an owner no longer active.
    pub async fn feed_ics(&self, token: &str, meta: &RequestMeta) -> AppResult<Option<String>> {
        if !is_well_formed(token) {
            return Ok(None);
        }
        let feed = {
            let mut conn = self.db().pool().acquire().await.map_err(db_error)?;
            repo::feed_by_hash(&mut conn, &hash_token(token)).await?
        };
        let Some(feed) = feed else {
            return Ok(None);
        };
        let me = feed.user_id;
        let active = {
            let mut conn = self.db().pool().acquire().await.map_err(db_error)?;
            repo::active_person_name(&mut conn, me).await?
        };
        let Some(owner_name) = active else {
            return Ok(None);
        };
        let day = today();
        let from = day - Duration::days(92);
        let to = day + Duration::days(366);
        let rows = groups_repo::groups_of(self.db().pool(), me).await?;
        let hosts = crate::groups::by_association(&rows, |r| {
            r.status == crate::types::GroupMemberStatus::Active
                && r.kind != crate::groups::GroupKind::Direct
        });
        let stamp = Utc::now();
        let mut events = Vec::new();
        for (_, slug, _, ids) in hosts {
            let Ok(tenant) = self.db().resolve_tenant(&slug).await else {
                continue;
            };
            let mut c = self.change_without_viewer(&tenant, meta).await?;
            let groups = groups_repo::groups_by_ids(c.conn(), &tenant, me, &ids).await?;
            let groups: Vec<_> = groups
                .into_iter()
                .filter(|g| active_role(g).is_some())
                .collect();
            let ids: Vec<GroupId> = groups.iter().map(|g| g.id).collect();
            let label = |id: GroupId| {
                groups.iter().find(|g| g.id == id).map(|g| {
                    if g.kind == crate::types::GroupKind::Patient && !feed.with_patient_names {
                        None
                    } else {
                        Some(g.name.clone())
                    }
                })
            };
            for e in repo::events_between(c.conn(), &ids, from, to).await? {
                let Some(group_label) = label(e.group_id) else {
                    continue;
                };
                events.push(feed_event(&e, group_label.as_deref(), stamp));
            }
            for d in repo::published_duties_between(c.conn(), &ids, from, to).await? {
                if d.user_id != Some(me) {
                    continue;
                }
                let Some(group_label) = label(d.group_id) else {
                    continue;
                };
                events.push(duty_event(&d, group_label.as_deref(), stamp));
            }
            let entry = AuditEntry::new(AuditAction::FeedRead, meta)
                .by(me, owner_name.clone())
                .on("feed", feed.id);
            c.audit(entry);
            c.commit().await?;
        }
        let absences = {
            let mut conn = self.db().pool().acquire().await.map_err(db_error)?;
            repo::absences_of(&mut conn, &[me], from, to).await?
        };
        for a in absences {
            events.push(ical::Event {
                uid: format!("absence-{}@musubi", a.id),
                summary: format!("不在{}", span_label(&a.part)),
                description: (!a.note.is_empty()).then(|| a.note.clone()),
                location: None,
                categories: vec!["不在".to_owned()],
                start: ical::When::Date(a.first_day),
                end: ical::When::Date(a.last_day),
                rule: None,
                exdates: Vec::new(),
                sequence: 0,
                stamp,
                last_modified: None,
            });
        }
        let calendar = ical::Calendar {
            name: "Musubi".to_owned(),
            events,
        };
        Ok(Some(calendar.render()))
    }
}

fn span_label(part: &str) -> &'static str {
    match part {
        "am" => "（午前）",
        "pm" => "（午後）",
        _ => "",
    }
}

fn category_label(code: &str) -> &'static str {
    match code {
        "absence" => "不在",
        "duty" => "当番",
        "visit" => "訪問",
        "conference" => "担当者会議",
        _ => "その他",
    }
}

/// An event in a feed. Without its group's name (a patient group, unless the feed opted in)
/// its title and notes stay out too: they may name the patient.
fn feed_event(e: &EventRow, group: Option<&str>, stamp: chrono::DateTime<Utc>) -> ical::Event {
    let (summary, description, location) = match group {
        Some(g) => (
            format!("{}（{g}）", e.title),
            (!e.notes.is_empty()).then(|| e.notes.clone()),
            (!e.place.is_empty()).then(|| e.place.clone()),
        ),
        None => (category_label(&e.category).to_owned(), None, None),
    };
    let (start, end) = match (e.starts_at, e.ends_at) {
        (Some(s), Some(t)) => (
            ical::When::Local(e.first_day.and_time(s)),
            ical::When::Local(e.last_day.and_time(t)),
        ),
        _ => (ical::When::Date(e.first_day), ical::When::Date(e.last_day)),
    };
    ical::Event {
        uid: format!("event-{}@musubi", e.id),
        summary,
        description,
        location,
        categories: vec![category_label(&e.category).to_owned()],
        start,
        end,
        rule: e.rrule.as_deref().and_then(|r| Rule::parse(r).ok()),
        exdates: e.exceptions.clone(),
        sequence: u32::try_from(e.version.max(1) - 1).unwrap_or(0),
        stamp,
        last_modified: Some(e.updated_at),
    }
}

/// One's own duty in a feed: an all-day entry (the hours of day and night duty are the
/// group's custom, not Musubi's).
fn duty_event(d: &repo::DutyRow, group: Option<&str>, stamp: chrono::DateTime<Utc>) -> ical::Event {
    let kind = if d.kind == "night" {
        "夜間"
    } else {
        "日中"
    };
    ical::Event {
        uid: format!("duty-{}-{}-{}@musubi", d.group_id, d.day, d.kind),
        summary: match group {
            Some(g) => format!("当番（{kind}）{g}"),
            None => format!("当番（{kind}）"),
        },
        description: None,
        location: None,
        categories: vec!["当番".to_owned()],
        start: ical::When::Date(d.day),
        end: ical::When::Date(d.day),
        rule: None,
        exdates: Vec::new(),
        sequence: 0,
        stamp,
        last_modified: None,
    }
}

fn db_error(e: sqlx::Error) -> AppError {
    AppError::from(musubi_db::DbError::from(e))
}

fn fields<'a>(e: &'a CheckedEvent, rrule: Option<&'a str>) -> repo::EventFields<'a> {
    repo::EventFields {
        category: e.category.code(),
        title: &e.title,
        first_day: e.first_day,
        last_day: e.last_day,
        starts_at: e.starts_at,
        ends_at: e.ends_at,
        rrule,
        until_day: e.until_day,
        place: &e.place,
        notes: &e.notes,
    }
}

/// Who holds a slot of a published month (`None`: uncovered, or not published).
async fn published_holder(
    c: &mut crate::change::Change<'_>,
    group: GroupId,
    day: NaiveDate,
    kind: DutyKind,
) -> AppResult<Option<PersonId>> {
    Ok(repo::published_duties_between(c.conn(), &[group], day, day)
        .await?
        .into_iter()
        .find(|d| d.kind == kind_code(kind))
        .and_then(|d| d.user_id))
}

/// An answer to a swap request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SwapAnswer {
    Accept,
    Decline,
    /// By the one who asked.
    Withdraw,
}

/// The doctor on duty.
#[derive(Debug, Clone)]
pub struct OnCall {
    pub day: NaiveDate,
    pub kind: DutyKind,
    pub user_id: Option<PersonId>,
    pub name: Option<String>,
    pub contact: String,
}

/// A month of a rotation as its page shows it.
#[derive(Debug, Clone)]
pub struct RotationView {
    pub month: NaiveDate,
    pub settings: Option<repo::DutySettingsRow>,
    pub participants: Vec<ParticipantRow>,
    pub state: Option<repo::DutyMonthRow>,
    /// Empty when the viewer may not see the month yet.
    pub duties: Vec<repo::DutyRow>,
    pub absences: Vec<AbsenceRow>,
    pub swaps: Vec<SwapRow>,
    pub problems: Vec<rotation::Problem>,
    pub counts: Vec<(Uuid, rotation::Counts)>,
    pub can_manage: bool,
    pub holidays: Vec<(NaiveDate, &'static str)>,
}

pub fn kind_code(kind: DutyKind) -> &'static str {
    match kind {
        DutyKind::Day => "day",
        DutyKind::Night => "night",
    }
}

pub fn duty_kind(code: &str) -> DutyKind {
    if code == "night" {
        DutyKind::Night
    } else {
        DutyKind::Day
    }
}

fn class_code(class: DayClass) -> &'static str {
    match class {
        DayClass::Weekday => "weekday",
        DayClass::Weekend => "weekend",
        DayClass::Holiday => "holiday",
    }
}

fn day_class(code: &str) -> DayClass {
    match code {
        "weekend" => DayClass::Weekend,
        "holiday" => DayClass::Holiday,
        _ => DayClass::Weekday,
    }
}

fn shape_of(s: &repo::DutySettingsRow) -> Shape {
    let kinds = |v: &[String]| v.iter().map(|k| duty_kind(k)).collect();
    Shape {
        weekday: kinds(&s.weekday_kinds),
        weekend_holiday: kinds(&s.weekend_kinds),
        saturday_is_weekend: s.saturday_is_weekend,
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

/// The weekdays of a bit set (Monday = 1 … Sunday = 64).
pub fn weekdays_of(bits: i16) -> Vec<Weekday> {
    WEEKDAYS
        .iter()
        .enumerate()
        .filter(|(i, _)| bits & (1 << i) != 0)
        .map(|(_, d)| *d)
        .collect()
}

fn participant(p: &ParticipantRow) -> rotation::Participant {
    rotation::Participant {
        id: p.user_id.uuid(),
        unavailable_weekdays: weekdays_of(p.unavailable_weekdays),
        preferred_weekdays: weekdays_of(p.preferred_weekdays),
        max_per_month: p.max_per_month.and_then(|m| u8::try_from(m).ok()),
        no_nights: p.no_nights,
    }
}

fn absence(a: &AbsenceRow) -> rotation::Absence {
    rotation::Absence {
        person: a.user_id.uuid(),
        from: a.first_day,
        to_inclusive: a.last_day,
        part: match a.part.as_str() {
            "am" => AbsencePart::Morning,
            "pm" => AbsencePart::Afternoon,
            _ => AbsencePart::AllDay,
        },
    }
}

fn assignments_of(duties: &[repo::DutyRow]) -> Vec<(Slot, Option<Uuid>)> {
    duties
        .iter()
        .map(|d| {
            (
                Slot {
                    date: d.day,
                    kind: duty_kind(&d.kind),
                    class: day_class(&d.class),
                },
                d.user_id.map(PersonId::uuid),
            )
        })
        .collect()
}
