//! Calendars (migrations `tenant/0009_calendar.sql`, `core/0012_calendar.sql`): group events,
//! people's absences, the duty rotation and its swaps, and personal feeds. Callers decide who
//! may see or change what; these functions only read and write.

use crate::DbResult;
use chrono::{DateTime, NaiveDate, NaiveTime, Utc};
use musubi_types::{GroupId, PersonId};
use sqlx::PgConnection;
use uuid::Uuid;

// --- Events ----------------------------------------------------------------------------------

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct EventRow {
    pub id: Uuid,
    pub group_id: GroupId,
    pub category: String,
    pub title: String,
    pub first_day: NaiveDate,
    pub last_day: NaiveDate,
    pub starts_at: Option<NaiveTime>,
    pub ends_at: Option<NaiveTime>,
    pub rrule: Option<String>,
    pub until_day: Option<NaiveDate>,
    pub place: String,
    pub notes: String,
    pub created_by: PersonId,
    pub creator_name: Option<String>,
    pub updated_at: DateTime<Utc>,
    pub version: i32,
    /// Cancelled occurrences of a series.
    pub exceptions: Vec<NaiveDate>,
}

/// An event's fields as written.
#[derive(Debug, Clone)]
pub struct EventFields<'a> {
    pub category: &'a str,
    pub title: &'a str,
    pub first_day: NaiveDate,
    pub last_day: NaiveDate,
    pub starts_at: Option<NaiveTime>,
    pub ends_at: Option<NaiveTime>,
    pub rrule: Option<&'a str>,
    pub until_day: Option<NaiveDate>,
    pub place: &'a str,
    pub notes: &'a str,
}

const EVENT_COLUMNS: &str = "e.id, e.group_id, e.category, e.title, e.first_day, e.last_day, \
     e.starts_at, e.ends_at, e.rrule, e.until_day, e.place, e.notes, e.created_by, \
     (SELECT u.name FROM core.users u WHERE u.id = e.created_by) AS creator_name, \
     e.updated_at, e.version, \
     ARRAY(SELECT x.day FROM calendar_exceptions x WHERE x.event_id = e.id ORDER BY x.day) \
         AS exceptions";

pub async fn insert_calendar_event(
    conn: &mut PgConnection,
    id: Uuid,
    group: GroupId,
    by: PersonId,
    f: &EventFields<'_>,
) -> DbResult<()> {
    sqlx::query(
        "INSERT INTO calendar_events (id, group_id, category, title, first_day, last_day, \
             starts_at, ends_at, rrule, until_day, place, notes, created_by) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)",
    )
    .bind(id)
    .bind(group)
    .bind(f.category)
    .bind(f.title)
    .bind(f.first_day)
    .bind(f.last_day)
    .bind(f.starts_at)
    .bind(f.ends_at)
    .bind(f.rrule)
    .bind(f.until_day)
    .bind(f.place)
    .bind(f.notes)
    .bind(by)
    .execute(conn)
    .await?;
    Ok(())
}

/// Rewrites an event if it is still at `version`; false when someone changed it meanwhile.
/// Cancelled occurrences are kept only while the rule and first day stay the same.
pub async fn update_event(
    conn: &mut PgConnection,
    id: Uuid,
    version: i32,
    f: &EventFields<'_>,
) -> DbResult<bool> {
    let changed: Option<(bool,)> = sqlx::query_as(
        "WITH old AS (SELECT rrule, first_day FROM calendar_events WHERE id = $1 FOR UPDATE) \
         UPDATE calendar_events e SET category = $3, title = $4, first_day = $5, last_day = $6, \
             starts_at = $7, ends_at = $8, rrule = $9, until_day = $10, place = $11, \
             notes = $12, updated_at = now(), version = e.version + 1 \
         FROM old WHERE e.id = $1 AND e.version = $2 \
         RETURNING (old.rrule IS DISTINCT FROM e.rrule OR old.first_day <> e.first_day)",
    )
    .bind(id)
    .bind(version)
    .bind(f.category)
    .bind(f.title)
    .bind(f.first_day)
    .bind(f.last_day)
    .bind(f.starts_at)
    .bind(f.ends_at)
    .bind(f.rrule)
    .bind(f.until_day)
    .bind(f.place)
    .bind(f.notes)
    .fetch_optional(&mut *conn)
    .await?;
    match changed {
        None => Ok(false),
        Some((series_changed,)) => {
            if series_changed {
                sqlx::query("DELETE FROM calendar_exceptions WHERE event_id = $1")
                    .bind(id)
                    .execute(conn)
                    .await?;
            }
            Ok(true)
        }
    }
}

pub async fn delete_event(conn: &mut PgConnection, id: Uuid) -> DbResult<bool> {
    let n = sqlx::query("DELETE FROM calendar_events WHERE id = $1")
        .bind(id)
        .execute(conn)
        .await?
        .rows_affected();
    Ok(n > 0)
}

/// Cancels one occurrence of a series.
pub async fn add_exception(conn: &mut PgConnection, id: Uuid, day: NaiveDate) -> DbResult<()> {
    sqlx::query(
        "INSERT INTO calendar_exceptions (event_id, day) VALUES ($1, $2) ON CONFLICT DO NOTHING",
    )
    .bind(id)
    .bind(day)
    .execute(&mut *conn)
    .await?;
    sqlx::query(
        "UPDATE calendar_events SET version = version + 1, updated_at = now() WHERE id = $1",
    )
    .bind(id)
    .execute(conn)
    .await?;
    Ok(())
}

pub async fn event(conn: &mut PgConnection, id: Uuid) -> DbResult<Option<EventRow>> {
    Ok(sqlx::query_as(&format!(
        "SELECT {EVENT_COLUMNS} FROM calendar_events e WHERE e.id = $1"
    ))
    .bind(id)
    .fetch_optional(conn)
    .await?)
}

/// Events of these groups that may occur between `from` and `to` (inclusive): single events
/// overlapping the range, and series that start before its end and run into it (the caller
/// expands them).
pub async fn events_between(
    conn: &mut PgConnection,
    groups: &[GroupId],
    from: NaiveDate,
    to: NaiveDate,
) -> DbResult<Vec<EventRow>> {
    let ids: Vec<Uuid> = groups.iter().map(|g| g.uuid()).collect();
    Ok(sqlx::query_as(&format!(
        "SELECT {EVENT_COLUMNS} FROM calendar_events e \
         WHERE e.group_id = ANY ($1) AND e.first_day <= $3 \
           AND ((e.rrule IS NULL AND e.last_day >= $2) \
                OR (e.rrule IS NOT NULL \
                     AND (e.until_day IS NULL OR e.until_day + (e.last_day - e.first_day) >= $2))) \
         ORDER BY e.first_day, e.starts_at NULLS FIRST, e.id"
    ))
    .bind(&ids)
    .bind(from)
    .bind(to)
    .fetch_all(conn)
    .await?)
}

// --- Absences (core) -------------------------------------------------------------------------

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct AbsenceRow {
    pub id: Uuid,
    pub user_id: PersonId,
    pub user_name: String,
    pub first_day: NaiveDate,
    pub last_day: NaiveDate,
    /// `all`, `am` or `pm`.
    pub part: String,
    pub note: String,
}

const ABSENCE_COLUMNS: &str = "a.id, a.user_id, u.name AS user_name, a.first_day, a.last_day, \
     a.part, a.note";

pub async fn insert_absence(
    conn: &mut PgConnection,
    id: Uuid,
    user: PersonId,
    first_day: NaiveDate,
    last_day: NaiveDate,
    part: &str,
    note: &str,
) -> DbResult<()> {
    sqlx::query(
        "INSERT INTO core.absences (id, user_id, first_day, last_day, part, note) \
         VALUES ($1, $2, $3, $4, $5, $6)",
    )
    .bind(id)
    .bind(user)
    .bind(first_day)
    .bind(last_day)
    .bind(part)
    .bind(note)
    .execute(conn)
    .await?;
    Ok(())
}

/// Deletes `user`'s own absence; false if there is none by that id.
pub async fn delete_absence(conn: &mut PgConnection, id: Uuid, user: PersonId) -> DbResult<bool> {
    let n = sqlx::query("DELETE FROM core.absences WHERE id = $1 AND user_id = $2")
        .bind(id)
        .bind(user)
        .execute(conn)
        .await?
        .rows_affected();
    Ok(n > 0)
}

pub async fn absence(conn: &mut PgConnection, id: Uuid) -> DbResult<Option<AbsenceRow>> {
    Ok(sqlx::query_as(&format!(
        "SELECT {ABSENCE_COLUMNS} FROM core.absences a JOIN core.users u ON u.id = a.user_id \
         WHERE a.id = $1"
    ))
    .bind(id)
    .fetch_optional(conn)
    .await?)
}

/// Absences of these people overlapping `from..=to`.
pub async fn absences_of(
    conn: &mut PgConnection,
    people: &[PersonId],
    from: NaiveDate,
    to: NaiveDate,
) -> DbResult<Vec<AbsenceRow>> {
    let ids: Vec<Uuid> = people.iter().map(|p| p.uuid()).collect();
    Ok(sqlx::query_as(&format!(
        "SELECT {ABSENCE_COLUMNS} FROM core.absences a JOIN core.users u ON u.id = a.user_id \
         WHERE a.user_id = ANY ($1) AND a.first_day <= $3 AND a.last_day >= $2 \
         ORDER BY a.first_day, u.name, a.id"
    ))
    .bind(&ids)
    .bind(from)
    .bind(to)
    .fetch_all(conn)
    .await?)
}

/// Absences overlapping `from..=to` of `me` and of everyone who shares an active group with
/// `me` (where they are active too). The people come first (a few dozen), then their absences
/// by index: asking each absence whether its person shares a group read every absence of the
/// deployment (20–40 ms at the medium benchmark's scale, 0.6 ms this way).
pub async fn absences_visible_to(
    conn: &mut PgConnection,
    me: PersonId,
    from: NaiveDate,
    to: NaiveDate,
) -> DbResult<Vec<AbsenceRow>> {
    Ok(sqlx::query_as(&format!(
        "WITH people AS ( \
             SELECT $1::uuid AS user_id \
             UNION \
             SELECT other.user_id FROM core.group_members mine \
             JOIN core.group_members other ON other.group_id = mine.group_id \
             WHERE mine.user_id = $1 AND mine.status = 'active' \
               AND (mine.until IS NULL OR mine.until > now()) \
               AND other.status = 'active' AND (other.until IS NULL OR other.until > now())) \
         SELECT {ABSENCE_COLUMNS} FROM people p \
         JOIN core.absences a ON a.user_id = p.user_id AND a.first_day <= $3 AND a.last_day >= $2 \
         JOIN core.users u ON u.id = a.user_id \
         ORDER BY a.first_day, u.name, a.id"
    ))
    .bind(me)
    .bind(from)
    .bind(to)
    .fetch_all(conn)
    .await?)
}

// --- Duty rotation ---------------------------------------------------------------------------

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct DutySettingsRow {
    pub weekday_kinds: Vec<String>,
    pub weekend_kinds: Vec<String>,
    pub saturday_is_weekend: bool,
}

pub async fn duty_settings(
    conn: &mut PgConnection,
    group: GroupId,
) -> DbResult<Option<DutySettingsRow>> {
    Ok(sqlx::query_as(
        "SELECT weekday_kinds, weekend_kinds, saturday_is_weekend FROM duty_settings \
         WHERE group_id = $1",
    )
    .bind(group)
    .fetch_optional(conn)
    .await?)
}

pub async fn put_duty_settings(
    conn: &mut PgConnection,
    group: GroupId,
    s: &DutySettingsRow,
) -> DbResult<()> {
    sqlx::query(
        "INSERT INTO duty_settings (group_id, weekday_kinds, weekend_kinds, saturday_is_weekend) \
         VALUES ($1, $2, $3, $4) \
         ON CONFLICT (group_id) DO UPDATE SET weekday_kinds = EXCLUDED.weekday_kinds, \
             weekend_kinds = EXCLUDED.weekend_kinds, \
             saturday_is_weekend = EXCLUDED.saturday_is_weekend, updated_at = now()",
    )
    .bind(group)
    .bind(&s.weekday_kinds)
    .bind(&s.weekend_kinds)
    .bind(s.saturday_is_weekend)
    .execute(conn)
    .await?;
    Ok(())
}

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct ParticipantRow {
    pub user_id: PersonId,
    pub name: String,
    pub unavailable_weekdays: i16,
    pub preferred_weekdays: i16,
    pub max_per_month: Option<i16>,
    pub no_nights: bool,
    pub contact: String,
}

/// Who takes part, by name.
pub async fn participants(
    conn: &mut PgConnection,
    group: GroupId,
) -> DbResult<Vec<ParticipantRow>> {
    Ok(sqlx::query_as(
        "SELECT p.user_id, u.name, p.unavailable_weekdays, p.preferred_weekdays, \
                p.max_per_month, p.no_nights, p.contact \
         FROM duty_participants p JOIN core.users u ON u.id = p.user_id \
         WHERE p.group_id = $1 ORDER BY u.name_kana, u.name, p.user_id",
    )
    .bind(group)
    .fetch_all(conn)
    .await?)
}

pub async fn put_participant(
    conn: &mut PgConnection,
    group: GroupId,
    p: &ParticipantRow,
) -> DbResult<()> {
    sqlx::query(
        "INSERT INTO duty_participants (group_id, user_id, unavailable_weekdays, \
             preferred_weekdays, max_per_month, no_nights, contact) \
         VALUES ($1, $2, $3, $4, $5, $6, $7) \
         ON CONFLICT (group_id, user_id) DO UPDATE SET \
             unavailable_weekdays = EXCLUDED.unavailable_weekdays, \
             preferred_weekdays = EXCLUDED.preferred_weekdays, \
             max_per_month = EXCLUDED.max_per_month, no_nights = EXCLUDED.no_nights, \
             contact = EXCLUDED.contact",
    )
    .bind(group)
    .bind(p.user_id)
    .bind(p.unavailable_weekdays)
    .bind(p.preferred_weekdays)
    .bind(p.max_per_month)
    .bind(p.no_nights)
    .bind(&p.contact)
    .execute(conn)
    .await?;
    Ok(())
}

pub async fn remove_participant(
    conn: &mut PgConnection,
    group: GroupId,
    user: PersonId,
) -> DbResult<bool> {
    let n = sqlx::query("DELETE FROM duty_participants WHERE group_id = $1 AND user_id = $2")
        .bind(group)
        .bind(user)
        .execute(conn)
        .await?
        .rows_affected();
    Ok(n > 0)
}

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct DutyMonthRow {
    pub month: NaiveDate,
    /// `draft` or `published`.
    pub status: String,
    pub topic_id: Option<Uuid>,
    pub published_at: Option<DateTime<Utc>>,
    pub version: i32,
}

pub async fn duty_month(
    conn: &mut PgConnection,
    group: GroupId,
    month: NaiveDate,
) -> DbResult<Option<DutyMonthRow>> {
    Ok(sqlx::query_as(
        "SELECT month, status, topic_id, published_at, version FROM duty_months \
         WHERE group_id = $1 AND month = $2",
    )
    .bind(group)
    .bind(month)
    .fetch_optional(conn)
    .await?)
}

/// Locks a month's row (creating it as a draft): changes to one month's slots are serialised.
pub async fn lock_duty_month(
    conn: &mut PgConnection,
    group: GroupId,
    month: NaiveDate,
) -> DbResult<DutyMonthRow> {
    sqlx::query("INSERT INTO duty_months (group_id, month) VALUES ($1, $2) ON CONFLICT DO NOTHING")
        .bind(group)
        .bind(month)
        .execute(&mut *conn)
        .await?;
    Ok(sqlx::query_as(
        "SELECT month, status, topic_id, published_at, version FROM duty_months \
         WHERE group_id = $1 AND month = $2 FOR UPDATE",
    )
    .bind(group)
    .bind(month)
    .fetch_one(conn)
    .await?)
}

pub async fn publish_duty_month(
    conn: &mut PgConnection,
    group: GroupId,
    month: NaiveDate,
    by: PersonId,
) -> DbResult<()> {
    sqlx::query(
        "UPDATE duty_months SET status = 'published', published_at = now(), published_by = $3, \
             version = version + 1 WHERE group_id = $1 AND month = $2",
    )
    .bind(group)
    .bind(month)
    .bind(by)
    .execute(conn)
    .await?;
    Ok(())
}

pub async fn set_duty_month_topic(
    conn: &mut PgConnection,
    group: GroupId,
    month: NaiveDate,
    topic: Option<Uuid>,
) -> DbResult<()> {
    sqlx::query(
        "UPDATE duty_months SET topic_id = $3, version = version + 1 \
         WHERE group_id = $1 AND month = $2",
    )
    .bind(group)
    .bind(month)
    .bind(topic)
    .execute(conn)
    .await?;
    Ok(())
}

/// Marks a month changed (its version goes up).
pub async fn touch_duty_month(
    conn: &mut PgConnection,
    group: GroupId,
    month: NaiveDate,
) -> DbResult<()> {
    sqlx::query("UPDATE duty_months SET version = version + 1 WHERE group_id = $1 AND month = $2")
        .bind(group)
        .bind(month)
        .execute(conn)
        .await?;
    Ok(())
}

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct DutyRow {
    pub group_id: GroupId,
    pub day: NaiveDate,
    /// `day` or `night`.
    pub kind: String,
    /// `weekday`, `weekend` or `holiday`.
    pub class: String,
    pub user_id: Option<PersonId>,
    pub user_name: Option<String>,
    /// The slot's month is published (a draft is seen by the group's owners only).
    pub published: bool,
}

const DUTY_COLUMNS: &str = "d.group_id, d.day, d.kind, d.class, d.user_id, \
     (SELECT u.name FROM core.users u WHERE u.id = d.user_id) AS user_name, \
     EXISTS (SELECT 1 FROM duty_months m WHERE m.group_id = d.group_id \
             AND m.month = date_trunc('month', d.day)::date AND m.status = 'published') \
         AS published";

/// A group's slots between `from` and `to` (inclusive), of any status.
pub async fn duties_between(
    conn: &mut PgConnection,
    group: GroupId,
    from: NaiveDate,
    to: NaiveDate,
) -> DbResult<Vec<DutyRow>> {
    Ok(sqlx::query_as(&format!(
        "SELECT {DUTY_COLUMNS} FROM duties d WHERE d.group_id = $1 AND d.day BETWEEN $2 AND $3 \
         ORDER BY d.day, d.kind"
    ))
    .bind(group)
    .bind(from)
    .bind(to)
    .fetch_all(conn)
    .await?)
}

/// Published slots of these groups between `from` and `to`.
pub async fn published_duties_between(
    conn: &mut PgConnection,
    groups: &[GroupId],
    from: NaiveDate,
    to: NaiveDate,
) -> DbResult<Vec<DutyRow>> {
    let ids: Vec<Uuid> = groups.iter().map(|g| g.uuid()).collect();
    Ok(sqlx::query_as(&format!(
        "SELECT {DUTY_COLUMNS} FROM duties d \
         JOIN duty_months m ON m.group_id = d.group_id \
              AND m.month = date_trunc('month', d.day)::date AND m.status = 'published' \
         WHERE d.group_id = ANY ($1) AND d.day BETWEEN $2 AND $3 \
         ORDER BY d.day, d.kind, d.group_id"
    ))
    .bind(&ids)
    .bind(from)
    .bind(to)
    .fetch_all(conn)
    .await?)
}

/// Replaces a month's slots (`month` is its first day).
pub async fn replace_month_duties(
    conn: &mut PgConnection,
    group: GroupId,
    month: NaiveDate,
    rows: &[(NaiveDate, &str, &str, Option<PersonId>)],
) -> DbResult<()> {
    sqlx::query(
        "DELETE FROM duties WHERE group_id = $1 AND day >= $2 \
           AND day < ($2::date + interval '1 month')",
    )
    .bind(group)
    .bind(month)
    .execute(&mut *conn)
    .await?;
    let days: Vec<NaiveDate> = rows.iter().map(|r| r.0).collect();
    let kinds: Vec<&str> = rows.iter().map(|r| r.1).collect();
    let classes: Vec<&str> = rows.iter().map(|r| r.2).collect();
    let users: Vec<Option<Uuid>> = rows.iter().map(|r| r.3.map(|p| p.uuid())).collect();
    sqlx::query(
        "INSERT INTO duties (group_id, day, kind, class, user_id) \
         SELECT $1, * FROM unnest($2::date[], $3::text[], $4::text[], $5::uuid[])",
    )
    .bind(group)
    .bind(&days)
    .bind(&kinds)
    .bind(&classes)
    .bind(&users)
    .execute(conn)
    .await?;
    Ok(())
}

/// Who covers one slot; false if the slot does not exist.
pub async fn set_duty(
    conn: &mut PgConnection,
    group: GroupId,
    day: NaiveDate,
    kind: &str,
    user: Option<PersonId>,
) -> DbResult<bool> {
    let n = sqlx::query(
        "UPDATE duties SET user_id = $4 WHERE group_id = $1 AND day = $2 AND kind = $3",
    )
    .bind(group)
    .bind(day)
    .bind(kind)
    .bind(user)
    .execute(conn)
    .await?
    .rows_affected();
    Ok(n > 0)
}

/// Earlier published slots per person (for fairness across months): `(user, class, kind,
/// count)` of the `months` months before `month`.
pub async fn duty_history(
    conn: &mut PgConnection,
    group: GroupId,
    month: NaiveDate,
    months: i32,
) -> DbResult<Vec<(PersonId, String, String, i64)>> {
    Ok(sqlx::query_as(
        "SELECT d.user_id, d.class, d.kind, count(*) FROM duties d \
         JOIN duty_months m ON m.group_id = d.group_id \
              AND m.month = date_trunc('month', d.day)::date AND m.status = 'published' \
         WHERE d.group_id = $1 AND d.user_id IS NOT NULL \
           AND d.day >= ($2::date - make_interval(months => $3)) AND d.day < $2 \
         GROUP BY d.user_id, d.class, d.kind",
    )
    .bind(group)
    .bind(month)
    .bind(months)
    .fetch_all(conn)
    .await?)
}

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct SwapRow {
    pub id: Uuid,
    pub group_id: GroupId,
    pub day: NaiveDate,
    pub kind: String,
    pub from_user: PersonId,
    pub from_name: Option<String>,
    pub to_user: PersonId,
    pub to_name: Option<String>,
    pub other_day: Option<NaiveDate>,
    pub other_kind: Option<String>,
    pub status: String,
    pub note: String,
    pub created_at: DateTime<Utc>,
}

const SWAP_COLUMNS: &str = "s.id, s.group_id, s.day, s.kind, s.from_user, \
     (SELECT u.name FROM core.users u WHERE u.id = s.from_user) AS from_name, s.to_user, \
     (SELECT u.name FROM core.users u WHERE u.id = s.to_user) AS to_name, s.other_day, \
     s.other_kind, s.status, s.note, s.created_at";

#[allow(clippy::too_many_arguments)]
pub async fn insert_swap(
    conn: &mut PgConnection,
    id: Uuid,
    group: GroupId,
    day: NaiveDate,
    kind: &str,
    from: PersonId,
    to: PersonId,
    other: Option<(NaiveDate, &str)>,
    note: &str,
) -> DbResult<bool> {
    let n = sqlx::query(
        "INSERT INTO duty_swaps (id, group_id, day, kind, from_user, to_user, other_day, \
             other_kind, note) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) \
         ON CONFLICT (group_id, day, kind) WHERE status = 'requested' DO NOTHING",
    )
    .bind(id)
    .bind(group)
    .bind(day)
    .bind(kind)
    .bind(from)
    .bind(to)
    .bind(other.map(|o| o.0))
    .bind(other.map(|o| o.1))
    .bind(note)
    .execute(conn)
    .await?
    .rows_affected();
    Ok(n > 0)
}

/// A swap, locked for a decision.
pub async fn swap_for_update(conn: &mut PgConnection, id: Uuid) -> DbResult<Option<SwapRow>> {
    Ok(sqlx::query_as(&format!(
        "SELECT {SWAP_COLUMNS} FROM duty_swaps s WHERE s.id = $1 FOR UPDATE"
    ))
    .bind(id)
    .fetch_optional(conn)
    .await?)
}

pub async fn decide_swap(conn: &mut PgConnection, id: Uuid, status: &str) -> DbResult<()> {
    sqlx::query("UPDATE duty_swaps SET status = $2, decided_at = now() WHERE id = $1")
        .bind(id)
        .bind(status)
        .execute(conn)
        .await?;
    Ok(())
}

/// Open requests of a group, oldest first.
pub async fn open_swaps(conn: &mut PgConnection, group: GroupId) -> DbResult<Vec<SwapRow>> {
    Ok(sqlx::query_as(&format!(
        "SELECT {SWAP_COLUMNS} FROM duty_swaps s WHERE s.group_id = $1 AND s.status = 'requested' \
         ORDER BY s.created_at, s.id"
    ))
    .bind(group)
    .fetch_all(conn)
    .await?)
}

/// Requests of a slot still open are void once the slot changes hands otherwise.
pub async fn cancel_open_swaps_of(
    conn: &mut PgConnection,
    group: GroupId,
    day: NaiveDate,
    kind: &str,
) -> DbResult<()> {
    sqlx::query(
        "UPDATE duty_swaps SET status = 'cancelled', decided_at = now() \
         WHERE group_id = $1 AND status = 'requested' \
           AND ((day = $2 AND kind = $3) OR (other_day = $2 AND other_kind = $3))",
    )
    .bind(group)
    .bind(day)
    .bind(kind)
    .execute(conn)
    .await?;
    Ok(())
}

// --- Feeds (core) ----------------------------------------------------------------------------

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct FeedRow {
    pub id: Uuid,
    pub user_id: PersonId,
    pub with_patient_names: bool,
    pub created_at: DateTime<Utc>,
    pub last_used_at: Option<DateTime<Utc>>,
}

pub async fn insert_feed(
    conn: &mut PgConnection,
    id: Uuid,
    user: PersonId,
    token_hash: &[u8],
    with_patient_names: bool,
) -> DbResult<()> {
    sqlx::query(
        "INSERT INTO core.calendar_feeds (id, user_id, token_hash, with_patient_names) \
         VALUES ($1, $2, $3, $4)",
    )
    .bind(id)
    .bind(user)
    .bind(token_hash)
    .bind(with_patient_names)
    .execute(conn)
    .await?;
    Ok(())
}

/// The person's feeds still in use.
pub async fn feeds_of(conn: &mut PgConnection, user: PersonId) -> DbResult<Vec<FeedRow>> {
    Ok(sqlx::query_as(
        "SELECT id, user_id, with_patient_names, created_at, last_used_at \
         FROM core.calendar_feeds WHERE user_id = $1 AND revoked_at IS NULL \
         ORDER BY created_at, id",
    )
    .bind(user)
    .fetch_all(conn)
    .await?)
}

pub async fn revoke_feed(conn: &mut PgConnection, id: Uuid, user: PersonId) -> DbResult<bool> {
    let n = sqlx::query(
        "UPDATE core.calendar_feeds SET revoked_at = now() \
         WHERE id = $1 AND user_id = $2 AND revoked_at IS NULL",
    )
    .bind(id)
    .bind(user)
    .execute(conn)
    .await?
    .rows_affected();
    Ok(n > 0)
}

/// The feed of a token's hash, if not revoked (and notes its use, at most once a minute).
pub async fn feed_by_hash(conn: &mut PgConnection, hash: &[u8]) -> DbResult<Option<FeedRow>> {
    let touched: Option<FeedRow> = sqlx::query_as(
        "UPDATE core.calendar_feeds SET last_used_at = now() \
         WHERE token_hash = $1 AND revoked_at IS NULL \
           AND (last_used_at IS NULL OR last_used_at < now() - interval '1 minute') \
         RETURNING id, user_id, with_patient_names, created_at, last_used_at",
    )
    .bind(hash)
    .fetch_optional(&mut *conn)
    .await?;
    if touched.is_some() {
        return Ok(touched);
    }
    Ok(sqlx::query_as(
        "SELECT id, user_id, with_patient_names, created_at, last_used_at \
         FROM core.calendar_feeds WHERE token_hash = $1 AND revoked_at IS NULL",
    )
    .bind(hash)
    .fetch_optional(conn)
    .await?)
}

/// The person's name if they may still use Musubi (active, with an active membership).
pub async fn active_person_name(
    conn: &mut PgConnection,
    user: PersonId,
) -> DbResult<Option<String>> {
    Ok(sqlx::query_scalar(
        "SELECT name FROM core.users WHERE id = $1 AND status = 'active' \
           AND EXISTS (SELECT 1 FROM core.memberships m \
                       WHERE m.user_id = $1 AND m.status = 'active')",
    )
    .bind(user)
    .fetch_optional(conn)
    .await?)
}
