//! Web push on the web (see `musubi_domain::push`): the section 「この端末に通知」 of
//! `/settings/notifications`, the service worker and the calls of `static/app.js`.
//!
//! | Call | Body | Answer |
//! |---|---|---|
//! | `GET /sw.js` | — | the service worker (scope `/`): shows pushes, opens their address |
//! | `POST /settings/push` | the browser's `PushSubscription.toJSON()`: `{"endpoint", "keys": {"p256dh", "auth"}}` | `{"redirect"}` |
//! | `POST /settings/push/remove` | form: `csrf`, `id` | 303 back to the page |
//!
//! `POST /settings/push` is JSON with the page's CSRF token in `X-CSRF-Token` (as passkeys);
//! a failure answers `{"error": {"code", "field"?, "message"}}` with the message in the page's
//! language. Subscribing needs the browser's Push API, so there is no form for it; the page
//! says so, and on an iPhone that Musubi must first be added to the home screen.

use crate::ctx::Ctx;
use crate::datetime;
use crate::device;
use crate::i18n::Translator;
use crate::pages::notifications::PATH;
use crate::pages::place::page_error;
use axum::extract::rejection::{FormRejection, JsonRejection};
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use axum::{Form, Json};
use http::header::{
    CACHE_CONTROL, CONTENT_SECURITY_POLICY, CONTENT_TYPE, USER_AGENT, X_CONTENT_TYPE_OPTIONS,
};
use http::{HeaderMap, HeaderValue, StatusCode};
use musubi_domain::sessions::Viewer;
use musubi_domain::{AppError, ErrorCode, Services};
use serde::Deserialize;
use serde_json::{json, Value};
use uuid::Uuid;

/// The service worker, served from the root so that its scope is the whole site.
const SERVICE_WORKER: &str = include_str!("../../static/sw.js");

/// One browser that receives pushes.
pub(crate) struct DeviceLine {
    pub id: String,
    /// The page's script marks the line of the browser it runs in.
    pub endpoint: String,
    pub label: String,
    pub since: String,
    pub state: String,
    /// The last deliveries failed: said in words, not by colour alone.
    pub failing: bool,
}

/// The section 「この端末に通知」.
pub(crate) struct PushSection {
    /// The VAPID public key for `applicationServerKey`; empty when it cannot be read now (the
    /// section then says the feature is unavailable).
    pub key: String,
    pub devices: Vec<DeviceLine>,
}

/// Reads the viewer's devices and the server's key for the settings page.
pub(crate) async fn section(
    services: &Services,
    ctx: &Ctx,
    viewer: &Viewer,
) -> Result<PushSection, Response> {
    let t = Translator::new(ctx.lang);
    let key = match services.push_public_key().await {
        Ok(k) => k,
        Err(e) => {
            tracing::error!(code = e.code.as_str(), error = %e, "reading the VAPID key failed");
            String::new()
        }
    };
    let devices = services
        .push_devices(viewer)
        .await
        .map_err(|e| ctx.fail("listing push devices", e))?
        .into_iter()
        .map(|d| DeviceLine {
            id: d.id.to_string(),
            label: if d.label.is_empty() {
                t.get("push.devices.unknown").to_owned()
            } else {
                d.label
            },
            endpoint: d.endpoint,
            since: t.format(
                "push.devices.since",
                &datetime::date(ctx.lang, d.created_at),
            ),
            state: match (d.failures, d.last_success_at) {
                (0, Some(at)) => t.format("push.devices.last", &datetime::date_time(ctx.lang, at)),
                (0, None) => t.get("push.devices.none_yet").to_owned(),
                _ => t.get("push.devices.failing").to_owned(),
            },
            failing: d.failures > 0,
        })
        .collect();
    Ok(PushSection { key, devices })
}

/// `GET /sw.js`: never cached for long (browsers look for a new one at least daily anyway).
pub(crate) async fn service_worker() -> Response {
    (
        [
            (
                CONTENT_TYPE,
                HeaderValue::from_static("text/javascript; charset=utf-8"),
            ),
            (CACHE_CONTROL, HeaderValue::from_static("no-cache")),
            (X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff")),
            (
                CONTENT_SECURITY_POLICY,
                HeaderValue::from_static("default-src 'self'"),
            ),
        ],
        SERVICE_WORKER,
    )
        .into_response()
}

#[derive(Debug, Default, Deserialize)]
pub(crate) struct SubscriptionKeys {
    #[serde(default)]
    p256dh: String,
    #[serde(default)]
    auth: String,
}

/// What `PushSubscription.toJSON()` gives (`expirationTime` is ignored).
#[derive(Debug, Default, Deserialize)]
pub(crate) struct SubscriptionJson {
    #[serde(default)]
    endpoint: String,
    #[serde(default)]
    keys: SubscriptionKeys,
}

/// `POST /settings/push`.
pub(crate) async fn subscribe(
    State(services): State<Services>,
    ctx: Ctx,
    headers: HeaderMap,
    body: Result<Json<SubscriptionJson>, JsonRejection>,
) -> Result<Response, Response> {
    let t = Translator::new(ctx.lang);
    let Some(viewer) = ctx.viewer(&services).await? else {
        return Ok(json_error(
            StatusCode::UNAUTHORIZED,
            ErrorCode::Unauthenticated,
            None,
            t.get("push.error.signed_out"),
        ));
    };
    let Ok(Json(sub)) = body else {
        return Ok(json_error(
            StatusCode::BAD_REQUEST,
            ErrorCode::InvalidInput,
            None,
            t.get("push.error.refused"),
        ));
    };
    let agent = headers
        .get(USER_AGENT)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    let label = device_label(agent);
    match services
        .subscribe_push(
            &viewer,
            &sub.endpoint,
            &sub.keys.p256dh,
            &sub.keys.auth,
            &label,
        )
        .await
    {
        Ok(()) => Ok(json_response(
            StatusCode::OK,
            &json!({ "redirect": format!("{PATH}?done=push_added#push") }),
        )),
        Err(e) if e.code == ErrorCode::InvalidInput => Ok(json_error(
            StatusCode::BAD_REQUEST,
            e.code,
            e.field,
            t.get("push.error.refused"),
        )),
        Err(e) => {
            tracing::error!(code = e.code.as_str(), error = %e, source = ?e.source, "subscribing to pushes failed");
            Ok(json_error(
                StatusCode::INTERNAL_SERVER_ERROR,
                e.code,
                None,
                t.get("push.error.server"),
            ))
        }
    }
}

/// "iPhone / Safari": the system and browser only.
fn device_label(user_agent: &str) -> String {
    let d = device::from_user_agent(user_agent);
    match (d.system, d.browser) {
        (Some(s), Some(b)) => format!("{s} / {b}"),
        (Some(x), None) | (None, Some(x)) => x.to_owned(),
        (None, None) => String::new(),
    }
}

/// One device's 「解除」.
#[derive(Debug, Default, Deserialize)]
pub(crate) struct RemoveForm {
    #[serde(default)]
    id: String,
}

/// `POST /settings/push/remove`. A device that is not the person's is the normal 404 page.
pub(crate) async fn remove(
    State(services): State<Services>,
    ctx: Ctx,
    form: Result<Form<RemoveForm>, FormRejection>,
) -> Result<Response, Response> {
    let viewer = ctx.require_viewer(&services).await?;
    let form = form.map(|f| f.0).unwrap_or_default();
    let removed = match Uuid::parse_str(form.id.trim()) {
        Ok(id) => services
            .remove_push_device(&viewer, id)
            .await
            .map_err(|e| page_error(&ctx, "removing a push device", e))?,
        Err(_) => false,
    };
    if removed {
        Ok(ctx.redirect(&format!("{PATH}?done=push_removed#push")))
    } else {
        Err(page_error(
            &ctx,
            "removing a push device",
            AppError::not_found(),
        ))
    }
}

fn json_response(status: StatusCode, body: &Value) -> Response {
    (
        status,
        [
            (
                CONTENT_TYPE,
                HeaderValue::from_static("application/json; charset=utf-8"),
            ),
            (CACHE_CONTROL, HeaderValue::from_static("no-store")),
        ],
        body.to_string(),
    )
        .into_response()
}

fn json_error(
    status: StatusCode,
    code: ErrorCode,
    field: Option<&'static str>,
    message: &str,
) -> Response {
    let mut error = json!({ "code": code.as_str(), "message": message });
    if let Some(f) = field {
        error["field"] = json!(f);
    }
    json_response(status, &json!({ "error": error }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn devices_are_named_by_system_and_browser_only() {
        assert_eq!(
            device_label(
                "Mozilla/5.0 (iPhone; CPU iPhone OS 17_4 like Mac OS X) AppleWebKit/605.1.15 \
                 (KHTML, like Gecko) Version/17.4 Mobile/15E148 Safari/604.1"
            ),
            "iPhone / Safari"
        );
        assert_eq!(device_label(""), "");
    }

    #[test]
    fn the_service_worker_opens_only_this_sites_addresses() {
        for needed in [
            "addEventListener(\"push\"",
            "addEventListener(\"notificationclick\"",
            "=== self.location.origin",
            "/static/icon-192.png",
        ] {
            assert!(SERVICE_WORKER.contains(needed), "{needed}");
        }
        // No fetch handler: pages (which may hold patient information) are never cached.
        assert!(!SERVICE_WORKER.contains("\"fetch\""));
    }
}
