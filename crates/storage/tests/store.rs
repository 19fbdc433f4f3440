//! The client against a real S3-compatible server (the embedded s3s-fs store, signatures
//! checked): write, read, presigned reads (a tampered signature refused), delete, and the
//! store going away.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code: fail loudly

use musubi_storage::embedded::Embedded;
use musubi_storage::{Store, StoreError};
use std::time::Duration;

async fn store() -> (tempfile::TempDir, Embedded, Store) {
    let dir = tempfile::tempdir().unwrap();
    let embedded = Embedded::start(&dir.path().join("files")).await.unwrap();
    let store = Store::connect(embedded.settings()).await;
    store.ensure_bucket().await.unwrap();
    // Twice is fine (several replicas start at once).
    store.ensure_bucket().await.unwrap();
    (dir, embedded, store)
}

async fn read_all(store: &Store, key: &str) -> Vec<u8> {
    let d = store.get(key).await.unwrap();
    d.body.collect().await.unwrap().into_bytes().to_vec()
}

#[tokio::test]
async fn objects_are_written_read_and_deleted() {
    let (dir, _embedded, store) = store().await;
    let key = "a/0190aaaa/0190bbbb";
    store
        .put_bytes(key, bytes::Bytes::from_static(b"hello"), "text/plain")
        .await
        .unwrap();
    assert_eq!(read_all(&store, key).await, b"hello");
    assert!(store.exists(key).await.unwrap());

    // From a file on disk (an upload spooled first), a megabyte and a bit.
    let path = dir.path().join("spool");
    let big: Vec<u8> = (0..1_100_000u32).map(|i| (i % 251) as u8).collect();
    tokio::fs::write(&path, &big).await.unwrap();
    store
        .put_path("a/0190aaaa/0190cccc", &path, "application/octet-stream")
        .await
        .unwrap();
    let back = store.get("a/0190aaaa/0190cccc").await.unwrap();
    assert_eq!(back.length, Some(big.len() as u64));
    assert_eq!(back.body.collect().await.unwrap().into_bytes(), big);

    store.delete(key).await.unwrap();
    assert!(!store.exists(key).await.unwrap());
    assert!(matches!(store.get(key).await, Err(StoreError::NotFound)));
    // Deleting again is not an error.
    store.delete(key).await.unwrap();
}

#[tokio::test]
async fn a_presigned_read_works_until_its_signature_is_tampered_with() {
    let (_dir, _embedded, store) = store().await;
    let key = "a/0190aaaa/0190dddd";
    store
        .put_bytes(
            key,
            bytes::Bytes::from_static(b"%PDF-1.4 test"),
            "application/pdf",
        )
        .await
        .unwrap();
    let url = store
        .presigned_get(
            key,
            Duration::from_secs(60),
            "attachment; filename*=UTF-8''%E6%A4%9C%E6%9F%BB.pdf",
            "application/pdf",
        )
        .await
        .unwrap();
    let client = reqwest::Client::new();
    let ok = client.get(&url).send().await.unwrap();
    assert_eq!(ok.status(), 200);
    assert_eq!(
        ok.headers()["content-disposition"],
        "attachment; filename*=UTF-8''%E6%A4%9C%E6%9F%BB.pdf"
    );
    assert_eq!(ok.bytes().await.unwrap().as_ref(), b"%PDF-1.4 test");

    // One character of the signature changed, or another key asked for with it: refused.
    let at = url.find("X-Amz-Signature=").unwrap() + "X-Amz-Signature=".len();
    let mut tampered = url.clone().into_bytes();
    tampered[at] = if tampered[at] == b'0' { b'1' } else { b'0' };
    let tampered = String::from_utf8(tampered).unwrap();
    assert_eq!(client.get(&tampered).send().await.unwrap().status(), 403);
    let other = url.replace("0190dddd", "0190eeee");
    assert_eq!(client.get(&other).send().await.unwrap().status(), 403);
    // Unsigned: refused too.
    let bare = url.split('?').next().unwrap();
    assert_eq!(client.get(bare).send().await.unwrap().status(), 403);
}

#[tokio::test]
async fn a_store_that_went_away_is_reported_as_unavailable() {
    let (_dir, embedded, store) = store().await;
    embedded.stop();
    tokio::time::sleep(Duration::from_millis(50)).await;
    let e = store
        .put_bytes("a/x/y", bytes::Bytes::from_static(b"x"), "text/plain")
        .await
        .unwrap_err();
    assert!(matches!(e, StoreError::Unavailable(_)), "{e:?}");
    assert!(matches!(
        store.get("a/x/y").await,
        Err(StoreError::Unavailable(_))
    ));
}
