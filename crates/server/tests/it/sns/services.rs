//! The SNS core through the domain services: read-receipt modes, edit and delete history,
//! unread counters, audit records and live-event rows. (Scope rules everywhere are tested with
//! the API and pages; the demo data is checked at the end.)

use musubi_authz::GroupRole;
use musubi_db::accounts::NewUser;
use musubi_domain::audit::RequestMeta;
use musubi_domain::groups::{GroupInput, GroupKind, ReceiptMode, Scope};
use musubi_domain::operator::Operator;
use musubi_domain::sessions::Viewer;
use musubi_domain::topics::{Reading, TopicPatch, TopicView, Window};
use musubi_domain::types::{DoctorKind, Profession};
use musubi_domain::types::{GroupId, PersonId, TopicId};
use musubi_domain::Actor;
use musubi_domain::{ErrorCode, Tenant};
use musubi_test_support::{
    api_session_token, association, group_input, group_with_members, insert_member, TestApp, TestDb,
};
use std::collections::HashMap;
use uuid::Uuid;

fn client() -> RequestMeta {
    RequestMeta::new("192.0.2.10", "sns-services-test")
}

/// One association ("alpha") with a few people of each profession class, signed in.
struct World {
    db: TestDb,
    s: Operator,
    tenant: Tenant,
    people: HashMap<&'static str, Viewer>,
    meta: RequestMeta,
}

/// (key, profession, doctor kind): nurse, pharmacist and care manager are co-medical staff.
const PEOPLE: &[(&str, Profession, Option<DoctorKind>)] = &[
    ("nurse", Profession::Nurse, None),
    ("pharmacist", Profession::Pharmacist, None),
    ("care", Profession::CareManager, None),
    ("doctor", Profession::Physician, Some(DoctorKind::Clinic)),
    (
        "hospital",
        Profession::Physician,
        Some(DoctorKind::Hospital),
    ),
    ("outsider", Profession::Nurse, None),
];

/// A full session for `user_id`, as a sign-in would leave it.
async fn sign_in(services: &Operator, user_id: Uuid) -> Viewer {
    let token = api_session_token(services.db(), user_id.into(), "192.0.2.10").await;
    services
        .authenticate(&token)
        .await
        .unwrap()
        .expect("a valid session")
}

impl World {
    async fn new() -> Self {
        let db = TestDb::new().await;
        let s = db.operator().await;
        let tenant = s
            .create_association(&association("alpha", "アルファ医師会"))
            .await
            .unwrap();
        let mut people = HashMap::new();
        for (key, profession, doctor_kind) in PEOPLE {
            let id = insert_member(
                &db.db,
                tenant.id,
                &NewUser {
                    email: &format!("{key}@alpha.example"),
                    name: &format!("{key}さん"),
                    name_kana: key,
                    profession: *profession,
                    doctor_kind: *doctor_kind,
                    password_hash: None,
                },
            )
            .await;
            people.insert(*key, sign_in(&s, id.into()).await);
        }
        Self {
            db,
            s,
            tenant,
            people,
            meta: client(),
        }
    }

    fn p(&self, key: &str) -> &Viewer {
        &self.people[key]
    }

    /// `key` acting in this world's association.
    fn a(&self, key: &str) -> Actor<'_> {
        Actor::new(&self.people[key], &self.tenant, &self.meta)
    }

    fn id(&self, key: &str) -> PersonId {
        self.people[key].user().id
    }

    /// A group owned by `owner` with `members` added.
    async fn group(
        &self,
        owner: &str,
        kind: GroupKind,
        receipt_mode: Option<ReceiptMode>,
        members: &[&str],
    ) -> GroupId {
        let members: Vec<PersonId> = members.iter().map(|m| self.id(m)).collect();
        let input = GroupInput {
            receipt_mode,
            ..group_input(format!("グループ{}", Uuid::new_v4().simple()))
        };
        group_with_members(&self.s, &self.a(owner), kind, &input, &members).await
    }

    async fn topic(&self, author: &str, group: Uuid, body: &str, scope: Scope) -> Uuid {
        self.s
            .create_topic(
                &self.a(author),
                &musubi_domain::topics::NewTopic {
                    group_id: group.into(),
                    title: "訪問看護報告",
                    body,
                    scope,
                    important: false,
                },
            )
            .await
            .unwrap()
            .into()
    }

    async fn reply(&self, author: &str, topic: Uuid, body: &str) -> Uuid {
        self.s
            .post_comment(&self.a(author), topic.into(), body, false)
            .await
            .unwrap()
            .into()
    }

    async fn open(&self, who: &str, topic: Uuid) -> TopicView {
        self.s
            .open_topic(&self.a(who), topic.into(), true)
            .await
            .unwrap()
    }

    /// Looks without reading (`record_read` = false).
    async fn look(&self, who: &str, topic: Uuid) -> TopicView {
        self.s
            .open_topic(&self.a(who), topic.into(), false)
            .await
            .unwrap()
    }

    async fn scalar(&self, sql: &str, id: Uuid) -> i64 {
        let mut tx = self.db.db.tenant_tx(&self.tenant).await.unwrap();
        let n: i64 = sqlx::query_scalar(sql)
            .bind(id)
            .fetch_one(&mut *tx)
            .await
            .unwrap();
        tx.commit().await.unwrap();
        n
    }

    async fn footprints_by(&self, who: &str) -> i64 {
        self.scalar(
            "SELECT count(*) FROM footprints WHERE user_id = $1",
            self.id(who).into(),
        )
        .await
    }

    async fn acks_on(&self, comment: Uuid) -> i64 {
        self.scalar(
            "SELECT count(*) FROM acknowledgements WHERE comment_id = $1",
            comment,
        )
        .await
    }

    /// The person's unread count on one topic, as the topic list shows it.
    async fn topic_unread(&self, who: &str, group: Uuid, topic: Uuid) -> i32 {
        let view = self.s.group_view(&self.a(who), group.into()).await.unwrap();
        view.topics
            .iter()
            .find(|t| t.id == topic.into())
            .map_or(0, |t| t.unread)
    }

    /// (total, this association's, this group's) unread for the person.
    async fn counts(&self, who: &str, group: Uuid) -> (i64, i64, i64) {
        let c = self.s.unread_counts(self.p(who)).await.unwrap();
        let assoc = c
            .associations
            .iter()
            .find(|(slug, ..)| slug == "alpha")
            .map_or(0, |(.., n)| *n);
        let g = c
            .groups
            .iter()
            .find(|(_, id, _)| *id == group.into())
            .map_or(0, |(.., n)| *n);
        (c.total, assoc, g)
    }

    /// Audit records of this association with `action`, optionally on one object.
    async fn audited(&self, action: &str, object: Option<Uuid>) -> i64 {
        self.s.flush_refusals().await;
        let mut tx = self.db.db.tenant_tx(&self.tenant).await.unwrap();
        let n: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM audit_log WHERE action = $1 \
             AND ($2::text IS NULL OR object_id = $2)",
        )
        .bind(action)
        .bind(object.map(|o| o.to_string()))
        .fetch_one(&mut *tx)
        .await
        .unwrap();
        tx.commit().await.unwrap();
        n
    }

    /// The kinds of the events written after `after`, oldest first.
    async fn events_after(&self, after: i64) -> Vec<String> {
        sqlx::query_scalar("SELECT kind FROM core.events WHERE id > $1 ORDER BY id")
            .bind(after)
            .fetch_all(self.db.db.pool())
            .await
            .unwrap()
    }

    async fn last_event(&self) -> i64 {
        self.s.last_event_id().await.unwrap()
    }

    async fn set_default_receipt_mode(&self, mode: &str) {
        let mut tx = self.db.db.tenant_tx(&self.tenant).await.unwrap();
        sqlx::query("UPDATE settings SET receipt_mode = $1")
            .bind(mode)
            .execute(&mut *tx)
            .await
            .unwrap();
        tx.commit().await.unwrap();
    }
}

fn readers(view: &TopicView, seq: i32) -> Vec<PersonId> {
    view.comments
        .iter()
        .find(|c| c.row.seq == seq)
        .expect("comment")
        .readers
        .iter()
        .map(|r| r.user_id)
        .collect()
}

fn not_read_by(view: &TopicView, seq: i32) -> Vec<PersonId> {
    let mut v: Vec<PersonId> = view
        .comments
        .iter()
        .find(|c| c.row.seq == seq)
        .expect("comment")
        .not_read_by
        .iter()
        .map(|(id, _)| *id)
        .collect();
    v.sort();
    v
}

fn sorted<T: Ord>(mut v: Vec<T>) -> Vec<T> {
    v.sort();
    v
}

// --- Read-receipt modes --------------------------------------------------------------------

#[tokio::test]
async fn footprints_are_left_on_others_comments_once_and_shown_to_the_author() {
    let w = World::new().await;
    let g = w
        .group(
            "doctor",
            GroupKind::Patient,
            None,
            &["nurse", "pharmacist", "hospital"],
        )
        .await;
    let t = w
        .topic("nurse", g.into(), "BP 132/78、SpO2 94%", Scope::EVERYONE)
        .await;
    w.reply("doctor", t, "往診予定は木曜です。").await;

    let before = chrono::Utc::now();
    let view = w.open("doctor", t).await;
    assert_eq!(view.receipt_mode, ReceiptMode::Footprints, "the default");
    assert_eq!(view.first_unread_seq, Some(1));
    assert_eq!(
        readers(&view, 1),
        vec![w.id("doctor")],
        "the doctor read the body"
    );
    assert!(
        readers(&view, 2).is_empty(),
        "no footprint on one's own comment"
    );
    assert_eq!(w.footprints_by("doctor").await, 1);
    let at = view.comments[0].readers[0].at;
    assert!(
        at >= before - chrono::Duration::seconds(5),
        "{at} is the read time"
    );

    // The author sees who read, with the time, and who in scope has not yet.
    let view = w.open("nurse", t).await;
    assert_eq!(readers(&view, 1), vec![w.id("doctor")]);
    assert_eq!(
        view.comments[0].readers[0].at, at,
        "the first read time stays"
    );
    assert!(view.comments[0].mine);
    assert_eq!(
        not_read_by(&view, 1),
        sorted(vec![w.id("pharmacist"), w.id("hospital")])
    );
    assert!(
        not_read_by(&view, 2).is_empty(),
        "not-read lists are for one's own comments"
    );
    assert_eq!(readers(&view, 2), vec![w.id("nurse")]);
    assert_eq!(
        w.footprints_by("nurse").await,
        1,
        "only the doctor's comment"
    );

    // Looking again, or looking at who read, leaves nothing more.
    let events = w.last_event().await;
    w.open("doctor", t).await;
    w.open("nurse", t).await;
    w.look("pharmacist", t).await;
    assert_eq!(w.footprints_by("doctor").await, 1);
    assert_eq!(w.footprints_by("nurse").await, 1);
    assert_eq!(
        w.footprints_by("pharmacist").await,
        0,
        "looking is not reading"
    );
    assert!(
        w.events_after(events).await.is_empty(),
        "nothing new to announce"
    );

    // A new comment is footprinted on the next visit only.
    w.reply("nurse", t, "追記：排便あり。").await;
    let view = w.open("doctor", t).await;
    assert_eq!(view.first_unread_seq, Some(3));
    assert_eq!(w.footprints_by("doctor").await, 2);
}

/// Footprints are the most frequent write: recording them must not lock (and so write) the
/// comments they mark, as a foreign key's check did (tenant migration 0015).
#[tokio::test]
async fn recording_footprints_takes_no_lock_on_the_comments_read() {
    let w = World::new().await;
    let (g, t) = long_topic(&w, None, 3).await;
    let mut reading = w.db.db.tenant_tx(&w.tenant).await.unwrap();
    let slot = w.tenant.plan_slot();
    let marked =
        musubi_db::groups::record_footprints(&mut reading, slot, w.id("doctor"), t.into(), 1, None)
            .await
            .unwrap();
    assert_eq!(marked.len(), 3, "every comment of others in group {g}");

    // While the read is uncommitted, a writer may still lock every comment for update.
    let mut writer = w.db.db.tenant_tx(&w.tenant).await.unwrap();
    sqlx::query("SET LOCAL lock_timeout = '2s'")
        .execute(&mut *writer)
        .await
        .unwrap();
    let locked: Vec<Uuid> =
        sqlx::query_scalar("SELECT id FROM comments WHERE topic_id = $1 FOR UPDATE NOWAIT")
            .bind(t)
            .fetch_all(&mut *writer)
            .await
            .expect("reading left no lock on the comments");
    assert_eq!(locked.len(), 3);
    writer.rollback().await.unwrap();
    reading.commit().await.unwrap();
    assert_eq!(w.footprints_by("doctor").await, 3);
}

#[tokio::test]
async fn the_association_default_applies_unless_the_group_overrides_it() {
    let w = World::new().await;
    w.set_default_receipt_mode("ack").await;
    let plain = w
        .group("doctor", GroupKind::General, None, &["nurse"])
        .await;
    let own = w
        .group(
            "doctor",
            GroupKind::General,
            Some(ReceiptMode::Footprints),
            &["nurse"],
        )
        .await;
    let t1 = w
        .topic("nurse", plain.into(), "連絡です", Scope::EVERYONE)
        .await;
    let t2 = w
        .topic("nurse", own.into(), "連絡です", Scope::EVERYONE)
        .await;

    let view = w.open("doctor", t1).await;
    assert_eq!(view.receipt_mode, ReceiptMode::Acknowledgement);
    assert_eq!(w.footprints_by("doctor").await, 0);
    let view = w.open("doctor", t2).await;
    assert_eq!(
        view.receipt_mode,
        ReceiptMode::Footprints,
        "the group's own mode wins"
    );
    assert_eq!(w.footprints_by("doctor").await, 1);

    // Back to the default: groups without an override follow at once.
    w.set_default_receipt_mode("off").await;
    let view = w.look("nurse", t1).await;
    assert_eq!(view.receipt_mode, ReceiptMode::Off);
    assert_eq!(
        w.look("nurse", t2).await.receipt_mode,
        ReceiptMode::Footprints
    );
}

#[tokio::test]
async fn acknowledgement_mode_records_confirmations_once_and_no_footprints() {
    let w = World::new().await;
    let g = w
        .group(
            "doctor",
            GroupKind::Patient,
            Some(ReceiptMode::Acknowledgement),
            &["nurse", "pharmacist"],
        )
        .await;
    let t = w
        .topic("nurse", g.into(), "当番表です", Scope::EVERYONE)
        .await;
    let view = w.open("doctor", t).await;
    assert_eq!(view.receipt_mode, ReceiptMode::Acknowledgement);
    assert_eq!(
        w.footprints_by("doctor").await,
        0,
        "no footprints in this mode"
    );
    assert!(readers(&view, 1).is_empty());
    let body = view.comments[0].row.id;

    let events = w.last_event().await;
    w.s.acknowledge_comment(&w.a("doctor"), body).await.unwrap();
    w.s.acknowledge_comment(&w.a("doctor"), body)
        .await
        .expect("confirming twice is harmless");
    assert_eq!(w.acks_on(body.into()).await, 1);
    assert_eq!(w.events_after(events).await, vec!["acknowledged"]);
    assert_eq!(w.audited("comment.acknowledge", Some(body.into())).await, 1);

    let err =
        w.s.acknowledge_comment(&w.a("nurse"), body)
            .await
            .unwrap_err();
    assert_eq!(err.code, ErrorCode::InvalidInput, "not one's own comment");
    let err =
        w.s.acknowledge_comment(&w.a("outsider"), body)
            .await
            .unwrap_err();
    assert_eq!(err.code, ErrorCode::NotFound);

    let view = w.look("nurse", t).await;
    assert_eq!(readers(&view, 1), vec![w.id("doctor")], "who confirmed");
    assert_eq!(not_read_by(&view, 1), vec![w.id("pharmacist")]);
    assert!(w.look("doctor", t).await.comments[0].acknowledged_by_me);
    assert!(!w.look("pharmacist", t).await.comments[0].acknowledged_by_me);

    // In footprint mode there is nothing to confirm.
    let fp = w
        .group("doctor", GroupKind::General, None, &["nurse"])
        .await;
    let t2 = w.topic("nurse", fp.into(), "連絡", Scope::EVERYONE).await;
    let body2 = w.look("doctor", t2).await.comments[0].row.id;
    let err =
        w.s.acknowledge_comment(&w.a("doctor"), body2)
            .await
            .unwrap_err();
    assert_eq!(err.code, ErrorCode::InvalidInput);
}

#[tokio::test]
async fn with_receipts_off_nobody_sees_readers_and_no_footprints_are_kept() {
    let w = World::new().await;
    let g = w
        .group(
            "doctor",
            GroupKind::General,
            Some(ReceiptMode::Off),
            &["nurse"],
        )
        .await;
    let t = w
        .topic("nurse", g.into(), "連絡です", Scope::EVERYONE)
        .await;
    let view = w.open("doctor", t).await;
    assert_eq!(view.receipt_mode, ReceiptMode::Off);
    assert_eq!(view.topic.unread, 0, "reading still clears unread");
    assert_eq!(w.footprints_by("doctor").await, 0);
    let view = w.look("nurse", t).await;
    assert!(view.comments[0].readers.is_empty());
    assert!(view.comments[0].not_read_by.is_empty());
}

// --- Edit and delete -----------------------------------------------------------------------

#[tokio::test]
async fn editing_keeps_every_earlier_version_and_only_the_author_may_edit() {
    let w = World::new().await;
    let g = w
        .group("doctor", GroupKind::Patient, None, &["nurse"])
        .await;
    let t = w.topic("nurse", g.into(), "本文", Scope::EVERYONE).await;
    let c = w.reply("nurse", t, "体温 37.8℃").await;
    for body in ["体温 36.8℃", "体温 36.8℃（訂正）"] {
        w.s.edit_comment(&w.a("nurse"), c.into(), body, true)
            .await
            .unwrap();
    }
    let view = w.look("doctor", t).await;
    let cv = view.comments.iter().find(|x| x.row.id == c.into()).unwrap();
    assert_eq!(cv.row.body, "体温 36.8℃（訂正）");
    assert_eq!(cv.row.version, 3);
    assert!(cv.row.important);
    assert!(cv.row.edited_at.is_some());
    let history: Vec<(i32, &str, bool)> = cv
        .history
        .iter()
        .map(|v| (v.version, v.body.as_str(), v.important))
        .collect();
    assert_eq!(
        history,
        vec![(1, "体温 37.8℃", false), (2, "体温 36.8℃", true)],
        "earlier versions, oldest first"
    );
    assert!(
        view.comments[0].history.is_empty(),
        "the body was never edited"
    );

    for who in ["doctor", "outsider"] {
        let err =
            w.s.edit_comment(&w.a(who), c.into(), "書き換え", false)
                .await
                .unwrap_err();
        assert_eq!(err.code, ErrorCode::NotFound, "{who} may not edit");
    }
    let err =
        w.s.edit_comment(&w.a("nurse"), c.into(), "  \n ", false)
            .await
            .unwrap_err();
    assert_eq!(err.code, ErrorCode::InvalidInput);
    assert_eq!(w.look("doctor", t).await.comments[1].row.version, 3);
}

#[tokio::test]
async fn deleting_leaves_a_mark_keeps_the_row_and_is_for_the_author_or_an_owner() {
    let w = World::new().await;
    let g = w
        .group("doctor", GroupKind::Patient, None, &["nurse", "pharmacist"])
        .await;
    let t = w.topic("nurse", g.into(), "本文", Scope::EVERYONE).await;
    let mine = w.reply("nurse", t, "誤って投稿しました").await;
    let doctors = w.reply("doctor", t, "処方を変更します").await;
    let nurses = w.reply("nurse", t, "承知しました").await;

    // The author deletes their own; the text is hidden but kept.
    w.s.delete_comment(&w.a("nurse"), mine.into())
        .await
        .unwrap();
    let view = w.look("pharmacist", t).await;
    let cv = view
        .comments
        .iter()
        .find(|x| x.row.id == mine.into())
        .unwrap();
    assert!(cv.is_deleted());
    assert_eq!(cv.row.body, "", "the text is not shown");
    assert_eq!(view.comments.len(), 4, "the mark keeps its place");
    let kept: String = {
        let mut tx = w.db.db.tenant_tx(&w.tenant).await.unwrap();
        let b = sqlx::query_scalar(
            "SELECT body FROM comments WHERE id = $1 AND deleted_at IS NOT NULL",
        )
        .bind(mine)
        .fetch_one(&mut *tx)
        .await
        .unwrap();
        tx.commit().await.unwrap();
        b
    };
    assert_eq!(
        kept, "誤って投稿しました",
        "the record stays for the audit trail"
    );
    let err =
        w.s.edit_comment(&w.a("nurse"), mine.into(), "復活", false)
            .await
            .unwrap_err();
    assert_eq!(
        err.code,
        ErrorCode::NotFound,
        "a deleted comment stays deleted"
    );

    // A member may not delete someone else's; the group's owner may.
    let err =
        w.s.delete_comment(&w.a("pharmacist"), doctors.into())
            .await
            .unwrap_err();
    assert_eq!(err.code, ErrorCode::NotFound);
    w.s.delete_comment(&w.a("doctor"), nurses.into())
        .await
        .unwrap();
    assert!(w
        .look("nurse", t)
        .await
        .comments
        .iter()
        .find(|x| x.row.id == nurses.into())
        .unwrap()
        .is_deleted());
    assert_eq!(w.audited("comment.delete", Some(nurses)).await, 1);

    // A topic's body cannot be deleted, not even by the owner.
    let body = w.look("doctor", t).await.comments[0].row.id;
    let err = w.s.delete_comment(&w.a("doctor"), body).await.unwrap_err();
    assert_eq!(err.code, ErrorCode::FirstPostUndeletable);
    assert!(!w.look("doctor", t).await.comments[0].is_deleted());
}

// --- Unread --------------------------------------------------------------------------------

#[tokio::test]
async fn unread_counts_follow_posts_reads_deletions_and_mark_all_read() {
    let w = World::new().await;
    let g = w
        .group("doctor", GroupKind::Patient, None, &["nurse", "pharmacist"])
        .await;
    let other = w
        .group("nurse", GroupKind::General, None, &["doctor"])
        .await;

    let t = w
        .topic("nurse", g.into(), "報告です", Scope::EVERYONE)
        .await;
    assert_eq!(w.counts("doctor", g.into()).await, (1, 1, 1));
    assert_eq!(
        w.counts("nurse", g.into()).await,
        (0, 0, 0),
        "one's own post is not unread"
    );
    w.reply("pharmacist", t, "残薬を確認しました").await;
    assert_eq!(w.counts("doctor", g.into()).await, (2, 2, 2));
    assert_eq!(w.topic_unread("doctor", g.into(), t).await, 2);
    assert_eq!(w.topic_unread("nurse", g.into(), t).await, 1);
    w.reply("doctor", t, "承知しました").await;
    assert_eq!(
        w.counts("doctor", g.into()).await.2,
        2,
        "own reply adds nothing"
    );
    assert_eq!(w.topic_unread("nurse", g.into(), t).await, 2);

    // The home page has the group, its newest unread comment and the topic.
    let home = w.s.home(w.p("doctor")).await.unwrap();
    assert_eq!(home.counts.total, 2);
    let hg = home.groups.iter().find(|h| h.group_id == g).unwrap();
    assert_eq!(hg.unread, 2);
    assert!(hg.patient);
    assert_eq!(hg.headline.as_ref().map(|i| i.seq), Some(2));
    let topics: Vec<(TopicId, i64)> = hg.topics.iter().map(|x| (x.topic_id, x.unread)).collect();
    assert_eq!(topics, vec![(t.into(), 2)]);

    // A second topic and another group add up per topic, group and in total.
    let t2 = w.topic("nurse", g.into(), "2件目", Scope::EVERYONE).await;
    let t3 = w
        .topic("nurse", other.into(), "連絡", Scope::EVERYONE)
        .await;
    w.reply("nurse", t3, "追記").await;
    assert_eq!(w.counts("doctor", g.into()).await, (5, 5, 3));
    assert_eq!(w.counts("doctor", other.into()).await.2, 2);

    // Opening clears that topic only.
    let view = w.open("doctor", t).await;
    assert_eq!(view.topic.unread, 0);
    assert_eq!(w.topic_unread("doctor", g.into(), t).await, 0);
    assert_eq!(w.topic_unread("doctor", g.into(), t2).await, 1);
    assert_eq!(w.counts("doctor", g.into()).await, (3, 3, 1));

    // Mark all as read: the group's counters go, without footprints.
    let footprints = w.footprints_by("doctor").await;
    let cleared = w.s.mark_group_read(&w.a("doctor"), other).await.unwrap();
    assert_eq!(cleared, 1, "one topic");
    assert_eq!(w.counts("doctor", other.into()).await.2, 0);
    assert_eq!(w.counts("doctor", g.into()).await, (1, 1, 1));
    assert_eq!(
        w.footprints_by("doctor").await,
        footprints,
        "not read, so no footprints"
    );

    // A deleted comment is no longer unread.
    let c1 = w.reply("nurse", t, "一つ目").await;
    let c2 = w.reply("nurse", t, "二つ目").await;
    assert_eq!(w.topic_unread("doctor", g.into(), t).await, 2);
    w.s.delete_comment(&w.a("nurse"), c2.into()).await.unwrap();
    assert_eq!(w.topic_unread("doctor", g.into(), t).await, 1);
    w.s.delete_comment(&w.a("nurse"), c1.into()).await.unwrap();
    assert_eq!(w.topic_unread("doctor", g.into(), t).await, 0);
    assert_eq!(
        w.counts("doctor", g.into()).await,
        (1, 1, 1),
        "t2 is still unread"
    );
}

#[tokio::test]
async fn widening_a_topics_scope_brings_it_into_the_doctors_unread() {
    let w = World::new().await;
    let g = w
        .group(
            "nurse",
            GroupKind::Patient,
            None,
            &["doctor", "hospital", "pharmacist"],
        )
        .await;
    let t = w
        .topic("nurse", g.into(), "ご家族の介護負担", Scope::CO_MEDICAL)
        .await;
    w.reply("pharmacist", t, "夜間の服薬を確認します").await;
    w.reply("nurse", t, "ショートステイを検討中").await;
    assert_eq!(w.counts("pharmacist", g.into()).await.2, 2);
    for doctor in ["doctor", "hospital"] {
        assert_eq!(
            w.counts(doctor, g.into()).await,
            (0, 0, 0),
            "{doctor}: out of scope"
        );
        let home = w.s.home(w.p(doctor)).await.unwrap();
        assert!(home
            .groups
            .iter()
            .all(|h| h.topics.iter().all(|x| x.topic_id != t.into())));
    }

    // Collaborating doctors join the scope: they now have all three comments unread.
    w.s.update_topic(
        &w.a("nurse"),
        t.into(),
        &TopicPatch {
            title: None,
            scope: Some(Scope::CO_MEDICAL.union(Scope::COLLABORATING_DOCTORS)),
            pinned: None,
            closed: None,
        },
    )
    .await
    .unwrap();
    assert_eq!(w.counts("doctor", g.into()).await, (3, 3, 3));
    assert_eq!(w.topic_unread("doctor", g.into(), t).await, 3);
    let home = w.s.home(w.p("doctor")).await.unwrap();
    let topics: Vec<(TopicId, i64)> = home.groups[0]
        .topics
        .iter()
        .map(|x| (x.topic_id, x.unread))
        .collect();
    assert_eq!(topics, vec![(t.into(), 3)]);
    assert_eq!(home.groups[0].headline.as_ref().map(|i| i.seq), Some(3));
    assert_eq!(w.counts("hospital", g.into()).await.2, 0, "still outside");
    assert_eq!(
        w.counts("pharmacist", g.into()).await.2,
        2,
        "unchanged for those already in"
    );

    // What the doctor has read stays read when the scope changes again.
    w.open("doctor", t).await;
    w.reply("nurse", t, "追記").await;
    w.s.update_topic(
        &w.a("nurse"),
        t.into(),
        &TopicPatch {
            title: None,
            scope: Some(Scope::EVERYONE),
            pinned: None,
            closed: None,
        },
    )
    .await
    .unwrap();
    assert_eq!(w.topic_unread("doctor", g.into(), t).await, 1);
    assert_eq!(w.topic_unread("hospital", g.into(), t).await, 4);

    // Narrowing it again takes it away from them.
    w.s.update_topic(
        &w.a("nurse"),
        t.into(),
        &TopicPatch {
            title: None,
            scope: Some(Scope::CO_MEDICAL),
            pinned: None,
            closed: None,
        },
    )
    .await
    .unwrap();
    assert_eq!(w.counts("doctor", g.into()).await, (0, 0, 0));
    assert_eq!(w.counts("hospital", g.into()).await, (0, 0, 0));
}

fn scope_patch(scope: Scope) -> TopicPatch {
    TopicPatch {
        title: None,
        scope: Some(scope),
        pinned: None,
        closed: None,
    }
}

#[tokio::test]
async fn a_scope_change_leaves_what_those_still_in_scope_read_as_read() {
    let w = World::new().await;
    // Without footprints (acknowledgement mode, or "mark all as read") reading leaves no trace
    // but the cleared counter: a scope change must not bring the comments back.
    let g = w
        .group(
            "nurse",
            GroupKind::Patient,
            Some(ReceiptMode::Acknowledgement),
            &["doctor", "pharmacist", "hospital"],
        )
        .await;
    let t = w.topic("nurse", g.into(), "報告", Scope::EVERYONE).await;
    w.reply("nurse", t, "追記").await;
    w.open("doctor", t).await;
    w.s.mark_group_read(&w.a("pharmacist"), g).await.unwrap();
    w.s.update_topic(
        &w.a("nurse"),
        t.into(),
        &scope_patch(Scope::CO_MEDICAL.union(Scope::COLLABORATING_DOCTORS)),
    )
    .await
    .unwrap();
    assert_eq!(
        w.counts("doctor", g.into()).await,
        (0, 0, 0),
        "read before, still read"
    );
    assert_eq!(w.counts("pharmacist", g.into()).await, (0, 0, 0));
    assert_eq!(
        w.counts("hospital", g.into()).await,
        (0, 0, 0),
        "now outside"
    );
    // Back in scope: the hospital doctor had it unread when it was taken away.
    w.s.update_topic(&w.a("nurse"), t.into(), &scope_patch(Scope::EVERYONE))
        .await
        .unwrap();
    assert_eq!(w.counts("hospital", g.into()).await.2, 2);
    assert_eq!(w.counts("doctor", g.into()).await, (0, 0, 0));
}

#[tokio::test]
async fn a_removed_member_has_nothing_left_unread_there() {
    let w = World::new().await;
    let g = w
        .group("doctor", GroupKind::Patient, None, &["nurse", "pharmacist"])
        .await;
    let t = w.topic("nurse", g.into(), "報告", Scope::EVERYONE).await;
    w.reply("nurse", t, "追記").await;
    assert_eq!(w.counts("pharmacist", g.into()).await, (2, 2, 2));
    w.s.remove_group_member(&w.a("doctor"), g, w.id("pharmacist"))
        .await
        .unwrap();
    assert_eq!(w.counts("pharmacist", g.into()).await, (0, 0, 0));
    let home = w.s.home(w.p("pharmacist")).await.unwrap();
    assert!(home.groups.is_empty());
    w.reply("nurse", t, "さらに追記").await;
    assert_eq!(
        w.counts("pharmacist", g.into()).await,
        (0, 0, 0),
        "nothing new reaches them"
    );
}

#[tokio::test]
async fn the_footprints_of_someone_who_left_keep_their_name() {
    let w = World::new().await;
    let g = w
        .group("doctor", GroupKind::Patient, None, &["nurse", "pharmacist"])
        .await;
    let t = w.topic("nurse", g.into(), "報告", Scope::EVERYONE).await;
    w.open("pharmacist", t).await;
    w.open("doctor", t).await;
    w.s.remove_group_member(&w.a("doctor"), g, w.id("pharmacist"))
        .await
        .unwrap();
    let view = w.look("nurse", t).await;
    let mut named: Vec<(PersonId, String)> = view.comments[0]
        .readers
        .iter()
        .map(|r| (r.user_id, r.name.clone()))
        .collect();
    named.sort();
    let mut expected = vec![
        (w.id("doctor"), "doctorさん".to_owned()),
        (w.id("pharmacist"), "pharmacistさん".to_owned()),
    ];
    expected.sort();
    assert_eq!(named, expected, "a member's name and a former member's");
}

// --- Audit and events ----------------------------------------------------------------------

#[tokio::test]
async fn reading_a_long_patient_topic_is_one_audit_record_and_general_reads_none() {
    let w = World::new().await;
    let g = w
        .group("doctor", GroupKind::Patient, None, &["nurse"])
        .await;
    let t = w.topic("nurse", g.into(), "報告", Scope::EVERYONE).await;
    for i in 0..30 {
        w.reply("nurse", t, &format!("経過 {i}")).await;
    }
    let before = w.audited("topic.read", None).await;
    let view = w.open("doctor", t).await;
    assert_eq!(view.comments.len(), 31);
    assert_eq!(w.audited("topic.read", None).await - before, 1);
    assert_eq!(w.audited("topic.read", Some(t)).await, 1, "on the topic");
    let detail: serde_json::Value = {
        let mut tx = w.db.db.tenant_tx(&w.tenant).await.unwrap();
        let d = sqlx::query_scalar("SELECT detail FROM audit_log WHERE action = 'topic.read'")
            .fetch_one(&mut *tx)
            .await
            .unwrap();
        tx.commit().await.unwrap();
        d
    };
    assert_eq!(detail["object_count"], 31, "{detail}");
    let listed: Vec<&str> = detail["object_ids"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    let shown: Vec<String> = view.comments.iter().map(|c| c.row.id.to_string()).collect();
    assert_eq!(listed, shown, "the comments read, by id only");

    let general = w
        .group("doctor", GroupKind::General, None, &["nurse"])
        .await;
    let t2 = w
        .topic("nurse", general.into(), "研修会のお知らせ", Scope::EVERYONE)
        .await;
    w.open("doctor", t2).await;
    w.look("doctor", t2).await;
    assert_eq!(
        w.audited("topic.read", Some(t2)).await,
        0,
        "not patient information"
    );
}

#[tokio::test]
async fn every_write_leaves_one_audit_record_and_one_event_of_its_kind() {
    let w = World::new().await;
    let ev = w.last_event().await;
    let g = w
        .group(
            "doctor",
            GroupKind::Patient,
            Some(ReceiptMode::Acknowledgement),
            &["nurse"],
        )
        .await;
    assert_eq!(w.audited("group.create", Some(g.into())).await, 1);
    assert_eq!(
        w.events_after(ev).await,
        vec!["membership_changed"],
        "only the creator's own pages to tell"
    );

    let mut ev = w.last_event().await;
    let t = w.topic("nurse", g.into(), "報告", Scope::EVERYONE).await;
    assert_eq!(w.audited("topic.create", Some(t)).await, 1);
    assert_eq!(w.events_after(ev).await, vec!["comment_posted"]);

    ev = w.last_event().await;
    let c = w.reply("doctor", t, "返信").await;
    assert_eq!(w.audited("comment.create", Some(c)).await, 1);
    assert_eq!(w.events_after(ev).await, vec!["comment_posted"]);

    ev = w.last_event().await;
    w.s.edit_comment(&w.a("doctor"), c.into(), "返信（訂正）", false)
        .await
        .unwrap();
    assert_eq!(w.audited("comment.edit", Some(c)).await, 1);
    assert_eq!(w.events_after(ev).await, vec!["comment_edited"]);

    ev = w.last_event().await;
    w.s.acknowledge_comment(&w.a("nurse"), c.into())
        .await
        .unwrap();
    assert_eq!(w.audited("comment.acknowledge", Some(c)).await, 1);
    assert_eq!(w.events_after(ev).await, vec!["acknowledged"]);

    ev = w.last_event().await;
    w.s.update_topic(
        &w.a("nurse"),
        t.into(),
        &TopicPatch {
            title: Some("報告（12/5）".into()),
            scope: None,
            pinned: Some(true),
            closed: None,
        },
    )
    .await
    .unwrap();
    assert_eq!(w.audited("topic.update", Some(t)).await, 1);
    assert_eq!(w.events_after(ev).await, vec!["topic_changed"]);

    ev = w.last_event().await;
    w.s.delete_comment(&w.a("doctor"), c.into()).await.unwrap();
    assert_eq!(w.audited("comment.delete", Some(c)).await, 1);
    assert_eq!(w.events_after(ev).await, vec!["comment_deleted"]);

    ev = w.last_event().await;
    w.s.mark_group_read(&w.a("doctor"), g).await.unwrap();
    assert_eq!(w.audited("group.mark_read", Some(g.into())).await, 1);
    assert_eq!(w.events_after(ev).await, vec!["unread_changed"]);

    // Reading in footprint mode: the new footprints and the cleared counter, once.
    let fp = w
        .group("doctor", GroupKind::General, None, &["nurse"])
        .await;
    let t2 = w.topic("nurse", fp.into(), "連絡", Scope::EVERYONE).await;
    ev = w.last_event().await;
    w.open("doctor", t2).await;
    assert_eq!(
        w.events_after(ev).await,
        vec!["footprint_added", "unread_changed"]
    );
    ev = w.last_event().await;
    w.open("doctor", t2).await;
    assert!(w.events_after(ev).await.is_empty());

    // Refused writes leave no event (but the denial is audited).
    ev = w.last_event().await;
    let denied = w.audited("access.denied", None).await;
    let err =
        w.s.post_comment(&w.a("outsider"), t2.into(), "割り込み", false)
            .await
            .unwrap_err();
    assert_eq!(err.code, ErrorCode::NotFound);
    assert!(w.events_after(ev).await.is_empty());
    assert_eq!(w.audited("access.denied", None).await, denied + 1);
}

// --- Demo data -----------------------------------------------------------------------------

#[tokio::test]
async fn every_demo_person_has_something_read_and_something_unread() {
    let app = TestApp::demo().await;
    let services = app.operator();
    let emails: Vec<String> = sqlx::query_scalar("SELECT email FROM core.users ORDER BY email")
        .fetch_all(app.db.db.pool())
        .await
        .unwrap();
    assert_eq!(emails.len(), 13);
    let tenants = [
        services.resolve_tenant("minatogawa").await.unwrap(),
        services.resolve_tenant("sakuradai").await.unwrap(),
    ];
    for email in &emails {
        let id = app.user_id(email).await;
        let viewer = sign_in(&services, id.into()).await;
        let home = services.home(&viewer).await.unwrap();
        assert!(home.counts.total > 0, "{email} has nothing unread");
        assert!(
            home.groups.iter().any(|g| g.headline.is_some()),
            "{email}: unread items are listed"
        );
        let mut read = 0i64;
        for tenant in &tenants {
            let mut tx = app.db.db.tenant_tx(tenant).await.unwrap();
            let n: i64 = sqlx::query_scalar(
                "SELECT (SELECT count(*) FROM footprints WHERE user_id = $1) \
                      + (SELECT count(*) FROM acknowledgements WHERE user_id = $1)",
            )
            .bind(id)
            .fetch_one(&mut *tx)
            .await
            .unwrap();
            tx.commit().await.unwrap();
            read += n;
        }
        assert!(read > 0, "{email} has read nothing");
    }

    // The co-medical-only topic is nowhere for the hospital doctor, who is in its group.
    let minatogawa = &tenants[0];
    let mut tx = app.db.db.tenant_tx(minatogawa).await.unwrap();
    let (topic, group): (Uuid, Uuid) =
        sqlx::query_as("SELECT id, group_id FROM topics WHERE scope = 1")
            .fetch_one(&mut *tx)
            .await
            .unwrap();
    let doctors_only: i64 = sqlx::query_scalar("SELECT count(*) FROM topics WHERE scope = 6")
        .fetch_one(&mut *tx)
        .await
        .unwrap();
    let (edited, deleted): (i64, i64) = sqlx::query_as(
        "SELECT count(*) FILTER (WHERE version > 1), count(*) FILTER (WHERE deleted_at IS NOT NULL) \
         FROM comments",
    )
    .fetch_one(&mut *tx)
    .await
    .unwrap();
    // Times are spread over days, in the order of the comments.
    let (days, out_of_order): (f64, i64) = sqlx::query_as(
        "SELECT extract(epoch FROM max(created_at) - min(created_at))::float8 / 86400, \
                (SELECT count(*) FROM comments a JOIN comments b \
                   ON a.topic_id = b.topic_id AND a.seq < b.seq AND a.created_at >= b.created_at) \
         FROM comments",
    )
    .fetch_one(&mut *tx)
    .await
    .unwrap();
    tx.commit().await.unwrap();
    assert_eq!(doctors_only, 1);
    assert_eq!((edited, deleted), (1, 1));
    assert!(days > 4.0, "comments span {days} days");
    assert_eq!(out_of_order, 0);

    let sato = sign_in(
        &services,
        app.user_id("sato@sakuradai-hospital.example").await.into(),
    )
    .await;
    let home = services.home(&sato).await.unwrap();
    assert!(home
        .groups
        .iter()
        .all(|g| g.topics.iter().all(|x| x.topic_id != topic.into())));
    let view = services
        .group_view(&Actor::new(&sato, minatogawa, &client()), group.into())
        .await
        .unwrap();
    assert!(view.topics.iter().all(|t| t.id != topic.into()));
    let err = services
        .open_topic(
            &Actor::new(&sato, minatogawa, &client()),
            topic.into(),
            false,
        )
        .await
        .unwrap_err();
    assert_eq!(err.code, ErrorCode::NotFound);
    // A nurse of the same group sees it.
    let aoki = sign_in(
        &services,
        app.user_id("aoki@minatogawa.example").await.into(),
    )
    .await;
    services
        .open_topic(
            &Actor::new(&aoki, minatogawa, &client()),
            topic.into(),
            false,
        )
        .await
        .unwrap();
}

#[tokio::test]
async fn the_home_page_puts_important_news_of_another_patient_first_and_stays_exact() {
    use musubi_domain::unread::HOME_TOPICS_PER_GROUP;
    let w = World::new().await;
    let first = w
        .group("doctor", GroupKind::Patient, None, &["nurse", "pharmacist"])
        .await;
    let second = w
        .group("doctor", GroupKind::Patient, None, &["nurse", "pharmacist"])
        .await;
    // The second patient's terminal-care alert comes first, then a busy day for the first.
    let alert = w
        .topic("nurse", second.into(), "看取りの連絡", Scope::EVERYONE)
        .await;
    let urgent =
        w.s.post_comment(
            &w.a("nurse"),
            alert.into(),
            "呼吸が浅くなっています。ご家族に連絡済み。",
            true,
        )
        .await
        .unwrap();
    w.reply("pharmacist", alert, "承知しました").await;
    let mut busy = Vec::new();
    for i in 0..HOME_TOPICS_PER_GROUP + 2 {
        let t = w
            .topic(
                "pharmacist",
                first.into(),
                &format!("記録 {i}"),
                Scope::EVERYONE,
            )
            .await;
        w.reply("nurse", t, "変わりありません").await;
        busy.push(t);
    }

    let home = w.s.home(w.p("doctor")).await.unwrap();
    let ids: Vec<GroupId> = home.groups.iter().map(|g| g.group_id).collect();
    assert_eq!(ids, vec![second, first], "important first, though older");
    let hg = &home.groups[0];
    assert_eq!((hg.unread, hg.important), (3, 1));
    let headline = hg.headline.as_ref().unwrap();
    assert_eq!(
        headline.comment_id, urgent,
        "the important comment, not the newest"
    );
    assert!(headline.important);
    let hg = &home.groups[1];
    let all = HOME_TOPICS_PER_GROUP + 2;
    assert_eq!(
        (hg.unread, hg.important, hg.unread_topics),
        (all * 2, 0, all)
    );
    assert_eq!(hg.topics.len() as i64, HOME_TOPICS_PER_GROUP, "a summary");
    assert_eq!(
        hg.topics[0].topic_id,
        (*busy.last().unwrap()).into(),
        "newest first"
    );

    // Taking the mark off, deleting, and reading keep the important count exact.
    let topic_important = |home: &musubi_domain::unread::Home| -> i64 {
        home.groups
            .iter()
            .find(|g| g.group_id == second)
            .map_or(0, |g| g.important)
    };
    w.s.edit_comment(&w.a("nurse"), urgent, "呼吸が浅くなっています。", false)
        .await
        .unwrap();
    assert_eq!(topic_important(&w.s.home(w.p("doctor")).await.unwrap()), 0);
    w.s.edit_comment(
        &w.a("nurse"),
        urgent,
        "呼吸が浅くなっています。至急。",
        true,
    )
    .await
    .unwrap();
    assert_eq!(topic_important(&w.s.home(w.p("doctor")).await.unwrap()), 1);
    // Seen on screen: no longer important news.
    on_screen(&w, "doctor", alert).await;
    seen(&w, "doctor", alert, &[2]).await;
    let home = w.s.home(w.p("doctor")).await.unwrap();
    assert_eq!(topic_important(&home), 0);
    assert_eq!(
        home.groups[0].group_id, first,
        "nothing important left: by time again"
    );
    // Another important comment, deleted before it was read.
    let gone =
        w.s.post_comment(&w.a("nurse"), alert.into(), "（誤送信）", true)
            .await
            .unwrap();
    assert_eq!(topic_important(&w.s.home(w.p("doctor")).await.unwrap()), 1);
    w.s.delete_comment(&w.a("nurse"), gone).await.unwrap();
    assert_eq!(topic_important(&w.s.home(w.p("doctor")).await.unwrap()), 0);
}

// --- Honest footprints: only what was on screen ----------------------------------------------

/// A topic by the nurse with `n` comments in all (body included), the pharmacist and the nurse
/// taking turns; the doctor is a member and has read nothing.
async fn long_topic(w: &World, mode: Option<ReceiptMode>, n: i32) -> (Uuid, Uuid) {
    let g = w
        .group(
            "doctor",
            GroupKind::Patient,
            mode,
            &["nurse", "pharmacist", "care"],
        )
        .await;
    let t = w.topic("nurse", g.into(), "経過 1", Scope::EVERYONE).await;
    for i in 2..=n {
        let who = if i % 2 == 0 { "pharmacist" } else { "nurse" };
        w.reply(who, t, &format!("経過 {i}")).await;
    }
    (g.into(), t)
}

async fn on_screen(w: &World, who: &str, topic: Uuid) -> TopicView {
    w.s.read_topic(&w.a(who), topic.into(), Reading::OnScreen, Window::All)
        .await
        .unwrap()
}

async fn seen(w: &World, who: &str, topic: Uuid, seqs: &[i32]) {
    w.s.mark_seen(&w.a(who), topic.into(), seqs).await.unwrap();
}

/// The person's unread row for a topic: (first_seq, count), none when nothing is unread.
async fn unread_row(w: &World, who: &str, topic: Uuid) -> Option<(i32, i32)> {
    let mut tx = w.db.db.tenant_tx(&w.tenant).await.unwrap();
    let row =
        sqlx::query_as("SELECT first_seq, count FROM unread WHERE user_id = $1 AND topic_id = $2")
            .bind(Uuid::from(w.id(who)))
            .bind(topic)
            .fetch_optional(&mut *tx)
            .await
            .unwrap();
    tx.commit().await.unwrap();
    row
}

/// One person opening a topic on eight devices at once (a double tap, a phone and a computer):
/// the counter is taken once, each comment read once and its footprint announced once, and
/// each opening leaves its own audit record in an intact chain.
#[tokio::test]
async fn one_person_opening_a_topic_on_eight_devices_at_once_reads_each_comment_once() {
    let w = World::new().await;
    let (_g, t) = long_topic(&w, None, 30).await;
    assert_eq!(unread_row(&w, "doctor", t).await, Some((1, 30)));
    let after = w.last_event().await;
    let audited = w.audited("topic.read", Some(t)).await;

    let views = futures_util::future::join_all((0..8).map(|_| w.open("doctor", t))).await;
    assert!(views.iter().all(|v| v.comments.len() == 30));
    assert_eq!(
        views
            .iter()
            .filter(|v| v.first_unread_seq == Some(1))
            .count(),
        1,
        "one opening took the counter"
    );
    assert_eq!(unread_row(&w, "doctor", t).await, None);
    assert_eq!(w.footprints_by("doctor").await, 30, "each comment once");

    let rows: Vec<(String, Vec<Uuid>)> = sqlx::query_as(
        "SELECT kind, comment_ids FROM core.events WHERE id > $1 AND topic_id = $2 ORDER BY id",
    )
    .bind(after)
    .bind(t)
    .fetch_all(w.db.db.pool())
    .await
    .unwrap();
    let mut announced: Vec<Uuid> = rows
        .iter()
        .filter(|(kind, _)| kind == "footprint_added")
        .flat_map(|(_, ids)| ids.iter().copied())
        .collect();
    announced.sort();
    let before_dedup = announced.len();
    announced.dedup();
    assert_eq!(
        (before_dedup, announced.len()),
        (30, 30),
        "each announced once"
    );
    assert_eq!(
        rows.iter()
            .filter(|(kind, _)| kind == "unread_changed")
            .count(),
        1,
        "the counter cleared once"
    );

    assert_eq!(w.audited("topic.read", Some(t)).await - audited, 8);
    let mut tx = w.db.db.tenant_tx(&w.tenant).await.unwrap();
    let report = musubi_db::audit::verify(&mut tx).await.unwrap();
    tx.commit().await.unwrap();
    assert!(report.is_intact(), "{report:?}");
}

#[tokio::test]
async fn only_comments_that_were_on_screen_get_footprints_and_leave_the_unread_count() {
    let w = World::new().await;
    let (g, t) = long_topic(&w, None, 10).await;

    // Opening with the page's script records nothing yet, and says what to watch.
    let view = on_screen(&w, "doctor", t).await;
    assert_eq!(view.first_unread_seq, Some(1));
    assert_eq!(view.unseen_seqs, (1..=10).collect::<Vec<_>>());
    assert_eq!(w.footprints_by("doctor").await, 0);
    assert_eq!(w.topic_unread("doctor", g, t).await, 10);

    // A link to the newest comment: only the last three were on screen.
    seen(&w, "doctor", t, &[8, 9, 10]).await;
    assert_eq!(w.footprints_by("doctor").await, 3);
    assert_eq!(unread_row(&w, "doctor", t).await, Some((1, 7)));
    let view = w.look("nurse", t).await;
    assert!(readers(&view, 1).is_empty(), "the body was never on screen");
    assert_eq!(readers(&view, 9), vec![w.id("doctor")]);
    // Reported twice (two tabs): nothing changes.
    seen(&w, "doctor", t, &[9, 10, 8]).await;
    assert_eq!(w.footprints_by("doctor").await, 3);
    assert_eq!(unread_row(&w, "doctor", t).await, Some((1, 7)));
    // The page opened again lists only what is still unseen.
    let view = on_screen(&w, "doctor", t).await;
    assert_eq!(view.unseen_seqs, (1..=7).collect::<Vec<_>>());

    // Scrolling up gives the rest theirs.
    seen(&w, "doctor", t, &[4, 5, 6, 7]).await;
    assert_eq!(unread_row(&w, "doctor", t).await, Some((1, 3)));
    seen(&w, "doctor", t, &[1, 2, 3]).await;
    assert_eq!(unread_row(&w, "doctor", t).await, None, "all read");
    assert_eq!(w.footprints_by("doctor").await, 10);
    assert_eq!(w.counts("doctor", g).await.2, 0);

    // Own, missing and deleted comments are ignored; nonsense is refused; outsiders see nothing.
    w.reply("doctor", t, "了解しました").await;
    seen(&w, "doctor", t, &[11, 12, 9999, -3, 0]).await;
    assert_eq!(w.footprints_by("doctor").await, 10);
    let many: Vec<i32> = (1..=501).collect();
    let e =
        w.s.mark_seen(&w.a("doctor"), t.into(), &many)
            .await
            .unwrap_err();
    assert_eq!(e.code, ErrorCode::InvalidInput);
    let e =
        w.s.mark_seen(&w.a("outsider"), t.into(), &[1])
            .await
            .unwrap_err();
    assert_eq!(e.code, ErrorCode::NotFound);
    assert_eq!(w.footprints_by("outsider").await, 0);
}

#[tokio::test]
async fn without_footprints_the_unread_count_moves_only_past_what_was_seen_without_a_gap() {
    let w = World::new().await;
    let (g, t) = long_topic(&w, Some(ReceiptMode::Off), 10).await;
    let view = on_screen(&w, "doctor", t).await;
    assert_eq!(view.unseen_seqs, (1..=10).collect::<Vec<_>>());

    seen(&w, "doctor", t, &[8, 9, 10]).await;
    assert_eq!(
        unread_row(&w, "doctor", t).await,
        Some((1, 10)),
        "a gap: nothing is known to be read from the first unread on"
    );
    seen(&w, "doctor", t, &[1, 2, 3, 4, 5]).await;
    assert_eq!(unread_row(&w, "doctor", t).await, Some((6, 5)));
    seen(&w, "doctor", t, &[6, 7, 8, 9, 10]).await;
    assert_eq!(unread_row(&w, "doctor", t).await, None);
    assert_eq!(w.topic_unread("doctor", g, t).await, 0);
    assert_eq!(w.footprints_by("doctor").await, 0, "receipts are off");
}

#[tokio::test]
async fn reports_at_once_while_colleagues_post_leave_the_count_exact() {
    let w = World::new().await;
    let (_, t) = long_topic(&w, None, 12).await;
    on_screen(&w, "doctor", t).await;
    // Several tabs and a flaky connection: overlapping reports, all at once, while the
    // pharmacist and the nurse keep writing.
    let reports: Vec<Vec<i32>> = vec![
        vec![10, 11, 12],
        vec![11, 12, 13],
        vec![1, 2, 3],
        vec![3, 4, 5, 6],
        vec![12, 13, 14, 15],
        vec![2, 7],
        vec![9, 10],
        vec![14, 16, 17],
    ];
    let doctor = w.a("doctor");
    let marks =
        futures_util::future::join_all(reports.iter().map(|r| w.s.mark_seen(&doctor, t.into(), r)));
    let posts = async {
        for i in 0..6 {
            let who = if i % 2 == 0 { "pharmacist" } else { "nurse" };
            w.s.post_comment(&w.a(who), t.into(), &format!("追記 {i}"), false)
                .await
                .unwrap();
        }
    };
    let (results, ()) = tokio::join!(marks, posts);
    for r in results {
        r.unwrap();
    }
    // The truth: others' comments without the doctor's footprint.
    let mut tx = w.db.db.tenant_tx(&w.tenant).await.unwrap();
    let unseen: Vec<i32> = sqlx::query_scalar(
        "SELECT c.seq FROM comments c WHERE c.topic_id = $1 AND c.author_id <> $2 \
         AND NOT EXISTS (SELECT 1 FROM footprints f WHERE f.comment_id = c.id AND f.user_id = $2) \
         ORDER BY c.seq",
    )
    .bind(t)
    .bind(Uuid::from(w.id("doctor")))
    .fetch_all(&mut *tx)
    .await
    .unwrap();
    tx.commit().await.unwrap();
    assert!(unseen.contains(&8), "8 was never reported");
    let expected = unseen
        .first()
        .map(|first| (*first, i32::try_from(unseen.len()).unwrap()));
    assert_eq!(unread_row(&w, "doctor", t).await, expected);
}

#[tokio::test]
async fn a_crowded_comment_comes_with_a_count_and_a_few_readers_and_the_rest_on_demand() {
    let w = World::new().await;
    let g = w
        .group(
            "doctor",
            GroupKind::General,
            None,
            &["nurse", "pharmacist", "care", "hospital"],
        )
        .await;
    let t = w.topic("nurse", g.into(), "連絡", Scope::EVERYONE).await;
    let other = w.topic("nurse", g.into(), "別件", Scope::EVERYONE).await;
    // Six more members who all read it.
    let mut extra = Vec::new();
    for i in 0..6 {
        let id = insert_member(
            &w.db.db,
            w.tenant.id,
            &NewUser {
                email: &format!("extra{i}@alpha.example"),
                name: &format!("追加{i}さん"),
                name_kana: "ついか",
                profession: Profession::Nurse,
                doctor_kind: None,
                password_hash: None,
            },
        )
        .await;
        w.s.add_group_member(&w.tenant, g, id, GroupRole::Member)
            .await
            .unwrap();
        extra.push(sign_in(&w.s, id.into()).await);
    }
    for who in ["doctor", "pharmacist", "care", "hospital"] {
        w.open(who, t).await;
    }
    for v in &extra {
        w.s.open_topic(&Actor::new(v, &w.tenant, &w.meta), t.into(), true)
            .await
            .unwrap();
    }
    let view = w.look("pharmacist", t).await;
    let c = &view.comments[0];
    assert_eq!(c.reader_count, 10);
    assert_eq!(c.readers.len(), 5, "the first five");
    let view = w.look("nurse", t).await;
    assert_eq!(
        view.comments[0].readers.len(),
        10,
        "the author sees them all"
    );
    assert!(view.comments[0].not_read_by.is_empty());

    let all =
        w.s.comment_readers(&w.a("pharmacist"), t.into(), c.row.id)
            .await
            .unwrap();
    assert_eq!(all.readers.len(), 10);
    assert!(all.readers.iter().all(|r| !r.name.is_empty()));
    assert!(
        all.readers.windows(2).all(|p| p[0].at <= p[1].at),
        "oldest first"
    );
    // A comment asked for under another topic, or by someone outside: not found.
    let e =
        w.s.comment_readers(&w.a("pharmacist"), other.into(), c.row.id)
            .await
            .unwrap_err();
    assert_eq!(e.code, ErrorCode::NotFound);
    let e =
        w.s.comment_readers(&w.a("outsider"), t.into(), c.row.id)
            .await
            .unwrap_err();
    assert_eq!(e.code, ErrorCode::NotFound);
}
