//! Files through the API: a group's shared files and comments' attachments in GraphQL
//! (`groupFiles`, `deleteFile`, `Comment.attachments`), and the routes that carry the bytes for
//! clients holding a bearer token:
//!
//! - `POST /api/a/{slug}/groups/{group_id}/files?kind=<code>` shares a file with the group;
//! - `POST /api/a/{slug}/groups/{group_id}/attachments` uploads one for a comment being written
//!   (then `postComment`/`createTopic` with `attachmentIds`);
//! - `GET /api/a/{slug}/files/{id}` (`?download=1`), `…/preview`, `…/thumb` read one.
//!
//! An upload's body is the file itself (its name in `X-File-Name`, percent-encoded UTF-8),
//! written to a temporary file as it arrives and stopped at the size limit. Answers have the
//! GraphQL shapes: `{"file": File}`, or `{"errors": [{message, extensions: {code, …}}]}`.
//! Authentication and routing are the gateway's, with bearer tokens only: a cross-site form
//! can post a raw body with the browser's cookie (browsers read files at `/a/{slug}/files/…`).

use crate::error::error_for;
use crate::gateway::{credentials, route};
use crate::request::{routed, uuid, OrGql};
use crate::sns::Person;
use async_graphql::{Context, Enum, Object, ServerError, SimpleObject, ID};
use axum::body::Body;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Extension, Json, Router};
use chrono::{DateTime, Utc};
use futures_util::StreamExt;
use http::header::{CONTENT_LENGTH, RETRY_AFTER};
use http::{HeaderMap, HeaderValue, StatusCode};
use musubi_db::files::FileRow;
use musubi_domain::audit::RequestMeta;
use musubi_domain::file_types::SNIFF_BYTES;
use musubi_domain::files::{serving_headers, Spooled, Variant};
use musubi_domain::sessions::Viewer;
use musubi_domain::types::GroupId;
use musubi_domain::{Actor, AppError, ErrorCode, Services, Tenant};
use musubi_telemetry::{ClientMeta, RequestId};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use tokio::io::AsyncWriteExt;
use uuid::Uuid;

/// What a file is, to filter a group's shared files by.
#[derive(Enum, Copy, Clone, Eq, PartialEq, Serialize)]
#[graphql(remote = "musubi_domain::files::FileKind")]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
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

/// A file of a group: shared with it, or attached to a comment. Its addresses are the API's
/// file routes on this server, read with the same bearer token.
#[derive(SimpleObject, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct File {
    pub id: ID,
    /// As kept: the last path component, NFC, ending with the extension of its real type.
    pub name: String,
    pub kind: FileKind,
    /// Decided from the content (`image/jpeg`, `application/pdf`…), never from the name.
    pub content_type: String,
    pub size_bytes: i64,
    /// Photos: width in pixels, upright.
    pub width: Option<i32>,
    /// Photos: height in pixels, upright.
    pub height: Option<i32>,
    /// Photos: `previewUrl` and `thumbnailUrl` are there.
    pub has_preview: bool,
    pub uploaded_by: Person,
    #[serde(serialize_with = "as_graphql_time")]
    pub uploaded_at: DateTime<Utc>,
    /// `/api/a/{slug}/files/{id}`: the file (photos without their metadata); add
    /// `?download=1` to have it saved rather than shown.
    pub url: String,
    /// Photos: a JPEG at most 1280 pixels on its longest side.
    pub preview_url: Option<String>,
    /// Photos: a JPEG at most 320 pixels on its longest side.
    pub thumbnail_url: Option<String>,
}

/// A time written as GraphQL writes `DateTime` (RFC 3339, `+00:00`), so that the upload's answer
/// and the queries agree to the character.
fn as_graphql_time<S: serde::Serializer>(t: &DateTime<Utc>, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&t.to_rfc3339())
}

/// A file's row as the API shows it, its addresses in association `slug`.
pub(crate) fn file_out(r: FileRow, slug: &str) -> File {
    let url = format!("/api/a/{slug}/files/{}", r.id);
    let kind = musubi_domain::files::FileKind::from_code(&r.kind)
        .unwrap_or(musubi_domain::files::FileKind::Other);
    File {
        id: ID(r.id.to_string()),
        kind: kind.into(),
        size_bytes: r.size_bytes,
        width: r.width,
        height: r.height,
        has_preview: r.has_preview,
        uploaded_by: Person {
            user_id: ID(Uuid::from(r.uploaded_by).to_string()),
            name: r.uploader_name.unwrap_or_default(),
        },
        uploaded_at: r.uploaded_at,
        preview_url: r.has_preview.then(|| format!("{url}/preview")),
        thumbnail_url: r.has_preview.then(|| format!("{url}/thumb")),
        url,
        name: r.name,
        content_type: r.content_type,
    }
}

#[derive(Default)]
pub struct FileQuery;

#[Object]
impl FileQuery {
    /// A group's shared files (routed to its host), newest first, at most 500; `kind` filters.
    /// Active members only: anyone else gets `NOT_FOUND`, as for a group that does not exist.
    /// Attachments are not listed here (see `Comment.attachments`).
    async fn group_files(
        &self,
        ctx: &Context<'_>,
        group_id: ID,
        kind: Option<FileKind>,
    ) -> async_graphql::Result<Vec<File>> {
        let (services, actor) = routed(ctx)?;
        let group_id = uuid(ctx, &group_id)?;
        let (_, rows) = services
            .group_files(&actor, group_id, kind.map(Into::into))
            .await
            .gql(ctx)?;
        let slug = &actor.tenant().slug;
        Ok(rows.into_iter().map(|r| file_out(r, slug)).collect())
    }
}

#[derive(Default)]
pub struct FileMutation;

#[Object]
impl FileMutation {
    /// Deletes a file (its uploader, or an owner of the group): hidden at once. Anyone else gets
    /// `NOT_FOUND`, as for a file that does not exist.
    async fn delete_file(&self, ctx: &Context<'_>, id: ID) -> async_graphql::Result<bool> {
        let (services, actor) = routed(ctx)?;
        let file_id = uuid(ctx, &id)?;
        services.delete_file(&actor, file_id).await.gql(ctx)?;
        Ok(true)
    }
}

// --- The file routes -------------------------------------------------------------------------

/// The routes carrying files' bytes. Their bodies are streamed, so the gateway's body limit
/// does not apply: uploads stop at the services' file limit instead.
pub(crate) fn routes(services: Services) -> Router {
    Router::new()
        .route("/api/a/{slug}/groups/{group_id}/files", post(share))
        .route("/api/a/{slug}/groups/{group_id}/attachments", post(stage))
        .route("/api/a/{slug}/files/{id}", get(original))
        .route("/api/a/{slug}/files/{id}/preview", get(preview))
        .route("/api/a/{slug}/files/{id}/thumb", get(thumbnail))
        .with_state(services)
}

/// The header carrying an upload's name.
const NAME_HEADER: &str = "x-file-name";

/// The request's id and client, as the telemetry layer found them.
fn request_meta(
    request_id: Option<Extension<RequestId>>,
    client: Option<Extension<ClientMeta>>,
) -> (RequestId, RequestMeta) {
    let client = client
        .map(|Extension(c)| RequestMeta::new(c.ip, c.user_agent))
        .unwrap_or_default();
    let request_id = request_id
        .map(|Extension(r)| r)
        .unwrap_or_else(|| RequestId(Uuid::new_v4().simple().to_string()));
    (request_id, client)
}

/// The signed-in active member a request comes from, in the association of its path.
struct Caller {
    tenant: Tenant,
    viewer: Viewer,
    client: RequestMeta,
}

impl Caller {
    /// Authenticated and routed as the gateway does for `/graphql`, from a bearer token only.
    async fn of(
        services: &Services,
        headers: &HeaderMap,
        slug: &str,
        client: RequestMeta,
    ) -> Result<Self, AppError> {
        let token =
            match credentials(headers) {
                Some((token, false)) => token,
                Some((_, true)) => return Err(AppError::new(
                    ErrorCode::Unauthenticated,
                    "the file API takes a bearer token (Authorization: Bearer …), not the cookie",
                )),
                None => return Err(AppError::new(ErrorCode::Unauthenticated, "please sign in")),
            };
        let tenant = route(services, Some(slug))
            .await?
            .ok_or_else(AppError::not_found)?;
        let viewer = services
            .authenticate(&token)
            .await?
            .ok_or_else(|| AppError::new(ErrorCode::Unauthenticated, "please sign in"))?;
        viewer.require_active_membership()?;
        Ok(Self {
            tenant,
            viewer,
            client,
        })
    }

    fn actor(&self) -> Actor<'_> {
        Actor::new(&self.viewer, &self.tenant, &self.client)
    }
}

/// The HTTP status that goes with a refusal's code.
fn status_of(code: ErrorCode) -> StatusCode {
    match code {
        ErrorCode::NotFound | ErrorCode::AssociationNotFound => StatusCode::NOT_FOUND,
        ErrorCode::Unauthenticated => StatusCode::UNAUTHORIZED,
        ErrorCode::NoActiveMembership => StatusCode::FORBIDDEN,
        ErrorCode::InvalidInput => StatusCode::UNPROCESSABLE_ENTITY,
        ErrorCode::FileTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
        ErrorCode::QuotaExceeded => StatusCode::INSUFFICIENT_STORAGE,
        ErrorCode::GroupArchived | ErrorCode::Conflict => StatusCode::CONFLICT,
        ErrorCode::RateLimited => StatusCode::TOO_MANY_REQUESTS,
        ErrorCode::FileStoreUnavailable
        | ErrorCode::Overloaded
        | ErrorCode::AssociationUnavailable
        | ErrorCode::DatabaseUnavailable
        | ErrorCode::StorageFull => StatusCode::SERVICE_UNAVAILABLE,
        ErrorCode::Internal => StatusCode::INTERNAL_SERVER_ERROR,
        _ => StatusCode::BAD_REQUEST,
    }
}

/// A refusal as `{"errors": [ … ]}`, each error as a GraphQL error of the same failure (stable
/// code, reasons, field; internal causes only in the log, with the trace id).
fn refusal(e: AppError, request_id: &RequestId) -> Response {
    let status = status_of(e.code);
    let retry_after = e.retry_after;
    let err = error_for(Some(request_id), e);
    let mut shown = ServerError::new(err.message, None);
    shown.extensions = err.extensions;
    let mut response = (status, Json(serde_json::json!({ "errors": [shown] }))).into_response();
    if let Some(secs) = retry_after {
        response
            .headers_mut()
            .insert(RETRY_AFTER, HeaderValue::from(secs.max(1)));
    }
    response
}

#[derive(Serialize)]
struct Uploaded {
    file: File,
}

#[derive(Debug, Default, Deserialize)]
struct ShareQuery {
    kind: Option<String>,
}

/// Where an upload goes.
#[derive(Clone, Copy)]
enum Target {
    Shared(musubi_domain::files::FileKind),
    Attachment,
}

async fn share(
    State(services): State<Services>,
    Path((slug, group_id)): Path<(String, String)>,
    query: Result<Query<ShareQuery>, QueryRejection>,
    headers: HeaderMap,
    request_id: Option<Extension<RequestId>>,
    client: Option<Extension<ClientMeta>>,
    body: Body,
) -> Response {
    let (request_id, client) = request_meta(request_id, client);
    let kind = match query.map(|Query(q)| q.kind) {
        Ok(None) => Ok(musubi_domain::files::FileKind::Other),
        Ok(Some(code)) => musubi_domain::files::FileKind::from_code(&code).ok_or(()),
        Err(_) => Err(()),
    }
    .map_err(|()| {
        AppError::invalid(
            "kind",
            "kind must be one of test_result, prescription, referral, care_plan, image, other",
        )
    });
    let target = kind.map(Target::Shared);
    upload(&services, &headers, &slug, &group_id, target, client, body)
        .await
        .unwrap_or_else(|e| refusal(e, &request_id))
}

async fn stage(
    State(services): State<Services>,
    Path((slug, group_id)): Path<(String, String)>,
    headers: HeaderMap,
    request_id: Option<Extension<RequestId>>,
    client: Option<Extension<ClientMeta>>,
    body: Body,
) -> Response {
    let (request_id, client) = request_meta(request_id, client);
    upload(
        &services,
        &headers,
        &slug,
        &group_id,
        Ok(Target::Attachment),
        client,
        body,
    )
    .await
    .unwrap_or_else(|e| refusal(e, &request_id))
}

/// Who asks, then what they send: nothing is read before the token is checked, and reading
/// stops at the limit.
async fn upload(
    services: &Services,
    headers: &HeaderMap,
    slug: &str,
    group_id: &str,
    target: Result<Target, AppError>,
    client: RequestMeta,
    body: Body,
) -> Result<Response, AppError> {
    let caller = Caller::of(services, headers, slug, client).await?;
    let target = target?;
    // Not a UUID: a group that does not exist.
    let group_id: GroupId = Uuid::parse_str(group_id)
        .map_err(|_| AppError::not_found())?
        .into();
    let max = services.max_file_bytes();
    if max == 0 {
        return Err(AppError::new(
            ErrorCode::FileStoreUnavailable,
            "files are not available on this server",
        ));
    }
    let name = file_name(headers)?;
    let file = spool(headers, body, max, name).await?;
    let actor = caller.actor();
    let row = match target {
        Target::Shared(kind) => {
            services
                .upload_group_file(&actor, group_id, &file.spooled(), kind)
                .await?
        }
        Target::Attachment => {
            services
                .stage_attachment(&actor, group_id, &file.spooled())
                .await?
        }
    };
    let file = file_out(row, &caller.tenant.slug);
    Ok((StatusCode::CREATED, Json(Uploaded { file })).into_response())
}

/// `X-File-Name`, percent-decoded (raw UTF-8 is taken as it is); none: the services name it.
fn file_name(headers: &HeaderMap) -> Result<String, AppError> {
    let Some(value) = headers.get(NAME_HEADER) else {
        return Ok(String::new());
    };
    percent_encoding::percent_decode(value.as_bytes())
        .decode_utf8()
        .map(|n| n.into_owned())
        .map_err(|_| {
            AppError::invalid(
                "name",
                "X-File-Name must be the file's name in percent-encoded UTF-8",
            )
        })
}

/// An upload's body in a temporary file (removed when this is dropped).
struct SpooledBody {
    path: tempfile::TempPath,
    name: String,
    size: u64,
    sha256: [u8; 32],
    head: Vec<u8>,
}

impl SpooledBody {
    fn spooled(&self) -> Spooled<'_> {
        Spooled {
            path: &self.path,
            name: &self.name,
            size: self.size,
            sha256: self.sha256,
            head: &self.head,
        }
    }
}

fn too_large(max: u64) -> AppError {
    AppError::new(
        ErrorCode::FileTooLarge,
        format!("files may be at most {max} bytes"),
    )
}

/// Writes the body to a temporary file as it arrives, hashing it and keeping its first bytes,
/// at most `max` bytes: a larger one is refused when its `Content-Length` says so, otherwise as
/// soon as it passes the limit, and the rest is never read.
async fn spool(
    headers: &HeaderMap,
    body: Body,
    max: u64,
    name: String,
) -> Result<SpooledBody, AppError> {
    let announced = headers
        .get(CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok());
    if announced.is_some_and(|n| n > max) {
        return Err(too_large(max));
    }
    let path = tempfile::Builder::new()
        .prefix("musubi-upload-")
        .tempfile()
        .map_err(AppError::io)?
        .into_temp_path();
    let mut out = tokio::fs::File::create(&path).await.map_err(AppError::io)?;
    let mut hasher = Sha256::new();
    let mut head = Vec::with_capacity(SNIFF_BYTES);
    let mut size = 0u64;
    let mut chunks = body.into_data_stream();
    while let Some(chunk) = chunks.next().await {
        let chunk = chunk.map_err(|e| {
            tracing::info!(error = %e, "an upload's body broke off");
            AppError::invalid("file", "the body could not be read to its end")
        })?;
        size += chunk.len() as u64;
        if size > max {
            return Err(too_large(max));
        }
        if head.len() < SNIFF_BYTES {
            let take = (SNIFF_BYTES - head.len()).min(chunk.len());
            head.extend_from_slice(&chunk[..take]);
        }
        hasher.update(&chunk);
        out.write_all(&chunk).await.map_err(AppError::io)?;
    }
    out.flush().await.map_err(AppError::io)?;
    if size == 0 {
        return Err(AppError::invalid(
            "file",
            "the body is empty: send the file's bytes",
        ));
    }
    Ok(SpooledBody {
        path,
        name,
        size,
        sha256: hasher.finalize().into(),
        head,
    })
}

#[derive(Debug, Default, Deserialize)]
struct OpenQuery {
    download: Option<String>,
}

async fn original(
    State(services): State<Services>,
    Path((slug, id)): Path<(String, String)>,
    query: Result<Query<OpenQuery>, QueryRejection>,
    headers: HeaderMap,
    request_id: Option<Extension<RequestId>>,
    client: Option<Extension<ClientMeta>>,
) -> Response {
    let download = query.is_ok_and(|Query(q)| q.download.is_some());
    let (request_id, client) = request_meta(request_id, client);
    serve(
        &services,
        &headers,
        &slug,
        &id,
        Variant::Original,
        download,
        client,
    )
    .await
    .unwrap_or_else(|e| refusal(e, &request_id))
}

async fn preview(
    State(services): State<Services>,
    Path((slug, id)): Path<(String, String)>,
    headers: HeaderMap,
    request_id: Option<Extension<RequestId>>,
    client: Option<Extension<ClientMeta>>,
) -> Response {
    let (request_id, client) = request_meta(request_id, client);
    serve(
        &services,
        &headers,
        &slug,
        &id,
        Variant::Preview,
        false,
        client,
    )
    .await
    .unwrap_or_else(|e| refusal(e, &request_id))
}

async fn thumbnail(
    State(services): State<Services>,
    Path((slug, id)): Path<(String, String)>,
    headers: HeaderMap,
    request_id: Option<Extension<RequestId>>,
    client: Option<Extension<ClientMeta>>,
) -> Response {
    let (request_id, client) = request_meta(request_id, client);
    serve(
        &services,
        &headers,
        &slug,
        &id,
        Variant::Thumbnail,
        false,
        client,
    )
    .await
    .unwrap_or_else(|e| refusal(e, &request_id))
}

/// Streams a file after the services' check, with the web's safety headers: `nosniff`, a
/// sandboxing CSP, and inline only for photos and PDF.
async fn serve(
    services: &Services,
    headers: &HeaderMap,
    slug: &str,
    id: &str,
    variant: Variant,
    download: bool,
    client: RequestMeta,
) -> Result<Response, AppError> {
    let caller = Caller::of(services, headers, slug, client).await?;
    let file_id = Uuid::parse_str(id).map_err(|_| AppError::not_found())?;
    let (row, body) = services
        .open_file(&caller.actor(), file_id, variant)
        .await?;
    let mut out = HeaderMap::new();
    for (name, value) in serving_headers(&row, variant, download) {
        if let Ok(value) = HeaderValue::from_str(&value) {
            out.insert(name, value);
        }
    }
    if let Some(length) = body.length {
        out.insert(CONTENT_LENGTH, HeaderValue::from(length));
    }
    let body = Body::from_stream(body.into_stream());
    Ok((StatusCode::OK, out, body).into_response())
}
