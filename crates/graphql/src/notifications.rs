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
    /// `email` (later `push`).
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
