//! Groups, topics, comments, footprints and unread counters.
//!
//! The directory (`core.groups`, `core.group_members`, `core.events`) spans associations; the
//! content lives in the host association's schema and is reached through a tenant transaction
//! (`Db::tenant_tx`). Every list query here is bounded by what one person can see: unread
//! counters, not comment scans, answer "what is new".
//!
//! Everything that reads or changes one group's membership or content takes a [`HostedGroup`],
//! which only the loaders here make, and only for a group hosted by the tenant they were given:
//! a group of another association is simply not found, whatever the caller forgets.

use crate::{DbResult, Tenant};
use chrono::{DateTime, Utc};
use musubi_types::{
    DoctorKind, GroupKind, GroupMemberStatus, GroupRole, JoinPolicy, Profession, ReceiptMode, Scope,
};
use sqlx::{PgConnection, PgPool};
use uuid::Uuid;

/// The group memberships in force, to read in place of `core.group_members` wherever it is asked
/// who belongs to a group. A person deactivated by the group's host association, or left with no
/// active membership anywhere, is no member while that lasts: every group, topic, comment, home
/// and live query answers for them as for a stranger. Their rows stay, so reactivation gives
/// back what they had. Writes still go to the table itself.
macro_rules! group_members {
    () => {
        "(SELECT gm.* FROM core.group_members gm \
          WHERE NOT EXISTS (SELECT 1 FROM core.memberships hm \
                            WHERE hm.user_id = gm.user_id AND hm.association_id = gm.association_id \
                              AND hm.status <> 'active') \
            AND EXISTS (SELECT 1 FROM core.memberships am \
                        WHERE am.user_id = gm.user_id AND am.status = 'active'))"
    };
}

/// A group the person belongs to (or is invited to / asked to join), with its host.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct MyGroupRow {
    pub group_id: Uuid,
    pub association_id: Uuid,
    pub slug: String,
    pub association_name: String,
    pub kind: GroupKind,
    pub role: GroupRole,
    pub status: GroupMemberStatus,
}

/// Every group of `user_id` in the directory, any status.
#[tracing::instrument(name = "db.groups_of", skip_all)]
pub async fn groups_of(pool: &PgPool, user_id: Uuid) -> DbResult<Vec<MyGroupRow>> {
    Ok(sqlx::query_as(concat!(
        "SELECT gm.group_id, g.association_id, a.slug, a.name AS association_name, g.kind, \
                gm.role, gm.status \
         FROM ",
        group_members!(),
        " gm \
         JOIN core.groups g ON g.id = gm.group_id \
         JOIN core.associations a ON a.id = g.association_id \
         WHERE gm.user_id = $1 \
         ORDER BY a.slug, gm.group_id",
    ))
    .bind(user_id)
    .fetch_all(pool)
    .await?)
}

/// Proof that a group is hosted by the association of the tenant it was loaded through (its
/// row is in that tenant's schema and `core.groups.association_id` is the tenant's id). Not
/// constructible outside this module.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HostedGroup {
    id: Uuid,
    association_id: Uuid,
}

impl HostedGroup {
    pub fn id(&self) -> Uuid {
        self.id
    }
    /// The host association (the tenant it was loaded through).
    pub fn association_id(&self) -> Uuid {
        self.association_id
    }
}

/// The group `group_id` if `tenant` hosts it.
pub async fn hosted_group(
    conn: &mut PgConnection,
    tenant: &Tenant,
    group_id: Uuid,
) -> DbResult<Option<HostedGroup>> {
    let found: Option<Uuid> = sqlx::query_scalar(
        "SELECT g.id FROM groups g \
         JOIN core.groups cg ON cg.id = g.id AND cg.association_id = $2 WHERE g.id = $1",
    )
    .bind(group_id)
    .bind(tenant.id)
    .fetch_optional(conn)
    .await?;
    Ok(found.map(|id| HostedGroup {
        id,
        association_id: tenant.id,
    }))
}

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct GroupRow {
    pub id: Uuid,
    pub kind: GroupKind,
    pub name: String,
    pub description: String,
    pub join_policy: JoinPolicy,
    /// The group's own mode, if it overrides the association's default.
    pub receipt_override: Option<ReceiptMode>,
    /// The mode in force.
    pub receipt_mode: ReceiptMode,
    pub created_by: Uuid,
    pub created_at: DateTime<Utc>,
    pub last_activity_at: DateTime<Utc>,
    /// The asking person's membership (`None` if not an active member).
    pub my_role: Option<GroupRole>,
    pub my_status: Option<GroupMemberStatus>,
}

const GROUP_SELECT: &str = concat!(
    "SELECT g.id, g.kind, g.name, g.description, g.join_policy, \
     g.receipt_mode AS receipt_override, COALESCE(g.receipt_mode, s.receipt_mode) AS receipt_mode, \
     g.created_by, g.created_at, g.last_activity_at, gm.role AS my_role, gm.status AS my_status \
     FROM groups g CROSS JOIN settings s \
     JOIN core.groups cg ON cg.id = g.id AND cg.association_id = $2 \
     LEFT JOIN ",
    group_members!(),
    " gm ON gm.group_id = g.id AND gm.user_id = $1"
);

/// One group hosted by the tenant, with the asking person's membership.
pub async fn group(
    conn: &mut PgConnection,
    tenant: &Tenant,
    viewer: Uuid,
    group_id: Uuid,
) -> DbResult<Option<(HostedGroup, GroupRow)>> {
    hosted_group_row(conn, tenant, viewer, group_id, "").await
}

/// [`group`], its row locked until the end of the transaction: for a change computed from the
/// group as it is (a patch of its settings).
pub async fn group_for_update(
    conn: &mut PgConnection,
    tenant: &Tenant,
    viewer: Uuid,
    group_id: Uuid,
) -> DbResult<Option<(HostedGroup, GroupRow)>> {
    hosted_group_row(conn, tenant, viewer, group_id, " FOR UPDATE OF g").await
}

async fn hosted_group_row(
    conn: &mut PgConnection,
    tenant: &Tenant,
    viewer: Uuid,
    group_id: Uuid,
    lock: &str,
) -> DbResult<Option<(HostedGroup, GroupRow)>> {
    let row: Option<GroupRow> = sqlx::query_as(&format!("{GROUP_SELECT} WHERE g.id = $3{lock}"))
        .bind(viewer)
        .bind(tenant.id)
        .bind(group_id)
        .fetch_optional(conn)
        .await?;
    Ok(row.map(|g| {
        let hosted = HostedGroup {
            id: g.id,
            association_id: tenant.id,
        };
        (hosted, g)
    }))
}

/// Several groups hosted by the tenant (the person's), most recently active first.
pub async fn groups_by_ids(
    conn: &mut PgConnection,
    tenant: &Tenant,
    viewer: Uuid,
    ids: &[Uuid],
) -> DbResult<Vec<GroupRow>> {
    Ok(sqlx::query_as(&format!(
        "{GROUP_SELECT} WHERE g.id = ANY($3) ORDER BY g.last_activity_at DESC"
    ))
    .bind(viewer)
    .bind(tenant.id)
    .bind(ids)
    .fetch_all(conn)
    .await?)
}

/// General groups of the tenant that accept requests to join, with the person's status.
pub async fn open_groups(
    conn: &mut PgConnection,
    tenant: &Tenant,
    viewer: Uuid,
) -> DbResult<Vec<GroupRow>> {
    Ok(sqlx::query_as(&format!(
        "{GROUP_SELECT} WHERE g.kind = 'general' AND g.join_policy = 'request' \
         ORDER BY g.name LIMIT 200"
    ))
    .bind(viewer)
    .bind(tenant.id)
    .fetch_all(conn)
    .await?)
}

pub struct NewGroup<'a> {
    pub id: Uuid,
    pub kind: GroupKind,
    pub name: &'a str,
    pub description: &'a str,
    pub join_policy: JoinPolicy,
    pub receipt_mode: Option<ReceiptMode>,
    pub created_by: Uuid,
}

/// Creates the group in the directory and in the tenant, with its creator as owner.
pub async fn insert_group(
    conn: &mut PgConnection,
    tenant: &Tenant,
    g: &NewGroup<'_>,
) -> DbResult<HostedGroup> {
    sqlx::query("INSERT INTO core.groups (id, association_id, kind) VALUES ($1, $2, $3)")
        .bind(g.id)
        .bind(tenant.id)
        .bind(g.kind)
        .execute(&mut *conn)
        .await?;
    sqlx::query(
        "INSERT INTO groups (id, kind, name, description, join_policy, receipt_mode, created_by) \
         VALUES ($1, $2, $3, $4, $5, $6, $7)",
    )
    .bind(g.id)
    .bind(g.kind)
    .bind(g.name)
    .bind(g.description)
    .bind(g.join_policy)
    .bind(g.receipt_mode)
    .bind(g.created_by)
    .execute(&mut *conn)
    .await?;
    sqlx::query(
        "INSERT INTO core.group_members (group_id, user_id, role, status, joined_at) \
         VALUES ($1, $2, 'owner', 'active', now())",
    )
    .bind(g.id)
    .bind(g.created_by)
    .execute(&mut *conn)
    .await?;
    Ok(HostedGroup {
        id: g.id,
        association_id: tenant.id,
    })
}

pub async fn update_group(
    conn: &mut PgConnection,
    group: &HostedGroup,
    name: &str,
    description: &str,
    join_policy: JoinPolicy,
    receipt_mode: Option<ReceiptMode>,
) -> DbResult<()> {
    let group_id = group.id;
    sqlx::query(
        "UPDATE groups SET name = $2, description = $3, join_policy = $4, receipt_mode = $5 \
         WHERE id = $1",
    )
    .bind(group_id)
    .bind(name)
    .bind(description)
    .bind(join_policy)
    .bind(receipt_mode)
    .execute(conn)
    .await?;
    Ok(())
}

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct GroupMemberRow {
    pub user_id: Uuid,
    pub name: String,
    pub name_kana: String,
    pub profession: Profession,
    pub doctor_kind: Option<DoctorKind>,
    pub scope_bit: Scope,
    pub role: GroupRole,
    pub status: GroupMemberStatus,
    /// The facility they work at in the host association, if they are a member there.
    pub facility_name: Option<String>,
    /// Their own association when it is not the host (cross-association members).
    pub home_association: Option<String>,
    /// A pending invitation made by e-mail address: owners do not see it (see
    /// [`invite_by_email`]).
    pub invited_by_email: bool,
}

/// The members of a group (every status), owners first, then by kana.
pub async fn members(
    conn: &mut PgConnection,
    group: &HostedGroup,
) -> DbResult<Vec<GroupMemberRow>> {
    let (association_id, group_id) = (group.association_id, group.id);
    Ok(sqlx::query_as(concat!(
        "SELECT u.id AS user_id, u.name, u.name_kana, u.profession, u.doctor_kind, \
                core.scope_bit(u.doctor_kind) AS scope_bit, gm.role, gm.status, \
                gm.invited_by_email, f.name AS facility_name, \
                CASE WHEN m.user_id IS NULL THEN ( \
                    SELECT a.name FROM core.memberships om \
                    JOIN core.associations a ON a.id = om.association_id \
                    WHERE om.user_id = u.id AND om.status = 'active' \
                    ORDER BY a.slug LIMIT 1) END AS home_association \
         FROM ",
        group_members!(),
        " gm \
         JOIN core.users u ON u.id = gm.user_id \
         LEFT JOIN core.memberships m ON m.user_id = u.id AND m.association_id = $1 \
         LEFT JOIN core.facilities f ON f.id = m.facility_id \
         WHERE gm.group_id = $2 AND u.status = 'active' \
         ORDER BY gm.role = 'owner' DESC, u.name_kana",
    ))
    .bind(association_id)
    .bind(group_id)
    .fetch_all(conn)
    .await?)
}

/// Adds or updates a membership row; returns false if an active membership already existed.
pub async fn upsert_member(
    conn: &mut PgConnection,
    group: &HostedGroup,
    user_id: Uuid,
    role: GroupRole,
    status: GroupMemberStatus,
    invited_by: Option<Uuid>,
) -> DbResult<bool> {
    let group_id = group.id;
    let done = sqlx::query(
        "INSERT INTO core.group_members (group_id, user_id, role, status, invited_by, joined_at) \
         VALUES ($1, $2, $3, $4, $5, CASE WHEN $4 = 'active' THEN now() END) \
         ON CONFLICT (group_id, user_id) DO UPDATE \
            SET status = EXCLUDED.status, role = EXCLUDED.role, invited_by_email = false, \
                invited_by = COALESCE(EXCLUDED.invited_by, core.group_members.invited_by), \
                joined_at = CASE WHEN EXCLUDED.status = 'active' THEN now() END \
            WHERE core.group_members.status <> 'active'",
    )
    .bind(group_id)
    .bind(user_id)
    .bind(role)
    .bind(status)
    .bind(invited_by)
    .execute(conn)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// Invites the active account with this e-mail address, if there is one and it has no
/// membership row in the group yet, and writes the live event for the invitee. One statement
/// whichever way it goes, so that an unknown address takes as long as a known one. Returns
/// (event id, invitee) when someone was invited.
pub async fn invite_by_email(
    conn: &mut PgConnection,
    group: &HostedGroup,
    email: &str,
    invited_by: Uuid,
    event_kind: &str,
) -> DbResult<Option<(i64, Uuid)>> {
    Ok(sqlx::query_as(
        "WITH invited AS ( \
             INSERT INTO core.group_members \
                    (group_id, user_id, role, status, invited_by, invited_by_email) \
             SELECT $1, u.id, 'member', 'invited', $3, true FROM core.users u \
             WHERE lower(u.email) = lower($2) AND u.status = 'active' \
             ON CONFLICT (group_id, user_id) DO NOTHING \
             RETURNING user_id) \
         INSERT INTO core.events (association_id, group_id, kind, scope, actor_id, user_id) \
         SELECT $4, $1, $5, 7, $3, user_id FROM invited \
         RETURNING id, user_id",
    )
    .bind(group.id)
    .bind(email)
    .bind(invited_by)
    .bind(group.association_id)
    .bind(event_kind)
    .fetch_optional(conn)
    .await?)
}

/// A person in the directory an inviter may pick from.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct CandidateRow {
    pub user_id: Uuid,
    pub name: String,
    pub name_kana: String,
    pub profession: Profession,
    pub doctor_kind: Option<DoctorKind>,
    pub association_name: String,
    pub facility_name: Option<String>,
    /// Their membership in the group, if any (an invitation by e-mail is not shown).
    pub group_status: Option<GroupMemberStatus>,
}

/// Active people of the associations the inviter is an active member of, whose name or kana
/// contains `search` (spaces ignored), by kana; each once, with the membership of the group's
/// host first, else of the inviter's first association.
pub async fn invite_candidates(
    conn: &mut PgConnection,
    group: &HostedGroup,
    inviter: Uuid,
    search: &str,
    limit: i64,
) -> DbResult<Vec<CandidateRow>> {
    let pattern = format!("%{}%", like_escape(&without_spaces(search)));
    Ok(sqlx::query_as(&format!(
        "SELECT u.id AS user_id, u.name, u.name_kana, u.profession, u.doctor_kind, \
                a.name AS association_name, f.name AS facility_name, \
                CASE WHEN gm.status = 'invited' AND gm.invited_by_email THEN NULL \
                     ELSE gm.status END AS group_status \
         FROM core.users u \
         JOIN LATERAL ( \
             SELECT m.association_id, m.facility_id FROM core.memberships m \
             WHERE m.user_id = u.id AND m.status = 'active' AND m.association_id IN ({VISIBLE}) \
             ORDER BY m.association_id = $3 DESC, m.association_id LIMIT 1) m ON true \
         JOIN core.associations a ON a.id = m.association_id \
         LEFT JOIN core.facilities f ON f.id = m.facility_id \
         LEFT JOIN core.group_members gm ON gm.group_id = $2 AND gm.user_id = u.id \
         WHERE u.status = 'active' \
           AND (translate(u.name, ' 　', '') ILIKE $4 OR translate(u.name_kana, ' 　', '') ILIKE $4) \
         ORDER BY u.name_kana, u.id LIMIT $5"
    ))
    .bind(inviter)
    .bind(group.id)
    .bind(group.association_id)
    .bind(pattern)
    .bind(limit)
    .fetch_all(conn)
    .await?)
}

/// Whether `person` is active in an association the inviter is an active member of.
pub async fn in_directory_of(
    conn: &mut PgConnection,
    inviter: Uuid,
    person: Uuid,
) -> DbResult<bool> {
    Ok(sqlx::query_scalar(&format!(
        "SELECT EXISTS (SELECT 1 FROM core.users u JOIN core.memberships m ON m.user_id = u.id \
                        WHERE u.id = $2 AND u.status = 'active' AND m.status = 'active' \
                          AND m.association_id IN ({VISIBLE}))"
    ))
    .bind(inviter)
    .bind(person)
    .fetch_one(conn)
    .await?)
}

/// The associations whose people an inviter ($1) may see: those they are active in.
const VISIBLE: &str =
    "SELECT v.association_id FROM core.memberships v WHERE v.user_id = $1 AND v.status = 'active'";

fn without_spaces(s: &str) -> String {
    s.chars().filter(|c| !c.is_whitespace()).collect()
}

/// Escapes `%`, `_` and `\` for a LIKE pattern.
fn like_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        if matches!(c, '%' | '_' | '\\') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// The membership row of a person in a group, any status.
pub async fn membership(
    conn: &mut PgConnection,
    group: &HostedGroup,
    user_id: Uuid,
) -> DbResult<Option<(GroupRole, GroupMemberStatus)>> {
    let group_id = group.id;
    Ok(sqlx::query_as(concat!(
        "SELECT role, status FROM ",
        group_members!(),
        " gm WHERE group_id = $1 AND user_id = $2",
    ))
    .bind(group_id)
    .bind(user_id)
    .fetch_optional(conn)
    .await?)
}

pub async fn activate_member(
    conn: &mut PgConnection,
    group: &HostedGroup,
    user_id: Uuid,
) -> DbResult<bool> {
    let group_id = group.id;
    let done = sqlx::query(
        "UPDATE core.group_members SET status = 'active', joined_at = now() \
         WHERE group_id = $1 AND user_id = $2 AND status <> 'active'",
    )
    .bind(group_id)
    .bind(user_id)
    .execute(conn)
    .await?;
    Ok(done.rows_affected() == 1)
}

pub async fn set_member_role(
    conn: &mut PgConnection,
    group: &HostedGroup,
    user_id: Uuid,
    role: GroupRole,
) -> DbResult<bool> {
    let group_id = group.id;
    let done = sqlx::query(
        "UPDATE core.group_members SET role = $3 \
         WHERE group_id = $1 AND user_id = $2 AND status = 'active'",
    )
    .bind(group_id)
    .bind(user_id)
    .bind(role)
    .execute(conn)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// Removes a membership (any status) and the person's unread counters in the group.
pub async fn remove_member(
    conn: &mut PgConnection,
    group: &HostedGroup,
    user_id: Uuid,
) -> DbResult<bool> {
    let group_id = group.id;
    let done = sqlx::query("DELETE FROM core.group_members WHERE group_id = $1 AND user_id = $2")
        .bind(group_id)
        .bind(user_id)
        .execute(&mut *conn)
        .await?;
    sqlx::query("DELETE FROM unread WHERE group_id = $1 AND user_id = $2")
        .bind(group_id)
        .bind(user_id)
        .execute(&mut *conn)
        .await?;
    Ok(done.rows_affected() == 1)
}

pub async fn count_owners(conn: &mut PgConnection, group: &HostedGroup) -> DbResult<i64> {
    let group_id = group.id;
    Ok(sqlx::query_scalar(
        "SELECT count(*) FROM core.group_members \
         WHERE group_id = $1 AND role = 'owner' AND status = 'active'",
    )
    .bind(group_id)
    .fetch_one(conn)
    .await?)
}

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct TopicRow {
    pub id: Uuid,
    pub group_id: Uuid,
    pub author_id: Uuid,
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
    pub group_name: String,
    pub receipt_mode: ReceiptMode,
    pub my_role: Option<GroupRole>,
}

/// A topic of a group hosted by the tenant, with its group's proof.
pub async fn topic_access(
    conn: &mut PgConnection,
    tenant: &Tenant,
    viewer: Uuid,
    topic_id: Uuid,
) -> DbResult<Option<(HostedGroup, TopicAccessRow)>> {
    let row: Option<TopicAccessRow> = sqlx::query_as(concat!(
        "SELECT t.id, t.group_id, t.author_id, u.name AS author_name, t.title, t.scope, t.pinned, \
                t.closed, t.created_at, t.last_seq, t.last_comment_at, \
                COALESCE(ur.count, 0) AS unread, \
                g.kind AS group_kind, g.name AS group_name, \
                COALESCE(g.receipt_mode, s.receipt_mode) AS receipt_mode, gm.role AS my_role \
         FROM topics t \
         JOIN groups g ON g.id = t.group_id \
         JOIN core.groups cg ON cg.id = g.id AND cg.association_id = $3 \
         CROSS JOIN settings s \
         JOIN core.users u ON u.id = t.author_id \
         LEFT JOIN ",
        group_members!(),
        " gm \
                ON gm.group_id = t.group_id AND gm.user_id = $1 AND gm.status = 'active' \
         LEFT JOIN unread ur ON ur.user_id = $1 AND ur.topic_id = t.id \
         WHERE t.id = $2",
    ))
    .bind(viewer)
    .bind(topic_id)
    .bind(tenant.id)
    .fetch_optional(conn)
    .await?;
    Ok(row.map(|a| {
        let hosted = HostedGroup {
            id: a.topic.group_id,
            association_id: tenant.id,
        };
        (hosted, a)
    }))
}

/// The topics of a group the person may see (scope bit or own), pinned first, then newest.
pub async fn topics_of_group(
    conn: &mut PgConnection,
    viewer: Uuid,
    viewer_bit: Scope,
    group: &HostedGroup,
    limit: i64,
) -> DbResult<Vec<TopicRow>> {
    let group_id = group.id;
    Ok(sqlx::query_as(
        "SELECT t.id, t.group_id, t.author_id, u.name AS author_name, t.title, t.scope, t.pinned, \
                t.closed, t.created_at, t.last_seq, t.last_comment_at, \
                COALESCE(ur.count, 0) AS unread \
         FROM topics t \
         JOIN core.users u ON u.id = t.author_id \
         LEFT JOIN unread ur ON ur.user_id = $1 AND ur.topic_id = t.id \
         WHERE t.group_id = $3 AND (t.scope & $2 <> 0 OR t.author_id = $1) \
         ORDER BY t.pinned DESC, t.last_comment_at DESC \
         LIMIT $4",
    )
    .bind(viewer)
    .bind(viewer_bit)
    .bind(group_id)
    .bind(limit)
    .fetch_all(conn)
    .await?)
}

pub struct NewTopic<'a> {
    pub id: Uuid,
    pub author_id: Uuid,
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
    .execute(conn)
    .await?;
    Ok(())
}

pub async fn update_topic(
    conn: &mut PgConnection,
    topic_id: Uuid,
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
        .execute(conn)
        .await?;
    Ok(())
}

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct CommentRow {
    pub id: Uuid,
    pub topic_id: Uuid,
    pub seq: i32,
    pub author_id: Uuid,
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
    topic_id: Uuid,
    group: &HostedGroup,
    author_id: Uuid,
    body: &str,
    important: bool,
) -> DbResult<(Uuid, i32, DateTime<Utc>)> {
    let group_id = group.id;
    let id = Uuid::now_v7();
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
    Ok((id, seq, at))
}

/// Counts the new comment as unread for every active member in scope but its author, and
/// marks the group active. One statement whatever the group's size.
#[allow(clippy::too_many_arguments)]
pub async fn spread_unread(
    conn: &mut PgConnection,
    group: &HostedGroup,
    topic_id: Uuid,
    topic_author: Uuid,
    scope: Scope,
    author_id: Uuid,
    seq: i32,
    at: DateTime<Utc>,
) -> DbResult<()> {
    let group_id = group.id;
    sqlx::query(
        "WITH g AS (UPDATE groups SET last_activity_at = $7 WHERE id = $1) \
         INSERT INTO unread (user_id, topic_id, group_id, count, first_seq, last_at) \
         SELECT gm.user_id, $2, $1, 1, $6, $7 \
         FROM core.group_members gm JOIN core.users u ON u.id = gm.user_id \
         WHERE gm.group_id = $1 AND gm.status = 'active' AND gm.user_id <> $5 \
           AND (core.scope_bit(u.doctor_kind) & $4 <> 0 OR gm.user_id = $3) \
         ON CONFLICT (user_id, topic_id) DO UPDATE \
            SET count = unread.count + 1, last_at = EXCLUDED.last_at",
    )
    .bind(group_id)
    .bind(topic_id)
    .bind(topic_author)
    .bind(scope)
    .bind(author_id)
    .bind(seq)
    .bind(at)
    .execute(conn)
    .await?;
    Ok(())
}

/// Rebuilds the unread counters of one topic after its scope changed from `old_scope`: people
/// now outside lose theirs; people newly inside count what they have not read (footprints) yet.
/// Those in both scopes keep theirs: without footprints (acknowledgement mode, "mark all as
/// read") what they read is known only from their cleared counter.
pub async fn rebuild_unread(
    conn: &mut PgConnection,
    group: &HostedGroup,
    topic_id: Uuid,
    topic_author: Uuid,
    old_scope: Scope,
    scope: Scope,
) -> DbResult<()> {
    let group_id = group.id;
    sqlx::query(
        "DELETE FROM unread ur USING core.users u \
         WHERE ur.topic_id = $1 AND u.id = ur.user_id AND ur.user_id <> $3 \
           AND core.scope_bit(u.doctor_kind) & $2 = 0",
    )
    .bind(topic_id)
    .bind(scope)
    .bind(topic_author)
    .execute(&mut *conn)
    .await?;
    sqlx::query(
        "INSERT INTO unread (user_id, topic_id, group_id, count, first_seq, last_at) \
         SELECT gm.user_id, $2, $1, count(*), min(c.seq), max(c.created_at) \
         FROM core.group_members gm \
         JOIN core.users u ON u.id = gm.user_id \
         JOIN comments c ON c.topic_id = $2 AND c.author_id <> gm.user_id AND c.deleted_at IS NULL \
         WHERE gm.group_id = $1 AND gm.status = 'active' AND gm.user_id <> $4 \
           AND core.scope_bit(u.doctor_kind) & $3 <> 0 AND core.scope_bit(u.doctor_kind) & $5 = 0 \
           AND NOT EXISTS (SELECT 1 FROM footprints f WHERE f.comment_id = c.id AND f.user_id = gm.user_id) \
         GROUP BY gm.user_id \
         ON CONFLICT (user_id, topic_id) DO NOTHING",
    )
    .bind(group_id)
    .bind(topic_id)
    .bind(scope)
    .bind(topic_author)
    .bind(old_scope)
    .execute(&mut *conn)
    .await?;
    Ok(())
}

/// Clears the person's unread counter on a topic; returns the first unread seq it held.
pub async fn take_unread(
    conn: &mut PgConnection,
    user_id: Uuid,
    topic_id: Uuid,
) -> DbResult<Option<i32>> {
    Ok(sqlx::query_scalar(
        "DELETE FROM unread WHERE user_id = $1 AND topic_id = $2 RETURNING first_seq",
    )
    .bind(user_id)
    .bind(topic_id)
    .fetch_optional(conn)
    .await?)
}

/// Records footprints on the comments of others from `from_seq` on; returns the comments
/// newly read and the time recorded.
pub async fn record_footprints(
    conn: &mut PgConnection,
    user_id: Uuid,
    topic_id: Uuid,
    from_seq: i32,
) -> DbResult<Vec<(Uuid, DateTime<Utc>)>> {
    Ok(sqlx::query_as(
        // The anti-join skips what was read before without a speculative insert per comment;
        // ON CONFLICT still settles two devices opening the topic at once.
        "INSERT INTO footprints (comment_id, user_id, read_at) \
         SELECT c.id, $1, now() FROM comments c \
         WHERE c.topic_id = $2 AND c.seq >= $3 AND c.author_id <> $1 AND c.deleted_at IS NULL \
           AND NOT EXISTS (SELECT 1 FROM footprints f WHERE f.comment_id = c.id AND f.user_id = $1) \
         ON CONFLICT DO NOTHING RETURNING comment_id, read_at",
    )
    .bind(user_id)
    .bind(topic_id)
    .bind(from_seq)
    .fetch_all(conn)
    .await?)
}

/// Clears every unread counter of the person in a group; returns the topics cleared.
pub async fn mark_group_read(
    conn: &mut PgConnection,
    user_id: Uuid,
    group: &HostedGroup,
) -> DbResult<u64> {
    let group_id = group.id;
    Ok(
        sqlx::query("DELETE FROM unread WHERE user_id = $1 AND group_id = $2")
            .bind(user_id)
            .bind(group_id)
            .execute(conn)
            .await?
            .rows_affected(),
    )
}

/// The comments of a topic in order (at most `limit`, the latest ones).
pub async fn comments_of_topic(
    conn: &mut PgConnection,
    topic_id: Uuid,
    limit: i64,
) -> DbResult<Vec<CommentRow>> {
    Ok(sqlx::query_as(&format!(
        "SELECT * FROM ({COMMENT_SELECT} WHERE c.topic_id = $1 ORDER BY c.seq DESC LIMIT $2) x \
         ORDER BY seq"
    ))
    .bind(topic_id)
    .bind(limit)
    .fetch_all(conn)
    .await?)
}

pub async fn comment(conn: &mut PgConnection, comment_id: Uuid) -> DbResult<Option<CommentRow>> {
    Ok(sqlx::query_as(&format!("{COMMENT_SELECT} WHERE c.id = $1"))
        .bind(comment_id)
        .fetch_optional(conn)
        .await?)
}

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct ReaderRow {
    pub comment_id: Uuid,
    pub user_id: Uuid,
    pub name: String,
    pub at: DateTime<Utc>,
}

/// Footprints (or acknowledgements) on the comments of a topic from `from_seq` on, oldest first.
/// `name` is left empty: the caller knows the group's members already (see [`user_names`] for
/// the readers who have left), which saves a lookup per footprint.
pub async fn readers_of_topic(
    conn: &mut PgConnection,
    topic_id: Uuid,
    from_seq: i32,
    acknowledgements: bool,
) -> DbResult<Vec<ReaderRow>> {
    let (table, at) = if acknowledgements {
        ("acknowledgements", "r.at")
    } else {
        ("footprints", "r.read_at")
    };
    Ok(sqlx::query_as(&format!(
        "SELECT r.comment_id, r.user_id, '' AS name, {at} AS at \
         FROM {table} r JOIN comments c ON c.id = r.comment_id \
         WHERE c.topic_id = $1 AND c.seq >= $2 ORDER BY {at}"
    ))
    .bind(topic_id)
    .bind(from_seq)
    .fetch_all(conn)
    .await?)
}

/// Names of people by id (readers who are no longer in the group).
pub async fn user_names(conn: &mut PgConnection, ids: &[Uuid]) -> DbResult<Vec<(Uuid, String)>> {
    Ok(
        sqlx::query_as("SELECT id, name FROM core.users WHERE id = ANY($1)")
            .bind(ids)
            .fetch_all(conn)
            .await?,
    )
}

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct VersionRow {
    pub comment_id: Uuid,
    pub version: i32,
    pub body: String,
    pub important: bool,
    pub written_at: DateTime<Utc>,
}

/// Earlier versions of the edited comments of a topic, oldest first.
pub async fn versions_of_topic(
    conn: &mut PgConnection,
    topic_id: Uuid,
) -> DbResult<Vec<VersionRow>> {
    Ok(sqlx::query_as(
        "SELECT v.comment_id, v.version, v.body, v.important, v.written_at \
         FROM comment_versions v JOIN comments c ON c.id = v.comment_id \
         WHERE c.topic_id = $1 AND c.version > 1 ORDER BY v.comment_id, v.version",
    )
    .bind(topic_id)
    .fetch_all(conn)
    .await?)
}

/// Keeps the current text as a version, then replaces it.
pub async fn edit_comment(
    conn: &mut PgConnection,
    comment_id: Uuid,
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
    .execute(conn)
    .await?;
    Ok(())
}

/// Marks a comment deleted (the row stays) and takes it out of unread counters.
pub async fn delete_comment(
    conn: &mut PgConnection,
    comment_id: Uuid,
    topic_id: Uuid,
    author_id: Uuid,
    seq: i32,
    by: Uuid,
) -> DbResult<()> {
    sqlx::query("UPDATE comments SET deleted_at = now(), deleted_by = $2 WHERE id = $1")
        .bind(comment_id)
        .bind(by)
        .execute(&mut *conn)
        .await?;
    sqlx::query(
        "WITH gone AS (DELETE FROM unread WHERE topic_id = $1 AND first_seq <= $2 AND count = 1 \
                       AND user_id <> $3 RETURNING user_id) \
         UPDATE unread SET count = count - 1 \
         WHERE topic_id = $1 AND first_seq <= $2 AND count > 1 AND user_id <> $3",
    )
    .bind(topic_id)
    .bind(seq)
    .bind(author_id)
    .execute(conn)
    .await?;
    Ok(())
}

/// Records 「確認しました」; returns the time, or `None` if already acknowledged.
pub async fn acknowledge(
    conn: &mut PgConnection,
    comment_id: Uuid,
    user_id: Uuid,
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

/// Unread counts of a person per group in this tenant.
pub async fn unread_by_group(conn: &mut PgConnection, user_id: Uuid) -> DbResult<Vec<(Uuid, i64)>> {
    Ok(sqlx::query_as(
        "SELECT group_id, sum(count)::bigint FROM unread WHERE user_id = $1 GROUP BY group_id",
    )
    .bind(user_id)
    .fetch_all(conn)
    .await?)
}

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct UnreadItemRow {
    pub group_id: Uuid,
    pub group_name: String,
    pub group_kind: GroupKind,
    pub topic_id: Uuid,
    pub topic_title: String,
    pub comment_id: Uuid,
    pub seq: i32,
    pub author_name: String,
    pub body: String,
    pub important: bool,
    pub created_at: DateTime<Utc>,
}

/// The person's unread comments in this tenant, newest first: at most `per_topic` of each
/// topic and `limit` in all. Starts from the unread counters, so it costs what is unread, not
/// what was ever written.
pub async fn unread_items(
    conn: &mut PgConnection,
    user_id: Uuid,
    viewer_bit: Scope,
    per_topic: i64,
    limit: i64,
) -> DbResult<Vec<UnreadItemRow>> {
    Ok(sqlx::query_as(concat!(
        "SELECT g.id AS group_id, g.name AS group_name, g.kind AS group_kind, t.id AS topic_id, \
                t.title AS topic_title, c.id AS comment_id, c.seq, u.name AS author_name, c.body, \
                c.important, c.created_at \
         FROM unread ur \
         JOIN topics t ON t.id = ur.topic_id \
         JOIN groups g ON g.id = ur.group_id \
         JOIN ",
        group_members!(),
        " gm ON gm.group_id = ur.group_id AND gm.user_id = $1 AND gm.status = 'active' \
         JOIN LATERAL ( \
             SELECT * FROM comments c WHERE c.topic_id = ur.topic_id AND c.seq >= ur.first_seq \
               AND c.author_id <> $1 AND c.deleted_at IS NULL ORDER BY c.seq DESC LIMIT $4 \
         ) c ON true \
         JOIN core.users u ON u.id = c.author_id \
         WHERE ur.user_id = $1 AND (t.scope & $2 <> 0 OR t.author_id = $1) \
         ORDER BY c.created_at DESC LIMIT $3",
    ))
    .bind(user_id)
    .bind(viewer_bit)
    .bind(limit)
    .bind(per_topic)
    .fetch_all(conn)
    .await?)
}

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct EventRow {
    pub id: i64,
    pub association_id: Uuid,
    pub group_id: Uuid,
    pub topic_id: Option<Uuid>,
    pub kind: String,
    pub scope: i16,
    pub actor_id: Uuid,
    pub topic_author_id: Option<Uuid>,
    pub comment_ids: Vec<Uuid>,
    pub user_id: Option<Uuid>,
}

pub struct NewEvent<'a> {
    pub topic_id: Option<Uuid>,
    pub kind: &'a str,
    pub scope: i16,
    pub actor_id: Uuid,
    pub topic_author_id: Option<Uuid>,
    pub comment_ids: &'a [Uuid],
    pub user_id: Option<Uuid>,
}

/// Writes an event in the caller's transaction; returns its id (published after commit).
pub async fn insert_event(
    conn: &mut PgConnection,
    group: &HostedGroup,
    e: &NewEvent<'_>,
) -> DbResult<i64> {
    Ok(sqlx::query_scalar(
        "INSERT INTO core.events (association_id, group_id, topic_id, kind, scope, actor_id, \
                                  topic_author_id, comment_ids, user_id) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) RETURNING id",
    )
    .bind(group.association_id)
    .bind(group.id)
    .bind(e.topic_id)
    .bind(e.kind)
    .bind(e.scope)
    .bind(e.actor_id)
    .bind(e.topic_author_id)
    .bind(e.comment_ids)
    .bind(e.user_id)
    .fetch_one(conn)
    .await?)
}

/// Events after `after` in the person's active groups (for catch-up), oldest first.
pub async fn events_since(
    pool: &PgPool,
    user_id: Uuid,
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
    pub groups: Vec<Uuid>,
    /// The associations hosting those groups, by slug, and their names in the same order.
    pub host_slugs: Vec<String>,
    pub host_names: Vec<String>,
}

pub async fn live_state(
    pool: &PgPool,
    user_id: Uuid,
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

/// The associations hosting a person's groups, with how many of them they are active in and
/// invited to: what the home page and the badges need from the directory, in one short row
/// per association.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct DirectoryRow {
    pub association_id: Uuid,
    pub slug: String,
    pub name: String,
    pub active: i64,
    pub invited: i64,
}

#[tracing::instrument(name = "db.directory_of", skip_all)]
pub async fn directory_of(pool: &PgPool, user_id: Uuid) -> DbResult<Vec<DirectoryRow>> {
    Ok(sqlx::query_as(concat!(
        "SELECT a.id AS association_id, a.slug, a.name, d.active, d.invited \
         FROM (SELECT association_id, \
                      count(*) FILTER (WHERE status = 'active') AS active, \
                      count(*) FILTER (WHERE status = 'invited') AS invited \
               FROM ",
        group_members!(),
        " gm WHERE user_id = $1 AND status IN ('active', 'invited') \
               GROUP BY association_id) d \
         JOIN core.associations a ON a.id = d.association_id \
         ORDER BY a.slug",
    ))
    .bind(user_id)
    .fetch_all(pool)
    .await?)
}
