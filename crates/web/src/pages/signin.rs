//! `GET /signin` and `POST /signin`: e-mail and password.
//!
//! A wrong password and an unknown address get the same page, word for word. The typed
//! address comes back in the form; the password never does.

use super::error;
use crate::assets::{self, AssetUrls};
use crate::ctx::{encode_query_value, Ctx};
use crate::i18n::Translator;
use crate::layout::Nav;
use crate::pages::language::is_local_path;
use askama::Template;
use axum::extract::rejection::FormRejection;
use axum::extract::{Query, State};
use axum::response::Response;
use axum::Form;
use http::header::RETRY_AFTER;
use http::{HeaderValue, StatusCode, Uri};
use musubi_domain::sessions::{SessionKind, SignIn, SignInStep};
use musubi_domain::{AppError, ErrorCode, Services};
use serde::Deserialize;

#[derive(Template)]
#[template(path = "signin.html")]
pub(crate) struct SignInPage<'a> {
    pub t: Translator,
    pub assets: &'static AssetUrls,
    pub nav: Nav<'a>,
    pub current_path: &'a str,
    pub csrf: &'a str,
    /// What the person typed, shown again after a mistake.
    pub email: &'a str,
    /// Where to go after signing in; empty for the home page.
    pub next: &'a str,
    pub error: Option<String>,
    pub notice: Option<&'static str>,
    /// Offer 「パスキーでログイン」 (the server can serve passkeys; the script shows it).
    pub passkeys: bool,
    /// What a form sent after the session ended carried, to copy (nothing was sent).
    pub kept: Option<&'a str>,
}

#[derive(Deserialize, Default)]
pub(crate) struct SignInQuery {
    next: Option<String>,
    /// Set when a half-finished sign-in expired and the person must start again.
    again: Option<String>,
    /// Set when a form was sent after the session had ended.
    expired: Option<String>,
}

#[derive(Deserialize)]
pub(crate) struct SignInForm {
    #[serde(default)]
    email: String,
    #[serde(default)]
    password: String,
    #[serde(default)]
    next: String,
}

/// A `next` worth following: a path on this site.
pub(crate) fn local_next(next: Option<&str>) -> Option<&str> {
    next.filter(|n| !n.is_empty() && is_local_path(n))
}

/// `path`, carrying `next` along when there is one.
pub(crate) fn with_next(path: &str, next: Option<&str>) -> String {
    match next {
        Some(n) => format!("{path}?next={}", encode_query_value(n)),
        None => path.to_owned(),
    }
}

pub(crate) async fn show(
    State(services): State<Services>,
    ctx: Ctx,
    uri: Uri,
) -> Result<Response, Response> {
    let query = Query::<SignInQuery>::try_from_uri(&uri)
        .map(|q| q.0)
        .unwrap_or_default();
    let next = local_next(query.next.as_deref());
    if ctx.viewer(&services).await?.is_some() {
        return Ok(ctx.redirect(next.unwrap_or("/home")));
    }
    let t = Translator::new(ctx.lang);
    let notice = if query.expired.is_some() {
        Some(t.get("signin.expired"))
    } else {
        query.again.is_some().then(|| t.get("signin.again"))
    };
    let passkeys = services.passkeys_available();
    Ok(render(
        &ctx,
        StatusCode::OK,
        "",
        next,
        None,
        notice,
        passkeys,
    ))
}

/// The sign-in page for a form sent after the session had ended: nothing was sent; it says so,
/// shows what the form carried (to copy, for a browser without the drafts of `static/app.js`)
/// and comes back to the page the form was on.
pub(crate) fn expired(ctx: &Ctx, passkeys: bool, kept: &str, back: &str) -> Response {
    let t = Translator::new(ctx.lang);
    let next = local_next(Some(back));
    let kept = (!kept.trim().is_empty()).then_some(kept);
    render_with(
        ctx,
        StatusCode::UNAUTHORIZED,
        "",
        next,
        None,
        Some(t.get("signin.expired")),
        passkeys,
        kept,
    )
}

pub(crate) async fn submit(
    State(services): State<Services>,
    mut ctx: Ctx,
    form: Result<Form<SignInForm>, FormRejection>,
) -> Result<Response, Response> {
    let Ok(Form(form)) = form else {
        return Err(error::bad_request(ctx.lang, "/signin"));
    };
    let t = Translator::new(ctx.lang);
    let next = local_next(Some(&form.next));
    let email = form.email.trim();
    let passkeys = services.passkeys_available();
    if email.is_empty() || form.password.is_empty() {
        let message = t.get("signin.error.empty").to_owned();
        return Ok(render(
            &ctx,
            StatusCode::BAD_REQUEST,
            email,
            next,
            Some(message),
            None,
            passkeys,
        ));
    }
    match services
        .sign_in(email, &form.password, SessionKind::Web, &ctx.client)
        .await
    {
        Ok(SignIn { token, step }) => {
            let to = match step {
                SignInStep::Done => {
                    // A token planted before signing in must not outlive it.
                    ctx.renew_csrf();
                    next.unwrap_or("/home").to_owned()
                }
                SignInStep::SecondFactor => with_next("/signin/code", next),
                SignInStep::EnrolSecondFactor => with_next("/signin/enrol", next),
            };
            Ok(ctx.set_session(ctx.redirect(&to), &token))
        }
        Err(e) => match e.code {
            ErrorCode::InvalidCredentials => {
                let message = t.get("signin.error.invalid").to_owned();
                Ok(render(
                    &ctx,
                    StatusCode::UNAUTHORIZED,
                    email,
                    next,
                    Some(message),
                    None,
                    passkeys,
                ))
            }
            ErrorCode::RateLimited => Ok(rate_limited(&ctx, &e, |ctx, message| {
                render(
                    ctx,
                    StatusCode::TOO_MANY_REQUESTS,
                    email,
                    next,
                    Some(message),
                    None,
                    passkeys,
                )
            })),
            _ => Err(ctx.fail("signing in", e)),
        },
    }
}

/// Renders a page that says how long to wait, and sends `Retry-After` with it.
pub(crate) fn rate_limited(
    ctx: &Ctx,
    e: &AppError,
    render: impl FnOnce(&Ctx, String) -> Response,
) -> Response {
    let seconds = e.retry_after.unwrap_or(60).max(1);
    let minutes = seconds.div_ceil(60);
    let message = Translator::new(ctx.lang).format("error.rate_limited", &minutes.to_string());
    let mut res = render(ctx, message);
    if let Ok(v) = HeaderValue::from_str(&seconds.to_string()) {
        res.headers_mut().insert(RETRY_AFTER, v);
    }
    res
}

fn render(
    ctx: &Ctx,
    status: StatusCode,
    email: &str,
    next: Option<&str>,
    error: Option<String>,
    notice: Option<&'static str>,
    passkeys: bool,
) -> Response {
    render_with(ctx, status, email, next, error, notice, passkeys, None)
}

#[allow(clippy::too_many_arguments)]
fn render_with(
    ctx: &Ctx,
    status: StatusCode,
    email: &str,
    next: Option<&str>,
    error: Option<String>,
    notice: Option<&'static str>,
    passkeys: bool,
    kept: Option<&str>,
) -> Response {
    let path = with_next("/signin", next);
    let page = SignInPage {
        t: Translator::new(ctx.lang),
        assets: assets::urls(),
        nav: Nav::hidden(),
        current_path: &path,
        csrf: ctx.csrf.form_token(),
        email,
        next: next.unwrap_or(""),
        error,
        notice,
        passkeys,
        kept,
    };
    ctx.respond(status, &page)
}
