//! Fixed-window attempt counters with temporary lockout.
//!
//! Services call [`RateLimiter::hit`] once per *attempt* (each sign-in, each TOTP check),
//! not once per HTTP request: a GraphQL batch or a query with many aliases runs the resolver
//! many times and must count each time.
//!
//! The first attempt opens a window of `class.window`; attempts beyond `class.max_attempts`
//! inside it are refused until the window ends, and [`Limited`](RateLimitError::Limited)
//! says how long that is. The store is Redis when replicas share state, or in-process for
//! the single-binary deployment.

use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;
use tokio::time::Instant;

/// A kind of attempt and its limit. `name` is fixed in code (never input) and becomes the
/// key's prefix; no class name may be a prefix of another followed by `:`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateLimitClass {
    pub name: &'static str,
    pub max_attempts: u32,
    pub window: Duration,
}

const fn minutes(n: u64) -> Duration {
    Duration::from_secs(n * 60)
}

impl RateLimitClass {
    pub const fn new(name: &'static str, max_attempts: u32, window: Duration) -> Self {
        Self {
            name,
            max_attempts,
            window,
        }
    }

    /// Password attempts against one account (key: hash of the normalised e-mail).
    pub const SIGNIN_ACCOUNT: Self = Self::new("signin:account", 10, minutes(15));
    /// Password attempts from one client address; higher, as offices share a NAT.
    pub const SIGNIN_IP: Self = Self::new("signin:ip", 50, minutes(15));
    /// Second-factor codes for one account (key: account id). 6 digits need tight limits.
    pub const TOTP_ACCOUNT: Self = Self::new("totp:account", 5, minutes(15));
    /// Recovery-code attempts for one account.
    pub const RECOVERY_ACCOUNT: Self = Self::new("recovery:account", 5, minutes(60));
    /// Invitation look-ups and acceptances from one address.
    pub const INVITE_IP: Self = Self::new("invite:ip", 20, minutes(60));
    /// Password-reset e-mails for one account: stops mail bombing.
    pub const RESET_ACCOUNT: Self = Self::new("reset:account", 5, minutes(60));
    /// Password-reset requests from one address.
    pub const RESET_IP: Self = Self::new("reset:ip", 20, minutes(60));
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RateLimitError {
    #[error("too many attempts; retry after {retry_after:?}")]
    Limited { retry_after: Duration },
    /// The store failed. Callers should fail closed: refuse the attempt.
    #[error("rate limit store unavailable: {0}")]
    Store(String),
}

impl RateLimitError {
    pub fn code(&self) -> &'static str {
        match self {
            Self::Limited { .. } => "RATE_LIMITED",
            Self::Store(_) => "INTERNAL",
        }
    }
}

/// The count in the current window after an increment, and the time left in it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WindowCount {
    pub count: u64,
    pub remaining: Duration,
}

pub type StoreFuture<'a, T> = Pin<Box<dyn Future<Output = Result<T, RateLimitError>> + Send + 'a>>;

/// Where counters live. Implementations must make `increment` atomic: concurrent attempts
/// on any replica must each be counted.
pub trait RateLimitStore: Send + Sync {
    /// Adds one to `key`'s counter, starting a window of `window` if none is open.
    fn increment<'a>(&'a self, key: &'a str, window: Duration) -> StoreFuture<'a, WindowCount>;
    /// Forgets `key`'s counter.
    fn clear<'a>(&'a self, key: &'a str) -> StoreFuture<'a, ()>;
}

#[derive(Clone)]
pub struct RateLimiter {
    store: Arc<dyn RateLimitStore>,
}

impl std::fmt::Debug for RateLimiter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RateLimiter").finish_non_exhaustive()
    }
}

impl RateLimiter {
    pub fn new(store: Arc<dyn RateLimitStore>) -> Self {
        Self { store }
    }

    /// A limiter on an in-process store, for a single replica.
    pub fn in_process() -> Self {
        Self::new(Arc::new(MemoryStore::default()))
    }

    /// Counts one attempt; refuses it when the class's limit is exhausted.
    pub async fn hit(&self, class: &RateLimitClass, key: &str) -> Result<(), RateLimitError> {
        let key = store_key(class, key);
        let now = self.store.increment(&key, class.window).await?;
        if now.count > u64::from(class.max_attempts) {
            return Err(RateLimitError::Limited {
                retry_after: now.remaining,
            });
        }
        Ok(())
    }

    /// Clears the counter, e.g. the per-account sign-in counter after a successful sign-in.
    /// (Per-address counters are better left to expire.)
    pub async fn reset(&self, class: &RateLimitClass, key: &str) -> Result<(), RateLimitError> {
        self.store.clear(&store_key(class, key)).await
    }
}

/// Keys longer than this are hashed, bounding memory and Redis key size.
const MAX_KEY_BYTES: usize = 128;

fn store_key(class: &RateLimitClass, key: &str) -> String {
    if key.len() <= MAX_KEY_BYTES {
        format!("{}:{}", class.name, key)
    } else {
        format!(
            "{}:sha256:{}",
            class.name,
            hex::encode(Sha256::digest(key.as_bytes()))
        )
    }
}

// ---------------------------------------------------------------------------------------
// In-process store.

struct Window {
    count: u64,
    expires: Instant,
}

struct Counters {
    map: HashMap<String, Window>,
    ops: u64,
}

/// Counters in a `Mutex<HashMap>`. Expired windows are pruned every few thousand
/// operations; at `max_keys` the least-used entries are evicted, never the ones that are
/// locking someone out.
pub struct MemoryStore {
    counters: Mutex<Counters>,
    max_keys: usize,
}

const PRUNE_EVERY: u64 = 4096;
const MAX_WINDOW: Duration = Duration::from_secs(30 * 24 * 60 * 60);

impl Default for MemoryStore {
    fn default() -> Self {
        Self::with_capacity(100_000)
    }
}

impl MemoryStore {
    pub fn with_capacity(max_keys: usize) -> Self {
        Self {
            counters: Mutex::new(Counters {
                map: HashMap::new(),
                ops: 0,
            }),
            max_keys: max_keys.max(1),
        }
    }

    pub fn len(&self) -> usize {
        self.lock().map.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Counters> {
        // Counters stay consistent even if a holder panicked; keep limiting.
        self.counters.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn increment_now(&self, key: &str, window: Duration) -> WindowCount {
        let now = Instant::now();
        // Bounded so `now + window` cannot overflow whatever a caller configures.
        let window = window.min(MAX_WINDOW);
        let mut c = self.lock();
        c.ops += 1;
        if c.ops >= PRUNE_EVERY {
            c.ops = 0;
            c.map.retain(|_, w| w.expires > now);
        }
        if !c.map.contains_key(key) && c.map.len() >= self.max_keys {
            c.map.retain(|_, w| w.expires > now);
            if c.map.len() >= self.max_keys {
                evict_least_used(&mut c.map, self.max_keys / 10 + 1);
            }
        }
        let w = c.map.entry(key.to_owned()).or_insert(Window {
            count: 0,
            expires: now + window,
        });
        if w.expires <= now {
            *w = Window {
                count: 0,
                expires: now + window,
            };
        }
        w.count = w.count.saturating_add(1);
        WindowCount {
            count: w.count,
            remaining: w.expires.saturating_duration_since(now),
        }
    }
}

/// Drops the `n` entries with the fewest attempts. An attacker flooding fresh keys evicts
/// only other low counts, while exhausted keys (the lockouts) survive.
fn evict_least_used(map: &mut HashMap<String, Window>, n: usize) {
    let mut counts: Vec<u64> = map.values().map(|w| w.count).collect();
    let n = n.min(counts.len());
    if n == 0 {
        return;
    }
    let (_, threshold, _) = counts.select_nth_unstable(n - 1);
    let threshold = *threshold;
    let mut removed = 0;
    map.retain(|_, w| {
        if removed < n && w.count <= threshold {
            removed += 1;
            false
        } else {
            true
        }
    });
}

impl RateLimitStore for MemoryStore {
    fn increment<'a>(&'a self, key: &'a str, window: Duration) -> StoreFuture<'a, WindowCount> {
        Box::pin(async move { Ok(self.increment_now(key, window)) })
    }

    fn clear<'a>(&'a self, key: &'a str) -> StoreFuture<'a, ()> {
        Box::pin(async move {
            self.lock().map.remove(key);
            Ok(())
        })
    }
}

// ---------------------------------------------------------------------------------------
// Redis store.

/// Atomic: INCR, and set the expiry when the window opens. The PTTL guard repairs a key
/// that somehow lost its expiry, so nobody is locked out forever.
const INCREMENT_SCRIPT: &str = r"
local n = redis.call('INCR', KEYS[1])
local ttl = redis.call('PTTL', KEYS[1])
if n == 1 or ttl < 0 then
  redis.call('PEXPIRE', KEYS[1], ARGV[1])
  ttl = tonumber(ARGV[1])
end
return {n, ttl}
";

const KEY_PREFIX: &str = "musubi:rl:";

/// Counters in Redis, shared by every replica. Keys are `musubi:rl:<class>:<key>`.
#[derive(Clone)]
pub struct RedisStore {
    conn: redis::aio::ConnectionManager,
    script: Arc<redis::Script>,
    /// Until when Redis is not asked after a failure: while it is down, every request would
    /// otherwise wait out the timeouts (seconds) before failing open. One request per
    /// [`REDIS_RETRY_AFTER`] tries again.
    down_until: Arc<std::sync::Mutex<Option<std::time::Instant>>>,
}

/// How long counters stay in process after Redis failed.
pub const REDIS_RETRY_AFTER: Duration = Duration::from_secs(2);

impl RedisStore {
    /// Uses an existing connection manager (it reconnects by itself).
    pub fn new(conn: redis::aio::ConnectionManager) -> Self {
        Self {
            conn,
            script: Arc::new(redis::Script::new(INCREMENT_SCRIPT)),
            down_until: Arc::default(),
        }
    }

    /// Connects to `url` (`redis://`, `rediss://`, `redis+unix:///path`) with timeouts, so
    /// a hung Redis fails an attempt instead of hanging it.
    pub async fn connect(url: &str) -> Result<Self, RateLimitError> {
        let client = redis::Client::open(url).map_err(store_error)?;
        let config = redis::aio::ConnectionManagerConfig::new()
            .set_connection_timeout(Duration::from_secs(2))
            .set_response_timeout(Duration::from_secs(2))
            // Few, short retries: a sign-in should fail fast, not wait out a long backoff.
            .set_number_of_retries(1)
            .set_max_delay(500);
        let conn = client
            .get_connection_manager_with_config(config)
            .await
            .map_err(store_error)?;
        Ok(Self::new(conn))
    }
}

fn store_error(e: redis::RedisError) -> RateLimitError {
    // The detail is for logs; the client sees INTERNAL.
    RateLimitError::Store(e.to_string())
}

impl RateLimitStore for RedisStore {
    fn increment<'a>(&'a self, key: &'a str, window: Duration) -> StoreFuture<'a, WindowCount> {
        Box::pin(async move {
            {
                let mut down = self.down_until.lock().unwrap_or_else(|p| p.into_inner());
                match *down {
                    Some(until) if std::time::Instant::now() < until => {
                        return Err(RateLimitError::Store("redis failed moments ago".into()));
                    }
                    // This request tries; the others keep skipping until it is answered.
                    Some(_) => *down = Some(std::time::Instant::now() + REDIS_RETRY_AFTER),
                    None => {}
                }
            }
            let mut conn = self.conn.clone();
            let window_ms = u64::try_from(window.as_millis()).unwrap_or(u64::MAX).max(1);
            let answer: Result<(i64, i64), _> = self
                .script
                .key(format!("{KEY_PREFIX}{key}"))
                .arg(window_ms)
                .invoke_async(&mut conn)
                .await;
            let mut down = self.down_until.lock().unwrap_or_else(|p| p.into_inner());
            *down = answer
                .is_err()
                .then(|| std::time::Instant::now() + REDIS_RETRY_AFTER);
            drop(down);
            let (count, ttl_ms) = answer.map_err(store_error)?;
            Ok(WindowCount {
                count: u64::try_from(count).unwrap_or(0),
                remaining: Duration::from_millis(u64::try_from(ttl_ms).unwrap_or(0)),
            })
        })
    }

    fn clear<'a>(&'a self, key: &'a str) -> StoreFuture<'a, ()> {
        Box::pin(async move {
            let mut conn = self.conn.clone();
            redis::cmd("DEL")
                .arg(format!("{KEY_PREFIX}{key}"))
                .query_async::<()>(&mut conn)
                .await
                .map_err(store_error)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TWO_PER_MINUTE: RateLimitClass = RateLimitClass::new("test:a", 2, minutes(1));
    const OTHER_CLASS: RateLimitClass = RateLimitClass::new("test:b", 2, minutes(1));

    fn limited(r: Result<(), RateLimitError>) -> Duration {
        match r {
            Err(RateLimitError::Limited { retry_after }) => retry_after,
            other => panic!("expected Limited, got {other:?}"),
        }
    }

    #[tokio::test(start_paused = true)]
    async fn attempts_beyond_the_limit_are_refused_until_the_window_ends() {
        let rl = RateLimiter::in_process();
        rl.hit(&TWO_PER_MINUTE, "k").await.unwrap();
        tokio::time::advance(Duration::from_secs(10)).await;
        rl.hit(&TWO_PER_MINUTE, "k").await.unwrap();
        let retry = limited(rl.hit(&TWO_PER_MINUTE, "k").await);
        assert_eq!(retry, Duration::from_secs(50));
        // Still locked out just before the window ends, even though attempts keep coming.
        tokio::time::advance(Duration::from_secs(49)).await;
        assert_eq!(
            limited(rl.hit(&TWO_PER_MINUTE, "k").await),
            Duration::from_secs(1)
        );
        tokio::time::advance(Duration::from_secs(1)).await;
        rl.hit(&TWO_PER_MINUTE, "k").await.unwrap();
    }

    #[tokio::test(start_paused = true)]
    async fn each_call_counts_so_batched_attempts_cannot_bypass_the_limit() {
        let rl = RateLimiter::in_process();
        // As a GraphQL batch or aliases would: many resolver runs at once.
        let mut tasks = Vec::new();
        for _ in 0..5 {
            let rl = rl.clone();
            tasks.push(tokio::spawn(async move {
                rl.hit(&TWO_PER_MINUTE, "batch").await
            }));
        }
        let mut allowed = 0;
        for t in tasks {
            if t.await.unwrap().is_ok() {
                allowed += 1;
            }
        }
        assert_eq!(allowed, 2);
    }

    #[tokio::test(start_paused = true)]
    async fn classes_and_keys_are_counted_separately() {
        let rl = RateLimiter::in_process();
        for _ in 0..2 {
            rl.hit(&TWO_PER_MINUTE, "k").await.unwrap();
        }
        limited(rl.hit(&TWO_PER_MINUTE, "k").await);
        rl.hit(&OTHER_CLASS, "k").await.unwrap();
        rl.hit(&TWO_PER_MINUTE, "other").await.unwrap();
    }

    #[tokio::test(start_paused = true)]
    async fn default_sign_in_limit_is_ten_per_account_and_reset_lifts_it() {
        let rl = RateLimiter::in_process();
        let c = RateLimitClass::SIGNIN_ACCOUNT;
        for _ in 0..10 {
            rl.hit(&c, "acct").await.unwrap();
        }
        assert_eq!(limited(rl.hit(&c, "acct").await), minutes(15));
        rl.reset(&c, "acct").await.unwrap();
        rl.hit(&c, "acct").await.unwrap();
    }

    #[tokio::test(start_paused = true)]
    async fn expired_windows_are_pruned() {
        let store = Arc::new(MemoryStore::default());
        let rl = RateLimiter::new(store.clone());
        for i in 0..100 {
            rl.hit(&TWO_PER_MINUTE, &format!("ip{i}")).await.unwrap();
        }
        assert_eq!(store.len(), 100);
        tokio::time::advance(minutes(1)).await;
        for _ in 0..PRUNE_EVERY {
            let _ = rl.hit(&TWO_PER_MINUTE, "fresh").await;
        }
        assert_eq!(store.len(), 1);
    }

    #[tokio::test(start_paused = true)]
    async fn a_full_store_evicts_light_keys_but_keeps_lockouts() {
        let store = Arc::new(MemoryStore::with_capacity(100));
        let rl = RateLimiter::new(store.clone());
        for _ in 0..3 {
            let _ = rl.hit(&TWO_PER_MINUTE, "victim").await;
        }
        for i in 0..1000 {
            rl.hit(&OTHER_CLASS, &format!("flood{i}")).await.unwrap();
            assert!(store.len() <= 100);
        }
        limited(rl.hit(&TWO_PER_MINUTE, "victim").await);
    }

    #[tokio::test(start_paused = true)]
    async fn an_absurd_window_does_not_panic() {
        let rl = RateLimiter::in_process();
        let forever = RateLimitClass::new("test:forever", 1, Duration::MAX);
        rl.hit(&forever, "k").await.unwrap();
        assert_eq!(
            limited(rl.hit(&forever, "k").await),
            Duration::from_secs(30 * 24 * 60 * 60)
        );
    }

    #[test]
    fn keys_are_prefixed_by_class_and_long_keys_hashed() {
        assert_eq!(
            store_key(&RateLimitClass::SIGNIN_IP, "1.2.3.4"),
            "signin:ip:1.2.3.4"
        );
        let long = store_key(&RateLimitClass::SIGNIN_IP, &"x".repeat(10_000));
        assert!(long.starts_with("signin:ip:sha256:"));
        assert_eq!(long.len(), "signin:ip:sha256:".len() + 64);
    }

    #[test]
    fn error_codes_are_stable() {
        let limited = RateLimitError::Limited {
            retry_after: Duration::from_secs(1),
        };
        assert_eq!(limited.code(), "RATE_LIMITED");
        assert_eq!(RateLimitError::Store("x".into()).code(), "INTERNAL");
    }
}
