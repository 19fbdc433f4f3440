//! The event bus, in process and against a real Redis (`cargo xtask test` starts one; or set
//! `MUSUBI_TEST_REDIS_URL`, e.g. `redis://127.0.0.1:6379`). Without a Redis the Redis tests
//! fail, unless `MUSUBI_SKIP_REDIS_TESTS=1`. Each test uses its own channel, so runs may share
//! a Redis and run in parallel.

use musubi_realtime::{Bus, BusError, Event, EventKind, MAX_MESSAGE_BYTES};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpListener, TcpStream, UnixStream};
use tokio::sync::broadcast::error::RecvError;
use tokio::sync::broadcast::Receiver;
use tokio::task::AbortHandle;
use tokio::time::timeout;
use uuid::Uuid;

const URL_ENV: &str = "MUSUBI_TEST_REDIS_URL";
const SKIP_ENV: &str = "MUSUBI_SKIP_REDIS_TESTS";

/// Long enough for Redis on any machine; only reached when something is wrong.
const ARRIVES_WITHIN: Duration = Duration::from_secs(5);
/// How long we watch for a duplicate.
const QUIET_FOR: Duration = Duration::from_millis(300);

/// The Redis to test against; `None` (the test is skipped) only when asked for explicitly.
fn redis_url() -> Option<String> {
    match std::env::var(URL_ENV) {
        Ok(url) if !url.is_empty() => Some(url),
        _ if std::env::var(SKIP_ENV).as_deref() == Ok("1") => {
            eprintln!("skipped: {URL_ENV} is not set and {SKIP_ENV}=1");
            None
        }
        _ => panic!(
            "{URL_ENV} is not set. Run `cargo xtask test`, which starts a private Redis, \
             or point it at a Redis you own, e.g. {URL_ENV}=redis://127.0.0.1:6379 \
             (or set {SKIP_ENV}=1 to skip the Redis tests)"
        ),
    }
}

fn unique_channel() -> String {
    format!("musubi:test:{}", Uuid::new_v4())
}

fn event(id: i64, kind: EventKind) -> Event {
    Event {
        id,
        association_id: Uuid::new_v4(),
        group_id: Uuid::new_v4(),
        topic_id: Some(Uuid::new_v4()),
        kind,
        scope: 1 | 2,
        actor_id: Uuid::new_v4(),
        topic_author_id: Some(Uuid::new_v4()),
        comment_ids: vec![Uuid::new_v4()],
        user_id: None,
        xid: None,
    }
}

async fn replica(url: &str, channel: &str) -> Bus {
    let bus = Bus::redis_with_channel(url, channel)
        .await
        .unwrap_or_else(|e| panic!("cannot connect to the Redis in {URL_ENV}: {e}"));
    assert!(bus.is_redis());
    bus
}

async fn next(rx: &mut Receiver<Arc<Event>>) -> Event {
    match timeout(ARRIVES_WITHIN, rx.recv()).await {
        Ok(Ok(event)) => (*event).clone(),
        Ok(Err(e)) => panic!("receiver failed: {e:?}"),
        Err(_) => panic!("no event within {ARRIVES_WITHIN:?}"),
    }
}

async fn assert_quiet(rx: &mut Receiver<Arc<Event>>) {
    if let Ok(got) = timeout(QUIET_FOR, rx.recv()).await {
        panic!("expected nothing more, got {got:?}");
    }
}

/// A plain connection, as something other than a `Bus` would publish with.
async fn plain_publish(url: &str, channel: &str, payload: impl redis::ToRedisArgs) {
    let client = redis::Client::open(url).expect("valid URL");
    let mut conn = client
        .get_multiplexed_async_connection()
        .await
        .expect("plain connection");
    redis::cmd("PUBLISH")
        .arg(channel)
        .arg(payload)
        .query_async::<i64>(&mut conn)
        .await
        .expect("PUBLISH");
}

#[tokio::test]
async fn in_process_delivers_to_every_subscriber() {
    let bus = Bus::in_process();
    assert!(!bus.is_redis());
    let (mut first, mut second) = (bus.subscribe(), bus.subscribe());
    let sent = event(1, EventKind::CommentPosted);
    bus.publish(&sent).await.expect("publish");
    assert_eq!(next(&mut first).await, sent);
    assert_eq!(next(&mut second).await, sent);
    assert_quiet(&mut first).await;

    // A clone is the same bus; a receiver only sees what comes after it subscribed.
    let late = bus.clone().subscribe().len();
    assert_eq!(late, 0);
}

#[tokio::test]
async fn in_process_publish_without_subscribers_is_fine() {
    let bus = Bus::in_process();
    bus.publish(&event(1, EventKind::TopicChanged))
        .await
        .expect("nobody listening is not an error");
}

#[tokio::test]
async fn oversized_event_is_refused() {
    let bus = Bus::in_process();
    let mut rx = bus.subscribe();
    let mut big = event(1, EventKind::FootprintAdded);
    big.comment_ids = (0..MAX_MESSAGE_BYTES / 36)
        .map(|_| Uuid::new_v4())
        .collect();
    match bus.publish(&big).await {
        Err(BusError::TooLarge { bytes }) => assert!(bytes > MAX_MESSAGE_BYTES),
        other => panic!("expected TooLarge, got {other:?}"),
    }
    assert_quiet(&mut rx).await;
}

#[tokio::test]
async fn lagging_receiver_is_told() {
    let bus = Bus::in_process();
    let mut rx = bus.subscribe();
    let total = musubi_realtime::CAPACITY as i64 + 10;
    for id in 0..total {
        bus.publish(&event(id, EventKind::UnreadChanged))
            .await
            .expect("publish");
    }
    assert!(matches!(rx.recv().await, Err(RecvError::Lagged(10))));
    // It carries on with the oldest event still held.
    assert_eq!(next(&mut rx).await.id, 10);
}

#[tokio::test]
async fn dropping_the_bus_closes_receivers() {
    let bus = Bus::in_process();
    let mut rx = bus.subscribe();
    drop(bus);
    assert!(matches!(rx.recv().await, Err(RecvError::Closed)));

    let Some(url) = redis_url() else { return };
    let bus = replica(&url, &unique_channel()).await;
    let mut rx = bus.subscribe();
    drop(bus);
    assert!(matches!(
        timeout(ARRIVES_WITHIN, rx.recv()).await,
        Ok(Err(RecvError::Closed))
    ));
}

#[tokio::test]
async fn two_replicas_each_receive_once() {
    let Some(url) = redis_url() else { return };
    let channel = unique_channel();
    let (a, b) = (replica(&url, &channel).await, replica(&url, &channel).await);
    let (mut on_a, mut on_b) = (a.subscribe(), b.subscribe());

    let from_a = event(1, EventKind::CommentPosted);
    a.publish(&from_a).await.expect("publish on A");
    assert_eq!(next(&mut on_b).await, from_a);
    assert_eq!(next(&mut on_a).await, from_a, "the publisher hears itself");

    let from_b = Event {
        user_id: Some(Uuid::new_v4()),
        ..event(2, EventKind::UnreadChanged)
    };
    b.publish(&from_b).await.expect("publish on B");
    assert_eq!(next(&mut on_a).await, from_b);
    assert_eq!(next(&mut on_b).await, from_b);

    assert_quiet(&mut on_a).await;
    assert_quiet(&mut on_b).await;
}

#[tokio::test]
async fn replicas_on_other_channels_hear_nothing() {
    let Some(url) = redis_url() else { return };
    let (a, other) = (
        replica(&url, &unique_channel()).await,
        replica(&url, &unique_channel()).await,
    );
    let mut on_other = other.subscribe();
    a.publish(&event(1, EventKind::MembershipChanged))
        .await
        .expect("publish");
    assert_quiet(&mut on_other).await;
}

#[tokio::test]
async fn garbage_is_dropped_and_the_next_event_arrives() {
    let Some(url) = redis_url() else { return };
    let channel = unique_channel();
    let bus = replica(&url, &channel).await;
    let mut rx = bus.subscribe();

    let mut unknown_kind = serde_json::to_value(event(1, EventKind::Acknowledged)).expect("json");
    unknown_kind["kind"] = "comment_exploded".into();
    let valid_but_huge = {
        let mut big = event(2, EventKind::CommentDeleted);
        big.comment_ids = (0..MAX_MESSAGE_BYTES / 36)
            .map(|_| Uuid::new_v4())
            .collect();
        serde_json::to_vec(&big).expect("json")
    };
    assert!(valid_but_huge.len() > MAX_MESSAGE_BYTES);
    plain_publish(&url, &channel, "not json at all").await;
    plain_publish(&url, &channel, &[0xff_u8, 0xfe, 0x00][..]).await;
    plain_publish(&url, &channel, "{\"id\":1}").await;
    plain_publish(&url, &channel, unknown_kind.to_string()).await;
    plain_publish(&url, &channel, valid_but_huge).await;

    let good = event(3, EventKind::CommentEdited);
    bus.publish(&good).await.expect("publish");
    assert_eq!(
        next(&mut rx).await,
        good,
        "only the valid event comes through"
    );
    assert_quiet(&mut rx).await;
}

#[tokio::test]
async fn unreachable_redis_fails_at_start() {
    // Port 1 on loopback: nothing listens there.
    match Bus::redis_with_channel("redis://127.0.0.1:1", &unique_channel()).await {
        Err(BusError::Redis(_) | BusError::Timeout(_)) => {}
        other => panic!("expected a connection error, got {other:?}"),
    }
    assert!(matches!(
        Bus::redis("not a url").await,
        Err(BusError::Redis(_))
    ));
}

/// The subscriber comes back by itself after its connection drops, says so through
/// `reconnections`, and hears events again; publishing recovers too.
#[tokio::test]
async fn reconnects_after_the_connection_drops() {
    let _ = tracing_subscriber::fmt().with_test_writer().try_init();
    let Some(url) = redis_url() else { return };
    let channel = unique_channel();
    let proxy = Proxy::start(&url).await;
    let bus = replica(&proxy.url, &channel).await;
    let mut rx = bus.subscribe();
    let mut reconnections = bus.reconnections();
    assert_eq!(*reconnections.borrow_and_update(), 0);

    let before = event(1, EventKind::CommentPosted);
    bus.publish(&before).await.expect("publish");
    assert_eq!(next(&mut rx).await, before);

    // Redis goes away for a while: the first reconnection attempts fail and back off.
    proxy.set_down(true);
    proxy.cut();
    tokio::time::sleep(Duration::from_millis(800)).await;
    assert_eq!(
        *reconnections.borrow(),
        0,
        "cannot be back while Redis is down"
    );
    let missed = event(2, EventKind::CommentEdited);
    plain_publish(
        &url,
        &channel,
        serde_json::to_string(&missed).expect("json"),
    )
    .await;
    proxy.set_down(false);

    timeout(Duration::from_secs(15), reconnections.changed())
        .await
        .expect("reconnected within 15 s")
        .expect("bus alive");
    assert_eq!(*reconnections.borrow_and_update(), 1);

    // Another replica's event arrives again; the one sent while down does not (that is what
    // the re-sync from PostgreSQL is for).
    let after = event(3, EventKind::FootprintAdded);
    plain_publish(&url, &channel, serde_json::to_string(&after).expect("json")).await;
    assert_eq!(next(&mut rx).await, after);

    // The publisher's own connection was cut too: it may fail once, then recovers.
    let own = event(4, EventKind::Acknowledged);
    let mut attempts = 0;
    while let Err(e) = bus.publish(&own).await {
        attempts += 1;
        assert!(attempts < 20, "publish did not recover: {e}");
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    assert_eq!(next(&mut rx).await, own);
    assert_quiet(&mut rx).await;
}

/// A TCP proxy in front of the test Redis whose connections the test can cut, and which can
/// play dead (accept and drop at once), without disturbing anything else using that Redis.
struct Proxy {
    url: String,
    conns: Arc<Mutex<Vec<AbortHandle>>>,
    down: Arc<AtomicBool>,
    accept: AbortHandle,
}

enum Upstream {
    Tcp(String),
    Unix(String),
}

impl Proxy {
    /// Supports `redis://[auth@]host:port[/db]` and `redis+unix://` / `unix://` URLs without
    /// a password (what `cargo xtask test` starts).
    async fn start(url: &str) -> Proxy {
        let (upstream, auth, db) = if let Some(rest) = url
            .strip_prefix("redis+unix://")
            .or_else(|| url.strip_prefix("unix://"))
        {
            let path = rest.split('?').next().unwrap_or(rest);
            (
                Upstream::Unix(path.to_owned()),
                String::new(),
                String::new(),
            )
        } else if let Some(rest) = url.strip_prefix("redis://") {
            let (auth, rest) = match rest.rsplit_once('@') {
                Some((auth, rest)) => (format!("{auth}@"), rest),
                None => (String::new(), rest),
            };
            let (host, db) = match rest.split_once('/') {
                Some((host, db)) => (host, format!("/{db}")),
                None => (rest, String::new()),
            };
            (Upstream::Tcp(host.to_owned()), auth, db)
        } else {
            panic!("the reconnection test supports redis:// and redis+unix:// URLs, not {url}");
        };
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let port = listener.local_addr().expect("local addr").port();
        let conns = Arc::new(Mutex::new(Vec::new()));
        let down = Arc::new(AtomicBool::new(false));
        let accept = tokio::spawn({
            let (conns, down) = (conns.clone(), down.clone());
            let upstream = Arc::new(upstream);
            async move {
                loop {
                    let Ok((client, _)) = listener.accept().await else {
                        continue;
                    };
                    if down.load(Ordering::SeqCst) {
                        drop(client);
                        continue;
                    }
                    let upstream = upstream.clone();
                    let task = tokio::spawn(async move {
                        match &*upstream {
                            Upstream::Tcp(addr) => {
                                if let Ok(server) = TcpStream::connect(addr).await {
                                    pipe(client, server).await;
                                }
                            }
                            Upstream::Unix(path) => {
                                if let Ok(server) = UnixStream::connect(path).await {
                                    pipe(client, server).await;
                                }
                            }
                        }
                    });
                    conns.lock().expect("lock").push(task.abort_handle());
                }
            }
        })
        .abort_handle();
        Proxy {
            url: format!("redis://{auth}127.0.0.1:{port}{db}"),
            conns,
            down,
            accept,
        }
    }

    /// Drops every open connection (both ends see them close).
    fn cut(&self) {
        for conn in self.conns.lock().expect("lock").drain(..) {
            conn.abort();
        }
    }

    fn set_down(&self, down: bool) {
        self.down.store(down, Ordering::SeqCst);
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.accept.abort();
        self.cut();
    }
}

async fn pipe(
    mut a: impl AsyncRead + AsyncWrite + Unpin,
    mut b: impl AsyncRead + AsyncWrite + Unpin,
) {
    let _ = tokio::io::copy_bidirectional(&mut a, &mut b).await;
}
