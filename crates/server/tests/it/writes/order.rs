//! Every write of an association goes through one unit of change: its audit record and its
//! live events come with it, in one order. Each write below is checked for the record it
//! leaves, the events it announces (kinds, in order), and that an event is heard only once the
//! change — audit record included — is committed and visible to everyone else.

use musubi_authz::GroupRole;
use musubi_domain::audit::{AuditAction, RequestMeta};
use musubi_domain::groups::{GroupInput, GroupKind, GroupPatch, ReceiptMode, Scope};
use musubi_domain::operator::Operator;
use musubi_domain::sessions::Viewer;
use musubi_domain::topics::{NewTopic, TopicPatch};
use musubi_domain::types::JoinPolicy;
use musubi_domain::Actor;
use musubi_domain::Tenant;
use musubi_realtime::EventKind;
use musubi_test_support::TestApp;
use std::sync::{Arc, Mutex};
use std::time::Duration;

const HOST: &str = "minatogawa";
const ADMIN: &str = "admin@minatogawa.example";
const OWNER: &str = "kawamura@minatogawa.example";
const AOKI: &str = "aoki@minatogawa.example";
const MORITA: &str = "morita@minatogawa.example";
const ISHII: &str = "ishii@minatogawa.example";

/// Each event heard: its kind, and the audit actions committed when it was heard.
type Heard = Arc<Mutex<Vec<(EventKind, Vec<String>)>>>;

struct World {
    services: Operator,
    tenant: Tenant,
    meta: RequestMeta,
    /// What a listener heard: (event kind, the audit actions committed after the write began,
    /// as another connection saw them at that moment).
    heard: Heard,
    since: Arc<Mutex<i64>>,
}

async fn viewer(app: &TestApp, email: &str) -> Viewer {
    let token = app.demo_token(email).await;
    app.services()
        .authenticate(&token)
        .await
        .unwrap()
        .expect("a valid session")
}

async fn newest_seq(services: &Operator, tenant: &Tenant) -> i64 {
    let mut conn = services.db().tenant_read(tenant).await.unwrap();
    sqlx::query_scalar("SELECT coalesce(max(seq), 0) FROM audit_log")
        .fetch_one(&mut *conn)
        .await
        .unwrap()
}

async fn actions_since(services: &Operator, tenant: &Tenant, seq: i64) -> Vec<String> {
    let mut conn = services.db().tenant_read(tenant).await.unwrap();
    sqlx::query_scalar("SELECT action FROM audit_log WHERE seq > $1 ORDER BY seq")
        .bind(seq)
        .fetch_all(&mut *conn)
        .await
        .unwrap()
}

impl World {
    async fn new(app: &TestApp) -> Self {
        let services = app.operator();
        let tenant = services.resolve_tenant(HOST).await.unwrap();
        let heard = Arc::new(Mutex::new(Vec::new()));
        let since = Arc::new(Mutex::new(0));
        let mut rx = services.bus().subscribe();
        let (s, t, h, since2) = (
            services.clone(),
            tenant.clone(),
            heard.clone(),
            since.clone(),
        );
        tokio::spawn(async move {
            while let Ok(event) = rx.recv().await {
                let from = *since2.lock().unwrap();
                let committed = actions_since(&s, &t, from).await;
                h.lock().unwrap().push((event.kind, committed));
            }
        });
        Self {
            services,
            tenant,
            meta: RequestMeta::new("192.0.2.7", "write path test"),
            heard,
            since,
        }
    }

    /// Runs one write and checks what it left: `audit` (the one record, or none) and `events`.
    async fn check<T, F>(
        &self,
        name: &str,
        audit: Option<AuditAction>,
        events: &[EventKind],
        f: F,
    ) -> T
    where
        F: std::future::Future<Output = musubi_domain::AppResult<T>>,
    {
        let before = newest_seq(&self.services, &self.tenant).await;
        *self.since.lock().unwrap() = before;
        self.heard.lock().unwrap().clear();
        let out = f.await.unwrap_or_else(|e| panic!("{name}: {e:?}"));
        self.services.flush_refusals().await;
        let recorded = actions_since(&self.services, &self.tenant, before).await;
        let expected: Vec<String> = audit.iter().map(|a| a.as_str().to_owned()).collect();
        assert_eq!(recorded, expected, "{name}: the audit record");
        // Events are published after the commit, before the write returns; the listener may
        // still be looking at the log.
        let mut heard = Vec::new();
        for _ in 0..100 {
            heard = self.heard.lock().unwrap().clone();
            if heard.len() >= events.len() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let kinds: Vec<EventKind> = heard.iter().map(|(k, _)| *k).collect();
        assert_eq!(kinds, events, "{name}: the events, in order");
        for (kind, committed) in &heard {
            assert_eq!(
                committed, &expected,
                "{name}: {kind:?} was heard before its change (and audit record) was committed"
            );
        }
        out
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_write_leaves_its_audit_record_and_events_in_order() {
    let app = TestApp::demo().await;
    let w = World::new(&app).await;
    let owner = viewer(&app, OWNER).await;
    let aoki = viewer(&app, AOKI).await;
    let morita = viewer(&app, MORITA).await;
    let admin = viewer(&app, ADMIN).await;
    let ishii_id = app.user_id(ISHII).await;
    let (s, t, m) = (&w.services, &w.tenant, &w.meta);
    use AuditAction as A;
    use EventKind as E;

    let input = GroupInput {
        name: "書き込み経路の確認".into(),
        description: String::new(),
        accepts_requests: true,
        receipt_mode: Some(ReceiptMode::Acknowledgement),
    };
    let group = w
        .check(
            "create_group",
            Some(A::GroupCreate),
            &[E::MembershipChanged],
            s.create_group(&Actor::new(&owner, t, m), GroupKind::General, &input),
        )
        .await;
    let renamed = GroupInput {
        name: "書き込み経路の確認（改）".into(),
        ..input.clone()
    };
    w.check("update_group", Some(A::GroupUpdate), &[], {
        s.update_group(&Actor::new(&owner, t, m), group, &(&renamed).into())
    })
    .await;
    w.check(
        "invite_to_group",
        Some(A::GroupMemberInvite),
        &[E::MembershipChanged],
        s.invite_to_group(&Actor::new(&owner, t, m), group, aoki.user().id),
    )
    .await;
    w.check(
        "answer_group_invitation",
        Some(A::GroupMemberJoin),
        &[E::MembershipChanged],
        s.answer_group_invitation(&Actor::new(&aoki, t, m), group, true),
    )
    .await;
    w.check(
        "request_to_join",
        Some(A::GroupJoinRequest),
        &[],
        s.request_to_join(&Actor::new(&morita, t, m), group),
    )
    .await;
    w.check(
        "answer_join_request",
        Some(A::GroupMemberJoin),
        &[E::MembershipChanged],
        s.answer_join_request(&Actor::new(&owner, t, m), group, morita.user().id, true),
    )
    .await;
    w.check(
        "set_group_role",
        Some(A::GroupMemberRole),
        &[],
        s.set_group_role(
            &Actor::new(&owner, t, m),
            group,
            aoki.user().id,
            GroupRole::Owner,
        ),
    )
    .await;
    let new = NewTopic {
        group_id: group,
        title: "退院前カンファレンス",
        body: "日程の候補です。",
        scope: Scope::EVERYONE,
        important: false,
    };
    let topic = w
        .check(
            "create_topic",
            Some(A::TopicCreate),
            &[E::CommentPosted],
            s.create_topic(&Actor::new(&owner, t, m), &new),
        )
        .await;
    let comment = w
        .check(
            "post_comment",
            Some(A::CommentCreate),
            &[E::CommentPosted],
            s.post_comment(
                &Actor::new(&aoki, t, m),
                topic,
                "5日の午後はいかがですか。",
                false,
            ),
        )
        .await;
    w.check(
        "edit_comment",
        Some(A::CommentEdit),
        &[E::CommentEdited],
        s.edit_comment(
            &Actor::new(&aoki, t, m),
            comment,
            "5日の14時はいかがですか。",
            true,
        ),
    )
    .await;
    w.check(
        "acknowledge_comment",
        Some(A::CommentAcknowledge),
        &[E::Acknowledged],
        s.acknowledge_comment(&Actor::new(&owner, t, m), comment),
    )
    .await;
    let patch = TopicPatch {
        title: None,
        scope: None,
        pinned: Some(true),
        closed: None,
    };
    w.check(
        "update_topic",
        Some(A::TopicUpdate),
        &[E::TopicChanged],
        s.update_topic(&Actor::new(&owner, t, m), topic, &patch),
    )
    .await;
    // Reading a general group's topic is not audited; clearing the unread count is announced
    // to the reader (acknowledgement mode leaves no footprints).
    w.check(
        "open_topic",
        None,
        &[E::UnreadChanged],
        s.open_topic(&Actor::new(&morita, t, m), topic, true),
    )
    .await;
    w.check(
        "mark_group_read",
        Some(A::GroupMarkRead),
        &[E::UnreadChanged],
        s.mark_group_read(&Actor::new(&aoki, t, m), group),
    )
    .await;
    w.check(
        "delete_comment",
        Some(A::CommentDelete),
        &[E::CommentDeleted],
        s.delete_comment(&Actor::new(&aoki, t, m), comment),
    )
    .await;
    w.check(
        "remove_group_member",
        Some(A::GroupMemberRemove),
        &[E::MembershipChanged],
        s.remove_group_member(&Actor::new(&owner, t, m), group, morita.user().id),
    )
    .await;
    w.check(
        "deactivate_member",
        Some(A::MemberDeactivate),
        &[],
        s.deactivate_member(&Actor::new(&admin, t, m), ishii_id),
    )
    .await;
    w.check(
        "reactivate_member",
        Some(A::MemberReactivate),
        &[],
        s.reactivate_member(&Actor::new(&admin, t, m), ishii_id),
    )
    .await;

    // A write refused half-way leaves nothing: no record but the refusal, no event.
    w.check("refused post_comment", Some(A::AccessDenied), &[], async {
        let r = s
            .post_comment(&Actor::new(&morita, t, m), topic, "見えないはず", false)
            .await;
        assert!(r.is_err(), "a former member cannot post");
        Ok(())
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn owners_changing_different_settings_at_once_both_keep_their_edit() {
    let app = TestApp::demo().await;
    let s = app.services();
    let t = s.resolve_tenant(HOST).await.unwrap();
    let m = RequestMeta::default();
    let owner = viewer(&app, OWNER).await;
    let aoki = viewer(&app, AOKI).await;
    let input = GroupInput {
        name: "同時編集".into(),
        description: String::new(),
        accepts_requests: true,
        receipt_mode: None,
    };
    let (by_owner, by_aoki) = (Actor::new(&owner, &t, &m), Actor::new(&aoki, &t, &m));
    let group = s
        .create_group(&by_owner, GroupKind::General, &input)
        .await
        .unwrap();
    s.invite_to_group(&by_owner, group, aoki.user().id)
        .await
        .unwrap();
    s.answer_group_invitation(&by_aoki, group, true)
        .await
        .unwrap();
    s.set_group_role(&by_owner, group, aoki.user().id, GroupRole::Owner)
        .await
        .unwrap();
    for round in 0..10 {
        let name = GroupPatch {
            name: Some(format!("同時編集 {round}")),
            ..GroupPatch::default()
        };
        let description = GroupPatch {
            description: Some(format!("説明 {round}")),
            ..GroupPatch::default()
        };
        let (a, b) = tokio::join!(
            s.update_group(&by_owner, group, &name),
            s.update_group(&by_aoki, group, &description)
        );
        a.unwrap();
        b.unwrap();
        let row = s.group_invitation(&by_owner, group).await.unwrap();
        assert_eq!(row.name, format!("同時編集 {round}"));
        assert_eq!(row.description, format!("説明 {round}"), "round {round}");
        assert_eq!(
            row.join_policy,
            JoinPolicy::Request,
            "an omitted setting stays"
        );
    }
}
