//! Data access: the connection pool, migrations, the tenant registry and tenant-scoped
//! transactions. Tenant routing happens here and nowhere else: a [`Tenant`] can only be
//! obtained from the registry, and [`Db::tenant_tx`] is the only way to reach its schema.

pub mod accounts;
pub mod associations;
pub mod audit;
pub mod backdate;
mod broker;
pub mod calendar;
pub mod files;
pub mod groups;
pub mod invitations;
pub mod jobs;
mod migrate;
pub mod notifications;
pub mod passkeys;
pub mod password_reset;
pub mod plans;
pub mod push;
mod roles;
pub use groups::search;
mod tenant;
pub mod urgent;

pub use associations::{AssociationRow, NewAssociation, ProfileRow};
pub use broker::{TenantConn, TenantConnStats};
pub use migrate::{
    fingerprint as migrations_fingerprint, MigrationReport, CORE_VERSION, TENANT_VERSION,
};
/// The vocabulary of stored values, for callers of this crate.
pub use musubi_types as types;
pub use roles::RoleError;
pub use tenant::{Tenant, TenantError};

use sqlx::postgres::{PgConnectOptions, PgPoolOptions, PgTransactionManager};
use sqlx::TransactionManager as _;
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
pub struct Tx(TxConn);

enum TxConn {
    Core(Transaction<'static, Postgres>),
    Tenant(TenantConn),
}

impl Tx {
    async fn begin(pool: PgPool) -> DbResult<Self> {
        let task = tokio::spawn(async move { pool.begin().await });
        // If the caller is gone, the task's result (an open transaction) is dropped in the
        // task, which queues its rollback.
        match task.await {
            Ok(tx) => Ok(Self(TxConn::Core(tx?))),
            Err(e) => Err(DbError::Task(e.to_string())),
        }
    }

    /// A tenant transaction: the connection is keyed to the tenant already (role and
    /// `search_path`), so `BEGIN` is the only round trip. It goes through sqlx's transaction
    /// manager, so `is_in_transaction` stays true to the server's state.
    async fn begin_tenant(
        broker: Arc<broker::Broker>,
        tenant: Tenant,
        begin: &'static str,
    ) -> DbResult<Self> {
        let task = tokio::spawn(async move {
            let mut conn = broker.acquire(&tenant).await?;
            PgTransactionManager::begin(&mut conn, Some(begin.into())).await?;
            Ok::<_, DbError>(conn)
        });
        match task.await {
            Ok(conn) => Ok(Self(TxConn::Tenant(conn?))),
            Err(e) => Err(DbError::Task(e.to_string())),
        }
    }

    /// Ends a tenant transaction, in a task that finishes regardless.
    async fn end_tenant(mut conn: TenantConn, commit: bool) -> DbResult<()> {
        let task = tokio::spawn(async move {
            if commit {
                PgTransactionManager::commit(&mut conn).await?;
            } else {
                PgTransactionManager::rollback(&mut conn).await?;
            }
            conn.ended();
            Ok::<_, DbError>(())
        });
        match task.await {
            Ok(r) => r,
            Err(e) => Err(DbError::Task(e.to_string())),
        }
    }

    /// Commits; once called, the `COMMIT` completes even if the caller is dropped.
    pub async fn commit(self) -> DbResult<()> {
        match self.0 {
            TxConn::Core(tx) => match tokio::spawn(tx.commit()).await {
                Ok(r) => Ok(r?),
                Err(e) => Err(DbError::Task(e.to_string())),
            },
            TxConn::Tenant(conn) => Self::end_tenant(conn, true).await,
        }
    }

    /// Rolls back now (dropping a `Tx` also rolls back, before its connection is reused).
    pub async fn rollback(self) -> DbResult<()> {
        match self.0 {
            TxConn::Core(tx) => match tokio::spawn(tx.rollback()).await {
                Ok(r) => Ok(r?),
                Err(e) => Err(DbError::Task(e.to_string())),
            },
            TxConn::Tenant(conn) => Self::end_tenant(conn, false).await,
        }
    }
}

impl std::ops::Deref for Tx {
    type Target = sqlx::PgConnection;
    fn deref(&self) -> &Self::Target {
        match &self.0 {
            TxConn::Core(tx) => tx,
            TxConn::Tenant(conn) => conn,
        }
    }
}

impl std::ops::DerefMut for Tx {
    fn deref_mut(&mut self) -> &mut Self::Target {
        match &mut self.0 {
            TxConn::Core(tx) => tx,
            TxConn::Tenant(conn) => conn,
        }
    }
}

/// Runs `sql` (one or more statements, no parameters) with the simple query protocol.
/// A named function, so spawned futures see a concrete executor type.
/// Boxed: a spawned future that awaits sqlx's executor directly trips the compiler's `Send`
/// inference over higher-ranked lifetimes.
pub(crate) fn simple<'c>(conn: &'c mut sqlx::PgConnection, sql: &'c str) -> BoxFut<'c, ()> {
    // Without arguments sqlx sends a simple query, which may hold several statements.
    Box::pin(async move {
        sqlx::Executor::execute(conn, sql).await?;
        Ok(())
    })
}

pub(crate) type BoxFut<'a, T> =
    std::pin::Pin<Box<dyn std::future::Future<Output = sqlx::Result<T>> + Send + 'a>>;

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
    #[error(transparent)]
    Role(#[from] RoleError),
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

/// The shared handle: the shared pool, the tenant connections and the tenant registry. Cheap
/// to clone.
#[derive(Clone)]
pub struct Db {
    pool: PgPool,
    connect: PgConnectOptions,
    registry: Arc<tenant::Registry>,
    tenants: Arc<broker::Broker>,
}

/// Default connections one association may use at once (`MUSUBI_DB_TENANT_CONNECTIONS`).
pub const DEFAULT_TENANT_CONNECTIONS: u32 = 4;

/// How a replica's bound on PostgreSQL connections is split: three eighths (at least one) for
/// the shared pool, which every request uses to authenticate, the rest (at least one) for the
/// associations. A smaller share starves authentication when the machine is saturated: with a
/// quarter, requests queued for the shared pool and the medium benchmark's mixed phase answered
/// four times slower.
pub fn split_connections(total: u32) -> (u32, u32) {
    let core = (total * 3).div_ceil(8).max(1);
    (core, total.saturating_sub(core).max(1))
}

impl Db {
    /// Connects with at most `max_connections` PostgreSQL connections in total (see
    /// [`split_connections`]; a migration or a new association opens one more, briefly).
    ///
    /// The shared pool's connections run as the role `musubi_core` (created here when missing)
    /// with an empty `search_path`: a query that forgot its tenant fails, and no association's
    /// schema is readable from them.
    pub async fn connect(
        connect: PgConnectOptions,
        max_connections: u32,
        acquire_timeout: Duration,
    ) -> DbResult<Self> {
        let connect = match connect.get_application_name() {
            Some(_) => connect,
            None => connect.application_name("musubi"),
        };
        roles::ensure_core_role(&connect).await?;
        let (core, tenants) = split_connections(max_connections);
        let pool = PgPoolOptions::new()
            .max_connections(core)
            .acquire_timeout(acquire_timeout)
            // A ping per checkout is a round trip per query; a broken connection fails its
            // first statement instead and is then discarded by the pool.
            .test_before_acquire(false)
            .after_connect(|conn, _meta| {
                Box::pin(async move {
                    let sql = format!(
                        "SET ROLE {}; SET search_path TO ''",
                        roles::quote_role(roles::CORE_ROLE)
                    );
                    simple(conn, &sql).await?;
                    Ok(())
                })
            })
            .connect_with(connect.clone())
            .await?;
        Ok(Self {
            pool,
            tenants: broker::Broker::new(
                connect
                    .clone()
                    .statement_cache_capacity(plans::STATEMENT_CACHE),
                tenants as usize,
                DEFAULT_TENANT_CONNECTIONS as usize,
                tenants as usize,
                acquire_timeout,
            ),
            connect,
            registry: Arc::new(tenant::Registry::default()),
        })
    }

    /// Sets how many connections one association may use at once (default
    /// [`DEFAULT_TENANT_CONNECTIONS`]); call before the first tenant transaction.
    pub fn with_tenant_connections(self, max_connections: u32) -> Self {
        let in_use = self.tenants.in_use();
        self.with_tenant_caps(max_connections, in_use as u32)
    }

    /// Sets how many connections one association may use at once, and how many all may use
    /// at once (by default every tenant connection; the others stay open, keyed to their
    /// associations, while the cap holds); call before the first tenant transaction.
    pub fn with_tenant_caps(mut self, per_association: u32, in_use: u32) -> Self {
        self.tenants = self
            .tenants
            .with_caps(per_association.max(1) as usize, in_use.max(1) as usize);
        self
    }

    pub fn pool(&self) -> &PgPool {
        &self.pool
    }

    /// PostgreSQL connections this handle holds open now (shared and tenant).
    pub fn open_connections(&self) -> usize {
        self.pool.size() as usize + self.tenants.open_connections()
    }

    /// The tenant connections' state, for metrics.
    pub fn tenant_connections(&self) -> TenantConnStats {
        self.tenants.stats()
    }

    pub async fn close(&self) {
        self.tenants.close().await;
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

    /// Begins a transaction on a connection keyed to the tenant: its role (so PostgreSQL
    /// refuses anything outside the tenant's schema and the `core` tables it may use) and its
    /// schema as `search_path`. The names come from the registry, never from input.
    #[tracing::instrument(name = "db.tenant_tx", skip_all, fields(association = %tenant.slug))]
    pub async fn tenant_tx(&self, tenant: &Tenant) -> DbResult<Tx> {
        Tx::begin_tenant(Arc::clone(&self.tenants), tenant.clone(), "BEGIN").await
    }

    /// A read-only transaction in the tenant's schema: one snapshot for several reads.
    /// PostgreSQL itself refuses any write in it.
    #[tracing::instrument(name = "db.tenant_snapshot", skip_all, fields(association = %tenant.slug))]
    pub async fn tenant_snapshot(&self, tenant: &Tenant) -> DbResult<Tx> {
        Tx::begin_tenant(Arc::clone(&self.tenants), tenant.clone(), "BEGIN READ ONLY").await
    }

    /// Begins a transaction on the shared pool (accounts, sessions, the registry).
    pub async fn core_tx(&self) -> DbResult<Tx> {
        Tx::begin(self.pool.clone()).await
    }

    /// A connection keyed to the tenant, outside any transaction, for reads of one statement
    /// each (badges, the home page) that need no snapshot shared between statements: it saves
    /// the transaction's two round trips.
    pub async fn tenant_read(&self, tenant: &Tenant) -> DbResult<TenantConn> {
        self.tenants.acquire(tenant).await
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
        accounts::fill_search_keys(&self.pool).await?;
        self.registry.invalidate();
        // Search documents for what was written before search existed, once per association.
        for tenant in self.tenants().await? {
            loop {
                let mut tx = self.tenant_tx(&tenant).await?;
                let written = search::backfill(&mut tx, 500).await?;
                tx.commit().await?;
                if written == 0 {
                    break;
                }
            }
        }
        // Requests after a migration load the registry afresh.
        self.registry.invalidate();
        Ok(report)
    }

    /// Creates an association and its schema, fully migrated, in one transaction.
    pub async fn create_association(&self, new: &NewAssociation) -> DbResult<Tenant> {
        let tenant = associations::create(&self.connect, new).await?;
        self.registry.invalidate();
        Ok(tenant)
    }

    pub async fn list_associations(&self) -> DbResult<Vec<AssociationRow>> {
        associations::list(&self.pool).await
    }
}
