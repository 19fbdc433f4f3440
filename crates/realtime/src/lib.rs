//! Live updates: a small event bus between the code that changes data and the connections that
//! show it (GraphQL subscriptions).
//!
//! The rules:
//!
//! - **PostgreSQL first.** Every [`Event`] is a row in `core.events`, written in the same
//!   transaction as the change, and [`Bus::publish`]ed only after commit. The bus is a doorbell,
//!   not the record: an event lost on the way (Redis down, a slow reader) is found again by
//!   reading `core.events` after the last id a client saw.
//! - **Ids only.** An event says what happened and where (association, group, topic, comment ids,
//!   scope bits), never patient text. Whoever delivers it checks visibility and reads the content
//!   from the database under the reader's own authorization.
//! - **Replicas.** With `REDIS_URL` set, several `musubi serve` processes share one Redis pub/sub
//!   channel ([`Bus::redis`]); every process sees every event, including its own, once. Without
//!   it (the embedded default) the bus is a [`tokio::sync::broadcast`] channel in the process
//!   ([`Bus::in_process`]).
//!
//! A receiver that falls more than [`CAPACITY`] events behind gets
//! [`RecvError::Lagged`](tokio::sync::broadcast::error::RecvError::Lagged); after a Redis
//! reconnection [`Bus::reconnections`] moves on. Either way events may have been missed, and
//! the caller re-syncs from PostgreSQL.

mod router;

pub use router::{Delivery, Route, ROUTE_CAPACITY};

use futures_util::StreamExt;
use redis::aio::{ConnectionManager, ConnectionManagerConfig, PubSub};
use serde::{Deserialize, Serialize};
use std::collections::HashSet;
use std::fmt;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{broadcast, watch};
use tokio::task::AbortHandle;
use tokio::time::{timeout, Instant, MissedTickBehavior};
use uuid::Uuid;

/// The Redis channel when none is given.
pub const DEFAULT_CHANNEL: &str = "musubi:events";

/// Events buffered per receiver before it lags. Events are small (ids only); a receiver this far
/// behind is better off re-reading PostgreSQL than catching up one event at a time.
pub const CAPACITY: usize = 4096;

/// Largest encoded event accepted, either way. A real event is a few hundred bytes; anything
/// near this is a bug or not ours, and must not make every replica parse megabytes.
pub const MAX_MESSAGE_BYTES: usize = 64 * 1024;

/// Reconnection backoff of the subscriber: doubles from the first to the second.
const MIN_BACKOFF: Duration = Duration::from_millis(100);
const MAX_BACKOFF: Duration = Duration::from_secs(5);
/// Opening a connection and subscribing.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// A publish happens on a request's path after commit: it must not hang the request when Redis
/// does. The event is in PostgreSQL anyway.
const PUBLISH_TIMEOUT: Duration = Duration::from_secs(2);
/// After a failed publish, publishes skip Redis this long (one tries again after it), so that
/// while Redis is down requests do not each wait out [`PUBLISH_TIMEOUT`].
const PUBLISH_RETRY_AFTER: Duration = Duration::from_secs(2);
/// A subscriber only reads, so a connection that died without a FIN/RST (a vanished host, a
/// dropped NAT entry) would look like a quiet channel forever. A periodic PING finds out.
const PING_EVERY: Duration = Duration::from_secs(15);
const PING_TIMEOUT: Duration = Duration::from_secs(5);

/// One event, ids only (never patient text): what happened, where.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Event {
    /// Row id in `core.events` (for catch-up after reconnect).
    pub id: i64,
    pub association_id: Uuid,
    pub group_id: Uuid,
    pub topic_id: Option<Uuid>,
    pub kind: EventKind,
    /// Topic visibility scope bits at commit time (1 co-medical, 2 collaborating doctors,
    /// 4 hospital doctors).
    pub scope: i16,
    /// Who caused it (the author of a comment, the reader who left footprints).
    pub actor_id: Uuid,
    /// Topic author (always sees their topic whatever the scope).
    pub topic_author_id: Option<Uuid>,
    /// The comments concerned (posted, edited, deleted, read).
    pub comment_ids: Vec<Uuid>,
    /// Only set for events meant for one person (e.g. their own unread counts changed).
    pub user_id: Option<Uuid>,
    /// The writing transaction's id (`pg_current_xact_id`): a subscriber that keeps counts read
    /// under a snapshot tells from it whether the event is already in them. Not stored; absent
    /// from replayed events.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub xid: Option<u64>,
}

/// What happened. The codes ([`EventKind::as_str`]) are the JSON form and may be stored in
/// `core.events`: never rename one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EventKind {
    CommentPosted,
    CommentEdited,
    CommentDeleted,
    FootprintAdded,
    Acknowledged,
    TopicChanged,
    MembershipChanged,
    UnreadChanged,
}

impl EventKind {
    pub const ALL: [EventKind; 8] = [
        EventKind::CommentPosted,
        EventKind::CommentEdited,
        EventKind::CommentDeleted,
        EventKind::FootprintAdded,
        EventKind::Acknowledged,
        EventKind::TopicChanged,
        EventKind::MembershipChanged,
        EventKind::UnreadChanged,
    ];

    /// The stable snake_case code, as in JSON.
    pub const fn as_str(self) -> &'static str {
        match self {
            EventKind::CommentPosted => "comment_posted",
            EventKind::CommentEdited => "comment_edited",
            EventKind::CommentDeleted => "comment_deleted",
            EventKind::FootprintAdded => "footprint_added",
            EventKind::Acknowledged => "acknowledged",
            EventKind::TopicChanged => "topic_changed",
            EventKind::MembershipChanged => "membership_changed",
            EventKind::UnreadChanged => "unread_changed",
        }
    }

    /// The kind with this code; `None` for an unknown code (e.g. a row written by a newer
    /// version).
    pub fn from_code(code: &str) -> Option<EventKind> {
        EventKind::ALL.into_iter().find(|k| k.as_str() == code)
    }
}

impl fmt::Display for EventKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Debug, thiserror::Error)]
pub enum BusError {
    #[error("redis: {0}")]
    Redis(#[from] redis::RedisError),
    #[error("redis did not answer within {0:?}")]
    Timeout(Duration),
    #[error("cannot encode the event: {0}")]
    Encode(#[from] serde_json::Error),
    #[error("the event is {bytes} bytes encoded, over the limit of {MAX_MESSAGE_BYTES}")]
    TooLarge { bytes: usize },
    #[error("redis failed moments ago; not asked again yet")]
    RecentlyDown,
}

/// The event bus; cheap to clone (one `Arc`). Dropping the last clone stops the Redis
/// subscriber task, after which receivers see `RecvError::Closed`.
#[derive(Clone)]
pub struct Bus {
    inner: Arc<Inner>,
}

struct Inner {
    tx: broadcast::Sender<Arc<Event>>,
    reconnections: watch::Receiver<u64>,
    mode: Mode,
    router: Arc<router::Router>,
    /// The router's dispatcher task was started (on the first [`Bus::route`]).
    routing: AtomicBool,
    /// Until when publishes skip Redis after a failure (see [`PUBLISH_RETRY_AFTER`]).
    down_until: std::sync::Mutex<Option<Instant>>,
}

enum Mode {
    InProcess {
        // Keeps `reconnections` open (it never changes in process).
        _reconnections: watch::Sender<u64>,
    },
    Redis {
        publisher: ConnectionManager,
        channel: String,
        subscriber: AbortHandle,
    },
}

impl Drop for Inner {
    fn drop(&mut self) {
        if let Mode::Redis { subscriber, .. } = &self.mode {
            subscriber.abort();
        }
    }
}

impl fmt::Debug for Bus {
    // Never the URL: it may carry a password.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.inner.mode {
            Mode::InProcess { .. } => f.write_str("Bus(in process)"),
            Mode::Redis { channel, .. } => write!(f, "Bus(redis, channel {channel:?})"),
        }
    }
}

impl Bus {
    /// The embedded default: one process, a broadcast channel.
    pub fn in_process() -> Self {
        let (tx, _) = broadcast::channel(CAPACITY);
        let (reconnections_tx, reconnections) = watch::channel(0);
        Bus {
            inner: Arc::new(Inner {
                tx,
                reconnections,
                mode: Mode::InProcess {
                    _reconnections: reconnections_tx,
                },
                router: Arc::default(),
                routing: AtomicBool::new(false),
                down_until: std::sync::Mutex::default(),
            }),
        }
    }

    /// Connects to Redis (`redis://host:port`, `rediss://…`, `redis+unix:///path.sock`) on
    /// [`DEFAULT_CHANNEL`]. See [`Bus::redis_with_channel`].
    pub async fn redis(url: &str) -> Result<Self, BusError> {
        Self::redis_with_channel(url, DEFAULT_CHANNEL).await
    }

    /// Connects to Redis and subscribes to `channel` before returning, so an event published
    /// after this returns — by this process or another — reaches this process's receivers.
    /// A task then forwards every message into the local broadcast, and when the connection
    /// drops reconnects with backoff (100 ms doubling to 5 s), logging each failure. Fails if
    /// Redis cannot be reached now: a replica should not start deaf.
    ///
    /// Must be called within a Tokio runtime.
    pub async fn redis_with_channel(url: &str, channel: &str) -> Result<Self, BusError> {
        let client = redis::Client::open(url)?;
        // The subscription first: it is one attempt, so a Redis that is down fails the start
        // at once, where the publisher's connection manager would retry for seconds.
        let pubsub = subscribe(&client, channel).await?;
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(CONNECT_TIMEOUT)
            .set_response_timeout(PUBLISH_TIMEOUT)
            .set_max_delay(MAX_BACKOFF.as_millis() as u64);
        let publisher = timeout(
            CONNECT_TIMEOUT,
            client.get_connection_manager_with_config(config),
        )
        .await
        .map_err(|_| BusError::Timeout(CONNECT_TIMEOUT))??;

        let (tx, _) = broadcast::channel(CAPACITY);
        let (reconnections_tx, reconnections) = watch::channel(0);
        let subscriber = tokio::spawn(relay(
            client,
            channel.to_owned(),
            pubsub,
            tx.clone(),
            reconnections_tx,
        ))
        .abort_handle();
        Ok(Bus {
            inner: Arc::new(Inner {
                tx,
                reconnections,
                mode: Mode::Redis {
                    publisher,
                    channel: channel.to_owned(),
                    subscriber,
                },
                router: Arc::default(),
                routing: AtomicBool::new(false),
                down_until: std::sync::Mutex::default(),
            }),
        })
    }

    /// Publish after commit. In Redis mode the event goes to Redis only, and this process's
    /// receivers get it back from there like every other replica's — once. In process it goes
    /// straight to the receivers. No receivers is not an error.
    ///
    /// A Redis failure or a timeout (2 s) is returned for the caller to log; the event is
    /// still in PostgreSQL for catch-up.
    pub async fn publish(&self, event: &Event) -> Result<(), BusError> {
        let payload = serde_json::to_string(event)?;
        // Checked here too, in process, so an oversized event fails in development the way it
        // would be dropped by every replica in production.
        if payload.len() > MAX_MESSAGE_BYTES {
            return Err(BusError::TooLarge {
                bytes: payload.len(),
            });
        }
        match &self.inner.mode {
            Mode::InProcess { .. } => {
                // Err only means nobody is listening right now.
                let _ = self.inner.tx.send(Arc::new(event.clone()));
                Ok(())
            }
            Mode::Redis {
                publisher, channel, ..
            } => {
                {
                    let mut down = self.down_until();
                    match *down {
                        Some(until) if Instant::now() < until => {
                            return Err(BusError::RecentlyDown);
                        }
                        // This publish tries; the others keep skipping until it is answered.
                        Some(_) => *down = Some(Instant::now() + PUBLISH_RETRY_AFTER),
                        None => {}
                    }
                }
                let mut conn = publisher.clone();
                let mut cmd = redis::cmd("PUBLISH");
                cmd.arg(channel).arg(payload);
                let publish = cmd.query_async::<i64>(&mut conn);
                let answer = match timeout(PUBLISH_TIMEOUT, publish).await {
                    Ok(Ok(_)) => Ok(()),
                    Ok(Err(e)) => Err(BusError::Redis(e)),
                    Err(_) => Err(BusError::Timeout(PUBLISH_TIMEOUT)),
                };
                *self.down_until() = answer
                    .is_err()
                    .then(|| Instant::now() + PUBLISH_RETRY_AFTER);
                answer
            }
        }
    }

    fn down_until(&self) -> std::sync::MutexGuard<'_, Option<Instant>> {
        self.inner
            .down_until
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// A receiver of every event seen by this process from now on.
    ///
    /// `recv` answers `RecvError::Lagged(n)` when this receiver fell more than [`CAPACITY`]
    /// events behind and `n` were dropped: the caller re-syncs from PostgreSQL (`core.events`
    /// after the last id it delivered) and carries on with the same receiver.
    pub fn subscribe(&self) -> broadcast::Receiver<Arc<Event>> {
        self.inner.tx.subscribe()
    }

    /// Registers a subscriber that receives only the events of `groups` and those meant for
    /// `user` (see [`Route`]); far cheaper than [`Bus::subscribe`] when thousands of
    /// subscribers each care about a few groups. Must be called within a Tokio runtime.
    pub fn route(&self, user: Uuid, groups: HashSet<Uuid>) -> Route {
        if !self.inner.routing.swap(true, Ordering::AcqRel) {
            // Subscribed before the route exists, so nothing published after this call is
            // missed.
            let rx = self.inner.tx.subscribe();
            tokio::spawn(Arc::clone(&self.inner.router).run(rx));
        }
        self.inner.router.register(user, groups)
    }

    /// Counts the times the Redis subscription was re-established after a lost connection
    /// (always 0 in process). Each change means events published while it was down were not
    /// received: re-sync from PostgreSQL, as after `Lagged`. It changes only once the new
    /// subscription is in place, so nothing falls between the re-sync and live events.
    pub fn reconnections(&self) -> watch::Receiver<u64> {
        self.inner.reconnections.clone()
    }

    pub fn is_redis(&self) -> bool {
        matches!(self.inner.mode, Mode::Redis { .. })
    }
}

/// Opens a pub/sub connection and waits for Redis to confirm the subscription.
async fn subscribe(client: &redis::Client, channel: &str) -> Result<PubSub, BusError> {
    let connect = async {
        let mut pubsub = client.get_async_pubsub().await?;
        pubsub.subscribe(channel).await?;
        Ok::<_, redis::RedisError>(pubsub)
    };
    Ok(timeout(CONNECT_TIMEOUT, connect)
        .await
        .map_err(|_| BusError::Timeout(CONNECT_TIMEOUT))??)
}

/// The subscriber task: forwards, and reconnects for as long as the bus lives (it is aborted
/// when the last `Bus` clone is dropped).
async fn relay(
    client: redis::Client,
    channel: String,
    first: PubSub,
    tx: broadcast::Sender<Arc<Event>>,
    reconnections: watch::Sender<u64>,
) {
    let mut pubsub = first;
    let mut backoff = MIN_BACKOFF;
    loop {
        let connected_at = Instant::now();
        let reason = forward(pubsub, &channel, &tx).await;
        // Only a connection that lasted earns a fast retry; one that drops right after
        // connecting (a Redis in trouble) keeps the backoff growing.
        if connected_at.elapsed() >= MAX_BACKOFF {
            backoff = MIN_BACKOFF;
        }
        tracing::warn!(
            channel = %channel,
            reason = %reason,
            "lost the Redis pub/sub connection; live updates pause until it is back"
        );
        pubsub = loop {
            tokio::time::sleep(backoff).await;
            match subscribe(&client, &channel).await {
                Ok(pubsub) => break pubsub,
                Err(e) => {
                    backoff = (backoff * 2).min(MAX_BACKOFF);
                    tracing::warn!(
                        channel = %channel,
                        error = %e,
                        retry_in_ms = backoff.as_millis() as u64,
                        "cannot reconnect to Redis pub/sub"
                    );
                }
            }
        };
        backoff = (backoff * 2).min(MAX_BACKOFF);
        reconnections.send_modify(|n| *n += 1);
        tracing::info!(channel = %channel, "Redis pub/sub reconnected");
    }
}

/// Forwards messages until the connection is lost; returns why.
async fn forward(pubsub: PubSub, channel: &str, tx: &broadcast::Sender<Arc<Event>>) -> String {
    let (mut sink, mut stream) = pubsub.split();
    let mut ping = tokio::time::interval_at(Instant::now() + PING_EVERY, PING_EVERY);
    ping.set_missed_tick_behavior(MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            msg = stream.next() => match msg {
                Some(msg) => deliver(&msg, channel, tx),
                None => return "the connection closed".to_owned(),
            },
            _ = ping.tick() => {
                // Messages arriving meanwhile wait in the connection's queue.
                match timeout(PING_TIMEOUT, sink.ping::<redis::Value>()).await {
                    Ok(Ok(_)) => {}
                    Ok(Err(e)) => return format!("ping failed: {e}"),
                    Err(_) => return format!("no answer to ping within {PING_TIMEOUT:?}"),
                }
            }
        }
    }
}

/// One message from Redis to the local receivers. Anything that is not an event is logged and
/// dropped — by size and error only, never its content, which is not ours to log.
fn deliver(msg: &redis::Msg, channel: &str, tx: &broadcast::Sender<Arc<Event>>) {
    if msg.get_channel_name() != channel {
        return;
    }
    let payload = msg.get_payload_bytes();
    if payload.len() > MAX_MESSAGE_BYTES {
        tracing::warn!(
            channel = %channel,
            bytes = payload.len(),
            "dropped an oversized message on the events channel"
        );
        return;
    }
    match serde_json::from_slice::<Event>(payload) {
        // Err only means nobody is listening right now.
        Ok(event) => {
            let _ = tx.send(Arc::new(event));
        }
        Err(e) => tracing::warn!(
            channel = %channel,
            bytes = payload.len(),
            error = %e,
            "dropped a message on the events channel that is not an event"
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Event {
        Event {
            id: 42,
            association_id: Uuid::new_v4(),
            group_id: Uuid::new_v4(),
            topic_id: Some(Uuid::new_v4()),
            kind: EventKind::CommentPosted,
            scope: 1 | 4,
            actor_id: Uuid::new_v4(),
            topic_author_id: Some(Uuid::new_v4()),
            comment_ids: vec![Uuid::new_v4(), Uuid::new_v4()],
            user_id: None,
            xid: None,
        }
    }

    #[test]
    fn event_json_round_trip() {
        for kind in EventKind::ALL {
            let event = Event {
                kind,
                xid: Some(4_000_000_123),
                ..sample()
            };
            let json = serde_json::to_string(&event).expect("encodes");
            assert!(
                json.contains(&format!("\"kind\":\"{}\"", kind.as_str())),
                "{json}"
            );
            let back: Event = serde_json::from_str(&json).expect("decodes");
            assert_eq!(back, event);
        }
        let personal = Event {
            topic_id: None,
            topic_author_id: None,
            comment_ids: vec![],
            user_id: Some(Uuid::new_v4()),
            kind: EventKind::UnreadChanged,
            ..sample()
        };
        let json = serde_json::to_vec(&personal).expect("encodes");
        assert_eq!(
            serde_json::from_slice::<Event>(&json).expect("decodes"),
            personal
        );
    }

    #[test]
    fn kind_codes_round_trip() {
        for kind in EventKind::ALL {
            assert_eq!(EventKind::from_code(kind.as_str()), Some(kind));
            assert_eq!(kind.to_string(), kind.as_str());
            // The code is exactly the serde form.
            assert_eq!(
                serde_json::to_value(kind).expect("encodes"),
                serde_json::Value::String(kind.as_str().to_owned())
            );
        }
        assert_eq!(EventKind::from_code("CommentPosted"), None);
        assert_eq!(EventKind::from_code(""), None);
    }

    #[test]
    fn not_an_event_is_refused() {
        assert!(serde_json::from_str::<Event>("{\"id\":1}").is_err());
        let mut value = serde_json::to_value(sample()).expect("encodes");
        value["kind"] = "comment_exploded".into();
        assert!(serde_json::from_value::<Event>(value).is_err());
    }
}
