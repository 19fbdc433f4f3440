//! Direct messages through the API: my conversations across associations, starting one,
//! adding people, leaving. A conversation's messages are its topic's comments: read them with
//! `topic`, reply with `postComment` and see footprints with the live subscription, as for
//! any topic (routed to `associationSlug`).

use crate::request::{routed, signed_in, uuid, OrGql};
use crate::sns::{attachments_in, candidate_out, InviteCandidate};
use async_graphql::{Context, Object, SimpleObject, ID};
use chrono::{DateTime, Utc};
use musubi_domain::messages::{Conversation as Row, ConversationPlace};
use musubi_domain::types::PersonId;
use musubi_domain::AppError;

/// A conversation of direct messages I take part in.
#[derive(SimpleObject)]
pub struct Conversation {
    /// The conversation (a group of kind `DIRECT`).
    pub id: ID,
    /// Its one topic: route to `associationSlug` and use `topic` / `postComment`.
    pub topic_id: ID,
    /// The association hosting it (where it was started).
    pub association_slug: String,
    pub association_name: String,
    /// Between two people: it stays so (start another to write to more).
    pub pair: bool,
    /// The other people, by reading (empty once everyone else has left).
    pub others: Vec<String>,
    pub unread: i32,
    pub last_at: DateTime<Utc>,
    pub last_author_name: Option<String>,
    /// The newest message on one line, shortened (empty when deleted).
    pub excerpt: String,
}

impl From<Row> for Conversation {
    fn from(c: Row) -> Self {
        Self {
            id: ID(c.group_id.to_string()),
            topic_id: ID(c.topic_id.to_string()),
            association_slug: c.association_slug,
            association_name: c.association_name,
            pair: c.pair,
            others: c.others,
            unread: i32::try_from(c.unread).unwrap_or(i32::MAX),
            last_at: c.last_at,
            last_author_name: c.last_author_name,
            excerpt: c.excerpt,
        }
    }
}

/// Where a message went.
#[derive(SimpleObject)]
pub struct MessageSent {
    pub conversation_id: ID,
    pub topic_id: ID,
    pub comment_id: ID,
    /// The association hosting the conversation (route replies there).
    pub association_slug: String,
    /// The pair's conversation existed already; the message was added to it.
    pub existing: bool,
}

impl From<ConversationPlace> for MessageSent {
    fn from(p: ConversationPlace) -> Self {
        Self {
            conversation_id: ID(p.group_id.to_string()),
            topic_id: ID(p.topic_id.to_string()),
            comment_id: ID(p.comment_id.to_string()),
            association_slug: p.association_slug,
            existing: p.existing,
        }
    }
}

fn people(ctx: &Context<'_>, ids: &[ID]) -> async_graphql::Result<Vec<PersonId>> {
    let max = musubi_domain::messages::MAX_PARTICIPANTS;
    if ids.len() > max {
        let e = AppError::invalid("people", format!("a conversation has at most {max} people"));
        return Err::<Vec<PersonId>, _>(e).gql(ctx);
    }
    ids.iter().map(|i| uuid(ctx, i)).collect()
}

#[derive(Default)]
pub struct MessageQuery;

#[Object]
impl MessageQuery {
    /// My conversations in every association, newest first (at most 200).
    async fn conversations(&self, ctx: &Context<'_>) -> async_graphql::Result<Vec<Conversation>> {
        let (services, viewer) = signed_in(ctx)?;
        let rows = services.conversations(viewer).await.gql(ctx)?;
        Ok(rows.into_iter().map(Into::into).collect())
    }

    /// People I may write to (the routed association's directory, as for invitations) whose
    /// name, reading or facility contains `search`, or whose profession it names; at most
    /// `first` (1–50).
    async fn message_candidates(
        &self,
        ctx: &Context<'_>,
        #[graphql(default)] search: String,
        #[graphql(default = 20)] first: i32,
    ) -> async_graphql::Result<Vec<InviteCandidate>> {
        let (services, actor) = routed(ctx)?;
        let rows = services
            .message_candidates(&actor, &search, i64::from(first))
            .await
            .gql(ctx)?;
        Ok(rows.into_iter().map(candidate_out).collect())
    }
}

#[derive(Default)]
pub struct MessageMutation;

#[Object]
impl MessageMutation {
    /// Writes to `people` (from `messageCandidates`; anyone else is `NOT_FOUND`): starts a
    /// conversation hosted by the routed association, or, to one person, adds the message to
    /// the conversation the two already have, wherever it is hosted.
    /// `CROSS_ASSOCIATION_MESSAGES_DISABLED` when an association's policy forbids it.
    async fn send_direct_message(
        &self,
        ctx: &Context<'_>,
        people: Vec<ID>,
        body: String,
        #[graphql(default)] attachments: Vec<ID>,
    ) -> async_graphql::Result<MessageSent> {
        let (services, actor) = routed(ctx)?;
        let people = self::people(ctx, &people)?;
        let attachments = attachments_in(&attachments).gql(ctx)?;
        Ok(services
            .start_conversation(&actor, &people, &body, &attachments)
            .await
            .gql(ctx)?
            .into())
    }

    /// Adds people to a conversation of several (routed to its host); returns how many were
    /// added. A one-to-one conversation stays one (`INVALID_INPUT`, field `people`).
    async fn add_to_conversation(
        &self,
        ctx: &Context<'_>,
        conversation_id: ID,
        people: Vec<ID>,
    ) -> async_graphql::Result<i32> {
        let (services, actor) = routed(ctx)?;
        let group = uuid(ctx, &conversation_id)?;
        let people = self::people(ctx, &people)?;
        let n = services
            .add_to_conversation(&actor, group, &people)
            .await
            .gql(ctx)?;
        Ok(i32::try_from(n).unwrap_or(i32::MAX))
    }

    /// Leaves a conversation (routed to its host): it drops out of my messages.
    async fn leave_conversation(
        &self,
        ctx: &Context<'_>,
        conversation_id: ID,
    ) -> async_graphql::Result<bool> {
        let (services, actor) = routed(ctx)?;
        let group = uuid(ctx, &conversation_id)?;
        services.leave_conversation(&actor, group).await.gql(ctx)?;
        Ok(true)
    }
}
