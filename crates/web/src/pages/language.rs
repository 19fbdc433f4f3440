//! `GET /lang/{code}?next=/path`: remember the chosen language and go back.

use super::error;
use crate::i18n::{Lang, LANG_COOKIE};
use axum::extract::{Path, Query};
use axum::response::{IntoResponse, Response};
use http::header::{CACHE_CONTROL, LOCATION, SET_COOKIE};
use http::{HeaderValue, StatusCode, Uri};
use serde::Deserialize;

const ONE_YEAR_SECS: u32 = 365 * 24 * 60 * 60;

#[derive(Deserialize)]
struct Next {
    next: Option<String>,
}

pub(crate) async fn switch(Path(code): Path<String>, uri: Uri, current: Lang) -> Response {
    let Some(chosen) = Lang::from_code(&code) else {
        return error::bad_request(current, "/");
    };
    // A malformed query is no reason to fail: fall back to the top page.
    let next = Query::<Next>::try_from_uri(&uri)
        .ok()
        .and_then(|q| q.0.next)
        .filter(|n| is_local_path(n))
        .map(|n| encode_for_location(&n))
        .and_then(|n| HeaderValue::from_str(&n).ok())
        .unwrap_or(HeaderValue::from_static("/"));
    // Not `Secure`: only a display preference, and it must also work over plain http locally.
    let cookie = format!(
        "{LANG_COOKIE}={}; Path=/; Max-Age={ONE_YEAR_SECS}; SameSite=Lax; HttpOnly",
        chosen.code()
    );
    let cookie = HeaderValue::from_str(&cookie).unwrap_or(HeaderValue::from_static(""));
    (
        StatusCode::SEE_OTHER,
        [
            (LOCATION, next),
            (SET_COOKIE, cookie),
            (CACHE_CONTROL, HeaderValue::from_static("no-store")),
        ],
    )
        .into_response()
}

/// Only paths on this site, so the switch cannot be used to send people elsewhere.
/// `//host` and `/\host` are read by browsers as another host; browsers also drop tabs and
/// newlines from URLs, which could turn `/\t/host` into `//host`.
pub(crate) fn is_local_path(next: &str) -> bool {
    next.starts_with('/')
        && !next.starts_with("//")
        && !next.starts_with("/\\")
        && !next.chars().any(char::is_control)
}

/// `next` arrives decoded; percent-encode what a header cannot carry (spaces, non-ASCII).
pub(crate) fn encode_for_location(path: &str) -> String {
    let mut out = String::with_capacity(path.len());
    for b in path.bytes() {
        if b.is_ascii_graphic() {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::public_router;
    use axum::body::{to_bytes, Body};
    use http::header::{CONTENT_LANGUAGE, CONTENT_TYPE};
    use http::Request;
    use tower::ServiceExt;

    async fn get(uri: &str) -> Response {
        public_router()
            .oneshot(Request::get(uri).body(Body::empty()).expect("request"))
            .await
            .expect("infallible")
    }

    fn location(res: &Response) -> &str {
        res.headers()
            .get(LOCATION)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
    }

    #[test]
    fn only_local_paths_are_accepted() {
        for ok in ["/", "/groups/1", "/a?b=c#d", "/./x", "/a//b", "/a\\b"] {
            assert!(is_local_path(ok), "{ok}");
        }
        for bad in [
            "",
            "https://evil.example/",
            "//evil.example",
            "/\\evil.example",
            "\\\\evil.example",
            "/\t/evil.example",
            "/\n/evil.example",
            "javascript:alert(1)",
            "evil.example",
            " /x",
        ] {
            assert!(!is_local_path(bad), "{bad:?}");
        }
    }

    #[tokio::test]
    async fn switching_sets_a_year_long_cookie_and_goes_back() {
        let res = get("/lang/en?next=/groups/1%3Ftab%3Dnew").await;
        assert_eq!(res.status(), StatusCode::SEE_OTHER);
        assert_eq!(location(&res), "/groups/1?tab=new");
        let cookie = res.headers()[SET_COOKIE].to_str().expect("ascii");
        assert_eq!(
            cookie,
            "musubi_lang=en; Path=/; Max-Age=31536000; SameSite=Lax; HttpOnly"
        );
        let res = get("/lang/ja?next=/").await;
        assert_eq!(location(&res), "/");
        assert!(res.headers()[SET_COOKIE]
            .to_str()
            .expect("ascii")
            .starts_with("musubi_lang=ja;"));
    }

    #[tokio::test]
    async fn foreign_or_missing_targets_go_to_the_top_page() {
        for uri in [
            "/lang/ja",
            "/lang/ja?next=",
            "/lang/ja?next=https://evil.example/",
            "/lang/ja?next=//evil.example",
            "/lang/ja?next=%2F%2Fevil.example",
            "/lang/ja?next=/%5Cevil.example",
            "/lang/ja?next=/%09/evil.example",
            "/lang/ja?next=/%0D%0ASet-Cookie:%20x=y",
            "/lang/ja?next=%ZZ",
        ] {
            let res = get(uri).await;
            assert_eq!(res.status(), StatusCode::SEE_OTHER, "{uri}");
            assert_eq!(location(&res), "/", "{uri}");
        }
    }

    #[tokio::test]
    async fn japanese_paths_are_percent_encoded_in_the_redirect() {
        let res = get("/lang/en?next=/%E6%A4%9C%E7%B4%A2%20x").await;
        assert_eq!(location(&res), "/%E6%A4%9C%E7%B4%A2%20x");
    }

    #[tokio::test]
    async fn an_unknown_language_gets_a_400_page() {
        for uri in ["/lang/fr?next=/", "/lang/JA", "/lang/ja-JP"] {
            let res = get(uri).await;
            assert_eq!(res.status(), StatusCode::BAD_REQUEST, "{uri}");
            assert!(res.headers().get(SET_COOKIE).is_none());
            assert_eq!(res.headers()[CONTENT_TYPE], "text/html; charset=utf-8");
            assert_eq!(res.headers()[CONTENT_LANGUAGE], "ja");
            let body = to_bytes(res.into_body(), usize::MAX).await.expect("body");
            let page = String::from_utf8(body.to_vec()).expect("utf-8");
            assert!(page.contains("<html lang=\"ja\""));
        }
    }
}
