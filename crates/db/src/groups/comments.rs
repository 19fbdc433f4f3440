//! Comments: posting (numbered per topic), history, deletion marks, acknowledgements and who read what.

use super::*;
use musubi_types::PersonId;
use musubi_types::{CommentId, TopicId};

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct CommentRow {
    pub id: CommentId,
    pub topic_id: TopicId,
    pub seq: i32,
    pub author_id: PersonId,
    pub author_name: String,
    pub author_profession: Profession,
    pub body: String,
    pub important: bool,
    pub created_at: DateTime<Utc>,
    pub edited_at: Option<DateTime<Utc>>,
    pub version: i32,
    pub deleted_at: Option<DateTime<Utc>>,
}

const COMMENT_SELECT: &str = "SELECT c.id, c.topic_id, c.seq, c.author_id, u.name AS author_name, \
     u.profession AS author_profession, c.body, c.important, c.created_at, c.edited_at, c.version, \
     c.deleted_at FROM comments c JOIN core.users u ON u.id = c.author_id";

/// Appends a comment: numbers it after the topic's last and returns (comment, seq).
pub async fn insert_comment(
    conn: &mut PgConnection,
    topic_id: TopicId,
    group: &HostedGroup,
    author_id: PersonId,
    body: &str,
    important: bool,
) -> DbResult<(CommentId, i32, DateTime<Utc>)> {
    let group_id = group.id;
    let id = CommentId::generate();
    // The row lock on the topic serializes numbering within one topic only.
    let (seq, at): (i32, DateTime<Utc>) = sqlx::query_as(
        "UPDATE topics SET last_seq = last_seq + 1, last_comment_at = now() \
         WHERE id = $1 RETURNING last_seq, last_comment_at",
    )
    .bind(topic_id)
    .fetch_one(&mut *conn)
    .await?;
    sqlx::query(
        "INSERT INTO comments (id, topic_id, group_id, seq, author_id, body, important, created_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
    )
    .bind(id)
    .bind(topic_id)
    .bind(group_id)
    .bind(seq)
    .bind(author_id)
    .bind(body)
    .bind(important)
    .bind(at)
    .execute(&mut *conn)
    .await?;
    crate::search::put_comment(
        conn,
        id.into(),
        group_id,
        topic_id.into(),
        author_id,
        at,
        body,
    )
    .await?;
    Ok((id, seq, at))
}

/// The comments of a topic in order from `from_seq` on (at most `limit`, the latest ones).
pub async fn comments_of_topic(
    conn: &mut PgConnection,
    slot: PlanSlot,
    topic_id: TopicId,
    from_seq: i32,
    limit: i64,
) -> DbResult<Vec<CommentRow>> {
    Ok(sqlx::query_as(&slot.sql(&format!(
        "SELECT * FROM ({COMMENT_SELECT} WHERE c.topic_id = $1 AND c.seq >= $2 \
         ORDER BY c.seq DESC LIMIT $3) x ORDER BY seq"
    )))
    .bind(topic_id)
    .bind(from_seq)
    .bind(limit)
    .fetch_all(conn)
    .await?)
}

pub async fn comment(
    conn: &mut PgConnection,
    comment_id: CommentId,
) -> DbResult<Option<CommentRow>> {
    Ok(sqlx::query_as(&format!("{COMMENT_SELECT} WHERE c.id = $1"))
        .bind(comment_id)
        .fetch_optional(conn)
        .await?)
}

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct ReaderRow {
    pub comment_id: CommentId,
    pub user_id: PersonId,
    pub name: String,
    pub at: DateTime<Utc>,
}

/// How many read (or confirmed) one comment.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct ReaderCount {
    pub comment_id: CommentId,
    pub count: i64,
}

fn receipt_table(acknowledgements: bool) -> (&'static str, &'static str) {
    if acknowledgements {
        ("acknowledgements", "r.at")
    } else {
        ("footprints", "r.read_at")
    }
}

/// Footprints (or acknowledgements) on the comments `shown`: how many per comment, and the
/// first `preview` readers of each, oldest first, except on the comments in `full` (the
/// viewer's own, whose author is told who has not read them), whose readers all come.
///
/// A 40-member group where everyone reads everything has ~40 readers on every comment; loading
/// and naming them all made a re-opened topic cost three first opens. Taking the comments by
/// id (the caller has them) keeps the statement to the receipts' primary key: one generic plan,
/// where a range of the topic's comments was planned afresh on every call.
/// `name` is left empty: the caller knows the group's members already (see [`user_names`] for
/// the readers who have left), which saves a lookup per footprint.
pub async fn reader_preview_of_topic(
    conn: &mut PgConnection,
    slot: PlanSlot,
    shown: &[CommentId],
    full: &[CommentId],
    acknowledgements: bool,
    preview: i64,
) -> DbResult<(Vec<ReaderCount>, Vec<ReaderRow>)> {
    if shown.is_empty() {
        return Ok((Vec::new(), Vec::new()));
    }
    let (table, at) = receipt_table(acknowledgements);
    let rows: Vec<(CommentId, PersonId, DateTime<Utc>, i64, i64, bool)> =
        sqlx::query_as(&slot.sql(&format!(
            "SELECT * FROM (SELECT r.comment_id, r.user_id, {at}, \
                   row_number() OVER (PARTITION BY r.comment_id ORDER BY {at}, r.user_id) AS n, \
                   count(*) OVER (PARTITION BY r.comment_id), r.comment_id = ANY($2) AS all_readers \
                 FROM {table} r WHERE r.comment_id = ANY($1)) x WHERE n <= $3 OR all_readers"
        )))
        .bind(shown)
        .bind(full)
        .bind(preview.max(1))
        .fetch_all(conn)
        .await?;
    let mut counts: Vec<ReaderCount> = Vec::new();
    let mut readers = Vec::new();
    for (comment_id, user_id, at, n, total, full) in rows {
        if n == 1 {
            counts.push(ReaderCount {
                comment_id,
                count: total,
            });
        }
        if n <= preview || full {
            readers.push(ReaderRow {
                comment_id,
                user_id,
                name: String::new(),
                at,
            });
        }
    }
    readers.sort_by_key(|r| r.at);
    Ok((counts, readers))
}

/// Every reader (or confirmation) of one comment, oldest first, names left empty as in
/// [`reader_preview_of_topic`].
pub async fn readers_of_comment(
    conn: &mut PgConnection,
    comment_id: CommentId,
    acknowledgements: bool,
) -> DbResult<Vec<ReaderRow>> {
    let (table, at) = receipt_table(acknowledgements);
    Ok(sqlx::query_as(&format!(
        "SELECT r.comment_id, r.user_id, '' AS name, {at} AS at \
         FROM {table} r WHERE r.comment_id = $1 ORDER BY {at}, r.user_id"
    ))
    .bind(comment_id)
    .fetch_all(conn)
    .await?)
}

/// Every footprint (or confirmation) on a topic's comments, oldest first, names left empty
/// as in [`reader_preview_of_topic`]: for a patient's record.
pub async fn receipts_of_topic(
    conn: &mut PgConnection,
    topic_id: TopicId,
    acknowledgements: bool,
) -> DbResult<Vec<ReaderRow>> {
    let (table, at) = receipt_table(acknowledgements);
    Ok(sqlx::query_as(&format!(
        "SELECT r.comment_id, r.user_id, '' AS name, {at} AS at \
         FROM {table} r JOIN comments c ON c.id = r.comment_id \
         WHERE c.topic_id = $1 ORDER BY c.seq, {at}, r.user_id"
    ))
    .bind(topic_id)
    .fetch_all(conn)
    .await?)
}

/// Names of people by id (readers who are no longer in the group).
pub async fn user_names(
    conn: &mut PgConnection,
    ids: &[PersonId],
) -> DbResult<Vec<(PersonId, String)>> {
    Ok(
        sqlx::query_as("SELECT id, name FROM core.users WHERE id = ANY($1)")
            .bind(ids)
            .fetch_all(conn)
            .await?,
    )
}

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct VersionRow {
    pub comment_id: CommentId,
    pub version: i32,
    pub body: String,
    pub important: bool,
    pub written_at: DateTime<Utc>,
}

/// Earlier versions of the comments `edited` (those shown with a version above 1), oldest
/// first. By id: the topic-wide form was planned afresh on every call.
pub async fn versions_of_comments(
    conn: &mut PgConnection,
    slot: PlanSlot,
    edited: &[CommentId],
) -> DbResult<Vec<VersionRow>> {
    if edited.is_empty() {
        return Ok(Vec::new());
    }
    Ok(sqlx::query_as(&slot.sql(
        "SELECT v.comment_id, v.version, v.body, v.important, v.written_at \
         FROM comment_versions v WHERE v.comment_id = ANY($1) ORDER BY v.comment_id, v.version",
    ))
    .bind(edited)
    .fetch_all(conn)
    .await?)
}

/// A comment's 重要 mark changed: the unread counters of those who have not read it follow.
pub async fn shift_important(
    conn: &mut PgConnection,
    comment_id: CommentId,
    topic_id: TopicId,
    seq: i32,
    author_id: PersonId,
    now_important: bool,
) -> DbResult<()> {
    sqlx::query(
        "UPDATE unread ur SET important = greatest(ur.important + $5, 0) \
         WHERE ur.topic_id = $1 AND ur.first_seq <= $2 AND ur.user_id <> $3 AND NOT EXISTS \
           (SELECT 1 FROM footprints f WHERE f.comment_id = $4 AND f.user_id = ur.user_id)",
    )
    .bind(topic_id)
    .bind(seq)
    .bind(author_id)
    .bind(comment_id)
    .bind(if now_important { 1_i32 } else { -1 })
    .execute(conn)
    .await?;
    Ok(())
}

/// Keeps the current text as a version, then replaces it.
pub async fn edit_comment(
    conn: &mut PgConnection,
    comment_id: CommentId,
    body: &str,
    important: bool,
) -> DbResult<()> {
    sqlx::query(
        "INSERT INTO comment_versions (comment_id, version, body, important, written_at) \
         SELECT id, version, body, important, COALESCE(edited_at, created_at) FROM comments WHERE id = $1",
    )
    .bind(comment_id)
    .execute(&mut *conn)
    .await?;
    sqlx::query(
        "UPDATE comments SET body = $2, important = $3, version = version + 1, edited_at = now() \
         WHERE id = $1",
    )
    .bind(comment_id)
    .bind(body)
    .bind(important)
    .execute(&mut *conn)
    .await?;
    // Only the current text is found.
    crate::search::edit_comment(conn, comment_id.into(), body).await
}

/// Marks a comment deleted (the row stays) and takes it out of unread counters.
pub async fn delete_comment(
    conn: &mut PgConnection,
    comment_id: CommentId,
    topic_id: TopicId,
    author_id: PersonId,
    seq: i32,
    by: PersonId,
) -> DbResult<()> {
    sqlx::query("UPDATE comments SET deleted_at = now(), deleted_by = $2 WHERE id = $1")
        .bind(comment_id)
        .bind(by)
        .execute(&mut *conn)
        .await?;
    crate::search::remove(conn, comment_id.into()).await?;
    // Its attachments go out of sight with it.
    sqlx::query("DELETE FROM search_docs WHERE id IN (SELECT id FROM files WHERE comment_id = $1)")
        .bind(comment_id)
        .execute(&mut *conn)
        .await?;
    sqlx::query(
        // Only for those who had not read it: with footprints, a comment after someone's first
        // unread one may have been on their screen already.
        "WITH had AS (SELECT ur.user_id FROM unread ur WHERE ur.topic_id = $1 \
                        AND ur.first_seq <= $2 AND ur.user_id <> $3 AND NOT EXISTS \
                        (SELECT 1 FROM footprints f WHERE f.comment_id = $4 AND f.user_id = ur.user_id)), \
              gone AS (DELETE FROM unread WHERE topic_id = $1 AND count = 1 \
                       AND user_id IN (SELECT user_id FROM had) RETURNING user_id) \
         UPDATE unread SET count = count - 1, \
                important = greatest(important - (SELECT important::int FROM comments WHERE id = $4), 0) \
         WHERE topic_id = $1 AND count > 1 AND user_id IN (SELECT user_id FROM had)",
    )
    .bind(topic_id)
    .bind(seq)
    .bind(author_id)
    .bind(comment_id)
    .execute(conn)
    .await?;
    Ok(())
}

/// Records 「確認しました」; returns the time, or `None` if already acknowledged.
pub async fn acknowledge(
    conn: &mut PgConnection,
    comment_id: CommentId,
    user_id: PersonId,
) -> DbResult<Option<DateTime<Utc>>> {
    Ok(sqlx::query_scalar(
        "INSERT INTO acknowledgements (comment_id, user_id) VALUES ($1, $2) \
         ON CONFLICT DO NOTHING RETURNING at",
    )
    .bind(comment_id)
    .bind(user_id)
    .fetch_optional(conn)
    .await?)
}
