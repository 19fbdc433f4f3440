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
use std::sync::Arc;
use std::time::Duration;

/// How many requests of one session may wait for its turn; beyond that, refused at once.
const MAX_WAITING_PER_SESSION: usize = 32;

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
}

/// Who a request counts against: its session (if it carries a well-formed token) and its
/// address.
struct Key {
    session: Option<[u8; 16]>,
    address: String,
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
            }),
        }
    }
}

fn key_of(req: &Request) -> Key {
    let session = musubi_graphql::session_token(req.headers())
        .filter(|t| musubi_auth::token::is_well_formed(t))
        .map(|token| {
            // Hashed: the token itself is a credential and is never kept.
            let digest = Sha256::digest(token.as_bytes());
            let mut key = [0u8; 16];
            key.copy_from_slice(&digest[..16]);
            key
        });
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
            return refuse(&req, retry_after.as_secs());
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
        return refuse(&req, 1);
    };
    let response = next.run(req).await;
    drop(turn);
    response
}

fn refuse(req: &Request, retry_after_secs: u64) -> Response {
    let path = req.uri().path();
    if path.starts_with("/graphql") {
        musubi_graphql::rate_limited(retry_after_secs)
    } else {
        musubi_web::too_many_requests(req.headers(), path, retry_after_secs)
    }
}
