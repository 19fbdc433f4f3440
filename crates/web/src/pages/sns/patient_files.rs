//! Downloads of patient information: `GET /a/{slug}/patients.csv` (the register entries the
//! person may see, for Excel) and `GET /a/{slug}/g/{group_id}/record.json` (one patient group
//! for the patient's record). Both are authorized and audited by the services; a refusal is the
//! not-found page, as for any page.

use super::parse_id;
use crate::ctx::Ctx;
use crate::pages::place::{page_error, Place};
use axum::body::Body;
use axum::extract::{Path, State};
use axum::response::{IntoResponse, Response};
use http::header::CONTENT_TYPE;
use http::{HeaderValue, StatusCode};
use musubi_domain::Services;

/// `attachment` with an ASCII fallback name and the real one per RFC 5987 (Japanese names
/// survive in every current browser).
fn attachment(fallback: &str, name: &str) -> HeaderValue {
    let encoded: String = name
        .bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b'_') {
                char::from(b).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect();
    HeaderValue::from_str(&format!(
        "attachment; filename=\"{fallback}\"; filename*=UTF-8''{encoded}"
    ))
    .unwrap_or(HeaderValue::from_static("attachment"))
}

fn download(content_type: &'static str, disposition: HeaderValue, body: Vec<u8>) -> Response {
    (
        StatusCode::OK,
        [
            (CONTENT_TYPE, HeaderValue::from_static(content_type)),
            (http::header::CONTENT_DISPOSITION, disposition),
            // Patient information: never kept by a shared device's cache.
            (
                http::header::CACHE_CONTROL,
                HeaderValue::from_static("no-store"),
            ),
            (
                http::header::X_CONTENT_TYPE_OPTIONS,
                HeaderValue::from_static("nosniff"),
            ),
        ],
        Body::from(body),
    )
        .into_response()
}

fn today() -> String {
    musubi_domain::patients::today()
        .format("%Y-%m-%d")
        .to_string()
}

pub(crate) async fn register_csv(
    State(services): State<Services>,
    ctx: Ctx,
    Path(slug): Path<String>,
) -> Result<Response, Response> {
    let p = Place::open(&services, &ctx, &slug).await?;
    let bytes = services
        .export_patients_csv(&p.actor())
        .await
        .map_err(|e| page_error(&ctx, "exporting the patient register", e))?;
    let day = today();
    Ok(download(
        "text/csv; charset=utf-8",
        attachment(
            &format!("patients-{}-{day}.csv", p.slug()),
            &format!("患者台帳-{}-{day}.csv", p.tenant.name),
        ),
        bytes,
    ))
}

pub(crate) async fn group_record(
    State(services): State<Services>,
    ctx: Ctx,
    Path((slug, group_id)): Path<(String, String)>,
) -> Result<Response, Response> {
    let p = Place::open(&services, &ctx, &slug).await?;
    let record = services
        .patient_record(&p.actor(), parse_id(&group_id))
        .await
        .map_err(|e| page_error(&ctx, "exporting a patient group's record", e))?;
    let name = record["group"]["name"]
        .as_str()
        .unwrap_or("record")
        .to_owned();
    let bytes = serde_json::to_vec_pretty(&record).unwrap_or_default();
    Ok(download(
        "application/json",
        attachment(
            &format!("record-{}.json", today()),
            &format!("{name}-記録-{}.json", today()),
        ),
        bytes,
    ))
}
