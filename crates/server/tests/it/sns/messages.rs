//! Direct messages through the API: a nurse of みなと川 and a doctor of the neighbouring さくら台
//! write to each other (one conversation per pair, wherever it was started, even when both
//! start it at the same moment); messages have footprints, unread and search like comments;
//! nobody else — not a colleague, not an administrator — sees them; a conversation has one
//! topic and no owner; an association's policy stops messages with other associations at once,
//! also in conversations that exist, and reading stays; every step is audited.

use musubi_test_support::demo::{
    ADMIN, CARE_MANAGER, HOST, NURSE, OTHER, OTHER_ADMIN, OTHER_DOCTOR, PHARMACIST, THERAPIST,
};
use musubi_test_support::{error_codes, TestApp};
use serde_json::{json, Value};
use std::collections::HashMap;

const SEND: &str = "mutation($p: [ID!]!, $b: String!) { sendDirectMessage(people: $p, body: $b) \
    { conversationId topicId commentId associationSlug existing } }";
const LIST: &str = "{ conversations { id topicId associationSlug associationName pair others \
    unread lastAuthorName excerpt } }";
const TOPIC: &str = "query($id: ID!) { topic(id: $id, markRead: true) { canManage \
    topic { id unread } comments { seq body mine readers { name } } audience { name } } }";
const POST: &str = "mutation($t: ID!, $b: String!) { postComment(topicId: $t, body: $b) }";
const ADD: &str = "mutation($c: ID!, $p: [ID!]!) { addToConversation(conversationId: $c, \
    people: $p) }";
const LEAVE: &str = "mutation($c: ID!) { leaveConversation(conversationId: $c) }";
const CANDIDATES: &str = "query($s: String) { messageCandidates(search: $s, first: 50) { userId \
    name associationName } }";
const SEARCH: &str = "query($q: String!) { search(query: $q) { total hits { kind groupId } } }";

struct World {
    app: TestApp,
    tokens: HashMap<&'static str, String>,
}

impl World {
    async fn new() -> Self {
        let app = TestApp::demo().await;
        let mut tokens = HashMap::new();
        for who in [
            NURSE,
            CARE_MANAGER,
            PHARMACIST,
            THERAPIST,
            OTHER_DOCTOR,
            ADMIN,
            OTHER_ADMIN,
        ] {
            tokens.insert(who, app.demo_token(who).await);
        }
        Self { app, tokens }
    }

    async fn gql(&self, who: &str, slug: &str, query: &str, vars: Value) -> Value {
        self.app
            .gql(query, vars, Some(&self.tokens[who]), Some(slug))
            .await
    }

    async fn ok(&self, who: &str, slug: &str, query: &str, vars: Value) -> Value {
        let r = self.gql(who, slug, query, vars).await;
        assert!(r["errors"].is_null(), "{who}: {query}: {r}");
        r["data"].clone()
    }

    async fn id(&self, email: &str) -> String {
        let id: uuid::Uuid = sqlx::query_scalar("SELECT id FROM core.users WHERE email = $1")
            .bind(email)
            .fetch_one(self.app.db.db.pool())
            .await
            .unwrap();
        id.to_string()
    }

    async fn send(&self, who: &str, slug: &str, to: &[&str], body: &str) -> Value {
        let mut people = Vec::new();
        for p in to {
            people.push(self.id(p).await);
        }
        self.gql(who, slug, SEND, json!({ "p": people, "b": body }))
            .await
    }

    async fn conversations(&self, who: &str) -> Vec<Value> {
        self.ok(who, HOST, LIST, json!({})).await["conversations"]
            .as_array()
            .unwrap()
            .clone()
    }

    async fn settings(&self, admin: &str, slug: &str, allow: bool) {
        self.ok(
            admin,
            slug,
            "mutation($a: Boolean) { updateAssociationSettings(input: {requireSecondFactor: \
             false, sessionIdleMinutes: 60, sessionAbsoluteHours: 12, auditRetentionYears: 5, \
             crossAssociationMessages: $a}) { crossAssociationMessages } }",
            json!({ "a": allow }),
        )
        .await;
    }

    async fn audit(&self, slug: &str, action: &str) -> Vec<Value> {
        let tenant = self.app.services().resolve_tenant(slug).await.unwrap();
        let mut tx = self.app.db.db.tenant_tx(&tenant).await.unwrap();
        sqlx::query_scalar(
            "SELECT jsonb_build_object('object', object_id, 'detail', detail) FROM audit_log \
             WHERE action = $1 ORDER BY seq",
        )
        .bind(action)
        .fetch_all(&mut *tx)
        .await
        .unwrap()
    }
}

fn sent(r: &Value) -> &Value {
    assert!(r["errors"].is_null(), "{r}");
    &r["data"]["sendDirectMessage"]
}

#[tokio::test]
async fn a_nurse_and_a_doctor_of_the_neighbouring_association_write_to_each_other() {
    let w = World::new().await;
    // 高橋 of さくら台 is in 青木's directory (the associations share theirs).
    let candidates = w.ok(NURSE, HOST, CANDIDATES, json!({ "s": "高橋" })).await;
    let takahashi = w.id(OTHER_DOCTOR).await;
    let found = candidates["messageCandidates"].as_array().unwrap();
    assert!(
        found.iter().any(|c| c["userId"] == takahashi.as_str()),
        "{found:?}"
    );
    let aoki = w.id(NURSE).await;
    let me_listed = w.ok(NURSE, HOST, CANDIDATES, json!({ "s": "青木" })).await;
    assert!(
        !me_listed["messageCandidates"]
            .as_array()
            .unwrap()
            .iter()
            .any(|c| c["userId"] == aoki.as_str()),
        "one does not write to oneself"
    );

    let first = w
        .send(NURSE, HOST, &[OTHER_DOCTOR], "明日の往診の件でご相談です")
        .await;
    let first = sent(&first).clone();
    assert_eq!(first["associationSlug"], HOST);
    assert_eq!(first["existing"], false);
    let topic = first["topicId"].as_str().unwrap().to_owned();

    // The doctor sees it in his messages (hosted by みなと川) with one unread.
    let his = w.conversations(OTHER_DOCTOR).await;
    assert_eq!(his.len(), 1, "{his:?}");
    assert_eq!(his[0]["associationSlug"], HOST);
    assert_eq!(his[0]["pair"], true);
    assert_eq!(his[0]["unread"], 1);
    assert_eq!(his[0]["excerpt"], "明日の往診の件でご相談です");
    assert_eq!(his[0]["others"].as_array().unwrap().len(), 1);

    // He reads it (a footprint) and answers from さくら台: the pair's conversation, not a new one.
    let read = w
        .ok(OTHER_DOCTOR, HOST, TOPIC, json!({ "id": topic }))
        .await;
    assert_eq!(read["topic"]["canManage"], false);
    let answer = w
        .send(OTHER_DOCTOR, OTHER, &[NURSE], "14時でいかがでしょうか")
        .await;
    let answer = sent(&answer);
    assert_eq!(answer["existing"], true);
    assert_eq!(answer["topicId"], topic.as_str());
    assert_eq!(answer["associationSlug"], HOST);

    // She sees his footprint on her message and his answer unread.
    let hers = w.conversations(NURSE).await;
    assert_eq!(hers.len(), 1);
    assert_eq!(hers[0]["unread"], 1);
    let view = w.ok(NURSE, HOST, TOPIC, json!({ "id": topic })).await;
    let comments = view["topic"]["comments"].as_array().unwrap();
    assert_eq!(comments.len(), 2);
    assert_eq!(comments[0]["mine"], true);
    assert_eq!(
        comments[0]["readers"].as_array().unwrap().len(),
        1,
        "{comments:?}"
    );
    // A reply through the topic is a message too.
    w.ok(
        NURSE,
        HOST,
        POST,
        json!({ "t": topic, "b": "承知しました" }),
    )
    .await;
    assert_eq!(w.conversations(OTHER_DOCTOR).await[0]["unread"], 1);

    // Found by search by the two of them, by nobody else.
    let mine = w.ok(NURSE, HOST, SEARCH, json!({ "q": "往診" })).await;
    assert!(mine["search"]["hits"]
        .as_array()
        .unwrap()
        .iter()
        .any(|h| h["groupId"] == first["conversationId"]));
    let theirs = w
        .ok(CARE_MANAGER, HOST, SEARCH, json!({ "q": "往診の件" }))
        .await;
    assert!(!theirs["search"]["hits"]
        .as_array()
        .unwrap()
        .iter()
        .any(|h| h["groupId"] == first["conversationId"]));

    // Audited like comments, and the start names the people and that one is from elsewhere.
    let starts = w.audit(HOST, "message.start").await;
    assert_eq!(starts.len(), 1, "{starts:?}");
    assert_eq!(starts[0]["detail"]["other_associations"], 1);
    assert!(w.audit(HOST, "comment.create").await.len() >= 3);
}

#[tokio::test]
async fn nobody_else_sees_a_conversation_and_it_is_no_group() {
    let w = World::new().await;
    let r = w
        .send(NURSE, HOST, &[PHARMACIST], "処方の変更について")
        .await;
    let s = sent(&r).clone();
    let topic = s["topicId"].as_str().unwrap();
    let group = s["conversationId"].as_str().unwrap();

    // A colleague and the association's administrator: not found, as if it did not exist.
    for who in [CARE_MANAGER, ADMIN] {
        let r = w.gql(who, HOST, TOPIC, json!({ "id": topic })).await;
        assert_eq!(error_codes(&r), vec!["NOT_FOUND"], "{who}: {r}");
        let r = w
            .gql(who, HOST, POST, json!({ "t": topic, "b": "横から" }))
            .await;
        assert_eq!(error_codes(&r), vec!["NOT_FOUND"], "{who}: {r}");
        assert!(w.conversations(who).await.is_empty());
    }
    // Not a group: not in the groups list; no topics, no invitations, no topic changes.
    let groups = w
        .ok(NURSE, HOST, "{ myGroups { group { id } } }", json!({}))
        .await;
    assert!(!groups.to_string().contains(group), "{groups}");
    let r = w
        .gql(
            NURSE,
            HOST,
            "mutation($g: ID!) { createTopic(input: {groupId: $g, title: \"別件\", body: \"本文\"}) \
             { id } }",
            json!({ "g": group }),
        )
        .await;
    assert!(!error_codes(&r).is_empty(), "{r}");
    let r = w
        .gql(
            NURSE,
            HOST,
            "mutation($t: ID!) { updateTopic(topicId: $t, input: {closed: true}) }",
            json!({ "t": topic }),
        )
        .await;
    assert!(!error_codes(&r).is_empty(), "{r}");
    // A pair stays a pair.
    let therapist = w.id(THERAPIST).await;
    let r = w
        .gql(NURSE, HOST, ADD, json!({ "c": group, "p": [therapist] }))
        .await;
    assert_eq!(error_codes(&r), vec!["INVALID_INPUT"], "{r}");
    // Someone made up is not in the directory.
    let r = w
        .gql(
            NURSE,
            HOST,
            SEND,
            json!({ "p": [uuid::Uuid::new_v4().to_string()], "b": "こんにちは" }),
        )
        .await;
    assert_eq!(error_codes(&r), vec!["NOT_FOUND"], "{r}");
    // Nobody at all, or too many.
    let r = w.gql(NURSE, HOST, SEND, json!({ "p": [], "b": "x" })).await;
    assert_eq!(error_codes(&r), vec!["INVALID_INPUT"], "{r}");
    let many: Vec<String> = (0..30).map(|_| uuid::Uuid::new_v4().to_string()).collect();
    let r = w
        .gql(NURSE, HOST, SEND, json!({ "p": many, "b": "x" }))
        .await;
    assert_eq!(error_codes(&r), vec!["INVALID_INPUT"], "{r}");
}

#[tokio::test]
async fn a_small_conversation_takes_people_in_and_lets_them_go() {
    let w = World::new().await;
    let r = w
        .send(
            NURSE,
            HOST,
            &[PHARMACIST, CARE_MANAGER],
            "退院前カンファレンスの日程",
        )
        .await;
    let s = sent(&r).clone();
    let group = s["conversationId"].as_str().unwrap();
    let topic = s["topicId"].as_str().unwrap();
    assert_eq!(w.conversations(PHARMACIST).await[0]["pair"], false);

    // A participant adds the therapist, who then reads what was written before.
    let therapist = w.id(THERAPIST).await;
    let added = w
        .ok(
            PHARMACIST,
            HOST,
            ADD,
            json!({ "c": group, "p": [therapist] }),
        )
        .await;
    assert_eq!(added["addToConversation"], 1);
    let view = w.ok(THERAPIST, HOST, TOPIC, json!({ "id": topic })).await;
    assert_eq!(
        view["topic"]["comments"][0]["body"],
        "退院前カンファレンスの日程"
    );
    assert_eq!(view["topic"]["audience"].as_array().unwrap().len(), 4);
    let r = w
        .gql(
            PHARMACIST,
            HOST,
            ADD,
            json!({ "c": group, "p": [therapist] }),
        )
        .await;
    assert_eq!(error_codes(&r), vec!["ALREADY_MEMBER"], "{r}");

    // The care manager leaves: gone from her list, the topic is not found for her, and the
    // others go on.
    w.ok(CARE_MANAGER, HOST, LEAVE, json!({ "c": group })).await;
    assert!(w.conversations(CARE_MANAGER).await.is_empty());
    let r = w
        .gql(CARE_MANAGER, HOST, TOPIC, json!({ "id": topic }))
        .await;
    assert_eq!(error_codes(&r), vec!["NOT_FOUND"], "{r}");
    w.ok(NURSE, HOST, POST, json!({ "t": topic, "b": "では15日で" }))
        .await;
    assert_eq!(w.conversations(THERAPIST).await[0]["unread"], 1);

    assert_eq!(w.audit(HOST, "message.add").await.len(), 1);
    assert_eq!(w.audit(HOST, "message.leave").await.len(), 1);
}

#[tokio::test]
async fn an_association_that_forbids_messages_with_others_stops_them_at_once() {
    let w = World::new().await;
    let r = w
        .send(NURSE, HOST, &[OTHER_DOCTOR], "おはようございます")
        .await;
    let topic = sent(&r)["topicId"].as_str().unwrap().to_owned();

    // さくら台 turns cross-association messages off: his association's policy applies to the
    // conversation みなと川 hosts, for both of them.
    w.settings(OTHER_ADMIN, OTHER, false).await;
    for (who, slug) in [(NURSE, HOST), (OTHER_DOCTOR, HOST)] {
        let r = w
            .gql(who, slug, POST, json!({ "t": topic, "b": "続きです" }))
            .await;
        assert_eq!(
            error_codes(&r),
            vec!["CROSS_ASSOCIATION_MESSAGES_DISABLED"],
            "{who}: {r}"
        );
    }
    let r = w.send(OTHER_DOCTOR, OTHER, &[NURSE], "新しく").await;
    assert_eq!(
        error_codes(&r),
        vec!["CROSS_ASSOCIATION_MESSAGES_DISABLED"],
        "{r}"
    );
    // What was written stays readable; nothing was added.
    let view = w
        .ok(OTHER_DOCTOR, HOST, TOPIC, json!({ "id": topic }))
        .await;
    assert_eq!(view["topic"]["comments"].as_array().unwrap().len(), 1);
    // Inside one association, messages go on.
    let r = w.send(NURSE, HOST, &[PHARMACIST], "院内の連絡").await;
    sent(&r);

    // The host's own policy counts as well.
    w.settings(OTHER_ADMIN, OTHER, true).await;
    w.ok(NURSE, HOST, POST, json!({ "t": topic, "b": "再開" }))
        .await;
    w.settings(ADMIN, HOST, false).await;
    let r = w
        .gql(OTHER_DOCTOR, HOST, POST, json!({ "t": topic, "b": "x" }))
        .await;
    assert_eq!(
        error_codes(&r),
        vec!["CROSS_ASSOCIATION_MESSAGES_DISABLED"],
        "{r}"
    );
    let changes = w.audit(HOST, "settings.update").await;
    assert_eq!(
        changes.last().unwrap()["detail"]["cross_association_messages"],
        false
    );
}

#[tokio::test]
async fn two_people_writing_to_each_other_at_the_same_moment_share_one_conversation() {
    let w = World::new().await;
    let (nurse, doctor) = (w.id(NURSE).await, w.id(OTHER_DOCTOR).await);
    let sends = (0..6).map(|i| {
        let (who, slug, to) = if i % 2 == 0 {
            (NURSE, HOST, &doctor)
        } else {
            (OTHER_DOCTOR, OTHER, &nurse)
        };
        w.gql(
            who,
            slug,
            SEND,
            json!({ "p": [to], "b": format!("同時の連絡 {i}") }),
        )
    });
    let answers = futures_util::future::join_all(sends).await;
    let mut topics: Vec<(String, String)> = answers
        .iter()
        .map(|r| {
            let s = sent(r);
            (
                s["associationSlug"].as_str().unwrap().to_owned(),
                s["topicId"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    topics.dedup();
    assert_eq!(topics.len(), 1, "{topics:?}");
    let list = w.conversations(NURSE).await;
    assert_eq!(list.len(), 1, "{list:?}");
    let (slug, topic) = &topics[0];
    let view = w.ok(NURSE, slug, TOPIC, json!({ "id": topic })).await;
    assert_eq!(view["topic"]["comments"].as_array().unwrap().len(), 6);
}

#[tokio::test]
async fn who_left_a_one_to_one_conversation_is_back_when_the_other_writes_again() {
    let w = World::new().await;
    let r = w.send(NURSE, HOST, &[OTHER_DOCTOR], "ご確認ください").await;
    let s = sent(&r).clone();
    let (group, topic) = (
        s["conversationId"].as_str().unwrap(),
        s["topicId"].as_str().unwrap(),
    );
    w.ok(NURSE, HOST, LEAVE, json!({ "c": group })).await;
    assert!(w.conversations(NURSE).await.is_empty());
    // He answers in the conversation itself: she hears of it and reads it again.
    w.ok(
        OTHER_DOCTOR,
        HOST,
        POST,
        json!({ "t": topic, "b": "確認しました" }),
    )
    .await;
    let hers = w.conversations(NURSE).await;
    assert_eq!(hers.len(), 1, "{hers:?}");
    assert_eq!(hers[0]["unread"], 1);
    let view = w.ok(NURSE, HOST, TOPIC, json!({ "id": topic })).await;
    assert_eq!(view["topic"]["comments"].as_array().unwrap().len(), 2);
    // Leaving is not a way around a policy: with さくら台's messages to others off, his reply
    // neither goes through nor brings her back.
    w.ok(NURSE, HOST, LEAVE, json!({ "c": group })).await;
    w.settings(OTHER_ADMIN, OTHER, false).await;
    let r = w
        .gql(OTHER_DOCTOR, HOST, POST, json!({ "t": topic, "b": "再送" }))
        .await;
    assert_eq!(
        error_codes(&r),
        vec!["CROSS_ASSOCIATION_MESSAGES_DISABLED"],
        "{r}"
    );
    assert!(w.conversations(NURSE).await.is_empty());
    assert_eq!(w.audit(HOST, "message.add").await.len(), 1);
}
