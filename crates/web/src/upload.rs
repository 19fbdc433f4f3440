//! File uploads: `multipart/form-data` forms, which the CSRF guard in front of the other routes
//! refuses (it reads bodies of at most 64 KiB). Their routes are outside it and check the same
//! things here before reading any file: the `Origin`, and the token in the form's first field
//! compared with the cookie. Files are then written to a temporary file as they arrive, hashed
//! on the way and stopped at the size limit: never held in memory whole.

use crate::assets;
use crate::cookies;
use crate::csrf::{origin_is_this_host, CSRF_COOKIE, CSRF_FIELD};
use crate::ctx::Ctx;
use crate::i18n::Translator;
use crate::layout::Nav;
use crate::pages::error::{self, ErrorPage};
use axum::extract::multipart::{Field, MultipartRejection};
use axum::extract::Multipart;
use axum::response::Response;
use http::{HeaderMap, StatusCode, Uri};
use musubi_auth::token::{constant_time_eq, is_well_formed, unmask};
use musubi_domain::file_types::SNIFF_BYTES;
use musubi_domain::files::Spooled;
use sha2::{Digest, Sha256};
use tokio::io::AsyncWriteExt;

/// A form that passed [`check_token`].
pub(crate) enum Checked {
    Form(Multipart),
    /// The route's limit stopped the body before its token could be read (a client or proxy
    /// that sends it all at once). Nothing will change: the answer says what is wrong.
    TooLarge,
}

/// 403, as the CSRF guard answers: nothing was read past the token.
pub(crate) fn refused(ctx: &Ctx, why: &'static str) -> Response {
    tracing::warn!(reason = why, "upload refused by the CSRF check");
    let t = Translator::new(ctx.lang);
    let path = ctx.path.split('?').next().unwrap_or("/");
    let page = ErrorPage {
        t,
        assets: assets::urls(),
        nav: Nav::hidden(),
        current_path: path,
        title: t.get("error.forbidden.title"),
        message: t.get("error.forbidden.message"),
        code: None,
        retry: true,
        kept: None,
    };
    error::respond(StatusCode::FORBIDDEN, ctx.lang, &page)
}

/// The guard's comparison (see [`crate::csrf`]): the form carries the cookie's token, masked.
fn token_matches(headers: &HeaderMap, sent: &str) -> bool {
    let Some(expected) = cookies::get(headers, CSRF_COOKIE).filter(|t| is_well_formed(t)) else {
        return false;
    };
    let sent = unmask(sent).unwrap_or_else(|| sent.to_owned());
    constant_time_eq(expected, &sent)
}

/// Same origin and the right token in the first field, or the 403 page.
pub(crate) async fn check_token(
    ctx: &Ctx,
    headers: &HeaderMap,
    uri: &Uri,
    form: Result<Multipart, MultipartRejection>,
) -> Result<Checked, Response> {
    let authority = uri.authority().map(|a| a.as_str());
    let Ok(mut form) = form.map_err(|_| ()).and_then(|f| {
        origin_is_this_host(headers, authority)
            .then_some(f)
            .ok_or(())
    }) else {
        return Err(refused(ctx, "origin or content type"));
    };
    let sent = match form.next_field().await {
        Ok(Some(field)) if field.name() == Some(CSRF_FIELD) => field.text().await,
        Ok(_) => return Err(refused(ctx, "token")),
        Err(e) => Err(e),
    };
    match sent {
        Ok(token) if token_matches(headers, &token) => Ok(Checked::Form(form)),
        Err(e) if e.status() == StatusCode::PAYLOAD_TOO_LARGE => Ok(Checked::TooLarge),
        _ => Err(refused(ctx, "token")),
    }
}

/// Why a file part could not be kept.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum SpoolProblem {
    /// Over the limit: reading stopped there.
    TooLarge,
    /// The body broke off or is not multipart.
    Unreadable,
    /// No file was chosen (browsers send an empty, nameless part).
    NoFile,
    /// The temporary file could not be written.
    Local,
}

/// A file part written to a temporary file (removed when this is dropped).
pub(crate) struct SpooledFile {
    path: tempfile::TempPath,
    pub name: String,
    pub size: u64,
    sha256: [u8; 32],
    head: Vec<u8>,
}

impl SpooledFile {
    /// What the services take.
    pub(crate) fn spooled(&self) -> Spooled<'_> {
        Spooled {
            path: &self.path,
            name: &self.name,
            size: self.size,
            sha256: self.sha256,
            head: &self.head,
        }
    }
}

/// Writes a file part to a temporary file, at most `max` bytes.
pub(crate) async fn spool(mut field: Field<'_>, max: u64) -> Result<SpooledFile, SpoolProblem> {
    let name = field.file_name().unwrap_or_default().to_owned();
    let path = tempfile::Builder::new()
        .prefix("musubi-upload-")
        .tempfile()
        .map_err(|e| {
            tracing::warn!(error = %e, "a temporary file for an upload");
            SpoolProblem::Local
        })?
        .into_temp_path();
    let mut out = tokio::fs::File::create(&path)
        .await
        .map_err(|_| SpoolProblem::Local)?;
    let mut hasher = Sha256::new();
    let mut head = Vec::with_capacity(SNIFF_BYTES);
    let mut size = 0u64;
    loop {
        match field.chunk().await {
            Ok(Some(chunk)) => {
                size += chunk.len() as u64;
                if size > max {
                    return Err(SpoolProblem::TooLarge);
                }
                if head.len() < SNIFF_BYTES {
                    let take = (SNIFF_BYTES - head.len()).min(chunk.len());
                    head.extend_from_slice(&chunk[..take]);
                }
                hasher.update(&chunk);
                out.write_all(&chunk)
                    .await
                    .map_err(|_| SpoolProblem::Local)?;
            }
            Ok(None) => break,
            Err(e) if e.status() == StatusCode::PAYLOAD_TOO_LARGE => {
                return Err(SpoolProblem::TooLarge)
            }
            Err(_) => return Err(SpoolProblem::Unreadable),
        }
    }
    out.flush().await.map_err(|_| SpoolProblem::Local)?;
    if size == 0 && name.is_empty() {
        return Err(SpoolProblem::NoFile);
    }
    Ok(SpooledFile {
        path,
        name,
        size,
        sha256: hasher.finalize().into(),
        head,
    })
}
