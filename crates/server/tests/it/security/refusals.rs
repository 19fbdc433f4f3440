//! A refusal answers exactly like a missing object — in content and in time — and is still on
//! record. The record is written off the request's path, so a refused request never waits for
//! the audit log, and a flood of refusals cannot starve an association's connections.

use musubi_test_support::demo::HOST;
use musubi_test_support::{error_codes, strip_locations, test_config, TestApp};
use serde_json::{json, Value};
use std::time::Duration;

const OWNER: &str = "kawamura@minatogawa.example";
const OUTSIDER: &str = "aoki@minatogawa.example";
const GROUP_QUERY: &str = "query($id: ID!) { group(id: $id) { group { name } } }";

async fn private_group(app: &TestApp, owner_token: &str) -> String {
    let r = app
        .gql(
            "mutation { createGroup(kind: GENERAL, name: \"在宅連携の内輪\", acceptsRequests: false) { id } }",
            json!({}),
            Some(owner_token),
            Some(HOST),
        )
        .await;
    r["data"]["createGroup"]["id"]
        .as_str()
        .unwrap_or_else(|| panic!("{r}"))
        .to_owned()
}

async fn ask(app: &TestApp, token: &str, id: &str) -> Value {
    app.gql(GROUP_QUERY, json!({ "id": id }), Some(token), Some(HOST))
        .await
}

#[tokio::test]
async fn a_refused_request_does_not_wait_for_the_audit_log() {
    let app = TestApp::demo().await;
    let owner = app.demo_token(OWNER).await;
    let outsider = app.demo_token(OUTSIDER).await;
    let group = private_group(&app, &owner).await;
    let before = app.denied_count(HOST).await;

    // Someone else holds the audit log (a long export, a purge): appends must wait.
    let mut holder = app.tenant_tx(HOST).await;
    sqlx::query("LOCK TABLE audit_log IN SHARE MODE")
        .execute(&mut *holder)
        .await
        .unwrap();

    let refused = tokio::time::timeout(Duration::from_secs(5), ask(&app, &outsider, &group))
        .await
        .expect("the refusal is answered while the audit log is busy");
    let unknown = ask(&app, &outsider, &uuid::Uuid::now_v7().to_string()).await;
    assert_eq!(error_codes(&refused), vec!["NOT_FOUND"], "{refused}");
    assert_eq!(strip_locations(refused), strip_locations(unknown));

    // Once the log is free, the refusal is on record; the unknown id is not a refusal.
    holder.commit().await.unwrap();
    assert_eq!(app.denied_count(HOST).await, before + 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flood_of_refusals_leaves_the_association_serving_others() {
    // The smallest pool an operator may choose makes starvation easiest to provoke.
    let app =
        TestApp::demo_with_config(test_config(&[("MUSUBI_DB_TENANT_CONNECTIONS", "2")])).await;
    let owner = app.demo_token(OWNER).await;
    let outsider = app.demo_token(OUTSIDER).await;
    let group = private_group(&app, &owner).await;
    let before = app.denied_count(HOST).await;

    let flood = (0..64).map(|_| ask(&app, &outsider, &group));
    let member = async {
        // The member keeps being served while the flood runs.
        let mut answers = Vec::new();
        for _ in 0..5 {
            answers.push(ask(&app, &owner, &group).await);
        }
        answers
    };
    let (refusals, served) = tokio::join!(futures_util::future::join_all(flood), member);
    for r in &refusals {
        assert_eq!(error_codes(r), vec!["NOT_FOUND"], "{r}");
    }
    for r in &served {
        assert_eq!(r["data"]["group"]["group"]["name"], "在宅連携の内輪", "{r}");
    }
    assert_eq!(
        app.denied_count(HOST).await,
        before + 64,
        "every refusal is on record"
    );
}
