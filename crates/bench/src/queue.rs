//! The notification queue under the mixed workload (docs/notifications.md): the
//! `notify.schedule` and `notify.digest` jobs created during the mixed phase, read back from
//! `core.jobs` (and `core.notifications` for the mails they sent).
//!
//! The jobs of the phase are those whose id falls between the queue's largest id just before
//! the phase and just after it (no clock involved). When the phase ends, what is done, pending
//! and running is counted; when the report is written (after the later phases, or after up to
//! [`DRAIN`] of waiting when nothing follows), their times are read.
//!
//! The server records `finished_at` as the moment its worker claimed the job's batch, not the
//! moment the job ended. The schedule's real end is therefore watched from here: its job is
//! looked up by its key (`schedule:<minute>`, unique) every [`POLL`].

use crate::report::{DigestBatch, Lag, NotificationQueue};
use anyhow::Context as _;
use chrono::{DateTime, Utc};
use sqlx::Connection as _;
use std::collections::HashMap;
use std::time::Duration;
use tokio::sync::watch;
use tokio::time::Instant;

pub const SCHEDULE: &str = "notify.schedule";
pub const DIGEST: &str = "notify.digest";
const KINDS: [&str; 2] = [SCHEDULE, DIGEST];
/// The schedule is enqueued once a minute (`SCHEDULE_PERIOD_SECS`): a shorter phase may see
/// no run at all.
pub const PERIOD_SECS: i64 = 60;
/// How often the schedule's job is looked at, which is the resolution of its duration.
const POLL: Duration = Duration::from_millis(100);
/// With nothing after the mixed phase, how long the phase's jobs are waited for before their
/// times are read.
const DRAIN: Duration = Duration::from_secs(30);

async fn connect(url: &str) -> anyhow::Result<sqlx::PgConnection> {
    sqlx::PgConnection::connect(url)
        .await
        .context("connecting to the benchmark database for the job queue")
}

async fn last_id(conn: &mut sqlx::PgConnection) -> anyhow::Result<i64> {
    Ok(
        sqlx::query_scalar("SELECT coalesce(max(id), 0)::bigint FROM core.jobs")
            .fetch_one(conn)
            .await?,
    )
}

/// When the benchmark saw a schedule job finished.
type Seen = HashMap<i64, DateTime<Utc>>;

/// Watches the queue from the start of the mixed phase.
pub struct Watch {
    url: String,
    start_id: i64,
    started: Instant,
    stop: watch::Sender<bool>,
    poller: tokio::task::JoinHandle<Seen>,
}

/// The queue when the mixed phase ended.
pub struct AtEnd {
    end_id: i64,
    seconds: f64,
    /// (kind, state, jobs) of the phase's jobs.
    states: Vec<(String, String, i64)>,
}

impl Watch {
    /// Call just before the mixed phase begins.
    pub async fn start(url: &str) -> anyhow::Result<Self> {
        let mut conn = connect(url).await?;
        let start_id = last_id(&mut conn).await?;
        let started = Instant::now();
        let (stop, stopped) = watch::channel(false);
        let poller = tokio::spawn(poll_schedule(conn, start_id, stopped));
        Ok(Self {
            url: url.to_owned(),
            start_id,
            started,
            stop,
            poller,
        })
    }

    /// Call as soon as the mixed phase has ended.
    pub async fn end(&self) -> anyhow::Result<AtEnd> {
        let mut conn = connect(&self.url).await?;
        let end_id = last_id(&mut conn).await?;
        let seconds = self.started.elapsed().as_secs_f64();
        let states = sqlx::query_as(
            "SELECT kind, state, count(*) FROM core.jobs \
             WHERE id > $1 AND id <= $2 AND kind = ANY($3) GROUP BY kind, state",
        )
        .bind(self.start_id)
        .bind(end_id)
        .bind(&KINDS[..])
        .fetch_all(&mut conn)
        .await?;
        let _ = conn.close().await;
        Ok(AtEnd {
            end_id,
            seconds,
            states,
        })
    }

    /// Reads the phase's jobs back; waits up to [`DRAIN`] for those still unfinished.
    pub async fn finish(self, at_end: &AtEnd) -> anyhow::Result<NotificationQueue> {
        let mut conn = connect(&self.url).await?;
        let waited = Instant::now();
        loop {
            let open: i64 = sqlx::query_scalar(
                "SELECT count(*) FROM core.jobs WHERE id > $1 AND id <= $2 AND kind = ANY($3) \
                 AND state IN ('pending', 'running')",
            )
            .bind(self.start_id)
            .bind(at_end.end_id)
            .bind(&KINDS[..])
            .fetch_one(&mut conn)
            .await?;
            if open == 0 || waited.elapsed() >= DRAIN {
                break;
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
        // One more look, so that a schedule that just finished is seen.
        tokio::time::sleep(POLL * 2).await;
        let _ = self.stop.send(true);
        let seen = self.poller.await.unwrap_or_default();
        let rows: Vec<Job> = sqlx::query_as(
            "SELECT j.id, j.kind, j.state, j.created_at, j.run_at, j.finished_at, n.sent_at \
             FROM core.jobs j LEFT JOIN core.notifications n ON n.job_id = j.id \
             WHERE j.id > $1 AND j.id <= $2 AND j.kind = ANY($3)",
        )
        .bind(self.start_id)
        .bind(at_end.end_id)
        .bind(&KINDS[..])
        .fetch_all(&mut conn)
        .await?;
        let _ = conn.close().await;
        Ok(summarize(&rows, &seen, at_end))
    }
}

/// Looks at the schedule jobs of the minutes since the phase began (by their unique key) until
/// told to stop, and notes when each was first seen finished.
async fn poll_schedule(
    mut conn: sqlx::PgConnection,
    start_id: i64,
    mut stop: watch::Receiver<bool>,
) -> Seen {
    let first = Utc::now().timestamp().div_euclid(PERIOD_SECS) - 1;
    let mut seen = Seen::new();
    let mut ticks = tokio::time::interval(POLL);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = ticks.tick() => {}
            _ = stop.changed() => break,
        }
        // The server's clock may be a little off: one minute on either side.
        let last = Utc::now().timestamp().div_euclid(PERIOD_SECS) + 1;
        let keys: Vec<String> = (first..=last).map(|p| format!("schedule:{p}")).collect();
        let rows: Result<Vec<(i64, String)>, _> = sqlx::query_as(
            "SELECT id, state FROM core.jobs WHERE dedupe_key = ANY($1) AND id > $2 \
             AND state IN ('done', 'failed')",
        )
        .bind(&keys)
        .bind(start_id)
        .fetch_all(&mut conn)
        .await;
        let now = Utc::now();
        match rows {
            Ok(rows) => {
                for (id, _) in rows {
                    seen.entry(id).or_insert(now);
                }
            }
            Err(e) => {
                eprintln!("notification queue: cannot look at the schedule: {e}");
                break;
            }
        }
    }
    let _ = conn.close().await;
    seen
}

#[derive(Debug, Clone, sqlx::FromRow)]
struct Job {
    id: i64,
    kind: String,
    state: String,
    created_at: DateTime<Utc>,
    run_at: DateTime<Utc>,
    finished_at: Option<DateTime<Utc>>,
    sent_at: Option<DateTime<Utc>>,
}

fn lag(mut ms: Vec<u32>) -> Option<Lag> {
    if ms.is_empty() {
        return None;
    }
    ms.sort_unstable();
    let s = |v: u32| f64::from(v) / 1000.0;
    Some(Lag {
        count: ms.len() as u64,
        p50_s: s(crate::stats::percentile(&ms, 50.0)),
        p95_s: s(crate::stats::percentile(&ms, 95.0)),
        max_s: s(ms.last().copied().unwrap_or(0)),
    })
}

/// Milliseconds from `a` to `b`, none when `b` comes first (clocks apart).
fn between(a: DateTime<Utc>, b: DateTime<Utc>) -> u32 {
    u32::try_from((b - a).num_milliseconds().max(0)).unwrap_or(u32::MAX)
}

fn summarize(rows: &[Job], seen: &Seen, at_end: &AtEnd) -> NotificationQueue {
    let at_end_count = |kind: Option<&str>, state: &str| -> u64 {
        at_end
            .states
            .iter()
            .filter(|(k, s, _)| kind.is_none_or(|kind| k == kind) && s == state)
            .map(|(_, _, n)| u64::try_from(*n).unwrap_or(0))
            .sum()
    };
    let digests: Vec<&Job> = rows.iter().filter(|j| j.kind == DIGEST).collect();
    let schedules: Vec<&Job> = rows.iter().filter(|j| j.kind == SCHEDULE).collect();
    let done = |jobs: &[&Job]| -> Vec<(DateTime<Utc>, DateTime<Utc>, DateTime<Utc>)> {
        jobs.iter()
            .filter(|j| j.state == "done")
            .filter_map(|j| Some((j.created_at, j.run_at, j.finished_at?)))
            .collect()
    };
    let digests_done = done(&digests);
    let schedules_done = done(&schedules);
    let seconds = at_end.seconds;
    let per_second = |n: u64| {
        if seconds > 0.0 {
            n as f64 / seconds
        } else {
            0.0
        }
    };
    let digests_done_in_phase = at_end_count(Some(DIGEST), "done");
    let schedule_done_in_phase = at_end_count(Some(SCHEDULE), "done");
    let schedule_jobs = schedules.len() as u64;
    let digest_jobs = digests.len() as u64;
    let covers_schedule = seconds >= PERIOD_SECS as f64 && schedule_jobs > 0;
    let note = if seconds < PERIOD_SECS as f64 {
        Some(format!(
            "the mixed phase lasted {seconds:.0} s, less than the schedule's minute: too short \
             to be sure to see a schedule run ({schedule_jobs} seen)"
        ))
    } else if schedule_jobs == 0 {
        Some(
            "no notify.schedule job was created during the mixed phase: too short to see a \
             schedule run, or the server's job loop is stalled"
                .to_owned(),
        )
    } else if digest_jobs == 0 {
        Some(
            "the schedule ran but enqueued no digest: is the server run with \
             MUSUBI_MAIL_BATCH_SECS=0 (cargo xtask bench sets it)?"
                .to_owned(),
        )
    } else {
        None
    };
    NotificationQueue {
        seconds,
        covers_schedule,
        note,
        schedule_jobs,
        digest_jobs,
        schedule_done: schedule_done_in_phase,
        digests_done: digests_done_in_phase,
        digests_per_second: per_second(digests_done_in_phase),
        jobs_per_second: per_second(digests_done_in_phase + schedule_done_in_phase),
        mails_sent: digests.iter().filter(|j| j.sent_at.is_some()).count() as u64,
        pending_at_end: at_end_count(None, "pending"),
        running_at_end: at_end_count(None, "running"),
        failed: rows.iter().filter(|j| j.state == "failed").count() as u64,
        unfinished: rows
            .iter()
            .filter(|j| j.state == "pending" || j.state == "running")
            .count() as u64,
        digest_run_to_finished: lag(digests_done
            .iter()
            .map(|(_, run, fin)| between(*run, *fin))
            .collect()),
        digest_created_to_finished: lag(digests_done
            .iter()
            .map(|(created, _, fin)| between(*created, *fin))
            .collect()),
        digest_created_to_sent: lag(digests
            .iter()
            .filter_map(|j| Some(between(j.created_at, j.sent_at?)))
            .collect()),
        schedule_run_to_finished: lag(schedules_done
            .iter()
            .map(|(_, run, fin)| between(*run, *fin))
            .collect()),
        schedule_run_to_seen_finished: lag(schedules
            .iter()
            .filter_map(|j| Some(between(j.run_at, *seen.get(&j.id)?)))
            .collect()),
        largest_digest_batch: largest_batch(&digests),
    }
}

/// The done digests of the schedule run that enqueued the most (a run gives all its digests
/// its own `now` as `created_at`): from the first claimed (the recorded `finished_at` is the
/// claim) to the last one's mail handed over.
fn largest_batch(digests: &[&Job]) -> Option<DigestBatch> {
    let mut runs: HashMap<DateTime<Utc>, (u64, DateTime<Utc>, DateTime<Utc>)> = HashMap::new();
    for j in digests.iter().filter(|j| j.state == "done") {
        let Some(claimed) = j.finished_at else {
            continue;
        };
        let end = j.sent_at.unwrap_or(claimed).max(claimed);
        let run = runs.entry(j.created_at).or_insert((0, claimed, end));
        run.0 += 1;
        run.1 = run.1.min(claimed);
        run.2 = run.2.max(end);
    }
    let (digests, first, last) = runs
        .into_values()
        .max_by_key(|(n, first, _)| (*n, std::cmp::Reverse(*first)))?;
    // At least a millisecond: a single digest may be claimed and sent within one.
    let seconds = f64::from(between(first, last).max(1)) / 1000.0;
    Some(DigestBatch {
        digests,
        seconds,
        per_second: digests as f64 / seconds,
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn at(ms: i64) -> DateTime<Utc> {
        DateTime::from_timestamp_millis(1_800_000_000_000 + ms).unwrap()
    }

    fn job(id: i64, kind: &str, state: &str, run: i64, fin: Option<i64>, sent: Option<i64>) -> Job {
        Job {
            id,
            kind: kind.to_owned(),
            state: state.to_owned(),
            created_at: at(run),
            run_at: at(run),
            finished_at: fin.map(at),
            sent_at: sent.map(at),
        }
    }

    #[test]
    fn lags_throughput_and_what_was_left() {
        let rows = vec![
            job(1, SCHEDULE, "done", 0, Some(10), None),
            job(2, DIGEST, "done", 10, Some(500), Some(700)),
            job(3, DIGEST, "done", 10, Some(1500), Some(1600)),
            job(4, DIGEST, "done", 10, Some(2500), None),
            job(5, DIGEST, "failed", 10, Some(3000), None),
            job(6, DIGEST, "pending", 10, None, None),
        ];
        let seen: Seen = [(1, at(400))].into_iter().collect();
        let at_end = AtEnd {
            end_id: 6,
            seconds: 65.0,
            states: vec![
                (SCHEDULE.into(), "done".into(), 1),
                (DIGEST.into(), "done".into(), 2),
                (DIGEST.into(), "pending".into(), 2),
                (DIGEST.into(), "running".into(), 1),
            ],
        };
        let q = summarize(&rows, &seen, &at_end);
        assert!(q.covers_schedule && q.note.is_none());
        assert_eq!((q.schedule_jobs, q.digest_jobs), (1, 5));
        assert_eq!((q.schedule_done, q.digests_done), (1, 2));
        assert!((q.digests_per_second - 2.0 / 65.0).abs() < 1e-9);
        assert!((q.jobs_per_second - 3.0 / 65.0).abs() < 1e-9);
        assert_eq!((q.pending_at_end, q.running_at_end), (2, 1));
        assert_eq!((q.failed, q.unfinished, q.mails_sent), (1, 1, 2));
        let d = q.digest_run_to_finished.unwrap();
        assert_eq!((d.count, d.p50_s, d.p95_s, d.max_s), (3, 1.49, 2.49, 2.49));
        let sent = q.digest_created_to_sent.unwrap();
        assert_eq!((sent.count, sent.p50_s, sent.max_s), (2, 0.69, 1.59));
        assert_eq!(q.schedule_run_to_finished.unwrap().max_s, 0.01);
        assert_eq!(q.schedule_run_to_seen_finished.unwrap().max_s, 0.4);
        // Digests 2–4 (done, created together): claimed from 0.5 s, the last ends at 2.5 s.
        let b = q.largest_digest_batch.unwrap();
        assert_eq!((b.digests, b.seconds, b.per_second), (3, 2.0, 1.5));
    }

    #[test]
    fn the_largest_batch_is_the_run_with_the_most_digests() {
        let rows = [
            job(1, DIGEST, "done", 0, Some(100), Some(300)),
            job(2, DIGEST, "done", 60_000, Some(60_100), Some(60_200)),
            job(3, DIGEST, "done", 60_000, Some(60_100), Some(60_600)),
            job(4, DIGEST, "running", 60_000, None, None),
        ];
        let digests: Vec<&Job> = rows.iter().collect();
        let b = largest_batch(&digests).unwrap();
        assert_eq!((b.digests, b.seconds), (2, 0.5));
        assert!(largest_batch(&digests[3..]).is_none());
    }

    #[test]
    fn a_short_phase_or_one_without_digests_says_so() {
        let at_end = |seconds| AtEnd {
            end_id: 0,
            seconds,
            states: Vec::new(),
        };
        let q = summarize(&[], &Seen::new(), &at_end(20.0));
        assert!(!q.covers_schedule);
        assert!(q.note.unwrap().contains("lasted 20 s"));
        let q = summarize(&[], &Seen::new(), &at_end(65.0));
        assert!(q.note.unwrap().contains("no notify.schedule job"));
        assert!(q.digest_created_to_sent.is_none());
        let rows = [job(1, SCHEDULE, "done", 0, Some(0), None)];
        let q = summarize(&rows, &Seen::new(), &at_end(65.0));
        assert!(q.covers_schedule);
        assert!(q.note.unwrap().contains("MUSUBI_MAIL_BATCH_SECS=0"));
        assert!(q.schedule_run_to_seen_finished.is_none());
    }
}
