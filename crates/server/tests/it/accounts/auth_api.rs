//! Signing in and out through the GraphQL API: sessions, second factor, rate limits.

use axum::body::Body;
use http::Request;
use musubi_demo::DEMO_PASSWORD;
use musubi_domain::second_factor::Enrolling;
use musubi_test_support::{error_codes, totp_code, TestApp, SIGN_IN};
use serde_json::{json, Value};

async fn gql(app: &TestApp, query: &str, vars: Value, token: Option<&str>) -> Value {
    app.gql(query, vars, token, None).await
}

#[tokio::test]
async fn demo_nurse_signs_in_reads_me_and_signs_out() {
    let app = TestApp::demo().await;
    let token = app.demo_token("aoki@minatogawa.example").await;
    let r = gql(
        &app,
        "{ me { name profession memberships { associationSlug role facilityName } } }",
        json!({}),
        Some(&token),
    )
    .await;
    assert_eq!(r["data"]["me"]["name"], "青木 さくら", "{r}");
    assert_eq!(r["data"]["me"]["profession"], "nurse");
    assert_eq!(
        r["data"]["me"]["memberships"][0]["associationSlug"],
        "minatogawa"
    );
    assert_eq!(
        r["data"]["me"]["memberships"][0]["facilityName"],
        "訪問看護ステーションみなと"
    );

    let r = gql(&app, "mutation { signOut }", json!({}), Some(&token)).await;
    assert_eq!(r["data"]["signOut"], true, "{r}");
    let r = gql(&app, "{ me { name } }", json!({}), Some(&token)).await;
    assert_eq!(error_codes(&r), vec!["UNAUTHENTICATED"]);
}

#[tokio::test]
async fn hospital_doctor_is_one_person_in_two_associations() {
    let app = TestApp::demo().await;
    let token = app.demo_token("SATO@sakuradai-hospital.example").await;
    let r = gql(
        &app,
        "{ me { doctorKind memberships { associationSlug } } }",
        json!({}),
        Some(&token),
    )
    .await;
    assert_eq!(r["data"]["me"]["doctorKind"], "hospital");
    let slugs: Vec<&str> = r["data"]["me"]["memberships"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["associationSlug"].as_str().unwrap())
        .collect();
    assert_eq!(slugs.len(), 2);
    assert!(slugs.contains(&"minatogawa") && slugs.contains(&"sakuradai"));
}

#[tokio::test]
async fn unknown_email_and_wrong_password_answer_identically() {
    let app = TestApp::demo().await;
    let wrong = app
        .sign_in("aoki@minatogawa.example", "not-the-password-1")
        .await;
    let unknown = app
        .sign_in("nobody@minatogawa.example", "not-the-password-1")
        .await;
    assert_eq!(error_codes(&wrong), vec!["INVALID_CREDENTIALS"]);
    assert_eq!(
        wrong["errors"][0]["message"],
        unknown["errors"][0]["message"]
    );
    assert_eq!(
        wrong["errors"][0]["extensions"],
        unknown["errors"][0]["extensions"]
    );
}

#[tokio::test]
async fn aliases_in_one_request_each_count_against_the_rate_limit() {
    let app = TestApp::demo().await;
    let aliases: String = (0..12)
        .map(|i| format!("a{i}: signIn(email: \"aoki@minatogawa.example\", password: \"wrong-{i}-password\") {{ token }} "))
        .collect();
    let r = gql(&app, &format!("mutation {{ {aliases} }}"), json!({}), None).await;
    let codes = error_codes(&r);
    assert_eq!(codes.len(), 12, "{r}");
    assert!(
        codes.iter().filter(|c| *c == "RATE_LIMITED").count() >= 2,
        "{codes:?}"
    );
    // Now locked out: even the right password is refused until the window passes.
    let r = app.sign_in("aoki@minatogawa.example", DEMO_PASSWORD).await;
    assert_eq!(error_codes(&r), vec!["RATE_LIMITED"]);
    assert!(
        r["errors"][0]["extensions"]["retryAfter"]
            .as_u64()
            .is_some_and(|s| s > 0),
        "{r}"
    );
}

#[tokio::test]
async fn batched_operations_each_count_against_the_rate_limit() {
    let app = TestApp::demo().await;
    let op = json!({"query": SIGN_IN, "variables": {"e": "morita@minatogawa.example", "p": "wrong-password-x"}});
    let mut limited = 0;
    for _ in 0..2 {
        let r = app.graphql_raw(json!([op, op, op, op, op, op]), None).await;
        for item in r.as_array().unwrap() {
            limited += error_codes(item)
                .iter()
                .filter(|c| *c == "RATE_LIMITED")
                .count();
        }
    }
    assert_eq!(limited, 2, "the 11th and 12th attempts are refused");
}

#[tokio::test]
async fn cookie_authenticated_requests_must_be_json() {
    let app = TestApp::demo().await;
    let token = app.demo_token("aoki@minatogawa.example").await;
    let (_, _, text) = app
        .send(
            Request::post("/graphql")
                .header("content-type", "text/plain")
                .header("cookie", format!("musubi_session={token}"))
                .body(Body::from(json!({"query": "{ me { name } }"}).to_string()))
                .unwrap(),
        )
        .await;
    assert!(!text.contains("青木"), "{text}");
    let (_, _, text) = app
        .send(
            Request::post("/graphql")
                .header("content-type", "application/json")
                .header("cookie", format!("musubi_session={token}"))
                .body(Body::from(json!({"query": "{ me { name } }"}).to_string()))
                .unwrap(),
        )
        .await;
    assert!(text.contains("青木"), "{text}");
}

#[tokio::test]
async fn sign_out_everywhere_ends_every_session() {
    let app = TestApp::demo().await;
    let t1 = app.demo_token("aoki@minatogawa.example").await;
    let t2 = app.demo_token("aoki@minatogawa.example").await;
    let r = gql(
        &app,
        "{ me { sessions { id current } } }",
        json!({}),
        Some(&t1),
    )
    .await;
    assert_eq!(r["data"]["me"]["sessions"].as_array().unwrap().len(), 2);
    let r = gql(&app, "mutation { signOutEverywhere }", json!({}), Some(&t2)).await;
    assert_eq!(r["data"]["signOutEverywhere"], 2, "{r}");
    for t in [&t1, &t2] {
        let r = gql(&app, "{ me { name } }", json!({}), Some(t)).await;
        assert_eq!(error_codes(&r), vec!["UNAUTHENTICATED"]);
    }
}

#[tokio::test]
async fn another_persons_session_cannot_be_revoked() {
    let app = TestApp::demo().await;
    let mine = app.demo_token("aoki@minatogawa.example").await;
    let theirs = app.demo_token("morita@minatogawa.example").await;
    let r = gql(&app, "{ me { sessions { id } } }", json!({}), Some(&theirs)).await;
    let their_id = r["data"]["me"]["sessions"][0]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let r = gql(
        &app,
        "mutation($id: ID!) { revokeSession(id: $id) }",
        json!({"id": their_id}),
        Some(&mine),
    )
    .await;
    assert_eq!(error_codes(&r), vec!["NOT_FOUND"]);
    let r = gql(&app, "{ me { name } }", json!({}), Some(&theirs)).await;
    assert_eq!(r["data"]["me"]["name"], "森田 由美");
}

async fn totp_secret_of(app: &TestApp, email: &str) -> Vec<u8> {
    sqlx::query_scalar("SELECT totp_secret FROM core.users WHERE email = $1")
        .bind(email)
        .fetch_one(app.db.db.pool())
        .await
        .unwrap()
}

#[tokio::test]
async fn second_factor_is_required_once_enrolled_and_codes_are_single_use() {
    let app = TestApp::demo().await;
    let email = "hayashi@minatogawa.example";
    let token = app.demo_token(email).await;
    let services = app.services();
    let viewer = services.authenticate(&token).await.unwrap().unwrap();
    let enrolment = services
        .start_totp_enrolment(Enrolling::Viewer(&viewer))
        .await
        .unwrap();
    assert!(enrolment.uri.starts_with("otpauth://totp/"));
    assert!(enrolment.qr_svg.contains("<svg"));
    let secret = totp_secret_of(&app, email).await;
    // Wrong code first: refused, nothing enabled.
    let meta = musubi_domain::audit::RequestMeta::default();
    assert!(services
        .confirm_totp_enrolment(Enrolling::Viewer(&viewer), "000000", &meta)
        .await
        .is_err());
    let enrolled = services
        .confirm_totp_enrolment(Enrolling::Viewer(&viewer), &totp_code(&secret, -1), &meta)
        .await
        .unwrap();
    assert_eq!(enrolled.recovery_codes.len(), 10);

    // Signing in now stops at the second factor; the half token opens nothing else.
    let r = app.sign_in(email, DEMO_PASSWORD).await;
    assert_eq!(r["data"]["signIn"]["next"], "SECOND_FACTOR", "{r}");
    let half = r["data"]["signIn"]["token"].as_str().unwrap().to_owned();
    let r = gql(&app, "{ me { name } }", json!({}), Some(&half)).await;
    assert_eq!(error_codes(&r), vec!["UNAUTHENTICATED"]);
    let complete = "mutation($c: String!) { completeSecondFactor(code: $c) { token next } }";
    let r = gql(&app, complete, json!({"c": "123456"}), Some(&half)).await;
    assert_eq!(error_codes(&r), vec!["INVALID_SECOND_FACTOR"], "{r}");
    let code = totp_code(&secret, 0);
    let r = gql(&app, complete, json!({"c": code}), Some(&half)).await;
    assert_eq!(r["data"]["completeSecondFactor"]["next"], "DONE", "{r}");
    let full = r["data"]["completeSecondFactor"]["token"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_ne!(full, half, "the token changes when the session is upgraded");
    let r = gql(
        &app,
        "{ me { name secondFactorEnabled } }",
        json!({}),
        Some(&full),
    )
    .await;
    assert_eq!(r["data"]["me"]["secondFactorEnabled"], true, "{r}");

    // The same code cannot be used twice; a recovery code works once.
    let r = app.sign_in(email, DEMO_PASSWORD).await;
    let half = r["data"]["signIn"]["token"].as_str().unwrap().to_owned();
    let r = gql(&app, complete, json!({"c": code}), Some(&half)).await;
    assert_eq!(
        error_codes(&r),
        vec!["INVALID_SECOND_FACTOR"],
        "replayed code: {r}"
    );
    let recovery = enrolled.recovery_codes[3].clone();
    let r = gql(&app, complete, json!({"c": recovery}), Some(&half)).await;
    assert_eq!(r["data"]["completeSecondFactor"]["next"], "DONE", "{r}");
    let r = app.sign_in(email, DEMO_PASSWORD).await;
    let half = r["data"]["signIn"]["token"].as_str().unwrap().to_owned();
    let r = gql(&app, complete, json!({"c": recovery}), Some(&half)).await;
    assert_eq!(
        error_codes(&r),
        vec!["INVALID_SECOND_FACTOR"],
        "reused recovery code: {r}"
    );
}

#[tokio::test]
async fn sign_ins_and_failures_are_audited_in_the_persons_associations() {
    let app = TestApp::demo().await;
    let token = app.demo_token("sato@sakuradai-hospital.example").await;
    let _ = app
        .sign_in("sato@sakuradai-hospital.example", "wrong-password-z")
        .await;
    let _ = gql(&app, "mutation { signOut }", json!({}), Some(&token)).await;
    for slug in ["minatogawa", "sakuradai"] {
        let mut tx = app.tenant_tx(slug).await;
        // (The demo data's own records, groups and topics, come before.)
        let actions: Vec<String> = sqlx::query_scalar(
            "SELECT action FROM audit_log WHERE action LIKE 'auth.%' ORDER BY seq",
        )
        .fetch_all(&mut *tx)
        .await
        .unwrap();
        assert_eq!(
            actions,
            vec!["auth.sign_in", "auth.sign_in_failed", "auth.sign_out"],
            "{slug}"
        );
    }
}
