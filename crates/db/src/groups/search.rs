//! Free-word search's documents (migration `tenant/0008_search.sql`): written with the content
//! they describe, in the caller's transaction, and the query that finds them — with every rule
//! of who may read what in its `WHERE`, so that counts and pages are right.

use crate::DbResult;
use chrono::{DateTime, Utc};
use musubi_types::japanese::{fold, grams};
use musubi_types::{GroupId, PersonId};
use sqlx::PgConnection;
use uuid::Uuid;

/// What a document is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DocKind {
    /// A topic's title (its body is its comment number 1).
    Topic,
    Comment,
    /// A file's name and text (shared, or an attachment once posted).
    File,
    /// A patient's name and reading.
    Patient,
}

impl DocKind {
    pub const ALL: [DocKind; 4] = [
        DocKind::Topic,
        DocKind::Comment,
        DocKind::File,
        DocKind::Patient,
    ];

    pub fn code(self) -> &'static str {
        match self {
            DocKind::Topic => "topic",
            DocKind::Comment => "comment",
            DocKind::File => "file",
            DocKind::Patient => "patient",
        }
    }

    pub fn from_code(code: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|k| k.code() == code)
    }
}

/// The folded text of segments (a line break between them: nothing matches across it), as
/// stored in `search_docs.folded` (the benchmark's generator writes documents the same way).
pub fn folded_segments(segments: &[&str]) -> String {
    segments
        .iter()
        .map(|s| fold(s))
        .collect::<Vec<_>>()
        .join("\n")
}

/// Writes (or rewrites) a document. Scope and topic author come from the topic, if any.
#[allow(clippy::too_many_arguments)]
async fn put(
    conn: &mut PgConnection,
    id: Uuid,
    kind: DocKind,
    group: GroupId,
    topic: Option<Uuid>,
    author: Option<PersonId>,
    at: Option<DateTime<Utc>>,
    folded: &str,
) -> DbResult<()> {
    sqlx::query(
        "INSERT INTO search_docs (id, kind, group_id, topic_id, scope, topic_author, author_id, \
                                  at, folded, grams) \
         SELECT $1, $2, $3, $4, COALESCE(t.scope, 7), t.author_id, $5, COALESCE($6, now()), \
                $7, $8 \
         FROM (SELECT 1) one LEFT JOIN topics t ON t.id = $4 \
         ON CONFLICT (id) DO UPDATE SET folded = EXCLUDED.folded, grams = EXCLUDED.grams, \
             topic_id = EXCLUDED.topic_id, scope = EXCLUDED.scope, \
             topic_author = EXCLUDED.topic_author",
    )
    .bind(id)
    .bind(kind.code())
    .bind(group)
    .bind(topic)
    .bind(author)
    .bind(at)
    .bind(folded)
    .bind(grams(folded))
    .execute(conn)
    .await?;
    Ok(())
}

/// A comment, as posted (or edited: the current text only).
pub async fn put_comment(
    conn: &mut PgConnection,
    id: Uuid,
    group: GroupId,
    topic: Uuid,
    author: PersonId,
    at: DateTime<Utc>,
    body: &str,
) -> DbResult<()> {
    let folded = folded_segments(&[body]);
    put(
        conn,
        id,
        DocKind::Comment,
        group,
        Some(topic),
        Some(author),
        Some(at),
        &folded,
    )
    .await
}

/// A comment's new text.
pub async fn edit_comment(conn: &mut PgConnection, id: Uuid, body: &str) -> DbResult<()> {
    let folded = folded_segments(&[body]);
    sqlx::query("UPDATE search_docs SET folded = $2, grams = $3 WHERE id = $1")
        .bind(id)
        .bind(&folded)
        .bind(grams(&folded))
        .execute(conn)
        .await?;
    Ok(())
}

/// A topic's title (the document's id is the topic's).
pub async fn put_topic(
    conn: &mut PgConnection,
    topic: Uuid,
    group: GroupId,
    author: PersonId,
    title: &str,
) -> DbResult<()> {
    let folded = folded_segments(&[title]);
    put(
        conn,
        topic,
        DocKind::Topic,
        group,
        Some(topic),
        Some(author),
        None,
        &folded,
    )
    .await
}

/// A topic's title or scope changed: its title's document, and the scope of everything in it.
pub async fn topic_changed(
    conn: &mut PgConnection,
    topic: Uuid,
    title: &str,
    scope: i16,
) -> DbResult<()> {
    let folded = folded_segments(&[title]);
    sqlx::query("UPDATE search_docs SET folded = $2, grams = $3 WHERE id = $1")
        .bind(topic)
        .bind(&folded)
        .bind(grams(&folded))
        .execute(&mut *conn)
        .await?;
    sqlx::query("UPDATE search_docs SET scope = $2 WHERE topic_id = $1 AND scope <> $2")
        .bind(topic)
        .bind(scope)
        .execute(conn)
        .await?;
    Ok(())
}

/// A file people may see: shared (`topic` None) or attached in a topic.
#[allow(clippy::too_many_arguments)]
pub async fn put_file(
    conn: &mut PgConnection,
    id: Uuid,
    group: GroupId,
    topic: Option<Uuid>,
    uploader: PersonId,
    at: DateTime<Utc>,
    name: &str,
    text: Option<&str>,
) -> DbResult<()> {
    let folded = folded_segments(&[name, text.unwrap_or_default()]);
    put(
        conn,
        id,
        DocKind::File,
        group,
        topic,
        Some(uploader),
        Some(at),
        &folded,
    )
    .await
}

/// A patient's name and reading (`name_folded` is already `fold(name)\nfold(kana)`).
pub async fn put_patient(
    conn: &mut PgConnection,
    id: Uuid,
    group: GroupId,
    name_folded: &str,
) -> DbResult<()> {
    put(
        conn,
        id,
        DocKind::Patient,
        group,
        None,
        None,
        None,
        name_folded,
    )
    .await
}

/// Whatever `id` was: never found again.
pub async fn remove(conn: &mut PgConnection, id: Uuid) -> DbResult<()> {
    sqlx::query("DELETE FROM search_docs WHERE id = $1")
        .bind(id)
        .execute(conn)
        .await?;
    Ok(())
}

/// Documents for content written before search existed (a database migrated from an earlier
/// version): at most `batch` of each kind; returns how many were written. Once none are left
/// the association is marked done, and later calls return 0 at once.
pub async fn backfill(conn: &mut PgConnection, batch: i64) -> DbResult<usize> {
    let done: bool = sqlx::query_scalar("SELECT search_backfilled FROM settings")
        .fetch_one(&mut *conn)
        .await?;
    if done {
        return Ok(0);
    }
    let written = backfill_batch(conn, batch).await?;
    if written == 0 {
        sqlx::query("UPDATE settings SET search_backfilled = true")
            .execute(conn)
            .await?;
    }
    Ok(written)
}

async fn backfill_batch(conn: &mut PgConnection, batch: i64) -> DbResult<usize> {
    let mut written = 0;
    let topics: Vec<(Uuid, GroupId, PersonId, String)> = sqlx::query_as(
        "SELECT t.id, t.group_id, t.author_id, t.title FROM topics t \
         WHERE NOT EXISTS (SELECT 1 FROM search_docs d WHERE d.id = t.id) LIMIT $1",
    )
    .bind(batch)
    .fetch_all(&mut *conn)
    .await?;
    for (id, group, author, title) in topics {
        put_topic(conn, id, group, author, &title).await?;
        written += 1;
    }
    let comments: Vec<(Uuid, GroupId, Uuid, PersonId, DateTime<Utc>, String)> = sqlx::query_as(
        "SELECT c.id, c.group_id, c.topic_id, c.author_id, c.created_at, c.body FROM comments c \
         WHERE c.deleted_at IS NULL \
           AND NOT EXISTS (SELECT 1 FROM search_docs d WHERE d.id = c.id) LIMIT $1",
    )
    .bind(batch)
    .fetch_all(&mut *conn)
    .await?;
    for (id, group, topic, author, at, body) in comments {
        put_comment(conn, id, group, topic, author, at, &body).await?;
        written += 1;
    }
    type FileDoc = (
        Uuid,
        GroupId,
        Option<Uuid>,
        PersonId,
        DateTime<Utc>,
        String,
        Option<String>,
    );
    let files: Vec<FileDoc> = sqlx::query_as(
        "SELECT f.id, f.group_id, f.topic_id, f.uploaded_by, f.uploaded_at, f.name, \
                f.text_content FROM files f \
         WHERE f.deleted_at IS NULL AND NOT f.pending \
           AND NOT EXISTS (SELECT 1 FROM search_docs d WHERE d.id = f.id) LIMIT $1",
    )
    .bind(batch)
    .fetch_all(&mut *conn)
    .await?;
    for (id, group, topic, by, at, name, text) in files {
        put_file(conn, id, group, topic, by, at, &name, text.as_deref()).await?;
        written += 1;
    }
    let patients: Vec<(Uuid, GroupId, String)> = sqlx::query_as(
        "SELECT p.id, p.group_id, p.name_folded FROM patients p \
         WHERE NOT EXISTS (SELECT 1 FROM search_docs d WHERE d.id = p.id) LIMIT $1",
    )
    .bind(batch)
    .fetch_all(&mut *conn)
    .await?;
    for (id, group, name_folded) in patients {
        put_patient(conn, id, group, &name_folded).await?;
        written += 1;
    }
    Ok(written)
}

// --- Finding ---------------------------------------------------------------------------------

/// How results are ordered.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Order {
    /// Newest first.
    #[default]
    Newest,
    /// Patients, then titles, then files, then comments; more occurrences first; then newest.
    Relevance,
}

/// Where the previous page ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cursor {
    pub rank: i32,
    pub at: DateTime<Utc>,
    pub id: Uuid,
}

/// A query, folded and checked by the caller.
#[derive(Debug, Clone, Default)]
pub struct Query {
    /// Every word must be in the text (folded, non-empty, at least one).
    pub words: Vec<String>,
    /// No word may be in the text (folded).
    pub excluded: Vec<String>,
    pub kinds: Option<Vec<DocKind>>,
    pub group: Option<GroupId>,
    pub author: Option<PersonId>,
    pub from: Option<DateTime<Utc>>,
    pub until: Option<DateTime<Utc>>,
    pub order: Order,
    pub after: Option<Cursor>,
    pub limit: i64,
}

/// One result, with what a list shows and the text to make a snippet from.
#[derive(Debug, Clone)]
pub struct Hit {
    pub id: Uuid,
    pub kind: String,
    pub group_id: GroupId,
    pub group_name: String,
    pub topic_id: Option<Uuid>,
    pub topic_title: Option<String>,
    /// A comment's number in its topic (1 is the topic's body).
    pub seq: Option<i32>,
    pub author_id: Option<PersonId>,
    pub author_name: Option<String>,
    pub at: DateTime<Utc>,
    pub rank: i32,
    /// How many documents match in all (the same for every row of a page), counted in the
    /// same pass that chooses the page.
    pub total: i64,
    /// The text as written (for a file, its name and the start of its text).
    pub text: String,
}

/// A row of the page as the documents alone give it.
#[derive(sqlx::FromRow)]
struct Found {
    id: Uuid,
    kind: String,
    group_id: GroupId,
    topic_id: Option<Uuid>,
    author_id: Option<PersonId>,
    at: DateTime<Utc>,
    rank: i32,
    total: i64,
}

/// What a list shows of a found document, read from the tables it describes.
#[derive(sqlx::FromRow)]
struct Shown {
    /// The document's position in the page, from 1.
    n: i64,
    group_name: Option<String>,
    topic_title: Option<String>,
    seq: Option<i32>,
    author_name: Option<String>,
    text: Option<String>,
}

/// `%word%` with LIKE's own characters escaped.
fn contains_pattern(word: &str) -> String {
    let mut p = String::with_capacity(word.len() + 2);
    p.push('%');
    for c in word.chars() {
        if matches!(c, '%' | '_' | '\\') {
            p.push('\\');
        }
        p.push(c);
    }
    p.push('%');
    p
}

/// The groups whose documents `$1` may read: an active member now (the same rule as
/// everywhere, [`member_counts!`], and within their last day). Opens the statement that reads
/// `search_docs d` by [`MATCHING`].
const READABLE: &str = concat!(
    "WITH readable AS MATERIALIZED ( \
       SELECT gm.group_id FROM core.group_members gm \
       WHERE gm.user_id = $1 AND gm.status = 'active' \
         AND (gm.until IS NULL OR gm.until > now()) AND ",
    member_counts!(),
    ") "
);

/// Documents of those groups that match the words and filters, in a topic's scope (of class
/// `$2`) or by its author. The index on grams and group token (tenant migration 0014) finds
/// the documents having the words in the person's groups before the table is read; the exact
/// group condition follows (tokens may be shared), kept out of the index so that it does not
/// read every document of those groups.
const MATCHING: &str = "\
    FROM search_docs d \
    WHERE (d.grams || search_group_token(d.group_id)) @> $3 \
      AND (d.grams || search_group_token(d.group_id)) \
          && ARRAY(SELECT search_group_token(r.group_id) FROM readable r) \
      AND (d.group_id = ANY (ARRAY(SELECT r.group_id FROM readable r))) IS TRUE \
      AND d.folded LIKE ALL ($4) \
      AND NOT (d.folded LIKE ANY ($5)) \
      AND (d.topic_id IS NULL OR (d.scope & $2) <> 0 OR d.topic_author = $1) \
      AND ($6::text[] IS NULL OR d.kind = ANY ($6)) \
      AND ($7::uuid IS NULL OR d.group_id = $7) \
      AND ($8::uuid IS NULL OR d.author_id = $8) \
      AND ($9::timestamptz IS NULL OR d.at >= $9) \
      AND ($10::timestamptz IS NULL OR d.at < $10)";

/// The rank of a row: its kind, then how often the words occur (capped).
fn rank(a: &str) -> String {
    format!(
        "(CASE {a}.kind WHEN 'patient' THEN 3000 WHEN 'topic' THEN 2000 WHEN 'file' THEN 1000 \
              ELSE 0 END \
          + LEAST(999, (SELECT COALESCE(sum((char_length({a}.folded) \
                                             - char_length(replace({a}.folded, w, ''))) \
                                            / char_length(w)), 0) \
                        FROM unnest($11::text[]) w))::int)"
    )
}

struct Bound {
    grams: Vec<i32>,
    patterns: Vec<String>,
    excluded: Vec<String>,
    kinds: Option<Vec<&'static str>>,
}

fn bound(q: &Query) -> Bound {
    let mut g: Vec<i32> = q
        .words
        .iter()
        .flat_map(|w| musubi_types::japanese::query_grams(w))
        .collect();
    g.sort_unstable();
    g.dedup();
    Bound {
        grams: g,
        patterns: q.words.iter().map(|w| contains_pattern(w)).collect(),
        excluded: q.excluded.iter().map(|w| contains_pattern(w)).collect(),
        kinds: q
            .kinds
            .as_ref()
            .map(|k| k.iter().map(|k| k.code()).collect()),
    }
}

/// One page of what `me` (of scope class `scope_bit`) may read in this association and that
/// matches `q`, after `q.after`.
pub async fn find(
    conn: &mut PgConnection,
    me: PersonId,
    scope_bit: i16,
    q: &Query,
) -> DbResult<Vec<Hit>> {
    let b = bound(q);
    let (order, keyset) = match q.order {
        Order::Newest => (
            "{a}.at DESC, {a}.id DESC",
            "($12::timestamptz IS NULL OR (x.at, x.id) < ($12, $13))",
        ),
        Order::Relevance => (
            "{a}.rank DESC, {a}.at DESC, {a}.id DESC",
            "($12::timestamptz IS NULL OR (x.rank, x.at, x.id) < ($14, $12, $13))",
        ),
    };
    let inner_order = order.replace("{a}", "x");
    let outer_order = order.replace("{a}", "p");
    // Ranking reads the text of every match: only when the order needs it; otherwise only
    // the page's rows are ranked.
    let (inner_rank, outer_rank) = match q.order {
        Order::Relevance => (rank("d"), "p.rank".to_owned()),
        Order::Newest => ("0".to_owned(), rank("p")),
    };
    // The page is chosen from the documents alone, and the same pass counts every match (a
    // window over them, before the page's cut); only the page's rows are then read with
    // their groups, topics and texts (a frequent word matches thousands of documents).
    let sql = format!(
        "SELECT p.id, p.kind, p.group_id, p.topic_id, p.author_id, p.at, {outer_rank} AS rank, \
                p.total \
         FROM ( \
           SELECT x.* FROM ( \
             {READABLE} \
             SELECT d.id, d.kind, d.group_id, d.topic_id, d.author_id, d.at, d.folded, \
                    {inner_rank} AS rank, count(*) OVER () AS total \
             {MATCHING} \
           ) x WHERE {keyset} ORDER BY {inner_order} LIMIT $15 \
         ) p \
         ORDER BY {outer_order}"
    );
    let after = q.after;
    // Planned afresh each time: a cached generic plan cannot know how many documents the words
    // match nor how many groups the person is in, and PostgreSQL's switch to one after five
    // runs made a 5 ms search take 100 ms. The statement planned afresh is kept to the
    // documents: joined with the five tables a list shows, its planning took 1.7 ms against
    // 0.65 (and three times that on a busy machine); those are read by a prepared statement.
    let found: Vec<Found> = sqlx::query_as(&sql)
        .persistent(false)
        .bind(me)
        .bind(scope_bit)
        .bind(&b.grams)
        .bind(&b.patterns)
        .bind(&b.excluded)
        .bind(&b.kinds)
        .bind(q.group)
        .bind(q.author)
        .bind(q.from)
        .bind(q.until)
        .bind(&q.words)
        .bind(after.map(|c| c.at))
        .bind(after.map(|c| c.id))
        .bind(after.map(|c| c.rank))
        .bind(q.limit)
        .fetch_all(&mut *conn)
        .await?;
    if found.is_empty() {
        return Ok(Vec::new());
    }
    let shown = shown(conn, &found).await?;
    Ok(found
        .into_iter()
        .zip(shown)
        .filter_map(|(f, s)| {
            let s = s?;
            Some(Hit {
                id: f.id,
                kind: f.kind,
                group_id: f.group_id,
                group_name: s.group_name?,
                topic_id: f.topic_id,
                topic_title: s.topic_title,
                seq: s.seq,
                author_id: f.author_id,
                author_name: s.author_name,
                at: f.at,
                rank: f.rank,
                total: f.total,
                // Gone since the page was chosen (deleted in between): left out.
                text: s.text?,
            })
        })
        .collect())
}

/// The group, topic, author and text of each found document, by its position in `found`:
/// without a text (or group) when its row has gone since it was found.
async fn shown(conn: &mut PgConnection, found: &[Found]) -> DbResult<Vec<Option<Shown>>> {
    let ids: Vec<Uuid> = found.iter().map(|f| f.id).collect();
    let kinds: Vec<&str> = found.iter().map(|f| f.kind.as_str()).collect();
    let groups: Vec<GroupId> = found.iter().map(|f| f.group_id).collect();
    let topics: Vec<Option<Uuid>> = found.iter().map(|f| f.topic_id).collect();
    let authors: Vec<Option<PersonId>> = found.iter().map(|f| f.author_id).collect();
    let rows: Vec<Shown> = sqlx::query_as(
        "SELECT p.n, g.name AS group_name, t.title AS topic_title, c.seq, \
                (SELECT u.name FROM core.users u WHERE u.id = p.author_id) AS author_name, \
                CASE p.kind WHEN 'comment' THEN c.body WHEN 'topic' THEN t.title \
                     WHEN 'file' THEN f.name || E'\\n' || left(COALESCE(f.text_content, ''), 4000) \
                     ELSE pt.name || E'\\n' || pt.name_kana END AS text \
         FROM unnest($1::uuid[], $2::text[], $3::uuid[], $4::uuid[], $5::uuid[]) \
              WITH ORDINALITY AS p(id, kind, group_id, topic_id, author_id, n) \
         LEFT JOIN groups g ON g.id = p.group_id \
         LEFT JOIN topics t ON t.id = p.topic_id \
         LEFT JOIN comments c ON p.kind = 'comment' AND c.id = p.id \
         LEFT JOIN files f ON p.kind = 'file' AND f.id = p.id \
         LEFT JOIN patients pt ON p.kind = 'patient' AND pt.id = p.id",
    )
    .bind(&ids)
    .bind(&kinds)
    .bind(&groups)
    .bind(&topics)
    .bind(&authors)
    .fetch_all(conn)
    .await?;
    // Matched by position, not by row order: a row out of place cannot give a document
    // another's text.
    let mut by_position: Vec<Option<Shown>> = found.iter().map(|_| None).collect();
    for row in rows {
        let slot = usize::try_from(row.n - 1)
            .ok()
            .and_then(|i| by_position.get_mut(i));
        if let Some(slot) = slot {
            *slot = Some(row);
        }
    }
    Ok(by_position)
}

/// How many documents match (at most `cap`), by the same rules as [`find`].
pub async fn count(
    conn: &mut PgConnection,
    me: PersonId,
    scope_bit: i16,
    q: &Query,
    cap: i64,
) -> DbResult<i64> {
    let b = bound(q);
    let sql = format!("SELECT count(*) FROM ({READABLE} SELECT 1 {MATCHING} LIMIT $11) x");
    Ok(sqlx::query_scalar(&sql)
        .persistent(false)
        .bind(me)
        .bind(scope_bit)
        .bind(&b.grams)
        .bind(&b.patterns)
        .bind(&b.excluded)
        .bind(&b.kinds)
        .bind(q.group)
        .bind(q.author)
        .bind(q.from)
        .bind(q.until)
        .bind(cap)
        .fetch_one(conn)
        .await?)
}
