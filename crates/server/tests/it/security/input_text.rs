//! One input-text rule for every text field (`musubi_domain::text`, docs/security.md "Input
//! text"): a NUL or another control character never reaches PostgreSQL and is never answered
//! `INTERNAL`. Single-line fields refuse it (`INVALID_INPUT` naming the field), multi-line
//! fields drop it, e-mail addresses used to find an account answer as for an unknown address,
//! and tokens answer as for an unknown token. Valid values still work, normalised.

use http::StatusCode;
use musubi_demo::DEMO_PASSWORD;
use musubi_test_support::demo::{ADMIN, HOST, NURSE};
use musubi_test_support::web::Browser;
use musubi_test_support::{error_codes, strip_locations, TestApp, SIGN_IN};
use serde_json::{json, Value};

/// Characters a single-line field refuses: NUL, BEL, ESC, DEL, a C1 control, a line break,
/// a bidi override (it reorders what people see), a noncharacter.
const REFUSED: &[&str] = &[
    "\u{0}", "\u{7}", "\u{1b}", "\u{7f}", "\u{85}", "\n", "\u{202e}", "\u{2066}", "\u{fffe}",
];

const CREATE_GROUP: &str = "mutation($n: String!, $d: String!) { \
    createGroup(kind: GENERAL, name: $n, description: $d) { id name description } }";
const UPDATE_GROUP: &str = "mutation($id: ID!, $n: String, $d: String) { \
    updateGroup(id: $id, name: $n, description: $d) { name description } }";
const CREATE_TOPIC: &str = "mutation($g: ID!, $t: String!, $b: String!) { \
    createTopic(groupId: $g, title: $t, body: $b) }";
const UPDATE_TOPIC: &str = "mutation($id: ID!, $t: String) { updateTopic(id: $id, title: $t) }";
const POST_COMMENT: &str = "mutation($t: ID!, $b: String!) { postComment(topicId: $t, body: $b) }";
const EDIT_COMMENT: &str =
    "mutation($id: ID!, $b: String!) { editComment(id: $id, body: $b, important: false) }";
const TOPIC: &str = "query($id: ID!) { topic(id: $id) { topic { title } comments { body } } }";
const INVITE_TO_GROUP: &str =
    "mutation($g: ID!, $e: String!) { inviteToGroupByEmail(groupId: $g, email: $e) }";
const AUDIT: &str = "query($f: AuditFilterInput) { auditLog(filter: $f) { records { action } } }";
const REQUEST_RESET: &str = "mutation($e: String!) { requestPasswordReset(email: $e) }";
const RESET: &str =
    "mutation($t: String!, $p: String!) { resetPassword(token: $t, newPassword: $p) }";
const INVITE_MEMBER: &str =
    "mutation($e: String) { inviteMember(email: $e, role: MEMBER) { id link } }";
const PREVIEW: &str = "query($t: String!) { invitation(token: $t) { associationSlug } }";
const ACCEPT: &str = "mutation($t: String!, $i: AcceptInvitationInput!) { \
    acceptInvitation(token: $t, input: $i) { token next } }";

struct World {
    app: TestApp,
    nurse: String,
    admin: String,
}

impl World {
    async fn new() -> Self {
        let app = TestApp::demo().await;
        let nurse = app.demo_token(NURSE).await;
        let admin = app.demo_token(ADMIN).await;
        Self { app, nurse, admin }
    }

    async fn as_nurse(&self, query: &str, vars: Value) -> Value {
        self.app
            .gql(query, vars, Some(&self.nurse), Some(HOST))
            .await
    }

    async fn as_admin(&self, query: &str, vars: Value) -> Value {
        self.app
            .gql(query, vars, Some(&self.admin), Some(HOST))
            .await
    }

    async fn ok_as_nurse(&self, query: &str, vars: Value) -> Value {
        let r = self.as_nurse(query, vars).await;
        assert!(r["errors"].is_null(), "{query}: {r}");
        r["data"].clone()
    }

    async fn group(&self) -> String {
        let d = self
            .ok_as_nurse(CREATE_GROUP, json!({"n": "入力の会", "d": ""}))
            .await;
        d["createGroup"]["id"].as_str().unwrap().to_owned()
    }
}

/// The one error of `r`: `INVALID_INPUT` on `field`.
#[track_caller]
fn assert_invalid(r: &Value, field: &str, what: &str) {
    assert_eq!(error_codes(r), ["INVALID_INPUT"], "{what}: {r}");
    assert_eq!(r["errors"][0]["extensions"]["field"], field, "{what}: {r}");
}

#[tokio::test]
async fn group_names_refuse_control_characters_and_descriptions_drop_them() {
    let w = World::new().await;
    for c in REFUSED {
        let name = format!("訪問{c}看護");
        let r = w.as_nurse(CREATE_GROUP, json!({"n": name, "d": ""})).await;
        assert_invalid(&r, "name", &format!("name with {c:?}"));
    }
    let r = w
        .as_nurse(CREATE_GROUP, json!({"n": "訪問\u{0}看護", "d": ""}))
        .await;
    assert_eq!(
        r["errors"][0]["extensions"]["reasons"],
        json!(["FORBIDDEN_CHARACTER"]),
        "{r}"
    );
    let r = w
        .as_nurse(CREATE_GROUP, json!({"n": "あ".repeat(101), "d": ""}))
        .await;
    assert_invalid(&r, "name", "a name of 101 characters");
    assert_eq!(r["errors"][0]["extensions"]["reasons"], json!(["TOO_LONG"]));
    let r = w
        .as_nurse(CREATE_GROUP, json!({"n": "説明", "d": "あ".repeat(2001)}))
        .await;
    assert_invalid(&r, "description", "a description of 2,001 characters");

    // Valid: trimmed, NFC (e + combining acute is é), and the description keeps its lines
    // and tabs but loses the NUL, the bell and the override; CRLF becomes LF.
    let d = w
        .ok_as_nurse(
            CREATE_GROUP,
            json!({"n": "  Cafe\u{301} の会 ", "d": "一行目\r\n\t二\u{0}行\u{7}目\u{202e}\n"}),
        )
        .await;
    assert_eq!(d["createGroup"]["name"], "Caf\u{e9} の会");
    assert_eq!(d["createGroup"]["description"], "一行目\n\t二行目");
    let id = d["createGroup"]["id"].as_str().unwrap().to_owned();

    let r = w
        .as_nurse(UPDATE_GROUP, json!({"id": id, "n": "新\u{0}名"}))
        .await;
    assert_invalid(&r, "name", "updated name with NUL");
    let d = w
        .ok_as_nurse(UPDATE_GROUP, json!({"id": id, "d": "\u{0}説明\u{0}"}))
        .await;
    assert_eq!(d["updateGroup"]["description"], "説明");
    assert_eq!(d["updateGroup"]["name"], "Caf\u{e9} の会");
}

#[tokio::test]
async fn topic_titles_refuse_control_characters_and_bodies_drop_them() {
    let w = World::new().await;
    let group = w.group().await;
    for c in REFUSED {
        let title = format!("夜間{c}の吸引");
        let r = w
            .as_nurse(CREATE_TOPIC, json!({"g": group, "t": title, "b": "本文"}))
            .await;
        assert_invalid(&r, "title", &format!("title with {c:?}"));
    }
    let r = w
        .as_nurse(
            CREATE_TOPIC,
            json!({"g": group, "t": "あ".repeat(201), "b": "本文"}),
        )
        .await;
    assert_invalid(&r, "title", "a title of 201 characters");
    // A body of nothing but controls is empty.
    let r = w
        .as_nurse(
            CREATE_TOPIC,
            json!({"g": group, "t": "題名", "b": "\u{0}\u{7}\u{202e}"}),
        )
        .await;
    assert_invalid(&r, "body", "a body of control characters only");

    let d = w
        .ok_as_nurse(
            CREATE_TOPIC,
            json!({"g": group, "t": "  吸引\u{3099}について ", "b": "痰が\u{0}多い\r\n夜間"}),
        )
        .await;
    let topic = d["createTopic"].as_str().unwrap().to_owned();
    let r = w
        .as_nurse(UPDATE_TOPIC, json!({"id": topic, "t": "題\u{0}名"}))
        .await;
    assert_invalid(&r, "title", "updated title with NUL");

    let r = w
        .as_nurse(POST_COMMENT, json!({"t": topic, "b": "\u{0}"}))
        .await;
    assert_invalid(&r, "body", "a comment of a NUL");
    let d = w
        .ok_as_nurse(POST_COMMENT, json!({"t": topic, "b": "了解\u{0}です"}))
        .await;
    let comment = d["postComment"].as_str().unwrap().to_owned();
    let r = w
        .as_nurse(EDIT_COMMENT, json!({"id": comment, "b": "\u{0}\u{1b}"}))
        .await;
    assert_invalid(&r, "body", "an edit of control characters only");
    w.ok_as_nurse(
        EDIT_COMMENT,
        json!({"id": comment, "b": "了解\u{7}しました"}),
    )
    .await;

    let d = w.ok_as_nurse(TOPIC, json!({"id": topic})).await;
    assert_eq!(d["topic"]["topic"]["title"], "吸引\u{3099}について");
    let bodies: Vec<&str> = d["topic"]["comments"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["body"].as_str().unwrap())
        .collect();
    assert_eq!(bodies, ["痰が多い\n夜間", "了解しました"]);
}

#[tokio::test]
async fn an_invitation_to_a_group_refuses_an_address_with_control_characters() {
    let w = World::new().await;
    let group = w.group().await;
    for email in [
        "kawamura@minatogawa.example\u{0}",
        "kawa\u{0}mura@minatogawa.example",
        "kawa\u{85}mura@minatogawa.example",
        "\u{202e}kawamura@minatogawa.example",
    ] {
        let r = w
            .as_nurse(INVITE_TO_GROUP, json!({"g": group, "e": email}))
            .await;
        assert_invalid(&r, "email", &format!("{email:?}"));
    }
    // Full-width letters and at sign, as typed on a Japanese keyboard: NFKC finds the person.
    let r = w
        .as_nurse(
            INVITE_TO_GROUP,
            json!({"g": group, "e": " ｋａｗａｍｕｒａ＠minatogawa.example "}),
        )
        .await;
    assert!(r["errors"].is_null(), "{r}");
}

#[tokio::test]
async fn the_audit_filter_refuses_control_characters_and_still_filters() {
    let w = World::new().await;
    for (key, field) in [
        ("action", "action"),
        ("objectType", "objectType"),
        ("objectId", "objectId"),
    ] {
        for c in ["\u{0}", "\u{7}", "\u{202e}"] {
            let r = w
                .as_admin(AUDIT, json!({"f": {key: format!("auth{c}")}}))
                .await;
            assert_invalid(&r, field, &format!("{key} with {c:?}"));
        }
    }
    let r = w
        .as_admin(AUDIT, json!({"f": {"action": "a".repeat(65)}}))
        .await;
    assert_invalid(&r, "action", "an action filter of 65 characters");
    // Trimmed and NFKC: a full-width filter typed on a Japanese keyboard still finds records.
    let r = w
        .as_admin(AUDIT, json!({"f": {"action": " ａｕｔｈ "}}))
        .await;
    assert!(r["errors"].is_null(), "{r}");
    let actions = r["data"]["auditLog"]["records"].as_array().unwrap();
    assert!(!actions.is_empty(), "{r}");
    assert!(actions
        .iter()
        .all(|a| a["action"].as_str().unwrap().starts_with("auth.")));
}

#[tokio::test]
async fn a_sign_in_with_control_characters_in_the_address_fails_like_a_wrong_password() {
    let app = TestApp::demo().await;
    let unknown = app
        .gql(
            SIGN_IN,
            json!({"e": "nobody@minatogawa.example", "p": DEMO_PASSWORD}),
            None,
            None,
        )
        .await;
    assert_eq!(error_codes(&unknown), ["INVALID_CREDENTIALS"], "{unknown}");
    for email in [
        "aoki@minatogawa.example\u{0}",
        "ao\u{0}ki@minatogawa.example",
        "aoki@minatogawa.example\u{7}",
        "\u{202e}aoki@minatogawa.example",
        &format!("{}@minatogawa.example", "a".repeat(300)),
    ] {
        let r = app
            .gql(SIGN_IN, json!({"e": email, "p": DEMO_PASSWORD}), None, None)
            .await;
        assert_eq!(
            strip_locations(r.clone()),
            strip_locations(unknown.clone()),
            "{email:?}"
        );
    }
    // Full-width, with spaces around: the same person.
    let r = app
        .gql(
            SIGN_IN,
            json!({"e": " ａｏｋｉ＠ｍｉｎａｔｏｇａｗａ．ｅｘａｍｐｌｅ ", "p": DEMO_PASSWORD}),
            None,
            None,
        )
        .await;
    assert_eq!(r["data"]["signIn"]["next"], "DONE", "{r}");
}

#[tokio::test]
async fn a_password_reset_for_an_address_with_control_characters_answers_as_for_any_address() {
    let app = TestApp::demo().await;
    for email in [
        "aoki@minatogawa.example\u{0}",
        "a\u{0}",
        "\u{202e}aoki@minatogawa.example",
        "nobody@minatogawa.example",
    ] {
        let r = app
            .gql(REQUEST_RESET, json!({"e": email}), None, None)
            .await;
        assert!(r["errors"].is_null(), "{email:?}: {r}");
        assert_eq!(r["data"]["requestPasswordReset"], true, "{email:?}");
    }
    // A token with a NUL is an unknown token.
    let r = app
        .gql(
            RESET,
            json!({"t": "abc\u{0}def", "p": "Kango-Station-2026!"}),
            None,
            None,
        )
        .await;
    assert_eq!(error_codes(&r), ["PASSWORD_RESET_INVALID"], "{r}");
}

#[tokio::test]
async fn invitations_refuse_control_characters_and_bad_tokens_are_unknown_tokens() {
    let w = World::new().await;
    let r = w
        .as_admin(INVITE_MEMBER, json!({"e": "new\u{0}@musubi.test"}))
        .await;
    assert_invalid(&r, "email", "an invitation address with NUL");

    for token in ["abc\u{0}", "\u{0}", &"x\u{7}".repeat(50)] {
        let r = w.app.gql(PREVIEW, json!({"t": token}), None, None).await;
        assert_eq!(error_codes(&r), ["INVITATION_INVALID"], "{token:?}: {r}");
    }

    // An in-person invitation: the invitee types address and names.
    let r = w.as_admin(INVITE_MEMBER, json!({"e": null})).await;
    let link = r["data"]["inviteMember"]["link"].as_str().unwrap();
    let token = link.rsplit('/').next().unwrap().to_owned();
    let person = |email: &str, name: &str, kana: &str| {
        json!({
            "email": email,
            "password": "Kango-Station-2026!",
            "name": name,
            "nameKana": kana,
            "profession": "nurse",
        })
    };
    for (input, field) in [
        (
            person("new\u{0}@musubi.test", "西村 はるか", "にしむら"),
            "email",
        ),
        (
            person("new@musubi.test", "西村\u{0}はるか", "にしむら"),
            "name",
        ),
        (
            person("new@musubi.test", "西村 はるか", "にし\u{202e}むら"),
            "nameKana",
        ),
    ] {
        let r = w
            .app
            .gql(ACCEPT, json!({"t": token, "i": input}), None, None)
            .await;
        assert_invalid(&r, field, &format!("{input}"));
    }
    let r = w
        .app
        .gql(
            ACCEPT,
            json!({"t": token, "i": person(" ＮＥＷ@musubi.test ", "西村　はるか", "にしむら はるか")}),
            None,
            None,
        )
        .await;
    assert_eq!(r["data"]["acceptInvitation"]["next"], "DONE", "{r}");
    let stored: String = sqlx::query_scalar("SELECT email FROM core.users WHERE name = $1")
        .bind("西村　はるか")
        .fetch_one(w.app.db.db.pool())
        .await
        .unwrap();
    assert_eq!(stored, "NEW@musubi.test");
}

#[tokio::test]
async fn a_nul_in_a_web_form_is_answered_on_the_page_never_with_a_server_error() {
    let app = TestApp::demo().await;

    // Sign-in: like a wrong password.
    let mut b = Browser::default();
    let res = b
        .sign_in(&app, "aoki@minatogawa.example\u{0}", DEMO_PASSWORD)
        .await;
    assert_eq!(res.status, StatusCode::UNAUTHORIZED, "{}", res.body);
    assert!(res
        .body
        .contains("メールアドレスかパスワードがちがいます。"));

    // Password reset: the same page as for any address.
    let res = b
        .submit(&app, "/reset", "/reset", &[("email", "a\u{0}@b.example")])
        .await;
    assert!(
        res.status.is_redirection() || res.status == StatusCode::OK,
        "{}",
        res.body
    );

    // A new group: the message next to the name.
    let mut nurse = Browser::signed_in(&app, NURSE).await;
    let form = format!("/a/{HOST}/groups/new");
    let res = nurse
        .submit(
            &app,
            &form,
            &form,
            &[
                ("kind", "general"),
                ("name", "訪問\u{0}看護"),
                ("description", ""),
            ],
        )
        .await;
    assert_eq!(res.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", res.body);
    assert!(res.body.contains("制御文字"), "{}", res.body);

    // A new topic: the message next to the title; the body keeps what was typed.
    let groups: Vec<uuid::Uuid> = {
        let mut tx = app.tenant_tx(HOST).await;
        sqlx::query_scalar("SELECT id FROM groups WHERE name = '多職種連携の会'")
            .fetch_all(&mut *tx)
            .await
            .unwrap()
    };
    let form = format!("/a/{HOST}/g/{}/new", groups[0]);
    let res = nurse
        .submit(
            &app,
            &form,
            &form,
            &[
                ("title", "夜間\u{1b}の吸引"),
                ("body", "本文です"),
                ("scope", "everyone"),
            ],
        )
        .await;
    assert_eq!(res.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", res.body);
    assert!(res.body.contains("制御文字"), "{}", res.body);
    assert!(res.body.contains("本文です"));
}
