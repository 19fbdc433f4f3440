//! Error pages: plain words for people, and at most a stable code for the help desk.

use crate::assets::{self, AssetUrls};
use crate::html;
use crate::i18n::{Lang, Translator};
use crate::layout::Nav;
use askama::Template;
use axum::response::Response;
use http::StatusCode;
use musubi_domain::ErrorCode;

#[derive(Template)]
#[template(path = "error.html")]
pub(crate) struct ErrorPage<'a> {
    pub t: Translator,
    pub assets: &'static AssetUrls,
    pub nav: Nav<'a>,
    pub current_path: &'a str,
    pub title: &'static str,
    pub message: &'static str,
    /// A stable code, never internal text.
    pub code: Option<&'static str>,
    /// Offer to reload: worth it when the failure may pass.
    pub retry: bool,
    /// The text of a refused form, to copy (nothing was sent).
    pub kept: Option<String>,
}

pub(crate) fn respond(status: StatusCode, lang: Lang, page: &ErrorPage<'_>) -> Response {
    html::respond(status, lang, page)
}

/// 500: something on our side failed; the code helps whoever answers the phone.
pub(crate) fn server_error(lang: Lang, current_path: &str, code: ErrorCode) -> Response {
    let t = Translator::new(lang);
    let message = match code {
        ErrorCode::AssociationUnavailable => t.get("error.server.unavailable"),
        ErrorCode::DatabaseUnavailable => t.get("error.server.database"),
        ErrorCode::StorageFull => t.get("error.server.storage"),
        _ => t.get("error.server.message"),
    };
    let page = ErrorPage {
        t,
        assets: assets::urls(),
        nav: Nav::hidden(),
        current_path,
        title: t.get("error.server.title"),
        message,
        code: Some(code.as_str()),
        retry: true,
        kept: None,
    };
    // Not bugs: the database is restarting or unreachable (Musubi reconnects by itself), or
    // the disk is full (writing works again once the operator frees space).
    let retry_after = match code {
        ErrorCode::DatabaseUnavailable => Some(5u64),
        ErrorCode::StorageFull => Some(60),
        _ => None,
    };
    if let Some(secs) = retry_after {
        let mut res = respond(StatusCode::SERVICE_UNAVAILABLE, lang, &page);
        res.headers_mut()
            .insert(http::header::RETRY_AFTER, http::HeaderValue::from(secs));
        return res;
    }
    respond(StatusCode::INTERNAL_SERVER_ERROR, lang, &page)
}

/// 400: the link itself is wrong, so retrying will not help.
pub(crate) fn bad_request(lang: Lang, current_path: &str) -> Response {
    let t = Translator::new(lang);
    let page = ErrorPage {
        t,
        assets: assets::urls(),
        nav: Nav::hidden(),
        current_path,
        title: t.get("error.bad_request.title"),
        message: t.get("error.bad_request.message"),
        code: None,
        retry: false,
        kept: None,
    };
    respond(StatusCode::BAD_REQUEST, lang, &page)
}

/// 429: this session (or address) asked too much too quickly. Said calmly: nothing was done,
/// and waiting a little is all it takes. `Retry-After` tells clients how long.
pub fn too_many_requests(
    headers: &http::HeaderMap,
    current_path: &str,
    retry_after_secs: u64,
) -> Response {
    rate_limited(
        crate::i18n::negotiate(headers),
        current_path,
        retry_after_secs,
    )
}

pub(crate) fn rate_limited(lang: Lang, current_path: &str, retry_after_secs: u64) -> Response {
    come_back_later(
        StatusCode::TOO_MANY_REQUESTS,
        lang,
        current_path,
        ErrorCode::RateLimited,
        (
            "error.rate_limited_page.title",
            "error.rate_limited_page.message",
        ),
        retry_after_secs,
    )
}

/// 503: the server is busier than it can serve well; nothing was started.
pub fn overloaded(
    headers: &http::HeaderMap,
    current_path: &str,
    retry_after_secs: u64,
) -> Response {
    come_back_later(
        StatusCode::SERVICE_UNAVAILABLE,
        crate::i18n::negotiate(headers),
        current_path,
        ErrorCode::Overloaded,
        ("error.overloaded.title", "error.overloaded.message"),
        retry_after_secs,
    )
}

/// A calm "wait a little" page with its code and `Retry-After`.
fn come_back_later(
    status: StatusCode,
    lang: Lang,
    current_path: &str,
    code: ErrorCode,
    (title, message): (&'static str, &'static str),
    retry_after_secs: u64,
) -> Response {
    let t = Translator::new(lang);
    let page = ErrorPage {
        t,
        assets: assets::urls(),
        nav: Nav::hidden(),
        current_path,
        title: t.get(title),
        message: t.get(message),
        code: Some(code.as_str()),
        retry: true,
        kept: None,
    };
    let mut res = respond(status, lang, &page);
    res.headers_mut().insert(
        http::header::RETRY_AFTER,
        http::HeaderValue::from(retry_after_secs.max(1)),
    );
    res
}
