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
    let body = serde_json::json!({ "query": HOME }).to_string();
    let req = Request::post("/graphql")
        .header("content-type", "application/json")
        .header("authorization", format!("Bearer {token}"))
        .header("musubi-association", HOST)
        .body(Body::from(body))
        .unwrap();
    let (status, headers, text) = app.send(req).await;
    let retry = headers
        .get("retry-after")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok());
    let json = serde_json::from_str(&text).unwrap_or_else(|_| panic!("not JSON: {text}"));
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
