//! What `generate` hands to `run`: the simulated people, their sessions and what each of them
//! may look at. Written as JSON next to the report so that a run can be repeated on the same
//! dataset without generating it again.

use anyhow::bail;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// The manifest's layout, and what the dataset behind it holds. 2: the crowded groups and
/// the heavy readers (manifests before had no version). 3: a register entry for every patient
/// group. 4: attachments, with their objects in the server's file store. 5: search documents,
/// the searchers, calendar events and absences. 6: each person's home association and people
/// to write direct messages to. 7: the registrars, and at large a first association with a
/// register of 100,000.
pub const VERSION: u32 = 7;

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Manifest {
    /// [`VERSION`] when written; a manifest of another version is refused.
    pub version: u32,
    /// small | medium | large
    pub scale: String,
    pub seed: u64,
    pub counts: DatasetCounts,
    /// Wall-clock seconds the generation took (0 when reused).
    pub generation_seconds: f64,
    /// The password every generated person has (they share one argon2id hash).
    pub password: String,
    /// E-mail addresses to sign in through the API (`signIn`), a few dozen at most: the sign-in
    /// rate limits are real.
    pub sign_in: Vec<String>,
    /// People the load driver acts as, each with a ready API session: every phase but the
    /// two below acts as them.
    pub people: Vec<Person>,
    /// The members of the crowded groups, each with their group and its topics (the
    /// `topic_crowded` phase only).
    pub crowded: Vec<Person>,
    /// The heavy readers, each with some of their groups and topics (the `home_heavy` phase
    /// only).
    pub heavy: Vec<Person>,
    /// The regular people in the most groups (the `search` phases): search reads everything
    /// they may see.
    #[serde(default)]
    pub searchers: Vec<Person>,
    /// The first association's administrators (the `patients_register` phase), who read every
    /// entry of its register. Their one group is one of that register's: it names the
    /// association to the driver, and they need not be its members.
    #[serde(default)]
    pub registrars: Vec<Person>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct DatasetCounts {
    pub associations: u64,
    pub facilities: u64,
    pub people: u64,
    pub patient_groups: u64,
    pub general_groups: u64,
    pub group_memberships: u64,
    pub topics: u64,
    pub comments: u64,
    pub footprints: u64,
    pub unread_rows: u64,
    /// The extras, included in the counts above: groups of 40 who have read everything
    /// (their topics), and people with thousands unread (their unread comments in all).
    #[serde(default)]
    pub crowded_groups: u64,
    #[serde(default)]
    pub crowded_topics: u64,
    #[serde(default)]
    pub heavy_readers: u64,
    #[serde(default)]
    pub heavy_unread: u64,
    /// Comments with an attachment (a photo or a PDF).
    #[serde(default)]
    pub attachments: u64,
    /// Documents free-word search looks through (titles, live comments, attachments, patients).
    #[serde(default)]
    pub search_docs: u64,
    /// How many groups the searchers are in: fewest and most.
    #[serde(default)]
    pub searcher_groups_min: u64,
    #[serde(default)]
    pub searcher_groups_max: u64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Person {
    pub id: Uuid,
    /// Bearer token of an API session that is already past the second factor.
    pub token: String,
    /// Some of the person's active groups (at most a few dozen).
    pub groups: Vec<GroupRef>,
    /// Open (not closed) topics of those groups that are in the person's scope.
    pub topics: Vec<TopicRef>,
    /// Attachments of comments in those topics (at most a few).
    #[serde(default)]
    pub attachments: Vec<AttachmentRef>,
    /// Slug of the association the person is at home in (an active member): direct messages
    /// are sent from there.
    #[serde(default)]
    pub home: String,
    /// People to write direct messages to (a few): regular people at home in the same
    /// association, colleagues of the person's groups first, so always in their directory.
    #[serde(default)]
    pub contacts: Vec<Uuid>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct AttachmentRef {
    pub association: String,
    pub id: Uuid,
    /// Bytes of the original.
    pub size: u64,
    /// A photo, with a preview and a thumbnail.
    pub thumbnail: bool,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct GroupRef {
    /// Slug of the host association (the `Musubi-Association` header).
    pub association: String,
    pub id: Uuid,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TopicRef {
    pub association: String,
    pub group_id: Uuid,
    pub id: Uuid,
    /// Comments in the topic when generated (the body counts as one).
    pub comments: u32,
}

impl Manifest {
    /// Reads a manifest of this [`VERSION`]; one written by an older `musubi-bench` describes
    /// a dataset without what the phases now need, and is refused.
    pub fn read(path: &std::path::Path) -> anyhow::Result<Self> {
        #[derive(Deserialize)]
        struct Probe {
            #[serde(default)]
            version: u32,
        }
        let bytes = std::fs::read(path)?;
        let found = serde_json::from_slice::<Probe>(&bytes)?.version;
        if found != VERSION {
            bail!(
                "the dataset was generated by another version of musubi-bench (manifest version \
                 {found}, this one needs {VERSION}): generate it again (`cargo xtask bench` \
                 without `--reuse`)"
            );
        }
        Ok(serde_json::from_slice(&bytes)?)
    }

    pub fn write(&self, path: &std::path::Path) -> anyhow::Result<()> {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)?;
        }
        std::fs::write(path, serde_json::to_vec(self)?)?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn a_manifest_of_another_version_is_refused() {
        let dir =
            std::env::temp_dir().join(format!("musubi-bench-manifest-{}", std::process::id()));
        let path = dir.join("manifest.json");
        let m = Manifest {
            version: VERSION,
            scale: "small".to_owned(),
            seed: 1,
            counts: DatasetCounts::default(),
            generation_seconds: 0.0,
            password: "p".to_owned(),
            sign_in: Vec::new(),
            people: Vec::new(),
            crowded: Vec::new(),
            heavy: Vec::new(),
            searchers: Vec::new(),
            registrars: Vec::new(),
        };
        m.write(&path).unwrap();
        assert_eq!(Manifest::read(&path).unwrap().version, VERSION);

        // As written before there was a version.
        let mut old = serde_json::to_value(&m).unwrap();
        let o = old.as_object_mut().unwrap();
        o.remove("version");
        o.remove("crowded");
        o.remove("heavy");
        std::fs::write(&path, serde_json::to_vec(&old).unwrap()).unwrap();
        let e = Manifest::read(&path).unwrap_err().to_string();
        assert!(e.contains("version 0") && e.contains("--reuse"), "{e}");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
