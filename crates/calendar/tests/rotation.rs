//! The on-call rotation drafter and checker.

use std::collections::{HashMap, HashSet};

use chrono::{Datelike, NaiveDate, Weekday};
use musubi_calendar::rotation::{
    check, counts, day_class, draft, slots_for_month, Absence, AbsencePart, Counts, DayClass,
    DutyKind, History, Participant, Problem, RotationError, Shape, Slot, Warning,
};
use uuid::Uuid;

fn date(y: i32, m: u32, d: u32) -> NaiveDate {
    NaiveDate::from_ymd_opt(y, m, d).expect("valid date")
}

fn id(n: u128) -> Uuid {
    Uuid::from_u128(0x4d75_7375_6269_0000_0000_0000_0000_0000 | n)
}

/// Golden Week 2027: 憲法記念日, みどりの日, こどもの日 (Monday to Wednesday).
fn golden_week(d: NaiveDate) -> bool {
    d.year() == 2027 && d.month() == 5 && (3..=5).contains(&d.day())
}

fn no_holidays(_: NaiveDate) -> bool {
    false
}

/// Nights on weekdays; day and night on weekends and holidays; Saturday is a weekend.
fn usual_shape() -> Shape {
    Shape {
        weekday: vec![DutyKind::Night],
        weekend_holiday: vec![DutyKind::Day, DutyKind::Night],
        saturday_is_weekend: true,
    }
}

fn absence(person: Uuid, from: NaiveDate, to: NaiveDate, part: AbsencePart) -> Absence {
    Absence {
        person,
        from,
        to_inclusive: to,
        part,
    }
}

fn count_of(assignments: &[(Slot, Option<Uuid>)], person: Uuid) -> Counts {
    counts(assignments)
        .into_iter()
        .find(|(p, _)| *p == person)
        .map(|(_, c)| c)
        .unwrap_or_default()
}

fn spread(values: impl Iterator<Item = u64>) -> u64 {
    let values: Vec<u64> = values.collect();
    let max = values.iter().copied().max().unwrap_or(0);
    let min = values.iter().copied().min().unwrap_or(0);
    max - min
}

fn dims(c: &Counts) -> [u64; 5] {
    [c.weekday, c.weekend, c.holiday, c.night, c.total].map(u64::from)
}

fn hard_problems(problems: &[Problem]) -> Vec<&Problem> {
    problems
        .iter()
        .filter(|p| !matches!(p, Problem::Uncovered(_)))
        .collect()
}

/// xorshift64*: enough randomness for generated inputs, no crate needed.
struct Rng(u64);

impl Rng {
    fn new(seed: u64) -> Self {
        Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }

    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    fn below(&mut self, n: u64) -> u64 {
        if n == 0 {
            0
        } else {
            self.next() % n
        }
    }

    fn chance(&mut self, percent: u64) -> bool {
        self.below(100) < percent
    }
}

const WEEKDAYS: [Weekday; 7] = [
    Weekday::Mon,
    Weekday::Tue,
    Weekday::Wed,
    Weekday::Thu,
    Weekday::Fri,
    Weekday::Sat,
    Weekday::Sun,
];

#[test]
fn slots_of_golden_week_month() {
    let slots = slots_for_month(2027, 5, &usual_shape(), &golden_week).expect("slots");
    // 18 weekdays with a night, 10 weekend and 3 holiday dates with day and night.
    assert_eq!(slots.len(), 18 + 2 * 10 + 2 * 3);
    assert!(slots
        .windows(2)
        .all(|w| (w[0].date, w[0].kind) < (w[1].date, w[1].kind)));
    let first = slots.first().expect("a slot");
    assert_eq!(
        (first.date, first.kind, first.class),
        (date(2027, 5, 1), DutyKind::Day, DayClass::Weekend)
    );
    let holidays: Vec<NaiveDate> = slots
        .iter()
        .filter(|s| s.class == DayClass::Holiday)
        .map(|s| s.date)
        .collect();
    assert_eq!(
        holidays,
        [3, 3, 4, 4, 5, 5].map(|d| date(2027, 5, d)).to_vec()
    );
    let thursday = slots
        .iter()
        .filter(|s| s.date == date(2027, 5, 6))
        .collect::<Vec<_>>();
    assert_eq!(thursday.len(), 1);
    assert_eq!(
        (thursday[0].kind, thursday[0].class),
        (DutyKind::Night, DayClass::Weekday)
    );
}

#[test]
fn day_classes() {
    let sat = date(2027, 5, 8);
    let sun = date(2027, 5, 9);
    assert_eq!(day_class(sat, true, &no_holidays), DayClass::Weekend);
    assert_eq!(day_class(sat, false, &no_holidays), DayClass::Weekday);
    assert_eq!(day_class(sun, false, &no_holidays), DayClass::Weekend);
    // A holiday on a Sunday is a holiday.
    assert_eq!(day_class(sun, true, &|_| true), DayClass::Holiday);

    let shape = Shape {
        saturday_is_weekend: false,
        ..usual_shape()
    };
    let slots = slots_for_month(2027, 5, &shape, &golden_week).expect("slots");
    let saturday: Vec<&Slot> = slots.iter().filter(|s| s.date == sat).collect();
    assert_eq!(saturday.len(), 1);
    assert_eq!(saturday[0].class, DayClass::Weekday);
}

#[test]
fn slots_of_other_shapes_and_bad_months() {
    // Leap February, duty only on weekdays, repeated kinds collapse.
    let shape = Shape {
        weekday: vec![DutyKind::Night, DutyKind::Day, DutyKind::Night],
        weekend_holiday: vec![],
        saturday_is_weekend: true,
    };
    let slots = slots_for_month(2028, 2, &shape, &no_holidays).expect("slots");
    assert_eq!(slots.len(), 2 * 21);
    assert_eq!(slots.last().map(|s| s.date), Some(date(2028, 2, 29)));
    assert!(slots.iter().all(|s| s.class == DayClass::Weekday));

    let empty = slots_for_month(2027, 5, &Shape::default(), &no_holidays).expect("slots");
    assert!(empty.is_empty());

    for (y, m) in [
        (2027, 0),
        (2027, 13),
        (2027, u32::MAX),
        (i32::MAX, 1),
        (i32::MIN, 12),
    ] {
        assert_eq!(
            slots_for_month(y, m, &usual_shape(), &no_holidays),
            Err(RotationError::InvalidMonth { year: y, month: m })
        );
    }
    // chrono's last month ends without a next date.
    let last = NaiveDate::MAX;
    let slots =
        slots_for_month(last.year(), last.month(), &usual_shape(), &no_holidays).expect("slots");
    assert_eq!(slots.last().map(|s| s.date), Some(last));
    let d = draft(
        &slots,
        &[Participant::new(id(1)), Participant::new(id(2))],
        &[],
        &History::default(),
        &[],
        0,
    );
    assert!(d.uncovered.is_empty());
}

#[test]
fn realistic_golden_week_month() {
    let doctors: Vec<Uuid> = (1..=6).map(id).collect();
    let mut participants: Vec<Participant> = doctors.iter().map(|&d| Participant::new(d)).collect();
    participants[2].no_nights = true;
    participants[3].max_per_month = Some(3);
    participants[4].unavailable_weekdays = vec![Weekday::Mon, Weekday::Thu];
    participants[5].preferred_weekdays = vec![Weekday::Wed];
    let absences = vec![
        // Away over Golden Week, and a conference week later in the month.
        absence(
            doctors[0],
            date(2027, 5, 1),
            date(2027, 5, 7),
            AbsencePart::AllDay,
        ),
        absence(
            doctors[1],
            date(2027, 5, 17),
            date(2027, 5, 23),
            AbsencePart::AllDay,
        ),
        absence(
            doctors[5],
            date(2027, 5, 12),
            date(2027, 5, 12),
            AbsencePart::Afternoon,
        ),
    ];
    let slots = slots_for_month(2027, 5, &usual_shape(), &golden_week).expect("slots");
    let d = draft(
        &slots,
        &participants,
        &absences,
        &History::default(),
        &[],
        7,
    );

    assert_eq!(d.assignments.len(), slots.len());
    assert!(d.uncovered.is_empty(), "uncovered: {:?}", d.uncovered);
    assert_eq!(check(&d.assignments, &participants, &absences), vec![]);
    assert!(
        !d.warnings
            .iter()
            .any(|w| matches!(w, Warning::SameDayDayAndNight { .. })),
        "six doctors need nobody on day and night: {:?}",
        d.warnings
    );

    for (slot, person) in &d.assignments {
        let person = person.expect("covered");
        if slot.date <= date(2027, 5, 7) {
            assert_ne!(person, doctors[0]);
        }
        if (date(2027, 5, 17)..=date(2027, 5, 23)).contains(&slot.date) {
            assert_ne!(person, doctors[1]);
        }
        if slot.kind == DutyKind::Night {
            assert_ne!(person, doctors[2]);
        }
        if matches!(slot.date.weekday(), Weekday::Mon | Weekday::Thu) {
            assert_ne!(person, doctors[4]);
        }
    }
    assert!(count_of(&d.assignments, doctors[3]).total <= 3);
    assert!(count_of(&d.assignments, doctors[2]).night == 0);
    assert!(count_of(&d.assignments, doctors[2]).total > 0);

    // The counts in the draft are those of its assignments, one row per doctor.
    assert_eq!(
        d.counts.iter().map(|(p, _)| *p).collect::<Vec<_>>(),
        doctors
    );
    for (p, c) in &d.counts {
        assert_eq!(*c, count_of(&d.assignments, *p));
    }
    let total: u32 = d.counts.iter().map(|(_, c)| c.total).sum();
    assert_eq!(total as usize, slots.len());
}

#[test]
fn half_day_off_blocks_the_day_duty_only() {
    let p = id(1);
    let sat = date(2027, 5, 8);
    let slots: Vec<Slot> = slots_for_month(2027, 5, &usual_shape(), &golden_week)
        .expect("slots")
        .into_iter()
        .filter(|s| s.date == sat)
        .collect();
    for part in [AbsencePart::Morning, AbsencePart::Afternoon] {
        let absences = [absence(p, sat, sat, part)];
        let d = draft(
            &slots,
            &[Participant::new(p)],
            &absences,
            &History::default(),
            &[],
            1,
        );
        assert_eq!(
            d.assignments
                .iter()
                .map(|(s, who)| (s.kind, *who))
                .collect::<Vec<_>>(),
            vec![(DutyKind::Day, None), (DutyKind::Night, Some(p))]
        );
    }
    let absences = [absence(p, sat, sat, AbsencePart::AllDay)];
    let d = draft(
        &slots,
        &[Participant::new(p)],
        &absences,
        &History::default(),
        &[],
        1,
    );
    assert_eq!(d.uncovered, slots);
}

#[test]
fn one_person_gets_day_and_night_but_rests_after_a_night() {
    let p = id(1);
    let slots: Vec<Slot> = slots_for_month(2027, 5, &usual_shape(), &golden_week)
        .expect("slots")
        .into_iter()
        .filter(|s| s.date <= date(2027, 5, 2))
        .collect();
    let d = draft(
        &slots,
        &[Participant::new(p)],
        &[],
        &History::default(),
        &[],
        3,
    );
    // Saturday day and night, then no Sunday day duty after the night; Sunday night.
    let who: Vec<Option<Uuid>> = d.assignments.iter().map(|(_, w)| *w).collect();
    assert_eq!(who, vec![Some(p), Some(p), None, Some(p)]);
    assert_eq!(d.uncovered, vec![slots[2]]);
    assert!(d.warnings.contains(&Warning::SameDayDayAndNight {
        person: p,
        date: date(2027, 5, 1)
    }));
    assert!(d.warnings.contains(&Warning::ConsecutiveDays {
        person: p,
        first: date(2027, 5, 1)
    }));
}

#[test]
fn everybody_absent_leaves_the_day_uncovered() {
    let participants: Vec<Participant> = (1..=4).map(|n| Participant::new(id(n))).collect();
    let golden = date(2027, 5, 4);
    let absences: Vec<Absence> = participants
        .iter()
        .map(|p| absence(p.id, golden, golden, AbsencePart::AllDay))
        .collect();
    let slots = slots_for_month(2027, 5, &usual_shape(), &golden_week).expect("slots");
    let d = draft(
        &slots,
        &participants,
        &absences,
        &History::default(),
        &[],
        11,
    );
    let expected: Vec<Slot> = slots.iter().copied().filter(|s| s.date == golden).collect();
    assert_eq!(expected.len(), 2);
    assert_eq!(d.uncovered, expected);
    for (slot, who) in &d.assignments {
        assert_eq!(who.is_none(), slot.date == golden);
    }
    assert_eq!(
        check(&d.assignments, &participants, &absences),
        expected
            .iter()
            .map(|s| Problem::Uncovered(*s))
            .collect::<Vec<_>>()
    );
}

#[test]
fn nobody_and_nothing() {
    let slots = slots_for_month(2027, 5, &usual_shape(), &golden_week).expect("slots");
    let d = draft(&slots, &[], &[], &History::default(), &[], 0);
    assert_eq!(d.uncovered, slots);
    assert!(d.counts.is_empty());
    assert!(d.assignments.iter().all(|(_, w)| w.is_none()));

    let participants = [Participant::new(id(1))];
    let d = draft(&[], &participants, &[], &History::default(), &[], 0);
    assert!(d.assignments.is_empty() && d.uncovered.is_empty() && d.warnings.is_empty());
    assert_eq!(d.counts, vec![(id(1), Counts::default())]);

    assert!(check(&[], &[], &[]).is_empty());
    assert!(counts(&[]).is_empty());

    // Nobody may take anything.
    let mut blocked = Participant::new(id(2));
    blocked.max_per_month = Some(0);
    let d = draft(&slots, &[blocked], &[], &History::default(), &[], 0);
    assert_eq!(d.uncovered, slots);
}

#[test]
fn fair_when_nobody_is_constrained() {
    let shapes = [
        usual_shape(),
        Shape {
            weekday: vec![DutyKind::Day, DutyKind::Night],
            weekend_holiday: vec![DutyKind::Day, DutyKind::Night],
            saturday_is_weekend: false,
        },
        Shape {
            weekday: vec![],
            weekend_holiday: vec![DutyKind::Day],
            saturday_is_weekend: true,
        },
    ];
    for (shape_no, shape) in shapes.iter().enumerate() {
        // Two people are left out: after a night the other must take the next day, so the
        // rest rule alone decides who gets which class.
        for people in [3u128, 4, 6, 8, 11] {
            let participants: Vec<Participant> =
                (1..=people).map(|n| Participant::new(id(n))).collect();
            for month in [1, 2, 5, 8, 11] {
                let slots = slots_for_month(2027, month, shape, &golden_week).expect("slots");
                for seed in 0..3 {
                    let d = draft(&slots, &participants, &[], &History::default(), &[], seed);
                    assert!(d.uncovered.is_empty());
                    for dim in 0..5 {
                        let s = spread(d.counts.iter().map(|(_, c)| dims(c)[dim]));
                        assert!(
                            s <= 1,
                            "shape {shape_no}, {people} people, month {month}, seed {seed}, \
                             dimension {dim}: {:?}",
                            d.counts
                        );
                    }
                }
            }
        }
    }
}

#[test]
fn history_shifts_duty_to_those_with_fewer() {
    // Weekend day duty only: 10 slots in May 2027 (3 holidays excluded by the class).
    let shape = Shape {
        weekday: vec![],
        weekend_holiday: vec![DutyKind::Day],
        saturday_is_weekend: true,
    };
    let slots: Vec<Slot> = slots_for_month(2027, 5, &shape, &golden_week)
        .expect("slots")
        .into_iter()
        .filter(|s| s.class == DayClass::Weekend)
        .collect();
    assert_eq!(slots.len(), 10);
    let participants: Vec<Participant> = (1..=4).map(|n| Participant::new(id(n))).collect();
    let mut history = History::default();
    history.per_person.insert(
        id(1),
        Counts {
            weekend: 4,
            total: 4,
            ..Counts::default()
        },
    );
    history.per_person.insert(
        id(2),
        Counts {
            weekend: 2,
            total: 2,
            ..Counts::default()
        },
    );
    for seed in 0..8 {
        let d = draft(&slots, &participants, &[], &history, &[], seed);
        let now: Vec<u32> = d.counts.iter().map(|(_, c)| c.weekend).collect();
        // 6 from history + 10 now = 16 = 4 each.
        assert_eq!(now, vec![0, 2, 4, 4], "seed {seed}");
    }

    // Night history counts for nights, not for the weekday class.
    let slots = slots_for_month(2027, 6, &usual_shape(), &no_holidays).expect("slots");
    let participants: Vec<Participant> = (1..=3).map(|n| Participant::new(id(n))).collect();
    let mut history = History::default();
    history.per_person.insert(
        id(3),
        Counts {
            night: 6,
            weekday: 6,
            total: 6,
            ..Counts::default()
        },
    );
    let d = draft(&slots, &participants, &[], &history, &[], 0);
    let nights: Vec<u32> = d.counts.iter().map(|(_, c)| c.night).collect();
    assert!(nights[2] + 4 <= nights[0].min(nights[1]), "{nights:?}");
}

#[test]
fn history_from_published_months_carries_over() {
    let participants: Vec<Participant> = (1..=5).map(|n| Participant::new(id(n))).collect();
    let mut history = History::default();
    let mut all: HashMap<Uuid, Counts> = HashMap::new();
    for month in 1..=6 {
        let slots = slots_for_month(2027, month, &usual_shape(), &golden_week).expect("slots");
        let d = draft(&slots, &participants, &[], &history, &[], u64::from(month));
        history.add_assignments(&d.assignments);
        for (p, c) in counts(&d.assignments) {
            let e = all.entry(p).or_default();
            e.weekday += c.weekday;
            e.weekend += c.weekend;
            e.holiday += c.holiday;
            e.night += c.night;
            e.total += c.total;
        }
    }
    assert_eq!(history.per_person, all);
    for dim in 0..5 {
        assert!(spread(all.values().map(|c| dims(c)[dim])) <= 1, "{all:?}");
    }
    assert_eq!(
        History::from_assignments(&[]),
        History::default(),
        "nothing from nothing"
    );
}

#[test]
fn preferences_break_ties() {
    // Wednesday and Friday nights only (never consecutive), three each: fairness and rest
    // leave only the preferences to decide who takes which.
    let slots: Vec<Slot> = slots_for_month(2027, 6, &usual_shape(), &no_holidays)
        .expect("slots")
        .into_iter()
        .filter(|s| matches!(s.date.weekday(), Weekday::Wed | Weekday::Fri))
        .collect();
    assert_eq!(slots.len(), 9);
    let mut participants: Vec<Participant> = (1..=3).map(|n| Participant::new(id(n))).collect();
    participants[0].preferred_weekdays = vec![Weekday::Wed];
    participants[1].preferred_weekdays = vec![Weekday::Fri, Weekday::Sat];
    for seed in 0..6 {
        let d = draft(&slots, &participants, &[], &History::default(), &[], seed);
        let days_of = |p: Uuid| -> Vec<Weekday> {
            d.assignments
                .iter()
                .filter(|(_, w)| *w == Some(p))
                .map(|(s, _)| s.date.weekday())
                .collect()
        };
        assert_eq!(days_of(id(1)), vec![Weekday::Wed; 3], "seed {seed}");
        assert_eq!(days_of(id(2)), vec![Weekday::Fri; 3], "seed {seed}");
        assert_eq!(days_of(id(3)).len(), 3, "seed {seed}");
    }
}

#[test]
fn same_seed_same_draft_other_seeds_differ() {
    let participants: Vec<Participant> = (1..=6).map(|n| Participant::new(id(n))).collect();
    let absences = [absence(
        id(2),
        date(2027, 5, 10),
        date(2027, 5, 14),
        AbsencePart::AllDay,
    )];
    let slots = slots_for_month(2027, 5, &usual_shape(), &golden_week).expect("slots");
    let mut seen = HashSet::new();
    for seed in 0..10 {
        let a = draft(
            &slots,
            &participants,
            &absences,
            &History::default(),
            &[],
            seed,
        );
        let b = draft(
            &slots,
            &participants,
            &absences,
            &History::default(),
            &[],
            seed,
        );
        assert_eq!(a, b);
        // The slot order of the input does not matter.
        let mut reversed = slots.clone();
        reversed.reverse();
        let c = draft(
            &reversed,
            &participants,
            &absences,
            &History::default(),
            &[],
            seed,
        );
        assert_eq!(a, c);
        seen.insert(a.assignments);
    }
    assert!(seen.len() > 1, "the seed changes the draft");
}

#[test]
fn fixed_assignments_are_kept_and_counted() {
    let participants: Vec<Participant> = (1..=4).map(|n| Participant::new(id(n))).collect();
    let slots = slots_for_month(2027, 5, &usual_shape(), &golden_week).expect("slots");
    // The administrator gives all three holiday nights to doctor 1.
    let fixed: Vec<(Slot, Uuid)> = slots
        .iter()
        .filter(|s| s.class == DayClass::Holiday && s.kind == DutyKind::Night)
        .map(|s| (*s, id(1)))
        .collect();
    let d = draft(&slots, &participants, &[], &History::default(), &fixed, 5);
    for (slot, person) in &fixed {
        assert!(d.assignments.contains(&(*slot, Some(*person))));
    }
    let c = count_of(&d.assignments, id(1));
    assert_eq!(c.holiday, 3);
    // Fairness counts the fixed nights: doctor 1 gets no more nights than anybody else.
    let nights: Vec<u32> = d.counts.iter().map(|(_, c)| c.night).collect();
    assert!(
        spread(nights.iter().map(|&n| u64::from(n))) <= 1,
        "{nights:?}"
    );
    assert!(check(&d.assignments, &participants, &[]).is_empty());
}

#[test]
fn fixed_assignments_breaking_rules_are_kept_with_warnings() {
    let mut participants: Vec<Participant> = (1..=3).map(|n| Participant::new(id(n))).collect();
    participants[0].no_nights = true;
    participants[1].max_per_month = Some(1);
    let slots = slots_for_month(2027, 5, &usual_shape(), &golden_week).expect("slots");
    let night = slots[1];
    let sunday_day = slots[2];
    let monday = slots[4];
    let stranger = id(99);
    let fixed = vec![
        (night, id(1)),       // no_nights
        (sunday_day, id(1)),  // after that night
        (monday, id(2)),      // within max...
        (slots[5], id(2)),    // ...then over it
        (slots[6], stranger), // not a participant
        (slots[6], id(3)),    // the same slot again
        (
            Slot {
                date: date(2027, 6, 1),
                ..monday
            },
            id(3),
        ), // not this month
    ];
    let absences = [absence(
        id(2),
        monday.date,
        monday.date,
        AbsencePart::AllDay,
    )];
    let d = draft(
        &slots,
        &participants,
        &absences,
        &History::default(),
        &fixed,
        9,
    );
    assert_eq!(d.assignments[1], (night, Some(id(1))));
    assert_eq!(d.assignments[2], (sunday_day, Some(id(1))));
    assert_eq!(d.assignments[6], (slots[6], Some(stranger)));
    // Doctor 2 is beyond the maximum already: nothing more.
    assert_eq!(count_of(&d.assignments, id(2)).total, 2);
    // The stranger is kept but not listed among the participants' counts.
    assert!(d.counts.iter().all(|(p, _)| *p != stranger));

    let expected = [
        Warning::DuplicateFixed {
            slot: slots[6],
            person: id(3),
        },
        Warning::FixedNotInSlots {
            slot: Slot {
                date: date(2027, 6, 1),
                ..monday
            },
            person: id(3),
        },
        Warning::FixedBreaksRule(Problem::NoNights {
            slot: night,
            person: id(1),
        }),
        Warning::FixedBreaksRule(Problem::NightThenDay {
            person: id(1),
            night,
            day: sunday_day,
        }),
        Warning::FixedBreaksRule(Problem::Absent {
            slot: monday,
            person: id(2),
        }),
        Warning::FixedBreaksRule(Problem::NotParticipant {
            slot: slots[6],
            person: stranger,
        }),
        Warning::FixedBreaksRule(Problem::OverMax {
            person: id(2),
            year: 2027,
            month: 5,
            count: 2,
            max: 1,
        }),
    ];
    for w in &expected {
        assert!(d.warnings.contains(w), "missing {w:?} in {:?}", d.warnings);
    }
    assert!(d.uncovered.is_empty());
}

#[test]
fn duplicates_in_the_input_are_reported() {
    let slots = slots_for_month(2027, 5, &usual_shape(), &golden_week).expect("slots");
    let mut doubled = slots.clone();
    doubled.push(slots[0]);
    let participants = vec![
        Participant::new(id(1)),
        Participant::new(id(2)),
        Participant::new(id(3)),
        Participant::new(id(1)),
    ];
    let d = draft(&doubled, &participants, &[], &History::default(), &[], 0);
    assert_eq!(d.assignments.len(), slots.len());
    assert_eq!(d.counts.len(), 3);
    assert!(d.warnings.contains(&Warning::DuplicateSlot(slots[0])));
    assert!(d.warnings.contains(&Warning::DuplicateParticipant(id(1))));
}

#[test]
fn check_finds_each_problem() {
    let slots = slots_for_month(2027, 5, &usual_shape(), &golden_week).expect("slots");
    let (a, b, c, stranger) = (id(1), id(2), id(3), id(4));
    let mut participants = vec![
        Participant::new(a),
        Participant::new(b),
        Participant::new(c),
    ];
    participants[0].unavailable_weekdays = vec![Weekday::Mon];
    participants[1].no_nights = true;
    participants[2].max_per_month = Some(2);
    let find = |d: u32, kind: DutyKind| {
        *slots
            .iter()
            .find(|s| s.date == date(2027, 5, d) && s.kind == kind)
            .expect("slot")
    };
    let sat_night = find(1, DutyKind::Night);
    let sun_day = find(2, DutyKind::Day);
    let mon_day = find(3, DutyKind::Day); // 憲法記念日, a Monday
    let tue_night = find(4, DutyKind::Night);
    let plan = vec![
        (find(1, DutyKind::Day), None),
        (sat_night, Some(a)),
        (sun_day, Some(a)),
        (mon_day, Some(a)),
        (tue_night, Some(b)),
        (find(5, DutyKind::Day), Some(stranger)),
        (find(6, DutyKind::Night), Some(c)),
        (find(10, DutyKind::Night), Some(c)),
        (find(12, DutyKind::Night), Some(c)),
        // Half a day off: the day is a problem, the night is not.
        (find(9, DutyKind::Day), Some(a)),
        (find(9, DutyKind::Night), Some(a)),
    ];
    let absences = [absence(
        a,
        date(2027, 5, 9),
        date(2027, 5, 9),
        AbsencePart::Morning,
    )];
    let problems = check(&plan, &participants, &absences);
    assert_eq!(
        problems,
        vec![
            Problem::Uncovered(find(1, DutyKind::Day)),
            Problem::NightThenDay {
                person: a,
                night: sat_night,
                day: sun_day
            },
            Problem::UnavailableDay {
                slot: mon_day,
                person: a
            },
            Problem::NoNights {
                slot: tue_night,
                person: b
            },
            Problem::NotParticipant {
                slot: find(5, DutyKind::Day),
                person: stranger
            },
            Problem::Absent {
                slot: find(9, DutyKind::Day),
                person: a
            },
            Problem::OverMax {
                person: c,
                year: 2027,
                month: 5,
                count: 3,
                max: 2
            },
        ]
    );

    // Absences added after publication are found in the published plan.
    let published = draft(&slots, &participants, &[], &History::default(), &[], 4);
    assert!(hard_problems(&check(&published.assignments, &participants, &[])).is_empty());
    let someone = published.assignments[10].1.expect("covered");
    let later = [absence(
        someone,
        published.assignments[10].0.date,
        published.assignments[10].0.date,
        AbsencePart::AllDay,
    )];
    assert!(
        check(&published.assignments, &participants, &later).contains(&Problem::Absent {
            slot: published.assignments[10].0,
            person: someone
        })
    );
}

#[test]
fn counts_by_class() {
    let slots = slots_for_month(2027, 5, &usual_shape(), &golden_week).expect("slots");
    let plan: Vec<(Slot, Option<Uuid>)> = slots
        .iter()
        .map(|s| {
            (
                *s,
                if s.date.day() % 2 == 0 {
                    Some(id(1))
                } else {
                    Some(id(2))
                },
            )
        })
        .chain([(slots[0], None)])
        .collect();
    let c = counts(&plan);
    assert_eq!(c.len(), 2);
    assert_eq!(c[0].0, id(2), "first appearance first");
    let all = c.iter().fold(Counts::default(), |mut acc, (_, c)| {
        acc.weekday += c.weekday;
        acc.weekend += c.weekend;
        acc.holiday += c.holiday;
        acc.night += c.night;
        acc.total += c.total;
        acc
    });
    assert_eq!(
        all,
        Counts {
            weekday: 18,
            weekend: 20,
            holiday: 6,
            night: 31,
            total: 44
        }
    );
    // A holiday night counts as holiday and as night.
    let mut one = Counts::default();
    one.add(&slots[7]);
    assert_eq!(slots[7].class, DayClass::Holiday);
    assert_eq!(slots[7].kind, DutyKind::Night);
    assert_eq!(
        one,
        Counts {
            holiday: 1,
            night: 1,
            total: 1,
            ..Counts::default()
        }
    );
}

/// Random groups, months, shapes, absences, history and fixed slots: the draft never breaks
/// a hard rule, leaves nothing uncovered that someone could take, and is deterministic.
#[test]
fn hard_rules_hold_for_random_inputs() {
    let mut covered_some = 0;
    let mut uncovered_some = 0;
    for case in 0..250u64 {
        let mut rng = Rng::new(case);
        let year = 2026 + rng.below(3) as i32;
        let month = 1 + rng.below(12) as u32;
        let kinds = |rng: &mut Rng| match rng.below(4) {
            0 => vec![],
            1 => vec![DutyKind::Day],
            2 => vec![DutyKind::Night],
            _ => vec![DutyKind::Day, DutyKind::Night],
        };
        let shape = Shape {
            weekday: kinds(&mut rng),
            weekend_holiday: kinds(&mut rng),
            saturday_is_weekend: rng.chance(50),
        };
        let holidays: HashSet<u32> = (1..=31).filter(|_| rng.chance(8)).collect();
        let is_holiday = move |d: NaiveDate| holidays.contains(&d.day());
        let slots = slots_for_month(year, month, &shape, &is_holiday).expect("slots");

        let people = rng.below(9) as u128;
        let participants: Vec<Participant> = (1..=people)
            .map(|n| {
                let mut p = Participant::new(id(n));
                p.unavailable_weekdays = WEEKDAYS.into_iter().filter(|_| rng.chance(12)).collect();
                p.preferred_weekdays = WEEKDAYS.into_iter().filter(|_| rng.chance(10)).collect();
                p.max_per_month = rng.chance(30).then(|| rng.below(8) as u8);
                p.no_nights = rng.chance(20);
                p
            })
            .collect();
        let first = date(year, month, 1);
        let absences: Vec<Absence> = (0..rng.below(8))
            .map(|_| {
                let from = first + chrono::Days::new(rng.below(35)) - chrono::Days::new(3);
                let to = if rng.chance(10) {
                    from - chrono::Days::new(1)
                } else {
                    from + chrono::Days::new(rng.below(10))
                };
                let part = match rng.below(4) {
                    0 => AbsencePart::Morning,
                    1 => AbsencePart::Afternoon,
                    _ => AbsencePart::AllDay,
                };
                absence(
                    id(1 + u128::from(rng.below(people as u64 + 1))),
                    from,
                    to,
                    part,
                )
            })
            .collect();
        let mut history = History::default();
        for p in &participants {
            if rng.chance(50) {
                let weekday = rng.below(10) as u32;
                let weekend = rng.below(6) as u32;
                let holiday = rng.below(3) as u32;
                let night = rng.below(8) as u32;
                history.per_person.insert(
                    p.id,
                    Counts {
                        weekday,
                        weekend,
                        holiday,
                        night,
                        total: weekday + weekend + holiday,
                    },
                );
            }
        }
        let fixed: Vec<(Slot, Uuid)> = if rng.chance(40) && !slots.is_empty() {
            (0..rng.below(5))
                .map(|_| {
                    let slot = slots[rng.below(slots.len() as u64) as usize];
                    (slot, id(1 + u128::from(rng.below(people as u64 + 1))))
                })
                .collect()
        } else {
            vec![]
        };
        let seed = rng.next();

        let d = draft(&slots, &participants, &absences, &history, &fixed, seed);
        let context = format!("case {case}: {year}-{month}, {people} people, {shape:?}");

        assert_eq!(
            d.assignments.iter().map(|(s, _)| *s).collect::<Vec<_>>(),
            slots,
            "{context}"
        );
        let none: Vec<Slot> = d
            .assignments
            .iter()
            .filter(|(_, w)| w.is_none())
            .map(|(s, _)| *s)
            .collect();
        assert_eq!(d.uncovered, none, "{context}");
        for (p, c) in &d.counts {
            assert_eq!(*c, count_of(&d.assignments, *p), "{context}");
        }

        // Fixed slots are as the administrator left them (the first for a slot wins).
        let mut kept: HashMap<Slot, Uuid> = HashMap::new();
        for (slot, person) in &fixed {
            kept.entry(*slot).or_insert(*person);
        }
        for (slot, person) in &kept {
            assert!(d.assignments.contains(&(*slot, Some(*person))), "{context}");
        }

        // Any broken rule comes from a fixed slot.
        let problems = check(&d.assignments, &participants, &absences);
        for problem in hard_problems(&problems) {
            let from_fixed = match problem {
                Problem::Uncovered(_) => false,
                Problem::NotParticipant { slot, .. }
                | Problem::Absent { slot, .. }
                | Problem::UnavailableDay { slot, .. }
                | Problem::NoNights { slot, .. } => kept.contains_key(slot),
                Problem::NightThenDay { night, day, .. } => {
                    kept.contains_key(night) || kept.contains_key(day)
                }
                Problem::OverMax {
                    person,
                    count,
                    month,
                    ..
                } => {
                    let fixed_count = kept
                        .iter()
                        .filter(|(s, p)| *p == person && s.date.month() == *month)
                        .count();
                    *count as usize == fixed_count
                }
            };
            assert!(from_fixed, "{context}: {problem:?}");
            assert!(
                d.warnings
                    .contains(&Warning::FixedBreaksRule(problem.clone())),
                "{context}"
            );
        }

        // Nothing uncovered that somebody could take without breaking a rule.
        for slot in &d.uncovered {
            for p in &participants {
                let mut plan = d.assignments.clone();
                for entry in plan.iter_mut() {
                    if entry.0 == *slot {
                        entry.1 = Some(p.id);
                    }
                }
                let after = check(&plan, &participants, &absences);
                let new: Vec<&Problem> = hard_problems(&after)
                    .into_iter()
                    .filter(|x| !problems.contains(x))
                    .collect();
                assert!(
                    !new.is_empty(),
                    "{context}: {slot:?} could go to {:?}",
                    p.id
                );
            }
        }

        if case % 5 == 0 {
            let again = draft(&slots, &participants, &absences, &history, &fixed, seed);
            assert_eq!(d, again, "{context}");
        }

        if d.uncovered.is_empty() && !slots.is_empty() {
            covered_some += 1;
        }
        if !d.uncovered.is_empty() {
            uncovered_some += 1;
        }
    }
    // The generator reaches both outcomes.
    assert!(
        covered_some > 25 && uncovered_some > 25,
        "{covered_some} {uncovered_some}"
    );
}

#[test]
fn consecutive_days_avoided_when_there_are_enough_people() {
    let participants: Vec<Participant> = (1..=8).map(|n| Participant::new(id(n))).collect();
    let slots = slots_for_month(2027, 5, &usual_shape(), &golden_week).expect("slots");
    for seed in 0..5 {
        let d = draft(&slots, &participants, &[], &History::default(), &[], seed);
        assert!(d.uncovered.is_empty());
        assert_eq!(d.warnings, vec![], "seed {seed}");
    }
}

#[test]
fn extreme_values_do_not_overflow() {
    let slots = slots_for_month(2027, 5, &usual_shape(), &golden_week).expect("slots");
    let mut participants: Vec<Participant> = (1..=3).map(|n| Participant::new(id(n))).collect();
    participants[0].max_per_month = Some(u8::MAX);
    participants[1].unavailable_weekdays = WEEKDAYS.to_vec();
    participants[2].preferred_weekdays = WEEKDAYS.repeat(3);
    let full = Counts {
        weekday: u32::MAX,
        weekend: u32::MAX,
        holiday: u32::MAX,
        night: u32::MAX,
        total: u32::MAX,
    };
    let mut history = History::default();
    history.per_person.insert(id(1), full);
    let absences = [
        absence(id(3), NaiveDate::MIN, NaiveDate::MAX, AbsencePart::Morning),
        absence(id(1), NaiveDate::MAX, NaiveDate::MIN, AbsencePart::AllDay),
    ];
    for seed in [0, u64::MAX] {
        let d = draft(&slots, &participants, &absences, &history, &[], seed);
        // Doctor 2 never, doctor 3 nights only, doctor 1 (saturated history) the rest.
        assert!(d.uncovered.is_empty());
        assert_eq!(count_of(&d.assignments, id(2)).total, 0);
        assert_eq!(count_of(&d.assignments, id(3)).total, 31);
        assert!(hard_problems(&check(&d.assignments, &participants, &absences)).is_empty());
        let mut h = History::default();
        h.per_person.insert(id(1), full);
        h.add_assignments(&d.assignments);
        assert_eq!(h.per_person[&id(1)].weekday, u32::MAX);
    }
}
