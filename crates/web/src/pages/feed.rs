//! Personal calendar feeds (`/calendar/feed/<token>.ics`): what a phone's calendar app fetches
//! every so often, without a session. The secret token is the whole authorization; an unknown
//! or revoked one is a plain 404, like any other path.

use crate::ctx::Ctx;
use crate::pages::place::{not_found_page, page_error};
use axum::extract::{Path, State};
use axum::http::header::{CACHE_CONTROL, CONTENT_DISPOSITION, CONTENT_TYPE};
use axum::http::{HeaderName, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use musubi_domain::Services;

pub(crate) async fn show(
    State(services): State<Services>,
    ctx: Ctx,
    Path(file): Path<String>,
) -> Result<Response, Response> {
    let Some(token) = file.strip_suffix(".ics") else {
        return Err(not_found_page(&ctx));
    };
    let Some(text) = services
        .feed_ics(token, &ctx.client)
        .await
        .map_err(|e| page_error(&ctx, "serving a calendar feed", e))?
    else {
        return Err(not_found_page(&ctx));
    };
    Ok((
        StatusCode::OK,
        [
            (
                CONTENT_TYPE,
                HeaderValue::from_static("text/calendar; charset=utf-8"),
            ),
            (
                CONTENT_DISPOSITION,
                HeaderValue::from_static("inline; filename=\"musubi.ics\""),
            ),
            // What a feed holds may change at any time and may name patients.
            (CACHE_CONTROL, HeaderValue::from_static("private, no-store")),
            (
                HeaderName::from_static("x-content-type-options"),
                HeaderValue::from_static("nosniff"),
            ),
            (
                HeaderName::from_static("referrer-policy"),
                HeaderValue::from_static("no-referrer"),
            ),
        ],
        text,
    )
        .into_response())
}
