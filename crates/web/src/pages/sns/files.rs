//! Files: a group's 「共有ファイル」 and reading any file a person may see.
//!
//! - `GET /a/{slug}/g/{group_id}/files` lists the group's shared files (filter by kind, four
//!   orders) with the upload form; `POST …/files/upload` (multipart, see [`crate::upload`])
//!   shares one.
//! - `POST …/files/stage` (multipart) uploads an attachment for a comment being written and
//!   answers JSON for `static/app.js` (progress is shown while it travels).
//! - `GET /a/{slug}/files/{id}` (`?download=1` to save it), `…/preview`, `…/thumb` stream a
//!   file through Musubi after the services' check: `nosniff`, a sandboxing CSP, and inline
//!   only for photos and PDF, so that nothing uploaded runs in Musubi's origin.
//! - `POST /a/{slug}/files/{id}/delete`: its uploader or an owner of the group.
//!
//! Whoever may not see a file gets the normal 404 page, exactly like a file that does not
//! exist.

use super::{after_action, flash, nav, page_error, parse_id, short_time, Flash, Place};
use crate::assets::{self, AssetUrls};
use crate::ctx::Ctx;
use crate::i18n::{Lang, Translator};
use crate::layout::{Nav, Section};
use crate::upload::{check_token, spool, Checked, SpoolProblem};
use askama::Template;
use axum::body::Body;
use axum::extract::multipart::MultipartRejection;
use axum::extract::{DefaultBodyLimit, Multipart, Path, Query, State};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::Router;
use chrono::Utc;
use http::header::CONTENT_LENGTH;
use http::{HeaderMap, HeaderValue, StatusCode, Uri};
use musubi_authz::GroupRole;
use musubi_db::files::FileRow;
use musubi_domain::file_types::FileType;
use musubi_domain::files::{serving_headers, FileKind, Variant};
use musubi_domain::types::GroupId;
use musubi_domain::{AppError, ErrorCode, Services};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

const GROUP: &str = "/a/{slug}/g/{group_id}";

/// The multipart routes (outside the CSRF guard: they check it themselves), each bounded by
/// the largest file plus the form around it.
pub(crate) fn upload_routes(max_file_bytes: u64) -> Router<Services> {
    let limit = usize::try_from(max_file_bytes)
        .unwrap_or(usize::MAX)
        .saturating_add(64 * 1024);
    Router::new()
        .route(&format!("{GROUP}/files/upload"), post(share))
        .route(&format!("{GROUP}/files/stage"), post(stage))
        .layer(DefaultBodyLimit::max(limit))
}

// --- Reading files ---------------------------------------------------------------------------

#[derive(Debug, Default, Deserialize)]
pub(crate) struct OpenQuery {
    download: Option<String>,
}

pub(crate) async fn original(
    State(services): State<Services>,
    ctx: Ctx,
    Path((slug, id)): Path<(String, String)>,
    Query(q): Query<OpenQuery>,
) -> Result<Response, Response> {
    serve(
        &services,
        &ctx,
        &slug,
        &id,
        Variant::Original,
        q.download.is_some(),
    )
    .await
}

pub(crate) async fn preview(
    State(services): State<Services>,
    ctx: Ctx,
    Path((slug, id)): Path<(String, String)>,
) -> Result<Response, Response> {
    serve(&services, &ctx, &slug, &id, Variant::Preview, false).await
}

pub(crate) async fn thumbnail(
    State(services): State<Services>,
    ctx: Ctx,
    Path((slug, id)): Path<(String, String)>,
) -> Result<Response, Response> {
    serve(&services, &ctx, &slug, &id, Variant::Thumbnail, false).await
}

async fn serve(
    services: &Services,
    ctx: &Ctx,
    slug: &str,
    id: &str,
    variant: Variant,
    download: bool,
) -> Result<Response, Response> {
    let p = Place::open(services, ctx, slug).await?;
    let file_id: Uuid = parse_id(id);
    let (row, body) = services
        .open_file(&p.actor(), file_id, variant)
        .await
        .map_err(|e| page_error(ctx, "opening a file", e))?;
    let mut headers = HeaderMap::new();
    for (name, value) in serving_headers(&row, variant, download) {
        if let Ok(value) = HeaderValue::from_str(&value) {
            headers.insert(name, value);
        }
    }
    if let Some(length) = body.length {
        headers.insert(CONTENT_LENGTH, HeaderValue::from(length));
    }
    let body = Body::from_stream(body.into_stream());
    Ok((StatusCode::OK, headers, body).into_response())
}

// --- The shared files page -------------------------------------------------------------------

/// How the list is ordered.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
enum Order {
    #[default]
    Newest,
    Oldest,
    Name,
    Kind,
}

impl Order {
    const ALL: [Order; 4] = [Order::Newest, Order::Oldest, Order::Name, Order::Kind];

    fn code(self) -> &'static str {
        match self {
            Order::Newest => "newest",
            Order::Oldest => "oldest",
            Order::Name => "name",
            Order::Kind => "kind",
        }
    }

    fn from_code(code: &str) -> Self {
        Self::ALL
            .into_iter()
            .find(|o| o.code() == code)
            .unwrap_or_default()
    }

    fn sort(self, rows: &mut [FileRow]) {
        match self {
            Order::Newest => {}
            Order::Oldest => rows.reverse(),
            Order::Name => rows.sort_by(|a, b| a.name.cmp(&b.name)),
            Order::Kind => rows.sort_by_key(|r| {
                FileKind::from_code(&r.kind)
                    .and_then(|k| FileKind::ALL.iter().position(|x| *x == k))
                    .unwrap_or(usize::MAX)
            }),
        }
    }
}

#[derive(Debug, Default, Deserialize)]
pub(crate) struct ListQuery {
    kind: Option<String>,
    order: Option<String>,
}

/// A file as the list and the comments show it.
pub(crate) struct FileCard {
    pub href: String,
    pub download: String,
    pub thumb: Option<String>,
    pub name: String,
    pub kind: String,
    pub size: String,
    pub uploader: String,
    pub time: String,
    pub datetime: String,
    /// A photo browsers cannot show (HEIC kept as it came).
    pub not_viewable: bool,
    pub delete: Option<String>,
    pub confirm_delete: String,
}

/// 「1.2 MB」, 「350 KB」.
pub(crate) fn size_label(bytes: i64) -> String {
    let b = bytes.max(0) as f64;
    if b >= 1024.0 * 1024.0 {
        format!("{:.1} MB", b / (1024.0 * 1024.0))
    } else {
        format!("{} KB", (b / 1024.0).ceil().max(1.0))
    }
}

pub(crate) fn kind_label(t: Translator, code: &str) -> String {
    t.get(&format!("files.kind.{code}")).to_owned()
}

fn card(t: Translator, lang: Lang, slug: &str, row: &FileRow, can_delete: bool) -> FileCard {
    let href = format!("/a/{slug}/files/{}", row.id);
    FileCard {
        download: format!("{href}?download=1"),
        thumb: row.has_preview.then(|| format!("{href}/thumb")),
        delete: can_delete.then(|| format!("{href}/delete")),
        confirm_delete: t.format("files.delete_confirm", row.name.as_str()),
        name: row.name.clone(),
        kind: kind_label(t, &row.kind),
        size: size_label(row.size_bytes),
        uploader: row.uploader_name.clone().unwrap_or_default(),
        time: short_time(lang, row.uploaded_at, Utc::now()),
        datetime: row.uploaded_at.to_rfc3339(),
        not_viewable: row.content_type == FileType::Heic.content_type(),
        href,
    }
}

pub(crate) struct KindChoice {
    pub code: &'static str,
    pub label: String,
    pub current: bool,
}

#[derive(Template)]
#[template(path = "sns/files.html")]
pub(crate) struct FilesPage<'a> {
    pub t: Translator,
    pub assets: &'static AssetUrls,
    pub nav: Nav<'a>,
    pub current_path: &'a str,
    pub csrf: &'a str,
    pub slug: &'a str,
    pub group_id: String,
    pub group_name: String,
    pub flash: Option<Flash>,
    pub files: Vec<FileCard>,
    pub kinds: Vec<KindChoice>,
    pub orders: Vec<(&'static str, String, bool)>,
    pub kind: String,
    pub order: &'static str,
    pub can_upload: bool,
    /// What went wrong with an upload, shown at the form.
    pub error: Option<String>,
    pub max_mb: u64,
}

pub(crate) async fn show(
    State(services): State<Services>,
    ctx: Ctx,
    Path((slug, id)): Path<(String, String)>,
    Query(q): Query<ListQuery>,
    uri: Uri,
) -> Result<Response, Response> {
    let p = Place::open(&services, &ctx, &slug).await?;
    let t = Translator::new(ctx.lang);
    let fl = flash(t, &uri);
    render(
        &services,
        &ctx,
        &p,
        parse_id(&id),
        &q,
        fl,
        None,
        StatusCode::OK,
    )
    .await
}

#[allow(clippy::too_many_arguments)]
async fn render(
    services: &Services,
    ctx: &Ctx,
    p: &Place,
    group_id: GroupId,
    q: &ListQuery,
    flash: Option<Flash>,
    error: Option<String>,
    status: StatusCode,
) -> Result<Response, Response> {
    let kind = q.kind.as_deref().and_then(FileKind::from_code);
    let order = Order::from_code(q.order.as_deref().unwrap_or_default());
    let (group, mut rows) = services
        .group_files(&p.actor(), group_id, kind)
        .await
        .map_err(|e| page_error(ctx, "listing files", e))?;
    order.sort(&mut rows);
    let t = Translator::new(ctx.lang);
    let me = p.viewer.user().id;
    let owner = group.my_role == Some(GroupRole::Owner);
    let archived = group.archived_at.is_some();
    let files = rows
        .iter()
        .map(|r| {
            card(
                t,
                ctx.lang,
                p.slug(),
                r,
                !archived && (owner || r.uploaded_by == me),
            )
        })
        .collect();
    let mut kinds = vec![KindChoice {
        code: "",
        label: t.get("files.kind.all").to_owned(),
        current: kind.is_none(),
    }];
    kinds.extend(FileKind::ALL.into_iter().map(|k| KindChoice {
        code: k.code(),
        label: kind_label(t, k.code()),
        current: kind == Some(k),
    }));
    let orders = Order::ALL
        .into_iter()
        .map(|o| {
            let label = t.get(&format!("files.order.{}", o.code())).to_owned();
            (o.code(), label, o == order)
        })
        .collect();
    let total = super::unread_total(services, &p.viewer).await;
    let path = format!("/a/{}/g/{group_id}/files", p.slug());
    let page = FilesPage {
        t,
        assets: assets::urls(),
        nav: nav(&p.viewer, ctx, total, Section::Groups),
        current_path: &path,
        csrf: ctx.csrf.form_token(),
        slug: p.slug(),
        group_id: group_id.to_string(),
        group_name: group.name.clone(),
        flash,
        files,
        kinds,
        orders,
        kind: kind.map(FileKind::code).unwrap_or_default().to_owned(),
        order: order.code(),
        can_upload: !archived,
        error,
        max_mb: services.max_file_bytes() / (1024 * 1024),
    };
    Ok(crate::html::respond(status, ctx.lang, &page))
}

/// An upload's failure in the viewer's language, or `None` for the 500 page.
pub(crate) fn upload_message(t: Translator, max_mb: u64, e: &AppError) -> Option<String> {
    Some(match e.code {
        ErrorCode::FileTooLarge => t.format("files.error.too_large", max_mb.to_string().as_str()),
        ErrorCode::QuotaExceeded => t.get("files.error.quota").to_owned(),
        ErrorCode::FileStoreUnavailable => t.get("files.error.store").to_owned(),
        ErrorCode::StorageFull => t.get("error.server.storage").to_owned(),
        ErrorCode::GroupArchived => t.get("sns.error.archived").to_owned(),
        ErrorCode::InvalidInput => {
            let reason = e.reasons.first().copied().unwrap_or_default();
            match reason {
                "FILE_TYPE_NOT_ALLOWED" => t.get("files.error.type_not_allowed"),
                "FILE_TYPE_MISMATCH" => t.get("files.error.type_mismatch"),
                "FILE_ACTIVE_CONTENT" => t.get("files.error.active_content"),
                "FILE_DAMAGED" => t.get("files.error.damaged"),
                "FILE_IMAGE_TOO_LARGE" => t.get("files.error.image_too_large"),
                "FILE_TOO_MANY_PENDING" => t.get("files.error.too_many_pending"),
                _ => t.get("files.error.invalid"),
            }
            .to_owned()
        }
        _ => return None,
    })
}

fn spool_message(t: Translator, max_mb: u64, problem: SpoolProblem) -> String {
    match problem {
        SpoolProblem::TooLarge => t.format("files.error.too_large", max_mb.to_string().as_str()),
        SpoolProblem::NoFile => t.get("files.error.no_file").to_owned(),
        SpoolProblem::Unreadable => t.get("files.error.unreadable").to_owned(),
        SpoolProblem::Local => t.get("files.error.store").to_owned(),
    }
}

/// The form's fields after its token: the kind, then the file.
async fn read_share_form(
    form: &mut Multipart,
    max: u64,
) -> Result<(FileKind, crate::upload::SpooledFile), SpoolProblem> {
    let mut kind = FileKind::Other;
    loop {
        let field = match form.next_field().await {
            Ok(Some(f)) => f,
            Ok(None) => return Err(SpoolProblem::NoFile),
            Err(e) if e.status() == StatusCode::PAYLOAD_TOO_LARGE => {
                return Err(SpoolProblem::TooLarge)
            }
            Err(_) => return Err(SpoolProblem::Unreadable),
        };
        match field.name().unwrap_or_default() {
            "kind" => {
                let code = field.text().await.unwrap_or_default();
                kind = FileKind::from_code(&code).unwrap_or(FileKind::Other);
            }
            "file" => return spool(field, max).await.map(|f| (kind, f)),
            _ => {}
        }
    }
}

pub(crate) async fn share(
    State(services): State<Services>,
    ctx: Ctx,
    Path((slug, id)): Path<(String, String)>,
    uri: Uri,
    headers: HeaderMap,
    form: Result<Multipart, MultipartRejection>,
) -> Result<Response, Response> {
    let checked = check_token(&ctx, &headers, &uri, form).await?;
    let p = Place::open(&services, &ctx, &slug).await?;
    let group_id: GroupId = parse_id(&id);
    let t = Translator::new(ctx.lang);
    let max = services.max_file_bytes();
    let max_mb = max / (1024 * 1024);
    let q = ListQuery::default();
    let again = |message: String| async {
        render(
            &services,
            &ctx,
            &p,
            group_id,
            &q,
            None,
            Some(message),
            StatusCode::UNPROCESSABLE_ENTITY,
        )
        .await
    };
    let mut form = match checked {
        Checked::Form(f) => f,
        Checked::TooLarge => return again(spool_message(t, max_mb, SpoolProblem::TooLarge)).await,
    };
    let (kind, file) = match read_share_form(&mut form, max).await {
        Ok(x) => x,
        Err(problem) => return again(spool_message(t, max_mb, problem)).await,
    };
    match services
        .upload_group_file(&p.actor(), group_id, &file.spooled(), kind)
        .await
    {
        Ok(_) => Ok(ctx.redirect(&format!(
            "/a/{}/g/{group_id}/files?done=file_shared",
            p.slug()
        ))),
        Err(e) => match upload_message(t, max_mb, &e) {
            Some(message) => again(message).await,
            None => Err(page_error(&ctx, "sharing a file", e)),
        },
    }
}

pub(crate) async fn delete(
    State(services): State<Services>,
    ctx: Ctx,
    Path((slug, id)): Path<(String, String)>,
    headers: HeaderMap,
) -> Result<Response, Response> {
    let p = Place::open(&services, &ctx, &slug).await?;
    let file_id: Uuid = parse_id(&id);
    let result = services.delete_file(&p.actor(), file_id).await;
    // Back where the button was: the shared files, or the topic of an attachment.
    let back = headers
        .get(http::header::REFERER)
        .and_then(|v| v.to_str().ok())
        .and_then(|r| r.parse::<Uri>().ok())
        .map(|u| u.path().to_owned())
        .filter(|path| path.starts_with(&format!("/a/{}/", p.slug())))
        .unwrap_or_else(|| "/groups".to_owned());
    Ok(after_action(
        &ctx,
        &back,
        result,
        "file_deleted",
        "deleting a file",
    ))
}

// --- Attachments being written ---------------------------------------------------------------

/// What `static/app.js` gets back for an attachment.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Staged {
    id: String,
    name: String,
    size: i64,
    content_type: String,
    thumbnail: Option<String>,
}

#[derive(Serialize)]
struct StageError {
    code: &'static str,
    message: String,
}

fn json_error(status: StatusCode, code: &'static str, message: String) -> Response {
    (status, axum::Json(StageError { code, message })).into_response()
}

pub(crate) async fn stage(
    State(services): State<Services>,
    ctx: Ctx,
    Path((slug, id)): Path<(String, String)>,
    uri: Uri,
    headers: HeaderMap,
    form: Result<Multipart, MultipartRejection>,
) -> Result<Response, Response> {
    let checked = check_token(&ctx, &headers, &uri, form).await?;
    let t = Translator::new(ctx.lang);
    let p = Place::open_or(&services, &ctx, &slug, |_| {
        json_error(
            StatusCode::UNAUTHORIZED,
            "UNAUTHENTICATED",
            t.get("files.error.signed_out").to_owned(),
        )
    })
    .await?;
    let group_id: GroupId = parse_id(&id);
    let max = services.max_file_bytes();
    let max_mb = max / (1024 * 1024);
    let too_large = |m| {
        json_error(
            StatusCode::PAYLOAD_TOO_LARGE,
            ErrorCode::FileTooLarge.as_str(),
            m,
        )
    };
    let mut form = match checked {
        Checked::Form(f) => f,
        Checked::TooLarge => {
            return Ok(too_large(spool_message(t, max_mb, SpoolProblem::TooLarge)))
        }
    };
    let file = loop {
        let field = match form.next_field().await {
            Ok(Some(f)) => f,
            Ok(None) => break Err(SpoolProblem::NoFile),
            Err(e) if e.status() == StatusCode::PAYLOAD_TOO_LARGE => {
                break Err(SpoolProblem::TooLarge)
            }
            Err(_) => break Err(SpoolProblem::Unreadable),
        };
        if field.name() == Some("file") {
            break spool(field, max).await;
        }
    };
    let file = match file {
        Ok(f) => f,
        Err(SpoolProblem::TooLarge) => {
            return Ok(too_large(spool_message(t, max_mb, SpoolProblem::TooLarge)))
        }
        Err(problem) => {
            return Ok(json_error(
                StatusCode::UNPROCESSABLE_ENTITY,
                ErrorCode::InvalidInput.as_str(),
                spool_message(t, max_mb, problem),
            ))
        }
    };
    match services
        .stage_attachment(&p.actor(), group_id, &file.spooled())
        .await
    {
        Ok(row) => {
            let href = format!("/a/{}/files/{}", p.slug(), row.id);
            Ok(axum::Json(Staged {
                id: row.id.to_string(),
                thumbnail: row.has_preview.then(|| format!("{href}/thumb")),
                name: row.name,
                size: row.size_bytes,
                content_type: row.content_type,
            })
            .into_response())
        }
        Err(e) => {
            let status = match e.code {
                ErrorCode::NotFound => StatusCode::NOT_FOUND,
                ErrorCode::FileTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
                ErrorCode::FileStoreUnavailable | ErrorCode::StorageFull => {
                    StatusCode::SERVICE_UNAVAILABLE
                }
                _ => StatusCode::UNPROCESSABLE_ENTITY,
            };
            let message = upload_message(t, max_mb, &e)
                .unwrap_or_else(|| t.get("files.error.store").to_owned());
            if e.code == ErrorCode::Internal {
                tracing::warn!(error = %e, "staging an attachment");
            }
            Ok(json_error(status, e.code.as_str(), message))
        }
    }
}
