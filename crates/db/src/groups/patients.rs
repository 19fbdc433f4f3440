//! The patient register: one entry per patient group (migration `tenant/0006_patients.sql`).

use super::members::like_escape;
use super::HostedGroup;
use crate::DbResult;
use chrono::{DateTime, NaiveDate, Utc};
use musubi_types::{CareLevel, EndReason, GroupId, PatientId, PatientStatus, PersonId, Sex};
use sqlx::PgConnection;
use uuid::Uuid;

/// The fields of the registration form, already checked, with their folded forms.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PatientFields {
    pub name: String,
    pub name_kana: String,
    pub name_folded: String,
    pub kana_folded: String,
    pub birth_date: NaiveDate,
    pub sex: Option<Sex>,
    pub postal_code: String,
    pub address: String,
    pub town: String,
    pub town_folded: String,
    pub phone: String,
    pub physician_id: Option<PersonId>,
    pub diagnoses: String,
    pub care_level: Option<CareLevel>,
    pub key_person: String,
    pub family_contact: String,
    pub care_manager: String,
    pub nurse_station: String,
    pub pharmacy: String,
    pub status: Option<PatientStatus>,
    pub status_since: Option<NaiveDate>,
    pub end_reason: Option<EndReason>,
    pub notes: String,
    pub consent_date: Option<NaiveDate>,
    pub consent_by: String,
    pub consent_scope: String,
}

/// One register entry as stored, with the names it refers to.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct PatientRow {
    pub id: PatientId,
    pub group_id: GroupId,
    pub group_name: String,
    pub name: String,
    pub name_kana: String,
    pub birth_date: NaiveDate,
    pub sex: Sex,
    pub postal_code: String,
    pub address: String,
    pub town: String,
    pub phone: String,
    pub physician_id: Option<PersonId>,
    pub physician_name: Option<String>,
    pub diagnoses: String,
    pub care_level: CareLevel,
    pub key_person: String,
    pub family_contact: String,
    pub care_manager: String,
    pub nurse_station: String,
    pub pharmacy: String,
    pub status: PatientStatus,
    pub status_since: Option<NaiveDate>,
    pub end_reason: Option<EndReason>,
    pub notes: String,
    pub consent_date: Option<NaiveDate>,
    pub consent_by: String,
    pub consent_scope: String,
    pub facility_id: Option<Uuid>,
    pub facility_name: Option<String>,
    pub registered_by: PersonId,
    pub registered_by_name: Option<String>,
    pub registered_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub version: i32,
    pub last_activity_at: DateTime<Utc>,
    /// The viewer's unread comments in the patient's group.
    pub unread: i64,
}

const PATIENT_SELECT: &str = "\
    SELECT p.id, p.group_id, g.name AS group_name, p.name, p.name_kana, p.birth_date, p.sex, \
           p.postal_code, p.address, p.town, p.phone, p.physician_id, \
           (SELECT u.name FROM core.users u WHERE u.id = p.physician_id) AS physician_name, \
           p.diagnoses, p.care_level, p.key_person, p.family_contact, p.care_manager, \
           p.nurse_station, p.pharmacy, p.status, p.status_since, p.end_reason, p.notes, \
           p.consent_date, p.consent_by, p.consent_scope, p.facility_id, \
           (SELECT f.name FROM core.facilities f WHERE f.id = p.facility_id) AS facility_name, \
           p.registered_by, \
           (SELECT u.name FROM core.users u WHERE u.id = p.registered_by) AS registered_by_name, \
           p.registered_at, p.updated_at, p.version, g.last_activity_at, \
           COALESCE((SELECT sum(ur.count) FROM unread ur \
                     WHERE ur.user_id = $1 AND ur.group_id = p.group_id), 0)::bigint AS unread \
    FROM patients p JOIN groups g ON g.id = p.group_id";

type PgQuery<'q> = sqlx::query::Query<'q, sqlx::Postgres, sqlx::postgres::PgArguments>;

/// Binds the form's fields as both statements number them, `$3` to `$28`.
fn bind_fields<'q>(q: PgQuery<'q>, f: &'q PatientFields) -> PgQuery<'q> {
    q.bind(&f.name)
        .bind(&f.name_kana)
        .bind(&f.name_folded)
        .bind(&f.kana_folded)
        .bind(f.birth_date)
        .bind(f.sex.unwrap_or(Sex::Other))
        .bind(&f.postal_code)
        .bind(&f.address)
        .bind(&f.town)
        .bind(&f.town_folded)
        .bind(&f.phone)
        .bind(f.physician_id)
        .bind(&f.diagnoses)
        .bind(f.care_level.unwrap_or(CareLevel::None))
        .bind(&f.key_person)
        .bind(&f.family_contact)
        .bind(&f.care_manager)
        .bind(&f.nurse_station)
        .bind(&f.pharmacy)
        .bind(f.status.unwrap_or(PatientStatus::Home))
        .bind(f.status_since)
        .bind(f.end_reason)
        .bind(&f.notes)
        .bind(f.consent_date)
        .bind(&f.consent_by)
        .bind(&f.consent_scope)
}

pub async fn insert_patient(
    conn: &mut PgConnection,
    group: &HostedGroup,
    id: PatientId,
    f: &PatientFields,
    facility_id: Option<Uuid>,
    registered_by: PersonId,
) -> DbResult<()> {
    let q = sqlx::query(
        "INSERT INTO patients (id, group_id, name, name_kana, name_folded, kana_folded, \
             birth_date, sex, postal_code, address, town, town_folded, phone, physician_id, \
             diagnoses, care_level, key_person, family_contact, care_manager, nurse_station, \
             pharmacy, status, status_since, end_reason, notes, consent_date, consent_by, \
             consent_scope, facility_id, registered_by) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, \
                 $18, $19, $20, $21, $22, $23, $24, $25, $26, $27, $28, $29, $30)",
    )
    .bind(id)
    .bind(group.id);
    bind_fields(q, f)
        .bind(facility_id)
        .bind(registered_by)
        .execute(&mut *conn)
        .await?;
    crate::search::put_patient(conn, id.into(), group.id, &f.name_folded).await
}

/// Replaces an entry's fields if it is still at `version`; false if someone changed it since.
pub async fn update_patient(
    conn: &mut PgConnection,
    id: PatientId,
    version: i32,
    f: &PatientFields,
) -> DbResult<bool> {
    let q = sqlx::query(
        "UPDATE patients SET name = $3, name_kana = $4, name_folded = $5, kana_folded = $6, \
             birth_date = $7, sex = $8, postal_code = $9, address = $10, town = $11, \
             town_folded = $12, phone = $13, physician_id = $14, diagnoses = $15, \
             care_level = $16, key_person = $17, family_contact = $18, care_manager = $19, \
             nurse_station = $20, pharmacy = $21, status = $22, status_since = $23, \
             end_reason = $24, notes = $25, consent_date = $26, consent_by = $27, \
             consent_scope = $28, updated_at = now(), version = version + 1 \
         WHERE id = $1 AND version = $2 RETURNING group_id",
    )
    .bind(id)
    .bind(version);
    let Some(row) = bind_fields(q, f).fetch_optional(&mut *conn).await? else {
        return Ok(false);
    };
    let group: GroupId = sqlx::Row::try_get(&row, "group_id")?;
    crate::search::put_patient(conn, id.into(), group, &f.name_folded).await?;
    Ok(true)
}

/// Makes the group read-only (care ended) or writable again; returns whether that changed.
pub async fn set_group_archived(
    conn: &mut PgConnection,
    group_id: GroupId,
    archived: bool,
) -> DbResult<bool> {
    let done = sqlx::query(
        "UPDATE groups SET archived_at = CASE WHEN $2 THEN now() END \
         WHERE id = $1 AND (archived_at IS NOT NULL) <> $2",
    )
    .bind(group_id)
    .bind(archived)
    .execute(conn)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// Renames the patient's group after the register (kept in one format by the caller).
pub async fn rename_patient_group(
    conn: &mut PgConnection,
    group_id: GroupId,
    name: &str,
) -> DbResult<()> {
    sqlx::query("UPDATE groups SET name = $2 WHERE id = $1 AND name <> $2")
        .bind(group_id)
        .bind(name)
        .execute(conn)
        .await?;
    Ok(())
}

/// One entry by id (no access check: the caller has one), with `viewer`'s unread count.
pub async fn patient(
    conn: &mut PgConnection,
    viewer: PersonId,
    id: PatientId,
) -> DbResult<Option<PatientRow>> {
    Ok(sqlx::query_as(&format!("{PATIENT_SELECT} WHERE p.id = $2"))
        .bind(viewer)
        .bind(id)
        .fetch_optional(conn)
        .await?)
}

/// The entry of a patient group, if it has one.
pub async fn patient_of_group(
    conn: &mut PgConnection,
    viewer: PersonId,
    group_id: GroupId,
) -> DbResult<Option<PatientRow>> {
    Ok(
        sqlx::query_as(&format!("{PATIENT_SELECT} WHERE p.group_id = $2"))
            .bind(viewer)
            .bind(group_id)
            .fetch_optional(conn)
            .await?,
    )
}

/// Every entry `viewer` may see (all with `whole_register`), by reading: for the CSV export.
pub async fn patients_for_export(
    conn: &mut PgConnection,
    viewer: PersonId,
    whole_register: bool,
) -> DbResult<Vec<PatientRow>> {
    let mine = if whole_register {
        ""
    } else {
        concat!(
            " WHERE p.group_id IN (SELECT gm.group_id FROM core.group_members gm \
                                  WHERE gm.user_id = $1 AND gm.status = 'active' AND ",
            member_counts!(),
            ")"
        )
    };
    Ok(sqlx::query_as(&format!(
        "{PATIENT_SELECT}{mine} ORDER BY p.kana_folded, p.id"
    ))
    .bind(viewer)
    .fetch_all(conn)
    .await?)
}

/// The group of an entry (for the access check before anything else is read).
pub async fn group_of_patient(conn: &mut PgConnection, id: PatientId) -> DbResult<Option<GroupId>> {
    Ok(
        sqlx::query_scalar("SELECT group_id FROM patients WHERE id = $1")
            .bind(id)
            .fetch_optional(conn)
            .await?,
    )
}

/// The orders of the register's list.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum PatientOrder {
    /// By reading (ふりがな), あ to ん.
    #[default]
    Kana,
    /// Oldest first.
    Age,
    /// Newest registration first.
    Registered,
    /// Most recent activity in the group first.
    Activity,
}

/// Where a page starts: the sort key of the last row of the previous page (as text) and its id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PatientCursor {
    pub key: String,
    pub id: PatientId,
}

/// A list query, already checked and folded.
#[derive(Debug, Clone, Default)]
pub struct PatientQuery {
    /// Folded search text (name or reading contains it); empty for none.
    pub text: String,
    pub statuses: Vec<PatientStatus>,
    pub physician_id: Option<PersonId>,
    pub facility_id: Option<Uuid>,
    pub care_level: Option<CareLevel>,
    /// Born on or after (the oldest age asked for).
    pub born_from: Option<NaiveDate>,
    /// Born on or before (the youngest age asked for).
    pub born_until: Option<NaiveDate>,
    /// Folded town text; empty for none.
    pub town: String,
    pub unread_only: bool,
    pub order: PatientOrder,
    pub after: Option<PatientCursor>,
    pub limit: i64,
}

/// One line of the list.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct PatientListRow {
    pub id: PatientId,
    pub group_id: GroupId,
    pub name: String,
    pub name_kana: String,
    pub birth_date: NaiveDate,
    pub sex: Sex,
    pub town: String,
    pub care_level: CareLevel,
    pub status: PatientStatus,
    pub physician_name: Option<String>,
    pub facility_name: Option<String>,
    pub registered_at: DateTime<Utc>,
    pub last_activity_at: DateTime<Utc>,
    pub kana_folded: String,
    pub unread: i64,
}

impl PatientListRow {
    /// The cursor that continues after this row in `order`.
    pub fn cursor(&self, order: PatientOrder) -> PatientCursor {
        let key = match order {
            PatientOrder::Kana => self.kana_folded.clone(),
            PatientOrder::Age => self.birth_date.to_string(),
            PatientOrder::Registered => self.registered_at.to_rfc3339(),
            PatientOrder::Activity => self.last_activity_at.to_rfc3339(),
        };
        PatientCursor { key, id: self.id }
    }
}

/// The register entries `viewer` may see, filtered, in order, after the cursor. With
/// `whole_register` (the association's administrators) every entry; otherwise those of the
/// patient groups the viewer is an active member of.
pub async fn list_patients(
    conn: &mut PgConnection,
    viewer: PersonId,
    whole_register: bool,
    q: &PatientQuery,
) -> DbResult<Vec<PatientListRow>> {
    let candidates = name_candidates(&mut *conn, q).await?;
    let (sql, args) = list_statement(viewer, whole_register, q, candidates);
    Ok(bind_all(sqlx::query_as(&sql), args).fetch_all(conn).await?)
}

/// `EXPLAIN (ANALYZE, BUFFERS, FORMAT JSON)` of what one page of the list runs (the name
/// lookup, when there is one, then the list): for the checks that the list stays an index walk
/// on a large register.
pub async fn explain_list_patients(
    conn: &mut PgConnection,
    viewer: PersonId,
    whole_register: bool,
    q: &PatientQuery,
) -> DbResult<Vec<serde_json::Value>> {
    let mut plans = Vec::new();
    if let Some(grams) = name_grams(q) {
        let explain = format!("EXPLAIN (ANALYZE, BUFFERS, FORMAT JSON) {NAME_CANDIDATES}");
        let (plan,): (serde_json::Value,) = sqlx::query_as(&explain)
            .bind(grams)
            .bind(NAME_CANDIDATES_MAX + 1)
            .fetch_one(&mut *conn)
            .await?;
        plans.push(plan);
    }
    let candidates = name_candidates(&mut *conn, q).await?;
    let (sql, args) = list_statement(viewer, whole_register, q, candidates);
    let explain = format!("EXPLAIN (ANALYZE, BUFFERS, FORMAT JSON) {sql}");
    let (plan,): (serde_json::Value,) = bind_all(sqlx::query_as(&explain), args)
        .fetch_one(conn)
        .await?;
    plans.push(plan);
    Ok(plans)
}

/// Up to this many entries found by the search index are handed to the list as ids; a name
/// shared by more (a common family name) is found faster by walking the list's order and
/// testing each entry.
const NAME_CANDIDATES_MAX: i64 = 10_000;

const NAME_CANDIDATES: &str = "SELECT sd.id FROM search_docs sd \
     WHERE sd.grams @> $1::int4[] AND sd.kind = 'patient' LIMIT $2";

fn name_grams(q: &PatientQuery) -> Option<Vec<i32>> {
    Some(crate::types::japanese::query_grams(&q.text)).filter(|g| !g.is_empty())
}

/// The entries whose name or reading has every character pair of the searched text (a
/// superset of the matches), when they are few; `None` when there is no text or too many (a
/// very common word, whose matches the list's order meets soon enough).
async fn name_candidates(conn: &mut PgConnection, q: &PatientQuery) -> DbResult<Option<Vec<Uuid>>> {
    let Some(grams) = name_grams(q) else {
        return Ok(None);
    };
    let ids: Vec<Uuid> = sqlx::query_scalar(NAME_CANDIDATES)
        .bind(grams)
        .bind(NAME_CANDIDATES_MAX + 1)
        .fetch_all(conn)
        .await?;
    Ok((i64::try_from(ids.len()).unwrap_or(i64::MAX) <= NAME_CANDIDATES_MAX).then_some(ids))
}

/// A value bound to the list's statement.
enum Arg {
    Person(PersonId),
    Text(String),
    Texts(Vec<&'static str>),
    Id(Uuid),
    Date(NaiveDate),
    Ids(Vec<Uuid>),
    Int(i64),
}

fn bind_all<'q, O>(
    mut query: sqlx::query::QueryAs<'q, sqlx::Postgres, O, sqlx::postgres::PgArguments>,
    args: Vec<Arg>,
) -> sqlx::query::QueryAs<'q, sqlx::Postgres, O, sqlx::postgres::PgArguments> {
    for a in args {
        query = match a {
            Arg::Person(v) => query.bind(v),
            Arg::Text(v) => query.bind(v),
            Arg::Texts(v) => query.bind(v),
            Arg::Id(v) => query.bind(v),
            Arg::Date(v) => query.bind(v),
            Arg::Ids(v) => query.bind(v),
            Arg::Int(v) => query.bind(v),
        };
    }
    query
}

/// The list's statement with only the conditions asked for: no `$n IS NULL OR …` left for
/// PostgreSQL to plan around, so a generic plan is as good as a custom one and each
/// combination of filters keeps its own prepared statement.
fn list_statement(
    viewer: PersonId,
    whole_register: bool,
    q: &PatientQuery,
    name_candidates: Option<Vec<Uuid>>,
) -> (String, Vec<Arg>) {
    let (key, dir) = match q.order {
        PatientOrder::Kana => ("p.kana_folded", ">"),
        PatientOrder::Age => ("p.birth_date", ">"),
        PatientOrder::Registered => ("p.registered_at", "<"),
        PatientOrder::Activity => ("g.last_activity_at", "<"),
    };
    let cast = match q.order {
        PatientOrder::Kana => "text",
        PatientOrder::Age => "date",
        PatientOrder::Registered | PatientOrder::Activity => "timestamptz",
    };
    let sort = if dir == ">" { "ASC" } else { "DESC" };
    let mut args = vec![Arg::Person(viewer)];
    let mut conds: Vec<String> = Vec::new();
    let arg = |args: &mut Vec<Arg>, a: Arg| {
        args.push(a);
        format!("${}", args.len())
    };
    let contains = |s: &str| format!("%{}%", like_escape(s));
    let mut from = "patients p".to_owned();
    if !q.text.is_empty() {
        // The search index has narrowed a large register to the few entries that can match
        // (see `name_candidates`); the LIKE keeps the answer exact.
        // Those entries are read first and then ordered (`OFFSET 0` keeps PostgreSQL from
        // walking the list's order and testing every entry against them instead).
        if let Some(ids) = name_candidates {
            let v = arg(&mut args, Arg::Ids(ids));
            from = format!("(SELECT * FROM patients WHERE id = ANY({v}::uuid[]) OFFSET 0) p");
        }
        let t = arg(&mut args, Arg::Text(contains(&q.text)));
        conds.push(format!("p.name_folded LIKE {t}"));
    }
    if !q.statuses.is_empty() {
        let v = arg(
            &mut args,
            Arg::Texts(q.statuses.iter().map(|s| s.code()).collect()),
        );
        conds.push(format!("p.status = ANY({v}::text[])"));
    }
    if let Some(id) = q.physician_id {
        let v = arg(&mut args, Arg::Person(id));
        conds.push(format!("p.physician_id = {v}"));
    }
    if let Some(id) = q.facility_id {
        let v = arg(&mut args, Arg::Id(id));
        conds.push(format!("p.facility_id = {v}"));
    }
    if let Some(level) = q.care_level {
        let v = arg(&mut args, Arg::Text(level.code().to_owned()));
        conds.push(format!("p.care_level = {v}"));
    }
    if let Some(d) = q.born_from {
        let v = arg(&mut args, Arg::Date(d));
        conds.push(format!("p.birth_date >= {v}"));
    }
    if let Some(d) = q.born_until {
        let v = arg(&mut args, Arg::Date(d));
        conds.push(format!("p.birth_date <= {v}"));
    }
    if !q.town.is_empty() {
        let v = arg(&mut args, Arg::Text(contains(&q.town)));
        conds.push(format!("p.town_folded LIKE {v}"));
    }
    if q.unread_only {
        conds.push(
            "EXISTS (SELECT 1 FROM unread ur WHERE ur.user_id = $1 AND ur.group_id = p.group_id)"
                .to_owned(),
        );
    }
    if let Some(after) = &q.after {
        let k = arg(&mut args, Arg::Text(after.key.clone()));
        let i = arg(&mut args, Arg::Id(after.id.into()));
        conds.push(format!("({key}, p.id) {dir} ({k}::{cast}, {i}::uuid)"));
    }
    if !whole_register {
        // Driven from the viewer's own memberships (an index on user_id), so that a person in
        // a few dozen groups never scans a register of 100,000.
        conds.push(
            concat!(
                "p.group_id IN (SELECT gm.group_id FROM core.group_members gm \
                                WHERE gm.user_id = $1 AND gm.status = 'active' AND ",
                member_counts!(),
                ")"
            )
            .to_owned(),
        );
    }
    let limit = arg(&mut args, Arg::Int(q.limit));
    // The group's row only where its activity orders the list: elsewhere one lookup per row
    // shown, so that a long list of found entries is never joined to every group.
    let (join, activity) = if q.order == PatientOrder::Activity {
        ("JOIN groups g ON g.id = p.group_id", "g.last_activity_at")
    } else {
        (
            "",
            "(SELECT g.last_activity_at FROM groups g WHERE g.id = p.group_id) \
             AS last_activity_at",
        )
    };
    let filter = if conds.is_empty() {
        String::new()
    } else {
        format!("WHERE {}", conds.join(" AND "))
    };
    let sql = format!(
        "SELECT p.id, p.group_id, p.name, p.name_kana, p.birth_date, p.sex, p.town, \
                p.care_level, p.status, \
                (SELECT u.name FROM core.users u WHERE u.id = p.physician_id) AS physician_name, \
                (SELECT f.name FROM core.facilities f WHERE f.id = p.facility_id) \
                    AS facility_name, \
                p.registered_at, {activity}, p.kana_folded, \
                COALESCE((SELECT sum(ur.count) FROM unread ur \
                          WHERE ur.user_id = $1 AND ur.group_id = p.group_id), 0)::bigint \
                    AS unread \
         FROM {from} {join} \
         {filter} \
         ORDER BY {key} {sort}, p.id {sort} \
         LIMIT {limit}"
    );
    (sql, args)
}

/// The facility `person` works at in the association `group` is hosted by, if any.
pub async fn facility_in_host(
    conn: &mut PgConnection,
    group: &HostedGroup,
    person: PersonId,
) -> DbResult<Option<Uuid>> {
    Ok(sqlx::query_scalar(
        "SELECT facility_id FROM core.memberships \
         WHERE user_id = $1 AND association_id = $2 AND status = 'active'",
    )
    .bind(person)
    .bind(group.association_id)
    .fetch_optional(conn)
    .await?
    .flatten())
}

/// What the list's physician and facility filters offer: the physicians and registering
/// facilities of the entries `viewer` may see (all with `whole_register`), by name. Nothing is
/// offered that the viewer's own entries do not name, so a member from another association
/// learns no one of the host's staff from it.
#[derive(Debug, Clone, Default)]
pub struct PatientFilterChoices {
    pub physicians: Vec<(PersonId, String)>,
    pub facilities: Vec<(Uuid, String)>,
}

pub async fn patient_filter_choices(
    conn: &mut PgConnection,
    viewer: PersonId,
    whole_register: bool,
) -> DbResult<PatientFilterChoices> {
    // The whole register is read by a loose scan of each partial index (one probe per
    // distinct value), which stays cheap however many entries there are; a member's own
    // entries are few and read directly.
    let sql = if whole_register {
        // (uuid has no min() in PostgreSQL 15: ORDER BY … LIMIT 1 reads the index the same.)
        "WITH RECURSIVE ph(v) AS ( \
             (SELECT physician_id FROM patients WHERE physician_id IS NOT NULL \
              ORDER BY physician_id LIMIT 1) \
             UNION ALL \
             SELECT (SELECT p.physician_id FROM patients p WHERE p.physician_id > ph.v \
                     ORDER BY p.physician_id LIMIT 1) \
             FROM ph WHERE ph.v IS NOT NULL), \
         fa(v) AS ( \
             (SELECT facility_id FROM patients WHERE facility_id IS NOT NULL \
              ORDER BY facility_id LIMIT 1) \
             UNION ALL \
             SELECT (SELECT p.facility_id FROM patients p WHERE p.facility_id > fa.v \
                     ORDER BY p.facility_id LIMIT 1) \
             FROM fa WHERE fa.v IS NOT NULL) \
         SELECT 'p' AS kind, u.id, u.name, u.name_kana AS sort FROM core.users u \
          WHERE u.id IN (SELECT v FROM ph WHERE v IS NOT NULL) \
         UNION ALL \
         SELECT 'f', f.id, f.name, f.name FROM core.facilities f \
          WHERE f.id IN (SELECT v FROM fa WHERE v IS NOT NULL) \
         ORDER BY 1, 4, 2"
            .to_owned()
    } else {
        format!(
            "WITH mine AS MATERIALIZED ( \
                 SELECT p.physician_id, p.facility_id FROM patients p \
                 WHERE p.group_id IN (SELECT gm.group_id FROM core.group_members gm \
                                      WHERE gm.user_id = $1 AND gm.status = 'active' AND {})) \
             SELECT 'p' AS kind, u.id, u.name, u.name_kana AS sort FROM core.users u \
              WHERE u.id IN (SELECT physician_id FROM mine) \
             UNION ALL \
             SELECT 'f', f.id, f.name, f.name FROM core.facilities f \
              WHERE f.id IN (SELECT facility_id FROM mine) \
             ORDER BY 1, 4, 2",
            member_counts!()
        )
    };
    let mut query = sqlx::query_as::<_, (String, Uuid, String, String)>(&sql);
    if !whole_register {
        query = query.bind(viewer);
    }
    let rows = query.fetch_all(conn).await?;
    let mut out = PatientFilterChoices::default();
    for (kind, id, name, _) in rows {
        if kind == "p" {
            out.physicians.push((PersonId::from_uuid(id), name));
        } else {
            out.facilities.push((id, name));
        }
    }
    Ok(out)
}
