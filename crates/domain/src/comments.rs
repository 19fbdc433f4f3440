//! Comments: replying in a topic, editing (the earlier text kept as history), deleting (a mark
//! stays) and 「確認しました」 in acknowledgement groups.

use crate::audit::AuditAction;
use crate::change::{Change, EventSpec};
use crate::groups::{GroupKind, ReceiptMode};
use crate::topics::{check_body, check_body_with};
use crate::types::{CommentId, TopicId};
use crate::Actor;
use crate::{AppError, AppResult, ErrorCode, Services};
use musubi_authz::{Action, Object};
use musubi_db::groups::{self as repo, CommentRow, HostedGroup};
use musubi_realtime::EventKind;

impl Change<'_> {
    /// Loads a comment with its topic's access checked; returns (comment, group, topic access).
    async fn visible_comment(
        &mut self,
        comment_id: CommentId,
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

impl Services {
    /// Replies in a topic. The replier's own unread counter is left as it is: the page opens the
    /// topic (and so reads it) before replying; an API client may reply without reading.
    pub async fn post_comment(
        &self,
        actor: &Actor<'_>,
        topic_id: TopicId,
        body: &str,
        important: bool,
    ) -> AppResult<CommentId> {
        self.post_comment_with(actor, topic_id, body, important, &[])
            .await
    }

    /// Replies with attachments: files the replier uploaded for it
    /// ([`Services::stage_attachment`]), which from now on are seen by whoever sees the topic.
    pub async fn post_comment_with(
        &self,
        actor: &Actor<'_>,
        topic_id: TopicId,
        body: &str,
        important: bool,
        attachments: &[uuid::Uuid],
    ) -> AppResult<CommentId> {
        self.post(actor, topic_id, body, important, attachments, None)
            .await
    }

    /// Posts a comment; with `urgent`, a 至急 request asking those people (see
    /// [`crate::urgent`]).
    pub(crate) async fn post(
        &self,
        actor: &Actor<'_>,
        topic_id: TopicId,
        body: &str,
        important: bool,
        attachments: &[uuid::Uuid],
        urgent: Option<&[crate::types::PersonId]>,
    ) -> AppResult<CommentId> {
        let body = check_body_with(body, !attachments.is_empty())?;
        let important = important || urgent.is_some();
        let me = actor.viewer.user.id;
        let mut c = self.change(actor).await?;
        let (group, access) = c
            .visible_topic(topic_id, Object::Comments, Action::Create)
            .await?;
        if access.group_archived {
            return Err(AppError::archived());
        }
        let t = &access.topic;
        if t.closed {
            return Err(AppError::new(
                ErrorCode::TopicClosed,
                "this topic is closed to new comments",
            ));
        }
        if access.group_kind == GroupKind::Direct {
            if urgent.is_some() {
                // A 至急 request escalates into the patient's care team: not for a conversation.
                return Err(AppError::invalid(
                    "urgent",
                    "a message cannot be urgent: post it in the patient's group",
                ));
            }
            Services::prepare_message(&mut c, &group).await?;
        }
        let (comment_id, seq, at) =
            repo::insert_comment(c.conn(), topic_id, &group, me, &body, important).await?;
        crate::files::attach(&mut c, attachments, group.id(), topic_id, comment_id).await?;
        let posted = repo::Posted {
            topic_id,
            topic_author: t.author_id,
            scope: t.scope,
            author_id: me,
            seq,
            at,
            important,
        };
        repo::spread_unread(c.conn(), &group, &posted).await?;
        let asked = match urgent {
            Some(named) => {
                Some(crate::urgent::ask(&mut c, &group, &access, comment_id, named, at).await?)
            }
            None => None,
        };
        let event = EventSpec::topic(EventKind::CommentPosted, topic_id, t.scope, t.author_id);
        c.event(&group, event.comments(vec![comment_id])).await?;
        let mut entry = c
            .entry(AuditAction::CommentCreate)
            .on("comment", comment_id)
            .with_detail("topic_id", topic_id.to_string())
            .with_detail("important", important);
        if let Some(asked) = asked {
            entry = entry
                .with_detail("urgent", true)
                .with_detail("asked", asked as i64);
        }
        c.audit(entry);
        c.commit().await?;
        Ok(comment_id)
    }

    /// Where a comment is (its topic and number), for a link to one comment: mails and pushes
    /// carry ids only. `NOT_FOUND` unless the person sees it.
    pub async fn comment_place(
        &self,
        actor: &Actor<'_>,
        comment_id: CommentId,
    ) -> AppResult<(TopicId, i32)> {
        let mut c = self.change(actor).await?;
        let (comment, _, _) = c.visible_comment(comment_id).await?;
        c.commit().await?;
        Ok((comment.topic_id, comment.seq))
    }

    /// The author edits a comment; the earlier text stays visible as history.
    pub async fn edit_comment(
        &self,
        actor: &Actor<'_>,
        comment_id: CommentId,
        body: &str,
        important: bool,
    ) -> AppResult<()> {
        let body = check_body(body)?;
        let mut c = self.change(actor).await?;
        let (comment, group, access) = c.visible_comment(comment_id).await?;
        if access.group_archived {
            return Err(AppError::archived());
        }
        if comment.author_id != actor.viewer.user.id || comment.deleted_at.is_some() {
            // Only the author edits; a deleted comment stays deleted.
            return Err(AppError::not_found());
        }
        repo::edit_comment(c.conn(), comment_id, &body, important).await?;
        if important != comment.important {
            repo::shift_important(
                c.conn(),
                comment_id,
                comment.topic_id,
                comment.seq,
                comment.author_id,
                important,
            )
            .await?;
        }
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
    pub async fn delete_comment(&self, actor: &Actor<'_>, comment_id: CommentId) -> AppResult<()> {
        let mut c = self.change(actor).await?;
        let (comment, group, access) = c.visible_comment(comment_id).await?;
        if access.group_archived {
            return Err(AppError::archived());
        }
        if comment.author_id != actor.viewer.user.id {
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
            actor.viewer.user.id,
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
        actor: &Actor<'_>,
        comment_id: CommentId,
    ) -> AppResult<()> {
        let mut c = self.change(actor).await?;
        let (comment, group, access) = c.visible_comment(comment_id).await?;
        if access.receipt_mode != ReceiptMode::Acknowledgement {
            return Err(AppError::invalid(
                "commentId",
                "this group does not use acknowledgements",
            ));
        }
        if comment.author_id == actor.viewer.user.id || comment.deleted_at.is_some() {
            return Err(AppError::invalid(
                "commentId",
                "you cannot confirm your own or a deleted comment",
            ));
        }
        if repo::acknowledge(c.conn(), comment_id, actor.viewer.user.id)
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
}
