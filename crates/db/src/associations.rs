//! The association registry rows and each association's own profile.

use crate::migrate::{apply_tenant, MIGRATION_LOCK};
use crate::{DbResult, Tenant};
use chrono::{DateTime, Utc};
use musubi_types::AssociationId;
use musubi_types::ReceiptMode;
use sqlx::Executor as _;
use sqlx::{Connection as _, PgConnection, PgPool};

#[derive(Debug, Clone)]
pub struct NewAssociation {
    pub slug: String,
    pub name: String,
    pub area: String,
    pub description: String,
}

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct AssociationRow {
    pub id: AssociationId,
    pub slug: String,
    pub name: String,
    pub schema_name: String,
    pub created_at: DateTime<Utc>,
}

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct ProfileRow {
    pub area: String,
    pub description: String,
    pub updated_at: DateTime<Utc>,
}

/// Registry row, schema and migrations in one transaction: a failure leaves nothing behind.
#[tracing::instrument(name = "db.create_association", skip_all, fields(slug = %new.slug))]
pub(crate) async fn create(
    connect: &sqlx::postgres::PgConnectOptions,
    new: &NewAssociation,
) -> DbResult<Tenant> {
    // The login role's own connection: the shared pool's role may not create schemas or roles.
    let mut conn = PgConnection::connect_with(connect).await?;
    let result = create_on(&mut conn, new).await;
    let _ = conn.close().await;
    result
}

async fn create_on(conn: &mut PgConnection, new: &NewAssociation) -> DbResult<Tenant> {
    let id = AssociationId::generate();
    let schema = format!("assoc_{}", id.uuid().simple());
    let mut tx = conn.begin().await?;
    sqlx::query("SELECT pg_advisory_xact_lock($1)")
        .bind(MIGRATION_LOCK)
        .execute(&mut *tx)
        .await?;
    sqlx::query(
        "INSERT INTO core.associations (id, slug, name, schema_name) VALUES ($1, $2, $3, $4)",
    )
    .bind(id)
    .bind(&new.slug)
    .bind(&new.name)
    .bind(&schema)
    .execute(&mut *tx)
    .await?;
    (&mut *tx)
        .execute(format!("CREATE SCHEMA {}", crate::tenant::quote_schema(&schema)).as_str())
        .await?;
    apply_tenant(&mut tx, &schema).await?;
    crate::simple(
        &mut tx,
        &format!(
            "SET LOCAL ROLE {}",
            crate::roles::quote_role(&crate::roles::tenant_role(&schema))
        ),
    )
    .await?;
    write_profile(&mut tx, &new.area, &new.description).await?;
    tx.commit().await?;
    Ok(Tenant::new(
        id,
        new.slug.clone(),
        new.name.clone(),
        schema,
        crate::plans::PlanSlot::of_id(id),
    ))
}

pub(crate) async fn list(pool: &PgPool) -> DbResult<Vec<AssociationRow>> {
    Ok(sqlx::query_as(
        "SELECT id, slug, name, schema_name, created_at FROM core.associations ORDER BY name, slug",
    )
    .fetch_all(pool)
    .await?)
}

/// Reads the profile of the tenant whose transaction `conn` is in.
#[tracing::instrument(name = "db.read_profile", skip_all)]
pub async fn read_profile(conn: &mut PgConnection) -> DbResult<ProfileRow> {
    Ok(
        sqlx::query_as("SELECT area, description, updated_at FROM profile")
            .fetch_one(conn)
            .await?,
    )
}

#[tracing::instrument(name = "db.write_profile", skip_all)]
pub async fn write_profile(conn: &mut PgConnection, area: &str, description: &str) -> DbResult<()> {
    sqlx::query("UPDATE profile SET area = $1, description = $2, updated_at = now()")
        .bind(area)
        .bind(description)
        .execute(conn)
        .await?;
    Ok(())
}

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct SettingsRow {
    pub require_second_factor: bool,
    pub session_idle_minutes: i32,
    pub session_absolute_hours: i32,
    pub audit_retention_years: i32,
    /// The read-receipt mode of groups that do not choose their own.
    pub receipt_mode: ReceiptMode,
    /// Whether notification mails may name the (non-patient) groups.
    pub mail_group_names: bool,
    /// Minutes a 至急 post waits for an acknowledgement before asking again.
    pub urgent_ack_minutes: i32,
    pub updated_at: DateTime<Utc>,
    /// Whether its members may exchange messages with other associations: kept in
    /// `core.message_policies`, filled in by the caller (`groups::messages`).
    #[sqlx(default)]
    pub cross_association_messages: bool,
}

/// Reads the settings of the tenant whose transaction `conn` is in.
#[tracing::instrument(name = "db.read_settings", skip_all)]
pub async fn read_settings(conn: &mut PgConnection) -> DbResult<SettingsRow> {
    Ok(sqlx::query_as(
        "SELECT require_second_factor, session_idle_minutes, session_absolute_hours, \
                audit_retention_years, receipt_mode, mail_group_names, urgent_ack_minutes, \
                updated_at FROM settings",
    )
    .fetch_one(conn)
    .await?)
}

#[tracing::instrument(name = "db.write_settings", skip_all)]
#[allow(clippy::too_many_arguments)] // one per setting
pub async fn write_settings(
    conn: &mut PgConnection,
    require_second_factor: bool,
    session_idle_minutes: i32,
    session_absolute_hours: i32,
    audit_retention_years: i32,
    receipt_mode: Option<ReceiptMode>,
    mail_group_names: Option<bool>,
    urgent_ack_minutes: Option<i32>,
) -> DbResult<()> {
    sqlx::query(
        "UPDATE settings SET require_second_factor = $1, session_idle_minutes = $2, \
             session_absolute_hours = $3, audit_retention_years = $4, \
             receipt_mode = COALESCE($5, receipt_mode), \
             mail_group_names = COALESCE($6, mail_group_names), \
             urgent_ack_minutes = COALESCE($7, urgent_ack_minutes), updated_at = now()",
    )
    .bind(require_second_factor)
    .bind(session_idle_minutes)
    .bind(session_absolute_hours)
    .bind(audit_retention_years)
    .bind(receipt_mode)
    .bind(mail_group_names)
    .bind(urgent_ack_minutes)
    .execute(conn)
    .await?;
    Ok(())
}

/// Records (or, with `neighbours` false, ends) the agreement of two associations to share
/// their directories, both directions at once. Returns whether anything changed.
pub async fn set_neighbours(
    conn: &mut PgConnection,
    a: AssociationId,
    b: AssociationId,
    neighbours: bool,
) -> DbResult<bool> {
    let changed = if neighbours {
        sqlx::query(
            "INSERT INTO core.association_neighbours (association_id, neighbour_id) \
             VALUES ($1, $2), ($2, $1) ON CONFLICT DO NOTHING",
        )
    } else {
        sqlx::query(
            "DELETE FROM core.association_neighbours \
             WHERE (association_id, neighbour_id) IN (($1, $2), ($2, $1))",
        )
    }
    .bind(a)
    .bind(b)
    .execute(conn)
    .await?
    .rows_affected();
    Ok(changed > 0)
}

/// The associations that share their directory with `id`, by name.
pub async fn neighbours_of(
    conn: &mut PgConnection,
    id: AssociationId,
) -> DbResult<Vec<AssociationRow>> {
    Ok(sqlx::query_as(
        "SELECT a.id, a.slug, a.name, a.schema_name, a.created_at \
         FROM core.association_neighbours n JOIN core.associations a ON a.id = n.neighbour_id \
         WHERE n.association_id = $1 ORDER BY a.name, a.slug",
    )
    .bind(id)
    .fetch_all(conn)
    .await?)
}
