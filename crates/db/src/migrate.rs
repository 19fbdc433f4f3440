//! A small migration runner: core first, then every tenant schema, each schema recording its
//! own applied versions in its own `schema_migrations` table.

use crate::{DbError, DbResult};
use sha2::{Digest, Sha256};
use sqlx::postgres::PgConnectOptions;
use sqlx::Executor as _;
use sqlx::{Connection, PgConnection, PgPool};

pub(crate) struct Migration {
    pub version: i32,
    pub name: &'static str,
    pub sql: &'static str,
}

include!(concat!(env!("OUT_DIR"), "/migrations.rs"));

/// Newest core migration this binary knows.
pub const CORE_VERSION: i32 = CORE.len() as i32;
/// Newest tenant migration this binary knows; a tenant schema behind it is not served.
pub const TENANT_VERSION: i32 = TENANT.len() as i32;

/// Replicas that start together serialize on this lock (and association creation takes it too).
pub(crate) const MIGRATION_LOCK: i64 = 0x6d75_7375_6269_0001;

#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct MigrationReport {
    /// Core migrations applied by this run.
    pub core_applied: Vec<i32>,
    /// (association slug, versions applied) for tenants that changed.
    pub tenants_applied: Vec<(String, Vec<i32>)>,
    pub tenants_total: usize,
}

impl MigrationReport {
    pub fn is_noop(&self) -> bool {
        self.core_applied.is_empty() && self.tenants_applied.is_empty()
    }
}

/// Identifies this binary's set of migrations (test harnesses key migrated templates by it).
pub fn fingerprint() -> String {
    let mut h = Sha256::new();
    for m in CORE.iter().chain(TENANT.iter()) {
        h.update(m.sql.as_bytes());
    }
    hex::encode(h.finalize())[..16].to_owned()
}

fn checksum(sql: &str) -> String {
    hex::encode(Sha256::digest(sql.as_bytes()))
}

const LEDGER: &str = "CREATE TABLE IF NOT EXISTS schema_migrations (
    version    integer PRIMARY KEY,
    name       text NOT NULL,
    checksum   text NOT NULL,
    applied_at timestamptz NOT NULL DEFAULT now())";

/// Applies `set` to the schema currently first in `search_path` of `conn`'s transaction.
/// The caller has set the search path locally; returns the versions applied.
pub(crate) async fn apply_set(
    conn: &mut PgConnection,
    set_name: &'static str,
    set: &'static [Migration],
) -> DbResult<Vec<i32>> {
    sqlx::query(LEDGER).execute(&mut *conn).await?;
    let applied: Vec<(i32, String)> =
        sqlx::query_as("SELECT version, checksum FROM schema_migrations ORDER BY version")
            .fetch_all(&mut *conn)
            .await?;
    let mut done = Vec::new();
    for m in set {
        if let Some((_, sum)) = applied.iter().find(|(v, _)| *v == m.version) {
            if *sum != checksum(m.sql) {
                return Err(DbError::MigrationChanged {
                    set: set_name,
                    version: m.version,
                });
            }
            continue;
        }
        (&mut *conn).execute(m.sql).await?;
        sqlx::query("INSERT INTO schema_migrations (version, name, checksum) VALUES ($1, $2, $3)")
            .bind(m.version)
            .bind(m.name)
            .bind(checksum(m.sql))
            .execute(&mut *conn)
            .await?;
        done.push(m.version);
    }
    Ok(done)
}

pub(crate) async fn set_local_search_path(conn: &mut PgConnection, path: &str) -> DbResult<()> {
    sqlx::query("SELECT set_config('search_path', $1, true)")
        .bind(path)
        .execute(&mut *conn)
        .await?;
    Ok(())
}

/// Applies the tenant migrations to `schema` inside the caller's transaction, as the schema's
/// own role (created, or the schema adopted, first), so that role owns whatever they create.
pub(crate) async fn apply_tenant(conn: &mut PgConnection, schema: &str) -> DbResult<Vec<i32>> {
    let role = crate::roles::adopt_tenant(conn, schema).await?;
    crate::simple(
        &mut *conn,
        &format!("SET LOCAL ROLE {}", crate::roles::quote_role(&role)),
    )
    .await?;
    set_local_search_path(conn, &crate::tenant::quote_schema(schema)).await?;
    let applied = apply_set(conn, "tenant", TENANT).await?;
    let version = tenant_version(conn, schema).await?;
    crate::simple(&mut *conn, "SET LOCAL ROLE NONE").await?;
    // Kept where the shared connections, which may not read the schema, find it.
    sqlx::query("UPDATE core.associations SET schema_version = $2 WHERE schema_name = $1")
        .bind(schema)
        .bind(version)
        .execute(&mut *conn)
        .await?;
    Ok(applied)
}

#[tracing::instrument(name = "db.migrate", skip_all)]
pub(crate) async fn migrate_all(connect: &PgConnectOptions) -> DbResult<MigrationReport> {
    // A dedicated connection: the session-level lock dies with it even if we fail midway.
    let mut conn = PgConnection::connect_with(connect).await?;
    sqlx::query("SELECT pg_advisory_lock($1)")
        .bind(MIGRATION_LOCK)
        .execute(&mut conn)
        .await?;
    let result = migrate_locked(&mut conn).await;
    let _ = conn.close().await;
    result
}

async fn migrate_locked(conn: &mut PgConnection) -> DbResult<MigrationReport> {
    let mut report = MigrationReport::default();
    let mut tx = conn.begin().await?;
    sqlx::query("CREATE SCHEMA IF NOT EXISTS core")
        .execute(&mut *tx)
        .await?;
    set_local_search_path(&mut tx, "core").await?;
    report.core_applied = apply_set(&mut tx, "core", CORE).await?;
    crate::roles::grant_core(&mut tx).await?;
    tx.commit().await?;
    if !report.core_applied.is_empty() {
        tracing::info!(versions = ?report.core_applied, "core schema migrated");
    }

    // Each schema's version and owner in one read: a start with nothing to do opens no
    // transaction per association.
    let tenants: Vec<(String, String, i32, Option<String>)> = sqlx::query_as(
        "SELECT a.slug, a.schema_name, a.schema_version, pg_get_userbyid(n.nspowner)::text \
         FROM core.associations a LEFT JOIN pg_namespace n ON n.nspname = a.schema_name \
         ORDER BY a.created_at, a.slug",
    )
    .fetch_all(&mut *conn)
    .await?;
    report.tenants_total = tenants.len();
    for (slug, schema, version, owner) in tenants {
        // New core tables may need grants; a schema from before roles needs its role.
        let current = version >= TENANT_VERSION
            && owner.as_deref() == Some(crate::roles::tenant_role(&schema).as_str())
            && report.core_applied.is_empty();
        if current {
            continue;
        }
        let mut tx = conn.begin().await?;
        let applied = apply_tenant(&mut tx, &schema).await?;
        tx.commit().await?;
        if !applied.is_empty() {
            tracing::info!(association = %slug, versions = ?applied, "association schema migrated");
            report.tenants_applied.push((slug, applied));
        }
    }
    Ok(report)
}

/// Reads the version recorded in a tenant schema (0 if its ledger is missing), on a connection
/// allowed to read it.
async fn tenant_version(conn: &mut PgConnection, schema: &str) -> DbResult<i32> {
    let table = format!("{}.schema_migrations", crate::tenant::quote_schema(schema));
    let exists: Option<String> = sqlx::query_scalar("SELECT to_regclass($1)::text")
        .bind(&table)
        .fetch_one(&mut *conn)
        .await?;
    if exists.is_none() {
        return Ok(0);
    }
    // Versions are contiguous from 1, so the count of known ones is the schema's version.
    let v: i64 = sqlx::query_scalar(&format!("SELECT count(*) FROM {table} WHERE version <= $1"))
        .bind(TENANT_VERSION)
        .fetch_one(&mut *conn)
        .await?;
    Ok(v as i32)
}

/// Errs when core or any tenant is behind this binary.
pub(crate) async fn check_current(pool: &PgPool) -> DbResult<()> {
    let core: Option<i64> =
        sqlx::query_scalar("SELECT count(*) FROM core.schema_migrations WHERE version <= $1")
            .bind(CORE_VERSION)
            .fetch_optional(pool)
            .await
            .unwrap_or(None);
    if core.unwrap_or(0) < i64::from(CORE_VERSION) {
        return Err(crate::TenantError::CoreOutdated.into());
    }
    let behind: Option<(String, i32)> = sqlx::query_as(
        "SELECT slug, schema_version FROM core.associations WHERE schema_version < $1 \
         ORDER BY slug LIMIT 1",
    )
    .bind(TENANT_VERSION)
    .fetch_optional(pool)
    .await?;
    if let Some((slug, have)) = behind {
        return Err(crate::TenantError::Outdated {
            slug,
            have,
            need: TENANT_VERSION,
        }
        .into());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn migrations_are_embedded_in_order() {
        assert!(!CORE.is_empty() && !TENANT.is_empty());
        for (i, m) in CORE.iter().chain(TENANT.iter()).enumerate() {
            assert!(!m.sql.trim().is_empty(), "migration {i} is empty");
        }
        assert_eq!(TENANT.last().map(|m| m.version), Some(TENANT_VERSION));
    }
}
