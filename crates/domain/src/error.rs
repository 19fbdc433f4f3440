//! Errors that may reach a client: a stable code the UI translates, and a message for
//! developers. Anything else is `Internal`: logged with a trace id, shown only as its code.

use musubi_db::{DbError, TenantError};

/// Stable error codes. Never rename one: clients and translations depend on them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ErrorCode {
    NotFound,
    AssociationNotFound,
    AssociationRequired,
    AssociationUnavailable,
    InvalidInput,
    Conflict,
    Unauthenticated,
    /// Signed in, but no association counts the person as an active member any more: nothing
    /// but the account itself (sessions, signing out) is open to them.
    NoActiveMembership,
    /// An action on a whole account (sign out everywhere, reset the second factor) asked by an
    /// association that does not answer for that account: the person also belongs elsewhere.
    AccountWideActionForbidden,
    InvalidCredentials,
    InvalidSecondFactor,
    SecondFactorEnrolmentRequired,
    WeakPassword,
    RateLimited,
    Internal,
    /// An invitation link that is unknown, used, revoked or expired (never said which).
    InvitationInvalid,
    /// A password-reset link that is unknown, used or expired (never said which).
    PasswordResetInvalid,
    /// A mail that had to go out could not be sent; nothing was done.
    MailFailed,
    /// Passkeys cannot work on this deployment: its public URL's host is an IP address, which
    /// WebAuthn refuses (set `MUSUBI_PUBLIC_URL` to a host name).
    PasskeysUnavailable,
    /// The topic is closed to new comments.
    TopicClosed,
    /// Removing or demoting this owner would leave the group without one.
    LastOwner,
    /// Deactivating or demoting this administrator would leave the association without one.
    LastAdmin,
    /// An administrator tried to deactivate themselves.
    CannotDeactivateSelf,
    /// A topic's first post (its body) cannot be deleted, only edited or the topic closed.
    FirstPostUndeletable,
    /// The person already belongs (or, for a group, is invited or waits for approval).
    AlreadyMember,
    /// An association with this slug already exists.
    SlugTaken,
    /// A second factor is already set up; remove it before setting up another.
    SecondFactorAlreadySetUp,
    /// The patient's care has ended and their group is read-only (`GROUP_ARCHIVED`).
    GroupArchived,
    /// The server (or one association on it) is busier than it can serve well right now; the
    /// request was not started. Try again after `Retry-After`.
    Overloaded,
    /// The file is larger than the deployment allows (`MUSUBI_FILE_MAX_MB`).
    FileTooLarge,
    /// The association keeps as much in files as it may (`MUSUBI_FILE_QUOTA_GB`).
    QuotaExceeded,
    /// The file store did not answer; nothing was kept. Try again later.
    FileStoreUnavailable,
    /// An association of someone in the conversation does not allow messages with people of
    /// other associations (its administrators' policy); nothing was sent.
    CrossAssociationMessagesDisabled,
    /// The database did not answer (restarting, unreachable). Try again after `Retry-After`:
    /// Musubi reconnects by itself. A change cut off while committing may have been saved.
    DatabaseUnavailable,
    /// The server's disk is full: nothing was saved. Reading goes on; writing works again
    /// once the operator frees space (no restart needed).
    StorageFull,
}

impl ErrorCode {
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorCode::NotFound => "NOT_FOUND",
            ErrorCode::AssociationNotFound => "ASSOCIATION_NOT_FOUND",
            ErrorCode::AssociationRequired => "ASSOCIATION_REQUIRED",
            ErrorCode::AssociationUnavailable => "ASSOCIATION_UNAVAILABLE",
            ErrorCode::InvalidInput => "INVALID_INPUT",
            ErrorCode::Conflict => "CONFLICT",
            ErrorCode::Unauthenticated => "UNAUTHENTICATED",
            ErrorCode::NoActiveMembership => "NO_ACTIVE_MEMBERSHIP",
            ErrorCode::AccountWideActionForbidden => "ACCOUNT_WIDE_ACTION_FORBIDDEN",
            ErrorCode::InvalidCredentials => "INVALID_CREDENTIALS",
            ErrorCode::InvalidSecondFactor => "INVALID_SECOND_FACTOR",
            ErrorCode::SecondFactorEnrolmentRequired => "SECOND_FACTOR_ENROLMENT_REQUIRED",
            ErrorCode::WeakPassword => "WEAK_PASSWORD",
            ErrorCode::RateLimited => "RATE_LIMITED",
            ErrorCode::Internal => "INTERNAL",
            ErrorCode::InvitationInvalid => "INVITATION_INVALID",
            ErrorCode::PasswordResetInvalid => "PASSWORD_RESET_INVALID",
            ErrorCode::MailFailed => "MAIL_FAILED",
            ErrorCode::PasskeysUnavailable => "PASSKEYS_UNAVAILABLE",
            ErrorCode::TopicClosed => "TOPIC_CLOSED",
            ErrorCode::LastOwner => "LAST_OWNER",
            ErrorCode::LastAdmin => "LAST_ADMIN",
            ErrorCode::CannotDeactivateSelf => "CANNOT_DEACTIVATE_SELF",
            ErrorCode::FirstPostUndeletable => "FIRST_POST_UNDELETABLE",
            ErrorCode::AlreadyMember => "ALREADY_MEMBER",
            ErrorCode::SlugTaken => "SLUG_TAKEN",
            ErrorCode::SecondFactorAlreadySetUp => "SECOND_FACTOR_ALREADY_SET_UP",
            ErrorCode::Overloaded => "OVERLOADED",
            ErrorCode::GroupArchived => "GROUP_ARCHIVED",
            ErrorCode::FileTooLarge => "FILE_TOO_LARGE",
            ErrorCode::QuotaExceeded => "QUOTA_EXCEEDED",
            ErrorCode::FileStoreUnavailable => "FILE_STORE_UNAVAILABLE",
            ErrorCode::CrossAssociationMessagesDisabled => "CROSS_ASSOCIATION_MESSAGES_DISABLED",
            ErrorCode::DatabaseUnavailable => "DATABASE_UNAVAILABLE",
            ErrorCode::StorageFull => "STORAGE_FULL",
        }
    }

    /// Every code, for documentation and translation checks.
    pub const ALL: &'static [ErrorCode] = &[
        ErrorCode::NotFound,
        ErrorCode::AssociationNotFound,
        ErrorCode::AssociationRequired,
        ErrorCode::AssociationUnavailable,
        ErrorCode::InvalidInput,
        ErrorCode::Conflict,
        ErrorCode::Unauthenticated,
        ErrorCode::NoActiveMembership,
        ErrorCode::AccountWideActionForbidden,
        ErrorCode::InvalidCredentials,
        ErrorCode::InvalidSecondFactor,
        ErrorCode::SecondFactorEnrolmentRequired,
        ErrorCode::WeakPassword,
        ErrorCode::RateLimited,
        ErrorCode::Internal,
        ErrorCode::InvitationInvalid,
        ErrorCode::PasswordResetInvalid,
        ErrorCode::MailFailed,
        ErrorCode::PasskeysUnavailable,
        ErrorCode::TopicClosed,
        ErrorCode::LastOwner,
        ErrorCode::LastAdmin,
        ErrorCode::CannotDeactivateSelf,
        ErrorCode::FirstPostUndeletable,
        ErrorCode::AlreadyMember,
        ErrorCode::SlugTaken,
        ErrorCode::SecondFactorAlreadySetUp,
        ErrorCode::Overloaded,
        ErrorCode::GroupArchived,
        ErrorCode::FileTooLarge,
        ErrorCode::QuotaExceeded,
        ErrorCode::FileStoreUnavailable,
        ErrorCode::CrossAssociationMessagesDisabled,
        ErrorCode::DatabaseUnavailable,
        ErrorCode::StorageFull,
    ];
}

/// One field at fault and why (a reason code of [`crate::text::reason`] or of the form).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FieldIssue {
    pub field: &'static str,
    pub reason: &'static str,
}

#[derive(Debug, thiserror::Error)]
#[error("{code:?}: {message}")]
pub struct AppError {
    pub code: ErrorCode,
    /// Safe to show: never database text.
    pub message: String,
    /// The input field at fault, for `INVALID_INPUT`.
    pub field: Option<&'static str>,
    /// Seconds to wait, for `RATE_LIMITED`.
    pub retry_after: Option<u64>,
    /// Machine-readable reasons, e.g. the password rules a new password breaks.
    pub reasons: Vec<&'static str>,
    /// Every field at fault in a form checked as a whole (the first is also `field`), so that
    /// each can be marked at once.
    /// Boxed: errors travel in every `Result`, and most have none.
    pub fields: Box<[FieldIssue]>,
    /// The cause of an internal error, for the log only.
    #[source]
    pub source: Option<Box<dyn std::error::Error + Send + Sync>>,
}

impl AppError {
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        Self {
            code,
            message: message.into(),
            field: None,
            retry_after: None,
            reasons: Vec::new(),
            fields: Box::default(),
            source: None,
        }
    }

    pub fn invalid(field: &'static str, message: impl Into<String>) -> Self {
        Self {
            field: Some(field),
            ..Self::new(ErrorCode::InvalidInput, message)
        }
    }

    /// `INVALID_INPUT` for several fields at once (`issues` must not be empty).
    pub fn invalid_fields(issues: Vec<FieldIssue>) -> Self {
        let first = issues.first().copied();
        Self {
            field: first.map(|i| i.field),
            reasons: first.map(|i| vec![i.reason]).unwrap_or_default(),
            fields: issues.into_boxed_slice(),
            ..Self::new(ErrorCode::InvalidInput, "some fields need attention")
        }
    }

    pub fn archived() -> Self {
        Self::new(
            ErrorCode::GroupArchived,
            "care has ended: this group is kept read-only",
        )
    }

    pub fn not_found() -> Self {
        Self::new(ErrorCode::NotFound, "not found")
    }

    pub fn internal(source: impl std::error::Error + Send + Sync + 'static) -> Self {
        Self {
            source: Some(Box::new(source)),
            ..Self::new(ErrorCode::Internal, "internal error")
        }
    }

    /// A local file could not be written: a full disk is named, anything else is ours.
    pub fn io(source: std::io::Error) -> Self {
        if source.kind() == std::io::ErrorKind::StorageFull {
            return Self::storage_full(source);
        }
        Self::internal(source)
    }

    /// The disk under PostgreSQL or a local file is full: nothing was saved.
    fn storage_full(source: impl std::error::Error + Send + Sync + 'static) -> Self {
        Self {
            retry_after: Some(60),
            source: Some(Box::new(source)),
            ..Self::new(
                ErrorCode::StorageFull,
                "the server's disk is full; nothing was saved",
            )
        }
    }
}

impl From<TenantError> for AppError {
    fn from(e: TenantError) -> Self {
        match &e {
            TenantError::NotFound(_) => {
                Self::new(ErrorCode::AssociationNotFound, "no such association")
            }
            TenantError::Outdated { .. } | TenantError::CoreOutdated => Self {
                // The operator's fix (run `musubi migrate`) goes to the log, not the client.
                source: Some(Box::new(e)),
                ..Self::new(
                    ErrorCode::AssociationUnavailable,
                    "this association is being upgraded; try again later",
                )
            },
        }
    }
}

impl From<DbError> for AppError {
    fn from(e: DbError) -> Self {
        match e {
            DbError::Tenant(t) => t.into(),
            DbError::Conflict(_) => Self::new(ErrorCode::Conflict, "already exists"),
            DbError::Sqlx(ref s) if disk_full(s) => Self::storage_full(e),
            DbError::Sqlx(ref s) if unreachable_database(s) => Self {
                retry_after: Some(5),
                source: Some(Box::new(e)),
                ..Self::new(
                    ErrorCode::DatabaseUnavailable,
                    "the database is not answering; retry later",
                )
            },
            other => Self::internal(other),
        }
    }
}

/// PostgreSQL could not extend a file or write its log (SQLSTATE 53100 `disk_full`).
fn disk_full(e: &sqlx::Error) -> bool {
    matches!(e, sqlx::Error::Database(d) if d.code().as_deref() == Some("53100"))
}

/// The database is down or restarting, as opposed to a bug: the connection failed, the pool
/// gave up waiting, or PostgreSQL is shutting down or starting (SQLSTATE classes 08 and 57P), or it has no connection
/// left for us (53300).
fn unreachable_database(e: &sqlx::Error) -> bool {
    match e {
        sqlx::Error::Io(_)
        | sqlx::Error::PoolTimedOut
        | sqlx::Error::PoolClosed
        | sqlx::Error::WorkerCrashed => true,
        sqlx::Error::Database(d) => d
            .code()
            .is_some_and(|c| c.starts_with("08") || c.starts_with("57P") || c == "53300"),
        _ => false,
    }
}

impl From<musubi_auth::ratelimit::RateLimitError> for AppError {
    fn from(e: musubi_auth::ratelimit::RateLimitError) -> Self {
        match e {
            musubi_auth::ratelimit::RateLimitError::Limited { retry_after } => Self {
                retry_after: Some(retry_after.as_secs().max(1)),
                ..Self::new(
                    ErrorCode::RateLimited,
                    "too many attempts; please wait and try again",
                )
            },
            // Fail closed: a limiter we cannot ask refuses the attempt.
            other => Self::internal(other),
        }
    }
}

pub type AppResult<T> = Result<T, AppError>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_code_is_unique_and_documented() {
        let doc = include_str!("../../../docs/error-codes.md");
        let mut seen = std::collections::HashSet::new();
        for code in ErrorCode::ALL {
            assert!(seen.insert(code.as_str()), "{} twice", code.as_str());
            assert!(
                doc.contains(&format!("### `{}`", code.as_str())),
                "{} is not documented in docs/error-codes.md",
                code.as_str()
            );
        }
    }
}
