//! The file store as the server opens it: the embedded store over `<data-dir>/files` when none
//! is configured (files written through it are real files there), readiness that says so
//! while the store does not answer (and stays in service), and a store in another process (`musubi file-store`, signatures
//! checked) that Musubi writes to over S3 and that may die mid-work.

use axum::body::Body;
use axum::http::{Request, StatusCode};
use musubi_domain::operator::Operator;
use musubi_test_support::{test_config, TestDb};
use tower::ServiceExt as _;

async fn ready(router: &axum::Router) -> (StatusCode, String) {
    let resp = router
        .clone()
        .oneshot(Request::get("/readyz").body(Body::empty()).unwrap())
        .await
        .unwrap();
    let status = resp.status();
    let body = axum::body::to_bytes(resp.into_body(), 1 << 16)
        .await
        .unwrap();
    (status, String::from_utf8_lossy(&body).into_owned())
}

#[tokio::test]
async fn the_embedded_store_keeps_files_under_the_data_directory_and_readiness_watches_it() {
    let data = tempfile::tempdir().unwrap();
    let data_dir = data.path().to_str().unwrap();
    let config = test_config(&[("MUSUBI_DATA_DIR", data_dir)]);
    let files = musubi::open_files(&config).await.unwrap();
    files
        .store
        .put_bytes("a/probe/1", bytes::Bytes::from_static(b"x"), "text/plain")
        .await
        .unwrap();
    assert!(data
        .path()
        .join("files")
        .join("musubi")
        .join("a/probe/1")
        .is_file());

    let t = TestDb::new().await;
    let services = musubi::services(&config, t.db.clone()).await.unwrap();
    let operator = Operator::new(services, t.db.clone());
    let router = musubi::app(&config, &operator).layer(axum::Extension(files.store.clone()));
    assert_eq!(ready(&router).await, (StatusCode::OK, "ready".to_owned()));

    // A store that does not answer (here: one configured at a closed port) is not ready.
    let closed = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = closed.local_addr().unwrap().port();
    drop(closed);
    let elsewhere = test_config(&[
        ("MUSUBI_DATA_DIR", data_dir),
        ("MUSUBI_S3_ENDPOINT", &format!("http://127.0.0.1:{port}")),
        ("MUSUBI_S3_ACCESS_KEY_ID", "musubi"),
        ("MUSUBI_S3_SECRET_ACCESS_KEY", "not-a-real-secret"),
    ]);
    // Starting is not refused (the store may come up later)…
    let away = musubi::open_files(&elsewhere).await.unwrap();
    let router = musubi::app(&config, &operator).layer(axum::Extension(away.store.clone()));
    // …and the server stays in service (pages and posts work; every replica shares the
    // store, so taking them out would stop everything), saying what is wrong.
    let (status, body) = ready(&router).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        body,
        "ready; the file store is unavailable (uploads and downloads fail)"
    );
}

/// `musubi file-store` in its own process, on a free port, with `key`/`secret`.
struct StoreProcess {
    child: std::process::Child,
    endpoint: String,
}

impl StoreProcess {
    async fn start(data: &std::path::Path, key: &str, secret: &str) -> Self {
        let port = {
            let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            l.local_addr().unwrap().port()
        };
        let child = std::process::Command::new(crate::MUSUBI_BIN)
            .args(["file-store", "--listen", &format!("127.0.0.1:{port}")])
            .arg("--data-dir")
            .arg(data)
            .env_remove("DATABASE_URL")
            .env_remove("MUSUBI_CONFIG")
            .env_remove("MUSUBI_S3_ENDPOINT")
            .env("MUSUBI_S3_ACCESS_KEY_ID", key)
            .env("MUSUBI_S3_SECRET_ACCESS_KEY", secret)
            .env("MUSUBI_LOG", "warn")
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .spawn()
            .unwrap();
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
        while tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .is_err()
        {
            assert!(
                std::time::Instant::now() < deadline,
                "the store never listened"
            );
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
        Self {
            child,
            endpoint: format!("http://127.0.0.1:{port}"),
        }
    }
}

impl Drop for StoreProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[tokio::test]
async fn musubi_keeps_files_in_a_store_running_in_another_process() {
    use musubi_test_support::demo::{HOST, NURSE, PHARMACIST};
    use musubi_test_support::photos;
    use musubi_test_support::web::Browser;
    use musubi_test_support::TestApp;

    let data = tempfile::tempdir().unwrap();
    let (key, secret) = ("musubi-test", "a-secret-only-these-two-know");
    let mut store = StoreProcess::start(data.path(), key, secret).await;
    let config = test_config(&[
        ("MUSUBI_S3_ENDPOINT", store.endpoint.as_str()),
        ("MUSUBI_S3_ACCESS_KEY_ID", key),
        ("MUSUBI_S3_SECRET_ACCESS_KEY", secret),
    ]);
    let app = TestApp::demo_with_config(config).await;
    assert!(
        !app.files.is_embedded(),
        "the configured store, not one in process"
    );
    let group: uuid::Uuid =
        sqlx::query_scalar("SELECT id FROM groups WHERE name = '山田 太郎さん（85歳・在宅酸素）'")
            .fetch_one(&mut *app.tenant_tx(HOST).await)
            .await
            .unwrap();
    let files = format!("/a/{HOST}/g/{group}/files");

    // Shared through the web, written by the other process under its directory, read back.
    let mut nurse = Browser::signed_in(&app, NURSE).await;
    let token = nurse.get(&app, &files).await.csrf();
    let res = nurse
        .post_multipart(
            &app,
            &format!("{files}/upload"),
            &[
                ("csrf", None, token.as_bytes()),
                ("kind", None, b"image"),
                ("file", Some("褥瘡.jpg"), &photos::jpeg(32, 32, 1, true)),
            ],
        )
        .await;
    assert_eq!(res.status, StatusCode::SEE_OTHER, "{}", res.body);
    let (id, key_of): (uuid::Uuid, String) =
        sqlx::query_as("SELECT id, object_key FROM files WHERE name = '褥瘡.jpg'")
            .fetch_one(&mut *app.tenant_tx(HOST).await)
            .await
            .unwrap();
    assert!(data.path().join("files/musubi").join(&key_of).is_file());
    let mut pharmacist = Browser::signed_in(&app, PHARMACIST).await;
    let (status, _, body) = pharmacist
        .fetch(&app, &format!("/a/{HOST}/files/{id}"))
        .await;
    assert_eq!(status, StatusCode::OK);
    assert!(!photos::has_exif_or_gps(&body));
    assert_eq!(photos::size(&body), (32, 32));

    // Signatures are checked: a client with the wrong secret is refused.
    let wrong = musubi_storage::Store::connect(&musubi_storage::Settings {
        endpoint: store.endpoint.clone(),
        region: "us-east-1".into(),
        bucket: "musubi".into(),
        path_style: true,
        credentials: Some((key.into(), musubi_config::Secret::new("guessed"))),
    })
    .await;
    assert!(wrong.get(&key_of).await.is_err());
    assert!(wrong
        .put_bytes("a/x/1", bytes::Bytes::from_static(b"x"), "text/plain")
        .await
        .is_err());

    // The store dies: an upload says so in Japanese and leaves no file behind.
    store.child.kill().unwrap();
    store.child.wait().unwrap();
    let token = nurse.get(&app, &files).await.csrf();
    let res = nurse
        .post_multipart(
            &app,
            &format!("{files}/upload"),
            &[
                ("csrf", None, token.as_bytes()),
                ("kind", None, b"other"),
                ("file", Some("メモ.txt"), "訪問時のメモ".as_bytes()),
            ],
        )
        .await;
    assert_eq!(res.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", res.body);
    assert!(res.body.contains("ファイルを保存できませんでした"));
    let kept: i64 = sqlx::query_scalar("SELECT count(*) FROM files")
        .fetch_one(&mut *app.tenant_tx(HOST).await)
        .await
        .unwrap();
    assert_eq!(kept, 1);

    // Meanwhile everything but files works: pages and replies (readiness stays in service too,
    // see the test above).
    for page in ["/".to_owned(), format!("/a/{HOST}/g/{group}")] {
        assert_eq!(
            nurse.get(&app, &page).await.status,
            StatusCode::OK,
            "{page}"
        );
    }
    let topic: uuid::Uuid = sqlx::query_scalar("SELECT id FROM topics WHERE group_id = $1 LIMIT 1")
        .bind(group)
        .fetch_one(&mut *app.tenant_tx(HOST).await)
        .await
        .unwrap();
    let token = app.demo_token(NURSE).await;
    let mut posted = 0;
    for i in 0..5 {
        let r = app
            .gql(
                "mutation($t: ID!, $b: String!) { postComment(topicId: $t, body: $b) }",
                serde_json::json!({"t": topic, "b": format!("ファイルの置き場が止まっている間の報告 {i}")}),
                Some(&token),
                Some(HOST),
            )
            .await;
        assert!(r["errors"].is_null(), "{r}");
        posted += 1;
    }
    // Nothing dangles: no file row without its object; the refused upload's intent (if the
    // store went away mid-write) is the sweeper's to clear once the store is back.
    let (rows, intents): (i64, i64) = sqlx::query_as(
        "SELECT (SELECT count(*) FROM files), \
                (SELECT count(*) FROM file_uploads)",
    )
    .fetch_one(&mut *app.tenant_tx(HOST).await)
    .await
    .unwrap();
    println!(
        "store stopped: {posted} replies posted, pages served, uploads refused; \
         files {rows}, intents left for the sweeper {intents}"
    );
    assert_eq!(rows, 1);
}
