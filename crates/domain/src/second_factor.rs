//! Enrolling a second factor (TOTP with an authenticator app) and its recovery codes.

use crate::audit::RequestMeta;
use crate::sessions::{HalfSession, Viewer};
use crate::{AppError, AppResult, ErrorCode, Services};
use musubi_auth::recovery;
use musubi_auth::totp::{self, TotpSecret};
use musubi_db::accounts::{self as repo, UserRow};
use std::time::SystemTime;

/// What the enrolment page shows: a QR code for the app, and the key to type in by hand.
#[derive(Debug, Clone)]
pub struct TotpEnrolment {
    pub secret_base32: String,
    pub uri: String,
    pub qr_svg: String,
}

/// Whose second factor is being set up: someone signed in, or someone an association's policy
/// stopped half-way through signing in.
pub enum Enrolling<'a> {
    Viewer(&'a Viewer),
    HalfSession(&'a HalfSession),
}

impl Enrolling<'_> {
    fn user(&self) -> &UserRow {
        match self {
            Enrolling::Viewer(v) => &v.user,
            Enrolling::HalfSession(h) => &h.user,
        }
    }
}

/// The result of a confirmed enrolment: the recovery codes (shown once) and, for a half
/// session, the token of the now complete session.
#[derive(Debug, Clone)]
pub struct Enrolled {
    pub recovery_codes: Vec<String>,
    pub new_token: Option<String>,
}

impl Services {
    /// Generates a new secret, kept pending (not yet required at sign-in) until confirmed.
    /// Calling it again replaces the pending secret. Refused when one is already active.
    pub async fn start_totp_enrolment(&self, who: Enrolling<'_>) -> AppResult<TotpEnrolment> {
        let user = who.user();
        if user.totp_enabled_at.is_some() {
            return Err(AppError::new(
                ErrorCode::SecondFactorAlreadySetUp,
                "a second factor is already set up",
            ));
        }
        let secret = TotpSecret::generate().map_err(AppError::internal)?;
        let uri = secret.provisioning_uri(&user.email);
        let qr_svg = totp::qr_code_svg(&uri).map_err(AppError::internal)?;
        let mut tx = self.db().core_tx().await?;
        repo::set_totp(&mut tx, user.id, Some(secret.as_bytes()), false).await?;
        tx.commit().await.map_err(AppError::internal)?;
        Ok(TotpEnrolment {
            secret_base32: secret.to_base32(),
            uri,
            qr_svg,
        })
    }

    /// Confirms the pending secret with a code from the app; enables it and issues ten
    /// recovery codes. For a half session, also completes the sign-in.
    pub async fn confirm_totp_enrolment(
        &self,
        who: Enrolling<'_>,
        code: &str,
        client: &RequestMeta,
    ) -> AppResult<Enrolled> {
        // Re-read: the pending secret was written after `who` was loaded.
        let Some(user) = repo::user_by_id(self.db().pool(), who.user().id).await? else {
            return Err(AppError::new(
                ErrorCode::Unauthenticated,
                "please sign in again",
            ));
        };
        self.limits()
            .hit(
                &musubi_auth::ratelimit::RateLimitClass::TOTP_ACCOUNT,
                &user.id.to_string(),
            )
            .await?;
        let Some(bytes) = user
            .totp_secret
            .as_deref()
            .filter(|_| user.totp_enabled_at.is_none())
        else {
            return Err(AppError::new(
                ErrorCode::InvalidInput,
                "start the set-up again",
            ));
        };
        let secret = TotpSecret::from_bytes(bytes).map_err(AppError::internal)?;
        let step = secret.verify(code, SystemTime::now(), None).map_err(|_| {
            AppError::new(ErrorCode::InvalidSecondFactor, "the code is not correct")
        })?;
        let codes = recovery::generate(user.id.uuid()).map_err(AppError::internal)?;
        let mut tx = self.db().core_tx().await?;
        repo::set_totp(&mut tx, user.id, Some(bytes), true).await?;
        repo::replace_recovery_codes(&mut tx, user.id, &codes.hashes).await?;
        tx.commit().await.map_err(AppError::internal)?;
        self.limits()
            .reset(
                &musubi_auth::ratelimit::RateLimitClass::TOTP_ACCOUNT,
                &user.id.to_string(),
            )
            .await?;
        // The code just used must not work again at sign-in.
        let step = i64::try_from(step).map_err(AppError::internal)?;
        repo::claim_totp_step(self.db().pool(), user.id, step).await?;
        let new_token = match who {
            Enrolling::HalfSession(h) => Some(self.finish_half_session(h, client, "totp").await?),
            Enrolling::Viewer(_) => None,
        };
        Ok(Enrolled {
            recovery_codes: codes.codes,
            new_token,
        })
    }
}
