//! The 404 page for any path the web router does not know.

use super::error::{self, ErrorPage};
use crate::assets;
use crate::i18n::{Lang, Translator};
use crate::layout::Nav;
use axum::response::Response;
use http::{StatusCode, Uri};

/// Fallback handler.
pub(crate) async fn show(lang: Lang, uri: Uri) -> Response {
    page(lang, uri.path())
}

pub(crate) fn page(lang: Lang, current_path: &str) -> Response {
    let t = Translator::new(lang);
    let page = ErrorPage {
        t,
        assets: assets::urls(),
        nav: Nav::hidden(),
        current_path,
        title: t.get("error.not_found.title"),
        message: t.get("error.not_found.message"),
        code: None,
        retry: false,
        kept: None,
    };
    error::respond(StatusCode::NOT_FOUND, lang, &page)
}

#[cfg(test)]
mod tests {
    use crate::public_router;
    use axum::body::{to_bytes, Body};
    use axum::response::Response;
    use http::header::CONTENT_LANGUAGE;
    use http::{Request, StatusCode};
    use tower::ServiceExt;

    async fn get(uri: &str, cookie: Option<&str>) -> Response {
        let mut req = Request::get(uri);
        if let Some(c) = cookie {
            req = req.header("cookie", c);
        }
        public_router()
            .oneshot(req.body(Body::empty()).expect("request"))
            .await
            .expect("infallible")
    }

    async fn text(res: Response) -> String {
        let body = to_bytes(res.into_body(), usize::MAX).await.expect("body");
        String::from_utf8(body.to_vec()).expect("utf-8")
    }

    #[tokio::test]
    async fn unknown_paths_get_a_404_page_in_the_chosen_language() {
        let res = get("/no/such/page", Some("musubi_lang=en")).await;
        assert_eq!(res.status(), StatusCode::NOT_FOUND);
        assert_eq!(res.headers()[CONTENT_LANGUAGE], "en");
        assert_eq!(res.headers()["cache-control"], "no-store");
        assert!(res.headers().contains_key("content-security-policy"));
        let page = text(res).await;
        assert!(page.contains("<html lang=\"en\""));
        assert!(page.contains("Page not found"));
        // The language switch comes back to the same address.
        assert!(page.contains("href=\"/lang/ja?next=/no/such/page\""));
    }

    #[tokio::test]
    async fn the_404_page_is_japanese_by_default() {
        let page = text(get("/nai", None).await).await;
        assert!(page.contains("<html lang=\"ja\""));
        assert!(page.contains("ページが見つかりません"));
    }

    #[tokio::test]
    async fn the_requested_path_cannot_inject_markup() {
        let page = text(get("/%22%3E%3Cscript%3Ealert(1)%3C/script%3E", None).await).await;
        assert!(!page.contains("<script>alert"));
        assert!(!page.contains("\"><"));
    }
}
