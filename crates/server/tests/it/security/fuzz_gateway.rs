//! Fuzzing the gateway: random and adversarial GraphQL documents and JSON bodies, sent
//! anonymously and as a signed-in member. Whatever arrives, the server answers in the GraphQL
//! shape, never with a 5xx, within a bounded time, and without growing without bound.
//!
//! Runs for `MUSUBI_FUZZ_SECONDS` (default 20) from `MUSUBI_FUZZ_SEED` (default: random, and
//! printed, so a failure can be replayed).

use axum::body::Body;
use http::Request;
use musubi_test_support::TestApp;
use std::time::{Duration, Instant};

const PER_REQUEST: Duration = Duration::from_secs(5);
const MAX_GROWTH_BYTES: u64 = 512 * 1024 * 1024;

/// Valid operations the mutations start from.
const CORPUS: &[&str] = &[
    "{ server { version } }",
    "query Home { me { name } myGroups { id name unread } }",
    "{ group(id: \"00000000-0000-0000-0000-000000000000\") { id name topics { id title } } }",
    "mutation { postComment(topicId: \"x\", body: \"血圧 150/90\") { id } }",
    "query Q($id: ID!) { topic(id: $id) { title comments { body author { name } } } }",
    "{ ...F } fragment F on Query { associations { slug name } }",
    "{ a: server { version } b: server { version } ... on Query { associations { slug } } }",
    "subscription { events { __typename } }",
    "{ __schema { types { name fields { name } } } }",
    "mutation { createGroup(input: {name: \"伊藤さん\", kind: PATIENT, scope: [NURSE]}) { id } }",
];

const PIECES: &[&str] = &[
    "{", "}", "[", "]", "(", ")", "...", "\"", "\"\"\"", "#", "\n", "$", ":", "@", "!", "=", "|",
    "&", "\\", "\u{0}", "\u{202e}", "日本", "query", "fragment", "on", "mutation", "-1e999", "0x",
    "\u{fffd}", "\r", ",", "null", "true",
];

fn rss_bytes() -> u64 {
    std::fs::read_to_string("/proc/self/statm")
        .ok()
        .and_then(|s| {
            s.split_whitespace()
                .nth(1)
                .and_then(|v| v.parse::<u64>().ok())
        })
        .map_or(0, |pages| pages * 4096)
}

fn mutate(rng: &mut fastrand::Rng, text: &str) -> String {
    let mut chars: Vec<char> = text.chars().collect();
    for _ in 0..rng.usize(1..8) {
        let at = rng.usize(0..=chars.len());
        match rng.u8(0..4) {
            0 if !chars.is_empty() => {
                let end = (at + rng.usize(1..6)).min(chars.len());
                chars.drain(at.min(end)..end);
            }
            1 => {
                let piece = PIECES[rng.usize(0..PIECES.len())];
                chars.splice(at..at, piece.chars());
            }
            2 => chars.insert(at, char::from_u32(rng.u32(0..0x3_0000)).unwrap_or('x')),
            _ if !chars.is_empty() => {
                let from = rng.usize(0..chars.len());
                let end = (from + rng.usize(1..20)).min(chars.len());
                let copy: Vec<char> = chars[from..end].to_vec();
                chars.splice(
                    at..at,
                    copy.into_iter()
                        .cycle()
                        .take((end - from) * rng.usize(1..50)),
                );
            }
            _ => {}
        }
    }
    chars.into_iter().collect()
}

/// Documents built to be expensive rather than random.
fn adversarial(rng: &mut fastrand::Rng) -> String {
    let depth = rng.usize(1..20_000);
    match rng.u8(0..7) {
        0 => format!(
            "{{ group(id: {}1{}) {{ id }} }}",
            "{a:".repeat(depth),
            "}".repeat(depth)
        ),
        1 => format!(
            "{{ group(id: {}1{}) {{ id }} }}",
            "[".repeat(depth),
            "]".repeat(depth)
        ),
        2 => format!(
            "{}{}",
            "{ a ".repeat(depth),
            "}".repeat(rng.usize(0..=depth))
        ),
        3 => {
            // Fragments each spreading the previous several times.
            let (levels, fan) = (rng.usize(2..60), rng.usize(2..6));
            let mut q = format!(
                "{{ ...F{} }} fragment F0 on Query {{ server {{ version }} }}",
                levels - 1
            );
            for i in 1..levels {
                let spreads = format!("...F{} ", i - 1).repeat(fan);
                q.push_str(&format!(" fragment F{i} on Query {{ {spreads} }}"));
            }
            q
        }
        4 => {
            let aliases: String = (0..rng.usize(1..3_000))
                .map(|i| format!("a{i}: server {{ version }} "))
                .collect();
            format!("{{ {aliases} }}")
        }
        5 => format!("{{ a(s: \"{}) }}", "\\u".repeat(depth)),
        _ => format!(
            "{{ a {} }}",
            "@include(if: true) ".repeat(rng.usize(1..500))
        ),
    }
}

fn random_json(rng: &mut fastrand::Rng, depth: usize) -> String {
    match rng.u8(0..8) {
        _ if depth > 6 => "1".into(),
        0 => "null".into(),
        1 => rng.i64(..).to_string(),
        2 => format!("\"{}\"", "x".repeat(rng.usize(0..10))),
        3 => format!("[{}]", random_json(rng, depth + 1)),
        4 => format!("{{\"query\": {}}}", random_json(rng, depth + 1)),
        5 => format!(
            "{{\"variables\": {}, \"query\": \"{{ a }}\"}}",
            random_json(rng, depth + 1)
        ),
        6 => format!(
            "{}1{}",
            "[".repeat(rng.usize(0..300)),
            "]".repeat(rng.usize(0..300))
        ),
        _ => String::from_utf8_lossy(
            &(0..rng.usize(0..40))
                .map(|_| rng.u8(..))
                .collect::<Vec<_>>(),
        )
        .into_owned(),
    }
}

fn body_for(rng: &mut fastrand::Rng) -> String {
    let query = match rng.u8(0..10) {
        0..=4 => {
            let seed_doc = CORPUS[rng.usize(0..CORPUS.len())];
            mutate(rng, seed_doc)
        }
        5..=7 => adversarial(rng),
        _ => return random_json(rng, 0),
    };
    let request = serde_json::json!({ "query": query });
    if rng.u8(0..5) == 0 {
        serde_json::json!([request, { "query": CORPUS[0] }]).to_string()
    } else {
        request.to_string()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_gateway_survives_random_and_adversarial_input() {
    let seed = std::env::var("MUSUBI_FUZZ_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| fastrand::u64(..));
    let seconds = std::env::var("MUSUBI_FUZZ_SECONDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(20);
    eprintln!("fuzz: seed {seed} (MUSUBI_FUZZ_SEED={seed} replays it), {seconds} s");
    let mut rng = fastrand::Rng::with_seed(seed);

    let app = TestApp::demo().await;
    let token = app.demo_token("aoki@minatogawa.example").await;
    let baseline = rss_bytes();
    let deadline = Instant::now() + Duration::from_secs(seconds);
    let mut sent = 0u64;
    while Instant::now() < deadline {
        let body = body_for(&mut rng);
        let mut req = Request::post("/graphql").header("content-type", "application/json");
        if rng.bool() {
            req = req
                .header("musubi-association", "minatogawa")
                .header("authorization", format!("Bearer {token}"));
        }
        let (status, _, text) = tokio::time::timeout(
            PER_REQUEST,
            app.send(req.body(Body::from(body.clone())).unwrap()),
        )
        .await
        .unwrap_or_else(|_| panic!("seed {seed}: no answer within {PER_REQUEST:?} to {body:.300}"));
        assert!(
            status.as_u16() < 500,
            "seed {seed}: {status} for {body:.300}: {text:.300}"
        );
        let answer: serde_json::Value = serde_json::from_str(&text)
            .unwrap_or_else(|_| panic!("seed {seed}: not JSON for {body:.300}: {text:.300}"));
        let shaped = |r: &serde_json::Value| r.get("data").is_some() || r["errors"].is_array();
        let ok = match answer.as_array() {
            Some(items) => items.iter().all(shaped),
            None => shaped(&answer),
        };
        assert!(
            ok,
            "seed {seed}: not a GraphQL answer for {body:.300}: {text:.300}"
        );
        assert!(
            !text.contains("\"INTERNAL\""),
            "seed {seed}: INTERNAL for {body:.300}: {text:.300}"
        );
        sent += 1;
    }
    let growth = rss_bytes().saturating_sub(baseline);
    eprintln!(
        "fuzz: {sent} requests, memory grew {} MiB",
        growth / (1024 * 1024)
    );
    assert!(
        sent > 50,
        "seed {seed}: only {sent} requests in {seconds} s"
    );
    assert!(
        growth < MAX_GROWTH_BYTES,
        "seed {seed}: memory grew by {growth} bytes"
    );
    // Still serving the member afterwards.
    let r = app
        .gql(
            "{ me { name } }",
            serde_json::json!({}),
            Some(&token),
            Some("minatogawa"),
        )
        .await;
    assert!(r["data"]["me"]["name"].is_string(), "{r}");
}
