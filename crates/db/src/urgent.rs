//! 至急 requests on comments (migration `tenant/0011_urgent.sql`): who is asked, the stage
//! reached, the timeline, and who is on duty. Callers decide who may do what.

use crate::DbResult;
use chrono::{DateTime, NaiveDate, Utc};
use musubi_types::{CommentId, GroupId, PersonId, TopicId};
use sqlx::PgConnection;

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct UrgentRow {
    pub comment_id: CommentId,
    pub group_id: GroupId,
    pub topic_id: TopicId,
    pub author_id: PersonId,
    pub created_at: DateTime<Utc>,
    pub stage: String,
    pub remind_at: DateTime<Utc>,
    pub escalate_at: DateTime<Utc>,
    pub acknowledged_by: Option<PersonId>,
    pub acknowledged_at: Option<DateTime<Utc>>,
}

const URGENT_COLUMNS: &str = "comment_id, group_id, topic_id, author_id, created_at, stage, \
     remind_at, escalate_at, acknowledged_by, acknowledged_at";

/// The association's time to acknowledge, in minutes.
pub async fn ack_minutes(conn: &mut PgConnection) -> DbResult<i32> {
    Ok(
        sqlx::query_scalar("SELECT urgent_ack_minutes FROM settings WHERE singleton")
            .fetch_optional(conn)
            .await?
            .unwrap_or(15),
    )
}

#[allow(clippy::too_many_arguments)]
pub async fn insert_request(
    conn: &mut PgConnection,
    comment: CommentId,
    group: GroupId,
    topic: TopicId,
    author: PersonId,
    now: DateTime<Utc>,
    remind_at: DateTime<Utc>,
    escalate_at: DateTime<Utc>,
) -> DbResult<()> {
    sqlx::query(
        "INSERT INTO urgent_requests \
            (comment_id, group_id, topic_id, author_id, created_at, remind_at, escalate_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7)",
    )
    .bind(comment)
    .bind(group)
    .bind(topic)
    .bind(author)
    .bind(now)
    .bind(remind_at)
    .bind(escalate_at)
    .execute(conn)
    .await?;
    Ok(())
}

pub async fn add_recipients(
    conn: &mut PgConnection,
    comment: CommentId,
    people: &[PersonId],
    reason: &str,
    now: DateTime<Utc>,
) -> DbResult<()> {
    let ids: Vec<uuid::Uuid> = people.iter().map(|p| p.uuid()).collect();
    sqlx::query(
        "INSERT INTO urgent_recipients (comment_id, user_id, reason, added_at) \
         SELECT $1, id, $3, $4 FROM unnest($2::uuid[]) AS id ON CONFLICT DO NOTHING",
    )
    .bind(comment)
    .bind(ids)
    .bind(reason)
    .bind(now)
    .execute(conn)
    .await?;
    Ok(())
}

pub async fn add_step(
    conn: &mut PgConnection,
    comment: CommentId,
    step: &str,
    user: Option<PersonId>,
    at: DateTime<Utc>,
) -> DbResult<()> {
    sqlx::query("INSERT INTO urgent_steps (comment_id, step, user_id, at) VALUES ($1, $2, $3, $4)")
        .bind(comment)
        .bind(step)
        .bind(user)
        .bind(at)
        .execute(conn)
        .await?;
    Ok(())
}

pub async fn request(conn: &mut PgConnection, comment: CommentId) -> DbResult<Option<UrgentRow>> {
    Ok(sqlx::query_as(&format!(
        "SELECT {URGENT_COLUMNS} FROM urgent_requests WHERE comment_id = $1"
    ))
    .bind(comment)
    .fetch_optional(conn)
    .await?)
}

/// Records the acknowledgement unless there already is one; true when this one counted.
pub async fn acknowledge(
    conn: &mut PgConnection,
    comment: CommentId,
    user: PersonId,
    now: DateTime<Utc>,
) -> DbResult<bool> {
    let done = sqlx::query(
        "UPDATE urgent_requests SET stage = 'acknowledged', acknowledged_by = $2, \
            acknowledged_at = $3 WHERE comment_id = $1 AND stage <> 'acknowledged'",
    )
    .bind(comment)
    .bind(user)
    .bind(now)
    .execute(conn)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// Requests whose next step is due at `now`, locked for this transaction (other replicas skip
/// them).
pub async fn due(
    conn: &mut PgConnection,
    now: DateTime<Utc>,
    limit: i64,
) -> DbResult<Vec<UrgentRow>> {
    Ok(sqlx::query_as(&format!(
        "SELECT {URGENT_COLUMNS} FROM urgent_requests \
         WHERE stage IN ('asked', 'reminded') AND remind_at <= $1 \
           AND (stage = 'asked' OR escalate_at <= $1) \
         ORDER BY remind_at LIMIT $2 FOR UPDATE SKIP LOCKED"
    ))
    .bind(now)
    .bind(limit)
    .fetch_all(conn)
    .await?)
}

pub async fn set_stage(conn: &mut PgConnection, comment: CommentId, stage: &str) -> DbResult<()> {
    sqlx::query("UPDATE urgent_requests SET stage = $2 WHERE comment_id = $1")
        .bind(comment)
        .bind(stage)
        .execute(conn)
        .await?;
    Ok(())
}

pub async fn recipients(conn: &mut PgConnection, comment: CommentId) -> DbResult<Vec<PersonId>> {
    Ok(
        sqlx::query_scalar("SELECT user_id FROM urgent_recipients WHERE comment_id = $1")
            .bind(comment)
            .fetch_all(conn)
            .await?,
    )
}

/// Of `people`, those who are active members of `group` and see a topic of `scope` by
/// `topic_author` (in the order given).
pub async fn who_sees(
    conn: &mut PgConnection,
    group: GroupId,
    scope: i16,
    topic_author: PersonId,
    people: &[PersonId],
) -> DbResult<Vec<PersonId>> {
    let ids: Vec<uuid::Uuid> = people.iter().map(|p| p.uuid()).collect();
    Ok(sqlx::query_scalar(
        "SELECT gm.user_id FROM unnest($4::uuid[]) WITH ORDINALITY AS p(id, n) \
         JOIN core.group_members gm ON gm.group_id = $1 AND gm.user_id = p.id \
              AND gm.status = 'active' \
         JOIN core.users u ON u.id = gm.user_id AND u.status = 'active' \
         WHERE core.scope_bit(u.doctor_kind) & $2 <> 0 OR gm.user_id = $3 \
         ORDER BY p.n",
    )
    .bind(group)
    .bind(scope)
    .bind(topic_author)
    .bind(ids)
    .fetch_all(conn)
    .await?)
}

/// The attending doctor (主治医) of a patient group's register entry.
pub async fn attending(conn: &mut PgConnection, group: GroupId) -> DbResult<Option<PersonId>> {
    Ok(sqlx::query_scalar::<_, Option<PersonId>>(
        "SELECT physician_id FROM patients WHERE group_id = $1",
    )
    .bind(group)
    .fetch_optional(conn)
    .await?
    .flatten())
}

/// Published duty slots of the association's rotations on `from..=to`: (day, kind, doctor).
pub async fn duties_between(
    conn: &mut PgConnection,
    from: NaiveDate,
    to: NaiveDate,
) -> DbResult<Vec<(NaiveDate, String, PersonId)>> {
    Ok(sqlx::query_as(
        "SELECT d.day, d.kind, d.user_id FROM duties d \
         JOIN duty_months m ON m.group_id = d.group_id \
              AND m.month = date_trunc('month', d.day)::date AND m.status = 'published' \
         WHERE d.day BETWEEN $1 AND $2 AND d.user_id IS NOT NULL \
         ORDER BY d.day, d.kind, d.group_id",
    )
    .bind(from)
    .bind(to)
    .fetch_all(conn)
    .await?)
}

/// What the pages show of the requests on some comments.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct StepRow {
    pub comment_id: CommentId,
    pub step: String,
    pub user_id: Option<PersonId>,
    pub user_name: Option<String>,
    pub at: DateTime<Utc>,
}

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct RecipientRow {
    pub comment_id: CommentId,
    pub user_id: PersonId,
    pub name: String,
    pub reason: String,
}

/// The requests of a topic with their recipients and steps.
pub async fn of_topic(
    conn: &mut PgConnection,
    topic: TopicId,
) -> DbResult<(Vec<UrgentRow>, Vec<RecipientRow>, Vec<StepRow>)> {
    let requests: Vec<UrgentRow> = sqlx::query_as(&format!(
        "SELECT {URGENT_COLUMNS} FROM urgent_requests WHERE topic_id = $1 ORDER BY created_at"
    ))
    .bind(topic)
    .fetch_all(&mut *conn)
    .await?;
    let ids: Vec<uuid::Uuid> = requests.iter().map(|r| r.comment_id.uuid()).collect();
    let recipients = sqlx::query_as(
        "SELECT r.comment_id, r.user_id, u.name, r.reason FROM urgent_recipients r \
         JOIN core.users u ON u.id = r.user_id WHERE r.comment_id = ANY($1) \
         ORDER BY r.added_at, u.name_kana",
    )
    .bind(&ids)
    .fetch_all(&mut *conn)
    .await?;
    let steps = sqlx::query_as(
        "SELECT s.comment_id, s.step, s.user_id, u.name AS user_name, s.at FROM urgent_steps s \
         LEFT JOIN core.users u ON u.id = s.user_id WHERE s.comment_id = ANY($1) \
         ORDER BY s.id",
    )
    .bind(&ids)
    .fetch_all(conn)
    .await?;
    Ok((requests, recipients, steps))
}
