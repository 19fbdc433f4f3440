//! Two associations' data lives in separate schemas, and a request routed to one never reads
//! the other.

use musubi_db::plans::PLAN_SLOTS;
use musubi_db::Db;
use musubi_domain::associations::CreateAssociation;
use musubi_test_support::{association, error_codes, TestApp, TestDb};
use std::collections::HashSet;
use std::time::Duration;

fn assoc(slug: &str, name: &str, description: &str) -> CreateAssociation {
    CreateAssociation {
        area: format!("{name}の区域"),
        description: description.into(),
        ..association(slug, name)
    }
}

#[tokio::test]
async fn each_association_gets_its_own_schema_holding_its_own_data() {
    let t = TestDb::new().await;
    let s = t.operator().await;
    let a = s
        .create_association(&assoc("alpha", "アルファ医師会", "A の秘密"))
        .await
        .unwrap();
    let b = s
        .create_association(&assoc("beta", "ベータ医師会", "B の秘密"))
        .await
        .unwrap();
    assert_ne!(a.schema_name(), b.schema_name());

    let schemas: Vec<String> = sqlx::query_scalar(
        "SELECT nspname::text FROM pg_namespace WHERE nspname LIKE 'assoc\\_%' ORDER BY 1",
    )
    .fetch_all(t.db.pool())
    .await
    .unwrap();
    let mut expected = vec![a.schema_name().to_owned(), b.schema_name().to_owned()];
    expected.sort();
    assert_eq!(schemas, expected);

    // Read each schema directly (qualified): the rows really are apart.
    for (tenant, secret) in [(&a, "A の秘密"), (&b, "B の秘密")] {
        let d: String = sqlx::query_scalar(&format!(
            "SELECT description FROM \"{}\".profile",
            tenant.schema_name()
        ))
        .fetch_one(&mut t.admin().await)
        .await
        .unwrap();
        assert_eq!(d, secret);
    }
}

#[tokio::test]
async fn tenant_transaction_sees_only_its_own_schema() {
    let t = TestDb::new().await;
    let s = t.operator().await;
    let a = s
        .create_association(&assoc("alpha", "アルファ医師会", "A の秘密"))
        .await
        .unwrap();
    let b = s
        .create_association(&assoc("beta", "ベータ医師会", "B の秘密"))
        .await
        .unwrap();

    let mut tx = t.db.tenant_tx(&a).await.unwrap();
    let d: String = sqlx::query_scalar("SELECT description FROM profile")
        .fetch_one(&mut *tx)
        .await
        .unwrap();
    assert_eq!(d, "A の秘密");
    let path: String = sqlx::query_scalar("SELECT current_setting('search_path')")
        .fetch_one(&mut *tx)
        .await
        .unwrap();
    assert!(path.contains(a.schema_name()) && !path.contains(b.schema_name()));
    tx.commit().await.unwrap();

    // After the transaction the pooled connection carries no tenant: unqualified names fail.
    let mut conn = t.db.pool().acquire().await.unwrap();
    let err = sqlx::query("SELECT description FROM profile")
        .execute(&mut *conn)
        .await
        .unwrap_err();
    assert!(err.to_string().contains("does not exist"), "{err}");
}

#[tokio::test]
async fn a_pooled_connection_never_carries_a_tenant_across_requests() {
    let t = TestDb::new().await;
    let s = t.operator().await;
    let a = s
        .create_association(&assoc("alpha", "アルファ医師会", "A の秘密"))
        .await
        .unwrap();
    let b = s
        .create_association(&assoc("beta", "ベータ医師会", "B の秘密"))
        .await
        .unwrap();
    // Many alternating reads on a small pool: every one sees exactly its own tenant.
    for i in 0..40 {
        let (tenant, secret) = if i % 2 == 0 {
            (&a, "A の秘密")
        } else {
            (&b, "B の秘密")
        };
        let card = s.association_card(tenant).await.unwrap();
        assert_eq!(card.description, secret);
    }
}

/// Statements that are costly to plan carry their association's plan slot
/// (`musubi_db::plans`), so that a tenant connection keeps one prepared plan per association.
/// Here the only tenant connection moves to another association on every read, and two of them
/// share a slot: each read still answers from its own association's schema, and the connection
/// holds one prepared statement per slot.
#[tokio::test]
async fn one_connection_moving_between_associations_reads_each_ones_own_rows_whatever_their_slots()
{
    let t = TestDb::new().await;
    let s = t.operator().await;
    let n = PLAN_SLOTS + 1;
    for i in 0..n {
        let (slug, name) = (format!("plan{i:02}"), format!("プラン{i}医師会"));
        s.create_association(&assoc(&slug, &name, &format!("秘密{i}")))
            .await
            .unwrap();
    }
    // One shared connection and one for the associations.
    let db = Db::connect(t.options.clone(), 2, Duration::from_secs(30))
        .await
        .unwrap();
    let mut tenants = Vec::new();
    for i in 0..n {
        tenants.push(db.resolve_tenant(&format!("plan{i:02}")).await.unwrap());
    }
    // Slots follow the order of creation: the first PLAN_SLOTS apart, the next one shares.
    let slots: HashSet<_> = tenants[..PLAN_SLOTS]
        .iter()
        .map(|t| t.plan_slot())
        .collect();
    assert_eq!(slots.len(), PLAN_SLOTS);
    assert_eq!(tenants[PLAN_SLOTS].plan_slot(), tenants[0].plan_slot());

    let sql = "SELECT description FROM profile";
    let order = (0..n)
        .chain([0, PLAN_SLOTS, 0, PLAN_SLOTS])
        .chain((0..n).rev());
    for i in order {
        let tenant = &tenants[i];
        let mut conn = db.tenant_read(tenant).await.unwrap();
        let d: String = sqlx::query_scalar(&tenant.plan_slot().sql(sql))
            .fetch_one(&mut *conn)
            .await
            .unwrap();
        assert_eq!(d, format!("秘密{i}"), "read for {}", tenant.slug);
        conn.done();
    }
    let mut conn = db.tenant_read(&tenants[0]).await.unwrap();
    let prepared: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM pg_prepared_statements \
         WHERE statement LIKE '/* plan % */ SELECT description FROM profile'",
    )
    .fetch_one(&mut *conn)
    .await
    .unwrap();
    conn.done();
    assert_eq!(
        prepared, PLAN_SLOTS as i64,
        "one prepared statement per slot"
    );
    let stats = db.tenant_connections();
    assert_eq!(stats.open, 1);
    assert!(stats.rekeys >= n as u64, "{stats:?}");
    db.close().await;
}

#[tokio::test]
async fn graphql_request_routed_to_one_association_reads_only_that_association() {
    let app = TestApp::new().await;
    let s = app.operator();
    s.create_association(&assoc("alpha", "アルファ医師会", "A の秘密"))
        .await
        .unwrap();
    s.create_association(&assoc("beta", "ベータ医師会", "B の秘密"))
        .await
        .unwrap();

    let q = "{ association { slug name description } }";
    let ra = app.graphql(q, Some("alpha")).await;
    assert_eq!(ra["data"]["association"]["slug"], "alpha");
    assert_eq!(ra["data"]["association"]["description"], "A の秘密");
    assert!(!ra.to_string().contains("B の秘密"));

    let rb = app.graphql(q, Some("beta")).await;
    assert_eq!(rb["data"]["association"]["description"], "B の秘密");
    assert!(!rb.to_string().contains("A の秘密"));
}

#[tokio::test]
async fn unknown_association_fails_closed_before_any_resolver_runs() {
    let app = TestApp::new().await;
    app.operator()
        .create_association(&assoc("alpha", "アルファ医師会", "A の秘密"))
        .await
        .unwrap();
    for bad in [
        "gamma",
        "ALPHA",
        "alpha; drop schema core",
        "",
        "assoc_0",
        "../alpha",
    ] {
        // Even a field that needs no tenant is refused: the whole request fails closed.
        let r = app
            .graphql("{ server { version } association { slug } }", Some(bad))
            .await;
        assert_eq!(error_codes(&r), vec!["ASSOCIATION_NOT_FOUND"], "{bad}: {r}");
        assert!(r["data"].is_null(), "{bad}: {r}");
        assert!(!r.to_string().contains("A の秘密"));
    }
}

#[tokio::test]
async fn tenant_field_without_routing_asks_for_an_association() {
    let app = TestApp::new().await;
    let r = app.graphql("{ association { slug } }", None).await;
    assert_eq!(error_codes(&r), vec!["ASSOCIATION_REQUIRED"]);
}

#[tokio::test]
async fn association_behind_on_migrations_is_not_served_and_says_why() {
    let app = TestApp::new().await;
    let s = app.operator();
    let a = s
        .create_association(&assoc("alpha", "アルファ医師会", "A"))
        .await
        .unwrap();
    // Simulate a schema left behind by a failed upgrade.
    sqlx::raw_sql(&format!(
        "DROP SCHEMA \"{0}\" CASCADE; CREATE SCHEMA \"{0}\"; \
         UPDATE core.associations SET schema_version = 0 WHERE schema_name = '{0}'",
        a.schema_name()
    ))
    .execute(&mut app.db.admin().await)
    .await
    .unwrap();
    // The registry caches versions briefly; a fresh handle sees the change at once.
    let fresh = musubi_db::Db::connect(
        app.db.options.clone(),
        2,
        std::time::Duration::from_secs(10),
    )
    .await
    .unwrap();
    let err = fresh.resolve_tenant("alpha").await.unwrap_err();
    let text = err.to_string();
    assert!(
        text.contains("musubi migrate") && text.contains("alpha"),
        "{text}"
    );
    let services = musubi::services(&musubi_test_support::test_config(&[]), fresh.clone())
        .await
        .unwrap();
    let e = services.resolve_tenant("alpha").await.unwrap_err();
    assert_eq!(e.code.as_str(), "ASSOCIATION_UNAVAILABLE");
    // Readiness reports it too, and `migrate` repairs it.
    assert!(fresh.readiness().await.unwrap_err().contains("alpha"));
    let report = fresh.migrate().await.unwrap();
    assert_eq!(report.tenants_applied.len(), 1);
    assert!(fresh.resolve_tenant("alpha").await.is_ok());
    assert!(fresh.readiness().await.is_ok());
}
