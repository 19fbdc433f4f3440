//! Musubi's services: the one place where tenant routing, authorization and audit meet.
//! Every entry point (GraphQL, web pages, CLI, later jobs) calls these and nothing below.

mod actor;
pub mod associations;
pub mod audit;
pub mod calendar;
mod change;
pub mod comments;
pub mod error;
pub mod file_types;
pub mod files;
pub mod groups;
pub mod invitations;
pub mod jobs;
pub mod live;
pub mod members;
pub mod messages;
pub mod notifications;
pub mod operator;
pub mod passkeys;
pub mod password_reset;
pub mod patient_csv;
pub mod patients;
pub mod push;
pub mod search;
pub mod second_factor;
pub mod sessions;
pub mod text;
pub mod topics;
pub mod unread;
pub mod urgent;
pub mod wareki;

pub use actor::Actor;
pub use error::{AppError, AppResult, ErrorCode};
pub use musubi_db::{types, Db, Tenant};

use musubi_auth::ratelimit::RateLimiter;
use musubi_authz::Authorizer;
use musubi_notify::Mailer;
use musubi_realtime::Bus;
use std::sync::Arc;

/// The services handle shared by all entry points. Cheap to clone.
#[derive(Clone)]
pub struct Services {
    db: Db,
    authorizer: Authorizer,
    limits: Arc<RateLimiter>,
    mailer: Mailer,
    /// Passkeys (WebAuthn); `None` when the public URL cannot serve as a relying party.
    relying_party: Option<passkeys::RelyingParty>,
    /// Live updates: in process, or through Redis across replicas.
    bus: Bus,
    denials: audit::DenialLog,
    /// Requests one person may make per window over all their sessions (fair use).
    person_limit: Option<musubi_auth::ratelimit::RateLimitClass>,
    /// Shared files; `None` until [`Services::with_files`].
    files: Option<files::FileService>,
    timing: jobs::JobTiming,
    /// Web push: VAPID key, allow-list additions, HTTP client.
    push: push::PushState,
    /// Requests being served, counted by the server: deferrable jobs yield to them.
    pressure: jobs::Pressure,
}

impl Services {
    /// Builds the services; `limits` counts attempts (in process, or in Redis across replicas).
    /// Mails go to the log until [`Services::with_mailer`] gives a real mailer.
    pub async fn build(db: Db, limits: RateLimiter) -> AppResult<Self> {
        let authorizer = Authorizer::new().await.map_err(AppError::internal)?;
        Ok(Self {
            db: db.clone(),
            authorizer,
            limits: Arc::new(limits),
            mailer: Mailer::log_only("http://127.0.0.1:8080"),
            relying_party: None,
            bus: Bus::in_process(),
            denials: audit::DenialLog::start(db.clone()),
            person_limit: None,
            files: None,
            timing: jobs::JobTiming::default(),
            push: push::PushState::default(),
            pressure: jobs::Pressure::default(),
        })
    }

    /// The same services with these background-work timings (from the configuration).
    pub fn with_job_timing(mut self, timing: jobs::JobTiming) -> Self {
        self.timing = timing;
        self
    }

    /// The same services sending web pushes with these settings (from the configuration).
    pub fn with_push(mut self, settings: push::PushSettings) -> Self {
        self.push = push::PushState::new(settings);
        self
    }

    /// The count of requests being served, which the server keeps and background work reads.
    pub fn pressure(&self) -> &jobs::Pressure {
        &self.pressure
    }

    /// The same services judging whether people wait by `pressure`.
    pub fn with_pressure(mut self, pressure: jobs::Pressure) -> Self {
        self.pressure = pressure;
        self
    }

    pub(crate) fn timing(&self) -> &jobs::JobTiming {
        &self.timing
    }

    /// The same services sending mail (and building links) with `mailer`.
    pub fn with_mailer(mut self, mailer: Mailer) -> Self {
        self.mailer = mailer;
        self
    }

    /// The same services with passkeys for `relying_party`; without it, passkey ceremonies
    /// answer `PASSKEYS_UNAVAILABLE`.
    pub fn with_relying_party(mut self, relying_party: passkeys::RelyingParty) -> Self {
        self.relying_party = Some(relying_party);
        self
    }

    /// The same services limiting each person to `per_minute` authenticated requests a minute
    /// over all their sessions (fair use; counted with the same store as the other limits).
    pub fn with_person_limit(mut self, per_minute: u32) -> Self {
        self.person_limit = Some(musubi_auth::ratelimit::RateLimitClass::new(
            "fair:person",
            per_minute,
            std::time::Duration::from_secs(60),
        ));
        self
    }

    pub(crate) fn person_limit(&self) -> Option<&musubi_auth::ratelimit::RateLimitClass> {
        self.person_limit.as_ref()
    }

    /// The same services publishing live events on `bus` (Redis across replicas).
    pub fn with_bus(mut self, bus: Bus) -> Self {
        self.bus = bus;
        self
    }

    pub(crate) fn bus(&self) -> &Bus {
        &self.bus
    }

    pub(crate) fn mailer(&self) -> &Mailer {
        &self.mailer
    }

    pub(crate) fn db(&self) -> &Db {
        &self.db
    }

    pub(crate) fn authorizer(&self) -> &Authorizer {
        &self.authorizer
    }

    pub(crate) fn denials(&self) -> &audit::DenialLog {
        &self.denials
    }

    pub(crate) fn limits(&self) -> &RateLimiter {
        &self.limits
    }

    /// Resolves the association a request is routed to; fails closed.
    pub async fn resolve_tenant(&self, slug: &str) -> AppResult<Tenant> {
        // Reject obvious garbage before it reaches the registry.
        if !associations::is_valid_slug(slug) {
            return Err(AppError::new(
                ErrorCode::AssociationNotFound,
                "no such association",
            ));
        }
        Ok(self.db.resolve_tenant(slug).await?)
    }
}
