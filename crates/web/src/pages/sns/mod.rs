//! The SNS pages: my groups, a group, a topic with its comments and footprints, a new topic,
//! the patient register, and the HTML fragments `static/live.js` swaps in when something changes.
//!
//! Like the console, the association comes from the path and the services authorize every
//! call: what the viewer may not see is the normal 404 page, exactly like what does not exist.
//! Forms are CSRF-checked and answered with 303 and a fixed `?done=…`/`?error=…` code, except
//! when what was typed must be shown again (then the page is rendered with the message).

pub(crate) mod calendar;
pub(crate) mod duty;
pub(crate) mod files;
pub(crate) mod group;
pub(crate) mod groups;
pub(crate) mod messages;
pub(crate) mod new_topic;
pub(crate) mod patient_files;
pub(crate) mod patient_import;
pub(crate) mod patients;
pub(crate) mod search;
pub(crate) mod text;
pub(crate) mod topic;

use crate::ctx::Ctx;
use crate::i18n::{Lang, Translator};
use crate::layout::{Nav, Section};
use crate::pages::console::profession_label;
use crate::pages::flash::lookup;
pub(crate) use crate::pages::flash::Flash;
pub(crate) use crate::pages::place::{page_error, Place};
use axum::extract::Query;
use axum::response::Response;
use chrono::{DateTime, Datelike, Utc};
use http::Uri;
use musubi_config::time::jst;
use musubi_domain::groups::{ReceiptMode, Scope};
use musubi_domain::sessions::Viewer;
use musubi_domain::types::{DoctorKind, Profession, ProfessionClass};
use musubi_domain::{AppError, ErrorCode, Services};
use serde::Deserialize;
use uuid::Uuid;

/// An id from the path. A malformed one is an id nobody has: the services authorize first,
/// then answer "not found" like for any other unknown id.
pub(crate) fn parse_id<T: From<Uuid>>(id: &str) -> T {
    T::from(Uuid::parse_str(id).unwrap_or(Uuid::nil()))
}

/// The header for a signed-in page of the SNS, with the unread count next to ホーム.
pub(crate) fn nav<'a>(viewer: &'a Viewer, ctx: &'a Ctx, unread: i64, at: Section) -> Nav<'a> {
    Nav::signed_in(&viewer.user().name, ctx.csrf.form_token()).with_unread(unread, at)
}

/// The total unread count for the header; a failure only leaves the badge out.
pub(crate) async fn unread_total(services: &Services, viewer: &Viewer) -> i64 {
    match services.unread_counts(viewer).await {
        Ok(c) => c.total,
        Err(e) => {
            tracing::warn!(code = e.code.as_str(), "counting unread comments failed");
            0
        }
    }
}

/// The newest live event id, read before a page that updates itself reads its data: the
/// script then asks for everything after it. Without it the script only hears of what comes
/// after it connects, which is still useful.
pub(crate) async fn live_cursor(services: &Services) -> Option<i64> {
    match services.last_event_id().await {
        Ok(id) => Some(id),
        Err(e) => {
            tracing::warn!(code = e.code.as_str(), "reading the newest event id failed");
            None
        }
    }
}

#[derive(Debug, Default, Deserialize)]
struct FlashQuery {
    done: Option<String>,
    error: Option<String>,
}

/// The messages the SNS forms may leave: (code, catalog key). Anything else in the query is
/// ignored, so a crafted link cannot make the page say something of its choosing.
const DONE: &[(&str, &str)] = &[
    ("group_created", "sns.done.group_created"),
    ("invited", "sns.done.invited"),
    ("invited_email", "sns.done.invited_email"),
    ("joined", "sns.done.joined"),
    ("declined", "sns.done.declined"),
    ("requested", "sns.done.requested"),
    ("approved", "sns.done.approved"),
    ("refused", "sns.done.refused"),
    ("removed", "sns.done.removed"),
    ("removed_many", "sns.done.removed_many"),
    ("invited_team", "sns.done.invited_team"),
    ("until_set", "sns.done.until_set"),
    ("until_cleared", "sns.done.until_cleared"),
    ("role_changed", "sns.done.role_changed"),
    ("settings_saved", "sns.done.settings_saved"),
    ("marked_read", "sns.done.marked_read"),
    ("left", "sns.done.left"),
    ("posted", "sns.done.posted"),
    ("edited", "sns.done.edited"),
    ("deleted", "sns.done.deleted"),
    ("acknowledged", "sns.done.acknowledged"),
    ("topic_saved", "sns.done.topic_saved"),
    ("file_shared", "files.done.shared"),
    ("file_deleted", "files.done.deleted"),
    ("patient_registered", "patients.done.registered"),
    ("patient_saved", "patients.done.saved"),
    ("message_sent", "messages.done.sent"),
    ("message_continued", "messages.done.continued"),
    ("people_added", "messages.done.people_added"),
    ("conversation_left", "messages.done.left"),
];

const ERRORS: &[(&str, &str)] = &[
    ("not_found", "sns.error.not_found"),
    ("last_owner", "sns.error.last_owner"),
    ("already_member", "sns.error.already_member"),
    ("conflict", "sns.error.conflict"),
    ("invalid", "sns.error.invalid"),
    ("closed", "sns.error.closed"),
    ("archived", "sns.error.archived"),
    ("first_post", "sns.error.first_post"),
    ("until", "sns.error.until"),
    ("none_chosen", "sns.error.none_chosen"),
    ("cross_association", "messages.error.cross"),
];

pub(crate) fn flash(t: Translator, uri: &Uri) -> Option<Flash> {
    let q = Query::<FlashQuery>::try_from_uri(uri)
        .map(|q| q.0)
        .unwrap_or_default();
    if let Some(key) = lookup(DONE, q.done.as_deref()) {
        return Some(Flash {
            text: t.get(key).to_owned(),
            success: true,
        });
    }
    lookup(ERRORS, q.error.as_deref()).map(|key| Flash {
        text: t.get(key).to_owned(),
        success: false,
    })
}

/// The `?error=` code for a refused form.
pub(crate) fn error_code(e: &AppError) -> Option<&'static str> {
    Some(match e.code {
        ErrorCode::NotFound => "not_found",
        ErrorCode::LastOwner => "last_owner",
        ErrorCode::AlreadyMember => "already_member",
        ErrorCode::Conflict => "conflict",
        ErrorCode::FirstPostUndeletable => "first_post",
        ErrorCode::InvalidInput => "invalid",
        ErrorCode::TopicClosed => "closed",
        ErrorCode::GroupArchived => "archived",
        ErrorCode::CrossAssociationMessagesDisabled => "cross_association",
        _ => return None,
    })
}

/// 303 back to `to` with `?done=` or `?error=`; anything unexpected is the 500 page.
pub(crate) fn after_action(
    ctx: &Ctx,
    to: &str,
    result: Result<(), AppError>,
    done: &'static str,
    doing: &'static str,
) -> Response {
    let (path, fragment) = match to.split_once('#') {
        Some((p, f)) => (p, format!("#{f}")),
        None => (to, String::new()),
    };
    match result {
        Ok(()) => ctx.redirect(&format!("{path}?done={done}{fragment}")),
        Err(e) => match error_code(&e) {
            Some(code) => ctx.redirect(&format!("{path}?error={code}{fragment}")),
            None => ctx.fail(doing, e),
        },
    }
}

/// A time as a list shows it: "14:05" today, "3月4日 14:05" this year, the full date before.
pub(crate) fn short_time(lang: Lang, at: DateTime<Utc>, now: DateTime<Utc>) -> String {
    let (local, today) = (at.with_timezone(&jst()), now.with_timezone(&jst()));
    if local.date_naive() == today.date_naive() {
        local.format("%H:%M").to_string()
    } else if local.year() == today.year() {
        match lang {
            Lang::Ja => local.format("%-m月%-d日 %H:%M").to_string(),
            Lang::En => local.format("%-d %b, %H:%M").to_string(),
        }
    } else {
        crate::datetime::date_time(lang, at)
    }
}

/// The full date and time, for the list behind a footprint badge and for `<time>` titles.
pub(crate) fn full_time(lang: Lang, at: DateTime<Utc>) -> String {
    crate::datetime::date_time(lang, at)
}

/// `2026-03-04T14:05:00+09:00`, for `<time datetime>`.
pub(crate) fn machine_time(at: DateTime<Utc>) -> String {
    at.with_timezone(&jst())
        .to_rfc3339_opts(chrono::SecondsFormat::Secs, false)
}

/// The first character of a name, for a small badge: 川村 健一 → 川.
pub(crate) fn initial(name: &str) -> String {
    name.trim()
        .chars()
        .next()
        .map(String::from)
        .unwrap_or_default()
}

/// Who may see a topic, in words; `None` for everyone in the group.
pub(crate) fn scope_label(t: Translator, scope: Scope) -> Option<String> {
    if scope.is_everyone() {
        return None;
    }
    let names: Vec<&str> = scope
        .classes()
        .into_iter()
        .map(|class| match class {
            ProfessionClass::CoMedical => t.get("sns.scope.co_medical"),
            ProfessionClass::CollaboratingDoctor => t.get("sns.scope.collaborating_doctors"),
            ProfessionClass::HospitalDoctor => t.get("sns.scope.hospital_doctors"),
        })
        .collect();
    Some(t.format("sns.scope.only", &names.join(t.get("sns.list_separator"))))
}

/// The read-receipt mode in words.
pub(crate) fn receipt_label(t: Translator, mode: ReceiptMode) -> &'static str {
    match mode {
        ReceiptMode::Footprints => t.get("sns.receipt.footprints"),
        ReceiptMode::Acknowledgement => t.get("sns.receipt.ack"),
        ReceiptMode::Off => t.get("sns.receipt.off"),
    }
}

/// Profession as people say it, e.g. 看護師, 医師（連携医）.
pub(crate) fn profession(
    t: Translator,
    profession: Profession,
    doctor_kind: Option<DoctorKind>,
) -> String {
    profession_label(t, profession, doctor_kind)
}

/// The scope checkboxes of a topic form: what is ticked, and who in the group each box means.
pub(crate) struct ScopePicker {
    pub everyone: bool,
    pub co_medical: bool,
    pub collaborating: bool,
    pub hospital: bool,
    pub error: Option<String>,
    /// Members of the group per class, to say who each box lets in.
    pub co_medical_names: String,
    pub collaborating_names: String,
    pub hospital_names: String,
}

impl ScopePicker {
    /// `scope` is `None` for "only some" with no class chosen: nothing is ticked.
    pub(crate) fn new(scope: Option<Scope>, members: &[(Scope, &str)], t: Translator) -> Self {
        let names = |bit: Scope| {
            let list: Vec<&str> = members
                .iter()
                .filter(|(b, _)| *b == bit)
                .map(|(_, n)| *n)
                .collect();
            if list.is_empty() {
                t.get("sns.scope.nobody_here").to_owned()
            } else {
                t.format("sns.scope.here", &list.join(t.get("sns.list_separator")))
            }
        };
        let everyone = scope.is_some_and(Scope::is_everyone);
        let ticked = |class| !everyone && scope.is_some_and(|s| s.includes(class));
        Self {
            everyone,
            co_medical: ticked(ProfessionClass::CoMedical),
            collaborating: ticked(ProfessionClass::CollaboratingDoctor),
            hospital: ticked(ProfessionClass::HospitalDoctor),
            error: None,
            co_medical_names: names(Scope::CO_MEDICAL),
            collaborating_names: names(Scope::COLLABORATING_DOCTORS),
            hospital_names: names(Scope::HOSPITAL_DOCTORS),
        }
    }

    /// The same choices without the names of who each one lets in.
    pub(crate) fn without_names(self) -> Self {
        Self {
            co_medical_names: String::new(),
            collaborating_names: String::new(),
            hospital_names: String::new(),
            ..self
        }
    }
}

/// The scope fields of a topic form: `scope` = `everyone` or `some`, and a checkbox per class.
#[derive(Debug, Default, Clone, Deserialize)]
pub(crate) struct ScopeFields {
    #[serde(default)]
    pub scope: String,
    pub co_medical: Option<String>,
    pub collaborating: Option<String>,
    pub hospital: Option<String>,
}

impl ScopeFields {
    /// The chosen scope; `None` when "some" was chosen without any box ticked.
    pub(crate) fn scope(&self) -> Option<Scope> {
        if self.scope != "some" {
            return Some(Scope::EVERYONE);
        }
        let classes: Vec<ProfessionClass> = [
            (&self.co_medical, ProfessionClass::CoMedical),
            (&self.collaborating, ProfessionClass::CollaboratingDoctor),
            (&self.hospital, ProfessionClass::HospitalDoctor),
        ]
        .into_iter()
        .filter_map(|(ticked, class)| ticked.is_some().then_some(class))
        .collect();
        Scope::from_classes(&classes)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn times_are_short_today_and_longer_before() {
        let now = Utc
            .with_ymd_and_hms(2026, 3, 4, 5, 0, 0)
            .single()
            .expect("valid");
        let today = Utc
            .with_ymd_and_hms(2026, 3, 4, 1, 5, 0)
            .single()
            .expect("valid");
        let earlier = Utc
            .with_ymd_and_hms(2026, 2, 1, 1, 5, 0)
            .single()
            .expect("valid");
        let last_year = Utc
            .with_ymd_and_hms(2025, 2, 1, 1, 5, 0)
            .single()
            .expect("valid");
        assert_eq!(short_time(Lang::Ja, today, now), "10:05");
        assert_eq!(short_time(Lang::Ja, earlier, now), "2月1日 10:05");
        assert_eq!(short_time(Lang::Ja, last_year, now), "2025年2月1日 10:05");
        assert_eq!(machine_time(today), "2026-03-04T10:05:00+09:00");
    }

    #[test]
    fn scope_fields_make_scopes() {
        let f = |scope: &str, co: bool, collab: bool, hosp: bool| ScopeFields {
            scope: scope.into(),
            co_medical: co.then(|| "1".into()),
            collaborating: collab.then(|| "1".into()),
            hospital: hosp.then(|| "1".into()),
        };
        assert_eq!(
            f("everyone", true, false, false).scope(),
            Some(Scope::EVERYONE)
        );
        assert_eq!(f("", false, false, false).scope(), Some(Scope::EVERYONE));
        assert_eq!(
            f("some", true, false, false).scope(),
            Some(Scope::CO_MEDICAL)
        );
        assert_eq!(f("some", false, true, true).scope(), Some(Scope::DOCTORS));
        assert_eq!(f("some", false, false, false).scope(), None);
    }

    /// The flash a refused form ends with, in `lang`.
    fn refusal_text(e: &AppError, lang: Lang) -> Option<String> {
        let code = error_code(e)?;
        let uri: Uri = format!("/x?error={code}").parse().expect("uri");
        flash(Translator::new(lang), &uri).map(|f| f.text)
    }

    #[test]
    fn refusals_are_worded_by_their_code_not_their_message() {
        // The developer message says nothing about owners: the code alone decides.
        let last_owner = AppError::new(ErrorCode::LastOwner, "refused");
        assert_eq!(
            refusal_text(&last_owner, Lang::Ja).as_deref(),
            Some("グループには管理者が1人以上必要です。先にほかのメンバーを管理者にしてください。")
        );
        assert!(refusal_text(&last_owner, Lang::En)
            .is_some_and(|t| t.contains("at least one administrator")));
        let first_post = AppError::new(ErrorCode::FirstPostUndeletable, "refused");
        assert_eq!(
            refusal_text(&first_post, Lang::Ja).as_deref(),
            Some("トピックの本文（最初のコメント）は削除できません。内容を直すか、トピックを締め切ってください。")
        );
        // A message that merely mentions an owner or the first post changes nothing.
        let conflict = AppError::new(ErrorCode::Conflict, "a group needs at least one owner");
        assert_eq!(error_code(&conflict), Some("conflict"));
        let invalid = AppError::invalid("commentId", "the first post of a topic");
        assert_eq!(error_code(&invalid), Some("invalid"));
        assert_eq!(
            error_code(&AppError::new(ErrorCode::AlreadyMember, "x")),
            Some("already_member")
        );
    }

    #[test]
    fn scope_labels_name_the_classes() {
        let t = Translator::new(Lang::Ja);
        assert_eq!(scope_label(t, Scope::EVERYONE), None);
        assert_eq!(
            scope_label(t, Scope::CO_MEDICAL).as_deref(),
            Some("コメディカルのみ")
        );
        assert_eq!(
            scope_label(t, Scope::DOCTORS).as_deref(),
            Some("連携医師・病院医師のみ")
        );
    }
}
