//! Reading cookies, writing `Set-Cookie`, and telling whether the browser came over HTTPS.

use http::header::COOKIE;
use http::request::Parts;
use http::{HeaderMap, HeaderValue};

/// The first value of cookie `name`, if the request carries one.
pub(crate) fn get<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    // HTTP/2 may split cookies over several headers.
    headers
        .get_all(COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v.trim().trim_matches('"'))
}

/// How a cookie may travel across sites.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum SameSite {
    Lax,
    Strict,
}

impl SameSite {
    fn as_str(self) -> &'static str {
        match self {
            SameSite::Lax => "Lax",
            SameSite::Strict => "Strict",
        }
    }
}

/// A browser-session cookie (no `Max-Age`: it ends when the browser closes; the server
/// enforces its own timeouts), never readable by scripts.
pub(crate) fn session_cookie(
    name: &str,
    value: &str,
    same_site: SameSite,
    secure: bool,
) -> HeaderValue {
    let secure = if secure { "; Secure" } else { "" };
    let text = format!(
        "{name}={value}; Path=/; HttpOnly; SameSite={}{secure}",
        same_site.as_str()
    );
    // Values are our own base64url tokens; a failure would be a bug, and no cookie is safer.
    HeaderValue::from_str(&text).unwrap_or(HeaderValue::from_static("musubi_invalid=; Max-Age=0"))
}

/// Tells the browser to forget cookie `name`.
pub(crate) fn clear_cookie(name: &str, same_site: SameSite, secure: bool) -> HeaderValue {
    let secure = if secure { "; Secure" } else { "" };
    let text = format!(
        "{name}=; Path=/; Max-Age=0; HttpOnly; SameSite={}{secure}",
        same_site.as_str()
    );
    HeaderValue::from_str(&text).unwrap_or(HeaderValue::from_static("musubi_invalid=; Max-Age=0"))
}

/// Whether the browser reached us over HTTPS, so cookies get `Secure`.
///
/// Musubi usually sits behind a reverse proxy that ends TLS and says so with
/// `X-Forwarded-Proto: https` (or `Forwarded: proto=https`); plain-HTTP development on
/// `http://127.0.0.1` sends neither, and a `Secure` cookie would then never come back.
/// Trusting the header is safe here: a client that lies only makes its own cookies stricter.
pub(crate) fn is_https(parts: &Parts) -> bool {
    if parts.uri.scheme_str() == Some("https") {
        return true;
    }
    let forwarded_proto = parts
        .headers
        .get("x-forwarded-proto")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(',').next())
        .is_some_and(|v| v.trim().eq_ignore_ascii_case("https"));
    let forwarded = parts
        .headers
        .get("forwarded")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(',').next())
        .is_some_and(|first| {
            first.split(';').any(|kv| {
                kv.trim().split_once('=').is_some_and(|(k, v)| {
                    k.trim().eq_ignore_ascii_case("proto")
                        && v.trim().trim_matches('"').eq_ignore_ascii_case("https")
                })
            })
        });
    forwarded_proto || forwarded
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::Request;

    fn parts(headers: &[(&'static str, &'static str)]) -> Parts {
        let mut req = Request::get("/");
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        req.body(()).expect("request").into_parts().0
    }

    #[test]
    fn finds_a_cookie_among_several_headers() {
        let p = parts(&[
            ("cookie", "a=1; musubi_lang=ja"),
            ("cookie", "musubi_session=tok"),
        ]);
        assert_eq!(get(&p.headers, "musubi_session"), Some("tok"));
        assert_eq!(get(&p.headers, "a"), Some("1"));
        assert_eq!(get(&p.headers, "musubi"), None);
    }

    #[test]
    fn cookies_are_http_only_session_cookies() {
        let c = session_cookie("musubi_session", "abc", SameSite::Lax, false);
        assert_eq!(c, "musubi_session=abc; Path=/; HttpOnly; SameSite=Lax");
        let c = session_cookie("musubi_csrf", "abc", SameSite::Strict, true);
        assert_eq!(
            c,
            "musubi_csrf=abc; Path=/; HttpOnly; SameSite=Strict; Secure"
        );
        let c = clear_cookie("musubi_session", SameSite::Lax, true);
        assert_eq!(
            c,
            "musubi_session=; Path=/; Max-Age=0; HttpOnly; SameSite=Lax; Secure"
        );
    }

    #[test]
    fn https_is_recognised_from_the_proxy_headers() {
        assert!(!is_https(&parts(&[])));
        assert!(is_https(&parts(&[("x-forwarded-proto", "https")])));
        assert!(is_https(&parts(&[("x-forwarded-proto", "HTTPS, http")])));
        assert!(!is_https(&parts(&[("x-forwarded-proto", "http")])));
        assert!(is_https(&parts(&[(
            "forwarded",
            "for=1.2.3.4;proto=https"
        )])));
        assert!(is_https(&parts(&[("forwarded", "proto=\"https\";host=x")])));
        assert!(!is_https(&parts(&[(
            "forwarded",
            "for=1.2.3.4;proto=http"
        )])));
    }
}
