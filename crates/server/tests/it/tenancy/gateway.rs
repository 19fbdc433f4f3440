//! The GraphQL gateway's limits and error shape.

use axum::body::Body;
use http::Request;
use musubi_test_support::{error_codes, test_config, TestApp};
use serde_json::json;

#[tokio::test]
async fn lists_associations_without_routing() {
    let app = TestApp::with_association("alpha", "アルファ医師会").await;
    let r = app.graphql("{ associations { slug name } }", None).await;
    assert_eq!(r["data"]["associations"][0]["slug"], "alpha");
    assert_eq!(r["data"]["associations"][0]["name"], "アルファ医師会");
}

#[tokio::test]
async fn too_deep_query_is_refused_with_a_code() {
    let app = TestApp::with_config(test_config(&[("MUSUBI_GRAPHQL_MAX_DEPTH", "2")])).await;
    let r = app.graphql("{ server { version } }", None).await;
    assert!(r["errors"].is_null(), "{r}");
    let r = app
        .graphql("{ __schema { types { fields { type { name } } } } }", None)
        .await;
    assert_eq!(error_codes(&r), vec!["QUERY_TOO_DEEP"], "{r}");
}

#[tokio::test]
async fn too_complex_query_is_refused_with_a_code() {
    let app = TestApp::with_config(test_config(&[("MUSUBI_GRAPHQL_MAX_COMPLEXITY", "10")])).await;
    let aliases: String = (0..20)
        .map(|i| format!("s{i}: server {{ version }} "))
        .collect();
    let r = app.graphql(&format!("{{ {aliases} }}"), None).await;
    assert_eq!(error_codes(&r), vec!["QUERY_TOO_COMPLEX"], "{r}");
}

#[tokio::test]
async fn oversized_batch_is_refused_whole() {
    let app = TestApp::with_config(test_config(&[("MUSUBI_GRAPHQL_MAX_BATCH", "3")])).await;
    let one = json!({"query": "{ server { version } }"});
    let ok = app.graphql_raw(json!([one, one, one]), None).await;
    assert_eq!(ok.as_array().map(Vec::len), Some(3));
    let r = app.graphql_raw(json!([one, one, one, one]), None).await;
    assert_eq!(error_codes(&r), vec!["BATCH_TOO_LARGE"]);
}

#[tokio::test]
async fn oversized_body_is_refused() {
    let app = TestApp::with_config(test_config(&[("MUSUBI_MAX_BODY_BYTES", "2048")])).await;
    let big = format!("{{ server {{ version }} }} #{}", "x".repeat(4096));
    let body = json!({ "query": big }).to_string();
    let (status, _, _) = app
        .send(
            Request::post("/graphql")
                .header("content-type", "application/json")
                .header("content-length", body.len())
                .body(Body::from(body))
                .unwrap(),
        )
        .await;
    assert_eq!(status.as_u16(), 413);
}

#[tokio::test]
async fn syntax_and_unknown_field_errors_get_codes_and_no_internal_text() {
    let app = TestApp::new().await;
    let r = app.graphql("{ server { version ", None).await;
    assert_eq!(error_codes(&r), vec!["GRAPHQL_PARSE_FAILED"], "{r}");
    let r = app.graphql("{ nosuchfield }", None).await;
    assert_eq!(error_codes(&r), vec!["GRAPHQL_VALIDATION_FAILED"], "{r}");
}

#[tokio::test]
async fn production_hides_introspection_and_suggestions() {
    let dev = TestApp::new().await;
    let r = dev
        .graphql("{ __schema { queryType { name } } }", None)
        .await;
    assert_eq!(r["data"]["__schema"]["queryType"]["name"], "Query");
    let r = dev.graphql("{ associatio { slug } }", None).await;
    assert!(r.to_string().contains("Did you mean"), "{r}");

    let prod = TestApp::with_config(test_config(&[
        ("MUSUBI_ENV", "production"),
        // Production refuses to start without somewhere to send mail and a public address.
        ("MUSUBI_SMTP_URL", "smtp://127.0.0.1:2525"),
        ("MUSUBI_MAIL_FROM", "Musubi <no-reply@musubi.example>"),
        ("MUSUBI_PUBLIC_URL", "https://musubi.example"),
    ]))
    .await;
    let r = prod
        .graphql("{ __schema { queryType { name } } }", None)
        .await;
    assert!(
        r["data"].is_null() || r["data"]["__schema"].is_null(),
        "{r}"
    );
    let r = prod.graphql("{ associatio { slug } }", None).await;
    assert!(!r.to_string().contains("Did you mean"), "{r}");
}

#[tokio::test]
async fn internal_errors_reach_clients_as_a_code_and_trace_id_only() {
    let app = TestApp::with_association("alpha", "アルファ医師会").await;
    // Break the tenant's table so the resolver hits a database error.
    let tenant = app.services().resolve_tenant("alpha").await.unwrap();
    sqlx::raw_sql(&format!("DROP TABLE \"{}\".profile", tenant.schema_name()))
        .execute(&mut app.db.admin().await)
        .await
        .unwrap();
    let r = app.graphql("{ association { slug } }", Some("alpha")).await;
    assert_eq!(error_codes(&r), vec!["INTERNAL"]);
    let err = &r["errors"][0];
    assert!(err["extensions"]["traceId"]
        .as_str()
        .is_some_and(|s| s.len() >= 16));
    let text = r.to_string();
    assert!(
        !text.contains("profile") && !text.contains("relation"),
        "{text}"
    );
}

#[tokio::test]
async fn health_readiness_and_metrics_answer() {
    let app = TestApp::with_association("alpha", "アルファ医師会").await;
    let (s, _, body) = app.get("/healthz").await;
    assert_eq!((s.as_u16(), body.as_str()), (200, "ok"));
    let (s, _, body) = app.get("/readyz").await;
    assert_eq!((s.as_u16(), body.as_str()), (200, "ready"));
    let _ = app
        .graphql("query Probe { server { version } }", None)
        .await;
    let (s, _, body) = app.get("/metrics").await;
    assert_eq!(s.as_u16(), 200);
    assert!(body.contains("musubi_http_requests_total"), "{body}");
    assert!(body.contains("operation=\"Probe\""), "{body}");
    assert!(body.contains("musubi_db_pool_connections"), "{body}");
    assert!(body.contains("musubi_db_tenant_connections"), "{body}");
}

#[tokio::test]
async fn landing_page_lists_the_associations() {
    let app = TestApp::with_association("alpha", "アルファ医師会").await;
    let (s, headers, body) = app.get("/").await;
    assert_eq!(s.as_u16(), 200);
    assert!(body.contains("アルファ医師会"), "{body}");
    assert!(headers["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/html"));
}
