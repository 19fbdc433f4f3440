//! A forgotten password: a single-use link by e-mail, valid 30 minutes, to choose a new one.
//!
//! Asking always gets the same answer, known address or not, and takes the same time (the
//! mail goes out in the background). Choosing the new password checks the policy, ends every
//! session of the account and does not sign the person in: they sign in afresh, with their
//! second factor.

use crate::audit::{AuditAction, AuditEntry, RequestMeta};
use crate::invitations::check_new_password;
use crate::{AppError, AppResult, ErrorCode, Services};
use chrono::Utc;
use musubi_auth::password::{self, PasswordContext};
use musubi_auth::ratelimit::{RateLimitClass, RateLimitError};
use musubi_auth::token::{self, Token};
use musubi_db::accounts::{self as accounts, UserRow};
use musubi_db::password_reset as repo;
use musubi_db::types::AccountStatus;

/// How long a reset link works.
pub const RESET_VALID_MINUTES: i64 = 30;

fn invalid_link() -> AppError {
    AppError::new(
        ErrorCode::PasswordResetInvalid,
        "this password-reset link is not valid (it may have expired or been used)",
    )
}

impl Services {
    /// Mails a reset link if `email` belongs to an active account; otherwise does nothing.
    /// The answer is the same either way. Limited per client address (`RATE_LIMITED`) and
    /// per e-mail address (silently: further requests send nothing for a while).
    pub async fn request_password_reset(&self, email: &str, client: &RequestMeta) -> AppResult<()> {
        self.limits()
            .hit(&RateLimitClass::RESET_IP, &client.ip)
            .await?;
        // Not an address: nothing to send, and the same answer.
        let Ok(email) = crate::text::email("email", email) else {
            return Ok(());
        };
        let email = email.as_str();
        match self
            .limits()
            .hit(&RateLimitClass::RESET_ACCOUNT, &email.to_lowercase())
            .await
        {
            Ok(()) => {}
            Err(RateLimitError::Limited { .. }) => return Ok(()),
            Err(e) => return Err(e.into()),
        }
        let Some(user) = accounts::user_by_email(self.db().pool(), email).await? else {
            return Ok(());
        };
        if user.status != AccountStatus::Active {
            return Ok(());
        }
        // Everything that only happens for a known address runs after the answer.
        let services = self.clone();
        let client = client.clone();
        tokio::spawn(async move {
            if let Err(e) = services.send_reset_link(&user, &client).await {
                tracing::error!(
                    code = e.code.as_str(),
                    error = ?e.source,
                    "sending a password-reset link failed"
                );
            }
        });
        Ok(())
    }

    async fn send_reset_link(&self, user: &UserRow, client: &RequestMeta) -> AppResult<()> {
        let token = Token::generate().map_err(AppError::internal)?;
        let expires_at = Utc::now() + chrono::Duration::minutes(RESET_VALID_MINUTES);
        repo::insert(self.db().pool(), &token.hash(), user.id, expires_at).await?;
        let entry =
            AuditEntry::new(AuditAction::AuthPasswordResetRequest, client).on("user", user.id);
        self.record_for_person(user, &entry).await?;
        let link = self.mailer().reset_link(token.as_str());
        let mail = musubi_notify::password_reset_mail(&user.email, &link, expires_at)
            .map_err(AppError::internal)?;
        self.mailer().send(&mail).await.map_err(|e| AppError {
            source: Some(Box::new(e)),
            ..AppError::new(ErrorCode::MailFailed, "the mail could not be sent")
        })
    }

    /// Sets a new password with a reset link. Ends every session of the account (and any
    /// other reset link); does not sign in. Unknown, used and expired links answer
    /// `PASSWORD_RESET_INVALID`; a password the policy refuses, `WEAK_PASSWORD` with reasons
    /// (the link stays usable).
    pub async fn reset_password(
        &self,
        token: &str,
        new_password: &str,
        client: &RequestMeta,
    ) -> AppResult<()> {
        self.limits()
            .hit(&RateLimitClass::RESET_IP, &client.ip)
            .await?;
        if !token::is_well_formed(token) {
            return Err(invalid_link());
        }
        let hash = token::hash_token(token);
        let Some(user_id) = repo::user_of_pending(self.db().pool(), &hash).await? else {
            return Err(invalid_link());
        };
        let Some(user) = accounts::user_by_id(self.db().pool(), user_id).await? else {
            return Err(invalid_link());
        };
        check_new_password(
            new_password,
            &PasswordContext {
                email: &user.email,
                names: &[user.name.as_str(), user.name_kana.as_str()],
                has_second_factor: user.totp_enabled_at.is_some(),
            },
        )?;
        let phc = password::hash_password_async(new_password.to_owned())
            .await
            .map_err(AppError::internal)?;

        let mut tx = self.db().core_tx().await?;
        if repo::claim(&mut tx, &hash).await? != Some(user.id) {
            return Err(invalid_link());
        }
        repo::set_password(&mut tx, user.id, &phc).await?;
        repo::void_all(&mut tx, user.id).await?;
        let ended = accounts::revoke_all_sessions(&mut tx, user.id).await?;
        tx.commit().await.map_err(AppError::internal)?;

        // A locked-out person who proved their mailbox may try again at once.
        self.limits()
            .reset(&RateLimitClass::SIGNIN_ACCOUNT, &user.email.to_lowercase())
            .await?;
        let entry = AuditEntry::new(AuditAction::AuthPasswordReset, client)
            .by(user.id, user.name.clone())
            .on("user", user.id)
            .with_detail("sessions_ended", i64::try_from(ended).unwrap_or(i64::MAX));
        self.record_for_person(&user, &entry).await
    }

    async fn record_for_person(&self, user: &UserRow, entry: &AuditEntry) -> AppResult<()> {
        let memberships = accounts::memberships_of(self.db().pool(), user.id).await?;
        self.audit_person(&memberships, entry).await
    }
}
