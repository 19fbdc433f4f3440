//! People, facilities, memberships and sessions (all in `core`: they span associations).

use crate::DbResult;
use chrono::{DateTime, Utc};
use musubi_types::{
    AccountStatus, AssociationRole, DoctorKind, FacilityKind, Profession, SessionKind,
};
use musubi_types::{AssociationId, PersonId};
use sqlx::{PgConnection, PgPool};
use uuid::Uuid;

#[derive(Debug, Clone)]
pub struct NewUser<'a> {
    pub email: &'a str,
    pub name: &'a str,
    pub name_kana: &'a str,
    pub profession: Profession,
    pub doctor_kind: Option<DoctorKind>,
    pub password_hash: Option<&'a str>,
}

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct UserRow {
    pub id: PersonId,
    pub email: String,
    pub name: String,
    pub name_kana: String,
    pub profession: Profession,
    pub doctor_kind: Option<DoctorKind>,
    pub password_hash: Option<String>,
    pub totp_secret: Option<Vec<u8>>,
    pub totp_enabled_at: Option<DateTime<Utc>>,
    pub totp_last_step: Option<i64>,
    pub status: AccountStatus,
    pub platform_operator: bool,
}

const USER_COLUMNS: &str = "id, email, name, name_kana, profession, doctor_kind, password_hash, \
     totp_secret, totp_enabled_at, totp_last_step, status, platform_operator";

pub async fn insert_user(conn: &mut PgConnection, u: &NewUser<'_>) -> DbResult<PersonId> {
    let id = PersonId::generate();
    sqlx::query(
        "INSERT INTO core.users (id, email, name, name_kana, profession, doctor_kind, password_hash, \
                                 password_changed_at, search_key) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, CASE WHEN $7 IS NULL THEN NULL ELSE now() END, $8)",
    )
    .bind(id)
    .bind(u.email)
    .bind(u.name)
    .bind(u.name_kana)
    .bind(u.profession)
    .bind(u.doctor_kind)
    .bind(u.password_hash)
    .bind(person_search_key(u.name, u.name_kana))
    .execute(conn)
    .await?;
    Ok(id)
}

/// What the directory searches a person by: name and reading, folded
/// ([`musubi_types::japanese::fold`]), on two lines so that no match spans both.
pub fn person_search_key(name: &str, kana: &str) -> String {
    use musubi_types::japanese::fold;
    format!("{}\n{}", fold(name), fold(kana))
}

/// Fills the search keys of people and facilities written before they existed (migration
/// core 0011), a batch at a time; returns how many rows were filled.
pub async fn fill_search_keys(pool: &PgPool) -> DbResult<u64> {
    const BATCH: i64 = 1000;
    let mut filled = 0;
    loop {
        let rows: Vec<(Uuid, String, String)> = sqlx::query_as(
            "SELECT id, name, name_kana FROM core.users WHERE search_key IS NULL LIMIT $1",
        )
        .bind(BATCH)
        .fetch_all(pool)
        .await?;
        if rows.is_empty() {
            break;
        }
        let (ids, keys): (Vec<Uuid>, Vec<String>) = rows
            .iter()
            .map(|(id, name, kana)| (*id, person_search_key(name, kana)))
            .unzip();
        filled += sqlx::query(
            "UPDATE core.users u SET search_key = k.key \
             FROM unnest($1::uuid[], $2::text[]) AS k(id, key) WHERE u.id = k.id",
        )
        .bind(&ids)
        .bind(&keys)
        .execute(pool)
        .await?
        .rows_affected();
    }
    loop {
        let rows: Vec<(Uuid, String)> = sqlx::query_as(
            "SELECT id, name FROM core.facilities WHERE search_key IS NULL LIMIT $1",
        )
        .bind(BATCH)
        .fetch_all(pool)
        .await?;
        if rows.is_empty() {
            break;
        }
        let (ids, keys): (Vec<Uuid>, Vec<String>) = rows
            .iter()
            .map(|(id, name)| (*id, musubi_types::japanese::fold(name)))
            .unzip();
        filled += sqlx::query(
            "UPDATE core.facilities f SET search_key = k.key \
             FROM unnest($1::uuid[], $2::text[]) AS k(id, key) WHERE f.id = k.id",
        )
        .bind(&ids)
        .bind(&keys)
        .execute(pool)
        .await?
        .rows_affected();
    }
    Ok(filled)
}

#[tracing::instrument(name = "db.user_by_email", skip_all)]
pub async fn user_by_email(pool: &PgPool, email: &str) -> DbResult<Option<UserRow>> {
    Ok(sqlx::query_as(&format!(
        "SELECT {USER_COLUMNS} FROM core.users WHERE lower(email) = lower($1)"
    ))
    .bind(email)
    .fetch_optional(pool)
    .await?)
}

#[tracing::instrument(name = "db.user_by_id", skip_all)]
pub async fn user_by_id(pool: &PgPool, id: PersonId) -> DbResult<Option<UserRow>> {
    Ok(sqlx::query_as(&format!(
        "SELECT {USER_COLUMNS} FROM core.users WHERE id = $1"
    ))
    .bind(id)
    .fetch_optional(pool)
    .await?)
}

pub async fn set_totp(
    conn: &mut PgConnection,
    user_id: PersonId,
    secret: Option<&[u8]>,
    enabled: bool,
) -> DbResult<()> {
    sqlx::query(
        "UPDATE core.users SET totp_secret = $2, \
         totp_enabled_at = CASE WHEN $3 THEN now() ELSE NULL END, totp_last_step = NULL, \
         updated_at = now() WHERE id = $1",
    )
    .bind(user_id)
    .bind(secret)
    .bind(enabled)
    .execute(conn)
    .await?;
    Ok(())
}

/// Records the TOTP step just used; false if it (or a later one) was used already: a replay.
pub async fn claim_totp_step(pool: &PgPool, user_id: PersonId, step: i64) -> DbResult<bool> {
    let r = sqlx::query(
        "UPDATE core.users SET totp_last_step = $2 \
         WHERE id = $1 AND (totp_last_step IS NULL OR totp_last_step < $2)",
    )
    .bind(user_id)
    .bind(step)
    .execute(pool)
    .await?;
    Ok(r.rows_affected() == 1)
}

pub async fn insert_facility(
    conn: &mut PgConnection,
    association_id: AssociationId,
    name: &str,
    kind: FacilityKind,
) -> DbResult<Uuid> {
    let id = Uuid::now_v7();
    sqlx::query(
        "INSERT INTO core.facilities (id, association_id, name, kind, search_key) \
         VALUES ($1, $2, $3, $4, $5)",
    )
    .bind(id)
    .bind(association_id)
    .bind(name)
    .bind(kind)
    .bind(musubi_types::japanese::fold(name))
    .execute(conn)
    .await?;
    Ok(id)
}

pub async fn insert_membership(
    conn: &mut PgConnection,
    user_id: PersonId,
    association_id: AssociationId,
    role: AssociationRole,
    facility_id: Option<Uuid>,
) -> DbResult<()> {
    sqlx::query(
        "INSERT INTO core.memberships (user_id, association_id, role, facility_id) VALUES ($1, $2, $3, $4)",
    )
    .bind(user_id)
    .bind(association_id)
    .bind(role)
    .bind(facility_id)
    .execute(conn)
    .await?;
    Ok(())
}

#[derive(Debug, Clone, sqlx::FromRow, serde::Deserialize)]
pub struct MembershipRow {
    pub association_id: AssociationId,
    pub slug: String,
    pub association_name: String,
    pub role: AssociationRole,
    pub facility_id: Option<Uuid>,
    pub facility_name: Option<String>,
}

/// The active memberships of a person, with what each association requires of sessions.
#[tracing::instrument(name = "db.memberships_of", skip_all)]
pub async fn memberships_of(pool: &PgPool, user_id: PersonId) -> DbResult<Vec<MembershipRow>> {
    Ok(sqlx::query_as(
        "SELECT m.association_id, a.slug, a.name AS association_name, m.role, m.facility_id, \
                f.name AS facility_name \
         FROM core.memberships m \
         JOIN core.associations a ON a.id = m.association_id \
         LEFT JOIN core.facilities f ON f.id = m.facility_id \
         WHERE m.user_id = $1 AND m.status = 'active' \
         ORDER BY a.name, a.slug",
    )
    .bind(user_id)
    .fetch_all(pool)
    .await?)
}

#[derive(Debug, Clone)]
pub struct NewSession<'a> {
    pub user_id: PersonId,
    pub token_hash: &'a [u8],
    pub kind: SessionKind,
    pub second_factor_done: bool,
    pub idle: chrono::Duration,
    pub absolute: chrono::Duration,
    pub ip: &'a str,
    pub user_agent: &'a str,
}

pub async fn insert_session(pool: &PgPool, s: &NewSession<'_>) -> DbResult<Uuid> {
    let id = Uuid::now_v7();
    let now = Utc::now();
    sqlx::query(
        "INSERT INTO core.sessions (id, token_hash, user_id, kind, second_factor_done, \
             idle_seconds, idle_expires_at, absolute_expires_at, ip, user_agent) \
         VALUES ($1, $2, $3, $4, $5, $10, $6, $7, $8, $9)",
    )
    .bind(id)
    .bind(s.token_hash)
    .bind(s.user_id)
    .bind(s.kind)
    .bind(s.second_factor_done)
    .bind(now + s.idle.min(s.absolute))
    .bind(now + s.absolute)
    .bind(s.ip)
    .bind(s.user_agent)
    .bind(i32::try_from(s.idle.num_seconds()).unwrap_or(i32::MAX))
    .execute(pool)
    .await?;
    Ok(id)
}

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct SessionRow {
    pub id: Uuid,
    pub user_id: PersonId,
    pub kind: SessionKind,
    pub second_factor_done: bool,
    pub created_at: DateTime<Utc>,
    pub last_seen_at: DateTime<Utc>,
    pub idle_expires_at: DateTime<Utc>,
    pub absolute_expires_at: DateTime<Utc>,
    pub ip: String,
    pub user_agent: String,
}

/// Looks a token up; expired, revoked and deactivated-account sessions are not found.
/// Slides the idle expiry, writing at most once a minute per session.
#[tracing::instrument(name = "db.touch_session", skip_all)]
pub async fn touch_session(pool: &PgPool, token_hash: &[u8]) -> DbResult<Option<SessionRow>> {
    let row: Option<SessionRow> = sqlx::query_as(
        "SELECT s.id, s.user_id, s.kind, s.second_factor_done, s.created_at, s.last_seen_at, \
                s.idle_expires_at, s.absolute_expires_at, s.ip, s.user_agent \
         FROM core.sessions s JOIN core.users u ON u.id = s.user_id \
         WHERE s.token_hash = $1 AND u.status = 'active' AND s.revoked_at IS NULL \
           AND s.idle_expires_at > now() AND s.absolute_expires_at > now()",
    )
    .bind(token_hash)
    .fetch_optional(pool)
    .await?;
    if let Some(r) = &row {
        if Utc::now() - r.last_seen_at > chrono::Duration::seconds(60) {
            slide_idle_expiry(pool, r.id).await?;
        }
    }
    Ok(row)
}

/// A full session's row, its person and their active memberships, in one statement: every
/// authenticated request starts here, so it is one round trip rather than three. Slides the
/// idle expiry like [`touch_session`].
#[tracing::instrument(name = "db.authenticate", skip_all)]
pub async fn authenticate(
    pool: &PgPool,
    token_hash: &[u8],
) -> DbResult<Option<(SessionRow, UserRow, Vec<MembershipRow>)>> {
    use sqlx::Row;
    let row = sqlx::query(
        "SELECT s.id AS session_id, s.kind, s.second_factor_done, s.created_at AS session_created_at, \
                s.last_seen_at, s.idle_expires_at, s.absolute_expires_at, s.ip, s.user_agent, \
                u.id, u.email, u.name, u.name_kana, u.profession, u.doctor_kind, u.password_hash, \
                u.totp_secret, u.totp_enabled_at, u.totp_last_step, u.status, u.platform_operator, \
                COALESCE((SELECT json_agg(json_build_object( \
                            'association_id', m.association_id, 'slug', a.slug, \
                            'association_name', a.name, 'role', m.role, \
                            'facility_id', m.facility_id, 'facility_name', f.name) \
                          ORDER BY a.name, a.slug) \
                   FROM core.memberships m \
                   JOIN core.associations a ON a.id = m.association_id \
                   LEFT JOIN core.facilities f ON f.id = m.facility_id \
                   WHERE m.user_id = u.id AND m.status = 'active'), '[]'::json) AS memberships \
         FROM core.sessions s JOIN core.users u ON u.id = s.user_id \
         WHERE s.token_hash = $1 AND s.second_factor_done AND u.status = 'active' \
           AND s.revoked_at IS NULL AND s.idle_expires_at > now() AND s.absolute_expires_at > now()",
    )
    .bind(token_hash)
    .fetch_optional(pool)
    .await?;
    let Some(row) = row else {
        return Ok(None);
    };
    let user = <UserRow as sqlx::FromRow<'_, sqlx::postgres::PgRow>>::from_row(&row)?;
    let session = SessionRow {
        id: row.try_get("session_id")?,
        user_id: user.id,
        kind: row.try_get("kind")?,
        second_factor_done: row.try_get("second_factor_done")?,
        created_at: row.try_get("session_created_at")?,
        last_seen_at: row.try_get("last_seen_at")?,
        idle_expires_at: row.try_get("idle_expires_at")?,
        absolute_expires_at: row.try_get("absolute_expires_at")?,
        ip: row.try_get("ip")?,
        user_agent: row.try_get("user_agent")?,
    };
    let sqlx::types::Json(memberships): sqlx::types::Json<Vec<MembershipRow>> =
        row.try_get("memberships")?;
    if Utc::now() - session.last_seen_at > chrono::Duration::seconds(60) {
        slide_idle_expiry(pool, session.id).await?;
    }
    Ok(Some((session, user, memberships)))
}

async fn slide_idle_expiry(pool: &PgPool, session_id: Uuid) -> DbResult<()> {
    sqlx::query(
        "UPDATE core.sessions SET last_seen_at = now(), \
             idle_expires_at = least(now() + make_interval(secs => idle_seconds), absolute_expires_at) \
         WHERE id = $1",
    )
    .bind(session_id)
    .execute(pool)
    .await?;
    Ok(())
}

/// Completes the second factor: the half session gets a new token (no fixation) and the
/// lifetimes of a full session.
pub async fn upgrade_session(
    pool: &PgPool,
    session_id: Uuid,
    new_token_hash: &[u8],
    idle: chrono::Duration,
    absolute: chrono::Duration,
) -> DbResult<bool> {
    let r = sqlx::query(
        "UPDATE core.sessions SET second_factor_done = true, token_hash = $2, last_seen_at = now(), \
             idle_seconds = $3, idle_expires_at = now() + make_interval(secs => $3), \
             absolute_expires_at = now() + make_interval(secs => $4) \
         WHERE id = $1 AND revoked_at IS NULL AND NOT second_factor_done",
    )
    .bind(session_id)
    .bind(new_token_hash)
    .bind(i32::try_from(idle.num_seconds()).unwrap_or(i32::MAX))
    .bind(absolute.num_seconds() as f64)
    .execute(pool)
    .await?;
    Ok(r.rows_affected() == 1)
}

pub async fn replace_recovery_codes(
    conn: &mut PgConnection,
    user_id: PersonId,
    hashes: &[[u8; 32]],
) -> DbResult<()> {
    sqlx::query("DELETE FROM core.recovery_codes WHERE user_id = $1")
        .bind(user_id)
        .execute(&mut *conn)
        .await?;
    let rows: Vec<Vec<u8>> = hashes.iter().map(|h| h.to_vec()).collect();
    sqlx::query(
        "INSERT INTO core.recovery_codes (user_id, code_hash) SELECT $1, unnest($2::bytea[])",
    )
    .bind(user_id)
    .bind(rows)
    .execute(&mut *conn)
    .await?;
    Ok(())
}

/// Marks a recovery code used; false if unknown or used before.
pub async fn use_recovery_code(pool: &PgPool, user_id: PersonId, hash: &[u8]) -> DbResult<bool> {
    let r = sqlx::query(
        "UPDATE core.recovery_codes SET used_at = now() \
         WHERE user_id = $1 AND code_hash = $2 AND used_at IS NULL",
    )
    .bind(user_id)
    .bind(hash)
    .execute(pool)
    .await?;
    Ok(r.rows_affected() == 1)
}

pub async fn revoke_session(pool: &PgPool, user_id: PersonId, session_id: Uuid) -> DbResult<bool> {
    let r = sqlx::query(
        "UPDATE core.sessions SET revoked_at = now() WHERE id = $1 AND user_id = $2 AND revoked_at IS NULL",
    )
    .bind(session_id)
    .bind(user_id)
    .execute(pool)
    .await?;
    Ok(r.rows_affected() == 1)
}

pub async fn revoke_all_sessions(conn: &mut PgConnection, user_id: PersonId) -> DbResult<u64> {
    let r = sqlx::query(
        "UPDATE core.sessions SET revoked_at = now() WHERE user_id = $1 AND revoked_at IS NULL",
    )
    .bind(user_id)
    .execute(conn)
    .await?;
    Ok(r.rows_affected())
}

pub async fn active_sessions(pool: &PgPool, user_id: PersonId) -> DbResult<Vec<SessionRow>> {
    Ok(sqlx::query_as(
        "SELECT id, user_id, kind, second_factor_done, created_at, last_seen_at, idle_expires_at, \
                absolute_expires_at, ip, user_agent \
         FROM core.sessions \
         WHERE user_id = $1 AND revoked_at IS NULL AND idle_expires_at > now() \
           AND absolute_expires_at > now() \
         ORDER BY last_seen_at DESC",
    )
    .bind(user_id)
    .fetch_all(pool)
    .await?)
}

pub async fn set_user_status(
    conn: &mut PgConnection,
    user_id: PersonId,
    status: AccountStatus,
) -> DbResult<bool> {
    let r = sqlx::query("UPDATE core.users SET status = $2, updated_at = now() WHERE id = $1")
        .bind(user_id)
        .bind(status)
        .execute(conn)
        .await?;
    Ok(r.rows_affected() == 1)
}

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct MemberRow {
    pub user_id: PersonId,
    pub name: String,
    pub name_kana: String,
    pub email: String,
    pub profession: Profession,
    pub doctor_kind: Option<DoctorKind>,
    pub role: AssociationRole,
    pub status: AccountStatus,
    pub facility_id: Option<Uuid>,
    pub facility_name: Option<String>,
    pub second_factor_enabled: bool,
    pub joined_at: DateTime<Utc>,
    /// Every association the person is an active member of, oldest membership first: the
    /// first is their home association, which answers for the account as a whole.
    pub active_associations: Vec<AssociationId>,
    /// The name of that home association.
    pub home_association: Option<String>,
}

/// A person's active memberships, oldest first (ties: the older association). The first is
/// the association that registered the account, or the oldest still active.
macro_rules! active_memberships {
    ($what:literal) => {
        concat!(
            "(SELECT ",
            $what,
            " FROM core.memberships om JOIN core.associations oa ON oa.id = om.association_id \
              WHERE om.user_id = u.id AND om.status = 'active' \
              ORDER BY om.created_at, oa.created_at, oa.id)"
        )
    };
}

const MEMBER_SELECT: &str = concat!(
    "SELECT u.id AS user_id, u.name, u.name_kana, u.email, u.profession, \
        u.doctor_kind, m.role, m.status, m.facility_id, f.name AS facility_name, \
        (u.totp_enabled_at IS NOT NULL) AS second_factor_enabled, m.created_at AS joined_at, \
        ARRAY",
    active_memberships!("om.association_id"),
    " AS active_associations, (ARRAY",
    active_memberships!("oa.name"),
    ")[1] AS home_association \
     FROM core.memberships m \
     JOIN core.users u ON u.id = m.user_id \
     LEFT JOIN core.facilities f ON f.id = m.facility_id"
);

/// Members of one association, active first, in kana order.
#[tracing::instrument(name = "db.members_of", skip_all)]
pub async fn members_of(pool: &PgPool, association_id: AssociationId) -> DbResult<Vec<MemberRow>> {
    Ok(sqlx::query_as(&format!(
        "{MEMBER_SELECT} WHERE m.association_id = $1 \
         ORDER BY m.status = 'active' DESC, u.name_kana, u.id"
    ))
    .bind(association_id)
    .fetch_all(pool)
    .await?)
}

pub async fn member(
    pool: &PgPool,
    association_id: AssociationId,
    user_id: PersonId,
) -> DbResult<Option<MemberRow>> {
    Ok(sqlx::query_as(&format!(
        "{MEMBER_SELECT} WHERE m.association_id = $1 AND m.user_id = $2"
    ))
    .bind(association_id)
    .bind(user_id)
    .fetch_optional(pool)
    .await?)
}

pub async fn set_membership(
    conn: &mut PgConnection,
    association_id: AssociationId,
    user_id: PersonId,
    role: Option<AssociationRole>,
    status: Option<AccountStatus>,
) -> DbResult<bool> {
    let r = sqlx::query(
        "UPDATE core.memberships SET role = coalesce($3, role), status = coalesce($4, status) \
         WHERE association_id = $1 AND user_id = $2",
    )
    .bind(association_id)
    .bind(user_id)
    .bind(role)
    .bind(status)
    .execute(conn)
    .await?;
    Ok(r.rows_affected() == 1)
}

pub async fn clear_second_factor(conn: &mut PgConnection, user_id: PersonId) -> DbResult<()> {
    set_totp(&mut *conn, user_id, None, false).await?;
    sqlx::query("DELETE FROM core.recovery_codes WHERE user_id = $1")
        .bind(user_id)
        .execute(&mut *conn)
        .await?;
    Ok(())
}

/// Active administrators of an association (an association must keep at least one).
pub async fn count_admins(conn: &mut PgConnection, association_id: AssociationId) -> DbResult<i64> {
    Ok(sqlx::query_scalar(
        "SELECT count(*) FROM core.memberships \
         WHERE association_id = $1 AND role = 'admin' AND status = 'active'",
    )
    .bind(association_id)
    .fetch_one(conn)
    .await?)
}

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct FacilityRow {
    pub id: Uuid,
    pub name: String,
    pub kind: FacilityKind,
}

pub async fn facilities_of(
    pool: &PgPool,
    association_id: AssociationId,
) -> DbResult<Vec<FacilityRow>> {
    Ok(sqlx::query_as(
        "SELECT id, name, kind FROM core.facilities WHERE association_id = $1 ORDER BY name",
    )
    .bind(association_id)
    .fetch_all(pool)
    .await?)
}
