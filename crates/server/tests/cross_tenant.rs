//! Cross-tenant and console authorization: a member of association A asking for anything of
//! association B, or a non-administrator asking for a console, gets exactly the answer of a
//! missing object, and the attempt is audited.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code: fail loudly

use musubi_domain::demo::DEMO_PASSWORD;
use musubi_test_support::{error_codes, strip_locations, TestApp};
use serde_json::{json, Value};

async fn gql(app: &TestApp, query: &str, vars: Value, token: &str, association: &str) -> Value {
    app.gql(query, vars, Some(token), Some(association)).await
}

async fn token_of(app: &TestApp, email: &str) -> String {
    app.demo_token(email).await
}

async fn user_id(app: &TestApp, email: &str) -> String {
    app.user_id(email).await.to_string()
}

async fn denied_count(app: &TestApp, slug: &str) -> i64 {
    let tenant = app.services().resolve_tenant(slug).await.unwrap();
    let mut tx = app.db.db.tenant_tx(&tenant).await.unwrap();
    sqlx::query_scalar("SELECT count(*) FROM audit_log WHERE action = 'access.denied'")
        .fetch_one(&mut *tx)
        .await
        .unwrap()
}

/// Every console operation, with the variables it needs for a target person.
fn console_operations(target: &str) -> Vec<(&'static str, Value)> {
    vec![
        ("{ members { userId name } }", json!({})),
        ("{ associationSettings { requireSecondFactor } }", json!({})),
        ("{ auditLog { records { seq action } } }", json!({})),
        ("mutation($u: ID!) { deactivateMember(userId: $u) }", json!({"u": target})),
        ("mutation($u: ID!) { reactivateMember(userId: $u) }", json!({"u": target})),
        ("mutation($u: ID!) { changeMemberRole(userId: $u, role: ADMIN) }", json!({"u": target})),
        ("mutation($u: ID!) { signOutMember(userId: $u) }", json!({"u": target})),
        ("mutation($u: ID!) { resetMemberSecondFactor(userId: $u) }", json!({"u": target})),
        (
            "mutation { updateAssociationSettings(input: {requireSecondFactor: true, sessionIdleMinutes: 30, sessionAbsoluteHours: 8, auditRetentionYears: 5}) { requireSecondFactor } }",
            json!({}),
        ),
    ]
}

#[tokio::test]
async fn admin_of_one_association_gets_not_found_for_everything_of_another() {
    let app = TestApp::demo().await;
    let admin_a = token_of(&app, "admin@minatogawa.example").await;
    let member_b = user_id(&app, "takahashi@sakuradai.example").await;
    let before = denied_count(&app, "sakuradai").await;
    let ops = console_operations(&member_b);
    for (query, vars) in &ops {
        let r = gql(&app, query, vars.clone(), &admin_a, "sakuradai").await;
        assert_eq!(error_codes(&r), vec!["NOT_FOUND"], "{query}: {r}");
        assert!(r["data"].is_null(), "{query}: {r}");
    }
    assert_eq!(
        denied_count(&app, "sakuradai").await - before,
        ops.len() as i64
    );
    // Nothing changed in B.
    let admin_b = token_of(&app, "admin@sakuradai.example").await;
    let r = gql(
        &app,
        "{ associationSettings { requireSecondFactor } members { userId status role } }",
        json!({}),
        &admin_b,
        "sakuradai",
    )
    .await;
    assert_eq!(
        r["data"]["associationSettings"]["requireSecondFactor"], false,
        "{r}"
    );
    assert!(r["data"]["members"]
        .as_array()
        .unwrap()
        .iter()
        .all(|m| m["status"] == "active"));
}

#[tokio::test]
async fn a_person_of_another_association_is_a_missing_object_even_to_an_admin() {
    let app = TestApp::demo().await;
    let admin_a = token_of(&app, "admin@minatogawa.example").await;
    let member_b = user_id(&app, "takahashi@sakuradai.example").await;
    let nobody = uuid::Uuid::new_v4().to_string();
    for (query, _) in console_operations("x")
        .into_iter()
        .filter(|(q, _)| q.contains("$u"))
    {
        let other = gql(&app, query, json!({"u": member_b}), &admin_a, "minatogawa").await;
        let missing = gql(&app, query, json!({"u": nobody}), &admin_a, "minatogawa").await;
        let garbage = gql(
            &app,
            query,
            json!({"u": "not-a-uuid"}),
            &admin_a,
            "minatogawa",
        )
        .await;
        assert_eq!(error_codes(&other), vec!["NOT_FOUND"], "{query}: {other}");
        assert_eq!(
            strip_locations(other.clone()),
            strip_locations(missing),
            "{query}"
        );
        assert_eq!(strip_locations(other), strip_locations(garbage), "{query}");
    }
}

#[tokio::test]
async fn a_member_asking_for_the_console_gets_not_found_and_is_audited() {
    let app = TestApp::demo().await;
    let nurse = token_of(&app, "aoki@minatogawa.example").await;
    let colleague = user_id(&app, "morita@minatogawa.example").await;
    let before = denied_count(&app, "minatogawa").await;
    let ops = console_operations(&colleague);
    for (query, vars) in &ops {
        let r = gql(&app, query, vars.clone(), &nurse, "minatogawa").await;
        assert_eq!(error_codes(&r), vec!["NOT_FOUND"], "{query}: {r}");
    }
    assert_eq!(
        denied_count(&app, "minatogawa").await - before,
        ops.len() as i64
    );
    // A member may still see the facilities of their own association, but not of another.
    let r = gql(
        &app,
        "{ facilities { name } }",
        json!({}),
        &nurse,
        "minatogawa",
    )
    .await;
    assert!(
        r["data"]["facilities"].as_array().unwrap().len() >= 4,
        "{r}"
    );
    let r = gql(
        &app,
        "{ facilities { name } }",
        json!({}),
        &nurse,
        "sakuradai",
    )
    .await;
    assert_eq!(error_codes(&r), vec!["NOT_FOUND"]);
}

#[tokio::test]
async fn the_hospital_doctor_in_two_associations_is_an_admin_in_neither() {
    let app = TestApp::demo().await;
    let doctor = token_of(&app, "sato@sakuradai-hospital.example").await;
    for slug in ["minatogawa", "sakuradai"] {
        let r = gql(&app, "{ members { name } }", json!({}), &doctor, slug).await;
        assert_eq!(error_codes(&r), vec!["NOT_FOUND"], "{slug}");
        let r = gql(&app, "{ facilities { name } }", json!({}), &doctor, slug).await;
        assert!(r["errors"].is_null(), "{slug}: {r}");
    }
}

#[tokio::test]
async fn deactivating_a_member_stops_their_open_session_at_once() {
    let app = TestApp::demo().await;
    let admin = token_of(&app, "admin@minatogawa.example").await;
    let nurse = token_of(&app, "aoki@minatogawa.example").await;
    let nurse_id = user_id(&app, "aoki@minatogawa.example").await;
    let r = gql(&app, "{ me { name } }", json!({}), &nurse, "minatogawa").await;
    assert_eq!(r["data"]["me"]["name"], "青木 さくら");
    let r = gql(
        &app,
        "mutation($u: ID!) { deactivateMember(userId: $u) }",
        json!({"u": nurse_id}),
        &admin,
        "minatogawa",
    )
    .await;
    assert_eq!(r["data"]["deactivateMember"], true, "{r}");
    let r = gql(&app, "{ me { name } }", json!({}), &nurse, "minatogawa").await;
    assert_eq!(error_codes(&r), vec!["UNAUTHENTICATED"], "{r}");
    // Signing in again gives a session without that association.
    let again = token_of(&app, "aoki@minatogawa.example").await;
    let r = gql(
        &app,
        "{ me { memberships { associationSlug } } }",
        json!({}),
        &again,
        "minatogawa",
    )
    .await;
    assert_eq!(r["data"]["me"]["memberships"], json!([]), "{r}");
    let r = gql(
        &app,
        "{ facilities { name } }",
        json!({}),
        &again,
        "minatogawa",
    )
    .await;
    // みなと川 was her only association: nothing but her account is open to her now.
    assert_eq!(error_codes(&r), vec!["NO_ACTIVE_MEMBERSHIP"]);
}

#[tokio::test]
async fn the_last_administrator_cannot_be_removed() {
    let app = TestApp::demo().await;
    let admin = token_of(&app, "admin@minatogawa.example").await;
    let admin_id = user_id(&app, "admin@minatogawa.example").await;
    let r = gql(
        &app,
        "mutation($u: ID!) { changeMemberRole(userId: $u, role: MEMBER) }",
        json!({"u": admin_id}),
        &admin,
        "minatogawa",
    )
    .await;
    assert_eq!(error_codes(&r), vec!["CONFLICT"], "{r}");
}

#[tokio::test]
async fn settings_are_validated_and_audited() {
    let app = TestApp::demo().await;
    let admin = token_of(&app, "admin@minatogawa.example").await;
    let update = "mutation($i: AssociationSettingsInput!) { updateAssociationSettings(input: $i) { requireSecondFactor sessionIdleMinutes } }";
    let bad = json!({"i": {"requireSecondFactor": true, "sessionIdleMinutes": 2, "sessionAbsoluteHours": 8, "auditRetentionYears": 5}});
    let r = gql(&app, update, bad, &admin, "minatogawa").await;
    assert_eq!(error_codes(&r), vec!["INVALID_INPUT"]);
    assert_eq!(r["errors"][0]["extensions"]["field"], "sessionIdleMinutes");
    let good = json!({"i": {"requireSecondFactor": true, "sessionIdleMinutes": 30, "sessionAbsoluteHours": 8, "auditRetentionYears": 5}});
    let r = gql(&app, update, good, &admin, "minatogawa").await;
    assert_eq!(
        r["data"]["updateAssociationSettings"]["requireSecondFactor"], true,
        "{r}"
    );

    // Members of that association are now made to enrol a second factor at sign-in.
    let r = app
        .graphql_raw(
            json!({"query": "mutation($e: String!, $p: String!) { signIn(email: $e, password: $p) { next } }",
                   "variables": {"e": "ishii@minatogawa.example", "p": DEMO_PASSWORD}}),
            None,
        )
        .await;
    assert_eq!(r["data"]["signIn"]["next"], "ENROL_SECOND_FACTOR", "{r}");
}

#[tokio::test]
async fn administrators_read_their_own_audit_log() {
    let app = TestApp::demo().await;
    let admin = token_of(&app, "admin@minatogawa.example").await;
    let _ = token_of(&app, "aoki@minatogawa.example").await;
    let q = "query($f: AuditFilterInput) { auditLog(filter: $f, limit: 50) { records { seq actorLabel action } nextBefore } }";
    let r = gql(
        &app,
        q,
        json!({"f": {"action": "auth"}}),
        &admin,
        "minatogawa",
    )
    .await;
    let records = r["data"]["auditLog"]["records"].as_array().unwrap();
    let labels: Vec<&str> = records
        .iter()
        .map(|x| x["actorLabel"].as_str().unwrap())
        .collect();
    assert!(
        labels.contains(&"青木 さくら") && labels.contains(&"港 事務子"),
        "{r}"
    );
    assert!(records
        .iter()
        .all(|x| x["action"].as_str().unwrap().starts_with("auth.")));
    // Newest first.
    let seqs: Vec<i64> = records.iter().map(|x| x["seq"].as_i64().unwrap()).collect();
    assert!(seqs.windows(2).all(|w| w[0] > w[1]), "{seqs:?}");
    let r = gql(
        &app,
        "{ auditLog(limit: 500) { nextBefore } }",
        json!({}),
        &admin,
        "minatogawa",
    )
    .await;
    assert!(r["errors"].is_array(), "limit is capped: {r}");
}

#[tokio::test]
async fn deactivation_and_reactivation_are_audited_under_their_own_codes() {
    let app = TestApp::demo().await;
    let admin = token_of(&app, "admin@minatogawa.example").await;
    let nurse_id = app.user_id("aoki@minatogawa.example").await;
    for op in ["deactivateMember", "reactivateMember"] {
        let r = gql(
            &app,
            &format!("mutation($u: ID!) {{ {op}(userId: $u) }}"),
            json!({"u": nurse_id}),
            &admin,
            "minatogawa",
        )
        .await;
        assert_eq!(r["data"][op], true, "{r}");
    }
    let q = "{ auditLog(filter: {action: \"member\"}) { records { action objectId } } }";
    let r = gql(&app, q, json!({}), &admin, "minatogawa").await;
    let actions: Vec<&str> = r["data"]["auditLog"]["records"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x["action"].as_str().unwrap())
        .collect();
    assert_eq!(
        actions,
        vec!["member.reactivate", "member.deactivate"],
        "{r}"
    );
}
