//! Help pages anyone may read, signed in or not.
//!
//! - `GET /help/mail`: receiving Musubi's mails on a phone carrier's address (docomo, au,
//!   SoftBank, 楽天モバイル), which often refuses mail sent from a computer until the sender's
//!   domain is allowed (指定受信 / 受信リスト設定); the spam folder; and that the mails never
//!   hold patient information. The mails link here.
//!
//! The sender's address is inside the services' mailer, which the web layer cannot read: the
//! page names the host this site is reached at (usually the sender's domain too) and tells
//! people to allow the domain shown in the mail's From.

use crate::assets::{self, AssetUrls};
use crate::ctx::Ctx;
use crate::i18n::Translator;
use crate::layout::Nav;
use askama::Template;
use axum::extract::State;
use axum::response::Response;
use http::{HeaderMap, StatusCode};
use musubi_domain::Services;

#[derive(Template)]
#[template(path = "help_mail.html")]
pub(crate) struct HelpMailPage<'a> {
    pub t: Translator,
    pub assets: &'static AssetUrls,
    pub nav: Nav<'a>,
    pub current_path: &'a str,
    /// This site's host (no port), when the request says it in a form worth showing.
    pub domain: Option<String>,
    pub signed_in: bool,
}

/// The host people reach this site at, as their browser asked for it, without the port:
/// letters, digits, dots and hyphens only (anything else is not shown).
pub(crate) fn site_domain(headers: &HeaderMap) -> Option<String> {
    ["x-forwarded-host", "host"].into_iter().find_map(|name| {
        let value = headers.get(name)?.to_str().ok()?;
        let host = value.split(',').next()?.trim();
        // `example.jp:8443` → `example.jp`; an IPv6 literal (`[::1]:8080`) is no domain.
        let host = host.split(':').next()?.trim_end_matches('.');
        let ok = !host.is_empty()
            && host.len() <= 253
            && host
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-'));
        ok.then(|| host.to_ascii_lowercase())
    })
}

pub(crate) async fn mail(
    State(services): State<Services>,
    ctx: Ctx,
    headers: HeaderMap,
) -> Result<Response, Response> {
    let viewer = ctx.viewer(&services).await?;
    let nav = match &viewer {
        Some(v) => Nav::signed_in(&v.user().name, ctx.csrf.form_token()),
        None => Nav::signed_out(),
    };
    let page = HelpMailPage {
        t: Translator::new(ctx.lang),
        assets: assets::urls(),
        nav,
        current_path: "/help/mail",
        domain: site_domain(&headers),
        signed_in: viewer.is_some(),
    };
    Ok(ctx.respond(StatusCode::OK, &page))
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(*k, HeaderValue::from_static(v));
        }
        h
    }

    #[test]
    fn the_domain_is_the_host_without_its_port() {
        assert_eq!(
            site_domain(&headers(&[("host", "Care-Net.Example.jp:8443")])).as_deref(),
            Some("care-net.example.jp")
        );
        assert_eq!(
            site_domain(&headers(&[
                ("host", "backend:8080"),
                ("x-forwarded-host", "care-net.example.jp, proxy")
            ]))
            .as_deref(),
            Some("care-net.example.jp")
        );
        assert_eq!(site_domain(&headers(&[("host", "<script>")])), None);
        assert_eq!(site_domain(&headers(&[("host", "[::1]:8080")])), None);
        assert_eq!(site_domain(&HeaderMap::new()), None);
    }
}
