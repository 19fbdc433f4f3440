//! 至急: a comment that asks for an acknowledgement.
//!
//! ```text
//! posted      the people named (else, in a patient group, the attending doctor) are asked;
//!             each gets a mail (and a push) at once, whatever their digest frequency
//! +T          nobody acknowledged: asked again                       (T: the association's
//! +2T         still nobody: the doctor on duty from the calendar      urgent_ack_minutes,
//!             is asked too (made a member of the group for a day      15 by default)
//!             if they were not one); with nobody on duty the author is told so
//! any time    someone acknowledges: nothing more happens
//! ```
//!
//! Every step is kept (`urgent_steps`), shown on the comment and audited. Mails and pushes
//! carry a link with ids only, never patient information.

use crate::audit::{AuditAction, RequestMeta};
use crate::change::{Change, EventSpec};
use crate::jobs::{JobError, Outcome, KIND_URGENT};
use crate::types::{CommentId, GroupId, PersonId, TopicId};
use crate::{Actor, AppError, AppResult, Services, Tenant};
use chrono::{DateTime, Duration, NaiveDate, Timelike, Utc};
use musubi_authz::{Action, Object};
use musubi_db::groups::{self as groups_repo, HostedGroup, TopicAccessRow};
use musubi_db::jobs::{self as jobs_repo, JobRow, NewJob};
use musubi_db::notifications as notify_repo;
use musubi_db::urgent as repo;
use musubi_notify::{urgent_mail, MailKind, UrgentStage};
use musubi_realtime::EventKind;

/// Most people one urgent comment may name.
pub const MAX_NAMED: usize = 10;

/// How long a doctor on duty stays a member of a group an escalation brought them into.
pub const ON_CALL_MEMBERSHIP_HOURS: i64 = 24;

/// Day duty covers 09:00–18:00 (Asia/Tokyo); the rest belongs to the night duty, which starts
/// on the evening of its day.
const DAY_STARTS: u32 = 9;
const DAY_ENDS: u32 = 18;

/// A 至急 request as the comment shows it.
#[derive(Debug, Clone)]
pub struct UrgentView {
    pub comment_id: CommentId,
    /// `asked`, `reminded`, `escalated`, `acknowledged`.
    pub stage: String,
    pub created_at: DateTime<Utc>,
    pub remind_at: DateTime<Utc>,
    pub escalate_at: DateTime<Utc>,
    pub acknowledged_by: Option<String>,
    pub acknowledged_at: Option<DateTime<Utc>>,
    /// (person, name, `named` / `attending` / `on_call`)
    pub asked: Vec<(PersonId, String, String)>,
    /// (step, who, when), oldest first: `asked`, `reminded`, `escalated`, `no_one_on_call`,
    /// `acknowledged`.
    pub steps: Vec<(String, Option<String>, DateTime<Utc>)>,
    /// Whether the viewer may acknowledge it now.
    pub may_acknowledge: bool,
}

/// Inside the posting of a comment: records the request, its recipients and first step, and
/// enqueues their notices. Returns how many were asked.
pub(crate) async fn ask(
    c: &mut Change<'_>,
    group: &HostedGroup,
    access: &TopicAccessRow,
    comment: CommentId,
    named: &[PersonId],
    at: DateTime<Utc>,
) -> AppResult<usize> {
    let me = c.viewer_id();
    if named.len() > MAX_NAMED {
        return Err(AppError::invalid(
            "ask",
            format!("name at most {MAX_NAMED} people"),
        ));
    }
    let t = &access.topic;
    let named: Vec<PersonId> = named.iter().copied().filter(|p| Some(*p) != me).collect();
    let mut asked =
        repo::who_sees(c.conn(), group.id(), t.scope.bits(), t.author_id, &named).await?;
    if asked.len() != named.len() {
        // Someone named is not in the group (or does not see this topic).
        return Err(AppError::invalid(
            "ask",
            "everyone asked must be a member of the group who sees this topic",
        ));
    }
    let mut reason = "named";
    if asked.is_empty() && access.group_kind == crate::groups::GroupKind::Patient {
        if let Some(doctor) = repo::attending(c.conn(), group.id()).await? {
            if Some(doctor) != me {
                asked =
                    repo::who_sees(c.conn(), group.id(), t.scope.bits(), t.author_id, &[doctor])
                        .await?;
                reason = "attending";
            }
        }
    }
    if asked.is_empty() {
        return Err(AppError::invalid(
            "ask",
            "name who should confirm (a patient group without an attending doctor, or one who \
             cannot see this topic, needs a name)",
        ));
    }
    let minutes = i64::from(repo::ack_minutes(c.conn()).await?);
    let remind_at = at + Duration::minutes(minutes);
    let escalate_at = at + Duration::minutes(2 * minutes);
    repo::insert_request(
        c.conn(),
        comment,
        group.id(),
        t.id,
        me.unwrap_or(t.author_id),
        at,
        remind_at,
        escalate_at,
    )
    .await?;
    repo::add_recipients(c.conn(), comment, &asked, reason, at).await?;
    repo::add_step(c.conn(), comment, "asked", me, at).await?;
    let slug = c.tenant().slug.clone();
    for person in &asked {
        enqueue_notice(
            c.conn(),
            &slug,
            group.id(),
            t.id,
            comment,
            *person,
            UrgentStage::Asked,
            at,
        )
        .await?;
    }
    Ok(asked.len())
}

/// One notice (mail, and push when the person has devices) about a request, as a job.
#[allow(clippy::too_many_arguments)]
async fn enqueue_notice(
    conn: &mut sqlx::PgConnection,
    slug: &str,
    group: GroupId,
    topic: TopicId,
    comment: CommentId,
    person: PersonId,
    stage: UrgentStage,
    now: DateTime<Utc>,
) -> AppResult<()> {
    let stage_code = stage_code(stage);
    let key = format!("urgent:{comment}:{person}:{stage_code}");
    jobs_repo::enqueue(
        conn,
        &NewJob {
            kind: KIND_URGENT,
            dedupe_key: Some(&key),
            payload: serde_json::json!({
                "association": slug,
                "group_id": group,
                "topic_id": topic,
                "comment_id": comment,
                "user_id": person,
                "stage": stage_code,
            }),
            run_at: now,
            max_attempts: 5,
        },
        now,
    )
    .await?;
    Ok(())
}

fn stage_code(stage: UrgentStage) -> &'static str {
    match stage {
        UrgentStage::Asked => "asked",
        UrgentStage::Reminded => "reminded",
        UrgentStage::Escalated => "escalated",
        UrgentStage::AuthorNotice => "author_notice",
    }
}

fn stage_from(code: &str) -> Option<UrgentStage> {
    [
        UrgentStage::Asked,
        UrgentStage::Reminded,
        UrgentStage::Escalated,
        UrgentStage::AuthorNotice,
    ]
    .into_iter()
    .find(|s| stage_code(*s) == code)
}

/// The doctors on duty at `now` in the association: the day duty between 09:00 and 18:00
/// (Asia/Tokyo), else the night duty that began on the evening of its day; when the wanted
/// kind has nobody (weekdays have no day duty), the other duty of the same day.
async fn on_duty(conn: &mut sqlx::PgConnection, now: DateTime<Utc>) -> AppResult<Vec<PersonId>> {
    let local = now.with_timezone(&musubi_config::time::jst());
    let today = local.date_naive();
    let hour = local.hour();
    let (day, kind): (NaiveDate, &str) = if (DAY_STARTS..DAY_ENDS).contains(&hour) {
        (today, "day")
    } else if hour < DAY_STARTS {
        (today.pred_opt().unwrap_or(today), "night")
    } else {
        (today, "night")
    };
    let slots = repo::duties_between(conn, day, day).await?;
    let mut doctors: Vec<PersonId> = slots
        .iter()
        .filter(|(_, k, _)| k == kind)
        .map(|(_, _, p)| *p)
        .collect();
    if doctors.is_empty() {
        doctors = slots.iter().map(|(_, _, p)| *p).collect();
    }
    doctors.dedup();
    Ok(doctors)
}

impl Services {
    /// Posts a 至急 comment asking `named` (members of the group who see the topic) to
    /// acknowledge it; with nobody named in a patient group, its attending doctor is asked.
    /// Also marked 重要.
    pub async fn post_urgent_comment(
        &self,
        actor: &Actor<'_>,
        topic_id: TopicId,
        body: &str,
        named: &[PersonId],
    ) -> AppResult<CommentId> {
        self.post(actor, topic_id, body, true, &[], Some(named))
            .await
    }

    /// 「確認しました」 on a 至急 comment: by anyone who sees it but its author. Nothing more is
    /// sent afterwards. Acknowledging twice changes nothing.
    pub async fn acknowledge_urgent(
        &self,
        actor: &Actor<'_>,
        comment_id: CommentId,
    ) -> AppResult<()> {
        let me = actor.viewer.user.id;
        let mut c = self.change(actor).await?;
        let Some(request) = repo::request(c.conn(), comment_id).await? else {
            return Err(AppError::not_found());
        };
        let (group, access) = c
            .visible_topic(request.topic_id, Object::Comments, Action::Read)
            .await?;
        if request.author_id == me {
            return Err(AppError::invalid(
                "commentId",
                "the author of an urgent post cannot confirm it",
            ));
        }
        let now = Utc::now();
        if !repo::acknowledge(c.conn(), comment_id, me, now).await? {
            return Ok(());
        }
        repo::add_step(c.conn(), comment_id, "acknowledged", Some(me), now).await?;
        let t = &access.topic;
        let event = EventSpec::topic(EventKind::Acknowledged, t.id, t.scope, t.author_id);
        c.event(&group, event.comments(vec![comment_id])).await?;
        let entry = c
            .entry(AuditAction::UrgentAcknowledge)
            .on("comment", comment_id);
        c.audit(entry);
        c.commit().await
    }

    /// The 至急 requests of a topic the person sees, with who was asked and every step.
    pub async fn urgent_on_topic(
        &self,
        actor: &Actor<'_>,
        topic_id: TopicId,
    ) -> AppResult<Vec<UrgentView>> {
        let me = actor.viewer.user.id;
        let mut c = self.change(actor).await?;
        c.visible_topic(topic_id, Object::Comments, Action::Read)
            .await?;
        let (requests, recipients, steps) = repo::of_topic(c.conn(), topic_id).await?;
        c.commit().await?;
        Ok(requests
            .into_iter()
            .map(|r| {
                let acknowledged_by = steps
                    .iter()
                    .find(|s| s.comment_id == r.comment_id && s.step == "acknowledged")
                    .and_then(|s| s.user_name.clone());
                UrgentView {
                    comment_id: r.comment_id,
                    may_acknowledge: r.stage != "acknowledged" && r.author_id != me,
                    stage: r.stage,
                    created_at: r.created_at,
                    remind_at: r.remind_at,
                    escalate_at: r.escalate_at,
                    acknowledged_by,
                    acknowledged_at: r.acknowledged_at,
                    asked: recipients
                        .iter()
                        .filter(|p| p.comment_id == r.comment_id)
                        .map(|p| (p.user_id, p.name.clone(), p.reason.clone()))
                        .collect(),
                    steps: steps
                        .iter()
                        .filter(|s| s.comment_id == r.comment_id)
                        .map(|s| (s.step.clone(), s.user_name.clone(), s.at))
                        .collect(),
                }
            })
            .collect())
    }

    /// The urgent part of the schedule: reminders and escalations due at `now`, in every
    /// association.
    pub(crate) async fn run_urgent_schedule(&self, now: DateTime<Utc>) -> Result<(), JobError> {
        let tenants = self.db().tenants().await?;
        let meta = RequestMeta::new("", "musubi urgent schedule");
        for tenant in &tenants {
            // Batches of 50, at most 20 a run: one association's backlog waits for the next
            // run rather than holding the others.
            for _ in 0..20 {
                let mut c = self.change_without_viewer(tenant, &meta).await?;
                let due = repo::due(c.conn(), now, 50).await?;
                let n = due.len();
                for request in due {
                    self.next_step(&mut c, tenant, &request, now).await?;
                }
                c.commit().await?;
                if n < 50 {
                    break;
                }
            }
        }
        Ok(())
    }

    async fn next_step(
        &self,
        c: &mut Change<'_>,
        tenant: &Tenant,
        r: &repo::UrgentRow,
        now: DateTime<Utc>,
    ) -> AppResult<()> {
        let Some((hosted, group)) =
            groups_repo::group(c.conn(), tenant, r.author_id, r.group_id).await?
        else {
            // The group is gone (its requests go with it).
            return Ok(());
        };
        c.about_group(&group.name);
        let asked = repo::recipients(c.conn(), r.comment_id).await?;
        if r.stage == "asked" {
            repo::set_stage(c.conn(), r.comment_id, "reminded").await?;
            repo::add_step(c.conn(), r.comment_id, "reminded", None, now).await?;
            for person in &asked {
                enqueue_notice(
                    c.conn(),
                    &tenant.slug,
                    r.group_id,
                    r.topic_id,
                    r.comment_id,
                    *person,
                    UrgentStage::Reminded,
                    now,
                )
                .await?;
            }
            let entry = c
                .entry(AuditAction::UrgentRemind)
                .on("comment", r.comment_id)
                .with_detail("asked", asked.len() as i64);
            c.audit(entry);
        } else {
            repo::set_stage(c.conn(), r.comment_id, "escalated").await?;
            let doctors: Vec<PersonId> = on_duty(c.conn(), now)
                .await?
                .into_iter()
                .filter(|d| *d != r.author_id)
                .collect();
            if doctors.is_empty() {
                repo::add_step(c.conn(), r.comment_id, "no_one_on_call", None, now).await?;
            }
            for doctor in &doctors {
                // A doctor on duty who is not in the group is brought in for a day.
                let until = now + Duration::hours(ON_CALL_MEMBERSHIP_HOURS);
                if groups_repo::upsert_member(
                    c.conn(),
                    &hosted,
                    *doctor,
                    musubi_authz::GroupRole::Member,
                    musubi_db::types::GroupMemberStatus::Active,
                    None,
                )
                .await?
                {
                    groups_repo::set_member_until(c.conn(), &hosted, *doctor, Some(until)).await?;
                    c.event(&hosted, EventSpec::membership(*doctor)).await?;
                }
                repo::add_recipients(c.conn(), r.comment_id, &[*doctor], "on_call", now).await?;
                repo::add_step(c.conn(), r.comment_id, "escalated", Some(*doctor), now).await?;
                enqueue_notice(
                    c.conn(),
                    &tenant.slug,
                    r.group_id,
                    r.topic_id,
                    r.comment_id,
                    *doctor,
                    UrgentStage::Escalated,
                    now,
                )
                .await?;
            }
            enqueue_notice(
                c.conn(),
                &tenant.slug,
                r.group_id,
                r.topic_id,
                r.comment_id,
                r.author_id,
                UrgentStage::AuthorNotice,
                now,
            )
            .await?;
            let entry = c
                .entry(AuditAction::UrgentEscalate)
                .on("comment", r.comment_id)
                .with_detail(
                    "on_call",
                    doctors
                        .iter()
                        .map(|d| d.to_string())
                        .collect::<Vec<_>>()
                        .join(","),
                );
            c.audit(entry);
        }
        let access = groups_repo::topic_access(c.conn(), tenant, r.author_id, r.topic_id).await?;
        if let Some((_, access)) = access {
            let t = &access.topic;
            let event = EventSpec::topic(EventKind::CommentEdited, t.id, t.scope, t.author_id);
            c.event(&hosted, event.comments(vec![r.comment_id])).await?;
        }
        Ok(())
    }

    /// One 至急 notice (job `notify.urgent`): a mail, at most once (as digests).
    pub(crate) async fn run_urgent_notice(
        &self,
        job: &JobRow,
        now: DateTime<Utc>,
    ) -> Result<Outcome, JobError> {
        let p = &job.payload;
        let field = |k: &str| p.get(k).and_then(|v| v.as_str()).unwrap_or_default();
        let user: PersonId = field("user_id")
            .parse::<uuid::Uuid>()
            .map(PersonId::from)
            .map_err(|_| JobError::Fatal("the job names no person".into()))?;
        let stage = stage_from(field("stage"))
            .ok_or_else(|| JobError::Fatal("the job names no stage".into()))?;
        let slug = field("association");
        let Ok(tenant) = self.db().resolve_tenant(slug).await else {
            return Ok(Outcome::Done);
        };
        let mut core = self
            .db()
            .pool()
            .acquire()
            .await
            .map_err(|e| JobError::Retry(e.to_string()))?;
        let Some(recipient) = notify_repo::mail_context(&mut core, user, job.id).await? else {
            return Ok(Outcome::Done);
        };
        drop(core);
        if let Some(outcome) = self
            .resend_recorded(
                recipient.earlier,
                job,
                MailKind::Urgent,
                &recipient.email,
                now,
            )
            .await?
        {
            return Ok(outcome);
        }
        let mode = recipient.settings;
        if !recipient.active {
            return Ok(Outcome::Done);
        }
        let id = |k: &str| field(k).parse::<uuid::Uuid>().ok();
        let push = match (id("topic_id"), id("comment_id")) {
            (Some(t), Some(c)) => {
                crate::push::PushMessage::urgent(slug, TopicId::from(t), CommentId::from(c))
            }
            _ => None,
        };
        if mode.is_some_and(|m| m.email_mode == "off") {
            // No mail: the phones alone.
            if let Some(push) = &push {
                self.push_to(user, push, now).await?;
            }
            return Ok(Outcome::Done);
        }
        let link = format!(
            "{}/a/{slug}/t/{}/c/{}",
            self.mailer().public_url(),
            field("topic_id"),
            field("comment_id")
        );
        let mut mail = urgent_mail(&recipient.email, &tenant.name, &link, stage);
        let mut tx = self.db().core_tx().await?;
        let id = notify_repo::record(
            &mut tx,
            &notify_repo::NewNotification {
                user,
                job_id: job.id,
                channel: "email",
                kind: "urgent",
                subject: &mail.subject,
                body: &mail.body,
                unread: 0,
                told_until: now,
                effects_started: true,
            },
            now,
        )
        .await?;
        if let Some(push) = &push {
            self.enqueue_push(&mut tx, user, push, now).await?;
        }
        tx.commit().await?;
        mail.message_id = Some(crate::notifications::message_id(id));
        self.deliver(job, id, &mail).await
    }
}

impl Change<'_> {
    /// The acting person, when there is one.
    pub(crate) fn viewer_id(&self) -> Option<PersonId> {
        self.viewer().ok().map(|v| v.user.id)
    }
}
