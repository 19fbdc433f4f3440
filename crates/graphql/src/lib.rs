//! The GraphQL gateway: one `/graphql` endpoint (and `/graphql/ws` for subscriptions) that
//! routes each request to an association's schema, with limits and stable error codes.

mod auth;
mod calendar;
mod console;
mod error;
mod files;
mod gateway;
pub mod guard;
mod invitations;
mod live;
mod messages;
mod metrics;
mod notifications;
mod passkeys;
mod patients;
mod query;
mod request;
mod search;
mod sns;

pub use error::to_gql_error;
pub use gateway::{
    overloaded, rate_limited, router, session_token, Gateway, ASSOCIATION_HEADER, SESSION_COOKIE,
};
pub use query::{build_schema, sdl, MusubiSchema};

use musubi_domain::audit::RequestMeta;
use musubi_domain::sessions::Viewer;
use musubi_domain::{AppError, AppResult, ErrorCode, Tenant};
use musubi_telemetry::RequestId;

/// Who is asking and where the request was routed: resolved once, in the gateway, before any
/// resolver runs.
#[derive(Clone, Debug)]
pub struct RequestContext {
    pub tenant: Option<Tenant>,
    pub request_id: RequestId,
    pub viewer: Option<Viewer>,
    /// The bearer token or session cookie the request came with (for sign-out and second factor).
    pub token: Option<String>,
    pub client: RequestMeta,
}

impl RequestContext {
    /// The signed-in person, or `UNAUTHENTICATED`; `NO_ACTIVE_MEMBERSHIP` when no association
    /// counts them as an active member any more.
    pub fn viewer(&self) -> AppResult<&Viewer> {
        let viewer = self.account()?;
        viewer.require_active_membership()?;
        Ok(viewer)
    }

    /// The signed-in person even without an active membership: only for what concerns the
    /// account itself (`me`, its sessions, signing out).
    pub fn account(&self) -> AppResult<&Viewer> {
        self.viewer
            .as_ref()
            .ok_or_else(|| AppError::new(ErrorCode::Unauthenticated, "please sign in"))
    }

    /// The association this request is routed to, or `ASSOCIATION_REQUIRED`.
    pub fn tenant(&self) -> AppResult<&Tenant> {
        self.tenant.as_ref().ok_or_else(|| {
            AppError::new(
                ErrorCode::AssociationRequired,
                "this field needs the Musubi-Association header (an association's slug)",
            )
        })
    }
}
