//! The decision point: principal + domain → roles → casbin.

use std::fmt;
use std::sync::Arc;

use casbin::{CoreApi, DefaultModel, Enforcer, StringAdapter};

use crate::permission::{Action, Domain, Object};
use crate::policy;
use crate::principal::{AsRole, Principal};
use crate::role::Role;

/// The policy could not be loaded; the server must not start without it.
#[derive(Debug, thiserror::Error)]
pub enum AuthzError {
    #[error("the authorization model or role templates could not be loaded")]
    Load(#[source] casbin::Error),
    #[error("policies/roles.csv is invalid: {0}")]
    InvalidPolicy(String),
}

/// A request was not allowed. Services answer "not found" for objects of other tenants, so
/// that a denial does not reveal that the object exists.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("{action} on {object} in {domain} is not allowed")]
pub struct Denied {
    pub domain: Domain,
    pub object: Object,
    pub action: Action,
}

/// Decides every authorization question. Build once at start-up; clones share one enforcer
/// and may be used from any number of tasks at once.
#[derive(Clone)]
pub struct Authorizer {
    // Read-only after construction (policies are embedded, never edited at run time), and
    // `Enforcer::enforce` takes `&self`, so no lock is needed.
    enforcer: Arc<Enforcer>,
}

impl Authorizer {
    /// Loads the embedded `policies/model.conf` and `policies/roles.csv`.
    pub async fn new() -> Result<Self, AuthzError> {
        Self::from_policy(policy::MODEL, policy::ROLES).await
    }

    pub(crate) async fn from_policy(model: &str, roles: &str) -> Result<Self, AuthzError> {
        let model = DefaultModel::from_str(model)
            .await
            .map_err(AuthzError::Load)?;
        let enforcer = Enforcer::new(model, StringAdapter::new(roles))
            .await
            .map_err(AuthzError::Load)?;
        policy::check_loaded(&enforcer, roles).map_err(AuthzError::InvalidPolicy)?;
        Ok(Authorizer {
            enforcer: Arc::new(enforcer),
        })
    }

    /// Whether any role `who` holds in exactly `domain` permits `action` on `object`.
    pub fn allows(&self, who: &Principal, domain: Domain, object: Object, action: Action) -> bool {
        let dom = domain.to_string();
        let permits = |role: Role| self.permits(role, &dom, object, action);
        // Only roles of the requested domain are consulted: this is where tenants stay apart.
        match domain {
            Domain::Platform => who.platform_operator && permits(Role::PlatformOperator),
            Domain::Association(id) => who
                .associations
                .iter()
                .filter(|(association, _)| *association == id)
                .any(|(_, role)| permits(role.role())),
            Domain::Group(id) => who
                .groups
                .iter()
                .filter(|(group, _)| *group == id)
                .any(|(_, role)| permits(role.role())),
        }
    }

    /// `Ok` when [`allows`](Self::allows); otherwise `Err(Denied)`.
    pub fn require(
        &self,
        who: &Principal,
        domain: Domain,
        object: Object,
        action: Action,
    ) -> Result<(), Denied> {
        if self.allows(who, domain, object, action) {
            Ok(())
        } else {
            tracing::debug!(user_id = %who.user_id, %domain, %object, %action, "authorization denied");
            Err(Denied {
                domain,
                object,
                action,
            })
        }
    }

    fn permits(&self, role: Role, domain: &str, object: Object, action: Action) -> bool {
        let request = (role.as_str(), domain, object.as_str(), action.as_str());
        match self.enforcer.enforce(request) {
            Ok(allowed) => allowed,
            Err(error) => {
                // Fail closed; the policy was checked at start-up, so this is a bug to see.
                tracing::error!(%error, role = role.as_str(), domain, %object, %action,
                    "authorization check failed; denying");
                false
            }
        }
    }
}

impl fmt::Debug for Authorizer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Authorizer").finish_non_exhaustive()
    }
}

// Shared through `Arc` across tasks and threads.
const _: fn() = || {
    fn shared<T: Send + Sync + 'static>() {}
    shared::<Authorizer>();
};
