//! `GET/POST /invite/{token}`: joining an association with an invitation link.
//!
//! The page says who invites, with which role and at which facility. Someone new fills in their
//! details and chooses their own password; someone who already has an account gives its
//! password. Either way they are signed in as `/signin` would (so an association that requires
//! a second factor sends them to set one up next).
//!
//! The token is the credential: it appears only in the path, these pages are never cached, and
//! no request made from them carries the path in its `Referer` (see [`private_link`]).

use super::error;
use super::signin::rate_limited;
use crate::assets::{self, AssetUrls};
use crate::ctx::Ctx;
use crate::datetime;
use crate::i18n::Translator;
use crate::layout::Nav;
use askama::Template;
use axum::extract::rejection::FormRejection;
use axum::extract::{Path, State};
use axum::response::Response;
use axum::Form;
use http::header::REFERRER_POLICY;
use http::{HeaderValue, StatusCode};
use musubi_domain::invitations::{AcceptInput, InvitationPreview};
use musubi_domain::members::MemberRole;
use musubi_domain::sessions::{SessionKind, SignInStep};
use musubi_domain::types::Profession;
use musubi_domain::{AppError, ErrorCode, Services};
use serde::Deserialize;

/// The catalog key of each profession's name, in the order of the list people choose from.
pub(crate) const PROFESSION_KEYS: &[(&str, &str)] = &[
    ("physician", "invite.profession.physician"),
    ("dentist", "invite.profession.dentist"),
    ("pharmacist", "invite.profession.pharmacist"),
    ("nurse", "invite.profession.nurse"),
    ("assistant_nurse", "invite.profession.assistant_nurse"),
    (
        "public_health_nurse",
        "invite.profession.public_health_nurse",
    ),
    ("physical_therapist", "invite.profession.physical_therapist"),
    (
        "occupational_therapist",
        "invite.profession.occupational_therapist",
    ),
    ("speech_therapist", "invite.profession.speech_therapist"),
    ("dietitian", "invite.profession.dietitian"),
    ("care_manager", "invite.profession.care_manager"),
    ("social_worker", "invite.profession.social_worker"),
    ("care_worker", "invite.profession.care_worker"),
    ("clerk", "invite.profession.clerk"),
    ("other", "invite.profession.other"),
];

/// The plain-words explanation of each `WEAK_PASSWORD` reason.
pub(crate) fn password_problem(t: Translator, reason: &str) -> &'static str {
    let key = match reason {
        "TOO_SHORT" => "password_rules.error.too_short",
        "TOO_LONG" => "password_rules.error.too_long",
        "TOO_FEW_KINDS" => "password_rules.error.too_few_kinds",
        "CONTAINS_PERSONAL_INFO" => "password_rules.error.personal",
        "TOO_COMMON" => "password_rules.error.common",
        _ => "password_rules.error.other",
    };
    t.get(key)
}

/// What every page about a secret link needs: requests made from it (its form, its scripts and
/// styles, any link followed) name only this site's origin in `Referer`, never the path that
/// holds the token.
///
/// Not `no-referrer`: under that policy browsers also send `Origin: null` with the page's own
/// form, which the CSRF guard rightly refuses. `strict-origin` keeps the `Origin` check working
/// and still never sends the path.
pub(crate) fn private_link(mut res: Response) -> Response {
    res.headers_mut()
        .insert(REFERRER_POLICY, HeaderValue::from_static("strict-origin"));
    res
}

/// One choice in the list of professions.
pub(crate) struct Choice {
    pub value: &'static str,
    pub label: &'static str,
    pub selected: bool,
}

/// What went wrong with each field; `None` where all is well.
#[derive(Default)]
pub(crate) struct FieldErrors {
    pub email: Option<&'static str>,
    pub name: Option<&'static str>,
    pub name_kana: Option<&'static str>,
    pub profession: Option<&'static str>,
    pub doctor_kind: Option<&'static str>,
    pub password: Option<&'static str>,
    /// The password rules a new password breaks, in plain words.
    pub password_problems: Vec<&'static str>,
}

impl FieldErrors {
    fn any(&self) -> bool {
        self.email.is_some()
            || self.name.is_some()
            || self.name_kana.is_some()
            || self.profession.is_some()
            || self.doctor_kind.is_some()
            || self.password.is_some()
            || !self.password_problems.is_empty()
    }
}

#[derive(Template)]
#[template(path = "invite.html")]
pub(crate) struct InvitePage<'a> {
    pub t: Translator,
    pub assets: &'static AssetUrls,
    pub nav: Nav<'a>,
    pub current_path: &'a str,
    pub csrf: &'a str,
    /// Where the forms post: this page.
    pub action: &'a str,
    pub association: &'a str,
    pub admin: bool,
    pub facility: Option<&'a str>,
    pub expires: String,
    /// The invited address (e-mail invitations); `None` for in-person invitations, where the
    /// invitee types theirs.
    pub fixed_email: Option<&'a str>,
    /// The invited address has an account already: only its password is asked for.
    pub existing_account: bool,
    /// What was typed, shown again after a mistake (never the password).
    pub typed: &'a AcceptForm,
    pub professions: Vec<Choice>,
    /// The errors belong to the form for a new account (not to the one for an existing
    /// account, offered below it for in-person invitations).
    pub new_sent: bool,
    pub errors: FieldErrors,
    pub has_field_errors: bool,
    /// The password rules a new password breaks, in plain words.
    pub password_problems: Vec<&'static str>,
    /// A problem with the whole form (wrong password, already a member, wait a while).
    pub error: Option<String>,
}

#[derive(Template)]
#[template(path = "invite_invalid.html")]
pub(crate) struct InviteProblemPage<'a> {
    pub t: Translator,
    pub assets: &'static AssetUrls,
    pub nav: Nav<'a>,
    pub current_path: &'a str,
    pub title: &'static str,
    pub message: String,
    /// Offer to sign in (the link may have been used by this very person).
    pub offer_sign_in: bool,
}

/// What the forms send. The CSRF field is read by the guard.
#[derive(Deserialize, Default)]
pub(crate) struct AcceptForm {
    /// `new` (create an account) or `existing` (join with an existing account).
    #[serde(default)]
    pub kind: String,
    #[serde(default)]
    pub email: String,
    #[serde(default)]
    pub name: String,
    #[serde(default)]
    pub name_kana: String,
    #[serde(default)]
    pub profession: String,
    #[serde(default)]
    pub doctor_kind: String,
    #[serde(default)]
    password: String,
}

pub(crate) async fn show(
    State(services): State<Services>,
    ctx: Ctx,
    Path(token): Path<String>,
) -> Response {
    let path = format!("/invite/{token}");
    let res = match services.invitation_preview(&token, &ctx.client).await {
        Ok(preview) => {
            let form = AcceptForm::default();
            let page = page(&ctx, &path, &preview, &form, FieldErrors::default(), None);
            ctx.respond(StatusCode::OK, &page)
        }
        Err(e) => problem(&ctx, &path, e),
    };
    private_link(res)
}

pub(crate) async fn submit(
    State(services): State<Services>,
    mut ctx: Ctx,
    Path(token): Path<String>,
    form: Result<Form<AcceptForm>, FormRejection>,
) -> Response {
    let path = format!("/invite/{token}");
    let Ok(Form(form)) = form else {
        return private_link(error::bad_request(ctx.lang, &path));
    };
    let preview = match services.invitation_preview(&token, &ctx.client).await {
        Ok(p) => p,
        Err(e) => return private_link(problem(&ctx, &path, e)),
    };
    let t = Translator::new(ctx.lang);
    let existing = form.kind == "existing" || preview.existing_account;
    let errors = missing_fields(t, &preview, &form, existing);
    if errors.any() {
        let page = page(&ctx, &path, &preview, &form, errors, None);
        return private_link(ctx.respond(StatusCode::BAD_REQUEST, &page));
    }
    let input = accept_input(&preview, &form, existing);
    let res = match services
        .accept_invitation(&token, &input, SessionKind::Web, &ctx.client)
        .await
    {
        Ok(signed_in) => {
            let to = match signed_in.step {
                SignInStep::Done => {
                    // A token planted before signing in must not outlive it.
                    ctx.renew_csrf();
                    "/home"
                }
                SignInStep::SecondFactor => "/signin/code",
                SignInStep::EnrolSecondFactor => "/signin/enrol",
            };
            ctx.set_session(ctx.redirect(to), &signed_in.token)
        }
        Err(e) => refused(&ctx, &path, &preview, &form, existing, e),
    };
    private_link(res)
}

/// The fields left empty, all at once (the services would name only the first).
fn missing_fields(
    t: Translator,
    preview: &InvitationPreview,
    form: &AcceptForm,
    existing: bool,
) -> FieldErrors {
    let empty = |s: &str| s.trim().is_empty();
    let mut errors = FieldErrors::default();
    if preview.email.is_none() && empty(&form.email) {
        errors.email = Some(t.get("invite.error.email"));
    }
    if form.password.is_empty() {
        errors.password = Some(t.get("invite.error.password_empty"));
    }
    if existing {
        return errors;
    }
    if empty(&form.name) {
        errors.name = Some(t.get("invite.error.name"));
    }
    if empty(&form.name_kana) {
        errors.name_kana = Some(t.get("invite.error.name_kana"));
    }
    if Profession::from_code(&form.profession).is_none() {
        errors.profession = Some(t.get("invite.error.profession"));
    } else if is_doctor(&form.profession) && empty(&form.doctor_kind) {
        errors.doctor_kind = Some(t.get("invite.error.doctor_kind"));
    }
    errors
}

fn is_doctor(profession: &str) -> bool {
    Profession::from_code(profession).is_some_and(Profession::is_doctor)
}

fn accept_input(preview: &InvitationPreview, form: &AcceptForm, existing: bool) -> AcceptInput {
    let email = preview
        .email
        .is_none()
        .then(|| form.email.trim().to_owned());
    if existing {
        return AcceptInput {
            email,
            password: form.password.clone(),
            ..AcceptInput::default()
        };
    }
    // The doctor-kind choice is hidden (not cleared) when another profession is picked after
    // it: only doctors send one.
    let doctor_kind = is_doctor(&form.profession).then(|| form.doctor_kind.clone());
    AcceptInput {
        email,
        password: form.password.clone(),
        name: Some(form.name.clone()),
        name_kana: Some(form.name_kana.clone()),
        profession: Some(form.profession.clone()),
        doctor_kind,
    }
}

/// The form again, saying what the services refused.
fn refused(
    ctx: &Ctx,
    path: &str,
    preview: &InvitationPreview,
    form: &AcceptForm,
    existing: bool,
    e: AppError,
) -> Response {
    let t = Translator::new(ctx.lang);
    let mut errors = FieldErrors::default();
    let mut message = None;
    let status = match e.code {
        ErrorCode::WeakPassword => {
            errors.password_problems = e.reasons.iter().map(|r| password_problem(t, r)).collect();
            StatusCode::BAD_REQUEST
        }
        ErrorCode::InvalidInput => {
            let text = match e.field {
                Some("email") => &mut errors.email,
                Some("name") => &mut errors.name,
                Some("nameKana") => &mut errors.name_kana,
                Some("profession") => &mut errors.profession,
                Some("doctorKind") => &mut errors.doctor_kind,
                _ => &mut errors.password,
            };
            let key = match e.field {
                Some("email") => "invite.error.email",
                Some("name") => "invite.error.name",
                Some("nameKana") => "invite.error.name_kana",
                Some("profession") => "invite.error.profession",
                Some("doctorKind") => "invite.error.doctor_kind",
                _ => "invite.error.password_empty",
            };
            *text = Some(t.get(key));
            StatusCode::BAD_REQUEST
        }
        ErrorCode::InvalidCredentials => {
            let key = if existing {
                "invite.error.wrong_password"
            } else {
                "invite.error.has_account"
            };
            message = Some(t.get(key).to_owned());
            StatusCode::UNAUTHORIZED
        }
        ErrorCode::AlreadyMember => {
            message = Some(t.get("invite.error.already_member").to_owned());
            StatusCode::CONFLICT
        }
        ErrorCode::RateLimited => {
            return rate_limited(ctx, &e, |ctx, message| {
                let page = page(ctx, path, preview, form, errors, Some(message));
                ctx.respond(StatusCode::TOO_MANY_REQUESTS, &page)
            });
        }
        ErrorCode::InvitationInvalid => return problem(ctx, path, e),
        _ => return ctx.fail("accepting an invitation", e),
    };
    let page = page(ctx, path, preview, form, errors, message);
    ctx.respond(status, &page)
}

/// The friendly page for a link that cannot be used (or not right now).
fn problem(ctx: &Ctx, path: &str, e: AppError) -> Response {
    let t = Translator::new(ctx.lang);
    match e.code {
        ErrorCode::InvitationInvalid => {
            let page = InviteProblemPage {
                t,
                assets: assets::urls(),
                nav: Nav::hidden(),
                current_path: path,
                title: t.get("invite.invalid.title"),
                message: t.get("invite.invalid.message").to_owned(),
                offer_sign_in: true,
            };
            ctx.respond(StatusCode::GONE, &page)
        }
        ErrorCode::RateLimited => rate_limited(ctx, &e, |ctx, message| {
            let page = InviteProblemPage {
                t,
                assets: assets::urls(),
                nav: Nav::hidden(),
                current_path: path,
                title: t.get("invite.wait.title"),
                message,
                offer_sign_in: false,
            };
            ctx.respond(StatusCode::TOO_MANY_REQUESTS, &page)
        }),
        _ => ctx.fail("reading an invitation", e),
    }
}

fn page<'a>(
    ctx: &'a Ctx,
    path: &'a str,
    preview: &'a InvitationPreview,
    form: &'a AcceptForm,
    errors: FieldErrors,
    error: Option<String>,
) -> InvitePage<'a> {
    let t = Translator::new(ctx.lang);
    let professions = PROFESSION_KEYS
        .iter()
        .map(|(value, key)| Choice {
            value,
            label: t.get(key),
            selected: form.profession == *value,
        })
        .collect();
    InvitePage {
        t,
        assets: assets::urls(),
        nav: Nav::hidden(),
        current_path: path,
        csrf: ctx.csrf.form_token(),
        action: path,
        association: &preview.association_name,
        admin: preview.role == MemberRole::Admin,
        facility: preview.facility_name.as_deref(),
        expires: datetime::date_time(ctx.lang, preview.expires_at),
        fixed_email: preview.email.as_deref(),
        existing_account: preview.existing_account,
        typed: form,
        professions,
        new_sent: form.kind != "existing",
        has_field_errors: errors.any(),
        password_problems: errors.password_problems.clone(),
        errors,
        error,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::i18n::Lang;
    use crate::pages::render_tests::assert_csp_clean;

    const EVIL: &str = "<script>alert(1)</script>";

    fn preview(email: Option<&str>, existing_account: bool) -> InvitationPreview {
        InvitationPreview {
            association_slug: "minatogawa".into(),
            association_name: "みなと川医師会".into(),
            role: MemberRole::Member,
            facility_name: Some("訪問看護ステーションみなと".into()),
            email: email.map(str::to_owned),
            existing_account,
            expires_at: chrono::Utc::now(),
        }
    }

    fn render(preview: &InvitationPreview, typed: &AcceptForm, errors: FieldErrors) -> String {
        let t = Translator::new(Lang::Ja);
        let professions = PROFESSION_KEYS
            .iter()
            .map(|(value, key)| Choice {
                value,
                label: t.get(key),
                selected: typed.profession == *value,
            })
            .collect();
        InvitePage {
            t,
            assets: assets::urls(),
            nav: Nav::hidden(),
            current_path: "/invite/TOKEN",
            csrf: "CSRF",
            action: "/invite/TOKEN",
            association: &preview.association_name,
            admin: false,
            facility: preview.facility_name.as_deref(),
            expires: "2026年3月4日 14:05".into(),
            fixed_email: preview.email.as_deref(),
            existing_account: preview.existing_account,
            typed,
            professions,
            new_sent: typed.kind != "existing",
            has_field_errors: errors.any(),
            password_problems: errors.password_problems.clone(),
            errors,
            error: None,
        }
        .render()
        .expect("renders")
    }

    #[test]
    fn an_in_person_invitation_asks_for_everything_and_offers_an_existing_account() {
        let page = render(
            &preview(None, false),
            &AcceptForm::default(),
            FieldErrors::default(),
        );
        assert_csp_clean(&page);
        assert!(page.contains("みなと川医師会からの招待"));
        assert!(page.contains("訪問看護ステーションみなと"));
        for field in [
            "email",
            "name",
            "name_kana",
            "profession",
            "doctor_kind",
            "password",
        ] {
            assert!(page.contains(&format!("name=\"{field}\"")), "{field}");
        }
        assert!(page.contains("<option value=\"nurse\">看護師</option>"));
        assert!(page.contains("autocomplete=\"new-password\""));
        assert!(page.contains("13文字以上"), "the rules are explained");
        assert_eq!(page.matches("action=\"/invite/TOKEN\"").count(), 2);
        assert!(page.contains("name=\"kind\" value=\"existing\""));
        assert!(page.contains("すでに結びのアカウントをお持ちの方"));
        assert!(!page.contains("class=\"alert\""));
    }

    #[test]
    fn an_invitation_to_an_existing_account_asks_only_for_its_password() {
        let page = render(
            &preview(Some("aoki@minatogawa.example"), true),
            &AcceptForm::default(),
            FieldErrors::default(),
        );
        assert_csp_clean(&page);
        assert!(page.contains("value=\"aoki@minatogawa.example\""));
        assert!(page.contains("autocomplete=\"current-password\""));
        assert!(!page.contains("name=\"name\""));
        assert!(!page.contains("name=\"profession\""));
    }

    #[test]
    fn weak_password_reasons_and_typed_values_come_back_escaped() {
        let t = Translator::new(Lang::Ja);
        let typed = AcceptForm {
            kind: "new".into(),
            email: EVIL.into(),
            name: EVIL.into(),
            name_kana: "あおき".into(),
            profession: "physician".into(),
            doctor_kind: "hospital".into(),
            password: "secret-never-shown".into(),
        };
        let errors = FieldErrors {
            password_problems: ["TOO_SHORT", "TOO_FEW_KINDS", "TOO_COMMON"]
                .iter()
                .map(|r| password_problem(t, r))
                .collect(),
            ..FieldErrors::default()
        };
        let page = render(&preview(None, false), &typed, errors);
        assert_csp_clean(&page);
        assert!(!page.contains("<script>alert"));
        assert!(!page.contains("secret-never-shown"));
        assert!(page.contains("短すぎます"));
        assert!(page.contains("文字の種類が足りません"));
        assert!(page.contains("よく使われるパスワード"));
        assert!(page.contains("id=\"password-problems\""));
        assert!(page.contains("<option value=\"physician\" selected>"));
        assert!(page.contains("value=\"hospital\" checked"));
        assert!(page.contains("role=\"alert\""));
    }

    #[test]
    fn every_profession_has_a_name_in_the_list() {
        let listed: Vec<_> = PROFESSION_KEYS.iter().map(|(p, _)| *p).collect();
        let codes: Vec<_> = Profession::ALL.iter().map(|p| p.code()).collect();
        assert_eq!(listed, codes);
        for (p, key) in PROFESSION_KEYS {
            assert_eq!(*key, format!("invite.profession.{p}"));
        }
    }

    #[test]
    fn only_doctors_send_a_doctor_kind() {
        let preview = InvitationPreview {
            association_slug: "minatogawa".into(),
            association_name: "みなと川医師会".into(),
            role: MemberRole::Member,
            facility_name: None,
            email: None,
            existing_account: false,
            expires_at: chrono::Utc::now(),
        };
        let mut form = AcceptForm {
            kind: "new".into(),
            email: " a@b.example ".into(),
            name: "青木".into(),
            name_kana: "あおき".into(),
            profession: "nurse".into(),
            doctor_kind: "clinic".into(),
            password: "x".into(),
        };
        let input = accept_input(&preview, &form, false);
        assert_eq!(input.doctor_kind, None);
        assert_eq!(input.email.as_deref(), Some("a@b.example"));
        form.profession = "dentist".into();
        assert_eq!(
            accept_input(&preview, &form, false).doctor_kind.as_deref(),
            Some("clinic")
        );
        let existing = accept_input(&preview, &form, true);
        assert_eq!(existing.name, None);
        assert_eq!(existing.password, "x");
    }
}
