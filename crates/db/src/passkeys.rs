//! Passkeys (WebAuthn credentials) and the ceremonies that register and use them (in `core`:
//! a person's passkeys span associations). The credential is stored as webauthn-rs serialises
//! it; this module does not look inside.

use crate::DbResult;
use chrono::{DateTime, Utc};
use musubi_types::CeremonyKind;
use musubi_types::PersonId;
use serde_json::Value;
use sqlx::PgPool;
use uuid::Uuid;

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct PasskeyRow {
    /// The credential id, as the authenticator chose it.
    pub id: Vec<u8>,
    pub user_id: PersonId,
    pub name: String,
    pub credential: Value,
    pub created_at: DateTime<Utc>,
    pub last_used_at: Option<DateTime<Utc>>,
}

const PASSKEY_COLUMNS: &str = "id, user_id, name, credential, created_at, last_used_at";

/// A person's passkeys, oldest first.
#[tracing::instrument(name = "db.passkeys_of", skip_all)]
pub async fn passkeys_of(pool: &PgPool, user_id: PersonId) -> DbResult<Vec<PasskeyRow>> {
    Ok(sqlx::query_as(&format!(
        "SELECT {PASSKEY_COLUMNS} FROM core.passkeys WHERE user_id = $1 ORDER BY created_at, id"
    ))
    .bind(user_id)
    .fetch_all(pool)
    .await?)
}

/// One passkey of one person; another person's credential id is not found.
#[tracing::instrument(name = "db.passkey_of", skip_all)]
pub async fn passkey_of(
    pool: &PgPool,
    user_id: PersonId,
    id: &[u8],
) -> DbResult<Option<PasskeyRow>> {
    Ok(sqlx::query_as(&format!(
        "SELECT {PASSKEY_COLUMNS} FROM core.passkeys WHERE id = $1 AND user_id = $2"
    ))
    .bind(id)
    .bind(user_id)
    .fetch_optional(pool)
    .await?)
}

/// Stores a new passkey. A credential id registered before (to anyone) is a `Conflict`.
pub async fn insert_passkey(
    pool: &PgPool,
    id: &[u8],
    user_id: PersonId,
    name: &str,
    credential: &Value,
) -> DbResult<PasskeyRow> {
    Ok(sqlx::query_as(&format!(
        "INSERT INTO core.passkeys (id, user_id, name, credential) VALUES ($1, $2, $3, $4) \
         RETURNING {PASSKEY_COLUMNS}"
    ))
    .bind(id)
    .bind(user_id)
    .bind(name)
    .bind(credential)
    .fetch_one(pool)
    .await?)
}

/// Records a sign-in with a passkey, and its updated credential (counter, backup state) if
/// it changed.
pub async fn record_passkey_use(
    pool: &PgPool,
    user_id: PersonId,
    id: &[u8],
    credential: Option<&Value>,
) -> DbResult<()> {
    sqlx::query(
        "UPDATE core.passkeys SET last_used_at = now(), credential = coalesce($3, credential) \
         WHERE id = $1 AND user_id = $2",
    )
    .bind(id)
    .bind(user_id)
    .bind(credential)
    .execute(pool)
    .await?;
    Ok(())
}

/// Deletes one of a person's passkeys; false if they have none with that id.
pub async fn delete_passkey(pool: &PgPool, user_id: PersonId, id: &[u8]) -> DbResult<bool> {
    let r = sqlx::query("DELETE FROM core.passkeys WHERE id = $1 AND user_id = $2")
        .bind(id)
        .bind(user_id)
        .execute(pool)
        .await?;
    Ok(r.rows_affected() == 1)
}

/// A ceremony between its two steps.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct CeremonyRow {
    pub kind: CeremonyKind,
    pub user_id: Option<PersonId>,
    pub state: Value,
    /// False once `expires_at` has passed.
    pub live: bool,
}

/// Stores the state of a started ceremony, and removes expired ones on the way (there is no
/// other clean-up: ceremonies are few and short-lived).
pub async fn insert_ceremony(
    pool: &PgPool,
    id: Uuid,
    kind: CeremonyKind,
    user_id: Option<PersonId>,
    state: &Value,
    expires_at: DateTime<Utc>,
) -> DbResult<()> {
    sqlx::query(
        "WITH expired AS (DELETE FROM core.webauthn_ceremonies WHERE expires_at <= now()) \
         INSERT INTO core.webauthn_ceremonies (id, kind, user_id, state, expires_at) \
         VALUES ($1, $2, $3, $4, $5)",
    )
    .bind(id)
    .bind(kind)
    .bind(user_id)
    .bind(state)
    .bind(expires_at)
    .execute(pool)
    .await?;
    Ok(())
}

/// Takes a ceremony out: it is deleted whatever its kind or age, so each can be tried once.
/// Of two replicas finishing the same ceremony at once, exactly one gets it.
pub async fn take_ceremony(pool: &PgPool, id: Uuid) -> DbResult<Option<CeremonyRow>> {
    Ok(sqlx::query_as(
        "DELETE FROM core.webauthn_ceremonies WHERE id = $1 \
         RETURNING kind, user_id, state, expires_at > now() AS live",
    )
    .bind(id)
    .fetch_optional(pool)
    .await?)
}
