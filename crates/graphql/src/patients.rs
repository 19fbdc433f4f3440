//! The patient register through the API, routed to the association that hosts the patient's
//! group (`Musubi-Association` header). Who sees what is the services' rule (see
//! docs/patients.md); anything else answers `NOT_FOUND`. A refused form lists every field at
//! fault in the error's `fields` extension.

use crate::request::{routed, uuid, OrGql};
use async_graphql::{Context, Enum, InputObject, Object, SimpleObject, ID};
use chrono::{DateTime, NaiveDate, Utc};
use musubi_domain::patients::{PatientFilter, PatientForm, PatientListRow, PatientView};
use musubi_domain::types::{PatientId, PersonId};
use uuid::Uuid;

#[derive(Enum, Copy, Clone, Eq, PartialEq)]
#[graphql(remote = "musubi_domain::types::Sex")]
pub enum Sex {
    Male,
    Female,
    Other,
}

/// 要介護度.
#[derive(Enum, Copy, Clone, Eq, PartialEq)]
#[graphql(remote = "musubi_domain::types::CareLevel")]
pub enum CareLevel {
    /// なし.
    None,
    /// 申請中.
    Applying,
    Support1,
    Support2,
    Care1,
    Care2,
    Care3,
    Care4,
    Care5,
}

/// Where the patient is.
#[derive(Enum, Copy, Clone, Eq, PartialEq)]
#[graphql(remote = "musubi_domain::types::PatientStatus")]
pub enum PatientStatus {
    /// 在宅.
    Home,
    /// 入院中.
    Hospital,
    /// 施設入所.
    Facility,
    /// 終了.
    Ended,
}

#[derive(Enum, Copy, Clone, Eq, PartialEq)]
#[graphql(remote = "musubi_domain::types::EndReason")]
pub enum EndReason {
    /// 死亡.
    Death,
    /// 転居.
    Moved,
    Other,
}

/// The orders of the list.
#[derive(Enum, Copy, Clone, Eq, PartialEq, Default)]
pub enum PatientOrder {
    /// By reading, あ to ん.
    #[default]
    Kana,
    /// Oldest first.
    Age,
    /// Newest registration first.
    Registered,
    /// Most recent activity in the group first.
    Activity,
}

impl From<PatientOrder> for musubi_domain::patients::PatientOrder {
    fn from(o: PatientOrder) -> Self {
        match o {
            PatientOrder::Kana => Self::Kana,
            PatientOrder::Age => Self::Age,
            PatientOrder::Registered => Self::Registered,
            PatientOrder::Activity => Self::Activity,
        }
    }
}

/// The registration form. Dates are text as people write them: 昭和20年4月1日, S20.4.1,
/// 1945-04-01…
#[derive(InputObject)]
pub struct PatientInput {
    pub name: String,
    /// ふりがな (hiragana or katakana).
    pub name_kana: String,
    pub birth_date: String,
    pub sex: Sex,
    #[graphql(default)]
    pub postal_code: String,
    #[graphql(default)]
    pub address: String,
    #[graphql(default)]
    pub town: String,
    #[graphql(default)]
    pub phone: String,
    /// 主治医: me or one of `members`.
    pub physician_id: Option<ID>,
    #[graphql(default)]
    pub diagnoses: String,
    pub care_level: Option<CareLevel>,
    #[graphql(default)]
    pub key_person: String,
    #[graphql(default)]
    pub family_contact: String,
    #[graphql(default)]
    pub care_manager: String,
    #[graphql(default)]
    pub nurse_station: String,
    #[graphql(default)]
    pub pharmacy: String,
    pub status: Option<PatientStatus>,
    #[graphql(default)]
    pub status_since: String,
    pub end_reason: Option<EndReason>,
    #[graphql(default)]
    pub notes: String,
    /// The patient's consent to sharing: needed before anyone from outside my facility joins.
    #[graphql(default)]
    pub consent_date: String,
    #[graphql(default)]
    pub consent_by: String,
    #[graphql(default)]
    pub consent_scope: String,
}

impl PatientInput {
    fn form(self, ctx: &Context<'_>) -> async_graphql::Result<PatientForm> {
        let physician_id = match &self.physician_id {
            Some(id) => Some(uuid::<PersonId>(ctx, id)?),
            None => None,
        };
        Ok(PatientForm {
            name: self.name,
            name_kana: self.name_kana,
            birth_date: self.birth_date,
            sex: Some(self.sex.into()),
            postal_code: self.postal_code,
            address: self.address,
            town: self.town,
            phone: self.phone,
            physician_id,
            diagnoses: self.diagnoses,
            care_level: self.care_level.map(Into::into),
            key_person: self.key_person,
            family_contact: self.family_contact,
            care_manager: self.care_manager,
            nurse_station: self.nurse_station,
            pharmacy: self.pharmacy,
            status: self.status.map(Into::into),
            status_since: self.status_since,
            end_reason: self.end_reason.map(Into::into),
            notes: self.notes,
            consent_date: self.consent_date,
            consent_by: self.consent_by,
            consent_scope: self.consent_scope,
        })
    }
}

/// What the list is narrowed to.
#[derive(InputObject, Default)]
pub struct PatientFilterInput {
    /// Part of the name or reading; width, hiragana/katakana and spaces do not matter.
    #[graphql(default)]
    pub text: String,
    /// Any of these; empty for all.
    #[graphql(default)]
    pub statuses: Vec<PatientStatus>,
    pub physician_id: Option<ID>,
    pub facility_id: Option<ID>,
    pub care_level: Option<CareLevel>,
    pub age_min: Option<u32>,
    pub age_max: Option<u32>,
    #[graphql(default)]
    pub town: String,
    /// Only patients whose group has comments I have not read.
    #[graphql(default)]
    pub unread_only: bool,
}

fn id(u: impl Into<Uuid>) -> ID {
    let u: Uuid = u.into();
    ID(u.to_string())
}

/// One register entry.
#[derive(SimpleObject)]
pub struct Patient {
    pub id: ID,
    pub group_id: ID,
    pub group_name: String,
    pub name: String,
    pub name_kana: String,
    pub birth_date: NaiveDate,
    /// 昭和20年4月1日.
    pub birth_date_wareki: String,
    pub age: u32,
    pub sex: Sex,
    pub postal_code: String,
    pub address: String,
    pub town: String,
    pub phone: String,
    pub physician_id: Option<ID>,
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
    pub facility_name: Option<String>,
    pub registered_by_name: Option<String>,
    pub registered_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    /// Send it back with `updatePatient`: a change made meanwhile is not overwritten.
    pub version: i32,
    pub last_activity_at: DateTime<Utc>,
    /// My unread comments in the patient's group.
    pub unread: i64,
    /// I may correct the entry.
    pub can_edit: bool,
    /// I may open the group's conversation.
    pub in_group: bool,
}

fn patient_out(v: PatientView) -> Patient {
    let r = v.row;
    Patient {
        id: id(r.id),
        group_id: id(r.group_id),
        group_name: r.group_name,
        name: r.name,
        name_kana: r.name_kana,
        birth_date: r.birth_date,
        birth_date_wareki: v.birth_wareki,
        age: v.age,
        sex: r.sex.into(),
        postal_code: r.postal_code,
        address: r.address,
        town: r.town,
        phone: r.phone,
        physician_id: r.physician_id.map(id),
        physician_name: r.physician_name,
        diagnoses: r.diagnoses,
        care_level: r.care_level.into(),
        key_person: r.key_person,
        family_contact: r.family_contact,
        care_manager: r.care_manager,
        nurse_station: r.nurse_station,
        pharmacy: r.pharmacy,
        status: r.status.into(),
        status_since: r.status_since,
        end_reason: r.end_reason.map(Into::into),
        notes: r.notes,
        consent_date: r.consent_date,
        consent_by: r.consent_by,
        consent_scope: r.consent_scope,
        facility_name: r.facility_name,
        registered_by_name: r.registered_by_name,
        registered_at: r.registered_at,
        updated_at: r.updated_at,
        version: r.version,
        last_activity_at: r.last_activity_at,
        unread: r.unread,
        can_edit: v.can_edit,
        in_group: v.in_group,
    }
}

/// A line of the list.
#[derive(SimpleObject)]
pub struct PatientLine {
    pub id: ID,
    pub group_id: ID,
    pub name: String,
    pub name_kana: String,
    pub birth_date: NaiveDate,
    pub age: u32,
    pub sex: Sex,
    pub town: String,
    pub care_level: CareLevel,
    pub status: PatientStatus,
    pub physician_name: Option<String>,
    pub facility_name: Option<String>,
    pub registered_at: DateTime<Utc>,
    pub last_activity_at: DateTime<Utc>,
    pub unread: i64,
}

fn line_out(r: PatientListRow, today: NaiveDate) -> PatientLine {
    PatientLine {
        id: id(r.id),
        group_id: id(r.group_id),
        age: musubi_domain::wareki::age_on(r.birth_date, today),
        name: r.name,
        name_kana: r.name_kana,
        birth_date: r.birth_date,
        sex: r.sex.into(),
        town: r.town,
        care_level: r.care_level.into(),
        status: r.status.into(),
        physician_name: r.physician_name,
        facility_name: r.facility_name,
        registered_at: r.registered_at,
        last_activity_at: r.last_activity_at,
        unread: r.unread,
    }
}

/// A page of the list.
#[derive(SimpleObject)]
pub struct PatientPage {
    pub items: Vec<PatientLine>,
    /// Pass as `after` for the next page; null on the last.
    pub next: Option<String>,
    /// I see the whole register (an administrator of the association).
    pub whole_register: bool,
}

/// A new patient and their group.
#[derive(SimpleObject)]
pub struct Registered {
    pub patient_id: ID,
    pub group_id: ID,
}

/// A row an import left out, and why.
#[derive(SimpleObject)]
pub struct RejectedRow {
    /// The line in the file (the header is line 1).
    pub line: i32,
    /// The columns at fault (their headers; empty for the row as a whole) and a reason code
    /// for each, in the same order.
    pub columns: Vec<String>,
    pub reasons: Vec<String>,
}

/// What an import did (or, on a dry run, would do).
#[derive(SimpleObject)]
pub struct ImportReport {
    pub dry_run: bool,
    pub accepted: i32,
    pub rejected: Vec<RejectedRow>,
}

#[derive(Default)]
pub struct PatientQuery;

#[Object]
impl PatientQuery {
    /// The register entries I may see in the routed association, narrowed and ordered, 50 to a
    /// page (`first`: 1–200).
    async fn patients(
        &self,
        ctx: &Context<'_>,
        filter: Option<PatientFilterInput>,
        order: Option<PatientOrder>,
        after: Option<String>,
        first: Option<i64>,
    ) -> async_graphql::Result<PatientPage> {
        let (services, actor) = routed(ctx)?;
        let filter = filter.unwrap_or_default();
        let order = order.unwrap_or_default();
        let physician_id = match &filter.physician_id {
            Some(i) => Some(uuid::<PersonId>(ctx, i)?),
            None => None,
        };
        let facility_id = match &filter.facility_id {
            Some(i) => Some(uuid::<Uuid>(ctx, i)?),
            None => None,
        };
        let f = PatientFilter {
            text: filter.text,
            statuses: filter.statuses.into_iter().map(Into::into).collect(),
            physician_id,
            facility_id,
            care_level: filter.care_level.map(Into::into),
            age_min: filter.age_min,
            age_max: filter.age_max,
            town: filter.town,
            unread_only: filter.unread_only,
            order: order.into(),
            after,
            limit: first,
            with_choices: false,
        };
        let page = services.patients(&actor, &f).await.gql(ctx)?;
        let today = musubi_domain::patients::today();
        Ok(PatientPage {
            items: page.items.into_iter().map(|r| line_out(r, today)).collect(),
            next: page.next,
            whole_register: page.whole_register,
        })
    }

    /// The register entries I may see as CSV for Excel (UTF-8 with a byte order mark,
    /// Japanese headers); recorded in the audit log.
    async fn patients_csv(&self, ctx: &Context<'_>) -> async_graphql::Result<String> {
        let (services, actor) = routed(ctx)?;
        let bytes = services.export_patients_csv(&actor).await.gql(ctx)?;
        Ok(String::from_utf8_lossy(&bytes).into_owned())
    }

    /// A patient group as one JSON document for the patient's record (members only): the
    /// register entry, the members, every topic I may see with its comments, earlier versions
    /// and who read each, when. Recorded in the audit log.
    async fn patient_record(
        &self,
        ctx: &Context<'_>,
        group_id: ID,
    ) -> async_graphql::Result<async_graphql::Json<serde_json::Value>> {
        let (services, actor) = routed(ctx)?;
        let gid: musubi_domain::types::GroupId = uuid(ctx, &group_id)?;
        let record = services.patient_record(&actor, gid).await.gql(ctx)?;
        Ok(async_graphql::Json(record))
    }

    /// One register entry (recorded in the audit log).
    async fn patient(&self, ctx: &Context<'_>, id: ID) -> async_graphql::Result<Patient> {
        let (services, actor) = routed(ctx)?;
        let pid: PatientId = uuid(ctx, &id)?;
        let v = services.patient(&actor, pid).await.gql(ctx)?;
        Ok(patient_out(v))
    }
}

#[derive(Default)]
pub struct PatientMutation;

#[Object]
impl PatientMutation {
    /// Registers a patient in the routed association: the entry and a patient group named
    /// after them, with me as owner and `members` (people of my directory) invited.
    async fn register_patient(
        &self,
        ctx: &Context<'_>,
        input: PatientInput,
        #[graphql(default)] members: Vec<ID>,
    ) -> async_graphql::Result<Registered> {
        let (services, actor) = routed(ctx)?;
        let form = input.form(ctx)?;
        let members = members
            .iter()
            .map(|m| uuid::<PersonId>(ctx, m))
            .collect::<async_graphql::Result<Vec<_>>>()?;
        let r = services
            .register_patient(&actor, &form, &members)
            .await
            .gql(ctx)?;
        Ok(Registered {
            patient_id: id(r.patient_id),
            group_id: id(r.group_id),
        })
    }

    /// Gives a patient group made before the register its entry (the group's owners); the
    /// group keeps its name until the entry is next corrected.
    async fn attach_patient(
        &self,
        ctx: &Context<'_>,
        group_id: ID,
        input: PatientInput,
    ) -> async_graphql::Result<Patient> {
        let (services, actor) = routed(ctx)?;
        let gid: musubi_domain::types::GroupId = uuid(ctx, &group_id)?;
        let form = input.form(ctx)?;
        let pid = services.attach_patient(&actor, gid, &form).await.gql(ctx)?;
        let v = services.patient(&actor, pid).await.gql(ctx)?;
        Ok(patient_out(v))
    }

    /// Imports a CSV file in the export's format: every row is checked like the registration
    /// form; accepted rows become patients with their groups (I am their owner) unless
    /// `dryRun` (the default), rejected rows are reported and left out.
    async fn import_patients_csv(
        &self,
        ctx: &Context<'_>,
        csv: String,
        dry_run: Option<bool>,
    ) -> async_graphql::Result<ImportReport> {
        let (services, actor) = routed(ctx)?;
        // Left out (or null), it is a dry run: writing needs `dryRun: false`.
        let dry_run = dry_run.unwrap_or(true);
        let r = services
            .import_patients_csv(&actor, csv.as_bytes(), dry_run)
            .await
            .gql(ctx)?;
        Ok(ImportReport {
            dry_run: r.dry_run,
            accepted: i32::try_from(r.accepted).unwrap_or(i32::MAX),
            rejected: r
                .rejected
                .into_iter()
                .map(|x| RejectedRow {
                    line: i32::try_from(x.line).unwrap_or(i32::MAX),
                    columns: x.issues.iter().map(|(c, _)| c.clone()).collect(),
                    reasons: x.issues.iter().map(|(_, r)| (*r).to_owned()).collect(),
                })
                .collect(),
        })
    }

    /// Corrects an entry (members of the patient's group). `version` is the one read; if
    /// someone changed the entry since, nothing is written (`CONFLICT`).
    async fn update_patient(
        &self,
        ctx: &Context<'_>,
        id: ID,
        version: i32,
        input: PatientInput,
    ) -> async_graphql::Result<Patient> {
        let (services, actor) = routed(ctx)?;
        let pid: PatientId = uuid(ctx, &id)?;
        let form = input.form(ctx)?;
        services
            .update_patient(&actor, pid, version, &form)
            .await
            .gql(ctx)?;
        let v = services.patient(&actor, pid).await.gql(ctx)?;
        Ok(patient_out(v))
    }
}
