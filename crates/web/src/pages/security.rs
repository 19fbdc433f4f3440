//! `GET /me/security`: whether the second factor is set up, and the way to set it up; the
//! person's passkeys (see [`super::passkey`]).

use crate::assets::{self, AssetUrls};
use crate::ctx::Ctx;
use crate::datetime;
use crate::i18n::Translator;
use crate::layout::Nav;
use askama::Template;
use axum::extract::State;
use axum::response::Response;
use http::{StatusCode, Uri};
use musubi_domain::Services;

#[derive(Template)]
#[template(path = "security.html")]
pub(crate) struct SecurityPage<'a> {
    pub t: Translator,
    pub assets: &'static AssetUrls,
    pub nav: Nav<'a>,
    pub current_path: &'a str,
    /// The date the second factor was set up, when it is.
    pub enabled_since: Option<String>,
    pub passkeys: super::passkey::PasskeySection,
}

pub(crate) async fn show(
    State(services): State<Services>,
    ctx: Ctx,
    uri: Uri,
) -> Result<Response, Response> {
    let viewer = ctx.require_viewer(&services).await?;
    let passkeys = super::passkey::section(&services, &ctx, &viewer, &uri).await?;
    let page = SecurityPage {
        t: Translator::new(ctx.lang),
        assets: assets::urls(),
        nav: Nav::signed_in(&viewer.user().name, ctx.csrf.form_token()),
        current_path: "/me/security",
        enabled_since: viewer
            .user()
            .totp_enabled_at
            .map(|at| datetime::date(ctx.lang, at)),
        passkeys,
    };
    Ok(ctx.respond(StatusCode::OK, &page))
}
