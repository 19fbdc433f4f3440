//! The casbin subjects: role names, each bound to one kind of domain.

use crate::names::policy_names;

policy_names! {
    /// A role template of `policies/roles.csv`. Services never name roles; they come from a
    /// [`Principal`](crate::Principal)'s memberships.
    pub(crate) enum Role {
        PlatformOperator => "platform_operator",
        AssociationMember => "association_member",
        AssociationAdmin => "association_admin",
        GroupMember => "group_member",
        GroupOwner => "group_owner",
        ConversationParticipant => "conversation_participant",
    }
}

impl Role {
    /// The only domain pattern this role may be granted in. Checked at load time so that a
    /// slip in the CSV cannot give, say, a group role rights inside an association.
    pub(crate) const fn domain_pattern(self) -> &'static str {
        match self {
            Role::PlatformOperator => "platform",
            Role::AssociationMember | Role::AssociationAdmin => "association:*",
            Role::GroupMember | Role::GroupOwner | Role::ConversationParticipant => "group:*",
        }
    }
}
