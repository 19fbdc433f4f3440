//! Calendars on the web: the personal calendar with 「不在を登録」 (a round trip, refusals said at
//! their field), a group's calendar with a monthly event (the repetition made into a rule, a
//! day cancelled, a change made meanwhile said without losing what was typed), the rotation
//! set up, drafted, published and swapped on its page with 「本日の当番医」 on the group page,
//! and a calendar feed made on the page, fetched at its address and revoked. Who is not in a
//! group gets the 404 page for its calendar and rotation; a form without its token changes
//! nothing; a month that cannot be read is said, never a 500.

use chrono::{Datelike, Duration, NaiveDate, Weekday};
use http::header::CONTENT_TYPE;
use http::StatusCode;
use musubi_domain::calendar;
use musubi_test_support::demo::{CLINIC_DOCTOR, HOSPITAL_DOCTOR, HOST, NURSE, OTHER_DOCTOR};
use musubi_test_support::web::{Browser, Page};
use musubi_test_support::TestApp;
use uuid::Uuid;

/// みなと川's collaborating doctors: 川村 owns it; 高橋, 佐藤, 大野 and 松井 are members.
const DOCTORS: &str = "みなと川 連携医グループ";
const OONO: &str = "oono@minatogawa.example";
const MATSUI: &str = "matsui@minatogawa.example";

async fn group_id(app: &TestApp, name: &str) -> Uuid {
    sqlx::query_scalar("SELECT id FROM groups WHERE name = $1")
        .bind(name)
        .fetch_one(&mut *app.tenant_tx(HOST).await)
        .await
        .unwrap()
}

/// A page's address without its fragment (what a browser asks for).
fn path_of(location: &str) -> &str {
    location.split('#').next().unwrap()
}

/// Follows a 303 and returns the page it leads to.
async fn follow(b: &mut Browser, app: &TestApp, res: &Page) -> Page {
    assert_eq!(res.status, StatusCode::SEE_OTHER, "{}", res.body);
    b.get(app, path_of(res.location())).await
}

fn month_code(day: NaiveDate) -> String {
    day.format("%Y-%m").to_string()
}

/// The value of the first `name="…" value="…"` after `marker`.
fn attribute_after<'a>(body: &'a str, marker: &str, attribute: &str) -> &'a str {
    let at = body
        .find(marker)
        .unwrap_or_else(|| panic!("no {marker} in {body}"));
    let rest = &body[at..];
    let start = rest.find(&format!("{attribute}=\"")).unwrap() + attribute.len() + 2;
    let end = start + rest[start..].find('"').unwrap();
    &rest[start..end]
}

#[tokio::test]
async fn an_absence_is_entered_in_two_taps_shown_to_colleagues_and_withdrawn() {
    let app = TestApp::demo().await;
    let doctors = group_id(&app, DOCTORS).await;
    let today = calendar::today();
    let mut doctor = Browser::signed_in(&app, CLINIC_DOCTOR).await;

    let page = doctor.get(&app, "/calendar").await;
    assert_eq!(page.status, StatusCode::OK);
    assert!(page.body.contains("不在を登録"));
    assert!(page.body.contains("今日"));
    // The form is ready for today, all day: sending it is the second tap.
    let first = attribute_after(&page.body, "id=\"absence-first\"", "value");
    assert_eq!(first, today.to_string());
    assert!(page.body.contains("name=\"part\" value=\"all\" checked"));

    let sent = doctor
        .post(
            &app,
            "/calendar/absences",
            &[
                ("csrf", &page.csrf()),
                ("first_day", &today.to_string()),
                ("last_day", &today.to_string()),
                ("part", "all"),
                ("note", "学会"),
            ],
        )
        .await;
    assert!(
        sent.location().starts_with(&format!(
            "/calendar?month={}&done=absence_added",
            month_code(today)
        )),
        "{}",
        sent.location()
    );
    let shown = follow(&mut doctor, &app, &sent).await;
    assert!(shown.body.contains("不在を登録しました。"));
    assert!(
        shown.body.contains("川村 健一 不在（学会）"),
        "{}",
        shown.body
    );

    // Colleagues see it: on the group's calendar with the doctor's title.
    let mut colleague = Browser::signed_in(&app, OTHER_DOCTOR).await;
    let group_calendar = colleague
        .get(&app, &format!("/a/{HOST}/g/{doctors}/calendar"))
        .await;
    assert_eq!(group_calendar.status, StatusCode::OK);
    assert!(
        group_calendar.body.contains("川村 健一 先生 不在（学会）"),
        "{}",
        group_calendar.body
    );

    // A half day is one day: said at the field, with what was typed kept.
    let page = doctor.get(&app, "/calendar").await;
    let refused = doctor
        .post(
            &app,
            "/calendar/absences",
            &[
                ("csrf", &page.csrf()),
                ("first_day", &today.to_string()),
                ("last_day", &(today + Duration::days(2)).to_string()),
                ("part", "am"),
                ("note", "往診の調整中"),
            ],
        )
        .await;
    assert_eq!(refused.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(refused.body.contains("午前・午後の不在は1日だけです。"));
    assert!(refused.body.contains("value=\"往診の調整中\""));
    assert!(refused.body.contains("name=\"part\" value=\"am\" checked"));
    // A date that is not one.
    let refused = doctor
        .post(
            &app,
            "/calendar/absences",
            &[("csrf", &page.csrf()), ("first_day", "2026-02-30")],
        )
        .await;
    assert_eq!(refused.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(refused.body.contains("最初の日を日付で入れてください。"));

    // Withdrawn from the list of the month's own absences.
    let page = doctor
        .get(&app, &format!("/calendar?month={}", month_code(today)))
        .await;
    let action = attribute_after(&page.body, "id=\"absences\"", "action").replace("&amp;", "&");
    assert!(action.starts_with("/calendar/absences/"), "{action}");
    let done = doctor.post(&app, &action, &[("csrf", &page.csrf())]).await;
    let after = follow(&mut doctor, &app, &done).await;
    assert!(after.body.contains("不在を取り消しました。"));
    assert!(!after.body.contains("川村 健一 不在（学会）"));
    let left: i64 = sqlx::query_scalar("SELECT count(*) FROM core.absences WHERE note = '学会'")
        .fetch_one(app.db.db.pool())
        .await
        .unwrap();
    assert_eq!(left, 0);
}

/// The second Tuesday of the month after `day`'s.
fn second_tuesday_after(day: NaiveDate) -> NaiveDate {
    let next = calendar::month_of(day)
        .checked_add_months(chrono::Months::new(1))
        .unwrap();
    let mut d = next;
    while d.weekday() != Weekday::Tue {
        d = d.succ_opt().unwrap();
    }
    d + Duration::days(7)
}

#[tokio::test]
async fn a_monthly_event_is_added_changed_and_cancelled_for_a_day_on_the_group_calendar() {
    let app = TestApp::demo().await;
    let doctors = group_id(&app, DOCTORS).await;
    let mut owner = Browser::signed_in(&app, CLINIC_DOCTOR).await;
    let first = second_tuesday_after(calendar::today());
    let until = first + Duration::days(100);
    let page_path = format!("/a/{HOST}/g/{doctors}/calendar");
    let page = owner.get(&app, &page_path).await;
    assert_eq!(page.status, StatusCode::OK);
    assert!(page.body.contains("予定を追加"));
    let action = format!("{page_path}/events");

    // The end before the start: said at the times, what was typed kept.
    let refused = owner
        .post(
            &app,
            &action,
            &[
                ("csrf", &page.csrf()),
                ("title", "症例検討会"),
                ("category", "conference"),
                ("first_day", &first.to_string()),
                ("starts_at", "20:30"),
                ("ends_at", "19:00"),
                ("repeat", "monthly_nth"),
            ],
        )
        .await;
    assert_eq!(refused.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(refused
        .body
        .contains("終了の時刻は、開始より後にしてください。"));
    assert!(refused.body.contains("value=\"症例検討会\""));
    assert!(refused
        .body
        .contains("<option value=\"monthly_nth\" selected>"));

    let sent = owner
        .post(
            &app,
            &action,
            &[
                ("csrf", &page.csrf()),
                ("title", "症例検討会"),
                ("category", "conference"),
                ("first_day", &first.to_string()),
                ("starts_at", "19:00"),
                ("ends_at", "20:30"),
                ("repeat", "monthly_nth"),
                ("until", &until.to_string()),
                ("place", "みなと川医師会館"),
                ("notes", "症例は当日配布"),
            ],
        )
        .await;
    assert!(
        sent.location().starts_with(&format!(
            "{page_path}?month={}&done=event_added#day-{first}",
            month_code(first)
        )),
        "{}",
        sent.location()
    );
    let (id, rrule): (Uuid, String) =
        sqlx::query_as("SELECT id, rrule FROM calendar_events WHERE title = '症例検討会'")
            .fetch_one(&mut *app.tenant_tx(HOST).await)
            .await
            .unwrap();
    assert!(rrule.starts_with("FREQ=MONTHLY"), "{rrule}");
    assert!(rrule.contains("BYDAY=2TU"), "{rrule}");
    assert!(
        rrule.contains(&until.format("%Y%m%d").to_string()),
        "{rrule}"
    );

    // It is there on the second Tuesday of this month and of the next, with its repetition.
    let shown = follow(&mut owner, &app, &sent).await;
    assert!(shown.body.contains("予定を追加しました。"));
    assert!(shown.body.contains(&format!("id=\"event-{id}-{first}\"")));
    assert!(shown.body.contains("毎月 第2火曜"));
    assert!(shown.body.contains("19:00–20:30"));
    assert!(shown.body.contains("担当者会議"));
    let later = second_tuesday_after(first);
    let next = owner
        .get(&app, &format!("{page_path}?month={}", month_code(later)))
        .await;
    assert!(next.body.contains(&format!("id=\"event-{id}-{later}\"")));

    // A member sees it on their own calendar, linking to the group's.
    let mut member = Browser::signed_in(&app, HOSPITAL_DOCTOR).await;
    let mine = member
        .get(&app, &format!("/calendar?month={}", month_code(first)))
        .await;
    assert!(mine.body.contains("症例検討会"));
    assert!(mine.body.contains(&format!(
        "href=\"{page_path}?month={}#event-{id}-{first}\"",
        month_code(first)
    )));

    // The month after: that day alone is cancelled.
    let cancel = owner
        .post(
            &app,
            &format!("{page_path}/events/{id}/cancel"),
            &[
                ("csrf", &next.csrf()),
                ("day", &later.to_string()),
                ("month", &month_code(later)),
            ],
        )
        .await;
    let after = follow(&mut owner, &app, &cancel).await;
    assert!(after.body.contains("この日の予定を中止にしました。"));
    assert!(!after.body.contains(&format!("id=\"event-{id}-{later}\"")));
    let still = owner
        .get(&app, &format!("{page_path}?month={}", month_code(first)))
        .await;
    assert!(still.body.contains(&format!("id=\"event-{id}-{first}\"")));

    // Changed with the version read: someone else's change in between is said, and what was
    // typed stays; sending it again replaces it knowingly.
    // (Cancelling a day changed the event: its version is read again.)
    let version: i32 = sqlx::query_scalar("SELECT version FROM calendar_events WHERE id = $1")
        .bind(id)
        .fetch_one(&mut *app.tenant_tx(HOST).await)
        .await
        .unwrap();
    let edit_path = format!("{page_path}/events/{id}/edit");
    let form = owner.get(&app, &edit_path).await;
    assert_eq!(form.status, StatusCode::OK);
    assert!(form.body.contains("value=\"症例検討会\""));
    assert!(form
        .body
        .contains("<option value=\"monthly_nth\" selected>"));
    assert!(form
        .body
        .contains(&format!("name=\"version\" value=\"{version}\"")));
    let mut tx = app.tenant_tx(HOST).await;
    sqlx::query(
        "UPDATE calendar_events SET version = version + 1, title = '症例検討会（変更）' \
         WHERE id = $1",
    )
    .bind(id)
    .execute(&mut *tx)
    .await
    .unwrap();
    tx.commit().await.unwrap();
    let fields = |title: &'static str, version: String| {
        vec![
            ("title", title.to_owned()),
            ("category", "conference".to_owned()),
            ("first_day", first.to_string()),
            ("starts_at", "19:30".to_owned()),
            ("ends_at", "21:00".to_owned()),
            ("repeat", "monthly_nth".to_owned()),
            ("until", until.to_string()),
            ("version", version),
        ]
    };
    let send = |csrf: String, fields: Vec<(&'static str, String)>| {
        let mut all: Vec<(&str, String)> = vec![("csrf", csrf)];
        all.extend(fields);
        let mut b = owner.clone();
        let (app, edit_path) = (&app, &edit_path);
        async move {
            let pairs: Vec<(&str, &str)> = all.iter().map(|(k, v)| (*k, v.as_str())).collect();
            b.post(app, edit_path, &pairs).await
        }
    };
    let conflict = send(
        form.csrf(),
        fields("症例検討会（19時半から）", version.to_string()),
    )
    .await;
    assert_eq!(conflict.status, StatusCode::CONFLICT);
    assert!(conflict.body.contains("他の人が先に変更しました"));
    assert!(conflict.body.contains("value=\"症例検討会（19時半から）\""));
    assert!(conflict.body.contains("症例検討会（変更）"));
    let newer = attribute_after(&conflict.body, "name=\"version\"", "value").to_owned();
    assert_eq!(newer, (version + 1).to_string());
    let saved = send(conflict.csrf(), fields("症例検討会（19時半から）", newer)).await;
    assert_eq!(saved.status, StatusCode::SEE_OTHER, "{}", saved.body);
    assert!(saved.location().contains("done=event_saved"));
    let title: String = sqlx::query_scalar("SELECT title FROM calendar_events WHERE id = $1")
        .bind(id)
        .fetch_one(&mut *app.tenant_tx(HOST).await)
        .await
        .unwrap();
    assert_eq!(title, "症例検討会（19時半から）");

    // Someone who did not write it and does not own the group may not change it.
    assert!(member.get(&app, &edit_path).await.is_not_found());
}

#[tokio::test]
async fn a_non_member_gets_the_404_page_for_a_groups_calendar_and_rotation() {
    let app = TestApp::demo().await;
    let doctors = group_id(&app, DOCTORS).await;
    let mut nurse = Browser::signed_in(&app, NURSE).await;
    for path in [
        format!("/a/{HOST}/g/{doctors}/calendar"),
        format!("/a/{HOST}/g/{doctors}/duty"),
        format!("/a/{HOST}/g/{doctors}/duty?month=2027-01"),
        format!("/a/{HOST}/g/{}/calendar", Uuid::nil()),
        format!("/a/{HOST}/g/not-a-group/duty"),
    ] {
        let page = nurse.get(&app, &path).await;
        assert!(page.is_not_found(), "{path}: {} {}", page.status, page.body);
    }
    // Her own calendar shows nothing of the group, and adding to it is refused the same way.
    let own = nurse.get(&app, "/calendar").await;
    assert_eq!(own.status, StatusCode::OK);
    assert!(!own.body.contains(DOCTORS));
    let refused = nurse
        .post(
            &app,
            &format!("/a/{HOST}/g/{doctors}/calendar/events"),
            &[
                ("csrf", &own.csrf()),
                ("title", "のぞき見"),
                ("first_day", &calendar::today().to_string()),
            ],
        )
        .await;
    assert!(
        refused.is_not_found(),
        "{} {}",
        refused.status,
        refused.body
    );
    let draft = nurse
        .post(
            &app,
            &format!("/a/{HOST}/g/{doctors}/duty/draft"),
            &[("csrf", &own.csrf())],
        )
        .await;
    assert!(draft.is_not_found(), "{} {}", draft.status, draft.body);
}

#[tokio::test]
async fn forms_without_their_token_change_nothing_and_unreadable_months_are_said() {
    let app = TestApp::demo().await;
    let mut doctor = Browser::signed_in(&app, CLINIC_DOCTOR).await;
    let today = calendar::today().to_string();
    let counts = || async {
        let absences: i64 = sqlx::query_scalar("SELECT count(*) FROM core.absences")
            .fetch_one(app.db.db.pool())
            .await
            .unwrap();
        let feeds: i64 = sqlx::query_scalar("SELECT count(*) FROM core.calendar_feeds")
            .fetch_one(app.db.db.pool())
            .await
            .unwrap();
        (absences, feeds)
    };
    let before = counts().await;
    let refused = doctor
        .post(
            &app,
            "/calendar/absences",
            &[("first_day", &today), ("part", "all")],
        )
        .await;
    assert_eq!(refused.status, StatusCode::FORBIDDEN);
    let refused = doctor
        .post(&app, "/calendar/feeds", &[("with_patient_names", "1")])
        .await;
    assert_eq!(refused.status, StatusCode::FORBIDDEN);
    assert_eq!(counts().await, before);

    // Months that are not ones: this month, with a message, never the 500 page.
    let doctors = group_id(&app, DOCTORS).await;
    for path in [
        "/calendar",
        &format!("/a/{HOST}/g/{doctors}/calendar"),
        &format!("/a/{HOST}/g/{doctors}/duty"),
    ] {
        for month in ["2026-13", "0000-01", "%FF", "9999-99", "2026-1-1", "abc"] {
            let page = doctor.get(&app, &format!("{path}?month={month}")).await;
            assert_eq!(
                page.status,
                StatusCode::UNPROCESSABLE_ENTITY,
                "{path}?month={month}"
            );
            assert!(page
                .body
                .contains("月の指定が読み取れなかったため、今月を表示しています。"));
        }
        let page = doctor.get(&app, &format!("{path}?month=2027-01")).await;
        assert_eq!(page.status, StatusCode::OK);
        assert!(page.body.contains("2027年1月"));
    }
    // In English too.
    let mut english = Browser::signed_in(&app, CLINIC_DOCTOR)
        .await
        .with_header("accept-language", "en");
    let page = english.get(&app, "/calendar?month=2027-01").await;
    assert_eq!(page.status, StatusCode::OK);
    for words in [
        "January 2027",
        "Enter an absence",
        "Subscribe to your calendar",
        "Next month",
    ] {
        assert!(page.body.contains(words), "{words}");
    }
    let page = english
        .get(&app, &format!("/a/{HOST}/g/{doctors}/duty"))
        .await;
    assert!(page.body.contains("On-call rotation"));
    assert!(page.body.contains("Rotation settings"));
    // January 2027: 元日 and 成人の日 are named.
    let page = doctor.get(&app, "/calendar?month=2027-01").await;
    assert!(page.body.contains("元日"));
    assert!(page.body.contains("成人の日"));
}

#[tokio::test]
async fn a_feed_made_on_the_page_serves_the_calendar_at_its_address_until_revoked() {
    let app = TestApp::demo().await;
    let doctors = group_id(&app, DOCTORS).await;
    let mut doctor = Browser::signed_in(&app, CLINIC_DOCTOR).await;
    let page_path = format!("/a/{HOST}/g/{doctors}/calendar");
    let page = doctor.get(&app, &page_path).await;
    let day = calendar::today() + Duration::days(3);
    let sent = doctor
        .post(
            &app,
            &format!("{page_path}/events"),
            &[
                ("csrf", &page.csrf()),
                ("title", "連携医ミーティング"),
                ("category", "conference"),
                ("first_day", &day.to_string()),
            ],
        )
        .await;
    assert_eq!(sent.status, StatusCode::SEE_OTHER, "{}", sent.body);

    let page = doctor.get(&app, "/calendar").await;
    assert!(page.body.contains("カレンダーを購読"));
    assert!(page.body.contains("患者名を含める"));
    // Off unless ticked.
    assert!(!page
        .body
        .contains("name=\"with_patient_names\" value=\"1\" checked"));
    let made = doctor
        .post(&app, "/calendar/feeds", &[("csrf", &page.csrf())])
        .await;
    assert_eq!(made.status, StatusCode::OK, "{}", made.body);
    assert_eq!(made.header(http::header::CACHE_CONTROL), "no-store");
    assert!(made
        .body
        .contains("このアドレスが表示されるのは今回だけです。"));
    let url = attribute_after(&made.body, "id=\"feed-url\"", "value").to_owned();
    let path = url
        .strip_prefix("http://musubi.test")
        .unwrap_or_else(|| panic!("an address of this site: {url}"))
        .to_owned();
    assert!(
        path.starts_with("/calendar/feed/") && path.ends_with(".ics"),
        "{path}"
    );
    assert!(made.body.contains("webcal://musubi.test/calendar/feed/"));
    assert!(made.body.contains("患者名なし"));

    // A calendar app fetches it without a session.
    let mut app_client = Browser::new();
    let (status, headers, body) = app_client.fetch(&app, &path).await;
    assert_eq!(status, StatusCode::OK);
    assert!(headers[CONTENT_TYPE]
        .to_str()
        .unwrap()
        .starts_with("text/calendar"));
    let text = String::from_utf8(body.to_vec()).unwrap();
    assert!(text.contains("BEGIN:VCALENDAR"));
    assert!(text.contains("連携医ミーティング"), "{text}");

    // Shown once: the page does not show it again.
    let again = doctor.get(&app, "/calendar").await;
    assert!(!again.body.contains(&path));
    let revoke = attribute_after(&again.body, "id=\"feeds-title\"", "action").to_owned();
    assert!(revoke.ends_with("/revoke"), "{revoke}");
    let gone = doctor.post(&app, &revoke, &[("csrf", &again.csrf())]).await;
    let after = follow(&mut doctor, &app, &gone).await;
    assert!(after.body.contains("購読用のアドレスを使えなくしました。"));
    let (status, _, _) = app_client.fetch(&app, &path).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

/// The doctors' user ids, as the settings form names its fields.
async fn doctor_ids(app: &TestApp) -> Vec<String> {
    let mut ids = Vec::new();
    for email in [CLINIC_DOCTOR, OTHER_DOCTOR, HOSPITAL_DOCTOR, OONO, MATSUI] {
        ids.push(app.user_id(email).await.to_string());
    }
    ids
}

#[tokio::test]
async fn the_rotation_is_set_up_drafted_published_and_swapped_on_its_page() {
    let app = TestApp::demo().await;
    let doctors = group_id(&app, DOCTORS).await;
    let duty = format!("/a/{HOST}/g/{doctors}/duty");
    // The demo publishes this month and the next: the month after is drafted here.
    let first = calendar::month_of(calendar::today())
        .checked_add_months(chrono::Months::new(2))
        .unwrap();
    let month = month_code(first);
    let mut owner = Browser::signed_in(&app, CLINIC_DOCTOR).await;

    // This month, as the demo published it, linked to the rota topic.
    let page = owner.get(&app, &duty).await;
    assert_eq!(page.status, StatusCode::OK);
    assert!(page.body.contains("公開済み"));
    assert!(page.body.contains("この月の話し合い："));
    assert!(page.body.contains("当番の設定"));
    let ids = doctor_ids(&app).await;
    for id in &ids {
        assert!(
            page.body
                .contains(&format!("name=\"on\" value=\"{id}\" checked")),
            "{id} takes part"
        );
    }
    // A published month is changed slot by slot, never drafted again.
    assert!(!page.body.contains("下書きを作成"));
    let kawamura = ids[0].clone();
    let takahashi = ids[1].clone();
    let mut fields: Vec<(String, String)> = vec![
        ("csrf".into(), page.csrf()),
        ("month".into(), month.clone()),
        ("weekday_kind".into(), "night".into()),
        ("weekend_kind".into(), "day".into()),
        ("weekend_kind".into(), "night".into()),
        ("saturday_weekend".into(), "1".into()),
        (format!("contact_{kawamura}"), "090-1111-2222".into()),
        (format!("max_{takahashi}"), "abc".into()),
    ];
    for id in &ids {
        fields.push(("on".into(), id.clone()));
    }
    let send = |b: &Browser, f: Vec<(String, String)>| {
        let mut b = b.clone();
        let app = &app;
        let path = format!("{duty}/settings");
        async move {
            let pairs: Vec<(&str, &str)> =
                f.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
            b.post(app, &path, &pairs).await
        }
    };
    // A maximum that is not a number: said at that doctor, nothing saved.
    let refused = send(&owner, fields.clone()).await;
    assert_eq!(refused.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(refused
        .body
        .contains("月の上限は、1から62までの数で入れてください。"));
    assert!(refused.body.contains("value=\"090-1111-2222\""));
    fields.retain(|(k, _)| k != &format!("max_{takahashi}"));
    let saved = send(&owner, fields).await;
    assert_eq!(saved.status, StatusCode::SEE_OTHER, "{}", saved.body);
    assert!(saved.location().contains("done=duty_settings"));

    // Drafted: the owner sees it, a member does not yet.
    let month_page = format!("{duty}?month={month}");
    let page = owner.get(&app, &month_page).await;
    assert!(page.body.contains("この月の当番表はまだありません。"));
    let drafted = owner
        .post(
            &app,
            &format!("{duty}/draft"),
            &[("csrf", &page.csrf()), ("month", &month)],
        )
        .await;
    let page = follow(&mut owner, &app, &drafted).await;
    assert!(page.body.contains("下書きを作りました。"), "{}", page.body);
    assert!(page.body.contains("下書きを作り直す"));
    assert!(page.body.contains("duty-slot"));
    // The owner's group calendar marks that month's duty as a draft.
    let calendar = owner
        .get(
            &app,
            &duty.replace("/duty", &format!("/calendar?month={month}")),
        )
        .await;
    assert!(
        calendar.body.contains("cal-entry--draft"),
        "{}",
        calendar.body
    );
    let mut member = Browser::signed_in(&app, OTHER_DOCTOR).await;
    let hidden = member.get(&app, &month_page).await;
    assert!(hidden
        .body
        .contains("この月の当番表は、まだ公開されていません。"));
    assert!(!hidden.body.contains("duty-slot"));
    // Drafting again without saying so keeps the draft.
    let again = owner
        .post(
            &app,
            &format!("{duty}/draft"),
            &[("csrf", &page.csrf()), ("month", &month)],
        )
        .await;
    assert!(
        again.location().contains("error=confirm_redraft"),
        "{}",
        again.location()
    );
    let again = owner
        .post(
            &app,
            &format!("{duty}/draft"),
            &[("csrf", &page.csrf()), ("month", &month), ("replace", "1")],
        )
        .await;
    assert!(
        again.location().contains("done=drafted"),
        "{}",
        again.location()
    );

    // Published, linked to a topic of the group.
    let topic: Uuid = sqlx::query_scalar(
        "SELECT t.id FROM topics t WHERE t.group_id = $1 ORDER BY t.created_at LIMIT 1",
    )
    .bind(doctors)
    .fetch_one(&mut *app.tenant_tx(HOST).await)
    .await
    .unwrap();
    let published = owner
        .post(
            &app,
            &format!("{duty}/publish"),
            &[
                ("csrf", &page.csrf()),
                ("month", &month),
                ("topic_id", &topic.to_string()),
            ],
        )
        .await;
    let page = follow(&mut owner, &app, &published).await;
    assert!(page.body.contains("当番表を公開しました。"));
    assert!(page.body.contains(&format!("href=\"/a/{HOST}/t/{topic}\"")));
    let shown = member.get(&app, &month_page).await;
    assert!(shown.body.contains("公開済み"));
    assert!(shown.body.contains("duty-slot"));
    assert!(shown.body.contains("川村 健一 先生"));

    // A swap: 高橋 asks 川村 to take one of his slots; 川村 accepts.
    let takahashi_id = app.user_id(OTHER_DOCTOR).await;
    let kawamura_id = app.user_id(CLINIC_DOCTOR).await;
    let (day, kind): (NaiveDate, String) = sqlx::query_as(
        "SELECT day, kind FROM duties WHERE group_id = $1 AND user_id = $2 AND day >= $3 \
         ORDER BY day LIMIT 1",
    )
    .bind(doctors)
    .bind(takahashi_id)
    .bind(first)
    .fetch_one(&mut *app.tenant_tx(HOST).await)
    .await
    .unwrap();
    assert!(shown.body.contains("交代を依頼"));
    let asked = member
        .post(
            &app,
            &format!("{duty}/swaps"),
            &[
                ("csrf", &shown.csrf()),
                ("month", &month),
                ("slot", &format!("{day}|{kind}")),
                ("to_user_id", &kawamura),
                ("other", ""),
                ("note", "学会のため"),
            ],
        )
        .await;
    let after = follow(&mut member, &app, &asked).await;
    assert!(
        after.body.contains("交代を依頼しました。"),
        "{}",
        after.body
    );
    assert!(after.body.contains("取り下げる"));
    let page = owner.get(&app, &month_page).await;
    assert!(page.body.contains("高橋 誠 先生から"), "{}", page.body);
    assert!(page.body.contains("メモ：学会のため"));
    let swap: Uuid = sqlx::query_scalar("SELECT id FROM duty_swaps WHERE status = 'requested'")
        .fetch_one(&mut *app.tenant_tx(HOST).await)
        .await
        .unwrap();
    let accepted = owner
        .post(
            &app,
            &format!("{duty}/swaps/{swap}"),
            &[
                ("csrf", &page.csrf()),
                ("month", &month),
                ("answer", "accept"),
            ],
        )
        .await;
    let page = follow(&mut owner, &app, &accepted).await;
    assert!(page.body.contains("交代を引き受けました。"));
    let holder: Option<Uuid> = sqlx::query_scalar(
        "SELECT user_id FROM duties WHERE group_id = $1 AND day = $2 AND kind = $3",
    )
    .bind(doctors)
    .bind(day)
    .bind(&kind)
    .fetch_one(&mut *app.tenant_tx(HOST).await)
    .await
    .unwrap();
    assert_eq!(holder, Some(kawamura_id.uuid()));

    // 本日の当番医 on the group page (this month, as the demo published it), with the
    // contact saved above when it is 川村.
    let today = calendar::today();
    let on_call: Vec<(Option<Uuid>, String)> = sqlx::query_as(
        "SELECT user_id, kind FROM duties WHERE group_id = $1 AND day = $2 ORDER BY kind",
    )
    .bind(doctors)
    .bind(today)
    .fetch_all(&mut *app.tenant_tx(HOST).await)
    .await
    .unwrap();
    let group_page = member.get(&app, &format!("/a/{HOST}/g/{doctors}")).await;
    assert!(
        group_page.body.contains("本日の当番医"),
        "{}",
        group_page.body
    );
    for (holder, kind) in on_call {
        let Some(holder) = holder else { continue };
        let name: String = sqlx::query_scalar("SELECT name FROM core.users WHERE id = $1")
            .bind(holder)
            .fetch_one(app.db.db.pool())
            .await
            .unwrap();
        assert!(group_page.body.contains(&format!("{name} 先生")), "{name}");
        assert!(group_page
            .body
            .contains(if kind == "night" { "夜間" } else { "日中" }));
        if holder == kawamura_id.uuid() {
            assert!(group_page.body.contains("href=\"tel:09011112222\""));
        }
    }
    // A group without a rotation shows nothing of the kind.
    let forum = group_id(&app, "多職種連携の会").await;
    let forum_page = owner.get(&app, &format!("/a/{HOST}/g/{forum}")).await;
    assert!(!forum_page.body.contains("本日の当番医"));
}
