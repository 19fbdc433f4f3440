//! Deactivation and account-wide actions across associations, on the demo data: 佐藤 (a
//! hospital doctor) belongs to さくら台 and みなと川 and is in patient groups of both; 青木 (a
//! nurse of みなと川 only) is in a patient group hosted by さくら台.
//!
//! - An association that deactivates a member ends their access to everything it hosts, at
//!   once and after any new sign-in, and answers them exactly like a stranger; the groups of
//!   their other associations stay open; reactivation gives everything back as it was.
//! - A person no association counts as active gets only the page (or the code) that says so.
//! - Signing out everywhere and resetting the second factor act on the whole account: only the
//!   association that answers for it may, and each of the person's associations has it on record.

use http::StatusCode;
use musubi_domain::audit::{self, AuditFilter, RequestMeta};
use musubi_domain::Actor;
use musubi_test_support::web::Browser;
use musubi_test_support::ws::{GqlWs, Reply};
use musubi_test_support::{error_codes, strip_locations, TestApp};
use serde_json::{json, Value};
use std::time::Duration;
use uuid::Uuid;

const ADMIN_M: &str = "admin@minatogawa.example";
const ADMIN_S: &str = "admin@sakuradai.example";
const SATO: &str = "sato@sakuradai-hospital.example";
const AOKI: &str = "aoki@minatogawa.example";
const TAKAHASHI: &str = "takahashi@sakuradai.example";

const GROUP: &str =
    "query($id: ID!) { group(id: $id) { group { id name } members { userId } topics { id } } }";
const TOPIC: &str =
    "query($id: ID!) { topic(id: $id, markRead: false) { topic { id } comments { id } } }";
const POST: &str =
    "mutation($t: ID!) { postComment(topicId: $t, body: \"バイタル：血圧 128/76\") }";
const CREATE_TOPIC: &str =
    "mutation($g: ID!) { createTopic(groupId: $g, title: \"訪問報告\", body: \"本日の様子\") }";
const MY_GROUPS: &str = "{ myGroups { group { id associationSlug } } }";
const UNREAD: &str = "{ unreadCounts { associations { associationSlug } groups { groupId } } home { groups { groupId associationSlug } } }";

/// The id of the demo group whose name starts with `prefix`, and its host's slug.
async fn group_id(app: &TestApp, slug: &str, prefix: &str) -> Uuid {
    let mut tx = app.tenant_tx(slug).await;
    sqlx::query_scalar("SELECT id FROM groups WHERE name LIKE $1 || '%'")
        .bind(prefix)
        .fetch_one(&mut *tx)
        .await
        .unwrap()
}

/// A topic of `group` everyone in it may see.
async fn topic_of(app: &TestApp, slug: &str, group: Uuid) -> Uuid {
    let mut tx = app.tenant_tx(slug).await;
    sqlx::query_scalar("SELECT id FROM topics WHERE group_id = $1 AND scope = 7 LIMIT 1")
        .bind(group)
        .fetch_one(&mut *tx)
        .await
        .unwrap()
}

async fn call(app: &TestApp, token: &str, slug: Option<&str>, query: &str, vars: Value) -> Value {
    app.gql(query, vars, Some(token), slug).await
}

async fn ok(app: &TestApp, token: &str, slug: Option<&str>, query: &str, vars: Value) -> Value {
    let r = call(app, token, slug, query, vars).await;
    assert!(r["errors"].is_null(), "{query}: {r}");
    r["data"].clone()
}

async fn console(app: &TestApp, admin: &str, slug: &str, mutation: &str, user: Uuid) -> Value {
    let token = app.demo_token(admin).await;
    let q = format!("mutation($u: ID!) {{ {mutation}(userId: $u) }}");
    call(app, &token, Some(slug), &q, json!({"u": user.to_string()})).await
}

/// Records of `action` about `user` in `slug`'s log.
async fn records(app: &TestApp, slug: &str, action: &str, user: Uuid) -> Vec<audit::AuditRecord> {
    let tenant = app.services().resolve_tenant(slug).await.unwrap();
    let filter = AuditFilter {
        action_prefix: Some(action.into()),
        object_type: Some("user".into()),
        object_id: Some(user.to_string()),
        ..AuditFilter::default()
    };
    audit::list(&app.db.db, &tenant, &filter, None, Some(200))
        .await
        .unwrap()
        .records
}

fn slugs_in(v: &Value) -> Vec<String> {
    let mut out = Vec::new();
    fn walk(v: &Value, out: &mut Vec<String>) {
        match v {
            Value::Object(m) => {
                for (k, x) in m {
                    if k == "associationSlug" {
                        out.push(x.as_str().unwrap_or_default().to_owned());
                    }
                    walk(x, out);
                }
            }
            Value::Array(a) => a.iter().for_each(|x| walk(x, out)),
            _ => {}
        }
    }
    walk(v, &mut out);
    out
}

/// Every answer `token` gets about さくら台's patient group 伊藤: (query, variables).
fn probes(ito: Uuid, topic: Uuid) -> Vec<(&'static str, Value)> {
    vec![
        (GROUP, json!({"id": ito.to_string()})),
        (TOPIC, json!({"id": topic.to_string()})),
        (POST, json!({"t": topic.to_string()})),
        (CREATE_TOPIC, json!({"g": ito.to_string()})),
        (
            "mutation($g: ID!) { markGroupRead(groupId: $g) }",
            json!({"g": ito.to_string()}),
        ),
    ]
}

#[tokio::test]
async fn a_member_deactivated_by_the_host_loses_its_patient_groups_and_keeps_the_others() {
    let app = TestApp::demo().await;
    let sato = app.user_id(SATO).await;
    let ito = group_id(&app, "sakuradai", "伊藤").await;
    let ito_topic = topic_of(&app, "sakuradai", ito).await;
    let yamada = group_id(&app, "minatogawa", "山田").await;
    let yamada_topic = topic_of(&app, "minatogawa", yamada).await;

    // Before: 佐藤 reads and writes 伊藤さん's group.
    let token = app.demo_token(SATO).await;
    for (q, v) in probes(ito, ito_topic) {
        ok(&app, &token, Some("sakuradai"), q, v).await;
    }

    let r = console(&app, ADMIN_S, "sakuradai", "deactivateMember", sato.into()).await;
    assert_eq!(r["data"]["deactivateMember"], true, "{r}");
    // The open session ended.
    let r = call(
        &app,
        &token,
        Some("sakuradai"),
        GROUP,
        json!({"id": ito.to_string()}),
    )
    .await;
    assert_eq!(error_codes(&r), vec!["UNAUTHENTICATED"], "{r}");

    // Signing in again works (みなと川 still counts him) but opens nothing さくら台 hosts:
    // every answer is that of an object that does not exist.
    let token = app.demo_token(SATO).await;
    let missing = Uuid::now_v7();
    for ((q, v), (_, unknown)) in probes(ito, ito_topic)
        .into_iter()
        .zip(probes(missing, missing))
    {
        let r = call(&app, &token, Some("sakuradai"), q, v).await;
        assert_eq!(error_codes(&r), vec!["NOT_FOUND"], "{q}: {r}");
        let r2 = call(&app, &token, Some("sakuradai"), q, unknown).await;
        assert_eq!(strip_locations(r), strip_locations(r2), "{q}");
    }
    // Nor through the directory, the home page, the badges.
    for q in [MY_GROUPS, UNREAD] {
        let d = ok(&app, &token, None, q, json!({})).await;
        assert!(!slugs_in(&d).contains(&"sakuradai".to_owned()), "{q}: {d}");
        assert!(!d.to_string().contains(&ito.to_string()), "{q}: {d}");
    }
    // 高橋 (the group's owner) no longer sees him among its members.
    let owner = app.demo_token(TAKAHASHI).await;
    let d = ok(
        &app,
        &owner,
        Some("sakuradai"),
        GROUP,
        json!({"id": ito.to_string()}),
    )
    .await;
    assert!(!d.to_string().contains(&sato.to_string()), "{d}");
    // The comment he tried to post never landed.
    let mut tx = app.tenant_tx("sakuradai").await;
    let his: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM comments WHERE author_id = $1 AND body LIKE 'バイタル%'",
    )
    .bind(sato)
    .fetch_one(&mut *tx)
    .await
    .unwrap();
    drop(tx);
    assert_eq!(his, 1, "only the comment posted before deactivation");

    // みなと川's patient group is still his.
    ok(
        &app,
        &token,
        Some("minatogawa"),
        GROUP,
        json!({"id": yamada.to_string()}),
    )
    .await;
    ok(
        &app,
        &token,
        Some("minatogawa"),
        TOPIC,
        json!({"id": yamada_topic.to_string()}),
    )
    .await;
    ok(
        &app,
        &token,
        Some("minatogawa"),
        POST,
        json!({"t": yamada_topic.to_string()}),
    )
    .await;

    // Live updates: catching up from the start replays nothing さくら台 hosts.
    let addr = app.serve().await;
    let mut ws = GqlWs::connect(addr, json!({"token": token})).await.unwrap();
    ws.subscribe(
        "ev",
        "subscription($a: ID) { events(after: $a) { id associationSlug groupId } }",
        json!({"a": "0"}),
    )
    .await;
    let mut seen = 0;
    for reply in ws.replies_during("ev", Duration::from_millis(1500)).await {
        if let Reply::Next(p) = reply {
            assert!(p["errors"].is_null(), "{p}");
            assert_eq!(p["data"]["events"]["associationSlug"], "minatogawa", "{p}");
            seen += 1;
        }
    }
    assert!(seen > 0, "his みなと川 groups' events are replayed");
    ws.close().await;

    // Reactivation gives everything back as it was, from the next sign-in.
    let r = console(&app, ADMIN_S, "sakuradai", "reactivateMember", sato.into()).await;
    assert_eq!(r["data"]["reactivateMember"], true, "{r}");
    let r = call(&app, &token, None, MY_GROUPS, json!({})).await;
    assert_eq!(error_codes(&r), vec!["UNAUTHENTICATED"], "{r}");
    let token = app.demo_token(SATO).await;
    for (q, v) in probes(ito, ito_topic) {
        ok(&app, &token, Some("sakuradai"), q, v).await;
    }
    let d = ok(&app, &token, None, MY_GROUPS, json!({})).await;
    assert!(d.to_string().contains(&ito.to_string()), "{d}");
    let d = ok(
        &app,
        &owner,
        Some("sakuradai"),
        GROUP,
        json!({"id": ito.to_string()}),
    )
    .await;
    assert!(d.to_string().contains(&sato.to_string()), "{d}");
}

#[tokio::test]
async fn a_person_no_association_counts_as_active_gets_only_the_page_that_says_so() {
    let app = TestApp::demo().await;
    let aoki = app.user_id(AOKI).await;
    let ito = group_id(&app, "sakuradai", "伊藤").await;
    let ito_topic = topic_of(&app, "sakuradai", ito).await;
    // A guest in さくら台's group, from みなと川: reads it today.
    let token = app.demo_token(AOKI).await;
    ok(
        &app,
        &token,
        Some("sakuradai"),
        GROUP,
        json!({"id": ito.to_string()}),
    )
    .await;

    let r = console(&app, ADMIN_M, "minatogawa", "deactivateMember", aoki.into()).await;
    assert_eq!(r["data"]["deactivateMember"], true, "{r}");

    // She can still sign in and see who she is, and nothing else.
    let token = app.demo_token(AOKI).await;
    let d = ok(
        &app,
        &token,
        None,
        "{ me { name memberships { associationSlug } } }",
        json!({}),
    )
    .await;
    assert_eq!(d["me"]["memberships"], json!([]), "{d}");
    for (q, v, slug) in [
        (MY_GROUPS, json!({}), None),
        (UNREAD, json!({}), None),
        (GROUP, json!({"id": ito.to_string()}), Some("sakuradai")),
        (
            TOPIC,
            json!({"id": ito_topic.to_string()}),
            Some("sakuradai"),
        ),
        (POST, json!({"t": ito_topic.to_string()}), Some("sakuradai")),
        ("{ openGroups { id } }", json!({}), Some("minatogawa")),
    ] {
        let r = call(&app, &token, slug, q, v).await;
        let mut codes = error_codes(&r);
        codes.dedup();
        assert_eq!(codes, vec!["NO_ACTIVE_MEMBERSHIP"], "{q}: {r}");
        assert!(
            r["data"].is_null() || r["data"].as_object().unwrap().values().all(Value::is_null),
            "{r}"
        );
    }
    // Below the entry points too: the services answer like for a stranger.
    let viewer = app.services().authenticate(&token).await.unwrap().unwrap();
    let tenant = app.services().resolve_tenant("sakuradai").await.unwrap();
    let e = app
        .services()
        .group_view(
            &Actor::new(&viewer, &tenant, &RequestMeta::default()),
            ito.into(),
        )
        .await
        .unwrap_err();
    assert_eq!(e.code.as_str(), "NOT_FOUND");
    assert!(app.services().my_groups(&viewer).await.unwrap().is_empty());

    // A live subscription is refused with the same code.
    let addr = app.serve().await;
    let mut ws = GqlWs::connect(addr, json!({"token": token})).await.unwrap();
    ws.subscribe("ev", "subscription { events { id } }", json!({}))
        .await;
    let errors = match ws.next_reply("ev", Duration::from_secs(5)).await {
        Some(Reply::Error(errors)) => errors,
        Some(Reply::Next(p)) => p["errors"].clone(),
        other => panic!("expected a refusal, got {other:?}"),
    };
    assert_eq!(
        errors[0]["extensions"]["code"], "NO_ACTIVE_MEMBERSHIP",
        "{errors}"
    );
    ws.close().await;

    // On the web: every page is the one that says so, with a way to sign out.
    let mut browser = Browser::signed_in(&app, AOKI).await;
    for path in [
        "/home".to_owned(),
        "/groups".to_owned(),
        format!("/a/sakuradai/g/{ito}"),
        format!("/a/sakuradai/t/{ito_topic}"),
        "/a/minatogawa/console".to_owned(),
    ] {
        let page = browser.get(&app, &path).await;
        assert_eq!(page.status, StatusCode::FORBIDDEN, "{path}");
        assert!(
            page.body.contains("いまは結びを使えません"),
            "{path}: {}",
            page.body
        );
        assert!(!page.body.contains("伊藤"), "{path}");
        assert!(page.body.contains("action=\"/signout\""), "{path}");
    }
    let out = browser.submit(&app, "/home", "/signout", &[]).await;
    assert_eq!(out.status, StatusCode::SEE_OTHER, "{}", out.body);
    let page = browser.get(&app, "/home").await;
    assert_eq!(page.status, StatusCode::SEE_OTHER);

    // Reactivated: everything is back, her guest membership in さくら台's group included.
    let r = console(&app, ADMIN_M, "minatogawa", "reactivateMember", aoki.into()).await;
    assert_eq!(r["data"]["reactivateMember"], true, "{r}");
    let token = app.demo_token(AOKI).await;
    ok(
        &app,
        &token,
        Some("sakuradai"),
        GROUP,
        json!({"id": ito.to_string()}),
    )
    .await;
}

#[tokio::test]
async fn a_burst_of_requests_from_a_deactivated_member_is_refused_and_never_internal() {
    let app = TestApp::demo().await;
    let sato = app.user_id(SATO).await;
    let aoki = app.user_id(AOKI).await;
    let ito = group_id(&app, "sakuradai", "伊藤").await;
    let ito_topic = topic_of(&app, "sakuradai", ito).await;
    let r = console(&app, ADMIN_S, "sakuradai", "deactivateMember", sato.into()).await;
    assert_eq!(r["data"]["deactivateMember"], true, "{r}");
    let r = console(&app, ADMIN_M, "minatogawa", "deactivateMember", aoki.into()).await;
    assert_eq!(r["data"]["deactivateMember"], true, "{r}");
    let sato_token = app.demo_token(SATO).await;
    let aoki_token = app.demo_token(AOKI).await;

    let probes = probes(ito, ito_topic);
    let calls = (0..32).map(|i| {
        let (q, v) = probes[i % probes.len()].clone();
        let (token, expected) = if i % 2 == 0 {
            (sato_token.clone(), "NOT_FOUND")
        } else {
            (aoki_token.clone(), "NO_ACTIVE_MEMBERSHIP")
        };
        let app = &app;
        async move {
            let r = call(app, &token, Some("sakuradai"), q, v).await;
            (q, expected, r)
        }
    });
    for (q, expected, r) in futures_util::future::join_all(calls).await {
        assert_eq!(error_codes(&r), vec![expected], "{q}: {r}");
    }
    // Nothing was written to the group.
    let mut tx = app.tenant_tx("sakuradai").await;
    let written: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM comments WHERE author_id = ANY($1) AND body LIKE 'バイタル%'",
    )
    .bind(vec![sato, aoki])
    .fetch_one(&mut *tx)
    .await
    .unwrap();
    assert_eq!(written, 0);
}

/// 佐藤's home association is みなと川: make his membership there clearly the older one.
async fn make_minatogawa_his_home(app: &TestApp, user: Uuid) {
    sqlx::query(
        "UPDATE core.memberships m SET created_at = now() - CASE a.slug \
             WHEN 'minatogawa' THEN interval '2 years' ELSE interval '1 year' END \
         FROM core.associations a WHERE a.id = m.association_id AND m.user_id = $1",
    )
    .bind(user)
    .execute(app.db.db.pool())
    .await
    .unwrap();
}

#[tokio::test]
async fn account_wide_actions_belong_to_the_home_association_and_are_recorded_everywhere() {
    let app = TestApp::demo().await;
    let sato = app.user_id(SATO).await;
    make_minatogawa_his_home(&app, sato.into()).await;
    let token = app.demo_token(SATO).await;

    // さくら台 is not his home: it may not sign him out everywhere nor reset his second factor.
    for m in ["signOutMember", "resetMemberSecondFactor"] {
        let r = console(&app, ADMIN_S, "sakuradai", m, sato.into()).await;
        assert_eq!(
            error_codes(&r),
            vec!["ACCOUNT_WIDE_ACTION_FORBIDDEN"],
            "{m}: {r}"
        );
    }
    ok(&app, &token, None, MY_GROUPS, json!({})).await;
    assert_eq!(
        records(&app, "sakuradai", "access.denied", sato.into())
            .await
            .len(),
        2
    );
    // The console says so, and whose it is.
    let admin_s = app.demo_token(ADMIN_S).await;
    let d = ok(
        &app,
        &admin_s,
        Some("sakuradai"),
        "{ members { userId accountWideActions homeAssociationName } }",
        json!({}),
    )
    .await;
    let row = d["members"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["userId"] == sato.to_string())
        .unwrap()
        .clone();
    assert_eq!(row["accountWideActions"], false, "{row}");
    assert_eq!(row["homeAssociationName"], "みなと川医師会", "{row}");
    let mut browser = Browser::signed_in(&app, ADMIN_S).await;
    let members = "/a/sakuradai/console/members";
    let page = browser.get(&app, members).await;
    let card = &page.body[page.body.find(&format!("id=\"member-{sato}\"")).unwrap()..];
    let card = &card[..card.find("</details>").unwrap()];
    assert!(card.contains("data-account-wide-note"), "{card}");
    assert!(card.contains("みなと川医師会が管理"), "{card}");
    assert!(!card.contains("/sign-out\""), "{card}");
    let sent = browser
        .submit(&app, members, &format!("{members}/{sato}/sign-out"), &[])
        .await;
    assert_eq!(sent.status, StatusCode::SEE_OTHER);
    assert!(
        sent.location().contains("error=account_wide"),
        "{}",
        sent.location()
    );
    let shown = browser.get(&app, sent.location()).await;
    assert!(
        shown.body.contains("アカウントを管理している医師会だけ"),
        "{}",
        shown.body
    );

    // みなと川 answers for his account: both work, and both associations have them on record.
    let r = console(&app, ADMIN_M, "minatogawa", "signOutMember", sato.into()).await;
    assert!(r["errors"].is_null(), "{r}");
    let r = call(&app, &token, None, MY_GROUPS, json!({})).await;
    assert_eq!(error_codes(&r), vec!["UNAUTHENTICATED"], "{r}");
    let r = console(
        &app,
        ADMIN_M,
        "minatogawa",
        "resetMemberSecondFactor",
        sato.into(),
    )
    .await;
    assert_eq!(r["data"]["resetMemberSecondFactor"], true, "{r}");
    for action in ["member.sign_out", "member.reset_second_factor"] {
        let here = records(&app, "minatogawa", action, sato.into()).await;
        let there = records(&app, "sakuradai", action, sato.into()).await;
        assert_eq!(here.len(), 1, "{action} in みなと川");
        assert_eq!(there.len(), 1, "{action} in さくら台");
        assert_eq!(
            there[0].detail["association"], "minatogawa",
            "{:?}",
            there[0].detail
        );
        assert_eq!(there[0].actor_id, here[0].actor_id);
    }

    // An administrator of both associations may act for both.
    let admin_m = app.user_id(ADMIN_M).await;
    let tenant_s = app.services().resolve_tenant("sakuradai").await.unwrap();
    let mut conn = app.db.db.pool().acquire().await.unwrap();
    musubi_db::accounts::insert_membership(
        &mut conn,
        admin_m,
        tenant_s.id,
        musubi_domain::types::AssociationRole::Admin,
        None,
    )
    .await
    .unwrap();
    drop(conn);
    let r = console(&app, ADMIN_S, "sakuradai", "signOutMember", sato.into()).await;
    assert_eq!(
        error_codes(&r),
        vec!["ACCOUNT_WIDE_ACTION_FORBIDDEN"],
        "{r}"
    );
    let token_m = app.demo_token(ADMIN_M).await;
    let r = call(
        &app,
        &token_m,
        Some("sakuradai"),
        "mutation($u: ID!) { signOutMember(userId: $u) }",
        json!({"u": sato.to_string()}),
    )
    .await;
    assert!(r["errors"].is_null(), "{r}");
}

#[tokio::test]
async fn an_association_alone_with_a_person_acts_on_their_whole_account() {
    let app = TestApp::demo().await;
    let takahashi = app.user_id(TAKAHASHI).await;
    let token = app.demo_token(TAKAHASHI).await;
    let r = console(
        &app,
        ADMIN_S,
        "sakuradai",
        "signOutMember",
        takahashi.into(),
    )
    .await;
    assert!(r["errors"].is_null(), "{r}");
    let r = call(&app, &token, None, MY_GROUPS, json!({})).await;
    assert_eq!(error_codes(&r), vec!["UNAUTHENTICATED"], "{r}");
    // Nobody else to tell: one record, in さくら台.
    assert_eq!(
        records(&app, "sakuradai", "member.sign_out", takahashi.into())
            .await
            .len(),
        1
    );
    assert!(
        records(&app, "minatogawa", "member.sign_out", takahashi.into())
            .await
            .is_empty()
    );
}
