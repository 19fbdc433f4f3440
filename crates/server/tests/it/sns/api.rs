//! Groups, topics and comments end to end through GraphQL, with two associations and people
//! who belong to groups of an association not their own. Scope rules: a topic whose scope
//! leaves someone out is invisible to them everywhere, and asking for it by id answers exactly
//! like asking for something that does not exist.

use musubi_authz::GroupRole;
use musubi_test_support::demo::{
    CARE_MANAGER, CLINIC_DOCTOR, HOSPITAL_DOCTOR, HOST, NURSE, OTHER, OTHER_DOCTOR, OTHER_NURSE,
    PHARMACIST,
};
use musubi_test_support::{error_codes, strip_locations, TestApp};
use serde_json::{json, Value};
use uuid::Uuid;

struct World {
    app: TestApp,
    tokens: std::collections::HashMap<&'static str, String>,
}

impl World {
    async fn new() -> Self {
        let app = TestApp::demo().await;
        let mut tokens = std::collections::HashMap::new();
        for who in [
            NURSE,
            CARE_MANAGER,
            CLINIC_DOCTOR,
            PHARMACIST,
            HOSPITAL_DOCTOR,
            OTHER_NURSE,
            OTHER_DOCTOR,
        ] {
            tokens.insert(who, app.demo_token(who).await);
        }
        Self { app, tokens }
    }

    /// A call as `who`, routed to `association` (or not routed).
    async fn gql(&self, who: &str, association: Option<&str>, query: &str, vars: Value) -> Value {
        self.app
            .gql(query, vars, Some(&self.tokens[who]), association)
            .await
    }

    /// A routed call that must succeed; returns `data`.
    async fn ok(&self, who: &str, query: &str, vars: Value) -> Value {
        let r = self.gql(who, Some(HOST), query, vars).await;
        assert!(r["errors"].is_null(), "{who}: {query}: {r}");
        r["data"].clone()
    }

    async fn create_group(&self, owner: &str, kind: &str, name: &str, requests: bool) -> String {
        let d = self
            .ok(
                owner,
                "mutation($k: GroupKind!, $n: String!, $r: Boolean) { createGroup(kind: $k, name: $n, acceptsRequests: $r) { id kind name myRole myStatus associationSlug } }",
                json!({"k": kind, "n": name, "r": requests}),
            )
            .await;
        assert_eq!(d["createGroup"]["myRole"], "OWNER");
        assert_eq!(d["createGroup"]["associationSlug"], HOST);
        d["createGroup"]["id"].as_str().unwrap().to_owned()
    }

    /// Adds people straight in (the invitation flow has its own test).
    async fn add(&self, group: &str, people: &[&str]) {
        let tenant = self.app.services().resolve_tenant(HOST).await.unwrap();
        for p in people {
            let user = self.app.user_id(p).await;
            self.app
                .operator()
                .add_group_member(&tenant, group.parse().unwrap(), user, GroupRole::Member)
                .await
                .unwrap();
        }
    }

    async fn create_topic(&self, who: &str, group: &str, title: &str, scope: Value) -> String {
        let d = self
            .ok(
                who,
                "mutation($g: ID!, $t: String!, $b: String!, $s: [ProfessionClass!]) { createTopic(groupId: $g, title: $t, body: $b, scope: $s) }",
                json!({"g": group, "t": title, "b": format!("{title}の本文です。\n二行目。"), "s": scope}),
            )
            .await;
        d["createTopic"].as_str().unwrap().to_owned()
    }

    async fn post(&self, who: &str, topic: &str, body: &str) -> Value {
        self.gql(
            who,
            Some(HOST),
            "mutation($t: ID!, $b: String!) { postComment(topicId: $t, body: $b) }",
            json!({"t": topic, "b": body}),
        )
        .await
    }

    async fn open_topic(&self, who: &str, topic: &str, mark_read: bool) -> Value {
        self.gql(
            who,
            Some(HOST),
            TOPIC_QUERY,
            json!({"id": topic, "m": mark_read}),
        )
        .await
    }

    async fn unread(&self, who: &str) -> Value {
        let r = self
            .gql(
                who,
                None,
                "{ unreadCounts { total associations { associationSlug count } groups { associationSlug groupId count } } }",
                json!({}),
            )
            .await;
        assert!(r["errors"].is_null(), "{r}");
        r["data"]["unreadCounts"].clone()
    }

    async fn home(&self, who: &str) -> Value {
        let r = self
            .gql(
                who,
                None,
                "{ home { invitations counts { total } groups { associationSlug groupId groupName kind unread important unreadTopics \
                 items { topicId topicTitle commentId excerpt authorName } \
                 topics { topicId title unread important } } } }",
                json!({}),
            )
            .await;
        assert!(r["errors"].is_null(), "{r}");
        r["data"]["home"].clone()
    }

    async fn group_page(&self, who: &str, group: &str) -> Value {
        self.gql(
            who,
            Some(HOST),
            "query($id: ID!) { group(id: $id) { myRole unread group { id name kind } members { userId name status role professionClass } topics { id title scope unread } } }",
            json!({"id": group}),
        )
        .await
    }
}

const TOPIC_QUERY: &str = "query($id: ID!, $m: Boolean) { topic(id: $id, markRead: $m) { \
    receiptMode canManage myRole firstUnreadSeq \
    topic { id title scope closed pinned unread lastSeq authorName } \
    comments { id seq body deleted important mine version acknowledgedByMe \
               readers { userId name at } readerCount notReadBy { userId name } \
               history { version body } } \
    audience { userId name } } }";

fn group_count(counts: &Value, group: &str) -> i64 {
    counts["groups"]
        .as_array()
        .unwrap()
        .iter()
        .find(|g| g["groupId"] == group)
        .map_or(0, |g| g["count"].as_i64().unwrap())
}

fn association_count(counts: &Value, slug: &str) -> i64 {
    counts["associations"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["associationSlug"] == slug)
        .map_or(0, |a| a["count"].as_i64().unwrap())
}

fn topic_ids(page: &Value) -> Vec<String> {
    page["data"]["group"]["topics"]
        .as_array()
        .unwrap_or_else(|| panic!("no topics: {page}"))
        .iter()
        .map(|t| t["id"].as_str().unwrap().to_owned())
        .collect()
}

fn home_topic_ids(home: &Value) -> Vec<String> {
    home["groups"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|g| {
            g["items"]
                .as_array()
                .unwrap()
                .iter()
                .chain(g["topics"].as_array().unwrap().iter())
        })
        .map(|i| i["topicId"].as_str().unwrap().to_owned())
        .collect()
}

#[tokio::test]
async fn a_co_medical_topic_is_invisible_to_a_hospital_doctor_everywhere() {
    let w = World::new().await;
    let group = w
        .create_group(NURSE, "PATIENT", "山田 太郎 様（在宅）", false)
        .await;
    w.add(&group, &[CARE_MANAGER, HOSPITAL_DOCTOR, CLINIC_DOCTOR])
        .await;
    let before = w.unread(HOSPITAL_DOCTOR).await;

    let hidden = w
        .create_topic(NURSE, &group, "褥瘡の処置について", json!(["CO_MEDICAL"]))
        .await;
    let open = w
        .create_topic(NURSE, &group, "退院後の方針", json!([]))
        .await;
    let r = w
        .post(
            CARE_MANAGER,
            &hidden,
            "ケアマネです。福祉用具の件、承知しました。",
        )
        .await;
    assert!(r["errors"].is_null(), "{r}");

    // The hospital doctor: a member of the group, outside the topic's scope.
    let page = w.group_page(HOSPITAL_DOCTOR, &group).await;
    assert_eq!(topic_ids(&page), vec![open.clone()], "{page}");
    assert_eq!(page["data"]["group"]["unread"], 1, "{page}");
    let after = w.unread(HOSPITAL_DOCTOR).await;
    assert_eq!(group_count(&after, &group), 1, "{after}");
    assert_eq!(
        association_count(&after, HOST) - association_count(&before, HOST),
        1,
        "{after}"
    );
    assert_eq!(
        after["total"].as_i64().unwrap() - before["total"].as_i64().unwrap(),
        1
    );
    let home = w.home(HOSPITAL_DOCTOR).await;
    let items = home_topic_ids(&home);
    assert!(items.contains(&open), "{home}");
    assert!(!items.contains(&hidden), "{home}");
    let home_group = home["groups"]
        .as_array()
        .unwrap()
        .iter()
        .find(|g| g["groupId"] == group.as_str())
        .unwrap();
    assert_eq!(home_group["unread"], 1);
    assert_eq!(home_group["kind"], "PATIENT");
    assert!(!home.to_string().contains("ケアマネです"), "{home}");

    // By id: exactly the answer for a topic that does not exist.
    let missing = Uuid::now_v7().to_string();
    let by_id = strip_locations(w.open_topic(HOSPITAL_DOCTOR, &hidden, true).await);
    let nothing = strip_locations(w.open_topic(HOSPITAL_DOCTOR, &missing, true).await);
    assert_eq!(error_codes(&by_id), vec!["NOT_FOUND"], "{by_id}");
    assert_eq!(by_id, nothing);
    let reply = strip_locations(w.post(HOSPITAL_DOCTOR, &hidden, "見えないはず").await);
    let reply_nothing = strip_locations(w.post(HOSPITAL_DOCTOR, &missing, "見えないはず").await);
    assert_eq!(error_codes(&reply), vec!["NOT_FOUND"], "{reply}");
    assert_eq!(reply, reply_nothing);
    let patch = "mutation($id: ID!) { updateTopic(id: $id, pinned: true) }";
    let upd = strip_locations(
        w.gql(HOSPITAL_DOCTOR, Some(HOST), patch, json!({"id": hidden}))
            .await,
    );
    let upd_nothing = strip_locations(
        w.gql(HOSPITAL_DOCTOR, Some(HOST), patch, json!({"id": missing}))
            .await,
    );
    assert_eq!(error_codes(&upd), vec!["NOT_FOUND"]);
    assert_eq!(upd, upd_nothing);
    // Nothing of it leaked into the (failed) answers, and nothing was posted.
    let nurse_view = w.open_topic(NURSE, &hidden, false).await;
    assert_eq!(
        nurse_view["data"]["topic"]["comments"]
            .as_array()
            .unwrap()
            .len(),
        2,
        "{nurse_view}"
    );
    // The hospital doctor is not in the audience of the hidden topic either.
    let audience = nurse_view["data"]["topic"]["audience"].to_string();
    let sato = w.app.user_id(HOSPITAL_DOCTOR).await.to_string();
    assert!(!audience.contains(&sato), "{audience}");

    // The clinic doctor is outside the scope too.
    let page = w.group_page(CLINIC_DOCTOR, &group).await;
    assert_eq!(topic_ids(&page), vec![open.clone()]);

    // The co-medical staff see it, count it, and may open and reply.
    let nurse_page = w.group_page(CARE_MANAGER, &group).await;
    let ids = topic_ids(&nurse_page);
    assert!(ids.contains(&hidden) && ids.contains(&open), "{nurse_page}");
    let counts = w.unread(CARE_MANAGER).await;
    // Both topics' bodies (the reply is the care manager's own).
    assert_eq!(group_count(&counts, &group), 2, "{counts}");
    let home = w.home(CARE_MANAGER).await;
    assert!(home_topic_ids(&home).contains(&hidden), "{home}");
    let opened = w.open_topic(CARE_MANAGER, &hidden, true).await;
    assert!(opened["errors"].is_null(), "{opened}");
    assert_eq!(
        opened["data"]["topic"]["topic"]["scope"],
        json!(["CO_MEDICAL"])
    );
    assert_eq!(opened["data"]["topic"]["firstUnreadSeq"], 1);
    let r = w.post(CARE_MANAGER, &hidden, "追記です。").await;
    assert!(r["errors"].is_null(), "{r}");
    assert_eq!(group_count(&w.unread(CARE_MANAGER).await, &group), 1);

    // Widening the scope makes it appear for the doctors, with its unread comments.
    let r = w
        .gql(
            NURSE,
            Some(HOST),
            "mutation($id: ID!) { updateTopic(id: $id, scope: [CO_MEDICAL, HOSPITAL_DOCTOR]) }",
            json!({"id": hidden}),
        )
        .await;
    assert!(r["errors"].is_null(), "{r}");
    let page = w.group_page(HOSPITAL_DOCTOR, &group).await;
    assert!(topic_ids(&page).contains(&hidden), "{page}");
    let opened = w.open_topic(HOSPITAL_DOCTOR, &hidden, true).await;
    assert!(opened["errors"].is_null(), "{opened}");
    assert_eq!(
        opened["data"]["topic"]["topic"]["scope"],
        json!(["CO_MEDICAL", "HOSPITAL_DOCTOR"])
    );
    assert_eq!(
        topic_ids(&w.group_page(CLINIC_DOCTOR, &group).await),
        vec![open.clone()]
    );
}

#[tokio::test]
async fn a_group_is_not_found_for_non_members_and_other_associations() {
    let w = World::new().await;
    let group = w
        .create_group(CLINIC_DOCTOR, "GENERAL", "みなと川 連携医グループ", false)
        .await;
    let missing = Uuid::now_v7().to_string();
    let q = "query($id: ID!) { group(id: $id) { group { name } } }";

    for (who, slug) in [
        // A member of the host association who is not in the group.
        (PHARMACIST, HOST),
        // A member of another association, routed to the host or to their own.
        (OTHER_DOCTOR, HOST),
        (OTHER_DOCTOR, "sakuradai"),
        // In both associations, routed to the wrong one.
        (HOSPITAL_DOCTOR, "sakuradai"),
    ] {
        let r = strip_locations(w.gql(who, Some(slug), q, json!({"id": group})).await);
        assert_eq!(error_codes(&r), vec!["NOT_FOUND"], "{who}@{slug}: {r}");
        let none = strip_locations(w.gql(who, Some(slug), q, json!({"id": missing})).await);
        assert_eq!(r, none, "{who}@{slug}");
        assert!(!r.to_string().contains("連携医"), "{r}");
        let groups = w
            .gql(who, None, "{ myGroups { group { id } } }", json!({}))
            .await;
        assert!(!groups.to_string().contains(&group), "{groups}");
        // Nor can they post into it.
        let t = strip_locations(
            w.gql(
                who,
                Some(slug),
                "mutation($g: ID!) { createTopic(groupId: $g, title: \"x\", body: \"y\") }",
                json!({"g": group}),
            )
            .await,
        );
        assert_eq!(error_codes(&t), vec!["NOT_FOUND"], "{t}");
    }
    // Not an id at all: the same.
    let r = w
        .gql(PHARMACIST, Some(HOST), q, json!({"id": "not-a-uuid"}))
        .await;
    assert_eq!(error_codes(&r), vec!["NOT_FOUND"], "{r}");
    // Routed calls need the header; the cross-association ones do not.
    let r = w.gql(CLINIC_DOCTOR, None, q, json!({"id": group})).await;
    assert_eq!(error_codes(&r), vec!["ASSOCIATION_REQUIRED"], "{r}");
    let r = w.app.gql(q, json!({"id": group}), None, Some(HOST)).await;
    assert_eq!(error_codes(&r), vec!["UNAUTHENTICATED"], "{r}");
    let r = w
        .app
        .gql("{ myGroups { group { id } } }", json!({}), None, None)
        .await;
    assert_eq!(error_codes(&r), vec!["UNAUTHENTICATED"], "{r}");

    // The owner sees it, in myGroups too.
    let page = w.group_page(CLINIC_DOCTOR, &group).await;
    assert_eq!(page["data"]["group"]["myRole"], "OWNER", "{page}");
    let mine = w
        .gql(
            CLINIC_DOCTOR,
            None,
            "{ myGroups { unread associationName group { id name associationSlug myStatus } } }",
            json!({}),
        )
        .await;
    let entry = mine["data"]["myGroups"]
        .as_array()
        .unwrap()
        .iter()
        .find(|g| g["group"]["id"] == group.as_str())
        .unwrap_or_else(|| panic!("{mine}"))
        .clone();
    assert_eq!(entry["group"]["myStatus"], "ACTIVE");
    assert_eq!(entry["group"]["associationSlug"], HOST);
    assert_eq!(entry["associationName"], "みなと川医師会");
}

#[tokio::test]
async fn an_invitation_across_associations_is_accepted_or_declined() {
    let w = World::new().await;
    let group = w
        .create_group(NURSE, "PATIENT", "鈴木 花子 様", false)
        .await;
    let topic = w
        .create_topic(NURSE, &group, "訪問報告 5/12", json!([]))
        .await;
    let invite = "mutation($g: ID!, $e: String!) { inviteToGroupByEmail(groupId: $g, email: $e) }";
    let invite_id = "mutation($g: ID!, $u: ID!) { inviteToGroup(groupId: $g, userId: $u) }";
    let invitee = w.app.user_id(OTHER_NURSE).await.to_string();
    // Without the two associations' agreement to share directories (the demo has one).
    w.app
        .operator()
        .set_neighbours(HOST, OTHER, false)
        .await
        .unwrap();

    // Only owners invite; to anyone else the group does not exist.
    w.add(&group, &[CARE_MANAGER]).await;
    let r = w
        .gql(
            CARE_MANAGER,
            Some(HOST),
            invite,
            json!({"g": group, "e": OTHER_NURSE}),
        )
        .await;
    assert_eq!(error_codes(&r), vec!["NOT_FOUND"], "{r}");
    let r = w
        .gql(
            NURSE,
            Some(HOST),
            invite,
            json!({"g": group, "e": "not an address"}),
        )
        .await;
    assert_eq!(error_codes(&r), vec!["INVALID_INPUT"], "{r}");
    assert_eq!(r["errors"][0]["extensions"]["field"], "email");

    // The nurse of みなと川 cannot pick a nurse of さくら台 only, but can invite her address.
    let r = w
        .gql(
            NURSE,
            Some(HOST),
            invite_id,
            json!({"g": group, "u": invitee}),
        )
        .await;
    assert_eq!(error_codes(&r), vec!["NOT_FOUND"], "{r}");
    let d = w
        .ok(NURSE, invite, json!({"g": group, "e": OTHER_NURSE}))
        .await;
    assert_eq!(d["inviteToGroupByEmail"], true);
    // Inviting again while the invitation waits changes nothing.
    w.ok(NURSE, invite, json!({"g": group, "e": OTHER_NURSE}))
        .await;
    // The owner does not see who the address belongs to until they accept.
    let page = w.group_page(NURSE, &group).await;
    let members = page["data"]["group"]["members"].as_array().unwrap();
    assert!(
        !members.iter().any(|m| m["userId"] == invitee.as_str()),
        "{page}"
    );

    // Invited: the group shows in myGroups and its preview, but nothing inside is readable.
    let mine = w
        .gql(
            OTHER_NURSE,
            None,
            "{ myGroups { group { id myStatus myRole associationSlug name } } home { invitations } }",
            json!({}),
        )
        .await;
    let entry = mine["data"]["myGroups"]
        .as_array()
        .unwrap()
        .iter()
        .find(|g| g["group"]["id"] == group.as_str())
        .unwrap_or_else(|| panic!("{mine}"))
        .clone();
    assert_eq!(entry["group"]["myStatus"], "INVITED");
    assert!(entry["group"]["myRole"].is_null());
    assert_eq!(entry["group"]["associationSlug"], HOST);
    assert!(
        mine["data"]["home"]["invitations"].as_i64() >= Some(1),
        "{mine}"
    );
    let r = w.group_page(OTHER_NURSE, &group).await;
    assert_eq!(error_codes(&r), vec!["NOT_FOUND"], "{r}");
    let r = w.open_topic(OTHER_NURSE, &topic, true).await;
    assert_eq!(error_codes(&r), vec!["NOT_FOUND"], "{r}");
    let preview = w
        .gql(
            OTHER_NURSE,
            Some(HOST),
            "query($id: ID!) { groupPreview(id: $id) { name myStatus kind } }",
            json!({"id": group}),
        )
        .await;
    assert_eq!(
        preview["data"]["groupPreview"]["name"], "鈴木 花子 様",
        "{preview}"
    );
    // Someone not invited gets nothing, not even the preview.
    let r = w
        .gql(
            OTHER_DOCTOR,
            Some(HOST),
            "query($id: ID!) { groupPreview(id: $id) { name } }",
            json!({"id": group}),
        )
        .await;
    assert_eq!(error_codes(&r), vec!["NOT_FOUND"], "{r}");

    // Accepting makes the group readable, and new comments count as unread.
    let answer =
        "mutation($g: ID!, $a: Boolean!) { answerGroupInvitation(groupId: $g, accept: $a) }";
    w.ok(OTHER_NURSE, answer, json!({"g": group, "a": true}))
        .await;
    let page = w.group_page(OTHER_NURSE, &group).await;
    assert!(page["errors"].is_null(), "{page}");
    assert_eq!(topic_ids(&page), vec![topic.clone()]);
    assert_eq!(page["data"]["group"]["myRole"], "MEMBER");
    let r = w.post(NURSE, &topic, "明日の訪問は14時です。").await;
    assert!(r["errors"].is_null(), "{r}");
    let counts = w.unread(OTHER_NURSE).await;
    assert_eq!(group_count(&counts, &group), 1, "{counts}");
    assert!(association_count(&counts, HOST) >= 1, "{counts}");
    let home = w.home(OTHER_NURSE).await;
    assert!(home_topic_ids(&home).contains(&topic), "{home}");
    // A member now, listed by name; her address is still answered like any other.
    let page = w.group_page(NURSE, &group).await;
    assert!(page["data"]["group"]["members"]
        .as_array()
        .unwrap()
        .iter()
        .any(|m| m["userId"] == invitee.as_str() && m["status"] == "ACTIVE"));
    w.ok(NURSE, invite, json!({"g": group, "e": OTHER_NURSE}))
        .await;
    // Answering twice finds no invitation any more.
    let r = w
        .gql(
            OTHER_NURSE,
            Some(HOST),
            answer,
            json!({"g": group, "a": true}),
        )
        .await;
    assert_eq!(error_codes(&r), vec!["NOT_FOUND"], "{r}");

    // Opening leaves a footprint the author sees, with its time.
    let opened = w.open_topic(OTHER_NURSE, &topic, true).await;
    assert!(opened["errors"].is_null(), "{opened}");
    let authors = w.open_topic(NURSE, &topic, false).await;
    let reply = &authors["data"]["topic"]["comments"][1];
    assert_eq!(reply["mine"], true);
    let readers = reply["readers"].as_array().unwrap();
    assert_eq!(readers.len(), 1, "{authors}");
    assert_eq!(readers[0]["userId"], invitee.as_str());
    assert!(readers[0]["at"].as_str().is_some());
    // The care manager has not read it yet.
    let not_read: Vec<&str> = reply["notReadBy"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["userId"].as_str().unwrap())
        .collect();
    let care_manager = w.app.user_id(CARE_MANAGER).await.to_string();
    assert_eq!(not_read, vec![care_manager.as_str()], "{authors}");
    assert_eq!(group_count(&w.unread(OTHER_NURSE).await, &group), 0);

    // A declined invitation leaves nothing behind.
    let other = w
        .create_group(NURSE, "PATIENT", "田中 一郎 様", false)
        .await;
    w.ok(NURSE, invite, json!({"g": other, "e": OTHER_NURSE}))
        .await;
    w.ok(OTHER_NURSE, answer, json!({"g": other, "a": false}))
        .await;
    let mine = w
        .gql(
            OTHER_NURSE,
            None,
            "{ myGroups { group { id } } }",
            json!({}),
        )
        .await;
    assert!(!mine.to_string().contains(&other), "{mine}");
    let r = w.group_page(OTHER_NURSE, &other).await;
    assert_eq!(error_codes(&r), vec!["NOT_FOUND"], "{r}");
}

#[tokio::test]
async fn a_general_group_takes_requests_that_an_owner_approves() {
    let w = World::new().await;
    let group = w
        .create_group(CLINIC_DOCTOR, "GENERAL", "多職種連携の会", true)
        .await;
    let closed = w
        .create_group(CLINIC_DOCTOR, "GENERAL", "招待制の会", false)
        .await;
    let list = w
        .ok(
            PHARMACIST,
            "{ openGroups { id name acceptsRequests myStatus } }",
            json!({}),
        )
        .await;
    let ids: Vec<&str> = list["openGroups"]
        .as_array()
        .unwrap()
        .iter()
        .map(|g| g["id"].as_str().unwrap())
        .collect();
    assert!(ids.contains(&group.as_str()), "{list}");
    assert!(!ids.contains(&closed.as_str()), "{list}");

    let request = "mutation($g: ID!) { requestToJoinGroup(groupId: $g) }";
    // Invitation-only groups and other associations' members: not found.
    let r = w
        .gql(PHARMACIST, Some(HOST), request, json!({"g": closed}))
        .await;
    assert_eq!(error_codes(&r), vec!["NOT_FOUND"], "{r}");
    let r = w
        .gql(OTHER_DOCTOR, Some(HOST), request, json!({"g": group}))
        .await;
    assert_eq!(error_codes(&r), vec!["NOT_FOUND"], "{r}");

    w.ok(PHARMACIST, request, json!({"g": group})).await;
    let r = w
        .gql(PHARMACIST, Some(HOST), request, json!({"g": group}))
        .await;
    assert_eq!(error_codes(&r), vec!["ALREADY_MEMBER"], "{r}");
    // Waiting: still not a member.
    let r = w.group_page(PHARMACIST, &group).await;
    assert_eq!(error_codes(&r), vec!["NOT_FOUND"], "{r}");
    let page = w.group_page(CLINIC_DOCTOR, &group).await;
    let pharmacist = w.app.user_id(PHARMACIST).await.to_string();
    let requested = page["data"]["group"]["members"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["userId"] == pharmacist.as_str())
        .unwrap_or_else(|| panic!("{page}"))
        .clone();
    assert_eq!(requested["status"], "REQUESTED");
    assert_eq!(requested["professionClass"], "CO_MEDICAL");

    let approve =
        "mutation($g: ID!, $u: ID!, $a: Boolean!) { answerJoinRequest(groupId: $g, userId: $u, approve: $a) }";
    // Only an owner approves.
    w.add(&group, &[NURSE]).await;
    let r = w
        .gql(
            NURSE,
            Some(HOST),
            approve,
            json!({"g": group, "u": pharmacist, "a": true}),
        )
        .await;
    assert_eq!(error_codes(&r), vec!["NOT_FOUND"], "{r}");
    w.ok(
        CLINIC_DOCTOR,
        approve,
        json!({"g": group, "u": pharmacist, "a": true}),
    )
    .await;
    let page = w.group_page(PHARMACIST, &group).await;
    assert!(page["errors"].is_null(), "{page}");
    assert_eq!(page["data"]["group"]["myRole"], "MEMBER");

    // Roles: the owner makes the pharmacist an owner; the last owner cannot step down alone.
    let role = "mutation($g: ID!, $u: ID!, $r: GroupRole!) { setGroupRole(groupId: $g, userId: $u, role: $r) }";
    let doctor = w.app.user_id(CLINIC_DOCTOR).await.to_string();
    // A role outside the set (an association's ADMIN, a lower-case code) is refused before any
    // resolver runs: never read as some default role.
    for unknown in ["ADMIN", "owner", ""] {
        let r = w
            .gql(
                CLINIC_DOCTOR,
                Some(HOST),
                role,
                json!({"g": group, "u": pharmacist, "r": unknown}),
            )
            .await;
        assert_eq!(error_codes(&r), vec!["INVALID_INPUT"], "{unknown}: {r}");
        assert_eq!(r["errors"][0]["extensions"]["field"], "role", "{r}");
        assert!(r["data"].is_null(), "{r}");
    }
    let literal = w
        .gql(
            CLINIC_DOCTOR,
            Some(HOST),
            "mutation($g: ID!, $u: ID!) { setGroupRole(groupId: $g, userId: $u, role: ADMIN) }",
            json!({"g": group, "u": pharmacist}),
        )
        .await;
    assert_eq!(error_codes(&literal), vec!["INVALID_INPUT"], "{literal}");
    assert_eq!(
        literal["errors"][0]["extensions"]["field"], "role",
        "{literal}"
    );
    let page = w.group_page(PHARMACIST, &group).await;
    assert_eq!(page["data"]["group"]["myRole"], "MEMBER", "unchanged");
    let r = w
        .gql(
            CLINIC_DOCTOR,
            Some(HOST),
            role,
            json!({"g": group, "u": doctor, "r": "MEMBER"}),
        )
        .await;
    assert_eq!(error_codes(&r), vec!["LAST_OWNER"], "{r}");
    w.ok(
        CLINIC_DOCTOR,
        role,
        json!({"g": group, "u": pharmacist, "r": "OWNER"}),
    )
    .await;
    assert_eq!(
        w.group_page(PHARMACIST, &group).await["data"]["group"]["myRole"],
        "OWNER"
    );
    // A member leaves; an owner removes another.
    let remove = "mutation($g: ID!, $u: ID!) { removeGroupMember(groupId: $g, userId: $u) }";
    let nurse = w.app.user_id(NURSE).await.to_string();
    w.ok(NURSE, remove, json!({"g": group, "u": nurse})).await;
    let r = w.group_page(NURSE, &group).await;
    assert_eq!(error_codes(&r), vec!["NOT_FOUND"], "{r}");
    w.ok(PHARMACIST, remove, json!({"g": group, "u": doctor}))
        .await;
    let r = w.group_page(CLINIC_DOCTOR, &group).await;
    assert_eq!(error_codes(&r), vec!["NOT_FOUND"], "{r}");

    // Patient groups never take requests.
    let r = w
        .gql(
            NURSE,
            Some(HOST),
            "mutation { createGroup(kind: PATIENT, name: \"佐々木 様\", acceptsRequests: true) { id } }",
            json!({}),
        )
        .await;
    assert_eq!(error_codes(&r), vec!["INVALID_INPUT"], "{r}");
    assert_eq!(r["errors"][0]["extensions"]["field"], "acceptsRequests");
}

#[tokio::test]
async fn bad_input_and_closed_topics_get_stable_codes() {
    let w = World::new().await;
    let group = w.create_group(NURSE, "PATIENT", "高田 様", false).await;
    w.add(&group, &[CARE_MANAGER]).await;
    let create = "mutation($g: ID!, $t: String!, $b: String!, $s: [ProfessionClass!]) { createTopic(groupId: $g, title: $t, body: $b, scope: $s) }";
    let cases = [
        (json!({"g": group, "t": "  ", "b": "本文"}), "title"),
        (
            json!({"g": group, "t": "x".repeat(201), "b": "本文"}),
            "title",
        ),
        (json!({"g": group, "t": "件名", "b": " \n "}), "body"),
        (
            json!({"g": group, "t": "件名", "b": "あ".repeat(10_001)}),
            "body",
        ),
        (
            json!({"g": group, "t": "件名", "b": "本文", "s": ["NURSE"]}),
            "scope",
        ),
        (
            json!({"g": group, "t": "件名", "b": "本文", "s": "everyone"}),
            "scope",
        ),
    ];
    for (vars, field) in cases {
        let r = w.gql(NURSE, Some(HOST), create, vars.clone()).await;
        assert_eq!(error_codes(&r), vec!["INVALID_INPUT"], "{vars}: {r}");
        assert_eq!(r["errors"][0]["extensions"]["field"], field, "{vars}: {r}");
    }
    let r = w
        .gql(
            NURSE,
            Some(HOST),
            "mutation { createGroup(kind: GENERAL, name: \"\") { id } }",
            json!({}),
        )
        .await;
    assert_eq!(error_codes(&r), vec!["INVALID_INPUT"], "{r}");
    assert_eq!(r["errors"][0]["extensions"]["field"], "name");
    // Exactly 10,000 characters is fine.
    let topic = w
        .ok(
            NURSE,
            create,
            json!({"g": group, "t": "長文", "b": "あ".repeat(10_000)}),
        )
        .await["createTopic"]
        .as_str()
        .unwrap()
        .to_owned();
    let r = w.post(CARE_MANAGER, &topic, &"い".repeat(10_001)).await;
    assert_eq!(error_codes(&r), vec!["INVALID_INPUT"], "{r}");
    assert_eq!(r["errors"][0]["extensions"]["field"], "body");

    // Only the author or an owner closes; then nobody can reply.
    let close = "mutation($id: ID!, $c: Boolean) { updateTopic(id: $id, closed: $c) }";
    let r = w
        .gql(
            CARE_MANAGER,
            Some(HOST),
            close,
            json!({"id": topic, "c": true}),
        )
        .await;
    assert_eq!(error_codes(&r), vec!["NOT_FOUND"], "{r}");
    w.ok(NURSE, close, json!({"id": topic, "c": true})).await;
    for who in [CARE_MANAGER, NURSE] {
        let r = w.post(who, &topic, "閉じた後の返信").await;
        assert_eq!(error_codes(&r), vec!["TOPIC_CLOSED"], "{r}");
    }
    let view = w.open_topic(CARE_MANAGER, &topic, false).await;
    assert_eq!(view["data"]["topic"]["topic"]["closed"], true);
    w.ok(NURSE, close, json!({"id": topic, "c": false})).await;
    let r = w.post(CARE_MANAGER, &topic, "再開後の返信").await;
    assert!(r["errors"].is_null(), "{r}");
}

#[tokio::test]
async fn comments_keep_their_history_and_receipts_follow_the_group_mode() {
    let w = World::new().await;
    let group = w.create_group(NURSE, "PATIENT", "小川 様", false).await;
    w.add(&group, &[CARE_MANAGER, PHARMACIST]).await;
    let topic = w.create_topic(NURSE, &group, "お薬の変更", json!([])).await;
    let comment = w.post(CARE_MANAGER, &topic, "初版の文面").await["data"]["postComment"]
        .as_str()
        .unwrap()
        .to_owned();

    // Edit: the earlier text stays as history. Only the author edits.
    let edit =
        "mutation($id: ID!, $b: String!) { editComment(id: $id, body: $b, important: true) }";
    let r = w
        .gql(
            NURSE,
            Some(HOST),
            edit,
            json!({"id": comment, "b": "書き換え"}),
        )
        .await;
    assert_eq!(error_codes(&r), vec!["NOT_FOUND"], "{r}");
    w.ok(
        CARE_MANAGER,
        edit,
        json!({"id": comment, "b": "改訂版の文面"}),
    )
    .await;
    let view = w.open_topic(PHARMACIST, &topic, true).await;
    let c = &view["data"]["topic"]["comments"][1];
    assert_eq!(c["body"], "改訂版の文面", "{view}");
    assert_eq!(c["important"], true);
    assert_eq!(c["version"], 2);
    assert_eq!(c["history"], json!([{"version": 1, "body": "初版の文面"}]));
    assert_eq!(view["data"]["topic"]["receiptMode"], "FOOTPRINTS");

    // Delete: a mark stays, the text goes; the topic's body cannot be deleted.
    let delete = "mutation($id: ID!) { deleteComment(id: $id) }";
    w.ok(CARE_MANAGER, delete, json!({"id": comment})).await;
    let view = w.open_topic(NURSE, &topic, false).await;
    let c = &view["data"]["topic"]["comments"][1];
    assert_eq!(c["deleted"], true, "{view}");
    assert!(c["body"].is_null());
    assert_eq!(c["history"], json!([]));
    assert!(!view.to_string().contains("文面"), "{view}");
    let body_id = view["data"]["topic"]["comments"][0]["id"].clone();
    let r = w
        .gql(NURSE, Some(HOST), delete, json!({"id": body_id}))
        .await;
    assert_eq!(error_codes(&r), vec!["FIRST_POST_UNDELETABLE"], "{r}");
    assert_eq!(r["errors"][0]["extensions"]["field"], "commentId", "{r}");

    // Acknowledgement mode: no footprints, a confirmation list instead.
    let d = w
        .ok(
            NURSE,
            "mutation($id: ID!) { updateGroup(id: $id, receiptMode: ACKNOWLEDGEMENT) { receiptMode receiptModeOverride name } }",
            json!({"id": group}),
        )
        .await;
    assert_eq!(d["updateGroup"]["receiptMode"], "ACKNOWLEDGEMENT");
    assert_eq!(d["updateGroup"]["name"], "小川 様");
    let note = w.post(NURSE, &topic, "血圧の記録をお願いします").await["data"]["postComment"]
        .as_str()
        .unwrap()
        .to_owned();
    let view = w.open_topic(PHARMACIST, &topic, true).await;
    assert_eq!(view["data"]["topic"]["receiptMode"], "ACKNOWLEDGEMENT");
    let ack = "mutation($id: ID!) { acknowledgeComment(id: $id) }";
    w.ok(PHARMACIST, ack, json!({"id": note})).await;
    let r = w.gql(NURSE, Some(HOST), ack, json!({"id": note})).await;
    assert_eq!(error_codes(&r), vec!["INVALID_INPUT"], "{r}");
    let view = w.open_topic(NURSE, &topic, false).await;
    let c = view["data"]["topic"]["comments"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["id"] == note.as_str())
        .unwrap()
        .clone();
    let readers: Vec<&str> = c["readers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["userId"].as_str().unwrap())
        .collect();
    let pharmacist = w.app.user_id(PHARMACIST).await.to_string();
    assert_eq!(readers, vec![pharmacist.as_str()], "{view}");
    assert_eq!(c["readerCount"], 1, "{view}");
    let all = w
        .ok(
            NURSE,
            "query($t: ID!, $c: ID!) { commentReaders(topicId: $t, commentId: $c) { userId name } }",
            json!({"t": topic, "c": note}),
        )
        .await;
    assert_eq!(
        all["commentReaders"][0]["userId"],
        pharmacist.as_str(),
        "{all}"
    );
    // What an app reports as seen: at most 500 numbers a call; outsiders get NOT_FOUND.
    let seen = "mutation($t: ID!, $s: [Int!]!) { markSeen(topicId: $t, seqs: $s) }";
    let d = w
        .ok(PHARMACIST, seen, json!({"t": topic, "s": [1, 2, 3]}))
        .await;
    assert_eq!(d["markSeen"], true);
    let many: Vec<i32> = (1..=501).collect();
    let r = w
        .gql(PHARMACIST, Some(HOST), seen, json!({"t": topic, "s": many}))
        .await;
    assert_eq!(error_codes(&r), vec!["INVALID_INPUT"], "{r}");
    let r = w
        .gql(OTHER_NURSE, Some(HOST), seen, json!({"t": topic, "s": [1]}))
        .await;
    assert_eq!(error_codes(&r), vec!["NOT_FOUND"], "{r}");
    let pharm_view = w.open_topic(PHARMACIST, &topic, false).await;
    let mine = pharm_view["data"]["topic"]["comments"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["id"] == note.as_str())
        .unwrap()
        .clone();
    assert_eq!(mine["acknowledgedByMe"], true);

    // Off: no readers shown at all; back to the default with null.
    w.ok(
        NURSE,
        "mutation($id: ID!) { updateGroup(id: $id, receiptMode: OFF) { receiptMode } }",
        json!({"id": group}),
    )
    .await;
    let view = w.open_topic(NURSE, &topic, false).await;
    assert_eq!(view["data"]["topic"]["receiptMode"], "OFF");
    for c in view["data"]["topic"]["comments"].as_array().unwrap() {
        assert_eq!(c["readers"], json!([]), "{view}");
        assert_eq!(c["notReadBy"], json!([]), "{view}");
    }
    let d = w
        .ok(
            NURSE,
            "mutation($id: ID!) { updateGroup(id: $id, receiptMode: null) { receiptMode receiptModeOverride } }",
            json!({"id": group}),
        )
        .await;
    assert_eq!(d["updateGroup"]["receiptMode"], "FOOTPRINTS");
    assert!(d["updateGroup"]["receiptModeOverride"].is_null());

    // Mark all as read clears the group without footprints.
    let before = group_count(&w.unread(CARE_MANAGER).await, &group);
    w.post(NURSE, &topic, "もう一件").await;
    assert_eq!(
        group_count(&w.unread(CARE_MANAGER).await, &group),
        before + 1
    );
    let d = w
        .ok(
            CARE_MANAGER,
            "mutation($g: ID!) { markGroupRead(groupId: $g) }",
            json!({"g": group}),
        )
        .await;
    assert_eq!(d["markGroupRead"], 1);
    assert_eq!(group_count(&w.unread(CARE_MANAGER).await, &group), 0);
    let view = w.open_topic(NURSE, &topic, false).await;
    let last = view["data"]["topic"]["comments"]
        .as_array()
        .unwrap()
        .last()
        .unwrap()
        .clone();
    let care_manager = w.app.user_id(CARE_MANAGER).await.to_string();
    assert!(
        !last["readers"].to_string().contains(&care_manager),
        "marking read left a footprint: {view}"
    );
}

const CANDIDATES: &str = "query($g: ID!, $s: String) { groupInviteCandidates(groupId: $g, search: $s, first: 50) { userId name nameKana profession associationName facilityName status } }";

fn candidate_ids(d: &Value) -> Vec<String> {
    d["groupInviteCandidates"]
        .as_array()
        .unwrap_or_else(|| panic!("{d}"))
        .iter()
        .map(|c| c["userId"].as_str().unwrap().to_owned())
        .collect()
}

#[tokio::test]
async fn inviting_by_email_answers_the_same_whether_or_not_the_address_has_an_account() {
    let w = World::new().await;
    let group = w.create_group(NURSE, "PATIENT", "伊藤 花 様", false).await;
    let invite = "mutation($g: ID!, $e: String!) { inviteToGroupByEmail(groupId: $g, email: $e) }";
    let tenant = w.app.services().resolve_tenant(HOST).await.unwrap();
    let audit_before = audit_count(&w, &tenant).await;
    let unknown = w
        .gql(
            NURSE,
            Some(HOST),
            invite,
            json!({"g": group, "e": "nobody@example.invalid"}),
        )
        .await;
    assert!(unknown["errors"].is_null(), "{unknown}");
    // Known, in another association; a member already (herself); typed differently.
    for address in [OTHER_DOCTOR, NURSE, "Takahashi@Sakuradai.Example "] {
        let known = w
            .gql(NURSE, Some(HOST), invite, json!({"g": group, "e": address}))
            .await;
        assert_eq!(known, unknown, "{address}");
    }
    // One record per attempt, nothing else.
    assert_eq!(audit_count(&w, &tenant).await - audit_before, 4);
    // Her page shows no one invited: the list would tell.
    let page = w.group_page(NURSE, &group).await;
    let statuses: Vec<&str> = page["data"]["group"]["members"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["status"].as_str().unwrap())
        .collect();
    assert_eq!(statuses, vec!["ACTIVE"], "{page}");
    // The host's log has one record per attempt, all of the same shape.
    let mut tx = w.app.db.db.tenant_tx(&tenant).await.unwrap();
    let details: Vec<Value> = sqlx::query_scalar(
        "SELECT detail FROM audit_log WHERE action = 'group.member_invite' ORDER BY seq",
    )
    .fetch_all(&mut *tx)
    .await
    .unwrap();
    drop(tx);
    assert_eq!(details.len(), 4, "{details:?}");
    for d in &details {
        let mut keys: Vec<&String> = d.as_object().unwrap().keys().collect();
        keys.sort();
        // The group's name as it was, and nothing that depends on the address.
        assert_eq!(keys, vec!["by", "group_name"], "{d}");
    }
    // The person with the account did get the invitation.
    let mine = w
        .gql(
            OTHER_DOCTOR,
            None,
            "{ myGroups { group { id myStatus } } }",
            json!({}),
        )
        .await;
    assert!(
        mine["data"]["myGroups"]
            .as_array()
            .unwrap()
            .iter()
            .any(|g| g["group"]["id"] == group.as_str() && g["group"]["myStatus"] == "INVITED"),
        "{mine}"
    );
}

async fn audit_count(w: &World, tenant: &musubi_domain::Tenant) -> i64 {
    let mut tx = w.app.db.db.tenant_tx(tenant).await.unwrap();
    sqlx::query_scalar("SELECT count(*) FROM audit_log")
        .fetch_one(&mut *tx)
        .await
        .unwrap()
}

#[tokio::test]
async fn the_invite_picker_lists_only_people_the_owner_may_see() {
    let w = World::new().await;
    // Without the two associations' agreement to share directories (the demo has one; see
    // sns::directory).
    assert!(w
        .app
        .operator()
        .set_neighbours(HOST, OTHER, false)
        .await
        .unwrap());
    let group = w.create_group(NURSE, "PATIENT", "渡辺 清 様", false).await;
    let mut ids = Vec::new();
    for who in [
        CLINIC_DOCTOR,
        HOSPITAL_DOCTOR,
        OTHER_NURSE,
        OTHER_DOCTOR,
        NURSE,
    ] {
        ids.push(w.app.user_id(who).await.to_string());
    }
    let [clinic, hospital, other_nurse, other_doctor, me]: [String; 5] = ids.try_into().unwrap();

    // Everyone of みなと川 (the hospital doctor too: he belongs to both), nobody of さくら台 only.
    let all = w.ok(NURSE, CANDIDATES, json!({"g": group, "s": ""})).await;
    let ids = candidate_ids(&all);
    for id in [&clinic, &hospital, &me] {
        assert!(ids.contains(id), "{all}");
    }
    for id in [&other_nurse, &other_doctor] {
        assert!(!ids.contains(id), "{all}");
    }
    let mine = all["groupInviteCandidates"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["userId"] == me.as_str())
        .unwrap();
    assert_eq!(mine["status"], "ACTIVE");
    // By kana or by name, spaces ignored.
    for search in ["かわむら", "川村", "川村健一", "むら け"] {
        let d = w
            .ok(NURSE, CANDIDATES, json!({"g": group, "s": search}))
            .await;
        assert_eq!(candidate_ids(&d), vec![clinic.clone()], "{search}: {d}");
        assert_eq!(
            d["groupInviteCandidates"][0]["nameKana"],
            "かわむら けんいち"
        );
        assert_eq!(
            d["groupInviteCandidates"][0]["associationName"],
            "みなと川医師会"
        );
    }
    // A name only in さくら台 finds nothing; LIKE wildcards are plain characters.
    for search in ["なかむら", "%", "_"] {
        let d = w
            .ok(NURSE, CANDIDATES, json!({"g": group, "s": search}))
            .await;
        assert!(candidate_ids(&d).is_empty(), "{search}: {d}");
    }

    // Inviting someone not in her directory is a missing object, like an unknown id.
    let invite = "mutation($g: ID!, $u: ID!) { inviteToGroup(groupId: $g, userId: $u) }";
    let unseen = w
        .gql(
            NURSE,
            Some(HOST),
            invite,
            json!({"g": group, "u": other_doctor}),
        )
        .await;
    let nobody = w
        .gql(
            NURSE,
            Some(HOST),
            invite,
            json!({"g": group, "u": Uuid::new_v4().to_string()}),
        )
        .await;
    assert_eq!(error_codes(&unseen), vec!["NOT_FOUND"], "{unseen}");
    assert_eq!(strip_locations(unseen), strip_locations(nobody));
    let mine = w
        .gql(
            OTHER_DOCTOR,
            None,
            "{ myGroups { group { id } } }",
            json!({}),
        )
        .await;
    assert!(!mine.to_string().contains(&group), "{mine}");

    // Someone she may see is invited, and shows as such in the picker and on her page.
    let d = w.ok(NURSE, invite, json!({"g": group, "u": clinic})).await;
    assert_eq!(d["inviteToGroup"], true);
    let d = w
        .ok(NURSE, CANDIDATES, json!({"g": group, "s": "かわむら"}))
        .await;
    assert_eq!(d["groupInviteCandidates"][0]["status"], "INVITED");
    let page = w.group_page(NURSE, &group).await;
    assert!(page["data"]["group"]["members"]
        .as_array()
        .unwrap()
        .iter()
        .any(|m| m["userId"] == clinic.as_str() && m["status"] == "INVITED"));
    let r = w
        .gql(NURSE, Some(HOST), invite, json!({"g": group, "u": me}))
        .await;
    assert_eq!(error_codes(&r), vec!["ALREADY_MEMBER"], "{r}");

    // Only owners look people up.
    w.add(&group, &[CARE_MANAGER]).await;
    let r = w
        .gql(
            CARE_MANAGER,
            Some(HOST),
            CANDIDATES,
            json!({"g": group, "s": ""}),
        )
        .await;
    assert_eq!(error_codes(&r), vec!["NOT_FOUND"], "{r}");
}

const WINDOW_QUERY: &str = "query($id: ID!, $m: Boolean, $f: Int) { \
    topic(id: $id, markRead: $m, fromSeq: $f) { firstUnreadSeq earlierComments \
    comments { seq readers { userId } readerCount } } }";

fn seqs(view: &Value) -> Vec<i64> {
    view["data"]["topic"]["comments"]
        .as_array()
        .unwrap_or_else(|| panic!("{view}"))
        .iter()
        .map(|c| c["seq"].as_i64().unwrap())
        .collect()
}

#[tokio::test]
async fn a_long_topic_opens_with_its_newest_comments_and_what_is_unread() {
    let w = World::new().await;
    let group = w.create_group(NURSE, "GENERAL", "長い記録", false).await;
    w.add(&group, &[CARE_MANAGER, PHARMACIST]).await;
    let topic = w
        .create_topic(NURSE, &group, "毎日の記録", json!(null))
        .await;
    for i in 1..30 {
        let r = w.post(NURSE, &topic, &format!("{i}日目の記録です。")).await;
        assert!(r["errors"].is_null(), "{r}");
    }
    let open = |who: &'static str, mark: bool, from: Value| {
        let w = &w;
        let topic = topic.clone();
        async move {
            let r = w
                .gql(
                    who,
                    Some(HOST),
                    WINDOW_QUERY,
                    json!({"id": topic, "m": mark, "f": from}),
                )
                .await;
            assert!(r["errors"].is_null(), "{r}");
            r
        }
    };

    // Everything is unread: everything comes, from the first comment.
    let first = open(CARE_MANAGER, true, json!(null)).await;
    assert_eq!(seqs(&first), (1..=30).collect::<Vec<_>>());
    assert_eq!(first["data"]["topic"]["firstUnreadSeq"], 1);
    assert_eq!(first["data"]["topic"]["earlierComments"], 0);
    // Read: the newest 20 only, and how many are before them.
    let again = open(CARE_MANAGER, true, json!(null)).await;
    assert_eq!(seqs(&again), (11..=30).collect::<Vec<_>>());
    assert_eq!(again["data"]["topic"]["earlierComments"], 10);
    // Something new: still the newest 20, which hold it.
    let r = w.post(NURSE, &topic, "30日目の記録です。").await;
    assert!(r["errors"].is_null(), "{r}");
    let next = open(CARE_MANAGER, true, json!(null)).await;
    assert_eq!(seqs(&next), (12..=31).collect::<Vec<_>>());
    assert_eq!(next["data"]["topic"]["firstUnreadSeq"], 31);
    // The earlier ones on demand: from a number, or all of them.
    let from = open(CARE_MANAGER, false, json!(5)).await;
    assert_eq!(seqs(&from), (5..=31).collect::<Vec<_>>());
    assert_eq!(from["data"]["topic"]["earlierComments"], 4);
    let all = open(CARE_MANAGER, false, json!(1)).await;
    assert_eq!(seqs(&all).len(), 31);
    let r = w
        .gql(
            CARE_MANAGER,
            Some(HOST),
            WINDOW_QUERY,
            json!({"id": topic, "m": false, "f": 0}),
        )
        .await;
    assert_eq!(error_codes(&r), vec!["INVALID_INPUT"], "{r}");

    // Footprints only on what an answer held: someone without an unread counter (she joined
    // after the comments were written) opens the newest 20, and the first 11 stay unread by
    // her in the author's eyes.
    let pharmacist = w.app.user_id(PHARMACIST).await;
    let mut tx = w.app.tenant_tx(HOST).await;
    sqlx::query("DELETE FROM unread WHERE user_id = $1")
        .bind(pharmacist)
        .execute(&mut *tx)
        .await
        .unwrap();
    tx.commit().await.unwrap();
    let pharmacist = pharmacist.to_string();
    let hers = open(PHARMACIST, true, json!(null)).await;
    assert_eq!(seqs(&hers), (12..=31).collect::<Vec<_>>());
    let authors = open(NURSE, false, json!(1)).await;
    for c in authors["data"]["topic"]["comments"].as_array().unwrap() {
        let read = c["readers"]
            .as_array()
            .unwrap()
            .iter()
            .any(|r| r["userId"] == pharmacist.as_str());
        assert_eq!(read, c["seq"].as_i64().unwrap() >= 12, "{c}");
    }
}

const INVITE_NEW: &str =
    "mutation($g: ID!) { inviteNewPersonToGroup(groupId: $g) { id link qrSvg expiresAt } }";
const ACCEPT_INVITATION: &str = "mutation($t: String!, $i: AcceptInvitationInput!) { \
    acceptInvitation(token: $t, input: $i) { token next } }";

fn invitation_token(created: &Value) -> String {
    let link = created["inviteNewPersonToGroup"]["link"]
        .as_str()
        .unwrap_or_else(|| panic!("{created}"));
    let (_, token) = link.rsplit_once("/invite/").expect("an invitation link");
    token.to_owned()
}

#[tokio::test]
async fn an_owner_hands_a_qr_code_to_someone_new_who_registers_into_the_group() {
    let w = World::new().await;
    let group = w
        .create_group(NURSE, "GENERAL", "新しい訪問チーム", false)
        .await;
    w.add(&group, &[CARE_MANAGER]).await;

    // Only an owner makes one; anyone else is answered as for a group that does not exist.
    for who in [CARE_MANAGER, OTHER_NURSE] {
        let r = w
            .gql(who, Some(HOST), INVITE_NEW, json!({"g": group}))
            .await;
        assert_eq!(error_codes(&r), vec!["NOT_FOUND"], "{who}: {r}");
    }
    let made = w.ok(NURSE, INVITE_NEW, json!({"g": group})).await;
    assert!(made["inviteNewPersonToGroup"]["qrSvg"]
        .as_str()
        .is_some_and(|s| s.starts_with("<svg") || s.starts_with("<?xml")));
    let token = invitation_token(&made);

    // A new pharmacist registers with it: a member of the association and of the group.
    let email = format!("new-{}@example.jp", Uuid::new_v4().simple());
    let input = json!({"email": email, "password": "kusuri-no-mado-2026!", "name": "新井 薬子",
                       "nameKana": "あらい やくこ", "profession": "pharmacist"});
    let r = w
        .app
        .gql(
            ACCEPT_INVITATION,
            json!({"t": token, "i": input}),
            None,
            None,
        )
        .await;
    assert_eq!(r["data"]["acceptInvitation"]["next"], "DONE", "{r}");
    let session = r["data"]["acceptInvitation"]["token"]
        .as_str()
        .unwrap()
        .to_owned();
    let mine = w
        .app
        .gql(
            "{ me { memberships { associationSlug role } } myGroups { group { id myStatus myRole } } }",
            json!({}),
            Some(&session),
            None,
        )
        .await;
    assert!(mine["errors"].is_null(), "{mine}");
    assert_eq!(
        mine["data"]["me"]["memberships"],
        json!([{"associationSlug": HOST, "role": "member"}])
    );
    let groups = mine["data"]["myGroups"].as_array().unwrap();
    assert_eq!(groups.len(), 1, "{mine}");
    assert_eq!(groups[0]["group"]["id"], group.as_str());
    assert_eq!(groups[0]["group"]["myStatus"], "ACTIVE");
    assert_eq!(groups[0]["group"]["myRole"], "MEMBER");
    // The owner sees her among the members.
    let page = w.group_page(NURSE, &group).await;
    assert!(page["data"]["group"]["members"]
        .as_array()
        .unwrap()
        .iter()
        .any(|m| m["name"] == "新井 薬子" && m["status"] == "ACTIVE"));
    // Once only.
    let again = w
        .app
        .gql(
            ACCEPT_INVITATION,
            json!({"t": token, "i": input}),
            None,
            None,
        )
        .await;
    assert_eq!(error_codes(&again), vec!["INVITATION_INVALID"], "{again}");

    // Someone with an account elsewhere signs in with it and joins the group.
    let made = w.ok(NURSE, INVITE_NEW, json!({"g": group})).await;
    let input = json!({"email": OTHER_NURSE, "password": "musubi-demo-2026"});
    let r = w
        .app
        .gql(
            ACCEPT_INVITATION,
            json!({"t": invitation_token(&made), "i": input}),
            None,
            None,
        )
        .await;
    assert!(r["errors"].is_null(), "{r}");
    let page = w.group_page(OTHER_NURSE, &group).await;
    assert!(page["errors"].is_null(), "{page}");
    assert_eq!(page["data"]["group"]["myRole"], "MEMBER");
    // Each joining is in the association's log once, under the group.
    let mut tx = w.app.tenant_tx(HOST).await;
    let joins: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM audit_log WHERE action = 'group.member_join' AND object_id = $1",
    )
    .bind(&group)
    .fetch_one(&mut *tx)
    .await
    .unwrap();
    tx.commit().await.unwrap();
    assert_eq!(joins, 2);

    // A patient's group without consent to sharing: nobody unknown may be invited.
    let patient = w
        .create_group(NURSE, "PATIENT", "同意前の患者", false)
        .await;
    let mut tx = w.app.tenant_tx(HOST).await;
    let nurse = w.app.user_id(NURSE).await;
    sqlx::query(
        "INSERT INTO patients (id, group_id, name, name_kana, name_folded, kana_folded, \
         birth_date, sex, town, town_folded, care_level, status, registered_by) \
         VALUES (gen_random_uuid(), $1, '同意 前子', 'どうい まえこ', '同意前子', 'どういまえこ', \
         '1940-01-01', 'female', '', '', 'none', 'home', $2)",
    )
    .bind(Uuid::parse_str(&patient).unwrap())
    .bind(nurse)
    .execute(&mut *tx)
    .await
    .unwrap();
    tx.commit().await.unwrap();
    let r = w
        .gql(NURSE, Some(HOST), INVITE_NEW, json!({"g": patient}))
        .await;
    assert_eq!(error_codes(&r), vec!["INVALID_INPUT"], "{r}");
    assert!(r.to_string().contains("CONSENT_REQUIRED"), "{r}");
}

/// A client that does not ask for a topic's audience still gets its readers named and, on its
/// own comments, who has not read them (the member list is then read only for those); asked
/// for, through a fragment too, the audience comes as before.
#[tokio::test]
async fn a_topic_asked_without_its_audience_still_names_readers_and_who_has_not_read() {
    const WITHOUT: &str = "query($id: ID!) { topic(id: $id) { \
        comments { seq mine readers { name } readerCount notReadBy { name } } } }";
    const WITH_FRAGMENT: &str = "query($id: ID!) { topic(id: $id) { ...page } } \
        fragment page on TopicPage { comments { seq } audience { name } }";
    let w = World::new().await;
    let group = w.create_group(NURSE, "GENERAL", "名前の確認", false).await;
    w.add(&group, &[CARE_MANAGER, PHARMACIST]).await;
    let topic = w.create_topic(NURSE, &group, "訪問予定", json!(null)).await;
    let r = w.post(CARE_MANAGER, &topic, "月曜に伺います。").await;
    assert!(r["errors"].is_null(), "{r}");
    let open = |who: &'static str, query: &'static str| {
        let w = &w;
        let topic = topic.clone();
        async move {
            let r = w.gql(who, Some(HOST), query, json!({"id": topic})).await;
            assert!(r["errors"].is_null(), "{r}");
            r["data"]["topic"].clone()
        }
    };
    let names = |v: &Value| -> Vec<String> {
        v.as_array()
            .unwrap()
            .iter()
            .map(|p| p["name"].as_str().unwrap().to_owned())
            .collect()
    };
    // The pharmacist reads both; nothing of theirs is on the page. Posting the reply was not
    // reading the body: the care manager has not read it.
    let pharmacist = open(PHARMACIST, WITHOUT).await;
    assert_eq!(pharmacist["comments"].as_array().unwrap().len(), 2);
    let pharmacist_name = names(&pharmacist["comments"][1]["readers"]);
    assert_eq!(pharmacist_name.len(), 1, "{pharmacist}");
    // The nurse opens it: the body is hers, the reply the care manager's.
    let nurse = open(NURSE, WITHOUT).await;
    let (body, reply) = (&nurse["comments"][0], &nurse["comments"][1]);
    assert_eq!(body["mine"], true);
    assert_eq!(names(&body["readers"]), pharmacist_name, "{nurse}");
    assert_eq!(body["readerCount"], 1);
    let not_read = names(&body["notReadBy"]);
    assert_eq!(not_read.len(), 1, "the care manager: {nurse}");
    assert!(
        !not_read[0].is_empty() && not_read != pharmacist_name,
        "{nurse}"
    );
    assert_eq!(reply["mine"], false);
    assert_eq!(
        names(&reply["readers"]).len(),
        2,
        "the pharmacist and the nurse: {nurse}"
    );
    assert!(
        names(&reply["notReadBy"]).is_empty(),
        "only on one's own comments"
    );
    // Asked for through a fragment, the audience comes: all three members.
    let fragment = open(CARE_MANAGER, WITH_FRAGMENT).await;
    let audience = names(&fragment["audience"]);
    assert_eq!(audience.len(), 3, "{fragment}");
}
