//! Shared files' rows (migration `tenant/0007_files.sql`); their bytes are in the file store.

use crate::DbResult;
use chrono::{DateTime, Utc};
use musubi_types::{GroupId, PersonId};
use sqlx::PgConnection;
use uuid::Uuid;

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct FileRow {
    pub id: Uuid,
    pub group_id: GroupId,
    pub topic_id: Option<Uuid>,
    pub comment_id: Option<Uuid>,
    pub kind: String,
    pub name: String,
    pub content_type: String,
    pub size_bytes: i64,
    pub object_key: String,
    pub uploaded_by: PersonId,
    pub uploader_name: Option<String>,
    pub uploaded_at: DateTime<Utc>,
}

pub struct NewFile<'a> {
    pub id: Uuid,
    pub group_id: GroupId,
    pub kind: &'a str,
    pub name: &'a str,
    pub content_type: &'a str,
    pub size_bytes: i64,
    pub sha256: &'a [u8],
    pub object_key: &'a str,
    pub uploaded_by: PersonId,
}

const COLUMNS: &str = "f.id, f.group_id, f.topic_id, f.comment_id, f.kind, f.name, \
     f.content_type, f.size_bytes, f.object_key, f.uploaded_by, \
     (SELECT u.name FROM core.users u WHERE u.id = f.uploaded_by) AS uploader_name, f.uploaded_at";

/// Records that `key` is about to be written (committed on its own, before the write).
pub async fn begin_upload(conn: &mut PgConnection, key: &str) -> DbResult<()> {
    sqlx::query("INSERT INTO file_uploads (object_key) VALUES ($1)")
        .bind(key)
        .execute(conn)
        .await?;
    Ok(())
}

/// The file's row, and the end of its upload's intent, in the caller's transaction.
pub async fn insert(conn: &mut PgConnection, f: &NewFile<'_>) -> DbResult<()> {
    sqlx::query(
        "INSERT INTO files (id, group_id, kind, name, content_type, size_bytes, sha256, \
                            object_key, uploaded_by) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
    )
    .bind(f.id)
    .bind(f.group_id)
    .bind(f.kind)
    .bind(f.name)
    .bind(f.content_type)
    .bind(f.size_bytes)
    .bind(f.sha256)
    .bind(f.object_key)
    .bind(f.uploaded_by)
    .execute(&mut *conn)
    .await?;
    sqlx::query("DELETE FROM file_uploads WHERE object_key = $1")
        .bind(f.object_key)
        .execute(conn)
        .await?;
    Ok(())
}

/// A group's files (not deleted), newest first; `kind` filters when given.
pub async fn of_group(
    conn: &mut PgConnection,
    group: GroupId,
    kind: Option<&str>,
    limit: i64,
) -> DbResult<Vec<FileRow>> {
    Ok(sqlx::query_as(&format!(
        "SELECT {COLUMNS} FROM files f \
         WHERE f.group_id = $1 AND f.deleted_at IS NULL AND f.comment_id IS NULL \
           AND ($2::text IS NULL OR f.kind = $2) \
         ORDER BY f.uploaded_at DESC, f.id DESC LIMIT $3"
    ))
    .bind(group)
    .bind(kind)
    .bind(limit)
    .fetch_all(conn)
    .await?)
}

/// One file that is not deleted.
pub async fn by_id(conn: &mut PgConnection, id: Uuid) -> DbResult<Option<FileRow>> {
    Ok(sqlx::query_as(&format!(
        "SELECT {COLUMNS} FROM files f WHERE f.id = $1 AND f.deleted_at IS NULL"
    ))
    .bind(id)
    .fetch_optional(conn)
    .await?)
}

/// Hides a file; false if it was already gone.
pub async fn mark_deleted(conn: &mut PgConnection, id: Uuid, by: PersonId) -> DbResult<bool> {
    let r = sqlx::query(
        "UPDATE files SET deleted_at = now(), deleted_by = $2 \
         WHERE id = $1 AND deleted_at IS NULL",
    )
    .bind(id)
    .bind(by)
    .execute(conn)
    .await?;
    Ok(r.rows_affected() == 1)
}

/// Bytes the association keeps (deleted files count until their object is removed).
pub async fn used_bytes(conn: &mut PgConnection) -> DbResult<i64> {
    Ok(
        sqlx::query_scalar("SELECT COALESCE(sum(size_bytes), 0)::bigint FROM files")
            .fetch_one(conn)
            .await?,
    )
}

/// Objects to remove: uploads whose row never came (older than `grace`), and files deleted
/// longer than `retention` ago. At most `limit` of each.
pub async fn to_sweep(
    conn: &mut PgConnection,
    grace: chrono::Duration,
    retention: chrono::Duration,
    limit: i64,
) -> DbResult<(Vec<String>, Vec<(Uuid, String)>)> {
    let stale: Vec<String> = sqlx::query_scalar(
        "SELECT object_key FROM file_uploads WHERE started_at < now() - $1 \
         ORDER BY started_at LIMIT $2",
    )
    .bind(grace)
    .bind(limit)
    .fetch_all(&mut *conn)
    .await?;
    let deleted: Vec<(Uuid, String)> = sqlx::query_as(
        "SELECT id, object_key FROM files WHERE deleted_at < now() - $1 \
         ORDER BY deleted_at LIMIT $2",
    )
    .bind(retention)
    .bind(limit)
    .fetch_all(conn)
    .await?;
    Ok((stale, deleted))
}

/// Forgets an upload intent whose object was removed.
pub async fn end_upload(conn: &mut PgConnection, key: &str) -> DbResult<()> {
    sqlx::query("DELETE FROM file_uploads WHERE object_key = $1")
        .bind(key)
        .execute(conn)
        .await?;
    Ok(())
}

/// Forgets a deleted file whose object was removed.
pub async fn purge(conn: &mut PgConnection, id: Uuid) -> DbResult<()> {
    sqlx::query("DELETE FROM files WHERE id = $1 AND deleted_at IS NOT NULL")
        .bind(id)
        .execute(conn)
        .await?;
    Ok(())
}
