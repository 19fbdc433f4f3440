//! Requests dropped at random points of their database work (a client that goes away, a
//! timeout) against an association with a single connection: no connection is ever left inside
//! a transaction, every acknowledged write is there, and no write is half there.

use musubi_domain::audit::RequestMeta;
use musubi_domain::operator::Operator;
use musubi_domain::sessions::Viewer;
use musubi_domain::types::GroupMemberStatus;
use musubi_domain::Actor;
use musubi_domain::Tenant;
use musubi_test_support::{test_config, TestApp};
use std::collections::HashSet;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tracing_subscriber::layer::SubscriberExt;
use uuid::Uuid;

const HOST: &str = "minatogawa";
const NURSE: &str = "kawamura@minatogawa.example";

/// Counts PostgreSQL's complaints about transaction state, as sqlx reports the server's
/// notices.
#[derive(Clone, Default)]
struct Complaints(Arc<AtomicUsize>, Arc<Mutex<Vec<String>>>);

impl<S: tracing::Subscriber> tracing_subscriber::Layer<S> for Complaints {
    fn on_event(&self, event: &tracing::Event<'_>, _: tracing_subscriber::layer::Context<'_, S>) {
        if event.metadata().target() != "sqlx::postgres::notice" {
            return;
        }
        struct Message(String);
        impl tracing::field::Visit for Message {
            fn record_debug(&mut self, _: &tracing::field::Field, value: &dyn std::fmt::Debug) {
                self.0.push_str(&format!("{value:?}"));
            }
            fn record_str(&mut self, _: &tracing::field::Field, value: &str) {
                self.0.push_str(value);
            }
        }
        let mut m = Message(String::new());
        event.record(&mut m);
        if m.0.contains("transaction in progress") {
            self.0.fetch_add(1, Ordering::SeqCst);
            self.1.lock().unwrap().push(m.0);
        }
    }
}

/// Whether the connection that serves the association now sits inside a transaction it did
/// not open: inside one, `now()` is the transaction's start, earlier than this statement's.
/// (A simple query: one message, so outside a transaction both are that message's arrival.)
async fn stranded_in_transaction(services: &Operator, tenant: &Tenant) -> bool {
    use sqlx::Row;
    let mut conn = services.db().tenant_read(tenant).await.unwrap();
    let row = sqlx::raw_sql("SELECT now() = statement_timestamp() AS fresh")
        .fetch_one(&mut *conn)
        .await
        .unwrap();
    !row.get::<bool, _>("fresh")
}

async fn viewer(app: &TestApp, email: &str) -> Viewer {
    let token = app.demo_token(email).await;
    app.services()
        .authenticate(&token)
        .await
        .unwrap()
        .expect("a valid session")
}

// One thread: every task (the requests, the pool's returns) runs where this test's
// subscriber is the default, so nothing process-wide is changed.
#[tokio::test]
async fn cancelled_requests_never_strand_a_connection_or_half_a_write() {
    let complaints = Complaints::default();
    let subscriber = tracing_subscriber::registry()
        .with(complaints.clone())
        .with(tracing_subscriber::filter::LevelFilter::TRACE);
    let _listening = tracing::subscriber::set_default(subscriber);

    // One connection: a stranded transaction would catch the very next request.
    let app =
        TestApp::demo_with_config(test_config(&[("MUSUBI_DB_TENANT_CONNECTIONS", "1")])).await;
    let services = app.operator();
    let tenant = services.resolve_tenant(HOST).await.unwrap();
    let nurse = viewer(&app, NURSE).await;
    let group = services
        .my_groups(&nurse)
        .await
        .unwrap()
        .into_iter()
        .find(|g| {
            g.association_slug == HOST && g.group.my_status == Some(GroupMemberStatus::Active)
        })
        .expect("the nurse is in a group of the association")
        .group
        .id;
    let meta = RequestMeta::new("192.0.2.1", "cancellation test");
    let topic = services
        .create_topic(
            &Actor::new(&nurse, &tenant, &meta),
            &musubi_domain::topics::NewTopic {
                group_id: group,
                title: "キャンセル試験",
                body: "本文",
                scope: musubi_domain::groups::Scope::EVERYONE,
                important: false,
            },
        )
        .await
        .unwrap();

    let rounds: usize = std::env::var("MUSUBI_CANCEL_ROUNDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(400);
    let seed = std::env::var("MUSUBI_CANCEL_SEED")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| fastrand::u64(..));
    eprintln!("seed {seed} (MUSUBI_CANCEL_SEED), {rounds} rounds (MUSUBI_CANCEL_ROUNDS)");
    let mut rng = fastrand::Rng::with_seed(seed);
    let mut acknowledged = HashSet::new();
    let mut attempted = 0usize;
    for round in 0..rounds {
        // A few requests at once, each given a random moment to be dropped at: inside the
        // acquire, the BEGIN, a statement, the COMMIT, or not at all.
        let mut tasks = Vec::new();
        for i in 0..6 {
            let body = format!("r{round}-{i}");
            // Most are cut off within the first few milliseconds; some are given time enough.
            let deadline = if rng.u8(0..10) < 7 {
                Duration::from_micros(rng.u64(0..4_000))
            } else {
                Duration::from_millis(rng.u64(4..200))
            };
            let (s, v, t, m) = (
                services.clone(),
                nurse.clone(),
                tenant.clone(),
                meta.clone(),
            );
            let op = rng.u8(0..4);
            attempted += usize::from(op < 2);
            tasks.push(tokio::spawn(async move {
                let work = async {
                    match op {
                        0 | 1 => s
                            .post_comment(&Actor::new(&v, &t, &m), topic, &body, op == 1)
                            .await
                            .map(|_| Some(body)),
                        2 => s
                            .open_topic(&Actor::new(&v, &t, &m), topic, true)
                            .await
                            .map(|_| None),
                        _ => s
                            .mark_group_read(&Actor::new(&v, &t, &m), group)
                            .await
                            .map(|_| None),
                    }
                };
                match tokio::time::timeout(deadline, work).await {
                    Ok(Ok(body)) => body,
                    Ok(Err(e)) => panic!("a request that was not cancelled failed: {e:?}"),
                    Err(_) => None,
                }
            }));
        }
        for t in tasks {
            if let Some(body) = t.await.unwrap() {
                acknowledged.insert(body);
            }
        }
        if round % 50 == 49 {
            assert!(
                !stranded_in_transaction(&services, &tenant).await,
                "round {round}: the association's connection was left inside a transaction"
            );
        }
    }
    // Whatever was still finishing in the background settles.
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(!stranded_in_transaction(&services, &tenant).await);

    // A request after the storm is served and its write is seen from another connection.
    let last = services
        .post_comment(&Actor::new(&nurse, &tenant, &meta), topic, "最後", false)
        .await
        .unwrap();

    let mut tx = services.db().tenant_tx(&tenant).await.unwrap();
    let rows: Vec<(Uuid, String)> =
        sqlx::query_as("SELECT id, body FROM comments WHERE topic_id = $1 AND seq > 1")
            .bind(topic)
            .fetch_all(&mut *tx)
            .await
            .unwrap();
    let present: HashSet<String> = rows.iter().map(|(_, b)| b.clone()).collect();
    assert!(present.contains("最後"));
    for body in &acknowledged {
        assert!(
            present.contains(body),
            "acknowledged comment {body} is missing"
        );
    }
    // Each comment that is there is there whole: its audit record and its live event.
    let ids: Vec<Uuid> = rows.iter().map(|(id, _)| *id).collect();
    let audited: i64 = sqlx::query_scalar(
        "SELECT count(DISTINCT object_id) FROM audit_log \
         WHERE action = 'comment.create' AND object_id = ANY($1)",
    )
    .bind(ids.iter().map(Uuid::to_string).collect::<Vec<_>>())
    .fetch_one(&mut *tx)
    .await
    .unwrap();
    let announced: i64 = sqlx::query_scalar(
        "SELECT count(DISTINCT c) FROM core.events, unnest(comment_ids) AS c \
         WHERE kind = 'comment_posted' AND c = ANY($1)",
    )
    .bind(&ids)
    .fetch_one(&mut *tx)
    .await
    .unwrap();
    tx.commit().await.unwrap();
    assert_eq!(
        audited,
        ids.len() as i64,
        "every comment present is audited"
    );
    assert_eq!(
        announced,
        ids.len() as i64,
        "every comment present is announced"
    );
    assert!(ids.contains(&last.uuid()));
    eprintln!(
        "{attempted} writes attempted, {} acknowledged, {} present",
        acknowledged.len(),
        ids.len() - 1
    );
    // Some were cut off and some went through, or the test proved nothing.
    assert!(acknowledged.len() < attempted && !acknowledged.is_empty());

    let heard = complaints.1.lock().unwrap().clone();
    assert_eq!(
        complaints.0.load(Ordering::SeqCst),
        0,
        "PostgreSQL complained about transaction state: {heard:?}"
    );
}
