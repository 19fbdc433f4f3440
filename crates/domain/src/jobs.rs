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
use musubi_db::jobs::{self as repo, JobRow, Kinds, NewJob};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

/// Looks at the associations' activity and enqueues the digests that are due.
pub const KIND_SCHEDULE: &str = "notify.schedule";
/// One person's e-mail digest: the one kind that yields to people while requests are being
/// served (a digest tells of news a minute old or more, and a little later is as good; urgent
/// notices and pushes never wait). The queue's index for the others names it.
pub const KIND_DIGEST: &str = repo::DEFERRABLE_KIND;
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

/// While busy, a deferrable job is followed by a pause this many times its own length, so that
/// such jobs take at most a fifth of the loop's time and the machine goes to the requests…
const YIELD_FACTOR: u32 = 4;
/// …but never longer than this, so that they keep going at a floor rate however slow the
/// machine is (a queue that never drains is worse than a slower page).
const YIELD_MAX: std::time::Duration = std::time::Duration::from_millis(500);

/// Where Linux tells how often tasks waited for a CPU (pressure stall information).
const CPU_PRESSURE: &str = "/proc/pressure/cpu";
/// Busy when, over the last ten seconds, something was waiting for a CPU more than this share
/// of the time: other replicas or PostgreSQL on the same machine are serving people.
const CPU_PRESSURE_BUSY: f64 = 30.0;

/// Whether people are waiting for the machine: requests this replica is serving right now
/// (counted by the server's admission layer), and the machine's CPU pressure where Linux tells
/// it (a replica with nothing to do beside a busy one on the same machine must yield too).
#[derive(Clone, Debug)]
pub struct Pressure {
    in_flight: Arc<AtomicUsize>,
    /// More requests than this at once counts as busy: the cores are all taken.
    busy_above: usize,
    /// Read the machine's CPU pressure too.
    machine: bool,
}

impl Default for Pressure {
    fn default() -> Self {
        Self {
            machine: true,
            ..Self::requests_only()
        }
    }
}

/// One request in flight; dropping it (the request ended or was dropped) counts it out.
#[derive(Debug)]
pub struct InFlight(Arc<AtomicUsize>);

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

impl Pressure {
    /// Busy from this replica's requests only, whatever the machine's load (tests on a shared
    /// machine).
    pub fn requests_only() -> Self {
        let cores = std::thread::available_parallelism().map_or(2, std::num::NonZeroUsize::get);
        Self {
            in_flight: Arc::default(),
            busy_above: cores,
            machine: false,
        }
    }

    /// Counts a request in until the returned guard is dropped.
    pub fn enter(&self) -> InFlight {
        self.in_flight.fetch_add(1, Ordering::Relaxed);
        InFlight(self.in_flight.clone())
    }

    pub fn in_flight(&self) -> usize {
        self.in_flight.load(Ordering::Relaxed)
    }

    /// Whether requests are waiting for the machine: more in flight here than it has cores, or
    /// tasks kept waiting for a CPU a good part of the last seconds.
    pub fn busy(&self) -> bool {
        self.in_flight() > self.busy_above
            || (self.machine
                && std::fs::read_to_string(CPU_PRESSURE)
                    .ok()
                    .and_then(|t| cpu_waiting_share(&t))
                    .is_some_and(|share| share > CPU_PRESSURE_BUSY))
    }
}

/// The share of the last ten seconds (0–100) in which some task waited for a CPU, from the
/// text of `/proc/pressure/cpu`.
fn cpu_waiting_share(text: &str) -> Option<f64> {
    text.lines()
        .find_map(|l| l.strip_prefix("some "))?
        .split_whitespace()
        .find_map(|f| f.strip_prefix("avg10="))?
        .parse()
        .ok()
}

/// The pause after a deferrable job that took `took`, when busy.
fn yield_after(took: std::time::Duration, busy: bool) -> std::time::Duration {
    if busy {
        (took * YIELD_FACTOR).min(YIELD_MAX)
    } else {
        std::time::Duration::ZERO
    }
}

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
        self.run_due_jobs_of(now, limit, Kinds::All).await
    }

    async fn run_due_jobs_of(
        &self,
        now: DateTime<Utc>,
        limit: i64,
        kinds: Kinds,
    ) -> AppResult<usize> {
        let jobs = repo::claim(self.db().pool(), now, self.job_lease(), limit, kinds).await?;
        let n = jobs.len();
        for job in jobs {
            self.run_job(job, now).await;
        }
        Ok(n)
    }

    /// Runs what is due at the clock's time until none is left or `budget` has passed, as the
    /// background loop does: urgent notices and pushes before anything else, then the digests
    /// — while requests wait for the machine ([`Pressure::busy`]), one at a time with a pause
    /// after each. Returns how many ran.
    ///
    /// The budget hands the loop back to its caller, which enqueues the next schedule run and
    /// recovers interrupted jobs: thousands of digests draining slowly on a busy machine must
    /// not keep the next minute's schedule from being enqueued.
    pub async fn run_due_jobs_yielding(&self, budget: std::time::Duration) -> AppResult<usize> {
        let until = std::time::Instant::now() + budget;
        let mut ran = 0;
        loop {
            let prompt = self.run_due_jobs_of(Utc::now(), 10, Kinds::Prompt).await?;
            ran += prompt;
            let busy = self.pressure().busy();
            let started = std::time::Instant::now();
            let deferred = self
                .run_due_jobs_of(Utc::now(), if busy { 1 } else { 10 }, Kinds::Deferrable)
                .await?;
            ran += deferred;
            if prompt == 0 && deferred == 0 {
                return Ok(ran);
            }
            let pause = yield_after(started.elapsed(), deferred > 0 && busy);
            if !pause.is_zero() {
                metrics::counter!("musubi_jobs_yielded_total").increment(1);
                tokio::time::sleep(pause).await;
            }
            if std::time::Instant::now() >= until {
                return Ok(ran);
            }
        }
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
    fn deferrable_jobs_pause_only_while_busy_and_never_long() {
        let ms = std::time::Duration::from_millis;
        assert_eq!(yield_after(ms(20), false), ms(0));
        assert_eq!(yield_after(ms(20), true), ms(80));
        assert_eq!(yield_after(ms(400), true), YIELD_MAX);
    }

    #[test]
    fn pressure_counts_requests_until_they_end() {
        let p = Pressure {
            busy_above: 2,
            ..Pressure::requests_only()
        };
        let a = p.enter();
        let b = p.enter();
        assert!(!p.busy(), "two requests on two cores are not a queue");
        let c = p.enter();
        assert_eq!(p.in_flight(), 3);
        assert!(p.busy());
        drop((a, b, c));
        assert_eq!(p.in_flight(), 0);
        assert!(!p.busy());
    }

    #[test]
    fn the_machines_cpu_pressure_is_read_from_the_kernels_words() {
        let text = "some avg10=42.50 avg60=3.00 avg300=0.75 total=45318432\n\
                    full avg10=0.00 avg60=0.00 avg300=0.00 total=0\n";
        assert_eq!(cpu_waiting_share(text), Some(42.5));
        assert_eq!(cpu_waiting_share("full avg10=9.00\n"), None);
        assert_eq!(cpu_waiting_share(""), None);
        assert_eq!(cpu_waiting_share("some avg10=lots\n"), None);
    }

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
