//! The dataset in `data/`, compiled in and checked before anything is written: every name a
//! step uses must exist, and the script must move forward in time.

use musubi_domain::types::{AssociationRole, CareLevel, DoctorKind, FacilityKind, Profession, Sex};
use serde::Deserialize;
use std::collections::HashSet;

const ASSOCIATIONS: &str = include_str!("../data/associations.toml");
const PEOPLE: &str = include_str!("../data/people.toml");
const GROUPS: &str = include_str!("../data/groups.toml");
const CONVERSATION: &str = include_str!("../data/conversation.toml");

/// A data file that does not parse or names something that does not exist.
#[derive(Debug, thiserror::Error)]
pub enum DataError {
    #[error("demo data {file}: {source}")]
    Parse {
        file: &'static str,
        source: toml::de::Error,
    },
    #[error("demo data: {0}")]
    Invalid(String),
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Association {
    pub slug: String,
    pub name: String,
    pub area: String,
    pub description: String,
    /// Associations created before this one that share their directory with it.
    #[serde(default)]
    pub neighbours: Vec<String>,
    pub facilities: Vec<Facility>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Facility {
    pub name: String,
    pub kind: FacilityKind,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Person {
    pub key: String,
    pub email: String,
    pub name: String,
    pub kana: String,
    pub profession: Profession,
    pub doctor_kind: Option<DoctorKind>,
    pub memberships: Vec<Membership>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Membership {
    pub association: String,
    pub role: AssociationRole,
    pub facility: Option<String>,
}

#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    General,
    Patient,
}

#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ReceiptMode {
    Footprints,
    Acknowledgement,
    Off,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Group {
    pub key: String,
    pub association: String,
    pub owner: String,
    pub kind: Kind,
    pub name: String,
    pub description: String,
    pub accepts_requests: bool,
    pub receipt_mode: Option<ReceiptMode>,
    pub members: Vec<String>,
    pub at: When,
    /// A patient group's register entry.
    pub patient: Option<Patient>,
}

/// A register entry of the script's patient groups.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Patient {
    pub name: String,
    pub kana: String,
    /// As people write it (昭和16年3月12日).
    pub birth: String,
    pub sex: Sex,
    pub town: String,
    pub care_level: CareLevel,
    pub diagnoses: String,
    /// The physician: the owner or a member of the group.
    pub physician: Option<String>,
}

/// Who may see a topic.
#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Audience {
    Everyone,
    CoMedical,
    /// Collaborating and hospital doctors.
    Doctors,
}

/// One thing a demo person does.
#[derive(Debug, Deserialize)]
#[serde(tag = "do", rename_all = "snake_case", deny_unknown_fields)]
pub enum Step {
    Topic {
        key: String,
        group: String,
        by: String,
        at: When,
        title: String,
        body: String,
        scope: Audience,
        important: bool,
    },
    Reply {
        key: Option<String>,
        topic: String,
        by: String,
        at: When,
        body: String,
        important: bool,
    },
    Open {
        topic: String,
        by: String,
        at: When,
    },
    Acknowledge {
        comment: String,
        by: String,
        at: When,
    },
    Edit {
        comment: String,
        by: String,
        at: When,
        body: String,
        important: bool,
    },
    Delete {
        comment: String,
        by: String,
        at: When,
    },
    Pin {
        topic: String,
        by: String,
    },
}

impl Step {
    pub fn at(&self) -> Option<When> {
        match self {
            Step::Topic { at, .. }
            | Step::Reply { at, .. }
            | Step::Open { at, .. }
            | Step::Acknowledge { at, .. }
            | Step::Edit { at, .. }
            | Step::Delete { at, .. } => Some(*at),
            Step::Pin { .. } => None,
        }
    }

    pub fn by(&self) -> &str {
        match self {
            Step::Topic { by, .. }
            | Step::Reply { by, .. }
            | Step::Open { by, .. }
            | Step::Acknowledge { by, .. }
            | Step::Edit { by, .. }
            | Step::Delete { by, .. }
            | Step::Pin { by, .. } => by,
        }
    }
}

/// When a step happened: `"6 days ago 13:05"` (Japan clock time) or `"30 minutes ago"`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(try_from = "String")]
pub enum When {
    Day {
        days_ago: i64,
        hour: u32,
        minute: u32,
    },
    MinutesAgo(i64),
}

impl TryFrom<String> for When {
    type Error = String;

    fn try_from(s: String) -> Result<Self, String> {
        let bad = || format!("{s:?} is neither \"N days ago HH:MM\" nor \"N minutes ago\"");
        let words: Vec<&str> = s.split_whitespace().collect();
        match words.as_slice() {
            [n, "day" | "days", "ago", time] => {
                let days_ago = n.parse().map_err(|_| bad())?;
                let (h, m) = time.split_once(':').ok_or_else(bad)?;
                let (hour, minute): (u32, u32) =
                    (h.parse().map_err(|_| bad())?, m.parse().map_err(|_| bad())?);
                if days_ago < 0 || hour > 23 || minute > 59 {
                    return Err(bad());
                }
                Ok(When::Day {
                    days_ago,
                    hour,
                    minute,
                })
            }
            [n, "minute" | "minutes", "ago"] => match n.parse() {
                Ok(m) if m > 0 => Ok(When::MinutesAgo(m)),
                _ => Err(bad()),
            },
            _ => Err(bad()),
        }
    }
}

impl When {
    /// Orders scripted times: earlier first. Scripted days come before the minutes of today.
    fn sort_key(self) -> (u8, i64) {
        match self {
            When::Day {
                days_ago,
                hour,
                minute,
            } => (
                0,
                -days_ago * 24 * 60 + i64::from(hour) * 60 + i64::from(minute),
            ),
            When::MinutesAgo(m) => (1, -m),
        }
    }
}

#[derive(Debug)]
pub struct Dataset {
    pub associations: Vec<Association>,
    pub people: Vec<Person>,
    pub groups: Vec<Group>,
    pub steps: Vec<Step>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct AssociationsFile {
    association: Vec<Association>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PeopleFile {
    person: Vec<Person>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct GroupsFile {
    group: Vec<Group>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ConversationFile {
    step: Vec<Step>,
}

fn parse<T: serde::de::DeserializeOwned>(file: &'static str, text: &str) -> Result<T, DataError> {
    toml::from_str(text).map_err(|source| DataError::Parse { file, source })
}

impl Dataset {
    /// The compiled-in dataset, checked.
    pub fn load() -> Result<Self, DataError> {
        let a: AssociationsFile = parse("associations.toml", ASSOCIATIONS)?;
        let p: PeopleFile = parse("people.toml", PEOPLE)?;
        let g: GroupsFile = parse("groups.toml", GROUPS)?;
        let c: ConversationFile = parse("conversation.toml", CONVERSATION)?;
        let data = Self {
            associations: a.association,
            people: p.person,
            groups: g.group,
            steps: c.step,
        };
        data.check().map_err(DataError::Invalid)?;
        Ok(data)
    }

    pub fn association(&self, slug: &str) -> Option<&Association> {
        self.associations.iter().find(|a| a.slug == slug)
    }

    fn check(&self) -> Result<(), String> {
        for (i, a) in self.associations.iter().enumerate() {
            for n in &a.neighbours {
                if !self.associations[..i].iter().any(|e| &e.slug == n) {
                    return Err(format!(
                        "{}: neighbour {n:?} is not created before it",
                        a.slug
                    ));
                }
            }
        }
        let mut people = HashSet::new();
        for p in &self.people {
            if !people.insert(p.key.as_str()) {
                return Err(format!("person {:?} twice", p.key));
            }
            for m in &p.memberships {
                let a = self
                    .association(&m.association)
                    .ok_or_else(|| format!("{}: no association {:?}", p.key, m.association))?;
                if let Some(f) = &m.facility {
                    if !a.facilities.iter().any(|x| &x.name == f) {
                        return Err(format!("{}: no facility {f:?} in {}", p.key, a.slug));
                    }
                }
            }
        }
        let person = |key: &str| {
            if people.contains(key) {
                Ok(())
            } else {
                Err(format!("no person {key:?}"))
            }
        };
        let mut groups = HashSet::new();
        let mut times = Vec::new();
        for g in &self.groups {
            if self.association(&g.association).is_none() {
                return Err(format!(
                    "group {}: no association {:?}",
                    g.key, g.association
                ));
            }
            person(&g.owner)?;
            for m in &g.members {
                person(m)?;
            }
            if let Some(doctor) = g.patient.as_ref().and_then(|p| p.physician.as_ref()) {
                if *doctor != g.owner && !g.members.contains(doctor) {
                    return Err(format!("group {}: physician {doctor:?} not in it", g.key));
                }
            }
            if !groups.insert(g.key.as_str()) {
                return Err(format!("group {:?} twice", g.key));
            }
            times.push(g.at);
        }
        // A topic's key also names its body, so topics and comments share one set.
        let (mut topics, mut comments) = (HashSet::new(), HashSet::new());
        let known = |set: &HashSet<&str>, what: &str, key: &str| {
            if set.contains(key) {
                Ok(())
            } else {
                Err(format!("no {what} {key:?} before this step"))
            }
        };
        for s in &self.steps {
            person(s.by())?;
            match s {
                Step::Topic { key, group, .. } => {
                    known(&groups, "group", group)?;
                    if !topics.insert(key.as_str()) || !comments.insert(key.as_str()) {
                        return Err(format!("topic {key:?} twice"));
                    }
                }
                Step::Reply { key, topic, .. } => {
                    known(&topics, "topic", topic)?;
                    if let Some(key) = key {
                        if !comments.insert(key.as_str()) {
                            return Err(format!("comment {key:?} twice"));
                        }
                    }
                }
                Step::Open { topic, .. } | Step::Pin { topic, .. } => {
                    known(&topics, "topic", topic)?
                }
                Step::Acknowledge { comment, .. }
                | Step::Edit { comment, .. }
                | Step::Delete { comment, .. } => known(&comments, "comment", comment)?,
            }
            times.extend(s.at());
        }
        // Comment numbers follow the order of the steps: their times must too.
        for w in times.windows(2) {
            if w[0].sort_key() >= w[1].sort_key() {
                return Err(format!("the script goes back in time at {:?}", w[1]));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_compiled_in_data_loads_and_is_consistent() {
        let data = Dataset::load().expect("demo data");
        assert_eq!(data.associations.len(), 2);
        assert_eq!(data.people.len(), 13);
        assert_eq!(data.groups.len(), 7);
        assert!(data.steps.len() > 100, "{}", data.steps.len());
        // Multi-line bodies keep their lines and no leading newline.
        let Some(Step::Topic { body, .. }) = data.steps.first() else {
            panic!("the script starts with a topic")
        };
        assert!(body.starts_with("1月の多職種研修会のご案内です。\n\n日時："));
    }

    #[test]
    fn times_read_as_days_or_minutes_ago() {
        assert_eq!(
            When::try_from("6 days ago 13:05".to_owned()),
            Ok(When::Day {
                days_ago: 6,
                hour: 13,
                minute: 5
            })
        );
        assert_eq!(
            When::try_from("1 day ago 09:00".to_owned()),
            Ok(When::Day {
                days_ago: 1,
                hour: 9,
                minute: 0
            })
        );
        assert_eq!(
            When::try_from("30 minutes ago".to_owned()),
            Ok(When::MinutesAgo(30))
        );
        for bad in [
            "6 days 13:05",
            "6 days ago 25:00",
            "0 minutes ago",
            "yesterday",
            "",
        ] {
            assert!(When::try_from(bad.to_owned()).is_err(), "{bad}");
        }
    }

    #[test]
    fn a_step_naming_an_unknown_topic_or_going_back_in_time_is_refused() {
        let mut data = Dataset::load().expect("demo data");
        data.steps.push(Step::Open {
            topic: "nonexistent".into(),
            by: "aoki".into(),
            at: When::MinutesAgo(1),
        });
        let e = data.check().expect_err("unknown topic");
        assert!(e.contains("nonexistent"), "{e}");

        let mut data = Dataset::load().expect("demo data");
        data.steps.push(Step::Open {
            topic: "seminar".into(),
            by: "aoki".into(),
            at: When::Day {
                days_ago: 6,
                hour: 8,
                minute: 0,
            },
        });
        let e = data.check().expect_err("back in time");
        assert!(e.contains("back in time"), "{e}");
    }
}
