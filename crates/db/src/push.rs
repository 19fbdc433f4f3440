//! Web push subscriptions and the deployment's VAPID key (migration `core/0014_push.sql`).
//! Callers check what is stored (endpoint allow-list, key sizes) and who may change what; these
//! functions only read and write.

use crate::DbResult;
use chrono::{DateTime, Utc};
use musubi_types::PersonId;
use sqlx::{PgConnection, PgPool};
use uuid::Uuid;

/// One browser's subscription.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct SubscriptionRow {
    pub id: Uuid,
    pub user_id: PersonId,
    pub endpoint: String,
    pub p256dh: Vec<u8>,
    pub auth: Vec<u8>,
    pub user_agent: String,
    pub created_at: DateTime<Utc>,
    pub last_success_at: Option<DateTime<Utc>>,
    pub failures: i32,
}

const COLUMNS: &str =
    "id, user_id, endpoint, p256dh, auth, user_agent, created_at, last_success_at, failures";

/// A subscription to keep.
#[derive(Debug, Clone)]
pub struct NewSubscription<'a> {
    pub user: PersonId,
    pub endpoint: &'a str,
    pub p256dh: &'a [u8],
    pub auth: &'a [u8],
    pub user_agent: &'a str,
}

/// Keeps a subscription, or renews the one with the same endpoint: a browser's subscription
/// belongs to whoever subscribed it last, with its latest keys. Returns its id.
pub async fn upsert(
    conn: &mut PgConnection,
    new: &NewSubscription<'_>,
    now: DateTime<Utc>,
) -> DbResult<Uuid> {
    Ok(sqlx::query_scalar(
        "INSERT INTO core.push_subscriptions \
            (id, user_id, endpoint, p256dh, auth, user_agent, created_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7) \
         ON CONFLICT (endpoint) DO UPDATE SET user_id = $2, p256dh = $4, auth = $5, \
            user_agent = $6, failures = 0, \
            created_at = CASE WHEN core.push_subscriptions.user_id = $2 \
                              THEN core.push_subscriptions.created_at ELSE $7 END \
         RETURNING id",
    )
    .bind(Uuid::now_v7())
    .bind(new.user)
    .bind(new.endpoint)
    .bind(new.p256dh)
    .bind(new.auth)
    .bind(new.user_agent)
    .bind(now)
    .fetch_one(conn)
    .await?)
}

/// Keeps only the person's `keep` newest subscriptions; returns how many older ones went.
pub async fn trim(conn: &mut PgConnection, user: PersonId, keep: i64) -> DbResult<u64> {
    Ok(sqlx::query(
        "DELETE FROM core.push_subscriptions WHERE user_id = $1 AND id NOT IN \
            (SELECT id FROM core.push_subscriptions WHERE user_id = $1 \
             ORDER BY created_at DESC, id DESC LIMIT $2)",
    )
    .bind(user)
    .bind(keep)
    .execute(conn)
    .await?
    .rows_affected())
}

/// The person's subscriptions, newest first.
pub async fn list(conn: &mut PgConnection, user: PersonId) -> DbResult<Vec<SubscriptionRow>> {
    Ok(sqlx::query_as(&format!(
        "SELECT {COLUMNS} FROM core.push_subscriptions WHERE user_id = $1 \
         ORDER BY created_at DESC, id DESC"
    ))
    .bind(user)
    .fetch_all(conn)
    .await?)
}

pub async fn get(pool: &PgPool, id: Uuid) -> DbResult<Option<SubscriptionRow>> {
    Ok(sqlx::query_as(&format!(
        "SELECT {COLUMNS} FROM core.push_subscriptions WHERE id = $1"
    ))
    .bind(id)
    .fetch_optional(pool)
    .await?)
}

/// Removes the person's subscription with this endpoint; `false` when they have none (someone
/// else's endpoint is left alone).
pub async fn delete_for_user(
    conn: &mut PgConnection,
    user: PersonId,
    endpoint: &str,
) -> DbResult<bool> {
    Ok(
        sqlx::query("DELETE FROM core.push_subscriptions WHERE user_id = $1 AND endpoint = $2")
            .bind(user)
            .bind(endpoint)
            .execute(conn)
            .await?
            .rows_affected()
            == 1,
    )
}

/// Removes the person's subscription `id`; `false` when it is not theirs or gone.
pub async fn delete_id_for_user(
    conn: &mut PgConnection,
    user: PersonId,
    id: Uuid,
) -> DbResult<bool> {
    Ok(
        sqlx::query("DELETE FROM core.push_subscriptions WHERE user_id = $1 AND id = $2")
            .bind(user)
            .bind(id)
            .execute(conn)
            .await?
            .rows_affected()
            == 1,
    )
}

/// Removes the subscription with this endpoint, whoever it belongs to: the push service said
/// it no longer exists (404/410).
pub async fn delete_endpoint(pool: &PgPool, endpoint: &str) -> DbResult<bool> {
    Ok(
        sqlx::query("DELETE FROM core.push_subscriptions WHERE endpoint = $1")
            .bind(endpoint)
            .execute(pool)
            .await?
            .rows_affected()
            == 1,
    )
}

/// A delivery went through.
pub async fn mark_success(pool: &PgPool, id: Uuid, now: DateTime<Utc>) -> DbResult<()> {
    sqlx::query(
        "UPDATE core.push_subscriptions SET last_success_at = $2, failures = 0 WHERE id = $1",
    )
    .bind(id)
    .bind(now)
    .execute(pool)
    .await?;
    Ok(())
}

/// A delivery failed; returns the failures since the last success (0 when the subscription is
/// gone).
pub async fn mark_failure(pool: &PgPool, id: Uuid) -> DbResult<i32> {
    Ok(sqlx::query_scalar(
        "UPDATE core.push_subscriptions SET failures = failures + 1 WHERE id = $1 \
         RETURNING failures",
    )
    .bind(id)
    .fetch_optional(pool)
    .await?
    .unwrap_or(0))
}

/// Enqueues one job of `kind` per subscription of `user`, each with the payload
/// `{"subscription": <id>, "message": message}`; returns how many. Works on a tenant
/// connection too (its role may insert jobs and see whose subscriptions are whose), so that a
/// write and the pushes it causes commit together.
pub async fn enqueue_for_user(
    conn: &mut PgConnection,
    kind: &str,
    user: PersonId,
    message: &serde_json::Value,
    max_attempts: i32,
    now: DateTime<Utc>,
) -> DbResult<u64> {
    Ok(sqlx::query(
        "INSERT INTO core.jobs (kind, payload, run_at, max_attempts, created_at) \
         SELECT $1, jsonb_build_object('subscription', s.id, 'message', $3::jsonb), $5, $4, $5 \
         FROM core.push_subscriptions s WHERE s.user_id = $2",
    )
    .bind(kind)
    .bind(user)
    .bind(message)
    .bind(max_attempts)
    .bind(now)
    .execute(conn)
    .await?
    .rows_affected())
}

/// The deployment's VAPID private key: the stored one, or `generated` stored now when there is
/// none yet (whichever replica comes first wins; every replica then reads the same).
pub async fn vapid_key_or_insert(pool: &PgPool, generated: &[u8]) -> DbResult<Vec<u8>> {
    sqlx::query(
        "INSERT INTO core.vapid_keys (id, private_key) VALUES (true, $1) ON CONFLICT DO NOTHING",
    )
    .bind(generated)
    .execute(pool)
    .await?;
    Ok(
        sqlx::query_scalar("SELECT private_key FROM core.vapid_keys WHERE id")
            .fetch_one(pool)
            .await?,
    )
}

/// Whether the person may still be told of anything (an active account).
pub async fn user_active(pool: &PgPool, user: PersonId) -> DbResult<bool> {
    Ok(
        sqlx::query_scalar("SELECT status = 'active' FROM core.users WHERE id = $1")
            .bind(user)
            .fetch_optional(pool)
            .await?
            .unwrap_or(false),
    )
}
