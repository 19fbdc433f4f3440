//! PostgreSQL enforces tenancy too: each association's schema belongs to a role of its own,
//! tenant connections run as that role and the shared connections as one that may use `core`
//! only. A query naming another association's schema is refused by PostgreSQL itself.

use musubi_db::{Db, NewAssociation, Tenant};
use musubi_test_support::{admin_options, TestDb};
use sqlx::{Connection, PgConnection};
use std::time::Duration;

const PERMISSION_DENIED: &str = "42501";

fn new_association(slug: &str) -> NewAssociation {
    NewAssociation {
        slug: slug.into(),
        name: format!("{slug} 医師会"),
        area: String::new(),
        description: format!("{slug} の秘密"),
    }
}

/// The SQLSTATE of `sql` run on `conn`, or `None` when it succeeds.
async fn refusal(conn: &mut PgConnection, sql: &str) -> Option<String> {
    match sqlx::query(sql).fetch_all(conn).await {
        Ok(_) => None,
        Err(e) => Some(
            e.as_database_error()
                .and_then(|d| d.code())
                .map(|c| c.into_owned())
                .unwrap_or_else(|| format!("not a database error: {e}")),
        ),
    }
}

fn profile_of(tenant: &Tenant) -> String {
    format!(
        "SELECT description FROM \"{}\".profile",
        tenant.schema_name()
    )
}

/// Two associations on `db`; checks what each kind of connection may read.
async fn assert_enforced(db: &Db) {
    let a = db
        .create_association(&new_association("alpha"))
        .await
        .unwrap();
    let b = db
        .create_association(&new_association("beta"))
        .await
        .unwrap();

    // A tenant connection reads its own schema, by name or not… (outside a transaction, so
    // that one refusal does not abort the checks after it)
    let mut tx = db.tenant_read(&a).await.unwrap();
    assert_eq!(refusal(&mut tx, &profile_of(&a)).await, None);
    assert_eq!(
        refusal(&mut tx, "SELECT description FROM profile").await,
        None
    );
    // …but another association's schema is PostgreSQL's permission error.
    assert_eq!(
        refusal(&mut tx, &profile_of(&b)).await.as_deref(),
        Some(PERMISSION_DENIED)
    );
    drop(tx);
    let mut tx = db.tenant_read(&b).await.unwrap();
    assert_eq!(
        refusal(&mut tx, &profile_of(&a)).await.as_deref(),
        Some(PERMISSION_DENIED)
    );
    // Secrets in core are written by associations, never read.
    for secret in [
        "SELECT password_hash FROM core.users",
        "SELECT totp_secret FROM core.users",
        "SELECT token_hash FROM core.sessions",
        "SELECT code_hash FROM core.recovery_codes",
        "SELECT credential FROM core.passkeys",
        "SELECT * FROM core.platform_audit_log",
    ] {
        assert_eq!(
            refusal(&mut tx, secret).await.as_deref(),
            Some(PERMISSION_DENIED),
            "{secret}"
        );
    }
    assert_eq!(refusal(&mut tx, "SELECT name FROM core.users").await, None);
    drop(tx);

    // The shared connections use core and cannot read any association's schema.
    let mut shared = db.pool().acquire().await.unwrap();
    assert_eq!(
        refusal(&mut shared, "SELECT count(*) FROM core.users").await,
        None
    );
    for t in [&a, &b] {
        assert_eq!(
            refusal(&mut shared, &profile_of(t)).await.as_deref(),
            Some(PERMISSION_DENIED),
            "{}",
            t.slug
        );
    }
}

#[tokio::test]
async fn postgres_refuses_other_associations_schemas_on_tenant_and_shared_connections() {
    let t = TestDb::new().await;
    assert_enforced(&t.db).await;
}

/// A database of its own owned by a fresh login role with `attributes`; dropped with the role.
struct OwnLogin {
    admin: PgConnection,
    login: String,
}

impl OwnLogin {
    async fn new(attributes: &str) -> Self {
        let mut admin = PgConnection::connect_with(&admin_options()).await.unwrap();
        let login = format!("musubi_login_{}", uuid::Uuid::new_v4().simple());
        for sql in [
            format!("CREATE ROLE {login} LOGIN {attributes}"),
            format!("CREATE DATABASE {login} OWNER {login}"),
        ] {
            sqlx::raw_sql(&sql).execute(&mut admin).await.unwrap();
        }
        Self { admin, login }
    }

    fn options(&self) -> sqlx::postgres::PgConnectOptions {
        admin_options().username(&self.login).database(&self.login)
    }

    async fn drop_all(mut self) {
        let roles: Vec<String> = sqlx::query_scalar(
            "SELECT rolname::text FROM pg_roles r WHERE pg_has_role($1, r.oid, 'MEMBER') \
             AND rolname LIKE 'musubi\\_assoc\\_%'",
        )
        .bind(&self.login)
        .fetch_all(&mut self.admin)
        .await
        .unwrap_or_default();
        let mut statements = vec![format!(
            "DROP DATABASE IF EXISTS {} WITH (FORCE)",
            self.login
        )];
        statements.extend(roles.iter().map(|r| format!("DROP ROLE IF EXISTS \"{r}\"")));
        statements.push(format!("DROP ROLE IF EXISTS {}", self.login));
        for sql in statements {
            let _ = sqlx::raw_sql(&sql).execute(&mut self.admin).await;
        }
    }
}

#[tokio::test]
async fn a_login_that_may_create_roles_but_is_no_superuser_gets_the_same_isolation() {
    let own = OwnLogin::new("CREATEROLE").await;
    let db = Db::connect(own.options(), 4, Duration::from_secs(30))
        .await
        .unwrap();
    db.migrate().await.unwrap();
    assert_enforced(&db).await;
    db.close().await;
    own.drop_all().await;
}

#[tokio::test]
async fn a_login_that_may_not_create_roles_is_told_what_to_grant() {
    let own = OwnLogin::new("NOCREATEROLE").await;
    // Refused at connect time (the shared connections' role), or, should the cluster's
    // administrator have granted that one, at the first association's role.
    let err = match Db::connect(own.options(), 4, Duration::from_secs(30)).await {
        Err(e) => e.to_string(),
        Ok(db) => {
            let r = async {
                db.migrate().await?;
                db.create_association(&new_association("alpha")).await
            }
            .await;
            db.close().await;
            r.map(|_| ()).map_err(|e| e.to_string()).unwrap_err()
        }
    };
    own.drop_all().await;
    assert!(err.contains("CREATEROLE"), "{err}");
}

async fn owners(admin: &mut PgConnection, schema: &str) -> Vec<String> {
    sqlx::query_scalar("SELECT DISTINCT tableowner::text FROM pg_tables WHERE schemaname = $1")
        .bind(schema)
        .fetch_all(admin)
        .await
        .unwrap()
}

#[tokio::test]
async fn migrate_gives_a_schema_from_before_roles_to_its_own_role() {
    let t = TestDb::new().await;
    let a =
        t.db.create_association(&new_association("alpha"))
            .await
            .unwrap();
    let schema = a.schema_name().to_owned();
    // As a deployment from before roles had it: everything owned by the login role.
    let mut admin = t.admin().await;
    let tables: Vec<String> =
        sqlx::query_scalar("SELECT quote_ident(tablename) FROM pg_tables WHERE schemaname = $1")
            .bind(&schema)
            .fetch_all(&mut admin)
            .await
            .unwrap();
    assert!(tables.len() >= 5, "{tables:?}");
    let mut sql = format!("ALTER SCHEMA \"{schema}\" OWNER TO CURRENT_USER;");
    for table in &tables {
        sql.push_str(&format!(
            "ALTER TABLE \"{schema}\".{table} OWNER TO CURRENT_USER;"
        ));
    }
    sqlx::raw_sql(&sql).execute(&mut admin).await.unwrap();
    assert_ne!(
        owners(&mut admin, &schema).await,
        vec![format!("musubi_{schema}")]
    );

    t.db.migrate().await.unwrap();
    assert_eq!(
        owners(&mut admin, &schema).await,
        vec![format!("musubi_{schema}")]
    );
    let mut conn = t.db.tenant_read(&a).await.unwrap();
    assert_eq!(
        refusal(&mut conn, "SELECT description FROM profile").await,
        None
    );
}
