//! The system packages `cargo xtask demo` and `cargo xtask test` need, installed when missing
//! so that README's two commands work on a fresh Debian/Ubuntu machine with only Rust and git.
//! The `musubi` binary itself never installs anything.
//!
//! | Need | Detected by | Debian package | Not needed when |
//! |---|---|---|---|
//! | PostgreSQL server binaries (demo, test) | `musubi_pgembed::find_binaries`, as `musubi` looks | `postgresql` | `DATABASE_URL` (demo), `MUSUBI_TEST_DATABASE_URL` (test), `MUSUBI_PG_BIN` |
//! | Redis (test) | `redis-server` on PATH or in /usr/bin | `redis-server` | `MUSUBI_TEST_REDIS_URL` |
//! | Python 3 (test) | `python3` on PATH | `python3` | both `MUSUBI_TEST_SMTP_URL` and `MUSUBI_TEST_PYTHON` |
//! | aiosmtpd (test) | `import aiosmtpd` in `python3` or /usr/bin/python3 | `python3-aiosmtpd`, or pip into a Python that allows it | `MUSUBI_TEST_SMTP_URL` |
//! | Python's venv (test) | the tests' Python is ready, or `import venv, ensurepip` in `python3` | `python3-venv` | `MUSUBI_TEST_PYTHON` |
//! | Node.js 20+ (test) | `node --version` | `nodejs` | — |
//! | npm (test) | `npm` on PATH | `npm` | — |
//! | Chromium (test) | `$CHROMIUM`, else /usr/bin/chromium | `chromium` | — |
//! | pdftotext (test) | `$MUSUBI_PDFTOTEXT`, else `pdftotext` on PATH, as `musubi` looks | `poppler-utils` | — |
//! | Poppler's Japanese data (test) | /usr/share/poppler/cMap/Adobe-Japan1 (or under /usr/local, /opt/homebrew) | `poppler-data` | — |
//! | heif-convert and heif-enc (test) | `$MUSUBI_HEIF_CONVERT`, else `heif-convert` on PATH, as `musubi` looks; `heif-enc` beside it | `libheif-examples` | — |
//!
//! The demo runs without the last three: `musubi` then keeps HEIC photos as they are and does
//! not index the text of PDFs (see docs/files.md, "Photos and text").
//!
//! Presence is checked first, so a second run installs nothing.
//!
//! Then, for the tests, a Python of their own: a virtualenv in `target/test-python` with the
//! pinned [`TEST_PYTHON_PACKAGES`] (the calendar feed test reads Musubi's iCalendar feed with
//! them, see docs/testing.md), made with `python3 -m venv` and pip from PyPI when missing or
//! not holding those versions. `cargo xtask test` hands its interpreter to the tests as
//! `MUSUBI_TEST_PYTHON`; set that variable yourself to use a Python of your own instead, which
//! is then only checked, never installed into.

use anyhow::{bail, Context, Result};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Purpose {
    Demo,
    Test,
}

impl Purpose {
    fn command(self) -> &'static str {
        match self {
            Purpose::Demo => "cargo xtask demo",
            Purpose::Test => "cargo xtask test",
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Need {
    PostgresServer,
    Redis,
    Python,
    Aiosmtpd,
    PythonVenv,
    Node,
    Npm,
    Chromium,
    Pdftotext,
    PopplerData,
    HeifConvert,
}

/// One row of the table above.
struct Row {
    need: Need,
    what: &'static str,
    /// Why, per purpose (`None`: not needed for it).
    demo: Option<&'static str>,
    test: Option<&'static str>,
    debian: &'static str,
    /// Any of these set means the user brings their own (per purpose).
    demo_env: &'static [&'static str],
    test_env: &'static [&'static str],
    /// What to install without apt-get.
    elsewhere: &'static str,
}

const TABLE: &[Row] = &[
    Row {
        need: Need::PostgresServer,
        what: "PostgreSQL server binaries",
        demo: Some("the demo's private database"),
        test: Some("the tests' private database"),
        debian: "postgresql",
        demo_env: &["DATABASE_URL", "MUSUBI_PG_BIN"],
        test_env: &["MUSUBI_TEST_DATABASE_URL", "MUSUBI_PG_BIN"],
        elsewhere: "PostgreSQL 15 or newer with its server binaries (macOS: `brew install \
                    postgresql@16`; Fedora: `dnf install postgresql-server`)",
    },
    Row {
        need: Need::Redis,
        what: "Redis",
        demo: None,
        test: Some("the tests' private Redis"),
        debian: "redis-server",
        demo_env: &[],
        test_env: &["MUSUBI_TEST_REDIS_URL"],
        elsewhere: "Redis 7 (macOS: `brew install redis`; Fedora: `dnf install redis`)",
    },
    // Needed while anything that runs in it is (see `needs`): not with both the SMTP server's
    // and the tests' Python's variables set.
    Row {
        need: Need::Python,
        what: "Python 3",
        demo: None,
        test: Some("the tests' SMTP server and the calendar feed test"),
        debian: "python3",
        demo_env: &[],
        test_env: &[],
        elsewhere: "Python 3 (macOS: `brew install python`)",
    },
    Row {
        need: Need::Aiosmtpd,
        what: "Python's aiosmtpd",
        demo: None,
        test: Some("the tests' SMTP server"),
        debian: "python3-aiosmtpd",
        demo_env: &[],
        test_env: &["MUSUBI_TEST_SMTP_URL"],
        elsewhere: "aiosmtpd (`python3 -m pip install aiosmtpd`, in a virtualenv if your Python \
                    refuses)",
    },
    Row {
        need: Need::PythonVenv,
        what: "Python's venv module with pip",
        demo: None,
        test: Some("the calendar feed test's Python packages"),
        debian: "python3-venv",
        demo_env: &[],
        test_env: &[TEST_PYTHON_ENV],
        elsewhere: "Python's venv and ensurepip modules (they come with Python from python.org or \
                    Homebrew; Fedora: `dnf install python3`), or MUSUBI_TEST_PYTHON set to a \
                    Python with icalendar and recurring-ical-events",
    },
    Row {
        need: Need::Node,
        what: "Node.js 20 or newer",
        demo: None,
        test: Some("the browser tests"),
        debian: "nodejs",
        demo_env: &[],
        test_env: &[],
        elsewhere: "Node.js 20 or newer (macOS: `brew install node`; or https://nodejs.org)",
    },
    Row {
        need: Need::Npm,
        what: "npm",
        demo: None,
        test: Some("the browser tests' JavaScript packages"),
        debian: "npm",
        demo_env: &[],
        test_env: &[],
        elsewhere: "npm (it comes with Node.js from nodejs.org or Homebrew)",
    },
    Row {
        need: Need::Chromium,
        what: "Chromium",
        demo: None,
        test: Some("the browser tests"),
        debian: "chromium",
        demo_env: &[],
        test_env: &[],
        elsewhere: "Chromium or Chrome, with CHROMIUM set to its executable",
    },
    Row {
        need: Need::Pdftotext,
        what: "pdftotext",
        demo: None,
        test: Some("the PDF text tests"),
        debian: "poppler-utils",
        demo_env: &[],
        test_env: &[],
        elsewhere: "Poppler's pdftotext (macOS: `brew install poppler`; Fedora: `dnf install \
                    poppler-utils`), or MUSUBI_PDFTOTEXT set to its executable",
    },
    Row {
        need: Need::PopplerData,
        what: "Poppler's Japanese encoding data",
        demo: None,
        test: Some("the Japanese PDF text tests"),
        debian: "poppler-data",
        demo_env: &[],
        test_env: &[],
        elsewhere: "poppler-data (macOS: `brew install poppler`; Fedora: `dnf install \
                    poppler-data`)",
    },
    Row {
        need: Need::HeifConvert,
        what: "heif-convert and heif-enc",
        demo: None,
        test: Some("the HEIC photo tests"),
        debian: "libheif-examples",
        demo_env: &[],
        test_env: &[],
        elsewhere: "libheif's example tools (macOS: `brew install libheif`; Fedora: `dnf install \
                    libheif-tools`), or MUSUBI_HEIF_CONVERT set to heif-convert with heif-enc \
                    beside it",
    },
];

fn row(need: Need) -> &'static Row {
    TABLE.iter().find(|r| r.need == need).unwrap_or(&TABLE[0])
}

fn why(need: Need, purpose: Purpose) -> Option<&'static str> {
    let r = row(need);
    match purpose {
        Purpose::Demo => r.demo,
        Purpose::Test => r.test,
    }
}

/// What `purpose` needs from the system, given which variables are set (`is_set`).
pub fn needs(purpose: Purpose, is_set: impl Fn(&str) -> bool) -> Vec<Need> {
    let mut out: Vec<Need> = TABLE
        .iter()
        .filter(|r| why(r.need, purpose).is_some())
        .filter(|r| {
            let env = match purpose {
                Purpose::Demo => r.demo_env,
                Purpose::Test => r.test_env,
            };
            !env.iter().any(|v| is_set(v))
        })
        .map(|r| r.need)
        .collect();
    // Python itself only for what runs in it.
    if !out
        .iter()
        .any(|n| matches!(n, Need::Aiosmtpd | Need::PythonVenv))
    {
        out.retain(|n| *n != Need::Python);
    }
    out
}

/// The `python3` on PATH, as far as installing aiosmtpd is concerned.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PythonProbe {
    pub executable: String,
    /// pip is there and may install (a virtualenv, pyenv; not Debian's system Python, which
    /// refuses under PEP 668).
    pub pip_may_install: bool,
}

impl PythonProbe {
    fn is_system(&self) -> bool {
        self.executable.starts_with("/usr/bin/")
    }
}

/// What is missing: needs absent or unusable, with what was found instead (an old version).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Detection {
    pub missing: Vec<(Need, Option<String>)>,
    pub python: Option<PythonProbe>,
}

/// How to get what is missing.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Plan {
    /// Debian packages, in table order.
    pub apt: Vec<&'static str>,
    /// `python3 -m pip install aiosmtpd` first (falling back to apt where there is apt).
    pub pip_aiosmtpd: bool,
}

/// Decides the installs for a detection; `apt` tells whether this system has apt-get.
pub fn plan(detection: &Detection, apt: bool) -> Plan {
    let mut out = Plan::default();
    for (need, found) in &detection.missing {
        // An old Node.js is not fixed by the distribution's package: it would be the same one.
        if found.is_some() {
            continue;
        }
        match need {
            Need::Aiosmtpd => match &detection.python {
                Some(p) if p.pip_may_install && !p.is_system() => out.pip_aiosmtpd = true,
                Some(p) if p.pip_may_install && !apt => out.pip_aiosmtpd = true,
                _ if apt => out.apt.push(row(*need).debian),
                _ => {}
            },
            _ if apt => out.apt.push(row(*need).debian),
            _ => {}
        }
    }
    out
}

/// The `apt-get install` line for `packages`.
pub fn apt_command(packages: &[&str], sudo: bool) -> String {
    format!(
        "{}apt-get install -y --no-install-recommends {}",
        if sudo { "sudo " } else { "" },
        packages.join(" ")
    )
}

/// One line per missing need: what, why, and what to install or set without apt-get.
fn describe(detection: &Detection, purpose: Purpose, elsewhere: bool) -> String {
    let mut out = String::new();
    for (need, found) in &detection.missing {
        let r = row(*need);
        out.push_str(&format!("  - {}", r.what));
        if let Some(found) = found {
            out.push_str(&format!(" (found {found})"));
        }
        if let Some(why) = why(*need, purpose) {
            out.push_str(&format!(", for {why}"));
        }
        if elsewhere {
            out.push_str(&format!(": {}", r.elsewhere));
            let env = match purpose {
                Purpose::Demo => r.demo_env,
                Purpose::Test => r.test_env,
            };
            if let Some(var) = env.first() {
                out.push_str(&format!("; or set {var} to use your own"));
            }
        }
        out.push('\n');
    }
    out
}

/// What to do on a system without apt-get (other distributions, macOS).
pub fn without_apt_message(detection: &Detection, purpose: Purpose) -> String {
    format!(
        "this system has no apt-get, so `{cmd}` cannot install what it needs. Install these \
         with your system's package manager, then run `{cmd}` again:\n{list}",
        cmd = purpose.command(),
        list = describe(detection, purpose, true).trim_end()
    )
}

/// What to do when apt-get is there but we may not use it.
pub fn needs_root_message(detection: &Detection, purpose: Purpose, plan: &Plan) -> String {
    format!(
        "missing:\n{list}\ninstalling them needs root (or passwordless sudo). Run\n  {apt}\nand \
         then `{cmd}` again.",
        list = describe(detection, purpose, false).trim_end(),
        apt = apt_command(&plan.apt, true),
        cmd = purpose.command(),
    )
}

/// Whether and how apt-get may be used here.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum AptAccess {
    Root,
    Sudo,
    NotAllowed,
    NoApt,
}

fn apt_access() -> AptAccess {
    if find_on_path("apt-get").is_none() {
        return AptAccess::NoApt;
    }
    if nix::unistd::Uid::effective().is_root() {
        return AptAccess::Root;
    }
    let sudo = Command::new("sudo")
        .args(["-n", "true"])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if sudo {
        AptAccess::Sudo
    } else {
        AptAccess::NotAllowed
    }
}

pub fn find_on_path(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|d| d.join(name))
        .find(|p| p.is_file())
}

fn quiet(cmd: &mut Command) -> Option<std::process::Output> {
    cmd.stdin(Stdio::null())
        .stderr(Stdio::null())
        .output()
        .ok()
        .filter(|o| o.status.success())
}

/// Python interpreters that may run the tests' SMTP server, in order of preference.
const PYTHONS: [&str; 2] = ["python3", "/usr/bin/python3"];

fn imports_aiosmtpd(python: &str) -> bool {
    quiet(Command::new(python).args(["-c", "import aiosmtpd"])).is_some()
}

/// The Python to run `-m aiosmtpd` with: the first that has it (pip may have put it into the
/// user's own Python, apt into the system's).
pub fn smtp_python() -> &'static str {
    PYTHONS
        .into_iter()
        .find(|p| imports_aiosmtpd(p))
        .unwrap_or(PYTHONS[0])
}

fn probe_python() -> Option<PythonProbe> {
    const SCRIPT: &str = "import sys, os, sysconfig, importlib.util as u\n\
        venv = sys.prefix != sys.base_prefix\n\
        managed = os.path.exists(os.path.join(sysconfig.get_path('stdlib'), 'EXTERNALLY-MANAGED'))\n\
        print(sys.executable)\n\
        print(u.find_spec('pip') is not None and (venv or not managed))";
    let out = quiet(Command::new("python3").args(["-c", SCRIPT]))?;
    let text = String::from_utf8_lossy(&out.stdout);
    let mut lines = text.lines();
    Some(PythonProbe {
        executable: lines.next()?.trim().to_owned(),
        pip_may_install: lines.next()? == "True",
    })
}

/// `v20.19.2` → 20.
pub fn node_major(version: &str) -> Option<u32> {
    version
        .trim()
        .trim_start_matches('v')
        .split('.')
        .next()?
        .parse()
        .ok()
}

pub fn postgres_present() -> bool {
    musubi_pgembed::find_binaries(None).is_ok()
}

pub fn redis_server() -> Option<PathBuf> {
    find_on_path("redis-server").or_else(|| {
        let p = PathBuf::from("/usr/bin/redis-server");
        p.is_file().then_some(p)
    })
}

/// A tool as `musubi` finds it (crates/media): the variable's path if set, else on PATH.
fn media_tool(var: &str, name: &str) -> Option<PathBuf> {
    match std::env::var_os(var).filter(|v| !v.is_empty()) {
        Some(path) => Some(PathBuf::from(path)).filter(|p| p.is_file()),
        None => find_on_path(name),
    }
}

/// Where Poppler's data for Japanese (Adobe-Japan1 CMaps) is found.
const POPPLER_DATA: [&str; 3] = [
    "/usr/share/poppler",
    "/usr/local/share/poppler",
    "/opt/homebrew/share/poppler",
];

fn poppler_data_present() -> bool {
    POPPLER_DATA
        .iter()
        .any(|d| Path::new(d).join("cMap/Adobe-Japan1").is_dir())
}

fn chromium() -> PathBuf {
    std::env::var_os("CHROMIUM")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/usr/bin/chromium"))
}

/// Looks for each need: `None` when usable, else what was found instead (if anything).
fn detect_one(need: Need) -> Option<Option<String>> {
    let present = match need {
        Need::PostgresServer => postgres_present(),
        Need::Redis => redis_server().is_some(),
        Need::Python => find_on_path("python3").is_some(),
        Need::Aiosmtpd => PYTHONS.into_iter().any(imports_aiosmtpd),
        // Only to make the tests' virtualenv, so not once that is ready.
        Need::PythonVenv => {
            test_python_ready(&test_python_in_target())
                || quiet(Command::new("python3").args(["-c", "import venv, ensurepip"])).is_some()
        }
        Need::Node => {
            let version = quiet(Command::new("node").arg("--version"))
                .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned());
            return match version {
                Some(v) if node_major(&v).is_some_and(|m| m >= 20) => None,
                Some(v) => Some(Some(format!("Node.js {v}"))),
                None => Some(None),
            };
        }
        Need::Npm => find_on_path("npm").is_some(),
        Need::Chromium => chromium().is_file(),
        Need::Pdftotext => media_tool("MUSUBI_PDFTOTEXT", "pdftotext").is_some(),
        Need::PopplerData => poppler_data_present(),
        // The tests make their HEIC files with heif-enc, from the same package.
        Need::HeifConvert => media_tool("MUSUBI_HEIF_CONVERT", "heif-convert")
            .is_some_and(|p| p.with_file_name("heif-enc").is_file()),
    };
    (!present).then_some(None)
}

pub fn detect(needs: &[Need]) -> Detection {
    let missing = needs
        .iter()
        .filter_map(|n| detect_one(*n).map(|found| (*n, found)))
        .collect::<Vec<_>>();
    let python = missing
        .iter()
        .any(|(n, _)| *n == Need::Aiosmtpd)
        .then(probe_python)
        .flatten();
    Detection { missing, python }
}

fn say(text: &str) {
    eprintln!("xtask: set-up: {text}");
}

fn is_set(var: &str) -> bool {
    std::env::var_os(var).is_some_and(|v| !v.is_empty())
}

/// Makes sure what `purpose` needs is installed, installing it when this machine allows, or
/// stops with what to do. With `check_only`, reports and changes nothing.
pub fn ensure(purpose: Purpose, check_only: bool) -> Result<()> {
    let needs = needs(purpose, is_set);
    let detection = detect(&needs);
    if detection.missing.is_empty() {
        say(&format!(
            "everything `{}` needs is installed",
            purpose.command()
        ));
        return ensure_python_packages(purpose, check_only);
    }
    let access = apt_access();
    let mut plan = plan(&detection, access != AptAccess::NoApt);
    say(&format!(
        "missing:\n{}",
        describe(&detection, purpose, false).trim_end()
    ));
    if check_only {
        if !plan.apt.is_empty() {
            let sudo = matches!(access, AptAccess::Sudo | AptAccess::NotAllowed);
            say(&format!("would run: {}", apt_command(&plan.apt, sudo)));
        }
        if plan.pip_aiosmtpd {
            say("would run: python3 -m pip install --quiet aiosmtpd");
        }
        bail!("missing system packages (see above)");
    }
    if plan.pip_aiosmtpd {
        say("installing aiosmtpd with pip (for the tests' SMTP server)");
        let ok = Command::new("python3")
            .args(["-m", "pip", "install", "--quiet", "aiosmtpd"])
            .status()
            .is_ok_and(|s| s.success());
        if !ok && access != AptAccess::NoApt {
            say("pip could not install aiosmtpd; using the Debian package instead");
            plan.apt.push(row(Need::Aiosmtpd).debian);
        }
    }
    if !plan.apt.is_empty() {
        let sudo = match access {
            AptAccess::Root => false,
            AptAccess::Sudo => true,
            AptAccess::NotAllowed => bail!(needs_root_message(&detection, purpose, &plan)),
            AptAccess::NoApt => bail!(without_apt_message(&detection, purpose)),
        };
        say(&format!(
            "installing the Debian packages {} (a second run will find them)",
            plan.apt.join(" ")
        ));
        apt_get(sudo, &["update", "-qq"])?;
        let mut install = vec!["install", "-y", "-qq", "--no-install-recommends"];
        install.extend(plan.apt.iter().copied());
        apt_get(sudo, &install)?;
    }
    let after = detect(&needs);
    if !after.missing.is_empty() {
        if access == AptAccess::NoApt {
            bail!(without_apt_message(&after, purpose));
        }
        bail!(
            "still missing:\n{}",
            describe(&after, purpose, true).trim_end()
        );
    }
    say("done");
    ensure_python_packages(purpose, check_only)
}

fn ensure_python_packages(purpose: Purpose, check_only: bool) -> Result<()> {
    match purpose {
        Purpose::Demo => Ok(()),
        Purpose::Test => ensure_test_python(check_only),
    }
}

fn apt_get(sudo: bool, args: &[&str]) -> Result<()> {
    let mut cmd = if sudo {
        let mut c = Command::new("sudo");
        c.args(["-n", "env", "DEBIAN_FRONTEND=noninteractive", "apt-get"]);
        c
    } else {
        let mut c = Command::new("apt-get");
        c.env("DEBIAN_FRONTEND", "noninteractive");
        c
    };
    cmd.args(args);
    crate::run(&mut cmd)
}

/// The variable that names the Python the tests run (see `test_python`).
pub const TEST_PYTHON_ENV: &str = "MUSUBI_TEST_PYTHON";
/// The tests' own virtualenv, under the workspace.
const TEST_PYTHON_DIR: &str = "target/test-python";
/// What the tests' Python holds, pinned: the third-party iCalendar reader the calendar feed
/// test (crates/server/tests/it/sns/calendar_feed.rs) checks Musubi's feed with, and the
/// third-party web push pieces the push test's local push service
/// (crates/server/tests/it/sns/push.rs) decrypts (aes128gcm) and checks VAPID tokens with.
pub const TEST_PYTHON_PACKAGES: [(&str, &str); 4] = [
    ("icalendar", "7.3.2"),
    ("recurring-ical-events", "3.8.2"),
    ("http_ece", "1.2.1"),
    ("py-vapid", "1.9.6"),
];

/// The tests' virtualenv's interpreter (whether it exists or not).
fn test_python_in_target() -> PathBuf {
    crate::root().join(TEST_PYTHON_DIR).join("bin/python")
}

/// The Python the tests run: `MUSUBI_TEST_PYTHON` if set, else the tests' virtualenv's.
pub fn test_python() -> PathBuf {
    std::env::var_os(TEST_PYTHON_ENV)
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .unwrap_or_else(test_python_in_target)
}

/// `python -c` text that succeeds when the packages are installed at exactly `packages`'
/// versions.
fn versions_check(packages: &[(&str, &str)]) -> String {
    let wanted: Vec<String> = packages
        .iter()
        .map(|(name, version)| format!("({name:?}, {version:?})"))
        .collect();
    format!(
        "import sys, importlib.metadata as m\n\
         for name, version in [{}]:\n\
         \x20   if m.version(name) != version: sys.exit(1)",
        wanted.join(", ")
    )
}

/// Whether `python` runs and holds the pinned packages.
fn test_python_ready(python: &Path) -> bool {
    python.is_file()
        && quiet(Command::new(python).args(["-c", &versions_check(&TEST_PYTHON_PACKAGES)]))
            .is_some()
}

fn pinned() -> Vec<String> {
    TEST_PYTHON_PACKAGES
        .iter()
        .map(|(name, version)| format!("{name}=={version}"))
        .collect()
}

/// Makes the tests' virtualenv with the pinned packages unless it is ready (or checks the
/// user's own Python, named by `MUSUBI_TEST_PYTHON`, without installing into it).
pub fn ensure_test_python(check_only: bool) -> Result<()> {
    let python = test_python();
    if test_python_ready(&python) {
        return Ok(());
    }
    if is_set(TEST_PYTHON_ENV) {
        bail!(
            "{TEST_PYTHON_ENV}={} does not run, or lacks {}: install them into it (`{} -m pip \
             install {}`), or unset {TEST_PYTHON_ENV} to let `cargo xtask setup test` make a \
             Python of its own in {TEST_PYTHON_DIR}",
            python.display(),
            pinned().join(" and "),
            python.display(),
            pinned().join(" "),
        );
    }
    let dir = crate::root().join(TEST_PYTHON_DIR);
    if check_only {
        say(&format!(
            "would make the tests' Python: python3 -m venv {} and pip install {}",
            dir.display(),
            pinned().join(" ")
        ));
        return Ok(());
    }
    say(&format!(
        "installing the tests' Python: a virtualenv in {} with {} (a second run will find it)",
        dir.display(),
        pinned().join(" ")
    ));
    // --clear: a half-made or outdated one is made anew.
    crate::run(
        Command::new("python3")
            .args(["-m", "venv", "--clear"])
            .arg(&dir),
    )
    .context("cannot make the tests' virtualenv (Debian: apt-get install python3-venv)")?;
    crate::run(
        Command::new(&python)
            .args([
                "-m",
                "pip",
                "install",
                "--quiet",
                "--disable-pip-version-check",
                "--no-input",
            ])
            .args(pinned()),
    )
    .context("pip could not install the tests' Python packages (PyPI must be reachable)")?;
    if !test_python_ready(&python) {
        bail!(
            "{} still lacks {} after installing them",
            python.display(),
            pinned().join(" and ")
        );
    }
    Ok(())
}

/// Whether `npm ci` must run in `dir`: no packages yet, or the lock file changed since
/// (npm ci leaves its own copy, `node_modules/.package-lock.json`, at install time).
pub fn npm_packages_stale(dir: &Path) -> bool {
    let modified = |p: &Path| std::fs::metadata(p).and_then(|m| m.modified()).ok();
    let installed = modified(&dir.join("node_modules/.package-lock.json"));
    let wanted = [dir.join("package-lock.json"), dir.join("package.json")]
        .iter()
        .filter_map(|p| modified(p))
        .max();
    match (installed, wanted) {
        (None, _) => true,
        (Some(i), Some(w)) => w > i,
        (Some(_), None) => false,
    }
}

/// The browser tests' JavaScript packages (playwright-core), pinned by package-lock.json.
pub fn ensure_npm_packages(dir: &Path, check_only: bool) -> Result<()> {
    if !npm_packages_stale(dir) {
        return Ok(());
    }
    if check_only {
        say(&format!("would run `npm ci` in {}", dir.display()));
        return Ok(());
    }
    say("installing the browser tests' JavaScript packages (npm ci)");
    crate::run(
        Command::new("npm")
            .current_dir(dir)
            .args(["ci", "--no-audit", "--no-fund"]),
    )
    .context("npm ci failed")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn missing(needs: &[Need]) -> Detection {
        Detection {
            missing: needs.iter().map(|n| (*n, None)).collect(),
            python: None,
        }
    }

    fn python(executable: &str, pip: bool) -> Option<PythonProbe> {
        Some(PythonProbe {
            executable: executable.into(),
            pip_may_install: pip,
        })
    }

    #[test]
    fn demo_needs_only_postgres_and_not_with_a_database_url() {
        assert_eq!(needs(Purpose::Demo, |_| false), [Need::PostgresServer]);
        assert!(needs(Purpose::Demo, |v| v == "DATABASE_URL").is_empty());
        // The tests' variable says nothing about the demo.
        assert_eq!(
            needs(Purpose::Demo, |v| v == "MUSUBI_TEST_DATABASE_URL"),
            [Need::PostgresServer]
        );
    }

    #[test]
    fn tests_skip_the_servers_the_environment_names() {
        assert_eq!(needs(Purpose::Test, |_| false).len(), TABLE.len());
        let own = [
            "MUSUBI_TEST_DATABASE_URL",
            "MUSUBI_TEST_REDIS_URL",
            "MUSUBI_TEST_SMTP_URL",
            "MUSUBI_TEST_PYTHON",
        ];
        assert_eq!(
            needs(Purpose::Test, |v| own.contains(&v)),
            [
                Need::Node,
                Need::Npm,
                Need::Chromium,
                Need::Pdftotext,
                Need::PopplerData,
                Need::HeifConvert
            ]
        );
    }

    #[test]
    fn a_fresh_debian_gets_every_package_from_apt() {
        let fresh = missing(&needs(Purpose::Test, |_| false));
        let plan = plan(&fresh, true);
        assert_eq!(
            plan.apt,
            [
                "postgresql",
                "redis-server",
                "python3",
                "python3-aiosmtpd",
                "python3-venv",
                "nodejs",
                "npm",
                "chromium",
                "poppler-utils",
                "poppler-data",
                "libheif-examples"
            ]
        );
        assert!(!plan.pip_aiosmtpd);
    }

    #[test]
    fn pdf_text_and_heic_are_needed_by_the_tests_only_each_package_on_its_own() {
        let demo = needs(Purpose::Demo, |_| false);
        let test = needs(Purpose::Test, |_| false);
        for need in [Need::Pdftotext, Need::PopplerData, Need::HeifConvert] {
            assert!(!demo.contains(&need), "{need:?}");
            assert!(test.contains(&need), "{need:?}");
        }
        // Separate arguments to apt-get: one package per row.
        let d = missing(&[Need::Pdftotext, Need::PopplerData, Need::HeifConvert]);
        let plan = plan(&d, true);
        assert_eq!(
            plan.apt,
            ["poppler-utils", "poppler-data", "libheif-examples"]
        );
        assert!(
            apt_command(&plan.apt, false).ends_with("poppler-utils poppler-data libheif-examples")
        );
        let text = without_apt_message(&d, Purpose::Test);
        assert!(text.contains("brew install poppler"), "{text}");
        assert!(text.contains("MUSUBI_HEIF_CONVERT"), "{text}");
    }

    #[test]
    fn python_is_needed_while_the_smtp_server_or_the_feed_test_runs_in_it() {
        let python = |vars: &[&str]| {
            let needs = needs(Purpose::Test, |v| vars.contains(&v));
            (
                needs.contains(&Need::Python),
                needs.contains(&Need::Aiosmtpd),
                needs.contains(&Need::PythonVenv),
            )
        };
        assert_eq!(python(&[]), (true, true, true));
        assert_eq!(python(&["MUSUBI_TEST_SMTP_URL"]), (true, false, true));
        assert_eq!(python(&[TEST_PYTHON_ENV]), (true, true, false));
        assert_eq!(
            python(&["MUSUBI_TEST_SMTP_URL", TEST_PYTHON_ENV]),
            (false, false, false)
        );
        assert!(!needs(Purpose::Demo, |_| false).contains(&Need::Python));
        let text = without_apt_message(&missing(&[Need::PythonVenv]), Purpose::Test);
        assert!(text.contains("or set MUSUBI_TEST_PYTHON"), "{text}");
    }

    #[test]
    fn the_tests_python_is_checked_for_the_pinned_versions() {
        let script = versions_check(&[("icalendar", "7.3.2"), ("recurring-ical-events", "3.8.2")]);
        assert_eq!(
            script,
            "import sys, importlib.metadata as m\n\
             for name, version in [(\"icalendar\", \"7.3.2\"), (\"recurring-ical-events\", \"3.8.2\")]:\n    \
             if m.version(name) != version: sys.exit(1)"
        );
        assert!(pinned().iter().all(|p| p.contains("==")));
        // Never the system's Python by default: the virtualenv under the workspace.
        assert!(test_python_in_target().ends_with("target/test-python/bin/python"));
    }

    #[test]
    fn nothing_missing_installs_nothing() {
        assert_eq!(plan(&Detection::default(), true), Plan::default());
    }

    #[test]
    fn aiosmtpd_goes_into_the_users_own_python_with_pip_and_into_debians_with_apt() {
        let mut d = missing(&[Need::Aiosmtpd]);
        d.python = python("/home/u/.pyenv/versions/3.12.1/bin/python3", true);
        assert_eq!(
            plan(&d, true),
            Plan {
                apt: vec![],
                pip_aiosmtpd: true
            }
        );
        // Debian's Python refuses pip (PEP 668): its package instead.
        d.python = python("/usr/bin/python3", false);
        assert_eq!(plan(&d, true).apt, ["python3-aiosmtpd"]);
        // A system Python that allows pip, on a system without apt (macOS): pip.
        d.python = python("/usr/bin/python3", true);
        assert!(plan(&d, false).pip_aiosmtpd);
        // Neither pip nor apt: nothing to run, the message says what to do.
        d.python = python("/usr/bin/python3", false);
        assert_eq!(plan(&d, false), Plan::default());
    }

    #[test]
    fn an_old_node_is_reported_not_reinstalled() {
        let d = Detection {
            missing: vec![(Need::Node, Some("Node.js v18.19.0".into()))],
            python: None,
        };
        assert!(plan(&d, true).apt.is_empty());
        let text = without_apt_message(&d, Purpose::Test);
        assert!(
            text.contains("Node.js 20 or newer (found Node.js v18.19.0)"),
            "{text}"
        );
    }

    #[test]
    fn without_apt_the_message_names_packages_and_own_servers() {
        let d = missing(&[Need::PostgresServer, Need::Chromium]);
        let test = without_apt_message(&d, Purpose::Test);
        assert!(test.contains("cargo xtask test"), "{test}");
        assert!(test.contains("brew install postgresql@16"), "{test}");
        assert!(test.contains("set MUSUBI_TEST_DATABASE_URL"), "{test}");
        assert!(test.contains("CHROMIUM set to its executable"), "{test}");
        let demo = without_apt_message(&missing(&[Need::PostgresServer]), Purpose::Demo);
        assert!(demo.contains("`cargo xtask demo`"), "{demo}");
        assert!(demo.contains("set DATABASE_URL"), "{demo}");
    }

    #[test]
    fn without_root_the_message_is_the_one_command_to_run() {
        let d = missing(&[Need::Redis, Need::Chromium]);
        let text = needs_root_message(&d, Purpose::Test, &plan(&d, true));
        assert!(
            text.contains("sudo apt-get install -y --no-install-recommends redis-server chromium"),
            "{text}"
        );
    }

    #[test]
    fn node_versions_parse() {
        assert_eq!(node_major("v20.19.2\n"), Some(20));
        assert_eq!(node_major("v18.19.0"), Some(18));
        assert_eq!(node_major("node"), None);
    }

    #[test]
    fn npm_packages_are_stale_until_installed_and_after_the_lock_changes() {
        let dir = std::env::temp_dir().join(format!("xtask-npm-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(dir.join("node_modules")).unwrap_or_default();
        std::fs::write(dir.join("package-lock.json"), "{}").unwrap_or_default();
        assert!(npm_packages_stale(&dir));
        std::thread::sleep(std::time::Duration::from_millis(20));
        std::fs::write(dir.join("node_modules/.package-lock.json"), "{}").unwrap_or_default();
        assert!(!npm_packages_stale(&dir));
        std::thread::sleep(std::time::Duration::from_millis(20));
        std::fs::write(dir.join("package-lock.json"), "{ }").unwrap_or_default();
        assert!(npm_packages_stale(&dir));
        let _ = std::fs::remove_dir_all(&dir);
    }
}
