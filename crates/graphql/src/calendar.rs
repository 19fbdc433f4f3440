//! Calendars through the API: the merged calendar of a person (no routing needed), group
//! events, absences, the duty rotation with its swaps and "today's on-call doctor", and the
//! personal iCalendar feeds. Dates are Asia/Tokyo dates (`YYYY-MM-DD`), times Asia/Tokyo wall
//! times (`HH:MM:SS`). The services decide who sees and changes what (see
//! `musubi_domain::calendar`).

use crate::request::{routed, signed_in, uuid, OrGql};
use crate::RequestContext;
use async_graphql::{Context, Enum, InputObject, Object, SimpleObject, ID};
use chrono::{NaiveDate, NaiveTime};
use musubi_calendar::rotation::{DayClass, DutyKind as Kind, Problem};
use musubi_domain::calendar::{self as cal, AbsenceSpan, EventCategory as Category};
use musubi_domain::types::{GroupId, PersonId};
use musubi_domain::AppError;
use uuid::Uuid;

#[derive(Enum, Copy, Clone, Eq, PartialEq)]
pub enum EventCategory {
    /// 不在 (a clinic's closure; a person's own absences are `Absence`).
    Absence,
    /// 当番
    Duty,
    /// 訪問
    Visit,
    /// 担当者会議
    Conference,
    /// その他
    Other,
}

impl From<EventCategory> for Category {
    fn from(c: EventCategory) -> Self {
        match c {
            EventCategory::Absence => Category::Absence,
            EventCategory::Duty => Category::Duty,
            EventCategory::Visit => Category::Visit,
            EventCategory::Conference => Category::Conference,
            EventCategory::Other => Category::Other,
        }
    }
}

fn category_out(code: &str) -> EventCategory {
    match Category::from_code(code) {
        Some(Category::Absence) => EventCategory::Absence,
        Some(Category::Duty) => EventCategory::Duty,
        Some(Category::Visit) => EventCategory::Visit,
        Some(Category::Conference) => EventCategory::Conference,
        _ => EventCategory::Other,
    }
}

#[derive(Enum, Copy, Clone, Eq, PartialEq)]
pub enum AbsencePart {
    AllDay,
    /// 午前 (a single day).
    Morning,
    /// 午後 (a single day).
    Afternoon,
}

fn part_out(code: &str) -> AbsencePart {
    match code {
        "am" => AbsencePart::Morning,
        "pm" => AbsencePart::Afternoon,
        _ => AbsencePart::AllDay,
    }
}

#[derive(Enum, Copy, Clone, Eq, PartialEq)]
pub enum DutyKind {
    /// 日中
    Day,
    /// 夜間
    Night,
}

impl From<DutyKind> for Kind {
    fn from(k: DutyKind) -> Self {
        match k {
            DutyKind::Day => Kind::Day,
            DutyKind::Night => Kind::Night,
        }
    }
}

fn kind_out(code: &str) -> DutyKind {
    if code == "night" {
        DutyKind::Night
    } else {
        DutyKind::Day
    }
}

#[derive(Enum, Copy, Clone, Eq, PartialEq)]
pub enum DutyDayClass {
    Weekday,
    Weekend,
    Holiday,
}

fn class_out(code: &str) -> DutyDayClass {
    match code {
        "weekend" => DutyDayClass::Weekend,
        "holiday" => DutyDayClass::Holiday,
        _ => DutyDayClass::Weekday,
    }
}

#[derive(Enum, Copy, Clone, Eq, PartialEq)]
pub enum SwapAnswer {
    Accept,
    Decline,
    /// By the one who asked.
    Withdraw,
}

#[derive(SimpleObject)]
pub struct Holiday {
    pub date: NaiveDate,
    pub name: String,
}

/// One occurrence of an event.
#[derive(SimpleObject)]
pub struct CalendarEvent {
    pub id: ID,
    /// The host association's slug (route changes there).
    pub association: String,
    pub group_id: ID,
    pub group_name: String,
    pub category: EventCategory,
    pub title: String,
    /// This occurrence's days (inclusive).
    pub first_day: NaiveDate,
    pub last_day: NaiveDate,
    /// Null for an all-day event.
    pub starts_at: Option<NaiveTime>,
    pub ends_at: Option<NaiveTime>,
    /// The series' rule (RFC 5545), if it repeats.
    pub rrule: Option<String>,
    /// The series' first day (pass it with `rrule` when editing).
    pub series_first_day: NaiveDate,
    pub place: String,
    pub notes: String,
    pub created_by: String,
    pub version: i32,
    pub can_edit: bool,
}

#[derive(SimpleObject)]
pub struct Absence {
    pub id: ID,
    pub user_id: ID,
    pub name: String,
    pub first_day: NaiveDate,
    pub last_day: NaiveDate,
    pub part: AbsencePart,
    pub note: String,
}

fn absence_out(a: cal::AbsenceRow) -> Absence {
    Absence {
        id: ID(a.id.to_string()),
        user_id: ID(a.user_id.to_string()),
        name: a.user_name,
        first_day: a.first_day,
        last_day: a.last_day,
        part: part_out(&a.part),
        note: a.note,
    }
}

#[derive(SimpleObject)]
pub struct Duty {
    pub association: Option<String>,
    pub group_id: ID,
    pub group_name: Option<String>,
    pub day: NaiveDate,
    pub kind: DutyKind,
    pub class: DutyDayClass,
    /// Null: nobody covers it.
    pub user_id: Option<ID>,
    pub name: Option<String>,
    /// False for a draft (shown to the group's owners only).
    pub published: bool,
}

fn duty_out(
    d: musubi_db::calendar::DutyRow,
    association: Option<String>,
    group_name: Option<String>,
) -> Duty {
    Duty {
        association,
        group_id: ID(d.group_id.to_string()),
        group_name,
        day: d.day,
        kind: kind_out(&d.kind),
        class: class_out(&d.class),
        user_id: d.user_id.map(|u| ID(u.to_string())),
        name: d.user_name,
        published: d.published,
    }
}

#[derive(SimpleObject)]
pub struct CalendarRange {
    pub holidays: Vec<Holiday>,
    pub events: Vec<CalendarEvent>,
    pub absences: Vec<Absence>,
    pub duties: Vec<Duty>,
}

#[derive(SimpleObject)]
pub struct OnCall {
    pub day: NaiveDate,
    pub kind: DutyKind,
    pub user_id: Option<ID>,
    pub name: Option<String>,
    /// How to reach them (as the participant entered it).
    pub contact: String,
}

#[derive(SimpleObject)]
pub struct Participant {
    pub user_id: ID,
    pub name: String,
    /// Weekdays never on duty, Monday = 1 … Sunday = 64 (a bit set).
    pub unavailable_weekdays: i32,
    pub preferred_weekdays: i32,
    pub max_per_month: Option<i32>,
    pub no_nights: bool,
    pub contact: String,
    /// This month's duty: weekdays, weekends, holidays, nights, in all.
    pub weekday_count: i32,
    pub weekend_count: i32,
    pub holiday_count: i32,
    pub night_count: i32,
    pub total_count: i32,
}

#[derive(SimpleObject)]
pub struct Swap {
    pub id: ID,
    pub day: NaiveDate,
    pub kind: DutyKind,
    pub from_user_id: ID,
    pub from_name: Option<String>,
    pub to_user_id: ID,
    pub to_name: Option<String>,
    pub other_day: Option<NaiveDate>,
    pub other_kind: Option<DutyKind>,
    pub note: String,
}

/// Something wrong with a month's rotation, to flag loudly.
#[derive(SimpleObject)]
pub struct RotationProblem {
    /// `UNCOVERED`, `ABSENT`, `UNAVAILABLE_DAY`, `NO_NIGHTS`, `NIGHT_THEN_DAY`, `OVER_MAX`,
    /// `NOT_PARTICIPANT`.
    pub code: String,
    pub day: Option<NaiveDate>,
    pub kind: Option<DutyKind>,
    pub user_id: Option<ID>,
}

fn problem_out(p: &Problem) -> RotationProblem {
    let kind = |k: Kind| match k {
        Kind::Day => DutyKind::Day,
        Kind::Night => DutyKind::Night,
    };
    let (code, slot, person) = match p {
        Problem::Uncovered(s) => ("UNCOVERED", Some(*s), None),
        Problem::NotParticipant { slot, person } => ("NOT_PARTICIPANT", Some(*slot), Some(*person)),
        Problem::Absent { slot, person } => ("ABSENT", Some(*slot), Some(*person)),
        Problem::UnavailableDay { slot, person } => ("UNAVAILABLE_DAY", Some(*slot), Some(*person)),
        Problem::NoNights { slot, person } => ("NO_NIGHTS", Some(*slot), Some(*person)),
        Problem::NightThenDay { person, day, .. } => ("NIGHT_THEN_DAY", Some(*day), Some(*person)),
        Problem::OverMax { person, .. } => ("OVER_MAX", None, Some(*person)),
    };
    RotationProblem {
        code: code.to_owned(),
        day: slot.map(|s| s.date),
        kind: slot.map(|s| kind(s.kind)),
        user_id: person.map(|u| ID(u.to_string())),
    }
}

#[derive(SimpleObject)]
pub struct Rotation {
    /// The month's first day.
    pub month: NaiveDate,
    /// `NONE` (not drafted, or not published for a member), `DRAFT` or `PUBLISHED`.
    pub status: String,
    /// Whether the viewer may set up, draft, adjust and publish it (an owner of the group).
    pub can_manage: bool,
    /// The topic where the month is discussed.
    pub topic_id: Option<ID>,
    pub weekday_kinds: Vec<DutyKind>,
    pub weekend_kinds: Vec<DutyKind>,
    pub saturday_is_weekend: bool,
    pub participants: Vec<Participant>,
    pub duties: Vec<Duty>,
    pub absences: Vec<Absence>,
    pub swaps: Vec<Swap>,
    pub problems: Vec<RotationProblem>,
    pub holidays: Vec<Holiday>,
}

#[derive(SimpleObject)]
pub struct CalendarFeed {
    pub id: ID,
    pub with_patient_names: bool,
    pub created_at: chrono::DateTime<chrono::Utc>,
    pub last_used_at: Option<chrono::DateTime<chrono::Utc>>,
}

/// A feed just created: its address holds the secret token, shown this once.
#[derive(SimpleObject)]
pub struct NewCalendarFeed {
    pub id: ID,
    /// The path of the feed (`/calendar/feed/<token>.ics`), to put after the server's origin.
    pub path: String,
}

#[derive(InputObject)]
pub struct EventInput {
    pub category: EventCategory,
    pub title: String,
    pub first_day: NaiveDate,
    /// Inclusive; the first day when omitted.
    pub last_day: Option<NaiveDate>,
    /// Both or neither (all day).
    pub starts_at: Option<NaiveTime>,
    pub ends_at: Option<NaiveTime>,
    /// An RFC 5545 RRULE (FREQ DAILY/WEEKLY/MONTHLY/YEARLY, INTERVAL, COUNT or UNTIL, BYDAY,
    /// BYMONTHDAY, BYMONTH).
    pub rrule: Option<String>,
    #[graphql(default)]
    pub place: String,
    #[graphql(default)]
    pub notes: String,
}

impl From<EventInput> for cal::EventInput {
    fn from(e: EventInput) -> Self {
        cal::EventInput {
            category: e.category.into(),
            title: e.title,
            first_day: e.first_day,
            last_day: e.last_day.unwrap_or(e.first_day),
            starts_at: e.starts_at,
            ends_at: e.ends_at,
            rrule: e.rrule,
            place: e.place,
            notes: e.notes,
        }
    }
}

#[derive(InputObject)]
pub struct ParticipantInput {
    pub user_id: ID,
    #[graphql(default)]
    pub unavailable_weekdays: i32,
    #[graphql(default)]
    pub preferred_weekdays: i32,
    pub max_per_month: Option<i32>,
    #[graphql(default)]
    pub no_nights: bool,
    #[graphql(default)]
    pub contact: String,
}

fn kinds(v: &[DutyKind]) -> Vec<String> {
    let mut out: Vec<String> = v
        .iter()
        .map(|k| cal::kind_code((*k).into()).to_owned())
        .collect();
    out.sort();
    out.dedup();
    out
}

fn bits(v: i32) -> i16 {
    i16::try_from(v & 127).unwrap_or(0)
}

#[derive(Default)]
pub struct CalendarQuery;

#[Object]
impl CalendarQuery {
    /// My calendar between `from` and `to` (inclusive, at most 93 days): events of all my
    /// groups in every association (no routing needed) or of one group (`groupId` with its
    /// host's `association` slug), Japanese public holidays, the absences of people I share a
    /// group with, and published duty (a group's draft too for its owners). Audited as a read.
    async fn calendar(
        &self,
        ctx: &Context<'_>,
        from: NaiveDate,
        to: NaiveDate,
        group_id: Option<ID>,
        association: Option<String>,
    ) -> async_graphql::Result<CalendarRange> {
        let (services, viewer) = signed_in(ctx)?;
        let rc = ctx.data::<RequestContext>()?;
        let group = match group_id {
            Some(id) => {
                let slug = association
                    .or_else(|| rc.tenant.as_ref().map(|t| t.slug.clone()))
                    .ok_or_else(|| {
                        AppError::invalid("association", "groupId needs its association's slug")
                    })
                    .gql(ctx)?;
                Some((slug, uuid::<GroupId>(ctx, &id)?))
            }
            None => None,
        };
        let view = services
            .calendar(
                viewer,
                &rc.client,
                from,
                to,
                group.as_ref().map(|(s, g)| (s.as_str(), *g)),
            )
            .await
            .gql(ctx)?;
        Ok(CalendarRange {
            holidays: view
                .holidays
                .into_iter()
                .map(|(date, name)| Holiday {
                    date,
                    name: name.to_owned(),
                })
                .collect(),
            events: view
                .occurrences
                .into_iter()
                .map(|o| CalendarEvent {
                    id: ID(o.event.id.to_string()),
                    association: o.association,
                    group_id: ID(o.group_id.to_string()),
                    group_name: o.group_name,
                    category: category_out(&o.event.category),
                    title: o.event.title,
                    first_day: o.first_day,
                    last_day: o.last_day,
                    starts_at: o.event.starts_at,
                    ends_at: o.event.ends_at,
                    rrule: o.event.rrule,
                    series_first_day: o.event.first_day,
                    place: o.event.place,
                    notes: o.event.notes,
                    created_by: o.event.creator_name.unwrap_or_default(),
                    version: o.event.version,
                    can_edit: o.can_edit,
                })
                .collect(),
            absences: view.absences.into_iter().map(absence_out).collect(),
            duties: view
                .duties
                .into_iter()
                .map(|d| duty_out(d.duty, Some(d.association), Some(d.group_name)))
                .collect(),
        })
    }

    /// A month of a group's duty rotation (routed to its host; `month`: any day in it).
    /// Members see it once published; owners also see the draft. Problems (uncovered slots,
    /// duty during an absence, …) are listed for the page to flag.
    async fn rotation(
        &self,
        ctx: &Context<'_>,
        group_id: ID,
        month: NaiveDate,
    ) -> async_graphql::Result<Rotation> {
        let (services, actor) = routed(ctx)?;
        let group_id: GroupId = uuid(ctx, &group_id)?;
        let r = services.rotation(&actor, group_id, month).await.gql(ctx)?;
        let count = |u: PersonId| {
            r.counts
                .iter()
                .find(|(p, _)| *p == u.uuid())
                .map(|(_, c)| *c)
                .unwrap_or_default()
        };
        let settings = r.settings.clone();
        let status = match &r.state {
            Some(s) if s.status == "published" => "PUBLISHED",
            Some(_) if r.can_manage => "DRAFT",
            _ => "NONE",
        };
        Ok(Rotation {
            month: r.month,
            status: status.to_owned(),
            can_manage: r.can_manage,
            topic_id: r
                .state
                .as_ref()
                .and_then(|s| s.topic_id)
                .map(|t| ID(t.to_string())),
            weekday_kinds: settings
                .as_ref()
                .map(|s| s.weekday_kinds.iter().map(|k| kind_out(k)).collect())
                .unwrap_or_default(),
            weekend_kinds: settings
                .as_ref()
                .map(|s| s.weekend_kinds.iter().map(|k| kind_out(k)).collect())
                .unwrap_or_default(),
            saturday_is_weekend: settings.as_ref().is_none_or(|s| s.saturday_is_weekend),
            participants: r
                .participants
                .iter()
                .map(|p| {
                    let c = count(p.user_id);
                    let n = |v: u32| i32::try_from(v).unwrap_or(i32::MAX);
                    Participant {
                        user_id: ID(p.user_id.to_string()),
                        name: p.name.clone(),
                        unavailable_weekdays: i32::from(p.unavailable_weekdays),
                        preferred_weekdays: i32::from(p.preferred_weekdays),
                        max_per_month: p.max_per_month.map(i32::from),
                        no_nights: p.no_nights,
                        contact: p.contact.clone(),
                        weekday_count: n(c.class(DayClass::Weekday)),
                        weekend_count: n(c.class(DayClass::Weekend)),
                        holiday_count: n(c.class(DayClass::Holiday)),
                        night_count: n(c.night),
                        total_count: n(c.total),
                    }
                })
                .collect(),
            duties: r
                .duties
                .iter()
                .cloned()
                .map(|d| duty_out(d, None, None))
                .collect(),
            absences: r.absences.iter().cloned().map(absence_out).collect(),
            swaps: r
                .swaps
                .iter()
                .map(|s| Swap {
                    id: ID(s.id.to_string()),
                    day: s.day,
                    kind: kind_out(&s.kind),
                    from_user_id: ID(s.from_user.to_string()),
                    from_name: s.from_name.clone(),
                    to_user_id: ID(s.to_user.to_string()),
                    to_name: s.to_name.clone(),
                    other_day: s.other_day,
                    other_kind: s.other_kind.as_deref().map(kind_out),
                    note: s.note.clone(),
                })
                .collect(),
            problems: r.problems.iter().map(problem_out).collect(),
            holidays: r
                .holidays
                .iter()
                .map(|(date, name)| Holiday {
                    date: *date,
                    name: (*name).to_owned(),
                })
                .collect(),
        })
    }

    /// Who is on duty today in a group (routed), from its published rotation, with how to
    /// reach them: other capabilities address "the doctor on duty" through this.
    async fn on_call_today(
        &self,
        ctx: &Context<'_>,
        group_id: ID,
    ) -> async_graphql::Result<Vec<OnCall>> {
        let (services, actor) = routed(ctx)?;
        let group_id: GroupId = uuid(ctx, &group_id)?;
        let found = services.on_call_today(&actor, group_id).await.gql(ctx)?;
        Ok(found
            .into_iter()
            .map(|o| OnCall {
                day: o.day,
                kind: match o.kind {
                    Kind::Day => DutyKind::Day,
                    Kind::Night => DutyKind::Night,
                },
                user_id: o.user_id.map(|u| ID(u.to_string())),
                name: o.name,
                contact: o.contact,
            })
            .collect())
    }

    /// My calendar feeds still in use (their addresses are shown only when created).
    async fn calendar_feeds(&self, ctx: &Context<'_>) -> async_graphql::Result<Vec<CalendarFeed>> {
        let (services, viewer) = signed_in(ctx)?;
        let feeds = services.feeds(viewer).await.gql(ctx)?;
        Ok(feeds
            .into_iter()
            .map(|f| CalendarFeed {
                id: ID(f.id.to_string()),
                with_patient_names: f.with_patient_names,
                created_at: f.created_at,
                last_used_at: f.last_used_at,
            })
            .collect())
    }
}

#[derive(Default)]
pub struct CalendarMutation;

#[Object]
impl CalendarMutation {
    /// Puts an event on a group's calendar (routed; any active member).
    async fn create_event(
        &self,
        ctx: &Context<'_>,
        group_id: ID,
        input: EventInput,
    ) -> async_graphql::Result<ID> {
        let (services, actor) = routed(ctx)?;
        let group_id: GroupId = uuid(ctx, &group_id)?;
        let id = services
            .create_event(&actor, group_id, &input.into())
            .await
            .gql(ctx)?;
        Ok(ID(id.to_string()))
    }

    /// Changes an event seen at `version` (its author or a group owner); `CONFLICT` if it
    /// changed meanwhile.
    async fn update_event(
        &self,
        ctx: &Context<'_>,
        id: ID,
        version: i32,
        input: EventInput,
    ) -> async_graphql::Result<bool> {
        let (services, actor) = routed(ctx)?;
        let id: Uuid = uuid(ctx, &id)?;
        services
            .update_event(&actor, id, version, &input.into())
            .await
            .gql(ctx)?;
        Ok(true)
    }

    /// Cancels the occurrence of a series starting on `day`.
    async fn cancel_occurrence(
        &self,
        ctx: &Context<'_>,
        id: ID,
        day: NaiveDate,
    ) -> async_graphql::Result<bool> {
        let (services, actor) = routed(ctx)?;
        let id: Uuid = uuid(ctx, &id)?;
        services.cancel_occurrence(&actor, id, day).await.gql(ctx)?;
        Ok(true)
    }

    async fn delete_event(&self, ctx: &Context<'_>, id: ID) -> async_graphql::Result<bool> {
        let (services, actor) = routed(ctx)?;
        let id: Uuid = uuid(ctx, &id)?;
        services.delete_event(&actor, id).await.gql(ctx)?;
        Ok(true)
    }

    /// Enters an absence of mine (seen by everyone I share a group with; recorded in the
    /// routed association's audit log).
    async fn add_absence(
        &self,
        ctx: &Context<'_>,
        first_day: NaiveDate,
        last_day: Option<NaiveDate>,
        #[graphql(default_with = "AbsencePart::AllDay")] part: AbsencePart,
        #[graphql(default)] note: String,
    ) -> async_graphql::Result<ID> {
        let (services, actor) = routed(ctx)?;
        let span = match part {
            AbsencePart::AllDay => AbsenceSpan::AllDay,
            AbsencePart::Morning => AbsenceSpan::Morning,
            AbsencePart::Afternoon => AbsenceSpan::Afternoon,
        };
        let id = services
            .add_absence(
                &actor,
                first_day,
                last_day.unwrap_or(first_day),
                span,
                &note,
            )
            .await
            .gql(ctx)?;
        Ok(ID(id.to_string()))
    }

    async fn delete_absence(&self, ctx: &Context<'_>, id: ID) -> async_graphql::Result<bool> {
        let (services, actor) = routed(ctx)?;
        let id: Uuid = uuid(ctx, &id)?;
        services.delete_absence(&actor, id).await.gql(ctx)?;
        Ok(true)
    }

    /// Sets up a group's rotation (owners): the kinds of duty on weekdays and on weekends and
    /// holidays, and who takes part with their wishes.
    async fn set_duty_settings(
        &self,
        ctx: &Context<'_>,
        group_id: ID,
        weekday_kinds: Vec<DutyKind>,
        weekend_kinds: Vec<DutyKind>,
        #[graphql(default = true)] saturday_is_weekend: bool,
        participants: Vec<ParticipantInput>,
    ) -> async_graphql::Result<bool> {
        let (services, actor) = routed(ctx)?;
        let group_id: GroupId = uuid(ctx, &group_id)?;
        let mut rows = Vec::with_capacity(participants.len());
        for p in participants {
            rows.push(cal::ParticipantRow {
                user_id: uuid(ctx, &p.user_id)?,
                name: String::new(),
                unavailable_weekdays: bits(p.unavailable_weekdays),
                preferred_weekdays: bits(p.preferred_weekdays),
                max_per_month: p
                    .max_per_month
                    .map(|m| i16::try_from(m).unwrap_or(i16::MAX)),
                no_nights: p.no_nights,
                contact: p.contact,
            });
        }
        let settings = musubi_db::calendar::DutySettingsRow {
            weekday_kinds: kinds(&weekday_kinds),
            weekend_kinds: kinds(&weekend_kinds),
            saturday_is_weekend,
        };
        services
            .set_duty_settings(&actor, group_id, &settings, &rows)
            .await
            .gql(ctx)?;
        Ok(true)
    }

    /// Drafts a month (owners; `month`: any day in it), replacing an earlier draft. `seed`
    /// picks among equally fair drafts.
    async fn draft_rotation(
        &self,
        ctx: &Context<'_>,
        group_id: ID,
        month: NaiveDate,
        #[graphql(default)] seed: i32,
    ) -> async_graphql::Result<bool> {
        let (services, actor) = routed(ctx)?;
        let group_id: GroupId = uuid(ctx, &group_id)?;
        services
            .draft_rotation(&actor, group_id, month, u64::from(seed.unsigned_abs()))
            .await
            .gql(ctx)?;
        Ok(true)
    }

    /// Assigns one slot by hand (owners); no `userId` leaves it uncovered.
    async fn assign_duty(
        &self,
        ctx: &Context<'_>,
        group_id: ID,
        day: NaiveDate,
        kind: DutyKind,
        user_id: Option<ID>,
    ) -> async_graphql::Result<bool> {
        let (services, actor) = routed(ctx)?;
        let group_id: GroupId = uuid(ctx, &group_id)?;
        let user = match user_id {
            Some(u) => Some(uuid::<PersonId>(ctx, &u)?),
            None => None,
        };
        services
            .assign_duty(&actor, group_id, day, kind.into(), user)
            .await
            .gql(ctx)?;
        Ok(true)
    }

    /// Publishes a month (owners), optionally linking the topic where it is discussed.
    async fn publish_rotation(
        &self,
        ctx: &Context<'_>,
        group_id: ID,
        month: NaiveDate,
        topic_id: Option<ID>,
    ) -> async_graphql::Result<bool> {
        let (services, actor) = routed(ctx)?;
        let group_id: GroupId = uuid(ctx, &group_id)?;
        let topic = match topic_id {
            Some(t) => Some(uuid::<Uuid>(ctx, &t)?),
            None => None,
        };
        services
            .publish_rotation(&actor, group_id, month, topic)
            .await
            .gql(ctx)?;
        Ok(true)
    }

    /// Asks a colleague to take one of my published slots (or to exchange it for one of
    /// theirs: `otherDay` with `otherKind`).
    #[allow(clippy::too_many_arguments)]
    async fn request_swap(
        &self,
        ctx: &Context<'_>,
        group_id: ID,
        day: NaiveDate,
        kind: DutyKind,
        to_user_id: ID,
        other_day: Option<NaiveDate>,
        other_kind: Option<DutyKind>,
        #[graphql(default)] note: String,
    ) -> async_graphql::Result<ID> {
        let (services, actor) = routed(ctx)?;
        let group_id: GroupId = uuid(ctx, &group_id)?;
        let to: PersonId = uuid(ctx, &to_user_id)?;
        let other = match (other_day, other_kind) {
            (Some(d), Some(k)) => Some((d, k.into())),
            (None, None) => None,
            _ => {
                return Err(AppError::invalid(
                    "otherKind",
                    "otherDay and otherKind go together",
                ))
                .gql(ctx)
            }
        };
        let id = services
            .request_swap(&actor, group_id, day, kind.into(), to, other, &note)
            .await
            .gql(ctx)?;
        Ok(ID(id.to_string()))
    }

    /// Accepts or declines a request made to me, or withdraws mine.
    async fn answer_swap(
        &self,
        ctx: &Context<'_>,
        group_id: ID,
        swap_id: ID,
        answer: SwapAnswer,
    ) -> async_graphql::Result<bool> {
        let (services, actor) = routed(ctx)?;
        let group_id: GroupId = uuid(ctx, &group_id)?;
        let swap_id: Uuid = uuid(ctx, &swap_id)?;
        let answer = match answer {
            SwapAnswer::Accept => cal::SwapAnswer::Accept,
            SwapAnswer::Decline => cal::SwapAnswer::Decline,
            SwapAnswer::Withdraw => cal::SwapAnswer::Withdraw,
        };
        services
            .answer_swap(&actor, group_id, swap_id, answer)
            .await
            .gql(ctx)?;
        Ok(true)
    }

    /// A new personal iCalendar feed (at most five): subscribe to its address from a phone's
    /// calendar. Patient groups' names and events' titles in them appear only with
    /// `withPatientNames`.
    async fn create_calendar_feed(
        &self,
        ctx: &Context<'_>,
        #[graphql(default)] with_patient_names: bool,
    ) -> async_graphql::Result<NewCalendarFeed> {
        let (services, actor) = routed(ctx)?;
        let (id, token) = services
            .create_feed(&actor, with_patient_names)
            .await
            .gql(ctx)?;
        Ok(NewCalendarFeed {
            id: ID(id.to_string()),
            path: format!("/calendar/feed/{token}.ics"),
        })
    }

    async fn revoke_calendar_feed(&self, ctx: &Context<'_>, id: ID) -> async_graphql::Result<bool> {
        let (services, actor) = routed(ctx)?;
        let id: Uuid = uuid(ctx, &id)?;
        services.revoke_feed(&actor, id).await.gql(ctx)?;
        Ok(true)
    }
}
