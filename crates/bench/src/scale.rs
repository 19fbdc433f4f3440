//! The dataset sizes of the benchmark.

use clap::ValueEnum;

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Scale {
    /// About 50,000 comments: the CI smoke run.
    Small,
    /// 10 associations, 5,000 people, 20,000 patient groups, 1,000,000 comments,
    /// 5,000,000 footprints: where the budgets apply.
    Medium,
    /// Ten times medium; generated only on demand.
    Large,
}

/// Sizes of one scale.
#[derive(Debug, Clone, Copy)]
pub struct Sizes {
    pub associations: u32,
    pub people: u32,
    pub patient_groups: u32,
    pub general_groups: u32,
    pub comments: u64,
    /// Target number of footprints (approximate: read positions decide the exact count).
    pub footprints: u64,
    /// Crowded groups, on top of the above: 40 members each, everyone has read everything
    /// (the `topic_crowded` phase).
    pub crowded_groups: u32,
    /// Heavy readers, on top of the above: hospital doctors in 20 groups of their own who
    /// have hardly read any of it (the `home_heavy` phase).
    pub heavy_readers: u32,
    /// Topics in each of a heavy reader's groups (18–38 comments each).
    pub heavy_topics_per_group: u32,
    /// Comments with an attachment (a photo or a PDF), per mille. Large has fewer: its
    /// objects would otherwise need more disk than its database.
    pub attachments_per_mille: u32,
    /// Register entries of the first association, on top of its share of the patient groups
    /// (0: none added): at large, a register of 100,000 read page by page by its
    /// administrators (the `patients_register` phase); at small, enough to take the same path.
    pub register_first: u32,
}

impl Scale {
    pub fn name(self) -> &'static str {
        match self {
            Scale::Small => "small",
            Scale::Medium => "medium",
            Scale::Large => "large",
        }
    }

    pub fn sizes(self) -> Sizes {
        match self {
            Scale::Small => Sizes {
                associations: 3,
                people: 300,
                patient_groups: 1_000,
                general_groups: 30,
                comments: 50_000,
                footprints: 250_000,
                crowded_groups: 3,
                heavy_readers: 3,
                heavy_topics_per_group: 5,
                attachments_per_mille: 20,
                register_first: 1_500,
            },
            Scale::Medium => Sizes {
                associations: 10,
                people: 5_000,
                patient_groups: 20_000,
                general_groups: 500,
                comments: 1_000_000,
                footprints: 5_000_000,
                crowded_groups: 10,
                heavy_readers: 5,
                heavy_topics_per_group: 12,
                attachments_per_mille: 20,
                register_first: 0,
            },
            Scale::Large => Sizes {
                associations: 100,
                people: 50_000,
                patient_groups: 200_000,
                general_groups: 5_000,
                comments: 10_000_000,
                footprints: 50_000_000,
                crowded_groups: 10,
                heavy_readers: 5,
                heavy_topics_per_group: 20,
                attachments_per_mille: 5,
                register_first: 100_000,
            },
        }
    }
}
