//! The one page for a person whom no association counts as an active member any more (every
//! association they belonged to has deactivated them): it says so and offers to sign out.
//! Every page that needs a signed-in person shows this instead (see `Ctx::require_viewer`).

use crate::assets::{self, AssetUrls};
use crate::ctx::Ctx;
use crate::i18n::Translator;
use crate::layout::Nav;
use askama::Template;
use axum::response::Response;
use http::StatusCode;
use musubi_domain::sessions::Viewer;

#[derive(Template)]
#[template(path = "no_membership.html")]
pub(crate) struct NoMembershipPage<'a> {
    pub t: Translator,
    pub assets: &'static AssetUrls,
    pub nav: Nav<'a>,
    pub current_path: &'a str,
    pub csrf: &'a str,
}

/// 403 with the page: signed in, but nothing is open to them.
pub(crate) fn page(ctx: &Ctx, viewer: &Viewer) -> Response {
    let path = ctx.path.split('?').next().unwrap_or("/");
    let page = NoMembershipPage {
        t: Translator::new(ctx.lang),
        assets: assets::urls(),
        nav: Nav::signed_in(&viewer.user().name, ctx.csrf.form_token()),
        current_path: path,
        csrf: ctx.csrf.form_token(),
    };
    ctx.respond(StatusCode::FORBIDDEN, &page)
}
