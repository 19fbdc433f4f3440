//! Live updates: the `events` subscription (graphql-transport-ws over `/graphql/ws`).
//!
//! Each event is re-authorized for its subscriber as it passes (membership and scope change
//! while a connection is open), the session is re-checked periodically, and a subscriber that
//! fell behind — or whose replica lost Redis for a while — re-reads `core.events`. Events carry
//! ids only: the client fetches what it may see through the ordinary queries.

use crate::sns::UnreadCounts;
use crate::{to_gql_error, RequestContext};
use async_graphql::{Context, Enum, SimpleObject, Subscription, ID};
use futures_util::Stream;
use musubi_domain::sessions::Viewer;
use musubi_domain::topics::LiveState;
use musubi_domain::{AppError, ErrorCode, Services};
use musubi_realtime::{Delivery, Event as BusEvent, EventKind as BusKind, Route};
use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;
use tokio::time::Instant;
use uuid::Uuid;

/// How often an open subscription re-checks its session (revoked, expired, signed out).
/// Read-only: an open page does not keep a session alive.
const SESSION_RECHECK: Duration = Duration::from_secs(30);
/// Events read from PostgreSQL at a time when catching up.
const REPLAY_PAGE: i64 = 1000;

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

/// Whether the subscriber's unread counts may differ after this event. Their own comment
/// changes nobody's counts but the others'.
fn changes_unread(e: &BusEvent, viewer_id: Uuid) -> bool {
    match e.kind {
        BusKind::CommentPosted => e.actor_id != viewer_id,
        BusKind::CommentDeleted
        | BusKind::UnreadChanged
        | BusKind::TopicChanged
        | BusKind::MembershipChanged => true,
        _ => false,
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
        let services = ctx.data::<Services>()?.clone();
        let rc = ctx.data::<RequestContext>()?;
        let viewer = rc.viewer().map_err(|e| to_gql_error(ctx, e))?.clone();
        let after =
            match after {
                Some(a) => Some(a.parse::<i64>().ok().filter(|n| *n >= 0).ok_or_else(|| {
                    to_gql_error(ctx, AppError::invalid("after", "not an event id"))
                })?),
                None => None,
            };
        // Registered before reading the database: an event committed in between is then in
        // the route, the replay, or both (and sent once). Its groups follow once read.
        let route = services.bus().route(viewer.user.id, HashSet::new());
        let state = match services.live_state(&viewer).await {
            Ok(Some(state)) if state.alive => state,
            Ok(_) => {
                return Err(to_gql_error(
                    ctx,
                    AppError::new(ErrorCode::Unauthenticated, "please sign in again"),
                ))
            }
            Err(e) => return Err(to_gql_error(ctx, e)),
        };
        route.set_groups(state.groups.clone());
        let reconnections = services.bus().reconnections();
        let mut live = Live {
            route,
            reconnections,
            viewer,
            cursor: 0,
            backlog: VecDeque::new(),
            more: false,
            replayed: HashSet::new(),
            checked_at: Instant::now(),
            slugs: HashMap::new(),
            state,
            services,
        };
        // Spread the periodic checks: subscriptions opened together (a restart, a bench) would
        // otherwise all check at the same moment. The first comes after 15–30 s.
        let jitter = Duration::from_millis(spread(viewer_seed(&live.viewer)) % 15_000);
        live.checked_at = live
            .checked_at
            .checked_sub(jitter)
            .unwrap_or(live.checked_at);
        match after {
            Some(after) => {
                live.cursor = after;
                live.catch_up().await.map_err(|e| to_gql_error(ctx, e))?;
            }
            None => {
                live.cursor = live
                    .services
                    .last_event_id()
                    .await
                    .map_err(|e| to_gql_error(ctx, e))?;
            }
        }
        Ok(futures_util::stream::unfold(live, |mut live| async move {
            live.next().await.map(|event| (event, live))
        }))
    }
}

/// A per-subscription seed: the session and the clock, so that even one person's several
/// tabs differ.
fn viewer_seed(viewer: &Viewer) -> u64 {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| u64::from(d.subsec_nanos()));
    (viewer.session.id.as_u128() as u64) ^ nanos
}

/// splitmix64: a seed spread over all bits.
fn spread(seed: u64) -> u64 {
    let mut z = seed.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// One subscriber's state.
struct Live {
    services: Services,
    viewer: Viewer,
    /// This subscriber's events: those of its groups and those meant for its person.
    route: Route,
    reconnections: watch::Receiver<u64>,
    /// Events read from PostgreSQL, not yet sent.
    backlog: VecDeque<BusEvent>,
    /// The last replay page was full: read on once the backlog is sent.
    more: bool,
    /// Ids already sent from a replay, so that the same event arriving live is not sent twice.
    replayed: HashSet<i64>,
    /// The newest event id handled; a replay starts after it.
    cursor: i64,
    checked_at: Instant,
    slugs: HashMap<Uuid, String>,
    /// The viewer's groups and class: each event is checked against them without a query.
    /// Read again when the viewer's membership changes, after a re-sync and at each session
    /// check (every 30 s).
    state: LiveState,
}

enum Wake {
    Event(Arc<BusEvent>),
    Resync,
    Recheck,
    End,
}

impl Live {
    /// The next event for this subscriber; `None` ends the stream.
    async fn next(&mut self) -> Option<Event> {
        loop {
            if self.checked_at.elapsed() >= SESSION_RECHECK {
                match self.refresh().await {
                    Ok(true) => {}
                    Ok(false) => return None,
                    Err(e) => {
                        tracing::warn!(code = e.code.as_str(), "live session check failed; ending");
                        return None;
                    }
                }
            }
            if let Some(event) = self.backlog.pop_front() {
                // Already filtered by events_since for this viewer.
                return Some(self.render(&event).await);
            }
            if self.more {
                if let Err(e) = self.catch_up().await {
                    tracing::warn!(code = e.code.as_str(), "live catch-up failed; ending");
                    return None;
                }
                continue;
            }
            let deadline = self.checked_at + SESSION_RECHECK;
            let wake = tokio::select! {
                d = self.route.recv() => match d {
                    Delivery::Event(event) => Wake::Event(event),
                    Delivery::Lagged => Wake::Resync,
                    Delivery::Closed => Wake::End,
                },
                changed = self.reconnections.changed() => match changed {
                    // Events published while Redis was away never reached this replica.
                    Ok(()) => Wake::Resync,
                    Err(_) => Wake::End,
                },
                () = tokio::time::sleep_until(deadline) => Wake::Recheck,
            };
            match wake {
                Wake::End => return None,
                Wake::Recheck => continue,
                Wake::Resync => {
                    if !matches!(self.refresh().await, Ok(true)) {
                        tracing::warn!("live re-sync: the session ended or the check failed");
                        return None;
                    }
                    if let Err(e) = self.catch_up().await {
                        tracing::warn!(code = e.code.as_str(), "live re-sync failed; ending");
                        return None;
                    }
                }
                Wake::Event(event) => {
                    if self.replayed.contains(&event.id) {
                        continue;
                    }
                    self.cursor = self.cursor.max(event.id);
                    let me = self.viewer.user.id;
                    if event.user_id == Some(me) && event.kind == BusKind::MembershipChanged {
                        // Fail closed: the client reconnects with `after` and catches up.
                        if !matches!(self.refresh().await, Ok(true)) {
                            tracing::warn!("live membership refresh: session ended or failed");
                            return None;
                        }
                    }
                    if !self.state.may_receive(me, &event) {
                        continue;
                    }
                    return Some(self.render(&event).await);
                }
            }
        }
    }

    /// Reads the events after the cursor this viewer may see into the backlog.
    async fn catch_up(&mut self) -> Result<(), AppError> {
        let events = self
            .services
            .events_since(&self.viewer, self.cursor, REPLAY_PAGE)
            .await?;
        // events_since drops events this viewer may not see; a full page may hide more.
        self.more = false;
        if let Some(last) = events.last() {
            self.more = events.len() as i64 >= REPLAY_PAGE;
            self.cursor = self.cursor.max(last.id);
        }
        // Live duplicates can only be as old as what the receiver buffers.
        let keep_from = self.cursor - 2 * musubi_realtime::CAPACITY as i64;
        self.replayed.retain(|id| *id > keep_from);
        self.replayed.extend(events.iter().map(|e| e.id));
        self.backlog.extend(events);
        Ok(())
    }

    /// Reads the viewer's state again (one query) and routes their groups' events here;
    /// `false` when the session this subscription was opened with is no longer valid. Read-only,
    /// so that an open socket does not slide the idle expiry.
    async fn refresh(&mut self) -> Result<bool, AppError> {
        self.checked_at = Instant::now();
        let Some(state) = self.services.live_state(&self.viewer).await? else {
            return Ok(false);
        };
        if state.groups != self.state.groups {
            self.route.set_groups(state.groups.clone());
            // Events of a group just joined could have passed before the route knew it: read
            // them from PostgreSQL.
            if !state.groups.is_subset(&self.state.groups) {
                self.more = true;
            }
        }
        self.state = state;
        Ok(self.state.alive)
    }

    async fn render(&mut self, e: &BusEvent) -> Event {
        let unread = if changes_unread(e, self.viewer.user.id) {
            match self
                .services
                .unread_counts_at(&self.viewer, &self.state.hosts)
                .await
            {
                Ok(c) => Some(c.into()),
                Err(err) => {
                    tracing::warn!(code = err.code.as_str(), "live unread counts failed");
                    None
                }
            }
        } else {
            None
        };
        Event {
            id: ID(e.id.to_string()),
            kind: e.kind.into(),
            association_slug: self.slug(e.association_id).await,
            group_id: ID(e.group_id.to_string()),
            topic_id: e.topic_id.map(|t| ID(t.to_string())),
            comment_ids: e.comment_ids.iter().map(|c| ID(c.to_string())).collect(),
            actor_id: ID(e.actor_id.to_string()),
            unread,
        }
    }

    /// The slug of an association: the viewer's own memberships first, then the registry
    /// (groups may be hosted by associations the viewer is not a member of).
    async fn slug(&mut self, association_id: Uuid) -> Option<String> {
        if let Some(s) = self.slugs.get(&association_id) {
            return Some(s.clone());
        }
        if let Some(m) = self
            .viewer
            .memberships
            .iter()
            .find(|m| m.association_id == association_id)
        {
            self.slugs.insert(association_id, m.slug.clone());
            return Some(m.slug.clone());
        }
        match self.services.db().list_associations().await {
            Ok(rows) => {
                for r in rows {
                    self.slugs.insert(r.id, r.slug);
                }
            }
            Err(e) => tracing::warn!(error = %e, "live: cannot list associations"),
        }
        self.slugs.get(&association_id).cloned()
    }
}
