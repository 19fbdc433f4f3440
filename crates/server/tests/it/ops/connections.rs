//! One setting bounds the PostgreSQL connections a replica opens, however many associations it
//! serves: tenant connections are shared, keyed to one association at a time, and re-keyed
//! when another association needs one.

use axum::body::Body;
use futures_util::future::join_all;
use http::{Request, StatusCode};
use musubi_db::{Db, NewAssociation};
use musubi_domain::operator::Operator;
use musubi_test_support::{test_config, TestDb};
use sqlx::PgConnection;
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tower::ServiceExt;

const ASSOCIATIONS: usize = 300;
/// `MUSUBI_DB_MAX_CONNECTIONS` of the replica under test.
const BOUND: u32 = 6;

/// Connections of `application` to this database, as PostgreSQL counts them.
async fn connections_of(admin: &mut PgConnection, application: &str) -> i64 {
    sqlx::query_scalar(
        "SELECT count(*) FROM pg_stat_activity \
         WHERE datname = current_database() AND application_name = $1",
    )
    .bind(application)
    .fetch_one(admin)
    .await
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replica_serving_300_associations_never_holds_more_connections_than_its_bound() {
    let t = TestDb::new().await;
    for i in 0..ASSOCIATIONS {
        t.db.create_association(&NewAssociation {
            slug: format!("a{i:03}"),
            name: format!("第{i}医師会"),
            area: String::new(),
            description: format!("説明{i}"),
        })
        .await
        .unwrap();
    }

    // The replica: its own handle, named so that PostgreSQL's count is of its connections.
    let application = format!("musubi_bound_{}", uuid::Uuid::new_v4().simple());
    let db = Db::connect(
        t.options.clone().application_name(&application),
        BOUND,
        Duration::from_secs(60),
    )
    .await
    .unwrap();
    let config = test_config(&[]);
    let services = musubi::services(&config, db.clone()).await.unwrap();
    let operator = Operator::new(services, db.clone());
    let router = musubi::app(&config, &operator);

    // Watch pg_stat_activity while every association is asked for at once, twice over.
    let done = Arc::new(AtomicBool::new(false));
    let most = Arc::new(AtomicI64::new(0));
    let watcher = {
        let (done, most, application) = (done.clone(), most.clone(), application.clone());
        let mut admin = t.admin().await;
        tokio::spawn(async move {
            while !done.load(Ordering::Relaxed) {
                let n = connections_of(&mut admin, &application).await;
                most.fetch_max(n, Ordering::Relaxed);
                tokio::time::sleep(Duration::from_millis(2)).await;
            }
        })
    };
    let ask = |slug: String| {
        let router = router.clone();
        async move {
            let body = serde_json::json!({ "query": "{ association { slug description } }" });
            let req = Request::post("/graphql")
                .header("content-type", "application/json")
                .header("musubi-association", &slug)
                .body(Body::from(body.to_string()))
                .unwrap();
            let resp = router.oneshot(req).await.unwrap();
            let status = resp.status();
            let bytes = axum::body::to_bytes(resp.into_body(), 1 << 20)
                .await
                .unwrap();
            let json: serde_json::Value = serde_json::from_slice(&bytes).unwrap();
            (slug, status, json)
        }
    };
    for _round in 0..2 {
        let answers = join_all((0..ASSOCIATIONS).map(|i| ask(format!("a{i:03}")))).await;
        for (slug, status, json) in answers {
            assert_eq!(status, StatusCode::OK, "{slug}: {json}");
            assert_eq!(json["data"]["association"]["slug"], slug.as_str(), "{json}");
            let i: usize = slug[1..].parse().unwrap();
            assert_eq!(
                json["data"]["association"]["description"],
                format!("説明{i}").as_str(),
                "each association's own schema answered: {json}"
            );
        }
    }
    done.store(true, Ordering::Relaxed);
    watcher.await.unwrap();

    let most = most.load(Ordering::Relaxed);
    assert!(
        most <= i64::from(BOUND),
        "{most} connections open at once, bound {BOUND}"
    );
    assert!(
        most >= 2,
        "the replica was seen using its connections ({most})"
    );
    assert!(db.open_connections() <= BOUND as usize);
    db.close().await;
}

/// The server process and role behind a tenant connection.
async fn backend(conn: &mut PgConnection) -> (i32, String) {
    sqlx::query_as("SELECT pg_backend_pid(), current_user::text")
        .fetch_one(conn)
        .await
        .unwrap()
}

/// Associations alpha, beta and gamma.
async fn three_associations(t: &TestDb) -> Vec<musubi_db::Tenant> {
    let mut tenants = Vec::new();
    for slug in ["alpha", "beta", "gamma"] {
        tenants.push(
            t.db.create_association(&NewAssociation {
                slug: slug.into(),
                name: slug.into(),
                area: String::new(),
                description: String::new(),
            })
            .await
            .unwrap(),
        );
    }
    tenants
}

#[tokio::test]
async fn a_connection_stays_with_its_association_and_is_taken_over_only_when_none_is_free() {
    let t = TestDb::new().await;
    let tenants = three_associations(&t).await;
    // Two tenant connections for three associations (bound 4: two shared, two tenant).
    assert_eq!(musubi_db::split_connections(4), (2, 2));
    let db = Db::connect(t.options.clone(), 4, Duration::from_secs(30))
        .await
        .unwrap();
    let mut a = db.tenant_read(&tenants[0]).await.unwrap();
    let (pid_a, role_a) = backend(&mut a).await;
    drop(a);
    tokio::time::sleep(Duration::from_millis(50)).await;
    // The same association gets its warm connection back.
    let mut again = db.tenant_read(&tenants[0]).await.unwrap();
    assert_eq!(backend(&mut again).await, (pid_a, role_a.clone()));
    drop(again);
    tokio::time::sleep(Duration::from_millis(50)).await;

    // Two more associations at once: one opens the second connection, the other must take
    // the idle one over, re-keyed to its own role.
    let mut b = db.tenant_read(&tenants[1]).await.unwrap();
    let mut c = db.tenant_read(&tenants[2]).await.unwrap();
    let (pid_b, role_b) = backend(&mut b).await;
    let (pid_c, role_c) = backend(&mut c).await;
    assert_ne!(pid_b, pid_c);
    assert!(
        [pid_b, pid_c].contains(&pid_a),
        "the idle connection was reused"
    );
    assert!(role_b.ends_with(tenants[1].schema_name()), "{role_b}");
    assert!(role_c.ends_with(tenants[2].schema_name()), "{role_c}");
    assert_ne!(role_b, role_a);
    assert!(db.open_connections() <= 4);

    // With both taken, a third association waits for one and is served when it comes back.
    let waiting = {
        let db = db.clone();
        let tenant = tenants[0].clone();
        tokio::spawn(async move {
            let mut conn = db.tenant_read(&tenant).await.unwrap();
            sqlx::query_scalar::<_, String>("SELECT current_user::text")
                .fetch_one(&mut *conn)
                .await
                .unwrap()
        })
    };
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert!(!waiting.is_finished(), "no third connection was opened");
    drop(b);
    let role = tokio::time::timeout(Duration::from_secs(10), waiting)
        .await
        .expect("served once a connection came back")
        .unwrap();
    assert_eq!(role, role_a);
    drop(c);
    db.close().await;
}

/// Fewer connections in use at once than open: a third association waits for one in use to
/// come back even though its own warm connection is idle, and a connection coming back goes
/// to a request of the association it is keyed to, so plans are not lost to the cap.
#[tokio::test]
async fn connections_in_use_are_capped_below_those_open_and_come_back_to_their_association() {
    let t = TestDb::new().await;
    let tenants = three_associations(&t).await;
    // Eight connections (three shared, five tenant), two of them in use at once.
    assert_eq!(musubi_db::split_connections(8), (3, 5));
    let db = Db::connect(t.options.clone(), 8, Duration::from_secs(30))
        .await
        .unwrap()
        .with_tenant_caps(2, 2);
    // Each association's connection, opened and left idle.
    let mut pids = Vec::new();
    for tenant in &tenants {
        let mut conn = db.tenant_read(tenant).await.unwrap();
        pids.push(backend(&mut conn).await.0);
        drop(conn);
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(db.tenant_connections().open, 3, "three open, all idle");

    let a = db.tenant_read(&tenants[0]).await.unwrap();
    let mut b = db.tenant_read(&tenants[1]).await.unwrap();
    let ask = |i: usize| {
        let db = db.clone();
        let tenant = tenants[i].clone();
        tokio::spawn(async move {
            let mut conn = db.tenant_read(&tenant).await.unwrap();
            backend(&mut conn).await.0
        })
    };
    let gamma = ask(2);
    tokio::time::sleep(Duration::from_millis(150)).await;
    assert!(
        !gamma.is_finished(),
        "two in use: gamma waits though its connection is idle"
    );
    // beta asks again while gamma waits: beta's connection, coming back, goes to beta.
    let beta_again = ask(1);
    tokio::time::sleep(Duration::from_millis(50)).await;
    let pid_b = backend(&mut b).await.0;
    drop(b);
    let again = tokio::time::timeout(Duration::from_secs(10), beta_again)
        .await
        .expect("beta served when its connection came back")
        .unwrap();
    assert_eq!(again, pid_b, "its own warm connection");
    drop(a);
    let pid_gamma = tokio::time::timeout(Duration::from_secs(10), gamma)
        .await
        .expect("gamma served once a connection in use came back")
        .unwrap();
    assert_eq!(
        pid_gamma, pids[2],
        "gamma's own idle connection, not a re-keyed one"
    );
    assert_eq!(db.tenant_connections().rekeys, 0);
    assert_eq!(db.tenant_connections().open, 3);
    db.close().await;
}

/// Requests waiting for a connection are served in the order they came, however long they
/// wait: a waiter looking again (once a second, in case a place was freed without being
/// handed on) keeps its place. They once went to the back of the line at each look, ten
/// times a second, which mixed up the order and cost more CPU the longer the line grew.
#[tokio::test]
async fn requests_waiting_for_a_connection_are_served_in_the_order_they_came() {
    let t = TestDb::new().await;
    let tenants = three_associations(&t).await;
    let db = Db::connect(t.options.clone(), 8, Duration::from_secs(30))
        .await
        .unwrap()
        .with_tenant_caps(1, 1);
    let held = db.tenant_read(&tenants[0]).await.unwrap();
    let served = Arc::new(std::sync::Mutex::new(Vec::new()));
    let mut waiters = Vec::new();
    for i in 0..12usize {
        let (db, served) = (db.clone(), Arc::clone(&served));
        let tenant = tenants[i % 3].clone();
        waiters.push(tokio::spawn(async move {
            let conn = db.tenant_read(&tenant).await.unwrap();
            served.lock().unwrap().push(i);
            // Long enough for the next in line to be handed the connection, not to find it.
            tokio::time::sleep(Duration::from_millis(5)).await;
            drop(conn);
        }));
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // Longer than two looks of every waiter.
    tokio::time::sleep(Duration::from_millis(2_500)).await;
    assert!(
        served.lock().unwrap().is_empty(),
        "one in use at once: all wait"
    );
    drop(held);
    for w in waiters {
        tokio::time::timeout(Duration::from_secs(10), w)
            .await
            .expect("every waiter served")
            .unwrap();
    }
    assert_eq!(*served.lock().unwrap(), (0..12).collect::<Vec<_>>());
    db.close().await;
}
