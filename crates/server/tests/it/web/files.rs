//! Files on the web: the group's 「共有ファイル」 page and its multipart upload, attachments
//! staged for a reply (JSON for the page's script), and downloads streamed with headers that
//! keep anything uploaded from running in Musubi's origin. Refusals are said in Japanese and
//! keep nothing; an oversized upload is stopped while it arrives, not read whole first.

use axum::body::Body;
use http::header::{CONTENT_DISPOSITION, CONTENT_SECURITY_POLICY, CONTENT_TYPE};
use http::{Request, StatusCode};
use musubi_test_support::demo::{ADMIN, HOST, NURSE, OTHER_NURSE, PHARMACIST};
use musubi_test_support::photos;
use musubi_test_support::web::{Browser, MULTIPART_BOUNDARY};
use musubi_test_support::{test_config, TestApp};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use uuid::Uuid;

const YAMADA: &str = "山田 太郎さん（85歳・在宅酸素）";

async fn group_id(app: &TestApp, name: &str) -> Uuid {
    sqlx::query_scalar("SELECT id FROM groups WHERE name = $1")
        .bind(name)
        .fetch_one(&mut *app.tenant_tx(HOST).await)
        .await
        .unwrap()
}

async fn file_id(app: &TestApp, name: &str) -> Option<Uuid> {
    sqlx::query_scalar("SELECT id FROM files WHERE name = $1")
        .bind(name)
        .fetch_optional(&mut *app.tenant_tx(HOST).await)
        .await
        .unwrap()
}

async fn files_kept(app: &TestApp) -> i64 {
    sqlx::query_scalar("SELECT count(*) FROM files")
        .fetch_one(&mut *app.tenant_tx(HOST).await)
        .await
        .unwrap()
}

fn files_page(group: Uuid) -> String {
    format!("/a/{HOST}/g/{group}/files")
}

/// `filename*=UTF-8''…` of a `Content-Disposition`, decoded.
fn utf8_file_name(disposition: &str) -> String {
    let encoded = disposition
        .split("filename*=UTF-8''")
        .nth(1)
        .expect("an RFC 5987 name")
        .split(';')
        .next()
        .unwrap();
    percent_encoding::percent_decode_str(encoded)
        .decode_utf8()
        .unwrap()
        .into_owned()
}

#[tokio::test]
async fn a_member_shares_a_file_and_the_others_read_it_without_it_running() {
    let app = TestApp::demo().await;
    let group = group_id(&app, YAMADA).await;
    let mut nurse = Browser::signed_in(&app, NURSE).await;
    let page = nurse.get(&app, &files_page(group)).await;
    assert_eq!(page.status, StatusCode::OK);
    assert!(page.body.contains("共有ファイル"));
    assert!(page.body.contains("まだファイルはありません"));

    let name = "診療情報提供書 11月.pdf";
    let pdf = b"%PDF-1.4\n% a letter from the hospital\n";
    let res = nurse
        .post_multipart(
            &app,
            &format!("{}/upload", files_page(group)),
            &[
                ("csrf", None, page.csrf().as_bytes()),
                ("kind", None, b"referral"),
                ("file", Some(name), pdf),
            ],
        )
        .await;
    assert_eq!(res.status, StatusCode::SEE_OTHER, "{}", res.body);
    assert!(res.location().ends_with("/files?done=file_shared"));
    let listed = nurse.get(&app, res.location()).await;
    assert!(listed.body.contains("ファイルを共有しました"));
    assert!(listed.body.contains(name));
    assert!(listed.body.contains("情報提供書"));
    assert!(listed.body.contains("青木 さくら"), "who shared it");

    // A colleague in the group opens it: the same bytes, the Japanese name intact, shown
    // inline (a PDF) but never sniffed, and saved under its name when asked.
    let id = file_id(&app, name).await.expect("kept");
    let href = format!("/a/{HOST}/files/{id}");
    let mut pharmacist = Browser::signed_in(&app, PHARMACIST).await;
    let (status, headers, body) = pharmacist.fetch(&app, &href).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body.as_ref(), pdf);
    assert_eq!(headers[CONTENT_TYPE], "application/pdf");
    assert_eq!(headers["x-content-type-options"], "nosniff");
    assert!(headers[CONTENT_SECURITY_POLICY]
        .to_str()
        .unwrap()
        .contains("default-src 'none'"));
    let disposition = headers[CONTENT_DISPOSITION].to_str().unwrap();
    assert!(disposition.starts_with("inline"), "{disposition}");
    assert_eq!(utf8_file_name(disposition), name);
    let (_, headers, _) = pharmacist.fetch(&app, &format!("{href}?download=1")).await;
    let disposition = headers[CONTENT_DISPOSITION].to_str().unwrap();
    assert!(disposition.starts_with("attachment"), "{disposition}");
    assert_eq!(utf8_file_name(disposition), name);

    // A photo: a thumbnail and a preview, sandboxed, without the position it was taken at.
    let page = nurse.get(&app, &files_page(group)).await;
    let res = nurse
        .post_multipart(
            &app,
            &format!("{}/upload", files_page(group)),
            &[
                ("csrf", None, page.csrf().as_bytes()),
                ("kind", None, b"image"),
                ("file", Some("褥瘡.jpg"), &photos::jpeg(64, 32, 1, true)),
            ],
        )
        .await;
    assert_eq!(res.status, StatusCode::SEE_OTHER, "{}", res.body);
    let photo = file_id(&app, "褥瘡.jpg").await.unwrap();
    let listed = pharmacist.get(&app, &files_page(group)).await;
    assert!(listed
        .body
        .contains(&format!("/a/{HOST}/files/{photo}/thumb")));
    for variant in ["", "/preview", "/thumb"] {
        let (status, headers, body) = pharmacist
            .fetch(&app, &format!("/a/{HOST}/files/{photo}{variant}"))
            .await;
        assert_eq!(status, StatusCode::OK, "{variant}");
        assert_eq!(headers[CONTENT_TYPE], "image/jpeg");
        assert!(headers[CONTENT_SECURITY_POLICY]
            .to_str()
            .unwrap()
            .contains("sandbox"));
        assert!(!photos::has_exif_or_gps(&body), "{variant}");
    }

    // Not in the group — the association's administrator, another association's nurse — or
    // an id nobody has: the 404 page, for the file, its preview and the list alike.
    for email in [ADMIN, OTHER_NURSE] {
        let mut b = Browser::signed_in(&app, email).await;
        for path in [
            href.clone(),
            format!("/a/{HOST}/files/{photo}/thumb"),
            files_page(group),
        ] {
            let (status, _, body) = b.fetch(&app, &path).await;
            assert_eq!(status, StatusCode::NOT_FOUND, "{email} {path}");
            assert!(String::from_utf8_lossy(&body).contains("ページが見つかりません"));
        }
    }
    let (status, _, _) = pharmacist
        .fetch(&app, &format!("/a/{HOST}/files/{}", Uuid::new_v4()))
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);

    // Its uploader deletes it: gone from the list and from its address.
    let page = nurse.get(&app, &files_page(group)).await;
    let res = nurse
        .post(
            &app,
            &format!("{href}/delete"),
            &[("csrf", page.csrf().as_str())],
        )
        .await;
    assert_eq!(res.status, StatusCode::SEE_OTHER, "{}", res.body);
    let (status, _, _) = pharmacist.fetch(&app, &href).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn refused_uploads_say_why_in_japanese_and_keep_nothing() {
    let app = TestApp::demo().await;
    let group = group_id(&app, YAMADA).await;
    let mut nurse = Browser::signed_in(&app, NURSE).await;
    let upload = format!("{}/upload", files_page(group));
    let token = nurse.get(&app, &files_page(group)).await.csrf();
    let cases: [(&str, &[u8], &str); 3] = [
        (
            "photo.jpg",
            b"<html><script>fetch('/me/sessions')</script></html>",
            "開くと動くもの",
        ),
        ("memo.jpg", b"plain words, not a photo", "中身と名前"),
        (
            "tool.exe",
            b"MZ\x90\x00\x03\x00",
            "この種類のファイルは共有できません",
        ),
    ];
    for (name, bytes, says) in cases {
        let res = nurse
            .post_multipart(
                &app,
                &upload,
                &[
                    ("csrf", None, token.as_bytes()),
                    ("kind", None, b"image"),
                    ("file", Some(name), bytes),
                ],
            )
            .await;
        assert_eq!(res.status, StatusCode::UNPROCESSABLE_ENTITY, "{name}");
        assert!(res.body.contains(says), "{name}: {}", res.body);
        assert!(res.body.contains("role=\"alert\""));
    }
    // No file chosen.
    let res = nurse
        .post_multipart(
            &app,
            &upload,
            &[("csrf", None, token.as_bytes()), ("file", Some(""), b"")],
        )
        .await;
    assert_eq!(res.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(res.body.contains("ファイルを選んでください"));
    // Without the token (another site's form): refused before the file is read.
    let res = nurse
        .post_multipart(&app, &upload, &[("file", Some("a.pdf"), b"%PDF-1.4")])
        .await;
    assert_eq!(res.status, StatusCode::FORBIDDEN);
    assert_eq!(files_kept(&app).await, 0);
}

/// A multipart body whose file part never ends by itself: `total` bytes, produced only as the
/// server reads; `pulled` counts what it read.
fn endless_upload(token: &str, total: usize, pulled: Arc<AtomicUsize>) -> Body {
    let head = format!(
        "--{MULTIPART_BOUNDARY}\r\nContent-Disposition: form-data; name=\"csrf\"\r\n\r\n{token}\r\n\
         --{MULTIPART_BOUNDARY}\r\nContent-Disposition: form-data; name=\"file\"; \
         filename=\"big.pdf\"\r\nContent-Type: application/pdf\r\n\r\n%PDF-1.4\n"
    );
    let chunk = vec![b'x'; 64 * 1024];
    let parts = total / chunk.len();
    let stream = futures_util::stream::iter(
        std::iter::once(head.into_bytes())
            .chain((0..parts).map(move |_| chunk.clone()))
            .chain(std::iter::once(
                format!("\r\n--{MULTIPART_BOUNDARY}--\r\n").into_bytes(),
            ))
            .map(move |c| {
                pulled.fetch_add(c.len(), Ordering::Relaxed);
                Ok::<_, std::io::Error>(c)
            }),
    );
    Body::from_stream(stream)
}

#[tokio::test]
async fn an_oversized_upload_is_stopped_while_it_arrives() {
    let app = TestApp::demo_with_config(test_config(&[("MUSUBI_FILE_MAX_MB", "1")])).await;
    let group = group_id(&app, YAMADA).await;
    let mut nurse = Browser::signed_in(&app, NURSE).await;
    let token = nurse.get(&app, &files_page(group)).await.csrf();
    const SENT: usize = 64 * 1024 * 1024;
    for (path, json) in [
        (format!("{}/upload", files_page(group)), false),
        (format!("{}/stage", files_page(group)), true),
    ] {
        let pulled = Arc::new(AtomicUsize::new(0));
        let req = Request::post(&path)
            .header("origin", format!("http://{}", nurse.host))
            .header(
                "content-type",
                format!("multipart/form-data; boundary={MULTIPART_BOUNDARY}"),
            );
        let res = nurse
            .send(&app, req, endless_upload(&token, SENT, pulled.clone()))
            .await;
        let read = pulled.load(Ordering::Relaxed);
        // Read up to the limit (1 MB) and a little beyond, never the 64 MB sent.
        assert!(read < 4 * 1024 * 1024, "{path}: read {read} bytes");
        if json {
            assert_eq!(res.status, StatusCode::PAYLOAD_TOO_LARGE);
            assert_eq!(res.json()["code"], "FILE_TOO_LARGE");
            assert!(res.json()["message"].as_str().unwrap().contains("1 MB"));
        } else {
            assert_eq!(res.status, StatusCode::UNPROCESSABLE_ENTITY);
            assert!(res.body.contains("ファイルが大きすぎます"), "{}", res.body);
        }
    }
    assert_eq!(files_kept(&app).await, 0);
}

#[tokio::test]
async fn an_attachment_is_staged_for_its_uploader_and_answered_as_json() {
    let app = TestApp::demo().await;
    let group = group_id(&app, YAMADA).await;
    let mut nurse = Browser::signed_in(&app, NURSE).await;
    let token = nurse.get(&app, &files_page(group)).await.csrf();
    let stage = format!("{}/stage", files_page(group));
    let res = nurse
        .post_multipart(
            &app,
            &stage,
            &[
                ("csrf", None, token.as_bytes()),
                ("file", Some("創部.jpg"), &photos::jpeg(40, 30, 1, true)),
            ],
        )
        .await;
    assert_eq!(res.status, StatusCode::OK, "{}", res.body);
    let json = res.json();
    let id = json["id"].as_str().unwrap().to_owned();
    assert_eq!(json["name"], "創部.jpg");
    assert_eq!(json["contentType"], "image/jpeg");
    let thumb = json["thumbnail"].as_str().unwrap().to_owned();
    assert_eq!(thumb, format!("/a/{HOST}/files/{id}/thumb"));
    let (status, _, _) = nurse.fetch(&app, &thumb).await;
    assert_eq!(status, StatusCode::OK, "its uploader sees it");
    // Not posted yet: nobody else, and not among the shared files.
    let mut pharmacist = Browser::signed_in(&app, PHARMACIST).await;
    let (status, _, _) = pharmacist.fetch(&app, &thumb).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert!(!pharmacist
        .get(&app, &files_page(group))
        .await
        .body
        .contains(&id));

    // Refusals are JSON with a stable code and a Japanese message.
    let res = nurse
        .post_multipart(
            &app,
            &stage,
            &[
                ("csrf", None, token.as_bytes()),
                ("file", Some("page.jpg"), b"<!DOCTYPE html><h1>x</h1>"),
            ],
        )
        .await;
    assert_eq!(res.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(res.json()["code"], "INVALID_INPUT");
    assert!(res.json()["message"]
        .as_str()
        .unwrap()
        .contains("開くと動くもの"));
    // Another association's nurse cannot stage into the group.
    let mut other = Browser::signed_in(&app, OTHER_NURSE).await;
    let token = other.get(&app, "/groups").await.csrf();
    let res = other
        .post_multipart(
            &app,
            &stage,
            &[
                ("csrf", None, token.as_bytes()),
                ("file", Some("a.jpg"), &photos::jpeg(8, 8, 1, false)),
            ],
        )
        .await;
    assert_eq!(res.status, StatusCode::NOT_FOUND);
    assert_eq!(res.json()["code"], "NOT_FOUND");
}

#[tokio::test]
async fn the_console_shows_what_the_association_keeps_against_its_quota() {
    let app = TestApp::demo_with_config(test_config(&[("MUSUBI_FILE_QUOTA_GB", "1")])).await;
    let group = group_id(&app, YAMADA).await;
    let mut admin = Browser::signed_in(&app, ADMIN).await;
    let console = format!("/a/{HOST}/console");
    let page = admin.get(&app, &console).await;
    assert!(
        page.body.contains("0件・1 KB（上限 1 GB の 0.0%）"),
        "{}",
        page.body
    );

    let mut nurse = Browser::signed_in(&app, NURSE).await;
    let token = nurse.get(&app, &files_page(group)).await.csrf();
    let res = nurse
        .post_multipart(
            &app,
            &format!("{}/upload", files_page(group)),
            &[
                ("csrf", None, token.as_bytes()),
                ("kind", None, b"care_plan"),
                ("file", Some("ケアプラン.txt"), &vec![b'a'; 300 * 1024]),
            ],
        )
        .await;
    assert_eq!(res.status, StatusCode::SEE_OTHER, "{}", res.body);
    let page = admin.get(&app, &console).await;
    assert!(
        page.body.contains("1件・300 KB（上限 1 GB の 0.0%）"),
        "{}",
        page.body
    );
    // Members do not see the console at all.
    assert!(nurse.get(&app, &console).await.is_not_found());
}
