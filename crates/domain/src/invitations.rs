//! Joining an association by invitation.
//!
//! An administrator invites by e-mail (the link goes to that address) or in person (the link
//! is shown once, as text and QR code, to hand over on paper or a screen). The invitee opens
//! the link and either creates an account — choosing their own password: nobody ever uses a
//! password set by someone else — or, if the address has an account already, proves it with
//! their password. Either way they become a member with the invitation's role and facility,
//! and are signed in as [`Services::sign_in`] would (so an association that requires a second
//! factor asks them to enrol one next).
//!
//! Only the SHA-256 of a link's token is stored. Unknown, used, revoked and expired links all
//! answer `INVITATION_INVALID`.

use crate::audit::{AuditAction, AuditEntry, RequestMeta};
use crate::members::MemberRole;
use crate::sessions::{SessionKind, SignIn};
use crate::types::{GroupId, PersonId};
use crate::Actor;
use crate::{text, AppError, AppResult, ErrorCode, Services, Tenant};
use chrono::{DateTime, Utc};
use musubi_auth::password::{self, PasswordContext};
use musubi_auth::ratelimit::RateLimitClass;
use musubi_auth::token::{self, Token};
use musubi_authz::{Action, Object};
use musubi_db::accounts::{self as accounts, NewUser};
use musubi_db::invitations::{self as repo, InvitationRow, NewInvitation};
use musubi_db::types::{AccountStatus, DoctorKind, Profession};
use std::time::Duration;
use uuid::Uuid;

pub const DEFAULT_EXPIRY_DAYS: i32 = 7;
pub const MIN_EXPIRY_DAYS: i32 = 1;
pub const MAX_EXPIRY_DAYS: i32 = 30;

/// Invitations one administrator may create in an hour (enough for a whole facility).
pub const INVITE_CREATE: RateLimitClass =
    RateLimitClass::new("invite:create", 100, Duration::from_secs(3600));
/// Invitation pages looked up from one address: looser than acceptances
/// ([`RateLimitClass::INVITE_IP`]), as people reload pages.
pub const INVITE_LOOKUP_IP: RateLimitClass =
    RateLimitClass::new("invite:lookup_ip", 200, Duration::from_secs(3600));

const MAX_NAME_CHARS: usize = 100;

#[derive(Debug, Clone)]
pub struct InviteInput {
    /// None (or empty): an in-person invitation, whose link is returned instead of mailed.
    pub email: Option<String>,
    pub role: MemberRole,
    /// A facility of the inviting association.
    pub facility_id: Option<Uuid>,
    /// 1–30; default 7.
    pub expires_in_days: Option<i32>,
}

/// A pending invitation, as the association's administrators see it.
#[derive(Debug, Clone)]
pub struct Invitation {
    pub id: Uuid,
    pub email: Option<String>,
    pub role: MemberRole,
    pub facility_id: Option<Uuid>,
    pub facility_name: Option<String>,
    pub invited_by_name: Option<String>,
    pub created_at: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
}

/// What creating an invitation gives back. The link exists only now (the database keeps its
/// hash), and is returned only for in-person invitations: an e-mailed link goes to the
/// invitee alone.
#[derive(Debug, Clone)]
pub struct CreatedInvitation {
    pub invitation: Invitation,
    pub link: Option<String>,
    /// The link as a QR code (standalone SVG), for in-person invitations.
    pub qr_svg: Option<String>,
}

/// What the invitation page shows before accepting.
#[derive(Debug, Clone)]
pub struct InvitationPreview {
    pub association_slug: String,
    pub association_name: String,
    pub role: MemberRole,
    pub facility_name: Option<String>,
    /// Fixed for e-mail invitations; the invitee types one for in-person invitations.
    pub email: Option<String>,
    /// For e-mail invitations: the address has an account, so accepting asks only for its
    /// password. Always false for in-person invitations (their address is not known yet).
    pub existing_account: bool,
    pub expires_at: DateTime<Utc>,
}

/// What the invitee types. For a new account: everything; for an existing account: the
/// password (and, for in-person invitations, the e-mail address).
#[derive(Debug, Clone, Default)]
pub struct AcceptInput {
    /// Required for in-person invitations; ignored for e-mail invitations.
    pub email: Option<String>,
    pub password: String,
    pub name: Option<String>,
    pub name_kana: Option<String>,
    pub profession: Option<String>,
    pub doctor_kind: Option<String>,
}

fn invalid_invitation() -> AppError {
    AppError::new(
        ErrorCode::InvitationInvalid,
        "this invitation link is not valid (it may have expired, been used or been revoked)",
    )
}

impl From<InvitationRow> for Invitation {
    fn from(r: InvitationRow) -> Self {
        Self {
            id: r.id,
            email: r.email,
            role: r.role,
            facility_id: r.facility_id,
            facility_name: r.facility_name,
            invited_by_name: r.invited_by_name,
            created_at: r.created_at,
            expires_at: r.expires_at,
        }
    }
}

fn checked_name(raw: Option<&str>, field: &'static str) -> AppResult<String> {
    text::line(field, raw.unwrap_or_default(), MAX_NAME_CHARS)
}

/// The new account's details, checked before anything is written.
struct NewAccount {
    name: String,
    name_kana: String,
    profession: Profession,
    doctor_kind: Option<DoctorKind>,
}

fn checked_new_account(input: &AcceptInput) -> AppResult<NewAccount> {
    let name = checked_name(input.name.as_deref(), "name")?;
    let name_kana = checked_name(input.name_kana.as_deref(), "nameKana")?;
    let profession = input.profession.as_deref().unwrap_or_default().trim();
    let Some(profession) = Profession::from_code(profession) else {
        return Err(AppError::invalid("profession", "unknown profession"));
    };
    let is_doctor = profession.is_doctor();
    let doctor_kind = input
        .doctor_kind
        .as_deref()
        .map(str::trim)
        .filter(|k| !k.is_empty());
    let doctor_kind = match (is_doctor, doctor_kind) {
        (true, Some(k)) if DoctorKind::from_code(k).is_some() => DoctorKind::from_code(k),
        (true, _) => {
            return Err(AppError::invalid(
                "doctorKind",
                "physicians and dentists choose `clinic` or `hospital`",
            ))
        }
        (false, None) => None,
        (false, Some(_)) => {
            return Err(AppError::invalid(
                "doctorKind",
                "only physicians and dentists have a doctor kind",
            ))
        }
    };
    Ok(NewAccount {
        name,
        name_kana,
        profession,
        doctor_kind,
    })
}

/// `WEAK_PASSWORD` with the problem codes, or nothing.
pub(crate) fn check_new_password(candidate: &str, ctx: &PasswordContext<'_>) -> AppResult<()> {
    password::check_password(candidate, ctx).map_err(|problems| AppError {
        reasons: problems.iter().map(|p| p.code()).collect(),
        ..AppError::new(
            ErrorCode::WeakPassword,
            "the password does not meet the policy",
        )
    })
}

impl Services {
    /// Invites someone to `tenant` (administrators: `members.invite`). With an e-mail address
    /// the link is mailed (if the mail cannot be sent, the invitation is withdrawn and
    /// `MAIL_FAILED` returned); without one, the link and its QR code are returned.
    pub async fn invite_member(
        &self,
        actor: &Actor<'_>,
        input: &InviteInput,
    ) -> AppResult<CreatedInvitation> {
        self.authorize_in(actor, Object::Members, Action::Invite)
            .await?;
        self.limits()
            .hit(&INVITE_CREATE, &actor.viewer.user.id.to_string())
            .await?;
        let inviter = (actor.viewer.user.id, actor.viewer.user.name.clone());
        self.create_invitation(Some(inviter), actor.tenant, input, actor.meta, None)
            .await
    }

    /// For operators (the `musubi association invite-admin` command, run by whoever runs the
    /// server): invites an association's first administrator. There is no signed-in viewer;
    /// the operator's shell access is the authorization, and the invitation is audited in
    /// the association's log as made by `operator`.
    pub(crate) async fn invite_first_admin(
        &self,
        tenant: &Tenant,
        email: Option<String>,
        expires_in_days: Option<i32>,
    ) -> AppResult<CreatedInvitation> {
        let input = InviteInput {
            email,
            role: MemberRole::Admin,
            facility_id: None,
            expires_in_days,
        };
        let meta = RequestMeta::new("", "musubi CLI");
        self.create_invitation(None, tenant, &input, &meta, None)
            .await
    }

    /// Creates an invitation to `tenant`, and to its group `group` too when a group's owner
    /// makes it (the caller has checked that they may).
    pub(crate) async fn create_invitation(
        &self,
        inviter: Option<(PersonId, String)>,
        tenant: &Tenant,
        input: &InviteInput,
        client: &RequestMeta,
        group: Option<GroupId>,
    ) -> AppResult<CreatedInvitation> {
        let days = input.expires_in_days.unwrap_or(DEFAULT_EXPIRY_DAYS);
        if !(MIN_EXPIRY_DAYS..=MAX_EXPIRY_DAYS).contains(&days) {
            return Err(AppError::invalid(
                "expiresInDays",
                format!("expiresInDays must be between {MIN_EXPIRY_DAYS} and {MAX_EXPIRY_DAYS}"),
            ));
        }
        let email = match input.email.as_deref().map(str::trim) {
            Some(e) if !e.is_empty() => Some(text::email("email", e)?),
            _ => None,
        };
        let facility_name = match input.facility_id {
            Some(f) => Some(self.facility_name(tenant, f).await?),
            None => None,
        };
        if let Some(e) = &email {
            if repo::is_active_member_by_email(self.db().pool(), tenant.id, e).await? {
                return Err(AppError::new(
                    ErrorCode::AlreadyMember,
                    "this person is already a member",
                ));
            }
        }

        let token = Token::generate().map_err(AppError::internal)?;
        let now = Utc::now();
        let expires_at = now + chrono::Duration::days(i64::from(days));
        let mut c = self.change_without_viewer(tenant, client).await?;
        let id = repo::insert(
            c.conn(),
            &NewInvitation {
                token_hash: &token.hash(),
                association_id: tenant.id,
                email: email.as_deref(),
                role: input.role,
                facility_id: input.facility_id,
                invited_by: inviter.as_ref().map(|(id, _)| *id),
                expires_at,
                group_id: group.map(GroupId::uuid),
            },
        )
        .await?;
        let mut entry = AuditEntry::new(AuditAction::MemberInvite, client);
        if let Some((id, name)) = &inviter {
            entry = entry.by(*id, name.clone());
        } else {
            entry = entry.with_detail("by_operator", true);
        }
        let mut entry = entry
            .on("invitation", id)
            .with_detail("role", input.role.code())
            .with_detail("in_person", email.is_none())
            .with_detail("expires_in_days", i64::from(days));
        if let Some(f) = input.facility_id {
            entry = entry.with_detail("facility_id", f.to_string());
        }
        if let Some(g) = group {
            entry = entry.with_detail("group_id", g.to_string());
        }
        c.audit(entry);
        c.commit().await?;

        let link = self.mailer().invitation_link(token.as_str());
        let invitation = Invitation {
            id,
            email: email.clone(),
            role: input.role,
            facility_id: input.facility_id,
            facility_name,
            invited_by_name: inviter.as_ref().map(|(_, name)| name.clone()),
            created_at: now,
            expires_at,
        };
        let Some(address) = email else {
            let qr_svg = musubi_auth::totp::qr_code_svg(&link).map_err(AppError::internal)?;
            return Ok(CreatedInvitation {
                invitation,
                link: Some(link),
                qr_svg: Some(qr_svg),
            });
        };
        let mail = musubi_notify::invitation_mail(&address, &tenant.name, &link, expires_at)
            .map_err(AppError::internal)?;
        if let Err(e) = self.mailer().send(&mail).await {
            self.withdraw_unsent(inviter.as_ref(), tenant, id, e.code(), client)
                .await?;
            return Err(AppError {
                source: Some(Box::new(e)),
                ..AppError::new(
                    ErrorCode::MailFailed,
                    "the invitation e-mail could not be sent, so no invitation was made; \
                     please try again later",
                )
            });
        }
        Ok(CreatedInvitation {
            invitation,
            link: None,
            qr_svg: None,
        })
    }

    /// An invitation whose mail never left must not stay usable by anyone.
    async fn withdraw_unsent(
        &self,
        inviter: Option<&(PersonId, String)>,
        tenant: &Tenant,
        id: Uuid,
        mail_error: &'static str,
        client: &RequestMeta,
    ) -> AppResult<()> {
        let mut c = self.change_without_viewer(tenant, client).await?;
        repo::revoke(c.conn(), tenant.id, id).await?;
        let mut entry = AuditEntry::new(AuditAction::MemberInviteRevoke, client);
        if let Some((uid, name)) = inviter {
            entry = entry.by(*uid, name.clone());
        }
        let entry = entry
            .on("invitation", id)
            .with_detail("reason", "mail_failed")
            .with_detail("mail_error", mail_error);
        c.audit(entry);
        c.commit().await
    }

    async fn facility_name(&self, tenant: &Tenant, facility_id: Uuid) -> AppResult<String> {
        accounts::facilities_of(self.db().pool(), tenant.id)
            .await?
            .into_iter()
            .find(|f| f.id == facility_id)
            .map(|f| f.name)
            .ok_or_else(|| AppError::invalid("facilityId", "no such facility in this association"))
    }

    /// The pending invitations of `tenant`, newest first (administrators).
    pub async fn list_invitations(&self, actor: &Actor<'_>) -> AppResult<Vec<Invitation>> {
        self.authorize_in(actor, Object::Members, Action::Invite)
            .await?;
        Ok(repo::pending_of(self.db().pool(), actor.tenant.id)
            .await?
            .into_iter()
            .map(Invitation::from)
            .collect())
    }

    /// Withdraws a pending invitation; its link stops working at once. Anything else —
    /// another association's invitation, an accepted or expired one — is "not found".
    pub async fn revoke_invitation(&self, actor: &Actor<'_>, id: Uuid) -> AppResult<()> {
        self.authorize_in(actor, Object::Members, Action::Invite)
            .await?;
        let mut c = self.change_without_viewer(actor.tenant, actor.meta).await?;
        if !repo::revoke(c.conn(), actor.tenant.id, id).await? {
            return Err(AppError::not_found());
        }
        let entry = c
            .entry(AuditAction::MemberInviteRevoke)
            .on("invitation", id);
        c.audit(entry);
        c.commit().await
    }

    async fn pending_invitation(&self, token: &str) -> AppResult<InvitationRow> {
        if !token::is_well_formed(token) {
            return Err(invalid_invitation());
        }
        repo::pending_by_token(self.db().pool(), &token::hash_token(token))
            .await?
            .ok_or_else(invalid_invitation)
    }

    /// What an invitation link leads to (public: the token is the credential).
    pub async fn invitation_preview(
        &self,
        token: &str,
        client: &RequestMeta,
    ) -> AppResult<InvitationPreview> {
        self.limits().hit(&INVITE_LOOKUP_IP, &client.ip).await?;
        let inv = self.pending_invitation(token).await?;
        let existing_account = match &inv.email {
            Some(e) => accounts::user_by_email(self.db().pool(), e)
                .await?
                .is_some(),
            None => false,
        };
        Ok(InvitationPreview {
            association_slug: inv.association_slug,
            association_name: inv.association_name,
            role: inv.role,
            facility_name: inv.facility_name,
            email: inv.email,
            existing_account,
            expires_at: inv.expires_at,
        })
    }

    /// Accepts an invitation (public: the token is the credential) and signs the person in.
    /// A new account gets the details and password from `input`; an existing account must
    /// give its password (`INVALID_CREDENTIALS` otherwise). Each attempt counts against
    /// [`RateLimitClass::INVITE_IP`].
    pub async fn accept_invitation(
        &self,
        token: &str,
        input: &AcceptInput,
        kind: SessionKind,
        client: &RequestMeta,
    ) -> AppResult<SignIn> {
        self.limits()
            .hit(&RateLimitClass::INVITE_IP, &client.ip)
            .await?;
        let inv = self.pending_invitation(token).await?;
        let tenant = self.db().resolve_tenant(&inv.association_slug).await?;
        let email = match &inv.email {
            Some(e) => e.clone(),
            None => text::email("email", input.email.as_deref().unwrap_or_default())?,
        };
        text::secret("password", &input.password)?;

        let existing = accounts::user_by_email(self.db().pool(), &email).await?;
        let mut c;
        let (user_id, user_name, new_account) = match existing {
            Some(user) => {
                self.limits()
                    .hit(&RateLimitClass::SIGNIN_ACCOUNT, &email.to_lowercase())
                    .await?;
                let ok = match user.password_hash.clone() {
                    Some(stored) => password::verify_password_async(input.password.clone(), stored)
                        .await
                        .map_err(AppError::internal)?,
                    None => password::verify_unknown_account_async(input.password.clone()).await,
                };
                if !ok || user.status != AccountStatus::Active {
                    return Err(AppError::new(
                        ErrorCode::InvalidCredentials,
                        "this e-mail address has an account: enter its password",
                    ));
                }
                c = self.change_without_viewer(&tenant, client).await?;
                (user.id, user.name, false)
            }
            None => {
                let account = checked_new_account(input)?;
                let settings = {
                    let mut tx = self.db().tenant_snapshot(&tenant).await?;
                    let s = musubi_db::associations::read_settings(&mut tx).await?;
                    tx.commit().await?;
                    s
                };
                check_new_password(
                    &input.password,
                    &PasswordContext {
                        email: &email,
                        names: &[account.name.as_str(), account.name_kana.as_str()],
                        // They must enrol one before anything else when the association says so.
                        has_second_factor: settings.require_second_factor,
                    },
                )?;
                let hash = password::hash_password_async(input.password.clone())
                    .await
                    .map_err(AppError::internal)?;
                c = self.change_without_viewer(&tenant, client).await?;
                let id = accounts::insert_user(
                    c.conn(),
                    &NewUser {
                        email: &email,
                        name: &account.name,
                        name_kana: &account.name_kana,
                        profession: account.profession,
                        doctor_kind: account.doctor_kind,
                        password_hash: Some(&hash),
                    },
                )
                .await?;
                (id, account.name, true)
            }
        };
        if !repo::claim(c.conn(), inv.id, user_id).await? {
            return Err(invalid_invitation());
        }
        let joined = repo::join(c.conn(), user_id, tenant.id, inv.role, inv.facility_id).await?;
        if !joined && inv.group_id.is_none() {
            return Err(AppError::new(
                ErrorCode::AlreadyMember,
                "you are already a member of this association",
            ));
        }
        if let Some(group) = inv.group_id.map(GroupId::from_uuid) {
            // A group owner's invitation: into the group too (someone already in the
            // association came for the group).
            if crate::groups::join_by_invitation(&mut c, &tenant, group, user_id, inv.invited_by)
                .await?
            {
                let entry = AuditEntry::new(AuditAction::GroupMemberJoin, client)
                    .by(user_id, user_name.clone())
                    .on("group", group)
                    .with_detail("invitation_id", inv.id.to_string());
                c.audit(entry);
            }
        }
        let entry = AuditEntry::new(AuditAction::MemberJoin, client)
            .by(user_id, user_name)
            .on("user", user_id)
            .with_detail("invitation_id", inv.id.to_string())
            .with_detail("role", inv.role.code())
            .with_detail("new_account", new_account);
        c.audit(entry);
        c.commit().await?;

        // A fresh session exactly as signing in gives one (second factor included).
        self.sign_in(&email, &input.password, kind, client).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn input(profession: &str, kind: Option<&str>) -> AcceptInput {
        AcceptInput {
            name: Some("青木 さくら".into()),
            name_kana: Some("あおき さくら".into()),
            profession: Some(profession.into()),
            doctor_kind: kind.map(str::to_owned),
            ..AcceptInput::default()
        }
    }

    #[test]
    fn doctors_need_a_kind_and_others_must_not_have_one() {
        assert!(checked_new_account(&input("nurse", None)).is_ok());
        assert!(checked_new_account(&input("physician", Some("hospital"))).is_ok());
        let field = |r: AppResult<NewAccount>| r.err().and_then(|e| e.field);
        assert_eq!(
            field(checked_new_account(&input("physician", None))),
            Some("doctorKind")
        );
        assert_eq!(
            field(checked_new_account(&input("nurse", Some("clinic")))),
            Some("doctorKind")
        );
        assert_eq!(
            field(checked_new_account(&input("wizard", None))),
            Some("profession")
        );
    }

    #[test]
    fn names_are_required_and_bounded() {
        let mut i = input("nurse", None);
        i.name = Some("  ".into());
        let e = checked_new_account(&i).err();
        assert_eq!(e.and_then(|e| e.field), Some("name"));
        let mut i = input("nurse", None);
        i.name_kana = Some("あ".repeat(101));
        let e = checked_new_account(&i).err();
        assert_eq!(e.and_then(|e| e.field), Some("nameKana"));
    }

    #[test]
    fn the_profession_list_matches_the_schema() {
        let sql = include_str!("../../../migrations/core/0002_accounts.sql");
        for p in Profession::ALL {
            assert!(sql.contains(&format!("'{}'", p.code())), "{p}");
        }
        for k in DoctorKind::ALL {
            assert!(sql.contains(&format!("'{}'", k.code())), "{k}");
        }
    }
}
