//! The `events` subscription over `/graphql/ws`: every event is re-authorized for its
//! subscriber (group membership and topic scope, now), and a subscriber that reconnects with
//! the last id it saw catches up.
//!
//! To prove that something did *not* arrive without waiting on a clock, each test follows the
//! events it must not see with a marker event it must see: events reach a subscriber in the
//! order they were published, so anything leaked would come before the marker.

use musubi_domain::audit::RequestMeta;
use musubi_domain::groups::{GroupKind, Scope};
use musubi_domain::sessions::Viewer;
use musubi_domain::types::GroupId;
use musubi_domain::Actor;
use musubi_domain::Tenant;
use musubi_test_support::demo::{CARE_MANAGER, CLINIC_DOCTOR, HOSPITAL_DOCTOR, NURSE};
use musubi_test_support::ws::{GqlWs, Reply};
use musubi_test_support::{group_input, group_with_members, TestApp};
use serde_json::{json, Value};
use std::time::Duration;
use uuid::Uuid;

const WAIT: Duration = Duration::from_secs(15);

const EVENTS: &str = "subscription($after: ID) { events(after: $after) { \
    id kind associationSlug groupId topicId commentIds actorId \
    unread { total groups { groupId count } } } }";

struct World {
    app: TestApp,
    tenant: Tenant,
    addr: std::net::SocketAddr,
}

impl World {
    async fn new() -> Self {
        let app = TestApp::demo().await;
        let tenant = app.services().resolve_tenant("minatogawa").await.unwrap();
        let addr = app.serve().await;
        Self { app, tenant, addr }
    }

    /// A signed-in viewer for calling the services directly (writes publish like the API's).
    async fn viewer(&self, email: &str) -> Viewer {
        let token = self.app.demo_token(email).await;
        self.app
            .services()
            .authenticate(&token)
            .await
            .unwrap()
            .unwrap()
    }

    async fn group(&self, owner: &Viewer, name: &str, members: &[&str]) -> GroupId {
        let mut ids = Vec::new();
        for m in members {
            ids.push(self.app.user_id(m).await);
        }
        group_with_members(
            &self.app.operator(),
            &Actor::new(owner, &self.tenant, &RequestMeta::default()),
            GroupKind::Patient,
            &group_input(name),
            &ids,
        )
        .await
    }

    async fn topic(&self, author: &Viewer, group: Uuid, title: &str, scope: Scope) -> Uuid {
        self.app
            .services()
            .create_topic(
                &Actor::new(author, &self.tenant, &RequestMeta::default()),
                &musubi_domain::topics::NewTopic {
                    group_id: group.into(),
                    title,
                    body: "本文",
                    scope,
                    important: false,
                },
            )
            .await
            .unwrap()
            .into()
    }

    async fn comment(&self, author: &Viewer, topic: Uuid, body: &str) -> Uuid {
        self.app
            .services()
            .post_comment(
                &Actor::new(author, &self.tenant, &RequestMeta::default()),
                topic.into(),
                body,
                false,
            )
            .await
            .unwrap()
            .into()
    }

    async fn subscribe(&self, email: &str, after: Option<&str>) -> GqlWs {
        let token = self.app.demo_token(email).await;
        let mut ws = GqlWs::connect(self.addr, json!({"token": token}))
            .await
            .unwrap();
        ws.subscribe("ev", EVENTS, json!({"after": after})).await;
        ws
    }
}

async fn next_event(ws: &mut GqlWs) -> Value {
    ws.next_data("ev", WAIT).await["events"].clone()
}

/// The unread count an event carries for `group` (0 when the group has none).
fn group_unread(e: &Value, group: GroupId) -> i64 {
    e["unread"]["groups"]
        .as_array()
        .expect("the event carries unread counts")
        .iter()
        .find(|g| g["groupId"] == group.to_string())
        .map_or(0, |g| g["count"].as_i64().expect("a count"))
}

/// Waits for the event announcing `comment`; fails on any other CommentPosted first.
async fn expect_comment(ws: &mut GqlWs, comment: Uuid) -> Value {
    loop {
        let e = next_event(ws).await;
        if e["kind"] == "COMMENT_POSTED" {
            assert_eq!(
                e["commentIds"],
                json!([comment.to_string()]),
                "an unexpected comment arrived first: {e}"
            );
            return e;
        }
    }
}

/// The subscription is live once an event posted after it started arrives: a marker in a
/// group the subscriber is in.
async fn sync(w: &World, ws: &mut GqlWs, author: &Viewer, group: Uuid) {
    // The subscription starts asynchronously on the server; retry the marker until one lands.
    for _ in 0..50 {
        w.topic(author, group, "同期", Scope::EVERYONE).await;
        match ws.next_reply("ev", Duration::from_millis(300)).await {
            Some(Reply::Next(p)) if p["errors"].is_null() => {
                // Drain whatever else of the retries arrives: it is all from this group.
                while let Some(Reply::Next(_)) =
                    ws.next_reply("ev", Duration::from_millis(300)).await
                {}
                return;
            }
            Some(other) => panic!("subscription failed: {other:?}"),
            None => continue,
        }
    }
    panic!("the subscription never delivered");
}

#[tokio::test]
async fn a_subscriber_gets_comments_of_its_groups_and_nothing_outside_its_scope() {
    let w = World::new().await;
    let nurse = w.viewer(NURSE).await;
    let doctor = w.viewer(CLINIC_DOCTOR).await;
    let group = w
        .group(&nurse, "山田 様", &[HOSPITAL_DOCTOR, CARE_MANAGER])
        .await;
    let elsewhere = w.group(&doctor, "川村 連携医", &[CARE_MANAGER]).await;
    let sato = w.app.user_id(HOSPITAL_DOCTOR).await;

    let mut ws = w.subscribe(HOSPITAL_DOCTOR, None).await;
    sync(&w, &mut ws, &nurse, group.into()).await;

    // Outside the scope, and a group the doctor is not in: nothing of either may arrive.
    let hidden = w
        .topic(&nurse, group.into(), "コメディカル向け", Scope::CO_MEDICAL)
        .await;
    w.comment(&nurse, hidden, "足の傷の処置について").await;
    let other = w
        .topic(&doctor, elsewhere.into(), "別グループ", Scope::EVERYONE)
        .await;
    w.comment(&doctor, other, "別グループの話").await;

    // The marker: a reply in a topic the doctor sees.
    let open = w
        .topic(&nurse, group.into(), "全員向け", Scope::EVERYONE)
        .await;
    let reply = w.comment(&nurse, open, "明日の訪問は10時です。").await;
    let body_event = next_event(&mut ws).await;
    assert_eq!(body_event["kind"], "COMMENT_POSTED", "{body_event}");
    assert_eq!(
        body_event["topicId"],
        open.to_string(),
        "leaked: {body_event}"
    );
    let e = expect_comment(&mut ws, reply).await;
    assert_eq!(e["groupId"], group.to_string());
    assert_eq!(e["topicId"], open.to_string());
    assert_eq!(e["associationSlug"], "minatogawa");
    assert_eq!(e["actorId"], nurse.user().id.to_string());
    // The subscriber's own fresh counts: the topic body and the reply are unread.
    let counts = group_unread(&e, group);
    assert!(counts >= 2, "{e}");
    // Ids only, never text.
    assert!(!e.to_string().contains("訪問"), "{e}");

    // Opening the topic changes the doctor's own counts: an UNREAD_CHANGED for them.
    let sato_viewer = w.viewer(HOSPITAL_DOCTOR).await;
    w.app
        .services()
        .open_topic(
            &Actor::new(&sato_viewer, &w.tenant, &RequestMeta::default()),
            open.into(),
            true,
        )
        .await
        .unwrap();
    let mut kinds = Vec::new();
    loop {
        let e = next_event(&mut ws).await;
        kinds.push(e["kind"].as_str().unwrap().to_owned());
        if e["kind"] == "UNREAD_CHANGED" {
            assert_eq!(e["actorId"], sato.to_string());
            assert!(group_unread(&e, group) < counts, "{e}");
            break;
        }
    }
    assert!(kinds.contains(&"FOOTPRINT_ADDED".to_owned()), "{kinds:?}");

    // The doctor's own reply changes only the others' counts: none come with it.
    let own = w.comment(&sato_viewer, open, "承知しました").await;
    let e = expect_comment(&mut ws, own).await;
    assert_eq!(e["actorId"], sato.to_string());
    assert!(e["unread"].is_null(), "{e}");
    ws.close().await;
}

async fn post_many(w: &World, who: &Viewer, topics: &[Uuid], n: usize) {
    for i in 0..n {
        w.comment(who, topics[i % topics.len()], &format!("経過 {i}"))
            .await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn live_counts_stay_exact_while_colleagues_post_and_the_subscriber_reads_at_once() {
    // The subscription adds others' comments to the counts it keeps instead of reading them
    // again; comments committed while the subscriber's own reads re-read them must be counted
    // exactly once. Three people post and the subscriber opens topics, all at the same time.
    let w = World::new().await;
    let nurse = w.viewer(NURSE).await;
    let care = w.viewer(CARE_MANAGER).await;
    let clinic = w.viewer(CLINIC_DOCTOR).await;
    let sato = w.viewer(HOSPITAL_DOCTOR).await;
    let group = w
        .group(
            &nurse,
            "中村 様",
            &[HOSPITAL_DOCTOR, CARE_MANAGER, CLINIC_DOCTOR],
        )
        .await;
    let mut topics = Vec::new();
    for title in ["褥瘡", "服薬", "食事"] {
        topics.push(w.topic(&nurse, group.into(), title, Scope::EVERYONE).await);
    }
    let mut ws = w.subscribe(HOSPITAL_DOCTOR, None).await;
    sync(&w, &mut ws, &nurse, group.into()).await;

    let read = async {
        for i in 0..12 {
            w.app
                .services()
                .open_topic(
                    &Actor::new(&sato, &w.tenant, &RequestMeta::default()),
                    topics[i % topics.len()].into(),
                    true,
                )
                .await
                .unwrap();
            tokio::task::yield_now().await;
        }
    };
    tokio::join!(
        post_many(&w, &nurse, &topics, 15),
        post_many(&w, &care, &topics, 15),
        post_many(&w, &clinic, &topics, 15),
        read
    );

    // Everything above was published before this marker; its counts must be the truth.
    let last = w.comment(&nurse, topics[0], "最後").await;
    let mut e = next_event(&mut ws).await;
    while e["commentIds"] != json!([last.to_string()]) {
        e = next_event(&mut ws).await;
    }
    let truth = w.app.services().unread_counts(&sato).await.unwrap();
    assert!(truth.total > 0, "comments after the last read are unread");
    assert_eq!(
        e["unread"]["total"].as_i64(),
        Some(truth.total),
        "live counts drifted from the database: {e}"
    );
    let live_group = group_unread(&e, group);
    let true_group = truth
        .groups
        .iter()
        .find(|(_, g, _)| *g == group)
        .map_or(0, |(_, _, n)| *n);
    assert_eq!(live_group, true_group);
    ws.close().await;
}

#[tokio::test]
async fn events_stop_when_the_subscriber_leaves_the_group() {
    let w = World::new().await;
    let nurse = w.viewer(NURSE).await;
    let group = w.group(&nurse, "鈴木 様", &[HOSPITAL_DOCTOR]).await;
    let still_in = w.group(&nurse, "佐々木 様", &[HOSPITAL_DOCTOR]).await;
    let sato = w.app.user_id(HOSPITAL_DOCTOR).await;
    let topic = w.topic(&nurse, group.into(), "経過", Scope::EVERYONE).await;

    let mut ws = w.subscribe(HOSPITAL_DOCTOR, None).await;
    sync(&w, &mut ws, &nurse, still_in.into()).await;
    let first = w.comment(&nurse, topic, "一件目").await;
    expect_comment(&mut ws, first).await;

    // Removed while subscribed: told once, then nothing more of that group.
    w.app
        .services()
        .remove_group_member(
            &Actor::new(&nurse, &w.tenant, &RequestMeta::default()),
            group,
            sato,
        )
        .await
        .unwrap();
    let e = next_event(&mut ws).await;
    assert_eq!(e["kind"], "MEMBERSHIP_CHANGED", "{e}");
    assert_eq!(e["groupId"], group.to_string());
    w.comment(&nurse, topic, "退出後の二件目").await;
    let marker_topic = w
        .topic(&nurse, still_in.into(), "別の患者", Scope::EVERYONE)
        .await;
    let e = next_event(&mut ws).await;
    assert_eq!(
        e["topicId"],
        marker_topic.to_string(),
        "an event of a group the subscriber left arrived: {e}"
    );
    ws.close().await;
}

#[tokio::test]
async fn a_subscriber_who_joins_a_group_while_subscribed_gets_its_events_from_then_on() {
    let w = World::new().await;
    let nurse = w.viewer(NURSE).await;
    let already = w.group(&nurse, "佐々木 様", &[HOSPITAL_DOCTOR]).await;
    let mut ws = w.subscribe(HOSPITAL_DOCTOR, None).await;
    sync(&w, &mut ws, &nurse, already.into()).await;

    // A group the doctor is not in yet: its first topic must not arrive.
    let later = w.group(&nurse, "高橋 様", &[]).await;
    let before = w
        .topic(&nurse, later.into(), "参加前", Scope::EVERYONE)
        .await;
    // By e-mail address: its invitation reaches the invitee live as well.
    let invited = w
        .app
        .services()
        .invite_to_group_by_email(
            &Actor::new(&nurse, &w.tenant, &RequestMeta::default()),
            later,
            HOSPITAL_DOCTOR,
        )
        .await;
    invited.unwrap();
    let e = next_event(&mut ws).await;
    assert_eq!(e["kind"], "MEMBERSHIP_CHANGED", "{e}");
    assert_ne!(e["topicId"], before.to_string());

    let doctor = w.viewer(HOSPITAL_DOCTOR).await;
    w.app
        .services()
        .answer_group_invitation(
            &Actor::new(&doctor, &w.tenant, &RequestMeta::default()),
            later,
            true,
        )
        .await
        .unwrap();
    let e = next_event(&mut ws).await;
    assert_eq!(e["kind"], "MEMBERSHIP_CHANGED", "{e}");
    assert_eq!(e["groupId"], later.to_string());

    // Now a member: the next topic arrives without reconnecting.
    let after = w
        .topic(&nurse, later.into(), "参加後", Scope::EVERYONE)
        .await;
    let e = next_event(&mut ws).await;
    assert_eq!(e["kind"], "COMMENT_POSTED", "{e}");
    assert_eq!(e["topicId"], after.to_string(), "{e}");
    ws.close().await;
}

#[tokio::test]
async fn a_reconnecting_subscriber_catches_up_with_what_it_may_see() {
    let w = World::new().await;
    let nurse = w.viewer(NURSE).await;
    let group = w.group(&nurse, "田中 様", &[CARE_MANAGER]).await;
    let topic = w.topic(&nurse, group.into(), "経過", Scope::EVERYONE).await;

    let mut ws = w.subscribe(CARE_MANAGER, None).await;
    sync(&w, &mut ws, &nurse, group.into()).await;
    let seen = w.comment(&nurse, topic, "接続中の一件").await;
    let last = expect_comment(&mut ws, seen).await["id"]
        .as_str()
        .unwrap()
        .to_owned();
    ws.close().await;

    // While away: two replies it may see, and a topic for hospital doctors only.
    let missed1 = w.comment(&nurse, topic, "不在中の一件目").await;
    let doctors_only = w
        .topic(
            &nurse,
            group.into(),
            "病院医師向け",
            Scope::HOSPITAL_DOCTORS,
        )
        .await;
    let missed2 = w.comment(&nurse, topic, "不在中の二件目").await;

    let mut ws = w.subscribe(CARE_MANAGER, Some(&last)).await;
    let a = next_event(&mut ws).await;
    let b = next_event(&mut ws).await;
    assert_eq!(a["commentIds"], json!([missed1.to_string()]), "{a}");
    assert_eq!(b["commentIds"], json!([missed2.to_string()]), "{b}");
    assert!(a["id"].as_str().unwrap().parse::<i64>().unwrap() > last.parse::<i64>().unwrap());
    assert_ne!(a["topicId"], doctors_only.to_string());
    assert!(a["unread"]["total"].as_i64().is_some(), "{a}");
    // Then live again, without repeating what was replayed.
    let live = w.comment(&nurse, topic, "再接続後").await;
    let c = next_event(&mut ws).await;
    assert_eq!(c["commentIds"], json!([live.to_string()]), "{c}");
    ws.close().await;

    // A bad cursor is refused with a code.
    let mut ws = w.subscribe(CARE_MANAGER, Some("yesterday")).await;
    assert_eq!(refusal(&mut ws).await, "INVALID_INPUT");
}

/// The error code a subscription was refused with (as an `error` message, or a `next` with
/// errors before `complete`).
async fn refusal(ws: &mut GqlWs) -> String {
    let errors = match ws.next_reply("ev", WAIT).await {
        Some(Reply::Error(errors)) => errors,
        Some(Reply::Next(p)) if !p["errors"].is_null() => p["errors"].clone(),
        other => panic!("expected the subscription to be refused, got {other:?}"),
    };
    errors[0]["extensions"]["code"]
        .as_str()
        .unwrap_or_else(|| panic!("no code: {errors}"))
        .to_owned()
}

#[tokio::test]
async fn a_subscription_needs_a_session_and_ends_with_it() {
    let w = World::new().await;
    // No credentials: refused.
    let mut ws = GqlWs::connect(w.addr, json!({})).await.unwrap();
    ws.subscribe("ev", EVENTS, json!({})).await;
    assert_eq!(refusal(&mut ws).await, "UNAUTHENTICATED");
    // The session cookie sent by another site's page is not honoured.
    let token = w.app.demo_token(NURSE).await;
    let cookie = format!("musubi_session={token}");
    let mut ws = GqlWs::connect_with_headers(
        w.addr,
        json!({}),
        &[("origin", "https://evil.example"), ("cookie", &cookie)],
    )
    .await
    .unwrap();
    ws.subscribe("ev", EVENTS, json!({})).await;
    assert_eq!(refusal(&mut ws).await, "UNAUTHENTICATED");
    // From this server's own page it is, and signing out ends the stream.
    let host = w.addr.to_string();
    let origin = format!("http://{host}");
    let mut ws = GqlWs::connect_with_headers(
        w.addr,
        json!({}),
        &[("origin", &origin), ("cookie", &cookie)],
    )
    .await
    .unwrap();
    ws.subscribe("ev", EVENTS, json!({})).await;
    let nurse = w.viewer(NURSE).await;
    let group = w.group(&nurse, "石田 様", &[]).await;
    sync(&w, &mut ws, &nurse, group.into()).await;
    let r = w
        .app
        .gql("mutation { signOut }", json!({}), Some(&token), None)
        .await;
    assert_eq!(r["data"]["signOut"], true, "{r}");
    // The session is re-checked every 30 seconds; the stream then completes.
    match ws.next_reply("ev", Duration::from_secs(45)).await {
        Some(Reply::Complete) | Some(Reply::Closed) => {}
        other => panic!("expected the stream to end after sign-out, got {other:?}"),
    }
}
