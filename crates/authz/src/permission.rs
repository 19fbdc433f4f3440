//! What is being asked for: an action on an object inside a domain.

use std::fmt;

use uuid::Uuid;

use crate::names::policy_names;

policy_names! {
    /// What an action applies to. The meaning is scoped by the [`Domain`]: `audit` in the
    /// platform domain is the platform audit log, in an association domain that association's.
    pub enum Object {
        /// The tenant registry (platform domain).
        Associations => "associations",
        /// The association itself: its name and public profile.
        Association => "association",
        /// The member directory: names, professions and facilities of an association's members.
        Directory => "directory",
        /// The patient groups hosted by an association (to create one).
        Groups => "groups",
        /// The memberships of the domain: accounts of an association, or members of a group.
        Members => "members",
        /// The facilities (clinics, stations, pharmacies…) registered in an association.
        Facilities => "facilities",
        /// The audit log of the domain.
        Audit => "audit",
        /// An association's policy settings (2FA, retention, read-receipt mode).
        Settings => "settings",
        /// The patient group itself: its name, patient header and settings.
        Group => "group",
        /// The topics of a patient group.
        Topics => "topics",
        /// The comments under a group's topics.
        Comments => "comments",
        /// An association's patient register as a whole (to register a patient, or for
        /// administrators to see every entry).
        Patients => "patients",
        /// One patient group's register entry.
        Patient => "patient",
        /// A group's shared files (and, later, the attachments of its topics).
        Files => "files",
        /// A group's calendar: its events.
        Calendar => "calendar",
        /// A collaborating-doctor group's on-call duty rotation.
        Duty => "duty",
        /// Direct messages: conversations started by the association's members.
        Messages => "messages",
    }
}

policy_names! {
    /// What is done to an [`Object`].
    pub enum Action {
        Read => "read",
        Create => "create",
        Update => "update",
        /// Appoint an association's first administrator (platform domain).
        AppointAdmin => "appoint_admin",
        Invite => "invite",
        ChangeRole => "change_role",
        /// End an association membership (the account and its history stay).
        Deactivate => "deactivate",
        /// Take a member out of a patient group.
        Remove => "remove",
        ResetSecondFactor => "reset_second_factor",
        /// Revoke every session of a member.
        SignOut => "sign_out",
        Export => "export",
        /// Hide or close topics and comments of others.
        Moderate => "moderate",
    }
}

/// Where a request acts. Only roles held in exactly this domain count; there is no fallback
/// to another domain, so a member of one association has no rights in its neighbour.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Domain {
    /// The shared deployment: provisioning and the platform audit log.
    Platform,
    /// One medical association (tenant), by its id in `core.associations`.
    Association(Uuid),
    /// One patient group, wherever it is hosted.
    Group(Uuid),
}

impl fmt::Display for Domain {
    /// The casbin domain string (`platform`, `association:<uuid>`, `group:<uuid>`).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Domain::Platform => f.write_str("platform"),
            Domain::Association(id) => write!(f, "association:{id}"),
            Domain::Group(id) => write!(f, "group:{id}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn domains_render_as_casbin_domain_strings() {
        let id = Uuid::from_u128(0x0123_4567_89ab_cdef_0123_4567_89ab_cdef);
        assert_eq!(Domain::Platform.to_string(), "platform");
        assert_eq!(
            Domain::Association(id).to_string(),
            "association:01234567-89ab-cdef-0123-456789abcdef"
        );
        assert_eq!(
            Domain::Group(id).to_string(),
            "group:01234567-89ab-cdef-0123-456789abcdef"
        );
    }

    #[test]
    fn names_round_trip() {
        for object in Object::ALL {
            assert_eq!(Object::from_name(object.as_str()), Some(*object));
        }
        for action in Action::ALL {
            assert_eq!(Action::from_name(action.as_str()), Some(*action));
        }
        assert_eq!(Object::from_name("*"), None);
        assert_eq!(Action::from_name("Read"), None);
    }
}
