//! Topics, comments, footprints (足跡), acknowledgements, unread counts and the home page.
//!
//! A topic's body is its comment number 1, so footprints and unread work the same for both.
//! Visibility: a topic is seen by the active members of its group whose profession class is in
//! its scope, and by its author. Everyone else gets "not found", whatever they ask.
//!
//! Unread is kept as counters (`unread` rows per person and topic), updated on every write;
//! counts and the home page read those, never scanning comments.

use crate::audit::{AuditAction, RequestMeta};
use crate::change::{Change, EventSpec};
use crate::groups::{
    active_role, in_scope_bits, topic_visible, viewer_bit, GroupKind, ReceiptMode, Scope,
};
use crate::sessions::Viewer;
use crate::{text, AppError, AppResult, ErrorCode, Services, Tenant};
use chrono::{DateTime, Utc};
use musubi_authz::{Action, GroupRole, Object};
use musubi_db::groups::{
    self as repo, CommentRow, GroupMemberRow, HostedGroup, ReaderRow, TopicRow, VersionRow,
};
use musubi_db::types::GroupMemberStatus;
use musubi_realtime::{Event, EventKind};
use sqlx::PgConnection;
use std::collections::{HashMap, HashSet};
use uuid::Uuid;

pub const MAX_TITLE_CHARS: usize = 200;
pub const MAX_COMMENT_CHARS: usize = 10_000;
/// Most comments a topic page shows (the latest).
pub const TOPIC_PAGE_COMMENTS: i64 = 500;
/// Most unread comments the home page lists, and most of one topic: a summary for a phone.
/// Each group shows how many more are unread and links to them; counts stay exact.
pub const HOME_ITEMS: i64 = 100;
pub const HOME_ITEMS_PER_TOPIC: i64 = 10;

fn check_title(title: &str) -> AppResult<String> {
    text::line("title", title, MAX_TITLE_CHARS)
}

fn check_body(body: &str) -> AppResult<String> {
    text::lines("body", body, MAX_COMMENT_CHARS)
}

/// One comment as a topic page shows it.
#[derive(Debug, Clone)]
pub struct CommentView {
    pub row: CommentRow,
    /// Footprints, or acknowledgements in that mode, oldest first. Empty when receipts are off.
    pub readers: Vec<ReaderRow>,
    /// For the viewer's own comments: members in scope who have not read (or confirmed) yet.
    pub not_read_by: Vec<(Uuid, String)>,
    /// Earlier versions, oldest first (empty for a deleted comment).
    pub history: Vec<VersionRow>,
    pub mine: bool,
    pub acknowledged_by_me: bool,
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
    /// Active members in scope (who can see the topic).
    pub audience: Vec<GroupMemberRow>,
    /// The first comment that was unread when the page was opened.
    pub first_unread_seq: Option<i32>,
}

#[derive(Debug, Clone)]
pub struct TopicPatch {
    pub title: Option<String>,
    pub scope: Option<Scope>,
    pub pinned: Option<bool>,
    pub closed: Option<bool>,
}

/// An unread comment on the home page.
#[derive(Debug, Clone)]
pub struct HomeItem {
    pub topic_id: Uuid,
    pub topic_title: String,
    pub comment_id: Uuid,
    pub seq: i32,
    pub author_name: String,
    pub excerpt: String,
    pub important: bool,
    pub created_at: DateTime<Utc>,
}

#[derive(Debug, Clone)]
pub struct HomeGroup {
    pub association_slug: String,
    pub association_name: String,
    pub group_id: Uuid,
    pub group_name: String,
    pub patient: bool,
    pub unread: i64,
    /// Newest first.
    pub items: Vec<HomeItem>,
}

#[derive(Debug, Clone, Default)]
pub struct UnreadCounts {
    pub total: i64,
    /// (association slug, association name, count)
    pub associations: Vec<(String, String, i64)>,
    /// (association slug, group id, count)
    pub groups: Vec<(String, Uuid, i64)>,
}

/// What a live subscription knows about its viewer: enough to decide, without a query per
/// event, whether an event may reach them. Read again at each periodic check and whenever the
/// viewer's own membership changes (those events reach them whatever their groups).
#[derive(Debug, Clone)]
pub struct LiveState {
    pub alive: bool,
    pub scope_bit: Scope,
    pub groups: HashSet<Uuid>,
    /// The associations hosting those groups (slug, name), by slug: where unread counts live.
    pub hosts: Vec<(String, String)>,
}

impl LiveState {
    /// Whether `event` may reach `viewer_id`: meant for them, or in one of their groups and in
    /// the topic's scope (or their own topic). The same rule as `topic_visible`.
    pub fn may_receive(&self, viewer_id: Uuid, event: &Event) -> bool {
        if let Some(user) = event.user_id {
            if user != viewer_id {
                return false;
            }
            // Membership changes reach the person concerned even when they are not (or no
            // longer) a member.
            if event.kind == EventKind::MembershipChanged {
                return true;
            }
        }
        self.groups.contains(&event.group_id)
            && in_scope_bits(
                event.scope,
                self.scope_bit,
                event.topic_author_id,
                viewer_id,
            )
    }
}

#[derive(Debug, Clone, Default)]
pub struct Home {
    /// Patient groups first, then by newest unread comment.
    pub groups: Vec<HomeGroup>,
    pub counts: UnreadCounts,
    /// How many group invitations wait for the viewer.
    pub invitations: usize,
}

fn excerpt(body: &str) -> String {
    const MAX: usize = 120;
    let one_line: String = body.split_whitespace().collect::<Vec<_>>().join(" ");
    if one_line.chars().count() > MAX {
        let mut s: String = one_line.chars().take(MAX).collect();
        s.push('…');
        s
    } else {
        one_line
    }
}

impl Change<'_> {
    /// Loads a topic the viewer may see (active member of its group, class in scope or author)
    /// and checks `action` on `object` there.
    async fn visible_topic(
        &mut self,
        topic_id: Uuid,
        object: Object,
        action: Action,
    ) -> AppResult<(HostedGroup, repo::TopicAccessRow)> {
        let viewer = self.viewer()?;
        let tenant = self.tenant();
        let (group, access) = repo::topic_access(self.conn(), tenant, viewer.user.id, topic_id)
            .await?
            .ok_or_else(AppError::not_found)?;
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

    /// Loads a comment with its topic's access checked; returns (comment, group, topic access).
    async fn visible_comment(
        &mut self,
        comment_id: Uuid,
    ) -> AppResult<(CommentRow, HostedGroup, repo::TopicAccessRow)> {
        let comment = repo::comment(self.conn(), comment_id)
            .await?
            .ok_or_else(AppError::not_found)?;
        let (group, access) = self
            .visible_topic(comment.topic_id, Object::Comments, Action::Read)
            .await?;
        Ok((comment, group, access))
    }
}

/// A new topic: its title, scope and first comment (the body).
#[derive(Debug, Clone)]
pub struct NewTopic<'a> {
    pub group_id: Uuid,
    pub title: &'a str,
    pub body: &'a str,
    pub scope: Scope,
    pub important: bool,
}

impl Services {
    /// Posts a topic: its title, scope and first comment (the body).
    pub async fn create_topic(
        &self,
        viewer: &Viewer,
        tenant: &Tenant,
        new: &NewTopic<'_>,
        client: &RequestMeta,
    ) -> AppResult<Uuid> {
        let title = check_title(new.title)?;
        let body = check_body(new.body)?;
        let scope = new.scope;
        let me = viewer.user.id;
        let mut c = self.change(viewer, tenant, client).await?;
        let (hosted, group) = repo::group(c.conn(), tenant, me, new.group_id)
            .await?
            .ok_or_else(AppError::not_found)?;
        c.authorize(&hosted, active_role(&group), Object::Topics, Action::Create)
            .await?;
        let topic_id = Uuid::now_v7();
        let topic = repo::NewTopic {
            id: topic_id,
            author_id: me,
            title: &title,
            scope,
        };
        repo::insert_topic(c.conn(), &hosted, &topic).await?;
        let (comment_id, seq, at) =
            repo::insert_comment(c.conn(), topic_id, &hosted, me, &body, new.important).await?;
        repo::spread_unread(c.conn(), &hosted, topic_id, me, scope, me, seq, at).await?;
        let event = EventSpec::topic(EventKind::CommentPosted, topic_id, scope, me);
        c.event(&hosted, event.comments(vec![comment_id])).await?;
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
        viewer: &Viewer,
        tenant: &Tenant,
        topic_id: Uuid,
        record_read: bool,
        client: &RequestMeta,
    ) -> AppResult<TopicView> {
        let mut c = self.change(viewer, tenant, client).await?;
        let (group, access) = c
            .visible_topic(topic_id, Object::Comments, Action::Read)
            .await?;
        let mode = access.receipt_mode;
        let me = viewer.user.id;
        let mut first_unread_seq = None;
        let mut new_footprints = Vec::new();
        if record_read {
            first_unread_seq = repo::take_unread(c.conn(), me, topic_id).await?;
            if mode == ReceiptMode::Footprints {
                // Without an unread counter there may still be comments this person never read
                // (they joined later, or came into scope): look from the start then.
                let from = first_unread_seq.unwrap_or(1);
                new_footprints = repo::record_footprints(c.conn(), me, topic_id, from).await?;
            }
        }
        let rows = repo::comments_of_topic(c.conn(), topic_id, TOPIC_PAGE_COMMENTS).await?;
        let from_seq = rows.first().map_or(1, |c| c.seq);
        let mut readers = match mode {
            ReceiptMode::Off => Vec::new(),
            ReceiptMode::Footprints => {
                repo::readers_of_topic(c.conn(), topic_id, from_seq, false).await?
            }
            ReceiptMode::Acknowledgement => {
                repo::readers_of_topic(c.conn(), topic_id, from_seq, true).await?
            }
        };
        let history = if rows.iter().any(|c| c.version > 1) {
            repo::versions_of_topic(c.conn(), topic_id).await?
        } else {
            Vec::new()
        };
        let mut audience = repo::members(c.conn(), &group).await?;
        name_readers(c.conn(), &mut readers, &audience).await?;
        audience.retain(|m| {
            m.status == GroupMemberStatus::Active
                && (m.scope_bit.intersects(access.topic.scope)
                    || m.user_id == access.topic.author_id)
        });
        let (scope, author) = (access.topic.scope, access.topic.author_id);
        if !new_footprints.is_empty() {
            let ids: Vec<Uuid> = new_footprints.iter().map(|(id, _)| *id).collect();
            let event = EventSpec::topic(EventKind::FootprintAdded, topic_id, scope, author);
            c.event(&group, event.comments(ids)).await?;
        }
        let cleared = first_unread_seq.is_some();
        if cleared {
            let event = EventSpec::topic(EventKind::UnreadChanged, topic_id, scope, author);
            c.event(&group, event.only_for(me)).await?;
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
        c.commit().await?;

        // Hundreds of readers on hundreds of comments: group them once, not per comment.
        let mut readers_by_comment: HashMap<Uuid, Vec<ReaderRow>> = HashMap::new();
        for r in readers {
            readers_by_comment.entry(r.comment_id).or_default().push(r);
        }
        let comments = rows
            .into_iter()
            .map(|row| {
                let mine = row.author_id == me;
                let deleted = row.deleted_at.is_some();
                let rs: Vec<ReaderRow> = readers_by_comment.remove(&row.id).unwrap_or_default();
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
                let mut row = row;
                if deleted {
                    // Kept for the audit trail, never shown.
                    row.body = String::new();
                }
                CommentView {
                    row,
                    readers: rs,
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
            tenant: tenant.clone(),
            can_manage: topic.author_id == me || my_role == GroupRole::Owner,
            topic,
            group_name: access.group_name,
            group_kind: access.group_kind,
            receipt_mode: mode,
            my_role,
            comments,
            audience,
            first_unread_seq,
        })
    }

    /// Changes a topic's title, scope, pin or closed state: its author or a group owner.
    pub async fn update_topic(
        &self,
        viewer: &Viewer,
        tenant: &Tenant,
        topic_id: Uuid,
        patch: &TopicPatch,
        client: &RequestMeta,
    ) -> AppResult<()> {
        let mut c = self.change(viewer, tenant, client).await?;
        let (group, access) = c
            .visible_topic(topic_id, Object::Topics, Action::Read)
            .await?;
        let t = &access.topic;
        if t.author_id != viewer.user.id {
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

    /// Replies in a topic. The replier's own unread counter is left as it is: the page opens the
    /// topic (and so reads it) before replying; an API client may reply without reading.
    pub async fn post_comment(
        &self,
        viewer: &Viewer,
        tenant: &Tenant,
        topic_id: Uuid,
        body: &str,
        important: bool,
        client: &RequestMeta,
    ) -> AppResult<Uuid> {
        let body = check_body(body)?;
        let me = viewer.user.id;
        let mut c = self.change(viewer, tenant, client).await?;
        let (group, access) = c
            .visible_topic(topic_id, Object::Comments, Action::Create)
            .await?;
        let t = &access.topic;
        if t.closed {
            return Err(AppError::new(
                ErrorCode::TopicClosed,
                "this topic is closed to new comments",
            ));
        }
        let (comment_id, seq, at) =
            repo::insert_comment(c.conn(), topic_id, &group, me, &body, important).await?;
        repo::spread_unread(
            c.conn(),
            &group,
            topic_id,
            t.author_id,
            t.scope,
            me,
            seq,
            at,
        )
        .await?;
        let event = EventSpec::topic(EventKind::CommentPosted, topic_id, t.scope, t.author_id);
        c.event(&group, event.comments(vec![comment_id])).await?;
        let entry = c
            .entry(AuditAction::CommentCreate)
            .on("comment", comment_id)
            .with_detail("topic_id", topic_id.to_string())
            .with_detail("important", important);
        c.audit(entry);
        c.commit().await?;
        Ok(comment_id)
    }

    /// The author edits a comment; the earlier text stays visible as history.
    pub async fn edit_comment(
        &self,
        viewer: &Viewer,
        tenant: &Tenant,
        comment_id: Uuid,
        body: &str,
        important: bool,
        client: &RequestMeta,
    ) -> AppResult<()> {
        let body = check_body(body)?;
        let mut c = self.change(viewer, tenant, client).await?;
        let (comment, group, access) = c.visible_comment(comment_id).await?;
        if comment.author_id != viewer.user.id || comment.deleted_at.is_some() {
            // Only the author edits; a deleted comment stays deleted.
            return Err(AppError::not_found());
        }
        repo::edit_comment(c.conn(), comment_id, &body, important).await?;
        let t = &access.topic;
        let event = EventSpec::topic(EventKind::CommentEdited, t.id, t.scope, t.author_id);
        c.event(&group, event.comments(vec![comment_id])).await?;
        let entry = c
            .entry(AuditAction::CommentEdit)
            .on("comment", comment_id)
            .with_detail("version", i64::from(comment.version + 1));
        c.audit(entry);
        c.commit().await
    }

    /// Deletes a comment (its author, or a group owner): a "deleted" mark stays in its place
    /// and the record is kept. A topic's body (comment 1) cannot be deleted.
    pub async fn delete_comment(
        &self,
        viewer: &Viewer,
        tenant: &Tenant,
        comment_id: Uuid,
        client: &RequestMeta,
    ) -> AppResult<()> {
        let mut c = self.change(viewer, tenant, client).await?;
        let (comment, group, access) = c.visible_comment(comment_id).await?;
        if comment.author_id != viewer.user.id {
            c.authorize(&group, access.my_role, Object::Comments, Action::Moderate)
                .await?;
        }
        if comment.deleted_at.is_some() {
            return Ok(());
        }
        if comment.seq == 1 {
            return Err(AppError {
                field: Some("commentId"),
                ..AppError::new(
                    ErrorCode::FirstPostUndeletable,
                    "the first post of a topic cannot be deleted; edit it or close the topic",
                )
            });
        }
        repo::delete_comment(
            c.conn(),
            comment_id,
            comment.topic_id,
            comment.author_id,
            comment.seq,
            viewer.user.id,
        )
        .await?;
        let t = &access.topic;
        let event = EventSpec::topic(EventKind::CommentDeleted, t.id, t.scope, t.author_id);
        c.event(&group, event.comments(vec![comment_id])).await?;
        let entry = c
            .entry(AuditAction::CommentDelete)
            .on("comment", comment_id)
            .with_detail("topic_id", comment.topic_id.to_string());
        c.audit(entry);
        c.commit().await
    }

    /// 「確認しました」 on a comment, in groups whose mode is acknowledgement.
    pub async fn acknowledge_comment(
        &self,
        viewer: &Viewer,
        tenant: &Tenant,
        comment_id: Uuid,
        client: &RequestMeta,
    ) -> AppResult<()> {
        let mut c = self.change(viewer, tenant, client).await?;
        let (comment, group, access) = c.visible_comment(comment_id).await?;
        if access.receipt_mode != ReceiptMode::Acknowledgement {
            return Err(AppError::invalid(
                "commentId",
                "this group does not use acknowledgements",
            ));
        }
        if comment.author_id == viewer.user.id || comment.deleted_at.is_some() {
            return Err(AppError::invalid(
                "commentId",
                "you cannot confirm your own or a deleted comment",
            ));
        }
        if repo::acknowledge(c.conn(), comment_id, viewer.user.id)
            .await?
            .is_none()
        {
            return Ok(()); // already confirmed: nothing changes
        }
        let t = &access.topic;
        let event = EventSpec::topic(EventKind::Acknowledged, t.id, t.scope, t.author_id);
        c.event(&group, event.comments(vec![comment_id])).await?;
        let entry = c
            .entry(AuditAction::CommentAcknowledge)
            .on("comment", comment_id);
        c.audit(entry);
        c.commit().await
    }

    /// "Mark all as read" for a group: clears the counters without leaving footprints (the
    /// comments were not actually read).
    pub async fn mark_group_read(
        &self,
        viewer: &Viewer,
        tenant: &Tenant,
        group_id: Uuid,
        client: &RequestMeta,
    ) -> AppResult<u64> {
        let me = viewer.user.id;
        let mut c = self.change(viewer, tenant, client).await?;
        let (hosted, group) = repo::group(c.conn(), tenant, me, group_id)
            .await?
            .ok_or_else(AppError::not_found)?;
        c.authorize(&hosted, active_role(&group), Object::Topics, Action::Read)
            .await?;
        let cleared = repo::mark_group_read(c.conn(), me, &hosted).await?;
        c.event(&hosted, EventSpec::unread(me)).await?;
        let entry = c
            .entry(AuditAction::GroupMarkRead)
            .on("group", group_id)
            .with_detail("topics", i64::try_from(cleared).unwrap_or(i64::MAX));
        c.audit(entry);
        c.commit().await?;
        Ok(cleared)
    }

    /// The home page: unread comments across every association the viewer has groups in,
    /// grouped by group (patient groups first), newest first. One directory query, then one
    /// transaction per host association; nothing scales with the comments ever written.
    pub async fn home(&self, viewer: &Viewer) -> AppResult<Home> {
        let directory = repo::directory_of(self.db().pool(), viewer.user.id).await?;
        let invitations = directory.iter().map(|d| d.invited as usize).sum();
        let mut home = Home {
            invitations,
            ..Home::default()
        };
        let bit = viewer_bit(viewer);
        for repo::DirectoryRow { slug, name, .. } in directory.into_iter().filter(|d| d.active > 0)
        {
            let Ok(tenant) = self.db().resolve_tenant(&slug).await else {
                continue;
            };
            // Two reads without a transaction: a comment landing in between shows in one and
            // not yet in the other, which the next look corrects.
            let mut conn = self.db().tenant_read(&tenant).await?;
            let counts = repo::unread_by_group(&mut conn, viewer.user.id).await?;
            let items = if counts.is_empty() {
                Vec::new()
            } else {
                repo::unread_items(
                    &mut conn,
                    viewer.user.id,
                    bit,
                    HOME_ITEMS_PER_TOPIC,
                    HOME_ITEMS,
                )
                .await?
            };
            let sum: i64 = counts.iter().map(|(_, n)| n).sum();
            home.counts.total += sum;
            home.counts
                .associations
                .push((slug.clone(), name.clone(), sum));
            for (g, n) in &counts {
                home.counts.groups.push((slug.clone(), *g, *n));
            }
            for item in items {
                let group = match home.groups.iter_mut().find(|h| h.group_id == item.group_id) {
                    Some(g) => g,
                    None => {
                        home.groups.push(HomeGroup {
                            association_slug: slug.clone(),
                            association_name: name.clone(),
                            group_id: item.group_id,
                            group_name: item.group_name.clone(),
                            patient: item.group_kind == GroupKind::Patient,
                            unread: counts
                                .iter()
                                .find(|(g, _)| *g == item.group_id)
                                .map_or(0, |(_, n)| *n),
                            items: Vec::new(),
                        });
                        home.groups.last_mut().expect("just pushed")
                    }
                };
                group.items.push(HomeItem {
                    topic_id: item.topic_id,
                    topic_title: item.topic_title,
                    comment_id: item.comment_id,
                    seq: item.seq,
                    author_name: item.author_name,
                    excerpt: excerpt(&item.body),
                    important: item.important,
                    created_at: item.created_at,
                });
            }
        }
        for g in &mut home.groups {
            g.items.sort_by_key(|i| std::cmp::Reverse(i.created_at));
        }
        home.groups.sort_by(|a, b| {
            b.patient.cmp(&a.patient).then_with(|| {
                let newest = |g: &HomeGroup| g.items.first().map(|i| i.created_at);
                newest(b).cmp(&newest(a))
            })
        });
        Ok(home)
    }

    /// Unread counts only (for badges and live updates).
    pub async fn unread_counts(&self, viewer: &Viewer) -> AppResult<UnreadCounts> {
        let directory = repo::directory_of(self.db().pool(), viewer.user.id).await?;
        let hosts: Vec<(String, String)> = directory
            .into_iter()
            .filter(|d| d.active > 0)
            .map(|d| (d.slug, d.name))
            .collect();
        self.unread_counts_at(viewer, &hosts).await
    }

    /// Unread counts in the given host associations (slug, name), which the caller read from
    /// the directory: a live subscription keeps them between membership changes.
    pub async fn unread_counts_at(
        &self,
        viewer: &Viewer,
        hosts: &[(String, String)],
    ) -> AppResult<UnreadCounts> {
        let mut counts = UnreadCounts::default();
        for (slug, name) in hosts {
            let Ok(tenant) = self.db().resolve_tenant(slug).await else {
                continue;
            };
            let mut conn = self.db().tenant_read(&tenant).await?;
            let by_group = repo::unread_by_group(&mut conn, viewer.user.id).await?;
            let sum: i64 = by_group.iter().map(|(_, n)| n).sum();
            counts.total += sum;
            counts.associations.push((slug.clone(), name.clone(), sum));
            counts
                .groups
                .extend(by_group.into_iter().map(|(g, n)| (slug.clone(), g, n)));
        }
        Ok(counts)
    }
}

impl Services {
    /// The state a live subscription keeps about its viewer (see [`LiveState`]); `None` when
    /// the person no longer exists.
    pub async fn live_state(&self, viewer: &Viewer) -> AppResult<Option<LiveState>> {
        Ok(
            repo::live_state(self.db().pool(), viewer.user.id, viewer.session.id)
                .await?
                .map(|r| LiveState {
                    alive: r.alive,
                    scope_bit: r.scope_bit,
                    groups: r.groups.into_iter().collect(),
                    hosts: r.host_slugs.into_iter().zip(r.host_names).collect(),
                }),
        )
    }

    /// Events after `after` the viewer may see, oldest first (catch-up after a reconnect).
    pub async fn events_since(
        &self,
        viewer: &Viewer,
        after: i64,
        limit: i64,
    ) -> AppResult<Vec<Event>> {
        let rows = repo::events_since(
            self.db().pool(),
            viewer.user.id,
            after,
            limit.clamp(1, 1000),
        )
        .await?;
        let bit = viewer_bit(viewer);
        Ok(rows
            .into_iter()
            .filter_map(|r| {
                let kind = EventKind::from_code(&r.kind)?;
                let visible = in_scope_bits(r.scope, bit, r.topic_author_id, viewer.user.id);
                visible.then_some(Event {
                    id: r.id,
                    association_id: r.association_id,
                    group_id: r.group_id,
                    topic_id: r.topic_id,
                    kind,
                    scope: r.scope,
                    actor_id: r.actor_id,
                    topic_author_id: r.topic_author_id,
                    comment_ids: r.comment_ids,
                    user_id: r.user_id,
                })
            })
            .collect())
    }

    /// The newest event id now: where a fresh subscription starts.
    pub async fn last_event_id(&self) -> AppResult<i64> {
        Ok(repo::last_event_id(self.db().pool()).await?)
    }
}

/// Fills in readers' names from the group's members, asking the database only for readers who
/// have since left; drops readers whose account no longer exists.
async fn name_readers(
    conn: &mut PgConnection,
    readers: &mut Vec<ReaderRow>,
    members: &[GroupMemberRow],
) -> AppResult<()> {
    let names: HashMap<Uuid, &str> = members
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
        let found: HashMap<Uuid, String> = repo::user_names(conn, &missing)
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
