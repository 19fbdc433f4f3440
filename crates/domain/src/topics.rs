//! Topics: posting one (title, scope and its body), opening it (footprints (足跡), the unread
//! counter cleared, a patient group's read audited) and changing its settings. Replies are in
//! [`crate::comments`], what is new for a person in [`crate::unread`].
//!
//! A topic's body is its comment number 1, so footprints and unread work the same for both.
//! Visibility: a topic is seen by the active members of its group whose profession class is in
//! its scope, and by its author. Everyone else gets "not found", whatever they ask.

use crate::audit::AuditAction;
use crate::change::{Change, EventSpec};
use crate::groups::{active_role, topic_visible, GroupKind, ReceiptMode, Scope};
use crate::types::PersonId;
use crate::types::{CommentId, GroupId, TopicId};
use crate::Actor;
use crate::{text, AppError, AppResult, Services, Tenant};
use musubi_authz::{Action, GroupRole, Object};
use musubi_db::groups::{
    self as repo, CommentRow, GroupMemberRow, HostedGroup, ReaderRow, TopicRow, VersionRow,
};
use musubi_db::types::GroupMemberStatus;
use musubi_realtime::EventKind;
use sqlx::PgConnection;
use std::collections::HashMap;

pub const MAX_TITLE_CHARS: usize = 200;
pub const MAX_COMMENT_CHARS: usize = 10_000;
/// Most comments a topic page shows (the latest).
pub const TOPIC_PAGE_COMMENTS: i64 = 500;
/// Comments a topic opens with when nothing earlier is unread: the newest, about a phone's
/// few screens; earlier ones come when asked for ([`Window`]). A topic of hundreds of visit
/// notes is not sent whole to read the last three.
pub const RECENT_COMMENTS: i32 = 20;

/// Which comments a topic view holds. Whatever is asked, it holds the newest
/// [`RECENT_COMMENTS`] and everything from the first unread comment on (up to
/// [`TOPIC_PAGE_COMMENTS`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Window {
    /// Just that.
    Recent,
    /// From this comment number on, too (earlier comments, asked for).
    From(i32),
    /// Every comment (a search result or a link to one comment, which may be anywhere).
    All,
}

impl Window {
    /// The first comment number shown, given the topic's last and the first unread.
    fn start(self, last_seq: i32, first_unread: Option<i32>) -> i32 {
        let asked = match self {
            Window::Recent => i32::MAX,
            Window::From(seq) => seq,
            Window::All => 1,
        };
        asked
            .min(last_seq.saturating_sub(RECENT_COMMENTS - 1))
            .min(first_unread.unwrap_or(i32::MAX))
            .max(1)
    }
}
/// Readers shown with each comment of a topic page; the rest are asked for one comment at a
/// time ([`Services::comment_readers`]). The viewer's own comments come with all of theirs.
pub const READER_PREVIEW: i64 = 5;

fn check_title(title: &str) -> AppResult<String> {
    text::line("title", title, MAX_TITLE_CHARS)
}

pub(crate) fn check_body(body: &str) -> AppResult<String> {
    text::lines("body", body, MAX_COMMENT_CHARS)
}

/// What a comment with attachments says when nothing was typed: a photo alone is a reply.
pub const ATTACHMENTS_ONLY: &str = "📎";

/// [`check_body`], allowing an empty text when files come with it.
pub(crate) fn check_body_with(body: &str, with_files: bool) -> AppResult<String> {
    if with_files && body.trim().is_empty() {
        return Ok(ATTACHMENTS_ONLY.to_owned());
    }
    check_body(body)
}

/// One comment as a topic page shows it.
#[derive(Debug, Clone)]
pub struct CommentView {
    pub row: CommentRow,
    /// Footprints, or acknowledgements in that mode, oldest first: the first
    /// [`READER_PREVIEW`], or all on the viewer's own comments. Empty when receipts are off.
    pub readers: Vec<ReaderRow>,
    /// How many read (or confirmed) it in all.
    pub reader_count: usize,
    /// For the viewer's own comments: members in scope who have not read (or confirmed) yet.
    pub not_read_by: Vec<(PersonId, String)>,
    /// Earlier versions, oldest first (empty for a deleted comment).
    pub history: Vec<VersionRow>,
    pub mine: bool,
    pub acknowledged_by_me: bool,
    /// Its attachments, in the order they were uploaded (none on a deleted comment).
    pub files: Vec<musubi_db::files::FileRow>,
}

impl CommentView {
    pub fn is_deleted(&self) -> bool {
        self.row.deleted_at.is_some()
    }
}

#[derive(Debug, Clone)]
pub struct TopicView {
    pub tenant: Tenant,
    pub topic: TopicRow,
    pub group_name: String,
    pub group_kind: GroupKind,
    pub receipt_mode: ReceiptMode,
    pub my_role: GroupRole,
    /// The author or a group owner: may change scope, pin and close.
    pub can_manage: bool,
    pub comments: Vec<CommentView>,
    /// Active members in scope (who can see the topic); empty with [`Audience::IfMine`] and
    /// none of the viewer's comments on the page.
    pub audience: Vec<GroupMemberRow>,
    /// The first comment that was unread when the page was opened.
    pub first_unread_seq: Option<i32>,
    /// With [`Reading::OnScreen`]: the comments shown that the viewer has not read yet, for the
    /// page to report when they have been on screen ([`Services::mark_seen`]).
    pub unseen_seqs: Vec<i32>,
    /// A conversation of direct messages between two people (it stays so).
    pub pair: bool,
    /// Comments before the first one shown ([`Window`]): 0 when the view holds them all.
    pub earlier: i32,
}

/// What opening a topic counts as read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reading {
    /// Nothing: a look (a refresh, an API client that marks reading itself).
    Look,
    /// Everything the page shows (a page without script: it showed them all).
    Page,
    /// Only what the page reports later as having been on screen ([`Services::mark_seen`]).
    OnScreen,
}

/// Whether a topic view lists its audience ([`TopicView::audience`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Audience {
    /// Always (a page that shows who can see the topic).
    Listed,
    /// Only when the page holds the viewer's own comments, whose "not read by" needs it: a
    /// client that did not ask for the audience gets its readers named by a lookup of the
    /// distinct readers instead of the member list (each member's memberships and facility).
    IfMine,
}

/// Most comments one report of what was on screen may name.
pub const MAX_SEEN_PER_CALL: usize = 500;

/// One comment's readers in full.
#[derive(Debug, Clone)]
pub struct CommentReaders {
    pub tenant: Tenant,
    pub topic: TopicRow,
    pub group_name: String,
    pub receipt_mode: ReceiptMode,
    /// The comment (its body is not for this page: it is on the topic's).
    pub comment: CommentRow,
    pub readers: Vec<ReaderRow>,
}

#[derive(Debug, Clone)]
pub struct TopicPatch {
    pub title: Option<String>,
    pub scope: Option<Scope>,
    pub pinned: Option<bool>,
    pub closed: Option<bool>,
}

impl Change<'_> {
    /// Loads a topic the viewer may see (active member of its group, class in scope or author)
    /// and checks `action` on `object` there.
    pub(crate) async fn visible_topic(
        &mut self,
        topic_id: TopicId,
        object: Object,
        action: Action,
    ) -> AppResult<(HostedGroup, repo::TopicAccessRow)> {
        let viewer = self.viewer()?;
        let tenant = self.tenant();
        let (group, access) = repo::topic_access(self.conn(), tenant, viewer.user.id, topic_id)
            .await?
            .ok_or_else(AppError::not_found)?;
        self.about_topic(&access.group_name, &access.topic.title);
        self.authorize(&group, access.my_role, object, action)
            .await?;
        if !topic_visible(viewer, access.topic.scope, access.topic.author_id) {
            // Outside the scope: exactly like a missing topic, but on record.
            let entry = self
                .entry(AuditAction::AccessDenied)
                .on("topic", topic_id)
                .with_detail("reason", "scope");
            self.refuse(entry).await;
            return Err(AppError::not_found());
        }
        Ok((group, access))
    }
}

/// A new topic: its title, scope and first comment (the body).
#[derive(Debug, Clone)]
pub struct NewTopic<'a> {
    pub group_id: GroupId,
    pub title: &'a str,
    pub body: &'a str,
    pub scope: Scope,
    pub important: bool,
}

impl Services {
    /// Posts a topic: its title, scope and first comment (the body).
    pub async fn create_topic(&self, actor: &Actor<'_>, new: &NewTopic<'_>) -> AppResult<TopicId> {
        self.create_topic_with(actor, new, &[]).await
    }

    /// Posts a topic whose body has attachments (see [`Services::post_comment_with`]).
    pub async fn create_topic_with(
        &self,
        actor: &Actor<'_>,
        new: &NewTopic<'_>,
        attachments: &[uuid::Uuid],
    ) -> AppResult<TopicId> {
        let title = check_title(new.title)?;
        let body = check_body_with(new.body, !attachments.is_empty())?;
        let scope = new.scope;
        let me = actor.viewer.user.id;
        let mut c = self.change(actor).await?;
        let (hosted, group) = repo::group(c.conn(), actor.tenant, me, new.group_id)
            .await?
            .ok_or_else(AppError::not_found)?;
        c.about_group(&group.name);
        c.authorize(&hosted, active_role(&group), Object::Topics, Action::Create)
            .await?;
        if group.archived_at.is_some() {
            return Err(AppError::archived());
        }
        let topic_id = TopicId::generate();
        let topic = repo::NewTopic {
            id: topic_id,
            author_id: me,
            title: &title,
            scope,
        };
        repo::insert_topic(c.conn(), &hosted, &topic).await?;
        let (comment_id, seq, at) =
            repo::insert_comment(c.conn(), topic_id, &hosted, me, &body, new.important).await?;
        crate::files::attach(&mut c, attachments, new.group_id, topic_id, comment_id).await?;
        let posted = repo::Posted {
            topic_id,
            topic_author: me,
            scope,
            author_id: me,
            seq,
            at,
            important: new.important,
        };
        repo::spread_unread(c.conn(), &hosted, &posted).await?;
        let event = EventSpec::topic(EventKind::CommentPosted, topic_id, scope, me);
        c.event(&hosted, event.comments(vec![comment_id])).await?;
        c.about_topic(&group.name, &title);
        let entry = c
            .entry(AuditAction::TopicCreate)
            .on("topic", topic_id)
            .with_detail("group_id", new.group_id.to_string())
            .with_detail("scope", i64::from(scope.bits()));
        c.audit(entry);
        c.commit().await?;
        Ok(topic_id)
    }

    /// Opens a topic: its comments with readers, history and who has not read the viewer's own.
    /// With `record`, what was unread becomes read: footprints are written (in footprint mode)
    /// and the unread counter is cleared. One audit record for a patient group's topic.
    pub async fn open_topic(
        &self,
        actor: &Actor<'_>,
        topic_id: TopicId,
        record_read: bool,
    ) -> AppResult<TopicView> {
        let reading = if record_read {
            Reading::Page
        } else {
            Reading::Look
        };
        self.read_topic(actor, topic_id, reading, Window::All).await
    }

    /// Opens a topic, counting as read what `reading` says (see [`Services::open_topic`]) among
    /// the comments `window` holds.
    pub async fn read_topic(
        &self,
        actor: &Actor<'_>,
        topic_id: TopicId,
        reading: Reading,
        window: Window,
    ) -> AppResult<TopicView> {
        self.read_topic_with(actor, topic_id, reading, window, Audience::Listed)
            .await
    }

    /// [`Services::read_topic`], with the audience listed as `audience` says.
    pub async fn read_topic_with(
        &self,
        actor: &Actor<'_>,
        topic_id: TopicId,
        reading: Reading,
        window: Window,
        audience: Audience,
    ) -> AppResult<TopicView> {
        let mut c = self.change(actor).await?;
        let (group, access) = c
            .visible_topic(topic_id, Object::Comments, Action::Read)
            .await?;
        let mode = access.receipt_mode;
        let me = actor.viewer.user.id;
        let mut first_unread_seq = None;
        let mut new_footprints = Vec::new();
        if reading == Reading::OnScreen {
            first_unread_seq = repo::first_unread(c.conn(), me, topic_id).await?;
        }
        let slot = group.plan_slot();
        if reading == Reading::Page && mode == ReceiptMode::Footprints {
            // From the first unread comment; without an unread counter there may still be
            // comments this person never read (they joined later, or came into scope): from
            // the first one shown then.
            let shown_when_all_read = window.start(access.topic.last_seq, None);
            let read = repo::take_unread_and_record_footprints(
                c.conn(),
                slot,
                me,
                topic_id,
                shown_when_all_read,
            )
            .await?;
            first_unread_seq = read.first_unread_seq;
            new_footprints = read.footprints;
        } else if reading == Reading::Page {
            first_unread_seq = repo::take_unread(c.conn(), slot, me, topic_id).await?;
        }
        let start = window.start(access.topic.last_seq, first_unread_seq);
        let rows =
            repo::comments_of_topic(c.conn(), slot, topic_id, start, TOPIC_PAGE_COMMENTS).await?;
        let from_seq = rows.first().map_or(1, |c| c.seq);
        let (counts, mut readers) = match mode {
            ReceiptMode::Off => (Vec::new(), Vec::new()),
            ReceiptMode::Footprints | ReceiptMode::Acknowledgement => {
                let ack = mode == ReceiptMode::Acknowledgement;
                let shown: Vec<CommentId> = rows.iter().map(|r| r.id).collect();
                let mine: Vec<CommentId> = rows
                    .iter()
                    .filter(|r| r.author_id == me)
                    .map(|r| r.id)
                    .collect();
                repo::reader_preview_of_topic(c.conn(), slot, &shown, &mine, ack, READER_PREVIEW)
                    .await?
            }
        };
        let history = if rows.iter().any(|c| c.version > 1) {
            let edited: Vec<CommentId> = rows
                .iter()
                .filter(|r| r.version > 1)
                .map(|r| r.id)
                .collect();
            repo::versions_of_comments(c.conn(), slot, &edited).await?
        } else {
            Vec::new()
        };
        let mine_shown = mode != ReceiptMode::Off
            && rows
                .iter()
                .any(|r| r.author_id == me && r.deleted_at.is_none());
        // Without the member list the readers are named by one lookup of the few distinct
        // people among them (joining each reader row to its person instead cost three times
        // the preview's own time under load).
        let mut audience = if audience == Audience::Listed || mine_shown {
            repo::members(c.conn(), &group).await?
        } else {
            Vec::new()
        };
        name_readers(c.conn(), &mut readers, &audience).await?;
        audience.retain(|m| {
            m.status == GroupMemberStatus::Active
                && (m.scope_bit.intersects(access.topic.scope)
                    || m.user_id == access.topic.author_id)
        });
        let (scope, author) = (access.topic.scope, access.topic.author_id);
        // Both events of a page, in one statement: footprints first, then the cleared counter.
        let mut events = Vec::new();
        if !new_footprints.is_empty() {
            let ids: Vec<CommentId> = new_footprints.iter().map(|(id, _)| *id).collect();
            let event = EventSpec::topic(EventKind::FootprintAdded, topic_id, scope, author);
            events.push(event.comments(ids));
        }
        let unseen_seqs = match (reading, mode) {
            (Reading::OnScreen, ReceiptMode::Footprints) => {
                repo::unseen_among(c.conn(), me, topic_id, from_seq).await?
            }
            (Reading::OnScreen, _) => match first_unread_seq {
                Some(first) => rows
                    .iter()
                    .filter(|r| r.seq >= first && r.author_id != me && r.deleted_at.is_none())
                    .map(|r| r.seq)
                    .collect(),
                None => Vec::new(),
            },
            _ => Vec::new(),
        };
        let cleared = reading == Reading::Page && first_unread_seq.is_some();
        if cleared {
            let event = EventSpec::topic(EventKind::UnreadChanged, topic_id, scope, author);
            events.push(event.only_for(me));
        }
        if !events.is_empty() {
            c.events(&group, events).await?;
        }
        if access.group_kind == GroupKind::Patient {
            let entry = c
                .entry(AuditAction::TopicRead)
                .on("topic", topic_id)
                .with_detail("group_id", access.topic.group_id.to_string())
                // The comments shown, as docs/audit.md promises: one record for all of them.
                .on_many(rows.iter().map(|c| c.id));
            c.audit(entry);
        }
        let pair = access.group_kind == GroupKind::Direct
            && musubi_db::groups::messages::is_pair(c.conn(), &group).await?;
        let ids: Vec<uuid::Uuid> = rows.iter().map(|r| r.id.into()).collect();
        let mut files_by_comment: HashMap<uuid::Uuid, Vec<musubi_db::files::FileRow>> =
            HashMap::new();
        for f in musubi_db::files::of_comments(c.conn(), slot, &ids).await? {
            if let Some(comment) = f.comment_id {
                files_by_comment.entry(comment).or_default().push(f);
            }
        }
        c.commit().await?;

        // Hundreds of readers on hundreds of comments: group them once, not per comment.
        let mut readers_by_comment: HashMap<CommentId, Vec<ReaderRow>> = HashMap::new();
        for r in readers {
            readers_by_comment.entry(r.comment_id).or_default().push(r);
        }
        let counts: HashMap<CommentId, i64> = counts
            .into_iter()
            .map(|r| (r.comment_id, r.count))
            .collect();
        let comments = rows
            .into_iter()
            .map(|row| {
                let mine = row.author_id == me;
                let deleted = row.deleted_at.is_some();
                let rs: Vec<ReaderRow> = readers_by_comment.remove(&row.id).unwrap_or_default();
                let reader_count = counts
                    .get(&row.id)
                    .map_or(0, |n| usize::try_from(*n).unwrap_or(0));
                let not_read_by = if mine && !deleted && mode != ReceiptMode::Off {
                    audience
                        .iter()
                        .filter(|m| m.user_id != me && !rs.iter().any(|r| r.user_id == m.user_id))
                        .map(|m| (m.user_id, m.name.clone()))
                        .collect()
                } else {
                    Vec::new()
                };
                let acknowledged_by_me =
                    mode == ReceiptMode::Acknowledgement && rs.iter().any(|r| r.user_id == me);
                let history = if deleted {
                    Vec::new()
                } else {
                    history
                        .iter()
                        .filter(|v| v.comment_id == row.id)
                        .cloned()
                        .collect()
                };
                let files = if deleted {
                    Vec::new()
                } else {
                    files_by_comment
                        .remove(&uuid::Uuid::from(row.id))
                        .unwrap_or_default()
                };
                let mut row = row;
                if deleted {
                    // Kept for the audit trail, never shown.
                    row.body = String::new();
                }
                CommentView {
                    files,
                    row,
                    readers: rs,
                    reader_count,
                    not_read_by,
                    history,
                    mine,
                    acknowledged_by_me,
                }
            })
            .collect();
        let my_role = access.my_role.unwrap_or(GroupRole::Member);
        let mut topic = access.topic;
        if cleared {
            topic.unread = 0;
        }
        Ok(TopicView {
            tenant: actor.tenant.clone(),
            can_manage: access.group_kind != GroupKind::Direct
                && (topic.author_id == me || my_role == GroupRole::Owner),
            topic,
            group_name: access.group_name,
            group_kind: access.group_kind,
            receipt_mode: mode,
            my_role,
            comments,
            audience,
            first_unread_seq,
            unseen_seqs,
            pair,
            earlier: from_seq - 1,
        })
    }

    /// Counts the comments numbered `seqs` as read: they have been on the person's screen.
    /// Footprints are recorded on them (in footprint mode) and the unread counter moves past
    /// them (see `settle_unread`). Numbers of comments that are not there, the person's own
    /// and deleted ones are ignored; nothing is audited (opening the topic was).
    pub async fn mark_seen(
        &self,
        actor: &Actor<'_>,
        topic_id: TopicId,
        seqs: &[i32],
    ) -> AppResult<()> {
        if seqs.len() > MAX_SEEN_PER_CALL {
            return Err(AppError::invalid("seqs", "too many comments in one report"));
        }
        let mut seqs: Vec<i32> = seqs.iter().copied().filter(|s| *s > 0).collect();
        seqs.sort_unstable();
        seqs.dedup();
        if seqs.is_empty() {
            return Ok(());
        }
        let mut c = self.change(actor).await?;
        let (group, access) = c
            .visible_topic(topic_id, Object::Comments, Action::Read)
            .await?;
        let me = actor.viewer.user.id;
        let footprints = access.receipt_mode == ReceiptMode::Footprints;
        let new = if footprints {
            repo::record_footprints(c.conn(), group.plan_slot(), me, topic_id, 1, Some(&seqs))
                .await?
        } else {
            Vec::new()
        };
        let changed = repo::settle_unread(c.conn(), me, topic_id, &seqs, footprints).await?;
        let (scope, author) = (access.topic.scope, access.topic.author_id);
        if !new.is_empty() {
            let ids: Vec<CommentId> = new.iter().map(|(id, _)| *id).collect();
            let event = EventSpec::topic(EventKind::FootprintAdded, topic_id, scope, author);
            c.event(&group, event.comments(ids)).await?;
        }
        if changed {
            let event = EventSpec::topic(EventKind::UnreadChanged, topic_id, scope, author);
            c.event(&group, event.only_for(me)).await?;
        }
        c.commit().await
    }

    /// Everyone who read (or confirmed) one comment, oldest first: the list a topic page
    /// shows only the first [`READER_PREVIEW`] of. Same visibility as the topic; a comment of
    /// another topic is "not found".
    pub async fn comment_readers(
        &self,
        actor: &Actor<'_>,
        topic_id: TopicId,
        comment_id: CommentId,
    ) -> AppResult<CommentReaders> {
        let mut c = self.change(actor).await?;
        let (group, access) = c
            .visible_topic(topic_id, Object::Comments, Action::Read)
            .await?;
        let comment = repo::comment(c.conn(), comment_id)
            .await?
            .filter(|r| r.topic_id == topic_id)
            .ok_or_else(AppError::not_found)?;
        let mode = access.receipt_mode;
        let mut readers = match mode {
            ReceiptMode::Off => Vec::new(),
            ReceiptMode::Footprints | ReceiptMode::Acknowledgement => {
                let ack = mode == ReceiptMode::Acknowledgement;
                repo::readers_of_comment(c.conn(), comment_id, ack).await?
            }
        };
        let members = repo::members(c.conn(), &group).await?;
        name_readers(c.conn(), &mut readers, &members).await?;
        c.commit().await?;
        Ok(CommentReaders {
            tenant: actor.tenant.clone(),
            topic: access.topic,
            group_name: access.group_name,
            receipt_mode: mode,
            comment,
            readers,
        })
    }

    /// Changes a topic's title, scope, pin or closed state: its author or a group owner.
    pub async fn update_topic(
        &self,
        actor: &Actor<'_>,
        topic_id: TopicId,
        patch: &TopicPatch,
    ) -> AppResult<()> {
        let mut c = self.change(actor).await?;
        let (group, access) = c
            .visible_topic(topic_id, Object::Topics, Action::Read)
            .await?;
        if access.group_archived {
            return Err(AppError::archived());
        }
        if access.group_kind == GroupKind::Direct {
            // A conversation's one topic is its people's: no title, scope, pin or close.
            return Err(AppError::not_found());
        }
        let t = &access.topic;
        if t.author_id != actor.viewer.user.id {
            c.authorize(&group, access.my_role, Object::Topics, Action::Moderate)
                .await?;
        }
        let title = match &patch.title {
            Some(title) => check_title(title)?,
            None => t.title.clone(),
        };
        let scope = match patch.scope {
            Some(s) => s,
            None => t.scope,
        };
        let pinned = patch.pinned.unwrap_or(t.pinned);
        let closed = patch.closed.unwrap_or(t.closed);
        repo::update_topic(c.conn(), topic_id, &title, scope, pinned, closed).await?;
        if scope != t.scope {
            repo::rebuild_unread(c.conn(), &group, topic_id, t.author_id, t.scope, scope).await?;
        }
        // Announced to the union of old and new scopes: those who lost it drop it from view.
        let event = EventSpec::topic(
            EventKind::TopicChanged,
            topic_id,
            scope.union(t.scope),
            t.author_id,
        );
        c.event(&group, event).await?;
        let entry = c
            .entry(AuditAction::TopicUpdate)
            .on("topic", topic_id)
            .with_detail("scope", i64::from(scope.bits()))
            .with_detail("pinned", pinned)
            .with_detail("closed", closed);
        c.audit(entry);
        c.commit().await
    }
}

/// Fills in readers' names from the group's members, asking the database only for readers who
/// have since left; drops readers whose account no longer exists.
async fn name_readers(
    conn: &mut PgConnection,
    readers: &mut Vec<ReaderRow>,
    members: &[GroupMemberRow],
) -> AppResult<()> {
    let names: HashMap<PersonId, &str> = members
        .iter()
        .map(|m| (m.user_id, m.name.as_str()))
        .collect();
    let mut missing = Vec::new();
    for r in readers.iter_mut() {
        match names.get(&r.user_id) {
            Some(n) => (*n).clone_into(&mut r.name),
            None => missing.push(r.user_id),
        }
    }
    if !missing.is_empty() {
        missing.sort_unstable();
        missing.dedup();
        let found: HashMap<PersonId, String> = repo::user_names(conn, &missing)
            .await?
            .into_iter()
            .collect();
        for r in readers.iter_mut().filter(|r| r.name.is_empty()) {
            if let Some(n) = found.get(&r.user_id) {
                n.clone_into(&mut r.name);
            }
        }
        readers.retain(|r| !r.name.is_empty());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::{Window, RECENT_COMMENTS};

    #[test]
    fn a_window_holds_the_newest_and_everything_unread() {
        let last = 50;
        let newest = last - RECENT_COMMENTS + 1;
        assert_eq!(Window::Recent.start(last, None), newest);
        assert_eq!(
            Window::Recent.start(last, Some(45)),
            newest,
            "unread among the newest"
        );
        assert_eq!(
            Window::Recent.start(last, Some(7)),
            7,
            "from the first unread"
        );
        assert_eq!(Window::From(12).start(last, None), 12);
        assert_eq!(
            Window::From(45).start(last, None),
            newest,
            "never fewer than the newest"
        );
        assert_eq!(Window::From(12).start(last, Some(3)), 3);
        assert_eq!(Window::All.start(last, None), 1);
        // Short topics, and nonsense: from the first comment.
        assert_eq!(Window::Recent.start(5, None), 1);
        assert_eq!(Window::Recent.start(0, None), 1);
        assert_eq!(Window::From(-4).start(last, None), 1);
        assert_eq!(Window::Recent.start(i32::MIN, Some(i32::MIN)), 1);
    }
}
