//! Who is asking: one person's memberships, loaded from SQL once per request.

use uuid::Uuid;

use crate::role::Role;

pub use musubi_types::{AssociationRole, GroupRole, ProfessionClass};

/// The casbin role template a membership role stands for.
pub(crate) trait AsRole {
    fn role(self) -> Role;
}

impl AsRole for AssociationRole {
    fn role(self) -> Role {
        match self {
            AssociationRole::Member => Role::AssociationMember,
            AssociationRole::Admin => Role::AssociationAdmin,
        }
    }
}

impl AsRole for GroupRole {
    fn role(self) -> Role {
        match self {
            GroupRole::Member => Role::GroupMember,
            GroupRole::Owner => Role::GroupOwner,
            GroupRole::Participant => Role::ConversationParticipant,
        }
    }
}

/// The caller of one request. Build it from *active* memberships only: whatever is listed
/// here is trusted, and whatever is missing is denied.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    pub user_id: Uuid,
    /// Operates the shared deployment. Grants nothing inside associations or groups.
    pub platform_operator: bool,
    pub profession_class: ProfessionClass,
    /// Association id and the role held there.
    pub associations: Vec<(Uuid, AssociationRole)>,
    /// Patient group id and the role held there.
    pub groups: Vec<(Uuid, GroupRole)>,
}

impl Principal {
    /// A person with no memberships yet.
    pub fn new(user_id: Uuid, profession_class: ProfessionClass) -> Self {
        Principal {
            user_id,
            platform_operator: false,
            profession_class,
            associations: Vec::new(),
            groups: Vec::new(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_membership_role_has_its_own_template() {
        assert_eq!(AssociationRole::Member.role(), Role::AssociationMember);
        assert_eq!(AssociationRole::Admin.role(), Role::AssociationAdmin);
        assert_eq!(GroupRole::Member.role(), Role::GroupMember);
        assert_eq!(GroupRole::Owner.role(), Role::GroupOwner);
        assert_eq!(GroupRole::Participant.role(), Role::ConversationParticipant);
    }
}
