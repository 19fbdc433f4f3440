//! E-mail digests of unread comments, through the real SMTP server the harness starts and read
//! back from its maildir: what a digest says (counts, association names, group names only where
//! allowed and never of patient groups) and what it must never say (patient names, comment
//! text, topic titles); batching; mutes and mail turned off; hourly and daily times on a moved
//! clock; one digest for a person in two associations; a refused delivery retried with the same
//! mail; and a server killed (SIGKILL) in the middle of a batch sends nothing twice.

use crate::mail::{maildir_files, mails_to, parse_mail, required_env, smtp_mailer, Received};
use chrono::{DateTime, Datelike, Duration, NaiveTime, TimeZone, Timelike, Utc};
use musubi_domain::audit::RequestMeta;
use musubi_domain::groups::Scope;
use musubi_domain::jobs::JobTiming;
use musubi_domain::notifications::EmailMode;
use musubi_domain::sessions::Viewer;
use musubi_domain::topics::NewTopic;
use musubi_domain::types::{GroupId, PersonId, TopicId};
use musubi_domain::{Actor, Services, Tenant};
use musubi_test_support::demo::{
    CARE_MANAGER, CLINIC_DOCTOR, CLINIC_DOCTOR_2, HOSPITAL_DOCTOR, HOST, NURSE, OTHER,
    OTHER_DOCTOR, PHARMACIST,
};
use musubi_test_support::{test_config, TestApp};
use std::collections::{HashMap, HashSet};
use uuid::Uuid;

/// みなと川's patient group owned by 川村 (青木, 森田, 林, 石井 and 佐藤 are members).
const YAMADA: &str = "山田 太郎さん（85歳・在宅酸素）";
/// さくら台's patient group owned by 高橋 (佐藤 is a member).
const ITO: &str = "伊藤 正男さん（80歳・心不全）";
/// さくら台's forum (高橋, 中村, 小林 and 佐藤; not the nurse 青木).
const SAKURA_FORUM: &str = "さくら台 在宅医療連絡会";
/// みなと川's open forum (川村, 青木, 森田, 林 and 石井 are members).
const FORUM: &str = "多職種連携の会";

struct World {
    app: TestApp,
    s: Services,
    host: Tenant,
    other: Tenant,
    meta: RequestMeta,
    people: HashMap<&'static str, Viewer>,
    /// Each person's address in this test: unique, so that tests sharing the maildir never
    /// read each other's mail.
    addresses: HashMap<&'static str, String>,
}

async fn group_named(app: &TestApp, slug: &str, name: &str) -> GroupId {
    let id: Uuid = sqlx::query_scalar("SELECT id FROM groups WHERE name = $1")
        .bind(name)
        .fetch_one(&mut *app.tenant_tx(slug).await)
        .await
        .unwrap();
    id.into()
}

const PEOPLE: &[&str] = &[
    CLINIC_DOCTOR,
    CLINIC_DOCTOR_2,
    NURSE,
    CARE_MANAGER,
    PHARMACIST,
    HOSPITAL_DOCTOR,
    OTHER_DOCTOR,
];

impl World {
    async fn new(mailer: musubi_notify::Mailer, batch_secs: u64) -> Self {
        let _ = required_env(crate::mail::MAILDIR_ENV);
        let app = TestApp::demo_with_services(test_config(&[]), |s| {
            s.with_mailer(mailer).with_job_timing(JobTiming {
                lease: std::time::Duration::from_secs(60),
                mail_batch: std::time::Duration::from_secs(batch_secs),
            })
        })
        .await;
        let s = app.services();
        let host = s.resolve_tenant(HOST).await.unwrap();
        let other = s.resolve_tenant(OTHER).await.unwrap();
        let mut people = HashMap::new();
        let mut addresses = HashMap::new();
        for who in PEOPLE {
            people.insert(*who, app.operator().act_as(who).await.unwrap());
            let address = format!("digest-{}@musubi.test", Uuid::new_v4().simple());
            sqlx::query("UPDATE core.users SET email = $2 WHERE lower(email) = $1")
                .bind(who)
                .bind(&address)
                .execute(app.db.db.pool())
                .await
                .unwrap();
            addresses.insert(*who, address);
        }
        let w = Self {
            app,
            s,
            host,
            other,
            meta: RequestMeta::new("192.0.2.60", "notification test"),
            people,
            addresses,
        };
        // Everyone starts told of everything so far (the demo's comments): off, then on.
        for who in PEOPLE {
            w.set_mode(who, EmailMode::Off).await;
            w.set_mode(who, EmailMode::Immediate).await;
        }
        w
    }

    fn v(&self, who: &str) -> &Viewer {
        &self.people[who]
    }

    fn id(&self, who: &str) -> PersonId {
        self.v(who).user().id
    }

    fn at(&self, who: &str, slug: &str) -> Actor<'_> {
        let tenant = if slug == OTHER {
            &self.other
        } else {
            &self.host
        };
        Actor::new(self.v(who), tenant, &self.meta)
    }

    async fn set_mode(&self, who: &str, mode: EmailMode) {
        self.set_mode_at(who, mode, NaiveTime::from_hms_opt(18, 0, 0).unwrap())
            .await;
    }

    async fn set_mode_at(&self, who: &str, mode: EmailMode, daily_at: NaiveTime) {
        self.s
            .update_notification_settings(&self.at(who, HOST_OF(who)), mode, daily_at)
            .await
            .unwrap();
    }

    /// A new topic by `who` in group `name` of `slug`.
    async fn post(&self, who: &str, slug: &str, name: &str, title: &str, body: &str) -> TopicId {
        let group = group_named(&self.app, slug, name).await;
        self.s
            .create_topic(
                &self.at(who, slug),
                &NewTopic {
                    group_id: group,
                    title,
                    body,
                    scope: Scope::EVERYONE,
                    important: false,
                },
            )
            .await
            .unwrap()
    }

    /// The schedule, then every due job, at `now`.
    async fn tick(&self, now: DateTime<Utc>) {
        self.s.run_notification_schedule(now).await.unwrap();
        while self.s.run_due_jobs(now, 50).await.unwrap() > 0 {}
    }

    fn mails(&self, who: &str) -> Vec<Received> {
        mails_to(&self.addresses[who])
    }

    async fn digest_jobs(&self, who: &str) -> i64 {
        sqlx::query_scalar(
            "SELECT count(*) FROM core.jobs WHERE kind = 'notify.digest' \
             AND payload->>'user_id' = $1",
        )
        .bind(self.id(who).to_string())
        .fetch_one(self.app.db.db.pool())
        .await
        .unwrap()
    }
}

/// The association a demo person acts from (their own).
#[allow(non_snake_case)]
fn HOST_OF(who: &str) -> &'static str {
    if who == OTHER_DOCTOR {
        OTHER
    } else {
        HOST
    }
}

fn header<'a>(mail: &'a Received, name: &str) -> &'a str {
    mail.headers
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
        .unwrap_or("")
}

/// Nothing of a patient or of what was written: not the group's name (the patient's), not the
/// topic's title, not the comment.
#[track_caller]
fn assert_no_patient_text(mail: &Received, secrets: &[&str]) {
    for secret in secrets {
        assert!(
            !mail.subject.contains(secret) && !mail.body.contains(secret),
            "the mail mentions {secret:?}:\n{}\n{}",
            mail.subject,
            mail.body
        );
    }
}

#[tokio::test]
async fn a_digest_gives_counts_and_links_and_nothing_of_the_patient() {
    let w = World::new(smtp_mailer(), 0).await;
    w.post(
        CLINIC_DOCTOR,
        HOST,
        YAMADA,
        "酸素流量の変更",
        "山田さんの SpO2 が 88% に低下。酸素を 2L に上げてください。",
    )
    .await;
    w.tick(Utc::now()).await;

    let mails = w.mails(NURSE);
    assert_eq!(mails.len(), 1, "one digest for the nurse");
    let mail = &mails[0];
    assert!(
        mail.subject.starts_with("【結び】未読 "),
        "{}",
        mail.subject
    );
    assert!(
        mail.body.contains("みなと川"),
        "the association is named:\n{}",
        mail.body
    );
    assert!(mail.body.contains("ほかのグループ 1 つ"), "{}", mail.body);
    assert!(mail
        .body
        .contains("https://musubi.test/settings/notifications"));
    assert!(mail.body.contains("https://musubi.test/help/mail"));
    assert_no_patient_text(
        mail,
        &["山田", "太郎", "在宅酸素", "酸素流量", "SpO2", "88%"],
    );
    assert!(
        header(mail, "message-id").contains("musubi-notification-"),
        "{:?}",
        mail.headers
    );
    // The author hears nothing of their own comment.
    assert!(w.mails(CLINIC_DOCTOR).is_empty());

    // The in-app list says what went.
    let sent = w.s.notifications_sent(w.v(NURSE)).await.unwrap();
    assert_eq!(sent.len(), 1);
    assert_eq!(
        (sent[0].state.as_str(), sent[0].channel.as_str()),
        ("sent", "email")
    );
    assert!(sent[0].unread >= 1);

    // Nothing new: nothing more, however often the schedule runs.
    w.tick(Utc::now()).await;
    w.tick(Utc::now() + Duration::seconds(5)).await;
    assert_eq!(w.mails(NURSE).len(), 1);
    assert_eq!(w.digest_jobs(NURSE).await, 1);

    // Something new: a second digest, counting everything unread.
    w.post(
        CARE_MANAGER,
        HOST,
        YAMADA,
        "ケアプラン",
        "来週の担当者会議の件",
    )
    .await;
    w.tick(Utc::now()).await;
    let mails = w.mails(NURSE);
    assert_eq!(mails.len(), 2);
    for m in &mails {
        assert_no_patient_text(m, &["山田", "ケアプラン", "担当者会議"]);
    }
}

#[tokio::test]
async fn immediate_mail_waits_for_the_batch_and_tells_of_several_at_once() {
    let w = World::new(smtp_mailer(), 180).await;
    let start = Utc::now();
    w.post(
        CLINIC_DOCTOR,
        HOST,
        YAMADA,
        "訪問日の変更",
        "明日に変更します",
    )
    .await;
    w.tick(start + Duration::seconds(1)).await;
    w.post(CARE_MANAGER, HOST, FORUM, "研修会", "来月の研修会について")
        .await;
    w.tick(start + Duration::seconds(60)).await;
    assert!(w.mails(NURSE).is_empty(), "the batch wait is not over");
    assert_eq!(w.digest_jobs(NURSE).await, 0);

    w.tick(start + Duration::seconds(200)).await;
    let mails = w.mails(NURSE);
    assert_eq!(mails.len(), 1, "one mail for both comments");
    // It counts everything unread, the two new comments with the rest.
    let unread = w.s.unread_counts(w.v(NURSE)).await.unwrap().total;
    assert!(
        mails[0].subject.contains(&format!("未読 {unread} 件")),
        "{} (unread {unread})",
        mails[0].subject
    );
    assert_no_patient_text(&mails[0], &["山田", "訪問日", "研修会", FORUM]);
}

#[tokio::test]
async fn group_names_appear_only_where_allowed_and_never_a_patient_group() {
    let w = World::new(smtp_mailer(), 0).await;
    let mut tx = w.app.tenant_tx(HOST).await;
    sqlx::query("UPDATE settings SET mail_group_names = true")
        .execute(&mut *tx)
        .await
        .unwrap();
    tx.commit().await.unwrap();

    w.post(
        CLINIC_DOCTOR,
        HOST,
        FORUM,
        "勉強会の案内",
        "資料を共有します",
    )
    .await;
    w.post(CLINIC_DOCTOR, HOST, YAMADA, "褥瘡", "仙骨部の褥瘡が拡大")
        .await;
    w.tick(Utc::now()).await;
    let mails = w.mails(NURSE);
    assert_eq!(mails.len(), 1);
    assert!(
        mails[0].body.contains(&format!("・{FORUM}")),
        "{}",
        mails[0].body
    );
    assert!(
        mails[0].body.contains("ほかのグループ 1 つ"),
        "{}",
        mails[0].body
    );
    assert_no_patient_text(&mails[0], &["山田", "褥瘡", "勉強会"]);
}

#[tokio::test]
async fn muted_groups_and_mail_turned_off_send_nothing() {
    let w = World::new(smtp_mailer(), 0).await;
    let yamada = group_named(&w.app, HOST, YAMADA).await;
    w.s.set_group_mail_muted(&w.at(NURSE, HOST), yamada, true)
        .await
        .unwrap();
    w.post(CLINIC_DOCTOR, HOST, YAMADA, "採血結果", "結果を添付します")
        .await;
    w.tick(Utc::now()).await;
    assert!(w.mails(NURSE).is_empty(), "the group is muted");
    // The pharmacist, not muted, heard of it.
    assert_eq!(w.mails(PHARMACIST).len(), 1);
    let settings = w.s.notification_settings(w.v(NURSE)).await.unwrap();
    assert_eq!(settings.muted, vec![yamada]);

    w.s.set_group_mail_muted(&w.at(NURSE, HOST), yamada, false)
        .await
        .unwrap();
    w.set_mode(NURSE, EmailMode::Off).await;
    w.post(CLINIC_DOCTOR, HOST, YAMADA, "処方変更", "利尿剤を増量")
        .await;
    w.tick(Utc::now()).await;
    assert!(w.mails(NURSE).is_empty(), "mail is off");

    // Back on: only what comes from now on.
    w.set_mode(NURSE, EmailMode::Immediate).await;
    w.tick(Utc::now()).await;
    assert!(
        w.mails(NURSE).is_empty(),
        "what came while off is not told afterwards"
    );
    w.post(
        CLINIC_DOCTOR,
        HOST,
        YAMADA,
        "訪問報告",
        "本日の訪問で変化なし",
    )
    .await;
    w.tick(Utc::now()).await;
    assert_eq!(w.mails(NURSE).len(), 1);

    // Muting a group one is not in is refused and changes nothing.
    let forum = group_named(&w.app, OTHER, SAKURA_FORUM).await;
    let refused =
        w.s.set_group_mail_muted(&w.at(NURSE, HOST), forum, true)
            .await;
    assert_eq!(
        refused.unwrap_err().code,
        musubi_domain::ErrorCode::NotFound
    );
    let settings = w.s.notification_settings(w.v(NURSE)).await.unwrap();
    assert!(settings.muted.is_empty());
}

#[tokio::test]
async fn mail_turned_off_with_a_phone_registered_tells_only_the_phone() {
    let w = World::new(smtp_mailer(), 0).await;
    // The nurse wants no mail but registered her phone (its made-up keys make the push job
    // fail: its delivery is the push tests' business, here only that it is asked for).
    let phone = Uuid::new_v4();
    sqlx::query(
        "INSERT INTO core.push_subscriptions (id, user_id, endpoint, p256dh, auth, created_at) \
         VALUES ($1, $2, 'http://127.0.0.1:9/push/phone', $3, $4, now())",
    )
    .bind(phone)
    .bind(w.id(NURSE))
    .bind(vec![4u8; 65])
    .bind(vec![7u8; 16])
    .execute(w.app.db.db.pool())
    .await
    .unwrap();
    w.set_mode(NURSE, EmailMode::Off).await;
    w.set_mode(PHARMACIST, EmailMode::Off).await;
    w.post(CLINIC_DOCTOR, HOST, YAMADA, "処方変更", "利尿剤を増量")
        .await;
    w.tick(Utc::now()).await;
    assert!(w.mails(NURSE).is_empty(), "mail is off");
    let pushes = || {
        sqlx::query_scalar::<_, i64>(
            "SELECT count(*) FROM core.jobs \
             WHERE kind = 'notify.push' AND payload->>'subscription' = $1",
        )
        .bind(phone.to_string())
        .fetch_one(w.app.db.db.pool())
    };
    assert_eq!(pushes().await.unwrap(), 1, "the phone is told");
    // Without a device, mail off means nothing at all.
    assert_eq!(w.digest_jobs(PHARMACIST).await, 0);
    // Listed among what was sent to her, as a push.
    let sent = w.s.notifications_sent(w.v(NURSE)).await.unwrap();
    assert_eq!(sent[0].channel, "push");
    assert_eq!(sent[0].state, "sent");
    // Told once: the same unread does not push again.
    w.tick(Utc::now() + chrono::Duration::minutes(5)).await;
    assert_eq!(w.digest_jobs(NURSE).await, 1);
}

#[tokio::test]
async fn a_person_in_two_associations_gets_one_digest_naming_both() {
    let w = World::new(smtp_mailer(), 0).await;
    w.post(CLINIC_DOCTOR, HOST, YAMADA, "入院調整", "病院と相談中")
        .await;
    w.post(OTHER_DOCTOR, OTHER, ITO, "心不全増悪", "体重が 2kg 増加")
        .await;
    w.tick(Utc::now()).await;
    let mails = w.mails(HOSPITAL_DOCTOR);
    assert_eq!(mails.len(), 1, "one digest across associations");
    let body = &mails[0].body;
    assert!(
        body.contains("みなと川") && body.contains("さくら台"),
        "{body}"
    );
    assert_no_patient_text(&mails[0], &["山田", "伊藤", "心不全", "入院調整", "2kg"]);
}

/// The next moment at `hour:minute` Asia/Tokyo after `after`.
fn next_jst(after: DateTime<Utc>, hour: u32, minute: u32) -> DateTime<Utc> {
    let jst = chrono::FixedOffset::east_opt(9 * 3600).unwrap();
    let local = after.with_timezone(&jst);
    let today = jst
        .from_local_datetime(&local.date_naive().and_hms_opt(hour, minute, 0).unwrap())
        .single()
        .unwrap()
        .with_timezone(&Utc);
    if today > after {
        today
    } else {
        today + Duration::days(1)
    }
}

#[tokio::test]
async fn hourly_and_daily_mail_wait_for_their_time() {
    let w = World::new(smtp_mailer(), 0).await;
    w.set_mode(NURSE, EmailMode::Hourly).await;
    w.set_mode_at(
        PHARMACIST,
        EmailMode::Daily,
        NaiveTime::from_hms_opt(7, 30, 0).unwrap(),
    )
    .await;
    let start = Utc::now();
    w.post(CLINIC_DOCTOR, HOST, YAMADA, "定期報告", "変わりありません")
        .await;
    w.tick(start).await;
    assert_eq!(w.digest_jobs(NURSE).await, 0, "hourly: not before the hour");
    assert_eq!(
        w.digest_jobs(PHARMACIST).await,
        0,
        "daily: not before 07:30"
    );
    assert_eq!(
        w.mails(CARE_MANAGER).len(),
        1,
        "immediate people are told at once"
    );

    // The clock moves (the test's posts are done: the schedule may run in the future now).
    let hour = (start + Duration::hours(1))
        .with_minute(0)
        .and_then(|t| t.with_second(0))
        .unwrap();
    let daily = next_jst(start, 7, 30);
    let mut moments = vec![
        (hour - Duration::minutes(1), "nurse before the hour"),
        (hour + Duration::minutes(1), "nurse after the hour"),
        (daily - Duration::minutes(1), "pharmacist before 07:30"),
        (daily + Duration::minutes(1), "pharmacist after 07:30"),
    ];
    moments.sort_by_key(|(at, _)| *at);
    for (at, what) in moments {
        w.tick(at).await;
        let nurse = w.digest_jobs(NURSE).await;
        let pharmacist = w.digest_jobs(PHARMACIST).await;
        assert_eq!(nurse, i64::from(at > hour), "{what}: nurse's digests");
        assert_eq!(
            pharmacist,
            i64::from(at > daily),
            "{what}: pharmacist's digests"
        );
    }
    assert_eq!(w.mails(NURSE).len(), 1);
    assert_eq!(w.mails(PHARMACIST).len(), 1);
}

#[tokio::test]
async fn a_refused_delivery_is_retried_later_with_the_same_mail() {
    // A mail server that is not there.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = closed.local_addr().unwrap().port();
    drop(closed);
    let nowhere = musubi_notify::Mailer::new(&musubi_notify::MailerSettings {
        smtp: Some(
            musubi_notify::SmtpSettings::parse(&format!("smtp://127.0.0.1:{port}")).unwrap(),
        ),
        from: "結び <no-reply@musubi.test>".into(),
        public_url: crate::mail::PUBLIC_URL.into(),
        timeout: std::time::Duration::from_secs(5),
    })
    .unwrap();
    let w = World::new(nowhere, 0).await;
    let topic = w
        .post(CLINIC_DOCTOR, HOST, YAMADA, "夜間の連絡先", "当番表を確認")
        .await;
    // A 至急 notice refused the same way is retried the same way.
    w.s.post_urgent_comment(&w.at(NURSE, HOST), topic, "至急確認を", &[w.id(PHARMACIST)])
        .await
        .unwrap();
    let now = Utc::now();
    w.tick(now).await;
    let sent = w.s.notifications_sent(w.v(NURSE)).await.unwrap();
    assert_eq!(sent.len(), 1);
    assert_eq!(sent[0].state, "retrying");
    let (state, attempts, run_at): (String, i32, DateTime<Utc>) = sqlx::query_as(
        "SELECT state, attempts, run_at FROM core.jobs WHERE kind = 'notify.digest' \
         AND payload->>'user_id' = $1",
    )
    .bind(w.id(NURSE).to_string())
    .fetch_one(w.app.db.db.pool())
    .await
    .unwrap();
    assert_eq!((state.as_str(), attempts), ("pending", 1));
    assert!(
        run_at >= now + Duration::seconds(29),
        "retried later: {run_at} vs {now}"
    );

    // Not before its time; then through a mail server that answers.
    let working = w.s.clone().with_mailer(smtp_mailer());
    assert_eq!(
        working
            .run_due_jobs(now + Duration::seconds(10), 50)
            .await
            .unwrap(),
        0
    );
    assert!(
        working
            .run_due_jobs(now + Duration::seconds(31), 50)
            .await
            .unwrap()
            > 0
    );
    let mails = w.mails(NURSE);
    assert_eq!(mails.len(), 1);
    let sent = w.s.notifications_sent(w.v(NURSE)).await.unwrap();
    assert_eq!(sent.len(), 1, "the same notification, not a second one");
    assert_eq!(sent[0].state, "sent");
    assert!(
        header(&mails[0], "message-id").contains(&format!("musubi-notification-{}@", sent[0].id))
    );
    let urgent = urgent_mails(&w, PHARMACIST);
    assert_eq!(
        urgent.len(),
        1,
        "the refused 至急 notice went once it could"
    );
    let states: Vec<String> = sqlx::query_scalar(
        "SELECT state FROM core.notifications WHERE user_id = $1 AND kind = 'urgent'",
    )
    .bind(w.id(PHARMACIST))
    .fetch_all(w.app.db.db.pool())
    .await
    .unwrap();
    assert_eq!(states, ["sent"]);
}

// ---------------------------------------------------------------------------------------------
// A server killed in the middle of a batch

/// A TCP proxy in front of the test SMTP server that holds every chunk from the client for
/// `delay`: sending a mail takes a while, so that a batch can be interrupted half-way.
async fn slow_proxy(upstream: String, delay: std::time::Duration) -> u16 {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        while let Ok((client, _)) = listener.accept().await {
            let upstream = upstream.clone();
            tokio::spawn(async move {
                let Ok(server) = tokio::net::TcpStream::connect(&upstream).await else {
                    return;
                };
                let (mut cr, mut cw) = client.into_split();
                let (mut sr, mut sw) = server.into_split();
                let up = async move {
                    use tokio::io::{AsyncReadExt, AsyncWriteExt};
                    let mut buf = vec![0u8; 16 * 1024];
                    loop {
                        let n = match cr.read(&mut buf).await {
                            Ok(0) | Err(_) => break,
                            Ok(n) => n,
                        };
                        tokio::time::sleep(delay).await;
                        if sw.write_all(&buf[..n]).await.is_err() {
                            break;
                        }
                    }
                    let _ = sw.shutdown().await;
                };
                let down = async move {
                    let _ = tokio::io::copy(&mut sr, &mut cw).await;
                };
                tokio::join!(up, down);
            });
        }
    });
    port
}

fn start_server(database_url: &str, smtp_port: u16, data: &std::path::Path) -> std::process::Child {
    use std::io::{BufRead, BufReader};
    let mut child = std::process::Command::new(crate::MUSUBI_BIN)
        .args(["serve", "--listen", "127.0.0.1:0"])
        .env_remove("MUSUBI_CONFIG")
        .env_remove("MUSUBI_LISTEN")
        .env_remove("REDIS_URL")
        .env("DATABASE_URL", database_url)
        .env("MUSUBI_DATA_DIR", data)
        .env("MUSUBI_SMTP_URL", format!("smtp://127.0.0.1:{smtp_port}"))
        .env("MUSUBI_MAIL_FROM", "結び <no-reply@musubi.test>")
        .env("MUSUBI_PUBLIC_URL", crate::mail::PUBLIC_URL)
        .env("MUSUBI_SMTP_TIMEOUT_SECS", "5")
        .env("MUSUBI_JOB_LEASE_SECS", "6")
        .env("MUSUBI_LOG", "warn")
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::inherit())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if line.starts_with("Musubi is running at ") {
                let _ = tx.send(());
            }
        }
    });
    if rx
        .recv_timeout(std::time::Duration::from_secs(120))
        .is_err()
    {
        let _ = child.kill();
        panic!("musubi did not start");
    }
    child
}

/// The Message-IDs of the mails to `addresses`.
fn delivered(addresses: &HashSet<String>) -> Vec<(String, String)> {
    maildir_files()
        .into_iter()
        .map(parse_mail)
        .filter_map(|m| {
            let to = addresses.iter().find(|a| m.to.contains(a.as_str()))?;
            Some((to.clone(), header(&m, "message-id").to_owned()))
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_killed_mid_batch_sends_nothing_twice() {
    let w = World::new(smtp_mailer(), 0).await;
    // Some unread for everyone in the test, and a digest job for each, due now.
    w.post(CLINIC_DOCTOR, HOST, YAMADA, "全員へ", "訪問予定の確認")
        .await;
    w.post(NURSE, HOST, YAMADA, "返信", "了解しました").await;
    w.post(OTHER_DOCTOR, OTHER, ITO, "連絡", "外来受診の予定")
        .await;
    let ids: Vec<Uuid> = PEOPLE.iter().map(|p| w.id(p).uuid()).collect();
    let pool = w.app.db.db.pool();
    sqlx::query(
        "UPDATE core.notification_settings SET told_until = now() - interval '1 day' \
         WHERE user_id = ANY($1)",
    )
    .bind(&ids)
    .execute(pool)
    .await
    .unwrap();
    sqlx::query(
        "INSERT INTO core.jobs (kind, payload, run_at, created_at) \
         SELECT 'notify.digest', jsonb_build_object('user_id', id), now(), now() \
         FROM unnest($1::uuid[]) AS id",
    )
    .bind(&ids)
    .execute(pool)
    .await
    .unwrap();
    let addresses: HashSet<String> = w.addresses.values().cloned().collect();

    let smtp = required_env(crate::mail::SMTP_ENV);
    let upstream = smtp.trim_start_matches("smtp://").to_owned();
    let port = slow_proxy(upstream, std::time::Duration::from_millis(150)).await;
    let url = w.app.db.url();
    let data = tempfile::tempdir().unwrap();

    // Kill it once the first mail has arrived and before the last.
    let mut server = start_server(&url, port, data.path());
    let mut waited = 0;
    while delivered(&addresses).is_empty() {
        assert!(waited < 600, "no digest arrived within a minute");
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        waited += 1;
    }
    server.kill().unwrap(); // SIGKILL
    server.wait().unwrap();
    let at_kill = delivered(&addresses).len();
    assert!(
        at_kill < ids.len(),
        "the batch was over before the kill ({at_kill})"
    );

    // Restarted, it finishes the batch: what was interrupted is failed, not sent again.
    let mut server = start_server(&url, port, data.path());
    let mut waited = 0;
    loop {
        let open: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM core.jobs WHERE kind = 'notify.digest' \
             AND state IN ('pending', 'running')",
        )
        .fetch_one(pool)
        .await
        .unwrap();
        if open == 0 {
            break;
        }
        assert!(waited < 600, "{open} digests still open after a minute");
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        waited += 1;
    }
    // Whatever was on the wire has landed.
    tokio::time::sleep(std::time::Duration::from_secs(2)).await;
    server.kill().unwrap();
    server.wait().unwrap();

    let mails = delivered(&addresses);
    let mut per_address: HashMap<&str, usize> = HashMap::new();
    let mut message_ids = HashSet::new();
    for (to, id) in &mails {
        *per_address.entry(to.as_str()).or_default() += 1;
        assert!(message_ids.insert(id.clone()), "{id} was delivered twice");
    }
    assert!(per_address.values().all(|n| *n == 1), "{per_address:?}");
    assert!(mails.len() > at_kill, "the restarted server sent the rest");

    let states: Vec<(i64, String)> = sqlx::query_as(
        "SELECT id, state FROM core.notifications WHERE user_id = ANY($1) ORDER BY id",
    )
    .bind(&ids)
    .fetch_all(pool)
    .await
    .unwrap();
    for (id, state) in &states {
        assert!(
            state == "sent" || state == "interrupted",
            "notification {id} is {state}"
        );
        if state == "sent" {
            let wanted = format!("musubi-notification-{id}@");
            assert!(
                mails.iter().any(|(_, m)| m.contains(&wanted)),
                "notification {id} is marked sent but never arrived"
            );
        }
    }
    let sent = states.iter().filter(|(_, s)| s == "sent").count();
    let interrupted = states.len() - sent;
    assert!(
        interrupted <= 1,
        "one mail at most was on the wire at the kill: {states:?}"
    );
    // An interrupted mail may or may not have arrived; nothing else arrived unrecorded.
    assert!(
        mails.len() >= sent && mails.len() <= sent + interrupted,
        "{} mails for {states:?}",
        mails.len()
    );
}

// ---------------------------------------------------------------------------------------------
// Through the API

const SETTINGS: &str = "{ notificationSettings { emailMode dailyAt mutedGroupIds email } \
                          notificationsSent { id state channel unread } }";
const UPDATE: &str = "mutation($m: EmailMode!, $t: NaiveTime) { \
                        updateNotificationSettings(emailMode: $m, dailyAt: $t) }";
const MUTE: &str = "mutation($g: ID!, $m: Boolean!) { setGroupMailMuted(groupId: $g, muted: $m) }";

#[tokio::test]
async fn settings_through_the_api_many_at_once_and_refusals() {
    use musubi_test_support::error_codes;
    use serde_json::json;
    let app = TestApp::demo().await;
    let token = app.demo_token(NURSE).await;
    let r = app.gql(SETTINGS, json!({}), Some(&token), None).await;
    assert_eq!(
        r["data"]["notificationSettings"]["emailMode"], "IMMEDIATE",
        "{r}"
    );
    assert_eq!(r["data"]["notificationSettings"]["dailyAt"], "18:00:00");
    assert_eq!(r["data"]["notificationSettings"]["email"], NURSE);

    // A tired nurse taps 保存 twenty times at once, alternating: every call is answered, the
    // last word is one of them, and each is in the audit log.
    let calls = (0..20).map(|i| {
        let (mode, time) = if i % 2 == 0 {
            ("DAILY", "07:30:00")
        } else {
            ("HOURLY", "19:15:00")
        };
        let app = &app;
        let token = token.clone();
        async move {
            app.gql(
                UPDATE,
                json!({"m": mode, "t": time}),
                Some(&token),
                Some(HOST),
            )
            .await
        }
    });
    for r in futures_util::future::join_all(calls).await {
        assert_eq!(r["data"]["updateNotificationSettings"], true, "{r}");
    }
    let r = app.gql(SETTINGS, json!({}), Some(&token), None).await;
    let s = &r["data"]["notificationSettings"];
    assert!(
        (s["emailMode"] == "DAILY" && s["dailyAt"] == "07:30:00")
            || (s["emailMode"] == "HOURLY" && s["dailyAt"] == "19:15:00"),
        "{r}"
    );
    let logged: i64 =
        sqlx::query_scalar("SELECT count(*) FROM audit_log WHERE action = 'notification.settings'")
            .fetch_one(&mut *app.tenant_tx(HOST).await)
            .await
            .unwrap();
    assert_eq!(logged, 20);

    // Muting: my group yes; a group I am not in, or junk, is simply not found.
    let yamada = group_named(&app, HOST, YAMADA).await;
    let r = app
        .gql(
            MUTE,
            json!({"g": yamada.to_string(), "m": true}),
            Some(&token),
            Some(HOST),
        )
        .await;
    assert_eq!(r["data"]["setGroupMailMuted"], true, "{r}");
    let forum = group_named(&app, OTHER, SAKURA_FORUM).await;
    for g in [forum.to_string(), "not-a-uuid".to_owned()] {
        let r = app
            .gql(MUTE, json!({"g": g, "m": true}), Some(&token), Some(HOST))
            .await;
        assert_eq!(error_codes(&r), vec!["NOT_FOUND"], "{r}");
    }
    let r = app.gql(SETTINGS, json!({}), Some(&token), None).await;
    assert_eq!(
        r["data"]["notificationSettings"]["mutedGroupIds"],
        json!([yamada.to_string()])
    );

    // Signed out: nothing.
    let r = app.gql(SETTINGS, json!({}), None, None).await;
    assert_eq!(error_codes(&r), vec!["UNAUTHENTICATED"; 2], "{r}");
    let r = app.gql(UPDATE, json!({"m": "OFF"}), None, Some(HOST)).await;
    assert_eq!(error_codes(&r), vec!["UNAUTHENTICATED"], "{r}");
}

// ---------------------------------------------------------------------------------------------
// 至急: asked, reminded, escalated to the doctor on duty — or acknowledged

/// みなと川's collaborating-doctor group, whose rotation says who is on duty.
const DOCTORS: &str = "みなと川 連携医グループ";

/// Puts `who` on every duty of yesterday and today (published), so that whatever the hour the
/// doctor on duty is known.
async fn on_duty_now(w: &World, who: &str) {
    let doctors = group_named(&w.app, HOST, DOCTORS).await;
    let person = w.id(who);
    let today = (Utc::now() + Duration::hours(9)).date_naive();
    let mut tx = w.app.tenant_tx(HOST).await;
    for day in [today.pred_opt().unwrap(), today, today.succ_opt().unwrap()] {
        let month = day.with_day0(0).unwrap();
        sqlx::query(
            "INSERT INTO duty_months (group_id, month, status) VALUES ($1, $2, 'published') \
             ON CONFLICT (group_id, month) DO UPDATE SET status = 'published'",
        )
        .bind(doctors)
        .bind(month)
        .execute(&mut *tx)
        .await
        .unwrap();
        sqlx::query("DELETE FROM duties WHERE day = $1")
            .bind(day)
            .execute(&mut *tx)
            .await
            .unwrap();
        for kind in ["day", "night"] {
            sqlx::query(
                "INSERT INTO duties (group_id, day, kind, class, user_id) \
                 VALUES ($1, $2, $3, 'weekday', $4)",
            )
            .bind(doctors)
            .bind(day)
            .bind(kind)
            .bind(person)
            .execute(&mut *tx)
            .await
            .unwrap();
        }
    }
    tx.commit().await.unwrap();
}

fn urgent_mails(w: &World, who: &str) -> Vec<Received> {
    w.mails(who)
        .into_iter()
        .filter(|m| m.subject.contains("至急"))
        .collect()
}

async fn steps(w: &World, topic: TopicId) -> Vec<(String, Option<String>)> {
    let views =
        w.s.urgent_on_topic(&w.at(NURSE, HOST), topic)
            .await
            .unwrap();
    views
        .iter()
        .flat_map(|v| v.steps.iter().map(|(s, who, _)| (s.clone(), who.clone())))
        .collect()
}

#[tokio::test]
async fn an_unacknowledged_urgent_post_is_asked_again_then_goes_to_the_doctor_on_duty() {
    let w = World::new(smtp_mailer(), 0).await;
    on_duty_now(&w, CLINIC_DOCTOR_2).await;
    let topic = w
        .post(
            CARE_MANAGER,
            HOST,
            YAMADA,
            "夜間の連絡",
            "まず話題を作ります",
        )
        .await;
    let comment =
        w.s.post_urgent_comment(
            &w.at(NURSE, HOST),
            topic,
            "山田さん SpO2 85%、呼吸苦あり。至急ご指示ください。",
            &[],
        )
        .await
        .unwrap();
    let at: DateTime<Utc> = sqlx::query_scalar("SELECT created_at FROM comments WHERE id = $1")
        .bind(comment)
        .fetch_one(&mut *w.app.tenant_tx(HOST).await)
        .await
        .unwrap();

    // The attending doctor (川村, the patient's 主治医) is asked at once.
    w.tick(at + Duration::seconds(1)).await;
    let asked = urgent_mails(&w, CLINIC_DOCTOR);
    assert_eq!(asked.len(), 1, "the attending doctor is asked");
    assert!(
        asked[0].subject.contains("至急の確認"),
        "{}",
        asked[0].subject
    );
    let link = format!("/a/{HOST}/t/{topic}/c/{comment}");
    assert!(asked[0].body.contains(&link), "{}", asked[0].body);
    let first = steps(&w, topic).await;
    assert_eq!(first.len(), 1);
    assert_eq!(first[0].0, "asked");
    assert_eq!(first[0].1.as_deref(), Some(w.v(NURSE).user().name.as_str()));

    // 15 minutes: asked again.
    w.tick(at + Duration::minutes(14)).await;
    assert_eq!(urgent_mails(&w, CLINIC_DOCTOR).len(), 1, "not yet");
    w.tick(at + Duration::minutes(16)).await;
    let again = urgent_mails(&w, CLINIC_DOCTOR);
    assert_eq!(again.len(), 2);
    assert!(again.iter().any(|m| m.subject.contains("再通知")));
    assert!(urgent_mails(&w, CLINIC_DOCTOR_2).is_empty());

    // 30 minutes: the doctor on duty (大野, not in the group) is brought in and asked; the
    // author is told.
    w.tick(at + Duration::minutes(31)).await;
    let escalated = urgent_mails(&w, CLINIC_DOCTOR_2);
    assert_eq!(escalated.len(), 1);
    assert!(
        escalated[0].subject.contains("当番医"),
        "{}",
        escalated[0].subject
    );
    assert!(escalated[0].body.contains(&link));
    assert_eq!(urgent_mails(&w, NURSE).len(), 1, "the author hears of it");
    let yamada = group_named(&w.app, HOST, YAMADA).await;
    let oono = w.id(CLINIC_DOCTOR_2);
    let until: Option<DateTime<Utc>> = sqlx::query_scalar(
        "SELECT until FROM core.group_members WHERE group_id = $1 AND user_id = $2 \
         AND status = 'active'",
    )
    .bind(yamada)
    .bind(oono)
    .fetch_one(w.app.db.db.pool())
    .await
    .unwrap();
    let until = until.expect("a membership for a day");
    assert!(until > at + Duration::hours(23) && until < at + Duration::hours(25));
    let kinds: Vec<String> = steps(&w, topic).await.into_iter().map(|(s, _)| s).collect();
    assert_eq!(kinds, ["asked", "reminded", "escalated"]);

    // Nothing more after that, however long.
    w.tick(at + Duration::minutes(90)).await;
    assert_eq!(urgent_mails(&w, CLINIC_DOCTOR).len(), 2);
    assert_eq!(urgent_mails(&w, CLINIC_DOCTOR_2).len(), 1);

    // Audited, without an actor for the server's own steps.
    let actions: Vec<String> = sqlx::query_scalar(
        "SELECT action FROM audit_log WHERE action LIKE 'urgent.%' ORDER BY seq",
    )
    .fetch_all(&mut *w.app.tenant_tx(HOST).await)
    .await
    .unwrap();
    assert_eq!(actions, ["urgent.remind", "urgent.escalate"]);
    for who in [CLINIC_DOCTOR, CLINIC_DOCTOR_2, NURSE] {
        for m in urgent_mails(&w, who) {
            assert_no_patient_text(&m, &["山田", "SpO2", "呼吸苦", "夜間の連絡", YAMADA]);
        }
    }
}

#[tokio::test]
async fn an_acknowledged_urgent_post_goes_no_further() {
    let w = World::new(smtp_mailer(), 0).await;
    on_duty_now(&w, CLINIC_DOCTOR_2).await;
    let topic = w
        .post(CLINIC_DOCTOR, HOST, YAMADA, "処方", "処方を変更しました")
        .await;
    let pharmacist = w.id(PHARMACIST);
    let comment =
        w.s.post_urgent_comment(
            &w.at(NURSE, HOST),
            topic,
            "本日中に配薬をお願いします",
            &[pharmacist],
        )
        .await
        .unwrap();
    let at = Utc::now();
    w.tick(at).await;
    assert_eq!(urgent_mails(&w, PHARMACIST).len(), 1);
    assert!(
        urgent_mails(&w, CLINIC_DOCTOR).is_empty(),
        "only the named are asked"
    );

    // The author cannot confirm their own; the pharmacist does, twice (a double tap).
    let own = w.s.acknowledge_urgent(&w.at(NURSE, HOST), comment).await;
    assert_eq!(
        own.unwrap_err().code,
        musubi_domain::ErrorCode::InvalidInput
    );
    w.s.acknowledge_urgent(&w.at(PHARMACIST, HOST), comment)
        .await
        .unwrap();
    w.s.acknowledge_urgent(&w.at(PHARMACIST, HOST), comment)
        .await
        .unwrap();

    w.tick(at + Duration::minutes(16)).await;
    w.tick(at + Duration::minutes(31)).await;
    assert_eq!(urgent_mails(&w, PHARMACIST).len(), 1, "no reminder");
    assert!(
        urgent_mails(&w, CLINIC_DOCTOR_2).is_empty(),
        "no escalation"
    );
    assert!(urgent_mails(&w, NURSE).is_empty());
    let views =
        w.s.urgent_on_topic(&w.at(CLINIC_DOCTOR, HOST), topic)
            .await
            .unwrap();
    assert_eq!(views.len(), 1);
    assert_eq!(views[0].stage, "acknowledged");
    assert_eq!(views[0].asked.len(), 1);
    let kinds: Vec<&str> = views[0].steps.iter().map(|(s, _, _)| s.as_str()).collect();
    assert_eq!(kinds, ["asked", "acknowledged"]);
    assert!(views[0].acknowledged_by.is_some());
    assert!(!views[0].may_acknowledge);
}

#[tokio::test]
async fn urgent_posts_that_ask_nobody_or_strangers_are_refused_and_post_nothing() {
    let w = World::new(smtp_mailer(), 0).await;
    let topic = w.post(CLINIC_DOCTOR, HOST, FORUM, "連絡", "研修の件").await;
    let count = || async {
        sqlx::query_scalar::<_, i64>("SELECT count(*) FROM comments WHERE topic_id = $1")
            .bind(topic)
            .fetch_one(&mut *w.app.tenant_tx(HOST).await)
            .await
            .unwrap()
    };
    let before = count().await;
    let stranger = w.id(OTHER_DOCTOR); // not in みなと川's forum
    let many: Vec<PersonId> = (0..11).map(|_| w.id(NURSE)).collect();
    for (named, why) in [
        (
            vec![],
            "nobody named in a group without an attending doctor",
        ),
        (vec![stranger], "someone outside the group"),
        (many, "more than ten"),
    ] {
        let r =
            w.s.post_urgent_comment(&w.at(CARE_MANAGER, HOST), topic, "至急", &named)
                .await;
        let e = r.expect_err(why);
        assert_eq!(e.code, musubi_domain::ErrorCode::InvalidInput, "{why}");
        assert_eq!(e.field, Some("ask"), "{why}");
    }
    assert_eq!(count().await, before, "nothing was posted");
}

#[tokio::test]
async fn urgent_posts_through_the_api() {
    use musubi_test_support::error_codes;
    use serde_json::json;
    let app = TestApp::demo().await;
    let nurse = app.demo_token(NURSE).await;
    let pharmacist = app.demo_token(PHARMACIST).await;
    let yamada = group_named(&app, HOST, YAMADA).await;
    let topic: Uuid = sqlx::query_scalar("SELECT id FROM topics WHERE group_id = $1 LIMIT 1")
        .bind(yamada)
        .fetch_one(&mut *app.tenant_tx(HOST).await)
        .await
        .unwrap();
    let pharmacist_id = app.user_id(PHARMACIST).await;
    const POST: &str = "mutation($t: ID!, $b: String!, $a: [ID!]!) { \
                          postUrgentComment(topicId: $t, body: $b, ask: $a) }";
    const LIST: &str = "query($t: ID!) { urgentRequests(topicId: $t) { commentId stage \
                          asked { name reason } steps { step name } mayAcknowledge } }";
    const ACK: &str = "mutation($c: ID!) { acknowledgeUrgent(commentId: $c) }";

    for bad in [json!(["junk"]), json!([Uuid::new_v4().to_string()])] {
        let r = app
            .gql(
                POST,
                json!({"t": topic.to_string(), "b": "至急", "a": bad}),
                Some(&nurse),
                Some(HOST),
            )
            .await;
        assert_eq!(error_codes(&r), vec!["INVALID_INPUT"], "{r}");
    }
    let r = app
        .gql(
            POST,
            json!({"t": topic.to_string(), "b": "配薬を本日中に", "a": [pharmacist_id.to_string()]}),
            Some(&nurse),
            Some(HOST),
        )
        .await;
    let comment = r["data"]["postUrgentComment"]
        .as_str()
        .expect("posted")
        .to_owned();
    let r = app
        .gql(
            LIST,
            json!({"t": topic.to_string()}),
            Some(&pharmacist),
            Some(HOST),
        )
        .await;
    let req = &r["data"]["urgentRequests"][0];
    assert_eq!(req["commentId"], comment.as_str(), "{r}");
    assert_eq!(req["stage"], "asked");
    assert_eq!(req["asked"][0]["reason"], "named");
    assert_eq!(req["mayAcknowledge"], true);
    let r = app
        .gql(ACK, json!({"c": comment}), Some(&nurse), Some(HOST))
        .await;
    assert_eq!(
        error_codes(&r),
        vec!["INVALID_INPUT"],
        "the author cannot: {r}"
    );
    let r = app
        .gql(ACK, json!({"c": comment}), Some(&pharmacist), Some(HOST))
        .await;
    assert_eq!(r["data"]["acknowledgeUrgent"], true, "{r}");
    let r = app
        .gql(
            LIST,
            json!({"t": topic.to_string()}),
            Some(&nurse),
            Some(HOST),
        )
        .await;
    let req = &r["data"]["urgentRequests"][0];
    assert_eq!(req["stage"], "acknowledged", "{r}");
    assert_eq!(req["steps"][1]["step"], "acknowledged");
    // Someone from another association who is not in the group sees nothing of it.
    let outsider = app.demo_token(musubi_test_support::demo::OTHER_NURSE).await;
    let r = app
        .gql(
            LIST,
            json!({"t": topic.to_string()}),
            Some(&outsider),
            Some(OTHER),
        )
        .await;
    assert_eq!(error_codes(&r), vec!["NOT_FOUND"], "{r}");
}
