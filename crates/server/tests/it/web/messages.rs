//! Direct messages on the web: 青木 (みなと川) finds 中村 (さくら台) on 「新しいメッセージ」, ticks
//! her, searches again without losing the text or the tick, and sends; the conversation is its
//! topic's page, titled with the other person, leading back to the list, without 至急 or topic
//! settings. 中村 sees it on her list and on her home page; writing to her again continues the
//! same conversation. The list shows the conversations of both associations, newest first.
//! When さくら台's administrator forbids messages with other associations, a new message and a
//! reply are refused in Japanese with their text kept. Someone not in a conversation, an
//! association administrator included, gets the 404 page for it; a participant may leave it.

use http::StatusCode;
use musubi_test_support::demo::{
    ADMIN, CLINIC_DOCTOR, HOST, NURSE, OTHER, OTHER_ADMIN, OTHER_DOCTOR, OTHER_NURSE, PHARMACIST,
};
use musubi_test_support::web::{between, Browser, Page};
use musubi_test_support::TestApp;

const NEW: &str = "/a/minatogawa/messages/new";
const NURSE_NAME: &str = "青木 さくら";
const OTHER_NURSE_NAME: &str = "中村 愛";
const OTHER_DOCTOR_NAME: &str = "高橋 誠";

/// Follows a 303 as a browser does (the `#fragment` stays in the browser).
async fn follow(b: &mut Browser, app: &TestApp, res: &Page) -> Page {
    assert_eq!(res.status, StatusCode::SEE_OTHER, "{}", res.body);
    let to = res.location().split('#').next().unwrap().to_owned();
    b.get(app, &to).await
}

/// The text right after `marker` up to the next `"` (an attribute's value).
fn value_after(body: &str, marker: &str) -> String {
    let (_, rest) = body
        .split_once(marker)
        .unwrap_or_else(|| panic!("no {marker} in {body}"));
    rest.split('"').next().unwrap_or_default().to_owned()
}

/// The topic path a sent message went to (from its 303).
fn conversation_of(res: &Page) -> String {
    assert_eq!(res.status, StatusCode::SEE_OTHER, "{}", res.body);
    res.location().split('?').next().unwrap().to_owned()
}

/// Sends a first message from the new-message page of `slug` to `to`.
async fn write(b: &mut Browser, app: &TestApp, slug: &str, to: &[&str], body: &str) -> Page {
    let path = format!("/a/{slug}/messages/new");
    let mut fields: Vec<(&str, &str)> = to.iter().map(|id| ("to", *id)).collect();
    fields.push(("body", body));
    b.submit(app, &path, &path, &fields).await
}

/// Turns さくら台's 「ほかの医師会の人とのメッセージを許可する」 off on its console.
async fn forbid_other_associations(app: &TestApp) {
    let mut admin = Browser::signed_in(app, OTHER_ADMIN).await;
    let settings = format!("/a/{OTHER}/console/settings");
    let res = admin
        .submit(
            app,
            &settings,
            &settings,
            &[
                ("idle_minutes", "30"),
                ("absolute_hours", "8"),
                ("retention_years", "7"),
                ("urgent_minutes", "15"),
            ],
        )
        .await;
    assert_eq!(res.status, StatusCode::SEE_OTHER, "{}", res.body);
}

#[tokio::test]
async fn a_message_is_found_chosen_sent_and_continued_and_the_other_sees_it() {
    let app = TestApp::demo().await;
    let nakamura = app.user_id(OTHER_NURSE).await.to_string();
    let mut aoki = Browser::signed_in(&app, NURSE).await;

    // Nothing yet: the list says what messages are, and offers a new one here.
    let list = aoki.get(&app, "/messages").await;
    assert_eq!(list.status, StatusCode::OK, "{}", list.body);
    assert!(list.body.contains("<h1 id=\"page-title\">メッセージ</h1>"));
    assert!(list.body.contains("まだメッセージはありません。"));
    assert!(list
        .body
        .contains(&format!("href=\"{NEW}\">新しいメッセージ</a>")));
    // The menu leads to it, marked as the current page; so does the home page.
    assert!(list
        .body
        .contains("href=\"/messages\" aria-current=\"page\">メッセージ</a>"));
    let home = aoki.get(&app, "/home").await;
    assert!(home
        .body
        .contains("button--secondary\" href=\"/messages\">メッセージ</a>"));

    // She finds 中村 of さくら台 by her reading.
    let found = aoki.get(&app, &format!("{NEW}?q=なかむら")).await;
    assert_eq!(found.status, StatusCode::OK, "{}", found.body);
    assert!(found
        .body
        .contains("<label class=\"field__label\" for=\"people-q\">送る相手を探す</label>"));
    let picker = between(
        &found.body,
        "<fieldset class=\"people-picker\"",
        "</fieldset>",
    );
    assert!(
        picker.contains(&format!("name=\"to\" value=\"{nakamura}\"")),
        "{picker}"
    );
    assert!(picker.contains(OTHER_NURSE_NAME));
    assert!(
        picker.contains("看護師｜さくら台訪問看護ステーション｜さくら台医師会"),
        "{picker}"
    );

    // She ticks her, types, and searches again for someone else: nothing is lost.
    let text = "中村さん、来週の退院前カンファレンスの時間を教えてください。";
    let again = aoki
        .post(
            &app,
            NEW,
            &[
                ("csrf", &found.csrf()),
                ("q", "たかはし"),
                ("to", &nakamura),
                ("who", &format!("{nakamura} {OTHER_NURSE_NAME}｜看護師")),
                ("body", text),
                ("find", "1"),
            ],
        )
        .await;
    assert_eq!(again.status, StatusCode::OK, "{}", again.body);
    assert!(again.body.contains(&format!("{text}</textarea>")));
    let picker = between(
        &again.body,
        "<fieldset class=\"people-picker\"",
        "</fieldset>",
    );
    assert!(
        picker.contains(&format!("name=\"to\" value=\"{nakamura}\" checked")),
        "{picker}"
    );
    assert!(picker.contains(OTHER_NURSE_NAME));
    assert!(
        picker.contains(OTHER_DOCTOR_NAME),
        "the new search's result: {picker}"
    );

    // Sent: the conversation's page, hosted by みなと川.
    let sent = write(&mut aoki, &app, HOST, &[&nakamura], text).await;
    let path = conversation_of(&sent);
    assert!(path.starts_with("/a/minatogawa/t/"), "{path}");
    assert!(sent.location().contains("?done=message_sent"));
    let page = follow(&mut aoki, &app, &sent).await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.body);
    assert!(page.body.contains(&format!(
        "<h1 id=\"page-title\">メッセージ：{OTHER_NURSE_NAME}</h1>"
    )));
    assert!(page.body.contains("メッセージを送りました。"));
    assert!(page
        .body
        .contains("<p class=\"back-link\"><a href=\"/messages\">← メッセージの一覧へ</a></p>"));
    assert!(page.body.contains(text));
    assert!(
        !page.body.contains("id=\"reply-urgent\""),
        "no 至急 in a conversation"
    );
    assert!(
        !page.body.contains("id=\"topic-settings\""),
        "no topic settings"
    );
    assert!(
        !page.body.contains("href=\"/a/minatogawa/g/"),
        "no link to a group"
    );
    assert!(page.body.contains(">このメッセージから抜ける</button>"));
    assert!(
        !page.body.contains(">人を追加する</a>"),
        "one-to-one: nobody to add"
    );
    // The draft kept on her phone is done.
    assert!(page.body.contains("data-draft-sent=\""));

    // 中村 finds it on her list, unread, and at the top of her home page.
    let mut nakamura_b = Browser::signed_in(&app, OTHER_NURSE).await;
    let list = nakamura_b.get(&app, "/messages").await;
    let item = between(&list.body, &format!("href=\"{path}\""), "</a>");
    assert!(item.contains(NURSE_NAME), "{item}");
    assert!(item.contains("未読 1"), "{item}");
    assert!(item.contains("みなと川医師会"), "{item}");
    assert!(item.contains("来週の退院前カンファレンス"), "{item}");
    let home = nakamura_b.get(&app, "/home").await;
    let section = between(
        &home.body,
        "<h2 id=\"messages-title\">メッセージ</h2>",
        "</section>",
    );
    assert!(
        section.contains(&format!("href=\"{path}#unread\"")),
        "{section}"
    );
    assert!(section.contains(NURSE_NAME));
    // Not as a group among the unread comments.
    let unread = between(&home.body, "id=\"unread-title\"", "</section>");
    assert!(!unread.contains(NURSE_NAME), "{unread}");

    // Writing to her again continues the same conversation.
    let more = write(&mut aoki, &app, HOST, &[&nakamura], "追記です。").await;
    assert_eq!(conversation_of(&more), path);
    assert!(more.location().contains("?done=message_continued"));
    let page = follow(&mut aoki, &app, &more).await;
    assert!(page.body.contains("これまでのやりとりに続けて送りました。"));
}

#[tokio::test]
async fn the_list_shows_the_conversations_of_both_associations_newest_first() {
    let app = TestApp::demo().await;
    let aoki_id = app.user_id(NURSE).await.to_string();
    let nakamura = app.user_id(OTHER_NURSE).await.to_string();
    let mut aoki = Browser::signed_in(&app, NURSE).await;
    let mut takahashi = Browser::signed_in(&app, OTHER_DOCTOR).await;

    let first = write(
        &mut aoki,
        &app,
        HOST,
        &[&nakamura],
        "みなと川からの連絡です。",
    )
    .await;
    let first = conversation_of(&first);
    let second = write(
        &mut takahashi,
        &app,
        OTHER,
        &[&aoki_id],
        "さくら台からの連絡です。",
    )
    .await;
    let second = conversation_of(&second);
    assert!(second.starts_with("/a/sakuradai/t/"), "{second}");

    let list = aoki.get(&app, "/messages").await;
    let items = between(&list.body, "<ul class=\"group-list\"", "</ul>");
    let (a, b) = (
        items
            .find(&format!("href=\"{second}\""))
            .expect("さくら台's"),
        items
            .find(&format!("href=\"{first}\""))
            .expect("みなと川's"),
    );
    assert!(a < b, "the newest first: {items}");
    let newest = between(items, &format!("href=\"{second}\""), "</a>");
    assert!(newest.contains(OTHER_DOCTOR_NAME));
    assert!(newest.contains("さくら台医師会"));
    assert!(newest.contains("高橋 誠："), "{newest}");
    assert!(newest.contains("未読 1"));
    let older = between(items, &format!("href=\"{first}\""), "</a>");
    assert!(older.contains(OTHER_NURSE_NAME));
    assert!(older.contains("みなと川医師会"));
    assert!(
        !older.contains("未読"),
        "her own message is not unread: {older}"
    );

    // The conversation's page names the other person; its group's page leads to it.
    let page = aoki.get(&app, &second).await;
    assert_eq!(page.status, StatusCode::OK);
    assert!(page.body.contains(&format!(
        "<h1 id=\"page-title\">メッセージ：{OTHER_DOCTOR_NAME}</h1>"
    )));
    let leave = value_after(
        &page.body,
        "conversation-tools__leave\" method=\"post\" action=\"",
    );
    let group = leave
        .trim_end_matches("/leave")
        .replace("/messages/", "/g/");
    let res = aoki.get(&app, &group).await;
    assert_eq!(res.status, StatusCode::SEE_OTHER, "{group}");
    assert_eq!(res.location(), second);
}

#[tokio::test]
async fn a_message_refused_by_an_associations_policy_keeps_its_text() {
    let app = TestApp::demo().await;
    let nakamura = app.user_id(OTHER_NURSE).await.to_string();
    let mut aoki = Browser::signed_in(&app, NURSE).await;
    let before = write(&mut aoki, &app, HOST, &[&nakamura], "はじめまして。").await;
    let path = conversation_of(&before);

    // Nobody chosen, or nothing written: said at the field, what was there kept.
    let res = write(&mut aoki, &app, HOST, &[], "宛先なし").await;
    assert_eq!(res.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(res.body.contains("送る相手を1人以上選んでください。"));
    assert!(res.body.contains("宛先なし</textarea>"));
    let res = write(&mut aoki, &app, HOST, &[&nakamura], "  ").await;
    assert_eq!(res.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(res.body.contains("メッセージを入力してください"));
    assert!(res
        .body
        .contains(&format!("name=\"to\" value=\"{nakamura}\" checked")));

    forbid_other_associations(&app).await;

    // A new message to さくら台: refused calmly, the text and the choice kept.
    let text = "退院後の訪問予定について相談させてください。\n金曜の午後はいかがでしょうか。";
    let res = write(&mut aoki, &app, HOST, &[&nakamura], text).await;
    assert_eq!(res.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", res.body);
    assert!(res.body.contains(
        "相手の方の医師会（またはこの医師会）の方針で、ほかの医師会の人とのメッセージは使えません。"
    ));
    assert!(res.body.contains(&format!("{text}</textarea>")));
    assert!(res
        .body
        .contains(&format!("name=\"to\" value=\"{nakamura}\" checked")));

    // A reply in the conversation that exists: refused too, its text kept in the reply box.
    let reply = "了解しました。";
    let res = aoki
        .submit(&app, &path, &format!("{path}/comments"), &[("body", reply)])
        .await;
    assert_eq!(res.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", res.body);
    let form = between(&res.body, "<form class=\"reply\"", "</form>");
    assert!(
        form.contains("いまはほかの医師会の人とのメッセージは送れません"),
        "{form}"
    );
    assert!(form.contains(&format!("{reply}</textarea>")));
    // What was written stays readable.
    assert!(res.body.contains("はじめまして。"));
}

#[tokio::test]
async fn someone_outside_a_conversation_gets_the_not_found_page() {
    let app = TestApp::demo().await;
    let nakamura = app.user_id(OTHER_NURSE).await.to_string();
    let kawamura = app.user_id(CLINIC_DOCTOR).await.to_string();
    let mut aoki = Browser::signed_in(&app, NURSE).await;
    let sent = write(
        &mut aoki,
        &app,
        HOST,
        &[&nakamura, &kawamura],
        "三人で相談です。",
    )
    .await;
    let path = conversation_of(&sent);
    let page = follow(&mut aoki, &app, &sent).await;
    // Several people: more may be added.
    assert!(page.body.contains(">人を追加する</a>"), "{}", page.body);
    let add = value_after(&page.body, "conversation-tools__add\" href=\"");
    let add_page = aoki.get(&app, &add).await;
    assert_eq!(add_page.status, StatusCode::OK, "{}", add_page.body);
    assert!(add_page.body.contains("メッセージに人を追加する"));

    // A colleague who is not in it, and みなと川's administrator.
    for email in [PHARMACIST, ADMIN] {
        let mut b = Browser::signed_in(&app, email).await;
        let res = b.get(&app, &path).await;
        assert!(res.is_not_found(), "{email}: {}", res.status);
        let res = b.get(&app, &add).await;
        assert!(res.is_not_found(), "{email}: {}", res.status);
        let list = b.get(&app, "/messages").await;
        assert!(!list.body.contains(&path), "{email}");
    }

    // 川村 leaves it: it is gone from his list; the others still have it.
    let mut kawamura_b = Browser::signed_in(&app, CLINIC_DOCTOR).await;
    let page = kawamura_b.get(&app, &path).await;
    let leave = value_after(
        &page.body,
        "conversation-tools__leave\" method=\"post\" action=\"",
    );
    assert!(leave.ends_with("/leave"), "{leave}");
    let res = kawamura_b
        .post(&app, &leave, &[("csrf", &page.csrf())])
        .await;
    let list = follow(&mut kawamura_b, &app, &res).await;
    assert!(list.body.contains("メッセージから抜けました。"));
    assert!(!list.body.contains(&path));
    let list = aoki.get(&app, "/messages").await;
    assert!(list.body.contains(&path));
}
