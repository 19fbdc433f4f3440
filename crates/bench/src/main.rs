//! `musubi-bench`: the benchmark's three parts, orchestrated by `cargo xtask bench`.
//!
//! - `generate` fills a freshly migrated database with a deterministic dataset (COPY) and
//!   writes the manifest the driver needs;
//! - `floor` serves a minimal axum + sqlx primary-key lookup on the same database: what the
//!   machine can do at best, driven the same way as Musubi;
//! - `run` drives Musubi and the floor and writes `report.json`.

mod driver;
mod floor;
mod generate;
mod manifest;
mod queue;
mod report;
mod rng;
mod samples;
mod scale;
mod statements;
mod stats;
mod text;
mod ws;

use clap::{Args, Parser, Subcommand};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

pub use scale::Scale;

#[derive(Parser)]
#[command(
    name = "musubi-bench",
    about = "Musubi's benchmark (see docs/performance.md)"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Fills a migrated, empty database with the dataset of a scale and writes the manifest.
    Generate(GenerateArgs),
    /// Serves the floor: one primary-key lookup per request.
    Floor(FloorArgs),
    /// Drives Musubi and the floor; writes the report and prints a table.
    Run(Box<RunArgs>),
}

#[derive(Args, Debug, Clone)]
pub struct GenerateArgs {
    /// A migrated database with no associations yet.
    #[arg(long, env = "DATABASE_URL")]
    pub database_url: String,
    #[arg(long, value_enum, default_value = "small")]
    pub scale: Scale,
    #[arg(long, default_value_t = 20_261_124)]
    pub seed: u64,
    /// Where to write the manifest (JSON).
    #[arg(long)]
    pub manifest: PathBuf,
    /// The data directory `musubi serve` will run with: attachments' objects go into its
    /// file store (the embedded one over `<data dir>/files`, unless `MUSUBI_S3_ENDPOINT` names
    /// another).
    #[arg(long, env = "MUSUBI_DATA_DIR", default_value = "musubi-data")]
    pub data_dir: PathBuf,
}

#[derive(Args, Debug, Clone)]
pub struct FloorArgs {
    #[arg(long, env = "DATABASE_URL")]
    pub database_url: String,
    #[arg(long, default_value = "127.0.0.1:8091")]
    pub listen: SocketAddr,
    /// Pool size; the same as Musubi's (MUSUBI_DB_MAX_CONNECTIONS) for a fair floor.
    #[arg(long, default_value_t = 16)]
    pub max_connections: u32,
}

#[derive(Args, Debug, Clone)]
pub struct RunArgs {
    /// Musubi's base URL, e.g. http://127.0.0.1:8090. Run it with `MUSUBI_MAIL_BATCH_SECS=0`
    /// (as `cargo xtask bench` does), or the mixed phase sees no notification digests.
    #[arg(long)]
    pub target: String,
    /// The floor's base URL, e.g. http://127.0.0.1:8091
    #[arg(long)]
    pub floor: String,
    #[arg(long)]
    pub manifest: PathBuf,
    /// For the report's database size and the notification queue's jobs.
    #[arg(long, env = "DATABASE_URL")]
    pub database_url: String,
    /// Musubi's process id, to sample its memory (VmRSS, VmHWM).
    #[arg(long)]
    pub server_pid: Option<u32>,
    /// Where to write the report (JSON).
    #[arg(long)]
    pub out: PathBuf,
    /// Seconds of each single-operation phase (default by scale).
    #[arg(long)]
    pub phase_seconds: Option<u64>,
    /// Seconds each single-operation phase runs before it is measured (default by scale; 0 for
    /// none). A server that has just started plans each statement afresh on each connection
    /// for each association; one in service has done so long before.
    #[arg(long)]
    pub warmup_seconds: Option<u64>,
    /// Seconds the mixed phase's people act before it is measured (default by scale: 15 at
    /// medium and large; 0 for none). Their first actions are spread over their first
    /// interval; by then the rhythm has settled and the server has planned its statements.
    #[arg(long)]
    pub mixed_warmup_seconds: Option<u64>,
    /// Concurrent clients in the single-operation phases.
    #[arg(long, default_value_t = 8)]
    pub concurrency: usize,
    /// Simulated people in the mixed phase, each acting every 5–10 s (default by scale).
    #[arg(long)]
    pub mixed_people: Option<usize>,
    /// Seconds of the mixed phase (65 by default; the notification schedule runs once a
    /// minute, and a shorter phase may see no run).
    #[arg(long)]
    pub mixed_seconds: Option<u64>,
    /// Open WebSocket subscriptions during the mixed phase (default by scale).
    #[arg(long)]
    pub subscriptions: Option<usize>,
    /// A second Musubi on the same database with load shedding at its defaults: when given,
    /// an overload phase offers it twice the mixed phase's rate.
    #[arg(long)]
    pub overload_target: Option<String>,
    /// That server's process id, to sample its memory during the overload phase.
    #[arg(long)]
    pub overload_pid: Option<u32>,
    /// Seconds of the overload phase (default by scale).
    #[arg(long)]
    pub overload_seconds: Option<u64>,
    /// Actions a second offered in the overload phase (default: twice the mixed phase's), to
    /// look at the overload phase alone (`--only overload`).
    #[arg(long)]
    pub overload_rate: Option<f64>,
    /// Free-form label for the report (e.g. the build profile).
    #[arg(long, default_value = "")]
    pub label: String,
    /// Write the mixed phase's costliest SQL statements here (needs `pg_stat_statements`
    /// preloaded; `cargo xtask bench --statements` does that).
    #[arg(long)]
    pub statements: Option<PathBuf>,
    /// Run only these phases (comma-separated: `floor`, `home`, `topic_view`, …, `mixed`,
    /// `overload`, `fairness`), for a quick look at one of them; budgets of phases not run are
    /// not judged.
    #[arg(long, value_delimiter = ',')]
    pub only: Vec<String>,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("musubi-bench: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(async move {
        match cli.command {
            Command::Generate(a) => generate::run(a).await,
            Command::Floor(a) => floor::serve(a).await,
            Command::Run(a) => driver::run(*a).await,
        }
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("musubi-bench: {e:#}");
            ExitCode::FAILURE
        }
    }
}
