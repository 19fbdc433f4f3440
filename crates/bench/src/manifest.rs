//! What `generate` hands to `run`: the simulated people, their sessions and what each of them
//! may look at. Written as JSON next to the report so that a run can be repeated on the same
//! dataset without generating it again.

use serde::{Deserialize, Serialize};
use uuid::Uuid;

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Manifest {
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
    /// People the load driver acts as, each with a ready API session.
    pub people: Vec<Person>,
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
    pub fn read(path: &std::path::Path) -> anyhow::Result<Self> {
        let bytes = std::fs::read(path)?;
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
