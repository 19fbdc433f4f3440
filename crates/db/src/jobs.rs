//! The deployment's job queue (migration `core/0013_jobs_notifications.sql`): enqueue, claim
//! with `FOR UPDATE SKIP LOCKED`, finish, retry with a later start, and recover jobs whose
//! worker died. Every function takes the time it acts at, so that tests can move the clock.

use crate::DbResult;
use chrono::{DateTime, Duration, Utc};
use sqlx::{PgConnection, PgPool};

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct JobRow {
    pub id: i64,
    pub kind: String,
    pub payload: serde_json::Value,
    /// Including the run this row was claimed for.
    pub attempts: i32,
    pub max_attempts: i32,
}

/// A job to enqueue.
#[derive(Debug, Clone)]
pub struct NewJob<'a> {
    pub kind: &'a str,
    /// Enqueued at most once per key, ever (finished jobs keep their key until purged).
    pub dedupe_key: Option<&'a str>,
    pub payload: serde_json::Value,
    pub run_at: DateTime<Utc>,
    pub max_attempts: i32,
}

/// Enqueues `job`; `None` when a job with its key already exists.
pub async fn enqueue(
    conn: &mut PgConnection,
    job: &NewJob<'_>,
    now: DateTime<Utc>,
) -> DbResult<Option<i64>> {
    Ok(sqlx::query_scalar(
        "INSERT INTO core.jobs (kind, dedupe_key, payload, run_at, max_attempts, created_at) \
         VALUES ($1, $2, $3, $4, $5, $6) \
         ON CONFLICT (dedupe_key) DO NOTHING RETURNING id",
    )
    .bind(job.kind)
    .bind(job.dedupe_key)
    .bind(&job.payload)
    .bind(job.run_at)
    .bind(job.max_attempts)
    .bind(now)
    .fetch_optional(conn)
    .await?)
}

/// The kind of job that may wait while people wait for the machine: the notification
/// digests. Index `jobs_due_prompt` (migration `core/0017`) holds every other pending kind,
/// and the claims below name this kind as a literal (the planner uses a partial index only
/// for a query whose own text implies its condition).
pub const DEFERRABLE_KIND: &str = "notify.digest";

/// Which due jobs a claim takes, by kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kinds {
    All,
    /// Only the deferrable ones ([`DEFERRABLE_KIND`]).
    Deferrable,
    /// Every kind but the deferrable ones, on `jobs_due_prompt`.
    Prompt,
}

macro_rules! claim_sql {
    ($filter:literal) => {
        concat!(
            "UPDATE core.jobs j SET state = 'running', attempts = j.attempts + 1, \
                    locked_until = $1::timestamptz + $2 \
             FROM (SELECT id FROM core.jobs WHERE state = 'pending' AND run_at <= $1 ",
            $filter,
            " ORDER BY run_at, id LIMIT $3 FOR UPDATE SKIP LOCKED) due \
             WHERE j.id = due.id \
             RETURNING j.id, j.kind, j.payload, j.attempts, j.max_attempts"
        )
    };
}

impl Kinds {
    /// The claim's statement for these kinds.
    pub fn claim_sql(self) -> &'static str {
        match self {
            Kinds::All => claim_sql!(""),
            Kinds::Deferrable => claim_sql!("AND kind = 'notify.digest'"),
            Kinds::Prompt => claim_sql!("AND kind <> 'notify.digest'"),
        }
    }
}

/// Claims up to `limit` due jobs of `kinds` for `lease`, oldest first; other workers skip them.
pub async fn claim(
    pool: &PgPool,
    now: DateTime<Utc>,
    lease: Duration,
    limit: i64,
    kinds: Kinds,
) -> DbResult<Vec<JobRow>> {
    Ok(sqlx::query_as(kinds.claim_sql())
        .bind(now)
        .bind(lease)
        .bind(limit)
        .fetch_all(pool)
        .await?)
}

/// Marks a claimed job done. `false` when it was no longer held (its lease ran out and it was
/// recovered meanwhile).
pub async fn complete(conn: &mut PgConnection, id: i64, now: DateTime<Utc>) -> DbResult<bool> {
    let done = sqlx::query(
        "UPDATE core.jobs SET state = 'done', finished_at = $2, locked_until = NULL \
         WHERE id = $1 AND state = 'running'",
    )
    .bind(id)
    .bind(now)
    .execute(conn)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// A claimed job failed: tried again at `retry_at` while attempts remain, failed for good
/// otherwise (or when `retry_at` is `None`). Returns whether it will run again.
pub async fn fail(
    conn: &mut PgConnection,
    id: i64,
    error: &str,
    retry_at: Option<DateTime<Utc>>,
    now: DateTime<Utc>,
) -> DbResult<bool> {
    let error: String = error.chars().take(500).collect();
    let again: Option<bool> = sqlx::query_scalar(
        "UPDATE core.jobs SET \
            state = CASE WHEN $3::timestamptz IS NOT NULL AND attempts < max_attempts \
                         THEN 'pending' ELSE 'failed' END, \
            run_at = coalesce($3, run_at), last_error = $2, locked_until = NULL, \
            effects_started_at = NULL, \
            finished_at = CASE WHEN $3::timestamptz IS NOT NULL AND attempts < max_attempts \
                               THEN NULL ELSE $4 END \
         WHERE id = $1 AND state = 'running' \
         RETURNING state = 'pending'",
    )
    .bind(id)
    .bind(error)
    .bind(retry_at)
    .bind(now)
    .fetch_optional(conn)
    .await?;
    Ok(again.unwrap_or(false))
}

/// Notes, in the transaction that records it, that a claimed job begins to act on the outside
/// world (hands a mail over, say): if its worker dies from now on, it is not run again.
pub async fn mark_effects_started(
    conn: &mut PgConnection,
    id: i64,
    now: DateTime<Utc>,
) -> DbResult<()> {
    sqlx::query("UPDATE core.jobs SET effects_started_at = $2 WHERE id = $1")
        .bind(id)
        .bind(now)
        .execute(conn)
        .await?;
    Ok(())
}

/// Jobs whose lease ran out (their worker died) run again while attempts remain, unless they
/// had begun to act on the outside world and their kind is not in `repeatable`: those fail
/// with `interrupted`, for doing it twice is worse than not at all. Returns (id, kind, runs
/// again).
pub async fn recover(
    pool: &PgPool,
    now: DateTime<Utc>,
    repeatable: &[&str],
) -> DbResult<Vec<(i64, String, bool)>> {
    let repeatable: Vec<String> = repeatable.iter().map(|k| (*k).to_owned()).collect();
    Ok(sqlx::query_as(
        "WITH lost AS (SELECT id FROM core.jobs WHERE state = 'running' AND locked_until < $1 \
                       FOR UPDATE SKIP LOCKED) \
         UPDATE core.jobs j SET \
            state = CASE WHEN (j.kind = ANY($2) OR j.effects_started_at IS NULL) \
                              AND j.attempts < j.max_attempts \
                         THEN 'pending' ELSE 'failed' END, \
            finished_at = CASE WHEN (j.kind = ANY($2) OR j.effects_started_at IS NULL) \
                                    AND j.attempts < j.max_attempts \
                               THEN NULL ELSE $1 END, \
            last_error = 'interrupted', locked_until = NULL, effects_started_at = NULL \
         FROM lost WHERE j.id = lost.id \
         RETURNING j.id, j.kind, j.state = 'pending'",
    )
    .bind(now)
    .bind(repeatable)
    .fetch_all(pool)
    .await?)
}

/// Forgets finished jobs older than `before` (their keys become free again).
pub async fn purge_finished(pool: &PgPool, before: DateTime<Utc>) -> DbResult<u64> {
    Ok(
        sqlx::query("DELETE FROM core.jobs WHERE state IN ('done', 'failed') AND finished_at < $1")
            .bind(before)
            .execute(pool)
            .await?
            .rows_affected(),
    )
}

/// How many jobs of each kind are in each state, and the oldest due pending one's start.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct JobCount {
    pub kind: String,
    pub state: String,
    pub count: i64,
    pub oldest_run_at: Option<DateTime<Utc>>,
}

pub async fn counts(pool: &PgPool) -> DbResult<Vec<JobCount>> {
    Ok(sqlx::query_as(
        "SELECT kind, state, count(*) AS count, min(run_at) AS oldest_run_at \
         FROM core.jobs GROUP BY kind, state ORDER BY kind, state",
    )
    .fetch_all(pool)
    .await?)
}

/// A job that failed for good, for the console.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct FailedJob {
    pub id: i64,
    pub kind: String,
    pub attempts: i32,
    pub last_error: Option<String>,
    pub created_at: DateTime<Utc>,
    pub finished_at: Option<DateTime<Utc>>,
}

pub async fn failed(pool: &PgPool, limit: i64) -> DbResult<Vec<FailedJob>> {
    Ok(sqlx::query_as(
        "SELECT id, kind, attempts, last_error, created_at, finished_at FROM core.jobs \
         WHERE state = 'failed' ORDER BY finished_at DESC NULLS LAST, id DESC LIMIT $1",
    )
    .bind(limit)
    .fetch_all(pool)
    .await?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_claims_name_the_deferrable_kind_as_it_is() {
        let literal = format!("'{DEFERRABLE_KIND}'");
        assert!(!Kinds::All.claim_sql().contains("AND kind"));
        assert!(Kinds::Deferrable
            .claim_sql()
            .contains(&format!("kind = {literal}")));
        assert!(Kinds::Prompt
            .claim_sql()
            .contains(&format!("kind <> {literal}")));
        let index = include_str!("../../../migrations/core/0017_jobs_due_prompt.sql");
        assert!(index.contains(&format!("kind <> {literal}")));
    }
}
