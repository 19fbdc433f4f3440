//! `musubi backup` and `musubi restore`: one consistent archive of a deployment (the `core`
//! schema, every association's schema and every stored file) and its restoration into an
//! empty deployment. Operators' guide: docs/backup.md.
//!
//! The archive is a gzip-compressed tar file, so standard tools can list and unpack it:
//!
//! - `musubi-backup.json`: the format and the Musubi that wrote it. First, so that an archive
//!   of a newer format is refused before anything else is read.
//! - `db/<schema>/<table>.copy`: each table in PostgreSQL's `COPY` text format, referenced
//!   tables before the tables referring to them (the order a restore loads them in).
//! - `files/<key>`: each stored object.
//! - `manifest.json`: versions, associations, and per table and object the sizes and
//!   checksums. Last, because it describes what precedes it.
//!
//! Tables are read in one `REPEATABLE READ, READ ONLY` transaction (one snapshot). The objects
//! are the ones the snapshot's `files` rows name (originals, previews and thumbnails); keys
//! are never reused, so reading them after the snapshot still yields the snapshot's files.

use crate::{open_database, Database};
use anyhow::{anyhow, bail, Context as _};
use bytes::{Bytes, BytesMut};
use chrono::{DateTime, Utc};
use futures_util::StreamExt as _;
use musubi_config::{Config, DatabaseSetting};
use musubi_storage::{Store, StoreError};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use sqlx::postgres::PgConnectOptions;
use sqlx::{ConnectOptions as _, Connection as _, PgConnection};
use std::collections::{HashMap, HashSet};
use std::io::Read;
use std::path::{Path, PathBuf};
use std::str::FromStr as _;
use std::time::Instant;
use tokio::io::{AsyncReadExt as _, AsyncSeekExt as _, AsyncWriteExt as _};

/// What `musubi-backup.json` and the manifest call the format.
pub const FORMAT: &str = "musubi-backup";
/// The newest archive format this Musubi writes and reads.
pub const FORMAT_VERSION: u32 = 1;
/// What `musubi association export` writes: the same container, one association's share.
pub const ASSOCIATION_FORMAT: &str = "musubi-association";
const HEADER_ENTRY: &str = "musubi-backup.json";
const MANIFEST_ENTRY: &str = "manifest.json";
/// Pieces in which bytes travel between the database, the store and the archive.
const CHUNK: usize = 256 * 1024;
/// A table's `COPY` output is kept in memory up to this size, then spooled to a file: the
/// archive needs each entry's size before its bytes.
const SPOOL_IN_MEMORY: usize = 8 * 1024 * 1024;

/// Output that depends on session settings (dates, floats, bytea) is fixed, so that the same
/// rows give the same bytes when backed up and when read back after a restore. No timeouts:
/// a large deployment's transaction legitimately lasts long, partly idle while files travel.
const SESSION_SETTINGS: &str = "SET TimeZone = 'UTC'; SET DateStyle = 'ISO, YMD'; \
     SET IntervalStyle = 'postgres'; SET extra_float_digits = 3; SET bytea_output = 'hex'; \
     SET statement_timeout = 0; SET lock_timeout = 0; \
     SET idle_in_transaction_session_timeout = 0";

/// `musubi-backup.json`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Header {
    pub format: String,
    pub format_version: u32,
    pub musubi_version: String,
    pub created_at: DateTime<Utc>,
}

/// `manifest.json`: what the archive holds and how to check it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Manifest {
    pub format: String,
    pub format_version: u32,
    pub musubi_version: String,
    /// The moment of the database snapshot (its transaction's start).
    pub snapshot_at: DateTime<Utc>,
    /// When the last object was written.
    pub finished_at: DateTime<Utc>,
    /// The core schema's migration ledger.
    pub core_version: i32,
    pub core_migrations: Vec<i32>,
    pub associations: Vec<AssociationEntry>,
    /// In load order: referenced tables first.
    pub tables: Vec<TableEntry>,
    pub sequences: Vec<SequenceEntry>,
    pub objects: Vec<ObjectEntry>,
    /// Objects named by a `files` row that the store did not have.
    pub missing_objects: Vec<MissingObject>,
    /// Set in an association export (`musubi association export`) only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub export: Option<ExportInfo>,
}

/// What an association export holds besides the tables and objects.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ExportInfo {
    /// The people exported: its members and everyone in the groups it hosts.
    pub people: u64,
    /// The associations it shared its directory with: those agreements stay behind.
    pub dropped_neighbours: Vec<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct AssociationEntry {
    pub id: String,
    pub slug: String,
    pub name: String,
    pub schema: String,
    /// Its schema's migration ledger.
    pub schema_version: i32,
    pub migrations: Vec<i32>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TableEntry {
    pub schema: String,
    pub name: String,
    /// Its name in the archive.
    pub entry: String,
    /// The columns, in the order of the `COPY` data (generated columns are left out).
    pub columns: Vec<String>,
    pub rows: u64,
    pub bytes: u64,
    /// SHA-256 of the entry's bytes.
    pub sha256: String,
    /// Order-independent digest of the rows (the sum of each row's SHA-256 prefix), compared
    /// with the restored table read back.
    pub rows_digest: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SequenceEntry {
    pub schema: String,
    pub name: String,
    /// `None`: never used.
    pub last_value: Option<i64>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ObjectEntry {
    pub key: String,
    pub entry: String,
    pub size: u64,
    pub sha256: String,
    pub content_type: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct MissingObject {
    pub key: String,
    /// Its file was deleted (the sweeper removes such objects): expected, not a loss.
    pub deleted: bool,
}

/// What a backup wrote.
#[derive(Debug, Clone)]
pub struct BackupSummary {
    pub associations: usize,
    pub tables: usize,
    pub rows: u64,
    pub objects: usize,
    pub object_bytes: u64,
    /// Objects of live files the store did not have.
    pub missing: usize,
    /// Objects whose bytes differ from the SHA-256 their `files` row recorded.
    pub mismatched: usize,
    pub archive_bytes: u64,
}

/// What a restore loaded.
#[derive(Debug, Clone)]
pub struct RestoreSummary {
    pub associations: usize,
    pub tables: usize,
    pub rows: u64,
    pub objects: usize,
    pub object_bytes: u64,
    /// Audit logs verified after the restore (every association's and the platform log).
    pub audit_logs: usize,
}

// ---------------------------------------------------------------------------------------
// Commands

/// `musubi backup --out FILE`.
pub async fn backup(config: &Config, out: &Path) -> anyhow::Result<()> {
    let started = Instant::now();
    let database = open_database(config).await?;
    let result = async {
        let connect = login_options(config, &database)?;
        let files = crate::open_files(config).await?;
        write_backup(&connect, &files.store, out).await
    }
    .await;
    database.shutdown().await;
    let s = result?;
    println!(
        "Backed up {} associations: {} tables ({} rows) and {} files ({} bytes) to {} \
         ({} bytes) in {:.1} s.",
        s.associations,
        s.tables,
        s.rows,
        s.objects,
        s.object_bytes,
        out.display(),
        s.archive_bytes,
        started.elapsed().as_secs_f64()
    );
    if s.missing > 0 || s.mismatched > 0 {
        eprintln!(
            "musubi: warning: {} files were missing from the store and {} did not match their \
             recorded checksum (listed above); the archive holds what the store had",
            s.missing, s.mismatched
        );
    }
    Ok(())
}

/// `musubi restore --from FILE`.
pub async fn restore(config: &Config, from: &Path) -> anyhow::Result<()> {
    let started = Instant::now();
    // Cheap refusals first: not an archive, a newer format.
    let path = from.to_owned();
    tokio::task::spawn_blocking(move || read_header(&path))
        .await
        .context("reading the archive")??;
    let database = open_database(config).await?;
    let result = async {
        let connect = login_options(config, &database)?;
        restore_into(config, &database, &connect, from).await
    }
    .await;
    database.shutdown().await;
    let s = result?;
    println!(
        "Restored {} associations: {} tables ({} rows) and {} files ({} bytes) from {} in \
         {:.1} s; {} audit logs verified.",
        s.associations,
        s.tables,
        s.rows,
        s.objects,
        s.object_bytes,
        from.display(),
        started.elapsed().as_secs_f64(),
        s.audit_logs
    );
    Ok(())
}

/// The login role's own connection options (the pool's connections run as `musubi_core`,
/// which may not read the association schemas).
fn login_options(config: &Config, database: &Database) -> anyhow::Result<PgConnectOptions> {
    let options = match (&database.embedded, &config.database) {
        (Some(pg), _) => pg.connect_options(),
        (None, DatabaseSetting::Url(url)) => PgConnectOptions::from_str(url.expose())
            .map_err(|_| anyhow!("configuration error in DATABASE_URL: not a valid URL"))?,
        (None, DatabaseSetting::Embedded) => bail!("the embedded PostgreSQL is not running"),
    };
    // A long COPY is not a slow query worth a warning per table.
    Ok(options.disable_statement_logging())
}

async fn connect_as(options: &PgConnectOptions, name: &str) -> anyhow::Result<PgConnection> {
    let mut conn = PgConnection::connect_with(&options.clone().application_name(name))
        .await
        .context("cannot connect to PostgreSQL")?;
    sqlx::raw_sql(SESSION_SETTINGS).execute(&mut conn).await?;
    Ok(conn)
}

// ---------------------------------------------------------------------------------------
// Backup

struct WantedObject {
    key: String,
    content_type: String,
    /// What the `files` row recorded (originals only).
    sha256: Option<Vec<u8>>,
    deleted: bool,
}

struct TableInfo {
    schema: String,
    name: String,
    columns: Vec<String>,
}

/// Writes the archive to `out` (through `<out>.partial`, renamed once complete: a failed
/// backup never leaves a file that looks like an archive).
pub async fn write_backup(
    connect: &PgConnectOptions,
    store: &Store,
    out: &Path,
) -> anyhow::Result<BackupSummary> {
    if tokio::fs::try_exists(out).await.unwrap_or(false) {
        bail!(
            "{} exists already: choose a new name (a backup never overwrites one)",
            out.display()
        );
    }
    let name = out
        .file_name()
        .ok_or_else(|| anyhow!("{} is not a file name", out.display()))?;
    let partial = out.with_file_name(format!("{}.partial", name.to_string_lossy()));
    let dir = match out.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_owned(),
        _ => PathBuf::from("."),
    };
    match write_archive(connect, store, &partial, &dir).await {
        Ok(summary) => {
            tokio::fs::rename(&partial, out).await.with_context(|| {
                format!("cannot rename {} to {}", partial.display(), out.display())
            })?;
            Ok(summary)
        }
        Err(e) => {
            let _ = tokio::fs::remove_file(&partial).await;
            Err(e)
        }
    }
}

/// An archive begun with its header, and a connection reading one snapshot (REPEATABLE READ,
/// read only) of a database that holds a deployment; the snapshot's time.
async fn open_snapshot(
    connect: &PgConnectOptions,
    path: &Path,
    format: &str,
    application: &str,
    doing: &str,
) -> anyhow::Result<(ArchiveSink, PgConnection, DateTime<Utc>)> {
    let mut sink = ArchiveSink::create(path)?;
    let header = Header {
        format: format.to_owned(),
        format_version: FORMAT_VERSION,
        musubi_version: env!("CARGO_PKG_VERSION").to_owned(),
        created_at: Utc::now(),
    };
    sink.small(HEADER_ENTRY, serde_json::to_vec_pretty(&header)?)
        .await?;
    let mut conn = connect_as(connect, application).await?;
    sqlx::raw_sql("BEGIN ISOLATION LEVEL REPEATABLE READ, READ ONLY")
        .execute(&mut conn)
        .await?;
    let snapshot_at: DateTime<Utc> = sqlx::query_scalar("SELECT now()")
        .fetch_one(&mut conn)
        .await?;
    let exists: Option<String> =
        sqlx::query_scalar("SELECT to_regclass('core.associations')::text")
            .fetch_one(&mut conn)
            .await?;
    if exists.is_none() {
        bail!("this database holds no Musubi deployment (no core schema): nothing to {doing}");
    }
    Ok((sink, conn, snapshot_at))
}

async fn write_archive(
    connect: &PgConnectOptions,
    store: &Store,
    path: &Path,
    spool_dir: &Path,
) -> anyhow::Result<BackupSummary> {
    let (mut sink, mut conn, snapshot_at) =
        open_snapshot(connect, path, FORMAT, "musubi-backup", "back up").await?;
    let rows: Vec<(String, String, String, String, i32)> = sqlx::query_as(
        "SELECT a.id::text, a.slug, a.name, a.schema_name, a.schema_version \
         FROM core.associations a JOIN pg_namespace n ON n.nspname = a.schema_name \
         ORDER BY a.created_at, a.slug",
    )
    .fetch_all(&mut conn)
    .await?;
    let core_migrations = ledger(&mut conn, "core").await?;
    let mut associations = Vec::with_capacity(rows.len());
    for (id, slug, name, schema, schema_version) in rows {
        let migrations = ledger(&mut conn, &schema).await?;
        associations.push(AssociationEntry {
            id,
            slug,
            name,
            schema,
            schema_version,
            migrations,
        });
    }
    let schemas: Vec<String> = std::iter::once("core".to_owned())
        .chain(associations.iter().map(|a| a.schema.clone()))
        .collect();
    let tables = tables_in_load_order(&mut conn, &schemas).await?;
    let sequences: Vec<(String, String, Option<i64>)> = sqlx::query_as(
        "SELECT schemaname::text, sequencename::text, last_value FROM pg_sequences \
         WHERE schemaname = ANY($1) ORDER BY 1, 2",
    )
    .bind(&schemas)
    .fetch_all(&mut conn)
    .await?;
    let wanted = wanted_objects(&mut conn, &associations).await?;

    let mut table_entries = Vec::with_capacity(tables.len());
    for t in &tables {
        table_entries.push(dump_table(&mut conn, &mut sink, t, spool_dir).await?);
    }
    // The snapshot is no longer needed: the objects' keys are known.
    sqlx::raw_sql("COMMIT").execute(&mut conn).await?;
    let _ = conn.close().await;

    let (objects, missing_objects, mismatched) =
        archive_objects(&mut sink, store, &wanted, spool_dir).await?;

    let manifest = Manifest {
        format: FORMAT.to_owned(),
        format_version: FORMAT_VERSION,
        musubi_version: env!("CARGO_PKG_VERSION").to_owned(),
        snapshot_at,
        finished_at: Utc::now(),
        core_version: core_migrations.iter().copied().max().unwrap_or(0),
        core_migrations,
        associations,
        tables: table_entries,
        sequences: sequences
            .into_iter()
            .map(|(schema, name, last_value)| SequenceEntry {
                schema,
                name,
                last_value,
            })
            .collect(),
        objects,
        missing_objects,
        export: None,
    };
    sink.small(MANIFEST_ENTRY, serde_json::to_vec_pretty(&manifest)?)
        .await?;
    let archive_bytes = sink.finish().await?;
    Ok(BackupSummary {
        associations: manifest.associations.len(),
        tables: manifest.tables.len(),
        rows: manifest.tables.iter().map(|t| t.rows).sum(),
        objects: manifest.objects.len(),
        object_bytes: manifest.objects.iter().map(|o| o.size).sum(),
        missing: manifest
            .missing_objects
            .iter()
            .filter(|m| !m.deleted)
            .count(),
        mismatched,
        archive_bytes,
    })
}

/// Copies the wanted objects into the archive: (their entries, those the store lacked, how
/// many did not match their recorded SHA-256).
async fn archive_objects(
    sink: &mut ArchiveSink,
    store: &Store,
    wanted: &[WantedObject],
    spool_dir: &Path,
) -> anyhow::Result<(Vec<ObjectEntry>, Vec<MissingObject>, usize)> {
    let mut objects = Vec::with_capacity(wanted.len());
    let mut missing_objects = Vec::new();
    let mut mismatched = 0;
    for (i, w) in wanted.iter().enumerate() {
        let download = match store.get(&w.key).await {
            Ok(d) => d,
            Err(StoreError::NotFound) => {
                if !w.deleted {
                    eprintln!("musubi: warning: the store has no object {}", w.key);
                }
                missing_objects.push(MissingObject {
                    key: w.key.clone(),
                    deleted: w.deleted,
                });
                continue;
            }
            Err(e) => bail!("cannot read {} from the file store: {e}", w.key),
        };
        let entry = object_entry_name(&w.key, i);
        let (size, sha256) = copy_object(sink, &entry, download, spool_dir)
            .await
            .with_context(|| format!("copying {} from the file store", w.key))?;
        if let Some(expected) = &w.sha256 {
            if expected.as_slice() != sha256.as_slice() {
                eprintln!(
                    "musubi: warning: {} does not match the SHA-256 its file row recorded \
                     (damaged in the store?)",
                    w.key
                );
                mismatched += 1;
            }
        }
        objects.push(ObjectEntry {
            key: w.key.clone(),
            entry,
            size,
            sha256: hex::encode(sha256),
            content_type: w.content_type.clone(),
        });
    }
    Ok((objects, missing_objects, mismatched))
}

/// A schema's applied migration versions (empty if it has no ledger).
async fn ledger(conn: &mut PgConnection, schema: &str) -> anyhow::Result<Vec<i32>> {
    let table = format!("{}.schema_migrations", quote_ident(schema));
    let exists: Option<String> = sqlx::query_scalar("SELECT to_regclass($1)::text")
        .bind(&table)
        .fetch_one(&mut *conn)
        .await?;
    if exists.is_none() {
        return Ok(Vec::new());
    }
    Ok(
        sqlx::query_scalar(&format!("SELECT version FROM {table} ORDER BY version"))
            .fetch_all(&mut *conn)
            .await?,
    )
}

/// Every table of `schemas` but the migration ledgers (a restore's migrations write those),
/// ordered so that a table comes after the tables its foreign keys reference.
async fn tables_in_load_order(
    conn: &mut PgConnection,
    schemas: &[String],
) -> anyhow::Result<Vec<TableInfo>> {
    let rows: Vec<(String, String, i64, Vec<String>)> = sqlx::query_as(
        "SELECT n.nspname::text, c.relname::text, c.oid::int8, \
                array_agg(a.attname::text ORDER BY a.attnum) \
         FROM pg_class c \
         JOIN pg_namespace n ON n.oid = c.relnamespace \
         JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped \
                             AND a.attgenerated = '' \
         WHERE n.nspname = ANY($1) AND c.relkind = 'r' AND c.relpersistence <> 't' \
           AND c.relname <> 'schema_migrations' \
         GROUP BY 1, 2, 3",
    )
    .bind(schemas)
    .fetch_all(&mut *conn)
    .await?;
    let edges: Vec<(i64, i64)> = sqlx::query_as(
        "SELECT conrelid::int8, confrelid::int8 FROM pg_constraint \
         WHERE contype = 'f' AND conrelid <> confrelid",
    )
    .fetch_all(&mut *conn)
    .await?;
    let mut nodes: Vec<(String, String, i64, Vec<String>)> = rows;
    // `core` first, then the schemas in the manifest's order, tables by name: a stable order.
    let rank: HashMap<&str, usize> = schemas
        .iter()
        .enumerate()
        .map(|(i, s)| (s.as_str(), i))
        .collect();
    nodes.sort_by(|a, b| (rank.get(a.0.as_str()), &a.1).cmp(&(rank.get(b.0.as_str()), &b.1)));
    let index: HashMap<i64, usize> = nodes.iter().enumerate().map(|(i, n)| (n.2, i)).collect();
    let mut needs: Vec<HashSet<usize>> = vec![HashSet::new(); nodes.len()];
    for (from, to) in edges {
        if let (Some(&f), Some(&t)) = (index.get(&from), index.get(&to)) {
            needs[f].insert(t);
        }
    }
    let mut done = vec![false; nodes.len()];
    let mut order = Vec::with_capacity(nodes.len());
    while order.len() < nodes.len() {
        let next = (0..nodes.len()).find(|&i| !done[i] && needs[i].iter().all(|&j| done[j]));
        let Some(i) = next else {
            let cycle: Vec<String> = (0..nodes.len())
                .filter(|&i| !done[i])
                .map(|i| format!("{}.{}", nodes[i].0, nodes[i].1))
                .collect();
            bail!(
                "the tables' foreign keys form a cycle, so no load order exists: {}",
                cycle.join(", ")
            );
        };
        done[i] = true;
        order.push(i);
    }
    Ok(order
        .into_iter()
        .map(|i| TableInfo {
            schema: nodes[i].0.clone(),
            name: nodes[i].1.clone(),
            columns: nodes[i].3.clone(),
        })
        .collect())
}

/// The objects the snapshot's files rows name: each original, and its preview and thumbnail
/// when it has them.
async fn wanted_objects(
    conn: &mut PgConnection,
    associations: &[AssociationEntry],
) -> anyhow::Result<Vec<WantedObject>> {
    let mut wanted = Vec::new();
    for a in associations {
        let table = format!("{}.files", quote_ident(&a.schema));
        let exists: Option<String> = sqlx::query_scalar("SELECT to_regclass($1)::text")
            .bind(&table)
            .fetch_one(&mut *conn)
            .await?;
        if exists.is_none() {
            continue;
        }
        let rows: Vec<(String, String, bool, Vec<u8>, bool)> = sqlx::query_as(&format!(
            "SELECT object_key, content_type, has_preview, sha256, deleted_at IS NOT NULL \
             FROM {table} ORDER BY object_key"
        ))
        .fetch_all(&mut *conn)
        .await?;
        for (key, content_type, has_preview, sha256, deleted) in rows {
            if has_preview {
                for suffix in [".p", ".t"] {
                    wanted.push(WantedObject {
                        key: format!("{key}{suffix}"),
                        content_type: "image/jpeg".to_owned(),
                        sha256: None,
                        deleted,
                    });
                }
            }
            wanted.push(WantedObject {
                key,
                content_type,
                sha256: Some(sha256),
                deleted,
            });
        }
    }
    Ok(wanted)
}

/// `files/<key>`, or `files/<index>` for a key too long for a tar header (the manifest maps
/// entries to keys either way).
fn object_entry_name(key: &str, index: usize) -> String {
    let name = format!("files/{key}");
    if tar::split_name(&name).is_ok() && !key.split('/').any(|p| p.is_empty() || p == "..") {
        name
    } else {
        format!("files/{index:010}")
    }
}

async fn dump_table(
    conn: &mut PgConnection,
    sink: &mut ArchiveSink,
    t: &TableInfo,
    spool_dir: &Path,
) -> anyhow::Result<TableEntry> {
    let sql = format!(
        "COPY {}.{} ({}) TO STDOUT",
        quote_ident(&t.schema),
        quote_ident(&t.name),
        column_list(&t.columns)
    );
    dump_copy(conn, sink, t, &sql, spool_dir).await
}

/// Writes the output of one `COPY … TO STDOUT` as the archive entry of table `t`.
async fn dump_copy(
    conn: &mut PgConnection,
    sink: &mut ArchiveSink,
    t: &TableInfo,
    sql: &str,
    spool_dir: &Path,
) -> anyhow::Result<TableEntry> {
    let mut spool = Spool::new(spool_dir);
    let mut sha = Sha256::new();
    let mut rows = RowDigest::default();
    let mut bytes = 0u64;
    {
        let mut stream = conn
            .copy_out_raw(sql)
            .await
            .with_context(|| format!("reading {}.{}", t.schema, t.name))?;
        while let Some(chunk) = stream.next().await {
            let chunk = chunk.with_context(|| format!("reading {}.{}", t.schema, t.name))?;
            sha.update(&chunk);
            rows.update(&chunk);
            bytes += chunk.len() as u64;
            spool.push(chunk).await?;
        }
    }
    rows.finish()
        .with_context(|| format!("reading {}.{}", t.schema, t.name))?;
    let entry = format!("db/{}/{}.copy", t.schema, t.name);
    sink.begin(&entry, bytes).await?;
    spool.replay(sink).await?;
    sink.end().await?;
    Ok(TableEntry {
        schema: t.schema.clone(),
        name: t.name.clone(),
        entry,
        columns: t.columns.clone(),
        rows: rows.rows,
        bytes,
        sha256: hex::encode(sha.finalize()),
        rows_digest: rows.hex(),
    })
}

/// Streams one object into the archive; returns its size and SHA-256.
async fn copy_object(
    sink: &mut ArchiveSink,
    entry: &str,
    mut download: musubi_storage::Download,
    spool_dir: &Path,
) -> anyhow::Result<(u64, [u8; 32])> {
    let mut sha = Sha256::new();
    let mut size = 0u64;
    match download.length {
        Some(length) => {
            sink.begin(entry, length).await?;
            while let Some(chunk) = download.body.next().await {
                let chunk = chunk.map_err(|e| anyhow!("the file store failed mid-object: {e}"))?;
                sha.update(&chunk);
                size += chunk.len() as u64;
                if size > length {
                    bail!("the store sent more bytes than it announced");
                }
                sink.data(chunk).await?;
            }
            if size != length {
                bail!("the store sent {size} of {length} bytes");
            }
            sink.end().await?;
        }
        None => {
            // A store that did not say the length: spooled, since the archive needs it first.
            let mut spool = Spool::new(spool_dir);
            while let Some(chunk) = download.body.next().await {
                let chunk = chunk.map_err(|e| anyhow!("the file store failed mid-object: {e}"))?;
                sha.update(&chunk);
                size += chunk.len() as u64;
                spool.push(chunk).await?;
            }
            sink.begin(entry, size).await?;
            spool.replay(sink).await?;
            sink.end().await?;
        }
    }
    Ok((size, sha.finalize().into()))
}

/// Bytes of unknown total length: in memory while small, then in an anonymous temporary file
/// next to the archive. Pieces are gathered into `CHUNK`s (`COPY` sends one message per row).
struct Spool {
    dir: PathBuf,
    buf: BytesMut,
    file: Option<tokio::fs::File>,
}

impl Spool {
    fn new(dir: &Path) -> Self {
        Self {
            dir: dir.to_owned(),
            buf: BytesMut::new(),
            file: None,
        }
    }

    async fn push(&mut self, chunk: Bytes) -> anyhow::Result<()> {
        self.buf.extend_from_slice(&chunk);
        if self.file.is_none() && self.buf.len() > SPOOL_IN_MEMORY {
            let file = tempfile::tempfile_in(&self.dir).with_context(|| {
                format!("cannot create a temporary file in {}", self.dir.display())
            })?;
            self.file = Some(tokio::fs::File::from_std(file));
        }
        if let Some(file) = &mut self.file {
            if self.buf.len() >= CHUNK {
                file.write_all(&self.buf).await?;
                self.buf.clear();
            }
        }
        Ok(())
    }

    async fn replay(mut self, sink: &mut ArchiveSink) -> anyhow::Result<()> {
        if let Some(mut file) = self.file.take() {
            file.write_all(&self.buf).await?;
            self.buf.clear();
            file.flush().await?;
            file.seek(std::io::SeekFrom::Start(0)).await?;
            loop {
                let mut buf = BytesMut::with_capacity(CHUNK);
                let n = file.read_buf(&mut buf).await?;
                if n == 0 {
                    break;
                }
                sink.data(buf.freeze()).await?;
            }
        }
        while !self.buf.is_empty() {
            let n = self.buf.len().min(CHUNK);
            sink.data(self.buf.split_to(n).freeze()).await?;
        }
        Ok(())
    }
}

/// The rows of a `COPY` text stream (one line each: newlines inside values are escaped),
/// and an order-independent digest of them: a restored table holds the same rows, maybe in
/// another physical order.
#[derive(Default)]
struct RowDigest {
    line: Sha256,
    open: bool,
    rows: u64,
    sum: u128,
}

impl RowDigest {
    fn update(&mut self, mut data: &[u8]) {
        while !data.is_empty() {
            match data.iter().position(|b| *b == b'\n') {
                Some(i) => {
                    self.line.update(&data[..=i]);
                    let hash = std::mem::take(&mut self.line).finalize();
                    let mut prefix = [0u8; 16];
                    prefix.copy_from_slice(&hash[..16]);
                    self.sum = self.sum.wrapping_add(u128::from_be_bytes(prefix));
                    self.rows += 1;
                    self.open = false;
                    data = &data[i + 1..];
                }
                None => {
                    self.line.update(data);
                    self.open = true;
                    data = &[];
                }
            }
        }
    }

    fn finish(&self) -> anyhow::Result<()> {
        if self.open {
            bail!("the COPY data ends inside a row");
        }
        Ok(())
    }

    fn hex(&self) -> String {
        format!("{:032x}", self.sum)
    }
}

// ---------------------------------------------------------------------------------------
// Restore

/// What the archive's first pass found: the manifest, every entry checked against it.
struct Checked {
    manifest: Manifest,
}

async fn restore_into(
    config: &Config,
    database: &Database,
    connect: &PgConnectOptions,
    from: &Path,
) -> anyhow::Result<RestoreSummary> {
    let mut conn = connect_as(connect, "musubi-restore").await?;
    refuse_unless_empty(&mut conn).await?;

    // The whole archive is read and checked before anything is written.
    let path = from.to_owned();
    let Checked { manifest } = tokio::task::spawn_blocking(move || check_archive(&path))
        .await
        .context("reading the archive")??;
    check_versions(&manifest)?;
    for a in &manifest.associations {
        if !valid_schema_name(&a.schema) {
            bail!("the archive names an invalid schema {:?}", a.schema);
        }
        let exists: bool =
            sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM pg_namespace WHERE nspname = $1)")
                .bind(&a.schema)
                .fetch_one(&mut conn)
                .await?;
        if exists {
            bail!(
                "the target database has a schema {} already (left by an earlier attempt?): \
                 restore into a new, empty database",
                a.schema
            );
        }
    }

    let files = crate::open_files(config).await?;
    // Found out now rather than halfway through.
    if let Err(e) = files.store.exists(".musubi-readiness").await {
        bail!("the file store does not answer ({e}); nothing was changed");
    }
    let db = &database.db;
    db.migrate()
        .await
        .map_err(|e| anyhow!("migrating the target failed: {e}"))?;
    // Checked again now that the schema is there (and with no server in between, it stays so).
    refuse_unless_empty(&mut conn).await?;

    // The associations' schemas are made the way `musubi migrate` makes them, so roles,
    // ownership and grants are what a created association has. This part commits before the
    // data is loaded: a failure after it is undone below.
    let created = register_schemas(&mut conn, manifest.associations.iter()).await;
    if let Err(e) = created {
        return Err(e.context("creating the associations failed; nothing was restored"));
    }

    let mut put = Vec::new();
    let loaded = async {
        db.migrate()
            .await
            .map_err(|e| anyhow!("migrating the associations' schemas failed: {e}"))?;
        check_ledgers(&mut conn, &manifest).await?;
        load(&mut conn, &files.store, from, &manifest, &mut put).await
    }
    .await;
    let stats = match loaded {
        Ok(stats) => stats,
        Err(e) => {
            return Err(match undo(&mut conn, &files.store, &manifest, &put).await {
                Ok(()) => e.context("the restore failed and was undone: the target is empty again"),
                Err(undo_error) => e.context(format!(
                    "the restore failed, and undoing it failed too ({undo_error:#}): drop the \
                     target database and empty the file store before trying again"
                )),
            });
        }
    };
    let _ = conn.close().await;

    // The restored chains must verify, with the same check as `musubi audit verify`.
    let audit_logs = verify_audit(db).await?;
    Ok(RestoreSummary {
        associations: manifest.associations.len(),
        tables: manifest.tables.len(),
        rows: stats.rows,
        objects: stats.objects,
        object_bytes: stats.object_bytes,
        audit_logs,
    })
}

/// A deployment may be restored into only while it holds nobody and nothing.
async fn refuse_unless_empty(conn: &mut PgConnection) -> anyhow::Result<()> {
    let core: Option<String> = sqlx::query_scalar("SELECT to_regclass('core.associations')::text")
        .fetch_one(&mut *conn)
        .await?;
    if core.is_none() {
        return Ok(());
    }
    let (associations, people, audit): (i64, i64, i64) = sqlx::query_as(
        "SELECT (SELECT count(*) FROM core.associations), (SELECT count(*) FROM core.users), \
                (SELECT count(*) FROM core.platform_audit_log)",
    )
    .fetch_one(&mut *conn)
    .await?;
    if associations > 0 || people > 0 || audit > 0 {
        bail!(
            "the target deployment is not empty ({associations} associations, {people} people, \
             {audit} platform audit records): restore only into a new, empty database and an \
             empty file store; nothing was changed"
        );
    }
    Ok(())
}

fn check_versions(manifest: &Manifest) -> anyhow::Result<()> {
    let core = musubi_db::CORE_VERSION;
    let tenant = musubi_db::TENANT_VERSION;
    let newest_tenant = manifest
        .associations
        .iter()
        .map(|a| a.schema_version)
        .max()
        .unwrap_or(tenant);
    if manifest.core_version > core || newest_tenant > tenant {
        bail!(
            "the archive was made by a newer Musubi ({}; core schema {}, association schema {}) \
             than this one ({}; {core}, {tenant}): restore it with that release or a newer one",
            manifest.musubi_version,
            manifest.core_version,
            newest_tenant,
            env!("CARGO_PKG_VERSION")
        );
    }
    let behind = manifest.core_version < core
        || manifest
            .associations
            .iter()
            .any(|a| a.schema_version < tenant);
    if behind {
        bail!(
            "the archive was made at core schema {} and association schema {} (Musubi {}); this \
             Musubi ({}) is at {core} and {tenant}: restore it with Musubi {}, then upgrade with \
             `musubi migrate`",
            manifest.core_version,
            manifest
                .associations
                .iter()
                .map(|a| a.schema_version)
                .min()
                .unwrap_or(tenant),
            manifest.musubi_version,
            env!("CARGO_PKG_VERSION"),
            manifest.musubi_version
        );
    }
    Ok(())
}

/// The target's ledgers must be the archive's: same migrations, so same tables and columns.
async fn check_ledgers(conn: &mut PgConnection, manifest: &Manifest) -> anyhow::Result<()> {
    if ledger(conn, "core").await? != manifest.core_migrations {
        bail!("the target's core migrations differ from the archive's");
    }
    for a in &manifest.associations {
        if ledger(conn, &a.schema).await? != a.migrations {
            bail!(
                "{}: the target's migrations differ from the archive's",
                a.slug
            );
        }
    }
    Ok(())
}

struct LoadStats {
    rows: u64,
    objects: usize,
    object_bytes: u64,
}

/// Loads every table and object in one database transaction, reads every table back against
/// the manifest, sets the sequences, and commits.
async fn load(
    conn: &mut PgConnection,
    store: &Store,
    from: &Path,
    manifest: &Manifest,
    put: &mut Vec<String>,
) -> anyhow::Result<LoadStats> {
    let mut tx = conn.begin().await?;
    let schemas: Vec<String> = std::iter::once("core".to_owned())
        .chain(manifest.associations.iter().map(|a| a.schema.clone()))
        .collect();
    let target: HashSet<(String, String)> = tables_in_load_order(&mut tx, &schemas)
        .await?
        .into_iter()
        .map(|t| (t.schema, t.name))
        .collect();
    let archived: HashSet<(String, String)> = manifest
        .tables
        .iter()
        .map(|t| (t.schema.clone(), t.name.clone()))
        .collect();
    if target != archived {
        bail!("the target's tables differ from the archive's");
    }
    // What the migrations wrote (profile and settings rows) and the registry rows made above
    // make way for the archive's rows.
    clear_tables(&mut tx, &manifest.tables).await?;

    let tables: HashMap<&str, &TableEntry> = manifest
        .tables
        .iter()
        .map(|t| (t.entry.as_str(), t))
        .collect();
    let objects: HashMap<&str, &ObjectEntry> = manifest
        .objects
        .iter()
        .map(|o| (o.entry.as_str(), o))
        .collect();
    let mut reader = ArchiveStream::open(from.to_owned());
    let mut stats = LoadStats {
        rows: 0,
        objects: 0,
        object_bytes: 0,
    };
    while let Some((name, _size)) = reader.next_entry().await? {
        if let Some(t) = tables.get(name.as_str()) {
            stats.rows += load_table(&mut tx, &mut reader, t).await?;
        } else if let Some(o) = objects.get(name.as_str()) {
            if put_object(store, &mut reader, o).await? {
                put.push(o.key.clone());
            }
            stats.objects += 1;
            stats.object_bytes += o.size;
        } else {
            reader.skip().await?;
        }
    }

    for t in &manifest.tables {
        let digest = read_back(&mut tx, t).await?;
        if digest.rows != t.rows || digest.hex() != t.rows_digest {
            bail!(
                "{}.{} read back differs from the archive ({} rows, expected {})",
                t.schema,
                t.name,
                digest.rows,
                t.rows
            );
        }
    }
    set_sequences(&mut tx, &manifest.sequences).await?;
    tx.commit().await?;
    Ok(stats)
}

/// Empties `tables` (last first, as their owners): what migrations seeded makes way.
async fn clear_tables(tx: &mut PgConnection, tables: &[TableEntry]) -> anyhow::Result<()> {
    for t in tables.iter().rev() {
        let name = qualified(t);
        let any: bool = sqlx::query_scalar(&format!("SELECT EXISTS (SELECT 1 FROM {name})"))
            .fetch_one(&mut *tx)
            .await?;
        if any {
            as_owner(tx, t, &format!("DELETE FROM {name}")).await?;
        }
    }
    Ok(())
}

/// The digest of a loaded table's rows, read back as its owner.
async fn read_back(tx: &mut PgConnection, t: &TableEntry) -> anyhow::Result<RowDigest> {
    let sql = format!(
        "COPY (SELECT {} FROM {}) TO STDOUT",
        column_list(&t.columns),
        qualified(t)
    );
    set_role(tx, t).await?;
    let mut digest = RowDigest::default();
    {
        let mut stream = tx.copy_out_raw(&sql).await?;
        while let Some(chunk) = stream.next().await {
            digest.update(&chunk?);
        }
    }
    reset_role(tx, t).await?;
    Ok(digest)
}

async fn set_sequences(tx: &mut PgConnection, sequences: &[SequenceEntry]) -> anyhow::Result<()> {
    for s in sequences {
        let name = format!("{}.{}", quote_ident(&s.schema), quote_ident(&s.name));
        let sql = match s.last_value {
            Some(v) => format!("SELECT setval('{}', {v}, true)", name.replace('\'', "''")),
            None => format!(
                "SELECT setval('{}', start_value, false) FROM pg_sequences \
                 WHERE schemaname = '{}' AND sequencename = '{}'",
                name.replace('\'', "''"),
                s.schema.replace('\'', "''"),
                s.name.replace('\'', "''")
            ),
        };
        if s.schema != "core" {
            sqlx::raw_sql(&format!(
                "SET LOCAL ROLE {}",
                quote_ident(&tenant_role(&s.schema))
            ))
            .execute(&mut *tx)
            .await?;
        }
        sqlx::raw_sql(&sql).execute(&mut *tx).await?;
        sqlx::raw_sql("SET LOCAL ROLE NONE")
            .execute(&mut *tx)
            .await?;
    }
    Ok(())
}

async fn load_table(
    tx: &mut PgConnection,
    reader: &mut ArchiveStream,
    t: &TableEntry,
) -> anyhow::Result<u64> {
    Ok(load_table_into(tx, reader, t, &qualified(t), None).await?.0)
}

/// Loads the current entry, table `t`'s rows, into `into` (its table, or a temporary one),
/// rewriting person ids on the way when `remap` is given; returns the rows and the digest of
/// what was sent.
async fn load_table_into(
    tx: &mut PgConnection,
    reader: &mut ArchiveStream,
    t: &TableEntry,
    into: &str,
    mut remap: Option<Remap<'_>>,
) -> anyhow::Result<(u64, RowDigest)> {
    set_role(tx, t).await?;
    let sql = format!("COPY {} ({}) FROM STDIN", into, column_list(&t.columns));
    let mut sha = Sha256::new();
    let mut digest = RowDigest::default();
    let mut copy = tx.copy_in_raw(&sql).await?;
    let sent = async {
        while let Some(chunk) = reader.chunk().await? {
            sha.update(&chunk);
            let chunk = match &mut remap {
                Some(r) => Bytes::from(r.feed(&chunk)),
                None => chunk,
            };
            digest.update(&chunk);
            copy.send(chunk).await?;
        }
        if remap.as_ref().is_some_and(|r| !r.partial.is_empty()) {
            bail!("{}.{}: the COPY data ends inside a row", t.schema, t.name);
        }
        Ok::<_, anyhow::Error>(())
    }
    .await;
    if let Err(e) = sent {
        let _ = copy.abort("the archive could not be read").await;
        return Err(e);
    }
    let rows = copy
        .finish()
        .await
        .with_context(|| format!("loading {}.{}", t.schema, t.name))?;
    reset_role(tx, t).await?;
    if rows != t.rows || hex::encode(sha.finalize()) != t.sha256 {
        bail!(
            "{}.{}: the archive changed while it was read",
            t.schema,
            t.name
        );
    }
    Ok((rows, digest))
}

/// Puts one object back, checked against the manifest on the way. Returns whether it was new
/// to the store (what undoing a failed restore may delete).
async fn put_object(
    store: &Store,
    reader: &mut ArchiveStream,
    o: &ObjectEntry,
) -> anyhow::Result<bool> {
    let spool = tempfile::NamedTempFile::new().context("cannot create a temporary file")?;
    let mut file = tokio::fs::File::from_std(spool.reopen()?);
    let mut sha = Sha256::new();
    while let Some(chunk) = reader.chunk().await? {
        sha.update(&chunk);
        file.write_all(&chunk).await?;
    }
    file.flush().await?;
    drop(file);
    if hex::encode(sha.finalize()) != o.sha256 {
        bail!("{}: the archive changed while it was read", o.key);
    }
    let existed = store
        .exists(&o.key)
        .await
        .map_err(|e| anyhow!("cannot look for {} in the file store: {e}", o.key))?;
    store
        .put_path(&o.key, spool.path(), &o.content_type)
        .await
        .map_err(|e| anyhow!("cannot store {}: {e}", o.key))?;
    Ok(!existed)
}

/// Takes back what a failed restore made: the objects it added, the associations' schemas and
/// registry rows. (Their roles stay: they belong to the cluster, are empty, and a later
/// attempt reuses them.)
async fn undo(
    conn: &mut PgConnection,
    store: &Store,
    manifest: &Manifest,
    put: &[String],
) -> anyhow::Result<()> {
    for key in put {
        store
            .delete(key)
            .await
            .map_err(|e| anyhow!("cannot delete {key} from the file store: {e}"))?;
    }
    let mut tx = conn.begin().await?;
    for a in &manifest.associations {
        sqlx::raw_sql(&format!(
            "DROP SCHEMA IF EXISTS {} CASCADE",
            quote_ident(&a.schema)
        ))
        .execute(&mut *tx)
        .await?;
    }
    let ids: Vec<String> = manifest.associations.iter().map(|a| a.id.clone()).collect();
    sqlx::query("DELETE FROM core.associations WHERE id::text = ANY($1)")
        .bind(&ids)
        .execute(&mut *tx)
        .await?;
    tx.commit().await?;
    Ok(())
}

/// Every association's audit chain and the platform's; fails unless all are intact.
async fn verify_audit(db: &musubi_db::Db) -> anyhow::Result<usize> {
    let lines = crate::cli_audit::verify_lines(db, None, true).await?;
    intact_or_fail(&lines, "the data was restored")?;
    Ok(lines.len())
}

/// Fails naming every log of `lines` whose chain is not intact, after `done`.
fn intact_or_fail(lines: &[(String, bool)], done: &str) -> anyhow::Result<()> {
    let failed: Vec<&str> = lines
        .iter()
        .filter(|(_, intact)| !intact)
        .map(|(line, _)| line.as_str())
        .collect();
    if !failed.is_empty() {
        bail!(
            "{done}, but audit logs do not verify:\n{}",
            failed.join("\n")
        );
    }
    Ok(())
}

/// Registers `associations` and creates their empty schemas in one transaction, as
/// `musubi association create` does; the migrations then give each its role, grants and tables.
async fn register_schemas<'a>(
    conn: &mut PgConnection,
    associations: impl Iterator<Item = &'a AssociationEntry>,
) -> anyhow::Result<()> {
    let mut tx = conn.begin().await?;
    for a in associations {
        sqlx::query(
            "INSERT INTO core.associations (id, slug, name, schema_name) \
             VALUES ($1::uuid, $2, $3, $4)",
        )
        .bind(&a.id)
        .bind(&a.slug)
        .bind(&a.name)
        .bind(&a.schema)
        .execute(&mut *tx)
        .await?;
        sqlx::raw_sql(&format!("CREATE SCHEMA {}", quote_ident(&a.schema)))
            .execute(&mut *tx)
            .await?;
    }
    tx.commit().await?;
    Ok(())
}

fn tenant_role(schema: &str) -> String {
    format!("musubi_{schema}")
}

/// Association tables are written as their schema's role, as the application writes them.
async fn set_role(tx: &mut PgConnection, t: &TableEntry) -> anyhow::Result<()> {
    if t.schema != "core" {
        sqlx::raw_sql(&format!(
            "SET LOCAL ROLE {}",
            quote_ident(&tenant_role(&t.schema))
        ))
        .execute(&mut *tx)
        .await?;
    }
    Ok(())
}

async fn reset_role(tx: &mut PgConnection, t: &TableEntry) -> anyhow::Result<()> {
    if t.schema != "core" {
        sqlx::raw_sql("SET LOCAL ROLE NONE")
            .execute(&mut *tx)
            .await?;
    }
    Ok(())
}

async fn as_owner(tx: &mut PgConnection, t: &TableEntry, sql: &str) -> anyhow::Result<()> {
    set_role(tx, t).await?;
    sqlx::raw_sql(sql).execute(&mut *tx).await?;
    reset_role(tx, t).await
}

fn valid_schema_name(s: &str) -> bool {
    s.strip_prefix("assoc_").is_some_and(|h| {
        h.len() == 32
            && h.bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    })
}

fn quote_ident(s: &str) -> String {
    format!("\"{}\"", s.replace('"', "\"\""))
}

fn qualified(t: &TableEntry) -> String {
    format!("{}.{}", quote_ident(&t.schema), quote_ident(&t.name))
}

fn column_list(columns: &[String]) -> String {
    columns
        .iter()
        .map(|c| quote_ident(c))
        .collect::<Vec<_>>()
        .join(", ")
}

// ---------------------------------------------------------------------------------------
// Moving one association: `musubi association export` and `musubi association import`

/// `core` rows of one association, in load order.
struct CorePart {
    table: &'static str,
    /// Which rows (`$A`: the association's id; `$PEOPLE`: the query of its people).
    rows: &'static str,
    /// Columns holding a person's id: rewritten to the target's id of that person.
    person_columns: &'static [&'static str],
    /// Personal rows (credentials, settings), keyed by this column: brought along for people
    /// new to the target only. A person merged by email keeps the target's.
    new_people_only: Option<&'static str>,
    /// Unique beyond the association (a passkey's id): an existing row wins.
    skip_conflicts: bool,
}

/// Its members and everyone in the groups it hosts.
const PEOPLE: &str = "SELECT user_id FROM core.memberships WHERE association_id = '$A' \
                      UNION SELECT user_id FROM core.group_members WHERE association_id = '$A'";

const fn part(table: &'static str, rows: &'static str) -> CorePart {
    CorePart {
        table,
        rows,
        person_columns: &[],
        new_people_only: None,
        skip_conflicts: false,
    }
}

const CORE_PARTS: &[CorePart] = &[
    part("associations", "id = '$A'"),
    CorePart {
        new_people_only: Some("id"),
        ..part("users", "id IN ($PEOPLE)")
    },
    CorePart {
        new_people_only: Some("user_id"),
        ..part("recovery_codes", "user_id IN ($PEOPLE)")
    },
    CorePart {
        new_people_only: Some("user_id"),
        skip_conflicts: true,
        ..part("passkeys", "user_id IN ($PEOPLE)")
    },
    CorePart {
        new_people_only: Some("user_id"),
        ..part("notification_settings", "user_id IN ($PEOPLE)")
    },
    CorePart {
        new_people_only: Some("user_id"),
        ..part("absences", "user_id IN ($PEOPLE)")
    },
    part("facilities", "association_id = '$A'"),
    CorePart {
        person_columns: &["user_id"],
        ..part("memberships", "association_id = '$A'")
    },
    part("groups", "association_id = '$A'"),
    // After the groups: a group owner's invitation names its group.
    CorePart {
        person_columns: &["invited_by", "accepted_by"],
        ..part("invitations", "association_id = '$A'")
    },
    CorePart {
        person_columns: &["user_id", "invited_by"],
        ..part("group_members", "association_id = '$A'")
    },
    CorePart {
        person_columns: &["user_id"],
        skip_conflicts: true,
        ..part(
            "notification_mutes",
            "group_id IN (SELECT id FROM core.groups WHERE association_id = '$A')",
        )
    },
    part("notification_cursors", "association_id = '$A'"),
    part("message_policies", "association_id = '$A'"),
];

/// `core` tables an export leaves behind: sign-in state and bearer tokens bound to the source
/// (sessions, resets, calendar feeds, push subscriptions under its VAPID key), its queues and
/// logs, and neighbour agreements (they need both associations in one deployment).
const CORE_LEFT_BEHIND: &[&str] = &[
    "sessions",
    "password_resets",
    "webauthn_ceremonies",
    "calendar_feeds",
    "push_subscriptions",
    "vapid_keys",
    "notifications",
    "jobs",
    "events",
    "platform_audit_log",
    "association_neighbours",
];

/// Association columns holding a person's id (no foreign key: people live in `core`).
const TENANT_PERSON_COLUMNS: &[(&str, &str)] = &[
    ("groups", "created_by"),
    ("topics", "author_id"),
    ("comments", "author_id"),
    ("comments", "deleted_by"),
    ("footprints", "user_id"),
    ("acknowledgements", "user_id"),
    ("unread", "user_id"),
    ("patients", "physician_id"),
    ("patients", "registered_by"),
    ("files", "uploaded_by"),
    ("files", "deleted_by"),
    ("search_docs", "topic_author"),
    ("search_docs", "author_id"),
    ("calendar_events", "created_by"),
    ("duty_participants", "user_id"),
    ("duty_months", "published_by"),
    ("duties", "user_id"),
    ("duty_swaps", "from_user"),
    ("duty_swaps", "to_user"),
    ("urgent_requests", "author_id"),
    ("urgent_requests", "acknowledged_by"),
    ("urgent_recipients", "user_id"),
    ("urgent_steps", "user_id"),
];

/// Person ids the audit chain's hashes cover: rewriting them would break the chain, so they
/// keep the archived ids (the import's own audit record maps them).
const TENANT_HASHED_PERSON_COLUMNS: &[(&str, &str)] = &[("audit_log", "actor_id")];

/// At most this many merges are listed in the import's audit record (its detail is bounded).
const MERGES_IN_AUDIT: usize = 400;

/// What an association export wrote.
#[derive(Debug, Clone)]
pub struct ExportSummary {
    pub people: u64,
    pub tables: usize,
    pub rows: u64,
    pub objects: usize,
    pub object_bytes: u64,
    pub missing: usize,
    pub mismatched: usize,
    pub archive_bytes: u64,
    pub dropped_neighbours: Vec<String>,
}

/// A person of the archive who exists in the target under the same email.
#[derive(Debug, Clone)]
pub struct Merge {
    pub email: String,
    pub archived_id: String,
    pub target_id: String,
}

/// What an import loaded.
#[derive(Debug, Clone)]
pub struct ImportSummary {
    pub slug: String,
    pub tables: usize,
    pub rows: u64,
    pub objects: usize,
    pub object_bytes: u64,
    pub people_created: u64,
    pub merged: Vec<Merge>,
    /// One-to-one conversations whose pair already had one in the target: kept as
    /// conversations of two people without the pair's key.
    pub unpaired: u64,
    pub passkeys_skipped: u64,
    pub dropped_neighbours: Vec<String>,
}

/// `musubi association export --slug S --out FILE`.
pub async fn export_association(config: &Config, slug: &str, out: &Path) -> anyhow::Result<()> {
    let started = Instant::now();
    let database = open_database(config).await?;
    let result = async {
        let connect = login_options(config, &database)?;
        let files = crate::open_files(config).await?;
        write_association_export(&connect, &files.store, slug, out).await
    }
    .await;
    database.shutdown().await;
    let s = result?;
    println!(
        "Exported association {slug}: {} people, {} tables ({} rows) and {} files ({} bytes) to \
         {} ({} bytes) in {:.1} s.",
        s.people,
        s.tables,
        s.rows,
        s.objects,
        s.object_bytes,
        out.display(),
        s.archive_bytes,
        started.elapsed().as_secs_f64()
    );
    if !s.dropped_neighbours.is_empty() {
        println!(
            "Not exported: the neighbour agreements with {} (an agreement needs both \
             associations in one deployment; make it again there with `musubi association \
             neighbours`).",
            s.dropped_neighbours.join(", ")
        );
    }
    println!(
        "The association is unchanged here: remove it from this deployment only once the \
         target has been checked (docs/backup.md)."
    );
    if s.missing > 0 || s.mismatched > 0 {
        eprintln!(
            "musubi: warning: {} files were missing from the store and {} did not match their \
             recorded checksum (listed above); the archive holds what the store had",
            s.missing, s.mismatched
        );
    }
    Ok(())
}

/// `musubi association import --from FILE`.
pub async fn import_association(config: &Config, from: &Path) -> anyhow::Result<()> {
    let started = Instant::now();
    let path = from.to_owned();
    tokio::task::spawn_blocking(move || read_header_as(&path, ASSOCIATION_FORMAT))
        .await
        .context("reading the archive")??;
    let database = open_database(config).await?;
    let result = async {
        let connect = login_options(config, &database)?;
        import_into(config, &database, &connect, from).await
    }
    .await;
    database.shutdown().await;
    let s = result?;
    for m in &s.merged {
        println!(
            "Merged {}: the archive's person {} is this deployment's {} (the password, second \
             factor and passkeys here are kept).",
            m.email, m.archived_id, m.target_id
        );
    }
    println!(
        "Imported association {}: {} people new here, {} merged by email; {} tables ({} rows) \
         and {} files ({} bytes) from {} in {:.1} s; its audit log and the platform's verified.",
        s.slug,
        s.people_created,
        s.merged.len(),
        s.tables,
        s.rows,
        s.objects,
        s.object_bytes,
        from.display(),
        started.elapsed().as_secs_f64()
    );
    if s.unpaired > 0 {
        println!(
            "{} one-to-one conversations were already held here by the same two people: the \
             imported ones stay, as conversations of those two.",
            s.unpaired
        );
    }
    if s.passkeys_skipped > 0 {
        println!(
            "{} passkeys were registered here already and were not imported.",
            s.passkeys_skipped
        );
    }
    if !s.dropped_neighbours.is_empty() {
        println!(
            "Not imported: the neighbour agreements with {}.",
            s.dropped_neighbours.join(", ")
        );
    }
    println!("Sessions were not moved: everyone signs in again.");
    Ok(())
}

/// `<out>.partial` and the directory to spool in; refuses an existing `out`.
async fn partial_of(out: &Path) -> anyhow::Result<(PathBuf, PathBuf)> {
    if tokio::fs::try_exists(out).await.unwrap_or(false) {
        bail!(
            "{} exists already: choose a new name (an archive is never overwritten)",
            out.display()
        );
    }
    let name = out
        .file_name()
        .ok_or_else(|| anyhow!("{} is not a file name", out.display()))?;
    let partial = out.with_file_name(format!("{}.partial", name.to_string_lossy()));
    let dir = match out.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_owned(),
        _ => PathBuf::from("."),
    };
    Ok((partial, dir))
}

/// Writes one association's archive to `out` (through `<out>.partial`, as a backup).
pub async fn write_association_export(
    connect: &PgConnectOptions,
    store: &Store,
    slug: &str,
    out: &Path,
) -> anyhow::Result<ExportSummary> {
    let (partial, dir) = partial_of(out).await?;
    match write_association_archive(connect, store, slug, &partial, &dir).await {
        Ok(summary) => {
            tokio::fs::rename(&partial, out).await.with_context(|| {
                format!("cannot rename {} to {}", partial.display(), out.display())
            })?;
            Ok(summary)
        }
        Err(e) => {
            let _ = tokio::fs::remove_file(&partial).await;
            Err(e)
        }
    }
}

async fn write_association_archive(
    connect: &PgConnectOptions,
    store: &Store,
    slug: &str,
    path: &Path,
    spool_dir: &Path,
) -> anyhow::Result<ExportSummary> {
    let (mut sink, mut conn, snapshot_at) =
        open_snapshot(connect, path, ASSOCIATION_FORMAT, "musubi-export", "export").await?;
    let row: Option<(String, String, String, String, i32)> = sqlx::query_as(
        "SELECT a.id::text, a.slug, a.name, a.schema_name, a.schema_version \
         FROM core.associations a JOIN pg_namespace n ON n.nspname = a.schema_name \
         WHERE a.slug = $1",
    )
    .bind(slug)
    .fetch_optional(&mut conn)
    .await?;
    let Some((id, slug, name, schema, schema_version)) = row else {
        bail!("there is no association {slug} here (`musubi association list` shows them)");
    };
    let core_migrations = ledger(&mut conn, "core").await?;
    let migrations = ledger(&mut conn, &schema).await?;
    let association = AssociationEntry {
        id: id.clone(),
        slug,
        name,
        schema: schema.clone(),
        schema_version,
        migrations,
    };
    let dropped_neighbours: Vec<String> = sqlx::query_scalar(
        "SELECT DISTINCT o.slug FROM core.association_neighbours n \
         JOIN core.associations o ON o.id = CASE WHEN n.association_id = $1::uuid \
                                              THEN n.neighbour_id ELSE n.association_id END \
         WHERE $1::uuid IN (n.association_id, n.neighbour_id) ORDER BY 1",
    )
    .bind(&id)
    .fetch_all(&mut conn)
    .await?;
    let core_tables = tables_in_load_order(&mut conn, &["core".to_owned()]).await?;
    check_core_tables_known(&core_tables)?;
    let tenant_tables = tables_in_load_order(&mut conn, std::slice::from_ref(&schema)).await?;
    check_person_columns(&mut conn, &schema).await?;
    let sequences: Vec<(String, String, Option<i64>)> = sqlx::query_as(
        "SELECT schemaname::text, sequencename::text, last_value FROM pg_sequences \
         WHERE schemaname = $1 ORDER BY 1, 2",
    )
    .bind(&schema)
    .fetch_all(&mut conn)
    .await?;
    let wanted = wanted_objects(&mut conn, std::slice::from_ref(&association)).await?;
    // `id` comes from the registry (a uuid's text), never from input.
    let people_sql = PEOPLE.replace("$A", &id);
    let people: i64 = sqlx::query_scalar(&format!("SELECT count(*) FROM ({people_sql}) p"))
        .fetch_one(&mut conn)
        .await?;

    let mut table_entries = Vec::new();
    for p in CORE_PARTS {
        let t = core_tables
            .iter()
            .find(|t| t.name == p.table)
            .ok_or_else(|| anyhow!("core.{} is missing from this database", p.table))?;
        let rows = p.rows.replace("$PEOPLE", &people_sql).replace("$A", &id);
        let sql = format!(
            "COPY (SELECT {} FROM core.{} WHERE {rows}) TO STDOUT",
            column_list(&t.columns),
            quote_ident(&t.name)
        );
        table_entries.push(dump_copy(&mut conn, &mut sink, t, &sql, spool_dir).await?);
    }
    for t in &tenant_tables {
        table_entries.push(dump_table(&mut conn, &mut sink, t, spool_dir).await?);
    }
    sqlx::raw_sql("COMMIT").execute(&mut conn).await?;
    let _ = conn.close().await;

    let (objects, missing_objects, mismatched) =
        archive_objects(&mut sink, store, &wanted, spool_dir).await?;
    let manifest = Manifest {
        format: ASSOCIATION_FORMAT.to_owned(),
        format_version: FORMAT_VERSION,
        musubi_version: env!("CARGO_PKG_VERSION").to_owned(),
        snapshot_at,
        finished_at: Utc::now(),
        core_version: core_migrations.iter().copied().max().unwrap_or(0),
        core_migrations,
        associations: vec![association],
        tables: table_entries,
        sequences: sequences
            .into_iter()
            .map(|(schema, name, last_value)| SequenceEntry {
                schema,
                name,
                last_value,
            })
            .collect(),
        objects,
        missing_objects,
        export: Some(ExportInfo {
            people: u64::try_from(people).unwrap_or(0),
            dropped_neighbours: dropped_neighbours.clone(),
        }),
    };
    sink.small(MANIFEST_ENTRY, serde_json::to_vec_pretty(&manifest)?)
        .await?;
    let archive_bytes = sink.finish().await?;
    Ok(ExportSummary {
        people: u64::try_from(people).unwrap_or(0),
        tables: manifest.tables.len(),
        rows: manifest.tables.iter().map(|t| t.rows).sum(),
        objects: manifest.objects.len(),
        object_bytes: manifest.objects.iter().map(|o| o.size).sum(),
        missing: manifest
            .missing_objects
            .iter()
            .filter(|m| !m.deleted)
            .count(),
        mismatched,
        archive_bytes,
        dropped_neighbours,
    })
}

/// Refuses a `core` table this Musubi does not place on either side of a move: a newer
/// migration's table must be added to [`CORE_PARTS`] or [`CORE_LEFT_BEHIND`] first.
fn check_core_tables_known(tables: &[TableInfo]) -> anyhow::Result<()> {
    let unknown: Vec<&str> = tables
        .iter()
        .map(|t| t.name.as_str())
        .filter(|n| !CORE_PARTS.iter().any(|p| p.table == *n) && !CORE_LEFT_BEHIND.contains(n))
        .collect();
    if !unknown.is_empty() {
        bail!(
            "this Musubi does not know whether core.{} belong to an association: it cannot move \
             one",
            unknown.join(", core.")
        );
    }
    Ok(())
}

/// Refuses association columns that look like people's ids but are not known as such (they
/// would keep ids the target does not have).
async fn check_person_columns(conn: &mut PgConnection, schema: &str) -> anyhow::Result<()> {
    let columns: Vec<(String, String)> = sqlx::query_as(
        "SELECT c.relname::text, a.attname::text FROM pg_attribute a \
         JOIN pg_class c ON c.oid = a.attrelid JOIN pg_namespace n ON n.oid = c.relnamespace \
         WHERE n.nspname = $1 AND c.relkind = 'r' AND a.attnum > 0 AND NOT a.attisdropped \
           AND a.atttypid = 'uuid'::regtype ORDER BY 1, 2",
    )
    .bind(schema)
    .fetch_all(&mut *conn)
    .await?;
    let unknown: Vec<String> = columns
        .into_iter()
        .filter(|(t, c)| {
            let person = c.ends_with("_by")
                || ["user", "author", "actor", "physician"]
                    .iter()
                    .any(|w| c.contains(w));
            let known = TENANT_PERSON_COLUMNS
                .iter()
                .chain(TENANT_HASHED_PERSON_COLUMNS)
                .any(|(kt, kc)| kt == t && kc == c);
            person && !known
        })
        .map(|(t, c)| format!("{t}.{c}"))
        .collect();
    if !unknown.is_empty() {
        bail!(
            "this Musubi does not know whether {} hold people's ids: it cannot move an \
             association",
            unknown.join(", ")
        );
    }
    Ok(())
}

/// The temporary table a `core` table's rows wait in before they are merged (in `pg_temp`).
fn staging_name(table: &str) -> String {
    quote_ident(&format!("import_{table}"))
}

fn staging(table: &str) -> String {
    format!("pg_temp.{}", staging_name(table))
}

async fn import_into(
    config: &Config,
    database: &Database,
    connect: &PgConnectOptions,
    from: &Path,
) -> anyhow::Result<ImportSummary> {
    let mut conn = connect_as(connect, "musubi-import").await?;
    let path = from.to_owned();
    let Checked { manifest } =
        tokio::task::spawn_blocking(move || check_archive_as(&path, ASSOCIATION_FORMAT))
            .await
            .context("reading the archive")??;
    check_versions(&manifest)?;
    let (a, export) = match (manifest.associations.as_slice(), &manifest.export) {
        ([a], Some(export)) => (a.clone(), export.clone()),
        _ => return Err(damaged("its manifest does not describe one association")),
    };
    if !valid_schema_name(&a.schema)
        || manifest
            .tables
            .iter()
            .any(|t| t.schema != "core" && t.schema != a.schema)
        || manifest.sequences.iter().any(|s| s.schema != a.schema)
    {
        return Err(damaged("its manifest names other schemas"));
    }
    refuse_existing(&mut conn, &a).await?;

    let files = crate::open_files(config).await?;
    if let Err(e) = files.store.exists(".musubi-readiness").await {
        bail!("the file store does not answer ({e}); nothing was changed");
    }
    let db = &database.db;
    db.migrate()
        .await
        .map_err(|e| anyhow!("migrating the target failed: {e}"))?;
    if ledger(&mut conn, "core").await? != manifest.core_migrations {
        bail!("the target's core migrations differ from the archive's; nothing was imported");
    }
    refuse_existing(&mut conn, &a).await?;

    // The schema is made the way `musubi association create` makes it (registry row, then the
    // migrations create its role, grants and tables). This part commits before the data is
    // loaded: a failure after it is undone below.
    let created = register_schemas(&mut conn, std::iter::once(&a)).await;
    if let Err(e) = created {
        return Err(e.context("creating the association failed; nothing was imported"));
    }
    let mut put = Vec::new();
    let loaded = async {
        db.migrate()
            .await
            .map_err(|e| anyhow!("migrating the association's schema failed: {e}"))?;
        if ledger(&mut conn, &a.schema).await? != a.migrations {
            bail!("the target's association migrations differ from the archive's");
        }
        load_association(&mut conn, &files.store, from, &manifest, &a, &mut put).await
    }
    .await;
    let mut summary = match loaded {
        Ok(s) => s,
        Err(e) => {
            let one = Manifest {
                associations: vec![a.clone()],
                ..manifest.clone()
            };
            return Err(match undo(&mut conn, &files.store, &one, &put).await {
                Ok(()) => {
                    e.context("the import failed and was undone: the target is as it was before")
                }
                Err(undo_error) => e.context(format!(
                    "the import failed, and undoing it failed too ({undo_error:#}): drop the \
                     schema {} and its registry row, and the objects it stored, before trying \
                     again",
                    a.schema
                )),
            });
        }
    };
    let _ = conn.close().await;
    verify_imported(db, &a.slug).await?;
    summary.dropped_neighbours = export.dropped_neighbours;
    Ok(summary)
}

/// An association is imported once: refused if the target has its id, slug or schema.
async fn refuse_existing(conn: &mut PgConnection, a: &AssociationEntry) -> anyhow::Result<()> {
    let core: Option<String> = sqlx::query_scalar("SELECT to_regclass('core.associations')::text")
        .fetch_one(&mut *conn)
        .await?;
    if core.is_some() {
        let clash: Option<(String, String)> = sqlx::query_as(
            "SELECT id::text, slug FROM core.associations \
             WHERE id = $1::uuid OR slug = $2 OR schema_name = $3 LIMIT 1",
        )
        .bind(&a.id)
        .bind(&a.slug)
        .bind(&a.schema)
        .fetch_optional(&mut *conn)
        .await?;
        if let Some((id, slug)) = clash {
            bail!(
                "the target deployment has an association {slug} ({id}) already, and the archive \
                 holds {} ({}): an association is imported once; nothing was changed",
                a.slug,
                a.id
            );
        }
    }
    let schema: bool =
        sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM pg_namespace WHERE nspname = $1)")
            .bind(&a.schema)
            .fetch_one(&mut *conn)
            .await?;
    if schema {
        bail!(
            "the target database has a schema {} already (left by an earlier attempt?); nothing \
             was changed",
            a.schema
        );
    }
    Ok(())
}

/// How the archive's people were placed in the target.
struct People {
    /// Archived id → target id, for the people merged under another id (as uuid text).
    map: HashMap<String, String>,
    merged: Vec<Merge>,
    created: u64,
    unpaired: u64,
    passkeys_skipped: u64,
}

/// Loads the association in one transaction: its `core` rows into staging tables, merged
/// into `core`; its tables with people's ids rewritten; its objects; then reads its tables
/// back, sets its sequences, appends the import to its audit log and the platform's, commits.
async fn load_association(
    conn: &mut PgConnection,
    store: &Store,
    from: &Path,
    manifest: &Manifest,
    a: &AssociationEntry,
    put: &mut Vec<String>,
) -> anyhow::Result<ImportSummary> {
    let mut tx = conn.begin().await?;
    let tenant_tables: Vec<TableEntry> = manifest
        .tables
        .iter()
        .filter(|t| t.schema == a.schema)
        .cloned()
        .collect();
    let core_tables: Vec<&TableEntry> = manifest
        .tables
        .iter()
        .filter(|t| t.schema == "core")
        .collect();
    let target: HashSet<(String, String)> =
        tables_in_load_order(&mut tx, std::slice::from_ref(&a.schema))
            .await?
            .into_iter()
            .map(|t| (t.schema, t.name))
            .collect();
    let archived: HashSet<(String, String)> = tenant_tables
        .iter()
        .map(|t| (t.schema.clone(), t.name.clone()))
        .collect();
    if target != archived {
        bail!("the target's association tables differ from the archive's");
    }
    check_person_columns(&mut tx, &a.schema).await?;
    for p in CORE_PARTS {
        if !core_tables.iter().any(|t| t.name == p.table) {
            return Err(damaged(format!("it has no core.{} rows", p.table)));
        }
    }
    for t in &core_tables {
        if !CORE_PARTS.iter().any(|p| p.table == t.name) {
            return Err(damaged(format!("core.{} does not belong in it", t.name)));
        }
        sqlx::raw_sql(&format!(
            "CREATE TABLE pg_temp.{} (LIKE core.{}) ON COMMIT DROP",
            staging_name(&t.name),
            quote_ident(&t.name)
        ))
        .execute(&mut *tx)
        .await?;
    }
    clear_tables(&mut tx, &tenant_tables).await?;

    let tables: HashMap<&str, &TableEntry> = manifest
        .tables
        .iter()
        .map(|t| (t.entry.as_str(), t))
        .collect();
    let objects: HashMap<&str, &ObjectEntry> = manifest
        .objects
        .iter()
        .map(|o| (o.entry.as_str(), o))
        .collect();
    let mut reader = ArchiveStream::open(from.to_owned());
    let mut core_loaded = 0;
    let mut people: Option<People> = None;
    let mut sent: HashMap<String, RowDigest> = HashMap::new();
    let mut summary = ImportSummary {
        slug: a.slug.clone(),
        tables: manifest.tables.len(),
        rows: 0,
        objects: 0,
        object_bytes: 0,
        people_created: 0,
        merged: Vec::new(),
        unpaired: 0,
        passkeys_skipped: 0,
        dropped_neighbours: Vec::new(),
    };
    while let Some((name, _size)) = reader.next_entry().await? {
        if let Some(t) = tables.get(name.as_str()) {
            if t.schema == "core" {
                if people.is_some() {
                    return Err(damaged("core rows follow the association's tables"));
                }
                let (rows, _) =
                    load_table_into(&mut tx, &mut reader, t, &staging(&t.name), None).await?;
                summary.rows += rows;
                core_loaded += 1;
                continue;
            }
            if people.is_none() {
                if core_loaded != core_tables.len() {
                    return Err(damaged("the association's tables precede its core rows"));
                }
                people = Some(merge_core(&mut tx, manifest).await?);
            }
            let map = people.as_ref().map(|p| &p.map);
            let remap = map.and_then(|m| Remap::for_table(t, m));
            let (rows, digest) =
                load_table_into(&mut tx, &mut reader, t, &qualified(t), remap).await?;
            summary.rows += rows;
            sent.insert(t.entry.clone(), digest);
        } else if let Some(o) = objects.get(name.as_str()) {
            if put_object(store, &mut reader, o).await? {
                put.push(o.key.clone());
            }
            summary.objects += 1;
            summary.object_bytes += o.size;
        } else {
            reader.skip().await?;
        }
    }
    let people = people.ok_or_else(|| damaged("it holds no association tables"))?;
    // What was loaded reads back as sent (after the ids were rewritten).
    for t in &tenant_tables {
        let back = read_back(&mut tx, t).await?;
        let expected = sent
            .get(&t.entry)
            .ok_or_else(|| damaged(format!("{} is missing", t.entry)))?;
        if back.rows != expected.rows || back.hex() != expected.hex() {
            bail!(
                "{}.{} read back differs from the archive ({} rows, expected {})",
                t.schema,
                t.name,
                back.rows,
                expected.rows
            );
        }
    }
    set_sequences(&mut tx, &manifest.sequences).await?;
    audit_import(&mut tx, manifest, a, &people).await?;
    tx.commit().await?;
    summary.people_created = people.created;
    summary.merged = people.merged;
    summary.unpaired = people.unpaired;
    summary.passkeys_skipped = people.passkeys_skipped;
    Ok(summary)
}

/// Places the archive's people (merged by email, or new) and adds the association's `core`
/// rows from the staging tables, people's ids rewritten.
async fn merge_core(tx: &mut PgConnection, manifest: &Manifest) -> anyhow::Result<People> {
    // A person new here keeps their id (recovery codes are hashed with it): it must be free.
    let clashes: Vec<(String, String)> = sqlx::query_as(
        "SELECT i.email, u.email FROM pg_temp.import_users i JOIN core.users u ON u.id = i.id \
         WHERE lower(u.email) <> lower(i.email) ORDER BY 1",
    )
    .fetch_all(&mut *tx)
    .await?;
    if !clashes.is_empty() {
        let list: Vec<String> = clashes
            .iter()
            .map(|(archived, here)| format!("{archived} (here: {here})"))
            .collect();
        bail!(
            "people of the archive have the id of another person here: {}; nothing was imported",
            list.join(", ")
        );
    }
    sqlx::raw_sql(
        "CREATE TABLE pg_temp.import_people (archived uuid PRIMARY KEY, target uuid NOT NULL \
         UNIQUE, merged boolean NOT NULL) ON COMMIT DROP; \
         INSERT INTO pg_temp.import_people \
         SELECT i.id, coalesce(u.id, i.id), u.id IS NOT NULL FROM pg_temp.import_users i \
         LEFT JOIN core.users u ON lower(u.email) = lower(i.email)",
    )
    .execute(&mut *tx)
    .await?;
    let merged: Vec<(String, String, String)> = sqlx::query_as(
        "SELECT i.email, p.archived::text, p.target::text FROM pg_temp.import_people p \
         JOIN pg_temp.import_users i ON i.id = p.archived WHERE p.merged ORDER BY 1",
    )
    .fetch_all(&mut *tx)
    .await?;
    let created: i64 =
        sqlx::query_scalar("SELECT count(*) FROM pg_temp.import_people WHERE NOT merged")
            .fetch_one(&mut *tx)
            .await?;
    // A one-to-one conversation's key is its two people's ids.
    sqlx::raw_sql(
        "UPDATE pg_temp.import_groups t \
         SET pair_key = least(m.x, m.y)::text || ':' || greatest(m.x, m.y)::text \
         FROM (SELECT g.id, \
                 coalesce((SELECT p.target FROM pg_temp.import_people p \
                           WHERE p.archived = split_part(g.pair_key, ':', 1)::uuid), \
                          split_part(g.pair_key, ':', 1)::uuid) AS x, \
                 coalesce((SELECT p.target FROM pg_temp.import_people p \
                           WHERE p.archived = split_part(g.pair_key, ':', 2)::uuid), \
                          split_part(g.pair_key, ':', 2)::uuid) AS y \
               FROM pg_temp.import_groups g WHERE g.pair_key IS NOT NULL) m \
         WHERE t.id = m.id",
    )
    .execute(&mut *tx)
    .await?;
    let unpaired = sqlx::query(
        "UPDATE pg_temp.import_groups t SET pair_key = NULL WHERE t.pair_key IS NOT NULL \
         AND EXISTS (SELECT 1 FROM core.groups g WHERE g.pair_key = t.pair_key)",
    )
    .execute(&mut *tx)
    .await?
    .rows_affected();
    sqlx::query(
        "UPDATE core.associations a SET created_at = t.created_at \
         FROM pg_temp.import_associations t WHERE a.id = t.id",
    )
    .execute(&mut *tx)
    .await?;

    let mut passkeys_skipped = 0;
    for p in CORE_PARTS.iter().filter(|p| p.table != "associations") {
        let t = manifest
            .tables
            .iter()
            .find(|t| t.schema == "core" && t.name == p.table)
            .ok_or_else(|| damaged(format!("it has no core.{} rows", p.table)))?;
        let values: Vec<String> = t
            .columns
            .iter()
            .map(|c| {
                if p.person_columns.contains(&c.as_str()) {
                    format!(
                        "(SELECT p.target FROM pg_temp.import_people p WHERE p.archived = t.{})",
                        quote_ident(c)
                    )
                } else if p.table == "users" && c == "platform_operator" {
                    // Operating a deployment is granted there, not carried along.
                    "false".to_owned()
                } else {
                    format!("t.{}", quote_ident(c))
                }
            })
            .collect();
        let only_new = p.new_people_only.map_or(String::new(), |key| {
            format!(
                " WHERE t.{} IN (SELECT archived FROM pg_temp.import_people WHERE NOT merged)",
                quote_ident(key)
            )
        });
        let conflicts = if p.skip_conflicts {
            " ON CONFLICT DO NOTHING"
        } else {
            ""
        };
        let sql = format!(
            "INSERT INTO core.{} ({}) SELECT {} FROM pg_temp.{} t{only_new}{conflicts}",
            quote_ident(p.table),
            column_list(&t.columns),
            values.join(", "),
            staging_name(p.table)
        );
        let added = sqlx::query(&sql)
            .execute(&mut *tx)
            .await
            .with_context(|| format!("adding the archive's core.{} rows", p.table))?
            .rows_affected();
        if p.table == "passkeys" {
            let offered: i64 = sqlx::query_scalar(
                "SELECT count(*) FROM pg_temp.import_passkeys t \
                 WHERE t.user_id IN (SELECT archived FROM pg_temp.import_people WHERE NOT merged)",
            )
            .fetch_one(&mut *tx)
            .await?;
            passkeys_skipped = u64::try_from(offered).unwrap_or(0).saturating_sub(added);
        }
    }
    Ok(People {
        map: merged
            .iter()
            .filter(|(_, archived, target)| archived != target)
            .map(|(_, archived, target)| (archived.clone(), target.clone()))
            .collect(),
        merged: merged
            .into_iter()
            .map(|(email, archived_id, target_id)| Merge {
                email,
                archived_id,
                target_id,
            })
            .collect(),
        created: u64::try_from(created).unwrap_or(0),
        unpaired,
        passkeys_skipped,
    })
}

/// Notes the import at the end of the association's audit chain (with the id of each merged
/// person: the chain's earlier records keep the archived ids, which its hashes cover) and in
/// the platform's.
async fn audit_import(
    tx: &mut PgConnection,
    manifest: &Manifest,
    a: &AssociationEntry,
    people: &People,
) -> anyhow::Result<()> {
    use musubi_db::audit::{append, append_platform, NewRecord, SYSTEM_ACTOR};
    let merged: Vec<serde_json::Value> = people
        .merged
        .iter()
        .filter(|m| m.archived_id != m.target_id)
        .take(MERGES_IN_AUDIT)
        .map(|m| serde_json::json!({ "archived": m.archived_id, "target": m.target_id }))
        .collect();
    let detail = serde_json::json!({
        "slug": a.slug,
        "from_musubi": manifest.musubi_version,
        "snapshot_at": manifest.snapshot_at.to_rfc3339(),
        "people_created": people.created,
        "people_merged": people.merged.len(),
        "merged": merged,
    });
    let record = NewRecord {
        actor_id: None,
        actor_label: SYSTEM_ACTOR,
        action: "association.import",
        object_type: Some("association"),
        object_id: Some(&a.id),
        ip: "",
        user_agent: "musubi association import",
        detail: &detail,
    };
    sqlx::raw_sql(&format!(
        "SET LOCAL ROLE {}; SET LOCAL search_path TO {}",
        quote_ident(&tenant_role(&a.schema)),
        quote_ident(&a.schema)
    ))
    .execute(&mut *tx)
    .await?;
    append(&mut *tx, &record)
        .await
        .map_err(|e| anyhow!("cannot append to the association's audit log: {e}"))?;
    sqlx::raw_sql("SET LOCAL ROLE NONE; SET LOCAL search_path TO DEFAULT")
        .execute(&mut *tx)
        .await?;
    append_platform(&mut *tx, &record)
        .await
        .map_err(|e| anyhow!("cannot append to the platform audit log: {e}"))?;
    Ok(())
}

/// The imported association's chain and the platform's, as `musubi audit verify` checks them.
async fn verify_imported(db: &musubi_db::Db, slug: &str) -> anyhow::Result<()> {
    let lines = crate::cli_audit::verify_lines(db, Some(slug), true).await?;
    intact_or_fail(&lines, "the association was imported")
}

/// Rewrites the person-id columns of one table's `COPY` text rows (uuids: never escaped).
struct Remap<'a> {
    columns: Vec<usize>,
    map: &'a HashMap<String, String>,
    /// The start of a row whose end has not come yet.
    partial: Vec<u8>,
}

impl<'a> Remap<'a> {
    fn for_table(t: &TableEntry, map: &'a HashMap<String, String>) -> Option<Self> {
        let columns: Vec<usize> = t
            .columns
            .iter()
            .enumerate()
            .filter(|(_, c)| {
                TENANT_PERSON_COLUMNS
                    .iter()
                    .any(|(kt, kc)| *kt == t.name && kc == c)
            })
            .map(|(i, _)| i)
            .collect();
        (!columns.is_empty() && !map.is_empty()).then(|| Self {
            columns,
            map,
            partial: Vec::new(),
        })
    }

    /// The complete rows so far, rewritten.
    fn feed(&mut self, chunk: &[u8]) -> Vec<u8> {
        self.partial.extend_from_slice(chunk);
        let Some(end) = self.partial.iter().rposition(|b| *b == b'\n') else {
            return Vec::new();
        };
        let rest = self.partial.split_off(end + 1);
        let rows = std::mem::replace(&mut self.partial, rest);
        let mut out = Vec::with_capacity(rows.len());
        for row in rows.split_inclusive(|b| *b == b'\n') {
            for (i, field) in row[..row.len() - 1].split(|b| *b == b'\t').enumerate() {
                if i > 0 {
                    out.push(b'\t');
                }
                let mapped = if self.columns.contains(&i) {
                    std::str::from_utf8(field)
                        .ok()
                        .and_then(|f| self.map.get(f))
                } else {
                    None
                };
                out.extend_from_slice(mapped.map_or(field, |m| m.as_bytes()));
            }
            out.push(b'\n');
        }
        out
    }
}

// ---------------------------------------------------------------------------------------
// Reading and checking an archive

fn damaged(e: impl std::fmt::Display) -> anyhow::Error {
    anyhow!("the archive is damaged or truncated: {e}")
}

fn open_archive(path: &Path) -> anyhow::Result<tar::Reader<impl Read>> {
    let file = std::fs::File::open(path)
        .with_context(|| format!("cannot open the archive {}", path.display()))?;
    let gz = flate2::read::GzDecoder::new(std::io::BufReader::with_capacity(1 << 20, file));
    Ok(tar::Reader::new(gz))
}

/// Reads the first entry: refuses what is not a Musubi archive, or one of a newer format.
pub fn read_header(path: &Path) -> anyhow::Result<Header> {
    read_header_as(path, FORMAT)
}

/// What an archive of `format` is called in messages.
fn describe(format: &str) -> &'static str {
    if format == ASSOCIATION_FORMAT {
        "a Musubi association export"
    } else {
        "a Musubi backup"
    }
}

fn read_header_as(path: &Path, format: &str) -> anyhow::Result<Header> {
    let what = describe(format);
    let mut archive = open_archive(path)?;
    let (name, size) = archive
        .next_entry()
        .map_err(|e| anyhow!("{} is not {what}: {e}", path.display()))?
        .ok_or_else(|| anyhow!("{} is an empty archive", path.display()))?;
    if name != HEADER_ENTRY || size > 64 * 1024 {
        bail!("{} is not {what} (it begins with {name})", path.display());
    }
    let mut bytes = Vec::new();
    archive
        .read_data(size, |c| {
            bytes.extend_from_slice(c);
            Ok(())
        })
        .map_err(damaged)?;
    let header: Header = serde_json::from_slice(&bytes)
        .map_err(|e| anyhow!("{} is not {what}: {e}", path.display()))?;
    check_format(
        format,
        &header.format,
        header.format_version,
        &header.musubi_version,
    )?;
    Ok(header)
}

fn check_format(expected: &str, format: &str, version: u32, musubi: &str) -> anyhow::Result<()> {
    if format != expected {
        let hint = match format {
            FORMAT => ": a whole deployment's backup is loaded with `musubi restore`",
            ASSOCIATION_FORMAT => {
                ": one association's export is loaded with `musubi association import`"
            }
            _ => "",
        };
        bail!("not {} (format {format:?}){hint}", describe(expected));
    }
    if version > FORMAT_VERSION {
        bail!(
            "the archive has format version {version}, written by Musubi {musubi}; this Musubi \
             ({}) reads up to version {FORMAT_VERSION}: restore with a newer Musubi",
            env!("CARGO_PKG_VERSION")
        );
    }
    Ok(())
}

/// Reads the archive through once: every entry's size and checksum against the manifest, and
/// nothing missing, extra or cut off.
fn check_archive(path: &Path) -> anyhow::Result<Checked> {
    check_archive_as(path, FORMAT)
}

fn check_archive_as(path: &Path, format: &str) -> anyhow::Result<Checked> {
    read_header_as(path, format)?;
    let mut archive = open_archive(path)?;
    struct Seen {
        size: u64,
        sha256: String,
        rows: u64,
    }
    let mut seen: HashMap<String, Seen> = HashMap::new();
    let mut manifest_bytes = None;
    let mut last = String::new();
    while let Some((name, size)) = archive.next_entry().map_err(damaged)? {
        let mut sha = Sha256::new();
        let mut rows = RowDigest::default();
        let mut kept = Vec::new();
        let is_manifest = name == MANIFEST_ENTRY;
        archive
            .read_data(size, |c| {
                sha.update(c);
                if name.starts_with("db/") {
                    rows.update(c);
                }
                if is_manifest {
                    kept.extend_from_slice(c);
                }
                Ok(())
            })
            .map_err(damaged)?;
        if is_manifest {
            manifest_bytes = Some(kept);
        }
        let entry = Seen {
            size,
            sha256: hex::encode(sha.finalize()),
            rows: rows.rows,
        };
        if seen.insert(name.clone(), entry).is_some() {
            return Err(damaged(format!("{name} appears twice")));
        }
        last = name;
    }
    archive.finish().map_err(damaged)?;
    let bytes = manifest_bytes.ok_or_else(|| damaged("it has no manifest"))?;
    if last != MANIFEST_ENTRY {
        return Err(damaged("entries follow the manifest"));
    }
    let manifest: Manifest =
        serde_json::from_slice(&bytes).map_err(|e| damaged(format!("the manifest: {e}")))?;
    check_format(
        format,
        &manifest.format,
        manifest.format_version,
        &manifest.musubi_version,
    )?;
    let mut expected: HashSet<&str> = [HEADER_ENTRY, MANIFEST_ENTRY].into_iter().collect();
    for t in &manifest.tables {
        let s = seen
            .get(&t.entry)
            .ok_or_else(|| damaged(format!("{} is missing", t.entry)))?;
        if s.size != t.bytes || s.sha256 != t.sha256 || s.rows != t.rows {
            return Err(damaged(format!("{} does not match its checksum", t.entry)));
        }
        expected.insert(&t.entry);
    }
    for o in &manifest.objects {
        let s = seen
            .get(&o.entry)
            .ok_or_else(|| damaged(format!("{} is missing", o.entry)))?;
        if s.size != o.size || s.sha256 != o.sha256 {
            return Err(damaged(format!("{} does not match its checksum", o.entry)));
        }
        expected.insert(&o.entry);
    }
    if let Some(extra) = seen.keys().find(|k| !expected.contains(k.as_str())) {
        return Err(damaged(format!("{extra} is not in the manifest")));
    }
    Ok(Checked { manifest })
}

/// Reads the manifest of an archive, checking the whole archive on the way.
pub fn read_manifest(path: &Path) -> anyhow::Result<Manifest> {
    Ok(check_archive(path)?.manifest)
}

// ---------------------------------------------------------------------------------------
// Streaming to and from the archive file on a thread of its own (compression is CPU work,
// file I/O is blocking; the database and the store are read meanwhile)

enum Out {
    Begin { name: String, size: u64 },
    Data(Bytes),
    End,
    Finish,
}

struct ArchiveSink {
    tx: tokio::sync::mpsc::Sender<Out>,
    thread: Option<std::thread::JoinHandle<std::io::Result<u64>>>,
}

impl ArchiveSink {
    fn create(path: &Path) -> anyhow::Result<Self> {
        let mut options = std::fs::OpenOptions::new();
        options.write(true).create(true).truncate(true);
        #[cfg(unix)]
        {
            // Password hashes and patients' records: readable by the operator alone.
            use std::os::unix::fs::OpenOptionsExt as _;
            options.mode(0o600);
        }
        let file = options
            .open(path)
            .with_context(|| format!("cannot create {}", path.display()))?;
        let (tx, mut rx) = tokio::sync::mpsc::channel::<Out>(16);
        let thread = std::thread::Builder::new()
            .name("musubi-backup-writer".to_owned())
            .spawn(move || {
                let gz = flate2::write::GzEncoder::new(
                    std::io::BufWriter::with_capacity(1 << 20, file),
                    flate2::Compression::new(3),
                );
                let mut archive = tar::Writer::new(gz);
                while let Some(piece) = rx.blocking_recv() {
                    match piece {
                        Out::Begin { name, size } => archive.begin(&name, size)?,
                        Out::Data(bytes) => archive.data(&bytes)?,
                        Out::End => archive.end()?,
                        Out::Finish => {
                            let file = archive
                                .finish()?
                                .finish()?
                                .into_inner()
                                .map_err(|e| e.into_error())?;
                            file.sync_all()?;
                            return Ok(file.metadata()?.len());
                        }
                    }
                }
                Err(std::io::Error::other("the backup was abandoned"))
            })?;
        Ok(Self {
            tx,
            thread: Some(thread),
        })
    }

    async fn send(&mut self, piece: Out) -> anyhow::Result<()> {
        if self.tx.send(piece).await.is_err() {
            return Err(self.failure());
        }
        Ok(())
    }

    /// Why the writer stopped.
    fn failure(&mut self) -> anyhow::Error {
        match self.thread.take().map(|t| t.join()) {
            Some(Ok(Err(e))) => anyhow!("cannot write the archive: {e}"),
            _ => anyhow!("cannot write the archive"),
        }
    }

    async fn begin(&mut self, name: &str, size: u64) -> anyhow::Result<()> {
        tar::split_name(name)?;
        self.send(Out::Begin {
            name: name.to_owned(),
            size,
        })
        .await
    }

    async fn data(&mut self, bytes: Bytes) -> anyhow::Result<()> {
        self.send(Out::Data(bytes)).await
    }

    async fn end(&mut self) -> anyhow::Result<()> {
        self.send(Out::End).await
    }

    async fn small(&mut self, name: &str, bytes: Vec<u8>) -> anyhow::Result<()> {
        self.begin(name, bytes.len() as u64).await?;
        self.data(Bytes::from(bytes)).await?;
        self.end().await
    }

    /// Completes the archive; returns its size.
    async fn finish(mut self) -> anyhow::Result<u64> {
        self.send(Out::Finish).await?;
        let thread = self
            .thread
            .take()
            .ok_or_else(|| anyhow!("the archive writer is gone"))?;
        match tokio::task::spawn_blocking(move || thread.join()).await {
            Ok(Ok(Ok(size))) => Ok(size),
            Ok(Ok(Err(e))) => Err(anyhow!("cannot write the archive: {e}")),
            _ => Err(anyhow!("the archive writer failed")),
        }
    }
}

enum In {
    Entry { name: String, size: u64 },
    Data(Bytes),
    EntryEnd,
    Failed(String),
}

/// The archive's entries as they are read, for the restore's second pass.
struct ArchiveStream {
    rx: tokio::sync::mpsc::Receiver<In>,
}

impl ArchiveStream {
    fn open(path: PathBuf) -> Self {
        let (tx, rx) = tokio::sync::mpsc::channel::<In>(16);
        std::thread::spawn(move || {
            let result = (|| -> anyhow::Result<()> {
                let mut archive = open_archive(&path)?;
                while let Some((name, size)) = archive.next_entry().map_err(damaged)? {
                    if tx.blocking_send(In::Entry { name, size }).is_err() {
                        return Ok(());
                    }
                    archive
                        .read_data(size, |c| {
                            tx.blocking_send(In::Data(Bytes::copy_from_slice(c)))
                                .map_err(|_| std::io::Error::other("the restore stopped reading"))
                        })
                        .map_err(damaged)?;
                    if tx.blocking_send(In::EntryEnd).is_err() {
                        return Ok(());
                    }
                }
                archive.finish().map_err(damaged)?;
                Ok(())
            })();
            if let Err(e) = result {
                let _ = tx.blocking_send(In::Failed(format!("{e:#}")));
            }
        });
        Self { rx }
    }

    async fn next_entry(&mut self) -> anyhow::Result<Option<(String, u64)>> {
        match self.rx.recv().await {
            Some(In::Entry { name, size }) => Ok(Some((name, size))),
            Some(In::Failed(e)) => Err(anyhow!(e)),
            Some(_) => Err(anyhow!("the archive reader is out of step")),
            None => Ok(None),
        }
    }

    /// The current entry's next piece; `None` at its end.
    async fn chunk(&mut self) -> anyhow::Result<Option<Bytes>> {
        match self.rx.recv().await {
            Some(In::Data(b)) => Ok(Some(b)),
            Some(In::EntryEnd) => Ok(None),
            Some(In::Failed(e)) => Err(anyhow!(e)),
            Some(In::Entry { .. }) => Err(anyhow!("the archive reader is out of step")),
            None => Err(damaged("it ends inside an entry")),
        }
    }

    async fn skip(&mut self) -> anyhow::Result<()> {
        while self.chunk().await?.is_some() {}
        Ok(())
    }
}

/// The little of tar (POSIX ustar) the archive needs: regular files, names up to 255 bytes,
/// sizes beyond 8 GiB in GNU's base-256 form (as GNU tar and bsdtar write and read them).
mod tar {
    use std::io::{self, Read, Write};

    const BLOCK: usize = 512;

    fn invalid(message: impl Into<String>) -> io::Error {
        io::Error::new(io::ErrorKind::InvalidData, message.into())
    }

    /// `(prefix, name)` of a ustar header for `path`.
    pub fn split_name(path: &str) -> io::Result<(&str, &str)> {
        if path.len() <= 100 {
            return Ok(("", path));
        }
        for (i, b) in path.bytes().enumerate() {
            if b == b'/' && i <= 155 && path.len() - i - 1 <= 100 && i + 1 < path.len() {
                return Ok((&path[..i], &path[i + 1..]));
            }
        }
        Err(invalid(format!(
            "the name {path} is too long for the archive"
        )))
    }

    fn octal(field: &mut [u8], value: u64) {
        let digits = field.len() - 1;
        let text = format!("{value:0digits$o}");
        field[..digits].copy_from_slice(text.as_bytes());
        field[digits] = 0;
    }

    fn header(name: &str, size: u64) -> io::Result<[u8; BLOCK]> {
        let mut h = [0u8; BLOCK];
        let (prefix, base) = split_name(name)?;
        h[..base.len()].copy_from_slice(base.as_bytes());
        octal(&mut h[100..108], 0o600);
        octal(&mut h[108..116], 0);
        octal(&mut h[116..124], 0);
        if size < 1 << 33 {
            octal(&mut h[124..136], size);
        } else {
            h[124] = 0x80;
            h[128..136].copy_from_slice(&size.to_be_bytes());
        }
        let mtime = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        octal(&mut h[136..148], mtime);
        h[148..156].fill(b' ');
        h[156] = b'0';
        h[257..263].copy_from_slice(b"ustar\0");
        h[263..265].copy_from_slice(b"00");
        h[345..345 + prefix.len()].copy_from_slice(prefix.as_bytes());
        let sum: u32 = h.iter().map(|b| u32::from(*b)).sum();
        octal(&mut h[148..155], u64::from(sum));
        Ok(h)
    }

    pub struct Writer<W: Write> {
        out: W,
        remaining: u64,
        written: u64,
    }

    impl<W: Write> Writer<W> {
        pub fn new(out: W) -> Self {
            Self {
                out,
                remaining: 0,
                written: 0,
            }
        }

        pub fn begin(&mut self, name: &str, size: u64) -> io::Result<()> {
            self.out.write_all(&header(name, size)?)?;
            self.remaining = size;
            self.written = 0;
            Ok(())
        }

        pub fn data(&mut self, bytes: &[u8]) -> io::Result<()> {
            if bytes.len() as u64 > self.remaining {
                return Err(invalid("more bytes than the entry's size"));
            }
            self.out.write_all(bytes)?;
            self.remaining -= bytes.len() as u64;
            self.written += bytes.len() as u64;
            Ok(())
        }

        pub fn end(&mut self) -> io::Result<()> {
            if self.remaining != 0 {
                return Err(invalid("fewer bytes than the entry's size"));
            }
            let pad = (BLOCK - (self.written % BLOCK as u64) as usize) % BLOCK;
            self.out.write_all(&[0u8; BLOCK][..pad])
        }

        /// Writes the end-of-archive marker; returns the output.
        pub fn finish(mut self) -> io::Result<W> {
            self.out.write_all(&[0u8; 2 * BLOCK])?;
            Ok(self.out)
        }
    }

    pub struct Reader<R: Read> {
        input: R,
    }

    fn parse_octal(field: &[u8]) -> io::Result<u64> {
        let text: String = field
            .iter()
            .take_while(|b| **b != 0)
            .map(|b| char::from(*b))
            .collect();
        let text = text.trim();
        if text.is_empty() {
            return Ok(0);
        }
        u64::from_str_radix(text, 8).map_err(|_| invalid("a header field is not a number"))
    }

    fn text(field: &[u8]) -> io::Result<String> {
        let end = field.iter().position(|b| *b == 0).unwrap_or(field.len());
        String::from_utf8(field[..end].to_vec()).map_err(|_| invalid("a name is not UTF-8"))
    }

    impl<R: Read> Reader<R> {
        pub fn new(input: R) -> Self {
            Self { input }
        }

        /// The next entry's name and size; `None` at the end-of-archive marker.
        pub fn next_entry(&mut self) -> io::Result<Option<(String, u64)>> {
            let mut h = [0u8; BLOCK];
            self.input.read_exact(&mut h)?;
            if h.iter().all(|b| *b == 0) {
                self.input.read_exact(&mut h)?;
                if h.iter().any(|b| *b != 0) {
                    return Err(invalid("data after the end-of-archive marker"));
                }
                return Ok(None);
            }
            let recorded = parse_octal(&h[148..156])?;
            let mut copy = h;
            copy[148..156].fill(b' ');
            let sum: u64 = copy.iter().map(|b| u64::from(*b)).sum();
            if sum != recorded {
                return Err(invalid("a header's checksum is wrong"));
            }
            if h[156] != b'0' && h[156] != 0 {
                return Err(invalid("an entry is not a regular file"));
            }
            let size = if h[124] & 0x80 != 0 {
                let mut b = [0u8; 8];
                b.copy_from_slice(&h[128..136]);
                u64::from_be_bytes(b)
            } else {
                parse_octal(&h[124..136])?
            };
            let base = text(&h[..100])?;
            let prefix = text(&h[345..500])?;
            let name = if prefix.is_empty() {
                base
            } else {
                format!("{prefix}/{base}")
            };
            Ok(Some((name, size)))
        }

        /// Reads the current entry's `size` bytes, piece by piece, and its padding.
        pub fn read_data(
            &mut self,
            size: u64,
            mut each: impl FnMut(&[u8]) -> io::Result<()>,
        ) -> io::Result<()> {
            let mut buf = vec![0u8; super::CHUNK];
            let mut left = size;
            while left > 0 {
                let n = usize::try_from(left).map_or(buf.len(), |l| l.min(buf.len()));
                self.input.read_exact(&mut buf[..n])?;
                each(&buf[..n])?;
                left -= n as u64;
            }
            let pad = (BLOCK - (size % BLOCK as u64) as usize) % BLOCK;
            self.input.read_exact(&mut buf[..pad])?;
            Ok(())
        }

        /// Reads to the end of the input (gzip checks its length and CRC there).
        pub fn finish(mut self) -> io::Result<()> {
            let mut rest = [0u8; BLOCK];
            loop {
                let n = self.input.read(&mut rest)?;
                if n == 0 {
                    return Ok(());
                }
                if rest[..n].iter().any(|b| *b != 0) {
                    return Err(invalid("data after the end-of-archive marker"));
                }
            }
        }
    }

    #[cfg(test)]
    mod tests {
        use super::*;

        #[test]
        fn entries_round_trip_with_long_names() {
            let long = format!("files/a/{}/{}", "0".repeat(32), "x".repeat(90));
            let mut w = Writer::new(Vec::new());
            for (name, body) in [("a.txt", &b"hello"[..]), (long.as_str(), &[7u8; 1000][..])] {
                w.begin(name, body.len() as u64).unwrap();
                w.data(body).unwrap();
                w.end().unwrap();
            }
            let bytes = w.finish().unwrap();
            assert_eq!(bytes.len() % BLOCK, 0);
            let mut r = Reader::new(&bytes[..]);
            let mut got = Vec::new();
            while let Some((name, size)) = r.next_entry().unwrap() {
                let mut body = Vec::new();
                r.read_data(size, |c| {
                    body.extend_from_slice(c);
                    Ok(())
                })
                .unwrap();
                got.push((name, body));
            }
            r.finish().unwrap();
            assert_eq!(got[0], ("a.txt".to_owned(), b"hello".to_vec()));
            assert_eq!(got[1], (long, vec![7u8; 1000]));
        }

        #[test]
        fn a_cut_archive_is_an_error() {
            let mut w = Writer::new(Vec::new());
            w.begin("a", 600).unwrap();
            w.data(&[1u8; 600]).unwrap();
            w.end().unwrap();
            let bytes = w.finish().unwrap();
            let mut r = Reader::new(&bytes[..700]);
            let (_, size) = r.next_entry().unwrap().unwrap();
            assert!(r.read_data(size, |_| Ok(())).is_err());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_row_digest_ignores_order_and_chunking() {
        let mut a = RowDigest::default();
        a.update(b"1\tx\n2\ty\n");
        let mut b = RowDigest::default();
        b.update(b"2\t");
        b.update(b"y\n1");
        b.update(b"\tx\n");
        assert_eq!((a.rows, a.hex()), (b.rows, b.hex()));
        assert!(b.finish().is_ok());
        let mut c = RowDigest::default();
        c.update(b"1\tx\n2\tz\n");
        assert_ne!(a.hex(), c.hex());
        c.update(b"3");
        assert!(c.finish().is_err());
    }

    #[test]
    fn person_ids_are_rewritten_in_their_columns_only_across_chunks() {
        let (old, new) = (
            "11111111-0000-0000-0000-000000000001",
            "22222222-0000-0000-0000-000000000002",
        );
        let map: HashMap<String, String> = [(old.to_owned(), new.to_owned())].into();
        let t = TableEntry {
            schema: "assoc_x".into(),
            name: "comments".into(),
            entry: String::new(),
            columns: ["id", "author_id", "body", "deleted_by"]
                .map(String::from)
                .to_vec(),
            rows: 2,
            bytes: 0,
            sha256: String::new(),
            rows_digest: String::new(),
        };
        let input = format!("{old}\t{old}\t{old}\t\\N\nc2\t{old}\tx\t{old}\n");
        let mut r = Remap::for_table(&t, &map).unwrap();
        let mut out = Vec::new();
        for piece in input.as_bytes().chunks(7) {
            out.extend(r.feed(piece));
        }
        assert!(r.partial.is_empty());
        assert_eq!(
            String::from_utf8(out).unwrap(),
            format!("{old}\t{new}\t{old}\t\\N\nc2\t{new}\tx\t{new}\n")
        );
        let other = TableEntry {
            name: "audit_log".into(),
            columns: vec!["actor_id".into()],
            ..t
        };
        assert!(Remap::for_table(&other, &map).is_none());
    }

    #[test]
    fn only_generated_schema_names_are_accepted() {
        assert!(valid_schema_name(&format!("assoc_{}", "0a".repeat(16))));
        assert!(!valid_schema_name("core"));
        assert!(!valid_schema_name(&format!("assoc_{}\"", "0a".repeat(16))));
    }
}
