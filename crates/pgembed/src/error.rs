use std::path::PathBuf;

/// How to get the server binaries; shared by both "not found" errors.
const INSTALL_HINT: &str = "Install them: on Debian/Ubuntu \"sudo apt-get install postgresql\", \
     on Fedora/RHEL \"sudo dnf install postgresql-server\", on macOS \"brew install postgresql@16\"; \
     or set MUSUBI_PG_BIN to the directory that holds them, or set DATABASE_URL to use an \
     existing server.";

/// Errors from supervising the embedded PostgreSQL cluster. Messages are
/// written for operators: they say what failed and what to do about it.
#[derive(thiserror::Error, Debug)]
#[non_exhaustive]
pub enum EmbedError {
    #[error(
        "PostgreSQL server binaries (initdb, postgres) were not found. {}",
        INSTALL_HINT
    )]
    BinariesNotFound,

    #[error(
        "PostgreSQL server binaries (initdb, postgres) were not found in {dir} (the configured \
         PostgreSQL bin directory). {}",
        INSTALL_HINT
    )]
    BinariesNotFoundIn { dir: PathBuf },

    #[error("could not determine the PostgreSQL version from {binary}: {detail}")]
    BinaryVersion { binary: PathBuf, detail: String },

    #[error(
        "database name {0:?} is invalid: use lowercase letters, digits and underscores, \
         starting with a letter or underscore (at most 63 characters)"
    )]
    InvalidDatabaseName(String),

    #[error("server setting {name:?} is not allowed: {reason}")]
    InvalidSetting { name: String, reason: &'static str },

    #[error(
        "PostgreSQL refuses to run as root, so Musubi runs it as the OS user {user:?}, but that \
         user cannot be used: {detail}"
    )]
    OsUser { user: String, detail: String },

    #[error(
        "the OS user {user:?} does not exist and `useradd` is not available to create it. \
         Create it yourself (for example `adduser -S -H -s /sbin/nologin {user}` on Alpine), \
         or run Musubi as an unprivileged user"
    )]
    UseraddMissing { user: String },

    #[error("could not create the OS user {user:?} with useradd ({status}): {output}")]
    Useradd {
        user: String,
        status: String,
        output: String,
    },

    #[error(
        "the PostgreSQL data directory {pgdata} is not reachable by the OS user {user:?} because \
         {dir} does not allow others to enter it. Use a data directory elsewhere (--data-dir), \
         or run `chmod o+x {dir}`"
    )]
    NotTraversable {
        pgdata: PathBuf,
        dir: PathBuf,
        user: String,
    },

    #[error(
        "the PostgreSQL data directory {pgdata} is in use by another Musubi process (or another \
         server in this process); stop that first, or use another data directory"
    )]
    InUse { pgdata: PathBuf },

    #[error(
        "the socket directory {dir} exists but is not a directory owned by the PostgreSQL user; \
         remove it and start again"
    )]
    UnsafeSocketDir { dir: PathBuf },

    #[error(
        "the PostgreSQL data directory {pgdata} was created by PostgreSQL {data_version}, but the \
         installed binaries ({bin_dir}) are PostgreSQL {bin_version}. Install PostgreSQL \
         {data_version} (and point MUSUBI_PG_BIN at it), or upgrade the data directory with \
         pg_upgrade first"
    )]
    VersionMismatch {
        pgdata: PathBuf,
        data_version: String,
        bin_version: u32,
        bin_dir: PathBuf,
    },

    #[error("{context}: {source}")]
    Io {
        context: String,
        #[source]
        source: std::io::Error,
    },

    #[error("initdb failed for {pgdata} ({status}); its output ends with:\n{output}")]
    Initdb {
        pgdata: PathBuf,
        status: String,
        output: String,
    },

    #[error(
        "PostgreSQL exited during startup ({status}); see {log}, which ends with:\n{log_tail}"
    )]
    StartupExited {
        status: String,
        log: PathBuf,
        log_tail: String,
    },

    #[error(
        "PostgreSQL did not accept connections within {secs} s (last error: {last_error}); \
         see {log}, which ends with:\n{log_tail}"
    )]
    StartupTimeout {
        secs: u64,
        last_error: String,
        log: PathBuf,
        log_tail: String,
    },

    #[error(
        "a PostgreSQL server (pid {pid}) left over from an earlier run still uses {pgdata} and \
         did not stop after SIGINT and SIGQUIT; stop it manually (kill {pid}) and start again"
    )]
    OrphanStillRunning { pid: i32, pgdata: PathBuf },

    #[error("could not create database {database:?}: {source}")]
    CreateDatabase {
        database: String,
        #[source]
        source: sqlx::Error,
    },
}

impl EmbedError {
    pub(crate) fn io(context: impl Into<String>, source: std::io::Error) -> Self {
        EmbedError::Io {
            context: context.into(),
            source,
        }
    }
}
