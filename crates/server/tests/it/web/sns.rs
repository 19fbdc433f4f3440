//! The SNS forms (`/a/{slug}/g/…`, `/a/{slug}/t/…`), driven like a browser through the whole
//! app on the demo data: forms with their CSRF field, cookies kept between requests, redirects
//! followed by hand. Every change is checked on the page that follows and in the database; every
//! refusal by what did not change.

use http::StatusCode;
use musubi_domain::types::PersonId;
use musubi_test_support::demo::{
    ADMIN, CARE_MANAGER, CLINIC_DOCTOR, HOSPITAL_DOCTOR, HOST, NURSE, OTHER_DOCTOR, OTHER_NURSE,
    THERAPIST,
};
use musubi_test_support::web::{between, Browser, Page};
use musubi_test_support::TestApp;
use uuid::Uuid;

/// Patient groups: 山田 (owner 川村; 青木, 森田, 林, 石井, 佐藤), 鈴木 (owner 森田; 川村, 青木,
/// 林), 田中 (owner 川村; 青木, 森田, 林, 佐藤).
const YAMADA: &str = "山田 太郎さん（85歳・在宅酸素）";
const SUZUKI: &str = "鈴木 花子さん（78歳・認知症・独居）";
const TANAKA: &str = "田中 一郎さん（92歳・看取り期）";
/// General, acknowledgement mode, by invitation (owner 川村; 高橋, 佐藤).
const DOCTORS: &str = "みなと川 連携医グループ";
/// General, accepts requests to join (owner 港; every みなと川 member but 佐藤).
const FORUM: &str = "多職種連携の会";
/// In 山田's group, for co-medical staff only: 佐藤 (hospital) and 川村 (clinic) do not see it.
const CO_MEDICAL_TOPIC: &str = "ご家族の介護負担について（コメディカル間）";

const EVERYONE: &[(&str, &str)] = &[("scope", "everyone")];
const CO_MEDICAL_ONLY: &[(&str, &str)] = &[("scope", "some"), ("co_medical", "1")];

// --- Paths and pages ------------------------------------------------------------------------

fn group_path(id: Uuid) -> String {
    format!("/a/{HOST}/g/{id}")
}

fn topic_path(id: Uuid) -> String {
    format!("/a/{HOST}/t/{id}")
}

fn comment_path(topic: Uuid, comment: Uuid, action: &str) -> String {
    format!("/a/{HOST}/t/{topic}/c/{comment}/{action}")
}

/// The total unread count a page carries for its header badge.
fn unread_shown(page: &Page) -> i64 {
    let marker = "data-unread-total=\"";
    let at = page.body.find(marker).expect("an unread count") + marker.len();
    let end = page.body[at..].find('"').unwrap();
    page.body[at..at + end].parse().unwrap()
}

/// Follows a 303 as a browser does (the `#fragment` stays in the browser).
async fn follow(b: &mut Browser, app: &TestApp, res: &Page) -> Page {
    assert_eq!(res.status, StatusCode::SEE_OTHER, "{}", res.body);
    let to = res.location().split('#').next().unwrap().to_owned();
    b.get(app, &to).await
}

/// (path, form fields besides the CSRF token)
type Form<'a> = (String, Vec<(&'a str, &'a str)>);

/// (method, path, form fields besides the CSRF token)
type Route<'a> = (&'a str, String, Vec<(&'a str, &'a str)>);

/// A GET, or a form POST with `token` and `fields`.
async fn send(
    app: &TestApp,
    b: &mut Browser,
    token: &str,
    method: &str,
    path: &str,
    fields: &[(&str, &str)],
) -> Page {
    if method == "GET" {
        return b.get(app, path).await;
    }
    let mut all = vec![("csrf", token)];
    all.extend_from_slice(fields);
    b.post(app, path, &all).await
}

/// The answer with every real id written as the unknown one it is compared with.
fn as_if(res: &Page, ids: &[(Uuid, Uuid)]) -> (StatusCode, String, String) {
    let swap = |s: &str| {
        ids.iter().fold(s.to_owned(), |s, (real, fake)| {
            s.replace(&real.to_string(), &fake.to_string())
        })
    };
    (res.status, swap(res.location()), swap(&res.body))
}

/// A refusal that tells nothing: the 404 page, or straight back with `?error=not_found`.
fn is_refusal(res: &Page) -> bool {
    res.is_not_found()
        || (res.status == StatusCode::SEE_OTHER && res.location().contains("?error=not_found"))
}

/// Posts a topic through the new-topic form; returns its id.
async fn post_topic(
    app: &TestApp,
    b: &mut Browser,
    group: Uuid,
    title: &str,
    body: &str,
    scope: &[(&str, &str)],
) -> Uuid {
    let form = format!("{}/new", group_path(group));
    let mut fields = vec![("title", title), ("body", body)];
    fields.extend_from_slice(scope);
    let res = b.submit(app, &form, &form, &fields).await;
    assert_eq!(res.status, StatusCode::SEE_OTHER, "{}", res.body);
    let id = res
        .location()
        .strip_prefix(&format!("/a/{HOST}/t/"))
        .and_then(|rest| rest.strip_suffix(&format!("?done=posted&sent={group}")))
        .unwrap_or_else(|| panic!("not a new topic: {}", res.location()));
    Uuid::parse_str(id).unwrap()
}

// --- The database ---------------------------------------------------------------------------

async fn group_id(app: &TestApp, name: &str) -> Uuid {
    sqlx::query_scalar("SELECT id FROM groups WHERE name = $1")
        .bind(name)
        .fetch_one(&mut *app.tenant_tx(HOST).await)
        .await
        .unwrap_or_else(|e| panic!("group {name}: {e}"))
}

async fn topic_id(app: &TestApp, title: &str) -> Uuid {
    sqlx::query_scalar("SELECT id FROM topics WHERE title = $1")
        .bind(title)
        .fetch_one(&mut *app.tenant_tx(HOST).await)
        .await
        .unwrap_or_else(|e| panic!("topic {title}: {e}"))
}

async fn comment_id(app: &TestApp, topic: Uuid, seq: i32) -> Uuid {
    sqlx::query_scalar("SELECT id FROM comments WHERE topic_id = $1 AND seq = $2")
        .bind(topic)
        .bind(seq)
        .fetch_one(&mut *app.tenant_tx(HOST).await)
        .await
        .unwrap()
}

/// `email`'s (role, status) in the group, if any.
async fn membership(app: &TestApp, group: Uuid, email: &str) -> Option<(String, String)> {
    sqlx::query_as(
        "SELECT m.role, m.status FROM core.group_members m JOIN core.users u ON u.id = m.user_id \
         WHERE m.group_id = $1 AND u.email = $2",
    )
    .bind(group)
    .bind(email)
    .fetch_optional(app.db.db.pool())
    .await
    .unwrap()
}

fn active(role: &str) -> Option<(String, String)> {
    Some((role.to_owned(), "active".to_owned()))
}

/// Everyone in the group with their role and status, for "nothing changed".
async fn members(app: &TestApp, group: Uuid) -> Vec<(Uuid, String, String)> {
    sqlx::query_as(
        "SELECT user_id, role, status FROM core.group_members WHERE group_id = $1 \
         ORDER BY user_id",
    )
    .bind(group)
    .fetch_all(app.db.db.pool())
    .await
    .unwrap()
}

/// (name, description, join policy, read-receipt override)
type GroupSettings = (String, String, String, Option<String>);

async fn group_settings(app: &TestApp, group: Uuid) -> GroupSettings {
    sqlx::query_as("SELECT name, description, join_policy, receipt_mode FROM groups WHERE id = $1")
        .bind(group)
        .fetch_one(&mut *app.tenant_tx(HOST).await)
        .await
        .unwrap()
}

/// (title, scope, pinned, closed)
async fn topic_state(app: &TestApp, topic: Uuid) -> (String, i16, bool, bool) {
    sqlx::query_as("SELECT title, scope, pinned, closed FROM topics WHERE id = $1")
        .bind(topic)
        .fetch_one(&mut *app.tenant_tx(HOST).await)
        .await
        .unwrap()
}

/// Every comment of the topic in order: (seq, body, version, deleted).
async fn comments(app: &TestApp, topic: Uuid) -> Vec<(i32, String, i32, bool)> {
    sqlx::query_as(
        "SELECT seq, body, version, deleted_at IS NOT NULL FROM comments WHERE topic_id = $1 \
         ORDER BY seq",
    )
    .bind(topic)
    .fetch_all(&mut *app.tenant_tx(HOST).await)
    .await
    .unwrap()
}

/// The earlier texts kept for a comment, oldest first.
async fn earlier_versions(app: &TestApp, comment: Uuid) -> Vec<String> {
    sqlx::query_scalar("SELECT body FROM comment_versions WHERE comment_id = $1 ORDER BY version")
        .bind(comment)
        .fetch_all(&mut *app.tenant_tx(HOST).await)
        .await
        .unwrap()
}

async fn acknowledgers(app: &TestApp, comment: Uuid) -> Vec<PersonId> {
    sqlx::query_scalar("SELECT user_id FROM acknowledgements WHERE comment_id = $1")
        .bind(comment)
        .fetch_all(&mut *app.tenant_tx(HOST).await)
        .await
        .unwrap()
}

/// Unread comments of `user` in the group, from the counters.
async fn unread_in_group(app: &TestApp, user: Uuid, group: Uuid) -> i64 {
    sqlx::query_scalar(
        "SELECT coalesce(sum(count), 0)::bigint FROM unread WHERE user_id = $1 AND group_id = $2",
    )
    .bind(user)
    .bind(group)
    .fetch_one(&mut *app.tenant_tx(HOST).await)
    .await
    .unwrap()
}

/// Unread comments of `user` in every group of the host association.
async fn unread_in_host(app: &TestApp, user: Uuid) -> i64 {
    sqlx::query_scalar("SELECT coalesce(sum(count), 0)::bigint FROM unread WHERE user_id = $1")
        .bind(user)
        .fetch_one(&mut *app.tenant_tx(HOST).await)
        .await
        .unwrap()
}

async fn footprints_of(app: &TestApp, user: Uuid) -> i64 {
    sqlx::query_scalar("SELECT count(*) FROM footprints WHERE user_id = $1")
        .bind(user)
        .fetch_one(&mut *app.tenant_tx(HOST).await)
        .await
        .unwrap()
}

// --- Group owners' tools --------------------------------------------------------------------

/// A query-string value, percent-encoded.
fn q(s: &str) -> String {
    s.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

#[tokio::test]
async fn an_owner_picks_someone_to_invite_and_the_invitee_accepts_or_declines_on_the_web() {
    let app = TestApp::demo().await;
    let tanaka = group_id(&app, TANAKA).await;
    let page = group_path(tanaka);
    let mut owner = Browser::signed_in(&app, CLINIC_DOCTOR).await;

    // The search lists people of his association by kana, and of さくら台, which shares its
    // directory with みなと川 (the operator recorded the agreement; see sns::directory).
    let found = owner
        .get(&app, &format!("{page}?find={}", q("いしい")))
        .await;
    assert_eq!(found.status, StatusCode::OK);
    let list = between(&found.body, "id=\"invite-candidates\"", "</ul>");
    assert!(list.contains("石井 翔"), "{list}");
    let therapist_id = app.user_id(THERAPIST).await;
    assert!(list.contains(&format!("name=\"user_id\" value=\"{therapist_id}\"")));
    let neighbour = owner.get(&app, &format!("{page}?find={}", q("ﾅｶﾑﾗ"))).await;
    let list = between(&neighbour.body, "id=\"invite-candidates\"", "</ul>");
    assert!(list.contains("中村 愛"), "{list}");
    assert!(
        list.contains("さくら台医師会"),
        "her association is named: {list}"
    );
    let none = owner
        .get(&app, &format!("{page}?find={}", q("だれもいないなまえ")))
        .await;
    assert!(none.body.contains("見つかりませんでした。"));

    let res = owner
        .submit(
            &app,
            &page,
            &format!("{page}/invite"),
            &[("user_id", &therapist_id.to_string())],
        )
        .await;
    assert_eq!(res.location(), format!("{page}?done=invited"));
    assert_eq!(
        membership(&app, tanaka, THERAPIST).await,
        Some(("member".into(), "invited".into()))
    );
    let shown = follow(&mut owner, &app, &res).await;
    assert!(shown.body.contains("招待しました。"));
    let invited = between(&shown.body, "招待中の人", "</ul>");
    assert!(invited.contains("石井 翔"), "{invited}");

    // Someone by their address (surrounding spaces are forgiven): invited, but the owner is
    // not told so.
    let res = owner
        .submit(
            &app,
            &page,
            &format!("{page}/invite-email"),
            &[("email", &format!(" {OTHER_NURSE} "))],
        )
        .await;
    assert_eq!(res.location(), format!("{page}?done=invited_email"));
    assert_eq!(
        membership(&app, tanaka, OTHER_NURSE).await,
        Some(("member".into(), "invited".into()))
    );
    let shown = follow(&mut owner, &app, &res).await;
    assert!(shown.body.contains("招待を受け付けました。"));
    assert!(!shown.body.contains("中村"));

    // The invitee sees it on the home page and on the group's own page.
    let mut therapist = Browser::signed_in(&app, THERAPIST).await;
    let home = therapist.get(&app, "/home").await;
    let invitations = between(&home.body, "グループへの招待", "</section>");
    assert!(invitations.contains(TANAKA), "{invitations}");
    assert!(invitations.contains(&format!("action=\"{page}/invitation\"")));
    let join = therapist.get(&app, &page).await;
    assert_eq!(join.status, StatusCode::OK);
    assert!(join.body.contains("このグループに招待されています。"));
    assert!(
        !join.body.contains("看取りの方針"),
        "no topics before joining"
    );

    let res = therapist
        .submit(
            &app,
            "/home",
            &format!("{page}/invitation"),
            &[("answer", "accept"), ("back", "home")],
        )
        .await;
    assert_eq!(res.location(), format!("{page}?done=joined"));
    assert_eq!(membership(&app, tanaka, THERAPIST).await, active("member"));
    let inside = follow(&mut therapist, &app, &res).await;
    assert_eq!(inside.status, StatusCode::OK);
    assert!(inside.body.contains("グループに参加しました。"));
    let me = app.user_id(THERAPIST).await;
    assert!(inside.body.contains(&format!("id=\"member-{me}\"")));

    // The other nurse declines from the group's page: the invitation is gone, and so is the group.
    let mut other = Browser::signed_in(&app, OTHER_NURSE).await;
    let res = other
        .submit(
            &app,
            &page,
            &format!("{page}/invitation"),
            &[("answer", "decline")],
        )
        .await;
    assert_eq!(res.location(), "/groups?done=declined");
    assert_eq!(membership(&app, tanaka, OTHER_NURSE).await, None);
    let groups = follow(&mut other, &app, &res).await;
    assert!(groups.body.contains("招待をお断りしました。"));
    assert!(!groups.body.contains(TANAKA));
    assert!(other.get(&app, &page).await.is_not_found());
}

#[tokio::test]
async fn an_invitation_by_email_says_the_same_whatever_exists_and_a_typo_is_kept() {
    let app = TestApp::demo().await;
    let tanaka = group_id(&app, TANAKA).await;
    let page = group_path(tanaka);
    let by_email = format!("{page}/invite-email");
    let mut owner = Browser::signed_in(&app, CLINIC_DOCTOR).await;
    let before = members(&app, tanaka).await;

    // No account, and a member already: the same answer.
    for address in ["nobody@example.jp", NURSE] {
        let res = owner
            .submit(&app, &page, &by_email, &[("email", address)])
            .await;
        assert_eq!(
            res.location(),
            format!("{page}?done=invited_email"),
            "{address}"
        );
    }
    assert_eq!(members(&app, tanaka).await, before);

    let res = owner
        .submit(&app, &page, &by_email, &[("email", "nobody.example.jp")])
        .await;
    assert_eq!(res.status, StatusCode::UNPROCESSABLE_ENTITY);
    let field = between(&res.body, "for=\"invite-email\"", "</div>");
    assert!(
        field.contains("メールアドレスの形になっていません"),
        "{field}"
    );
    assert!(field.contains("value=\"nobody.example.jp\""));
    assert!(field.contains("aria-invalid=\"true\""));

    // Picking a member again is explained; someone not in the directory is not found.
    let invite = format!("{page}/invite");
    let nurse = app.user_id(NURSE).await.to_string();
    let res = owner
        .submit(&app, &page, &invite, &[("user_id", &nurse)])
        .await;
    assert_eq!(res.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(between(&res.body, "for=\"invite-find\"", "</div>")
        .contains("この人はすでにメンバーか、招待中です。"));
    // (さくら台's people are in the directory only while the associations share theirs.)
    app.operator()
        .set_neighbours(HOST, "sakuradai", false)
        .await
        .unwrap();
    let unseen = app.user_id(OTHER_DOCTOR).await.to_string();
    let res = owner
        .submit(&app, &page, &invite, &[("user_id", &unseen)])
        .await;
    assert!(res.is_not_found());
    assert_eq!(members(&app, tanaka).await, before);
}

#[tokio::test]
async fn an_owner_refuses_then_approves_a_request_to_join() {
    let app = TestApp::demo().await;
    let forum = group_id(&app, FORUM).await;
    let page = group_path(forum);
    let doctor = app.user_id(HOSPITAL_DOCTOR).await;
    let answer = format!("{page}/requests/{doctor}");

    // The hospital doctor is the one member of みなと川 outside the forum: he may ask.
    let mut asker = Browser::signed_in(&app, HOSPITAL_DOCTOR).await;
    let groups = asker.get(&app, "/groups").await;
    let offer = between(&groups.body, "参加を申しこめるグループ", "</section>");
    assert!(offer.contains(FORUM));
    assert!(offer.contains(&format!("action=\"{page}/join\"")));
    let res = asker
        .submit(&app, "/groups", &format!("{page}/join"), &[])
        .await;
    assert_eq!(res.location(), "/groups?done=requested");
    assert_eq!(
        membership(&app, forum, HOSPITAL_DOCTOR).await,
        Some(("member".into(), "requested".into()))
    );
    let shown = follow(&mut asker, &app, &res).await;
    assert!(shown.body.contains("参加を申しこみました。"));
    assert!(shown.body.contains("参加の承認を待っています"));

    // A plain member cannot answer it.
    let mut member = Browser::signed_in(&app, NURSE).await;
    let res = member
        .submit(&app, &page, &answer, &[("answer", "approve")])
        .await;
    assert_eq!(res.location(), format!("{page}?error=not_found"));
    assert_eq!(
        membership(&app, forum, HOSPITAL_DOCTOR).await,
        Some(("member".into(), "requested".into()))
    );

    // The owner sees the request and refuses it.
    let mut owner = Browser::signed_in(&app, ADMIN).await;
    let tools = owner.get(&app, &page).await;
    let requests = between(&tools.body, "参加の申しこみ", "</ul>");
    assert!(requests.contains("佐藤 隆"), "{requests}");
    assert!(requests.contains(&format!("action=\"{answer}\"")));
    let res = owner
        .submit(&app, &page, &answer, &[("answer", "refuse")])
        .await;
    assert_eq!(res.location(), format!("{page}?done=refused"));
    assert_eq!(membership(&app, forum, HOSPITAL_DOCTOR).await, None);
    let shown = follow(&mut owner, &app, &res).await;
    assert!(shown.body.contains("参加の申しこみをお断りしました。"));
    assert!(!shown.body.contains("佐藤 隆"));

    // Asked again, approved: he is a member and the group opens for him.
    asker
        .submit(&app, "/groups", &format!("{page}/join"), &[])
        .await;
    let res = owner
        .submit(&app, &page, &answer, &[("answer", "approve")])
        .await;
    assert_eq!(res.location(), format!("{page}?done=approved"));
    assert_eq!(
        membership(&app, forum, HOSPITAL_DOCTOR).await,
        active("member")
    );
    let shown = follow(&mut owner, &app, &res).await;
    assert!(shown.body.contains("参加を承認しました。"));
    assert!(shown.body.contains(&format!("id=\"member-{doctor}\"")));
    let inside = asker.get(&app, &page).await;
    assert_eq!(inside.status, StatusCode::OK);
    assert!(inside.body.contains("1月の多職種研修会のお知らせ"));

    // Answering a request that is no longer there says so.
    let res = owner
        .submit(&app, &page, &answer, &[("answer", "approve")])
        .await;
    assert_eq!(res.location(), format!("{page}?error=not_found"));
    let shown = follow(&mut owner, &app, &res).await;
    assert!(shown.body.contains("見つかりませんでした。"));
}

#[tokio::test]
async fn an_owner_makes_a_member_an_owner_and_removes_another() {
    let app = TestApp::demo().await;
    let yamada = group_id(&app, YAMADA).await;
    let page = group_path(yamada);
    let (nurse, therapist) = (app.user_id(NURSE).await, app.user_id(THERAPIST).await);
    let mut owner = Browser::signed_in(&app, CLINIC_DOCTOR).await;

    let res = owner
        .submit(
            &app,
            &page,
            &format!("{page}/members/{nurse}/role"),
            &[("role", "owner")],
        )
        .await;
    assert_eq!(
        res.location(),
        format!("{page}?done=role_changed#members-title")
    );
    assert_eq!(membership(&app, yamada, NURSE).await, active("owner"));
    let shown = follow(&mut owner, &app, &res).await;
    assert!(shown.body.contains("役割を変えました。"));
    let card = between(&shown.body, &format!("id=\"member-{nurse}\""), "</li>");
    assert!(card.contains("管理者"), "{card}");
    assert!(card.contains("value=\"member\""), "now offered: step down");

    // The new owner has the owner's tools.
    let mut nurse_browser = Browser::signed_in(&app, NURSE).await;
    let tools = nurse_browser.get(&app, &page).await;
    assert!(tools.body.contains("管理者の操作"));

    // A role that does not exist changes nothing.
    let res = owner
        .submit(
            &app,
            &page,
            &format!("{page}/members/{therapist}/role"),
            &[("role", "boss")],
        )
        .await;
    assert_eq!(res.location(), format!("{page}?error=invalid"));
    assert_eq!(membership(&app, yamada, THERAPIST).await, active("member"));

    let res = owner
        .submit(
            &app,
            &page,
            &format!("{page}/members/{therapist}/remove"),
            &[],
        )
        .await;
    assert_eq!(res.location(), format!("{page}?done=removed#members-title"));
    assert_eq!(membership(&app, yamada, THERAPIST).await, None);
    let shown = follow(&mut owner, &app, &res).await;
    assert!(shown.body.contains("グループからはずしました。"));
    assert!(!shown.body.contains(&format!("id=\"member-{therapist}\"")));
    // The removed member no longer finds the group.
    let mut removed = Browser::signed_in(&app, THERAPIST).await;
    assert!(removed.get(&app, &page).await.is_not_found());
}

#[tokio::test]
async fn the_last_owner_can_neither_step_down_nor_leave_and_is_told_why() {
    let app = TestApp::demo().await;
    let suzuki = group_id(&app, SUZUKI).await;
    let page = group_path(suzuki);
    let me = app.user_id(CARE_MANAGER).await;
    let mut owner = Browser::signed_in(&app, CARE_MANAGER).await;
    let before = members(&app, suzuki).await;

    let res = owner
        .submit(
            &app,
            &page,
            &format!("{page}/members/{me}/role"),
            &[("role", "member")],
        )
        .await;
    assert_eq!(
        res.location(),
        format!("{page}?error=last_owner#members-title")
    );
    let shown = follow(&mut owner, &app, &res).await;
    let alert = between(&shown.body, "role=\"alert\"", "</div>");
    assert!(
        alert.contains("グループには管理者が1人以上必要です。"),
        "{alert}"
    );

    let res = owner
        .submit(&app, &page, &format!("{page}/members/{me}/remove"), &[])
        .await;
    assert_eq!(
        res.location(),
        format!("{page}?error=last_owner#members-title")
    );
    let res = owner
        .submit(&app, &page, &format!("{page}/leave"), &[])
        .await;
    assert_eq!(res.location(), format!("{page}?error=last_owner"));
    assert!(follow(&mut owner, &app, &res)
        .await
        .body
        .contains("先にほかのメンバーを管理者にしてください。"));
    assert_eq!(members(&app, suzuki).await, before, "nothing changed");
    assert_eq!(
        membership(&app, suzuki, CARE_MANAGER).await,
        active("owner")
    );

    // With a second owner she may step down.
    let nurse = app.user_id(NURSE).await;
    owner
        .submit(
            &app,
            &page,
            &format!("{page}/members/{nurse}/role"),
            &[("role", "owner")],
        )
        .await;
    let res = owner
        .submit(
            &app,
            &page,
            &format!("{page}/members/{me}/role"),
            &[("role", "member")],
        )
        .await;
    assert_eq!(
        res.location(),
        format!("{page}?done=role_changed#members-title")
    );
    assert_eq!(
        membership(&app, suzuki, CARE_MANAGER).await,
        active("member")
    );
    assert!(!follow(&mut owner, &app, &res)
        .await
        .body
        .contains("管理者の操作"));
}

#[tokio::test]
async fn an_owner_changes_the_groups_name_description_receipt_mode_and_join_policy() {
    let app = TestApp::demo().await;
    let doctors = group_id(&app, DOCTORS).await;
    let page = group_path(doctors);
    let settings = format!("{page}/settings");
    let mut owner = Browser::signed_in(&app, CLINIC_DOCTOR).await;

    let form = owner.get(&app, &page).await;
    let fields = between(&form.body, "id=\"group-settings\"", "</form>");
    assert!(fields.contains(&format!("value=\"{DOCTORS}\"")));
    assert!(fields.contains("<option value=\"ack\" selected>"));
    assert!(!fields.contains("name=\"accepts_requests\" value=\"1\" checked"));
    // Before: someone of the association outside the group does not find it.
    let mut nurse = Browser::signed_in(&app, NURSE).await;
    assert!(nurse.get(&app, &page).await.is_not_found());

    let res = owner
        .submit(
            &app,
            &page,
            &settings,
            &[
                ("name", "  みなと川 医師の会  "),
                ("description", "当番と紹介の連絡用です。"),
                ("accepts_requests", "1"),
                ("receipt_mode", "footprints"),
            ],
        )
        .await;
    assert_eq!(res.location(), format!("{page}?done=settings_saved"));
    assert_eq!(
        group_settings(&app, doctors).await,
        (
            "みなと川 医師の会".to_owned(),
            "当番と紹介の連絡用です。".to_owned(),
            "request".to_owned(),
            Some("footprints".to_owned())
        )
    );
    let shown = follow(&mut owner, &app, &res).await;
    assert!(shown.body.contains("グループの設定を保存しました。"));
    assert!(shown
        .body
        .contains("<h1 id=\"page-title\">みなと川 医師の会</h1>"));
    assert!(shown.body.contains("当番と紹介の連絡用です。"));
    assert!(shown
        .body
        .contains("既読の表示：足跡（だれがいつ読んだか）"));
    assert!(shown
        .body
        .contains("name=\"accepts_requests\" value=\"1\" checked"));
    // Now open to requests: the nurse is offered to ask.
    let join = nurse.get(&app, &page).await;
    assert_eq!(join.status, StatusCode::OK);
    assert!(join
        .body
        .contains("このグループは参加の申しこみを受け付けています。"));

    // Back to the association's default, by invitation only.
    let res = owner
        .submit(
            &app,
            &page,
            &settings,
            &[
                ("name", "みなと川 医師の会"),
                ("description", ""),
                ("receipt_mode", "default"),
            ],
        )
        .await;
    assert_eq!(res.location(), format!("{page}?done=settings_saved"));
    let (_, description, policy, receipt) = group_settings(&app, doctors).await;
    assert_eq!(
        (description.as_str(), policy.as_str(), receipt),
        ("", "invite", None)
    );
    assert!(nurse.get(&app, &page).await.is_not_found());
}

#[tokio::test]
async fn group_settings_mistakes_are_shown_next_to_their_field_and_nothing_is_saved() {
    let app = TestApp::demo().await;
    let doctors = group_id(&app, DOCTORS).await;
    let page = group_path(doctors);
    let settings = format!("{page}/settings");
    let mut owner = Browser::signed_in(&app, CLINIC_DOCTOR).await;
    let before = group_settings(&app, doctors).await;

    let res = owner
        .submit(
            &app,
            &page,
            &settings,
            &[
                ("name", "   "),
                ("description", "説明は残る"),
                ("receipt_mode", "off"),
            ],
        )
        .await;
    assert_eq!(res.status, StatusCode::UNPROCESSABLE_ENTITY);
    let form = between(&res.body, "id=\"group-settings\" open", "</form>");
    assert!(form.contains("グループの名前を入力してください（100文字まで）。"));
    assert!(form.contains("説明は残る"), "what was typed stays");
    assert!(form.contains("<option value=\"off\" selected>"));

    let res = owner
        .submit(
            &app,
            &page,
            &settings,
            &[("name", "新しい名前"), ("receipt_mode", "sometimes")],
        )
        .await;
    assert_eq!(res.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(between(&res.body, "for=\"group-receipt\"", "</select>")
        .contains("既読の表示のしかたを選んでください。"));
    assert!(res.body.contains("value=\"新しい名前\""));

    assert_eq!(group_settings(&app, doctors).await, before);
}

#[tokio::test]
async fn owner_forms_from_a_member_or_an_outsider_are_refused_like_for_an_unknown_group() {
    let app = TestApp::demo().await;
    let yamada = group_id(&app, YAMADA).await;
    let unknown = Uuid::now_v7();
    let care_manager = app.user_id(CARE_MANAGER).await;
    let therapist = app.user_id(THERAPIST).await;
    let other_doctor = app.user_id(OTHER_DOCTOR).await;
    // (path after the group's, form fields): each would change something if it went through.
    let forms: Vec<Form<'_>> = vec![
        ("/invite".into(), vec![("email", OTHER_DOCTOR)]),
        (
            format!("/requests/{other_doctor}"),
            vec![("answer", "approve")],
        ),
        (format!("/members/{therapist}/remove"), vec![]),
        (
            format!("/members/{care_manager}/role"),
            vec![("role", "owner")],
        ),
        (
            "/settings".into(),
            vec![
                ("kind", "patient"),
                ("name", "乗っ取られたグループ"),
                ("description", ""),
                ("receipt_mode", "off"),
            ],
        ),
    ];
    let members_before = members(&app, yamada).await;
    let settings_before = group_settings(&app, yamada).await;

    // A plain member; the association's own administrator, who is not in this patient group;
    // a nurse of the other association.
    for (email, inside) in [(NURSE, true), (ADMIN, false), (OTHER_NURSE, false)] {
        let mut b = Browser::signed_in(&app, email).await;
        let actor = app.user_id(email).await;
        let token = b.get(&app, "/home").await.csrf();
        for (tail, fields) in &forms {
            let path = format!("{}{tail}", group_path(yamada));
            let before = app.denials_by(HOST, actor.into()).await;
            let res = send(&app, &mut b, &token, "POST", &path, fields).await;
            assert!(
                is_refusal(&res),
                "{email} {path}: {} {} {}",
                res.status,
                res.location(),
                res.body
            );
            assert_eq!(
                app.denials_by(HOST, actor.into()).await,
                before + 1,
                "{email} {path} is audited as access.denied in the host's log"
            );
            // Exactly what a group that does not exist answers.
            let fake = format!("{}{tail}", group_path(unknown));
            let missing = send(&app, &mut b, &token, "POST", &fake, fields).await;
            assert_eq!(as_if(&res, &[(yamada, unknown)]), as_if(&missing, &[]));
            // Back on the group's page: a member is told it was not found, anyone else gets
            // the 404 page.
            if res.status == StatusCode::SEE_OTHER {
                let back = follow(&mut b, &app, &res).await;
                if inside {
                    assert_eq!(back.status, StatusCode::OK);
                    assert!(back.body.contains("見つかりませんでした。"));
                } else {
                    assert!(back.is_not_found(), "{email} {path}");
                }
            }
        }
        // Nobody but owners is even shown the tools.
        let group_page = b.get(&app, &group_path(yamada)).await;
        assert!(!group_page.body.contains("管理者の操作"));
        assert_eq!(group_page.is_not_found(), !inside);
    }

    assert_eq!(members(&app, yamada).await, members_before);
    assert_eq!(group_settings(&app, yamada).await, settings_before);
}

// --- Topics and comments --------------------------------------------------------------------

#[tokio::test]
async fn a_new_topic_is_posted_with_a_scope_that_decides_who_sees_it() {
    let app = TestApp::demo().await;
    let yamada = group_id(&app, YAMADA).await;
    let form = format!("{}/new", group_path(yamada));
    let mut nurse = Browser::signed_in(&app, NURSE).await;

    let page = nurse.get(&app, &form).await;
    assert_eq!(page.status, StatusCode::OK);
    let picker = between(&page.body, "name=\"co_medical\"", "</fieldset>");
    assert!(
        picker.contains("森田 由美"),
        "each box says who it lets in: {picker}"
    );
    assert!(picker.contains("佐藤 隆"));

    // "Only some" without a box: said, and what was typed stays.
    let res = nurse
        .submit(
            &app,
            &form,
            &form,
            &[
                ("title", "夜間の吸引について"),
                ("body", "夜間の痰の吸引の回数が増えています。"),
                ("scope", "some"),
            ],
        )
        .await;
    assert_eq!(res.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(res
        .body
        .contains("「職種をしぼる」ときは、少なくとも1つにチェックしてください。"));
    assert!(res.body.contains("value=\"夜間の吸引について\""));
    assert!(res
        .body
        .contains("夜間の痰の吸引の回数が増えています。</textarea>"));

    let mut fields = vec![
        ("title", "夜間の吸引について"),
        ("body", "夜間の痰の吸引の回数が増えています。"),
        ("important", "1"),
    ];
    fields.extend_from_slice(CO_MEDICAL_ONLY);
    let res = nurse.submit(&app, &form, &form, &fields).await;
    assert_eq!(res.status, StatusCode::SEE_OTHER, "{}", res.body);
    let topic = topic_id(&app, "夜間の吸引について").await;
    assert_eq!(
        res.location(),
        format!("{}?done=posted&sent={yamada}", topic_path(topic)),
        "the page forgets the draft of the new-topic form"
    );
    assert_eq!(
        topic_state(&app, topic).await,
        ("夜間の吸引について".to_owned(), 1, false, false)
    );
    let shown = follow(&mut nurse, &app, &res).await;
    assert!(shown.body.contains("トピックを投稿しました。"));
    assert!(shown
        .body
        .contains("<span class=\"scope-label\">コメディカルのみ</span>"));
    assert!(shown.body.contains("夜間の痰の吸引の回数が増えています。"));
    assert!(shown.body.contains("mark--important"));

    // Co-medical staff see it; the doctors of the group do not.
    let mut care_manager = Browser::signed_in(&app, CARE_MANAGER).await;
    assert!(care_manager
        .get(&app, &group_path(yamada))
        .await
        .body
        .contains("夜間の吸引について"));
    for doctor in [HOSPITAL_DOCTOR, CLINIC_DOCTOR] {
        let mut b = Browser::signed_in(&app, doctor).await;
        assert!(!b
            .get(&app, &group_path(yamada))
            .await
            .body
            .contains("夜間の吸引について"));
        assert!(b.get(&app, &topic_path(topic)).await.is_not_found());
    }
}

#[tokio::test]
async fn the_author_and_an_owner_change_a_topics_settings_and_another_member_may_not() {
    let app = TestApp::demo().await;
    let yamada = group_id(&app, YAMADA).await;
    let mut author = Browser::signed_in(&app, NURSE).await;
    let topic = post_topic(
        &app,
        &mut author,
        yamada,
        "退院前カンファレンスの日程",
        "候補日を挙げます。",
        CO_MEDICAL_ONLY,
    )
    .await;
    let page = topic_path(topic);
    let settings = format!("{page}/settings");

    // The author: another title, pinned, open to everyone.
    let res = author
        .submit(
            &app,
            &page,
            &settings,
            &[
                ("title", "退院前カンファレンスの日程（決定）"),
                ("scope", "everyone"),
                ("pinned", "1"),
            ],
        )
        .await;
    assert_eq!(res.location(), format!("{page}?done=topic_saved"));
    assert_eq!(
        topic_state(&app, topic).await,
        (
            "退院前カンファレンスの日程（決定）".to_owned(),
            7,
            true,
            false
        )
    );
    let shown = follow(&mut author, &app, &res).await;
    assert!(shown.body.contains("トピックの設定を保存しました。"));
    assert!(between(&shown.body, "<h1", "</h1>").contains("固定"));
    assert!(!shown.body.contains("scope-label"), "everyone: no label");

    // The group's owner (not the author): co-medical staff and clinic doctors, closed.
    let mut owner = Browser::signed_in(&app, CLINIC_DOCTOR).await;
    let form = owner.get(&app, &page).await;
    assert!(form.body.contains("id=\"topic-settings\""));
    let res = owner
        .submit(
            &app,
            &page,
            &settings,
            &[
                ("title", "退院前カンファレンスの日程（決定）"),
                ("scope", "some"),
                ("co_medical", "1"),
                ("collaborating", "1"),
                ("pinned", "1"),
                ("closed", "1"),
            ],
        )
        .await;
    assert_eq!(res.location(), format!("{page}?done=topic_saved"));
    let saved = (
        "退院前カンファレンスの日程（決定）".to_owned(),
        3,
        true,
        true,
    );
    assert_eq!(topic_state(&app, topic).await, saved);
    let shown = follow(&mut owner, &app, &res).await;
    assert!(shown
        .body
        .contains("<span class=\"scope-label\">コメディカル・連携医師のみ</span>"));
    assert!(shown
        .body
        .contains("このトピックは締め切られています。新しいコメントは書けません。"));
    assert!(!shown.body.contains("id=\"reply\""));
    // The hospital doctor, left out now, no longer finds it.
    let mut hospital = Browser::signed_in(&app, HOSPITAL_DOCTOR).await;
    assert!(hospital.get(&app, &page).await.is_not_found());

    // A member who is neither: no form, and the form sent anyway is refused.
    let pharmacist = "hayashi@minatogawa.example";
    let mut member = Browser::signed_in(&app, pharmacist).await;
    let view = member.get(&app, &page).await;
    assert_eq!(view.status, StatusCode::OK);
    assert!(!view.body.contains("id=\"topic-settings\""));
    let actor = app.user_id(pharmacist).await;
    let denied = app.denials_by(HOST, actor.into()).await;
    let res = member
        .submit(
            &app,
            &page,
            &settings,
            &[("title", "勝手に変えた題名"), ("scope", "everyone")],
        )
        .await;
    assert!(res.is_not_found(), "{} {}", res.status, res.body);
    assert_eq!(topic_state(&app, topic).await, saved, "nothing changed");
    assert_eq!(app.denials_by(HOST, actor.into()).await, denied + 1);
}

#[tokio::test]
async fn a_reply_is_edited_with_its_history_kept_and_deleted_leaving_a_mark() {
    let app = TestApp::demo().await;
    let yamada = group_id(&app, YAMADA).await;
    let mut author = Browser::signed_in(&app, NURSE).await;
    let topic = post_topic(
        &app,
        &mut author,
        yamada,
        "訪問時間の変更",
        "明日の訪問時間を調整します。",
        EVERYONE,
    )
    .await;
    let page = topic_path(topic);
    let mut replier = Browser::signed_in(&app, CARE_MANAGER).await;

    let res = replier
        .submit(
            &app,
            &page,
            &format!("{page}/comments"),
            &[(
                "body",
                "ケアマネの訪問は10時です。\n福祉用具の業者も同席します。",
            )],
        )
        .await;
    assert_eq!(res.location(), format!("{page}?done=replied#latest"));
    let shown = follow(&mut replier, &app, &res).await;
    assert!(shown
        .body
        .contains("ケアマネの訪問は10時です。\n福祉用具の業者も同席します。"));
    let reply = comment_id(&app, topic, 2).await;
    assert_eq!(
        comments(&app, topic).await[1],
        (
            2,
            "ケアマネの訪問は10時です。\n福祉用具の業者も同席します。".to_owned(),
            1,
            false
        )
    );

    // Edited by its author: the earlier text is kept and shown as history.
    let edit = comment_path(topic, reply, "edit");
    let res = replier
        .submit(
            &app,
            &page,
            &edit,
            &[("body", "ケアマネの訪問は11時に変更します。"), ("seq", "2")],
        )
        .await;
    assert_eq!(res.location(), format!("{page}?done=edited#c-2"));
    assert_eq!(
        comments(&app, topic).await[1],
        (2, "ケアマネの訪問は11時に変更します。".to_owned(), 2, false)
    );
    assert_eq!(
        earlier_versions(&app, reply).await,
        ["ケアマネの訪問は10時です。\n福祉用具の業者も同席します。"]
    );
    let shown = follow(&mut author, &app, &res).await;
    let card = between(&shown.body, "id=\"c-2\"", "</article>");
    assert!(card.contains("ケアマネの訪問は11時に変更します。"));
    assert!(card.contains("編集済み"));
    let history = between(card, "id=\"history-2\"", "</details>");
    assert!(history.contains("編集の履歴（1 件）"), "{history}");
    assert!(history.contains("ケアマネの訪問は10時です。"));

    // An empty edit is explained in place, with nothing saved; someone else's is refused.
    let res = replier
        .submit(&app, &page, &edit, &[("body", "  "), ("seq", "2")])
        .await;
    assert_eq!(res.status, StatusCode::UNPROCESSABLE_ENTITY);
    let tools = between(&res.body, "id=\"tools-2\" open", "</details>");
    assert!(tools.contains("コメントを入力してください（10,000文字まで）。"));
    let res = author
        .submit(
            &app,
            &page,
            &edit,
            &[("body", "他人のコメントを書きかえる"), ("seq", "2")],
        )
        .await;
    assert_eq!(res.location(), format!("{page}?error=not_found#c-2"));
    assert_eq!(comments(&app, topic).await[1].2, 2, "still version 2");

    // Deleted: a mark in its place, the row and its text kept.
    let res = replier
        .submit(
            &app,
            &page,
            &comment_path(topic, reply, "delete"),
            &[("seq", "2")],
        )
        .await;
    assert_eq!(res.location(), format!("{page}?done=deleted#c-2"));
    assert_eq!(
        comments(&app, topic).await[1],
        (2, "ケアマネの訪問は11時に変更します。".to_owned(), 2, true)
    );
    let shown = follow(&mut author, &app, &res).await;
    let card = between(&shown.body, "id=\"c-2\"", "</li>");
    assert!(card.contains("このコメントは削除されました"));
    assert!(!shown.body.contains("ケアマネの訪問は11時"));
    assert!(
        !shown.body.contains("ケアマネの訪問は10時"),
        "nor its history"
    );

    // A topic's first post cannot be deleted.
    let first = comment_id(&app, topic, 1).await;
    let res = author
        .submit(
            &app,
            &page,
            &comment_path(topic, first, "delete"),
            &[("seq", "1")],
        )
        .await;
    assert_eq!(res.location(), format!("{page}?error=first_post#c-1"));
    assert!(follow(&mut author, &app, &res)
        .await
        .body
        .contains("トピックの本文（最初のコメント）は削除できません。"));
    assert!(!comments(&app, topic).await[0].3);
}

#[tokio::test]
async fn a_comment_is_confirmed_in_an_acknowledgement_group() {
    let app = TestApp::demo().await;
    let doctors = group_id(&app, DOCTORS).await;
    let mut author = Browser::signed_in(&app, CLINIC_DOCTOR).await;
    let topic = post_topic(
        &app,
        &mut author,
        doctors,
        "2月の当番の交代",
        "2/11 の当番を交代していただける先生はいますか。",
        EVERYONE,
    )
    .await;
    let page = topic_path(topic);
    let body = comment_id(&app, topic, 1).await;
    let ack = comment_path(topic, body, "ack");

    let mut reader = Browser::signed_in(&app, HOSPITAL_DOCTOR).await;
    let view = reader.get(&app, &page).await;
    assert!(view.body.contains("既読の表示：「確認しました」ボタンだけ"));
    assert!(view.body.contains(&format!("action=\"{ack}\"")));
    let res = reader.submit(&app, &page, &ack, &[("seq", "1")]).await;
    assert_eq!(res.location(), format!("{page}?done=acknowledged#c-1"));
    let sato = app.user_id(HOSPITAL_DOCTOR).await;
    assert_eq!(acknowledgers(&app, body).await, [sato]);
    let shown = follow(&mut reader, &app, &res).await;
    assert!(shown.body.contains("「確認しました」を送りました。"));
    assert!(shown.body.contains("あなたは確認ずみです。"));
    assert!(!shown.body.contains(&format!("action=\"{ack}\"")));

    // The author sees who confirmed and who has not; he cannot confirm his own.
    let mine = author.get(&app, &page).await;
    let card = between(&mine.body, "id=\"c-1\"", "</article>");
    assert!(card.contains("確認済み 1 人"), "{card}");
    // Everyone else of the doctors' group has yet to confirm (in reading order).
    let waiting = between(card, "未確認：", "</p>");
    assert_eq!(waiting, "未確認：大野 浩・高橋 誠・松井 里美", "{card}");
    let res = author.submit(&app, &page, &ack, &[("seq", "1")]).await;
    assert_eq!(res.location(), format!("{page}?error=invalid#c-1"));
    let refused = follow(&mut author, &app, &res).await;
    assert!(refused
        .body
        .contains("入力の内容を確かめて、もう一度お試しください。"));
    assert_eq!(acknowledgers(&app, body).await, [sato]);
}

#[tokio::test]
async fn a_reply_to_a_closed_topic_is_refused_and_what_was_typed_is_kept() {
    let app = TestApp::demo().await;
    let yamada = group_id(&app, YAMADA).await;
    let mut author = Browser::signed_in(&app, NURSE).await;
    let topic = post_topic(
        &app,
        &mut author,
        yamada,
        "物品の補充",
        "吸引カテーテルの在庫が少なくなっています。",
        EVERYONE,
    )
    .await;
    let page = topic_path(topic);

    // The replier opens the page while it is open; then the author closes it.
    let mut replier = Browser::signed_in(&app, CARE_MANAGER).await;
    let token = replier.get(&app, &page).await.csrf();
    author
        .submit(
            &app,
            &page,
            &format!("{page}/settings"),
            &[
                ("title", "物品の補充"),
                ("scope", "everyone"),
                ("closed", "1"),
            ],
        )
        .await;
    assert!(topic_state(&app, topic).await.3);

    let typed = "来週の訪問時に20本お持ちします。";
    let res = replier
        .post(
            &app,
            &format!("{page}/comments"),
            &[("csrf", &token), ("body", typed)],
        )
        .await;
    assert_eq!(res.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(res.body.contains("締め切られて"), "said in Japanese");
    assert!(res.body.contains(typed), "what was typed is not lost");
    assert_eq!(comments(&app, topic).await.len(), 1, "nothing posted");
}

#[tokio::test]
async fn a_form_without_its_csrf_token_changes_nothing() {
    let app = TestApp::demo().await;
    let yamada = group_id(&app, YAMADA).await;
    let mut author = Browser::signed_in(&app, NURSE).await;
    let topic = post_topic(&app, &mut author, yamada, "体重の記録", "58.2kg", EVERYONE).await;
    let page = topic_path(topic);
    let mut owner = Browser::signed_in(&app, CLINIC_DOCTOR).await;
    owner.get(&app, &page).await; // has a CSRF cookie, like any browser that opened the page
    let settings_before = group_settings(&app, yamada).await;
    let therapist = app.user_id(THERAPIST).await;

    let attempts: Vec<Form<'_>> = vec![
        (format!("{page}/comments"), vec![("body", "偽の返信")]),
        (
            format!("{page}/settings"),
            vec![
                ("title", "偽の題名"),
                ("scope", "everyone"),
                ("closed", "1"),
            ],
        ),
        (
            format!("{}/settings", group_path(yamada)),
            vec![("kind", "patient"), ("name", "偽の名前")],
        ),
        (
            format!("{}/members/{therapist}/remove", group_path(yamada)),
            vec![],
        ),
    ];
    for (path, fields) in &attempts {
        for token in [None, Some("forged-token")] {
            let mut all = fields.clone();
            if let Some(t) = token {
                all.push(("csrf", t));
            }
            let res = owner.post(&app, path, &all).await;
            assert_eq!(res.status, StatusCode::FORBIDDEN, "{path} {token:?}");
        }
    }
    assert_eq!(comments(&app, topic).await.len(), 1);
    assert_eq!(
        topic_state(&app, topic).await,
        ("体重の記録".to_owned(), 7, false, false)
    );
    assert_eq!(group_settings(&app, yamada).await, settings_before);
    assert_eq!(membership(&app, yamada, THERAPIST).await, active("member"));
}

// --- Scope ----------------------------------------------------------------------------------

#[tokio::test]
async fn outside_a_topics_scope_every_route_answers_as_for_an_unknown_topic() {
    let app = TestApp::demo().await;
    let yamada = group_id(&app, YAMADA).await;
    let topic = topic_id(&app, CO_MEDICAL_TOPIC).await;
    let reply = comment_id(&app, topic, 2).await;
    let (fake_topic, fake_comment) = (Uuid::now_v7(), Uuid::now_v7());
    let ids = [(topic, fake_topic), (reply, fake_comment)];
    let routes: Vec<Route<'_>> = vec![
        ("GET", topic_path(topic), vec![]),
        ("GET", format!("{}/comments", topic_path(topic)), vec![]),
        (
            "POST",
            format!("{}/comments", topic_path(topic)),
            vec![("body", "見えないはずのトピックへの返信")],
        ),
        (
            "POST",
            format!("{}/settings", topic_path(topic)),
            vec![("title", "見えないはずの題名"), ("scope", "everyone")],
        ),
        (
            "POST",
            comment_path(topic, reply, "edit"),
            vec![("body", "書きかえ"), ("seq", "2")],
        ),
        (
            "POST",
            comment_path(topic, reply, "delete"),
            vec![("seq", "2")],
        ),
        (
            "POST",
            comment_path(topic, reply, "ack"),
            vec![("seq", "2")],
        ),
        ("GET", comment_path(topic, reply, "readers"), vec![]),
        (
            "GET",
            format!("{}?part=list", comment_path(topic, reply, "readers")),
            vec![],
        ),
        (
            "POST",
            format!("{}/seen", topic_path(topic)),
            vec![("seqs", "1,2")],
        ),
    ];
    let state_before = (
        topic_state(&app, topic).await,
        comments(&app, topic).await,
        acknowledgers(&app, reply).await,
    );

    // The hospital doctor is an active member of the group, and sees the group.
    assert_eq!(
        membership(&app, yamada, HOSPITAL_DOCTOR).await,
        active("member")
    );
    let mut doctor = Browser::signed_in(&app, HOSPITAL_DOCTOR).await;
    let actor = app.user_id(HOSPITAL_DOCTOR).await;
    let group_page = doctor.get(&app, &group_path(yamada)).await;
    assert_eq!(group_page.status, StatusCode::OK);
    assert!(group_page.body.contains("退院後の訪問診療開始について"));
    assert!(!group_page.body.contains(CO_MEDICAL_TOPIC));
    assert!(!group_page.body.contains(&topic.to_string()));
    let list = doctor
        .get(&app, &format!("{}/topics", group_path(yamada)))
        .await;
    assert_eq!(list.status, StatusCode::OK);
    assert!(!list.body.contains(CO_MEDICAL_TOPIC));
    // (Co-medical members do see it there.)
    let mut nurse = Browser::signed_in(&app, NURSE).await;
    assert!(nurse
        .get(&app, &group_path(yamada))
        .await
        .body
        .contains(CO_MEDICAL_TOPIC));

    let token = doctor.get(&app, "/home").await.csrf();
    for (method, path, fields) in &routes {
        let before = app.denials_by(HOST, actor.into()).await;
        let res = send(&app, &mut doctor, &token, method, path, fields).await;
        assert!(
            is_refusal(&res),
            "{method} {path}: {} {} {}",
            res.status,
            res.location(),
            res.body
        );
        assert!(!res.body.contains(CO_MEDICAL_TOPIC));
        assert_eq!(
            app.denials_by(HOST, actor.into()).await,
            before + 1,
            "{method} {path} is audited as access.denied"
        );
        let fake = ids.iter().fold(path.clone(), |p, (real, fake)| {
            p.replace(&real.to_string(), &fake.to_string())
        });
        let missing = send(&app, &mut doctor, &token, method, &fake, fields).await;
        assert_eq!(
            as_if(&res, &ids),
            as_if(&missing, &[]),
            "{method} {path} answers like an unknown id"
        );
        if res.status == StatusCode::SEE_OTHER {
            assert!(follow(&mut doctor, &app, &res).await.is_not_found());
        }
    }

    // The group's owner is a clinic doctor: outside the scope too, owner or not.
    let mut owner = Browser::signed_in(&app, CLINIC_DOCTOR).await;
    assert!(owner.get(&app, &topic_path(topic)).await.is_not_found());

    assert_eq!(
        (
            topic_state(&app, topic).await,
            comments(&app, topic).await,
            acknowledgers(&app, reply).await,
        ),
        state_before,
        "nothing changed"
    );
}

// --- Unread ---------------------------------------------------------------------------------

#[tokio::test]
async fn marking_a_group_read_clears_its_unread_count_without_leaving_footprints() {
    let app = TestApp::demo().await;
    let tanaka = group_id(&app, TANAKA).await;
    let yamada = group_id(&app, YAMADA).await;
    let nurse = app.user_id(NURSE).await;
    let page = group_path(tanaka);
    let in_tanaka = unread_in_group(&app, nurse.into(), tanaka).await;
    let in_yamada = unread_in_group(&app, nurse.into(), yamada).await;
    let in_host = unread_in_host(&app, nurse.into()).await;
    assert!(
        in_tanaka > 0 && in_yamada > 0,
        "the demo leaves unread comments in both groups"
    );
    let footprints = footprints_of(&app, nurse.into()).await;

    let mut b = Browser::signed_in(&app, NURSE).await;
    let home = b.get(&app, "/home").await;
    assert!(home.body.contains(&format!("id=\"unread-{tanaka}\"")));
    // Her count also has the other association's group she is in.
    let total = unread_shown(&home);
    assert!(total >= in_host, "{total}");
    let before = b.get(&app, &page).await;
    assert!(before
        .body
        .contains(&format!("data-unread-group=\"{in_tanaka}\"")));

    let res = b.submit(&app, &page, &format!("{page}/read"), &[]).await;
    assert_eq!(res.location(), format!("{page}?done=marked_read"));
    assert_eq!(unread_in_group(&app, nurse.into(), tanaka).await, 0);
    assert_eq!(
        unread_in_host(&app, nurse.into()).await,
        in_host - in_tanaka
    );
    assert_eq!(
        footprints_of(&app, nurse.into()).await,
        footprints,
        "not read"
    );
    let shown = follow(&mut b, &app, &res).await;
    assert!(shown.body.contains("すべて既読にしました。"));
    assert!(shown.body.contains("data-unread-group=\"0\""));
    assert!(!between(&shown.body, "id=\"topics\"", "</section>").contains("unread-badge"));

    let home = b.get(&app, "/home").await;
    assert!(!home.body.contains(&format!("id=\"unread-{tanaka}\"")));
    assert!(home.body.contains(&format!("id=\"unread-{yamada}\"")));
    assert_eq!(unread_shown(&home), total - in_tanaka);

    // The same from the home page goes back there.
    let res = b
        .submit(
            &app,
            "/home",
            &format!("{}/read", group_path(yamada)),
            &[("back", "home")],
        )
        .await;
    assert_eq!(res.location(), "/home?done=marked_read");
    assert_eq!(unread_in_group(&app, nurse.into(), yamada).await, 0);
    let home = follow(&mut b, &app, &res).await;
    assert!(home.body.contains("すべて既読にしました。"));
    assert!(!home.body.contains(&format!("id=\"unread-{yamada}\"")));
}

#[tokio::test]
async fn with_the_pages_script_only_what_it_reports_as_seen_is_read() {
    let app = TestApp::demo().await;
    let tanaka = group_id(&app, TANAKA).await;
    let nurse = app.user_id(NURSE).await;
    let mut b = Browser::signed_in(&app, NURSE).await;
    // A topic of the group with comments the nurse has not read.
    let group = b.get(&app, &group_path(tanaka)).await;
    let list = between(&group.body, "id=\"topics\"", "</section>");
    let at = list
        .find("#unread\"")
        .expect("a topic with unread comments, linked to them");
    let href_start = list[..at].rfind("href=\"").unwrap() + 6;
    let topic: Uuid = list[href_start..at]
        .rsplit('/')
        .next()
        .unwrap()
        .parse()
        .unwrap();
    let unread = unread_in_group(&app, nurse.into(), tanaka).await;
    let footprints = footprints_of(&app, nurse.into()).await;

    // The script's cookie: opening records nothing, and marks what to watch.
    b.cookies.insert("musubi_js".into(), "1".into());
    let page = b.get(&app, &topic_path(topic)).await;
    assert_eq!(page.status, StatusCode::OK);
    assert!(page.body.contains("id=\"unread\"") || page.body.contains("data-unseen=\"1\""));
    let watched: Vec<i32> = page
        .body
        .match_indices("data-unseen=\"")
        .map(|(i, m)| {
            let rest = &page.body[i + m.len()..];
            rest[..rest.find('"').unwrap()].parse().unwrap()
        })
        .collect();
    assert!(!watched.is_empty());
    assert_eq!(unread_in_group(&app, nurse.into(), tanaka).await, unread);
    assert_eq!(footprints_of(&app, nurse.into()).await, footprints);
    assert!(page.body.contains("data-seen-src="));

    // The last one came on screen.
    let last = watched.last().unwrap().to_string();
    let seen = format!("{}/seen", topic_path(topic));
    let res = b
        .post(&app, &seen, &[("csrf", &page.csrf()), ("seqs", &last)])
        .await;
    assert_eq!(res.status, StatusCode::NO_CONTENT, "{}", res.body);
    assert_eq!(footprints_of(&app, nurse.into()).await, footprints + 1);
    assert_eq!(
        unread_in_group(&app, nurse.into(), tanaka).await,
        unread - 1
    );
    // Without the form token, or with nonsense: nothing changes.
    let res = b.post(&app, &seen, &[("seqs", "1")]).await;
    assert_eq!(res.status, StatusCode::FORBIDDEN);
    let res = b
        .post(&app, &seen, &[("csrf", &page.csrf()), ("seqs", "1,x")])
        .await;
    assert_eq!(res.status, StatusCode::BAD_REQUEST);
    assert_eq!(footprints_of(&app, nurse.into()).await, footprints + 1);

    // A browser without the script: the page showed it all, so it is all read.
    b.cookies.remove("musubi_js");
    let page = b.get(&app, &topic_path(topic)).await;
    assert!(!page.body.contains("data-unseen="));
    assert_eq!(
        unread_in_group(&app, nurse.into(), tanaka).await,
        unread - i64::try_from(watched.len()).unwrap().min(unread)
    );
}

#[tokio::test]
async fn a_comments_readers_are_listed_in_full_on_their_own_page() {
    let app = TestApp::demo().await;
    let yamada = group_id(&app, YAMADA).await;
    let mut b = Browser::signed_in(&app, CLINIC_DOCTOR).await;
    let group = b.get(&app, &group_path(yamada)).await;
    let list = between(&group.body, "id=\"topics\"", "</section>");
    let start = list.find(&format!("/a/{HOST}/t/")).unwrap() + format!("/a/{HOST}/t/").len();
    let topic: Uuid = list[start..start + 36].parse().unwrap();
    let first = comment_id(&app, topic, 1).await;
    let page = b.get(&app, &comment_path(topic, first, "readers")).await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.body);
    assert!(page.body.contains("<h1 id=\"page-title\">"));
    assert!(
        page.body.contains(&format!("{}#c-1", topic_path(topic))),
        "back to the comment"
    );
    let fragment = b
        .get(
            &app,
            &format!("{}?part=list", comment_path(topic, first, "readers")),
        )
        .await;
    assert_eq!(fragment.status, StatusCode::OK);
    assert!(!fragment.body.contains("<html"), "the list alone");
    assert!(fragment.body.contains("readers__list") || fragment.body.contains("readers__none"));
    // Another topic's comment under this topic: not found.
    let other = topic_id(&app, CO_MEDICAL_TOPIC).await;
    let elsewhere = comment_id(&app, other, 1).await;
    let res = b
        .get(&app, &comment_path(topic, elsewhere, "readers"))
        .await;
    assert!(res.is_not_found());
}

// --- Nothing typed is lost -------------------------------------------------------------------

/// Ends every session of `email` as the idle timeout would.
async fn expire_sessions(app: &TestApp, email: &str) {
    let user = app.user_id(email).await;
    sqlx::query(
        "UPDATE core.sessions SET idle_expires_at = now() - interval '1 minute' WHERE user_id = $1",
    )
    .bind(Uuid::from(user))
    .execute(app.db.db.pool())
    .await
    .unwrap();
}

#[tokio::test]
async fn a_reply_sent_after_the_session_ended_is_kept_in_sight_and_the_nurse_comes_back_to_send_it()
{
    let app = TestApp::demo().await;
    let yamada = group_id(&app, YAMADA).await;
    let mut nurse = Browser::signed_in(&app, NURSE).await;
    let topic = post_topic(
        &app,
        &mut nurse,
        yamada,
        "訪問報告",
        "本日訪問しました。",
        EVERYONE,
    )
    .await;
    let page = topic_path(topic);
    let token = nurse.get(&app, &page).await.csrf();
    let report = "BP 128/76、SpO2 95%。\n夜間の吸引 2 回、痰は白色。";

    // An hour of visiting later: the session has ended while she typed.
    expire_sessions(&app, NURSE).await;
    let res = nurse
        .post(
            &app,
            &format!("{page}/comments"),
            &[("csrf", &token), ("body", report)],
        )
        .await;
    assert_eq!(res.status, StatusCode::UNAUTHORIZED, "{}", res.body);
    assert!(
        res.body.contains("送信できませんでした"),
        "said in Japanese"
    );
    assert!(
        res.body.contains("BP 128/76、SpO2 95%。\n夜間の吸引"),
        "the text is in sight"
    );
    assert!(
        res.body
            .contains(&format!("name=\"next\" value=\"{page}\"")),
        "back to the topic"
    );
    assert_eq!(comments(&app, topic).await.len(), 1, "nothing posted");

    // Signing in again leads back to the topic, and sending works once.
    let res = nurse
        .submit(
            &app,
            "/signin",
            "/signin",
            &[
                ("email", NURSE),
                ("password", "musubi-demo-2026"),
                ("next", &page),
            ],
        )
        .await;
    assert_eq!(res.location(), page);
    let shown = nurse.get(&app, &page).await;
    assert!(shown.body.contains(&format!(
        "data-draft=\"{}:reply:{topic}\"",
        app.user_id(NURSE).await
    )));
    let res = nurse
        .post(
            &app,
            &format!("{page}/comments"),
            &[("csrf", &shown.csrf()), ("body", report)],
        )
        .await;
    assert_eq!(res.location(), format!("{page}?done=replied#latest"));
    let after = follow(&mut nurse, &app, &res).await;
    assert!(after.body.contains("返信を送信しました。"));
    assert!(after.body.contains(&format!(
        "data-draft-sent=\"{}:reply:{topic}\"",
        app.user_id(NURSE).await
    )));
    assert_eq!(comments(&app, topic).await.len(), 2, "the report, once");

    // Any other form sent after the session ended goes to sign in and back to its page.
    expire_sessions(&app, NURSE).await;
    let res = nurse
        .send(
            &app,
            http::Request::post(format!("{}/read", group_path(yamada)))
                .header("origin", "http://musubi.test")
                .header(
                    "referer",
                    format!("http://{}{}", nurse.host, group_path(yamada)),
                )
                .header("content-type", "application/x-www-form-urlencoded"),
            axum::body::Body::from(format!("csrf={}", shown.csrf())),
        )
        .await;
    assert_eq!(res.status, StatusCode::SEE_OTHER);
    assert_eq!(
        res.location(),
        format!("/signin?next={}&expired=1", group_path(yamada))
    );
    let signin = nurse.get(&app, res.location()).await;
    assert!(signin.body.contains("送信できませんでした"));
}

#[tokio::test]
async fn a_reply_with_a_stale_form_token_changes_nothing_and_shows_what_was_typed() {
    let app = TestApp::demo().await;
    let yamada = group_id(&app, YAMADA).await;
    let mut nurse = Browser::signed_in(&app, NURSE).await;
    let topic = post_topic(&app, &mut nurse, yamada, "物品", "在庫の確認", EVERYONE).await;
    let page = topic_path(topic);
    nurse.get(&app, &page).await;
    let typed = "明日 10 時に伺います。<b>念のため</b>";
    let res = nurse
        .post(
            &app,
            &format!("{page}/comments"),
            &[("csrf", "stale-token-from-an-old-tab"), ("body", typed)],
        )
        .await;
    assert_eq!(res.status, StatusCode::FORBIDDEN);
    assert!(res.body.contains("何も変わっていません"));
    assert!(
        res.body
            .contains("明日 10 時に伺います。&#60;b&#62;念のため"),
        "kept, escaped"
    );
    assert_eq!(comments(&app, topic).await.len(), 1);
}

#[tokio::test]
async fn an_owner_invites_a_whole_team_sets_a_last_day_and_removes_several_at_once() {
    let app = TestApp::demo().await;
    let tanaka = group_id(&app, TANAKA).await;
    let page = group_path(tanaka);
    let mut owner = Browser::signed_in(&app, CLINIC_DOCTOR).await;

    // A facility's name finds its team, across the border, with how many would be invited.
    let found = owner
        .get(&app, &format!("{page}?find={}", q("さくら台訪問")))
        .await;
    let teams = between(&found.body, "id=\"invite-teams-title\"", "</ul>");
    assert!(teams.contains("さくら台訪問看護ステーション"), "{teams}");
    assert!(teams.contains("1人"), "{teams}");
    assert!(teams.contains("さくら台医師会"), "{teams}");
    let facility: Uuid = sqlx::query_scalar(
        "SELECT id FROM core.facilities WHERE name = 'さくら台訪問看護ステーション'",
    )
    .fetch_one(app.db.db.pool())
    .await
    .unwrap();
    let res = owner
        .submit(
            &app,
            &page,
            &format!("{page}/invite-team"),
            &[("facility_id", &facility.to_string())],
        )
        .await;
    assert_eq!(res.location(), format!("{page}?done=invited_team"));
    assert_eq!(
        membership(&app, tanaka, OTHER_NURSE).await,
        Some(("member".into(), "invited".into()))
    );
    // A facility id that is not one: the refusal of a missing object.
    let res = owner
        .submit(
            &app,
            &page,
            &format!("{page}/invite-team"),
            &[("facility_id", &Uuid::new_v4().to_string())],
        )
        .await;
    assert!(is_refusal(&res), "{}", res.status);

    // A last day for the nurse: shown on her card, and the membership ends when it does.
    let nurse = app.user_id(NURSE).await;
    let jst = chrono::FixedOffset::east_opt(9 * 3600).unwrap();
    let tomorrow =
        (chrono::Utc::now().with_timezone(&jst) + chrono::Duration::days(1)).date_naive();
    let res = owner
        .submit(
            &app,
            &page,
            &format!("{page}/members/{nurse}/until"),
            &[("until", &tomorrow.format("%Y-%m-%d").to_string())],
        )
        .await;
    assert_eq!(
        res.location(),
        format!("{page}?done=until_set#members-title")
    );
    let until: Option<chrono::DateTime<chrono::Utc>> = sqlx::query_scalar(
        "SELECT until FROM core.group_members WHERE group_id = $1 AND user_id = $2",
    )
    .bind(tanaka)
    .bind(nurse)
    .fetch_one(app.db.db.pool())
    .await
    .unwrap();
    let end = tomorrow
        .succ_opt()
        .unwrap()
        .and_hms_opt(0, 0, 0)
        .unwrap()
        .and_local_timezone(jst)
        .unwrap();
    assert_eq!(until, Some(end.with_timezone(&chrono::Utc)));
    let shown = follow(&mut owner, &app, &res).await;
    let card = between(&shown.body, &format!("id=\"member-{nurse}\""), "</li>");
    assert!(
        card.contains(&format!("{}まで", tomorrow.format("%Y年%-m月%-d日"))),
        "{card}"
    );
    // Yesterday, or something that is not a date: refused, nothing changed.
    let yesterday =
        (chrono::Utc::now().with_timezone(&jst) - chrono::Duration::days(1)).date_naive();
    for bad in [yesterday.format("%Y-%m-%d").to_string(), "来週".to_owned()] {
        let res = owner
            .submit(
                &app,
                &page,
                &format!("{page}/members/{nurse}/until"),
                &[("until", &bad)],
            )
            .await;
        assert_eq!(
            res.location(),
            format!("{page}?error=until#members-title"),
            "{bad}"
        );
    }
    let res = owner
        .submit(
            &app,
            &page,
            &format!("{page}/members/{nurse}/until"),
            &[("until", "")],
        )
        .await;
    assert_eq!(
        res.location(),
        format!("{page}?done=until_cleared#members-title")
    );
    let cleared: Option<chrono::DateTime<chrono::Utc>> = sqlx::query_scalar(
        "SELECT until FROM core.group_members WHERE group_id = $1 AND user_id = $2",
    )
    .bind(tanaka)
    .bind(nurse)
    .fetch_one(app.db.db.pool())
    .await
    .unwrap();
    assert_eq!(cleared, None);

    // Several at once: a member and the invited nurse of さくら台 go together.
    let other_nurse = app.user_id(OTHER_NURSE).await;
    let list = owner.get(&app, &page).await;
    let bulk = between(&list.body, "id=\"bulk-remove\"", "</details>");
    assert!(bulk.contains(&format!("value=\"{other_nurse}\"")), "{bulk}");
    let me = app.user_id(CLINIC_DOCTOR).await;
    assert!(
        !bulk.contains(&format!("value=\"{me}\"")),
        "not himself: {bulk}"
    );
    // Nobody ticked: told so.
    let res = owner
        .submit(&app, &page, &format!("{page}/members/remove"), &[])
        .await;
    assert_eq!(
        res.location(),
        format!("{page}?error=none_chosen#members-title")
    );
    // A member who is not an owner: refused like an unknown group, nothing removed.
    let mut member = Browser::signed_in(&app, NURSE).await;
    let res = member
        .submit(
            &app,
            &page,
            &format!("{page}/members/remove"),
            &[("user_id", &other_nurse.to_string())],
        )
        .await;
    assert!(
        res.status.is_redirection() || res.is_not_found(),
        "{}",
        res.status
    );
    assert!(membership(&app, tanaka, OTHER_NURSE).await.is_some());
    let res = owner
        .submit(
            &app,
            &page,
            &format!("{page}/members/remove"),
            &[
                ("user_id", &nurse.to_string()),
                ("user_id", &other_nurse.to_string()),
            ],
        )
        .await;
    assert_eq!(
        res.location(),
        format!("{page}?done=removed_many#members-title")
    );
    assert_eq!(membership(&app, tanaka, NURSE).await, None);
    assert_eq!(membership(&app, tanaka, OTHER_NURSE).await, None);
    let shown = follow(&mut owner, &app, &res).await;
    assert!(shown.body.contains("選んだ人をグループからはずしました。"));
    // Pressed twice (the page was slow): the second changes nothing and says so calmly.
    let res = owner
        .submit(
            &app,
            &page,
            &format!("{page}/members/remove"),
            &[("user_id", &nurse.to_string())],
        )
        .await;
    assert_eq!(
        res.location(),
        format!("{page}?error=not_found#members-title")
    );
}

/// The comments a topic page shows, by number.
fn shown_seqs(page: &Page) -> Vec<i32> {
    page.body
        .match_indices("<li class=\"comment")
        .map(|(i, _)| {
            let rest = &page.body[i..];
            let at = rest.find("id=\"c-").unwrap() + 6;
            rest[at..at + rest[at..].find('"').unwrap()]
                .parse()
                .unwrap()
        })
        .collect()
}

#[tokio::test]
async fn a_long_topic_opens_with_its_newest_comments_and_shows_the_earlier_ones_when_asked() {
    let app = TestApp::demo().await;
    let yamada = group_id(&app, YAMADA).await;
    let mut author = Browser::signed_in(&app, NURSE).await;
    let topic = post_topic(
        &app,
        &mut author,
        yamada,
        "毎日の記録（長い）",
        "1日目の記録です。",
        EVERYONE,
    )
    .await;
    let page = topic_path(topic);
    for day in 2..=25 {
        let body = format!("{day}日目の記録です。");
        let res = author
            .submit(&app, &page, &format!("{page}/comments"), &[("body", &body)])
            .await;
        assert_eq!(res.status, StatusCode::SEE_OTHER, "{}", res.body);
    }

    // Everything unread: the page holds it all, from the first comment.
    let mut doctor = Browser::signed_in(&app, CLINIC_DOCTOR).await;
    let first = doctor.get(&app, &page).await;
    assert_eq!(first.status, StatusCode::OK);
    assert_eq!(shown_seqs(&first), (1..=25).collect::<Vec<_>>());
    assert!(!first.body.contains("class=\"earlier\""));
    // Read: the newest 20, with a way to the 5 before them that keeps the place.
    let again = doctor.get(&app, &page).await;
    assert_eq!(shown_seqs(&again), (6..=25).collect::<Vec<_>>());
    assert!(
        again.body.contains("以前のコメント（5 件）を表示"),
        "{}",
        again.body
    );
    let href = format!("{page}?start=1#c-6");
    assert!(again.body.contains(&format!("href=\"{href}\"")));
    assert!(again
        .body
        .contains(&format!("data-live-src=\"{page}/comments?start=6\"")));
    let all = doctor.get(&app, href.split('#').next().unwrap()).await;
    assert_eq!(shown_seqs(&all), (1..=25).collect::<Vec<_>>());
    assert!(!all.body.contains("class=\"earlier\""));
    // The live updates of that page keep what it shows.
    let live = doctor.get(&app, &format!("{page}/comments?start=1")).await;
    assert_eq!(shown_seqs(&live), (1..=25).collect::<Vec<_>>());
    let live = doctor.get(&app, &format!("{page}/comments?start=6")).await;
    assert_eq!(shown_seqs(&live), (6..=25).collect::<Vec<_>>());
    // Nonsense is the newest ones.
    let odd = doctor.get(&app, &format!("{page}?start=-3")).await;
    assert_eq!(shown_seqs(&odd), (6..=25).collect::<Vec<_>>());
}

#[tokio::test]
async fn an_owner_makes_a_qr_code_for_someone_new_and_a_member_may_not() {
    let app = TestApp::demo().await;
    let yamada = group_id(&app, YAMADA).await;
    let page = group_path(yamada);
    let action = format!("{page}/invite-new");

    // 川村 owns 山田's group: the form is there, and it gives the link and its QR code once.
    let mut owner = Browser::signed_in(&app, CLINIC_DOCTOR).await;
    let shown = owner.get(&app, &page).await;
    assert!(shown.body.contains(&format!("action=\"{action}\"")));
    let made = owner.submit(&app, &page, &action, &[]).await;
    assert_eq!(made.status, StatusCode::OK, "{}", made.body);
    assert!(made.body.contains("グループへの招待のQRコード"));
    assert!(made.body.contains("<svg"), "the QR code");
    let link = between(&made.body, "<code id=\"invitation-link\">", "</code>");
    assert!(link.contains("/invite/"), "{link}");
    assert!(made.body.contains(YAMADA), "names the group");
    let pending: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM core.invitations WHERE group_id = $1 AND accepted_at IS NULL",
    )
    .bind(yamada)
    .fetch_one(app.db.db.pool())
    .await
    .unwrap();
    assert_eq!(pending, 1);

    // 青木 is a member, not an owner: no form, and posting anyway is refused like for an
    // unknown group; nothing is made.
    let mut member = Browser::signed_in(&app, NURSE).await;
    let shown = member.get(&app, &page).await;
    assert!(!shown.body.contains(&format!("action=\"{action}\"")));
    let refused = member.submit(&app, &page, &action, &[]).await;
    assert!(is_refusal(&refused), "{}", refused.status);
    let after: i64 =
        sqlx::query_scalar("SELECT count(*) FROM core.invitations WHERE group_id = $1")
            .bind(yamada)
            .fetch_one(app.db.db.pool())
            .await
            .unwrap();
    assert_eq!(after, 1);
}
