//! The number of SQL statements behind the busiest pages does not grow with the data: opening
//! a topic (100 comments, 10 readers on each) and the home page (50 groups with unread).
//! Counted exactly on the wire (see `musubi_test_support::sqlcount`): BEGIN and COMMIT count.

use musubi_db::accounts::{self as accounts, NewUser};
use musubi_domain::audit::RequestMeta;
use musubi_domain::groups::{GroupKind, Scope};
use musubi_domain::operator::Operator;
use musubi_domain::sessions::Viewer;
use musubi_domain::topics::{Audience, Reading, TopicView, Window};
use musubi_domain::types::PersonId;
use musubi_domain::types::{DoctorKind, Profession};
use musubi_domain::Actor;
use musubi_domain::{Services, Tenant};
use musubi_test_support::sqlcount::{Measured, SqlCounter};
use musubi_test_support::{
    api_session_token, association, group_input, group_with_members, insert_member, TestDb,
};
use std::time::Duration;
use uuid::Uuid;

/// Opening a topic: one transaction whatever its length. Measured: 10 for a reader with
/// everything unread (BEGIN with the search path, access, the unread counter taken and the
/// footprints written in one, comments, readers, members, both events in one, attachments,
/// the audit record with its lock in one, COMMIT), 9 with nothing unread (until 2026-12-07,
/// 13 and 11).
const OPEN_TOPIC_MAX: usize = 10;
/// The home page: the directory query, then per host association one statement for its
/// lines and counts, on that association's own connection. Measured: 2 for one.
const HOME_MAX: usize = 2;
/// The badges: the directory query and the counts per host association.
const UNREAD_COUNTS_MAX: usize = 2;
/// "My groups": the directory with names, then one transaction per host association.
const MY_GROUPS_MAX: usize = 5;
/// One mailed digest, from claiming its job to marking it sent: claim, what the job needs to
/// know (address, settings, mutes, an earlier attempt), the directory, the unread per host
/// association, recording the mail with the push it announces (BEGIN, the record with its
/// job's effects started, the push, COMMIT), then sent and done together. Digests come by the
/// thousand each minute, so each statement counts. Measured: 9 (until 2026-12-06, 18).
const DIGEST_MAX: usize = 9;
/// A message to someone one already writes with: finding the pair's conversation, one read of
/// its topic and people, then the post's transaction (BEGIN, access, the people and the pair
/// with whether all are members of the host, the topic's count, the comment, search, unread,
/// the event, the audit record with its lock, COMMIT). Measured: 12 (earlier on 2026-12-07,
/// 13 with the lock apart; before, 19: a locked transaction of its own, the topic read apart,
/// three reads for the policy).
const MESSAGE_MAX: usize = 12;

fn client() -> RequestMeta {
    RequestMeta::new("192.0.2.20", "query-count-test")
}

async fn person(db: &TestDb, s: &Services, tenant: &Tenant, key: &str, doctor: bool) -> Viewer {
    let id = insert_member(
        &db.db,
        tenant.id,
        &NewUser {
            email: &format!("{key}@alpha.example"),
            name: key,
            name_kana: key,
            profession: if doctor {
                Profession::Physician
            } else {
                Profession::Nurse
            },
            doctor_kind: doctor.then_some(DoctorKind::Clinic),
            password_hash: None,
        },
    )
    .await;
    let token = api_session_token(&db.db, id, "192.0.2.20").await;
    s.authenticate(&token).await.unwrap().unwrap()
}

/// A database with one association, services to build data with, and counted services
/// (their own pool through the counting proxy) to measure with.
struct Bench {
    db: TestDb,
    s: Operator,
    counted: Operator,
    counter: SqlCounter,
    tenant: Tenant,
}

impl Bench {
    async fn new() -> Self {
        let db = TestDb::new().await;
        let s = db.operator().await;
        let tenant = s
            .create_association(&association("alpha", "アルファ医師会"))
            .await
            .unwrap();
        let counter = SqlCounter::start(&db.options).await;
        let counted_db = counter.db().await;
        let counted = Services::build(
            counted_db.clone(),
            musubi_auth::ratelimit::RateLimiter::in_process(),
        )
        .await
        .unwrap();
        let counted = Operator::new(counted, counted_db);
        Self {
            db,
            s,
            counted,
            counter,
            tenant,
        }
    }

    async fn group(&self, owner: &Viewer, kind: GroupKind, members: &[&Viewer]) -> Uuid {
        let members: Vec<PersonId> = members.iter().map(|m| m.user().id).collect();
        group_with_members(
            &self.s,
            &Actor::new(owner, &self.tenant, &client()),
            kind,
            &group_input(format!("グループ{}", Uuid::new_v4().simple())),
            &members,
        )
        .await
        .into()
    }

    /// A topic by `author` with `comments` comments in all (its body included).
    async fn topic(&self, author: &Viewer, group: Uuid, comments: usize) -> Uuid {
        let t = self
            .s
            .create_topic(
                &Actor::new(author, &self.tenant, &client()),
                &musubi_domain::topics::NewTopic {
                    group_id: group.into(),
                    title: "訪問看護報告",
                    body: "BP 132/78、SpO2 94%（O2 1L）、体温 36.8℃",
                    scope: Scope::EVERYONE,
                    important: false,
                },
            )
            .await
            .unwrap();
        for i in 1..comments {
            self.s
                .post_comment(
                    &Actor::new(author, &self.tenant, &client()),
                    t,
                    &format!("経過 {i}：食事摂取量 7割、排便あり。"),
                    i % 10 == 0,
                )
                .await
                .unwrap();
        }
        t.into()
    }

    async fn open_counted(&self, viewer: &Viewer, topic: Uuid) -> Measured {
        let (view, m) = self
            .counter
            .measure(self.counted.open_topic(
                &Actor::new(viewer, &self.tenant, &client()),
                topic.into(),
                true,
            ))
            .await;
        view.unwrap();
        m
    }

    /// As the API opens a topic that was not asked for its audience.
    async fn open_unlisted_counted(&self, viewer: &Viewer, topic: Uuid) -> (TopicView, Measured) {
        let (view, m) = self
            .counter
            .measure(self.counted.read_topic_with(
                &Actor::new(viewer, &self.tenant, &client()),
                topic.into(),
                Reading::Page,
                Window::All,
                Audience::IfMine,
            ))
            .await;
        (view.unwrap(), m)
    }
}

/// Whether every comment of `view` was read by one person only, named `name`.
fn read_only_by(view: &TopicView, name: &str) -> bool {
    view.comments
        .iter()
        .all(|c| c.readers.iter().map(|r| r.name.as_str()).eq([name]))
}

#[tokio::test]
async fn the_counter_counts_each_statement_including_begin_and_commit() {
    let db = TestDb::new().await;
    let counter = SqlCounter::start(&db.options).await;
    let counted = counter.db().await;
    let ((), m) = counter
        .measure(async {
            for _ in 0..3 {
                sqlx::query("SELECT 1")
                    .execute(counted.pool())
                    .await
                    .unwrap();
            }
        })
        .await;
    assert_eq!(m.count(), 3, "{}", m.listing());
    assert_eq!(m.new_connections, 0, "the pool was warm");

    let ((), m) = counter
        .measure(async {
            let mut tx = counted.pool().begin().await.unwrap();
            sqlx::query("SELECT $1::int")
                .bind(7)
                .fetch_one(&mut *tx)
                .await
                .unwrap();
            tx.commit().await.unwrap();
        })
        .await;
    assert_eq!(m.statements, vec!["BEGIN", "SELECT $1::int", "COMMIT"]);

    // Nothing is counted outside a measurement, and the uncounted pool is not seen at all.
    sqlx::query("SELECT 1")
        .execute(counted.pool())
        .await
        .unwrap();
    let ((), m) = counter
        .measure(async {
            sqlx::query("SELECT 2").execute(db.db.pool()).await.unwrap();
        })
        .await;
    assert_eq!(m.count(), 0, "{}", m.listing());

    // New connections show up as such, with their setup statements: a new handle checks the
    // shared connections' role on a connection of its own, then opens the shared pool.
    let fresh = musubi_db::Db::connect(counter.options(), 1, Duration::from_secs(30));
    let (fresh, m) = counter.measure(fresh).await;
    fresh.unwrap();
    assert_eq!(m.new_connections, 2);
    assert!(
        m.statements.iter().any(|s| s.contains("SET ROLE")),
        "{}",
        m.listing()
    );
}

#[tokio::test]
async fn opening_a_topic_costs_the_same_for_10_or_100_comments_with_10_readers_each() {
    let b = Bench::new().await;
    let doctor = person(&b.db, &b.s, &b.tenant, "doctor", true).await;
    let nurse = person(&b.db, &b.s, &b.tenant, "nurse", false).await;
    let mut readers = Vec::new();
    for i in 0..10 {
        readers.push(person(&b.db, &b.s, &b.tenant, &format!("reader{i}"), false).await);
    }
    let mut members: Vec<&Viewer> = readers.iter().collect();
    members.push(&nurse);
    let g = b.group(&doctor, GroupKind::Patient, &members).await;
    let short = b.topic(&nurse, g, 10).await;
    let long = b.topic(&nurse, g, 100).await;
    let warm = b.topic(&nurse, g, 2).await;
    for r in &readers {
        for t in [short, long] {
            b.s.open_topic(&Actor::new(r, &b.tenant, &client()), t.into(), true)
                .await
                .unwrap();
        }
    }
    let footprints: i64 = {
        let mut tx = b.db.db.tenant_tx(&b.tenant).await.unwrap();
        let n = sqlx::query_scalar("SELECT count(*) FROM footprints")
            .fetch_one(&mut *tx)
            .await
            .unwrap();
        tx.commit().await.unwrap();
        n
    };
    assert_eq!(footprints, 10 * 110, "10 readers on every comment");

    // Warm: the counted pool's connection is open and the statements are prepared.
    b.open_counted(&doctor, warm).await;

    // The doctor has every comment unread: footprints are written for all of them.
    let short_read = b.open_counted(&doctor, short).await;
    let long_read = b.open_counted(&doctor, long).await;
    // The author sees the readers of each comment and who has not read it.
    let short_author = b.open_counted(&nurse, short).await;
    let long_author = b.open_counted(&nurse, long).await;
    // Nothing left unread: reading again.
    let long_again = b.open_counted(&doctor, long).await;
    eprintln!(
        "open topic, reader with 100 unread: {} statements\n{}",
        long_read.count(),
        long_read.listing()
    );
    eprintln!(
        "open topic, author: {} statements; again: {}",
        long_author.count(),
        long_again.count()
    );

    for m in [
        &short_read,
        &long_read,
        &short_author,
        &long_author,
        &long_again,
    ] {
        assert_eq!(m.new_connections, 0);
        assert!(
            m.count() <= OPEN_TOPIC_MAX,
            "{} statements:\n{}",
            m.count(),
            m.listing()
        );
    }
    assert_eq!(
        short_read.statements, long_read.statements,
        "the same statements for 10 and 100 comments"
    );
    assert_eq!(short_author.statements, long_author.statements);

    // Through the API, without the audience: a reader's page needs no member list, the
    // author's still does (who has not read their comments). The readers are named all the same.
    let extra = b.topic(&nurse, g, 10).await;
    let (reader_view, reader_unlisted) = b.open_unlisted_counted(&doctor, extra).await;
    let (author_view, author_unlisted) = b.open_unlisted_counted(&nurse, extra).await;
    eprintln!(
        "open topic without its audience: reader {} statements, author {}",
        reader_unlisted.count(),
        author_unlisted.count()
    );
    // The member list (each member's memberships and facility) gives way to one lookup of the
    // distinct readers' names.
    assert_eq!(reader_unlisted.count(), short_read.count());
    assert!(
        !reader_unlisted.listing().contains("invited_by_email")
            && reader_unlisted
                .listing()
                .contains("FROM core.users WHERE id = ANY"),
        "{}",
        reader_unlisted.listing()
    );
    assert!(reader_view.audience.is_empty());
    assert!(
        read_only_by(&reader_view, "doctor"),
        "the doctor's own footprints, named"
    );
    assert!(author_unlisted.count() <= OPEN_TOPIC_MAX);
    assert!(
        !author_view.audience.is_empty(),
        "the author's page lists who may read"
    );
    assert!(
        read_only_by(&author_view, "doctor"),
        "the doctor read each comment and is named"
    );
    assert!(
        author_view
            .comments
            .iter()
            .all(|c| c.not_read_by.len() == 10),
        "the ten readers have not read the new topic"
    );

    let view =
        b.s.open_topic(
            &Actor::new(&nurse, &b.tenant, &client()),
            long.into(),
            false,
        )
        .await
        .unwrap();
    assert_eq!(view.comments.len(), 100);
    assert!(
        view.comments.iter().all(|c| c.reader_count == 11),
        "10 readers and the doctor"
    );
    assert!(
        view.comments.iter().all(|c| c.readers.len() == 11),
        "the author is told who read, so gets them all"
    );
    let view =
        b.s.open_topic(
            &Actor::new(&readers[0], &b.tenant, &client()),
            long.into(),
            false,
        )
        .await
        .unwrap();
    assert!(
        view.comments
            .iter()
            .all(|c| c.reader_count == 11 && c.readers.len() == 5),
        "others get the count and the first five"
    );
}

#[tokio::test]
async fn the_home_page_costs_the_same_for_5_or_50_groups_with_unread() {
    let b = Bench::new().await;
    let owner = person(&b.db, &b.s, &b.tenant, "owner", false).await;
    let light = person(&b.db, &b.s, &b.tenant, "light", true).await;
    let busy = person(&b.db, &b.s, &b.tenant, "busy", true).await;
    for i in 0..50 {
        let members: Vec<&Viewer> = if i < 5 {
            vec![&light, &busy]
        } else {
            vec![&busy]
        };
        let kind = if i % 2 == 0 {
            GroupKind::Patient
        } else {
            GroupKind::General
        };
        let g = b.group(&owner, kind, &members).await;
        b.topic(&owner, g, 2).await;
    }

    // Warm: the association registry and the counted pool.
    b.counted.home(&light).await.unwrap();

    let (few, m_few) = b.counter.measure(b.counted.home(&light)).await;
    let (many, m_many) = b.counter.measure(b.counted.home(&busy)).await;
    let (few, many) = (few.unwrap(), many.unwrap());
    assert_eq!(few.groups.len(), 5);
    assert_eq!(few.counts.total, 10);
    assert_eq!(many.groups.len(), 50);
    assert_eq!(many.counts.total, 100);
    assert!(many
        .groups
        .iter()
        .all(|g| g.unread == 2 && g.topics.len() == 1 && g.headline.is_some()));
    eprintln!(
        "home with 50 groups: {} statements\n{}",
        m_many.count(),
        m_many.listing()
    );
    for m in [&m_few, &m_many] {
        assert_eq!(m.new_connections, 0);
        assert!(
            m.count() <= HOME_MAX,
            "{} statements:\n{}",
            m.count(),
            m.listing()
        );
    }
    assert_eq!(
        m_few.statements, m_many.statements,
        "the same for 5 and 50 groups"
    );

    // The badges and "my groups" are bounded the same way.
    let (_, c_few) = b.counter.measure(b.counted.unread_counts(&light)).await;
    let (_, c_many) = b.counter.measure(b.counted.unread_counts(&busy)).await;
    assert_eq!(c_few.statements, c_many.statements);
    assert!(c_many.count() <= UNREAD_COUNTS_MAX, "{}", c_many.listing());
    let (_, g_few) = b.counter.measure(b.counted.my_groups(&light)).await;
    let (groups, g_many) = b.counter.measure(b.counted.my_groups(&busy)).await;
    assert_eq!(groups.unwrap().len(), 50);
    assert_eq!(g_few.statements, g_many.statements);
    assert!(g_many.count() <= MY_GROUPS_MAX, "{}", g_many.listing());
}

#[tokio::test]
async fn authenticating_a_request_is_one_statement_with_the_person_and_memberships() {
    let b = Bench::new().await;
    let second =
        b.s.create_association(&association("beta", "ベータ医師会"))
            .await
            .unwrap();
    let viewer = person(&b.db, &b.s, &b.tenant, "auth", true).await;
    let mut conn = b.db.db.pool().acquire().await.unwrap();
    accounts::insert_membership(
        &mut conn,
        viewer.user().id,
        second.id,
        musubi_domain::types::AssociationRole::Admin,
        None,
    )
    .await
    .unwrap();
    drop(conn);
    let token = api_session_token(&b.db.db, viewer.user().id, "192.0.2.20").await;
    b.counted.authenticate(&token).await.unwrap().unwrap();

    let (found, m) = b.counter.measure(b.counted.authenticate(&token)).await;
    let found = found.unwrap().expect("a valid session");
    assert_eq!(m.count(), 1, "{}", m.listing());
    assert_eq!(found.user().id, viewer.user().id);
    let slugs: Vec<(&str, &str)> = found
        .memberships()
        .iter()
        .map(|m| (m.slug.as_str(), m.role.code()))
        .collect();
    assert_eq!(slugs, vec![("alpha", "member"), ("beta", "admin")]);

    // An unknown token finds nothing.
    let (missing, _) = b
        .counter
        .measure(b.counted.authenticate("count-unknown"))
        .await;
    assert!(missing.unwrap().is_none());
}

#[tokio::test]
async fn many_requests_finding_the_registry_expired_reload_it_once() {
    let b = Bench::new().await;
    let db = b.counted.db();
    db.resolve_tenant("alpha").await.unwrap();
    // Creating or migrating associations empties the registry; a no-op migration will do.
    db.migrate().await.unwrap();

    let (resolved, m) = b
        .counter
        .measure(futures_util::future::join_all(
            (0..20).map(|_| db.resolve_tenant("alpha")),
        ))
        .await;
    assert!(resolved
        .iter()
        .all(|t| t.as_ref().unwrap().id == b.tenant.id));
    let reloads = m
        .statements
        .iter()
        .filter(|s| s.contains("FROM core.associations"))
        .count();
    assert_eq!(reloads, 1, "{}", m.listing());
}

#[tokio::test]
async fn a_digest_costs_the_same_for_one_or_five_groups_with_news() {
    use chrono::{NaiveTime, Utc};
    use musubi_domain::notifications::EmailMode;

    let _ = crate::mail::required_env(crate::mail::MAILDIR_ENV);
    let b = Bench::new().await;
    let timing = musubi_domain::jobs::JobTiming {
        lease: Duration::from_secs(60),
        mail_batch: Duration::ZERO,
    };
    let counted_db = b.counter.db().await;
    let counted = Services::build(
        counted_db,
        musubi_auth::ratelimit::RateLimiter::in_process(),
    )
    .await
    .unwrap()
    .with_mailer(crate::mail::smtp_mailer())
    .with_job_timing(timing);
    let services = b.s.services().clone().with_job_timing(timing);
    let owner = person(&b.db, &b.s, &b.tenant, "owner", false).await;
    let light = person(&b.db, &b.s, &b.tenant, "light", true).await;
    let busy = person(&b.db, &b.s, &b.tenant, "busy", true).await;
    let meta = client();
    for who in [&light, &busy] {
        for mode in [EmailMode::Off, EmailMode::Immediate] {
            services
                .update_notification_settings(
                    &Actor::new(who, &b.tenant, &meta),
                    mode,
                    NaiveTime::from_hms_opt(18, 0, 0).unwrap(),
                )
                .await
                .unwrap();
        }
    }

    let mut measured = Vec::new();
    for (who, groups) in [(&light, 1), (&busy, 5)] {
        for _ in 0..groups {
            let g = b.group(&owner, GroupKind::General, &[who]).await;
            b.topic(&owner, g, 2).await;
        }
        let now = Utc::now() + chrono::Duration::seconds(5);
        services.run_notification_schedule(now).await.unwrap();
        // Warm: the association registry and the counted pool's connection to the association.
        counted.home(&owner).await.unwrap();
        let (ran, m) = b.counter.measure(counted.run_due_jobs(now, 10)).await;
        assert_eq!(ran.unwrap(), 1, "one digest due: {}", m.listing());
        let sent: (String, i32) = sqlx::query_as(
            "SELECT state, unread FROM core.notifications WHERE user_id = $1 \
             ORDER BY id DESC LIMIT 1",
        )
        .bind(who.user().id)
        .fetch_one(b.db.db.pool())
        .await
        .unwrap();
        assert_eq!(sent, ("sent".to_owned(), groups * 2), "{}", m.listing());
        measured.push(m);
    }
    eprintln!(
        "a digest: {} statements\n{}",
        measured[1].count(),
        measured[1].listing()
    );
    for m in &measured {
        assert!(
            m.count() <= DIGEST_MAX,
            "{} statements:\n{}",
            m.count(),
            m.listing()
        );
    }
    assert_eq!(
        measured[0].count(),
        measured[1].count(),
        "the same for 1 and 5 groups:\n{}\n{}",
        measured[0].listing(),
        measured[1].listing()
    );
}

#[tokio::test]
async fn a_message_to_an_existing_conversation_needs_no_transaction_of_its_own() {
    let b = Bench::new().await;
    let nurse = person(&b.db, &b.s, &b.tenant, "nurse", false).await;
    let doctor = person(&b.db, &b.s, &b.tenant, "doctor", true).await;
    // Colleagues of one group: each is in the other's directory.
    b.group(&nurse, GroupKind::General, &[&doctor]).await;
    let first =
        b.s.services()
            .start_conversation(
                &Actor::new(&nurse, &b.tenant, &client()),
                &[doctor.user().id],
                "はじめまして",
                &[],
            )
            .await
            .unwrap();
    assert!(!first.existing);
    // Warm: the registry and the counted pool.
    b.counted
        .services()
        .start_conversation(
            &Actor::new(&nurse, &b.tenant, &client()),
            &[doctor.user().id],
            "明日の訪問は 10 時です",
            &[],
        )
        .await
        .unwrap();

    let (sent, m) = b
        .counter
        .measure(b.counted.services().start_conversation(
            &Actor::new(&doctor, &b.tenant, &client()),
            &[nurse.user().id],
            "了解しました",
            &[],
        ))
        .await;
    let sent = sent.unwrap();
    assert!(sent.existing);
    assert_eq!(sent.group_id, first.group_id);
    eprintln!("a message: {} statements\n{}", m.count(), m.listing());
    assert_eq!(m.new_connections, 0);
    assert!(
        m.count() <= MESSAGE_MAX,
        "{} statements:\n{}",
        m.count(),
        m.listing()
    );
    // Both take part and both are members of the host: no policy is looked up, nothing is
    // locked.
    assert!(
        m.statements
            .iter()
            .all(|q| !q.contains("message_policies") && !q.contains("FOR UPDATE")),
        "{}",
        m.listing()
    );
}
