//! Topics: access (with the group's proof), the list a person may see, posting and settings.

use super::*;
use musubi_types::PersonId;
use musubi_types::{GroupId, TopicId};

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct TopicRow {
    pub id: TopicId,
    pub group_id: GroupId,
    pub author_id: PersonId,
    pub author_name: String,
    pub title: String,
    pub scope: Scope,
    pub pinned: bool,
    pub closed: bool,
    pub created_at: DateTime<Utc>,
    pub last_seq: i32,
    pub last_comment_at: DateTime<Utc>,
    /// Unread comments for the asking person.
    pub unread: i32,
}

/// A topic with what deciding access needs: its group's kind and receipt mode, and the asking
/// person's active group role.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct TopicAccessRow {
    #[sqlx(flatten)]
    pub topic: TopicRow,
    pub group_kind: GroupKind,
    /// The group is read-only (care has ended).
    pub group_archived: bool,
    pub group_name: String,
    pub receipt_mode: ReceiptMode,
    pub my_role: Option<GroupRole>,
}

/// A topic of a group hosted by the tenant, with its group's proof.
pub async fn topic_access(
    conn: &mut PgConnection,
    tenant: &Tenant,
    viewer: PersonId,
    topic_id: TopicId,
) -> DbResult<Option<(HostedGroup, TopicAccessRow)>> {
    let sql = tenant.plan_slot().sql(concat!(
        // The viewer's counter and role as scalar subqueries: fewer joined relations to plan.
        "SELECT t.id, t.group_id, t.author_id, u.name AS author_name, t.title, t.scope, t.pinned, \
                t.closed, t.created_at, t.last_seq, t.last_comment_at, \
                COALESCE((SELECT ur.count FROM unread ur \
                          WHERE ur.user_id = $1 AND ur.topic_id = t.id), 0) AS unread, \
                g.kind AS group_kind, g.name AS group_name, \
                g.archived_at IS NOT NULL AS group_archived, \
                COALESCE(g.receipt_mode, s.receipt_mode) AS receipt_mode, \
                (SELECT gm.role FROM core.group_members gm \
                 WHERE gm.group_id = t.group_id AND gm.user_id = $1 AND gm.status = 'active' \
                   AND ",
        member_counts!(),
        ") AS my_role \
         FROM topics t \
         JOIN groups g ON g.id = t.group_id \
         JOIN core.groups cg ON cg.id = g.id AND cg.association_id = $3 \
         CROSS JOIN settings s \
         JOIN core.users u ON u.id = t.author_id \
         WHERE t.id = $2",
    ));
    let row: Option<TopicAccessRow> = sqlx::query_as(&sql)
        .bind(viewer)
        .bind(topic_id)
        .bind(tenant.id)
        .fetch_optional(conn)
        .await?;
    Ok(row.map(|a| {
        let hosted = super::hosted(a.topic.group_id, tenant);
        (hosted, a)
    }))
}

/// The topics of a group the person may see (scope bit or own), pinned first, then newest.
pub async fn topics_of_group(
    conn: &mut PgConnection,
    viewer: PersonId,
    viewer_bit: Scope,
    group: &HostedGroup,
    limit: i64,
) -> DbResult<Vec<TopicRow>> {
    let group_id = group.id;
    Ok(sqlx::query_as(&group.plan_slot.sql(
        "SELECT t.id, t.group_id, t.author_id, u.name AS author_name, t.title, t.scope, t.pinned, \
                t.closed, t.created_at, t.last_seq, t.last_comment_at, \
                COALESCE(ur.count, 0) AS unread \
         FROM topics t \
         JOIN core.users u ON u.id = t.author_id \
         LEFT JOIN unread ur ON ur.user_id = $1 AND ur.topic_id = t.id \
         WHERE t.group_id = $3 AND (t.scope & $2 <> 0 OR t.author_id = $1) \
         ORDER BY t.pinned DESC, t.last_comment_at DESC \
         LIMIT $4",
    ))
    .bind(viewer)
    .bind(viewer_bit)
    .bind(group_id)
    .bind(limit)
    .fetch_all(conn)
    .await?)
}

pub struct NewTopic<'a> {
    pub id: TopicId,
    pub author_id: PersonId,
    pub title: &'a str,
    pub scope: Scope,
}

pub async fn insert_topic(
    conn: &mut PgConnection,
    group: &HostedGroup,
    t: &NewTopic<'_>,
) -> DbResult<()> {
    sqlx::query(
        "INSERT INTO topics (id, group_id, author_id, title, scope) VALUES ($1, $2, $3, $4, $5)",
    )
    .bind(t.id)
    .bind(group.id)
    .bind(t.author_id)
    .bind(t.title)
    .bind(t.scope)
    .execute(&mut *conn)
    .await?;
    crate::search::put_topic(conn, t.id.into(), group.id, t.author_id, t.title).await
}

pub async fn update_topic(
    conn: &mut PgConnection,
    topic_id: TopicId,
    title: &str,
    scope: Scope,
    pinned: bool,
    closed: bool,
) -> DbResult<()> {
    sqlx::query("UPDATE topics SET title = $2, scope = $3, pinned = $4, closed = $5 WHERE id = $1")
        .bind(topic_id)
        .bind(title)
        .bind(scope)
        .bind(pinned)
        .bind(closed)
        .execute(&mut *conn)
        .await?;
    crate::search::topic_changed(conn, topic_id.into(), title, scope.bits()).await
}
