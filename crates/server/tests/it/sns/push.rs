//! Web push against a real push service on this machine: a small Python HTTP server (the
//! tests' Python, with `http_ece` and `py-vapid`, see `cargo xtask setup test`) plays the push
//! service and the browser at once. It holds the browser's P-256 key pair and auth secret,
//! receives Musubi's POST, checks the VAPID token's ES256 signature with the key Musubi
//! publishes (py-vapid), decrypts the aes128gcm body with the browser's private key (http_ece)
//! and writes what it got to a file this test reads. The payload must be exactly the fixed
//! texts and an address of ids, with nothing of the patient; TTL and Urgency must be right; a
//! 410 deletes the subscription; a 500 leaves the job to be retried; a 400 fails it.
//!
//! Without Python: endpoints that are not push services (cloud metadata, any other host),
//! junk keys and oversized fields are refused with `INVALID_INPUT` naming the field and nothing
//! is kept; an 11th browser drops the oldest; nobody removes another's subscription; an
//! association's database role may enqueue pushes but never read endpoints or keys; the
//! service worker is served as JavaScript; the settings page subscribes (JSON with the CSRF
//! token, refused without it), lists the devices and removes one.

use chrono::{DateTime, Duration, Utc};
use http::header::{CACHE_CONTROL, CONTENT_TYPE};
use http::StatusCode;
use musubi_domain::push::{PushKind, PushMessage};
use musubi_domain::sessions::Viewer;
use musubi_domain::types::PersonId;
use musubi_domain::{ErrorCode, Services};
use musubi_test_support::demo::{CLINIC_DOCTOR, HOST, NURSE};
use musubi_test_support::web::Browser;
use musubi_test_support::{test_config, TestApp};
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use uuid::Uuid;

/// Names the Python to run the push service with (`cargo xtask test` sets it).
const PYTHON_ENV: &str = "MUSUBI_TEST_PYTHON";

/// A browser-side key pair's public half and an auth secret, made once for the tests that
/// never push (the private half is not needed: nothing is decrypted).
const P256DH: &str =
    "BGrPOU1Zb2YJPab2I2iZ_J0xBWsmxxy7lJFwjJ99HCD5wzjtunlnYBV7JZD7Bn4K0DqLdEdnLArLt52xHN1l6JY";
const AUTH: &str = "ylAJX0wzEyLmum2yZY_-Cg";

/// The patient group of 川村 in みなと川: nothing of it may leave in a push.
const YAMADA: &str = "山田 太郎さん（85歳・在宅酸素）";

const SUBJECT: &str = "mailto:push-test@musubi.example.jp";

/// The push service and browser, in Python. Prints `{"port", "p256dh", "auth"}`, reads the
/// expected VAPID public key and subject from stdin, then answers POSTs by their path's first
/// segment (`ok` 201, `gone` 410, `fail` 500, `refuse` 400) and appends one JSON line per POST
/// to the file named by its argument. Stops when stdin closes.
const PUSH_SERVICE: &str = r#"
import base64, json, os, re, sys, threading, time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
import http_ece
from py_vapid import jwt as vapid_jwt

out_path = sys.argv[1]
lock = threading.Lock()

def b64(b):
    return base64.urlsafe_b64encode(b).rstrip(b"=").decode()

private = ec.generate_private_key(ec.SECP256R1())
public = private.public_key().public_bytes(
    serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint)
auth = os.urandom(16)
STATUS = {"ok": 201, "gone": 410, "fail": 500, "refuse": 400}

class Handler(BaseHTTPRequestHandler):
    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
        record = {"path": self.path,
                  "headers": {k.lower(): v for k, v in self.headers.items()}}
        try:
            m = re.fullmatch(r"vapid t=([^,\s]+),\s*k=([^,\s]+)",
                             self.headers.get("Authorization", ""))
            if not m:
                raise ValueError("no VAPID authorization")
            record["k_is_musubis"] = m.group(2) == expected_key
            # py-vapid checks the ES256 signature with the key Musubi publishes.
            record["claims"] = vapid_jwt.decode(m.group(1), expected_key)
            record["vapid_ok"] = True
        except Exception as e:
            record["vapid_ok"] = False
            record["vapid_error"] = repr(e)
        record["now"] = int(time.time())
        try:
            record["payload"] = http_ece.decrypt(
                body, private_key=private, auth_secret=auth, version="aes128gcm").decode("utf-8")
        except Exception as e:
            record["payload"] = None
            record["decrypt_error"] = repr(e)
        status = STATUS.get(self.path.strip("/").split("/")[0], 404)
        record["status"] = status
        with lock:
            with open(out_path, "a", encoding="utf-8") as f:
                f.write(json.dumps(record, ensure_ascii=False) + "\n")
        self.send_response(status)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args):
        pass

server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
print(json.dumps({"port": server.server_address[1], "p256dh": b64(public), "auth": b64(auth)}),
      flush=True)
expected_key = sys.stdin.readline().strip()
threading.Thread(target=server.serve_forever, daemon=True).start()
print("ready", flush=True)
sys.stdin.read()
server.shutdown()
"#;

/// The Python with the push service's packages: `MUSUBI_TEST_PYTHON`, else the one `cargo
/// xtask setup test` makes under the workspace's `target/`. Missing, the test fails: it never
/// passes without a push having been decrypted.
fn python() -> PathBuf {
    let python = match std::env::var_os(PYTHON_ENV).filter(|v| !v.is_empty()) {
        Some(p) => PathBuf::from(p),
        None => Path::new(env!("CARGO_MANIFEST_DIR"))
            .ancestors()
            .nth(2)
            .unwrap()
            .join("target/test-python/bin/python"),
    };
    assert!(
        python.is_file(),
        "no Python for the push test at {}: run `cargo xtask setup test`, which makes one with \
         http_ece and py-vapid (or set {PYTHON_ENV})",
        python.display(),
    );
    python
}

/// The local push service; stopped when dropped.
struct PushService {
    child: Child,
    stdin: Option<ChildStdin>,
    port: u16,
    p256dh: String,
    auth: String,
    out: PathBuf,
    _dir: tempfile::TempDir,
}

impl PushService {
    fn start() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("received.jsonl");
        let python = python();
        let mut child = Command::new(&python)
            .arg("-c")
            .arg(PUSH_SERVICE)
            .arg(&out)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot run {}: {e}", python.display()));
        let mut first = String::new();
        BufReader::new(child.stdout.as_mut().unwrap())
            .read_line(&mut first)
            .unwrap();
        let hello: serde_json::Value = serde_json::from_str(&first).unwrap_or_else(|_| {
            panic!(
                "the push service did not start ({}: it needs http_ece and py-vapid; run \
                 `cargo xtask setup test`): {first:?}",
                python.display()
            )
        });
        Self {
            stdin: child.stdin.take(),
            port: u16::try_from(hello["port"].as_u64().unwrap()).unwrap(),
            p256dh: hello["p256dh"].as_str().unwrap().to_owned(),
            auth: hello["auth"].as_str().unwrap().to_owned(),
            child,
            out,
            _dir: dir,
        }
    }

    fn origin(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Tells the service the VAPID key Musubi publishes and waits until it serves.
    fn expect_key(&mut self, key: &str) {
        let stdin = self.stdin.as_mut().unwrap();
        writeln!(stdin, "{key}").unwrap();
        stdin.flush().unwrap();
        let mut line = String::new();
        BufReader::new(self.child.stdout.as_mut().unwrap())
            .read_line(&mut line)
            .unwrap();
        assert_eq!(line.trim(), "ready");
    }

    /// What the service received so far, in order.
    fn received(&self) -> Vec<serde_json::Value> {
        std::fs::read_to_string(&self.out)
            .unwrap_or_default()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    }
}

impl Drop for PushService {
    fn drop(&mut self) {
        drop(self.stdin.take());
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A demo app whose push allow-list also holds `extra` origins.
async fn app_with(extra: &str) -> TestApp {
    TestApp::demo_with_config(test_config(&[
        ("MUSUBI_PUSH_EXTRA_ORIGINS", extra),
        ("MUSUBI_VAPID_SUBJECT", SUBJECT),
    ]))
    .await
}

async fn viewer(app: &TestApp, email: &str) -> Viewer {
    app.operator().act_as(email).await.unwrap()
}

/// (endpoint, failures, last success) of the person's subscriptions, oldest first.
async fn subscriptions(app: &TestApp, user: PersonId) -> Vec<(String, i32, Option<DateTime<Utc>>)> {
    sqlx::query_as(
        "SELECT endpoint, failures, last_success_at FROM core.push_subscriptions \
         WHERE user_id = $1 ORDER BY created_at, id",
    )
    .bind(user)
    .fetch_all(app.db.db.pool())
    .await
    .unwrap()
}

async fn all_subscriptions(app: &TestApp) -> i64 {
    sqlx::query_scalar("SELECT count(*) FROM core.push_subscriptions")
        .fetch_one(app.db.db.pool())
        .await
        .unwrap()
}

/// (state, attempts, last error, run at) of the push jobs, oldest first.
async fn push_jobs(app: &TestApp) -> Vec<(String, i32, Option<String>, DateTime<Utc>)> {
    sqlx::query_as(
        "SELECT state, attempts, last_error, run_at FROM core.jobs WHERE kind = 'notify.push' \
         ORDER BY id",
    )
    .fetch_all(app.db.db.pool())
    .await
    .unwrap()
}

/// (topic, comment) ids of a comment in 山田's patient group.
async fn patient_comment(app: &TestApp) -> (Uuid, Uuid) {
    sqlx::query_as(
        "SELECT c.topic_id, c.id FROM comments c JOIN groups g ON g.id = c.group_id \
         WHERE g.name = $1 ORDER BY c.created_at LIMIT 1",
    )
    .bind(YAMADA)
    .fetch_one(&mut *app.tenant_tx(HOST).await)
    .await
    .unwrap()
}

async fn run_jobs(s: &Services, now: DateTime<Utc>) {
    s.run_due_jobs(now, 50).await.unwrap();
}

#[tokio::test]
async fn a_push_reaches_the_push_service_encrypted_signed_and_holding_only_ids() {
    let mut service = PushService::start();
    let app = app_with(&service.origin()).await;
    let s = app.services();
    let key = s.push_public_key().await.unwrap();
    service.expect_key(&key);
    // The key is the deployment's, kept in the database: the same for every replica.
    assert_eq!(
        app.db.services().await.push_public_key().await.unwrap(),
        key
    );
    let doctor = viewer(&app, CLINIC_DOCTOR).await;
    let me = doctor.user().id;
    let endpoint = format!("{}/ok/doctor-phone", service.origin());
    s.subscribe_push(
        &doctor,
        &endpoint,
        &service.p256dh,
        &service.auth,
        "iPhone / Safari",
    )
    .await
    .unwrap();

    let (topic, comment) = patient_comment(&app).await;
    let urgent = PushMessage::urgent(HOST, topic.into(), comment.into()).unwrap();
    let now = Utc::now();
    assert_eq!(s.push_to(me, &urgent, now).await.unwrap(), 1);
    assert_eq!(s.push_to(me, &PushMessage::news(), now).await.unwrap(), 1);
    run_jobs(&s, now).await;

    let got = service.received();
    assert_eq!(got.len(), 2, "{got:#?}");
    let expected_urgent = format!(
        "{{\"title\":\"結び\",\"body\":\"至急の書きこみがあります\",\"url\":\"/a/{HOST}/t/{topic}/c/{comment}\"}}"
    );
    let expected_news = r#"{"title":"結び","body":"新しい書きこみがあります","url":"/home"}"#;
    for (r, payload, urgency) in [
        (&got[0], expected_urgent.as_str(), "high"),
        (&got[1], expected_news, "normal"),
    ] {
        assert_eq!(r["payload"], payload, "{r:#?}");
        // Nothing of the patient, the group or the comment: only ids.
        let text = r["payload"].as_str().unwrap();
        for word in ["山田", "太郎", "在宅酸素", "褥瘡", "さん"] {
            assert!(!text.contains(word), "{word} in {text}");
        }
        let h = &r["headers"];
        assert_eq!(h["ttl"], "3600");
        assert_eq!(h["urgency"], urgency);
        assert_eq!(h["content-encoding"], "aes128gcm");
        assert_eq!(r["path"], "/ok/doctor-phone");
        assert_eq!(r["vapid_ok"], true, "{r:#?}");
        assert_eq!(r["k_is_musubis"], true);
        let claims = &r["claims"];
        assert_eq!(claims["aud"], service.origin());
        assert_eq!(claims["sub"], SUBJECT);
        let exp = claims["exp"].as_i64().unwrap();
        let at = r["now"].as_i64().unwrap();
        assert!(exp > at && exp <= at + 24 * 3600, "exp {exp} at {at}");
    }
    // News pushes replace each other at the push service; urgent ones do not.
    assert_eq!(got[1]["headers"]["topic"], "musubi-news");
    assert!(got[0]["headers"].get("topic").is_none());

    let jobs = push_jobs(&app).await;
    assert!(jobs.iter().all(|j| j.0 == "done"), "{jobs:?}");
    let subs = subscriptions(&app, me).await;
    assert_eq!(subs.len(), 1);
    assert_eq!(subs[0].1, 0);
    assert!(subs[0].2.is_some(), "the delivery is noted");

    // A message whose address carries words is never enqueued, let alone sent.
    let words = PushMessage {
        kind: PushKind::News,
        url: "/home?patient=山田".into(),
    };
    let e = s.push_to(me, &words, now).await.unwrap_err();
    assert_eq!(e.code, ErrorCode::InvalidInput);
    assert_eq!(push_jobs(&app).await.len(), 2);
}

#[tokio::test]
async fn gone_subscriptions_are_deleted_failures_retried_and_refusals_failed() {
    let mut service = PushService::start();
    let app = app_with(&service.origin()).await;
    let s = app.services();
    service.expect_key(&s.push_public_key().await.unwrap());
    let nurse = viewer(&app, NURSE).await;
    let me = nurse.user().id;
    for path in ["gone/old-phone", "fail/busy-service", "refuse/odd-service"] {
        let endpoint = format!("{}/{path}", service.origin());
        s.subscribe_push(&nurse, &endpoint, &service.p256dh, &service.auth, "")
            .await
            .unwrap();
    }
    let now = Utc::now();
    assert_eq!(s.push_to(me, &PushMessage::news(), now).await.unwrap(), 3);
    run_jobs(&s, now).await;
    assert_eq!(service.received().len(), 3);

    // 410: the subscription is gone, the job done. 500: kept, the job waits 30 s for its next
    // attempt. 400: the job failed for good, the subscription kept (one refusal).
    let subs = subscriptions(&app, me).await;
    let endpoints: Vec<&str> = subs.iter().map(|s| s.0.as_str()).collect();
    assert!(
        !endpoints.iter().any(|e| e.contains("/gone/")),
        "{endpoints:?}"
    );
    assert_eq!(subs.len(), 2, "{subs:?}");
    assert!(subs.iter().all(|s| s.1 == 1), "one failure each: {subs:?}");
    let mut jobs = push_jobs(&app).await;
    jobs.sort_by(|a, b| a.0.cmp(&b.0));
    assert_eq!(jobs.len(), 3);
    let (done, failed, pending) = (&jobs[0], &jobs[1], &jobs[2]);
    assert_eq!(done.0, "done");
    assert_eq!(failed.0, "failed");
    assert_eq!(failed.2.as_deref(), Some("push service answered 400"));
    assert_eq!(pending.0, "pending");
    assert_eq!(pending.1, 1);
    assert_eq!(pending.2.as_deref(), Some("push service answered 500"));
    assert!(pending.3 >= now + Duration::seconds(29), "{:?}", pending.3);
    // No endpoint (a capability) in what the console shows.
    assert!(jobs
        .iter()
        .filter_map(|j| j.2.as_deref())
        .all(|e| !e.contains("127.0.0.1")));

    // Not before its time; then tried again (and the service still fails).
    run_jobs(&s, now + Duration::seconds(5)).await;
    assert_eq!(service.received().len(), 3);
    run_jobs(&s, now + Duration::seconds(31)).await;
    let got = service.received();
    assert_eq!(got.len(), 4);
    assert_eq!(got[3]["path"], "/fail/busy-service");
    let first = got
        .iter()
        .find(|r| r["path"] == "/fail/busy-service")
        .unwrap();
    assert_eq!(
        got[3]["payload"], first["payload"],
        "the same message again"
    );
    assert_eq!(
        got[3]["payload"],
        r#"{"title":"結び","body":"新しい書きこみがあります","url":"/home"}"#
    );
    let pending = push_jobs(&app)
        .await
        .into_iter()
        .find(|j| j.0 == "pending")
        .unwrap();
    assert_eq!(pending.1, 2);
}

#[tokio::test]
async fn endpoints_that_are_not_push_services_and_bad_keys_are_refused_and_nothing_is_kept() {
    let app = app_with("http://127.0.0.1:9").await;
    let s = app.services();
    let doctor = viewer(&app, CLINIC_DOCTOR).await;
    let long = format!("https://fcm.googleapis.com/fcm/send/{}", "x".repeat(1100));
    let cases: Vec<(String, &str, &str, String, &str)> = vec![
        // Cloud metadata, an internal address, another port, any other host, plain http.
        (
            "http://169.254.169.254/latest/meta-data/".into(),
            P256DH,
            AUTH,
            String::new(),
            "endpoint",
        ),
        ("https://169.254.169.254/x".into(), P256DH, AUTH, String::new(), "endpoint"),
        ("http://127.0.0.1:10/x".into(), P256DH, AUTH, String::new(), "endpoint"),
        ("https://evil.example/".into(), P256DH, AUTH, String::new(), "endpoint"),
        (
            "https://fcm.googleapis.com.evil.example/x".into(),
            P256DH,
            AUTH,
            String::new(),
            "endpoint",
        ),
        ("http://fcm.googleapis.com/x".into(), P256DH, AUTH, String::new(), "endpoint"),
        ("javascript:alert(1)".into(), P256DH, AUTH, String::new(), "endpoint"),
        (long, P256DH, AUTH, String::new(), "endpoint"),
        // Junk and oversized keys.
        ("https://fcm.googleapis.com/fcm/send/a".into(), "junk!", AUTH, String::new(), "p256dh"),
        (
            "https://fcm.googleapis.com/fcm/send/a".into(),
            // The right length, but not a point on the curve.
            "BAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
            AUTH,
            String::new(),
            "p256dh",
        ),
        ("https://fcm.googleapis.com/fcm/send/a".into(), AUTH, AUTH, String::new(), "p256dh"),
        (
            "https://fcm.googleapis.com/fcm/send/a".into(),
            P256DH,
            "c2hvcnQ",
            String::new(),
            "auth",
        ),
        ("https://fcm.googleapis.com/fcm/send/a".into(), P256DH, P256DH, String::new(), "auth"),
        (
            "https://fcm.googleapis.com/fcm/send/a".into(),
            P256DH,
            AUTH,
            "x".repeat(65),
            "userAgent",
        ),
    ];
    for (endpoint, p256dh, auth, agent, field) in &cases {
        let e = s
            .subscribe_push(&doctor, endpoint, p256dh, auth, agent)
            .await
            .unwrap_err();
        assert_eq!(e.code, ErrorCode::InvalidInput, "{endpoint}");
        assert_eq!(e.field, Some(*field), "{endpoint} {p256dh} {auth}");
    }
    assert_eq!(all_subscriptions(&app).await, 0);
    // The configured origin and the known services are accepted.
    s.subscribe_push(&doctor, "http://127.0.0.1:9/push/1", P256DH, AUTH, "")
        .await
        .unwrap();
    s.subscribe_push(
        &doctor,
        "https://updates.push.services.mozilla.com/wpush/v2/gAAAAA",
        P256DH,
        AUTH,
        "Mac / Firefox",
    )
    .await
    .unwrap();
    assert_eq!(all_subscriptions(&app).await, 2);
}

#[tokio::test]
async fn an_eleventh_browser_drops_the_oldest_and_nobody_removes_anothers() {
    let app = app_with("http://127.0.0.1:9").await;
    let s = app.services();
    let doctor = viewer(&app, CLINIC_DOCTOR).await;
    let nurse = viewer(&app, NURSE).await;
    let endpoint = |n: usize| format!("https://fcm.googleapis.com/fcm/send/phone-{n}");
    for n in 1..=11 {
        s.subscribe_push(&doctor, &endpoint(n), P256DH, AUTH, "Android / Chrome")
            .await
            .unwrap();
    }
    let mine = subscriptions(&app, doctor.user().id).await;
    assert_eq!(mine.len(), 10);
    assert_eq!(mine[0].0, endpoint(2), "the first one went");
    assert_eq!(mine[9].0, endpoint(11));
    // Subscribing the same browser again renews it, it does not add one.
    s.subscribe_push(&doctor, &endpoint(5), P256DH, AUTH, "Android / Chrome")
        .await
        .unwrap();
    assert_eq!(subscriptions(&app, doctor.user().id).await.len(), 10);

    // The nurse cannot remove the doctor's browser, by endpoint or by id.
    assert!(!s.unsubscribe_push(&nurse, &endpoint(5)).await.unwrap());
    let devices = s.push_devices(&doctor).await.unwrap();
    assert_eq!(devices.len(), 10);
    assert_eq!(devices[0].label, "Android / Chrome");
    assert!(!s.remove_push_device(&nurse, devices[0].id).await.unwrap());
    assert!(s.push_devices(&nurse).await.unwrap().is_empty());
    assert_eq!(subscriptions(&app, doctor.user().id).await.len(), 10);
    // The doctor can.
    assert!(s.unsubscribe_push(&doctor, &endpoint(5)).await.unwrap());
    assert!(s.remove_push_device(&doctor, devices[0].id).await.unwrap());
    assert_eq!(subscriptions(&app, doctor.user().id).await.len(), 8);
}

#[tokio::test]
async fn an_associations_role_may_enqueue_pushes_but_never_read_endpoints_or_keys() {
    let app = app_with("http://127.0.0.1:9").await;
    let s = app.services();
    let doctor = viewer(&app, CLINIC_DOCTOR).await;
    s.subscribe_push(&doctor, "http://127.0.0.1:9/push/1", P256DH, AUTH, "")
        .await
        .unwrap();
    // What a write in an association does: its pushes commit with it.
    let mut tx = app.tenant_tx(HOST).await;
    let n = musubi_db::push::enqueue_for_user(
        &mut tx,
        "notify.push",
        doctor.user().id,
        &serde_json::json!({"kind": "news", "url": "/home"}),
        4,
        Utc::now(),
    )
    .await
    .unwrap();
    assert_eq!(n, 1);
    tx.commit().await.unwrap();
    assert_eq!(push_jobs(&app).await.len(), 1);
    for column in ["endpoint", "p256dh", "auth", "user_agent"] {
        let mut tx = app.tenant_tx(HOST).await;
        let read = sqlx::query(&format!("SELECT {column} FROM core.push_subscriptions"))
            .execute(&mut *tx)
            .await;
        assert!(
            read.is_err(),
            "{column} is readable by the association's role"
        );
    }
    let mut tx = app.tenant_tx(HOST).await;
    assert!(sqlx::query("SELECT private_key FROM core.vapid_keys")
        .execute(&mut *tx)
        .await
        .is_err());
}

#[tokio::test]
async fn the_settings_page_subscribes_this_browser_lists_devices_and_removes_one() {
    let app = app_with("http://127.0.0.1:9").await;
    let s = app.services();
    let me = app.user_id(CLINIC_DOCTOR).await;

    // The service worker, from the root, as JavaScript, that nobody caches for long.
    let mut anyone = Browser::new();
    let (status, headers, body) = anyone.fetch(&app, "/sw.js").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(headers[CONTENT_TYPE], "text/javascript; charset=utf-8");
    assert_eq!(headers[CACHE_CONTROL], "no-cache");
    let body = String::from_utf8(body.to_vec()).unwrap();
    assert!(body.contains("addEventListener(\"push\""));
    assert!(body.contains("addEventListener(\"notificationclick\""));

    let ua = "Mozilla/5.0 (iPhone; CPU iPhone OS 17_4 like Mac OS X) AppleWebKit/605.1.15 \
              (KHTML, like Gecko) Version/17.4 Mobile/15E148 Safari/604.1";
    let mut doctor = Browser::signed_in(&app, CLINIC_DOCTOR)
        .await
        .with_header("user-agent", ua);
    let page = doctor.get(&app, "/settings/notifications").await;
    assert_eq!(page.status, StatusCode::OK);
    assert!(page.body.contains("この端末に通知"), "{}", page.body);
    assert!(page.body.contains("ホーム画面に追加"));
    assert!(page.body.contains("まだ登録された端末はありません。"));
    let key = s.push_public_key().await.unwrap();
    assert!(page.body.contains(&format!("data-push-key=\"{key}\"")));

    let subscription = serde_json::json!({
        "endpoint": "http://127.0.0.1:9/push/doctor",
        "expirationTime": null,
        "keys": {"p256dh": P256DH, "auth": AUTH},
    });
    // Without the page's token, or with a wrong one: refused, nothing kept.
    for token in [None, Some("not-the-token")] {
        let refused = doctor
            .call(&app, "/settings/push", token, &subscription)
            .await;
        assert_eq!(refused.status, StatusCode::FORBIDDEN, "{token:?}");
    }
    assert_eq!(all_subscriptions(&app).await, 0);
    // A refused endpoint says which field.
    let csrf = page.csrf();
    let mut bad = subscription.clone();
    bad["endpoint"] = "http://169.254.169.254/latest/meta-data/".into();
    let refused = doctor.call(&app, "/settings/push", Some(&csrf), &bad).await;
    assert_eq!(refused.status, StatusCode::BAD_REQUEST);
    assert_eq!(refused.json()["error"]["code"], "INVALID_INPUT");
    assert_eq!(refused.json()["error"]["field"], "endpoint");
    assert_eq!(all_subscriptions(&app).await, 0);

    let done = doctor
        .call(&app, "/settings/push", Some(&csrf), &subscription)
        .await;
    assert_eq!(done.status, StatusCode::OK, "{}", done.body);
    assert_eq!(
        done.json()["redirect"],
        "/settings/notifications?done=push_added#push"
    );
    let subs = subscriptions(&app, me).await;
    assert_eq!(subs.len(), 1);
    let page = doctor
        .get(&app, "/settings/notifications?done=push_added")
        .await;
    assert!(page.body.contains("この端末に通知するよう設定しました。"));
    assert!(page.body.contains("iPhone / Safari"));
    assert!(page
        .body
        .contains("data-push-endpoint=\"http://127.0.0.1:9/push/doctor\""));
    let id = s
        .push_devices(&app.operator().act_as(CLINIC_DOCTOR).await.unwrap())
        .await
        .unwrap()[0]
        .id
        .to_string();
    assert!(page.body.contains(&format!("name=\"id\" value=\"{id}\"")));

    // Someone else's 「解除」 of it is the 404 page and removes nothing.
    let mut nurse = Browser::signed_in(&app, NURSE).await;
    let other = nurse
        .submit(
            &app,
            "/settings/notifications",
            "/settings/push/remove",
            &[("id", &id)],
        )
        .await;
    assert!(other.is_not_found(), "{}", other.status);
    assert_eq!(all_subscriptions(&app).await, 1);
    let removed = doctor
        .submit(
            &app,
            "/settings/notifications",
            "/settings/push/remove",
            &[("id", &id)],
        )
        .await;
    assert_eq!(removed.status, StatusCode::SEE_OTHER);
    assert_eq!(
        removed.location(),
        "/settings/notifications?done=push_removed#push"
    );
    assert_eq!(all_subscriptions(&app).await, 0);
}

#[tokio::test]
async fn an_urgent_post_and_a_digest_reach_the_phones_of_those_concerned() {
    let mut service = PushService::start();
    let app = app_with(&service.origin()).await;
    let s = app.services();
    service.expect_key(&s.push_public_key().await.unwrap());
    let doctor = viewer(&app, CLINIC_DOCTOR).await;
    let endpoint = format!("{}/ok/attending-phone", service.origin());
    s.subscribe_push(
        &doctor,
        &endpoint,
        &service.p256dh,
        &service.auth,
        "Android / Chrome",
    )
    .await
    .unwrap();
    // The doctor wants no mail at all: the phone alone hears of a 至急 post.
    let host = s.resolve_tenant(HOST).await.unwrap();
    let meta = musubi_domain::audit::RequestMeta::new("192.0.2.61", "push test");
    s.update_notification_settings(
        &musubi_domain::Actor::new(&doctor, &host, &meta),
        musubi_domain::notifications::EmailMode::Off,
        chrono::NaiveTime::from_hms_opt(18, 0, 0).unwrap(),
    )
    .await
    .unwrap();
    let nurse = viewer(&app, NURSE).await;
    let (topic, _) = patient_comment(&app).await;
    let comment = s
        .post_urgent_comment(
            &musubi_domain::Actor::new(&nurse, &host, &meta),
            topic.into(),
            "SpO2 低下、至急ご指示を",
            &[],
        )
        .await
        .unwrap();
    let now = Utc::now();
    // The notice job, then the push job it enqueued.
    run_jobs(&s, now).await;
    run_jobs(&s, now).await;
    let got = service.received();
    assert_eq!(got.len(), 1, "{got:#?}");
    assert_eq!(
        got[0]["payload"],
        format!(
            "{{\"title\":\"結び\",\"body\":\"至急の書きこみがあります\",\"url\":\"/a/{HOST}/t/{topic}/c/{comment}\"}}"
        )
    );
    assert_eq!(got[0]["headers"]["urgency"], "high");
    assert_eq!(got[0]["path"], "/ok/attending-phone");
}
