//! Builders for test data written straight through the services or the database: an
//! association, people and their sessions, groups with their members.

use musubi_authz::GroupRole;
use musubi_db::accounts::{self, NewSession, NewUser};
use musubi_db::Db;
use musubi_domain::associations::CreateAssociation;
use musubi_domain::groups::{GroupInput, GroupKind};
use musubi_domain::operator::Operator;
use musubi_domain::types::{AssociationId, GroupId, PersonId};
use musubi_domain::Actor;
use uuid::Uuid;

/// An association to create: `slug` and `name`, no area or description.
pub fn association(slug: &str, name: &str) -> CreateAssociation {
    CreateAssociation {
        slug: slug.into(),
        name: name.into(),
        area: String::new(),
        description: String::new(),
    }
}

/// A fresh full API session for `user_id` (second factor done, as a sign-in from `ip` would
/// leave it), written straight to the database; returns its token.
pub async fn api_session_token(db: &Db, user_id: PersonId, ip: &str) -> String {
    let token = format!("test-{}", Uuid::new_v4().simple());
    accounts::insert_session(
        db.pool(),
        &NewSession {
            user_id,
            token_hash: &musubi_auth::token::hash_token(&token),
            kind: musubi_domain::types::SessionKind::Api,
            second_factor_done: true,
            idle: chrono::Duration::hours(1),
            absolute: chrono::Duration::hours(8),
            ip,
            user_agent: "test",
        },
    )
    .await
    .unwrap();
    token
}

/// The TOTP code for `secret` `steps_from_now` time steps away (0 = now, -1 = the last one).
pub fn totp_code(secret: &[u8], steps_from_now: i64) -> String {
    let secret = musubi_auth::totp::TotpSecret::from_bytes(secret).expect("a TOTP secret");
    let step = musubi_auth::totp::time_step(std::time::SystemTime::now()) as i64 + steps_from_now;
    secret.code_at_step(step as u64)
}

/// Inserts `user` as a plain member of the association `association_id`, in one
/// transaction; returns the person's id.
pub async fn insert_member(db: &Db, association_id: AssociationId, user: &NewUser<'_>) -> PersonId {
    let mut tx = db.pool().begin().await.unwrap();
    let id = accounts::insert_user(&mut tx, user).await.unwrap();
    accounts::insert_membership(
        &mut tx,
        id,
        association_id,
        musubi_domain::types::AssociationRole::Member,
        None,
    )
    .await
    .unwrap();
    tx.commit().await.unwrap();
    id
}

/// A group named `name`: no description, no requests to join, the association's receipt mode.
pub fn group_input(name: impl Into<String>) -> GroupInput {
    GroupInput {
        name: name.into(),
        description: String::new(),
        accepts_requests: false,
        receipt_mode: None,
    }
}

/// Creates a group of `kind` owned by `owner`, then adds each of `members` as a plain member
/// directly (no invitation); returns the group's id.
pub async fn group_with_members(
    op: &Operator,
    owner: &Actor<'_>,
    kind: GroupKind,
    input: &GroupInput,
    members: &[PersonId],
) -> GroupId {
    let group = op
        .services()
        .create_group(owner, kind, input)
        .await
        .unwrap();
    for member in members {
        op.add_group_member(owner.tenant(), group, *member, GroupRole::Member)
            .await
            .unwrap();
    }
    group
}
