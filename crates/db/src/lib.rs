//! Data access: the connection pool, migrations, the tenant registry and tenant-scoped
//! transactions. Tenant routing happens here and nowhere else: a [`Tenant`] can only be
//! obtained from the registry, and [`Db::tenant_tx`] is the only way to reach its schema.

pub mod accounts;
pub mod associations;
pub mod audit;
pub mod backdate;
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
/// The vocabulary of stored values, for callers of this crate.
pub use musubi_types as types;
pub use tenant::{Tenant, TenantError};

use sqlx::pool::PoolConnection;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::{PgPool, Postgres, Transaction};
use std::sync::Arc;
use std::time::Duration;

/// A transaction that a dropped future cannot leave half-open.
///
/// sqlx counts a transaction as open only after the `BEGIN` round trip, and as closed only
/// after the `COMMIT` round trip. A request future dropped inside either window (a client that
/// went away, a timeout) hands the connection back to the pool in a state sqlx misjudges: an
/// open transaction it believes closed (the next borrower's statements run inside it), or a
/// `ROLLBACK` queued behind a `COMMIT` that went through. So both round trips run in tasks of
/// their own, which finish whatever happens to the caller; a transaction dropped at any other
/// point is rolled back by sqlx before its connection is reused.
pub struct Tx(Transaction<'static, Postgres>);

impl Tx {
    async fn begin(pool: PgPool, statement: Option<String>) -> DbResult<Self> {
        let task = tokio::spawn(async move {
            match statement {
                Some(s) => pool.begin_with(s).await,
                None => pool.begin().await,
            }
        });
        // If the caller is gone, the task's result (an open transaction) is dropped in the
        // task, which queues its rollback.
        match task.await {
            Ok(tx) => Ok(Self(tx?)),
            Err(e) => Err(DbError::Task(e.to_string())),
        }
    }

    /// Commits; once called, the `COMMIT` completes even if the caller is dropped.
    pub async fn commit(self) -> DbResult<()> {
        let tx = self.0;
        match tokio::spawn(tx.commit()).await {
            Ok(r) => Ok(r?),
            Err(e) => Err(DbError::Task(e.to_string())),
        }
    }
}

impl Tx {
    /// Rolls back now (dropping a `Tx` also rolls back, before its connection is reused).
    pub async fn rollback(self) -> DbResult<()> {
        let tx = self.0;
        match tokio::spawn(tx.rollback()).await {
            Ok(r) => Ok(r?),
            Err(e) => Err(DbError::Task(e.to_string())),
        }
    }
}

impl std::ops::Deref for Tx {
    type Target = sqlx::PgConnection;
    fn deref(&self) -> &Self::Target {
        &self.0
    }
}

impl std::ops::DerefMut for Tx {
    fn deref_mut(&mut self) -> &mut Self::Target {
        &mut self.0
    }
}

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
    #[error("database task failed: {0}")]
    Task(String),
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
    tenant_pools: Arc<TenantPools>,
}

/// Connections of one association each. PostgreSQL re-plans a prepared statement whenever the
/// `search_path` differs from the one it was planned under, so a connection that served
/// several schemas in turn spent more time planning than executing. A connection that only
/// ever serves one schema keeps its plans.
struct TenantPools {
    pools: std::sync::Mutex<std::collections::HashMap<musubi_types::AssociationId, PgPool>>,
    max_connections: u32,
    acquire_timeout: Duration,
}

/// Default connections per association (`MUSUBI_DB_TENANT_CONNECTIONS`).
pub const DEFAULT_TENANT_CONNECTIONS: u32 = 4;
/// An association's idle connections close after this long.
const TENANT_IDLE: Duration = Duration::from_secs(60);

/// `search_path`: the empty string for the shared pool, a tenant's quoted schema for its own.
fn pool_options(
    max_connections: u32,
    acquire_timeout: Duration,
    search_path: String,
) -> PgPoolOptions {
    let search_path = Arc::new(search_path);
    PgPoolOptions::new()
        .max_connections(max_connections)
        .acquire_timeout(acquire_timeout)
        // A ping per checkout is a round trip per query; a broken connection fails its first
        // statement instead and is then discarded by the pool.
        .test_before_acquire(false)
        .after_connect(move |conn, _meta| {
            let search_path = Arc::clone(&search_path);
            Box::pin(async move {
                sqlx::query("SELECT set_config('search_path', $1, false)")
                    .bind(search_path.as_str())
                    .execute(&mut *conn)
                    .await?;
                Ok(())
            })
        })
}

impl Db {
    /// Connects the shared pool. Its connections get an empty `search_path`, so a query that
    /// forgot its tenant fails instead of landing in some default schema. (Each association's
    /// own pool sets that association's schema instead.)
    pub async fn connect(
        connect: PgConnectOptions,
        max_connections: u32,
        acquire_timeout: Duration,
    ) -> DbResult<Self> {
        let pool = pool_options(max_connections, acquire_timeout, String::new())
            .connect_with(connect.clone().application_name("musubi"))
            .await?;
        Ok(Self {
            pool,
            connect,
            registry: Arc::new(tenant::Registry::default()),
            tenant_pools: Arc::new(TenantPools {
                pools: std::sync::Mutex::default(),
                max_connections: DEFAULT_TENANT_CONNECTIONS,
                acquire_timeout,
            }),
        })
    }

    /// Sets how many connections each association may use at once (default
    /// [`DEFAULT_TENANT_CONNECTIONS`]); call before the first tenant transaction.
    pub fn with_tenant_connections(mut self, max_connections: u32) -> Self {
        self.tenant_pools = Arc::new(TenantPools {
            pools: std::sync::Mutex::default(),
            max_connections: max_connections.max(1),
            acquire_timeout: self.tenant_pools.acquire_timeout,
        });
        self
    }

    /// The pool of one association's connections, created on first use. Connections open
    /// lazily and close when idle, so associations nobody is using hold none.
    fn tenant_pool(&self, tenant: &Tenant) -> PgPool {
        let tp = &self.tenant_pools;
        // A poisoned lock only means another thread panicked while inserting: the map is fine.
        let mut pools = tp.pools.lock().unwrap_or_else(|e| e.into_inner());
        pools
            .entry(tenant.id)
            .or_insert_with(|| {
                pool_options(tp.max_connections, tp.acquire_timeout, tenant.search_path())
                    .min_connections(0)
                    .idle_timeout(TENANT_IDLE)
                    .connect_lazy_with(self.connect.clone().application_name("musubi"))
            })
            .clone()
    }

    pub fn pool(&self) -> &PgPool {
        &self.pool
    }

    pub async fn close(&self) {
        let tenant_pools: Vec<PgPool> = self
            .tenant_pools
            .pools
            .lock()
            .map(|p| p.values().cloned().collect())
            .unwrap_or_default();
        for p in tenant_pools {
            p.close().await;
        }
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
    /// (`SET LOCAL`), so a pooled connection never carries a tenant across requests. Both go in
    /// one round trip; the schema name comes from the registry (generated, checked by the
    /// database and quoted), never from input.
    #[tracing::instrument(name = "db.tenant_tx", skip_all, fields(association = %tenant.slug))]
    pub async fn tenant_tx(&self, tenant: &Tenant) -> DbResult<Tx> {
        let begin = format!("BEGIN; SET LOCAL search_path TO {}", tenant.search_path());
        Tx::begin(self.tenant_pool(tenant), Some(begin)).await
    }

    /// A read-only transaction in the tenant's schema: one snapshot for several reads.
    /// PostgreSQL itself refuses any write in it.
    #[tracing::instrument(name = "db.tenant_snapshot", skip_all, fields(association = %tenant.slug))]
    pub async fn tenant_snapshot(&self, tenant: &Tenant) -> DbResult<Tx> {
        let begin = format!(
            "BEGIN READ ONLY; SET LOCAL search_path TO {}",
            tenant.search_path()
        );
        Tx::begin(self.tenant_pool(tenant), Some(begin)).await
    }

    /// Begins a transaction on the shared pool (accounts, sessions, the registry).
    pub async fn core_tx(&self) -> DbResult<Tx> {
        Tx::begin(self.pool.clone(), None).await
    }

    /// A connection of the tenant's own pool, outside any transaction, for reads of one
    /// statement each (badges, the home page) that need no snapshot shared between statements:
    /// it saves the transaction's two round trips. Those connections only ever serve this
    /// tenant, and their `search_path` is its schema from the moment they open.
    pub async fn tenant_read(&self, tenant: &Tenant) -> DbResult<PoolConnection<Postgres>> {
        Ok(self.tenant_pool(tenant).acquire().await?)
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
