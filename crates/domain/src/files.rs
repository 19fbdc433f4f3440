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
use crate::file_types::{self, FileType, Refusal};
use crate::groups::active_role;
use crate::types::GroupId;
use crate::{AppError, AppResult, ErrorCode, Services, Tenant};
use musubi_authz::{Action, Object};
use musubi_db::files::{self as repo, FileRow, NewFile};
use musubi_db::groups as groups_repo;
use musubi_media::{ImageFormat, MediaError};
use musubi_storage::{Download, Store, StoreError};
use sha2::{Digest, Sha256};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::Semaphore;
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
    /// Photos decoded at once: a 12-megapixel photo takes about 50 MB while it is.
    decoding: Arc<Semaphore>,
}

impl FileService {
    pub fn new(store: Store, max_bytes: u64, quota_bytes: u64) -> Self {
        Self {
            store,
            max_bytes,
            quota_bytes,
            decoding: Arc::new(Semaphore::new(2)),
        }
    }

    pub fn store(&self) -> &Store {
        &self.store
    }
}

/// Which of a file's objects to read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Variant {
    /// The file as kept (photos cleaned of their metadata).
    Original,
    /// A photo at most [`PREVIEW_SIDE`] on its longest side (JPEG).
    Preview,
    /// A photo at most [`THUMB_SIDE`] (JPEG).
    Thumbnail,
}

/// The response headers a file is served with, the same on the web and in the API: its type,
/// its name (inline only for photos and PDF, or always saved with `download`), `nosniff`, a
/// CSP under which nothing in it runs or loads, and a short private cache (who may see a file
/// can change). As (name, value) pairs.
pub fn serving_headers(
    row: &FileRow,
    variant: Variant,
    download: bool,
) -> Vec<(&'static str, String)> {
    /// Nothing may run, load anything or be framed by another site.
    const FILE_CSP: &str = "default-src 'none'; img-src 'self'; style-src 'unsafe-inline'; \
         frame-ancestors 'self'; sandbox";
    /// PDF viewers refuse to run in a sandbox; they do not run a PDF's scripts in this origin.
    const PDF_CSP: &str = "default-src 'none'; img-src 'self'; style-src 'unsafe-inline'; \
         frame-ancestors 'self'";
    let found = FileType::from_content_type(&row.content_type);
    let (content_type, name) = match variant {
        Variant::Original => (row.content_type.clone(), row.name.clone()),
        // `褥瘡.heic` → `褥瘡.jpg`
        _ => {
            let stem = row
                .name
                .rsplit_once('.')
                .map_or(row.name.as_str(), |(s, _)| s);
            ("image/jpeg".to_owned(), format!("{stem}.jpg"))
        }
    };
    let inline = !download && (variant != Variant::Original || found.is_some_and(FileType::inline));
    let csp = if found == Some(FileType::Pdf) && variant == Variant::Original {
        PDF_CSP
    } else {
        FILE_CSP
    };
    vec![
        ("content-type", content_type),
        (
            "content-disposition",
            file_types::content_disposition(&name, inline),
        ),
        ("x-content-type-options", "nosniff".to_owned()),
        ("content-security-policy", csp.to_owned()),
        ("cache-control", "private, max-age=300".to_owned()),
        ("referrer-policy", "same-origin".to_owned()),
    ]
}

/// Longest side of a photo's preview and thumbnail.
pub const PREVIEW_SIDE: u32 = 1280;
pub const THUMB_SIDE: u32 = 320;
/// Most attachments one comment may have.
pub const MAX_ATTACHMENTS: usize = 10;
/// Most uploads one person may have waiting for their comment.
const MAX_PENDING: i64 = 50;
/// Most text kept from one file for search.
const MAX_TEXT_CHARS: usize = 200_000;
/// How long converting or reading one file may take.
const TOOL_TIMEOUT: Duration = Duration::from_secs(60);
/// How long an upload may wait for its comment.
const PENDING_HOURS: i64 = 24;

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
    refused_because(r.code())
}

fn refused_because(reason: &'static str) -> AppError {
    AppError {
        reasons: vec![reason],
        ..AppError::invalid("file", "this file is not kept")
    }
}

/// A photo that cannot be decoded, or one too large to decode.
fn unreadable(e: MediaError) -> AppError {
    match e {
        MediaError::TooLarge => refused_because("FILE_IMAGE_TOO_LARGE"),
        MediaError::Unreadable(why) => {
            tracing::info!(why, "a photo could not be read");
            refused_because("FILE_DAMAGED")
        }
        other => AppError::internal(other),
    }
}

/// An upload as it will be kept: photos cleaned and converted, text read for search.
struct Prepared {
    /// Holds the converted and cleaned files until they are stored.
    _work: Option<tempfile::TempDir>,
    path: PathBuf,
    found: FileType,
    name: String,
    size: u64,
    sha256: [u8; 32],
    /// (preview, thumbnail) of a photo, JPEG.
    previews: Option<(Vec<u8>, Vec<u8>)>,
    width: Option<i32>,
    height: Option<i32>,
    text: Option<String>,
}

/// Where an upload goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Place {
    /// The group's shared files, as `kind`.
    Shared(FileKind),
    /// Waiting for the comment it will be attached to.
    Pending,
}

fn image_format(t: FileType) -> Option<ImageFormat> {
    match t {
        FileType::Jpeg => Some(ImageFormat::Jpeg),
        FileType::Png => Some(ImageFormat::Png),
        FileType::Webp => Some(ImageFormat::Webp),
        FileType::Gif => Some(ImageFormat::Gif),
        _ => None,
    }
}

fn work_dir() -> AppResult<tempfile::TempDir> {
    tempfile::Builder::new()
        .prefix("musubi-upload-")
        .tempdir()
        .map_err(AppError::internal)
}

/// Size and SHA-256 of a file, read in pieces.
fn measure(path: &Path) -> std::io::Result<(u64, [u8; 32])> {
    use std::io::Read;
    let mut f = std::fs::File::open(path)?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 64 * 1024];
    let mut size = 0u64;
    loop {
        let n = f.read(&mut buf)?;
        if n == 0 {
            break;
        }
        size += n as u64;
        hasher.update(&buf[..n]);
    }
    Ok((size, hasher.finalize().into()))
}

impl FileService {
    /// Decides the type, converts HEIC where it can, removes photos' metadata (GPS!) with their
    /// orientation applied, makes previews, and reads text for search. Nothing is stored yet.
    async fn prepare(&self, file: &Spooled<'_>) -> AppResult<Prepared> {
        let mut found = file_types::sniff(file.head, file.name).map_err(refused)?;
        let mut prepared = Prepared {
            _work: None,
            path: file.path.to_owned(),
            found,
            name: String::new(),
            size: file.size,
            sha256: file.sha256,
            previews: None,
            width: None,
            height: None,
            text: None,
        };
        let mut source = file.path.to_owned();
        if found == FileType::Heic {
            // Browsers mostly cannot show HEIC: a JPEG where the converter is installed,
            // otherwise the original, offered as a download.
            let work = work_dir()?;
            let converted = work.path().join("converted.jpg");
            match musubi_media::heic_to_jpeg(&source, &converted, TOOL_TIMEOUT).await {
                Ok(true) => {
                    found = FileType::Jpeg;
                    source = converted;
                }
                Ok(false) => {}
                Err(e) => tracing::info!(error = %e, "a HEIC photo was kept unconverted"),
            }
            prepared._work = Some(work);
        }
        if let Some(format) = image_format(found) {
            let work = match prepared._work.take() {
                Some(w) => w,
                None => work_dir()?,
            };
            let cleaned = work.path().join(format!("cleaned.{}", found.extension()));
            let _permit = self.decoding.acquire().await.map_err(AppError::internal)?;
            let (from, to) = (source.clone(), cleaned.clone());
            let done = musubi_media::in_background(move || {
                let c = musubi_media::clean_image(format, &from, &to)?;
                let previews = musubi_media::previews_jpeg(&to, &[PREVIEW_SIDE, THUMB_SIDE])?;
                let [preview, thumb] = <[Vec<u8>; 2]>::try_from(previews)
                    .map_err(|_| MediaError::Unreadable("no previews".into()))?;
                let measured = measure(&to)?;
                Ok::<_, MediaError>((c, preview, thumb, measured))
            })
            .await
            .map_err(AppError::internal)?;
            let (c, preview, thumb, (size, sha256)) = done.map_err(unreadable)?;
            prepared.path = cleaned;
            prepared.size = size;
            prepared.sha256 = sha256;
            prepared.previews = Some((preview, thumb));
            prepared.width = i32::try_from(c.width).ok();
            prepared.height = i32::try_from(c.height).ok();
            prepared._work = Some(work);
        } else if found == FileType::Pdf {
            match musubi_media::pdf_text(&source, TOOL_TIMEOUT, MAX_TEXT_CHARS).await {
                Ok(text) => prepared.text = text,
                // Kept without its text: search will not find it by its content.
                Err(e) => tracing::info!(error = %e, "reading a PDF's text"),
            }
        } else if found == FileType::Text {
            let path = source.clone();
            let text = tokio::task::spawn_blocking(move || {
                use std::io::Read;
                let mut bytes = Vec::new();
                std::fs::File::open(&path)?
                    .take(4 * MAX_TEXT_CHARS as u64)
                    .read_to_end(&mut bytes)?;
                Ok::<_, std::io::Error>(musubi_media::plain_text(&bytes, MAX_TEXT_CHARS))
            })
            .await
            .map_err(AppError::internal)?;
            match text {
                Ok(t) => prepared.text = Some(t),
                Err(e) => tracing::info!(error = %e, "reading a text file"),
            }
        }
        prepared.found = found;
        prepared.name = file_types::clean_name(file.name, found);
        Ok(prepared)
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
        self.upload(actor, group_id, file, Place::Shared(kind))
            .await
    }

    /// An active member uploads a file for a comment they are writing in the group: seen by
    /// them only until [`Services::post_comment_with`] (or [`Services::create_topic_with`])
    /// attaches it; removed if no comment comes within a day. Recorded as `file.upload`.
    pub async fn stage_attachment(
        &self,
        actor: &Actor<'_>,
        group_id: GroupId,
        file: &Spooled<'_>,
    ) -> AppResult<FileRow> {
        self.upload(actor, group_id, file, Place::Pending).await
    }

    async fn upload(
        &self,
        actor: &Actor<'_>,
        group_id: GroupId,
        file: &Spooled<'_>,
        place: Place,
    ) -> AppResult<FileRow> {
        let files = self.files()?;
        if file.size > files.max_bytes {
            return Err(AppError::new(
                ErrorCode::FileTooLarge,
                format!("files may be at most {} bytes", files.max_bytes),
            ));
        }
        // Refused types are refused before anything else is done.
        file_types::sniff(file.head, file.name).map_err(refused)?;
        let me = actor.viewer.user.id;

        // Who may, and whether there is room, before any work or writing.
        let mut c = self.change(actor).await?;
        self.may_upload(&mut c, actor, group_id).await?;
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
        if place == Place::Pending && repo::pending_count(c.conn(), me).await? >= MAX_PENDING {
            return Err(refused_because("FILE_TOO_MANY_PENDING"));
        }
        c.commit().await?;

        let p = files.prepare(file).await?;
        let kind = match place {
            Place::Shared(kind) => kind,
            Place::Pending if p.found.is_viewable_image() || p.found == FileType::Heic => {
                FileKind::Image
            }
            Place::Pending => FileKind::Other,
        };

        let id = Uuid::now_v7();
        let key = object_key(actor.tenant, id);
        let mut c = self.change(actor).await?;
        repo::begin_upload(c.conn(), &key).await?;
        c.commit().await?;

        files
            .store
            .put_path(&key, &p.path, p.found.content_type())
            .await
            .map_err(store_failed)?;
        if let Some((preview, thumb)) = &p.previews {
            for (suffix, bytes) in [(".p", preview), (".t", thumb)] {
                files
                    .store
                    .put_bytes(
                        &format!("{key}{suffix}"),
                        bytes::Bytes::copy_from_slice(bytes),
                        "image/jpeg",
                    )
                    .await
                    .map_err(store_failed)?;
            }
        }

        let mut c = self.change(actor).await?;
        // Membership may have ended while the bytes travelled: checked again with the row.
        self.may_upload(&mut c, actor, group_id).await?;
        let size = i64::try_from(p.size).unwrap_or(i64::MAX);
        repo::insert(
            c.conn(),
            &NewFile {
                id,
                group_id,
                kind: kind.code(),
                name: &p.name,
                content_type: p.found.content_type(),
                size_bytes: size,
                sha256: &p.sha256,
                object_key: &key,
                uploaded_by: me,
                pending: place == Place::Pending,
                width: p.width,
                height: p.height,
                has_preview: p.previews.is_some(),
                text_content: p.text.as_deref(),
            },
        )
        .await?;
        let entry = c
            .entry(AuditAction::FileUpload)
            .on("file", id)
            .with_detail("group_id", group_id.to_string())
            .with_detail("kind", kind.code())
            .with_detail("type", p.found.extension())
            .with_detail("size", size)
            .with_detail("attachment", place == Place::Pending);
        c.audit(entry);
        let row = repo::by_id(c.conn(), id)
            .await?
            .ok_or_else(AppError::not_found)?;
        c.commit().await?;
        Ok(row)
    }

    /// An active member of a group that is not archived may add files to it.
    async fn may_upload(
        &self,
        c: &mut crate::change::Change<'_>,
        actor: &Actor<'_>,
        group_id: GroupId,
    ) -> AppResult<()> {
        let me = actor.viewer.user.id;
        let (hosted, group) = groups_repo::group(c.conn(), actor.tenant, me, group_id)
            .await?
            .ok_or_else(AppError::not_found)?;
        c.about_group(&group.name);
        c.authorize(&hosted, active_role(&group), Object::Files, Action::Create)
            .await?;
        if group.archived_at.is_some() {
            return Err(AppError::archived());
        }
        Ok(())
    }

    /// A group's shared files, newest first (active members), with the group.
    pub async fn group_files(
        &self,
        actor: &Actor<'_>,
        group_id: GroupId,
        kind: Option<FileKind>,
    ) -> AppResult<(groups_repo::GroupRow, Vec<FileRow>)> {
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
        Ok((group, rows))
    }

    /// Opens a file for reading: a shared file by its group's active members, an attachment by
    /// whoever sees its topic, a pending upload by its uploader. Its row and its bytes as they
    /// arrive from the store. Reading the original is recorded as `file.download`; previews
    /// are part of reading the topic. Anyone else gets "not found".
    pub async fn open_file(
        &self,
        actor: &Actor<'_>,
        file_id: Uuid,
        variant: Variant,
    ) -> AppResult<(FileRow, Download)> {
        let files = self.files()?;
        let row = self.file_for(actor, file_id, Action::Read, variant).await?;
        let key = match variant {
            Variant::Original => row.object_key.clone(),
            _ if !row.has_preview => return Err(AppError::not_found()),
            Variant::Preview => format!("{}.p", row.object_key),
            Variant::Thumbnail => format!("{}.t", row.object_key),
        };
        let download = files.store.get(&key).await.map_err(store_failed)?;
        Ok((row, download))
    }

    /// A short-lived address in the store for a file's original, issued after the same check
    /// as [`Services::open_file`] (and recorded the same way), for deployments whose store
    /// serves people directly.
    pub async fn file_link(
        &self,
        actor: &Actor<'_>,
        file_id: Uuid,
        ttl: Duration,
    ) -> AppResult<String> {
        let files = self.files()?;
        let row = self
            .file_for(actor, file_id, Action::Read, Variant::Original)
            .await?;
        let found = FileType::from_content_type(&row.content_type);
        let inline = found.is_some_and(FileType::inline);
        files
            .store
            .presigned_get(
                &row.object_key,
                ttl,
                &file_types::content_disposition(&row.name, inline),
                &row.content_type,
            )
            .await
            .map_err(store_failed)
    }

    /// The row of a file the viewer may `action` (readers read; the uploader or an owner
    /// deletes), recording reads of the original.
    async fn file_for(
        &self,
        actor: &Actor<'_>,
        file_id: Uuid,
        action: Action,
        variant: Variant,
    ) -> AppResult<FileRow> {
        let me = actor.viewer.user.id;
        let mut c = self.change(actor).await?;
        let row = repo::by_id(c.conn(), file_id)
            .await?
            .ok_or_else(AppError::not_found)?;
        if row.pending && row.uploaded_by != me {
            return Err(AppError::not_found());
        }
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
        match row.topic_id {
            // An attachment: whoever sees the topic (its scope) and its comment.
            Some(topic) => {
                c.visible_topic(topic.into(), Object::Comments, Action::Read)
                    .await?;
                if let Some(comment) = row.comment_id {
                    let live = groups_repo::comment(c.conn(), comment.into())
                        .await?
                        .is_some_and(|cm| cm.deleted_at.is_none());
                    if !live {
                        return Err(AppError::not_found());
                    }
                }
                c.authorize(&hosted, role, Object::Files, wanted).await?;
            }
            None => c.authorize(&hosted, role, Object::Files, wanted).await?,
        }
        if action == Action::Read && variant == Variant::Original {
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
        let row = self
            .file_for(actor, file_id, Action::Moderate, Variant::Original)
            .await?;
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
            chrono::Duration::hours(PENDING_HOURS),
            batch,
        )
        .await?;
        c.commit().await?;
        let mut removed = 0;
        for key in stale {
            files.remove_objects(&key).await?;
            let mut c = self.change_without_viewer(tenant, &meta).await?;
            repo::end_upload(c.conn(), &key).await?;
            c.commit().await?;
            removed += 1;
        }
        for (id, key) in deleted {
            files.remove_objects(&key).await?;
            let mut c = self.change_without_viewer(tenant, &meta).await?;
            repo::purge(c.conn(), id).await?;
            c.commit().await?;
            removed += 1;
        }
        Ok(removed)
    }
}

/// Makes `ids` (the actor's pending uploads in the group) attachments of a new comment, in the
/// comment's change: all of them or, with the comment, none.
pub(crate) async fn attach(
    c: &mut crate::change::Change<'_>,
    ids: &[Uuid],
    group: GroupId,
    topic: crate::types::TopicId,
    comment: crate::types::CommentId,
) -> AppResult<()> {
    if ids.is_empty() {
        return Ok(());
    }
    if ids.len() > MAX_ATTACHMENTS {
        return Err(AppError::invalid(
            "attachments",
            format!("a comment may have at most {MAX_ATTACHMENTS} files"),
        ));
    }
    let mut unique = ids.to_vec();
    unique.sort_unstable();
    unique.dedup();
    let me = c.viewer()?.user.id;
    let n = repo::attach(c.conn(), &unique, me, group, topic.into(), comment.into()).await?;
    if n != unique.len() as u64 {
        // Someone else's, another group's, already posted or deleted: nothing is posted.
        return Err(AppError::invalid(
            "attachments",
            "an attachment is not an upload of yours waiting for this comment",
        ));
    }
    Ok(())
}

impl FileService {
    /// A file's object and its previews (deleting what is not there is fine).
    async fn remove_objects(&self, key: &str) -> AppResult<()> {
        for k in [key.to_owned(), format!("{key}.p"), format!("{key}.t")] {
            self.store.delete(&k).await.map_err(store_failed)?;
        }
        Ok(())
    }
}

/// What an association keeps, for its administrators.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FileUsage {
    /// Files people see.
    pub files: i64,
    /// Bytes kept, deleted files included until their object is removed.
    pub used_bytes: i64,
    /// What it may keep; 0: no limit.
    pub quota_bytes: u64,
}

impl Services {
    /// The association's files and storage against its quota (its administrators).
    pub async fn file_usage(&self, actor: &Actor<'_>) -> AppResult<FileUsage> {
        self.authorize_in(actor, Object::Settings, Action::Read)
            .await?;
        let quota_bytes = self.files.as_ref().map_or(0, |f| f.quota_bytes);
        let mut c = self.change(actor).await?;
        let files = repo::shown_count(c.conn()).await?;
        let used_bytes = repo::used_bytes(c.conn()).await?;
        c.commit().await?;
        Ok(FileUsage {
            files,
            used_bytes,
            quota_bytes,
        })
    }
}

/// `a/<association id>/<file id>`: nothing about the patient or the file's name.
fn object_key(tenant: &Tenant, id: Uuid) -> String {
    format!("a/{}/{}", tenant.id.uuid().simple(), id.simple())
}
