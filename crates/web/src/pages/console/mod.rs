//! The association console at `/a/{slug}/console/…`: what an association's administrators
//! use to admit and remove members, set policy and read the audit log, on a phone too.
//!
//! The association comes from the path and is resolved by the services; an unknown one is
//! the normal 404 page. The services authorize every call: someone who is not that
//! association's administrator is answered `NOT_FOUND` (and the attempt is audited as
//! `access.denied`), and gets exactly the same 404 page, so a console they may not use and an
//! association that does not exist look alike. Every change is a CSRF-checked form (the
//! guard in front of the router) answered with 303 back to the page and a short message in
//! the query (`?done=…` or `?error=…`: fixed codes, never text from the request).

pub(crate) mod audit;
pub(crate) mod home;
pub(crate) mod invite;
pub(crate) mod members;
pub(crate) mod settings;

use crate::ctx::{encode_query_value, Ctx};
use crate::i18n::Translator;
use crate::pages::flash::lookup;
pub(crate) use crate::pages::flash::Flash;
use crate::pages::place::Place;
pub(crate) use crate::pages::place::{not_found_page, page_error};
use axum::extract::Query;
use axum::response::Response;
use chrono::{DateTime, Utc};
use http::Uri;
use musubi_config::time::jst;
use musubi_domain::types::{AssociationRole, DoctorKind, Profession};
use musubi_domain::{AppResult, ErrorCode, Services};
use serde::Deserialize;
use uuid::Uuid;

/// The signed-in person and the association of the path ([`Place`]), on a console page.
pub(crate) struct Console(Place);

impl std::ops::Deref for Console {
    type Target = Place;

    fn deref(&self) -> &Place {
        &self.0
    }
}

/// What every console page shows above its content: which association, and where in the
/// console the page is (for the console's own navigation).
pub(crate) struct ConsoleHead {
    pub slug: String,
    pub association: String,
    /// `home`, `members`, `invite`, `settings` or `audit`.
    pub section: &'static str,
}

impl Console {
    /// Signed in (or sent to sign in and brought back), and an association that exists (or the
    /// normal 404 page).
    pub(crate) async fn open(services: &Services, ctx: &Ctx, slug: &str) -> Result<Self, Response> {
        Ok(Self(Place::open(services, ctx, slug).await?))
    }

    pub(crate) fn head(&self, section: &'static str) -> ConsoleHead {
        ConsoleHead {
            slug: self.tenant.slug.clone(),
            association: self.tenant.name.clone(),
            section,
        }
    }

    /// `/a/{slug}/console/{page}` (`page` empty for the console's first page).
    pub(crate) fn path(&self, page: &str) -> String {
        console_path(&self.tenant.slug, page)
    }

    /// Whether the viewer is an administrator here. Not an authorization (the services did
    /// that): only to tell "you may not" (the 404 page) from "it is gone" (a message) after a
    /// service answered `NOT_FOUND`.
    fn viewer_is_admin(&self) -> bool {
        self.viewer
            .memberships()
            .iter()
            .any(|m| m.association_id == self.tenant.id && m.role == AssociationRole::Admin)
    }

    /// The answer to a form: 303 back to `page` with a message. `member` names the person acted
    /// on, so the message can say who.
    pub(crate) fn after_action(
        &self,
        ctx: &Ctx,
        page: &str,
        result: AppResult<()>,
        done: &'static str,
        member: Option<Uuid>,
    ) -> Response {
        let back = self.path(page);
        let with_member = |query: String| match member {
            Some(id) => format!("{query}&member={id}"),
            None => query,
        };
        let e = match result {
            Ok(()) => {
                return ctx.redirect(&format!("{back}?{}", with_member(format!("done={done}"))))
            }
            Err(e) => e,
        };
        let error = match e.code {
            ErrorCode::NotFound if !self.viewer_is_admin() => return not_found_page(ctx),
            ErrorCode::NotFound => "not_found".to_owned(),
            ErrorCode::LastAdmin => "last_admin".to_owned(),
            ErrorCode::AccountWideActionForbidden => "account_wide".to_owned(),
            ErrorCode::CannotDeactivateSelf => "self".to_owned(),
            ErrorCode::InvalidInput => "invalid".to_owned(),
            ErrorCode::MailFailed => "mail_failed".to_owned(),
            ErrorCode::RateLimited => {
                let minutes = e.retry_after.unwrap_or(60).max(1).div_ceil(60);
                format!("rate_limited&wait={minutes}")
            }
            _ => return ctx.fail("a console action", e),
        };
        ctx.redirect(&format!("{back}?{}", with_member(format!("error={error}"))))
    }
}

pub(crate) fn console_path(slug: &str, page: &str) -> String {
    if page.is_empty() {
        format!("/a/{slug}/console")
    } else {
        format!("/a/{slug}/console/{page}")
    }
}

/// A parsed `?done=…` / `?error=…` from the redirect after a form.
#[derive(Debug, Default, Deserialize)]
pub(crate) struct FlashQuery {
    done: Option<String>,
    error: Option<String>,
    member: Option<String>,
    wait: Option<String>,
}

/// The messages the console's forms may leave: (code, catalog key). Anything else in the
/// query is ignored, so a crafted link cannot make the page say something of its choosing.
const DONE: &[(&str, &str)] = &[
    ("made_admin", "console.done.made_admin"),
    ("made_member", "console.done.made_member"),
    ("deactivated", "console.done.deactivated"),
    ("reactivated", "console.done.reactivated"),
    ("signed_out", "console.done.signed_out"),
    ("second_factor_reset", "console.done.second_factor_reset"),
    ("invite_sent", "console.done.invite_sent"),
    ("invitation_revoked", "console.done.invitation_revoked"),
    ("settings_saved", "console.done.settings_saved"),
];

const ERRORS: &[(&str, &str)] = &[
    ("not_found", "console.error.not_found"),
    ("last_admin", "console.error.last_admin"),
    ("self", "console.error.self"),
    ("invalid", "console.error.invalid"),
    ("mail_failed", "console.error.mail_failed"),
    ("rate_limited", "console.error.rate_limited"),
    ("account_wide", "console.error.account_wide"),
];

impl FlashQuery {
    pub(crate) fn from_uri(uri: &Uri) -> Self {
        Query::<Self>::try_from_uri(uri)
            .map(|q| q.0)
            .unwrap_or_default()
    }

    /// The person the message is about, if the query names one.
    pub(crate) fn member(&self) -> Option<Uuid> {
        self.member.as_deref().and_then(|m| Uuid::parse_str(m).ok())
    }

    /// The message, with `name` (of [`FlashQuery::member`]) where the text has a place for it.
    pub(crate) fn message(&self, t: Translator, name: Option<&str>) -> Option<Flash> {
        let who = match name {
            Some(n) => t.format("layout.user_name", n),
            None => t.get("console.someone").to_owned(),
        };
        if let Some(key) = lookup(DONE, self.done.as_deref()) {
            return Some(Flash {
                text: t.format(key, &who),
                success: true,
            });
        }
        let key = lookup(ERRORS, self.error.as_deref())?;
        let text = if key == "console.error.rate_limited" {
            let minutes = self
                .wait
                .as_deref()
                .and_then(|w| w.parse::<u32>().ok())
                .filter(|m| (1..=24 * 60).contains(m))
                .unwrap_or(1);
            t.format(key, &minutes.to_string())
        } else {
            t.format(key, &who)
        };
        Some(Flash {
            text,
            success: false,
        })
    }
}

/// "2026年3月4日 14:05:09" / "4 Mar 2026, 14:05:09": the audit log wants the seconds.
pub(crate) fn date_time_seconds(t: Translator, at: DateTime<Utc>) -> String {
    let local = at.with_timezone(&jst());
    if t.is("ja") {
        local.format("%Y年%-m月%-d日 %H:%M:%S").to_string()
    } else {
        local.format("%-d %b %Y, %H:%M:%S").to_string()
    }
}

/// The profession as people say it: 看護師, 医師（連携医）.
pub(crate) fn profession_label(
    t: Translator,
    profession: Profession,
    doctor_kind: Option<DoctorKind>,
) -> String {
    let key = format!("console.profession.{}", profession.code());
    let name = t.get(&key);
    match doctor_kind {
        Some(kind) => {
            let kind_key = format!("console.doctor_kind.{}", kind.code());
            format!("{name}（{}）", t.get(&kind_key))
        }
        None => name.to_owned(),
    }
}

/// A query string from the pairs whose value is not empty (`a=1&b=2`).
pub(crate) fn query_string(pairs: &[(&str, &str)]) -> String {
    pairs
        .iter()
        .filter(|(_, v)| !v.is_empty())
        .map(|(k, v)| format!("{k}={}", encode_query_value(v)))
        .collect::<Vec<_>>()
        .join("&")
}

#[cfg(test)]
mod tests;
