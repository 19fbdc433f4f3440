//! Free-word search through the services, as nurses type it: a table of Japanese queries
//! (one-character words, width, kana and case, phrases, exclusions, units, LIKE's own
//! characters) against comments, a title and a file of known text; who finds what (scope,
//! membership, other associations, deleted and edited content) in pages *and* counts; paging
//! and order; and what a hurried or hostile person can do to it, with every search on record.

use chrono::{DateTime, Utc};
use musubi_domain::audit::RequestMeta;
use musubi_domain::files::{FileKind, Spooled};
use musubi_domain::groups::Scope;
use musubi_domain::search::{self, DocKind, Order, SearchInput, SearchResults};
use musubi_domain::sessions::Viewer;
use musubi_domain::topics::{NewTopic, TopicPatch};
use musubi_domain::types::japanese::fold;
use musubi_domain::types::{GroupId, TopicId};
use musubi_domain::{Actor, AppError, ErrorCode, Services, Tenant};
use musubi_test_support::demo::{
    ADMIN, CARE_MANAGER, CLINIC_DOCTOR, CLINIC_DOCTOR_2, HOSPITAL_DOCTOR, HOST, NURSE, OTHER,
    OTHER_ADMIN, OTHER_DOCTOR, OTHER_NURSE, PHARMACIST, THERAPIST,
};
use musubi_test_support::TestApp;
use sha2::Digest as _;
use std::collections::{BTreeSet, HashMap, HashSet};
use uuid::Uuid;

/// The audit action of a search.
const SEARCH_ACTION: &str = "search.query";

/// The demo's patient group of みなと川 (the nurse, care manager, pharmacist, therapist and
/// hospital doctor are members; the clinic doctor owns it).
const YAMADA: &str = "山田 太郎さん（85歳・在宅酸素）";
/// さくら台's patient group (the nurse and the pharmacist of みなと川 are members too).
const ITO: &str = "伊藤 正男さん（80歳・心不全）";

struct World {
    app: TestApp,
    services: Services,
    host: Tenant,
    other: Tenant,
    meta: RequestMeta,
    dir: tempfile::TempDir,
    yamada: Uuid,
    ito: Uuid,
}

async fn group_named(app: &TestApp, slug: &str, name: &str) -> Uuid {
    sqlx::query_scalar("SELECT id FROM groups WHERE name = $1")
        .bind(name)
        .fetch_one(&mut *app.tenant_tx(slug).await)
        .await
        .unwrap()
}

impl World {
    async fn new() -> Self {
        let app = TestApp::demo().await;
        let services = app.services();
        let host = services.resolve_tenant(HOST).await.unwrap();
        let other = services.resolve_tenant(OTHER).await.unwrap();
        let yamada = group_named(&app, HOST, YAMADA).await;
        let ito = group_named(&app, OTHER, ITO).await;
        Self {
            app,
            services,
            host,
            other,
            meta: RequestMeta::new("192.0.2.1", "search test"),
            dir: tempfile::tempdir().unwrap(),
            yamada,
            ito,
        }
    }

    async fn viewer(&self, email: &str) -> Viewer {
        self.app.operator().act_as(email).await.unwrap()
    }

    fn tenant(&self, group: Uuid) -> &Tenant {
        if group == self.ito {
            &self.other
        } else {
            &self.host
        }
    }

    /// The database's clock: content written after this is the test's own.
    async fn now(&self) -> DateTime<Utc> {
        sqlx::query_scalar("SELECT now()")
            .fetch_one(&mut *self.app.tenant_tx(HOST).await)
            .await
            .unwrap()
    }

    /// Posts a topic as `who`; returns it and the id of its body (comment number 1).
    async fn topic(
        &self,
        who: &Viewer,
        group: Uuid,
        title: &str,
        body: &str,
        scope: Scope,
        attachments: &[Uuid],
    ) -> (TopicId, Uuid) {
        let tenant = self.tenant(group);
        let actor = Actor::new(who, tenant, &self.meta);
        let new = NewTopic {
            group_id: group.into(),
            title,
            body,
            scope,
            important: false,
        };
        let topic = self
            .services
            .create_topic_with(&actor, &new, attachments)
            .await
            .unwrap();
        let mut tx = self.app.db.db.tenant_tx(tenant).await.unwrap();
        let body_id = sqlx::query_scalar("SELECT id FROM comments WHERE topic_id = $1 AND seq = 1")
            .bind(topic.uuid())
            .fetch_one(&mut *tx)
            .await
            .unwrap();
        (topic, body_id)
    }

    async fn comment(&self, who: &Viewer, group: Uuid, topic: TopicId, body: &str) -> Uuid {
        self.comment_with(who, group, topic, body, &[]).await
    }

    async fn comment_with(
        &self,
        who: &Viewer,
        group: Uuid,
        topic: TopicId,
        body: &str,
        attachments: &[Uuid],
    ) -> Uuid {
        let actor = Actor::new(who, self.tenant(group), &self.meta);
        self.services
            .post_comment_with(&actor, topic, body, false, attachments)
            .await
            .unwrap()
            .uuid()
    }

    /// Writes `bytes` to a spool file as an entry point would.
    async fn spool(&self, bytes: &[u8]) -> std::path::PathBuf {
        let path = self.dir.path().join(Uuid::new_v4().to_string());
        tokio::fs::write(&path, bytes).await.unwrap();
        path
    }

    /// Shares a text file with the group as `who`.
    async fn share(&self, who: &Viewer, group: Uuid, name: &str, text: &str) -> Uuid {
        let bytes = text.as_bytes();
        let path = self.spool(bytes).await;
        let spooled = Spooled {
            path: &path,
            name,
            size: bytes.len() as u64,
            sha256: sha2::Sha256::digest(bytes).into(),
            head: &bytes[..bytes.len().min(4096)],
        };
        let actor = Actor::new(who, self.tenant(group), &self.meta);
        self.services
            .upload_group_file(&actor, group.into(), &spooled, FileKind::Other)
            .await
            .unwrap()
            .id
    }

    /// Uploads a text file for a comment `who` is writing (not posted yet).
    async fn stage(&self, who: &Viewer, group: Uuid, name: &str, text: &str) -> Uuid {
        let bytes = text.as_bytes();
        let path = self.spool(bytes).await;
        let spooled = Spooled {
            path: &path,
            name,
            size: bytes.len() as u64,
            sha256: sha2::Sha256::digest(bytes).into(),
            head: &bytes[..bytes.len().min(4096)],
        };
        let actor = Actor::new(who, self.tenant(group), &self.meta);
        let row = self
            .services
            .stage_attachment(&actor, group.into(), &spooled)
            .await
            .unwrap();
        assert!(row.pending);
        row.id
    }

    async fn try_search(
        &self,
        who: &Viewer,
        input: &SearchInput<'_>,
    ) -> Result<SearchResults, AppError> {
        self.services.search(who, &self.meta, input).await
    }

    async fn search(&self, who: &Viewer, input: &SearchInput<'_>) -> SearchResults {
        match self.try_search(who, input).await {
            Ok(r) => r,
            Err(e) => panic!("searching {:?}: {e:?}", input.text),
        }
    }

    /// One page of 50, newest first, everywhere `who` may look.
    async fn find(&self, who: &Viewer, text: &str) -> SearchResults {
        self.search(who, &page_of(text, 50)).await
    }

    /// The ids found by `who` for `text`, after checking that the page holds them all and that
    /// the count agrees with it.
    async fn found(&self, who: &Viewer, text: &str) -> BTreeSet<Uuid> {
        let r = self.find(who, text).await;
        assert!(r.next.is_none(), "{text}: one page holds everything");
        assert_eq!(
            r.total,
            r.hits.len() as i64,
            "{text}: the count is the page"
        );
        ids(&r).into_iter().collect()
    }
}

fn page_of(text: &str, first: usize) -> SearchInput<'_> {
    SearchInput {
        text,
        first,
        ..SearchInput::default()
    }
}

fn ids(r: &SearchResults) -> Vec<Uuid> {
    r.hits.iter().map(|h| h.hit.id).collect()
}

fn set(ids: &[Uuid]) -> BTreeSet<Uuid> {
    ids.iter().copied().collect()
}

// --- 1. The query table ----------------------------------------------------------------------

/// Comments posted in the fixture topic: a marker (the test's name for it) and the text.
const COMMENTS: &[(&str, &str)] = &[
    ("bp", "本日の血圧 150/90、SpO2 96%。"),
    ("fall", "転倒なし。痰がらみあり、咳は夜間のみ。"),
    ("sputum", "痰吸引 2回"),
    ("sore", "仙骨部に褥瘡（d2）。"),
    ("cm_half", "ｹｱﾏﾈの森田さんへ連絡済み"),
    ("cm_full", "ケアマネージャーに報告"),
    ("bp_wide", "ＢＰ　１５０"),
    ("bp_ascii", "BP 150"),
    ("fever", "発熱 37.8℃"),
    ("warmth", "右膝の熱感なし"),
    ("edema", "浮腫(+)"),
    ("insulin", "インスリン 8単位"),
    ("potassium", "カリウム値 5.2"),
    ("spo2_spaced", "SpO2 低下あり"),
    ("spo2_tight", "夜間SpO2低下"),
    ("bp_fall", "転倒後の血圧 130/80"),
    ("low_spo2", "血圧低下 SpO2 90%"),
    ("appetite", "食欲低下、SpO2は安定"),
    ("mg_wide", "ラシックス １０ｍｇ"),
    ("mg_ascii", "ラシックス 10mg"),
    ("mg_100", "ラシックス 100mg"),
    ("pct_100", "服薬達成率100%"),
    // Has 1, 0 and 0% in it: a `%` taken as a wildcard would find it for 「100%」.
    ("pct_50", "点滴100ml、摂取率50%"),
    ("label", "検体ラベル AB_1"),
    // Has ab, b_ and _1, and 「abc1」: a `_` taken as a wildcard would find it for 「ab_1」.
    ("label_decoy", "検体ABC1、ラベルB_と_1"),
    ("path", "記録はC:\\kiroku に保存"),
    // 「訪問診療」 split across two comments.
    ("split_a", "申し送り：明日は訪"),
    ("split_b", "問診療の予定"),
    ("gauze", "ｶﾞｰｾﾞ交換済"),
    ("english", "Vital signs stable"),
];
const TITLE: &str = "検索確認のための記録";
const BODY: &str = "今週の様子をまとめます。";
const FILE_NAME: &str = "処置メモ.txt";
const FILE_TEXT: &str = "ガーゼ交換の手順：洗浄後に被覆材を貼付。";

/// Everything with 「SpO2」 in it, whatever its width and case.
const SPO2: &[&str] = &["bp", "spo2_spaced", "spo2_tight", "low_spo2", "appetite"];

/// (query, markers found, markers notably not found). Everything not listed as found must not
/// be found either: the sets are compared whole.
#[rustfmt::skip]
const TABLE: &[(&str, &[&str], &[&str])] = &[
    // One-character words.
    ("痰", &["fall", "sputum"], &[]),
    ("咳", &["fall"], &["sputum"]),
    ("熱", &["fever", "warmth"], &[]),
    // Two-character words.
    ("血圧", &["bp", "bp_fall", "low_spo2"], &["bp_wide", "bp_ascii"]),
    ("転倒", &["fall", "bp_fall"], &[]),
    ("褥瘡", &["sore"], &[]),
    ("発熱", &["fever"], &["warmth"]),
    ("浮腫", &["edema"], &[]),
    ("夜間", &["fall", "spo2_tight"], &[]),
    // AND and exclusions, with spaces and minus signs of every width.
    ("血圧 転倒", &["bp_fall"], &["bp", "fall"]),
    ("咳 痰 転倒", &["fall"], &["sputum"]),
    ("血圧 -転倒", &["bp", "low_spo2"], &["bp_fall"]),
    ("血圧\u{3000}\u{FF0D}転倒", &["bp", "low_spo2"], &["bp_fall"]),
    ("血圧 \u{2212}転倒", &["bp", "low_spo2"], &["bp_fall"]),
    ("痰 -咳", &["sputum"], &["fall"]),
    // Width.
    ("ＢＰ", &["bp_wide", "bp_ascii"], &[]),
    ("bp", &["bp_wide", "bp_ascii"], &[]),
    ("１５０", &["bp", "bp_wide", "bp_ascii"], &[]),
    ("150", &["bp", "bp_wide", "bp_ascii"], &[]),
    ("BP 150", &["bp_wide", "bp_ascii"], &["bp"]),
    ("\"BP 150\"", &["bp_wide", "bp_ascii"], &["bp"]),
    ("「ＢＰ １５０」", &["bp_wide", "bp_ascii"], &["bp"]),
    ("ｹｱﾏﾈ", &["cm_half", "cm_full"], &[]),
    ("ケアマネ 森田", &["cm_half"], &["cm_full"]),
    ("ケアマネージャー", &["cm_full"], &["cm_half"]),
    ("Ｄ２", &["sore"], &[]),
    // Kana.
    ("けあまね", &["cm_half", "cm_full"], &[]),
    ("かりうむ", &["potassium"], &[]),
    ("ｶﾘｳﾑ", &["potassium"], &[]),
    ("カリウム 5.2", &["potassium"], &[]),
    ("ｲﾝｽﾘﾝ８単位", &["insulin"], &[]),
    ("インスリン 8単位", &["insulin"], &[]),
    ("ガーゼ", &["gauze", "file"], &[]),
    ("ｶﾞｰｾﾞ", &["gauze", "file"], &[]),
    // Case, and English mixed with Japanese.
    ("spo2", SPO2, &[]),
    ("SPO2", SPO2, &[]),
    ("ＳｐＯ２", SPO2, &[]),
    ("SpO2 96%", &["bp"], &["low_spo2"]),
    ("vital SIGNS", &["english"], &[]),
    ("\"signs vital\"", &[], &["english"]),
    // Phrases: spaces inside do not matter, order does.
    ("SpO2 低下", &["spo2_spaced", "spo2_tight", "low_spo2", "appetite"], &[]),
    ("\"SpO2 低下\"", &["spo2_spaced", "spo2_tight"], &["low_spo2", "appetite"]),
    ("“SpO2 低下”", &["spo2_spaced", "spo2_tight"], &["low_spo2", "appetite"]),
    ("「SpO2低下」", &["spo2_spaced", "spo2_tight"], &["low_spo2", "appetite"]),
    ("\"低下 SpO2\"", &["low_spo2"], &["spo2_spaced", "spo2_tight", "appetite"]),
    ("SpO2 -\"SpO2 低下\"", &["bp", "low_spo2", "appetite"], &["spo2_spaced", "spo2_tight"]),
    // Units and symbols.
    ("37.8℃", &["fever"], &[]),
    ("37.8°C", &["fever"], &[]),
    ("浮腫（＋）", &["edema"], &[]),
    ("１０ｍｇ", &["mg_wide", "mg_ascii"], &["mg_100"]),
    ("10mg", &["mg_wide", "mg_ascii"], &["mg_100"]),
    ("10㎎", &["mg_wide", "mg_ascii"], &["mg_100"]),
    ("100mg", &["mg_100"], &["mg_wide", "mg_ascii"]),
    ("mg", &["mg_wide", "mg_ascii", "mg_100"], &[]),
    // LIKE's own characters are only themselves.
    ("100%", &["pct_100"], &["pct_50"]),
    ("100％", &["pct_100"], &["pct_50"]),
    ("%", &["bp", "low_spo2", "pct_100", "pct_50"], &[]),
    ("_", &["label", "label_decoy"], &[]),
    ("ab_1", &["label"], &["label_decoy"]),
    ("\\", &["path"], &[]),
    ("c:\\KIROKU", &["path"], &[]),
    // Nothing, and a word split across two comments.
    ("存在しない言葉", &[], &[]),
    ("訪問診療", &[], &["split_a", "split_b"]),
    ("明日は訪", &["split_a"], &[]),
    // A title, a topic's body, a file's name and its text (but not across the two).
    ("検索確認", &["title"], &["body"]),
    ("今週", &["body"], &["title"]),
    ("処置メモ", &["file"], &[]),
    ("被覆材", &["file"], &[]),
    ("txtガーゼ", &[], &["file"]),
];

#[tokio::test]
async fn the_query_table_finds_exactly_the_expected_comments_titles_and_files() {
    assert!(TABLE.len() >= 40, "{} rows", TABLE.len());
    let w = World::new().await;
    let nurse = w.viewer(NURSE).await;
    let since = w.now().await;

    let mut marker_of: HashMap<Uuid, &str> = HashMap::new();
    let (topic, body) = w
        .topic(&nurse, w.yamada, TITLE, BODY, Scope::EVERYONE, &[])
        .await;
    marker_of.insert(topic.uuid(), "title");
    marker_of.insert(body, "body");
    for (marker, text) in COMMENTS {
        let id = w.comment(&nurse, w.yamada, topic, text).await;
        marker_of.insert(id, marker);
    }
    let file = w.share(&nurse, w.yamada, FILE_NAME, FILE_TEXT).await;
    marker_of.insert(file, "file");
    let kind_of = |marker: &str| match marker {
        "title" => DocKind::Topic,
        "file" => DocKind::File,
        _ => DocKind::Comment,
    };
    let known: HashSet<&str> = marker_of.values().copied().collect();

    for (query, expected, not_expected) in TABLE {
        for m in expected.iter().chain(not_expected.iter()) {
            assert!(known.contains(m), "{query}: unknown marker {m}");
        }
        let want: BTreeSet<&str> = expected.iter().copied().collect();

        // Only what the test wrote (the demo's conversation is older): exact, count included.
        let input = SearchInput {
            from: Some(since),
            ..page_of(query, 50)
        };
        let r = w.search(&nurse, &input).await;
        assert!(r.next.is_none(), "{query}");
        assert_eq!(r.total, r.hits.len() as i64, "{query}: total");
        let mut got = BTreeSet::new();
        for h in &r.hits {
            let marker = marker_of
                .get(&h.hit.id)
                .unwrap_or_else(|| panic!("{query}: found something else: {:?}", h.hit.text));
            assert_eq!(h.kind, kind_of(marker), "{query}: {marker}");
            assert_eq!(h.hit.group_id, GroupId::from(w.yamada), "{query}");
            assert_eq!(h.association, HOST, "{query}");
            got.insert(*marker);
        }
        assert_eq!(got, want, "{query}");
        for m in *not_expected {
            assert!(!got.contains(m), "{query} found {m}");
        }

        // Without the date: the same of the test's own among everything else.
        let r = w.find(&nurse, query).await;
        let got: BTreeSet<&str> = r
            .hits
            .iter()
            .filter_map(|h| marker_of.get(&h.hit.id).copied())
            .collect();
        assert_eq!(got, want, "{query}, all dates");
        assert!(r.total >= want.len() as i64, "{query}, all dates: total");
    }
}

/// The words of a hit are marked in its snippet as written, whatever their width.
#[tokio::test]
async fn snippets_mark_the_words_as_written() {
    let w = World::new().await;
    let nurse = w.viewer(NURSE).await;
    let (topic, _) = w
        .topic(
            &nurse,
            w.yamada,
            "スニペット確認",
            "本文",
            Scope::EVERYONE,
            &[],
        )
        .await;
    let id = w
        .comment(
            &nurse,
            w.yamada,
            topic,
            "ｹｱﾏﾈの森田さんへ連絡済み、ＢＰ　１５０",
        )
        .await;
    for (query, marked) in [
        ("ケアマネ", vec!["ｹｱﾏﾈ"]),
        ("\"BP 150\"", vec!["ＢＰ　１５０"]),
        ("森田 連絡", vec!["森田", "連絡"]),
    ] {
        let r = w.find(&nurse, query).await;
        let hit = r.hits.iter().find(|h| h.hit.id == id).expect(query);
        let pieces: Vec<&str> = hit
            .snippet
            .iter()
            .filter(|p| p.matched)
            .map(|p| p.text.as_str())
            .collect();
        assert_eq!(pieces, marked, "{query}");
    }
}

/// Half-width katakana with a separate voiced mark (ｶﾞ) fold to one character (が): the comment
/// is found, and the snippet marks the word as written, marks included.
#[tokio::test]
async fn snippets_mark_words_written_with_half_width_voiced_marks() {
    let w = World::new().await;
    let nurse = w.viewer(NURSE).await;
    let (topic, _) = w
        .topic(&nurse, w.yamada, "処置の記録", "本文", Scope::EVERYONE, &[])
        .await;
    let id = w.comment(&nurse, w.yamada, topic, "ｶﾞｰｾﾞ交換済").await;
    let r = w.find(&nurse, "ガーゼ").await;
    let hit = r.hits.iter().find(|h| h.hit.id == id).expect("found");
    let marked: Vec<&str> = hit
        .snippet
        .iter()
        .filter(|p| p.matched)
        .map(|p| p.text.as_str())
        .collect();
    assert_eq!(marked, vec!["ｶﾞｰｾﾞ"]);
}

// --- 2. Who finds what ----------------------------------------------------------------------

#[tokio::test]
async fn a_topics_scope_decides_who_finds_it_and_a_change_of_scope_follows() {
    let w = World::new().await;
    let nurse = w.viewer(NURSE).await;
    let pharmacist = w.viewer(PHARMACIST).await;
    let care_manager = w.viewer(CARE_MANAGER).await;
    let clinic_doctor = w.viewer(CLINIC_DOCTOR).await;
    let hospital_doctor = w.viewer(HOSPITAL_DOCTOR).await;

    // For co-medical staff only: the title, the body with a file, a pharmacist's reply.
    let file = w
        .stage(&nurse, w.yamada, "極秘検証.txt", "極秘検証の添付です")
        .await;
    let (topic, body) = w
        .topic(
            &nurse,
            w.yamada,
            "極秘検証の申し送り",
            "極秘検証 本文",
            Scope::CO_MEDICAL,
            &[file],
        )
        .await;
    let reply = w
        .comment(&pharmacist, w.yamada, topic, "極秘検証 追記")
        .await;
    let all = set(&[topic.uuid(), body, file, reply]);
    for (who, sees) in [
        (&nurse, true),
        (&pharmacist, true),
        (&care_manager, true),
        (&clinic_doctor, false),
        (&hospital_doctor, false),
    ] {
        let want = if sees { all.clone() } else { BTreeSet::new() };
        assert_eq!(w.found(who, "極秘検証").await, want, "{}", who.user().email);
    }

    // A doctor's topic for co-medical staff: its author finds it, other doctors do not.
    let (mine, mine_body) = w
        .topic(
            &clinic_doctor,
            w.yamada,
            "医師作成検証",
            "医師作成検証 の本文",
            Scope::CO_MEDICAL,
            &[],
        )
        .await;
    let doctors = set(&[mine.uuid(), mine_body]);
    assert_eq!(w.found(&clinic_doctor, "医師作成検証").await, doctors);
    assert_eq!(w.found(&nurse, "医師作成検証").await, doctors);
    assert!(w.found(&hospital_doctor, "医師作成検証").await.is_empty());

    // For doctors now: the co-medical staff lose it (the pharmacist their own reply too),
    // its author keeps it.
    let na = Actor::new(&nurse, &w.host, &w.meta);
    let to = |scope: Scope, title: Option<&str>| TopicPatch {
        title: title.map(str::to_owned),
        scope: Some(scope),
        pinned: None,
        closed: None,
    };
    w.services
        .update_topic(&na, topic, &to(Scope::DOCTORS, None))
        .await
        .unwrap();
    for (who, sees) in [
        (&nurse, true),
        (&pharmacist, false),
        (&care_manager, false),
        (&clinic_doctor, true),
        (&hospital_doctor, true),
    ] {
        let want = if sees { all.clone() } else { BTreeSet::new() };
        assert_eq!(w.found(who, "極秘検証").await, want, "{}", who.user().email);
    }

    // For everyone, with a new title: everyone finds it, the title by its new words only.
    w.services
        .update_topic(&na, topic, &to(Scope::EVERYONE, Some("公開検証の申し送り")))
        .await
        .unwrap();
    let without_title = set(&[body, file, reply]);
    for who in [
        &nurse,
        &pharmacist,
        &care_manager,
        &clinic_doctor,
        &hospital_doctor,
    ] {
        assert_eq!(w.found(who, "極秘検証").await, without_title);
        assert_eq!(w.found(who, "公開検証").await, set(&[topic.uuid()]));
    }
}

#[tokio::test]
async fn people_outside_a_group_find_nothing_of_it_in_either_association() {
    let w = World::new().await;
    let nurse = w.viewer(NURSE).await;
    let other_nurse = w.viewer(OTHER_NURSE).await;
    let hospital_doctor = w.viewer(HOSPITAL_DOCTOR).await;

    let (here, here_body) = w
        .topic(
            &nurse,
            w.yamada,
            "部外検証",
            "部外検証の本文",
            Scope::EVERYONE,
            &[],
        )
        .await;
    let shared = w
        .share(&nurse, w.yamada, "部外検証.txt", "部外検証の資料")
        .await;
    let (there, there_body) = w
        .topic(
            &other_nurse,
            w.ito,
            "さくら台検証",
            "さくら台検証の本文",
            Scope::EVERYONE,
            &[],
        )
        .await;

    let here_all = set(&[here.uuid(), here_body, shared]);
    let there_all = set(&[there.uuid(), there_body]);
    assert_eq!(w.found(&nurse, "部外検証").await, here_all);
    assert_eq!(w.found(&hospital_doctor, "部外検証").await, here_all);
    // The nurse of みなと川 is in さくら台's group too: found there, and said so.
    assert_eq!(w.found(&nurse, "さくら台検証").await, there_all);
    let r = w.find(&nurse, "さくら台検証").await;
    assert!(r.hits.iter().all(|h| h.association == OTHER));
    assert_eq!(w.found(&other_nurse, "さくら台検証").await, there_all);

    // The association's administrator (in no patient group), the other association's people,
    // and those of this association who are not in さくら台's group.
    for email in [ADMIN, OTHER_NURSE, OTHER_ADMIN, OTHER_DOCTOR] {
        let v = w.viewer(email).await;
        assert!(w.found(&v, "部外検証").await.is_empty(), "{email}");
    }
    for email in [ADMIN, CARE_MANAGER, CLINIC_DOCTOR, THERAPIST, OTHER_ADMIN] {
        let v = w.viewer(email).await;
        assert!(w.found(&v, "さくら台検証").await.is_empty(), "{email}");
    }

    // Naming the group does not help.
    for email in [ADMIN, OTHER_NURSE, OTHER_ADMIN] {
        let v = w.viewer(email).await;
        let r = w
            .search(
                &v,
                &SearchInput {
                    group: Some((HOST, w.yamada.into())),
                    ..page_of("部外検証", 50)
                },
            )
            .await;
        assert!(r.hits.is_empty(), "{email}");
        assert_eq!(r.total, 0, "{email}");
    }
}

/// The index finds documents by a token of their group (tenant migration 0014); two groups
/// may share one, so the query checks the group itself too. Here every group of みなと川 gets
/// the same token, and people still find only what their own groups hold.
#[tokio::test]
async fn groups_sharing_an_index_token_keep_their_documents_to_themselves() {
    let w = World::new().await;
    let nurse = w.viewer(NURSE).await;
    let (topic, body) = w
        .topic(
            &nurse,
            w.yamada,
            "合札検証",
            "合札検証の本文",
            Scope::EVERYONE,
            &[],
        )
        .await;
    let mine = set(&[topic.uuid(), body]);
    assert_eq!(w.found(&nurse, "合札検証").await, mine, "before");
    let mut tx = w.app.tenant_tx(HOST).await;
    for sql in [
        "CREATE OR REPLACE FUNCTION search_group_token(g uuid) RETURNS integer \
         LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE AS $$ SELECT 2097152 $$",
        // A new index, not REINDEX: the old one's expression is cached with the old body.
        "DROP INDEX search_docs_grams_group",
        "CREATE INDEX search_docs_grams_group ON search_docs \
         USING gin ((grams || search_group_token(group_id)))",
    ] {
        sqlx::query(sql).execute(&mut *tx).await.unwrap();
    }
    let shared: i64 =
        sqlx::query_scalar("SELECT count(DISTINCT search_group_token(group_id)) FROM search_docs")
            .fetch_one(&mut *tx)
            .await
            .unwrap();
    tx.commit().await.unwrap();
    assert_eq!(shared, 1, "one token for every group");

    assert_eq!(w.found(&nurse, "合札検証").await, mine);
    // In other groups of みなと川 (the association's own, the doctors'), not in 山田さん's.
    for email in [ADMIN, CLINIC_DOCTOR_2] {
        let v = w.viewer(email).await;
        let r = w.find(&v, "合札検証").await;
        assert!(r.hits.is_empty(), "{email}: {:?}", ids(&r));
        assert_eq!(r.total, 0, "{email}");
    }
}

#[tokio::test]
async fn removed_and_expired_members_no_longer_find_the_groups_content() {
    let w = World::new().await;
    let nurse = w.viewer(NURSE).await;
    let owner = w.viewer(CLINIC_DOCTOR).await;
    let pharmacist = w.viewer(PHARMACIST).await;
    let therapist = w.viewer(THERAPIST).await;

    let (topic, body) = w
        .topic(
            &nurse,
            w.yamada,
            "退会検証",
            "退会検証の本文",
            Scope::EVERYONE,
            &[],
        )
        .await;
    let reply = w.comment(&nurse, w.yamada, topic, "退会検証 追記").await;
    let all = set(&[topic.uuid(), body, reply]);
    for who in [&nurse, &pharmacist, &therapist] {
        assert_eq!(w.found(who, "退会検証").await, all);
    }

    // Removed by the owner: gone from the page and the count at once.
    let oa = Actor::new(&owner, &w.host, &w.meta);
    w.services
        .remove_group_member(&oa, w.yamada.into(), pharmacist.user().id)
        .await
        .unwrap();
    let r = w.find(&pharmacist, "退会検証").await;
    assert!(r.hits.is_empty());
    assert_eq!(r.total, 0);

    // A membership whose end has passed (the sweep has not run yet): gone as well.
    let soon = Utc::now() + chrono::Duration::hours(1);
    w.services
        .set_group_member_until(&oa, w.yamada.into(), therapist.user().id, Some(soon))
        .await
        .unwrap();
    assert_eq!(w.found(&therapist, "退会検証").await, all, "not yet");
    let mut admin = w.app.db.admin().await;
    let ended = sqlx::query(
        "UPDATE core.group_members SET until = now() - interval '1 minute' \
         WHERE group_id = $1 AND user_id = $2",
    )
    .bind(w.yamada)
    .bind(therapist.user().id)
    .execute(&mut admin)
    .await
    .unwrap();
    assert_eq!(ended.rows_affected(), 1);
    let r = w.find(&therapist, "退会検証").await;
    assert!(r.hits.is_empty());
    assert_eq!(r.total, 0);

    // Those who stay still find it.
    assert_eq!(w.found(&nurse, "退会検証").await, all);
}

#[tokio::test]
async fn deleted_edited_and_unposted_content_is_found_only_as_it_is_now() {
    let w = World::new().await;
    let nurse = w.viewer(NURSE).await;
    let pharmacist = w.viewer(PHARMACIST).await;
    let na = Actor::new(&nurse, &w.host, &w.meta);
    let (topic, _) = w
        .topic(
            &nurse,
            w.yamada,
            "記録整理",
            "記録整理の本文",
            Scope::EVERYONE,
            &[],
        )
        .await;

    // A deleted comment.
    let deleted = w.comment(&nurse, w.yamada, topic, "削除検証の記録").await;
    assert_eq!(w.found(&pharmacist, "削除検証").await, set(&[deleted]));
    w.services
        .delete_comment(&na, deleted.into())
        .await
        .unwrap();
    for who in [&nurse, &pharmacist] {
        assert!(w.found(who, "削除検証").await.is_empty());
    }

    // An edited comment: by its new text only.
    let edited = w.comment(&nurse, w.yamada, topic, "旧文言検証です").await;
    w.services
        .edit_comment(&na, edited.into(), "新文言検証です", false)
        .await
        .unwrap();
    for who in [&nurse, &pharmacist] {
        assert!(w.found(who, "旧文言検証").await.is_empty());
        assert_eq!(w.found(who, "新文言検証").await, set(&[edited]));
    }

    // A deleted shared file.
    let shared = w
        .share(&nurse, w.yamada, "共有削除検証.txt", "共有削除検証の本文")
        .await;
    assert_eq!(w.found(&pharmacist, "共有削除検証").await, set(&[shared]));
    w.services.delete_file(&na, shared).await.unwrap();
    for who in [&nurse, &pharmacist] {
        assert!(w.found(who, "共有削除検証").await.is_empty());
    }

    // A deleted comment's attachment.
    let attached = w
        .stage(&nurse, w.yamada, "添付削除検証.txt", "添付削除検証の本文")
        .await;
    let with_file = w
        .comment_with(&nurse, w.yamada, topic, "写真を添付します", &[attached])
        .await;
    assert_eq!(w.found(&pharmacist, "添付削除検証").await, set(&[attached]));
    w.services
        .delete_comment(&na, with_file.into())
        .await
        .unwrap();
    for who in [&nurse, &pharmacist] {
        assert!(w.found(who, "添付削除検証").await.is_empty());
    }

    // An attachment not posted yet: nobody finds it (its uploader neither, until posted).
    let pending = w
        .stage(&nurse, w.yamada, "未投稿検証.txt", "未投稿検証の本文")
        .await;
    for who in [&nurse, &pharmacist] {
        assert!(w.found(who, "未投稿検証").await.is_empty());
    }
    let posted = w
        .comment_with(&nurse, w.yamada, topic, "添付します", &[pending])
        .await;
    assert_eq!(w.found(&pharmacist, "未投稿検証").await, set(&[pending]));
    let _ = posted;
}

// --- 3. Paging and order --------------------------------------------------------------------

#[tokio::test]
async fn thirty_results_come_in_three_pages_newest_first_across_associations() {
    let w = World::new().await;
    let nurse = w.viewer(NURSE).await;
    let (here, _) = w
        .topic(
            &nurse,
            w.yamada,
            "頁の確認（みなと川）",
            "本文",
            Scope::EVERYONE,
            &[],
        )
        .await;
    let (there, _) = w
        .topic(
            &nurse,
            w.ito,
            "頁の確認（さくら台）",
            "本文",
            Scope::EVERYONE,
            &[],
        )
        .await;
    // Posted one after another, every third in the other association.
    let mut posted = Vec::new();
    for i in 0..30 {
        let (group, topic) = if i % 3 == 2 {
            (w.ito, there)
        } else {
            (w.yamada, here)
        };
        posted.push(
            w.comment(&nurse, group, topic, &format!("頁送り検証 その{i}"))
                .await,
        );
    }
    let newest_first: Vec<Uuid> = posted.iter().rev().copied().collect();

    let mut seen = Vec::new();
    let mut cursor: Option<String> = None;
    for page in 0..3 {
        let r = w
            .search(
                &nurse,
                &SearchInput {
                    after: cursor.as_deref(),
                    ..page_of("頁送り検証", 10)
                },
            )
            .await;
        assert_eq!(r.hits.len(), 10, "page {page}");
        assert_eq!(r.total, 30, "page {page}: the count is of all pages");
        assert!(!r.more_than_total);
        assert!(r.hits.windows(2).all(|p| p[0].hit.at >= p[1].hit.at));
        seen.extend(ids(&r));
        cursor = r.next;
        assert_eq!(cursor.is_some(), page < 2, "page {page}");
    }
    assert_eq!(seen, newest_first, "every one once, newest first");
    let associations: HashSet<String> = {
        let r = w.find(&nurse, "頁送り検証").await;
        r.hits.into_iter().map(|h| h.association).collect()
    };
    assert_eq!(associations.len(), 2);
}

#[tokio::test]
async fn by_relevance_patients_and_titles_come_before_files_and_comments() {
    let w = World::new().await;
    let nurse = w.viewer(NURSE).await;
    let (topic, body) = w
        .topic(
            &nurse,
            w.yamada,
            "ヤマダさん宅の訪問",
            "ヤマダさんの様子",
            Scope::EVERYONE,
            &[],
        )
        .await;
    let twice = w
        .comment(&nurse, w.yamada, topic, "ヤマダさん、やまだ様とも書きます")
        .await;
    let once = w.comment(&nurse, w.yamada, topic, "ヤマダさん 安定").await;
    let file = w
        .share(&nurse, w.yamada, "やまだメモ.txt", "ヤマダ様の処方")
        .await;

    let rank_of_kind = |k: DocKind| match k {
        DocKind::Patient => 0,
        DocKind::Topic => 1,
        DocKind::File => 2,
        DocKind::Comment => 3,
    };
    let all = w
        .search(
            &nurse,
            &SearchInput {
                order: Order::Relevance,
                ..page_of("やまだ", 50)
            },
        )
        .await;
    assert!(all.next.is_none());
    let kinds: Vec<DocKind> = all.hits.iter().map(|h| h.kind).collect();
    assert_eq!(
        kinds.first(),
        Some(&DocKind::Patient),
        "the patient 山田 太郎 first"
    );
    assert!(
        kinds
            .windows(2)
            .all(|p| rank_of_kind(p[0]) <= rank_of_kind(p[1])),
        "{kinds:?}"
    );
    let order = ids(&all);
    let pos = |id: Uuid| order.iter().position(|x| *x == id).unwrap();
    assert!(pos(topic.uuid()) < pos(file));
    assert!(pos(file) < pos(twice));
    // More occurrences first, though older.
    assert!(pos(twice) < pos(once), "{order:?}");
    assert!(pos(twice) < pos(body));

    // The same order in pages of two.
    let mut paged = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let r = w
            .search(
                &nurse,
                &SearchInput {
                    order: Order::Relevance,
                    after: cursor.as_deref(),
                    ..page_of("やまだ", 2)
                },
            )
            .await;
        assert_eq!(r.total, all.total);
        paged.extend(ids(&r));
        match r.next {
            Some(n) => cursor = Some(n),
            None => break,
        }
    }
    assert_eq!(paged, order);
}

#[tokio::test]
async fn a_tampered_cursor_is_refused_as_a_page_that_no_longer_exists() {
    let w = World::new().await;
    let nurse = w.viewer(NURSE).await;
    let (topic, _) = w
        .topic(
            &nurse,
            w.yamada,
            "カーソル検証",
            "カーソル検証",
            Scope::EVERYONE,
            &[],
        )
        .await;
    w.comment(&nurse, w.yamada, topic, "カーソル検証 2").await;
    let r = w.search(&nurse, &page_of("カーソル検証", 1)).await;
    let next = r.next.expect("a second page");
    let mut cut = next.clone();
    cut.pop();
    cut.push('z');
    let swapped = next.replacen(':', ";", 1);
    for bad in [
        cut.as_str(),
        swapped.as_str(),
        "",
        "garbage",
        "1:2",
        "x:1700000000000000:0190f0a0b0c0d0e0f000000000000000",
        "0:99999999999999999999:0190f0a0b0c0d0e0f000000000000000",
        "0:1700000000000000:'; DROP TABLE search_docs; --",
    ] {
        let e = w
            .try_search(
                &nurse,
                &SearchInput {
                    after: Some(bad),
                    ..page_of("カーソル検証", 1)
                },
            )
            .await
            .unwrap_err();
        assert_eq!(e.code, ErrorCode::InvalidInput, "{bad}");
        assert_eq!(e.reasons, vec![search::reason::BAD_CURSOR], "{bad}");
    }
    // The real one still works.
    let r = w
        .search(
            &nurse,
            &SearchInput {
                after: Some(&next),
                ..page_of("カーソル検証", 1)
            },
        )
        .await;
    assert_eq!(r.hits.len(), 1);
}

// --- 4. A tired nurse, an attacker ----------------------------------------------------------

#[tokio::test]
async fn twenty_searches_at_once_by_one_person_all_succeed_alike() {
    let w = World::new().await;
    let nurse = w.viewer(NURSE).await;
    let (topic, _) = w
        .topic(
            &nurse,
            w.yamada,
            "同時検索",
            "同時検索の本文",
            Scope::EVERYONE,
            &[],
        )
        .await;
    for i in 0..5 {
        w.comment(&nurse, w.yamada, topic, &format!("血圧 同時検索 {i}"))
            .await;
    }
    let input = page_of("血圧", 50);
    let answers =
        futures_util::future::join_all((0..20).map(|_| w.services.search(&nurse, &w.meta, &input)))
            .await;
    let first = answers[0].as_ref().unwrap();
    assert!(first.total >= 5);
    for a in &answers {
        let a = a.as_ref().unwrap();
        assert_eq!(ids(a), ids(first));
        assert_eq!(a.total, first.total);
        assert_eq!(a.next, first.next);
    }
}

#[tokio::test]
async fn long_and_wildcard_queries_neither_fail_nor_match_everything() {
    let w = World::new().await;
    let nurse = w.viewer(NURSE).await;
    let (topic, _) = w
        .topic(
            &nurse,
            w.yamada,
            "記号検証",
            "記号検証の本文",
            Scope::EVERYONE,
            &[],
        )
        .await;
    let percent = w.comment(&nurse, w.yamada, topic, "達成率 50%").await;
    let underscore = w.comment(&nurse, w.yamada, topic, "ID a_b").await;
    let backslash = w.comment(&nurse, w.yamada, topic, "保存先 C:\\temp").await;
    let plain = w
        .comment(&nurse, w.yamada, topic, "痰 痰 痰 特記事項なし")
        .await;

    // At the limit: accepted, and finds nothing; beyond it: refused.
    let long = "痰".repeat(search::MAX_QUERY_CHARS);
    let r = w.find(&nurse, &long).await;
    assert!(r.hits.is_empty());
    assert_eq!(r.total, 0);
    let e = w
        .try_search(&nurse, &page_of(&format!("{long}痰"), 50))
        .await
        .unwrap_err();
    assert_eq!(e.code, ErrorCode::InvalidInput);
    assert_eq!(e.reasons, vec![search::reason::TOO_LONG]);

    let percents = "%".repeat(200);
    let underscores = "_".repeat(200);
    let backslashes = "\\".repeat(200);
    let mixed = "%_\\".repeat(66);
    let queries: Vec<(&str, Vec<Uuid>)> = vec![
        ("%", vec![percent]),
        ("_", vec![underscore]),
        ("\\", vec![backslash]),
        ("％", vec![percent]),
        ("＿", vec![underscore]),
        ("＼", vec![backslash]),
        ("%%", vec![]),
        ("%_%", vec![]),
        ("\\%", vec![]),
        (&percents, vec![]),
        (&underscores, vec![]),
        (&backslashes, vec![]),
        (&mixed, vec![]),
    ];
    for (q, expected) in &queries {
        let r = w.find(&nurse, q).await;
        let words = search::parse(q).unwrap().words;
        for h in &r.hits {
            let text = fold(&h.hit.text);
            assert!(
                words.iter().all(|word| text.contains(word.as_str())),
                "{q}: {:?}",
                h.hit.text
            );
        }
        let found: HashSet<Uuid> = ids(&r).into_iter().collect();
        for id in expected {
            assert!(found.contains(id), "{q}");
        }
        assert!(!found.contains(&plain), "{q}");
        if r.next.is_none() {
            assert_eq!(r.total, r.hits.len() as i64, "{q}");
        }
    }
}

/// Every event's fields and span's fields, as text.
#[derive(Clone, Default)]
struct Everything(std::sync::Arc<std::sync::Mutex<String>>);

impl tracing::field::Visit for Everything {
    fn record_debug(&mut self, field: &tracing::field::Field, value: &dyn std::fmt::Debug) {
        let mut s = self.0.lock().unwrap();
        s.push_str(&format!("{}={value:?}\n", field.name()));
    }
    fn record_str(&mut self, field: &tracing::field::Field, value: &str) {
        let mut s = self.0.lock().unwrap();
        s.push_str(&format!("{}={value}\n", field.name()));
    }
}

impl<S: tracing::Subscriber> tracing_subscriber::Layer<S> for Everything {
    fn on_event(&self, event: &tracing::Event<'_>, _: tracing_subscriber::layer::Context<'_, S>) {
        self.0.lock().unwrap().push_str(event.metadata().target());
        event.record(&mut self.clone());
    }
    fn on_new_span(
        &self,
        attrs: &tracing::span::Attributes<'_>,
        _: &tracing::span::Id,
        _: tracing_subscriber::layer::Context<'_, S>,
    ) {
        self.0.lock().unwrap().push_str(attrs.metadata().name());
        attrs.record(&mut self.clone());
    }
    fn on_record(
        &self,
        _: &tracing::span::Id,
        values: &tracing::span::Record<'_>,
        _: tracing_subscriber::layer::Context<'_, S>,
    ) {
        values.record(&mut self.clone());
    }
}

// One thread: every task of the searches runs where this test's subscriber is the default.
#[tokio::test]
async fn each_search_is_on_record_with_its_text_and_nowhere_else() {
    use tracing_subscriber::layer::SubscriberExt;
    let w = World::new().await;
    let nurse = w.viewer(NURSE).await;
    let care_manager = w.viewer(CARE_MANAGER).await;
    let only_here = "監査確認用の語句 ｹｱﾌﾟﾗﾝ";
    let both = "監査確認用の別の語句";

    let logged = Everything::default();
    {
        let subscriber = tracing_subscriber::registry()
            .with(logged.clone())
            .with(tracing_subscriber::filter::LevelFilter::TRACE);
        let _listening = tracing::subscriber::set_default(subscriber);
        // The care manager is in みなと川's groups only; the nurse in both associations'.
        w.find(&care_manager, only_here).await;
        w.find(&nurse, both).await;
        w.find(&nurse, both).await;
    }
    let logged = logged.0.lock().unwrap().clone();
    assert!(!logged.is_empty(), "the searches were traced");
    for text in [only_here, both, "監査確認用"] {
        assert!(!logged.contains(text), "{text} in a log line or trace");
    }

    let records = |slug: &'static str, text: &'static str| {
        let app = &w.app;
        async move {
            let rows: Vec<(Option<Uuid>, serde_json::Value)> = sqlx::query_as(
                "SELECT actor_id, detail FROM audit_log \
                 WHERE action = $1 AND detail->>'query' = $2 ORDER BY seq",
            )
            .bind(SEARCH_ACTION)
            .bind(text)
            .fetch_all(&mut *app.tenant_tx(slug).await)
            .await
            .unwrap();
            rows
        }
    };
    let here = records(HOST, only_here).await;
    assert_eq!(here.len(), 1);
    assert_eq!(here[0].0, Some(care_manager.user().id.uuid()));
    assert_eq!(here[0].1["hits"], 0);
    assert!(records(OTHER, only_here).await.is_empty(), "not looked in");
    for slug in [HOST, OTHER] {
        let rows = records(slug, both).await;
        assert_eq!(rows.len(), 2, "{slug}");
        assert!(rows
            .iter()
            .all(|(actor, _)| *actor == Some(nurse.user().id.uuid())));
    }

    // Nothing else holds the text: no other audit record, no other table of any schema.
    let mut admin = w.app.db.admin().await;
    let columns: Vec<(String, String, String)> = sqlx::query_as(
        "SELECT c.table_schema::text, c.table_name::text, c.column_name::text \
         FROM information_schema.columns c \
         JOIN information_schema.tables t \
           ON t.table_schema = c.table_schema AND t.table_name = c.table_name \
         WHERE t.table_type = 'BASE TABLE' \
           AND c.table_schema NOT IN ('pg_catalog', 'information_schema') \
           AND c.data_type IN ('text', 'character varying', 'jsonb', 'json', 'ARRAY')",
    )
    .fetch_all(&mut admin)
    .await
    .unwrap();
    assert!(columns.iter().any(|(_, t, _)| t == "audit_log"));
    let mut holding = Vec::new();
    for (schema, table, column) in &columns {
        let searches = if table == "audit_log" {
            format!(" AND action <> '{SEARCH_ACTION}'")
        } else {
            String::new()
        };
        let sql = format!(
            "SELECT count(*) FROM \"{schema}\".\"{table}\" \
             WHERE \"{column}\"::text LIKE '%監査確認用%'{searches}"
        );
        let n: i64 = sqlx::query_scalar(&sql)
            .fetch_one(&mut admin)
            .await
            .unwrap();
        if n > 0 {
            holding.push(format!("{schema}.{table}.{column}"));
        }
    }
    assert!(holding.is_empty(), "{holding:?}");
}

/// Content written before search existed is indexed by `musubi migrate`, once: later start-ups
/// do not look for it again.
#[tokio::test]
async fn migrate_indexes_what_was_written_before_search_once() {
    let app = TestApp::demo().await;
    let count = |sql: &'static str| {
        let app = &app;
        async move {
            let n: i64 = sqlx::query_scalar(sql)
                .fetch_one(&mut *app.tenant_tx(HOST).await)
                .await
                .unwrap();
            n
        }
    };
    let indexed = count("SELECT count(*) FROM search_docs WHERE kind = 'comment'").await;
    assert!(indexed > 0);
    // As after an upgrade from a version without search.
    {
        let mut tx = app.tenant_tx(HOST).await;
        sqlx::query("DELETE FROM search_docs")
            .execute(&mut *tx)
            .await
            .unwrap();
        sqlx::query("UPDATE settings SET search_backfilled = false")
            .execute(&mut *tx)
            .await
            .unwrap();
        tx.commit().await.unwrap();
    }
    app.db.db.migrate().await.unwrap();
    assert_eq!(
        count("SELECT count(*) FROM search_docs WHERE kind = 'comment'").await,
        indexed
    );
    assert_eq!(
        count("SELECT count(*) FROM settings WHERE search_backfilled").await,
        1
    );
    // Done: a later migrate (every start-up) does not scan for missing documents again.
    {
        let mut tx = app.tenant_tx(HOST).await;
        sqlx::query("DELETE FROM search_docs WHERE kind = 'topic'")
            .execute(&mut *tx)
            .await
            .unwrap();
        tx.commit().await.unwrap();
    }
    app.db.db.migrate().await.unwrap();
    assert_eq!(
        count("SELECT count(*) FROM search_docs WHERE kind = 'topic'").await,
        0
    );
}

/// Every search reads GIN's pending list whole: both search indexes keep it to 128 kB in every
/// association (tenant migration 0017), and what is posted past that limit, which merges the
/// list into the index on the way, is found like the rest.
#[tokio::test]
async fn the_search_indexes_keep_a_short_pending_list_and_find_what_outgrew_it() {
    let w = World::new().await;
    for slug in [HOST, OTHER] {
        let options: Vec<String> = sqlx::query_scalar(
            "SELECT COALESCE(array_to_string(c.reloptions, ','), '') FROM pg_class c \
             WHERE c.oid IN ('search_docs_grams_group'::regclass, \
                             'search_docs_patient_grams'::regclass)",
        )
        .fetch_all(&mut *w.app.tenant_tx(slug).await)
        .await
        .unwrap();
        assert_eq!(options.len(), 2, "{slug}");
        for o in options {
            assert!(o.contains("gin_pending_list_limit=128"), "{slug}: {o}");
        }
    }
    let nurse = w.viewer(NURSE).await;
    let (topic, _) = w
        .topic(
            &nurse,
            w.yamada,
            "バイタル記録",
            "記録を始めます",
            Scope::EVERYONE,
            &[],
        )
        .await;
    // About 60 distinct grams each: 80 comments hold a few hundred kB of pending entries.
    let mut posted = Vec::new();
    for i in 0..80 {
        let body = format!(
            "訪問{i}回目の記録。体温三十六度八分、脈拍七十二、呼吸数十六、酸素飽和度九十四。\
             食事摂取は主食七割副食五割、排便あり、褥瘡なし。次回は家族面談{i}。"
        );
        posted.push(w.comment(&nurse, w.yamada, topic, &body).await);
    }
    let found = w
        .services
        .search(&nurse, &w.meta, &page_of("家族面談", 20))
        .await
        .unwrap();
    assert_eq!(found.total, 80, "every one counted");
    assert_eq!(
        ids(&found),
        posted.iter().rev().take(20).copied().collect::<Vec<_>>()
    );
    for (i, id) in [(0, posted[0]), (79, posted[79])] {
        let text = format!("家族面談{i}。");
        let one = w
            .services
            .search(&nurse, &w.meta, &page_of(&text, 20))
            .await
            .unwrap();
        assert_eq!(ids(&one), vec![id], "{text}");
    }
}
