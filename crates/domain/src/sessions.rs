//! Signing in and out, and who is asking: sessions for the web (cookie) and API clients
//! (bearer token), with a second factor where the person or an association requires one.

use crate::audit::{record_platform, AuditAction, AuditEntry, RequestMeta};
use crate::types::{AssociationId, PersonId};
use crate::{AppError, AppResult, ErrorCode, Services};
use chrono::Duration;
use musubi_auth::ratelimit::RateLimitClass;
use musubi_auth::token::Token;
use musubi_auth::totp::TotpSecret;
use musubi_auth::{password, recovery};
use musubi_authz::{AssociationRole, Principal};
use musubi_db::accounts::{self as repo, MembershipRow, NewSession, SessionRow, UserRow};
use std::time::SystemTime;
use uuid::Uuid;

use musubi_db::types::AccountStatus;
pub use musubi_db::types::SessionKind;

/// What a correct password leads to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SignInStep {
    /// Fully signed in.
    Done,
    /// The person has a second factor: the token only allows completing it.
    SecondFactor,
    /// An association requires a second factor the person has not set up yet: the token only
    /// allows enrolling one.
    EnrolSecondFactor,
}

#[derive(Debug, Clone)]
pub struct SignIn {
    /// The session token: a cookie value for the web, a bearer token for API clients.
    pub token: String,
    pub step: SignInStep,
}

/// A signed-in person, resolved once per request. Only the services make one (from a valid
/// session, or for an operator acting as someone: [`crate::operator::Operator::act_as`]), and
/// nobody outside them can change one: what an entry point holds is who signed in.
#[derive(Debug, Clone)]
pub struct Viewer {
    pub(crate) user: UserRow,
    pub(crate) session: SessionRow,
    pub(crate) memberships: Vec<MembershipRow>,
    pub(crate) principal: Principal,
}

impl Viewer {
    pub fn user(&self) -> &UserRow {
        &self.user
    }

    pub fn session(&self) -> &SessionRow {
        &self.session
    }

    /// Active memberships, oldest first.
    pub fn memberships(&self) -> &[MembershipRow] {
        &self.memberships
    }

    pub fn principal(&self) -> &Principal {
        &self.principal
    }

    pub fn is_member_of(&self, association_id: AssociationId) -> bool {
        self.memberships
            .iter()
            .any(|m| m.association_id == association_id)
    }

    pub fn is_admin_of(&self, association_id: AssociationId) -> bool {
        self.memberships
            .iter()
            .any(|m| m.association_id == association_id && m.role == AssociationRole::Admin)
    }

    /// Whether some association counts the person as an active member. Without one, only the
    /// account itself (who am I, my sessions, signing out) is open: entry points answer
    /// everything else with `NO_ACTIVE_MEMBERSHIP` (and the web with a page that says so).
    pub fn has_active_membership(&self) -> bool {
        !self.memberships.is_empty()
    }

    /// `NO_ACTIVE_MEMBERSHIP` for a person no association counts as an active member.
    pub fn require_active_membership(&self) -> AppResult<()> {
        if self.has_active_membership() {
            Ok(())
        } else {
            Err(AppError::new(
                ErrorCode::NoActiveMembership,
                "you are not an active member of any association",
            ))
        }
    }
}

/// A session with a correct password but an unfinished second factor.
#[derive(Debug, Clone)]
pub struct HalfSession {
    pub user: UserRow,
    pub session: SessionRow,
    pub must_enrol: bool,
}

/// Session lifetimes when a person belongs to no association yet (operators).
const DEFAULT_IDLE_MINUTES: i64 = 60;
const DEFAULT_ABSOLUTE_HOURS: i64 = 12;
/// A half session only lives long enough to type a code.
const HALF_SESSION_MINUTES: i64 = 10;

fn invalid_credentials() -> AppError {
    AppError::new(
        ErrorCode::InvalidCredentials,
        "the e-mail address or password is not correct",
    )
}

pub(crate) fn principal_for(user: &UserRow, memberships: &[MembershipRow]) -> Principal {
    Principal {
        user_id: user.id.uuid(),
        platform_operator: user.platform_operator,
        profession_class: user.profession.class(user.doctor_kind),
        associations: memberships
            .iter()
            .map(|m| (m.association_id.uuid(), m.role))
            .collect(),
        groups: Vec::new(),
    }
}

/// The strictest policy among the person's associations.
struct SessionPolicy {
    require_second_factor: bool,
    idle: Duration,
    absolute: Duration,
}

impl Services {
    async fn session_policy(&self, memberships: &[MembershipRow]) -> AppResult<SessionPolicy> {
        let mut p = SessionPolicy {
            require_second_factor: false,
            idle: Duration::minutes(DEFAULT_IDLE_MINUTES),
            absolute: Duration::hours(DEFAULT_ABSOLUTE_HOURS),
        };
        for (i, m) in memberships.iter().enumerate() {
            let tenant = self.db().resolve_tenant(&m.slug).await?;
            let mut tx = self.db().tenant_snapshot(&tenant).await?;
            let s = musubi_db::associations::read_settings(&mut tx).await?;
            tx.commit().await.map_err(AppError::internal)?;
            let idle = Duration::minutes(i64::from(s.session_idle_minutes));
            let absolute = Duration::hours(i64::from(s.session_absolute_hours));
            p.require_second_factor |= s.require_second_factor;
            if i == 0 || idle < p.idle {
                p.idle = idle;
            }
            if i == 0 || absolute < p.absolute {
                p.absolute = absolute;
            }
        }
        Ok(p)
    }

    /// Step one: e-mail and password. Unknown e-mail and wrong password answer alike and take
    /// the same time. Every attempt counts against the rate limits, per account and per IP.
    pub async fn sign_in(
        &self,
        email: &str,
        password: &str,
        kind: SessionKind,
        client: &RequestMeta,
    ) -> AppResult<SignIn> {
        // What cannot be an address or a password cannot be an account's: the same answer.
        let (Ok(email), Ok(password)) = (
            crate::text::email("email", email),
            crate::text::secret("password", password),
        ) else {
            return Err(invalid_credentials());
        };
        let email = email.as_str();
        self.limits()
            .hit(&RateLimitClass::SIGNIN_IP, &client.ip)
            .await?;
        self.limits()
            .hit(&RateLimitClass::SIGNIN_ACCOUNT, &email.to_lowercase())
            .await?;
        let user = repo::user_by_email(self.db().pool(), email).await?;
        let ok = match user.as_ref().and_then(|u| u.password_hash.clone()) {
            Some(stored) => password::verify_password_async(password.to_owned(), stored)
                .await
                .map_err(AppError::internal)?,
            // Same work as a real check: unknown e-mail and wrong password look alike.
            None => password::verify_unknown_account_async(password.to_owned()).await,
        };
        let user = match user {
            Some(u) if ok && u.status == AccountStatus::Active => u,
            other => {
                self.audit_sign_in_failure(other.as_ref(), email, client)
                    .await;
                return Err(invalid_credentials());
            }
        };
        let memberships = repo::memberships_of(self.db().pool(), user.id).await?;
        let policy = self.session_policy(&memberships).await?;
        let has_totp = user.totp_enabled_at.is_some();
        let step = if has_totp {
            SignInStep::SecondFactor
        } else if policy.require_second_factor {
            SignInStep::EnrolSecondFactor
        } else {
            SignInStep::Done
        };
        let token = new_token()?;
        let full = step == SignInStep::Done;
        let (idle, absolute) = if full {
            (policy.idle, policy.absolute)
        } else {
            let half = Duration::minutes(HALF_SESSION_MINUTES);
            (half, half)
        };
        repo::insert_session(
            self.db().pool(),
            &NewSession {
                user_id: user.id,
                token_hash: &musubi_auth::token::hash_token(&token),
                kind,
                second_factor_done: full,
                idle,
                absolute,
                ip: &client.ip,
                user_agent: &client.user_agent,
            },
        )
        .await?;
        if full {
            self.limits()
                .reset(&RateLimitClass::SIGNIN_ACCOUNT, &email.to_lowercase())
                .await?;
            self.audit_signed_in(&user, &memberships, "password", client)
                .await?;
        }
        Ok(SignIn { token, step })
    }

    /// Opens a full session for a person already verified by a method that counts as two
    /// factors (a passkey with user verification): no second-factor step follows, whatever the
    /// associations require. The caller has checked that the account is active.
    pub(crate) async fn open_verified_session(
        &self,
        user: &UserRow,
        kind: SessionKind,
        method: &str,
        client: &RequestMeta,
    ) -> AppResult<String> {
        let memberships = repo::memberships_of(self.db().pool(), user.id).await?;
        let policy = self.session_policy(&memberships).await?;
        let token = new_token()?;
        repo::insert_session(
            self.db().pool(),
            &NewSession {
                user_id: user.id,
                token_hash: &musubi_auth::token::hash_token(&token),
                kind,
                second_factor_done: true,
                idle: policy.idle,
                absolute: policy.absolute,
                ip: &client.ip,
                user_agent: &client.user_agent,
            },
        )
        .await?;
        self.audit_signed_in(user, &memberships, method, client)
            .await?;
        Ok(token)
    }

    /// The session behind a token, if it is still valid: full sessions only.
    pub async fn authenticate(&self, token: &str) -> AppResult<Option<Viewer>> {
        if token.is_empty() || token.len() > 200 {
            return Ok(None);
        }
        let hash = musubi_auth::token::hash_token(token);
        let Some((session, user, memberships)) =
            repo::authenticate(self.db().pool(), &hash).await?
        else {
            return Ok(None);
        };
        self.count_person_request(user.id).await?;
        let principal = principal_for(&user, &memberships);
        Ok(Some(Viewer {
            user,
            session,
            memberships,
            principal,
        }))
    }

    /// Fair use per person, over all their sessions. A store that fails lets the request
    /// through: these counters protect capacity, not secrets, and an outage of Redis must
    /// not take every signed-in page down with it.
    async fn count_person_request(&self, person: PersonId) -> AppResult<()> {
        let Some(class) = self.person_limit() else {
            return Ok(());
        };
        match self.limits().hit(class, &person.to_string()).await {
            Ok(()) => Ok(()),
            Err(e @ musubi_auth::ratelimit::RateLimitError::Limited { .. }) => Err(e.into()),
            Err(e) => {
                tracing::warn!(error = %e, "fair use: the person counter is unavailable");
                Ok(())
            }
        }
    }

    /// A session waiting for its second factor (or for enrolment of one).
    pub async fn half_session(&self, token: &str) -> AppResult<Option<HalfSession>> {
        if token.is_empty() || token.len() > 200 {
            return Ok(None);
        }
        let hash = musubi_auth::token::hash_token(token);
        let Some(session) = repo::touch_session(self.db().pool(), &hash).await? else {
            return Ok(None);
        };
        if session.second_factor_done {
            return Ok(None);
        }
        let Some(user) = repo::user_by_id(self.db().pool(), session.user_id).await? else {
            return Ok(None);
        };
        let must_enrol = user.totp_enabled_at.is_none();
        Ok(Some(HalfSession {
            user,
            session,
            must_enrol,
        }))
    }

    /// Step two: a TOTP code or a recovery code. On success the half session becomes a full
    /// session under a new token (the old token stops working: no session fixation).
    pub async fn complete_second_factor(
        &self,
        token: &str,
        code: &str,
        client: &RequestMeta,
    ) -> AppResult<String> {
        let Some(half) = self.half_session(token).await? else {
            return Err(AppError::new(
                ErrorCode::Unauthenticated,
                "please sign in again",
            ));
        };
        let user = &half.user;
        self.limits()
            .hit(&RateLimitClass::TOTP_ACCOUNT, &user.id.to_string())
            .await?;
        let Some(secret) = user.totp_secret.as_deref().filter(|_| !half.must_enrol) else {
            return Err(AppError::new(
                ErrorCode::SecondFactorEnrolmentRequired,
                "set up a second factor first",
            ));
        };
        let secret = TotpSecret::from_bytes(secret).map_err(AppError::internal)?;
        let last = user.totp_last_step.and_then(|s| u64::try_from(s).ok());
        let accepted = match secret.verify(code, SystemTime::now(), last) {
            Ok(step) => {
                let step = i64::try_from(step).map_err(AppError::internal)?;
                repo::claim_totp_step(self.db().pool(), user.id, step).await?
            }
            Err(_) => self.use_recovery_code(user.id, code).await?,
        };
        if !accepted {
            self.audit_second_factor_failure(user, client).await;
            return Err(AppError::new(
                ErrorCode::InvalidSecondFactor,
                "the code is not correct",
            ));
        }
        self.limits()
            .reset(&RateLimitClass::TOTP_ACCOUNT, &user.id.to_string())
            .await?;
        self.finish_half_session(&half, client, "totp").await
    }

    pub(crate) async fn finish_half_session(
        &self,
        half: &HalfSession,
        client: &RequestMeta,
        method: &str,
    ) -> AppResult<String> {
        let memberships = repo::memberships_of(self.db().pool(), half.user.id).await?;
        let policy = self.session_policy(&memberships).await?;
        let token = new_token()?;
        let upgraded = repo::upgrade_session(
            self.db().pool(),
            half.session.id,
            &musubi_auth::token::hash_token(&token),
            policy.idle,
            policy.absolute,
        )
        .await?;
        if !upgraded {
            return Err(AppError::new(
                ErrorCode::Unauthenticated,
                "please sign in again",
            ));
        }
        self.audit_signed_in(&half.user, &memberships, method, client)
            .await?;
        Ok(token)
    }

    async fn use_recovery_code(&self, user_id: PersonId, code: &str) -> AppResult<bool> {
        self.limits()
            .hit(&RateLimitClass::RECOVERY_ACCOUNT, &user_id.to_string())
            .await?;
        let Some(hash) = recovery::hash(user_id.uuid(), code) else {
            return Ok(false);
        };
        Ok(repo::use_recovery_code(self.db().pool(), user_id, &hash).await?)
    }

    pub async fn sign_out(&self, viewer: &Viewer, client: &RequestMeta) -> AppResult<()> {
        repo::revoke_session(self.db().pool(), viewer.user.id, viewer.session.id).await?;
        self.audit_signed_out(viewer, client).await
    }

    /// Ends every session of the viewer, this one included.
    pub async fn sign_out_everywhere(
        &self,
        viewer: &Viewer,
        client: &RequestMeta,
    ) -> AppResult<u64> {
        let mut tx = self.db().core_tx().await?;
        let n = repo::revoke_all_sessions(&mut tx, viewer.user.id).await?;
        tx.commit().await.map_err(AppError::internal)?;
        self.audit_signed_out(viewer, client).await?;
        Ok(n)
    }

    pub async fn my_sessions(&self, viewer: &Viewer) -> AppResult<Vec<SessionRow>> {
        Ok(repo::active_sessions(self.db().pool(), viewer.user.id).await?)
    }

    /// Revokes one of the viewer's own sessions; another person's id answers "not found".
    pub async fn revoke_my_session(&self, viewer: &Viewer, session_id: Uuid) -> AppResult<()> {
        if repo::revoke_session(self.db().pool(), viewer.user.id, session_id).await? {
            Ok(())
        } else {
            Err(AppError::not_found())
        }
    }
}

impl Services {
    /// Writes `entry` to the log of every association the person belongs to (sign-in events
    /// concern each of them), or to the platform log for people in none.
    pub(crate) async fn audit_person(
        &self,
        memberships: &[MembershipRow],
        entry: &AuditEntry,
    ) -> AppResult<()> {
        if memberships.is_empty() {
            let mut tx = self.db().core_tx().await?;
            record_platform(&mut tx, entry).await?;
            return tx.commit().await.map_err(AppError::internal);
        }
        for m in memberships {
            let tenant = self.db().resolve_tenant(&m.slug).await?;
            self.audit_record(&tenant, entry).await?;
        }
        Ok(())
    }

    async fn audit_signed_in(
        &self,
        user: &UserRow,
        memberships: &[MembershipRow],
        method: &str,
        client: &RequestMeta,
    ) -> AppResult<()> {
        let entry = AuditEntry::new(AuditAction::AuthSignIn, client)
            .by(user.id, user.name.clone())
            .with_detail("method", method.to_owned());
        self.audit_person(memberships, &entry).await
    }

    /// Best effort: a failed attempt must not turn into an internal error for the caller.
    async fn audit_failure(
        &self,
        user: Option<&UserRow>,
        email: &str,
        step: &str,
        client: &RequestMeta,
    ) {
        let result = async {
            let entry = AuditEntry::new(AuditAction::AuthSignInFailed, client)
                .with_detail("step", step.to_owned());
            match user {
                Some(u) => {
                    let memberships = repo::memberships_of(self.db().pool(), u.id).await?;
                    let entry = entry.on("user", u.id);
                    self.audit_person(&memberships, &entry).await
                }
                None => {
                    // An unknown address may be a mistyped password: keep only a short digest.
                    let digest = musubi_auth::token::hash_token(&email.to_lowercase());
                    let entry = entry.with_detail("email_digest", hex::encode(&digest[..8]));
                    self.audit_person(&[], &entry).await
                }
            }
        }
        .await;
        if let Err(e) = result {
            tracing::error!(code = e.code.as_str(), error = ?e.source, "auditing a failed sign-in failed");
        }
    }

    async fn audit_sign_in_failure(
        &self,
        user: Option<&UserRow>,
        email: &str,
        client: &RequestMeta,
    ) {
        self.audit_failure(user, email, "password", client).await;
    }

    async fn audit_second_factor_failure(&self, user: &UserRow, client: &RequestMeta) {
        self.audit_failure(Some(user), &user.email, "second_factor", client)
            .await;
    }

    async fn audit_signed_out(&self, viewer: &Viewer, client: &RequestMeta) -> AppResult<()> {
        let seconds = (chrono::Utc::now() - viewer.session.created_at).num_seconds();
        let entry = AuditEntry::new(AuditAction::AuthSignOut, client)
            .by(viewer.user.id, viewer.user.name.clone())
            .with_detail("session_seconds", seconds);
        self.audit_person(&viewer.memberships, &entry).await
    }
}

fn new_token() -> AppResult<String> {
    Ok(Token::generate().map_err(AppError::internal)?.into_string())
}
