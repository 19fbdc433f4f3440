//! The operator surface: what may be done without a signed-in person — by the command line
//! (whoever runs the server), the demo data and tests.
//!
//! Entry points (GraphQL, web pages, the WebSocket) are given [`Services`] only, whose every
//! operation on an association's data takes a [`Viewer`] and checks it. They cannot make an
//! [`Operator`]: that takes the database handle, which `Services` does not hand out, and they
//! cannot make or alter a `Viewer`.

use crate::associations::CreateAssociation;
use crate::audit::{AuditEntry, RequestMeta};
use crate::invitations::CreatedInvitation;
use crate::sessions::{principal_for, Viewer};
use crate::types::GroupId;
use crate::types::PersonId;
use crate::{AppError, AppResult, Db, Services, Tenant};
use chrono::Utc;
use musubi_authz::{Authorizer, GroupRole};
use musubi_db::accounts::{self, SessionRow};
use musubi_db::audit::{PurgeReport, VerifyReport};
use musubi_realtime::Bus;
use uuid::Uuid;

/// See the module documentation. Cheap to clone.
#[derive(Clone)]
pub struct Operator {
    services: Services,
    db: Db,
}

/// An operator may do everything the services offer, and more.
impl std::ops::Deref for Operator {
    type Target = Services;
    fn deref(&self) -> &Services {
        &self.services
    }
}

impl Operator {
    /// The operator of `services`, proven by holding their database handle.
    pub fn new(services: Services, db: Db) -> Self {
        Self { services, db }
    }

    /// The services entry points get.
    pub fn services(&self) -> &Services {
        &self.services
    }

    pub fn db(&self) -> &Db {
        &self.db
    }

    pub fn bus(&self) -> &Bus {
        self.services.bus()
    }

    /// The rate-limit counters the services use (Redis across replicas, or in process), for
    /// the server's fair-use layer to count requests in the same place.
    pub fn limiter(&self) -> &musubi_auth::ratelimit::RateLimiter {
        self.services.limits()
    }

    pub fn authorizer(&self) -> &Authorizer {
        self.services.authorizer()
    }

    /// Acts as the person with `email`, without a session (seeding demo data, tests): every
    /// operation still checks what that person may do.
    pub async fn act_as(&self, email: &str) -> AppResult<Viewer> {
        let user = accounts::user_by_email(self.db.pool(), email)
            .await?
            .ok_or_else(AppError::not_found)?;
        let memberships = accounts::memberships_of(self.db.pool(), user.id).await?;
        let principal = principal_for(&user, &memberships);
        let now = Utc::now();
        let session = SessionRow {
            id: Uuid::nil(),
            user_id: user.id,
            kind: musubi_db::types::SessionKind::Api,
            second_factor_done: true,
            created_at: now,
            last_seen_at: now,
            idle_expires_at: now,
            absolute_expires_at: now,
            ip: String::new(),
            user_agent: String::new(),
        };
        Ok(Viewer {
            user,
            session,
            memberships,
            principal,
        })
    }

    /// Provisions an association: registry row and migrated schema, all or nothing.
    pub async fn create_association(&self, input: &CreateAssociation) -> AppResult<Tenant> {
        self.services.create_association(input).await
    }

    /// Records or ends two associations' agreement to share their directories
    /// (`musubi association neighbours`).
    pub async fn set_neighbours(
        &self,
        slug: &str,
        other: &str,
        neighbours: bool,
    ) -> AppResult<bool> {
        self.services.set_neighbours(slug, other, neighbours).await
    }

    /// Invites an association's first administrator (`musubi association invite-admin`).
    pub async fn invite_first_admin(
        &self,
        tenant: &Tenant,
        email: Option<String>,
        expires_in_days: Option<i32>,
    ) -> AppResult<CreatedInvitation> {
        self.services
            .invite_first_admin(tenant, email, expires_in_days)
            .await
    }

    /// Adds a person straight in as an active member of a group `tenant` hosts (demo data and
    /// tests; people join by accepting an invitation).
    pub async fn add_group_member(
        &self,
        tenant: &Tenant,
        group_id: GroupId,
        user_id: PersonId,
        role: GroupRole,
    ) -> AppResult<()> {
        self.services
            .add_group_member_directly(tenant, group_id, user_id, role)
            .await
    }

    /// Records one entry in `tenant`'s audit log, as a change of its own.
    pub async fn audit_record(&self, tenant: &Tenant, entry: &AuditEntry) -> AppResult<()> {
        self.services.audit_record(tenant, entry).await
    }

    pub async fn audit_verify(&self, tenant: &Tenant) -> AppResult<VerifyReport> {
        self.services.audit_verify(tenant).await
    }

    pub async fn audit_verify_platform(&self) -> AppResult<VerifyReport> {
        self.services.audit_verify_platform().await
    }

    pub async fn audit_purge(&self, tenant: &Tenant) -> AppResult<Option<PurgeReport>> {
        self.services.audit_purge(tenant).await
    }

    /// The request description of work done by the operator.
    pub fn meta() -> RequestMeta {
        RequestMeta::new("", "musubi operator")
    }
}
