//! Calendars through the services, on the demo data: group events (who sees them, in which
//! association, recurrence across a month boundary, cancelled occurrences, who may change
//! them, refused input, archived groups), people's absences (who sees them, half days, the
//! audit log), the on-call rotation of the collaborating-doctor group (drafted around Golden
//! Week and absences, seen by owners only until published, today's doctor, swaps and
//! exchanges, two answers to one swap at once, crossed exchanges accepted at once) and personal
//! iCalendar feeds (what they hold, patient names only when asked for, revoked and junk
//! tokens). The demo's own calendar (events, absences, this month's and next month's published
//! rotation) is there too: tests look at what they made, or clear the demo's rotation first.

use chrono::{Datelike, Duration, Months, NaiveDate, NaiveTime, Weekday};
use musubi_db::calendar::{DutyRow, DutySettingsRow};
use musubi_domain::audit::RequestMeta;
use musubi_domain::calendar::{
    self, AbsenceSpan, CalendarView, EventCategory, EventInput, ParticipantRow, RotationView,
    SwapAnswer,
};
use musubi_domain::sessions::Viewer;
use musubi_domain::types::{GroupId, PersonId};
use musubi_domain::{Actor, AppError, AppResult, ErrorCode, Services, Tenant};
use musubi_test_support::demo::{
    ADMIN, CARE_MANAGER, CLINIC_DOCTOR, CLINIC_DOCTOR_2, CLINIC_DOCTOR_3, HOSPITAL_DOCTOR, HOST,
    NURSE, OTHER, OTHER_ADMIN, OTHER_DOCTOR, OTHER_NURSE, PHARMACIST, THERAPIST,
};
use musubi_test_support::TestApp;
use std::collections::{BTreeSet, HashMap};
use uuid::Uuid;

/// みなと川's collaborating-doctor group: 川村 (the clinic doctor) owns it; 大野 and 松井
/// (みなと川), 高橋 (さくら台 only) and 佐藤 (both associations) are members. The demo gives it
/// events, absences and a published rotation for this month and the next.
const DOCTORS: &str = "みなと川 連携医グループ";
/// みなと川's open forum: its administrator owns it; 川村, 青木, 森田, 林 and 石井 are members.
const FORUM: &str = "多職種連携の会";
/// さくら台's forum: 高橋, 中村, 小林 and 佐藤 are members.
const SAKURA_FORUM: &str = "さくら台 在宅医療連絡会";
/// みなと川's patient group owned by 川村 (青木, 森田, 林, 石井 and 佐藤 are members).
const YAMADA: &str = "山田 太郎さん（85歳・在宅酸素）";
/// さくら台's patient group owned by 高橋.
const ITO: &str = "伊藤 正男さん（80歳・心不全）";

const EVERYONE: &[&str] = &[
    ADMIN,
    CLINIC_DOCTOR,
    CLINIC_DOCTOR_2,
    CLINIC_DOCTOR_3,
    NURSE,
    CARE_MANAGER,
    PHARMACIST,
    THERAPIST,
    HOSPITAL_DOCTOR,
    OTHER_ADMIN,
    OTHER_NURSE,
    OTHER_DOCTOR,
];

/// The five members of the doctors' group, all on the rotation in the rotation tests.
const FIVE: [&str; 5] = [
    CLINIC_DOCTOR,
    CLINIC_DOCTOR_2,
    CLINIC_DOCTOR_3,
    OTHER_DOCTOR,
    HOSPITAL_DOCTOR,
];

struct World {
    app: TestApp,
    s: Services,
    host: Tenant,
    other: Tenant,
    meta: RequestMeta,
    people: HashMap<&'static str, Viewer>,
    doctors: GroupId,
    forum: GroupId,
    sakura_forum: GroupId,
    yamada: GroupId,
    ito: GroupId,
}

async fn group_named(app: &TestApp, slug: &str, name: &str) -> GroupId {
    let id: Uuid = sqlx::query_scalar("SELECT id FROM groups WHERE name = $1")
        .bind(name)
        .fetch_one(&mut *app.tenant_tx(slug).await)
        .await
        .unwrap();
    id.into()
}

fn d(y: i32, m: u32, day: u32) -> NaiveDate {
    NaiveDate::from_ymd_opt(y, m, day).unwrap()
}

fn t(h: u32, m: u32) -> NaiveTime {
    NaiveTime::from_hms_opt(h, m, 0).unwrap()
}

fn all_day(title: &str, first: NaiveDate, last: NaiveDate) -> EventInput {
    EventInput {
        category: EventCategory::Other,
        title: title.to_owned(),
        first_day: first,
        last_day: last,
        starts_at: None,
        ends_at: None,
        rrule: None,
        place: String::new(),
        notes: String::new(),
    }
}

fn timed(title: &str, day: NaiveDate, from: NaiveTime, to: NaiveTime) -> EventInput {
    EventInput {
        starts_at: Some(from),
        ends_at: Some(to),
        ..all_day(title, day, day)
    }
}

fn series(title: &str, first: NaiveDate, last: NaiveDate, rrule: &str) -> EventInput {
    EventInput {
        rrule: Some(rrule.to_owned()),
        ..all_day(title, first, last)
    }
}

/// The error of a refused call, checked to carry `code`.
#[track_caller]
fn refused<T: std::fmt::Debug>(result: AppResult<T>, code: ErrorCode) -> AppError {
    match result {
        Ok(v) => panic!("expected {code:?}, got Ok({v:?})"),
        Err(e) => {
            assert_eq!(e.code, code, "{e:?}");
            e
        }
    }
}

/// The days of one event's occurrences in a view.
fn days_of(view: &CalendarView, event: Uuid) -> Vec<NaiveDate> {
    view.occurrences
        .iter()
        .filter(|o| o.event.id == event)
        .map(|o| o.first_day)
        .collect()
}

/// One person's absences in a view: (id, first day, last day, part).
fn absences_by(view: &CalendarView, person: PersonId) -> Vec<(Uuid, NaiveDate, NaiveDate, String)> {
    view.absences
        .iter()
        .filter(|a| a.user_id == person)
        .map(|a| (a.id, a.first_day, a.last_day, a.part.clone()))
        .collect()
}

fn event_ids(view: &CalendarView) -> BTreeSet<Uuid> {
    view.occurrences.iter().map(|o| o.event.id).collect()
}

/// A feed's text with folded lines joined again (RFC 5545 folds at 75 octets).
fn unfold(ics: &str) -> String {
    ics.replace("\r\n ", "").replace("\r\n\t", "")
}

/// (day, kind) → holder of a month's slots.
fn holders(duties: &[DutyRow]) -> HashMap<(NaiveDate, String), Option<PersonId>> {
    duties
        .iter()
        .map(|d| ((d.day, d.kind.clone()), d.user_id))
        .collect()
}

impl World {
    async fn new() -> Self {
        let app = TestApp::demo().await;
        let s = app.services();
        let host = s.resolve_tenant(HOST).await.unwrap();
        let other = s.resolve_tenant(OTHER).await.unwrap();
        let mut people = HashMap::new();
        for who in EVERYONE {
            people.insert(*who, app.operator().act_as(who).await.unwrap());
        }
        let doctors = group_named(&app, HOST, DOCTORS).await;
        let forum = group_named(&app, HOST, FORUM).await;
        let sakura_forum = group_named(&app, OTHER, SAKURA_FORUM).await;
        let yamada = group_named(&app, HOST, YAMADA).await;
        let ito = group_named(&app, OTHER, ITO).await;
        Self {
            app,
            s,
            host,
            other,
            meta: RequestMeta::new("192.0.2.40", "calendar test"),
            people,
            doctors,
            forum,
            sakura_forum,
            yamada,
            ito,
        }
    }

    fn v(&self, who: &str) -> &Viewer {
        &self.people[who]
    }

    fn id(&self, who: &str) -> PersonId {
        self.v(who).user().id
    }

    fn tenant(&self, slug: &str) -> &Tenant {
        if slug == OTHER {
            &self.other
        } else {
            &self.host
        }
    }

    /// `who` acting in みなと川 (where the doctors' group and most groups live).
    fn at(&self, who: &str) -> Actor<'_> {
        self.at_in(who, HOST)
    }

    fn at_in(&self, who: &str, slug: &str) -> Actor<'_> {
        Actor::new(self.v(who), self.tenant(slug), &self.meta)
    }

    async fn create(&self, who: &str, slug: &str, group: GroupId, input: &EventInput) -> Uuid {
        match self
            .s
            .create_event(&self.at_in(who, slug), group, input)
            .await
        {
            Ok(id) => id,
            Err(e) => panic!("creating {:?}: {e:?}", input.title),
        }
    }

    async fn try_view(
        &self,
        who: &str,
        from: NaiveDate,
        to: NaiveDate,
        group: Option<(&str, GroupId)>,
    ) -> AppResult<CalendarView> {
        self.s
            .calendar(self.v(who), &self.meta, from, to, group)
            .await
    }

    /// Everything `who` sees from `from` to `to`.
    async fn view(&self, who: &str, from: NaiveDate, to: NaiveDate) -> CalendarView {
        self.try_view(who, from, to, None).await.unwrap()
    }

    /// (actor, object id, detail) of the audit records of `action` in `slug`'s log.
    async fn audit(
        &self,
        slug: &str,
        action: &str,
    ) -> Vec<(Option<Uuid>, Option<String>, serde_json::Value)> {
        sqlx::query_as(
            "SELECT actor_id, object_id, detail FROM audit_log WHERE action = $1 ORDER BY seq",
        )
        .bind(action)
        .fetch_all(&mut *self.app.tenant_tx(slug).await)
        .await
        .unwrap()
    }

    /// Clears the doctors' rotation the demo drafted and published (this month and the
    /// next), so that a test drafts and publishes its own: the settings stay.
    async fn clear_rotation(&self) {
        let mut tx = self.app.tenant_tx(HOST).await;
        for table in ["duty_swaps", "duties", "duty_months"] {
            sqlx::query(&format!("DELETE FROM {table} WHERE group_id = $1"))
                .bind(self.doctors)
                .execute(&mut *tx)
                .await
                .unwrap();
        }
        tx.commit().await.unwrap();
    }

    fn participant(&self, who: &str) -> ParticipantRow {
        ParticipantRow {
            user_id: self.id(who),
            name: String::new(),
            unavailable_weekdays: 0,
            preferred_weekdays: 0,
            max_per_month: None,
            no_nights: false,
            contact: contact_of(who),
        }
    }

    /// 川村 sets up the doctors' rotation (weekday nights; weekend and holiday days and
    /// nights; Saturday counts as weekend) with `people` taking part, without the wishes the
    /// demo gave some of them.
    async fn set_up_rotation(&self, people: &[&str]) {
        let participants: Vec<ParticipantRow> =
            people.iter().map(|who| self.participant(who)).collect();
        self.s
            .set_duty_settings(
                &self.at(CLINIC_DOCTOR),
                self.doctors,
                &settings(),
                &participants,
            )
            .await
            .unwrap();
    }

    async fn rotation(&self, who: &str, month: NaiveDate) -> RotationView {
        self.s
            .rotation(&self.at(who), self.doctors, month)
            .await
            .unwrap()
    }

    /// Drafts and publishes a month of the doctors' rotation (as 川村); returns its slots.
    async fn publish(&self, month: NaiveDate, seed: u64) -> Vec<DutyRow> {
        let owner = self.at(CLINIC_DOCTOR);
        self.s
            .draft_rotation(&owner, self.doctors, month, seed)
            .await
            .unwrap();
        self.s
            .publish_rotation(&owner, self.doctors, month, None)
            .await
            .unwrap();
        self.rotation(CLINIC_DOCTOR, month).await.duties
    }

    /// Who holds one slot now, as a member sees it.
    async fn holder(&self, day: NaiveDate, kind: &str) -> Option<PersonId> {
        let duties = self.rotation(HOSPITAL_DOCTOR, day).await.duties;
        holders(&duties)
            .get(&(day, kind.to_owned()))
            .copied()
            .expect("a slot of that day and kind")
    }

    fn who_is(&self, id: PersonId) -> &'static str {
        EVERYONE
            .iter()
            .copied()
            .find(|who| self.id(who) == id)
            .expect("a demo person")
    }

    /// The status of a swap, read from the association's table.
    async fn swap_status(&self, swap: Uuid) -> String {
        sqlx::query_scalar("SELECT status FROM duty_swaps WHERE id = $1")
            .bind(swap)
            .fetch_one(&mut *self.app.tenant_tx(HOST).await)
            .await
            .unwrap()
    }
}

fn contact_of(who: &str) -> String {
    format!("090-0000-{:04}", who.len() * 37 % 10000)
}

fn settings() -> DutySettingsRow {
    DutySettingsRow {
        weekday_kinds: vec!["night".to_owned()],
        weekend_kinds: vec!["day".to_owned(), "night".to_owned()],
        saturday_is_weekend: true,
    }
}

/// The first May after the months the demo publishes (this one and the next): 2027's when
/// written, whose Golden Week falls on Monday to Wednesday.
fn golden_week() -> NaiveDate {
    let month = calendar::month_of(calendar::today());
    let free = month.checked_add_months(Months::new(2)).unwrap();
    let mut may = d(month.year(), 5, 1);
    while may < free {
        may = d(may.year() + 1, 5, 1);
    }
    may
}

/// The Golden Week holidays of a May: 憲法記念日, みどりの日, こどもの日, and the 6th as 振替休日
/// when one of them is a Sunday.
fn golden_week_days(may: NaiveDate) -> Vec<u32> {
    let mut days = vec![3, 4, 5];
    if days
        .iter()
        .any(|day| d(may.year(), 5, *day).weekday() == Weekday::Sun)
    {
        days.push(6);
    }
    days
}

/// The first `weekday` on or after `day`.
fn on_or_after(day: NaiveDate, weekday: Weekday) -> NaiveDate {
    let mut day = day;
    while day.weekday() != weekday {
        day = day.succ_opt().unwrap();
    }
    day
}

/// The slots a May must have with [`settings`]: (day, kind, class).
fn may_slots(may: NaiveDate) -> BTreeSet<(NaiveDate, String, String)> {
    let holidays = golden_week_days(may);
    let mut slots = BTreeSet::new();
    for day in 1..=31 {
        let date = d(may.year(), 5, day);
        let class = if holidays.contains(&day) {
            "holiday"
        } else if matches!(date.weekday(), Weekday::Sat | Weekday::Sun) {
            "weekend"
        } else {
            "weekday"
        };
        let kinds: &[&str] = if class == "weekday" {
            &["night"]
        } else {
            &["day", "night"]
        };
        for kind in kinds {
            slots.insert((date, (*kind).to_owned(), class.to_owned()));
        }
    }
    slots
}

// --- Events ---------------------------------------------------------------------------------

#[tokio::test]
async fn members_see_a_groups_events_in_any_association_and_nobody_else_does() {
    let w = World::new().await;
    let meeting = w
        .create(
            CLINIC_DOCTOR,
            HOST,
            w.doctors,
            &all_day("休日当番 打ち合わせ", d(2027, 1, 9), d(2027, 1, 10)),
        )
        .await;
    let mut review = timed("連携医 症例検討会", d(2027, 1, 14), t(19, 0), t(20, 30));
    review.category = EventCategory::Conference;
    review.place = "川村内科クリニック 2階".to_owned();
    let review = w.create(CLINIC_DOCTOR, HOST, w.doctors, &review).await;
    let (from, to) = (d(2027, 1, 1), d(2027, 1, 31));

    let ours = [meeting, review];
    // The owner, members of みなと川, a member of both associations and one from さくら台 only
    // (the demo's own events of the group are there too, left aside).
    for who in [
        CLINIC_DOCTOR,
        CLINIC_DOCTOR_2,
        HOSPITAL_DOCTOR,
        OTHER_DOCTOR,
    ] {
        let view = w.view(who, from, to).await;
        let here: Vec<_> = view
            .occurrences
            .iter()
            .filter(|o| ours.contains(&o.event.id))
            .collect();
        assert_eq!(
            here.iter().map(|o| o.event.id).collect::<Vec<_>>(),
            [meeting, review],
            "{who}: both events, in date order"
        );
        let (m, r) = (here[0], here[1]);
        assert_eq!((m.first_day, m.last_day), (d(2027, 1, 9), d(2027, 1, 10)));
        assert_eq!((m.event.starts_at, m.event.ends_at), (None, None));
        assert_eq!((r.first_day, r.last_day), (d(2027, 1, 14), d(2027, 1, 14)));
        assert_eq!(
            (r.event.starts_at, r.event.ends_at),
            (Some(t(19, 0)), Some(t(20, 30)))
        );
        assert_eq!(r.event.category, "conference");
        assert_eq!(r.event.place, "川村内科クリニック 2階");
        for o in &here {
            assert_eq!(o.association, HOST);
            assert_eq!(o.group_name, DOCTORS);
            assert!(!o.patient_group);
            assert_eq!(o.can_edit, who == CLINIC_DOCTOR, "{who}");
        }
        assert!(view.holidays.contains(&(d(2027, 1, 1), "元日")), "{who}");
        assert!(
            view.holidays.contains(&(d(2027, 1, 11), "成人の日")),
            "{who}"
        );
        assert_eq!(view.holidays.len(), 2, "{:?}", view.holidays);
    }

    // Nobody outside the group sees them, in either association; asking for the group is
    // "not found", as for a group that does not exist.
    for (who, slug) in [
        (NURSE, HOST),
        (ADMIN, HOST),
        (OTHER_NURSE, OTHER),
        (OTHER_ADMIN, OTHER),
    ] {
        let view = w.view(who, from, to).await;
        assert!(
            !event_ids(&view).contains(&meeting) && !event_ids(&view).contains(&review),
            "{who} sees the doctors' events"
        );
        assert!(view.occurrences.iter().all(|o| o.group_id != w.doctors));
        assert!(view.holidays.contains(&(d(2027, 1, 1), "元日")));
        refused(
            w.try_view(who, from, to, Some((HOST, w.doctors))).await,
            ErrorCode::NotFound,
        );
        refused(
            w.s.event(&w.at_in(who, slug), meeting).await,
            ErrorCode::NotFound,
        );
        refused(w.s.event(&w.at(who), review).await, ErrorCode::NotFound);
    }

    // One group asked for: its events only; under another association's name: not found.
    let one = w
        .try_view(OTHER_DOCTOR, from, to, Some((HOST, w.doctors)))
        .await
        .unwrap();
    assert_eq!(
        one.occurrences
            .iter()
            .map(|o| o.event.id)
            .filter(|id| ours.contains(id))
            .collect::<Vec<_>>(),
        ours
    );
    assert!(one.occurrences.iter().all(|o| o.group_id == w.doctors));
    refused(
        w.try_view(CLINIC_DOCTOR, from, to, Some((OTHER, w.doctors)))
            .await,
        ErrorCode::NotFound,
    );

    // One event, as a member sees it.
    let (row, can_edit) = w.s.event(&w.at(OTHER_DOCTOR), review).await.unwrap();
    assert_eq!(row.title, "連携医 症例検討会");
    assert_eq!(row.version, 1);
    assert!(!can_edit);
    assert!(w.s.event(&w.at(CLINIC_DOCTOR), review).await.unwrap().1);

    // Audited: the creations, and the member from さくら台's read in みなと川's log.
    let created = w.audit(HOST, "event.create").await;
    let ids: BTreeSet<String> = created.iter().filter_map(|r| r.1.clone()).collect();
    assert!(ids.contains(&meeting.to_string()) && ids.contains(&review.to_string()));
    let takahashi = w.id(OTHER_DOCTOR).uuid();
    assert!(w
        .audit(HOST, "calendar.read")
        .await
        .iter()
        .any(|r| r.0 == Some(takahashi)));
}

#[tokio::test]
async fn a_weekly_series_runs_across_a_month_boundary_and_loses_a_cancelled_day() {
    let w = World::new().await;
    // 2027-01-21 is a Thursday.
    let mut visits = series(
        "定期往診 カンファ",
        d(2027, 1, 21),
        d(2027, 1, 21),
        "FREQ=WEEKLY;BYDAY=TH;COUNT=5",
    );
    visits.category = EventCategory::Visit;
    let id = w.create(CLINIC_DOCTOR, HOST, w.doctors, &visits).await;
    let all = [
        d(2027, 1, 21),
        d(2027, 1, 28),
        d(2027, 2, 4),
        d(2027, 2, 11),
        d(2027, 2, 18),
    ];
    let view = w.view(HOSPITAL_DOCTOR, d(2027, 1, 1), d(2027, 2, 28)).await;
    assert_eq!(days_of(&view, id), all);
    assert!(view
        .occurrences
        .iter()
        .filter(|o| o.event.id == id)
        .all(|o| o.first_day == o.last_day && o.first_day.weekday() == Weekday::Thu));
    // Month by month, and outside the series.
    let feb = w.view(OTHER_DOCTOR, d(2027, 2, 1), d(2027, 2, 28)).await;
    assert_eq!(days_of(&feb, id), all[2..]);
    let jan = w.view(OTHER_DOCTOR, d(2027, 1, 1), d(2027, 1, 31)).await;
    assert_eq!(days_of(&jan, id), all[..2]);
    let before = w.view(OTHER_DOCTOR, d(2026, 12, 1), d(2027, 1, 20)).await;
    assert!(days_of(&before, id).is_empty());
    let after = w.view(OTHER_DOCTOR, d(2027, 2, 19), d(2027, 3, 31)).await;
    assert!(days_of(&after, id).is_empty(), "COUNT=5 is used up");

    // A monthly series until a date: the second Tuesday of January to March.
    let second_tuesday = w
        .create(
            HOSPITAL_DOCTOR,
            HOST,
            w.doctors,
            &series(
                "紹介患者 連絡会",
                d(2027, 1, 12),
                d(2027, 1, 12),
                "FREQ=MONTHLY;BYDAY=2TU;UNTIL=20270331",
            ),
        )
        .await;
    let spring = w.view(CLINIC_DOCTOR, d(2027, 1, 1), d(2027, 3, 31)).await;
    assert_eq!(
        days_of(&spring, second_tuesday),
        [d(2027, 1, 12), d(2027, 2, 9), d(2027, 3, 9)]
    );
    let later = w.view(CLINIC_DOCTOR, d(2027, 4, 1), d(2027, 6, 30)).await;
    assert!(days_of(&later, second_tuesday).is_empty());

    // One occurrence cancelled: gone for everyone, the others stay.
    w.s.cancel_occurrence(&w.at(CLINIC_DOCTOR), id, d(2027, 2, 4))
        .await
        .unwrap();
    for who in [CLINIC_DOCTOR, HOSPITAL_DOCTOR, OTHER_DOCTOR] {
        let view = w.view(who, d(2027, 1, 1), d(2027, 2, 28)).await;
        assert_eq!(
            days_of(&view, id),
            [
                d(2027, 1, 21),
                d(2027, 1, 28),
                d(2027, 2, 11),
                d(2027, 2, 18)
            ],
            "{who}"
        );
    }
    let (row, _) = w.s.event(&w.at(CLINIC_DOCTOR), id).await.unwrap();
    assert_eq!(row.exceptions, [d(2027, 2, 4)]);
    assert_eq!(row.version, 2, "a cancelled day is a change of the event");
    // A day without an occurrence, a day after COUNT ran out, and a single event: refused.
    for day in [d(2027, 2, 5), d(2027, 2, 25), d(2027, 1, 14)] {
        let e = refused(
            w.s.cancel_occurrence(&w.at(CLINIC_DOCTOR), id, day).await,
            ErrorCode::InvalidInput,
        );
        assert_eq!(e.field, Some("day"), "{day}");
    }
    let single = w
        .create(
            CLINIC_DOCTOR,
            HOST,
            w.doctors,
            &all_day("単発", d(2027, 2, 2), d(2027, 2, 2)),
        )
        .await;
    refused(
        w.s.cancel_occurrence(&w.at(CLINIC_DOCTOR), single, d(2027, 2, 2))
            .await,
        ErrorCode::InvalidInput,
    );
    // A member who is neither author nor owner cannot cancel one.
    refused(
        w.s.cancel_occurrence(&w.at(OTHER_DOCTOR), id, d(2027, 2, 11))
            .await,
        ErrorCode::NotFound,
    );
    let (row, _) = w.s.event(&w.at(CLINIC_DOCTOR), id).await.unwrap();
    assert_eq!(row.exceptions, [d(2027, 2, 4)]);
}

#[tokio::test]
async fn a_day_inside_a_multi_day_occurrence_is_not_an_occurrence_to_cancel() {
    let w = World::new().await;
    // Thursday and Friday, every week, four times.
    let id = w
        .create(
            CLINIC_DOCTOR,
            HOST,
            w.doctors,
            &series(
                "二日間の研修",
                d(2027, 1, 21),
                d(2027, 1, 22),
                "FREQ=WEEKLY;COUNT=4",
            ),
        )
        .await;
    let view = w.view(CLINIC_DOCTOR, d(2027, 1, 1), d(2027, 2, 28)).await;
    assert_eq!(
        days_of(&view, id),
        [
            d(2027, 1, 21),
            d(2027, 1, 28),
            d(2027, 2, 4),
            d(2027, 2, 11)
        ]
    );
    // The Friday of the second occurrence is not a day the series starts on.
    let e = refused(
        w.s.cancel_occurrence(&w.at(CLINIC_DOCTOR), id, d(2027, 1, 29))
            .await,
        ErrorCode::InvalidInput,
    );
    assert_eq!(e.field, Some("day"));
    let (row, _) = w.s.event(&w.at(CLINIC_DOCTOR), id).await.unwrap();
    assert!(row.exceptions.is_empty(), "{:?}", row.exceptions);
    assert_eq!(row.version, 1);
}

#[tokio::test]
async fn ranges_rules_titles_and_days_are_checked() {
    let w = World::new().await;
    let count = || async {
        let n: i64 = sqlx::query_scalar("SELECT count(*) FROM calendar_events")
            .fetch_one(&mut *w.app.tenant_tx(HOST).await)
            .await
            .unwrap();
        n
    };
    // The demo's own events.
    let before = count().await;
    let from = d(2027, 1, 1);
    // 93 days at most.
    w.view(CLINIC_DOCTOR, from, from + Duration::days(92)).await;
    for to in [
        from + Duration::days(93),
        from + Duration::days(400),
        from - Duration::days(1),
    ] {
        let e = refused(
            w.try_view(CLINIC_DOCTOR, from, to, None).await,
            ErrorCode::InvalidInput,
        );
        assert_eq!(e.field, Some("to"), "{to}");
        refused(
            w.try_view(CLINIC_DOCTOR, from, to, Some((HOST, w.doctors)))
                .await,
            ErrorCode::InvalidInput,
        );
    }

    let base = all_day("検討会", d(2027, 1, 14), d(2027, 1, 14));
    let owner = w.at(CLINIC_DOCTOR);
    // Rules Musubi does not know, or that make no sense.
    for rule in [
        "FREQ=HOURLY",
        "FREQ=MINUTELY;COUNT=3",
        "FREQ=MONTHLY;BYDAY=MO;BYSETPOS=1",
        "BYSETPOS=1",
        "FREQ=WEEKLY;COUNT=3;UNTIL=20270301",
        "FREQ=WEEKLY;UNTIL=20261231",
        "FREQ=WEEKLY;INTERVAL=0",
        "FREQ=WEEKLY;BYDAY=XX",
        "every thursday",
    ] {
        let input = EventInput {
            rrule: Some(rule.to_owned()),
            ..base.clone()
        };
        let e = refused(
            w.s.create_event(&owner, w.doctors, &input).await,
            ErrorCode::InvalidInput,
        );
        assert_eq!(e.field, Some("rrule"), "{rule}");
    }
    // Titles: empty, blank, control characters, over 100 characters.
    for title in [
        String::new(),
        "   ".to_owned(),
        "検討\u{0007}会".to_owned(),
        "あ".repeat(101),
    ] {
        let input = EventInput {
            title: title.clone(),
            ..base.clone()
        };
        let e = refused(
            w.s.create_event(&owner, w.doctors, &input).await,
            ErrorCode::InvalidInput,
        );
        assert_eq!(e.field, Some("title"), "{title:?}");
    }
    // Days and times.
    let cases = [
        (all_day("逆", d(2027, 1, 14), d(2027, 1, 13)), "lastDay"),
        (all_day("長すぎ", d(2027, 1, 1), d(2028, 1, 2)), "lastDay"),
        (
            EventInput {
                starts_at: Some(t(10, 0)),
                ..base.clone()
            },
            "endsAt",
        ),
        (
            EventInput {
                ends_at: Some(t(10, 0)),
                ..base.clone()
            },
            "endsAt",
        ),
        (
            timed("逆時刻", d(2027, 1, 14), t(15, 0), t(14, 0)),
            "endsAt",
        ),
        (timed("零分", d(2027, 1, 14), t(15, 0), t(15, 0)), "endsAt"),
    ];
    for (input, field) in &cases {
        let e = refused(
            w.s.create_event(&owner, w.doctors, input).await,
            ErrorCode::InvalidInput,
        );
        assert_eq!(e.field, Some(*field), "{:?}", input.title);
    }
    // Nothing refused was written; what is valid at the limits is.
    assert_eq!(count().await, before);
    let longest = EventInput {
        title: "あ".repeat(100),
        ..base.clone()
    };
    let id = w.create(CLINIC_DOCTOR, HOST, w.doctors, &longest).await;
    // Overnight: a timed event ending the next morning.
    let overnight = EventInput {
        last_day: d(2027, 1, 15),
        ..timed("夜間待機", d(2027, 1, 14), t(18, 0), t(8, 0))
    };
    w.create(CLINIC_DOCTOR, HOST, w.doctors, &overnight).await;
    // A rule in lower case with a leading RRULE: is read and kept in one spelling.
    let lower = w
        .create(
            CLINIC_DOCTOR,
            HOST,
            w.doctors,
            &series(
                "小文字",
                d(2027, 1, 14),
                d(2027, 1, 14),
                "rrule:freq=weekly;count=2",
            ),
        )
        .await;
    assert_eq!(count().await, before + 3);
    let (row, _) = w.s.event(&owner, id).await.unwrap();
    assert_eq!(row.title.chars().count(), 100);
    let (row, _) = w.s.event(&owner, lower).await.unwrap();
    let rule = row.rrule.unwrap();
    assert!(
        rule.contains("FREQ=WEEKLY") && rule.contains("COUNT=2"),
        "{rule}"
    );
    // An update is checked the same way.
    let e = refused(
        w.s.update_event(
            &owner,
            id,
            1,
            &EventInput {
                rrule: Some("FREQ=HOURLY".to_owned()),
                ..base.clone()
            },
        )
        .await,
        ErrorCode::InvalidInput,
    );
    assert_eq!(e.field, Some("rrule"));
}

#[tokio::test]
async fn only_the_author_or_the_owner_changes_an_event_and_a_stale_version_conflicts() {
    let w = World::new().await;
    let mut input = timed("退院前カンファレンス", d(2027, 2, 3), t(14, 0), t(15, 0));
    input.category = EventCategory::Conference;
    // 佐藤 (a member, not the owner) writes it.
    let id = w.create(HOSPITAL_DOCTOR, HOST, w.doctors, &input).await;
    let moved = EventInput {
        title: "退院前カンファレンス（時間変更）".to_owned(),
        starts_at: Some(t(16, 0)),
        ends_at: Some(t(17, 0)),
        ..input.clone()
    };

    // Another member, and people outside the group: as if it did not exist.
    for (who, slug) in [(OTHER_DOCTOR, HOST), (NURSE, HOST), (OTHER_NURSE, OTHER)] {
        let a = w.at_in(who, slug);
        refused(
            w.s.update_event(&a, id, 1, &moved).await,
            ErrorCode::NotFound,
        );
        refused(w.s.delete_event(&a, id).await, ErrorCode::NotFound);
    }
    assert!(!w.s.event(&w.at(OTHER_DOCTOR), id).await.unwrap().1);
    assert!(w.s.event(&w.at(HOSPITAL_DOCTOR), id).await.unwrap().1);

    // The group's owner may change it; the author, still at version 1, is told to reload.
    w.s.update_event(&w.at(CLINIC_DOCTOR), id, 1, &moved)
        .await
        .unwrap();
    let again = EventInput {
        title: "上書きされてはならない".to_owned(),
        ..input.clone()
    };
    refused(
        w.s.update_event(&w.at(HOSPITAL_DOCTOR), id, 1, &again)
            .await,
        ErrorCode::Conflict,
    );
    let (row, _) = w.s.event(&w.at(OTHER_DOCTOR), id).await.unwrap();
    assert_eq!(row.title, "退院前カンファレンス（時間変更）");
    assert_eq!((row.starts_at, row.version), (Some(t(16, 0)), 2));
    // At the version they read, the author may.
    let final_input = EventInput {
        title: "退院前カンファレンス（確定）".to_owned(),
        ..moved.clone()
    };
    w.s.update_event(&w.at(HOSPITAL_DOCTOR), id, 2, &final_input)
        .await
        .unwrap();
    let view = w.view(OTHER_DOCTOR, d(2027, 2, 1), d(2027, 2, 28)).await;
    let titles: Vec<_> = view
        .occurrences
        .iter()
        .filter(|o| o.event.id == id)
        .map(|o| o.event.title.as_str())
        .collect();
    assert_eq!(titles, ["退院前カンファレンス（確定）"]);
    // A version from the future is no better than a stale one.
    refused(
        w.s.update_event(&w.at(HOSPITAL_DOCTOR), id, 99, &again)
            .await,
        ErrorCode::Conflict,
    );

    // The author deletes it; then it is gone for everyone.
    w.s.delete_event(&w.at(HOSPITAL_DOCTOR), id).await.unwrap();
    refused(
        w.s.event(&w.at(CLINIC_DOCTOR), id).await,
        ErrorCode::NotFound,
    );
    refused(
        w.s.delete_event(&w.at(HOSPITAL_DOCTOR), id).await,
        ErrorCode::NotFound,
    );
    refused(
        w.s.update_event(&w.at(HOSPITAL_DOCTOR), id, 3, &again)
            .await,
        ErrorCode::NotFound,
    );
    // The owner deletes a member's event.
    let other = w
        .create(
            OTHER_DOCTOR,
            HOST,
            w.doctors,
            &all_day("学会出張", d(2027, 2, 10), d(2027, 2, 12)),
        )
        .await;
    w.s.delete_event(&w.at(CLINIC_DOCTOR), other).await.unwrap();
    let view = w.view(OTHER_DOCTOR, d(2027, 2, 1), d(2027, 2, 28)).await;
    assert!(!event_ids(&view).contains(&id) && !event_ids(&view).contains(&other));

    // On record: two updates and two deletions, nothing for the refusals.
    let ours = |r: &(Option<Uuid>, Option<String>, serde_json::Value)| {
        r.1 == Some(id.to_string()) || r.1 == Some(other.to_string())
    };
    let mut updates = w.audit(HOST, "event.update").await;
    updates.retain(ours);
    assert_eq!(updates.len(), 2, "{updates:?}");
    assert!(updates
        .iter()
        .all(|r| r.1.as_deref() == Some(&*id.to_string())));
    assert_eq!(
        updates.iter().map(|r| r.0).collect::<Vec<_>>(),
        [
            Some(w.id(CLINIC_DOCTOR).uuid()),
            Some(w.id(HOSPITAL_DOCTOR).uuid())
        ]
    );
    let mut deletes = w.audit(HOST, "event.delete").await;
    deletes.retain(ours);
    assert_eq!(
        deletes
            .iter()
            .filter_map(|r| r.1.clone())
            .collect::<Vec<_>>(),
        [id.to_string(), other.to_string()]
    );
}

#[tokio::test]
async fn an_archived_patient_groups_calendar_is_kept_read_only() {
    let w = World::new().await;
    let mut visit = timed("訪問診療", d(2027, 3, 2), t(10, 0), t(10, 30));
    visit.category = EventCategory::Visit;
    let id = w.create(NURSE, HOST, w.yamada, &visit).await;
    // Care ends: the group is archived.
    let mut tx = w.app.tenant_tx(HOST).await;
    sqlx::query("UPDATE groups SET archived_at = now() WHERE id = $1")
        .bind(w.yamada)
        .execute(&mut *tx)
        .await
        .unwrap();
    tx.commit().await.unwrap();

    for who in [NURSE, CLINIC_DOCTOR] {
        refused(
            w.s.create_event(&w.at(who), w.yamada, &visit).await,
            ErrorCode::GroupArchived,
        );
    }
    refused(
        w.s.update_event(&w.at(NURSE), id, 1, &visit).await,
        ErrorCode::GroupArchived,
    );
    refused(
        w.s.delete_event(&w.at(CLINIC_DOCTOR), id).await,
        ErrorCode::GroupArchived,
    );
    // Still there to read, not editable.
    let view = w.view(NURSE, d(2027, 3, 1), d(2027, 3, 31)).await;
    let o = view
        .occurrences
        .iter()
        .find(|o| o.event.id == id)
        .expect("the event is still shown");
    assert!(o.patient_group);
    assert_eq!(o.group_name, YAMADA);
    let (row, can_edit) = w.s.event(&w.at(NURSE), id).await.unwrap();
    assert_eq!(row.version, 1);
    assert!(!can_edit);
    // The refusals wrote nothing: the nurse's one creation is her only one on record.
    let nurse = Some(w.id(NURSE).uuid());
    let created = w.audit(HOST, "event.create").await;
    assert_eq!(
        created
            .iter()
            .filter(|r| r.0 == nurse)
            .map(|r| r.1.clone())
            .collect::<Vec<_>>(),
        [Some(id.to_string())]
    );
}

// --- Absences -------------------------------------------------------------------------------

#[tokio::test]
async fn absences_are_seen_by_those_who_share_a_group_and_recorded() {
    let w = World::new().await;
    // 佐藤 (in the doctors' group, patient groups of both associations and さくら台's forum).
    let sato = w.at(HOSPITAL_DOCTOR);
    let sato_id = w.id(HOSPITAL_DOCTOR);
    let range =
        w.s.add_absence(
            &sato,
            d(2027, 1, 10),
            d(2027, 1, 14),
            AbsenceSpan::AllDay,
            "学会",
        )
        .await
        .unwrap();
    let morning =
        w.s.add_absence(
            &sato,
            d(2027, 1, 20),
            d(2027, 1, 20),
            AbsenceSpan::Morning,
            "",
        )
        .await
        .unwrap();
    let (from, to) = (d(2027, 1, 1), d(2027, 1, 31));
    let both = [
        (range, d(2027, 1, 10), d(2027, 1, 14), "all".to_owned()),
        (morning, d(2027, 1, 20), d(2027, 1, 20), "am".to_owned()),
    ];

    // Himself, and those who share an active group with him, in either association (the
    // demo's absences of others are left aside).
    for who in [
        HOSPITAL_DOCTOR,
        CLINIC_DOCTOR,
        CLINIC_DOCTOR_3,
        OTHER_DOCTOR,
        NURSE,
        OTHER_NURSE,
    ] {
        let view = w.view(who, from, to).await;
        assert_eq!(absences_by(&view, sato_id), both, "{who}");
        let first = view.absences.iter().find(|a| a.id == range).unwrap();
        assert_eq!(first.note, "学会");
        assert_eq!(first.user_name, "佐藤 隆");
    }
    // In one group's calendar, its members' absences.
    let doctors = w
        .try_view(OTHER_DOCTOR, from, to, Some((HOST, w.doctors)))
        .await
        .unwrap();
    assert_eq!(absences_by(&doctors, sato_id), both);
    // みなと川's administrator shares no group with him: she sees none of it, neither in all
    // her calendars nor in her forum's.
    let view = w.view(ADMIN, from, to).await;
    assert!(
        absences_by(&view, sato_id).is_empty(),
        "{:?}",
        view.absences
    );
    let forum = w
        .try_view(ADMIN, from, to, Some((HOST, w.forum)))
        .await
        .unwrap();
    assert!(
        absences_by(&forum, sato_id).is_empty(),
        "{:?}",
        forum.absences
    );
    // Outside the range: not shown; a range that touches one day of it: shown.
    let feb = w.view(CLINIC_DOCTOR, d(2027, 2, 1), d(2027, 2, 28)).await;
    assert!(absences_by(&feb, sato_id).is_empty());
    let edge = w.view(CLINIC_DOCTOR, d(2027, 1, 14), d(2027, 1, 14)).await;
    assert_eq!(absences_by(&edge, sato_id), both[..1]);

    // Refused: a half day over two days, days in the wrong order, over a year, a long note.
    for span in [AbsenceSpan::Morning, AbsenceSpan::Afternoon] {
        let e = refused(
            w.s.add_absence(&sato, d(2027, 1, 20), d(2027, 1, 21), span, "")
                .await,
            ErrorCode::InvalidInput,
        );
        assert_eq!(e.field, Some("part"));
    }
    let e = refused(
        w.s.add_absence(
            &sato,
            d(2027, 1, 21),
            d(2027, 1, 20),
            AbsenceSpan::AllDay,
            "",
        )
        .await,
        ErrorCode::InvalidInput,
    );
    assert_eq!(e.field, Some("lastDay"));
    refused(
        w.s.add_absence(&sato, d(2027, 1, 1), d(2028, 1, 2), AbsenceSpan::AllDay, "")
            .await,
        ErrorCode::InvalidInput,
    );
    let e = refused(
        w.s.add_absence(
            &sato,
            d(2027, 1, 1),
            d(2027, 1, 1),
            AbsenceSpan::AllDay,
            &"長".repeat(201),
        )
        .await,
        ErrorCode::InvalidInput,
    );
    assert_eq!(e.field, Some("note"));

    // Only he withdraws them.
    for who in [CLINIC_DOCTOR, OTHER_DOCTOR, ADMIN] {
        refused(
            w.s.delete_absence(&w.at(who), range).await,
            ErrorCode::NotFound,
        );
    }
    refused(
        w.s.delete_absence(&w.at_in(OTHER_NURSE, OTHER), range)
            .await,
        ErrorCode::NotFound,
    );
    w.s.delete_absence(&sato, range).await.unwrap();
    refused(w.s.delete_absence(&sato, range).await, ErrorCode::NotFound);
    let view = w.view(CLINIC_DOCTOR, from, to).await;
    assert_eq!(absences_by(&view, sato_id), both[1..]);

    // On record in the association he acted in: two entries, one withdrawal, by him.
    let by_him = |rows: Vec<(Option<Uuid>, Option<String>, serde_json::Value)>| {
        rows.into_iter()
            .filter(|r| r.0 == Some(sato_id.uuid()))
            .collect::<Vec<_>>()
    };
    let created = by_him(w.audit(HOST, "absence.create").await);
    assert_eq!(
        created.iter().map(|r| r.1.clone()).collect::<Vec<_>>(),
        [Some(range.to_string()), Some(morning.to_string())]
    );
    assert_eq!(created[0].2["part"], "all");
    assert_eq!(created[0].2["first_day"], "2027-01-10");
    assert_eq!(created[0].2["last_day"], "2027-01-14");
    assert_eq!(created[1].2["part"], "am");
    assert!(
        !created[0].2.to_string().contains("学会"),
        "ids and codes only in the log: {}",
        created[0].2
    );
    let deleted = by_him(w.audit(HOST, "absence.delete").await);
    assert_eq!(
        deleted.iter().map(|r| r.1.clone()).collect::<Vec<_>>(),
        [Some(range.to_string())]
    );
    assert!(by_him(w.audit(OTHER, "absence.create").await).is_empty());
}

#[tokio::test]
async fn someone_who_only_asked_to_join_keeps_their_absences_to_themselves() {
    let w = World::new().await;
    // 佐藤 asks to join みなと川's forum, where the administrator (who shares no group with
    // him) is the owner.
    w.s.request_to_join(&w.at(HOSPITAL_DOCTOR), w.forum)
        .await
        .unwrap();
    w.s.add_absence(
        &w.at(HOSPITAL_DOCTOR),
        d(2027, 1, 10),
        d(2027, 1, 14),
        AbsenceSpan::AllDay,
        "",
    )
    .await
    .unwrap();
    let (from, to) = (d(2027, 1, 1), d(2027, 1, 31));
    let sato = w.id(HOSPITAL_DOCTOR);
    let everywhere = w.view(ADMIN, from, to).await;
    assert!(
        absences_by(&everywhere, sato).is_empty(),
        "{:?}",
        everywhere.absences
    );
    let forum = w
        .try_view(ADMIN, from, to, Some((HOST, w.forum)))
        .await
        .unwrap();
    assert!(absences_by(&forum, sato).is_empty(), "{:?}", forum.absences);
}

// --- The duty rotation ----------------------------------------------------------------------

#[tokio::test]
async fn golden_week_is_drafted_around_absences_and_seen_by_members_once_published() {
    let w = World::new().await;
    let may = golden_week();
    let last = d(may.year(), 5, 31);
    let in_may = |day: u32| d(may.year(), 5, day);
    // Only the owner sets the rotation up.
    refused(
        w.s.set_duty_settings(
            &w.at(HOSPITAL_DOCTOR),
            w.doctors,
            &settings(),
            &[w.participant(HOSPITAL_DOCTOR)],
        )
        .await,
        ErrorCode::NotFound,
    );
    let settings_before = w.audit(HOST, "duty.settings").await.len();
    w.set_up_rotation(&FIVE).await;
    // Someone outside the group cannot take part.
    let mut with_outsider: Vec<_> = FIVE.iter().map(|who| w.participant(who)).collect();
    with_outsider.push(w.participant(CARE_MANAGER));
    let e = refused(
        w.s.set_duty_settings(&w.at(CLINIC_DOCTOR), w.doctors, &settings(), &with_outsider)
            .await,
        ErrorCode::InvalidInput,
    );
    assert_eq!(e.field, Some("participants"));

    // 高橋 is away for the week after Golden Week, 佐藤 on the morning of a Saturday.
    let takahashi = w.id(OTHER_DOCTOR);
    let sato = w.id(HOSPITAL_DOCTOR);
    let away = in_may(10)..=in_may(16);
    let saturday = on_or_after(in_may(17), Weekday::Sat);
    w.s.add_absence(
        &w.at_in(OTHER_DOCTOR, OTHER),
        *away.start(),
        *away.end(),
        AbsenceSpan::AllDay,
        "学会",
    )
    .await
    .unwrap();
    w.s.add_absence(
        &w.at(HOSPITAL_DOCTOR),
        saturday,
        saturday,
        AbsenceSpan::Morning,
        "",
    )
    .await
    .unwrap();

    // Members may not draft or publish.
    for who in [HOSPITAL_DOCTOR, OTHER_DOCTOR, CLINIC_DOCTOR_2] {
        refused(
            w.s.draft_rotation(&w.at(who), w.doctors, may, 1).await,
            ErrorCode::NotFound,
        );
    }
    let e = refused(
        w.s.publish_rotation(&w.at(CLINIC_DOCTOR), w.doctors, may, None)
            .await,
        ErrorCode::InvalidInput,
    );
    assert_eq!(e.field, Some("month"), "nothing drafted yet");
    // Any day of the month names the month.
    w.s.draft_rotation(&w.at(CLINIC_DOCTOR), w.doctors, in_may(17), 7)
        .await
        .unwrap();
    refused(
        w.s.publish_rotation(&w.at(HOSPITAL_DOCTOR), w.doctors, may, None)
            .await,
        ErrorCode::NotFound,
    );

    // The owner sees the draft: every slot of the month's shape, each covered, nobody
    // during an absence, no rule broken.
    let expected = may_slots(may);
    let draft = w.rotation(CLINIC_DOCTOR, may).await;
    assert!(draft.can_manage);
    assert_eq!(draft.month, may);
    assert_eq!(draft.state.as_ref().unwrap().status, "draft");
    assert_eq!(draft.participants.len(), 5);
    let slots: BTreeSet<_> = draft
        .duties
        .iter()
        .map(|d| (d.day, d.kind.clone(), d.class.clone()))
        .collect();
    assert_eq!(draft.duties.len(), expected.len());
    assert_eq!(slots, expected);
    if may.year() == 2027 {
        assert_eq!(expected.len(), 44, "18 weekday nights, 13 days of two");
    }
    let five: Vec<PersonId> = FIVE.iter().map(|who| w.id(who)).collect();
    for duty in &draft.duties {
        let person = duty
            .user_id
            .unwrap_or_else(|| panic!("uncovered: {duty:?}"));
        assert!(five.contains(&person), "{duty:?}");
        if person == takahashi {
            assert!(
                !away.contains(&duty.day),
                "高橋 on duty while away: {duty:?}"
            );
        }
        if person == sato && duty.day == saturday {
            assert_eq!(duty.kind, "night", "佐藤 is off that morning: {duty:?}");
        }
        assert!(duty.user_name.is_some());
    }
    assert!(draft.problems.is_empty(), "{:?}", draft.problems);
    for p in &five {
        assert!(
            draft.duties.iter().any(|d| d.user_id == Some(*p)),
            "everyone takes a turn"
        );
    }
    for (day, name) in [(3, "憲法記念日"), (4, "みどりの日"), (5, "こどもの日")] {
        assert!(draft.holidays.contains(&(in_may(day), name)));
    }
    assert_eq!(
        draft
            .absences
            .iter()
            .map(|a| (a.user_id, a.first_day))
            .collect::<Vec<_>>(),
        [(takahashi, *away.start()), (sato, saturday)]
    );
    // The owner's calendar of the group shows the draft too.
    let owners = w
        .try_view(CLINIC_DOCTOR, may, last, Some((HOST, w.doctors)))
        .await
        .unwrap();
    assert_eq!(owners.duties.len(), expected.len());

    // A member sees nothing of it yet, anywhere.
    for who in [HOSPITAL_DOCTOR, OTHER_DOCTOR, CLINIC_DOCTOR_2] {
        let view = w.rotation(who, may).await;
        assert!(!view.can_manage);
        assert!(view.duties.is_empty(), "{who} sees the draft");
        assert!(view.swaps.is_empty());
        let cal = w.view(who, may, last).await;
        assert!(cal.duties.is_empty(), "{who} sees the draft");
        let one = w
            .try_view(who, may, last, Some((HOST, w.doctors)))
            .await
            .unwrap();
        assert!(one.duties.is_empty(), "{who} sees the draft");
    }
    // Nor does anyone outside the group.
    refused(
        w.s.rotation(&w.at(ADMIN), w.doctors, may).await,
        ErrorCode::NotFound,
    );

    // A new draft replaces the old one, with the same slots.
    w.s.draft_rotation(&w.at(CLINIC_DOCTOR), w.doctors, may, 8)
        .await
        .unwrap();
    let redraft = w.rotation(CLINIC_DOCTOR, may).await;
    assert_eq!(redraft.duties.len(), expected.len());
    assert!(redraft.problems.is_empty(), "{:?}", redraft.problems);

    // Published: the members see what the owner sees.
    w.s.publish_rotation(&w.at(CLINIC_DOCTOR), w.doctors, may, None)
        .await
        .unwrap();
    let published = holders(&w.rotation(CLINIC_DOCTOR, may).await.duties);
    for who in [HOSPITAL_DOCTOR, OTHER_DOCTOR, CLINIC_DOCTOR_2] {
        let view = w.rotation(who, may).await;
        assert_eq!(view.state.as_ref().unwrap().status, "published");
        assert_eq!(holders(&view.duties), published, "{who}");
        let cal = w.view(who, may, last).await;
        assert_eq!(cal.duties.len(), expected.len(), "{who}");
        assert!(cal
            .duties
            .iter()
            .all(|e| e.group_id == w.doctors && e.group_name == DOCTORS && e.association == HOST));
    }
    // Not to people outside the group.
    let outside = w.view(NURSE, may, last).await;
    assert!(outside.duties.is_empty());
    // A published month is changed slot by slot, not redrafted.
    refused(
        w.s.draft_rotation(&w.at(CLINIC_DOCTOR), w.doctors, may, 9)
            .await,
        ErrorCode::Conflict,
    );
    assert_eq!(
        holders(&w.rotation(CLINIC_DOCTOR_3, may).await.duties),
        published
    );
    // On record.
    let of_may = |rows: Vec<(Option<Uuid>, Option<String>, serde_json::Value)>| {
        rows.iter()
            .filter(|r| r.2["month"] == may.to_string())
            .count()
    };
    assert_eq!(of_may(w.audit(HOST, "duty.draft").await), 2);
    assert_eq!(of_may(w.audit(HOST, "duty.publish").await), 1);
    assert_eq!(
        w.audit(HOST, "duty.settings").await.len(),
        settings_before + 1
    );
}

#[tokio::test]
async fn only_active_members_take_part_in_the_rotation() {
    let w = World::new().await;
    // 青木 is invited to the doctors' group but has not accepted.
    w.s.invite_to_group(&w.at(CLINIC_DOCTOR), w.doctors, w.id(NURSE))
        .await
        .unwrap();
    let participants = [
        w.participant(CLINIC_DOCTOR),
        w.participant(HOSPITAL_DOCTOR),
        w.participant(NURSE),
    ];
    let e = refused(
        w.s.set_duty_settings(&w.at(CLINIC_DOCTOR), w.doctors, &settings(), &participants)
            .await,
        ErrorCode::InvalidInput,
    );
    assert_eq!(e.field, Some("participants"));
}

#[tokio::test]
async fn todays_doctor_on_call_is_the_published_one() {
    let w = World::new().await;
    let today = calendar::today();
    let month = calendar::month_of(today);
    // The demo published this month: its doctor of today is on call.
    let demo: Vec<(String, Option<PersonId>)> = w
        .rotation(HOSPITAL_DOCTOR, month)
        .await
        .duties
        .iter()
        .filter(|d| d.day == today)
        .map(|d| (d.kind.clone(), d.user_id))
        .collect();
    assert!(!demo.is_empty());
    let on_call =
        w.s.on_call_today(&w.at(CLINIC_DOCTOR_3), w.doctors)
            .await
            .unwrap();
    assert_eq!(
        on_call
            .iter()
            .map(|c| (calendar::kind_code(c.kind).to_owned(), c.user_id))
            .collect::<Vec<_>>(),
        demo
    );

    // The month drafted again from scratch, with the contacts of this test.
    w.clear_rotation().await;
    w.set_up_rotation(&FIVE).await;
    w.s.draft_rotation(&w.at(CLINIC_DOCTOR), w.doctors, month, 3)
        .await
        .unwrap();
    // A draft puts nobody on call.
    let none =
        w.s.on_call_today(&w.at(HOSPITAL_DOCTOR), w.doctors)
            .await
            .unwrap();
    assert!(none.is_empty(), "{none:?}");
    w.s.publish_rotation(&w.at(CLINIC_DOCTOR), w.doctors, month, None)
        .await
        .unwrap();

    let duties = w.rotation(CLINIC_DOCTOR, month).await.duties;
    let expected: Vec<(String, Option<PersonId>)> = duties
        .iter()
        .filter(|d| d.day == today)
        .map(|d| (d.kind.clone(), d.user_id))
        .collect();
    assert!(!expected.is_empty(), "today has at least its night");
    for who in [
        HOSPITAL_DOCTOR,
        OTHER_DOCTOR,
        CLINIC_DOCTOR_2,
        CLINIC_DOCTOR,
    ] {
        let on_call = w.s.on_call_today(&w.at(who), w.doctors).await.unwrap();
        let got: Vec<(String, Option<PersonId>)> = on_call
            .iter()
            .map(|c| (calendar::kind_code(c.kind).to_owned(), c.user_id))
            .collect();
        assert_eq!(got, expected, "{who}");
        for c in &on_call {
            assert_eq!(c.day, today);
            let person = c.user_id.expect("covered");
            let holder = w.who_is(person);
            assert_eq!(c.contact, contact_of(holder));
            assert!(c.name.is_some());
        }
    }
    for who in [ADMIN, NURSE] {
        refused(
            w.s.on_call_today(&w.at(who), w.doctors).await,
            ErrorCode::NotFound,
        );
    }
    refused(
        w.s.on_call_today(&w.at_in(OTHER_NURSE, OTHER), w.doctors)
            .await,
        ErrorCode::NotFound,
    );

    // The owner hands today's night to someone else: on call at once.
    let night = calendar::duty_kind("night");
    let current = expected
        .iter()
        .find(|(k, _)| k == "night")
        .and_then(|(_, p)| *p)
        .unwrap();
    let replacement = FIVE
        .iter()
        .map(|who| w.id(who))
        .find(|p| *p != current)
        .unwrap();
    w.s.assign_duty(
        &w.at(CLINIC_DOCTOR),
        w.doctors,
        today,
        night,
        Some(replacement),
    )
    .await
    .unwrap();
    let on_call =
        w.s.on_call_today(&w.at(OTHER_DOCTOR), w.doctors)
            .await
            .unwrap();
    let tonight = on_call
        .iter()
        .find(|c| calendar::kind_code(c.kind) == "night")
        .unwrap();
    assert_eq!(tonight.user_id, Some(replacement));
    assert_eq!(tonight.contact, contact_of(w.who_is(replacement)));
    // Only a participant may be assigned, and only the owner assigns.
    refused(
        w.s.assign_duty(
            &w.at(CLINIC_DOCTOR),
            w.doctors,
            today,
            night,
            Some(w.id(ADMIN)),
        )
        .await,
        ErrorCode::InvalidInput,
    );
    refused(
        w.s.assign_duty(&w.at(OTHER_DOCTOR), w.doctors, today, night, Some(current))
            .await,
        ErrorCode::NotFound,
    );
}

/// Publishes the next free May (see [`golden_week`]) for [`FIVE`]; returns its slots, the
/// first slot (day, kind code) held by someone other than the owner (so that the owner's
/// rights do not blur the test) and its holder.
async fn published_may(w: &World) -> (Vec<DutyRow>, NaiveDate, String, &'static str) {
    w.set_up_rotation(&FIVE).await;
    let duties = w.publish(golden_week(), 11).await;
    let slot = duties
        .iter()
        .find(|d| d.user_id.is_some_and(|p| p != w.id(CLINIC_DOCTOR)))
        .expect("a slot held by a member");
    let holder = w.who_is(slot.user_id.unwrap());
    let (day, kind) = (slot.day, slot.kind.clone());
    (duties, day, kind, holder)
}

#[tokio::test]
async fn a_swap_hands_a_slot_over_once() {
    let w = World::new().await;
    let (_, day, kind, holder) = published_may(&w).await;
    let k = calendar::duty_kind(&kind);
    // Neither of them the owner.
    let others: Vec<&str> = FIVE
        .iter()
        .copied()
        .filter(|who| *who != holder && *who != CLINIC_DOCTOR)
        .collect();
    let (taker, bystander) = (others[0], others[1]);
    let group = w.doctors;

    // Someone who does not hold the slot cannot give it away.
    let e = refused(
        w.s.request_swap(&w.at(taker), group, day, k, w.id(bystander), None, "")
            .await,
        ErrorCode::InvalidInput,
    );
    assert_eq!(e.field, Some("day"));
    // Not to oneself, not to someone outside the rotation.
    refused(
        w.s.request_swap(&w.at(holder), group, day, k, w.id(holder), None, "")
            .await,
        ErrorCode::InvalidInput,
    );
    refused(
        w.s.request_swap(&w.at(holder), group, day, k, w.id(ADMIN), None, "")
            .await,
        ErrorCode::InvalidInput,
    );
    let swap =
        w.s.request_swap(
            &w.at(holder),
            group,
            day,
            k,
            w.id(taker),
            None,
            "学会のため",
        )
        .await
        .unwrap();
    // One open request per slot.
    refused(
        w.s.request_swap(&w.at(holder), group, day, k, w.id(bystander), None, "")
            .await,
        ErrorCode::Conflict,
    );
    let open = w.rotation(taker, day).await.swaps;
    assert_eq!(open.iter().map(|s| s.id).collect::<Vec<_>>(), [swap]);
    assert_eq!(open[0].status, "requested");
    assert_eq!(open[0].note, "学会のため");

    // Only the colleague asked accepts: not a bystander, not the one who asked, not the
    // owner.
    for who in [bystander, holder, CLINIC_DOCTOR] {
        if who == taker {
            continue;
        }
        refused(
            w.s.answer_swap(&w.at(who), group, swap, SwapAnswer::Accept)
                .await,
            ErrorCode::NotFound,
        );
    }
    assert_eq!(w.holder(day, &kind).await, Some(w.id(holder)));
    // An unknown swap, or this one under another group.
    refused(
        w.s.answer_swap(&w.at(taker), group, Uuid::now_v7(), SwapAnswer::Accept)
            .await,
        ErrorCode::NotFound,
    );

    w.s.answer_swap(&w.at(taker), group, swap, SwapAnswer::Accept)
        .await
        .unwrap();
    assert_eq!(w.holder(day, &kind).await, Some(w.id(taker)));
    assert_eq!(w.swap_status(swap).await, "accepted");
    assert!(w.rotation(taker, day).await.swaps.is_empty());
    // Answered once: again, or withdrawn late, is a conflict.
    refused(
        w.s.answer_swap(&w.at(taker), group, swap, SwapAnswer::Accept)
            .await,
        ErrorCode::Conflict,
    );
    refused(
        w.s.answer_swap(&w.at(taker), group, swap, SwapAnswer::Decline)
            .await,
        ErrorCode::Conflict,
    );
    refused(
        w.s.answer_swap(&w.at(holder), group, swap, SwapAnswer::Withdraw)
            .await,
        ErrorCode::Conflict,
    );
    assert_eq!(w.holder(day, &kind).await, Some(w.id(taker)));
    // The slot is no longer the former holder's to give.
    refused(
        w.s.request_swap(&w.at(holder), group, day, k, w.id(bystander), None, "")
            .await,
        ErrorCode::InvalidInput,
    );
    // The taker's calendar shows the duty as theirs.
    let cal = w.view(taker, day, day).await;
    assert!(cal
        .duties
        .iter()
        .any(|e| e.duty.kind == kind && e.duty.user_id == Some(w.id(taker))));

    // A declined request changes nothing; a withdrawn one neither.
    let (day2, kind2) = {
        let duties = w.rotation(CLINIC_DOCTOR, day).await.duties;
        let d = duties
            .iter()
            .find(|d| d.user_id == Some(w.id(taker)) && (d.day, &d.kind) != (day, &kind))
            .expect("another slot of the taker");
        (d.day, d.kind.clone())
    };
    let k2 = calendar::duty_kind(&kind2);
    let declined =
        w.s.request_swap(&w.at(taker), group, day2, k2, w.id(bystander), None, "")
            .await
            .unwrap();
    w.s.answer_swap(&w.at(bystander), group, declined, SwapAnswer::Decline)
        .await
        .unwrap();
    assert_eq!(w.swap_status(declined).await, "declined");
    assert_eq!(w.holder(day2, &kind2).await, Some(w.id(taker)));
    let withdrawn =
        w.s.request_swap(&w.at(taker), group, day2, k2, w.id(bystander), None, "")
            .await
            .unwrap();
    // The colleague cannot withdraw someone else's request.
    refused(
        w.s.answer_swap(&w.at(bystander), group, withdrawn, SwapAnswer::Withdraw)
            .await,
        ErrorCode::NotFound,
    );
    w.s.answer_swap(&w.at(taker), group, withdrawn, SwapAnswer::Withdraw)
        .await
        .unwrap();
    assert_eq!(w.swap_status(withdrawn).await, "cancelled");
    refused(
        w.s.answer_swap(&w.at(bystander), group, withdrawn, SwapAnswer::Accept)
            .await,
        ErrorCode::Conflict,
    );
    assert_eq!(w.holder(day2, &kind2).await, Some(w.id(taker)));

    // A draft month's slots are nobody's to hand over yet.
    let june = golden_week().checked_add_months(Months::new(1)).unwrap();
    w.s.draft_rotation(&w.at(CLINIC_DOCTOR), group, june, 5)
        .await
        .unwrap();
    let drafted = w.rotation(CLINIC_DOCTOR, june).await.duties;
    let slot = drafted
        .iter()
        .find(|d| d.user_id == Some(w.id(taker)))
        .expect("a June slot of the taker");
    let e = refused(
        w.s.request_swap(
            &w.at(taker),
            group,
            slot.day,
            calendar::duty_kind(&slot.kind),
            w.id(bystander),
            None,
            "",
        )
        .await,
        ErrorCode::InvalidInput,
    );
    assert_eq!(e.field, Some("day"));

    // On record: the requests and the answers.
    assert_eq!(w.audit(HOST, "duty.swap_request").await.len(), 3);
    assert_eq!(w.audit(HOST, "duty.swap_answer").await.len(), 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_answers_to_one_swap_at_once_hand_the_slot_over_once() {
    let w = World::new().await;
    let (duties, _, _, holder) = published_may(&w).await;
    let taker = FIVE.iter().copied().find(|who| *who != holder).unwrap();
    let group = w.doctors;
    let theirs: Vec<(NaiveDate, String)> = duties
        .iter()
        .filter(|d| d.user_id == Some(w.id(holder)))
        .map(|d| (d.day, d.kind.clone()))
        .collect();
    assert!(theirs.len() >= 4, "{theirs:?}");

    // A tired taker (or a script) accepting the same request twice at the same moment.
    for (day, kind) in &theirs[..2] {
        let swap =
            w.s.request_swap(
                &w.at(holder),
                group,
                *day,
                calendar::duty_kind(kind),
                w.id(taker),
                None,
                "",
            )
            .await
            .unwrap();
        let (a, b) = (w.at(taker), w.at(taker));
        let (r1, r2) = tokio::join!(
            w.s.answer_swap(&a, group, swap, SwapAnswer::Accept),
            w.s.answer_swap(&b, group, swap, SwapAnswer::Accept),
        );
        let results = [r1, r2];
        let ok = results.iter().filter(|r| r.is_ok()).count();
        assert_eq!(ok, 1, "{results:?}");
        for r in &results {
            if let Err(e) = r {
                assert_eq!(e.code, ErrorCode::Conflict, "{e:?}");
            }
        }
        assert_eq!(w.holder(*day, kind).await, Some(w.id(taker)));
        assert_eq!(w.swap_status(swap).await, "accepted");
        let answers = w.audit(HOST, "duty.swap_answer").await;
        assert_eq!(
            answers
                .iter()
                .filter(|r| r.1.as_deref() == Some(&*swap.to_string()))
                .count(),
            1,
            "one answer on record"
        );
    }

    // Accepted and withdrawn at the same moment: one of the two, and the slot agrees with it.
    for (day, kind) in &theirs[2..4] {
        let swap =
            w.s.request_swap(
                &w.at(holder),
                group,
                *day,
                calendar::duty_kind(kind),
                w.id(taker),
                None,
                "",
            )
            .await
            .unwrap();
        let (a, b) = (w.at(taker), w.at(holder));
        let (accepted, withdrawn) = tokio::join!(
            w.s.answer_swap(&a, group, swap, SwapAnswer::Accept),
            w.s.answer_swap(&b, group, swap, SwapAnswer::Withdraw),
        );
        assert!(
            accepted.is_ok() != withdrawn.is_ok(),
            "{accepted:?} {withdrawn:?}"
        );
        let loser = if accepted.is_ok() {
            &withdrawn
        } else {
            &accepted
        };
        assert_eq!(loser.as_ref().unwrap_err().code, ErrorCode::Conflict);
        let status = w.swap_status(swap).await;
        let now = w.holder(*day, kind).await;
        if accepted.is_ok() {
            assert_eq!((status.as_str(), now), ("accepted", Some(w.id(taker))));
        } else {
            assert_eq!((status.as_str(), now), ("cancelled", Some(w.id(holder))));
        }
    }
}

#[tokio::test]
async fn an_exchange_trades_two_slots_and_is_checked_when_asked_and_when_accepted() {
    let w = World::new().await;
    let (duties, day, kind, holder) = published_may(&w).await;
    let group = w.doctors;
    let taker = FIVE
        .iter()
        .copied()
        .find(|who| *who != holder && *who != CLINIC_DOCTOR)
        .unwrap();
    let theirs = duties
        .iter()
        .find(|d| d.user_id == Some(w.id(taker)))
        .expect("a slot of the taker");
    let (other_day, other_kind) = (theirs.day, theirs.kind.clone());
    let k = calendar::duty_kind(&kind);
    let ok = calendar::duty_kind(&other_kind);
    // The slot asked for in exchange must be the colleague's.
    let not_theirs = duties
        .iter()
        .find(|d| d.user_id.is_some() && d.user_id != Some(w.id(taker)))
        .unwrap();
    let e = refused(
        w.s.request_swap(
            &w.at(holder),
            group,
            day,
            k,
            w.id(taker),
            Some((not_theirs.day, calendar::duty_kind(&not_theirs.kind))),
            "",
        )
        .await,
        ErrorCode::InvalidInput,
    );
    assert_eq!(e.field, Some("otherDay"));

    let swap =
        w.s.request_swap(
            &w.at(holder),
            group,
            day,
            k,
            w.id(taker),
            Some((other_day, ok)),
            "交換をお願いします",
        )
        .await
        .unwrap();
    w.s.answer_swap(&w.at(taker), group, swap, SwapAnswer::Accept)
        .await
        .unwrap();
    assert_eq!(w.holder(day, &kind).await, Some(w.id(taker)));
    assert_eq!(w.holder(other_day, &other_kind).await, Some(w.id(holder)));

    // Asked again the other way round, but the owner reassigns the colleague's slot before
    // the answer: the request is void.
    let swap =
        w.s.request_swap(
            &w.at(taker),
            group,
            day,
            k,
            w.id(holder),
            Some((other_day, ok)),
            "",
        )
        .await
        .unwrap();
    let bystander = FIVE
        .iter()
        .copied()
        .find(|who| ![holder, taker].contains(who))
        .unwrap();
    w.s.assign_duty(
        &w.at(CLINIC_DOCTOR),
        group,
        other_day,
        ok,
        Some(w.id(bystander)),
    )
    .await
    .unwrap();
    refused(
        w.s.answer_swap(&w.at(holder), group, swap, SwapAnswer::Accept)
            .await,
        ErrorCode::Conflict,
    );
    assert_eq!(w.swap_status(swap).await, "cancelled");
    assert_eq!(w.holder(day, &kind).await, Some(w.id(taker)));
    assert_eq!(
        w.holder(other_day, &other_kind).await,
        Some(w.id(bystander))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn crossed_exchanges_between_two_months_accepted_at_once_both_go_through() {
    let w = World::new().await;
    w.set_up_rotation(&FIVE).await;
    let may = golden_week();
    let june = may.checked_add_months(Months::new(1)).unwrap();
    w.publish(may, 13).await;
    w.publish(june, 17).await;
    let group = w.doctors;
    let kind = |k: &String| calendar::duty_kind(k);
    // Pair after pair, round after round, A offers a May slot for a June slot of B, and B
    // offers another June slot for another May slot of A; each accepts the other's at the
    // same moment. The two exchanges touch different slots: both should go through, whatever
    // the order in which the two months are locked. (Each round is a race, lost now and
    // then; the many rounds make the loss all but certain.)
    let pairs = [
        (HOSPITAL_DOCTOR, OTHER_DOCTOR),
        (CLINIC_DOCTOR_2, CLINIC_DOCTOR_3),
        (OTHER_DOCTOR, CLINIC_DOCTOR_2),
        (CLINIC_DOCTOR_3, HOSPITAL_DOCTOR),
    ];
    for (a, b) in pairs {
        let slots_of = |duties: Vec<DutyRow>, who: &str| -> Vec<(NaiveDate, String)> {
            duties
                .into_iter()
                .filter(|d| d.user_id == Some(w.id(who)))
                .map(|d| (d.day, d.kind))
                .collect()
        };
        let a_may = slots_of(w.rotation(CLINIC_DOCTOR, may).await.duties, a);
        let b_june = slots_of(w.rotation(CLINIC_DOCTOR, june).await.duties, b);
        let rounds = a_may.len().min(b_june.len()) / 2;
        for round in 0..rounds {
            let (a_slot, b_slot) = (&a_may[round], &b_june[round]);
            let (a_other, b_other) = (
                &a_may[a_may.len() - 1 - round],
                &b_june[b_june.len() - 1 - round],
            );
            let from_a =
                w.s.request_swap(
                    &w.at(a),
                    group,
                    a_slot.0,
                    kind(&a_slot.1),
                    w.id(b),
                    Some((b_slot.0, kind(&b_slot.1))),
                    "",
                )
                .await
                .unwrap();
            let from_b =
                w.s.request_swap(
                    &w.at(b),
                    group,
                    b_other.0,
                    kind(&b_other.1),
                    w.id(a),
                    Some((a_other.0, kind(&a_other.1))),
                    "",
                )
                .await
                .unwrap();
            let (by_b, by_a) = (w.at(b), w.at(a));
            let (r1, r2) = tokio::join!(
                w.s.answer_swap(&by_b, group, from_a, SwapAnswer::Accept),
                w.s.answer_swap(&by_a, group, from_b, SwapAnswer::Accept),
            );
            assert!(
                r1.is_ok() && r2.is_ok(),
                "{a} {b} round {round}: {r1:?} {r2:?}"
            );
            assert_eq!(w.holder(a_slot.0, &a_slot.1).await, Some(w.id(b)));
            assert_eq!(w.holder(b_slot.0, &b_slot.1).await, Some(w.id(a)));
            assert_eq!(w.holder(b_other.0, &b_other.1).await, Some(w.id(a)));
            assert_eq!(w.holder(a_other.0, &a_other.1).await, Some(w.id(b)));
        }
    }
}

// --- Feeds ----------------------------------------------------------------------------------

#[tokio::test]
async fn a_feed_holds_ones_events_and_own_duty_and_nothing_of_other_groups() {
    let w = World::new().await;
    let today = calendar::today();
    let soon = today + Duration::days(10);
    // 川村's groups: the doctors' group, the forum and his patient groups.
    let review = w
        .create(
            CLINIC_DOCTOR,
            HOST,
            w.doctors,
            &timed("連携医 症例検討会", soon, t(19, 0), t(20, 30)),
        )
        .await;
    let seminar = w
        .create(
            ADMIN,
            HOST,
            w.forum,
            &all_day("多職種 研修会のご案内", soon, soon + Duration::days(1)),
        )
        .await;
    let weekly = w
        .create(
            HOSPITAL_DOCTOR,
            HOST,
            w.doctors,
            &series("紹介状 確認タイム", soon, soon, "FREQ=WEEKLY;COUNT=3"),
        )
        .await;
    // Groups he is not in, in both associations; and one too far ahead for the feed.
    let elsewhere = w
        .create(
            OTHER_NURSE,
            OTHER,
            w.sakura_forum,
            &all_day("さくら台 連絡会議", soon, soon),
        )
        .await;
    let ito = w
        .create(
            OTHER_DOCTOR,
            OTHER,
            w.ito,
            &all_day("伊藤さん 退院前カンファ", soon, soon),
        )
        .await;
    let far = today + Duration::days(400);
    let too_far = w
        .create(
            CLINIC_DOCTOR,
            HOST,
            w.doctors,
            &all_day("遠い先の会", far, far),
        )
        .await;
    let absence =
        w.s.add_absence(
            &w.at(CLINIC_DOCTOR),
            soon,
            soon + Duration::days(2),
            AbsenceSpan::AllDay,
            "",
        )
        .await
        .unwrap();
    // This month's rotation of three doctors, published (instead of the demo's).
    w.clear_rotation().await;
    w.set_up_rotation(&[CLINIC_DOCTOR, OTHER_DOCTOR, HOSPITAL_DOCTOR])
        .await;
    let duties = w.publish(calendar::month_of(today), 21).await;
    let duty_uid = |d: &DutyRow| format!("UID:duty-{}-{}-{}@musubi", d.group_id, d.day, d.kind);
    let his: Vec<&DutyRow> = duties
        .iter()
        .filter(|d| d.user_id == Some(w.id(CLINIC_DOCTOR)))
        .collect();
    assert!(!his.is_empty());

    let (feed, token) = w.s.create_feed(&w.at(CLINIC_DOCTOR), false).await.unwrap();
    let ics =
        w.s.feed_ics(&token, &w.meta)
            .await
            .unwrap()
            .expect("a feed");
    assert!(ics.starts_with("BEGIN:VCALENDAR\r\n"), "{ics}");
    assert!(ics.trim_end().ends_with("END:VCALENDAR"));
    assert!(ics.lines().all(|l| l.trim_end_matches('\r').len() <= 75));
    let text = unfold(&ics);
    for (id, title) in [
        (review, "連携医 症例検討会"),
        (seminar, "多職種 研修会のご案内"),
        (weekly, "紹介状 確認タイム"),
    ] {
        assert!(text.contains(&format!("UID:event-{id}@musubi")), "{title}");
        assert!(text.contains(title), "{title} in\n{text}");
    }
    assert!(text.contains("RRULE:FREQ=WEEKLY;COUNT=3"), "{text}");
    assert!(text.contains(&format!("UID:absence-{absence}@musubi")));
    for (id, title) in [
        (elsewhere, "さくら台 連絡会議"),
        (ito, "伊藤さん 退院前カンファ"),
        (too_far, "遠い先の会"),
    ] {
        assert!(!text.contains(&id.to_string()), "{title}");
        assert!(!text.contains(title), "{title} in\n{text}");
    }
    assert!(!text.contains("伊藤"));
    // His own duty, and nobody else's.
    for duty in &duties {
        let mine = duty.user_id == Some(w.id(CLINIC_DOCTOR));
        assert_eq!(text.contains(&duty_uid(duty)), mine, "{duty:?}");
    }
    assert!(text.contains("当番（"));

    // Listed, revoked, gone.
    let feeds = w.s.feeds(w.v(CLINIC_DOCTOR)).await.unwrap();
    assert_eq!(feeds.iter().map(|f| f.id).collect::<Vec<_>>(), [feed]);
    assert!(!feeds[0].with_patient_names);
    assert!(feeds[0].last_used_at.is_some(), "the fetch is noted");
    let reads = w.audit(HOST, "feed.read").await;
    assert!(reads
        .iter()
        .any(|r| r.0 == Some(w.id(CLINIC_DOCTOR).uuid())
            && r.1.as_deref() == Some(&*feed.to_string())));
    // Only its owner revokes it.
    refused(
        w.s.revoke_feed(&w.at(HOSPITAL_DOCTOR), feed).await,
        ErrorCode::NotFound,
    );
    assert!(w.s.feed_ics(&token, &w.meta).await.unwrap().is_some());
    w.s.revoke_feed(&w.at(CLINIC_DOCTOR), feed).await.unwrap();
    assert!(w.s.feed_ics(&token, &w.meta).await.unwrap().is_none());
    assert!(w.s.feeds(w.v(CLINIC_DOCTOR)).await.unwrap().is_empty());
    refused(
        w.s.revoke_feed(&w.at(CLINIC_DOCTOR), feed).await,
        ErrorCode::NotFound,
    );
    // Junk: nothing, and no error.
    let mut near = token.clone();
    let last = near.pop().unwrap();
    near.push(if last == 'A' { 'B' } else { 'A' });
    for junk in [
        String::new(),
        "x".to_owned(),
        "not a token".to_owned(),
        "A".repeat(43),
        "%00%0d%0a".to_owned(),
        "あ".repeat(30),
        "z".repeat(5000),
        near,
    ] {
        assert!(
            w.s.feed_ics(&junk, &w.meta).await.unwrap().is_none(),
            "{junk:?}"
        );
    }
    assert_eq!(w.audit(HOST, "feed.create").await.len(), 1);
    assert_eq!(w.audit(HOST, "feed.revoke").await.len(), 1);
}

#[tokio::test]
async fn a_patient_groups_events_carry_the_patient_only_in_a_feed_that_asks_for_it() {
    let w = World::new().await;
    let soon = calendar::today() + Duration::days(5);
    let mut visit = timed("褥瘡処置の確認", soon, t(10, 0), t(10, 30));
    visit.category = EventCategory::Visit;
    visit.place = "青葉町 山田様宅".to_owned();
    visit.notes = "ご家族同席".to_owned();
    let id = w.create(NURSE, HOST, w.yamada, &visit).await;
    // 川村 owns the patient group.
    let (_, plain) = w.s.create_feed(&w.at(CLINIC_DOCTOR), false).await.unwrap();
    let (_, named) = w.s.create_feed(&w.at(CLINIC_DOCTOR), true).await.unwrap();

    let text = unfold(&w.s.feed_ics(&plain, &w.meta).await.unwrap().unwrap());
    assert!(text.contains(&format!("UID:event-{id}@musubi")), "{text}");
    assert!(text.contains("SUMMARY:訪問\r\n"), "{text}");
    for secret in ["褥瘡処置の確認", "山田", "青葉町", "ご家族同席", "85歳"] {
        assert!(!text.contains(secret), "{secret} in\n{text}");
    }
    let text = unfold(&w.s.feed_ics(&named, &w.meta).await.unwrap().unwrap());
    assert!(
        text.contains(&format!("SUMMARY:褥瘡処置の確認（{YAMADA}）")),
        "{text}"
    );
    assert!(text.contains("LOCATION:青葉町 山田様宅"), "{text}");
    assert!(text.contains("DESCRIPTION:ご家族同席"), "{text}");
    assert!(text.contains(";TZID=Asia/Tokyo:"), "{text}");
    // The nurse's own feed (a member of the group) follows the same rule.
    let (_, hers) = w.s.create_feed(&w.at(NURSE), false).await.unwrap();
    let text = unfold(&w.s.feed_ics(&hers, &w.meta).await.unwrap().unwrap());
    assert!(text.contains(&format!("UID:event-{id}@musubi")));
    assert!(!text.contains("山田") && !text.contains("褥瘡"), "{text}");
    // Someone outside the group: not at all.
    let (_, outside) = w.s.create_feed(&w.at(ADMIN), true).await.unwrap();
    let text = unfold(&w.s.feed_ics(&outside, &w.meta).await.unwrap().unwrap());
    assert!(!text.contains(&id.to_string()), "{text}");
}

#[tokio::test]
async fn a_person_has_at_most_five_feeds() {
    let w = World::new().await;
    let a = w.at(PHARMACIST);
    let mut tokens = Vec::new();
    for _ in 0..5 {
        tokens.push(w.s.create_feed(&a, false).await.unwrap());
    }
    let distinct: BTreeSet<&str> = tokens.iter().map(|(_, t)| t.as_str()).collect();
    assert_eq!(distinct.len(), 5);
    let e = refused(w.s.create_feed(&a, false).await, ErrorCode::InvalidInput);
    assert_eq!(e.field, Some("feed"));
    // Revoking one makes room; the others still work.
    w.s.revoke_feed(&a, tokens[0].0).await.unwrap();
    w.s.create_feed(&a, true).await.unwrap();
    for (_, token) in &tokens[1..] {
        assert!(w.s.feed_ics(token, &w.meta).await.unwrap().is_some());
    }
    assert!(w.s.feed_ics(&tokens[0].1, &w.meta).await.unwrap().is_none());
    assert_eq!(w.s.feeds(w.v(PHARMACIST)).await.unwrap().len(), 5);
    // Another person's count is their own.
    w.s.create_feed(&w.at(THERAPIST), false).await.unwrap();
}
