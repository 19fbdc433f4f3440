//! Groups, topics, comments, footprints and unread counts through the API.
//!
//! `myGroups`, `home` and `unreadCounts` span every association the viewer belongs to and need
//! no routing; everything about one group or topic is routed to the group's host association
//! (`Musubi-Association` header). The services authorize: what the viewer may not see answers
//! `NOT_FOUND`, exactly like a missing object.

use crate::files::{file_out, File};
use crate::request::{routed, signed_in, uuid, OrGql};
use async_graphql::{Context, Enum, MaybeUndefined, Object, SimpleObject, ID};
use chrono::{DateTime, Utc};
use musubi_db::groups::{
    CandidateRow, FacilityCandidateRow, GroupMemberRow, GroupRow, ReaderRow, TopicRow,
};
use musubi_domain::groups::{GroupInput, GroupPatch, Scope};
use musubi_domain::topics::{self as topics, NewTopic, TopicPatch};
use musubi_domain::types::JoinPolicy;
use musubi_domain::AppError;
use uuid::Uuid;

// Each API enum mirrors one set of the vocabulary; `remote` derives both conversions as
// exhaustive matches, so a value added to one side and not the other fails to compile.

#[derive(Enum, Copy, Clone, Eq, PartialEq)]
#[graphql(remote = "musubi_domain::types::GroupKind")]
pub enum GroupKind {
    /// A collaborating-doctor group, a multi-professional exchange, a facility's team.
    General,
    /// The people caring for one patient.
    Patient,
    /// A conversation of direct messages (see `conversations`).
    Direct,
}

/// How readers of a comment are shown in a group.
#[derive(Enum, Copy, Clone, Eq, PartialEq)]
#[graphql(remote = "musubi_domain::types::ReceiptMode")]
pub enum ReceiptMode {
    /// 足跡: who read each comment, and when.
    Footprints,
    /// Only a 「確認しました」 button and the list of who confirmed.
    Acknowledgement,
    Off,
}

#[derive(Enum, Copy, Clone, Eq, PartialEq)]
#[graphql(remote = "musubi_domain::types::GroupRole")]
pub enum GroupRole {
    /// Administers the group: invites, approves, removes, changes roles and settings.
    Owner,
    Member,
    /// Takes part in a conversation of direct messages: reads, replies and adds people.
    Participant,
}

#[derive(Enum, Copy, Clone, Eq, PartialEq)]
#[graphql(remote = "musubi_domain::types::GroupMemberStatus")]
pub enum MembershipStatus {
    Active,
    /// Invited by an owner; joins on accepting.
    Invited,
    /// Asked to join; waits for an owner's approval.
    Requested,
}

/// The classes of readers a topic's scope is made of.
#[derive(Enum, Copy, Clone, Eq, PartialEq)]
#[graphql(remote = "musubi_domain::types::ProfessionClass")]
pub enum ProfessionClass {
    /// コメディカル: nurses, care managers, pharmacists, therapists and everyone not a doctor.
    CoMedical,
    /// 連携医師: clinic doctors.
    CollaboratingDoctor,
    /// 病院医師: hospital doctors.
    HospitalDoctor,
}

/// The classes of a scope.
fn scope_out(scope: Scope) -> Vec<ProfessionClass> {
    scope
        .classes()
        .into_iter()
        .map(ProfessionClass::from)
        .collect()
}

/// A scope from the API: omitted or empty means everyone in the group.
fn scope_in(classes: &[ProfessionClass]) -> Result<Scope, AppError> {
    if classes.is_empty() {
        return Ok(Scope::EVERYONE);
    }
    let classes: Vec<musubi_domain::types::ProfessionClass> =
        classes.iter().map(|c| (*c).into()).collect();
    musubi_domain::groups::scope_of_classes(&classes)
}

/// Attachment ids from the API; one that is not a UUID is not an upload of the viewer's.
pub(crate) fn attachments_in(ids: &[ID]) -> Result<Vec<Uuid>, AppError> {
    if ids.len() > musubi_domain::files::MAX_ATTACHMENTS {
        return Err(AppError::invalid(
            "attachments",
            format!(
                "a comment may have at most {} files",
                musubi_domain::files::MAX_ATTACHMENTS
            ),
        ));
    }
    ids.iter()
        .map(|i| {
            Uuid::parse_str(i).map_err(|_| {
                AppError::invalid(
                    "attachments",
                    "an attachment is not an upload of yours waiting for this comment",
                )
            })
        })
        .collect()
}

fn count(n: i64) -> i32 {
    i32::try_from(n.max(0)).unwrap_or(i32::MAX)
}

fn id(u: impl Into<Uuid>) -> ID {
    let u: Uuid = u.into();
    ID(u.to_string())
}

/// A group, as lists show it.
#[derive(SimpleObject)]
pub struct Group {
    pub id: ID,
    /// The host association (route calls about this group there).
    pub association_slug: String,
    pub kind: GroupKind,
    pub name: String,
    pub description: String,
    /// General groups only: people of the host association may ask to join.
    pub accepts_requests: bool,
    /// The mode in force.
    pub receipt_mode: ReceiptMode,
    /// The group's own mode; null when it follows the association's default.
    pub receipt_mode_override: Option<ReceiptMode>,
    pub created_at: DateTime<Utc>,
    pub last_activity_at: DateTime<Utc>,
    /// When the patient's care ended: the group is read-only since (`GROUP_ARCHIVED`).
    pub archived_at: Option<DateTime<Utc>>,
    /// The viewer's role, if an active member.
    pub my_role: Option<GroupRole>,
    /// The viewer's membership; null if none.
    pub my_status: Option<MembershipStatus>,
}

fn group_out(g: GroupRow, association_slug: &str) -> Group {
    let my_status = g.my_status.map(MembershipStatus::from);
    Group {
        id: id(g.id),
        association_slug: association_slug.to_owned(),
        kind: g.kind.into(),
        accepts_requests: g.join_policy == JoinPolicy::Request,
        receipt_mode: g.receipt_mode.into(),
        receipt_mode_override: g.receipt_override.map(ReceiptMode::from),
        created_at: g.created_at,
        last_activity_at: g.last_activity_at,
        archived_at: g.archived_at,
        my_role: if my_status == Some(MembershipStatus::Active) {
            g.my_role.map(GroupRole::from)
        } else {
            None
        },
        my_status,
        name: g.name,
        description: g.description,
    }
}

/// A group in "my groups", with the viewer's unread count.
#[derive(SimpleObject)]
pub struct MyGroup {
    pub group: Group,
    pub association_name: String,
    pub unread: i32,
}

#[derive(SimpleObject)]
pub struct GroupMember {
    pub user_id: ID,
    pub name: String,
    pub name_kana: String,
    /// Profession code, e.g. `nurse`, `physician`, `care_manager`.
    pub profession: String,
    /// For physicians and dentists: `clinic` or `hospital`.
    pub doctor_kind: Option<String>,
    /// The class this person counts in for topic scopes.
    pub profession_class: ProfessionClass,
    pub role: GroupRole,
    pub status: MembershipStatus,
    /// Their facility in the host association, if they are a member there.
    pub facility_name: Option<String>,
    /// Their own association's name when it is not the host (members from elsewhere).
    pub home_association: Option<String>,
    /// When the membership ends by itself, if it does (`setGroupMemberUntil`).
    pub until: Option<DateTime<Utc>>,
}

fn member_out(m: GroupMemberRow) -> GroupMember {
    GroupMember {
        user_id: id(m.user_id),
        until: m.until,
        profession_class: m.profession.class(m.doctor_kind).into(),
        role: m.role.into(),
        status: m.status.into(),
        name: m.name,
        name_kana: m.name_kana,
        profession: m.profession.code().to_owned(),
        doctor_kind: m.doctor_kind.map(|k| k.code().to_owned()),
        facility_name: m.facility_name,
        home_association: m.home_association,
    }
}

/// Someone an owner may invite: a person of an association the owner is an active member of,
/// or of one of its neighbouring associations.
#[derive(SimpleObject)]
pub struct InviteCandidate {
    pub user_id: ID,
    pub name: String,
    pub name_kana: String,
    /// Profession code, e.g. `nurse`, `physician`, `care_manager`.
    pub profession: String,
    /// For physicians and dentists: `clinic` or `hospital`.
    pub doctor_kind: Option<String>,
    /// Their association (the group's host when they belong to it).
    pub association_name: String,
    /// Their facility in that association.
    pub facility_name: Option<String>,
    /// Their membership in the group already, if any.
    pub status: Option<MembershipStatus>,
}

pub(crate) fn candidate_out(c: CandidateRow) -> InviteCandidate {
    InviteCandidate {
        user_id: id(c.user_id),
        status: c.group_status.map(MembershipStatus::from),
        name: c.name,
        name_kana: c.name_kana,
        profession: c.profession.code().to_owned(),
        doctor_kind: c.doctor_kind.map(|k| k.code().to_owned()),
        association_name: c.association_name,
        facility_name: c.facility_name,
    }
}

/// A facility of the inviter's directory whose whole team may be invited in one step.
#[derive(SimpleObject)]
pub struct FacilityCandidate {
    pub id: ID,
    pub name: String,
    /// Facility kind code, e.g. `visiting_nurse_station`, `clinic`.
    pub kind: String,
    pub association_name: String,
    /// How many of its people would be invited (those not in the group yet).
    pub people: i32,
}

fn facility_candidate_out(f: FacilityCandidateRow) -> FacilityCandidate {
    FacilityCandidate {
        id: ID(f.id.to_string()),
        name: f.name,
        kind: f.kind.code().to_owned(),
        association_name: f.association_name,
        people: i32::try_from(f.people).unwrap_or(i32::MAX),
    }
}

/// A topic as a group's list shows it.
#[derive(SimpleObject)]
pub struct Topic {
    pub id: ID,
    pub group_id: ID,
    pub title: String,
    /// Who may see the topic (with its author): all three classes means everyone in the group.
    pub scope: Vec<ProfessionClass>,
    pub pinned: bool,
    /// Closed topics take no new comments.
    pub closed: bool,
    pub author_id: ID,
    pub author_name: String,
    pub created_at: DateTime<Utc>,
    pub last_comment_at: DateTime<Utc>,
    /// Number of the latest comment (the body is 1; deleted comments keep their number).
    pub last_seq: i32,
    /// Comments the viewer has not read.
    pub unread: i32,
}

fn topic_out(t: TopicRow) -> Topic {
    Topic {
        id: id(t.id),
        group_id: id(t.group_id),
        scope: scope_out(t.scope),
        pinned: t.pinned,
        closed: t.closed,
        author_id: id(t.author_id),
        author_name: t.author_name,
        created_at: t.created_at,
        last_comment_at: t.last_comment_at,
        last_seq: t.last_seq,
        unread: t.unread,
        title: t.title,
    }
}

/// A group's page: the group, its members and the topics the viewer may see.
#[derive(SimpleObject)]
pub struct GroupPage {
    pub group: Group,
    pub my_role: GroupRole,
    /// Active members, owners first; owners also see pending invitations and requests.
    pub members: Vec<GroupMember>,
    /// Pinned first, then the most recently active.
    pub topics: Vec<Topic>,
    /// Unread comments in the group for the viewer.
    pub unread: i32,
}

/// Someone who read (or confirmed) a comment, and when.
#[derive(SimpleObject)]
pub struct Reader {
    pub user_id: ID,
    pub name: String,
    pub at: DateTime<Utc>,
}

#[derive(SimpleObject, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Person {
    pub user_id: ID,
    pub name: String,
}

/// An earlier text of an edited comment.
#[derive(SimpleObject)]
pub struct CommentVersion {
    pub version: i32,
    pub body: String,
    pub important: bool,
    pub written_at: DateTime<Utc>,
}

#[derive(SimpleObject)]
pub struct Comment {
    pub id: ID,
    /// Its number in the topic; 1 is the topic's body.
    pub seq: i32,
    pub author_id: ID,
    pub author_name: String,
    pub author_profession: String,
    /// Plain text with line breaks (never HTML); null once deleted.
    pub body: Option<String>,
    pub important: bool,
    pub created_at: DateTime<Utc>,
    pub edited_at: Option<DateTime<Utc>>,
    /// 1 for an unedited comment.
    pub version: i32,
    /// A deleted comment keeps its place, shown as deleted.
    pub deleted: bool,
    pub deleted_at: Option<DateTime<Utc>>,
    /// Footprints (or, in acknowledgement mode, confirmations), oldest first: the first five,
    /// or all of them on my own comments; empty when the group's receipts are off. Everyone:
    /// `commentReaders`.
    pub readers: Vec<Reader>,
    /// How many read (or confirmed) it in all.
    pub reader_count: i32,
    /// On the viewer's own comments: people in scope who have not read (or confirmed) it yet.
    pub not_read_by: Vec<Person>,
    /// Earlier versions, oldest first.
    pub history: Vec<CommentVersion>,
    pub mine: bool,
    pub acknowledged_by_me: bool,
    /// Files attached to it, in the order they were uploaded (none once deleted).
    pub attachments: Vec<File>,
}

fn reader_out(x: ReaderRow) -> Reader {
    Reader {
        user_id: id(x.user_id),
        name: x.name,
        at: x.at,
    }
}

/// A comment as the API shows it; its attachments' addresses in association `slug`.
fn comment_out(c: topics::CommentView, slug: &str) -> Comment {
    let deleted = c.is_deleted();
    let r = c.row;
    Comment {
        id: id(r.id),
        seq: r.seq,
        author_id: id(r.author_id),
        author_name: r.author_name,
        author_profession: r.author_profession.code().to_owned(),
        body: (!deleted).then_some(r.body),
        important: r.important,
        created_at: r.created_at,
        edited_at: r.edited_at,
        version: r.version,
        deleted,
        deleted_at: r.deleted_at,
        readers: c.readers.into_iter().map(reader_out).collect(),
        reader_count: i32::try_from(c.reader_count).unwrap_or(i32::MAX),
        not_read_by: c
            .not_read_by
            .into_iter()
            .map(|(user_id, name)| Person {
                user_id: id(user_id),
                name,
            })
            .collect(),
        history: c
            .history
            .into_iter()
            .map(|v| CommentVersion {
                version: v.version,
                body: v.body,
                important: v.important,
                written_at: v.written_at,
            })
            .collect(),
        mine: c.mine,
        acknowledged_by_me: c.acknowledged_by_me,
        attachments: c.files.into_iter().map(|f| file_out(f, slug)).collect(),
    }
}

/// A topic's page.
#[derive(SimpleObject)]
pub struct TopicPage {
    pub topic: Topic,
    pub group_name: String,
    pub group_kind: GroupKind,
    pub receipt_mode: ReceiptMode,
    pub my_role: GroupRole,
    /// The author or a group owner: may change the scope, pin and close.
    pub can_manage: bool,
    /// In order: the newest 20 and everything from the first unread on, or from `fromSeq`
    /// when asked (at most the latest 500).
    pub comments: Vec<Comment>,
    /// Active members who can see the topic.
    pub audience: Vec<GroupMember>,
    /// The first comment that was unread when the topic was opened.
    pub first_unread_seq: Option<i32>,
    /// Comments before the first one in `comments` (0: it holds them all); ask again with
    /// `fromSeq` for them.
    pub earlier_comments: i32,
}

#[derive(SimpleObject)]
pub struct AssociationUnread {
    pub association_slug: String,
    pub association_name: String,
    pub count: i32,
}

#[derive(SimpleObject)]
pub struct GroupUnread {
    pub association_slug: String,
    pub group_id: ID,
    pub count: i32,
}

/// The viewer's unread comments: in total, per association and per group (groups with none
/// are left out).
#[derive(SimpleObject)]
pub struct UnreadCounts {
    pub total: i32,
    pub associations: Vec<AssociationUnread>,
    pub groups: Vec<GroupUnread>,
}

impl From<musubi_domain::unread::UnreadCounts> for UnreadCounts {
    fn from(c: musubi_domain::unread::UnreadCounts) -> Self {
        Self {
            total: count(c.total),
            associations: c
                .associations
                .into_iter()
                .map(|(slug, name, n)| AssociationUnread {
                    association_slug: slug,
                    association_name: name,
                    count: count(n),
                })
                .collect(),
            groups: c
                .groups
                .into_iter()
                .map(|(slug, g, n)| GroupUnread {
                    association_slug: slug,
                    group_id: id(g),
                    count: count(n),
                })
                .collect(),
        }
    }
}

/// An unread comment on the home page.
#[derive(SimpleObject)]
pub struct HomeItem {
    pub topic_id: ID,
    pub topic_title: String,
    pub comment_id: ID,
    pub seq: i32,
    pub author_name: String,
    /// The start of the text, on one line.
    pub excerpt: String,
    pub important: bool,
    pub created_at: DateTime<Utc>,
}

#[derive(SimpleObject)]
pub struct HomeGroup {
    pub association_slug: String,
    pub association_name: String,
    pub group_id: ID,
    pub group_name: String,
    pub kind: GroupKind,
    pub unread: i32,
    /// Unread comments marked 重要.
    pub important: i32,
    /// Topics with something unread (`topics` lists the first ten).
    pub unread_topics: i32,
    /// The group's headline: its newest important unread comment, else its newest unread one
    /// (a list of one, empty when there is none to show).
    pub items: Vec<HomeItem>,
    /// Topics with something unread, those with 重要 first, then the newest.
    pub topics: Vec<HomeTopic>,
}

/// A topic with something unread, on the home page.
#[derive(SimpleObject)]
pub struct HomeTopic {
    pub topic_id: ID,
    pub title: String,
    pub unread: i32,
    /// Of those, marked 重要.
    pub important: i32,
    pub last_comment_at: DateTime<Utc>,
}

/// The home page after sign-in.
#[derive(SimpleObject)]
pub struct Home {
    /// Groups with unread comments: those with 重要 unread first, then patient groups, then by
    /// newest unread comment.
    pub groups: Vec<HomeGroup>,
    pub counts: UnreadCounts,
    /// Group invitations waiting for the viewer's answer.
    pub invitations: i32,
}

#[derive(Default)]
pub struct SnsQuery;

#[Object]
impl SnsQuery {
    /// Every group of mine in every association, with invitations and requests waiting first,
    /// then patient groups, then the most recently active. No routing needed.
    async fn my_groups(&self, ctx: &Context<'_>) -> async_graphql::Result<Vec<MyGroup>> {
        let (services, viewer) = signed_in(ctx)?;
        let groups = services.my_groups(viewer).await.gql(ctx)?;
        Ok(groups
            .into_iter()
            .map(|g| MyGroup {
                unread: count(g.unread),
                group: group_out(g.group, &g.association_slug),
                association_name: g.association_name,
            })
            .collect())
    }

    /// What is unread across every association I belong to, one entry per group with its
    /// counts, headline and topics. No routing needed; reading it leaves no footprint. Its cost
    /// does not grow with the number of unread comments.
    async fn home(&self, ctx: &Context<'_>) -> async_graphql::Result<Home> {
        let (services, viewer) = signed_in(ctx)?;
        let home = services.home(viewer).await.gql(ctx)?;
        Ok(Home {
            groups: home
                .groups
                .into_iter()
                .map(|g| HomeGroup {
                    association_slug: g.association_slug,
                    association_name: g.association_name,
                    group_id: id(g.group_id),
                    group_name: g.group_name,
                    kind: if g.patient {
                        GroupKind::Patient
                    } else {
                        GroupKind::General
                    },
                    unread: count(g.unread),
                    important: count(g.important),
                    unread_topics: count(g.unread_topics),
                    topics: g
                        .topics
                        .into_iter()
                        .map(|t| HomeTopic {
                            topic_id: id(t.topic_id),
                            title: t.title,
                            unread: count(t.unread),
                            important: count(t.important),
                            last_comment_at: t.last_at,
                        })
                        .collect(),
                    items: g
                        .headline
                        .into_iter()
                        .map(|i| HomeItem {
                            topic_id: id(i.topic_id),
                            topic_title: i.topic_title,
                            comment_id: id(i.comment_id),
                            seq: i.seq,
                            author_name: i.author_name,
                            excerpt: i.excerpt,
                            important: i.important,
                            created_at: i.created_at,
                        })
                        .collect(),
                })
                .collect(),
            counts: home.counts.into(),
            invitations: count(home.invitations as i64),
        })
    }

    /// My unread counts (for badges). No routing needed.
    async fn unread_counts(&self, ctx: &Context<'_>) -> async_graphql::Result<UnreadCounts> {
        let (services, viewer) = signed_in(ctx)?;
        Ok(services.unread_counts(viewer).await.gql(ctx)?.into())
    }

    /// A group's page (routed to its host association): active members only; anyone else gets
    /// `NOT_FOUND`. Opening a patient group is audited.
    async fn group(&self, ctx: &Context<'_>, id: ID) -> async_graphql::Result<GroupPage> {
        let (services, actor) = routed(ctx)?;
        let group_id = uuid(ctx, &id)?;
        let view = services.group_view(&actor, group_id).await.gql(ctx)?;
        let unread = count(view.unread());
        Ok(GroupPage {
            my_role: view.my_role.map_or(GroupRole::Member, GroupRole::from),
            group: group_out(view.group, &view.tenant.slug),
            members: view.members.into_iter().map(member_out).collect(),
            topics: view.topics.into_iter().map(topic_out).collect(),
            unread,
        })
    }

    /// What I may know of a group before joining it (routed): only one I am invited to, have
    /// asked to join, or that accepts requests from my association. Otherwise `NOT_FOUND`.
    async fn group_preview(&self, ctx: &Context<'_>, id: ID) -> async_graphql::Result<Group> {
        let (services, actor) = routed(ctx)?;
        let group_id = uuid(ctx, &id)?;
        let row = services.group_invitation(&actor, group_id).await.gql(ctx)?;
        Ok(group_out(row, &actor.tenant().slug))
    }

    /// People I may invite to a group (owners; routed to its host): the active members of the
    /// associations I am an active member of and of their neighbouring associations, whose
    /// name, reading or facility contains `search` (ignoring width, kana kind and spaces) or
    /// whose profession it names (「ケアマネ」, 「訪問看護」); empty lists everyone; by kana, at
    /// most `first` (1–50). Anyone else with an account is not listed, and cannot be invited
    /// by id.
    async fn group_invite_candidates(
        &self,
        ctx: &Context<'_>,
        group_id: ID,
        #[graphql(default)] search: String,
        #[graphql(default = 20)] first: i32,
    ) -> async_graphql::Result<Vec<InviteCandidate>> {
        let (services, actor) = routed(ctx)?;
        let group_id = uuid(ctx, &group_id)?;
        let rows = services
            .group_invite_candidates(&actor, group_id, &search, i64::from(first))
            .await
            .gql(ctx)?;
        Ok(rows.into_iter().map(candidate_out).collect())
    }

    /// Facilities of my directory (see `groupInviteCandidates`) whose name contains `search`
    /// and who have someone not yet in the group, to invite a whole team; at most `first`
    /// (1–20).
    async fn group_facility_candidates(
        &self,
        ctx: &Context<'_>,
        group_id: ID,
        search: Option<String>,
        first: Option<i32>,
    ) -> async_graphql::Result<Vec<FacilityCandidate>> {
        let (services, actor) = routed(ctx)?;
        let group_id = uuid(ctx, &group_id)?;
        let rows = services
            .group_facility_candidates(
                &actor,
                group_id,
                search.as_deref().unwrap_or(""),
                i64::from(first.unwrap_or(10)),
            )
            .await
            .gql(ctx)?;
        Ok(rows.into_iter().map(facility_candidate_out).collect())
    }

    /// General groups of the routed association that accept requests to join.
    async fn open_groups(&self, ctx: &Context<'_>) -> async_graphql::Result<Vec<Group>> {
        let (services, actor) = routed(ctx)?;
        let rows = services.open_groups(&actor).await.gql(ctx)?;
        Ok(rows
            .into_iter()
            .map(|g| group_out(g, &actor.tenant().slug))
            .collect())
    }

    /// Everyone who read (or confirmed) one comment of a topic (routed), oldest first; empty
    /// when the group's receipts are off. `NOT_FOUND` as for the topic itself, or when the
    /// comment is not in it.
    async fn comment_readers(
        &self,
        ctx: &Context<'_>,
        topic_id: ID,
        comment_id: ID,
    ) -> async_graphql::Result<Vec<Reader>> {
        let (services, actor) = routed(ctx)?;
        let topic_id = uuid(ctx, &topic_id)?;
        let comment_id = uuid(ctx, &comment_id)?;
        let view = services
            .comment_readers(&actor, topic_id, comment_id)
            .await
            .gql(ctx)?;
        Ok(view.readers.into_iter().map(reader_out).collect())
    }

    /// Opens a topic (routed): its comments with readers, history and who has not read mine.
    /// Opening is reading: with `markRead` (the default) every comment I had not read gets my
    /// footprint with the time (in footprint mode) and my unread count for the topic is
    /// cleared. Pass `markRead: false` to look without leaving footprints (e.g. a refresh after
    /// a live event). Someone outside the topic's scope or group gets `NOT_FOUND`, exactly as
    /// for a topic that does not exist. Reading a patient group's topic is audited.
    ///
    /// The answer holds the newest 20 comments and everything from the first unread one on;
    /// `fromSeq` asks for the comments from that number on too (1: all, up to the latest 500).
    /// Footprints go only on comments the answer holds.
    async fn topic(
        &self,
        ctx: &Context<'_>,
        id: ID,
        #[graphql(default = true)] mark_read: bool,
        from_seq: Option<i32>,
    ) -> async_graphql::Result<TopicPage> {
        let (services, actor) = routed(ctx)?;
        let topic_id = uuid(ctx, &id)?;
        let reading = if mark_read {
            topics::Reading::Page
        } else {
            topics::Reading::Look
        };
        let window = match from_seq {
            None => topics::Window::Recent,
            Some(seq) if seq >= 1 => topics::Window::From(seq),
            Some(_) => {
                return Err(AppError::invalid("fromSeq", "fromSeq counts from 1")).gql(ctx);
            }
        };
        // The member list only when the audience is asked for (or "not read by" on my own
        // comments needs it); otherwise the readers' names come from a cheaper lookup.
        let audience = if ctx.look_ahead().field("audience").exists() {
            topics::Audience::Listed
        } else {
            topics::Audience::IfMine
        };
        let view = services
            .read_topic_with(&actor, topic_id, reading, window, audience)
            .await
            .gql(ctx)?;
        Ok(TopicPage {
            topic: topic_out(view.topic),
            group_name: view.group_name,
            group_kind: view.group_kind.into(),
            receipt_mode: view.receipt_mode.into(),
            my_role: view.my_role.into(),
            can_manage: view.can_manage,
            comments: view
                .comments
                .into_iter()
                .map(|c| comment_out(c, &view.tenant.slug))
                .collect(),
            audience: view.audience.into_iter().map(member_out).collect(),
            first_unread_seq: view.first_unread_seq,
            earlier_comments: view.earlier,
        })
    }
}

#[derive(Default)]
pub struct SnsMutation;

#[Object]
impl SnsMutation {
    /// Creates a group hosted by the routed association; I become its owner. `receiptMode`
    /// null follows the association's default. Patient groups are by invitation only.
    async fn create_group(
        &self,
        ctx: &Context<'_>,
        kind: GroupKind,
        name: String,
        #[graphql(default)] description: String,
        #[graphql(default = false)] accepts_requests: bool,
        receipt_mode: Option<ReceiptMode>,
    ) -> async_graphql::Result<Group> {
        let (services, actor) = routed(ctx)?;
        let input = GroupInput {
            name,
            description,
            accepts_requests,
            receipt_mode: receipt_mode.map(Into::into),
        };
        let group_id = services
            .create_group(&actor, kind.into(), &input)
            .await
            .gql(ctx)?;
        let row = services.group_invitation(&actor, group_id).await.gql(ctx)?;
        Ok(group_out(row, &actor.tenant().slug))
    }

    /// Changes a group (owners). Omitted arguments keep their value; `receiptMode: null`
    /// returns to the association's default.
    async fn update_group(
        &self,
        ctx: &Context<'_>,
        id: ID,
        name: Option<String>,
        description: Option<String>,
        accepts_requests: Option<bool>,
        receipt_mode: MaybeUndefined<ReceiptMode>,
    ) -> async_graphql::Result<Group> {
        let (services, actor) = routed(ctx)?;
        let group_id = uuid(ctx, &id)?;
        let patch = GroupPatch {
            name,
            description,
            accepts_requests,
            receipt_mode: match receipt_mode {
                MaybeUndefined::Undefined => None,
                MaybeUndefined::Null => Some(None),
                MaybeUndefined::Value(m) => Some(Some(m.into())),
            },
        };
        services
            .update_group(&actor, group_id, &patch)
            .await
            .gql(ctx)?;
        let row = services.group_invitation(&actor, group_id).await.gql(ctx)?;
        Ok(group_out(row, &actor.tenant().slug))
    }

    /// Invites a person picked from `groupInviteCandidates` (owners); they join when they
    /// accept. Someone I may not see there is `NOT_FOUND`; a member already, `CONFLICT`.
    async fn invite_to_group(
        &self,
        ctx: &Context<'_>,
        group_id: ID,
        user_id: ID,
    ) -> async_graphql::Result<bool> {
        let (services, actor) = routed(ctx)?;
        let group_id = uuid(ctx, &group_id)?;
        let user_id = uuid(ctx, &user_id)?;
        services
            .invite_to_group(&actor, group_id, user_id)
            .await
            .gql(ctx)?;
        Ok(true)
    }

    /// Sets when someone's membership ends by itself (owners): a substitute for two weeks, a
    /// student on placement. Within a minute of `until` the membership is removed and
    /// recorded. `until: null` clears it. A group's only owner cannot be given an end.
    async fn set_group_member_until(
        &self,
        ctx: &Context<'_>,
        group_id: ID,
        user_id: ID,
        until: Option<DateTime<Utc>>,
    ) -> async_graphql::Result<bool> {
        let (services, actor) = routed(ctx)?;
        let group_id = uuid(ctx, &group_id)?;
        let user_id = uuid(ctx, &user_id)?;
        services
            .set_group_member_until(&actor, group_id, user_id, until)
            .await
            .gql(ctx)?;
        Ok(true)
    }

    /// Invites everyone of one facility of my directory (owners; see
    /// `groupFacilityCandidates`): a station's whole team in one step. People already in the group are left as they are; returns how many
    /// were invited. The patient's consent rule applies (`CONSENT_REQUIRED`).
    async fn invite_facility_to_group(
        &self,
        ctx: &Context<'_>,
        group_id: ID,
        facility_id: ID,
    ) -> async_graphql::Result<i32> {
        let (services, actor) = routed(ctx)?;
        let group_id = uuid(ctx, &group_id)?;
        let facility_id = uuid(ctx, &facility_id)?;
        let n = services
            .invite_facility(&actor, group_id, facility_id)
            .await
            .gql(ctx)?;
        Ok(i32::try_from(n).unwrap_or(i32::MAX))
    }

    /// Invites an e-mail address (owners). Always answers `true` for a well-formed address,
    /// whether or not it has a Musubi account: if it has one, that person finds the invitation
    /// on their home page and appears among the members once they accept.
    async fn invite_to_group_by_email(
        &self,
        ctx: &Context<'_>,
        group_id: ID,
        email: String,
    ) -> async_graphql::Result<bool> {
        let (services, actor) = routed(ctx)?;
        let group_id = uuid(ctx, &group_id)?;
        services
            .invite_to_group_by_email(&actor, group_id, &email)
            .await
            .gql(ctx)?;
        Ok(true)
    }

    /// Invites someone who has no Musubi account yet to a group (owners), in person: the
    /// answer carries a link and its QR code (7 days, used once) to hand over. Accepting it
    /// registers them in the group's association as a member and makes them a member of the
    /// group; with an account they sign in instead and join the group. Under the patient's
    /// consent rule (`CONSENT_REQUIRED`).
    async fn invite_new_person_to_group(
        &self,
        ctx: &Context<'_>,
        group_id: ID,
    ) -> async_graphql::Result<crate::invitations::Invitation> {
        let (services, actor) = routed(ctx)?;
        let group_id = uuid(ctx, &group_id)?;
        let created = services
            .invite_new_person_to_group(&actor, group_id)
            .await
            .gql(ctx)?
            .created;
        let mut out = crate::invitations::Invitation::from(created.invitation);
        out.link = created.link;
        out.qr_svg = created.qr_svg;
        Ok(out)
    }

    /// Accepts (or declines) my invitation to a group.
    async fn answer_group_invitation(
        &self,
        ctx: &Context<'_>,
        group_id: ID,
        accept: bool,
    ) -> async_graphql::Result<bool> {
        let (services, actor) = routed(ctx)?;
        let group_id = uuid(ctx, &group_id)?;
        services
            .answer_group_invitation(&actor, group_id, accept)
            .await
            .gql(ctx)?;
        Ok(true)
    }

    /// Asks to join a general group of my association that accepts requests.
    async fn request_to_join_group(
        &self,
        ctx: &Context<'_>,
        group_id: ID,
    ) -> async_graphql::Result<bool> {
        let (services, actor) = routed(ctx)?;
        let group_id = uuid(ctx, &group_id)?;
        services.request_to_join(&actor, group_id).await.gql(ctx)?;
        Ok(true)
    }

    /// Approves (or refuses) a request to join (owners).
    async fn answer_join_request(
        &self,
        ctx: &Context<'_>,
        group_id: ID,
        user_id: ID,
        approve: bool,
    ) -> async_graphql::Result<bool> {
        let (services, actor) = routed(ctx)?;
        let group_id = uuid(ctx, &group_id)?;
        let user_id = uuid(ctx, &user_id)?;
        services
            .answer_join_request(&actor, group_id, user_id, approve)
            .await
            .gql(ctx)?;
        Ok(true)
    }

    /// Removes a member (owners), or leaves the group (my own id). A group keeps an owner.
    async fn remove_group_member(
        &self,
        ctx: &Context<'_>,
        group_id: ID,
        user_id: ID,
    ) -> async_graphql::Result<bool> {
        let (services, actor) = routed(ctx)?;
        let group_id = uuid(ctx, &group_id)?;
        let user_id = uuid(ctx, &user_id)?;
        services
            .remove_group_member(&actor, group_id, user_id)
            .await
            .gql(ctx)?;
        Ok(true)
    }

    /// Removes several people at once (owners; 1–100, not myself): all or nothing — if one of
    /// them is not in the group (`NOT_FOUND`) or no active owner would be left (`LAST_OWNER`),
    /// nobody is removed. Returns how many were.
    async fn remove_group_members(
        &self,
        ctx: &Context<'_>,
        group_id: ID,
        user_ids: Vec<ID>,
    ) -> async_graphql::Result<i32> {
        let (services, actor) = routed(ctx)?;
        let group_id = uuid(ctx, &group_id)?;
        if user_ids.len() > musubi_domain::groups::MAX_BULK_REMOVE {
            return Err(musubi_domain::AppError::invalid(
                "userIds",
                "too many people at once",
            ))
            .gql(ctx);
        }
        let mut ids = Vec::with_capacity(user_ids.len());
        for u in &user_ids {
            ids.push(uuid(ctx, u)?);
        }
        let n = services
            .remove_group_members(&actor, group_id, &ids)
            .await
            .gql(ctx)?;
        Ok(i32::try_from(n).unwrap_or(i32::MAX))
    }

    /// Makes a member an owner or an owner a member (owners). A group keeps an owner.
    async fn set_group_role(
        &self,
        ctx: &Context<'_>,
        group_id: ID,
        user_id: ID,
        role: GroupRole,
    ) -> async_graphql::Result<bool> {
        let (services, actor) = routed(ctx)?;
        let group_id = uuid(ctx, &group_id)?;
        let user_id = uuid(ctx, &user_id)?;
        services
            .set_group_role(&actor, group_id, user_id, role.into())
            .await
            .gql(ctx)?;
        Ok(true)
    }

    /// Posts a topic; returns its id. `scope` omitted, null or empty: everyone in the group.
    /// `attachmentIds`: my uploads for it (`POST /api/a/{slug}/groups/{id}/attachments`), at
    /// most 10, seen from now on by whoever sees the topic; with them the body may be empty.
    /// One that is not my waiting upload in this group: `INVALID_INPUT` on `attachments`, and
    /// nothing is posted.
    #[allow(clippy::too_many_arguments)] // one per argument of the GraphQL field
    async fn create_topic(
        &self,
        ctx: &Context<'_>,
        group_id: ID,
        title: String,
        body: String,
        scope: Option<Vec<ProfessionClass>>,
        #[graphql(default = false)] important: bool,
        attachment_ids: Option<Vec<ID>>,
    ) -> async_graphql::Result<ID> {
        let (services, actor) = routed(ctx)?;
        let group_id = uuid(ctx, &group_id)?;
        let scope = scope_in(&scope.unwrap_or_default()).gql(ctx)?;
        let attachments = attachments_in(&attachment_ids.unwrap_or_default()).gql(ctx)?;
        let topic = services
            .create_topic_with(
                &actor,
                &NewTopic {
                    group_id,
                    title: &title,
                    body: &body,
                    scope,
                    important,
                },
                &attachments,
            )
            .await
            .gql(ctx)?;
        Ok(id(topic))
    }

    /// Changes a topic's title, scope, pin or closed state (its author or a group owner).
    /// Omitted arguments keep their value; an empty `scope` means everyone in the group.
    async fn update_topic(
        &self,
        ctx: &Context<'_>,
        id: ID,
        title: Option<String>,
        scope: Option<Vec<ProfessionClass>>,
        pinned: Option<bool>,
        closed: Option<bool>,
    ) -> async_graphql::Result<bool> {
        let (services, actor) = routed(ctx)?;
        let topic_id = uuid(ctx, &id)?;
        let scope = match scope {
            Some(s) => Some(scope_in(&s).gql(ctx)?),
            None => None,
        };
        let patch = TopicPatch {
            title,
            scope,
            pinned,
            closed,
        };
        services
            .update_topic(&actor, topic_id, &patch)
            .await
            .gql(ctx)?;
        Ok(true)
    }

    /// Replies in a topic; returns the comment's id. `TOPIC_CLOSED` on a closed topic.
    /// `attachmentIds` as for `createTopic`.
    async fn post_comment(
        &self,
        ctx: &Context<'_>,
        topic_id: ID,
        body: String,
        #[graphql(default = false)] important: bool,
        attachment_ids: Option<Vec<ID>>,
    ) -> async_graphql::Result<ID> {
        let (services, actor) = routed(ctx)?;
        let topic_id = uuid(ctx, &topic_id)?;
        let attachments = attachments_in(&attachment_ids.unwrap_or_default()).gql(ctx)?;
        let comment = services
            .post_comment_with(&actor, topic_id, &body, important, &attachments)
            .await
            .gql(ctx)?;
        Ok(id(comment))
    }

    /// Changes my comment's text and flag; the earlier text stays visible as history.
    async fn edit_comment(
        &self,
        ctx: &Context<'_>,
        id: ID,
        body: String,
        important: bool,
    ) -> async_graphql::Result<bool> {
        let (services, actor) = routed(ctx)?;
        let comment_id = uuid(ctx, &id)?;
        services
            .edit_comment(&actor, comment_id, &body, important)
            .await
            .gql(ctx)?;
        Ok(true)
    }

    /// Deletes a comment (its author or a group owner): it stays in place marked deleted.
    async fn delete_comment(&self, ctx: &Context<'_>, id: ID) -> async_graphql::Result<bool> {
        let (services, actor) = routed(ctx)?;
        let comment_id = uuid(ctx, &id)?;
        services.delete_comment(&actor, comment_id).await.gql(ctx)?;
        Ok(true)
    }

    /// 「確認しました」 on a comment, in groups whose receipt mode is acknowledgement.
    async fn acknowledge_comment(&self, ctx: &Context<'_>, id: ID) -> async_graphql::Result<bool> {
        let (services, actor) = routed(ctx)?;
        let comment_id = uuid(ctx, &id)?;
        services
            .acknowledge_comment(&actor, comment_id)
            .await
            .gql(ctx)?;
        Ok(true)
    }

    /// The comments numbered `seqs` of a topic (routed) have been on my screen: they get my
    /// footprint (in footprint mode) and leave my unread count, as `topic(markRead: false)`
    /// followed by this does for an app that knows what it showed. Numbers of my own, deleted
    /// or missing comments are ignored; more than 500 is `INVALID_INPUT`.
    async fn mark_seen(
        &self,
        ctx: &Context<'_>,
        topic_id: ID,
        seqs: Vec<i32>,
    ) -> async_graphql::Result<bool> {
        let (services, actor) = routed(ctx)?;
        let topic_id = uuid(ctx, &topic_id)?;
        services.mark_seen(&actor, topic_id, &seqs).await.gql(ctx)?;
        Ok(true)
    }

    /// "Mark all as read" for a group: clears my unread counts there without leaving
    /// footprints. Returns the number of topics cleared.
    async fn mark_group_read(&self, ctx: &Context<'_>, group_id: ID) -> async_graphql::Result<i32> {
        let (services, actor) = routed(ctx)?;
        let group_id = uuid(ctx, &group_id)?;
        let n = services.mark_group_read(&actor, group_id).await.gql(ctx)?;
        Ok(count(i64::try_from(n).unwrap_or(i64::MAX)))
    }
}
