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

/// Statements that break the release before them if they ship with the code that stops using
/// what they remove (docs/upgrades.md): they are the *contract* half of expand/contract and
/// need `-- contract: expand shipped in NNNN_name` naming the earlier migration of the same
/// set that added the replacement, so that replicas of the previous release keep working
/// while the new one rolls out.
fn breaking(statement: &str) -> Option<&'static str> {
    let s = statement
        .to_uppercase()
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ");
    [
        ("DROP TABLE", "drops a table"),
        ("DROP COLUMN", "drops a column"),
        ("DROP VIEW", "drops a view"),
        ("DROP FUNCTION", "drops a function"),
        (" RENAME ", "renames"),
        ("SET NOT NULL", "makes a column required"),
        (" TYPE ", "changes a column's type"),
    ]
    .into_iter()
    .find(|(what, _)| s.contains(what) && (*what != " TYPE " || s.contains("ALTER COLUMN")))
    .map(|(_, why)| why)
}

/// Contract steps that shipped before the rule, each with why it was safe then.
const BEFORE_THE_RULE: &[(&str, &str)] = &[(
    "core/0007_member_association.sql",
    "association_id was back-filled in the same migration and every writer of the release \
     before already set it",
)];

/// Every migration file as (set/file, text), in order.
fn migration_files() -> Vec<(String, String)> {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../migrations");
    let mut out = Vec::new();
    for set in ["core", "tenant"] {
        let mut files: Vec<_> = std::fs::read_dir(root.join(set))
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| p.extension().is_some_and(|x| x == "sql"))
            .collect();
        files.sort();
        for f in files {
            let name = format!("{set}/{}", f.file_name().unwrap().to_string_lossy());
            out.push((name, std::fs::read_to_string(&f).unwrap()));
        }
    }
    out
}

/// The problems of one migration file (`name` as `set/NNNN_x.sql`) among `all`.
fn contract_problems(name: &str, text: &str, all: &[(String, String)]) -> Vec<String> {
    let mut problems = Vec::new();
    let marker = text
        .lines()
        .find_map(|l| l.trim().strip_prefix("-- contract: expand shipped in "))
        .map(str::trim);
    let without_comments: String = text
        .lines()
        .map(|l| l.split("--").next().unwrap_or(""))
        .collect::<Vec<_>>()
        .join("\n");
    for statement in without_comments.split(';') {
        let Some(why) = breaking(statement) else {
            continue;
        };
        if BEFORE_THE_RULE.iter().any(|(f, _)| *f == name) {
            continue;
        }
        let (set, file) = name.split_once('/').unwrap();
        let earlier = marker.and_then(|m| {
            all.iter()
                .find(|(n, _)| n.strip_prefix(&format!("{set}/")) == Some(&format!("{m}.sql")))
                .filter(|_| format!("{m}.sql").as_str() < file)
        });
        if earlier.is_none() {
            problems.push(format!(
                "{name}: `{}` {why} without `-- contract: expand shipped in NNNN_name` naming \
                 an earlier {set} migration",
                statement.split_whitespace().collect::<Vec<_>>().join(" ")
            ));
        }
    }
    problems
}

#[test]
fn no_migration_drops_or_renames_in_one_step() {
    let all = migration_files();
    assert!(all.len() > 20, "found only {} migrations", all.len());
    let problems: Vec<String> = all
        .iter()
        .flat_map(|(name, text)| contract_problems(name, text, &all))
        .collect();
    assert!(problems.is_empty(), "{}", problems.join("\n"));
    // The rule itself can fail: a column dropped with no marker, or with one naming a later
    // or missing migration, is refused; with the marker it passes.
    let drop = "ALTER TABLE topics DROP COLUMN pinned;";
    assert_eq!(
        contract_problems("tenant/9999_drop.sql", drop, &all).len(),
        1
    );
    for marker in ["9998_missing", "0001_profile"] {
        let text = format!("-- contract: expand shipped in {marker}\n{drop}");
        let expected = usize::from(marker == "9998_missing");
        assert_eq!(
            contract_problems("tenant/9999_drop.sql", &text, &all).len(),
            expected,
            "{marker}"
        );
    }
    let rename = "ALTER TABLE topics\n  RENAME COLUMN title TO heading;";
    assert_eq!(
        contract_problems("tenant/9999_r.sql", rename, &all).len(),
        1
    );
    let widen = "ALTER TABLE topics ALTER COLUMN scope TYPE integer;";
    assert_eq!(contract_problems("tenant/9999_t.sql", widen, &all).len(), 1);
    // Adding is never a problem.
    let add = "ALTER TABLE topics ADD COLUMN heading text; CREATE INDEX x ON topics (heading);";
    assert!(contract_problems("tenant/9999_a.sql", add, &all).is_empty());
}
