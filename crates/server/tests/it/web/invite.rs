//! The invitation, forgotten-password and passkey pages, driven like a browser: forms with their
//! CSRF field, the passkey script's JSON calls with the `X-CSRF-Token` header, cookies kept
//! between requests, redirects followed by hand.
//!
//! Reset links: the services mail them and keep only their hash, and the default mailer writes
//! mail to the log, so a test cannot read one back. `tests/invitations.rs` already follows a
//! real mailed link through an SMTP server; here the link is made the way the services make it
//! (`Token::generate`, its hash stored with `musubi_db::password_reset::insert`), so the pages
//! can be tested without a mail server.

use axum::body::Body;
use data_encoding::BASE64URL_NOPAD as B64;
use http::header::{CACHE_CONTROL, REFERRER_POLICY};
use http::{Request, StatusCode};
use musubi_auth::token::Token;
use musubi_demo::DEMO_PASSWORD;
use musubi_domain::audit::RequestMeta;
use musubi_domain::invitations::InviteInput;
use musubi_domain::members::MemberRole;
use musubi_domain::sessions::SessionKind;
use musubi_domain::Actor;
use musubi_test_support::demo::{ADMIN, NURSE};
use musubi_test_support::web::{Browser, Page, DEFAULT_HOST};
use musubi_test_support::webauthn::Authenticator;
use musubi_test_support::{test_config, TestApp};
use serde_json::json;

const DOCTOR: &str = "kawamura@minatogawa.example";
const GOOD_PASSWORD: &str = "Houmon-Kango-2026!";
/// Where the passkey tests' browser is, and the server's public URL (the RP ID is its host).
const LOCALHOST: &str = "localhost:8080";

// --- The application and a browser -----------------------------------------------------------

/// The demo data at `public_url` (a host name): passkeys are available.
async fn demo_at(public_url: &str) -> TestApp {
    TestApp::demo_with_config(test_config(&[("MUSUBI_PUBLIC_URL", public_url)])).await
}

/// An in-person invitation to minatogawa made by its administrator: the link's token.
async fn invite_in_person(app: &TestApp) -> String {
    let services = app.services();
    let client = RequestMeta::default();
    let signed_in = services
        .sign_in(ADMIN, DEMO_PASSWORD, SessionKind::Api, &client)
        .await
        .unwrap();
    let admin = services
        .authenticate(&signed_in.token)
        .await
        .unwrap()
        .expect("the demo administrator is signed in");
    let tenant = services.resolve_tenant("minatogawa").await.unwrap();
    let input = InviteInput {
        email: None,
        role: MemberRole::Member,
        facility_id: None,
        expires_in_days: None,
    };
    let created = services
        .invite_member(&Actor::new(&admin, &tenant, &client), &input)
        .await
        .unwrap();
    let link = created
        .link
        .expect("in-person invitations return their link");
    let (_, token) = link.rsplit_once("/invite/").expect("an invitation link");
    token.to_owned()
}

/// A reset link for `email`, made as the services make one: only its hash is stored.
async fn reset_token_for(app: &TestApp, email: &str) -> String {
    let user_id = app.user_id(email).await;
    let token = Token::generate().unwrap();
    let expires_at = chrono::Utc::now() + chrono::Duration::minutes(30);
    musubi_db::password_reset::insert(app.db.db.pool(), &token.hash(), user_id, expires_at)
        .await
        .unwrap();
    token.into_string()
}

/// A browser on an iPhone, at `host`.
fn iphone_at(host: &'static str) -> Browser {
    Browser::at(host).with_header(
        "user-agent",
        "Mozilla/5.0 (iPhone; CPU iPhone OS 17_4 like Mac OS X)",
    )
}

fn iphone() -> Browser {
    iphone_at(DEFAULT_HOST)
}

/// Pages about a secret link never put their path in a `Referer` and are never cached.
fn assert_private(page: &Page) {
    assert_eq!(page.header(REFERRER_POLICY), "strict-origin");
    assert_eq!(page.header(CACHE_CONTROL), "no-store");
}

fn new_nurse<'a>(email: &'a str, password: &'a str) -> Vec<(&'static str, &'a str)> {
    vec![
        ("kind", "new"),
        ("email", email),
        ("name", "新井 みどり"),
        ("name_kana", "あらい みどり"),
        ("profession", "nurse"),
        ("password", password),
    ]
}

// --- Invitations -----------------------------------------------------------------------------

#[tokio::test]
async fn an_invited_nurse_joins_in_person_and_lands_on_home_signed_in() {
    let app = TestApp::demo().await;
    let token = invite_in_person(&app).await;
    let path = format!("/invite/{token}");
    let mut b = iphone();

    let page = b.get(&app, &path).await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.body);
    assert_private(&page);
    assert!(page.body.contains("みなと川医師会からの招待"));
    assert!(page
        .body
        .contains("<option value=\"nurse\">看護師</option>"));
    assert!(page.body.contains("13文字以上"), "the rules are explained");

    // A weak password: each rule it breaks is said in Japanese next to the field; nothing is
    // created, and what was typed (but the password) comes back.
    let email = "arai@minatogawa.example";
    let csrf = page.csrf();
    let mut fields = vec![("csrf", csrf.as_str())];
    fields.extend(new_nurse(email, "aaaa"));
    let weak = b.post(&app, &path, &fields).await;
    assert_eq!(weak.status, StatusCode::BAD_REQUEST, "{}", weak.body);
    assert_private(&weak);
    assert!(
        weak.body.contains("id=\"password-problems\""),
        "{}",
        weak.body
    );
    assert!(weak.body.contains("短すぎます。13文字以上にしてください"));
    assert!(weak.body.contains("文字の種類が足りません"));
    assert!(weak.body.contains("value=\"新井 みどり\""));
    assert!(weak.body.contains("<option value=\"nurse\" selected>"));
    assert!(b.session().is_none());

    // Left empty: every field says so at once.
    let empty = b
        .post(
            &app,
            &path,
            &[("csrf", &csrf), ("kind", "new"), ("email", email)],
        )
        .await;
    assert_eq!(empty.status, StatusCode::BAD_REQUEST);
    for id in [
        "name-error",
        "name_kana-error",
        "profession-error",
        "password-error",
    ] {
        assert!(empty.body.contains(&format!("id=\"{id}\"")), "{id}");
    }

    let mut fields = vec![("csrf", csrf.as_str())];
    fields.extend(new_nurse(email, GOOD_PASSWORD));
    let joined = b.post(&app, &path, &fields).await;
    assert_eq!(joined.status, StatusCode::SEE_OTHER, "{}", joined.body);
    assert_eq!(joined.location(), "/home");
    assert!(b.session().is_some(), "signed in like /signin does");

    let home = b.get(&app, "/home").await;
    assert_eq!(home.status, StatusCode::OK);
    assert!(home.body.contains("新井 みどり"), "{}", home.body);
    assert!(home.body.contains("みなと川医師会"));

    // The link works once.
    let again = iphone().get(&app, &path).await;
    assert_eq!(again.status, StatusCode::GONE);
    assert_private(&again);
    assert!(again
        .body
        .contains("この招待リンクは使えません（期限切れ・使用済み・取り消し）"));
}

#[tokio::test]
async fn an_unusable_invitation_link_shows_a_friendly_page() {
    let app = TestApp::demo().await;
    let unknown = Token::generate().unwrap().into_string();
    for path in [
        format!("/invite/{unknown}"),
        "/invite/not-a-token".to_owned(),
    ] {
        let page = iphone().get(&app, &path).await;
        assert_eq!(page.status, StatusCode::GONE, "{path}");
        assert_private(&page);
        assert!(page.body.contains("この招待リンクは使えません"));
        assert!(page.body.contains("新しい招待をお願いしてください"));
        assert!(page.body.contains("href=\"/signin\""));
    }
    // Sending the form to it changes nothing and says the same.
    let mut b = iphone();
    let csrf = b.get(&app, "/signin").await.csrf();
    let mut fields = vec![("csrf", csrf.as_str())];
    fields.extend(new_nurse("ghost@minatogawa.example", GOOD_PASSWORD));
    let page = b.post(&app, &format!("/invite/{unknown}"), &fields).await;
    assert_eq!(page.status, StatusCode::GONE);
    assert!(b.session().is_none());
}

#[tokio::test]
async fn a_physician_says_clinic_or_hospital_and_an_existing_account_joins_with_its_password() {
    let app = TestApp::demo().await;
    let token = invite_in_person(&app).await;
    let path = format!("/invite/{token}");
    let mut b = iphone();
    let fields = [
        ("kind", "new"),
        ("email", "shinkawa@minatogawa.example"),
        ("name", "新川 医"),
        ("name_kana", "しんかわ い"),
        ("profession", "physician"),
        ("password", GOOD_PASSWORD),
    ];
    let page = b.submit(&app, &path, &path, &fields).await;
    assert_eq!(page.status, StatusCode::BAD_REQUEST);
    assert!(
        page.body.contains("id=\"doctor_kind-error\""),
        "{}",
        page.body
    );

    // Someone with an account joins with that account's password (the form under 「すでに結び
    // のアカウントをお持ちの方」).
    let page = b
        .submit(
            &app,
            &path,
            &path,
            &[
                ("kind", "existing"),
                ("email", NURSE),
                ("password", "wrong-Password-1"),
            ],
        )
        .await;
    assert_eq!(page.status, StatusCode::UNAUTHORIZED, "{}", page.body);
    assert!(page.body.contains("パスワードがちがいます"));
    let page = b
        .submit(
            &app,
            &path,
            &path,
            &[
                ("kind", "existing"),
                ("email", NURSE),
                ("password", DEMO_PASSWORD),
            ],
        )
        .await;
    // Already a member of minatogawa: said plainly, the invitation stays usable.
    assert_eq!(page.status, StatusCode::CONFLICT, "{}", page.body);
    assert!(page.body.contains("すでにこの医師会のメンバーです"));
    assert_eq!(b.get(&app, &path).await.status, StatusCode::OK);
}

// --- Forgotten passwords ---------------------------------------------------------------------

#[tokio::test]
async fn asking_for_a_reset_answers_the_same_for_known_and_unknown_addresses() {
    let app = TestApp::demo().await;
    let mut b = iphone();
    let signin = b.get(&app, "/signin").await;
    assert!(signin.body.contains("href=\"/reset\""));
    assert!(signin.body.contains("パスワードを忘れた場合"));

    let form = b.get(&app, "/reset").await;
    assert_eq!(form.status, StatusCode::OK);
    assert!(form.body.contains("action=\"/reset\""));

    let known = b
        .submit(&app, "/reset", "/reset", &[("email", NURSE)])
        .await;
    let unknown = b
        .submit(
            &app,
            "/reset",
            "/reset",
            &[("email", "nobody@minatogawa.example")],
        )
        .await;
    assert_eq!(known.status, StatusCode::OK);
    assert_eq!(unknown.status, StatusCode::OK);
    assert!(known.body.contains("メールを送りました"));
    assert_eq!(known.body, unknown.body, "word for word the same");

    let empty = b.submit(&app, "/reset", "/reset", &[("email", " ")]).await;
    assert_eq!(empty.status, StatusCode::BAD_REQUEST);
    assert!(empty.body.contains("メールアドレスを入力してください"));
}

#[tokio::test]
async fn a_reset_link_sets_a_new_password_signs_out_everywhere_and_works_once() {
    let app = TestApp::demo().await;
    let mut phone = iphone();
    assert_eq!(
        phone.sign_in(&app, NURSE, DEMO_PASSWORD).await.location(),
        "/home"
    );

    let token = reset_token_for(&app, NURSE).await;
    let path = format!("/reset/{token}");
    let mut b = iphone();
    let page = b.get(&app, &path).await;
    assert_eq!(page.status, StatusCode::OK);
    assert_private(&page);
    assert!(page.body.contains("autocomplete=\"new-password\""));
    assert!(page.body.contains("13文字以上"));

    let weak = b
        .submit(&app, &path, &path, &[("password", "password")])
        .await;
    assert_eq!(weak.status, StatusCode::BAD_REQUEST, "{}", weak.body);
    assert_private(&weak);
    assert!(weak.body.contains("id=\"password-problems\""));
    assert!(weak.body.contains("短すぎます"));

    let done = b
        .submit(&app, &path, &path, &[("password", GOOD_PASSWORD)])
        .await;
    assert_eq!(done.status, StatusCode::OK, "{}", done.body);
    assert_private(&done);
    assert!(done.body.contains("新しいパスワードでログインしてください"));
    assert!(done.body.contains("href=\"/signin\""));

    // Every session ended; the old password is gone, the new one works.
    assert_eq!(phone.get(&app, "/home").await.status, StatusCode::SEE_OTHER);
    let old = iphone().sign_in(&app, NURSE, DEMO_PASSWORD).await;
    assert_eq!(old.status, StatusCode::UNAUTHORIZED);
    let new = iphone().sign_in(&app, NURSE, GOOD_PASSWORD).await;
    assert_eq!(new.location(), "/home");

    // The link worked once.
    let again = b
        .submit(&app, &path, &path, &[("password", "Another-Pass-2027")])
        .await;
    assert_eq!(again.status, StatusCode::GONE);
    assert!(again.body.contains("このリンクは使えません"));
    assert!(again.body.contains("href=\"/reset\""));
}

// --- Passkeys --------------------------------------------------------------------------------

#[tokio::test]
async fn passkey_calls_need_the_csrf_header_and_say_when_passkeys_are_unavailable() {
    let app = TestApp::demo().await; // reached by an IP address: no passkeys
    let mut b = iphone();
    let page = b.get(&app, "/signin").await;
    assert!(
        !page.body.contains("data-passkey-signin"),
        "no button to offer"
    );
    let csrf = page.csrf();

    let refused = b
        .call(&app, "/signin/passkey/start", None, &json!({}))
        .await;
    assert_eq!(refused.status, StatusCode::FORBIDDEN);
    let refused = b
        .call(
            &app,
            "/signin/passkey/start",
            Some("not-the-token"),
            &json!({}),
        )
        .await;
    assert_eq!(refused.status, StatusCode::FORBIDDEN);
    // A cross-site page cannot send the right Origin.
    let req = Request::post("/signin/passkey/start")
        .header("origin", "https://evil.example")
        .header("content-type", "application/json")
        .header("x-csrf-token", &csrf);
    let refused = b.send(&app, req, Body::from("{}")).await;
    assert_eq!(refused.status, StatusCode::FORBIDDEN);

    let unavailable = b
        .call(&app, "/signin/passkey/start", Some(&csrf), &json!({}))
        .await;
    assert_eq!(unavailable.status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(unavailable.json()["error"]["code"], "PASSKEYS_UNAVAILABLE");

    assert_eq!(
        b.sign_in(&app, DOCTOR, DEMO_PASSWORD).await.location(),
        "/home"
    );
    let security = b.get(&app, "/me/security").await;
    assert!(security.body.contains("data-passkey-unavailable"));
    assert!(!security.body.contains("data-passkey-register"));

    // Signed out, registering answers in JSON, not with the sign-in page.
    let mut stranger = iphone();
    let csrf = stranger.get(&app, "/signin").await.csrf();
    let r = stranger
        .call(&app, "/me/passkeys/start", Some(&csrf), &json!({}))
        .await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    assert_eq!(r.json()["error"]["code"], "UNAUTHENTICATED");
}

#[tokio::test]
async fn a_doctor_registers_a_passkey_on_the_security_page_and_signs_in_with_it() {
    let app = demo_at(&format!("http://{LOCALHOST}")).await;
    let mut b = iphone_at(LOCALHOST);
    assert_eq!(
        b.sign_in(&app, DOCTOR, DEMO_PASSWORD).await.location(),
        "/home"
    );

    let security = b.get(&app, "/me/security").await;
    assert!(security.body.contains("data-passkey-register hidden"));
    assert!(security.body.contains("パスキーは、まだ登録していません。"));
    let csrf = security.csrf();
    let started = b
        .call(&app, "/me/passkeys/start", Some(&csrf), &json!({}))
        .await;
    assert_eq!(started.status, StatusCode::OK, "{}", started.body);
    assert_eq!(started.header(CACHE_CONTROL), "no-store");
    let started = started.json();
    let mut phone = Authenticator::new("kawamura's phone");
    let credential = phone.register(&started["options"]);
    let finished = b
        .call(
            &app,
            "/me/passkeys/finish",
            Some(&csrf),
            &json!({"ceremonyId": started["ceremonyId"], "credential": credential}),
        )
        .await;
    assert_eq!(finished.status, StatusCode::OK, "{}", finished.body);
    let finished = finished.json();
    assert_eq!(finished["passkey"]["name"], "iPhone");
    let redirect = finished["redirect"].as_str().unwrap().to_owned();
    let security = b.get(&app, &redirect).await;
    assert!(security.body.contains("パスキーを登録しました"));
    let id = B64.encode(&phone.credential_id);
    assert!(security
        .body
        .contains(&format!("action=\"/me/passkeys/{id}/delete\"")));

    // Signed out, the passkey alone signs in: a full session, straight to `next`.
    let mut fresh = iphone_at(LOCALHOST);
    let signin = fresh.get(&app, "/signin?next=/me/sessions").await;
    assert!(signin.body.contains("data-passkey-signin hidden"));
    let csrf = signin.csrf();
    let started = fresh
        .call(&app, "/signin/passkey/start", Some(&csrf), &json!({}))
        .await
        .json();
    let assertion = phone.assert(&started["options"]);
    let done = fresh
        .call(
            &app,
            "/signin/passkey/finish",
            Some(&csrf),
            &json!({"ceremonyId": started["ceremonyId"], "credential": assertion, "next": "/me/sessions"}),
        )
        .await;
    assert_eq!(done.status, StatusCode::OK, "{}", done.body);
    assert_eq!(done.json()["redirect"], "/me/sessions");
    assert!(fresh.session().is_some());
    assert_ne!(
        fresh.cookies.get("musubi_csrf").map(String::as_str),
        Some(csrf.as_str()),
        "a new CSRF token after signing in"
    );
    let home = fresh.get(&app, "/home").await;
    assert_eq!(home.status, StatusCode::OK);
    assert!(home.body.contains("川村 健一"));

    // The same answer again (a replay) is refused without saying why.
    let replay = iphone_at(LOCALHOST)
        .call(
            &app,
            "/signin/passkey/finish",
            Some(&csrf),
            &json!({"ceremonyId": started["ceremonyId"], "credential": assertion}),
        )
        .await;
    assert_eq!(
        replay.status,
        StatusCode::FORBIDDEN,
        "no CSRF cookie in that browser"
    );
    let csrf = fresh.get(&app, "/me/security").await.csrf();
    let replay = fresh
        .call(
            &app,
            "/signin/passkey/finish",
            Some(&csrf),
            &json!({"ceremonyId": started["ceremonyId"], "credential": assertion}),
        )
        .await;
    assert_eq!(replay.status, StatusCode::UNAUTHORIZED);
    assert_eq!(replay.json()["error"]["code"], "INVALID_CREDENTIALS");

    // Removing it (a plain form) takes it off the list.
    let removed = fresh
        .post(
            &app,
            &format!("/me/passkeys/{id}/delete"),
            &[("csrf", &csrf)],
        )
        .await;
    assert_eq!(removed.status, StatusCode::SEE_OTHER);
    let security = fresh.get(&app, removed.location()).await;
    assert!(security.body.contains("パスキーを削除しました"));
    assert!(!security.body.contains("/delete\""));
}
