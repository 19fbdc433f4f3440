//! Two associations' data lives in separate schemas, and a request routed to one never reads
//! the other.

use musubi_domain::associations::CreateAssociation;
use musubi_test_support::{association, error_codes, TestApp, TestDb};

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
