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
    /// Uploaded for a comment not posted yet (seen by its uploader only).
    pub pending: bool,
    pub width: Option<i32>,
    pub height: Option<i32>,
    /// `<object_key>.p` (preview) and `.t` (thumbnail) exist.
    pub has_preview: bool,
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
    pub pending: bool,
    pub width: Option<i32>,
    pub height: Option<i32>,
    pub has_preview: bool,
    pub text_content: Option<&'a str>,
}

const COLUMNS: &str = "f.id, f.group_id, f.topic_id, f.comment_id, f.kind, f.name, \
     f.content_type, f.size_bytes, f.object_key, f.uploaded_by, \
     (SELECT u.name FROM core.users u WHERE u.id = f.uploaded_by) AS uploader_name, f.uploaded_at, \
     f.pending, f.width, f.height, f.has_preview";

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
                            object_key, uploaded_by, pending, width, height, has_preview, \
                            text_content) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14)",
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
    .bind(f.pending)
    .bind(f.width)
    .bind(f.height)
    .bind(f.has_preview)
    .bind(f.text_content)
    .execute(&mut *conn)
    .await?;
    sqlx::query("DELETE FROM file_uploads WHERE object_key = $1")
        .bind(f.object_key)
        .execute(&mut *conn)
        .await?;
    if !f.pending {
        crate::search::put_file(
            conn,
            f.id,
            f.group_id,
            None,
            f.uploaded_by,
            chrono::Utc::now(),
            f.name,
            f.text_content,
        )
        .await?;
    }
    Ok(())
}

/// A group's shared files (not attachments, not deleted), newest first; `kind` filters when
/// given.
pub async fn of_group(
    conn: &mut PgConnection,
    group: GroupId,
    kind: Option<&str>,
    limit: i64,
) -> DbResult<Vec<FileRow>> {
    Ok(sqlx::query_as(&format!(
        "SELECT {COLUMNS} FROM files f \
         WHERE f.group_id = $1 AND f.deleted_at IS NULL AND f.topic_id IS NULL \
           AND NOT f.pending \
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

/// Makes `ids` (pending uploads of `by` in `group`) the attachments of a comment. Returns how
/// many were; fewer than asked means some were not `by`'s pending uploads in that group.
pub async fn attach(
    conn: &mut PgConnection,
    ids: &[Uuid],
    by: PersonId,
    group: GroupId,
    topic: Uuid,
    comment: Uuid,
) -> DbResult<u64> {
    let attached: Vec<(Uuid, DateTime<Utc>, String, Option<String>)> = sqlx::query_as(
        "UPDATE files SET pending = false, topic_id = $4, comment_id = $5 \
         WHERE id = ANY($1) AND uploaded_by = $2 AND group_id = $3 AND pending \
           AND deleted_at IS NULL \
         RETURNING id, uploaded_at, name, text_content",
    )
    .bind(ids)
    .bind(by)
    .bind(group)
    .bind(topic)
    .bind(comment)
    .fetch_all(&mut *conn)
    .await?;
    // Found from now on, by whoever sees the topic.
    for (id, at, name, text) in &attached {
        crate::search::put_file(
            conn,
            *id,
            group,
            Some(topic),
            by,
            *at,
            name,
            text.as_deref(),
        )
        .await?;
    }
    Ok(attached.len() as u64)
}

/// The attachments of `comments` (not deleted), in upload order.
pub async fn of_comments(
    conn: &mut PgConnection,
    slot: crate::plans::PlanSlot,
    comments: &[Uuid],
) -> DbResult<Vec<FileRow>> {
    if comments.is_empty() {
        return Ok(Vec::new());
    }
    Ok(sqlx::query_as(&slot.sql(&format!(
        "SELECT {COLUMNS} FROM files f \
         WHERE f.comment_id = ANY($1) AND f.deleted_at IS NULL \
         ORDER BY f.uploaded_at, f.id"
    )))
    .bind(comments)
    .fetch_all(conn)
    .await?)
}

/// How many pending uploads `by` has (a bound against uploads never posted).
pub async fn pending_count(conn: &mut PgConnection, by: PersonId) -> DbResult<i64> {
    Ok(sqlx::query_scalar(
        "SELECT count(*) FROM files WHERE uploaded_by = $1 AND pending AND deleted_at IS NULL",
    )
    .bind(by)
    .fetch_one(conn)
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
    .execute(&mut *conn)
    .await?;
    crate::search::remove(conn, id).await?;
    Ok(r.rows_affected() == 1)
}

/// Files shown (not deleted, not pending) and their bytes.
pub async fn shown_count(conn: &mut PgConnection) -> DbResult<i64> {
    Ok(
        sqlx::query_scalar("SELECT count(*) FROM files WHERE deleted_at IS NULL AND NOT pending")
            .fetch_one(conn)
            .await?,
    )
}

/// Bytes the association keeps (deleted files count until their object is removed).
pub async fn used_bytes(conn: &mut PgConnection) -> DbResult<i64> {
    Ok(
        sqlx::query_scalar("SELECT COALESCE(sum(size_bytes), 0)::bigint FROM files")
            .fetch_one(conn)
            .await?,
    )
}

/// Objects to remove: uploads whose row never came (older than `grace`), files deleted longer
/// than `retention` ago, and pending uploads never posted (older than `abandoned`). At most
/// `limit` of each kind.
pub async fn to_sweep(
    conn: &mut PgConnection,
    grace: chrono::Duration,
    retention: chrono::Duration,
    abandoned: chrono::Duration,
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
        "(SELECT id, object_key FROM files WHERE deleted_at < now() - $1 \
          ORDER BY deleted_at LIMIT $2) \
         UNION ALL \
         (SELECT id, object_key FROM files \
          WHERE pending AND deleted_at IS NULL AND uploaded_at < now() - $3 \
          ORDER BY uploaded_at LIMIT $2)",
    )
    .bind(retention)
    .bind(limit)
    .bind(abandoned)
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

/// Forgets a deleted (or abandoned pending) file whose object was removed.
pub async fn purge(conn: &mut PgConnection, id: Uuid) -> DbResult<()> {
    sqlx::query("DELETE FROM files WHERE id = $1 AND (deleted_at IS NOT NULL OR pending)")
        .bind(id)
        .execute(conn)
        .await?;
    Ok(())
}
