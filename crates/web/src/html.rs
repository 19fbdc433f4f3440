//! Turning a rendered template into an HTML response with the headers every page carries.

use crate::i18n::Lang;
use askama::Template;
use axum::response::{IntoResponse, Response};
use http::header::{
    CACHE_CONTROL, CONTENT_LANGUAGE, CONTENT_SECURITY_POLICY, CONTENT_TYPE, REFERRER_POLICY, VARY,
    X_CONTENT_TYPE_OPTIONS,
};
use http::{HeaderName, HeaderValue, StatusCode};

pub(crate) const CSP: &str = "default-src 'self'; img-src 'self' data:; style-src 'self'; \
     script-src 'self'; object-src 'none'; base-uri 'none'; frame-ancestors 'none'; \
     form-action 'self'";

/// Shown only if a template fails to render, which askama makes nearly impossible.
const RENDER_FAILED: &str = "<!doctype html><html lang=\"ja\"><meta charset=\"utf-8\">\
    <title>エラー / Error</title><p>表示できませんでした。 / This page could not be shown.</p>";

/// Renders `page` and wraps it with the HTML headers.
pub(crate) fn respond(status: StatusCode, lang: Lang, page: &impl Template) -> Response {
    match page.render() {
        Ok(body) => with_headers(status, lang, body),
        Err(e) => {
            tracing::error!(error = %e, "template rendering failed");
            with_headers(
                StatusCode::INTERNAL_SERVER_ERROR,
                Lang::Ja,
                RENDER_FAILED.into(),
            )
        }
    }
}

fn with_headers(status: StatusCode, lang: Lang, body: String) -> Response {
    let headers: [(HeaderName, HeaderValue); 8] = [
        (
            CONTENT_TYPE,
            HeaderValue::from_static("text/html; charset=utf-8"),
        ),
        // Pages may later show patient information: never keep them in any cache.
        (CACHE_CONTROL, HeaderValue::from_static("no-store")),
        (CONTENT_LANGUAGE, HeaderValue::from_static(lang.code())),
        (VARY, HeaderValue::from_static("Cookie, Accept-Language")),
        (CONTENT_SECURITY_POLICY, HeaderValue::from_static(CSP)),
        (X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff")),
        (REFERRER_POLICY, HeaderValue::from_static("same-origin")),
        (
            HeaderName::from_static("x-frame-options"),
            HeaderValue::from_static("DENY"),
        ),
    ];
    (status, headers, body).into_response()
}
