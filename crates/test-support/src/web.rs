//! A browser for the web pages, over [`TestApp`]: forms with their CSRF field, the passkey
//! script's JSON calls with the `X-CSRF-Token` header, cookies kept between requests, redirects
//! followed by hand.

use crate::TestApp;
use axum::body::Body;
use http::header::{LOCATION, SET_COOKIE};
use http::{HeaderMap, HeaderName, Request, StatusCode};
use musubi_demo::DEMO_PASSWORD;
use std::collections::BTreeMap;

/// The host the browser asks for unless told otherwise.
pub const DEFAULT_HOST: &str = "musubi.test";

/// One answer the browser got.
pub struct Page {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: String,
}

impl Page {
    /// The `Location` header, or "".
    pub fn location(&self) -> &str {
        self.header(LOCATION)
    }

    /// A header's value, or "".
    pub fn header(&self, name: HeaderName) -> &str {
        self.headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
    }

    pub fn set_cookies(&self) -> Vec<&str> {
        self.headers
            .get_all(SET_COOKIE)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .collect()
    }

    /// The `Set-Cookie` header setting `name`, if any.
    pub fn set_cookie(&self, name: &str) -> Option<&str> {
        self.set_cookies()
            .into_iter()
            .find(|c| c.starts_with(&format!("{name}=")))
    }

    /// The CSRF token of the page's (first) form.
    pub fn csrf(&self) -> String {
        let marker = "name=\"csrf\" value=\"";
        let at = self
            .body
            .find(marker)
            .unwrap_or_else(|| panic!("no CSRF field in: {}", self.body))
            + marker.len();
        let end = self.body[at..].find('"').unwrap();
        self.body[at..at + end].to_owned()
    }

    /// The app's "page not found" page (what a refusal looks like on the web).
    pub fn is_not_found(&self) -> bool {
        self.status == StatusCode::NOT_FOUND && self.body.contains("ページが見つかりません")
    }

    /// The body as JSON.
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.body).unwrap_or_else(|_| panic!("not JSON: {}", self.body))
    }
}

/// The part of a page between `from` and `to` (both must be there, in that order).
pub fn between<'a>(body: &'a str, from: &str, to: &str) -> &'a str {
    let start = body
        .find(from)
        .unwrap_or_else(|| panic!("no {from} in {body}"));
    let end = start + body[start..].find(to).unwrap_or_else(|| panic!("no {to}"));
    &body[start..end]
}

/// One browser: its cookies, at one host.
#[derive(Clone)]
pub struct Browser {
    pub host: &'static str,
    pub cookies: BTreeMap<String, String>,
    /// Extra headers sent with every request (e.g. a `User-Agent`, or a proxy's
    /// `X-Forwarded-Proto`).
    pub extra: Vec<(&'static str, String)>,
}

impl Default for Browser {
    fn default() -> Self {
        Self::at(DEFAULT_HOST)
    }
}

impl Browser {
    pub fn new() -> Self {
        Self::default()
    }

    /// A browser asking for `host` (and sending it as its forms' origin).
    pub fn at(host: &'static str) -> Self {
        Self {
            host,
            cookies: BTreeMap::new(),
            extra: Vec::new(),
        }
    }

    /// The same browser, sending `name: value` with every request.
    pub fn with_header(mut self, name: &'static str, value: impl Into<String>) -> Self {
        self.extra.push((name, value.into()));
        self
    }

    /// The session cookie, when signed in.
    pub fn session(&self) -> Option<&str> {
        self.cookies.get("musubi_session").map(String::as_str)
    }

    pub fn cookie_header(&self) -> String {
        self.cookies
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join("; ")
    }

    /// Keeps the cookies an answer sets; forgets those it clears.
    pub fn keep_cookies(&mut self, headers: &HeaderMap) {
        for c in headers.get_all(SET_COOKIE) {
            let c = c.to_str().unwrap();
            let (pair, attrs) = c.split_once(';').unwrap_or((c, ""));
            let (name, value) = pair.split_once('=').unwrap();
            if value.is_empty() || attrs.contains("Max-Age=0") {
                self.cookies.remove(name);
            } else {
                self.cookies.insert(name.to_owned(), value.to_owned());
            }
        }
    }

    /// Sends a request with the host, the cookies and the extra headers.
    pub async fn send(&mut self, app: &TestApp, req: http::request::Builder, body: Body) -> Page {
        let mut req = req.header("host", self.host);
        if !self.cookies.is_empty() {
            req = req.header("cookie", self.cookie_header());
        }
        for (k, v) in &self.extra {
            req = req.header(*k, v);
        }
        let (status, headers, body) = app.send(req.body(body).unwrap()).await;
        self.keep_cookies(&headers);
        Page {
            status,
            headers,
            body,
        }
    }

    pub async fn get(&mut self, app: &TestApp, path: &str) -> Page {
        self.send(app, Request::get(path), Body::empty()).await
    }

    /// A GET whose answer is kept as bytes (a file).
    pub async fn fetch(
        &mut self,
        app: &TestApp,
        path: &str,
    ) -> (StatusCode, HeaderMap, axum::body::Bytes) {
        let mut req = Request::get(path).header("host", self.host);
        if !self.cookies.is_empty() {
            req = req.header("cookie", self.cookie_header());
        }
        let (status, headers, body) = app.send_bytes(req.body(Body::empty()).unwrap()).await;
        self.keep_cookies(&headers);
        (status, headers, body)
    }

    /// Posts a `multipart/form-data` form as a browser does (same origin), arriving in pieces
    /// as from the network. Parts are (name, file name for a file, value), in order.
    pub async fn post_multipart(
        &mut self,
        app: &TestApp,
        path: &str,
        parts: &[(&str, Option<&str>, &[u8])],
    ) -> Page {
        let req = Request::post(path)
            .header("origin", format!("http://{}", self.host))
            .header(
                "content-type",
                format!("multipart/form-data; boundary={MULTIPART_BOUNDARY}"),
            );
        let bytes = multipart(parts);
        let chunks: Vec<Result<Vec<u8>, std::io::Error>> =
            bytes.chunks(64 * 1024).map(|c| Ok(c.to_vec())).collect();
        self.send(
            app,
            req,
            Body::from_stream(futures_util::stream::iter(chunks)),
        )
        .await
    }

    /// Posts a form as a browser does: same-origin `Origin`, urlencoded body.
    pub async fn post(&mut self, app: &TestApp, path: &str, fields: &[(&str, &str)]) -> Page {
        let req = Request::post(path)
            .header("origin", format!("http://{}", self.host))
            .header("content-type", "application/x-www-form-urlencoded");
        self.send(app, req, Body::from(form(fields))).await
    }

    /// Opens the page holding a form (`page`), then sends it to `action` with that page's CSRF
    /// token.
    pub async fn submit(
        &mut self,
        app: &TestApp,
        page: &str,
        action: &str,
        fields: &[(&str, &str)],
    ) -> Page {
        let token = self.get(app, page).await.csrf();
        let mut all = vec![("csrf", token.as_str())];
        all.extend_from_slice(fields);
        self.post(app, action, &all).await
    }

    /// What `static/passkey.js` does: JSON with the page's CSRF token in `X-CSRF-Token`.
    pub async fn call(
        &mut self,
        app: &TestApp,
        path: &str,
        csrf: Option<&str>,
        body: &serde_json::Value,
    ) -> Page {
        let mut req = Request::post(path)
            .header("origin", format!("http://{}", self.host))
            .header("content-type", "application/json");
        if let Some(token) = csrf {
            req = req.header("x-csrf-token", token);
        }
        self.send(app, req, Body::from(body.to_string())).await
    }

    /// Sends the `/signin` form.
    pub async fn sign_in(&mut self, app: &TestApp, email: &str, password: &str) -> Page {
        self.submit(
            app,
            "/signin",
            "/signin",
            &[("email", email), ("password", password)],
        )
        .await
    }

    /// A new browser signed in with the demo password; expects the home page.
    pub async fn signed_in(app: &TestApp, email: &str) -> Self {
        let mut b = Browser::default();
        let res = b.sign_in(app, email, DEMO_PASSWORD).await;
        assert_eq!(res.status, StatusCode::SEE_OTHER, "{}", res.body);
        assert_eq!(res.location(), "/home");
        b
    }
}

/// The boundary of [`multipart`] bodies.
pub const MULTIPART_BOUNDARY: &str = "----musubi-test-boundary";

/// A `multipart/form-data` body of (name, file name for a file, value) parts.
pub fn multipart(parts: &[(&str, Option<&str>, &[u8])]) -> Vec<u8> {
    let mut body = Vec::new();
    for (name, file, value) in parts {
        body.extend_from_slice(format!("--{MULTIPART_BOUNDARY}\r\n").as_bytes());
        let head = match file {
            Some(f) => format!(
                "Content-Disposition: form-data; name=\"{name}\"; filename=\"{f}\"\r\n\
                 Content-Type: application/octet-stream\r\n\r\n"
            ),
            None => format!("Content-Disposition: form-data; name=\"{name}\"\r\n\r\n"),
        };
        body.extend_from_slice(head.as_bytes());
        body.extend_from_slice(value);
        body.extend_from_slice(b"\r\n");
    }
    body.extend_from_slice(format!("--{MULTIPART_BOUNDARY}--\r\n").as_bytes());
    body
}

/// An `application/x-www-form-urlencoded` body.
pub fn form(fields: &[(&str, &str)]) -> String {
    fields
        .iter()
        .map(|(k, v)| format!("{}={}", encode(k), encode(v)))
        .collect::<Vec<_>>()
        .join("&")
}

fn encode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' => {
                char::from(b).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}
