//! The file store as the server opens it: the embedded store over `<data-dir>/files` when none
//! is configured (files written through it are real files there), and readiness that fails
//! while the store does not answer.

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
    // …but the server says it is not ready to serve.
    let (status, body) = ready(&router).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(body, "not ready: the file store is unavailable");
}
