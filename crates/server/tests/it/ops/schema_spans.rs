//! The schema stays ready for Citus schema-based sharding (docs/scale-out.md): an association's
//! schema can live whole on one node only if nothing ties two association schemas together. No
//! foreign key, view, function, trigger or SQL statement spans two of them, and association
//! tables reference only the `core` tables that would be replicated to every node.
//!
//! Citus is not packaged by Debian, so these checks run on plain PostgreSQL: they look for what
//! Citus would refuse (or run slowly) rather than asking Citus.

use musubi_db::accounts::{self, NewUser};
use musubi_domain::audit::RequestMeta;
use musubi_domain::groups::{GroupKind, Scope};
use musubi_domain::search::SearchInput;
use musubi_domain::sessions::Viewer;
use musubi_domain::topics::NewTopic;
use musubi_domain::types::{AssociationRole, Profession};
use musubi_domain::{Actor, Services, Tenant};
use musubi_test_support::sqlcount::SqlCounter;
use musubi_test_support::{
    api_session_token, association, group_input, group_with_members, insert_member, TestDb,
};
use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// The `core` tables docs/scale-out.md makes Citus reference tables (copied to every node).
/// Association tables may have foreign keys to these and nothing else in `core`; statements on
/// an association's tables may join these (a join with any other `core` table would have to
/// ship that table to the association's node). Change this list and the document together.
const REFERENCE_TABLES: &[&str] = &[
    "associations",
    "users",
    "facilities",
    "memberships",
    "groups",
    "group_members",
];

/// Schemas a statement may name besides none at all (an association's tables are named
/// unqualified and found through `search_path`).
const ALLOWED_SCHEMAS: &[&str] = &["core", "pg_catalog", "information_schema", "pg_temp"];

/// Places in the source that name a relation through another schema or through a name chosen
/// at run time, each checked by hand: (file, what was found, why it is fine). Every finding
/// must match one, and every one must still match a finding.
const EXCEPTIONS: &[(&str, &str, &str)] = &[
    (
        "crates/db/src/roles.rs",
        "{s}.{name}",
        "adopt_tenant gives one association's objects to that association's role, one schema \
         per statement, on the login role's connection (migrations, association creation)",
    ),
    (
        "crates/db/src/migrate.rs",
        "{}.schema_migrations",
        "the migration runner reads one association's ledger on the login role's connection",
    ),
    (
        "crates/db/src/migrate.rs",
        "FROM {table}",
        "the same ledger, named just above",
    ),
    (
        "crates/db/src/audit.rs",
        "FROM {}",
        "Log::table(): `audit_log` unqualified (the tenant's, by search_path) or \
         `core.platform_audit_log`",
    ),
    (
        "crates/db/src/audit.rs",
        "INTO {}",
        "Log::table(), as above",
    ),
    (
        "crates/db/src/audit.rs",
        "FROM {table}",
        "Log::table(), as above",
    ),
    (
        "crates/db/src/audit.rs",
        "INTO {table}",
        "Log::table(), as above (one record appended in one statement)",
    ),
    (
        "crates/db/src/groups/comments.rs",
        "FROM {table}",
        "receipt_table(): `footprints` or `acknowledgements`, unqualified",
    ),
    (
        "crates/db/src/groups/patients.rs",
        "FROM {from}",
        "list_statement(): `patients`, or a subquery over the unqualified `patients`",
    ),
    (
        "crates/server/src/backup.rs",
        "{}.",
        "`musubi backup` and `musubi restore` copy one table of one schema (core or one \
         association's) per statement, as the login role",
    ),
    (
        "crates/server/src/backup.rs",
        "FROM {table}",
        "backup: one association's ledger or files table, named just above",
    ),
    (
        "crates/server/src/backup.rs",
        "FROM {name}",
        "restore: empties one archived table at a time",
    ),
    (
        "crates/server/src/backup.rs",
        "FROM {}",
        "restore: reads back one loaded table at a time",
    ),
    (
        "crates/server/src/backup.rs",
        "COPY {}",
        "restore: loads one archived table at a time",
    ),
    (
        "crates/bench/src/generate/load.rs",
        "{schema}.",
        "the benchmark's bulk loader (not the product) COPYs into one association's tables per \
         statement, as the login role",
    ),
    (
        "crates/bench/src/generate/copy.rs",
        "COPY {target}",
        "the loader's COPY; load.rs names the target, one association's table",
    ),
    (
        "crates/bench/src/generate.rs",
        "\"{schema}\".{t}",
        "the generator's one VACUUM (ANALYZE) over every table it loaded: maintenance, no rows \
         move between schemas",
    ),
    (
        "crates/bench/src/generate.rs",
        "ANALYZE {}",
        "that VACUUM's list of tables",
    ),
];

/// Keywords after which a name is a relation.
const RELATION_POSITION: &[&str] = &[
    "FROM",
    "JOIN",
    "INTO",
    "UPDATE",
    "TABLE",
    "REFERENCES",
    "USING",
    "TRUNCATE",
    "COPY",
    "VACUUM",
    "ANALYZE",
    "VIEW",
    "FUNCTION",
    "SEQUENCE",
    "ONLY",
];

/// Words before `FROM` that make it part of an expression (`IS DISTINCT FROM a.b`,
/// `extract(epoch FROM a.b)`, `trim(BOTH FROM a.b)`), not a relation list.
const FROM_IN_EXPRESSION: &[&str] = &[
    "DISTINCT", "EPOCH", "DAY", "MONTH", "YEAR", "HOUR", "MINUTE", "SECOND", "DOW", "ISODOW",
    "WEEK", "BOTH", "LEADING", "TRAILING",
];

/// Words that make a string SQL (the source writes SQL keywords in capitals).
const SQL_WORDS: &[&str] = &[
    "SELECT", "INSERT", "UPDATE", "DELETE", "CREATE", "ALTER", "DROP", "GRANT", "REVOKE", "COPY",
    "VACUUM", "ANALYZE", "TRUNCATE",
];

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

// ---------------------------------------------------------------------------------------------
// Reading SQL out of the source
// ---------------------------------------------------------------------------------------------

/// The string literals of Rust source with their first line, decoded as far as SQL needs
/// (`\"`, `\\`, `\n`, `\t`, line continuations); comments and character literals skipped.
fn rust_literals(src: &str) -> Vec<(usize, String)> {
    let b: Vec<char> = src.chars().collect();
    let ident = |c: char| c.is_alphanumeric() || c == '_';
    let mut out = Vec::new();
    let (mut i, mut line) = (0, 1);
    while i < b.len() {
        match b[i] {
            '\n' => {
                line += 1;
                i += 1;
            }
            '/' if b.get(i + 1) == Some(&'/') => {
                while i < b.len() && b[i] != '\n' {
                    i += 1;
                }
            }
            '/' if b.get(i + 1) == Some(&'*') => {
                let mut depth = 0;
                while i < b.len() {
                    if b[i] == '/' && b.get(i + 1) == Some(&'*') {
                        depth += 1;
                        i += 2;
                    } else if b[i] == '*' && b.get(i + 1) == Some(&'/') {
                        depth -= 1;
                        i += 2;
                        if depth == 0 {
                            break;
                        }
                    } else {
                        line += usize::from(b[i] == '\n');
                        i += 1;
                    }
                }
            }
            '\'' => {
                if b.get(i + 1) == Some(&'\\') {
                    // '\n', '\'', '\u{…}': the closing quote comes after the escaped character.
                    i += 3;
                    while i < b.len() && b[i] != '\'' {
                        i += 1;
                    }
                    i += 1;
                } else if b.get(i + 2) == Some(&'\'') {
                    i += 3;
                } else {
                    i += 1; // a lifetime
                }
            }
            'r' if i == 0
                || !ident(b[i - 1])
                || (b[i - 1] == 'b' && (i < 2 || !ident(b[i - 2]))) =>
            {
                let mut j = i + 1;
                while b.get(j) == Some(&'#') {
                    j += 1;
                }
                if b.get(j) != Some(&'"') {
                    i += 1;
                    continue;
                }
                let hashes = j - i - 1;
                let start = j + 1;
                let mut k = start;
                let end = loop {
                    if k >= b.len() {
                        break b.len();
                    }
                    if b[k] == '"' && (1..=hashes).all(|h| b.get(k + h) == Some(&'#')) {
                        break k;
                    }
                    k += 1;
                };
                let text: String = b[start..end].iter().collect();
                let first = line;
                line += text.matches('\n').count();
                out.push((first, text));
                i = end + 1 + hashes;
            }
            '"' => {
                let first = line;
                let mut text = String::new();
                i += 1;
                while i < b.len() && b[i] != '"' {
                    if b[i] == '\\' {
                        match b.get(i + 1) {
                            Some('\n') => {
                                i += 1;
                                while i < b.len() && b[i].is_whitespace() {
                                    line += usize::from(b[i] == '\n');
                                    i += 1;
                                }
                                continue;
                            }
                            Some('n') => text.push('\n'),
                            Some('t') => text.push('\t'),
                            Some('"') => text.push('"'),
                            Some('\\') => text.push('\\'),
                            Some(c) => {
                                text.push('\\');
                                text.push(*c);
                            }
                            None => {}
                        }
                        i += 2;
                        continue;
                    }
                    line += usize::from(b[i] == '\n');
                    text.push(b[i]);
                    i += 1;
                }
                out.push((first, text));
                i += 1;
            }
            _ => i += 1,
        }
    }
    out
}

/// SQL text without its `--` comments.
fn without_sql_comments(sql: &str) -> String {
    sql.lines()
        .map(|l| l.split_once("--").map_or(l, |(code, _)| code))
        .collect::<Vec<_>>()
        .join("\n")
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Tok {
    Word(String),
    /// A `format!` placeholder, `{…}`.
    Hole(String),
    /// A double-quoted identifier, `"…"`.
    Quoted(String),
    Dot,
    Other(char),
}

/// Tokens with whether whitespace came before each.
fn tokens(text: &str) -> Vec<(Tok, bool)> {
    let c: Vec<char> = text.chars().collect();
    let mut out = Vec::new();
    let (mut i, mut space) = (0, false);
    while i < c.len() {
        let ch = c[i];
        if ch.is_whitespace() {
            space = true;
            i += 1;
            continue;
        }
        let start = i;
        let tok = if ch.is_ascii_alphabetic() || ch == '_' {
            while i < c.len() && (c[i].is_ascii_alphanumeric() || c[i] == '_' || c[i] == '$') {
                i += 1;
            }
            Tok::Word(c[start..i].iter().collect())
        } else if ch == '{'
            && c[i + 1..]
                .iter()
                .take_while(|x| **x != '}')
                .all(|x| x.is_ascii_alphanumeric() || *x == '_' || *x == ':' || *x == '?')
            && c[i + 1..].contains(&'}')
        {
            while c[i] != '}' {
                i += 1;
            }
            i += 1;
            Tok::Hole(c[start..i].iter().collect())
        } else if ch == '"' {
            i += 1;
            while i < c.len() && c[i] != '"' {
                i += 1;
            }
            i += 1;
            Tok::Quoted(c[start..i.min(c.len())].iter().collect())
        } else if ch == '.' {
            i += 1;
            Tok::Dot
        } else {
            i += 1;
            Tok::Other(ch)
        };
        out.push((tok, space));
        space = false;
    }
    out
}

fn text_of(t: &Tok) -> String {
    match t {
        Tok::Word(s) | Tok::Hole(s) | Tok::Quoted(s) => s.clone(),
        Tok::Dot => ".".into(),
        Tok::Other(c) => c.to_string(),
    }
}

/// Where `text` (SQL, or a Rust string that may hold SQL) names a relation through a schema
/// other than [`ALLOWED_SCHEMAS`], or through a name chosen at run time: (what, why).
/// `known` holds the names the migrations create, so `x.topics` is caught wherever it stands.
fn qualified_names(text: &str, known: &HashSet<String>) -> Vec<(String, &'static str)> {
    let toks = tokens(text);
    let sqlish = toks
        .iter()
        .any(|(t, _)| matches!(t, Tok::Word(w) if SQL_WORDS.contains(&w.as_str())));
    let words_before = |k: usize| -> Vec<&str> {
        toks[..k]
            .iter()
            .rev()
            .filter_map(|(t, _)| match t {
                Tok::Word(w) => Some(w.as_str()),
                _ => None,
            })
            .take(3)
            .collect()
    };
    let relation_position = |w: &[&str]| {
        let p = w.first().copied().unwrap_or("");
        let in_list = RELATION_POSITION.contains(&p)
            && !(p == "FROM"
                && w.get(1)
                    .is_some_and(|q| FROM_IN_EXPRESSION.contains(&q.to_uppercase().as_str())));
        in_list || (p == "ON" && w.get(2) == Some(&"INDEX"))
    };
    let hole_inside = |s: &str| s.starts_with("\"{") && s.ends_with("}\"");
    let mut out = Vec::new();
    for k in 0..toks.len() {
        let (tok, _) = &toks[k];
        let before_dot = k > 0 && toks[k - 1].0 == Tok::Dot;
        let dotted = matches!(toks.get(k + 1), Some((Tok::Dot, false)))
            && matches!(
                toks.get(k + 2),
                Some((Tok::Word(_) | Tok::Hole(_) | Tok::Quoted(_), false))
            );
        if dotted && !before_dot {
            let name = &toks[k + 2].0;
            let found = format!("{}.{}", text_of(tok), text_of(name));
            let name_known = matches!(name, Tok::Word(n) if known.contains(&n.to_lowercase()))
                || matches!(name, Tok::Quoted(n) if known.contains(n.trim_matches('"')));
            let name_hole = matches!(name, Tok::Hole(_));
            let w = words_before(k);
            let why = match tok {
                Tok::Word(q) if ALLOWED_SCHEMAS.contains(&q.as_str()) => None,
                Tok::Word(q) if q.starts_with("assoc_") || q == "public" => {
                    Some("names a schema other than core")
                }
                Tok::Word(_) if relation_position(&w) => Some("qualifies a relation"),
                Tok::Quoted(_) if name_hole || name_known || sqlish => {
                    Some("qualifies with a quoted schema")
                }
                Tok::Hole(_) if name_known || (sqlish && (name_hole || relation_position(&w))) => {
                    Some("qualifies with a schema chosen at run time")
                }
                _ => None,
            };
            if let Some(why) = why {
                out.push((found, why));
            }
            continue;
        }
        // A whole relation name chosen at run time: `FROM {table}`.
        let hole = matches!(tok, Tok::Hole(_)) || matches!(tok, Tok::Quoted(q) if hole_inside(q));
        let w = words_before(k);
        // Right after the keyword (`VACUUM (ANALYZE) {tables}` too), not inside a column list
        // or a subquery that follows it.
        let after_keyword = match k.checked_sub(1).map(|j| &toks[j].0) {
            Some(Tok::Word(p)) => w.first() == Some(&p.as_str()),
            Some(Tok::Other(')')) => w.first() == Some(&"ANALYZE"),
            _ => false,
        };
        if sqlish
            && hole
            && !before_dot
            && after_keyword
            && !matches!(toks.get(k + 1), Some((Tok::Dot, false)))
            && relation_position(&w)
        {
            out.push((
                format!("{} {}", w[0], text_of(tok)),
                "names a relation chosen at run time",
            ));
        }
    }
    out
}

/// The relations, indexes and functions the migrations create, lower case.
fn created_names(dirs: &[&str]) -> HashSet<String> {
    let mut known: HashSet<String> = ["schema_migrations".to_owned()].into();
    for dir in dirs {
        for path in sql_files(&workspace().join(dir)) {
            let sql = without_sql_comments(&std::fs::read_to_string(&path).unwrap());
            let words: Vec<&str> = sql
                .split(|c: char| c.is_whitespace() || c == '(' || c == ';')
                .filter(|w| !w.is_empty())
                .collect();
            for (i, w) in words.iter().enumerate() {
                if *w != "CREATE" {
                    continue;
                }
                let mut j = i + 1;
                while matches!(words.get(j), Some(&"UNIQUE" | &"OR" | &"REPLACE")) {
                    j += 1;
                }
                let kinds = ["TABLE", "INDEX", "VIEW", "FUNCTION", "SEQUENCE", "TRIGGER"];
                if !words.get(j).is_some_and(|k| kinds.contains(k)) {
                    continue;
                }
                j += 1;
                if words.get(j) == Some(&"IF") {
                    j += 3;
                }
                if let Some(name) = words.get(j) {
                    let name = name.strip_prefix("core.").unwrap_or(name);
                    known.insert(name.to_lowercase());
                }
            }
        }
    }
    known
}

/// The tables each association's schema has (from the tenant migrations).
fn tenant_tables() -> HashSet<String> {
    let mut tables = HashSet::from(["schema_migrations".to_owned()]);
    for path in sql_files(&workspace().join("migrations/tenant")) {
        let sql = without_sql_comments(&std::fs::read_to_string(&path).unwrap());
        let mut words = sql.split_whitespace();
        while let Some(w) = words.next() {
            if w == "TABLE" {
                if let Some(name) = words.next() {
                    let name = name.trim_end_matches(['(', ';']);
                    if !name.contains('.')
                        && name.chars().all(|c| c.is_ascii_lowercase() || c == '_')
                    {
                        tables.insert(name.to_owned());
                    }
                }
            }
        }
    }
    tables
}

fn sql_files(dir: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("read {}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "sql"))
        .collect();
    files.sort();
    files
}

/// Every `.rs` file under `dir`, except `tests` directories (integration tests reach across
/// associations on purpose, to show that it is refused) and build output.
fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        if path.is_dir() {
            if !matches!(name.as_str(), "tests" | "target" | "node_modules" | ".git") {
                rust_files(&path, out);
            }
        } else if name.ends_with(".rs") {
            out.push(path);
        }
    }
}

#[derive(Debug)]
struct Finding {
    file: String,
    line: usize,
    found: String,
    why: &'static str,
}

/// Every qualified or run-time relation name in the source and the migrations.
fn source_findings() -> Vec<Finding> {
    let root = workspace();
    let known = created_names(&["migrations/core", "migrations/tenant"]);
    let mut files = Vec::new();
    rust_files(&root.join("crates"), &mut files);
    rust_files(&root.join("xtask"), &mut files);
    files.sort();
    assert!(
        files.len() > 100,
        "the scan should see the whole source: {}",
        files.len()
    );
    let mut out = Vec::new();
    let relative = |p: &Path| {
        p.strip_prefix(&root)
            .unwrap()
            .to_string_lossy()
            .replace('\\', "/")
    };
    for path in &files {
        let src = std::fs::read_to_string(path).unwrap();
        for (line, text) in rust_literals(&src) {
            for (found, why) in qualified_names(&text, &known) {
                out.push(Finding {
                    file: relative(path),
                    line,
                    found,
                    why,
                });
            }
        }
    }
    for dir in ["migrations/core", "migrations/tenant"] {
        for path in sql_files(&root.join(dir)) {
            let sql = without_sql_comments(&std::fs::read_to_string(&path).unwrap());
            for (found, why) in qualified_names(&sql, &known) {
                out.push(Finding {
                    file: relative(&path),
                    line: 0,
                    found,
                    why,
                });
            }
        }
    }
    out
}

#[test]
fn the_scanner_finds_names_qualified_by_another_schema_or_chosen_at_run_time() {
    let known = created_names(&["migrations/core", "migrations/tenant"]);
    let found = |sql: &str| -> Vec<String> {
        qualified_names(sql, &known)
            .into_iter()
            .map(|(f, _)| f)
            .collect()
    };
    // What must be caught.
    for (sql, what) in [
        ("SELECT * FROM {schema}.topics", "{schema}.topics"),
        (
            "SELECT 1 FROM topics t JOIN \"{other}\".comments c ON c.topic_id = t.id",
            "\"{other}\".comments",
        ),
        (
            "UPDATE assoc_0123.unread SET count = 0",
            "assoc_0123.unread",
        ),
        ("SELECT * FROM public.anything", "public.anything"),
        ("SELECT * FROM elsewhere.thing", "elsewhere.thing"),
        (
            "INSERT INTO x.footprints (comment_id) VALUES ($1)",
            "x.footprints",
        ),
        ("CREATE INDEX i ON {s}.search_docs (at)", "{s}.search_docs"),
        ("SELECT count(*) FROM {table}", "FROM {table}"),
        ("VACUUM (ANALYZE) {}", "ANALYZE {}"),
        ("ALTER {kind} {s}.{name} OWNER TO {r}", "{s}.{name}"),
        (
            "CREATE VIEW peek AS SELECT * FROM \"assoc_ab\".topics",
            "\"assoc_ab\".topics",
        ),
    ] {
        assert!(
            found(sql).iter().any(|f| f == what),
            "{sql:?}: {:?}",
            found(sql)
        );
    }
    // What must not be: `core`, aliases, expressions, text that is not SQL.
    for sql in [
        "SELECT u.name FROM core.users u JOIN topics t ON t.author_id = u.id",
        "SELECT a.at IS DISTINCT FROM b.at FROM audit_log a, audit_log b",
        "SELECT extract(epoch FROM c.created_at) FROM comments c",
        "SELECT pg_advisory_xact_lock($1, hashtext(coalesce(current_schema(), '') || '.audit_log'))",
        "SELECT core.scope_bit(u.doctor_kind) FROM core.users u",
        "{key}.p",
        "/static/app.{}.css",
        "SELECT relname FROM pg_catalog.pg_class",
        "INSERT INTO audit_log ({COLUMNS}) SELECT 1",
        "SELECT * FROM ({COMMENT_SELECT} WHERE c.topic_id = $1) x",
    ] {
        assert!(found(sql).is_empty(), "{sql:?}: {:?}", found(sql));
    }
    // Literals are read out of Rust as the compiler would.
    let lits = rust_literals(
        "let c = '\"'; let l: &'a str = r#\"SELECT \"x\".y\"#; // \"FROM a.topics\"\n\
         let s = \"SELECT 1 \\\n     FROM {t}.topics\";",
    );
    let texts: Vec<&str> = lits.iter().map(|(_, t)| t.as_str()).collect();
    assert_eq!(texts, ["SELECT \"x\".y", "SELECT 1 FROM {t}.topics"]);
    assert_eq!(lits[1].0, 2, "line numbers follow the source");
}

#[test]
fn no_sql_in_the_source_qualifies_a_relation_with_another_schema_than_core() {
    let findings = source_findings();
    let mut unexplained = Vec::new();
    let mut used = vec![false; EXCEPTIONS.len()];
    for f in &findings {
        match EXCEPTIONS
            .iter()
            .position(|(file, what, _)| f.file == *file && f.found.contains(what))
        {
            Some(i) => used[i] = true,
            None => unexplained.push(f),
        }
    }
    assert!(
        unexplained.is_empty(),
        "SQL must name an association's tables unqualified (the connection's search_path finds \
         them) and `core` tables as core.<table>; a statement that names another schema may \
         span two associations, which Citus cannot run on one node (docs/scale-out.md). \
         Rewrite it, or, if it is a migration or maintenance statement that touches one \
         association at a time, add it to EXCEPTIONS with the reason:\n{}",
        unexplained
            .iter()
            .map(|f| format!("  {}:{}: {} ({})", f.file, f.line, f.found, f.why))
            .collect::<Vec<_>>()
            .join("\n")
    );
    let stale: Vec<_> = EXCEPTIONS
        .iter()
        .zip(&used)
        .filter(|(_, u)| !**u)
        .map(|((file, what, _), _)| format!("  {file}: {what}"))
        .collect();
    assert!(
        stale.is_empty(),
        "exceptions that no longer match anything; remove them:\n{}",
        stale.join("\n")
    );
}

// ---------------------------------------------------------------------------------------------
// The database's own objects
// ---------------------------------------------------------------------------------------------

/// A database with two associations, and their schemas.
async fn two_associations() -> (TestDb, BTreeSet<String>) {
    let db = TestDb::new().await;
    let op = db.operator().await;
    for (slug, name) in [("alpha", "アルファ医師会"), ("beta", "ベータ医師会")] {
        op.create_association(&association(slug, name))
            .await
            .unwrap();
    }
    let schemas: Vec<String> = sqlx::query_scalar("SELECT schema_name FROM core.associations")
        .fetch_all(db.db.pool())
        .await
        .unwrap();
    assert_eq!(schemas.len(), 2);
    (db, schemas.into_iter().collect())
}

#[tokio::test]
async fn no_foreign_key_spans_two_association_schemas_and_core_is_referenced_only_where_replicated()
{
    let (db, assoc) = two_associations().await;
    let mut conn = db.admin().await;
    let fks: Vec<(String, String, String, String, String)> = sqlx::query_as(
        "SELECT con.conname::text, sn.nspname::text, sc.relname::text, \
                tn.nspname::text, tc.relname::text \
         FROM pg_constraint con \
         JOIN pg_class sc ON sc.oid = con.conrelid \
         JOIN pg_namespace sn ON sn.oid = sc.relnamespace \
         JOIN pg_class tc ON tc.oid = con.confrelid \
         JOIN pg_namespace tn ON tn.oid = tc.relnamespace \
         WHERE con.contype = 'f' \
         ORDER BY 2, 3, 1",
    )
    .fetch_all(&mut conn)
    .await
    .unwrap();
    let reference = |t: &str| REFERENCE_TABLES.contains(&t);
    let mut wrong = Vec::new();
    let mut to_core = BTreeSet::new();
    let mut inside: BTreeMap<&str, usize> = BTreeMap::new();
    for (name, from_schema, from, to_schema, to) in &fks {
        let fk = format!("{from_schema}.{from} → {to_schema}.{to} ({name})");
        let (from_assoc, to_assoc) = (assoc.contains(from_schema), assoc.contains(to_schema));
        if from_assoc && from_schema == to_schema {
            *inside.entry(from_schema.as_str()).or_default() += 1;
        } else if from_assoc && to_assoc {
            wrong.push(format!(
                "{fk}: spans two association schemas, which Citus may place on different nodes"
            ));
        } else if to_assoc {
            wrong.push(format!(
                "{fk}: points into an association's schema from outside it; Citus refuses \
                 foreign keys to a distributed schema from another schema"
            ));
        } else if from_assoc && to_schema == "core" && !reference(to) {
            wrong.push(format!(
                "{fk}: core.{to} is not a reference table; Citus allows foreign keys from a \
                 distributed schema only to reference tables. Make it one (REFERENCE_TABLES \
                 here and docs/scale-out.md) or drop the foreign key"
            ));
        } else if from_assoc && to_schema != "core" {
            wrong.push(format!("{fk}: points outside core and its own schema"));
        } else if from_assoc {
            to_core.insert(to.clone());
        } else if from_schema == "core" && reference(from) && !reference(to) {
            wrong.push(format!(
                "{fk}: a reference table (copied to every node) may only reference reference \
                 tables; make core.{to} one too, or core.{from} stays on the coordinator"
            ));
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
    // The query sees each association's own foreign keys (topics → groups, …).
    for schema in &assoc {
        assert!(
            inside.get(schema.as_str()).is_some_and(|n| *n >= 10),
            "{schema}: {inside:?}"
        );
    }
    let existing: Vec<String> = sqlx::query_scalar(
        "SELECT relname::text FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace \
         WHERE n.nspname = 'core' AND c.relkind = 'r' AND relname = ANY($1)",
    )
    .bind(REFERENCE_TABLES.to_vec())
    .fetch_all(&mut conn)
    .await
    .unwrap();
    assert_eq!(
        existing.len(),
        REFERENCE_TABLES.len(),
        "every reference table exists in core: {existing:?}"
    );
    eprintln!("foreign keys from association schemas to core: {to_core:?}");
}

#[tokio::test]
async fn no_view_function_trigger_or_default_of_an_association_reaches_another() {
    let (db, assoc) = two_associations().await;
    let mut conn = db.admin().await;
    // Every recorded dependency between objects of two schemas: views (their rewrite rules),
    // triggers and their functions, column defaults and their sequences, constraints, types.
    let deps: Vec<(String, String, String, String)> = sqlx::query_as(
        "WITH obj (classid, objid, nsp) AS ( \
             SELECT 'pg_class'::regclass, c.oid, c.relnamespace FROM pg_class c \
             UNION ALL SELECT 'pg_proc'::regclass, p.oid, p.pronamespace FROM pg_proc p \
             UNION ALL SELECT 'pg_type'::regclass, t.oid, t.typnamespace FROM pg_type t \
             UNION ALL SELECT 'pg_constraint'::regclass, k.oid, k.connamespace FROM pg_constraint k \
             UNION ALL SELECT 'pg_rewrite'::regclass, r.oid, c.relnamespace \
                       FROM pg_rewrite r JOIN pg_class c ON c.oid = r.ev_class \
             UNION ALL SELECT 'pg_trigger'::regclass, g.oid, c.relnamespace \
                       FROM pg_trigger g JOIN pg_class c ON c.oid = g.tgrelid \
             UNION ALL SELECT 'pg_attrdef'::regclass, a.oid, c.relnamespace \
                       FROM pg_attrdef a JOIN pg_class c ON c.oid = a.adrelid) \
         SELECT dn.nspname::text, pg_describe_object(d.classid, d.objid, d.objsubid), \
                rn.nspname::text, pg_describe_object(d.refclassid, d.refobjid, d.refobjsubid) \
         FROM pg_depend d \
         JOIN obj o ON o.classid = d.classid AND o.objid = d.objid \
         JOIN obj r ON r.classid = d.refclassid AND r.objid = d.refobjid \
         JOIN pg_namespace dn ON dn.oid = o.nsp \
         JOIN pg_namespace rn ON rn.oid = r.nsp \
         WHERE dn.nspname = 'core' OR dn.nspname = ANY($1)",
    )
    .bind(assoc.iter().cloned().collect::<Vec<String>>())
    .fetch_all(&mut conn)
    .await
    .unwrap();
    let mut wrong = Vec::new();
    for (schema, object, ref_schema, referenced) in &deps {
        let reaches = assoc.contains(ref_schema) && ref_schema != schema;
        if reaches {
            wrong.push(format!(
                "{object} (in {schema}) depends on {referenced} (in {ref_schema})"
            ));
        }
    }
    // The dependencies are seen: each schema's append-only triggers on its own guard function.
    for schema in &assoc {
        assert!(
            deps.iter().any(|(s, o, r, f)| s == schema
                && r == schema
                && o.contains("audit_log_append_only")
                && f.contains("audit_log_guard")),
            "{schema}: the trigger's dependency on its function is not seen"
        );
    }

    // Function bodies (PL/pgSQL is not tracked by pg_depend) and view texts, as text.
    let bodies: Vec<(String, String, String)> = sqlx::query_as(
        "SELECT n.nspname::text, p.oid::regprocedure::text, coalesce(p.prosrc, '') \
         FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace \
         WHERE n.nspname = 'core' OR n.nspname = ANY($1) \
         UNION ALL \
         SELECT schemaname::text, 'view ' || viewname::text, coalesce(definition, '') \
         FROM pg_views WHERE schemaname = 'core' OR schemaname = ANY($1) \
         UNION ALL \
         SELECT schemaname::text, 'materialized view ' || matviewname::text, \
                coalesce(definition, '') \
         FROM pg_matviews WHERE schemaname = 'core' OR schemaname = ANY($1)",
    )
    .bind(assoc.iter().cloned().collect::<Vec<String>>())
    .fetch_all(&mut conn)
    .await
    .unwrap();
    assert!(
        bodies
            .iter()
            .filter(|(s, o, _)| assoc.contains(s) && o.contains("audit_log_guard"))
            .count()
            == assoc.len(),
        "each association's functions are read"
    );
    for (schema, object, body) in &bodies {
        let body = body.to_lowercase();
        for other in assoc.iter().filter(|o| *o != schema) {
            if body.contains(other.as_str()) {
                wrong.push(format!("{object} (in {schema}) names {other}"));
            }
        }
    }
    assert!(
        wrong.is_empty(),
        "an association's schema must not depend on another's (Citus may place them on \
         different nodes), nor core on any:\n{}",
        wrong.join("\n")
    );
}

// ---------------------------------------------------------------------------------------------
// The statements of a request that reads across associations
// ---------------------------------------------------------------------------------------------

fn client() -> RequestMeta {
    RequestMeta::new("192.0.2.30", "schema-spans-test")
}

async fn person(db: &TestDb, s: &Services, tenant: &Tenant, key: &str) -> Viewer {
    let id = insert_member(
        &db.db,
        tenant.id,
        &NewUser {
            email: &format!("{key}@spans.example"),
            name: key,
            name_kana: key,
            profession: Profession::Nurse,
            doctor_kind: None,
            password_hash: None,
        },
    )
    .await;
    let token = api_session_token(&db.db, id, "192.0.2.30").await;
    s.authenticate(&token).await.unwrap().unwrap()
}

/// The association schemas `sql` names (`assoc_` and 32 hex digits).
fn schemas_named(sql: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    let mut rest = sql;
    while let Some(i) = rest.find("assoc_") {
        let tail = &rest[i + 6..];
        let hex: String = tail.chars().take_while(char::is_ascii_hexdigit).collect();
        if hex.len() == 32 {
            out.insert(format!("assoc_{hex}"));
        }
        rest = tail;
    }
    out
}

/// The `core` tables `sql` names (not functions such as `core.scope_bit(…)`), and whether it
/// names an association's table (unqualified, after a relation keyword).
fn core_tables_and_tenant(sql: &str, tenant: &HashSet<String>) -> (BTreeSet<String>, bool) {
    let toks = tokens(sql);
    let mut core = BTreeSet::new();
    let mut touches_tenant = false;
    for k in 0..toks.len() {
        if let (Tok::Word(w), Some((Tok::Dot, _)), Some((Tok::Word(t), _))) =
            (&toks[k].0, toks.get(k + 1), toks.get(k + 2))
        {
            if w == "core" && !matches!(toks.get(k + 3), Some((Tok::Other('('), _))) {
                core.insert(t.clone());
            }
        }
        if let (Tok::Word(kw), Some((Tok::Word(t), _))) = (&toks[k].0, toks.get(k + 1)) {
            let qualified = matches!(toks.get(k + 2), Some((Tok::Dot, _)));
            if ["FROM", "JOIN", "INTO", "UPDATE", "USING"].contains(&kw.as_str())
                && tenant.contains(t)
                && !qualified
            {
                touches_tenant = true;
            }
        }
    }
    (core, touches_tenant)
}

#[tokio::test]
async fn a_request_across_associations_sends_statements_that_each_stay_in_one_schema() {
    let (db, assoc) = two_associations().await;
    let s = db.services().await;
    let alpha = s.resolve_tenant("alpha").await.unwrap();
    let beta = s.resolve_tenant("beta").await.unwrap();
    // A nurse of both associations, in a group hosted by each, with something unread in each.
    let nurse = person(&db, &s, &alpha, "nurse").await;
    {
        let mut conn = db.db.pool().acquire().await.unwrap();
        accounts::insert_membership(
            &mut conn,
            nurse.user().id,
            beta.id,
            AssociationRole::Member,
            None,
        )
        .await
        .unwrap();
    }
    let nurse = s
        .authenticate(&api_session_token(&db.db, nurse.user().id, "192.0.2.30").await)
        .await
        .unwrap()
        .unwrap();
    let op = db.operator().await;
    let meta = client();
    let mut topics = Vec::new();
    for (tenant, owner) in [(&alpha, "owner-a"), (&beta, "owner-b")] {
        let owner = person(&db, &s, tenant, owner).await;
        let actor = Actor::new(&owner, tenant, &meta);
        let group = group_with_members(
            &op,
            &actor,
            GroupKind::General,
            &group_input(format!("{} の連携", tenant.slug)),
            &[nurse.user().id],
        )
        .await;
        let topic = s
            .create_topic(
                &actor,
                &NewTopic {
                    group_id: group,
                    title: "訪問看護報告",
                    body: "BP 132/78、SpO2 94%、体温 36.8℃",
                    scope: Scope::EVERYONE,
                    important: false,
                },
            )
            .await
            .unwrap();
        topics.push((tenant.clone(), topic));
    }

    // Services on connections whose statements are recorded; nothing warmed, so each
    // association's connection is opened (and keyed) during the measurement.
    let counter = SqlCounter::start(&db.options).await;
    let counted_db = musubi_db::Db::connect(counter.options(), 8, Duration::from_secs(30))
        .await
        .unwrap();
    let counted = Services::build(
        counted_db,
        musubi_auth::ratelimit::RateLimiter::in_process(),
    )
    .await
    .unwrap();
    let search = SearchInput {
        text: "訪問看護",
        first: 20,
        ..SearchInput::default()
    };
    let ((home, counts, groups, found), m) = counter
        .measure(async {
            let home = counted.home(&nurse).await.unwrap();
            let counts = counted.unread_counts(&nurse).await.unwrap();
            let groups = counted.my_groups(&nurse).await.unwrap();
            let found = counted.search(&nurse, &meta, &search).await.unwrap();
            for (tenant, topic) in &topics {
                let actor = Actor::new(&nurse, tenant, &meta);
                counted.open_topic(&actor, *topic, true).await.unwrap();
                counted
                    .post_comment(&actor, *topic, "確認しました。", false)
                    .await
                    .unwrap();
            }
            (home, counts, groups, found)
        })
        .await;
    // The request path did read both associations.
    let slugs: BTreeSet<&str> = home
        .groups
        .iter()
        .map(|g| g.association_slug.as_str())
        .collect();
    assert_eq!(slugs, BTreeSet::from(["alpha", "beta"]));
    assert_eq!(counts.associations.len(), 2);
    assert_eq!(counts.total, 2);
    assert_eq!(groups.len(), 2);
    let found_in: BTreeSet<&str> = found.hits.iter().map(|h| h.association.as_str()).collect();
    assert_eq!(found_in, BTreeSet::from(["alpha", "beta"]));

    // The counter records what was executed. A statement naming a schema its role may not use
    // is refused while it is parsed and never runs (tenancy::database_roles shows that).
    let known = created_names(&["migrations/core", "migrations/tenant"]);
    let tenant = tenant_tables();
    let mut keyed = BTreeSet::new();
    let mut joined_core = BTreeSet::new();
    let mut wrong = Vec::new();
    for sql in &m.statements {
        let named = schemas_named(sql);
        if !named.is_empty() {
            // Only the broker's key names a schema: one role and its schema, nothing else.
            let schema = named.iter().next().unwrap();
            let key = format!("SET ROLE \"musubi_{schema}\"; SET search_path TO \"{schema}\"");
            if named.len() == 1 && sql.trim_end_matches(';') == key {
                keyed.insert(schema.clone());
            } else {
                wrong.push(format!("names association schemas {named:?}: {sql}"));
            }
            continue;
        }
        for (found, why) in qualified_names(sql, &known) {
            wrong.push(format!("{found} ({why}): {sql}"));
        }
        let (core, touches_tenant) = core_tables_and_tenant(sql, &tenant);
        if touches_tenant {
            for t in core {
                if !REFERENCE_TABLES.contains(&t.as_str()) {
                    wrong.push(format!(
                        "joins an association's tables with core.{t}, which is not a reference \
                         table (Citus would ship it to the association's node): {sql}"
                    ));
                }
                joined_core.insert(t);
            }
        }
    }
    assert!(
        wrong.is_empty(),
        "{} of {} statements:\n{}",
        wrong.len(),
        m.count(),
        wrong.join("\n")
    );
    assert_eq!(
        keyed,
        assoc,
        "each association was reached on a connection keyed to it alone:\n{}",
        m.listing()
    );
    eprintln!(
        "{} statements; core tables joined with association tables: {joined_core:?}",
        m.count()
    );
}
