//! Moving rows a step has just written back to an earlier time, so that seeded data (the demo)
//! reads like weeks of real use. Only an operator's command calls these, never a request.
//!
//! Each function takes the step's time `at` and `since`, the database's clock when seeding
//! began: rows stamped at or after `since` are the ones the step just wrote, everything older
//! was moved already. Run them in a transaction of the association that hosts the group.

use crate::DbResult;
use chrono::{DateTime, Utc};
use musubi_types::PersonId;
use musubi_types::{CommentId, GroupId};
use sqlx::{PgConnection, PgPool};
use uuid::Uuid;

/// The database's clock: the reference for `since`.
pub async fn database_now(pool: &PgPool) -> DbResult<DateTime<Utc>> {
    Ok(sqlx::query_scalar("SELECT now()").fetch_one(pool).await?)
}

/// A new group and the memberships just added to it.
pub async fn group(
    conn: &mut PgConnection,
    group_id: GroupId,
    at: DateTime<Utc>,
    since: DateTime<Utc>,
) -> DbResult<()> {
    run(
        conn,
        group_id.uuid(),
        at,
        since,
        &[
            "UPDATE groups SET created_at = $1, last_activity_at = $1 \
             WHERE id = $3 AND created_at >= $2",
            "UPDATE core.group_members SET created_at = $1, joined_at = $1 \
             WHERE group_id = $3 AND created_at >= $2",
        ],
    )
    .await
}

/// A new comment and what it touched: its topic (created with it when it is the body), its
/// group's activity and the unread counters it raised.
pub async fn comment(
    conn: &mut PgConnection,
    comment_id: CommentId,
    at: DateTime<Utc>,
    since: DateTime<Utc>,
) -> DbResult<()> {
    run(
        conn,
        comment_id.uuid(),
        at,
        since,
        &[
            "UPDATE topics t SET last_comment_at = $1, \
                    created_at = CASE WHEN c.seq = 1 THEN $1 ELSE t.created_at END \
             FROM comments c WHERE c.id = $3 AND t.id = c.topic_id AND c.created_at >= $2",
            "UPDATE groups g SET last_activity_at = $1 FROM comments c \
             WHERE c.id = $3 AND g.id = c.group_id AND g.last_activity_at >= $2",
            "UPDATE unread u SET last_at = $1 FROM comments c \
             WHERE c.id = $3 AND u.topic_id = c.topic_id AND u.last_at >= $2",
            // Its search document, and its topic's when it is the body.
            "UPDATE search_docs d SET at = $1 FROM comments c \
             WHERE c.id = $3 AND (d.id = c.id OR (c.seq = 1 AND d.id = c.topic_id)) \
               AND c.created_at >= $2",
            // Last: the statements above recognise the new comment by its time.
            "UPDATE comments SET created_at = $1 WHERE id = $3 AND created_at >= $2",
        ],
    )
    .await
}

/// The footprints a person just left.
pub async fn footprints(
    conn: &mut PgConnection,
    user_id: PersonId,
    at: DateTime<Utc>,
    since: DateTime<Utc>,
) -> DbResult<()> {
    run(
        conn,
        user_id.uuid(),
        at,
        since,
        &["UPDATE footprints SET read_at = $1 WHERE user_id = $3 AND read_at >= $2"],
    )
    .await
}

/// A new 「確認しました」 on a comment.
pub async fn acknowledgement(
    conn: &mut PgConnection,
    comment_id: CommentId,
    at: DateTime<Utc>,
    since: DateTime<Utc>,
) -> DbResult<()> {
    run(
        conn,
        comment_id.uuid(),
        at,
        since,
        &["UPDATE acknowledgements SET at = $1 WHERE comment_id = $3 AND at >= $2"],
    )
    .await
}

/// A comment's latest edit.
pub async fn edit(
    conn: &mut PgConnection,
    comment_id: CommentId,
    at: DateTime<Utc>,
    since: DateTime<Utc>,
) -> DbResult<()> {
    run(
        conn,
        comment_id.uuid(),
        at,
        since,
        &["UPDATE comments SET edited_at = $1 WHERE id = $3 AND edited_at >= $2"],
    )
    .await
}

/// A comment's deletion.
pub async fn deletion(
    conn: &mut PgConnection,
    comment_id: CommentId,
    at: DateTime<Utc>,
    since: DateTime<Utc>,
) -> DbResult<()> {
    run(
        conn,
        comment_id.uuid(),
        at,
        since,
        &["UPDATE comments SET deleted_at = $1 WHERE id = $3 AND deleted_at >= $2"],
    )
    .await
}

/// Each statement gets the time (`$1`), `since` (`$2`) and the id (`$3`).
async fn run(
    conn: &mut PgConnection,
    id: Uuid,
    at: DateTime<Utc>,
    since: DateTime<Utc>,
    statements: &[&str],
) -> DbResult<()> {
    for sql in statements {
        sqlx::query(sql)
            .bind(at)
            .bind(since)
            .bind(id)
            .execute(&mut *conn)
            .await?;
    }
    Ok(())
}
