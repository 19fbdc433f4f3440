//! `musubi`: the one binary. Parses the command line and hands over to the library.

use clap::{Parser, Subcommand};
use musubi_config::Config;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Parser)]
#[command(
    name = "musubi",
    version,
    about = "Musubi (結び): a home-care support SNS for medical associations"
)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(clap::Args, Clone, Default)]
struct ServeArgs {
    /// Address to listen on [env: MUSUBI_LISTEN; default 127.0.0.1:8080]
    #[arg(long)]
    listen: Option<SocketAddr>,
    #[command(flatten)]
    data: DataArgs,
}

#[derive(clap::Args)]
struct DemoArgs {
    #[command(flatten)]
    serve: ServeArgs,
    /// Fictional patients added to the register besides the scripted ones (0 for none)
    #[arg(long, default_value_t = musubi_demo::DEFAULT_EXTRA_PATIENTS)]
    patients: usize,
}

#[derive(clap::Args, Clone, Default)]
struct DataArgs {
    /// Data directory, holding the embedded PostgreSQL cluster [env: MUSUBI_DATA_DIR; default ./musubi-data]
    #[arg(long)]
    data_dir: Option<PathBuf>,
}

#[derive(Subcommand)]
enum Command {
    /// Run the server (the default).
    Serve(ServeArgs),
    /// Run the server, seeding fictional demo data into an empty database.
    Demo(DemoArgs),
    /// Apply database migrations: core, then every association's schema.
    Migrate(DataArgs),
    /// Manage medical associations (tenants).
    #[command(subcommand)]
    Association(AssociationCommand),
    /// Print the GraphQL schema (SDL).
    Schema,
    /// Serve the data directory's files as a small S3-compatible store (the one `serve` runs
    /// inside itself when MUSUBI_S3_ENDPOINT is not set), for replicas on one machine.
    /// Requests must be signed with MUSUBI_S3_ACCESS_KEY_ID and MUSUBI_S3_SECRET_ACCESS_KEY.
    FileStore(FileStoreArgs),
    /// Check and maintain the tamper-evident audit logs.
    #[command(subcommand)]
    Audit(AuditCommand),
    /// Show the background-job queue: how many jobs of each kind wait, run, finished or
    /// failed, and the latest failures.
    Jobs(DataArgs),
    /// Write one consistent archive of the database (core and every association) and every
    /// stored file. See docs/backup.md.
    Backup(BackupArgs),
    /// Restore an archive of `musubi backup` into an empty deployment (an empty database and
    /// file store), then verify it and the audit logs.
    Restore(RestoreArgs),
}

#[derive(clap::Args)]
struct BackupArgs {
    /// The archive to write (a .tar.gz; never overwritten)
    #[arg(long)]
    out: PathBuf,
    #[command(flatten)]
    data: DataArgs,
}

#[derive(clap::Args)]
struct RestoreArgs {
    /// The archive to restore
    #[arg(long)]
    from: PathBuf,
    #[command(flatten)]
    data: DataArgs,
}

#[derive(clap::Args)]
struct FileStoreArgs {
    /// Address to listen on
    #[arg(long, default_value = "127.0.0.1:9000")]
    listen: SocketAddr,
    #[command(flatten)]
    data: DataArgs,
}

#[derive(Subcommand)]
enum AuditCommand {
    /// Verify the hash chains: one association's log, or every association's and the platform log. Exits 1 unless all are intact.
    Verify {
        /// Only this association (slug)
        #[arg(long)]
        association: Option<String>,
        #[command(flatten)]
        data: DataArgs,
    },
    /// Delete audit records older than each association's retention (audit_retention_years).
    Purge(DataArgs),
}

#[derive(Subcommand)]
enum AssociationCommand {
    /// Create an association and its schema.
    Create {
        /// Short name for URLs: lowercase letters, digits, hyphens (e.g. minatogawa)
        #[arg(long)]
        slug: String,
        /// Display name (e.g. みなと川医師会)
        #[arg(long)]
        name: String,
        /// The district it serves
        #[arg(long, default_value = "")]
        area: String,
        #[arg(long, default_value = "")]
        description: String,
        #[command(flatten)]
        data: DataArgs,
    },
    /// List the associations of this deployment.
    List(DataArgs),
    /// Record that two associations share their directories (their members may find and
    /// invite each other's people to groups), or end it with --remove.
    Neighbours {
        /// One association's slug
        #[arg(long)]
        slug: String,
        /// The other association's slug
        #[arg(long)]
        with: String,
        /// End the agreement instead
        #[arg(long)]
        remove: bool,
        #[command(flatten)]
        data: DataArgs,
    },
    /// Invite an association's (first) administrator: prints a one-time link (and its QR code
    /// file) to hand over, or mails it with --email.
    InviteAdmin {
        /// The association's slug
        #[arg(long)]
        slug: String,
        /// Mail the invitation to this address instead of printing the link
        #[arg(long)]
        email: Option<String>,
        /// Days the link stays valid (1–30)
        #[arg(long, default_value_t = 7)]
        days: i32,
        #[command(flatten)]
        data: DataArgs,
    },
    /// Write one association (its tables, members and their accounts, groups and files) to an
    /// archive, to import it into another deployment. It stays here. See docs/backup.md.
    Export {
        /// The association's slug
        #[arg(long)]
        slug: String,
        /// The archive to write (a .tar.gz; never overwritten)
        #[arg(long)]
        out: PathBuf,
        #[command(flatten)]
        data: DataArgs,
    },
    /// Import an association exported from another deployment; people already here (same
    /// email) are merged, keeping their sign-in here.
    Import {
        /// The archive of `musubi association export`
        #[arg(long)]
        from: PathBuf,
        #[command(flatten)]
        data: DataArgs,
    },
}

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    let cli = Cli::parse();
    let command = cli.command.unwrap_or(Command::Serve(ServeArgs::default()));
    if let Command::Schema = command {
        print!("{}", musubi_graphql::sdl());
        return ExitCode::SUCCESS;
    }
    let mut config = match Config::from_env() {
        Ok(c) => c,
        Err(e) => {
            eprintln!("musubi: {e}");
            return ExitCode::from(2);
        }
    };
    let data = match &command {
        Command::Serve(a) | Command::Demo(DemoArgs { serve: a, .. }) => {
            if let Some(l) = a.listen {
                config.listen = l;
            }
            Some(&a.data)
        }
        Command::Migrate(d)
        | Command::Association(AssociationCommand::List(d))
        | Command::FileStore(FileStoreArgs { data: d, .. })
        | Command::Jobs(d)
        | Command::Backup(BackupArgs { data: d, .. })
        | Command::Restore(RestoreArgs { data: d, .. }) => Some(d),
        Command::Association(AssociationCommand::Create { data, .. })
        | Command::Association(AssociationCommand::InviteAdmin { data, .. })
        | Command::Association(AssociationCommand::Neighbours { data, .. })
        | Command::Association(AssociationCommand::Export { data, .. })
        | Command::Association(AssociationCommand::Import { data, .. }) => Some(data),
        Command::Schema => None,
        Command::Audit(AuditCommand::Verify { data, .. } | AuditCommand::Purge(data)) => Some(data),
    };
    if let Some(dir) = data.and_then(|d| d.data_dir.clone()) {
        config.data_dir = dir;
    }
    let _telemetry = match musubi_telemetry::init(&config) {
        Ok(g) => g,
        Err(e) => {
            eprintln!("musubi: {e}");
            return ExitCode::from(2);
        }
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("musubi: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(command, config)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("musubi: {e:#}");
            ExitCode::FAILURE
        }
    }
}

async fn run(command: Command, config: Config) -> anyhow::Result<()> {
    match command {
        Command::Serve(_) => musubi::serve(config, None).await,
        Command::Demo(d) => musubi::serve(config, Some(d.patients)).await,
        Command::Migrate(_) => musubi::cli::migrate(&config).await,
        Command::Association(AssociationCommand::InviteAdmin {
            slug, email, days, ..
        }) => musubi::cli::invite_admin(&config, &slug, email, days).await,
        Command::Association(AssociationCommand::List(_)) => {
            musubi::cli::list_associations(&config).await
        }
        Command::Association(AssociationCommand::Neighbours {
            slug, with, remove, ..
        }) => musubi::cli::set_neighbours(&config, &slug, &with, !remove).await,
        Command::Association(AssociationCommand::Export { slug, out, .. }) => {
            musubi::backup::export_association(&config, &slug, &out).await
        }
        Command::Association(AssociationCommand::Import { from, .. }) => {
            musubi::backup::import_association(&config, &from).await
        }
        Command::Association(AssociationCommand::Create {
            slug,
            name,
            area,
            description,
            ..
        }) => {
            let input = musubi_domain::associations::CreateAssociation {
                slug,
                name,
                area,
                description,
            };
            musubi::cli::create_association(&config, &input).await
        }
        Command::Schema => Ok(()),
        Command::FileStore(args) => musubi::cli::file_store(&config, args.listen).await,
        Command::Audit(AuditCommand::Verify { association, .. }) => {
            musubi::cli_audit::verify(&config, association.as_deref()).await
        }
        Command::Audit(AuditCommand::Purge(_)) => musubi::cli_audit::purge(&config).await,
        Command::Jobs(_) => musubi::cli::jobs(&config).await,
        Command::Backup(args) => musubi::backup::backup(&config, &args.out).await,
        Command::Restore(args) => musubi::backup::restore(&config, &args.from).await,
    }
}
