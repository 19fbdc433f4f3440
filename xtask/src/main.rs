//! Developer tasks: `cargo xtask demo` and `cargo xtask test` (each installing what it needs
//! first, see `setup`), `cargo xtask lint`, `cargo xtask bench`, `cargo xtask image`.

mod bench;
mod image;
mod previous;
mod setup;

use anyhow::{bail, Context, Result};
use musubi_pgembed::{EmbeddedOptions, EmbeddedPostgres};
use sqlx::postgres::PgConnectOptions;
use sqlx::{ConnectOptions, Connection, PgConnection};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::str::FromStr;

const TEST_DB_ENV: &str = "MUSUBI_TEST_DATABASE_URL";
const TEST_REDIS_ENV: &str = "MUSUBI_TEST_REDIS_URL";
const TEST_SMTP_ENV: &str = "MUSUBI_TEST_SMTP_URL";
const TEST_MAILDIR_ENV: &str = "MUSUBI_TEST_MAILDIR";

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let result = match args.first().map(String::as_str) {
        Some("demo") => demo(&args[1..]),
        Some("test") => test(&args[1..]),
        Some("setup") => setup_task(&args[1..]),
        Some("fresh-check") => fresh_check(&args[1..]),
        Some("lint") => lint(),
        Some("bench") => bench::bench(&args[1..]),
        Some("image") => image::image(&args[1..]),
        Some("previous") => previous_task(),
        _ => {
            eprintln!(
                "usage: cargo xtask <task>\n\n\
                 tasks:\n  demo [ARGS]   install the PostgreSQL server binaries if missing (not with DATABASE_URL),\n                then build in release and run `musubi demo ARGS`\n  bench [--scale small|medium|large] [--seed N] [--profile debug|release] [--reuse] [--statements] [-- RUN ARGS]\n                generate a dataset, drive Musubi and the floor, write target/bench/report.json\n                (see docs/performance.md); --statements lists the mixed phase's costliest SQL\n                in target/bench/statements.txt (per phase with --only and no mixed)\n  test [ARGS]   install what the tests need if missing, then run every test (Rust tests\n                with nextest, then the browser tests);\n                ARGS go to nextest; set {TEST_DB_ENV} to use your own PostgreSQL,\n                {TEST_REDIS_ENV} your own Redis, and {TEST_SMTP_ENV} with\n                {TEST_MAILDIR_ENV} your own SMTP server and the maildir it fills\n  setup [--check] [demo|test]\n                install what the demo and/or the tests need; --check only reports\n  fresh-check [OPTIONS]\n                run the README's commands in a fresh Debian root (xtask/fresh-root.sh; root, slow)\n  lint          cargo fmt --check and clippy -D warnings\n  image [--profile release|debug] [--out PATH] [--check] [--fresh] [--no-build]\n                build the OCI image from deploy/Containerfile with buildah (root), then check it\n  previous      build the previous release's server for the upgrade test; prints its variables"
            );
            std::process::exit(2);
        }
    };
    if let Err(e) = result {
        eprintln!("xtask: {e:#}");
        std::process::exit(1);
    }
}

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_else(|| PathBuf::from("."))
}

fn run(cmd: &mut Command) -> Result<()> {
    eprintln!("xtask: running {cmd:?}");
    let status = cmd
        .status()
        .with_context(|| format!("cannot run {cmd:?}"))?;
    if !status.success() {
        bail!("{cmd:?} failed with {status}");
    }
    Ok(())
}

fn cargo() -> Command {
    Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
}

/// `cargo xtask previous`: what `test` gives the upgrade test, for running it alone.
fn previous_task() -> Result<()> {
    let previous = previous::build(&root())?;
    for (k, v) in previous.env() {
        println!("{k}={v}");
    }
    Ok(())
}

/// `cargo xtask demo`: the PostgreSQL server binaries, then `musubi demo` built in release.
fn demo(args: &[String]) -> Result<()> {
    use std::os::unix::process::CommandExt;
    setup::ensure(setup::Purpose::Demo, false)?;
    // The user's working directory stays (the demo's data dir is relative to it).
    let mut cmd = cargo();
    cmd.arg("run")
        .arg("--manifest-path")
        .arg(root().join("Cargo.toml"))
        .args(["--release", "--package", "musubi", "--bin", "musubi", "--"])
        .arg("demo")
        .args(args);
    eprintln!("xtask: running {cmd:?}");
    // Replace this process, as `cargo run` replaces itself with musubi: Ctrl-C and SIGTERM
    // then reach musubi directly, which stops its cluster cleanly.
    let err = cmd.exec();
    Err(err).with_context(|| format!("cannot run {cmd:?}"))
}

/// `cargo xtask setup [--check] [demo|test]`.
fn setup_task(args: &[String]) -> Result<()> {
    let mut check = false;
    let mut purposes = Vec::new();
    for a in args {
        match a.as_str() {
            "--check" => check = true,
            "demo" => purposes.push(setup::Purpose::Demo),
            "test" => purposes.push(setup::Purpose::Test),
            other => bail!("unknown argument {other} (see `cargo xtask`)"),
        }
    }
    if purposes.is_empty() {
        purposes = vec![setup::Purpose::Demo, setup::Purpose::Test];
    }
    for p in purposes {
        setup::ensure(p, check)?;
        if p == setup::Purpose::Test {
            setup::ensure_npm_packages(&root().join("crates/web/e2e"), check)?;
        }
    }
    Ok(())
}

/// `cargo xtask fresh-check`: README's commands in a fresh Debian root (see the script).
fn fresh_check(args: &[String]) -> Result<()> {
    run(Command::new("bash")
        .arg(root().join("xtask/fresh-root.sh"))
        .args(args))
}

fn lint() -> Result<()> {
    run(cargo()
        .current_dir(root())
        .args(["fmt", "--all", "--", "--check"]))?;
    run(cargo().current_dir(root()).args([
        "clippy",
        "--workspace",
        "--all-targets",
        "--",
        "-D",
        "warnings",
    ]))
}

/// The PostgreSQL the tests use: the caller's, or a private throwaway cluster.
struct TestServer {
    url: String,
    admin: PgConnectOptions,
    embedded: Option<EmbeddedPostgres>,
}

async fn test_server() -> Result<TestServer> {
    if let Ok(url) = std::env::var(TEST_DB_ENV) {
        let admin = PgConnectOptions::from_str(&url)
            .with_context(|| format!("{TEST_DB_ENV} is not a valid PostgreSQL URL"))?;
        return Ok(TestServer {
            url,
            admin,
            embedded: None,
        });
    }
    let dir = root().join("target/xtask/test-pg");
    let settings = [
        ("fsync", "off"),
        ("synchronous_commit", "off"),
        ("full_page_writes", "off"),
        ("max_connections", "300"),
        ("shared_buffers", "128MB"),
        // Keep the throwaway cluster's WAL small: thousands of databases come and go.
        ("max_wal_size", "256MB"),
        ("log_min_messages", "warning"),
    ];
    // A fresh cluster each run: no state leaks between runs.
    let (pg, url) = private_cluster(&dir, &settings, true).await?;
    eprintln!("xtask: started a private PostgreSQL for the tests ({url})");
    Ok(TestServer {
        url,
        admin: pg.connect_options_for("postgres"),
        embedded: Some(pg),
    })
}

/// Starts a PostgreSQL cluster of our own in `dir` (emptied first when `fresh`) and returns it
/// with a URL of its `postgres` database (unix socket).
async fn private_cluster(
    dir: &Path,
    settings: &[(&str, &str)],
    fresh: bool,
) -> Result<(EmbeddedPostgres, String)> {
    if fresh && dir.exists() {
        std::fs::remove_dir_all(dir).with_context(|| format!("cannot remove {}", dir.display()))?;
    }
    std::fs::create_dir_all(dir)?;
    let mut opts = EmbeddedOptions::new(dir);
    opts.database = "postgres".into();
    opts.settings = settings
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
    let pg = EmbeddedPostgres::start(opts).await?;
    let admin = pg.connect_options_for("postgres");
    let socket = admin
        .get_socket()
        .map(|p| p.display().to_string())
        .context("embedded cluster has no socket")?;
    let url = format!(
        "postgres://{}@localhost:{}/postgres?host={}",
        admin.get_username(),
        admin.get_port(),
        socket
    );
    Ok((pg, url))
}

async fn drop_test_databases(admin: &PgConnectOptions) -> Result<()> {
    let mut conn = PgConnection::connect_with(&admin.clone().disable_statement_logging()).await?;
    let names: Vec<String> = sqlx::query_scalar(
        "SELECT datname FROM pg_database WHERE datname LIKE 'musubi\\_test\\_%' OR datname LIKE 'musubi\\_e2e\\_%' OR datname LIKE 'musubi\\_tpl\\_%'",
    )
    .fetch_all(&mut conn)
    .await?;
    for n in names {
        sqlx::raw_sql(&format!("DROP DATABASE IF EXISTS \"{n}\" WITH (FORCE)"))
            .execute(&mut conn)
            .await?;
    }
    Ok(())
}

async fn create_database(admin: &PgConnectOptions, name: &str) -> Result<()> {
    let mut conn = PgConnection::connect_with(admin).await?;
    sqlx::raw_sql(&format!("CREATE DATABASE {name}"))
        .execute(&mut conn)
        .await?;
    let _ = conn.close().await;
    Ok(())
}

fn with_database(url: &str, name: &str) -> String {
    // The URL's path is the database: replace it, keep the query (socket host).
    let (base, query) = url.split_once('?').map_or((url, ""), |(b, q)| (b, q));
    let scheme_end = base.find("://").map_or(0, |i| i + 3);
    let path_start = base[scheme_end..]
        .find('/')
        .map_or(base.len(), |i| scheme_end + i);
    let mut out = format!("{}/{name}", &base[..path_start]);
    if !query.is_empty() {
        out.push('?');
        out.push_str(query);
    }
    out
}

/// The Redis the tests use: the caller's, or a private one on a unix socket, killed on drop
/// (so also when the tests fail).
struct TestRedis {
    url: String,
    child: Option<(Child, PathBuf)>,
}

impl TestRedis {
    fn start() -> Result<Self> {
        if let Ok(url) = std::env::var(TEST_REDIS_ENV) {
            return Ok(Self { url, child: None });
        }
        let bin = find_redis_server()?;
        let dir = root().join("target/xtask");
        std::fs::create_dir_all(&dir)?;
        let mut socket = dir.join("redis.sock");
        // A unix socket path must fit in ~100 bytes and go into a URL unescaped.
        let plain = |p: &Path| {
            let s = p.to_string_lossy();
            s.len() < 100
                && s.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"/._-".contains(&b))
        };
        if !plain(&socket) {
            socket = std::env::temp_dir()
                .join(format!("musubi-xtask-redis-{}.sock", std::process::id()));
        }
        let _ = std::fs::remove_file(&socket);
        let log = dir.join("redis.log");
        let child = Command::new(&bin)
            .args(["--port", "0", "--unixsocket"])
            .arg(&socket)
            .args([
                "--unixsocketperm",
                "700",
                "--save",
                "",
                "--appendonly",
                "no",
            ])
            .args(["--daemonize", "no", "--logfile"])
            .arg(&log)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .spawn()
            .with_context(|| format!("cannot start {}", bin.display()))?;
        let mut redis = Self {
            url: format!("redis+unix://{}", socket.display()),
            child: Some((child, socket.clone())),
        };
        redis.wait_ready(&socket, &log)?;
        eprintln!(
            "xtask: started a private Redis for the tests ({})",
            redis.url
        );
        Ok(redis)
    }

    fn wait_ready(&mut self, socket: &Path, log: &Path) -> Result<()> {
        use std::io::{Read, Write};
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        loop {
            if let Some((child, _)) = self.child.as_mut() {
                if let Some(status) = child.try_wait()? {
                    bail!("redis-server exited with {status}; see {}", log.display());
                }
            }
            let pong = std::os::unix::net::UnixStream::connect(socket).and_then(|mut s| {
                s.write_all(b"PING\r\n")?;
                let mut buf = [0u8; 5];
                s.read_exact(&mut buf)?;
                Ok(&buf == b"+PONG")
            });
            if matches!(pong, Ok(true)) {
                return Ok(());
            }
            if std::time::Instant::now() > deadline {
                bail!(
                    "redis-server did not answer on {}; see {}",
                    socket.display(),
                    log.display()
                );
            }
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
    }
}

impl Drop for TestRedis {
    fn drop(&mut self) {
        if let Some((mut child, socket)) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
            let _ = std::fs::remove_file(socket);
        }
    }
}

fn find_redis_server() -> Result<PathBuf> {
    setup::redis_server().with_context(|| {
        format!(
            "redis-server not found on PATH or at /usr/bin/redis-server: install the Debian \
             package `redis-server`, or set {TEST_REDIS_ENV} to a Redis of your own"
        )
    })
}

/// The SMTP server the tests mail through: the caller's, or Python's aiosmtpd on a free
/// loopback port delivering into a fresh maildir, killed on drop.
struct TestSmtp {
    url: String,
    maildir: Option<PathBuf>,
    child: Option<Child>,
}

impl TestSmtp {
    fn start() -> Result<Self> {
        if let Ok(url) = std::env::var(TEST_SMTP_ENV) {
            let maildir = std::env::var_os(TEST_MAILDIR_ENV).map(PathBuf::from);
            return Ok(Self {
                url,
                maildir,
                child: None,
            });
        }
        let dir = root().join("target/xtask");
        let maildir = dir.join("maildir");
        if maildir.exists() {
            std::fs::remove_dir_all(&maildir)
                .with_context(|| format!("cannot remove {}", maildir.display()))?;
        }
        // aiosmtpd's Mailbox handler creates only a missing maildir, not missing subfolders.
        for sub in ["tmp", "new", "cur"] {
            std::fs::create_dir_all(maildir.join(sub))?;
        }
        let port = std::net::TcpListener::bind("127.0.0.1:0")?
            .local_addr()?
            .port();
        let log = std::fs::File::create(dir.join("smtp.log"))?;
        let python = setup::smtp_python();
        let child = Command::new(python)
            .args(["-m", "aiosmtpd", "-n", "-l"])
            .arg(format!("127.0.0.1:{port}"))
            .args(["-c", "aiosmtpd.handlers.Mailbox"])
            .arg(&maildir)
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn()
            .with_context(|| {
                format!(
                    "cannot start {python} for the test SMTP server: install Python 3 and \
                     `python3 -m pip install aiosmtpd`, or set MUSUBI_TEST_SMTP_URL"
                )
            })?;
        let mut smtp = Self {
            url: format!("smtp://127.0.0.1:{port}"),
            maildir: Some(maildir),
            child: Some(child),
        };
        smtp.wait_ready(port, &dir.join("smtp.log"))?;
        eprintln!(
            "xtask: started a private SMTP server for the tests ({})",
            smtp.url
        );
        Ok(smtp)
    }

    fn wait_ready(&mut self, port: u16, log: &Path) -> Result<()> {
        use std::io::Read;
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
        loop {
            if let Some(child) = self.child.as_mut() {
                if let Some(status) = child.try_wait()? {
                    bail!(
                        "the test SMTP server (python3 -m aiosmtpd) exited with {status}; is \
                         aiosmtpd installed (`python3 -m pip install aiosmtpd`)? See {}",
                        log.display()
                    );
                }
            }
            let greeted = std::net::TcpStream::connect(("127.0.0.1", port)).and_then(|mut s| {
                s.set_read_timeout(Some(std::time::Duration::from_secs(2)))?;
                let mut buf = [0u8; 3];
                s.read_exact(&mut buf)?;
                Ok(&buf == b"220")
            });
            if matches!(greeted, Ok(true)) {
                return Ok(());
            }
            if std::time::Instant::now() > deadline {
                bail!(
                    "the test SMTP server did not greet on port {port}; see {}",
                    log.display()
                );
            }
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
    }
}

impl Drop for TestSmtp {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

fn test(extra: &[String]) -> Result<()> {
    setup::ensure(setup::Purpose::Test, false)?;
    setup::ensure_npm_packages(&root().join("crates/web/e2e"), false)?;
    // Before PostgreSQL: a missing redis-server fails fast, and is killed on any error below.
    let redis = TestRedis::start()?;
    let smtp = TestSmtp::start()?;
    let runtime = tokio::runtime::Runtime::new()?;
    let server = runtime.block_on(test_server())?;
    let result = runtime.block_on(async {
        drop_test_databases(&server.admin).await?;
        create_database(&server.admin, "musubi_e2e_run").await
    });
    let result = result.and_then(|()| run_suites(&server.url, &redis.url, &smtp, extra));
    if result.is_err() {
        // What the server saw is often the cause (a crashed backend, a full disk).
        if let Some(pg) = &server.embedded {
            print_tail("the test PostgreSQL's log", pg.log_path(), 80);
        }
        report_disk(&root());
    }
    if let Some(pg) = server.embedded {
        runtime.block_on(pg.stop())?;
    }
    result
}

fn print_tail(what: &str, path: &Path, lines: usize) {
    match std::fs::read_to_string(path) {
        Ok(text) => {
            let all: Vec<&str> = text.lines().collect();
            eprintln!("xtask: the end of {what} ({}):", path.display());
            for line in &all[all.len().saturating_sub(lines)..] {
                eprintln!("  | {line}");
            }
        }
        Err(e) => eprintln!("xtask: cannot read {what} ({}): {e}", path.display()),
    }
}

fn report_disk(dir: &Path) {
    if let Ok(out) = Command::new("df").arg("-h").arg(dir).output() {
        eprintln!(
            "xtask: disk space:\n{}",
            String::from_utf8_lossy(&out.stdout)
        );
    }
}

fn run_suites(url: &str, redis_url: &str, smtp: &TestSmtp, extra: &[String]) -> Result<()> {
    let root = root();
    // The current server first: the previous release's build starts from its dependencies.
    run(cargo()
        .current_dir(&root)
        .args(["build", "--package", "musubi", "--bin", "musubi"]))?;
    let previous = previous::build(&root).context("building the previous release")?;
    match &previous {
        previous::Previous::Built { commit, .. } => {
            eprintln!("xtask: the upgrade test runs the server of {commit}");
        }
        previous::Previous::Unavailable(why) => {
            eprintln!("xtask: WARNING: no previous release to test upgrades with: {why}");
        }
    }
    let nextest = Command::new("cargo-nextest")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    let mut rust = cargo();
    rust.current_dir(&root)
        .env(TEST_DB_ENV, url)
        .env(TEST_REDIS_ENV, redis_url)
        .env(TEST_SMTP_ENV, &smtp.url)
        .env(setup::TEST_PYTHON_ENV, setup::test_python())
        .envs(previous.env());
    if let Some(maildir) = &smtp.maildir {
        rust.env(TEST_MAILDIR_ENV, maildir);
    }
    if nextest {
        rust.args(["nextest", "run", "--workspace", "--no-fail-fast"]);
    } else {
        rust.args(["test", "--workspace", "--no-fail-fast"]);
    }
    rust.args(extra);
    let rust_result = run(&mut rust);

    // Browser tests run against the real binary.
    let e2e = root.join("crates/web/e2e");
    let browser_result = (|| -> Result<()> {
        run(cargo()
            .current_dir(&root)
            .args(["build", "--package", "musubi", "--bin", "musubi"]))?;
        run(Command::new("node")
            .current_dir(&e2e)
            .args(["--test", "--test-concurrency=1", "tests/"])
            .env("MUSUBI_BIN", root.join("target/debug/musubi"))
            .env(
                "MUSUBI_E2E_DATABASE_URL",
                with_database(url, "musubi_e2e_run"),
            ))
    })();
    rust_result.context("Rust tests failed")?;
    browser_result.context("browser tests failed")
}

#[cfg(test)]
mod tests {
    use super::with_database;

    #[test]
    fn database_is_replaced_in_urls() {
        assert_eq!(
            with_database("postgres://u@localhost:5432/postgres?host=/tmp/x", "e2e"),
            "postgres://u@localhost:5432/e2e?host=/tmp/x"
        );
        assert_eq!(
            with_database("postgres://u:p@db:5432/test", "e2e"),
            "postgres://u:p@db:5432/e2e"
        );
        assert_eq!(with_database("postgres://db", "e2e"), "postgres://db/e2e");
    }
}
