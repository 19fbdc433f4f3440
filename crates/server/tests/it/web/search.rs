//! Free-word search on the web: the box in every signed-in page's header, `GET /search` with
//! its results (matched words marked, each linking to where it was written), paging, refusals
//! said in Japanese at the box, and a result opened without marking the rest of its topic read.
//! What a person may not read is never found.

use http::StatusCode;
use musubi_test_support::demo::{CARE_MANAGER, HOSPITAL_DOCTOR, HOST, NURSE, OTHER_NURSE};
use musubi_test_support::web::{between, Browser, Page};
use musubi_test_support::TestApp;
use std::collections::HashSet;
use uuid::Uuid;

const YAMADA: &str = "山田 太郎さん（85歳・在宅酸素）";

/// A query-string value, percent-encoded.
fn enc(s: &str) -> String {
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

async fn search(b: &mut Browser, app: &TestApp, query: &str) -> Page {
    b.get(app, &format!("/search?q={}", enc(query))).await
}

async fn group_id(app: &TestApp, name: &str) -> Uuid {
    sqlx::query_scalar("SELECT id FROM groups WHERE name = $1")
        .bind(name)
        .fetch_one(&mut *app.tenant_tx(HOST).await)
        .await
        .unwrap()
}

/// `user`'s unread comments in `topic`.
async fn unread_in_topic(app: &TestApp, user: Uuid, topic: Uuid) -> i32 {
    sqlx::query_scalar::<_, i32>("SELECT count FROM unread WHERE user_id = $1 AND topic_id = $2")
        .bind(user)
        .bind(topic)
        .fetch_optional(&mut *app.tenant_tx(HOST).await)
        .await
        .unwrap()
        .unwrap_or(0)
}

/// An attribute's value as the browser reads it (askama writes `&` as `&#38;`).
fn unescape(value: &str) -> String {
    value.replace("&#38;", "&").replace("&amp;", "&")
}

/// The `href` of every result card, unescaped.
fn result_links(page: &Page) -> Vec<String> {
    page.body
        .match_indices("class=\"search-hit ")
        .map(|(i, _)| {
            let rest = &page.body[i..];
            let start = rest.find("href=\"").unwrap() + 6;
            let end = start + rest[start..].find('"').unwrap();
            unescape(&rest[start..end])
        })
        .collect()
}

/// The 「次の…件」 link, unescaped.
fn next_link(page: &Page) -> Option<String> {
    let at = page.body.find("rel=\"next\"")?;
    let start = page.body[..at].rfind("href=\"").unwrap() + 6;
    let end = start + page.body[start..].find('"').unwrap();
    Some(unescape(&page.body[start..end]))
}

/// Posts a topic (everyone in the group) and two replies as the care manager: a topic the
/// nurse has three comments unread in, the second of which mentions 血圧.
async fn topic_with_unread(app: &TestApp, group: Uuid) -> Uuid {
    let mut cm = Browser::signed_in(app, CARE_MANAGER).await;
    let form = format!("/a/{HOST}/g/{group}/new");
    let res = cm
        .submit(
            app,
            &form,
            &form,
            &[
                ("title", "夜間の様子"),
                ("body", "夜間の様子を共有します。"),
                ("scope", "everyone"),
            ],
        )
        .await;
    assert_eq!(res.status, StatusCode::SEE_OTHER, "{}", res.body);
    let topic: Uuid = res
        .location()
        .strip_prefix(&format!("/a/{HOST}/t/"))
        .and_then(|rest| rest.split('?').next())
        .unwrap()
        .parse()
        .unwrap();
    let page = format!("/a/{HOST}/t/{topic}");
    for body in [
        "本日の血圧は 142/88 でした。ふらつきはありません。",
        "夕食は半分ほど召し上がりました。",
    ] {
        let res = cm
            .submit(app, &page, &format!("{page}/comments"), &[("body", body)])
            .await;
        assert_eq!(res.status, StatusCode::SEE_OTHER, "{}", res.body);
    }
    topic
}

#[tokio::test]
async fn a_nurse_searches_from_the_box_and_opens_the_comment_without_reading_the_rest() {
    let app = TestApp::demo().await;
    let yamada = group_id(&app, YAMADA).await;
    let topic = topic_with_unread(&app, yamada).await;
    let nurse_id: Uuid = app.user_id(NURSE).await.into();
    let mut nurse = Browser::signed_in(&app, NURSE).await;

    // Every signed-in page has the box: a GET form to /search, with a real label.
    let home = nurse.get(&app, "/home").await;
    let form = between(&home.body, "role=\"search\"", "</form>");
    assert!(home
        .body
        .contains("<form class=\"site-search\" method=\"get\" action=\"/search\""));
    assert!(form.contains("<label class=\"visually-hidden\" for=\"site-search-q\">"));
    assert!(form.contains("name=\"q\""));

    let found = search(&mut nurse, &app, "血圧").await;
    assert_eq!(found.status, StatusCode::OK, "{}", found.body);
    assert!(
        found
            .body
            .contains("<h2 id=\"search-results-title\">1件</h2>"),
        "{}",
        found.body
    );
    assert!(found.body.contains("<mark>血圧</mark>"));
    assert!(found.body.contains("コメント 2"));
    assert!(found.body.contains("夜間の様子"), "the topic's title");
    assert!(found.body.contains("森田"), "who wrote it");
    let link = format!("/a/{HOST}/t/{topic}?from=search&start=2#c-2");
    assert_eq!(result_links(&found), vec![link.clone()]);
    assert!(
        found.body.contains("value=\"血圧\""),
        "the box keeps the query"
    );
    // The header does not repeat the page's own box.
    assert!(!found.body.contains("site-search-q"));

    // Width and spaces do not matter: 「血圧　１４２」 finds the same comment, both words marked.
    let found = search(&mut nurse, &app, "血圧　１４２").await;
    assert_eq!(result_links(&found), vec![link.clone()]);
    assert!(found.body.contains("<mark>142</mark>"));

    // Opening the result leaves the other comments of the topic unread (a page without the
    // script reports nothing seen); opening the topic itself reads them all.
    assert_eq!(unread_in_topic(&app, nurse_id, topic).await, 3);
    let opened = nurse.get(&app, link.split('#').next().unwrap()).await;
    assert_eq!(opened.status, StatusCode::OK);
    assert!(
        opened.body.contains("id=\"c-2\""),
        "the comment is on the page"
    );
    assert_eq!(unread_in_topic(&app, nurse_id, topic).await, 3);
    nurse.get(&app, &format!("/a/{HOST}/t/{topic}")).await;
    assert_eq!(unread_in_topic(&app, nurse_id, topic).await, 0);
}

#[tokio::test]
async fn an_empty_or_refused_query_is_answered_at_the_box_never_with_an_error_page() {
    let app = TestApp::demo().await;
    let mut nurse = Browser::signed_in(&app, NURSE).await;

    // Nothing typed: the form and how to search.
    for path in [
        "/search",
        "/search?q=",
        "/search?q=%20%E3%80%80",
        "/search?x=%ZZ",
    ] {
        let page = nurse.get(&app, path).await;
        assert_eq!(page.status, StatusCode::OK, "{path}");
        assert!(page.body.contains("検索のしかた"), "{path}");
        assert!(page.body.contains("1文字の言葉でも探せます"), "{path}");
        assert!(!page.body.contains("search-results-title"), "{path}");
    }

    let too_long = "あ".repeat(201);
    let too_many = (1..=11)
        .map(|i| format!("w{i}"))
        .collect::<Vec<_>>()
        .join(" ");
    let refused = [
        (
            format!("/search?q={}", enc("-転倒")),
            "探す言葉を入力してください",
        ),
        (
            format!("/search?q={}", enc("\"　\"")),
            "探す言葉を入力してください",
        ),
        (format!("/search?q={}", enc(&too_long)), "200文字以内"),
        (format!("/search?q={}", enc(&too_many)), "10個まで"),
        (
            format!("/search?q={}&after=not-a-page", enc("血圧")),
            "この続きのページは表示できません",
        ),
        (
            format!("/search?q={}&from=2026-13-40", enc("血圧")),
            "日付は「2026-03-04」のように",
        ),
    ];
    for (path, message) in refused {
        let page = nurse.get(&app, &path).await;
        assert_eq!(
            page.status,
            StatusCode::UNPROCESSABLE_ENTITY,
            "{path}: {}",
            page.body
        );
        assert!(page.body.contains(message), "{path}: {}", page.body);
        assert!(page.body.contains("role=\"alert\""), "{path}");
        assert!(page.body.contains("aria-invalid=\"true\""), "{path}");
    }

    // What was typed comes back escaped.
    let page = search(&mut nurse, &app, "<b>血圧").await;
    assert_eq!(page.status, StatusCode::OK);
    assert!(!page.body.contains("<b>血圧"));
    assert!(page.body.contains("value=\"&#60;b&#62;血圧\""));

    // Signed out: sent to sign in, and back here after.
    let mut visitor = Browser::default();
    let page = visitor.get(&app, "/search?q=x").await;
    assert_eq!(page.status, StatusCode::SEE_OTHER);
    assert!(page.location().starts_with("/signin?next=/search"));
}

#[tokio::test]
async fn the_next_page_continues_where_the_first_ended_without_repeats() {
    let app = TestApp::demo().await;
    let mut nurse = Browser::signed_in(&app, NURSE).await;
    // 「の」 is in most comments of the demo, in both associations the nurse has groups in.
    let first = nurse.get(&app, "/search?q=%E3%81%AE&kind=comment").await;
    assert_eq!(first.status, StatusCode::OK);
    let title = "<h2 id=\"search-results-title\">";
    let shown: i64 = between(&first.body, title, "件</h2>")[title.len()..]
        .parse()
        .unwrap();
    assert!(shown > 20, "enough for two pages: {shown}");
    let mut seen: Vec<String> = result_links(&first);
    assert_eq!(seen.len(), 20);
    assert!(first.body.contains("次の20件"));
    let mut next = next_link(&first);
    while let Some(href) = next {
        assert!(
            href.contains("kind=comment") && href.contains("after="),
            "{href}"
        );
        let page = nurse.get(&app, &href).await;
        assert_eq!(page.status, StatusCode::OK, "{href}");
        let links = result_links(&page);
        assert!(!links.is_empty());
        seen.extend(links);
        next = next_link(&page);
    }
    let unique: HashSet<&String> = seen.iter().collect();
    assert_eq!(unique.len(), seen.len(), "no result twice");
    assert_eq!(
        i64::try_from(seen.len()).unwrap(),
        shown,
        "every result once"
    );
    // Each opens at its comment, which the page then holds.
    assert!(seen.iter().all(|l| {
        let seq = l.rsplit("#c-").next().unwrap_or_default();
        l.contains(&format!("?from=search&start={seq}#c-{seq}"))
    }));
}

#[tokio::test]
async fn an_outsider_never_finds_a_groups_content() {
    let app = TestApp::demo().await;
    let yamada = group_id(&app, YAMADA).await;
    // In 山田's group: the first home-visit report (everyone in the group may read it).
    let word = "体圧分散マットレス";
    let mut member = Browser::signed_in(&app, HOSPITAL_DOCTOR).await;
    let page = search(&mut member, &app, word).await;
    assert_eq!(result_links(&page).len(), 1, "{}", page.body);
    assert!(page.body.contains(YAMADA));

    // さくら台's nurse is in none of みなと川's groups: nothing, even naming the group.
    let mut outsider = Browser::signed_in(&app, OTHER_NURSE).await;
    for path in [
        format!("/search?q={}", enc(word)),
        format!("/search?q={}&group={HOST}:{yamada}", enc(word)),
        format!("/search?q={}&kind=patient", enc("やまだ")),
        format!("/search?q={}", enc("山田")),
    ] {
        let page = outsider.get(&app, &path).await;
        assert_eq!(page.status, StatusCode::OK, "{path}");
        assert!(
            page.body
                .contains("<h2 id=\"search-results-title\">0件</h2>"),
            "{path}"
        );
        assert!(result_links(&page).is_empty(), "{path}");
        assert!(!page.body.contains(YAMADA), "{path}");
    }
}
