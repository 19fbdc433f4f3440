//! `report.json` and the table printed at the end of a run.

use crate::manifest::DatasetCounts;
use serde::{Deserialize, Serialize};
use std::fmt::Write as _;

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Report {
    pub scale: String,
    pub seed: u64,
    pub label: String,
    /// RFC 3339.
    pub generated_at: String,
    pub machine: Machine,
    pub dataset: Dataset,
    pub server: Server,
    /// Sign-in, the single-operation phases (`phase: single`; `topic_crowded` and
    /// `home_heavy` are topic views and home pages of the dataset's crowded groups and heavy
    /// readers; the upload phases, run after the mixed phase, are listed with them), then the
    /// mixed phase's operations (`mixed:<op>`, `phase: mixed`).
    pub operations: Vec<Operation>,
    pub subscriptions: Subscriptions,
    pub mixed: Mixed,
    /// The server's memory during the upload phases (when run).
    #[serde(default)]
    pub uploads: Option<Uploads>,
    /// Twice the mixed phase's rate against a server that sheds load (when run).
    #[serde(default)]
    pub overload: Option<Overload>,
    /// One client flooding one association while its colleagues use it (when run).
    #[serde(default)]
    pub fairness: Option<Fairness>,
    /// The notification jobs created during the mixed phase (when it ran and the database
    /// could be read).
    #[serde(default)]
    pub notification_queue: Option<NotificationQueue>,
    pub budgets: Vec<Budget>,
}

/// The job queue under the mixed workload: the `notify.schedule` and `notify.digest` jobs
/// created during the mixed phase (`core.jobs`), read back from the database. The server runs
/// with `MUSUBI_MAIL_BATCH_SECS=0`, so each minute's schedule enqueues a digest for everyone
/// with news since the one before.
///
/// Caution: the server writes `finished_at` with the time its worker *claimed* the job's batch,
/// not the time the job ended; `run_at → finished_at` is therefore the wait to be claimed. The
/// digests' `created_to_sent` (the mail handed over, `core.notifications.sent_at`) and the
/// schedule's `run_to_seen_finished` (polled) are the times to read.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct NotificationQueue {
    /// The window read: from just before the mixed phase began to just after it ended.
    pub seconds: f64,
    /// The window lasted the schedule's minute and a schedule job was created in it.
    pub covers_schedule: bool,
    /// Why the figures may say little (too short a phase, no digests), when so.
    pub note: Option<String>,
    /// Jobs created in the window.
    pub schedule_jobs: u64,
    pub digest_jobs: u64,
    /// Of those, done by the end of the window.
    pub schedule_done: u64,
    pub digests_done: u64,
    /// Digests done in the window per second of it: notifications per second.
    pub digests_per_second: f64,
    /// Schedule and digest jobs done in the window per second of it.
    pub jobs_per_second: f64,
    /// Mails the window's digests handed over (by the time the report was written).
    pub mails_sent: u64,
    /// The window's jobs still waiting or being run when it ended.
    pub pending_at_end: u64,
    pub running_at_end: u64,
    /// The window's jobs failed for good, and those not finished, when the report was written.
    pub failed: u64,
    pub unfinished: u64,
    /// Digests (done): `finished_at − run_at` as recorded (the wait to be claimed, see above).
    pub digest_run_to_finished: Option<Lag>,
    /// Digests (done): `finished_at − created_at` as recorded (with retries, if any).
    pub digest_created_to_finished: Option<Lag>,
    /// Digests that sent a mail: from `created_at` to the mail handed over (`sent_at`).
    pub digest_created_to_sent: Option<Lag>,
    /// Schedule jobs: `finished_at − run_at` as recorded (the wait to be claimed).
    pub schedule_run_to_finished: Option<Lag>,
    /// Schedule jobs: from `run_at` until the benchmark saw them finished (it looks every
    /// 0.1 s): how long a run took, wait included.
    pub schedule_run_to_seen_finished: Option<Lag>,
    /// The schedule run that enqueued the most digests (they share its `created_at`): how fast
    /// the workers went through them, which is the queue's pace when it has work, not the
    /// phase's average.
    #[serde(default)]
    pub largest_digest_batch: Option<DigestBatch>,
}

/// The digests one schedule run enqueued, once done.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct DigestBatch {
    pub digests: u64,
    /// From the first of them claimed to the last one's end (its mail handed over, or its
    /// recorded end when it had nothing to send).
    pub seconds: f64,
    pub per_second: f64,
}

/// Seconds between two moments of jobs, over `count` jobs.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Lag {
    pub count: u64,
    pub p50_s: f64,
    pub p95_s: f64,
    pub max_s: f64,
}

/// The fairness phase, against the server with fair use at its defaults: the same normal
/// clients of one association, first alone, then while one of their colleagues floods it.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Fairness {
    pub association: String,
    pub normal_clients: usize,
    pub seconds_each: f64,
    pub quiet_requests: u64,
    pub quiet_p95_ms: f64,
    pub quiet_errors: u64,
    pub flooded_requests: u64,
    pub flooded_p95_ms: f64,
    /// Normal clients' failures during the flood (any answer but success): none expected.
    pub flooded_errors: u64,
    pub error_samples: Vec<String>,
    /// The flooder's requests at once, and how they were answered.
    pub flood_concurrency: usize,
    pub flood_served: u64,
    pub flood_rate_limited: u64,
    pub flood_other: u64,
}

/// The server's memory while files arrive: the `upload_pdf`, `upload_large` and
/// `upload_photo` phases, the same number of clients each. Uploads are written to disk as they
/// arrive, so memory must not follow the files' size: the 1 MB and 20 MB documents, handled
/// alike, are compared. Photos are decoded for their previews, which takes memory of its own.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Uploads {
    pub clients: usize,
    pub pdf_bytes: u64,
    pub large_bytes: u64,
    pub photo_bytes: u64,
    /// VmRSS just before the first upload phase.
    pub rss_before_mb: Option<f64>,
    /// Highest VmRSS sampled (ten times a second) during each phase.
    pub pdf_max_rss_mb: Option<f64>,
    pub large_max_rss_mb: Option<f64>,
    pub photo_max_rss_mb: Option<f64>,
}

impl Uploads {
    /// How much more the server held with the 20 MB documents than with the 1 MB ones.
    pub fn growth_mb(&self) -> Option<f64> {
        Some(self.large_max_rss_mb? - self.pdf_max_rss_mb?)
    }
}

/// The overload phase: requests offered at a fixed rate (open loop) beyond what the server can
/// serve; it should accept what it can within budget and shed the rest at once.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Overload {
    pub offered_per_second: f64,
    pub seconds: f64,
    pub accepted: u64,
    pub accepted_p95_ms: f64,
    /// Answered `503 OVERLOADED`.
    pub shed: u64,
    pub shed_p95_ms: f64,
    /// Anything else (timeouts, other errors): none expected.
    pub errors: u64,
    pub error_samples: Vec<String>,
    pub max_rss_mb: Option<f64>,
    /// From the end of the overload until five requests in a row were served.
    pub recovery_seconds: Option<f64>,
    /// The accepted actions by operation, to hold each to its own budget.
    #[serde(default)]
    pub accepted_by_operation: Vec<OverloadOperation>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct OverloadOperation {
    pub name: String,
    pub accepted: u64,
    pub p95_ms: f64,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Machine {
    pub cpus: usize,
    pub cpu_model: String,
    pub memory_total_mb: u64,
    pub kernel: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Dataset {
    pub counts: DatasetCounts,
    pub generation_seconds: f64,
    /// `pg_database_size`, null when it could not be read.
    pub database_size_mb: Option<f64>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Server {
    pub pid: Option<u32>,
    /// VmHWM at the end of the run (the process's peak resident set).
    pub peak_rss_mb: Option<f64>,
    /// Highest VmRSS sampled (every second) while the subscriptions were open.
    pub max_rss_during_subscriptions_mb: Option<f64>,
    /// Tenant connections handed from one association to another over the whole run, and the
    /// most open at the end (`/metrics`).
    #[serde(default)]
    pub tenant_rekeys: Option<u64>,
    #[serde(default)]
    pub tenant_connections: Option<u64>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Operation {
    pub name: String,
    /// `single` or `mixed`.
    pub phase: String,
    /// Requests sent (successful or not).
    pub requests: u64,
    pub errors: u64,
    /// Successful requests per second of the phase.
    pub throughput_rps: f64,
    /// Latencies of the successful requests.
    pub p50_ms: f64,
    pub p95_ms: f64,
    pub p99_ms: f64,
    pub max_ms: f64,
    /// Single-operation phases: this throughput over the floor's.
    pub ratio_to_floor: Option<f64>,
    /// Single-operation phases: the CPU Musubi and PostgreSQL spent per request (the
    /// benchmark's client and anything else on the machine not counted).
    #[serde(default)]
    pub musubi_cpu_ms_per_request: Option<f64>,
    #[serde(default)]
    pub postgres_cpu_ms_per_request: Option<f64>,
    pub error_samples: Vec<String>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Subscriptions {
    pub requested: usize,
    /// Acknowledged by the server (`connection_ack`) and subscribed.
    pub opened: usize,
    /// Could not connect or were not acknowledged.
    pub failed: usize,
    /// `next` messages received while open.
    pub events_received: u64,
    /// `error` messages, `next` with errors, unexpected `complete` or close.
    pub errors: u64,
    pub error_samples: Vec<String>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Mixed {
    pub people: usize,
    pub seconds: f64,
    pub actions: u64,
    pub errors: u64,
    pub actions_per_second: f64,
    /// Actions that started more than a second after they were due: the driver (or the
    /// machine) could not keep up, and the figures understate the load asked for.
    pub late_actions: u64,
    /// CPU time per action (user + system) of the Musubi process and of PostgreSQL (the
    /// postmaster and its children), in milliseconds, when they could be read.
    #[serde(default)]
    pub musubi_cpu_ms_per_action: Option<f64>,
    #[serde(default)]
    pub postgres_cpu_ms_per_action: Option<f64>,
    /// The same for the benchmark's own process (the simulated people and the subscriptions).
    #[serde(default)]
    pub driver_cpu_ms_per_action: Option<f64>,
    /// The share of the machine's CPU time that was busy during the phase (every process), in
    /// percent: near 100 the phase measured what the machine could give, not what was asked.
    #[serde(default)]
    pub machine_busy_percent: Option<f64>,
    /// Seconds of the phase in which at least a tenth of the actions that started took over
    /// [`SLOW_ACTION_MS`]: a few such seconds among fast ones are a stall (something held
    /// everyone up at once), all of them a machine at its limit.
    #[serde(default)]
    pub slow_seconds: u64,
    /// The slowest seconds, worst first (at most [`WORST_SECONDS`]).
    #[serde(default)]
    pub worst_seconds: Vec<SecondOfMixed>,
}

/// An action slower than this counts towards a slow second of the mixed phase.
pub const SLOW_ACTION_MS: u64 = 100;
/// Slowest seconds kept in the report.
pub const WORST_SECONDS: usize = 3;

/// One second of the mixed phase, by the actions that started in it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SecondOfMixed {
    /// Seconds since the phase started.
    pub at: u64,
    pub actions: u64,
    /// Of them, those that took over [`SLOW_ACTION_MS`].
    pub slow: u64,
    pub max_ms: u64,
}

impl SecondOfMixed {
    /// At least a tenth of its actions (and at least one) were slow.
    pub fn is_slow(&self) -> bool {
        self.slow > 0 && self.slow * 10 >= self.actions
    }
}

/// How many seconds were slow, and the worst ones (by their number of slow actions, then
/// their slowest action: a second with one slow action of one is no stall).
pub fn slow_seconds(seconds: &[SecondOfMixed]) -> (u64, Vec<SecondOfMixed>) {
    let slow = seconds.iter().filter(|s| s.is_slow()).count() as u64;
    let mut worst: Vec<SecondOfMixed> = seconds.iter().copied().filter(|s| s.slow > 0).collect();
    worst.sort_by(|a, b| b.slow.cmp(&a.slow).then(b.max_ms.cmp(&a.max_ms)));
    worst.truncate(WORST_SECONDS);
    (slow, worst)
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Budget {
    pub name: String,
    pub limit: f64,
    /// Null when not measured (e.g. no server pid).
    pub actual: Option<f64>,
    pub unit: String,
    pub met: bool,
    /// Budgets hold for the medium and large scales only, but for a few judged at every
    /// scale like errors (no failed notification jobs).
    pub applies: bool,
}

impl Report {
    /// The table printed to stdout.
    pub fn table(&self) -> String {
        let mut out = String::new();
        let _ = writeln!(
            out,
            "Musubi benchmark — scale {}, seed {}{}{}",
            self.scale,
            self.seed,
            if self.label.is_empty() { "" } else { ", " },
            self.label
        );
        let _ = writeln!(
            out,
            "machine: {} CPUs ({}), {} MB, Linux {}",
            self.machine.cpus,
            self.machine.cpu_model,
            self.machine.memory_total_mb,
            self.machine.kernel
        );
        let c = &self.dataset.counts;
        let _ = writeln!(
            out,
            "dataset: {} people, {} groups, {} topics, {} comments, {} footprints; {} generated in {:.0} s",
            c.people,
            c.patient_groups + c.general_groups,
            c.topics,
            c.comments,
            c.footprints,
            self.dataset
                .database_size_mb
                .map_or_else(|| "? MB".to_owned(), |m| format!("{m:.0} MB")),
            self.dataset.generation_seconds
        );
        if c.crowded_groups + c.heavy_readers > 0 {
            let _ = writeln!(
                out,
                "  of which {} crowded groups of 40 with {} topics read by everyone (topic_crowded), {} heavy readers with {} unread in all (home_heavy)",
                c.crowded_groups, c.crowded_topics, c.heavy_readers, c.heavy_unread
            );
        }
        if c.search_docs > 0 {
            let _ = writeln!(
                out,
                "  {} search documents; the searchers are in {}–{} groups (search, search_two_chars)",
                c.search_docs, c.searcher_groups_min, c.searcher_groups_max
            );
        }
        let _ = writeln!(out);
        let _ = writeln!(
            out,
            "{:<22} {:>8} {:>7} {:>9} {:>8} {:>8} {:>8} {:>8} {:>7} {:>13}",
            "operation",
            "requests",
            "errors",
            "req/s",
            "p50 ms",
            "p95 ms",
            "p99 ms",
            "max ms",
            "×floor",
            "CPU ms M/PG"
        );
        for o in &self.operations {
            let _ = writeln!(
                out,
                "{:<22} {:>8} {:>7} {:>9.1} {:>8.2} {:>8.2} {:>8.2} {:>8.1} {:>7} {:>13}",
                o.name,
                o.requests,
                o.errors,
                o.throughput_rps,
                o.p50_ms,
                o.p95_ms,
                o.p99_ms,
                o.max_ms,
                o.ratio_to_floor
                    .map_or_else(String::new, |r| format!("{r:.2}")),
                match (o.musubi_cpu_ms_per_request, o.postgres_cpu_ms_per_request) {
                    (Some(m), Some(p)) => format!("{m:.2}/{p:.2}"),
                    (None, Some(p)) => format!("-/{p:.2}"),
                    _ => String::new(),
                }
            );
            for s in &o.error_samples {
                let _ = writeln!(out, "    ! {}", one_line(s));
            }
        }
        let s = &self.subscriptions;
        let _ = writeln!(out);
        let _ = writeln!(
            out,
            "subscriptions: {} requested, {} opened, {} failed, {} events received, {} errors",
            s.requested, s.opened, s.failed, s.events_received, s.errors
        );
        for e in &s.error_samples {
            let _ = writeln!(out, "    ! {}", one_line(e));
        }
        let m = &self.mixed;
        let _ = writeln!(
            out,
            "mixed: {} people for {:.0} s, {} actions ({:.1}/s), {} errors, {} late; CPU per action: Musubi {}, PostgreSQL {}, driver {}; machine busy {}",
            m.people,
            m.seconds,
            m.actions,
            m.actions_per_second,
            m.errors,
            m.late_actions,
            m.musubi_cpu_ms_per_action
                .map_or_else(|| "?".to_owned(), |v| format!("{v:.2} ms")),
            m.postgres_cpu_ms_per_action
                .map_or_else(|| "?".to_owned(), |v| format!("{v:.2} ms")),
            m.driver_cpu_ms_per_action
                .map_or_else(|| "?".to_owned(), |v| format!("{v:.2} ms")),
            m.machine_busy_percent
                .map_or_else(|| "?".to_owned(), |v| format!("{v:.0}%"))
        );
        if m.actions > 0 {
            let worst: Vec<String> = m
                .worst_seconds
                .iter()
                .map(|w| {
                    format!(
                        "at {} s {} of {} (max {} ms)",
                        w.at, w.slow, w.actions, w.max_ms
                    )
                })
                .collect();
            let _ = writeln!(
                out,
                "  seconds with a tenth of the actions over {SLOW_ACTION_MS} ms: {} of {:.0}{}{}",
                m.slow_seconds,
                m.seconds,
                if worst.is_empty() { "" } else { "; slowest: " },
                worst.join(", ")
            );
        }
        let mb = |v: Option<f64>| v.map_or_else(|| "?".to_owned(), |v| format!("{v:.1} MB"));
        if let Some(u) = &self.uploads {
            let size = |b: u64| format!("{:.1} MB", b as f64 / 1_048_576.0);
            let _ = writeln!(
                out,
                "uploads ({} clients): server RSS {} before; at most {} with {} PDFs, {} with {} PDFs ({}); {} with {} photos",
                u.clients,
                mb(u.rss_before_mb),
                mb(u.pdf_max_rss_mb),
                size(u.pdf_bytes),
                mb(u.large_max_rss_mb),
                size(u.large_bytes),
                u.growth_mb()
                    .map_or_else(|| "?".to_owned(), |g| format!("{g:+.1} MB")),
                mb(u.photo_max_rss_mb),
                size(u.photo_bytes)
            );
        }
        if let Some(f) = &self.fairness {
            let _ = writeln!(
                out,
                "fairness ({}): {} colleagues p95 {:.1} ms alone, {:.1} ms during a flood ({} errors); flooder ({} at once): {} served, {} RATE_LIMITED, {} other",
                f.association,
                f.normal_clients,
                f.quiet_p95_ms,
                f.flooded_p95_ms,
                f.flooded_errors,
                f.flood_concurrency,
                f.flood_served,
                f.flood_rate_limited,
                f.flood_other
            );
        }
        if let Some(o) = &self.overload {
            let _ = writeln!(
                out,
                "overload: {:.0}/s offered for {:.0} s: {} accepted (p95 {:.1} ms), {} shed (p95 {:.1} ms), {} errors, RSS max {}, normal again after {}",
                o.offered_per_second,
                o.seconds,
                o.accepted,
                o.accepted_p95_ms,
                o.shed,
                o.shed_p95_ms,
                o.errors,
                mb(o.max_rss_mb),
                o.recovery_seconds
                    .map_or_else(|| "? (not within 30 s)".to_owned(), |s| format!("{s:.1} s"))
            );
            for e in &o.error_samples {
                let _ = writeln!(out, "    ! {}", one_line(e));
            }
        }
        if let Some(q) = &self.notification_queue {
            let _ = writeln!(
                out,
                "notification queue ({:.0} s of mixed phase): {} schedule runs, {} digests; done in the phase {:.2} digests/s ({:.2} jobs/s), {} mails; at the end {} pending, {} running; {} failed, {} unfinished",
                q.seconds,
                q.schedule_jobs,
                q.digest_jobs,
                q.digests_per_second,
                q.jobs_per_second,
                q.mails_sent,
                q.pending_at_end,
                q.running_at_end,
                q.failed,
                q.unfinished
            );
            let lag = |l: &Option<Lag>| {
                l.as_ref().map_or_else(
                    || "—".to_owned(),
                    |l| {
                        format!(
                            "p50 {:.2} s, p95 {:.2} s, max {:.2} s",
                            l.p50_s, l.p95_s, l.max_s
                        )
                    },
                )
            };
            let _ = writeln!(
                out,
                "  digest created → mail sent {}; run_at → finished_at (as recorded: the claim) {}",
                lag(&q.digest_created_to_sent),
                lag(&q.digest_run_to_finished)
            );
            let _ = writeln!(
                out,
                "  schedule run_at → seen finished {}; run_at → finished_at (as recorded) {}",
                lag(&q.schedule_run_to_seen_finished),
                lag(&q.schedule_run_to_finished)
            );
            if let Some(b) = &q.largest_digest_batch {
                let _ = writeln!(
                    out,
                    "  largest schedule run: {} digests gone through in {:.2} s ({:.0}/s)",
                    b.digests, b.seconds, b.per_second
                );
            }
            if let Some(n) = &q.note {
                let _ = writeln!(out, "    ! {n}");
            }
        }
        let _ = writeln!(
            out,
            "server memory: peak (VmHWM) {}, max during subscriptions {}; tenant connections {} open, re-keyed {} times",
            mb(self.server.peak_rss_mb),
            mb(self.server.max_rss_during_subscriptions_mb),
            self.server
                .tenant_connections
                .map_or_else(|| "?".to_owned(), |v| v.to_string()),
            self.server
                .tenant_rekeys
                .map_or_else(|| "?".to_owned(), |v| v.to_string())
        );
        let _ = writeln!(out);
        let _ = writeln!(out, "budgets:");
        for b in &self.budgets {
            let mark = if b.met { "✓" } else { "✗" };
            let actual = b
                .actual
                .map_or_else(|| "?".to_owned(), |a| format!("{a:.1}"));
            let _ = writeln!(
                out,
                "  {mark} {:<44} {:>8} {} (limit {}){}",
                b.name,
                actual,
                b.unit,
                b.limit,
                if b.applies {
                    ""
                } else {
                    "  — not applicable at this scale"
                }
            );
        }
        out
    }
}

fn one_line(s: &str) -> String {
    let flat: String = s
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .take(200)
        .collect();
    flat
}

#[cfg(test)]
mod tests {
    use super::*;

    fn second(at: u64, actions: u64, slow: u64, max_ms: u64) -> SecondOfMixed {
        SecondOfMixed {
            at,
            actions,
            slow,
            max_ms,
        }
    }

    #[test]
    fn a_stall_stands_out_among_fast_seconds() {
        let seconds = [
            second(0, 400, 2, 180),
            second(1, 450, 300, 1_800),
            second(2, 420, 42, 400),
            second(3, 430, 41, 900),
            second(4, 0, 0, 0),
            second(5, 410, 0, 90),
            second(6, 1, 1, 110),
        ];
        let (slow, worst) = slow_seconds(&seconds);
        // 300 of 450, 42 of 420 and 1 of 1 are a tenth or more; 41 of 430 and 2 of 400 not.
        assert_eq!(slow, 3);
        assert_eq!(
            worst.iter().map(|s| s.at).collect::<Vec<_>>(),
            vec![1, 2, 3],
            "by the number of slow actions, at most three"
        );
    }

    #[test]
    fn equal_counts_put_the_slowest_action_first_and_quiet_seconds_are_left_out() {
        let (slow, worst) = slow_seconds(&[second(7, 100, 20, 300), second(8, 200, 20, 900)]);
        assert_eq!(slow, 2);
        assert_eq!(worst.iter().map(|s| s.at).collect::<Vec<_>>(), vec![8, 7]);
        let (slow, worst) = slow_seconds(&[second(0, 100, 0, 50)]);
        assert_eq!((slow, worst.len()), (0, 0));
    }
}
