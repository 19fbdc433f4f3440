//! Operator commands. Each works against `DATABASE_URL` or the embedded cluster of `--data-dir`.

use crate::open_database;
use anyhow::Context as _;
use musubi_config::Config;
use musubi_domain::associations::CreateAssociation;
use musubi_domain::operator::Operator;

pub async fn migrate(config: &Config) -> anyhow::Result<()> {
    let database = open_database(config).await?;
    let result = database.db.migrate().await;
    database.shutdown().await;
    let report = result.map_err(|e| anyhow::anyhow!("migration failed: {e}"))?;
    if report.is_noop() {
        println!(
            "Everything is up to date ({} associations).",
            report.tenants_total
        );
    } else {
        if !report.core_applied.is_empty() {
            println!("core: applied {:?}", report.core_applied);
        }
        for (slug, versions) in &report.tenants_applied {
            println!("{slug}: applied {versions:?}");
        }
    }
    Ok(())
}

pub async fn create_association(config: &Config, input: &CreateAssociation) -> anyhow::Result<()> {
    let database = open_database(config).await?;
    let services = match crate::services(config, database.db.clone()).await {
        Ok(s) => s,
        Err(e) => {
            database.shutdown().await;
            return Err(e);
        }
    };
    let result = async {
        database
            .db
            .migrate()
            .await
            .map_err(|e| anyhow::anyhow!("migration failed: {e}"))?;
        Operator::new(services, database.db.clone())
            .create_association(input)
            .await
            .map_err(|e| anyhow::anyhow!("{}: {}", e.code.as_str(), e.message))
    }
    .await;
    database.shutdown().await;
    let tenant = result?;
    println!(
        "Created association {} ({}) in schema {}.",
        tenant.slug,
        tenant.name,
        tenant.schema_name()
    );
    Ok(())
}

pub async fn set_neighbours(
    config: &Config,
    slug: &str,
    other: &str,
    neighbours: bool,
) -> anyhow::Result<()> {
    let database = open_database(config).await?;
    let services = match crate::services(config, database.db.clone()).await {
        Ok(s) => s,
        Err(e) => {
            database.shutdown().await;
            return Err(e);
        }
    };
    let result = Operator::new(services, database.db.clone())
        .set_neighbours(slug, other, neighbours)
        .await
        .map_err(|e| anyhow::anyhow!("{}: {}", e.code.as_str(), e.message));
    database.shutdown().await;
    let changed = result?;
    match (neighbours, changed) {
        (true, true) => println!("{slug} and {other} now share their directories."),
        (true, false) => println!("{slug} and {other} already share their directories."),
        (false, true) => println!("{slug} and {other} no longer share their directories."),
        (false, false) => println!("{slug} and {other} did not share their directories."),
    }
    Ok(())
}

pub async fn list_associations(config: &Config) -> anyhow::Result<()> {
    let database = open_database(config).await?;
    let result = database.db.list_associations().await;
    database.shutdown().await;
    let rows = result.map_err(|e| anyhow::anyhow!("cannot list associations: {e}"))?;
    if rows.is_empty() {
        println!(
            "No associations yet. Create one with `musubi association create --slug … --name …`."
        );
    }
    for r in rows {
        println!(
            "{}\t{}\t{}\t{}",
            r.slug,
            r.name,
            r.schema_name,
            r.created_at.format("%Y-%m-%d")
        );
    }
    Ok(())
}

pub async fn invite_admin(
    config: &Config,
    slug: &str,
    email: Option<String>,
    days: i32,
) -> anyhow::Result<()> {
    let database = open_database(config).await?;
    let result = async {
        let services = crate::services(config, database.db.clone()).await?;
        let tenant = services
            .resolve_tenant(slug)
            .await
            .map_err(|e| anyhow::anyhow!("{}: {}", e.code.as_str(), e.message))?;
        Operator::new(services, database.db.clone())
            .invite_first_admin(&tenant, email.clone(), Some(days))
            .await
            .map_err(|e| anyhow::anyhow!("{}: {}", e.code.as_str(), e.message))
    }
    .await;
    database.shutdown().await;
    let created = result?;
    match (created.link, email) {
        (Some(link), _) => {
            println!(
                "Invitation for an administrator of {slug} (valid until {}):",
                created.invitation.expires_at.format("%Y-%m-%d %H:%M UTC")
            );
            println!("{link}");
            println!("Hand this link over in person; it works once.");
        }
        (None, Some(address)) => println!("Invitation mailed to {address}."),
        (None, None) => println!("Invitation created."),
    }
    Ok(())
}

/// `musubi file-store`: the embedded S3-compatible store over `<data dir>/files`, alone, until
/// SIGINT or SIGTERM. Static keys are required: anyone who can reach the port could otherwise
/// read every file.
pub async fn file_store(config: &Config, listen: std::net::SocketAddr) -> anyhow::Result<()> {
    let Some((key, secret)) = &config.files.s3_credentials else {
        anyhow::bail!(
            "set MUSUBI_S3_ACCESS_KEY_ID and MUSUBI_S3_SECRET_ACCESS_KEY: the store accepts only \
             requests signed with them"
        );
    };
    let root = config.data_dir.join("files");
    // Handlers first: a supervisor may send SIGTERM as soon as the address is printed.
    let stopped = crate::shutdown_signal()?;
    let store = musubi_storage::embedded::Embedded::start_with(&root, listen, key, secret.expose())
        .await
        .with_context(|| format!("cannot serve {} at {listen}", root.display()))?;
    println!(
        "musubi: file store for {} at {}",
        root.display(),
        store.settings().endpoint
    );
    stopped.await;
    store.stop();
    Ok(())
}

/// `musubi jobs`: the queue at a glance, for an operator.
pub async fn jobs(config: &Config) -> anyhow::Result<()> {
    let database = open_database(config).await?;
    let services = match crate::services(config, database.db.clone()).await {
        Ok(s) => s,
        Err(e) => {
            database.shutdown().await;
            return Err(e);
        }
    };
    let result = Operator::new(services, database.db.clone())
        .queue_overview()
        .await
        .map_err(|e| anyhow::anyhow!("{}: {}", e.code.as_str(), e.message));
    database.shutdown().await;
    let overview = result?;
    if overview.counts.is_empty() {
        println!("The queue is empty.");
    }
    for (kind, state, count, oldest) in &overview.counts {
        let oldest = match (state.as_str(), oldest) {
            ("pending", Some(at)) => format!("  (oldest due {})", at.to_rfc3339()),
            _ => String::new(),
        };
        println!("{kind:<20} {state:<8} {count:>8}{oldest}");
    }
    if !overview.failed.is_empty() {
        println!("\nLatest failures:");
        for f in &overview.failed {
            println!(
                "#{} {} after {} attempt(s) at {}: {}",
                f.id,
                f.kind,
                f.attempts,
                f.finished_at.map(|t| t.to_rfc3339()).unwrap_or_default(),
                f.last_error.as_deref().unwrap_or("")
            );
        }
    }
    Ok(())
}
