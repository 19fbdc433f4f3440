//! `musubi audit …`: operator commands for the tamper-evident audit logs. Like every command,
//! they work against `DATABASE_URL` or the embedded cluster of `--data-dir`.

use crate::open_database;
use musubi_config::Config;
use musubi_domain::audit::{self, VerifyReport};
use musubi_domain::{AppError, Db};

/// The name the platform log goes by in the output.
pub const PLATFORM_LOG: &str = "platform";

/// One output line for a verified log.
pub fn verify_line(label: &str, report: &VerifyReport) -> String {
    match &report.first_broken {
        None => {
            let head = report
                .head
                .as_ref()
                .map(|h| {
                    let hex: String = h.hash.iter().map(|b| format!("{b:02x}")).collect();
                    format!(" (head seq {}, hash {hex})", h.seq)
                })
                .unwrap_or_default();
            format!("{label}: {} records, chain intact{head}", report.checked)
        }
        Some(b) => format!(
            "{label}: BROKEN at seq {}: {}; {} records verified before it",
            b.seq, b.reason, report.checked
        ),
    }
}

fn app_error(e: AppError) -> String {
    format!("{}: {}", e.code.as_str(), e.message)
}

/// Verifies one association's log, or every association's and the platform log. Prints a line
/// per log; fails (exit status 1) unless every chain is intact.
pub async fn verify(config: &Config, association: Option<&str>) -> anyhow::Result<()> {
    let database = open_database(config).await?;
    let result = verify_with(&database.db, association).await;
    database.shutdown().await;
    let (checked, failed) = result?;
    if failed > 0 {
        anyhow::bail!("{failed} of {checked} audit logs did not verify");
    }
    Ok(())
}

async fn verify_with(db: &Db, association: Option<&str>) -> anyhow::Result<(usize, usize)> {
    let lines = verify_lines(db, association, association.is_none()).await?;
    for (line, _) in &lines {
        println!("{line}");
    }
    let failed = lines.iter().filter(|(_, intact)| !intact).count();
    Ok((lines.len(), failed))
}

/// One line per log (one association's or every association's, and the platform log when
/// asked) and whether its chain is intact; a log that cannot be read counts as not intact.
pub(crate) async fn verify_lines(
    db: &Db,
    association: Option<&str>,
    platform: bool,
) -> anyhow::Result<Vec<(String, bool)>> {
    let slugs: Vec<String> = match association {
        Some(slug) => vec![slug.to_owned()],
        None => db
            .list_associations()
            .await
            .map_err(|e| anyhow::anyhow!("cannot list associations: {e}"))?
            .into_iter()
            .map(|r| r.slug)
            .collect(),
    };
    let mut lines = Vec::new();
    for slug in &slugs {
        let report = match db.resolve_tenant(slug).await {
            Ok(tenant) => audit::verify_association(db, &tenant).await,
            Err(e) => Err(e.into()),
        };
        lines.push(match report {
            Ok(r) => (verify_line(slug, &r), r.is_intact()),
            Err(e) => (format!("{slug}: cannot verify: {}", app_error(e)), false),
        });
    }
    if platform {
        lines.push(match audit::verify_platform(db).await {
            Ok(r) => (verify_line(PLATFORM_LOG, &r), r.is_intact()),
            Err(e) => (
                format!("{PLATFORM_LOG}: cannot verify: {}", app_error(e)),
                false,
            ),
        });
    }
    Ok(lines)
}

/// Applies each association's retention now (the server also does it daily). Prints what was
/// removed; fails if any association could not be purged.
pub async fn purge(config: &Config) -> anyhow::Result<()> {
    let database = open_database(config).await?;
    let result = audit::purge_all(&database.db).await;
    database.shutdown().await;
    let outcomes = result.map_err(|e| anyhow::anyhow!("audit purge failed: {}", app_error(e)))?;
    if outcomes.is_empty() {
        println!("No associations.");
    }
    let mut failed = 0;
    for o in outcomes {
        match o.result {
            Ok(Some(r)) => println!(
                "{}: purged {} records (seq {}–{}, older than {}); anchor {}",
                o.slug,
                r.count,
                r.purged_from,
                r.purged_to,
                r.cutoff.format("%Y-%m-%d"),
                r.anchor_hash
                    .iter()
                    .map(|b| format!("{b:02x}"))
                    .collect::<String>()
            ),
            Ok(None) => println!("{}: nothing older than the retention period", o.slug),
            Err(e) => {
                println!("{}: purge failed: {}", o.slug, app_error(e));
                failed += 1;
            }
        }
    }
    if failed > 0 {
        anyhow::bail!("the audit purge failed for {failed} associations");
    }
    Ok(())
}
