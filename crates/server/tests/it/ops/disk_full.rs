//! The disk under the embedded data directory fills up while people write (docs/operations.md,
//! "A full disk"): writes are refused with a stable code, reads go on, nothing is corrupted,
//! and writing works again once space is freed, without restarting anything.
//!
//! The data directory is a small tmpfs, so the test needs root (as `cargo xtask image` does).

use super::faults::{
    assert_acked_present, assert_audit_verifies_by, assert_consistent, http, post_comment,
    reachable_dir, readyz, wait_for, Load, Outcome, Server,
};
use musubi_demo::DEMO_PASSWORD;
use musubi_test_support::demo::{HOST, NURSE};

/// A demo patient group of the nurse and the clinic doctor.
const SHARED: &str = "鈴木 花子さん";
use serde_json::{json, Value};
use sqlx::{Connection, PgConnection};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

/// A tmpfs of `size` mounted on `dir`, unmounted when dropped.
struct SmallDisk {
    dir: PathBuf,
}

impl SmallDisk {
    fn mount(dir: &Path, size: &str) -> Self {
        std::fs::create_dir_all(dir).unwrap();
        let status = Command::new("mount")
            .args([
                "-t",
                "tmpfs",
                "-o",
                &format!("size={size},mode=0755"),
                "tmpfs",
            ])
            .arg(dir)
            .status()
            .unwrap();
        assert!(status.success(), "mount -t tmpfs failed");
        SmallDisk {
            dir: dir.to_owned(),
        }
    }

    fn free_bytes(&self) -> u64 {
        let st = nix::sys::statvfs::statvfs(&self.dir).unwrap();
        st.blocks_available() as u64 * st.fragment_size() as u64
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.dir).status();
    }
}

/// Writes `path` until the disk refuses (`ENOSPC`); returns how much it took.
fn fill(path: &Path) -> u64 {
    write_until_full(std::fs::File::create(path).unwrap())
}

/// Appends to `path` until the disk refuses again: room freed since the last fill is taken.
fn top_up(path: &Path) {
    let f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .unwrap();
    write_until_full(f);
}

fn write_until_full(mut f: std::fs::File) -> u64 {
    let mut written = 0u64;
    for chunk in [1 << 20, 4096, 512] {
        let block = vec![0x5au8; chunk];
        loop {
            match f.write(&block) {
                Ok(0) => break,
                Ok(n) => written += n as u64,
                Err(e) if e.raw_os_error() == Some(nix::libc::ENOSPC) => break,
                Err(e) => panic!("filling the disk: {e}"),
            }
        }
    }
    let _ = f.flush();
    written
}

use super::faults::graphql as gql;

async fn sign_in(addr: &str, email: &str) -> String {
    let data = gql(
        addr,
        None,
        "mutation($e: String!, $p: String!) { signIn(email: $e, password: $p) { token next } }",
        json!({ "e": email, "p": DEMO_PASSWORD }),
    )
    .await;
    assert_eq!(data["signIn"]["next"], "DONE", "{data}");
    data["signIn"]["token"].as_str().unwrap().to_owned()
}

/// `musubi demo` on `data` (embedded PostgreSQL and file store), tuned for a write load.
fn start_demo(data: &Path) -> Server {
    let mut cmd = Command::new(crate::MUSUBI_BIN);
    cmd.args(["demo", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(data)
        .env_remove("DATABASE_URL")
        .env_remove("MUSUBI_CONFIG")
        .env_remove("MUSUBI_LISTEN")
        .env_remove("MUSUBI_DATA_DIR")
        .env_remove("REDIS_URL")
        .env("MUSUBI_LOG", "error")
        .env("MUSUBI_FAIR_SESSION_PER_MINUTE", "10000000")
        .env("MUSUBI_FAIR_PERSON_PER_MINUTE", "10000000")
        .env("MUSUBI_FAIR_ANONYMOUS_PER_MINUTE", "10000000")
        .env("MUSUBI_FAIR_SESSION_IN_FLIGHT", "4");
    Server::spawn(cmd)
}

/// A connection to the embedded cluster of `data`, its search path on association `HOST`.
async fn embedded_conn(data: &Path) -> PgConnection {
    let url = format!(
        "postgres://{}@localhost/musubi?host={}",
        musubi_pgembed::SUPERUSER,
        data.join("run").display()
    );
    super::faults::tenant_conn(PgConnection::connect(&url).await.unwrap()).await
}

/// An upload of `bytes` bytes to the group's shared files: status and error code.
async fn upload(addr: &str, token: &str, group: &str, bytes: usize) -> (u16, String) {
    let auth = format!("Bearer {token}");
    let headers = [
        ("Authorization", auth.as_str()),
        ("Content-Type", "application/octet-stream"),
        ("X-File-Name", "%E8%A8%98%E9%8C%B2.txt"),
    ];
    let path = format!("/api/a/{HOST}/groups/{group}/files?kind=other");
    let body = "あ".repeat(bytes / 3);
    let (status, text) = http(addr, "POST", &path, &headers, &body).await.unwrap();
    let json: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
    let code = json["errors"][0]["extensions"]["code"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    (status, if code.is_empty() { text } else { code })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_disk_refuses_writes_clearly_and_loses_nothing_once_space_is_back() {
    if !nix::unistd::geteuid().is_root() {
        println!("not run: mounting the small file system needs root");
        return;
    }
    let started = Instant::now();
    let dir = reachable_dir();
    let disk = SmallDisk::mount(&dir.path().join("disk"), "320m");
    let data = dir.path().join("disk/data");
    let server = start_demo(&data);
    let addr = server.addr.clone();

    // The nurse's topic in a patient group she shares with the doctor (demo data).
    let nurse = sign_in(&addr, NURSE).await;
    let mine = gql(
        &addr,
        Some(&nurse),
        "{ myGroups { group { id name associationSlug } } }",
        json!({}),
    )
    .await;
    let group = mine["myGroups"]
        .as_array()
        .unwrap()
        .iter()
        .map(|g| &g["group"])
        .find(|g| g["associationSlug"] == HOST && g["name"].as_str().unwrap().starts_with(SHARED))
        .unwrap_or_else(|| panic!("{SHARED}… in {mine}"))["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let topic = gql(
        &addr,
        Some(&nurse),
        "mutation($g: ID!) { createTopic(groupId: $g, title: \"訪問記録\", body: \"記録です。\") }",
        json!({ "g": group }),
    )
    .await["createTopic"]
        .as_str()
        .unwrap()
        .to_owned();
    let (status, code) = upload(&addr, &nurse, &group, 64 * 1024).await;
    assert_eq!(status, 201, "an upload with space: {code}");

    let load = Load::start(&addr, &nurse, &topic, 2);
    load.wait_acked(20, "writes before the disk filled").await;

    // The disk fills up under the load.
    let filler = dir.path().join("disk/filler");
    let free_before = disk.free_bytes();
    let filled = fill(&filler);
    let refused_before = load.refused();
    wait_for(
        "the load's writes refused on the full disk",
        Duration::from_secs(120),
        || async { load.refused() > refused_before + 5 },
    )
    .await;
    // Refusals while it stays full: a comment, an upload. Reads go on. PostgreSQL frees the
    // partial files of writes it failed, so the disk is topped up before each attempt. A
    // comment can still fit in a page or WAL segment already allocated; one that does must be
    // kept like any acknowledged one.
    let topped_up = dir.path().join("disk/topped-up");
    let mut direct = Vec::new();
    let mut direct_posted = Vec::new();
    for i in 0..5 {
        top_up(&topped_up);
        match post_comment(&addr, &nurse, &topic, &format!("満杯 {i}")).await {
            Outcome::Refused(status, codes) => direct.push((status, codes)),
            Outcome::Posted(id) => direct_posted.push(id),
            Outcome::Unreachable => panic!("musubi stopped answering on a full disk"),
        }
    }
    top_up(&topped_up);
    let (upload_status, upload_code) = upload(&addr, &nurse, &group, 256 * 1024).await;
    let counts = gql(&addr, Some(&nurse), "{ unreadCounts { total } }", json!({})).await;
    assert!(counts["unreadCounts"]["total"].is_i64(), "{counts}");
    let (ready_status, ready_body) = readyz(&addr).await.expect("/readyz answers");

    // Space comes back: writing resumes by itself.
    std::fs::remove_file(&filler).unwrap();
    std::fs::remove_file(&topped_up).unwrap();
    let freed = Instant::now();
    load.wait_acked(10, "writes after space came back").await;
    let resumed_in = freed.elapsed();
    let finished = load.finish().await;
    let (status, code) = upload(&addr, &nurse, &group, 64 * 1024).await;
    assert_eq!(status, 201, "an upload once space is back: {code}");

    let mut conn = embedded_conn(&data).await;
    let acked: Vec<String> = finished
        .acked
        .iter()
        .chain(&direct_posted)
        .cloned()
        .collect();
    let found = assert_acked_present(&mut conn, &topic, &acked).await;
    assert_consistent(&mut conn, &topic).await;
    // No file record without its object, nor a half-written one.
    let files: Vec<(String, i64)> =
        sqlx::query_as("SELECT object_key, size_bytes FROM files WHERE group_id = $1::uuid")
            .bind(&group)
            .fetch_all(&mut conn)
            .await
            .unwrap();
    let _ = conn.close().await;
    drop(server);

    // Audit chains verify.
    let mut verify = Command::new(crate::MUSUBI_BIN);
    verify.env_remove("DATABASE_URL");
    let verified = assert_audit_verifies_by(verify, &["--data-dir".as_ref(), data.as_os_str()]);
    println!(
        "disk: {free_before} bytes free, filled with {filled}; acknowledged: {}; comments \
         found: {found} (+ body); refused by the load: {:?}; refused directly: {direct:?}, \
         posted directly: {direct_posted:?}; \
         upload on the full disk: {upload_status} {upload_code}; /readyz: {ready_status} \
         {ready_body:?}; files: {files:?}; writes back {resumed_in:?} after space was freed; \
         unreachable: {}; took {:?}\n{verified}",
        finished.acked.len(),
        finished.refused,
        finished.unreachable,
        started.elapsed()
    );
    assert_eq!(finished.unreachable, 0, "musubi stopped answering");
    for (status, codes) in finished.refused.keys().chain(direct.iter()) {
        assert!(
            *status == 503 || (*status == 200 && !codes.is_empty()),
            "a write on a full disk must be refused with an answer: {status} {codes:?}"
        );
        assert!(
            codes
                .iter()
                .all(|c| c == "STORAGE_FULL" || c == "DATABASE_UNAVAILABLE"),
            "a full disk must be named, never INTERNAL: {status} {codes:?}"
        );
    }
    assert!(
        !direct.is_empty(),
        "every comment was accepted on a disk topped up before each: {direct_posted:?}"
    );
    assert_eq!(upload_status, 503, "{upload_code}");
    assert!(
        upload_code == "STORAGE_FULL" || upload_code == "FILE_STORE_UNAVAILABLE",
        "{upload_code}"
    );
    assert_eq!(
        files.len(),
        2,
        "the two uploads that succeeded, nothing else: {files:?}"
    );
}
