//! Registering patients from a CSV file: `GET|POST /a/{slug}/patients/import`.
//!
//! The file is always checked first (a dry run: nothing is written) and the page says how many
//! rows would be registered and why each other row would not. Registering is a second post of
//! the same content, carried in the page (base64, hidden), which the services check again.
//! Who may register a patient may import; anyone else gets the normal 404 page.
//!
//! The form is `multipart/form-data`: checked by [`crate::upload`] before the file is read.

use super::{nav, page_error, Place};
use crate::assets::{self, AssetUrls};
use crate::ctx::Ctx;
use crate::i18n::Translator;
use crate::layout::{Nav, Section};
use crate::upload::{check_token, Checked};
use askama::Template;
use axum::extract::multipart::{Field, MultipartRejection};
use axum::extract::{DefaultBodyLimit, Multipart, Path, State};
use axum::response::Response;
use axum::routing::get;
use axum::Router;
use data_encoding::BASE64;
use http::{HeaderMap, StatusCode, Uri};
use musubi_authz::{Action, Object};
use musubi_domain::patient_csv::{
    reason as csv_reason, ImportReport, MAX_IMPORT_BYTES, MAX_IMPORT_ROWS,
};
use musubi_domain::patients::reason as form_reason;
use musubi_domain::text::reason as text_reason;
use musubi_domain::{AppError, ErrorCode, Services};

/// The longest base64 text of a file the services accept.
const MAX_CONTENT_CHARS: usize = MAX_IMPORT_BYTES.div_ceil(3) * 4;
/// A whole upload: the carried content plus the few small fields around it.
const MAX_UPLOAD_BYTES: usize = MAX_CONTENT_CHARS + 64 * 1024;
/// A file name shown back, at most (some phones make long ones).
const MAX_NAME_CHARS: usize = 120;

/// The import page and its form, with the upload's own body limit.
pub(crate) fn routes() -> Router<Services> {
    Router::new()
        .route("/a/{slug}/patients/import", get(show).post(submit))
        .layer(DefaultBodyLimit::max(MAX_UPLOAD_BYTES))
}

// --- What the page shows ----------------------------------------------------------------------

/// One refused cell (or the whole row) of a rejected line.
pub(crate) struct IssueView {
    pub column: String,
    pub reason: &'static str,
}

/// A rejected line of the file and everything wrong with it.
pub(crate) struct RejectedView {
    pub line: String,
    pub issues: Vec<IssueView>,
}

/// The services' report in words.
pub(crate) struct ReportView {
    pub dry_run: bool,
    pub accepted: usize,
    pub rejected: Vec<RejectedView>,
}

/// The confirmation form: the checked content, sent again to register it.
pub(crate) struct Carried {
    pub content: String,
    pub name: String,
}

#[derive(Template)]
#[template(path = "sns/patient_import.html")]
pub(crate) struct ImportPage<'a> {
    pub t: Translator,
    pub assets: &'static AssetUrls,
    pub nav: Nav<'a>,
    pub current_path: &'a str,
    pub slug: &'a str,
    pub association: &'a str,
    pub csrf: &'a str,
    /// What is wrong with the whole file (the form is shown again under it).
    pub error: Option<String>,
    /// After a check or a registration.
    pub report: Option<ReportView>,
    /// The file's name, as the browser sent it.
    pub file_name: String,
    /// Present after a check that found rows to register.
    pub carried: Option<Carried>,
    pub max_rows: String,
    pub max_megabytes: String,
}

impl ImportPage<'_> {
    pub(crate) fn accepted_text(&self) -> String {
        self.report
            .as_ref()
            .map(|r| r.accepted.to_string())
            .unwrap_or_default()
    }

    pub(crate) fn rejected_text(&self) -> String {
        self.report
            .as_ref()
            .map(|r| r.rejected.len().to_string())
            .unwrap_or_default()
    }
}

/// The catalog key of every reason a report may give, by its code. Anything else (a reason
/// added to the services later) gets the general words rather than its code.
const REASONS: &[(&str, &str)] = &[
    (csv_reason::BAD_HEADER, "patients.import.reason.bad_header"),
    (
        csv_reason::FIELD_COUNT,
        "patients.import.reason.field_count",
    ),
    (
        csv_reason::UNKNOWN_CHOICE,
        "patients.import.reason.unknown_choice",
    ),
    (csv_reason::DUPLICATE, "patients.import.reason.duplicate"),
    (text_reason::REQUIRED, "patients.import.reason.required"),
    (text_reason::TOO_LONG, "patients.import.reason.too_long"),
    (
        text_reason::FORBIDDEN_CHARACTER,
        "patients.import.reason.forbidden_character",
    ),
    (form_reason::NOT_KANA, "patients.import.reason.not_kana"),
    (
        form_reason::DATE_UNREADABLE,
        "patients.import.reason.date_unreadable",
    ),
    (
        form_reason::NO_SUCH_DAY,
        "patients.import.reason.no_such_day",
    ),
    (
        form_reason::OUTSIDE_ERA,
        "patients.import.reason.outside_era",
    ),
    (form_reason::IN_FUTURE, "patients.import.reason.in_future"),
    (
        form_reason::POSTAL_CODE,
        "patients.import.reason.postal_code",
    ),
    (form_reason::PHONE, "patients.import.reason.phone"),
    (form_reason::END_REASON, "patients.import.reason.end_reason"),
    (
        form_reason::CONSENT_REQUIRED,
        "patients.import.reason.consent_required",
    ),
    (
        form_reason::CONSENT_INCOMPLETE,
        "patients.import.reason.consent_incomplete",
    ),
];

fn reason_message(t: Translator, code: &str) -> &'static str {
    let key = REASONS
        .iter()
        .find(|(c, _)| *c == code)
        .map_or("patients.import.reason.other", |(_, k)| *k);
    t.get(key)
}

fn report_view(t: Translator, report: &ImportReport) -> ReportView {
    ReportView {
        dry_run: report.dry_run,
        accepted: report.accepted,
        rejected: report
            .rejected
            .iter()
            .map(|r| RejectedView {
                line: r.line.to_string(),
                issues: r
                    .issues
                    .iter()
                    .map(|(column, code)| IssueView {
                        column: if column.is_empty() {
                            t.get("patients.import.whole_row").to_owned()
                        } else {
                            column.clone()
                        },
                        reason: reason_message(t, code),
                    })
                    .collect(),
            })
            .collect(),
    }
}

/// What is wrong with a whole file, as a catalog key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum FileProblem {
    NoFile,
    TooLarge,
    NotUtf8,
    Empty,
    BadHeader,
    /// A quote never closed, or too many rows: the services say which only in their message.
    Unreadable,
    /// The carried content did not come back intact.
    Lost,
}

impl FileProblem {
    fn key(self) -> &'static str {
        match self {
            FileProblem::NoFile => "patients.import.error.no_file",
            FileProblem::TooLarge => "patients.import.error.too_large",
            FileProblem::NotUtf8 => "patients.import.error.not_utf8",
            FileProblem::Empty => "patients.import.error.empty",
            FileProblem::BadHeader => "patients.import.error.bad_header",
            FileProblem::Unreadable => "patients.import.error.unreadable",
            FileProblem::Lost => "patients.import.error.lost",
        }
    }

    fn message(self, t: Translator) -> String {
        match self {
            FileProblem::TooLarge => t.format(self.key(), &megabytes()),
            FileProblem::Unreadable => t.format(self.key(), &rows()),
            _ => t.get(self.key()).to_owned(),
        }
    }

    /// The problems the bytes themselves show, so that each gets its own words (the services
    /// tell them apart only by their message, which pages never read).
    fn of(file: &[u8]) -> Option<Self> {
        if file.len() > MAX_IMPORT_BYTES {
            return Some(FileProblem::TooLarge);
        }
        let Ok(text) = std::str::from_utf8(file) else {
            return Some(FileProblem::NotUtf8);
        };
        let text = text.strip_prefix('\u{feff}').unwrap_or(text);
        text.trim().is_empty().then_some(FileProblem::Empty)
    }

    /// The services' refusal of a whole file.
    fn of_refusal(e: &AppError) -> Option<Self> {
        if e.code != ErrorCode::InvalidInput || e.field != Some("file") {
            return None;
        }
        Some(if e.reasons.contains(&csv_reason::BAD_HEADER) {
            FileProblem::BadHeader
        } else {
            FileProblem::Unreadable
        })
    }
}

fn megabytes() -> String {
    (MAX_IMPORT_BYTES / (1024 * 1024)).to_string()
}

/// 5,000
fn rows() -> String {
    let digits = MAX_IMPORT_ROWS.to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// What differs between the page's three states.
#[derive(Default)]
struct Shown {
    error: Option<FileProblem>,
    report: Option<ImportReport>,
    file_name: String,
    /// The checked file, to carry to the confirmation.
    checked: Option<Vec<u8>>,
}

async fn render(
    services: &Services,
    ctx: &Ctx,
    p: &Place,
    status: StatusCode,
    shown: Shown,
) -> Response {
    let t = Translator::new(ctx.lang);
    let total = super::unread_total(services, &p.viewer).await;
    let path = format!("/a/{}/patients/import", p.slug());
    let carried = match (&shown.report, shown.checked) {
        (Some(r), Some(file)) if r.dry_run && r.accepted > 0 => Some(Carried {
            content: BASE64.encode(&file),
            name: shown.file_name.clone(),
        }),
        _ => None,
    };
    let page = ImportPage {
        t,
        assets: assets::urls(),
        nav: nav(&p.viewer, ctx, total, Section::Patients),
        current_path: &path,
        slug: p.slug(),
        association: &p.tenant.name,
        csrf: ctx.csrf.form_token(),
        error: shown.error.map(|e| e.message(t)),
        report: shown.report.as_ref().map(|r| report_view(t, r)),
        file_name: shown.file_name,
        carried,
        max_rows: rows(),
        max_megabytes: megabytes(),
    };
    ctx.respond(status, &page)
}

/// The place, for someone who may register patients there; anyone else gets the 404 page
/// (and the attempt is audited, as the services do for every refusal).
async fn open(services: &Services, ctx: &Ctx, slug: &str) -> Result<Place, Response> {
    let p = Place::open(services, ctx, slug).await?;
    services
        .authorize_in(&p.actor(), Object::Patients, Action::Create)
        .await
        .map_err(|e| page_error(ctx, "opening the patient import", e))?;
    Ok(p)
}

pub(crate) async fn show(
    State(services): State<Services>,
    ctx: Ctx,
    Path(slug): Path<String>,
) -> Result<Response, Response> {
    let p = open(&services, &ctx, &slug).await?;
    Ok(render(&services, &ctx, &p, StatusCode::OK, Shown::default()).await)
}

// --- The form ---------------------------------------------------------------------------------

/// The two steps of the form.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
enum Step {
    /// A file chosen: check it (a dry run).
    #[default]
    Check,
    /// The checked content sent back: register it.
    Confirm,
}

/// What the form sent after its token.
#[derive(Default)]
struct Upload {
    step: Step,
    file: Option<Vec<u8>>,
    too_large: bool,
    name: String,
    /// The checked file, base64.
    content: Option<String>,
}

/// A field's text, or `None` when it cannot be read.
async fn text(field: Field<'_>) -> Option<String> {
    field.text().await.ok()
}

/// The rest of the form. A file over the services' limit is noted, not kept; a body the
/// route's limit stopped is too large; any other body that cannot be read is unreadable.
async fn read_upload(form: &mut Multipart) -> Result<Upload, FileProblem> {
    let mut upload = Upload::default();
    loop {
        let mut field = match form.next_field().await {
            Ok(Some(f)) => f,
            Ok(None) => return Ok(upload),
            Err(e) if e.status() == StatusCode::PAYLOAD_TOO_LARGE => {
                return Err(FileProblem::TooLarge)
            }
            Err(_) => return Err(FileProblem::Unreadable),
        };
        match field.name().unwrap_or_default() {
            "step" => {
                upload.step = match text(field).await.as_deref() {
                    Some("confirm") => Step::Confirm,
                    _ => Step::Check,
                };
            }
            "name" => upload.name = text(field).await.unwrap_or_default(),
            "content" => upload.content = text(field).await,
            "file" => {
                if upload.name.is_empty() {
                    upload.name = field.file_name().unwrap_or_default().to_owned();
                }
                let mut bytes = Vec::new();
                loop {
                    match field.chunk().await {
                        Ok(Some(chunk)) => {
                            if bytes.len() + chunk.len() > MAX_IMPORT_BYTES {
                                upload.too_large = true;
                                return Ok(upload);
                            }
                            bytes.extend_from_slice(&chunk);
                        }
                        Ok(None) => break,
                        Err(e) if e.status() == StatusCode::PAYLOAD_TOO_LARGE => {
                            upload.too_large = true;
                            return Ok(upload);
                        }
                        Err(_) => return Err(FileProblem::Unreadable),
                    }
                }
                upload.file = Some(bytes);
            }
            _ => {}
        }
    }
}

impl Upload {
    /// The file's bytes for this step, or what is wrong with them.
    fn bytes(&mut self) -> Result<Vec<u8>, FileProblem> {
        if self.too_large {
            return Err(FileProblem::TooLarge);
        }
        let bytes = match self.step {
            Step::Check => match self.file.take() {
                // A form sent without choosing a file has an empty, nameless file part.
                Some(b) if !(b.is_empty() && self.name.is_empty()) => b,
                _ => return Err(FileProblem::NoFile),
            },
            Step::Confirm => {
                let content = self.content.take().unwrap_or_default();
                if content.len() > MAX_CONTENT_CHARS {
                    return Err(FileProblem::TooLarge);
                }
                BASE64
                    .decode(content.as_bytes())
                    .map_err(|_| FileProblem::Lost)?
            }
        };
        FileProblem::of(&bytes).map_or(Ok(bytes), Err)
    }

    /// The name to show: the last path segment some browsers send, cut to a sensible length.
    fn shown_name(&self) -> String {
        let name = self.name.rsplit(['/', '\\']).next().unwrap_or_default();
        name.chars()
            .filter(|c| !c.is_control())
            .take(MAX_NAME_CHARS)
            .collect()
    }
}

pub(crate) async fn submit(
    State(services): State<Services>,
    ctx: Ctx,
    Path(slug): Path<String>,
    uri: Uri,
    headers: HeaderMap,
    form: Result<Multipart, MultipartRejection>,
) -> Result<Response, Response> {
    // As the guard does for every other form: the token before anything else.
    let checked = check_token(&ctx, &headers, &uri, form).await?;
    let p = open(&services, &ctx, &slug).await?;
    let problem_shown = |problem: FileProblem, file_name: String| Shown {
        error: Some(problem),
        file_name,
        ..Shown::default()
    };
    let mut form = match checked {
        Checked::Form(form) => form,
        Checked::TooLarge => {
            let shown = problem_shown(FileProblem::TooLarge, String::new());
            return Ok(render(&services, &ctx, &p, StatusCode::UNPROCESSABLE_ENTITY, shown).await);
        }
    };
    let mut upload = match read_upload(&mut form).await {
        Ok(u) => u,
        Err(problem) => {
            let shown = problem_shown(problem, String::new());
            return Ok(render(&services, &ctx, &p, StatusCode::UNPROCESSABLE_ENTITY, shown).await);
        }
    };
    let file_name = upload.shown_name();
    let file = match upload.bytes() {
        Ok(f) => f,
        Err(problem) => {
            let shown = problem_shown(problem, file_name);
            return Ok(render(&services, &ctx, &p, StatusCode::UNPROCESSABLE_ENTITY, shown).await);
        }
    };
    // The first step never writes: the page shows what would happen and asks.
    let dry_run = upload.step == Step::Check;
    match services
        .import_patients_csv(&p.actor(), &file, dry_run)
        .await
    {
        Ok(report) => {
            let shown = Shown {
                report: Some(report),
                file_name,
                checked: dry_run.then_some(file),
                ..Shown::default()
            };
            Ok(render(&services, &ctx, &p, StatusCode::OK, shown).await)
        }
        Err(e) => match FileProblem::of_refusal(&e) {
            Some(problem) => {
                let shown = problem_shown(problem, file_name);
                Ok(render(&services, &ctx, &p, StatusCode::UNPROCESSABLE_ENTITY, shown).await)
            }
            None => Err(page_error(&ctx, "importing patients", e)),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::i18n::Lang;
    use musubi_domain::patient_csv::Rejected;

    #[test]
    fn every_reason_and_file_problem_has_words_in_both_languages() {
        for lang in [Lang::Ja, Lang::En] {
            let t = Translator::new(lang);
            for (code, key) in REASONS {
                assert_ne!(t.get(key), *key, "{code} in {lang:?}");
            }
            for key in ["patients.import.reason.other", "patients.import.whole_row"] {
                assert_ne!(t.get(key), key);
            }
            for p in [
                FileProblem::NoFile,
                FileProblem::TooLarge,
                FileProblem::NotUtf8,
                FileProblem::Empty,
                FileProblem::BadHeader,
                FileProblem::Unreadable,
                FileProblem::Lost,
            ] {
                assert_ne!(t.get(p.key()), p.key());
            }
        }
        let ja = Translator::new(Lang::Ja);
        assert_eq!(
            reason_message(ja, "SOMETHING_NEW"),
            ja.get("patients.import.reason.other")
        );
    }

    #[test]
    fn the_bytes_tell_an_empty_a_foreign_and_a_too_large_file() {
        assert_eq!(FileProblem::of(b""), Some(FileProblem::Empty));
        assert_eq!(
            FileProblem::of("\u{feff}\r\n".as_bytes()),
            Some(FileProblem::Empty)
        );
        // 氏名 in Shift_JIS, as Excel saves "CSV (comma delimited)".
        assert_eq!(
            FileProblem::of(&[0x8e, 0x81, 0x96, 0xbc]),
            Some(FileProblem::NotUtf8)
        );
        assert_eq!(
            FileProblem::of(&vec![b'a'; MAX_IMPORT_BYTES + 1]),
            Some(FileProblem::TooLarge)
        );
        assert_eq!(FileProblem::of("氏名,ふりがな".as_bytes()), None);
        let header = AppError {
            reasons: vec![csv_reason::BAD_HEADER],
            ..AppError::invalid("file", "x")
        };
        assert_eq!(
            FileProblem::of_refusal(&header),
            Some(FileProblem::BadHeader)
        );
        assert_eq!(
            FileProblem::of_refusal(&AppError::invalid("file", "too many rows")),
            Some(FileProblem::Unreadable)
        );
        assert_eq!(FileProblem::of_refusal(&AppError::not_found()), None);
        assert_eq!(rows(), "5,000");
    }

    #[test]
    fn the_confirmation_carries_the_content_back_intact_or_not_at_all() {
        let file = "氏名\r\n港 花子\r\n".as_bytes();
        let mut upload = Upload {
            step: Step::Confirm,
            content: Some(BASE64.encode(file)),
            ..Upload::default()
        };
        assert_eq!(upload.bytes().as_deref(), Ok(file));
        let mut broken = Upload {
            step: Step::Confirm,
            content: Some("not base64!".into()),
            ..Upload::default()
        };
        assert_eq!(broken.bytes(), Err(FileProblem::Lost));
        let mut huge = Upload {
            step: Step::Confirm,
            content: Some("A".repeat(MAX_CONTENT_CHARS + 4)),
            ..Upload::default()
        };
        assert_eq!(huge.bytes(), Err(FileProblem::TooLarge));
        let mut none = Upload {
            file: Some(Vec::new()),
            ..Upload::default()
        };
        assert_eq!(none.bytes(), Err(FileProblem::NoFile));
        let named = Upload {
            name: "C:\\Users\\me\\台帳.csv".into(),
            ..Upload::default()
        };
        assert_eq!(named.shown_name(), "台帳.csv");
    }

    fn page(report: Option<ImportReport>, carried: bool, error: Option<FileProblem>) -> String {
        let t = Translator::new(Lang::Ja);
        ImportPage {
            t,
            assets: assets::urls(),
            nav: Nav::hidden(),
            current_path: "/a/minatogawa/patients/import",
            slug: "minatogawa",
            association: "みなと川医師会",
            csrf: "TOKEN",
            error: error.map(|e| e.message(t)),
            report: report.as_ref().map(|r| report_view(t, r)),
            file_name: "台帳.csv".into(),
            carried: carried.then(|| Carried {
                content: "QUJD".into(),
                name: "台帳.csv".into(),
            }),
            max_rows: rows(),
            max_megabytes: megabytes(),
        }
        .render()
        .expect("renders")
    }

    fn report(dry_run: bool) -> ImportReport {
        ImportReport {
            dry_run,
            accepted: 2,
            rejected: vec![
                Rejected {
                    line: 3,
                    issues: vec![
                        ("ふりがな".into(), form_reason::NOT_KANA),
                        ("生年月日".into(), form_reason::OUTSIDE_ERA),
                    ],
                },
                Rejected {
                    line: 5,
                    issues: vec![(String::new(), csv_reason::FIELD_COUNT)],
                },
            ],
        }
    }

    #[test]
    fn a_check_lists_each_rejected_row_and_offers_to_register_the_rest() {
        let body = page(Some(report(true)), true, None);
        crate::pages::render_tests::assert_csp_clean(&body);
        assert!(body.contains("2 件を登録できます"), "{body}");
        assert!(body.contains("まだ登録していません"));
        // Phones: a card per line; wide screens: 行・列・理由.
        assert!(body.contains("<th scope=\"col\">行</th>"));
        assert!(body.contains("<th scope=\"col\">列</th>"));
        assert!(body.contains("<th scope=\"col\">理由</th>"));
        assert!(body.contains("3 行目"));
        assert!(body.contains("ふりがなは、ひらがなかカタカナで"));
        assert!(body.contains("（行全体）"));
        // The confirmation posts the same content back, multipart, token first.
        let confirm = between(&body, "id=\"import-confirm\"", "</form>");
        assert!(confirm.contains("enctype=\"multipart/form-data\""));
        let token = confirm.find("name=\"csrf\"").expect("token");
        let content = confirm
            .find("name=\"content\" value=\"QUJD\"")
            .expect("content");
        assert!(token < content);
        assert!(confirm.contains("name=\"step\" value=\"confirm\""));
        assert!(confirm.contains("2 件を登録する"));
    }

    #[test]
    fn the_result_says_what_was_registered_and_offers_no_second_registration() {
        let body = page(Some(report(false)), false, None);
        assert!(body.contains("2 件の患者さんを登録しました"), "{body}");
        assert!(body.contains("次の 2 行は登録しませんでした"));
        assert!(!body.contains("id=\"import-confirm\""));
        assert!(!body.contains("type=\"file\""));
    }

    #[test]
    fn a_refused_file_is_said_in_words_above_the_form_again() {
        let body = page(None, false, Some(FileProblem::BadHeader));
        let alert = between(&body, "role=\"alert\"", "</div>");
        assert!(alert.contains("1行目の見出し"), "{alert}");
        let form = between(&body, "id=\"import-form\"", "</form>");
        let token = form.find("name=\"csrf\"").expect("token");
        let file = form.find("type=\"file\"").expect("file");
        assert!(token < file, "the token is the first field");
        assert!(form.contains("accept=\".csv,text/csv\""));
    }

    fn between<'a>(page: &'a str, from: &str, to: &str) -> &'a str {
        let start = page.find(from).unwrap_or_else(|| panic!("no {from}"));
        let end = page[start..].find(to).unwrap_or_else(|| panic!("no {to}")) + start;
        &page[start..end]
    }
}
