//! 至急 on the topic page: the nurse's urgent reply in a patient group, naming nobody, asks the
//! attending doctor (shown with its badge, who was asked as 主治医, 確認待ち and when the reminder
//! comes); the doctor confirms it with 「至急の確認をしました」 and the comment says 確認済み with
//! his name, while its author never gets the button. A refused urgent reply (someone named who
//! is not in the group, a value that is no one, nobody to ask in a group that is not about a
//! patient) is said in Japanese at its checkbox with the text and the choices kept, and posts
//! nothing; one sent after the session ended goes to sign in and posts nothing either.

use chrono::{DateTime, FixedOffset, Utc};
use http::StatusCode;
use musubi_test_support::demo::{CLINIC_DOCTOR, HOST, NURSE, OTHER_DOCTOR};
use musubi_test_support::web::{between, Browser, Page};
use musubi_test_support::TestApp;
use uuid::Uuid;

/// A patient group: 川村 owns it and is the patient's attending doctor; 青木 is a member.
const YAMADA_REPORT: &str = "訪問看護報告（退院後初回）";
/// In 多職種連携の会, a group about no patient: 青木 is a member.
const FORUM_TOPIC: &str = "1月の多職種研修会のお知らせ（人生会議・ACP）";

const REPORT: &str = "SpO2 86%（O2 1L）、呼吸苦の訴えあり。\n酸素流量の指示をお願いします。";

fn topic_path(topic: Uuid) -> String {
    format!("/a/{HOST}/t/{topic}")
}

async fn topic_id(app: &TestApp, title: &str) -> Uuid {
    sqlx::query_scalar("SELECT id FROM topics WHERE title = $1")
        .bind(title)
        .fetch_one(&mut *app.tenant_tx(HOST).await)
        .await
        .unwrap_or_else(|e| panic!("topic {title}: {e}"))
}

/// How many comments the topic has.
async fn comment_count(app: &TestApp, topic: Uuid) -> i64 {
    sqlx::query_scalar("SELECT count(*) FROM comments WHERE topic_id = $1")
        .bind(topic)
        .fetch_one(&mut *app.tenant_tx(HOST).await)
        .await
        .unwrap()
}

/// The topic's urgent requests: (comment, seq, stage, remind_at).
async fn requests(app: &TestApp, topic: Uuid) -> Vec<(Uuid, i32, String, DateTime<Utc>)> {
    sqlx::query_as(
        "SELECT r.comment_id, c.seq, r.stage, r.remind_at FROM urgent_requests r \
         JOIN comments c ON c.id = r.comment_id WHERE r.topic_id = $1 ORDER BY c.seq",
    )
    .bind(topic)
    .fetch_all(&mut *app.tenant_tx(HOST).await)
    .await
    .unwrap()
}

/// `HH:MM` in Japan.
fn jst(at: DateTime<Utc>) -> String {
    let japan = FixedOffset::east_opt(9 * 3600).unwrap();
    at.with_timezone(&japan).format("%H:%M").to_string()
}

/// Follows a 303 as a browser does (the `#fragment` stays in the browser).
async fn follow(b: &mut Browser, app: &TestApp, res: &Page) -> Page {
    assert_eq!(res.status, StatusCode::SEE_OTHER, "{}", res.body);
    let to = res.location().split('#').next().unwrap().to_owned();
    b.get(app, &to).await
}

/// The comment `seq` as the page shows it.
fn comment(page: &Page, seq: i32) -> &str {
    between(&page.body, &format!("id=\"c-{seq}\""), "</article>")
}

/// The reply form's text box.
fn reply_box(page: &Page) -> &str {
    between(&page.body, "id=\"reply-body\"", "</textarea>")
}

/// Ends every session of `email` as the idle timeout would.
async fn expire_sessions(app: &TestApp, email: &str) {
    let user = app.user_id(email).await;
    sqlx::query(
        "UPDATE core.sessions SET idle_expires_at = now() - interval '1 minute' WHERE user_id = $1",
    )
    .bind(Uuid::from(user))
    .execute(app.db.db.pool())
    .await
    .unwrap();
}

#[tokio::test]
async fn an_urgent_reply_asks_the_attending_doctor_who_confirms_it_on_the_page() {
    let app = TestApp::demo().await;
    let topic = topic_id(&app, YAMADA_REPORT).await;
    let page_path = topic_path(topic);
    let doctor_id = app.user_id(CLINIC_DOCTOR).await;
    let nurse_id = app.user_id(NURSE).await;
    let mut nurse = Browser::signed_in(&app, NURSE).await;

    // The reply form offers 至急 and, folded, the members who see the topic (not herself).
    let page = nurse.get(&app, &page_path).await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.body);
    let form = between(&page.body, "id=\"reply\"", "</form>");
    assert!(form.contains("name=\"urgent\" value=\"1\""), "{form}");
    assert!(form.contains("至急（確認を求める）"));
    assert!(form.contains("だれも選ばないと、患者グループでは主治医に確認を求めます"));
    assert!(form.contains("<details class=\"ask__who\""));
    assert!(form.contains(&format!("name=\"ask\" value=\"{doctor_id}\"")));
    assert!(form.contains("川村 健一"));
    assert!(!form.contains(&format!("name=\"ask\" value=\"{nurse_id}\"")));
    let before = comment_count(&app, topic).await;

    let sent = nurse
        .post(
            &app,
            &format!("{page_path}/comments"),
            &[("csrf", &page.csrf()), ("body", REPORT), ("urgent", "1")],
        )
        .await;
    assert_eq!(sent.location(), format!("{page_path}?done=replied#latest"));
    assert_eq!(comment_count(&app, topic).await, before + 1);
    let found = requests(&app, topic).await;
    assert_eq!(found.len(), 1, "{found:?}");
    let (comment_id, seq, stage, remind_at) = found[0].clone();
    assert_eq!(stage, "asked");

    let shown = follow(&mut nurse, &app, &sent).await;
    let mine = comment(&shown, seq);
    assert!(
        mine.contains("<span class=\"mark mark--urgent\">至急</span>"),
        "{mine}"
    );
    assert!(
        mine.contains("確認を求めた人：川村 健一（主治医）"),
        "{mine}"
    );
    assert!(mine.contains("<span class=\"urgent__stage\">確認待ち</span>"));
    assert!(
        mine.contains(&format!(
            "{} までに確認がなければ再通知します",
            jst(remind_at)
        )),
        "{mine}"
    );
    assert!(mine.contains("<span class=\"urgent__label\">依頼</span>"));
    // The author cannot confirm her own request.
    assert!(!mine.contains("至急の確認をしました"), "{mine}");
    assert!(!mine.contains("urgent-ack"));

    // The doctor sees it and confirms it.
    let mut doctor = Browser::signed_in(&app, CLINIC_DOCTOR).await;
    let page = doctor.get(&app, &page_path).await;
    let theirs = comment(&page, seq);
    let action = format!("{page_path}/c/{comment_id}/urgent-ack");
    assert!(theirs.contains(&format!("action=\"{action}\"")), "{theirs}");
    assert!(theirs.contains(">至急の確認をしました</button>"));
    let done = doctor
        .post(
            &app,
            &action,
            &[("csrf", &page.csrf()), ("seq", &seq.to_string())],
        )
        .await;
    assert_eq!(
        done.location(),
        format!("{page_path}?done=acknowledged#c-{seq}")
    );
    assert_eq!(requests(&app, topic).await[0].2, "acknowledged");
    let after = follow(&mut doctor, &app, &done).await;
    let theirs = comment(&after, seq);
    assert!(theirs.contains(">確認済み（川村 健一、"), "{theirs}");
    assert!(theirs.contains(">確認（川村 健一）</span>"));
    assert!(!theirs.contains("までに確認がなければ"));
    assert!(!theirs.contains("至急の確認をしました"));

    // The nurse sees who confirmed it; in English too.
    let again = nurse.get(&app, &page_path).await;
    assert!(comment(&again, seq).contains(">確認済み（川村 健一、"));
    nurse.get(&app, &format!("/lang/en?next={page_path}")).await;
    let english = nurse.get(&app, &page_path).await;
    let mine = comment(&english, seq);
    assert!(mine.contains(">Urgent</span>"), "{mine}");
    assert!(mine.contains("Confirmed (川村 健一, "), "{mine}");
    assert!(english.body.contains("Urgent (ask for confirmation)"));
}

#[tokio::test]
async fn a_refused_urgent_reply_is_said_at_its_checkbox_and_keeps_what_was_typed() {
    let app = TestApp::demo().await;
    let topic = topic_id(&app, YAMADA_REPORT).await;
    let page_path = topic_path(topic);
    let doctor_id = app.user_id(CLINIC_DOCTOR).await.to_string();
    // 高橋 is in さくら台 only: not a member of 山田's group.
    let stranger = app.user_id(OTHER_DOCTOR).await.to_string();
    let mut nurse = Browser::signed_in(&app, NURSE).await;
    let token = nurse.get(&app, &page_path).await.csrf();
    let before = comment_count(&app, topic).await;

    for forged in [stranger.as_str(), "not-a-person"] {
        let refused = nurse
            .post(
                &app,
                &format!("{page_path}/comments"),
                &[
                    ("csrf", &token),
                    ("body", REPORT),
                    ("urgent", "1"),
                    ("ask", &doctor_id),
                    ("ask", forged),
                ],
            )
            .await;
        assert_eq!(refused.status, StatusCode::UNPROCESSABLE_ENTITY, "{forged}");
        let at_checkbox = between(&refused.body, "id=\"reply-urgent\"", "</details>");
        assert!(
            at_checkbox.contains(
                "<p class=\"field__error\" id=\"urgent-error\" role=\"alert\">選んだ人の中に、\
                 このグループのメンバーでない人か、このトピックを見られない人がいます。"
            ),
            "{at_checkbox}"
        );
        assert!(at_checkbox.contains("name=\"urgent\" value=\"1\" checked"));
        // What was chosen stays chosen, with the list open.
        assert!(at_checkbox.contains("<details class=\"ask__who\" id=\"reply-ask\" open>"));
        assert!(at_checkbox.contains(&format!("name=\"ask\" value=\"{doctor_id}\" checked")));
        let text = reply_box(&refused);
        assert!(
            text.contains("SpO2 86%（O2 1L）、呼吸苦の訴えあり。\n酸素流量の指示をお願いします。"),
            "{text}"
        );
    }
    assert_eq!(comment_count(&app, topic).await, before, "nothing posted");
    assert!(requests(&app, topic).await.is_empty());

    // A group about no patient has no attending doctor: someone must be named.
    let forum = topic_id(&app, FORUM_TOPIC).await;
    let forum_path = topic_path(forum);
    let page = nurse.get(&app, &forum_path).await;
    assert!(page
        .body
        .contains("このグループは患者グループではないので、確認を求める人を選んでください。"));
    let before = comment_count(&app, forum).await;
    let refused = nurse
        .post(
            &app,
            &format!("{forum_path}/comments"),
            &[
                ("csrf", &page.csrf()),
                ("body", "研修会の会場を至急ご確認ください。"),
                ("urgent", "1"),
            ],
        )
        .await;
    assert_eq!(refused.status, StatusCode::UNPROCESSABLE_ENTITY);
    let at_checkbox = between(&refused.body, "id=\"reply-urgent\"", "</details>");
    assert!(
        at_checkbox.contains("確認を求める人を選んでください。"),
        "{at_checkbox}"
    );
    assert!(reply_box(&refused).contains("研修会の会場を至急ご確認ください。"));
    assert_eq!(comment_count(&app, forum).await, before, "nothing posted");
}

#[tokio::test]
async fn an_urgent_reply_sent_after_the_session_ended_goes_to_sign_in_and_posts_nothing() {
    let app = TestApp::demo().await;
    let topic = topic_id(&app, YAMADA_REPORT).await;
    let page_path = topic_path(topic);
    let mut nurse = Browser::signed_in(&app, NURSE).await;
    let token = nurse.get(&app, &page_path).await.csrf();
    let before = comment_count(&app, topic).await;

    expire_sessions(&app, NURSE).await;
    let res = nurse
        .post(
            &app,
            &format!("{page_path}/comments"),
            &[("csrf", &token), ("body", REPORT), ("urgent", "1")],
        )
        .await;
    assert_eq!(res.status, StatusCode::UNAUTHORIZED, "{}", res.body);
    assert!(res.body.contains("送信できませんでした"));
    assert!(
        res.body
            .contains(&format!("name=\"next\" value=\"{page_path}\"")),
        "back to the topic after signing in"
    );
    assert!(
        res.body.contains("酸素流量の指示をお願いします。"),
        "the text is in sight"
    );
    assert_eq!(comment_count(&app, topic).await, before, "nothing posted");
    assert!(requests(&app, topic).await.is_empty());
}

#[tokio::test]
async fn the_link_in_a_mail_or_push_opens_the_comment_and_nothing_else_for_strangers() {
    let app = TestApp::demo().await;
    let topic = topic_id(&app, YAMADA_REPORT).await;
    let (comment, seq): (Uuid, i32) = sqlx::query_as(
        "SELECT id, seq FROM comments WHERE topic_id = $1 ORDER BY seq DESC LIMIT 1",
    )
    .bind(topic)
    .fetch_one(&mut *app.tenant_tx(HOST).await)
    .await
    .unwrap();
    let link = format!("{}/c/{comment}", topic_path(topic));

    let mut doctor = Browser::signed_in(&app, CLINIC_DOCTOR).await;
    let res = doctor.get(&app, &link).await;
    assert_eq!(res.status, StatusCode::SEE_OTHER, "{}", res.body);
    assert_eq!(
        res.location(),
        format!("{}?from=link&start={seq}#c-{seq}", topic_path(topic))
    );
    let page = doctor.get(&app, res.location()).await;
    assert_eq!(page.status, StatusCode::OK);
    assert!(page.body.contains(&format!("id=\"c-{seq}\"")));

    // Someone outside the group: the ordinary 404, nothing of the topic.
    let mut stranger = Browser::signed_in(&app, OTHER_DOCTOR).await;
    let res = stranger.get(&app, &link).await;
    assert!(res.is_not_found(), "{} {}", res.status, res.body);
    // Signed out: sign in, then back to the link.
    let res = Browser::default().get(&app, &link).await;
    assert_eq!(res.status, StatusCode::SEE_OTHER);
    assert!(res.location().starts_with("/signin"), "{}", res.location());
}
