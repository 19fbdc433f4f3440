//! Wiring: configuration → database → services → the axum application. Nothing here decides
//! behaviour; it connects the crates that do.

pub mod admission;
pub mod backup;
pub mod cli;
pub mod cli_audit;
pub mod fair_use;
mod turns;

use anyhow::Context as _;
use axum::extract::State;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::IntoResponse;
use axum::routing::get;
use axum::Router;
use musubi_config::{Config, DatabaseSetting};
use musubi_db::Db;
use musubi_domain::operator::Operator;
use musubi_domain::passkeys::RelyingParty;
use musubi_domain::Services;
use musubi_pgembed::{EmbeddedOptions, EmbeddedPostgres};
use sqlx::postgres::PgConnectOptions;
use std::str::FromStr;
use std::time::Duration;
use tower_http::compression::predicate::{Predicate, SizeAbove};
use tower_http::compression::{CompressionLayer, CompressionLevel};
use tower_http::set_header::SetResponseHeaderLayer;

/// The database Musubi talks to, and the private cluster behind it when it runs one.
pub struct Database {
    pub db: Db,
    pub embedded: Option<EmbeddedPostgres>,
}

impl Database {
    /// Stops cleanly: pool first, then the private cluster.
    pub async fn shutdown(self) {
        self.db.close().await;
        if let Some(pg) = self.embedded {
            if let Err(e) = pg.stop().await {
                tracing::error!(error = %e, "stopping the embedded PostgreSQL failed");
            }
        }
    }
}

/// The private cluster under the data directory (pgembed creates the directory itself,
/// traversable by the cluster's user).
fn embedded_options(config: &Config) -> EmbeddedOptions {
    let mut opts = EmbeddedOptions::new(&config.data_dir);
    opts.os_user = config.pg_os_user.clone();
    opts.bin_dir = config.pg_bin_dir.clone();
    opts
}

/// Starts the private cluster again whenever it stops while Musubi serves (a crash, or the
/// disk too full for it to recover); requests meanwhile get `DATABASE_UNAVAILABLE` and the
/// pool reconnects by itself. Never returns; dropped when serving ends.
async fn keep_embedded_running(
    slot: &mut Option<EmbeddedPostgres>,
    options: EmbeddedOptions,
) -> std::convert::Infallible {
    loop {
        if let Some(pg) = slot.as_ref() {
            let status = pg.exited().await;
            tracing::error!(
                %status,
                log = %pg.log_path().display(),
                "the embedded PostgreSQL stopped; starting it again"
            );
            *slot = None;
        }
        let mut delay = Duration::from_secs(1);
        // Only the cluster that was there: a new, empty one would serve nobody's data.
        let version_file = options.data_dir.join("postgres/PG_VERSION");
        while slot.is_none() {
            if !version_file.exists() {
                tracing::error!(
                    missing = %version_file.display(),
                    "the embedded PostgreSQL's data directory is gone; not creating a new one"
                );
                tokio::time::sleep(Duration::from_secs(30)).await;
                continue;
            }
            match EmbeddedPostgres::start(options.clone()).await {
                Ok(pg) => {
                    tracing::warn!(
                        pid = pg.postmaster_pid(),
                        "the embedded PostgreSQL runs again"
                    );
                    *slot = Some(pg);
                }
                Err(e) => {
                    tracing::error!(
                        error = %e,
                        retry_in_secs = delay.as_secs(),
                        "cannot start the embedded PostgreSQL"
                    );
                    tokio::time::sleep(delay).await;
                    delay = (delay * 2).min(Duration::from_secs(30));
                }
            }
        }
    }
}

/// Connects to `DATABASE_URL`, or starts the private cluster under the data directory.
pub async fn open_database(config: &Config) -> anyhow::Result<Database> {
    let (options, embedded) = match &config.database {
        DatabaseSetting::Url(url) => {
            let opts = PgConnectOptions::from_str(url.expose()).map_err(|_| {
                anyhow::anyhow!("configuration error in DATABASE_URL: not a valid PostgreSQL URL")
            })?;
            (opts, None)
        }
        DatabaseSetting::Embedded => {
            let pg = EmbeddedPostgres::start(embedded_options(config)).await?;
            tracing::info!(pgdata = %pg.pgdata().display(), "embedded PostgreSQL is running");
            (pg.connect_options(), Some(pg))
        }
    };
    let db = match Db::connect(
        options,
        config.db_max_connections,
        config.db_acquire_timeout,
    )
    .await
    {
        Ok(db) => db.with_tenant_caps(config.db_tenant_connections, config.db_tenant_in_use),
        Err(e) => {
            if let Some(pg) = embedded {
                let _ = pg.stop().await;
            }
            return Err(anyhow::anyhow!("cannot connect to PostgreSQL: {e}"));
        }
    };
    Ok(Database { db, embedded })
}

/// The services, with rate limits in Redis when `REDIS_URL` is set (shared by replicas),
/// mail through `MUSUBI_SMTP_URL` (or to the log; refused in production) and passkeys for the
/// host of `MUSUBI_PUBLIC_URL`.
pub async fn services(config: &Config, db: Db) -> anyhow::Result<Services> {
    let mailer = musubi_notify::Mailer::from_config(config)?;
    let limiter = match &config.redis_url {
        Some(url) => {
            let store = musubi_auth::ratelimit::RedisStore::connect(url.expose())
                .await
                .map_err(|e| {
                    anyhow::anyhow!("cannot connect to Redis (REDIS_URL): {}", e.code())
                })?;
            musubi_auth::ratelimit::RateLimiter::new(std::sync::Arc::new(store))
        }
        None => musubi_auth::ratelimit::RateLimiter::in_process(),
    };
    // Live updates reach every replica through Redis pub/sub; one server keeps them in process.
    let bus = match &config.redis_url {
        Some(url) => Some(
            musubi_realtime::Bus::redis(url.expose())
                .await
                .map_err(|e| {
                    // Never the error's text: it may quote the URL, password included.
                    let why = match &e {
                        musubi_realtime::BusError::Redis(r) => format!("{:?}", r.kind()),
                        other => other.to_string(),
                    };
                    anyhow::anyhow!("cannot connect to Redis (REDIS_URL) for live updates: {why}")
                })?,
        ),
        None => None,
    };
    let relying_party = relying_party(config)?;
    Services::build(db, limiter)
        .await
        .map(|s| s.with_mailer(mailer))
        .map(|s| {
            s.with_job_timing(musubi_domain::jobs::JobTiming {
                lease: config.job_lease,
                mail_batch: config.mail_batch,
            })
        })
        .map(|s| s.with_person_limit(config.fair_use.person_per_minute))
        .map(|s| s.with_push(musubi_domain::push::PushSettings::from_config(config)))
        .map(|s| match relying_party {
            Some(rp) => s.with_relying_party(rp),
            None => s,
        })
        .map(|s| match bus {
            Some(bus) => s.with_bus(bus),
            None => s,
        })
        .map_err(|e| anyhow::anyhow!("cannot build the services: {e}"))
}

/// Removes abandoned and long-deleted files' objects every ten minutes; stops when dropped.
/// Replicas may all run it (removing an object twice is not an error).
fn spawn_file_sweep(services: musubi_domain::Services) -> EventPurge {
    EventPurge(tokio::spawn(async move {
        let mut ticks = tokio::time::interval(std::time::Duration::from_secs(600));
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            ticks.tick().await;
            let n = services.sweep_files_everywhere(200).await;
            if n > 0 {
                tracing::info!(count = n, "abandoned or deleted file objects removed");
            }
        }
    }))
}

/// The background-job loop (see `musubi_domain::jobs`): every replica runs it; each job goes
/// to one of them. Stops when dropped.
/// The longest the job loop drains the queue before it looks at the schedule and recovery again.
const JOB_TURN: std::time::Duration = std::time::Duration::from_secs(5);

fn spawn_jobs(services: musubi_domain::Services, lease: std::time::Duration) -> EventPurge {
    // Often enough that a job whose worker died waits about one lease, not much more.
    let recovery_every = (lease / 2).clamp(
        std::time::Duration::from_secs(1),
        std::time::Duration::from_secs(15),
    );
    EventPurge(tokio::spawn(async move {
        // Interrupted jobs are looked for at start (a restarted process finds its own) and
        // then every so often.
        let mut next_recovery = tokio::time::Instant::now();
        let mut next_purge = tokio::time::Instant::now();
        let mut ticks = tokio::time::interval(std::time::Duration::from_secs(2));
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            ticks.tick().await;
            let now = chrono::Utc::now();
            if tokio::time::Instant::now() >= next_recovery {
                next_recovery += recovery_every;
                if let Err(e) = services.recover_jobs(now).await {
                    tracing::warn!(
                        code = e.code.as_str(),
                        "looking for interrupted jobs failed"
                    );
                }
            }
            if tokio::time::Instant::now() >= next_purge {
                next_purge += std::time::Duration::from_secs(3600);
                match services.purge_jobs(now).await {
                    Ok(0) => {}
                    Ok(n) => tracing::info!(count = n, "old finished jobs purged"),
                    Err(e) => tracing::warn!(code = e.code.as_str(), "purging old jobs failed"),
                }
            }
            if let Err(e) = services.enqueue_schedule(now).await {
                tracing::warn!(
                    code = e.code.as_str(),
                    "enqueueing the notification schedule failed"
                );
            }
            // Run what is due until none is left (the digests a schedule run has just enqueued
            // go at once, not on the next turn), yielding to people while they wait, and back
            // here within a few seconds to enqueue the next schedule run and recover jobs.
            if let Err(e) = services.run_due_jobs_yielding(JOB_TURN).await {
                tracing::warn!(code = e.code.as_str(), "running background jobs failed");
            }
        }
    }))
}

/// Live-update events older than this are purged: a client away longer reloads instead of
/// catching up.
const EVENT_RETENTION_DAYS: i32 = 7;

/// Purges old live-update events hourly; stops when dropped. Replicas may all run it.
struct EventPurge(tokio::task::JoinHandle<()>);

impl Drop for EventPurge {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Ends the group memberships whose end has come, every minute (see
/// `Services::end_expired_memberships`); stops with the server.
fn spawn_membership_expiry(services: musubi_domain::Services) -> EventPurge {
    EventPurge(tokio::spawn(async move {
        let mut ticks = tokio::time::interval(std::time::Duration::from_secs(60));
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            ticks.tick().await;
            match services.end_expired_memberships(500).await {
                Ok(0) => {}
                Ok(n) => tracing::info!(count = n, "expired group memberships ended"),
                Err(e) => tracing::warn!(error = %e, "ending expired group memberships failed"),
            }
        }
    }))
}

fn spawn_event_purge(db: Db) -> EventPurge {
    EventPurge(tokio::spawn(async move {
        let mut ticks = tokio::time::interval(std::time::Duration::from_secs(60 * 60));
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            ticks.tick().await;
            match musubi_db::groups::purge_events(db.pool(), EVENT_RETENTION_DAYS).await {
                Ok(0) => {}
                Ok(n) => tracing::info!(count = n, "old live-update events purged"),
                Err(e) => tracing::warn!(error = %e, "purging old live-update events failed"),
            }
        }
    }))
}

/// The WebAuthn relying party for the public URL; `None` (passkeys unavailable, said in the
/// log) when its host is an IP address.
pub fn relying_party(config: &Config) -> anyhow::Result<Option<RelyingParty>> {
    let url = config.public_base_url();
    let rp = RelyingParty::for_public_url(&url)
        .map_err(|e| anyhow::anyhow!("configuration error in MUSUBI_PUBLIC_URL: {e}"))?;
    match &rp {
        Some(rp) => tracing::info!(rp_id = rp.rp_id(), "passkeys are available"),
        None => tracing::warn!(
            public_url = %url,
            "passkeys are unavailable: the public URL is an IP address; set MUSUBI_PUBLIC_URL \
             to a host name (http://localhost:8080 works on this machine)"
        ),
    }
    Ok(rp)
}

/// The whole HTTP application. The entry points get the services; only the server's own
/// endpoints (readiness, metrics) see the database handle.
pub fn app(config: &Config, operator: &Operator) -> Router {
    let services = operator.services().clone();
    let pressure = services.pressure().clone();
    // Install the metrics recorder before the first request is counted.
    let _ = musubi_telemetry::metrics_handle();
    let schema = musubi_graphql::build_schema(config, services.clone());
    let gateway = musubi_graphql::Gateway::new(schema, services.clone(), config.graphql.max_batch);
    let ops = Router::new()
        .route("/healthz", get(|| async { "ok" }))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .with_state(operator.db().clone());
    Router::new()
        .merge(ops)
        .merge(musubi_graphql::router(gateway, config.max_body_bytes))
        .merge(musubi_web::router(services))
        // Innermost: a request refused by fair use never takes a turn here.
        .layer(axum::middleware::from_fn_with_state(
            admission::Admission::new(config.overload, pressure),
            admission::layer,
        ))
        // Inside the telemetry layer: it needs the client's address, and refusals are counted.
        .layer(axum::middleware::from_fn_with_state(
            fair_use::FairUseLayer::new(operator.limiter().clone(), config.fair_use),
            fair_use::layer,
        ))
        .layer(axum::middleware::from_fn_with_state(
            musubi_telemetry::TrustProxy(config.trust_proxy),
            musubi_telemetry::http_layer,
        ))
        .layer(SetResponseHeaderLayer::if_not_present(
            header::X_CONTENT_TYPE_OPTIONS,
            HeaderValue::from_static("nosniff"),
        ))
        .layer(compression())
}

/// Brotli or gzip for pages, styles, scripts and API answers when the client accepts them: a
/// phone on a weak signal in a patient's home gets a topic several times faster. Quality 4
/// keeps it cheap per request; answers under 1 KiB are sent as they are, and so are downloads
/// (CSV exports keep their file name and length as browsers expect). Pages carry no secret that
/// a compressed size could reveal: their CSRF token is masked afresh each time.
fn compression() -> CompressionLayer<impl Predicate> {
    let worth_it = SizeAbove::new(1024).and(compressible);
    CompressionLayer::new()
        .quality(CompressionLevel::Precise(4))
        .compress_when(worth_it)
}

/// The media types worth compressing: text the pages and the API send.
fn compressible(
    _: StatusCode,
    _: axum::http::Version,
    headers: &axum::http::HeaderMap,
    _: &axum::http::Extensions,
) -> bool {
    const TYPES: [&str; 7] = [
        "text/html",
        "text/css",
        "text/javascript",
        "application/json",
        "application/graphql-response+json",
        "application/manifest+json",
        "image/svg+xml",
    ];
    let Some(media) = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
    else {
        return false;
    };
    let media = media.trim();
    TYPES.iter().any(|t| media.eq_ignore_ascii_case(t))
}

async fn readyz(
    State(db): State<Db>,
    files: Option<axum::Extension<musubi_storage::Store>>,
) -> impl IntoResponse {
    if let Err(reason) = db.readiness().await {
        return (
            StatusCode::SERVICE_UNAVAILABLE,
            format!("not ready: {reason}"),
        );
    }
    // The file store answers "not there" for a key nobody writes, or fails. Every replica
    // shares it, so its outage is said but does not take replicas out of service: pages and
    // posts still work, and only uploads and downloads fail (FILE_STORE_UNAVAILABLE).
    if let Some(axum::Extension(store)) = files {
        if let Err(e) = store.exists(".musubi-readiness").await {
            tracing::warn!(error = %e, "the file store is not answering");
            return (
                StatusCode::OK,
                "ready; the file store is unavailable (uploads and downloads fail)".to_owned(),
            );
        }
    }
    (StatusCode::OK, "ready".to_owned())
}

/// The file store: the one configured (`MUSUBI_S3_*`), or one Musubi runs itself over
/// `<data-dir>/files`, which lives as long as this value.
pub struct FileStore {
    pub store: musubi_storage::Store,
    embedded: Option<musubi_storage::embedded::Embedded>,
}

impl FileStore {
    /// Whether the store runs inside this process (no `MUSUBI_S3_ENDPOINT`).
    pub fn is_embedded(&self) -> bool {
        self.embedded.is_some()
    }

    /// The services' view of the store, with the configured limits.
    pub fn service(&self, config: &Config) -> musubi_domain::files::FileService {
        musubi_domain::files::FileService::new(
            self.store.clone(),
            config.files.max_file_bytes,
            config.files.association_quota_bytes,
        )
    }

    /// Stops the embedded store (tests: the store failing midway). An external one is left
    /// alone.
    pub fn stop_embedded(&self) {
        if let Some(e) = &self.embedded {
            e.stop();
        }
    }
}

/// Connects to the file store, starting the embedded one when none is configured, and makes
/// sure the bucket exists. An external store that cannot be reached yet is reported and left
/// to `/readyz`; the embedded one must start.
pub async fn open_files(config: &Config) -> anyhow::Result<FileStore> {
    let f = &config.files;
    let (settings, embedded) = match &f.s3_endpoint {
        Some(endpoint) => (
            musubi_storage::Settings {
                endpoint: endpoint.clone(),
                region: f.s3_region.clone(),
                bucket: f.s3_bucket.clone(),
                path_style: f.s3_path_style,
                credentials: f.s3_credentials.clone(),
            },
            None,
        ),
        None => {
            let dir = config.data_dir.join("files");
            let embedded = musubi_storage::embedded::Embedded::start(&dir)
                .await
                .with_context(|| format!("cannot start the file store over {}", dir.display()))?;
            (embedded.settings().clone(), Some(embedded))
        }
    };
    let store = musubi_storage::Store::connect(&settings).await;
    match store.ensure_bucket().await {
        Ok(()) => tracing::info!(
            endpoint = %settings.endpoint,
            bucket = store.bucket(),
            embedded = embedded.is_some(),
            "file store ready"
        ),
        Err(e) if embedded.is_none() => {
            tracing::warn!(endpoint = %settings.endpoint, error = %e, "the file store is not reachable yet")
        }
        Err(e) => anyhow::bail!("the embedded file store does not answer: {e}"),
    }
    Ok(FileStore { store, embedded })
}

async fn metrics(State(db): State<Db>) -> impl IntoResponse {
    let pool = db.pool();
    metrics::gauge!("musubi_db_pool_connections").set(f64::from(pool.size()));
    metrics::gauge!("musubi_db_pool_idle_connections").set(pool.num_idle() as f64);
    let tenants = db.tenant_connections();
    metrics::gauge!("musubi_db_tenant_connections").set(tenants.open as f64);
    metrics::gauge!("musubi_db_tenant_idle_connections").set(tenants.idle as f64);
    metrics::counter!("musubi_db_tenant_rekeys_total").absolute(tenants.rekeys);
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        musubi_telemetry::metrics_handle().render(),
    )
}

/// Runs the server until Ctrl-C or SIGTERM. With `demo`, seeds the demo data first when the
/// database holds no association.
/// `demo`: seed the demo data into an empty database, with that many extra fictional patients.
pub async fn serve(config: Config, demo: Option<usize>) -> anyhow::Result<()> {
    let listener = tokio::net::TcpListener::bind(config.listen)
        .await
        .with_context(|| {
            format!(
                "cannot listen on {} (MUSUBI_LISTEN / --listen)",
                config.listen
            )
        })?;
    let mut database = open_database(&config).await?;
    let result = match database.embedded.take() {
        None => serve_on(&config, listener, &database, demo).await,
        Some(pg) => {
            let mut slot = Some(pg);
            let result = tokio::select! {
                r = serve_on(&config, listener, &database, demo) => r,
                never = keep_embedded_running(&mut slot, embedded_options(&config)) => match never {},
            };
            database.embedded = slot;
            result
        }
    };
    database.shutdown().await;
    result
}

async fn serve_on(
    config: &Config,
    listener: tokio::net::TcpListener,
    database: &Database,
    demo: Option<usize>,
) -> anyhow::Result<()> {
    // Links in mails point at the port really bound (`--listen 127.0.0.1:0` picks one).
    let mut config = config.clone();
    if config.public_url.is_none() {
        config.public_url = Some(format!("http://{}", listener.local_addr()?));
    }
    let config = &config;
    let files = open_files(config).await?;
    let services = services(config, database.db.clone())
        .await?
        .with_files(files.service(config));
    let operator = Operator::new(services.clone(), database.db.clone());
    if config.migrate_on_start {
        let report = database.db.migrate().await.context("migration failed")?;
        tracing::info!(
            tenants = report.tenants_total,
            changed = !report.is_noop(),
            "schemas are current"
        );
    }
    if let Some(patients) = demo {
        if musubi_demo::seed_if_empty(&operator)
            .await
            .map_err(|e| anyhow::anyhow!("seeding demo data failed: {e}"))?
        {
            musubi_demo::seed_register(&operator, patients)
                .await
                .map_err(|e| anyhow::anyhow!("seeding demo patients failed: {e}"))?;
            tracing::info!("demo data seeded");
        }
    }
    // Applies each association's audit-log retention daily; stops with the server.
    let _audit_purge = musubi_domain::audit::spawn_daily_purge(database.db.clone());
    let _event_purge = spawn_event_purge(database.db.clone());
    let _membership_expiry = spawn_membership_expiry(operator.services().clone());
    let _file_sweep = spawn_file_sweep(operator.services().clone());
    let _jobs = spawn_jobs(operator.services().clone(), config.job_lease);
    let addr = listener.local_addr()?;
    let app = app(config, &operator).layer(axum::Extension(files.store.clone()));
    let shutdown = shutdown_signal()?;
    println!("Musubi is running at http://{addr}/  (Ctrl-C to stop)");
    // Small answers (JSON, fragments, the last piece of a file) go out at once, not after
    // the client's delayed acknowledgement.
    let listener = axum::serve::ListenerExt::tap_io(listener, |tcp| {
        if let Err(e) = tcp.set_nodelay(true) {
            tracing::debug!(error = %e, "TCP_NODELAY");
        }
    });
    axum::serve(
        listener,
        app.into_make_service_with_connect_info::<std::net::SocketAddr>(),
    )
    .with_graceful_shutdown(shutdown)
    .await
    .context("server error")?;
    tracing::info!("stopping");
    services.flush_refusals().await;
    Ok(())
}

/// Registers the handlers now, before the server announces itself: a Ctrl-C that arrives
/// right after the announcement must stop the server gracefully, not kill it.
pub(crate) fn shutdown_signal() -> anyhow::Result<impl std::future::Future<Output = ()>> {
    use tokio::signal::unix::{signal, SignalKind};
    let mut interrupt = signal(SignalKind::interrupt()).context("cannot handle SIGINT")?;
    let mut terminate = signal(SignalKind::terminate()).context("cannot handle SIGTERM")?;
    Ok(async move {
        tokio::select! {
            _ = interrupt.recv() => {},
            _ = terminate.recv() => {},
        }
    })
}

#[cfg(test)]
mod compression_tests {
    use super::*;

    #[test]
    fn text_is_compressed_and_downloads_and_images_are_not() {
        let check = |content_type: &str| {
            let mut headers = axum::http::HeaderMap::new();
            headers.insert(
                header::CONTENT_TYPE,
                HeaderValue::from_str(content_type).unwrap(),
            );
            compressible(
                StatusCode::OK,
                axum::http::Version::HTTP_11,
                &headers,
                &axum::http::Extensions::new(),
            )
        };
        for yes in [
            "text/html; charset=utf-8",
            "text/css; charset=utf-8",
            "text/javascript; charset=utf-8",
            "application/json",
            "Application/JSON; charset=utf-8",
            "application/manifest+json",
            "image/svg+xml",
        ] {
            assert!(check(yes), "{yes}");
        }
        for no in [
            "text/csv; charset=utf-8",
            "image/png",
            "application/octet-stream",
            "",
        ] {
            assert!(!check(no), "{no}");
        }
    }
}
