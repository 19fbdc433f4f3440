//! Turns: at most `per_key` requests of one key (a session, an association) served at once;
//! a few more may wait for a while; the rest are refused. Keys cost memory only while one of
//! their requests is in flight or waiting.

use std::collections::HashMap;
use std::hash::Hash;
use std::sync::{Arc, Mutex, PoisonError};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::time::Instant;

/// Requests that need neither the database nor a session: never counted, never shed (health
/// checks must answer, and a page that says "wait" still needs its styles).
pub(crate) fn exempt(path: &str) -> bool {
    ["/static/", "/healthz", "/readyz", "/metrics", "/favicon"]
        .iter()
        .any(|p| path.starts_with(p))
}

/// The most of a refused request's body read to keep its connection: a GraphQL request or a
/// photo, not a large document.
const DRAIN_BYTES: u64 = 2 * 1024 * 1024;
/// How long a refused request's body may take to arrive.
const DRAIN_WAIT: std::time::Duration = std::time::Duration::from_secs(2);

/// Sends a refusal decided before the request's body was read. HTTP/1.1 can carry the next
/// request on a connection only once this one's body has been read, and a server that closes
/// the connection instead leaves the client to find out under its next request, as an error
/// rather than this answer. So a body of known, modest length is read and dropped (no work
/// beyond that is done for it); any other gets `Connection: close`, which tells the client.
pub(crate) async fn send_refusal(
    req: axum::extract::Request,
    mut response: axum::response::Response,
) -> axum::response::Response {
    use futures_util::StreamExt as _;
    let headers = req.headers();
    let chunked = headers.contains_key(http::header::TRANSFER_ENCODING);
    let length = headers
        .get(http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    let kept = match (length, chunked) {
        (None, false) | (Some(0), false) => true,
        (Some(n), false) if n <= DRAIN_BYTES => {
            let mut body = req.into_body().into_data_stream();
            let drained = tokio::time::timeout(DRAIN_WAIT, async {
                while let Some(chunk) = body.next().await {
                    if chunk.is_err() {
                        return false;
                    }
                }
                true
            })
            .await;
            drained == Ok(true)
        }
        _ => false,
    };
    if !kept {
        response.headers_mut().insert(
            http::header::CONNECTION,
            http::HeaderValue::from_static("close"),
        );
    }
    response
}

pub(crate) struct Turns<K> {
    inner: Arc<Inner<K>>,
}

impl<K> Clone for Turns<K> {
    fn clone(&self) -> Self {
        Self {
            inner: self.inner.clone(),
        }
    }
}

struct Inner<K> {
    per_key: usize,
    max_waiting: usize,
    slots: Mutex<HashMap<K, Slot>>,
}

struct Slot {
    semaphore: Arc<Semaphore>,
    /// Requests holding or waiting for a permit; the slot goes when the last one ends.
    users: usize,
}

/// A request's turn: dropping it (the request ended, or was dropped) gives the turn back.
pub(crate) struct Turn<K: Hash + Eq> {
    _permit: OwnedSemaphorePermit,
    _leave: Leave<K>,
}

struct Leave<K: Hash + Eq> {
    inner: Arc<Inner<K>>,
    key: Option<K>,
}

impl<K: Hash + Eq + Clone> Turns<K> {
    pub(crate) fn new(per_key: u32, max_waiting: usize) -> Self {
        Self {
            inner: Arc::new(Inner {
                per_key: per_key.max(1) as usize,
                max_waiting,
                slots: Mutex::default(),
            }),
        }
    }

    /// Waits for one of `key`'s turns until `deadline`; `None` when it is not given by then or
    /// too many of `key`'s requests already wait.
    pub(crate) async fn take(&self, key: K, deadline: Instant) -> Option<Turn<K>> {
        let semaphore = {
            let mut slots = self
                .inner
                .slots
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            let slot = slots.entry(key.clone()).or_insert_with(|| Slot {
                semaphore: Arc::new(Semaphore::new(self.inner.per_key)),
                users: 0,
            });
            if slot.users >= self.inner.per_key + self.inner.max_waiting {
                return None;
            }
            slot.users += 1;
            slot.semaphore.clone()
        };
        // From here the place in the slot is given back by `Leave`, also when waiting fails or
        // the request is dropped while it waits.
        let leave = Leave {
            inner: self.inner.clone(),
            key: Some(key),
        };
        let permit = tokio::time::timeout_at(deadline, semaphore.acquire_owned())
            .await
            .ok()?
            .ok()?;
        Some(Turn {
            _permit: permit,
            _leave: leave,
        })
    }

    /// Keys with a request in flight or waiting: the tests check idle keys cost nothing.
    #[cfg(test)]
    pub(crate) fn tracked(&self) -> usize {
        self.inner
            .slots
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .len()
    }
}

impl<K: Hash + Eq> Drop for Leave<K> {
    fn drop(&mut self) {
        let Some(key) = self.key.take() else {
            return;
        };
        let mut slots = self
            .inner
            .slots
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if let Some(slot) = slots.get_mut(&key) {
            slot.users -= 1;
            if slot.users == 0 {
                slots.remove(&key);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn static_files_and_health_checks_are_never_counted_or_shed() {
        // The calm "wait a moment" pages need their styles while everything else is refused.
        for path in [
            "/static/app.0123abcd.css",
            "/static/live.js",
            "/healthz",
            "/readyz",
        ] {
            assert!(exempt(path), "{path}");
        }
        for path in ["/", "/graphql", "/groups", "/staticky"] {
            assert!(!exempt(path), "{path}");
        }
    }

    fn soon(ms: u64) -> Instant {
        Instant::now() + Duration::from_millis(ms)
    }

    #[tokio::test]
    async fn a_key_gets_its_turns_others_are_not_held_up_and_slots_go_when_idle() {
        let turns: Turns<&str> = Turns::new(2, 1);
        let a1 = turns.take("a", soon(10)).await.expect("first turn");
        let a2 = turns.take("a", soon(10)).await.expect("second turn");
        assert!(
            turns.take("a", soon(10)).await.is_none(),
            "a third waits, then gives up"
        );
        let b = turns
            .take("b", soon(10))
            .await
            .expect("another key has its own turns");
        assert_eq!(turns.tracked(), 2);
        drop((a1, a2, b));
        assert_eq!(turns.tracked(), 0, "idle keys cost nothing");
    }

    #[tokio::test]
    async fn a_waiting_request_gets_the_turn_given_back() {
        let turns: Turns<u8> = Turns::new(1, 1);
        let first = turns.take(1, soon(10)).await.unwrap();
        let waiter = {
            let turns = turns.clone();
            tokio::spawn(async move { turns.take(1, soon(2000)).await.is_some() })
        };
        tokio::time::sleep(Duration::from_millis(20)).await;
        // One holds, one waits: a third is refused at once (too many waiting).
        assert!(turns.take(1, soon(2000)).await.is_none());
        drop(first);
        assert!(waiter.await.unwrap());
        assert_eq!(turns.tracked(), 0);
    }
}
