//! On-call duty rotation (当番表): drafting a month's rotation for a group of collaborating
//! home-care doctors, and checking a plan that was edited by hand or published earlier.
//!
//! Pure logic: holiday-ness comes from the caller (`is_holiday`), nothing here reads a clock
//! or a database. Nothing panics on any input; a slot nobody can take is left uncovered and
//! reported rather than filled by breaking a rule.
//!
//! Hard rules (never broken by [`draft`], reported by [`check`]): absences, unavailable
//! weekdays, `no_nights`, `max_per_month`, and rest after a night (nobody has the night of D
//! and the day duty of D+1). Soft rules, in order of weight: not the day and the night of the
//! same date; fairness per class (weekday, weekend, holiday, night — each counted with
//! [`History`]) and in total; not two consecutive dates; preferred weekdays. Fairness comes
//! before consecutive dates because in small groups the two conflict, and uneven counts are
//! what members notice; consecutive dates then decide who, among the equally fair.

use std::collections::HashMap;

use chrono::{Datelike, NaiveDate, Weekday};
use uuid::Uuid;

/// Which part of the day a duty covers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum DutyKind {
    /// 日中.
    Day,
    /// 夜間: the evening of the date through the next morning.
    Night,
}

/// Which duties exist on which days. An empty list means no duty on such days.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Shape {
    pub weekday: Vec<DutyKind>,
    pub weekend_holiday: Vec<DutyKind>,
    /// Sunday is always a weekend day; Saturday only if this is set (many clinics open on
    /// Saturday mornings).
    pub saturday_is_weekend: bool,
}

impl Shape {
    /// Sorted and without repeats, so that (date, kind) names one slot.
    fn kinds(&self, class: DayClass) -> Vec<DutyKind> {
        let mut kinds = match class {
            DayClass::Weekday => self.weekday.clone(),
            DayClass::Weekend | DayClass::Holiday => self.weekend_holiday.clone(),
        };
        kinds.sort();
        kinds.dedup();
        kinds
    }
}

/// The class of a date for fairness. A holiday on a weekend is a holiday.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum DayClass {
    Weekday,
    Weekend,
    Holiday,
}

/// The class of `date`: holiday first, then Sunday (and Saturday if it counts), else weekday.
pub fn day_class(
    date: NaiveDate,
    saturday_is_weekend: bool,
    is_holiday: &dyn Fn(NaiveDate) -> bool,
) -> DayClass {
    if is_holiday(date) {
        return DayClass::Holiday;
    }
    match date.weekday() {
        Weekday::Sun => DayClass::Weekend,
        Weekday::Sat if saturday_is_weekend => DayClass::Weekend,
        _ => DayClass::Weekday,
    }
}

/// One duty to be covered by one person.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Slot {
    pub date: NaiveDate,
    pub kind: DutyKind,
    pub class: DayClass,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RotationError {
    #[error("no such month: {year}-{month:02}")]
    InvalidMonth { year: i32, month: u32 },
}

/// The slots of a month, in date then kind order (day before night).
pub fn slots_for_month(
    year: i32,
    month: u32,
    shape: &Shape,
    is_holiday: &dyn Fn(NaiveDate) -> bool,
) -> Result<Vec<Slot>, RotationError> {
    let first = NaiveDate::from_ymd_opt(year, month, 1)
        .ok_or(RotationError::InvalidMonth { year, month })?;
    let mut slots = Vec::new();
    let mut date = Some(first);
    while let Some(d) = date.filter(|d| d.month() == month) {
        let class = day_class(d, shape.saturday_is_weekend, is_holiday);
        for kind in shape.kinds(class) {
            slots.push(Slot {
                date: d,
                kind,
                class,
            });
        }
        // None only at chrono's last representable date.
        date = d.succ_opt();
    }
    Ok(slots)
}

/// A member of the rotation with their standing constraints.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Participant {
    pub id: Uuid,
    /// Never on these weekdays, holidays included (the weekday is the calendar's).
    pub unavailable_weekdays: Vec<Weekday>,
    /// Favoured when otherwise tied.
    pub preferred_weekdays: Vec<Weekday>,
    /// Per calendar month, counting fixed assignments.
    pub max_per_month: Option<u8>,
    pub no_nights: bool,
}

impl Participant {
    /// A participant without constraints.
    pub fn new(id: Uuid) -> Self {
        Participant {
            id,
            ..Participant::default()
        }
    }
}

/// Which part of each day in an absence the person is away.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AbsencePart {
    /// Blocks day and night duty.
    AllDay,
    /// Half a day off blocks the day duty only: the night duty of the same date starts in
    /// the evening, so someone off in the afternoon can still take it.
    Morning,
    /// See [`AbsencePart::Morning`].
    Afternoon,
}

/// A period away (holiday, conference, sick leave). An empty range (from after to) blocks
/// nothing. An all-day absence does not block the night before it: that night ends in the
/// morning, and the administrator knows whether the person leaves early.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Absence {
    pub person: Uuid,
    pub from: NaiveDate,
    pub to_inclusive: NaiveDate,
    pub part: AbsencePart,
}

impl Absence {
    /// Whether this absence keeps `person` from `slot`.
    pub fn blocks(&self, person: Uuid, slot: &Slot) -> bool {
        self.person == person
            && self.from <= slot.date
            && slot.date <= self.to_inclusive
            && (self.part == AbsencePart::AllDay || slot.kind == DutyKind::Day)
    }
}

/// Duty counts of one person. A weekend night counts as weekend and as night; `total` is
/// the number of duties.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Counts {
    pub weekday: u32,
    pub weekend: u32,
    pub holiday: u32,
    pub night: u32,
    pub total: u32,
}

impl Counts {
    /// Counts one more duty in `slot`.
    pub fn add(&mut self, slot: &Slot) {
        self.step(slot, true);
    }

    fn remove(&mut self, slot: &Slot) {
        self.step(slot, false);
    }

    fn step(&mut self, slot: &Slot, up: bool) {
        let bump = |n: &mut u32| {
            *n = if up {
                n.saturating_add(1)
            } else {
                n.saturating_sub(1)
            }
        };
        match slot.class {
            DayClass::Weekday => bump(&mut self.weekday),
            DayClass::Weekend => bump(&mut self.weekend),
            DayClass::Holiday => bump(&mut self.holiday),
        }
        if slot.kind == DutyKind::Night {
            bump(&mut self.night);
        }
        bump(&mut self.total);
    }

    /// The count for `class`.
    pub fn class(&self, class: DayClass) -> u32 {
        match class {
            DayClass::Weekday => self.weekday,
            DayClass::Weekend => self.weekend,
            DayClass::Holiday => self.holiday,
        }
    }

    fn dims(&self) -> [u32; 5] {
        [
            self.weekday,
            self.weekend,
            self.holiday,
            self.night,
            self.total,
        ]
    }
}

/// Per-person counts of an assignment list, in order of first appearance; uncovered slots
/// are skipped.
pub fn counts(assignments: &[(Slot, Option<Uuid>)]) -> Vec<(Uuid, Counts)> {
    let mut out: Vec<(Uuid, Counts)> = Vec::new();
    let mut index: HashMap<Uuid, usize> = HashMap::new();
    for (slot, person) in assignments {
        let Some(person) = person else { continue };
        let i = *index.entry(*person).or_insert_with(|| {
            out.push((*person, Counts::default()));
            out.len() - 1
        });
        if let Some((_, c)) = out.get_mut(i) {
            c.add(slot);
        }
    }
    out
}

/// Counts from earlier months, so fairness carries over. The caller chooses the window
/// (a few months); a newcomer without history will otherwise be given many duties.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct History {
    pub per_person: HashMap<Uuid, Counts>,
}

impl History {
    pub fn from_assignments(assignments: &[(Slot, Option<Uuid>)]) -> Self {
        let mut history = History::default();
        history.add_assignments(assignments);
        history
    }

    pub fn add_assignments(&mut self, assignments: &[(Slot, Option<Uuid>)]) {
        for (slot, person) in assignments {
            if let Some(person) = person {
                self.per_person.entry(*person).or_default().add(slot);
            }
        }
    }
}

/// A rule broken by a plan. The draft never breaks these itself.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Problem {
    /// Nobody on duty.
    Uncovered(Slot),
    /// Someone not (or no longer) in the rotation.
    NotParticipant { slot: Slot, person: Uuid },
    /// An absence covers the slot (see [`AbsencePart`] for half days).
    Absent { slot: Slot, person: Uuid },
    /// On one of the person's unavailable weekdays.
    UnavailableDay { slot: Slot, person: Uuid },
    /// A night for someone who does no nights.
    NoNights { slot: Slot, person: Uuid },
    /// The night of D and the day duty of D+1: no rest.
    NightThenDay {
        person: Uuid,
        night: Slot,
        day: Slot,
    },
    /// More duties in a calendar month than the person's maximum.
    OverMax {
        person: Uuid,
        year: i32,
        month: u32,
        count: u32,
        max: u8,
    },
}

/// Something the administrator should look at in a draft.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Warning {
    /// A fixed assignment breaks a rule; kept because the administrator chose it.
    FixedBreaksRule(Problem),
    /// A fixed assignment for a slot the month does not have (the shape changed?); ignored.
    FixedNotInSlots { slot: Slot, person: Uuid },
    /// A second fixed assignment for the same slot; the first one is kept.
    DuplicateFixed { slot: Slot, person: Uuid },
    /// The same participant twice; the first entry is used.
    DuplicateParticipant(Uuid),
    /// The same (date, kind) twice in the slots; drafted once.
    DuplicateSlot(Slot),
    /// Day and night duty on the same date: nobody else could take one of them.
    SameDayDayAndNight { person: Uuid, date: NaiveDate },
    /// Duty on `first` and on the next date.
    ConsecutiveDays { person: Uuid, first: NaiveDate },
}

/// A drafted rotation for the administrator to adjust.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Draft {
    /// In date then kind order; `None` is uncovered.
    pub assignments: Vec<(Slot, Option<Uuid>)>,
    /// This draft's counts (fixed included, history not), one per participant in input
    /// order, zeros included.
    pub counts: Vec<(Uuid, Counts)>,
    pub uncovered: Vec<Slot>,
    pub warnings: Vec<Warning>,
}

/// Checks a plan against the hard rules. Problems come in plan order (rest problems at the
/// day duty), then over-maximum problems per person and calendar month.
pub fn check(
    assignments: &[(Slot, Option<Uuid>)],
    participants: &[Participant],
    absences: &[Absence],
) -> Vec<Problem> {
    let mut by_id: HashMap<Uuid, &Participant> = HashMap::new();
    for p in participants {
        by_id.entry(p.id).or_insert(p);
    }
    let mut nights: HashMap<(NaiveDate, Uuid), Slot> = HashMap::new();
    for (slot, person) in assignments {
        if let (DutyKind::Night, Some(person)) = (slot.kind, person) {
            nights.entry((slot.date, *person)).or_insert(*slot);
        }
    }

    let mut problems = Vec::new();
    let mut per_month: Vec<((Uuid, i32, u32), u32)> = Vec::new();
    let mut month_index: HashMap<(Uuid, i32, u32), usize> = HashMap::new();
    for (slot, person) in assignments {
        let slot = *slot;
        let Some(person) = *person else {
            problems.push(Problem::Uncovered(slot));
            continue;
        };
        let Some(p) = by_id.get(&person) else {
            problems.push(Problem::NotParticipant { slot, person });
            continue;
        };
        if absences.iter().any(|a| a.blocks(person, &slot)) {
            problems.push(Problem::Absent { slot, person });
        }
        if p.unavailable_weekdays.contains(&slot.date.weekday()) {
            problems.push(Problem::UnavailableDay { slot, person });
        }
        if slot.kind == DutyKind::Night && p.no_nights {
            problems.push(Problem::NoNights { slot, person });
        }
        if slot.kind == DutyKind::Day {
            let night = slot
                .date
                .pred_opt()
                .and_then(|prev| nights.get(&(prev, person)));
            if let Some(night) = night {
                problems.push(Problem::NightThenDay {
                    person,
                    night: *night,
                    day: slot,
                });
            }
        }
        let key = (person, slot.date.year(), slot.date.month());
        let i = *month_index.entry(key).or_insert_with(|| {
            per_month.push((key, 0));
            per_month.len() - 1
        });
        if let Some((_, n)) = per_month.get_mut(i) {
            *n = n.saturating_add(1);
        }
    }
    for ((person, year, month), count) in per_month {
        let max = by_id.get(&person).and_then(|p| p.max_per_month);
        if let Some(max) = max.filter(|&m| count > u32::from(m)) {
            problems.push(Problem::OverMax {
                person,
                year,
                month,
                count,
                max,
            });
        }
    }
    problems
}

/// Drafts a rotation for `slots` (normally one month from [`slots_for_month`]).
///
/// Greedy, hardest slot first (fewest people who may take it), each given to the best
/// candidate by: same-day duty, fairness in the slot's class with history (night count
/// first for nights), total, consecutive dates, preferred weekday, then a hash of `seed`.
/// Uncovered slots are then repaired by handing one duty of a blocked person to someone
/// else, and a local search (moves, swaps, one duty for two between two people) lowers the
/// cost further. Polynomial: about O(S²·P) for the greedy and O(S³) per search pass for S
/// slots and P people. Same inputs and seed, same draft.
pub fn draft(
    slots: &[Slot],
    participants: &[Participant],
    absences: &[Absence],
    history: &History,
    fixed: &[(Slot, Uuid)],
    seed: u64,
) -> Draft {
    let mut warnings = Vec::new();
    let mut engine = Engine::new(slots, participants, absences, history, seed, &mut warnings);
    engine.fix(fixed, &mut warnings);
    engine.greedy();
    engine.repair();
    engine.improve();
    // Moves may have freed someone for a slot that was uncovered.
    engine.repair();
    engine.finish(participants, absences, warnings)
}

/// Passes of the improvement loop; each accepted change strictly lowers the objective, this
/// only bounds the time.
const MAX_PASSES: usize = 60;

/// Lower is better, compared in order: same-day pairs, weighted sum of squared counts
/// (history included), consecutive-date pairs, minus preferred assignments.
type Cost = (i64, i128, i64, i64);

/// Weights of weekday, weekend, holiday, night and total in the squared counts. Rarer
/// classes weigh more, so an exchange that evens holidays at the price of a weekday is
/// taken; with equal weights such trades tie and the search stops short.
const WEIGHTS: [i128; 5] = [1, 2, 3, 2, 1];

struct Engine {
    slots: Vec<Slot>,
    /// Real participants first, then people only named in fixed assignments (never drafted).
    people: Vec<Participant>,
    real: usize,
    hist: Vec<Counts>,
    cur: Vec<Counts>,
    month_of: Vec<usize>,
    months: usize,
    per_month: Vec<Vec<u32>>,
    allowed: Vec<Vec<bool>>,
    fixed: Vec<bool>,
    holder: Vec<Option<usize>>,
    /// What each slot adds to the fairness dimensions.
    slot_dims: Vec<[i64; 5]>,
    same_day: Vec<Option<usize>>,
    adjacent: Vec<Vec<usize>>,
    /// The slot whose holder may not take this one: the night before a day duty, the day
    /// duty after a night.
    rest_partner: Vec<Option<usize>>,
    index: HashMap<(NaiveDate, DutyKind), usize>,
    seed: u64,
}

impl Engine {
    fn new(
        slots: &[Slot],
        participants: &[Participant],
        absences: &[Absence],
        history: &History,
        seed: u64,
        warnings: &mut Vec<Warning>,
    ) -> Self {
        let mut sorted = slots.to_vec();
        sorted.sort();
        let mut uniq: Vec<Slot> = Vec::with_capacity(sorted.len());
        for slot in sorted {
            match uniq.last() {
                Some(last) if (last.date, last.kind) == (slot.date, slot.kind) => {
                    warnings.push(Warning::DuplicateSlot(slot));
                }
                _ => uniq.push(slot),
            }
        }
        let slots = uniq;

        let mut people: Vec<Participant> = Vec::new();
        for p in participants {
            if people.iter().any(|q| q.id == p.id) {
                warnings.push(Warning::DuplicateParticipant(p.id));
            } else {
                people.push(p.clone());
            }
        }
        let real = people.len();

        let index: HashMap<(NaiveDate, DutyKind), usize> = slots
            .iter()
            .enumerate()
            .map(|(i, s)| ((s.date, s.kind), i))
            .collect();
        let mut month_keys: Vec<(i32, u32)> = Vec::new();
        let month_of = slots
            .iter()
            .map(|s| {
                let key = (s.date.year(), s.date.month());
                match month_keys.iter().position(|k| *k == key) {
                    Some(i) => i,
                    None => {
                        month_keys.push(key);
                        month_keys.len() - 1
                    }
                }
            })
            .collect();
        let other = |s: &Slot| match s.kind {
            DutyKind::Day => DutyKind::Night,
            DutyKind::Night => DutyKind::Day,
        };
        let same_day = slots
            .iter()
            .map(|s| index.get(&(s.date, other(s))).copied())
            .collect();
        let adjacent = slots
            .iter()
            .map(|s| {
                [s.date.pred_opt(), s.date.succ_opt()]
                    .into_iter()
                    .flatten()
                    .flat_map(|d| [(d, DutyKind::Day), (d, DutyKind::Night)])
                    .filter_map(|k| index.get(&k).copied())
                    .collect()
            })
            .collect();
        let rest_partner = slots
            .iter()
            .map(|s| {
                let key = match s.kind {
                    DutyKind::Day => s.date.pred_opt().map(|d| (d, DutyKind::Night)),
                    DutyKind::Night => s.date.succ_opt().map(|d| (d, DutyKind::Day)),
                };
                key.and_then(|k| index.get(&k).copied())
            })
            .collect();

        let slot_dims = slots
            .iter()
            .map(|s| {
                let mut c = Counts::default();
                c.add(s);
                c.dims().map(i64::from)
            })
            .collect();
        let mut engine = Engine {
            slot_dims,
            holder: vec![None; slots.len()],
            fixed: vec![false; slots.len()],
            allowed: Vec::new(),
            hist: Vec::new(),
            cur: Vec::new(),
            per_month: Vec::new(),
            months: month_keys.len(),
            month_of,
            same_day,
            adjacent,
            rest_partner,
            index,
            people: Vec::new(),
            real,
            slots,
            seed,
        };
        for p in people {
            engine.add_person(p, absences, history);
        }
        engine
    }

    fn add_person(&mut self, p: Participant, absences: &[Absence], history: &History) {
        let own: Vec<Absence> = absences
            .iter()
            .filter(|a| a.person == p.id)
            .copied()
            .collect();
        self.hist
            .push(history.per_person.get(&p.id).copied().unwrap_or_default());
        self.cur.push(Counts::default());
        self.per_month.push(vec![0; self.months]);
        let drafted = self.people.len() < self.real;
        for (s, slot) in self.slots.iter().enumerate() {
            let ok = drafted
                && p.max_per_month != Some(0)
                && !(slot.kind == DutyKind::Night && p.no_nights)
                && !p.unavailable_weekdays.contains(&slot.date.weekday())
                && !own.iter().any(|a| a.blocks(p.id, slot));
            match self.allowed.get_mut(s) {
                Some(row) => row.push(ok),
                None => self.allowed.push(vec![ok]),
            }
        }
        self.people.push(p);
    }

    fn fix(&mut self, fixed: &[(Slot, Uuid)], warnings: &mut Vec<Warning>) {
        for &(slot, person) in fixed {
            let Some(&s) = self.index.get(&(slot.date, slot.kind)) else {
                warnings.push(Warning::FixedNotInSlots { slot, person });
                continue;
            };
            if self.fixed[s] {
                warnings.push(Warning::DuplicateFixed { slot, person });
                continue;
            }
            let p = match self.people.iter().position(|q| q.id == person) {
                Some(p) => p,
                None => {
                    // Someone who left the group: kept as the administrator set it.
                    self.add_person(Participant::new(person), &[], &History::default());
                    self.people.len() - 1
                }
            };
            self.assign(s, p);
            self.fixed[s] = true;
        }
    }

    fn assign(&mut self, s: usize, p: usize) {
        self.holder[s] = Some(p);
        self.cur[p].add(&self.slots[s]);
        let m = self.month_of[s];
        self.per_month[p][m] = self.per_month[p][m].saturating_add(1);
    }

    fn unassign(&mut self, s: usize) -> Option<usize> {
        let p = self.holder[s].take()?;
        self.cur[p].remove(&self.slots[s]);
        let m = self.month_of[s];
        self.per_month[p][m] = self.per_month[p][m].saturating_sub(1);
        Some(p)
    }

    /// Hard rules only; `s` is expected to be free.
    fn can_take(&self, s: usize, p: usize) -> bool {
        let under_max = match self.people[p].max_per_month {
            None => true,
            Some(max) => self.per_month[p][self.month_of[s]] < u32::from(max),
        };
        self.allowed[s][p]
            && under_max
            && self.rest_partner[s].is_none_or(|r| self.holder[r] != Some(p))
    }

    /// (same-day pairs, consecutive-date pairs) that `p` holding `s` would make.
    fn soft(&self, s: usize, p: usize) -> (i64, i64) {
        let same = self.same_day[s].is_some_and(|o| self.holder[o] == Some(p));
        let consecutive = self.adjacent[s]
            .iter()
            .filter(|&&n| self.holder[n] == Some(p))
            .count();
        (
            i64::from(same),
            i64::try_from(consecutive).unwrap_or(i64::MAX),
        )
    }

    fn combined(&self, p: usize) -> [i64; 5] {
        let (h, c) = (self.hist[p].dims(), self.cur[p].dims());
        std::array::from_fn(|i| i64::from(h[i]) + i64::from(c[i]))
    }

    fn prefers(&self, s: usize, p: usize) -> bool {
        self.people[p]
            .preferred_weekdays
            .contains(&self.slots[s].date.weekday())
    }

    fn tie(&self, s: usize, p: usize) -> u64 {
        let slot = &self.slots[s];
        let day = u64::from(slot.date.num_days_from_ce().unsigned_abs()) << 1
            | u64::from(slot.kind == DutyKind::Night);
        let (hi, lo) = self.people[p].id.as_u64_pair();
        mix(self.seed ^ mix(hi ^ mix(lo ^ mix(day))))
    }

    fn best_candidate(&self, s: usize, except: Option<usize>) -> Option<usize> {
        let slot = &self.slots[s];
        (0..self.real)
            .filter(|&p| Some(p) != except && self.can_take(s, p))
            .min_by_key(|&p| {
                let c = self.combined(p);
                let class = match slot.class {
                    DayClass::Weekday => c[0],
                    DayClass::Weekend => c[1],
                    DayClass::Holiday => c[2],
                };
                let (first, second) = match slot.kind {
                    DutyKind::Day => (class, c[4]),
                    DutyKind::Night => (c[3], class),
                };
                let (same, consecutive) = self.soft(s, p);
                (
                    same,
                    first,
                    second,
                    c[4],
                    consecutive,
                    !self.prefers(s, p),
                    self.tie(s, p),
                )
            })
    }

    fn greedy(&mut self) {
        let mut open: Vec<usize> = (0..self.slots.len())
            .filter(|&s| self.holder[s].is_none())
            .collect();
        while !open.is_empty() {
            // Recounted each round: max_per_month and rest change as slots fill.
            let mut hardest: Option<(usize, usize)> = None;
            for (pos, &s) in open.iter().enumerate() {
                let n = (0..self.real).filter(|&p| self.can_take(s, p)).count();
                if hardest.is_none_or(|(_, m)| n < m) {
                    hardest = Some((pos, n));
                }
                if n == 0 {
                    break;
                }
            }
            let Some((pos, _)) = hardest else { break };
            let s = open.remove(pos);
            if let Some(p) = self.best_candidate(s, None) {
                self.assign(s, p);
            }
        }
    }

    /// For each uncovered slot, give it to someone blocked only by one of their own duties
    /// (a month at its maximum, a neighbouring night) when that duty can go to another person.
    /// Repeated while it covers something: a move can free someone for an earlier slot.
    fn repair(&mut self) {
        while self.repair_pass() {}
    }

    fn repair_pass(&mut self) -> bool {
        let mut covered = false;
        for s in 0..self.slots.len() {
            if self.holder[s].is_some() {
                continue;
            }
            if let Some(p) = self.best_candidate(s, None) {
                self.assign(s, p);
                covered = true;
                continue;
            }
            'people: for p in 0..self.real {
                if !self.allowed[s][p] {
                    continue;
                }
                for t in 0..self.slots.len() {
                    if self.fixed[t] || self.holder[t] != Some(p) {
                        continue;
                    }
                    self.unassign(t);
                    if self.can_take(s, p) {
                        self.assign(s, p);
                        if let Some(q) = self.best_candidate(t, Some(p)) {
                            self.assign(t, q);
                            covered = true;
                            break 'people;
                        }
                        self.unassign(s);
                    }
                    self.assign(t, p);
                }
            }
        }
        covered
    }

    /// The cost of `people` and of the pairs around `give` and `take`: what an exchange
    /// between two people can change. Pairs within the exchanged slots count once.
    fn cost(&self, people: &[usize], give: &[usize], take: &[usize]) -> Cost {
        let mut cost: Cost = (0, 0, 0, 0);
        let exchanged = |x: usize| give.contains(&x) || take.contains(&x);
        for &s in give.iter().chain(take) {
            let Some(h) = self.holder[s] else { continue };
            let pairs = |n: usize| self.holder[n] == Some(h) && !(exchanged(n) && n < s);
            cost.0 += i64::from(self.same_day[s].is_some_and(pairs));
            cost.2 += self.adjacent[s].iter().filter(|&&n| pairs(n)).count() as i64;
            cost.3 -= i64::from(self.prefers(s, h));
        }
        for &p in people {
            for (v, w) in self.combined(p).into_iter().zip(WEIGHTS) {
                cost.1 += w * i128::from(v) * i128::from(v);
            }
        }
        cost
    }

    /// Moves and swaps until none helps, then one-for-two exchanges as an escape; back to
    /// moves and swaps after each escape that helped.
    fn improve(&mut self) {
        let mut held: Vec<Vec<usize>> = (0..self.real).map(|p| self.held(p)).collect();
        let mut wide = false;
        for _ in 0..MAX_PASSES {
            let mut better = false;
            for a in 0..self.real {
                for b in 0..self.real {
                    if a != b && self.improve_pair(a, b, &mut held, wide) {
                        better = true;
                    }
                }
            }
            if !better && wide {
                break;
            }
            wide = !better;
        }
    }

    /// Tries moves from `a` to `b` and swaps, or with `wide` one of `a`'s duties for two of
    /// `b`'s (needed when classes pull against each other: a weekday night for a weekend
    /// night and a weekend day). The latter only between uneven people: evenly matched
    /// ones cannot become fairer by trading.
    fn improve_pair(&mut self, a: usize, b: usize, held: &mut [Vec<usize>], wide: bool) -> bool {
        let mut better = false;
        let mut exchange =
            |e: &mut Self, held: &mut [Vec<usize>], give: &[usize], take: &[usize]| {
                if e.try_exchange(a, b, give, take) {
                    held[a] = e.held(a);
                    held[b] = e.held(b);
                    better = true;
                }
            };
        // By index: the lists change when an exchange is made (no copies, this is hot).
        let at = |held: &[Vec<usize>], p: usize, i: usize| held[p].get(i).copied();
        if !wide {
            let mut i = 0;
            while let Some(s) = at(held, a, i) {
                exchange(self, held, &[s], &[]);
                i += 1;
            }
            if a < b {
                let mut i = 0;
                while let Some(s) = at(held, a, i) {
                    let mut j = 0;
                    while let Some(t) = at(held, b, j) {
                        exchange(self, held, &[s], &[t]);
                        j += 1;
                    }
                    i += 1;
                }
            }
        } else if self.uneven(a, b) {
            let mut i = 0;
            while let Some(s) = at(held, a, i) {
                let mut j = 0;
                while let Some(t) = at(held, b, j) {
                    let mut k = j + 1;
                    while let Some(u) = at(held, b, k) {
                        exchange(self, held, &[s], &[t, u]);
                        k += 1;
                    }
                    j += 1;
                }
                i += 1;
            }
        }
        better
    }

    /// The slots `p` holds that may change hands.
    fn held(&self, p: usize) -> Vec<usize> {
        (0..self.slots.len())
            .filter(|&s| !self.fixed[s] && self.holder[s] == Some(p))
            .collect()
    }

    fn uneven(&self, a: usize, b: usize) -> bool {
        let (x, y) = (self.combined(a), self.combined(b));
        x.iter().zip(&y).any(|(x, y)| x.abs_diff(*y) >= 2)
    }

    /// The change in the fairness part of the cost if `a` gives `give` to `b` and takes
    /// `take`, computed from the counts alone.
    fn fairness_change(&self, a: usize, b: usize, give: &[usize], take: &[usize]) -> i128 {
        let (x, y) = (self.combined(a), self.combined(b));
        let mut d = [0i64; 5];
        for (slots, sign) in [(give, 1), (take, -1)] {
            for &s in slots {
                for (d, v) in d.iter_mut().zip(self.slot_dims[s]) {
                    *d += sign * v;
                }
            }
        }
        // (x - d)² + (y + d)² - x² - y² per dimension.
        (0..5)
            .map(|i| {
                let (x, y, d) = (i128::from(x[i]), i128::from(y[i]), i128::from(d[i]));
                WEIGHTS[i] * 2 * d * (d + y - x)
            })
            .sum()
    }

    /// Gives `give` from `a` to `b` and `take` from `b` to `a` if all are still theirs, the
    /// hard rules hold afterwards and the cost goes down; otherwise changes nothing.
    fn try_exchange(&mut self, a: usize, b: usize, give: &[usize], take: &[usize]) -> bool {
        let held_by = |e: &Self, slots: &[usize], p: usize| {
            slots.iter().all(|&s| !e.fixed[s] && e.holder[s] == Some(p))
        };
        if !held_by(self, give, a) || !held_by(self, take, b) {
            return false;
        }
        // Cheap necessary conditions first: most exchanges make the counts less fair, and
        // can then only help by removing a day-and-night pair; an exchange that keeps them
        // as fair must remove some pair or honour a preference.
        let soft_now = |e: &Self, s: usize| e.holder[s].map_or((0, 0), |h| e.soft(s, h));
        let fairness = self.fairness_change(a, b, give, take);
        let hopeless = match fairness {
            f if f > 0 => !give.iter().chain(take).any(|&s| soft_now(self, s).0 > 0),
            0 => {
                !give
                    .iter()
                    .chain(take)
                    .any(|&s| soft_now(self, s) != (0, 0))
                    && !give.iter().any(|&s| self.prefers(s, b))
                    && !take.iter().any(|&s| self.prefers(s, a))
            }
            _ => false,
        };
        if hopeless {
            return false;
        }
        let before = self.cost(&[a, b], give, take);
        for &s in give.iter().chain(take) {
            self.unassign(s);
        }
        // In order, so that each check sees the slots already handed over.
        let fits = |e: &mut Self, slots: &[usize], p: usize| {
            slots.iter().all(|&s| {
                let ok = e.can_take(s, p);
                if ok {
                    e.assign(s, p);
                }
                ok
            })
        };
        if fits(self, give, b) && fits(self, take, a) && self.cost(&[a, b], give, take) < before {
            return true;
        }
        for &s in give.iter().chain(take) {
            self.unassign(s);
        }
        for &s in give {
            self.assign(s, a);
        }
        for &s in take {
            self.assign(s, b);
        }
        false
    }

    fn finish(
        self,
        participants: &[Participant],
        absences: &[Absence],
        mut warnings: Vec<Warning>,
    ) -> Draft {
        let assignments: Vec<(Slot, Option<Uuid>)> = self
            .slots
            .iter()
            .zip(&self.holder)
            .map(|(slot, h)| (*slot, h.map(|p| self.people[p].id)))
            .collect();
        let mut uncovered = Vec::new();
        for problem in check(&assignments, participants, absences) {
            match problem {
                Problem::Uncovered(slot) => uncovered.push(slot),
                // Only fixed assignments can break a rule.
                other => warnings.push(Warning::FixedBreaksRule(other)),
            }
        }
        for (s, slot) in self.slots.iter().enumerate() {
            let Some(h) = self.holder[s] else { continue };
            let person = self.people[h].id;
            if slot.kind == DutyKind::Day
                && self.same_day[s].is_some_and(|o| self.holder[o] == Some(h))
            {
                warnings.push(Warning::SameDayDayAndNight {
                    person,
                    date: slot.date,
                });
            }
            // Once per person and date, at the first of the two dates.
            let next_day_taken = self.adjacent[s]
                .iter()
                .any(|&n| self.slots[n].date > slot.date && self.holder[n] == Some(h));
            let earlier_same_day = slot.kind == DutyKind::Night
                && self.same_day[s].is_some_and(|o| self.holder[o] == Some(h));
            if next_day_taken && !earlier_same_day {
                warnings.push(Warning::ConsecutiveDays {
                    person,
                    first: slot.date,
                });
            }
        }
        let counts = (0..self.real)
            .map(|p| (self.people[p].id, self.cur[p]))
            .collect();
        Draft {
            assignments,
            counts,
            uncovered,
            warnings,
        }
    }
}

/// SplitMix64's finaliser: a cheap, well-spread hash for the seeded tie-break.
fn mix(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The whole cost, from scratch: each pair once.
    fn global(e: &Engine) -> Cost {
        let mut cost: Cost = (0, 0, 0, 0);
        for s in 0..e.slots.len() {
            let Some(h) = e.holder[s] else { continue };
            let later = |n: usize| n > s && e.holder[n] == Some(h);
            cost.0 += i64::from(e.same_day[s].is_some_and(later));
            cost.2 += e.adjacent[s].iter().filter(|&&n| later(n)).count() as i64;
            cost.3 -= i64::from(e.prefers(s, h));
        }
        for p in 0..e.people.len() {
            for (v, w) in e.combined(p).into_iter().zip(WEIGHTS) {
                cost.1 += w * i128::from(v) * i128::from(v);
            }
        }
        cost
    }

    fn minus(x: Cost, y: Cost) -> Cost {
        (x.0 - y.0, x.1 - y.1, x.2 - y.2, x.3 - y.3)
    }

    /// The search relies on local costs and the counted fairness change agreeing with the
    /// whole cost, for any exchange, hard rules aside.
    #[test]
    fn local_costs_agree_with_the_whole() {
        let shape = Shape {
            weekday: vec![DutyKind::Day, DutyKind::Night],
            weekend_holiday: vec![DutyKind::Day, DutyKind::Night],
            saturday_is_weekend: true,
        };
        let is_holiday = |d: NaiveDate| d.day() == 3;
        let slots = slots_for_month(2027, 5, &shape, &is_holiday).expect("slots");
        let mut people: Vec<Participant> = (1..=4u128)
            .map(|n| Participant::new(Uuid::from_u128(n)))
            .collect();
        people[1].preferred_weekdays = vec![Weekday::Sat, Weekday::Tue];
        let mut history = History::default();
        history.per_person.insert(
            Uuid::from_u128(3),
            Counts {
                weekend: 5,
                night: 2,
                ..Counts::default()
            },
        );
        let mut e = Engine::new(&slots, &people, &[], &history, 1, &mut Vec::new());
        e.greedy();
        let n = e.slots.len();
        let mut x: u64 = 7;
        let mut next = |m: usize| {
            x = mix(x);
            usize::try_from(x % m as u64).expect("small")
        };
        let mut tried = 0;
        for _ in 0..2000 {
            let (s, t, u) = (next(n), next(n), next(n));
            let (Some(a), Some(b)) = (e.holder[s], e.holder[t]) else {
                continue;
            };
            if a == b || e.holder[u] != Some(b) {
                continue;
            }
            let (give, take): (Vec<usize>, Vec<usize>) = match next(3) {
                0 => (vec![s], vec![]),
                1 => (vec![s], vec![t]),
                _ if t != u => (vec![s], vec![t, u]),
                _ => continue,
            };
            let (whole, local) = (global(&e), e.cost(&[a, b], &give, &take));
            let counted = e.fairness_change(a, b, &give, &take);
            for &s in give.iter().chain(&take) {
                e.unassign(s);
            }
            give.iter().for_each(|&s| e.assign(s, b));
            take.iter().for_each(|&s| e.assign(s, a));
            let change = minus(global(&e), whole);
            assert_eq!(change, minus(e.cost(&[a, b], &give, &take), local));
            assert_eq!(change.1, counted);
            tried += 1;
        }
        assert!(tried > 200, "{tried}");
    }
}
