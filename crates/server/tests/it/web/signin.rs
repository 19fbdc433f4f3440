//! The sign-in pages, the signed-in home page and "my sessions", driven like a browser: forms
//! with their CSRF field, cookies kept between requests, redirects followed by hand.

use axum::body::Body;
use http::header::CACHE_CONTROL;
use http::{Request, StatusCode};
use musubi_demo::DEMO_PASSWORD;
use musubi_test_support::demo::{CARE_MANAGER, NURSE};
use musubi_test_support::web::{form, Browser, Page};
use musubi_test_support::{totp_code, TestApp};

const DOCTOR: &str = "kawamura@minatogawa.example";

async fn session_count(app: &TestApp, email: &str) -> i64 {
    sqlx::query_scalar(
        "SELECT count(*) FROM core.sessions s JOIN core.users u ON u.id = s.user_id \
         WHERE u.email = $1",
    )
    .bind(email)
    .fetch_one(app.db.db.pool())
    .await
    .unwrap()
}

/// The ids in the page's "end this session" forms.
fn session_ids(body: &str) -> Vec<String> {
    body.match_indices("action=\"/me/sessions/")
        .filter_map(|(i, m)| {
            let rest = &body[i + m.len()..];
            let id = &rest[..rest.find('/')?];
            (id != "revoke-all\"").then(|| id.to_owned())
        })
        .filter(|id| id.len() == 36)
        .collect()
}

/// The key shown for typing by hand, without its spaces and markup.
fn shown_key(body: &str) -> String {
    let at = body.find("id=\"secret-key\">").expect("key on the page") + 16;
    let end = body[at..].find("</code>").unwrap();
    let mut key = String::new();
    let mut in_tag = false;
    for c in body[at..at + end].chars() {
        match c {
            '<' => in_tag = true,
            '>' => in_tag = false,
            c if !in_tag && c.is_ascii_alphanumeric() => key.push(c),
            _ => {}
        }
    }
    key
}

/// The code an authenticator app shows `steps_ahead` steps from now (0 = now). The next
/// step's code is accepted (clock skew) and is never the one just used.
fn code_for(key: &str, steps_ahead: u64) -> String {
    totp_code(&data_encoding_base32(key), steps_ahead as i64)
}

/// RFC 4648 base32 without padding (what the page shows), decoded by hand to keep the test
/// free of another dependency.
fn data_encoding_base32(key: &str) -> Vec<u8> {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
    let mut bits: u64 = 0;
    let mut count = 0;
    let mut out = Vec::new();
    for c in key.bytes() {
        let v = ALPHABET.iter().position(|a| *a == c).expect("base32") as u64;
        bits = (bits << 5) | v;
        count += 5;
        if count >= 8 {
            count -= 8;
            out.push((bits >> count) as u8);
            bits &= (1 << count) - 1;
        }
    }
    out
}

fn recovery_codes(body: &str) -> Vec<String> {
    body.match_indices("<li><code>")
        .map(|(i, m)| {
            let rest = &body[i + m.len()..];
            rest[..rest.find('<').unwrap()].to_owned()
        })
        .collect()
}

#[tokio::test]
async fn signing_in_sets_a_session_cookie_and_shows_the_home_page() {
    let app = TestApp::demo().await;
    let mut b = Browser::default();
    let form = b.get(&app, "/signin").await;
    assert_eq!(form.status, StatusCode::OK);
    assert!(form.body.contains("autocomplete=\"username\""));
    assert!(form.body.contains("autocomplete=\"current-password\""));
    assert!(form.body.contains("inputmode=\"email\""));
    let csrf_cookie = form.set_cookie("musubi_csrf").expect("a CSRF cookie");
    assert!(csrf_cookie.contains("HttpOnly") && csrf_cookie.contains("SameSite=Strict"));

    let res = b
        .post(
            &app,
            "/signin",
            &[
                ("csrf", &form.csrf()),
                ("email", NURSE),
                ("password", DEMO_PASSWORD),
            ],
        )
        .await;
    assert_eq!(res.status, StatusCode::SEE_OTHER, "{}", res.body);
    assert_eq!(res.location(), "/home");
    let cookie = res.set_cookie("musubi_session").expect("a session cookie");
    assert!(cookie.contains("; Path=/"), "{cookie}");
    assert!(cookie.contains("; HttpOnly"), "{cookie}");
    assert!(cookie.contains("; SameSite=Lax"), "{cookie}");
    assert!(
        !cookie.contains("Max-Age"),
        "a browser-session cookie: {cookie}"
    );
    assert!(
        !cookie.contains("Secure"),
        "plain-HTTP development: {cookie}"
    );
    // A new CSRF token once signed in.
    assert!(res.set_cookie("musubi_csrf").is_some());

    let home = b.get(&app, "/home").await;
    assert_eq!(home.status, StatusCode::OK);
    assert_eq!(home.headers[CACHE_CONTROL], "no-store");
    for text in [
        "青木 さくら",
        "みなと川医師会",
        "訪問看護ステーションみなと",
    ] {
        assert!(home.body.contains(text), "home shows {text}");
    }
    assert!(home.body.contains("action=\"/signout\""));
    assert!(home.body.contains("href=\"/me/sessions\""));
    assert!(home.body.contains("href=\"/me/security\""));
    assert_eq!(session_count(&app, NURSE).await, 1);
}

#[tokio::test]
async fn behind_an_https_proxy_the_cookies_are_secure() {
    let app = TestApp::demo().await;
    let mut b = Browser {
        extra: vec![("x-forwarded-proto", "https".into())],
        ..Browser::default()
    };
    let res = b.sign_in(&app, NURSE, DEMO_PASSWORD).await;
    assert_eq!(res.status, StatusCode::SEE_OTHER);
    for name in ["musubi_session", "musubi_csrf"] {
        let c = res.set_cookie(name).unwrap();
        assert!(c.ends_with("; Secure"), "{c}");
    }
}

#[tokio::test]
async fn a_wrong_password_and_an_unknown_address_get_the_same_page() {
    let app = TestApp::demo().await;
    let mut b = Browser::default();
    let token = b.get(&app, "/signin").await.csrf();
    let attempt = |email: &'static str, password: &'static str| {
        let mut b = b.clone();
        let token = token.clone();
        let app = &app;
        async move {
            b.post(
                app,
                "/signin",
                &[("csrf", &token), ("email", email), ("password", password)],
            )
            .await
        }
    };
    let wrong_password = attempt(NURSE, "not-the-password-1").await;
    let unknown = attempt("nobody@minatogawa.example", "not-the-password-1").await;
    for res in [&wrong_password, &unknown] {
        assert_eq!(res.status, StatusCode::UNAUTHORIZED);
        assert!(res.set_cookie("musubi_session").is_none());
        assert!(res.body.contains("メールアドレスかパスワードがちがいます"));
        assert!(
            !res.body.contains("not-the-password-1"),
            "never echo a password"
        );
    }
    // The typed address comes back in the form.
    assert!(wrong_password.body.contains(&format!("value=\"{NURSE}\"")));
    let normalise = |page: &Page, email: &str| {
        page.body
            .replace(&token, "TOKEN")
            .replace(&page.csrf(), "TOKEN")
            .replace(email, "EMAIL")
    };
    assert_eq!(
        normalise(&wrong_password, NURSE),
        normalise(&unknown, "nobody@minatogawa.example")
    );
    assert_eq!(session_count(&app, NURSE).await, 0);
}

#[tokio::test]
async fn forms_without_the_right_csrf_token_are_refused_and_change_nothing() {
    let app = TestApp::demo().await;
    let mut b = Browser::default();
    let token = b.get(&app, "/signin").await.csrf();
    let creds = [("email", NURSE), ("password", DEMO_PASSWORD)];

    // No token field.
    let res = b.post(&app, "/signin", &creds).await;
    assert_eq!(res.status, StatusCode::FORBIDDEN);
    assert!(res.body.contains("もう一度お試しください"), "{}", res.body);
    // A wrong token.
    let mut wrong = vec![("csrf", "A".repeat(43))];
    wrong.extend(creds.iter().map(|(k, v)| (*k, (*v).to_owned())));
    let fields: Vec<(&str, &str)> = wrong.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let res = b.post(&app, "/signin", &fields).await;
    assert_eq!(res.status, StatusCode::FORBIDDEN);
    // The right token but no cookie (another site's form cannot send the Strict cookie).
    let mut no_cookie = Browser::default();
    let mut with_token = vec![("csrf", token.as_str())];
    with_token.extend_from_slice(&creds);
    let res = no_cookie.post(&app, "/signin", &with_token).await;
    assert_eq!(res.status, StatusCode::FORBIDDEN);
    // The right token and cookie, but posted from another site.
    let req = Request::post("/signin")
        .header("origin", "https://evil.example")
        .header("content-type", "application/x-www-form-urlencoded");
    let res = b.send(&app, req, Body::from(form(&with_token))).await;
    assert_eq!(res.status, StatusCode::FORBIDDEN);
    // Not a form at all.
    let req = Request::post("/signin").header("content-type", "application/json");
    let res = b.send(&app, req, Body::from("{}")).await;
    assert_eq!(res.status, StatusCode::FORBIDDEN);

    assert!(b.session().is_none());
    assert_eq!(session_count(&app, NURSE).await, 0);

    // The same form with its token goes through.
    let res = b.post(&app, "/signin", &with_token).await;
    assert_eq!(res.status, StatusCode::SEE_OTHER);
    assert_eq!(session_count(&app, NURSE).await, 1);

    // Signed in, a forged sign-out does nothing either.
    let res = b.post(&app, "/signout", &[("csrf", "forged")]).await;
    assert_eq!(res.status, StatusCode::FORBIDDEN);
    assert_eq!(b.get(&app, "/home").await.status, StatusCode::OK);
}

#[tokio::test]
async fn home_sends_visitors_to_sign_in_and_back() {
    let app = TestApp::demo().await;
    let mut b = Browser::default();
    let res = b.get(&app, "/home").await;
    assert_eq!(res.status, StatusCode::SEE_OTHER);
    assert_eq!(res.location(), "/signin?next=/home");

    let res = b.get(&app, "/me/sessions").await;
    assert_eq!(res.location(), "/signin?next=/me/sessions");
    let page = b.get(&app, "/signin?next=/me/sessions").await;
    assert!(page.body.contains("name=\"next\" value=\"/me/sessions\""));
    let res = b
        .post(
            &app,
            "/signin",
            &[
                ("csrf", &page.csrf()),
                ("email", NURSE),
                ("password", DEMO_PASSWORD),
                ("next", "/me/sessions"),
            ],
        )
        .await;
    assert_eq!(res.location(), "/me/sessions");

    // Somewhere else than this site is never followed.
    let mut other = Browser::default();
    let page = other.get(&app, "/signin?next=https://evil.example/").await;
    assert!(!page.body.contains("evil.example"));
    let res = other
        .post(
            &app,
            "/signin",
            &[
                ("csrf", &page.csrf()),
                ("email", NURSE),
                ("password", DEMO_PASSWORD),
                ("next", "//evil.example/"),
            ],
        )
        .await;
    assert_eq!(res.location(), "/home");

    // Signed in, the sign-in page goes straight home.
    assert_eq!(other.get(&app, "/signin").await.location(), "/home");
}

#[tokio::test]
async fn the_header_shows_the_name_when_signed_in_and_sign_in_when_not() {
    let app = TestApp::demo().await;
    let mut visitor = Browser::default();
    let landing = visitor.get(&app, "/").await;
    assert!(landing.body.contains("href=\"/signin\""));
    assert!(!landing.body.contains("action=\"/signout\""));

    let mut b = Browser::signed_in(&app, NURSE).await;
    let landing = b.get(&app, "/").await;
    assert!(
        landing.body.contains("青木 さくら さん"),
        "{}",
        landing.body
    );
    assert!(landing.body.contains("action=\"/signout\""));
}

#[tokio::test]
async fn signing_out_ends_the_session() {
    let app = TestApp::demo().await;
    let mut b = Browser::signed_in(&app, NURSE).await;
    let old = b.session().unwrap().to_owned();
    let res = b.submit(&app, "/home", "/signout", &[]).await;
    assert_eq!(res.status, StatusCode::SEE_OTHER);
    assert_eq!(res.location(), "/");
    assert!(res
        .set_cookie("musubi_session")
        .unwrap()
        .contains("Max-Age=0"));
    assert!(b.session().is_none());
    // The old cookie is worth nothing now.
    b.cookies.insert("musubi_session".into(), old);
    assert_eq!(b.get(&app, "/home").await.status, StatusCode::SEE_OTHER);
}

#[tokio::test]
async fn ending_another_session_signs_that_browser_out() {
    let app = TestApp::demo().await;
    let mut phone = Browser::signed_in(&app, NURSE).await;
    let mut office = Browser {
        extra: vec![(
            "user-agent",
            "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) \
             Chrome/124.0 Safari/537.36"
                .into(),
        )],
        ..Browser::default()
    };
    assert_eq!(
        office.sign_in(&app, NURSE, DEMO_PASSWORD).await.location(),
        "/home"
    );

    let list = phone.get(&app, "/me/sessions").await;
    assert_eq!(list.status, StatusCode::OK);
    assert!(list.body.contains("ログイン中の端末"));
    assert_eq!(
        list.body.matches("この端末</span>").count(),
        1,
        "{}",
        list.body
    );
    assert!(list.body.contains("すべての端末からログアウト"));
    let ids = session_ids(&list.body);
    assert_eq!(ids.len(), 2, "{ids:?}");

    // The office PC's session is the one not marked as this device.
    let office_list = office.get(&app, "/me/sessions").await;
    assert!(
        office_list.body.contains("Windows / Chrome"),
        "{}",
        office_list.body
    );
    let current_marker = "session--current";
    let office_id = ids
        .iter()
        .find(|id| {
            let at = list.body.find(id.as_str()).unwrap();
            let card_start = list.body[..at].rfind("<li class=\"card session").unwrap();
            !list.body[card_start..at].contains(current_marker)
        })
        .unwrap()
        .clone();
    let res = phone
        .post(
            &app,
            &format!("/me/sessions/{office_id}/revoke"),
            &[("csrf", &list.csrf())],
        )
        .await;
    assert_eq!(res.status, StatusCode::SEE_OTHER);
    assert_eq!(res.location(), "/me/sessions?ended=1");
    let after = phone.get(&app, "/me/sessions?ended=1").await;
    assert_eq!(session_ids(&after.body).len(), 1);
    assert!(after.body.contains("その端末をログアウトさせました"));

    let res = office.get(&app, "/home").await;
    assert_eq!(
        res.status,
        StatusCode::SEE_OTHER,
        "the office PC is signed out"
    );
    assert_eq!(phone.get(&app, "/home").await.status, StatusCode::OK);
}

#[tokio::test]
async fn another_persons_session_cannot_be_ended() {
    let app = TestApp::demo().await;
    let mut doctor = Browser::signed_in(&app, DOCTOR).await;
    let doctors_id = session_ids(&doctor.get(&app, "/me/sessions").await.body)[0].clone();
    let mut nurse = Browser::signed_in(&app, NURSE).await;
    let res = nurse
        .submit(
            &app,
            "/me/sessions",
            &format!("/me/sessions/{doctors_id}/revoke"),
            &[],
        )
        .await;
    assert_eq!(res.status, StatusCode::SEE_OTHER);
    assert_eq!(doctor.get(&app, "/home").await.status, StatusCode::OK);
}

#[tokio::test]
async fn signing_out_everywhere_ends_every_session() {
    let app = TestApp::demo().await;
    let mut phone = Browser::signed_in(&app, NURSE).await;
    let mut office = Browser::signed_in(&app, NURSE).await;
    let res = phone
        .submit(&app, "/me/sessions", "/me/sessions/revoke-all", &[])
        .await;
    assert_eq!(res.status, StatusCode::SEE_OTHER);
    assert_eq!(res.location(), "/");
    assert!(phone.session().is_none());
    assert_eq!(
        office.get(&app, "/home").await.status,
        StatusCode::SEE_OTHER
    );
    // The old cookie of the phone is worth nothing either.
    let res = Browser {
        cookies: office.cookies.clone(),
        ..Browser::default()
    }
    .get(&app, "/me/sessions")
    .await;
    assert_eq!(res.status, StatusCode::SEE_OTHER);
}

#[tokio::test]
async fn too_many_attempts_say_how_long_to_wait() {
    let app = TestApp::demo().await;
    let mut b = Browser::default();
    let token = b.get(&app, "/signin").await.csrf();
    let mut last = None;
    for _ in 0..11 {
        last = Some(
            b.post(
                &app,
                "/signin",
                &[
                    ("csrf", &token),
                    ("email", NURSE),
                    ("password", "wrong-wrong-1"),
                ],
            )
            .await,
        );
    }
    let res = last.unwrap();
    assert_eq!(res.status, StatusCode::TOO_MANY_REQUESTS);
    let wait: u64 = res.headers["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!(wait > 0 && wait <= 15 * 60, "{wait}");
    assert!(res.body.contains("分ほど待ってから"), "{}", res.body);
    assert!(res.body.contains(&format!("value=\"{NURSE}\"")));
}

#[tokio::test]
async fn a_second_factor_set_up_from_the_security_page_is_asked_for_at_the_next_sign_in() {
    let app = TestApp::demo().await;
    let mut b = Browser::signed_in(&app, CARE_MANAGER).await;
    let security = b.get(&app, "/me/security").await;
    assert!(security.body.contains("href=\"/me/security/totp\""));

    let enrol = b.get(&app, "/me/security/totp").await;
    assert_eq!(enrol.status, StatusCode::OK);
    assert!(enrol.body.contains("<svg"), "the QR code is inline");
    assert!(!enrol.body.contains("<script>"));
    assert!(enrol.body.contains("otpauth://totp/"));
    assert!(enrol.body.contains("Google Authenticator"));
    let key = shown_key(&enrol.body);
    assert_eq!(key.len(), 32, "{key}");
    // The key is shown in groups of four.
    assert_eq!(enrol.body.matches("class=\"secret-key__group\"").count(), 8);
    // Reloading shows the same key: what was scanned stays valid.
    let again = b.get(&app, "/me/security/totp").await;
    assert_eq!(shown_key(&again.body), key);

    let res = b
        .post(
            &app,
            "/me/security/totp",
            &[("csrf", &enrol.csrf()), ("code", "000000")],
        )
        .await;
    assert_eq!(res.status, StatusCode::UNAUTHORIZED);
    assert_eq!(shown_key(&res.body), key, "the same key after a typo");

    let res = b
        .post(
            &app,
            "/me/security/totp",
            &[("csrf", &enrol.csrf()), ("code", &code_for(&key, 0))],
        )
        .await;
    assert_eq!(res.status, StatusCode::OK, "{}", res.body);
    let codes = recovery_codes(&res.body);
    assert_eq!(codes.len(), 10, "{}", res.body);
    assert!(res.body.contains("href=\"/home\""));
    assert!(b.get(&app, "/me/security").await.body.contains("設定ずみ"));
    // Once set up, the set-up page is not offered again.
    assert_eq!(
        b.get(&app, "/me/security/totp").await.location(),
        "/me/security"
    );

    b.submit(&app, "/home", "/signout", &[]).await;
    let res = b.sign_in(&app, CARE_MANAGER, DEMO_PASSWORD).await;
    assert_eq!(res.location(), "/signin/code");
    let half = b.session().unwrap().to_owned();
    assert_eq!(
        b.get(&app, "/home").await.status,
        StatusCode::SEE_OTHER,
        "a password alone does not open the home page"
    );
    let code_page = b.get(&app, "/signin/code").await;
    assert_eq!(code_page.status, StatusCode::OK);
    assert!(code_page.body.contains("inputmode=\"numeric\""));
    assert!(code_page.body.contains("autocomplete=\"one-time-code\""));
    assert!(code_page.body.contains("コードが使えない場合"));

    let res = b
        .post(
            &app,
            "/signin/code",
            &[("csrf", &code_page.csrf()), ("code", "000000")],
        )
        .await;
    assert_eq!(res.status, StatusCode::UNAUTHORIZED);
    assert!(res.body.contains("数字がちがいます"));

    let res = b
        .post(
            &app,
            "/signin/code",
            &[("csrf", &code_page.csrf()), ("code", &code_for(&key, 1))],
        )
        .await;
    assert_eq!(res.status, StatusCode::SEE_OTHER, "{}", res.body);
    assert_eq!(res.location(), "/home");
    let full = b.session().unwrap().to_owned();
    assert_ne!(
        full, half,
        "the session token changes with the second factor"
    );
    assert!(b.get(&app, "/home").await.body.contains("森田 由美"));

    // A recovery code works once, from another browser.
    let mut other = Browser::default();
    assert_eq!(
        other
            .sign_in(&app, CARE_MANAGER, DEMO_PASSWORD)
            .await
            .location(),
        "/signin/code"
    );
    let page = other.get(&app, "/signin/code").await;
    let fields = [
        ("csrf", page.csrf()),
        ("kind", "recovery".to_owned()),
        ("code", codes[0].clone()),
    ];
    let fields: Vec<(&str, &str)> = fields.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let res = other.post(&app, "/signin/code", &fields).await;
    assert_eq!(res.location(), "/home", "{}", res.body);

    let mut third = Browser::default();
    third.sign_in(&app, CARE_MANAGER, DEMO_PASSWORD).await;
    let page = third.get(&app, "/signin/code").await;
    let fields = [
        ("csrf", page.csrf()),
        ("kind", "recovery".to_owned()),
        ("code", codes[0].clone()),
    ];
    let fields: Vec<(&str, &str)> = fields.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let res = third.post(&app, "/signin/code", &fields).await;
    assert_eq!(
        res.status,
        StatusCode::UNAUTHORIZED,
        "a recovery code works once"
    );
    assert!(res.body.contains("すでに使われています"));
    assert!(res.body.contains("<details class=\"help\" open>"));
}

#[tokio::test]
async fn an_association_that_requires_a_second_factor_sends_members_to_set_one_up() {
    let app = TestApp::demo().await;
    let mut tx = app.tenant_tx("minatogawa").await;
    let s = musubi_db::associations::read_settings(&mut tx)
        .await
        .unwrap();
    musubi_db::associations::write_settings(
        &mut tx,
        true,
        s.session_idle_minutes,
        s.session_absolute_hours,
        s.audit_retention_years,
        None,
        None,
        None,
    )
    .await
    .unwrap();
    tx.commit().await.unwrap();

    let mut b = Browser::default();
    let page = b.get(&app, "/signin?next=/me/sessions").await;
    let res = b
        .post(
            &app,
            "/signin",
            &[
                ("csrf", &page.csrf()),
                ("email", NURSE),
                ("password", DEMO_PASSWORD),
                ("next", "/me/sessions"),
            ],
        )
        .await;
    assert_eq!(res.location(), "/signin/enrol?next=/me/sessions");
    assert_eq!(b.get(&app, "/home").await.status, StatusCode::SEE_OTHER);
    // The code page is not the right place yet.
    assert_eq!(
        b.get(&app, "/signin/code").await.location(),
        "/signin/enrol"
    );

    let enrol = b.get(&app, "/signin/enrol?next=/me/sessions").await;
    assert_eq!(enrol.status, StatusCode::OK);
    assert!(enrol
        .body
        .contains("安全のために「2段階認証」を使うことになっています"));
    assert!(enrol.body.contains("<svg"));
    let key = shown_key(&enrol.body);
    let res = b
        .post(
            &app,
            "/signin/enrol",
            &[
                ("csrf", &enrol.csrf()),
                ("code", &code_for(&key, 0)),
                ("next", "/me/sessions"),
            ],
        )
        .await;
    assert_eq!(res.status, StatusCode::OK, "{}", res.body);
    assert_eq!(recovery_codes(&res.body).len(), 10);
    assert!(
        res.body.contains("href=\"/me/sessions\""),
        "continue where asked"
    );
    assert!(
        res.set_cookie("musubi_session").is_some(),
        "a new, full session"
    );
    let home = b.get(&app, "/home").await;
    assert_eq!(home.status, StatusCode::OK);
    assert!(home.body.contains("青木 さくら"));
}

#[tokio::test]
async fn a_half_finished_sign_in_that_is_gone_starts_again() {
    let app = TestApp::demo().await;
    let mut b = Browser::default();
    let res = b.get(&app, "/signin/code").await;
    assert_eq!(res.location(), "/signin?again=1");
    let page = b.get(&app, "/signin?again=1").await;
    assert!(page.body.contains("もう一度はじめから"));
    let res = b.get(&app, "/signin/enrol").await;
    assert_eq!(res.location(), "/signin?again=1");
}

#[tokio::test]
async fn the_pages_speak_english_when_asked() {
    let app = TestApp::demo().await;
    let mut b = Browser::default();
    b.cookies.insert("musubi_lang".into(), "en".into());
    let page = b.get(&app, "/signin").await;
    assert!(page.body.contains("<html lang=\"en\""));
    assert!(page.body.contains(">Sign in</button>"));
    let res = b
        .post(
            &app,
            "/signin",
            &[
                ("csrf", &page.csrf()),
                ("email", NURSE),
                ("password", "wrong-wrong-1"),
            ],
        )
        .await;
    assert!(res
        .body
        .contains("The e-mail address or the password is not correct"));
    b.sign_in(&app, NURSE, DEMO_PASSWORD).await;
    let home = b.get(&app, "/home").await;
    assert!(home.body.contains("Hello, "), "{}", home.body);
    assert!(home.body.contains("Sign out"));
    let sessions = b.get(&app, "/me/sessions").await;
    assert!(sessions.body.contains("This device"));
}
