//! Supervises a private PostgreSQL cluster inside Musubi's data directory.
//!
//! The cluster listens only on a unix socket in a 0700 directory (no TCP),
//! runs as an unprivileged user when Musubi runs as root, and is stopped
//! when Musubi stops, is dropped, or dies abruptly.

mod binaries;
mod error;
mod owner;
mod procfs;
mod supervise;

use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use nix::fcntl::{Flock, FlockArg};
use nix::sys::signal::Signal;
use sqlx::postgres::{PgConnectOptions, PgConnection, PgSslMode};
use sqlx::Connection;

pub use binaries::{find_binaries, PgBinaries};
pub use error::EmbedError;

use owner::RunAs;

/// The cluster's superuser, created by initdb.
pub const SUPERUSER: &str = "musubi";
/// Port number; only names the socket file, since no TCP port is opened.
const PORT: u16 = 5432;
const STARTUP_TIMEOUT: Duration = Duration::from_secs(60);
/// Rotate the server log at startup once it grows past this.
const LOG_ROTATE_BYTES: u64 = 10 * 1024 * 1024;
/// Settings that would break the isolation this crate promises.
const RESERVED_SETTINGS: &[&str] = &[
    "listen_addresses",
    "port",
    "unix_socket_directories",
    "unix_socket_permissions",
    "unix_socket_group",
    "data_directory",
    "hba_file",
    "logging_collector",
];

/// How to start the embedded cluster.
#[derive(Debug, Clone)]
pub struct EmbeddedOptions {
    /// Musubi's data dir; the cluster lives in `data_dir/postgres` (PGDATA).
    pub data_dir: PathBuf,
    /// Unprivileged OS user to run PostgreSQL as when Musubi runs as root.
    pub os_user: String,
    /// Explicit PostgreSQL bin dir (MUSUBI_PG_BIN); `None` to discover.
    pub bin_dir: Option<PathBuf>,
    /// Database to create if missing.
    pub database: String,
    /// Extra `-c name=value` server settings.
    pub settings: Vec<(String, String)>,
}

impl EmbeddedOptions {
    pub fn new(data_dir: impl Into<PathBuf>) -> Self {
        EmbeddedOptions {
            data_dir: data_dir.into(),
            os_user: "musubi".to_owned(),
            bin_dir: None,
            database: "musubi".to_owned(),
            settings: Vec::new(),
        }
    }

    /// Settings that trade durability for speed; for tests only.
    pub fn with_test_settings(mut self) -> Self {
        for (k, v) in [
            ("fsync", "off"),
            ("synchronous_commit", "off"),
            ("full_page_writes", "off"),
        ] {
            self.settings.push((k.to_owned(), v.to_owned()));
        }
        self
    }

    fn fsync_off(&self) -> bool {
        self.settings
            .iter()
            .any(|(k, v)| k == "fsync" && matches!(v.as_str(), "off" | "false" | "0" | "no"))
    }
}

/// A running PostgreSQL postmaster owned by this process.
#[derive(Debug)]
pub struct EmbeddedPostgres {
    pgdata: PathBuf,
    socket_dir: PathBuf,
    log_path: PathBuf,
    database: String,
    os_user: String,
    binaries: PgBinaries,
    pid: i32,
    exit: supervise::ExitWatch,
    /// Held while we run: tells another Musubi on the same data dir that a
    /// postmaster on this PGDATA is ours, not an orphan to be stopped.
    _lock: Flock<File>,
}

impl EmbeddedPostgres {
    pub async fn start(opts: EmbeddedOptions) -> Result<Self, EmbedError> {
        validate_database_name(&opts.database)?;
        validate_settings(&opts.settings)?;

        let explicit = opts.bin_dir.clone();
        let binaries = tokio::task::spawn_blocking(move || find_binaries(explicit.as_deref()))
            .await
            .map_err(|e| EmbedError::io("binary discovery failed", std::io::Error::other(e)))??;

        let run_as = if nix::unistd::geteuid().is_root() {
            owner::ensure_user(&opts.os_user).await?
        } else {
            RunAs::current()
        };

        let created = owner::create_dir_all_tracked(&opts.data_dir)?;
        if run_as.ids.is_some() {
            // Only directories we created: we do not loosen permissions the
            // operator chose (an unreachable ancestor is reported instead).
            for dir in &created {
                owner::set_mode(dir, 0o711)?;
            }
        }
        let data_dir = std::fs::canonicalize(&opts.data_dir).map_err(|e| {
            EmbedError::io(
                format!(
                    "could not resolve data directory {}",
                    opts.data_dir.display()
                ),
                e,
            )
        })?;
        let pgdata = data_dir.join("postgres");

        let data_version = prepare_pgdata(&pgdata, &run_as, &binaries)?;
        let lock = lock_pgdata(&pgdata)?;
        let socket_dir = prepare_socket_dir(&data_dir, &pgdata, &run_as)?;
        run_as.check_traversable(&pgdata, &pgdata)?;
        run_as.check_traversable(&socket_dir, &pgdata)?;

        if data_version.is_none() {
            initdb(&binaries, &pgdata, &data_dir, &run_as, opts.fsync_off()).await?;
        }
        let log_path = prepare_log(&pgdata, &run_as)?;
        recover_stale(&pgdata, &socket_dir).await?;

        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log_path)
            .map_err(|e| EmbedError::io(format!("could not open {}", log_path.display()), e))?;
        run_as.chown(&log_path)?;
        let log_err = log
            .try_clone()
            .map_err(|e| EmbedError::io(format!("could not open {}", log_path.display()), e))?;

        let mut cmd = std::process::Command::new(binaries.postgres());
        cmd.arg("-D")
            .arg(&pgdata)
            .arg("-k")
            .arg(&socket_dir)
            .arg("-p")
            .arg(PORT.to_string())
            .args(["-c", "listen_addresses="])
            .args(["-c", "unix_socket_permissions=0700"])
            .args(["-c", "logging_collector=off"]);
        for (name, value) in &opts.settings {
            cmd.arg("-c").arg(format!("{name}={value}"));
        }
        cmd.current_dir(&data_dir)
            .stdin(Stdio::null())
            .stdout(Stdio::from(log))
            .stderr(Stdio::from(log_err));
        if let Some((uid, gid)) = run_as.ids {
            std::os::unix::process::CommandExt::uid(&mut cmd, uid);
            std::os::unix::process::CommandExt::gid(&mut cmd, gid);
        }
        let spawned = supervise::spawn(cmd).await.map_err(|e| {
            EmbedError::io(
                format!("could not start {}", binaries.postgres().display()),
                e,
            )
        })?;
        tracing::info!(
            pid = spawned.pid,
            pgdata = %pgdata.display(),
            user = %run_as.name,
            version = %binaries.version,
            "started embedded PostgreSQL"
        );

        // From here on, Drop stops the server if anything below fails.
        let pg = EmbeddedPostgres {
            pgdata,
            socket_dir,
            log_path,
            database: opts.database,
            os_user: run_as.name,
            binaries,
            pid: spawned.pid,
            exit: spawned.exit,
            _lock: lock,
        };
        let mut conn = pg.wait_ready().await?;
        let created = create_database(&mut conn, &pg.database).await;
        let _ = conn.close().await;
        created?;
        Ok(pg)
    }

    /// Options to connect over the unix socket as the cluster superuser to the configured database.
    pub fn connect_options(&self) -> PgConnectOptions {
        self.connect_options_for(&self.database)
    }

    /// Same, for another database name on the same cluster.
    pub fn connect_options_for(&self, database: &str) -> PgConnectOptions {
        // Everything is set explicitly: the defaults come from PG* environment variables.
        PgConnectOptions::new_without_pgpass()
            .host(&self.socket_dir.to_string_lossy())
            .socket(&self.socket_dir)
            .port(PORT)
            .username(SUPERUSER)
            .database(database)
            .ssl_mode(PgSslMode::Disable)
    }

    pub fn pgdata(&self) -> &Path {
        &self.pgdata
    }

    pub fn socket_dir(&self) -> &Path {
        &self.socket_dir
    }

    /// The server's log (stdout and stderr of the postmaster).
    pub fn log_path(&self) -> &Path {
        &self.log_path
    }

    pub fn database(&self) -> &str {
        &self.database
    }

    /// The OS user the server runs as.
    pub fn os_user(&self) -> &str {
        &self.os_user
    }

    pub fn binaries(&self) -> &PgBinaries {
        &self.binaries
    }

    pub fn postmaster_pid(&self) -> u32 {
        self.pid.unsigned_abs()
    }

    /// How the postmaster exited, or `None` while it runs.
    pub fn exit_status(&self) -> Option<String> {
        if let Some(s) = self.exit.borrow().clone() {
            return Some(s);
        }
        // A closed channel means the supervisor thread is gone, and it only
        // ends after reaping the child.
        self.exit
            .has_changed()
            .is_err()
            .then(|| "unknown".to_owned())
    }

    /// Waits until the postmaster exits (it crashed, or someone stopped it); returns how.
    pub async fn exited(&self) -> String {
        let mut exit = self.exit.clone();
        let _ = exit.wait_for(|s| s.is_some()).await;
        self.exit_status().unwrap_or_else(|| "unknown".to_owned())
    }

    /// Fast shutdown (SIGINT), wait up to 30 s, then SIGQUIT; waits for the
    /// process to exit (as a last resort SIGKILL after 10 more seconds).
    /// If this future is dropped midway, Drop finishes the job.
    pub async fn stop(self) -> Result<(), EmbedError> {
        if self.exit_status().is_some() {
            return Ok(());
        }
        procfs::signal(self.pid, Signal::SIGINT);
        if self.wait_exit(Duration::from_secs(30)).await {
            tracing::info!(pid = self.pid, "embedded PostgreSQL stopped");
            return Ok(());
        }
        tracing::warn!(
            pid = self.pid,
            "PostgreSQL did not finish a fast shutdown in 30 s; sending SIGQUIT"
        );
        procfs::signal(self.pid, Signal::SIGQUIT);
        if self.wait_exit(Duration::from_secs(10)).await {
            return Ok(());
        }
        tracing::error!(
            pid = self.pid,
            "PostgreSQL ignored SIGQUIT for 10 s; sending SIGKILL"
        );
        procfs::signal(self.pid, Signal::SIGKILL);
        self.wait_exit(Duration::from_secs(10)).await;
        Ok(())
    }

    async fn wait_exit(&self, timeout: Duration) -> bool {
        let mut exit = self.exit.clone();
        // An inner Err means the channel closed, i.e. the child was reaped.
        let done = tokio::time::timeout(timeout, exit.wait_for(|s| s.is_some()))
            .await
            .is_ok();
        done
    }

    fn wait_exit_blocking(&self, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        loop {
            if self.exit_status().is_some() {
                return true;
            }
            if Instant::now() >= deadline {
                return false;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Polls until a connection succeeds; returns it for the database setup.
    async fn wait_ready(&self) -> Result<PgConnection, EmbedError> {
        let deadline = Instant::now() + STARTUP_TIMEOUT;
        let opts = self.connect_options_for("postgres");
        let mut last_error;
        loop {
            if let Some(status) = self.exit_status() {
                return Err(EmbedError::StartupExited {
                    status,
                    log: self.log_path.clone(),
                    log_tail: file_tail(&self.log_path),
                });
            }
            match tokio::time::timeout(Duration::from_secs(5), PgConnection::connect_with(&opts))
                .await
            {
                Ok(Ok(conn)) => return Ok(conn),
                Ok(Err(e)) => last_error = e.to_string(),
                Err(_) => last_error = "connection attempt timed out".to_owned(),
            }
            if Instant::now() >= deadline {
                return Err(EmbedError::StartupTimeout {
                    secs: STARTUP_TIMEOUT.as_secs(),
                    last_error,
                    log: self.log_path.clone(),
                    log_tail: file_tail(&self.log_path),
                });
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

impl Drop for EmbeddedPostgres {
    fn drop(&mut self) {
        if self.exit_status().is_some() {
            return;
        }
        // Bounded and synchronous: Drop cannot await, and leaving a server
        // behind would block the next start on this data dir.
        procfs::signal(self.pid, Signal::SIGINT);
        if self.wait_exit_blocking(Duration::from_secs(10)) {
            return;
        }
        tracing::warn!(
            pid = self.pid,
            "PostgreSQL did not stop within 10 s of SIGINT; sending SIGQUIT"
        );
        procfs::signal(self.pid, Signal::SIGQUIT);
        self.wait_exit_blocking(Duration::from_secs(3));
    }
}

/// `[a-z_][a-z0-9_]*`, at most 63 bytes (PostgreSQL's identifier limit).
fn validate_database_name(name: &str) -> Result<(), EmbedError> {
    let mut chars = name.chars();
    let ok = name.len() <= 63
        && chars
            .next()
            .is_some_and(|c| c.is_ascii_lowercase() || c == '_')
        && chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
    if ok {
        Ok(())
    } else {
        Err(EmbedError::InvalidDatabaseName(name.to_owned()))
    }
}

fn validate_settings(settings: &[(String, String)]) -> Result<(), EmbedError> {
    for (name, _) in settings {
        let invalid = |reason| EmbedError::InvalidSetting {
            name: name.clone(),
            reason,
        };
        let well_formed = name
            .chars()
            .next()
            .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
            && name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '.');
        if !well_formed {
            return Err(invalid("not a valid setting name"));
        }
        if RESERVED_SETTINGS.contains(&name.to_ascii_lowercase().as_str()) {
            return Err(invalid(
                "it is managed by Musubi (the server only listens on a private unix socket)",
            ));
        }
    }
    Ok(())
}

/// Creates PGDATA (0700, owned by the run-as user) or checks an existing one.
/// Returns the cluster's major version if it was initialised before.
fn prepare_pgdata(
    pgdata: &Path,
    run_as: &RunAs,
    binaries: &PgBinaries,
) -> Result<Option<String>, EmbedError> {
    match std::fs::symlink_metadata(pgdata) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            owner::private_dir(pgdata, run_as)?;
            return Ok(None);
        }
        Err(e) => {
            return Err(EmbedError::io(
                format!("could not inspect {}", pgdata.display()),
                e,
            ))
        }
        Ok(meta) if !meta.is_dir() => {
            return Err(EmbedError::io(
                format!("{} must be a directory", pgdata.display()),
                std::io::Error::from(std::io::ErrorKind::NotADirectory),
            ))
        }
        Ok(meta) => {
            use std::os::unix::fs::MetadataExt;
            if let Some((uid, _)) = run_as.ids {
                if meta.uid() != uid {
                    // E.g. restored from a backup as root; postgres would refuse it.
                    tracing::info!(
                        pgdata = %pgdata.display(),
                        user = %run_as.name,
                        "giving the PostgreSQL data directory to its OS user"
                    );
                    run_as.chown_tree(pgdata)?;
                }
            }
            owner::set_mode(pgdata, 0o700)?;
        }
    }
    let version_file = pgdata.join("PG_VERSION");
    let version = match std::fs::read_to_string(&version_file) {
        Ok(v) => v.trim().to_owned(),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => {
            return Err(EmbedError::io(
                format!("could not read {}", version_file.display()),
                e,
            ))
        }
    };
    if version != binaries.major_version.to_string() {
        return Err(EmbedError::VersionMismatch {
            pgdata: pgdata.to_path_buf(),
            data_version: version,
            bin_version: binaries.major_version,
            bin_dir: binaries.bin_dir.clone(),
        });
    }
    Ok(Some(version))
}

fn lock_pgdata(pgdata: &Path) -> Result<Flock<File>, EmbedError> {
    let dir = File::open(pgdata)
        .map_err(|e| EmbedError::io(format!("could not open {}", pgdata.display()), e))?;
    Flock::lock(dir, FlockArg::LockExclusiveNonblock).map_err(|(_, errno)| {
        if errno == nix::errno::Errno::EWOULDBLOCK {
            EmbedError::InUse {
                pgdata: pgdata.to_path_buf(),
            }
        } else {
            EmbedError::io(
                format!("could not lock {}", pgdata.display()),
                std::io::Error::from(errno),
            )
        }
    })
}

/// `data_dir/run`, unless that is too long for a unix socket path (108
/// bytes on Linux, including the file name); then a directory under /tmp.
fn socket_dir_for(data_dir: &Path, pgdata: &Path) -> PathBuf {
    let preferred = data_dir.join("run");
    let socket_file_len = preferred.as_os_str().len() + format!("/.s.PGSQL.{PORT}").len();
    if socket_file_len <= 100 {
        preferred
    } else {
        // Not TMPDIR: it may itself be long.
        PathBuf::from(format!(
            "/tmp/musubi-pg-{:016x}",
            fnv1a(pgdata.as_os_str().as_encoded_bytes())
        ))
    }
}

/// Stable across builds, unlike std's hasher.
fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(*b)).wrapping_mul(0x0100_0000_01b3)
    })
}

fn prepare_socket_dir(
    data_dir: &Path,
    pgdata: &Path,
    run_as: &RunAs,
) -> Result<PathBuf, EmbedError> {
    use std::os::unix::fs::{DirBuilderExt, MetadataExt};
    let dir = socket_dir_for(data_dir, pgdata);
    if dir.starts_with(data_dir) {
        owner::private_dir(&dir, run_as)?;
        return Ok(dir);
    }
    // /tmp is shared: only use a directory that we (or the run-as user) own.
    match std::fs::DirBuilder::new().mode(0o700).create(&dir) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
        Err(e) => {
            return Err(EmbedError::io(
                format!("could not create directory {}", dir.display()),
                e,
            ))
        }
    }
    let meta = std::fs::symlink_metadata(&dir)
        .map_err(|e| EmbedError::io(format!("could not inspect {}", dir.display()), e))?;
    let me = nix::unistd::geteuid().as_raw();
    if !meta.is_dir() || (meta.uid() != me && meta.uid() != run_as.uid()) {
        return Err(EmbedError::UnsafeSocketDir { dir });
    }
    run_as.chown(&dir)?;
    owner::set_mode(&dir, 0o700)?;
    Ok(dir)
}

async fn initdb(
    binaries: &PgBinaries,
    pgdata: &Path,
    cwd: &Path,
    run_as: &RunAs,
    no_sync: bool,
) -> Result<(), EmbedError> {
    tracing::info!(pgdata = %pgdata.display(), "initialising PostgreSQL data directory");
    let mut cmd = tokio::process::Command::new(binaries.initdb());
    cmd.arg("-D")
        .arg(pgdata)
        .args(["-U", SUPERUSER, "--encoding=UTF8", "--locale=C"])
        // Trust is safe: the server listens on no TCP address, and its unix
        // socket sits in a 0700 directory that only the server's user (and
        // root) can enter.
        .arg("--auth=trust");
    if no_sync {
        // fsync is off for this cluster anyway.
        cmd.arg("--no-sync");
    }
    cmd.current_dir(cwd).stdin(Stdio::null()).kill_on_drop(true);
    if let Some((uid, gid)) = run_as.ids {
        cmd.uid(uid).gid(gid);
    }
    let output = cmd
        .output()
        .await
        .map_err(|e| EmbedError::io(format!("could not run {}", binaries.initdb().display()), e))?;
    if !output.status.success() {
        return Err(EmbedError::Initdb {
            pgdata: pgdata.to_path_buf(),
            status: output.status.to_string(),
            output: tail(&[output.stdout, output.stderr].concat(), 20),
        });
    }
    Ok(())
}

/// `PGDATA/log/postgres.log`, rotated once when large.
fn prepare_log(pgdata: &Path, run_as: &RunAs) -> Result<PathBuf, EmbedError> {
    let dir = pgdata.join("log");
    owner::private_dir(&dir, run_as)?;
    let path = dir.join("postgres.log");
    if std::fs::metadata(&path).is_ok_and(|m| m.len() > LOG_ROTATE_BYTES) {
        let old = dir.join("postgres.log.1");
        std::fs::rename(&path, &old)
            .map_err(|e| EmbedError::io(format!("could not rotate {}", path.display()), e))?;
    }
    Ok(path)
}

/// Deals with what an unclean stop leaves behind: a stale postmaster.pid, or
/// an orphaned server (or its backends) still running on this PGDATA. The
/// PGDATA lock we hold means no live Musubi owns such a server.
async fn recover_stale(pgdata: &Path, socket_dir: &Path) -> Result<(), EmbedError> {
    let pid_file = pgdata.join("postmaster.pid");
    let contents = match std::fs::read_to_string(&pid_file) {
        Ok(c) => c,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => {
            return Err(EmbedError::io(
                format!("could not read {}", pid_file.display()),
                e,
            ))
        }
    };
    // Negative pids mark a single-user backend.
    let pid = contents
        .lines()
        .next()
        .and_then(|l| l.trim().parse::<i32>().ok())
        .map(i32::abs);
    if let Some(pid) = pid {
        if procfs::alive(pid)
            && procfs::is_postgres(pid)
            && procfs::cwd(pid).as_deref() == Some(pgdata)
        {
            tracing::warn!(
                pid,
                "a PostgreSQL server from an earlier run is still running on this data \
                 directory; stopping it"
            );
            stop_orphan(pid, pgdata).await?;
        }
    }
    if pid_file.exists() {
        tracing::warn!(
            pgdata = %pgdata.display(),
            "recovered from an unclean PostgreSQL stop: removing stale postmaster.pid"
        );
        remove_if_exists(&pid_file)?;
        remove_if_exists(&socket_dir.join(format!(".s.PGSQL.{PORT}.lock")))?;
    }
    // Backends of a killed postmaster exit once they notice; until then they
    // hold its shared memory and postgres refuses to start.
    let leftovers = procfs::postgres_processes_in(pgdata);
    if !leftovers.is_empty() {
        tracing::info!(
            ?leftovers,
            "waiting for leftover PostgreSQL processes to exit"
        );
        let left = procfs::wait_gone(&leftovers, Duration::from_secs(10)).await;
        for &pid in &left {
            tracing::warn!(pid, "killing leftover PostgreSQL process");
            procfs::signal(pid, Signal::SIGKILL);
        }
        procfs::wait_gone(&left, Duration::from_secs(5)).await;
    }
    Ok(())
}

async fn stop_orphan(pid: i32, pgdata: &Path) -> Result<(), EmbedError> {
    procfs::signal(pid, Signal::SIGINT);
    if procfs::wait_gone(&[pid], Duration::from_secs(30))
        .await
        .is_empty()
    {
        return Ok(());
    }
    procfs::signal(pid, Signal::SIGQUIT);
    if procfs::wait_gone(&[pid], Duration::from_secs(10))
        .await
        .is_empty()
    {
        return Ok(());
    }
    Err(EmbedError::OrphanStillRunning {
        pid,
        pgdata: pgdata.to_path_buf(),
    })
}

fn remove_if_exists(path: &Path) -> Result<(), EmbedError> {
    match std::fs::remove_file(path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(EmbedError::io(
            format!("could not remove {}", path.display()),
            e,
        )),
    }
}

async fn create_database(conn: &mut PgConnection, database: &str) -> Result<(), EmbedError> {
    let err = |source| EmbedError::CreateDatabase {
        database: database.to_owned(),
        source,
    };
    let exists: bool =
        sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1)")
            .bind(database)
            .fetch_one(&mut *conn)
            .await
            .map_err(err)?;
    if exists {
        return Ok(());
    }
    // The name was validated as [a-z_][a-z0-9_]*, so quoting it is enough.
    match sqlx::query(&format!("CREATE DATABASE \"{database}\""))
        .execute(&mut *conn)
        .await
    {
        Ok(_) => {
            tracing::info!(database, "created database");
            Ok(())
        }
        // duplicate_database: created concurrently, which is fine.
        Err(e) if e.as_database_error().and_then(|d| d.code()).as_deref() == Some("42P04") => {
            Ok(())
        }
        Err(e) => Err(err(e)),
    }
}

/// The last `lines` lines of `bytes` as text.
pub(crate) fn tail(bytes: &[u8], lines: usize) -> String {
    let text = String::from_utf8_lossy(bytes);
    let all: Vec<&str> = text.trim_end().lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

/// The end of a log file, for error messages.
fn file_tail(path: &Path) -> String {
    use std::io::{Read, Seek, SeekFrom};
    let read = || -> std::io::Result<Vec<u8>> {
        let mut f = File::open(path)?;
        let len = f.metadata()?.len();
        f.seek(SeekFrom::Start(len.saturating_sub(8192)))?;
        let mut buf = Vec::new();
        f.read_to_end(&mut buf)?;
        Ok(buf)
    };
    match read() {
        Ok(buf) => tail(&buf, 20),
        Err(e) => format!("(could not read the log: {e})"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn database_names() {
        for ok in ["musubi", "_x", "a1_b2"] {
            assert!(validate_database_name(ok).is_ok(), "{ok}");
        }
        for bad in ["", "1abc", "Musubi", "a-b", "a b", "a\"b", &"a".repeat(64)] {
            assert!(validate_database_name(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn settings() {
        let s = |k: &str| vec![(k.to_owned(), "x".to_owned())];
        assert!(validate_settings(&s("fsync")).is_ok());
        assert!(validate_settings(&s("auto_explain.log_min_duration")).is_ok());
        assert!(validate_settings(&s("listen_addresses")).is_err());
        assert!(validate_settings(&s("Port")).is_err());
        assert!(validate_settings(&s("a=b")).is_err());
        assert!(validate_settings(&s("")).is_err());
    }

    #[test]
    fn long_data_dirs_get_a_socket_dir_in_tmp() {
        let short = Path::new("/var/lib/musubi");
        assert_eq!(
            socket_dir_for(short, &short.join("postgres")),
            short.join("run")
        );
        let long = PathBuf::from(format!("/srv/{}", "x".repeat(90)));
        let dir = socket_dir_for(&long, &long.join("postgres"));
        assert!(
            dir.to_string_lossy().starts_with("/tmp/musubi-pg-"),
            "{}",
            dir.display()
        );
        // Deterministic, so a restart finds the same directory.
        assert_eq!(dir, socket_dir_for(&long, &long.join("postgres")));
    }

    #[test]
    fn tail_keeps_last_lines() {
        assert_eq!(tail(b"a\nb\nc\n", 2), "b\nc");
        assert_eq!(tail(b"", 2), "");
    }
}
