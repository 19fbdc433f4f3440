//! `search` in GraphQL: hits with their association, group, topic and a snippet whose matched
//! pieces are the query's words; refusals as `INVALID_INPUT` with a stable reason; what two
//! people find differs by what each may read; narrowing to one group, kind and page.

use musubi_test_support::demo::{CLINIC_DOCTOR, HOSPITAL_DOCTOR, HOST, NURSE, OTHER, OTHER_NURSE};
use musubi_test_support::{error_codes, TestApp};
use serde_json::{json, Value};
use std::collections::HashSet;
use uuid::Uuid;

const YAMADA: &str = "山田 太郎さん（85歳・在宅酸素）";

const SEARCH: &str = "query Search($q: String!, $kind: SearchKind, $group: ID, \
     $association: String, $order: SearchOrder, $after: String, $first: Int) { \
     search(query: $q, kind: $kind, groupId: $group, association: $association, order: $order, \
            after: $after, first: $first) { \
       total moreThanTotal next \
       hits { kind id association associationName groupId groupName topicId topicTitle \
              commentId seq author at snippet { text matched } } } }";

async fn search(app: &TestApp, token: &str, variables: Value) -> Value {
    let (_, _, body) = app
        .graphql_as(
            token,
            HOST,
            json!({ "query": SEARCH, "variables": variables }),
        )
        .await;
    body
}

/// The hits of a successful search.
fn hits(answer: &Value) -> &Vec<Value> {
    assert!(answer["errors"].is_null(), "{answer}");
    answer["data"]["search"]["hits"].as_array().unwrap()
}

fn matched(hit: &Value) -> Vec<&str> {
    hit["snippet"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|p| p["matched"] == true)
        .map(|p| p["text"].as_str().unwrap())
        .collect()
}

#[tokio::test]
async fn a_search_returns_hits_with_where_they_are_and_a_marked_snippet() {
    let app = TestApp::demo().await;
    let nurse = app.demo_token(NURSE).await;
    let answer = search(&app, &nurse, json!({ "q": "酸化マグネシウム" })).await;
    let found = hits(&answer);
    assert!(found.len() >= 2, "{answer}");
    assert_eq!(
        answer["data"]["search"]["total"],
        json!(found.len()),
        "{answer}"
    );
    assert_eq!(answer["data"]["search"]["moreThanTotal"], false);
    assert!(answer["data"]["search"]["next"].is_null());
    for hit in found {
        assert_eq!(hit["kind"], "COMMENT", "{hit}");
        assert_eq!(hit["association"], HOST);
        assert_eq!(hit["groupName"], YAMADA);
        assert_eq!(hit["commentId"], hit["id"]);
        assert!(hit["seq"].as_i64().unwrap() >= 1);
        assert!(hit["topicTitle"].as_str().is_some_and(|t| !t.is_empty()));
        assert!(hit["author"].as_str().is_some_and(|a| !a.is_empty()));
        assert_eq!(matched(hit), vec!["酸化マグネシウム"], "{hit}");
    }
    // Newest first.
    let times: Vec<&str> = found.iter().map(|h| h["at"].as_str().unwrap()).collect();
    let mut sorted = times.clone();
    sorted.sort_by(|a, b| b.cmp(a));
    assert_eq!(times, sorted);

    // A patient, by reading, narrowed to patients.
    let answer = search(&app, &nurse, json!({ "q": "ヤマダ", "kind": "PATIENT" })).await;
    let found = hits(&answer);
    assert_eq!(found.len(), 1, "{answer}");
    assert_eq!(found[0]["kind"], "PATIENT");
    assert_eq!(found[0]["groupName"], YAMADA);
    assert!(found[0]["commentId"].is_null());
    assert_eq!(matched(&found[0]), vec!["やまだ"]);
}

#[tokio::test]
async fn a_refused_query_is_invalid_input_with_its_reason() {
    let app = TestApp::demo().await;
    let nurse = app.demo_token(NURSE).await;
    let many = (1..=11)
        .map(|i| format!("w{i}"))
        .collect::<Vec<_>>()
        .join(" ");
    let cases = [
        (json!({ "q": "" }), "SEARCH_NO_WORDS", "query"),
        (json!({ "q": "-転倒" }), "SEARCH_NO_WORDS", "query"),
        (json!({ "q": "あ".repeat(201) }), "SEARCH_TOO_LONG", "query"),
        (json!({ "q": many }), "SEARCH_TOO_MANY_WORDS", "query"),
        (
            json!({ "q": "血圧", "after": "not-a-page" }),
            "SEARCH_BAD_CURSOR",
            "after",
        ),
    ];
    for (variables, reason, field) in cases {
        let answer = search(&app, &nurse, variables.clone()).await;
        assert_eq!(
            error_codes(&answer),
            vec!["INVALID_INPUT"],
            "{variables}: {answer}"
        );
        let ext = &answer["errors"][0]["extensions"];
        assert_eq!(ext["reasons"], json!([reason]), "{variables}: {answer}");
        assert_eq!(ext["field"], field, "{variables}: {answer}");
        assert!(answer["data"].is_null(), "{answer}");
    }
    // Not signed in.
    let answer = app
        .graphql_raw(
            json!({ "query": SEARCH, "variables": { "q": "血圧" } }),
            None,
        )
        .await;
    assert_eq!(error_codes(&answer), vec!["UNAUTHENTICATED"], "{answer}");
}

#[tokio::test]
async fn two_people_find_what_each_may_read() {
    let app = TestApp::demo().await;
    let nurse = app.demo_token(NURSE).await;
    let doctor = app.demo_token(CLINIC_DOCTOR).await;
    let hospital = app.demo_token(HOSPITAL_DOCTOR).await;
    let outsider = app.demo_token(OTHER_NURSE).await;
    // 「ご家族の介護負担について（コメディカル間）」 in 山田's group: co-medical staff only.
    let co_medical = "ポータブルトイレ";
    let answer = search(&app, &nurse, json!({ "q": co_medical })).await;
    let found = hits(&answer);
    assert_eq!(found.len(), 1, "{answer}");
    assert_eq!(
        found[0]["topicTitle"],
        "ご家族の介護負担について（コメディカル間）"
    );
    assert_eq!(found[0]["seq"], 1);
    for token in [&doctor, &hospital, &outsider] {
        let answer = search(&app, token, json!({ "q": co_medical })).await;
        assert!(hits(&answer).is_empty(), "{answer}");
        assert_eq!(answer["data"]["search"]["total"], 0);
    }
    // Everyone in the group finds the rest of its topics; someone outside it nothing.
    let everyone = "体圧分散マットレス";
    for token in [&nurse, &doctor, &hospital] {
        assert_eq!(
            hits(&search(&app, token, json!({ "q": everyone })).await).len(),
            1
        );
    }
    let answer = search(&app, &outsider, json!({ "q": everyone })).await;
    assert!(hits(&answer).is_empty(), "{answer}");
}

#[tokio::test]
async fn a_search_narrows_to_one_group_and_pages_without_repeats() {
    let app = TestApp::demo().await;
    let nurse = app.demo_token(NURSE).await;
    let outsider = app.demo_token(OTHER_NURSE).await;
    let yamada: Uuid = sqlx::query_scalar("SELECT id FROM groups WHERE name = $1")
        .bind(YAMADA)
        .fetch_one(&mut *app.tenant_tx(HOST).await)
        .await
        .unwrap();

    // 「の」 is in most comments, in both associations the nurse has groups in.
    let all = search(
        &app,
        &nurse,
        json!({ "q": "の", "kind": "COMMENT", "first": 50 }),
    )
    .await;
    let all_hits = hits(&all);
    let associations: HashSet<&str> = all_hits
        .iter()
        .map(|h| h["association"].as_str().unwrap())
        .collect();
    assert_eq!(associations, HashSet::from([HOST, OTHER]), "{all}");

    let narrowed = json!({ "q": "の", "kind": "COMMENT", "group": yamada.to_string(),
                           "association": HOST, "first": 7 });
    let mut seen = Vec::new();
    let mut variables = narrowed.clone();
    let total = loop {
        let answer = search(&app, &nurse, variables.clone()).await;
        let page = hits(&answer);
        assert!(page.len() <= 7);
        for h in page {
            assert_eq!(h["groupId"], yamada.to_string(), "{h}");
            seen.push(h["id"].as_str().unwrap().to_owned());
        }
        match answer["data"]["search"]["next"].as_str() {
            Some(next) => variables["after"] = json!(next),
            None => break answer["data"]["search"]["total"].as_u64().unwrap(),
        }
    };
    assert!(seen.len() > 7, "more than one page: {}", seen.len());
    let unique: HashSet<&String> = seen.iter().collect();
    assert_eq!(unique.len(), seen.len(), "no hit twice");
    assert_eq!(seen.len() as u64, total);

    // The header's association serves for `groupId` too; `association` alone is refused.
    let answer = search(
        &app,
        &nurse,
        json!({ "q": "の", "kind": "COMMENT", "group": yamada.to_string(), "first": 50 }),
    )
    .await;
    assert_eq!(hits(&answer).len() as u64, total.min(50));
    let answer = search(&app, &nurse, json!({ "q": "の", "association": HOST })).await;
    assert_eq!(error_codes(&answer), vec!["INVALID_INPUT"], "{answer}");

    // Naming a group of someone else's finds nothing of it.
    for association in [HOST, OTHER] {
        let answer = search(
            &app,
            &outsider,
            json!({ "q": "の", "group": yamada.to_string(), "association": association }),
        )
        .await;
        assert!(hits(&answer).is_empty(), "{answer}");
    }
}
