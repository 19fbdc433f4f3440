//! Background work: the deployment's durable queue (in PostgreSQL) and the loop that runs it.
//!
//! Every replica runs the loop; `FOR UPDATE SKIP LOCKED` gives each job to one of them. A job is
//! held for a lease; when a process dies, its jobs are found after the lease and run again —
//! unless they had begun to act on the outside world (a mail handed to the mail server) and are
//! not safe to repeat: those fail as `interrupted`, and a mail is never sent twice. Jobs
//! that fail are retried with a growing delay, then kept as failed for the operator's console.
//!
//! Every entry point takes the time it acts at: production passes the clock, tests move it.

use crate::{AppError, AppResult, Services};
use chrono::{DateTime, Duration, Utc};
use musubi_db::jobs::{self as repo, JobRow, NewJob};

/// Looks at the associations' activity and enqueues the digests that are due.
pub const KIND_SCHEDULE: &str = "notify.schedule";
/// One person's e-mail digest.
pub const KIND_DIGEST: &str = "notify.digest";
/// One web push to one browser (see `push.rs`).
pub const KIND_PUSH: &str = "notify.push";
/// One notice about a 至急 comment (asked, reminded, escalated).
pub const KIND_URGENT: &str = "notify.urgent";

/// Kinds that may run again after their worker died, even part-way through their effects.
const REPEATABLE: &[&str] = &[KIND_SCHEDULE];

/// How often the schedule runs (one job per period, whatever the number of replicas).
pub const SCHEDULE_PERIOD_SECS: i64 = 60;

/// Finished jobs are kept this long for the console, then purged.
pub const KEEP_FINISHED_DAYS: i64 = 14;

/// Timings of background work (from the configuration).
#[derive(Debug, Clone, Copy)]
pub struct JobTiming {
    /// How long a claimed job is held before it counts as interrupted.
    pub lease: std::time::Duration,
    /// With e-mail mode `immediate`, the wait after the first news (one mail for several).
    pub mail_batch: std::time::Duration,
}

impl Default for JobTiming {
    fn default() -> Self {
        Self {
            lease: std::time::Duration::from_secs(120),
            mail_batch: std::time::Duration::from_secs(180),
        }
    }
}

/// How a job ended.
#[derive(Debug)]
pub(crate) enum Outcome {
    /// Done; the runner records it.
    Done,
    /// Done, and the job recorded its own end together with its last write.
    Recorded,
}

/// Why a job did not finish.
#[derive(Debug)]
pub(crate) enum JobError {
    /// Worth trying again later (a mail server that did not answer, a database hiccup).
    Retry(String),
    /// Trying again cannot help.
    Fatal(String),
}

impl From<AppError> for JobError {
    fn from(e: AppError) -> Self {
        JobError::Retry(format!("{}: {}", e.code.as_str(), e.message))
    }
}

impl From<musubi_db::DbError> for JobError {
    fn from(e: musubi_db::DbError) -> Self {
        JobError::Retry(e.to_string())
    }
}

/// The delay before attempt `attempts + 1`: 30 s, 1 min, 2 min, … at most an hour.
pub fn backoff(attempts: i32) -> Duration {
    let exp = attempts.clamp(1, 8) - 1;
    Duration::seconds((30_i64 << exp).min(3600))
}

/// What the console shows of the queue.
#[derive(Debug, Clone, Default)]
pub struct QueueOverview {
    /// (kind, state, count, oldest start)
    pub counts: Vec<(String, String, i64, Option<DateTime<Utc>>)>,
    pub failed: Vec<repo::FailedJob>,
}

impl Services {
    pub(crate) fn job_lease(&self) -> Duration {
        Duration::from_std(self.timing().lease).unwrap_or_else(|_| Duration::minutes(2))
    }

    /// Enqueues the notification schedule for the period containing `now` (once, whichever
    /// replica asks first). Returns whether this call enqueued it.
    pub async fn enqueue_schedule(&self, now: DateTime<Utc>) -> AppResult<bool> {
        let period = now.timestamp().div_euclid(SCHEDULE_PERIOD_SECS);
        let key = format!("schedule:{period}");
        let mut conn = self
            .db()
            .pool()
            .acquire()
            .await
            .map_err(AppError::internal)?;
        let id = repo::enqueue(
            &mut conn,
            &NewJob {
                kind: KIND_SCHEDULE,
                dedupe_key: Some(&key),
                payload: serde_json::json!({}),
                run_at: now,
                max_attempts: 3,
            },
            now,
        )
        .await?;
        Ok(id.is_some())
    }

    /// Claims and runs up to `limit` due jobs, one after another. Returns how many ran.
    pub async fn run_due_jobs(&self, now: DateTime<Utc>, limit: i64) -> AppResult<usize> {
        let jobs = repo::claim(self.db().pool(), now, self.job_lease(), limit).await?;
        let n = jobs.len();
        for job in jobs {
            self.run_job(job, now).await;
        }
        Ok(n)
    }

    async fn run_job(&self, job: JobRow, now: DateTime<Utc>) {
        let result = match job.kind.as_str() {
            KIND_SCHEDULE => self.run_schedule(now).await.map(|()| Outcome::Done),
            KIND_DIGEST => self.run_digest(&job, now).await,
            KIND_PUSH => self.run_push(&job, now).await,
            KIND_URGENT => self.run_urgent_notice(&job, now).await,
            other => Err(JobError::Fatal(format!("unknown job kind `{other}`"))),
        };
        let pool = self.db().pool();
        let recorded = match result {
            Ok(Outcome::Recorded) => Ok(()),
            Ok(Outcome::Done) => match pool.acquire().await {
                // When it really ended (`now` is when the batch was claimed).
                Ok(mut conn) => repo::complete(&mut conn, job.id, Utc::now())
                    .await
                    .map(|_| ()),
                Err(e) => Err(e.into()),
            },
            Err(error) => {
                let (message, retry_at) = match &error {
                    JobError::Retry(m) => (m.as_str(), Some(now + backoff(job.attempts))),
                    JobError::Fatal(m) => (m.as_str(), None),
                };
                tracing::warn!(job = job.id, kind = %job.kind, attempt = job.attempts, error = %message, "job failed");
                match pool.acquire().await {
                    Ok(mut conn) => {
                        match repo::fail(&mut conn, job.id, message, retry_at, now).await {
                            Ok(false) => {
                                self.job_gave_up(&job).await;
                                Ok(())
                            }
                            Ok(true) => Ok(()),
                            Err(e) => Err(e),
                        }
                    }
                    Err(e) => Err(e.into()),
                }
            }
        };
        if let Err(e) = recorded {
            // The lease will run out and the job be recovered.
            tracing::warn!(job = job.id, error = %e, "recording a job's end failed");
        }
    }

    /// A job failed for good: what it left half-way is marked so.
    async fn job_gave_up(&self, job: &JobRow) {
        if job.kind == KIND_DIGEST || job.kind == KIND_URGENT {
            if let Ok(mut conn) = self.db().pool().acquire().await {
                if let Err(e) =
                    musubi_db::notifications::set_failed_for_job(&mut conn, job.id).await
                {
                    tracing::warn!(job = job.id, error = %e, "marking a notification failed");
                }
            }
        }
    }

    /// Finds jobs whose worker died (lease over at `now`): repeatable ones run again, the
    /// others fail as interrupted. Returns how many were found.
    pub async fn recover_jobs(&self, now: DateTime<Utc>) -> AppResult<usize> {
        let lost = repo::recover(self.db().pool(), now, REPEATABLE).await?;
        let interrupted: Vec<i64> = lost
            .iter()
            .filter(|(_, kind, again)| !again && (kind == KIND_DIGEST || kind == KIND_URGENT))
            .map(|(id, _, _)| *id)
            .collect();
        if !interrupted.is_empty() {
            let mut conn = self
                .db()
                .pool()
                .acquire()
                .await
                .map_err(AppError::internal)?;
            musubi_db::notifications::mark_interrupted(&mut conn, &interrupted).await?;
        }
        for (id, kind, again) in &lost {
            tracing::warn!(job = id, kind = %kind, again, "job interrupted (its worker stopped)");
        }
        Ok(lost.len())
    }

    /// Forgets jobs finished more than [`KEEP_FINISHED_DAYS`] before `now`.
    pub async fn purge_jobs(&self, now: DateTime<Utc>) -> AppResult<u64> {
        Ok(
            repo::purge_finished(self.db().pool(), now - Duration::days(KEEP_FINISHED_DAYS))
                .await?,
        )
    }
}

impl crate::operator::Operator {
    /// The queue, for the operator (`musubi jobs`).
    pub async fn queue_overview(&self) -> AppResult<QueueOverview> {
        let pool = self.db().pool();
        let counts = repo::counts(pool)
            .await?
            .into_iter()
            .map(|c| (c.kind, c.state, c.count, c.oldest_run_at))
            .collect();
        let failed = repo::failed(pool, 50).await?;
        Ok(QueueOverview { counts, failed })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_and_stops_at_an_hour() {
        assert_eq!(backoff(1), Duration::seconds(30));
        assert_eq!(backoff(2), Duration::seconds(60));
        assert_eq!(backoff(4), Duration::seconds(240));
        assert_eq!(backoff(8), Duration::seconds(3600));
        assert_eq!(backoff(50), Duration::seconds(3600));
        assert_eq!(backoff(0), Duration::seconds(30));
    }
}
