//! Members of a group: invitations (by person and by e-mail), requests to join, roles and removal; the directory an inviter may pick from.

use super::*;
use musubi_types::PersonId;

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct GroupMemberRow {
    pub user_id: PersonId,
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
    /// When the membership ends by itself, if it does.
    pub until: Option<DateTime<Utc>>,
}

/// The members of a group (every status), owners first, then by kana.
pub async fn members(
    conn: &mut PgConnection,
    group: &HostedGroup,
) -> DbResult<Vec<GroupMemberRow>> {
    let (association_id, group_id) = (group.association_id, group.id);
    // `group_members!()` spelled out as scalar subqueries (see `member_counts!`): the host
    // membership's status and facility, and the first active association for those from
    // elsewhere, which also says whether they are active anywhere. `OFFSET 0` keeps the inner
    // query whole, so that each subquery runs once per member, not again in the outer filter.
    let sql = group.plan_slot.sql(
        "SELECT user_id, name, name_kana, profession, doctor_kind, scope_bit, role, status, \
                invited_by_email, until, \
                facility_name, \
                CASE WHEN host_status IS NULL THEN first_association END AS home_association \
         FROM (SELECT u.id AS user_id, u.name, u.name_kana, u.profession, u.doctor_kind, \
                      core.scope_bit(u.doctor_kind) AS scope_bit, gm.role, gm.status, \
                      gm.invited_by_email, gm.until, u.name_kana AS kana, \
                      (SELECT m.status FROM core.memberships m \
                       WHERE m.user_id = gm.user_id AND m.association_id = $1) AS host_status, \
                      (SELECT f.name FROM core.memberships m \
                       JOIN core.facilities f ON f.id = m.facility_id \
                       WHERE m.user_id = gm.user_id AND m.association_id = $1) AS facility_name, \
                      (SELECT a.name FROM core.memberships om \
                       JOIN core.associations a ON a.id = om.association_id \
                       WHERE om.user_id = gm.user_id AND om.status = 'active' \
                       ORDER BY a.slug LIMIT 1) AS first_association \
               FROM core.group_members gm \
               JOIN core.users u ON u.id = gm.user_id \
               WHERE gm.group_id = $2 AND u.status = 'active' \
               OFFSET 0) x \
         WHERE first_association IS NOT NULL \
           AND (host_status IS NULL OR host_status = 'active') \
         ORDER BY role = 'owner' DESC, kana",
    );
    Ok(sqlx::query_as(&sql)
        .bind(association_id)
        .bind(group_id)
        .fetch_all(conn)
        .await?)
}

/// Adds or updates a membership row; returns false if an active membership already existed.
pub async fn upsert_member(
    conn: &mut PgConnection,
    group: &HostedGroup,
    user_id: PersonId,
    role: GroupRole,
    status: GroupMemberStatus,
    invited_by: Option<PersonId>,
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
    invited_by: PersonId,
    event_kind: &str,
) -> DbResult<Option<(i64, PersonId)>> {
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
    pub user_id: PersonId,
    pub name: String,
    pub name_kana: String,
    pub profession: Profession,
    pub doctor_kind: Option<DoctorKind>,
    pub association_name: String,
    pub facility_name: Option<String>,
    /// Their membership in the group, if any (an invitation by e-mail is not shown).
    pub group_status: Option<GroupMemberStatus>,
}

/// The directory an inviter may pick from: the active people of the associations the inviter
/// is an active member of and of their neighbours, whose name, reading or facility contains
/// `folded` (already folded by [`musubi_types::japanese::fold`]) or whose profession is one of
/// `professions`; by kana. Each person once, shown with their membership in the group's host
/// first, else in their first association of the directory.
pub async fn invite_candidates(
    conn: &mut PgConnection,
    group: &HostedGroup,
    inviter: PersonId,
    folded: &str,
    professions: &[Profession],
    limit: i64,
) -> DbResult<Vec<CandidateRow>> {
    directory_candidates(
        conn,
        group.association_id,
        Some(group.id),
        inviter,
        folded,
        professions,
        limit,
    )
    .await
}

/// [`invite_candidates`] for no group in particular (people to write to), shown with their
/// membership in `home` first; `group_status` is that of `group`, if one is given.
pub async fn directory_candidates(
    conn: &mut PgConnection,
    home: AssociationId,
    group: Option<GroupId>,
    inviter: PersonId,
    folded: &str,
    professions: &[Profession],
    limit: i64,
) -> DbResult<Vec<CandidateRow>> {
    let pattern = format!("%{}%", like_escape(folded));
    Ok(sqlx::query_as(&format!(
        "WITH visible AS ({VISIBLE}) \
         SELECT u.id AS user_id, u.name, u.name_kana, u.profession, u.doctor_kind, \
                a.name AS association_name, f.name AS facility_name, \
                CASE WHEN gm.status = 'invited' AND gm.invited_by_email THEN NULL \
                     ELSE gm.status END AS group_status \
         FROM core.users u \
         JOIN LATERAL ( \
             SELECT m.association_id, m.facility_id FROM core.memberships m \
             WHERE m.user_id = u.id AND m.status = 'active' \
               AND m.association_id IN (SELECT association_id FROM visible) \
             ORDER BY m.association_id = $3 DESC, m.association_id LIMIT 1) m ON true \
         JOIN core.associations a ON a.id = m.association_id \
         LEFT JOIN core.facilities f ON f.id = m.facility_id \
         LEFT JOIN core.group_members gm ON gm.group_id = $2 AND gm.user_id = u.id \
         WHERE u.status = 'active' \
           AND (u.search_key LIKE $4 OR f.search_key LIKE $4 OR u.profession = ANY($6)) \
         ORDER BY u.name_kana, u.id LIMIT $5"
    ))
    .bind(inviter)
    .bind(group)
    .bind(home)
    .bind(pattern)
    .bind(limit)
    .bind(professions.iter().map(|p| p.code()).collect::<Vec<_>>())
    .fetch_all(conn)
    .await?)
}

/// A facility of the directory, to invite its whole team.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct FacilityCandidateRow {
    pub id: Uuid,
    pub name: String,
    pub kind: FacilityKind,
    pub association_name: String,
    /// Its active people not yet in the group (members, invitees and requests left out).
    pub people: i64,
}

/// The facilities of the inviter's directory (see [`invite_candidates`]) whose name contains
/// `folded`, by name; only those with someone left to invite.
pub async fn facility_candidates(
    conn: &mut PgConnection,
    group: &HostedGroup,
    inviter: PersonId,
    folded: &str,
    limit: i64,
) -> DbResult<Vec<FacilityCandidateRow>> {
    let pattern = format!("%{}%", like_escape(folded));
    Ok(sqlx::query_as(&format!(
        "WITH visible AS ({VISIBLE}) \
         SELECT f.id, f.name, f.kind, a.name AS association_name, p.people \
         FROM core.facilities f \
         JOIN core.associations a ON a.id = f.association_id \
         JOIN LATERAL ( \
             SELECT count(*) AS people FROM core.memberships m \
             JOIN core.users u ON u.id = m.user_id \
             WHERE m.facility_id = f.id AND m.association_id = f.association_id \
               AND m.status = 'active' AND u.status = 'active' AND u.id <> $1 \
               AND NOT EXISTS (SELECT 1 FROM core.group_members gm \
                               WHERE gm.group_id = $2 AND gm.user_id = u.id)) p ON p.people > 0 \
         WHERE f.association_id IN (SELECT association_id FROM visible) AND f.search_key LIKE $3 \
         ORDER BY f.association_id = $5 DESC, f.name, f.id LIMIT $4"
    ))
    .bind(inviter)
    .bind(group.id)
    .bind(pattern)
    .bind(limit)
    .bind(group.association_id)
    .fetch_all(conn)
    .await?)
}

/// Whether `person` is active in an association of the inviter's directory.
pub async fn in_directory_of(
    conn: &mut PgConnection,
    inviter: PersonId,
    person: PersonId,
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

/// The associations whose people an inviter ($1) may see: those they are active in, and their
/// neighbours (`core.association_neighbours`).
const VISIBLE: &str = "SELECT v.association_id FROM core.memberships v \
     WHERE v.user_id = $1 AND v.status = 'active' \
     UNION SELECT n.neighbour_id FROM core.memberships v \
     JOIN core.association_neighbours n ON n.association_id = v.association_id \
     WHERE v.user_id = $1 AND v.status = 'active'";

/// Escapes `%`, `_` and `\` for a LIKE pattern.
pub(super) fn like_escape(s: &str) -> String {
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
    user_id: PersonId,
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
    user_id: PersonId,
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
    user_id: PersonId,
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

/// The active people working at `facility`, a facility of the inviter's directory (see
/// [`invite_candidates`]); `None` if it is not one.
pub async fn facility_people(
    conn: &mut PgConnection,
    inviter: PersonId,
    facility: Uuid,
) -> DbResult<Option<Vec<PersonId>>> {
    let known: bool = sqlx::query_scalar(&format!(
        "SELECT EXISTS (SELECT 1 FROM core.facilities \
                        WHERE id = $2 AND association_id IN ({VISIBLE}))"
    ))
    .bind(inviter)
    .bind(facility)
    .fetch_one(&mut *conn)
    .await?;
    if !known {
        return Ok(None);
    }
    Ok(Some(
        sqlx::query_scalar(
            "SELECT m.user_id FROM core.memberships m \
             JOIN core.facilities f ON f.id = m.facility_id AND f.association_id = m.association_id \
             JOIN core.users u ON u.id = m.user_id \
             WHERE m.facility_id = $1 AND m.status = 'active' \
               AND u.status = 'active' ORDER BY u.name_kana, u.id",
        )
        .bind(facility)
        .fetch_all(conn)
        .await?,
    ))
}

/// One group of the association a departing person belongs to (any status).
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct DepartureRow {
    pub group_id: GroupId,
    pub name: String,
    pub kind: GroupKind,
    pub role: GroupRole,
    pub status: GroupMemberStatus,
    /// They are its only active owner: someone must take the group over.
    pub only_owner: bool,
}

/// Every group `tenant` hosts that `person` belongs to (patient groups first), with its proof.
pub async fn memberships_in_host(
    conn: &mut PgConnection,
    tenant: &Tenant,
    person: PersonId,
) -> DbResult<Vec<(HostedGroup, DepartureRow)>> {
    let rows: Vec<DepartureRow> = sqlx::query_as(
        "SELECT gm.group_id, g.name, g.kind, gm.role, gm.status, \
                (gm.role = 'owner' AND gm.status = 'active' AND NOT EXISTS ( \
                    SELECT 1 FROM core.group_members o \
                    WHERE o.group_id = gm.group_id AND o.role = 'owner' \
                      AND o.status = 'active' AND o.user_id <> gm.user_id)) AS only_owner \
         FROM core.group_members gm JOIN groups g ON g.id = gm.group_id \
         JOIN core.groups cg ON cg.id = g.id AND cg.association_id = $2 \
         WHERE gm.user_id = $1 ORDER BY g.kind = 'patient' DESC, g.name, g.id",
    )
    .bind(person)
    .bind(tenant.id)
    .fetch_all(conn)
    .await?;
    Ok(rows
        .into_iter()
        .map(|r| {
            let hosted = super::hosted(r.group_id, tenant);
            (hosted, r)
        })
        .collect())
}

/// Sets (or clears) when a membership ends by itself; false if there is no such membership.
pub async fn set_member_until(
    conn: &mut PgConnection,
    group: &HostedGroup,
    user_id: PersonId,
    until: Option<DateTime<Utc>>,
) -> DbResult<bool> {
    let done = sqlx::query(
        "UPDATE core.group_members SET until = $3 WHERE group_id = $1 AND user_id = $2",
    )
    .bind(group.id)
    .bind(user_id)
    .bind(until)
    .execute(conn)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// Memberships whose end has come: (host association's slug, group, person), oldest first.
pub async fn expired_memberships(
    pool: &sqlx::PgPool,
    limit: i64,
) -> DbResult<Vec<(String, GroupId, PersonId)>> {
    Ok(sqlx::query_as(
        "SELECT a.slug, gm.group_id, gm.user_id FROM core.group_members gm \
         JOIN core.associations a ON a.id = gm.association_id \
         WHERE gm.until <= now() ORDER BY gm.until LIMIT $1",
    )
    .bind(limit)
    .fetch_all(pool)
    .await?)
}

/// Removes a membership whose end has come (checked again under the row's lock); true if it
/// did.
pub async fn remove_expired_member(
    conn: &mut PgConnection,
    group: &HostedGroup,
    user_id: PersonId,
) -> DbResult<bool> {
    let gone: Option<PersonId> = sqlx::query_scalar(
        "DELETE FROM core.group_members WHERE group_id = $1 AND user_id = $2 AND until <= now() \
         RETURNING user_id",
    )
    .bind(group.id)
    .bind(user_id)
    .fetch_optional(&mut *conn)
    .await?;
    if gone.is_none() {
        return Ok(false);
    }
    sqlx::query("DELETE FROM unread WHERE group_id = $1 AND user_id = $2")
        .bind(group.id)
        .bind(user_id)
        .execute(&mut *conn)
        .await?;
    Ok(true)
}

/// Removes a membership (any status) and the person's unread counters in the group.
pub async fn remove_member(
    conn: &mut PgConnection,
    group: &HostedGroup,
    user_id: PersonId,
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

/// Locks the group's active owners until the transaction ends and counts them, so that two
/// owners removing each other at once cannot leave the group without one: the second waits
/// and counts again.
pub async fn lock_owners(conn: &mut PgConnection, group: &HostedGroup) -> DbResult<i64> {
    let owners: Vec<PersonId> = sqlx::query_scalar(
        "SELECT user_id FROM core.group_members \
         WHERE group_id = $1 AND role = 'owner' AND status = 'active' FOR UPDATE",
    )
    .bind(group.id)
    .fetch_all(conn)
    .await?;
    Ok(owners.len() as i64)
}
