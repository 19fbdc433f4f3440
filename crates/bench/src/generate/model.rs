//! The dataset in memory, before it is written: people, facilities, groups, topics, comment
//! metadata (no text: bodies are written while streaming) and, for every person who can see a
//! topic, how far they have read it. Built from the seed alone; times are microseconds on a
//! virtual clock whose [`NOW`] becomes the real time of the load.

use crate::rng::Rng;
use crate::scale::Sizes;
use crate::text;
use std::collections::HashSet;
use uuid::Uuid;

pub const SECOND: i64 = 1_000_000;
pub const MINUTE: i64 = 60 * SECOND;
pub const HOUR: i64 = 60 * MINUTE;
pub const DAY: i64 = 24 * HOUR;
/// Comments are spread over this window, ending at [`NOW`].
pub const WINDOW: i64 = 180 * DAY;
pub const NOW: i64 = WINDOW;

/// The unix time (ms) that virtual time 0 maps to in ids. Ids are time-ordered like
/// production's UUIDv7 (index locality matters to the benchmark) yet the same for every run
/// of a seed, so they use this fixed epoch rather than the real clock.
const ID_EPOCH_MS: i64 = 1_751_673_600_000;

/// A UUIDv7 for virtual time `t` with random bits from `rng`.
pub fn id_at(t: i64, rng: &mut Rng) -> Uuid {
    let ms = u64::try_from(ID_EPOCH_MS + t.div_euclid(1000)).unwrap_or(0);
    let a = rng.next_u64().to_le_bytes();
    let b = rng.next_u64().to_le_bytes();
    let bytes = [a[0], a[1], a[2], a[3], a[4], a[5], a[6], a[7], b[0], b[1]];
    uuid::Builder::from_unix_timestamp_millis(ms, &bytes).into_uuid()
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Prof {
    ClinicDoctor,
    HospitalDoctor,
    Dentist,
    Nurse,
    AssistantNurse,
    PublicHealthNurse,
    CareManager,
    Pharmacist,
    PhysicalTherapist,
    OccupationalTherapist,
    SpeechTherapist,
    Dietitian,
    SocialWorker,
    CareWorker,
    Clerk,
    Other,
}

/// Share of each profession, per mille: nurses, care managers and clinic doctors most.
const PROFESSIONS: [(Prof, u32); 16] = [
    (Prof::ClinicDoctor, 140),
    (Prof::HospitalDoctor, 60),
    (Prof::Dentist, 20),
    (Prof::Nurse, 230),
    (Prof::AssistantNurse, 20),
    (Prof::PublicHealthNurse, 10),
    (Prof::CareManager, 160),
    (Prof::Pharmacist, 90),
    (Prof::PhysicalTherapist, 40),
    (Prof::OccupationalTherapist, 20),
    (Prof::SpeechTherapist, 10),
    (Prof::Dietitian, 10),
    (Prof::SocialWorker, 30),
    (Prof::CareWorker, 80),
    (Prof::Clerk, 60),
    (Prof::Other, 20),
];

impl Prof {
    pub fn code(self) -> &'static str {
        match self {
            Prof::ClinicDoctor | Prof::HospitalDoctor => "physician",
            Prof::Dentist => "dentist",
            Prof::Nurse => "nurse",
            Prof::AssistantNurse => "assistant_nurse",
            Prof::PublicHealthNurse => "public_health_nurse",
            Prof::CareManager => "care_manager",
            Prof::Pharmacist => "pharmacist",
            Prof::PhysicalTherapist => "physical_therapist",
            Prof::OccupationalTherapist => "occupational_therapist",
            Prof::SpeechTherapist => "speech_therapist",
            Prof::Dietitian => "dietitian",
            Prof::SocialWorker => "social_worker",
            Prof::CareWorker => "care_worker",
            Prof::Clerk => "clerk",
            Prof::Other => "other",
        }
    }

    /// Set exactly for physicians and dentists (the CHECK on core.users).
    pub fn doctor_kind(self) -> Option<&'static str> {
        match self {
            Prof::ClinicDoctor | Prof::Dentist => Some("clinic"),
            Prof::HospitalDoctor => Some("hospital"),
            _ => None,
        }
    }

    /// `core.scope_bit(doctor_kind)`.
    pub fn bit(self) -> u8 {
        match self.doctor_kind() {
            Some("clinic") => 2,
            Some(_) => 4,
            None => 1,
        }
    }

    /// How much they write, relative to others.
    fn talk(self) -> f64 {
        match self {
            Prof::Nurse => 3.0,
            Prof::CareManager | Prof::ClinicDoctor => 2.0,
            Prof::Pharmacist => 1.5,
            Prof::HospitalDoctor
            | Prof::PhysicalTherapist
            | Prof::OccupationalTherapist
            | Prof::SpeechTherapist => 1.2,
            Prof::Clerk | Prof::Other => 0.6,
            Prof::Dietitian => 0.8,
            _ => 1.0,
        }
    }

    fn index(self) -> usize {
        PROFESSIONS
            .iter()
            .position(|(p, _)| *p == self)
            .unwrap_or(0)
    }
}

pub struct Assoc {
    pub slug: String,
    pub name: String,
    pub area: String,
    pub description: String,
    pub place: String,
    /// Indices into [`Model::facilities`]; the first is the association's office (事務局).
    pub facilities: Vec<u32>,
    /// People whose home association this is.
    pub people: Vec<u32>,
}

impl Assoc {
    /// The `i`-th association (0-based): slug `bench-01`, …, a fictional place + 医師会.
    pub fn nth(i: usize) -> Assoc {
        let place = text::place(i);
        let area = format!("{place}{}", ["市", "区", "町"][i % 3]);
        Assoc {
            slug: format!("bench-{:02}", i + 1),
            name: format!("{place}医師会"),
            description: format!(
                "{area}の在宅医療・介護連携を進める医師会です（ベンチマーク用の架空のデータ）。"
            ),
            area,
            place,
            facilities: Vec::new(),
            people: Vec::new(),
        }
    }
}

pub struct Facility {
    pub id: Uuid,
    pub assoc: u32,
    pub name: String,
    pub kind: &'static str,
    pub created_t: i64,
}

pub struct Person {
    pub id: Uuid,
    /// 1-based: the e-mail address and the session token are derived from it.
    pub num: u32,
    pub name: String,
    pub kana: String,
    pub prof: Prof,
    pub home: u32,
    pub facility: u32,
    /// Neighbouring associations they also belong to (no facility there).
    pub extra: Vec<u32>,
    pub admin: bool,
    /// Personal diligence: scales how soon they read and how much they write.
    pub activity: f32,
    pub created_t: i64,
}

impl Person {
    pub fn email(&self) -> String {
        format!("p{:05}@bench.example.jp", self.num)
    }
}

pub struct Group {
    pub id: Uuid,
    pub assoc: u32,
    pub patient: bool,
    pub name: String,
    pub description: String,
    /// General groups only: accepts requests to join.
    pub request: bool,
    /// Person indices, ascending (which is also their ids' order).
    pub members: Vec<u32>,
    /// The first created the group.
    pub owners: Vec<u32>,
    pub created_t: i64,
    pub last_activity_t: i64,
    pub topics: Vec<u32>,
}

impl Group {
    /// Who created the group: its first owner (every group has one; the register's extra
    /// entries have no members, only the office that registered them).
    pub fn creator(&self) -> u32 {
        self.owners
            .first()
            .or_else(|| self.members.first())
            .copied()
            .unwrap_or_default()
    }
}

pub struct Topic {
    pub id: Uuid,
    pub group: u32,
    pub author: u32,
    pub scope: u8,
    pub pinned: bool,
    pub closed: bool,
    /// Its comments are `comments[first .. first + len]`, seq 1..=len.
    pub first: u32,
    pub len: u32,
    /// Its audience (members in scope, ascending) is `pairs[pairs .. pairs + n_pairs]`.
    pub pairs: u32,
    pub n_pairs: u32,
}

pub const IMPORTANT: u8 = 1;
pub const DELETED: u8 = 2;
pub const EDITED: u8 = 4;
/// Edited twice (version 3); set together with [`EDITED`].
pub const EDITED_TWICE: u8 = 8;

pub struct Comment {
    pub t: i64,
    pub topic: u32,
    pub author: u32,
    /// The author's position in the topic's audience.
    pub author_pos: u16,
    pub flags: u8,
}

/// One person in a topic's audience and how far they have read it.
pub struct Pair {
    pub person: u32,
    u_never: f32,
    /// Exp(1): scaled into how long ago they last opened the topic.
    lag: f32,
    /// Their last own comment (0: none): they had the topic open when writing it.
    pub own_last: u32,
    /// Read up to this seq (footprints on others' comments 1..=k).
    pub k: u32,
    /// When they read it last (footprints are no later).
    pub open_t: i64,
}

pub struct Model {
    pub seed: u64,
    pub assocs: Vec<Assoc>,
    pub facilities: Vec<Facility>,
    /// The regular people first (`people[..regular_people]`), then those of the crowded
    /// groups and the heavy readers with their colleagues. Groups, topics and comments are in
    /// the same order: the regular dataset does not depend on the extras.
    pub people: Vec<Person>,
    pub groups: Vec<Group>,
    pub topics: Vec<Topic>,
    pub comments: Vec<Comment>,
    pub pairs: Vec<Pair>,
    /// The calibrated reading knob (0: everyone read everything).
    pub read_knob: f64,
    /// Footprints the read positions give (what will be written).
    pub footprints: u64,
    /// Footprints if everyone had read everything.
    pub footprints_max: u64,
    /// How many of `people` the existing phases and the mixed phase act as.
    pub regular_people: u32,
    /// Groups of [`CROWDED_MEMBERS`] people who have all read everything (indices into
    /// `groups`).
    pub crowded_groups: Vec<u32>,
    /// People in [`HEAVY_GROUPS`] groups who have read almost none of them (indices into
    /// `people`).
    pub heavy_readers: Vec<u32>,
}

impl Model {
    pub fn topic_comments(&self, t: &Topic) -> &[Comment] {
        &self.comments[t.first as usize..(t.first + t.len) as usize]
    }

    pub fn topic_pairs(&self, t: &Topic) -> &[Pair] {
        &self.pairs[t.pairs as usize..(t.pairs + t.n_pairs) as usize]
    }

    pub fn topic_created_t(&self, t: &Topic) -> i64 {
        self.comments[t.first as usize].t
    }

    pub fn topic_last_t(&self, t: &Topic) -> i64 {
        self.comments[(t.first + t.len - 1) as usize].t
    }

    /// A comment's id: time-ordered, derived from the seed and its index.
    pub fn comment_id(&self, index: u32) -> Uuid {
        let mut r = Rng::new(self.seed ^ 0x00C0_33E7).fork(u64::from(index));
        id_at(self.comments[index as usize].t, &mut r)
    }

    /// Whether `person` sees `topic` (class in scope, or its author).
    pub fn sees(&self, person: u32, topic: &Topic) -> bool {
        self.people[person as usize].prof.bit() & topic.scope != 0 || topic.author == person
    }

    /// The unread row of one reader of a topic, as the app keeps it: every later comment of
    /// others counted when posted, deleted ones taken out again (first_seq and last_at stay).
    /// (count, first unread seq, when the last of them was written); None when nothing is
    /// unread.
    pub fn unread(&self, t: &Topic, p: &Pair) -> Option<(u32, u32, i64)> {
        let (mut count, mut first, mut last) = (0u32, 0u32, 0i64);
        for (i, cm) in self.topic_comments(t).iter().enumerate().skip(p.k as usize) {
            if cm.author == p.person {
                continue;
            }
            if first == 0 {
                first = i as u32 + 1;
            }
            last = cm.t;
            if cm.flags & DELETED == 0 {
                count += 1;
            }
        }
        (count > 0).then_some((count, first, last))
    }

    /// Footprints of a topic when its audience has read up to `ks`: others' comments, not
    /// deleted, up to each one's position.
    fn topic_footprints(&self, topic: &Topic, ks: &[u32], prefix: &mut Vec<u32>) -> u64 {
        let comments = self.topic_comments(topic);
        prefix.clear();
        prefix.push(0);
        let mut live = 0;
        for c in comments {
            if c.flags & DELETED == 0 {
                live += 1;
            }
            prefix.push(live);
        }
        let mut total = 0u64;
        for k in ks {
            total += u64::from(prefix[*k as usize]);
        }
        for (i, c) in comments.iter().enumerate() {
            if c.flags & DELETED == 0 && ks[c.author_pos as usize] > i as u32 {
                total -= 1;
            }
        }
        total
    }
}

fn exp1(rng: &mut Rng) -> f64 {
    -(1.0 - rng.f64()).ln()
}

fn shuffle<T>(rng: &mut Rng, v: &mut [T]) {
    for i in (1..v.len()).rev() {
        let j = rng.below(i as u64 + 1) as usize;
        v.swap(i, j);
    }
}

/// Largest-remainder split of `n` by per-mille weights.
fn quotas(n: u32) -> Vec<u32> {
    let total: u32 = PROFESSIONS.iter().map(|(_, w)| w).sum();
    let mut q: Vec<u32> = PROFESSIONS.iter().map(|(_, w)| n * w / total).collect();
    let mut rest: Vec<(u32, usize)> = PROFESSIONS
        .iter()
        .enumerate()
        .map(|(i, (_, w))| ((n * w) % total, i))
        .collect();
    rest.sort_by(|a, b| b.0.cmp(&a.0).then(a.1.cmp(&b.1)));
    let missing = n - q.iter().sum::<u32>();
    for (_, i) in rest.into_iter().take(missing as usize) {
        q[i] += 1;
    }
    q
}

struct Pools {
    /// By profession index, per association.
    by_prof: Vec<Vec<Vec<u32>>>,
    /// Hospital doctors of other associations who also belong to this one.
    visiting_hospital: Vec<Vec<u32>>,
}

impl Pools {
    fn get(&self, a: u32, p: Prof) -> &[u32] {
        &self.by_prof[a as usize][p.index()]
    }
}

fn pick_new(rng: &mut Rng, pool: &[u32], team: &mut Vec<u32>) -> Option<u32> {
    if pool.is_empty() {
        return None;
    }
    for _ in 0..8 {
        let p = pool[rng.below(pool.len() as u64) as usize];
        if !team.contains(&p) {
            team.push(p);
            return Some(p);
        }
    }
    None
}

/// Share of topics in general groups (the rest are in patient groups).
const GENERAL_SHARE: f64 = 0.07;
/// Share of co-medical-only topics, and of doctors-only topics.
const SCOPE_SHARE: f64 = 0.05;

/// Read-position parameters. The knob scales both how often someone never opens a topic and
/// how long ago they last looked; it is searched for so that footprints hit the target.
const NEVER_PATIENT: f64 = 0.03;
const NEVER_GENERAL: f64 = 0.30;
const LAG_MEAN: f64 = 2.0 * DAY as f64;

/// Members of each crowded group: every one of them has read every comment of the others.
pub const CROWDED_MEMBERS: usize = 40;
/// Topics of each crowded group, and their length: the body and 50 replies.
pub const CROWDED_TOPICS: u32 = 5;
pub const CROWDED_LEN: u32 = 51;
/// Groups each heavy reader is in (patient groups of their own, see [`Model::build_heavy`]).
pub const HEAVY_GROUPS: u32 = 20;
/// The colleagues a heavy reader works with in each association hosting their groups; each
/// of the groups has 5–8 of them.
const HEAVY_TEAM: [Prof; 12] = [
    Prof::ClinicDoctor,
    Prof::Nurse,
    Prof::Nurse,
    Prof::Nurse,
    Prof::Nurse,
    Prof::CareManager,
    Prof::CareManager,
    Prof::Pharmacist,
    Prof::Pharmacist,
    Prof::PhysicalTherapist,
    Prof::OccupationalTherapist,
    Prof::CareWorker,
];

impl Model {
    pub fn build(seed: u64, sizes: Sizes, footprints_target: u64) -> Model {
        let root = Rng::new(seed);
        let mut m = Model {
            seed,
            assocs: Vec::new(),
            facilities: Vec::new(),
            people: Vec::new(),
            groups: Vec::new(),
            topics: Vec::new(),
            comments: Vec::new(),
            pairs: Vec::new(),
            read_knob: 0.0,
            footprints: 0,
            footprints_max: 0,
            regular_people: 0,
            crowded_groups: Vec::new(),
            heavy_readers: Vec::new(),
        };
        m.build_associations(&mut root.fork(1), sizes.associations);
        m.build_people(&mut root.fork(2), sizes.people);
        m.regular_people = m.people.len() as u32;
        let pools = m.pools();
        m.build_groups(&mut root.fork(3), &pools, sizes);
        m.build_topics(&mut root.fork(4), sizes.comments);
        m.finish_groups(&mut root.fork(5));
        m.build_pairs(&mut root.fork(6));
        m.calibrate(footprints_target);
        // The extras come last, from streams of their own, and are left out of the
        // calibration: the regular dataset is the same with or without them.
        let regular_topics = m.topics.len();
        m.build_crowded(&mut root.fork(7), sizes.crowded_groups);
        m.build_heavy(
            &mut root.fork(8),
            sizes.heavy_readers,
            sizes.heavy_topics_per_group,
        );
        m.count_extras(regular_topics);
        m.build_register(&mut root.fork(9), sizes.register_first);
        m
    }

    fn build_associations(&mut self, rng: &mut Rng, n: u32) {
        for i in 0..n {
            let mut a = Assoc::nth(i as usize);
            let count = rng.range(30, 61) as u32;
            let hospitals = rng.range(2, 5) as u32;
            let share = count * 15 / 100;
            let care = count / 10;
            let offices = rng.range(1, 3) as u32;
            let clinics = count - 1 - hospitals - 3 * share - care - offices;
            let mut kinds = vec!["other"];
            for (kind, k) in [
                ("hospital", hospitals),
                ("visiting_nurse_station", share),
                ("care_management_office", share),
                ("pharmacy", share),
                ("care_facility", care),
                ("other", offices),
                ("clinic", clinics),
            ] {
                kinds.extend(std::iter::repeat_n(kind, k as usize));
            }
            let mut names = HashSet::new();
            for (j, kind) in kinds.into_iter().enumerate() {
                let name = if j == 0 {
                    format!("{} 事務局", a.name)
                } else {
                    let mut tries = 0;
                    loop {
                        let mut n = text::facility_name(rng, kind, &a.place);
                        tries += 1;
                        if tries > 20 {
                            n = format!("{n} 第{tries}");
                        }
                        if !names.contains(&n) {
                            break n;
                        }
                    }
                };
                names.insert(name.clone());
                let index = self.facilities.len() as u32;
                let created_t = -700 * DAY + i64::from(index) * 1000;
                self.facilities.push(Facility {
                    id: id_at(created_t, rng),
                    assoc: i,
                    name,
                    kind,
                    created_t,
                });
                a.facilities.push(index);
            }
            self.assocs.push(a);
        }
    }

    fn facility_for(&self, rng: &mut Rng, a: u32, prof: Prof) -> u32 {
        let r = rng.f64();
        let kind = match prof {
            Prof::ClinicDoctor | Prof::Dentist => "clinic",
            Prof::HospitalDoctor => "hospital",
            Prof::Nurse if r < 0.7 => "visiting_nurse_station",
            Prof::Nurse if r < 0.9 => "clinic",
            Prof::Nurse => "hospital",
            Prof::AssistantNurse if r < 0.5 => "clinic",
            Prof::AssistantNurse => "care_facility",
            Prof::CareManager if r < 0.9 => "care_management_office",
            Prof::Pharmacist if r < 0.9 => "pharmacy",
            Prof::Pharmacist => "hospital",
            Prof::PhysicalTherapist | Prof::OccupationalTherapist | Prof::SpeechTherapist => {
                if r < 0.5 {
                    "visiting_nurse_station"
                } else if r < 0.8 {
                    "hospital"
                } else {
                    "care_facility"
                }
            }
            Prof::Dietitian | Prof::SocialWorker if r < 0.6 => "hospital",
            Prof::CareWorker => "care_facility",
            Prof::Clerk if r < 0.6 => "clinic",
            Prof::Clerk => "hospital",
            _ => "other",
        };
        let facs = &self.assocs[a as usize].facilities;
        let of_kind: Vec<u32> = facs
            .iter()
            .skip(1)
            .copied()
            .filter(|f| self.facilities[*f as usize].kind == kind)
            .collect();
        match rng.pick(&of_kind) {
            Some(f) => *f,
            None => facs[0],
        }
    }

    fn build_people(&mut self, rng: &mut Rng, total: u32) {
        let n = self.assocs.len() as u32;
        let mut ids = rng.fork(99);
        for a in 0..n {
            let count = total / n + u32::from(a < total % n);
            let mut profs: Vec<Prof> = Vec::with_capacity(count as usize);
            for (i, q) in quotas(count).into_iter().enumerate() {
                profs.extend(std::iter::repeat_n(PROFESSIONS[i].0, q as usize));
            }
            shuffle(rng, &mut profs);
            let mut admins = 0;
            let want_admins = rng.range(1, 3);
            for prof in profs {
                let index = self.people.len() as u32;
                let (name, kana) = text::person_name(rng);
                let mut facility = self.facility_for(rng, a, prof);
                let admin = prof == Prof::Clerk && admins < want_admins;
                if admin {
                    admins += 1;
                    facility = self.assocs[a as usize].facilities[0];
                }
                self.people.push(Person {
                    // Ids ascend with the index: audiences kept in index order are in id order.
                    id: id_at(-600 * DAY + i64::from(index) * 1000, &mut ids),
                    num: index + 1,
                    name,
                    kana,
                    prof,
                    home: a,
                    facility,
                    extra: Vec::new(),
                    admin,
                    activity: 0.5 + rng.f64() as f32,
                    created_t: -(rng.range(200, 600) as i64) * DAY - rng.below(DAY as u64) as i64,
                });
                self.assocs[a as usize].people.push(index);
            }
            if admins == 0 {
                if let Some(&p) = self.assocs[a as usize].people.first() {
                    self.people[p as usize].admin = true;
                }
            }
        }
        // About 5% belong to neighbouring associations too, mostly hospital doctors.
        if n > 1 {
            for p in &mut self.people {
                let share = match p.prof {
                    Prof::HospitalDoctor => 0.5,
                    Prof::Clerk => 0.0,
                    _ => 0.02,
                };
                if rng.chance(share) {
                    p.extra.push((p.home + 1) % n);
                    let back = (p.home + n - 1) % n;
                    if rng.chance(0.4) && !p.extra.contains(&back) && back != p.home {
                        p.extra.push(back);
                    }
                }
            }
        }
    }

    fn pools(&self) -> Pools {
        let n = self.assocs.len();
        let mut by_prof = vec![vec![Vec::new(); PROFESSIONS.len()]; n];
        let mut visiting_hospital = vec![Vec::new(); n];
        for (i, p) in self.people.iter().enumerate() {
            by_prof[p.home as usize][p.prof.index()].push(i as u32);
            if p.prof == Prof::HospitalDoctor {
                for e in &p.extra {
                    visiting_hospital[*e as usize].push(i as u32);
                }
            }
        }
        Pools {
            by_prof,
            visiting_hospital,
        }
    }

    fn patient_team(&self, rng: &mut Rng, pools: &Pools, a: u32) -> (Vec<u32>, Vec<u32>) {
        let mut team = Vec::with_capacity(10);
        let doctor = pick_new(rng, pools.get(a, Prof::ClinicDoctor), &mut team);
        for _ in 0..if rng.chance(0.5) { 2 } else { 1 } {
            let pool = if rng.chance(0.9) {
                Prof::Nurse
            } else {
                Prof::AssistantNurse
            };
            pick_new(rng, pools.get(a, pool), &mut team);
        }
        let cm = pick_new(rng, pools.get(a, Prof::CareManager), &mut team);
        if rng.chance(0.75) {
            pick_new(rng, pools.get(a, Prof::Pharmacist), &mut team);
        }
        let therapists = [
            Prof::PhysicalTherapist,
            Prof::PhysicalTherapist,
            Prof::OccupationalTherapist,
            Prof::SpeechTherapist,
        ];
        if rng.chance(0.4) {
            let t = *rng.pick(&therapists).unwrap_or(&Prof::PhysicalTherapist);
            pick_new(rng, pools.get(a, t), &mut team);
        }
        if rng.chance(0.4) {
            pick_new(rng, pools.get(a, Prof::CareWorker), &mut team);
        }
        if rng.chance(0.08) {
            pick_new(rng, pools.get(a, Prof::Dentist), &mut team);
        }
        if rng.chance(0.08) {
            let p = if rng.chance(0.5) {
                Prof::SocialWorker
            } else {
                Prof::Dietitian
            };
            pick_new(rng, pools.get(a, p), &mut team);
        }
        if rng.chance(0.08) {
            pick_new(rng, pools.get(a, Prof::HospitalDoctor), &mut team);
        }
        // About one patient group in ten has a hospital doctor from another association.
        if rng.chance(0.10) {
            let visiting = &pools.visiting_hospital[a as usize];
            if !visiting.is_empty() {
                pick_new(rng, visiting, &mut team);
            } else if self.assocs.len() > 1 {
                let other = (a + 1) % self.assocs.len() as u32;
                pick_new(rng, pools.get(other, Prof::HospitalDoctor), &mut team);
            }
        }
        let fillers = [
            Prof::Nurse,
            Prof::CareWorker,
            Prof::PhysicalTherapist,
            Prof::CareManager,
            Prof::Pharmacist,
        ];
        let mut guard = 0;
        while team.len() < 5 && guard < 50 {
            guard += 1;
            let f = *rng.pick(&fillers).unwrap_or(&Prof::Nurse);
            pick_new(rng, pools.get(a, f), &mut team);
        }
        team.truncate(10);
        let mut owners = Vec::new();
        let (first, second) = if rng.chance(0.6) {
            (doctor, cm)
        } else {
            (cm, doctor)
        };
        if let Some(o) = first.or(second).or(team.first().copied()) {
            owners.push(o);
        }
        if rng.chance(0.35) {
            if let Some(o) = second.filter(|s| !owners.contains(s)) {
                owners.push(o);
            }
        }
        (team, owners)
    }

    fn general_team(&self, rng: &mut Rng, pools: &Pools, a: u32, base: usize) -> Vec<u32> {
        let home = &self.assocs[a as usize].people;
        let n_assoc = self.assocs.len() as u32;
        let size = (rng.range(10, 41) as usize).min(home.len().saturating_sub(1).max(1));
        let mut team = Vec::with_capacity(size);
        let doctors: Vec<u32> = [Prof::ClinicDoctor, Prof::HospitalDoctor, Prof::Dentist]
            .iter()
            .flat_map(|p| pools.get(a, *p).iter().copied())
            .chain(pools.visiting_hospital[a as usize].iter().copied())
            .collect();
        let doctors_group = text::general_base_is_doctors(base);
        let mut guard = 0;
        while team.len() < size && guard < size * 20 {
            guard += 1;
            let r = rng.f64();
            if doctors_group && r < 0.75 {
                pick_new(rng, &doctors, &mut team);
            } else if r < 0.9 || n_assoc == 1 {
                pick_new(rng, home, &mut team);
            } else {
                let other = (a + 1 + rng.below(u64::from(n_assoc - 1)) as u32) % n_assoc;
                pick_new(rng, &self.assocs[other as usize].people, &mut team);
            }
        }
        team
    }

    fn build_groups(&mut self, rng: &mut Rng, pools: &Pools, sizes: Sizes) {
        let n = self.assocs.len() as u32;
        for g in 0..sizes.patient_groups {
            let a = g % n;
            let (mut members, owners) = self.patient_team(rng, pools, a);
            members.sort_unstable();
            self.groups.push(Group {
                id: Uuid::nil(),
                assoc: a,
                patient: true,
                name: text::patient_group_name(rng),
                description: text::patient_group_description(rng),
                request: false,
                members,
                owners,
                created_t: 0,
                last_activity_t: 0,
                topics: Vec::new(),
            });
        }
        for g in 0..sizes.general_groups {
            let a = g % n;
            let base = rng.below(text::general_base_count() as u64) as usize;
            let mut members = self.general_team(rng, pools, a, base);
            let mut owners = Vec::new();
            if let Some(o) = rng.pick(&members) {
                owners.push(*o);
            }
            if rng.chance(0.5) {
                if let Some(o) = rng.pick(&members).copied() {
                    if !owners.contains(&o) {
                        owners.push(o);
                    }
                }
            }
            members.sort_unstable();
            let place = self.assocs[a as usize].place.clone();
            self.groups.push(Group {
                id: Uuid::nil(),
                assoc: a,
                patient: false,
                name: text::general_group_name(rng, base, &place),
                description: text::general_group_description(rng),
                request: rng.chance(0.3),
                members,
                owners,
                created_t: 0,
                last_activity_t: 0,
                topics: Vec::new(),
            });
        }
    }

    /// Topic lengths: mostly short, a solid share of 40–60 (the "topic with 50 comments" of
    /// the benchmark), a few busy ones; exactly `total` comments in all.
    fn topic_lengths(rng: &mut Rng, total: u64) -> Vec<u32> {
        let mut lens = Vec::new();
        let mut sum = 0u64;
        while sum < total {
            let u = rng.f64();
            let mut n = if u < 0.012 {
                rng.range(100, 301)
            } else if u < 0.012 + 0.18 {
                rng.range(40, 61)
            } else {
                3 + (17.0 * rng.f64().powf(1.6)).round() as u64
            };
            n = n.min(total - sum);
            if n < 3 {
                if let Some(last) = lens.last_mut() {
                    *last += n as u32;
                    sum += n;
                    continue;
                }
            }
            lens.push(n as u32);
            sum += n;
        }
        lens
    }

    fn build_topics(&mut self, rng: &mut Rng, total_comments: u64) {
        let lens = Self::topic_lengths(rng, total_comments);
        // Power-law activity: Pareto weights, so a few groups are very busy, most are quiet.
        let mut cum_patient = Vec::new();
        let mut cum_general = Vec::new();
        let (mut sp, mut sg) = (0.0, 0.0);
        let mut patient_ids = Vec::new();
        let mut general_ids = Vec::new();
        for (i, g) in self.groups.iter().enumerate() {
            let w = (1.0 - rng.f64()).powf(-1.0 / 1.2).min(400.0);
            if g.patient {
                sp += w;
                cum_patient.push(sp);
                patient_ids.push(i as u32);
            } else {
                sg += w;
                cum_general.push(sg);
                general_ids.push(i as u32);
            }
        }
        // Most groups have at least one topic; the rest of the topics follow the weights.
        let mut guaranteed: Vec<u32> = (0..self.groups.len() as u32)
            .filter(|_| rng.chance(0.8))
            .collect();
        shuffle(rng, &mut guaranteed);
        guaranteed.truncate(lens.len() / 2);
        let n_weighted = (lens.len() - guaranteed.len()).max(1) as f64;
        let guaranteed_general = guaranteed
            .iter()
            .filter(|g| !self.groups[**g as usize].patient)
            .count() as f64;
        let p_general =
            ((GENERAL_SHARE * lens.len() as f64 - guaranteed_general) / n_weighted).clamp(0.0, 1.0);
        // Doctors-only topics need two doctors: they go to the weighted picks that have them.
        let p_doctors = (SCOPE_SHARE * lens.len() as f64 / n_weighted).min(0.2);
        let doctors_in = |g: &Group| {
            g.members
                .iter()
                .filter(|p| self.people[**p as usize].prof.bit() & 6 != 0)
                .count()
        };
        let mut cand: Vec<u32> = Vec::new();
        let mut cum_w: Vec<f64> = Vec::new();
        let mut us: Vec<f64> = Vec::new();
        for (i, len) in lens.into_iter().enumerate() {
            let r = rng.f64();
            let mut scope: u8 = 7;
            let gi = if let Some(g) = guaranteed.get(i) {
                if r < SCOPE_SHARE {
                    scope = 1;
                }
                *g
            } else {
                if r < SCOPE_SHARE {
                    scope = 1;
                } else if r < SCOPE_SHARE + p_doctors {
                    scope = 6;
                }
                let general =
                    !general_ids.is_empty() && (patient_ids.is_empty() || rng.chance(p_general));
                let (cum, ids, sum) = if general {
                    (&cum_general, &general_ids, sg)
                } else {
                    (&cum_patient, &patient_ids, sp)
                };
                let draw = |rng: &mut Rng| {
                    let x = rng.f64() * sum;
                    ids[cum.partition_point(|c| *c <= x).min(ids.len() - 1)]
                };
                let mut gi = draw(rng);
                let mut tries = 0;
                while scope == 6 && doctors_in(&self.groups[gi as usize]) < 2 && tries < 40 {
                    gi = draw(rng);
                    tries += 1;
                }
                gi
            };
            let group = &self.groups[gi as usize];
            let in_scope = |s: u8, p: &u32| self.people[*p as usize].prof.bit() & s != 0;
            if group.members.iter().filter(|p| in_scope(scope, p)).count() < 2 {
                scope = 7;
            }
            cand.clear();
            cand.extend(group.members.iter().copied().filter(|p| in_scope(scope, p)));
            cum_w.clear();
            let mut s = 0.0;
            for p in &cand {
                let person = &self.people[*p as usize];
                s += person.prof.talk() * f64::from(person.activity);
                cum_w.push(s);
            }
            let weighted = |rng: &mut Rng| {
                let x = rng.f64() * s;
                cand[cum_w.partition_point(|c| *c <= x).min(cand.len() - 1)]
            };
            let author = weighted(rng);

            // Times: the first comment somewhere in the window, the rest spread after it.
            let n = i64::from(len);
            let span = if len >= 100 {
                rng.range(30, 171) as i64 * DAY
            } else if len >= 40 {
                rng.range(10, 91) as i64 * DAY
            } else {
                ((exp1(rng) * 3.0 * DAY as f64) as i64).min(30 * DAY)
            };
            let slack = n * 2 * SECOND + 2 * MINUTE;
            let start = rng.below((NOW - slack - HOUR) as u64) as i64;
            let span = span.min(NOW - start - slack).max(n * SECOND);
            us.clear();
            us.extend((1..n).map(|_| rng.f64()));
            us.sort_by(|a, b| a.total_cmp(b));

            let topic_index = self.topics.len() as u32;
            let first = self.comments.len() as u32;
            let mut t = start;
            for seq in 1..=len {
                if seq > 1 {
                    let u = us[(seq - 2) as usize];
                    t = (start + (span as f64 * u) as i64).max(t + SECOND);
                }
                let who = if seq == 1 || rng.chance(0.3) {
                    author
                } else {
                    weighted(rng)
                };
                let mut flags = 0;
                if rng.chance(0.03) {
                    flags |= IMPORTANT;
                }
                if seq > 1 && rng.chance(0.005) {
                    flags |= DELETED;
                } else if rng.chance(0.01) {
                    flags |= EDITED;
                    if rng.chance(0.2) {
                        flags |= EDITED_TWICE;
                    }
                }
                self.comments.push(Comment {
                    t,
                    topic: topic_index,
                    author: who,
                    author_pos: 0,
                    flags,
                });
            }
            let last_t = t;
            self.topics.push(Topic {
                id: Uuid::nil(),
                group: gi,
                author,
                scope,
                pinned: rng.chance(0.02),
                closed: last_t < NOW - 30 * DAY && rng.chance(0.04),
                first,
                len,
                pairs: 0,
                n_pairs: 0,
            });
            self.groups[gi as usize].topics.push(topic_index);
        }
    }

    /// Group creation times (before their first topic), activity times and ids; topic ids.
    fn finish_groups(&mut self, rng: &mut Rng) {
        for g in 0..self.groups.len() {
            let (first, last) = self.groups[g]
                .topics
                .iter()
                .map(|t| {
                    let t = &self.topics[*t as usize];
                    (self.topic_created_t(t), self.topic_last_t(t))
                })
                .fold((i64::MAX, i64::MIN), |(f, l), (a, b)| (f.min(a), l.max(b)));
            let created = if first == i64::MAX {
                rng.below((NOW + 60 * DAY) as u64) as i64 - 60 * DAY
            } else {
                first - rng.range(HOUR as u64, (60 * DAY) as u64) as i64
            };
            let group = &mut self.groups[g];
            group.created_t = created;
            group.last_activity_t = if last == i64::MIN { created } else { last };
            group.id = id_at(created, rng);
        }
        for i in 0..self.topics.len() {
            let t = self.topic_created_t(&self.topics[i]);
            self.topics[i].id = id_at(t, rng);
        }
    }

    fn build_pairs(&mut self, rng: &mut Rng) {
        self.pairs.clear();
        for ti in 0..self.topics.len() {
            self.push_audience(ti, rng);
        }
    }

    /// Appends the audience of topic `ti` (its group's members in scope, and its author) to
    /// `pairs`, with no read position yet.
    fn push_audience(&mut self, ti: usize, rng: &mut Rng) {
        let Model {
            people,
            groups,
            topics,
            comments,
            pairs,
            ..
        } = self;
        let topic = &mut topics[ti];
        let group = &groups[topic.group as usize];
        let start = pairs.len() as u32;
        for p in &group.members {
            if people[*p as usize].prof.bit() & topic.scope != 0 || *p == topic.author {
                pairs.push(Pair {
                    person: *p,
                    u_never: rng.f64() as f32,
                    lag: exp1(rng) as f32,
                    own_last: 0,
                    k: 0,
                    open_t: 0,
                });
            }
        }
        let n_pairs = pairs.len() as u32 - start;
        let audience = &mut pairs[start as usize..];
        let first = topic.first as usize;
        for (i, c) in comments[first..first + topic.len as usize]
            .iter_mut()
            .enumerate()
        {
            let pos = audience.partition_point(|p| p.person < c.author);
            c.author_pos = pos as u16;
            // Comments are in seq order, so the last write wins.
            audience[pos].own_last = i as u32 + 1;
        }
        topic.pairs = start;
        topic.n_pairs = n_pairs;
    }

    /// How far a person has read a topic at knob `x`: (k, when they last had it open).
    fn position(&self, x: f64, pair: &Pair, comments: &[Comment], general: bool) -> (u32, i64) {
        let never = (x * if general {
            NEVER_GENERAL
        } else {
            NEVER_PATIENT
        })
        .min(0.95);
        let activity = f64::from(self.people[pair.person as usize].activity);
        let (mut k, mut open) = (0u32, i64::MIN);
        if f64::from(pair.u_never) >= never {
            let lag = (f64::from(pair.lag) * x * LAG_MEAN / activity) as i64;
            let seen = NOW - lag.min(2 * WINDOW);
            k = comments.partition_point(|c| c.t <= seen) as u32;
            if k > 0 {
                open = seen;
            }
        }
        if pair.own_last > k {
            k = pair.own_last;
        }
        if pair.own_last > 0 {
            open = open.max(comments[pair.own_last as usize - 1].t);
        }
        (k, open.min(NOW))
    }

    /// Footprints at knob `x`.
    fn count(&self, x: f64) -> u64 {
        let mut total = 0u64;
        let mut prefix: Vec<u32> = Vec::new();
        let mut ks: Vec<u32> = Vec::new();
        for topic in &self.topics {
            let comments = self.topic_comments(topic);
            let general = !self.groups[topic.group as usize].patient;
            ks.clear();
            ks.extend(
                self.topic_pairs(topic)
                    .iter()
                    .map(|p| self.position(x, p, comments, general).0),
            );
            total += self.topic_footprints(topic, &ks, &mut prefix);
        }
        total
    }

    /// Stores the read positions at knob `x`.
    fn apply(&mut self, x: f64) {
        let mut out = Vec::with_capacity(self.pairs.len());
        for topic in &self.topics {
            let comments = self.topic_comments(topic);
            let general = !self.groups[topic.group as usize].patient;
            for p in self.topic_pairs(topic) {
                out.push(self.position(x, p, comments, general));
            }
        }
        for (p, (k, open)) in self.pairs.iter_mut().zip(out) {
            p.k = k;
            p.open_t = open;
        }
    }

    /// Finds the knob that gives `target` footprints (bisection: fewer as it grows).
    fn calibrate(&mut self, target: u64) {
        let max = self.count(0.0);
        self.footprints_max = max;
        let mut x = 0.0;
        if target < max {
            let (mut lo, mut hi) = (0.0f64, 1.0f64);
            while self.count(hi) > target && hi < 1024.0 {
                lo = hi;
                hi *= 2.0;
            }
            for _ in 0..40 {
                let mid = (lo + hi) / 2.0;
                let n = self.count(mid);
                if n > target {
                    lo = mid;
                } else {
                    hi = mid;
                }
                if n.abs_diff(target) * 1000 <= target {
                    lo = mid;
                    hi = mid;
                    break;
                }
            }
            x = (lo + hi) / 2.0;
        }
        self.read_knob = x;
        self.footprints = self.count(x);
        self.apply(x);
    }
}

// ---------------------------------------------------------------------------------------------
// The extras: crowded groups and heavy readers, each with people of their own so that the
// regular people (whom every other phase acts as) see nothing of them.

impl Model {
    /// A person of the extras, at home in association `a` only.
    fn add_person(&mut self, rng: &mut Rng, a: u32, prof: Prof) -> u32 {
        let index = self.people.len() as u32;
        let (name, kana) = text::person_name(rng);
        let facility = self.facility_for(rng, a, prof);
        self.people.push(Person {
            // After every regular person's, in index order like theirs.
            id: id_at(-600 * DAY + i64::from(index) * 1000, rng),
            num: index + 1,
            name,
            kana,
            prof,
            home: a,
            facility,
            extra: Vec::new(),
            admin: false,
            activity: 0.5 + rng.f64() as f32,
            created_t: -(rng.range(200, 600) as i64) * DAY - rng.below(DAY as u64) as i64,
        });
        index
    }

    /// Appends an open topic of `len` comments, in everyone's scope, to group `gi`: started by
    /// one of `writers` (weighted by how much they write) at `start` and answered by them until
    /// about `start + span`. Deleted comments only when `deletions`. Its id and audience come
    /// with [`Model::finish_extra_group`].
    #[allow(clippy::too_many_arguments)]
    fn push_topic(
        &mut self,
        rng: &mut Rng,
        gi: u32,
        writers: &[u32],
        len: u32,
        start: i64,
        span: i64,
        deletions: bool,
    ) {
        let mut cum = Vec::with_capacity(writers.len());
        let mut sum = 0.0;
        for p in writers {
            let person = &self.people[*p as usize];
            sum += person.prof.talk() * f64::from(person.activity);
            cum.push(sum);
        }
        let weighted = |rng: &mut Rng| {
            let x = rng.f64() * sum;
            writers[cum.partition_point(|c| *c <= x).min(writers.len() - 1)]
        };
        let author = weighted(rng);
        let mut us: Vec<f64> = (1..len).map(|_| rng.f64()).collect();
        us.sort_by(|a, b| a.total_cmp(b));
        let topic_index = self.topics.len() as u32;
        let first = self.comments.len() as u32;
        let mut t = start;
        for seq in 1..=len {
            if seq > 1 {
                let u = us[(seq - 2) as usize];
                t = (start + (span as f64 * u) as i64).max(t + SECOND);
            }
            let who = if seq == 1 || rng.chance(0.3) {
                author
            } else {
                weighted(rng)
            };
            let mut flags = 0;
            if rng.chance(0.03) {
                flags |= IMPORTANT;
            }
            if deletions && seq > 1 && rng.chance(0.005) {
                flags |= DELETED;
            } else if rng.chance(0.01) {
                flags |= EDITED;
                if rng.chance(0.2) {
                    flags |= EDITED_TWICE;
                }
            }
            self.comments.push(Comment {
                t,
                topic: topic_index,
                author: who,
                author_pos: 0,
                flags,
            });
        }
        self.topics.push(Topic {
            id: Uuid::nil(),
            group: gi,
            author,
            scope: 7,
            pinned: false,
            closed: false,
            first,
            len,
            pairs: 0,
            n_pairs: 0,
        });
        self.groups[gi as usize].topics.push(topic_index);
    }

    /// An extra group's times and id, its topics' ids and their audiences (read positions are
    /// the caller's).
    fn finish_extra_group(&mut self, gi: u32, rng: &mut Rng) {
        let topics = self.groups[gi as usize].topics.clone();
        let (mut first, mut last) = (NOW, i64::MIN);
        for t in &topics {
            let t = &self.topics[*t as usize];
            first = first.min(self.topic_created_t(t));
            last = last.max(self.topic_last_t(t));
        }
        let created = first - rng.range(HOUR as u64, (60 * DAY) as u64) as i64;
        let group = &mut self.groups[gi as usize];
        group.created_t = created;
        group.last_activity_t = last.max(created);
        group.id = id_at(created, rng);
        for t in topics {
            let at = self.topic_created_t(&self.topics[t as usize]);
            self.topics[t as usize].id = id_at(at, rng);
            self.push_audience(t as usize, rng);
        }
    }

    /// Groups of [`CROWDED_MEMBERS`] people of every profession, one per association (around
    /// again when there are fewer associations), each with [`CROWDED_TOPICS`] topics of
    /// [`CROWDED_LEN`] comments that every member has read in full: each comment has 39
    /// footprints, and nobody has anything unread.
    fn build_crowded(&mut self, rng: &mut Rng, groups: u32) {
        let n = self.assocs.len() as u32;
        for g in 0..groups {
            let a = g % n;
            let mut profs = Vec::with_capacity(CROWDED_MEMBERS);
            for (i, q) in quotas(CROWDED_MEMBERS as u32).into_iter().enumerate() {
                profs.extend(std::iter::repeat_n(PROFESSIONS[i].0, q as usize));
            }
            shuffle(rng, &mut profs);
            let members: Vec<u32> = profs
                .into_iter()
                .map(|prof| self.add_person(rng, a, prof))
                .collect();
            let gi = self.groups.len() as u32;
            let place = self.assocs[a as usize].place.clone();
            self.groups.push(Group {
                id: Uuid::nil(),
                assoc: a,
                patient: false,
                // 多職種連携の会: every profession is there.
                name: text::general_group_name(rng, 1, &place),
                description: text::general_group_description(rng),
                request: false,
                owners: vec![members[0]],
                members: members.clone(),
                created_t: 0,
                last_activity_t: 0,
                topics: Vec::new(),
            });
            for _ in 0..CROWDED_TOPICS {
                // Over 10–40 days, the last comment at least a day ago.
                let span = rng.range(10, 41) as i64 * DAY;
                let start = NOW
                    - DAY
                    - span
                    - i64::from(CROWDED_LEN) * 2 * SECOND
                    - rng.below((60 * DAY) as u64) as i64;
                self.push_topic(rng, gi, &members, CROWDED_LEN, start, span, false);
            }
            self.finish_extra_group(gi, rng);
            for t in self.groups[gi as usize].topics.clone() {
                let topic = &self.topics[t as usize];
                let last = self.topic_last_t(topic);
                let (from, to) = (topic.pairs as usize, (topic.pairs + topic.n_pairs) as usize);
                for p in &mut self.pairs[from..to] {
                    p.k = CROWDED_LEN;
                    p.open_t =
                        (last + rng.range(MINUTE as u64, (12 * HOUR) as u64) as i64).min(NOW);
                }
            }
            self.crowded_groups.push(gi);
        }
    }

    /// Hospital doctors who rarely read: each is in [`HEAVY_GROUPS`] patient groups of their
    /// own (a quarter of them hosted by the neighbouring association, where they are a member
    /// too) with colleagues from [`HEAVY_TEAM`], `topics_per_group` topics of 18–38 comments
    /// each within the last 120 days. They opened each topic once, soon after it started (up to
    /// its third comment), and never again, so nearly all of it is unread; their colleagues
    /// read as everyone does.
    fn build_heavy(&mut self, rng: &mut Rng, readers: u32, topics_per_group: u32) {
        let n = self.assocs.len() as u32;
        for h in 0..readers {
            let home = h % n;
            let reader = self.add_person(rng, home, Prof::HospitalDoctor);
            let mut hosts = vec![home];
            if n > 1 {
                let next = (home + 1) % n;
                hosts.push(next);
                self.people[reader as usize].extra.push(next);
            }
            let teams: Vec<Vec<u32>> = hosts
                .iter()
                .map(|&a| {
                    HEAVY_TEAM
                        .iter()
                        .map(|prof| self.add_person(rng, a, *prof))
                        .collect()
                })
                .collect();
            for g in 0..HEAVY_GROUPS {
                let host = if hosts.len() > 1 && g % 4 == 3 { 1 } else { 0 };
                let mut writers = teams[host].clone();
                shuffle(rng, &mut writers);
                writers.truncate(rng.range(5, 9) as usize);
                let mut members = writers.clone();
                members.push(reader);
                members.sort_unstable();
                let gi = self.groups.len() as u32;
                self.groups.push(Group {
                    id: Uuid::nil(),
                    assoc: hosts[host],
                    patient: true,
                    name: text::patient_group_name(rng),
                    description: text::patient_group_description(rng),
                    request: false,
                    members,
                    owners: vec![writers[0]],
                    created_t: 0,
                    last_activity_t: 0,
                    topics: Vec::new(),
                });
                for _ in 0..topics_per_group {
                    let len = rng.range(18, 39) as u32;
                    let span = rng.range(1, 21) as i64 * DAY;
                    let start = NOW
                        - HOUR
                        - span
                        - i64::from(len) * 2 * SECOND
                        - rng.below((120 * DAY - span) as u64) as i64;
                    self.push_topic(rng, gi, &writers, len, start, span, true);
                }
                self.finish_extra_group(gi, rng);
                for t in self.groups[gi as usize].topics.clone() {
                    let topic = &self.topics[t as usize];
                    let comments = self.topic_comments(topic);
                    let positions: Vec<(u32, i64)> = self
                        .topic_pairs(topic)
                        .iter()
                        .map(|p| {
                            if p.person != reader {
                                return self.position(self.read_knob, p, comments, false);
                            }
                            let k = rng.below(4) as u32;
                            if k == 0 {
                                return (0, i64::MIN);
                            }
                            // Before the next comment: they have not seen it.
                            let next = comments.get(k as usize).map_or(NOW, |c| c.t - 1);
                            let seen = comments[k as usize - 1].t + rng.below(HOUR as u64) as i64;
                            (k, seen.min(next).min(NOW))
                        })
                        .collect();
                    let from = topic.pairs as usize;
                    for (p, (k, open)) in self.pairs[from..].iter_mut().zip(positions) {
                        p.k = k;
                        p.open_t = open;
                    }
                }
            }
            self.heavy_readers.push(reader);
        }
    }

    /// Adds the footprints of the topics from `first_topic` on (the extras) to the totals.
    /// Fills the first association's register up to `target` entries with patient groups
    /// nobody has joined yet, registered by its office (an administrator): what a large
    /// association's register holds beyond the teams the rest of the dataset simulates. They
    /// have no members, topics or events, so everything but the register is unchanged.
    fn build_register(&mut self, rng: &mut Rng, target: u32) {
        let Some(first) = self.assocs.first() else {
            return;
        };
        let Some(office) = first
            .people
            .iter()
            .copied()
            .find(|p| self.people[*p as usize].admin)
        else {
            return;
        };
        let have = self
            .groups
            .iter()
            .filter(|g| g.patient && g.assoc == 0)
            .count() as u32;
        for _ in have..target {
            let created = rng.below((NOW + 700 * DAY) as u64) as i64 - 700 * DAY;
            self.groups.push(Group {
                id: id_at(created, rng),
                assoc: 0,
                patient: true,
                name: text::patient_group_name(rng),
                description: String::new(),
                request: false,
                members: Vec::new(),
                owners: vec![office],
                created_t: created,
                last_activity_t: created,
                topics: Vec::new(),
            });
        }
    }

    fn count_extras(&mut self, first_topic: usize) {
        let (mut written, mut max) = (0, 0);
        let mut prefix = Vec::new();
        let mut ks: Vec<u32> = Vec::new();
        for topic in &self.topics[first_topic..] {
            ks.clear();
            ks.extend(self.topic_pairs(topic).iter().map(|p| p.k));
            written += self.topic_footprints(topic, &ks, &mut prefix);
            ks.iter_mut().for_each(|k| *k = topic.len);
            max += self.topic_footprints(topic, &ks, &mut prefix);
        }
        self.footprints += written;
        self.footprints_max += max;
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn quotas_add_up() {
        for n in [1, 7, 100, 500, 5000] {
            assert_eq!(quotas(n).iter().sum::<u32>(), n);
        }
    }

    #[test]
    fn a_small_model_is_consistent_and_deterministic() {
        let sizes = Sizes {
            associations: 2,
            people: 80,
            patient_groups: 60,
            general_groups: 4,
            comments: 3000,
            footprints: 12_000,
            crowded_groups: 3,
            heavy_readers: 2,
            // Medium's: its heavy readers must reach 5,000 unread in 200 topics.
            heavy_topics_per_group: crate::Scale::Medium.sizes().heavy_topics_per_group,
            attachments_per_mille: 20,
            register_first: 0,
        };
        let a = Model::build(5, sizes, sizes.footprints);
        let b = Model::build(5, sizes, sizes.footprints);
        let plain = Model::build(
            5,
            Sizes {
                crowded_groups: 0,
                heavy_readers: 0,
                ..sizes
            },
            sizes.footprints,
        );
        assert_eq!(plain.comments.len(), 3000);
        assert_eq!(a.footprints, b.footprints);
        // The extras come on top: the regular dataset is the same without them.
        assert_eq!(a.regular_people as usize, plain.people.len());
        assert_eq!(a.read_knob, plain.read_knob);
        for (x, y) in plain.people.iter().zip(&a.people) {
            assert_eq!(x.id, y.id);
        }
        for (x, y) in plain.groups.iter().zip(&a.groups) {
            assert_eq!((x.id, &x.members), (y.id, &y.members));
        }
        for (x, y) in plain.topics.iter().zip(&a.topics) {
            assert_eq!((x.id, x.first, x.pairs), (y.id, y.first, y.pairs));
        }
        for (x, y) in plain.pairs.iter().zip(&a.pairs) {
            assert_eq!((x.person, x.k, x.open_t), (y.person, y.k, y.open_t));
        }
        // The footprints counted are those the load writes: others' live comments up to k.
        let written: u64 = a
            .topics
            .iter()
            .map(|t| {
                let pairs = a.topic_pairs(t);
                a.topic_comments(t)
                    .iter()
                    .enumerate()
                    .filter(|(_, c)| c.flags & DELETED == 0)
                    .map(|(i, c)| {
                        pairs
                            .iter()
                            .filter(|p| p.k > i as u32 && p.person != c.author)
                            .count() as u64
                    })
                    .sum::<u64>()
            })
            .sum();
        assert_eq!(written, a.footprints);
        assert!(a.footprints > plain.footprints);
        assert_eq!(a.topics[3].id, b.topics[3].id);
        assert_eq!(a.comment_id(17), b.comment_id(17));
        for t in &a.topics {
            let cs = a.topic_comments(t);
            assert!(cs.windows(2).all(|w| w[0].t < w[1].t));
            assert!(a.topic_last_t(t) <= NOW);
            for c in cs {
                let bit = a.people[c.author as usize].prof.bit();
                assert!(bit & t.scope != 0, "authors are in scope");
                assert_eq!(a.topic_pairs(t)[c.author_pos as usize].person, c.author);
            }
            for p in a.topic_pairs(t) {
                assert!(p.k <= t.len);
                assert!(p.k == 0 || p.open_t >= cs[p.k as usize - 1].t);
            }
        }
        let visited = a
            .groups
            .iter()
            .filter(|g| g.patient)
            .filter(|g| {
                g.members
                    .iter()
                    .any(|p| a.people[*p as usize].home != g.assoc)
            })
            .count();
        assert!(
            visited > 0,
            "some patient groups have a member from elsewhere"
        );
        for g in &a.groups {
            assert!(g.members.windows(2).all(|w| w[0] < w[1]));
            assert!(!g.owners.is_empty());
            if g.patient {
                assert!((5..=10).contains(&g.members.len()), "{}", g.members.len());
            }
        }
    }

    #[test]
    fn the_first_register_is_filled_without_changing_anything_else() {
        let sizes = Sizes {
            associations: 2,
            people: 80,
            patient_groups: 60,
            general_groups: 4,
            comments: 3000,
            footprints: 12_000,
            crowded_groups: 1,
            heavy_readers: 1,
            heavy_topics_per_group: 5,
            attachments_per_mille: 20,
            register_first: 0,
        };
        let plain = Model::build(3, sizes, sizes.footprints);
        let full = Model::build(
            3,
            Sizes {
                register_first: 500,
                ..sizes
            },
            sizes.footprints,
        );
        let entries = |m: &Model, a: u32| {
            m.groups
                .iter()
                .filter(|g| g.patient && g.assoc == a)
                .count()
        };
        assert_eq!(entries(&full, 0), 500);
        assert_eq!(entries(&full, 1), entries(&plain, 1));
        // Everything before the added entries is the same dataset.
        let n = plain.groups.len();
        assert_eq!(full.groups.len() - n, 500 - entries(&plain, 0));
        for (a, b) in plain.groups.iter().zip(&full.groups) {
            assert_eq!((a.id, &a.members, &a.topics), (b.id, &b.members, &b.topics));
        }
        assert_eq!(plain.comments.len(), full.comments.len());
        assert_eq!(plain.footprints, full.footprints);
        let ids: HashSet<Uuid> = full.groups.iter().map(|g| g.id).collect();
        assert_eq!(ids.len(), full.groups.len(), "group ids are unique");
        for g in &full.groups[n..] {
            assert!(g.members.is_empty() && g.topics.is_empty());
            let office = &full.people[g.owners[0] as usize];
            assert!(office.admin && office.home == 0, "registered by its office");
        }
    }

    #[test]
    fn crowded_groups_have_read_everything_and_heavy_readers_almost_nothing() {
        let sizes = Sizes {
            associations: 2,
            people: 80,
            patient_groups: 60,
            general_groups: 4,
            comments: 3000,
            footprints: 12_000,
            crowded_groups: 3,
            heavy_readers: 2,
            heavy_topics_per_group: crate::Scale::Medium.sizes().heavy_topics_per_group,
            attachments_per_mille: 20,
            register_first: 0,
        };
        let m = Model::build(9, sizes, sizes.footprints);
        let regular = m.regular_people;
        let groups_of = |p: u32| m.groups.iter().filter(|g| g.members.contains(&p)).count();

        assert_eq!(m.crowded_groups.len(), 3);
        for &gi in &m.crowded_groups {
            let g = &m.groups[gi as usize];
            assert_eq!(g.members.len(), CROWDED_MEMBERS);
            for p in &g.members {
                assert!(*p >= regular && groups_of(*p) == 1, "people of their own");
            }
            assert_eq!(g.topics.len(), CROWDED_TOPICS as usize);
            for t in &g.topics {
                let t = &m.topics[*t as usize];
                assert_eq!((t.len, t.scope, t.closed), (CROWDED_LEN, 7, false));
                let pairs = m.topic_pairs(t);
                assert_eq!(pairs.len(), CROWDED_MEMBERS);
                for (i, c) in m.topic_comments(t).iter().enumerate() {
                    assert_eq!(c.flags & DELETED, 0);
                    let readers = pairs
                        .iter()
                        .filter(|p| p.k > i as u32 && p.person != c.author)
                        .count();
                    assert_eq!(readers, CROWDED_MEMBERS - 1, "every other member read it");
                    assert!(pairs.iter().all(|p| p.open_t >= c.t));
                }
                assert!(pairs.iter().all(|p| m.unread(t, p).is_none()));
            }
        }

        assert_eq!(m.heavy_readers.len(), 2);
        for &h in &m.heavy_readers {
            assert!(h >= regular);
            assert_eq!(m.people[h as usize].prof, Prof::HospitalDoctor);
            let groups: Vec<&Group> = m.groups.iter().filter(|g| g.members.contains(&h)).collect();
            assert_eq!(groups.len(), HEAVY_GROUPS as usize);
            let elsewhere = groups
                .iter()
                .filter(|g| g.assoc != m.people[h as usize].home)
                .count();
            assert_eq!(elsewhere, 5, "a quarter in the neighbouring association");
            let (mut unread, mut topics) = (0u32, 0u32);
            for g in groups {
                assert!(g.members.iter().all(|p| *p >= regular));
                for t in &g.topics {
                    let t = &m.topics[*t as usize];
                    assert!(!t.closed && m.sees(h, t));
                    let comments = m.topic_comments(t);
                    assert!(comments.iter().all(|c| c.author != h));
                    let p = m.topic_pairs(t).iter().find(|p| p.person == h).unwrap();
                    assert!(p.k <= 3);
                    if p.k > 0 {
                        assert!(p.open_t >= comments[p.k as usize - 1].t);
                        assert!(p.open_t < comments[p.k as usize].t);
                    }
                    // What they have not read is unread, and nothing else.
                    let live =
                        |cs: &[Comment]| cs.iter().filter(|c| c.flags & DELETED == 0).count();
                    let read = live(&comments[..p.k as usize]) as u32;
                    let (count, first, last) = m.unread(t, p).unwrap();
                    assert_eq!(count + read, live(comments) as u32);
                    assert_eq!(first, p.k + 1);
                    assert_eq!(last, m.topic_last_t(t));
                    unread += count;
                    topics += 1;
                }
            }
            assert!(
                unread >= 5_000 && topics >= 200,
                "{unread} unread in {topics} topics"
            );
        }
    }
}
