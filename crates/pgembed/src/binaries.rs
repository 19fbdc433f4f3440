//! Locating the PostgreSQL server binaries.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use crate::EmbedError;

/// A directory holding `initdb` and `postgres`, with the server's version.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PgBinaries {
    pub bin_dir: PathBuf,
    /// Major version, e.g. `16`; compared with `PGDATA/PG_VERSION`.
    pub major_version: u32,
    /// Full version as printed by `postgres --version`, e.g. `16.4`.
    pub version: String,
}

impl PgBinaries {
    pub fn initdb(&self) -> PathBuf {
        self.bin_dir.join("initdb")
    }

    pub fn postgres(&self) -> PathBuf {
        self.bin_dir.join("postgres")
    }
}

/// Finds the server binaries: `explicit` if given (no fallback, so a typo in
/// MUSUBI_PG_BIN is reported instead of silently using another version),
/// otherwise the usual install locations.
pub fn find_binaries(explicit: Option<&Path>) -> Result<PgBinaries, EmbedError> {
    let bin_dir = match explicit {
        Some(dir) => {
            if !has_server_binaries(dir) {
                return Err(EmbedError::BinariesNotFoundIn {
                    dir: dir.to_path_buf(),
                });
            }
            dir.to_path_buf()
        }
        None => candidates()
            .into_iter()
            .find(|d| has_server_binaries(d))
            .ok_or(EmbedError::BinariesNotFound)?,
    };
    let postgres = bin_dir.join("postgres");
    let version = postgres_version(&postgres)?;
    let major_version = parse_major(&version).ok_or_else(|| EmbedError::BinaryVersion {
        binary: postgres.clone(),
        detail: format!("unrecognised version {version:?}"),
    })?;
    Ok(PgBinaries {
        bin_dir,
        major_version,
        version,
    })
}

/// Directories to try, in order of preference.
fn candidates() -> Vec<PathBuf> {
    let mut out = Vec::new();
    if let Some(dir) = pg_config_bindir() {
        out.push(dir);
    }
    // Debian/Ubuntu install each major version side by side; prefer the newest.
    out.extend(versioned_dirs(Path::new("/usr/lib/postgresql"), "", "bin"));
    out.extend(versioned_dirs(Path::new("/usr"), "pgsql-", "bin"));
    for dir in [
        "/usr/local/pgsql/bin",
        "/opt/homebrew/bin",
        "/usr/local/bin",
    ] {
        out.push(PathBuf::from(dir));
    }
    if let Some(path) = std::env::var_os("PATH") {
        out.extend(std::env::split_paths(&path).filter(|p| p.is_absolute()));
    }
    out
}

fn pg_config_bindir() -> Option<PathBuf> {
    let output = Command::new("pg_config")
        .arg("--bindir")
        .stdin(Stdio::null())
        .stderr(Stdio::null())
        .output()
        .ok()?;
    if !output.status.success() {
        return None;
    }
    let dir = String::from_utf8(output.stdout).ok()?;
    let dir = dir.trim();
    (!dir.is_empty()).then(|| PathBuf::from(dir))
}

/// `parent/<prefix><version>/<sub>` for every entry, highest version first.
fn versioned_dirs(parent: &Path, prefix: &str, sub: &str) -> Vec<PathBuf> {
    let Ok(entries) = std::fs::read_dir(parent) else {
        return Vec::new();
    };
    let mut found: Vec<(Vec<u32>, PathBuf)> = entries
        .filter_map(|e| e.ok())
        .filter_map(|e| {
            let name = e.file_name().into_string().ok()?;
            let version = name.strip_prefix(prefix)?;
            let key = version
                .split('.')
                .map(|p| p.parse::<u32>().ok())
                .collect::<Option<Vec<_>>>()?;
            Some((key, e.path().join(sub)))
        })
        .collect();
    found.sort_by(|a, b| b.0.cmp(&a.0));
    found.into_iter().map(|(_, p)| p).collect()
}

/// Both binaries must be in the same directory: a lone `initdb` may be a
/// wrapper script that belongs to something else.
fn has_server_binaries(dir: &Path) -> bool {
    is_executable(&dir.join("initdb")) && is_executable(&dir.join("postgres"))
}

fn is_executable(path: &Path) -> bool {
    std::fs::metadata(path).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

fn postgres_version(postgres: &Path) -> Result<String, EmbedError> {
    let err = |detail: String| EmbedError::BinaryVersion {
        binary: postgres.to_path_buf(),
        detail,
    };
    let output = Command::new(postgres)
        .arg("--version")
        .stdin(Stdio::null())
        .output()
        .map_err(|e| err(e.to_string()))?;
    let stdout = String::from_utf8_lossy(&output.stdout);
    if !output.status.success() {
        let stderr = String::from_utf8_lossy(&output.stderr);
        return Err(err(format!(
            "`postgres --version` failed ({}): {}",
            output.status,
            stderr.trim()
        )));
    }
    parse_version_line(&stdout)
        .map(str::to_owned)
        .ok_or_else(|| err(format!("unexpected output {:?}", stdout.trim())))
}

/// `postgres (PostgreSQL) 16.4 (Debian 16.4-1)` -> `16.4`.
fn parse_version_line(line: &str) -> Option<&str> {
    let rest = line.split_once("(PostgreSQL)")?.1;
    rest.split_whitespace().next()
}

/// `16.4` -> 16, `17beta1` -> 17, `9.6.24` -> 9.
pub(crate) fn parse_major(version: &str) -> Option<u32> {
    let digits: String = version.chars().take_while(|c| c.is_ascii_digit()).collect();
    digits.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_version_output() {
        let line = "postgres (PostgreSQL) 15.20 (Debian 15.20-0+deb12u1)\n";
        assert_eq!(parse_version_line(line), Some("15.20"));
        assert_eq!(parse_major("15.20"), Some(15));
        assert_eq!(parse_major("17beta1"), Some(17));
        assert_eq!(parse_version_line("postgres 16"), None);
    }

    #[test]
    fn not_found_message_is_exact() {
        assert_eq!(
            EmbedError::BinariesNotFound.to_string(),
            "PostgreSQL server binaries (initdb, postgres) were not found. Install them: on \
             Debian/Ubuntu \"sudo apt-get install postgresql\", on Fedora/RHEL \"sudo dnf install \
             postgresql-server\", on macOS \"brew install postgresql@16\"; or set MUSUBI_PG_BIN \
             to the directory that holds them, or set DATABASE_URL to use an existing server."
        );
    }

    #[test]
    fn versioned_dirs_sort_highest_first() -> std::io::Result<()> {
        let tmp = tempfile::tempdir()?;
        for v in ["9.6", "16", "13", "notaversion"] {
            std::fs::create_dir(tmp.path().join(v))?;
        }
        let dirs = versioned_dirs(tmp.path(), "", "bin");
        let names: Vec<_> = dirs
            .iter()
            .filter_map(|p| p.parent()?.file_name()?.to_str())
            .collect();
        assert_eq!(names, ["16", "13", "9.6"]);
        Ok(())
    }
}
