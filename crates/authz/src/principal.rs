//! Who is asking: one person's memberships, loaded from SQL once per request.

use uuid::Uuid;

use crate::role::Role;

/// A person's role in one association (`core.memberships.role`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AssociationRole {
    Member,
    Admin,
}

impl AssociationRole {
    /// The code stored in the database.
    pub const fn code(self) -> &'static str {
        match self {
            AssociationRole::Member => "member",
            AssociationRole::Admin => "admin",
        }
    }

    /// Parses a database code; `None` for anything else, which the loader should treat as no
    /// membership rather than guess.
    pub fn from_code(code: &str) -> Option<Self> {
        match code {
            "member" => Some(AssociationRole::Member),
            "admin" => Some(AssociationRole::Admin),
            _ => None,
        }
    }

    pub(crate) const fn role(self) -> Role {
        match self {
            AssociationRole::Member => Role::AssociationMember,
            AssociationRole::Admin => Role::AssociationAdmin,
        }
    }
}

/// A person's role in one patient group.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum GroupRole {
    Member,
    Owner,
}

impl GroupRole {
    /// The code stored in the database.
    pub const fn code(self) -> &'static str {
        match self {
            GroupRole::Member => "member",
            GroupRole::Owner => "owner",
        }
    }

    /// Parses a database code; `None` for anything else.
    pub fn from_code(code: &str) -> Option<Self> {
        match code {
            "member" => Some(GroupRole::Member),
            "owner" => Some(GroupRole::Owner),
            _ => None,
        }
    }

    pub(crate) const fn role(self) -> Role {
        match self {
            GroupRole::Member => Role::GroupMember,
            GroupRole::Owner => Role::GroupOwner,
        }
    }
}

/// The broad kind of professional, for topic visibility scopes (e.g. doctors only).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ProfessionClass {
    /// Nurses, care managers, pharmacists, therapists and everyone else who is not a doctor.
    CoMedical,
    /// A physician or dentist of a collaborating clinic (連携医).
    CollaboratingDoctor,
    /// A physician or dentist of a hospital.
    HospitalDoctor,
}

/// Classifies `core.users.profession` and `core.users.doctor_kind`.
///
/// A doctor whose kind is missing or unknown counts as co-medical: the narrowest class, so a
/// data error can never widen what someone sees.
pub fn profession_class(profession: &str, doctor_kind: Option<&str>) -> ProfessionClass {
    match (profession, doctor_kind) {
        ("physician" | "dentist", Some("clinic")) => ProfessionClass::CollaboratingDoctor,
        ("physician" | "dentist", Some("hospital")) => ProfessionClass::HospitalDoctor,
        _ => ProfessionClass::CoMedical,
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
    fn clinic_doctors_are_collaborating_doctors() {
        assert_eq!(
            profession_class("physician", Some("clinic")),
            ProfessionClass::CollaboratingDoctor
        );
        assert_eq!(
            profession_class("dentist", Some("clinic")),
            ProfessionClass::CollaboratingDoctor
        );
    }

    #[test]
    fn hospital_doctors_are_hospital_doctors() {
        assert_eq!(
            profession_class("physician", Some("hospital")),
            ProfessionClass::HospitalDoctor
        );
        assert_eq!(
            profession_class("dentist", Some("hospital")),
            ProfessionClass::HospitalDoctor
        );
    }

    #[test]
    fn every_other_profession_is_co_medical() {
        for profession in [
            "pharmacist",
            "nurse",
            "assistant_nurse",
            "public_health_nurse",
            "physical_therapist",
            "occupational_therapist",
            "speech_therapist",
            "dietitian",
            "care_manager",
            "social_worker",
            "care_worker",
            "clerk",
            "other",
        ] {
            assert_eq!(
                profession_class(profession, None),
                ProfessionClass::CoMedical,
                "{profession}"
            );
        }
    }

    #[test]
    fn doctor_kind_without_a_doctor_or_doctor_without_kind_is_co_medical() {
        assert_eq!(
            profession_class("nurse", Some("hospital")),
            ProfessionClass::CoMedical
        );
        assert_eq!(
            profession_class("physician", None),
            ProfessionClass::CoMedical
        );
        assert_eq!(
            profession_class("physician", Some("HOSPITAL")),
            ProfessionClass::CoMedical
        );
        assert_eq!(profession_class("", None), ProfessionClass::CoMedical);
    }

    #[test]
    fn role_codes_round_trip_and_unknown_codes_are_rejected() {
        for role in [AssociationRole::Member, AssociationRole::Admin] {
            assert_eq!(AssociationRole::from_code(role.code()), Some(role));
        }
        for role in [GroupRole::Member, GroupRole::Owner] {
            assert_eq!(GroupRole::from_code(role.code()), Some(role));
        }
        assert_eq!(AssociationRole::from_code("owner"), None);
        assert_eq!(GroupRole::from_code("admin"), None);
    }
}
