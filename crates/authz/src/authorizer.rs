//! The decision point: principal + domain → roles → casbin.

use std::fmt;
use std::sync::{Arc, OnceLock};

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
    /// casbin's answer for each (role, kind of domain, object, action), kept once asked:
    /// evaluating the matcher took about 4% of the server's CPU under load, several times a
    /// request. Filled on demand (asking every question at start-up took seconds in debug
    /// builds, for each test server).
    decided: Arc<[OnceLock<bool>]>,
}

/// A kind of [`Domain`]. Every rule of a role names that role's domain pattern (checked when
/// the policy is loaded), and those patterns (`platform`, `association:*`, `group:*`) tell
/// domains apart only by their kind: casbin answers alike for every domain of one kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum DomainKind {
    Platform,
    Association,
    Group,
}

impl DomainKind {
    const ALL: [DomainKind; 3] = [
        DomainKind::Platform,
        DomainKind::Association,
        DomainKind::Group,
    ];

    fn of(domain: Domain) -> Self {
        match domain {
            Domain::Platform => DomainKind::Platform,
            Domain::Association(_) => DomainKind::Association,
            Domain::Group(_) => DomainKind::Group,
        }
    }

    /// A domain of this kind, to ask casbin with.
    fn example(self) -> Domain {
        match self {
            DomainKind::Platform => Domain::Platform,
            DomainKind::Association => Domain::Association(uuid::Uuid::nil()),
            DomainKind::Group => Domain::Group(uuid::Uuid::nil()),
        }
    }
}

impl Authorizer {
    /// Loads the embedded `policies/model.conf` and `policies/roles.csv`.
    pub async fn new() -> Result<Self, AuthzError> {
        Self::from_policy(policy::MODEL, policy::ROLES).await
    }

    pub(crate) async fn from_policy(model: &str, roles: &str) -> Result<Self, AuthzError> {
        let enforcer = enforcer(model, roles).await?;
        let questions =
            Role::ALL.len() * DomainKind::ALL.len() * Object::ALL.len() * Action::ALL.len();
        Ok(Authorizer {
            enforcer: Arc::new(enforcer),
            decided: (0..questions).map(|_| OnceLock::new()).collect(),
        })
    }

    /// Whether any role `who` holds in exactly `domain` permits `action` on `object`.
    pub fn allows(&self, who: &Principal, domain: Domain, object: Object, action: Action) -> bool {
        let kind = DomainKind::of(domain);
        let permits = |role: Role| self.permits(role, kind, object, action);
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

    /// casbin's answer, asked once per role, kind of domain, object and action.
    fn permits(&self, role: Role, kind: DomainKind, object: Object, action: Action) -> bool {
        let index = ((role.index() * DomainKind::ALL.len() + kind as usize) * Object::ALL.len()
            + object.index())
            * Action::ALL.len()
            + action.index();
        let Some(slot) = self.decided.get(index) else {
            return false;
        };
        *slot.get_or_init(|| {
            let domain = kind.example().to_string();
            let request = (
                role.as_str(),
                domain.as_str(),
                object.as_str(),
                action.as_str(),
            );
            match self.enforcer.enforce(request) {
                Ok(allowed) => allowed,
                Err(error) => {
                    // Fail closed; the policy was checked at start-up, so this is a bug to see.
                    tracing::error!(%error, role = role.as_str(), %domain, %object, %action,
                        "authorization check failed; denying");
                    false
                }
            }
        })
    }
}

/// casbin's enforcer for the model and role templates, checked as [`policy::check_loaded`] says.
async fn enforcer(model: &str, roles: &str) -> Result<Enforcer, AuthzError> {
    let model = DefaultModel::from_str(model)
        .await
        .map_err(AuthzError::Load)?;
    let enforcer = Enforcer::new(model, StringAdapter::new(roles))
        .await
        .map_err(AuthzError::Load)?;
    policy::check_loaded(&enforcer, roles).map_err(AuthzError::InvalidPolicy)?;
    Ok(enforcer)
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

#[cfg(test)]
mod tests {
    use super::*;

    /// The table gives casbin's own answer for any domain, not only the ones it was built
    /// with: every role, object and action, in domains of every kind with other ids.
    #[tokio::test]
    async fn the_decision_table_answers_as_casbin_does_in_every_domain() {
        let authz = Authorizer::new().await.unwrap();
        let casbin = enforcer(policy::MODEL, policy::ROLES).await.unwrap();
        let ids = [
            uuid::Uuid::from_u128(1),
            uuid::Uuid::from_u128(0x0193_a3c0_7e2f_7000_8000_1234_5678_9abc),
            uuid::Uuid::from_u128(u128::MAX),
        ];
        let mut domains = vec![Domain::Platform];
        for id in ids {
            domains.push(Domain::Association(id));
            domains.push(Domain::Group(id));
        }
        let mut allowed = 0;
        for &role in Role::ALL {
            for domain in &domains {
                let dom = domain.to_string();
                for &object in Object::ALL {
                    for &action in Action::ALL {
                        let request = (role.as_str(), dom.as_str(), object.as_str());
                        let request = (request.0, request.1, request.2, action.as_str());
                        let answer = casbin.enforce(request).unwrap();
                        let table = authz.permits(role, DomainKind::of(*domain), object, action);
                        assert_eq!(table, answer, "{role} {dom} {object} {action}");
                        allowed += usize::from(answer);
                    }
                }
            }
        }
        assert!(allowed > 0, "the policy allows something");
        // Every question has a slot of its own, now answered.
        assert!(authz.decided.iter().all(|d| d.get().is_some()));
    }
}
