//! The association console (`/a/{slug}/console/…`), driven like a browser through the whole
//! app on the demo data: forms with their CSRF field, cookies kept between requests, redirects
//! followed by hand.

use http::header::{CONTENT_DISPOSITION, CONTENT_TYPE};
use http::StatusCode;
use musubi_domain::audit;
use musubi_test_support::demo::{ADMIN, NURSE, OTHER_ADMIN};
use musubi_test_support::web::{between, Browser};
use musubi_test_support::TestApp;
use uuid::Uuid;

const CONSOLE: &str = "/a/minatogawa/console";

#[tokio::test]
async fn an_administrator_sees_the_members_of_their_association() {
    let app = TestApp::demo().await;
    let mut admin = Browser::signed_in(&app, ADMIN).await;

    let home = admin.get(&app, "/home").await;
    assert!(home.body.contains(&format!("href=\"{CONSOLE}\"")));
    assert!(!home.body.contains("href=\"/a/sakuradai/console\""));

    let console = admin.get(&app, CONSOLE).await;
    assert_eq!(console.status, StatusCode::OK, "{}", console.body);
    assert!(console.body.contains("みなと川医師会の管理"));
    assert!(console
        .body
        .contains(&format!("href=\"{CONSOLE}/members\"")));

    let page = admin.get(&app, &format!("{CONSOLE}/members")).await;
    assert_eq!(page.status, StatusCode::OK);
    assert_eq!(page.headers["cache-control"], "no-store");
    let nurse = app.user_id(NURSE).await;
    let card = between(&page.body, &format!("id=\"member-{nurse}\""), "</details>");
    for text in [
        "青木 さくら",
        "あおき さくら",
        "看護師",
        "訪問看護ステーションみなと",
        "一般",
        "利用中",
        "2段階認証 未設定",
        NURSE,
    ] {
        assert!(card.contains(text), "the nurse's card shows {text}: {card}");
    }
    for action in ["make-admin", "sign-out", "deactivate"] {
        assert!(card.contains(&format!("{CONSOLE}/members/{nurse}/{action}\"")));
    }
    // Every member of the association, and nobody from the other one.
    for name in [
        "港 事務子",
        "川村 健一",
        "森田 由美",
        "佐藤 隆",
        "医師（連携医）",
    ] {
        assert!(page.body.contains(name), "{name}");
    }
    assert!(!page.body.contains("桜井 花子"));
    // The administrator is marked and gets no buttons for themselves.
    let me = app.user_id(ADMIN).await;
    assert!(!page.body.contains(&format!("{me}/deactivate")));

    // A member's home page has no console link.
    let mut nurse_browser = Browser::signed_in(&app, NURSE).await;
    let home = nurse_browser.get(&app, "/home").await;
    assert!(!home.body.contains("/console"));
}

/// (method, path, form fields besides the CSRF token)
type Route<'a> = (&'a str, String, Vec<(&'a str, &'a str)>);

#[tokio::test]
async fn members_and_other_associations_admins_get_the_404_page_for_every_console_route() {
    let app = TestApp::demo().await;
    let nurse = app.user_id(NURSE).await;
    let unknown = Uuid::now_v7();
    let member_path = |action: &str| format!("{CONSOLE}/members/{nurse}/{action}");
    let routes: Vec<Route<'_>> = vec![
        ("GET", CONSOLE.to_owned(), vec![]),
        ("GET", format!("{CONSOLE}/members"), vec![]),
        ("GET", format!("{CONSOLE}/invite"), vec![]),
        ("GET", format!("{CONSOLE}/settings"), vec![]),
        ("GET", format!("{CONSOLE}/audit"), vec![]),
        (
            "GET",
            format!("{CONSOLE}/audit?action=auth&from=2026-01-01"),
            vec![],
        ),
        ("GET", format!("{CONSOLE}/audit.csv"), vec![]),
        ("POST", member_path("make-admin"), vec![]),
        ("POST", member_path("make-member"), vec![]),
        ("POST", member_path("deactivate"), vec![]),
        ("POST", member_path("reactivate"), vec![]),
        ("POST", member_path("sign-out"), vec![]),
        ("POST", member_path("reset-second-factor"), vec![]),
        (
            "POST",
            format!("{CONSOLE}/members/not-a-uuid/deactivate"),
            vec![],
        ),
        (
            "POST",
            format!("{CONSOLE}/invite"),
            vec![
                ("email", ""),
                ("role", "admin"),
                ("facility", ""),
                ("days", "7"),
            ],
        ),
        (
            "POST",
            format!("{CONSOLE}/invite"),
            vec![("email", "x"), ("role", "boss"), ("days", "x")],
        ),
        (
            "POST",
            format!("{CONSOLE}/invitations/{unknown}/revoke"),
            vec![],
        ),
        (
            "POST",
            format!("{CONSOLE}/settings"),
            vec![
                ("require_second_factor", "on"),
                ("idle_minutes", "30"),
                ("absolute_hours", "8"),
                ("retention_years", "5"),
            ],
        ),
        (
            "POST",
            format!("{CONSOLE}/settings"),
            vec![("idle_minutes", "abc")],
        ),
    ];

    for email in [NURSE, OTHER_ADMIN] {
        let mut b = Browser::signed_in(&app, email).await;
        let actor = app.user_id(email).await;
        let token = b.get(&app, "/home").await.csrf();
        for (method, path, fields) in &routes {
            let before = app.denials_by("minatogawa", actor.into()).await;
            let res = if *method == "GET" {
                b.get(&app, path).await
            } else {
                let mut all = vec![("csrf", token.as_str())];
                all.extend_from_slice(fields);
                b.post(&app, path, &all).await
            };
            assert!(
                res.is_not_found(),
                "{email} {method} {path}: {} {}",
                res.status,
                res.body
            );
            assert!(!res.body.contains("みなと川医師会"), "{method} {path}");
            assert_eq!(
                app.denials_by("minatogawa", actor.into()).await,
                before + 1,
                "{email} {method} {path} is audited as access.denied in minatogawa's log"
            );
        }
        // Exactly the page an association that does not exist gets.
        let refused = b.get(&app, CONSOLE).await.body;
        let missing = b.get(&app, "/a/nosuch/console").await;
        assert!(missing.is_not_found());
        assert_eq!(refused.replace("minatogawa", "nosuch"), missing.body);
    }
    // Nothing changed.
    let mut admin = Browser::signed_in(&app, ADMIN).await;
    let members = admin.get(&app, &format!("{CONSOLE}/members")).await.body;
    assert!(!members.contains("利用停止中"));
    assert_eq!(members.matches("console-badge--admin").count(), 1);

    // Not signed in: sent to sign in, and brought back afterwards.
    let mut visitor = Browser::default();
    let res = visitor.get(&app, &format!("{CONSOLE}/members")).await;
    assert_eq!(res.status, StatusCode::SEE_OTHER);
    assert_eq!(res.location(), "/signin?next=/a/minatogawa/console/members");
    let res = visitor.get(&app, "/a/nosuch/console").await;
    assert_eq!(
        res.status,
        StatusCode::SEE_OTHER,
        "nothing told before signing in"
    );
}

#[tokio::test]
async fn deactivating_a_member_ends_their_web_session() {
    let app = TestApp::demo().await;
    let mut nurse_browser = Browser::signed_in(&app, NURSE).await;
    assert_eq!(
        nurse_browser.get(&app, "/home").await.status,
        StatusCode::OK
    );

    let mut admin = Browser::signed_in(&app, ADMIN).await;
    let nurse = app.user_id(NURSE).await;
    let members = format!("{CONSOLE}/members");
    // Without the form's CSRF token nothing happens.
    let forged = admin
        .post(
            &app,
            &format!("{members}/{nurse}/deactivate"),
            &[("csrf", "forged")],
        )
        .await;
    assert_eq!(forged.status, StatusCode::FORBIDDEN);
    assert_eq!(
        nurse_browser.get(&app, "/home").await.status,
        StatusCode::OK
    );

    let res = admin
        .submit(
            &app,
            &members,
            &format!("{members}/{nurse}/deactivate"),
            &[],
        )
        .await;
    assert_eq!(res.status, StatusCode::SEE_OTHER, "{}", res.body);
    assert_eq!(
        res.location(),
        format!("{members}?done=deactivated&member={nurse}")
    );
    let page = admin.get(&app, res.location()).await;
    assert!(page.body.contains("青木 さくら さんを利用停止にしました。"));
    let card = between(&page.body, &format!("id=\"member-{nurse}\""), "</details>");
    assert!(card.contains("利用停止中"));
    assert!(card.contains(&format!("{nurse}/reactivate\"")));

    // Her open session stops working on the next request.
    let res = nurse_browser.get(&app, "/home").await;
    assert_eq!(res.status, StatusCode::SEE_OTHER);
    assert_eq!(res.location(), "/signin?next=/home");

    // And the administrator can let her back in.
    let res = admin
        .submit(
            &app,
            &members,
            &format!("{members}/{nurse}/reactivate"),
            &[],
        )
        .await;
    assert_eq!(
        res.location(),
        format!("{members}?done=reactivated&member={nurse}")
    );
    let again = Browser::signed_in(&app, NURSE)
        .await
        .get(&app, "/home")
        .await;
    assert!(again.body.contains("みなと川医師会"));
}

#[tokio::test]
async fn refused_member_actions_come_back_with_a_plain_message() {
    let app = TestApp::demo().await;
    let mut admin = Browser::signed_in(&app, ADMIN).await;
    let me = app.user_id(ADMIN).await;
    let members = format!("{CONSOLE}/members");

    // The last administrator cannot step down (CONFLICT) nor deactivate themselves.
    let res = admin
        .submit(&app, &members, &format!("{members}/{me}/make-member"), &[])
        .await;
    assert_eq!(
        res.location(),
        format!("{members}?error=last_admin&member={me}")
    );
    let page = admin.get(&app, res.location()).await;
    assert!(page.body.contains("管理者が1人もいなくなってしまうため"));
    assert!(page.body.contains("role=\"alert\""));

    let res = admin
        .submit(&app, &members, &format!("{members}/{me}/deactivate"), &[])
        .await;
    assert_eq!(res.location(), format!("{members}?error=self&member={me}"));

    // Someone who is not a member (NOT_FOUND for an administrator): a message, not the 404 page.
    let stranger = app.user_id(OTHER_ADMIN).await;
    let res = admin
        .submit(
            &app,
            &members,
            &format!("{members}/{stranger}/sign-out"),
            &[],
        )
        .await;
    assert_eq!(
        res.location(),
        format!("{members}?error=not_found&member={stranger}")
    );
    let page = admin.get(&app, res.location()).await;
    assert!(page.body.contains("対象が見つかりませんでした"));

    // Making the nurse an administrator, then back again.
    let nurse = app.user_id(NURSE).await;
    let res = admin
        .submit(
            &app,
            &members,
            &format!("{members}/{nurse}/make-admin"),
            &[],
        )
        .await;
    let page = admin.get(&app, res.location()).await;
    assert!(page.body.contains("青木 さくら さんを管理者にしました。"));
    let res = admin
        .submit(
            &app,
            &members,
            &format!("{members}/{nurse}/make-member"),
            &[],
        )
        .await;
    assert_eq!(
        res.location(),
        format!("{members}?done=made_member&member={nurse}")
    );
}

#[tokio::test]
async fn a_settings_error_is_shown_next_to_its_field() {
    let app = TestApp::demo().await;
    let mut admin = Browser::signed_in(&app, ADMIN).await;
    let settings = format!("{CONSOLE}/settings");

    let page = admin.get(&app, &settings).await;
    assert_eq!(page.status, StatusCode::OK);
    assert!(page
        .body
        .contains("id=\"idle_minutes\" name=\"idle_minutes\""));
    assert!(page.body.contains("value=\"60\""));

    let res = admin
        .submit(
            &app,
            &settings,
            &settings,
            &[
                ("idle_minutes", "2"),
                ("absolute_hours", "12"),
                ("retention_years", "5"),
            ],
        )
        .await;
    assert_eq!(res.status, StatusCode::UNPROCESSABLE_ENTITY);
    let idle = between(&res.body, "for=\"idle_minutes\"", "for=\"absolute_hours\"");
    assert!(
        idle.contains("5から1440までの数字を入力してください。"),
        "{idle}"
    );
    assert!(idle.contains("aria-invalid=\"true\""));
    assert!(idle.contains("value=\"2\""), "what was typed stays");
    assert!(
        !between(&res.body, "for=\"absolute_hours\"", "</form>").contains("console-field-error")
    );

    // Not a number: the same place, and nothing saved.
    let res = admin
        .submit(
            &app,
            &settings,
            &settings,
            &[
                ("idle_minutes", "30"),
                ("absolute_hours", "たくさん"),
                ("retention_years", "5"),
            ],
        )
        .await;
    assert_eq!(res.status, StatusCode::UNPROCESSABLE_ENTITY);
    let absolute = between(
        &res.body,
        "for=\"absolute_hours\"",
        "for=\"retention_years\"",
    );
    assert!(absolute.contains("1から720までの数字を入力してください。"));
    assert!(
        !between(&res.body, "for=\"idle_minutes\"", "for=\"absolute_hours\"")
            .contains("console-field-error")
    );

    // Idle longer than the whole session.
    let res = admin
        .submit(
            &app,
            &settings,
            &settings,
            &[
                ("idle_minutes", "180"),
                ("absolute_hours", "2"),
                ("retention_years", "5"),
            ],
        )
        .await;
    let idle = between(&res.body, "for=\"idle_minutes\"", "for=\"absolute_hours\"");
    assert!(idle.contains("console-field-error"));

    // A good change is saved, and said so.
    let res = admin
        .submit(
            &app,
            &settings,
            &settings,
            &[
                ("require_second_factor", "on"),
                ("idle_minutes", "３０"),
                ("absolute_hours", "8"),
                ("retention_years", "7"),
            ],
        )
        .await;
    assert_eq!(res.status, StatusCode::SEE_OTHER, "{}", res.body);
    assert_eq!(res.location(), format!("{settings}?done=settings_saved"));
    let page = admin.get(&app, res.location()).await;
    assert!(page.body.contains("設定を保存しました。"));
    assert!(page.body.contains("value=\"on\" checked"));
    assert!(page.body.contains("value=\"30\""));
    assert!(page.body.contains("value=\"7\""));

    // Notification settings: group names in mails, and the time a 至急 post waits.
    assert!(page.body.contains("name=\"urgent_minutes\" type=\"text\" inputmode=\"numeric\" autocomplete=\"off\" maxlength=\"6\" value=\"15\""));
    let res = admin
        .submit(
            &app,
            &settings,
            &settings,
            &[
                ("idle_minutes", "30"),
                ("absolute_hours", "8"),
                ("retention_years", "7"),
                ("mail_group_names", "on"),
                ("urgent_minutes", "3"),
            ],
        )
        .await;
    assert_eq!(res.status, StatusCode::UNPROCESSABLE_ENTITY);
    let urgent = between(&res.body, "for=\"urgent_minutes\"", "</form>");
    assert!(
        urgent.contains("5から240までの数字を入力してください。"),
        "{urgent}"
    );
    assert!(urgent.contains("value=\"3\""), "what was typed stays");
    let res = admin
        .submit(
            &app,
            &settings,
            &settings,
            &[
                ("idle_minutes", "30"),
                ("absolute_hours", "8"),
                ("retention_years", "7"),
                ("mail_group_names", "on"),
                ("urgent_minutes", "２０"),
            ],
        )
        .await;
    assert_eq!(res.status, StatusCode::SEE_OTHER, "{}", res.body);
    let mut tx = app.tenant_tx("minatogawa").await;
    let saved = musubi_db::associations::read_settings(&mut tx)
        .await
        .unwrap();
    assert!(saved.mail_group_names);
    assert_eq!(saved.urgent_ack_minutes, 20);
}

#[tokio::test]
async fn the_audit_log_is_listed_and_exported_as_csv() {
    let app = TestApp::demo().await;
    let mut admin = Browser::signed_in(&app, ADMIN).await;
    // Something to find: a member signs in.
    Browser::signed_in(&app, NURSE).await;

    let page = admin.get(&app, &format!("{CONSOLE}/audit")).await;
    assert_eq!(page.status, StatusCode::OK);
    assert!(page.body.contains("auth.sign_in"));
    assert!(page.body.contains("青木 さくら"));
    assert!(page.body.contains("日本時間"));
    assert!(page.body.contains(&format!("href=\"{CONSOLE}/audit.csv\"")));

    // Filtered by kind: no sign-ins among the settings changes.
    let page = admin
        .get(&app, &format!("{CONSOLE}/audit?action=settings"))
        .await;
    assert!(!page.body.contains("auth.sign_in"));
    assert!(page.body.contains("この条件にあう記録はありません。"));
    assert!(page
        .body
        .contains(&format!("href=\"{CONSOLE}/audit.csv?action=settings\"")));
    // A date in the future: nothing; a malformed one: said next to the field.
    let page = admin
        .get(&app, &format!("{CONSOLE}/audit?from=2999-01-01"))
        .await;
    assert!(!page.body.contains("auth.sign_in"));
    let page = admin
        .get(&app, &format!("{CONSOLE}/audit?from=yesterday"))
        .await;
    assert_eq!(page.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(between(&page.body, "for=\"from\"", "id=\"from\"").contains("2026-04-01"));

    let res = admin.get(&app, &format!("{CONSOLE}/audit.csv")).await;
    assert_eq!(res.status, StatusCode::OK);
    assert_eq!(res.headers[CONTENT_TYPE], "text/csv; charset=utf-8");
    let disposition = res.headers[CONTENT_DISPOSITION].to_str().unwrap();
    assert!(
        disposition.starts_with("attachment; filename=\"audit-minatogawa-20")
            && disposition.ends_with(".csv\""),
        "{disposition}"
    );
    assert!(res.body.starts_with('\u{feff}'), "a BOM for Excel");
    let mut lines = res.body.trim_start_matches('\u{feff}').lines();
    assert_eq!(
        lines.next(),
        Some("記録番号,日時,した人,した人のID,操作,対象,IPアドレス,ブラウザ,くわしい内容"),
        "column names in the reader's language"
    );
    let rows: Vec<&str> = lines.collect();
    assert!(rows.iter().any(|r| r.contains(",auth.sign_in,")));
    assert!(rows.iter().any(|r| r.contains("青木 さくら")));
    assert!(rows.iter().all(|r| r.contains("+09:00")), "Japan time");

    // The same filters; and the export itself is in the log.
    let res = admin
        .get(&app, &format!("{CONSOLE}/audit.csv?action=audit"))
        .await;
    let rows: Vec<&str> = res.body.lines().skip(1).collect();
    assert!(!rows.is_empty());
    assert!(
        rows.iter().all(|r| r.contains(",audit.export,")),
        "{rows:?}"
    );
    // Malformed dates go back to the page that explains them.
    let res = admin
        .get(&app, &format!("{CONSOLE}/audit.csv?until=31-12-2026"))
        .await;
    assert_eq!(res.status, StatusCode::SEE_OTHER);
    assert!(res.location().starts_with(&format!("{CONSOLE}/audit?")));
}

#[tokio::test]
async fn invitations_in_person_by_mail_and_withdrawn() {
    let app = TestApp::demo().await;
    let mut admin = Browser::signed_in(&app, ADMIN).await;
    let invite = format!("{CONSOLE}/invite");

    let page = admin.get(&app, &invite).await;
    assert_eq!(page.status, StatusCode::OK);
    assert!(
        page.body.contains("訪問看護ステーションみなと"),
        "facilities to choose"
    );
    assert!(!page.body.contains("さくら台総合病院"));
    assert!(page.body.contains("返事を待っている招待はありません。"));
    let facility = {
        let at = page.body.find("訪問看護ステーションみなと").unwrap();
        let before = &page.body[..at];
        let v = before.rfind("value=\"").unwrap() + 7;
        before[v..v + 36].to_owned()
    };

    // In person: the link and its QR code, this once.
    let res = admin
        .submit(
            &app,
            &invite,
            &invite,
            &[
                ("email", ""),
                ("role", "member"),
                ("facility", &facility),
                ("days", "7"),
            ],
        )
        .await;
    assert_eq!(res.status, StatusCode::OK, "{}", res.body);
    assert!(res.body.contains("<svg"));
    assert!(res.body.contains("http://127.0.0.1:8080/invite/"));
    assert!(res.body.contains("訪問看護ステーションみなと"));
    assert!(res.body.contains("data-print"));

    // By e-mail (the default mailer writes it to the log).
    let res = admin
        .submit(
            &app,
            &invite,
            &invite,
            &[
                ("email", "new.nurse@example.jp"),
                ("role", "member"),
                ("days", "3"),
            ],
        )
        .await;
    assert_eq!(res.status, StatusCode::SEE_OTHER, "{}", res.body);
    assert_eq!(res.location(), format!("{invite}?done=invite_sent"));
    let page = admin.get(&app, res.location()).await;
    assert!(page.body.contains("招待メールを送りました"));
    assert!(page.body.contains("new.nurse@example.jp"));
    assert!(page.body.contains("その場で渡した招待"));
    assert_eq!(page.body.matches("/revoke\"").count(), 2);

    // Mistakes are said next to the field, with what was typed.
    let res = admin
        .submit(
            &app,
            &invite,
            &invite,
            &[
                ("email", "not-an-address"),
                ("role", "member"),
                ("days", "7"),
            ],
        )
        .await;
    assert_eq!(res.status, StatusCode::UNPROCESSABLE_ENTITY);
    let email = between(&res.body, "for=\"email\"", "</div>");
    assert!(
        email.contains("メールアドレスの形になっていません"),
        "{email}"
    );
    assert!(email.contains("value=\"not-an-address\""));
    let res = admin
        .submit(
            &app,
            &invite,
            &invite,
            &[("email", NURSE), ("role", "member"), ("days", "7")],
        )
        .await;
    assert_eq!(res.status, StatusCode::CONFLICT);
    assert!(
        between(&res.body, "for=\"email\"", "</div>").contains("すでにこの医師会のメンバーです")
    );
    let res = admin
        .submit(
            &app,
            &invite,
            &invite,
            &[("role", "member"), ("days", "90")],
        )
        .await;
    assert_eq!(res.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(between(&res.body, "for=\"days\"", "</select>")
        .contains("有効期限を一覧から選んでください"));

    // Withdrawing one; withdrawing it again says it is gone.
    let page = admin.get(&app, &invite).await;
    let action = {
        let at = page.body.find("/revoke\"").unwrap();
        let start = page.body[..at].rfind("action=\"").unwrap() + 8;
        page.body[start..at + 7].to_owned()
    };
    let res = admin.submit(&app, &invite, &action, &[]).await;
    assert_eq!(res.location(), format!("{invite}?done=invitation_revoked"));
    let page = admin.get(&app, res.location()).await;
    assert!(page.body.contains("招待を取り消しました"));
    assert_eq!(page.body.matches("/revoke\"").count(), 1);
    let res = admin.submit(&app, &invite, &action, &[]).await;
    assert_eq!(res.location(), format!("{invite}?error=not_found"));
}

#[tokio::test]
async fn a_long_log_is_paged_by_before_and_exported_whole() {
    let app = TestApp::demo().await;
    let tenant = app.services().resolve_tenant("minatogawa").await.unwrap();
    // More records than one page and than one export chunk, of a kind of action the demo data
    // writes little of (it registers its patients: counted first).
    let entries: Vec<_> = (0..1234)
        .map(|i| {
            audit::AuditEntry::new(
                audit::AuditAction::PatientRead,
                &audit::RequestMeta::new("192.0.2.7", "test"),
            )
            .on("topic", format!("t{i}"))
        })
        .collect();
    let mut tx = app.db.db.tenant_tx(&tenant).await.unwrap();
    let seeded: i64 =
        sqlx::query_scalar("SELECT count(*) FROM audit_log WHERE action LIKE 'patient.%'")
            .fetch_one(&mut *tx)
            .await
            .unwrap();
    audit::record_batch(&mut tx, &entries).await.unwrap();
    tx.commit().await.unwrap();

    let mut admin = Browser::signed_in(&app, ADMIN).await;
    let first = admin
        .get(&app, &format!("{CONSOLE}/audit?action=patient"))
        .await;
    assert_eq!(
        first.body.matches("class=\"card console-record").count(),
        50
    );
    assert!(first.body.contains("topic:t1233"), "newest first");
    let older = {
        let at = first.body.find("before=").expect("a link to older records");
        let start = first.body[..at].rfind("href=\"").unwrap() + 6;
        let end = at + first.body[at..].find('"').unwrap();
        first.body[start..end].replace("&#38;", "&")
    };
    assert!(older.contains("action=patient"), "{older}");
    let second = admin.get(&app, &older).await;
    assert!(second.body.contains("topic:t1183"));
    assert!(!second.body.contains("topic:t1233<"));
    assert!(second.body.contains("最新の記録に戻る"));

    let csv = admin
        .get(&app, &format!("{CONSOLE}/audit.csv?action=patient"))
        .await;
    assert_eq!(csv.status, StatusCode::OK);
    assert_eq!(
        csv.body.lines().count(),
        1 + 1234 + usize::try_from(seeded).unwrap(),
        "header and every record"
    );
}

#[tokio::test]
async fn the_audit_log_names_the_patient_group_and_topic_as_they_were_and_filters_by_them() {
    let app = TestApp::demo().await;
    let tanaka = "田中 一郎さん（92歳・看取り期）";
    let group: Uuid = {
        let mut tx = app.tenant_tx("minatogawa").await;
        let id = sqlx::query_scalar("SELECT id FROM groups WHERE name = $1")
            .bind(tanaka)
            .fetch_one(&mut *tx)
            .await
            .unwrap();
        tx.commit().await.unwrap();
        id
    };
    let topic: (Uuid, String) = {
        let mut tx = app.tenant_tx("minatogawa").await;
        // One the nurse may read (the group also has a topic for doctors only), chosen in a
        // stable order: rows' order on disk follows the updates they had.
        let row = sqlx::query_as(
            "SELECT id, title FROM topics WHERE group_id = $1 AND scope = $2 \
             ORDER BY created_at, id LIMIT 1",
        )
        .bind(group)
        .bind(musubi_domain::groups::Scope::EVERYONE.bits())
        .fetch_one(&mut *tx)
        .await
        .unwrap();
        tx.commit().await.unwrap();
        row
    };
    // The nurse reads one of the patient's topics (recorded), then the group is renamed.
    let mut nurse = Browser::signed_in(&app, NURSE).await;
    let page = nurse
        .get(&app, &format!("/a/minatogawa/t/{}", topic.0))
        .await;
    assert_eq!(page.status, StatusCode::OK);
    {
        let mut tx = app.tenant_tx("minatogawa").await;
        sqlx::query("UPDATE groups SET name = '田中 様（転居）' WHERE id = $1")
            .bind(group)
            .execute(&mut *tx)
            .await
            .unwrap();
        tx.commit().await.unwrap();
    }

    let mut admin = Browser::signed_in(&app, ADMIN).await;
    let nurse_id = app.user_id(NURSE).await;
    let page = admin
        .get(
            &app,
            &format!("{CONSOLE}/audit?action=topic&actor={nurse_id}"),
        )
        .await;
    assert_eq!(page.status, StatusCode::OK);
    let records = between(&page.body, "id=\"records-title\"", "</section>");
    assert!(
        records.contains("書きこみの閲覧") || records.contains("閲覧"),
        "in words"
    );
    assert!(
        records.contains(&format!("{tanaka}「{}」", topic.1)),
        "the names it had then: {records}"
    );
    assert!(
        !records.contains(&format!("topic:{}", topic.0)),
        "no raw ids"
    );
    assert!(!records.contains("{\""), "no JSON");
    assert!(page
        .body
        .contains(&format!("value=\"{nurse_id}\" selected")));

    // Only this group's records, by the link on a record.
    let only = format!("{CONSOLE}/audit?group={group}");
    assert!(
        records.contains(&format!("href=\"{only}\"")),
        "a link per record"
    );
    let page = admin.get(&app, &only).await;
    let records = between(&page.body, "id=\"records-title\"", "</section>");
    assert!(records.contains(&format!("グループ「{tanaka}」の記録だけ")));
    assert!(
        !records.contains("auth.sign_in"),
        "sign-ins are about no group"
    );
    // Someone else's filter value that is not an id is no filter, not an error.
    let page = admin
        .get(&app, &format!("{CONSOLE}/audit?actor=x%27%3B--&group=nope"))
        .await;
    assert_eq!(page.status, StatusCode::OK);
    assert!(page.body.contains("auth.sign_in"));
}

/// `…/members/{user_id}/departure`: the groups a departing member is in, then out of all.
mod departure {
    use super::*;
    use musubi_test_support::demo::CARE_MANAGER;

    async fn group_id(app: &TestApp, name_starts: &str) -> Uuid {
        sqlx::query_scalar("SELECT id FROM groups WHERE name LIKE $1 || '%'")
            .bind(name_starts)
            .fetch_one(&mut *app.tenant_tx("minatogawa").await)
            .await
            .unwrap()
    }

    #[tokio::test]
    async fn a_departing_care_manager_is_taken_out_of_every_group_and_her_own_is_handed_over() {
        let app = TestApp::demo().await;
        let mut admin = Browser::signed_in(&app, ADMIN).await;
        let morita = app.user_id(CARE_MANAGER).await;
        let members = format!("{CONSOLE}/members");
        let path = format!("{members}/{morita}/departure");

        // Linked from her card on the member list.
        let list = admin.get(&app, &members).await;
        let card = between(&list.body, &format!("id=\"member-{morita}\""), "</details>");
        assert!(card.contains(&format!("href=\"{path}\"")), "{card}");
        assert!(card.contains("全グループから外す"));

        // The preview: each group with her role and standing; only the group she alone owns
        // is marked for the administrator to take over.
        let preview = admin.get(&app, &path).await;
        assert_eq!(preview.status, StatusCode::OK, "{}", preview.body);
        let cards: Vec<&str> = between(&preview.body, "<ul class=\"console-list\"", "</form>")
            .split("<li class=\"card console-departure\">")
            .skip(1)
            .collect();
        let card_of = |name: &str| {
            *cards
                .iter()
                .find(|c| c.contains(name))
                .unwrap_or_else(|| panic!("{name} is listed: {}", preview.body))
        };
        let own = card_of("鈴木 花子さん");
        assert!(own.contains("管理者が引き継ぎます") && own.contains("患者グループ"));
        assert!(own.contains(">管理者<") && own.contains("参加中"));
        for name in ["多職種連携の会", "山田 太郎さん", "田中 一郎さん"] {
            let card = card_of(name);
            assert!(!card.contains("管理者が引き継ぎます"), "{name}");
            assert!(card.contains(">メンバー<"), "{name}");
        }
        assert_eq!(cards.len(), 4);
        assert!(
            !preview.body.contains("伊藤 正男"),
            "another association's group"
        );
        assert!(preview.body.contains("4件のグループから外す"));

        // Confirmed: out of all four, back on the member list with how many.
        let res = admin.submit(&app, &path, &path, &[]).await;
        assert_eq!(res.status, StatusCode::SEE_OTHER, "{}", res.body);
        let back = admin.get(&app, res.location()).await;
        assert!(
            back.body.contains("4件のグループから外しました。"),
            "{}",
            back.body
        );
        let suzuki = group_id(&app, "鈴木 花子").await;
        let group_page = admin.get(&app, &format!("/a/minatogawa/g/{suzuki}")).await;
        assert_eq!(
            group_page.status,
            StatusCode::OK,
            "the administrator owns it now"
        );
        assert!(!group_page.body.contains(&format!("id=\"member-{morita}\"")));
        let forum = group_id(&app, "多職種連携の会").await;
        let forum_page = admin.get(&app, &format!("/a/minatogawa/g/{forum}")).await;
        assert!(!forum_page.body.contains(&format!("id=\"member-{morita}\"")));
        // Still a member of the association: deactivating is another step.
        let list = admin.get(&app, &members).await;
        assert!(
            between(&list.body, &format!("id=\"member-{morita}\""), "</details>")
                .contains("利用中")
        );

        // A second tap changes nothing and says so.
        let token = preview.csrf();
        let again = admin.post(&app, &path, &[("csrf", &token)]).await;
        assert_eq!(again.status, StatusCode::SEE_OTHER, "{}", again.body);
        let back = admin.get(&app, again.location()).await;
        assert!(back.body.contains("外すグループはありませんでした。"));
        let preview = admin.get(&app, &path).await;
        assert!(preview.body.contains("外すグループはありません。"));
        assert!(!preview.body.contains(&format!("action=\"{path}\"")));
        assert!(!preview.body.contains("console-departure"));
    }

    #[tokio::test]
    async fn members_and_other_associations_admins_get_the_404_page_for_the_departure() {
        let app = TestApp::demo().await;
        let morita = app.user_id(CARE_MANAGER).await;
        let path = format!("{CONSOLE}/members/{morita}/departure");
        for email in [NURSE, OTHER_ADMIN] {
            let mut b = Browser::signed_in(&app, email).await;
            let actor = app.user_id(email).await;
            let before = app.denials_by("minatogawa", actor.into()).await;
            assert!(b.get(&app, &path).await.is_not_found(), "{email}");
            let token = b.get(&app, "/home").await.csrf();
            let res = b.post(&app, &path, &[("csrf", &token)]).await;
            assert!(res.is_not_found(), "{email}: {} {}", res.status, res.body);
            assert_eq!(
                app.denials_by("minatogawa", actor.into()).await,
                before + 2,
                "{email}"
            );
        }
        // Nothing changed: she is still in her groups.
        let mut admin = Browser::signed_in(&app, ADMIN).await;
        let preview = admin.get(&app, &path).await;
        assert!(preview.body.contains("4件のグループから外す"));
        // Someone who is not a member here: the 404 page for the administrator too.
        let stranger = app.user_id(OTHER_ADMIN).await;
        let res = admin
            .get(&app, &format!("{CONSOLE}/members/{stranger}/departure"))
            .await;
        assert!(res.is_not_found());
    }
}

#[tokio::test]
async fn the_console_shows_notification_mail_that_may_not_have_arrived() {
    let app = TestApp::demo().await;
    let nurse = app.user_id(NURSE).await;
    for (state, kind) in [
        ("sent", "digest"),
        ("failed", "digest"),
        ("interrupted", "urgent"),
    ] {
        sqlx::query(
            "INSERT INTO core.notifications (user_id, channel, kind, state, subject, body, \
             created_at) VALUES ($1, 'email', $2, $3, '', '', now())",
        )
        .bind(nurse)
        .bind(kind)
        .bind(state)
        .execute(app.db.db.pool())
        .await
        .unwrap();
    }
    let mut admin = Browser::signed_in(&app, ADMIN).await;
    let page = admin.get(&app, CONSOLE).await;
    assert_eq!(page.status, StatusCode::OK);
    assert!(
        page.body
            .contains("送信 1件・届いていないかもしれないもの 2件"),
        "{}",
        page.body
    );
    let list = between(&page.body, "id=\"mail-title\"", "</section>");
    assert!(list.contains("青木"), "{list}");
    assert!(list.contains("未読のお知らせ：送れませんでした"), "{list}");
    assert!(
        list.contains("至急のお知らせ：中断（送られたか不明）"),
        "{list}"
    );

    // さくら台's console knows nothing of みなと川's members' mail.
    let mut other = Browser::signed_in(&app, OTHER_ADMIN).await;
    let page = other.get(&app, "/a/sakuradai/console").await;
    assert_eq!(page.status, StatusCode::OK);
    assert!(!page.body.contains("id=\"mail-title\""), "{}", page.body);
}
