//! The patient register as CSV: an export that Excel opens correctly (UTF-8 with a byte order
//! mark, Japanese headers and values, CRLF), and an import that checks every row with the
//! registration form's rules, reports each rejected row and why, and writes nothing on a dry
//! run. Exported files import back as the same register (the physician excepted: a person,
//! not a text; see docs/patients.md).

use crate::audit::{push_row, AuditAction, CSV_BOM};
use crate::error::FieldIssue;
use crate::patients::{check_form, today, PatientForm};
use crate::{Actor, AppError, AppResult, Services};
use musubi_authz::{Action, Object};
use musubi_db::groups as repo;
use musubi_db::types::{CareLevel, EndReason, PatientStatus, Sex};
use unicode_normalization::UnicodeNormalization;

/// Rows one import may hold.
pub const MAX_IMPORT_ROWS: usize = 5_000;
/// The largest file accepted, in bytes.
pub const MAX_IMPORT_BYTES: usize = 5 * 1024 * 1024;

/// The columns, in order, with the header each has in the file.
pub const COLUMNS: [&str; 23] = [
    "氏名",
    "ふりがな",
    "生年月日",
    "性別",
    "郵便番号",
    "住所",
    "町名",
    "電話",
    "主治医",
    "主な病名",
    "要介護度",
    "キーパーソン",
    "家族の連絡先",
    "ケアマネジャー",
    "訪問看護ステーション",
    "薬局",
    "療養の状況",
    "状況の日付",
    "終了の理由",
    "備考",
    "同意日",
    "同意を得た人",
    "同意の範囲",
];

pub fn sex_label(s: Sex) -> &'static str {
    match s {
        Sex::Male => "男性",
        Sex::Female => "女性",
        Sex::Other => "その他",
    }
}

pub fn care_label(c: CareLevel) -> &'static str {
    match c {
        CareLevel::None => "なし",
        CareLevel::Applying => "申請中",
        CareLevel::Support1 => "要支援1",
        CareLevel::Support2 => "要支援2",
        CareLevel::Care1 => "要介護1",
        CareLevel::Care2 => "要介護2",
        CareLevel::Care3 => "要介護3",
        CareLevel::Care4 => "要介護4",
        CareLevel::Care5 => "要介護5",
    }
}

pub fn status_label(s: PatientStatus) -> &'static str {
    match s {
        PatientStatus::Home => "在宅",
        PatientStatus::Hospital => "入院中",
        PatientStatus::Facility => "施設入所",
        PatientStatus::Ended => "終了",
    }
}

pub fn end_label(e: EndReason) -> &'static str {
    match e {
        EndReason::Death => "死亡",
        EndReason::Moved => "転居",
        EndReason::Other => "その他",
    }
}

/// A label or a code of a closed set, as typed in a spreadsheet (width does not matter).
fn parse_labelled<T: Copy>(
    raw: &str,
    all: &[T],
    label: fn(T) -> &'static str,
    code: fn(T) -> &'static str,
) -> Option<T> {
    let v: String = raw.nfkc().filter(|c| !c.is_whitespace()).collect();
    all.iter()
        .copied()
        .find(|x| label(*x) == v || code(*x).eq_ignore_ascii_case(&v))
}

/// The whole register the viewer may see, as a CSV file.
pub fn to_csv(rows: &[repo::PatientRow]) -> Vec<u8> {
    let mut out = String::new();
    push_row(&mut out, COLUMNS);
    for r in rows {
        let birth = r.birth_date.to_string();
        let since = r.status_since.map(|d| d.to_string()).unwrap_or_default();
        let consent = r.consent_date.map(|d| d.to_string()).unwrap_or_default();
        let physician = r.physician_name.clone().unwrap_or_default();
        push_row(
            &mut out,
            [
                r.name.as_str(),
                r.name_kana.as_str(),
                birth.as_str(),
                sex_label(r.sex),
                r.postal_code.as_str(),
                r.address.as_str(),
                r.town.as_str(),
                r.phone.as_str(),
                physician.as_str(),
                r.diagnoses.as_str(),
                care_label(r.care_level),
                r.key_person.as_str(),
                r.family_contact.as_str(),
                r.care_manager.as_str(),
                r.nurse_station.as_str(),
                r.pharmacy.as_str(),
                status_label(r.status),
                since.as_str(),
                r.end_reason.map(end_label).unwrap_or_default(),
                r.notes.as_str(),
                consent.as_str(),
                r.consent_by.as_str(),
                r.consent_scope.as_str(),
            ],
        );
    }
    let mut bytes = CSV_BOM.to_vec();
    bytes.extend_from_slice(out.as_bytes());
    bytes
}

/// Splits RFC 4180 text into rows of fields (quoted fields may hold commas, quotes and line
/// breaks). `None` if a quote is never closed.
pub fn parse_csv(text: &str) -> Option<Vec<Vec<String>>> {
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let mut rows = Vec::new();
    let mut row = Vec::new();
    let mut field = String::new();
    let mut quoted = false;
    let mut chars = text.chars().peekable();
    let mut any = false;
    while let Some(c) = chars.next() {
        any = true;
        if quoted {
            match c {
                '"' if chars.peek() == Some(&'"') => {
                    chars.next();
                    field.push('"');
                }
                '"' => quoted = false,
                c => field.push(c),
            }
            continue;
        }
        match c {
            '"' if field.is_empty() => quoted = true,
            ',' => row.push(std::mem::take(&mut field)),
            '\r' if chars.peek() == Some(&'\n') => {}
            '\n' | '\r' => {
                row.push(std::mem::take(&mut field));
                rows.push(std::mem::take(&mut row));
                any = false;
            }
            c => field.push(c),
        }
    }
    if quoted {
        return None;
    }
    if any {
        row.push(field);
        rows.push(row);
    }
    // Lines left empty by a spreadsheet are not rows.
    rows.retain(|r| r.iter().any(|f| !f.trim().is_empty()));
    Some(rows)
}

/// What a spreadsheet formula guard (a leading `'` before `=`, `+`, `-` or `@`) hid.
fn unguard(v: &str) -> &str {
    match v.strip_prefix('\'') {
        Some(rest) if rest.starts_with(['=', '+', '-', '@']) => rest,
        _ => v,
    }
}

/// One rejected row: its line in the file (the header is line 1), the column and the reason.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rejected {
    pub line: usize,
    pub issues: Vec<(String, &'static str)>,
}

/// What an import did (or, on a dry run, would do).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ImportReport {
    pub dry_run: bool,
    /// Rows that are (or would be) registered.
    pub accepted: usize,
    pub rejected: Vec<Rejected>,
}

/// Reasons of the import itself, besides the form's.
pub mod reason {
    /// The header row is not the export's (a column missing, renamed or moved).
    pub const BAD_HEADER: &str = "BAD_HEADER";
    /// A row with another number of fields than the header.
    pub const FIELD_COUNT: &str = "FIELD_COUNT";
    /// A value outside the column's choices (性別, 要介護度, 療養の状況, 終了の理由).
    pub const UNKNOWN_CHOICE: &str = "UNKNOWN_CHOICE";
    /// The register already has a patient with this name and birth date.
    pub const DUPLICATE: &str = "DUPLICATE";
}

/// The column header of a form field, for the report.
fn column_of(field: &str) -> &'static str {
    match field {
        "name" => "氏名",
        "nameKana" => "ふりがな",
        "birthDate" => "生年月日",
        "sex" => "性別",
        "postalCode" => "郵便番号",
        "address" => "住所",
        "town" => "町名",
        "phone" => "電話",
        "diagnoses" => "主な病名",
        "keyPerson" => "キーパーソン",
        "familyContact" => "家族の連絡先",
        "careManager" => "ケアマネジャー",
        "nurseStation" => "訪問看護ステーション",
        "pharmacy" => "薬局",
        "statusSince" => "状況の日付",
        "endReason" => "終了の理由",
        "notes" => "備考",
        "consentDate" => "同意日",
        "consentBy" => "同意を得た人",
        "consentScope" => "同意の範囲",
        _ => "",
    }
}

/// A row as a form, or what is wrong with its choices.
fn row_form(f: &[String]) -> Result<PatientForm, Vec<(String, &'static str)>> {
    let v = |i: usize| unguard(f.get(i).map_or("", String::as_str)).to_owned();
    let mut issues = Vec::new();
    let mut choice = |i: usize, ok: bool| {
        if !ok && !f.get(i).is_none_or(|s| s.trim().is_empty()) {
            issues.push((COLUMNS[i].to_owned(), reason::UNKNOWN_CHOICE));
        }
    };
    let sex = parse_labelled(&v(3), Sex::ALL, sex_label, Sex::code);
    choice(3, sex.is_some());
    let care = parse_labelled(&v(10), CareLevel::ALL, care_label, CareLevel::code);
    choice(10, care.is_some());
    let status = parse_labelled(
        &v(16),
        PatientStatus::ALL,
        status_label,
        PatientStatus::code,
    );
    choice(16, status.is_some());
    let end = parse_labelled(&v(18), EndReason::ALL, end_label, EndReason::code);
    choice(18, end.is_some());
    if !issues.is_empty() {
        return Err(issues);
    }
    Ok(PatientForm {
        name: v(0),
        name_kana: v(1),
        birth_date: v(2),
        sex,
        postal_code: v(4),
        address: v(5),
        town: v(6),
        phone: v(7),
        physician_id: None,
        diagnoses: v(9),
        care_level: care,
        key_person: v(11),
        family_contact: v(12),
        care_manager: v(13),
        nurse_station: v(14),
        pharmacy: v(15),
        status,
        status_since: v(17),
        end_reason: end,
        notes: v(19),
        consent_date: v(20),
        consent_by: v(21),
        consent_scope: v(22),
    })
}

impl Services {
    /// The register entries the viewer may see, as a CSV file for Excel (recorded in the audit
    /// log with how many entries it held).
    pub async fn export_patients_csv(&self, actor: &Actor<'_>) -> AppResult<Vec<u8>> {
        let whole = self.sees_whole_register(actor);
        let mut c = self.change(actor).await?;
        let rows = repo::patients_for_export(c.conn(), actor.viewer.user.id, whole).await?;
        let entry = c
            .entry(AuditAction::PatientExport)
            .with_detail("entries", i64::try_from(rows.len()).unwrap_or(i64::MAX));
        c.audit(entry);
        c.commit().await?;
        Ok(to_csv(&rows))
    }

    /// Checks a CSV file row by row and, unless `dry_run`, registers every accepted row as a
    /// patient with their group (the importer as owner). Rejected rows are listed with their
    /// line, column and reason, and left out; nothing is changed by a dry run.
    pub async fn import_patients_csv(
        &self,
        actor: &Actor<'_>,
        file: &[u8],
        dry_run: bool,
    ) -> AppResult<ImportReport> {
        if file.len() > MAX_IMPORT_BYTES {
            return Err(AppError::invalid("file", "the file is too large"));
        }
        let text = std::str::from_utf8(file).map_err(|_| {
            AppError::invalid("file", "the file is not UTF-8 (save it as CSV UTF-8)")
        })?;
        let rows = parse_csv(text)
            .ok_or_else(|| AppError::invalid("file", "a quoted field is never closed"))?;
        let Some((header, body)) = rows.split_first() else {
            return Err(AppError::invalid("file", "the file is empty"));
        };
        let header: Vec<&str> = header.iter().map(|h| h.trim()).collect();
        if header != COLUMNS {
            return Err(AppError {
                reasons: vec![reason::BAD_HEADER],
                ..AppError::invalid("file", "the header row is not the register's")
            });
        }
        if body.len() > MAX_IMPORT_ROWS {
            return Err(AppError::invalid("file", "too many rows in one file"));
        }
        self.authorize_in(actor, Object::Patients, Action::Create)
            .await?;
        let today = today();
        let mut report = ImportReport {
            dry_run,
            ..ImportReport::default()
        };
        let mut seen = std::collections::HashSet::new();
        let mut accepted = Vec::new();
        for (i, row) in body.iter().enumerate() {
            let line = i + 2;
            if row.len() != COLUMNS.len() {
                report.rejected.push(Rejected {
                    line,
                    issues: vec![(String::new(), reason::FIELD_COUNT)],
                });
                continue;
            }
            let form = match row_form(row) {
                Ok(f) => f,
                Err(issues) => {
                    report.rejected.push(Rejected { line, issues });
                    continue;
                }
            };
            match check_form(&form, today) {
                Ok(fields) => {
                    let key = (fields.name_folded.clone(), fields.birth_date);
                    if !seen.insert(key) {
                        report.rejected.push(Rejected {
                            line,
                            issues: vec![("氏名".to_owned(), reason::DUPLICATE)],
                        });
                        continue;
                    }
                    accepted.push((line, form, fields));
                }
                Err(issues) => report.rejected.push(Rejected {
                    line,
                    issues: issues
                        .iter()
                        .map(|FieldIssue { field, reason }| (column_of(field).to_owned(), *reason))
                        .collect(),
                }),
            }
        }
        // Already in the register (name, reading and birth date): reported, not doubled.
        let existing = {
            let whole = self.sees_whole_register(actor);
            let mut conn = self.change(actor).await?;
            let rows = repo::patients_for_export(conn.conn(), actor.viewer.user.id, whole).await?;
            conn.commit().await?;
            rows.into_iter()
                .map(|r| {
                    (
                        format!(
                            "{}\n{}",
                            musubi_db::types::japanese::fold(&r.name),
                            musubi_db::types::japanese::fold(&r.name_kana)
                        ),
                        r.birth_date,
                    )
                })
                .collect::<std::collections::HashSet<_>>()
        };
        let mut to_write = Vec::new();
        for (line, form, fields) in accepted {
            if existing.contains(&(fields.name_folded.clone(), fields.birth_date)) {
                report.rejected.push(Rejected {
                    line,
                    issues: vec![("氏名".to_owned(), reason::DUPLICATE)],
                });
            } else {
                to_write.push(form);
            }
        }
        report.rejected.sort_by_key(|r| r.line);
        report.accepted = to_write.len();
        if !dry_run {
            for form in &to_write {
                self.register_patient(actor, form, &[]).await?;
            }
        }
        let mut c = self.change(actor).await?;
        let entry = c
            .entry(AuditAction::PatientImport)
            .with_detail("dry_run", dry_run)
            .with_detail(
                "accepted",
                i64::try_from(report.accepted).unwrap_or(i64::MAX),
            )
            .with_detail(
                "rejected",
                i64::try_from(report.rejected.len()).unwrap_or(i64::MAX),
            );
        c.audit(entry);
        c.commit().await?;
        Ok(report)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quoted_fields_keep_commas_quotes_and_line_breaks() {
        let text = "\u{feff}a,b,c\r\n\"x, y\",\"say \"\"hi\"\"\",\"two\nlines\"\r\n\r\nlast,,\n";
        let rows = parse_csv(text).expect("parses");
        assert_eq!(
            rows,
            vec![
                vec!["a", "b", "c"],
                vec!["x, y", "say \"hi\"", "two\nlines"],
                vec!["last", "", ""],
            ]
        );
        assert_eq!(parse_csv("a,\"open"), None);
    }

    #[test]
    fn choices_read_labels_codes_and_full_width() {
        assert_eq!(
            parse_labelled("要介護３", CareLevel::ALL, care_label, CareLevel::code),
            Some(CareLevel::Care3)
        );
        assert_eq!(
            parse_labelled("care3", CareLevel::ALL, care_label, CareLevel::code),
            Some(CareLevel::Care3)
        );
        assert_eq!(
            parse_labelled(" 女性 ", Sex::ALL, sex_label, Sex::code),
            Some(Sex::Female)
        );
        assert_eq!(parse_labelled("女", Sex::ALL, sex_label, Sex::code), None);
    }

    #[test]
    fn a_formula_guard_is_removed_and_other_quotes_kept() {
        assert_eq!(unguard("'=1+1"), "=1+1");
        assert_eq!(unguard("'-3"), "-3");
        assert_eq!(unguard("'quoted'"), "'quoted'");
    }
}
