//! Passkeys on the web: registering one on this device from `/me/security`, removing one, and
//! signing in with one from `/signin` — no e-mail, no password.
//!
//! The WebAuthn ceremonies need the browser's `navigator.credentials`, so they run in
//! `static/passkey.js`, which calls these JSON endpoints (each behind the CSRF guard: the token
//! travels in the `X-CSRF-Token` header, the body is `application/json`):
//!
//! | Call | Body | Answer |
//! |---|---|---|
//! | `POST /me/passkeys/start` | `{}` | `{"ceremonyId", "options": {"publicKey": …}}` |
//! | `POST /me/passkeys/finish` | `{"ceremonyId", "credential", "name"?}` | `{"passkey": {"id", "name"}, "redirect"}` |
//! | `POST /signin/passkey/start` | `{}` | `{"ceremonyId", "options": {"publicKey": …}}` |
//! | `POST /signin/passkey/finish` | `{"ceremonyId", "credential", "next"?}` | `{"redirect"}` and the session cookie |
//!
//! Binary fields in `options` and `credential` are base64url without padding, as the services
//! (webauthn-rs) read and write them. A failure answers
//! `{"error": {"code": "<STABLE_CODE>", "message": "<plain words in the page's language>"}}`.
//!
//! `POST /me/passkeys/{id}/delete` is an ordinary form and goes back to the security page.

use super::signin::{local_next, rate_limited};
use crate::ctx::Ctx;
use crate::datetime;
use crate::i18n::Translator;
use axum::extract::rejection::JsonRejection;
use axum::extract::{Path, Query, State};
use axum::response::{IntoResponse, Response};
use axum::Json;
use http::header::{CACHE_CONTROL, CONTENT_TYPE};
use http::{HeaderValue, StatusCode, Uri};
use musubi_domain::passkeys::PasskeyCeremony;
use musubi_domain::sessions::{SessionKind, Viewer};
use musubi_domain::{AppError, ErrorCode, Services};
use serde::Deserialize;
use serde_json::{json, Value};
use uuid::Uuid;

const SECURITY: &str = "/me/security";

/// One passkey, as the security page lists it.
pub(crate) struct PasskeyCard {
    pub id: String,
    pub name: String,
    pub created: String,
    /// "Not used yet" when never used.
    pub last_used: Option<String>,
}

/// The passkey part of the security page.
pub(crate) struct PasskeySection {
    /// The server can serve passkeys (it is not reached by an IP address).
    pub available: bool,
    pub passkeys: Vec<PasskeyCard>,
    /// The CSRF token for the forms (and the script's calls).
    pub csrf: String,
    /// Says what just happened (added, removed).
    pub notice: Option<&'static str>,
}

#[derive(Deserialize, Default)]
struct DoneQuery {
    passkey: Option<String>,
}

/// Reads the viewer's passkeys for the security page.
pub(crate) async fn section(
    services: &Services,
    ctx: &Ctx,
    viewer: &Viewer,
    uri: &Uri,
) -> Result<PasskeySection, Response> {
    let t = Translator::new(ctx.lang);
    let passkeys = services
        .my_passkeys(viewer)
        .await
        .map_err(|e| ctx.fail("listing passkeys", e))?
        .into_iter()
        .map(|p| PasskeyCard {
            id: p.id,
            name: p.name,
            created: datetime::date(ctx.lang, p.created_at),
            last_used: p.last_used_at.map(|at| datetime::date_time(ctx.lang, at)),
        })
        .collect();
    let done = Query::<DoneQuery>::try_from_uri(uri)
        .ok()
        .and_then(|q| q.0.passkey);
    let notice = match done.as_deref() {
        Some("added") => Some(t.get("passkey.added")),
        Some("removed") => Some(t.get("passkey.removed")),
        _ => None,
    };
    Ok(PasskeySection {
        available: services.passkeys_available(),
        passkeys,
        csrf: ctx.csrf.form_token().to_owned(),
        notice,
    })
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct FinishRegistration {
    ceremony_id: String,
    credential: Value,
    #[serde(default)]
    name: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct FinishSignIn {
    ceremony_id: String,
    credential: Value,
    #[serde(default)]
    next: Option<String>,
}

/// `POST /me/passkeys/start`.
pub(crate) async fn start_registration(
    State(services): State<Services>,
    ctx: Ctx,
) -> Result<Response, Response> {
    let Some(viewer) = ctx.viewer(&services).await? else {
        return Ok(signed_out(&ctx));
    };
    match services.start_passkey_registration(&viewer).await {
        Ok(c) => Ok(ceremony(c)),
        Err(e) => Ok(json_error(&ctx, "starting a passkey registration", e)),
    }
}

/// `POST /me/passkeys/finish`.
pub(crate) async fn finish_registration(
    State(services): State<Services>,
    ctx: Ctx,
    body: Result<Json<FinishRegistration>, JsonRejection>,
) -> Result<Response, Response> {
    let Some(viewer) = ctx.viewer(&services).await? else {
        return Ok(signed_out(&ctx));
    };
    let Ok(Json(body)) = body else {
        return Ok(not_verified(&ctx));
    };
    let Ok(id) = Uuid::parse_str(&body.ceremony_id) else {
        return Ok(not_verified(&ctx));
    };
    match services
        .finish_passkey_registration(
            &viewer,
            id,
            body.credential,
            body.name.as_deref(),
            &ctx.client,
        )
        .await
    {
        Ok(p) => Ok(json_ok(json!({
            "passkey": { "id": p.id, "name": p.name },
            "redirect": "/me/security?passkey=added",
        }))),
        Err(e) => Ok(json_error(&ctx, "finishing a passkey registration", e)),
    }
}

/// `POST /me/passkeys/{id}/delete` (a form).
pub(crate) async fn delete(
    State(services): State<Services>,
    ctx: Ctx,
    Path(id): Path<String>,
) -> Result<Response, Response> {
    let viewer = ctx.require_viewer(&services).await?;
    match services.delete_passkey(&viewer, &id, &ctx.client).await {
        // Removed twice (two taps, two tabs): the list says the same either way.
        Ok(()) => Ok(ctx.redirect("/me/security?passkey=removed")),
        Err(e) if e.code == ErrorCode::NotFound => Ok(ctx.redirect(SECURITY)),
        Err(e) => Err(ctx.fail("removing a passkey", e)),
    }
}

/// `POST /signin/passkey/start`.
pub(crate) async fn start_sign_in(
    State(services): State<Services>,
    ctx: Ctx,
) -> Result<Response, Response> {
    match services.start_passkey_sign_in(&ctx.client).await {
        Ok(c) => Ok(ceremony(c)),
        Err(e) => Ok(json_error(&ctx, "starting a passkey sign-in", e)),
    }
}

/// `POST /signin/passkey/finish`: on success the session cookie is set (with a new CSRF
/// token, as after any sign-in) and the script goes to `redirect`.
pub(crate) async fn finish_sign_in(
    State(services): State<Services>,
    mut ctx: Ctx,
    body: Result<Json<FinishSignIn>, JsonRejection>,
) -> Result<Response, Response> {
    let failed = |ctx: &Ctx| {
        json_error(
            ctx,
            "finishing a passkey sign-in",
            AppError::new(ErrorCode::InvalidCredentials, "not verified"),
        )
    };
    let Ok(Json(body)) = body else {
        return Ok(failed(&ctx));
    };
    let Ok(id) = Uuid::parse_str(&body.ceremony_id) else {
        return Ok(failed(&ctx));
    };
    let next = local_next(body.next.as_deref())
        .unwrap_or("/home")
        .to_owned();
    match services
        .finish_passkey_sign_in(id, body.credential, SessionKind::Web, &ctx.client)
        .await
    {
        Ok(signed_in) => {
            // A token planted before signing in must not outlive it.
            ctx.renew_csrf();
            let res = ctx.with_csrf_cookie(json_ok(json!({ "redirect": next })));
            Ok(ctx.set_session(res, &signed_in.token))
        }
        Err(e) => Ok(json_error(&ctx, "finishing a passkey sign-in", e)),
    }
}

fn ceremony(c: PasskeyCeremony) -> Response {
    json_ok(json!({ "ceremonyId": c.id.to_string(), "options": c.options }))
}

fn json_ok(body: Value) -> Response {
    json_response(StatusCode::OK, &body)
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

fn error_body(code: ErrorCode, message: &str) -> Value {
    json!({ "error": { "code": code.as_str(), "message": message } })
}

fn signed_out(ctx: &Ctx) -> Response {
    let message = Translator::new(ctx.lang).get("passkey.error.signed_out");
    json_response(
        StatusCode::UNAUTHORIZED,
        &error_body(ErrorCode::Unauthenticated, message),
    )
}

fn not_verified(ctx: &Ctx) -> Response {
    let message = Translator::new(ctx.lang).get("passkey.error.not_verified");
    json_response(
        StatusCode::BAD_REQUEST,
        &error_body(ErrorCode::InvalidInput, message),
    )
}

/// A failure as JSON: the stable code and plain words for the person. Only unexpected
/// failures are logged (with their cause); they reach the script as `INTERNAL`.
fn json_error(ctx: &Ctx, doing: &'static str, e: AppError) -> Response {
    let t = Translator::new(ctx.lang);
    let (status, key) = match e.code {
        ErrorCode::PasskeysUnavailable => {
            (StatusCode::SERVICE_UNAVAILABLE, "passkey.error.unavailable")
        }
        ErrorCode::Unauthenticated => (StatusCode::UNAUTHORIZED, "passkey.error.signed_out"),
        ErrorCode::InvalidCredentials => (StatusCode::UNAUTHORIZED, "passkey.error.sign_in_failed"),
        ErrorCode::InvalidInput => (StatusCode::BAD_REQUEST, "passkey.error.not_verified"),
        ErrorCode::Conflict => (StatusCode::CONFLICT, "passkey.error.already_registered"),
        ErrorCode::RateLimited => {
            return rate_limited(ctx, &e, |_, message| {
                json_response(
                    StatusCode::TOO_MANY_REQUESTS,
                    &error_body(ErrorCode::RateLimited, &message),
                )
            });
        }
        _ => {
            tracing::error!(code = e.code.as_str(), error = %e, source = ?e.source, "{doing} failed");
            let body = error_body(e.code, t.get("passkey.error.server"));
            return json_response(StatusCode::INTERNAL_SERVER_ERROR, &body);
        }
    };
    json_response(status, &error_body(e.code, t.get(key)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::assets;
    use crate::i18n::Lang;
    use crate::layout::Nav;
    use crate::pages::render_tests::assert_csp_clean;
    use crate::pages::security::SecurityPage;
    use askama::Template;

    fn security_page(available: bool, passkeys: Vec<PasskeyCard>) -> String {
        SecurityPage {
            t: Translator::new(Lang::Ja),
            assets: assets::urls(),
            nav: Nav::signed_in("川村 健一", "CSRF"),
            current_path: "/me/security",
            enabled_since: None,
            passkeys: PasskeySection {
                available,
                passkeys,
                csrf: "CSRF".into(),
                notice: None,
            },
        }
        .render()
        .expect("renders")
    }

    #[test]
    fn the_security_page_lists_passkeys_and_offers_to_add_one_with_the_script() {
        let page = security_page(
            true,
            vec![PasskeyCard {
                id: "AbC-_9".into(),
                name: "<b>iPhone</b>".into(),
                created: "2026年3月4日".into(),
                last_used: None,
            }],
        );
        assert_csp_clean(&page);
        assert!(page.contains("action=\"/me/passkeys/AbC-_9/delete\""));
        assert!(!page.contains("<b>iPhone</b>"), "names are escaped");
        assert!(page.contains("まだ使っていません"));
        // Hidden until the script finds WebAuthn; the token for its calls is in the form.
        assert!(page.contains("data-passkey-register hidden"));
        assert!(page.contains(&format!("src=\"{}\"", assets::urls().passkey_js)));
        assert!(page.contains("この端末にパスキーを登録"));
    }

    #[test]
    fn without_a_host_name_passkeys_are_said_to_be_unavailable() {
        let page = security_page(false, Vec::new());
        assert_csp_clean(&page);
        assert!(page.contains("data-passkey-unavailable"));
        assert!(!page.contains("data-passkey-register"));
        assert!(!page.contains(&assets::urls().passkey_js));
        assert!(page.contains("パスキーは、まだ登録していません。"));
    }

    #[test]
    fn error_answers_carry_a_stable_code_and_plain_words() {
        let body = error_body(ErrorCode::PasskeysUnavailable, "使えません");
        assert_eq!(body["error"]["code"], "PASSKEYS_UNAVAILABLE");
        assert_eq!(body["error"]["message"], "使えません");
    }
}
