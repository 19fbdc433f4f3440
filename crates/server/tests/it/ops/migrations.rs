//! Migrations: idempotent, serialized across replicas, and association creation is atomic.

use musubi_domain::associations::CreateAssociation;
use musubi_test_support::{association, TestDb};

fn assoc(slug: &str) -> CreateAssociation {
    association(slug, &format!("{slug} 医師会"))
}

#[tokio::test]
async fn second_migrate_is_a_noop() {
    let t = TestDb::new().await;
    t.operator()
        .await
        .create_association(&assoc("alpha"))
        .await
        .unwrap();
    let report = t.db.migrate().await.unwrap();
    assert!(report.is_noop(), "{report:?}");
    assert_eq!(report.tenants_total, 1);
}

#[tokio::test]
async fn replicas_migrating_together_do_not_race() {
    let t = TestDb::new().await;
    let s = t.operator().await;
    for slug in ["alpha", "beta", "gamma"] {
        s.create_association(&assoc(slug)).await.unwrap();
    }
    // Empty every tenant schema, then let four "replicas" migrate at once.
    for tenant in t.db.tenants().await.unwrap() {
        sqlx::raw_sql(&format!(
            "DROP SCHEMA \"{0}\" CASCADE; CREATE SCHEMA \"{0}\"",
            tenant.schema_name()
        ))
        .execute(&mut t.admin().await)
        .await
        .unwrap();
    }
    let runs = (0..4).map(|_| {
        let db = t.db.clone();
        tokio::spawn(async move { db.migrate().await })
    });
    let mut applied = 0;
    for r in runs {
        let report = r.await.unwrap().expect("no replica fails");
        applied += report.tenants_applied.len();
    }
    assert_eq!(applied, 3, "each tenant migrated exactly once");
    for tenant in t.db.tenants().await.unwrap() {
        let n: i64 = sqlx::query_scalar(&format!(
            "SELECT count(*) FROM \"{}\".profile",
            tenant.schema_name()
        ))
        .fetch_one(&mut t.admin().await)
        .await
        .unwrap();
        assert_eq!(n, 1);
    }
}

#[tokio::test]
async fn failed_association_creation_leaves_nothing_half_made() {
    let t = TestDb::new().await;
    let s = t.operator().await;
    s.create_association(&assoc("alpha")).await.unwrap();
    let schemas_before: i64 =
        sqlx::query_scalar("SELECT count(*) FROM pg_namespace WHERE nspname LIKE 'assoc\\_%'")
            .fetch_one(t.db.pool())
            .await
            .unwrap();
    // Same slug again: the registry insert fails; no schema may remain.
    let err = s.create_association(&assoc("alpha")).await.unwrap_err();
    assert_eq!(err.code.as_str(), "SLUG_TAKEN");
    assert_eq!(err.field, Some("slug"));
    // A name the database rejects (too long after validation is bypassed) fails late, after
    // the schema was created inside the transaction: still nothing remains.
    let db_level = musubi_db::NewAssociation {
        slug: "beta".into(),
        name: "x".into(),
        area: "a".repeat(101),
        description: String::new(),
    };
    assert!(t.db.create_association(&db_level).await.is_err());
    let schemas_after: i64 =
        sqlx::query_scalar("SELECT count(*) FROM pg_namespace WHERE nspname LIKE 'assoc\\_%'")
            .fetch_one(t.db.pool())
            .await
            .unwrap();
    assert_eq!(schemas_before, schemas_after);
    let rows: i64 = sqlx::query_scalar("SELECT count(*) FROM core.associations")
        .fetch_one(t.db.pool())
        .await
        .unwrap();
    assert_eq!(rows, 1);
}

#[tokio::test]
async fn invalid_association_input_names_the_field() {
    let t = TestDb::new().await;
    let mut bad = assoc("Bad Slug");
    let err = t
        .operator()
        .await
        .create_association(&bad)
        .await
        .unwrap_err();
    assert_eq!(
        (err.code.as_str(), err.field),
        ("INVALID_INPUT", Some("slug"))
    );
    bad.slug = "good".into();
    bad.name = " ".into();
    let err = t
        .operator()
        .await
        .create_association(&bad)
        .await
        .unwrap_err();
    assert_eq!(err.field, Some("name"));
}

#[tokio::test]
async fn stored_codes_decode_into_the_vocabulary_and_unknown_ones_never_become_a_default() {
    use musubi_db::types::{GroupMemberStatus, Profession, ReceiptMode, Scope};
    let t = TestDb::new().await;
    let pool = t.db.pool();
    let p: Profession = sqlx::query_scalar("SELECT 'care_manager'::text")
        .fetch_one(pool)
        .await
        .unwrap();
    assert_eq!(p, Profession::CareManager);
    // A code outside the set is an error, not a guess.
    let unknown = sqlx::query_scalar::<_, GroupMemberStatus>("SELECT 'banned'::text")
        .fetch_one(pool)
        .await;
    assert!(unknown.is_err(), "{unknown:?}");
    // Values are written as their stored codes and bits.
    let code: String = sqlx::query_scalar("SELECT $1::text")
        .bind(ReceiptMode::Acknowledgement)
        .fetch_one(pool)
        .await
        .unwrap();
    assert_eq!(code, "ack");
    let scope: Scope = sqlx::query_scalar("SELECT $1::smallint")
        .bind(Scope::DOCTORS)
        .fetch_one(pool)
        .await
        .unwrap();
    assert_eq!(scope, Scope::DOCTORS);
    assert_eq!(scope.bits(), 6);
    for bits in [0_i16, 8] {
        let outside = sqlx::query_scalar::<_, Scope>("SELECT $1::smallint")
            .bind(bits)
            .fetch_one(pool)
            .await;
        assert!(outside.is_err(), "{bits}: {outside:?}");
        let raw: i16 = sqlx::query_scalar("SELECT $1::smallint")
            .bind(bits)
            .fetch_one(pool)
            .await
            .unwrap();
        assert_eq!(
            raw, bits,
            "the query itself is fine; only the decoding refuses"
        );
    }
}
