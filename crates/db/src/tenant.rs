//! The tenant registry: which associations exist, which schema each lives in, and whether that
//! schema is current. Cached briefly so routing costs no query on the hot path.

use crate::migrate::TENANT_VERSION;
use crate::plans::PlanSlot;
use crate::{DbError, DbResult};
use musubi_types::AssociationId;
use sqlx::PgPool;
use std::collections::HashMap;
use std::sync::RwLock;
use std::time::{Duration, Instant};

/// Resolved association. Only the registry constructs it, so its schema name never comes
/// from request input.
#[derive(Debug, Clone)]
pub struct Tenant {
    pub id: AssociationId,
    pub slug: String,
    pub name: String,
    schema: String,
    plan_slot: PlanSlot,
}

/// The same association, whichever slot it was given.
impl PartialEq for Tenant {
    fn eq(&self, other: &Self) -> bool {
        (self.id, &self.slug, &self.name, &self.schema)
            == (other.id, &other.slug, &other.name, &other.schema)
    }
}
impl Eq for Tenant {}

impl Tenant {
    pub(crate) fn new(
        id: AssociationId,
        slug: String,
        name: String,
        schema: String,
        plan_slot: PlanSlot,
    ) -> Self {
        Self {
            id,
            slug,
            name,
            schema,
            plan_slot,
        }
    }

    /// The slot of this association's costly statements (see [`crate::plans`]).
    pub fn plan_slot(&self) -> PlanSlot {
        self.plan_slot
    }

    /// The schema name, for diagnostics and tests; queries go through [`crate::Db::tenant_tx`].
    pub fn schema_name(&self) -> &str {
        &self.schema
    }
}

/// Schema names are generated (`assoc_<hex>`) and checked by the database; quoting is belt
/// and braces.
pub(crate) fn quote_schema(schema: &str) -> String {
    format!("\"{}\"", schema.replace('"', "\"\""))
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TenantError {
    #[error("no association is registered as {0:?}")]
    NotFound(String),
    #[error("association {slug:?} has schema version {have} but this server needs {need}; run `musubi migrate`")]
    Outdated { slug: String, have: i32, need: i32 },
    #[error("the core schema is behind this server; run `musubi migrate`")]
    CoreOutdated,
}

#[derive(Clone)]
struct Entry {
    tenant: Tenant,
    version: i32,
}

struct Snapshot {
    loaded_at: Instant,
    by_slug: HashMap<String, Entry>,
}

/// How long a loaded registry is trusted; another process may create or migrate associations.
const FRESH_FOR: Duration = Duration::from_secs(5);
/// Unknown slugs reload at most this often, so garbage input cannot hammer the database.
const MISS_RELOAD_EVERY: Duration = Duration::from_secs(1);
/// While one request reloads, the others keep using an entry this old rather than wait.
const STALE_SERVE_FOR: Duration = Duration::from_secs(30);

#[derive(Default)]
pub(crate) struct Registry {
    snapshot: RwLock<Option<Snapshot>>,
    /// One reload at a time: under load, every request that found the snapshot expired used to
    /// reload it (a query per association each), every five seconds.
    reloading: tokio::sync::Mutex<()>,
}

impl Registry {
    pub(crate) fn invalidate(&self) {
        if let Ok(mut s) = self.snapshot.write() {
            *s = None;
        }
    }

    fn lookup(&self, slug: &str) -> (Option<Entry>, Option<Duration>) {
        match self.snapshot.read() {
            Ok(guard) => match guard.as_ref() {
                Some(s) => (s.by_slug.get(slug).cloned(), Some(s.loaded_at.elapsed())),
                None => (None, None),
            },
            Err(_) => (None, None),
        }
    }

    async fn reload(&self, pool: &PgPool) -> DbResult<()> {
        let rows: Vec<(AssociationId, String, String, String, i32)> = sqlx::query_as(
            // In the order the associations were created (their ids are time-ordered): plan
            // slots follow it, so a new association leaves the others' slots as they were.
            "SELECT id, slug, name, schema_name, schema_version FROM core.associations \
             ORDER BY id",
        )
        .fetch_all(pool)
        .await?;
        let mut by_slug = HashMap::with_capacity(rows.len());
        for (ordinal, (id, slug, name, schema, version)) in rows.into_iter().enumerate() {
            let slot = PlanSlot::of_ordinal(ordinal);
            let tenant = Tenant::new(id, slug.clone(), name, schema, slot);
            by_slug.insert(slug, Entry { tenant, version });
        }
        if let Ok(mut s) = self.snapshot.write() {
            *s = Some(Snapshot {
                loaded_at: Instant::now(),
                by_slug,
            });
        }
        Ok(())
    }

    /// The entry after a reload, done by this request unless another is already at it: then
    /// a recent stale entry is used as it is, or the other reload is awaited.
    async fn refreshed(
        &self,
        pool: &PgPool,
        slug: &str,
        stale: Option<Entry>,
    ) -> DbResult<Option<Entry>> {
        if let Ok(_guard) = self.reloading.try_lock() {
            self.reload(pool).await?;
            return Ok(self.lookup(slug).0);
        }
        if stale.is_some() {
            return Ok(stale);
        }
        let _guard = self.reloading.lock().await;
        match self.lookup(slug) {
            // The other reload finished meanwhile.
            (entry, Some(age)) if age < MISS_RELOAD_EVERY => Ok(entry),
            // It failed, or the snapshot was invalidated again.
            _ => {
                self.reload(pool).await?;
                Ok(self.lookup(slug).0)
            }
        }
    }

    #[tracing::instrument(name = "db.resolve_tenant", skip(self, pool))]
    pub(crate) async fn resolve(&self, pool: &PgPool, slug: &str) -> DbResult<Tenant> {
        let (entry, age) = self.lookup(slug);
        let entry = match (entry, age) {
            (Some(e), Some(age)) if age < FRESH_FOR => Some(e),
            (None, Some(age)) if age < MISS_RELOAD_EVERY => None,
            (stale, age) => {
                let stale = stale.filter(|_| age.is_some_and(|a| a < STALE_SERVE_FOR));
                self.refreshed(pool, slug, stale).await?
            }
        };
        let Some(entry) = entry else {
            return Err(DbError::Tenant(TenantError::NotFound(slug.to_owned())));
        };
        if entry.version < TENANT_VERSION {
            return Err(DbError::Tenant(TenantError::Outdated {
                slug: slug.to_owned(),
                have: entry.version,
                need: TENANT_VERSION,
            }));
        }
        Ok(entry.tenant)
    }

    /// Every association whose schema is current, ordered by name.
    pub(crate) async fn all(&self, pool: &PgPool) -> DbResult<Vec<Tenant>> {
        let fresh = matches!(self.lookup("").1, Some(age) if age < FRESH_FOR);
        if !fresh {
            self.reload(pool).await?;
        }
        let guard = self
            .snapshot
            .read()
            .map_err(|_| DbError::Sqlx(sqlx::Error::PoolClosed))?;
        let mut out: Vec<Tenant> = guard
            .as_ref()
            .map(|s| {
                s.by_slug
                    .values()
                    .filter(|e| e.version >= TENANT_VERSION)
                    .map(|e| e.tenant.clone())
                    .collect()
            })
            .unwrap_or_default();
        out.sort_by(|a, b| a.name.cmp(&b.name).then_with(|| a.slug.cmp(&b.slug)));
        Ok(out)
    }
}
