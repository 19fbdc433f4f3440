//! The patient register (患者台帳): the fixed-format registration form that creates a patient and
//! their group, the entry's page, edits, and the list with search, filters, orders and keyset
//! pages.
//!
//! Who sees what (docs/patients.md):
//! - the active members of a patient's group see its entry (and may correct it);
//! - the host association's administrators see every entry of the register, never the
//!   conversation of a group they are not in;
//! - anyone else, administrators of other associations included, is answered "not found".

use crate::audit::AuditAction;
use crate::error::FieldIssue;
use crate::groups::active_role;
use crate::wareki::{self, DateError};
use crate::{AppError, AppResult, ErrorCode, Services};
use chrono::{NaiveDate, Utc};
use musubi_authz::{Action, Domain, Object};
use musubi_db::groups as repo;
use musubi_db::types::japanese::{fold, is_kana};
use musubi_db::types::{
    CareLevel, EndReason, GroupId, GroupKind, JoinPolicy, PatientId, PatientStatus, PersonId, Sex,
};
use musubi_db::types::{GroupMemberStatus, GroupRole};
use unicode_normalization::UnicodeNormalization;

use crate::actor::Actor;
use crate::change::EventSpec;

pub use repo::{PatientCursor, PatientFilterChoices, PatientListRow, PatientOrder, PatientRow};

/// Rows per page of the list.
pub const PATIENT_PAGE: i64 = 50;
/// People chosen on the registration form, at most.
pub const MAX_FORM_MEMBERS: usize = 30;

/// Reasons a field of the form is refused, besides [`crate::text::reason`]'s.
pub mod reason {
    pub use crate::text::reason::{FORBIDDEN_CHARACTER, REQUIRED, TOO_LONG};
    /// ふりがな must be kana.
    pub const NOT_KANA: &str = "NOT_KANA";
    /// Not a way of writing a date that is understood.
    pub const DATE_UNREADABLE: &str = "DATE_UNREADABLE";
    /// No such day on the calendar.
    pub const NO_SUCH_DAY: &str = "NO_SUCH_DAY";
    /// The era had ended (or not begun) on that day, e.g. 平成31年5月1日.
    pub const OUTSIDE_ERA: &str = "OUTSIDE_ERA";
    /// A birth date (or consent) after today.
    pub const IN_FUTURE: &str = "IN_FUTURE";
    /// A postal code is seven digits (123-4567).
    pub const POSTAL_CODE: &str = "POSTAL_CODE";
    /// Digits, hyphens, parentheses and + only.
    pub const PHONE: &str = "PHONE";
    /// Ended care needs its reason (死亡・転居・その他), and only ended care has one.
    pub const END_REASON: &str = "END_REASON";
    /// Someone from outside the registrant's facility is being added without the patient's
    /// consent on record.
    pub const CONSENT_REQUIRED: &str = "CONSENT_REQUIRED";
    /// Consent needs its date and who obtained it together.
    pub const CONSENT_INCOMPLETE: &str = "CONSENT_INCOMPLETE";
}

/// The registration form as typed. Dates are text in any form [`wareki::parse_date`] reads.
#[derive(Debug, Clone, Default)]
pub struct PatientForm {
    pub name: String,
    pub name_kana: String,
    pub birth_date: String,
    pub sex: Option<Sex>,
    pub postal_code: String,
    pub address: String,
    pub town: String,
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
    pub status_since: String,
    pub end_reason: Option<EndReason>,
    pub notes: String,
    pub consent_date: String,
    pub consent_by: String,
    pub consent_scope: String,
}

/// The patient group's name: one format everywhere, renewed when the register changes.
pub fn group_name(patient_name: &str) -> String {
    format!("{patient_name}さん")
}

/// Today in Japan (birth dates and ages are Japanese dates; Japan keeps +09:00 all year).
pub fn today() -> NaiveDate {
    let now = Utc::now();
    chrono::FixedOffset::east_opt(9 * 3600).map_or_else(
        || now.date_naive(),
        |jst| now.with_timezone(&jst).date_naive(),
    )
}

struct Checker {
    issues: Vec<FieldIssue>,
}

impl Checker {
    fn push(&mut self, field: &'static str, reason: &'static str) {
        if !self.issues.iter().any(|i| i.field == field) {
            self.issues.push(FieldIssue { field, reason });
        }
    }

    fn take(&mut self, field: &'static str, r: AppResult<Option<String>>) -> String {
        match r {
            Ok(v) => v.unwrap_or_default(),
            Err(e) => {
                self.push(
                    field,
                    e.reasons.first().copied().unwrap_or(reason::REQUIRED),
                );
                String::new()
            }
        }
    }

    fn line(&mut self, field: &'static str, raw: &str, max: usize) -> String {
        self.take(field, crate::text::optional_line(field, raw, max))
    }

    fn required_line(&mut self, field: &'static str, raw: &str, max: usize) -> String {
        let v = self.line(field, raw, max);
        if v.is_empty() && !self.issues.iter().any(|i| i.field == field) {
            self.push(field, reason::REQUIRED);
        }
        v
    }

    fn lines(&mut self, field: &'static str, raw: &str, max: usize) -> String {
        self.take(
            field,
            crate::text::optional_lines(field, raw, max).map(Some),
        )
    }

    fn date(&mut self, field: &'static str, raw: &str, today: NaiveDate) -> Option<NaiveDate> {
        match wareki::parse_date(raw) {
            Ok(d) if d > today => {
                self.push(field, reason::IN_FUTURE);
                None
            }
            Ok(d) => Some(d),
            Err(DateError::Empty) => None,
            Err(DateError::Unreadable) => {
                self.push(field, reason::DATE_UNREADABLE);
                None
            }
            Err(DateError::NoSuchDay) => {
                self.push(field, reason::NO_SUCH_DAY);
                None
            }
            Err(DateError::OutsideEra) => {
                self.push(field, reason::OUTSIDE_ERA);
                None
            }
        }
    }
}

/// Checks the whole form at once (every field at fault is named) and folds what is searched.
pub fn check_form(
    form: &PatientForm,
    today: NaiveDate,
) -> Result<repo::PatientFields, Vec<FieldIssue>> {
    let mut c = Checker { issues: Vec::new() };
    let name = c.required_line("name", &form.name, 60);
    let name_kana = c.required_line("nameKana", &form.name_kana, 60);
    if !name_kana.is_empty() && !is_kana(&name_kana) {
        c.push("nameKana", reason::NOT_KANA);
    }
    let birth_date = c.date("birthDate", &form.birth_date, today);
    if birth_date.is_none() && form.birth_date.trim().is_empty() {
        c.push("birthDate", reason::REQUIRED);
    }
    if form.sex.is_none() {
        c.push("sex", reason::REQUIRED);
    }
    let postal_code = c.line("postalCode", &form.postal_code, 10);
    let postal_code = if postal_code.is_empty() {
        postal_code
    } else {
        let digits: String = postal_code
            .nfkc()
            .filter(|ch| !matches!(ch, '-' | 'ー' | '−' | '‐' | ' '))
            .collect();
        if digits.len() == 7 && digits.bytes().all(|b| b.is_ascii_digit()) {
            format!("{}-{}", &digits[..3], &digits[3..])
        } else {
            c.push("postalCode", reason::POSTAL_CODE);
            String::new()
        }
    };
    let address = c.line("address", &form.address, 200);
    let town = c.line("town", &form.town, 60);
    let phone: String = c.line("phone", &form.phone, 30).nfkc().collect();
    if !phone
        .chars()
        .all(|ch| ch.is_ascii_digit() || matches!(ch, '-' | '(' | ')' | '+' | ' '))
    {
        c.push("phone", reason::PHONE);
    }
    let diagnoses = c.lines("diagnoses", &form.diagnoses, 500);
    let key_person = c.line("keyPerson", &form.key_person, 100);
    let family_contact = c.lines("familyContact", &form.family_contact, 200);
    let care_manager = c.line("careManager", &form.care_manager, 100);
    let nurse_station = c.line("nurseStation", &form.nurse_station, 100);
    let pharmacy = c.line("pharmacy", &form.pharmacy, 100);
    let status = form.status.unwrap_or(PatientStatus::Home);
    let status_since = c.date("statusSince", &form.status_since, today);
    let end_reason = match (status, form.end_reason) {
        (PatientStatus::Ended, None) => {
            c.push("endReason", reason::END_REASON);
            None
        }
        (PatientStatus::Ended, Some(r)) => Some(r),
        // A reason left over from choosing 終了 and back: not kept.
        (_, _) => None,
    };
    let notes = c.lines("notes", &form.notes, 2000);
    let consent_date = c.date("consentDate", &form.consent_date, today);
    let consent_by = c.line("consentBy", &form.consent_by, 100);
    let consent_scope = c.lines("consentScope", &form.consent_scope, 500);
    let consent_typed = !form.consent_date.trim().is_empty();
    if consent_typed == consent_by.is_empty() && !c.issues.iter().any(|i| i.field == "consentDate")
    {
        let field = if consent_typed {
            "consentBy"
        } else {
            "consentDate"
        };
        c.push(field, reason::CONSENT_INCOMPLETE);
    }
    if !c.issues.is_empty() {
        return Err(c.issues);
    }
    let Some(birth_date) = birth_date else {
        return Err(vec![FieldIssue {
            field: "birthDate",
            reason: reason::REQUIRED,
        }]);
    };
    Ok(repo::PatientFields {
        name_folded: format!("{}\n{}", fold(&name), fold(&name_kana)),
        kana_folded: fold(&name_kana),
        town_folded: fold(&town),
        name,
        name_kana,
        birth_date,
        sex: form.sex,
        postal_code,
        address,
        town,
        phone,
        physician_id: form.physician_id,
        diagnoses,
        care_level: Some(form.care_level.unwrap_or(CareLevel::None)),
        key_person,
        family_contact,
        care_manager,
        nurse_station,
        pharmacy,
        status: Some(status),
        status_since,
        end_reason,
        notes,
        consent_date,
        consent_by,
        consent_scope,
    })
}

/// A new patient and their group.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Registered {
    pub patient_id: PatientId,
    pub group_id: GroupId,
}

/// One register entry as its page shows it.
#[derive(Debug, Clone)]
pub struct PatientView {
    pub row: PatientRow,
    pub age: u32,
    /// 昭和20年4月1日.
    pub birth_wareki: String,
    /// The viewer may correct the entry (an active member of the group).
    pub can_edit: bool,
    /// The viewer may open the group's conversation.
    pub in_group: bool,
}

/// A list request as typed; checked by [`Services::patients`].
#[derive(Debug, Clone, Default)]
pub struct PatientFilter {
    pub text: String,
    pub statuses: Vec<PatientStatus>,
    pub physician_id: Option<PersonId>,
    pub facility_id: Option<uuid::Uuid>,
    pub care_level: Option<CareLevel>,
    pub age_min: Option<u32>,
    pub age_max: Option<u32>,
    pub town: String,
    pub unread_only: bool,
    pub order: PatientOrder,
    /// An opaque cursor from a previous page's `next`.
    pub after: Option<String>,
    pub limit: Option<i64>,
    /// Also read what the physician and facility filters may offer (the web form).
    pub with_choices: bool,
}

/// One page of the list.
#[derive(Debug, Clone)]
pub struct PatientPage {
    pub items: Vec<PatientListRow>,
    /// Where the next page starts; `None` on the last.
    pub next: Option<String>,
    /// The viewer sees the whole register (an administrator).
    pub whole_register: bool,
    /// The filters' choices, when asked for.
    pub choices: Option<PatientFilterChoices>,
}

fn encode_cursor(c: &PatientCursor) -> String {
    format!("{}.{}", c.id, c.key)
}

fn decode_cursor(s: &str, order: PatientOrder) -> AppResult<PatientCursor> {
    let bad = || AppError::invalid("after", "not a cursor of this list");
    let (id, key) = s.split_once('.').ok_or_else(bad)?;
    let id: PatientId = id.parse().map_err(|_| bad())?;
    let valid = match order {
        PatientOrder::Kana => key.chars().count() <= 200,
        PatientOrder::Age => key.parse::<NaiveDate>().is_ok(),
        PatientOrder::Registered | PatientOrder::Activity => {
            chrono::DateTime::parse_from_rfc3339(key).is_ok()
        }
    };
    if !valid {
        return Err(bad());
    }
    Ok(PatientCursor {
        key: key.to_owned(),
        id,
    })
}

/// Refuses to add `person` (or, with `None`, someone not yet known: an invitation by address)
/// to a patient group whose register entry has no consent to sharing, unless they work at the
/// facility the patient was registered from. Groups without an entry (made before the register)
/// are not checked.
pub(crate) async fn check_consent(
    conn: &mut sqlx::PgConnection,
    group: &repo::HostedGroup,
    viewer: PersonId,
    person: Option<PersonId>,
) -> AppResult<()> {
    let Some(entry) = repo::patient_of_group(conn, viewer, group.id()).await? else {
        return Ok(());
    };
    if entry.consent_date.is_some() {
        return Ok(());
    }
    let same_facility = match person {
        Some(p) => {
            let theirs = repo::facility_in_host(conn, group, p).await?;
            entry.facility_id.is_some() && theirs == entry.facility_id
        }
        None => false,
    };
    if same_facility {
        Ok(())
    } else {
        Err(AppError::invalid_fields(vec![FieldIssue {
            field: "consentDate",
            reason: reason::CONSENT_REQUIRED,
        }]))
    }
}

impl Services {
    /// Registers a patient: the entry and its patient group, with the registrant as owner and
    /// `members` (from the registrant's directory) invited. Anyone from outside the
    /// registrant's facility needs the patient's consent on the form.
    pub async fn register_patient(
        &self,
        actor: &Actor<'_>,
        form: &PatientForm,
        members: &[PersonId],
    ) -> AppResult<Registered> {
        let fields = check_form(form, today()).map_err(AppError::invalid_fields)?;
        if members.len() > MAX_FORM_MEMBERS {
            return Err(AppError::invalid("members", "too many people at once"));
        }
        self.authorize_in(actor, Object::Patients, Action::Create)
            .await?;
        let me = actor.viewer.user.id;
        let group_id = GroupId::generate();
        let patient_id = PatientId::generate();
        let mut c = self.change(actor).await?;
        let name = group_name(&fields.name);
        let group = repo::insert_group(
            c.conn(),
            actor.tenant,
            &repo::NewGroup {
                id: group_id,
                kind: GroupKind::Patient,
                name: &name,
                description: "",
                join_policy: JoinPolicy::Invite,
                receipt_mode: None,
                created_by: me,
            },
        )
        .await?;
        let my_facility = repo::facility_in_host(c.conn(), &group, me).await?;
        let mut invited = Vec::new();
        for person in members.iter().copied().filter(|p| *p != me) {
            if invited.contains(&person) {
                continue;
            }
            if !repo::in_directory_of(c.conn(), me, person).await? {
                return Err(AppError::invalid("members", "not in your directory"));
            }
            let theirs = repo::facility_in_host(c.conn(), &group, person).await?;
            let same_facility = my_facility.is_some() && theirs == my_facility;
            if !same_facility && fields.consent_date.is_none() {
                return Err(AppError::invalid_fields(vec![FieldIssue {
                    field: "consentDate",
                    reason: reason::CONSENT_REQUIRED,
                }]));
            }
            repo::upsert_member(
                c.conn(),
                &group,
                person,
                GroupRole::Member,
                GroupMemberStatus::Invited,
                Some(me),
            )
            .await?;
            invited.push(person);
        }
        if let Some(physician) = fields.physician_id {
            if physician != me && !invited.contains(&physician) {
                return Err(AppError::invalid(
                    "physicianId",
                    "the physician must be one of the members",
                ));
            }
        }
        repo::insert_patient(c.conn(), &group, patient_id, &fields, my_facility, me).await?;
        if fields.status == Some(PatientStatus::Ended) {
            repo::set_group_archived(c.conn(), group_id, true).await?;
        }
        c.about_group(&name);
        let entry = c
            .entry(AuditAction::PatientCreate)
            .on("patient", patient_id)
            .with_detail("group_id", group_id.to_string())
            .with_detail("invited", i64::try_from(invited.len()).unwrap_or(0));
        c.audit(entry);
        c.event(&group, EventSpec::membership(me)).await?;
        for person in &invited {
            c.event(&group, EventSpec::membership(*person)).await?;
        }
        c.commit().await?;
        Ok(Registered {
            patient_id,
            group_id,
        })
    }

    /// Gives an existing patient group that has no register entry yet (one made before the
    /// register existed) its entry (the group's owners). The group keeps its name until the
    /// entry is next corrected, which renames it in the register's format.
    pub async fn attach_patient(
        &self,
        actor: &Actor<'_>,
        group_id: GroupId,
        form: &PatientForm,
    ) -> AppResult<PatientId> {
        let fields = check_form(form, today()).map_err(AppError::invalid_fields)?;
        let me = actor.viewer.user.id;
        let mut c = self.change(actor).await?;
        let (hosted, group) = repo::group(c.conn(), actor.tenant, me, group_id)
            .await?
            .ok_or_else(AppError::not_found)?;
        c.about_group(&group.name);
        c.authorize(&hosted, active_role(&group), Object::Group, Action::Update)
            .await?;
        if group.kind != GroupKind::Patient {
            return Err(AppError::invalid("groupId", "not a patient group"));
        }
        if repo::patient_of_group(c.conn(), me, group_id)
            .await?
            .is_some()
        {
            return Err(AppError::new(
                ErrorCode::Conflict,
                "this group already has its register entry",
            ));
        }
        if let Some(physician) = fields.physician_id {
            if !repo::members(c.conn(), &hosted)
                .await?
                .iter()
                .any(|m| m.user_id == physician)
            {
                return Err(AppError::invalid(
                    "physicianId",
                    "the physician must be a member of the group",
                ));
            }
        }
        let patient_id = PatientId::generate();
        let facility = repo::facility_in_host(c.conn(), &hosted, me).await?;
        repo::insert_patient(c.conn(), &hosted, patient_id, &fields, facility, me).await?;
        if fields.status == Some(PatientStatus::Ended) {
            repo::set_group_archived(c.conn(), group_id, true).await?;
        }
        let entry = c
            .entry(AuditAction::PatientCreate)
            .on("patient", patient_id)
            .with_detail("group_id", group_id.to_string());
        c.audit(entry);
        c.commit().await?;
        Ok(patient_id)
    }

    /// Whether the viewer is one of the tenant's administrators, who see the whole register.
    pub(crate) fn sees_whole_register(&self, actor: &Actor<'_>) -> bool {
        self.authorizer().allows(
            &actor.viewer.principal,
            Domain::Association(actor.tenant.id.uuid()),
            Object::Patients,
            Action::Read,
        )
    }

    /// One register entry (audited as read). "Not found" for anyone who may not see it.
    pub async fn patient(&self, actor: &Actor<'_>, id: PatientId) -> AppResult<PatientView> {
        let me = actor.viewer.user.id;
        let whole = self.sees_whole_register(actor);
        let mut c = self.change(actor).await?;
        let group_id = repo::group_of_patient(c.conn(), id)
            .await?
            .ok_or_else(AppError::not_found)?;
        let (hosted, group) = repo::group(c.conn(), actor.tenant, me, group_id)
            .await?
            .ok_or_else(AppError::not_found)?;
        c.about_group(&group.name);
        let role = active_role(&group);
        if role.is_some() || !whole {
            c.authorize(&hosted, role, Object::Patient, Action::Read)
                .await?;
        }
        let row = repo::patient(c.conn(), me, id)
            .await?
            .ok_or_else(AppError::not_found)?;
        let entry = c
            .entry(AuditAction::PatientRead)
            .on("patient", id)
            .with_detail("group_id", group_id.to_string());
        c.audit(entry);
        c.commit().await?;
        let today = today();
        Ok(PatientView {
            age: wareki::age_on(row.birth_date, today),
            birth_wareki: wareki::format_wareki(row.birth_date),
            can_edit: role.is_some(),
            in_group: role.is_some(),
            row,
        })
    }

    /// The entry of a patient group, for the group's own page (its members only; no audit
    /// record of its own: opening the group is recorded).
    pub async fn patient_of_group(
        &self,
        actor: &Actor<'_>,
        group_id: GroupId,
    ) -> AppResult<Option<PatientView>> {
        let me = actor.viewer.user.id;
        let mut c = self.change(actor).await?;
        let (hosted, group) = repo::group(c.conn(), actor.tenant, me, group_id)
            .await?
            .ok_or_else(AppError::not_found)?;
        let role = active_role(&group);
        c.authorize(&hosted, role, Object::Patient, Action::Read)
            .await?;
        let row = repo::patient_of_group(c.conn(), me, group_id).await?;
        c.commit().await?;
        let today = today();
        Ok(row.map(|row| PatientView {
            age: wareki::age_on(row.birth_date, today),
            birth_wareki: wareki::format_wareki(row.birth_date),
            can_edit: role.is_some(),
            in_group: role.is_some(),
            row,
        }))
    }

    /// A patient group as one JSON document for the patient's record: the register entry, the
    /// members, and every topic the viewer may see with its comments (current text, earlier
    /// versions, deletions marked) and who read or confirmed each, when. Members only; one
    /// audit record (`patient.export`).
    pub async fn patient_record(
        &self,
        actor: &Actor<'_>,
        group_id: GroupId,
    ) -> AppResult<serde_json::Value> {
        use serde_json::json;
        let me = actor.viewer.user.id;
        let mut c = self.change(actor).await?;
        let (hosted, group) = repo::group(c.conn(), actor.tenant, me, group_id)
            .await?
            .ok_or_else(AppError::not_found)?;
        c.about_group(&group.name);
        let role = active_role(&group);
        c.authorize(&hosted, role, Object::Comments, Action::Read)
            .await?;
        let entry = repo::patient_of_group(c.conn(), me, group_id).await?;
        let members = repo::members(c.conn(), &hosted).await?;
        let names: std::collections::HashMap<PersonId, String> = members
            .iter()
            .map(|m| (m.user_id, m.name.clone()))
            .collect();
        let topics = repo::topics_of_group(
            c.conn(),
            me,
            crate::groups::viewer_bit(actor.viewer),
            &hosted,
            i64::MAX,
        )
        .await?;
        let ack = group.receipt_mode == musubi_db::types::ReceiptMode::Acknowledgement;
        let mut out_topics = Vec::new();
        for t in &topics {
            let comments =
                repo::comments_of_topic(c.conn(), hosted.plan_slot(), t.id, 1, i64::MAX).await?;
            let edited: Vec<_> = comments
                .iter()
                .filter(|cm| cm.version > 1)
                .map(|cm| cm.id)
                .collect();
            let versions =
                repo::versions_of_comments(c.conn(), hosted.plan_slot(), &edited).await?;
            let receipts = repo::receipts_of_topic(c.conn(), t.id, ack).await?;
            let comments: Vec<serde_json::Value> = comments
                .iter()
                .map(|cm| {
                    let deleted = cm.deleted_at.is_some();
                    json!({
                        "seq": cm.seq,
                        "author": cm.author_name,
                        "at": cm.created_at,
                        "important": cm.important,
                        "text": if deleted { None } else { Some(&cm.body) },
                        "deletedAt": cm.deleted_at,
                        "editedAt": cm.edited_at,
                        "earlierVersions": if deleted { Vec::new() } else {
                            versions
                                .iter()
                                .filter(|v| v.comment_id == cm.id)
                                .map(|v| json!({"version": v.version, "text": v.body, "writtenAt": v.written_at}))
                                .collect()
                        },
                        "readBy": receipts
                            .iter()
                            .filter(|r| r.comment_id == cm.id)
                            .map(|r| json!({
                                "name": names.get(&r.user_id).cloned().unwrap_or_default(),
                                "at": r.at,
                            }))
                            .collect::<Vec<_>>(),
                    })
                })
                .collect();
            out_topics.push(json!({
                "title": t.title,
                "author": t.author_name,
                "createdAt": t.created_at,
                "closed": t.closed,
                "comments": comments,
            }));
        }
        let patient = entry.map(|p| {
            json!({
                "name": p.name,
                "nameKana": p.name_kana,
                "birthDate": p.birth_date,
                "birthDateWareki": wareki::format_wareki(p.birth_date),
                "sex": p.sex.code(),
                "postalCode": p.postal_code,
                "address": p.address,
                "phone": p.phone,
                "physician": p.physician_name,
                "diagnoses": p.diagnoses,
                "careLevel": p.care_level.code(),
                "keyPerson": p.key_person,
                "familyContact": p.family_contact,
                "careManager": p.care_manager,
                "nurseStation": p.nurse_station,
                "pharmacy": p.pharmacy,
                "status": p.status.code(),
                "statusSince": p.status_since,
                "endReason": p.end_reason.map(|r| r.code()),
                "notes": p.notes,
                "consent": {"date": p.consent_date, "by": p.consent_by, "scope": p.consent_scope},
            })
        });
        let record = json!({
            "format": "musubi.patient-record.v1",
            "exportedAt": Utc::now(),
            "association": actor.tenant.slug,
            "group": {"name": group.name, "createdAt": group.created_at, "endedAt": group.archived_at},
            "patient": patient,
            "members": members
                .iter()
                .filter(|m| m.status == GroupMemberStatus::Active)
                .map(|m| json!({"name": m.name, "profession": m.profession.code(), "facility": m.facility_name}))
                .collect::<Vec<_>>(),
            "topics": out_topics,
        });
        let entry = c
            .entry(AuditAction::PatientExport)
            .on("group", group_id)
            .with_detail("format", "json")
            .with_detail("topics", i64::try_from(topics.len()).unwrap_or(i64::MAX));
        c.audit(entry);
        c.commit().await?;
        Ok(record)
    }

    /// Corrects an entry (members of its group). `version` is the one the form was opened
    /// at: a change made meanwhile by someone else is not overwritten (`CONFLICT`). The group's
    /// name follows the patient's.
    pub async fn update_patient(
        &self,
        actor: &Actor<'_>,
        id: PatientId,
        version: i32,
        form: &PatientForm,
    ) -> AppResult<()> {
        let fields = check_form(form, today()).map_err(AppError::invalid_fields)?;
        let me = actor.viewer.user.id;
        let mut c = self.change(actor).await?;
        let group_id = repo::group_of_patient(c.conn(), id)
            .await?
            .ok_or_else(AppError::not_found)?;
        let (hosted, group) = repo::group(c.conn(), actor.tenant, me, group_id)
            .await?
            .ok_or_else(AppError::not_found)?;
        c.about_group(&group.name);
        c.authorize(
            &hosted,
            active_role(&group),
            Object::Patient,
            Action::Update,
        )
        .await?;
        let before = repo::patient(c.conn(), me, id)
            .await?
            .ok_or_else(AppError::not_found)?;
        if let Some(physician) = fields.physician_id {
            if before.physician_id != Some(physician)
                && !repo::members(c.conn(), &hosted)
                    .await?
                    .iter()
                    .any(|m| m.user_id == physician)
            {
                return Err(AppError::invalid(
                    "physicianId",
                    "the physician must be a member of the group",
                ));
            }
        }
        if !repo::update_patient(c.conn(), id, version, &fields).await? {
            return Err(AppError::new(
                ErrorCode::Conflict,
                "someone else changed this entry meanwhile; reload it",
            ));
        }
        let name = group_name(&fields.name);
        repo::rename_patient_group(c.conn(), group_id, &name).await?;
        // Ending care keeps the group read-only; any other status reopens it.
        let ended = fields.status == Some(PatientStatus::Ended);
        let archived_now = repo::set_group_archived(c.conn(), group_id, ended).await?;
        let mut entry = c
            .entry(AuditAction::PatientUpdate)
            .on("patient", id)
            .with_detail("group_id", group_id.to_string());
        if before.status != fields.status.unwrap_or(before.status) {
            entry = entry.with_detail("status", fields.status.map_or("", |s| s.code()));
        }
        if archived_now {
            entry = entry.with_detail("archived", ended);
        }
        c.audit(entry);
        c.commit().await?;
        Ok(())
    }

    /// A page of the register entries the viewer may see (audited: one record naming the
    /// entries shown).
    pub async fn patients(
        &self,
        actor: &Actor<'_>,
        filter: &PatientFilter,
    ) -> AppResult<PatientPage> {
        let text = crate::text::search_term("text", &filter.text, 60)?.unwrap_or_default();
        let town = crate::text::search_term("town", &filter.town, 60)?.unwrap_or_default();
        let today = today();
        if let (Some(lo), Some(hi)) = (filter.age_min, filter.age_max) {
            if lo > hi {
                return Err(AppError::invalid(
                    "ageMax",
                    "the upper age is below the lower",
                ));
            }
        }
        let after = filter
            .after
            .as_deref()
            .filter(|s| !s.is_empty())
            .map(|s| decode_cursor(s, filter.order))
            .transpose()?;
        let limit = filter.limit.unwrap_or(PATIENT_PAGE).clamp(1, 200);
        let query = repo::PatientQuery {
            text: fold(&text),
            statuses: filter.statuses.clone(),
            physician_id: filter.physician_id,
            facility_id: filter.facility_id,
            care_level: filter.care_level,
            born_from: filter
                .age_max
                .and_then(|a| wareki::born_after_for_max_age(a.min(150), today)),
            born_until: filter
                .age_min
                .and_then(|a| wareki::born_before_for_min_age(a.min(150), today)),
            town: fold(&town),
            unread_only: filter.unread_only,
            order: filter.order,
            after,
            limit: limit + 1,
        };
        let whole = self.sees_whole_register(actor);
        let mut c = self.change(actor).await?;
        let mut items = repo::list_patients(c.conn(), actor.viewer.user.id, whole, &query).await?;
        let next = if items.len() > usize::try_from(limit).unwrap_or(0) {
            items.truncate(usize::try_from(limit).unwrap_or(0));
            items.last().map(|r| encode_cursor(&r.cursor(filter.order)))
        } else {
            None
        };
        if !items.is_empty() {
            let mut entry = c
                .entry(AuditAction::PatientList)
                .on_many(items.iter().map(|r| r.id));
            if !text.is_empty() {
                entry = entry.with_detail("searched", true);
            }
            c.audit(entry);
        }
        let choices = if filter.with_choices {
            Some(repo::patient_filter_choices(c.conn(), actor.viewer.user.id, whole).await?)
        } else {
            None
        };
        c.commit().await?;
        Ok(PatientPage {
            items,
            next,
            whole_register: whole,
            choices,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn form() -> PatientForm {
        PatientForm {
            name: "山田 太郎".into(),
            name_kana: "ヤマダ タロウ".into(),
            birth_date: "S20.4.1".into(),
            sex: Some(Sex::Male),
            ..PatientForm::default()
        }
    }

    fn today() -> NaiveDate {
        NaiveDate::from_ymd_opt(2026, 12, 5).expect("date")
    }

    #[test]
    fn a_minimal_form_is_enough_and_folds_what_is_searched() {
        let f = check_form(&form(), today()).expect("valid");
        assert_eq!(f.name, "山田 太郎");
        assert_eq!(f.kana_folded, "やまだたろう");
        assert_eq!(f.name_folded, "山田太郎\nやまだたろう");
        assert_eq!(
            f.birth_date,
            NaiveDate::from_ymd_opt(1945, 4, 1).expect("date")
        );
        assert_eq!(f.status, Some(PatientStatus::Home));
        assert_eq!(f.care_level, Some(CareLevel::None));
    }

    #[test]
    fn every_field_at_fault_is_named_at_once() {
        let bad = PatientForm {
            name: " ".into(),
            name_kana: "山田".into(),
            birth_date: "平成31年5月1日".into(),
            sex: None,
            postal_code: "12-345".into(),
            phone: "03-1234-abcd".into(),
            status: Some(PatientStatus::Ended),
            consent_date: "2026-12-01".into(),
            ..PatientForm::default()
        };
        let issues = check_form(&bad, today()).expect_err("refused");
        let got: Vec<(&str, &str)> = issues.iter().map(|i| (i.field, i.reason)).collect();
        assert_eq!(
            got,
            vec![
                ("name", reason::REQUIRED),
                ("nameKana", reason::NOT_KANA),
                ("birthDate", reason::OUTSIDE_ERA),
                ("sex", reason::REQUIRED),
                ("postalCode", reason::POSTAL_CODE),
                ("phone", reason::PHONE),
                ("endReason", reason::END_REASON),
                ("consentBy", reason::CONSENT_INCOMPLETE),
            ]
        );
    }

    #[test]
    fn dates_in_the_future_and_postal_codes_in_full_width() {
        let f = PatientForm {
            birth_date: "令和9年1月1日".into(),
            ..form()
        };
        let issues = check_form(&f, today()).expect_err("future");
        assert_eq!(issues[0].reason, reason::IN_FUTURE);
        let f = PatientForm {
            postal_code: "１２３ー４５６７".into(),
            ..form()
        };
        assert_eq!(
            check_form(&f, today()).expect("valid").postal_code,
            "123-4567"
        );
    }

    #[test]
    fn cursors_round_trip_and_refuse_garbage() {
        let id = PatientId::generate();
        let c = PatientCursor {
            key: "やまだ.たろう".into(),
            id,
        };
        let s = encode_cursor(&c);
        assert_eq!(decode_cursor(&s, PatientOrder::Kana).expect("cursor"), c);
        assert!(decode_cursor(&s, PatientOrder::Age).is_err());
        assert!(decode_cursor("nonsense", PatientOrder::Kana).is_err());
        let d = format!("{id}.1945-04-01");
        assert!(decode_cursor(&d, PatientOrder::Age).is_ok());
    }
}
