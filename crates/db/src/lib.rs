//! Data access: the connection pool, migrations, the tenant registry and tenant-scoped
//! transactions. Tenant routing happens here and nowhere else: a [`Tenant`] can only be
//! obtained from the registry, and [`Db::tenant_tx`] is the only way to reach its schema.

pub mod accounts;
pub mod associations;
pub mod audit;
pub mod groups;
pub mod invitations;
mod migrate;
pub mod passkeys;
pub mod password_reset;
mod tenant;

pub use associations::{AssociationRow, NewAssociation, ProfileRow};
pub use migrate::{
    fingerprint as migrations_fingerprint, MigrationReport, CORE_VERSION, TENANT_VERSION,
};
pub use tenant::{Tenant, TenantError};

use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::{PgPool, Postgres, Transaction};
use std::sync::Arc;
use std::time::Duration;

/// A database failure. `Conflict` and `Check` are caused by input; everything else is internal
/// and must never reach a client as text.
#[derive(Debug, thiserror::Error)]
pub enum DbError {
    #[error("unique constraint violated: {0}")]
    Conflict(String),
    #[error("check constraint violated: {0}")]
    Check(String),
    #[error(transparent)]
    Tenant(#[from] TenantError),
    #[error("migration {set}/{version} was changed after it was applied (checksum differs)")]
    MigrationChanged { set: &'static str, version: i32 },
    #[error("database error: {0}")]
    Sqlx(sqlx::Error),
}

impl From<sqlx::Error> for DbError {
    fn from(e: sqlx::Error) -> Self {
        if let sqlx::Error::Database(db) = &e {
            let constraint = db.constraint().unwrap_or_default().to_owned();
            match db.code().as_deref() {
                Some("23505") => return DbError::Conflict(constraint),
                Some("23514") => return DbError::Check(constraint),
                _ => {}
            }
        }
        DbError::Sqlx(e)
    }
}

pub type DbResult<T> = Result<T, DbError>;

/// The shared handle: a pool plus the tenant registry. Cheap to clone.
#[derive(Clone)]
pub struct Db {
    pool: PgPool,
    connect: PgConnectOptions,
    registry: Arc<tenant::Registry>,
}

impl Db {
    /// Connects a pool. Every new connection gets an empty `search_path`, so a query that
    /// forgot its tenant fails instead of landing in some default schema.
    pub async fn connect(
        connect: PgConnectOptions,
        max_connections: u32,
        acquire_timeout: Duration,
    ) -> DbResult<Self> {
        let pool = PgPoolOptions::new()
            .max_connections(max_connections)
            .acquire_timeout(acquire_timeout)
            .after_connect(|conn, _meta| {
                Box::pin(async move {
                    sqlx::query("SELECT set_config('search_path', '', false)")
                        .execute(&mut *conn)
                        .await?;
                    Ok(())
                })
            })
            .connect_with(connect.clone().application_name("musubi"))
            .await?;
        Ok(Self {
            pool,
            connect,
            registry: Arc::new(tenant::Registry::default()),
        })
    }

    pub fn pool(&self) -> &PgPool {
        &self.pool
    }

    pub async fn close(&self) {
        self.pool.close().await;
    }

    /// Resolves an association by its slug from the registry; fails closed.
    pub async fn resolve_tenant(&self, slug: &str) -> Result<Tenant, DbError> {
        self.registry.resolve(&self.pool, slug).await
    }

    /// All associations that can be served now (schema current).
    pub async fn tenants(&self) -> DbResult<Vec<Tenant>> {
        self.registry.all(&self.pool).await
    }

    /// Begins a transaction whose `search_path` is the tenant's schema, for this transaction only
    /// (`set_config(…, true)`), so a pooled connection never carries a tenant across requests.
    #[tracing::instrument(name = "db.tenant_tx", skip_all, fields(association = %tenant.slug))]
    pub async fn tenant_tx(&self, tenant: &Tenant) -> DbResult<Transaction<'static, Postgres>> {
        let mut tx = self.pool.begin().await?;
        sqlx::query("SELECT set_config('search_path', $1, true)")
            .bind(tenant.search_path())
            .execute(&mut *tx)
            .await?;
        Ok(tx)
    }

    /// Cheap readiness probe: the database answers and every schema is current.
    pub async fn readiness(&self) -> Result<(), String> {
        sqlx::query("SELECT 1")
            .execute(&self.pool)
            .await
            .map_err(|_| "database unreachable".to_owned())?;
        migrate::check_current(&self.pool)
            .await
            .map_err(|e| e.to_string())
    }

    /// Applies core migrations, then every tenant schema's, under an advisory lock.
    pub async fn migrate(&self) -> DbResult<MigrationReport> {
        let report = migrate::migrate_all(&self.connect).await?;
        self.registry.invalidate();
        Ok(report)
    }

    /// Creates an association and its schema, fully migrated, in one transaction.
    pub async fn create_association(&self, new: &NewAssociation) -> DbResult<Tenant> {
        let tenant = associations::create(&self.pool, new).await?;
        self.registry.invalidate();
        Ok(tenant)
    }

    pub async fn list_associations(&self) -> DbResult<Vec<AssociationRow>> {
        associations::list(&self.pool).await
    }
}
