//! The unit of change: the one way anything is written in an association.
//!
//! ```text
//! services.change(actor)                 BEGIN (runs to completion even if the caller goes)
//!   .authorize(..) / .visible_topic(..)   refusals are queued, never written on this connection
//!   repo::…(c.conn(), ..)                  the change itself
//!   .event(group, EventSpec)              live events, in the transaction, in order
//!   .audit(entry)                         kept; written last, just before COMMIT
//!   .commit()                             audit → COMMIT → publish, in a task of its own
//! ```
//!
//! Audit records go last because appending one locks the association's log until the end of
//! the transaction; everything before it runs unlocked. Events are published only after the
//! commit, so nobody hears of a change that did not happen. A change dropped before `commit`
//! (an error, a client that went away) is rolled back whole: the change, its events and its
//! audit record together.

use crate::audit::{record_batch, AuditAction, AuditEntry, RequestMeta};
use crate::groups::principal_in_group;
use crate::sessions::Viewer;
use crate::types::PersonId;
use crate::types::{CommentId, TopicId};
use crate::Actor;
use crate::{AppError, AppResult, Services, Tenant};
use musubi_authz::{Action, Domain, GroupRole, Object};
use musubi_db::groups::{self as repo, HostedGroup};
use musubi_db::Tx;
use musubi_realtime::{Event, EventKind};
use sqlx::PgConnection;
use uuid::Uuid;

/// One live event to write in a change: what happened, where, and who may hear of it. The
/// acting person is the change's.
#[derive(Debug, Clone)]
pub(crate) struct EventSpec {
    kind: EventKind,
    topic_id: Option<TopicId>,
    scope: i16,
    topic_author_id: Option<PersonId>,
    comment_ids: Vec<CommentId>,
    user_id: Option<PersonId>,
}

impl EventSpec {
    /// An event in a topic, heard by those in `scope` and by the topic's author.
    pub(crate) fn topic(
        kind: EventKind,
        topic_id: TopicId,
        scope: crate::groups::Scope,
        author_id: PersonId,
    ) -> Self {
        Self {
            kind,
            topic_id: Some(topic_id),
            scope: scope.bits(),
            topic_author_id: Some(author_id),
            comment_ids: Vec::new(),
            user_id: None,
        }
    }

    /// The event as published on the bus (plain ids: the bus carries them between replicas).
    fn published(
        self,
        id: i64,
        xid: Option<u64>,
        group: &HostedGroup,
        actor_id: PersonId,
    ) -> Event {
        Event {
            xid,
            id,
            association_id: group.association_id().uuid(),
            group_id: group.id().uuid(),
            topic_id: self.topic_id.map(TopicId::uuid),
            kind: self.kind,
            scope: self.scope,
            actor_id: actor_id.uuid(),
            topic_author_id: self.topic_author_id.map(PersonId::uuid),
            comment_ids: self.comment_ids.into_iter().map(CommentId::uuid).collect(),
            user_id: self.user_id.map(PersonId::uuid),
        }
    }

    /// A change to `user`'s membership of a group: it reaches them whatever their groups.
    pub(crate) fn membership(user: PersonId) -> Self {
        Self {
            kind: EventKind::MembershipChanged,
            topic_id: None,
            scope: crate::groups::Scope::EVERYONE.bits(),
            topic_author_id: None,
            comment_ids: Vec::new(),
            user_id: Some(user),
        }
    }

    /// `user`'s unread counts changed in a group (not about one topic).
    pub(crate) fn unread(user: PersonId) -> Self {
        Self {
            kind: EventKind::UnreadChanged,
            ..Self::membership(user)
        }
    }

    /// The comments concerned.
    pub(crate) fn comments(mut self, ids: Vec<CommentId>) -> Self {
        self.comment_ids = ids;
        self
    }

    /// Meant for `user` alone (their unread counts, say).
    pub(crate) fn only_for(mut self, user: PersonId) -> Self {
        self.user_id = Some(user);
        self
    }
}

/// An open change in one association (see the module documentation).
pub(crate) struct Change<'a> {
    services: &'a Services,
    tenant: &'a Tenant,
    viewer: Option<&'a Viewer>,
    meta: &'a RequestMeta,
    tx: Tx,
    audit: Vec<AuditEntry>,
    events: Vec<Event>,
    /// The group (and topic) this change is about, named in its audit entries as they are
    /// now: names change, and the log must still say what the record was about.
    about: About,
}

#[derive(Debug, Clone, Default)]
struct About {
    group: Option<String>,
    topic: Option<String>,
}

impl Services {
    /// Begins a change by the actor.
    pub(crate) async fn change<'a>(&'a self, actor: &Actor<'a>) -> AppResult<Change<'a>> {
        Ok(Change {
            services: self,
            tenant: actor.tenant,
            viewer: Some(actor.viewer),
            meta: actor.meta,
            tx: self.db().tenant_tx(actor.tenant).await?,
            audit: Vec::new(),
            events: Vec::new(),
            about: About::default(),
        })
    }

    /// Begins a change made without a signed-in person: by the system, an operator, or someone
    /// not yet signed in (accepting an invitation). Its audit entries name their actor themselves.
    pub(crate) async fn change_without_viewer<'a>(
        &'a self,
        tenant: &'a Tenant,
        meta: &'a RequestMeta,
    ) -> AppResult<Change<'a>> {
        Ok(Change {
            services: self,
            tenant,
            viewer: None,
            meta,
            tx: self.db().tenant_tx(tenant).await?,
            audit: Vec::new(),
            events: Vec::new(),
            about: About::default(),
        })
    }
}

impl<'a> Change<'a> {
    /// The transaction's connection, for the repository functions.
    pub(crate) fn conn(&mut self) -> &mut PgConnection {
        &mut self.tx
    }

    pub(crate) fn tenant(&self) -> &'a Tenant {
        self.tenant
    }

    /// The person acting. Panics never: a system change has no viewer, and the operations
    /// that need one only ever begin with [`Services::change`].
    pub(crate) fn viewer(&self) -> AppResult<&'a Viewer> {
        self.viewer.ok_or_else(|| {
            AppError::internal(std::io::Error::other(
                "a person's operation ran as a system change",
            ))
        })
    }

    fn actor_id(&self) -> PersonId {
        self.viewer
            .map_or(PersonId::from_uuid(Uuid::nil()), |v| v.user.id)
    }

    /// An audit entry for `action` by the person acting, from this request, naming the group
    /// and topic the change is about (see [`Change::about_group`]).
    pub(crate) fn entry(&self, action: AuditAction) -> AuditEntry {
        let mut entry = AuditEntry::new(action, self.meta);
        if let Some(g) = &self.about.group {
            entry = entry.with_detail("group_name", g.clone());
        }
        if let Some(t) = &self.about.topic {
            entry = entry.with_detail("topic_title", t.clone());
        }
        match self.viewer {
            Some(v) => entry.by(v.user.id, v.user.name.clone()),
            None => entry,
        }
    }

    /// The change is about this group: its audit entries carry the name it has now.
    pub(crate) fn about_group(&mut self, name: &str) {
        self.about.group = Some(name.to_owned());
    }

    /// The name of the group the change is about, once loaded.
    pub(crate) fn group_name(&self) -> Option<&str> {
        self.about.group.as_deref()
    }

    /// The change is about this topic (in this group).
    pub(crate) fn about_topic(&mut self, group: &str, title: &str) {
        self.about.group = Some(group.to_owned());
        self.about.topic = Some(title.to_owned());
    }

    /// Keeps an audit entry; it is written last, just before the commit.
    pub(crate) fn audit(&mut self, entry: AuditEntry) {
        self.audit.push(entry);
    }

    /// Checks `action` on `object` in `group` for the viewer's role there (`role` as loaded with
    /// the group). Denied: recorded (without using this transaction's pool) and answered "not
    /// found", like a missing object; only members learn that the group exists. Takes a
    /// [`HostedGroup`]: only a group loaded through the routed tenant can be authorized at all.
    pub(crate) async fn authorize(
        &self,
        group: &HostedGroup,
        role: Option<GroupRole>,
        object: Object,
        action: Action,
    ) -> AppResult<()> {
        let viewer = self.viewer()?;
        debug_assert_eq!(group.association_id(), self.tenant.id);
        let group_id = group.id();
        let principal = principal_in_group(viewer, group_id, role);
        if self.services.authorizer().allows(
            &principal,
            Domain::Group(group_id.uuid()),
            object,
            action,
        ) {
            return Ok(());
        }
        let entry = self
            .entry(AuditAction::AccessDenied)
            .on(object.as_str(), action.as_str())
            .with_detail("group_id", group_id.to_string());
        self.refuse(entry).await;
        Err(AppError::not_found())
    }

    /// Records a refusal for this request (queued: see [`crate::audit::DenialLog`]).
    pub(crate) async fn refuse(&self, entry: AuditEntry) {
        self.services.record_refusal(self.tenant, entry).await;
    }

    /// Writes a live event in the transaction; it is published after the commit.
    pub(crate) async fn event(&mut self, group: &HostedGroup, spec: EventSpec) -> AppResult<()> {
        self.events(group, vec![spec]).await
    }

    /// Writes several live events of one group in one statement, in the order given.
    pub(crate) async fn events(
        &mut self,
        group: &HostedGroup,
        specs: Vec<EventSpec>,
    ) -> AppResult<()> {
        let actor_id = self.actor_id();
        let rows: Vec<repo::NewEvent<'_>> = specs
            .iter()
            .map(|spec| repo::NewEvent {
                topic_id: spec.topic_id,
                kind: spec.kind.as_str(),
                scope: spec.scope,
                actor_id,
                topic_author_id: spec.topic_author_id,
                comment_ids: &spec.comment_ids,
                user_id: spec.user_id,
            })
            .collect();
        let (ids, xid) = repo::insert_events(&mut self.tx, group, &rows).await?;
        drop(rows);
        if ids.len() != specs.len() {
            return Err(AppError::internal(std::io::Error::other(
                "an event was not written",
            )));
        }
        let xid = u64::try_from(xid).ok();
        for (spec, id) in specs.into_iter().zip(ids) {
            self.events.push(spec.published(id, xid, group, actor_id));
        }
        Ok(())
    }

    /// An event a repository function wrote itself (in this transaction): published after the
    /// commit like the others.
    pub(crate) fn written_event(&mut self, group: &HostedGroup, spec: EventSpec, id: i64) {
        let actor_id = self.actor_id();
        self.events.push(spec.published(id, None, group, actor_id));
    }

    /// Writes the audit entries, commits and publishes the events. Once called it finishes
    /// even if the caller is dropped, so an answer lost on the way never means a lost write.
    pub(crate) async fn commit(self) -> AppResult<()> {
        let Change {
            services,
            mut tx,
            audit,
            events,
            ..
        } = self;
        let bus = services.bus().clone();
        let finish = tokio::spawn(async move {
            if !audit.is_empty() {
                record_batch(&mut tx, &audit).await?;
            }
            tx.commit().await?;
            for event in events {
                // A failure only delays live delivery: the event is in PostgreSQL and clients
                // catch up when they reconnect.
                if let Err(e) = bus.publish(&event).await {
                    tracing::warn!(error = %e, event_id = event.id, "could not publish a live event");
                }
            }
            AppResult::Ok(())
        });
        finish.await.map_err(AppError::internal)?
    }
}

#[cfg(test)]
mod tests {
    /// No service writes to an association except through a `Change`: a read-write transaction
    /// or an audit append anywhere else in the domain is a second, unchecked write path.
    #[test]
    fn only_the_unit_of_change_opens_a_write_transaction() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
        let mut offenders = Vec::new();
        for entry in std::fs::read_dir(&dir).expect("the domain's sources") {
            let path = entry.expect("a directory entry").path();
            let name = path
                .file_name()
                .and_then(|n| n.to_str())
                .unwrap_or_default();
            // The audit module owns the log's own writers (refusals, export, purge).
            if matches!(name, "change.rs" | "audit.rs") {
                continue;
            }
            let text = std::fs::read_to_string(&path).unwrap_or_default();
            for needle in [
                ".tenant_tx(",
                "record(&mut",
                "record_batch(",
                "insert_events(",
            ] {
                if text.contains(needle) {
                    offenders.push(format!("{name}: {needle}"));
                }
            }
        }
        assert!(
            offenders.is_empty(),
            "writes outside the unit of change: {offenders:?}"
        );
    }
}
