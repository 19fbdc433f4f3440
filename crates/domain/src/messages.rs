//! Direct messages: one-to-one and small conversations between people, across associations.
//!
//! A conversation is a group of kind `direct` hosted by the association of the person who
//! started it, with one topic whose comments are the messages. So a message has footprints,
//! unread counters, live updates, search and audit (`comment.create`) exactly as a comment, and
//! its people are participants (`conversation_participant` in the policies): they read, reply,
//! attach files and add people, but open no topics and have no calendar or register.
//!
//! Whom one may write to: the people of one's directory (the associations one is an active
//! member of and their neighbours), as for invitations. An association's administrators may
//! forbid messages with other associations (`core.message_policies`): a conversation crosses
//! associations when someone in it is not an active member of its host, and then the host and
//! every association of those people must allow it. The rule is checked when a conversation
//! starts, when people are added and on every message, so a policy applies at once to the
//! conversations that exist; what was written stays readable.

use crate::audit::AuditAction;
use crate::change::EventSpec;
use crate::groups::{active_role, by_association, GroupKind};
use crate::sessions::Viewer;
use crate::topics::check_body_with;
use crate::types::{CommentId, GroupId, PersonId, TopicId};
use crate::Actor;
use crate::{AppError, AppResult, ErrorCode, Services};
use chrono::{DateTime, Utc};
use musubi_authz::{Action, Object};
use musubi_db::groups::messages as store;
use musubi_db::groups::{self as repo, HostedGroup};
use musubi_db::types::{GroupMemberStatus, Scope};
use musubi_realtime::EventKind;

/// Most people in one conversation, its starter included: a conversation is for a few; a
/// team has a group.
pub const MAX_PARTICIPANTS: usize = 20;

/// The title of a conversation's one topic (pages show the people instead).
pub const CONVERSATION_TITLE: &str = "メッセージ";

/// Most conversations the list shows (the most recent).
pub const MAX_LISTED: usize = 200;

/// Where a message went.
#[derive(Debug, Clone)]
pub struct ConversationPlace {
    pub association_slug: String,
    pub group_id: GroupId,
    pub topic_id: TopicId,
    pub comment_id: CommentId,
    /// The pair's conversation existed already: the message was added to it.
    pub existing: bool,
}

/// A conversation in someone's list of messages.
#[derive(Debug, Clone)]
pub struct Conversation {
    pub association_slug: String,
    pub association_name: String,
    pub group_id: GroupId,
    pub topic_id: TopicId,
    pub pair: bool,
    /// The other participants, by reading (empty: everyone else has left).
    pub others: Vec<String>,
    pub unread: i64,
    pub last_at: DateTime<Utc>,
    pub last_author_name: Option<String>,
    /// The newest message, on one line, shortened.
    pub excerpt: String,
}

fn refused() -> AppError {
    AppError::new(
        ErrorCode::CrossAssociationMessagesDisabled,
        "an association of someone in this conversation does not allow messages with other \
         associations",
    )
}

/// The people asked for, without the asker and without repeats, in the order given.
fn others_of(me: PersonId, people: &[PersonId]) -> AppResult<Vec<PersonId>> {
    let mut out: Vec<PersonId> = Vec::new();
    for p in people {
        if *p != me && !out.contains(p) {
            out.push(*p);
        }
    }
    if out.is_empty() {
        return Err(AppError::invalid("people", "choose at least one person"));
    }
    if out.len() + 1 > MAX_PARTICIPANTS {
        return Err(AppError::invalid(
            "people",
            format!("a conversation has at most {MAX_PARTICIPANTS} people"),
        ));
    }
    Ok(out)
}

/// Joins names into the conversation's stored name (at most 100 characters).
fn name_of(names: &[String]) -> String {
    let joined = names.join("、");
    if joined.chars().count() <= crate::groups::MAX_NAME_CHARS {
        return joined;
    }
    let mut s: String = joined
        .chars()
        .take(crate::groups::MAX_NAME_CHARS - 1)
        .collect();
    s.push('…');
    s
}

impl Services {
    /// Starts a conversation with `people` (picked from the asker's directory; anyone else is
    /// "not found") and sends its first message. A one-to-one conversation exists once per pair:
    /// writing to the same person again adds the message to it, wherever it is hosted, and
    /// brings back whichever of the two had left it.
    pub async fn start_conversation(
        &self,
        actor: &Actor<'_>,
        people: &[PersonId],
        body: &str,
        attachments: &[uuid::Uuid],
    ) -> AppResult<ConversationPlace> {
        self.authorize_in(actor, Object::Messages, Action::Create)
            .await?;
        let me = actor.viewer.user.id;
        let others = others_of(me, people)?;
        let body = check_body_with(body, !attachments.is_empty())?;
        let pair_key = (others.len() == 1).then(|| store::pair_key(me, others[0]));
        if let Some(key) = &pair_key {
            let mut conn = self
                .db()
                .pool()
                .acquire()
                .await
                .map_err(musubi_db::DbError::from)?;
            let found = store::pair_conversation(&mut conn, key).await?;
            drop(conn);
            if let Some(pair) = found {
                return self
                    .continue_pair(actor, pair, others[0], &body, attachments)
                    .await;
            }
        }
        let mut c = self.change(actor).await?;
        for p in &others {
            if !repo::in_directory_of(c.conn(), me, *p).await? {
                return Err(AppError::not_found());
            }
        }
        let mut everyone = others.clone();
        everyone.push(me);
        if store::crosses_against_policy(c.conn(), actor.tenant.id, &everyone).await? {
            return Err(refused());
        }
        let outside = store::outside_count(c.conn(), actor.tenant.id, &everyone).await?;
        let mut names: Vec<(PersonId, String)> = repo::user_names(c.conn(), &everyone).await?;
        names.sort_by_key(|(id, _)| everyone.iter().position(|p| p == id));
        let names: Vec<String> = names.into_iter().map(|(_, n)| n).collect();
        let name = name_of(&names);
        let (group_id, topic_id) = (GroupId::generate(), TopicId::generate());
        let created = store::insert_conversation(
            c.conn(),
            actor.tenant,
            &store::NewConversation {
                id: group_id,
                topic_id,
                name: &name,
                title: CONVERSATION_TITLE,
                created_by: me,
                others: &others,
                pair_key: pair_key.as_deref(),
            },
        )
        .await?;
        let Some(group) = created else {
            // The other person started it at the same moment: write there instead.
            drop(c);
            let key = pair_key.unwrap_or_default();
            let mut conn = self
                .db()
                .pool()
                .acquire()
                .await
                .map_err(musubi_db::DbError::from)?;
            let pair = store::pair_conversation(&mut conn, &key)
                .await?
                .ok_or_else(|| AppError::new(ErrorCode::Conflict, "try again"))?;
            drop(conn);
            return self
                .continue_pair(actor, pair, others[0], &body, attachments)
                .await;
        };
        c.about_group(&name);
        let entry = c
            .entry(AuditAction::MessageStart)
            .on("group", group_id)
            .on_many(others.iter().copied())
            .with_detail("people", others.len() as i64)
            .with_detail("other_associations", outside);
        c.audit(entry);
        for p in &everyone {
            c.event(&group, EventSpec::membership(*p)).await?;
        }
        let comment_id = self
            .first_message(&mut c, &group, topic_id, &body, attachments)
            .await?;
        c.commit().await?;
        Ok(ConversationPlace {
            association_slug: actor.tenant.slug.clone(),
            group_id,
            topic_id,
            comment_id,
            existing: false,
        })
    }

    async fn first_message(
        &self,
        c: &mut crate::change::Change<'_>,
        group: &HostedGroup,
        topic_id: TopicId,
        body: &str,
        attachments: &[uuid::Uuid],
    ) -> AppResult<CommentId> {
        let me = c.viewer()?.user.id;
        let (comment_id, seq, at) =
            repo::insert_comment(c.conn(), topic_id, group, me, body, false).await?;
        crate::files::attach(c, attachments, group.id(), topic_id, comment_id).await?;
        let posted = repo::Posted {
            topic_id,
            topic_author: me,
            scope: Scope::EVERYONE,
            author_id: me,
            seq,
            at,
            important: false,
        };
        repo::spread_unread(c.conn(), group, &posted).await?;
        let event = EventSpec::topic(EventKind::CommentPosted, topic_id, Scope::EVERYONE, me);
        c.event(group, event.comments(vec![comment_id])).await?;
        let entry = c
            .entry(AuditAction::CommentCreate)
            .on("comment", comment_id)
            .with_detail("topic_id", topic_id.to_string())
            .with_detail("important", false);
        c.audit(entry);
        Ok(comment_id)
    }

    /// Writes to the pair's existing conversation (hosted wherever it was started), bringing
    /// back whichever of the two had left.
    async fn continue_pair(
        &self,
        actor: &Actor<'_>,
        pair: store::PairRow,
        other: PersonId,
        body: &str,
        attachments: &[uuid::Uuid],
    ) -> AppResult<ConversationPlace> {
        let tenant = if pair.association_id == actor.tenant.id {
            actor.tenant.clone()
        } else {
            self.db().resolve_tenant(&pair.slug).await?
        };
        let host = Actor::new(actor.viewer, &tenant, actor.meta);
        let me = actor.viewer.user.id;
        // Usually both still take part: one read, and the message goes through the ordinary
        // post (which brings back whoever leaves meanwhile). A transaction with the people
        // locked only when one of the two comes back.
        let (group, topic_id, present) = {
            let mut conn = self.db().tenant_read(&tenant).await?;
            let state = store::conversation_state(&mut conn, &tenant, pair.group_id).await?;
            conn.done();
            state.ok_or_else(AppError::not_found)?
        };
        let missing = |present: &[PersonId]| -> Vec<PersonId> {
            [me, other]
                .into_iter()
                .filter(|p| !present.contains(p))
                .collect()
        };
        if !missing(&present).is_empty() {
            let mut c = self.change(&host).await?;
            let present = store::lock_participants(c.conn(), &group).await?;
            let missing = missing(&present);
            // Someone may have brought them back meanwhile.
            if !missing.is_empty() {
                // Coming back is writing to someone again: the directory and the policy as
                // for a new conversation.
                if !repo::in_directory_of(c.conn(), me, other).await? {
                    return Err(AppError::not_found());
                }
                if store::crosses_against_policy(c.conn(), tenant.id, &[me, other]).await? {
                    return Err(refused());
                }
                for p in &missing {
                    store::add_participant(c.conn(), &group, *p, me).await?;
                    c.event(&group, EventSpec::membership(*p)).await?;
                }
                let entry = c
                    .entry(AuditAction::MessageAdd)
                    .on("group", group.id())
                    .on_many(missing.iter().copied());
                c.audit(entry);
                c.commit().await?;
            }
        }
        let comment_id = self
            .post(&host, topic_id, body, false, attachments, None)
            .await?;
        Ok(ConversationPlace {
            association_slug: tenant.slug.clone(),
            group_id: group.id(),
            topic_id,
            comment_id,
            existing: true,
        })
    }

    /// The people one may write to (the directory, as for invitations; see
    /// [`Services::group_invite_candidates`]) whose name, reading or facility contains
    /// `search`, or whose profession it names; at most `limit` (1–50), by kana.
    pub async fn message_candidates(
        &self,
        actor: &Actor<'_>,
        search: &str,
        limit: i64,
    ) -> AppResult<Vec<repo::CandidateRow>> {
        self.authorize_in(actor, Object::Messages, Action::Create)
            .await?;
        let search = crate::text::search_term("search", search, crate::groups::MAX_SEARCH_CHARS)?
            .unwrap_or_default();
        let folded = musubi_db::types::japanese::fold(&search);
        let professions = musubi_db::types::Profession::matching(&folded);
        let me = actor.viewer.user.id;
        let mut conn = self.db().tenant_read(actor.tenant).await?;
        let mut rows = repo::directory_candidates(
            &mut conn,
            actor.tenant.id,
            None,
            me,
            &folded,
            &professions,
            limit.clamp(1, 50) + 1,
        )
        .await?;
        conn.done();
        rows.retain(|r| r.user_id != me);
        rows.truncate(usize::try_from(limit.clamp(1, 50)).unwrap_or(50));
        Ok(rows)
    }

    /// Adds people of the asker's directory to a conversation of several (a one-to-one
    /// conversation stays one: start another with everyone). They see what was written before.
    /// Returns how many were added.
    pub async fn add_to_conversation(
        &self,
        actor: &Actor<'_>,
        group_id: GroupId,
        people: &[PersonId],
    ) -> AppResult<usize> {
        let me = actor.viewer.user.id;
        let mut c = self.change(actor).await?;
        let (group, row) = repo::group(c.conn(), actor.tenant, me, group_id)
            .await?
            .ok_or_else(AppError::not_found)?;
        if row.kind != GroupKind::Direct {
            return Err(AppError::not_found());
        }
        c.about_group(&row.name);
        c.authorize(&group, active_role(&row), Object::Members, Action::Invite)
            .await?;
        if store::is_pair(c.conn(), &group).await? {
            return Err(AppError::invalid(
                "people",
                "a one-to-one conversation stays between two people: start a new one",
            ));
        }
        let present = store::lock_participants(c.conn(), &group).await?;
        let new: Vec<PersonId> = others_of(me, people)?
            .into_iter()
            .filter(|p| !present.contains(p))
            .collect();
        if new.is_empty() {
            return Err(AppError::new(
                ErrorCode::AlreadyMember,
                "everyone chosen takes part already",
            ));
        }
        if present.len() + new.len() > MAX_PARTICIPANTS {
            return Err(AppError::invalid(
                "people",
                format!("a conversation has at most {MAX_PARTICIPANTS} people"),
            ));
        }
        for p in &new {
            if !repo::in_directory_of(c.conn(), me, *p).await? {
                return Err(AppError::not_found());
            }
        }
        let mut everyone = present.clone();
        everyone.extend(new.iter().copied());
        if store::crosses_against_policy(c.conn(), actor.tenant.id, &everyone).await? {
            return Err(refused());
        }
        for p in &new {
            store::add_participant(c.conn(), &group, *p, me).await?;
            c.event(&group, EventSpec::membership(*p)).await?;
        }
        let entry = c
            .entry(AuditAction::MessageAdd)
            .on("group", group_id)
            .on_many(new.iter().copied())
            .with_detail("people", new.len() as i64);
        c.audit(entry);
        c.commit().await?;
        Ok(new.len())
    }

    /// Leaves a conversation: it drops out of the person's messages; what they wrote stays. In a
    /// one-to-one conversation, the other writing again brings them back.
    pub async fn leave_conversation(&self, actor: &Actor<'_>, group_id: GroupId) -> AppResult<()> {
        let me = actor.viewer.user.id;
        let mut c = self.change(actor).await?;
        let (group, row) = repo::group(c.conn(), actor.tenant, me, group_id)
            .await?
            .ok_or_else(AppError::not_found)?;
        if row.kind != GroupKind::Direct || row.my_status != Some(GroupMemberStatus::Active) {
            return Err(AppError::not_found());
        }
        c.about_group(&row.name);
        repo::remove_member(c.conn(), &group, me).await?;
        let entry = c.entry(AuditAction::MessageLeave).on("group", group_id);
        c.audit(entry);
        c.event(&group, EventSpec::membership(me)).await?;
        c.commit().await
    }

    /// The viewer's conversations in every association, newest first (at most
    /// [`MAX_LISTED`]).
    pub async fn conversations(&self, viewer: &Viewer) -> AppResult<Vec<Conversation>> {
        let rows = repo::groups_of(self.db().pool(), viewer.user.id).await?;
        let mut out = Vec::new();
        let direct = |r: &repo::MyGroupRow| {
            r.kind == GroupKind::Direct && r.status == GroupMemberStatus::Active
        };
        for (_, slug, name, ids) in by_association(&rows, direct) {
            let Ok(tenant) = self.db().resolve_tenant(&slug).await else {
                continue; // an association being upgraded
            };
            let mut conn = self.db().tenant_read(&tenant).await?;
            let list = store::conversations(&mut conn, &tenant, viewer.user.id, &ids).await?;
            conn.done();
            out.extend(list.into_iter().map(|r| Conversation {
                association_slug: slug.clone(),
                association_name: name.clone(),
                group_id: r.group_id,
                topic_id: r.topic_id,
                pair: r.pair,
                others: r.others,
                unread: i64::from(r.unread),
                last_at: r.last_at,
                last_author_name: r.last_author_name,
                excerpt: crate::unread::excerpt(r.last_body.as_deref().unwrap_or_default()),
            }));
        }
        out.sort_by_key(|c| std::cmp::Reverse(c.last_at));
        out.truncate(MAX_LISTED);
        Ok(out)
    }

    /// Before a message is posted in a conversation: the policy allows it now (see the
    /// module's rule), and in a one-to-one conversation whichever of the two had left is
    /// brought back, so that they hear of it.
    pub(crate) async fn prepare_message(
        c: &mut crate::change::Change<'_>,
        group: &HostedGroup,
    ) -> AppResult<()> {
        let state = store::message_state(c.conn(), group).await?;
        let mut people = state.people;
        let me = c.viewer()?.user.id;
        let mut back = Vec::new();
        if let Some((a, b)) = state.pair {
            back = [a, b]
                .into_iter()
                .filter(|p| *p != me && !people.contains(p))
                .collect();
            people.extend(back.iter().copied());
        }
        // Everyone a member of the host: no policy on crossing associations applies (the
        // usual case, one read); otherwise the policies are looked up.
        let checked = state.all_members && back.is_empty();
        if !checked
            && store::crosses_against_policy(c.conn(), group.association_id(), &people).await?
        {
            return Err(refused());
        }
        for p in &back {
            store::add_participant(c.conn(), group, *p, me).await?;
            c.event(group, EventSpec::membership(*p)).await?;
        }
        if !back.is_empty() {
            let entry = c
                .entry(AuditAction::MessageAdd)
                .on("group", group.id())
                .on_many(back.iter().copied());
            c.audit(entry);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_names_are_cut_to_the_stored_length() {
        let names: Vec<String> = (0..30).map(|i| format!("看護師 {i:02}")).collect();
        let name = name_of(&names);
        assert_eq!(name.chars().count(), crate::groups::MAX_NAME_CHARS);
        assert!(name.ends_with('…'));
        assert_eq!(name_of(&["佐藤".into(), "鈴木".into()]), "佐藤、鈴木");
    }

    #[test]
    fn the_asker_and_repeats_are_dropped_and_the_size_is_bounded() {
        let me = PersonId::generate();
        let a = PersonId::generate();
        assert_eq!(others_of(me, &[a, me, a]).unwrap(), vec![a]);
        assert_eq!(
            others_of(me, &[me]).unwrap_err().code,
            ErrorCode::InvalidInput
        );
        let many: Vec<PersonId> = (0..MAX_PARTICIPANTS)
            .map(|_| PersonId::generate())
            .collect();
        assert_eq!(
            others_of(me, &many).unwrap_err().code,
            ErrorCode::InvalidInput
        );
        assert_eq!(
            others_of(me, &many[1..]).unwrap().len(),
            MAX_PARTICIPANTS - 1
        );
    }
}
