//! Musubi's typed configuration: read once from the environment (and an optional TOML file),
//! validated at start-up. Every setting is documented in `docs/configuration.md`.

pub mod time;

use std::collections::HashMap;
use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// A value that must never be printed: `Debug` and `Display` show a placeholder.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }
    /// The only way to read the value; grep for it when auditing where secrets go.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[redacted]")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[redacted]")
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Environment {
    Development,
    Production,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    Text,
    Json,
}

/// Where the database is: a server the operator runs, or the private cluster Musubi supervises.
#[derive(Debug, Clone)]
pub enum DatabaseSetting {
    Url(Secret),
    Embedded,
}

#[derive(Debug, Clone)]
pub struct GraphqlLimits {
    pub max_depth: usize,
    pub max_complexity: usize,
    pub max_batch: usize,
}

/// Fair use: what one session, one person, or one address without a session may ask of a
/// replica, so that nobody can take an association's capacity from the others.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FairUse {
    /// Requests one session may make per minute (pages, GraphQL requests, live-update
    /// connections). Counted across replicas through Redis when it is set.
    pub session_per_minute: u32,
    /// Requests of one session served at once by a replica; more wait their turn.
    pub session_in_flight: u32,
    /// How long a request may wait for its session's turn before it is refused.
    pub queue_wait: Duration,
    /// Requests one person may make per minute over all their sessions.
    pub person_per_minute: u32,
    /// Requests per minute from one address without a session (offices share addresses).
    pub anonymous_per_minute: u32,
}

/// Graceful overload: how much a replica takes on at once before it sheds requests with a fast
/// `503 OVERLOADED` instead of letting every request slow down.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Overload {
    /// Requests a replica serves at once, over all associations.
    pub in_flight: u32,
    /// Requests one association's pages and API calls may have served at once on a replica.
    pub association_in_flight: u32,
    /// How long a request may wait for a turn before it is shed.
    pub queue_wait: Duration,
    /// Requests that may wait at once (per association, and again in total) before the next
    /// are shed without waiting.
    pub max_waiting: u32,
}

#[derive(Debug, Clone)]
pub struct Config {
    pub environment: Environment,
    pub listen: SocketAddr,
    pub data_dir: PathBuf,
    pub database: DatabaseSetting,
    /// PostgreSQL connections one process opens at most, shared and tenant together.
    pub db_max_connections: u32,
    /// Connections one association may use at once (of the tenant connections).
    pub db_tenant_connections: u32,
    /// Tenant connections all associations may use at once; the others stay open, idle.
    pub db_tenant_in_use: u32,
    pub db_acquire_timeout: Duration,
    pub pg_os_user: String,
    pub pg_bin_dir: Option<PathBuf>,
    pub migrate_on_start: bool,
    pub log_filter: String,
    pub log_format: LogFormat,
    pub otlp_endpoint: Option<String>,
    pub otel_service_name: String,
    pub graphql: GraphqlLimits,
    pub fair_use: FairUse,
    pub overload: Overload,
    pub max_body_bytes: usize,
    pub trust_proxy: bool,
    /// Redis for state shared by replicas (rate limits; later pub/sub). None: in process.
    pub redis_url: Option<Secret>,
    /// The address people use to reach Musubi, for links in e-mails and QR codes; no
    /// trailing slash. None: `http://<listen>` (see [`Config::public_base_url`]).
    pub public_url: Option<String>,
    /// The mail server (`smtp://…` or `smtps://…`, parsed by musubi-notify). None: mails are
    /// written to the log (refused in production).
    pub smtp_url: Option<Secret>,
    /// The sender of Musubi's mails, e.g. `Musubi <no-reply@example.jp>`. None: a local
    /// placeholder (refused in production).
    pub mail_from: Option<String>,
    /// How long one mail may take to send.
    pub smtp_timeout: Duration,
    /// How long a background job is held by the worker that claimed it; a job still held when
    /// this ends was interrupted (its process died) and is retried or failed.
    pub job_lease: Duration,
    /// With e-mail mode `immediate`, how long Musubi waits after the first new comment so that
    /// one mail tells of several.
    pub mail_batch: Duration,
    pub files: FileStorage,
    /// Web push: the VAPID private key (a P-256 scalar, 32 bytes). None: a key generated once
    /// and kept in the database, shared by every replica.
    pub vapid_private_key: Option<Secret>,
    /// Web push: how push services may reach the operator (the VAPID `sub` claim), `mailto:…`
    /// or `https://…`.
    pub vapid_subject: String,
    /// Web push: push service origins accepted besides the well-known ones, as
    /// `scheme://host[:port]` (a self-hosted push service, or a local one in tests).
    pub push_extra_origins: Vec<String>,
}

/// Where shared files and photos are kept, and how large they may be.
#[derive(Debug, Clone)]
pub struct FileStorage {
    /// An S3-compatible store's address. None: Musubi runs one itself over
    /// `<data-dir>/files` (the embedded store).
    pub s3_endpoint: Option<String>,
    pub s3_bucket: String,
    pub s3_region: String,
    /// `endpoint/bucket/key` (true) rather than `bucket.endpoint/key`.
    pub s3_path_style: bool,
    /// Static keys. None: the standard AWS chain (environment, profile, web identity, instance
    /// metadata).
    pub s3_credentials: Option<(String, Secret)>,
    /// Largest file one upload may bring.
    pub max_file_bytes: u64,
    /// What one association may keep in total; 0: no limit.
    pub association_quota_bytes: u64,
}

/// A setting that is missing or wrong, named as the operator wrote it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("configuration error in {setting}: {problem}")]
pub struct ConfigError {
    pub setting: String,
    pub problem: String,
}

impl ConfigError {
    fn new(setting: &str, problem: impl Into<String>) -> Self {
        Self {
            setting: setting.to_owned(),
            problem: problem.into(),
        }
    }
}

/// Every setting Musubi reads: (environment variable, key in the TOML file).
pub const SETTINGS: &[(&str, &str)] = &[
    ("MUSUBI_ENV", "env"),
    ("MUSUBI_LISTEN", "listen"),
    ("MUSUBI_DATA_DIR", "data_dir"),
    ("DATABASE_URL", "database_url"),
    ("MUSUBI_DB_MAX_CONNECTIONS", "db_max_connections"),
    ("MUSUBI_DB_TENANT_CONNECTIONS", "db_tenant_connections"),
    ("MUSUBI_DB_TENANT_IN_USE", "db_tenant_in_use"),
    ("MUSUBI_DB_ACQUIRE_TIMEOUT_SECS", "db_acquire_timeout_secs"),
    ("MUSUBI_PG_OS_USER", "pg_os_user"),
    ("MUSUBI_PG_BIN", "pg_bin"),
    ("MUSUBI_MIGRATE_ON_START", "migrate_on_start"),
    ("MUSUBI_LOG", "log"),
    ("MUSUBI_LOG_FORMAT", "log_format"),
    ("OTEL_EXPORTER_OTLP_ENDPOINT", "otlp_endpoint"),
    ("OTEL_SERVICE_NAME", "otel_service_name"),
    ("MUSUBI_GRAPHQL_MAX_DEPTH", "graphql_max_depth"),
    ("MUSUBI_GRAPHQL_MAX_COMPLEXITY", "graphql_max_complexity"),
    ("MUSUBI_GRAPHQL_MAX_BATCH", "graphql_max_batch"),
    ("MUSUBI_MAX_BODY_BYTES", "max_body_bytes"),
    ("MUSUBI_FAIR_SESSION_PER_MINUTE", "fair_session_per_minute"),
    ("MUSUBI_FAIR_SESSION_IN_FLIGHT", "fair_session_in_flight"),
    ("MUSUBI_FAIR_QUEUE_WAIT_MS", "fair_queue_wait_ms"),
    ("MUSUBI_FAIR_PERSON_PER_MINUTE", "fair_person_per_minute"),
    (
        "MUSUBI_FAIR_ANONYMOUS_PER_MINUTE",
        "fair_anonymous_per_minute",
    ),
    ("MUSUBI_MAX_IN_FLIGHT", "max_in_flight"),
    ("MUSUBI_ASSOCIATION_IN_FLIGHT", "association_in_flight"),
    ("MUSUBI_OVERLOAD_QUEUE_WAIT_MS", "overload_queue_wait_ms"),
    ("MUSUBI_OVERLOAD_MAX_WAITING", "overload_max_waiting"),
    ("MUSUBI_TRUST_PROXY", "trust_proxy"),
    ("REDIS_URL", "redis_url"),
    ("MUSUBI_PUBLIC_URL", "public_url"),
    ("MUSUBI_SMTP_URL", "smtp_url"),
    ("MUSUBI_MAIL_FROM", "mail_from"),
    ("MUSUBI_SMTP_TIMEOUT_SECS", "smtp_timeout_secs"),
    ("MUSUBI_JOB_LEASE_SECS", "job_lease_secs"),
    ("MUSUBI_MAIL_BATCH_SECS", "mail_batch_secs"),
    ("MUSUBI_S3_ENDPOINT", "s3_endpoint"),
    ("MUSUBI_S3_BUCKET", "s3_bucket"),
    ("MUSUBI_S3_REGION", "s3_region"),
    ("MUSUBI_S3_PATH_STYLE", "s3_path_style"),
    ("MUSUBI_S3_ACCESS_KEY_ID", "s3_access_key_id"),
    ("MUSUBI_S3_SECRET_ACCESS_KEY", "s3_secret_access_key"),
    ("MUSUBI_FILE_MAX_MB", "file_max_mb"),
    ("MUSUBI_FILE_QUOTA_GB", "file_quota_gb"),
    ("MUSUBI_VAPID_PRIVATE_KEY", "vapid_private_key"),
    ("MUSUBI_VAPID_SUBJECT", "vapid_subject"),
    ("MUSUBI_PUSH_EXTRA_ORIGINS", "push_extra_origins"),
];

/// Raw values before validation: environment variables win over the file.
struct Source {
    values: HashMap<&'static str, (String, String)>,
}

impl Source {
    fn get(&self, env: &str) -> Option<(&str, &str)> {
        self.values
            .get(env)
            .map(|(name, v)| (name.as_str(), v.as_str()))
    }
}

impl Config {
    /// Reads the process environment, and the TOML file named by `MUSUBI_CONFIG` if set.
    pub fn from_env() -> Result<Self, ConfigError> {
        let env: HashMap<String, String> = std::env::vars().collect();
        let file = match env.get("MUSUBI_CONFIG") {
            Some(path) if !path.is_empty() => Some(read_file(Path::new(path))?),
            _ => None,
        };
        Self::from_sources(&env, file.as_ref())
    }

    /// Builds a configuration from explicit sources; used by `from_env` and by tests.
    pub fn from_sources(
        env: &HashMap<String, String>,
        file: Option<&toml::Table>,
    ) -> Result<Self, ConfigError> {
        let mut values = HashMap::new();
        if let Some(table) = file {
            for (key, value) in table {
                let Some((env_name, _)) = SETTINGS.iter().find(|(_, k)| k == key) else {
                    return Err(ConfigError::new(
                        &format!("MUSUBI_CONFIG file key `{key}`"),
                        "unknown setting (see docs/configuration.md)",
                    ));
                };
                let text = match value {
                    toml::Value::String(s) => s.clone(),
                    toml::Value::Integer(i) => i.to_string(),
                    toml::Value::Boolean(b) => b.to_string(),
                    other => {
                        return Err(ConfigError::new(
                            key,
                            format!(
                                "expected a string, number or boolean, got {}",
                                other.type_str()
                            ),
                        ))
                    }
                };
                values.insert(*env_name, (format!("{key} (config file)"), text));
            }
        }
        for (env_name, _) in SETTINGS {
            if let Some(v) = env.get(*env_name) {
                values.insert(*env_name, ((*env_name).to_owned(), v.clone()));
            }
        }
        let src = Source { values };

        let environment = match src.get("MUSUBI_ENV") {
            None => Environment::Development,
            Some((n, v)) => match v {
                "development" | "dev" => Environment::Development,
                "production" | "prod" => Environment::Production,
                _ => {
                    return Err(ConfigError::new(
                        n,
                        format!("expected `development` or `production`, got {v:?}"),
                    ))
                }
            },
        };
        let listen = parse_or(&src, "MUSUBI_LISTEN", "127.0.0.1:8080".parse().ok(), |v| {
            v.parse::<SocketAddr>()
                .map_err(|_| format!("expected an address like 127.0.0.1:8080, got {v:?}"))
        })?;
        let data_dir = match src.get("MUSUBI_DATA_DIR") {
            None => PathBuf::from("musubi-data"),
            Some((n, v)) if v.trim().is_empty() => {
                return Err(ConfigError::new(n, "must not be empty"))
            }
            Some((_, v)) => PathBuf::from(v),
        };
        let database = match src.get("DATABASE_URL") {
            None | Some((_, "")) => DatabaseSetting::Embedded,
            Some((n, v)) => {
                if !(v.starts_with("postgres://") || v.starts_with("postgresql://")) {
                    // Do not echo the value: it may hold a password.
                    return Err(ConfigError::new(
                        n,
                        "expected a URL starting with postgres:// or postgresql://",
                    ));
                }
                DatabaseSetting::Url(Secret::new(v))
            }
        };
        let db_max_connections = parse_number(&src, "MUSUBI_DB_MAX_CONNECTIONS", 24, 2, 1000)?;
        let db_tenant_connections = parse_number(&src, "MUSUBI_DB_TENANT_CONNECTIONS", 4, 1, 100)?;
        let db_tenant_in_use = parse_number(
            &src,
            "MUSUBI_DB_TENANT_IN_USE",
            default_tenant_in_use(cores()),
            1,
            1000,
        )?;
        let db_acquire_timeout = Duration::from_secs(parse_number(
            &src,
            "MUSUBI_DB_ACQUIRE_TIMEOUT_SECS",
            10,
            1,
            300,
        )?);
        let pg_os_user = match src.get("MUSUBI_PG_OS_USER") {
            None => "musubi".to_owned(),
            Some((n, v)) => {
                let ok = !v.is_empty()
                    && v.len() <= 32
                    && v.chars().all(|c| {
                        c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' || c == '-'
                    })
                    && !v.starts_with('-');
                if !ok || v == "root" {
                    return Err(ConfigError::new(
                        n,
                        format!(
                            "expected an unprivileged system user name like `musubi`, got {v:?}"
                        ),
                    ));
                }
                v.to_owned()
            }
        };
        let pg_bin_dir = src.get("MUSUBI_PG_BIN").map(|(_, v)| PathBuf::from(v));
        let migrate_on_start = parse_bool(&src, "MUSUBI_MIGRATE_ON_START", true)?;
        let log_filter = src
            .get("MUSUBI_LOG")
            .map(|(_, v)| v.to_owned())
            .unwrap_or_else(|| "info".to_owned());
        let log_format = match src.get("MUSUBI_LOG_FORMAT") {
            None => LogFormat::Text,
            Some((_, "text")) => LogFormat::Text,
            Some((_, "json")) => LogFormat::Json,
            Some((n, v)) => {
                return Err(ConfigError::new(
                    n,
                    format!("expected `text` or `json`, got {v:?}"),
                ))
            }
        };
        let otlp_endpoint = match src.get("OTEL_EXPORTER_OTLP_ENDPOINT") {
            None => None,
            Some((_, "")) => None,
            Some((n, v)) => {
                if !(v.starts_with("http://") || v.starts_with("https://")) {
                    return Err(ConfigError::new(
                        n,
                        format!("expected an http:// or https:// URL, got {v:?}"),
                    ));
                }
                Some(v.to_owned())
            }
        };
        let otel_service_name = src
            .get("OTEL_SERVICE_NAME")
            .map(|(_, v)| v.to_owned())
            .unwrap_or_else(|| "musubi".to_owned());
        let graphql = GraphqlLimits {
            max_depth: parse_number(&src, "MUSUBI_GRAPHQL_MAX_DEPTH", 12, 2, 64)?,
            max_complexity: parse_number(&src, "MUSUBI_GRAPHQL_MAX_COMPLEXITY", 1000, 10, 100_000)?,
            max_batch: parse_number(&src, "MUSUBI_GRAPHQL_MAX_BATCH", 10, 1, 100)?,
        };
        let fair_use = FairUse {
            session_per_minute: parse_number(
                &src,
                "MUSUBI_FAIR_SESSION_PER_MINUTE",
                600,
                10,
                10_000_000,
            )?,
            session_in_flight: parse_number(&src, "MUSUBI_FAIR_SESSION_IN_FLIGHT", 1, 1, 256)?,
            queue_wait: Duration::from_millis(parse_number(
                &src,
                "MUSUBI_FAIR_QUEUE_WAIT_MS",
                2000,
                0,
                60_000,
            )?),
            person_per_minute: parse_number(
                &src,
                "MUSUBI_FAIR_PERSON_PER_MINUTE",
                1200,
                10,
                10_000_000,
            )?,
            anonymous_per_minute: parse_number(
                &src,
                "MUSUBI_FAIR_ANONYMOUS_PER_MINUTE",
                600,
                10,
                10_000_000,
            )?,
        };
        let in_flight = parse_number(
            &src,
            "MUSUBI_MAX_IN_FLIGHT",
            default_in_flight(cores()),
            1,
            100_000,
        )?;
        let overload = Overload {
            in_flight,
            association_in_flight: parse_number(
                &src,
                "MUSUBI_ASSOCIATION_IN_FLIGHT",
                default_association_in_flight(in_flight),
                1,
                100_000,
            )?,
            queue_wait: Duration::from_millis(parse_number(
                &src,
                "MUSUBI_OVERLOAD_QUEUE_WAIT_MS",
                20,
                0,
                60_000,
            )?),
            max_waiting: parse_number(&src, "MUSUBI_OVERLOAD_MAX_WAITING", 24, 0, 1_000_000)?,
        };
        let max_body_bytes = parse_number(
            &src,
            "MUSUBI_MAX_BODY_BYTES",
            1024 * 1024,
            1024,
            64 * 1024 * 1024,
        )?;

        let trust_proxy = parse_bool(&src, "MUSUBI_TRUST_PROXY", false)?;
        let redis_url = match src.get("REDIS_URL") {
            None | Some((_, "")) => None,
            Some((n, v)) => {
                let scheme_ok = ["redis://", "rediss://", "redis+unix://", "unix://"]
                    .iter()
                    .any(|p| v.starts_with(p));
                if !scheme_ok {
                    return Err(ConfigError::new(
                        n,
                        "expected a URL starting with redis://, rediss:// or redis+unix://",
                    ));
                }
                Some(Secret::new(v))
            }
        };

        let public_url = match src.get("MUSUBI_PUBLIC_URL") {
            None | Some((_, "")) => None,
            Some((n, v)) => Some(parse_public_url(v).map_err(|p| ConfigError::new(n, p))?),
        };
        let smtp_url = match src.get("MUSUBI_SMTP_URL") {
            None | Some((_, "")) => None,
            Some((n, v)) => {
                // The rest is checked by musubi-notify at start-up. Never echo: a password.
                if !(v.starts_with("smtp://") || v.starts_with("smtps://")) {
                    return Err(ConfigError::new(
                        n,
                        "expected a URL starting with smtp:// or smtps://",
                    ));
                }
                Some(Secret::new(v))
            }
        };
        let mail_from = match src.get("MUSUBI_MAIL_FROM") {
            None | Some((_, "")) => None,
            Some((_, v)) => Some(v.trim().to_owned()),
        };
        let smtp_timeout =
            Duration::from_secs(parse_number(&src, "MUSUBI_SMTP_TIMEOUT_SECS", 15, 1, 120)?);
        let job_lease =
            Duration::from_secs(parse_number(&src, "MUSUBI_JOB_LEASE_SECS", 120, 2, 3600)?);
        if job_lease <= smtp_timeout {
            return Err(ConfigError::new(
                "MUSUBI_JOB_LEASE_SECS",
                "must be longer than MUSUBI_SMTP_TIMEOUT_SECS (a mail being sent must not look \
                 interrupted)",
            ));
        }
        let mail_batch =
            Duration::from_secs(parse_number(&src, "MUSUBI_MAIL_BATCH_SECS", 180, 0, 3600)?);
        let files = parse_files(&src)?;
        let vapid_private_key = match src.get("MUSUBI_VAPID_PRIVATE_KEY") {
            None | Some((_, "")) => None,
            // Never echo: a secret.
            Some((n, v)) => Some(parse_vapid_key(v).map_err(|p| ConfigError::new(n, p))?),
        };
        let vapid_subject = match src.get("MUSUBI_VAPID_SUBJECT") {
            None | Some((_, "")) => {
                default_vapid_subject(mail_from.as_deref(), public_url.as_deref())
            }
            Some((n, v)) => parse_vapid_subject(v).map_err(|p| ConfigError::new(n, p))?,
        };
        let push_extra_origins = match src.get("MUSUBI_PUSH_EXTRA_ORIGINS") {
            None => Vec::new(),
            Some((n, v)) => v
                .split(',')
                .map(str::trim)
                .filter(|o| !o.is_empty())
                .map(|o| parse_origin(o).map_err(|p| ConfigError::new(n, p)))
                .collect::<Result<_, _>>()?,
        };

        Ok(Self {
            vapid_private_key,
            vapid_subject,
            push_extra_origins,
            job_lease,
            mail_batch,
            files,
            public_url,
            smtp_url,
            mail_from,
            smtp_timeout,
            redis_url,
            trust_proxy,
            environment,
            listen,
            data_dir,
            database,
            db_max_connections,
            db_tenant_connections,
            db_tenant_in_use,
            db_acquire_timeout,
            pg_os_user,
            pg_bin_dir,
            migrate_on_start,
            log_filter,
            log_format,
            otlp_endpoint,
            otel_service_name,
            graphql,
            fair_use,
            overload,
            max_body_bytes,
        })
    }

    pub fn is_production(&self) -> bool {
        self.environment == Environment::Production
    }

    /// The base of links in e-mails and QR codes: `MUSUBI_PUBLIC_URL`, or `http://<listen>`.
    pub fn public_base_url(&self) -> String {
        self.public_url
            .clone()
            .unwrap_or_else(|| format!("http://{}", self.listen))
    }
}

fn parse_files(src: &Source) -> Result<FileStorage, ConfigError> {
    let text = |env: &str| match src.get(env) {
        None | Some((_, "")) => None,
        Some((_, v)) => Some(v.trim().to_owned()),
    };
    let s3_endpoint = match src.get("MUSUBI_S3_ENDPOINT") {
        None | Some((_, "")) => None,
        Some((n, v)) => Some(parse_public_url(v).map_err(|p| ConfigError::new(n, p))?),
    };
    let s3_bucket = text("MUSUBI_S3_BUCKET").unwrap_or_else(|| "musubi".to_owned());
    // S3's rules for bucket names, which every compatible store follows.
    let bucket_ok = (3..=63).contains(&s3_bucket.len())
        && s3_bucket
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '.')
        && !s3_bucket.starts_with(['-', '.'])
        && !s3_bucket.ends_with(['-', '.']);
    if !bucket_ok {
        return Err(ConfigError::new(
            "MUSUBI_S3_BUCKET",
            "expected 3–63 lowercase letters, digits, dots or hyphens",
        ));
    }
    let s3_credentials = match (
        text("MUSUBI_S3_ACCESS_KEY_ID"),
        text("MUSUBI_S3_SECRET_ACCESS_KEY"),
    ) {
        (Some(key), Some(secret)) => Some((key, Secret::new(secret))),
        (None, None) => None,
        _ => {
            return Err(ConfigError::new(
                "MUSUBI_S3_ACCESS_KEY_ID",
                "set both MUSUBI_S3_ACCESS_KEY_ID and MUSUBI_S3_SECRET_ACCESS_KEY, or neither",
            ))
        }
    };
    Ok(FileStorage {
        s3_endpoint,
        s3_bucket,
        s3_region: text("MUSUBI_S3_REGION").unwrap_or_else(|| "us-east-1".to_owned()),
        s3_path_style: parse_bool(src, "MUSUBI_S3_PATH_STYLE", true)?,
        s3_credentials,
        max_file_bytes: parse_number::<u64>(src, "MUSUBI_FILE_MAX_MB", 50, 1, 2048)? * 1024 * 1024,
        association_quota_bytes: parse_number::<u64>(
            src,
            "MUSUBI_FILE_QUOTA_GB",
            50,
            0,
            1_000_000,
        )? * 1024
            * 1024
            * 1024,
    })
}

/// `http(s)://host[:port][/path]`, without query or fragment; returned without a trailing `/`.
fn parse_public_url(v: &str) -> Result<String, String> {
    let v = v.trim();
    let rest = v
        .strip_prefix("https://")
        .or_else(|| v.strip_prefix("http://"))
        .ok_or_else(|| format!("expected an http:// or https:// URL, got {v:?}"))?;
    let host = rest.split('/').next().unwrap_or_default();
    let bad = |c: char| c.is_whitespace() || c.is_control() || "?#@\\\"<>".contains(c);
    if host.is_empty() || rest.contains(bad) {
        return Err(format!(
            "expected a URL like https://musubi.example.jp (no query, fragment or user), got {v:?}"
        ));
    }
    Ok(v.trim_end_matches('/').to_owned())
}

/// The order of P-256's group, big-endian: a private key is a scalar in 1..n.
const P256_ORDER: [u8; 32] = [
    0xff, 0xff, 0xff, 0xff, 0x00, 0x00, 0x00, 0x00, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
    0xbc, 0xe6, 0xfa, 0xad, 0xa7, 0x17, 0x9e, 0x84, 0xf3, 0xb9, 0xca, 0xc2, 0xfc, 0x63, 0x25, 0x51,
];

/// A VAPID private key: base64url (padding allowed) of a 32-byte P-256 scalar in 1..n.
fn parse_vapid_key(v: &str) -> Result<Secret, String> {
    const PROBLEM: &str = "expected the base64url encoding of a 32-byte P-256 private key \
                           (43 characters; see docs/push.md)";
    let text = v.trim().trim_end_matches('=');
    let bytes = decode_base64url(text).ok_or(PROBLEM)?;
    let scalar: [u8; 32] = bytes.try_into().map_err(|_| PROBLEM)?;
    if scalar.iter().all(|b| *b == 0) || scalar >= P256_ORDER {
        return Err(PROBLEM.to_owned());
    }
    Ok(Secret::new(text))
}

/// Base64url without padding (RFC 4648 §5); `None` for anything else.
fn decode_base64url(text: &str) -> Option<Vec<u8>> {
    let value = |c: u8| -> Option<u32> {
        Some(match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'-' => 62,
            b'_' => 63,
            _ => return None,
        } as u32)
    };
    if text.len() % 4 == 1 {
        return None;
    }
    let mut out = Vec::with_capacity(text.len() * 3 / 4);
    for chunk in text.as_bytes().chunks(4) {
        let mut acc = 0u32;
        for (i, c) in chunk.iter().enumerate() {
            acc |= value(*c)? << (18 - 6 * i);
        }
        let bytes = acc.to_be_bytes();
        out.extend_from_slice(&bytes[1..chunk.len()]);
    }
    Some(out)
}

/// `mailto:someone@example.jp` or `https://example.jp[/…]`, as RFC 8292 asks.
fn parse_vapid_subject(v: &str) -> Result<String, String> {
    let v = v.trim();
    let ok = v.len() <= 200
        && !v.contains(|c: char| c.is_whitespace() || c.is_control() || c == '"')
        && match (v.strip_prefix("mailto:"), v.strip_prefix("https://")) {
            (Some(address), _) => address
                .split_once('@')
                .is_some_and(|(local, domain)| !local.is_empty() && domain.contains('.')),
            (None, Some(rest)) => !rest.split('/').next().unwrap_or_default().is_empty(),
            (None, None) => false,
        };
    if ok {
        Ok(v.to_owned())
    } else {
        Err(format!(
            "expected mailto:someone@example.jp or an https:// URL, got {v:?}"
        ))
    }
}

/// The VAPID subject when none is set: the mail sender's address, else the public address
/// when it is https, else a placeholder (development only: production requires a sender).
fn default_vapid_subject(mail_from: Option<&str>, public_url: Option<&str>) -> String {
    let address = mail_from.map(|from| match (from.rfind('<'), from.rfind('>')) {
        (Some(open), Some(close)) if open < close => from[open + 1..close].trim(),
        _ => from.trim(),
    });
    if let Some(address) = address.filter(|a| a.contains('@') && !a.contains(char::is_whitespace)) {
        return format!("mailto:{address}");
    }
    match public_url.and_then(|u| u.strip_prefix("https://")) {
        Some(rest) => format!("https://{}", rest.split('/').next().unwrap_or_default()),
        None => "mailto:no-reply@localhost".to_owned(),
    }
}

/// `http(s)://host[:port]` without path, query or user, lower-cased and without a trailing
/// `/`.
fn parse_origin(v: &str) -> Result<String, String> {
    let lower = v.trim().to_ascii_lowercase();
    let rest = lower
        .strip_prefix("https://")
        .or_else(|| lower.strip_prefix("http://"))
        .unwrap_or_default();
    let host = rest.strip_suffix('/').unwrap_or(rest);
    let bad = |c: char| !(c.is_ascii_alphanumeric() || ".-:[]".contains(c));
    if host.is_empty() || host.contains(bad) || host.starts_with(':') {
        return Err(format!(
            "expected comma-separated origins like https://push.example.jp or \
             http://127.0.0.1:8090 (no path), got {v:?}"
        ));
    }
    Ok(lower.trim_end_matches('/').to_owned())
}

fn read_file(path: &Path) -> Result<toml::Table, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|e| {
        ConfigError::new(
            "MUSUBI_CONFIG",
            format!("cannot read {}: {e}", path.display()),
        )
    })?;
    text.parse::<toml::Table>().map_err(|e| {
        ConfigError::new(
            "MUSUBI_CONFIG",
            format!("{} is not valid TOML: {}", path.display(), e.message()),
        )
    })
}

fn parse_or<T>(
    src: &Source,
    env: &str,
    default: Option<T>,
    parse: impl Fn(&str) -> Result<T, String>,
) -> Result<T, ConfigError> {
    match src.get(env) {
        Some((name, v)) => parse(v).map_err(|p| ConfigError::new(name, p)),
        None => default.ok_or_else(|| ConfigError::new(env, "is required")),
    }
}

/// The cores this process may use (its container's CPU limit included).
fn cores() -> u32 {
    std::thread::available_parallelism()
        .map_or(2, std::num::NonZeroUsize::get)
        .try_into()
        .unwrap_or(u32::MAX)
}

/// Requests a replica serves at once by default: two per core keep the cores busy (a request
/// alternates between the server and PostgreSQL); more only make each wait longer. Measured on
/// two cores: 4 at once served more than 12 did, at under half the p95.
fn default_in_flight(cores: u32) -> u32 {
    cores.saturating_mul(2).clamp(4, 1024)
}

/// Tenant connections in use at once by default: four per core. More transactions at once than
/// that only wait longer for a CPU while holding their locks. Measured on two cores with
/// PostgreSQL beside the server: the medium mixed phase served 10–20% more actions with 8 in use
/// than with 15 or 24 (the connections beyond it stay open, keeping associations' plans).
fn default_tenant_in_use(cores: u32) -> u32 {
    cores.saturating_mul(4).clamp(4, 1000)
}

/// Two thirds of the replica's turns (rounded up): two busy associations still leave room.
fn default_association_in_flight(in_flight: u32) -> u32 {
    in_flight.saturating_mul(2).div_ceil(3).max(1)
}

fn parse_number<T>(src: &Source, env: &str, default: T, min: T, max: T) -> Result<T, ConfigError>
where
    T: std::str::FromStr + PartialOrd + fmt::Display + Copy,
{
    parse_or(src, env, Some(default), |v| {
        let n: T = v
            .trim()
            .parse()
            .map_err(|_| format!("expected a whole number, got {v:?}"))?;
        if n < min || n > max {
            return Err(format!("must be between {min} and {max}, got {n}"));
        }
        Ok(n)
    })
}

fn parse_bool(src: &Source, env: &str, default: bool) -> Result<bool, ConfigError> {
    parse_or(src, env, Some(default), |v| {
        match v.to_ascii_lowercase().as_str() {
            "1" | "true" | "yes" | "on" => Ok(true),
            "0" | "false" | "no" | "off" => Ok(false),
            _ => Err(format!("expected true or false, got {v:?}")),
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    #[test]
    fn defaults_need_no_settings() {
        let c = Config::from_sources(&env(&[]), None).expect("defaults are valid");
        assert_eq!(c.listen.to_string(), "127.0.0.1:8080");
        assert!(matches!(c.database, DatabaseSetting::Embedded));
        assert_eq!(c.environment, Environment::Development);
    }

    #[test]
    fn load_shedding_follows_the_cores_unless_set() {
        assert_eq!(default_in_flight(1), 4);
        assert_eq!(default_in_flight(2), 4);
        assert_eq!(default_in_flight(8), 16);
        assert_eq!(default_association_in_flight(4), 3);
        assert_eq!(default_association_in_flight(16), 11);
        assert_eq!(default_association_in_flight(1), 1);
        assert_eq!(default_tenant_in_use(1), 4);
        assert_eq!(default_tenant_in_use(2), 8);
        assert_eq!(default_tenant_in_use(16), 64);
        let c = Config::from_sources(&env(&[]), None).unwrap();
        assert_eq!(c.overload.in_flight, default_in_flight(cores()));
        assert_eq!(c.db_tenant_in_use, default_tenant_in_use(cores()));
        assert_eq!(c.overload.queue_wait, Duration::from_millis(20));
        // The association's share follows a replica's turns set by hand.
        let c = Config::from_sources(&env(&[("MUSUBI_MAX_IN_FLIGHT", "30")]), None).unwrap();
        assert_eq!(
            (c.overload.in_flight, c.overload.association_in_flight),
            (30, 20)
        );
        let c = Config::from_sources(
            &env(&[
                ("MUSUBI_MAX_IN_FLIGHT", "30"),
                ("MUSUBI_ASSOCIATION_IN_FLIGHT", "5"),
            ]),
            None,
        )
        .unwrap();
        assert_eq!(c.overload.association_in_flight, 5);
    }

    #[test]
    fn invalid_listen_address_names_the_setting() {
        let err = Config::from_sources(&env(&[("MUSUBI_LISTEN", "localhost")]), None).unwrap_err();
        assert_eq!(err.setting, "MUSUBI_LISTEN");
        assert!(err.problem.contains("localhost"));
    }

    #[test]
    fn database_url_never_appears_in_debug_or_errors() {
        let c = Config::from_sources(
            &env(&[("DATABASE_URL", "postgres://u:hunter2@db/musubi")]),
            None,
        )
        .expect("valid url");
        assert!(!format!("{c:?}").contains("hunter2"));
        let err = Config::from_sources(&env(&[("DATABASE_URL", "mysql://u:hunter2@db")]), None)
            .unwrap_err();
        assert!(!err.to_string().contains("hunter2"));
        assert_eq!(err.setting, "DATABASE_URL");
    }

    #[test]
    fn out_of_range_number_is_rejected() {
        let err =
            Config::from_sources(&env(&[("MUSUBI_GRAPHQL_MAX_DEPTH", "0")]), None).unwrap_err();
        assert_eq!(err.setting, "MUSUBI_GRAPHQL_MAX_DEPTH");
        let err =
            Config::from_sources(&env(&[("MUSUBI_DB_MAX_CONNECTIONS", "many")]), None).unwrap_err();
        assert!(err.problem.contains("whole number"));
    }

    #[test]
    fn environment_overrides_file_and_unknown_file_keys_fail() {
        let file: toml::Table = "listen = \"0.0.0.0:9000\"\nenv = \"production\""
            .parse()
            .expect("toml");
        let c = Config::from_sources(&env(&[("MUSUBI_LISTEN", "127.0.0.1:9001")]), Some(&file))
            .expect("valid");
        assert_eq!(c.listen.port(), 9001);
        assert!(c.is_production());
        let bad: toml::Table = "listn = \"x\"".parse().expect("toml");
        let err = Config::from_sources(&env(&[]), Some(&bad)).unwrap_err();
        assert!(err.setting.contains("listn"));
    }

    #[test]
    fn mail_settings_are_checked_and_the_smtp_url_is_never_shown() {
        let c = Config::from_sources(
            &env(&[
                ("MUSUBI_SMTP_URL", "smtps://u:hunter2@mail.example.jp"),
                ("MUSUBI_PUBLIC_URL", "https://musubi.example.jp/"),
            ]),
            None,
        )
        .expect("valid");
        assert!(!format!("{c:?}").contains("hunter2"));
        assert_eq!(c.public_base_url(), "https://musubi.example.jp");
        let err = Config::from_sources(&env(&[("MUSUBI_SMTP_URL", "mail://u:hunter2@x")]), None)
            .unwrap_err();
        assert_eq!(err.setting, "MUSUBI_SMTP_URL");
        assert!(!err.to_string().contains("hunter2"));
        let err = Config::from_sources(&env(&[("MUSUBI_PUBLIC_URL", "musubi.example.jp")]), None)
            .unwrap_err();
        assert_eq!(err.setting, "MUSUBI_PUBLIC_URL");
        let c = Config::from_sources(&env(&[("MUSUBI_LISTEN", "127.0.0.1:9000")]), None)
            .expect("valid");
        assert_eq!(c.public_base_url(), "http://127.0.0.1:9000");
    }

    #[test]
    fn file_store_settings_are_checked_and_the_secret_key_is_never_shown() {
        let c = Config::from_sources(&env(&[]), None).expect("valid");
        assert_eq!(c.files.s3_endpoint, None, "the embedded store by default");
        assert_eq!(c.files.max_file_bytes, 50 * 1024 * 1024);
        let c = Config::from_sources(
            &env(&[
                ("MUSUBI_S3_ENDPOINT", "https://s3.example.jp/"),
                ("MUSUBI_S3_BUCKET", "musubi-prod"),
                ("MUSUBI_S3_ACCESS_KEY_ID", "AKIAEXAMPLE"),
                ("MUSUBI_S3_SECRET_ACCESS_KEY", "hunter2"),
                ("MUSUBI_S3_PATH_STYLE", "false"),
                ("MUSUBI_FILE_MAX_MB", "10"),
            ]),
            None,
        )
        .expect("valid");
        assert_eq!(
            c.files.s3_endpoint.as_deref(),
            Some("https://s3.example.jp")
        );
        assert!(!c.files.s3_path_style);
        assert_eq!(c.files.max_file_bytes, 10 * 1024 * 1024);
        assert!(!format!("{c:?}").contains("hunter2"));
        for (bad, setting) in [
            (
                vec![("MUSUBI_S3_BUCKET", "Musubi_Files")],
                "MUSUBI_S3_BUCKET",
            ),
            (vec![("MUSUBI_S3_BUCKET", "ab")], "MUSUBI_S3_BUCKET"),
            (
                vec![("MUSUBI_S3_ACCESS_KEY_ID", "AKIA")],
                "MUSUBI_S3_ACCESS_KEY_ID",
            ),
            (
                vec![("MUSUBI_S3_ENDPOINT", "s3.example.jp")],
                "MUSUBI_S3_ENDPOINT",
            ),
            (vec![("MUSUBI_FILE_MAX_MB", "0")], "MUSUBI_FILE_MAX_MB"),
        ] {
            let err = Config::from_sources(&env(&bad), None).unwrap_err();
            assert_eq!(err.setting, setting, "{bad:?}");
        }
    }

    #[test]
    fn push_settings_are_checked_and_the_vapid_key_is_never_shown() {
        let c = Config::from_sources(&env(&[]), None).expect("valid");
        assert_eq!(c.vapid_private_key, None);
        assert_eq!(c.vapid_subject, "mailto:no-reply@localhost");
        assert!(c.push_extra_origins.is_empty());
        // The sender's address, else the public https address.
        let c = Config::from_sources(
            &env(&[
                ("MUSUBI_MAIL_FROM", "結び <no-reply@musubi.example.jp>"),
                ("MUSUBI_PUBLIC_URL", "https://musubi.example.jp/"),
            ]),
            None,
        )
        .expect("valid");
        assert_eq!(c.vapid_subject, "mailto:no-reply@musubi.example.jp");
        let c = Config::from_sources(
            &env(&[("MUSUBI_PUBLIC_URL", "https://m.example.jp/x")]),
            None,
        )
        .expect("valid");
        assert_eq!(c.vapid_subject, "https://m.example.jp");
        // A key from RFC 8292's kind of generator: 32 bytes, base64url.
        let key = "RS0WdYWWo1HajXg3NZR1olzCf31i-ZBGDkFyCs7j1jw";
        let c = Config::from_sources(
            &env(&[
                ("MUSUBI_VAPID_PRIVATE_KEY", key),
                ("MUSUBI_VAPID_SUBJECT", "https://musubi.example.jp/contact"),
                (
                    "MUSUBI_PUSH_EXTRA_ORIGINS",
                    "http://127.0.0.1:8090, HTTPS://Push.Example.jp/",
                ),
            ]),
            None,
        )
        .expect("valid");
        assert_eq!(c.vapid_private_key.as_ref().map(Secret::expose), Some(key));
        assert!(!format!("{c:?}").contains(key));
        assert_eq!(c.vapid_subject, "https://musubi.example.jp/contact");
        assert_eq!(
            c.push_extra_origins,
            ["http://127.0.0.1:8090", "https://push.example.jp"]
        );
        let order = "_____wAAAAD__________7zm-q2nF56E87nKwvxjJVE";
        for (bad, setting) in [
            (
                vec![("MUSUBI_VAPID_PRIVATE_KEY", "short")],
                "MUSUBI_VAPID_PRIVATE_KEY",
            ),
            (
                vec![("MUSUBI_VAPID_PRIVATE_KEY", order)],
                "MUSUBI_VAPID_PRIVATE_KEY",
            ),
            (
                vec![(
                    "MUSUBI_VAPID_PRIVATE_KEY",
                    "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
                )],
                "MUSUBI_VAPID_PRIVATE_KEY",
            ),
            (
                vec![("MUSUBI_VAPID_SUBJECT", "someone@example.jp")],
                "MUSUBI_VAPID_SUBJECT",
            ),
            (
                vec![("MUSUBI_VAPID_SUBJECT", "http://example.jp")],
                "MUSUBI_VAPID_SUBJECT",
            ),
            (
                vec![("MUSUBI_PUSH_EXTRA_ORIGINS", "push.example.jp")],
                "MUSUBI_PUSH_EXTRA_ORIGINS",
            ),
            (
                vec![("MUSUBI_PUSH_EXTRA_ORIGINS", "https://push.example.jp/path")],
                "MUSUBI_PUSH_EXTRA_ORIGINS",
            ),
            (
                vec![("MUSUBI_PUSH_EXTRA_ORIGINS", "https://u:p@push.example.jp")],
                "MUSUBI_PUSH_EXTRA_ORIGINS",
            ),
        ] {
            let err = Config::from_sources(&env(&bad), None).unwrap_err();
            assert_eq!(err.setting, setting, "{bad:?}");
            assert!(!err.to_string().contains("AAAAAAAA"), "{err}");
        }
    }

    #[test]
    fn root_is_refused_as_database_os_user() {
        let err = Config::from_sources(&env(&[("MUSUBI_PG_OS_USER", "root")]), None).unwrap_err();
        assert_eq!(err.setting, "MUSUBI_PG_OS_USER");
    }
}
