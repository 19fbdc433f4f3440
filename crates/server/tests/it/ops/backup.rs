//! `musubi backup` and `musubi restore` as an operator runs them: a deployment with the demo
//! data and uploaded files archived, restored into a second, empty database and file store,
//! and compared table by table and object by object; damaged archives, newer formats and
//! deployments that are not empty refused without a change. And `musubi association export` /
//! `import`: one association moved into a deployment in use, people merged by email.

use axum::http::StatusCode;
use musubi_db::accounts::NewUser;
use musubi_domain::types::Profession;
use musubi_test_support::demo::{HOST, NURSE};
use musubi_test_support::web::Browser;
use musubi_test_support::{association, insert_member, photos, test_config, TestApp, TestDb};
use sqlx::PgConnection;
use std::collections::BTreeMap;
use std::io::{Read as _, Write as _};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Instant;

/// A command of the binary, without its output blocking the runtime the test's file store
/// runs on.
async fn run(cmd: Command) -> Output {
    tokio::process::Command::from(cmd).output().await.unwrap()
}

fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// `musubi backup --out FILE` against `db`, its files in the store of `data` (a data dir).
async fn backup(db: &TestDb, data: &Path, out: &Path) -> Output {
    let mut c = db.command(crate::MUSUBI_BIN);
    c.env_remove("MUSUBI_S3_ENDPOINT")
        .arg("backup")
        .arg("--out")
        .arg(out)
        .arg("--data-dir")
        .arg(data);
    run(c).await
}

/// `musubi restore --from FILE` into `db`, its files into the embedded store of `data`.
async fn restore(db: &TestDb, data: &Path, from: &Path) -> Output {
    let mut c = db.command(crate::MUSUBI_BIN);
    c.env_remove("MUSUBI_S3_ENDPOINT")
        .arg("restore")
        .arg("--from")
        .arg(from)
        .arg("--data-dir")
        .arg(data);
    run(c).await
}

/// Every table of `core` and of every association schema (the migration ledgers aside: a
/// restore writes its own): rows and an MD5 of them in a fixed order.
async fn table_digests(conn: &mut PgConnection) -> BTreeMap<String, (i64, String)> {
    let tables: Vec<(String, String)> = sqlx::query_as(
        "SELECT n.nspname::text, c.relname::text FROM pg_class c \
         JOIN pg_namespace n ON n.oid = c.relnamespace \
         WHERE c.relkind = 'r' AND (n.nspname = 'core' OR n.nspname LIKE 'assoc\\_%') \
           AND c.relname <> 'schema_migrations' ORDER BY 1, 2",
    )
    .fetch_all(&mut *conn)
    .await
    .unwrap();
    let mut out = BTreeMap::new();
    for (schema, table) in tables {
        let digest: (i64, String) = sqlx::query_as(&format!(
            "SELECT count(*), md5(coalesce(string_agg(t::text, E'\\n' ORDER BY t::text), '')) \
             FROM \"{schema}\".\"{table}\" t"
        ))
        .fetch_one(&mut *conn)
        .await
        .unwrap();
        out.insert(format!("{schema}.{table}"), digest);
    }
    out
}

/// Each schema's migration versions.
async fn ledgers(conn: &mut PgConnection) -> BTreeMap<String, Vec<i32>> {
    let schemas: Vec<String> = sqlx::query_scalar(
        "SELECT nspname::text FROM pg_namespace \
         WHERE nspname = 'core' OR nspname LIKE 'assoc\\_%' ORDER BY 1",
    )
    .fetch_all(&mut *conn)
    .await
    .unwrap();
    let mut out = BTreeMap::new();
    for s in schemas {
        let v: Vec<i32> = sqlx::query_scalar(&format!(
            "SELECT version FROM \"{s}\".schema_migrations ORDER BY 1"
        ))
        .fetch_all(&mut *conn)
        .await
        .unwrap();
        out.insert(s, v);
    }
    out
}

/// The object keys the files rows of every association name (originals and previews).
async fn object_keys(conn: &mut PgConnection) -> Vec<String> {
    let schemas: Vec<String> =
        sqlx::query_scalar("SELECT schema_name FROM core.associations ORDER BY 1")
            .fetch_all(&mut *conn)
            .await
            .unwrap();
    let mut keys = Vec::new();
    for s in schemas {
        let rows: Vec<(String, bool)> = sqlx::query_as(&format!(
            "SELECT object_key, has_preview FROM \"{s}\".files ORDER BY 1"
        ))
        .fetch_all(&mut *conn)
        .await
        .unwrap();
        for (key, preview) in rows {
            if preview {
                keys.push(format!("{key}.p"));
                keys.push(format!("{key}.t"));
            }
            keys.push(key);
        }
    }
    keys
}

/// Uploads `file` to the shared files of `group` (hosted by `slug`) as `person`.
async fn upload(app: &TestApp, person: &str, slug: &str, group: uuid::Uuid, file: (&str, &[u8])) {
    let page = format!("/a/{slug}/g/{group}/files");
    let mut browser = Browser::signed_in(app, person).await;
    let token = browser.get(app, &page).await.csrf();
    let res = browser
        .post_multipart(
            app,
            &format!("{page}/upload"),
            &[
                ("csrf", None, token.as_bytes()),
                ("kind", None, b"other"),
                ("file", Some(file.0), file.1),
            ],
        )
        .await;
    assert_eq!(res.status, StatusCode::SEE_OTHER, "{}", res.body);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn backup_then_restore_reproduces_every_table_object_and_audit_chain() {
    // The source: the demo deployment, its files in a store of their own.
    let source_files = tempfile::tempdir().unwrap();
    let store = musubi_storage::embedded::Embedded::start(source_files.path())
        .await
        .unwrap();
    let settings = store.settings().clone();
    let (key, secret) = settings.credentials.clone().unwrap();
    let config = test_config(&[
        ("MUSUBI_S3_ENDPOINT", settings.endpoint.as_str()),
        ("MUSUBI_S3_ACCESS_KEY_ID", key.as_str()),
        ("MUSUBI_S3_SECRET_ACCESS_KEY", secret.expose()),
    ]);
    let app = TestApp::demo_with_config(config).await;
    let mut admin = app.db.admin().await;

    // Files in both associations: a photo (with its preview and thumbnail) and a PDF in one,
    // a text file in the other.
    let group: uuid::Uuid =
        sqlx::query_scalar("SELECT id FROM groups WHERE name = '山田 太郎さん（85歳・在宅酸素）'")
            .fetch_one(&mut *app.tenant_tx(HOST).await)
            .await
            .unwrap();
    upload(
        &app,
        NURSE,
        HOST,
        group,
        ("褥瘡.jpg", &photos::jpeg(64, 48, 1, true)),
    )
    .await;
    upload(
        &app,
        NURSE,
        HOST,
        group,
        (
            "診療情報提供書.pdf",
            b"%PDF-1.4\n% a letter from the hospital\n",
        ),
    )
    .await;
    let (other, other_group, member): (String, uuid::Uuid, String) = sqlx::query_as(
        "SELECT a.slug, gm.group_id, u.email FROM core.group_members gm \
         JOIN core.associations a ON a.id = gm.association_id \
         JOIN core.users u ON u.id = gm.user_id \
         WHERE a.slug <> $1 AND gm.status = 'active' ORDER BY u.email, gm.group_id LIMIT 1",
    )
    .bind(HOST)
    .fetch_one(&mut admin)
    .await
    .unwrap();
    upload(
        &app,
        &member,
        &other,
        other_group,
        ("訪問メモ.txt", "次回の訪問は火曜日".as_bytes()),
    )
    .await;
    let keys = object_keys(&mut admin).await;
    assert_eq!(keys.len(), 5, "{keys:?}");

    let work = tempfile::tempdir().unwrap();
    let archive = work.path().join("musubi.tar.gz");
    let started = Instant::now();
    let mut c = app.db.command(crate::MUSUBI_BIN);
    c.args(["backup", "--out"])
        .arg(&archive)
        .env("MUSUBI_S3_ENDPOINT", &settings.endpoint)
        .env("MUSUBI_S3_ACCESS_KEY_ID", &key)
        .env("MUSUBI_S3_SECRET_ACCESS_KEY", secret.expose());
    let out = run(c).await;
    let backup_time = started.elapsed();
    assert!(out.status.success(), "{}", text(&out));
    assert!(text(&out).contains("2 associations"), "{}", text(&out));
    let size = std::fs::metadata(&archive).unwrap().len();
    assert!(!work.path().join("musubi.tar.gz.partial").exists());
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        let mode = std::fs::metadata(&archive).unwrap().permissions().mode();
        assert_eq!(mode & 0o077, 0, "readable by others: {mode:o}");
    }
    let manifest = musubi::backup::read_manifest(&archive).unwrap();
    assert_eq!(manifest.objects.len(), keys.len());
    assert!(manifest.missing_objects.is_empty());

    // A second backup never overwrites the first.
    let mut c = app.db.command(crate::MUSUBI_BIN);
    c.args(["backup", "--out"])
        .arg(&archive)
        .env("MUSUBI_S3_ENDPOINT", &settings.endpoint)
        .env("MUSUBI_S3_ACCESS_KEY_ID", &key)
        .env("MUSUBI_S3_SECRET_ACCESS_KEY", secret.expose());
    let out = run(c).await;
    assert!(!out.status.success());
    assert!(text(&out).contains("exists already"), "{}", text(&out));

    // The target: an empty database and an empty file store.
    let target = TestDb::new().await;
    let target_data = tempfile::tempdir().unwrap();

    // A file store that is down: refused before anything is written.
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let mut c = target.command(crate::MUSUBI_BIN);
    c.args(["restore", "--from"])
        .arg(&archive)
        .env("MUSUBI_S3_ENDPOINT", format!("http://127.0.0.1:{port}"))
        .env("MUSUBI_S3_ACCESS_KEY_ID", "musubi")
        .env("MUSUBI_S3_SECRET_ACCESS_KEY", "not-a-real-secret");
    let out = run(c).await;
    assert!(!out.status.success());
    assert!(
        text(&out).contains("the file store does not answer"),
        "{}",
        text(&out)
    );
    assert_eq!(leftovers(&target).await, (0, 0));

    // Restored rows that do not read back as archived (here: a manifest whose digest of one
    // table was changed): the transaction is rolled back, the associations' schemas and the
    // objects already stored are removed, and the operator is told.
    let mut plain = gunzip(&archive);
    let manifest_at = find(&plain, b"\"format\": \"musubi-backup\"", 1);
    let digest_at = manifest_at + find(&plain[manifest_at..], b"\"rows_digest\": \"", 0) + 16;
    plain[digest_at] = if plain[digest_at] == b'0' { b'1' } else { b'0' };
    let edited = work.path().join("edited.tar.gz");
    gzip(&plain, &edited);
    let out = restore(&target, target_data.path(), &edited).await;
    assert!(!out.status.success());
    assert!(
        text(&out).contains("the restore failed and was undone")
            && text(&out).contains("read back differs from the archive"),
        "{}",
        text(&out)
    );
    assert_eq!(leftovers(&target).await, (0, 0));
    let rows: i64 = table_digests(&mut target.admin().await)
        .await
        .values()
        .map(|(n, _)| n)
        .sum();
    assert_eq!(rows, 0);
    for k in &keys {
        assert!(
            !target_data.path().join("files/musubi").join(k).exists(),
            "{k} was left in the store"
        );
    }

    let started = Instant::now();
    let out = restore(&target, target_data.path(), &archive).await;
    let restore_time = started.elapsed();
    assert!(out.status.success(), "{}", text(&out));
    assert!(
        text(&out).contains("3 audit logs verified"),
        "{}",
        text(&out)
    );

    let mut restored = target.admin().await;
    let before = table_digests(&mut admin).await;
    let after = table_digests(&mut restored).await;
    assert_eq!(
        before.keys().collect::<Vec<_>>(),
        after.keys().collect::<Vec<_>>()
    );
    for (table, digest) in &before {
        assert_eq!(Some(digest), after.get(table), "{table} differs");
    }
    assert_eq!(ledgers(&mut admin).await, ledgers(&mut restored).await);
    let rows: i64 = before.values().map(|(n, _)| n).sum();
    let filled = before.values().filter(|(n, _)| *n > 0).count();
    assert!(filled > 20, "the demo data fills many tables: {before:?}");

    // Each schema belongs to its association's role, as a created association's does.
    let owners: Vec<(String, String)> = sqlx::query_as(
        "SELECT a.schema_name, pg_get_userbyid(n.nspowner)::text FROM core.associations a \
         JOIN pg_namespace n ON n.nspname = a.schema_name",
    )
    .fetch_all(&mut restored)
    .await
    .unwrap();
    assert_eq!(owners.len(), 2);
    for (schema, owner) in owners {
        assert_eq!(owner, format!("musubi_{schema}"));
    }

    // The objects, byte for byte.
    let mut bytes = 0;
    for k in &keys {
        let original = std::fs::read(source_files.path().join("musubi").join(k)).unwrap();
        let copy = std::fs::read(target_data.path().join("files/musubi").join(k))
            .unwrap_or_else(|e| panic!("{k} was not restored: {e}"));
        assert!(original == copy, "{k} differs");
        bytes += copy.len();
    }

    // The chains verify with the operator's command too, and sequences continue past the
    // archived values.
    let out = run({
        let mut c = target.command(crate::MUSUBI_BIN);
        c.args(["audit", "verify"]);
        c
    })
    .await;
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(
        text(&out).matches("chain intact").count(),
        3,
        "{}",
        text(&out)
    );
    for s in &manifest.sequences {
        if let Some(v) = s.last_value {
            let now: i64 = sqlx::query_scalar(&format!(
                "SELECT last_value FROM \"{}\".\"{}\"",
                s.schema, s.name
            ))
            .fetch_one(&mut restored)
            .await
            .unwrap();
            assert_eq!(now, v, "{}.{}", s.schema, s.name);
        }
    }

    // The restored deployment serves: its associations resolve.
    assert!(target.db.resolve_tenant(HOST).await.is_ok());
    assert!(target.db.resolve_tenant(&other).await.is_ok());

    eprintln!(
        "backup/restore: {} tables ({filled} with rows, {rows} rows) and {} objects ({bytes} \
         bytes) compared; archive {size} bytes; backup {:.1} s, restore {:.1} s",
        before.len(),
        keys.len(),
        backup_time.as_secs_f64(),
        restore_time.as_secs_f64()
    );
}

/// The archive, decompressed.
fn gunzip(path: &Path) -> Vec<u8> {
    let mut out = Vec::new();
    flate2::read::GzDecoder::new(std::fs::File::open(path).unwrap())
        .read_to_end(&mut out)
        .unwrap();
    out
}

fn gzip(bytes: &[u8], path: &Path) {
    let mut gz = flate2::write::GzEncoder::new(
        std::fs::File::create(path).unwrap(),
        flate2::Compression::fast(),
    );
    gz.write_all(bytes).unwrap();
    gz.finish().unwrap();
}

/// Where `needle` occurs in `haystack` the `nth` time (from 0).
fn find(haystack: &[u8], needle: &[u8], nth: usize) -> usize {
    haystack
        .windows(needle.len())
        .enumerate()
        .filter(|(_, w)| *w == needle)
        .nth(nth)
        .map(|(i, _)| i)
        .unwrap_or_else(|| panic!("{} not found", String::from_utf8_lossy(needle)))
}

/// Associations and association schemas in `db`: an untouched empty target has neither.
async fn leftovers(db: &TestDb) -> (i64, i64) {
    sqlx::query_as(
        "SELECT (SELECT count(*) FROM core.associations), \
                (SELECT count(*) FROM pg_namespace WHERE nspname LIKE 'assoc\\_%')",
    )
    .fetch_one(&mut db.admin().await)
    .await
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restore_refuses_damaged_archives_newer_formats_and_deployments_in_use() {
    let source = TestDb::new().await;
    source
        .operator()
        .await
        .create_association(&association("kawabe", "川辺医師会"))
        .await
        .unwrap();
    let work = tempfile::tempdir().unwrap();
    let data = work.path().join("data");
    let archive = work.path().join("kawabe.tar.gz");
    let out = backup(&source, &data, &archive).await;
    assert!(out.status.success(), "{}", text(&out));
    let bytes = std::fs::read(&archive).unwrap();
    let bad = |name: &str| -> PathBuf { work.path().join(name) };

    // A deployment in use: refused, and nothing in it changes.
    let mut conn = source.admin().await;
    let before = table_digests(&mut conn).await;
    let out = restore(&source, &data, &archive).await;
    assert!(!out.status.success());
    assert!(text(&out).contains("not empty"), "{}", text(&out));
    assert!(text(&out).contains("nothing was changed"), "{}", text(&out));
    assert_eq!(before, table_digests(&mut conn).await);

    let target = TestDb::new().await;
    let target_data = work.path().join("target");

    // Cut short: refused before anything is written.
    std::fs::write(bad("cut.tar.gz"), &bytes[..bytes.len() / 2]).unwrap();
    let out = restore(&target, &target_data, &bad("cut.tar.gz")).await;
    assert!(!out.status.success());
    assert!(
        text(&out).contains("damaged or truncated"),
        "{}",
        text(&out)
    );
    assert_eq!(leftovers(&target).await, (0, 0));

    // A byte changed near the end (the manifest's region): the gzip check or the checksums.
    let mut flipped = bytes.clone();
    let at = flipped.len() - 20;
    flipped[at] ^= 0x55;
    std::fs::write(bad("flipped.tar.gz"), &flipped).unwrap();
    let out = restore(&target, &target_data, &bad("flipped.tar.gz")).await;
    assert!(!out.status.success());
    assert!(
        text(&out).contains("damaged or truncated"),
        "{}",
        text(&out)
    );
    assert_eq!(leftovers(&target).await, (0, 0));

    // A table's data changed inside an intact gzip stream: its checksum is wrong.
    let plain = gunzip(&archive);
    let marker = b"kawabe\t";
    let at = plain
        .windows(marker.len())
        .position(|w| w == marker)
        .expect("the registry row in the archive");
    let mut edited = plain.clone();
    edited[at] = b'K';
    gzip(&edited, &bad("edited.tar.gz"));
    let out = restore(&target, &target_data, &bad("edited.tar.gz")).await;
    assert!(!out.status.success());
    assert!(
        text(&out).contains("db/core/associations.copy does not match its checksum"),
        "{}",
        text(&out)
    );
    assert_eq!(leftovers(&target).await, (0, 0));

    // From a newer Musubi: refused by its header.
    let header = b"\"format_version\": 1";
    let at = plain
        .windows(header.len())
        .position(|w| w == header)
        .unwrap();
    let mut newer = plain.clone();
    newer[at + header.len() - 1] = b'7';
    gzip(&newer, &bad("newer.tar.gz"));
    let out = restore(&target, &target_data, &bad("newer.tar.gz")).await;
    assert!(!out.status.success());
    assert!(
        text(&out).contains("format version 7") && text(&out).contains("newer Musubi"),
        "{}",
        text(&out)
    );
    assert_eq!(leftovers(&target).await, (0, 0));

    // Not an archive at all.
    std::fs::write(bad("notes.txt"), "not a backup").unwrap();
    let out = restore(&target, &target_data, &bad("notes.txt")).await;
    assert!(!out.status.success());
    assert!(text(&out).contains("not a Musubi backup"), "{}", text(&out));

    // After all that the target is still empty, and the intact archive restores into it.
    let out = restore(&target, &target_data, &archive).await;
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(
        table_digests(&mut source.admin().await).await,
        table_digests(&mut target.admin().await).await
    );
}

/// `musubi association <args…> --data-dir data` against `db`, files in the embedded store of
/// `data`.
async fn association_cmd(db: &TestDb, data: &Path, args: &[&std::ffi::OsStr]) -> Output {
    let mut c = db.command(crate::MUSUBI_BIN);
    c.env_remove("MUSUBI_S3_ENDPOINT")
        .arg("association")
        .args(args)
        .arg("--data-dir")
        .arg(data);
    run(c).await
}

/// An association's tables, each: rows and an MD5 of them with `from` ids written as `to`
/// (the audit log, whose hashes cover its ids, as stored and only up to `audit_upto`).
async fn tenant_digests(
    conn: &mut PgConnection,
    schema: &str,
    ids: &[(String, String)],
    audit_upto: i64,
) -> BTreeMap<String, (i64, String)> {
    let tables: Vec<String> = sqlx::query_scalar(
        "SELECT c.relname::text FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace \
         WHERE c.relkind = 'r' AND n.nspname = $1 AND c.relname <> 'schema_migrations' \
         ORDER BY 1",
    )
    .bind(schema)
    .fetch_all(&mut *conn)
    .await
    .unwrap();
    let mut out = BTreeMap::new();
    for table in tables {
        let (row, filter) = if table == "audit_log" {
            (
                "t::text".to_owned(),
                format!(" WHERE t.seq <= {audit_upto}"),
            )
        } else {
            let mut row = "t::text".to_owned();
            for (from, to) in ids {
                row = format!("replace({row}, '{from}', '{to}')");
            }
            (row, String::new())
        };
        let digest: (i64, String) = sqlx::query_as(&format!(
            "SELECT count(*), md5(coalesce(string_agg({row}, E'\\n' ORDER BY {row}), '')) \
             FROM \"{schema}\".\"{table}\" t{filter}"
        ))
        .fetch_one(&mut *conn)
        .await
        .unwrap();
        out.insert(table, digest);
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_association_moves_to_another_deployment_merging_people_by_email() {
    // The source: the demo deployment (two associations), a file uploaded in the host one.
    let source_files = tempfile::tempdir().unwrap();
    let store = musubi_storage::embedded::Embedded::start(source_files.path())
        .await
        .unwrap();
    let settings = store.settings().clone();
    let (key, secret) = settings.credentials.clone().unwrap();
    let config = test_config(&[
        ("MUSUBI_S3_ENDPOINT", settings.endpoint.as_str()),
        ("MUSUBI_S3_ACCESS_KEY_ID", key.as_str()),
        ("MUSUBI_S3_SECRET_ACCESS_KEY", secret.expose()),
    ]);
    let app = TestApp::demo_with_config(config).await;
    let mut source = app.db.admin().await;
    let group: uuid::Uuid =
        sqlx::query_scalar("SELECT id FROM groups WHERE name = '山田 太郎さん（85歳・在宅酸素）'")
            .fetch_one(&mut *app.tenant_tx(HOST).await)
            .await
            .unwrap();
    upload(
        &app,
        NURSE,
        HOST,
        group,
        ("褥瘡.jpg", &photos::jpeg(64, 48, 1, true)),
    )
    .await;
    let (other, other_group, member): (String, uuid::Uuid, String) = sqlx::query_as(
        "SELECT a.slug, gm.group_id, u.email FROM core.group_members gm \
         JOIN core.associations a ON a.id = gm.association_id \
         JOIN core.users u ON u.id = gm.user_id \
         WHERE a.slug <> $1 AND gm.status = 'active' ORDER BY u.email, gm.group_id LIMIT 1",
    )
    .bind(HOST)
    .fetch_one(&mut source)
    .await
    .unwrap();
    upload(
        &app,
        &member,
        &other,
        other_group,
        ("メモ.txt", b"stays here"),
    )
    .await;
    let (association_id, schema): (uuid::Uuid, String) =
        sqlx::query_as("SELECT id, schema_name FROM core.associations WHERE slug = $1")
            .bind(HOST)
            .fetch_one(&mut source)
            .await
            .unwrap();
    let keys: Vec<String> = object_keys(&mut source)
        .await
        .into_iter()
        .filter(|k| k.starts_with(&format!("a/{}/", association_id.simple())))
        .collect();
    let all_keys = object_keys(&mut source).await;
    let source_nurse: uuid::Uuid = app.user_id(NURSE).await.uuid();
    let admin_row: (uuid::Uuid, Option<String>) =
        sqlx::query_as("SELECT id, password_hash FROM core.users WHERE email = $1")
            .bind(musubi_test_support::demo::ADMIN)
            .fetch_one(&mut source)
            .await
            .unwrap();

    let work = tempfile::tempdir().unwrap();
    let archive = work.path().join("minatogawa.tar.gz");
    let mut c = app.db.command(crate::MUSUBI_BIN);
    c.args(["association", "export", "--slug", HOST, "--out"])
        .arg(&archive)
        .env("MUSUBI_S3_ENDPOINT", &settings.endpoint)
        .env("MUSUBI_S3_ACCESS_KEY_ID", &key)
        .env("MUSUBI_S3_SECRET_ACCESS_KEY", secret.expose());
    let out = run(c).await;
    assert!(out.status.success(), "{}", text(&out));
    assert!(
        text(&out).contains("Exported association minatogawa"),
        "{}",
        text(&out)
    );
    let manifest = musubi::backup::read_manifest(&archive);
    assert!(
        manifest.is_err_and(|e| e.to_string().contains("musubi association import")),
        "an export is not a backup"
    );

    // The target: another association, and a person with the nurse's email (another id, her
    // own password there).
    let target = TestApp::with_association("kawabe", "川辺医師会").await;
    let target_data = tempfile::tempdir().unwrap();
    let kawabe = target.db.db.resolve_tenant("kawabe").await.unwrap();
    let password = "target-password-2026";
    let hash = musubi_auth::password::hash_password(password).unwrap();
    let target_nurse = insert_member(
        &target.db.db,
        kawabe.id,
        &NewUser {
            email: NURSE,
            name: "青木 看護師",
            name_kana: "あおき",
            profession: Profession::Nurse,
            doctor_kind: None,
            password_hash: Some(&hash),
        },
    )
    .await
    .uuid();
    assert_ne!(source_nurse, target_nurse);
    let mut tconn = target.db.admin().await;

    // A truncated archive: refused, nothing changes.
    let bytes = std::fs::read(&archive).unwrap();
    let cut = work.path().join("cut.tar.gz");
    std::fs::write(&cut, &bytes[..bytes.len() * 2 / 3]).unwrap();
    let before = table_digests(&mut tconn).await;
    let out = association_cmd(
        &target.db,
        target_data.path(),
        &["import".as_ref(), "--from".as_ref(), cut.as_os_str()],
    )
    .await;
    assert!(!out.status.success());
    assert!(
        text(&out).contains("damaged or truncated"),
        "{}",
        text(&out)
    );
    assert_eq!(before, table_digests(&mut tconn).await);

    let started = Instant::now();
    let out = association_cmd(
        &target.db,
        target_data.path(),
        &["import".as_ref(), "--from".as_ref(), archive.as_os_str()],
    )
    .await;
    let import_time = started.elapsed();
    assert!(out.status.success(), "{}", text(&out));
    let import_output = text(&out);
    assert!(
        import_output.contains("Not imported: the neighbour agreements with sakuradai"),
        "{import_output}"
    );
    assert!(
        text(&out).contains(&format!(
            "Merged {NURSE}: the archive's person {source_nurse} is this deployment's \
             {target_nurse}"
        )),
        "{}",
        text(&out)
    );

    // The association's tables: the source's, the nurse's id mapped (the audit log as it
    // was, plus the import's record).
    let audit_upto: i64 = sqlx::query_scalar(&format!(
        "SELECT coalesce(max(seq), 0) FROM \"{schema}\".audit_log"
    ))
    .fetch_one(&mut source)
    .await
    .unwrap();
    let ids = [(source_nurse.to_string(), target_nurse.to_string())];
    let expected = tenant_digests(&mut source, &schema, &ids, audit_upto).await;
    let imported = tenant_digests(&mut tconn, &schema, &[], audit_upto).await;
    assert_eq!(expected, imported);
    let filled = expected.values().filter(|(n, _)| *n > 0).count();
    let rows: i64 = expected.values().map(|(n, _)| n).sum();
    assert!(filled > 10, "{expected:?}");
    let audit_rows: i64 = sqlx::query_scalar(&format!(
        "SELECT count(*) FROM \"{schema}\".audit_log WHERE seq > {audit_upto} \
         AND action = 'association.import' AND detail->'merged'->0->>'target' = '{target_nurse}'"
    ))
    .fetch_one(&mut tconn)
    .await
    .unwrap();
    assert_eq!(audit_rows, 1);

    // A few exact rows: the uploaded file is the target nurse's, her memberships point to
    // the target's id, and nothing points to her archived id.
    let uploader: uuid::Uuid = sqlx::query_scalar(&format!(
        "SELECT uploaded_by FROM \"{schema}\".files WHERE name = '褥瘡.jpg'"
    ))
    .fetch_one(&mut tconn)
    .await
    .unwrap();
    assert_eq!(uploader, target_nurse);
    let counts = |id: uuid::Uuid| {
        format!(
            "SELECT (SELECT count(*) FROM core.memberships m \
                     WHERE m.user_id = '{id}' AND m.association_id = '{association_id}'), \
                    (SELECT count(*) FROM core.group_members gm \
                     WHERE gm.user_id = '{id}' AND gm.association_id = '{association_id}'), \
                    (SELECT count(*) FROM core.users u WHERE u.id = '{id}')"
        )
    };
    let (m, g, _): (i64, i64, i64) = sqlx::query_as(&counts(source_nurse))
        .fetch_one(&mut source)
        .await
        .unwrap();
    assert!(m == 1 && g > 0);
    assert_eq!(
        sqlx::query_as::<_, (i64, i64, i64)>(&counts(target_nurse))
            .fetch_one(&mut tconn)
            .await
            .unwrap(),
        (1, g, 1)
    );
    assert_eq!(
        sqlx::query_as::<_, (i64, i64, i64)>(&counts(source_nurse))
            .fetch_one(&mut tconn)
            .await
            .unwrap(),
        (0, 0, 0)
    );
    let core_counts = "SELECT (SELECT count(*) FROM core.memberships WHERE association_id = $1), \
                              (SELECT count(*) FROM core.group_members WHERE association_id = $1), \
                              (SELECT count(*) FROM core.groups WHERE association_id = $1), \
                              (SELECT count(*) FROM core.facilities WHERE association_id = $1)";
    let source_counts: (i64, i64, i64, i64) = sqlx::query_as(core_counts)
        .bind(association_id)
        .fetch_one(&mut source)
        .await
        .unwrap();
    let target_counts: (i64, i64, i64, i64) = sqlx::query_as(core_counts)
        .bind(association_id)
        .fetch_one(&mut tconn)
        .await
        .unwrap();
    assert_eq!(source_counts, target_counts);

    // A person new to the target: the source's id and password hash. The merged one keeps
    // the target's password, and reaches the association's group with it.
    let moved: (uuid::Uuid, Option<String>) =
        sqlx::query_as("SELECT id, password_hash FROM core.users WHERE email = $1")
            .bind(musubi_test_support::demo::ADMIN)
            .fetch_one(&mut tconn)
            .await
            .unwrap();
    assert_eq!(moved, admin_row);
    // The in-process server reloads its registry now rather than within seconds.
    target.db.db.migrate().await.unwrap();
    let mut browser = Browser::default();
    let res = browser.sign_in(&target, NURSE, password).await;
    assert_eq!(res.status, StatusCode::SEE_OTHER, "{}", res.body);
    let page = browser
        .get(&target, &format!("/a/{HOST}/g/{group}/files"))
        .await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.body);
    assert!(page.body.contains("褥瘡.jpg"));
    let res = Browser::default()
        .sign_in(&target, NURSE, musubi_demo::DEMO_PASSWORD)
        .await;
    assert_ne!(
        res.location(),
        "/home",
        "the source's password does not open it"
    );

    // The objects, byte for byte; the other association's stay behind.
    let left_behind = all_keys.len() - keys.len();
    assert!(keys.len() == 3 && left_behind == 1, "{all_keys:?}");
    for k in &keys {
        let original = std::fs::read(source_files.path().join("musubi").join(k)).unwrap();
        let copy = std::fs::read(target_data.path().join("files/musubi").join(k))
            .unwrap_or_else(|e| panic!("{k} was not imported: {e}"));
        assert!(original == copy, "{k} differs");
    }
    for k in all_keys.iter().filter(|k| !keys.contains(k)) {
        assert!(!target_data.path().join("files/musubi").join(k).exists());
    }

    // Every chain verifies with the operator's command.
    let out = run({
        let mut c = target.db.command(crate::MUSUBI_BIN);
        c.args(["audit", "verify"]);
        c
    })
    .await;
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(
        text(&out).matches("chain intact").count(),
        3,
        "{}",
        text(&out)
    );

    // Imported again: refused, nothing changes.
    let before = table_digests(&mut tconn).await;
    let out = association_cmd(
        &target.db,
        target_data.path(),
        &["import".as_ref(), "--from".as_ref(), archive.as_os_str()],
    )
    .await;
    assert!(!out.status.success());
    assert!(text(&out).contains("imported once"), "{}", text(&out));
    assert!(text(&out).contains("nothing was changed"), "{}", text(&out));
    assert_eq!(before, table_digests(&mut tconn).await);

    eprintln!(
        "association move: {} tables ({filled} with rows, {rows} rows) and {} objects compared \
         ({left_behind} of the other association left behind); import {:.1} s:\n{import_output}",
        expected.len(),
        keys.len(),
        import_time.as_secs_f64()
    );
}
