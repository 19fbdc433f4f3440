//! The demo's calendar, relative to the day it is seeded: the doctors' group with its weekly
//! clinic closure and monthly meeting, a care conference in a patient group, the doctors'
//! absences, and the on-call duty rotation of this month and the next, drafted by Musubi and
//! published by the group's owner (this month's linked to the rota topic).

use chrono::{Datelike, Duration, NaiveDate, NaiveTime, Weekday};
use musubi_db::calendar::{DutySettingsRow, ParticipantRow};
use musubi_domain::calendar::{month_of, today, AbsenceSpan, EventCategory, EventInput};
use musubi_domain::sessions::Viewer;
use musubi_domain::types::{GroupId, TopicId};
use musubi_domain::{Actor, AppError, AppResult, Services, Tenant};
use std::collections::HashMap;

/// What the calendar needs from the script: who is who, where the groups and the rota topic are.
pub(crate) struct Cast<'a> {
    pub services: &'a Services,
    pub client: &'a musubi_domain::audit::RequestMeta,
    pub people: &'a HashMap<&'a str, Viewer>,
    pub host: &'a Tenant,
    pub other: &'a Tenant,
    pub doctors: GroupId,
    pub yamada: GroupId,
    pub rota: Option<TopicId>,
}

impl Cast<'_> {
    fn person(&self, key: &str) -> AppResult<&Viewer> {
        self.people.get(key).ok_or_else(AppError::not_found)
    }
}

fn time(h: u32, m: u32) -> Option<NaiveTime> {
    NaiveTime::from_hms_opt(h, m, 0)
}

/// The first `weekday` on or after `day`.
fn next(day: NaiveDate, weekday: Weekday) -> NaiveDate {
    let ahead = (7 + weekday.num_days_from_monday() - day.weekday().num_days_from_monday()) % 7;
    day + Duration::days(i64::from(ahead))
}

pub(crate) async fn seed(c: &Cast<'_>) -> AppResult<()> {
    let day = today();
    let month = month_of(day);
    let next_month = month
        .checked_add_months(chrono::Months::new(1))
        .ok_or_else(AppError::not_found)?;
    let s = c.services;

    // Events of the doctors' group.
    let kawamura = Actor::new(c.person("kawamura")?, c.host, c.client);
    s.create_event(
        &kawamura,
        c.doctors,
        &EventInput {
            category: EventCategory::Absence,
            title: "川村内科 木曜午後休診".to_owned(),
            first_day: next(month, Weekday::Thu),
            last_day: next(month, Weekday::Thu),
            starts_at: time(13, 0),
            ends_at: time(18, 0),
            rrule: Some("FREQ=WEEKLY;BYDAY=TH".to_owned()),
            place: String::new(),
            notes: "午後の往診依頼は大野先生へお願いします。".to_owned(),
        },
    )
    .await?;
    let second_tuesday = next(month, Weekday::Tue) + Duration::days(7);
    s.create_event(
        &kawamura,
        c.doctors,
        &EventInput {
            category: EventCategory::Conference,
            title: "連携医会議".to_owned(),
            first_day: second_tuesday,
            last_day: second_tuesday,
            starts_at: time(19, 0),
            ends_at: time(20, 30),
            rrule: Some("FREQ=MONTHLY;BYDAY=2TU".to_owned()),
            place: "みなと川医師会館 2階会議室".to_owned(),
            notes: "当番表の確認と症例検討。".to_owned(),
        },
    )
    .await?;
    let conference = day + Duration::days(3);
    s.create_event(
        &kawamura,
        c.yamada,
        &EventInput {
            category: EventCategory::Conference,
            title: "サービス担当者会議".to_owned(),
            first_day: conference,
            last_day: conference,
            starts_at: time(14, 0),
            ends_at: time(15, 0),
            rrule: None,
            place: "ご自宅".to_owned(),
            notes: "在宅酸素の流量と訪問回数の見直し。".to_owned(),
        },
    )
    .await?;

    // Absences, each entered by the doctor (in their own association).
    let absences: [(&str, &Tenant, NaiveDate, NaiveDate, AbsenceSpan, &str); 4] = [
        (
            "takahashi",
            c.other,
            day + Duration::days(5),
            day + Duration::days(7),
            AbsenceSpan::AllDay,
            "学会出張",
        ),
        (
            "matsui",
            c.host,
            day + Duration::days(2),
            day + Duration::days(2),
            AbsenceSpan::Afternoon,
            "研修",
        ),
        (
            "oono",
            c.host,
            next_month + Duration::days(9),
            next_month + Duration::days(11),
            AbsenceSpan::AllDay,
            "夏季休暇",
        ),
        (
            "kawamura",
            c.host,
            next_month + Duration::days(20),
            next_month + Duration::days(20),
            AbsenceSpan::AllDay,
            "",
        ),
    ];
    for (key, tenant, first, last, span, note) in absences {
        let actor = Actor::new(c.person(key)?, tenant, c.client);
        s.add_absence(&actor, first, last, span, note).await?;
    }

    // The rotation: nights on weekdays, day and night at weekends and on holidays.
    let participants = [
        ("kawamura", "090-1111-0001", 0i16, None, false),
        ("takahashi", "090-1111-0002", 0, None, false),
        // The hospital doctor takes weekend days only, four at most.
        ("sato", "090-1111-0003", 0, Some(4i16), true),
        ("oono", "090-1111-0004", 0, None, false),
        // Wednesdays (bit 4) are her clinic's late surgery.
        ("matsui", "090-1111-0005", 4, None, false),
    ];
    let mut rows = Vec::new();
    for (key, contact, unavailable, max, no_nights) in participants {
        rows.push(ParticipantRow {
            user_id: c.person(key)?.user().id,
            name: String::new(),
            unavailable_weekdays: unavailable,
            preferred_weekdays: 0,
            max_per_month: max,
            no_nights,
            contact: contact.to_owned(),
        });
    }
    let settings = DutySettingsRow {
        weekday_kinds: vec!["night".to_owned()],
        weekend_kinds: vec!["day".to_owned(), "night".to_owned()],
        saturday_is_weekend: true,
    };
    s.set_duty_settings(&kawamura, c.doctors, &settings, &rows)
        .await?;
    for (m, topic) in [(month, c.rota), (next_month, None)] {
        s.draft_rotation(&kawamura, c.doctors, m, 1).await?;
        s.publish_rotation(&kawamura, c.doctors, m, topic.map(TopicId::uuid))
            .await?;
    }
    Ok(())
}
