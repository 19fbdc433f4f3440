//! Anonymous requests built to crash or exhaust the gateway: each is refused with a stable code
//! and the server keeps answering everyone else.

use axum::body::Body;
use http::Request;
use musubi_test_support::ws::{GqlWs, Reply};
use musubi_test_support::{error_codes, test_config, TestApp};
use serde_json::{json, Value};
use std::time::Duration;

/// Refusals must come before the expensive work, not after it: well inside this.
const PROMPT: Duration = Duration::from_secs(10);

async fn still_serving(app: &TestApp) {
    let r = app.graphql("{ server { version } }", None).await;
    assert!(r["data"]["server"]["version"].is_string(), "{r}");
}

async fn refused(app: &TestApp, query: &str) -> Vec<String> {
    let r = tokio::time::timeout(PROMPT, app.graphql(query, None))
        .await
        .expect("answered promptly");
    assert!(r["data"].is_null(), "{r}");
    error_codes(&r)
}

fn nested_argument(open: &str, close: &str, depth: usize) -> String {
    format!(
        "{{group(id:{}1{}){{unread}}}}",
        open.repeat(depth),
        close.repeat(depth)
    )
}

#[tokio::test]
async fn deeply_nested_values_are_refused_not_a_crash() {
    let app = TestApp::new().await;
    for depth in [2_000, 100_000] {
        let object = nested_argument("{a:", "}", depth);
        assert_eq!(refused(&app, &object).await, vec!["QUERY_TOO_DEEP"]);
        let list = nested_argument("[", "]", depth);
        assert_eq!(refused(&app, &list).await, vec!["QUERY_TOO_DEEP"]);
        let selections = format!("{}{}", "{a".repeat(depth), "}".repeat(depth));
        assert_eq!(refused(&app, &selections).await, vec!["QUERY_TOO_DEEP"]);
    }
    still_serving(&app).await;
}

#[tokio::test]
async fn deeply_nested_variables_are_refused_not_a_crash() {
    let app = TestApp::new().await;
    // JSON nested past serde's own limit, and just inside it.
    for depth in [100, 5_000] {
        let body = format!(
            "{{\"query\":\"query($v: String) {{ server {{ version }} }}\",\"variables\":{{\"v\":{}1{}}}}}",
            "[".repeat(depth),
            "]".repeat(depth)
        );
        let (status, _, text) = app
            .send(
                Request::post("/graphql")
                    .header("content-type", "application/json")
                    .body(Body::from(body))
                    .unwrap(),
            )
            .await;
        let r: Value = serde_json::from_str(&text).unwrap_or_else(|_| panic!("{text}"));
        let codes = error_codes(&r);
        assert!(
            codes == vec!["QUERY_TOO_DEEP"] || (status == 400 && codes == vec!["BAD_REQUEST"]),
            "{status} {r}"
        );
    }
    still_serving(&app).await;
}

#[tokio::test]
async fn doubling_fragments_are_refused_before_validation() {
    let app = TestApp::new().await;
    let mut q = String::from("query{...F24}fragment F0 on Query{server{version}}");
    for i in 1..25 {
        q.push_str(&format!(
            "fragment F{i} on Query{{...F{p} ...F{p}}}",
            p = i - 1
        ));
    }
    assert!(q.len() < 1_200, "the probe is small: {}", q.len());
    assert_eq!(refused(&app, &q).await, vec!["QUERY_TOO_LARGE"]);
    // A cycle is refused too, without following it.
    let cycle = "{...A} fragment A on Query{...B ...B} fragment B on Query{...A ...A}";
    assert_eq!(
        refused(&app, cycle).await,
        vec!["GRAPHQL_VALIDATION_FAILED"]
    );
    still_serving(&app).await;
}

#[tokio::test]
async fn oversized_documents_are_refused() {
    let app = TestApp::new().await;
    let tokens = format!("{{ {} }}", "a ".repeat(6_000));
    assert_eq!(refused(&app, &tokens).await, vec!["QUERY_TOO_LARGE"]);
    let fragments: String = (0..60)
        .map(|i| format!("fragment F{i} on Query {{ server {{ version }} }} "))
        .collect();
    assert_eq!(
        refused(&app, &format!("{{ ...F0 }} {fragments}")).await,
        vec!["QUERY_TOO_LARGE"]
    );
    let spreads = format!(
        "{{ {} }} fragment F on Query {{ server {{ version }} }}",
        "...F ".repeat(300)
    );
    assert_eq!(refused(&app, &spreads).await, vec!["QUERY_TOO_LARGE"]);
    still_serving(&app).await;
}

#[tokio::test]
async fn the_limits_leave_room_for_real_queries() {
    // The introspection query tools send is deep and fragment-heavy, yet well inside them
    // (it needs more than the default depth limit, which is the schema's own).
    let app = TestApp::with_config(test_config(&[
        ("MUSUBI_GRAPHQL_MAX_DEPTH", "20"),
        ("MUSUBI_GRAPHQL_MAX_COMPLEXITY", "100000"),
    ]))
    .await;
    let introspection = include_str!("../../data/introspection.graphql");
    let r = app.graphql(introspection, None).await;
    assert!(r["errors"].is_null(), "{r}");
    assert_eq!(r["data"]["__schema"]["queryType"]["name"], "Query");
}

#[tokio::test]
async fn a_refused_item_of_a_batch_does_not_sink_the_others() {
    let app = TestApp::new().await;
    let ok = json!({"query": "{ server { version } }"});
    let bad = json!({"query": nested_argument("[", "]", 5_000)});
    let r = app.graphql_raw(json!([ok, bad, ok]), None).await;
    let items = r.as_array().expect("a batch answer");
    assert_eq!(items.len(), 3);
    assert!(items[0]["data"]["server"]["version"].is_string(), "{r}");
    assert_eq!(error_codes(&items[1]), vec!["QUERY_TOO_DEEP"]);
    assert!(items[2]["data"]["server"]["version"].is_string(), "{r}");
}

#[tokio::test]
async fn malformed_bodies_get_the_graphql_error_shape_and_no_internals() {
    let app = TestApp::new().await;
    for body in [
        "{\"query\": \"{ server { version } }\"",
        "",
        "null",
        "42",
        "\"query\"",
        "[1, 2]",
        "{\"query\": 5}",
        "{\"variables\": {}}",
        "{\"query\": \"  \"}",
        "\u{0}",
        "{\"query\": \"{ a }\", \"variables\": [\"not an object\"]}",
    ] {
        for content_type in ["application/json", "text/plain"] {
            let (status, headers, text) = app
                .send(
                    Request::post("/graphql")
                        .header("content-type", content_type)
                        .body(Body::from(body))
                        .unwrap(),
                )
                .await;
            assert_eq!(status.as_u16(), 400, "{body:?}: {text}");
            assert!(
                headers["content-type"].to_str().unwrap().contains("json"),
                "{headers:?}"
            );
            let r: Value = serde_json::from_str(&text).unwrap_or_else(|_| panic!("{text}"));
            assert_eq!(error_codes(&r), vec!["BAD_REQUEST"], "{body:?}: {r}");
            for internal in [
                "Error(",
                "line:",
                "column",
                "InvalidRequest",
                "EOF",
                "serde",
            ] {
                assert!(
                    !text.contains(internal),
                    "{body:?} leaks {internal}: {text}"
                );
            }
        }
    }
    still_serving(&app).await;
}

#[tokio::test]
async fn an_oversized_body_is_answered_in_the_graphql_error_shape() {
    let app = TestApp::with_config(test_config(&[("MUSUBI_MAX_BODY_BYTES", "2048")])).await;
    let body =
        json!({ "query": format!("{{ server {{ version }} }} #{}", "x".repeat(4096)) }).to_string();
    let (status, _, text) = app
        .send(
            Request::post("/graphql")
                .header("content-type", "application/json")
                .body(Body::from(body))
                .unwrap(),
        )
        .await;
    assert_eq!(status.as_u16(), 413);
    let r: Value = serde_json::from_str(&text).unwrap_or_else(|_| panic!("{text}"));
    assert_eq!(error_codes(&r), vec!["PAYLOAD_TOO_LARGE"]);
}

#[tokio::test]
async fn subscriptions_are_held_to_the_same_limits() {
    let app = TestApp::new().await;
    let addr = app.serve().await;
    let mut ws = GqlWs::connect(addr, json!({})).await.expect("connected");
    let deep = format!(
        "subscription {{ events(after: {}1{}) {{ __typename }} }}",
        "[".repeat(3_000),
        "]".repeat(3_000)
    );
    ws.subscribe("deep", &deep, json!({})).await;
    let reply = ws.next_reply("deep", PROMPT).await;
    let errors = match reply {
        Some(Reply::Error(errors)) => errors,
        Some(Reply::Next(payload)) => payload["errors"].clone(),
        other => panic!("expected a refusal, got {other:?}"),
    };
    let codes: Vec<&str> = errors
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|e| e["extensions"]["code"].as_str())
        .collect();
    assert_eq!(codes, vec!["QUERY_TOO_DEEP"], "{errors}");
    // The connection is still good for a well-formed request.
    ws.subscribe("ok", "subscription { nosuchfield }", json!({}))
        .await;
    assert!(
        matches!(
            ws.next_reply("ok", PROMPT).await,
            Some(Reply::Error(_) | Reply::Next(_))
        ),
        "the socket stays open after a refusal"
    );
    ws.close().await;
    still_serving(&app).await;
}
