//! Invitations to join an association (in `core`: the invitee may have no account yet).
//! Only the SHA-256 of an invitation's token is stored.

use crate::DbResult;
use chrono::{DateTime, Utc};
use musubi_types::AssociationRole;
use musubi_types::{AssociationId, PersonId};
use sqlx::{PgConnection, PgPool};
use uuid::Uuid;

#[derive(Debug, Clone)]
pub struct NewInvitation<'a> {
    pub token_hash: &'a [u8],
    pub association_id: AssociationId,
    /// None for an in-person invitation (the link is handed over on paper or a screen).
    pub email: Option<&'a str>,
    pub role: AssociationRole,
    pub facility_id: Option<Uuid>,
    /// None when an operator invites from the command line.
    pub invited_by: Option<PersonId>,
    pub expires_at: DateTime<Utc>,
    /// A group's owner invited them to that group (the association's own group).
    pub group_id: Option<Uuid>,
}

pub async fn insert(conn: &mut PgConnection, i: &NewInvitation<'_>) -> DbResult<Uuid> {
    let id = Uuid::now_v7();
    sqlx::query(
        "INSERT INTO core.invitations (id, token_hash, association_id, email, role, facility_id, \
             invited_by, expires_at, group_id) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
    )
    .bind(id)
    .bind(i.token_hash)
    .bind(i.association_id)
    .bind(i.email)
    .bind(i.role)
    .bind(i.facility_id)
    .bind(i.invited_by)
    .bind(i.expires_at)
    .bind(i.group_id)
    .execute(conn)
    .await?;
    Ok(id)
}

/// A pending invitation with what its pages show.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct InvitationRow {
    pub id: Uuid,
    pub association_id: AssociationId,
    pub association_slug: String,
    pub association_name: String,
    pub email: Option<String>,
    pub role: AssociationRole,
    pub facility_id: Option<Uuid>,
    pub facility_name: Option<String>,
    pub invited_by: Option<PersonId>,
    pub invited_by_name: Option<String>,
    pub created_at: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
    /// The group it makes them a member of, when a group's owner made it.
    pub group_id: Option<Uuid>,
}

const SELECT: &str = "SELECT i.id, i.association_id, a.slug AS association_slug, \
        a.name AS association_name, i.email, i.role, i.facility_id, f.name AS facility_name, \
        i.invited_by, u.name AS invited_by_name, i.created_at, i.expires_at, i.group_id \
     FROM core.invitations i \
     JOIN core.associations a ON a.id = i.association_id \
     LEFT JOIN core.facilities f ON f.id = i.facility_id \
     LEFT JOIN core.users u ON u.id = i.invited_by";

/// Neither accepted nor revoked nor expired.
const PENDING: &str = "i.accepted_at IS NULL AND i.revoked_at IS NULL AND i.expires_at > now()";

/// The pending invitations of an association, newest first.
#[tracing::instrument(name = "db.pending_invitations", skip_all)]
pub async fn pending_of(
    pool: &PgPool,
    association_id: AssociationId,
) -> DbResult<Vec<InvitationRow>> {
    Ok(sqlx::query_as(&format!(
        "{SELECT} WHERE i.association_id = $1 AND {PENDING} ORDER BY i.created_at DESC, i.id"
    ))
    .bind(association_id)
    .fetch_all(pool)
    .await?)
}

/// The pending invitation behind a token; used, revoked, expired and unknown tokens alike
/// find nothing.
#[tracing::instrument(name = "db.invitation_by_token", skip_all)]
pub async fn pending_by_token(pool: &PgPool, token_hash: &[u8]) -> DbResult<Option<InvitationRow>> {
    Ok(
        sqlx::query_as(&format!("{SELECT} WHERE i.token_hash = $1 AND {PENDING}"))
            .bind(token_hash)
            .fetch_optional(pool)
            .await?,
    )
}

/// Revokes a pending invitation of the association; false if there is none with that id.
pub async fn revoke(
    conn: &mut PgConnection,
    association_id: AssociationId,
    id: Uuid,
) -> DbResult<bool> {
    let r = sqlx::query(&format!(
        "UPDATE core.invitations i SET revoked_at = now() \
         WHERE i.id = $1 AND i.association_id = $2 AND {PENDING}"
    ))
    .bind(id)
    .bind(association_id)
    .execute(conn)
    .await?;
    Ok(r.rows_affected() == 1)
}

/// Marks the invitation accepted by `user_id`, if it is still pending: exactly one
/// acceptance wins, however many race.
pub async fn claim(conn: &mut PgConnection, id: Uuid, user_id: PersonId) -> DbResult<bool> {
    let r = sqlx::query(&format!(
        "UPDATE core.invitations i SET accepted_at = now(), accepted_by = $2 \
         WHERE i.id = $1 AND {PENDING}"
    ))
    .bind(id)
    .bind(user_id)
    .execute(conn)
    .await?;
    Ok(r.rows_affected() == 1)
}

/// Whether the facility belongs to the association.
pub async fn facility_belongs_to(
    pool: &PgPool,
    association_id: AssociationId,
    facility_id: Uuid,
) -> DbResult<bool> {
    Ok(sqlx::query_scalar(
        "SELECT EXISTS (SELECT 1 FROM core.facilities WHERE id = $1 AND association_id = $2)",
    )
    .bind(facility_id)
    .bind(association_id)
    .fetch_one(pool)
    .await?)
}

/// The membership an accepted invitation gives: new, or a deactivated one made active again
/// with the invitation's role and facility. False when the person is an active member
/// already (nothing changes).
pub async fn join(
    conn: &mut PgConnection,
    user_id: PersonId,
    association_id: AssociationId,
    role: AssociationRole,
    facility_id: Option<Uuid>,
) -> DbResult<bool> {
    let r = sqlx::query(
        "INSERT INTO core.memberships (user_id, association_id, role, facility_id) \
         VALUES ($1, $2, $3, $4) \
         ON CONFLICT (user_id, association_id) DO UPDATE \
             SET role = EXCLUDED.role, facility_id = EXCLUDED.facility_id, status = 'active' \
             WHERE core.memberships.status <> 'active'",
    )
    .bind(user_id)
    .bind(association_id)
    .bind(role)
    .bind(facility_id)
    .execute(conn)
    .await?;
    Ok(r.rows_affected() == 1)
}

/// Whether the person with this e-mail is an active member of the association.
pub async fn is_active_member_by_email(
    pool: &PgPool,
    association_id: AssociationId,
    email: &str,
) -> DbResult<bool> {
    Ok(sqlx::query_scalar(
        "SELECT EXISTS (SELECT 1 FROM core.memberships m JOIN core.users u ON u.id = m.user_id \
         WHERE m.association_id = $1 AND lower(u.email) = lower($2) AND m.status = 'active')",
    )
    .bind(association_id)
    .bind(email)
    .fetch_one(pool)
    .await?)
}
