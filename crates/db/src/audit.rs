//! The append-only, tamper-evident audit logs: one per association (`audit_log` in the tenant
//! schema that the transaction's `search_path` points to) and one for the platform
//! (`core.platform_audit_log`).
//!
//! Every record carries `hash = sha256(prev_hash || canonical bytes of the record)`; the first
//! record's `prev_hash` is 32 zero bytes. The canonical encoding is [`canonical_bytes`] and is
//! specified, byte by byte, in `docs/audit.md`. Appenders of one log serialize on an advisory
//! transaction lock, so sequence numbers are gapless and each record links to the one before.
//! Triggers refuse UPDATE, DELETE and TRUNCATE; only the retention purge ([`purge`]) may
//! delete, and only a prefix of the log, after which it appends an `audit.purge` record naming
//! the anchor hash.

use crate::{DbError, DbResult};
use chrono::{DateTime, Utc};
use musubi_types::PersonId;
use serde_json::Value;
use sha2::{Digest, Sha256};
use sqlx::{Connection, PgConnection, Postgres, QueryBuilder};
use std::fmt;

/// Length of `hash` and `prev_hash`.
pub const HASH_LEN: usize = 32;
/// The `prev_hash` of a log's first record.
pub const GENESIS_HASH: [u8; HASH_LEN] = [0; HASH_LEN];
/// The action the retention purge records.
pub const PURGE_ACTION: &str = "audit.purge";
/// `actor_label` of records that no person caused.
pub const SYSTEM_ACTOR: &str = "system";
/// First byte of the canonical encoding; bumped if the encoding ever changes.
pub const ENCODING_VERSION: u8 = 1;

/// Longest values kept; longer ones are cut (they come from headers and names, not from us).
pub const MAX_LABEL_CHARS: usize = 200;
pub const MAX_OBJECT_CHARS: usize = 200;
pub const MAX_IP_CHARS: usize = 64;
pub const MAX_USER_AGENT_CHARS: usize = 512;
/// Largest canonical `detail`; a larger one is refused (it would be a programming error).
pub const MAX_DETAIL_BYTES: usize = 64 * 1024;

/// Records read per query when verifying or exporting: memory stays bounded for any log size.
pub const CHUNK: i64 = 1000;

/// Advisory lock classes (two-key form, so they never collide with the one-key migration lock).
/// The second key is `hashtext` of the log's qualified table name.
const APPEND_LOCK_CLASS: i32 = 0x6d75_a001;
const PURGE_LOCK_CLASS: i32 = 0x6d75_a002;

/// Which log a call works on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Log {
    /// `audit_log` of the association whose schema the transaction's `search_path` names.
    Tenant,
    /// `core.platform_audit_log`.
    Platform,
}

impl Log {
    fn table(self) -> &'static str {
        match self {
            Log::Tenant => "audit_log",
            Log::Platform => "core.platform_audit_log",
        }
    }

    /// SQL naming the log for the advisory lock key; the tenant's comes from its schema.
    fn lock_name_sql(self) -> &'static str {
        match self {
            Log::Tenant => "coalesce(current_schema(), '') || '.audit_log'",
            Log::Platform => "'core.platform_audit_log'",
        }
    }
}

/// A record to append, as the services layer hands it over. `detail` holds ids and codes only,
/// never patient free text; its numbers must be integers (see docs/audit.md).
#[derive(Debug, Clone, Copy)]
pub struct NewRecord<'a> {
    pub actor_id: Option<PersonId>,
    /// The actor's display name now, or [`SYSTEM_ACTOR`].
    pub actor_label: &'a str,
    /// Stable dotted code: lowercase segments of `[a-z][a-z0-9_]*` joined by dots.
    pub action: &'a str,
    pub object_type: Option<&'a str>,
    pub object_id: Option<&'a str>,
    pub ip: &'a str,
    pub user_agent: &'a str,
    pub detail: &'a Value,
}

/// A stored record.
#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
pub struct AuditRecord {
    pub seq: i64,
    pub at: DateTime<Utc>,
    pub actor_id: Option<PersonId>,
    pub actor_label: String,
    pub action: String,
    pub object_type: Option<String>,
    pub object_id: Option<String>,
    pub ip: String,
    pub user_agent: String,
    pub detail: Value,
    pub prev_hash: Vec<u8>,
    pub hash: Vec<u8>,
}

const COLUMNS: &str = "seq, at, actor_id, actor_label, action, object_type, object_id, ip, \
                       user_agent, detail, prev_hash, hash";

// ---------------------------------------------------------------------------------------------
// Canonical encoding and hashing
// ---------------------------------------------------------------------------------------------

/// The fields that the hash covers, borrowed.
#[derive(Debug, Clone, Copy)]
pub struct HashedFields<'a> {
    pub seq: i64,
    /// Microseconds since 1970-01-01T00:00:00Z.
    pub at_micros: i64,
    pub actor_id: Option<PersonId>,
    pub actor_label: &'a str,
    pub action: &'a str,
    pub object_type: Option<&'a str>,
    pub object_id: Option<&'a str>,
    pub ip: &'a str,
    pub user_agent: &'a str,
    /// `detail` already in canonical JSON ([`canonical_json`]).
    pub detail_json: &'a str,
}

fn put_str(out: &mut Vec<u8>, s: &str) {
    // Lengths are bounded far below 4 GiB by the limits above.
    out.extend_from_slice(&(s.len() as u32).to_be_bytes());
    out.extend_from_slice(s.as_bytes());
}

fn put_opt_str(out: &mut Vec<u8>, s: Option<&str>) {
    match s {
        None => out.push(0),
        Some(s) => {
            out.push(1);
            put_str(out, s);
        }
    }
}

/// The canonical bytes of a record (docs/audit.md, "Canonical encoding"): a version byte, then
/// every field in a fixed order, fixed-width or length-prefixed, so no two records share an
/// encoding.
pub fn canonical_bytes(f: &HashedFields<'_>) -> Vec<u8> {
    let mut out = Vec::with_capacity(
        64 + f.actor_label.len() + f.action.len() + f.user_agent.len() + f.detail_json.len(),
    );
    out.push(ENCODING_VERSION);
    out.extend_from_slice(&f.seq.to_be_bytes());
    out.extend_from_slice(&f.at_micros.to_be_bytes());
    match f.actor_id {
        None => out.push(0),
        Some(id) => {
            out.push(1);
            out.extend_from_slice(id.uuid().as_bytes());
        }
    }
    put_str(&mut out, f.actor_label);
    put_str(&mut out, f.action);
    put_opt_str(&mut out, f.object_type);
    put_opt_str(&mut out, f.object_id);
    put_str(&mut out, f.ip);
    put_str(&mut out, f.user_agent);
    put_str(&mut out, f.detail_json);
    out
}

/// `sha256(prev_hash || canonical_bytes(fields))`.
pub fn chain_hash(prev_hash: &[u8], fields: &HashedFields<'_>) -> [u8; HASH_LEN] {
    let mut h = Sha256::new();
    h.update(prev_hash);
    h.update(canonical_bytes(fields));
    h.finalize().into()
}

/// Recomputes a stored record's hash from its fields and its stored `prev_hash`.
pub fn record_hash(r: &AuditRecord) -> [u8; HASH_LEN] {
    let detail_json = canonical_json(&r.detail);
    chain_hash(
        &r.prev_hash,
        &HashedFields {
            seq: r.seq,
            at_micros: r.at.timestamp_micros(),
            actor_id: r.actor_id,
            actor_label: &r.actor_label,
            action: &r.action,
            object_type: r.object_type.as_deref(),
            object_id: r.object_id.as_deref(),
            ip: &r.ip,
            user_agent: &r.user_agent,
            detail_json: &detail_json,
        },
    )
}

/// Canonical JSON: no whitespace; object members sorted by the UTF-8 bytes of their keys;
/// strings escaped only where JSON requires it (`"`, `\`, U+0000–U+001F, using `\b \f \n \r \t`
/// or `\u00xx` with lowercase hex), everything else as raw UTF-8; integers in plain decimal.
/// PostgreSQL's `jsonb` keeps exactly this information, so the encoding of a value read back
/// equals the encoding of the value written.
pub fn canonical_json(v: &Value) -> String {
    let mut out = String::new();
    write_json(&mut out, v);
    out
}

fn write_json(out: &mut String, v: &Value) {
    match v {
        Value::Null => out.push_str("null"),
        Value::Bool(true) => out.push_str("true"),
        Value::Bool(false) => out.push_str("false"),
        // Appends refuse non-integers; a float can only come from tampering and then simply
        // fails to match.
        Value::Number(n) => out.push_str(&n.to_string()),
        Value::String(s) => write_json_string(out, s),
        Value::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_json(out, item);
            }
            out.push(']');
        }
        Value::Object(map) => {
            let mut members: Vec<(&String, &Value)> = map.iter().collect();
            members.sort_by(|a, b| a.0.as_bytes().cmp(b.0.as_bytes()));
            out.push('{');
            for (i, (k, item)) in members.into_iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_json_string(out, k);
                out.push(':');
                write_json(out, item);
            }
            out.push('}');
        }
    }
}

fn write_json_string(out: &mut String, s: &str) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
}

// ---------------------------------------------------------------------------------------------
// Appending
// ---------------------------------------------------------------------------------------------

/// A record cleaned and checked, ready to hash.
struct Prepared {
    actor_id: Option<PersonId>,
    actor_label: String,
    action: String,
    object_type: Option<String>,
    object_id: Option<String>,
    ip: String,
    user_agent: String,
    detail: Value,
    detail_json: String,
}

impl Prepared {
    fn fields(&self, seq: i64, at_micros: i64) -> HashedFields<'_> {
        HashedFields {
            seq,
            at_micros,
            actor_id: self.actor_id,
            actor_label: &self.actor_label,
            action: &self.action,
            object_type: self.object_type.as_deref(),
            object_id: self.object_id.as_deref(),
            ip: &self.ip,
            user_agent: &self.user_agent,
            detail_json: &self.detail_json,
        }
    }
}

/// PostgreSQL text cannot hold U+0000; a header carrying one must not make an audited action
/// fail, so it becomes U+FFFD. Over-long values are cut.
fn clean(s: &str, max_chars: usize) -> String {
    s.chars()
        .take(max_chars)
        .map(|c| if c == '\0' { '\u{FFFD}' } else { c })
        .collect()
}

/// Lowercase dotted code with at least two segments, e.g. `auth.sign_in`.
pub fn is_valid_action(action: &str) -> bool {
    action.len() <= 64
        && action.split('.').count() >= 2
        && action.split('.').all(|seg| {
            let mut chars = seg.chars();
            chars.next().is_some_and(|c| c.is_ascii_lowercase())
                && chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
        })
}

fn clean_detail(v: &Value) -> DbResult<Value> {
    Ok(match v {
        Value::Number(n) if !(n.is_i64() || n.is_u64()) => {
            return Err(DbError::Check("audit_detail_integers_only".into()))
        }
        Value::String(s) => Value::String(clean(s, usize::MAX)),
        Value::Array(items) => {
            Value::Array(items.iter().map(clean_detail).collect::<DbResult<_>>()?)
        }
        Value::Object(map) => Value::Object(
            map.iter()
                .map(|(k, v)| Ok((clean(k, usize::MAX), clean_detail(v)?)))
                .collect::<DbResult<_>>()?,
        ),
        other => other.clone(),
    })
}

fn prepare(r: &NewRecord<'_>) -> DbResult<Prepared> {
    if !is_valid_action(r.action) {
        return Err(DbError::Check("audit_action_code".into()));
    }
    let detail = match r.detail {
        Value::Null => Value::Object(Default::default()),
        Value::Object(_) => clean_detail(r.detail)?,
        _ => return Err(DbError::Check("audit_detail_object".into())),
    };
    let detail_json = canonical_json(&detail);
    if detail_json.len() > MAX_DETAIL_BYTES {
        return Err(DbError::Check("audit_detail_size".into()));
    }
    let label = clean(r.actor_label.trim(), MAX_LABEL_CHARS);
    Ok(Prepared {
        actor_id: r.actor_id,
        actor_label: if label.is_empty() {
            SYSTEM_ACTOR.to_owned()
        } else {
            label
        },
        action: r.action.to_owned(),
        object_type: r.object_type.map(|s| clean(s, MAX_OBJECT_CHARS)),
        object_id: r.object_id.map(|s| clean(s, MAX_OBJECT_CHARS)),
        ip: clean(r.ip, MAX_IP_CHARS),
        user_agent: clean(r.user_agent, MAX_USER_AGENT_CHARS),
        detail,
        detail_json,
    })
}

async fn lock(conn: &mut PgConnection, log: Log, class: i32, shared: bool) -> DbResult<()> {
    let f = if shared {
        "pg_advisory_xact_lock_shared"
    } else {
        "pg_advisory_xact_lock"
    };
    sqlx::query(&format!(
        "SELECT {f}($1, hashtext({}))",
        log.lock_name_sql()
    ))
    .bind(class)
    .execute(conn)
    .await?;
    Ok(())
}

/// Appends one record to the association log of the caller's tenant transaction; returns its
/// seq. It commits or rolls back with that transaction, so an audited write and its record
/// stand or fall together. The log stays locked for appending until that transaction ends:
/// append late in the transaction. The transaction must be READ COMMITTED (the default).
/// Called outside a transaction, it runs in one of its own.
pub async fn append(conn: &mut PgConnection, record: &NewRecord<'_>) -> DbResult<i64> {
    let seqs = append_to(conn, Log::Tenant, std::slice::from_ref(record)).await?;
    seqs.last()
        .copied()
        .ok_or_else(|| DbError::Sqlx(sqlx::Error::RowNotFound))
}

/// Appends several records in one statement (one lock, one read, one insert); returns their
/// seqs in order. All get the same `at`.
pub async fn append_batch(
    conn: &mut PgConnection,
    records: &[NewRecord<'_>],
) -> DbResult<Vec<i64>> {
    append_to(conn, Log::Tenant, records).await
}

/// Appends one record to the platform log (`core.platform_audit_log`).
pub async fn append_platform(conn: &mut PgConnection, record: &NewRecord<'_>) -> DbResult<i64> {
    let seqs = append_to(conn, Log::Platform, std::slice::from_ref(record)).await?;
    seqs.last()
        .copied()
        .ok_or_else(|| DbError::Sqlx(sqlx::Error::RowNotFound))
}

/// Appends to either log; the general form of [`append`], [`append_batch`] and
/// [`append_platform`].
#[tracing::instrument(name = "db.audit.append", skip_all, fields(log = ?log, n = records.len()))]
pub async fn append_to(
    conn: &mut PgConnection,
    log: Log,
    records: &[NewRecord<'_>],
) -> DbResult<Vec<i64>> {
    if records.is_empty() {
        return Ok(Vec::new());
    }
    // Check everything before touching the database.
    let prepared = records.iter().map(prepare).collect::<DbResult<Vec<_>>>()?;
    if conn.is_in_transaction() {
        if let (Log::Tenant, [one]) = (log, prepared.as_slice()) {
            // The usual case, the lock included in one statement (tenant migration 0016).
            return append_one_to_tenant(conn, one).await.map(|seq| vec![seq]);
        }
        lock(conn, log, APPEND_LOCK_CLASS, false).await?;
        insert_locked(conn, log, &prepared).await
    } else {
        // Without a transaction the lock would end with its statement: make one.
        let mut tx = conn.begin().await?;
        lock(&mut tx, log, APPEND_LOCK_CLASS, false).await?;
        let seqs = insert_locked(&mut tx, log, &prepared).await?;
        tx.commit().await?;
        Ok(seqs)
    }
}

/// Bytes of the canonical encoding before the record's own fields: the version, `seq` and
/// `at` (see [`canonical_bytes`]). Only the chain's head decides `seq` and `at`.
const HEAD_FIELDS_LEN: usize = 1 + 8 + 8;

/// The caller holds the append lock. Reads the chain's head and the database clock (after
/// the lock, so it sees every committed append), then inserts.
async fn insert_locked(
    conn: &mut PgConnection,
    log: Log,
    prepared: &[Prepared],
) -> DbResult<Vec<i64>> {
    if let [one] = prepared {
        return insert_one_locked(conn, log, one).await.map(|seq| vec![seq]);
    }
    let (last_seq, last_hash, at): (Option<i64>, Option<Vec<u8>>, DateTime<Utc>) =
        sqlx::query_as(&format!(
            "SELECT l.seq, l.hash, clock_timestamp() FROM (SELECT 1) AS one \
             LEFT JOIN LATERAL (SELECT seq, hash FROM {} ORDER BY seq DESC LIMIT 1) AS l ON true",
            log.table()
        ))
        .fetch_one(&mut *conn)
        .await?;
    let mut seq = last_seq.unwrap_or(0);
    let mut prev = last_hash.unwrap_or_else(|| GENESIS_HASH.to_vec());

    let n = prepared.len();
    let mut seqs = Vec::with_capacity(n);
    let mut prev_hashes = Vec::with_capacity(n);
    let mut hashes = Vec::with_capacity(n);
    for p in prepared {
        seq += 1;
        let hash = chain_hash(&prev, &p.fields(seq, at.timestamp_micros()));
        seqs.push(seq);
        prev_hashes.push(std::mem::replace(&mut prev, hash.to_vec()));
        hashes.push(hash.to_vec());
    }
    sqlx::query(&format!(
        "INSERT INTO {} ({COLUMNS}) \
         SELECT s, $2, a, l, ac, ot, oi, ip, ua, d, ph, h \
         FROM UNNEST($1::bigint[], $3::uuid[], $4::text[], $5::text[], $6::text[], $7::text[], \
                     $8::text[], $9::text[], $10::jsonb[], $11::bytea[], $12::bytea[]) \
              AS u(s, a, l, ac, ot, oi, ip, ua, d, ph, h)",
        log.table()
    ))
    .bind(&seqs)
    .bind(at)
    .bind(prepared.iter().map(|p| p.actor_id).collect::<Vec<_>>())
    .bind(
        prepared
            .iter()
            .map(|p| p.actor_label.as_str())
            .collect::<Vec<_>>(),
    )
    .bind(
        prepared
            .iter()
            .map(|p| p.action.as_str())
            .collect::<Vec<_>>(),
    )
    .bind(
        prepared
            .iter()
            .map(|p| p.object_type.as_deref())
            .collect::<Vec<_>>(),
    )
    .bind(
        prepared
            .iter()
            .map(|p| p.object_id.as_deref())
            .collect::<Vec<_>>(),
    )
    .bind(prepared.iter().map(|p| p.ip.as_str()).collect::<Vec<_>>())
    .bind(
        prepared
            .iter()
            .map(|p| p.user_agent.as_str())
            .collect::<Vec<_>>(),
    )
    .bind(
        prepared
            .iter()
            .map(|p| p.detail.clone())
            .collect::<Vec<_>>(),
    )
    .bind(&prev_hashes)
    .bind(&hashes)
    .execute(&mut *conn)
    .await?;
    Ok(seqs)
}

/// [`insert_locked`] for one record, the usual case, in one statement: the head is read and
/// the hash computed by the database (`sha256(prev_hash || version || seq || at || rest)`,
/// the same bytes [`chain_hash`] hashes, `rest` encoded here). The log stays locked from the
/// lock to the commit, so each round trip saved here is one less that others wait for.
async fn insert_one_locked(conn: &mut PgConnection, log: Log, p: &Prepared) -> DbResult<i64> {
    let sql = format!(
        "WITH head AS ( \
             SELECT coalesce(l.seq, 0) + 1 AS seq, coalesce(l.hash, $1) AS prev, \
                    date_trunc('microseconds', clock_timestamp()) AS at \
             FROM (SELECT 1) AS one \
             LEFT JOIN LATERAL (SELECT seq, hash FROM {table} ORDER BY seq DESC LIMIT 1) AS l \
                 ON true) \
         INSERT INTO {table} ({COLUMNS}) \
         SELECT h.seq, h.at, $3, $4, $5, $6, $7, $8, $9, $10, h.prev, \
                sha256(h.prev || $2 || int8send(h.seq) \
                       || int8send((extract(epoch FROM h.at) * 1000000)::bigint) || $11) \
         FROM head h RETURNING seq",
        table = log.table()
    );
    insert_one(conn, &sql, p, None).await
}

/// One record appended to the tenant log by `audit_append` (tenant migration 0016): the lock,
/// the head read and the record written in one round trip, the same hash as
/// [`insert_one_locked`]. The log stays locked until the transaction ends.
async fn append_one_to_tenant(conn: &mut PgConnection, p: &Prepared) -> DbResult<i64> {
    let sql = "SELECT audit_append($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)";
    insert_one(conn, sql, p, Some(APPEND_LOCK_CLASS)).await
}

/// Runs `sql` with one record's values as `$1`–`$11` (the genesis hash, the encoding version,
/// the record's columns, then the rest of its canonical bytes) and `lock_class` as `$12`.
async fn insert_one(
    conn: &mut PgConnection,
    sql: &str,
    p: &Prepared,
    lock_class: Option<i32>,
) -> DbResult<i64> {
    let encoded = canonical_bytes(&p.fields(0, 0));
    let rest = &encoded[HEAD_FIELDS_LEN..];
    let mut query = sqlx::query_scalar(sql)
        .bind(GENESIS_HASH.as_slice())
        .bind([ENCODING_VERSION].as_slice())
        .bind(p.actor_id)
        .bind(&p.actor_label)
        .bind(&p.action)
        .bind(p.object_type.as_deref())
        .bind(p.object_id.as_deref())
        .bind(&p.ip)
        .bind(&p.user_agent)
        .bind(&p.detail)
        .bind(rest);
    if let Some(class) = lock_class {
        query = query.bind(class);
    }
    Ok(query.fetch_one(&mut *conn).await?)
}

// ---------------------------------------------------------------------------------------------
// Verifying
// ---------------------------------------------------------------------------------------------

/// Why a link of the chain is broken.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BreakReason {
    /// The record's fields no longer produce its hash.
    HashMismatch,
    /// The record's `prev_hash` is not the previous record's hash (or, for seq 1, not zeros).
    PrevHashMismatch,
    /// Records `seq ..= last_missing` are missing.
    Gap { last_missing: i64 },
    /// The log starts after seq 1, but no `audit.purge` record accounts for the missing prefix.
    UnrecordedTruncation,
}

impl fmt::Display for BreakReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            BreakReason::HashMismatch => f.write_str("hash mismatch (record altered)"),
            BreakReason::PrevHashMismatch => f.write_str(
                "prev_hash does not match the previous record (record altered or replaced)",
            ),
            BreakReason::Gap { last_missing } => {
                write!(f, "gap in seq up to {last_missing} (record deleted)")
            }
            BreakReason::UnrecordedTruncation => f.write_str(
                "older records were removed without an audit.purge record (records deleted)",
            ),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BrokenLink {
    /// The first seq at which the chain does not hold (for a gap: the first missing seq).
    pub seq: i64,
    pub reason: BreakReason,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChainHead {
    pub seq: i64,
    pub hash: Vec<u8>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifyReport {
    /// Records whose link verified (all of them when the chain is intact).
    pub checked: u64,
    pub first_broken: Option<BrokenLink>,
    /// Seq of the oldest record; after a purge its `prev_hash` is the trusted anchor.
    pub first_seq: Option<i64>,
    /// The newest record verified: keep its hash somewhere else to detect a rewritten log.
    pub head: Option<ChainHead>,
}

impl VerifyReport {
    pub fn is_intact(&self) -> bool {
        self.first_broken.is_none()
    }
}

/// Verifies the association log of the caller's tenant transaction.
pub async fn verify(conn: &mut PgConnection) -> DbResult<VerifyReport> {
    verify_log(conn, Log::Tenant).await
}

/// Verifies the platform log.
pub async fn verify_platform(conn: &mut PgConnection) -> DbResult<VerifyReport> {
    verify_log(conn, Log::Platform).await
}

/// Recomputes the chain in seq order, [`CHUNK`] records at a time, and stops at the first
/// broken link. Appends may continue meanwhile; a purge waits (shared purge lock).
#[tracing::instrument(name = "db.audit.verify", skip_all, fields(log = ?log))]
pub async fn verify_log(conn: &mut PgConnection, log: Log) -> DbResult<VerifyReport> {
    if !conn.is_in_transaction() {
        let mut tx = conn.begin().await?;
        let report = verify_locked(&mut tx, log).await?;
        tx.commit().await?;
        return Ok(report);
    }
    verify_locked(conn, log).await
}

async fn verify_locked(conn: &mut PgConnection, log: Log) -> DbResult<VerifyReport> {
    lock(conn, log, PURGE_LOCK_CLASS, true).await?;
    let mut report = VerifyReport {
        checked: 0,
        first_broken: None,
        first_seq: None,
        head: None,
    };
    let mut prev: Option<(i64, Vec<u8>)> = None;
    // The oldest record's prev_hash: the anchor when the log was purged.
    let mut anchor: Option<Vec<u8>> = None;
    // The newest audit.purge record seen: (purged_to, anchor hash in hex).
    let mut last_purge: Option<(Option<i64>, Option<String>)> = None;
    let sql = format!(
        "SELECT {COLUMNS} FROM {} WHERE seq > $1 ORDER BY seq LIMIT $2",
        log.table()
    );
    let mut after = 0i64;
    loop {
        let rows: Vec<AuditRecord> = sqlx::query_as(&sql)
            .bind(after)
            .bind(CHUNK)
            .fetch_all(&mut *conn)
            .await?;
        let Some(last) = rows.last() else { break };
        after = last.seq;
        for r in &rows {
            if let Some(reason) = check_link(prev.as_ref(), r) {
                let seq = match (&reason, &prev) {
                    (BreakReason::Gap { .. }, Some((p, _))) => p + 1,
                    _ => r.seq,
                };
                report.first_broken = Some(BrokenLink { seq, reason });
                return Ok(report);
            }
            if report.first_seq.is_none() {
                report.first_seq = Some(r.seq);
                anchor = Some(r.prev_hash.clone());
            }
            if r.action == PURGE_ACTION {
                last_purge = Some((
                    r.detail.get("purged_to").and_then(Value::as_i64),
                    r.detail
                        .get("anchor_hash")
                        .and_then(Value::as_str)
                        .map(str::to_owned),
                ));
            }
            report.checked += 1;
            prev = Some((r.seq, r.hash.clone()));
        }
    }
    report.head = prev.map(|(seq, hash)| ChainHead { seq, hash });
    // A log that no longer starts at 1 must say why: its newest purge record names the prefix
    // it removed and the anchor hash the oldest remaining record links to.
    if let Some(first) = report.first_seq.filter(|s| *s > 1) {
        let accounted = matches!(
            (&last_purge, &anchor),
            (Some((Some(to), Some(hash))), Some(a)) if *to == first - 1 && *hash == hex::encode(a)
        );
        if !accounted {
            report.first_broken = Some(BrokenLink {
                seq: first,
                reason: BreakReason::UnrecordedTruncation,
            });
        }
    }
    Ok(report)
}

/// Checks one record against its predecessor (None: it is the oldest remaining record, whose
/// `prev_hash` is trusted as the anchor unless it is seq 1).
fn check_link(prev: Option<&(i64, Vec<u8>)>, r: &AuditRecord) -> Option<BreakReason> {
    match prev {
        Some((p, _)) if r.seq != p + 1 => {
            return Some(BreakReason::Gap {
                last_missing: r.seq - 1,
            })
        }
        None if r.seq == 1 && r.prev_hash != GENESIS_HASH => {
            return Some(BreakReason::PrevHashMismatch)
        }
        _ => {}
    }
    if record_hash(r)[..] != r.hash[..] {
        return Some(BreakReason::HashMismatch);
    }
    match prev {
        Some((_, h)) if *h != r.prev_hash => Some(BreakReason::PrevHashMismatch),
        _ => None,
    }
}

// ---------------------------------------------------------------------------------------------
// Retention purge
// ---------------------------------------------------------------------------------------------

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PurgeReport {
    pub purged_from: i64,
    pub purged_to: i64,
    pub count: u64,
    /// Hash of the last purged record: the oldest remaining record's `prev_hash`.
    pub anchor_hash: Vec<u8>,
    pub cutoff: DateTime<Utc>,
    /// Seq of the `audit.purge` record that notes this purge.
    pub purge_record_seq: i64,
}

/// Applies the association's retention (`settings.audit_retention_years`) to the log of the
/// caller's tenant transaction. `None` when nothing was old enough.
pub async fn purge(conn: &mut PgConnection) -> DbResult<Option<PurgeReport>> {
    let (years, cutoff): (i32, DateTime<Utc>) = sqlx::query_as(
        "SELECT audit_retention_years, \
                clock_timestamp() - make_interval(years => audit_retention_years) \
         FROM settings",
    )
    .fetch_one(&mut *conn)
    .await?;
    purge_log(conn, Log::Tenant, cutoff, Some(years)).await
}

/// Deletes the records appended before `cutoff` from the association log of the caller's
/// tenant transaction, and appends an `audit.purge` record.
pub async fn purge_older_than(
    conn: &mut PgConnection,
    cutoff: DateTime<Utc>,
) -> DbResult<Option<PurgeReport>> {
    purge_log(conn, Log::Tenant, cutoff, None).await
}

#[tracing::instrument(name = "db.audit.purge", skip_all, fields(log = ?log))]
pub async fn purge_log(
    conn: &mut PgConnection,
    log: Log,
    cutoff: DateTime<Utc>,
    retention_years: Option<i32>,
) -> DbResult<Option<PurgeReport>> {
    if !conn.is_in_transaction() {
        let mut tx = conn.begin().await?;
        let report = purge_locked(&mut tx, log, cutoff, retention_years).await?;
        tx.commit().await?;
        return Ok(report);
    }
    purge_locked(conn, log, cutoff, retention_years).await
}

async fn purge_locked(
    conn: &mut PgConnection,
    log: Log,
    cutoff: DateTime<Utc>,
    retention_years: Option<i32>,
) -> DbResult<Option<PurgeReport>> {
    // Verifiers first (they hold the purge lock shared), then appenders.
    lock(conn, log, PURGE_LOCK_CLASS, false).await?;
    lock(conn, log, APPEND_LOCK_CLASS, false).await?;
    let table = log.table();
    // Only a prefix goes: everything before the first record at or after the cutoff, so the
    // remaining chain stays contiguous even if the clock ever stepped back.
    let bounds: (Option<i64>, Option<i64>) = sqlx::query_as(&format!(
        "SELECT min(seq), \
                coalesce((SELECT seq FROM {table} WHERE at >= $1 ORDER BY seq LIMIT 1) - 1, \
                         max(seq)) \
         FROM {table}"
    ))
    .bind(cutoff)
    .fetch_one(&mut *conn)
    .await?;
    let (Some(from), Some(to)) = bounds else {
        return Ok(None);
    };
    if to < from {
        return Ok(None);
    }
    let anchor: Vec<u8> = sqlx::query_scalar(&format!("SELECT hash FROM {table} WHERE seq = $1"))
        .bind(to)
        .fetch_one(&mut *conn)
        .await?;
    sqlx::query("SELECT set_config('musubi.audit_purge', 'on', true)")
        .execute(&mut *conn)
        .await?;
    let deleted = sqlx::query(&format!("DELETE FROM {table} WHERE seq <= $1"))
        .bind(to)
        .execute(&mut *conn)
        .await;
    // Switch the permission off again before anything else runs in this transaction.
    sqlx::query("SELECT set_config('musubi.audit_purge', 'off', true)")
        .execute(&mut *conn)
        .await?;
    let count = deleted?.rows_affected();
    let mut detail = serde_json::json!({
        "purged_from": from,
        "purged_to": to,
        "count": count,
        "anchor_hash": hex::encode(&anchor),
        "cutoff": cutoff.to_rfc3339_opts(chrono::SecondsFormat::Micros, true),
    });
    if let (Some(y), Value::Object(m)) = (retention_years, &mut detail) {
        m.insert("retention_years".into(), y.into());
    }
    let record = NewRecord {
        actor_id: None,
        actor_label: SYSTEM_ACTOR,
        action: PURGE_ACTION,
        object_type: None,
        object_id: None,
        ip: "",
        user_agent: "",
        detail: &detail,
    };
    let prepared = prepare(&record)?;
    let seqs = insert_locked(conn, log, std::slice::from_ref(&prepared)).await?;
    tracing::info!(from, to, count, "audit records purged");
    Ok(Some(PurgeReport {
        purged_from: from,
        purged_to: to,
        count,
        anchor_hash: anchor,
        cutoff,
        purge_record_seq: seqs.first().copied().unwrap_or_default(),
    }))
}

// ---------------------------------------------------------------------------------------------
// Reading
// ---------------------------------------------------------------------------------------------

/// Filters for listing; every field narrows the result.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AuditFilter {
    /// Records at or after this instant.
    pub from: Option<DateTime<Utc>>,
    /// Records strictly before this instant.
    pub until: Option<DateTime<Utc>>,
    pub actor_id: Option<PersonId>,
    /// Whole dotted segments: `auth` matches `auth.sign_in` and `auth.sign_out`,
    /// `auth.sign_in` matches only itself (and `auth.sign_in.*`), never `auth.sign_in_failed`.
    pub action_prefix: Option<String>,
    pub object_type: Option<String>,
    /// Matches `object_id`, or an element of `detail.object_ids` (records of many objects).
    pub object_id: Option<String>,
    /// Records about one group: the group itself, or anything in it (`detail.group_id`).
    pub group_id: Option<String>,
}

fn like_escape(s: &str) -> String {
    s.replace('\\', "\\\\")
        .replace('%', "\\%")
        .replace('_', "\\_")
}

/// Lists records newest first: those with `seq < before` (all when `None`), at most `limit`.
pub async fn list(
    conn: &mut PgConnection,
    filter: &AuditFilter,
    before: Option<i64>,
    limit: i64,
) -> DbResult<Vec<AuditRecord>> {
    list_log(conn, Log::Tenant, filter, before, limit).await
}

pub async fn list_platform(
    conn: &mut PgConnection,
    filter: &AuditFilter,
    before: Option<i64>,
    limit: i64,
) -> DbResult<Vec<AuditRecord>> {
    list_log(conn, Log::Platform, filter, before, limit).await
}

#[tracing::instrument(name = "db.audit.list", skip_all, fields(log = ?log))]
pub async fn list_log(
    conn: &mut PgConnection,
    log: Log,
    filter: &AuditFilter,
    before: Option<i64>,
    limit: i64,
) -> DbResult<Vec<AuditRecord>> {
    // Built per filter so that each query gets a plan that uses the matching index.
    let mut q =
        QueryBuilder::<Postgres>::new(format!("SELECT {COLUMNS} FROM {} WHERE true", log.table()));
    if let Some(b) = before {
        q.push(" AND seq < ").push_bind(b);
    }
    if let Some(from) = filter.from {
        q.push(" AND at >= ").push_bind(from);
    }
    if let Some(until) = filter.until {
        q.push(" AND at < ").push_bind(until);
    }
    if let Some(actor) = filter.actor_id {
        q.push(" AND actor_id = ").push_bind(actor);
    }
    if let Some(prefix) = filter
        .action_prefix
        .as_deref()
        .map(|p| p.trim().trim_end_matches('.'))
        .filter(|p| !p.is_empty())
    {
        q.push(" AND (action = ")
            .push_bind(prefix.to_owned())
            .push(" OR action LIKE ")
            .push_bind(format!("{}.%", like_escape(prefix)))
            .push(")");
    }
    if let Some(t) = &filter.object_type {
        q.push(" AND object_type = ").push_bind(t.clone());
    }
    if let Some(id) = &filter.object_id {
        q.push(" AND (object_id = ")
            .push_bind(id.clone())
            .push(" OR jsonb_exists(detail -> 'object_ids', ")
            .push_bind(id.clone())
            .push("))");
    }
    if let Some(g) = &filter.group_id {
        q.push(" AND ((object_type = 'group' AND object_id = ")
            .push_bind(g.clone())
            .push(") OR detail ->> 'group_id' = ")
            .push_bind(g.clone())
            .push(")");
    }
    q.push(" ORDER BY seq DESC LIMIT ").push_bind(limit.max(0));
    Ok(q.build_query_as().fetch_all(conn).await?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn fields<'a>(detail_json: &'a str) -> HashedFields<'a> {
        HashedFields {
            seq: 1,
            at_micros: 1_700_000_000_123_456,
            actor_id: None,
            actor_label: "system",
            action: "auth.sign_in",
            object_type: None,
            object_id: None,
            ip: "",
            user_agent: "",
            detail_json,
        }
    }

    #[test]
    fn canonical_json_sorts_keys_by_bytes_and_escapes_minimally() {
        let v = json!({"b": 1, "a": [true, null, "x\"\\\n\u{1}"], "é": "結び", "B": -5});
        assert_eq!(
            canonical_json(&v),
            r#"{"B":-5,"a":[true,null,"x\"\\\n\u0001"],"b":1,"é":"結び"}"#
        );
    }

    #[test]
    fn canonical_bytes_are_length_prefixed_so_fields_cannot_run_into_each_other() {
        let mut a = fields("{}");
        let mut b = fields("{}");
        a.ip = "1.2";
        a.user_agent = "3";
        b.ip = "1";
        b.user_agent = ".23";
        assert_ne!(canonical_bytes(&a), canonical_bytes(&b));
        let mut c = fields("{}");
        c.object_type = Some("");
        assert_ne!(canonical_bytes(&fields("{}")), canonical_bytes(&c));
    }

    #[test]
    fn canonical_bytes_match_the_documented_layout() {
        let id = uuid::Uuid::from_u128(0x0102_0304_0506_0708_090a_0b0c_0d0e_0f10);
        let f = HashedFields {
            seq: 2,
            at_micros: 3,
            actor_id: Some(PersonId::from_uuid(id)),
            actor_label: "A",
            action: "a.b",
            object_type: Some("t"),
            object_id: None,
            ip: "",
            user_agent: "",
            detail_json: "{}",
        };
        let mut expected = vec![1u8];
        expected.extend_from_slice(&2i64.to_be_bytes());
        expected.extend_from_slice(&3i64.to_be_bytes());
        expected.push(1);
        expected.extend_from_slice(id.as_bytes());
        expected.extend_from_slice(&[0, 0, 0, 1, b'A']);
        expected.extend_from_slice(&[0, 0, 0, 3, b'a', b'.', b'b']);
        expected.extend_from_slice(&[1, 0, 0, 0, 1, b't']);
        expected.push(0);
        expected.extend_from_slice(&[0, 0, 0, 0]);
        expected.extend_from_slice(&[0, 0, 0, 0]);
        expected.extend_from_slice(&[0, 0, 0, 2, b'{', b'}']);
        assert_eq!(canonical_bytes(&f), expected);
    }

    #[test]
    fn hash_covers_prev_hash_and_every_field() {
        let base = chain_hash(&GENESIS_HASH, &fields("{}"));
        assert_ne!(base, chain_hash(&[1; 32], &fields("{}")));
        assert_ne!(base, chain_hash(&GENESIS_HASH, &fields(r#"{"a":1}"#)));
        let mut f = fields("{}");
        f.at_micros += 1;
        assert_ne!(base, chain_hash(&GENESIS_HASH, &f));
    }

    #[test]
    fn action_codes_are_lowercase_dotted() {
        for ok in ["auth.sign_in", "member.invite", "audit.purge", "a.b.c2"] {
            assert!(is_valid_action(ok), "{ok}");
        }
        for bad in [
            "auth",
            "Auth.sign_in",
            "auth..x",
            ".x",
            "auth.sign-in",
            "auth.1x",
            "",
        ] {
            assert!(!is_valid_action(bad), "{bad}");
        }
    }

    #[test]
    fn records_are_cleaned_and_checked_before_hashing() {
        let detail = json!({"ids": ["a\0b"], "n": 3});
        let r = NewRecord {
            actor_id: None,
            actor_label: "  ",
            action: "patient.read",
            object_type: None,
            object_id: None,
            ip: "::1",
            user_agent: &"x\0".repeat(1000),
            detail: &detail,
        };
        let p = prepare(&r).expect("valid");
        assert_eq!(p.actor_label, SYSTEM_ACTOR);
        assert_eq!(p.user_agent.chars().count(), MAX_USER_AGENT_CHARS);
        assert!(!p.user_agent.contains('\0') && !p.detail_json.contains('\0'));
        assert_eq!(p.detail_json, r#"{"ids":["a�b"],"n":3}"#);

        let float = json!({"x": 1.5});
        assert!(prepare(&NewRecord {
            detail: &float,
            ..r
        })
        .is_err());
        let not_object = json!([1]);
        assert!(prepare(&NewRecord {
            detail: &not_object,
            ..r
        })
        .is_err());
        assert!(prepare(&NewRecord { action: "Bad", ..r }).is_err());
        let null = Value::Null;
        assert_eq!(
            prepare(&NewRecord { detail: &null, ..r })
                .expect("null is {}")
                .detail_json,
            "{}"
        );
    }
}
