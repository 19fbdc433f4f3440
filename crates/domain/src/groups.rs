//! Groups: general groups (a collaborating-doctor group, a multi-professional exchange, a
//! facility's team) and patient groups. A group is hosted by one association and may have
//! members from others; group roles (owner, member) are casbin roles in the group's domain.
//!
//! Every call is authorized here. Someone who is not an active member is answered exactly like
//! a missing group (`NOT_FOUND`), except for what they were invited to or may ask to join.
//! Groups are loaded through the routed tenant only ([`HostedGroup`]): a group hosted by
//! another association is not found, whoever asks.

use crate::audit::{AuditAction, RequestMeta};
use crate::change::{Change, EventSpec};
use crate::sessions::Viewer;
use crate::types::AssociationId;
use crate::types::GroupId;
use crate::types::PersonId;
use crate::Actor;
use crate::{AppError, AppResult, ErrorCode, Services, Tenant};
use musubi_authz::{Action, GroupRole, Object, Principal, ProfessionClass};
use musubi_db::groups::{
    self as repo, CandidateRow, FacilityCandidateRow, GroupMemberRow, GroupRow, HostedGroup,
    TopicRow,
};
use musubi_realtime::EventKind;

/// Most people removed from a group in one step.
pub const MAX_BULK_REMOVE: usize = 100;

/// Largest number of topics a group page lists.
pub const GROUP_PAGE_TOPICS: i64 = 200;

pub use musubi_db::types::{GroupKind, ReceiptMode};
use musubi_db::types::{GroupMemberStatus, JoinPolicy};

/// Topic visibility: a set of profession classes, as bits (see `core.scope_bit`).
pub use musubi_db::types::Scope;

/// The scope of the chosen reader classes; at least one.
pub fn scope_of_classes(classes: &[ProfessionClass]) -> AppResult<Scope> {
    Scope::from_classes(classes)
        .ok_or_else(|| AppError::invalid("scope", "choose at least one group of readers"))
}

/// The scope of submitted bits (1..=7).
pub fn scope_of_bits(bits: i16) -> AppResult<Scope> {
    Scope::from_bits(bits).ok_or_else(|| AppError::invalid("scope", "not a valid scope"))
}

/// The viewer's scope bit.
pub fn viewer_bit(viewer: &Viewer) -> Scope {
    Scope::of(viewer.principal.profession_class)
}

/// Whether a topic with this scope and author is visible to the viewer.
pub fn topic_visible(viewer: &Viewer, scope: Scope, author_id: PersonId) -> bool {
    in_scope(scope, viewer_bit(viewer), Some(author_id), viewer.user.id)
}

/// The scope rule itself: the reader's class bit is in the topic's scope, or the reader wrote
/// the topic.
pub fn in_scope(
    scope: Scope,
    reader_bit: Scope,
    author_id: Option<PersonId>,
    reader_id: PersonId,
) -> bool {
    in_scope_bits(scope.bits(), reader_bit, author_id, reader_id)
}

/// The same rule over an event's raw bits (an event may carry the union of an old and a new
/// scope).
pub fn in_scope_bits(
    bits: i16,
    reader_bit: Scope,
    author_id: Option<PersonId>,
    reader_id: PersonId,
) -> bool {
    bits & reader_bit.bits() != 0 || author_id == Some(reader_id)
}

#[derive(Debug, Clone)]
pub struct GroupInput {
    pub name: String,
    pub description: String,
    /// General groups only: people of the association may ask to join.
    pub accepts_requests: bool,
    /// `None`: the association's default.
    pub receipt_mode: Option<ReceiptMode>,
}

/// Largest group name and description, in characters.
pub const MAX_NAME_CHARS: usize = 100;
pub const MAX_DESCRIPTION_CHARS: usize = 2000;

impl GroupInput {
    /// The name and description as stored (see [`crate::text`]).
    fn validate(&self, kind: GroupKind) -> AppResult<(String, String)> {
        let name = crate::text::line("name", &self.name, MAX_NAME_CHARS)?;
        let description =
            crate::text::optional_lines("description", &self.description, MAX_DESCRIPTION_CHARS)?;
        if kind == GroupKind::Patient && self.accepts_requests {
            return Err(AppError::invalid(
                "acceptsRequests",
                "patient groups are by invitation only",
            ));
        }
        Ok((name, description))
    }
}

/// A change to a group's settings: what is `None` stays as it is. Applied to the group as it
/// is inside the change's transaction, so two owners editing different fields at once both keep
/// their edit.
#[derive(Debug, Clone, Default)]
pub struct GroupPatch {
    pub name: Option<String>,
    pub description: Option<String>,
    pub accepts_requests: Option<bool>,
    /// `Some(None)`: back to the association's default.
    pub receipt_mode: Option<Option<ReceiptMode>>,
}

impl From<&GroupInput> for GroupPatch {
    /// Every field set: a form that shows them all.
    fn from(input: &GroupInput) -> Self {
        Self {
            name: Some(input.name.clone()),
            description: Some(input.description.clone()),
            accepts_requests: Some(input.accepts_requests),
            receipt_mode: Some(input.receipt_mode),
        }
    }
}

/// A group as its page shows it.
#[derive(Debug, Clone)]
pub struct GroupView {
    pub group: GroupRow,
    pub tenant: Tenant,
    pub my_role: Option<GroupRole>,
    /// Active members first (owners first), then pending invitations and requests (owners only).
    pub members: Vec<GroupMemberRow>,
    /// Pinned first, then newest; only topics the viewer may see.
    pub topics: Vec<TopicRow>,
}

impl GroupView {
    pub fn unread(&self) -> i64 {
        self.topics.iter().map(|t| i64::from(t.unread)).sum()
    }
}

/// A group in "my groups", across associations.
#[derive(Debug, Clone)]
pub struct MyGroup {
    pub association_slug: String,
    pub association_name: String,
    pub group: GroupRow,
    pub unread: i64,
}

pub(crate) fn principal_in_group(
    viewer: &Viewer,
    group_id: GroupId,
    role: Option<GroupRole>,
) -> Principal {
    let mut p = viewer.principal.clone();
    p.groups = role.map(|r| vec![(group_id.uuid(), r)]).unwrap_or_default();
    p
}

impl Change<'_> {
    /// Ends a change to `user`'s membership of `group`: its audit record and the event that
    /// tells them (and the group), then the commit.
    async fn membership_changed(
        mut self,
        group: &HostedGroup,
        action: AuditAction,
        user: PersonId,
    ) -> AppResult<()> {
        let entry = self
            .entry(action)
            .on("group", group.id())
            .with_detail("user_id", user.to_string());
        self.audit(entry);
        self.event(group, EventSpec::membership(user)).await?;
        self.commit().await
    }

    /// Loads a group hosted by the change's association and checks that the viewer may invite
    /// to it (owners).
    async fn group_to_invite_to(&mut self, group_id: GroupId) -> AppResult<HostedGroup> {
        let me = self.viewer()?.user.id;
        let tenant = self.tenant();
        let (hosted, group) = repo::group(self.conn(), tenant, me, group_id)
            .await?
            .ok_or_else(AppError::not_found)?;
        self.about_group(&group.name);
        self.authorize(
            &hosted,
            active_role(&group),
            Object::Members,
            Action::Invite,
        )
        .await?;
        if group.archived_at.is_some() {
            return Err(AppError::archived());
        }
        Ok(hosted)
    }
}

impl Services {
    /// Creates a group hosted by `tenant`; its creator becomes its owner. Any member of the
    /// association may create one.
    pub async fn create_group(
        &self,
        actor: &Actor<'_>,
        kind: GroupKind,
        input: &GroupInput,
    ) -> AppResult<GroupId> {
        let (name, description) = input.validate(kind)?;
        self.authorize_in(actor, Object::Groups, Action::Create)
            .await?;
        let id = GroupId::generate();
        let mut c = self.change(actor).await?;
        let group = repo::insert_group(
            c.conn(),
            actor.tenant,
            &repo::NewGroup {
                id,
                kind,
                name: &name,
                description: &description,
                join_policy: if input.accepts_requests {
                    JoinPolicy::Request
                } else {
                    JoinPolicy::Invite
                },
                receipt_mode: input.receipt_mode,
                created_by: actor.viewer.user.id,
            },
        )
        .await?;
        c.about_group(&name);
        let entry = c
            .entry(AuditAction::GroupCreate)
            .on("group", id)
            .with_detail("kind", kind.code());
        c.audit(entry);
        // The creator's other open pages and subscriptions learn of the new group.
        c.event(&group, EventSpec::membership(actor.viewer.user.id))
            .await?;
        c.commit().await?;
        Ok(id)
    }

    /// Changes a group's name, description, join policy and read-receipt mode (owners).
    pub async fn update_group(
        &self,
        actor: &Actor<'_>,
        group_id: GroupId,
        patch: &GroupPatch,
    ) -> AppResult<()> {
        let mut c = self.change(actor).await?;
        let (hosted, group) =
            repo::group_for_update(c.conn(), actor.tenant, actor.viewer.user.id, group_id)
                .await?
                .ok_or_else(AppError::not_found)?;
        c.about_group(&group.name);
        c.authorize(&hosted, active_role(&group), Object::Group, Action::Update)
            .await?;
        let kind = group.kind;
        let input = GroupInput {
            name: patch.name.clone().unwrap_or(group.name),
            description: patch.description.clone().unwrap_or(group.description),
            accepts_requests: patch
                .accepts_requests
                .unwrap_or(group.join_policy == JoinPolicy::Request),
            receipt_mode: patch.receipt_mode.unwrap_or(group.receipt_override),
        };
        let (name, description) = input.validate(kind)?;
        repo::update_group(
            c.conn(),
            &hosted,
            &name,
            &description,
            if input.accepts_requests {
                JoinPolicy::Request
            } else {
                JoinPolicy::Invite
            },
            input.receipt_mode,
        )
        .await?;
        let entry = c
            .entry(AuditAction::GroupUpdate)
            .on("group", group_id)
            .with_detail(
                "receipt_mode",
                input.receipt_mode.map_or("default", ReceiptMode::code),
            );
        c.audit(entry);
        c.commit().await
    }

    /// The group page: the group, its members and the topics the viewer may see. Opening a
    /// patient group is audited (one record).
    pub async fn group_view(&self, actor: &Actor<'_>, group_id: GroupId) -> AppResult<GroupView> {
        let mut c = self.change(actor).await?;
        let (hosted, group) = repo::group(c.conn(), actor.tenant, actor.viewer.user.id, group_id)
            .await?
            .ok_or_else(AppError::not_found)?;
        c.about_group(&group.name);
        let role = active_role(&group);
        c.authorize(&hosted, role, Object::Topics, Action::Read)
            .await?;
        let my_role = role;
        let mut members = repo::members(c.conn(), &hosted).await?;
        if my_role != Some(GroupRole::Owner) {
            members.retain(|m| m.status == GroupMemberStatus::Active);
        }
        // An invitation by e-mail stays out of sight: it would tell whether the address has an
        // account.
        members.retain(|m| !(m.status == GroupMemberStatus::Invited && m.invited_by_email));
        let topics = repo::topics_of_group(
            c.conn(),
            actor.viewer.user.id,
            viewer_bit(actor.viewer),
            &hosted,
            GROUP_PAGE_TOPICS,
        )
        .await?;
        if group.kind == GroupKind::Patient {
            let entry = c
                .entry(AuditAction::GroupRead)
                .on("group", group_id)
                .with_detail("topic_count", topics.len() as i64);
            c.audit(entry);
        }
        c.commit().await?;
        Ok(GroupView {
            group,
            tenant: actor.tenant.clone(),
            my_role,
            members,
            topics,
        })
    }

    /// What someone who is not (yet) a member may know of a group: only if invited, if their
    /// request is pending, or if it is a general group of their association that accepts
    /// requests. Otherwise "not found".
    pub async fn group_invitation(
        &self,
        actor: &Actor<'_>,
        group_id: GroupId,
    ) -> AppResult<GroupRow> {
        let mut tx = self.db().tenant_snapshot(actor.tenant).await?;
        let (_, group) = repo::group(&mut tx, actor.tenant, actor.viewer.user.id, group_id)
            .await?
            .ok_or_else(AppError::not_found)?;
        tx.commit().await?;
        let pending = matches!(
            group.my_status,
            Some(GroupMemberStatus::Invited | GroupMemberStatus::Requested)
        );
        let open = group.kind == GroupKind::General
            && group.join_policy == JoinPolicy::Request
            && actor.viewer.is_member_of(actor.tenant.id);
        if pending || open || group.my_status == Some(GroupMemberStatus::Active) {
            Ok(group)
        } else {
            Err(AppError::not_found())
        }
    }

    /// General groups of the association that accept requests to join (for its members).
    pub async fn open_groups(&self, actor: &Actor<'_>) -> AppResult<Vec<GroupRow>> {
        self.authorize_in(actor, Object::Association, Action::Read)
            .await?;
        let mut c = self.change(actor).await?;
        let groups = repo::open_groups(c.conn(), actor.tenant, actor.viewer.user.id).await?;
        c.commit().await?;
        Ok(groups)
    }

    /// Every group of the viewer in every association, most recently active first, with unread
    /// counts (conversations of direct messages are not groups here: see
    /// [`Services::conversations`]). One directory query, then one transaction per host
    /// association.
    pub async fn my_groups(&self, viewer: &Viewer) -> AppResult<Vec<MyGroup>> {
        let rows = repo::groups_of(self.db().pool(), viewer.user.id).await?;
        let mut out = Vec::new();
        for (association_id, slug, name, ids) in
            by_association(&rows, |r| r.kind != GroupKind::Direct)
        {
            let Ok(tenant) = self.db().resolve_tenant(&slug).await else {
                continue; // an association being upgraded: its groups come back afterwards
            };
            debug_assert_eq!(tenant.id, association_id);
            let mut tx = self.db().tenant_snapshot(&tenant).await?;
            let groups = repo::groups_by_ids(&mut tx, &tenant, viewer.user.id, &ids).await?;
            let unread = repo::unread_by_group(&mut tx, tenant.plan_slot(), viewer.user.id).await?;
            tx.commit().await?;
            for g in groups {
                let n = unread
                    .iter()
                    .find(|(id, _)| *id == g.id)
                    .map_or(0, |(_, n)| *n);
                out.push(MyGroup {
                    association_slug: slug.clone(),
                    association_name: name.clone(),
                    unread: if g.my_status == Some(GroupMemberStatus::Active) {
                        n
                    } else {
                        0
                    },
                    group: g,
                });
            }
        }
        out.sort_by(|a, b| {
            let pending = |g: &MyGroup| g.group.my_status != Some(GroupMemberStatus::Active);
            pending(b)
                .cmp(&pending(a))
                .then(
                    (b.group.kind == GroupKind::Patient).cmp(&(a.group.kind == GroupKind::Patient)),
                )
                .then(b.group.last_activity_at.cmp(&a.group.last_activity_at))
        });
        Ok(out)
    }

    /// The people an owner may pick to invite (the directory): the active members of the
    /// associations the owner is an active member of and of their neighbouring associations
    /// (not everyone with an account), whose name, reading or facility contains `search`
    /// (ignoring width, kana kind and spaces) or whose profession it names; at most `limit`
    /// (1–50), by kana.
    pub async fn group_invite_candidates(
        &self,
        actor: &Actor<'_>,
        group_id: GroupId,
        search: &str,
        limit: i64,
    ) -> AppResult<Vec<CandidateRow>> {
        let search =
            crate::text::search_term("search", search, MAX_SEARCH_CHARS)?.unwrap_or_default();
        let folded = musubi_db::types::japanese::fold(&search);
        let professions = musubi_db::types::Profession::matching(&folded);
        let mut c = self.change(actor).await?;
        let hosted = c.group_to_invite_to(group_id).await?;
        let rows = repo::invite_candidates(
            c.conn(),
            &hosted,
            actor.viewer.user.id,
            &folded,
            &professions,
            limit.clamp(1, 50),
        )
        .await?;
        c.commit().await?;
        Ok(rows)
    }

    /// The facilities of the owner's directory (see [`Self::group_invite_candidates`]) whose
    /// name contains `search`, with someone left to invite; at most `limit` (1–20).
    pub async fn group_facility_candidates(
        &self,
        actor: &Actor<'_>,
        group_id: GroupId,
        search: &str,
        limit: i64,
    ) -> AppResult<Vec<FacilityCandidateRow>> {
        let search =
            crate::text::search_term("search", search, MAX_SEARCH_CHARS)?.unwrap_or_default();
        let folded = musubi_db::types::japanese::fold(&search);
        let mut c = self.change(actor).await?;
        let hosted = c.group_to_invite_to(group_id).await?;
        let rows = repo::facility_candidates(
            c.conn(),
            &hosted,
            actor.viewer.user.id,
            &folded,
            limit.clamp(1, 20),
        )
        .await?;
        c.commit().await?;
        Ok(rows)
    }

    /// An owner invites a person picked from the directory they may see (see
    /// [`Self::group_invite_candidates`]); anyone else is "not found". They join when they
    /// accept.
    pub async fn invite_to_group(
        &self,
        actor: &Actor<'_>,
        group_id: GroupId,
        user_id: PersonId,
    ) -> AppResult<()> {
        let mut c = self.change(actor).await?;
        let hosted = c.group_to_invite_to(group_id).await?;
        if !repo::in_directory_of(c.conn(), actor.viewer.user.id, user_id).await? {
            return Err(AppError::not_found());
        }
        crate::patients::check_consent(c.conn(), &hosted, actor.viewer.user.id, Some(user_id))
            .await?;
        let added = repo::upsert_member(
            c.conn(),
            &hosted,
            user_id,
            GroupRole::Member,
            GroupMemberStatus::Invited,
            Some(actor.viewer.user.id),
        )
        .await?;
        if !added {
            return Err(AppError::new(
                ErrorCode::AlreadyMember,
                "this person is already a member",
            ));
        }
        c.membership_changed(&hosted, AuditAction::GroupMemberInvite, user_id)
            .await
    }

    /// An owner invites a whole facility of their directory in one step (a visiting-nurse
    /// station's team, also across the border): everyone active who works there and has no
    /// membership in the group yet. The patient's consent rule applies to each; if it refuses
    /// anyone, nobody is invited. Returns how many were. A facility outside the directory is
    /// "not found".
    pub async fn invite_facility(
        &self,
        actor: &Actor<'_>,
        group_id: GroupId,
        facility_id: uuid::Uuid,
    ) -> AppResult<usize> {
        let me = actor.viewer.user.id;
        let mut c = self.change(actor).await?;
        let hosted = c.group_to_invite_to(group_id).await?;
        let people = repo::facility_people(c.conn(), me, facility_id)
            .await?
            .ok_or_else(AppError::not_found)?;
        let mut invited = Vec::new();
        for person in people.into_iter().filter(|p| *p != me) {
            // Members, invitees and those asking to join are left as they are.
            if repo::membership(c.conn(), &hosted, person).await?.is_some() {
                continue;
            }
            crate::patients::check_consent(c.conn(), &hosted, me, Some(person)).await?;
            if repo::upsert_member(
                c.conn(),
                &hosted,
                person,
                GroupRole::Member,
                GroupMemberStatus::Invited,
                Some(me),
            )
            .await?
            {
                invited.push(person);
            }
        }
        if !invited.is_empty() {
            let entry = c
                .entry(AuditAction::GroupMemberInvite)
                .on("group", group_id)
                .with_detail("facility_id", facility_id.to_string())
                .with_detail(
                    "user_ids",
                    invited.iter().map(|p| p.to_string()).collect::<Vec<_>>(),
                );
            c.audit(entry);
            for person in &invited {
                c.event(&hosted, EventSpec::membership(*person)).await?;
            }
        }
        c.commit().await?;
        Ok(invited.len())
    }

    /// An owner invites an e-mail address. The answer is the same whether or not the address
    /// has an account, is already in the group or was invited before: if an active account has
    /// it and no membership in the group yet, that person finds the invitation on their home
    /// page; owners see them only once they accept. Nothing is sent to an address without an
    /// account.
    pub async fn invite_to_group_by_email(
        &self,
        actor: &Actor<'_>,
        group_id: GroupId,
        email: &str,
    ) -> AppResult<()> {
        let email = crate::text::email("email", email)?;
        let mut c = self.change(actor).await?;
        let hosted = c.group_to_invite_to(group_id).await?;
        // Whoever the address belongs to may work anywhere.
        crate::patients::check_consent(c.conn(), &hosted, actor.viewer.user.id, None).await?;
        let invited = repo::invite_by_email(
            c.conn(),
            &hosted,
            &email,
            actor.viewer.user.id,
            EventKind::MembershipChanged.as_str(),
        )
        .await?;
        // The same record either way (and no address: ids and codes only): the log must not
        // tell administrators more than the inviter learns. The invitee's join is recorded
        // with their id when they accept.
        let entry = c
            .entry(AuditAction::GroupMemberInvite)
            .on("group", group_id)
            .with_detail("by", "email");
        c.audit(entry);
        if let Some((id, user)) = invited {
            // Written by the query itself, which alone knows whether anyone was invited.
            c.written_event(&hosted, EventSpec::membership(user), id);
        }
        c.commit().await?;
        Ok(())
    }

    /// An owner invites someone who has no account yet, in person: the answer carries a link
    /// and its QR code to hand over on paper or a screen (7 days, once). Accepting it
    /// registers them in the group's association as an administrator's invitation does (as a
    /// member) and makes them a member of the group; someone who has an account signs in with
    /// it there instead and joins the group. Under the consent rule: they may work anywhere.
    pub async fn invite_new_person_to_group(
        &self,
        actor: &Actor<'_>,
        group_id: GroupId,
    ) -> AppResult<GroupInvitation> {
        let group_name = {
            let mut c = self.change(actor).await?;
            let hosted = c.group_to_invite_to(group_id).await?;
            crate::patients::check_consent(c.conn(), &hosted, actor.viewer.user.id, None).await?;
            let name = c.group_name().unwrap_or_default().to_owned();
            c.commit().await?;
            name
        };
        self.limits()
            .hit(
                &crate::invitations::INVITE_CREATE,
                &actor.viewer.user.id.to_string(),
            )
            .await?;
        let input = crate::invitations::InviteInput {
            email: None,
            role: crate::members::MemberRole::Member,
            facility_id: None,
            expires_in_days: None,
        };
        let inviter = (actor.viewer.user.id, actor.viewer.user.name.clone());
        let created = self
            .create_invitation(
                Some(inviter),
                actor.tenant,
                &input,
                actor.meta,
                Some(group_id),
            )
            .await?;
        Ok(GroupInvitation {
            created,
            group_name,
        })
    }

    /// The invitee accepts (or declines) an invitation to a group hosted by `tenant`.
    pub async fn answer_group_invitation(
        &self,
        actor: &Actor<'_>,
        group_id: GroupId,
        accept: bool,
    ) -> AppResult<()> {
        let mut c = self.change(actor).await?;
        let (hosted, group) = repo::group(c.conn(), actor.tenant, actor.viewer.user.id, group_id)
            .await?
            .ok_or_else(AppError::not_found)?;
        c.about_group(&group.name);
        if group.my_status != Some(GroupMemberStatus::Invited) {
            return Err(AppError::not_found());
        }
        let action = if accept {
            repo::activate_member(c.conn(), &hosted, actor.viewer.user.id).await?;
            AuditAction::GroupMemberJoin
        } else {
            repo::remove_member(c.conn(), &hosted, actor.viewer.user.id).await?;
            AuditAction::GroupMemberRemove
        };
        c.membership_changed(&hosted, action, actor.viewer.user.id)
            .await
    }

    /// A member of the host association asks to join a general group that accepts requests.
    pub async fn request_to_join(&self, actor: &Actor<'_>, group_id: GroupId) -> AppResult<()> {
        self.authorize_in(actor, Object::Association, Action::Read)
            .await?;
        let mut c = self.change(actor).await?;
        let (hosted, group) = repo::group(c.conn(), actor.tenant, actor.viewer.user.id, group_id)
            .await?
            .filter(|(_, g)| g.kind == GroupKind::General && g.join_policy == JoinPolicy::Request)
            .ok_or_else(AppError::not_found)?;
        c.about_group(&group.name);
        if group.my_status.is_some() {
            return Err(AppError::new(
                ErrorCode::AlreadyMember,
                "you are already a member, invited, or waiting for approval",
            ));
        }
        repo::upsert_member(
            c.conn(),
            &hosted,
            actor.viewer.user.id,
            GroupRole::Member,
            GroupMemberStatus::Requested,
            None,
        )
        .await?;
        let entry = c.entry(AuditAction::GroupJoinRequest).on("group", group_id);
        c.audit(entry);
        c.commit().await
    }

    /// An owner approves (or refuses) a request to join.
    pub async fn answer_join_request(
        &self,
        actor: &Actor<'_>,
        group_id: GroupId,
        user_id: PersonId,
        approve: bool,
    ) -> AppResult<()> {
        let mut c = self.change(actor).await?;
        let hosted = c.group_to_invite_to(group_id).await?;
        let status = repo::membership(c.conn(), &hosted, user_id).await?;
        if !matches!(status, Some((_, GroupMemberStatus::Requested))) {
            return Err(AppError::not_found());
        }
        let action = if approve {
            repo::activate_member(c.conn(), &hosted, user_id).await?;
            AuditAction::GroupMemberJoin
        } else {
            repo::remove_member(c.conn(), &hosted, user_id).await?;
            AuditAction::GroupMemberRemove
        };
        c.membership_changed(&hosted, action, user_id).await
    }

    /// An owner sets (or, with `None`, clears) when someone's membership ends by itself: a
    /// substitute for two weeks, a student on placement. The server removes it within a minute
    /// of that time (see [`Services::end_expired_memberships`]). A group's only owner cannot be
    /// given an end.
    pub async fn set_group_member_until(
        &self,
        actor: &Actor<'_>,
        group_id: GroupId,
        user_id: PersonId,
        until: Option<chrono::DateTime<chrono::Utc>>,
    ) -> AppResult<()> {
        if until.is_some_and(|u| u <= chrono::Utc::now()) {
            return Err(AppError::invalid("until", "the end must be in the future"));
        }
        let mut c = self.change(actor).await?;
        let (hosted, group) = repo::group(c.conn(), actor.tenant, actor.viewer.user.id, group_id)
            .await?
            .ok_or_else(AppError::not_found)?;
        c.about_group(&group.name);
        c.authorize(
            &hosted,
            active_role(&group),
            Object::Members,
            Action::Remove,
        )
        .await?;
        let target = repo::membership(c.conn(), &hosted, user_id)
            .await?
            .ok_or_else(AppError::not_found)?;
        if until.is_some()
            && target.0 == GroupRole::Owner
            && repo::lock_owners(c.conn(), &hosted).await? <= 1
        {
            return Err(AppError::new(
                ErrorCode::LastOwner,
                "a group needs at least one owner",
            ));
        }
        repo::set_member_until(c.conn(), &hosted, user_id, until).await?;
        let entry = c
            .entry(AuditAction::GroupMemberUntil)
            .on("group", group_id)
            .with_detail("user_id", user_id.to_string())
            .with_detail(
                "until",
                until.map_or(serde_json::Value::Null, |u| u.to_rfc3339().into()),
            );
        c.audit(entry);
        c.commit().await
    }

    /// Removes the memberships whose end has come (at most `batch`), each in its own
    /// transaction with its audit record (`group.member_remove`, `detail.reason` = `expired`)
    /// and live event; returns how many. Run every minute by the server.
    pub async fn end_expired_memberships(&self, batch: i64) -> AppResult<usize> {
        let due = repo::expired_memberships(self.db().pool(), batch).await?;
        let meta = crate::audit::RequestMeta::new("", "musubi membership expiry");
        let mut ended = 0;
        for (slug, group_id, user_id) in due {
            // One association that cannot be served now (being upgraded) must not stall the
            // others: its memberships are ended on a later round.
            let tenant = match self.resolve_tenant(&slug).await {
                Ok(t) => t,
                Err(e) => {
                    tracing::warn!(association = %slug, error = %e, "membership expiry skipped");
                    continue;
                }
            };
            let mut c = self.change_without_viewer(&tenant, &meta).await?;
            let Some((hosted, group)) = repo::group(c.conn(), &tenant, user_id, group_id).await?
            else {
                continue;
            };
            c.about_group(&group.name);
            if !repo::remove_expired_member(c.conn(), &hosted, user_id).await? {
                continue;
            }
            let entry = c
                .entry(AuditAction::GroupMemberRemove)
                .on("group", group_id)
                .with_detail("user_id", user_id.to_string())
                .with_detail("reason", "expired");
            c.audit(entry);
            c.event(&hosted, EventSpec::membership(user_id)).await?;
            c.commit().await?;
            ended += 1;
        }
        Ok(ended)
    }

    /// An owner removes a member, or a member leaves (`user_id` = themselves). A group keeps at
    /// least one owner.
    pub async fn remove_group_member(
        &self,
        actor: &Actor<'_>,
        group_id: GroupId,
        user_id: PersonId,
    ) -> AppResult<()> {
        let mut c = self.change(actor).await?;
        let (hosted, group) = repo::group(c.conn(), actor.tenant, actor.viewer.user.id, group_id)
            .await?
            .ok_or_else(AppError::not_found)?;
        c.about_group(&group.name);
        let role = active_role(&group);
        let (object, action) = if user_id == actor.viewer.user.id {
            (Object::Group, Action::Read)
        } else {
            (Object::Members, Action::Remove)
        };
        c.authorize(&hosted, role, object, action).await?;
        let target = repo::membership(c.conn(), &hosted, user_id)
            .await?
            .ok_or_else(AppError::not_found)?;
        if target.0 == GroupRole::Owner && repo::lock_owners(c.conn(), &hosted).await? <= 1 {
            return Err(AppError::new(
                ErrorCode::LastOwner,
                "a group needs at least one owner",
            ));
        }
        repo::remove_member(c.conn(), &hosted, user_id).await?;
        c.membership_changed(&hosted, AuditAction::GroupMemberRemove, user_id)
            .await
    }

    /// An owner removes several people at once (a team that handed over, the invitations
    /// nobody answered): all or nothing — if one is not in the group, or the group would be
    /// left without an active owner, nobody is removed. At most [`MAX_BULK_REMOVE`] at a time
    /// and never the owner themselves (they leave on their own). Returns how many were removed.
    pub async fn remove_group_members(
        &self,
        actor: &Actor<'_>,
        group_id: GroupId,
        user_ids: &[PersonId],
    ) -> AppResult<usize> {
        let me = actor.viewer.user.id;
        let mut ids: Vec<PersonId> = user_ids.to_vec();
        ids.sort_unstable_by_key(|p| p.uuid());
        ids.dedup();
        if ids.is_empty() || ids.len() > MAX_BULK_REMOVE {
            return Err(AppError::invalid(
                "userIds",
                format!("choose 1 to {MAX_BULK_REMOVE} people"),
            ));
        }
        if ids.contains(&me) {
            return Err(AppError::invalid(
                "userIds",
                "leave the group yourself instead of removing yourself",
            ));
        }
        let mut c = self.change(actor).await?;
        let (hosted, group) = repo::group(c.conn(), actor.tenant, me, group_id)
            .await?
            .ok_or_else(AppError::not_found)?;
        c.about_group(&group.name);
        c.authorize(
            &hosted,
            active_role(&group),
            Object::Members,
            Action::Remove,
        )
        .await?;
        let mut owners_removed = 0;
        for id in &ids {
            let (role, status) = repo::membership(c.conn(), &hosted, *id)
                .await?
                .ok_or_else(AppError::not_found)?;
            if role == GroupRole::Owner && status == GroupMemberStatus::Active {
                owners_removed += 1;
            }
        }
        if owners_removed > 0 && repo::lock_owners(c.conn(), &hosted).await? <= owners_removed {
            return Err(AppError::new(
                ErrorCode::LastOwner,
                "a group needs at least one owner",
            ));
        }
        for id in &ids {
            repo::remove_member(c.conn(), &hosted, *id).await?;
            c.event(&hosted, EventSpec::membership(*id)).await?;
        }
        let entry = c
            .entry(AuditAction::GroupMemberRemove)
            .on("group", group_id)
            .with_detail(
                "user_ids",
                ids.iter().map(|p| p.to_string()).collect::<Vec<_>>(),
            );
        c.audit(entry);
        c.commit().await?;
        Ok(ids.len())
    }

    /// An owner makes a member an owner, or an owner a member (a group keeps one owner).
    pub async fn set_group_role(
        &self,
        actor: &Actor<'_>,
        group_id: GroupId,
        user_id: PersonId,
        role: GroupRole,
    ) -> AppResult<()> {
        let mut c = self.change(actor).await?;
        let (hosted, group) = repo::group(c.conn(), actor.tenant, actor.viewer.user.id, group_id)
            .await?
            .ok_or_else(AppError::not_found)?;
        c.about_group(&group.name);
        c.authorize(
            &hosted,
            active_role(&group),
            Object::Members,
            Action::ChangeRole,
        )
        .await?;
        let target = repo::membership(c.conn(), &hosted, user_id)
            .await?
            .filter(|(_, s)| *s == GroupMemberStatus::Active)
            .ok_or_else(AppError::not_found)?;
        if target.0 == GroupRole::Owner
            && role == GroupRole::Member
            && repo::lock_owners(c.conn(), &hosted).await? <= 1
        {
            return Err(AppError::new(
                ErrorCode::LastOwner,
                "a group needs at least one owner",
            ));
        }
        repo::set_member_role(c.conn(), &hosted, user_id, role).await?;
        let entry = c
            .entry(AuditAction::GroupMemberRole)
            .on("group", group_id)
            .with_detail("user_id", user_id.to_string())
            .with_detail("role", role.code());
        c.audit(entry);
        c.commit().await
    }

    /// Adds a person straight in as an active member of a group `tenant` hosts (demo data and
    /// tests; the people-facing path is an invitation they accept).
    pub(crate) async fn add_group_member_directly(
        &self,
        tenant: &Tenant,
        group_id: GroupId,
        user_id: PersonId,
        role: GroupRole,
    ) -> AppResult<()> {
        let meta = RequestMeta::new("", "musubi operator");
        let mut c = self.change_without_viewer(tenant, &meta).await?;
        let hosted = repo::hosted_group(c.conn(), tenant, group_id)
            .await?
            .ok_or_else(AppError::not_found)?;
        repo::upsert_member(
            c.conn(),
            &hosted,
            user_id,
            role,
            GroupMemberStatus::Active,
            None,
        )
        .await?;
        c.commit().await
    }
}

/// A group owner's invitation for someone without an account, as made.
#[derive(Debug, Clone)]
pub struct GroupInvitation {
    pub created: crate::invitations::CreatedInvitation,
    pub group_name: String,
}

/// Someone who accepted a group owner's invitation joins the group, in the change that
/// registers them (an active member already, or a group deleted since, is left as it is).
/// Whether they joined.
pub(crate) async fn join_by_invitation(
    c: &mut Change<'_>,
    tenant: &Tenant,
    group_id: GroupId,
    user_id: PersonId,
    invited_by: Option<PersonId>,
) -> AppResult<bool> {
    let Some(hosted) = repo::hosted_group(c.conn(), tenant, group_id).await? else {
        return Ok(false);
    };
    let joined = repo::upsert_member(
        c.conn(),
        &hosted,
        user_id,
        GroupRole::Member,
        GroupMemberStatus::Active,
        invited_by,
    )
    .await?;
    if joined {
        c.event(&hosted, EventSpec::membership(user_id)).await?;
    }
    Ok(joined)
}

/// Longest directory search accepted.
pub(crate) const MAX_SEARCH_CHARS: usize = 100;

/// The viewer's active role in a loaded group.
pub(crate) fn active_role(group: &GroupRow) -> Option<GroupRole> {
    if group.my_status == Some(GroupMemberStatus::Active) {
        group.my_role
    } else {
        None
    }
}

/// Directory rows grouped by host association: (id, slug, name, group ids).
pub(crate) fn by_association(
    rows: &[repo::MyGroupRow],
    keep: impl Fn(&repo::MyGroupRow) -> bool,
) -> Vec<(AssociationId, String, String, Vec<GroupId>)> {
    let mut out: Vec<(AssociationId, String, String, Vec<GroupId>)> = Vec::new();
    for r in rows.iter().filter(|r| keep(r)) {
        match out.iter_mut().find(|(id, ..)| *id == r.association_id) {
            Some((.., ids)) => ids.push(r.group_id),
            None => out.push((
                r.association_id,
                r.slug.clone(),
                r.association_name.clone(),
                vec![r.group_id],
            )),
        }
    }
    out
}
