//! Graceful overload: beyond what a replica takes on at once, requests are shed at once with
//! `503 OVERLOADED` and `Retry-After` (a calm page for people) — nothing started, nothing
//! half-done — and service is normal again as soon as the burst is over.

use axum::body::Body;
use futures_util::future::join_all;
use http::{Request, StatusCode};
use musubi_test_support::demo::{HOST, NURSE, OTHER, OTHER_NURSE};
use musubi_test_support::{error_codes, test_config, TestApp};
use serde_json::Value;

const POST: &str = "mutation($t: ID!, $b: String!) { postComment(topicId: $t, body: $b) }";
const COUNTS: &str = "{ unreadCounts { total } }";

async fn app_with(limits: &[(&str, &str)]) -> TestApp {
    TestApp::demo_with_config(test_config(limits)).await
}

async fn ask(
    app: &TestApp,
    token: &str,
    association: &str,
    query: &str,
    variables: Value,
) -> (StatusCode, Option<String>, Value) {
    let body = serde_json::json!({ "query": query, "variables": variables });
    let (status, headers, json) = app.graphql_as(token, association, body).await;
    let retry = headers
        .get("retry-after")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    (status, retry, json)
}

fn shed(a: &(StatusCode, Option<String>, Value)) -> bool {
    a.0 == StatusCode::SERVICE_UNAVAILABLE && error_codes(&a.2) == ["OVERLOADED"] && a.1.is_some()
}

fn served(a: &(StatusCode, Option<String>, Value)) -> bool {
    a.0 == StatusCode::OK && a.2["errors"].is_null()
}

/// A new topic of `token`'s person, in a new group of the host association.
async fn a_topic(app: &TestApp, token: &str) -> String {
    let g = ask(
        app,
        token,
        HOST,
        "mutation { createGroup(kind: GENERAL, name: \"負荷試験\", acceptsRequests: false) { id } }",
        Value::Null,
    )
    .await;
    let group = g.2["data"]["createGroup"]["id"]
        .as_str()
        .unwrap_or_else(|| panic!("{g:?}"))
        .to_owned();
    let t = ask(
        app,
        token,
        HOST,
        "mutation($g: ID!) { createTopic(groupId: $g, title: \"負荷試験\", body: \"本文\") }",
        serde_json::json!({ "g": group }),
    )
    .await;
    t.2["data"]["createTopic"]
        .as_str()
        .unwrap_or_else(|| panic!("{t:?}"))
        .to_owned()
}

async fn comments_in(app: &TestApp, topic: &str) -> i64 {
    let mut tx = app.tenant_tx(HOST).await;
    sqlx::query_scalar("SELECT count(*) FROM comments WHERE topic_id = $1::uuid")
        .bind(topic)
        .fetch_one(&mut *tx)
        .await
        .unwrap()
}

#[tokio::test]
async fn a_burst_beyond_capacity_is_shed_at_once_and_nothing_shed_is_half_done() {
    let app = app_with(&[
        ("MUSUBI_MAX_IN_FLIGHT", "2"),
        ("MUSUBI_OVERLOAD_QUEUE_WAIT_MS", "0"),
        ("MUSUBI_OVERLOAD_MAX_WAITING", "0"),
    ])
    .await;
    let nurse = app.demo_token(NURSE).await;
    let topic = a_topic(&app, &nurse).await;
    let before = comments_in(&app, &topic).await;
    let burst = join_all((0..40).map(|i| {
        let vars = serde_json::json!({ "t": topic, "b": format!("バースト {i}") });
        ask(&app, &nurse, HOST, POST, vars)
    }))
    .await;
    let accepted = burst.iter().filter(|a| served(a)).count();
    let refused = burst.iter().filter(|a| shed(a)).count();
    assert!(accepted >= 2, "what fits is served ({accepted})");
    assert!(refused >= 1, "the rest is shed ({refused})");
    assert_eq!(accepted + refused, 40, "nothing else: {burst:?}");
    // Exactly the accepted comments exist: a shed request did nothing.
    assert_eq!(comments_in(&app, &topic).await - before, accepted as i64);
    // Served and shed alike are counted out again: background work does not think the
    // server busy for ever.
    assert_eq!(app.services().pressure().in_flight(), 0);
    // The burst is over: normal service at once.
    for _ in 0..5 {
        assert!(served(&ask(&app, &nurse, HOST, COUNTS, Value::Null).await));
    }
}

#[tokio::test]
async fn a_busy_association_does_not_take_the_others_capacity() {
    let app = app_with(&[
        ("MUSUBI_ASSOCIATION_IN_FLIGHT", "1"),
        ("MUSUBI_OVERLOAD_QUEUE_WAIT_MS", "0"),
        ("MUSUBI_OVERLOAD_MAX_WAITING", "0"),
    ])
    .await;
    let nurse = app.demo_token(NURSE).await;
    let other = app.demo_token(OTHER_NURSE).await;
    let (mut busy, mut elsewhere) = (Vec::new(), Vec::new());
    for _ in 0..5 {
        // Each round, one request to another association at the same moment as a burst.
        let (b, e) = tokio::join!(
            join_all((0..10).map(|_| ask(&app, &nurse, HOST, COUNTS, Value::Null))),
            ask(&app, &other, OTHER, COUNTS, Value::Null)
        );
        busy.extend(b);
        elsewhere.push(e);
    }
    assert!(busy.iter().any(shed), "the busy association sheds");
    assert!(busy.iter().any(served));
    // Another association routed at the same moment keeps its own turns.
    assert!(elsewhere.iter().all(served), "{elsewhere:?}");
}

#[tokio::test]
async fn a_person_on_a_page_sees_a_calm_page_in_their_language() {
    let app = app_with(&[
        ("MUSUBI_MAX_IN_FLIGHT", "1"),
        ("MUSUBI_OVERLOAD_QUEUE_WAIT_MS", "0"),
        ("MUSUBI_OVERLOAD_MAX_WAITING", "0"),
    ])
    .await;
    let pages = join_all((0..20).map(|_| {
        app.send(
            // An invitation link reads the database: requests overlap while they wait on it.
            Request::get(format!("/invite/{}", "x".repeat(43)))
                .header("accept-language", "ja")
                .body(Body::empty())
                .unwrap(),
        )
    }))
    .await;
    let busy: Vec<_> = pages
        .iter()
        .filter(|(s, _, _)| *s == StatusCode::SERVICE_UNAVAILABLE)
        .collect();
    assert!(!busy.is_empty(), "some of the burst is shed");
    let (_, headers, body) = busy[0];
    assert!(headers.contains_key("retry-after"));
    assert!(body.contains("ただいま混み合っています"), "{body}");
    assert!(body.contains("OVERLOADED"));
    // Health checks are never shed.
    let (status, _, _) = app.get("/healthz").await;
    assert_eq!(status, StatusCode::OK);
}

/// Writes `head` (and, after a moment, `body`) on `conn`, then reads one response: its status
/// line and headers, lower-cased, and whether the connection was found closed instead.
async fn exchange(conn: &mut tokio::net::TcpStream, head: &str, body: &[u8]) -> (String, bool) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    if let Err(e) = conn.write_all(head.as_bytes()).await {
        return (format!("closed: {e}"), true);
    }
    if !body.is_empty() {
        // The body comes after the refusal is decided, as on a real network.
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        let _ = conn.write_all(body).await;
    }
    let mut got = Vec::new();
    let mut buf = [0u8; 8192];
    let head_end = loop {
        if let Some(i) = got.windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
        let n = tokio::time::timeout(std::time::Duration::from_secs(10), conn.read(&mut buf))
            .await
            .expect("an answer in time")
            .unwrap_or(0);
        if n == 0 {
            return (String::from_utf8_lossy(&got).to_lowercase(), true);
        }
        got.extend_from_slice(&buf[..n]);
    };
    let head = String::from_utf8_lossy(&got[..head_end]).to_lowercase();
    let length: usize = head
        .lines()
        .find_map(|l| l.strip_prefix("content-length:"))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0);
    while got.len() < head_end + length {
        let n = conn.read(&mut buf).await.unwrap_or(0);
        if n == 0 {
            break;
        }
        got.extend_from_slice(&buf[..n]);
    }
    (head, false)
}

#[tokio::test]
async fn a_refused_request_leaves_its_connection_usable_or_says_it_is_closed() {
    use tokio::io::AsyncWriteExt;
    let app = app_with(&[
        ("MUSUBI_MAX_IN_FLIGHT", "1"),
        ("MUSUBI_OVERLOAD_QUEUE_WAIT_MS", "0"),
        ("MUSUBI_OVERLOAD_MAX_WAITING", "0"),
    ])
    .await;
    let addr = app.serve().await;
    let post = |length: usize| {
        format!(
            "POST /graphql HTTP/1.1\r\nhost: musubi\r\ncontent-type: application/json\r\n\
             musubi-association: {HOST}\r\ncontent-length: {length}\r\n\r\n"
        )
    };
    // The one request allowed at once: its body is still on its way.
    let mut holder = tokio::net::TcpStream::connect(addr).await.unwrap();
    holder.write_all(post(1000).as_bytes()).await.unwrap();
    holder.write_all(b"{\"query\":").await.unwrap();
    tokio::time::sleep(std::time::Duration::from_millis(100)).await;

    // A request whose body arrives after it was refused: the refusal is answered and the
    // connection carries the next request.
    let body = format!(
        "{{\"query\":\"{COUNTS}\",\"pad\":\"{}\"}}",
        "x".repeat(3000)
    );
    let mut conn = tokio::net::TcpStream::connect(addr).await.unwrap();
    let (head, closed) = exchange(&mut conn, &post(body.len()), body.as_bytes()).await;
    assert!(head.starts_with("http/1.1 503"), "{head}");
    assert!(head.contains("retry-after:"), "{head}");
    assert!(!head.contains("connection: close"), "{head}");
    assert!(!closed);
    let (again, _) = exchange(
        &mut conn,
        "GET /healthz HTTP/1.1\r\nhost: musubi\r\n\r\n",
        b"",
    )
    .await;
    assert!(
        again.starts_with("http/1.1 200"),
        "the same connection: {again}"
    );

    // A body too large to read for nothing: the refusal says the connection ends.
    let mut big = tokio::net::TcpStream::connect(addr).await.unwrap();
    let (head, _) = exchange(&mut big, &post(50 * 1024 * 1024), b"").await;
    assert!(head.starts_with("http/1.1 503"), "{head}");
    assert!(head.contains("connection: close"), "{head}");
    drop(holder);
}

/// Enqueues `n` jobs of `kind` due `ago_secs` ago, each failing at once for good (no payload),
/// and returns their ids.
async fn due_jobs(app: &TestApp, kind: &str, n: usize, ago_secs: i64) -> Vec<i64> {
    let mut ids = Vec::new();
    for _ in 0..n {
        let id: i64 = sqlx::query_scalar(
            "INSERT INTO core.jobs (kind, payload, run_at, max_attempts, created_at) \
             VALUES ($1, '{}', now() - make_interval(secs => $2), 1, now()) RETURNING id",
        )
        .bind(kind)
        .bind(ago_secs as f64)
        .fetch_one(app.db.db.pool())
        .await
        .unwrap();
        ids.push(id);
    }
    ids
}

/// When each job ended: a job failing at once ends at the time it was claimed, so jobs claimed
/// together share one.
async fn ended(app: &TestApp, ids: &[i64]) -> Vec<chrono::DateTime<chrono::Utc>> {
    sqlx::query_scalar("SELECT finished_at FROM core.jobs WHERE id = ANY($1) ORDER BY id")
        .bind(ids)
        .fetch_all(app.db.db.pool())
        .await
        .unwrap()
}

#[tokio::test]
async fn digests_yield_to_people_and_an_urgent_notice_never_waits_behind_them() {
    use musubi_domain::jobs::{Pressure, KIND_DIGEST, KIND_URGENT};
    // Busy by this server's requests only: the tests running beside this one load the machine.
    let app = TestApp::demo_with_services(test_config(&[]), |s| {
        s.with_pressure(Pressure::requests_only())
    })
    .await;
    let s = app.services();
    // A schedule run's digests, then an urgent notice due after all of them.
    let digests = due_jobs(&app, KIND_DIGEST, 12, 30).await;
    let urgent = due_jobs(&app, KIND_URGENT, 1, 1).await;
    // Requests waiting for every core.
    let cores = std::thread::available_parallelism().map_or(2, std::num::NonZeroUsize::get);
    let requests: Vec<_> = (0..=cores).map(|_| s.pressure().enter()).collect();
    assert!(s.pressure().busy());
    assert_eq!(s.run_due_jobs_yielding(LONG_TURN).await.unwrap(), 13);
    let urgent_at = ended(&app, &urgent).await[0];
    let digests_at = ended(&app, &digests).await;
    assert!(
        digests_at.iter().all(|d| urgent_at < *d),
        "the urgent notice first: {urgent_at} / {digests_at:?}"
    );
    // While busy, each digest was taken on its own, with a pause after it.
    let claims: std::collections::HashSet<_> = digests_at.iter().collect();
    assert_eq!(claims.len(), 12, "{digests_at:?}");

    // Nobody waiting: digests go by the batch again.
    drop(requests);
    assert!(!s.pressure().busy());
    let more = due_jobs(&app, KIND_DIGEST, 12, 30).await;
    assert_eq!(s.run_due_jobs_yielding(LONG_TURN).await.unwrap(), 12);
    let claims: std::collections::HashSet<_> = ended(&app, &more).await.into_iter().collect();
    assert_eq!(claims.len(), 2, "ten, then two");

    // Busy, with digests left when the turn's time is up: the loop hands back (to enqueue the
    // next schedule run) instead of draining them all first.
    let requests: Vec<_> = (0..=cores).map(|_| s.pressure().enter()).collect();
    let left = due_jobs(&app, KIND_DIGEST, 5, 30).await;
    assert_eq!(
        s.run_due_jobs_yielding(std::time::Duration::ZERO)
            .await
            .unwrap(),
        1
    );
    let pending: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM core.jobs WHERE id = ANY($1) AND state = 'pending'",
    )
    .bind(&left)
    .fetch_one(app.db.db.pool())
    .await
    .unwrap();
    assert_eq!(pending, 4);
    drop(requests);
}

/// Long enough for every job these tests enqueue.
const LONG_TURN: std::time::Duration = std::time::Duration::from_secs(60);

/// After a schedule run, thousands of digests are pending and due; the urgent-first claim,
/// made at every turn of the job loop, must not read them to find that nothing else is due.
#[tokio::test]
async fn claiming_urgent_work_does_not_read_the_pending_digests() {
    use musubi_db::jobs::Kinds;
    use musubi_domain::jobs::{KIND_DIGEST, KIND_URGENT};
    let app = TestApp::demo_with_config(test_config(&[])).await;
    let pool = app.db.db.pool();
    // Whatever the demo enqueued (its schedule) out of the way: one urgent notice is due.
    sqlx::query("DELETE FROM core.jobs")
        .execute(pool)
        .await
        .unwrap();
    sqlx::query(
        "INSERT INTO core.jobs (kind, payload, run_at, max_attempts, created_at) \
         SELECT $1, '{}', now() - interval '30 seconds', 1, now() FROM generate_series(1, 3000)",
    )
    .bind(KIND_DIGEST)
    .execute(pool)
    .await
    .unwrap();
    let urgent = due_jobs(&app, KIND_URGENT, 1, 1).await;
    sqlx::query("ANALYZE core.jobs")
        .execute(pool)
        .await
        .unwrap();

    // The claim's own statement, executed and rolled back, with what it read.
    let mut tx = pool.begin().await.unwrap();
    let plan: Value = sqlx::query_scalar(&format!(
        "EXPLAIN (ANALYZE, BUFFERS, FORMAT JSON) {}",
        Kinds::Prompt.claim_sql()
    ))
    .bind(chrono::Utc::now())
    .bind(chrono::Duration::seconds(60))
    .bind(10_i64)
    .fetch_one(&mut *tx)
    .await
    .unwrap();
    tx.rollback().await.unwrap();
    let text = plan.to_string();
    assert!(text.contains("\"jobs_due_prompt\""), "{plan:#}");
    assert!(!text.contains("Rows Removed by Filter"), "{plan:#}");
    let root = &plan[0]["Plan"];
    let buffers =
        root["Shared Hit Blocks"].as_i64().unwrap() + root["Shared Read Blocks"].as_i64().unwrap();
    assert!(buffers < 30, "{buffers} pages read for one job: {plan:#}");

    // And the claim takes it, leaving the digests.
    let claim = |kinds| {
        musubi_db::jobs::claim(
            pool,
            chrono::Utc::now(),
            chrono::Duration::seconds(60),
            10,
            kinds,
        )
    };
    let claimed = claim(Kinds::Prompt).await.unwrap();
    assert_eq!(claimed.iter().map(|j| j.id).collect::<Vec<_>>(), urgent);
    let digests = claim(Kinds::Deferrable).await.unwrap();
    assert!(digests.len() == 10 && digests.iter().all(|j| j.kind == KIND_DIGEST));
}
