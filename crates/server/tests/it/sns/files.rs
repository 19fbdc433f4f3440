//! A group's shared files through the services, against the embedded S3-compatible store the
//! test app runs: kept and read back by members only, refused by content (an HTML page named
//! `.jpg`), within the size limit, nothing left behind when the store fails midway, and the
//! sweeper removing abandoned and deleted objects.

use musubi_domain::audit::RequestMeta;
use musubi_domain::files::{FileKind, Spooled, Variant};
use musubi_domain::sessions::Viewer;
use musubi_domain::{Actor, ErrorCode, Tenant};
use musubi_test_support::demo::{
    ADMIN, CLINIC_DOCTOR, HOST, NURSE, OTHER_ADMIN, OTHER_NURSE, PHARMACIST,
};
use musubi_test_support::{photos, TestApp};
use sha2::Digest as _;
use uuid::Uuid;

const YAMADA: &str = "山田 太郎さん（85歳・在宅酸素）";

struct World {
    app: TestApp,
    tenant: Tenant,
    meta: RequestMeta,
    dir: tempfile::TempDir,
    group: Uuid,
}

impl World {
    async fn new() -> Self {
        let app = TestApp::demo().await;
        let tenant = app.services().resolve_tenant(HOST).await.unwrap();
        let group: Uuid = sqlx::query_scalar("SELECT id FROM groups WHERE name = $1")
            .bind(YAMADA)
            .fetch_one(&mut *app.tenant_tx(HOST).await)
            .await
            .unwrap();
        Self {
            app,
            tenant,
            meta: RequestMeta::new("192.0.2.1", "test"),
            dir: tempfile::tempdir().unwrap(),
            group,
        }
    }

    async fn viewer(&self, email: &str) -> Viewer {
        self.app.operator().act_as(email).await.unwrap()
    }

    /// Writes `bytes` to a spool file as an entry point would, and shares it as `who`.
    async fn upload(
        &self,
        who: &Viewer,
        name: &str,
        bytes: &[u8],
        kind: FileKind,
    ) -> Result<musubi_db::files::FileRow, musubi_domain::AppError> {
        let path = self.dir.path().join(Uuid::new_v4().to_string());
        tokio::fs::write(&path, bytes).await.unwrap();
        let head = &bytes[..bytes.len().min(4096)];
        let spooled = Spooled {
            path: &path,
            name,
            size: bytes.len() as u64,
            sha256: sha2::Sha256::digest(bytes).into(),
            head,
        };
        let actor = Actor::new(who, &self.tenant, &self.meta);
        self.app
            .services()
            .upload_group_file(&actor, self.group.into(), &spooled, kind)
            .await
    }

    /// Uploads `bytes` as an attachment for a comment `who` is writing.
    async fn stage(
        &self,
        who: &Viewer,
        name: &str,
        bytes: &[u8],
    ) -> Result<musubi_db::files::FileRow, musubi_domain::AppError> {
        let path = self.dir.path().join(Uuid::new_v4().to_string());
        tokio::fs::write(&path, bytes).await.unwrap();
        let spooled = Spooled {
            path: &path,
            name,
            size: bytes.len() as u64,
            sha256: sha2::Sha256::digest(bytes).into(),
            head: &bytes[..bytes.len().min(4096)],
        };
        let actor = Actor::new(who, &self.tenant, &self.meta);
        self.app
            .services()
            .stage_attachment(&actor, self.group.into(), &spooled)
            .await
    }

    /// The bytes of `variant` of a file as `who` reads it.
    async fn read(
        &self,
        who: &Viewer,
        id: Uuid,
        variant: Variant,
    ) -> Result<Vec<u8>, musubi_domain::AppError> {
        let actor = Actor::new(who, &self.tenant, &self.meta);
        let (_, download) = self.app.services().open_file(&actor, id, variant).await?;
        Ok(download.body.collect().await.unwrap().into_bytes().to_vec())
    }

    async fn count(&self, sql: &str) -> i64 {
        let mut tx = self.app.db.db.tenant_tx(&self.tenant).await.unwrap();
        sqlx::query_scalar(sql).fetch_one(&mut *tx).await.unwrap()
    }
}

/// A phone's photo taken upright (no rotation), with its GPS position.
fn photo() -> Vec<u8> {
    photos::jpeg(64, 48, 1, true)
}

#[tokio::test]
async fn members_share_and_read_a_file_and_nobody_else_finds_it() {
    let w = World::new().await;
    let nurse = w.viewer(NURSE).await;
    let bytes = photo();
    let row = w
        .upload(&nurse, "褥瘡 11月5日.JPEG", &bytes, FileKind::Image)
        .await
        .unwrap();
    assert_eq!(row.name, "褥瘡 11月5日.jpg");
    assert_eq!(row.content_type, "image/jpeg");
    assert_eq!(row.uploader_name.as_deref(), Some("青木 さくら"));
    // The key says nothing about the patient or the file.
    assert!(row.object_key.starts_with("a/"), "{}", row.object_key);
    assert!(!row.object_key.contains("褥瘡"));

    // Another member lists and reads it, byte for byte.
    let pharmacist = w.viewer(PHARMACIST).await;
    let actor = Actor::new(&pharmacist, &w.tenant, &w.meta);
    let (_, listed) = w
        .app
        .services()
        .group_files(&actor, w.group.into(), None)
        .await
        .unwrap();
    assert_eq!(listed.len(), 1);
    let (_, only_images) = w
        .app
        .services()
        .group_files(&actor, w.group.into(), Some(FileKind::Prescription))
        .await
        .unwrap();
    assert!(only_images.is_empty(), "filtered by kind");
    let (opened, download) = w
        .app
        .services()
        .open_file(&actor, row.id, Variant::Original)
        .await
        .unwrap();
    assert_eq!(opened.id, row.id);
    let back = download.body.collect().await.unwrap().into_bytes();
    // Kept without its metadata (the photo is upright: its pixels are untouched).
    assert!(!photos::has_exif_or_gps(&back));
    assert_eq!(photos::size(&back), (64, 48));
    assert_eq!(row.size_bytes, back.len() as i64);

    // The association's administrator (not in the group) and people of another association:
    // the answer of a missing object, as for an id that does not exist.
    for email in [ADMIN, OTHER_ADMIN, OTHER_NURSE] {
        let v = w.viewer(email).await;
        let a = Actor::new(&v, &w.tenant, &w.meta);
        let e = w
            .app
            .services()
            .open_file(&a, row.id, Variant::Original)
            .await
            .err()
            .unwrap();
        assert_eq!(e.code, ErrorCode::NotFound, "{email}");
        let e = w
            .app
            .services()
            .group_files(&a, w.group.into(), None)
            .await
            .unwrap_err();
        assert_eq!(e.code, ErrorCode::NotFound, "{email}");
    }
    let e = w
        .app
        .services()
        .open_file(&actor, Uuid::new_v4(), Variant::Original)
        .await
        .err()
        .unwrap();
    assert_eq!(e.code, ErrorCode::NotFound);

    // Recorded: one upload and one download, neither naming the file.
    assert_eq!(
        w.count("SELECT count(*) FROM audit_log WHERE action = 'file.upload'")
            .await,
        1
    );
    assert_eq!(
        w.count("SELECT count(*) FROM audit_log WHERE action = 'file.download'")
            .await,
        1
    );
    assert_eq!(
        w.count("SELECT count(*) FROM audit_log WHERE detail::text LIKE '%褥瘡%'")
            .await,
        0
    );

    // Another member may not delete it; its uploader may, and it is gone at once.
    let e = w
        .app
        .services()
        .delete_file(&actor, row.id)
        .await
        .unwrap_err();
    assert_eq!(e.code, ErrorCode::NotFound);
    let mine = Actor::new(&nurse, &w.tenant, &w.meta);
    w.app.services().delete_file(&mine, row.id).await.unwrap();
    assert!(w
        .app
        .services()
        .group_files(&actor, w.group.into(), None)
        .await
        .unwrap()
        .1
        .is_empty());
    let e = w
        .app
        .services()
        .open_file(&mine, row.id, Variant::Original)
        .await
        .err()
        .unwrap();
    assert_eq!(e.code, ErrorCode::NotFound);
}

#[tokio::test]
async fn files_are_refused_by_what_they_are_and_by_size_and_leave_nothing() {
    let w = World::new().await;
    let nurse = w.viewer(NURSE).await;
    for (name, bytes, reason) in [
        (
            "photo.jpg",
            &b"<html><body><script>alert(document.cookie)</script>"[..],
            "FILE_ACTIVE_CONTENT",
        ),
        (
            "drawing.svg",
            b"<svg xmlns='http://www.w3.org/2000/svg'/>",
            "FILE_ACTIVE_CONTENT",
        ),
        ("notes.jpg", b"just some words", "FILE_TYPE_MISMATCH"),
        (
            "setup.exe",
            b"MZ\x90\x00\x03\x00\x00\x00",
            "FILE_TYPE_NOT_ALLOWED",
        ),
    ] {
        let e = w
            .upload(&nurse, name, bytes, FileKind::Other)
            .await
            .unwrap_err();
        assert_eq!(e.code, ErrorCode::InvalidInput, "{name}");
        assert_eq!(e.field, Some("file"), "{name}");
        assert_eq!(e.reasons, vec![reason], "{name}");
    }
    // Larger than the limit (50 MB by default): refused before anything is written.
    let path = w.dir.path().join("big");
    tokio::fs::write(&path, b"%PDF-1.7").await.unwrap();
    let actor = Actor::new(&nurse, &w.tenant, &w.meta);
    let e = w
        .app
        .services()
        .upload_group_file(
            &actor,
            w.group.into(),
            &Spooled {
                path: &path,
                name: "大きい.pdf",
                size: 51 * 1024 * 1024,
                sha256: [0; 32],
                head: b"%PDF-1.7",
            },
            FileKind::TestResult,
        )
        .await
        .unwrap_err();
    assert_eq!(e.code, ErrorCode::FileTooLarge);
    assert_eq!(w.count("SELECT count(*) FROM files").await, 0);
    assert_eq!(w.count("SELECT count(*) FROM file_uploads").await, 0);

    // Someone who is not in the group cannot share with it.
    let doctor_elsewhere = w.viewer(OTHER_NURSE).await;
    let e = w
        .upload(&doctor_elsewhere, "a.pdf", b"%PDF-1.7", FileKind::Other)
        .await
        .unwrap_err();
    assert_eq!(e.code, ErrorCode::NotFound);
}

#[tokio::test]
async fn with_the_store_gone_an_upload_fails_clearly_and_the_sweeper_cleans_up() {
    let w = World::new().await;
    let nurse = w.viewer(NURSE).await;
    let doctor = w.viewer(CLINIC_DOCTOR).await;
    // A file kept earlier, then deleted by the group's owner (not its uploader).
    let kept = w
        .upload(
            &nurse,
            "処方.pdf",
            b"%PDF-1.7 prescription",
            FileKind::Prescription,
        )
        .await
        .unwrap();
    let owner = Actor::new(&doctor, &w.tenant, &w.meta);
    w.app.services().delete_file(&owner, kept.id).await.unwrap();

    // An upload whose row never came (the server died between the object and the row).
    let orphan = "a/orphan/0190";
    w.app
        .files
        .store
        .put_bytes(orphan, bytes::Bytes::from_static(b"x"), "text/plain")
        .await
        .unwrap();
    {
        let mut tx = w.app.db.db.tenant_tx(&w.tenant).await.unwrap();
        sqlx::query(
            "INSERT INTO file_uploads (object_key, started_at) VALUES ($1, now() - interval '2 hours')",
        )
        .bind(orphan)
        .execute(&mut *tx)
        .await
        .unwrap();
        // The deleted file's retention is over.
        sqlx::query("UPDATE files SET deleted_at = now() - interval '31 days' WHERE id = $1")
            .bind(kept.id)
            .execute(&mut *tx)
            .await
            .unwrap();
        tx.commit().await.unwrap();
    }
    let removed = w.app.services().sweep_files(&w.tenant, 100).await.unwrap();
    assert_eq!(removed, 2);
    assert!(!w.app.files.store.exists(orphan).await.unwrap());
    assert!(!w.app.files.store.exists(&kept.object_key).await.unwrap());
    assert_eq!(w.count("SELECT count(*) FROM files").await, 0);
    assert_eq!(w.count("SELECT count(*) FROM file_uploads").await, 0);
    // A second round finds nothing to do.
    assert_eq!(
        w.app.services().sweep_files(&w.tenant, 100).await.unwrap(),
        0
    );

    // The store stops answering: the upload fails with its own code and leaves no row.
    w.app.files.stop_embedded();
    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    let e = w
        .upload(
            &nurse,
            "検査結果.pdf",
            b"%PDF-1.7 results",
            FileKind::TestResult,
        )
        .await
        .unwrap_err();
    assert_eq!(e.code, ErrorCode::FileStoreUnavailable);
    assert_eq!(w.count("SELECT count(*) FROM files").await, 0);
    // Its intent stays for the sweeper (the object may have been half written).
    assert_eq!(w.count("SELECT count(*) FROM file_uploads").await, 1);
    // Not yet abandoned: a sweep leaves it alone.
    assert_eq!(
        w.app.services().sweep_files(&w.tenant, 100).await.unwrap(),
        0
    );
    // Abandoned, but the store is still away: the sweep fails calmly and keeps the intent
    // for the next round.
    {
        let mut tx = w.app.db.db.tenant_tx(&w.tenant).await.unwrap();
        sqlx::query("UPDATE file_uploads SET started_at = now() - interval '2 hours'")
            .execute(&mut *tx)
            .await
            .unwrap();
        tx.commit().await.unwrap();
    }
    let e = w
        .app
        .services()
        .sweep_files(&w.tenant, 100)
        .await
        .unwrap_err();
    assert_eq!(e.code, ErrorCode::FileStoreUnavailable);
    assert_eq!(w.count("SELECT count(*) FROM file_uploads").await, 1);
}

#[tokio::test]
async fn a_photo_is_kept_upright_without_its_position_and_with_previews() {
    let w = World::new().await;
    let nurse = w.viewer(NURSE).await;
    // Taken with the phone held upright: stored sideways with orientation 6 (turn 90° right).
    let sideways = photos::jpeg(80, 40, 6, true);
    assert!(photos::has_exif_or_gps(&sideways));
    let row = w
        .upload(&nurse, "IMG_0001.jpeg", &sideways, FileKind::Image)
        .await
        .unwrap();
    assert!(row.has_preview);
    assert_eq!((row.width, row.height), (Some(40), Some(80)));
    let kept = w.read(&nurse, row.id, Variant::Original).await.unwrap();
    assert!(!photos::has_exif_or_gps(&kept), "no EXIF, no position");
    assert_eq!(photos::size(&kept), (40, 80), "turned upright");
    // The left (red) half of the sensor is now the top.
    let [r, _, b] = photos::pixel(&kept, 20, 10);
    assert!(r > 150 && b < 100, "top is red: {r} {b}");
    let [r, _, b] = photos::pixel(&kept, 20, 70);
    assert!(b > 150 && r < 100, "bottom is blue: {r} {b}");
    // Previews are JPEGs no larger than the photo, without metadata either.
    for variant in [Variant::Preview, Variant::Thumbnail] {
        let p = w.read(&nurse, row.id, variant).await.unwrap();
        assert!(!photos::has_exif_or_gps(&p));
        assert_eq!(photos::size(&p), (40, 80), "{variant:?} is never enlarged");
    }
    // A PDF has no preview: asking for one is "not found".
    let pdf = w
        .upload(&nurse, "紹介状.pdf", b"%PDF-1.4 letter", FileKind::Referral)
        .await
        .unwrap();
    assert!(!pdf.has_preview);
    let e = w.read(&nurse, pdf.id, Variant::Preview).await.unwrap_err();
    assert_eq!(e.code, ErrorCode::NotFound);
    // A broken photo is refused with its own reason and leaves nothing.
    let mut broken = photo();
    broken.truncate(200);
    let e = w
        .upload(&nurse, "broken.jpg", &broken, FileKind::Image)
        .await
        .unwrap_err();
    assert_eq!(e.reasons, vec!["FILE_DAMAGED"]);
    assert_eq!(w.count("SELECT count(*) FROM files").await, 2);
    assert_eq!(w.count("SELECT count(*) FROM file_uploads").await, 0);
}

#[tokio::test]
async fn attachments_wait_for_their_comment_then_follow_the_topics_scope() {
    use musubi_domain::groups::Scope;
    use musubi_domain::topics::NewTopic;
    let w = World::new().await;
    let nurse = w.viewer(NURSE).await;
    let pharmacist = w.viewer(PHARMACIST).await;
    let doctor = w.viewer(CLINIC_DOCTOR).await;
    let services = w.app.services();

    // Uploaded for a reply not sent yet: its uploader's only, not among the shared files.
    let staged = w.stage(&nurse, "褥瘡.jpg", &photo()).await.unwrap();
    assert!(staged.pending);
    assert!(w.read(&nurse, staged.id, Variant::Thumbnail).await.is_ok());
    let e = w
        .read(&pharmacist, staged.id, Variant::Original)
        .await
        .unwrap_err();
    assert_eq!(e.code, ErrorCode::NotFound);
    let pa = Actor::new(&pharmacist, &w.tenant, &w.meta);
    let (_, shared) = services
        .group_files(&pa, w.group.into(), None)
        .await
        .unwrap();
    assert!(shared.is_empty());

    // Someone else cannot post it: nothing is posted, and it stays the nurse's.
    let topic = NewTopic {
        group_id: w.group.into(),
        title: "仙骨部の褥瘡",
        body: "",
        scope: Scope::EVERYONE,
        important: false,
    };
    let e = services
        .create_topic_with(&pa, &topic, &[staged.id])
        .await
        .unwrap_err();
    assert_eq!(e.code, ErrorCode::InvalidInput);
    assert_eq!(e.field, Some("attachments"));
    assert_eq!(
        w.count("SELECT count(*) FROM topics WHERE title = '仙骨部の褥瘡'")
            .await,
        0
    );

    // The nurse posts a topic for everyone with the photo alone (no text): members read it.
    let na = Actor::new(&nurse, &w.tenant, &w.meta);
    let topic_id = services
        .create_topic_with(&na, &topic, &[staged.id])
        .await
        .unwrap();
    let kept = w
        .read(&pharmacist, staged.id, Variant::Original)
        .await
        .unwrap();
    assert!(!photos::has_exif_or_gps(&kept));
    let view = services.open_topic(&pa, topic_id, false).await.unwrap();
    assert_eq!(view.comments[0].files.len(), 1);
    assert_eq!(view.comments[0].files[0].id, staged.id);
    // Posted once: it cannot be attached again.
    let e = services
        .post_comment_with(&na, topic_id, "もう一度", false, &[staged.id])
        .await
        .unwrap_err();
    assert_eq!(e.field, Some("attachments"));

    // A topic for doctors only: its attachment is the doctors' only.
    let x_ray = w.stage(&doctor, "胸部X線.jpg", &photo()).await.unwrap();
    let da = Actor::new(&doctor, &w.tenant, &w.meta);
    let doctors_only = services
        .create_topic_with(
            &da,
            &NewTopic {
                title: "医師間の相談",
                body: "所見をご確認ください",
                scope: Scope::DOCTORS,
                ..topic.clone()
            },
            &[x_ray.id],
        )
        .await
        .unwrap();
    assert!(w.read(&doctor, x_ray.id, Variant::Original).await.is_ok());
    for outside in [&nurse, &pharmacist] {
        let e = w
            .read(outside, x_ray.id, Variant::Thumbnail)
            .await
            .unwrap_err();
        assert_eq!(e.code, ErrorCode::NotFound);
    }
    let _ = doctors_only;

    // More than ten at once: refused whole.
    let mut many = Vec::new();
    for i in 0..11 {
        many.push(
            w.stage(&nurse, &format!("{i}.txt"), b"memo")
                .await
                .unwrap()
                .id,
        );
    }
    let e = services
        .post_comment_with(&na, topic_id, "写真です", false, &many)
        .await
        .unwrap_err();
    assert_eq!(e.field, Some("attachments"));

    // A deleted comment takes its attachments out of sight.
    let comment = services
        .post_comment_with(&na, topic_id, "追加の写真", false, &many[..2])
        .await
        .unwrap();
    assert!(w
        .read(&pharmacist, many[0], Variant::Original)
        .await
        .is_ok());
    services.delete_comment(&na, comment).await.unwrap();
    let e = w
        .read(&pharmacist, many[0], Variant::Original)
        .await
        .unwrap_err();
    assert_eq!(e.code, ErrorCode::NotFound);

    // Uploads never posted are removed after a day.
    {
        let mut tx = w.app.db.db.tenant_tx(&w.tenant).await.unwrap();
        sqlx::query("UPDATE files SET uploaded_at = now() - interval '25 hours' WHERE pending")
            .execute(&mut *tx)
            .await
            .unwrap();
        tx.commit().await.unwrap();
    }
    let removed = services.sweep_files(&w.tenant, 100).await.unwrap();
    assert_eq!(removed, 9);
    assert_eq!(w.count("SELECT count(*) FROM files WHERE pending").await, 0);
    assert!(w
        .read(&pharmacist, staged.id, Variant::Original)
        .await
        .is_ok());
}
