//! Musubi's vocabulary: every closed set of values the database stores as TEXT with a CHECK
//! constraint (or, for [`Scope`], as a bit set), defined once for db, domain, authz, GraphQL
//! and pages. A value outside a set fails to decode instead of being guessed at. Typed ids
//! ([`GroupId`], [`TopicId`], …) are defined here too; rows still carry plain UUIDs.

mod ids;
pub mod japanese;
mod scope;
#[macro_use]
mod text_enum;

pub use ids::{AssociationId, CommentId, GroupId, PatientId, PersonId, TopicId};
pub use scope::Scope;
pub use text_enum::UnknownCode;

text_enum! {
    /// `core.groups.kind`, `groups.kind`.
    pub enum GroupKind {
        /// A collaborating-doctor group, a multi-professional exchange, a facility's team.
        General => "general",
        /// The people caring for one patient.
        Patient => "patient",
        /// A conversation of direct messages: its people, one topic, no owner.
        Direct => "direct",
    }
}

text_enum! {
    /// A person's role in one group (`core.group_members.role`).
    pub enum GroupRole {
        Member => "member",
        /// Administers the group: invites, approves, removes, changes roles and settings.
        Owner => "owner",
        /// Takes part in a conversation of direct messages: reads and replies.
        Participant => "participant",
    }
}

text_enum! {
    /// A person's standing in one group (`core.group_members.status`).
    pub enum GroupMemberStatus {
        Active => "active",
        /// Invited by an owner; joins on accepting.
        Invited => "invited",
        /// Asked to join; waits for an owner's approval.
        Requested => "requested",
    }
}

text_enum! {
    /// Who may join a general group besides those invited (`groups.join_policy`).
    pub enum JoinPolicy {
        /// By an owner's invitation only (always so for patient groups).
        Invite => "invite",
        /// People of the host association may also ask to join.
        Request => "request",
    }
}

text_enum! {
    /// How readers of a comment are shown (`settings.receipt_mode`, `groups.receipt_mode`).
    pub enum ReceiptMode {
        /// 足跡: who read each comment, and when (the default).
        Footprints => "footprints",
        /// Only a 「確認しました」 button and the list of who confirmed.
        Acknowledgement => "ack",
        Off => "off",
    }
}

text_enum! {
    /// A person's role in one association (`core.memberships.role`, `core.invitations.role`).
    pub enum AssociationRole {
        Member => "member",
        /// Runs the association's console: members, facilities, settings, audit.
        Admin => "admin",
    }
}

text_enum! {
    /// Whether an account (`core.users.status`) or an association membership
    /// (`core.memberships.status`) is in use.
    pub enum AccountStatus {
        Active => "active",
        Deactivated => "deactivated",
    }
}

text_enum! {
    /// `core.users.profession`.
    pub enum Profession {
        Physician => "physician",
        Dentist => "dentist",
        Pharmacist => "pharmacist",
        Nurse => "nurse",
        AssistantNurse => "assistant_nurse",
        PublicHealthNurse => "public_health_nurse",
        PhysicalTherapist => "physical_therapist",
        OccupationalTherapist => "occupational_therapist",
        SpeechTherapist => "speech_therapist",
        Dietitian => "dietitian",
        CareManager => "care_manager",
        SocialWorker => "social_worker",
        CareWorker => "care_worker",
        Clerk => "clerk",
        Other => "other",
    }
}

impl Profession {
    /// What people call the profession in Japanese, for finding people by it in the directory.
    pub const fn search_words(self) -> &'static [&'static str] {
        match self {
            Profession::Physician => &["医師", "ドクター", "医者", "主治医"],
            Profession::Dentist => &["歯科医師", "歯医者"],
            Profession::Pharmacist => &["薬剤師"],
            Profession::Nurse => &["看護師", "ナース", "訪問看護"],
            Profession::AssistantNurse => &["准看護師"],
            Profession::PublicHealthNurse => &["保健師"],
            Profession::PhysicalTherapist => &["理学療法士", "PT", "リハビリ"],
            Profession::OccupationalTherapist => &["作業療法士", "OT", "リハビリ"],
            Profession::SpeechTherapist => &["言語聴覚士", "ST", "リハビリ"],
            Profession::Dietitian => &["管理栄養士", "栄養士"],
            Profession::CareManager => &["介護支援専門員", "ケアマネジャー", "ケアマネージャー"],
            Profession::SocialWorker => &["社会福祉士", "ソーシャルワーカー", "MSW"],
            Profession::CareWorker => &["介護福祉士", "ヘルパー", "介護職"],
            Profession::Clerk => &["事務"],
            Profession::Other => &[],
        }
    }

    /// The professions one of whose [`Self::search_words`] contains `folded` (a query already
    /// folded by [`japanese::fold`]); none for an empty query or one of a single letter (「師」
    /// alone would match nearly everyone).
    pub fn matching(folded: &str) -> Vec<Profession> {
        if folded.chars().count() < 2 {
            return Vec::new();
        }
        Profession::ALL
            .iter()
            .copied()
            .filter(|p| {
                p.search_words()
                    .iter()
                    .any(|w| japanese::fold(w).contains(folded))
            })
            .collect()
    }

    /// Physicians and dentists, who also state a [`DoctorKind`].
    pub const fn is_doctor(self) -> bool {
        matches!(self, Profession::Physician | Profession::Dentist)
    }

    /// The class a person belongs to for topic scopes.
    ///
    /// A doctor whose kind is missing counts as co-medical: the narrowest class, so a data
    /// error can never widen what someone sees.
    pub const fn class(self, doctor_kind: Option<DoctorKind>) -> ProfessionClass {
        match (self.is_doctor(), doctor_kind) {
            (true, Some(DoctorKind::Clinic)) => ProfessionClass::CollaboratingDoctor,
            (true, Some(DoctorKind::Hospital)) => ProfessionClass::HospitalDoctor,
            _ => ProfessionClass::CoMedical,
        }
    }
}

text_enum! {
    /// For physicians and dentists (`core.users.doctor_kind`).
    pub enum DoctorKind {
        /// A collaborating clinic doctor (連携医).
        Clinic => "clinic",
        Hospital => "hospital",
    }
}

text_enum! {
    /// `core.facilities.kind`.
    pub enum FacilityKind {
        Clinic => "clinic",
        Hospital => "hospital",
        VisitingNurseStation => "visiting_nurse_station",
        CareManagementOffice => "care_management_office",
        Pharmacy => "pharmacy",
        CareFacility => "care_facility",
        Other => "other",
    }
}

text_enum! {
    /// `core.sessions.kind`: a browser's cookie or an API client's bearer token.
    pub enum SessionKind {
        Web => "web",
        Api => "api",
    }
}

text_enum! {
    /// A passkey ceremony waiting for its second step (`core.webauthn_ceremonies.kind`).
    pub enum CeremonyKind {
        Registration => "registration",
        SignIn => "sign_in",
    }
}

/// The broad kind of professional, for topic visibility scopes (e.g. doctors only).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ProfessionClass {
    /// Nurses, care managers, pharmacists, therapists and everyone else who is not a doctor.
    CoMedical,
    /// A physician or dentist of a collaborating clinic (連携医).
    CollaboratingDoctor,
    /// A physician or dentist of a hospital.
    HospitalDoctor,
}

impl ProfessionClass {
    pub const ALL: [ProfessionClass; 3] = [
        ProfessionClass::CoMedical,
        ProfessionClass::CollaboratingDoctor,
        ProfessionClass::HospitalDoctor,
    ];
}

text_enum! {
    /// 性別 (`patients.sex`).
    pub enum Sex {
        Male => "male",
        Female => "female",
        Other => "other",
    }
}

text_enum! {
    /// 要介護度: the long-term care insurance level (`patients.care_level`).
    pub enum CareLevel {
        /// なし (not applied for, or found independent).
        None => "none",
        /// 申請中.
        Applying => "applying",
        Support1 => "support1",
        Support2 => "support2",
        Care1 => "care1",
        Care2 => "care2",
        Care3 => "care3",
        Care4 => "care4",
        Care5 => "care5",
    }
}

text_enum! {
    /// Where the patient is (`patients.status`).
    pub enum PatientStatus {
        /// 在宅: cared for at home.
        Home => "home",
        /// 入院中.
        Hospital => "hospital",
        /// 施設入所.
        Facility => "facility",
        /// 終了: care has ended (see [`EndReason`]).
        Ended => "ended",
    }
}

text_enum! {
    /// Why care ended (`patients.end_reason`).
    pub enum EndReason {
        /// 死亡.
        Death => "death",
        /// 転居.
        Moved => "moved",
        Other => "other",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn professions_are_found_by_what_people_call_them() {
        let find = |q: &str| Profession::matching(&japanese::fold(q));
        assert_eq!(find("ケアマネ"), vec![Profession::CareManager]);
        assert_eq!(find("けあまね"), vec![Profession::CareManager]);
        assert_eq!(find("ﾍﾙﾊﾟｰ"), vec![Profession::CareWorker]);
        assert_eq!(
            find("看護"),
            vec![Profession::Nurse, Profession::AssistantNurse]
        );
        assert_eq!(find("ｍｓｗ"), vec![Profession::SocialWorker]);
        assert!(find("師").is_empty(), "one letter matches nothing");
        assert!(find("").is_empty());
        assert!(find("山田").is_empty());
    }

    #[test]
    fn codes_round_trip_and_unknown_codes_are_refused() {
        for p in Profession::ALL {
            assert_eq!(Profession::from_code(p.code()), Some(*p));
            assert_eq!(p.code().parse::<Profession>().ok(), Some(*p));
        }
        assert_eq!(
            ReceiptMode::from_code("ack"),
            Some(ReceiptMode::Acknowledgement)
        );
        assert_eq!(GroupRole::from_code("admin"), None);
        assert_eq!(AssociationRole::from_code("owner"), None);
        assert_eq!(GroupKind::from_code("Patient"), None);
        assert!("HOSPITAL".parse::<DoctorKind>().is_err());
    }

    #[test]
    fn serde_uses_the_database_codes() {
        let json = serde_json::to_string(&ReceiptMode::Acknowledgement).expect("serialise");
        assert_eq!(json, "\"ack\"");
        let role: AssociationRole = serde_json::from_str("\"admin\"").expect("deserialise");
        assert_eq!(role, AssociationRole::Admin);
        assert!(serde_json::from_str::<AssociationRole>("\"owner\"").is_err());
    }

    #[test]
    fn only_doctors_of_a_known_kind_are_doctor_classes() {
        for p in [Profession::Physician, Profession::Dentist] {
            assert_eq!(
                p.class(Some(DoctorKind::Clinic)),
                ProfessionClass::CollaboratingDoctor
            );
            assert_eq!(
                p.class(Some(DoctorKind::Hospital)),
                ProfessionClass::HospitalDoctor
            );
            assert_eq!(p.class(None), ProfessionClass::CoMedical);
        }
        for p in Profession::ALL.iter().filter(|p| !p.is_doctor()) {
            assert_eq!(
                p.class(Some(DoctorKind::Hospital)),
                ProfessionClass::CoMedical
            );
            assert_eq!(p.class(None), ProfessionClass::CoMedical);
        }
    }
}
