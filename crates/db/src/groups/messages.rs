//! Conversations of direct messages (migrations `core/0015_messages.sql`,
//! `tenant/0012_messages.sql`): a group of kind `direct` with one topic, hosted by the
//! association of the person who started it, whose people are participants. Messages are the
//! topic's comments, so footprints, unread counters, live events and search are those of every
//! comment.

use super::HostedGroup;
use crate::{DbResult, Tenant};
use chrono::{DateTime, Utc};
use musubi_types::{AssociationId, GroupId, PersonId, Scope, TopicId};
use sqlx::PgConnection;

/// The pair key of a one-to-one conversation (`core.groups.pair_key`).
pub fn pair_key(a: PersonId, b: PersonId) -> String {
    let (x, y) = if a.uuid() <= b.uuid() { (a, b) } else { (b, a) };
    format!("{x}:{y}")
}

pub struct NewConversation<'a> {
    pub id: GroupId,
    pub topic_id: TopicId,
    /// What audit records and search results call it (the people's names).
    pub name: &'a str,
    pub title: &'a str,
    pub created_by: PersonId,
    /// Everyone but the starter.
    pub others: &'a [PersonId],
    /// For a one-to-one conversation.
    pub pair_key: Option<&'a str>,
}

/// Creates the conversation, its people and its topic. `None` if the one-to-one conversation
/// of this pair was created meanwhile (by the other person, at the same moment): nothing was
/// written, and the caller finds that one.
pub async fn insert_conversation(
    conn: &mut PgConnection,
    tenant: &Tenant,
    c: &NewConversation<'_>,
) -> DbResult<Option<HostedGroup>> {
    let created: Option<GroupId> = sqlx::query_scalar(
        "INSERT INTO core.groups (id, association_id, kind, pair_key) \
         VALUES ($1, $2, 'direct', $3) ON CONFLICT (pair_key) WHERE pair_key IS NOT NULL \
         DO NOTHING RETURNING id",
    )
    .bind(c.id)
    .bind(tenant.id)
    .bind(c.pair_key)
    .fetch_optional(&mut *conn)
    .await?;
    if created.is_none() {
        return Ok(None);
    }
    sqlx::query(
        "INSERT INTO groups (id, kind, name, join_policy, created_by) \
         VALUES ($1, 'direct', $2, 'invite', $3)",
    )
    .bind(c.id)
    .bind(c.name)
    .bind(c.created_by)
    .execute(&mut *conn)
    .await?;
    let mut people = vec![c.created_by];
    people.extend_from_slice(c.others);
    sqlx::query(
        "INSERT INTO core.group_members (group_id, user_id, role, status, invited_by, joined_at) \
         SELECT $1, p, 'participant', 'active', $2, now() FROM unnest($3::uuid[]) p",
    )
    .bind(c.id)
    .bind(c.created_by)
    .bind(&people)
    .execute(&mut *conn)
    .await?;
    // The title is not indexed for search: every conversation has the same one.
    sqlx::query(
        "INSERT INTO topics (id, group_id, author_id, title, scope) VALUES ($1, $2, $3, $4, $5)",
    )
    .bind(c.topic_id)
    .bind(c.id)
    .bind(c.created_by)
    .bind(c.title)
    .bind(Scope::EVERYONE)
    .execute(&mut *conn)
    .await?;
    Ok(Some(super::hosted(c.id, tenant)))
}

/// Where a one-to-one conversation is: (group, host association, host slug).
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct PairRow {
    pub group_id: GroupId,
    pub association_id: AssociationId,
    pub slug: String,
}

/// The one-to-one conversation of a pair, wherever it is hosted.
pub async fn pair_conversation(
    conn: &mut PgConnection,
    pair_key: &str,
) -> DbResult<Option<PairRow>> {
    Ok(sqlx::query_as(
        "SELECT g.id AS group_id, g.association_id, a.slug FROM core.groups g \
         JOIN core.associations a ON a.id = g.association_id \
         WHERE g.pair_key = $1 AND g.kind = 'direct'",
    )
    .bind(pair_key)
    .fetch_optional(conn)
    .await?)
}

/// A conversation hosted by `tenant` as a message to it finds it: its topic and its active
/// participants, in one read (`None` if the tenant hosts no such conversation).
pub async fn conversation_state(
    conn: &mut PgConnection,
    tenant: &Tenant,
    group_id: GroupId,
) -> DbResult<Option<(HostedGroup, TopicId, Vec<PersonId>)>> {
    let row: Option<(TopicId, Vec<PersonId>)> = sqlx::query_as(&tenant.plan_slot().sql(
        "SELECT t.id, ARRAY(SELECT gm.user_id FROM core.group_members gm \
                            WHERE gm.group_id = g.id AND gm.status = 'active') \
         FROM groups g JOIN core.groups cg ON cg.id = g.id AND cg.association_id = $2 \
         JOIN LATERAL (SELECT t.id FROM topics t WHERE t.group_id = g.id \
                       ORDER BY t.created_at LIMIT 1) t ON true \
         WHERE g.id = $1 AND g.kind = 'direct'",
    ))
    .bind(group_id)
    .bind(tenant.id)
    .fetch_optional(conn)
    .await?;
    Ok(row.map(|(topic, people)| (super::hosted(group_id, tenant), topic, people)))
}

/// Who may be written to in a conversation, read as a message is posted.
#[derive(Debug, Clone)]
pub struct MessageState {
    /// The active participants.
    pub people: Vec<PersonId>,
    /// Whether every one of them is an active member of the host: then no association's
    /// policy on messages across associations can apply to them.
    pub all_members: bool,
    /// The two people of a one-to-one conversation.
    pub pair: Option<(PersonId, PersonId)>,
}

/// The active participants, the pair of a one-to-one conversation and whether everyone is a
/// member of the host, in one read: what posting to a conversation checks first.
pub async fn message_state(conn: &mut PgConnection, group: &HostedGroup) -> DbResult<MessageState> {
    // One scan of the participants and a lookup each: planned in a fraction of the time that
    // nested anti-joins took, and kept per plan slot.
    let (people, all_members, pair_key): (Vec<PersonId>, bool, Option<String>) =
        sqlx::query_as(&group.plan_slot().sql(
            "SELECT coalesce(array_agg(gm.user_id), '{}'), \
                    coalesce(bool_and(EXISTS (SELECT 1 FROM core.memberships m \
                                              WHERE m.user_id = gm.user_id \
                                                AND m.association_id = $2 \
                                                AND m.status = 'active')), true), \
                    (SELECT cg.pair_key FROM core.groups cg \
                     WHERE cg.id = $1 AND cg.kind = 'direct') \
             FROM core.group_members gm WHERE gm.group_id = $1 AND gm.status = 'active'",
        ))
        .bind(group.id())
        .bind(group.association_id())
        .fetch_one(conn)
        .await?;
    let pair = pair_key.as_deref().and_then(|key| {
        let (a, b) = key.split_once(':')?;
        Some((a.parse().ok()?, b.parse().ok()?))
    });
    Ok(MessageState {
        people,
        all_members,
        pair,
    })
}

/// Whether the conversation is one-to-one.
pub async fn is_pair(conn: &mut PgConnection, group: &HostedGroup) -> DbResult<bool> {
    Ok(sqlx::query_scalar(
        "SELECT pair_key IS NOT NULL FROM core.groups WHERE id = $1 AND kind = 'direct'",
    )
    .bind(group.id())
    .fetch_optional(conn)
    .await?
    .unwrap_or(false))
}

/// The active participants, locked until the transaction ends, so that people added or
/// leaving at the same moment are counted once.
pub async fn lock_participants(
    conn: &mut PgConnection,
    group: &HostedGroup,
) -> DbResult<Vec<PersonId>> {
    Ok(sqlx::query_scalar(
        "SELECT user_id FROM core.group_members \
         WHERE group_id = $1 AND status = 'active' ORDER BY user_id FOR UPDATE",
    )
    .bind(group.id())
    .fetch_all(conn)
    .await?)
}

/// Adds (or brings back) a participant; false if they already take part.
pub async fn add_participant(
    conn: &mut PgConnection,
    group: &HostedGroup,
    user_id: PersonId,
    added_by: PersonId,
) -> DbResult<bool> {
    let done = sqlx::query(
        "INSERT INTO core.group_members (group_id, user_id, role, status, invited_by, joined_at) \
         VALUES ($1, $2, 'participant', 'active', $3, now()) \
         ON CONFLICT (group_id, user_id) DO UPDATE \
            SET status = 'active', role = 'participant', invited_by = EXCLUDED.invited_by, \
                joined_at = now() \
            WHERE core.group_members.status <> 'active'",
    )
    .bind(group.id())
    .bind(user_id)
    .bind(added_by)
    .execute(conn)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// Whether a conversation of these people, hosted by `host`, would cross associations against
/// a policy: some of them are not active members of the host, and the host or an association
/// of one of those people does not allow messages with other associations
/// (`core.message_policies`). The associations of people who are members of the host do not
/// count: they take part as its members.
pub async fn crosses_against_policy(
    conn: &mut PgConnection,
    host: AssociationId,
    people: &[PersonId],
) -> DbResult<bool> {
    Ok(sqlx::query_scalar(
        "WITH outside AS ( \
             SELECT p AS user_id FROM unnest($2::uuid[]) p \
             WHERE NOT EXISTS (SELECT 1 FROM core.memberships m \
                               WHERE m.user_id = p AND m.association_id = $1 \
                                 AND m.status = 'active')) \
         SELECT EXISTS (SELECT 1 FROM outside) AND ( \
             EXISTS (SELECT 1 FROM core.message_policies mp \
                     WHERE mp.association_id = $1 AND NOT mp.cross_association) \
             OR EXISTS (SELECT 1 FROM outside o \
                        JOIN core.memberships m ON m.user_id = o.user_id AND m.status = 'active' \
                        JOIN core.message_policies mp ON mp.association_id = m.association_id \
                        WHERE NOT mp.cross_association))",
    )
    .bind(host)
    .bind(people)
    .fetch_one(conn)
    .await?)
}

/// How many of these people are not active members of `host`.
pub async fn outside_count(
    conn: &mut PgConnection,
    host: AssociationId,
    people: &[PersonId],
) -> DbResult<i64> {
    Ok(sqlx::query_scalar(
        "SELECT count(*) FROM unnest($2::uuid[]) p \
         WHERE NOT EXISTS (SELECT 1 FROM core.memberships m \
                           WHERE m.user_id = p AND m.association_id = $1 AND m.status = 'active')",
    )
    .bind(host)
    .bind(people)
    .fetch_one(conn)
    .await?)
}

/// Whether the association allows its members messages with other associations.
pub async fn cross_association_allowed(
    conn: &mut PgConnection,
    association: AssociationId,
) -> DbResult<bool> {
    Ok(sqlx::query_scalar(
        "SELECT cross_association FROM core.message_policies WHERE association_id = $1",
    )
    .bind(association)
    .fetch_optional(conn)
    .await?
    .unwrap_or(true))
}

pub async fn set_cross_association_allowed(
    conn: &mut PgConnection,
    association: AssociationId,
    allowed: bool,
) -> DbResult<()> {
    sqlx::query(
        "INSERT INTO core.message_policies (association_id, cross_association) VALUES ($1, $2) \
         ON CONFLICT (association_id) DO UPDATE \
            SET cross_association = EXCLUDED.cross_association, updated_at = now()",
    )
    .bind(association)
    .bind(allowed)
    .execute(conn)
    .await?;
    Ok(())
}

/// A conversation in the list of someone's messages.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct ConversationRow {
    pub group_id: GroupId,
    pub topic_id: TopicId,
    pub pair: bool,
    /// The other participants' names, by reading.
    pub others: Vec<String>,
    pub unread: i32,
    pub last_at: DateTime<Utc>,
    pub last_author_name: Option<String>,
    /// The newest message's text (empty when deleted).
    pub last_body: Option<String>,
}

/// The conversations among `ids` (the viewer's, hosted by the tenant), newest first.
pub async fn conversations(
    conn: &mut PgConnection,
    tenant: &Tenant,
    viewer: PersonId,
    ids: &[GroupId],
) -> DbResult<Vec<ConversationRow>> {
    Ok(sqlx::query_as(
        "SELECT g.id AS group_id, t.id AS topic_id, cg.pair_key IS NOT NULL AS pair, \
                COALESCE((SELECT array_agg(u.name ORDER BY u.name_kana, u.id) \
                          FROM core.group_members gm JOIN core.users u ON u.id = gm.user_id \
                          WHERE gm.group_id = g.id AND gm.status = 'active' \
                            AND gm.user_id <> $1), '{}') AS others, \
                COALESCE((SELECT ur.count FROM unread ur \
                          WHERE ur.user_id = $1 AND ur.topic_id = t.id), 0) AS unread, \
                t.last_comment_at AS last_at, lu.name AS last_author_name, \
                CASE WHEN lc.deleted_at IS NULL THEN lc.body ELSE '' END AS last_body \
         FROM groups g \
         JOIN core.groups cg ON cg.id = g.id AND cg.association_id = $2 \
         JOIN LATERAL (SELECT t.* FROM topics t WHERE t.group_id = g.id \
                       ORDER BY t.created_at LIMIT 1) t ON true \
         LEFT JOIN LATERAL (SELECT c.body, c.author_id, c.deleted_at FROM comments c \
                            WHERE c.topic_id = t.id ORDER BY c.seq DESC LIMIT 1) lc ON true \
         LEFT JOIN core.users lu ON lu.id = lc.author_id \
         WHERE g.id = ANY($3) AND g.kind = 'direct' \
         ORDER BY t.last_comment_at DESC",
    )
    .bind(viewer)
    .bind(tenant.id)
    .bind(ids)
    .fetch_all(conn)
    .await?)
}

/// The other participants' names of several conversations, by reading.
pub async fn others_of_groups(
    conn: &mut PgConnection,
    viewer: PersonId,
    ids: &[GroupId],
) -> DbResult<Vec<(GroupId, Vec<String>)>> {
    Ok(sqlx::query_as(
        "SELECT gm.group_id, array_agg(u.name ORDER BY u.name_kana, u.id) \
         FROM core.group_members gm JOIN core.users u ON u.id = gm.user_id \
         WHERE gm.group_id = ANY($2) AND gm.status = 'active' AND gm.user_id <> $1 \
         GROUP BY gm.group_id",
    )
    .bind(viewer)
    .bind(ids)
    .fetch_all(conn)
    .await?)
}
