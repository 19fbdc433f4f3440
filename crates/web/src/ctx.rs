//! What every page handler needs from a request: language, who is asking (session cookie,
//! address and browser for the audit log), the CSRF token for its forms, and how to answer.

use crate::cookies::{self, SameSite};
use crate::csrf::Csrf;
use crate::html;
use crate::i18n::{negotiate, Lang};
use crate::pages::error;
use crate::pages::language::encode_for_location;
use askama::Template;
use axum::extract::FromRequestParts;
use axum::response::{IntoResponse, Response};
use http::header::{CACHE_CONTROL, LOCATION, SET_COOKIE};
use http::request::Parts;
use http::{HeaderValue, Method, StatusCode};
use musubi_auth::token::is_well_formed;
use musubi_domain::audit::RequestMeta;
use musubi_domain::sessions::{HalfSession, Viewer};
use musubi_domain::{AppError, ErrorCode, Services};
use musubi_telemetry::ClientMeta;
use percent_encoding::{utf8_percent_encode, AsciiSet, CONTROLS};

/// The web session cookie. The GraphQL gateway reads the same cookie
/// (`musubi_graphql::SESSION_COOKIE`); the web crate does not depend on the gateway, so the
/// name is repeated here and must stay the same.
pub(crate) const SESSION_COOKIE: &str = "musubi_session";

/// Set to `1` by `static/app.js` on every page: this browser runs the pages' scripts.
pub(crate) const SCRIPT_COOKIE: &str = "musubi_js";

/// What a query value may not contain unencoded. `/` stays readable: `?next=/home`.
const QUERY_VALUE: &AsciiSet = &CONTROLS
    .add(b' ')
    .add(b'"')
    .add(b'#')
    .add(b'%')
    .add(b'&')
    .add(b'+')
    .add(b'<')
    .add(b'=')
    .add(b'>')
    .add(b'?')
    .add(b'`')
    .add(b'{')
    .add(b'}');

pub(crate) fn encode_query_value(value: &str) -> String {
    utf8_percent_encode(value, QUERY_VALUE).to_string()
}

pub(crate) struct Ctx {
    pub lang: Lang,
    /// The browser came over HTTPS: cookies get `Secure`.
    pub secure: bool,
    /// Address and browser, for the audit log and the list of sessions.
    pub client: RequestMeta,
    pub csrf: Csrf,
    /// This request's path and query, e.g. to come back after signing in.
    pub path: String,
    /// The browser runs the pages' scripts (`static/app.js` sets [`SCRIPT_COOKIE`]): a topic
    /// page then leaves footprints only on what its script reports as seen.
    pub scripted: bool,
    /// The page of this site a form was sent from (same-origin `Referer`).
    referring_page: Option<String>,
    method: Method,
    session_token: Option<String>,
}

impl<S: Send + Sync> FromRequestParts<S> for Ctx {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        let lang = negotiate(&parts.headers);
        let path = parts
            .uri
            .path_and_query()
            .map(|p| p.as_str().to_owned())
            .unwrap_or_else(|| "/".to_owned());
        let csrf = Csrf::for_request(&parts.headers)
            .map_err(|e| fail_page(lang, &path, "making a CSRF token", e))?;
        // Present behind the telemetry middleware; absent in tests that call the router alone.
        let client = parts
            .extensions
            .get::<ClientMeta>()
            .map(|c| RequestMeta::new(c.ip.clone(), c.user_agent.clone()))
            .unwrap_or_default();
        let session_token = cookies::get(&parts.headers, SESSION_COOKIE)
            .filter(|t| is_well_formed(t))
            .map(str::to_owned);
        let scripted = cookies::get(&parts.headers, SCRIPT_COOKIE) == Some("1");
        Ok(Self {
            lang,
            secure: cookies::is_https(parts),
            client,
            csrf,
            path,
            scripted,
            referring_page: crate::csrf::referring_page(&parts.headers),
            method: parts.method.clone(),
            session_token,
        })
    }
}

impl Ctx {
    /// Renders a page; gives the browser its CSRF cookie if it has none yet.
    pub(crate) fn respond(&self, status: StatusCode, page: &impl Template) -> Response {
        let res = html::respond(status, self.lang, page);
        self.with_csrf_cookie(res)
    }

    /// 303 See Other to a local path (already checked by the caller).
    pub(crate) fn redirect(&self, to: &str) -> Response {
        let location = HeaderValue::from_str(&encode_for_location(to))
            .unwrap_or(HeaderValue::from_static("/"));
        let res = (
            StatusCode::SEE_OTHER,
            [
                (LOCATION, location),
                (CACHE_CONTROL, HeaderValue::from_static("no-store")),
            ],
        )
            .into_response();
        self.with_csrf_cookie(res)
    }

    /// Adds the CSRF cookie to a response made elsewhere, if the browser has none yet.
    pub(crate) fn with_csrf_cookie(&self, mut res: Response) -> Response {
        if let Some(c) = self.csrf.set_cookie(self.secure) {
            res.headers_mut().append(SET_COOKIE, c);
        }
        res
    }

    /// Adds the session cookie carrying `token`.
    pub(crate) fn set_session(&self, mut res: Response, token: &str) -> Response {
        res.headers_mut().append(
            SET_COOKIE,
            cookies::session_cookie(SESSION_COOKIE, token, SameSite::Lax, self.secure),
        );
        res
    }

    /// Makes the browser forget its session cookie.
    pub(crate) fn clear_session(&self, mut res: Response) -> Response {
        res.headers_mut().append(
            SET_COOKIE,
            cookies::clear_cookie(SESSION_COOKIE, SameSite::Lax, self.secure),
        );
        res
    }

    /// A new CSRF token for the rest of this response (after signing in). Defence in depth
    /// only: if the system cannot make one, the old token stays.
    pub(crate) fn renew_csrf(&mut self) {
        match Csrf::new() {
            Ok(csrf) => self.csrf = csrf,
            Err(e) => tracing::error!(error = ?e.source, "renewing the CSRF token failed"),
        }
    }

    /// The signed-in person, if the session cookie belongs to a complete session.
    pub(crate) async fn viewer(&self, services: &Services) -> Result<Option<Viewer>, Response> {
        let Some(token) = &self.session_token else {
            return Ok(None);
        };
        services.authenticate(token).await.map_err(|e| {
            if e.code == ErrorCode::RateLimited {
                let wait = e.retry_after.unwrap_or(60);
                error::rate_limited(self.lang, &self.path, wait)
            } else {
                self.fail("reading the session", e)
            }
        })
    }

    /// The signed-in person; anyone else is sent to sign in and brought back here after. A
    /// person no association counts as an active member any more gets the page that says so.
    pub(crate) async fn require_viewer(&self, services: &Services) -> Result<Viewer, Response> {
        self.require_viewer_or(services, |ctx| ctx.to_sign_in())
            .await
    }

    /// [`Ctx::require_viewer`], answering someone not (or no longer) signed in with `signed_out`.
    pub(crate) async fn require_viewer_or(
        &self,
        services: &Services,
        signed_out: impl FnOnce(&Self) -> Response,
    ) -> Result<Viewer, Response> {
        match self.viewer(services).await? {
            Some(v) if !v.has_active_membership() => {
                Err(crate::pages::no_membership::page(self, &v))
            }
            Some(v) => Ok(v),
            None => Err(signed_out(self)),
        }
    }

    /// Where to come back to after signing in: this page, or for a form (whose target cannot
    /// be opened with GET) the page it was sent from.
    pub(crate) fn come_back_to(&self) -> Option<&str> {
        if self.method == Method::GET {
            Some(self.path.as_str())
        } else {
            self.referring_page.as_deref()
        }
    }

    /// 303 to the sign-in page, coming back here after. A form sent after the session ended
    /// says so there (`expired`): its text is on the device (`static/app.js`), not sent.
    pub(crate) fn to_sign_in(&self) -> Response {
        let expired = if self.method == Method::GET {
            ""
        } else {
            "expired=1"
        };
        let to = match self.come_back_to() {
            Some(back) if expired.is_empty() => {
                format!("/signin?next={}", encode_query_value(back))
            }
            Some(back) => format!("/signin?next={}&{expired}", encode_query_value(back)),
            None if expired.is_empty() => "/signin".to_owned(),
            None => format!("/signin?{expired}"),
        };
        self.redirect(&to)
    }

    /// A session that still waits for its second factor (or for one to be set up).
    pub(crate) async fn half_session(
        &self,
        services: &Services,
    ) -> Result<Option<HalfSession>, Response> {
        let Some(token) = &self.session_token else {
            return Ok(None);
        };
        services
            .half_session(token)
            .await
            .map_err(|e| self.fail("reading the half session", e))
    }

    /// The raw session token, for the services that take it.
    pub(crate) fn session_token(&self) -> Option<&str> {
        self.session_token.as_deref()
    }

    /// Logs an unexpected failure and shows the 500 page with only the stable code.
    pub(crate) fn fail(&self, doing: &'static str, e: AppError) -> Response {
        // The retry button reloads with GET: only a page can be reloaded, not a form's target.
        let path = if self.method == Method::GET {
            self.path.as_str()
        } else {
            "/"
        };
        fail_page(self.lang, path, doing, e)
    }
}

fn fail_page(lang: Lang, path: &str, doing: &'static str, e: AppError) -> Response {
    tracing::error!(code = e.code.as_str(), error = %e, source = ?e.source, "{doing} failed");
    error::server_error(lang, path, e.code)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_values_keep_slashes_and_encode_the_rest() {
        assert_eq!(encode_query_value("/home"), "/home");
        assert_eq!(encode_query_value("/a?b=c&d=e#f"), "/a%3Fb%3Dc%26d%3De%23f");
        assert_eq!(encode_query_value("/検索 x"), "/%E6%A4%9C%E7%B4%A2%20x");
    }
}
