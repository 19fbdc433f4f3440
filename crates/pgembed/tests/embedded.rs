//! Runs real PostgreSQL binaries. As root (as on CI), this exercises the
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code: fail loudly
//! unprivileged-user path: the cluster runs as the `musubi` OS user.
//!
//! Each test gets its own directory, set to 0711 so that the `musubi` user can
//! traverse it whatever the umask (a 0700 directory would not allow that, and
//! the crate deliberately does not loosen permissions of directories it did
//! not create); the data dir itself is one level down and created by the crate.

use std::error::Error;
use std::fs::Permissions;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use musubi_pgembed::{find_binaries, EmbedError, EmbeddedOptions, EmbeddedPostgres};
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use sqlx::{Connection, PgConnection};

type TestResult = Result<(), Box<dyn Error>>;

fn test_dir_with_mode(mode: u32) -> std::io::Result<tempfile::TempDir> {
    let dir = tempfile::Builder::new()
        .prefix("musubi-pgembed-")
        .tempdir_in(std::env::temp_dir())?;
    // Explicitly, since the creation mode is subject to the umask.
    std::fs::set_permissions(dir.path(), Permissions::from_mode(mode))?;
    Ok(dir)
}

fn test_dir() -> std::io::Result<tempfile::TempDir> {
    test_dir_with_mode(0o711)
}

fn options(dir: &Path) -> EmbeddedOptions {
    let mut opts = EmbeddedOptions::new(dir.join("data")).with_test_settings();
    opts.database = "musubi_test".to_owned();
    opts
}

fn alive(pid: u32) -> bool {
    // A zombie has exited already; only a missing parent keeps it around.
    let zombie = std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|s| Some(s.rsplit_once(')')?.1.split_whitespace().next()? == "Z"))
        .unwrap_or(false);
    kill(Pid::from_raw(pid as i32), None).is_ok() && !zombie
}

async fn wait_dead(pid: u32) -> bool {
    let deadline = Instant::now() + Duration::from_secs(10);
    while alive(pid) {
        if Instant::now() > deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    true
}

/// Processes whose working directory is `pgdata` (every PostgreSQL process of that cluster).
fn processes_in(pgdata: &Path) -> Vec<u32> {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| {
            std::fs::read_link(format!("/proc/{pid}/cwd"))
                .ok()
                .as_deref()
                == Some(pgdata)
        })
        .filter(|&pid| alive(pid))
        .collect()
}

fn uid_of(pid: u32) -> Option<u32> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("Uid:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

async fn select_one(pg: &EmbeddedPostgres) -> Result<i32, sqlx::Error> {
    let mut conn = PgConnection::connect_with(&pg.connect_options()).await?;
    let one: i32 = sqlx::query_scalar("SELECT 1").fetch_one(&mut conn).await?;
    conn.close().await?;
    Ok(one)
}

#[tokio::test]
async fn starts_connects_and_stops_cleanly() -> TestResult {
    let dir = test_dir()?;
    let pg = EmbeddedPostgres::start(options(dir.path())).await?;
    let pid = pg.postmaster_pid();
    let pgdata: PathBuf = pg.pgdata().to_path_buf();
    assert!(pgdata.join("PG_VERSION").exists());

    assert_eq!(select_one(&pg).await?, 1);
    // The database was created and is the one we are connected to.
    let mut conn = PgConnection::connect_with(&pg.connect_options()).await?;
    let db: String = sqlx::query_scalar("SELECT current_database()")
        .fetch_one(&mut conn)
        .await?;
    assert_eq!(db, "musubi_test");
    // No TCP listener.
    let listen: String = sqlx::query_scalar("SHOW listen_addresses")
        .fetch_one(&mut conn)
        .await?;
    assert_eq!(listen, "");
    conn.close().await?;

    if nix::unistd::geteuid().is_root() {
        let uid = uid_of(pid).ok_or("could not read the postmaster's uid")?;
        assert_ne!(uid, 0, "postgres must not run as root");
        assert_eq!(pg.os_user(), "musubi");
    }

    pg.stop().await?;
    assert!(!alive(pid), "postmaster {pid} still alive after stop");
    assert!(
        processes_in(&pgdata).is_empty(),
        "server processes left behind"
    );
    assert!(!pgdata.join("postmaster.pid").exists());
    Ok(())
}

#[tokio::test]
async fn restart_reuses_data() -> TestResult {
    let dir = test_dir()?;
    let pg = EmbeddedPostgres::start(options(dir.path())).await?;
    let mut conn = PgConnection::connect_with(&pg.connect_options()).await?;
    sqlx::query("CREATE TABLE kept (v text)")
        .execute(&mut conn)
        .await?;
    sqlx::query("INSERT INTO kept VALUES ('hello')")
        .execute(&mut conn)
        .await?;
    conn.close().await?;
    pg.stop().await?;

    let pg = EmbeddedPostgres::start(options(dir.path())).await?;
    let mut conn = PgConnection::connect_with(&pg.connect_options()).await?;
    let v: String = sqlx::query_scalar("SELECT v FROM kept")
        .fetch_one(&mut conn)
        .await?;
    assert_eq!(v, "hello");
    conn.close().await?;

    // Dropping without stop() must not leave the server running either.
    let pid = pg.postmaster_pid();
    drop(pg);
    assert!(!alive(pid), "postmaster {pid} still alive after drop");
    Ok(())
}

#[tokio::test]
async fn recovers_from_killed_postmaster() -> TestResult {
    let dir = test_dir()?;
    let pg = EmbeddedPostgres::start(options(dir.path())).await?;
    let pid = pg.postmaster_pid();
    let pgdata = pg.pgdata().to_path_buf();
    kill(Pid::from_raw(pid as i32), Signal::SIGKILL)?;
    assert!(wait_dead(pid).await, "postmaster survived SIGKILL");
    // The supervisor reaps the child first and reports its status just after: on a busy
    // machine the report can trail the reaping.
    let deadline = Instant::now() + Duration::from_secs(10);
    while pg.exit_status().is_none() && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(pg.exit_status().is_some());
    // A crashed Musubi leaves the pid file behind.
    assert!(pgdata.join("postmaster.pid").exists());
    drop(pg);

    let pg = EmbeddedPostgres::start(options(dir.path())).await?;
    assert_ne!(pg.postmaster_pid(), pid);
    assert_eq!(select_one(&pg).await?, 1);
    pg.stop().await?;
    Ok(())
}

#[tokio::test]
async fn long_data_dir_gets_a_socket_dir_in_tmp() -> TestResult {
    let dir = test_dir()?;
    let data_dir = dir.path().join("d".repeat(110));
    let mut opts = options(dir.path());
    opts.data_dir = data_dir.clone();
    let pg = EmbeddedPostgres::start(opts).await?;
    let socket_dir = pg.socket_dir().to_path_buf();
    assert!(socket_dir.starts_with("/tmp"), "{}", socket_dir.display());
    assert_eq!(select_one(&pg).await?, 1);
    pg.stop().await?;
    std::fs::remove_dir_all(&socket_dir)?;
    Ok(())
}

#[tokio::test]
async fn version_mismatch_is_reported() -> TestResult {
    let dir = test_dir()?;
    let pgdata = dir.path().join("data").join("postgres");
    std::fs::create_dir_all(&pgdata)?;
    std::fs::write(pgdata.join("PG_VERSION"), "9.6\n")?;
    let err = EmbeddedPostgres::start(options(dir.path()))
        .await
        .err()
        .ok_or("started on a data dir of another major version")?;
    assert!(matches!(err, EmbedError::VersionMismatch { .. }), "{err:?}");
    assert!(err.to_string().contains("pg_upgrade"), "{err}");
    Ok(())
}

#[tokio::test]
async fn refuses_a_data_dir_in_use() -> TestResult {
    let dir = test_dir()?;
    let pg = EmbeddedPostgres::start(options(dir.path())).await?;
    let err = EmbeddedPostgres::start(options(dir.path()))
        .await
        .err()
        .ok_or("second start on a data dir in use succeeded")?;
    assert!(matches!(err, EmbedError::InUse { .. }), "{err:?}");
    // The running server was left alone.
    assert_eq!(select_one(&pg).await?, 1);
    pg.stop().await?;
    Ok(())
}

#[tokio::test]
async fn stops_an_orphaned_server() -> TestResult {
    let dir = test_dir()?;
    let pg = EmbeddedPostgres::start(options(dir.path())).await?;
    let pgdata = pg.pgdata().to_path_buf();
    let socket_dir = pg.socket_dir().to_path_buf();
    let bin = pg.binaries().postgres();
    pg.stop().await?;

    // A server on this PGDATA that no Musubi owns, as a crashed Musubi
    // without PR_SET_PDEATHSIG would leave behind.
    let mut cmd = std::process::Command::new(bin);
    cmd.arg("-D")
        .arg(&pgdata)
        .arg("-k")
        .arg(&socket_dir)
        .args(["-c", "listen_addresses=", "-c", "fsync=off"])
        .current_dir(&pgdata)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null());
    if nix::unistd::geteuid().is_root() {
        use std::os::unix::process::CommandExt;
        let user = nix::unistd::User::from_name("musubi")?.ok_or("no musubi user")?;
        cmd.uid(user.uid.as_raw()).gid(user.gid.as_raw());
    }
    let mut orphan = cmd.spawn()?;
    let orphan_pid = orphan.id();
    let deadline = Instant::now() + Duration::from_secs(30);
    while !socket_dir.join(".s.PGSQL.5432").exists() {
        if Instant::now() > deadline {
            let _ = orphan.kill();
            return Err("the orphan server did not start".into());
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    let started = EmbeddedPostgres::start(options(dir.path())).await;
    // Reap it either way; until then it lingers as a zombie.
    let orphan_alive = alive(orphan_pid);
    if orphan_alive {
        let _ = orphan.kill();
    }
    orphan.wait()?;
    let pg = started?;
    assert!(!orphan_alive, "the orphaned server was not stopped");
    assert_ne!(pg.postmaster_pid(), orphan_pid);
    assert_eq!(select_one(&pg).await?, 1);
    pg.stop().await?;
    Ok(())
}

const HELPER_ENV: &str = "MUSUBI_PGEMBED_TEST_HELPER_DIR";

/// Not a test by itself: run by `server_dies_with_its_owner` as a stand-in
/// for a Musubi process that gets killed.
#[tokio::test]
#[ignore = "helper process for server_dies_with_its_owner"]
async fn helper_start_and_wait() -> TestResult {
    let Some(dir) = std::env::var_os(HELPER_ENV) else {
        return Ok(());
    };
    let pg = EmbeddedPostgres::start(options(Path::new(&dir))).await?;
    println!("PGEMBED_PID={}", pg.postmaster_pid());
    // Bounded, in case the owner test fails before killing us.
    tokio::time::sleep(Duration::from_secs(120)).await;
    drop(pg);
    Ok(())
}

#[tokio::test]
async fn server_dies_with_its_owner() -> TestResult {
    use std::io::{BufRead, BufReader};
    let dir = test_dir()?;
    let mut helper = std::process::Command::new(std::env::current_exe()?)
        .args([
            "--exact",
            "helper_start_and_wait",
            "--ignored",
            "--nocapture",
        ])
        .env(HELPER_ENV, dir.path())
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .spawn()?;
    let stdout = helper.stdout.take().ok_or("no helper stdout")?;
    let pid = tokio::task::spawn_blocking(move || {
        BufReader::new(stdout)
            .lines()
            .map_while(Result::ok)
            .find_map(|l| l.strip_prefix("PGEMBED_PID=")?.trim().parse::<u32>().ok())
    })
    .await?;
    let Some(pid) = pid else {
        let _ = helper.kill();
        helper.wait()?;
        return Err("the helper did not start PostgreSQL".into());
    };
    assert!(alive(pid));

    helper.kill()?; // SIGKILL: no destructors run.
    helper.wait()?;
    assert!(wait_dead(pid).await, "postgres {pid} outlived its owner");

    // The next start on the same data dir works.
    let pg = EmbeddedPostgres::start(options(dir.path())).await?;
    assert_eq!(select_one(&pg).await?, 1);
    pg.stop().await?;
    Ok(())
}

#[tokio::test]
async fn unknown_bin_dir_is_reported() -> TestResult {
    let missing = Path::new("/nonexistent/musubi/pg/bin");
    let err = find_binaries(Some(missing))
        .err()
        .ok_or("binaries found in a missing dir")?;
    assert!(
        matches!(err, EmbedError::BinariesNotFoundIn { .. }),
        "{err:?}"
    );
    assert!(
        err.to_string().contains("apt-get install postgresql"),
        "{err}"
    );
    assert!(
        err.to_string().contains("/nonexistent/musubi/pg/bin"),
        "{err}"
    );

    let dir = test_dir()?;
    let mut opts = options(dir.path());
    opts.bin_dir = Some(missing.to_path_buf());
    let err = EmbeddedPostgres::start(opts)
        .await
        .err()
        .ok_or("start succeeded without binaries")?;
    assert!(
        err.to_string().contains("apt-get install postgresql"),
        "{err}"
    );
    Ok(())
}

#[tokio::test]
async fn unreachable_data_dir_is_reported_when_root() -> TestResult {
    if !nix::unistd::geteuid().is_root() {
        return Ok(());
    }
    // Like /root: the musubi user cannot enter it.
    let dir = test_dir_with_mode(0o700)?;
    let err = EmbeddedPostgres::start(options(dir.path()))
        .await
        .err()
        .ok_or("started below a 0700 directory")?;
    assert!(matches!(err, EmbedError::NotTraversable { .. }), "{err:?}");
    let msg = err.to_string();
    assert!(
        msg.contains(&format!("chmod o+x {}", dir.path().display())),
        "{msg}"
    );
    Ok(())
}
