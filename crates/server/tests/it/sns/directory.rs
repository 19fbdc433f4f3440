//! The directory an owner picks members from: their own associations and, by the operator's
//! record of the associations' agreement, the neighbouring ones (the demo's みなと川 and さくら台
//! share theirs); searched by name, reading, facility or profession ignoring width and kana
//! kind; whole teams invited in one step; several people removed at once, all or nothing, and
//! never the last owner even when two owners remove each other at the same moment.

use musubi_authz::GroupRole;
use musubi_test_support::demo::{
    CARE_MANAGER, CLINIC_DOCTOR, HOST, NURSE, OTHER, OTHER_ADMIN, OTHER_NURSE, PHARMACIST,
    THERAPIST,
};
use musubi_test_support::{error_codes, TestApp};
use serde_json::{json, Value};
use std::collections::HashMap;

const CANDIDATES: &str = "query($g: ID!, $s: String) { groupInviteCandidates(groupId: $g, \
    search: $s, first: 50) { userId name profession associationName facilityName status } }";
const TEAMS: &str = "query($g: ID!, $s: String) { groupFacilityCandidates(groupId: $g, \
    search: $s) { id name kind associationName people } }";
const INVITE: &str = "mutation($g: ID!, $u: ID!) { inviteToGroup(groupId: $g, userId: $u) }";
const INVITE_TEAM: &str =
    "mutation($g: ID!, $f: ID!) { inviteFacilityToGroup(groupId: $g, facilityId: $f) }";
const REMOVE_MANY: &str =
    "mutation($g: ID!, $u: [ID!]!) { removeGroupMembers(groupId: $g, userIds: $u) }";
const MEMBERS: &str = "query($id: ID!) { group(id: $id) { members { userId role status } } }";

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
            CLINIC_DOCTOR,
            PHARMACIST,
            THERAPIST,
            OTHER_NURSE,
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

    async fn group(&self, owner: &str, slug: &str, name: &str) -> String {
        let d = self
            .ok(
                owner,
                slug,
                "mutation($n: String!) { createGroup(kind: GENERAL, name: $n) { id } }",
                json!({"n": name}),
            )
            .await;
        d["createGroup"]["id"].as_str().unwrap().to_owned()
    }

    async fn add(&self, group: &str, who: &str, role: GroupRole) {
        let tenant = self.app.services().resolve_tenant(HOST).await.unwrap();
        let user = self.app.user_id(who).await;
        self.app
            .operator()
            .add_group_member(&tenant, group.parse().unwrap(), user, role)
            .await
            .unwrap();
    }

    async fn id(&self, who: &str) -> String {
        self.app.user_id(who).await.to_string()
    }

    async fn found(&self, who: &str, slug: &str, group: &str, search: &str) -> Vec<Value> {
        self.ok(who, slug, CANDIDATES, json!({"g": group, "s": search}))
            .await["groupInviteCandidates"]
            .as_array()
            .unwrap()
            .clone()
    }

    async fn members(&self, who: &str, group: &str) -> Vec<(String, String, String)> {
        let d = self.ok(who, HOST, MEMBERS, json!({"id": group})).await;
        d["group"]["members"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| {
                (
                    m["userId"].as_str().unwrap().to_owned(),
                    m["role"].as_str().unwrap().to_owned(),
                    m["status"].as_str().unwrap().to_owned(),
                )
            })
            .collect()
    }
}

fn ids(rows: &[Value]) -> Vec<String> {
    rows.iter()
        .map(|c| c["userId"].as_str().unwrap().to_owned())
        .collect()
}

async fn audit_actions(app: &TestApp, slug: &str) -> Vec<Value> {
    let tenant = app.services().resolve_tenant(slug).await.unwrap();
    let mut tx = app.db.db.tenant_tx(&tenant).await.unwrap();
    sqlx::query_scalar(
        "SELECT detail FROM audit_log WHERE action = 'association.neighbours' ORDER BY seq",
    )
    .fetch_all(&mut *tx)
    .await
    .unwrap()
}

#[tokio::test]
async fn neighbouring_associations_find_each_others_people_in_any_kana_or_width() {
    let w = World::new().await;
    let group = w.group(NURSE, HOST, "退院調整の会").await;
    let nakamura = w.id(OTHER_NURSE).await;

    // 中村 愛 works only in さくら台: found by her name's kanji, hiragana, katakana and
    // half-width katakana, with her association and station.
    for search in [
        "中村",
        "なかむら",
        "ナカムラ",
        "ﾅｶﾑﾗ",
        "なかむら　あい",
        "さくら台訪問",
    ] {
        let found = w.found(NURSE, HOST, &group, search).await;
        assert!(ids(&found).contains(&nakamura), "{search}: {found:?}");
        let her = found
            .iter()
            .find(|c| c["userId"] == nakamura.as_str())
            .unwrap();
        assert_eq!(her["associationName"], "さくら台医師会");
        assert_eq!(her["facilityName"], "さくら台訪問看護ステーション");
    }
    // By profession, as people call it: both associations' care managers, nobody else.
    let found = w.found(NURSE, HOST, &group, "ケアマネ").await;
    assert_eq!(found.len(), 2, "{found:?}");
    assert!(found.iter().all(|c| c["profession"] == "care_manager"));
    // The agreement works both ways: a さくら台 owner finds みなと川's pharmacist.
    let theirs = w.group(OTHER_NURSE, OTHER, "さくら台の勉強会").await;
    let found = w.found(OTHER_NURSE, OTHER, &theirs, "はやし").await;
    assert_eq!(ids(&found), vec![w.id(PHARMACIST).await], "{found:?}");

    // Picked from the directory, she is invited and sees it on her home page.
    w.ok(NURSE, HOST, INVITE, json!({"g": group, "u": nakamura}))
        .await;
    let home = w
        .app
        .gql(
            "{ myGroups { group { id myStatus } } }",
            json!({}),
            Some(&w.tokens[OTHER_NURSE]),
            None,
        )
        .await;
    assert!(
        home["data"]["myGroups"]
            .as_array()
            .unwrap()
            .iter()
            .any(|g| g["group"]["id"] == group.as_str() && g["group"]["myStatus"] == "INVITED"),
        "{home}"
    );

    // The operator ends the agreement: her colleagues are out of reach again, by search and by
    // id, as if they did not exist; both associations' logs say so.
    assert!(w
        .app
        .operator()
        .set_neighbours(HOST, OTHER, false)
        .await
        .unwrap());
    assert!(w.found(NURSE, HOST, &group, "ケアマネ").await.len() == 1);
    let kobayashi = w.app.user_id("kobayashi@sakuradai.example").await;
    let r = w
        .gql(
            NURSE,
            HOST,
            INVITE,
            json!({"g": group, "u": kobayashi.to_string()}),
        )
        .await;
    assert_eq!(error_codes(&r), ["NOT_FOUND"], "{r}");
    for slug in [HOST, OTHER] {
        let records = audit_actions(&w.app, slug).await;
        assert_eq!(
            records.len(),
            2,
            "{slug}: set by the demo, then ended: {records:?}"
        );
        assert_eq!(records[1]["neighbours"], false);
    }
    assert_eq!(audit_actions(&w.app, HOST).await[1]["neighbour"], OTHER);
    // Ending it twice changes nothing; an association is never its own neighbour.
    assert!(!w
        .app
        .operator()
        .set_neighbours(OTHER, HOST, false)
        .await
        .unwrap());
    let e = w
        .app
        .operator()
        .set_neighbours(HOST, HOST, true)
        .await
        .unwrap_err();
    assert_eq!(e.code.as_str(), "INVALID_INPUT");
    assert_eq!(audit_actions(&w.app, HOST).await.len(), 2);
}

#[tokio::test]
async fn a_whole_team_across_the_border_is_invited_in_one_step() {
    let w = World::new().await;
    let group = w.group(NURSE, HOST, "在宅酸素の勉強会").await;
    let teams = w
        .ok(NURSE, HOST, TEAMS, json!({"g": group, "s": "訪問看護"}))
        .await["groupFacilityCandidates"]
        .as_array()
        .unwrap()
        .clone();
    // Her own station first (she is in it, so only its others count), then the neighbour's.
    let names: Vec<&str> = teams.iter().map(|t| t["name"].as_str().unwrap()).collect();
    assert!(names.contains(&"さくら台訪問看護ステーション"), "{teams:?}");
    let station = teams
        .iter()
        .find(|t| t["name"] == "さくら台訪問看護ステーション")
        .unwrap();
    assert_eq!(station["associationName"], "さくら台医師会");
    assert_eq!(station["kind"], "visiting_nurse_station");
    let people = station["people"].as_i64().unwrap();
    assert!(people >= 1, "{station}");

    let d = w
        .ok(
            NURSE,
            HOST,
            INVITE_TEAM,
            json!({"g": group, "f": station["id"]}),
        )
        .await;
    assert_eq!(d["inviteFacilityToGroup"].as_i64(), Some(people));
    let found = w.found(NURSE, HOST, &group, "なかむら").await;
    assert_eq!(found[0]["status"], "INVITED", "{found:?}");
    // Nobody is left to invite there, so the team is no longer offered.
    let again = w
        .ok(NURSE, HOST, TEAMS, json!({"g": group, "s": "さくら台訪問"}))
        .await;
    assert_eq!(again["groupFacilityCandidates"], json!([]), "{again}");

    // Without the agreement the station is outside her directory: not found, nobody invited.
    w.app
        .operator()
        .set_neighbours(HOST, OTHER, false)
        .await
        .unwrap();
    let fresh = w.group(NURSE, HOST, "二つめの会").await;
    let r = w
        .gql(
            NURSE,
            HOST,
            INVITE_TEAM,
            json!({"g": fresh, "f": station["id"]}),
        )
        .await;
    assert_eq!(error_codes(&r), ["NOT_FOUND"], "{r}");
    assert_eq!(w.members(NURSE, &fresh).await.len(), 1);
    // An administrator of さくら台 who is in no group of みなと川 learns nothing either.
    let admin = w.app.demo_token(OTHER_ADMIN).await;
    let r = w
        .app
        .gql(
            TEAMS,
            json!({"g": group, "s": ""}),
            Some(&admin),
            Some(HOST),
        )
        .await;
    assert!(!r["errors"].is_null(), "{r}");
}

#[tokio::test]
async fn owners_remove_several_people_at_once_all_or_nothing() {
    let w = World::new().await;
    let group = w.group(NURSE, HOST, "退院前カンファレンス").await;
    for who in [CARE_MANAGER, CLINIC_DOCTOR, PHARMACIST] {
        w.add(&group, who, GroupRole::Member).await;
    }
    let (cm, doctor, pharmacist) = (
        w.id(CARE_MANAGER).await,
        w.id(CLINIC_DOCTOR).await,
        w.id(PHARMACIST).await,
    );
    let stranger = w.id(THERAPIST).await;

    // One of them is not in the group: nobody is removed.
    let r = w
        .gql(
            NURSE,
            HOST,
            REMOVE_MANY,
            json!({"g": group, "u": [cm, doctor, stranger]}),
        )
        .await;
    assert_eq!(error_codes(&r), ["NOT_FOUND"], "{r}");
    assert_eq!(w.members(NURSE, &group).await.len(), 4);
    // Herself, nobody, or too many at once: refused with the field named.
    let me = w.id(NURSE).await;
    let too_many: Vec<String> = (0..101).map(|_| uuid::Uuid::new_v4().to_string()).collect();
    for ids in [json!([me, cm]), json!([]), json!(too_many)] {
        let r = w
            .gql(NURSE, HOST, REMOVE_MANY, json!({"g": group, "u": ids}))
            .await;
        assert_eq!(error_codes(&r), ["INVALID_INPUT"], "{r}");
        assert_eq!(r["errors"][0]["extensions"]["field"], "userIds", "{r}");
    }
    // A member who is not an owner may not.
    let r = w
        .gql(
            CARE_MANAGER,
            HOST,
            REMOVE_MANY,
            json!({"g": group, "u": [doctor]}),
        )
        .await;
    assert!(!r["errors"].is_null(), "{r}");
    assert_eq!(w.members(NURSE, &group).await.len(), 4);

    // Two at once (one of them twice in the list): both go, the rest stay.
    let d = w
        .ok(
            NURSE,
            HOST,
            REMOVE_MANY,
            json!({"g": group, "u": [cm, doctor, cm]}),
        )
        .await;
    assert_eq!(d["removeGroupMembers"], 2);
    let left: Vec<String> = w
        .members(NURSE, &group)
        .await
        .into_iter()
        .map(|m| m.0)
        .collect();
    assert_eq!(left.len(), 2);
    assert!(left.contains(&me) && left.contains(&pharmacist), "{left:?}");
    let tenant = w.app.services().resolve_tenant(HOST).await.unwrap();
    let mut tx = w.app.db.db.tenant_tx(&tenant).await.unwrap();
    let detail: Value = sqlx::query_scalar(
        "SELECT detail FROM audit_log WHERE action = 'group.member_remove' ORDER BY seq DESC LIMIT 1",
    )
    .fetch_one(&mut *tx)
    .await
    .unwrap();
    assert_eq!(
        detail["user_ids"].as_array().map(Vec::len),
        Some(2),
        "{detail}"
    );
}

#[tokio::test]
async fn two_owners_removing_each_other_at_once_leave_one_owner() {
    let w = World::new().await;
    for round in 0..4 {
        let group = w.group(NURSE, HOST, &format!("引き継ぎの会 {round}")).await;
        w.add(&group, CARE_MANAGER, GroupRole::Owner).await;
        let (nurse, cm) = (w.id(NURSE).await, w.id(CARE_MANAGER).await);
        // Half the rounds with the bulk form, half with the single one.
        let (a, b) = if round % 2 == 0 {
            tokio::join!(
                w.gql(NURSE, HOST, REMOVE_MANY, json!({"g": group, "u": [cm]})),
                w.gql(
                    CARE_MANAGER,
                    HOST,
                    REMOVE_MANY,
                    json!({"g": group, "u": [nurse]})
                ),
            )
        } else {
            let single =
                "mutation($g: ID!, $u: ID!) { removeGroupMember(groupId: $g, userId: $u) }";
            tokio::join!(
                w.gql(NURSE, HOST, single, json!({"g": group, "u": cm})),
                w.gql(CARE_MANAGER, HOST, single, json!({"g": group, "u": nurse})),
            )
        };
        let succeeded = [&a, &b].iter().filter(|r| r["errors"].is_null()).count();
        assert_eq!(succeeded, 1, "round {round}: {a} {b}");
        let loser = if a["errors"].is_null() { &b } else { &a };
        let code = error_codes(loser);
        assert!(
            code == ["LAST_OWNER"] || code == ["NOT_FOUND"],
            "round {round}: {loser}"
        );
        // Exactly one active owner is left, whoever won.
        let winner = if a["errors"].is_null() {
            NURSE
        } else {
            CARE_MANAGER
        };
        let owners: Vec<_> = w
            .members(winner, &group)
            .await
            .into_iter()
            .filter(|m| m.1 == "OWNER" && m.2 == "ACTIVE")
            .collect();
        assert_eq!(owners.len(), 1, "round {round}: {owners:?}");
    }
}
