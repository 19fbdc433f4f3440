//! Invitations and forgotten passwords, end to end through the API, with mail going through a
//! real SMTP server into a maildir that the tests read back.
//!
//! Needs `MUSUBI_TEST_SMTP_URL` (an SMTP server accepting any recipient) and
//! `MUSUBI_TEST_MAILDIR` (the maildir it delivers to). `cargo xtask test` starts Python's
//! aiosmtpd and sets both.

use crate::mail::{
    first_mail_to, maildir_files, mails_to, next_mail_to, parse_mail, required_env, smtp_mailer,
    MAILDIR_ENV, PUBLIC_URL,
};
use musubi_demo::DEMO_PASSWORD;
use musubi_test_support::{error_codes, strip_locations, test_config, TestApp};
use serde_json::{json, Value};
use std::collections::HashSet;
use std::time::Duration;

const NEW_PASSWORD: &str = "Kango-Station-2026!";

/// The application with the demo data, mailing through the test SMTP server.
async fn demo_app() -> TestApp {
    let mailer = smtp_mailer();
    let _ = required_env(MAILDIR_ENV);
    TestApp::demo_with_services(test_config(&[]), |services| services.with_mailer(mailer)).await
}

async fn audit_actions(app: &TestApp, slug: &str) -> Vec<String> {
    let mut tx = app.tenant_tx(slug).await;
    sqlx::query_scalar("SELECT action FROM audit_log ORDER BY seq")
        .fetch_all(&mut *tx)
        .await
        .unwrap()
}

async fn facility_id(app: &TestApp, slug: &str, name: &str) -> String {
    let id: uuid::Uuid = sqlx::query_scalar(
        "SELECT f.id FROM core.facilities f JOIN core.associations a ON a.id = f.association_id \
         WHERE a.slug = $1 AND f.name = $2",
    )
    .bind(slug)
    .bind(name)
    .fetch_one(app.db.db.pool())
    .await
    .unwrap();
    id.to_string()
}

/// A person with an account in `slug` (and a password of their own).
async fn create_account(app: &TestApp, email: &str, password: &str, slug: &str) {
    let hash = musubi_auth::password::hash_password(password).unwrap();
    let association: uuid::Uuid =
        sqlx::query_scalar("SELECT id FROM core.associations WHERE slug = $1")
            .bind(slug)
            .fetch_one(app.db.db.pool())
            .await
            .unwrap();
    musubi_test_support::insert_member(
        &app.db.db,
        association.into(),
        &musubi_db::accounts::NewUser {
            email,
            name: "中村 一郎",
            name_kana: "なかむら いちろう",
            profession: musubi_db::types::Profession::Pharmacist,
            doctor_kind: None,
            password_hash: Some(&hash),
        },
    )
    .await;
}

fn unique_address(who: &str) -> String {
    format!("{who}-{}@musubi.test", uuid::Uuid::new_v4().simple())
}

const INVITE: &str = "mutation($e: String, $r: MemberRole!, $f: ID, $d: Int) { \
    inviteMember(email: $e, role: $r, facilityId: $f, expiresInDays: $d) { \
      id email role facilityId facilityName invitedByName expiresAt link qrSvg } }";
const PREVIEW: &str = "query($t: String!) { invitation(token: $t) { \
    associationSlug associationName role facilityName email existingAccount expiresAt } }";
const ACCEPT: &str = "mutation($t: String!, $i: AcceptInvitationInput!) { \
    acceptInvitation(token: $t, input: $i) { token next } }";
const REVOKE: &str = "mutation($id: ID!) { revokeInvitation(id: $id) }";
const LIST: &str = "{ invitations { id email role expiresAt link } }";
const REQUEST_RESET: &str = "mutation($e: String!) { requestPasswordReset(email: $e) }";
const RESET: &str =
    "mutation($t: String!, $p: String!) { resetPassword(token: $t, newPassword: $p) }";

fn new_nurse(password: &str) -> Value {
    json!({
        "password": password,
        "name": "西村 はるか",
        "nameKana": "にしむら はるか",
        "profession": "nurse",
    })
}

fn token_in_link(link: &str, path: &str) -> String {
    let at = link
        .find(path)
        .unwrap_or_else(|| panic!("no {path} in {link}"));
    link[at + path.len()..].chars().take(43).collect()
}

/// Gives a send that should not happen time to happen, then checks that none did.
async fn assert_no_mail_containing(needle: &str) {
    tokio::time::sleep(Duration::from_millis(1500)).await;
    for f in maildir_files() {
        let m = parse_mail(f);
        assert!(
            !m.body.contains(needle) && !m.to.contains(needle),
            "unexpected mail {:?} to {}",
            m.file,
            m.to
        );
    }
}

// ---------------------------------------------------------------------------------------------
// Invitations

#[tokio::test]
async fn an_admin_invites_a_nurse_by_mail_who_joins_and_can_sign_in() {
    let app = demo_app().await;
    let admin = app.demo_token("admin@minatogawa.example").await;
    let station = facility_id(&app, "minatogawa", "訪問看護ステーションみなと").await;
    let nurse = unique_address("nurse");

    let r = app
        .gql(
            INVITE,
            json!({"e": nurse, "r": "MEMBER", "f": station}),
            Some(&admin),
            Some("minatogawa"),
        )
        .await;
    let inv = &r["data"]["inviteMember"];
    assert_eq!(inv["email"], nurse.as_str(), "{r}");
    assert_eq!(inv["facilityName"], "訪問看護ステーションみなと");
    // An e-mailed link goes to the invitee alone.
    assert!(inv["link"].is_null() && inv["qrSvg"].is_null(), "{r}");

    let mail = first_mail_to(&nurse).await;
    assert!(mail.to.contains(&nurse));
    assert!(mail.content_type.contains("text/plain"), "{mail:?}");
    assert!(mail.content_type.to_ascii_lowercase().contains("utf-8"));
    assert!(mail.subject.contains("みなと川医師会"), "{}", mail.subject);
    assert!(mail.subject.contains("招待"), "{}", mail.subject);
    assert!(
        mail.body.contains("みなと川医師会の管理者から"),
        "{}",
        mail.body
    );
    let ja = mail.body.find("招待").unwrap();
    let en = mail.body.find("invited").unwrap();
    assert!(ja < en, "Japanese first: {}", mail.body);
    let link_at = mail.body.find(&format!("{PUBLIC_URL}/invite/")).unwrap();
    let token = token_in_link(&mail.body[link_at..], "/invite/");
    assert_eq!(token.len(), 43);
    // Nothing personal beyond the association: not who the administrator is, not the
    // facility, not anyone's name or address but the recipient's in the header.
    let admin_name: String =
        sqlx::query_scalar("SELECT name FROM core.users WHERE email = 'admin@minatogawa.example'")
            .fetch_one(app.db.db.pool())
            .await
            .unwrap();
    for secret in [
        admin_name.as_str(),
        "admin@minatogawa.example",
        "訪問看護ステーション",
        nurse.as_str(),
    ] {
        assert!(!mail.body.contains(secret), "{secret} in {}", mail.body);
    }

    let r = app.gql(PREVIEW, json!({"t": token}), None, None).await;
    let p = &r["data"]["invitation"];
    assert_eq!(p["associationName"], "みなと川医師会", "{r}");
    assert_eq!(p["email"], nurse.as_str());
    assert_eq!(p["existingAccount"], false);
    assert_eq!(p["role"], "MEMBER");

    let r = app
        .gql(
            ACCEPT,
            json!({"t": token, "i": new_nurse(NEW_PASSWORD)}),
            None,
            None,
        )
        .await;
    assert_eq!(r["data"]["acceptInvitation"]["next"], "DONE", "{r}");
    let session = r["data"]["acceptInvitation"]["token"].as_str().unwrap();
    let r = app
        .gql(
            "{ me { name profession memberships { associationSlug role facilityName } } }",
            json!({}),
            Some(session),
            None,
        )
        .await;
    assert_eq!(r["data"]["me"]["name"], "西村 はるか", "{r}");
    assert_eq!(
        r["data"]["me"]["memberships"],
        json!([{"associationSlug": "minatogawa", "role": "member", "facilityName": "訪問看護ステーションみなと"}])
    );

    // A password of their own, from now on.
    let r = app.sign_in(&nurse, NEW_PASSWORD).await;
    assert_eq!(r["data"]["signIn"]["next"], "DONE", "{r}");
    let r = app
        .gql(
            "{ members { email status } }",
            json!({}),
            Some(&admin),
            Some("minatogawa"),
        )
        .await;
    assert!(
        r["data"]["members"]
            .as_array()
            .unwrap()
            .iter()
            .any(|m| m["email"] == nurse.as_str() && m["status"] == "active"),
        "{r}"
    );
    let r = app
        .gql(LIST, json!({}), Some(&admin), Some("minatogawa"))
        .await;
    assert_eq!(r["data"]["invitations"], json!([]), "{r}");
    let actions = audit_actions(&app, "minatogawa").await;
    let invite = actions.iter().position(|a| a == "member.invite").unwrap();
    let join = actions.iter().position(|a| a == "member.join").unwrap();
    assert!(invite < join, "{actions:?}");

    // The link was for one use.
    let r = app
        .gql(
            ACCEPT,
            json!({"t": token, "i": new_nurse(NEW_PASSWORD)}),
            None,
            None,
        )
        .await;
    assert_eq!(error_codes(&r), vec!["INVITATION_INVALID"], "{r}");
}

#[tokio::test]
async fn a_weak_password_is_refused_with_its_reasons_and_the_link_still_works() {
    let app = demo_app().await;
    let admin = app.demo_token("admin@minatogawa.example").await;
    let r = app
        .gql(
            INVITE,
            json!({"r": "MEMBER"}),
            Some(&admin),
            Some("minatogawa"),
        )
        .await;
    let token = token_in_link(
        r["data"]["inviteMember"]["link"].as_str().unwrap(),
        "/invite/",
    );
    let email = unique_address("weak");
    let mut input = new_nurse("password");
    input["email"] = json!(email);
    let r = app
        .gql(ACCEPT, json!({"t": token, "i": input}), None, None)
        .await;
    assert_eq!(error_codes(&r), vec!["WEAK_PASSWORD"], "{r}");
    let reasons = r["errors"][0]["extensions"]["reasons"].as_array().unwrap();
    assert!(reasons.contains(&json!("TOO_SHORT")), "{r}");
    assert!(reasons.contains(&json!("TOO_COMMON")), "{r}");
    // The name is personal information too.
    input["password"] = json!("Nishimura-にしむら-2026");
    let r = app
        .gql(ACCEPT, json!({"t": token, "i": input}), None, None)
        .await;
    assert_eq!(error_codes(&r), vec!["WEAK_PASSWORD"], "{r}");
    // Nothing was created by the refused attempts; a good password then succeeds.
    let users: i64 = sqlx::query_scalar("SELECT count(*) FROM core.users WHERE email = $1")
        .bind(&email)
        .fetch_one(app.db.db.pool())
        .await
        .unwrap();
    assert_eq!(users, 0);
    input["password"] = json!(NEW_PASSWORD);
    let r = app
        .gql(ACCEPT, json!({"t": token, "i": input}), None, None)
        .await;
    assert_eq!(r["data"]["acceptInvitation"]["next"], "DONE", "{r}");
}

#[tokio::test]
async fn a_new_account_needs_its_details() {
    let app = demo_app().await;
    let admin = app.demo_token("admin@minatogawa.example").await;
    let r = app
        .gql(
            INVITE,
            json!({"r": "MEMBER"}),
            Some(&admin),
            Some("minatogawa"),
        )
        .await;
    let token = token_in_link(
        r["data"]["inviteMember"]["link"].as_str().unwrap(),
        "/invite/",
    );
    let cases = [
        (json!({"password": NEW_PASSWORD, "name": "西村"}), "email"),
        (
            json!({"email": unique_address("d"), "password": NEW_PASSWORD, "nameKana": "にしむら", "profession": "nurse"}),
            "name",
        ),
        (
            json!({"email": unique_address("d"), "password": NEW_PASSWORD, "name": "西村 医師", "nameKana": "にしむら", "profession": "physician"}),
            "doctorKind",
        ),
    ];
    for (input, field) in cases {
        let r = app
            .gql(ACCEPT, json!({"t": token, "i": input}), None, None)
            .await;
        assert_eq!(error_codes(&r), vec!["INVALID_INPUT"], "{r}");
        assert_eq!(r["errors"][0]["extensions"]["field"], field, "{r}");
    }
    // A hospital doctor, with everything given.
    let doctor = unique_address("doctor");
    let r = app
        .gql(
            ACCEPT,
            json!({"t": token, "i": {"email": doctor, "password": NEW_PASSWORD, "name": "西村 医師",
                   "nameKana": "にしむら いし", "profession": "physician", "doctorKind": "hospital"}}),
            None,
            None,
        )
        .await;
    assert_eq!(r["data"]["acceptInvitation"]["next"], "DONE", "{r}");
}

#[tokio::test]
async fn an_existing_account_must_give_its_password_and_keeps_its_other_associations() {
    let app = demo_app().await;
    let admin = app.demo_token("admin@minatogawa.example").await;
    let pharmacist = unique_address("pharmacist");
    let own_password = "Yakkyoku-Sakura-77";
    create_account(&app, &pharmacist, own_password, "sakuradai").await;

    let r = app
        .gql(
            INVITE,
            json!({"e": pharmacist, "r": "MEMBER"}),
            Some(&admin),
            Some("minatogawa"),
        )
        .await;
    assert!(r["errors"].is_null(), "{r}");
    let mail = first_mail_to(&pharmacist).await;
    let token = token_in_link(&mail.body, "/invite/");
    let r = app.gql(PREVIEW, json!({"t": token}), None, None).await;
    assert_eq!(r["data"]["invitation"]["existingAccount"], true, "{r}");

    // Someone else's password (or a new one) does not take the account over.
    for wrong in [NEW_PASSWORD, DEMO_PASSWORD] {
        let mut input = new_nurse(wrong);
        input["email"] = json!("ignored@musubi.test");
        let r = app
            .gql(ACCEPT, json!({"t": token, "i": input}), None, None)
            .await;
        assert_eq!(error_codes(&r), vec!["INVALID_CREDENTIALS"], "{r}");
    }
    let r = app
        .gql(
            ACCEPT,
            json!({"t": token, "i": {"password": own_password}}),
            None,
            None,
        )
        .await;
    assert_eq!(r["data"]["acceptInvitation"]["next"], "DONE", "{r}");
    let session = r["data"]["acceptInvitation"]["token"].as_str().unwrap();
    let r = app
        .gql(
            "{ me { name memberships { associationSlug } } }",
            json!({}),
            Some(session),
            None,
        )
        .await;
    assert_eq!(
        r["data"]["me"]["name"], "中村 一郎",
        "the account keeps its name: {r}"
    );
    let slugs: Vec<&str> = r["data"]["me"]["memberships"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["associationSlug"].as_str().unwrap())
        .collect();
    assert_eq!(slugs.len(), 2, "{r}");
    assert!(slugs.contains(&"minatogawa") && slugs.contains(&"sakuradai"));

    // In person: the typed address of an existing account needs that account's password.
    let other = unique_address("other");
    create_account(&app, &other, own_password, "sakuradai").await;
    let r = app
        .gql(
            INVITE,
            json!({"r": "MEMBER"}),
            Some(&admin),
            Some("minatogawa"),
        )
        .await;
    let token = token_in_link(
        r["data"]["inviteMember"]["link"].as_str().unwrap(),
        "/invite/",
    );
    let mut input = new_nurse(NEW_PASSWORD);
    input["email"] = json!(other);
    let r = app
        .gql(ACCEPT, json!({"t": token, "i": input}), None, None)
        .await;
    assert_eq!(error_codes(&r), vec!["INVALID_CREDENTIALS"], "{r}");
    let r = app
        .gql(
            ACCEPT,
            json!({"t": token, "i": {"email": other, "password": own_password}}),
            None,
            None,
        )
        .await;
    assert_eq!(r["data"]["acceptInvitation"]["next"], "DONE", "{r}");
}

#[tokio::test]
async fn an_in_person_invitation_gives_a_link_and_qr_code_and_sends_no_mail() {
    let app = demo_app().await;
    let admin = app.demo_token("admin@minatogawa.example").await;
    let r = app
        .gql(
            INVITE,
            json!({"r": "ADMIN", "d": 1}),
            Some(&admin),
            Some("minatogawa"),
        )
        .await;
    let inv = &r["data"]["inviteMember"];
    let link = inv["link"].as_str().unwrap_or_else(|| panic!("{r}"));
    assert!(link.starts_with(&format!("{PUBLIC_URL}/invite/")), "{link}");
    let token = token_in_link(link, "/invite/");
    let svg = inv["qrSvg"].as_str().unwrap();
    assert!(svg.starts_with("<svg") && !svg.contains("<script"), "{svg}");
    assert!(inv["email"].is_null());
    let expires: chrono::DateTime<chrono::Utc> =
        inv["expiresAt"].as_str().unwrap().parse().unwrap();
    let hours = (expires - chrono::Utc::now()).num_minutes() as f64 / 60.0;
    assert!((23.0..=24.0).contains(&hours), "{hours}");

    // Listed for administrators, without the link (only its hash is kept).
    let r = app
        .gql(LIST, json!({}), Some(&admin), Some("minatogawa"))
        .await;
    let listed = r["data"]["invitations"].as_array().unwrap();
    assert_eq!(listed.len(), 1, "{r}");
    assert!(listed[0]["link"].is_null());
    let stored: Vec<u8> = sqlx::query_scalar("SELECT token_hash FROM core.invitations")
        .fetch_one(app.db.db.pool())
        .await
        .unwrap();
    assert_eq!(stored, musubi_auth::token::hash_token(&token).to_vec());

    let r = app.gql(PREVIEW, json!({"t": token}), None, None).await;
    assert!(r["data"]["invitation"]["email"].is_null(), "{r}");
    assert_eq!(r["data"]["invitation"]["role"], "ADMIN");
    let email = unique_address("new-admin");
    let mut input = new_nurse(NEW_PASSWORD);
    input["email"] = json!(email);
    let r = app
        .gql(ACCEPT, json!({"t": token, "i": input}), None, None)
        .await;
    assert_eq!(r["data"]["acceptInvitation"]["next"], "DONE", "{r}");
    let new_admin = r["data"]["acceptInvitation"]["token"].as_str().unwrap();
    // They are an administrator now.
    let r = app
        .gql(LIST, json!({}), Some(new_admin), Some("minatogawa"))
        .await;
    assert_eq!(r["data"]["invitations"], json!([]), "{r}");

    assert_no_mail_containing(&token).await;
    assert!(mails_to(&email).is_empty());
}

#[tokio::test]
async fn an_association_requiring_a_second_factor_sends_the_new_member_to_enrolment() {
    let app = demo_app().await;
    let admin = app.demo_token("admin@minatogawa.example").await;
    let r = app
        .gql(
            "mutation { updateAssociationSettings(input: {requireSecondFactor: true, sessionIdleMinutes: 30, sessionAbsoluteHours: 8, auditRetentionYears: 5}) { requireSecondFactor } }",
            json!({}),
            Some(&admin),
            Some("minatogawa"),
        )
        .await;
    assert!(r["errors"].is_null(), "{r}");
    let r = app
        .gql(
            INVITE,
            json!({"r": "MEMBER"}),
            Some(&admin),
            Some("minatogawa"),
        )
        .await;
    let token = token_in_link(
        r["data"]["inviteMember"]["link"].as_str().unwrap(),
        "/invite/",
    );
    let mut input = new_nurse(NEW_PASSWORD);
    input["email"] = json!(unique_address("enrol"));
    let r = app
        .gql(ACCEPT, json!({"t": token, "i": input}), None, None)
        .await;
    assert_eq!(
        r["data"]["acceptInvitation"]["next"], "ENROL_SECOND_FACTOR",
        "{r}"
    );
    // The half session opens nothing else.
    let half = r["data"]["acceptInvitation"]["token"].as_str().unwrap();
    let r = app
        .gql("{ me { name } }", json!({}), Some(half), None)
        .await;
    assert_eq!(error_codes(&r), vec!["UNAUTHENTICATED"], "{r}");
}

#[tokio::test]
async fn expired_used_revoked_and_unknown_links_are_invalid_alike() {
    let app = demo_app().await;
    let admin = app.demo_token("admin@minatogawa.example").await;
    let mut made = Vec::new();
    for _ in 0..3 {
        let r = app
            .gql(
                INVITE,
                json!({"r": "MEMBER"}),
                Some(&admin),
                Some("minatogawa"),
            )
            .await;
        let inv = &r["data"]["inviteMember"];
        made.push((
            inv["id"].as_str().unwrap().to_owned(),
            token_in_link(inv["link"].as_str().unwrap(), "/invite/"),
        ));
    }
    let (expired_id, expired) = &made[0];
    let (_, used) = &made[1];
    let (revoked_id, revoked) = &made[2];
    sqlx::query(
        "UPDATE core.invitations SET expires_at = now() - interval '1 minute' WHERE id = $1",
    )
    .bind(uuid::Uuid::parse_str(expired_id).unwrap())
    .execute(app.db.db.pool())
    .await
    .unwrap();
    let mut input = new_nurse(NEW_PASSWORD);
    input["email"] = json!(unique_address("used"));
    let r = app
        .gql(ACCEPT, json!({"t": used, "i": input}), None, None)
        .await;
    assert_eq!(r["data"]["acceptInvitation"]["next"], "DONE", "{r}");
    let r = app
        .gql(
            REVOKE,
            json!({"id": revoked_id}),
            Some(&admin),
            Some("minatogawa"),
        )
        .await;
    assert_eq!(r["data"]["revokeInvitation"], true, "{r}");
    // Revoking again, or an expired one: nothing pending by that id.
    for id in [revoked_id, expired_id] {
        let r = app
            .gql(REVOKE, json!({"id": id}), Some(&admin), Some("minatogawa"))
            .await;
        assert_eq!(error_codes(&r), vec!["NOT_FOUND"], "{r}");
    }
    let r = app
        .gql(LIST, json!({}), Some(&admin), Some("minatogawa"))
        .await;
    assert_eq!(r["data"]["invitations"], json!([]), "{r}");

    let unknown = musubi_auth::token::Token::generate().unwrap().into_string();
    let mut answers = Vec::new();
    for token in [expired, used, revoked, &unknown, &"not-a-token".to_owned()] {
        let mut input = new_nurse(NEW_PASSWORD);
        input["email"] = json!(unique_address("late"));
        let accept = app
            .gql(ACCEPT, json!({"t": token, "i": input}), None, None)
            .await;
        assert_eq!(error_codes(&accept), vec!["INVITATION_INVALID"], "{accept}");
        let preview = app.gql(PREVIEW, json!({"t": token}), None, None).await;
        assert_eq!(
            error_codes(&preview),
            vec!["INVITATION_INVALID"],
            "{preview}"
        );
        answers.push((strip_locations(accept), strip_locations(preview)));
    }
    assert!(answers.windows(2).all(|w| w[0] == w[1]), "{answers:?}");
    let accounts: i64 =
        sqlx::query_scalar("SELECT count(*) FROM core.users WHERE email LIKE 'late-%'")
            .fetch_one(app.db.db.pool())
            .await
            .unwrap();
    assert_eq!(accounts, 0);
}

#[tokio::test]
async fn invitation_input_is_checked() {
    let app = demo_app().await;
    let admin = app.demo_token("admin@minatogawa.example").await;
    let other_facility = facility_id(&app, "sakuradai", "さくら台総合病院").await;
    let cases = [
        (json!({"r": "MEMBER", "d": 0}), "expiresInDays"),
        (json!({"r": "MEMBER", "d": 31}), "expiresInDays"),
        (json!({"r": "MEMBER", "e": "not an address"}), "email"),
        (json!({"r": "MEMBER", "f": other_facility}), "facilityId"),
        (json!({"r": "MEMBER", "f": "garbage"}), "facilityId"),
    ];
    for (vars, field) in cases {
        let r = app
            .gql(INVITE, vars.clone(), Some(&admin), Some("minatogawa"))
            .await;
        assert_eq!(error_codes(&r), vec!["INVALID_INPUT"], "{vars}: {r}");
        assert_eq!(r["errors"][0]["extensions"]["field"], field, "{r}");
    }
    // An active member is not invited again.
    let r = app
        .gql(
            INVITE,
            json!({"r": "MEMBER", "e": "AOKI@minatogawa.example"}),
            Some(&admin),
            Some("minatogawa"),
        )
        .await;
    assert_eq!(error_codes(&r), vec!["ALREADY_MEMBER"], "{r}");
    let pending: i64 = sqlx::query_scalar("SELECT count(*) FROM core.invitations")
        .fetch_one(app.db.db.pool())
        .await
        .unwrap();
    assert_eq!(pending, 0);
}

#[tokio::test]
async fn non_admins_and_admins_of_other_associations_get_not_found() {
    let app = demo_app().await;
    let admin_a = app.demo_token("admin@minatogawa.example").await;
    let admin_b = app.demo_token("admin@sakuradai.example").await;
    let nurse_a = app.demo_token("aoki@minatogawa.example").await;
    let r = app
        .gql(
            INVITE,
            json!({"r": "MEMBER"}),
            Some(&admin_a),
            Some("minatogawa"),
        )
        .await;
    let id_a = r["data"]["inviteMember"]["id"].as_str().unwrap().to_owned();
    let r = app
        .gql(
            INVITE,
            json!({"r": "MEMBER"}),
            Some(&admin_b),
            Some("sakuradai"),
        )
        .await;
    let id_b = r["data"]["inviteMember"]["id"].as_str().unwrap().to_owned();

    let ops = |id: &str| {
        vec![
            (INVITE, json!({"r": "ADMIN", "e": unique_address("x")})),
            (INVITE, json!({"r": "ADMIN"})),
            (REVOKE, json!({"id": id})),
            (LIST, json!({})),
        ]
    };
    let before = app.denied_count("minatogawa").await;
    for (who, token) in [("member", &nurse_a), ("other admin", &admin_b)] {
        for (query, vars) in ops(&id_a) {
            let r = app.gql(query, vars, Some(token), Some("minatogawa")).await;
            assert_eq!(error_codes(&r), vec!["NOT_FOUND"], "{who} {query}: {r}");
            assert!(r["data"].is_null(), "{who} {query}: {r}");
        }
    }
    assert_eq!(app.denied_count("minatogawa").await - before, 8);

    // An admin revoking another association's invitation through their own: a missing one.
    let other = app
        .gql(
            REVOKE,
            json!({"id": id_b}),
            Some(&admin_a),
            Some("minatogawa"),
        )
        .await;
    let missing = app
        .gql(
            REVOKE,
            json!({"id": uuid::Uuid::new_v4().to_string()}),
            Some(&admin_a),
            Some("minatogawa"),
        )
        .await;
    let garbage = app
        .gql(
            REVOKE,
            json!({"id": "nope"}),
            Some(&admin_a),
            Some("minatogawa"),
        )
        .await;
    assert_eq!(error_codes(&other), vec!["NOT_FOUND"], "{other}");
    assert_eq!(strip_locations(other.clone()), strip_locations(missing));
    assert_eq!(strip_locations(other), strip_locations(garbage));
    // Both invitations still stand.
    let r = app
        .gql(LIST, json!({}), Some(&admin_b), Some("sakuradai"))
        .await;
    assert_eq!(r["data"]["invitations"][0]["id"], id_b.as_str(), "{r}");
    let r = app
        .gql(LIST, json!({}), Some(&admin_a), Some("minatogawa"))
        .await;
    assert_eq!(r["data"]["invitations"][0]["id"], id_a.as_str(), "{r}");
    // Signed out: UNAUTHENTICATED, not a leak.
    let r = app.gql(LIST, json!({}), None, Some("minatogawa")).await;
    assert_eq!(error_codes(&r), vec!["UNAUTHENTICATED"], "{r}");
}

// ---------------------------------------------------------------------------------------------
// Forgotten passwords

#[tokio::test]
async fn a_reset_link_works_once_ends_every_session_and_replaces_the_password() {
    let app = demo_app().await;
    let email = unique_address("forgetful");
    let old_password = "Wasureta-Pass-2025";
    create_account(&app, &email, old_password, "minatogawa").await;
    let r = app.sign_in(&email, old_password).await;
    let old_session = r["data"]["signIn"]["token"].as_str().unwrap().to_owned();

    let r = app
        .gql(REQUEST_RESET, json!({"e": email}), None, None)
        .await;
    assert_eq!(r, json!({"data": {"requestPasswordReset": true}}));
    let mail = first_mail_to(&email).await;
    assert!(
        mail.subject.contains("パスワードの再設定"),
        "{}",
        mail.subject
    );
    assert!(
        !mail.body.contains("中村"),
        "no names in mail: {}",
        mail.body
    );
    let token = token_in_link(&mail.body, &format!("{PUBLIC_URL}/reset/"));

    // The old session still works until the reset is done.
    let r = app
        .gql("{ me { name } }", json!({}), Some(&old_session), None)
        .await;
    assert_eq!(r["data"]["me"]["name"], "中村 一郎", "{r}");

    let r = app
        .gql(RESET, json!({"t": token, "p": "short"}), None, None)
        .await;
    assert_eq!(error_codes(&r), vec!["WEAK_PASSWORD"], "{r}");
    assert!(r["errors"][0]["extensions"]["reasons"]
        .as_array()
        .unwrap()
        .contains(&json!("TOO_SHORT")));
    let r = app
        .gql(RESET, json!({"t": token, "p": NEW_PASSWORD}), None, None)
        .await;
    assert_eq!(r, json!({"data": {"resetPassword": true}}));

    let r = app
        .gql("{ me { name } }", json!({}), Some(&old_session), None)
        .await;
    assert_eq!(error_codes(&r), vec!["UNAUTHENTICATED"], "{r}");
    let r = app.sign_in(&email, old_password).await;
    assert_eq!(error_codes(&r), vec!["INVALID_CREDENTIALS"], "{r}");
    let r = app.sign_in(&email, NEW_PASSWORD).await;
    assert_eq!(r["data"]["signIn"]["next"], "DONE", "{r}");

    let r = app
        .gql(
            RESET,
            json!({"t": token, "p": "Another-Pass-2027"}),
            None,
            None,
        )
        .await;
    assert_eq!(error_codes(&r), vec!["PASSWORD_RESET_INVALID"], "{r}");
    let actions = audit_actions(&app, "minatogawa").await;
    assert!(actions.contains(&"auth.password_reset_request".to_owned()));
    assert!(
        actions.contains(&"auth.password_reset".to_owned()),
        "{actions:?}"
    );
}

#[tokio::test]
async fn an_unknown_address_gets_the_same_answer_and_no_mail() {
    let app = demo_app().await;
    let known = unique_address("known");
    create_account(&app, &known, "Shitte-Iru-2025", "sakuradai").await;
    let unknown = unique_address("unknown");
    let a = app
        .gql(REQUEST_RESET, json!({"e": known}), None, None)
        .await;
    let b = app
        .gql(REQUEST_RESET, json!({"e": unknown}), None, None)
        .await;
    assert_eq!(a, b);
    assert_eq!(b, json!({"data": {"requestPasswordReset": true}}));
    let mail = first_mail_to(&known).await;
    assert_no_mail_containing(&unknown).await;

    // An expired link is refused like a used one.
    let token = token_in_link(&mail.body, "/reset/");
    sqlx::query("UPDATE core.password_resets SET expires_at = now() - interval '1 second'")
        .execute(app.db.db.pool())
        .await
        .unwrap();
    let r = app
        .gql(RESET, json!({"t": token, "p": NEW_PASSWORD}), None, None)
        .await;
    assert_eq!(error_codes(&r), vec!["PASSWORD_RESET_INVALID"], "{r}");
    let r = app
        .gql(
            RESET,
            json!({"t": "garbage", "p": NEW_PASSWORD}),
            None,
            None,
        )
        .await;
    assert_eq!(error_codes(&r), vec!["PASSWORD_RESET_INVALID"], "{r}");
}

#[tokio::test]
async fn reset_mails_to_one_address_are_limited_silently() {
    let app = demo_app().await;
    let email = unique_address("bombed");
    create_account(&app, &email, "Bakudan-Mail-2025", "minatogawa").await;
    let mut seen = HashSet::new();
    for _ in 0..5 {
        let r = app
            .gql(REQUEST_RESET, json!({"e": email}), None, None)
            .await;
        assert_eq!(r["data"]["requestPasswordReset"], true, "{r}");
        seen.insert(next_mail_to(&email, &seen).await.file);
    }
    // The sixth within the hour: the same answer, no mail.
    let r = app
        .gql(REQUEST_RESET, json!({"e": email}), None, None)
        .await;
    assert_eq!(r, json!({"data": {"requestPasswordReset": true}}));
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(mails_to(&email).len(), 5);
}
