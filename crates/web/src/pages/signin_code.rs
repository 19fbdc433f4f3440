//! `GET/POST /signin/code`: the second step for people with a second factor — the six digits
//! from their authenticator app, or one of their recovery codes.

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
use musubi_domain::{ErrorCode, Services};
use serde::Deserialize;

#[derive(Template)]
#[template(path = "signin_code.html")]
pub(crate) struct CodePage<'a> {
    pub t: Translator,
    pub assets: &'static AssetUrls,
    pub nav: Nav<'a>,
    pub current_path: &'a str,
    pub csrf: &'a str,
    pub next: &'a str,
    pub error: Option<String>,
    /// Open the recovery-code part: the person was using it.
    pub recovery_open: bool,
}

#[derive(Deserialize, Default)]
pub(crate) struct NextQuery {
    next: Option<String>,
}

#[derive(Deserialize)]
pub(crate) struct CodeForm {
    #[serde(default)]
    code: String,
    /// `recovery` when sent from the recovery-code form.
    #[serde(default)]
    kind: String,
    #[serde(default)]
    next: String,
}

/// Where someone without a waiting half session goes: back to the start.
const START_AGAIN: &str = "/signin?again=1";

pub(crate) async fn show(
    State(services): State<Services>,
    ctx: Ctx,
    uri: Uri,
) -> Result<Response, Response> {
    let query = Query::<NextQuery>::try_from_uri(&uri)
        .map(|q| q.0)
        .unwrap_or_default();
    let next = local_next(query.next.as_deref());
    if ctx.viewer(&services).await?.is_some() {
        return Ok(ctx.redirect(next.unwrap_or("/home")));
    }
    match ctx.half_session(&services).await? {
        None => Ok(ctx.redirect(START_AGAIN)),
        Some(half) if half.must_enrol => Ok(ctx.redirect(&with_next("/signin/enrol", next))),
        Some(_) => Ok(render(&ctx, StatusCode::OK, next, None, false)),
    }
}

pub(crate) async fn submit(
    State(services): State<Services>,
    mut ctx: Ctx,
    form: Result<Form<CodeForm>, FormRejection>,
) -> Result<Response, Response> {
    let Ok(Form(form)) = form else {
        return Err(error::bad_request(ctx.lang, "/signin/code"));
    };
    let t = Translator::new(ctx.lang);
    let next = local_next(Some(&form.next));
    let recovery = form.kind == "recovery";
    let Some(token) = ctx.session_token().map(str::to_owned) else {
        return Ok(ctx.redirect(START_AGAIN));
    };
    let code = form.code.trim();
    if code.is_empty() {
        let message = t.get("code.error.empty").to_owned();
        return Ok(render(
            &ctx,
            StatusCode::BAD_REQUEST,
            next,
            Some(message),
            recovery,
        ));
    }
    match services
        .complete_second_factor(&token, code, &ctx.client)
        .await
    {
        Ok(new_token) => {
            ctx.renew_csrf();
            let res = ctx.redirect(next.unwrap_or("/home"));
            Ok(ctx.set_session(res, &new_token))
        }
        Err(e) => match e.code {
            ErrorCode::InvalidSecondFactor => {
                let key = if recovery {
                    "code.error.invalid_recovery"
                } else {
                    "code.error.invalid"
                };
                let message = t.get(key).to_owned();
                Ok(render(
                    &ctx,
                    StatusCode::UNAUTHORIZED,
                    next,
                    Some(message),
                    recovery,
                ))
            }
            ErrorCode::RateLimited => Ok(rate_limited(&ctx, &e, |ctx, message| {
                render(
                    ctx,
                    StatusCode::TOO_MANY_REQUESTS,
                    next,
                    Some(message),
                    recovery,
                )
            })),
            ErrorCode::Unauthenticated => Ok(ctx.redirect(START_AGAIN)),
            ErrorCode::SecondFactorEnrolmentRequired => {
                Ok(ctx.redirect(&with_next("/signin/enrol", next)))
            }
            _ => Err(ctx.fail("checking a second-factor code", e)),
        },
    }
}

fn render(
    ctx: &Ctx,
    status: StatusCode,
    next: Option<&str>,
    error: Option<String>,
    recovery_open: bool,
) -> Response {
    let path = with_next("/signin/code", next);
    let page = CodePage {
        t: Translator::new(ctx.lang),
        assets: assets::urls(),
        nav: Nav::hidden(),
        current_path: &path,
        csrf: ctx.csrf.form_token(),
        next: next.unwrap_or(""),
        error,
        recovery_open,
    };
    ctx.respond(status, &page)
}
