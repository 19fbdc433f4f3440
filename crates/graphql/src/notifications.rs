//! Notification settings through the API: how often mail tells me of unread comments, groups I
//! hear nothing about by mail, and what was sent to me. Mails hold no patient information (see
//! `musubi_domain::notifications`).

use crate::request::{routed, signed_in, uuid, OrGql};
use async_graphql::{Context, Enum, Object, SimpleObject, ID};
use chrono::{DateTime, NaiveTime, Utc};
use musubi_domain::notifications::{self as n, EmailMode as Mode};
use musubi_domain::types::GroupId;

#[derive(Enum, Copy, Clone, Eq, PartialEq)]
pub enum EmailMode {
    /// Soon after something arrives (several arrivals in one mail).
    Immediate,
    /// At most once an hour, on the hour.
    Hourly,
    /// Once a day at `dailyAt` (Asia/Tokyo).
    Daily,
    /// No mail.
    Off,
}

impl From<EmailMode> for Mode {
    fn from(m: EmailMode) -> Self {
        match m {
            EmailMode::Immediate => Mode::Immediate,
            EmailMode::Hourly => Mode::Hourly,
            EmailMode::Daily => Mode::Daily,
            EmailMode::Off => Mode::Off,
        }
    }
}

impl From<Mode> for EmailMode {
    fn from(m: Mode) -> Self {
        match m {
            Mode::Immediate => EmailMode::Immediate,
            Mode::Hourly => EmailMode::Hourly,
            Mode::Daily => EmailMode::Daily,
            Mode::Off => EmailMode::Off,
        }
    }
}

#[derive(SimpleObject)]
pub struct NotificationSettings {
    email_mode: EmailMode,
    /// For `DAILY`: the time of day, Asia/Tokyo (`HH:MM:SS`).
    daily_at: NaiveTime,
    /// Groups I hear nothing about by mail (they still count on the home page).
    muted_group_ids: Vec<ID>,
    /// Where the mails go.
    email: String,
    last_sent_at: Option<DateTime<Utc>>,
}

/// A notification sent to me.
#[derive(SimpleObject)]
pub struct SentNotification {
    id: ID,
    /// `email`, or `push` when mail is off and only the devices were told.
    channel: String,
    /// `digest`.
    kind: String,
    /// `sending`, `sent`, `retrying`, `failed`, or `interrupted` (the server stopped while
    /// sending: it may or may not have arrived, and is not sent again).
    state: String,
    /// Unread comments it told of.
    unread: i32,
    created_at: DateTime<Utc>,
    sent_at: Option<DateTime<Utc>>,
}

/// Someone a 至急 comment asks.
#[derive(SimpleObject)]
pub struct UrgentAsked {
    user_id: ID,
    name: String,
    /// `named` by the author, the `attending` doctor, or the doctor `on_call` (escalation).
    reason: String,
}

/// One step of a 至急 request.
#[derive(SimpleObject)]
pub struct UrgentStep {
    /// `asked`, `reminded`, `escalated`, `no_one_on_call`, `acknowledged`.
    step: String,
    /// Who asked, who was escalated to, or who acknowledged.
    name: Option<String>,
    at: DateTime<Utc>,
}

/// A 至急 request on a comment, with its timeline.
#[derive(SimpleObject)]
pub struct UrgentRequest {
    comment_id: ID,
    /// `asked`, `reminded`, `escalated`, `acknowledged`.
    stage: String,
    created_at: DateTime<Utc>,
    /// Unacknowledged by then: asked again.
    remind_at: DateTime<Utc>,
    /// Still unacknowledged by then: the doctor on duty is asked.
    escalate_at: DateTime<Utc>,
    acknowledged_by: Option<String>,
    acknowledged_at: Option<DateTime<Utc>>,
    asked: Vec<UrgentAsked>,
    steps: Vec<UrgentStep>,
    /// Whether I may acknowledge it now.
    may_acknowledge: bool,
}

#[derive(Default)]
pub struct NotificationQuery;

#[Object]
impl NotificationQuery {
    /// My notification settings.
    async fn notification_settings(
        &self,
        ctx: &Context<'_>,
    ) -> async_graphql::Result<NotificationSettings> {
        let (services, viewer) = signed_in(ctx)?;
        let s = services.notification_settings(viewer).await.gql(ctx)?;
        Ok(NotificationSettings {
            email_mode: s.email_mode.into(),
            daily_at: s.daily_at,
            muted_group_ids: s.muted.iter().map(|g| ID(g.to_string())).collect(),
            email: s.email,
            last_sent_at: s.last_sent_at,
        })
    }

    /// The 至急 requests of a topic (routed) I see, with who was asked and every step.
    async fn urgent_requests(
        &self,
        ctx: &Context<'_>,
        topic_id: ID,
    ) -> async_graphql::Result<Vec<UrgentRequest>> {
        let (services, actor) = routed(ctx)?;
        let topic = uuid(ctx, &topic_id)?;
        let views = services.urgent_on_topic(&actor, topic).await.gql(ctx)?;
        Ok(views
            .into_iter()
            .map(|v| UrgentRequest {
                comment_id: ID(v.comment_id.to_string()),
                stage: v.stage,
                created_at: v.created_at,
                remind_at: v.remind_at,
                escalate_at: v.escalate_at,
                acknowledged_by: v.acknowledged_by,
                acknowledged_at: v.acknowledged_at,
                asked: v
                    .asked
                    .into_iter()
                    .map(|(id, name, reason)| UrgentAsked {
                        user_id: ID(id.to_string()),
                        name,
                        reason,
                    })
                    .collect(),
                steps: v
                    .steps
                    .into_iter()
                    .map(|(step, name, at)| UrgentStep { step, name, at })
                    .collect(),
                may_acknowledge: v.may_acknowledge,
            })
            .collect())
    }

    /// What was sent to me, newest first (at most 50).
    async fn notifications_sent(
        &self,
        ctx: &Context<'_>,
    ) -> async_graphql::Result<Vec<SentNotification>> {
        let (services, viewer) = signed_in(ctx)?;
        let sent = services.notifications_sent(viewer).await.gql(ctx)?;
        Ok(sent
            .into_iter()
            .map(|s| SentNotification {
                id: ID(s.id.to_string()),
                channel: s.channel,
                kind: s.kind,
                state: s.state,
                unread: s.unread,
                created_at: s.created_at,
                sent_at: s.sent_at,
            })
            .collect())
    }
}

#[derive(Default)]
pub struct NotificationMutation;

#[Object]
impl NotificationMutation {
    /// Sets how often mail tells me of unread comments (recorded in the routed association's
    /// audit log). `dailyAt` defaults to 18:00.
    async fn update_notification_settings(
        &self,
        ctx: &Context<'_>,
        email_mode: EmailMode,
        daily_at: Option<NaiveTime>,
    ) -> async_graphql::Result<bool> {
        let (services, actor) = routed(ctx)?;
        services
            .update_notification_settings(
                &actor,
                email_mode.into(),
                daily_at.unwrap_or_else(n::default_daily_at),
            )
            .await
            .gql(ctx)?;
        Ok(true)
    }

    /// Replies 至急 in a topic (routed): asks the people in `ask` (members of the group who
    /// see the topic; at most 10), or with nobody named in a patient group its attending
    /// doctor, to acknowledge. Unacknowledged after the association's time they are asked
    /// again, then the doctor on duty is asked. Marked 重要. `INVALID_INPUT` (field `ask`) when
    /// nobody can be asked.
    async fn post_urgent_comment(
        &self,
        ctx: &Context<'_>,
        topic_id: ID,
        body: String,
        #[graphql(default)] ask: Vec<ID>,
    ) -> async_graphql::Result<ID> {
        let (services, actor) = routed(ctx)?;
        let topic = uuid(ctx, &topic_id)?;
        let mut named = Vec::with_capacity(ask.len());
        for id in &ask {
            named.push(
                uuid::Uuid::parse_str(id)
                    .map(musubi_domain::types::PersonId::from)
                    .map_err(|_| musubi_domain::AppError::invalid("ask", "not a person's id"))
                    .gql(ctx)?,
            );
        }
        let comment = services
            .post_urgent_comment(&actor, topic, &body, &named)
            .await
            .gql(ctx)?;
        Ok(ID(comment.to_string()))
    }

    /// 「至急の確認をしました」 (not by its author). Nothing more is sent afterwards.
    async fn acknowledge_urgent(
        &self,
        ctx: &Context<'_>,
        comment_id: ID,
    ) -> async_graphql::Result<bool> {
        let (services, actor) = routed(ctx)?;
        let comment = uuid(ctx, &comment_id)?;
        services
            .acknowledge_urgent(&actor, comment)
            .await
            .gql(ctx)?;
        Ok(true)
    }

    /// Stops (`muted: true`) or resumes mail about one of my groups, in any association.
    async fn set_group_mail_muted(
        &self,
        ctx: &Context<'_>,
        group_id: ID,
        muted: bool,
    ) -> async_graphql::Result<bool> {
        let (services, actor) = routed(ctx)?;
        let group: GroupId = uuid(ctx, &group_id)?;
        services
            .set_group_mail_muted(&actor, group, muted)
            .await
            .gql(ctx)?;
        Ok(true)
    }
}
