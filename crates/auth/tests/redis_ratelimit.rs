//! The Redis rate-limit store against a real Redis (`cargo xtask test` starts one).
//! Each test uses fresh random keys, so runs may share a Redis and run in parallel.

use musubi_auth::ratelimit::{RateLimitClass, RateLimitError, RateLimiter, RedisStore};
use std::sync::Arc;
use std::time::Duration;
use uuid::Uuid;

const URL_ENV: &str = "MUSUBI_TEST_REDIS_URL";

fn redis_url() -> String {
    match std::env::var(URL_ENV) {
        Ok(url) if !url.is_empty() => url,
        _ => panic!(
            "{URL_ENV} is not set. Run `cargo xtask test`, which starts a private Redis, \
             or point it at a Redis you own, e.g. {URL_ENV}=redis://127.0.0.1:6379"
        ),
    }
}

const FIVE_PER_MINUTE: RateLimitClass =
    RateLimitClass::new("test:five", 5, Duration::from_secs(60));

/// One limiter with its own connection, as a separate replica would have.
async fn replica() -> RateLimiter {
    let store = RedisStore::connect(&redis_url())
        .await
        .unwrap_or_else(|e| panic!("cannot connect to the Redis in {URL_ENV}: {e}"));
    RateLimiter::new(Arc::new(store))
}

fn unique_key() -> String {
    Uuid::new_v4().to_string()
}

fn retry_after(r: Result<(), RateLimitError>) -> Duration {
    match r {
        Err(RateLimitError::Limited { retry_after }) => retry_after,
        other => panic!("expected Limited, got {other:?}"),
    }
}

#[tokio::test]
async fn two_replicas_share_one_limit() {
    let (a, b) = (replica().await, replica().await);
    let key = unique_key();
    for i in 0..5 {
        let r = if i % 2 == 0 { &a } else { &b };
        r.hit(&FIVE_PER_MINUTE, &key).await.unwrap();
    }
    let wait_a = retry_after(a.hit(&FIVE_PER_MINUTE, &key).await);
    let wait_b = retry_after(b.hit(&FIVE_PER_MINUTE, &key).await);
    for wait in [wait_a, wait_b] {
        assert!(
            wait > Duration::from_secs(50) && wait <= Duration::from_secs(60),
            "{wait:?}"
        );
    }
}

#[tokio::test]
async fn concurrent_attempts_on_two_replicas_are_each_counted() {
    let (a, b) = (replica().await, replica().await);
    let key = unique_key();
    let mut tasks = Vec::new();
    for i in 0..20 {
        let limiter = if i % 2 == 0 { a.clone() } else { b.clone() };
        let key = key.clone();
        tasks.push(tokio::spawn(async move {
            limiter.hit(&FIVE_PER_MINUTE, &key).await
        }));
    }
    let mut allowed = 0;
    for t in tasks {
        if t.await.unwrap().is_ok() {
            allowed += 1;
        }
    }
    assert_eq!(allowed, 5);
}

#[tokio::test]
async fn lockout_ends_when_the_window_passes() {
    let class = RateLimitClass::new("test:short", 2, Duration::from_millis(800));
    let limiter = replica().await;
    let key = unique_key();
    limiter.hit(&class, &key).await.unwrap();
    limiter.hit(&class, &key).await.unwrap();
    let wait = retry_after(limiter.hit(&class, &key).await);
    assert!(wait <= Duration::from_millis(800), "{wait:?}");
    // Attempts during the lockout do not extend it.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let later = retry_after(limiter.hit(&class, &key).await);
    assert!(later < wait, "{later:?} should be less than {wait:?}");
    tokio::time::sleep(later + Duration::from_millis(100)).await;
    limiter.hit(&class, &key).await.unwrap();
}

#[tokio::test]
async fn classes_and_keys_do_not_interfere() {
    let one = RateLimitClass::new("test:one", 1, Duration::from_secs(60));
    let other = RateLimitClass::new("test:other", 1, Duration::from_secs(60));
    let limiter = replica().await;
    let key = unique_key();
    limiter.hit(&one, &key).await.unwrap();
    retry_after(limiter.hit(&one, &key).await);
    limiter.hit(&other, &key).await.unwrap();
    limiter.hit(&one, &unique_key()).await.unwrap();
}

#[tokio::test]
async fn reset_on_one_replica_clears_the_count_for_all() {
    let (a, b) = (replica().await, replica().await);
    let key = unique_key();
    for _ in 0..5 {
        a.hit(&FIVE_PER_MINUTE, &key).await.unwrap();
    }
    retry_after(b.hit(&FIVE_PER_MINUTE, &key).await);
    a.reset(&FIVE_PER_MINUTE, &key).await.unwrap();
    b.hit(&FIVE_PER_MINUTE, &key).await.unwrap();
}

#[tokio::test]
async fn counters_live_under_the_musubi_prefix_and_expire() {
    let limiter = replica().await;
    let key = unique_key();
    limiter.hit(&FIVE_PER_MINUTE, &key).await.unwrap();

    let client = redis::Client::open(redis_url()).unwrap();
    let mut conn = client.get_multiplexed_async_connection().await.unwrap();
    let ttl: i64 = redis::cmd("PTTL")
        .arg(format!("musubi:rl:test:five:{key}"))
        .query_async(&mut conn)
        .await
        .unwrap();
    assert!(ttl > 0 && ttl <= 60_000, "ttl {ttl}");
}

#[tokio::test]
async fn unreachable_redis_is_an_internal_error() {
    let err = RedisStore::connect("redis://127.0.0.1:1").await.err();
    assert_eq!(err.map(|e| e.code()), Some("INTERNAL"));
}
