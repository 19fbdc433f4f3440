//! Signing in and out through the API, and `me`.

use crate::request::{parts, OrGql};
use crate::{to_gql_error, RequestContext};
use async_graphql::{Context, Enum, Object, SimpleObject, ID};
use chrono::{DateTime, Utc};
use musubi_domain::sessions::{SessionKind, SignIn, SignInStep};
use musubi_domain::Services;

#[derive(Enum, Copy, Clone, Eq, PartialEq)]
pub enum SignInNext {
    /// Signed in: use the token as a bearer token.
    Done,
    /// Send a code from the authenticator app (or a recovery code) with `completeSecondFactor`.
    SecondFactor,
    /// An association requires a second factor: enrol one in the web app first.
    EnrolSecondFactor,
}

#[derive(SimpleObject)]
pub struct SignInPayload {
    /// Bearer token. Until `next` is `DONE`, it only allows completing the second factor.
    pub token: String,
    pub next: SignInNext,
}

impl From<SignIn> for SignInPayload {
    fn from(s: SignIn) -> Self {
        let next = match s.step {
            SignInStep::Done => SignInNext::Done,
            SignInStep::SecondFactor => SignInNext::SecondFactor,
            SignInStep::EnrolSecondFactor => SignInNext::EnrolSecondFactor,
        };
        Self {
            token: s.token,
            next,
        }
    }
}

#[derive(SimpleObject)]
pub struct MembershipInfo {
    pub association_slug: String,
    pub association_name: String,
    /// `member` or `admin`.
    pub role: String,
    pub facility_name: Option<String>,
}

#[derive(SimpleObject)]
pub struct SessionInfo {
    pub id: ID,
    /// `web` or `api`.
    pub kind: String,
    pub created_at: DateTime<Utc>,
    pub last_seen_at: DateTime<Utc>,
    pub ip: String,
    pub user_agent: String,
    /// This request's own session.
    pub current: bool,
}

pub struct Me;

#[Object]
impl Me {
    async fn id(&self, ctx: &Context<'_>) -> async_graphql::Result<ID> {
        let v = viewer(ctx)?;
        Ok(ID(v.user().id.to_string()))
    }
    async fn name(&self, ctx: &Context<'_>) -> async_graphql::Result<String> {
        Ok(viewer(ctx)?.user().name.clone())
    }
    async fn name_kana(&self, ctx: &Context<'_>) -> async_graphql::Result<String> {
        Ok(viewer(ctx)?.user().name_kana.clone())
    }
    async fn email(&self, ctx: &Context<'_>) -> async_graphql::Result<String> {
        Ok(viewer(ctx)?.user().email.clone())
    }
    /// Profession code, e.g. `nurse`, `physician`, `care_manager`.
    async fn profession(&self, ctx: &Context<'_>) -> async_graphql::Result<String> {
        Ok(viewer(ctx)?.user().profession.code().to_owned())
    }
    /// For physicians and dentists: `clinic` (collaborating doctor) or `hospital`.
    async fn doctor_kind(&self, ctx: &Context<'_>) -> async_graphql::Result<Option<String>> {
        Ok(viewer(ctx)?.user().doctor_kind.map(|k| k.code().to_owned()))
    }
    async fn second_factor_enabled(&self, ctx: &Context<'_>) -> async_graphql::Result<bool> {
        Ok(viewer(ctx)?.user().totp_enabled_at.is_some())
    }
    async fn memberships(&self, ctx: &Context<'_>) -> async_graphql::Result<Vec<MembershipInfo>> {
        Ok(viewer(ctx)?
            .memberships()
            .iter()
            .map(|m| MembershipInfo {
                association_slug: m.slug.clone(),
                association_name: m.association_name.clone(),
                role: m.role.code().to_owned(),
                facility_name: m.facility_name.clone(),
            })
            .collect())
    }
    /// My passkeys, oldest first.
    async fn passkeys(
        &self,
        ctx: &Context<'_>,
    ) -> async_graphql::Result<Vec<crate::passkeys::Passkey>> {
        crate::passkeys::my_passkeys(ctx).await
    }
    /// My signed-in sessions, newest use first.
    async fn sessions(&self, ctx: &Context<'_>) -> async_graphql::Result<Vec<SessionInfo>> {
        let v = viewer(ctx)?;
        let services = ctx.data::<Services>()?;
        let rows = services.my_sessions(v).await.gql(ctx)?;
        Ok(rows
            .into_iter()
            .map(|s| SessionInfo {
                id: ID(s.id.to_string()),
                current: s.id == v.session().id,
                kind: s.kind.code().to_owned(),
                created_at: s.created_at,
                last_seen_at: s.last_seen_at,
                ip: s.ip,
                user_agent: s.user_agent,
            })
            .collect())
    }
}

/// The signed-in person, also without an active membership: `me`, sessions and signing out
/// concern only the account.
fn viewer<'a>(ctx: &Context<'a>) -> async_graphql::Result<&'a musubi_domain::sessions::Viewer> {
    let rc = ctx.data::<RequestContext>()?;
    rc.account().gql(ctx)
}

#[derive(Default)]
pub struct AuthQuery;

#[Object]
impl AuthQuery {
    /// The signed-in person; `UNAUTHENTICATED` without a valid session. Also answers for a
    /// person no association counts as an active member any more (`memberships` is then
    /// empty); everything else answers them `NO_ACTIVE_MEMBERSHIP`.
    async fn me(&self, ctx: &Context<'_>) -> async_graphql::Result<Me> {
        viewer(ctx)?;
        Ok(Me)
    }
}

#[derive(Default)]
pub struct AuthMutation;

#[Object]
impl AuthMutation {
    /// Starts an API session. Each call counts against the sign-in rate limits, also when
    /// several are sent as aliases or in a batch.
    async fn sign_in(
        &self,
        ctx: &Context<'_>,
        email: String,
        password: String,
    ) -> async_graphql::Result<SignInPayload> {
        let (services, rc) = parts(ctx)?;
        let s = services
            .sign_in(&email, &password, SessionKind::Api, &rc.client)
            .await
            .gql(ctx)?;
        Ok(s.into())
    }

    /// Completes sign-in with a code from the authenticator app or a recovery code; send the
    /// token from `signIn` as the bearer token. Returns the new token (the old one stops working).
    async fn complete_second_factor(
        &self,
        ctx: &Context<'_>,
        code: String,
    ) -> async_graphql::Result<SignInPayload> {
        let (services, rc) = parts(ctx)?;
        let token = rc.token.clone().unwrap_or_default();
        let token = services
            .complete_second_factor(&token, &code, &rc.client)
            .await
            .gql(ctx)?;
        Ok(SignInPayload {
            token,
            next: SignInNext::Done,
        })
    }

    /// Ends this session.
    async fn sign_out(&self, ctx: &Context<'_>) -> async_graphql::Result<bool> {
        let (services, rc) = parts(ctx)?;
        let v = viewer(ctx)?;
        services.sign_out(v, &rc.client).await.gql(ctx)?;
        Ok(true)
    }

    /// Ends every session of mine, on every device.
    async fn sign_out_everywhere(&self, ctx: &Context<'_>) -> async_graphql::Result<i32> {
        let (services, rc) = parts(ctx)?;
        let v = viewer(ctx)?;
        let n = services.sign_out_everywhere(v, &rc.client).await.gql(ctx)?;
        Ok(i32::try_from(n).unwrap_or(i32::MAX))
    }

    /// Ends one of my sessions (e.g. a lost phone).
    async fn revoke_session(&self, ctx: &Context<'_>, id: ID) -> async_graphql::Result<bool> {
        let services = ctx.data::<Services>()?;
        let v = viewer(ctx)?;
        let Ok(id) = uuid::Uuid::parse_str(&id) else {
            return Err(to_gql_error(ctx, musubi_domain::AppError::not_found()));
        };
        services.revoke_my_session(v, id).await.gql(ctx)?;
        Ok(true)
    }
}
