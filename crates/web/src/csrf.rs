//! Cross-site request forgery protection for every state-changing form.
//!
//! Each browser gets a random token in the `musubi_csrf` cookie (HttpOnly, SameSite=Strict),
//! set whenever a page is rendered without one. Every form echoes it in a hidden `csrf` field;
//! the few JSON calls made by the pages' scripts (passkeys) send it in the `X-CSRF-Token`
//! header instead, read from the page's form. Pages carry the token masked with a fresh random
//! pad each time (`musubi_auth::token::mask`), so compressed pages leak nothing about it from
//! their size (BREACH); the cookie holds it plain. [`guard`] runs in front of every web route and,
//! for anything but GET/HEAD/OPTIONS: refuses an `Origin` that is not this host, refuses bodies
//! that are neither a plain form nor JSON, and compares the field (or header) with the cookie in
//! constant time. A refusal is a 403 page and the handler
//! never runs, so nothing changes. A cross-site page can neither read the cookie nor make the
//! browser send it (Strict), so it cannot supply the matching field.

use crate::cookies::{self, SameSite};
use crate::i18n::{negotiate, Lang, Translator};
use crate::layout::Nav;
use crate::pages::error::{self, ErrorPage};
use crate::{assets, pages};
use axum::body::{to_bytes, Body};
use axum::extract::Request;
use axum::middleware::Next;
use axum::response::Response;
use http::header::{CONTENT_TYPE, HOST, ORIGIN, REFERER};
use http::{HeaderMap, HeaderValue, Method, StatusCode};
use musubi_auth::token::{constant_time_eq, is_well_formed, mask, unmask, Token};
use musubi_domain::{AppError, AppResult};
use percent_encoding::percent_decode_str;

pub(crate) const CSRF_COOKIE: &str = "musubi_csrf";
/// The hidden form field that carries the token.
pub(crate) const CSRF_FIELD: &str = "csrf";
/// The header that carries the token on JSON calls (a cross-site page cannot set it without a
/// CORS preflight, which Musubi never grants).
pub(crate) const CSRF_HEADER: &str = "x-csrf-token";
/// Web forms are a few short fields; anything bigger is not one of ours.
const MAX_FORM_BYTES: usize = 64 * 1024;

/// The browser's CSRF token: the one its cookie holds, or a new one to set.
#[derive(Debug, Clone)]
pub(crate) struct Csrf {
    token: String,
    /// What this answer's forms carry: the token under a pad of its own.
    masked: String,
    fresh: bool,
}

impl Csrf {
    pub(crate) fn for_request(headers: &HeaderMap) -> AppResult<Self> {
        match cookies::get(headers, CSRF_COOKIE).filter(|t| is_well_formed(t)) {
            Some(t) => Ok(Self {
                masked: mask(t).map_err(AppError::internal)?,
                token: t.to_owned(),
                fresh: false,
            }),
            None => Self::new(),
        }
    }

    /// A new token, e.g. after signing in, so a token planted before does not survive it.
    pub(crate) fn new() -> AppResult<Self> {
        let token = Token::generate().map_err(AppError::internal)?.into_string();
        Ok(Self {
            masked: mask(&token).map_err(AppError::internal)?,
            token,
            fresh: true,
        })
    }

    /// The value for forms (masked; see the module's comment).
    pub(crate) fn form_token(&self) -> &str {
        &self.masked
    }

    /// The `Set-Cookie` to send, when the browser does not have this token yet.
    pub(crate) fn set_cookie(&self, secure: bool) -> Option<HeaderValue> {
        self.fresh
            .then(|| cookies::session_cookie(CSRF_COOKIE, &self.token, SameSite::Strict, secure))
    }
}

/// Middleware: checks every state-changing request before its handler runs.
pub(crate) async fn guard(req: Request, next: Next) -> Response {
    if matches!(*req.method(), Method::GET | Method::HEAD | Method::OPTIONS) {
        return next.run(req).await;
    }
    let lang = negotiate(req.headers());
    let authority = req.uri().authority().map(|a| a.as_str().to_owned());
    let kind = body_kind(req.headers());
    if !origin_is_this_host(req.headers(), authority.as_deref()) || kind.is_none() {
        return refused(lang, req.headers(), "origin or content type");
    }
    let (parts, body) = req.into_parts();
    let Ok(bytes) = to_bytes(body, MAX_FORM_BYTES).await else {
        return refused(lang, &parts.headers, "body too large");
    };
    let expected = cookies::get(&parts.headers, CSRF_COOKIE).filter(|t| is_well_formed(t));
    let sent = match kind {
        Some(BodyKind::Json) => parts
            .headers
            .get(CSRF_HEADER)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned),
        _ => form_field(&bytes, CSRF_FIELD),
    };
    // Pages send it masked; the plain token (a client that read the cookie's value, such as
    // a test) is accepted too.
    let sent = sent.map(|s| unmask(&s).unwrap_or(s));
    let ok = match (expected, sent.as_deref()) {
        (Some(expected), Some(sent)) => constant_time_eq(expected, sent),
        _ => false,
    };
    if !ok {
        // Same origin, stale token (the page was open long, or the session was renewed in
        // another tab): show what the form carried so it can be copied; static/app.js also
        // kept it as a draft on the page the retry button goes back to.
        let kept = form_field(&bytes, "body").filter(|b| !b.trim().is_empty());
        return refused_keeping(lang, &parts.headers, "token", kept);
    }
    next.run(Request::from_parts(parts, Body::from(bytes)))
        .await
}

/// An `Origin` header, when present, must name this host. Browsers send it with every POST;
/// `null` (sandboxed frames, some redirects) is refused too. The host is the `Host` header
/// (HTTP/1.1), the request's authority (HTTP/2 `:authority`), or `X-Forwarded-Host`.
pub(crate) fn origin_is_this_host(headers: &HeaderMap, uri_authority: Option<&str>) -> bool {
    let Some(origin) = headers.get(ORIGIN) else {
        return true;
    };
    let Some(authority) = origin
        .to_str()
        .ok()
        .and_then(|o| o.split_once("://"))
        .map(|(_, rest)| rest.trim_end_matches('/'))
    else {
        return false;
    };
    // Behind a proxy that rewrites Host, the public name is in X-Forwarded-Host. A browser
    // cannot set either header on a cross-site request, so accepting both is safe.
    let from_headers = ["x-forwarded-host", HOST.as_str()]
        .into_iter()
        .filter_map(|name| {
            headers
                .get(name)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.split(',').next())
        });
    from_headers
        .chain(uri_authority)
        .any(|host| host.trim().eq_ignore_ascii_case(authority))
}

/// The two kinds of body the web routes accept.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum BodyKind {
    /// A plain form: the token is its `csrf` field.
    Form,
    /// A script's JSON call: the token is the `X-CSRF-Token` header.
    Json,
}

fn body_kind(headers: &HeaderMap) -> Option<BodyKind> {
    let media_type = headers
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())?
        .trim();
    if media_type.eq_ignore_ascii_case("application/x-www-form-urlencoded") {
        Some(BodyKind::Form)
    } else if media_type.eq_ignore_ascii_case("application/json") {
        Some(BodyKind::Json)
    } else {
        None
    }
}

/// The first value of `name` in an `application/x-www-form-urlencoded` body.
fn form_field(body: &[u8], name: &str) -> Option<String> {
    let body = std::str::from_utf8(body).ok()?;
    body.split('&').find_map(|pair| {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        (decode(k) == name).then(|| decode(v))
    })
}

fn decode(s: &str) -> String {
    percent_decode_str(&s.replace('+', " "))
        .decode_utf8_lossy()
        .into_owned()
}

/// 403 in plain words; the handler never ran. The retry button goes back to the page the form
/// was on (same-origin `Referer`), which sets a fresh token.
fn refused(lang: Lang, headers: &HeaderMap, why: &'static str) -> Response {
    refused_keeping(lang, headers, why, None)
}

fn refused_keeping(
    lang: Lang,
    headers: &HeaderMap,
    why: &'static str,
    kept: Option<String>,
) -> Response {
    tracing::warn!(reason = why, "form refused by the CSRF check");
    let back = headers
        .get(REFERER)
        .and_then(|v| v.to_str().ok())
        .and_then(|r| local_path_of_referer(r, headers))
        .unwrap_or_else(|| "/".to_owned());
    let t = Translator::new(lang);
    let page = ErrorPage {
        t,
        assets: assets::urls(),
        nav: Nav::hidden(),
        current_path: &back,
        title: t.get("error.forbidden.title"),
        message: t.get("error.forbidden.message"),
        code: None,
        retry: true,
        kept,
    };
    error::respond(StatusCode::FORBIDDEN, lang, &page)
}

/// The path of a `Referer` on this host, if it is one.
/// The page a request came from, when it is one of this site's (same host, local path).
pub(crate) fn referring_page(headers: &HeaderMap) -> Option<String> {
    headers
        .get(REFERER)
        .and_then(|v| v.to_str().ok())
        .and_then(|r| local_path_of_referer(r, headers))
}

fn local_path_of_referer(referer: &str, headers: &HeaderMap) -> Option<String> {
    let (_, rest) = referer.split_once("://")?;
    let (authority, path) = rest.split_at(rest.find('/')?);
    let host = headers.get(HOST)?.to_str().ok()?;
    (authority.eq_ignore_ascii_case(host) && pages::language::is_local_path(path))
        .then(|| path.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(*k, HeaderValue::from_static(v));
        }
        h
    }

    #[test]
    fn origin_must_be_this_host_when_present() {
        assert!(origin_is_this_host(
            &headers(&[("host", "musubi.example")]),
            None
        ));
        assert!(origin_is_this_host(
            &headers(&[
                ("host", "127.0.0.1:8080"),
                ("origin", "http://127.0.0.1:8080"),
            ]),
            None
        ));
        assert!(origin_is_this_host(
            &headers(&[
                ("host", "backend:8080"),
                ("x-forwarded-host", "musubi.example"),
                ("origin", "https://musubi.example"),
            ]),
            None
        ));
        // HTTP/2: no Host header, the authority is part of the request target.
        assert!(origin_is_this_host(
            &headers(&[("origin", "https://musubi.example")]),
            Some("musubi.example")
        ));
        assert!(!origin_is_this_host(
            &headers(&[("origin", "https://musubi.example")]),
            None
        ));
        for bad in [
            "https://evil.example",
            "null",
            "http://127.0.0.1:8081",
            "https://musubi.example.evil.example",
        ] {
            let h = headers(&[("host", "127.0.0.1:8080"), ("origin", bad)]);
            assert!(!origin_is_this_host(&h, Some("127.0.0.1:8080")), "{bad}");
        }
    }

    #[test]
    fn the_token_field_is_read_from_a_form_body() {
        let body = b"email=a%40b.example&csrf=abc_DEF-123&next=%2Fhome";
        assert_eq!(form_field(body, "csrf").as_deref(), Some("abc_DEF-123"));
        assert_eq!(form_field(body, "email").as_deref(), Some("a@b.example"));
        assert_eq!(form_field(b"x=1", "csrf"), None);
        assert_eq!(form_field(b"csrf", "csrf").as_deref(), Some(""));
        assert_eq!(form_field(&[0xff, 0xfe], "csrf"), None);
    }

    #[test]
    fn only_form_and_json_bodies_are_accepted() {
        let kind = |ct: &'static str| body_kind(&headers(&[("content-type", ct)]));
        assert_eq!(
            kind("application/x-www-form-urlencoded; charset=UTF-8"),
            Some(BodyKind::Form)
        );
        assert_eq!(kind("application/json"), Some(BodyKind::Json));
        assert_eq!(
            kind("Application/JSON; charset=utf-8"),
            Some(BodyKind::Json)
        );
        // What a cross-site form can send without a preflight.
        assert_eq!(kind("text/plain"), None);
        assert_eq!(kind("multipart/form-data; boundary=x"), None);
        assert_eq!(body_kind(&headers(&[])), None);
    }

    #[test]
    fn a_cookie_token_is_reused_and_a_missing_one_is_made() {
        let fresh = Csrf::for_request(&HeaderMap::new()).expect("token");
        assert!(is_well_formed(&fresh.token));
        assert!(fresh.set_cookie(false).is_some());
        let cookie = format!("{CSRF_COOKIE}={}", fresh.token);
        let mut h = HeaderMap::new();
        h.insert("cookie", HeaderValue::from_str(&cookie).expect("ascii"));
        let again = Csrf::for_request(&h).expect("token");
        assert_eq!(again.token, fresh.token);
        assert!(again.set_cookie(false).is_none());
        // Junk in the cookie is replaced, not trusted.
        let h = headers(&[("cookie", "musubi_csrf=short")]);
        assert_ne!(Csrf::for_request(&h).expect("token").token, "short");
    }

    #[test]
    fn forms_carry_the_token_masked_differently_in_every_answer() {
        let first = Csrf::for_request(&HeaderMap::new()).expect("token");
        let cookie = format!("{CSRF_COOKIE}={}", first.token);
        let mut h = HeaderMap::new();
        h.insert("cookie", HeaderValue::from_str(&cookie).expect("ascii"));
        let second = Csrf::for_request(&h).expect("token");
        assert_ne!(
            first.form_token(),
            second.form_token(),
            "same token, another pad"
        );
        for page in [&first, &second] {
            assert!(
                !page.form_token().contains(&first.token),
                "never the plain token"
            );
            assert_eq!(
                unmask(page.form_token()).as_deref(),
                Some(first.token.as_str())
            );
        }
    }

    #[test]
    fn the_retry_link_only_goes_back_to_this_site() {
        let h = headers(&[("host", "127.0.0.1:8080")]);
        assert_eq!(
            local_path_of_referer("http://127.0.0.1:8080/me/sessions", &h).as_deref(),
            Some("/me/sessions")
        );
        assert_eq!(local_path_of_referer("https://evil.example/x", &h), None);
        assert_eq!(local_path_of_referer("http://127.0.0.1:8080", &h), None);
    }
}
