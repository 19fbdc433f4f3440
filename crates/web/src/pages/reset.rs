//! A forgotten password: `GET/POST /reset` asks for the e-mail address and always answers the
//! same 「メールを送りました」, whether or not the address has an account; `GET/POST
//! /reset/{token}` (the link in that mail) lets the person choose a new password. Setting it
//! ends every session of the account, so the person then signs in afresh.
//!
//! Like the invitation pages, the token appears only in the path, the pages are never cached,
//! and requests made from them never carry the path in `Referer`.

use super::error;
use super::invite::{password_problem, private_link};
use super::signin::rate_limited;
use crate::assets::{self, AssetUrls};
use crate::ctx::Ctx;
use crate::i18n::Translator;
use crate::layout::Nav;
use askama::Template;
use axum::extract::rejection::FormRejection;
use axum::extract::{Path, State};
use axum::response::Response;
use axum::Form;
use http::StatusCode;
use musubi_domain::{ErrorCode, Services};
use serde::Deserialize;

#[derive(Template)]
#[template(path = "reset.html")]
pub(crate) struct ResetRequestPage<'a> {
    pub t: Translator,
    pub assets: &'static AssetUrls,
    pub nav: Nav<'a>,
    pub current_path: &'a str,
    pub csrf: &'a str,
    pub email: &'a str,
    pub error: Option<String>,
}

#[derive(Template)]
#[template(path = "reset_password.html")]
pub(crate) struct NewPasswordPage<'a> {
    pub t: Translator,
    pub assets: &'static AssetUrls,
    pub nav: Nav<'a>,
    pub current_path: &'a str,
    pub csrf: &'a str,
    pub action: &'a str,
    /// The password rules the new password breaks, in plain words.
    pub password_problems: Vec<&'static str>,
    pub error: Option<String>,
}

/// The pages that only say something: mail sent, password changed, link unusable.
#[derive(Template)]
#[template(path = "reset_notice.html")]
pub(crate) struct ResetNoticePage<'a> {
    pub t: Translator,
    pub assets: &'static AssetUrls,
    pub nav: Nav<'a>,
    pub current_path: &'a str,
    pub title: &'static str,
    pub paragraphs: Vec<&'static str>,
    pub link_href: &'static str,
    pub link_label: &'static str,
}

#[derive(Deserialize)]
pub(crate) struct RequestForm {
    #[serde(default)]
    email: String,
}

#[derive(Deserialize)]
pub(crate) struct NewPasswordForm {
    #[serde(default)]
    password: String,
}

const REQUEST: &str = "/reset";

pub(crate) async fn show_request(ctx: Ctx) -> Response {
    render_request(&ctx, StatusCode::OK, "", None)
}

pub(crate) async fn submit_request(
    State(services): State<Services>,
    ctx: Ctx,
    form: Result<Form<RequestForm>, FormRejection>,
) -> Result<Response, Response> {
    let Ok(Form(form)) = form else {
        return Err(error::bad_request(ctx.lang, REQUEST));
    };
    let t = Translator::new(ctx.lang);
    let email = form.email.trim();
    if email.is_empty() {
        let message = t.get("reset.error.empty").to_owned();
        return Ok(render_request(
            &ctx,
            StatusCode::BAD_REQUEST,
            email,
            Some(message),
        ));
    }
    match services.request_password_reset(email, &ctx.client).await {
        // The same answer whether or not the address has an account.
        Ok(()) => Ok(notice(&ctx, REQUEST, StatusCode::OK, ResetNotice::Sent)),
        Err(e) if e.code == ErrorCode::RateLimited => Ok(rate_limited(&ctx, &e, |ctx, message| {
            render_request(ctx, StatusCode::TOO_MANY_REQUESTS, email, Some(message))
        })),
        Err(e) => Err(ctx.fail("asking for a password reset", e)),
    }
}

pub(crate) async fn show_new_password(ctx: Ctx, Path(token): Path<String>) -> Response {
    let path = format!("/reset/{token}");
    private_link(render_new_password(
        &ctx,
        &path,
        StatusCode::OK,
        Vec::new(),
        None,
    ))
}

pub(crate) async fn submit_new_password(
    State(services): State<Services>,
    ctx: Ctx,
    Path(token): Path<String>,
    form: Result<Form<NewPasswordForm>, FormRejection>,
) -> Response {
    let path = format!("/reset/{token}");
    let Ok(Form(form)) = form else {
        return private_link(error::bad_request(ctx.lang, &path));
    };
    let t = Translator::new(ctx.lang);
    if form.password.is_empty() {
        let message = t.get("reset.error.password_empty").to_owned();
        let res = render_new_password(
            &ctx,
            &path,
            StatusCode::BAD_REQUEST,
            Vec::new(),
            Some(message),
        );
        return private_link(res);
    }
    let res = match services
        .reset_password(&token, &form.password, &ctx.client)
        .await
    {
        // Every session of the account has ended, this browser's included.
        Ok(()) => ctx.clear_session(notice(&ctx, &path, StatusCode::OK, ResetNotice::Done)),
        Err(e) => match e.code {
            ErrorCode::WeakPassword => {
                let problems = e.reasons.iter().map(|r| password_problem(t, r)).collect();
                render_new_password(&ctx, &path, StatusCode::BAD_REQUEST, problems, None)
            }
            ErrorCode::PasswordResetInvalid => {
                notice(&ctx, &path, StatusCode::GONE, ResetNotice::Invalid)
            }
            ErrorCode::RateLimited => rate_limited(&ctx, &e, |ctx, message| {
                let status = StatusCode::TOO_MANY_REQUESTS;
                render_new_password(ctx, &path, status, Vec::new(), Some(message))
            }),
            _ => ctx.fail("resetting a password", e),
        },
    };
    private_link(res)
}

enum ResetNotice {
    Sent,
    Done,
    Invalid,
}

fn notice(ctx: &Ctx, path: &str, status: StatusCode, which: ResetNotice) -> Response {
    let t = Translator::new(ctx.lang);
    let (title, paragraphs, link_href, link_label) = match which {
        ResetNotice::Sent => (
            t.get("reset.sent.title"),
            vec![
                t.get("reset.sent.body"),
                t.get("reset.sent.valid"),
                t.get("reset.sent.not_arrived"),
            ],
            "/signin",
            t.get("reset.back_to_signin"),
        ),
        ResetNotice::Done => (
            t.get("reset.done.title"),
            vec![t.get("reset.done.body"), t.get("reset.done.signed_out")],
            "/signin",
            t.get("layout.sign_in"),
        ),
        ResetNotice::Invalid => (
            t.get("reset.invalid.title"),
            vec![t.get("reset.invalid.body"), t.get("reset.invalid.again")],
            REQUEST,
            t.get("reset.invalid.request_again"),
        ),
    };
    let page = ResetNoticePage {
        t,
        assets: assets::urls(),
        nav: Nav::hidden(),
        current_path: path,
        title,
        paragraphs,
        link_href,
        link_label,
    };
    ctx.respond(status, &page)
}

fn render_request(ctx: &Ctx, status: StatusCode, email: &str, error: Option<String>) -> Response {
    let page = ResetRequestPage {
        t: Translator::new(ctx.lang),
        assets: assets::urls(),
        nav: Nav::hidden(),
        current_path: REQUEST,
        csrf: ctx.csrf.form_token(),
        email,
        error,
    };
    ctx.respond(status, &page)
}

fn render_new_password(
    ctx: &Ctx,
    path: &str,
    status: StatusCode,
    password_problems: Vec<&'static str>,
    error: Option<String>,
) -> Response {
    let page = NewPasswordPage {
        t: Translator::new(ctx.lang),
        assets: assets::urls(),
        nav: Nav::hidden(),
        current_path: path,
        csrf: ctx.csrf.form_token(),
        action: path,
        password_problems,
        error,
    };
    ctx.respond(status, &page)
}
