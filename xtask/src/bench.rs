//! `cargo xtask bench`: builds Musubi and `musubi-bench`, prepares a PostgreSQL with the
//! dataset of a scale, starts Musubi and the floor on it, runs the load driver and leaves
//! `target/bench/report.json` (see docs/performance.md).

use crate::{cargo, print_tail, private_cluster, root, run, with_database};
use anyhow::{bail, Context, Result};
use sqlx::postgres::PgConnectOptions;
use sqlx::{ConnectOptions, Connection, PgConnection};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::str::FromStr;

/// A PostgreSQL server of the caller's to bench on instead of a private cluster (its database
/// `musubi_bench_<scale>` is replaced unless `--reuse`).
const BENCH_DB_ENV: &str = "MUSUBI_BENCH_DATABASE_URL";

/// Production-like: durability stays on (fsync, synchronous commit), the memory is what a
/// small 2-core server with 8 GB would give PostgreSQL.
const CLUSTER_SETTINGS: &[(&str, &str)] = &[
    // Two servers (one with load shedding, for the overload phase) and the floor.
    ("max_connections", "200"),
    ("shared_buffers", "1GB"),
    ("effective_cache_size", "3GB"),
    ("work_mem", "8MB"),
    ("maintenance_work_mem", "256MB"),
    ("max_wal_size", "2GB"),
    ("checkpoint_timeout", "15min"),
    ("log_min_messages", "warning"),
];

/// With `--statements`: counts every statement, planning included (it costs a little).
const STATEMENTS_SETTINGS: &[(&str, &str)] = &[
    ("shared_preload_libraries", "pg_stat_statements"),
    ("pg_stat_statements.track_planning", "on"),
    ("pg_stat_statements.max", "2000"),
];

struct Options {
    scale: String,
    seed: Option<String>,
    release: bool,
    reuse: bool,
    /// Preload `pg_stat_statements` and list the mixed phase's costliest statements.
    statements: bool,
    run_args: Vec<String>,
}

fn parse(args: &[String]) -> Result<Options> {
    let mut o = Options {
        scale: "small".into(),
        seed: None,
        release: false,
        reuse: false,
        statements: false,
        run_args: Vec::new(),
    };
    let mut profile: Option<String> = None;
    let mut it = args.iter();
    while let Some(a) = it.next() {
        let mut value = |name: &str| {
            it.next()
                .cloned()
                .with_context(|| format!("{name} needs a value"))
        };
        match a.as_str() {
            "--scale" => o.scale = value("--scale")?,
            "--seed" => o.seed = Some(value("--seed")?),
            "--profile" => profile = Some(value("--profile")?),
            "--reuse" => o.reuse = true,
            "--statements" => o.statements = true,
            "--" => {
                o.run_args = it.cloned().collect();
                break;
            }
            other => bail!("unknown option {other} (see `cargo xtask`)"),
        }
    }
    if !matches!(o.scale.as_str(), "small" | "medium" | "large") {
        bail!("--scale must be small, medium or large");
    }
    // Times only mean something optimised; the small smoke run checks correctness and may
    // reuse the debug build the tests made.
    o.release = match profile.as_deref() {
        None => o.scale != "small",
        Some("release") => true,
        Some("debug") => false,
        Some(p) => bail!("--profile must be debug or release, not {p}"),
    };
    Ok(o)
}

pub fn bench(args: &[String]) -> Result<()> {
    let o = parse(args)?;
    let root = root();
    let mut build = cargo();
    build
        .current_dir(&root)
        .args(["build", "--package", "musubi", "--package", "musubi-bench"]);
    if o.release {
        build.arg("--release");
    }
    run(&mut build)?;
    let bin_dir = root
        .join("target")
        .join(if o.release { "release" } else { "debug" });
    let bench_dir = root.join("target/bench");
    let scale_dir = bench_dir.join(&o.scale);
    std::fs::create_dir_all(&scale_dir)?;

    let runtime = tokio::runtime::Runtime::new()?;
    let (cluster, server_url) = match std::env::var(BENCH_DB_ENV) {
        Ok(url) => (None, url),
        Err(_) => {
            // Kept between runs so that `--reuse` can skip generating a large dataset again.
            let mut settings = CLUSTER_SETTINGS.to_vec();
            if o.statements {
                settings.extend(STATEMENTS_SETTINGS);
            }
            let (pg, url) =
                runtime.block_on(private_cluster(&bench_dir.join("pg"), &settings, false))?;
            eprintln!("xtask: bench PostgreSQL at {url}");
            (Some(pg), url)
        }
    };
    let db_name = format!("musubi_bench_{}", o.scale);
    let db_url = with_database(&server_url, &db_name);
    let manifest = scale_dir.join("manifest.json");
    // The servers' data directory: the embedded file store keeps the dataset's attachments
    // there (`files/`), so it belongs to the scale's dataset like the database does.
    let data_dir = scale_dir.join("data");

    let result = (|| -> Result<()> {
        let exists = runtime.block_on(database_exists(&server_url, &db_name))?;
        let reuse = o.reuse && exists && manifest.is_file();
        if reuse {
            eprintln!("xtask: reusing {db_name} and {}", manifest.display());
        } else {
            runtime.block_on(recreate_database(&server_url, &db_name))?;
        }
        // Also when reusing: a newer build may bring migrations.
        run(Command::new(bin_dir.join("musubi"))
            .arg("migrate")
            .env("DATABASE_URL", &db_url)
            .env("MUSUBI_LOG", "warn"))?;
        if !reuse {
            // The objects of the dataset before, and what earlier runs uploaded.
            let files = data_dir.join("files");
            if files.exists() {
                std::fs::remove_dir_all(&files)
                    .with_context(|| format!("cannot remove {}", files.display()))?;
            }
            let mut generate = Command::new(bin_dir.join("musubi-bench"));
            generate
                .args(["generate", "--scale", &o.scale, "--database-url", &db_url])
                .arg("--manifest")
                .arg(&manifest)
                .arg("--data-dir")
                .arg(&data_dir);
            if let Some(seed) = &o.seed {
                generate.args(["--seed", seed]);
            }
            run(&mut generate)?;
        }
        drive(&o, &bin_dir, &bench_dir, &data_dir, &db_url, &manifest)
    })();

    if let Some(pg) = cluster {
        if result.is_err() {
            print_tail("the bench PostgreSQL's log", pg.log_path(), 40);
        }
        runtime.block_on(pg.stop())?;
    }
    result
}

/// Starts Musubi and the floor, runs the driver, stops both.
fn drive(
    o: &Options,
    bin_dir: &Path,
    bench_dir: &Path,
    data_dir: &Path,
    db_url: &str,
    manifest: &Path,
) -> Result<()> {
    let server_port = free_port()?;
    let shedding_port = free_port()?;
    let floor_port = free_port()?;
    let server_log = bench_dir.join("server.log");
    std::fs::create_dir_all(data_dir)?;
    let serve = |port: u16, shedding: bool| {
        let mut cmd = Command::new(bin_dir.join("musubi"));
        cmd.arg("serve")
            .env("DATABASE_URL", db_url)
            .env("MUSUBI_LISTEN", format!("127.0.0.1:{port}"))
            .env("MUSUBI_DATA_DIR", data_dir)
            .env("MUSUBI_LOG", "warn")
            .env("MUSUBI_MIGRATE_ON_START", "false")
            // Digests due at the next minute's schedule rather than 3 min after the first news,
            // so that the mixed phase exercises the notification queue (both servers: either
            // may run the schedule, with its own setting).
            .env("MUSUBI_MAIL_BATCH_SECS", "0")
            // Every client of the benchmark comes from one address, whose ceiling is ten
            // times this.
            .env("MUSUBI_FAIR_ANONYMOUS_PER_MINUTE", "10000000");
        if !shedding {
            // The throughput phases drive thousands of requests a second through 20 sessions:
            // far beyond what fair use lets one session do, and load shedding stays out of
            // the phases that measure throughput and latency. The overload and fairness
            // phases have a server of their own with the defaults.
            cmd.env("MUSUBI_FAIR_SESSION_PER_MINUTE", "10000000")
                .env("MUSUBI_FAIR_PERSON_PER_MINUTE", "10000000")
                .env("MUSUBI_FAIR_SESSION_IN_FLIGHT", "16")
                .env("MUSUBI_MAX_IN_FLIGHT", "100000")
                .env("MUSUBI_ASSOCIATION_IN_FLIGHT", "100000");
        }
        cmd
    };
    let server = Process::spawn(&mut serve(server_port, false), &server_log)?;
    let shedding = Process::spawn(
        &mut serve(shedding_port, true),
        &bench_dir.join("server-shedding.log"),
    )?;
    let floor = Process::spawn(
        Command::new(bin_dir.join("musubi-bench"))
            .args(["floor", "--database-url", db_url])
            .args(["--listen", &format!("127.0.0.1:{floor_port}")]),
        &bench_dir.join("floor.log"),
    )?;
    let report = bench_dir.join("report.json");
    let mut driver = Command::new(bin_dir.join("musubi-bench"));
    driver
        .arg("run")
        .args(["--target", &format!("http://127.0.0.1:{server_port}")])
        .args(["--floor", &format!("http://127.0.0.1:{floor_port}")])
        .arg("--manifest")
        .arg(manifest)
        .args(["--database-url", db_url])
        .args(["--server-pid", &server.id().to_string()])
        .args([
            "--overload-target",
            &format!("http://127.0.0.1:{shedding_port}"),
        ])
        .args(["--overload-pid", &shedding.id().to_string()])
        .arg("--out")
        .arg(&report)
        .args(["--label", if o.release { "release" } else { "debug" }]);
    if o.statements {
        driver
            .arg("--statements")
            .arg(bench_dir.join("statements.txt"));
    }
    driver.args(&o.run_args);
    let result = run(&mut driver);
    drop(floor);
    drop(shedding);
    drop(server);
    if result.is_err() {
        print_tail("Musubi's log", &server_log, 40);
    }
    result?;
    // Each scale keeps its latest report too (docs/performance.md quotes medium's).
    std::fs::copy(&report, bench_dir.join(&o.scale).join("report.json"))?;
    eprintln!("xtask: report written to {}", report.display());
    Ok(())
}

/// A child process, stopped (SIGTERM, then SIGKILL) when dropped.
struct Process(Child);

impl Process {
    fn spawn(cmd: &mut Command, log: &Path) -> Result<Self> {
        let out = std::fs::File::create(log)?;
        let err = out.try_clone()?;
        let child = cmd
            .stdin(Stdio::null())
            .stdout(Stdio::from(out))
            .stderr(Stdio::from(err))
            .spawn()
            .with_context(|| format!("cannot start {cmd:?}"))?;
        Ok(Self(child))
    }

    fn id(&self) -> u32 {
        self.0.id()
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        let _ = Command::new("kill")
            .args(["-TERM", &self.0.id().to_string()])
            .status();
        for _ in 0..100 {
            if matches!(self.0.try_wait(), Ok(Some(_))) {
                return;
            }
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn free_port() -> Result<u16> {
    let l = std::net::TcpListener::bind("127.0.0.1:0")?;
    Ok(l.local_addr()?.port())
}

async fn admin_connection(server_url: &str) -> Result<PgConnection> {
    let opts = PgConnectOptions::from_str(server_url)
        .with_context(|| format!("{BENCH_DB_ENV} is not a valid PostgreSQL URL"))?
        .disable_statement_logging();
    Ok(PgConnection::connect_with(&opts).await?)
}

async fn database_exists(server_url: &str, name: &str) -> Result<bool> {
    let mut conn = admin_connection(server_url).await?;
    let found: Option<i32> = sqlx::query_scalar("SELECT 1 FROM pg_database WHERE datname = $1")
        .bind(name)
        .fetch_optional(&mut conn)
        .await?;
    let _ = conn.close().await;
    Ok(found.is_some())
}

async fn recreate_database(server_url: &str, name: &str) -> Result<()> {
    let mut conn = admin_connection(server_url).await?;
    // `name` is built from the validated scale, never from free input.
    sqlx::raw_sql(&format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)"))
        .execute(&mut conn)
        .await?;
    sqlx::raw_sql(&format!("CREATE DATABASE \"{name}\""))
        .execute(&mut conn)
        .await?;
    let _ = conn.close().await;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::parse;

    fn args(a: &[&str]) -> Vec<String> {
        a.iter().map(|s| (*s).to_owned()).collect()
    }

    #[test]
    fn small_defaults_to_the_debug_build_and_medium_to_release() {
        let small = parse(&args(&[])).expect("defaults");
        assert_eq!(small.scale, "small");
        assert!(!small.release);
        let medium = parse(&args(&["--scale", "medium", "--reuse"])).expect("medium");
        assert!(medium.release && medium.reuse);
        let forced = parse(&args(&["--scale", "medium", "--profile", "debug"])).expect("forced");
        assert!(!forced.release);
    }

    #[test]
    fn bad_options_are_refused_and_run_args_pass_through() {
        assert!(parse(&args(&["--scale", "huge"])).is_err());
        assert!(parse(&args(&["--profile", "fast"])).is_err());
        assert!(parse(&args(&["--seed"])).is_err());
        let o = parse(&args(&["--", "--phase-seconds", "3"])).expect("pass-through");
        assert_eq!(o.run_args, args(&["--phase-seconds", "3"]));
    }
}
