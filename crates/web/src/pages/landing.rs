//! `GET /`: what Musubi is, and the associations that share this deployment.

use super::error;
use crate::assets::{self, AssetUrls};
use crate::ctx::Ctx;
use crate::html;
use crate::i18n::{Lang, Translator};
use crate::layout::Nav;
use askama::Template;
use axum::extract::State;
use axum::response::Response;
use http::StatusCode;
use musubi_domain::associations::AssociationCard;
use musubi_domain::{AppResult, Services};

#[derive(Template)]
#[template(path = "landing.html")]
pub(crate) struct LandingPage<'a> {
    pub t: Translator,
    pub assets: &'static AssetUrls,
    pub nav: Nav<'a>,
    pub current_path: &'a str,
    pub cards: &'a [AssociationCard],
}

pub(crate) async fn show(State(services): State<Services>, ctx: Ctx) -> Result<Response, Response> {
    let viewer = ctx.viewer(&services).await?;
    let nav = match &viewer {
        Some(v) => Nav::signed_in(&v.user().name, ctx.csrf.form_token()),
        None => Nav::signed_out(),
    };
    let res = render(ctx.lang, services.association_cards().await, nav);
    Ok(ctx.with_csrf_cookie(res))
}

/// Separate from the handler so it can be tested without a database.
pub(crate) fn render(lang: Lang, cards: AppResult<Vec<AssociationCard>>, nav: Nav<'_>) -> Response {
    match cards {
        Ok(cards) => {
            let page = LandingPage {
                t: Translator::new(lang),
                assets: assets::urls(),
                nav,
                current_path: "/",
                cards: &cards,
            };
            html::respond(StatusCode::OK, lang, &page)
        }
        Err(e) => {
            // The cause goes to the log; the visitor sees only the stable code.
            tracing::error!(code = e.code.as_str(), error = %e, source = ?e.source, "landing page: loading associations failed");
            error::server_error(lang, "/", e.code)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::body::to_bytes;
    use chrono::Utc;
    use http::header::{CONTENT_LANGUAGE, CONTENT_SECURITY_POLICY, CONTENT_TYPE};
    use musubi_domain::{AppError, ErrorCode};
    use uuid::Uuid;

    fn card(name: &str, area: &str, description: &str) -> AssociationCard {
        AssociationCard {
            id: Uuid::nil(),
            slug: "minatogawa".into(),
            name: name.into(),
            area: area.into(),
            description: description.into(),
            updated_at: Utc::now(),
        }
    }

    fn html(cards: &[AssociationCard], lang: Lang) -> String {
        LandingPage {
            t: Translator::new(lang),
            assets: assets::urls(),
            nav: Nav::signed_out(),
            current_path: "/",
            cards,
        }
        .render()
        .expect("renders")
    }

    async fn body(res: Response) -> String {
        let bytes = to_bytes(res.into_body(), usize::MAX).await.expect("body");
        String::from_utf8(bytes.to_vec()).expect("utf-8")
    }

    #[test]
    fn landing_page_lists_associations_in_japanese() {
        let page = html(
            &[
                card(
                    "みなと川医師会",
                    "みなと川市",
                    "在宅医療を支える医師会です。",
                ),
                card("さくら台医師会", "", ""),
            ],
            Lang::Ja,
        );
        assert!(page.contains("<html lang=\"ja\""));
        assert!(page.contains(Translator::new(Lang::Ja).get("landing.title")));
        assert!(page.contains("足跡"));
        assert!(page.contains("みなと川医師会"));
        assert!(page.contains("みなと川市"));
        assert!(page.contains("在宅医療を支える医師会です。"));
        assert!(page.contains("さくら台医師会"));
        assert!(!page.contains(Translator::new(Lang::Ja).get("associations.empty")));
        assert_eq!(page.matches("<h1").count(), 1);
        assert!(page.contains("href=\"#main\""));
        assert!(page.contains(&assets::urls().css));
        assert!(page.contains(&assets::urls().js));
    }

    #[test]
    fn association_text_is_html_escaped() {
        let page = html(
            &[card(
                "<script>alert(1)</script>医師会",
                "\"area\" & <b>",
                "<img src=x onerror=alert(1)>",
            )],
            Lang::Ja,
        );
        assert!(!page.contains("<script>alert(1)</script>"));
        assert!(!page.contains("<img src=x"));
        assert!(!page.contains("<b>"));
        assert!(
            page.contains("&#60;script&#62;alert(1)&#60;/script&#62;医師会"),
            "{page}"
        );
    }

    #[test]
    fn no_inline_scripts_or_styles() {
        let page = html(&[card("みなと川医師会", "", "")], Lang::Ja);
        assert!(!page.contains("<style"));
        assert!(!page.contains("style="));
        for (i, _) in page.match_indices("<script") {
            let tag = &page[i..i + page[i..].find('>').expect("tag closes")];
            assert!(tag.contains(" src=\"/static/"), "inline script: {tag}");
        }
    }

    #[test]
    fn an_empty_deployment_gets_a_friendly_message() {
        let page = html(&[], Lang::Ja);
        assert!(page.contains(Translator::new(Lang::Ja).get("associations.empty")));
        assert!(!page.contains("class=\"card\""));
    }

    #[test]
    fn english_visitors_get_english_and_the_switch_marks_it() {
        let page = html(&[], Lang::En);
        assert!(page.contains("<html lang=\"en\""));
        assert!(page.contains(Translator::new(Lang::En).get("landing.title")));
        assert!(page.contains("href=\"/lang/ja?next=/\""));
        let en_link = page.find("href=\"/lang/en?next=/\"").expect("english link");
        let ja_link = page
            .find("href=\"/lang/ja?next=/\"")
            .expect("japanese link");
        let tag_end = |at: usize| at + page[at..].find('>').expect("tag closes");
        assert!(page[en_link..tag_end(en_link)].contains("aria-current"));
        assert!(!page[ja_link..tag_end(ja_link)].contains("aria-current"));
    }

    #[tokio::test]
    async fn the_landing_response_carries_the_html_headers() {
        let res = render(
            Lang::En,
            Ok(vec![card("みなと川医師会", "", "")]),
            Nav::signed_out(),
        );
        assert_eq!(res.status(), StatusCode::OK);
        let h = res.headers();
        assert_eq!(h[CONTENT_TYPE], "text/html; charset=utf-8");
        assert_eq!(h["cache-control"], "no-store");
        assert_eq!(h[CONTENT_LANGUAGE], "en");
        assert_eq!(h[CONTENT_SECURITY_POLICY], html::CSP);
        assert_eq!(h["x-content-type-options"], "nosniff");
        assert_eq!(h["referrer-policy"], "same-origin");
    }

    #[tokio::test]
    async fn a_failure_shows_a_friendly_page_with_only_the_code() {
        let err = AppError::internal(std::io::Error::other("password=hunter2 at db:5432"));
        let res = render(Lang::Ja, Err(err), Nav::signed_out());
        assert_eq!(res.status(), StatusCode::INTERNAL_SERVER_ERROR);
        assert_eq!(res.headers()[CONTENT_LANGUAGE], "ja");
        let page = body(res).await;
        assert!(page.contains(Translator::new(Lang::Ja).get("error.server.title")));
        assert!(page.contains("INTERNAL"));
        assert!(!page.contains("hunter2"));
        assert!(!page.contains("internal error"));

        let err = AppError::new(ErrorCode::AssociationUnavailable, "being upgraded");
        let page = body(render(Lang::En, Err(err), Nav::signed_out())).await;
        assert!(page.contains("ASSOCIATION_UNAVAILABLE"));
        assert!(page.contains(Translator::new(Lang::En).get("error.server.unavailable")));
        assert!(!page.contains("being upgraded"));
    }
}
