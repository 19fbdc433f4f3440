//! A personal calendar feed read by someone else's iCalendar reader: Python's `icalendar` with
//! `recurring-ical-events` (`tests/data/feed_events.py`, run by the Python `cargo xtask setup
//! test` makes) parses the feed and expands its series, and must find exactly the occurrences
//! the person's own calendar shows for the same days (their groups' events, their own duty and
//! absences), with Asia/Tokyo times, all-day days, COUNT, UNTIL and cancelled occurrences as
//! Musubi means them, nothing of the groups they are not in, and a patient's name only in a
//! feed that asks for it.

use chrono::{Datelike, Duration, Months, NaiveDate, NaiveTime, Weekday};
use musubi_domain::audit::RequestMeta;
use musubi_domain::calendar::{self, AbsenceSpan, CalendarView, EventCategory, EventInput};
use musubi_domain::sessions::Viewer;
use musubi_domain::types::GroupId;
use musubi_domain::{Actor, Services, Tenant};
use musubi_test_support::demo::{
    ADMIN, CLINIC_DOCTOR, HOST, NURSE, OTHER, OTHER_DOCTOR, OTHER_NURSE,
};
use musubi_test_support::TestApp;
use std::collections::BTreeSet;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use uuid::Uuid;

/// The reader: reads a feed on stdin, prints one JSON line per occurrence.
const FEED_EVENTS: &str = include_str!("../../data/feed_events.py");
/// Names the Python to run it with (`cargo xtask test` sets it).
const PYTHON_ENV: &str = "MUSUBI_TEST_PYTHON";

/// 川村's groups: the doctors' group (his), the forum (the administrator's) and his patient
/// group 山田さん. Not his: さくら台's forum and its patient group 伊藤さん.
const DOCTORS: &str = "みなと川 連携医グループ";
const FORUM: &str = "多職種連携の会";
const YAMADA: &str = "山田 太郎さん（85歳・在宅酸素）";
const SAKURA_FORUM: &str = "さくら台 在宅医療連絡会";
const ITO: &str = "伊藤 正男さん（80歳・心不全）";

/// The Python with the reader's packages: `MUSUBI_TEST_PYTHON`, else the one `cargo xtask setup
/// test` makes under the workspace's `target/`. Missing, the test fails: it never passes
/// without having read the feed.
fn python() -> PathBuf {
    let python = match std::env::var_os(PYTHON_ENV).filter(|v| !v.is_empty()) {
        Some(p) => PathBuf::from(p),
        // crates/server → the workspace.
        None => Path::new(env!("CARGO_MANIFEST_DIR"))
            .ancestors()
            .nth(2)
            .unwrap()
            .join("target/test-python/bin/python"),
    };
    assert!(
        python.is_file(),
        "no Python for the calendar feed test at {} ({PYTHON_ENV} {}): run `cargo xtask setup \
         test`, which makes one with icalendar and recurring-ical-events",
        python.display(),
        if std::env::var_os(PYTHON_ENV).is_some() {
            "is set"
        } else {
            "is not set"
        },
    );
    python
}

/// One occurrence as the reader prints it or as the calendar says it must be:
/// (uid, summary, start, end, tzid, categories).
type Row = (
    String,
    String,
    String,
    Option<String>,
    Option<String>,
    Vec<String>,
);

/// The occurrences the third-party reader, run by `python`, finds in `ics` on the days
/// `from..=to`.
fn read_feed(python: &Path, ics: &str, from: NaiveDate, to: NaiveDate) -> Vec<Row> {
    let mut child = Command::new(python)
        .arg("-c")
        .arg(FEED_EVENTS)
        .arg(from.to_string())
        .arg(to.to_string())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| {
            panic!(
                "cannot run {}: {e}; run `cargo xtask setup test`",
                python.display()
            )
        });
    // The reader reads all of stdin before it writes anything.
    child
        .stdin
        .take()
        .unwrap()
        .write_all(ics.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        !stderr.contains("ModuleNotFoundError"),
        "{} lacks the reader's packages: run `cargo xtask setup test`\n{stderr}",
        python.display()
    );
    assert!(
        out.status.success(),
        "the feed reader refused the feed ({}): {stderr}\nThe feed:\n{ics}",
        out.status
    );
    let text = String::from_utf8(out.stdout).unwrap();
    let mut rows: Vec<Row> = text
        .lines()
        .map(|line| {
            let v: serde_json::Value = serde_json::from_str(line).unwrap();
            let text = |key: &str| v[key].as_str().map(str::to_owned);
            (
                text("uid").unwrap(),
                text("summary").unwrap(),
                text("start").unwrap(),
                text("end"),
                text("tzid"),
                v["categories"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|c| c.as_str().unwrap().to_owned())
                    .collect(),
            )
        })
        .collect();
    rows.sort();
    rows
}

fn category_label(code: &str) -> &'static str {
    match code {
        "absence" => "不在",
        "duty" => "当番",
        "visit" => "訪問",
        "conference" => "担当者会議",
        _ => "その他",
    }
}

/// A date-time in Asia/Tokyo as ISO 8601 with its offset, as a reader must see it.
fn tokyo(day: NaiveDate, time: NaiveTime) -> String {
    format!("{day}T{}+09:00", time.format("%H:%M:%S"))
}

/// What `me`'s feed must hold for the days of `view`, the calendar `me` sees: every
/// occurrence of their groups' events (a patient group's under its category only, unless
/// `named`), their own published duty and their own absences; not others' duty or absences.
fn expected(view: &CalendarView, me: &Viewer, named: bool) -> Vec<Row> {
    let me = me.user().id;
    let mut rows = Vec::new();
    for o in &view.occurrences {
        let e = &o.event;
        let category = category_label(&e.category);
        let summary = if o.patient_group && !named {
            category.to_owned()
        } else {
            format!("{}（{}）", e.title, o.group_name)
        };
        let (start, end, tzid) = match (e.starts_at, e.ends_at) {
            (Some(s), Some(t)) => (
                tokyo(o.first_day, s),
                tokyo(o.last_day, t),
                Some("Asia/Tokyo".to_owned()),
            ),
            _ => (
                o.first_day.to_string(),
                (o.last_day + Duration::days(1)).to_string(),
                None,
            ),
        };
        rows.push((
            format!("event-{}@musubi", e.id),
            summary,
            start,
            Some(end),
            tzid,
            vec![category.to_owned()],
        ));
    }
    for d in view.duties.iter().filter(|d| d.duty.user_id == Some(me)) {
        let duty = &d.duty;
        let kind = if duty.kind == "night" {
            "夜間"
        } else {
            "日中"
        };
        rows.push((
            format!("duty-{}-{}-{}@musubi", duty.group_id, duty.day, duty.kind),
            format!("当番（{kind}）{}", d.group_name),
            duty.day.to_string(),
            Some((duty.day + Duration::days(1)).to_string()),
            None,
            vec!["当番".to_owned()],
        ));
    }
    for a in view.absences.iter().filter(|a| a.user_id == me) {
        let part = match a.part.as_str() {
            "am" => "（午前）",
            "pm" => "（午後）",
            _ => "",
        };
        rows.push((
            format!("absence-{}@musubi", a.id),
            format!("不在{part}"),
            a.first_day.to_string(),
            Some((a.last_day + Duration::days(1)).to_string()),
            None,
            vec!["不在".to_owned()],
        ));
    }
    rows.sort();
    rows
}

/// What differs between two sets of occurrences, for a failure message.
fn difference(found: &[Row], wanted: &[Row]) -> String {
    let found: BTreeSet<&Row> = found.iter().collect();
    let wanted: BTreeSet<&Row> = wanted.iter().collect();
    let mut out = String::new();
    for r in wanted.difference(&found) {
        out.push_str(&format!("  missing from the feed: {r:?}\n"));
    }
    for r in found.difference(&wanted) {
        out.push_str(&format!("  in the feed, not on the calendar: {r:?}\n"));
    }
    out
}

/// The occurrences of one event: (start, end).
fn of(rows: &[Row], event: Uuid) -> Vec<(String, Option<String>)> {
    let uid = format!("event-{event}@musubi");
    rows.iter()
        .filter(|r| r.0 == uid)
        .map(|r| (r.2.clone(), r.3.clone()))
        .collect()
}

fn t(h: u32, m: u32) -> NaiveTime {
    NaiveTime::from_hms_opt(h, m, 0).unwrap()
}

/// The first `weekday` on or after `day`.
fn on_or_after(day: NaiveDate, weekday: Weekday) -> NaiveDate {
    let mut day = day;
    while day.weekday() != weekday {
        day = day.succ_opt().unwrap();
    }
    day
}

/// The second Tuesday of `day`'s month.
fn second_tuesday(day: NaiveDate) -> NaiveDate {
    on_or_after(calendar::month_of(day), Weekday::Tue) + Duration::days(7)
}

fn input(
    category: EventCategory,
    title: &str,
    days: (NaiveDate, NaiveDate),
    times: Option<(NaiveTime, NaiveTime)>,
    rrule: Option<&str>,
) -> EventInput {
    EventInput {
        category,
        title: title.to_owned(),
        first_day: days.0,
        last_day: days.1,
        starts_at: times.map(|t| t.0),
        ends_at: times.map(|t| t.1),
        rrule: rrule.map(str::to_owned),
        place: String::new(),
        notes: String::new(),
    }
}

async fn group_named(app: &TestApp, slug: &str, name: &str) -> GroupId {
    let id: Uuid = sqlx::query_scalar("SELECT id FROM groups WHERE name = $1")
        .bind(name)
        .fetch_one(&mut *app.tenant_tx(slug).await)
        .await
        .unwrap();
    id.into()
}

async fn create(
    s: &Services,
    who: &Viewer,
    tenant: &Tenant,
    meta: &RequestMeta,
    group: GroupId,
    input: &EventInput,
) -> Uuid {
    match s
        .create_event(&Actor::new(who, tenant, meta), group, input)
        .await
    {
        Ok(id) => id,
        Err(e) => panic!("creating {:?}: {e:?}", input.title),
    }
}

#[tokio::test]
async fn a_third_party_reader_finds_in_the_feed_exactly_what_the_calendar_shows() {
    // Before anything else: without the reader the test cannot pass.
    let python = python();
    let app = TestApp::demo().await;
    let s = app.services();
    let meta = RequestMeta::new("192.0.2.41", "calendar feed test");
    let host = s.resolve_tenant(HOST).await.unwrap();
    let other = s.resolve_tenant(OTHER).await.unwrap();
    let operator = app.operator();
    let kawamura = operator.act_as(CLINIC_DOCTOR).await.unwrap();
    let admin = operator.act_as(ADMIN).await.unwrap();
    let nurse = operator.act_as(NURSE).await.unwrap();
    let other_nurse = operator.act_as(OTHER_NURSE).await.unwrap();
    let other_doctor = operator.act_as(OTHER_DOCTOR).await.unwrap();
    let doctors = group_named(&app, HOST, DOCTORS).await;
    let forum = group_named(&app, HOST, FORUM).await;
    let yamada = group_named(&app, HOST, YAMADA).await;
    let sakura_forum = group_named(&app, OTHER, SAKURA_FORUM).await;
    let ito = group_named(&app, OTHER, ITO).await;

    // The days compared: next month from its first day, as long as a calendar shows at once
    // (inside the feed's 3 months back and 12 ahead; the demo published next month's rota).
    let from = calendar::month_of(calendar::today())
        .checked_add_months(Months::new(1))
        .unwrap();
    let to = from + Duration::days(calendar::MAX_RANGE_DAYS - 1);

    // Weekly on Mondays at 14:00, six times, starting two weeks before the days compared: the
    // third, fifth and sixth fall inside them, the fourth is cancelled, no seventh.
    let monday = on_or_after(from - Duration::days(14), Weekday::Mon);
    let weekly = create(
        &s,
        &kawamura,
        &host,
        &meta,
        doctors,
        &input(
            EventCategory::Conference,
            "退院調整カンファ",
            (monday, monday),
            Some((t(14, 0), t(15, 30))),
            Some("FREQ=WEEKLY;COUNT=6"),
        ),
    )
    .await;
    let cancelled = monday + Duration::days(21);
    s.cancel_occurrence(&Actor::new(&kawamura, &host, &meta), weekly, cancelled)
        .await
        .unwrap();
    // Three days, all day (the forum's, by its administrator).
    let course = (from + Duration::days(20), from + Duration::days(22));
    let seminar = create(
        &s,
        &admin,
        &host,
        &meta,
        forum,
        &input(EventCategory::Other, "在宅医療 研修会", course, None, None),
    )
    .await;
    // The second Tuesday of each month at 7:30 (22:30 UTC the day before), until the next
    // month's: two, not the third that falls inside the days compared too.
    let first_tuesday = second_tuesday(from);
    let last_tuesday = second_tuesday(from + Months::new(1));
    let third_tuesday = second_tuesday(from + Months::new(2));
    assert!(third_tuesday <= to);
    let monthly = create(
        &s,
        &kawamura,
        &host,
        &meta,
        doctors,
        &input(
            EventCategory::Other,
            "早朝 抄読会",
            (first_tuesday, first_tuesday),
            Some((t(7, 30), t(8, 30))),
            Some(&format!(
                "FREQ=MONTHLY;BYDAY=2TU;UNTIL={}",
                last_tuesday.format("%Y%m%d")
            )),
        ),
    )
    .await;
    // A visit in his patient group, entered by the nurse.
    let visit_day = from + Duration::days(5);
    let mut visit = input(
        EventCategory::Visit,
        "褥瘡処置の確認",
        (visit_day, visit_day),
        Some((t(10, 0), t(10, 30))),
        None,
    );
    visit.place = "青葉町 山田様宅".to_owned();
    let visit = create(&s, &nurse, &host, &meta, yamada, &visit).await;
    // Groups he is not in.
    let elsewhere = create(
        &s,
        &other_nurse,
        &other,
        &meta,
        sakura_forum,
        &input(
            EventCategory::Conference,
            "さくら台 連絡会議",
            (visit_day, visit_day),
            Some((t(18, 0), t(19, 0))),
            None,
        ),
    )
    .await;
    let not_his_patient = create(
        &s,
        &other_doctor,
        &other,
        &meta,
        ito,
        &input(
            EventCategory::Visit,
            "伊藤さん 定期往診",
            (visit_day, visit_day),
            Some((t(9, 0), t(9, 30))),
            Some("FREQ=WEEKLY;COUNT=4"),
        ),
    )
    .await;
    // An afternoon off of his own (the demo gave him a day next month too).
    let afternoon = from + Duration::days(40);
    let absence = s
        .add_absence(
            &Actor::new(&kawamura, &host, &meta),
            afternoon,
            afternoon,
            AbsenceSpan::Afternoon,
            "",
        )
        .await
        .unwrap();

    let view = s.calendar(&kawamura, &meta, from, to, None).await.unwrap();
    let actor = Actor::new(&kawamura, &host, &meta);
    let (_, plain) = s.create_feed(&actor, false).await.unwrap();
    let (_, named) = s.create_feed(&actor, true).await.unwrap();

    for (token, with_names) in [(&plain, false), (&named, true)] {
        let ics = s.feed_ics(token, &meta).await.unwrap().expect("a feed");
        let found = read_feed(&python, &ics, from, to);
        let wanted = expected(&view, &kawamura, with_names);
        assert!(
            found == wanted,
            "with patient names: {with_names}\n{}",
            difference(&found, &wanted)
        );

        // What went in, as the reader sees it.
        assert_eq!(
            of(&found, weekly),
            [14, 28, 35]
                .map(|d| {
                    let day = monday + Duration::days(d);
                    (tokyo(day, t(14, 0)), Some(tokyo(day, t(15, 30))))
                })
                .to_vec(),
            "the weekly series: COUNT=6 from two weeks before, the fourth cancelled"
        );
        assert!(!found
            .iter()
            .any(|r| r.2.starts_with(&cancelled.to_string())
                && r.0 == format!("event-{weekly}@musubi")));
        assert_eq!(
            of(&found, seminar),
            [(
                course.0.to_string(),
                Some((course.1 + Duration::days(1)).to_string())
            )],
            "three days, all day: DTEND is the day after the last"
        );
        assert_eq!(
            of(&found, monthly),
            [first_tuesday, last_tuesday]
                .map(|day| (tokyo(day, t(7, 30)), Some(tokyo(day, t(8, 30)))))
                .to_vec(),
            "the second Tuesdays until UNTIL, not {third_tuesday}"
        );
        for r in found.iter().filter(|r| r.2.contains('T')) {
            assert!(r.2.ends_with("+09:00"), "{r:?}");
            assert_eq!(r.4.as_deref(), Some("Asia/Tokyo"), "{r:?}");
        }
        for r in found.iter().filter(|r| !r.2.contains('T')) {
            assert_eq!(r.4, None, "an all-day entry has no time zone: {r:?}");
        }
        for id in [elsewhere, not_his_patient] {
            assert!(of(&found, id).is_empty(), "{id}");
            assert!(!ics.contains(&id.to_string()));
        }
        for title in ["さくら台 連絡会議", "伊藤"] {
            assert!(!ics.contains(title), "{title}");
        }
        assert!(found.iter().any(|r| r.0.starts_with("duty-")
            && r.5 == ["当番"]
            && r.1.starts_with("当番（")
            && r.1.ends_with(DOCTORS)));
        assert!(found
            .iter()
            .any(|r| r.0 == format!("absence-{absence}@musubi") && r.1 == "不在（午後）"));

        // The patient group's visit: under its category only, unless the feed asks for names.
        let summaries: Vec<&str> = found
            .iter()
            .filter(|r| r.0 == format!("event-{visit}@musubi"))
            .map(|r| r.1.as_str())
            .collect();
        if with_names {
            assert_eq!(summaries, [format!("褥瘡処置の確認（{YAMADA}）")]);
        } else {
            assert_eq!(summaries, ["訪問"]);
            for secret in ["褥瘡処置の確認", "山田", "青葉町"] {
                assert!(
                    !found.iter().any(|r| r.1.contains(secret)) && !ics.contains(secret),
                    "{secret}"
                );
            }
        }
    }
}
