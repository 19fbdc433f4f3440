//! `POST /signout`: ends this browser's session and goes back to the top page.

use crate::ctx::Ctx;
use axum::extract::State;
use axum::response::Response;
use musubi_domain::Services;

pub(crate) async fn submit(
    State(services): State<Services>,
    ctx: Ctx,
) -> Result<Response, Response> {
    if let Some(viewer) = ctx.viewer(&services).await? {
        services
            .sign_out(&viewer, &ctx.client)
            .await
            .map_err(|e| ctx.fail("signing out", e))?;
    }
    // A half-finished sign-in has no session worth ending: it expires within minutes.
    // Forgetting the cookie is enough.
    Ok(ctx.clear_session(ctx.redirect("/")))
}
