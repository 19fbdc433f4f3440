//! `GET /a/{slug}/console/invite`: invite someone (by e-mail, or in person with a link and
//! QR code shown once) and see the invitations still waiting;
//! `POST …/invite` creates one, `POST …/invitations/{id}/revoke` withdraws one.

use super::{page_error, Console, ConsoleHead, Flash, FlashQuery};
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
use http::header::RETRY_AFTER;
use http::{HeaderValue, StatusCode, Uri};
use musubi_domain::invitations::{CreatedInvitation, InviteInput, DEFAULT_EXPIRY_DAYS};
use musubi_domain::members::MemberRole;
use musubi_domain::{AppError, ErrorCode, Services};
use serde::Deserialize;
use uuid::Uuid;

/// The validity periods offered (days); the services accept 1 to 30.
const DAY_CHOICES: [i32; 5] = [1, 3, 7, 14, 30];

/// An `<option>` or radio button.
pub(crate) struct Choice {
    pub value: String,
    pub label: String,
    pub selected: bool,
}

/// What the form shows: what was typed, or the defaults.
pub(crate) struct InviteValues {
    pub email: String,
    pub admin: bool,
}

/// Messages next to the fields they are about.
#[derive(Default)]
pub(crate) struct InviteErrors {
    pub email: Option<String>,
    pub role: Option<String>,
    pub facility: Option<String>,
    pub days: Option<String>,
}

impl InviteErrors {
    fn any(&self) -> bool {
        self.email.is_some()
            || self.role.is_some()
            || self.facility.is_some()
            || self.days.is_some()
    }
}

/// A pending invitation, as the list shows it.
pub(crate) struct InvitationCard {
    pub id: String,
    /// The address, or "handed over in person".
    pub to: String,
    pub role: &'static str,
    pub facility: Option<String>,
    pub invited_by: Option<String>,
    pub created: String,
    pub expires: String,
    pub confirm: String,
}

#[derive(Template)]
#[template(path = "console/invite.html")]
pub(crate) struct InvitePage<'a> {
    pub t: Translator,
    pub assets: &'static AssetUrls,
    pub nav: Nav<'a>,
    pub current_path: &'a str,
    pub console: ConsoleHead,
    pub csrf: &'a str,
    pub flash: Option<Flash>,
    /// A problem with the whole form (mail could not be sent, too many invitations).
    pub alert: Option<String>,
    pub values: InviteValues,
    pub errors: InviteErrors,
    pub facilities: Vec<Choice>,
    pub days: Vec<Choice>,
    pub invitations: Vec<InvitationCard>,
}

/// Shown once, right after an in-person invitation was made: its link exists only now.
#[derive(Template)]
#[template(path = "console/invited.html")]
pub(crate) struct InvitedPage<'a> {
    pub t: Translator,
    pub assets: &'static AssetUrls,
    pub nav: Nav<'a>,
    pub current_path: &'a str,
    pub console: ConsoleHead,
    pub link: String,
    /// A standalone SVG made by the services from the link (no script, no style).
    pub qr_svg: String,
    pub role: &'static str,
    pub facility: Option<String>,
    pub expires: String,
}

#[derive(Deserialize, Default)]
pub(crate) struct InviteForm {
    #[serde(default)]
    email: String,
    #[serde(default)]
    role: String,
    #[serde(default)]
    facility: String,
    #[serde(default)]
    days: String,
}

fn role_label(t: Translator, role: MemberRole) -> &'static str {
    match role {
        MemberRole::Admin => t.get("console.role.admin"),
        MemberRole::Member => t.get("console.role.member"),
    }
}

pub(crate) async fn show(
    State(services): State<Services>,
    ctx: Ctx,
    Path(slug): Path<String>,
    uri: Uri,
) -> Result<Response, Response> {
    let c = Console::open(&services, &ctx, &slug).await?;
    let flash = FlashQuery::from_uri(&uri).message(Translator::new(ctx.lang), None);
    let form = Filled {
        values: InviteValues {
            email: String::new(),
            admin: false,
        },
        facility: None,
        days: DEFAULT_EXPIRY_DAYS,
        errors: InviteErrors::default(),
        alert: None,
    };
    render(&services, &ctx, &c, StatusCode::OK, form, flash).await
}

/// The form as it is to be shown again.
struct Filled {
    values: InviteValues,
    facility: Option<Uuid>,
    days: i32,
    errors: InviteErrors,
    alert: Option<String>,
}

async fn render(
    services: &Services,
    ctx: &Ctx,
    c: &Console,
    status: StatusCode,
    form: Filled,
    flash: Option<Flash>,
) -> Result<Response, Response> {
    // Listing the invitations authorizes (and audits a refusal) before anything is shown.
    let pending = services
        .list_invitations(&c.actor())
        .await
        .map_err(|e| page_error(ctx, "listing invitations", e))?;
    let facilities = services
        .list_facilities(&c.actor())
        .await
        .map_err(|e| page_error(ctx, "listing facilities", e))?;
    let t = Translator::new(ctx.lang);
    let facilities = facilities
        .into_iter()
        .map(|f| Choice {
            selected: form.facility == Some(f.id),
            value: f.id.to_string(),
            label: f.name,
        })
        .collect();
    let days = DAY_CHOICES
        .iter()
        .map(|d| Choice {
            value: d.to_string(),
            label: if *d == DEFAULT_EXPIRY_DAYS {
                t.format("console.invite.days_recommended", &d.to_string())
            } else {
                t.format("console.invite.days_n", &d.to_string())
            },
            selected: *d == form.days,
        })
        .collect();
    let invitations = pending
        .into_iter()
        .map(|i| {
            let to = i
                .email
                .clone()
                .unwrap_or_else(|| t.get("console.invite.in_person").to_owned());
            InvitationCard {
                id: i.id.to_string(),
                confirm: t.format("console.invite.confirm_revoke", &to),
                to,
                role: role_label(t, i.role),
                facility: i.facility_name,
                invited_by: i.invited_by_name,
                created: datetime::date_time(ctx.lang, i.created_at),
                expires: datetime::date_time(ctx.lang, i.expires_at),
            }
        })
        .collect();
    let path = c.path("invite");
    let page = InvitePage {
        t,
        assets: assets::urls(),
        nav: Nav::signed_in(&c.viewer.user().name, ctx.csrf.form_token()),
        current_path: &path,
        console: c.head("invite"),
        csrf: ctx.csrf.form_token(),
        flash,
        alert: form.alert,
        values: form.values,
        errors: form.errors,
        facilities,
        days,
        invitations,
    };
    Ok(ctx.respond(status, &page))
}

pub(crate) async fn submit(
    State(services): State<Services>,
    ctx: Ctx,
    Path(slug): Path<String>,
    form: Result<Form<InviteForm>, FormRejection>,
) -> Result<Response, Response> {
    let c = Console::open(&services, &ctx, &slug).await?;
    let form = form.map(|f| f.0).unwrap_or_default();
    let t = Translator::new(ctx.lang);
    let mut filled = Filled {
        values: InviteValues {
            email: form.email.trim().to_owned(),
            admin: MemberRole::from_code(&form.role) == Some(MemberRole::Admin),
        },
        facility: None,
        days: DEFAULT_EXPIRY_DAYS,
        errors: InviteErrors::default(),
        alert: None,
    };
    let role = match MemberRole::from_code(&form.role) {
        Some(role) => role,
        None => {
            filled.errors.role = Some(t.get("console.invite.error_role").to_owned());
            MemberRole::Member
        }
    };
    match form.facility.trim() {
        "" => {}
        f => match Uuid::parse_str(f) {
            Ok(id) => filled.facility = Some(id),
            Err(_) => {
                filled.errors.facility = Some(t.get("console.invite.error_facility").to_owned())
            }
        },
    }
    match form.days.trim().parse::<i32>() {
        Ok(d) => filled.days = d,
        Err(_) => filled.errors.days = Some(t.get("console.invite.error_days").to_owned()),
    }
    if filled.errors.any() {
        return render(
            &services,
            &ctx,
            &c,
            StatusCode::UNPROCESSABLE_ENTITY,
            filled,
            None,
        )
        .await;
    }

    let input = InviteInput {
        email: Some(filled.values.email.clone()).filter(|e| !e.is_empty()),
        role,
        facility_id: filled.facility,
        expires_in_days: Some(filled.days),
    };
    match services.invite_member(&c.actor(), &input).await {
        Ok(created) => Ok(created_page(&ctx, &c, created)),
        Err(e) => refused(&services, &ctx, &c, filled, e).await,
    }
}

/// An e-mail invitation: back to the list with 「招待メールを送りました」. In person: the link
/// and its QR code, this once.
fn created_page(ctx: &Ctx, c: &Console, created: CreatedInvitation) -> Response {
    let (Some(link), Some(qr_svg)) = (created.link, created.qr_svg) else {
        return ctx.redirect(&format!("{}?done=invite_sent", c.path("invite")));
    };
    let t = Translator::new(ctx.lang);
    let path = c.path("invite");
    let page = InvitedPage {
        t,
        assets: assets::urls(),
        nav: Nav::signed_in(&c.viewer.user().name, ctx.csrf.form_token()),
        current_path: &path,
        console: c.head("invite"),
        link,
        qr_svg,
        role: role_label(t, created.invitation.role),
        facility: created.invitation.facility_name,
        expires: datetime::date_time(ctx.lang, created.invitation.expires_at),
    };
    ctx.respond(StatusCode::OK, &page)
}

/// The form again, with what went wrong next to the field it is about.
async fn refused(
    services: &Services,
    ctx: &Ctx,
    c: &Console,
    mut filled: Filled,
    e: AppError,
) -> Result<Response, Response> {
    let t = Translator::new(ctx.lang);
    let status = match e.code {
        ErrorCode::InvalidInput => {
            let text = |key| Some(t.get(key).to_owned());
            match e.field {
                Some("email") => filled.errors.email = text("console.invite.error_email"),
                Some("expiresInDays") => filled.errors.days = text("console.invite.error_days"),
                Some("facilityId") => {
                    filled.errors.facility = text("console.invite.error_facility")
                }
                _ => filled.alert = text("console.error.invalid"),
            }
            StatusCode::UNPROCESSABLE_ENTITY
        }
        ErrorCode::AlreadyMember => {
            filled.errors.email = Some(t.get("console.invite.error_already_member").to_owned());
            StatusCode::CONFLICT
        }
        ErrorCode::MailFailed => {
            tracing::warn!(error = ?e.source, "the invitation e-mail could not be sent");
            filled.alert = Some(t.get("console.error.mail_failed").to_owned());
            StatusCode::BAD_GATEWAY
        }
        ErrorCode::RateLimited => {
            let seconds = e.retry_after.unwrap_or(60).max(1);
            let minutes = seconds.div_ceil(60).to_string();
            filled.alert = Some(t.format("console.error.rate_limited", &minutes));
            let mut page = render(
                services,
                ctx,
                c,
                StatusCode::TOO_MANY_REQUESTS,
                filled,
                None,
            )
            .await?;
            if let Ok(v) = HeaderValue::from_str(&seconds.to_string()) {
                page.headers_mut().insert(RETRY_AFTER, v);
            }
            return Ok(page);
        }
        _ => return Err(page_error(ctx, "inviting", e)),
    };
    render(services, ctx, c, status, filled, None).await
}

pub(crate) async fn revoke(
    State(services): State<Services>,
    ctx: Ctx,
    Path((slug, id)): Path<(String, String)>,
) -> Result<Response, Response> {
    let c = Console::open(&services, &ctx, &slug).await?;
    // A malformed id is an invitation nobody has: authorized first, then "not found".
    let id = Uuid::parse_str(&id).unwrap_or(Uuid::nil());
    let result = services.revoke_invitation(&c.actor(), id).await;
    Ok(c.after_action(&ctx, "invite", result, "invitation_revoked", None))
}
