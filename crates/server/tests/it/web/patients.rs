//! The patient register's pages (`/patients`, `/a/{slug}/patients/…`), driven like a browser on
//! the demo data: the registration form with its messages next to the fields, the entry by era,
//! the list's search in any kana, corrections and their conflicts, and who gets the 404 page.

use chrono::NaiveDate;
use http::StatusCode;
use musubi_domain::patients::today;
use musubi_domain::wareki::age_on;
use musubi_test_support::demo::{
    ADMIN, CARE_MANAGER, HOSPITAL_DOCTOR, HOST, NURSE, OTHER, OTHER_ADMIN, OTHER_NURSE, THERAPIST,
};
use musubi_test_support::web::{between, Browser, Page};
use musubi_test_support::TestApp;
use uuid::Uuid;

const NAME: &str = "港 花子";
/// Katakana, as many offices write readings.
const KANA: &str = "ミナト ハナコ";

fn new_path() -> String {
    format!("/a/{HOST}/patients/new")
}

fn entry_path(id: Uuid) -> String {
    format!("/a/{HOST}/patients/{id}")
}

/// A query-string value, percent-encoded.
fn q(s: &str) -> String {
    s.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

/// The form's fields for 港 花子, born on `birth`.
fn fields(birth: &str) -> Vec<(&'static str, String)> {
    vec![
        ("name", NAME.into()),
        ("name_kana", KANA.into()),
        ("birth_date", birth.into()),
        ("sex", "female".into()),
        ("postal_code", "１２３ー４５６７".into()),
        ("address", "みなと川市港町1-2-3".into()),
        ("town", "港町".into()),
        ("phone", "03-1234-5678".into()),
        ("physician", String::new()),
        ("diagnoses", "慢性心不全\n糖尿病".into()),
        ("care_level", "care2".into()),
        ("key_person", "長女 港 さくらさん".into()),
        ("status", "hospital".into()),
        ("status_since", "R6.4.1".into()),
        ("end_reason", String::new()),
        ("notes", String::new()),
    ]
}

async fn post_form(b: &mut Browser, app: &TestApp, fields: &[(&str, String)]) -> Page {
    let borrowed: Vec<(&str, &str)> = fields.iter().map(|(k, v)| (*k, v.as_str())).collect();
    b.submit(app, &new_path(), &new_path(), &borrowed).await
}

/// Registers 港 花子 through the form as `b`; her entry's id.
async fn register(app: &TestApp, b: &mut Browser) -> Uuid {
    let res = post_form(b, app, &fields("昭和20年4月1日")).await;
    assert_eq!(res.status, StatusCode::SEE_OTHER, "{}", res.body);
    let id = res
        .location()
        .strip_prefix(&format!("/a/{HOST}/patients/"))
        .and_then(|rest| rest.strip_suffix("?done=patient_registered"))
        .unwrap_or_else(|| panic!("not a new entry: {}", res.location()));
    Uuid::parse_str(id).unwrap()
}

async fn group_of(app: &TestApp, patient: Uuid) -> Uuid {
    sqlx::query_scalar("SELECT group_id FROM patients WHERE id = $1")
        .bind(patient)
        .fetch_one(&mut *app.tenant_tx(HOST).await)
        .await
        .unwrap()
}

async fn entries(app: &TestApp) -> i64 {
    sqlx::query_scalar("SELECT count(*) FROM patients")
        .fetch_one(&mut *app.tenant_tx(HOST).await)
        .await
        .unwrap()
}

/// The list as `b` sees it with `query` (already encoded).
async fn list(app: &TestApp, b: &mut Browser, query: &str) -> Page {
    let page = b.get(app, &format!("/a/{HOST}/patients?{query}")).await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.body);
    page
}

#[tokio::test]
async fn a_nurse_registers_a_patient_after_fixing_an_era_date_and_lands_on_the_entry() {
    let app = TestApp::demo().await;
    let mut nurse = Browser::signed_in(&app, NURSE).await;

    // The form, reached from the list.
    let listed = list(&app, &mut nurse, "").await;
    assert!(listed
        .body
        .contains(&format!("href=\"{}\">患者を登録</a>", new_path())));
    let before = entries(&app).await;
    let form = nurse.get(&app, &new_path()).await;
    assert_eq!(form.status, StatusCode::OK);
    assert!(form
        .body
        .contains("昭和20年4月1日、S20.4.1、1945-04-01 のどれでも"));

    // 平成31年5月1日 never was (it was 令和元年): refused, said next to 生年月日, nothing saved
    // and everything typed still there.
    let res = post_form(&mut nurse, &app, &fields("平成31年5月1日")).await;
    assert_eq!(res.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", res.body);
    let birth = between(&res.body, "for=\"patient-birth-date\"", "</div>");
    assert!(
        birth.contains("その元号にはない日付です。"),
        "the message is next to 生年月日: {birth}"
    );
    assert!(birth.contains("value=\"平成31年5月1日\""));
    assert!(birth.contains("aria-invalid=\"true\""));
    assert!(res.body.contains(&format!("value=\"{NAME}\"")));
    assert!(res.body.contains(&format!("value=\"{KANA}\"")));
    assert!(res.body.contains(">慢性心不全\n糖尿病</textarea>"));
    assert!(res
        .body
        .contains("<option value=\"care2\" selected>要介護2</option>"));
    assert!(res
        .body
        .contains("href=\"#patient-birth-date\">生年月日</a>"));
    assert_eq!(entries(&app).await, before);

    // Corrected: the entry, with the dates by era and Western, and her age.
    let id = register(&app, &mut nurse).await;
    let entry = nurse
        .get(&app, &format!("{}?done=patient_registered", entry_path(id)))
        .await;
    assert_eq!(entry.status, StatusCode::OK, "{}", entry.body);
    assert!(entry.body.contains("登録しました。"));
    let age = age_on(NaiveDate::from_ymd_opt(1945, 4, 1).unwrap(), today());
    assert!(
        entry
            .body
            .contains(&format!("昭和20年4月1日（1945年4月1日）・{age}歳")),
        "{}",
        entry.body
    );
    assert!(entry
        .body
        .contains("入院中・令和6年4月1日（2024年4月1日）から"));
    assert!(
        entry.body.contains("123-4567"),
        "the postal code, in half width"
    );
    assert!(entry.body.contains(KANA));
    // Her group, a tap away, and the form to correct the entry.
    let group = group_of(&app, id).await;
    let group_page = format!("/a/{HOST}/g/{group}");
    assert!(entry.body.contains(&format!("href=\"{group_page}\"")));
    assert!(entry
        .body
        .contains(&format!("href=\"{}/edit\"", entry_path(id))));

    // The group page starts with her at a glance and a way back to the entry.
    let shown = nurse.get(&app, &group_page).await;
    assert_eq!(shown.status, StatusCode::OK);
    let header = between(&shown.body, "class=\"patient-header\"", "</aside>");
    assert!(header.contains(&format!("{age}歳")), "{header}");
    assert!(header.contains("女性"));
    assert!(header.contains("要介護2"));
    assert!(header.contains("入院中"));
    assert!(header.contains(&format!("href=\"{}\"", entry_path(id))));
}

#[tokio::test]
async fn the_list_finds_a_katakana_reading_by_hiragana_and_by_half_width_katakana() {
    let app = TestApp::demo().await;
    let mut nurse = Browser::signed_in(&app, NURSE).await;
    // 「患者」 in the header leads to the register of her association.
    let res = nurse.get(&app, "/patients").await;
    assert_eq!(res.status, StatusCode::SEE_OTHER);
    assert_eq!(res.location(), format!("/a/{HOST}/patients"));

    let id = register(&app, &mut nurse).await;
    let href = format!("href=\"{}\"", entry_path(id));
    for typed in ["みなと", "ﾐﾅﾄ ﾊﾅｺ", "はなこ", "港"] {
        let found = list(&app, &mut nurse, &format!("q={}", q(typed))).await;
        let cards = between(&found.body, "<ul class=\"patient-cards\"", "</ul>");
        assert!(cards.contains(NAME), "{typed}: {cards}");
        assert!(cards.contains(&href), "{typed}");
    }
    let none = list(&app, &mut nurse, &format!("q={}", q("わたなべ"))).await;
    assert!(!none.body.contains(NAME));
    assert!(none.body.contains("条件にあう患者さんはいません。"));

    // Filters and orders keep her where she belongs: in hospital, care level 2, 78 to 82.
    let age = age_on(NaiveDate::from_ymd_opt(1945, 4, 1).unwrap(), today());
    let around = format!("age_from={}&age_to={}", age - 1, age + 1);
    for query in [
        "status=hospital".to_owned(),
        "care_level=care2".to_owned(),
        around,
        "town=%E6%B8%AF".to_owned(),
        "order=age".to_owned(),
        "order=activity".to_owned(),
    ] {
        assert!(
            list(&app, &mut nurse, &query).await.body.contains(NAME),
            "{query}"
        );
    }
    for query in ["status=home", "care_level=care5", "unread=1", "age_from=90"] {
        assert!(
            !list(&app, &mut nurse, query).await.body.contains(NAME),
            "{query}"
        );
    }
    // A nonsense age is said next to the age fields, not an error page.
    let bad = list(&app, &mut nurse, "age_from=abc").await;
    assert!(bad
        .body
        .contains("年齢は 0〜150 の数字で入力してください。"));
}

#[tokio::test]
async fn people_outside_the_patients_group_get_the_not_found_page() {
    let app = TestApp::demo().await;
    let mut nurse = Browser::signed_in(&app, NURSE).await;
    let id = register(&app, &mut nurse).await;
    let paths = [entry_path(id), format!("{}/edit", entry_path(id))];

    // Another association's member and its administrator, at the host's address and at their
    // own; a member of both associations and one of the host's own members who is not in her
    // group.
    for who in [OTHER_NURSE, OTHER_ADMIN, HOSPITAL_DOCTOR, CARE_MANAGER] {
        let mut b = Browser::signed_in(&app, who).await;
        for path in &paths {
            assert!(b.get(&app, path).await.is_not_found(), "{who} {path}");
        }
        let elsewhere = format!("/a/{OTHER}/patients/{id}");
        assert!(b.get(&app, &elsewhere).await.is_not_found(), "{who}");
        // And a correction sent anyway changes nothing.
        let token = b.get(&app, "/home").await.csrf();
        let res = b
            .post(
                &app,
                &paths[1],
                &[
                    ("csrf", token.as_str()),
                    ("name", "書きかえ"),
                    ("name_kana", "かきかえ"),
                    ("birth_date", "S20.4.1"),
                    ("sex", "male"),
                    ("version", "1"),
                ],
            )
            .await;
        assert!(res.is_not_found(), "{who}: {}", res.status);
    }
    // Not in the host's list either, for those who may open it.
    let mut care_manager = Browser::signed_in(&app, CARE_MANAGER).await;
    assert!(!list(&app, &mut care_manager, "").await.body.contains(NAME));
    let mut other_admin = Browser::signed_in(&app, OTHER_ADMIN).await;
    let host_list = list(&app, &mut other_admin, "").await;
    assert!(!host_list.body.contains(NAME));
    assert!(
        !host_list.body.contains("患者を登録"),
        "not theirs to register in"
    );
    let mut other_nurse = Browser::signed_in(&app, OTHER_NURSE).await;
    let theirs = other_nurse.get(&app, &format!("/a/{OTHER}/patients")).await;
    assert_eq!(theirs.status, StatusCode::OK);
    assert!(!theirs.body.contains(NAME));
    let name: String = sqlx::query_scalar("SELECT name FROM patients WHERE id = $1")
        .bind(id)
        .fetch_one(&mut *app.tenant_tx(HOST).await)
        .await
        .unwrap();
    assert_eq!(name, NAME);
}

#[tokio::test]
async fn the_hosts_administrator_sees_the_entry_but_no_way_into_the_conversation() {
    let app = TestApp::demo().await;
    let mut nurse = Browser::signed_in(&app, NURSE).await;
    let id = register(&app, &mut nurse).await;
    let group = group_of(&app, id).await;

    let mut admin = Browser::signed_in(&app, ADMIN).await;
    let listed = list(&app, &mut admin, "").await;
    assert!(listed
        .body
        .contains("台帳のすべての患者さんが表示されます。"));
    let cards = between(&listed.body, "<ul class=\"patient-cards\"", "</ul>");
    assert!(cards.contains(NAME));
    assert!(cards.contains(&format!("href=\"{}\"", entry_path(id))));

    let entry = admin.get(&app, &entry_path(id)).await;
    assert_eq!(entry.status, StatusCode::OK, "{}", entry.body);
    assert!(entry.body.contains(KANA));
    assert!(
        !entry.body.contains(&group.to_string()),
        "no link into the group"
    );
    assert!(!entry.body.contains("/edit\""));
    assert!(entry
        .body
        .contains("グループのやりとり（トピックやコメント）は見られません。"));
    // The conversation itself stays closed.
    assert!(admin
        .get(&app, &format!("/a/{HOST}/g/{group}"))
        .await
        .is_not_found());
    assert!(admin
        .get(&app, &format!("{}/edit", entry_path(id)))
        .await
        .is_not_found());
}

/// Sends the edit form with `token` and `fields`.
async fn post_edit(
    app: &TestApp,
    b: &mut Browser,
    token: &str,
    edit: &str,
    fields: Vec<(&'static str, String)>,
) -> Page {
    let mut all = vec![("csrf", token)];
    all.extend(fields.iter().map(|(k, v)| (*k, v.as_str())));
    b.post(app, edit, &all).await
}

#[tokio::test]
async fn a_correction_over_someone_elses_keeps_what_was_typed_and_shows_what_changed() {
    let app = TestApp::demo().await;
    let mut nurse = Browser::signed_in(&app, NURSE).await;
    let id = register(&app, &mut nurse).await;
    let edit = format!("{}/edit", entry_path(id));

    // The form, filled in with the entry by era, at version 1.
    let form = nurse.get(&app, &edit).await;
    assert_eq!(form.status, StatusCode::OK);
    assert!(form.body.contains("name=\"version\" value=\"1\""));
    assert!(form.body.contains("value=\"昭和20年4月1日\""));
    assert!(form.body.contains(&format!("value=\"{NAME}\"")));
    let token = form.csrf();
    let send = |name: &str, care: &str, version: &str| {
        let mut all = fields("昭和20年4月1日");
        all.retain(|(k, _)| !matches!(*k, "name" | "care_level"));
        all.push(("name", name.into()));
        all.push(("care_level", care.into()));
        all.push(("version", version.into()));
        all
    };

    // Saved at version 1: the entry now says 要介護3.
    let res = post_edit(&app, &mut nurse, &token, &edit, send(NAME, "care3", "1")).await;
    assert_eq!(res.status, StatusCode::SEE_OTHER, "{}", res.body);
    assert_eq!(
        res.location(),
        format!("{}?done=patient_saved", entry_path(id))
    );
    let shown = nurse
        .get(&app, &format!("{}?done=patient_saved", entry_path(id)))
        .await;
    assert!(shown.body.contains("保存しました。"));
    assert!(shown.body.contains("要介護3"));

    // A second form still at version 1: refused, what was typed kept, what is registered now
    // shown where it differs, and the form now at version 2.
    let res = post_edit(
        &app,
        &mut nurse,
        &token,
        &edit,
        send("港 はな子", "care4", "1"),
    )
    .await;
    assert_eq!(res.status, StatusCode::CONFLICT, "{}", res.body);
    assert!(res
        .body
        .contains("ほかの方がこの患者さんの情報を変更しました"));
    assert!(res.body.contains("value=\"港 はな子\""));
    assert!(res
        .body
        .contains("<option value=\"care4\" selected>要介護4</option>"));
    assert!(res.body.contains(&format!("いまの登録：{NAME}")));
    assert!(res.body.contains("いまの登録：要介護3"));
    assert!(res.body.contains("name=\"version\" value=\"2\""));
    let stored: (String, String) =
        sqlx::query_as("SELECT name, care_level FROM patients WHERE id = $1")
            .bind(id)
            .fetch_one(&mut *app.tenant_tx(HOST).await)
            .await
            .unwrap();
    assert_eq!(stored, (NAME.to_owned(), "care3".to_owned()));

    // A refused field on the edit form: the message next to it, the rest kept.
    let mut bad = send("港 はな子", "care4", "2");
    bad.retain(|(k, _)| *k != "name_kana");
    bad.push(("name_kana", "港".into()));
    let res = post_edit(&app, &mut nurse, &token, &edit, bad).await;
    assert_eq!(res.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", res.body);
    assert!(res
        .body
        .contains("ふりがなは、ひらがなかカタカナで入力してください。"));
    assert!(res.body.contains("value=\"港 はな子\""));
}

/// The search page's patient results for `q`.
async fn patients_found(app: &TestApp, b: &mut Browser, q: &str) -> Page {
    let q = percent_encoding::utf8_percent_encode(q, percent_encoding::NON_ALPHANUMERIC);
    b.get(app, &format!("/search?q={q}&kind=patient")).await
}

#[tokio::test]
async fn a_renamed_patient_is_found_by_the_new_name_only() {
    let app = TestApp::demo().await;
    let mut nurse = Browser::signed_in(&app, NURSE).await;
    let id = register(&app, &mut nurse).await;
    let group = group_of(&app, id).await;
    let link = format!("/a/{HOST}/g/{group}");
    assert!(patients_found(&app, &mut nurse, "花子")
        .await
        .body
        .contains(&link));

    let edit = format!("{}/edit", entry_path(id));
    let token = nurse.get(&app, &edit).await.csrf();
    let mut renamed = fields("昭和20年4月1日");
    renamed.retain(|(k, _)| *k != "name");
    renamed.push(("name", "港 はな子".into()));
    renamed.push(("version", "1".into()));
    let res = post_edit(&app, &mut nurse, &token, &edit, renamed).await;
    assert_eq!(res.status, StatusCode::SEE_OTHER, "{}", res.body);

    assert!(patients_found(&app, &mut nurse, "はな子")
        .await
        .body
        .contains(&link));
    assert!(!patients_found(&app, &mut nurse, "花子")
        .await
        .body
        .contains(&link));
}

#[tokio::test]
async fn someone_in_a_patient_group_elsewhere_finds_that_entry_and_nothing_else_of_its_register() {
    let app = TestApp::demo().await;
    // 青木 (みなと川) is in 伊藤's group, hosted by さくら台.
    let mut nurse = Browser::signed_in(&app, NURSE).await;
    let theirs = list(&app, &mut nurse, "").await;
    assert!(theirs
        .body
        .contains(&format!("href=\"/a/{HOST}/patients/new\"")));
    let elsewhere = nurse.get(&app, &format!("/a/{OTHER}/patients")).await;
    assert_eq!(elsewhere.status, StatusCode::OK);
    let cards = between(&elsewhere.body, "<ul class=\"patient-cards\"", "</ul>");
    assert!(cards.contains("伊藤 正男"), "{cards}");
    assert_eq!(cards.matches("<li>").count(), 1, "only the group she is in");
    assert!(!elsewhere.body.contains("患者を登録"));
    assert!(elsewhere
        .body
        .contains(&format!("href=\"/a/{HOST}/patients\"")));
}

/// `email`'s status in the group, if any.
async fn member_status(app: &TestApp, group: Uuid, email: &str) -> Option<String> {
    sqlx::query_scalar(
        "SELECT m.status FROM core.group_members m JOIN core.users u ON u.id = m.user_id \
         WHERE m.group_id = $1 AND u.email = $2",
    )
    .bind(group)
    .bind(email)
    .fetch_optional(app.db.db.pool())
    .await
    .unwrap()
}

#[tokio::test]
async fn the_team_from_other_offices_is_invited_once_the_patients_consent_is_recorded() {
    let app = TestApp::demo().await;
    let mut nurse = Browser::signed_in(&app, NURSE).await;
    let id = register(&app, &mut nurse).await;
    let group = group_of(&app, id).await;
    let page = format!("/a/{HOST}/g/{group}");
    let care_manager = app.user_id(CARE_MANAGER).await.to_string();
    let colleague = app.user_id(THERAPIST).await.to_string();

    // No consent yet: a care manager of another office is not invited, and the page says why
    // (not an error page); a colleague of the same station is.
    let res = nurse
        .submit(
            &app,
            &page,
            &format!("{page}/invite"),
            &[("user_id", &care_manager)],
        )
        .await;
    assert_eq!(res.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", res.body);
    assert!(res.body.contains("情報共有の同意が記録されていないため"));
    assert_eq!(member_status(&app, group, CARE_MANAGER).await, None);
    let res = nurse
        .submit(
            &app,
            &page,
            &format!("{page}/invite-email"),
            &[("email", CARE_MANAGER)],
        )
        .await;
    assert_eq!(res.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", res.body);
    assert!(res.body.contains("情報共有の同意が記録されていないため"));
    let res = nurse
        .submit(
            &app,
            &page,
            &format!("{page}/invite"),
            &[("user_id", &colleague)],
        )
        .await;
    assert_eq!(res.location(), format!("{page}?done=invited"));

    // The consent recorded on the entry: now the care manager can be invited.
    let edit = format!("{}/edit", entry_path(id));
    let token = nurse.get(&app, &edit).await.csrf();
    let mut all = fields("昭和20年4月1日");
    all.push(("consent_date", "令和6年3月1日".into()));
    all.push(("consent_by", "訪問看護ステーションみなと 青木".into()));
    all.push((
        "consent_scope",
        "主治医・訪問看護・ケアマネジャーで共有".into(),
    ));
    all.push(("version", "1".into()));
    let res = post_edit(&app, &mut nurse, &token, &edit, all).await;
    assert_eq!(res.status, StatusCode::SEE_OTHER, "{}", res.body);
    let entry = nurse.get(&app, &entry_path(id)).await;
    assert!(entry.body.contains("令和6年3月1日（2024年3月1日）"));
    let res = nurse
        .submit(
            &app,
            &page,
            &format!("{page}/invite"),
            &[("user_id", &care_manager)],
        )
        .await;
    assert_eq!(
        res.location(),
        format!("{page}?done=invited"),
        "{}",
        res.body
    );
    assert_eq!(
        member_status(&app, group, CARE_MANAGER).await.as_deref(),
        Some("invited")
    );
}

#[tokio::test]
async fn the_register_downloads_as_csv_and_a_group_as_its_record_for_members_only() {
    let app = TestApp::demo().await;
    let mut nurse = Browser::signed_in(&app, NURSE).await;
    let id = register(&app, &mut nurse).await;
    let group = group_of(&app, id).await;

    let csv = nurse.get(&app, &format!("/a/{HOST}/patients.csv")).await;
    assert_eq!(csv.status, StatusCode::OK);
    assert_eq!(
        csv.header(http::header::CONTENT_TYPE),
        "text/csv; charset=utf-8"
    );
    let disposition = csv.header(http::header::CONTENT_DISPOSITION);
    assert!(
        disposition.starts_with("attachment; filename=\"patients-"),
        "{disposition}"
    );
    // 患者台帳, percent-encoded for the browser to show in Japanese.
    assert!(
        disposition.contains("filename*=UTF-8''%E6%82%A3%E8%80%85%E5%8F%B0%E5%B8%B3"),
        "{disposition}"
    );
    assert_eq!(csv.header(http::header::CACHE_CONTROL), "no-store");
    assert!(
        csv.body.starts_with('\u{feff}'),
        "Excel needs the byte order mark"
    );
    assert!(csv.body.contains(NAME) && csv.body.contains(KANA));

    // The entry page links the group's record for her; the record holds the patient.
    let entry = nurse.get(&app, &entry_path(id)).await;
    let record_path = format!("/a/{HOST}/g/{group}/record.json");
    assert!(entry.body.contains(&record_path), "{}", entry.body);
    let record = nurse.get(&app, &record_path).await;
    assert_eq!(record.status, StatusCode::OK);
    assert_eq!(
        record.header(http::header::CONTENT_TYPE),
        "application/json"
    );
    let json: serde_json::Value = serde_json::from_str(&record.body).unwrap();
    assert_eq!(json["patient"]["name"], NAME);
    assert_eq!(json["patient"]["birthDateWareki"], "昭和20年4月1日");

    // The host's administrator: the register, yes; the conversation's record, no.
    let mut admin = Browser::signed_in(&app, ADMIN).await;
    let csv = admin.get(&app, &format!("/a/{HOST}/patients.csv")).await;
    assert!(csv.body.contains(NAME));
    assert!(admin.get(&app, &record_path).await.is_not_found());
    // Another association's people: neither their patients nor this record.
    let mut other = Browser::signed_in(&app, OTHER_NURSE).await;
    let csv = other.get(&app, &format!("/a/{HOST}/patients.csv")).await;
    assert!(!csv.body.contains(NAME));
    assert!(other.get(&app, &record_path).await.is_not_found());
}

/// `/a/{slug}/patients/import`: a CSV file checked first (nothing written), then registered
/// with a second post of the same content; the upload's own CSRF check; who gets the 404 page.
mod csv_import {
    use super::*;
    use axum::body::Body;
    use http::Request;
    use musubi_domain::patient_csv::COLUMNS;

    const BOUNDARY: &str = "----musubi-import-test";

    fn import_path() -> String {
        format!("/a/{HOST}/patients/import")
    }

    /// One part of a multipart form: (name, file name for a file, value).
    type Part<'a> = (&'a str, Option<&'a str>, &'a [u8]);

    fn multipart(parts: &[Part<'_>]) -> Vec<u8> {
        let mut body = Vec::new();
        for (name, file, value) in parts {
            body.extend_from_slice(format!("--{BOUNDARY}\r\n").as_bytes());
            let head = match file {
                Some(f) => format!(
                    "Content-Disposition: form-data; name=\"{name}\"; filename=\"{f}\"\r\n\
                     Content-Type: text/csv\r\n\r\n"
                ),
                None => format!("Content-Disposition: form-data; name=\"{name}\"\r\n\r\n"),
            };
            body.extend_from_slice(head.as_bytes());
            body.extend_from_slice(value);
            body.extend_from_slice(b"\r\n");
        }
        body.extend_from_slice(format!("--{BOUNDARY}--\r\n").as_bytes());
        body
    }

    /// A body arriving in pieces, as from the network (the route's limit stops it midway).
    fn streamed(bytes: Vec<u8>) -> Body {
        let chunks: Vec<Result<Vec<u8>, std::io::Error>> =
            bytes.chunks(64 * 1024).map(|c| Ok(c.to_vec())).collect();
        Body::from_stream(futures_util::stream::iter(chunks))
    }

    /// Posts the import form as a browser does (same origin, multipart).
    async fn upload(b: &mut Browser, app: &TestApp, parts: &[Part<'_>]) -> Page {
        let req = Request::post(import_path())
            .header("origin", format!("http://{}", b.host))
            .header(
                "content-type",
                format!("multipart/form-data; boundary={BOUNDARY}"),
            );
        b.send(app, req, streamed(multipart(parts))).await
    }

    /// Opens the import page and sends `file` to be checked (the first step).
    async fn check(b: &mut Browser, app: &TestApp, file: &[u8]) -> Page {
        let token = b.get(app, &import_path()).await.csrf();
        upload(
            b,
            app,
            &[
                ("csrf", None, token.as_bytes()),
                ("step", None, b"check"),
                ("file", Some("patients.csv"), file),
            ],
        )
        .await
    }

    /// The value of the hidden field `name` in `page`'s confirmation form.
    fn hidden(page: &Page, name: &str) -> String {
        let form = between(&page.body, "id=\"import-confirm\"", "</form>");
        let marker = format!("name=\"{name}\" value=\"");
        let at = form.find(&marker).unwrap_or_else(|| panic!("no {name}")) + marker.len();
        let end = form[at..].find('"').unwrap();
        form[at..at + end]
            .replace("&#x2f;", "/")
            .replace("&#43;", "+")
            .replace("&#61;", "=")
    }

    /// Sends the confirmation form of `page` (the second step).
    async fn confirm(b: &mut Browser, app: &TestApp, page: &Page) -> Page {
        let token = hidden(page, "csrf");
        let content = hidden(page, "content");
        upload(
            b,
            app,
            &[
                ("csrf", None, token.as_bytes()),
                ("step", None, b"confirm"),
                ("name", None, b"patients.csv"),
                ("content", None, content.as_bytes()),
            ],
        )
        .await
    }

    fn row(fields: &[&str]) -> String {
        let mut all: Vec<&str> = fields.to_vec();
        all.resize(COLUMNS.len(), "");
        all.join(",")
    }

    /// Two rows that can be registered and three that cannot (lines 3 to 5).
    fn register_file() -> Vec<u8> {
        let patient = |name: &str, kana: &str, birth: &str, sex: &str| {
            let mut f = vec![name, kana, birth, sex, "123-4567", "みなと川市港町1-2-3"];
            f.extend(["港町", "03-1234-5678", "", "慢性心不全", "要介護2"]);
            f.extend(["", "", "", "", "", "在宅"]);
            row(&f)
        };
        let lines = [
            COLUMNS.join(","),
            patient("港 花子", "ミナト ハナコ", "昭和20年4月1日", "女性"),
            // Line 3: a reading in letters and a day the era never had.
            patient("川辺 次郎", "Kawabe Jiro", "平成31年5月1日", "男性"),
            // Line 4: a row cut short.
            "浜 三郎,はま さぶろう,1950-01-01".to_owned(),
            // Line 5: 女 is not one of the choices (女性).
            patient("浦 四子", "うら よつこ", "1940-02-03", "女"),
            patient("岬 五郎", "みさき ごろう", "S15.6.7", "男性"),
        ];
        let mut text = String::from('\u{feff}');
        text.push_str(&lines.join("\r\n"));
        text.push_str("\r\n");
        text.into_bytes()
    }

    #[tokio::test]
    async fn a_nurse_checks_a_file_sees_each_rejected_row_and_then_registers_the_rest() {
        let app = TestApp::demo().await;
        let mut nurse = Browser::signed_in(&app, NURSE).await;

        // Linked from the list, next to the export.
        let listed = list(&app, &mut nurse, "").await;
        assert!(listed.body.contains(&format!("href=\"{}\"", import_path())));
        let before = entries(&app).await;

        // The first step only checks: what would be registered, and why the rest would not.
        let checked = check(&mut nurse, &app, &register_file()).await;
        assert_eq!(checked.status, StatusCode::OK, "{}", checked.body);
        assert!(checked.body.contains("まだ登録していません"));
        assert!(
            checked.body.contains("2 件を登録できます。"),
            "{}",
            checked.body
        );
        assert!(checked.body.contains("次の 3 行は登録できません"));
        for header in [
            "<th scope=\"col\">行</th>",
            "<th scope=\"col\">列</th>",
            "<th scope=\"col\">理由</th>",
        ] {
            assert!(checked.body.contains(header), "{header}");
        }
        let table = between(&checked.body, "<tbody>", "</tbody>");
        let rows: Vec<&str> = table.split("<tr>").skip(1).collect();
        assert_eq!(rows.len(), 4, "one row per refused cell: {table}");
        for (line, column, reason) in [
            ("3", "ふりがな", "ひらがなかカタカナ"),
            ("3", "生年月日", "その元号にはない日付です"),
            ("4", "（行全体）", "列の数が見出しの行と違います"),
            ("5", "性別", "選べる値ではありません"),
        ] {
            let line_cell = format!("<th scope=\"row\">{line}</th>");
            let column_cell = format!("<td>{column}</td>");
            assert!(
                rows.iter().any(|r| r.contains(&line_cell)
                    && r.contains(&column_cell)
                    && r.contains(reason)),
                "line {line} {column}: {table}"
            );
        }
        assert_eq!(entries(&app).await, before, "a check writes nothing");
        assert!(!list(&app, &mut nurse, "").await.body.contains("岬 五郎"));

        // Registering: the same content, posted back.
        assert!(checked.body.contains("2 件を登録する"));
        let done = confirm(&mut nurse, &app, &checked).await;
        assert_eq!(done.status, StatusCode::OK, "{}", done.body);
        assert!(
            done.body.contains("2 件の患者さんを登録しました。"),
            "{}",
            done.body
        );
        assert!(done.body.contains("次の 3 行は登録しませんでした"));
        assert!(!done.body.contains("id=\"import-confirm\""));
        assert_eq!(entries(&app).await, before + 2);
        let listed = list(&app, &mut nurse, "").await;
        assert!(listed.body.contains("港 花子") && listed.body.contains("岬 五郎"));
        assert!(!listed.body.contains("川辺 次郎"));

        // A second tap on the button registers nobody twice.
        let again = confirm(&mut nurse, &app, &checked).await;
        assert_eq!(again.status, StatusCode::OK, "{}", again.body);
        assert!(again.body.contains("登録した患者さんはいません。"));
        assert!(again.body.contains("すでに台帳にいるか"));
        assert_eq!(entries(&app).await, before + 2);
    }

    #[tokio::test]
    async fn a_file_that_cannot_be_read_is_said_in_japanese_and_nothing_is_registered() {
        let app = TestApp::demo().await;
        let mut nurse = Browser::signed_in(&app, NURSE).await;
        let before = entries(&app).await;
        let renamed = format!("名前,{}\r\n港 花子\r\n", COLUMNS[1..].join(","));
        // 氏名 in Shift_JIS, as Excel saves plain "CSV".
        let shift_jis: &[u8] = &[0x8e, 0x81, 0x96, 0xbc, b'\r', b'\n'];
        let unclosed = format!("{}\r\n\"港 花子,\r\n", COLUMNS.join(","));
        for (file, words) in [
            (renamed.as_bytes(), "1行目の見出しが、台帳の形と違います。"),
            (shift_jis, "文字コードがUTF-8ではありません"),
            (b"\xef\xbb\xbf\r\n".as_slice(), "ファイルが空です。"),
            (unclosed.as_bytes(), "の閉じ忘れがないか"),
        ] {
            let res = check(&mut nurse, &app, file).await;
            assert_eq!(res.status, StatusCode::UNPROCESSABLE_ENTITY, "{words}");
            let alert = between(&res.body, "role=\"alert\"", "</div>");
            assert!(alert.contains(words), "{words}: {alert}");
            assert!(alert.contains("patients.csv"), "the file is named");
            assert!(res.body.contains("type=\"file\""), "choose again");
        }
        // Over the limit (5 MB), whether the route still reads it all or stops reading.
        for size in [5 * 1024 * 1024 + 1, 8 * 1024 * 1024] {
            let res = check(&mut nurse, &app, &vec![b'a'; size]).await;
            assert_eq!(res.status, StatusCode::UNPROCESSABLE_ENTITY, "{size}");
            assert!(
                res.body.contains("ファイルが大きすぎます（5MBまで）"),
                "{size}"
            );
        }
        // No file chosen: an empty, nameless file part.
        let token = nurse.get(&app, &import_path()).await.csrf();
        let res = upload(
            &mut nurse,
            &app,
            &[
                ("csrf", None, token.as_bytes()),
                ("step", None, b"check"),
                ("file", Some(""), b""),
            ],
        )
        .await;
        assert!(res.body.contains("ファイルが選ばれていません。"));
        // A confirmation whose content was damaged on the way.
        let res = upload(
            &mut nurse,
            &app,
            &[
                ("csrf", None, token.as_bytes()),
                ("step", None, b"confirm"),
                ("content", None, b"%%%"),
            ],
        )
        .await;
        assert!(res.body.contains("もう一度ファイルを選んでください。"));
        assert_eq!(entries(&app).await, before);
    }

    #[tokio::test]
    async fn an_upload_without_the_token_first_or_from_elsewhere_is_refused_before_reading() {
        let app = TestApp::demo().await;
        let mut nurse = Browser::signed_in(&app, NURSE).await;
        let token = nurse.get(&app, &import_path()).await.csrf();
        let file = register_file();
        let before = entries(&app).await;
        let forged = upload(
            &mut nurse,
            &app,
            &[
                ("csrf", None, b"forged"),
                ("step", None, b"confirm"),
                ("file", Some("x.csv"), &file),
            ],
        )
        .await;
        assert_eq!(forged.status, StatusCode::FORBIDDEN);
        let late = upload(
            &mut nurse,
            &app,
            &[
                ("step", None, b"check"),
                ("csrf", None, token.as_bytes()),
                ("file", Some("x.csv"), &file),
            ],
        )
        .await;
        assert_eq!(late.status, StatusCode::FORBIDDEN);
        let req = Request::post(import_path())
            .header("origin", "https://evil.example")
            .header(
                "content-type",
                format!("multipart/form-data; boundary={BOUNDARY}"),
            );
        let body = multipart(&[
            ("csrf", None, token.as_bytes()),
            ("step", None, b"check"),
            ("file", Some("x.csv"), &file),
        ]);
        let cross_site = nurse.send(&app, req, Body::from(body)).await;
        assert_eq!(cross_site.status, StatusCode::FORBIDDEN);
        assert_eq!(entries(&app).await, before);
    }

    #[tokio::test]
    async fn people_of_another_association_get_the_not_found_page_for_the_import() {
        let app = TestApp::demo().await;
        for who in [OTHER_NURSE, OTHER_ADMIN] {
            let mut b = Browser::signed_in(&app, who).await;
            let listed = b.get(&app, &format!("/a/{HOST}/patients")).await;
            assert!(!listed.body.contains(&import_path()), "{who}: no link");
            assert!(b.get(&app, &import_path()).await.is_not_found(), "{who}");
            let token = b.get(&app, "/home").await.csrf();
            let res = upload(
                &mut b,
                &app,
                &[
                    ("csrf", None, token.as_bytes()),
                    ("step", None, b"check"),
                    ("file", Some("x.csv"), b"not even a register"),
                ],
            )
            .await;
            assert!(res.is_not_found(), "{who}: {} {}", res.status, res.body);
        }
        let mut b = Browser::signed_in(&app, OTHER_NURSE).await;
        let res = b.get(&app, "/a/nosuch/patients/import").await;
        assert!(res.is_not_found());
    }
}

#[tokio::test]
async fn the_team_is_found_and_ticked_on_the_registration_form_and_invited_with_it() {
    let app = TestApp::demo().await;
    let mut nurse = Browser::signed_in(&app, NURSE).await;
    let care_manager = app.user_id(CARE_MANAGER).await;
    let kana: String = sqlx::query_scalar("SELECT name_kana FROM core.users WHERE id = $1")
        .bind(care_manager)
        .fetch_one(app.db.db.pool())
        .await
        .unwrap();
    let before = entries(&app).await;

    // 「探す」 shows the form again with everything typed and the people found.
    let mut typed = fields("昭和20年4月1日");
    typed.push(("q", kana.chars().take(3).collect()));
    typed.push(("find", "1".into()));
    let found = post_form(&mut nurse, &app, &typed).await;
    assert_eq!(found.status, StatusCode::OK, "{}", found.body);
    assert!(
        found.body.contains(&format!("value=\"{NAME}\"")),
        "{}",
        found.body
    );
    assert!(found.body.contains("慢性心不全"), "{}", found.body);
    let tick = format!("name=\"to\" value=\"{care_manager}\"");
    assert!(found.body.contains(&tick), "{}", found.body);
    assert_eq!(entries(&app).await, before, "a search registers nothing");

    // Ticked, but no consent on record for someone of another office: refused at the consent
    // field, the tick and the text kept.
    let mut ticked = fields("昭和20年4月1日");
    ticked.push(("to", care_manager.to_string()));
    ticked.push(("who", format!("{care_manager} ケアマネ｜居宅")));
    let refused = post_form(&mut nurse, &app, &ticked).await;
    assert_eq!(
        refused.status,
        StatusCode::UNPROCESSABLE_ENTITY,
        "{}",
        refused.body
    );
    assert!(
        refused.body.contains(&format!("{tick} checked")),
        "{}",
        refused.body
    );
    assert!(refused.body.contains(&format!("value=\"{NAME}\"")));
    assert_eq!(entries(&app).await, before);

    // Someone who is no one's colleague (a made-up id): refused, nothing registered.
    let mut forged = fields("昭和20年4月1日");
    forged.push(("to", Uuid::new_v4().to_string()));
    let res = post_form(&mut nurse, &app, &forged).await;
    assert_eq!(res.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", res.body);
    assert!(res.body.contains("招待できない人"), "{}", res.body);
    assert_eq!(entries(&app).await, before);

    // With the consent recorded: registered, and the care manager invited in the same step.
    ticked.push(("consent_date", "令和6年3月1日".into()));
    ticked.push(("consent_by", "訪問看護ステーションみなと 青木".into()));
    ticked.push((
        "consent_scope",
        "主治医・訪問看護・ケアマネジャーで共有".into(),
    ));
    let res = post_form(&mut nurse, &app, &ticked).await;
    assert_eq!(res.status, StatusCode::SEE_OTHER, "{}", res.body);
    assert_eq!(entries(&app).await, before + 1);
    let id = res
        .location()
        .strip_prefix(&format!("/a/{HOST}/patients/"))
        .and_then(|rest| rest.strip_suffix("?done=patient_registered"))
        .and_then(|id| Uuid::parse_str(id).ok())
        .unwrap_or_else(|| panic!("not a new entry: {}", res.location()));
    let group = group_of(&app, id).await;
    assert_eq!(
        member_status(&app, group, CARE_MANAGER).await.as_deref(),
        Some("invited")
    );
}

/// The options of the list's `name` select, as (value, label); empty when there is none.
fn select_options(body: &str, name: &str) -> Vec<(String, String)> {
    let Some(start) = body.find(&format!("name=\"{name}\">")) else {
        return Vec::new();
    };
    let select = &body[start..];
    let select = &select[..select.find("</select>").unwrap_or(select.len())];
    select
        .split("<option value=\"")
        .skip(1)
        .filter_map(|o| {
            let (value, rest) = o.split_once('"')?;
            let label = rest.split_once('>')?.1.split_once("</option>")?.0;
            Some((value.to_owned(), label.to_owned()))
        })
        .collect()
}

#[tokio::test]
async fn the_physician_filter_offers_only_the_physicians_of_entries_one_may_see() {
    let app = TestApp::demo().await;
    // A second clinic doctor registers a patient as her physician.
    let oono = app
        .user_id(musubi_test_support::demo::CLINIC_DOCTOR_2)
        .await;
    let mut doctor = Browser::signed_in(&app, musubi_test_support::demo::CLINIC_DOCTOR_2).await;
    let mut typed = fields("昭和20年4月1日");
    for f in &mut typed {
        if f.0 == "physician" {
            f.1 = oono.to_string();
        }
    }
    let res = post_form(&mut doctor, &app, &typed).await;
    assert_eq!(res.status, StatusCode::SEE_OTHER, "{}", res.body);
    let oono_name: String = sqlx::query_scalar("SELECT name FROM core.users WHERE id = $1")
        .bind(oono)
        .fetch_one(app.db.db.pool())
        .await
        .unwrap();

    // The administrator sees the whole register: both physicians offered, and choosing one
    // lists her patients only.
    let mut admin = Browser::signed_in(&app, ADMIN).await;
    let page = list(&app, &mut admin, "").await;
    let offered = select_options(&page.body, "physician");
    assert!(
        offered
            .iter()
            .any(|(v, l)| *v == oono.to_string() && *l == oono_name),
        "{offered:?}"
    );
    assert!(
        offered.len() >= 3,
        "指定なし and two physicians: {offered:?}"
    );
    let page = list(&app, &mut admin, &format!("physician={oono}")).await;
    assert!(page.body.contains(NAME), "{}", page.body);
    assert!(!page.body.contains("山田 太郎"), "{}", page.body);
    assert!(
        page.body
            .contains(&format!("<option value=\"{oono}\" selected>")),
        "{}",
        page.body
    );
    // An id that is no one's is ignored, not an error page.
    let page = list(&app, &mut admin, "physician=garbage&facility=%00").await;
    assert!(page.body.contains("山田 太郎"));

    // Neither a nurse of the host nor a hospital doctor of another association learns of a
    // physician whose patients they do not share.
    for who in [NURSE, HOSPITAL_DOCTOR] {
        let mut b = Browser::signed_in(&app, who).await;
        let page = list(&app, &mut b, "").await;
        assert!(!page.body.contains(&oono_name), "{who}: {}", page.body);
        assert!(
            select_options(&page.body, "physician")
                .iter()
                .all(|(v, _)| *v != oono.to_string()),
            "{who}"
        );
    }
}
