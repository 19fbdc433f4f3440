//! Graceful overload: a replica takes on only as many requests at once as it can serve within
//! budget — per association and in total. A request that cannot get a turn within a short
//! wait, or finds too many already waiting, is shed at once with `503 OVERLOADED` and
//! `Retry-After` (a calm page for people) before any work starts, so nothing is half-done,
//! memory stays bounded, and service is normal again as soon as demand falls.

use crate::turns::Turns;
use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::Response;
use musubi_config::Overload;
use musubi_domain::jobs::Pressure;
use std::sync::Arc;
use std::time::Duration;
use tokio::time::Instant;

/// What a shed request is told to wait. Short: overload is usually a burst.
const RETRY_AFTER_SECS: u64 = 2;

/// The longest association slug worth a key of its own; longer ones are not real.
const MAX_SLUG: usize = 64;

#[derive(Clone)]
pub struct Admission {
    inner: Arc<Inner>,
}

struct Inner {
    /// Requests served or waiting here, which background work yields to.
    pressure: Pressure,
    associations: Turns<String>,
    total: Turns<()>,
    queue_wait: Duration,
}

impl Admission {
    pub fn new(settings: Overload, pressure: Pressure) -> Self {
        let waiting = settings.max_waiting as usize;
        Self {
            inner: Arc::new(Inner {
                pressure,
                associations: Turns::new(settings.association_in_flight, waiting),
                total: Turns::new(settings.in_flight, waiting),
                queue_wait: settings.queue_wait,
            }),
        }
    }
}

/// The association a request is for: the API's routing header, or a page's `/a/{slug}/…`.
fn association_of(req: &Request) -> Option<String> {
    let slug = match req.headers().get(musubi_graphql::ASSOCIATION_HEADER) {
        Some(v) => v.to_str().ok()?,
        None => {
            let path = req.uri().path();
            // The API's file routes carry the association in their path too.
            path.strip_prefix("/api")
                .unwrap_or(path)
                .strip_prefix("/a/")?
                .split('/')
                .next()?
        }
    };
    let plausible = !slug.is_empty()
        && slug.len() <= MAX_SLUG
        && slug
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
    plausible.then(|| slug.to_owned())
}

pub async fn layer(State(admission): State<Admission>, req: Request, next: Next) -> Response {
    let path = req.uri().path();
    if crate::turns::exempt(path) {
        return next.run(req).await;
    }
    let inner = &admission.inner;
    let _counted = inner.pressure.enter();
    let deadline = Instant::now() + inner.queue_wait;
    // The association's turn first: a busy association waits on its own, without holding a
    // place in the total that the others need.
    let association = match association_of(&req) {
        Some(slug) => match inner.associations.take(slug, deadline).await {
            Some(turn) => Some(turn),
            None => {
                let refusal = shed(&req, "association");
                return crate::turns::send_refusal(req, refusal).await;
            }
        },
        None => None,
    };
    let Some(total) = inner.total.take((), deadline).await else {
        let refusal = shed(&req, "total");
        return crate::turns::send_refusal(req, refusal).await;
    };
    let response = next.run(req).await;
    drop((total, association));
    response
}

fn shed(req: &Request, scope: &'static str) -> Response {
    metrics::counter!("musubi_overload_shed_total", "scope" => scope).increment(1);
    let path = req.uri().path();
    if path.starts_with("/graphql") || path.starts_with("/api/") {
        musubi_graphql::overloaded(RETRY_AFTER_SECS)
    } else {
        musubi_web::overloaded(req.headers(), path, RETRY_AFTER_SECS)
    }
}
