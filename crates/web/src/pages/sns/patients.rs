//! The patient register (患者台帳) on the web.
//!
//! - `GET /patients`: to the register of the person's first association.
//! - `GET /a/{slug}/patients`: the list — search by name or reading, filters (status, care
//!   level, age, town, unread), four orders and keyset pages of 50 (`after=` carries the
//!   services' opaque cursor). Cards on a phone, a table on a wide screen (same data). Someone
//!   in a patient group of another association sees that group's entry in its list.
//! - `GET|POST /a/{slug}/patients/new`: the fixed-format registration form; the patient's group
//!   is created with it and the team is invited from the group's page afterwards.
//! - `GET /a/{slug}/patients/{id}`: the entry, every field, printable on one page.
//! - `GET|POST /a/{slug}/patients/{id}/edit`: the same form, filled in, with the `version` it
//!   was opened at; a change made meanwhile is shown next to what was typed.
//!
//! The services decide who sees what (members of the patient's group; the association's
//! administrators see every entry but never a conversation they are not in); anything else is
//! the normal 404 page. Forms keep every typed value and put each message next to its field.

use super::messages::{self, Picker, PickerForm};
use super::{flash, nav, page_error, parse_id, Flash, Place};
use crate::assets::{self, AssetUrls};
use crate::ctx::{encode_query_value, Ctx};
use crate::i18n::{Lang, Translator};
use crate::layout::{Nav, Section};
use askama::Template;
use axum::extract::rejection::{FormRejection, RawFormRejection};
use axum::extract::{Path, Query, RawForm, State};
use axum::response::Response;
use axum::Form;
use chrono::NaiveDate;
use http::{StatusCode, Uri};
use musubi_domain::patients::{
    reason, today, PatientFilter, PatientFilterChoices, PatientForm, PatientListRow, PatientOrder,
    PatientRow, PatientView, MAX_FORM_MEMBERS, PATIENT_PAGE,
};
use musubi_domain::types::{CareLevel, EndReason, PatientId, PatientStatus, PersonId, Sex};
use musubi_domain::wareki;
use musubi_domain::{AppError, ErrorCode, Services};
use serde::Deserialize;
use uuid::Uuid;

// --- Words for the register's closed sets ---------------------------------------------------

pub(crate) fn sex_label(t: Translator, s: Sex) -> &'static str {
    match s {
        Sex::Male => t.get("patients.sex.male"),
        Sex::Female => t.get("patients.sex.female"),
        Sex::Other => t.get("patients.sex.other"),
    }
}

pub(crate) fn care_level_label(t: Translator, c: CareLevel) -> &'static str {
    match c {
        CareLevel::None => t.get("patients.care_level.none"),
        CareLevel::Applying => t.get("patients.care_level.applying"),
        CareLevel::Support1 => t.get("patients.care_level.support1"),
        CareLevel::Support2 => t.get("patients.care_level.support2"),
        CareLevel::Care1 => t.get("patients.care_level.care1"),
        CareLevel::Care2 => t.get("patients.care_level.care2"),
        CareLevel::Care3 => t.get("patients.care_level.care3"),
        CareLevel::Care4 => t.get("patients.care_level.care4"),
        CareLevel::Care5 => t.get("patients.care_level.care5"),
    }
}

pub(crate) fn status_label(t: Translator, s: PatientStatus) -> &'static str {
    match s {
        PatientStatus::Home => t.get("patients.status.home"),
        PatientStatus::Hospital => t.get("patients.status.hospital"),
        PatientStatus::Facility => t.get("patients.status.facility"),
        PatientStatus::Ended => t.get("patients.status.ended"),
    }
}

pub(crate) fn end_reason_label(t: Translator, r: EndReason) -> &'static str {
    match r {
        EndReason::Death => t.get("patients.end_reason.death"),
        EndReason::Moved => t.get("patients.end_reason.moved"),
        EndReason::Other => t.get("patients.end_reason.other"),
    }
}

/// A day as the page's language writes it: 1945年4月1日 / 1 Apr 1945.
fn western_date(lang: Lang, d: NaiveDate) -> String {
    match lang {
        Lang::Ja => d.format("%Y年%-m月%-d日").to_string(),
        Lang::En => d.format("%-d %b %Y").to_string(),
    }
}

/// 昭和20年4月1日（1945年4月1日） in Japanese; 1 Apr 1945 (昭和20年4月1日) in English.
fn both_dates(lang: Lang, d: NaiveDate) -> String {
    let era = wareki::format_wareki(d);
    let western = western_date(lang, d);
    if era == western {
        return era; // before Meiji: no era to add
    }
    match lang {
        Lang::Ja => format!("{era}（{western}）"),
        Lang::En => format!("{western} ({era})"),
    }
}

fn entry_path(slug: &str, id: PatientId) -> String {
    format!("/a/{slug}/patients/{id}")
}

/// One option of a select or one radio button.
pub(crate) struct Choice {
    pub value: String,
    pub label: String,
    pub selected: bool,
}

fn choices<T: Copy>(
    all: &[T],
    code: impl Fn(T) -> &'static str,
    label: impl Fn(T) -> &'static str,
    chosen: &str,
) -> Vec<Choice> {
    all.iter()
        .map(|v| Choice {
            value: code(*v).to_owned(),
            label: label(*v).to_owned(),
            selected: code(*v) == chosen,
        })
        .collect()
}

/// Another association's register, for someone in several.
pub(crate) struct RegisterLink {
    pub href: String,
    pub name: String,
}

// --- GET /patients ----------------------------------------------------------------------------

/// The register of the person's first association (a person without one gets the page that
/// says so, like every signed-in page).
pub(crate) async fn to_first(
    State(services): State<Services>,
    ctx: Ctx,
) -> Result<Response, Response> {
    let viewer = ctx.require_viewer(&services).await?;
    match viewer.memberships().first() {
        Some(m) => Ok(ctx.redirect(&format!("/a/{}/patients", m.slug))),
        None => Err(crate::pages::no_membership::page(&ctx, &viewer)),
    }
}

// --- The list ---------------------------------------------------------------------------------

/// The list's query string as typed (every value kept to fill the form in again).
#[derive(Debug, Default, Clone, Deserialize)]
pub(crate) struct ListQuery {
    #[serde(default)]
    pub q: String,
    /// Empty (all but ended), `all`, or one status code.
    #[serde(default)]
    pub status: String,
    #[serde(default)]
    pub care_level: String,
    #[serde(default)]
    pub age_from: String,
    #[serde(default)]
    pub age_to: String,
    #[serde(default)]
    pub town: String,
    /// A physician's id (as offered by the form); anything else is ignored.
    #[serde(default)]
    pub physician: String,
    /// A registering facility's id (as offered by the form).
    #[serde(default)]
    pub facility: String,
    pub unread: Option<String>,
    #[serde(default)]
    pub order: String,
    #[serde(default)]
    pub after: String,
}

impl ListQuery {
    fn order(&self) -> PatientOrder {
        match self.order.as_str() {
            "age" => PatientOrder::Age,
            "registered" => PatientOrder::Registered,
            "activity" => PatientOrder::Activity,
            _ => PatientOrder::Kana,
        }
    }

    fn statuses(&self) -> Vec<PatientStatus> {
        match self.status.as_str() {
            "all" => Vec::new(),
            code => match PatientStatus::from_code(code) {
                Some(s) => vec![s],
                None => vec![
                    PatientStatus::Home,
                    PatientStatus::Hospital,
                    PatientStatus::Facility,
                ],
            },
        }
    }

    /// Whether anything narrows the list (the empty list then says "nothing matches").
    fn narrowed(&self) -> bool {
        !self.q.trim().is_empty()
            || !self.status.is_empty()
            || !self.care_level.is_empty()
            || !self.age_from.trim().is_empty()
            || !self.age_to.trim().is_empty()
            || !self.town.trim().is_empty()
            || self.physician_id().is_some()
            || self.facility_id().is_some()
            || self.unread.is_some()
    }

    fn physician_id(&self) -> Option<PersonId> {
        Uuid::parse_str(self.physician.trim())
            .ok()
            .map(PersonId::from_uuid)
    }

    fn facility_id(&self) -> Option<Uuid> {
        Uuid::parse_str(self.facility.trim()).ok()
    }

    /// The same list from `after` on (from the start when empty): every filter kept, nothing
    /// empty repeated.
    fn href_after(&self, slug: &str, after: &str) -> String {
        let unread = self.unread.as_ref().map(|_| "1").unwrap_or_default();
        let pairs = [
            ("q", self.q.as_str()),
            ("status", &self.status),
            ("care_level", &self.care_level),
            ("age_from", &self.age_from),
            ("age_to", &self.age_to),
            ("town", &self.town),
            ("physician", &self.physician),
            ("facility", &self.facility),
            ("unread", unread),
            ("order", &self.order),
            ("after", after),
        ];
        let query: Vec<String> = pairs
            .iter()
            .filter(|(_, v)| !v.trim().is_empty())
            .map(|(k, v)| format!("{k}={}", encode_query_value(v.trim())))
            .collect();
        if query.is_empty() {
            format!("/a/{slug}/patients")
        } else {
            format!("/a/{slug}/patients?{}", query.join("&"))
        }
    }
}

/// An age as typed: digits (full width too) up to 150; empty for none.
fn parse_age(raw: &str) -> Result<Option<u32>, ()> {
    let digits: String = raw
        .trim()
        .chars()
        .map(|c| match c {
            '０'..='９' => {
                char::from_u32(u32::from(c) - u32::from('０') + u32::from('0')).unwrap_or(c)
            }
            _ => c,
        })
        .collect();
    if digits.is_empty() {
        return Ok(None);
    }
    match digits.parse::<u32>() {
        Ok(n) if n <= 150 => Ok(Some(n)),
        _ => Err(()),
    }
}

/// What is wrong with the filters, next to the field concerned.
#[derive(Default)]
pub(crate) struct ListErrors {
    pub q: Option<String>,
    pub age: Option<String>,
    pub town: Option<String>,
    /// Anything else (a cursor from another order): start again.
    pub alert: Option<String>,
}

impl ListErrors {
    fn any(&self) -> bool {
        self.q.is_some() || self.age.is_some() || self.town.is_some() || self.alert.is_some()
    }
}

/// One patient in the list.
pub(crate) struct PatientCard {
    pub href: String,
    pub name: String,
    pub kana: String,
    /// 81歳・男性
    pub age_sex: String,
    pub care_level: &'static str,
    pub status: &'static str,
    pub ended: bool,
    pub town: String,
    pub physician: Option<String>,
    pub unread: i64,
}

fn patient_card(t: Translator, slug: &str, r: &PatientListRow, today: NaiveDate) -> PatientCard {
    PatientCard {
        href: entry_path(slug, r.id),
        name: r.name.clone(),
        kana: r.name_kana.clone(),
        age_sex: format!(
            "{}{}{}",
            t.format(
                "patients.age",
                &wareki::age_on(r.birth_date, today).to_string()
            ),
            t.get("sns.list_separator"),
            sex_label(t, r.sex)
        ),
        care_level: care_level_label(t, r.care_level),
        status: status_label(t, r.status),
        ended: r.status == PatientStatus::Ended,
        town: r.town.clone(),
        physician: r.physician_name.clone(),
        unread: r.unread,
    }
}

#[derive(Template)]
#[template(path = "sns/patients.html")]
pub(crate) struct PatientsPage<'a> {
    pub t: Translator,
    pub assets: &'static AssetUrls,
    pub nav: Nav<'a>,
    pub current_path: &'a str,
    pub flash: Option<Flash>,
    pub slug: &'a str,
    pub association: &'a str,
    pub query: ListQuery,
    pub statuses: Vec<Choice>,
    pub care_levels: Vec<Choice>,
    pub orders: Vec<Choice>,
    /// Offered only when the register names more than one (nothing to choose otherwise).
    pub physicians: Vec<Choice>,
    pub facilities: Vec<Choice>,
    pub errors: ListErrors,
    pub patients: Vec<PatientCard>,
    /// The next page, when there is one.
    pub next: Option<String>,
    /// 「次の50件」: the page size in words.
    pub next_label: String,
    /// This is a later page: offer the first again.
    pub later_page: bool,
    /// The first page with the same filters.
    pub first_href: String,
    pub narrowed: bool,
    pub whole_register: bool,
    /// A member of the association may register a patient here.
    pub can_register: bool,
    pub others: Vec<RegisterLink>,
}

impl PatientsPage<'_> {
    pub(crate) fn unread_checked(&self) -> bool {
        self.query.unread.is_some()
    }
}

/// The physician and facility selects: 「指定なし」 and the names the viewer's entries use.
/// Empty when there is at most one name (a select of one choice only adds a step).
fn person_and_facility_choices(
    t: Translator,
    q: &ListQuery,
    c: &PatientFilterChoices,
) -> (Vec<Choice>, Vec<Choice>) {
    fn select(t: Translator, chosen: &str, names: Vec<(String, String)>) -> Vec<Choice> {
        if names.len() < 2 && chosen.trim().is_empty() {
            return Vec::new();
        }
        let mut out = vec![Choice {
            value: String::new(),
            label: t.get("patients.search.any").to_owned(),
            selected: !names.iter().any(|(id, _)| id == chosen.trim()),
        }];
        out.extend(names.into_iter().map(|(id, name)| Choice {
            selected: id == chosen.trim(),
            value: id,
            label: name,
        }));
        out
    }
    let physicians = c
        .physicians
        .iter()
        .map(|(id, name)| (id.to_string(), name.clone()))
        .collect();
    let facilities = c
        .facilities
        .iter()
        .map(|(id, name)| (id.to_string(), name.clone()))
        .collect();
    (
        select(t, &q.physician, physicians),
        select(t, &q.facility, facilities),
    )
}

fn list_choices(t: Translator, q: &ListQuery) -> (Vec<Choice>, Vec<Choice>, Vec<Choice>) {
    let mut statuses = vec![
        Choice {
            value: String::new(),
            label: t.get("patients.search.status_active").to_owned(),
            selected: PatientStatus::from_code(&q.status).is_none() && q.status != "all",
        },
        Choice {
            value: "all".into(),
            label: t.get("patients.search.status_all").to_owned(),
            selected: q.status == "all",
        },
    ];
    statuses.extend(choices(
        PatientStatus::ALL,
        PatientStatus::code,
        |s| status_label(t, s),
        &q.status,
    ));
    let mut care_levels = vec![Choice {
        value: String::new(),
        label: t.get("patients.search.any").to_owned(),
        selected: CareLevel::from_code(&q.care_level).is_none(),
    }];
    care_levels.extend(choices(
        CareLevel::ALL,
        CareLevel::code,
        |c| care_level_label(t, c),
        &q.care_level,
    ));
    let order = q.order();
    let orders = [
        (PatientOrder::Kana, "kana", t.get("patients.order.kana")),
        (PatientOrder::Age, "age", t.get("patients.order.age")),
        (
            PatientOrder::Registered,
            "registered",
            t.get("patients.order.registered"),
        ),
        (
            PatientOrder::Activity,
            "activity",
            t.get("patients.order.activity"),
        ),
    ]
    .into_iter()
    .map(|(o, value, label)| Choice {
        value: value.to_owned(),
        label: label.to_owned(),
        selected: o == order,
    })
    .collect();
    (statuses, care_levels, orders)
}

pub(crate) async fn list(
    State(services): State<Services>,
    ctx: Ctx,
    Path(slug): Path<String>,
    uri: Uri,
) -> Result<Response, Response> {
    // Open to anyone signed in: the services list only what the person may see (someone in a
    // patient group of another association finds that group's entry here, nothing else).
    let p = Place::open(&services, &ctx, &slug).await?;
    let t = Translator::new(ctx.lang);
    let query = Query::<ListQuery>::try_from_uri(&uri)
        .map(|q| q.0)
        .unwrap_or_default();
    let mut errors = ListErrors::default();
    let (age_min, age_max) = match (parse_age(&query.age_from), parse_age(&query.age_to)) {
        (Ok(lo), Ok(hi)) => (lo, hi),
        _ => {
            errors.age = Some(t.get("patients.error.age").to_owned());
            (None, None)
        }
    };
    let filter = PatientFilter {
        text: query.q.clone(),
        statuses: query.statuses(),
        care_level: CareLevel::from_code(&query.care_level),
        age_min,
        age_max,
        town: query.town.clone(),
        physician_id: query.physician_id(),
        facility_id: query.facility_id(),
        unread_only: query.unread.is_some(),
        order: query.order(),
        after: Some(query.after.clone()).filter(|a| !a.is_empty()),
        with_choices: true,
        ..PatientFilter::default()
    };
    let mut patients = Vec::new();
    let mut next = None;
    let mut whole_register = p.viewer.is_admin_of(p.tenant.id);
    let mut filter_choices = PatientFilterChoices::default();
    if !errors.any() {
        match services.patients(&p.actor(), &filter).await {
            Ok(page) => {
                let today = today();
                patients = page
                    .items
                    .iter()
                    .map(|r| patient_card(t, p.slug(), r, today))
                    .collect();
                next = page.next.map(|c| query.href_after(p.slug(), &c));
                whole_register = page.whole_register;
                filter_choices = page.choices.unwrap_or_default();
            }
            Err(e) if e.code == ErrorCode::InvalidInput => match e.field {
                Some("text") => errors.q = Some(t.get("patients.error.search").to_owned()),
                Some("town") => errors.town = Some(t.get("patients.error.search").to_owned()),
                Some("ageMin" | "ageMax") => {
                    errors.age = Some(t.get("patients.error.age_order").to_owned());
                }
                _ => errors.alert = Some(t.get("patients.error.cursor").to_owned()),
            },
            Err(e) => return Err(page_error(&ctx, "listing patients", e)),
        }
    }
    let (statuses, care_levels, orders) = list_choices(t, &query);
    let (physicians, facilities) = person_and_facility_choices(t, &query, &filter_choices);
    let others = p
        .viewer
        .memberships()
        .iter()
        .filter(|m| m.association_id != p.tenant.id)
        .map(|m| RegisterLink {
            href: format!("/a/{}/patients", m.slug),
            name: m.association_name.clone(),
        })
        .collect();
    let total = super::unread_total(&services, &p.viewer).await;
    let path = format!("/a/{}/patients", p.slug());
    let page = PatientsPage {
        t,
        assets: assets::urls(),
        nav: nav(&p.viewer, &ctx, total, Section::Patients),
        current_path: &path,
        flash: flash(t, &uri),
        slug: p.slug(),
        association: &p.tenant.name,
        narrowed: query.narrowed(),
        later_page: !query.after.is_empty(),
        first_href: query.href_after(p.slug(), ""),
        statuses,
        care_levels,
        orders,
        physicians,
        facilities,
        query,
        errors,
        patients,
        next,
        next_label: t.format("patients.next", &PATIENT_PAGE.to_string()),
        whole_register,
        can_register: p.viewer.is_member_of(p.tenant.id),
        others,
    };
    Ok(ctx.respond(StatusCode::OK, &page))
}

// --- The form ---------------------------------------------------------------------------------

/// The form as sent: text as typed, choices as their codes, the physician as a person's id.
#[derive(Debug, Default, Clone, Deserialize, PartialEq, Eq)]
pub(crate) struct PatientFields {
    #[serde(default)]
    pub name: String,
    #[serde(default)]
    pub name_kana: String,
    #[serde(default)]
    pub birth_date: String,
    #[serde(default)]
    pub sex: String,
    #[serde(default)]
    pub postal_code: String,
    #[serde(default)]
    pub address: String,
    #[serde(default)]
    pub town: String,
    #[serde(default)]
    pub phone: String,
    #[serde(default)]
    pub physician: String,
    #[serde(default)]
    pub diagnoses: String,
    #[serde(default)]
    pub care_level: String,
    #[serde(default)]
    pub key_person: String,
    #[serde(default)]
    pub family_contact: String,
    #[serde(default)]
    pub care_manager: String,
    #[serde(default)]
    pub nurse_station: String,
    #[serde(default)]
    pub pharmacy: String,
    #[serde(default)]
    pub status: String,
    #[serde(default)]
    pub status_since: String,
    #[serde(default)]
    pub end_reason: String,
    #[serde(default)]
    pub notes: String,
    #[serde(default)]
    pub consent_date: String,
    #[serde(default)]
    pub consent_by: String,
    #[serde(default)]
    pub consent_scope: String,
    /// The entry's version the edit form was opened at.
    #[serde(default)]
    pub version: String,
}

impl PatientFields {
    /// A new patient: at home, no care level, and the registrant as physician if a doctor.
    fn blank(physician: Option<PersonId>) -> Self {
        Self {
            status: PatientStatus::Home.code().to_owned(),
            care_level: CareLevel::None.code().to_owned(),
            physician: physician.map(|p| p.to_string()).unwrap_or_default(),
            ..Self::default()
        }
    }

    /// An entry as its edit form shows it (dates by era, which the form reads back).
    fn from_row(r: &PatientRow) -> Self {
        let date = |d: Option<NaiveDate>| d.map(wareki::format_wareki).unwrap_or_default();
        Self {
            name: r.name.clone(),
            name_kana: r.name_kana.clone(),
            birth_date: wareki::format_wareki(r.birth_date),
            sex: r.sex.code().to_owned(),
            postal_code: r.postal_code.clone(),
            address: r.address.clone(),
            town: r.town.clone(),
            phone: r.phone.clone(),
            physician: r.physician_id.map(|p| p.to_string()).unwrap_or_default(),
            diagnoses: r.diagnoses.clone(),
            care_level: r.care_level.code().to_owned(),
            key_person: r.key_person.clone(),
            family_contact: r.family_contact.clone(),
            care_manager: r.care_manager.clone(),
            nurse_station: r.nurse_station.clone(),
            pharmacy: r.pharmacy.clone(),
            status: r.status.code().to_owned(),
            status_since: date(r.status_since),
            end_reason: r
                .end_reason
                .map(|e| e.code().to_owned())
                .unwrap_or_default(),
            notes: r.notes.clone(),
            consent_date: date(r.consent_date),
            consent_by: r.consent_by.clone(),
            consent_scope: r.consent_scope.clone(),
            version: r.version.to_string(),
        }
    }

    /// What the services check. A choice outside its set (only a crafted form sends one) counts
    /// as not chosen.
    fn to_form(&self) -> PatientForm {
        PatientForm {
            name: self.name.clone(),
            name_kana: self.name_kana.clone(),
            birth_date: self.birth_date.clone(),
            sex: Sex::from_code(&self.sex),
            postal_code: self.postal_code.clone(),
            address: self.address.clone(),
            town: self.town.clone(),
            phone: self.phone.clone(),
            physician_id: Uuid::parse_str(self.physician.trim())
                .ok()
                .map(PersonId::from),
            diagnoses: self.diagnoses.clone(),
            care_level: CareLevel::from_code(&self.care_level),
            key_person: self.key_person.clone(),
            family_contact: self.family_contact.clone(),
            care_manager: self.care_manager.clone(),
            nurse_station: self.nurse_station.clone(),
            pharmacy: self.pharmacy.clone(),
            status: PatientStatus::from_code(&self.status),
            status_since: self.status_since.clone(),
            end_reason: EndReason::from_code(&self.end_reason),
            notes: self.notes.clone(),
            consent_date: self.consent_date.clone(),
            consent_by: self.consent_by.clone(),
            consent_scope: self.consent_scope.clone(),
        }
    }

    /// The value of the field named `name` in the form.
    fn value(&self, name: &str) -> &str {
        match name {
            "name" => &self.name,
            "name_kana" => &self.name_kana,
            "birth_date" => &self.birth_date,
            "sex" => &self.sex,
            "postal_code" => &self.postal_code,
            "address" => &self.address,
            "town" => &self.town,
            "phone" => &self.phone,
            "physician" => &self.physician,
            "diagnoses" => &self.diagnoses,
            "care_level" => &self.care_level,
            "key_person" => &self.key_person,
            "family_contact" => &self.family_contact,
            "care_manager" => &self.care_manager,
            "nurse_station" => &self.nurse_station,
            "pharmacy" => &self.pharmacy,
            "status" => &self.status,
            "status_since" => &self.status_since,
            "end_reason" => &self.end_reason,
            "notes" => &self.notes,
            "consent_date" => &self.consent_date,
            "consent_by" => &self.consent_by,
            "consent_scope" => &self.consent_scope,
            _ => "",
        }
    }
}

/// How a field is typed.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Kind {
    Line,
    Tel,
    /// Digits: a numeric keyboard.
    Postal,
    /// A date in any form the services read.
    Date,
    Text,
    Select,
    Radios,
}

/// One field of the form: its name in the services' errors (`field`), in the form (`name`),
/// its words (catalog keys) and how it is typed.
struct Spec {
    field: &'static str,
    name: &'static str,
    label: &'static str,
    hint: Option<&'static str>,
    required: bool,
    kind: Kind,
    /// The most characters the services accept (text fields).
    max: usize,
}

const fn spec(
    field: &'static str,
    name: &'static str,
    label: &'static str,
    hint: Option<&'static str>,
    kind: Kind,
    max: usize,
) -> Spec {
    Spec {
        field,
        name,
        label,
        hint,
        required: false,
        kind,
        max,
    }
}

const fn required(s: Spec) -> Spec {
    Spec {
        required: true,
        ..s
    }
}

/// Every field, in the order of the form.
const SPECS: &[Spec] = &[
    required(spec(
        "name",
        "name",
        "patients.field.name",
        Some("patients.field.name_hint"),
        Kind::Line,
        60,
    )),
    required(spec(
        "nameKana",
        "name_kana",
        "patients.field.name_kana",
        Some("patients.field.name_kana_hint"),
        Kind::Line,
        60,
    )),
    required(spec(
        "birthDate",
        "birth_date",
        "patients.field.birth_date",
        Some("patients.field.birth_date_hint"),
        Kind::Date,
        40,
    )),
    required(spec(
        "sex",
        "sex",
        "patients.field.sex",
        None,
        Kind::Radios,
        0,
    )),
    spec(
        "postalCode",
        "postal_code",
        "patients.field.postal_code",
        Some("patients.field.postal_code_hint"),
        Kind::Postal,
        10,
    ),
    spec(
        "address",
        "address",
        "patients.field.address",
        None,
        Kind::Line,
        200,
    ),
    spec(
        "town",
        "town",
        "patients.field.town",
        Some("patients.field.town_hint"),
        Kind::Line,
        60,
    ),
    spec(
        "phone",
        "phone",
        "patients.field.phone",
        None,
        Kind::Tel,
        30,
    ),
    spec(
        "physicianId",
        "physician",
        "patients.field.physician",
        Some("patients.field.physician_hint"),
        Kind::Select,
        0,
    ),
    spec(
        "diagnoses",
        "diagnoses",
        "patients.field.diagnoses",
        None,
        Kind::Text,
        500,
    ),
    spec(
        "careLevel",
        "care_level",
        "patients.field.care_level",
        None,
        Kind::Select,
        0,
    ),
    spec(
        "keyPerson",
        "key_person",
        "patients.field.key_person",
        Some("patients.field.key_person_hint"),
        Kind::Line,
        100,
    ),
    spec(
        "familyContact",
        "family_contact",
        "patients.field.family_contact",
        None,
        Kind::Text,
        200,
    ),
    spec(
        "careManager",
        "care_manager",
        "patients.field.care_manager",
        Some("patients.field.care_manager_hint"),
        Kind::Line,
        100,
    ),
    spec(
        "nurseStation",
        "nurse_station",
        "patients.field.nurse_station",
        None,
        Kind::Line,
        100,
    ),
    spec(
        "pharmacy",
        "pharmacy",
        "patients.field.pharmacy",
        None,
        Kind::Line,
        100,
    ),
    spec(
        "status",
        "status",
        "patients.field.status",
        None,
        Kind::Select,
        0,
    ),
    spec(
        "statusSince",
        "status_since",
        "patients.field.status_since",
        Some("patients.field.status_since_hint"),
        Kind::Date,
        40,
    ),
    spec(
        "endReason",
        "end_reason",
        "patients.field.end_reason",
        Some("patients.field.end_reason_hint"),
        Kind::Select,
        0,
    ),
    spec(
        "notes",
        "notes",
        "patients.field.notes",
        None,
        Kind::Text,
        2000,
    ),
    spec(
        "consentDate",
        "consent_date",
        "patients.field.consent_date",
        Some("patients.field.consent_date_hint"),
        Kind::Date,
        40,
    ),
    spec(
        "consentBy",
        "consent_by",
        "patients.field.consent_by",
        Some("patients.field.consent_by_hint"),
        Kind::Line,
        100,
    ),
    spec(
        "consentScope",
        "consent_scope",
        "patients.field.consent_scope",
        Some("patients.field.consent_scope_hint"),
        Kind::Text,
        500,
    ),
];

/// The form's parts: (id, title, lead, form names of its fields).
const SECTIONS: &[(&str, &str, Option<&str>, &[&str])] = &[
    (
        "person",
        "patients.section.person",
        None,
        &[
            "name",
            "name_kana",
            "birth_date",
            "sex",
            "postal_code",
            "address",
            "town",
            "phone",
        ],
    ),
    (
        "care",
        "patients.section.care",
        None,
        &["physician", "diagnoses", "care_level"],
    ),
    (
        "family",
        "patients.section.family",
        None,
        &["key_person", "family_contact"],
    ),
    (
        "team",
        "patients.section.team",
        None,
        &["care_manager", "nurse_station", "pharmacy"],
    ),
    (
        "status",
        "patients.section.status",
        None,
        &["status", "status_since", "end_reason"],
    ),
    ("notes", "patients.section.notes", None, &["notes"]),
    (
        "consent",
        "patients.section.consent",
        Some("patients.section.consent_lead"),
        &["consent_date", "consent_by", "consent_scope"],
    ),
];

fn spec_of_field(field: &str) -> Option<&'static Spec> {
    SPECS.iter().find(|s| s.field == field)
}

fn spec_of_name(name: &str) -> Option<&'static Spec> {
    SPECS.iter().find(|s| s.name == name)
}

/// The message for one refused field, by its reason code (never by the services' text).
fn issue_message(t: Translator, field: &str, why: &str) -> String {
    let spec = spec_of_field(field);
    let label = spec.map_or("", |s| t.get(s.label));
    let chosen = spec.is_some_and(|s| matches!(s.kind, Kind::Select | Kind::Radios));
    match why {
        reason::REQUIRED if chosen => t.format("patients.error.choose", label),
        reason::REQUIRED => t.format("patients.error.required", label),
        reason::TOO_LONG => t.format(
            "patients.error.too_long",
            &spec.map_or(0, |s| s.max).to_string(),
        ),
        reason::FORBIDDEN_CHARACTER => t.get("error.forbidden_character").to_owned(),
        reason::NOT_KANA => t.get("patients.error.not_kana").to_owned(),
        reason::DATE_UNREADABLE => t.get("patients.error.date_unreadable").to_owned(),
        reason::NO_SUCH_DAY => t.get("patients.error.no_such_day").to_owned(),
        reason::OUTSIDE_ERA => t.get("patients.error.outside_era").to_owned(),
        reason::IN_FUTURE => t.get("patients.error.in_future").to_owned(),
        reason::POSTAL_CODE => t.get("patients.error.postal_code").to_owned(),
        reason::PHONE => t.get("patients.error.phone").to_owned(),
        reason::END_REASON => t.get("patients.error.end_reason").to_owned(),
        reason::CONSENT_REQUIRED => t.get("patients.error.consent_required").to_owned(),
        reason::CONSENT_INCOMPLETE => t.get("patients.error.consent_incomplete").to_owned(),
        _ if field == "physicianId" => t.get("patients.error.physician").to_owned(),
        _ => t.get("patients.error.invalid").to_owned(),
    }
}

/// Messages next to their fields, by form name, plus one for the whole form.
#[derive(Default)]
pub(crate) struct FormErrors {
    fields: Vec<(&'static str, String)>,
    pub alert: Option<String>,
}

impl FormErrors {
    /// From a refusal of the services: every field they named, each with its message. `None`
    /// when the refusal is not about what was typed.
    fn from_error(t: Translator, e: &AppError) -> Option<Self> {
        if e.code != ErrorCode::InvalidInput {
            return None;
        }
        let issues: Vec<(&str, &str)> = if e.fields.is_empty() {
            e.field
                .map(|f| (f, e.reasons.first().copied().unwrap_or("")))
                .into_iter()
                .collect()
        } else {
            e.fields.iter().map(|i| (i.field, i.reason)).collect()
        };
        let mut errors = Self::default();
        for (field, why) in issues {
            match spec_of_field(field) {
                Some(spec) => errors
                    .fields
                    .push((spec.name, issue_message(t, field, why))),
                None => errors.alert = Some(t.get("patients.error.invalid").to_owned()),
            }
        }
        Some(errors)
    }

    fn get(&self, name: &str) -> Option<&String> {
        self.fields.iter().find(|(n, _)| *n == name).map(|(_, m)| m)
    }

    fn is_empty(&self) -> bool {
        self.fields.is_empty() && self.alert.is_none()
    }
}

/// One field as the template draws it.
pub(crate) struct FieldView {
    /// The element's id (`patient-<name>`); its hint, message and current value add a suffix.
    pub id: String,
    pub name: &'static str,
    pub label: &'static str,
    pub hint: Option<&'static str>,
    pub required: bool,
    /// `line`, `tel`, `postal`, `date`, `text`, `select` or `radios`.
    pub kind: &'static str,
    pub max: usize,
    pub value: String,
    pub options: Vec<Choice>,
    pub error: Option<String>,
    /// What is registered now, when someone else changed it meanwhile.
    pub current: Option<String>,
}

impl FieldView {
    /// The ids of what describes the field: hint, message, current value.
    pub(crate) fn described_by(&self) -> String {
        let mut ids = Vec::new();
        if self.hint.is_some() {
            ids.push(format!("{}-hint", self.id));
        }
        if self.error.is_some() {
            ids.push(format!("{}-error", self.id));
        }
        if self.current.is_some() {
            ids.push(format!("{}-current", self.id));
        }
        ids.join(" ")
    }

    pub(crate) fn is(&self, kind: &str) -> bool {
        self.kind == kind
    }
}

pub(crate) struct FormSection {
    pub id: &'static str,
    pub title: &'static str,
    pub lead: Option<&'static str>,
    pub fields: Vec<FieldView>,
}

/// A field at fault, for the summary at the top.
pub(crate) struct SummaryItem {
    pub href: String,
    pub label: &'static str,
    pub message: String,
}

/// The physician choices: not decided, the person who is physician now (on an entry), and the
/// person filling in the form.
fn physician_choices(
    t: Translator,
    me: (PersonId, &str),
    now: Option<(PersonId, &str)>,
    chosen: &str,
) -> Vec<Choice> {
    let mut out = vec![Choice {
        value: String::new(),
        label: t.get("patients.field.physician_none").to_owned(),
        selected: chosen.trim().is_empty(),
    }];
    if let Some((id, name)) = now.filter(|(id, _)| *id != me.0) {
        out.push(Choice {
            value: id.to_string(),
            label: name.to_owned(),
            selected: chosen.trim() == id.to_string(),
        });
    }
    out.push(Choice {
        value: me.0.to_string(),
        label: t.format("patients.field.physician_me", me.1),
        selected: chosen.trim() == me.0.to_string(),
    });
    out
}

/// The options of a select or radio field.
fn field_options(
    t: Translator,
    name: &str,
    chosen: &str,
    physicians: &dyn Fn(&str) -> Vec<Choice>,
) -> Vec<Choice> {
    match name {
        "sex" => choices(Sex::ALL, Sex::code, |s| sex_label(t, s), chosen),
        "care_level" => choices(
            CareLevel::ALL,
            CareLevel::code,
            |c| care_level_label(t, c),
            chosen,
        ),
        "status" => choices(
            PatientStatus::ALL,
            PatientStatus::code,
            |s| status_label(t, s),
            chosen,
        ),
        "end_reason" => {
            let mut out = vec![Choice {
                value: String::new(),
                label: t.get("patients.field.choose").to_owned(),
                selected: EndReason::from_code(chosen).is_none(),
            }];
            out.extend(choices(
                EndReason::ALL,
                EndReason::code,
                |r| end_reason_label(t, r),
                chosen,
            ));
            out
        }
        "physician" => physicians(chosen),
        _ => Vec::new(),
    }
}

/// Whether what was typed and what is registered say the same: dates compared as days,
/// postal codes by their digits, full-width letters and digits as their ASCII.
fn same_value(kind: Kind, typed: &str, registered: &str) -> bool {
    if kind == Kind::Date {
        return match (wareki::parse_date(typed), wareki::parse_date(registered)) {
            (Ok(a), Ok(b)) => a == b,
            (a, b) => a.is_err() && b.is_err() && typed.trim() == registered.trim(),
        };
    }
    let plain = |s: &str| -> String {
        let ascii = s.trim().chars().map(|c| match c {
            '\u{FF01}'..='\u{FF5E}' => char::from_u32(u32::from(c) - 0xFEE0).unwrap_or(c),
            _ => c,
        });
        if kind == Kind::Postal {
            ascii.filter(char::is_ascii_digit).collect()
        } else {
            ascii.collect()
        }
    };
    plain(typed) == plain(registered)
}

/// The sections of the form with `typed` in every field, each message next to its field and,
/// after a conflict, what is registered now where it differs.
fn build_sections(
    t: Translator,
    typed: &PatientFields,
    errors: &FormErrors,
    registered: Option<&PatientFields>,
    physicians: &dyn Fn(&str) -> Vec<Choice>,
) -> Vec<FormSection> {
    SECTIONS
        .iter()
        .map(|(id, title, lead, names)| FormSection {
            id,
            title: t.get(title),
            lead: lead.map(|k| t.get(k)),
            fields: names
                .iter()
                .filter_map(|n| spec_of_name(n))
                .map(|s| {
                    let value = typed.value(s.name).to_owned();
                    let options = field_options(t, s.name, &value, physicians);
                    let current = registered
                        .map(|r| r.value(s.name))
                        .filter(|now| !same_value(s.kind, &value, now))
                        .map(|now| {
                            let shown = if options.is_empty() {
                                now.trim().to_owned()
                            } else {
                                field_options(t, s.name, now, physicians)
                                    .into_iter()
                                    .find(|c| c.selected)
                                    .map(|c| c.label)
                                    .unwrap_or_default()
                            };
                            if shown.is_empty() {
                                t.get("patients.form.current_empty").to_owned()
                            } else {
                                t.format("patients.form.current", &shown)
                            }
                        });
                    FieldView {
                        id: format!("patient-{}", s.name.replace('_', "-")),
                        name: s.name,
                        label: t.get(s.label),
                        hint: s.hint.map(|k| t.get(k)),
                        required: s.required,
                        kind: match s.kind {
                            Kind::Line => "line",
                            Kind::Tel => "tel",
                            Kind::Postal => "postal",
                            Kind::Date => "date",
                            Kind::Text => "text",
                            Kind::Select => "select",
                            Kind::Radios => "radios",
                        },
                        max: s.max,
                        error: errors.get(s.name).cloned(),
                        current,
                        options,
                        value,
                    }
                })
                .collect(),
        })
        .collect()
}

#[derive(Template)]
#[template(path = "sns/patient_form.html")]
pub(crate) struct PatientFormPage<'a> {
    pub t: Translator,
    pub assets: &'static AssetUrls,
    pub nav: Nav<'a>,
    pub current_path: &'a str,
    pub csrf: &'a str,
    pub title: String,
    pub lead: String,
    pub action: String,
    /// Where 「やめて戻る」 and the link above the title go.
    pub back: String,
    pub back_label: String,
    /// The edit form's version; `None` on the registration form.
    pub version: Option<String>,
    pub sections: Vec<FormSection>,
    pub summary: Vec<SummaryItem>,
    pub alert: Option<String>,
    pub submit: &'static str,
    /// The registration form's team picker: people to invite with the registration.
    pub picker: Option<Picker>,
}

/// What a form page needs besides the fields.
struct FormFrame<'a> {
    status: StatusCode,
    /// The header's unread count.
    unread: i64,
    title: String,
    lead: String,
    action: String,
    back: String,
    back_label: String,
    version: Option<String>,
    submit: &'static str,
    physicians: &'a dyn Fn(&str) -> Vec<Choice>,
    /// The registration form's team picker.
    picker: Option<Picker>,
}

/// What the form shows: what was typed, the messages, and (after a conflict) what is
/// registered now.
struct Filled<'a> {
    typed: &'a PatientFields,
    errors: FormErrors,
    registered: Option<&'a PatientFields>,
}

impl<'a> Filled<'a> {
    fn plain(typed: &'a PatientFields) -> Self {
        Self {
            typed,
            errors: FormErrors::default(),
            registered: None,
        }
    }

    fn refused(typed: &'a PatientFields, errors: FormErrors) -> Self {
        Self {
            errors,
            ..Self::plain(typed)
        }
    }
}

fn render_form(ctx: &Ctx, p: &Place, frame: FormFrame<'_>, filled: Filled<'_>) -> Response {
    let t = Translator::new(ctx.lang);
    let path = frame.action.clone();
    let errors = filled.errors;
    let sections = build_sections(
        t,
        filled.typed,
        &errors,
        filled.registered,
        frame.physicians,
    );
    let summary = sections
        .iter()
        .flat_map(|s| s.fields.iter())
        .filter_map(|f| {
            f.error.as_ref().map(|m| SummaryItem {
                href: format!("#{}", f.id),
                label: f.label,
                message: m.clone(),
            })
        })
        .collect();
    let page = PatientFormPage {
        t,
        assets: assets::urls(),
        nav: nav(&p.viewer, ctx, frame.unread, Section::Patients),
        current_path: &path,
        csrf: ctx.csrf.form_token(),
        title: frame.title,
        lead: frame.lead,
        back: frame.back,
        back_label: frame.back_label,
        version: frame.version,
        sections,
        summary,
        alert: errors
            .alert
            .clone()
            .or_else(|| (!errors.is_empty()).then(|| t.get("patients.form.summary").to_owned())),
        submit: frame.submit,
        action: frame.action,
        picker: frame.picker,
    };
    ctx.respond(frame.status, &page)
}

fn me(p: &Place) -> (PersonId, &str) {
    (p.viewer.user().id, p.viewer.user().name.as_str())
}

async fn render_new(
    services: &Services,
    ctx: &Ctx,
    p: &Place,
    status: StatusCode,
    filled: Filled<'_>,
    mut picker: Picker,
) -> Response {
    picker.words = Some("patients.members");
    let t = Translator::new(ctx.lang);
    let physicians = |chosen: &str| physician_choices(t, me(p), None, chosen);
    let frame = FormFrame {
        status,
        unread: super::unread_total(services, &p.viewer).await,
        title: t.get("patients.form.title_new").to_owned(),
        lead: t.format("patients.form.lead_new", &p.tenant.name),
        action: format!("/a/{}/patients/new", p.slug()),
        back: format!("/a/{}/patients", p.slug()),
        back_label: t.get("patients.entry.back").to_owned(),
        version: None,
        submit: t.get("patients.form.submit_new"),
        physicians: &physicians,
        picker: Some(picker),
    };
    render_form(ctx, p, frame, filled)
}

pub(crate) async fn show_new(
    State(services): State<Services>,
    ctx: Ctx,
    Path(slug): Path<String>,
) -> Result<Response, Response> {
    let p = Place::open(&services, &ctx, &slug).await?;
    if !p.viewer.is_member_of(p.tenant.id) {
        return Err(crate::pages::place::not_found_page(&ctx));
    }
    let doctor = p.viewer.user().profession.is_doctor();
    let typed = PatientFields::blank(doctor.then(|| p.viewer.user().id));
    Ok(render_new(
        &services,
        &ctx,
        &p,
        StatusCode::OK,
        Filled::plain(&typed),
        Picker::default(),
    )
    .await)
}

/// `POST /a/{slug}/patients/new`: 「探す」 (the team picker: the page again with everything
/// typed and ticked kept) or 「登録する」 (the patient, the group and the ticked people invited
/// in one change).
pub(crate) async fn create(
    State(services): State<Services>,
    ctx: Ctx,
    Path(slug): Path<String>,
    form: Result<RawForm, RawFormRejection>,
) -> Result<Response, Response> {
    let p = Place::open(&services, &ctx, &slug).await?;
    let raw = form.map(|f| f.0).unwrap_or_default();
    // The register's fields by name; the picker's repeated `to`/`who` beside them.
    let typed: PatientFields = serde_urlencoded::from_bytes(&raw).unwrap_or_default();
    let team = PickerForm::parse_up_to(&raw, MAX_FORM_MEMBERS + 1);
    let t = Translator::new(ctx.lang);
    let query = (team.find || !team.q.trim().is_empty()).then(|| team.q.clone());
    if team.find {
        let picker = messages::picker(&services, &ctx, &p, query, team.chosen()).await?;
        return Ok(render_new(
            &services,
            &ctx,
            &p,
            StatusCode::OK,
            Filled::plain(&typed),
            picker,
        )
        .await);
    }
    let people = team.people();
    let e = match services
        .register_patient(&p.actor(), &typed.to_form(), &people)
        .await
    {
        Ok(done) => {
            return Ok(ctx.redirect(&format!(
                "{}?done=patient_registered",
                entry_path(p.slug(), done.patient_id)
            )))
        }
        Err(e) => e,
    };
    let mut picker = messages::picker(&services, &ctx, &p, query, team.chosen()).await?;
    let errors = match (FormErrors::from_error(t, &e), e.field) {
        (_, Some("members")) => {
            picker.error = Some(if people.len() > MAX_FORM_MEMBERS {
                t.format("patients.members.too_many", &MAX_FORM_MEMBERS.to_string())
            } else {
                t.get("patients.members.not_found").to_owned()
            });
            FormErrors {
                alert: Some(t.get("patients.members.refused").to_owned()),
                ..FormErrors::default()
            }
        }
        (Some(errors), _) => errors,
        (None, _) => return Err(page_error(&ctx, "registering a patient", e)),
    };
    Ok(render_new(
        &services,
        &ctx,
        &p,
        StatusCode::UNPROCESSABLE_ENTITY,
        Filled::refused(&typed, errors),
        picker,
    )
    .await)
}

// --- The entry ----------------------------------------------------------------------------------

/// One line of the entry's list: a term and what is registered (empty: 「未記入」).
pub(crate) struct Fact {
    pub term: &'static str,
    pub value: String,
    /// Kept as typed, line breaks included.
    pub multiline: bool,
}

pub(crate) struct FactGroup {
    pub title: &'static str,
    pub facts: Vec<Fact>,
}

#[derive(Template)]
#[template(path = "sns/patient.html")]
pub(crate) struct PatientPage<'a> {
    pub t: Translator,
    pub assets: &'static AssetUrls,
    pub nav: Nav<'a>,
    pub current_path: &'a str,
    pub flash: Option<Flash>,
    pub slug: &'a str,
    pub association: &'a str,
    pub name: String,
    pub kana: String,
    /// 81歳・男性・要介護2・在宅
    pub summary: Vec<String>,
    pub groups: Vec<FactGroup>,
    /// The patient group, for its members only.
    pub group_href: Option<String>,
    pub edit_href: Option<String>,
    pub unread: i64,
}

fn fact(term: &'static str, value: impl Into<String>) -> Fact {
    Fact {
        term,
        value: value.into(),
        multiline: false,
    }
}

fn long_fact(term: &'static str, value: impl Into<String>) -> Fact {
    Fact {
        multiline: true,
        ..fact(term, value)
    }
}

fn fact_groups(lang: Lang, v: &PatientView) -> Vec<FactGroup> {
    let t = Translator::new(lang);
    let r = &v.row;
    let f = |key: &'static str| t.get(key);
    let birth = format!(
        "{}{}{}",
        both_dates(lang, r.birth_date),
        t.get("sns.list_separator"),
        t.format("patients.entry.age", &v.age.to_string())
    );
    let mut status = status_label(t, r.status).to_owned();
    if let Some(since) = r.status_since {
        status.push_str(t.get("sns.list_separator"));
        status.push_str(&t.format("patients.entry.since", &both_dates(lang, since)));
    }
    if let Some(why) = r.end_reason {
        status.push_str(t.get("sns.list_separator"));
        status.push_str(&t.format("patients.entry.end_reason", end_reason_label(t, why)));
    }
    vec![
        FactGroup {
            title: f("patients.section.person"),
            facts: vec![
                fact(f("patients.field.name"), r.name.clone()),
                fact(f("patients.field.name_kana"), r.name_kana.clone()),
                fact(f("patients.field.birth_date"), birth),
                fact(f("patients.field.sex"), sex_label(t, r.sex)),
                fact(f("patients.field.postal_code"), r.postal_code.clone()),
                fact(f("patients.field.address"), r.address.clone()),
                fact(f("patients.field.town"), r.town.clone()),
                fact(f("patients.field.phone"), r.phone.clone()),
            ],
        },
        FactGroup {
            title: f("patients.section.care"),
            facts: vec![
                fact(
                    f("patients.field.physician"),
                    r.physician_name.clone().unwrap_or_default(),
                ),
                long_fact(f("patients.field.diagnoses"), r.diagnoses.clone()),
                fact(
                    f("patients.field.care_level"),
                    care_level_label(t, r.care_level),
                ),
            ],
        },
        FactGroup {
            title: f("patients.section.family"),
            facts: vec![
                fact(f("patients.field.key_person"), r.key_person.clone()),
                long_fact(f("patients.field.family_contact"), r.family_contact.clone()),
            ],
        },
        FactGroup {
            title: f("patients.section.team"),
            facts: vec![
                fact(f("patients.field.care_manager"), r.care_manager.clone()),
                fact(f("patients.field.nurse_station"), r.nurse_station.clone()),
                fact(f("patients.field.pharmacy"), r.pharmacy.clone()),
            ],
        },
        FactGroup {
            title: f("patients.section.status"),
            facts: vec![fact(f("patients.field.status"), status)],
        },
        FactGroup {
            title: f("patients.section.notes"),
            facts: vec![long_fact(f("patients.field.notes"), r.notes.clone())],
        },
        FactGroup {
            title: f("patients.section.consent"),
            facts: vec![
                fact(
                    f("patients.field.consent_date"),
                    r.consent_date
                        .map(|d| both_dates(lang, d))
                        .unwrap_or_default(),
                ),
                fact(f("patients.field.consent_by"), r.consent_by.clone()),
                long_fact(f("patients.field.consent_scope"), r.consent_scope.clone()),
            ],
        },
        FactGroup {
            title: f("patients.section.record"),
            facts: vec![
                fact(
                    f("patients.entry.registered_by"),
                    r.registered_by_name.clone().unwrap_or_default(),
                ),
                fact(
                    f("patients.entry.facility"),
                    r.facility_name.clone().unwrap_or_default(),
                ),
                fact(
                    f("patients.entry.registered_at"),
                    crate::datetime::date_time(lang, r.registered_at),
                ),
                fact(
                    f("patients.entry.updated_at"),
                    crate::datetime::date_time(lang, r.updated_at),
                ),
            ],
        },
    ]
}

/// 81歳・男性・要介護2・在宅: what a glance needs.
fn summary_of(t: Translator, v: &PatientView) -> Vec<String> {
    vec![
        t.format("patients.age", &v.age.to_string()),
        sex_label(t, v.row.sex).to_owned(),
        care_level_label(t, v.row.care_level).to_owned(),
        status_label(t, v.row.status).to_owned(),
    ]
}

pub(crate) async fn show(
    State(services): State<Services>,
    ctx: Ctx,
    Path((slug, id)): Path<(String, String)>,
    uri: Uri,
) -> Result<Response, Response> {
    let p = Place::open(&services, &ctx, &slug).await?;
    let view = services
        .patient(&p.actor(), parse_id(&id))
        .await
        .map_err(|e| page_error(&ctx, "opening a patient's entry", e))?;
    let t = Translator::new(ctx.lang);
    let total = super::unread_total(&services, &p.viewer).await;
    let path = entry_path(p.slug(), view.row.id);
    let page = PatientPage {
        t,
        assets: assets::urls(),
        nav: nav(&p.viewer, &ctx, total, Section::Patients),
        current_path: &path,
        flash: flash(t, &uri),
        slug: p.slug(),
        association: &p.tenant.name,
        name: view.row.name.clone(),
        kana: view.row.name_kana.clone(),
        summary: summary_of(t, &view),
        groups: fact_groups(ctx.lang, &view),
        group_href: view
            .in_group
            .then(|| format!("/a/{}/g/{}", p.slug(), view.row.group_id)),
        edit_href: view.can_edit.then(|| format!("{path}/edit")),
        unread: if view.in_group { view.row.unread } else { 0 },
    };
    Ok(ctx.respond(StatusCode::OK, &page))
}

// --- Corrections ----------------------------------------------------------------------------

async fn render_edit(
    services: &Services,
    ctx: &Ctx,
    p: &Place,
    status: StatusCode,
    entry: &PatientRow,
    filled: Filled<'_>,
) -> Response {
    let t = Translator::new(ctx.lang);
    let now = entry.physician_id.zip(entry.physician_name.as_deref());
    let physicians = |chosen: &str| physician_choices(t, me(p), now, chosen);
    let path = entry_path(p.slug(), entry.id);
    let frame = FormFrame {
        status,
        unread: super::unread_total(services, &p.viewer).await,
        title: t.format("patients.form.title_edit", &entry.name),
        lead: t.get("patients.form.lead_edit").to_owned(),
        action: format!("{path}/edit"),
        back: path,
        back_label: t.format("patients.entry.back_to_entry", &entry.name),
        version: Some(filled.typed.version.clone()),
        submit: t.get("patients.form.submit_edit"),
        physicians: &physicians,
        picker: None,
    };
    render_form(ctx, p, frame, filled)
}

/// The entry, for someone who may correct it; anyone else gets the 404 page.
async fn editable(
    services: &Services,
    ctx: &Ctx,
    p: &Place,
    id: &str,
) -> Result<PatientRow, Response> {
    let view = services
        .patient(&p.actor(), parse_id(id))
        .await
        .map_err(|e| page_error(ctx, "opening a patient's entry", e))?;
    if !view.can_edit {
        return Err(crate::pages::place::not_found_page(ctx));
    }
    Ok(view.row)
}

pub(crate) async fn show_edit(
    State(services): State<Services>,
    ctx: Ctx,
    Path((slug, id)): Path<(String, String)>,
) -> Result<Response, Response> {
    let p = Place::open(&services, &ctx, &slug).await?;
    let entry = editable(&services, &ctx, &p, &id).await?;
    let typed = PatientFields::from_row(&entry);
    Ok(render_edit(
        &services,
        &ctx,
        &p,
        StatusCode::OK,
        &entry,
        Filled::plain(&typed),
    )
    .await)
}

pub(crate) async fn update(
    State(services): State<Services>,
    ctx: Ctx,
    Path((slug, id)): Path<(String, String)>,
    form: Result<Form<PatientFields>, FormRejection>,
) -> Result<Response, Response> {
    let p = Place::open(&services, &ctx, &slug).await?;
    let mut typed = form.map(|f| f.0).unwrap_or_default();
    let t = Translator::new(ctx.lang);
    let patient_id: PatientId = parse_id(&id);
    let version = typed.version.trim().parse::<i32>().unwrap_or(0);
    let e = match services
        .update_patient(&p.actor(), patient_id, version, &typed.to_form())
        .await
    {
        Ok(()) => {
            return Ok(ctx.redirect(&format!(
                "{}?done=patient_saved",
                entry_path(p.slug(), patient_id)
            )))
        }
        Err(e) => e,
    };
    if e.code == ErrorCode::Conflict {
        // Someone saved meanwhile: what they saved next to what was typed, and the form now at
        // their version, so that saving again is a choice made with both in sight.
        let entry = editable(&services, &ctx, &p, &id).await?;
        let registered = PatientFields::from_row(&entry);
        typed.version = registered.version.clone();
        let errors = FormErrors {
            alert: Some(t.get("patients.form.conflict").to_owned()),
            ..FormErrors::default()
        };
        let filled = Filled {
            typed: &typed,
            errors,
            registered: Some(&registered),
        };
        return Ok(render_edit(&services, &ctx, &p, StatusCode::CONFLICT, &entry, filled).await);
    }
    let Some(errors) = FormErrors::from_error(t, &e) else {
        return Err(page_error(&ctx, "correcting a patient's entry", e));
    };
    let entry = editable(&services, &ctx, &p, &id).await?;
    Ok(render_edit(
        &services,
        &ctx,
        &p,
        StatusCode::UNPROCESSABLE_ENTITY,
        &entry,
        Filled::refused(&typed, errors),
    )
    .await)
}

// --- The patient group's header -------------------------------------------------------------

/// The entry at the top of a patient group's page: who the patient is, at a glance.
pub(crate) struct PatientHeader {
    pub href: String,
    pub facts: Vec<String>,
    pub physician: Option<String>,
}

/// The header for a patient group, if it has an entry. A failure only leaves it out: the
/// conversation matters more than the summary.
pub(crate) async fn group_header(
    services: &Services,
    p: &Place,
    lang: Lang,
    group_id: musubi_domain::types::GroupId,
) -> Option<PatientHeader> {
    let t = Translator::new(lang);
    match services.patient_of_group(&p.actor(), group_id).await {
        Ok(Some(view)) => Some(PatientHeader {
            href: entry_path(p.slug(), view.row.id),
            facts: summary_of(t, &view),
            physician: view
                .row
                .physician_name
                .as_deref()
                .map(|n| t.format("patients.physician_is", n)),
        }),
        Ok(None) => None,
        Err(e) => {
            tracing::warn!(
                code = e.code.as_str(),
                "reading a patient group's entry failed"
            );
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use musubi_domain::error::FieldIssue;

    /// The part of `page` between `from` and `to`.
    fn between<'a>(page: &'a str, from: &str, to: &str) -> &'a str {
        let start = page.find(from).unwrap_or_else(|| panic!("no {from}"));
        let end = start + page[start..].find(to).unwrap_or_else(|| panic!("no {to}"));
        &page[start + from.len()..end]
    }

    #[test]
    fn ages_are_digits_up_to_150_in_either_width() {
        assert_eq!(parse_age(""), Ok(None));
        assert_eq!(parse_age(" 80 "), Ok(Some(80)));
        assert_eq!(parse_age("８５"), Ok(Some(85)));
        assert_eq!(parse_age("151"), Err(()));
        assert_eq!(parse_age("-1"), Err(()));
        assert_eq!(parse_age("八十"), Err(()));
    }

    #[test]
    fn the_next_page_keeps_every_filter_and_only_those_set() {
        let q = ListQuery {
            q: "やまだ".into(),
            status: "all".into(),
            unread: Some("on".into()),
            order: "age".into(),
            after: "old".into(),
            ..ListQuery::default()
        };
        let href = q.href_after("minatogawa", "0190-x.1945-04-01");
        assert_eq!(
            href,
            "/a/minatogawa/patients?q=%E3%82%84%E3%81%BE%E3%81%A0&status=all&unread=1\
             &order=age&after=0190-x.1945-04-01"
        );
        assert_eq!(ListQuery::default().statuses().len(), 3);
        assert!(q.statuses().is_empty());
        assert!(!ListQuery::default().narrowed());
    }

    #[test]
    fn refused_fields_are_worded_by_their_reason_in_both_languages() {
        let e = AppError::invalid_fields(vec![
            FieldIssue {
                field: "birthDate",
                reason: reason::OUTSIDE_ERA,
            },
            FieldIssue {
                field: "sex",
                reason: reason::REQUIRED,
            },
            FieldIssue {
                field: "name",
                reason: reason::REQUIRED,
            },
            FieldIssue {
                field: "notes",
                reason: reason::TOO_LONG,
            },
        ]);
        let ja = FormErrors::from_error(Translator::new(Lang::Ja), &e).expect("field errors");
        assert!(ja
            .get("birth_date")
            .is_some_and(|m| m.contains("その元号にはない日付です")));
        assert_eq!(
            ja.get("sex").map(String::as_str),
            Some("性別を選んでください。")
        );
        assert_eq!(
            ja.get("name").map(String::as_str),
            Some("氏名を入力してください。")
        );
        assert!(ja.get("notes").is_some_and(|m| m.contains("2000")));
        assert!(ja.get("phone").is_none());
        let en = FormErrors::from_error(Translator::new(Lang::En), &e).expect("field errors");
        assert!(en
            .get("birth_date")
            .is_some_and(|m| m.contains("The era had no such date")));
        // A refusal of something the form has no field for is said once, at the top.
        let members = AppError::invalid("members", "too many");
        let other = FormErrors::from_error(Translator::new(Lang::Ja), &members).expect("invalid");
        assert!(other.alert.is_some());
        let physician = AppError::invalid("physicianId", "not a member");
        let p = FormErrors::from_error(Translator::new(Lang::Ja), &physician).expect("invalid");
        assert!(p.get("physician").is_some_and(|m| m.contains("主治医")));
        assert!(FormErrors::from_error(
            Translator::new(Lang::Ja),
            &AppError::new(ErrorCode::Conflict, "x")
        )
        .is_none());
    }

    #[test]
    fn every_spec_is_in_a_section_and_every_domain_field_has_a_spec() {
        let placed: Vec<&str> = SECTIONS.iter().flat_map(|s| s.3.iter().copied()).collect();
        for s in SPECS {
            assert_eq!(
                placed.iter().filter(|n| **n == s.name).count(),
                1,
                "{}",
                s.name
            );
        }
        assert_eq!(placed.len(), SPECS.len());
        let typed = PatientFields {
            name: "a".into(),
            consent_scope: "b".into(),
            ..PatientFields::default()
        };
        assert_eq!(typed.value("name"), "a");
        assert_eq!(typed.value("consent_scope"), "b");
    }

    #[test]
    fn dates_compare_as_days_when_looking_for_changes() {
        assert!(same_value(Kind::Date, "S20.4.1", "昭和20年4月1日"));
        assert!(!same_value(Kind::Date, "S20.4.2", "昭和20年4月1日"));
        assert!(same_value(Kind::Date, "", " "));
        assert!(same_value(Kind::Line, " 山田 ", "山田"));
        assert!(same_value(Kind::Postal, "１２３ー４５６７", "123-4567"));
        assert!(same_value(Kind::Tel, "０３-１２３４", "03-1234"));
        assert!(!same_value(Kind::Postal, "123-4568", "123-4567"));
    }

    #[test]
    fn every_message_key_of_the_register_exists() {
        let sources = [
            include_str!("patients.rs"),
            include_str!("../../../templates/sns/patients.html"),
            include_str!("../../../templates/sns/patient_form.html"),
            include_str!("../../../templates/sns/patient.html"),
            include_str!("../../../templates/sns/patient_header.html"),
        ];
        let t = Translator::new(Lang::Ja);
        let mut used = 0;
        for src in sources {
            for (i, _) in src.match_indices('"') {
                let rest = &src[i + 1..];
                let Some(end) = rest.find('"') else { continue };
                let key = &rest[..end];
                let looks_like_key = key.contains('.')
                    && (key.starts_with("patients.")
                        || key.starts_with("sns.")
                        || key.starts_with("error."))
                    && key.chars().all(|c| {
                        c.is_ascii_lowercase() || c.is_ascii_digit() || c == '.' || c == '_'
                    })
                    && !key.ends_with('.')
                    && !key.ends_with(".html")
                    && !key.ends_with(".rs")
                    // The team picker's section of words, not a message itself.
                    && key != "patients.members";
                if looks_like_key {
                    used += 1;
                    assert_ne!(t.get(key), key, "no message for `{key}`");
                }
            }
        }
        assert!(used > 50, "the key scan found too little: {used}");
    }

    // --- The pages, rendered without a database ---------------------------------------------

    use crate::pages::render_tests::assert_csp_clean;
    use chrono::{TimeZone, Utc};

    const EVIL: &str = "<script>alert(1)</script>\"'&";

    fn d(y: i32, m: u32, day: u32) -> NaiveDate {
        NaiveDate::from_ymd_opt(y, m, day).expect("a date")
    }

    fn card(name: &str, unread: i64, ended: bool) -> PatientCard {
        PatientCard {
            href: "/a/minatogawa/patients/p1".into(),
            name: name.into(),
            kana: "やまだ たろう".into(),
            age_sex: "85歳・男性".into(),
            care_level: "要介護2",
            status: if ended { "終了" } else { "在宅" },
            ended,
            town: "みなと川1丁目".into(),
            physician: Some("川村 健一".into()),
            unread,
        }
    }

    fn two_physicians_one_facility() -> PatientFilterChoices {
        PatientFilterChoices {
            physicians: vec![
                (
                    PersonId::from_uuid(Uuid::from_u128(1)),
                    "川村 健一".to_owned(),
                ),
                (
                    PersonId::from_uuid(Uuid::from_u128(2)),
                    "佐藤 一郎".to_owned(),
                ),
            ],
            facilities: vec![(Uuid::from_u128(3), "みなと訪問看護".to_owned())],
        }
    }

    #[test]
    fn the_physician_filter_offers_the_registers_names_and_keeps_the_choice() {
        let chosen = Uuid::from_u128(2).to_string();
        let html = list_page(
            vec![card("山田 太郎", 0, false)],
            ListQuery {
                physician: chosen.clone(),
                ..ListQuery::default()
            },
            false,
        );
        assert!(html.contains("name=\"physician\""), "{html}");
        assert!(
            html.contains(&format!(
                "<option value=\"{chosen}\" selected>佐藤 一郎</option>"
            )),
            "{html}"
        );
        // One facility is no choice at all: no select for it.
        assert!(!html.contains("name=\"facility\""), "{html}");
        // The next page keeps the physician.
        let q = ListQuery {
            physician: chosen.clone(),
            ..ListQuery::default()
        };
        assert!(q.narrowed());
        assert!(q
            .href_after("minatogawa", "x")
            .contains(&format!("physician={chosen}")));
    }

    fn list_page(patients: Vec<PatientCard>, query: ListQuery, whole: bool) -> String {
        let t = Translator::new(Lang::Ja);
        let (statuses, care_levels, orders) = list_choices(t, &query);
        let (physicians, facilities) =
            person_and_facility_choices(t, &query, &two_physicians_one_facility());
        PatientsPage {
            t,
            assets: assets::urls(),
            nav: Nav::signed_in("青木 さくら", "TOKEN").with_unread(0, Section::Patients),
            current_path: "/a/minatogawa/patients",
            flash: None,
            slug: "minatogawa",
            association: "みなと川医師会",
            narrowed: query.narrowed(),
            later_page: !query.after.is_empty(),
            first_href: query.href_after("minatogawa", ""),
            statuses,
            care_levels,
            orders,
            physicians,
            facilities,
            query,
            errors: ListErrors::default(),
            next: (!patients.is_empty())
                .then(|| "/a/minatogawa/patients?after=p1.%E3%82%84".to_owned()),
            next_label: t.format("patients.next", "50"),
            patients,
            whole_register: whole,
            can_register: true,
            others: vec![RegisterLink {
                href: "/a/sakuradai/patients".into(),
                name: "さくら台医師会".into(),
            }],
        }
        .render()
        .expect("renders")
    }

    #[test]
    fn the_list_is_cards_on_a_phone_and_a_table_on_a_wide_screen_with_a_next_link() {
        let page = list_page(
            vec![card(EVIL, 3, false), card("鈴木 花子", 0, true)],
            ListQuery::default(),
            false,
        );
        assert_csp_clean(&page);
        assert!(!page.contains("<script>alert"));
        // The same two patients twice: once as cards, once as table rows.
        assert_eq!(
            page.matches("href=\"/a/minatogawa/patients/p1\"").count(),
            4
        );
        assert!(page.contains("<ul class=\"patient-cards\""));
        assert!(page.contains("<table class=\"patient-table\">"));
        assert_eq!(page.matches("<th scope=\"row\">").count(), 2);
        assert!(page.contains(">未読 3</span>"));
        assert!(page.contains("主治医：川村 健一"));
        assert!(page.contains("href=\"/a/minatogawa/patients?after=p1.%E3%82%84\">次の50件</a>"));
        assert!(page.contains("href=\"/a/minatogawa/patients/new\">患者を登録</a>"));
        assert!(page.contains("aria-current=\"page\">患者</a>"));
        assert!(page.contains("href=\"/a/sakuradai/patients\""));
        // The filters: all but ended by default, then ふりがな順.
        assert!(page.contains("<option value=\"\" selected>終了以外のすべて</option>"));
        assert!(page.contains("<option value=\"kana\" selected>ふりがな順</option>"));
        assert!(page.contains("name=\"unread\" value=\"1\">"));
        assert!(!page.contains("台帳のすべての患者さん"));
    }

    #[test]
    fn an_empty_list_says_so_calmly_and_administrators_learn_what_they_see() {
        let page = list_page(vec![], ListQuery::default(), true);
        assert_csp_clean(&page);
        assert!(page.contains("まだ患者さんは表示されていません。"));
        assert!(page.contains("台帳のすべての患者さんが表示されます。ただし"));
        assert!(!page.contains("patient-table"));
        assert!(!page.contains("次の50件"));
        let q = ListQuery {
            q: EVIL.into(),
            status: "ended".into(),
            unread: Some("1".into()),
            order: "activity".into(),
            after: "x".into(),
            ..ListQuery::default()
        };
        let page = list_page(vec![], q, false);
        assert!(!page.contains("<script>alert"));
        assert!(page.contains("条件にあう患者さんはいません。"));
        assert!(page.contains("<details class=\"help patients-search\" id=\"search\" open>"));
        assert!(page.contains("<option value=\"ended\" selected>終了</option>"));
        assert!(page.contains("<option value=\"activity\" selected>最近の動き順</option>"));
        assert!(page.contains("name=\"unread\" value=\"1\" checked"));
        assert!(page.contains(">最初から表示する</a>"));
    }

    fn form_page(
        typed: &PatientFields,
        errors: FormErrors,
        registered: Option<&PatientFields>,
    ) -> String {
        let t = Translator::new(Lang::Ja);
        let me = (PersonId::from(Uuid::nil()), "川村 健一");
        let physicians = |chosen: &str| physician_choices(t, me, None, chosen);
        let sections = build_sections(t, typed, &errors, registered, &physicians);
        let summary = sections
            .iter()
            .flat_map(|s| s.fields.iter())
            .filter_map(|f| {
                f.error.as_ref().map(|m| SummaryItem {
                    href: format!("#{}", f.id),
                    label: f.label,
                    message: m.clone(),
                })
            })
            .collect();
        PatientFormPage {
            t,
            assets: assets::urls(),
            nav: Nav::signed_in("川村 健一", "TOKEN"),
            current_path: "/a/minatogawa/patients/new",
            csrf: "TOKEN",
            title: t.get("patients.form.title_new").to_owned(),
            lead: t.format("patients.form.lead_new", "みなと川医師会"),
            action: "/a/minatogawa/patients/new".into(),
            back: "/a/minatogawa/patients".into(),
            back_label: t.get("patients.entry.back").to_owned(),
            version: registered.map(|r| r.version.clone()),
            sections,
            summary,
            alert: errors.alert.clone().or_else(|| {
                (!errors.is_empty()).then(|| t.get("patients.form.summary").to_owned())
            }),
            submit: t.get("patients.form.submit_new"),
            picker: registered.is_none().then(|| Picker {
                words: Some("patients.members"),
                ..Picker::default()
            }),
        }
        .render()
        .expect("renders")
    }

    /// The opening tag of the element with `id`.
    fn tag<'a>(page: &'a str, id: &str) -> &'a str {
        let at = page
            .find(&format!("id=\"{id}\""))
            .unwrap_or_else(|| panic!("no #{id}"));
        let start = page[..at].rfind('<').expect("tag opens");
        let end = at + page[at..].find('>').expect("tag closes");
        &page[start..=end]
    }

    #[test]
    fn a_refused_form_keeps_every_value_and_puts_each_message_next_to_its_field() {
        let typed = PatientFields {
            name: EVIL.into(),
            name_kana: "やまだ たろう".into(),
            birth_date: "平成31年5月1日".into(),
            notes: "一行目\n二行目".into(),
            status: "ended".into(),
            ..PatientFields::blank(None)
        };
        let e = AppError::invalid_fields(vec![
            FieldIssue {
                field: "birthDate",
                reason: reason::OUTSIDE_ERA,
            },
            FieldIssue {
                field: "sex",
                reason: reason::REQUIRED,
            },
            FieldIssue {
                field: "endReason",
                reason: reason::END_REASON,
            },
        ]);
        let errors = FormErrors::from_error(Translator::new(Lang::Ja), &e).expect("invalid");
        let page = form_page(&typed, errors, None);
        assert_csp_clean(&page);
        assert!(!page.contains("<script>alert"));
        assert!(page.contains("name=\"csrf\" value=\"TOKEN\""));
        assert!(!page.contains("name=\"version\""));
        // What was typed is kept (escaped), line breaks included.
        assert!(tag(&page, "patient-name").contains("value=\"&#60;script&#62;"));
        assert!(tag(&page, "patient-birth-date").contains("value=\"平成31年5月1日\""));
        assert!(page.contains(">一行目\n二行目</textarea>"));
        assert!(page.contains("<option value=\"ended\" selected>終了</option>"));
        // Each message next to its field, tied to it for screen readers.
        let birth = tag(&page, "patient-birth-date");
        assert!(birth.contains("aria-invalid=\"true\""));
        assert!(
            birth.contains("aria-describedby=\"patient-birth-date-hint patient-birth-date-error\"")
        );
        let message = between(&page, "id=\"patient-birth-date-error\">", "</p>");
        assert!(
            message.starts_with("その元号にはない日付です。"),
            "{message}"
        );
        assert!(tag(&page, "patient-sex").contains("aria-describedby=\"patient-sex-error\""));
        assert!(page.contains("id=\"patient-sex-error\">性別を選んでください。</p>"));
        assert!(page.contains("id=\"patient-end-reason-error\">"));
        assert!(!tag(&page, "patient-name").contains("aria-invalid"));
        // And all of them at the top, each a link to its field.
        let summary = between(&page, "id=\"form-problems\"", "</div>");
        assert!(tag(&page, "form-problems").contains("role=\"alert\""));
        assert!(summary.contains("href=\"#patient-birth-date\">生年月日</a>"));
        assert!(summary.contains("href=\"#patient-sex\">性別</a>"));
        // The hint for era dates, the registrant as a possible physician, and how to invite.
        assert!(page.contains("昭和20年4月1日、S20.4.1、1945-04-01 のどれでも"));
        assert!(page.contains(">自分（川村 健一）</option>"));
        assert!(page.contains("あとから患者グループのページで招待することもできます。"));
        assert!(page.contains(">招待する人を探す</label>"));
        // Nothing the browser would fill in with the registrant's own name or address.
        assert!(!page.contains("autocomplete=\"name\""));
        assert!(!page.contains("autocomplete=\"street-address\""));
    }

    #[test]
    fn after_a_conflict_the_form_shows_what_is_registered_now_where_it_differs() {
        let typed = PatientFields {
            name: "山田 太郎".into(),
            birth_date: "S20.4.1".into(),
            care_level: "care2".into(),
            version: "4".into(),
            ..PatientFields::blank(None)
        };
        let registered = PatientFields {
            name: "山田 太朗".into(),
            birth_date: "昭和20年4月1日".into(),
            care_level: "care3".into(),
            version: "5".into(),
            ..PatientFields::blank(None)
        };
        let errors = FormErrors {
            alert: Some(
                Translator::new(Lang::Ja)
                    .get("patients.form.conflict")
                    .to_owned(),
            ),
            ..FormErrors::default()
        };
        let page = form_page(&typed, errors, Some(&registered));
        assert!(page.contains("ほかの方がこの患者さんの情報を変更しました"));
        assert!(page.contains("name=\"version\" value=\"5\""));
        assert!(tag(&page, "patient-name").contains("value=\"山田 太郎\""));
        assert!(page.contains("id=\"patient-name-current\">いまの登録：山田 太朗</p>"));
        assert!(tag(&page, "patient-name").contains("patient-name-current"));
        assert!(page.contains("id=\"patient-care-level-current\">いまの登録：要介護3</p>"));
        // The same day written another way is no change.
        assert!(!page.contains("patient-birth-date-current"));
    }

    fn row() -> PatientRow {
        let at = Utc
            .with_ymd_and_hms(2026, 3, 4, 1, 5, 0)
            .single()
            .expect("valid");
        PatientRow {
            id: PatientId::from(Uuid::nil()),
            group_id: musubi_domain::types::GroupId::from(Uuid::nil()),
            group_name: "山田 太郎さん".into(),
            name: EVIL.into(),
            name_kana: "やまだ たろう".into(),
            birth_date: d(1945, 4, 1),
            sex: Sex::Male,
            postal_code: "123-4567".into(),
            address: "みなと川市1-2-3".into(),
            town: "みなと川1丁目".into(),
            phone: "".into(),
            physician_id: None,
            physician_name: Some("川村 健一".into()),
            diagnoses: "慢性心不全\n糖尿病".into(),
            care_level: CareLevel::Care2,
            key_person: "長女 山田 花子さん".into(),
            family_contact: "090-0000-0000".into(),
            care_manager: "".into(),
            nurse_station: "".into(),
            pharmacy: "".into(),
            status: PatientStatus::Home,
            status_since: Some(d(2019, 5, 1)),
            end_reason: None,
            notes: "".into(),
            consent_date: None,
            consent_by: "".into(),
            consent_scope: "".into(),
            facility_id: None,
            facility_name: None,
            registered_by: PersonId::from(Uuid::nil()),
            registered_by_name: Some("青木 さくら".into()),
            registered_at: at,
            updated_at: at,
            version: 1,
            last_activity_at: at,
            unread: 2,
        }
    }

    fn entry_page(in_group: bool) -> String {
        let t = Translator::new(Lang::Ja);
        let view = PatientView {
            row: row(),
            age: 80,
            birth_wareki: "昭和20年4月1日".into(),
            can_edit: in_group,
            in_group,
        };
        PatientPage {
            t,
            assets: assets::urls(),
            nav: Nav::signed_in("青木 さくら", "TOKEN"),
            current_path: "/a/minatogawa/patients/p1",
            flash: None,
            slug: "minatogawa",
            association: "みなと川医師会",
            name: view.row.name.clone(),
            kana: view.row.name_kana.clone(),
            summary: summary_of(t, &view),
            groups: fact_groups(Lang::Ja, &view),
            group_href: in_group.then(|| "/a/minatogawa/g/g1".to_owned()),
            edit_href: in_group.then(|| "/a/minatogawa/patients/p1/edit".to_owned()),
            unread: 2,
        }
        .render()
        .expect("renders")
    }

    #[test]
    fn an_entry_lists_every_field_by_era_and_links_members_to_their_group() {
        let page = entry_page(true);
        assert_csp_clean(&page);
        assert!(!page.contains("<script>alert"));
        assert!(page.contains("昭和20年4月1日（1945年4月1日）・80歳"));
        assert!(page.contains("在宅・令和元年5月1日（2019年5月1日）から"));
        assert!(page.contains("<dd class=\"patient-facts__text\">慢性心不全\n糖尿病</dd>"));
        assert!(page.contains("<dd class=\"patient-facts__empty\">（未記入）</dd>"));
        assert!(page.contains("href=\"/a/minatogawa/g/g1\""));
        assert!(page.contains("href=\"/a/minatogawa/patients/p1/edit\""));
        assert!(page.contains("data-print hidden"));
        assert!(!page.contains("グループのやりとり（トピックやコメント）は見られません"));
        let every_label = [
            "氏名",
            "ふりがな",
            "生年月日",
            "性別",
            "郵便番号",
            "住所",
            "町名",
            "電話",
            "主治医",
            "主な病名",
            "要介護度",
            "キーパーソン",
            "家族の連絡先",
            "ケアマネジャー",
            "訪問看護ステーション",
            "薬局",
            "療養の状況",
            "備考",
            "同意日",
            "同意を得た人",
            "同意の範囲",
        ];
        for label in every_label {
            assert!(page.contains(&format!("<dt>{label}</dt>")), "{label}");
        }
        // An administrator outside the group: the entry, and no way into the conversation.
        let page = entry_page(false);
        assert!(!page.contains("/g/"));
        assert!(!page.contains("/edit\""));
        assert!(page.contains("グループのやりとり（トピックやコメント）は見られません"));
    }
}
