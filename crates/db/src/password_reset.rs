//! Password-reset links (in `core`). Only the SHA-256 of a link's token is stored.

use crate::DbResult;
use chrono::{DateTime, Utc};
use musubi_types::PersonId;
use sqlx::{PgConnection, PgPool};

pub async fn insert(
    pool: &PgPool,
    token_hash: &[u8],
    user_id: PersonId,
    expires_at: DateTime<Utc>,
) -> DbResult<()> {
    sqlx::query(
        "INSERT INTO core.password_resets (token_hash, user_id, expires_at) VALUES ($1, $2, $3)",
    )
    .bind(token_hash)
    .bind(user_id)
    .bind(expires_at)
    .execute(pool)
    .await?;
    Ok(())
}

/// The account an unused, unexpired reset token belongs to (active accounts only).
#[tracing::instrument(name = "db.password_reset_user", skip_all)]
pub async fn user_of_pending(pool: &PgPool, token_hash: &[u8]) -> DbResult<Option<PersonId>> {
    Ok(sqlx::query_scalar(
        "SELECT r.user_id FROM core.password_resets r JOIN core.users u ON u.id = r.user_id \
         WHERE r.token_hash = $1 AND r.used_at IS NULL AND r.expires_at > now() \
           AND u.status = 'active'",
    )
    .bind(token_hash)
    .fetch_optional(pool)
    .await?)
}

/// Uses the token up, if it is still unused and unexpired; returns whose it was. Exactly one
/// use wins, however many race.
pub async fn claim(conn: &mut PgConnection, token_hash: &[u8]) -> DbResult<Option<PersonId>> {
    Ok(sqlx::query_scalar(
        "UPDATE core.password_resets SET used_at = now() \
         WHERE token_hash = $1 AND used_at IS NULL AND expires_at > now() \
         RETURNING user_id",
    )
    .bind(token_hash)
    .fetch_optional(conn)
    .await?)
}

/// Ends every other outstanding link of the account (after a reset, older mails are void).
pub async fn void_all(conn: &mut PgConnection, user_id: PersonId) -> DbResult<u64> {
    let r = sqlx::query(
        "UPDATE core.password_resets SET used_at = now() WHERE user_id = $1 AND used_at IS NULL",
    )
    .bind(user_id)
    .execute(conn)
    .await?;
    Ok(r.rows_affected())
}

/// Stores a new password hash.
pub async fn set_password(conn: &mut PgConnection, user_id: PersonId, hash: &str) -> DbResult<()> {
    sqlx::query(
        "UPDATE core.users SET password_hash = $2, password_changed_at = now(), updated_at = now() \
         WHERE id = $1",
    )
    .bind(user_id)
    .bind(hash)
    .execute(conn)
    .await?;
    Ok(())
}
