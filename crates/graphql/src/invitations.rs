//! Invitations and forgotten passwords through the API. Administrators' operations use the
//! routed association (`Musubi-Association` header); accepting an invitation and resetting a
//! password are public: the token from the link is the credential.

use crate::auth::SignInPayload;
use crate::console::MemberRole;
use crate::request::{parts, routed, OrGql};
use crate::to_gql_error;
use async_graphql::{Context, InputObject, Object, SimpleObject, ID};
use chrono::{DateTime, Utc};
use musubi_domain::invitations::{self as domain, AcceptInput, InviteInput};
use musubi_domain::sessions::SessionKind;
use musubi_domain::AppError;
use uuid::Uuid;

/// An invitation to join the routed association.
#[derive(SimpleObject)]
pub struct Invitation {
    pub id: ID,
    /// The invitee's address; null for an in-person invitation.
    pub email: Option<String>,
    pub role: MemberRole,
    pub facility_id: Option<ID>,
    pub facility_name: Option<String>,
    pub invited_by_name: Option<String>,
    pub created_at: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
    /// In-person invitations, and only in the answer to `inviteMember`: the link to hand
    /// over (`<public URL>/invite/<token>`). It cannot be shown again.
    pub link: Option<String>,
    /// The same link as a QR code: a standalone SVG document.
    pub qr_svg: Option<String>,
}

impl From<domain::Invitation> for Invitation {
    fn from(i: domain::Invitation) -> Self {
        Self {
            id: ID(i.id.to_string()),
            email: i.email,
            role: i.role.into(),
            facility_id: i.facility_id.map(|f| ID(f.to_string())),
            facility_name: i.facility_name,
            invited_by_name: i.invited_by_name,
            created_at: i.created_at,
            expires_at: i.expires_at,
            link: None,
            qr_svg: None,
        }
    }
}

/// What an invitation link leads to, shown before accepting.
#[derive(SimpleObject)]
pub struct InvitationPreview {
    pub association_slug: String,
    pub association_name: String,
    pub role: MemberRole,
    pub facility_name: Option<String>,
    /// Fixed for e-mail invitations; null for in-person ones (the invitee types it).
    pub email: Option<String>,
    /// E-mail invitations only: the address has an account, so accepting asks just for its
    /// password.
    pub existing_account: bool,
    pub expires_at: DateTime<Utc>,
}

/// What the invitee enters. A new account needs every field but `email` (in-person
/// invitations need that too) and `doctorKind` (physicians and dentists only); an existing
/// account needs only its `password` (and `email` for in-person invitations).
#[derive(InputObject)]
pub struct AcceptInvitationInput {
    /// In-person invitations: the invitee's address. Ignored for e-mail invitations.
    pub email: Option<String>,
    /// A new password for a new account, or the existing account's password.
    pub password: String,
    pub name: Option<String>,
    pub name_kana: Option<String>,
    /// Profession code, e.g. `nurse`, `physician`, `care_manager`.
    pub profession: Option<String>,
    /// Physicians and dentists: `clinic` (collaborating doctor) or `hospital`.
    pub doctor_kind: Option<String>,
}

#[derive(Default)]
pub struct InvitationQuery;

#[Object]
impl InvitationQuery {
    /// Pending invitations of the routed association, newest first (administrators only).
    async fn invitations(&self, ctx: &Context<'_>) -> async_graphql::Result<Vec<Invitation>> {
        let (services, actor) = routed(ctx)?;
        let rows = services.list_invitations(&actor).await.gql(ctx)?;
        Ok(rows.into_iter().map(Invitation::from).collect())
    }

    /// What an invitation link leads to; `INVITATION_INVALID` for an unknown, used, revoked
    /// or expired link. Public.
    async fn invitation(
        &self,
        ctx: &Context<'_>,
        token: String,
    ) -> async_graphql::Result<InvitationPreview> {
        let (services, rc) = parts(ctx)?;
        let p = services
            .invitation_preview(&token, &rc.client)
            .await
            .gql(ctx)?;
        Ok(InvitationPreview {
            association_slug: p.association_slug,
            association_name: p.association_name,
            role: p.role.into(),
            facility_name: p.facility_name,
            email: p.email,
            existing_account: p.existing_account,
            expires_at: p.expires_at,
        })
    }
}

#[derive(Default)]
pub struct InvitationMutation;

#[Object]
impl InvitationMutation {
    /// Invites someone to the routed association (administrators only). With `email`, the
    /// link is mailed to that address (`MAIL_FAILED` if it cannot be, and nothing is kept);
    /// without, the answer carries the link and its QR code to hand over in person.
    /// `expiresInDays`: 1–30, default 7.
    async fn invite_member(
        &self,
        ctx: &Context<'_>,
        email: Option<String>,
        role: MemberRole,
        facility_id: Option<ID>,
        expires_in_days: Option<i32>,
    ) -> async_graphql::Result<Invitation> {
        let (services, actor) = routed(ctx)?;
        let facility_id = match facility_id {
            Some(id) => Some(Uuid::parse_str(&id).map_err(|_| {
                to_gql_error(
                    ctx,
                    AppError::invalid("facilityId", "no such facility in this association"),
                )
            })?),
            None => None,
        };
        let input = InviteInput {
            email,
            role: role.into(),
            facility_id,
            expires_in_days,
        };
        let created = services.invite_member(&actor, &input).await.gql(ctx)?;
        let mut out = Invitation::from(created.invitation);
        out.link = created.link;
        out.qr_svg = created.qr_svg;
        Ok(out)
    }

    /// Withdraws a pending invitation of the routed association (administrators only).
    async fn revoke_invitation(&self, ctx: &Context<'_>, id: ID) -> async_graphql::Result<bool> {
        let (services, actor) = routed(ctx)?;
        // A malformed id is a missing invitation, answered after the same authorization.
        let id = Uuid::parse_str(&id).unwrap_or(Uuid::nil());
        services.revoke_invitation(&actor, id).await.gql(ctx)?;
        Ok(true)
    }

    /// Accepts an invitation and signs in (public). Each call counts against the
    /// invitation rate limit of the client's address.
    async fn accept_invitation(
        &self,
        ctx: &Context<'_>,
        token: String,
        input: AcceptInvitationInput,
    ) -> async_graphql::Result<SignInPayload> {
        let (services, rc) = parts(ctx)?;
        let input = AcceptInput {
            email: input.email,
            password: input.password,
            name: input.name,
            name_kana: input.name_kana,
            profession: input.profession,
            doctor_kind: input.doctor_kind,
        };
        let s = services
            .accept_invitation(&token, &input, SessionKind::Api, &rc.client)
            .await
            .gql(ctx)?;
        Ok(s.into())
    }

    /// Mails a password-reset link if the address has an account. Always `true`: the answer
    /// does not tell whether it has.
    async fn request_password_reset(
        &self,
        ctx: &Context<'_>,
        email: String,
    ) -> async_graphql::Result<bool> {
        let (services, rc) = parts(ctx)?;
        services
            .request_password_reset(&email, &rc.client)
            .await
            .gql(ctx)?;
        Ok(true)
    }

    /// Sets a new password with the token from a reset link. Every session of the account
    /// ends; sign in again afterwards. `PASSWORD_RESET_INVALID` for an unknown, used or
    /// expired link; `WEAK_PASSWORD` (with `reasons`) when the policy refuses the password.
    async fn reset_password(
        &self,
        ctx: &Context<'_>,
        token: String,
        new_password: String,
    ) -> async_graphql::Result<bool> {
        let (services, rc) = parts(ctx)?;
        services
            .reset_password(&token, &new_password, &rc.client)
            .await
            .gql(ctx)?;
        Ok(true)
    }
}
