//! Two `musubi serve` processes sharing one PostgreSQL database and one real Redis, as replicas
//! behind a load balancer: a subscriber connected to the first receives a comment posted
//! through the second (`cargo xtask test` starts a Redis; or set `MUSUBI_TEST_REDIS_URL`).

use musubi_demo::DEMO_PASSWORD;
use musubi_domain::audit::RequestMeta;
use musubi_domain::groups::{GroupKind, Scope};
use musubi_domain::sessions::SessionKind;
use musubi_domain::Actor;
use musubi_domain::Services;
use musubi_test_support::demo::NURSE;
use musubi_test_support::ws::{GqlWs, Reply};
use musubi_test_support::{group_input, group_with_members, TestDb};
use serde_json::{json, Value};
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const REDIS_ENV: &str = "MUSUBI_TEST_REDIS_URL";
const DOCTOR: &str = "sato@sakuradai-hospital.example";

fn redis_url() -> String {
    match std::env::var(REDIS_ENV) {
        Ok(url) if !url.is_empty() => url,
        _ => panic!(
            "{REDIS_ENV} is not set. Run `cargo xtask test`, which starts a private Redis, \
             or point it at a Redis you own, e.g. {REDIS_ENV}=redis://127.0.0.1:6379"
        ),
    }
}

/// A running `musubi serve`; killed when dropped.
struct Replica {
    child: Child,
    addr: String,
}

impl Drop for Replica {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start_replica(database_url: &str, redis: &str) -> Replica {
    let mut child = Command::new(env!("CARGO_BIN_EXE_musubi"))
        .args(["serve", "--listen", "127.0.0.1:0"])
        .env_remove("MUSUBI_CONFIG")
        .env_remove("MUSUBI_LISTEN")
        .env("DATABASE_URL", database_url)
        .env("REDIS_URL", redis)
        .env("MUSUBI_LOG", "warn")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
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
        Ok(addr) => Replica { child, addr },
        Err(_) => {
            let _ = child.kill();
            panic!("musubi did not announce its URL");
        }
    }
}

/// A GraphQL POST over plain HTTP/1.1 to a replica; returns the JSON body.
async fn graphql(addr: &str, token: &str, association: &str, query: &str, vars: Value) -> Value {
    let body = json!({"query": query, "variables": vars}).to_string();
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    let request = format!(
        "POST /graphql HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\n\
         Authorization: Bearer {token}\r\nMusubi-Association: {association}\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    s.write_all(request.as_bytes()).await.unwrap();
    let mut raw = Vec::new();
    tokio::time::timeout(Duration::from_secs(30), s.read_to_end(&mut raw))
        .await
        .expect("the replica answers")
        .unwrap();
    let text = String::from_utf8(raw).unwrap();
    let (head, body) = text.split_once("\r\n\r\n").unwrap();
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    let body = if head
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked")
    {
        dechunk(body)
    } else {
        body.to_owned()
    };
    serde_json::from_str(&body).unwrap_or_else(|_| panic!("not JSON: {body}"))
}

fn dechunk(mut s: &str) -> String {
    let mut out = String::new();
    while let Some((size, rest)) = s.split_once("\r\n") {
        let n = usize::from_str_radix(size.trim(), 16).unwrap();
        if n == 0 {
            break;
        }
        out.push_str(&rest[..n]);
        s = &rest[n + 2..];
    }
    out
}

async fn token(services: &Services, email: &str) -> String {
    services
        .sign_in(
            email,
            DEMO_PASSWORD,
            SessionKind::Api,
            &RequestMeta::default(),
        )
        .await
        .unwrap()
        .token
}

#[tokio::test(flavor = "multi_thread")]
async fn a_subscriber_on_one_replica_receives_a_comment_posted_through_another() {
    let redis = redis_url();
    let db = TestDb::new().await;
    // Seeded through the services before the replicas start: people, one patient group.
    let services = db.operator().await;
    assert!(musubi_demo::seed_if_empty(&services).await.unwrap());
    let tenant = services.resolve_tenant("minatogawa").await.unwrap();
    let nurse_token = token(&services, NURSE).await;
    let doctor_token = token(&services, DOCTOR).await;
    let nurse = services.authenticate(&nurse_token).await.unwrap().unwrap();
    let doctor_id = services
        .authenticate(&doctor_token)
        .await
        .unwrap()
        .unwrap()
        .user()
        .id;
    let group = group_with_members(
        &services,
        &Actor::new(&nurse, &tenant, &RequestMeta::default()),
        GroupKind::Patient,
        &group_input("山田 太郎 様"),
        &[doctor_id],
    )
    .await;
    let topic = services
        .create_topic(
            &Actor::new(&nurse, &tenant, &RequestMeta::default()),
            &musubi_domain::topics::NewTopic {
                group_id: group,
                title: "訪問報告",
                body: "本日の訪問記録です。",
                scope: Scope::EVERYONE,
                important: false,
            },
        )
        .await
        .unwrap();

    let url = db.url();
    let first = start_replica(&url, &redis);
    let second = start_replica(&url, &redis);
    assert_ne!(first.addr, second.addr);

    let mut ws = GqlWs::connect(&first.addr, json!({"token": doctor_token}))
        .await
        .unwrap_or_else(|e| panic!("connect to the first replica: {e}"));
    ws.subscribe(
        "ev",
        "subscription { events { id kind groupId topicId commentIds unread { total } } }",
        json!({}),
    )
    .await;

    let post = "mutation($t: ID!, $b: String!) { postComment(topicId: $t, body: $b) }";
    // The subscription starts asynchronously on the first replica: post through the second
    // until a comment arrives, then once more and expect exactly that one.
    let mut arrived = false;
    for i in 0..60 {
        let r = graphql(
            &second.addr,
            &nurse_token,
            "minatogawa",
            post,
            json!({"t": topic, "b": format!("同期 {i}")}),
        )
        .await;
        assert!(r["errors"].is_null(), "{r}");
        match ws.next_reply("ev", Duration::from_millis(500)).await {
            Some(Reply::Next(p)) if p["errors"].is_null() => {
                arrived = true;
                break;
            }
            Some(other) => panic!("subscription failed: {other:?}"),
            None => continue,
        }
    }
    assert!(
        arrived,
        "no comment posted through the second replica arrived"
    );
    while ws
        .next_reply("ev", Duration::from_millis(500))
        .await
        .is_some()
    {}

    let r = graphql(
        &second.addr,
        &nurse_token,
        "minatogawa",
        post,
        json!({"t": topic, "b": "明日の訪問は14時に変更です。"}),
    )
    .await;
    let comment = r["data"]["postComment"]
        .as_str()
        .unwrap_or_else(|| panic!("{r}"))
        .to_owned();
    let event = ws.next_data("ev", Duration::from_secs(15)).await["events"].clone();
    assert_eq!(event["kind"], "COMMENT_POSTED", "{event}");
    assert_eq!(event["commentIds"], json!([comment]), "{event}");
    assert_eq!(event["groupId"], group.to_string());
    assert_eq!(event["topicId"], topic.to_string());
    assert!(event["unread"]["total"].as_i64().unwrap() >= 1, "{event}");
    ws.close().await;
}
