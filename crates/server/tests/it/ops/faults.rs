//! Faults against real processes: `musubi serve` killed with SIGKILL under a write load, its
//! PostgreSQL restarted under it, its Redis stopped under it. What a client saw acknowledged
//! must survive, and nothing may be left half-written. See docs/operations.md, "Surviving faults".

use musubi_demo::DEMO_PASSWORD;
use musubi_domain::audit::RequestMeta;
use musubi_domain::groups::{GroupKind, Scope};
use musubi_domain::operator::Operator;
use musubi_domain::sessions::SessionKind;
use musubi_domain::topics::NewTopic;
use musubi_domain::Actor;
use musubi_test_support::demo::{CLINIC_DOCTOR, HOST, NURSE};
use musubi_test_support::{group_input, group_with_members, TestDb};
use serde_json::{json, Value};
use sqlx::{Connection, PgConnection};
use std::collections::{BTreeMap, HashSet};
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const POST: &str = "mutation($t: ID!, $b: String!) { postComment(topicId: $t, body: $b) }";
/// Longer than any answer may take: a request still open after it counts as a hang.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

// ---------------------------------------------------------------------------------------------
// Processes and requests

/// A running `musubi serve`; killed when dropped.
pub(super) struct Server {
    child: Child,
    pub(super) addr: String,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Server {
    pub(super) fn start(
        database_url: &str,
        data: &std::path::Path,
        extra: &[(&str, &str)],
    ) -> Self {
        Self::start_bin(crate::MUSUBI_BIN, database_url, data, extra)
    }

    /// [`Server::start`] with another build of `musubi` (the previous release).
    pub(super) fn start_bin(
        bin: &str,
        database_url: &str,
        data: &std::path::Path,
        extra: &[(&str, &str)],
    ) -> Self {
        let mut cmd = Command::new(bin);
        cmd.args(["serve", "--listen", "127.0.0.1:0"])
            .env_remove("MUSUBI_CONFIG")
            .env_remove("MUSUBI_LISTEN")
            .env_remove("REDIS_URL")
            .env("DATABASE_URL", database_url)
            .env("MUSUBI_DATA_DIR", data)
            .env("MUSUBI_LOG", "error")
            // The load comes from one session as fast as it can: fair use must not refuse it.
            .env("MUSUBI_FAIR_SESSION_PER_MINUTE", "10000000")
            .env("MUSUBI_FAIR_PERSON_PER_MINUTE", "10000000")
            .env("MUSUBI_FAIR_ANONYMOUS_PER_MINUTE", "10000000")
            .env("MUSUBI_FAIR_SESSION_IN_FLIGHT", "4")
            .env("MUSUBI_MAX_IN_FLIGHT", "1000")
            .env("MUSUBI_ASSOCIATION_IN_FLIGHT", "1000")
            .envs(extra.iter().copied());
        Self::spawn(cmd)
    }

    /// Runs `cmd` (a `musubi` that serves) and waits for the line announcing its URL.
    pub(super) fn spawn(mut cmd: Command) -> Self {
        cmd.stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit());
        let mut child = cmd.spawn().unwrap();
        let stdout = child.stdout.take().unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if let Some(rest) = line.strip_prefix("Musubi is running at ") {
                    let url = rest.split_whitespace().next().unwrap_or_default();
                    let _ = tx.send(
                        url.trim_start_matches("http://")
                            .trim_end_matches('/')
                            .to_owned(),
                    );
                }
            }
        });
        match rx.recv_timeout(Duration::from_secs(120)) {
            Ok(addr) => Server { child, addr },
            Err(_) => {
                let _ = child.kill();
                panic!("musubi did not announce its URL");
            }
        }
    }

    pub(super) fn sigkill(mut self) {
        self.child.kill().unwrap(); // SIGKILL
        self.child.wait().unwrap();
    }

    pub(super) fn assert_running(&mut self) {
        if let Some(status) = self.child.try_wait().unwrap() {
            panic!("musubi exited under the fault: {status}");
        }
    }
}

/// One HTTP/1.1 exchange; `Err` when the connection failed (a killed server, say).
pub(super) async fn http(
    addr: &str,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &str,
) -> std::io::Result<(u16, String)> {
    let exchange = async {
        let mut s = tokio::net::TcpStream::connect(addr).await?;
        let mut request = format!("{method} {path} HTTP/1.1\r\nHost: {addr}\r\n");
        for (k, v) in headers {
            request.push_str(&format!("{k}: {v}\r\n"));
        }
        request.push_str(&format!(
            "Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        ));
        s.write_all(request.as_bytes()).await?;
        let mut raw = Vec::new();
        s.read_to_end(&mut raw).await?;
        Ok::<_, std::io::Error>(raw)
    };
    let raw = tokio::time::timeout(REQUEST_TIMEOUT, exchange)
        .await
        .unwrap_or_else(|_| panic!("{method} {path} hung for {REQUEST_TIMEOUT:?}"))?;
    let text = String::from_utf8_lossy(&raw).into_owned();
    let Some((head, body)) = text.split_once("\r\n\r\n") else {
        return Err(std::io::Error::other(format!("cut-off answer: {text:?}")));
    };
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| std::io::Error::other(format!("no status: {head:?}")))?;
    let body = if head
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked")
    {
        dechunk(body)
    } else {
        body.to_owned()
    };
    Ok((status, body))
}

fn dechunk(mut s: &str) -> String {
    let mut out = String::new();
    while let Some((size, rest)) = s.split_once("\r\n") {
        let n = usize::from_str_radix(size.trim(), 16).unwrap_or(0);
        if n == 0 || rest.len() < n {
            break;
        }
        out.push_str(&rest[..n]);
        s = rest.get(n + 2..).unwrap_or("");
    }
    out
}

/// How one `postComment` ended.
#[derive(Debug)]
pub(super) enum Outcome {
    /// HTTP 200 with the new comment's id: acknowledged.
    Posted(String),
    /// An answer without an id: its HTTP status and error codes.
    Refused(u16, Vec<String>),
    /// No answer: the connection failed.
    Unreachable,
}

pub(super) async fn post_comment(addr: &str, token: &str, topic: &str, body: &str) -> Outcome {
    let payload = json!({"query": POST, "variables": {"t": topic, "b": body}}).to_string();
    let auth = format!("Bearer {token}");
    let headers = [
        ("Content-Type", "application/json"),
        ("Authorization", auth.as_str()),
        ("Musubi-Association", HOST),
    ];
    let Ok((status, text)) = http(addr, "POST", "/graphql", &headers, &payload).await else {
        return Outcome::Unreachable;
    };
    let json: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
    match json["data"]["postComment"].as_str() {
        Some(id) if status == 200 && json["errors"].is_null() => Outcome::Posted(id.to_owned()),
        _ => Outcome::Refused(status, musubi_test_support::error_codes(&json)),
    }
}

pub(super) async fn readyz(addr: &str) -> Option<(u16, String)> {
    http(addr, "GET", "/readyz", &[], "").await.ok()
}

/// Polls `check` until it holds; fails naming `what` after `limit`.
pub(super) async fn wait_for<F, Fut>(what: &str, limit: Duration, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = Instant::now() + limit;
    while !check().await {
        assert!(Instant::now() < deadline, "{what}: not within {limit:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

// ---------------------------------------------------------------------------------------------
// The load

/// Refused writes by HTTP status and error codes.
type Refusals = BTreeMap<(u16, Vec<String>), usize>;

/// Writers posting comments as fast as they can to whichever server `addr` names now.
pub(super) struct Load {
    addr: Arc<Mutex<String>>,
    stop: Arc<AtomicBool>,
    acked: Arc<Mutex<Vec<String>>>,
    refused: Arc<Mutex<Refusals>>,
    unreachable: Arc<AtomicUsize>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Load {
    pub(super) fn start(addr: &str, token: &str, topic: &str, writers: usize) -> Self {
        let mut load = Load {
            addr: Arc::new(Mutex::new(addr.to_owned())),
            stop: Arc::new(AtomicBool::new(false)),
            acked: Arc::default(),
            refused: Arc::default(),
            unreachable: Arc::default(),
            tasks: Vec::new(),
        };
        for w in 0..writers {
            let (addr, stop, acked, refused, unreachable) = (
                load.addr.clone(),
                load.stop.clone(),
                load.acked.clone(),
                load.refused.clone(),
                load.unreachable.clone(),
            );
            let (token, topic) = (token.to_owned(), topic.to_owned());
            load.tasks.push(tokio::spawn(async move {
                let mut i = 0;
                while !stop.load(Ordering::Relaxed) {
                    i += 1;
                    let to = addr.lock().unwrap().clone();
                    match post_comment(&to, &token, &topic, &format!("負荷 {w}-{i}")).await {
                        Outcome::Posted(id) => acked.lock().unwrap().push(id),
                        Outcome::Refused(status, codes) => {
                            *refused.lock().unwrap().entry((status, codes)).or_default() += 1;
                            tokio::time::sleep(Duration::from_millis(10)).await;
                        }
                        Outcome::Unreachable => {
                            unreachable.fetch_add(1, Ordering::Relaxed);
                            tokio::time::sleep(Duration::from_millis(10)).await;
                        }
                    }
                }
            }));
        }
        load
    }

    pub(super) fn acked(&self) -> usize {
        self.acked.lock().unwrap().len()
    }

    pub(super) fn refused(&self) -> usize {
        self.refused.lock().unwrap().values().sum()
    }

    pub(super) fn retarget(&self, addr: &str) {
        *self.addr.lock().unwrap() = addr.to_owned();
    }

    /// Waits until `more` further comments are acknowledged.
    pub(super) async fn wait_acked(&self, more: usize, what: &str) {
        let target = self.acked() + more;
        wait_for(what, Duration::from_secs(60), || async {
            self.acked() >= target
        })
        .await;
    }

    pub(super) async fn finish(mut self) -> Finished {
        self.stop.store(true, Ordering::Relaxed);
        for t in self.tasks.drain(..) {
            t.await.unwrap();
        }
        Finished {
            acked: std::mem::take(&mut *self.acked.lock().unwrap()),
            refused: std::mem::take(&mut *self.refused.lock().unwrap()),
            unreachable: self.unreachable.load(Ordering::Relaxed),
        }
    }
}

pub(super) struct Finished {
    pub(super) acked: Vec<String>,
    pub(super) refused: Refusals,
    pub(super) unreachable: usize,
}

// ---------------------------------------------------------------------------------------------
// Fixtures and checks

/// Demo data, API tokens of the nurse and the doctor, and a topic of hers in a patient group
/// they share (he reads nothing during the test, so his unread counter can be recounted).
pub(super) async fn fixture(op: &Operator) -> (String, String, String) {
    assert!(musubi_demo::seed_if_empty(op).await.unwrap());
    let tenant = op.resolve_tenant(HOST).await.unwrap();
    let meta = RequestMeta::default();
    let mut tokens = Vec::new();
    for email in [NURSE, CLINIC_DOCTOR] {
        let session = op
            .sign_in(email, DEMO_PASSWORD, SessionKind::Api, &meta)
            .await
            .unwrap();
        tokens.push(session.token);
    }
    let nurse = op.authenticate(&tokens[0]).await.unwrap().unwrap();
    let doctor = op.authenticate(&tokens[1]).await.unwrap().unwrap();
    let actor = Actor::new(&nurse, &tenant, &meta);
    let group = group_with_members(
        op,
        &actor,
        GroupKind::Patient,
        &group_input("障害 試験 様"),
        &[doctor.user().id],
    )
    .await;
    let topic = op
        .create_topic(
            &actor,
            &NewTopic {
                group_id: group,
                title: "訪問記録",
                body: "障害試験の記録です。",
                scope: Scope::EVERYONE,
                important: false,
            },
        )
        .await
        .unwrap();
    let doctor_token = tokens.pop().unwrap();
    (tokens.pop().unwrap(), doctor_token, topic.to_string())
}

/// A connection whose search path is association `HOST`'s schema.
pub(super) async fn tenant_conn(mut conn: PgConnection) -> PgConnection {
    let schema: String =
        sqlx::query_scalar("SELECT schema_name FROM core.associations WHERE slug = $1")
            .bind(HOST)
            .fetch_one(&mut conn)
            .await
            .unwrap();
    sqlx::query(&format!("SET search_path = \"{schema}\", core"))
        .execute(&mut conn)
        .await
        .unwrap();
    conn
}

/// Every acknowledged comment is there; returns how many comments the topic holds.
pub(super) async fn assert_acked_present(
    conn: &mut PgConnection,
    topic: &str,
    acked: &[String],
) -> i64 {
    let ids: Vec<uuid::Uuid> = acked.iter().map(|s| s.parse().unwrap()).collect();
    let unique: HashSet<_> = ids.iter().collect();
    assert_eq!(unique.len(), ids.len(), "an id was acknowledged twice");
    let present: i64 = sqlx::query_scalar("SELECT count(*) FROM comments WHERE id = ANY($1)")
        .bind(&ids)
        .fetch_one(&mut *conn)
        .await
        .unwrap();
    assert_eq!(
        present,
        ids.len() as i64,
        "acknowledged comments were lost: {} of {}",
        ids.len() as i64 - present,
        ids.len()
    );
    sqlx::query_scalar("SELECT count(*) FROM comments WHERE topic_id = $1::uuid")
        .bind(topic)
        .fetch_one(&mut *conn)
        .await
        .unwrap()
}

/// Nothing half-written: numbering, unread counters, events and audit records agree with the
/// comments that exist.
pub(super) async fn assert_consistent(conn: &mut PgConnection, topic: &str) {
    let bad_seq: Vec<(uuid::Uuid, i32, Option<i32>, i64)> = sqlx::query_as(
        "SELECT t.id, t.last_seq, max(c.seq), count(c.id) FROM topics t \
         LEFT JOIN comments c ON c.topic_id = t.id GROUP BY t.id \
         HAVING t.last_seq <> coalesce(max(c.seq), 0) OR t.last_seq <> count(c.id)",
    )
    .fetch_all(&mut *conn)
    .await
    .unwrap();
    assert!(bad_seq.is_empty(), "last_seq disagrees: {bad_seq:?}");

    // Nobody reads during the test: each counter is what others wrote and nobody read.
    let bad_unread: Vec<(uuid::Uuid, i32, i64)> = sqlx::query_as(
        "SELECT ur.user_id, ur.count, \
                (SELECT count(*) FROM comments c WHERE c.topic_id = ur.topic_id \
                   AND c.author_id <> ur.user_id AND c.deleted_at IS NULL \
                   AND c.seq >= ur.first_seq AND NOT EXISTS (SELECT 1 FROM footprints f \
                       WHERE f.comment_id = c.id AND f.user_id = ur.user_id)) AS recount \
         FROM unread ur WHERE ur.topic_id = $1::uuid",
    )
    .bind(topic)
    .fetch_all(&mut *conn)
    .await
    .unwrap()
    .into_iter()
    .filter(|(_, count, recount)| i64::from(*count) != *recount)
    .collect();
    assert!(bad_unread.is_empty(), "unread disagrees: {bad_unread:?}");
    let doctor_unread: Option<i32> = sqlx::query_scalar(
        "SELECT ur.count FROM unread ur JOIN core.users u ON u.id = ur.user_id \
         WHERE ur.topic_id = $1::uuid AND u.email = $2",
    )
    .bind(topic)
    .bind(CLINIC_DOCTOR)
    .fetch_optional(&mut *conn)
    .await
    .unwrap();
    let comments: i64 =
        sqlx::query_scalar("SELECT count(*) FROM comments WHERE topic_id = $1::uuid")
            .bind(topic)
            .fetch_one(&mut *conn)
            .await
            .unwrap();
    assert_eq!(
        i64::from(doctor_unread.unwrap_or(0)),
        comments,
        "the doctor's unread counter missed comments"
    );

    // Comment 1 is the topic's body, announced as a topic; every reply has its event.
    let without_event: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM comments c WHERE c.topic_id = $1::uuid AND c.seq > 1 \
         AND NOT EXISTS (SELECT 1 FROM core.events e WHERE e.topic_id = c.topic_id \
                         AND e.kind = 'comment_posted' AND c.id = ANY(e.comment_ids))",
    )
    .bind(topic)
    .fetch_one(&mut *conn)
    .await
    .unwrap();
    assert_eq!(without_event, 0, "comments without their event");
    let event_without_comment: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM core.events e, unnest(e.comment_ids) AS id \
         WHERE e.topic_id = $1::uuid AND e.kind = 'comment_posted' \
         AND NOT EXISTS (SELECT 1 FROM comments c WHERE c.id = id)",
    )
    .bind(topic)
    .fetch_one(&mut *conn)
    .await
    .unwrap();
    assert_eq!(
        event_without_comment, 0,
        "events of comments that do not exist"
    );
    let without_audit: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM comments c WHERE c.topic_id = $1::uuid AND c.seq > 1 \
         AND NOT EXISTS (SELECT 1 FROM audit_log a WHERE a.action = 'comment.create' \
                         AND a.object_type = 'comment' AND a.object_id = c.id::text)",
    )
    .bind(topic)
    .fetch_one(&mut *conn)
    .await
    .unwrap();
    assert_eq!(without_audit, 0, "comments without their audit record");
}

/// `musubi audit verify` as an operator runs it: exit 0 and every chain intact.
pub(super) fn assert_audit_verifies(database_url: &str) -> String {
    assert_audit_verifies_with(crate::MUSUBI_BIN, database_url)
}

pub(super) fn assert_audit_verifies_with(bin: &str, database_url: &str) -> String {
    let mut cmd = Command::new(bin);
    cmd.env("DATABASE_URL", database_url);
    assert_audit_verifies_by(cmd, &[])
}

/// Runs `cmd` (a `musubi` told where its database is) as `audit verify`, then `args`: exit 0,
/// every chain intact; returns what it printed.
pub(super) fn assert_audit_verifies_by(mut cmd: Command, args: &[&std::ffi::OsStr]) -> String {
    let out = cmd
        .args(["audit", "verify"])
        .args(args)
        .env_remove("MUSUBI_CONFIG")
        .env("MUSUBI_LOG", "warn")
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains(&format!("{HOST}: ")), "{stdout}");
    stdout
}

/// A GraphQL request routed to association `HOST`, as `token` when given; its `data`, which
/// must come without errors.
pub(super) async fn graphql(
    addr: &str,
    token: Option<&str>,
    query: &str,
    variables: Value,
) -> Value {
    let auth = token.map(|t| format!("Bearer {t}")).unwrap_or_default();
    let mut headers = vec![
        ("Content-Type", "application/json"),
        ("Musubi-Association", HOST),
    ];
    if token.is_some() {
        headers.push(("Authorization", auth.as_str()));
    }
    let body = json!({ "query": query, "variables": variables }).to_string();
    let (status, text) = http(addr, "POST", "/graphql", &headers, &body)
        .await
        .unwrap();
    let json: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
    assert!(
        status == 200 && json["errors"].is_null(),
        "{query}: {status} {text}"
    );
    json["data"].clone()
}

// ---------------------------------------------------------------------------------------------
// 1. SIGKILL under a write load

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_twenty_times_under_writes_loses_no_acknowledged_comment() {
    const KILLS: usize = 20;
    let started = Instant::now();
    let db = TestDb::new().await;
    let (token, _, topic) = fixture(&db.operator().await).await;
    let url = db.url();
    let data = tempfile::tempdir().unwrap();

    let mut server = Server::start(&url, data.path(), &[]);
    let load = Load::start(&server.addr, &token, &topic, 4);
    for kill in 0..KILLS {
        // Under load: this incarnation has acknowledged writes, and more are in flight.
        load.wait_acked(1, &format!("a comment acknowledged before kill {kill}"))
            .await;
        tokio::time::sleep(Duration::from_millis(fastrand::u64(0..250))).await;
        server.sigkill();
        server = Server::start(&url, data.path(), &[]);
        load.retarget(&server.addr);
    }
    load.wait_acked(1, "a comment acknowledged after the last restart")
        .await;
    let finished = load.finish().await;
    server.sigkill();

    let mut conn = tenant_conn(db.admin().await).await;
    let found = assert_acked_present(&mut conn, &topic, &finished.acked).await;
    assert_consistent(&mut conn, &topic).await;
    let _ = conn.close().await;
    let verified = assert_audit_verifies(&url);
    // Replies found beyond those acknowledged: committed, but the answer died with the server.
    println!(
        "kills: {KILLS}; acknowledged: {}; comments found: {} (+1 topic body); refused: {:?}; \
         unreachable attempts: {}; took {:?}\n{verified}",
        finished.acked.len(),
        found - 1,
        finished.refused,
        finished.unreachable,
        started.elapsed()
    );
    assert!(
        found > finished.acked.len() as i64,
        "the topic body is gone"
    );
}

// ---------------------------------------------------------------------------------------------
// 2. PostgreSQL restarted under load

/// Waits until `/readyz` answers `want` (200 or 503); returns its body.
pub(super) async fn readyz_until(addr: &str, want: u16, what: &str) -> String {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if let Some((status, body)) = readyz(addr).await {
            if status == want {
                return body;
            }
        }
        assert!(Instant::now() < deadline, "{what}: not within 60 s");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// A temporary directory the unprivileged PostgreSQL user can reach (tempfile makes 0700 dirs).
pub(super) fn reachable_dir() -> tempfile::TempDir {
    use std::os::unix::fs::PermissionsExt;
    let d = tempfile::Builder::new()
        .prefix("musubi-faults-")
        .tempdir()
        .unwrap();
    std::fs::set_permissions(d.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    d
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_restarted_under_load_fails_cleanly_then_recovers_without_restarting_musubi() {
    use musubi_pgembed::{EmbeddedOptions, EmbeddedPostgres, SUPERUSER};
    let started = Instant::now();
    let dir = reachable_dir();
    // A private cluster from the binaries `musubi` itself finds: the shared one stays up.
    let options = || EmbeddedOptions::new(dir.path().join("pg")).with_test_settings();
    let pg = EmbeddedPostgres::start(options()).await.unwrap();
    let url = format!(
        "postgres://{SUPERUSER}@localhost/{}?host={}",
        pg.database(),
        pg.socket_dir().display()
    );
    let db = musubi_domain::Db::connect(pg.connect_options(), 4, Duration::from_secs(30))
        .await
        .unwrap();
    db.migrate().await.unwrap();
    let services = musubi_domain::Services::build(
        db.clone(),
        musubi_auth::ratelimit::RateLimiter::in_process(),
    )
    .await
    .unwrap();
    let (token, _, topic) = fixture(&Operator::new(services, db.clone())).await;
    db.close().await;

    let mut server = Server::start(&url, &dir.path().join("musubi"), &[]);
    let addr = server.addr.clone();
    let load = Load::start(&addr, &token, &topic, 2);
    load.wait_acked(5, "writes before the outage").await;

    pg.stop().await.unwrap();
    let outage = Instant::now();
    let not_ready = readyz_until(&addr, 503, "/readyz reporting the outage").await;
    // While it is down every write is refused with an answer, none acknowledged.
    let mut direct = Vec::new();
    for i in 0..3 {
        match post_comment(&addr, &token, &topic, &format!("停止中 {i}")).await {
            Outcome::Refused(status, codes) => direct.push((status, codes)),
            other => panic!("a write during the outage: {other:?}"),
        }
    }
    let refused_before = load.refused();
    wait_for(
        "the load's writes refused",
        Duration::from_secs(60),
        || async { load.refused() > refused_before },
    )
    .await;
    server.assert_running();

    let pg = EmbeddedPostgres::start(options()).await.unwrap();
    let down_for = outage.elapsed();
    readyz_until(&addr, 200, "/readyz ready again").await;
    load.wait_acked(5, "writes after PostgreSQL came back")
        .await;
    let recovered_in = outage.elapsed() - down_for;
    server.assert_running();
    let finished = load.finish().await;

    let conn = PgConnection::connect_with(&pg.connect_options())
        .await
        .unwrap();
    let mut conn = tenant_conn(conn).await;
    let found = assert_acked_present(&mut conn, &topic, &finished.acked).await;
    assert_consistent(&mut conn, &topic).await;
    let _ = conn.close().await;
    drop(server);
    pg.stop().await.unwrap();

    println!(
        "acknowledged: {}; comments found: {} (+1 topic body); refused by the load: {:?}; \
         refused directly: {direct:?}; unreachable: {}; /readyz during: {not_ready:?}; \
         PostgreSQL down {down_for:?}, writes back {recovered_in:?} after; took {:?}",
        finished.acked.len(),
        found - 1,
        finished.refused,
        finished.unreachable,
        started.elapsed()
    );
    assert_eq!(finished.unreachable, 0, "musubi stopped answering");
    // GraphQL answers HTTP 200 with the error's code (a refused request may also meet the
    // shedding layer's 503): an outage says DATABASE_UNAVAILABLE, never INTERNAL (a bug).
    let refusals = finished.refused.keys().chain(direct.iter());
    for (status, codes) in refusals {
        assert!(
            (*status == 200 || *status == 503)
                && codes
                    .iter()
                    .all(|c| c == "DATABASE_UNAVAILABLE" || c == "OVERLOADED")
                && !codes.is_empty(),
            "an outage must be refused with a stable code: {status} {codes:?}"
        );
    }
    assert!(!direct.is_empty());
}

// ---------------------------------------------------------------------------------------------
// 3. Redis stopped under load

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A private `redis-server` on `port`, nothing persisted; `None` if the binary is missing.
fn start_redis(port: u16) -> Option<Child> {
    let spawned = Command::new("redis-server")
        .args(["--bind", "127.0.0.1", "--save", "", "--appendonly", "no"])
        .arg("--port")
        .arg(port.to_string())
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn();
    match spawned {
        Ok(child) => Some(child),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
        Err(e) => panic!("redis-server: {e}"),
    }
}

/// One inline Redis command's first reply line, or `None` if Redis does not answer.
async fn redis_cmd(port: u16, cmd: &str) -> Option<String> {
    let exchange = async {
        let mut s = tokio::net::TcpStream::connect(("127.0.0.1", port)).await?;
        s.write_all(format!("{cmd}\r\n").as_bytes()).await?;
        let mut buf = vec![0u8; 256];
        let n = s.read(&mut buf).await?;
        Ok::<_, std::io::Error>(String::from_utf8_lossy(&buf[..n]).trim().to_owned())
    };
    match tokio::time::timeout(Duration::from_secs(5), exchange).await {
        Ok(Ok(line)) if !line.is_empty() => Some(line),
        _ => None,
    }
}

async fn wait_redis(port: u16) {
    wait_for(
        "redis-server to answer",
        Duration::from_secs(30),
        || async { redis_cmd(port, "PING").await.as_deref() == Some("+PONG") },
    )
    .await;
}

/// Keys in Redis: the fair-use counters, once requests have been counted there.
async fn redis_keys(port: u16) -> i64 {
    redis_cmd(port, "DBSIZE")
        .await
        .and_then(|l| l.trim_start_matches(':').parse().ok())
        .unwrap_or(0)
}

/// A live-update subscriber of the doctor receives an event of the load within `limit`.
async fn live_event_arrives(addr: &str, token: &str, limit: Duration) -> bool {
    use musubi_test_support::ws::{GqlWs, Reply};
    let mut ws = GqlWs::connect(addr, json!({"token": token}))
        .await
        .unwrap_or_else(|e| panic!("live-update connection: {e}"));
    ws.subscribe("ev", "subscription { events { id kind } }", json!({}))
        .await;
    let deadline = Instant::now() + limit;
    let mut arrived = false;
    while !arrived && Instant::now() < deadline {
        match ws.next_reply("ev", Duration::from_millis(500)).await {
            Some(Reply::Next(p)) if p["errors"].is_null() => arrived = true,
            Some(other) => panic!("subscription failed: {other:?}"),
            None => {}
        }
    }
    ws.close().await;
    arrived
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_killed_under_load_keeps_requests_served_and_recovers() {
    let started = Instant::now();
    let port = free_port();
    let Some(mut redis) = start_redis(port) else {
        println!("SKIPPED: redis-server is not on PATH (Debian package redis-server)");
        return;
    };
    wait_redis(port).await;
    let db = TestDb::new().await;
    let (token, doctor_token, topic) = fixture(&db.operator().await).await;
    let data = tempfile::tempdir().unwrap();
    let redis_url = format!("redis://127.0.0.1:{port}");
    let mut server = Server::start(&db.url(), data.path(), &[("REDIS_URL", &redis_url)]);
    let addr = server.addr.clone();

    let load = Load::start(&addr, &token, &topic, 2);
    load.wait_acked(5, "writes with Redis up").await;
    wait_for(
        "fair-use counters in Redis",
        Duration::from_secs(30),
        || async { redis_keys(port).await > 0 },
    )
    .await;
    assert!(
        live_event_arrives(&addr, &doctor_token, Duration::from_secs(30)).await,
        "no live update through Redis before the fault"
    );

    redis.kill().unwrap(); // SIGKILL
    redis.wait().unwrap();
    let during_from = load.acked();
    let down_at = Instant::now();
    // Counters fail open and events stay in PostgreSQL: writes go on being acknowledged.
    load.wait_acked(20, "writes while Redis is down").await;
    let (status, body) = readyz(&addr).await.expect("/readyz answers");
    assert_eq!(
        (status, body.as_str()),
        (200, "ready"),
        "Redis is not a readiness condition"
    );
    let during = load.acked() - during_from;
    let during_took = down_at.elapsed();
    server.assert_running();

    let mut redis = start_redis(port).expect("redis-server again");
    wait_redis(port).await;
    load.wait_acked(5, "writes after Redis came back").await;
    wait_for(
        "fair-use counters back in Redis",
        Duration::from_secs(60),
        || async { redis_keys(port).await > 0 },
    )
    .await;
    // The subscriber's connection to Redis comes back with backoff (at most 5 s apart).
    assert!(
        live_event_arrives(&addr, &doctor_token, Duration::from_secs(60)).await,
        "live updates did not come back with Redis"
    );
    server.assert_running();
    let finished = load.finish().await;
    drop(server);
    let _ = redis.kill();
    let _ = redis.wait();

    let mut conn = tenant_conn(db.admin().await).await;
    let found = assert_acked_present(&mut conn, &topic, &finished.acked).await;
    assert_consistent(&mut conn, &topic).await;
    let _ = conn.close().await;
    println!(
        "acknowledged: {} ({during} while Redis was down, in {during_took:?}); comments found: {} (+1 topic body); \
         refused: {:?}; unreachable: {}; took {:?}",
        finished.acked.len(),
        found - 1,
        finished.refused,
        finished.unreachable,
        started.elapsed()
    );
    assert!(
        finished.refused.is_empty() && finished.unreachable == 0,
        "requests failed because of Redis"
    );
}
