//! Pages, styles, scripts and API answers are compressed for clients that accept it, and
//! pages never carry the CSRF token the same way twice (so their compressed size says nothing
//! about it).

use axum::body::Body;
use http::Request;
use musubi_test_support::TestApp;
use std::io::Read;

async fn fetch(app: &TestApp, path: &str, accept: Option<&str>) -> (http::HeaderMap, Vec<u8>) {
    let mut req = Request::get(path);
    if let Some(accept) = accept {
        req = req.header("accept-encoding", accept);
    }
    let (status, headers, body) = app.send_bytes(req.body(Body::empty()).unwrap()).await;
    assert!(status.is_success(), "{path}: {status}");
    (headers, body.to_vec())
}

fn gunzip(bytes: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    flate2::read::GzDecoder::new(bytes)
        .read_to_end(&mut out)
        .expect("valid gzip");
    out
}

fn encoding(headers: &http::HeaderMap) -> Option<&str> {
    headers
        .get("content-encoding")
        .and_then(|v| v.to_str().ok())
}

#[tokio::test]
async fn pages_styles_and_scripts_are_compressed_when_the_client_accepts_it() {
    let app = TestApp::with_association("alpha", "アルファ医師会").await;
    for path in [
        "/signin",
        "/static/app.css",
        "/static/app.js",
        "/static/live.js",
    ] {
        let (plain_headers, plain) = fetch(&app, path, None).await;
        assert_eq!(encoding(&plain_headers), None, "{path}: not asked for");
        assert!(plain.len() > 1024, "{path} is big enough to be worth it");

        let (headers, gz) = fetch(&app, path, Some("gzip")).await;
        assert_eq!(encoding(&headers), Some("gzip"), "{path}");
        assert!(
            gz.len() < plain.len(),
            "{path}: {} ≥ {}",
            gz.len(),
            plain.len()
        );
        let vary: Vec<&str> = headers
            .get_all("vary")
            .iter()
            .filter_map(|v| v.to_str().ok())
            .collect();
        assert!(
            vary.iter()
                .any(|v| v.to_ascii_lowercase().contains("accept-encoding")),
            "{path}: {vary:?}"
        );
        if !path.starts_with("/signin") {
            assert_eq!(gunzip(&gz), plain, "{path}: the same bytes once decoded");
        }

        let (headers, br) = fetch(&app, path, Some("br, gzip")).await;
        assert_eq!(encoding(&headers), Some("br"), "{path}: brotli preferred");
        assert!(br.len() < plain.len(), "{path}");
    }
}

#[tokio::test]
async fn api_answers_are_compressed_and_tiny_answers_are_not() {
    let app = TestApp::with_association("alpha", "アルファ医師会").await;
    let introspection = serde_json::json!({
        "query": "{ __schema { types { name description } } }"
    });
    let req = Request::post("/graphql")
        .header("content-type", "application/json")
        .header("accept-encoding", "gzip")
        .header("musubi-association", "alpha")
        .body(Body::from(introspection.to_string()))
        .unwrap();
    let (_, headers, body) = app.send_bytes(req).await;
    assert_eq!(encoding(&headers), Some("gzip"));
    let json: serde_json::Value =
        serde_json::from_slice(&gunzip(&body)).expect("JSON once decoded");
    let types = json["data"]["__schema"]["types"]
        .as_array()
        .expect("the types");
    assert!(types.len() > 20, "{json}");
    let (headers, body) = fetch(&app, "/healthz", Some("gzip")).await;
    assert_eq!(encoding(&headers), None, "two bytes are sent as they are");
    assert_eq!(body, b"ok");
}

#[tokio::test]
async fn every_page_masks_its_csrf_token_afresh() {
    let app = TestApp::with_association("alpha", "アルファ医師会").await;
    let field = |html: &str| {
        let at = html
            .find("name=\"csrf\" value=\"")
            .expect("a form with a token");
        let rest = &html[at + "name=\"csrf\" value=\"".len()..];
        rest[..rest.find('"').expect("closing quote")].to_owned()
    };
    let (_, headers, first) = app.get("/signin").await;
    let cookie = headers
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find(|c| c.starts_with("musubi_csrf="))
        .and_then(|c| c.split(';').next())
        .expect("a CSRF cookie")
        .to_owned();
    let token = cookie.trim_start_matches("musubi_csrf=").to_owned();
    let again = app
        .send(
            Request::get("/signin")
                .header("cookie", &cookie)
                .body(Body::empty())
                .unwrap(),
        )
        .await
        .2;
    let (a, b) = (field(&first), field(&again));
    assert_ne!(a, b, "the same token under another pad");
    assert!(
        !first.contains(&token) && !again.contains(&token),
        "never the plain token"
    );
    // A form sent with either masked value passes the check (the sign-in answer is not a 403).
    for masked in [&a, &b] {
        let req = Request::post("/signin")
            .header("content-type", "application/x-www-form-urlencoded")
            .header("cookie", &cookie)
            .body(Body::from(format!(
                "csrf={masked}&email=nobody%40example.jp&password=wrong"
            )))
            .unwrap();
        let (status, _, _) = app.send(req).await;
        assert_ne!(
            status,
            http::StatusCode::FORBIDDEN,
            "refused by the CSRF check"
        );
    }
    // A tampered one does not.
    let mut tampered = a.clone().into_bytes();
    tampered[0] = if tampered[0] == b'A' { b'B' } else { b'A' };
    let req = Request::post("/signin")
        .header("content-type", "application/x-www-form-urlencoded")
        .header("cookie", &cookie)
        .body(Body::from(format!(
            "csrf={}&email=nobody%40example.jp&password=wrong",
            String::from_utf8(tampered).unwrap()
        )))
        .unwrap();
    assert_eq!(app.send(req).await.0, http::StatusCode::FORBIDDEN);
}
