//! Passkeys through the API: registering them (signed in), listing and removing them, and
//! signing in with one (no e-mail or password). Options and credentials travel as JSON in the
//! WebAuthn shapes, with binary fields in base64url; see `docs/security.md`.

use crate::auth::{SignInNext, SignInPayload};
use crate::request::{parts, viewer, OrGql};
use crate::to_gql_error;
use async_graphql::{Context, Json, Object, SimpleObject, ID};
use chrono::{DateTime, Utc};
use musubi_domain::passkeys::{PasskeyCeremony as Ceremony, PasskeyInfo};
use musubi_domain::sessions::SessionKind;
use musubi_domain::{AppError, Services};

/// A started WebAuthn ceremony: pass `options` to `navigator.credentials.create()` (registration)
/// or `navigator.credentials.get()` (sign-in), after turning its base64url fields into bytes, and
/// send the answer back with `id` within five minutes. Each ceremony can be finished once.
#[derive(SimpleObject)]
pub struct PasskeyCeremony {
    pub id: ID,
    pub options: Json<serde_json::Value>,
}

impl From<Ceremony> for PasskeyCeremony {
    fn from(c: Ceremony) -> Self {
        Self {
            id: ID(c.id.to_string()),
            options: Json(c.options),
        }
    }
}

/// One of my passkeys.
#[derive(SimpleObject)]
pub struct Passkey {
    /// The credential id (base64url), as `PublicKeyCredential.id` in the browser.
    pub id: ID,
    pub name: String,
    pub created_at: DateTime<Utc>,
    pub last_used_at: Option<DateTime<Utc>>,
}

impl From<PasskeyInfo> for Passkey {
    fn from(p: PasskeyInfo) -> Self {
        Self {
            id: ID(p.id),
            name: p.name,
            created_at: p.created_at,
            last_used_at: p.last_used_at,
        }
    }
}

fn ceremony_id(ctx: &Context<'_>, id: &ID) -> async_graphql::Result<uuid::Uuid> {
    uuid::Uuid::parse_str(id).map_err(|_| {
        to_gql_error(
            ctx,
            AppError::invalid("ceremonyId", "this ceremony has expired; start again"),
        )
    })
}

/// `me { passkeys }`, resolved here to keep passkeys in one file.
pub(crate) async fn my_passkeys(ctx: &Context<'_>) -> async_graphql::Result<Vec<Passkey>> {
    let v = viewer(ctx)?;
    let services = ctx.data::<Services>()?;
    let list = services.my_passkeys(v).await.gql(ctx)?;
    Ok(list.into_iter().map(Passkey::from).collect())
}

#[derive(Default)]
pub struct PasskeyQuery;

#[Object]
impl PasskeyQuery {
    /// Whether this server offers passkeys (not when it is reached by an IP address).
    async fn passkeys_available(&self, ctx: &Context<'_>) -> async_graphql::Result<bool> {
        Ok(ctx.data::<Services>()?.passkeys_available())
    }
}

#[derive(Default)]
pub struct PasskeyMutation;

#[Object]
impl PasskeyMutation {
    /// Starts registering a passkey on this device for me. `PASSKEYS_UNAVAILABLE` when the
    /// server is reached by an IP address.
    async fn start_passkey_registration(
        &self,
        ctx: &Context<'_>,
    ) -> async_graphql::Result<PasskeyCeremony> {
        let v = viewer(ctx)?;
        let services = ctx.data::<Services>()?;
        let c = services.start_passkey_registration(v).await.gql(ctx)?;
        Ok(c.into())
    }

    /// Finishes the registration with the browser's answer (`RegisterPublicKeyCredential`, as
    /// JSON with base64url fields). `name` defaults to the kind of device.
    async fn finish_passkey_registration(
        &self,
        ctx: &Context<'_>,
        ceremony_id: ID,
        credential: Json<serde_json::Value>,
        name: Option<String>,
    ) -> async_graphql::Result<Passkey> {
        let v = viewer(ctx)?;
        let (services, rc) = parts(ctx)?;
        let id = self::ceremony_id(ctx, &ceremony_id)?;
        let p = services
            .finish_passkey_registration(v, id, credential.0, name.as_deref(), &rc.client)
            .await
            .gql(ctx)?;
        Ok(p.into())
    }

    /// Removes one of my passkeys.
    async fn delete_passkey(&self, ctx: &Context<'_>, id: ID) -> async_graphql::Result<bool> {
        let v = viewer(ctx)?;
        let (services, rc) = parts(ctx)?;
        services.delete_passkey(v, &id, &rc.client).await.gql(ctx)?;
        Ok(true)
    }

    /// Starts a passkey sign-in; nobody needs to be named. Counts against a rate limit per
    /// client address.
    async fn start_passkey_sign_in(
        &self,
        ctx: &Context<'_>,
    ) -> async_graphql::Result<PasskeyCeremony> {
        let (services, rc) = parts(ctx)?;
        let c = services.start_passkey_sign_in(&rc.client).await.gql(ctx)?;
        Ok(c.into())
    }

    /// Finishes a passkey sign-in with the browser's answer (`PublicKeyCredential`, as JSON with
    /// base64url fields). A passkey counts as two factors: `next` is always `DONE`. Any failure
    /// answers `INVALID_CREDENTIALS`.
    async fn finish_passkey_sign_in(
        &self,
        ctx: &Context<'_>,
        ceremony_id: ID,
        credential: Json<serde_json::Value>,
    ) -> async_graphql::Result<SignInPayload> {
        let (services, rc) = parts(ctx)?;
        let Ok(id) = uuid::Uuid::parse_str(&ceremony_id) else {
            return Err(to_gql_error(
                ctx,
                AppError::new(
                    musubi_domain::ErrorCode::InvalidCredentials,
                    "the passkey could not be verified",
                ),
            ));
        };
        let s = services
            .finish_passkey_sign_in(id, credential.0, SessionKind::Api, &rc.client)
            .await
            .gql(ctx)?;
        Ok(SignInPayload {
            token: s.token,
            next: SignInNext::Done,
        })
    }
}
