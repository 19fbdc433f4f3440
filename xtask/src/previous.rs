//! The previous release's server, built so that a test can run it against the new schema
//! (docs/upgrades.md, "Rolling back").
//!
//! Until releases are tagged, the previous release is the newest tree whose migrations are a
//! strict subset of this tree's: the last server that ran on the schema before its newest
//! migration, which is what still serves during a rolling upgrade. `MUSUBI_PREVIOUS_REF` names
//! another commit or tag instead.

use anyhow::{bail, Context, Result};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// The test reads the binary's path from here; empty with [`SKIP_ENV`] set when there is none.
pub const BIN_ENV: &str = "MUSUBI_PREVIOUS_BIN";
/// How many tenant and core migrations the previous release knows (`tenant/core`).
pub const VERSIONS_ENV: &str = "MUSUBI_PREVIOUS_VERSIONS";
/// Why no previous release could be built (a clone without history).
pub const SKIP_ENV: &str = "MUSUBI_PREVIOUS_UNAVAILABLE";
const REF_ENV: &str = "MUSUBI_PREVIOUS_REF";

pub enum Previous {
    Built {
        bin: PathBuf,
        commit: String,
        versions: String,
    },
    Unavailable(String),
}

impl Previous {
    /// The variables the test process needs.
    pub fn env(&self) -> Vec<(&'static str, String)> {
        match self {
            Previous::Built { bin, versions, .. } => vec![
                (BIN_ENV, bin.display().to_string()),
                (VERSIONS_ENV, versions.clone()),
            ],
            Previous::Unavailable(why) => vec![(SKIP_ENV, why.clone())],
        }
    }
}

fn git(root: &Path, args: &[&str]) -> Option<String> {
    let out = Command::new("git")
        .current_dir(root)
        .args(args)
        .stderr(Stdio::null())
        .output()
        .ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).trim().to_owned())
}

/// Which commit is the previous release, or why none can be found in this clone.
fn previous_commit(root: &Path) -> std::result::Result<String, String> {
    if let Ok(r) = std::env::var(REF_ENV) {
        return git(root, &["rev-parse", "--verify", &format!("{r}^{{commit}}")])
            .ok_or_else(|| format!("{REF_ENV}={r} is not a commit of this clone"));
    }
    let head = migrations_at(root, "HEAD").ok_or("no git history in this checkout")?;
    let changes = git(root, &["log", "--format=%H", "--", "migrations/"])
        .filter(|c| !c.is_empty())
        .ok_or("no git history of migrations/ in this checkout")?;
    // The newest tree whose migrations are a strict subset of this one's, unchanged: a
    // migration renamed or edited before it shipped does not make a release.
    for change in changes.lines() {
        let Some(parent) = git(root, &["rev-parse", "--verify", &format!("{change}^")]) else {
            return Err(format!(
                "the commit before {change} is not in this clone (a shallow clone?)"
            ));
        };
        let Some(before) = migrations_at(root, &parent) else {
            continue;
        };
        if before.len() < head.len() && before.iter().all(|m| head.contains(m)) {
            return Ok(parent);
        }
    }
    Err("no earlier tree holds a subset of these migrations".into())
}

/// `(blob, path)` of every file under `migrations/` at `commit`.
fn migrations_at(root: &Path, commit: &str) -> Option<Vec<String>> {
    let listing = git(root, &["ls-tree", "-r", commit, "--", "migrations/"])?;
    Some(
        listing
            .lines()
            .filter_map(|l| l.split_once(' ').map(|(_, rest)| rest.to_owned()))
            .collect(),
    )
}

fn count_sql(dir: &Path) -> Result<usize> {
    Ok(std::fs::read_dir(dir)
        .with_context(|| format!("cannot read {}", dir.display()))?
        .filter_map(std::result::Result::ok)
        .filter(|e| e.path().extension().is_some_and(|x| x == "sql"))
        .count())
}

/// Builds (or finds, built before) the previous release's `musubi` in debug.
pub fn build(root: &Path) -> Result<Previous> {
    let commit = match previous_commit(root) {
        Ok(c) => c,
        Err(why) => return Ok(Previous::Unavailable(why)),
    };
    let short = &commit[..12];
    let dir = root.join("target/xtask/previous");
    let bin = dir.join(format!("musubi-{short}"));
    let src = dir.join(format!("src-{short}"));
    let versions_file = dir.join(format!("versions-{short}"));
    if bin.is_file() && versions_file.is_file() {
        let versions = std::fs::read_to_string(&versions_file)?;
        eprintln!("xtask: the previous release ({short}) was built before");
        return Ok(Previous::Built {
            bin,
            commit,
            versions,
        });
    }
    eprintln!("xtask: building the previous release ({short}) for the upgrade test");
    if src.exists() {
        std::fs::remove_dir_all(&src)?;
    }
    std::fs::create_dir_all(&src)?;
    // `tar -m`: the files get today's times, so nothing copied below looks newer than them.
    let archive = Command::new("sh")
        .arg("-c")
        .arg(r#"git -C "$1" archive --format=tar "$2" | tar -x -m -C "$3""#)
        .args(["sh"])
        .arg(root)
        .arg(&commit)
        .arg(&src)
        .status()
        .context("cannot run git archive")?;
    if !archive.success() {
        bail!("git archive {commit} failed");
    }
    let versions = format!(
        "{}/{}",
        count_sql(&src.join("migrations/tenant"))?,
        count_sql(&src.join("migrations/core"))?
    );

    // Its own target directory (two trees of one workspace in one target directory overwrite
    // each other's fingerprints), seeded with the current build's dependencies when there is
    // one, so that only the workspace's own crates compile again.
    let target = root.join("target/previous");
    let current = root.join("target/debug");
    if !target.join("debug").exists() && current.join("deps").is_dir() {
        std::fs::create_dir_all(target.join("debug"))?;
        let mut cp = Command::new("cp");
        cp.arg("-a");
        for part in ["deps", "build", ".fingerprint"] {
            if current.join(part).exists() {
                cp.arg(current.join(part));
            }
        }
        cp.arg(target.join("debug"));
        crate::run(&mut cp)?;
    }
    crate::run(
        crate::cargo()
            .current_dir(&src)
            .env("CARGO_TARGET_DIR", &target)
            .env("CARGO_INCREMENTAL", "0")
            .args(["build", "--package", "musubi", "--bin", "musubi"]),
    )?;
    std::fs::copy(target.join("debug/musubi"), &bin)?;
    std::fs::write(&versions_file, &versions)?;
    std::fs::remove_dir_all(&src)?;
    Ok(Previous::Built {
        bin,
        commit,
        versions,
    })
}
