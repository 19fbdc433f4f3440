//! Groups and the directory of who belongs where; their members, topics, comments, unread
//! counters (and footprints) and live events in the submodules of those names.
//!
//! The directory (`core.groups`, `core.group_members`, `core.events`) spans associations; the
//! content lives in the host association's schema and is reached through a tenant transaction
//! (`Db::tenant_tx`). Every list query here is bounded by what one person can see: unread
//! counters, not comment scans, answer "what is new".
//!
//! Everything that reads or changes one group's membership or content takes a [`HostedGroup`],
//! which only the loaders here make, and only for a group hosted by the tenant they were given:
//! a group of another association is simply not found, whatever the caller forgets.

use crate::plans::PlanSlot;
use crate::{DbResult, Tenant};
use chrono::{DateTime, Utc};
use musubi_types::GroupId;
use musubi_types::{AssociationId, PersonId};
use musubi_types::{
    DoctorKind, FacilityKind, GroupKind, GroupMemberStatus, GroupRole, JoinPolicy, Profession,
    ReceiptMode, Scope,
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

/// The same rule as [`group_members!`] as a condition on one row `gm` of `core.group_members`,
/// for lookups of one person in one group. Written as scalar subqueries, which PostgreSQL plans
/// on their own instead of searching join orders with them: a connection moved to another
/// association re-plans every statement it runs, and the `EXISTS` form made the topic's access
/// row and the member list take 1.5 ms each to plan, a quarter of a topic view's time in
/// PostgreSQL. Set-wide queries (everyone of a group, every group of a person) keep the join form.
macro_rules! member_counts {
    () => {
        "COALESCE((SELECT hm.status FROM core.memberships hm \
                   WHERE hm.user_id = gm.user_id AND hm.association_id = gm.association_id), \
                  'active') = 'active' \
         AND (SELECT true FROM core.memberships am \
              WHERE am.user_id = gm.user_id AND am.status = 'active' LIMIT 1)"
    };
}

mod comments;
mod events;
mod members;
pub mod messages;
mod patients;
pub mod search;
mod topics;
mod unread;

pub use comments::*;
pub use events::*;
pub use members::*;
pub use patients::*;
pub use topics::*;
pub use unread::*;

/// A group the person belongs to (or is invited to / asked to join), with its host.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct MyGroupRow {
    pub group_id: GroupId,
    pub association_id: AssociationId,
    pub slug: String,
    pub association_name: String,
    pub kind: GroupKind,
    pub role: GroupRole,
    pub status: GroupMemberStatus,
}

/// Every group of `user_id` in the directory, any status.
#[tracing::instrument(name = "db.groups_of", skip_all)]
pub async fn groups_of(pool: &PgPool, user_id: PersonId) -> DbResult<Vec<MyGroupRow>> {
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
    id: GroupId,
    association_id: AssociationId,
    plan_slot: PlanSlot,
}

impl HostedGroup {
    pub fn id(&self) -> GroupId {
        self.id
    }
    /// The host association (the tenant it was loaded through).
    pub fn association_id(&self) -> AssociationId {
        self.association_id
    }
    /// The host association's plan slot (see [`crate::plans`]).
    pub fn plan_slot(&self) -> PlanSlot {
        self.plan_slot
    }
}

/// The proof for a group this module has just created or found hosted by `tenant`.
pub(super) fn hosted(id: GroupId, tenant: &Tenant) -> HostedGroup {
    HostedGroup {
        id,
        association_id: tenant.id,
        plan_slot: tenant.plan_slot(),
    }
}

/// The group `group_id` if `tenant` hosts it.
pub async fn hosted_group(
    conn: &mut PgConnection,
    tenant: &Tenant,
    group_id: GroupId,
) -> DbResult<Option<HostedGroup>> {
    let found: Option<GroupId> = sqlx::query_scalar(
        "SELECT g.id FROM groups g \
         JOIN core.groups cg ON cg.id = g.id AND cg.association_id = $2 WHERE g.id = $1",
    )
    .bind(group_id)
    .bind(tenant.id)
    .fetch_optional(conn)
    .await?;
    Ok(found.map(|id| hosted(id, tenant)))
}

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct GroupRow {
    pub id: GroupId,
    pub kind: GroupKind,
    pub name: String,
    pub description: String,
    pub join_policy: JoinPolicy,
    /// The group's own mode, if it overrides the association's default.
    pub receipt_override: Option<ReceiptMode>,
    /// The mode in force.
    pub receipt_mode: ReceiptMode,
    pub created_by: PersonId,
    pub created_at: DateTime<Utc>,
    pub last_activity_at: DateTime<Utc>,
    /// Care has ended: the group is read-only since then.
    pub archived_at: Option<DateTime<Utc>>,
    /// The asking person's membership (`None` if not an active member).
    pub my_role: Option<GroupRole>,
    pub my_status: Option<GroupMemberStatus>,
}

const GROUP_SELECT: &str = concat!(
    "SELECT g.id, g.kind, g.name, g.description, g.join_policy, \
     g.receipt_mode AS receipt_override, COALESCE(g.receipt_mode, s.receipt_mode) AS receipt_mode, \
     g.created_by, g.created_at, g.last_activity_at, g.archived_at, \
     gm.role AS my_role, gm.status AS my_status \
     FROM groups g CROSS JOIN settings s \
     JOIN core.groups cg ON cg.id = g.id AND cg.association_id = $2 \
     LEFT JOIN core.group_members gm ON gm.group_id = g.id AND gm.user_id = $1 AND ",
    member_counts!(),
);

/// One group hosted by the tenant, with the asking person's membership.
pub async fn group(
    conn: &mut PgConnection,
    tenant: &Tenant,
    viewer: PersonId,
    group_id: GroupId,
) -> DbResult<Option<(HostedGroup, GroupRow)>> {
    hosted_group_row(conn, tenant, viewer, group_id, "").await
}

/// [`group`], its row locked until the end of the transaction: for a change computed from the
/// group as it is (a patch of its settings).
pub async fn group_for_update(
    conn: &mut PgConnection,
    tenant: &Tenant,
    viewer: PersonId,
    group_id: GroupId,
) -> DbResult<Option<(HostedGroup, GroupRow)>> {
    hosted_group_row(conn, tenant, viewer, group_id, " FOR UPDATE OF g").await
}

async fn hosted_group_row(
    conn: &mut PgConnection,
    tenant: &Tenant,
    viewer: PersonId,
    group_id: GroupId,
    lock: &str,
) -> DbResult<Option<(HostedGroup, GroupRow)>> {
    let sql = tenant
        .plan_slot()
        .sql(&format!("{GROUP_SELECT} WHERE g.id = $3{lock}"));
    let row: Option<GroupRow> = sqlx::query_as(&sql)
        .bind(viewer)
        .bind(tenant.id)
        .bind(group_id)
        .fetch_optional(conn)
        .await?;
    Ok(row.map(|g| {
        let hosted = hosted(g.id, tenant);
        (hosted, g)
    }))
}

/// Several groups hosted by the tenant (the person's), most recently active first.
pub async fn groups_by_ids(
    conn: &mut PgConnection,
    tenant: &Tenant,
    viewer: PersonId,
    ids: &[GroupId],
) -> DbResult<Vec<GroupRow>> {
    Ok(sqlx::query_as(&tenant.plan_slot().sql(&format!(
        "{GROUP_SELECT} WHERE g.id = ANY($3) ORDER BY g.last_activity_at DESC"
    )))
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
    viewer: PersonId,
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
    pub id: GroupId,
    pub kind: GroupKind,
    pub name: &'a str,
    pub description: &'a str,
    pub join_policy: JoinPolicy,
    pub receipt_mode: Option<ReceiptMode>,
    pub created_by: PersonId,
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
    Ok(hosted(g.id, tenant))
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

/// The associations hosting a person's groups, with how many of them they are active in and
/// invited to: what the home page and the badges need from the directory, in one short row
/// per association.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct DirectoryRow {
    pub association_id: AssociationId,
    pub slug: String,
    pub name: String,
    pub active: i64,
    pub invited: i64,
}

#[tracing::instrument(name = "db.directory_of", skip_all)]
pub async fn directory_of(pool: &PgPool, user_id: PersonId) -> DbResult<Vec<DirectoryRow>> {
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
