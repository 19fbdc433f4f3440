//! Musubi's one authorization decision point.
//!
//! Services load the caller's memberships from SQL into a [`Principal`] once per request and
//! ask an [`Authorizer`] whether that principal may perform an [`Action`] on an [`Object`] in a
//! [`Domain`] (the platform, one association, or one patient group). Underneath, a casbin
//! enforcer holds only role *templates* (`policies/roles.csv`); memberships are never copied
//! into it, so a revoked membership stops working on the next request on every replica.

mod authorizer;
mod names;
mod permission;
mod policy;
mod principal;
mod role;

pub use authorizer::{Authorizer, AuthzError, Denied};
pub use permission::{Action, Domain, Object};
pub use principal::{AssociationRole, GroupRole, Principal, ProfessionClass};
