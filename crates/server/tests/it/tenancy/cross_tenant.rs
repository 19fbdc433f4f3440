//! Cross-tenant and console authorization: a member of association A asking for anything of
//! association B, or a non-administrator asking for a console, gets exactly the answer of a
//! missing object, and the attempt is audited.

use musubi_demo::DEMO_PASSWORD;
use musubi_test_support::{error_codes, strip_locations, TestApp};
use serde_json::{json, Value};

async fn gql(app: &TestApp, query: &str, vars: Value, token: &str, association: &str) -> Value {
    app.gql(query, vars, Some(token), Some(association)).await
}

async fn user_id(app: &TestApp, email: &str) -> String {
    app.user_id(email).await.to_string()
}

/// Every console operation, with the variables it needs for a target person.
fn console_operations(target: &str) -> Vec<(&'static str, Value)> {
    vec![
        ("{ members { userId name } }", json!({})),
        ("{ associationSettings { requireSecondFactor } }", json!({})),
        ("{ auditLog { records { seq action } } }", json!({})),
        ("mutation($u: ID!) { deactivateMember(userId: $u) }", json!({"u": target})),
        ("mutation($u: ID!) { reactivateMember(userId: $u) }", json!({"u": target})),
        ("mutation($u: ID!) { changeMemberRole(userId: $u, role: ADMIN) }", json!({"u": target})),
        ("mutation($u: ID!) { signOutMember(userId: $u) }", json!({"u": target})),
        ("mutation($u: ID!) { resetMemberSecondFactor(userId: $u) }", json!({"u": target})),
        (
            "mutation { updateAssociationSettings(input: {requireSecondFactor: true, sessionIdleMinutes: 30, sessionAbsoluteHours: 8, auditRetentionYears: 5}) { requireSecondFactor } }",
            json!({}),
        ),
    ]
}

#[tokio::test]
async fn admin_of_one_association_gets_not_found_for_everything_of_another() {
    let app = TestApp::demo().await;
    let admin_a = app.demo_token("admin@minatogawa.example").await;
    let member_b = user_id(&app, "takahashi@sakuradai.example").await;
    let before = app.denied_count("sakuradai").await;
    let ops = console_operations(&member_b);
    for (query, vars) in &ops {
        let r = gql(&app, query, vars.clone(), &admin_a, "sakuradai").await;
        assert_eq!(error_codes(&r), vec!["NOT_FOUND"], "{query}: {r}");
        assert!(r["data"].is_null(), "{query}: {r}");
    }
    assert_eq!(
        app.denied_count("sakuradai").await - before,
        ops.len() as i64
    );
    // Nothing changed in B.
    let admin_b = app.demo_token("admin@sakuradai.example").await;
    let r = gql(
        &app,
        "{ associationSettings { requireSecondFactor } members { userId status role } }",
        json!({}),
        &admin_b,
        "sakuradai",
    )
    .await;
    assert_eq!(
        r["data"]["associationSettings"]["requireSecondFactor"], false,
        "{r}"
    );
    assert!(r["data"]["members"]
        .as_array()
        .unwrap()
        .iter()
        .all(|m| m["status"] == "active"));
}

#[tokio::test]
async fn a_person_of_another_association_is_a_missing_object_even_to_an_admin() {
    let app = TestApp::demo().await;
    let admin_a = app.demo_token("admin@minatogawa.example").await;
    let member_b = user_id(&app, "takahashi@sakuradai.example").await;
    let nobody = uuid::Uuid::new_v4().to_string();
    for (query, _) in console_operations("x")
        .into_iter()
        .filter(|(q, _)| q.contains("$u"))
    {
        let other = gql(&app, query, json!({"u": member_b}), &admin_a, "minatogawa").await;
        let missing = gql(&app, query, json!({"u": nobody}), &admin_a, "minatogawa").await;
        let garbage = gql(
            &app,
            query,
            json!({"u": "not-a-uuid"}),
            &admin_a,
            "minatogawa",
        )
        .await;
        assert_eq!(error_codes(&other), vec!["NOT_FOUND"], "{query}: {other}");
        assert_eq!(
            strip_locations(other.clone()),
            strip_locations(missing),
            "{query}"
        );
        assert_eq!(strip_locations(other), strip_locations(garbage), "{query}");
    }
}

#[tokio::test]
async fn a_member_asking_for_the_console_gets_not_found_and_is_audited() {
    let app = TestApp::demo().await;
    let nurse = app.demo_token("aoki@minatogawa.example").await;
    let colleague = user_id(&app, "morita@minatogawa.example").await;
    let before = app.denied_count("minatogawa").await;
    let ops = console_operations(&colleague);
    for (query, vars) in &ops {
        let r = gql(&app, query, vars.clone(), &nurse, "minatogawa").await;
        assert_eq!(error_codes(&r), vec!["NOT_FOUND"], "{query}: {r}");
    }
    assert_eq!(
        app.denied_count("minatogawa").await - before,
        ops.len() as i64
    );
    // A member may still see the facilities of their own association, but not of another.
    let r = gql(
        &app,
        "{ facilities { name } }",
        json!({}),
        &nurse,
        "minatogawa",
    )
    .await;
    assert!(
        r["data"]["facilities"].as_array().unwrap().len() >= 4,
        "{r}"
    );
    let r = gql(
        &app,
        "{ facilities { name } }",
        json!({}),
        &nurse,
        "sakuradai",
    )
    .await;
    assert_eq!(error_codes(&r), vec!["NOT_FOUND"]);
}

#[tokio::test]
async fn the_hospital_doctor_in_two_associations_is_an_admin_in_neither() {
    let app = TestApp::demo().await;
    let doctor = app.demo_token("sato@sakuradai-hospital.example").await;
    for slug in ["minatogawa", "sakuradai"] {
        let r = gql(&app, "{ members { name } }", json!({}), &doctor, slug).await;
        assert_eq!(error_codes(&r), vec!["NOT_FOUND"], "{slug}");
        let r = gql(&app, "{ facilities { name } }", json!({}), &doctor, slug).await;
        assert!(r["errors"].is_null(), "{slug}: {r}");
    }
}

#[tokio::test]
async fn deactivating_a_member_stops_their_open_session_at_once() {
    let app = TestApp::demo().await;
    let admin = app.demo_token("admin@minatogawa.example").await;
    let nurse = app.demo_token("aoki@minatogawa.example").await;
    let nurse_id = user_id(&app, "aoki@minatogawa.example").await;
    let r = gql(&app, "{ me { name } }", json!({}), &nurse, "minatogawa").await;
    assert_eq!(r["data"]["me"]["name"], "青木 さくら");
    let r = gql(
        &app,
        "mutation($u: ID!) { deactivateMember(userId: $u) }",
        json!({"u": nurse_id}),
        &admin,
        "minatogawa",
    )
    .await;
    assert_eq!(r["data"]["deactivateMember"], true, "{r}");
    let r = gql(&app, "{ me { name } }", json!({}), &nurse, "minatogawa").await;
    assert_eq!(error_codes(&r), vec!["UNAUTHENTICATED"], "{r}");
    // Signing in again gives a session without that association.
    let again = app.demo_token("aoki@minatogawa.example").await;
    let r = gql(
        &app,
        "{ me { memberships { associationSlug } } }",
        json!({}),
        &again,
        "minatogawa",
    )
    .await;
    assert_eq!(r["data"]["me"]["memberships"], json!([]), "{r}");
    let r = gql(
        &app,
        "{ facilities { name } }",
        json!({}),
        &again,
        "minatogawa",
    )
    .await;
    // みなと川 was her only association: nothing but her account is open to her now.
    assert_eq!(error_codes(&r), vec!["NO_ACTIVE_MEMBERSHIP"]);
}

#[tokio::test]
async fn the_last_administrator_cannot_be_removed() {
    let app = TestApp::demo().await;
    let admin = app.demo_token("admin@minatogawa.example").await;
    let admin_id = user_id(&app, "admin@minatogawa.example").await;
    let r = gql(
        &app,
        "mutation($u: ID!) { changeMemberRole(userId: $u, role: MEMBER) }",
        json!({"u": admin_id}),
        &admin,
        "minatogawa",
    )
    .await;
    assert_eq!(error_codes(&r), vec!["LAST_ADMIN"], "{r}");
}

#[tokio::test]
async fn settings_are_validated_and_audited() {
    let app = TestApp::demo().await;
    let admin = app.demo_token("admin@minatogawa.example").await;
    let update = "mutation($i: AssociationSettingsInput!) { updateAssociationSettings(input: $i) { requireSecondFactor sessionIdleMinutes } }";
    let bad = json!({"i": {"requireSecondFactor": true, "sessionIdleMinutes": 2, "sessionAbsoluteHours": 8, "auditRetentionYears": 5}});
    let r = gql(&app, update, bad, &admin, "minatogawa").await;
    assert_eq!(error_codes(&r), vec!["INVALID_INPUT"]);
    assert_eq!(r["errors"][0]["extensions"]["field"], "sessionIdleMinutes");
    let good = json!({"i": {"requireSecondFactor": true, "sessionIdleMinutes": 30, "sessionAbsoluteHours": 8, "auditRetentionYears": 5}});
    let r = gql(&app, update, good, &admin, "minatogawa").await;
    assert_eq!(
        r["data"]["updateAssociationSettings"]["requireSecondFactor"], true,
        "{r}"
    );

    // Members of that association are now made to enrol a second factor at sign-in.
    let r = app
        .graphql_raw(
            json!({"query": "mutation($e: String!, $p: String!) { signIn(email: $e, password: $p) { next } }",
                   "variables": {"e": "ishii@minatogawa.example", "p": DEMO_PASSWORD}}),
            None,
        )
        .await;
    assert_eq!(r["data"]["signIn"]["next"], "ENROL_SECOND_FACTOR", "{r}");
}

#[tokio::test]
async fn administrators_read_their_own_audit_log() {
    let app = TestApp::demo().await;
    let admin = app.demo_token("admin@minatogawa.example").await;
    let _ = app.demo_token("aoki@minatogawa.example").await;
    let q = "query($f: AuditFilterInput) { auditLog(filter: $f, limit: 50) { records { seq actorLabel action } nextBefore } }";
    let r = gql(
        &app,
        q,
        json!({"f": {"action": "auth"}}),
        &admin,
        "minatogawa",
    )
    .await;
    let records = r["data"]["auditLog"]["records"].as_array().unwrap();
    let labels: Vec<&str> = records
        .iter()
        .map(|x| x["actorLabel"].as_str().unwrap())
        .collect();
    assert!(
        labels.contains(&"青木 さくら") && labels.contains(&"港 事務子"),
        "{r}"
    );
    assert!(records
        .iter()
        .all(|x| x["action"].as_str().unwrap().starts_with("auth.")));
    // Newest first.
    let seqs: Vec<i64> = records.iter().map(|x| x["seq"].as_i64().unwrap()).collect();
    assert!(seqs.windows(2).all(|w| w[0] > w[1]), "{seqs:?}");
    let r = gql(
        &app,
        "{ auditLog(limit: 500) { nextBefore } }",
        json!({}),
        &admin,
        "minatogawa",
    )
    .await;
    assert!(r["errors"].is_array(), "limit is capped: {r}");
}

#[tokio::test]
async fn deactivation_and_reactivation_are_audited_under_their_own_codes() {
    let app = TestApp::demo().await;
    let admin = app.demo_token("admin@minatogawa.example").await;
    let nurse_id = app.user_id("aoki@minatogawa.example").await;
    for op in ["deactivateMember", "reactivateMember"] {
        let r = gql(
            &app,
            &format!("mutation($u: ID!) {{ {op}(userId: $u) }}"),
            json!({"u": nurse_id}),
            &admin,
            "minatogawa",
        )
        .await;
        assert_eq!(r["data"][op], true, "{r}");
    }
    let q = "{ auditLog(filter: {action: \"member\"}) { records { action objectId } } }";
    let r = gql(&app, q, json!({}), &admin, "minatogawa").await;
    let actions: Vec<&str> = r["data"]["auditLog"]["records"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x["action"].as_str().unwrap())
        .collect();
    assert_eq!(
        actions,
        vec!["member.reactivate", "member.deactivate"],
        "{r}"
    );
}

/// What a request routed to the wrong association could have touched: the directory, the
/// events, and both associations' content and audit logs.
async fn everything(app: &TestApp) -> Vec<String> {
    let pool = app.db.db.pool();
    let mut out: Vec<String> = vec![
        sqlx::query_scalar(
            "SELECT COALESCE(string_agg(concat_ws(':', group_id, user_id, role, status, \
                    invited_by_email), ',' ORDER BY group_id, user_id), '') \
             FROM core.group_members",
        )
        .fetch_one(pool)
        .await
        .unwrap(),
        sqlx::query_scalar::<_, i64>("SELECT count(*) FROM core.events")
            .fetch_one(pool)
            .await
            .unwrap()
            .to_string(),
    ];
    for slug in ["minatogawa", "sakuradai"] {
        let mut tx = app.tenant_tx(slug).await;
        let row: String = sqlx::query_scalar(
            "SELECT concat_ws(' | ', \
               (SELECT string_agg(concat_ws(':', id, name, description, join_policy, \
                       receipt_mode), ',' ORDER BY id) FROM groups), \
               (SELECT string_agg(concat_ws(':', id, title, scope, pinned, closed, last_seq), \
                       ',' ORDER BY id) FROM topics), \
               (SELECT string_agg(concat_ws(':', id, body, version, deleted_at), ',' ORDER BY id) \
                  FROM comments), \
               (SELECT string_agg(concat_ws(':', user_id, topic_id, count), ',' \
                       ORDER BY user_id, topic_id) FROM unread), \
               (SELECT count(*) FROM acknowledgements), \
               (SELECT count(*) FROM footprints), \
               (SELECT count(*) FROM audit_log))",
        )
        .fetch_one(&mut *tx)
        .await
        .unwrap();
        out.push(format!("{slug}: {row}"));
    }
    out
}

/// The caller is a legitimate member (owner, invitee) of さくら台's group in every case; only
/// the routing is wrong. Each operation must find nothing and change nothing, anywhere.
#[tokio::test]
async fn every_group_operation_routed_to_another_association_is_not_found_and_changes_nothing() {
    use musubi_authz::GroupRole;
    let app = TestApp::demo().await;
    let sato = app.demo_token("sato@sakuradai-hospital.example").await; // in both
    let nakamura = app.demo_token("nakamura@sakuradai.example").await;
    let kobayashi = app.demo_token("kobayashi@sakuradai.example").await;
    let aoki = app.demo_token("aoki@minatogawa.example").await; // みなと川 only
    let ok = |r: Value| {
        assert!(r["errors"].is_null(), "{r}");
        r["data"].clone()
    };
    let create = "mutation($n: String!) { createGroup(kind: GENERAL, name: $n, acceptsRequests: true, receiptMode: ACKNOWLEDGEMENT) { id } }";
    let d = ok(gql(
        &app,
        create,
        json!({"n": "さくら台 退院調整"}),
        &nakamura,
        "sakuradai",
    )
    .await);
    let group = d["createGroup"]["id"].as_str().unwrap().to_owned();
    let d = ok(gql(
        &app,
        create,
        json!({"n": "さくら台 勉強会"}),
        &nakamura,
        "sakuradai",
    )
    .await);
    let open_group = d["createGroup"]["id"].as_str().unwrap().to_owned();
    let sakuradai = app.services().resolve_tenant("sakuradai").await.unwrap();
    let minatogawa = app.services().resolve_tenant("minatogawa").await.unwrap();
    let sato_id = app.user_id("sato@sakuradai-hospital.example").await;
    app.operator()
        .add_group_member(
            &sakuradai,
            group.parse().unwrap(),
            sato_id,
            GroupRole::Owner,
        )
        .await
        .unwrap();
    let d = ok(gql(
        &app,
        "mutation($g: ID!) { createTopic(groupId: $g, title: \"退院前カンファレンス\", body: \"日程の相談です。\") }",
        json!({"g": group}),
        &sato,
        "sakuradai",
    )
    .await);
    let topic = d["createTopic"].as_str().unwrap().to_owned();
    let post = "mutation($t: ID!, $b: String!) { postComment(topicId: $t, body: $b) }";
    let d = ok(gql(
        &app,
        post,
        json!({"t": topic, "b": "水曜の午後はいかがですか。"}),
        &sato,
        "sakuradai",
    )
    .await);
    let mine = d["postComment"].as_str().unwrap().to_owned();
    let d = ok(gql(
        &app,
        post,
        json!({"t": topic, "b": "承知しました。"}),
        &nakamura,
        "sakuradai",
    )
    .await);
    let hers = d["postComment"].as_str().unwrap().to_owned();
    ok(gql(
        &app,
        "mutation($g: ID!) { requestToJoinGroup(groupId: $g) }",
        json!({"g": group}),
        &kobayashi,
        "sakuradai",
    )
    .await);
    let aoki_id = user_id(&app, "aoki@minatogawa.example").await;
    ok(gql(
        &app,
        "mutation($g: ID!, $u: ID!) { inviteToGroup(groupId: $g, userId: $u) }",
        json!({"g": group, "u": aoki_id}),
        &sato,
        "sakuradai",
    )
    .await);

    let kobayashi_id = user_id(&app, "kobayashi@sakuradai.example").await;
    let nakamura_id = user_id(&app, "nakamura@sakuradai.example").await;
    let kawamura_id = user_id(&app, "kawamura@minatogawa.example").await;
    let g = json!({"g": group});
    let ops: Vec<(&str, &str, Value)> = vec![
        (sato.as_str(), "query($g: ID!) { group(id: $g) { group { id } } }", g.clone()),
        (aoki.as_str(), "query($g: ID!) { groupPreview(id: $g) { id } }", g.clone()),
        (sato.as_str(), "query($g: ID!) { groupInviteCandidates(groupId: $g) { userId } }", g.clone()),
        (sato.as_str(), "query($t: ID!) { topic(id: $t) { topic { id } } }", json!({"t": topic})),
        (sato.as_str(), "mutation($g: ID!) { updateGroup(id: $g, name: \"変更\") { id } }", g.clone()),
        (
            sato.as_str(),
            "mutation($g: ID!, $u: ID!) { inviteToGroup(groupId: $g, userId: $u) }",
            json!({"g": group, "u": kawamura_id}),
        ),
        (
            sato.as_str(),
            "mutation($g: ID!) { inviteToGroupByEmail(groupId: $g, email: \"kawamura@minatogawa.example\") }",
            g.clone(),
        ),
        (aoki.as_str(), "mutation($g: ID!) { answerGroupInvitation(groupId: $g, accept: true) }", g.clone()),
        (aoki.as_str(), "mutation($g: ID!) { answerGroupInvitation(groupId: $g, accept: false) }", g.clone()),
        (sato.as_str(), "mutation($g: ID!) { requestToJoinGroup(groupId: $g) }", json!({"g": open_group})),
        (
            sato.as_str(),
            "mutation($g: ID!, $u: ID!) { answerJoinRequest(groupId: $g, userId: $u, approve: true) }",
            json!({"g": group, "u": kobayashi_id}),
        ),
        (
            sato.as_str(),
            "mutation($g: ID!, $u: ID!) { removeGroupMember(groupId: $g, userId: $u) }",
            json!({"g": group, "u": nakamura_id}),
        ),
        (
            sato.as_str(),
            "mutation($g: ID!, $u: ID!) { removeGroupMember(groupId: $g, userId: $u) }",
            json!({"g": group, "u": sato_id.to_string()}),
        ),
        (
            sato.as_str(),
            "mutation($g: ID!, $u: ID!) { setGroupRole(groupId: $g, userId: $u, role: MEMBER) }",
            json!({"g": group, "u": nakamura_id}),
        ),
        (
            sato.as_str(),
            "mutation($g: ID!) { createTopic(groupId: $g, title: \"別件\", body: \"本文\") }",
            g.clone(),
        ),
        (sato.as_str(), "mutation($t: ID!) { updateTopic(id: $t, closed: true) }", json!({"t": topic})),
        (sato.as_str(), "mutation($t: ID!) { postComment(topicId: $t, body: \"追記\") }", json!({"t": topic})),
        (
            sato.as_str(),
            "mutation($c: ID!) { editComment(id: $c, body: \"訂正\", important: true) }",
            json!({"c": mine}),
        ),
        (sato.as_str(), "mutation($c: ID!) { deleteComment(id: $c) }", json!({"c": mine})),
        (sato.as_str(), "mutation($c: ID!) { acknowledgeComment(id: $c) }", json!({"c": hers})),
        (sato.as_str(), "mutation($g: ID!) { markGroupRead(groupId: $g) }", g.clone()),
    ];

    let before = everything(&app).await;
    for (token, query, vars) in &ops {
        let r = gql(&app, query, vars.clone(), token, "minatogawa").await;
        assert_eq!(error_codes(&r), vec!["NOT_FOUND"], "{query}: {r}");
        assert!(r["data"].is_null(), "{query}: {r}");
    }
    let r = app
        .operator()
        .add_group_member(
            &minatogawa,
            group.parse().unwrap(),
            sato_id,
            GroupRole::Member,
        )
        .await;
    assert_eq!(
        r.map_err(|e| e.code),
        Err(musubi_domain::ErrorCode::NotFound)
    );
    assert_eq!(everything(&app).await, before);

    // Routed to its host, the same invitation is accepted, and the join is on さくら台's record.
    ok(gql(
        &app,
        "mutation($g: ID!) { answerGroupInvitation(groupId: $g, accept: true) }",
        g.clone(),
        &aoki,
        "sakuradai",
    )
    .await);
    let after = everything(&app).await;
    assert_ne!(after[0], before[0], "aoki joined");
    assert_eq!(after[2], before[2], "みなと川 untouched");
    let mut tx = app.db.db.tenant_tx(&sakuradai).await.unwrap();
    let joined: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM audit_log WHERE action = 'group.member_join' AND actor_id = $1",
    )
    .bind(uuid::Uuid::parse_str(&aoki_id).unwrap())
    .fetch_one(&mut *tx)
    .await
    .unwrap();
    assert_eq!(joined, 1);
}
