//! The previous release's server against the new schema (docs/upgrades.md). During a rolling
//! upgrade both releases serve one database, and a rollback runs the previous one on the
//! newer schema. `cargo xtask test` builds the previous release and names it in
//! `MUSUBI_PREVIOUS_BIN`.

use super::faults::{
    assert_acked_present, assert_audit_verifies_with, assert_consistent, fixture, graphql, readyz,
    tenant_conn, Load, Server,
};
use musubi_test_support::TestDb;
use serde_json::{json, Value};
use sqlx::Connection;
use std::time::Instant;

/// The previous release's binary and the tenant/core migration counts it knows; `None` only
/// when the harness said why it could not build one (a clone without history).
fn previous() -> Option<(String, i64, i64)> {
    if let Ok(why) = std::env::var("MUSUBI_PREVIOUS_UNAVAILABLE") {
        println!("not run: no previous release to build ({why})");
        return None;
    }
    let bin = std::env::var("MUSUBI_PREVIOUS_BIN").expect(
        "MUSUBI_PREVIOUS_BIN names the previous release's `musubi`; `cargo xtask test` builds it",
    );
    let versions = std::env::var("MUSUBI_PREVIOUS_VERSIONS").unwrap_or_default();
    let (tenant, core) = versions
        .split_once('/')
        .and_then(|(t, c)| Some((t.parse().ok()?, c.parse().ok()?)))
        .expect("MUSUBI_PREVIOUS_VERSIONS is `tenant/core`");
    Some((bin, tenant, core))
}

async fn gql(addr: &str, token: &str, query: &str, variables: Value) -> Value {
    graphql(addr, Some(token), query, variables).await
}

async fn unread_total(addr: &str, token: &str) -> i64 {
    gql(addr, token, "{ unreadCounts { total } }", json!({})).await["unreadCounts"]["total"]
        .as_i64()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_previous_release_serves_the_new_schema_beside_the_new_one() {
    let Some((previous_bin, previous_tenant, previous_core)) = previous() else {
        return;
    };
    let started = Instant::now();
    // The schema of this tree, with demo data written by this tree's code.
    let db = TestDb::new().await;
    let (nurse, doctor, topic) = fixture(&db.operator().await).await;
    let url = db.url();
    let (old_data, new_data) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let old = Server::start_bin(&previous_bin, &url, old_data.path(), &[]);
    let new = Server::start(&url, new_data.path(), &[]);

    // It really is the previous release: it knows fewer migrations than the schema holds
    // (or as many tenant ones, when the newest change was to the core schema).
    let info = "{ server { tenantSchemaVersion } }";
    let old_version = gql(&old.addr, &nurse, info, json!({})).await["server"]
        ["tenantSchemaVersion"]
        .as_i64()
        .unwrap();
    let new_version = gql(&new.addr, &nurse, info, json!({})).await["server"]
        ["tenantSchemaVersion"]
        .as_i64()
        .unwrap();
    assert_eq!(
        old_version, previous_tenant,
        "the old server's tenant migrations"
    );
    assert_eq!(new_version, i64::from(musubi_db::TENANT_VERSION));
    assert!(
        previous_tenant < i64::from(musubi_db::TENANT_VERSION)
            || previous_core < i64::from(musubi_db::CORE_VERSION),
        "the previous release knows every migration of this one"
    );
    for server in [&old, &new] {
        let (status, body) = readyz(&server.addr).await.unwrap();
        assert_eq!(status, 200, "/readyz of {}: {body}", server.addr);
    }

    // Both write to one topic at once, as during the upgrade.
    let old_load = Load::start(&old.addr, &nurse, &topic, 2);
    let new_load = Load::start(&new.addr, &nurse, &topic, 2);
    old_load
        .wait_acked(20, "writes through the previous release")
        .await;
    new_load
        .wait_acked(20, "writes through the new release")
        .await;
    let (old_done, new_done) = (old_load.finish().await, new_load.finish().await);
    assert!(
        old_done.refused.is_empty() && new_done.refused.is_empty(),
        "refused: previous {:?}, new {:?}",
        old_done.refused,
        new_done.refused
    );
    let acked: Vec<String> = old_done
        .acked
        .iter()
        .chain(&new_done.acked)
        .cloned()
        .collect();
    let mut conn = tenant_conn(db.admin().await).await;
    let found = assert_acked_present(&mut conn, &topic, &acked).await;
    assert_consistent(&mut conn, &topic).await;
    let _ = conn.close().await;

    // The doctor's counts agree on both; he reads through the previous release, and the new
    // one sees his footprints.
    let before_old = unread_total(&old.addr, &doctor).await;
    let before_new = unread_total(&new.addr, &doctor).await;
    assert_eq!(before_old, before_new);
    assert!(
        before_old >= found,
        "{before_old} unread of {found} comments"
    );
    let page = gql(
        &old.addr,
        &doctor,
        "query($id: ID!) { topic(id: $id) { comments { id body } } }",
        json!({ "id": topic }),
    )
    .await;
    let shown = page["topic"]["comments"].as_array().unwrap();
    assert_eq!(shown.len() as i64, found.min(500), "the topic's comments");
    let after_new = unread_total(&new.addr, &doctor).await;
    assert_eq!(
        after_new,
        before_new - found,
        "read through the previous release"
    );

    drop(old);
    drop(new);
    let verified_new = assert_audit_verifies_with(crate::MUSUBI_BIN, &url);
    let verified_old = assert_audit_verifies_with(&previous_bin, &url);
    println!(
        "previous release (tenant {previous_tenant}, core {previous_core} migrations) beside \
         this one (tenant {}, core {}): acknowledged {} + {}, found {found} comments (+ body); \
         took {:?}\nthis release: {verified_new}previous release: {verified_old}",
        musubi_db::TENANT_VERSION,
        musubi_db::CORE_VERSION,
        old_done.acked.len(),
        new_done.acked.len(),
        started.elapsed()
    );
}
