//! A group's shared files: kept in the file store (`musubi-storage`), described by a row in the
//! association's schema, seen by the group's active members only.
//!
//! Writing is object first, row after: an upload intent is committed, the object written, then
//! the row and the end of the intent committed together. A crash or a failed commit leaves an
//! intent behind, and [`Services::sweep_files`] removes its object later; a failed write leaves
//! no row. Deleting hides the file at once; the sweeper removes its object after the retention.
//!
//! The entry points spool an upload to a local file first (bounded by
//! [`FileService::max_bytes`], never held in memory whole) and hand over a [`Spooled`] file.

use crate::actor::Actor;
use crate::audit::AuditAction;
use crate::file_types::{self, Refusal};
use crate::groups::active_role;
use crate::types::GroupId;
use crate::{AppError, AppResult, ErrorCode, Services, Tenant};
use musubi_authz::{Action, Object};
use musubi_db::files::{self as repo, FileRow, NewFile};
use musubi_db::groups as groups_repo;
use musubi_storage::{Download, Store, StoreError};
use std::path::Path;
use uuid::Uuid;

/// What the seed's shared documents are; the list filters by it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FileKind {
    /// 検査結果
    TestResult,
    /// 処方内容
    Prescription,
    /// 情報提供書 (a hospital's or doctor's letter)
    Referral,
    /// ケアプラン
    CarePlan,
    /// 画像
    Image,
    /// その他
    Other,
}

impl FileKind {
    pub const ALL: [FileKind; 6] = [
        FileKind::TestResult,
        FileKind::Prescription,
        FileKind::Referral,
        FileKind::CarePlan,
        FileKind::Image,
        FileKind::Other,
    ];

    pub fn code(self) -> &'static str {
        match self {
            FileKind::TestResult => "test_result",
            FileKind::Prescription => "prescription",
            FileKind::Referral => "referral",
            FileKind::CarePlan => "care_plan",
            FileKind::Image => "image",
            FileKind::Other => "other",
        }
    }

    pub fn from_code(code: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|k| k.code() == code)
    }
}

/// The file store and its limits.
#[derive(Clone, Debug)]
pub struct FileService {
    store: Store,
    /// Largest file one upload may bring.
    pub max_bytes: u64,
    /// What one association may keep; 0: no limit.
    pub quota_bytes: u64,
}

impl FileService {
    pub fn new(store: Store, max_bytes: u64, quota_bytes: u64) -> Self {
        Self {
            store,
            max_bytes,
            quota_bytes,
        }
    }
}

/// An upload written to a local file by the entry point, with what it learnt on the way.
pub struct Spooled<'a> {
    pub path: &'a Path,
    /// The name it came with (cleaned here).
    pub name: &'a str,
    pub size: u64,
    pub sha256: [u8; 32],
    /// Its first bytes (up to [`file_types::SNIFF_BYTES`]), to decide its type.
    pub head: &'a [u8],
}

/// How long an upload may take before its leftover object counts as abandoned.
const UPLOAD_GRACE_MINUTES: i64 = 60;
/// How long a deleted file's object is kept (a mistaken deletion can be undone by an operator).
const DELETED_RETENTION_DAYS: i64 = 30;
/// Most files one list shows.
pub const MAX_LISTED: i64 = 500;

fn store_failed(e: StoreError) -> AppError {
    match e {
        StoreError::NotFound => AppError::not_found(),
        other => {
            tracing::warn!(error = %other, "file store");
            AppError::new(
                ErrorCode::FileStoreUnavailable,
                "the file store did not answer; nothing was kept",
            )
        }
    }
}

fn refused(r: Refusal) -> AppError {
    AppError {
        reasons: vec![r.code()],
        ..AppError::invalid("file", "this kind of file is not kept")
    }
}

impl Services {
    /// The same services keeping files in `files`; without it, file operations answer
    /// `FILE_STORE_UNAVAILABLE`.
    pub fn with_files(mut self, files: FileService) -> Self {
        self.files = Some(files);
        self
    }

    fn files(&self) -> AppResult<&FileService> {
        self.files.as_ref().ok_or_else(|| {
            AppError::new(
                ErrorCode::FileStoreUnavailable,
                "files are not available on this server",
            )
        })
    }

    /// Largest upload the entry points should spool (they stop reading beyond it).
    pub fn max_file_bytes(&self) -> u64 {
        self.files.as_ref().map_or(0, |f| f.max_bytes)
    }

    /// An active member shares a file with their group. Its type is decided from its content
    /// (an allow-list); its name is cleaned; the association's quota applies. Recorded as
    /// `file.upload`.
    pub async fn upload_group_file(
        &self,
        actor: &Actor<'_>,
        group_id: GroupId,
        file: &Spooled<'_>,
        kind: FileKind,
    ) -> AppResult<FileRow> {
        let files = self.files()?;
        if file.size > files.max_bytes {
            return Err(AppError::new(
                ErrorCode::FileTooLarge,
                format!("files may be at most {} bytes", files.max_bytes),
            ));
        }
        let found = file_types::sniff(file.head, file.name).map_err(refused)?;
        let name = file_types::clean_name(file.name, found);
        let me = actor.viewer.user.id;

        // Who may, and whether there is room, before anything is written.
        let mut c = self.change(actor).await?;
        let (hosted, group) = groups_repo::group(c.conn(), actor.tenant, me, group_id)
            .await?
            .ok_or_else(AppError::not_found)?;
        c.about_group(&group.name);
        c.authorize(&hosted, active_role(&group), Object::Files, Action::Create)
            .await?;
        if group.archived_at.is_some() {
            return Err(AppError::archived());
        }
        let size = i64::try_from(file.size).unwrap_or(i64::MAX);
        if files.quota_bytes > 0 {
            let used = repo::used_bytes(c.conn()).await?;
            if u64::try_from(used.saturating_add(size)).unwrap_or(u64::MAX) > files.quota_bytes {
                return Err(AppError::new(
                    ErrorCode::QuotaExceeded,
                    "the association keeps as much in files as it may",
                ));
            }
        }
        let id = Uuid::now_v7();
        let key = object_key(actor.tenant, id);
        repo::begin_upload(c.conn(), &key).await?;
        c.commit().await?;

        files
            .store
            .put_path(&key, file.path, found.content_type())
            .await
            .map_err(store_failed)?;

        let mut c = self.change(actor).await?;
        // Membership may have ended while the bytes travelled: checked again with the row.
        let (hosted, group) = groups_repo::group(c.conn(), actor.tenant, me, group_id)
            .await?
            .ok_or_else(AppError::not_found)?;
        c.about_group(&group.name);
        c.authorize(&hosted, active_role(&group), Object::Files, Action::Create)
            .await?;
        repo::insert(
            c.conn(),
            &NewFile {
                id,
                group_id,
                kind: kind.code(),
                name: &name,
                content_type: found.content_type(),
                size_bytes: size,
                sha256: &file.sha256,
                object_key: &key,
                uploaded_by: me,
            },
        )
        .await?;
        let entry = c
            .entry(AuditAction::FileUpload)
            .on("file", id)
            .with_detail("group_id", group_id.to_string())
            .with_detail("kind", kind.code())
            .with_detail("type", found.extension())
            .with_detail("size", size);
        c.audit(entry);
        let row = repo::by_id(c.conn(), id)
            .await?
            .ok_or_else(AppError::not_found)?;
        c.commit().await?;
        Ok(row)
    }

    /// A group's shared files, newest first (active members).
    pub async fn group_files(
        &self,
        actor: &Actor<'_>,
        group_id: GroupId,
        kind: Option<FileKind>,
    ) -> AppResult<Vec<FileRow>> {
        let me = actor.viewer.user.id;
        let mut c = self.change(actor).await?;
        let (hosted, group) = groups_repo::group(c.conn(), actor.tenant, me, group_id)
            .await?
            .ok_or_else(AppError::not_found)?;
        c.about_group(&group.name);
        c.authorize(&hosted, active_role(&group), Object::Files, Action::Read)
            .await?;
        let rows = repo::of_group(c.conn(), group_id, kind.map(FileKind::code), MAX_LISTED).await?;
        c.commit().await?;
        Ok(rows)
    }

    /// Opens a file for reading (active members of its group): its row and its bytes as they
    /// arrive from the store. Recorded as `file.download`. Anyone else gets "not found".
    pub async fn open_file(
        &self,
        actor: &Actor<'_>,
        file_id: Uuid,
    ) -> AppResult<(FileRow, Download)> {
        let files = self.files()?;
        let row = self.file_for(actor, file_id, Action::Read).await?;
        let download = files
            .store
            .get(&row.object_key)
            .await
            .map_err(store_failed)?;
        Ok((row, download))
    }

    /// The row of a file the viewer may `action` (members read; the uploader or an owner
    /// deletes), recording reads.
    async fn file_for(
        &self,
        actor: &Actor<'_>,
        file_id: Uuid,
        action: Action,
    ) -> AppResult<FileRow> {
        let me = actor.viewer.user.id;
        let mut c = self.change(actor).await?;
        let row = repo::by_id(c.conn(), file_id)
            .await?
            .ok_or_else(AppError::not_found)?;
        let (hosted, group) = groups_repo::group(c.conn(), actor.tenant, me, row.group_id)
            .await?
            .ok_or_else(AppError::not_found)?;
        c.about_group(&group.name);
        let role = active_role(&group);
        let wanted = match action {
            Action::Read => Action::Read,
            // Their own file, or an owner's moderation.
            _ if row.uploaded_by == me && role.is_some() => Action::Read,
            _ => Action::Moderate,
        };
        c.authorize(&hosted, role, Object::Files, wanted).await?;
        if action == Action::Read {
            let entry = c
                .entry(AuditAction::FileDownload)
                .on("file", file_id)
                .with_detail("group_id", row.group_id.to_string());
            c.audit(entry);
        }
        c.commit().await?;
        Ok(row)
    }

    /// Deletes a file (its uploader, or an owner of the group): hidden at once, its object
    /// removed after the retention. Recorded as `file.delete`.
    pub async fn delete_file(&self, actor: &Actor<'_>, file_id: Uuid) -> AppResult<()> {
        let row = self.file_for(actor, file_id, Action::Moderate).await?;
        let me = actor.viewer.user.id;
        let mut c = self.change(actor).await?;
        if !repo::mark_deleted(c.conn(), file_id, me).await? {
            return Err(AppError::not_found());
        }
        let entry = c
            .entry(AuditAction::FileDelete)
            .on("file", file_id)
            .with_detail("group_id", row.group_id.to_string())
            .with_detail("own", row.uploaded_by == me);
        c.audit(entry);
        c.commit().await
    }

    /// [`Self::sweep_files`] for every association; one that fails is reported and left for
    /// the next round. Returns how many objects went.
    pub async fn sweep_files_everywhere(&self, batch: i64) -> usize {
        if self.files.is_none() {
            return 0;
        }
        let tenants = match self.db().tenants().await {
            Ok(t) => t,
            Err(e) => {
                tracing::warn!(error = %e, "listing associations for the file sweep");
                return 0;
            }
        };
        let mut removed = 0;
        for tenant in &tenants {
            match self.sweep_files(tenant, batch).await {
                Ok(n) => removed += n,
                Err(e) => tracing::warn!(
                    association = %tenant.slug,
                    code = e.code.as_str(),
                    "file sweep failed"
                ),
            }
        }
        removed
    }

    /// Removes the objects of `tenant` nobody will read: uploads whose row never came (after
    /// an hour) and files deleted longer than the retention. Returns how many objects went.
    /// A store that does not answer leaves everything for the next round.
    pub async fn sweep_files(&self, tenant: &Tenant, batch: i64) -> AppResult<usize> {
        let files = self.files()?;
        let meta = crate::audit::RequestMeta::default();
        let mut c = self.change_without_viewer(tenant, &meta).await?;
        let (stale, deleted) = repo::to_sweep(
            c.conn(),
            chrono::Duration::minutes(UPLOAD_GRACE_MINUTES),
            chrono::Duration::days(DELETED_RETENTION_DAYS),
            batch,
        )
        .await?;
        c.commit().await?;
        let mut removed = 0;
        for key in stale {
            files.store.delete(&key).await.map_err(store_failed)?;
            let mut c = self.change_without_viewer(tenant, &meta).await?;
            repo::end_upload(c.conn(), &key).await?;
            c.commit().await?;
            removed += 1;
        }
        for (id, key) in deleted {
            files.store.delete(&key).await.map_err(store_failed)?;
            let mut c = self.change_without_viewer(tenant, &meta).await?;
            repo::purge(c.conn(), id).await?;
            c.commit().await?;
            removed += 1;
        }
        Ok(removed)
    }
}

/// `a/<association id>/<file id>`: nothing about the patient or the file's name.
fn object_key(tenant: &Tenant, id: Uuid) -> String {
    format!("a/{}/{}", tenant.id.uuid().simple(), id.simple())
}
