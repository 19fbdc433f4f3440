//! `GET /me/sessions`: where the person is signed in, with a button to end each session, and
//! `POST /me/sessions/{id}/revoke`, `POST /me/sessions/revoke-all`.

use crate::assets::{self, AssetUrls};
use crate::ctx::Ctx;
use crate::i18n::Translator;
use crate::layout::Nav;
use crate::{datetime, device};
use askama::Template;
use axum::extract::{Path, Query, State};
use axum::response::Response;
use http::{StatusCode, Uri};
use musubi_domain::types::SessionKind;
use musubi_domain::{ErrorCode, Services};
use serde::Deserialize;
use uuid::Uuid;

/// One session, as the list shows it.
pub(crate) struct SessionCard {
    pub id: String,
    /// "iPhone / Safari".
    pub device: String,
    pub ip: String,
    pub last_used: String,
    pub signed_in: String,
    /// This browser's own session.
    pub current: bool,
    /// Signed in with the password but the second factor never completed.
    pub pending: bool,
}

#[derive(Template)]
#[template(path = "my_sessions.html")]
pub(crate) struct SessionsPage<'a> {
    pub t: Translator,
    pub assets: &'static AssetUrls,
    pub nav: Nav<'a>,
    pub current_path: &'a str,
    pub csrf: &'a str,
    pub sessions: Vec<SessionCard>,
    pub notice: Option<&'static str>,
}

#[derive(Deserialize, Default)]
pub(crate) struct DoneQuery {
    ended: Option<String>,
}

pub(crate) async fn show(
    State(services): State<Services>,
    ctx: Ctx,
    uri: Uri,
) -> Result<Response, Response> {
    let viewer = ctx.require_viewer(&services).await?;
    let rows = services
        .my_sessions(&viewer)
        .await
        .map_err(|e| ctx.fail("listing sessions", e))?;
    let t = Translator::new(ctx.lang);
    let sessions = rows
        .into_iter()
        .map(|s| SessionCard {
            id: s.id.to_string(),
            device: device_name(t, &s.user_agent, s.kind),
            ip: if s.ip.is_empty() {
                t.get("sessions.unknown_place").to_owned()
            } else {
                s.ip
            },
            last_used: datetime::date_time(ctx.lang, s.last_seen_at),
            signed_in: datetime::date_time(ctx.lang, s.created_at),
            current: s.id == viewer.session().id,
            pending: !s.second_factor_done,
        })
        .collect();
    let ended = Query::<DoneQuery>::try_from_uri(&uri)
        .ok()
        .and_then(|q| q.0.ended)
        .is_some();
    let page = SessionsPage {
        t,
        assets: assets::urls(),
        nav: Nav::signed_in(&viewer.user().name, ctx.csrf.form_token()),
        current_path: "/me/sessions",
        csrf: ctx.csrf.form_token(),
        sessions,
        notice: ended.then(|| t.get("sessions.ended")),
    };
    Ok(ctx.respond(StatusCode::OK, &page))
}

/// "iPhone / Safari"; "App (API)" for API clients; parts not recognised are said plainly.
fn device_name(t: Translator, user_agent: &str, kind: SessionKind) -> String {
    let d = device::from_user_agent(user_agent);
    let name = match (d.system, d.browser) {
        (Some(s), Some(b)) => format!("{s} / {b}"),
        (Some(s), None) => s.to_owned(),
        (None, Some(b)) => b.to_owned(),
        (None, None) => t.get("sessions.unknown_device").to_owned(),
    };
    if kind == SessionKind::Api {
        format!("{}（{name}）", t.get("sessions.api_client"))
    } else {
        name
    }
}

pub(crate) async fn revoke(
    State(services): State<Services>,
    ctx: Ctx,
    Path(id): Path<String>,
) -> Result<Response, Response> {
    let viewer = ctx.require_viewer(&services).await?;
    let Ok(id) = Uuid::parse_str(&id) else {
        return Ok(crate::pages::not_found::page(ctx.lang, "/me/sessions"));
    };
    if id == viewer.session().id {
        // Ending this very session is signing out.
        services
            .sign_out(&viewer, &ctx.client)
            .await
            .map_err(|e| ctx.fail("signing out", e))?;
        return Ok(ctx.clear_session(ctx.redirect("/")));
    }
    match services.revoke_my_session(&viewer, id).await {
        // Already gone (ended twice, or expired meanwhile): the list says the same either way.
        Ok(()) => Ok(ctx.redirect("/me/sessions?ended=1")),
        Err(e) if e.code == ErrorCode::NotFound => Ok(ctx.redirect("/me/sessions?ended=1")),
        Err(e) => Err(ctx.fail("ending a session", e)),
    }
}

pub(crate) async fn revoke_all(
    State(services): State<Services>,
    ctx: Ctx,
) -> Result<Response, Response> {
    let viewer = ctx.require_viewer(&services).await?;
    services
        .sign_out_everywhere(&viewer, &ctx.client)
        .await
        .map_err(|e| ctx.fail("signing out everywhere", e))?;
    Ok(ctx.clear_session(ctx.redirect("/")))
}
