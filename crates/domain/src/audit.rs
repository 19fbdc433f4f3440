//! The audit log (MHLW guideline 6.0: who did what, when, from where): recording, the
//! administrators' read side (list and CSV export), verification and the retention purge.
//!
//! Recording happens inside the transaction of the audited work ([`record`]), so the work and
//! its record commit or roll back together. Reading is for administrators: this module does not
//! authorize. **Callers must have authorized `audit.read` on the tenant** before calling
//! [`Services::audit_list`] or [`Services::audit_export_csv`].
//!
//! Storage, the hash chain and its canonical encoding are in [`musubi_db::audit`] and
//! `docs/audit.md`.

use crate::types::PersonId;
use crate::Actor;
use crate::{AppError, AppResult, Services, Tenant};
use chrono::SecondsFormat;
use musubi_config::time::jst;
use musubi_db::audit as repo;
use musubi_db::Db;
use serde_json::{Map, Value};
use sqlx::PgConnection;
use std::time::Duration;
use tokio::io::{AsyncWrite, AsyncWriteExt};

pub use musubi_db::audit::{
    AuditFilter, AuditRecord, BreakReason, BrokenLink, ChainHead, PurgeReport, VerifyReport,
};

/// What was done. The codes are stable: stored in every record, filtered on, exported. Never
/// rename one; add a new variant instead.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AuditAction {
    AuthSignIn,
    AuthSignInFailed,
    AuthSignOut,
    MemberInvite,
    MemberDeactivate,
    MemberReactivate,
    MemberChangeRole,
    MemberSignOut,
    MemberResetSecondFactor,
    /// Someone asked for something they may not see; they were answered "not found".
    AccessDenied,
    PatientRead,
    TopicRead,
    SettingsUpdate,
    /// An administrator exported the audit log.
    AuditExport,
    /// The retention purge removed old records (written by the purge itself).
    AuditPurge,
    /// Someone accepted an invitation and became a member.
    MemberJoin,
    /// An administrator revoked a pending invitation (or its e-mail could not be sent).
    MemberInviteRevoke,
    /// A password-reset link was sent to the person.
    AuthPasswordResetRequest,
    /// The person chose a new password with a reset link; their sessions ended.
    AuthPasswordReset,
    /// The person registered a passkey.
    AuthPasskeyAdded,
    /// The person removed one of their passkeys.
    AuthPasskeyRemoved,
    /// A group was created.
    GroupCreate,
    /// A group's name, description or settings changed.
    GroupUpdate,
    /// Someone opened a patient group (its topic list).
    GroupRead,
    /// A group owner invited someone.
    GroupMemberInvite,
    /// Someone became a group member (accepted, or was approved).
    GroupMemberJoin,
    /// Someone asked to join a general group.
    GroupJoinRequest,
    /// Someone left or was removed from a group, or declined.
    GroupMemberRemove,
    /// A group member's role changed.
    GroupMemberRole,
    /// Someone marked a whole group as read.
    GroupMarkRead,
    /// A topic was posted.
    TopicCreate,
    /// A topic's title, scope, pin or closed state changed.
    TopicUpdate,
    /// A comment was posted.
    CommentCreate,
    /// A comment was edited (the earlier text is kept).
    CommentEdit,
    /// A comment was deleted (the record is kept).
    CommentDelete,
    /// Someone pressed 「確認しました」.
    CommentAcknowledge,
    /// A patient was registered (with their group).
    PatientCreate,
    /// A register entry was corrected.
    PatientUpdate,
    /// Someone listed or searched the register (the entries shown are named).
    PatientList,
    /// Someone exported the register as CSV.
    PatientExport,
    /// Someone imported (or checked, on a dry run) a CSV file into the register.
    PatientImport,
    /// An owner set or cleared when someone's group membership ends by itself.
    GroupMemberUntil,
    /// The operator recorded or ended two associations' agreement to share their directories.
    AssociationNeighbours,
    /// Someone shared a file with a group.
    FileUpload,
    /// Someone opened or downloaded a shared file.
    FileDownload,
    /// A shared file was deleted (by its uploader or an owner).
    FileDelete,
    /// Someone searched (the query's text and how many results, in each association looked
    /// in).
    Search,
    /// Someone opened a calendar (a month or a list).
    CalendarRead,
    /// Someone put an event on a group's calendar.
    EventCreate,
    /// An event was changed, or one occurrence of a series cancelled.
    EventUpdate,
    /// An event was deleted.
    EventDelete,
    /// Someone entered an absence of theirs.
    AbsenceCreate,
    /// Someone withdrew an absence of theirs.
    AbsenceDelete,
    /// A group's duty shape or participants changed.
    DutySettings,
    /// A month's duty rotation was drafted.
    DutyDraft,
    /// An owner assigned one duty slot by hand.
    DutyAssign,
    /// A month's duty rotation was published.
    DutyPublish,
    /// A doctor asked a colleague to take (or exchange) a duty.
    DutySwapRequest,
    /// A swap was accepted, declined or withdrawn.
    DutySwapAnswer,
    /// Someone created a personal calendar feed address.
    FeedCreate,
    /// Someone revoked a calendar feed address.
    FeedRevoke,
    /// A calendar application fetched a personal feed.
    FeedRead,
    /// Someone changed how they are told of unread comments by e-mail.
    NotificationSettings,
    /// Someone stopped or resumed mail about one group.
    NotificationMute,
    /// Someone acknowledged a 至急 comment.
    UrgentAcknowledge,
    /// Nobody had acknowledged a 至急 comment in time: the people asked were asked again.
    UrgentRemind,
    /// Still nobody: the doctor on duty was asked (or there was none).
    UrgentEscalate,
    /// Someone started a conversation of direct messages (its first message is a
    /// `comment.create` of its own).
    MessageStart,
    /// A participant added people to a conversation.
    MessageAdd,
    /// Someone left a conversation.
    MessageLeave,
}

impl AuditAction {
    pub const ALL: &'static [AuditAction] = &[
        AuditAction::AuthSignIn,
        AuditAction::AuthSignInFailed,
        AuditAction::AuthSignOut,
        AuditAction::MemberInvite,
        AuditAction::MemberDeactivate,
        AuditAction::MemberReactivate,
        AuditAction::MemberChangeRole,
        AuditAction::MemberSignOut,
        AuditAction::MemberResetSecondFactor,
        AuditAction::AccessDenied,
        AuditAction::PatientRead,
        AuditAction::TopicRead,
        AuditAction::SettingsUpdate,
        AuditAction::AuditExport,
        AuditAction::AuditPurge,
        AuditAction::MemberJoin,
        AuditAction::MemberInviteRevoke,
        AuditAction::AuthPasswordResetRequest,
        AuditAction::AuthPasswordReset,
        AuditAction::AuthPasskeyAdded,
        AuditAction::AuthPasskeyRemoved,
        AuditAction::GroupCreate,
        AuditAction::GroupUpdate,
        AuditAction::GroupRead,
        AuditAction::GroupMemberInvite,
        AuditAction::GroupMemberJoin,
        AuditAction::GroupJoinRequest,
        AuditAction::GroupMemberRemove,
        AuditAction::GroupMemberRole,
        AuditAction::GroupMarkRead,
        AuditAction::TopicCreate,
        AuditAction::TopicUpdate,
        AuditAction::CommentCreate,
        AuditAction::CommentEdit,
        AuditAction::CommentDelete,
        AuditAction::CommentAcknowledge,
        AuditAction::PatientCreate,
        AuditAction::PatientUpdate,
        AuditAction::PatientList,
        AuditAction::PatientExport,
        AuditAction::PatientImport,
        AuditAction::GroupMemberUntil,
        AuditAction::AssociationNeighbours,
        AuditAction::FileUpload,
        AuditAction::FileDownload,
        AuditAction::FileDelete,
        AuditAction::Search,
        AuditAction::CalendarRead,
        AuditAction::EventCreate,
        AuditAction::EventUpdate,
        AuditAction::EventDelete,
        AuditAction::AbsenceCreate,
        AuditAction::AbsenceDelete,
        AuditAction::DutySettings,
        AuditAction::DutyDraft,
        AuditAction::DutyAssign,
        AuditAction::DutyPublish,
        AuditAction::DutySwapRequest,
        AuditAction::DutySwapAnswer,
        AuditAction::FeedCreate,
        AuditAction::FeedRevoke,
        AuditAction::FeedRead,
        AuditAction::NotificationSettings,
        AuditAction::NotificationMute,
        AuditAction::UrgentAcknowledge,
        AuditAction::UrgentRemind,
        AuditAction::UrgentEscalate,
        AuditAction::MessageStart,
        AuditAction::MessageAdd,
        AuditAction::MessageLeave,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            AuditAction::AuthSignIn => "auth.sign_in",
            AuditAction::AuthSignInFailed => "auth.sign_in_failed",
            AuditAction::AuthSignOut => "auth.sign_out",
            AuditAction::MemberInvite => "member.invite",
            AuditAction::MemberDeactivate => "member.deactivate",
            AuditAction::MemberReactivate => "member.reactivate",
            AuditAction::MemberChangeRole => "member.change_role",
            AuditAction::MemberSignOut => "member.sign_out",
            AuditAction::MemberResetSecondFactor => "member.reset_second_factor",
            AuditAction::AccessDenied => "access.denied",
            AuditAction::PatientRead => "patient.read",
            AuditAction::TopicRead => "topic.read",
            AuditAction::SettingsUpdate => "settings.update",
            AuditAction::AuditExport => "audit.export",
            AuditAction::AuditPurge => repo::PURGE_ACTION,
            AuditAction::MemberJoin => "member.join",
            AuditAction::MemberInviteRevoke => "member.invite_revoke",
            AuditAction::AuthPasswordResetRequest => "auth.password_reset_request",
            AuditAction::AuthPasswordReset => "auth.password_reset",
            AuditAction::AuthPasskeyAdded => "auth.passkey_added",
            AuditAction::AuthPasskeyRemoved => "auth.passkey_removed",
            AuditAction::GroupCreate => "group.create",
            AuditAction::GroupUpdate => "group.update",
            AuditAction::GroupRead => "group.read",
            AuditAction::GroupMemberInvite => "group.member_invite",
            AuditAction::GroupMemberJoin => "group.member_join",
            AuditAction::GroupJoinRequest => "group.join_request",
            AuditAction::GroupMemberRemove => "group.member_remove",
            AuditAction::GroupMemberRole => "group.member_role",
            AuditAction::GroupMarkRead => "group.mark_read",
            AuditAction::TopicCreate => "topic.create",
            AuditAction::TopicUpdate => "topic.update",
            AuditAction::CommentCreate => "comment.create",
            AuditAction::CommentEdit => "comment.edit",
            AuditAction::CommentDelete => "comment.delete",
            AuditAction::CommentAcknowledge => "comment.acknowledge",
            AuditAction::PatientCreate => "patient.create",
            AuditAction::PatientUpdate => "patient.update",
            AuditAction::PatientList => "patient.list",
            AuditAction::PatientExport => "patient.export",
            AuditAction::PatientImport => "patient.import",
            AuditAction::GroupMemberUntil => "group.member_until",
            AuditAction::AssociationNeighbours => "association.neighbours",
            AuditAction::FileUpload => "file.upload",
            AuditAction::FileDownload => "file.download",
            AuditAction::FileDelete => "file.delete",
            AuditAction::Search => "search.query",
            AuditAction::CalendarRead => "calendar.read",
            AuditAction::EventCreate => "event.create",
            AuditAction::EventUpdate => "event.update",
            AuditAction::EventDelete => "event.delete",
            AuditAction::AbsenceCreate => "absence.create",
            AuditAction::AbsenceDelete => "absence.delete",
            AuditAction::DutySettings => "duty.settings",
            AuditAction::DutyDraft => "duty.draft",
            AuditAction::DutyAssign => "duty.assign",
            AuditAction::DutyPublish => "duty.publish",
            AuditAction::DutySwapRequest => "duty.swap_request",
            AuditAction::DutySwapAnswer => "duty.swap_answer",
            AuditAction::FeedCreate => "feed.create",
            AuditAction::FeedRevoke => "feed.revoke",
            AuditAction::FeedRead => "feed.read",
            AuditAction::NotificationSettings => "notification.settings",
            AuditAction::NotificationMute => "notification.mute",
            AuditAction::UrgentAcknowledge => "urgent.acknowledge",
            AuditAction::UrgentRemind => "urgent.remind",
            AuditAction::UrgentEscalate => "urgent.escalate",
            AuditAction::MessageStart => "message.start",
            AuditAction::MessageAdd => "message.add",
            AuditAction::MessageLeave => "message.leave",
        }
    }
}

/// Where a request came from, as the web and GraphQL layers see it (after trusted-proxy
/// handling). Empty for work no request caused.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RequestMeta {
    pub ip: String,
    pub user_agent: String,
}

impl RequestMeta {
    pub fn new(ip: impl Into<String>, user_agent: impl Into<String>) -> Self {
        Self {
            ip: ip.into(),
            user_agent: user_agent.into(),
        }
    }
}

/// Most ids one record lists in `detail.object_ids` (see [`AuditEntry::on_many`]).
pub const MAX_OBJECT_IDS: usize = 1000;

/// One audit record to write.
///
/// **`detail` holds ids, codes and counts only — never patient free text** (names, notes,
/// comment bodies, search words): the audit log is kept for years, exported to CSV and read by
/// administrators who may not see patient information. Numbers in `detail` must be integers.
#[derive(Debug, Clone)]
pub struct AuditEntry {
    /// The person (id, display name at the time); `None` for the system.
    pub actor: Option<(PersonId, String)>,
    pub action: AuditAction,
    /// (object type, object id), e.g. ("patient", "0190…").
    pub object: Option<(String, String)>,
    pub ip: String,
    pub user_agent: String,
    /// A JSON object; see the type's documentation for what may go here.
    pub detail: Value,
}

impl AuditEntry {
    /// An entry for `action`, caused by the request described by `meta`, by nobody yet.
    pub fn new(action: AuditAction, meta: &RequestMeta) -> Self {
        Self {
            actor: None,
            action,
            object: None,
            ip: meta.ip.clone(),
            user_agent: meta.user_agent.clone(),
            detail: Value::Object(Map::new()),
        }
    }

    /// Sets the actor: the person's id and their display name now.
    pub fn by(mut self, id: PersonId, label: impl Into<String>) -> Self {
        self.actor = Some((id, label.into()));
        self
    }

    /// Sets the one object acted on.
    pub fn on(mut self, object_type: impl Into<String>, object_id: impl ToString) -> Self {
        self.object = Some((object_type.into(), object_id.to_string()));
        self
    }

    /// One record for many objects of one kind (e.g. the comments of a long topic read at
    /// once): `object` becomes the container (pass it with [`AuditEntry::on`]) and
    /// `detail.object_ids` lists the ids, at most [`MAX_OBJECT_IDS`]; `detail.object_count`
    /// holds the full count. Filtering by object id finds these records too.
    pub fn on_many<I, T>(mut self, ids: I) -> Self
    where
        I: IntoIterator<Item = T>,
        T: ToString,
    {
        let mut count = 0u64;
        let mut listed = Vec::new();
        for id in ids {
            if listed.len() < MAX_OBJECT_IDS {
                listed.push(Value::String(id.to_string()));
            }
            count += 1;
        }
        self = self.with_detail("object_ids", Value::Array(listed));
        self.with_detail("object_count", count)
    }

    /// Adds `key: value` to `detail` (ids and codes only).
    pub fn with_detail(mut self, key: &str, value: impl Into<Value>) -> Self {
        if !self.detail.is_object() {
            self.detail = Value::Object(Map::new());
        }
        if let Value::Object(m) = &mut self.detail {
            m.insert(key.to_owned(), value.into());
        }
        self
    }

    fn as_record(&self) -> repo::NewRecord<'_> {
        repo::NewRecord {
            actor_id: self.actor.as_ref().map(|(id, _)| *id),
            actor_label: self
                .actor
                .as_ref()
                .map_or(repo::SYSTEM_ACTOR, |(_, l)| l.as_str()),
            action: self.action.as_str(),
            object_type: self.object.as_ref().map(|(t, _)| t.as_str()),
            object_id: self.object.as_ref().map(|(_, i)| i.as_str()),
            ip: &self.ip,
            user_agent: &self.user_agent,
            detail: &self.detail,
        }
    }
}

/// Records `entry` in the association log, inside the caller's tenant transaction (from
/// `Db::tenant_tx`); returns its seq. Record late in the transaction: the log stays locked for
/// other appenders until the transaction ends.
pub async fn record(conn: &mut PgConnection, entry: &AuditEntry) -> AppResult<i64> {
    Ok(repo::append(conn, &entry.as_record()).await?)
}

/// Records several entries with one lock and one insert; returns their seqs.
pub async fn record_batch(conn: &mut PgConnection, entries: &[AuditEntry]) -> AppResult<Vec<i64>> {
    let records: Vec<_> = entries.iter().map(AuditEntry::as_record).collect();
    Ok(repo::append_batch(conn, &records).await?)
}

/// Records a platform event (operators, cross-association work) in `core.platform_audit_log`.
pub async fn record_platform(conn: &mut PgConnection, entry: &AuditEntry) -> AppResult<i64> {
    Ok(repo::append_platform(conn, &entry.as_record()).await?)
}

/// Longest action filter, in characters.
pub const MAX_ACTION_FILTER_CHARS: usize = 64;
/// Largest page of [`list`].
pub const MAX_PAGE_SIZE: u32 = 200;
pub const DEFAULT_PAGE_SIZE: u32 = 50;
/// Records per database round trip while exporting.
const EXPORT_CHUNK: i64 = 500;

/// One page of the list, newest first.
#[derive(Debug, Clone)]
pub struct AuditPage {
    pub records: Vec<AuditRecord>,
    /// Pass as `before` for the next (older) page; `None` on the last page.
    pub next_before: Option<i64>,
}

/// The filter with its terms cleaned by the text rule (see [`crate::text`]).
fn check_filter(filter: &AuditFilter) -> AppResult<AuditFilter> {
    let term = |field, s: &Option<String>, max| match s {
        Some(s) => crate::text::search_term(field, s, max),
        None => Ok(None),
    };
    Ok(AuditFilter {
        action_prefix: term("action", &filter.action_prefix, MAX_ACTION_FILTER_CHARS)?,
        object_type: term("objectType", &filter.object_type, repo::MAX_OBJECT_CHARS)?,
        object_id: term("objectId", &filter.object_id, repo::MAX_OBJECT_CHARS)?,
        group_id: term("groupId", &filter.group_id, repo::MAX_OBJECT_CHARS)?,
        ..filter.clone()
    })
}

/// Refusals are written by one task per process, off the request's path. A refused id then
/// answers as fast as an unknown one (nothing to learn from timing), and a request that is
/// refused never waits for a second connection of its association's small pool while its own
/// transaction holds one. Records wait in memory for milliseconds; a full queue (a flood of
/// refusals) slows the refused requests down rather than dropping records, and shutdown flushes.
#[derive(Clone)]
pub(crate) struct DenialLog {
    queue: tokio::sync::mpsc::Sender<DenialMsg>,
}

enum DenialMsg {
    Record(Tenant, Box<AuditEntry>),
    Flush(tokio::sync::oneshot::Sender<()>),
}

const DENIAL_QUEUE: usize = 4096;
const DENIAL_BATCH: usize = 256;

impl DenialLog {
    pub(crate) fn start(db: Db) -> Self {
        let (queue, rx) = tokio::sync::mpsc::channel(DENIAL_QUEUE);
        tokio::spawn(write_denials(db, rx));
        Self { queue }
    }

    pub(crate) async fn record(&self, tenant: &Tenant, entry: AuditEntry) {
        let msg = DenialMsg::Record(tenant.clone(), Box::new(entry));
        if self.queue.send(msg).await.is_err() {
            tracing::error!("the refusal log's writer has stopped; a refusal went unrecorded");
        }
    }

    /// Returns once every refusal queued before the call is in the database.
    pub(crate) async fn flush(&self) {
        let (done, wait) = tokio::sync::oneshot::channel();
        if self.queue.send(DenialMsg::Flush(done)).await.is_ok() {
            let _ = wait.await;
        }
    }
}

async fn write_denials(db: Db, mut rx: tokio::sync::mpsc::Receiver<DenialMsg>) {
    let mut msgs = Vec::with_capacity(DENIAL_BATCH);
    let mut pending: Vec<(Tenant, Box<AuditEntry>)> = Vec::new();
    while rx.recv_many(&mut msgs, DENIAL_BATCH).await > 0 {
        for msg in msgs.drain(..) {
            match msg {
                DenialMsg::Record(tenant, entry) => pending.push((tenant, entry)),
                DenialMsg::Flush(done) => {
                    write_denial_batch(&db, &mut pending).await;
                    let _ = done.send(());
                }
            }
        }
        write_denial_batch(&db, &mut pending).await;
    }
}

/// One transaction per association, in the order the refusals came; retried briefly, since a
/// record that cannot be written is lost.
async fn write_denial_batch(db: &Db, pending: &mut Vec<(Tenant, Box<AuditEntry>)>) {
    while let Some((tenant, _)) = pending.first() {
        let tenant = tenant.clone();
        let (mine, rest): (Vec<_>, Vec<_>) =
            pending.drain(..).partition(|(t, _)| t.id == tenant.id);
        *pending = rest;
        let entries: Vec<AuditEntry> = mine.into_iter().map(|(_, e)| *e).collect();
        for attempt in 0..4u32 {
            let written = async {
                let mut tx = db.tenant_tx(&tenant).await?;
                record_batch(&mut tx, &entries).await?;
                tx.commit().await.map_err(AppError::internal)
            }
            .await;
            match written {
                Ok(()) => break,
                Err(e) if attempt < 3 => {
                    tracing::warn!(error = %e, association = %tenant.id, "writing refusals failed; retrying");
                    tokio::time::sleep(Duration::from_millis(200 << attempt)).await;
                }
                Err(e) => {
                    metrics::counter!("musubi_audit_refusals_lost_total")
                        .increment(entries.len() as u64);
                    tracing::error!(error = %e, association = %tenant.id, lost = entries.len(), "refusals could not be recorded");
                }
            }
        }
    }
}

/// Lists the association's audit records, newest first, `limit` (default 50, at most 200) at a
/// time, older than seq `before`. **The caller must have authorized `audit.read` on `tenant`.**
pub async fn list(
    db: &Db,
    tenant: &Tenant,
    filter: &AuditFilter,
    before: Option<i64>,
    limit: Option<u32>,
) -> AppResult<AuditPage> {
    let filter = &check_filter(filter)?;
    let limit = limit.unwrap_or(DEFAULT_PAGE_SIZE).clamp(1, MAX_PAGE_SIZE);
    let mut tx = db.tenant_tx(tenant).await?;
    // One more than asked tells whether an older page exists.
    let mut records = repo::list(&mut tx, filter, before, i64::from(limit) + 1).await?;
    tx.commit().await.map_err(AppError::internal)?;
    let next_before = if records.len() > limit as usize {
        records.truncate(limit as usize);
        records.last().map(|r| r.seq)
    } else {
        None
    };
    Ok(AuditPage {
        records,
        next_before,
    })
}

/// Writes the association's audit records matching `filter` to `out` as CSV (UTF-8 with a BOM,
/// so Excel opens it correctly; times in JST), newest first, reading the database in bounded
/// chunks. The export itself is first recorded as `audit.export` by `actor`. Returns the number
/// of records written. **The caller must have authorized `audit.read` (and `audit.export`) on
/// `tenant`.**
pub async fn export_csv<W: AsyncWrite + Unpin>(
    db: &Db,
    tenant: &Tenant,
    filter: &AuditFilter,
    actor: Option<(PersonId, String)>,
    meta: &RequestMeta,
    out: &mut W,
) -> AppResult<u64> {
    export_csv_headed(db, tenant, filter, actor, meta, &CSV_COLUMNS, out).await
}

/// [`export_csv`] with the column names of the reader's language (the values stay the same).
pub async fn export_csv_headed<W: AsyncWrite + Unpin>(
    db: &Db,
    tenant: &Tenant,
    filter: &AuditFilter,
    actor: Option<(PersonId, String)>,
    meta: &RequestMeta,
    header: &[&str; CSV_COLUMNS.len()],
    out: &mut W,
) -> AppResult<u64> {
    let filter = &check_filter(filter)?;
    let mut entry = AuditEntry::new(AuditAction::AuditExport, meta)
        .with_detail("filter", filter_detail(filter));
    entry.actor = actor;
    // The CLI exports without services; the record still precedes the data.
    let mut tx = db.tenant_tx(tenant).await?;
    record(&mut tx, &entry).await?;
    tx.commit().await?;

    let mut buf = Vec::with_capacity(64 * 1024);
    buf.extend_from_slice(CSV_BOM);
    let mut head = String::new();
    push_row(&mut head, header.iter().copied());
    buf.extend_from_slice(head.as_bytes());
    let mut before = None;
    let mut written = 0u64;
    loop {
        let mut tx = db.tenant_tx(tenant).await?;
        let rows = repo::list(&mut tx, filter, before, EXPORT_CHUNK).await?;
        tx.commit().await.map_err(AppError::internal)?;
        for r in &rows {
            buf.extend_from_slice(csv_row(r).as_bytes());
        }
        written += rows.len() as u64;
        out.write_all(&buf).await.map_err(AppError::internal)?;
        buf.clear();
        match rows.last() {
            Some(last) if rows.len() as i64 == EXPORT_CHUNK => before = Some(last.seq),
            _ => break,
        }
    }
    out.flush().await.map_err(AppError::internal)?;
    Ok(written)
}

/// Verifies the association's hash chain.
pub async fn verify_association(db: &Db, tenant: &Tenant) -> AppResult<VerifyReport> {
    let mut tx = db.tenant_tx(tenant).await?;
    let report = repo::verify(&mut tx).await?;
    tx.commit().await.map_err(AppError::internal)?;
    Ok(report)
}

/// Verifies the platform log's hash chain.
pub async fn verify_platform(db: &Db) -> AppResult<VerifyReport> {
    let mut tx = db.core_tx().await?;
    let report = repo::verify_platform(&mut tx).await?;
    tx.commit().await.map_err(AppError::internal)?;
    Ok(report)
}

/// Applies the association's retention (`audit_retention_years`, default 5): deletes older
/// records and notes it in an `audit.purge` record. `None` when nothing was old enough.
pub async fn purge_association(db: &Db, tenant: &Tenant) -> AppResult<Option<PurgeReport>> {
    let mut tx = db.tenant_tx(tenant).await?;
    let report = repo::purge(&mut tx).await?;
    tx.commit().await.map_err(AppError::internal)?;
    Ok(report)
}

/// The entry points' view: the same operations on the services handle.
impl Services {
    /// Records one entry that comes with no other change (a failed sign-in, a refused
    /// account-wide action), as a change of its own.
    pub(crate) async fn audit_record(&self, tenant: &Tenant, entry: &AuditEntry) -> AppResult<()> {
        let meta = RequestMeta::new(entry.ip.clone(), entry.user_agent.clone());
        let mut c = self.change_without_viewer(tenant, &meta).await?;
        c.audit(entry.clone());
        c.commit().await
    }

    /// The association's audit log for its administrators (`audit.read`).
    pub async fn audit_list(
        &self,
        actor: &Actor<'_>,
        filter: &AuditFilter,
        before: Option<i64>,
        limit: Option<u32>,
    ) -> AppResult<AuditPage> {
        self.authorize_in(
            actor,
            musubi_authz::Object::Audit,
            musubi_authz::Action::Read,
        )
        .await?;
        self.flush_refusals().await;
        list(self.db(), actor.tenant, filter, before, limit).await
    }

    /// Waits until every refusal recorded so far is in the database (the audit log's readers
    /// and shutdown call this).
    pub async fn flush_refusals(&self) {
        self.denials().flush().await;
    }

    /// Records a refusal without delaying the answer (see [`DenialLog`]).
    pub(crate) async fn record_refusal(&self, tenant: &Tenant, entry: AuditEntry) {
        self.denials().record(tenant, entry).await;
    }

    /// CSV export for the association's administrators (`audit.export`); the export itself
    /// is audited.
    pub async fn audit_export_csv<W: AsyncWrite + Unpin>(
        &self,
        actor: &Actor<'_>,
        filter: &AuditFilter,
        header: &[&str; CSV_COLUMNS.len()],
        out: &mut W,
    ) -> AppResult<u64> {
        self.authorize_in(
            actor,
            musubi_authz::Object::Audit,
            musubi_authz::Action::Export,
        )
        .await?;
        self.flush_refusals().await;
        let by = Some((actor.viewer.user.id, actor.viewer.user.name.clone()));
        export_csv_headed(self.db(), actor.tenant, filter, by, actor.meta, header, out).await
    }

    pub(crate) async fn audit_verify(&self, tenant: &Tenant) -> AppResult<VerifyReport> {
        self.flush_refusals().await;
        verify_association(self.db(), tenant).await
    }

    pub(crate) async fn audit_verify_platform(&self) -> AppResult<VerifyReport> {
        verify_platform(self.db()).await
    }

    pub(crate) async fn audit_purge(&self, tenant: &Tenant) -> AppResult<Option<PurgeReport>> {
        purge_association(self.db(), tenant).await
    }
}

fn filter_detail(f: &AuditFilter) -> Value {
    let mut m = Map::new();
    let rfc = |t: chrono::DateTime<chrono::Utc>| t.to_rfc3339_opts(SecondsFormat::Micros, true);
    if let Some(t) = f.from {
        m.insert("from".into(), rfc(t).into());
    }
    if let Some(t) = f.until {
        m.insert("until".into(), rfc(t).into());
    }
    if let Some(a) = f.actor_id {
        m.insert("actor_id".into(), a.to_string().into());
    }
    for (k, v) in [
        ("action", &f.action_prefix),
        ("object_type", &f.object_type),
        ("object_id", &f.object_id),
        ("group_id", &f.group_id),
    ] {
        if let Some(v) = v {
            m.insert(k.into(), v.clone().into());
        }
    }
    Value::Object(m)
}

/// The outcome of [`purge_all`] for one association.
#[derive(Debug)]
pub struct PurgeOutcome {
    pub slug: String,
    pub result: AppResult<Option<PurgeReport>>,
}

/// Applies every association's retention, one association after another; a failure in one does
/// not stop the others. The platform log is not purged (see docs/audit.md). Called daily by the
/// server ([`spawn_daily_purge`]) and by `musubi audit purge`.
pub async fn purge_all(db: &Db) -> AppResult<Vec<PurgeOutcome>> {
    let mut outcomes = Vec::new();
    for row in db.list_associations().await? {
        let result = match db.resolve_tenant(&row.slug).await {
            Ok(tenant) => purge_association(db, &tenant).await,
            Err(e) => Err(e.into()),
        };
        outcomes.push(PurgeOutcome {
            slug: row.slug,
            result,
        });
    }
    Ok(outcomes)
}

/// The daily purge task; stops when dropped.
pub struct PurgeTask(tokio::task::JoinHandle<()>);

impl Drop for PurgeTask {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// First run shortly after start (not at once: start-up has enough to do), then every day.
/// Several replicas may all run it: the purge locks each log, and a second run finds nothing.
pub fn spawn_daily_purge(db: Db) -> PurgeTask {
    const FIRST_AFTER: Duration = Duration::from_secs(10 * 60);
    const EVERY: Duration = Duration::from_secs(24 * 60 * 60);
    PurgeTask(tokio::spawn(async move {
        let mut ticks = tokio::time::interval_at(tokio::time::Instant::now() + FIRST_AFTER, EVERY);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            ticks.tick().await;
            match purge_all(&db).await {
                Ok(outcomes) => {
                    for o in outcomes {
                        match o.result {
                            Ok(Some(r)) => tracing::info!(
                                association = %o.slug,
                                count = r.count,
                                "audit retention applied"
                            ),
                            Ok(None) => {}
                            Err(e) => tracing::error!(
                                association = %o.slug,
                                error = ?e,
                                "audit purge failed"
                            ),
                        }
                    }
                }
                Err(e) => tracing::error!(error = ?e, "audit purge could not list associations"),
            }
        }
    }))
}

// ---------------------------------------------------------------------------------------------
// CSV (RFC 4180)
// ---------------------------------------------------------------------------------------------

/// UTF-8 byte order mark: without it Excel (Japanese locale) reads the file as Shift_JIS.
pub const CSV_BOM: &[u8] = b"\xEF\xBB\xBF";
pub const CSV_COLUMNS: [&str; 9] = [
    "seq",
    "time",
    "actor",
    "actor_id",
    "action",
    "object",
    "ip",
    "user_agent",
    "detail",
];

/// Quotes a field when RFC 4180 requires it. A field that a spreadsheet would run as a
/// formula (`=`, `+`, `-`, `@`, tab, CR first) gets a leading `'`: user agents and names come
/// from outside.
fn push_field(out: &mut String, value: &str) {
    let guarded;
    let value = if value.starts_with(['=', '+', '-', '@', '\t', '\r']) {
        guarded = format!("'{value}");
        guarded.as_str()
    } else {
        value
    };
    if value.contains([',', '"', '\r', '\n']) {
        out.push('"');
        out.push_str(&value.replace('"', "\"\""));
        out.push('"');
    } else {
        out.push_str(value);
    }
}

pub(crate) fn push_row<'a>(out: &mut String, fields: impl IntoIterator<Item = &'a str>) {
    for (i, f) in fields.into_iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        push_field(out, f);
    }
    out.push_str("\r\n");
}

pub fn csv_header() -> String {
    let mut s = String::new();
    push_row(&mut s, CSV_COLUMNS);
    s
}

/// One record as a CSV line (CRLF-terminated).
pub fn csv_row(r: &AuditRecord) -> String {
    let seq = r.seq.to_string();
    let time =
        r.at.with_timezone(&jst())
            .to_rfc3339_opts(SecondsFormat::Micros, false);
    let actor_id = r.actor_id.map(|u| u.to_string()).unwrap_or_default();
    let object = match (&r.object_type, &r.object_id) {
        (Some(t), Some(id)) => format!("{t}:{id}"),
        (Some(t), None) => t.clone(),
        (None, Some(id)) => id.clone(),
        (None, None) => String::new(),
    };
    let detail = repo::canonical_json(&r.detail);
    let mut s = String::new();
    push_row(
        &mut s,
        [
            seq.as_str(),
            time.as_str(),
            r.actor_label.as_str(),
            actor_id.as_str(),
            r.action.as_str(),
            object.as_str(),
            r.ip.as_str(),
            r.user_agent.as_str(),
            detail.as_str(),
        ],
    );
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;
    use serde_json::json;

    #[test]
    fn action_codes_are_unique_dotted_and_accepted_by_the_log() {
        let mut seen = std::collections::HashSet::new();
        for a in AuditAction::ALL {
            assert!(repo::is_valid_action(a.as_str()), "{a:?}");
            assert!(seen.insert(a.as_str()), "duplicate code {}", a.as_str());
        }
        assert_eq!(AuditAction::AuditPurge.as_str(), "audit.purge");
    }

    fn sample() -> AuditRecord {
        AuditRecord {
            seq: 7,
            at: chrono::Utc
                .with_ymd_and_hms(2025, 3, 31, 15, 4, 5)
                .single()
                .expect("valid time"),
            actor_id: None,
            actor_label: "山田, \"太郎\"".into(),
            action: "patient.read".into(),
            object_type: Some("patient".into()),
            object_id: Some("p1".into()),
            ip: "192.0.2.1".into(),
            user_agent: "=HYPERLINK(\"x\")\nline2".into(),
            detail: json!({"b": 1, "a": "x"}),
            prev_hash: vec![0; 32],
            hash: vec![0; 32],
        }
    }

    #[test]
    fn csv_rows_quote_commas_quotes_and_newlines_and_show_jst() {
        let row = csv_row(&sample());
        assert_eq!(
            row,
            "7,2025-04-01T00:04:05.000000+09:00,\"山田, \"\"太郎\"\"\",,patient.read,patient:p1,\
             192.0.2.1,\"'=HYPERLINK(\"\"x\"\")\nline2\",\"{\"\"a\"\":\"\"x\"\",\"\"b\"\":1}\"\r\n"
        );
        assert_eq!(
            csv_header(),
            "seq,time,actor,actor_id,action,object,ip,user_agent,detail\r\n"
        );
    }

    #[test]
    fn many_objects_are_listed_in_detail_up_to_a_cap() {
        let e = AuditEntry::new(AuditAction::TopicRead, &RequestMeta::default())
            .on("topic", "t1")
            .on_many(0..(MAX_OBJECT_IDS + 5));
        assert_eq!(
            e.detail["object_ids"].as_array().map(Vec::len),
            Some(MAX_OBJECT_IDS)
        );
        assert_eq!(e.detail["object_count"], (MAX_OBJECT_IDS + 5) as u64);
        assert_eq!(e.as_record().actor_label, "system");
    }
}
