//! Live updates for one subscriber: which events reach them, in order, without gaps.
//!
//! Each event is re-authorized for its subscriber as it passes (membership and scope change
//! while a connection is open), the session is re-checked periodically, and a subscriber that
//! fell behind — or whose replica lost Redis for a while — re-reads `core.events`. Entry points
//! (the GraphQL subscription) only render what [`LiveFeed::next`] gives them.

use crate::groups::in_scope_bits;
use crate::groups::viewer_bit;
use crate::groups::Scope;
use crate::sessions::Viewer;
use crate::types::{CommentId, GroupId, PersonId, TopicId};
use crate::unread::{TrackedCounts, UnreadCounts};
use crate::{AppError, AppResult, ErrorCode, Services};
use musubi_db::groups as repo;
use musubi_realtime::{Delivery, Event, EventKind, Route};
use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;
use tokio::time::Instant;
use uuid::Uuid;

/// How often an open subscription re-checks its session (revoked, expired, signed out).
/// Read-only: an open page does not keep a session alive.
const SESSION_RECHECK: Duration = Duration::from_secs(30);
/// The unread counts kept for a subscriber are read again at least this often. They are kept
/// exact by the events (a comment of someone else is added to them; any other change reads
/// them), so this only bounds what a missed case could leave wrong; reading them at every
/// session check cost one query per subscriber every 30 s.
const COUNTS_MAX_AGE: Duration = Duration::from_secs(300);
/// Events read from PostgreSQL at a time when catching up.
const REPLAY_PAGE: i64 = 1000;

/// One event as it reaches its subscriber.
#[derive(Debug, Clone)]
pub struct LiveItem {
    pub event: Event,
    /// The group's host association.
    pub association_slug: Option<String>,
    /// The subscriber's fresh unread counts, for the kinds that change them.
    pub unread: Option<UnreadCounts>,
}

impl Services {
    /// Opens the live feed of `viewer`: every group they are an active member of, in any
    /// association. With `after` (the last event id they saw), what they missed comes first.
    pub async fn live_feed(&self, viewer: Viewer, after: Option<i64>) -> AppResult<LiveFeed> {
        // Registered before reading the database: an event committed in between is then in
        // the route, the replay, or both (and sent once). Its groups follow once read.
        let route = self.bus().route(viewer.user.id.uuid(), HashSet::new());
        let state = match self.live_state(&viewer).await? {
            Some(state) if state.alive => state,
            _ => {
                return Err(AppError::new(
                    ErrorCode::Unauthenticated,
                    "please sign in again",
                ))
            }
        };
        route.set_groups(state.groups.clone());
        let reconnections = self.bus().reconnections();
        let mut live = LiveFeed {
            route,
            reconnections,
            viewer,
            cursor: 0,
            backlog: VecDeque::new(),
            more: false,
            replayed: HashSet::new(),
            checked_at: Instant::now(),
            slugs: HashMap::new(),
            tracked: None,
            tracked_at: Instant::now(),
            state,
            services: self.clone(),
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
                live.catch_up().await?;
            }
            None => live.cursor = self.last_event_id().await?,
        }
        Ok(live)
    }
}

/// Whether the subscriber's unread counts may differ after this event. Their own comment
/// changes nobody's counts but the others'.
fn changes_unread(e: &Event, viewer_id: Uuid) -> bool {
    match e.kind {
        EventKind::CommentPosted => e.actor_id != viewer_id,
        EventKind::CommentDeleted
        | EventKind::UnreadChanged
        | EventKind::TopicChanged
        | EventKind::MembershipChanged => true,
        _ => false,
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

/// One subscriber's feed.
pub struct LiveFeed {
    services: Services,
    viewer: Viewer,
    /// This subscriber's events: those of its groups and those meant for its person.
    route: Route,
    reconnections: watch::Receiver<u64>,
    /// Events read from PostgreSQL, not yet sent.
    backlog: VecDeque<Event>,
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
    /// The viewer's unread counts as last sent: comments of others are added to them, and
    /// they are read again for every other change, after a re-sync, when the viewer's groups
    /// change, and when they are older than [`COUNTS_MAX_AGE`].
    tracked: Option<TrackedCounts>,
    /// When `tracked` was read.
    tracked_at: Instant,
}

enum Wake {
    Event(Arc<Event>),
    Resync,
    Recheck,
    End,
}

impl LiveFeed {
    /// The next event for this subscriber; `None` ends the stream.
    pub async fn next(&mut self) -> Option<LiveItem> {
        loop {
            if self.checked_at.elapsed() >= SESSION_RECHECK {
                match self.refresh(false).await {
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
                    if !matches!(self.refresh(true).await, Ok(true)) {
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
                    let me = self.viewer.user.id.uuid();
                    if event.user_id == Some(me) && event.kind == EventKind::MembershipChanged {
                        // Fail closed: the client reconnects with `after` and catches up.
                        if !matches!(self.refresh(true).await, Ok(true)) {
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
    /// so that an open socket does not slide the idle expiry. `missed`: events may have passed
    /// this feed by (a re-sync, a membership change), so the kept counts are read again.
    async fn refresh(&mut self, missed: bool) -> Result<bool, AppError> {
        self.checked_at = Instant::now();
        if missed || self.tracked_at.elapsed() >= COUNTS_MAX_AGE {
            // The next change reads them.
            self.tracked = None;
        }
        let Some(state) = self.services.live_state(&self.viewer).await? else {
            return Ok(false);
        };
        if state.groups != self.state.groups
            || state.hosts != self.state.hosts
            || state.scope_bit != self.state.scope_bit
        {
            self.tracked = None;
        }
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

    async fn render(&mut self, e: &Event) -> LiveItem {
        let association_slug = self.slug(e.association_id).await;
        let unread = if changes_unread(e, self.viewer.user.id.uuid()) {
            self.unread_after(e, association_slug.as_deref()).await
        } else {
            None
        };
        LiveItem {
            association_slug,
            event: e.clone(),
            unread,
        }
    }

    /// The viewer's unread counts after `e`. A comment of someone else is added to the counts
    /// kept, unless they were read after it was written: no query for each comment and
    /// subscriber. Anything else (or an event that cannot tell, such as a replayed one) reads
    /// them again.
    async fn unread_after(&mut self, e: &Event, slug: Option<&str>) -> Option<UnreadCounts> {
        if e.kind == EventKind::CommentPosted {
            if let (Some(tracked), Some(xid), Some(slug)) = (self.tracked.as_mut(), e.xid, slug) {
                let comments = e.comment_ids.len().max(1) as i64;
                if tracked.add_posted(slug, GroupId::from_uuid(e.group_id), xid, comments) {
                    return Some(tracked.counts.clone());
                }
            }
        }
        match self
            .services
            .tracked_unread_counts(&self.viewer, &self.state.hosts)
            .await
        {
            Ok(tracked) => {
                let counts = tracked.counts.clone();
                self.tracked = Some(tracked);
                self.tracked_at = Instant::now();
                Some(counts)
            }
            Err(err) => {
                tracing::warn!(code = err.code.as_str(), "live unread counts failed");
                self.tracked = None;
                None
            }
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
            .find(|m| m.association_id.uuid() == association_id)
        {
            self.slugs.insert(association_id, m.slug.clone());
            return Some(m.slug.clone());
        }
        match self.services.db().list_associations().await {
            Ok(rows) => {
                for r in rows {
                    self.slugs.insert(r.id.uuid(), r.slug);
                }
            }
            Err(e) => tracing::warn!(error = %e, "live: cannot list associations"),
        }
        self.slugs.get(&association_id).cloned()
    }
}

/// What a live subscription knows about its viewer: enough to decide, without a query per
/// event, whether an event may reach them. Read again at each periodic check and whenever the
/// viewer's own membership changes (those events reach them whatever their groups).
#[derive(Debug, Clone)]
pub struct LiveState {
    pub alive: bool,
    pub scope_bit: Scope,
    pub groups: HashSet<Uuid>,
    /// The associations hosting those groups (slug, name), by slug: where unread counts live.
    pub hosts: Vec<(String, String)>,
}

impl LiveState {
    /// Whether `event` may reach `viewer_id`: meant for them, or in one of their groups and in
    /// the topic's scope (or their own topic). The same rule as `topic_visible`.
    pub fn may_receive(&self, viewer_id: Uuid, event: &Event) -> bool {
        if let Some(user) = event.user_id {
            if user != viewer_id {
                return false;
            }
            // Membership changes reach the person concerned even when they are not (or no
            // longer) a member.
            if event.kind == EventKind::MembershipChanged {
                return true;
            }
        }
        self.groups.contains(&event.group_id)
            && in_scope_bits(
                event.scope,
                self.scope_bit,
                event.topic_author_id.map(PersonId::from_uuid),
                PersonId::from_uuid(viewer_id),
            )
    }
}

impl Services {
    /// The state a live subscription keeps about its viewer (see [`LiveState`]); `None` when
    /// the person no longer exists.
    pub async fn live_state(&self, viewer: &Viewer) -> AppResult<Option<LiveState>> {
        Ok(
            repo::live_state(self.db().pool(), viewer.user.id, viewer.session.id)
                .await?
                .map(|r| LiveState {
                    alive: r.alive,
                    scope_bit: r.scope_bit,
                    groups: r.groups.into_iter().map(GroupId::uuid).collect(),
                    hosts: r.host_slugs.into_iter().zip(r.host_names).collect(),
                }),
        )
    }

    /// Events after `after` the viewer may see, oldest first (catch-up after a reconnect).
    pub async fn events_since(
        &self,
        viewer: &Viewer,
        after: i64,
        limit: i64,
    ) -> AppResult<Vec<Event>> {
        let rows = repo::events_since(
            self.db().pool(),
            viewer.user.id,
            after,
            limit.clamp(1, 1000),
        )
        .await?;
        let bit = viewer_bit(viewer);
        Ok(rows
            .into_iter()
            .filter_map(|r| {
                let kind = EventKind::from_code(&r.kind)?;
                let visible = in_scope_bits(r.scope, bit, r.topic_author_id, viewer.user.id);
                visible.then_some(Event {
                    id: r.id,
                    association_id: r.association_id.uuid(),
                    group_id: r.group_id.uuid(),
                    topic_id: r.topic_id.map(TopicId::uuid),
                    kind,
                    scope: r.scope,
                    actor_id: r.actor_id.uuid(),
                    topic_author_id: r.topic_author_id.map(PersonId::uuid),
                    comment_ids: r.comment_ids.into_iter().map(CommentId::uuid).collect(),
                    user_id: r.user_id.map(PersonId::uuid),
                    xid: None,
                })
            })
            .collect())
    }

    /// The newest event id now: where a fresh subscription starts.
    pub async fn last_event_id(&self) -> AppResult<i64> {
        Ok(repo::last_event_id(self.db().pool()).await?)
    }
}
