//! Telling people of unread comments by e-mail, without patient information.
//!
//! ```text
//! every minute (one job: notify.schedule)
//!   per association: people with unread newer than their told-until mark → pending
//!   pending people whose mail is due (immediate after the batch wait, hourly, daily at their
//!   time) → one notify.digest job each, pending cleared in the same statement
//! notify.digest
//!   counts per association (and group names where allowed, never of patient groups)
//!   record the mail and move told-until → COMMIT → send → mark sent and the job done together
//! ```
//!
//! Recording before sending makes a digest go at most once: a process that dies while sending
//! leaves the job to be found as interrupted, and it is not sent again (a job that died before
//! it recorded its mail simply runs again). What it would have told
//! is still counted in the next digest (every digest gives the whole unread count), and the
//! home page shows it all.

use crate::audit::AuditAction;
use crate::jobs::{JobError, Outcome, SCHEDULE_PERIOD_SECS};
use crate::sessions::Viewer;
use crate::types::{GroupId, PersonId};
use crate::{Actor, AppError, AppResult, Services};
use chrono::{DateTime, Duration, NaiveTime, Timelike, Utc};
use musubi_db::groups as groups_repo;
use musubi_db::jobs as jobs_repo;
use musubi_db::jobs::JobRow;
use musubi_db::notifications as repo;
use musubi_notify::{digest_mail, DigestGroup, DigestSummary, Mail, MailKind};

/// How often a person wants mail about unread comments.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EmailMode {
    /// Soon after something arrives, several arrivals in one mail.
    Immediate,
    /// At most once an hour, on the hour.
    Hourly,
    /// Once a day at the person's time.
    Daily,
    Off,
}

impl EmailMode {
    pub const ALL: [EmailMode; 4] = [
        EmailMode::Immediate,
        EmailMode::Hourly,
        EmailMode::Daily,
        EmailMode::Off,
    ];

    pub fn code(self) -> &'static str {
        match self {
            EmailMode::Immediate => "immediate",
            EmailMode::Hourly => "hourly",
            EmailMode::Daily => "daily",
            EmailMode::Off => "off",
        }
    }

    pub fn from_code(code: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|m| m.code() == code)
    }
}

/// The default daily time (Asia/Tokyo): after the day's visits.
pub fn default_daily_at() -> NaiveTime {
    NaiveTime::from_hms_opt(18, 0, 0).unwrap_or(NaiveTime::MIN)
}

/// A person's notification settings.
#[derive(Debug, Clone)]
pub struct NotificationSettings {
    pub email_mode: EmailMode,
    pub daily_at: NaiveTime,
    /// Groups they hear nothing about by mail.
    pub muted: Vec<GroupId>,
    /// Where the mails go.
    pub email: String,
    pub last_sent_at: Option<DateTime<Utc>>,
}

/// One notification sent to a person (the in-app list).
#[derive(Debug, Clone)]
pub struct SentNotification {
    pub id: i64,
    pub channel: String,
    pub kind: String,
    /// `sending`, `sent`, `retrying`, `failed`, `interrupted`.
    pub state: String,
    pub unread: i32,
    pub created_at: DateTime<Utc>,
    pub sent_at: Option<DateTime<Utc>>,
}

/// What the console shows of the mail its members were sent.
#[derive(Debug, Clone, Default)]
pub struct MemberMailStatus {
    /// Over the last [`CONSOLE_DAYS`] days.
    pub sent: i64,
    /// Failed for good, interrupted (may or may not have arrived) or waiting for a retry.
    pub not_delivered: i64,
    /// The latest of those: (member's name, `digest` / `urgent`, state, when).
    pub failures: Vec<(String, String, String, DateTime<Utc>)>,
}

/// The console looks this many days back.
pub const CONSOLE_DAYS: i64 = 14;

/// Most entries the in-app list shows.
pub const SENT_LIST_LIMIT: i64 = 50;

/// Activity this close to the schedule's run is looked at again next time: a transaction may
/// commit after the run with an earlier time.
const OVERLAP_SECS: i64 = 120;

/// Most digests enqueued per statement.
const DUE_BATCH: i64 = 500;

impl Services {
    /// The signed-in person's settings.
    pub async fn notification_settings(&self, viewer: &Viewer) -> AppResult<NotificationSettings> {
        let me = viewer.user.id;
        let mut conn = self
            .db()
            .pool()
            .acquire()
            .await
            .map_err(AppError::internal)?;
        let row = repo::settings(&mut conn, me).await?;
        let muted = repo::mutes(&mut conn, me).await?;
        Ok(NotificationSettings {
            email_mode: row
                .as_ref()
                .and_then(|r| EmailMode::from_code(&r.email_mode))
                .unwrap_or(EmailMode::Immediate),
            daily_at: row
                .as_ref()
                .map(|r| r.daily_at)
                .unwrap_or_else(default_daily_at),
            muted,
            email: viewer.user.email.clone(),
            last_sent_at: row.and_then(|r| r.last_sent_at),
        })
    }

    /// Changes how often mail tells the person of unread comments (recorded in the acting
    /// association's audit log). The daily time is kept to the minute.
    pub async fn update_notification_settings(
        &self,
        actor: &Actor<'_>,
        mode: EmailMode,
        daily_at: NaiveTime,
    ) -> AppResult<()> {
        let daily_at = daily_at.with_second(0).and_then(|t| t.with_nanosecond(0));
        let daily_at = daily_at.ok_or_else(|| AppError::invalid("dailyAt", "not a time of day"))?;
        let me = actor.viewer.user.id;
        let mut c = self.change(actor).await?;
        repo::save_settings(c.conn(), me, mode.code(), daily_at, Utc::now()).await?;
        let entry = c
            .entry(AuditAction::NotificationSettings)
            .on("user", me)
            .with_detail("email_mode", mode.code())
            .with_detail("daily_at", daily_at.format("%H:%M").to_string());
        c.audit(entry);
        c.commit().await
    }

    /// Stops (or resumes) mail about one group the person is an active member of.
    pub async fn set_group_mail_muted(
        &self,
        actor: &Actor<'_>,
        group_id: GroupId,
        muted: bool,
    ) -> AppResult<()> {
        let me = actor.viewer.user.id;
        let mut c = self.change(actor).await?;
        if !repo::is_active_member(c.conn(), group_id, me).await? {
            return Err(AppError::not_found());
        }
        repo::set_mute(c.conn(), me, group_id, muted).await?;
        let entry = c
            .entry(AuditAction::NotificationMute)
            .on("group", group_id)
            .with_detail("muted", muted);
        c.audit(entry);
        c.commit().await
    }

    /// For the association's administrators: how the mail to its members went lately (a
    /// failed address shows here before anyone complains).
    pub async fn member_mail_status(&self, actor: &Actor<'_>) -> AppResult<MemberMailStatus> {
        self.authorize_in(
            actor,
            musubi_authz::Object::Settings,
            musubi_authz::Action::Read,
        )
        .await?;
        let since = Utc::now() - Duration::days(CONSOLE_DAYS);
        let mut c = self.change(actor).await?;
        let counts = repo::member_counts(c.conn(), actor.tenant.id, since).await?;
        let failures = repo::member_failures(c.conn(), actor.tenant.id, since, 10).await?;
        c.commit().await?;
        let count = |states: &[&str]| {
            counts
                .iter()
                .filter(|(s, _)| states.contains(&s.as_str()))
                .map(|(_, n)| n)
                .sum()
        };
        Ok(MemberMailStatus {
            sent: count(&["sent"]),
            not_delivered: count(&["failed", "interrupted", "retrying"]),
            failures: failures
                .into_iter()
                .map(|f| (f.name, f.kind, f.state, f.created_at))
                .collect(),
        })
    }

    /// What was sent to the signed-in person, newest first.
    pub async fn notifications_sent(&self, viewer: &Viewer) -> AppResult<Vec<SentNotification>> {
        let mut conn = self
            .db()
            .pool()
            .acquire()
            .await
            .map_err(AppError::internal)?;
        let rows = repo::sent_to(&mut conn, viewer.user.id, SENT_LIST_LIMIT).await?;
        Ok(rows
            .into_iter()
            .map(|r| SentNotification {
                id: r.id,
                channel: r.channel,
                kind: r.kind,
                state: r.state,
                unread: r.unread,
                created_at: r.created_at,
                sent_at: r.sent_at,
            })
            .collect())
    }

    /// Runs the notification schedule at `now` at once, outside the queue (tests, and an
    /// operator who does not want to wait for the next period).
    pub async fn run_notification_schedule(&self, now: DateTime<Utc>) -> AppResult<()> {
        self.run_schedule(now).await.map_err(|e| match e {
            JobError::Retry(m) | JobError::Fatal(m) => AppError::internal(std::io::Error::other(m)),
        })
    }

    /// The schedule (job `notify.schedule`): marks people with news pending, then enqueues the
    /// digests that are due at `now`. Safe to run twice.
    pub(crate) async fn run_schedule(&self, now: DateTime<Utc>) -> Result<(), JobError> {
        let pool = self.db().pool();
        let tenants = self.db().tenants().await?;
        for tenant in &tenants {
            let mut core = pool
                .acquire()
                .await
                .map_err(|e| JobError::Retry(e.to_string()))?;
            let since = repo::cursor(&mut core, tenant.id)
                .await?
                .unwrap_or(now - Duration::seconds(SCHEDULE_PERIOD_SECS));
            let mut conn = self.db().tenant_read(tenant).await?;
            let news = repo::news_since(&mut conn, since).await?;
            conn.done();
            if !news.is_empty() {
                repo::mark_pending(&mut core, &news, since, now).await?;
            }
            let next = (now - Duration::seconds(OVERLAP_SECS)).max(since);
            repo::set_cursor(&mut core, tenant.id, next).await?;
        }
        self.run_urgent_schedule(now).await?;
        let batch = Duration::from_std(self.timing().mail_batch).unwrap_or_default();
        let mut core = pool
            .acquire()
            .await
            .map_err(|e| JobError::Retry(e.to_string()))?;
        loop {
            let jobs = repo::enqueue_due_digests(&mut core, now, batch, DUE_BATCH).await?;
            if (jobs.len() as i64) < DUE_BATCH {
                break;
            }
        }
        Ok(())
    }

    /// One digest (job `notify.digest`).
    pub(crate) async fn run_digest(
        &self,
        job: &JobRow,
        now: DateTime<Utc>,
    ) -> Result<Outcome, JobError> {
        let user = job
            .payload
            .get("user_id")
            .and_then(|v| v.as_str())
            .and_then(|s| s.parse::<uuid::Uuid>().ok())
            .map(PersonId::from)
            .ok_or_else(|| JobError::Fatal("the job names no person".into()))?;
        let pool = self.db().pool();
        let mut core = pool
            .acquire()
            .await
            .map_err(|e| JobError::Retry(e.to_string()))?;
        let Some(recipient) = repo::mail_context(&mut core, user, job.id).await? else {
            return Ok(Outcome::Done);
        };
        drop(core);
        if let Some(outcome) = self
            .resend_recorded(
                recipient.earlier,
                job,
                MailKind::Digest,
                &recipient.email,
                now,
            )
            .await?
        {
            return Ok(outcome);
        }
        if !recipient.active {
            return Ok(Outcome::Done);
        }
        let Some(settings) = recipient.settings else {
            return Ok(Outcome::Done);
        };
        let Some((summary, told_until)) = self
            .digest_summary(user, settings.told_until, &recipient.muted)
            .await?
        else {
            return Ok(Outcome::Done);
        };
        if settings.email_mode == EmailMode::Off.code() {
            // No mail: the person's phones alone hear of it (the schedule marks only people
            // with a device for this). Recorded as sent to list it among what was sent.
            let mut tx = self.db().core_tx().await?;
            let id = repo::record(
                &mut tx,
                &repo::NewNotification {
                    user,
                    job_id: job.id,
                    channel: "push",
                    kind: "digest",
                    subject: "",
                    body: "",
                    unread: i32::try_from(summary.unread).unwrap_or(i32::MAX),
                    told_until,
                    effects_started: false,
                },
                now,
            )
            .await?;
            self.enqueue_push(&mut tx, user, &crate::push::PushMessage::news(), now)
                .await?;
            repo::set_state(&mut tx, id, "sent", Some(now)).await?;
            jobs_repo::complete(&mut tx, job.id, now).await?;
            tx.commit().await?;
            return Ok(Outcome::Recorded);
        }
        let mut mail = digest_mail(&recipient.email, self.mailer().public_url(), &summary);
        let mut tx = self.db().core_tx().await?;
        let id = repo::record(
            &mut tx,
            &repo::NewNotification {
                user,
                job_id: job.id,
                channel: "email",
                kind: "digest",
                subject: &mail.subject,
                body: &mail.body,
                unread: i32::try_from(summary.unread).unwrap_or(i32::MAX),
                told_until,
                effects_started: true,
            },
            now,
        )
        .await?;
        // The person's phones hear of it with the mail (a push says only that something came).
        self.enqueue_push(&mut tx, user, &crate::push::PushMessage::news(), now)
            .await?;
        tx.commit().await?;
        mail.message_id = Some(message_id(id));
        self.deliver(job, id, &mail).await
    }

    /// A notification job that already recorded its mail (`None` when it has not): after a
    /// refused delivery (`retrying`) the very same mail again; anything else is not sent again.
    pub(crate) async fn resend_recorded(
        &self,
        earlier: Option<repo::NotificationRow>,
        job: &JobRow,
        kind: MailKind,
        to: &str,
        now: DateTime<Utc>,
    ) -> Result<Option<Outcome>, JobError> {
        let Some(earlier) = earlier else {
            return Ok(None);
        };
        if earlier.state != "retrying" {
            return Err(JobError::Fatal(format!(
                "notification {} is {}, not sent again",
                earlier.id, earlier.state
            )));
        }
        let mut tx = self.db().core_tx().await?;
        repo::set_state(&mut tx, earlier.id, "sending", None).await?;
        jobs_repo::mark_effects_started(&mut tx, job.id, now).await?;
        tx.commit().await?;
        let mail = Mail {
            kind,
            to: to.to_owned(),
            subject: earlier.subject,
            body: earlier.body,
            link: format!("{}/", self.mailer().public_url()),
            message_id: Some(message_id(earlier.id)),
        };
        self.deliver(job, earlier.id, &mail).await.map(Some)
    }

    /// Sends a recorded mail; on success marks it sent and the job done together.
    pub(crate) async fn deliver(
        &self,
        job: &JobRow,
        notification: i64,
        mail: &Mail,
    ) -> Result<Outcome, JobError> {
        let sent = self.mailer().send(mail).await;
        let mut conn = self
            .db()
            .pool()
            .acquire()
            .await
            .map_err(|e| JobError::Retry(e.to_string()))?;
        match sent {
            Ok(()) => {
                repo::mark_sent_and_complete(&mut conn, notification, job.id, Utc::now()).await?;
                Ok(Outcome::Recorded)
            }
            Err(e) => {
                repo::set_state(&mut conn, notification, "retrying", None).await?;
                match e {
                    musubi_notify::MailError::InvalidAddress
                    | musubi_notify::MailError::Build(_) => {
                        Err(JobError::Fatal(e.code().to_owned()))
                    }
                    _ => Err(JobError::Retry(e.code().to_owned())),
                }
            }
        }
    }

    /// What a digest for `user` says, and the newest arrival it covers; `None` when nothing
    /// arrived after `told_until` outside muted groups.
    async fn digest_summary(
        &self,
        user: PersonId,
        told_until: DateTime<Utc>,
        muted: &[GroupId],
    ) -> Result<Option<(DigestSummary, DateTime<Utc>)>, JobError> {
        let directory = groups_repo::directory_of(self.db().pool(), user).await?;
        let mut summary = DigestSummary::default();
        let mut fresh = false;
        let mut newest = told_until;
        for entry in directory.into_iter().filter(|d| d.active > 0) {
            let Ok(tenant) = self.db().resolve_tenant(&entry.slug).await else {
                continue;
            };
            let mut conn = self.db().tenant_read(&tenant).await?;
            let lines = repo::digest_lines(&mut conn, user, told_until).await?;
            conn.done();
            let may_name = lines.first().is_some_and(|l| l.may_name);
            let lines: Vec<_> = lines
                .into_iter()
                .filter(|l| !muted.contains(&l.group_id))
                .collect();
            if lines.is_empty() {
                continue;
            }
            fresh |= lines.iter().any(|l| l.fresh);
            let mut groups = Vec::new();
            let (mut others, mut others_unread) = (0, 0);
            for l in &lines {
                newest = newest.max(l.newest_at);
                if may_name && !l.patient {
                    groups.push(DigestGroup::Named {
                        name: l.group_name.clone(),
                        unread: l.unread,
                    });
                } else {
                    others += 1;
                    others_unread += l.unread;
                }
            }
            if others > 0 {
                groups.push(DigestGroup::Others {
                    groups: others,
                    unread: others_unread,
                });
            }
            let unread: i64 = lines.iter().map(|l| l.unread).sum();
            summary.unread += unread;
            summary.important += lines.iter().map(|l| l.important).sum::<i64>();
            summary
                .associations
                .push((tenant.name.clone(), unread, groups));
        }
        Ok(fresh.then_some((summary, newest)))
    }
}

/// The `Message-ID` local part of notification `id`: the same mail is recognisable wherever
/// it lands.
pub(crate) fn message_id(id: i64) -> String {
    format!("musubi-notification-{id}")
}
