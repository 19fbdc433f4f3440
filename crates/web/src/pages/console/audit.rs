//! `GET /a/{slug}/console/audit`: the association's audit log, newest first, filtered by kind
//! of action, by person (`actor`), by group (`group`) and by dates (Japan time), older pages by
//! `before`, each record in words: its action's label, the group (patient) and topic by the
//! names they had then, its details labelled; and
//! `GET /a/{slug}/console/audit.csv`: the same records as a CSV file (with a BOM, for Excel),
//! streamed as the services write it.

use super::{not_found_page, page_error, query_string, Console, ConsoleHead};
use crate::assets::{self, AssetUrls};
use crate::ctx::{encode_query_value, Ctx};
use crate::i18n::Translator;
use crate::layout::Nav;
use askama::Template;
use axum::body::{Body, Bytes};
use axum::extract::{Path, Query, State};
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, NaiveDate, TimeZone, Utc};
use futures_util::Stream;
use http::header::{CACHE_CONTROL, CONTENT_DISPOSITION, CONTENT_TYPE, X_CONTENT_TYPE_OPTIONS};
use http::{HeaderValue, StatusCode, Uri};
use musubi_config::time::jst;
use musubi_domain::audit::{AuditAction, AuditFilter, AuditRecord};
use musubi_domain::types::PersonId;
use musubi_domain::{AppError, AppResult, ErrorCode, Services};
use serde::Deserialize;
use std::collections::HashMap;
use tokio::io::{AsyncReadExt, DuplexStream};
use tokio::task::JoinHandle;

/// The kinds of action one can filter on: the first segment of the action codes.
pub(crate) const ACTION_GROUPS: [&str; 7] = [
    "auth", "member", "settings", "access", "audit", "patient", "topic",
];

/// An `<option>` of the filter.
pub(crate) struct Choice {
    pub value: &'static str,
    pub label: &'static str,
    pub selected: bool,
}

/// One record, as the list shows it.
pub(crate) struct RecordCard {
    pub seq: i64,
    pub time: String,
    pub action: String,
    pub code: String,
    pub actor: String,
    pub object: Option<String>,
    pub ip: String,
    /// (label, value), in words.
    pub details: Vec<(String, String)>,
    /// The records of the same group.
    pub group_href: Option<String>,
    /// A refused attempt: shown so it stands out.
    pub denied: bool,
}

/// A person to filter on.
pub(crate) struct PersonChoice {
    pub id: String,
    pub name: String,
    pub selected: bool,
}

#[derive(Default)]
pub(crate) struct DateErrors {
    pub from: Option<&'static str>,
    pub until: Option<&'static str>,
}

#[derive(Template)]
#[template(path = "console/audit.html")]
pub(crate) struct AuditPage<'a> {
    pub t: Translator,
    pub assets: &'static AssetUrls,
    pub nav: Nav<'a>,
    pub current_path: &'a str,
    pub console: ConsoleHead,
    pub actions: Vec<Choice>,
    pub people: Vec<PersonChoice>,
    /// The group filtered on, and the address without that filter.
    pub group: Option<(String, String)>,
    pub group_value: String,
    pub from: String,
    pub until: String,
    pub errors: DateErrors,
    pub records: Vec<RecordCard>,
    /// The next (older) page, when there is one.
    pub older: Option<String>,
    /// Back to the newest records, when this is an older page.
    pub newest: Option<String>,
    /// The CSV of the same filter.
    pub csv: String,
}

#[derive(Deserialize, Default)]
pub(crate) struct AuditQuery {
    action: Option<String>,
    actor: Option<String>,
    group: Option<String>,
    from: Option<String>,
    until: Option<String>,
    before: Option<String>,
}

/// The query understood: the filter, and the form's fields as they were sent.
struct Parsed {
    filter: AuditFilter,
    action: &'static str,
    actor: String,
    group: String,
    from: String,
    until: String,
    before: Option<i64>,
    errors: DateErrors,
}

impl Parsed {
    fn from_uri(uri: &Uri) -> Self {
        let q = Query::<AuditQuery>::try_from_uri(uri)
            .map(|q| q.0)
            .unwrap_or_default();
        let action = ACTION_GROUPS
            .into_iter()
            .find(|g| q.action.as_deref() == Some(*g))
            .unwrap_or("");
        // Ids only: anything else is no filter.
        let actor = q
            .actor
            .and_then(|a| a.trim().parse::<PersonId>().ok())
            .map(|a| a.to_string())
            .unwrap_or_default();
        let group = q
            .group
            .and_then(|g| g.trim().parse::<uuid::Uuid>().ok())
            .map(|g| g.to_string())
            .unwrap_or_default();
        let from = q.from.unwrap_or_default().trim().to_owned();
        let until = q.until.unwrap_or_default().trim().to_owned();
        let mut errors = DateErrors::default();
        let from_day = day(&from, &mut errors.from);
        let until_day = day(&until, &mut errors.until);
        if let (Some(f), Some(u)) = (from_day, until_day) {
            if u < f {
                errors.until = Some("console.audit.error_order");
            }
        }
        let filter = AuditFilter {
            from: from_day.and_then(start_of_day_in_japan),
            // The whole last day is included: up to the next midnight.
            until: until_day
                .and_then(|d| d.succ_opt())
                .and_then(start_of_day_in_japan),
            action_prefix: (!action.is_empty()).then(|| action.to_owned()),
            actor_id: actor.parse().ok(),
            group_id: (!group.is_empty()).then(|| group.clone()),
            ..AuditFilter::default()
        };
        Self {
            filter,
            action,
            actor,
            group,
            from,
            until,
            before: q.before.and_then(|b| b.trim().parse().ok()),
            errors,
        }
    }

    fn has_errors(&self) -> bool {
        self.errors.from.is_some() || self.errors.until.is_some()
    }

    /// The filter as a query string (without the page).
    fn query(&self) -> String {
        query_string(&[
            ("action", self.action),
            ("actor", self.actor.as_str()),
            ("group", self.group.as_str()),
            ("from", self.from.as_str()),
            ("until", self.until.as_str()),
        ])
    }
}

/// A day typed in the date field (`2026-03-04`; `2026/3/4` where the browser has no date
/// picker). Empty is no bound; anything else is an error on that field.
fn day(raw: &str, error: &mut Option<&'static str>) -> Option<NaiveDate> {
    if raw.is_empty() {
        return None;
    }
    let parsed = NaiveDate::parse_from_str(raw, "%Y-%m-%d")
        .or_else(|_| NaiveDate::parse_from_str(raw, "%Y/%m/%d"))
        .ok();
    if parsed.is_none() {
        *error = Some("console.audit.error_date");
    }
    parsed
}

fn start_of_day_in_japan(d: NaiveDate) -> Option<DateTime<Utc>> {
    let midnight = d.and_hms_opt(0, 0, 0)?;
    jst()
        .from_local_datetime(&midnight)
        .single()
        .map(|t| t.with_timezone(&Utc))
}

pub(crate) async fn show(
    State(services): State<Services>,
    ctx: Ctx,
    Path(slug): Path<String>,
    uri: Uri,
) -> Result<Response, Response> {
    let c = Console::open(&services, &ctx, &slug).await?;
    let parsed = Parsed::from_uri(&uri);
    let page_of = services
        .audit_list(&c.actor(), &parsed.filter, parsed.before, None)
        .await
        .map_err(|e| page_error(&ctx, "listing the audit log", e))?;
    // Names for the people records are about (the ids alone mean nothing to a reader).
    let names: HashMap<PersonId, String> = services
        .list_members(&c.actor())
        .await
        .map_err(|e| page_error(&ctx, "listing members", e))?
        .into_iter()
        .map(|m| (m.user_id, m.name))
        .collect();

    let t = Translator::new(ctx.lang);
    let status = if parsed.has_errors() {
        StatusCode::UNPROCESSABLE_ENTITY
    } else {
        StatusCode::OK
    };
    let base = c.path("audit");
    let query = parsed.query();
    let with = |extra: String| {
        let q = [query.as_str(), extra.as_str()]
            .into_iter()
            .filter(|s| !s.is_empty())
            .collect::<Vec<_>>()
            .join("&");
        if q.is_empty() {
            base.clone()
        } else {
            format!("{base}?{q}")
        }
    };
    let records: Vec<RecordCard> = page_of
        .records
        .iter()
        .map(|r| record_card(t, r, &names, &base))
        .collect();
    let mut people: Vec<PersonChoice> = names
        .iter()
        .map(|(id, name)| PersonChoice {
            id: id.to_string(),
            name: name.clone(),
            selected: parsed.actor == id.to_string(),
        })
        .collect();
    people.sort_by(|a, b| a.name.cmp(&b.name));
    // The group's name as the records on this page have it.
    let group = (!parsed.group.is_empty()).then(|| {
        let name = page_of
            .records
            .iter()
            .find_map(|r| r.detail.get("group_name").and_then(|v| v.as_str()))
            .map_or_else(
                || t.get("console.audit.group_chosen").to_owned(),
                str::to_owned,
            );
        let without = Parsed {
            group: String::new(),
            ..Parsed::from_uri(&uri)
        }
        .query();
        let href = if without.is_empty() {
            base.clone()
        } else {
            format!("{base}?{without}")
        };
        (name, href)
    });
    let actions = std::iter::once(Choice {
        value: "",
        label: t.get("console.audit.filter_all"),
        selected: parsed.action.is_empty(),
    })
    .chain(ACTION_GROUPS.into_iter().map(|g| Choice {
        value: g,
        label: group_label(t, g),
        selected: parsed.action == g,
    }))
    .collect();
    let csv = {
        let path = c.path("audit.csv");
        if query.is_empty() {
            path
        } else {
            format!("{path}?{query}")
        }
    };
    let page = AuditPage {
        t,
        assets: assets::urls(),
        nav: Nav::signed_in(&c.viewer.user().name, ctx.csrf.form_token()),
        current_path: &base,
        console: c.head("audit"),
        actions,
        people,
        group,
        group_value: parsed.group.clone(),
        errors: DateErrors {
            from: parsed.errors.from.map(|k| t.get(k)),
            until: parsed.errors.until.map(|k| t.get(k)),
        },
        records,
        older: page_of.next_before.map(|b| with(format!("before={b}"))),
        newest: parsed.before.map(|_| with(String::new())),
        csv,
        from: parsed.from,
        until: parsed.until,
    };
    Ok(ctx.respond(status, &page))
}

fn group_label(t: Translator, group: &str) -> &'static str {
    match group {
        "auth" => t.get("console.audit.group_auth"),
        "member" => t.get("console.audit.group_member"),
        "settings" => t.get("console.audit.group_settings"),
        "access" => t.get("console.audit.group_access"),
        "audit" => t.get("console.audit.group_audit"),
        "patient" => t.get("console.audit.group_patient"),
        _ => t.get("console.audit.group_topic"),
    }
}

/// The catalog key naming an action code: `auth.sign_in` → `console.action.auth_sign_in`.
pub(crate) fn action_key(code: &str) -> String {
    format!("console.action.{}", code.replace('.', "_"))
}

fn record_card(
    t: Translator,
    r: &AuditRecord,
    names: &HashMap<PersonId, String>,
    base: &str,
) -> RecordCard {
    let key = action_key(&r.action);
    let label = t.get(&key);
    // A code newer than this catalog is shown as it is.
    let action = if label == key {
        r.action.as_str()
    } else {
        label
    };
    let text = |k: &str| r.detail.get(k).and_then(|v| v.as_str()).map(str::to_owned);
    let (group_name, topic_title) = (text("group_name"), text("topic_title"));
    let object = match (r.object_type.as_deref(), &r.object_id) {
        (Some("user"), Some(id)) => Some(
            match id.parse::<PersonId>().ok().and_then(|u| names.get(&u)) {
                Some(n) => t.format("layout.user_name", n),
                None => t.get("console.audit.someone").to_owned(),
            },
        ),
        // Named as they were when it happened.
        (Some("topic" | "comment"), _) if topic_title.is_some() => Some(format!(
            "{}「{}」",
            group_name.clone().unwrap_or_default(),
            topic_title.clone().unwrap_or_default()
        )),
        (Some("group" | "topic" | "comment"), _) if group_name.is_some() => group_name.clone(),
        (Some(kind), Some(id)) => Some(format!("{kind}:{id}")),
        (Some(kind), None) => Some(kind.to_owned()),
        (None, Some(id)) => Some(id.clone()),
        (None, None) => None,
    };
    let group_id = r
        .detail
        .get("group_id")
        .and_then(|v| v.as_str())
        .map(str::to_owned)
        .or_else(|| {
            (r.object_type.as_deref() == Some("group"))
                .then(|| r.object_id.clone())
                .flatten()
        });
    let details = r
        .detail
        .as_object()
        .map(|m| {
            m.iter()
                .filter(|(k, _)| !HIDDEN_DETAILS.contains(&k.as_str()))
                .map(|(k, v)| (detail_label(t, k), detail_value(t, k, v)))
                .collect()
        })
        .unwrap_or_default();
    RecordCard {
        seq: r.seq,
        time: super::date_time_seconds(t, r.at),
        action: action.to_owned(),
        code: r.action.clone(),
        actor: if r.actor_label == "system" && r.actor_id.is_none() {
            t.get("console.audit.system").to_owned()
        } else {
            r.actor_label.clone()
        },
        object,
        ip: r.ip.clone(),
        details,
        group_href: group_id.map(|g| format!("{base}?group={}", encode_query_value(&g))),
        denied: r.action == AuditAction::AccessDenied.as_str(),
    }
}

/// Details the record shows elsewhere (the object's names) or that mean nothing to a reader.
const HIDDEN_DETAILS: [&str; 5] = [
    "group_name",
    "topic_title",
    "group_id",
    "topic_id",
    "object_ids",
];

fn detail_label(t: Translator, key: &str) -> String {
    let k = format!("console.audit.detail_{key}");
    let label = t.get(&k);
    if label == k {
        key.to_owned()
    } else {
        label.to_owned()
    }
}

fn detail_value(t: Translator, key: &str, v: &serde_json::Value) -> String {
    use serde_json::Value;
    match v {
        Value::Bool(true) => t.get("console.audit.yes").to_owned(),
        Value::Bool(false) => t.get("console.audit.no").to_owned(),
        Value::Number(n) if key == "scope" => {
            match n
                .as_i64()
                .and_then(|b| i16::try_from(b).ok())
                .and_then(musubi_domain::groups::Scope::from_bits)
            {
                Some(s) => crate::pages::sns::scope_label(t, s)
                    .unwrap_or_else(|| t.get("sns.scope.everyone").to_owned()),
                None => n.to_string(),
            }
        }
        Value::String(s) => s.clone(),
        Value::Array(a) => t.format("sns.count", &a.len().to_string()),
        Value::Null => String::new(),
        other => other.to_string(),
    }
}

/// `GET …/audit.csv`: the filtered log as a file. The services authorize, record the export
/// and write the CSV in chunks into a pipe whose other end is the response body.
pub(crate) async fn export(
    State(services): State<Services>,
    ctx: Ctx,
    Path(slug): Path<String>,
    uri: Uri,
) -> Result<Response, Response> {
    let c = Console::open(&services, &ctx, &slug).await?;
    let parsed = Parsed::from_uri(&uri);
    if parsed.has_errors() {
        // The list page says what is wrong with the dates (and authorizes first).
        let query = parsed.query();
        return Ok(ctx.redirect(&format!("{}?{query}", c.path("audit"))));
    }
    let filename = format!(
        "audit-{}-{}.csv",
        c.tenant.slug,
        Utc::now().with_timezone(&jst()).format("%Y-%m-%d")
    );
    let filter = parsed.filter;
    // Column names in the reader's language; the values stay as they are (codes, ids).
    let t = Translator::new(ctx.lang);
    let header = CSV_HEADER_KEYS.map(|k| t.get(k));
    let (mut writer, mut reader) = tokio::io::duplex(64 * 1024);
    let task: JoinHandle<AppResult<u64>> = tokio::spawn(async move {
        services
            .audit_export_csv(&c.actor(), &filter, &header, &mut writer)
            .await
        // The writer is dropped here: the reader then sees the end.
    });
    // Nothing is sent before the services have answered: a refusal is still the 404 page.
    let mut first = vec![0u8; 16 * 1024];
    let n = reader.read(&mut first).await.unwrap_or(0);
    if n == 0 {
        return Err(match task.await {
            Ok(Err(e)) if e.code == ErrorCode::NotFound => not_found_page(&ctx),
            Ok(Err(e)) => ctx.fail("exporting the audit log", e),
            Ok(Ok(_)) => ctx.fail(
                "exporting the audit log",
                AppError::new(ErrorCode::Internal, "the export wrote nothing"),
            ),
            Err(e) => ctx.fail("exporting the audit log", AppError::internal(e)),
        });
    }
    first.truncate(n);
    let disposition = HeaderValue::from_str(&format!("attachment; filename=\"{filename}\""))
        .unwrap_or(HeaderValue::from_static(
            "attachment; filename=\"audit.csv\"",
        ));
    Ok((
        StatusCode::OK,
        [
            (
                CONTENT_TYPE,
                HeaderValue::from_static("text/csv; charset=utf-8"),
            ),
            (CONTENT_DISPOSITION, disposition),
            (CACHE_CONTROL, HeaderValue::from_static("no-store")),
            (X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff")),
        ],
        Body::from_stream(csv_body(first, reader, task)),
    )
        .into_response())
}

const CSV_HEADER_KEYS: [&str; 9] = [
    "console.audit.csv_seq",
    "console.audit.csv_time",
    "console.audit.csv_actor",
    "console.audit.csv_actor_id",
    "console.audit.csv_action",
    "console.audit.csv_object",
    "console.audit.csv_ip",
    "console.audit.csv_user_agent",
    "console.audit.csv_detail",
];

type Pipe = (Option<Vec<u8>>, DuplexStream, JoinHandle<AppResult<u64>>);

/// The bytes already read, then the rest of the pipe. If the export fails on the way, the
/// body ends with an error (the connection is cut) rather than looking like a whole file.
fn csv_body(
    first: Vec<u8>,
    reader: DuplexStream,
    task: JoinHandle<AppResult<u64>>,
) -> impl Stream<Item = std::io::Result<Bytes>> {
    let start: Option<Pipe> = Some((Some(first), reader, task));
    futures_util::stream::unfold(start, |state| async move {
        let (first, mut reader, task) = state?;
        if let Some(chunk) = first {
            return Some((Ok(Bytes::from(chunk)), Some((None, reader, task))));
        }
        let mut buf = vec![0u8; 32 * 1024];
        match reader.read(&mut buf).await {
            Ok(0) => match task.await {
                Ok(Ok(_)) => None,
                Ok(Err(e)) => {
                    tracing::error!(code = e.code.as_str(), error = ?e.source, "the audit export failed");
                    Some((Err(std::io::Error::other("the audit export failed")), None))
                }
                Err(e) => {
                    tracing::error!(error = %e, "the audit export task failed");
                    Some((Err(std::io::Error::other("the audit export failed")), None))
                }
            },
            Ok(n) => {
                buf.truncate(n);
                Some((Ok(Bytes::from(buf)), Some((None, reader, task))))
            }
            Err(e) => Some((Err(e), None)),
        }
    })
}
