//! Live updates: the `events` subscription (graphql-transport-ws over `/graphql/ws`). Which
//! events reach whom is decided by the services ([`musubi_domain::live`]); this renders them.
//! Events carry ids only: the client fetches what it may see through the ordinary queries.

use crate::request::{parts, OrGql};
use crate::sns::UnreadCounts;
use crate::to_gql_error;
use async_graphql::{Context, Enum, SimpleObject, Subscription, ID};
use futures_util::Stream;
use musubi_domain::live::LiveItem;
use musubi_domain::AppError;
use musubi_realtime::EventKind as BusKind;

#[derive(Enum, Copy, Clone, Eq, PartialEq)]
pub enum EventKind {
    /// A topic or a reply was posted (`commentIds`).
    CommentPosted,
    CommentEdited,
    CommentDeleted,
    /// Someone read comments (`commentIds`) and left footprints.
    FootprintAdded,
    /// Someone confirmed a comment (acknowledgement mode).
    Acknowledged,
    /// A topic's title, scope, pin or closed state changed.
    TopicChanged,
    /// My membership of the group changed (invited, joined, removed…).
    MembershipChanged,
    /// My unread counts changed (I read a topic, or marked a group read).
    UnreadChanged,
}

impl From<BusKind> for EventKind {
    fn from(k: BusKind) -> Self {
        match k {
            BusKind::CommentPosted => EventKind::CommentPosted,
            BusKind::CommentEdited => EventKind::CommentEdited,
            BusKind::CommentDeleted => EventKind::CommentDeleted,
            BusKind::FootprintAdded => EventKind::FootprintAdded,
            BusKind::Acknowledged => EventKind::Acknowledged,
            BusKind::TopicChanged => EventKind::TopicChanged,
            BusKind::MembershipChanged => EventKind::MembershipChanged,
            BusKind::UnreadChanged => EventKind::UnreadChanged,
        }
    }
}

/// What happened, where: ids only, never text.
#[derive(SimpleObject)]
pub struct Event {
    /// Increasing; pass the last one seen as `after` when reconnecting to catch up.
    pub id: ID,
    pub kind: EventKind,
    /// The group's host association (route queries about it there).
    pub association_slug: Option<String>,
    pub group_id: ID,
    pub topic_id: Option<ID>,
    pub comment_ids: Vec<ID>,
    /// Who caused it.
    pub actor_id: ID,
    /// My fresh unread counts, for the kinds that change them (comment posted or deleted,
    /// unread, topic or membership changed); null otherwise.
    pub unread: Option<UnreadCounts>,
}

#[derive(Default)]
pub struct Subscription;

#[Subscription]
impl Subscription {
    /// Live events of every group I am an active member of, in any association (no routing
    /// needed), each re-checked against my membership and the topic's scope as it passes.
    /// Over graphql-transport-ws at `/graphql/ws`: send the bearer token in `connection_init`
    /// (`{"token": …}`); the web session cookie counts only from this server's own pages.
    /// With `after` (the id of the last event I saw), the events I missed since are sent
    /// first (kept for 7 days). The stream ends when my session does (checked every 30 s).
    async fn events(
        &self,
        ctx: &Context<'_>,
        after: Option<ID>,
    ) -> async_graphql::Result<impl Stream<Item = Event>> {
        let (services, rc) = parts(ctx)?;
        let viewer = rc.viewer().gql(ctx)?.clone();
        let after =
            match after {
                Some(a) => Some(a.parse::<i64>().ok().filter(|n| *n >= 0).ok_or_else(|| {
                    to_gql_error(ctx, AppError::invalid("after", "not an event id"))
                })?),
                None => None,
            };
        let feed = services.live_feed(viewer, after).await.gql(ctx)?;
        Ok(futures_util::stream::unfold(feed, |mut feed| async move {
            feed.next().await.map(|item| (render(item), feed))
        }))
    }
}

fn render(item: LiveItem) -> Event {
    let e = item.event;
    Event {
        id: ID(e.id.to_string()),
        kind: e.kind.into(),
        association_slug: item.association_slug,
        group_id: ID(e.group_id.to_string()),
        topic_id: e.topic_id.map(|t| ID(t.to_string())),
        comment_ids: e.comment_ids.iter().map(|c| ID(c.to_string())).collect(),
        actor_id: ID(e.actor_id.to_string()),
        unread: item.unread.map(Into::into),
    }
}
