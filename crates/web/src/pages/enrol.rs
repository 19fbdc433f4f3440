//! Setting up the second factor (an authenticator app), step by step, in two places:
//! `GET/POST /signin/enrol` when an association requires it during sign-in, and
//! `GET/POST /me/security/totp` for anyone signed in who wants it. Confirming shows the ten
//! recovery codes, once.

use super::error;
use super::signin::{local_next, rate_limited, with_next};
use crate::assets::{self, AssetUrls};
use crate::ctx::Ctx;
use crate::i18n::Translator;
use crate::layout::Nav;
use askama::Template;
use axum::extract::rejection::FormRejection;
use axum::extract::{Query, State};
use axum::response::Response;
use axum::Form;
use http::{StatusCode, Uri};
use musubi_auth::totp::{self, TotpSecret};
use musubi_domain::second_factor::{Enrolling, TotpEnrolment};
use musubi_domain::sessions::{HalfSession, Viewer};
use musubi_domain::{ErrorCode, Services};
use serde::Deserialize;

#[derive(Template)]
#[template(path = "enrol.html")]
pub(crate) struct EnrolPage<'a> {
    pub t: Translator,
    pub assets: &'static AssetUrls,
    pub nav: Nav<'a>,
    pub current_path: &'a str,
    pub csrf: &'a str,
    /// Where the confirming form posts to.
    pub action: &'a str,
    /// During sign-in (an association requires it) rather than from the security page.
    pub for_sign_in: bool,
    /// The key for typing by hand, in groups of four characters.
    pub key_groups: Vec<String>,
    /// The QR code: SVG markup made by the services (no script, no style).
    pub qr_svg: &'a str,
    /// The `otpauth://` link that opens an authenticator app on this phone.
    pub uri: &'a str,
    pub email: &'a str,
    pub next: &'a str,
    pub error: Option<String>,
}

#[derive(Template)]
#[template(path = "recovery_codes.html")]
pub(crate) struct RecoveryCodesPage<'a> {
    pub t: Translator,
    pub assets: &'static AssetUrls,
    pub nav: Nav<'a>,
    pub current_path: &'a str,
    pub codes: &'a [String],
    pub continue_to: &'a str,
}

#[derive(Deserialize, Default)]
pub(crate) struct NextQuery {
    next: Option<String>,
}

#[derive(Deserialize)]
pub(crate) struct ConfirmForm {
    #[serde(default)]
    code: String,
    #[serde(default)]
    next: String,
}

const START_AGAIN: &str = "/signin?again=1";
const SIGN_IN_ENROL: &str = "/signin/enrol";
const SECURITY_ENROL: &str = "/me/security/totp";

/// Whose second factor is being set up.
enum Who {
    /// Half-way through signing in.
    Half(HalfSession),
    /// Signed in, from the security page.
    Viewer(Viewer),
}

impl Who {
    fn enrolling(&self) -> Enrolling<'_> {
        match self {
            Who::Half(h) => Enrolling::HalfSession(h),
            Who::Viewer(v) => Enrolling::Viewer(v),
        }
    }

    fn name(&self) -> &str {
        match self {
            Who::Half(h) => &h.user.name,
            Who::Viewer(v) => &v.user().name,
        }
    }

    fn email(&self) -> &str {
        match self {
            Who::Half(h) => &h.user.email,
            Who::Viewer(v) => &v.user().email,
        }
    }

    /// The secret generated earlier and not confirmed yet. Showing it again (rather than a
    /// new one) keeps what the person already scanned valid across reloads and typos.
    fn pending(&self) -> Option<TotpEnrolment> {
        let user = match self {
            Who::Half(h) => &h.user,
            Who::Viewer(v) => v.user(),
        };
        if user.totp_enabled_at.is_some() {
            return None;
        }
        let secret = TotpSecret::from_bytes(user.totp_secret.as_deref()?).ok()?;
        let uri = secret.provisioning_uri(&user.email);
        let qr_svg = totp::qr_code_svg(&uri).ok()?;
        Some(TotpEnrolment {
            secret_base32: secret.to_base32(),
            uri,
            qr_svg,
        })
    }

    fn for_sign_in(&self) -> bool {
        matches!(self, Who::Half(_))
    }
}

/// The half session that must enrol, or where to send whoever else asks.
async fn half_to_enrol(
    services: &Services,
    ctx: &Ctx,
    next: Option<&str>,
) -> Result<HalfSession, Response> {
    if ctx.viewer(services).await?.is_some() {
        return Err(ctx.redirect(next.unwrap_or("/home")));
    }
    match ctx.half_session(services).await? {
        None => Err(ctx.redirect(START_AGAIN)),
        Some(half) if !half.must_enrol => Err(ctx.redirect(&with_next("/signin/code", next))),
        Some(half) => Ok(half),
    }
}

/// The signed-in person without a second factor yet; others go to the security page.
async fn viewer_to_enrol(services: &Services, ctx: &Ctx) -> Result<Viewer, Response> {
    let viewer = ctx.require_viewer(services).await?;
    if viewer.user().totp_enabled_at.is_some() {
        return Err(ctx.redirect("/me/security"));
    }
    Ok(viewer)
}

fn next_from(uri: &Uri) -> Option<String> {
    Query::<NextQuery>::try_from_uri(uri)
        .ok()
        .and_then(|q| q.0.next)
}

pub(crate) async fn show_for_sign_in(
    State(services): State<Services>,
    ctx: Ctx,
    uri: Uri,
) -> Result<Response, Response> {
    let next = next_from(&uri);
    let next = local_next(next.as_deref());
    let half = half_to_enrol(&services, &ctx, next).await?;
    show(&services, &ctx, Who::Half(half), next).await
}

pub(crate) async fn show_for_viewer(
    State(services): State<Services>,
    ctx: Ctx,
) -> Result<Response, Response> {
    let viewer = viewer_to_enrol(&services, &ctx).await?;
    show(&services, &ctx, Who::Viewer(viewer), None).await
}

pub(crate) async fn confirm_for_sign_in(
    State(services): State<Services>,
    ctx: Ctx,
    form: Result<Form<ConfirmForm>, FormRejection>,
) -> Result<Response, Response> {
    let Ok(Form(form)) = form else {
        return Err(error::bad_request(ctx.lang, SIGN_IN_ENROL));
    };
    let next = local_next(Some(&form.next));
    let half = half_to_enrol(&services, &ctx, next).await?;
    confirm(&services, ctx, Who::Half(half), &form.code, next).await
}

pub(crate) async fn confirm_for_viewer(
    State(services): State<Services>,
    ctx: Ctx,
    form: Result<Form<ConfirmForm>, FormRejection>,
) -> Result<Response, Response> {
    let Ok(Form(form)) = form else {
        return Err(error::bad_request(ctx.lang, SECURITY_ENROL));
    };
    let viewer = viewer_to_enrol(&services, &ctx).await?;
    confirm(&services, ctx, Who::Viewer(viewer), &form.code, None).await
}

async fn show(
    services: &Services,
    ctx: &Ctx,
    who: Who,
    next: Option<&str>,
) -> Result<Response, Response> {
    let enrolment = match who.pending() {
        Some(e) => e,
        None => services
            .start_totp_enrolment(who.enrolling())
            .await
            .map_err(|e| ctx.fail("starting a second-factor enrolment", e))?,
    };
    Ok(render(ctx, StatusCode::OK, &who, &enrolment, next, None))
}

async fn confirm(
    services: &Services,
    mut ctx: Ctx,
    who: Who,
    code: &str,
    next: Option<&str>,
) -> Result<Response, Response> {
    let t = Translator::new(ctx.lang);
    let again = if who.for_sign_in() {
        with_next(SIGN_IN_ENROL, next)
    } else {
        SECURITY_ENROL.to_owned()
    };
    // Without a pending secret there is nothing to confirm: start over.
    let Some(enrolment) = who.pending() else {
        return Ok(ctx.redirect(&again));
    };
    let code = code.trim();
    if code.is_empty() {
        let message = t.get("code.error.empty").to_owned();
        let status = StatusCode::BAD_REQUEST;
        return Ok(render(&ctx, status, &who, &enrolment, next, Some(message)));
    }
    match services
        .confirm_totp_enrolment(who.enrolling(), code, &ctx.client)
        .await
    {
        Ok(enrolled) => {
            if enrolled.new_token.is_some() {
                // Now signed in: a token planted before must not outlive it.
                ctx.renew_csrf();
            }
            let continue_to = next.unwrap_or("/home");
            let page = RecoveryCodesPage {
                t,
                assets: assets::urls(),
                nav: Nav::signed_in(who.name(), ctx.csrf.form_token()),
                current_path: "/home",
                codes: &enrolled.recovery_codes,
                continue_to,
            };
            let res = ctx.respond(StatusCode::OK, &page);
            Ok(match &enrolled.new_token {
                Some(token) => ctx.set_session(res, token),
                None => res,
            })
        }
        Err(e) => match e.code {
            ErrorCode::InvalidSecondFactor => {
                let message = t.get("enrol.error.invalid").to_owned();
                let status = StatusCode::UNAUTHORIZED;
                Ok(render(&ctx, status, &who, &enrolment, next, Some(message)))
            }
            ErrorCode::RateLimited => Ok(rate_limited(&ctx, &e, |ctx, message| {
                let status = StatusCode::TOO_MANY_REQUESTS;
                render(ctx, status, &who, &enrolment, next, Some(message))
            })),
            ErrorCode::InvalidInput => Ok(ctx.redirect(&again)),
            ErrorCode::Unauthenticated => Ok(ctx.redirect(START_AGAIN)),
            _ => Err(ctx.fail("confirming a second-factor enrolment", e)),
        },
    }
}

/// "ABCDEFGH…" as ["ABCD", "EFGH", …], for typing by hand.
fn groups_of_four(key: &str) -> Vec<String> {
    key.chars()
        .collect::<Vec<_>>()
        .chunks(4)
        .map(|c| c.iter().collect())
        .collect()
}

fn render(
    ctx: &Ctx,
    status: StatusCode,
    who: &Who,
    enrolment: &TotpEnrolment,
    next: Option<&str>,
    error: Option<String>,
) -> Response {
    let (action, path, nav) = match who {
        Who::Half(_) => (SIGN_IN_ENROL, with_next(SIGN_IN_ENROL, next), Nav::hidden()),
        Who::Viewer(v) => (
            SECURITY_ENROL,
            SECURITY_ENROL.to_owned(),
            Nav::signed_in(&v.user().name, ctx.csrf.form_token()),
        ),
    };
    let page = EnrolPage {
        t: Translator::new(ctx.lang),
        assets: assets::urls(),
        nav,
        current_path: &path,
        csrf: ctx.csrf.form_token(),
        action,
        for_sign_in: who.for_sign_in(),
        key_groups: groups_of_four(&enrolment.secret_base32),
        qr_svg: &enrolment.qr_svg,
        uri: &enrolment.uri,
        email: who.email(),
        next: next.unwrap_or(""),
        error,
    };
    ctx.respond(status, &page)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_key_is_shown_in_groups_of_four() {
        assert_eq!(
            groups_of_four("ABCDEFGHIJ"),
            vec!["ABCD".to_owned(), "EFGH".to_owned(), "IJ".to_owned()]
        );
        assert_eq!(groups_of_four("").len(), 0);
    }
}
