//! Fair use: one session, one person or one address cannot take an association's capacity
//! from the others. The flooder gets `429` with `Retry-After` (`RATE_LIMITED` for the API, a
//! calm Japanese page for people); everyone else keeps being served.

use axum::body::Body;
use futures_util::future::join_all;
use http::{Request, StatusCode};
use musubi_test_support::demo::{CARE_MANAGER, HOST, NURSE, PHARMACIST};
use musubi_test_support::{error_codes, test_config, TestApp};
use serde_json::Value;

const HOME: &str = "{ unreadCounts { total } }";

async fn app_with(limits: &[(&str, &str)]) -> TestApp {
    TestApp::demo_with_config(test_config(limits)).await
}

/// One GraphQL request as `token`: status, `Retry-After` (if any) and the body.
async fn ask(app: &TestApp, token: &str) -> (StatusCode, Option<u64>, Value) {
    let body = serde_json::json!({ "query": HOME });
    let (status, headers, json) = app.graphql_as(token, HOST, body).await;
    let retry = headers
        .get("retry-after")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok());
    (status, retry, json)
}

fn served(answer: &(StatusCode, Option<u64>, Value)) -> bool {
    answer.0 == StatusCode::OK && answer.2["errors"].is_null()
}

fn refused(answer: &(StatusCode, Option<u64>, Value)) -> bool {
    answer.0 == StatusCode::TOO_MANY_REQUESTS
        && error_codes(&answer.2) == ["RATE_LIMITED"]
        && answer.1.is_some_and(|s| s >= 1)
}

#[tokio::test]
async fn a_flooding_member_is_limited_and_the_others_are_served() {
    let app = app_with(&[("MUSUBI_FAIR_SESSION_PER_MINUTE", "20")]).await;
    let flooder = app.demo_token(NURSE).await;
    let colleague = app.demo_token(CARE_MANAGER).await;

    // The flood and a colleague's normal use of the same association, at the same time.
    let flood = join_all((0..60).map(|_| ask(&app, &flooder)));
    let normal = async {
        let mut answers = Vec::new();
        for _ in 0..10 {
            answers.push(ask(&app, &colleague).await);
        }
        answers
    };
    let (flood, normal) = tokio::join!(flood, normal);

    assert_eq!(
        flood.iter().filter(|a| served(a)).count(),
        20,
        "the allowance is served"
    );
    let refusals = flood.iter().filter(|a| refused(a)).count();
    assert_eq!(
        refusals, 40,
        "the rest is refused with RATE_LIMITED and Retry-After"
    );
    for a in &normal {
        assert!(served(a), "a colleague is served during the flood: {a:?}");
    }
}

#[tokio::test]
async fn a_session_has_only_a_few_requests_served_at_once() {
    let app = app_with(&[
        ("MUSUBI_FAIR_SESSION_IN_FLIGHT", "1"),
        ("MUSUBI_FAIR_QUEUE_WAIT_MS", "0"),
    ])
    .await;
    let flooder = app.demo_token(NURSE).await;
    let colleague = app.demo_token(PHARMACIST).await;
    let (flood, normal) = tokio::join!(
        join_all((0..30).map(|_| ask(&app, &flooder))),
        join_all((0..3).map(|_| ask(&app, &colleague)))
    );
    let served_now = flood.iter().filter(|a| served(a)).count();
    let refused_now = flood.iter().filter(|a| refused(a)).count();
    assert!(served_now >= 1, "one at a time is still served");
    assert!(refused_now >= 1, "the others do not queue without end");
    assert_eq!(served_now + refused_now, 30, "nothing else: {flood:?}");
    // Another session is not held up by the flooder's turns (it has its own).
    assert!(normal.iter().any(served), "{normal:?}");
    // Once the flood is over, the flooder is served again at once.
    assert!(served(&ask(&app, &flooder).await));
}

#[tokio::test]
async fn a_person_is_counted_over_all_their_sessions() {
    let app = app_with(&[("MUSUBI_FAIR_PERSON_PER_MINUTE", "12")]).await;
    let first = app.demo_token(NURSE).await;
    let second = app.demo_token(NURSE).await;
    assert_ne!(first, second, "two sessions of one person");
    let mut answers = Vec::new();
    for _ in 0..8 {
        answers.push(ask(&app, &first).await);
        answers.push(ask(&app, &second).await);
    }
    assert_eq!(answers.iter().filter(|a| served(a)).count(), 12);
    assert_eq!(answers.iter().filter(|a| refused(a)).count(), 4);
    // Someone else is not affected.
    let other = app.demo_token(CARE_MANAGER).await;
    assert!(served(&ask(&app, &other).await));
}

#[tokio::test]
async fn pages_without_a_session_are_limited_per_address_with_a_calm_page() {
    let app = app_with(&[("MUSUBI_FAIR_ANONYMOUS_PER_MINUTE", "10")]).await;
    let mut last = None;
    for i in 0..14 {
        let req = Request::get("/signin")
            .header("accept-language", "ja")
            .body(Body::empty())
            .unwrap();
        let (status, headers, body) = app.send(req).await;
        if i < 10 {
            assert_eq!(status, StatusCode::OK, "request {i}");
        } else {
            last = Some((status, headers, body));
        }
    }
    let (status, headers, body) = last.unwrap();
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS);
    assert!(headers.contains_key("retry-after"));
    assert_eq!(headers["content-language"], "ja");
    assert!(body.contains("少し時間をおいてください"), "{body}");
    assert!(body.contains("RATE_LIMITED"));
    // Static files are never counted: the page that says "wait" still has its styles.
    let (status, _, _) = app.get("/healthz").await;
    assert_eq!(status, StatusCode::OK);
}

/// Requests of `token` one after another; whether all were served.
async fn all_served(app: &TestApp, token: &str, n: usize) -> bool {
    let mut ok = true;
    for _ in 0..n {
        ok &= served(&ask(app, token).await);
    }
    ok
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
// Latency under a flood is the benchmark's to measure (its fairness phase); timings in a test
// run beside hundreds of others only measure the machine.
async fn during_a_flood_the_others_are_always_served_and_the_flooder_is_refused() {
    // Fair use at its production defaults but a smaller allowance per minute, so that a flood
    // of a few seconds runs out of it (shedding stays out of the way).
    let app = app_with(&[
        ("MUSUBI_FAIR_SESSION_PER_MINUTE", "200"),
        ("MUSUBI_FAIR_PERSON_PER_MINUTE", "1200"),
        ("MUSUBI_FAIR_SESSION_IN_FLIGHT", "1"), // the default
    ])
    .await;
    let flooder = app.demo_token(NURSE).await;
    let others = [
        app.demo_token(CARE_MANAGER).await,
        app.demo_token(PHARMACIST).await,
    ];
    let (mut flood_refused, mut flood_served) = (0, 0);
    for _round in 0..4 {
        for token in &others {
            assert!(all_served(&app, token, 10).await, "served without a flood");
        }
        let stop = std::sync::atomic::AtomicBool::new(false);
        // Eight at once: more than the session may have served at once (two), and client work
        // in this same process stays small beside the server's.
        let flood = join_all((0..8).map(|_| async {
            let mut answers = Vec::new();
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                let answer = ask(&app, &flooder).await;
                // A flooder on another machine pays a round trip per request; here a refusal
                // would come back without waiting on anything and the loop would spend this
                // process's threads on the flooder's side of the wire.
                if refused(&answer) {
                    tokio::time::sleep(std::time::Duration::from_millis(1)).await;
                }
                answers.push(answer);
            }
            answers
        }));
        let normal = async {
            for token in &others {
                assert!(
                    all_served(&app, token, 10).await,
                    "a colleague is served during the flood"
                );
            }
            stop.store(true, std::sync::atomic::Ordering::Relaxed);
        };
        let (answers, ()) = tokio::join!(flood, normal);
        for a in answers.iter().flatten() {
            if refused(a) {
                flood_refused += 1;
            } else if served(a) {
                flood_served += 1;
            } else {
                panic!("the flooder gets an answer or RATE_LIMITED, nothing else: {a:?}");
            }
        }
    }
    // The flood goes on past the session's allowance: refused with RATE_LIMITED.
    for a in join_all((0..250).map(|_| ask(&app, &flooder))).await {
        if refused(&a) {
            flood_refused += 1;
        } else {
            assert!(served(&a), "served or RATE_LIMITED, nothing else: {a:?}");
            flood_served += 1;
        }
    }
    eprintln!("flooder: {flood_served} served, {flood_refused} refused");
    assert!(
        flood_refused > 0,
        "the flooder was refused with RATE_LIMITED"
    );
    assert!(flood_served > 0, "the flooder's allowance was served");
}
