//! The policy as users meet it: who may do what where, as a table of cases.

use std::sync::Arc;

use musubi_authz::{
    Action, AssociationRole, Authorizer, Denied, Domain, GroupRole, Object, Principal,
    ProfessionClass,
};
use uuid::Uuid;

const ASSOC_A: Uuid = Uuid::from_u128(0xa);
const ASSOC_B: Uuid = Uuid::from_u128(0xb);
const GROUP_G: Uuid = Uuid::from_u128(0x61);
const GROUP_H: Uuid = Uuid::from_u128(0x62);

#[derive(Debug, Clone, Copy)]
enum Who {
    AdminOfA,
    MemberOfA,
    /// A hospital doctor in two associations: member of A, administrator of B.
    HospitalDoctorMemberOfAAdminOfB,
    Operator,
    /// An operator who is also an ordinary member of A.
    OperatorMemberOfA,
    OwnerOfG,
    MemberOfG,
    /// Member of group H only; G is someone else's group.
    MemberOfH,
    Nobody,
}

fn principal(who: Who) -> Principal {
    use AssociationRole as A;
    use GroupRole as G;
    let (operator, class, associations, groups): (bool, _, Vec<_>, Vec<_>) = match who {
        Who::AdminOfA => (
            false,
            ProfessionClass::CoMedical,
            vec![(ASSOC_A, A::Admin)],
            vec![],
        ),
        Who::MemberOfA => (
            false,
            ProfessionClass::CoMedical,
            vec![(ASSOC_A, A::Member)],
            vec![],
        ),
        Who::HospitalDoctorMemberOfAAdminOfB => (
            false,
            ProfessionClass::HospitalDoctor,
            vec![(ASSOC_A, A::Member), (ASSOC_B, A::Admin)],
            vec![],
        ),
        Who::Operator => (true, ProfessionClass::CoMedical, vec![], vec![]),
        Who::OperatorMemberOfA => (
            true,
            ProfessionClass::CoMedical,
            vec![(ASSOC_A, A::Member)],
            vec![],
        ),
        // Group members come from any association; these come from A and B.
        Who::OwnerOfG => (
            false,
            ProfessionClass::CollaboratingDoctor,
            vec![(ASSOC_A, A::Member)],
            vec![(GROUP_G, G::Owner)],
        ),
        Who::MemberOfG => (
            false,
            ProfessionClass::CoMedical,
            vec![(ASSOC_B, A::Member)],
            vec![(GROUP_G, G::Member)],
        ),
        Who::MemberOfH => (
            false,
            ProfessionClass::CoMedical,
            vec![(ASSOC_A, A::Admin)],
            vec![(GROUP_H, G::Member)],
        ),
        Who::Nobody => (false, ProfessionClass::CoMedical, vec![], vec![]),
    };
    Principal {
        user_id: Uuid::from_u128(0x5e5),
        platform_operator: operator,
        profession_class: class,
        associations,
        groups,
    }
}

const PLATFORM: Domain = Domain::Platform;
const IN_A: Domain = Domain::Association(ASSOC_A);
const IN_B: Domain = Domain::Association(ASSOC_B);
const IN_G: Domain = Domain::Group(GROUP_G);
const IN_H: Domain = Domain::Group(GROUP_H);

const ALLOW: bool = true;
const DENY: bool = false;

#[rustfmt::skip]
const CASES: &[(Who, Domain, Object, Action, bool)] = {
    use Action::*;
    use Object::*;
    use Who::*;
    &[
        // An administrator administers their own association, and only that one.
        (AdminOfA, IN_A, Members, Invite, ALLOW),
        (AdminOfA, IN_A, Members, Deactivate, ALLOW),
        (AdminOfA, IN_A, Members, ResetSecondFactor, ALLOW),
        (AdminOfA, IN_A, Members, SignOut, ALLOW),
        (AdminOfA, IN_A, Audit, Export, ALLOW),
        (AdminOfA, IN_A, Settings, Update, ALLOW),
        (AdminOfA, IN_A, Facilities, Create, ALLOW),
        (AdminOfA, IN_B, Members, Invite, DENY),
        (AdminOfA, IN_B, Audit, Read, DENY),
        (AdminOfA, IN_B, Settings, Update, DENY),
        (AdminOfA, IN_B, Directory, Read, DENY),
        (AdminOfA, IN_B, Association, Read, DENY),
        // Inheritance: an administrator can do what members do.
        (AdminOfA, IN_A, Association, Read, ALLOW),
        (AdminOfA, IN_A, Directory, Read, ALLOW),
        (AdminOfA, IN_A, Groups, Create, ALLOW),
        // Administrators of an association have no rights on the platform or in groups.
        (AdminOfA, PLATFORM, Associations, Create, DENY),
        (AdminOfA, IN_G, Group, Read, DENY),

        // A member uses the association but does not administer it.
        (MemberOfA, IN_A, Association, Read, ALLOW),
        (MemberOfA, IN_A, Directory, Read, ALLOW),
        (MemberOfA, IN_A, Groups, Create, ALLOW),
        (MemberOfA, IN_A, Members, Read, DENY),
        (MemberOfA, IN_A, Members, Invite, DENY),
        (MemberOfA, IN_A, Members, ChangeRole, DENY),
        (MemberOfA, IN_A, Audit, Read, DENY),
        (MemberOfA, IN_A, Settings, Read, DENY),
        (MemberOfA, IN_A, Facilities, Update, DENY),
        (MemberOfA, IN_B, Directory, Read, DENY),
        (MemberOfA, IN_B, Groups, Create, DENY),

        // One account across two associations: each role counts only where it is held.
        (HospitalDoctorMemberOfAAdminOfB, IN_A, Directory, Read, ALLOW),
        (HospitalDoctorMemberOfAAdminOfB, IN_A, Groups, Create, ALLOW),
        (HospitalDoctorMemberOfAAdminOfB, IN_B, Directory, Read, ALLOW),
        (HospitalDoctorMemberOfAAdminOfB, IN_B, Groups, Create, ALLOW),
        (HospitalDoctorMemberOfAAdminOfB, IN_B, Members, Invite, ALLOW),
        (HospitalDoctorMemberOfAAdminOfB, IN_B, Audit, Read, ALLOW),
        (HospitalDoctorMemberOfAAdminOfB, IN_A, Members, Invite, DENY),
        (HospitalDoctorMemberOfAAdminOfB, IN_A, Audit, Read, DENY),
        (HospitalDoctorMemberOfAAdminOfB, IN_A, Settings, Update, DENY),

        // Operators run the platform, and see nothing inside associations by right.
        (Operator, PLATFORM, Associations, Create, ALLOW),
        (Operator, PLATFORM, Associations, Read, ALLOW),
        (Operator, PLATFORM, Associations, AppointAdmin, ALLOW),
        (Operator, PLATFORM, Audit, Read, ALLOW),
        (Operator, PLATFORM, Audit, Export, DENY),
        (Operator, IN_A, Association, Read, DENY),
        (Operator, IN_A, Members, Read, DENY),
        (Operator, IN_A, Audit, Read, DENY),
        (Operator, IN_A, Settings, Update, DENY),
        (Operator, IN_G, Topics, Read, DENY),
        (OperatorMemberOfA, IN_A, Directory, Read, ALLOW),
        (OperatorMemberOfA, IN_A, Audit, Read, DENY),
        (OperatorMemberOfA, PLATFORM, Associations, Create, ALLOW),
        // Association roles never open the platform domain.
        (MemberOfA, PLATFORM, Audit, Read, DENY),
        (HospitalDoctorMemberOfAAdminOfB, PLATFORM, Associations, AppointAdmin, DENY),

        // Patient groups: owners run them, members take part, others see nothing.
        (OwnerOfG, IN_G, Group, Update, ALLOW),
        (OwnerOfG, IN_G, Members, Invite, ALLOW),
        (OwnerOfG, IN_G, Members, Remove, ALLOW),
        (OwnerOfG, IN_G, Members, ChangeRole, ALLOW),
        (OwnerOfG, IN_G, Topics, Moderate, ALLOW),
        (OwnerOfG, IN_G, Group, Read, ALLOW),
        (OwnerOfG, IN_G, Topics, Read, ALLOW),
        (OwnerOfG, IN_G, Comments, Create, ALLOW),
        (OwnerOfG, IN_H, Group, Read, DENY),
        (OwnerOfG, IN_G, Audit, Read, DENY),
        (MemberOfG, IN_G, Group, Read, ALLOW),
        (MemberOfG, IN_G, Members, Read, ALLOW),
        (MemberOfG, IN_G, Topics, Read, ALLOW),
        (MemberOfG, IN_G, Topics, Create, ALLOW),
        (MemberOfG, IN_G, Comments, Create, ALLOW),
        (MemberOfG, IN_G, Group, Update, DENY),
        (MemberOfG, IN_G, Members, Invite, DENY),
        (MemberOfG, IN_G, Members, Remove, DENY),
        (MemberOfG, IN_G, Topics, Moderate, DENY),
        // A group role grants nothing in the association the member comes from.
        (MemberOfG, IN_B, Members, Read, DENY),
        (MemberOfH, IN_G, Group, Read, DENY),
        (MemberOfH, IN_G, Topics, Read, DENY),
        (MemberOfH, IN_G, Comments, Create, DENY),
        // Being an association administrator does not open patient groups.
        (MemberOfH, IN_A, Members, Invite, ALLOW),
        (MemberOfH, IN_G, Topics, Moderate, DENY),

        // No memberships at all: nothing anywhere.
        (Nobody, PLATFORM, Associations, Read, DENY),
        (Nobody, IN_A, Association, Read, DENY),
        (Nobody, IN_A, Directory, Read, DENY),
        (Nobody, IN_G, Group, Read, DENY),
        (Nobody, IN_G, Topics, Read, DENY),
    ]
};

#[tokio::test]
async fn policy_cases_hold() {
    let authz = Authorizer::new().await.unwrap();
    let failures: Vec<String> = CASES
        .iter()
        .filter(|&&(who, domain, object, action, expected)| {
            authz.allows(&principal(who), domain, object, action) != expected
        })
        .map(|(who, domain, object, action, expected)| {
            let want = if *expected { "allowed" } else { "denied" };
            format!("{who:?}: {action} {object} in {domain} should be {want}")
        })
        .collect();
    assert!(
        failures.is_empty(),
        "{} of {} cases failed:\n{}",
        failures.len(),
        CASES.len(),
        failures.join("\n")
    );
}

#[tokio::test]
async fn nobody_is_denied_everything_everywhere() {
    let authz = Authorizer::new().await.unwrap();
    let nobody = principal(Who::Nobody);
    for domain in [PLATFORM, IN_A, IN_B, IN_G, IN_H] {
        for &object in Object::ALL {
            for &action in Action::ALL {
                assert!(
                    !authz.allows(&nobody, domain, object, action),
                    "{action} {object} in {domain}"
                );
            }
        }
    }
}

#[tokio::test]
async fn require_reports_what_was_denied() {
    let authz = Authorizer::new().await.unwrap();
    let member = principal(Who::MemberOfA);
    assert_eq!(
        authz.require(&member, IN_A, Object::Directory, Action::Read),
        Ok(())
    );
    assert_eq!(
        authz.require(&member, IN_B, Object::Directory, Action::Read),
        Err(Denied {
            domain: IN_B,
            object: Object::Directory,
            action: Action::Read
        })
    );
}

/// Everything a role may do in its own domain; the snapshot catches accidental grants.
fn permissions(authz: &Authorizer, who: &Principal, domain: Domain) -> Vec<String> {
    let mut granted = Vec::new();
    for &object in Object::ALL {
        for &action in Action::ALL {
            if authz.allows(who, domain, object, action) {
                granted.push(format!("{object}.{action}"));
            }
        }
    }
    granted
}

#[tokio::test]
async fn each_role_has_exactly_its_documented_permissions() {
    let authz = Authorizer::new().await.unwrap();
    let with_role = |associations, groups, operator| Principal {
        platform_operator: operator,
        associations,
        groups,
        ..principal(Who::Nobody)
    };

    let operator = with_role(vec![], vec![], true);
    assert_eq!(
        permissions(&authz, &operator, PLATFORM),
        [
            "associations.read",
            "associations.create",
            "associations.appoint_admin",
            "audit.read"
        ]
    );

    let member = with_role(vec![(ASSOC_A, AssociationRole::Member)], vec![], false);
    assert_eq!(
        permissions(&authz, &member, IN_A),
        [
            "association.read",
            "directory.read",
            "groups.create",
            "patients.create",
            "messages.create"
        ]
    );

    let admin = with_role(vec![(ASSOC_A, AssociationRole::Admin)], vec![], false);
    assert_eq!(
        permissions(&authz, &admin, IN_A),
        [
            "association.read",
            "directory.read",
            "groups.create",
            "members.read",
            "members.invite",
            "members.change_role",
            "members.deactivate",
            "members.reset_second_factor",
            "members.sign_out",
            "facilities.create",
            "facilities.update",
            "audit.read",
            "audit.export",
            "settings.read",
            "settings.update",
            "patients.read",
            "patients.create",
            "messages.create",
        ]
    );

    let group_member = with_role(vec![], vec![(GROUP_G, GroupRole::Member)], false);
    assert_eq!(
        permissions(&authz, &group_member, IN_G),
        [
            "members.read",
            "group.read",
            "topics.read",
            "topics.create",
            "comments.read",
            "comments.create",
            "patient.read",
            "patient.update",
            "files.read",
            "files.create",
            "calendar.read",
            "calendar.create",
            "duty.read",
        ]
    );

    let group_owner = with_role(vec![], vec![(GROUP_G, GroupRole::Owner)], false);
    assert_eq!(
        permissions(&authz, &group_owner, IN_G),
        [
            "members.read",
            "members.invite",
            "members.change_role",
            "members.remove",
            "group.read",
            "group.update",
            "topics.read",
            "topics.create",
            "topics.moderate",
            "comments.read",
            "comments.create",
            "comments.moderate",
            "patient.read",
            "patient.update",
            "files.read",
            "files.create",
            "files.moderate",
            "calendar.read",
            "calendar.create",
            "calendar.moderate",
            "duty.read",
            "duty.update",
        ]
    );

    // A conversation of direct messages: read, reply, attach and add people; no topics to
    // open, no moderation, no calendar, duty or register.
    let participant = with_role(vec![], vec![(GROUP_G, GroupRole::Participant)], false);
    assert_eq!(
        permissions(&authz, &participant, IN_G),
        [
            "members.read",
            "members.invite",
            "group.read",
            "topics.read",
            "comments.read",
            "comments.create",
            "files.read",
            "files.create",
        ]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn many_tasks_can_ask_at_once() {
    let authz = Arc::new(Authorizer::new().await.unwrap());
    let tasks: Vec<_> = (0..64)
        .map(|task| {
            let authz = Arc::clone(&authz);
            tokio::spawn(async move {
                let who = principal(Who::HospitalDoctorMemberOfAAdminOfB);
                for round in 0..25 {
                    assert!(
                        authz.allows(&who, IN_B, Object::Members, Action::Invite),
                        "{task}/{round}"
                    );
                    assert!(
                        !authz.allows(&who, IN_A, Object::Members, Action::Invite),
                        "{task}/{round}"
                    );
                    assert!(
                        authz.allows(&who, IN_A, Object::Directory, Action::Read),
                        "{task}/{round}"
                    );
                    tokio::task::yield_now().await;
                }
            })
        })
        .collect();
    for task in tasks {
        task.await.unwrap();
    }
}
