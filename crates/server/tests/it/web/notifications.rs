//! E-mail notification settings on the web: the page shows the saved mode; 毎日 07:30 is saved
//! (seen again on reload, in the database and as `notification.settings` in the association's
//! audit log); a time or a mode that cannot be read is said at its field in Japanese with what
//! was chosen kept, and saves nothing; a group is muted and unmuted on the page, while a group
//! the person is not in is the normal 404 page and changes nothing; 「送ったお知らせ」 says when,
//! how and in what state without anything of the mail's text; signed out, the page sends to
//! sign in; `/help/mail` is public, names the domain to allow and speaks English on request.

use http::StatusCode;
use musubi_domain::types::PersonId;
use musubi_test_support::demo::{CLINIC_DOCTOR, HOST, OTHER};
use musubi_test_support::web::{between, Browser, Page};
use musubi_test_support::TestApp;
use uuid::Uuid;

const PAGE: &str = "/settings/notifications";
const MUTE: &str = "/settings/notifications/mute";
/// 川村 owns it (みなと川).
const DOCTORS: &str = "みなと川 連携医グループ";
/// A さくら台 group 川村 is not in.
const SAKURA_FORUM: &str = "さくら台 在宅医療連絡会";
/// A patient of 川村's: nothing of them may show in the list of what was sent.
const PATIENT: &str = "山田 太郎";

async fn group_id(app: &TestApp, association: &str, name: &str) -> Uuid {
    sqlx::query_scalar("SELECT id FROM groups WHERE name = $1")
        .bind(name)
        .fetch_one(&mut *app.tenant_tx(association).await)
        .await
        .unwrap()
}

/// Follows a 303 as a browser does (the `#fragment` stays in the browser).
async fn follow(b: &mut Browser, app: &TestApp, res: &Page) -> Page {
    assert_eq!(res.status, StatusCode::SEE_OTHER, "{}", res.body);
    let to = res.location().split('#').next().unwrap().to_owned();
    b.get(app, &to).await
}

/// The saved (mode, daily time) of a person, if they ever saved any.
async fn saved(app: &TestApp, user: PersonId) -> Option<(String, String)> {
    sqlx::query_as(
        "SELECT email_mode, to_char(daily_at, 'HH24:MI') FROM core.notification_settings \
         WHERE user_id = $1",
    )
    .bind(user)
    .fetch_optional(app.db.db.pool())
    .await
    .unwrap()
}

async fn mutes(app: &TestApp, user: PersonId) -> Vec<Uuid> {
    sqlx::query_scalar("SELECT group_id FROM core.notification_mutes WHERE user_id = $1")
        .bind(user)
        .fetch_all(app.db.db.pool())
        .await
        .unwrap()
}

/// The `action` audit records of `user` in association `slug`: their details.
async fn audited(
    app: &TestApp,
    slug: &str,
    action: &str,
    user: PersonId,
) -> Vec<serde_json::Value> {
    sqlx::query_scalar("SELECT detail FROM audit_log WHERE action = $1 AND actor_id = $2")
        .bind(action)
        .bind(user)
        .fetch_all(&mut *app.tenant_tx(slug).await)
        .await
        .unwrap()
}

/// The `<li>` of one group in 「グループごとの設定」.
fn group_item(body: &str, id: Uuid) -> &str {
    between(body, &format!("id=\"group-{id}\""), "</li>")
}

#[tokio::test]
async fn the_page_shows_the_mode_and_daily_at_07_30_is_saved_shown_again_and_audited() {
    let app = TestApp::demo().await;
    let me = app.user_id(CLINIC_DOCTOR).await;
    let mut doctor = Browser::signed_in(&app, CLINIC_DOCTOR).await;

    let page = doctor.get(&app, PAGE).await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.body);
    assert!(page.body.contains("<h1 id=\"page-title\">通知の設定</h1>"));
    // Where the mails go, and the defaults: すぐに, 18:00.
    assert!(page.body.contains(CLINIC_DOCTOR));
    assert!(page.body.contains("すぐに（数分まとめて）"));
    assert!(page.body.contains("1時間ごと"));
    assert!(page.body.contains("毎日決まった時刻"));
    assert!(page.body.contains("送らない"));
    assert!(page
        .body
        .contains("name=\"mode\" value=\"immediate\" checked"));
    assert!(!page.body.contains("value=\"daily\" checked"));
    assert!(page
        .body
        .contains("name=\"daily_at\" type=\"time\" step=\"60\" value=\"18:00\""));
    assert!(page.body.contains("href=\"/help/mail\""));
    // The header's menu leads here, marked as the current page.
    assert!(page
        .body
        .contains("href=\"/settings/notifications\" aria-current=\"page\">通知の設定</a>"));
    // So does the home page's account section.
    let home = doctor.get(&app, "/home").await;
    assert!(home
        .body
        .contains("<a class=\"menu__link\" href=\"/settings/notifications\">"));

    let sent = doctor
        .post(
            &app,
            PAGE,
            &[
                ("csrf", &page.csrf()),
                ("mode", "daily"),
                ("daily_at", "07:30"),
            ],
        )
        .await;
    assert_eq!(sent.location(), "/settings/notifications?done=saved");
    let shown = follow(&mut doctor, &app, &sent).await;
    assert!(shown.body.contains("保存しました。"), "{}", shown.body);
    assert!(shown.body.contains("name=\"mode\" value=\"daily\" checked"));
    assert!(!shown.body.contains("value=\"immediate\" checked"));
    assert!(shown.body.contains("value=\"07:30\""));
    // A reload without the notice shows the same.
    let again = doctor.get(&app, PAGE).await;
    assert!(!again.body.contains("保存しました。"));
    assert!(again.body.contains("name=\"mode\" value=\"daily\" checked"));
    assert!(again.body.contains("value=\"07:30\""));

    assert_eq!(
        saved(&app, me).await,
        Some(("daily".to_owned(), "07:30".to_owned()))
    );
    let records = audited(&app, HOST, "notification.settings", me).await;
    assert_eq!(records.len(), 1, "{records:?}");
    assert_eq!(records[0]["email_mode"], "daily");
    assert_eq!(records[0]["daily_at"], "07:30");

    // Another mode with the time field emptied keeps the saved time; the English page says it
    // in English.
    let sent = doctor
        .submit(&app, PAGE, PAGE, &[("mode", "off"), ("daily_at", "")])
        .await;
    assert_eq!(sent.status, StatusCode::SEE_OTHER, "{}", sent.body);
    assert_eq!(
        saved(&app, me).await,
        Some(("off".to_owned(), "07:30".to_owned()))
    );
    doctor
        .get(&app, "/lang/en?next=/settings/notifications")
        .await;
    let english = doctor.get(&app, PAGE).await;
    assert!(english.body.contains("Notification settings"));
    assert!(english.body.contains("name=\"mode\" value=\"off\" checked"));
}

#[tokio::test]
async fn a_bad_time_or_mode_is_said_at_its_field_in_japanese_and_keeps_what_was_chosen() {
    let app = TestApp::demo().await;
    let me = app.user_id(CLINIC_DOCTOR).await;
    let mut doctor = Browser::signed_in(&app, CLINIC_DOCTOR).await;
    let page = doctor.get(&app, PAGE).await;
    let csrf = page.csrf();

    let refused = doctor
        .post(
            &app,
            PAGE,
            &[("csrf", &csrf), ("mode", "daily"), ("daily_at", "25:99")],
        )
        .await;
    assert_eq!(refused.status, StatusCode::UNPROCESSABLE_ENTITY);
    let field = between(&refused.body, "for=\"daily-at\"", "</div>");
    assert!(
        field.contains("時刻は「7:30」のように、0:00から23:59までで入れてください。"),
        "{field}"
    );
    assert!(field.contains("value=\"25:99\""));
    assert!(field.contains("aria-invalid=\"true\""));
    assert!(refused
        .body
        .contains("name=\"mode\" value=\"daily\" checked"));
    assert!(!refused.body.contains("value=\"immediate\" checked"));

    // 毎日 without a time.
    let refused = doctor
        .post(
            &app,
            PAGE,
            &[("csrf", &csrf), ("mode", "daily"), ("daily_at", "")],
        )
        .await;
    assert_eq!(refused.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(refused
        .body
        .contains("「毎日決まった時刻」のときは、送る時刻を入れてください。"));

    // A mode nobody offered: said at the choices, the typed time kept.
    let refused = doctor
        .post(
            &app,
            PAGE,
            &[("csrf", &csrf), ("mode", "weekly"), ("daily_at", "06:15")],
        )
        .await;
    assert_eq!(refused.status, StatusCode::UNPROCESSABLE_ENTITY);
    let choices = between(&refused.body, "<fieldset", "</fieldset>");
    assert!(choices.contains("メールで知らせるタイミングを選んでください。"));
    assert!(!choices.contains(" checked"));
    assert!(refused.body.contains("value=\"06:15\""));

    // A form without its token changes nothing either.
    let forged = doctor
        .post(&app, PAGE, &[("mode", "off"), ("daily_at", "07:00")])
        .await;
    assert_eq!(forged.status, StatusCode::FORBIDDEN);

    assert_eq!(saved(&app, me).await, None);
    assert!(audited(&app, HOST, "notification.settings", me)
        .await
        .is_empty());
}

#[tokio::test]
async fn a_group_is_muted_and_unmuted_on_the_page_but_a_group_not_ones_own_is_not_found() {
    let app = TestApp::demo().await;
    let me = app.user_id(CLINIC_DOCTOR).await;
    let doctors = group_id(&app, HOST, DOCTORS).await;
    let mut doctor = Browser::signed_in(&app, CLINIC_DOCTOR).await;

    let page = doctor.get(&app, PAGE).await;
    let item = group_item(&page.body, doctors);
    assert!(item.contains(DOCTORS));
    assert!(item.contains("メールで知らせます"));
    assert!(item.contains("name=\"muted\" value=\"1\""));
    assert!(item.contains(">メールで知らせない</button>"));

    let sent = doctor
        .post(
            &app,
            MUTE,
            &[
                ("csrf", &page.csrf()),
                ("group_id", &doctors.to_string()),
                ("muted", "1"),
            ],
        )
        .await;
    assert_eq!(
        sent.location(),
        format!("/settings/notifications?done=muted#group-{doctors}")
    );
    let shown = follow(&mut doctor, &app, &sent).await;
    assert!(shown
        .body
        .contains("保存しました。このグループのことは、メールで知らせません。"));
    let item = group_item(&shown.body, doctors);
    assert!(item.contains("メールで知らせない設定です"), "{item}");
    assert!(item.contains("name=\"muted\" value=\"0\""));
    assert!(item.contains(">メールで知らせる（元に戻す）</button>"));
    assert_eq!(mutes(&app, me).await, vec![doctors]);
    assert_eq!(audited(&app, HOST, "notification.mute", me).await.len(), 1);
    // Still so on reload; the other groups are untouched.
    let again = doctor.get(&app, PAGE).await;
    assert!(group_item(&again.body, doctors).contains("メールで知らせない設定です"));
    assert_eq!(again.body.matches("メールで知らせない設定です").count(), 1);

    // A group of another association 川村 is not in, an unknown id, a malformed one: the
    // normal 404 page, nothing changed.
    let foreign = group_id(&app, OTHER, SAKURA_FORUM).await;
    for id in [foreign.to_string(), Uuid::new_v4().to_string(), "x".into()] {
        let refused = doctor
            .post(
                &app,
                MUTE,
                &[("csrf", &page.csrf()), ("group_id", &id), ("muted", "1")],
            )
            .await;
        assert!(refused.is_not_found(), "{id}: {}", refused.status);
    }
    assert_eq!(mutes(&app, me).await, vec![doctors]);
    assert!(!again.body.contains(SAKURA_FORUM));

    // Back to mail.
    let sent = doctor
        .post(
            &app,
            MUTE,
            &[
                ("csrf", &page.csrf()),
                ("group_id", &doctors.to_string()),
                ("muted", "0"),
            ],
        )
        .await;
    let shown = follow(&mut doctor, &app, &sent).await;
    assert!(shown
        .body
        .contains("保存しました。このグループのことも、メールで知らせます。"));
    assert!(group_item(&shown.body, doctors).contains("メールで知らせます"));
    assert!(mutes(&app, me).await.is_empty());
}

#[tokio::test]
async fn what_was_sent_is_listed_in_japan_time_with_its_state_and_nothing_of_the_mail() {
    let app = TestApp::demo().await;
    let me = app.user_id(CLINIC_DOCTOR).await;
    let mut doctor = Browser::signed_in(&app, CLINIC_DOCTOR).await;

    let page = doctor.get(&app, PAGE).await;
    assert!(page.body.contains("送ったお知らせ"));
    assert!(page.body.contains("まだ送ったお知らせはありません。"));

    // One of each state; the stored text names a patient, which the list must never show.
    for (i, state) in ["sent", "sending", "retrying", "failed", "interrupted"]
        .into_iter()
        .enumerate()
    {
        sqlx::query(
            "INSERT INTO core.notifications \
               (user_id, channel, kind, state, subject, body, unread, created_at, sent_at) \
             VALUES ($1, 'email', 'digest', $2, $3, $4, $5, \
                     timestamptz '2026-03-04 15:05:00+00' + make_interval(mins => $6), \
                     CASE WHEN $2 = 'sent' THEN timestamptz '2026-03-04 15:05:00+00' END)",
        )
        .bind(me)
        .bind(state)
        .bind(format!("{PATIENT}さんの件"))
        .bind(format!("{PATIENT}さん（85歳・在宅酸素）に新しいコメント"))
        .bind(i32::try_from(i).unwrap() + 3)
        .bind(i32::try_from(i).unwrap())
        .execute(app.db.db.pool())
        .await
        .unwrap();
    }

    let page = doctor.get(&app, PAGE).await;
    let list = between(&page.body, "id=\"sent\"", "</section>");
    assert!(!list.contains(PATIENT), "{list}");
    assert!(!list.contains("在宅酸素"));
    assert!(!list.contains("まだ送ったお知らせはありません。"));
    // 15:05 UTC is 00:05 the next day in Japan.
    assert!(list.contains("2026年3月5日 00:05"), "{list}");
    assert!(list.contains("2026年3月5日 00:09"));
    for words in [
        "送信済み",
        "送信中",
        "再送待ち",
        "送れませんでした",
        "中断（送られたか不明）",
    ] {
        assert!(list.contains(words), "{words}: {list}");
    }
    assert!(list.contains("メール"));
    assert!(list.contains("未読 3 件"));
    assert!(list.contains("未読 7 件"));
    // Newest first.
    assert!(list.find("中断（送られたか不明）").unwrap() < list.find("送信済み").unwrap());
}

#[tokio::test]
async fn signed_out_the_page_sends_to_sign_in_and_a_form_changes_nothing() {
    let app = TestApp::demo().await;
    let me = app.user_id(CLINIC_DOCTOR).await;
    let mut visitor = Browser::new();
    let res = visitor.get(&app, PAGE).await;
    assert_eq!(res.status, StatusCode::SEE_OTHER);
    assert_eq!(res.location(), "/signin?next=/settings/notifications");

    // A form from a session that has ended: to sign in, nothing saved.
    let mut doctor = Browser::signed_in(&app, CLINIC_DOCTOR).await;
    let page = doctor.get(&app, PAGE).await;
    doctor.cookies.remove("musubi_session");
    let res = doctor
        .post(
            &app,
            PAGE,
            &[
                ("csrf", &page.csrf()),
                ("mode", "off"),
                ("daily_at", "07:00"),
            ],
        )
        .await;
    assert_eq!(res.status, StatusCode::SEE_OTHER);
    assert!(res.location().starts_with("/signin?"), "{}", res.location());
    assert_eq!(saved(&app, me).await, None);
}

#[tokio::test]
async fn the_mail_help_is_public_names_the_domain_and_speaks_english_on_request() {
    let app = TestApp::demo().await;
    let mut visitor = Browser::new();
    let page = visitor.get(&app, "/help/mail").await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.body);
    assert!(page.body.contains("<html lang=\"ja\""));
    assert!(page
        .body
        .contains("携帯電話のメールでお知らせを受け取るには"));
    for carrier in ["docomo", "au", "SoftBank", "楽天モバイル"] {
        assert!(page.body.contains(carrier), "{carrier}");
    }
    assert!(page.body.contains("指定受信"));
    assert!(page.body.contains("受信リスト設定"));
    assert!(page.body.contains("差出人（From）"));
    // The domain to allow: this site's (the test browser's host).
    assert!(page.body.contains("data-mail-domain>musubi.test</strong>"));
    assert!(page.body.contains("「musubi.test」を入れて"));
    assert!(page.body.contains("迷惑メールフォルダ"));
    assert!(page.body.contains("患者さんのお名前や病状は書きません。"));
    // Signed out: offered to sign in, no menu.
    assert!(page
        .body
        .contains("href=\"/signin?next=/settings/notifications\""));
    assert!(!page.body.contains("site-menu"));

    let switch = visitor.get(&app, "/lang/en?next=/help/mail").await;
    assert_eq!(switch.status, StatusCode::SEE_OTHER);
    assert_eq!(switch.location(), "/help/mail");
    let english = visitor.get(&app, "/help/mail").await;
    assert_eq!(english.status, StatusCode::OK);
    assert!(english.body.contains("<html lang=\"en\""));
    assert!(english.body.contains("Step by step"));
    assert!(english.body.contains("Check the spam folder too"));
    assert!(english
        .body
        .contains("Mails never hold patient information"));
    assert!(english.body.contains("musubi.test"));
    assert!(!english.body.contains("迷惑メールフォルダ"));

    // Signed in, the same page with the menu and a way to the settings.
    let mut doctor = Browser::signed_in(&app, CLINIC_DOCTOR).await;
    let page = doctor.get(&app, "/help/mail").await;
    assert_eq!(page.status, StatusCode::OK);
    assert!(page
        .body
        .contains("<a class=\"menu__link\" href=\"/settings/notifications\">"));
}
