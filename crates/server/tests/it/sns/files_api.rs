//! Files for API clients: raw-body uploads and downloads under `/api/a/{slug}/…` with a bearer
//! token, and `groupFiles`, `deleteFile`, `Comment.attachments` and `attachmentIds` in GraphQL.
//! Photos come back without their GPS position; whoever may not see a file gets exactly the
//! answer for one that does not exist; refusals have the GraphQL error shape; an oversized body
//! is stopped while it arrives; a burst of uploads by one person ends in files or clear errors.

use axum::body::Body;
use http::header::{
    CONTENT_DISPOSITION, CONTENT_LENGTH, CONTENT_SECURITY_POLICY, CONTENT_TYPE,
    X_CONTENT_TYPE_OPTIONS,
};
use http::{HeaderMap, Request, StatusCode};
use musubi_test_support::demo::{
    ADMIN, CLINIC_DOCTOR, HOSPITAL_DOCTOR, HOST, NURSE, OTHER, OTHER_NURSE, PHARMACIST,
};
use musubi_test_support::{error_codes, photos, test_config, TestApp};
use serde_json::{json, Value};
use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use uuid::Uuid;

const YAMADA: &str = "山田 太郎さん（85歳・在宅酸素）";

const FILE_FIELDS: &str = "id name kind contentType sizeBytes width height hasPreview \
     uploadedBy { userId name } uploadedAt url previewUrl thumbnailUrl";

struct World {
    app: TestApp,
    tokens: HashMap<&'static str, String>,
    group: Uuid,
}

impl World {
    async fn new() -> Self {
        Self::with(TestApp::demo().await).await
    }

    async fn with(app: TestApp) -> Self {
        let mut tokens = HashMap::new();
        for who in [
            NURSE,
            PHARMACIST,
            CLINIC_DOCTOR,
            HOSPITAL_DOCTOR,
            OTHER_NURSE,
            ADMIN,
        ] {
            tokens.insert(who, app.demo_token(who).await);
        }
        let group = sqlx::query_scalar("SELECT id FROM groups WHERE name = $1")
            .bind(YAMADA)
            .fetch_one(&mut *app.tenant_tx(HOST).await)
            .await
            .unwrap();
        Self { app, tokens, group }
    }

    fn shared(&self, kind: &str) -> String {
        format!("/api/a/{HOST}/groups/{}/files?kind={kind}", self.group)
    }

    fn attachments(&self) -> String {
        format!("/api/a/{HOST}/groups/{}/attachments", self.group)
    }

    /// POSTs `bytes` as `who` to `path`, named `name`: status and the JSON answer.
    async fn upload(&self, who: &str, path: &str, name: &str, bytes: &[u8]) -> (StatusCode, Value) {
        let req = Request::post(path)
            .header("authorization", format!("Bearer {}", self.tokens[who]))
            .header("x-file-name", encode(name))
            .header(CONTENT_TYPE, "application/octet-stream")
            .body(Body::from(bytes.to_vec()))
            .unwrap();
        self.answer(req).await
    }

    async fn answer(&self, req: Request<Body>) -> (StatusCode, Value) {
        let (status, _, text) = self.app.send(req).await;
        let json = serde_json::from_str(&text).unwrap_or_else(|_| panic!("not JSON: {text}"));
        (status, json)
    }

    /// An upload that must succeed: the `file` of the answer.
    async fn uploaded(&self, who: &str, path: &str, name: &str, bytes: &[u8]) -> Value {
        let (status, body) = self.upload(who, path, name, bytes).await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
        body["file"].clone()
    }

    /// GETs `path` (a file's address) as `who`.
    async fn get(&self, who: &str, path: &str) -> (StatusCode, HeaderMap, bytes::Bytes) {
        let req = Request::get(path)
            .header("authorization", format!("Bearer {}", self.tokens[who]))
            .body(Body::empty())
            .unwrap();
        self.app.send_bytes(req).await
    }

    /// A GraphQL call as `who`, routed to the host association.
    async fn gql(&self, who: &str, query: &str, variables: Value) -> Value {
        let (_, _, r) = self
            .app
            .graphql_as(
                &self.tokens[who],
                HOST,
                json!({"query": query, "variables": variables}),
            )
            .await;
        r
    }

    async fn ok(&self, who: &str, query: &str, variables: Value) -> Value {
        let r = self.gql(who, query, variables).await;
        assert!(r["errors"].is_null(), "{who}: {query}: {r}");
        r["data"].clone()
    }

    async fn group_files(&self, who: &str, kind: Option<&str>) -> Value {
        self.gql(
            who,
            &format!("query($g: ID!, $k: FileKind) {{ groupFiles(groupId: $g, kind: $k) {{ {FILE_FIELDS} }} }}"),
            json!({"g": self.group, "k": kind}),
        )
        .await
    }

    async fn create_topic(&self, who: &str, scope: Value, attachments: Value) -> String {
        let d = self
            .ok(
                who,
                "mutation($g: ID!, $s: [ProfessionClass!], $a: [ID!]) { createTopic(groupId: $g, title: \"褥瘡の経過\", body: \"写真を共有します\", scope: $s, attachmentIds: $a) }",
                json!({"g": self.group, "s": scope, "a": attachments}),
            )
            .await;
        d["createTopic"].as_str().unwrap().to_owned()
    }

    async fn topic(&self, who: &str, topic: &str) -> Value {
        self.gql(
            who,
            &format!("query($t: ID!) {{ topic(id: $t, markRead: false) {{ comments {{ seq body attachments {{ {FILE_FIELDS} }} }} }} }}"),
            json!({"t": topic}),
        )
        .await
    }

    /// Files kept (not deleted) in the host association, of everyone or uploaded by `who`.
    async fn kept(&self, who: Option<&str>) -> i64 {
        let by = match who {
            Some(w) => Some(Uuid::from(self.app.user_id(w).await)),
            None => None,
        };
        sqlx::query_scalar(
            "SELECT count(*) FROM files \
             WHERE deleted_at IS NULL AND ($1::uuid IS NULL OR uploaded_by = $1)",
        )
        .bind(by)
        .fetch_one(&mut *self.app.tenant_tx(HOST).await)
        .await
        .unwrap()
    }
}

/// `X-File-Name` as clients send it: percent-encoded UTF-8.
fn encode(name: &str) -> String {
    percent_encoding::utf8_percent_encode(name, percent_encoding::NON_ALPHANUMERIC).to_string()
}

fn header(headers: &HeaderMap, name: http::header::HeaderName) -> &str {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
}

/// The one error of a refusal: code and reasons, checked to be in the GraphQL error shape.
fn refusal(body: &Value) -> (String, Vec<String>) {
    let errors = body["errors"].as_array().expect("errors");
    assert_eq!(errors.len(), 1, "{body}");
    assert!(errors[0]["message"].is_string(), "{body}");
    let reasons = errors[0]["extensions"]["reasons"]
        .as_array()
        .map(|r| r.iter().map(|x| x.as_str().unwrap().to_owned()).collect())
        .unwrap_or_default();
    (error_codes(body)[0].clone(), reasons)
}

#[tokio::test]
async fn a_photo_uploaded_through_the_api_is_listed_by_kind_and_read_without_its_gps() {
    let w = World::new().await;
    let sent = photos::jpeg(64, 48, 1, true);
    assert!(photos::has_exif_or_gps(&sent));
    let photo = w
        .uploaded(NURSE, &w.shared("image"), "褥瘡 11月5日.JPEG", &sent)
        .await;
    assert_eq!(photo["name"], "褥瘡 11月5日.jpg");
    assert_eq!(photo["kind"], "IMAGE");
    assert_eq!(photo["contentType"], "image/jpeg");
    assert_eq!(
        (photo["width"].clone(), photo["height"].clone()),
        (json!(64), json!(48))
    );
    assert_eq!(photo["hasPreview"], true);
    assert_eq!(photo["uploadedBy"]["name"], "青木 さくら");
    let id = photo["id"].as_str().unwrap();
    let url = format!("/api/a/{HOST}/files/{id}");
    assert_eq!(photo["url"], url.as_str());
    assert_eq!(photo["thumbnailUrl"], format!("{url}/thumb").as_str());
    let letter = w
        .uploaded(
            NURSE,
            &w.shared("prescription"),
            "処方内容.txt",
            "アムロジピン 5mg 1日1回 朝食後\n".as_bytes(),
        )
        .await;
    assert_eq!(letter["kind"], "PRESCRIPTION");
    assert_eq!(letter["hasPreview"], false);
    assert!(letter["previewUrl"].is_null());

    // Another member lists them, all or by kind, with the same fields the upload answered.
    let all = w.group_files(PHARMACIST, None).await;
    let all = all["data"]["groupFiles"].as_array().unwrap().clone();
    assert_eq!(all.len(), 2);
    assert!(all.contains(&photo), "{all:?}");
    let images = w.group_files(PHARMACIST, Some("IMAGE")).await;
    assert_eq!(images["data"]["groupFiles"], json!([photo.clone()]));
    let prescriptions = w.group_files(PHARMACIST, Some("PRESCRIPTION")).await;
    assert_eq!(prescriptions["data"]["groupFiles"][0]["id"], letter["id"]);
    let referrals = w.group_files(PHARMACIST, Some("REFERRAL")).await;
    assert_eq!(referrals["data"]["groupFiles"], json!([]));

    // Read back: the photo without EXIF or GPS, shown inline, sandboxed.
    let (status, headers, bytes) = w.get(PHARMACIST, &url).await;
    assert_eq!(status, StatusCode::OK);
    assert!(!photos::has_exif_or_gps(&bytes), "the GPS position left");
    assert_eq!(photos::size(&bytes), (64, 48));
    assert_eq!(header(&headers, CONTENT_TYPE), "image/jpeg");
    assert_eq!(header(&headers, X_CONTENT_TYPE_OPTIONS), "nosniff");
    assert!(header(&headers, CONTENT_SECURITY_POLICY).ends_with("sandbox"));
    let disposition = header(&headers, CONTENT_DISPOSITION);
    assert!(disposition.starts_with("inline;"), "{disposition}");
    assert!(disposition.contains("filename*=UTF-8''"), "{disposition}");
    let (_, headers, _) = w.get(PHARMACIST, &format!("{url}?download=1")).await;
    assert!(header(&headers, CONTENT_DISPOSITION).starts_with("attachment;"));
    let (status, headers, thumb) = w.get(PHARMACIST, &format!("{url}/thumb")).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(header(&headers, CONTENT_TYPE), "image/jpeg");
    assert!(!photos::has_exif_or_gps(&thumb));

    // Text is never shown in the page: saved, and sandboxed anyway.
    let (status, headers, text) = w.get(PHARMACIST, letter["url"].as_str().unwrap()).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        std::str::from_utf8(&text).unwrap(),
        "アムロジピン 5mg 1日1回 朝食後\n"
    );
    assert!(header(&headers, CONTENT_DISPOSITION).starts_with("attachment;"));
    assert!(header(&headers, CONTENT_SECURITY_POLICY).ends_with("sandbox"));
    let (status, _, _) = w
        .get(
            PHARMACIST,
            &format!("{}/preview", letter["url"].as_str().unwrap()),
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND, "a text has no preview");
}

#[tokio::test]
async fn people_outside_the_group_find_neither_the_list_nor_the_file() {
    let w = World::new().await;
    let photo = w
        .uploaded(
            NURSE,
            &w.shared("image"),
            "褥瘡.jpg",
            &photos::jpeg(32, 32, 1, true),
        )
        .await;
    let url = photo["url"].as_str().unwrap().to_owned();
    let missing = format!("/api/a/{HOST}/files/{}", Uuid::now_v7());
    let (_, _, body_for_missing) = w.get(OTHER_NURSE, &missing).await;

    for stranger in [OTHER_NURSE, ADMIN] {
        let r = w.group_files(stranger, None).await;
        assert_eq!(error_codes(&r), ["NOT_FOUND"], "{stranger}: {r}");
        for path in [
            url.clone(),
            format!("{url}/thumb"),
            format!("{url}?download=1"),
        ] {
            let (status, _, body) = w.get(stranger, &path).await;
            assert_eq!(status, StatusCode::NOT_FOUND, "{stranger} {path}");
            assert_eq!(
                body, body_for_missing,
                "exactly like a file that does not exist"
            );
        }
        let (status, body) = w
            .upload(stranger, &w.shared("other"), "メモ.txt", b"note")
            .await;
        assert_eq!(
            (status, refusal(&body).0.as_str()),
            (StatusCode::NOT_FOUND, "NOT_FOUND")
        );
    }
    // Through the other association: not there either.
    let (status, _, _) = w
        .get(
            OTHER_NURSE,
            &url.replace(&format!("/a/{HOST}/"), &format!("/a/{OTHER}/")),
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, _, _) = w
        .get(NURSE, &url.replace(HOST, "no-such-association"))
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);

    // No token, or only the browser's cookie (a cross-site form could send that): refused
    // before anything is read, and nothing kept.
    let before = w.kept(None).await;
    let (status, body) = w
        .answer(
            Request::post(w.shared("other"))
                .body(Body::from("note"))
                .unwrap(),
        )
        .await;
    assert_eq!(
        (status, refusal(&body).0.as_str()),
        (StatusCode::UNAUTHORIZED, "UNAUTHENTICATED")
    );
    let (status, body) = w
        .answer(
            Request::post(w.shared("other"))
                .header("cookie", format!("musubi_session={}", w.tokens[NURSE]))
                .header(CONTENT_TYPE, "text/plain")
                .body(Body::from("note"))
                .unwrap(),
        )
        .await;
    assert_eq!(
        (status, refusal(&body).0.as_str()),
        (StatusCode::UNAUTHORIZED, "UNAUTHENTICATED")
    );
    let (status, _, _) = w
        .app
        .send_bytes(
            Request::get(&url)
                .header("cookie", format!("musubi_session={}", w.tokens[NURSE]))
                .body(Body::empty())
                .unwrap(),
        )
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(w.kept(None).await, before);
}

#[tokio::test]
async fn an_attachment_posted_with_a_reply_is_seen_by_the_topics_readers() {
    let w = World::new().await;
    let topic = w.create_topic(NURSE, json!(null), json!(null)).await;
    let staged = w
        .uploaded(
            NURSE,
            &w.attachments(),
            "右踵.jpg",
            &photos::jpeg(40, 30, 1, true),
        )
        .await;
    assert_eq!(staged["kind"], "IMAGE");
    let url = staged["url"].as_str().unwrap().to_owned();
    // Until it is posted, only its uploader sees it, and it is no shared file.
    assert_eq!(w.get(NURSE, &url).await.0, StatusCode::OK);
    assert_eq!(w.get(PHARMACIST, &url).await.0, StatusCode::NOT_FOUND);
    assert_eq!(
        w.group_files(NURSE, None).await["data"]["groupFiles"],
        json!([])
    );

    let posted = w
        .ok(
            NURSE,
            "mutation($t: ID!, $a: [ID!]) { postComment(topicId: $t, body: \"\", attachmentIds: $a) }",
            json!({"t": topic, "a": [staged["id"]]}),
        )
        .await;
    assert!(posted["postComment"].is_string());
    let seen = w.topic(PHARMACIST, &topic).await;
    let comments = seen["data"]["topic"]["comments"].as_array().unwrap();
    assert_eq!(comments.len(), 2, "{seen}");
    assert_eq!(comments[0]["attachments"], json!([]));
    assert_eq!(comments[1]["attachments"], json!([staged.clone()]));
    let (status, _, bytes) = w.get(PHARMACIST, &url).await;
    assert_eq!(status, StatusCode::OK);
    assert!(!photos::has_exif_or_gps(&bytes));
    assert_eq!(
        w.group_files(NURSE, None).await["data"]["groupFiles"],
        json!([]),
        "attachments are not shared files"
    );

    // Posted once only; someone else's upload or a made-up id posts nothing.
    for (who, ids) in [
        (NURSE, json!([staged["id"]])),
        (PHARMACIST, json!([staged["id"]])),
        (NURSE, json!(["not-an-id"])),
    ] {
        let r = w
            .gql(
                who,
                "mutation($t: ID!, $a: [ID!]) { postComment(topicId: $t, body: \"再送\", attachmentIds: $a) }",
                json!({"t": topic, "a": ids}),
            )
            .await;
        assert_eq!(error_codes(&r), ["INVALID_INPUT"], "{who}: {r}");
        assert_eq!(r["errors"][0]["extensions"]["field"], "attachments");
    }
    let seen = w.topic(NURSE, &topic).await;
    assert_eq!(
        seen["data"]["topic"]["comments"].as_array().unwrap().len(),
        2
    );
}

#[tokio::test]
async fn an_attachment_of_a_scoped_topic_is_not_found_outside_its_scope() {
    let w = World::new().await;
    let staged = w
        .uploaded(
            CLINIC_DOCTOR,
            &w.attachments(),
            "所見.jpg",
            &photos::jpeg(32, 32, 1, false),
        )
        .await;
    let topic = w
        .create_topic(
            CLINIC_DOCTOR,
            json!(["COLLABORATING_DOCTOR", "HOSPITAL_DOCTOR"]),
            json!([staged["id"]]),
        )
        .await;
    let url = staged["url"].as_str().unwrap().to_owned();

    // The hospital doctor is in the scope: sees the topic's body with its attachment.
    let seen = w.topic(HOSPITAL_DOCTOR, &topic).await;
    assert_eq!(
        seen["data"]["topic"]["comments"][0]["attachments"][0]["id"], staged["id"],
        "{seen}"
    );
    assert_eq!(w.get(HOSPITAL_DOCTOR, &url).await.0, StatusCode::OK);

    // The nurse is in the group but not in the scope: neither topic nor file exists for her.
    let hidden = w.topic(NURSE, &topic).await;
    assert_eq!(error_codes(&hidden), ["NOT_FOUND"]);
    for path in [
        url.clone(),
        format!("{url}/preview"),
        format!("{url}/thumb"),
    ] {
        let (status, _, body) = w.get(NURSE, &path).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{path}");
        let body: Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(refusal(&body).0, "NOT_FOUND");
    }
}

#[tokio::test]
async fn only_the_uploader_or_an_owner_deletes_a_file() {
    let w = World::new().await;
    let file = w
        .uploaded(
            NURSE,
            &w.shared("care_plan"),
            "ケアプラン.txt",
            "第2表".as_bytes(),
        )
        .await;
    let delete = "mutation($id: ID!) { deleteFile(id: $id) }";
    let vars = json!({"id": file["id"]});
    for who in [PHARMACIST, OTHER_NURSE, ADMIN] {
        let r = w.gql(who, delete, vars.clone()).await;
        assert_eq!(error_codes(&r), ["NOT_FOUND"], "{who}: {r}");
    }
    assert_eq!(
        w.group_files(NURSE, Some("CARE_PLAN")).await["data"]["groupFiles"][0]["id"],
        file["id"]
    );
    // An owner of the group may.
    let d = w.ok(CLINIC_DOCTOR, delete, vars.clone()).await;
    assert_eq!(d["deleteFile"], true);
    assert_eq!(
        w.group_files(NURSE, None).await["data"]["groupFiles"],
        json!([])
    );
    assert_eq!(
        w.get(NURSE, file["url"].as_str().unwrap()).await.0,
        StatusCode::NOT_FOUND
    );
    let again = w.gql(NURSE, delete, vars).await;
    assert_eq!(error_codes(&again), ["NOT_FOUND"]);

    // Its uploader may too.
    let own = w
        .uploaded(NURSE, &w.shared("other"), "メモ.txt", b"memo")
        .await;
    let d = w.ok(NURSE, delete, json!({"id": own["id"]})).await;
    assert_eq!(d["deleteFile"], true);
}

#[tokio::test]
async fn an_html_page_named_like_a_photo_is_refused_as_active_content() {
    let w = World::new().await;
    let before = w.kept(None).await;
    let page = b"<!DOCTYPE html><html><body><script>fetch('/graphql')</script></body></html>";
    for path in [w.shared("image"), w.attachments()] {
        let (status, body) = w.upload(NURSE, &path, "x.jpg", page).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
        let (code, reasons) = refusal(&body);
        assert_eq!(code, "INVALID_INPUT");
        assert_eq!(reasons, ["FILE_ACTIVE_CONTENT"]);
    }
    let (status, body) = w.upload(NURSE, &w.shared("x-ray"), "x.jpg", b"x").await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(body["errors"][0]["extensions"]["field"], "kind");
    let (status, body) = w.upload(NURSE, &w.shared("other"), "empty.txt", b"").await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(refusal(&body).0, "INVALID_INPUT");
    assert_eq!(w.kept(None).await, before);
}

/// A body of `total` bytes that counts what the server pulled of it.
fn counted_body(total: usize, pulled: Arc<AtomicUsize>) -> Body {
    let chunk = vec![b'x'; 64 * 1024];
    let stream = futures_util::stream::iter((0..total / chunk.len()).map(move |_| {
        pulled.fetch_add(chunk.len(), Ordering::Relaxed);
        Ok::<_, std::io::Error>(chunk.clone())
    }));
    Body::from_stream(stream)
}

#[tokio::test]
async fn an_oversized_body_is_stopped_while_it_arrives() {
    let app = TestApp::demo_with_config(test_config(&[("MUSUBI_FILE_MAX_MB", "1")])).await;
    let w = World::with(app).await;
    let before = w.kept(None).await;
    const SENT: usize = 16 * 1024 * 1024;
    let pulled = Arc::new(AtomicUsize::new(0));
    let req = Request::post(w.shared("other"))
        .header("authorization", format!("Bearer {}", w.tokens[NURSE]))
        .header("x-file-name", encode("大きな.txt"))
        .body(counted_body(SENT, pulled.clone()))
        .unwrap();
    let (status, body) = w.answer(req).await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(refusal(&body).0, "FILE_TOO_LARGE");
    let read = pulled.load(Ordering::Relaxed);
    assert!(
        read <= 1024 * 1024 + 128 * 1024,
        "read {read} bytes of {SENT}"
    );

    // A length announced too large: refused before any byte is read.
    let pulled = Arc::new(AtomicUsize::new(0));
    let req = Request::post(w.attachments())
        .header("authorization", format!("Bearer {}", w.tokens[NURSE]))
        .header(CONTENT_LENGTH, SENT)
        .body(counted_body(SENT, pulled.clone()))
        .unwrap();
    let (status, body) = w.answer(req).await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(refusal(&body).0, "FILE_TOO_LARGE");
    assert_eq!(pulled.load(Ordering::Relaxed), 0);
    assert_eq!(w.kept(None).await, before);
}

#[tokio::test]
async fn twenty_uploads_at_once_by_one_person_end_in_files_or_clear_errors() {
    let w = World::new().await;
    let shared = w.shared("image");
    let staged = w.attachments();
    let uploads = (0..20u32).map(|i| {
        let path = if i % 2 == 0 { &shared } else { &staged };
        let bytes = photos::jpeg(24 + i, 24, 1, true);
        let w = &w;
        async move { w.upload(NURSE, path, &format!("写真{i}.jpg"), &bytes).await }
    });
    let answers = futures_util::future::join_all(uploads).await;
    let mut made = 0;
    for (status, body) in &answers {
        if *status == StatusCode::CREATED {
            assert!(body["file"]["id"].is_string(), "{body}");
            made += 1;
        } else {
            assert!(
                status.is_client_error() || *status == StatusCode::SERVICE_UNAVAILABLE,
                "{status}: {body}"
            );
            let (code, _) = refusal(body);
            assert!(
                ["RATE_LIMITED", "OVERLOADED", "FILE_STORE_UNAVAILABLE"].contains(&code.as_str()),
                "{status}: {body}"
            );
        }
    }
    assert_eq!(w.kept(Some(NURSE)).await, made);
    assert!(made > 0, "{answers:?}");
}
