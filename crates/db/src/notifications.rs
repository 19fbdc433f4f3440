//! Notification settings, mutes, the digest schedule and the record of what was sent
//! (migrations `core/0013_jobs_notifications.sql`, `tenant/0010_mail_group_names.sql`).
//! Callers decide who may change what; these functions only read and write.

use crate::DbResult;
use chrono::{DateTime, Duration, NaiveTime, Utc};
use musubi_types::{AssociationId, GroupId, PersonId};
use sqlx::PgConnection;

/// A person's e-mail choice (defaults when they never chose).
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct SettingsRow {
    pub email_mode: String,
    pub daily_at: NaiveTime,
    pub told_until: DateTime<Utc>,
    pub last_sent_at: Option<DateTime<Utc>>,
}

pub async fn settings(conn: &mut PgConnection, user: PersonId) -> DbResult<Option<SettingsRow>> {
    Ok(sqlx::query_as(
        "SELECT email_mode, daily_at, told_until, last_sent_at \
         FROM core.notification_settings WHERE user_id = $1",
    )
    .bind(user)
    .fetch_optional(conn)
    .await?)
}

/// Saves a person's choice. Turning mail on again starts from `now`: what came while it was
/// off is not told of afterwards.
pub async fn save_settings(
    conn: &mut PgConnection,
    user: PersonId,
    mode: &str,
    daily_at: NaiveTime,
    now: DateTime<Utc>,
) -> DbResult<()> {
    sqlx::query(
        "INSERT INTO core.notification_settings AS s \
            (user_id, email_mode, daily_at, told_until, updated_at) \
         VALUES ($1, $2, $3, $4, $4) \
         ON CONFLICT (user_id) DO UPDATE SET email_mode = $2, daily_at = $3, updated_at = $4, \
            told_until = CASE WHEN s.email_mode = 'off' AND $2 <> 'off' THEN $4 \
                              ELSE s.told_until END, \
            pending_since = CASE WHEN $2 = 'off' THEN NULL ELSE s.pending_since END",
    )
    .bind(user)
    .bind(mode)
    .bind(daily_at)
    .bind(now)
    .execute(conn)
    .await?;
    Ok(())
}

pub async fn mutes(conn: &mut PgConnection, user: PersonId) -> DbResult<Vec<GroupId>> {
    Ok(
        sqlx::query_scalar("SELECT group_id FROM core.notification_mutes WHERE user_id = $1")
            .bind(user)
            .fetch_all(conn)
            .await?,
    )
}

pub async fn set_mute(
    conn: &mut PgConnection,
    user: PersonId,
    group: GroupId,
    muted: bool,
) -> DbResult<()> {
    let sql = if muted {
        "INSERT INTO core.notification_mutes (user_id, group_id) VALUES ($1, $2) \
         ON CONFLICT DO NOTHING"
    } else {
        "DELETE FROM core.notification_mutes WHERE user_id = $1 AND group_id = $2"
    };
    sqlx::query(sql)
        .bind(user)
        .bind(group)
        .execute(conn)
        .await?;
    Ok(())
}

// --- The schedule ------------------------------------------------------------------------------

/// Where the schedule stopped looking at an association's activity.
pub async fn cursor(
    conn: &mut PgConnection,
    association: AssociationId,
) -> DbResult<Option<DateTime<Utc>>> {
    Ok(sqlx::query_scalar(
        "SELECT seen_until FROM core.notification_cursors WHERE association_id = $1",
    )
    .bind(association)
    .fetch_optional(conn)
    .await?)
}

pub async fn set_cursor(
    conn: &mut PgConnection,
    association: AssociationId,
    seen_until: DateTime<Utc>,
) -> DbResult<()> {
    sqlx::query(
        "INSERT INTO core.notification_cursors (association_id, seen_until) VALUES ($1, $2) \
         ON CONFLICT (association_id) DO UPDATE SET seen_until = $2",
    )
    .bind(association)
    .bind(seen_until)
    .execute(conn)
    .await?;
    Ok(())
}

/// In an association's schema: people with unread comments that arrived after `since`, and
/// the newest arrival of each. Starts from the groups with activity since then.
pub async fn news_since(
    conn: &mut PgConnection,
    since: DateTime<Utc>,
) -> DbResult<Vec<(PersonId, DateTime<Utc>)>> {
    Ok(sqlx::query_as(
        "SELECT u.user_id, max(u.last_at) FROM groups g \
         JOIN core.group_members gm ON gm.group_id = g.id AND gm.status = 'active' \
         JOIN unread u ON u.user_id = gm.user_id AND u.group_id = g.id \
         WHERE g.last_activity_at > $1 AND u.last_at > $1 \
         GROUP BY u.user_id",
    )
    .bind(since)
    .fetch_all(conn)
    .await?)
}

/// Marks people pending whose news is newer than what they were told of (and who have mail
/// on). People without settings get the defaults, told of everything up to `since`.
pub async fn mark_pending(
    conn: &mut PgConnection,
    news: &[(PersonId, DateTime<Utc>)],
    since: DateTime<Utc>,
    now: DateTime<Utc>,
) -> DbResult<u64> {
    let ids: Vec<uuid::Uuid> = news.iter().map(|(u, _)| u.uuid()).collect();
    let newest: Vec<DateTime<Utc>> = news.iter().map(|(_, at)| *at).collect();
    sqlx::query(
        "INSERT INTO core.notification_settings (user_id, told_until) \
         SELECT u.id, $2 FROM core.users u WHERE u.id = ANY($1) AND u.status = 'active' \
         ON CONFLICT (user_id) DO NOTHING",
    )
    .bind(&ids)
    .bind(since)
    .execute(&mut *conn)
    .await?;
    Ok(sqlx::query(
        "UPDATE core.notification_settings s SET pending_since = $3 \
         FROM unnest($1::uuid[], $2::timestamptz[]) AS n(id, newest) \
         WHERE s.user_id = n.id AND s.pending_since IS NULL AND n.newest > s.told_until \
           AND (s.email_mode <> 'off' \
                OR EXISTS (SELECT 1 FROM core.push_subscriptions p WHERE p.user_id = s.user_id))",
    )
    .bind(&ids)
    .bind(&newest)
    .bind(now)
    .execute(conn)
    .await?
    .rows_affected())
}

/// Enqueues a digest for each person whose mail is due at `now` and clears their pending
/// mark, in one statement: `immediate` (and `off`, whose digest only pushes to the person's
/// devices) once `batch` has passed since the first news;
/// `hourly` on the hour; `daily` at their time of day (Asia/Tokyo). Returns the new jobs.
pub async fn enqueue_due_digests(
    conn: &mut PgConnection,
    now: DateTime<Utc>,
    batch: Duration,
    limit: i64,
) -> DbResult<Vec<i64>> {
    Ok(sqlx::query_scalar(
        "WITH due AS ( \
            SELECT s.user_id, s.pending_since FROM core.notification_settings s \
            WHERE s.pending_since IS NOT NULL AND ( \
                (s.email_mode IN ('immediate', 'off') AND s.pending_since <= $1::timestamptz - $2) \
             OR (s.email_mode = 'hourly' AND s.pending_since < date_trunc('hour', $1) \
                 AND (s.last_sent_at IS NULL OR s.last_sent_at < date_trunc('hour', $1))) \
             OR (s.email_mode = 'daily' AND s.pending_since < ((($1 AT TIME ZONE 'Asia/Tokyo')::date \
                     + s.daily_at) AT TIME ZONE 'Asia/Tokyo') \
                 AND $1 >= ((($1 AT TIME ZONE 'Asia/Tokyo')::date + s.daily_at) AT TIME ZONE 'Asia/Tokyo') \
                 AND (s.last_sent_at IS NULL OR s.last_sent_at < ((($1 AT TIME ZONE 'Asia/Tokyo')::date \
                     + s.daily_at) AT TIME ZONE 'Asia/Tokyo')))) \
            ORDER BY s.pending_since LIMIT $3 FOR UPDATE SKIP LOCKED), \
         cleared AS (UPDATE core.notification_settings s SET pending_since = NULL \
                     FROM due WHERE s.user_id = due.user_id) \
         INSERT INTO core.jobs (kind, dedupe_key, payload, run_at, created_at, max_attempts) \
         SELECT 'notify.digest', \
                'digest:' || due.user_id || ':' || extract(epoch FROM due.pending_since)::text, \
                jsonb_build_object('user_id', due.user_id), $1, $1, 5 \
         FROM due ON CONFLICT (dedupe_key) DO NOTHING RETURNING id",
    )
    .bind(now)
    .bind(batch)
    .bind(limit)
    .fetch_all(conn)
    .await?)
}

// --- A digest's content ----------------------------------------------------------------------

/// In an association's schema: a person's unread per group, and whether any of it arrived
/// after `told_until`.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct DigestLine {
    pub group_id: GroupId,
    pub group_name: String,
    /// A patient group or a conversation of direct messages: never named in a mail.
    pub patient: bool,
    pub unread: i64,
    pub important: i64,
    pub fresh: bool,
    pub newest_at: DateTime<Utc>,
    /// Whether the association's mails may name its (non-patient) groups.
    pub may_name: bool,
}

pub async fn digest_lines(
    conn: &mut PgConnection,
    user: PersonId,
    told_until: DateTime<Utc>,
) -> DbResult<Vec<DigestLine>> {
    Ok(sqlx::query_as(
        "SELECT u.group_id, g.name AS group_name, g.kind <> 'general' AS patient, \
                sum(u.count)::bigint AS unread, sum(u.important)::bigint AS important, \
                bool_or(u.last_at > $2) AS fresh, max(u.last_at) AS newest_at, \
                coalesce((SELECT mail_group_names FROM settings WHERE singleton), false) \
                    AS may_name \
         FROM unread u JOIN groups g ON g.id = u.group_id \
         WHERE u.user_id = $1 AND g.archived_at IS NULL \
         GROUP BY u.group_id, g.name, g.kind ORDER BY max(u.last_at) DESC",
    )
    .bind(user)
    .bind(told_until)
    .fetch_all(conn)
    .await?)
}

// --- What was sent -----------------------------------------------------------------------------

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct NotificationRow {
    pub id: i64,
    pub channel: String,
    pub kind: String,
    pub state: String,
    pub subject: String,
    pub body: String,
    pub unread: i32,
    pub created_at: DateTime<Utc>,
    pub sent_at: Option<DateTime<Utc>>,
}

/// A mail about to go: recorded (state `sending`) before the mail server is contacted; a
/// digest also moves the person's told-until mark.
#[derive(Debug, Clone)]
pub struct NewNotification<'a> {
    pub user: PersonId,
    pub job_id: i64,
    pub channel: &'a str,
    pub kind: &'a str,
    pub subject: &'a str,
    pub body: &'a str,
    pub unread: i32,
    pub told_until: DateTime<Utc>,
    /// A mail about to go: its job is marked as having begun to act on the outside world
    /// (`core.jobs.effects_started_at`) in the same statement.
    pub effects_started: bool,
}

pub async fn record(
    conn: &mut PgConnection,
    n: &NewNotification<'_>,
    now: DateTime<Utc>,
) -> DbResult<i64> {
    // Only a digest speaks for what is unread, so only a digest moves the told-until mark.
    Ok(sqlx::query_scalar(
        "WITH told AS (UPDATE core.notification_settings \
                       SET told_until = greatest(told_until, $9), last_sent_at = $8 \
                       WHERE user_id = $1 AND $4 = 'digest'), \
              started AS (UPDATE core.jobs SET effects_started_at = $8 WHERE id = $2 AND $10) \
         INSERT INTO core.notifications \
            (user_id, job_id, channel, kind, state, subject, body, unread, created_at) \
         VALUES ($1, $2, $3, $4, 'sending', $5, $6, $7, $8) RETURNING id",
    )
    .bind(n.user)
    .bind(n.job_id)
    .bind(n.channel)
    .bind(n.kind)
    .bind(n.subject)
    .bind(n.body)
    .bind(n.unread)
    .bind(now)
    .bind(n.told_until)
    .bind(n.effects_started)
    .fetch_one(conn)
    .await?)
}

pub async fn set_state(
    conn: &mut PgConnection,
    id: i64,
    state: &str,
    sent_at: Option<DateTime<Utc>>,
) -> DbResult<()> {
    sqlx::query(
        "UPDATE core.notifications SET state = $2, sent_at = coalesce($3, sent_at) WHERE id = $1",
    )
    .bind(id)
    .bind(state)
    .bind(sent_at)
    .execute(conn)
    .await?;
    Ok(())
}

/// Notifications of jobs that died while sending: they may or may not have gone.
pub async fn mark_interrupted(conn: &mut PgConnection, job_ids: &[i64]) -> DbResult<u64> {
    Ok(sqlx::query(
        "UPDATE core.notifications SET state = 'interrupted' \
         WHERE job_id = ANY($1) AND state IN ('sending', 'retrying')",
    )
    .bind(job_ids)
    .execute(conn)
    .await?
    .rows_affected())
}

/// What was sent to `user`, newest first (without the texts).
pub async fn sent_to(
    conn: &mut PgConnection,
    user: PersonId,
    limit: i64,
) -> DbResult<Vec<NotificationRow>> {
    Ok(sqlx::query_as(
        "SELECT id, channel, kind, state, subject, '' AS body, unread, created_at, sent_at \
         FROM core.notifications WHERE user_id = $1 ORDER BY id DESC LIMIT $2",
    )
    .bind(user)
    .bind(limit)
    .fetch_all(conn)
    .await?)
}

/// What a mail job needs to know before it writes anything, read in one statement: the
/// person's address and state, their e-mail choice, the groups they muted, and the
/// notification this job recorded on an earlier attempt.
#[derive(Debug, Clone)]
pub struct MailContext {
    pub email: String,
    pub active: bool,
    pub settings: Option<SettingsRow>,
    pub muted: Vec<GroupId>,
    pub earlier: Option<NotificationRow>,
}

#[derive(sqlx::FromRow)]
struct MailContextRow {
    email: String,
    active: bool,
    email_mode: Option<String>,
    daily_at: Option<NaiveTime>,
    told_until: Option<DateTime<Utc>>,
    last_sent_at: Option<DateTime<Utc>>,
    muted: Vec<GroupId>,
    n_id: Option<i64>,
    n_channel: Option<String>,
    n_kind: Option<String>,
    n_state: Option<String>,
    n_subject: Option<String>,
    n_body: Option<String>,
    n_unread: Option<i32>,
    n_created_at: Option<DateTime<Utc>>,
    n_sent_at: Option<DateTime<Utc>>,
}

/// [`MailContext`] of `user` for job `job_id`; `None` when the person no longer exists.
pub async fn mail_context(
    conn: &mut PgConnection,
    user: PersonId,
    job_id: i64,
) -> DbResult<Option<MailContext>> {
    let row: Option<MailContextRow> = sqlx::query_as(
        "SELECT u.email, u.status = 'active' AS active, \
                s.email_mode, s.daily_at, s.told_until, s.last_sent_at, \
                ARRAY(SELECT m.group_id FROM core.notification_mutes m WHERE m.user_id = u.id) \
                    AS muted, \
                n.id AS n_id, n.channel AS n_channel, n.kind AS n_kind, n.state AS n_state, \
                n.subject AS n_subject, n.body AS n_body, n.unread AS n_unread, \
                n.created_at AS n_created_at, n.sent_at AS n_sent_at \
         FROM core.users u \
         LEFT JOIN core.notification_settings s ON s.user_id = u.id \
         LEFT JOIN core.notifications n ON n.job_id = $2 \
         WHERE u.id = $1",
    )
    .bind(user)
    .bind(job_id)
    .fetch_optional(conn)
    .await?;
    Ok(row.map(|r| MailContext {
        settings: match (r.email_mode, r.daily_at, r.told_until) {
            (Some(email_mode), Some(daily_at), Some(told_until)) => Some(SettingsRow {
                email_mode,
                daily_at,
                told_until,
                last_sent_at: r.last_sent_at,
            }),
            _ => None,
        },
        earlier: match (r.n_id, r.n_created_at) {
            (Some(id), Some(created_at)) => Some(NotificationRow {
                id,
                channel: r.n_channel.unwrap_or_default(),
                kind: r.n_kind.unwrap_or_default(),
                state: r.n_state.unwrap_or_default(),
                subject: r.n_subject.unwrap_or_default(),
                body: r.n_body.unwrap_or_default(),
                unread: r.n_unread.unwrap_or_default(),
                created_at,
                sent_at: r.n_sent_at,
            }),
            _ => None,
        },
        email: r.email,
        active: r.active,
        muted: r.muted,
    }))
}

/// A mail went: the notification is sent and its job done, in one statement.
pub async fn mark_sent_and_complete(
    conn: &mut PgConnection,
    id: i64,
    job_id: i64,
    now: DateTime<Utc>,
) -> DbResult<()> {
    sqlx::query(
        "WITH sent AS (UPDATE core.notifications SET state = 'sent', sent_at = $3 WHERE id = $1) \
         UPDATE core.jobs SET state = 'done', finished_at = $3, locked_until = NULL \
         WHERE id = $2 AND state = 'running'",
    )
    .bind(id)
    .bind(job_id)
    .bind(now)
    .execute(conn)
    .await?;
    Ok(())
}

/// The notification of a job that failed for good (no more attempts).
pub async fn set_failed_for_job(conn: &mut PgConnection, job_id: i64) -> DbResult<()> {
    sqlx::query(
        "UPDATE core.notifications SET state = 'failed' \
         WHERE job_id = $1 AND state IN ('sending', 'retrying')",
    )
    .bind(job_id)
    .execute(conn)
    .await?;
    Ok(())
}

/// Whether `user` is an active member of `group` (any association).
pub async fn is_active_member(
    conn: &mut PgConnection,
    group: GroupId,
    user: PersonId,
) -> DbResult<bool> {
    Ok(sqlx::query_scalar(
        "SELECT EXISTS (SELECT 1 FROM core.group_members \
                        WHERE group_id = $1 AND user_id = $2 AND status = 'active')",
    )
    .bind(group)
    .bind(user)
    .fetch_one(conn)
    .await?)
}

/// In an association's schema: how many notifications its members got since `since`, by
/// state.
pub async fn member_counts(
    conn: &mut PgConnection,
    association: AssociationId,
    since: DateTime<Utc>,
) -> DbResult<Vec<(String, i64)>> {
    Ok(sqlx::query_as(
        "SELECT n.state, count(*) FROM core.notifications n \
         JOIN core.memberships m ON m.user_id = n.user_id AND m.association_id = $1 \
         WHERE n.created_at >= $2 GROUP BY n.state ORDER BY n.state",
    )
    .bind(association)
    .bind(since)
    .fetch_all(conn)
    .await?)
}

/// A notification to a member that did not (surely) arrive, for the console.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct MemberFailure {
    pub name: String,
    pub kind: String,
    pub state: String,
    pub created_at: DateTime<Utc>,
}

pub async fn member_failures(
    conn: &mut PgConnection,
    association: AssociationId,
    since: DateTime<Utc>,
    limit: i64,
) -> DbResult<Vec<MemberFailure>> {
    Ok(sqlx::query_as(
        "SELECT u.name, n.kind, n.state, n.created_at FROM core.notifications n \
         JOIN core.memberships m ON m.user_id = n.user_id AND m.association_id = $1 \
         JOIN core.users u ON u.id = n.user_id \
         WHERE n.created_at >= $2 AND n.state IN ('failed', 'interrupted', 'retrying') \
         ORDER BY n.id DESC LIMIT $3",
    )
    .bind(association)
    .bind(since)
    .bind(limit)
    .fetch_all(conn)
    .await?)
}
