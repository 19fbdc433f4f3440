//! The patient register through GraphQL: registration with the form's checks and consent,
//! who sees an entry, corrections that rename the group and never overwrite each other, and the
//! list's folded search, filters, orders and keyset pages.

use chrono::{Datelike, Utc};
use musubi_test_support::demo::{
    ADMIN, CARE_MANAGER, CLINIC_DOCTOR, HOSPITAL_DOCTOR, HOST, NURSE, OTHER, OTHER_ADMIN,
    OTHER_NURSE, PHARMACIST,
};
use musubi_test_support::{error_codes, TestApp};
use serde_json::{json, Value};
use std::collections::HashMap;

const REGISTER: &str = "mutation($i: PatientInput!, $m: [ID!]) { \
    registerPatient(input: $i, members: $m) { patientId groupId } }";

const ENTRY: &str = "query($id: ID!) { patient(id: $id) { id groupId groupName name nameKana \
    birthDate birthDateWareki age sex careLevel status version canEdit inGroup consentDate } }";

const LIST: &str = "query($f: PatientFilterInput, $o: PatientOrder, $a: String, $n: Int) { \
    patients(filter: $f, order: $o, after: $a, first: $n) { \
    items { id name nameKana age status unread } next wholeRegister } }";

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
            HOSPITAL_DOCTOR,
            OTHER_NURSE,
            ADMIN,
            OTHER_ADMIN,
        ] {
            tokens.insert(who, app.demo_token(who).await);
        }
        Self { app, tokens }
    }

    async fn gql(&self, who: &str, query: &str, vars: Value) -> Value {
        self.app
            .gql(query, vars, Some(&self.tokens[who]), Some(HOST))
            .await
    }

    async fn ok(&self, who: &str, query: &str, vars: Value) -> Value {
        let r = self.gql(who, query, vars).await;
        assert!(r["errors"].is_null(), "{who}: {query}: {r}");
        r["data"].clone()
    }

    async fn register(&self, who: &str, input: Value, members: &[&str]) -> Value {
        let mut ids = Vec::new();
        for m in members {
            ids.push(self.app.user_id(m).await.to_string());
        }
        self.gql(who, REGISTER, json!({"i": input, "m": ids})).await
    }

    async fn register_ok(&self, who: &str, input: Value) -> (String, String) {
        let r = self.register(who, input, &[]).await;
        assert!(r["errors"].is_null(), "{r}");
        let p = &r["data"]["registerPatient"];
        (
            p["patientId"].as_str().unwrap().to_owned(),
            p["groupId"].as_str().unwrap().to_owned(),
        )
    }

    /// Registers a patient with consent, `member` invited and accepting; the group's id.
    async fn team(&self, who: &str, mut input: Value, member: &'static str) -> String {
        input["consentDate"] = json!("2026-12-01");
        input["consentBy"] = json!("青木");
        let r = self.register(who, input, &[member]).await;
        assert!(r["errors"].is_null(), "{r}");
        let group = r["data"]["registerPatient"]["groupId"]
            .as_str()
            .unwrap()
            .to_owned();
        let accepted = self
            .app
            .gql(
                "mutation($g: ID!) { answerGroupInvitation(groupId: $g, accept: true) }",
                json!({"g": group}),
                Some(&self.tokens[member]),
                Some(HOST),
            )
            .await;
        assert!(accepted["errors"].is_null(), "{accepted}");
        group
    }

    async fn list(&self, who: &str, filter: Value, order: &str, after: Option<&str>) -> Value {
        self.ok(
            who,
            LIST,
            json!({"f": filter, "o": order, "a": after, "n": 2}),
        )
        .await["patients"]
            .clone()
    }
}

fn patient(name: &str, kana: &str, birth: &str) -> Value {
    json!({"name": name, "nameKana": kana, "birthDate": birth, "sex": "FEMALE"})
}

fn fields(r: &Value) -> Vec<(String, String)> {
    r["errors"][0]["extensions"]["fields"]
        .as_array()
        .unwrap_or_else(|| panic!("no fields: {r}"))
        .iter()
        .map(|f| {
            (
                f["field"].as_str().unwrap().to_owned(),
                f["reason"].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

fn names(page: &Value) -> Vec<String> {
    page["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["name"].as_str().unwrap().to_owned())
        .collect()
}

#[tokio::test]
async fn a_nurse_registers_a_patient_after_a_refusal_that_names_every_field() {
    let w = World::new().await;
    let refused = w
        .register(NURSE, patient("", "山田", "平成31年5月1日"), &[])
        .await;
    assert_eq!(error_codes(&refused), ["INVALID_INPUT"]);
    assert_eq!(
        fields(&refused),
        [
            ("name".to_owned(), "REQUIRED".to_owned()),
            ("nameKana".to_owned(), "NOT_KANA".to_owned()),
            ("birthDate".to_owned(), "OUTSIDE_ERA".to_owned()),
        ]
    );

    let (id, group) = w
        .register_ok(NURSE, patient("山田 花子", "ヤマダ ハナコ", "S20.4.1"))
        .await;
    let e = w.ok(NURSE, ENTRY, json!({"id": id})).await["patient"].clone();
    assert_eq!(e["groupId"], group.as_str());
    assert_eq!(e["groupName"], "山田 花子さん");
    assert_eq!(e["birthDate"], "1945-04-01");
    assert_eq!(e["birthDateWareki"], "昭和20年4月1日");
    let today = Utc::now().with_timezone(&chrono::FixedOffset::east_opt(9 * 3600).unwrap());
    let expected_age = today.year() - 1945 - i32::from((today.month(), today.day()) < (4, 1));
    assert_eq!(e["age"], expected_age);
    assert_eq!(e["status"], "HOME");
    assert_eq!(e["careLevel"], "NONE");
    assert_eq!(
        (e["canEdit"].clone(), e["inGroup"].clone()),
        (json!(true), json!(true))
    );

    // The group is hers, as a patient group, named in the register's format.
    let groups = w
        .ok(
            NURSE,
            "{ myGroups { group { id name kind myRole } } }",
            json!({}),
        )
        .await;
    let mine = groups["myGroups"]
        .as_array()
        .unwrap()
        .iter()
        .find(|g| g["group"]["id"] == group.as_str())
        .expect("the new group is listed")
        .clone();
    assert_eq!(mine["group"]["kind"], "PATIENT");
    assert_eq!(mine["group"]["myRole"], "OWNER");

    // A correction renames the group; one made from a stale version is refused, not merged.
    let v = e["version"].as_i64().unwrap();
    let update = "mutation($id: ID!, $v: Int!, $i: PatientInput!) { \
        updatePatient(id: $id, version: $v, input: $i) { name groupName version status } }";
    let mut input = patient("山田 花江", "ヤマダ ハナエ", "1945-04-01");
    input["status"] = json!("HOSPITAL");
    let u = w
        .ok(NURSE, update, json!({"id": id, "v": v, "i": input}))
        .await;
    assert_eq!(u["updatePatient"]["groupName"], "山田 花江さん");
    assert_eq!(u["updatePatient"]["status"], "HOSPITAL");
    let stale = w
        .gql(
            NURSE,
            update,
            json!({"id": id, "v": v, "i": patient("山田 花子", "やまだ はなこ", "1945-04-01")}),
        )
        .await;
    assert_eq!(error_codes(&stale), ["CONFLICT"]);
    let e = w.ok(NURSE, ENTRY, json!({"id": id})).await["patient"].clone();
    assert_eq!(e["name"], "山田 花江");

    // Every view and change is on record.
    let mut tx = w.app.tenant_tx(HOST).await;
    let actions: Vec<String> =
        sqlx::query_scalar("SELECT action FROM audit_log WHERE object_id = $1 ORDER BY seq")
            .bind(&id)
            .fetch_all(&mut *tx)
            .await
            .unwrap();
    assert_eq!(
        actions,
        [
            "patient.create",
            "patient.read",
            "patient.update",
            "patient.read",
            "patient.read"
        ]
    );
}

#[tokio::test]
async fn someone_from_another_facility_joins_only_with_the_patients_consent() {
    let w = World::new().await;
    // The hospital doctor works elsewhere: without consent on the form, nothing is created.
    let before: i64 = {
        let mut tx = w.app.tenant_tx(HOST).await;
        sqlx::query_scalar("SELECT count(*) FROM patients")
            .fetch_one(&mut *tx)
            .await
            .unwrap()
    };
    let r = w
        .register(
            NURSE,
            patient("鈴木 一郎", "すずき いちろう", "S15.1.1"),
            &[HOSPITAL_DOCTOR],
        )
        .await;
    assert_eq!(
        fields(&r),
        [("consentDate".to_owned(), "CONSENT_REQUIRED".to_owned())]
    );
    let after: i64 = {
        let mut tx = w.app.tenant_tx(HOST).await;
        sqlx::query_scalar("SELECT count(*) FROM patients")
            .fetch_one(&mut *tx)
            .await
            .unwrap()
    };
    assert_eq!(
        before, after,
        "a refused registration leaves nothing behind"
    );

    // Half a consent (a date without who obtained it) is named too.
    let mut input = patient("鈴木 一郎", "すずき いちろう", "S15.1.1");
    input["consentDate"] = json!("令和8年12月1日");
    let r = w.register(NURSE, input.clone(), &[HOSPITAL_DOCTOR]).await;
    assert_eq!(
        fields(&r),
        [("consentBy".to_owned(), "CONSENT_INCOMPLETE".to_owned())]
    );

    input["consentBy"] = json!("青木（訪問看護）");
    input["consentScope"] = json!("病院・診療所・訪問看護・薬局");
    let r = w.register(NURSE, input, &[HOSPITAL_DOCTOR]).await;
    assert!(r["errors"].is_null(), "{r}");
    let group = r["data"]["registerPatient"]["groupId"].as_str().unwrap();

    // He finds the invitation on his home page; someone outside her directory cannot be added.
    let home = w
        .app
        .gql(
            "{ home { invitations } myGroups { group { id myStatus } } }",
            json!({}),
            Some(&w.tokens[HOSPITAL_DOCTOR]),
            None,
        )
        .await;
    assert!(
        home["data"]["home"]["invitations"].as_i64().unwrap() >= 1,
        "{home}"
    );
    assert!(
        home["data"]["myGroups"]
            .as_array()
            .unwrap()
            .iter()
            .any(|g| g["group"]["id"] == group && g["group"]["myStatus"] == "INVITED"),
        "{home}"
    );
    // Someone outside her directory (さくら台 only, once the associations no longer share
    // their directories) cannot be put on the form.
    w.app
        .operator()
        .set_neighbours(HOST, OTHER, false)
        .await
        .unwrap();
    let mut input = patient("佐々木 三郎", "ささき さぶろう", "S10.3.3");
    input["consentDate"] = json!("2026-12-01");
    input["consentBy"] = json!("青木");
    let r = w.register(NURSE, input, &[OTHER_NURSE]).await;
    assert_eq!(error_codes(&r), ["INVALID_INPUT"]);
    assert_eq!(r["errors"][0]["extensions"]["field"], "members");
}

#[tokio::test]
async fn an_entry_is_seen_by_its_group_and_the_hosts_administrators_only() {
    let w = World::new().await;
    let (id, group) = w
        .register_ok(
            CARE_MANAGER,
            patient("伊藤 正男", "イトウ マサオ", "1946-05-05"),
        )
        .await;

    // The host's administrator sees the register entry, not the conversation.
    let e = w.ok(ADMIN, ENTRY, json!({"id": id})).await["patient"].clone();
    assert_eq!(
        (e["canEdit"].clone(), e["inGroup"].clone()),
        (json!(false), json!(false))
    );
    let page = w.list(ADMIN, json!({"text": "いとう"}), "KANA", None).await;
    assert_eq!(names(&page), ["伊藤 正男"]);
    assert_eq!(page["wholeRegister"], true);
    let g = w
        .gql(
            ADMIN,
            "query($id: ID!) { group(id: $id) { group { id } } }",
            json!({"id": group}),
        )
        .await;
    assert_eq!(error_codes(&g), ["NOT_FOUND"]);
    let update = "mutation($id: ID!, $i: PatientInput!) { \
        updatePatient(id: $id, version: 1, input: $i) { name } }";
    let u = w
        .gql(
            ADMIN,
            update,
            json!({"id": id, "i": patient("改ざん", "かいざん", "1946-05-05")}),
        )
        .await;
    assert_eq!(error_codes(&u), ["NOT_FOUND"]);

    // Colleagues outside the group, another association's administrator and nurse: nothing,
    // exactly as for an id that does not exist.
    let missing = uuid::Uuid::now_v7().to_string();
    for who in [PHARMACIST, OTHER_ADMIN, OTHER_NURSE, HOSPITAL_DOCTOR] {
        let r = w.gql(who, ENTRY, json!({"id": id})).await;
        assert_eq!(error_codes(&r), ["NOT_FOUND"], "{who}: {r}");
        let none = w.gql(who, ENTRY, json!({"id": missing})).await;
        assert_eq!(
            r["errors"][0]["message"], none["errors"][0]["message"],
            "{who}"
        );
        let page = w.list(who, json!({"text": "いとう"}), "KANA", None).await;
        assert_eq!(names(&page), Vec::<String>::new(), "{who}");
        assert_eq!(page["wholeRegister"], false, "{who}");
    }
    // Not an id at all: the same answer.
    let r = w.gql(PHARMACIST, ENTRY, json!({"id": "not-an-id"})).await;
    assert_eq!(error_codes(&r), ["NOT_FOUND"]);
}

#[tokio::test]
async fn the_list_folds_kana_and_width_filters_and_pages_without_gaps() {
    let w = World::new().await;
    for (name, kana, birth) in [
        ("山根 太郎", "ヤマネ タロウ", "S5.1.1"),
        ("山根 花子", "やまね はなこ", "S20.4.1"),
        ("田中 一", "タナカ ハジメ", "H2.2.2"),
        ("髙橋 梅", "たかはし うめ", "T14.5.5"),
        ("渡辺 ゆき", "わたなべ ゆき", "S30.6.6"),
    ] {
        w.register_ok(CLINIC_DOCTOR, patient(name, kana, birth))
            .await;
    }
    for q in ["やまね", "ヤマネ", "ﾔﾏﾈ", "山根", "やま ね"] {
        let page = w
            .list(CLINIC_DOCTOR, json!({"text": q}), "KANA", None)
            .await;
        assert_eq!(names(&page), ["山根 太郎", "山根 花子"], "{q}");
    }
    // A LIKE wildcard is a character like any other.
    let page = w
        .list(CLINIC_DOCTOR, json!({"text": "%"}), "KANA", None)
        .await;
    assert_eq!(names(&page), Vec::<String>::new());

    // Every page of two, in kana order, joined: each patient once, in order.
    let mut seen = Vec::new();
    let mut after: Option<String> = None;
    loop {
        let page = w
            .list(CLINIC_DOCTOR, json!({}), "KANA", after.as_deref())
            .await;
        seen.extend(names(&page));
        match page["next"].as_str() {
            Some(n) => after = Some(n.to_owned()),
            None => break,
        }
    }
    let mine: Vec<&str> = seen.iter().map(String::as_str).collect();
    let expected = ["髙橋 梅", "田中 一", "山根 太郎", "山根 花子", "渡辺 ゆき"];
    let ordered: Vec<&str> = mine
        .iter()
        .copied()
        .filter(|n| expected.contains(n))
        .collect();
    assert_eq!(ordered, expected);

    // Oldest first; an age range.
    let mut oldest = Vec::new();
    let mut after: Option<String> = None;
    loop {
        let page = w
            .list(CLINIC_DOCTOR, json!({}), "AGE", after.as_deref())
            .await;
        oldest.extend(names(&page));
        match page["next"].as_str() {
            Some(n) => after = Some(n.to_owned()),
            None => break,
        }
    }
    let ordered: Vec<&str> = oldest
        .iter()
        .map(String::as_str)
        .filter(|n| expected.contains(n))
        .collect();
    assert_eq!(
        ordered,
        ["髙橋 梅", "山根 太郎", "山根 花子", "渡辺 ゆき", "田中 一"]
    );
    let page = w
        .ok(
            CLINIC_DOCTOR,
            LIST,
            json!({"f": {"ageMin": 60, "ageMax": 90}, "o": "KANA", "n": 50}),
        )
        .await;
    let in_range = names(&page["patients"]);
    assert!(in_range.contains(&"山根 花子".to_owned()), "{in_range:?}");
    assert!(in_range.contains(&"渡辺 ゆき".to_owned()), "{in_range:?}");
    assert!(!in_range.contains(&"髙橋 梅".to_owned()), "{in_range:?}");
    assert!(!in_range.contains(&"田中 一".to_owned()), "{in_range:?}");

    // A cursor that is not one is bad input, named.
    let r = w
        .gql(CLINIC_DOCTOR, LIST, json!({"a": "garbage", "n": 2}))
        .await;
    assert_eq!(error_codes(&r), ["INVALID_INPUT"]);
    assert_eq!(r["errors"][0]["extensions"]["field"], "after");
    let r = w
        .gql(
            CLINIC_DOCTOR,
            LIST,
            json!({"f": {"ageMin": 90, "ageMax": 60}}),
        )
        .await;
    assert_eq!(error_codes(&r), ["INVALID_INPUT"], "{r}");
}

#[tokio::test]
async fn many_registrations_at_once_from_one_person_each_land_exactly_once() {
    let w = World::new().await;
    let calls = (0..8).map(|i| {
        let w = &w;
        async move {
            w.register(
                NURSE,
                patient(&format!("同時 {i}"), "どうじ", "1950-01-01"),
                &[],
            )
            .await
        }
    });
    let answers = futures_util::future::join_all(calls).await;
    let mut groups = std::collections::HashSet::new();
    for r in &answers {
        assert!(r["errors"].is_null(), "{r}");
        groups.insert(
            r["data"]["registerPatient"]["groupId"]
                .as_str()
                .unwrap()
                .to_owned(),
        );
    }
    assert_eq!(groups.len(), 8);
    let mut tx = w.app.tenant_tx(HOST).await;
    let (entries, named): (i64, i64) = sqlx::query_as(
        "SELECT count(*), count(*) FILTER (WHERE g.name = p.name || 'さん') \
         FROM patients p JOIN groups g ON g.id = p.group_id WHERE p.name LIKE '同時 %'",
    )
    .fetch_one(&mut *tx)
    .await
    .unwrap();
    assert_eq!((entries, named), (8, 8));
}

#[tokio::test]
async fn a_group_made_before_the_register_gets_its_entry_once_from_its_owner() {
    let w = World::new().await;
    let groups = w
        .ok(
            CLINIC_DOCTOR,
            "{ myGroups { group { id name kind } } }",
            json!({}),
        )
        .await;
    let find = |prefix: &str| {
        groups["myGroups"]
            .as_array()
            .unwrap()
            .iter()
            .find(|g| g["group"]["name"].as_str().unwrap().starts_with(prefix))
            .map(|g| g["group"]["id"].as_str().unwrap().to_owned())
            .unwrap_or_else(|| panic!("no group {prefix}: {groups}"))
    };
    // The demo's scripted patient groups were given their entries by their owners; the names
    // they were made with stay until the entry is corrected.
    let yamada = find("山田 太郎さん（");
    let attach =
        "mutation($g: ID!, $i: PatientInput!) { attachPatient(groupId: $g, input: $i) { id } }";
    let input = patient("山田 太郎", "やまだ たろう", "昭和16年3月12日");
    let again = w
        .gql(
            CLINIC_DOCTOR,
            attach,
            json!({"g": yamada, "i": input.clone()}),
        )
        .await;
    assert_eq!(error_codes(&again), ["CONFLICT"]);
    let by_member = w
        .gql(NURSE, attach, json!({"g": yamada, "i": input.clone()}))
        .await;
    assert_eq!(error_codes(&by_member), ["NOT_FOUND"]);
    let page = w
        .ok(
            CLINIC_DOCTOR,
            LIST,
            json!({"f": {"text": "やまだたろう"}, "n": 5}),
        )
        .await;
    assert_eq!(names(&page["patients"]), ["山田 太郎"]);
    assert!(page["patients"]["items"][0]["age"].as_i64().unwrap() >= 85);

    // A general group is not a patient's.
    let doctors = find("みなと川 連携医グループ");
    let r = w
        .gql(CLINIC_DOCTOR, attach, json!({"g": doctors, "i": input}))
        .await;
    assert_eq!(error_codes(&r), ["INVALID_INPUT"]);
    assert_eq!(r["errors"][0]["extensions"]["field"], "groupId");
}

#[tokio::test]
async fn inviting_later_needs_the_consent_too_unless_from_the_registrants_facility() {
    let w = World::new().await;
    // The care manager registers without consent; her group is hers alone.
    let (_, group) = w
        .register_ok(
            CARE_MANAGER,
            patient("井上 トミ", "いのうえ とみ", "大正15年1月5日"),
        )
        .await;
    let invite = "mutation($g: ID!, $u: ID!) { inviteToGroup(groupId: $g, userId: $u) }";
    let nurse = w.app.user_id(NURSE).await.to_string();
    let r = w
        .gql(CARE_MANAGER, invite, json!({"g": group, "u": nurse}))
        .await;
    assert_eq!(
        fields(&r),
        [("consentDate".to_owned(), "CONSENT_REQUIRED".to_owned())]
    );
    let by_mail = "mutation($g: ID!, $e: String!) { inviteToGroupByEmail(groupId: $g, email: $e) }";
    let r = w
        .gql(
            CARE_MANAGER,
            by_mail,
            json!({"g": group, "e": "someone@example.com"}),
        )
        .await;
    assert_eq!(
        fields(&r),
        [("consentDate".to_owned(), "CONSENT_REQUIRED".to_owned())]
    );

    // Once the consent is in the register, the invitation goes out.
    let e = w.ok(CARE_MANAGER, ENTRY, json!({"id": w.ok(CARE_MANAGER, LIST, json!({"f": {"text": "いのうえ"}})).await["patients"]["items"][0]["id"]})).await["patient"].clone();
    let mut input = patient("井上 トミ", "いのうえ とみ", "大正15年1月5日");
    input["consentDate"] = json!("2026-12-01");
    input["consentBy"] = json!("森田 由美");
    let update = "mutation($id: ID!, $v: Int!, $i: PatientInput!) { \
        updatePatient(id: $id, version: $v, input: $i) { consentDate } }";
    w.ok(
        CARE_MANAGER,
        update,
        json!({"id": e["id"], "v": e["version"], "i": input}),
    )
    .await;
    let r = w
        .gql(CARE_MANAGER, invite, json!({"g": group, "u": nurse}))
        .await;
    assert!(r["errors"].is_null(), "{r}");
}

const EXPORT: &str = "{ patientsCsv }";
const IMPORT: &str =
    "mutation($c: String!, $d: Boolean) { importPatientsCsv(csv: $c, dryRun: $d) { \
    dryRun accepted rejected { line columns reasons } } }";

/// The rows of an exported file, without the 主治医 column (a person, not carried by a file).
fn csv_rows(csv: &str) -> Vec<Vec<String>> {
    let mut rows = musubi_domain::patient_csv::parse_csv(csv).expect("the export parses");
    for r in &mut rows {
        r.remove(8);
    }
    rows
}

#[tokio::test]
async fn the_register_exports_for_excel_and_imports_back_into_an_empty_association() {
    let w = World::new().await;
    let mut input = patient("中島 ミツ", "ナカジマ ミツ", "昭和7年2月29日");
    input["notes"] = json!("=SUM(A1) は式ではありません。\n二行目, \"引用\"");
    input["careLevel"] = json!("CARE_3");
    input["status"] = json!("ENDED");
    input["endReason"] = json!("MOVED");
    input["postalCode"] = json!("1234567");
    input["consentDate"] = json!("R8.11.30");
    input["consentBy"] = json!("青木");
    w.register_ok(NURSE, input).await;
    w.register_ok(NURSE, patient("大野 清", "おおの きよし", "1940-10-10"))
        .await;

    let csv = w.ok(NURSE, EXPORT, json!({})).await["patientsCsv"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(
        csv.starts_with('\u{feff}'),
        "Excel needs the byte order mark"
    );
    assert!(
        csv.starts_with("\u{feff}氏名,ふりがな,生年月日,性別,"),
        "{csv}"
    );
    assert!(csv.contains("\r\n"));
    // A formula is never a formula in Excel.
    assert!(csv.contains("\"'=SUM(A1) は式ではありません。"), "{csv}");
    assert!(csv.contains("要介護3") && csv.contains("終了") && csv.contains("転居"));
    let exported = csv_rows(&csv);
    // The scripted patients she cares for and her two.
    assert!(exported.len() >= 3, "{exported:?}");

    // A new association, empty, where she is a member.
    let tenant = w
        .app
        .operator()
        .create_association(&musubi_test_support::builders::association(
            "kitahama",
            "北浜医師会",
        ))
        .await
        .unwrap();
    let nurse = w.app.user_id(NURSE).await;
    let mut tx = w.app.operator().db().core_tx().await.unwrap();
    musubi_db::accounts::insert_membership(
        &mut tx,
        nurse,
        tenant.id,
        musubi_domain::types::AssociationRole::Member,
        None,
    )
    .await
    .unwrap();
    tx.commit().await.unwrap();
    let there = |query: &'static str, vars: Value| {
        let w = &w;
        async move {
            w.app
                .gql(query, vars, Some(&w.tokens[NURSE]), Some("kitahama"))
                .await
        }
    };

    // A dry run first: everything would go in, nothing does.
    let dry = there(IMPORT, json!({"c": csv})).await;
    assert!(dry["errors"].is_null(), "{dry}");
    let r = &dry["data"]["importPatientsCsv"];
    assert_eq!(r["dryRun"], true);
    assert_eq!(r["accepted"], exported.len() - 1);
    assert_eq!(r["rejected"], json!([]));
    let empty = there(EXPORT, json!({})).await;
    assert_eq!(
        csv_rows(empty["data"]["patientsCsv"].as_str().unwrap()).len(),
        1
    );

    let done = there(IMPORT, json!({"c": csv, "d": false})).await;
    assert_eq!(
        done["data"]["importPatientsCsv"]["accepted"],
        exported.len() - 1
    );
    let again = there(EXPORT, json!({})).await;
    assert_eq!(
        csv_rows(again["data"]["patientsCsv"].as_str().unwrap()),
        exported,
        "the same register"
    );

    // Importing the same file again doubles nothing.
    let twice = there(IMPORT, json!({"c": csv, "d": false})).await;
    let r = &twice["data"]["importPatientsCsv"];
    assert_eq!(r["accepted"], 0);
    assert_eq!(
        r["rejected"].as_array().unwrap().len(),
        exported.len() - 1,
        "{r}"
    );
    assert!(r["rejected"]
        .as_array()
        .unwrap()
        .iter()
        .all(|x| x["reasons"] == json!(["DUPLICATE"])));
}

#[tokio::test]
async fn an_import_reports_every_rejected_row_and_imports_nothing_silently_wrong() {
    let w = World::new().await;
    let header = musubi_domain::patient_csv::COLUMNS.join(",");
    let row = |name: &str, kana: &str, birth: &str, sex: &str| {
        let mut f = vec![""; 23];
        f[0] = name;
        f[1] = kana;
        f[2] = birth;
        f[3] = sex;
        f.join(",")
    };
    let csv = [
        header.clone(),
        row("松本 茂", "まつもと しげる", "S10.1.1", "男性"),
        row("松本 茂", "まつもと しげる", "S10.1.1", "男性"),
        row("森 ハル", "もり はる", "平成31年5月1日", "女性"),
        row("池田 勇", "いけだ いさむ", "1930-01-01", "男"),
        "only,three,fields".to_owned(),
        row("", "山田", "", "女性"),
    ]
    .join("\r\n");
    let r = w.ok(NURSE, IMPORT, json!({"c": csv, "d": false})).await["importPatientsCsv"].clone();
    assert_eq!(r["accepted"], 1);
    assert_eq!(
        r["rejected"],
        json!([
            {"line": 3, "columns": ["氏名"], "reasons": ["DUPLICATE"]},
            {"line": 4, "columns": ["生年月日"], "reasons": ["OUTSIDE_ERA"]},
            {"line": 5, "columns": ["性別"], "reasons": ["UNKNOWN_CHOICE"]},
            {"line": 6, "columns": [""], "reasons": ["FIELD_COUNT"]},
            {"line": 7, "columns": ["氏名", "ふりがな", "生年月日"], "reasons": ["REQUIRED", "NOT_KANA", "REQUIRED"]},
        ])
    );
    let page = w
        .ok(NURSE, LIST, json!({"f": {"text": "まつもと"}, "n": 10}))
        .await;
    assert_eq!(names(&page["patients"]), ["松本 茂"]);

    // A header that is not the register's is refused as a whole.
    let bad = w
        .gql(
            NURSE,
            IMPORT,
            json!({"c": "名前,生年月日\r\n山田,S1.1.1", "d": false}),
        )
        .await;
    assert_eq!(error_codes(&bad), ["INVALID_INPUT"]);
    assert_eq!(
        bad["errors"][0]["extensions"]["reasons"],
        json!(["BAD_HEADER"])
    );
}

#[tokio::test]
async fn ending_care_keeps_the_group_read_only_until_reopened() {
    let w = World::new().await;
    let (id, group) = w
        .register_ok(NURSE, patient("安田 清", "やすだ きよし", "S3.3.3"))
        .await;
    let topic = w
        .ok(
            NURSE,
            "mutation($g: ID!) { createTopic(groupId: $g, title: \"訪問記録\", body: \"本日訪問。\") }",
            json!({"g": group}),
        )
        .await["createTopic"]
        .as_str()
        .unwrap()
        .to_owned();
    let set_status = |status: &'static str, version: i64| {
        let mut input = patient("安田 清", "やすだ きよし", "S3.3.3");
        input["status"] = json!(status);
        if status == "ENDED" {
            input["endReason"] = json!("DEATH");
            input["statusSince"] = json!("2026-12-01");
        }
        json!({"id": id, "v": version, "i": input})
    };
    let update = "mutation($id: ID!, $v: Int!, $i: PatientInput!) { \
        updatePatient(id: $id, version: $v, input: $i) { version status } }";
    let v = w.ok(NURSE, update, set_status("ENDED", 1)).await["updatePatient"]["version"]
        .as_i64()
        .unwrap();

    let post = "mutation($t: ID!) { postComment(topicId: $t, body: \"追記\") }";
    let r = w.gql(NURSE, post, json!({"t": topic})).await;
    assert_eq!(error_codes(&r), ["GROUP_ARCHIVED"]);
    let r = w
        .gql(
            NURSE,
            "mutation($g: ID!) { createTopic(groupId: $g, title: \"新\", body: \"新\") }",
            json!({"g": group}),
        )
        .await;
    assert_eq!(error_codes(&r), ["GROUP_ARCHIVED"]);
    let invite = "mutation($g: ID!, $u: ID!) { inviteToGroup(groupId: $g, userId: $u) }";
    let colleague = w.app.user_id(CARE_MANAGER).await.to_string();
    let r = w
        .gql(NURSE, invite, json!({"g": group, "u": colleague}))
        .await;
    assert_eq!(error_codes(&r), ["GROUP_ARCHIVED"]);
    // Still there to read, marked as ended.
    let g = w
        .ok(
            NURSE,
            "query($id: ID!) { group(id: $id) { group { archivedAt } topics { id } } }",
            json!({"id": group}),
        )
        .await;
    assert!(g["group"]["group"]["archivedAt"].is_string(), "{g}");
    assert_eq!(g["group"]["topics"].as_array().unwrap().len(), 1);

    // Back home: writable again.
    w.ok(NURSE, update, set_status("HOME", v)).await;
    let r = w.gql(NURSE, post, json!({"t": topic})).await;
    assert!(r["errors"].is_null(), "{r}");
}

#[tokio::test]
async fn a_groups_record_exports_what_the_member_may_see_with_readers() {
    let w = World::new().await;
    let group = w
        .team(
            NURSE,
            patient("岡田 ハル", "おかだ はる", "T13.4.4"),
            HOSPITAL_DOCTOR,
        )
        .await;
    let create = "mutation($g: ID!, $t: String!, $s: [ProfessionClass!]) { \
        createTopic(groupId: $g, title: $t, body: \"本文\", scope: $s) }";
    let everyone = w
        .ok(NURSE, create, json!({"g": group, "t": "全員へ", "s": []}))
        .await["createTopic"]
        .as_str()
        .unwrap()
        .to_owned();
    w.ok(
        NURSE,
        create,
        json!({"g": group, "t": "看護・介護のみ", "s": ["CO_MEDICAL"]}),
    )
    .await;
    // The doctor reads the topic for everyone.
    w.gql(
        HOSPITAL_DOCTOR,
        "query($id: ID!) { topic(id: $id, markRead: true) { topic { id } } }",
        json!({"id": everyone}),
    )
    .await;

    let record = "query($g: ID!) { patientRecord(groupId: $g) }";
    let mine = w.ok(NURSE, record, json!({"g": group})).await["patientRecord"].clone();
    assert_eq!(mine["format"], "musubi.patient-record.v1");
    assert_eq!(mine["patient"]["birthDateWareki"], "大正13年4月4日");
    let titles = |r: &Value| -> Vec<String> {
        let mut t: Vec<String> = r["topics"]
            .as_array()
            .unwrap()
            .iter()
            .map(|t| t["title"].as_str().unwrap().to_owned())
            .collect();
        t.sort();
        t
    };
    assert_eq!(titles(&mine), ["全員へ", "看護・介護のみ"]);
    let first = mine["topics"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["title"] == "全員へ")
        .unwrap()
        .clone();
    let readers: Vec<&str> = first["comments"][0]["readBy"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["name"].as_str().unwrap())
        .collect();
    assert!(readers.contains(&"佐藤 隆"), "{first}");

    // The hospital doctor's record leaves out what his scope does not show him.
    let his = w.ok(HOSPITAL_DOCTOR, record, json!({"g": group})).await["patientRecord"].clone();
    assert_eq!(titles(&his), ["全員へ"]);
    // Outside the group: nothing.
    let r = w.gql(PHARMACIST, record, json!({"g": group})).await;
    assert_eq!(error_codes(&r), ["NOT_FOUND"]);
    let r = w.gql(ADMIN, record, json!({"g": group})).await;
    assert_eq!(error_codes(&r), ["NOT_FOUND"]);
}

#[tokio::test]
async fn a_membership_with_an_end_ends_by_itself_and_on_record() {
    let w = World::new().await;
    let group = w
        .team(
            NURSE,
            patient("北川 千代", "きたがわ ちよ", "S2.2.2"),
            PHARMACIST,
        )
        .await;
    let pharmacist = w.app.user_id(PHARMACIST).await;
    let nurse = w.app.user_id(NURSE).await;
    let set = "mutation($g: ID!, $u: ID!, $t: DateTime) { setGroupMemberUntil(groupId: $g, userId: $u, until: $t) }";

    // Not in the past; not the only owner; not by a member who is no owner.
    let r = w
        .gql(
            NURSE,
            set,
            json!({"g": group, "u": pharmacist.to_string(), "t": "2020-01-01T00:00:00Z"}),
        )
        .await;
    assert_eq!(error_codes(&r), ["INVALID_INPUT"]);
    let r = w
        .gql(
            NURSE,
            set,
            json!({"g": group, "u": nurse.to_string(), "t": "2099-01-01T00:00:00Z"}),
        )
        .await;
    assert_eq!(error_codes(&r), ["LAST_OWNER"]);
    let r = w
        .gql(
            PHARMACIST,
            set,
            json!({"g": group, "u": nurse.to_string(), "t": "2099-01-01T00:00:00Z"}),
        )
        .await;
    assert_eq!(error_codes(&r), ["NOT_FOUND"]);

    let later = (Utc::now() + chrono::Duration::days(14)).to_rfc3339();
    w.ok(
        NURSE,
        set,
        json!({"g": group, "u": pharmacist.to_string(), "t": later}),
    )
    .await;
    let members = w
        .ok(
            NURSE,
            "query($id: ID!) { group(id: $id) { members { userId until } } }",
            json!({"id": group}),
        )
        .await;
    let until = members["group"]["members"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["userId"] == pharmacist.to_string().as_str())
        .map(|m| m["until"].clone())
        .unwrap();
    assert!(until.is_string(), "{members}");

    // Before its end, nothing happens; once it has come, the sweep ends it.
    assert_eq!(
        w.app.services().end_expired_memberships(500).await.unwrap(),
        0
    );
    let mut tx = w.app.operator().db().core_tx().await.unwrap();
    sqlx::query("UPDATE core.group_members SET until = now() - interval '1 second' WHERE user_id = $1 AND group_id = $2")
        .bind(pharmacist)
        .bind(uuid::Uuid::parse_str(&group).unwrap())
        .execute(&mut *tx)
        .await
        .unwrap();
    tx.commit().await.unwrap();
    assert_eq!(
        w.app.services().end_expired_memberships(500).await.unwrap(),
        1
    );
    assert_eq!(
        w.app.services().end_expired_memberships(500).await.unwrap(),
        0
    );
    let r = w
        .gql(
            PHARMACIST,
            "query($id: ID!) { group(id: $id) { group { id } } }",
            json!({"id": group}),
        )
        .await;
    assert_eq!(error_codes(&r), ["NOT_FOUND"]);
    let mut tx = w.app.tenant_tx(HOST).await;
    let (actor, reason): (Option<uuid::Uuid>, Option<String>) = sqlx::query_as(
        "SELECT actor_id, detail->>'reason' FROM audit_log \
         WHERE action = 'group.member_remove' AND object_id = $1 ORDER BY seq DESC LIMIT 1",
    )
    .bind(&group)
    .fetch_one(&mut *tx)
    .await
    .unwrap();
    assert_eq!((actor, reason.as_deref()), (None, Some("expired")));
}

#[tokio::test]
async fn an_administrator_takes_a_departing_member_out_of_every_group_after_a_preview() {
    let w = World::new().await;
    let (_, hers) = w
        .register_ok(NURSE, patient("退職 テスト", "たいしょく てすと", "S5.5.5"))
        .await;
    let nurse = w.app.user_id(NURSE).await.to_string();
    let preview =
        "query($u: ID!) { departurePreview(userId: $u) { groupId name kind role onlyOwner } }";
    for who in [CARE_MANAGER, OTHER_ADMIN] {
        let r = w.gql(who, preview, json!({"u": nurse})).await;
        assert_eq!(error_codes(&r), ["NOT_FOUND"], "{who}");
    }
    let groups = w.ok(ADMIN, preview, json!({"u": nurse})).await["departurePreview"].clone();
    let groups = groups.as_array().unwrap().clone();
    assert!(groups.len() >= 4, "{groups:?}");
    let own = groups
        .iter()
        .find(|g| g["groupId"] == hers.as_str())
        .expect("her own patient group is listed");
    assert_eq!(
        (own["role"].clone(), own["onlyOwner"].clone()),
        (json!("OWNER"), json!(true))
    );
    // Patient groups first.
    let kinds: Vec<&str> = groups.iter().map(|g| g["kind"].as_str().unwrap()).collect();
    let first_general = kinds
        .iter()
        .position(|k| *k == "GENERAL")
        .unwrap_or(kinds.len());
    assert!(
        kinds[first_general..].iter().all(|k| *k == "GENERAL"),
        "{kinds:?}"
    );

    // A preview changes nothing.
    let mine = "{ myGroups { group { id associationSlug } } }";
    let before = w.ok(NURSE, mine, json!({})).await["myGroups"]
        .as_array()
        .unwrap()
        .len();
    assert!(before >= groups.len());

    let removed = w
        .ok(
            ADMIN,
            "mutation($u: ID!) { removeFromAllGroups(userId: $u) }",
            json!({"u": nurse}),
        )
        .await;
    assert_eq!(removed["removeFromAllGroups"], groups.len());
    let after = w.ok(NURSE, mine, json!({})).await;
    assert!(
        after["myGroups"]
            .as_array()
            .unwrap()
            .iter()
            .all(|g| g["group"]["associationSlug"] != HOST),
        "{after}"
    );
    // Her group was handed to the administrator, not left without an owner.
    let g = w
        .ok(
            ADMIN,
            "query($id: ID!) { group(id: $id) { myRole members { userId role } } }",
            json!({"id": hers}),
        )
        .await;
    assert_eq!(g["group"]["myRole"], "OWNER");
    let mut tx = w.app.tenant_tx(HOST).await;
    let departures: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM audit_log WHERE action = 'group.member_remove' \
         AND detail->>'reason' = 'departure' AND detail->>'user_id' = $1",
    )
    .bind(&nurse)
    .fetch_one(&mut *tx)
    .await
    .unwrap();
    assert_eq!(departures, i64::try_from(groups.len()).unwrap());
    // Nothing left to remove.
    let again = w.ok(ADMIN, preview, json!({"u": nurse})).await;
    assert_eq!(again["departurePreview"], json!([]));
}

#[tokio::test]
async fn a_stations_whole_team_is_invited_in_one_step_with_consent_only() {
    let w = World::new().await;
    let facility = |name: &'static str| {
        let w = &w;
        async move {
            let id: uuid::Uuid =
                sqlx::query_scalar("SELECT id FROM core.facilities WHERE name = $1")
                    .bind(name)
                    .fetch_one(w.app.operator().db().pool())
                    .await
                    .unwrap();
            id.to_string()
        }
    };
    let station = facility("訪問看護ステーションみなと").await;
    let elsewhere = facility("さくら台訪問看護ステーション").await;
    let invite =
        "mutation($g: ID!, $f: ID!) { inviteFacilityToGroup(groupId: $g, facilityId: $f) }";

    // Without the patient's consent, nobody from the station.
    let (_, bare) = w
        .register_ok(CARE_MANAGER, patient("林田 梅", "はやしだ うめ", "T15.6.6"))
        .await;
    let r = w
        .gql(CARE_MANAGER, invite, json!({"g": bare, "f": station}))
        .await;
    assert_eq!(
        fields(&r),
        [("consentDate".to_owned(), "CONSENT_REQUIRED".to_owned())]
    );

    let mut input = patient("林田 松", "はやしだ まつ", "T14.4.4");
    input["consentDate"] = json!("2026-12-01");
    input["consentBy"] = json!("森田 由美");
    let (_, group) = w.register_ok(CARE_MANAGER, input).await;
    let n = w
        .ok(CARE_MANAGER, invite, json!({"g": group, "f": station}))
        .await;
    // 青木 and 石井 work there.
    assert_eq!(n["inviteFacilityToGroup"], 2);
    let again = w
        .ok(CARE_MANAGER, invite, json!({"g": group, "f": station}))
        .await;
    assert_eq!(again["inviteFacilityToGroup"], 0);
    let home = w
        .app
        .gql(
            "{ home { invitations } }",
            json!({}),
            Some(&w.tokens[NURSE]),
            None,
        )
        .await;
    assert!(
        home["data"]["home"]["invitations"].as_i64().unwrap() >= 1,
        "{home}"
    );

    // Another association's station (without an agreement to share directories), or a
    // member who is no owner: nothing.
    w.app
        .operator()
        .set_neighbours(HOST, OTHER, false)
        .await
        .unwrap();
    let r = w
        .gql(CARE_MANAGER, invite, json!({"g": group, "f": elsewhere}))
        .await;
    assert_eq!(error_codes(&r), ["NOT_FOUND"]);
    let r = w
        .gql(PHARMACIST, invite, json!({"g": group, "f": station}))
        .await;
    assert_eq!(error_codes(&r), ["NOT_FOUND"]);
}

/// Loads `n` register entries (with their groups and search entries) into `HOST`, names drawn
/// from common family and given names, plus one rare name; returns the number of heap pages
/// the register takes.
async fn load_register(app: &TestApp, n: usize, physician: uuid::Uuid) -> i64 {
    use musubi_db::types::japanese::{fold, grams};
    // Fifty family names and thirty given names: the commonest family name is then about one
    // entry in fifty, near what a Japanese town's register shows (佐藤 is about 1.5 %).
    const FAMILY: [(&str, &str); 50] = [
        ("佐藤", "さとう"),
        ("鈴木", "すずき"),
        ("高橋", "たかはし"),
        ("田中", "たなか"),
        ("伊藤", "いとう"),
        ("渡辺", "わたなべ"),
        ("山本", "やまもと"),
        ("中村", "なかむら"),
        ("小林", "こばやし"),
        ("加藤", "かとう"),
        ("吉田", "よしだ"),
        ("山田", "やまだ"),
        ("佐々木", "ささき"),
        ("山口", "やまぐち"),
        ("松本", "まつもと"),
        ("井上", "いのうえ"),
        ("木村", "きむら"),
        ("林", "はやし"),
        ("斎藤", "さいとう"),
        ("清水", "しみず"),
        ("山崎", "やまざき"),
        ("森", "もり"),
        ("池田", "いけだ"),
        ("橋本", "はしもと"),
        ("阿部", "あべ"),
        ("石川", "いしかわ"),
        ("山下", "やました"),
        ("中島", "なかじま"),
        ("石井", "いしい"),
        ("小川", "おがわ"),
        ("前田", "まえだ"),
        ("岡田", "おかだ"),
        ("長谷川", "はせがわ"),
        ("藤田", "ふじた"),
        ("後藤", "ごとう"),
        ("近藤", "こんどう"),
        ("村上", "むらかみ"),
        ("遠藤", "えんどう"),
        ("青木", "あおき"),
        ("坂本", "さかもと"),
        ("斉藤", "さいとう"),
        ("福田", "ふくだ"),
        ("太田", "おおた"),
        ("西村", "にしむら"),
        ("藤井", "ふじい"),
        ("金子", "かねこ"),
        ("岡本", "おかもと"),
        ("藤原", "ふじわら"),
        ("中野", "なかの"),
        ("三浦", "みうら"),
    ];
    const GIVEN: [(&str, &str); 30] = [
        ("太郎", "たろう"),
        ("花子", "はなこ"),
        ("一郎", "いちろう"),
        ("和子", "かずこ"),
        ("正男", "まさお"),
        ("幸子", "さちこ"),
        ("清", "きよし"),
        ("節子", "せつこ"),
        ("茂", "しげる"),
        ("弘子", "ひろこ"),
        ("勇", "いさむ"),
        ("京子", "きょうこ"),
        ("博", "ひろし"),
        ("洋子", "ようこ"),
        ("実", "みのる"),
        ("恵子", "けいこ"),
        ("進", "すすむ"),
        ("美智子", "みちこ"),
        ("明", "あきら"),
        ("久子", "ひさこ"),
        ("昭", "あきら"),
        ("文子", "ふみこ"),
        ("武", "たけし"),
        ("静子", "しずこ"),
        ("稔", "みのる"),
        ("千代子", "ちよこ"),
        ("豊", "ゆたか"),
        ("キヨ", "きよ"),
        ("修", "おさむ"),
        ("トミ", "とみ"),
    ];
    let registrant = app.user_id(ADMIN).await.uuid();
    let mut tx = app.tenant_tx(HOST).await;
    let mut state: u64 = 0x2545_f491_4f6c_dd1d;
    let mut next = move |m: usize| {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        usize::try_from(state % m as u64).unwrap()
    };
    for chunk in (0..n).collect::<Vec<_>>().chunks(5_000) {
        let (mut ids, mut groups, mut names, mut kanas, mut folded, mut kana_folded) =
            (vec![], vec![], vec![], vec![], vec![], vec![]);
        let (mut births, mut statuses, mut physicians, mut doc_grams) =
            (vec![], vec![], vec![], vec![]);
        for i in chunk {
            let (name, kana) = if *i == n / 2 {
                ("鬼怒川 桃子".to_owned(), "きぬがわ ももこ".to_owned())
            } else {
                let (f, fk) = FAMILY[next(FAMILY.len())];
                let (g, gk) = GIVEN[next(GIVEN.len())];
                (format!("{f} {g}"), format!("{fk} {gk}"))
            };
            let name_folded = format!("{}\n{}", fold(&name), fold(&kana));
            let g = grams(&name_folded);
            ids.push(uuid::Uuid::new_v4());
            groups.push(uuid::Uuid::new_v4());
            kana_folded.push(fold(&kana));
            folded.push(name_folded);
            names.push(name);
            kanas.push(kana);
            births.push(
                chrono::NaiveDate::from_ymd_opt(1925, 1, 1).unwrap()
                    + chrono::Days::new(u64::try_from(next(30_000)).unwrap()),
            );
            statuses.push(["home", "home", "home", "hospital", "facility"][next(5)]);
            physicians.push((next(100) == 0).then_some(physician));
            doc_grams.push(format!(
                "{{{}}}",
                g.iter().map(i32::to_string).collect::<Vec<_>>().join(",")
            ));
        }
        sqlx::query(
            "INSERT INTO groups (id, kind, name, created_by, created_at, last_activity_at) \
             SELECT g, 'patient', n || 'さん', $3, now() - make_interval(secs => o), \
                    now() - make_interval(secs => o) \
             FROM unnest($1::uuid[], $2::text[]) WITH ORDINALITY AS x(g, n, o)",
        )
        .bind(&groups)
        .bind(&names)
        .bind(registrant)
        .execute(&mut *tx)
        .await
        .unwrap();
        sqlx::query(
            "INSERT INTO patients (id, group_id, name, name_kana, name_folded, kana_folded, \
                                   birth_date, sex, status, physician_id, registered_by) \
             SELECT id, g, n, k, nf, kf, b, 'female', s, ph, $10 \
             FROM unnest($1::uuid[], $2::uuid[], $3::text[], $4::text[], $5::text[], \
                         $6::text[], $7::date[], $8::text[], $9::uuid[]) \
                  AS x(id, g, n, k, nf, kf, b, s, ph)",
        )
        .bind(&ids)
        .bind(&groups)
        .bind(&names)
        .bind(&kanas)
        .bind(&folded)
        .bind(&kana_folded)
        .bind(&births)
        .bind(&statuses)
        .bind(&physicians)
        .bind(registrant)
        .execute(&mut *tx)
        .await
        .unwrap();
        sqlx::query(
            "INSERT INTO search_docs (id, kind, group_id, at, folded, grams) \
             SELECT id, 'patient', g, now(), f, gr::int4[] \
             FROM unnest($1::uuid[], $2::uuid[], $3::text[], $4::text[]) AS x(id, g, f, gr)",
        )
        .bind(&ids)
        .bind(&groups)
        .bind(&folded)
        .bind(&doc_grams)
        .execute(&mut *tx)
        .await
        .unwrap();
    }
    sqlx::query("ANALYZE patients, groups, search_docs")
        .execute(&mut *tx)
        .await
        .unwrap();
    let pages: i32 =
        sqlx::query_scalar("SELECT relpages FROM pg_class WHERE oid = 'patients'::regclass")
            .fetch_one(&mut *tx)
            .await
            .unwrap();
    tx.commit().await.unwrap();
    i64::from(pages)
}

/// Every node of an `EXPLAIN (FORMAT JSON)` plan.
fn plan_nodes<'a>(node: &'a Value, out: &mut Vec<&'a Value>) {
    out.push(node);
    for child in node["Plans"].as_array().into_iter().flatten() {
        plan_nodes(child, out);
    }
}

#[tokio::test]
async fn a_register_of_100_000_is_listed_page_by_page_without_reading_it_all() {
    use musubi_db::groups::{explain_list_patients, PatientCursor, PatientOrder, PatientQuery};
    use musubi_db::types::japanese::fold;
    use musubi_db::types::{PatientId, PatientStatus};
    let w = World::new().await;
    let physician = w.app.user_id(CLINIC_DOCTOR).await;
    let pages = load_register(&w.app, 100_000, physician.uuid()).await;
    assert!(pages > 1_000, "the register takes {pages} pages");
    let admin = w.app.user_id(ADMIN).await;
    let cases: Vec<(&str, PatientQuery)> = vec![
        ("by reading, first page", PatientQuery::default()),
        (
            "by reading, a later page",
            PatientQuery {
                after: Some(PatientCursor {
                    key: fold("なかむら"),
                    id: PatientId::from_uuid(uuid::Uuid::nil()),
                }),
                ..PatientQuery::default()
            },
        ),
        (
            "at home, 75 or older, oldest first",
            PatientQuery {
                statuses: vec![PatientStatus::Home],
                born_until: chrono::NaiveDate::from_ymd_opt(1951, 12, 1),
                order: PatientOrder::Age,
                ..PatientQuery::default()
            },
        ),
        (
            "newest registrations",
            PatientQuery {
                order: PatientOrder::Registered,
                ..PatientQuery::default()
            },
        ),
        (
            "latest activity",
            PatientQuery {
                order: PatientOrder::Activity,
                ..PatientQuery::default()
            },
        ),
        (
            "a rare name",
            PatientQuery {
                text: fold("ももこ"),
                ..PatientQuery::default()
            },
        ),
        (
            "a common name",
            PatientQuery {
                text: fold("さとう"),
                ..PatientQuery::default()
            },
        ),
        (
            "one physician's patients",
            PatientQuery {
                physician_id: Some(physician),
                ..PatientQuery::default()
            },
        ),
    ];
    let mut tx = w.app.tenant_tx(HOST).await;
    for (what, mut q) in cases {
        q.limit = 51;
        // A page in an order, narrowed or not, is a walk of an index: no table read whole and
        // a small part of the register touched. A name search reads the entries the search
        // index finds (about one in fifty for 佐藤 here): at most one pass over the register
        // and one over its search entries.
        let by_name = !q.text.is_empty();
        let plans = explain_list_patients(&mut tx, admin, true, &q)
            .await
            .unwrap();
        let mut buffers = 0;
        let mut ms = 0.0;
        let mut rows = 0;
        for plan in &plans {
            let top = &plan[0]["Plan"];
            let mut nodes = Vec::new();
            if !by_name {
                plan_nodes(top, &mut nodes);
            }
            for n in &nodes {
                assert!(
                    !(n["Node Type"] == "Seq Scan"
                        && ["patients", "groups", "search_docs"]
                            .contains(&n["Relation Name"].as_str().unwrap_or(""))),
                    "{what}: reads the whole {} table: {plan:#}",
                    n["Relation Name"]
                );
            }
            buffers += top["Shared Hit Blocks"].as_i64().unwrap()
                + top["Shared Read Blocks"].as_i64().unwrap();
            ms += plan[0]["Execution Time"].as_f64().unwrap();
            rows = top["Actual Rows"].as_i64().unwrap();
        }
        assert!(rows > 0, "{what}: nothing listed");
        println!("{what}: {rows} rows, {buffers} buffers of a {pages}-page register, {ms:.2} ms");
        let bound = if by_name { 2 * pages } else { pages / 2 };
        assert!(
            buffers < bound,
            "{what}: {buffers} buffers for one page of a {pages}-page register: {plans:#?}"
        );
    }
    // The rare name is looked up, not searched for.
    let rare = PatientQuery {
        text: fold("ももこ"),
        limit: 51,
        ..PatientQuery::default()
    };
    let plans = explain_list_patients(&mut tx, admin, true, &rare)
        .await
        .unwrap();
    let touched: i64 = plans
        .iter()
        .map(|p| {
            p[0]["Plan"]["Shared Hit Blocks"].as_i64().unwrap()
                + p[0]["Plan"]["Shared Read Blocks"].as_i64().unwrap()
        })
        .sum();
    assert!(touched < pages / 4, "a rare name touched {touched} buffers");
}
