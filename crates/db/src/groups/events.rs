//! Live-update events (`core.events`): written in the writer's transaction, replayed after a reconnect, purged after a week; and what a subscription keeps about its person.

use super::*;
use musubi_types::{AssociationId, PersonId};
use musubi_types::{CommentId, GroupId, TopicId};

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct EventRow {
    pub id: i64,
    pub association_id: AssociationId,
    pub group_id: GroupId,
    pub topic_id: Option<TopicId>,
    pub kind: String,
    pub scope: i16,
    pub actor_id: PersonId,
    pub topic_author_id: Option<PersonId>,
    pub comment_ids: Vec<CommentId>,
    pub user_id: Option<PersonId>,
}

pub struct NewEvent<'a> {
    pub topic_id: Option<TopicId>,
    pub kind: &'a str,
    pub scope: i16,
    pub actor_id: PersonId,
    pub topic_author_id: Option<PersonId>,
    pub comment_ids: &'a [CommentId],
    pub user_id: Option<PersonId>,
}

/// Writes events of one group in the caller's transaction, in one statement; returns their
/// ids in the order given (ids rise in the order the rows are written) and the transaction's
/// id (published after commit).
pub async fn insert_events(
    conn: &mut PgConnection,
    group: &HostedGroup,
    events: &[NewEvent<'_>],
) -> DbResult<(Vec<i64>, i64)> {
    if events.is_empty() {
        return Ok((Vec::new(), 0));
    }
    let mut q = sqlx::QueryBuilder::<sqlx::Postgres>::new(
        "INSERT INTO core.events (association_id, group_id, topic_id, kind, scope, actor_id, \
                                  topic_author_id, comment_ids, user_id) ",
    );
    q.push_values(events, |mut row, e| {
        row.push_bind(group.association_id)
            .push_bind(group.id)
            .push_bind(e.topic_id)
            .push_bind(e.kind)
            .push_bind(e.scope)
            .push_bind(e.actor_id)
            .push_bind(e.topic_author_id)
            .push_bind(e.comment_ids)
            .push_bind(e.user_id);
    });
    q.push(" RETURNING id, pg_current_xact_id()::text::bigint");
    let rows: Vec<(i64, i64)> = q.build_query_as().fetch_all(conn).await?;
    let xid = rows.first().map_or(0, |r| r.1);
    let mut ids: Vec<i64> = rows.into_iter().map(|r| r.0).collect();
    ids.sort_unstable();
    Ok((ids, xid))
}

/// Events after `after` in the person's active groups (for catch-up), oldest first.
pub async fn events_since(
    pool: &PgPool,
    user_id: PersonId,
    after: i64,
    limit: i64,
) -> DbResult<Vec<EventRow>> {
    Ok(sqlx::query_as(concat!(
        "SELECT e.id, e.association_id, e.group_id, e.topic_id, e.kind, e.scope, e.actor_id, \
                e.topic_author_id, e.comment_ids, e.user_id \
         FROM core.events e \
         JOIN ",
        group_members!(),
        " gm ON gm.group_id = e.group_id AND gm.user_id = $1 AND gm.status = 'active' \
         WHERE e.id > $2 AND (e.user_id IS NULL OR e.user_id = $1) \
         ORDER BY e.id LIMIT $3",
    ))
    .bind(user_id)
    .bind(after)
    .bind(limit)
    .fetch_all(pool)
    .await?)
}

/// The newest event id (a starting point for a fresh subscription).
pub async fn last_event_id(pool: &PgPool) -> DbResult<i64> {
    Ok(
        sqlx::query_scalar("SELECT COALESCE(max(id), 0) FROM core.events")
            .fetch_one(pool)
            .await?,
    )
}

/// Removes events older than `days` (clients older than that reload instead of catching up).
pub async fn purge_events(pool: &PgPool, days: i32) -> DbResult<u64> {
    Ok(
        sqlx::query("DELETE FROM core.events WHERE created_at < now() - make_interval(days => $1)")
            .bind(days)
            .execute(pool)
            .await?
            .rows_affected(),
    )
}

/// What a live subscription needs to know about its person, read in one statement when it
/// opens, at each periodic check and after their membership changes.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct LiveStateRow {
    /// The person is active and the session is valid (not revoked, not expired, second factor
    /// done).
    pub alive: bool,
    /// The person's class as a scope bit (`core.scope_bit`).
    pub scope_bit: Scope,
    /// The groups they are an active member of.
    pub groups: Vec<GroupId>,
    /// The associations hosting those groups, by slug, and their names in the same order.
    pub host_slugs: Vec<String>,
    pub host_names: Vec<String>,
}

pub async fn live_state(
    pool: &PgPool,
    user_id: PersonId,
    session_id: Uuid,
) -> DbResult<Option<LiveStateRow>> {
    Ok(sqlx::query_as(concat!(
        "SELECT u.status = 'active' AND EXISTS ( \
                    SELECT 1 FROM core.sessions s \
                    WHERE s.id = $2 AND s.user_id = $1 AND s.revoked_at IS NULL \
                      AND s.second_factor_done AND s.idle_expires_at > now() \
                      AND s.absolute_expires_at > now()) AS alive, \
                core.scope_bit(u.doctor_kind) AS scope_bit, \
                ARRAY(SELECT gm.group_id FROM ",
        group_members!(),
        " gm WHERE gm.user_id = $1 AND gm.status = 'active') AS groups, \
                h.slugs AS host_slugs, h.names AS host_names \
         FROM core.users u \
         CROSS JOIN LATERAL ( \
             SELECT COALESCE(array_agg(a.slug ORDER BY a.slug), '{}') AS slugs, \
                    COALESCE(array_agg(a.name ORDER BY a.slug), '{}') AS names \
             FROM core.associations a \
             WHERE a.id IN (SELECT gm.association_id FROM ",
        group_members!(),
        " gm WHERE gm.user_id = $1 AND gm.status = 'active')) h \
         WHERE u.id = $1",
    ))
    .bind(user_id)
    .bind(session_id)
    .fetch_optional(pool)
    .await?)
}
