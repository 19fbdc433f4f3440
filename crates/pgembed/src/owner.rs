//! Which OS user PostgreSQL runs as, and making directories usable by it.

use std::fs::Permissions;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::time::Duration;

use nix::unistd::User;

use crate::EmbedError;

/// The user that runs initdb and postgres. `ids` is `None` when we are not
/// root: then we run as ourselves and change no ownership.
#[derive(Debug, Clone)]
pub(crate) struct RunAs {
    pub name: String,
    pub ids: Option<(u32, u32)>,
}

impl RunAs {
    pub fn current() -> Self {
        let uid = nix::unistd::geteuid();
        let name = User::from_uid(uid)
            .ok()
            .flatten()
            .map(|u| u.name)
            .unwrap_or_else(|| uid.to_string());
        RunAs { name, ids: None }
    }

    pub fn uid(&self) -> u32 {
        match self.ids {
            Some((uid, _)) => uid,
            None => nix::unistd::geteuid().as_raw(),
        }
    }

    /// Gives `path` to the run-as user (no-op when not root).
    pub fn chown(&self, path: &Path) -> Result<(), EmbedError> {
        if let Some((uid, gid)) = self.ids {
            std::os::unix::fs::lchown(path, Some(uid), Some(gid)).map_err(|e| {
                EmbedError::io(format!("could not change owner of {}", path.display()), e)
            })?;
        }
        Ok(())
    }

    /// Like `chown`, for a whole tree (used when PGDATA changed hands, e.g. copied by root).
    pub fn chown_tree(&self, path: &Path) -> Result<(), EmbedError> {
        self.chown(path)?;
        let meta = std::fs::symlink_metadata(path)
            .map_err(|e| EmbedError::io(format!("could not inspect {}", path.display()), e))?;
        if meta.is_dir() {
            let entries = std::fs::read_dir(path)
                .map_err(|e| EmbedError::io(format!("could not list {}", path.display()), e))?;
            for entry in entries {
                let entry = entry
                    .map_err(|e| EmbedError::io(format!("could not list {}", path.display()), e))?;
                self.chown_tree(&entry.path())?;
            }
        }
        Ok(())
    }

    /// Checks that the user can reach `target` by walking down from `/`.
    pub fn check_traversable(&self, target: &Path, pgdata: &Path) -> Result<(), EmbedError> {
        let Some((uid, gid)) = self.ids else {
            return Ok(());
        };
        for dir in target.ancestors() {
            let meta = std::fs::metadata(dir)
                .map_err(|e| EmbedError::io(format!("could not inspect {}", dir.display()), e))?;
            let mode = meta.mode();
            let ok = mode & 0o001 != 0
                || (meta.uid() == uid && mode & 0o100 != 0)
                || (meta.gid() == gid && mode & 0o010 != 0);
            if !ok {
                return Err(EmbedError::NotTraversable {
                    pgdata: pgdata.to_path_buf(),
                    dir: dir.to_path_buf(),
                    user: self.name.clone(),
                });
            }
        }
        Ok(())
    }
}

/// Serialises user creation among clusters started by this process.
static USER_LOCK: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// Returns the unprivileged user to run as, creating it if needed.
pub(crate) async fn ensure_user(name: &str) -> Result<RunAs, EmbedError> {
    let os_err = |detail: String| EmbedError::OsUser {
        user: name.to_owned(),
        detail,
    };
    if name.is_empty() || name == "root" {
        return Err(os_err(
            "choose an unprivileged user other than root".to_owned(),
        ));
    }
    let _guard = USER_LOCK.lock().await;
    if let Some(user) = lookup(name)? {
        return Ok(user);
    }
    let useradd = ["/usr/sbin/useradd", "/sbin/useradd", "/usr/bin/useradd"]
        .into_iter()
        .map(PathBuf::from)
        .find(|p| p.is_file())
        .ok_or_else(|| EmbedError::UseraddMissing {
            user: name.to_owned(),
        })?;
    tracing::info!(user = name, "creating system user for PostgreSQL");
    let mut last = None;
    // Another process may be creating the same user or holding the passwd lock.
    for attempt in 0..5 {
        if attempt > 0 {
            tokio::time::sleep(Duration::from_millis(200 * attempt)).await;
        }
        let output = tokio::process::Command::new(&useradd)
            .args([
                "--system",
                "--user-group",
                "--no-create-home",
                "--home-dir",
                "/nonexistent",
                "--shell",
                "/usr/sbin/nologin",
                name,
            ])
            .stdin(std::process::Stdio::null())
            .output()
            .await
            .map_err(|e| EmbedError::io(format!("could not run {}", useradd.display()), e))?;
        if let Some(user) = lookup(name)? {
            return Ok(user);
        }
        last = Some(output);
    }
    let (status, output) = match last {
        Some(o) => (
            o.status.to_string(),
            crate::tail(&[o.stdout, o.stderr].concat(), 10),
        ),
        None => (String::new(), String::new()),
    };
    Err(EmbedError::Useradd {
        user: name.to_owned(),
        status,
        output,
    })
}

fn lookup(name: &str) -> Result<Option<RunAs>, EmbedError> {
    let user = User::from_name(name).map_err(|e| EmbedError::OsUser {
        user: name.to_owned(),
        detail: format!("user lookup failed: {e}"),
    })?;
    match user {
        Some(u) if u.uid.is_root() => Err(EmbedError::OsUser {
            user: name.to_owned(),
            detail: "it has uid 0; choose an unprivileged user".to_owned(),
        }),
        Some(u) => Ok(Some(RunAs {
            name: name.to_owned(),
            ids: Some((u.uid.as_raw(), u.gid.as_raw())),
        })),
        None => Ok(None),
    }
}

/// Creates `dir` and missing parents; returns the directories it created, topmost first.
pub(crate) fn create_dir_all_tracked(dir: &Path) -> Result<Vec<PathBuf>, EmbedError> {
    let missing: Vec<PathBuf> = dir
        .ancestors()
        .take_while(|p| !p.as_os_str().is_empty() && std::fs::symlink_metadata(p).is_err())
        .map(Path::to_path_buf)
        .collect();
    std::fs::create_dir_all(dir)
        .map_err(|e| EmbedError::io(format!("could not create directory {}", dir.display()), e))?;
    Ok(missing.into_iter().rev().collect())
}

/// Creates `dir` if missing; sets it to 0700 owned by the run-as user.
pub(crate) fn private_dir(dir: &Path, run_as: &RunAs) -> Result<(), EmbedError> {
    match std::fs::create_dir(dir) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
        Err(e) => {
            return Err(EmbedError::io(
                format!("could not create directory {}", dir.display()),
                e,
            ))
        }
    }
    run_as.chown(dir)?;
    set_mode(dir, 0o700)
}

pub(crate) fn set_mode(path: &Path, mode: u32) -> Result<(), EmbedError> {
    std::fs::set_permissions(path, Permissions::from_mode(mode)).map_err(|e| {
        EmbedError::io(
            format!("could not set permissions {mode:o} on {}", path.display()),
            e,
        )
    })
}
