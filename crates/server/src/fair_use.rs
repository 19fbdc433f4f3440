//! Fair use: one session (or, without one, one address) may make so many requests a minute
//! and have so many served at once; more wait their turn briefly, then get `429` with
//! `Retry-After` (`RATE_LIMITED` for the API, a calm page for people). People are counted over
//! all their sessions when the services authenticate them (`Services::with_person_limit`).
//!
//! The per-minute counters live where the other rate limits do (Redis across replicas, or in
//! process). The at-once limit is per replica: it is what keeps one session from holding more
//! than a few of its association's database connections on the replica serving it.

use crate::turns::Turns;
use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::Response;
use musubi_auth::ratelimit::{RateLimitClass, RateLimitError, RateLimiter};
use musubi_config::FairUse;
use musubi_telemetry::ClientMeta;
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::sync::{Mutex, PoisonError};
use std::time::Duration;
use tokio::time::Instant;

/// How many requests of one session may wait for its turn; beyond that, refused at once.
const MAX_WAITING_PER_SESSION: usize = 32;
/// Refusals of one client within its window after which its next refusals are held before
/// they are answered. A person who went over the limit by accident sees no difference; a
/// client that keeps hammering (a retry loop, an attack) is slowed to a few requests a second
/// instead of costing the replica a refusal per request as fast as it can send them.
const HOLD_AFTER: u32 = 100;
/// How long a refusal is held (at most until the window resets).
const HOLD: Duration = Duration::from_secs(1);
/// Refusals held at once per replica; beyond, answered at once (holding costs memory).
const MAX_HELD: usize = 1024;
/// Clients remembered as over their limit; past it, expired entries are dropped and new
/// clients not remembered (they are still refused, only not held).
const MAX_REMEMBERED: usize = 10_000;

#[derive(Clone)]
pub struct FairUseLayer {
    inner: Arc<Inner>,
}

struct Inner {
    limiter: RateLimiter,
    session: RateLimitClass,
    anonymous: RateLimitClass,
    /// Every request from one address, with a session or not: a ceiling ten times the
    /// anonymous limit, so that made-up tokens (each a "session" of its own) cannot flood.
    address: RateLimitClass,
    queue_wait: Duration,
    turns: Turns<[u8; 16]>,
    over: Over,
}

/// Clients over their per-minute limit, remembered in process until their window resets:
/// their refusals skip the shared counter and, when they persist, are held.
#[derive(Default)]
struct Over {
    clients: Mutex<HashMap<[u8; 16], OverLimit>>,
    held: AtomicUsize,
}

struct OverLimit {
    until: Instant,
    refusals: u32,
}

impl Over {
    /// Whether `key` is known to be over its limit now; counts the refusal.
    fn refusing(&self, key: &[u8; 16]) -> Option<(Duration, u32)> {
        let mut clients = self.clients.lock().unwrap_or_else(PoisonError::into_inner);
        let now = Instant::now();
        let entry = clients.get_mut(key)?;
        if entry.until <= now {
            clients.remove(key);
            return None;
        }
        entry.refusals = entry.refusals.saturating_add(1);
        Some((entry.until - now, entry.refusals))
    }

    /// Remembers that `key` was refused by the counter until `retry_after` has passed.
    fn remember(&self, key: [u8; 16], retry_after: Duration) -> u32 {
        let mut clients = self.clients.lock().unwrap_or_else(PoisonError::into_inner);
        let now = Instant::now();
        if clients.len() >= MAX_REMEMBERED && !clients.contains_key(&key) {
            clients.retain(|_, o| o.until > now);
            if clients.len() >= MAX_REMEMBERED {
                return 1;
            }
        }
        let entry = clients.entry(key).or_insert(OverLimit {
            until: now,
            refusals: 0,
        });
        if entry.until <= now {
            entry.refusals = 0;
        }
        entry.until = now + retry_after;
        entry.refusals = entry.refusals.saturating_add(1);
        entry.refusals
    }

    /// Holds a persistent client's refusal for a while (bounded in time and in number).
    async fn hold(&self, refusals: u32, left: Duration) {
        if refusals <= HOLD_AFTER {
            return;
        }
        if self.held.fetch_add(1, Ordering::Relaxed) < MAX_HELD {
            metrics::counter!("musubi_fair_use_held_total").increment(1);
            tokio::time::sleep(HOLD.min(left)).await;
        }
        self.held.fetch_sub(1, Ordering::Relaxed);
    }
}

/// Who a request counts against: its session (if it carries a well-formed token) and its
/// address.
struct Key {
    session: Option<[u8; 16]>,
    address: String,
}

impl Key {
    /// The client a refusal is remembered for: the session, else the address.
    fn client(&self) -> [u8; 16] {
        self.session
            .unwrap_or_else(|| digest16(self.address.as_bytes()))
    }
}

fn digest16(bytes: &[u8]) -> [u8; 16] {
    let digest = Sha256::digest(bytes);
    let mut key = [0u8; 16];
    key.copy_from_slice(&digest[..16]);
    key
}

impl FairUseLayer {
    pub fn new(limiter: RateLimiter, settings: FairUse) -> Self {
        let minute = Duration::from_secs(60);
        Self {
            inner: Arc::new(Inner {
                limiter,
                session: RateLimitClass::new("fair:session", settings.session_per_minute, minute),
                anonymous: RateLimitClass::new(
                    "fair:anonymous",
                    settings.anonymous_per_minute,
                    minute,
                ),
                address: RateLimitClass::new(
                    "fair:address",
                    settings.anonymous_per_minute.saturating_mul(10),
                    minute,
                ),
                queue_wait: settings.queue_wait,
                turns: Turns::new(settings.session_in_flight, MAX_WAITING_PER_SESSION),
                over: Over::default(),
            }),
        }
    }
}

fn key_of(req: &Request) -> Key {
    let session = musubi_graphql::session_token(req.headers())
        .filter(|t| musubi_auth::token::is_well_formed(t))
        // Hashed: the token itself is a credential and is never kept.
        .map(|token| digest16(token.as_bytes()));
    let address = req
        .extensions()
        .get::<ClientMeta>()
        .map(|c| c.ip.clone())
        .unwrap_or_default();
    Key { session, address }
}

pub async fn layer(State(fair): State<FairUseLayer>, req: Request, next: Next) -> Response {
    let path = req.uri().path();
    if crate::turns::exempt(path) {
        return next.run(req).await;
    }
    let inner = &fair.inner;
    let key = key_of(&req);
    let client = key.client();
    // Known to be over the limit: refused without asking the shared counter again.
    if let Some((left, refusals)) = inner.over.refusing(&client) {
        metrics::counter!("musubi_fair_use_refused_total", "reason" => "rate").increment(1);
        inner.over.hold(refusals, left).await;
        let refusal = refuse(&req, left.as_secs().max(1));
        return crate::turns::send_refusal(req, refusal).await;
    }
    let counted = match &key.session {
        Some(k) => match inner.limiter.hit(&inner.session, &hex::encode(k)).await {
            Ok(()) => inner.limiter.hit(&inner.address, &key.address).await,
            refused => refused,
        },
        None => inner.limiter.hit(&inner.anonymous, &key.address).await,
    };
    match counted {
        Ok(()) => {}
        Err(RateLimitError::Limited { retry_after }) => {
            metrics::counter!("musubi_fair_use_refused_total", "reason" => "rate").increment(1);
            let refusals = inner.over.remember(client, retry_after);
            inner.over.hold(refusals, retry_after).await;
            let refusal = refuse(&req, retry_after.as_secs());
            return crate::turns::send_refusal(req, refusal).await;
        }
        // Fail open: the counters protect capacity, and an outage of their store must not
        // take the whole service down.
        Err(e) => tracing::warn!(error = %e, "fair use: request counter unavailable"),
    }
    let Some(session) = key.session else {
        return next.run(req).await;
    };
    let deadline = tokio::time::Instant::now() + inner.queue_wait;
    let Some(turn) = inner.turns.take(session, deadline).await else {
        metrics::counter!("musubi_fair_use_refused_total", "reason" => "in_flight").increment(1);
        let refusal = refuse(&req, 1);
        return crate::turns::send_refusal(req, refusal).await;
    };
    let response = next.run(req).await;
    drop(turn);
    response
}

fn refuse(req: &Request, retry_after_secs: u64) -> Response {
    let path = req.uri().path();
    if path.starts_with("/graphql") || path.starts_with("/api/") {
        musubi_graphql::rate_limited(retry_after_secs)
    } else {
        musubi_web::too_many_requests(req.headers(), path, retry_after_secs)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MINUTE: Duration = Duration::from_secs(60);

    #[tokio::test(start_paused = true)]
    async fn a_client_over_its_limit_is_remembered_until_its_window_resets() {
        let over = Over::default();
        let (a, b) = ([1u8; 16], [2u8; 16]);
        assert!(
            over.refusing(&a).is_none(),
            "unknown clients are counted as usual"
        );
        assert_eq!(over.remember(a, Duration::from_secs(10)), 1);
        let (left, refusals) = over.refusing(&a).expect("remembered");
        assert_eq!((left, refusals), (Duration::from_secs(10), 2));
        assert!(
            over.refusing(&b).is_none(),
            "only the client that went over"
        );
        tokio::time::advance(Duration::from_secs(10)).await;
        assert!(over.refusing(&a).is_none(), "a new window starts afresh");
        assert_eq!(
            over.remember(a, MINUTE),
            1,
            "its refusals count again from one"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn only_persistent_refusals_are_held_and_never_past_the_window() {
        let over = Over::default();
        let started = Instant::now();
        over.hold(HOLD_AFTER, MINUTE).await;
        assert_eq!(
            started.elapsed(),
            Duration::ZERO,
            "an accidental overrun is not slowed"
        );
        over.hold(HOLD_AFTER + 1, MINUTE).await;
        assert_eq!(started.elapsed(), HOLD);
        let before = Instant::now();
        over.hold(HOLD_AFTER + 1, Duration::from_millis(300)).await;
        assert_eq!(before.elapsed(), Duration::from_millis(300));
        assert_eq!(
            over.held.load(Ordering::Relaxed),
            0,
            "every hold is given back"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn holds_are_bounded_per_replica() {
        let over = Arc::new(Over::default());
        over.held.store(MAX_HELD, Ordering::Relaxed);
        let started = Instant::now();
        over.hold(u32::MAX, MINUTE).await;
        assert_eq!(
            started.elapsed(),
            Duration::ZERO,
            "past the bound, answered at once"
        );
        assert_eq!(over.held.load(Ordering::Relaxed), MAX_HELD);
    }

    #[test]
    fn remembered_clients_are_bounded() {
        let over = Over::default();
        for i in 0..MAX_REMEMBERED as u32 + 10 {
            let mut key = [0u8; 16];
            key[..4].copy_from_slice(&i.to_le_bytes());
            over.remember(key, MINUTE);
        }
        let clients = over.clients.lock().map(|c| c.len()).unwrap_or(0);
        assert_eq!(clients, MAX_REMEMBERED);
    }
}
