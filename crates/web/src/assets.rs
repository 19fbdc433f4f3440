//! Static assets compiled into the binary, served under content-hashed names.
//!
//! Pages link `/static/app.<hash>.css`; that name changes whenever the file does, so browsers
//! may keep it forever. The plain name also works (for hand-typed links) but is revalidated.

use crate::i18n::Lang;
use crate::pages;
use axum::body::Body;
use axum::extract::Path;
use axum::response::{IntoResponse, Response};
use http::header::{CACHE_CONTROL, CONTENT_TYPE, ETAG, IF_NONE_MATCH, X_CONTENT_TYPE_OPTIONS};
use http::{HeaderMap, HeaderValue, StatusCode};
use sha2::{Digest, Sha256};
use std::sync::OnceLock;

const IMMUTABLE: &str = "public, max-age=31536000, immutable";
const REVALIDATE: &str = "no-cache";

struct Asset {
    stem: &'static str,
    ext: &'static str,
    content_type: &'static str,
    body: &'static [u8],
}

const ASSETS: [Asset; 11] = [
    Asset {
        stem: "app",
        ext: "css",
        content_type: "text/css; charset=utf-8",
        body: include_bytes!("../static/app.css"),
    },
    Asset {
        stem: "app",
        ext: "js",
        content_type: "text/javascript; charset=utf-8",
        body: include_bytes!("../static/app.js"),
    },
    Asset {
        stem: "icon",
        ext: "svg",
        content_type: "image/svg+xml",
        body: include_bytes!("../static/icon.svg"),
    },
    // Only on the pages that offer passkeys.
    Asset {
        stem: "passkey",
        ext: "js",
        content_type: "text/javascript; charset=utf-8",
        body: include_bytes!("../static/passkey.js"),
    },
    // Only on the pages that update themselves (home, groups, a group, a topic).
    Asset {
        stem: "live",
        ext: "js",
        content_type: "text/javascript; charset=utf-8",
        body: include_bytes!("../static/live.js"),
    },
    // Only on topic pages: what was on screen, readers on demand, drafts.
    Asset {
        stem: "topic",
        ext: "js",
        content_type: "text/javascript; charset=utf-8",
        body: include_bytes!("../static/topic.js"),
    },
    // Lets a phone add Musubi to its home screen and open it without the browser's bars. Its
    // icon is linked by its plain name: the manifest is fetched rarely and revalidated.
    Asset {
        stem: "manifest",
        ext: "webmanifest",
        content_type: "application/manifest+json",
        body: include_bytes!("../static/manifest.webmanifest"),
    },
    // Home-screen icons: Android's installer wants PNGs of these sizes (the maskable one fills
    // the shape the launcher cuts), iOS its apple-touch-icon.
    Asset {
        stem: "icon-192",
        ext: "png",
        content_type: "image/png",
        body: include_bytes!("../static/icon-192.png"),
    },
    Asset {
        stem: "icon-512",
        ext: "png",
        content_type: "image/png",
        body: include_bytes!("../static/icon-512.png"),
    },
    Asset {
        stem: "icon-maskable-512",
        ext: "png",
        content_type: "image/png",
        body: include_bytes!("../static/icon-maskable-512.png"),
    },
    Asset {
        stem: "apple-touch-icon",
        ext: "png",
        content_type: "image/png",
        body: include_bytes!("../static/apple-touch-icon.png"),
    },
];

/// What hashing an asset yields; computed once, on first use.
struct Fingerprint {
    hashed_name: String,
    etag: String,
}

fn fingerprints() -> &'static [Fingerprint] {
    static FINGERPRINTS: OnceLock<Vec<Fingerprint>> = OnceLock::new();
    FINGERPRINTS.get_or_init(|| ASSETS.iter().map(fingerprint).collect())
}

fn fingerprint(asset: &Asset) -> Fingerprint {
    let digest = hex::encode(Sha256::digest(asset.body));
    Fingerprint {
        hashed_name: format!("{}.{}.{}", asset.stem, &digest[..8], asset.ext),
        etag: format!("\"{}\"", &digest[..32]),
    }
}

/// The URLs pages link to, hashed names included.
#[derive(Debug)]
pub(crate) struct AssetUrls {
    pub css: String,
    pub js: String,
    pub icon: String,
    pub passkey_js: String,
    pub live_js: String,
    pub topic_js: String,
    pub manifest: String,
    pub apple_touch_icon: String,
}

pub(crate) fn urls() -> &'static AssetUrls {
    static URLS: OnceLock<AssetUrls> = OnceLock::new();
    URLS.get_or_init(|| {
        let url = |i: usize| {
            fingerprints()
                .get(i)
                .map(|f| format!("/static/{}", f.hashed_name))
                .unwrap_or_default()
        };
        AssetUrls {
            css: url(0),
            js: url(1),
            icon: url(2),
            passkey_js: url(3),
            live_js: url(4),
            topic_js: url(5),
            manifest: url(6),
            apple_touch_icon: url(10),
        }
    })
}

/// Finds an asset by its hashed or plain file name; says whether the name was hashed.
fn lookup(file: &str) -> Option<(&'static Asset, &'static Fingerprint, bool)> {
    ASSETS.iter().zip(fingerprints()).find_map(|(asset, fp)| {
        if file == fp.hashed_name {
            Some((asset, fp, true))
        } else if file
            .strip_suffix(asset.ext)
            .and_then(|f| f.strip_suffix('.'))
            == Some(asset.stem)
        {
            Some((asset, fp, false))
        } else {
            None
        }
    })
}

/// `GET /static/{file}`. A stale hash is a miss: serving new bytes under an old immutable
/// name would pin them in caches under the wrong name.
pub(crate) async fn serve(Path(file): Path<String>, lang: Lang, headers: HeaderMap) -> Response {
    let Some((asset, fp, hashed)) = lookup(&file) else {
        return pages::not_found::page(lang, "/");
    };
    let cache = if hashed { IMMUTABLE } else { REVALIDATE };
    let etag = HeaderValue::from_str(&fp.etag).unwrap_or(HeaderValue::from_static("\"\""));
    let common = [
        (CACHE_CONTROL, HeaderValue::from_static(cache)),
        (ETAG, etag),
        (X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff")),
    ];
    if etag_matches(&headers, &fp.etag) {
        return (StatusCode::NOT_MODIFIED, common).into_response();
    }
    (
        common,
        [(CONTENT_TYPE, HeaderValue::from_static(asset.content_type))],
        Body::from(asset.body),
    )
        .into_response()
}

/// `If-None-Match` uses weak comparison: `W/` prefixes are ignored; `*` matches anything.
fn etag_matches(headers: &HeaderMap, etag: &str) -> bool {
    headers
        .get_all(IF_NONE_MATCH)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(|t| t.trim())
        .any(|t| t == "*" || t.strip_prefix("W/").unwrap_or(t) == etag)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::public_router;
    use axum::body::to_bytes;
    use http::Request;
    use tower::ServiceExt;

    async fn get(uri: &str, if_none_match: Option<&str>) -> Response {
        let mut req = Request::get(uri);
        if let Some(tag) = if_none_match {
            req = req.header(IF_NONE_MATCH, tag);
        }
        public_router()
            .oneshot(req.body(Body::empty()).expect("request"))
            .await
            .expect("infallible")
    }

    fn header(res: &Response, name: http::HeaderName) -> &str {
        res.headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
    }

    #[test]
    fn hashed_names_carry_the_first_eight_hex_digits_of_sha256() {
        let css = &urls().css;
        let digest = hex::encode(Sha256::digest(include_bytes!("../static/app.css")));
        assert_eq!(css, &format!("/static/app.{}.css", &digest[..8]));
        assert!(urls().js.starts_with("/static/app.") && urls().js.ends_with(".js"));
        assert!(urls().icon.starts_with("/static/icon.") && urls().icon.ends_with(".svg"));
        assert_eq!(urls().js.len(), "/static/app.12345678.js".len());
    }

    #[tokio::test]
    async fn hashed_assets_are_cached_forever_with_the_right_type() {
        for (url, ty) in [
            (&urls().css, "text/css; charset=utf-8"),
            (&urls().js, "text/javascript; charset=utf-8"),
            (&urls().icon, "image/svg+xml"),
            (&urls().passkey_js, "text/javascript; charset=utf-8"),
        ] {
            let res = get(url, None).await;
            assert_eq!(res.status(), StatusCode::OK, "{url}");
            assert_eq!(header(&res, CONTENT_TYPE), ty);
            assert_eq!(header(&res, CACHE_CONTROL), IMMUTABLE);
            assert_eq!(header(&res, X_CONTENT_TYPE_OPTIONS), "nosniff");
            let body = to_bytes(res.into_body(), usize::MAX).await.expect("body");
            assert!(!body.is_empty());
        }
    }

    #[tokio::test]
    async fn plain_names_are_revalidated_with_an_etag() {
        let res = get("/static/app.css", None).await;
        assert_eq!(res.status(), StatusCode::OK);
        assert_eq!(header(&res, CACHE_CONTROL), "no-cache");
        let etag = header(&res, ETAG).to_owned();
        assert!(etag.starts_with('"') && etag.len() > 10, "{etag}");
        let body = to_bytes(res.into_body(), usize::MAX).await.expect("body");
        assert_eq!(&body[..], include_bytes!("../static/app.css"));

        for tag in [etag.clone(), format!("W/{etag}"), format!("\"x\", {etag}")] {
            let res = get("/static/app.css", Some(&tag)).await;
            assert_eq!(res.status(), StatusCode::NOT_MODIFIED, "{tag}");
            assert_eq!(header(&res, ETAG), etag);
            let body = to_bytes(res.into_body(), usize::MAX).await.expect("body");
            assert!(body.is_empty());
        }
        let res = get("/static/app.css", Some("\"stale\"")).await;
        assert_eq!(res.status(), StatusCode::OK);
    }

    #[tokio::test]
    async fn every_icon_the_manifest_names_is_served_as_a_png_or_svg_of_its_size() {
        let manifest: serde_json::Value =
            serde_json::from_slice(include_bytes!("../static/manifest.webmanifest"))
                .expect("the manifest is JSON");
        let icons = manifest["icons"].as_array().expect("icons");
        assert!(icons.iter().any(|i| i["purpose"] == "maskable"));
        assert!(icons.iter().any(|i| i["sizes"] == "512x512"));
        for icon in icons {
            let src = icon["src"].as_str().expect("src");
            let res = get(src, None).await;
            assert_eq!(res.status(), StatusCode::OK, "{src}");
            assert_eq!(header(&res, CONTENT_TYPE), icon["type"].as_str().unwrap());
            let body = to_bytes(res.into_body(), usize::MAX).await.expect("body");
            if let Some((w, h)) = icon["sizes"].as_str().unwrap().split_once('x') {
                // PNG: width and height are the big-endian words at 16 and 20.
                assert_eq!(&body[1..4], b"PNG", "{src}");
                let word = |at: usize| u32::from_be_bytes(body[at..at + 4].try_into().unwrap());
                assert_eq!(
                    (word(16).to_string(), word(20).to_string()),
                    (w.into(), h.into())
                );
            }
        }
        assert!(urls().apple_touch_icon.ends_with(".png"));
    }

    #[tokio::test]
    async fn unknown_files_and_stale_hashes_are_not_found() {
        for uri in [
            "/static/nope.css",
            "/static/app.00000000.css",
            "/static/app.txt",
            "/static/.css",
            "/static/app",
            "/static/..%2Fsrc%2Flib.rs",
        ] {
            let res = get(uri, None).await;
            assert_eq!(res.status(), StatusCode::NOT_FOUND, "{uri}");
        }
    }
}
