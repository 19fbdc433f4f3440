//! The embedded model and role templates, and the load-time check of what casbin read.

use casbin::{Enforcer, MgmtApi};

use crate::permission::{Action, Object};
use crate::role::Role;

/// Embedded at compile time so the decision never depends on the working directory or on
/// files an operator could edit on one replica only.
pub(crate) const MODEL: &str = include_str!("../../../policies/model.conf");
pub(crate) const ROLES: &str = include_str!("../../../policies/roles.csv");

/// casbin silently skips lines it does not understand and never checks names, so a typo
/// would quietly remove a permission. Refuse to start instead.
pub(crate) fn check_loaded(enforcer: &Enforcer, csv: &str) -> Result<(), String> {
    let permissions = enforcer.get_policy();
    let inheritance = enforcer.get_grouping_policy();

    let lines = rule_lines(csv).count();
    let loaded = permissions.len() + inheritance.len();
    if lines != loaded {
        return Err(format!(
            "{lines} rule lines but casbin loaded {loaded} rules: \
             a line is neither `p` nor `g`, or repeats another"
        ));
    }

    for rule in &permissions {
        check_permission(rule)?;
    }
    for rule in &inheritance {
        check_inheritance(rule)?;
    }
    Ok(())
}

/// The lines casbin treats as rules (the same skipping rule as its string adapter).
pub(crate) fn rule_lines(csv: &str) -> impl Iterator<Item = &str> {
    csv.lines()
        .map(str::trim)
        .filter(|line| !line.is_empty() && !line.starts_with('#'))
}

fn check_permission(rule: &[String]) -> Result<(), String> {
    let [role, domain, object, action] = rule else {
        return Err(format!(
            "`p, {}`: expected role, domain pattern, object, action",
            rule.join(", ")
        ));
    };
    let role = known_role(role)?;
    if domain != role.domain_pattern() {
        return Err(format!(
            "`{role}` may only be granted in `{}`, not `{domain}`",
            role.domain_pattern()
        ));
    }
    if object != "*" && Object::from_name(object).is_none() {
        return Err(format!("unknown object `{object}` (see enum Object)"));
    }
    if action != "*" && Action::from_name(action).is_none() {
        return Err(format!("unknown action `{action}` (see enum Action)"));
    }
    Ok(())
}

fn check_inheritance(rule: &[String]) -> Result<(), String> {
    let [role, inherited] = rule else {
        return Err(format!(
            "`g, {}`: expected role, inherited role",
            rule.join(", ")
        ));
    };
    let (role, inherited) = (known_role(role)?, known_role(inherited)?);
    // Inheriting across kinds of domain would be dead at best and a leak at worst.
    if role.domain_pattern() != inherited.domain_pattern() {
        return Err(format!(
            "`{role}` cannot inherit `{inherited}`: they belong to different kinds of domain"
        ));
    }
    Ok(())
}

fn known_role(name: &str) -> Result<Role, String> {
    Role::from_name(name).ok_or_else(|| format!("unknown role `{name}`"))
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use super::*;
    use crate::{Authorizer, AuthzError};

    /// (ptype, fields) of each embedded rule, split the simple way our CSV is written.
    fn embedded_rules() -> Vec<(String, Vec<String>)> {
        rule_lines(ROLES)
            .map(|line| {
                let mut fields = line.split(',').map(|field| field.trim().to_owned());
                let ptype = fields.next().unwrap_or_default();
                (ptype, fields.collect())
            })
            .collect()
    }

    #[tokio::test]
    async fn embedded_policy_loads() {
        Authorizer::new().await.unwrap();
    }

    #[test]
    fn every_object_action_and_role_is_used_in_roles_csv() {
        let rules = embedded_rules();
        let permissions: Vec<&Vec<String>> = rules
            .iter()
            .filter(|(ptype, _)| ptype == "p")
            .map(|(_, fields)| fields)
            .collect();
        let objects: BTreeSet<&str> = permissions.iter().map(|f| f[2].as_str()).collect();
        let actions: BTreeSet<&str> = permissions.iter().map(|f| f[3].as_str()).collect();
        let roles: BTreeSet<&str> = permissions.iter().map(|f| f[0].as_str()).collect();

        for object in Object::ALL {
            assert!(
                objects.contains(object.as_str()),
                "{object} is never granted"
            );
        }
        for action in Action::ALL {
            assert!(
                actions.contains(action.as_str()),
                "{action} is never granted"
            );
        }
        for role in Role::ALL {
            assert!(roles.contains(role.as_str()), "{role} has no permission");
        }
        // Only p and g lines: anything else is rejected at load time anyway.
        assert!(rules.iter().all(|(ptype, _)| ptype == "p" || ptype == "g"));
    }

    async fn load_error(csv: &'static str) -> String {
        match Authorizer::from_policy(MODEL, csv).await {
            Err(AuthzError::InvalidPolicy(reason)) => reason,
            other => panic!("expected InvalidPolicy, got {other:?}"),
        }
    }

    #[tokio::test]
    async fn unknown_object_is_rejected() {
        let reason = load_error("p, group_member, group:*, topic, read").await;
        assert!(reason.contains("unknown object `topic`"), "{reason}");
    }

    #[tokio::test]
    async fn unknown_action_is_rejected() {
        let reason = load_error("p, group_member, group:*, topics, write").await;
        assert!(reason.contains("unknown action `write`"), "{reason}");
    }

    #[tokio::test]
    async fn unknown_role_is_rejected() {
        let reason = load_error("p, nurse, group:*, topics, read").await;
        assert!(reason.contains("unknown role `nurse`"), "{reason}");
    }

    #[tokio::test]
    async fn role_granted_in_another_kind_of_domain_is_rejected() {
        let reason = load_error("p, group_owner, association:*, settings, update").await;
        assert!(
            reason.contains("may only be granted in `group:*`"),
            "{reason}"
        );
    }

    #[tokio::test]
    async fn inheritance_across_kinds_of_domain_is_rejected() {
        let reason = load_error("g, association_admin, group_owner").await;
        assert!(reason.contains("different kinds of domain"), "{reason}");
    }

    #[tokio::test]
    async fn misspelt_rule_type_is_rejected_rather_than_skipped() {
        let reason = load_error(
            "p, group_member, group:*, topics, read\nP, group_member, group:*, topics, create",
        )
        .await;
        assert!(
            reason.contains("2 rule lines but casbin loaded 1"),
            "{reason}"
        );
    }

    #[tokio::test]
    async fn trailing_comment_is_rejected() {
        let reason = load_error("p, group_member, group:*, topics, read # members read").await;
        assert!(reason.contains("unknown action"), "{reason}");
    }

    #[tokio::test]
    async fn wrong_number_of_fields_is_rejected() {
        let reason = load_error("p, group_member, group:*, topics").await;
        assert!(reason.contains("expected role, domain pattern"), "{reason}");
    }
}
