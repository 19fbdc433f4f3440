//! Test harness shared by every crate's tests: a fresh, migrated database per test (cloned
//! from a template), the application wired to it, and small request helpers.
//!
//! The PostgreSQL server comes from `MUSUBI_TEST_DATABASE_URL` (an account that may create
//! databases); `cargo xtask test` starts a private one and sets it.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code: fail loudly

use axum::body::Body;
use axum::Router;
use http::{Request, StatusCode};
use musubi_config::Config;
use musubi_db::Db;
use musubi_domain::audit::{self, AuditFilter};
use musubi_domain::operator::Operator;
use musubi_domain::Services;
use sqlx::postgres::PgConnectOptions;
use sqlx::{ConnectOptions, Connection, PgConnection};
use std::collections::HashMap;
use std::ffi::OsStr;
use std::process::{Command, Stdio};
use std::str::FromStr;
use std::time::Duration;
use tower::ServiceExt;

pub mod builders;
pub mod demo;
pub mod photos;
pub mod sqlcount;
pub mod web;
pub mod webauthn;
pub mod ws;

pub use builders::{
    api_session_token, association, group_input, group_with_members, insert_member, totp_code,
};

pub const TEST_DATABASE_ENV: &str = "MUSUBI_TEST_DATABASE_URL";

/// The API's password sign-in; variables `e` (address) and `p` (password).
pub const SIGN_IN: &str =
    "mutation($e: String!, $p: String!) { signIn(email: $e, password: $p) { token next } }";

/// Admin connection options for the test server.
pub fn admin_options() -> PgConnectOptions {
    let url = std::env::var(TEST_DATABASE_ENV).unwrap_or_else(|_| {
        panic!(
            "{TEST_DATABASE_ENV} is not set: run the tests with `cargo xtask test`, or point it \
             at a PostgreSQL server where this user is a superuser"
        )
    });
    PgConnectOptions::from_str(&url)
        .unwrap_or_else(|e| panic!("{TEST_DATABASE_ENV} is not a valid URL: {e}"))
        .disable_statement_logging()
}

/// A fresh database holding the migrated core schema and no association.
pub struct TestDb {
    pub db: Db,
    pub name: String,
    pub options: PgConnectOptions,
}

async fn ensure_template(admin: &PgConnectOptions) -> String {
    let template = format!("musubi_tpl_{}", musubi_db::migrations_fingerprint());
    let mut conn = PgConnection::connect_with(admin)
        .await
        .expect("connect to test server");
    // Parallel test processes: one builds the template, the others wait for it.
    sqlx::query("SELECT pg_advisory_lock(7342001)")
        .execute(&mut conn)
        .await
        .expect("lock");
    let exists: bool =
        sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1)")
            .bind(&template)
            .fetch_one(&mut conn)
            .await
            .expect("query pg_database");
    if !exists {
        let building = format!("{template}_building");
        sqlx::raw_sql(&format!("DROP DATABASE IF EXISTS {building}"))
            .execute(&mut conn)
            .await
            .expect("drop half-built template");
        sqlx::raw_sql(&format!("CREATE DATABASE {building}"))
            .execute(&mut conn)
            .await
            .expect("create template");
        let db = Db::connect(
            admin.clone().database(&building),
            2,
            Duration::from_secs(30),
        )
        .await
        .expect("connect to template");
        db.migrate().await.expect("migrate template");
        db.close().await;
        // A database with sessions cannot be renamed: closed connections' server processes
        // may take a moment to exit.
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        loop {
            match sqlx::raw_sql(&format!("ALTER DATABASE {building} RENAME TO {template}"))
                .execute(&mut conn)
                .await
            {
                Ok(_) => break,
                Err(e) if is_transient(&e) && std::time::Instant::now() < deadline => {
                    // Only this builder uses the database: whatever is left of its pools
                    // (idle tenant connections) goes.
                    let _ = sqlx::query(
                        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
                         WHERE datname = $1 AND pid <> pg_backend_pid()",
                    )
                    .bind(&building)
                    .execute(&mut conn)
                    .await;
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
                Err(e) => panic!("publish template: {e:?}"),
            }
        }
    }
    sqlx::query("SELECT pg_advisory_unlock(7342001)")
        .execute(&mut conn)
        .await
        .expect("unlock");
    let _ = conn.close().await;
    template
}

/// Creates `name` from the template. A busy server (many test processes cloning at
/// once, a checkpoint, a restart after a crashed backend) can drop a connection;
/// such transient failures are retried for a while instead of failing the test.
async fn clone_template(admin: &PgConnectOptions, template: &str, name: &str) {
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    loop {
        let attempt = async {
            let mut conn = PgConnection::connect_with(admin).await?;
            // FILE_COPY copies files instead of writing every page of the template to WAL.
            let version: i32 =
                sqlx::query_scalar("SELECT current_setting('server_version_num')::int")
                    .fetch_one(&mut conn)
                    .await?;
            let strategy = if version >= 150_000 {
                " STRATEGY FILE_COPY"
            } else {
                ""
            };
            sqlx::raw_sql(&format!(
                "CREATE DATABASE {name} TEMPLATE {template}{strategy}"
            ))
            .execute(&mut conn)
            .await?;
            let _ = conn.close().await;
            Ok::<(), sqlx::Error>(())
        };
        match attempt.await {
            Ok(()) => return,
            Err(e) if is_transient(&e) && std::time::Instant::now() < deadline => {
                eprintln!("test database: retrying after a transient error: {e}");
                // A half-created database must not block the retry.
                if let Ok(mut conn) = PgConnection::connect_with(admin).await {
                    let _ = sqlx::raw_sql(&format!("DROP DATABASE IF EXISTS {name}"))
                        .execute(&mut conn)
                        .await;
                }
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
            Err(e) => panic!("clone template: {e:?}"),
        }
    }
}

fn is_transient(e: &sqlx::Error) -> bool {
    match e {
        sqlx::Error::Io(_) | sqlx::Error::PoolTimedOut | sqlx::Error::Protocol(_) => true,
        // 57P03 cannot_connect_now (starting up / recovering), 55006 object_in_use
        // (the template is briefly in use), 53300 too_many_connections.
        sqlx::Error::Database(d) => {
            matches!(d.code().as_deref(), Some("57P03" | "55006" | "53300"))
        }
        _ => false,
    }
}

impl Drop for TestDb {
    /// Drops the database so that a long test run does not fill the disk. Runs on its own
    /// thread: Drop may be called inside a runtime, which must not be blocked on.
    fn drop(&mut self) {
        let admin = admin_options();
        let name = self.name.clone();
        let _ = std::thread::spawn(move || {
            let Ok(rt) = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            else {
                return;
            };
            rt.block_on(async {
                // The associations' roles belong to the cluster, not the database: they go too.
                let roles: Vec<String> =
                    match PgConnection::connect_with(&admin.clone().database(&name)).await {
                        Ok(mut conn) => {
                            let r = sqlx::query_scalar(
                                "SELECT 'musubi_' || schema_name FROM core.associations",
                            )
                            .fetch_all(&mut conn)
                            .await
                            .unwrap_or_default();
                            let _ = conn.close().await;
                            r
                        }
                        Err(_) => Vec::new(),
                    };
                if let Ok(mut conn) = PgConnection::connect_with(&admin).await {
                    // One statement each: DROP DATABASE may not run in a transaction block.
                    let mut statements =
                        vec![format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)")];
                    statements.extend(roles.iter().map(|r| format!("DROP ROLE IF EXISTS \"{r}\"")));
                    for sql in statements {
                        let _ = sqlx::raw_sql(&sql).execute(&mut conn).await;
                    }
                    let _ = conn.close().await;
                }
            });
        })
        .join();
    }
}

impl TestDb {
    pub async fn new() -> Self {
        let admin = admin_options();
        let template = ensure_template(&admin).await;
        let name = format!("musubi_test_{}", uuid::Uuid::new_v4().simple());
        clone_template(&admin, &template, &name).await;
        let options = admin.database(&name);
        let db = Db::connect(options.clone(), 8, Duration::from_secs(30))
            .await
            .expect("connect to test database");
        Self { db, name, options }
    }

    /// A connection as the login role itself, past Musubi's own roles: how a test reads or
    /// breaks an association's schema directly, as someone with database access could.
    pub async fn admin(&self) -> PgConnection {
        PgConnection::connect_with(&self.options)
            .await
            .expect("connect as the login role")
    }

    /// A `postgres://` URL of this database, for running the `musubi` binary against it.
    pub fn url(&self) -> String {
        let base = std::env::var(TEST_DATABASE_ENV).expect("test database URL");
        let (head, query) = base
            .split_once('?')
            .map_or((base.as_str(), ""), |(h, q)| (h, q));
        let cut = head
            .rfind('/')
            .filter(|i| *i > "postgres://".len())
            .unwrap_or(head.len());
        let mut url = format!("{}/{}", &head[..cut], self.name);
        if !query.is_empty() {
            url = format!("{url}?{query}");
        }
        url
    }

    /// The operator of [`TestDb::services`].
    pub async fn operator(&self) -> Operator {
        Operator::new(self.services().await, self.db.clone())
    }

    /// Services with an in-process rate limiter, fresh for each call.
    pub async fn services(&self) -> Services {
        Services::build(
            self.db.clone(),
            musubi_auth::ratelimit::RateLimiter::in_process(),
        )
        .await
        .expect("services")
    }

    /// `program` (the `musubi` binary: `env!("CARGO_BIN_EXE_musubi")` in its tests) set up
    /// to run an operator command against this database, quietly and without input.
    pub fn command(&self, program: impl AsRef<OsStr>) -> Command {
        let mut c = Command::new(program);
        c.env("DATABASE_URL", self.url())
            .env("MUSUBI_LOG", "warn")
            .stdin(Stdio::null());
        c
    }
}

/// A test configuration: development defaults plus the given overrides.
pub fn test_config(overrides: &[(&str, &str)]) -> Config {
    // Fair use and load shedding are out of the way unless a test sets them: tests fire many
    // requests through one session and one (empty) address, often at once.
    // `security/fair_use.rs` and `ops/overload.rs` test the limits.
    let mut env: HashMap<String, String> = [
        ("MUSUBI_FAIR_SESSION_PER_MINUTE", "10000000"),
        ("MUSUBI_FAIR_PERSON_PER_MINUTE", "10000000"),
        ("MUSUBI_FAIR_ANONYMOUS_PER_MINUTE", "10000000"),
        ("MUSUBI_FAIR_SESSION_IN_FLIGHT", "256"),
        ("MUSUBI_MAX_IN_FLIGHT", "100000"),
        ("MUSUBI_ASSOCIATION_IN_FLIGHT", "100000"),
    ]
    .iter()
    .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
    .collect();
    env.extend(
        overrides
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned())),
    );
    Config::from_sources(&env, None).expect("valid test config")
}

/// The application wired to a fresh database, called in-process.
pub struct TestApp {
    pub db: TestDb,
    pub router: Router,
    operator: Operator,
    /// The embedded file store over a directory of its own (or the configured store).
    pub files: musubi::FileStore,
    _files_dir: tempfile::TempDir,
}

impl TestApp {
    pub async fn new() -> Self {
        Self::with_config(test_config(&[])).await
    }

    pub async fn with_config(config: Config) -> Self {
        Self::with_services(config, |services| services).await
    }

    /// A server with one association, `slug`, named `name`.
    pub async fn with_association(slug: &str, name: &str) -> Self {
        let app = Self::new().await;
        app.operator()
            .create_association(&association(slug, name))
            .await
            .unwrap();
        app
    }

    /// The app wired from `config`, its services changed by `adjust` first (e.g. another
    /// mailer).
    pub async fn with_services(config: Config, adjust: impl FnOnce(Services) -> Services) -> Self {
        let db = TestDb::new().await;
        let files_dir = tempfile::tempdir().expect("a directory for the file store");
        let mut files_config = config.clone();
        files_config.data_dir = files_dir.path().to_owned();
        let files = musubi::open_files(&files_config).await.expect("file store");
        // Wired like the server: mailer, relying party and limits from the configuration.
        let services = musubi::services(&config, db.db.clone())
            .await
            .expect("services")
            .with_files(files.service(&config));
        let operator = Operator::new(adjust(services), db.db.clone());
        let router = musubi::app(&config, &operator);
        Self {
            db,
            router,
            operator,
            files,
            _files_dir: files_dir,
        }
    }

    /// The app with the demo associations and people seeded (all with `DEMO_PASSWORD`).
    pub async fn demo() -> Self {
        Self::demo_with_config(test_config(&[])).await
    }

    /// [`TestApp::demo`] wired from `config` (e.g. a `MUSUBI_PUBLIC_URL` with passkeys).
    pub async fn demo_with_config(config: Config) -> Self {
        Self::demo_with_services(config, |services| services).await
    }

    /// [`TestApp::demo`] wired like [`TestApp::with_services`].
    pub async fn demo_with_services(
        config: Config,
        adjust: impl FnOnce(Services) -> Services,
    ) -> Self {
        let app = Self::with_services(config, adjust).await;
        assert!(musubi_demo::seed_if_empty(&app.operator)
            .await
            .expect("seed demo data"));
        app
    }

    /// A GraphQL call as an API client: optional bearer token and routed association.
    pub async fn gql(
        &self,
        query: &str,
        variables: serde_json::Value,
        token: Option<&str>,
        association: Option<&str>,
    ) -> serde_json::Value {
        let mut req = Request::post("/graphql").header("content-type", "application/json");
        if let Some(t) = token {
            req = req.header("authorization", format!("Bearer {t}"));
        }
        if let Some(a) = association {
            req = req.header("musubi-association", a);
        }
        let body = serde_json::json!({ "query": query, "variables": variables }).to_string();
        let (_, _, text) = self.send(req.body(Body::from(body)).unwrap()).await;
        serde_json::from_str(&text).unwrap_or_else(|_| panic!("not JSON: {text}"))
    }

    /// The API's answer to a password sign-in (`signIn { token next }`).
    pub async fn sign_in(&self, email: &str, password: &str) -> serde_json::Value {
        self.gql(
            SIGN_IN,
            serde_json::json!({"e": email, "p": password}),
            None,
            None,
        )
        .await
    }

    /// Signs a demo person in through the API with `DEMO_PASSWORD`; returns the bearer token.
    pub async fn demo_token(&self, email: &str) -> String {
        let r = self.sign_in(email, musubi_demo::DEMO_PASSWORD).await;
        assert_eq!(r["data"]["signIn"]["next"], "DONE", "{r}");
        r["data"]["signIn"]["token"]
            .as_str()
            .expect("token")
            .to_owned()
    }

    /// The id of the person with `email`.
    pub async fn user_id(&self, email: &str) -> musubi_domain::types::PersonId {
        sqlx::query_scalar("SELECT id FROM core.users WHERE email = $1")
            .bind(email)
            .fetch_one(self.db.db.pool())
            .await
            .expect("a person with that email")
    }

    /// A transaction in association `slug`'s schema, for reading or changing its tables.
    pub async fn tenant_tx(&self, slug: &str) -> musubi_db::Tx {
        let tenant = self.operator.services().resolve_tenant(slug).await.unwrap();
        self.db.db.tenant_tx(&tenant).await.unwrap()
    }

    /// How many `access.denied` records the log of association `slug` holds, once the
    /// refusals waiting to be written are.
    pub async fn denied_count(&self, slug: &str) -> i64 {
        self.operator.services().flush_refusals().await;
        let mut tx = self.tenant_tx(slug).await;
        sqlx::query_scalar("SELECT count(*) FROM audit_log WHERE action = 'access.denied'")
            .fetch_one(&mut *tx)
            .await
            .unwrap()
    }

    /// The `access.denied` records by `actor` among the newest page of `slug`'s log, once the
    /// refusals waiting to be written are.
    pub async fn denials_by(&self, slug: &str, actor: uuid::Uuid) -> usize {
        self.operator.services().flush_refusals().await;
        let tenant = self.operator.services().resolve_tenant(slug).await.unwrap();
        let filter = AuditFilter {
            action_prefix: Some("access.denied".into()),
            actor_id: Some(actor.into()),
            ..AuditFilter::default()
        };
        audit::list(
            &self.db.db,
            &tenant,
            &filter,
            None,
            Some(audit::MAX_PAGE_SIZE),
        )
        .await
        .unwrap()
        .records
        .len()
    }

    /// The same services (and rate limiter) the app uses.
    pub fn services(&self) -> Services {
        self.operator.services().clone()
    }

    /// The operator of those services (what tests do without a signed-in person).
    pub fn operator(&self) -> Operator {
        self.operator.clone()
    }

    /// Serves the app on a real loopback port (for WebSocket and HTTP clients); returns its
    /// address. The server stops when the test's runtime ends.
    pub async fn serve(&self) -> std::net::SocketAddr {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind loopback");
        let addr = listener.local_addr().expect("local addr");
        let router = self.router.clone();
        tokio::spawn(async move {
            let _ = axum::serve(listener, router).await;
        });
        addr
    }

    /// Sends a request; returns status, headers and the body's bytes (as sent: compressed if
    /// the request accepted it).
    pub async fn send_bytes(
        &self,
        req: Request<Body>,
    ) -> (StatusCode, http::HeaderMap, axum::body::Bytes) {
        let resp = self.router.clone().oneshot(req).await.expect("infallible");
        let status = resp.status();
        let headers = resp.headers().clone();
        let bytes = axum::body::to_bytes(resp.into_body(), 16 * 1024 * 1024)
            .await
            .expect("body");
        (status, headers, bytes)
    }

    /// Sends a request; returns status, headers and body text.
    pub async fn send(&self, req: Request<Body>) -> (StatusCode, http::HeaderMap, String) {
        let (status, headers, bytes) = self.send_bytes(req).await;
        (
            status,
            headers,
            String::from_utf8_lossy(&bytes).into_owned(),
        )
    }

    pub async fn get(&self, path: &str) -> (StatusCode, http::HeaderMap, String) {
        self.send(Request::get(path).body(Body::empty()).unwrap())
            .await
    }

    /// POSTs a GraphQL body (a JSON value: one request or a batch) with optional association.
    pub async fn graphql_raw(
        &self,
        body: serde_json::Value,
        association: Option<&str>,
    ) -> serde_json::Value {
        let mut req = Request::post("/graphql").header("content-type", "application/json");
        if let Some(a) = association {
            req = req.header("musubi-association", a);
        }
        let (_, _, text) = self
            .send(req.body(Body::from(body.to_string())).unwrap())
            .await;
        serde_json::from_str(&text).unwrap_or_else(|_| panic!("not JSON: {text}"))
    }

    /// A GraphQL request (`body`: query and variables) as the bearer of `token` in
    /// `association`: status, headers and the JSON answer.
    pub async fn graphql_as(
        &self,
        token: &str,
        association: &str,
        body: serde_json::Value,
    ) -> (StatusCode, http::HeaderMap, serde_json::Value) {
        let req = Request::post("/graphql")
            .header("content-type", "application/json")
            .header("authorization", format!("Bearer {token}"))
            .header("musubi-association", association)
            .body(Body::from(body.to_string()))
            .unwrap();
        let (status, headers, text) = self.send(req).await;
        let json = serde_json::from_str(&text).unwrap_or_else(|_| panic!("not JSON: {text}"));
        (status, headers, json)
    }

    pub async fn graphql(&self, query: &str, association: Option<&str>) -> serde_json::Value {
        self.graphql_raw(serde_json::json!({ "query": query }), association)
            .await
    }
}

/// The `extensions.code` of each error in a GraphQL response.
pub fn error_codes(response: &serde_json::Value) -> Vec<String> {
    response["errors"]
        .as_array()
        .map(|errs| {
            errs.iter()
                .filter_map(|e| e["extensions"]["code"].as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default()
}

/// A GraphQL response without the `locations` and `path` of its errors, for comparing answers
/// to different queries.
pub fn strip_locations(mut response: serde_json::Value) -> serde_json::Value {
    if let Some(errs) = response["errors"].as_array_mut() {
        for e in errs {
            if let Some(o) = e.as_object_mut() {
                o.remove("locations");
                o.remove("path");
            }
        }
    }
    response
}
