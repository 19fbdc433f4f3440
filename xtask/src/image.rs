//! `cargo xtask image`: Musubi's OCI image, built from `deploy/Containerfile` with buildah,
//! without a Docker engine and without pulling from a registry, written as an OCI archive
//! under `target/image/`, then checked. Needs root (mmdebstrap, buildah's storage, chroot).
//!
//! 1. The tools: `mmdebstrap`, `buildah` and Debian's archive keyring, installed with apt-get
//!    (after `apt-get update`) when missing.
//! 2. The binary: `cargo build [--release] -p musubi --bin musubi` (`--no-build`: the one in
//!    `target/<profile>/` as it is).
//! 3. The build stage's base: a Debian bookworm root from deb.debian.org made by mmdebstrap
//!    (variant minbase), imported into a private buildah storage (`target/image/storage`,
//!    driver vfs) as `localhost/musubi-debian:bookworm`. Kept for the next runs; `--fresh`
//!    makes it (and every cached layer) anew.
//! 4. `buildah bud --isolation chroot` of deploy/Containerfile on that base, in a context
//!    holding only `deploy/image/` and the binary. The build stage installs the packages of
//!    `deploy/image/packages.txt` and runs `deploy/image/make-root.sh`, as a Docker build of
//!    the same file does. Layers are cached; the packages are fetched anew once a day.
//! 5. `buildah push` to `oci-archive:target/image/musubi-<version>.oci.tar`.
//! 6. The check (alone with `--check`): the archive's layers unpacked into
//!    `target/image/check/root`, then, with `chroot` as the image's user: `musubi --version`,
//!    no shell, compiler, package manager or interpreter, no set-user-ID file, every program's
//!    libraries present, `pdftotext` reading a Japanese PDF with a font that is not embedded,
//!    `heif-enc`/`heif-convert` making a JPEG from a HEIC, and `musubi file-store` answering
//!    HTTP and stopping on SIGTERM. See docs/deploy.md.

use anyhow::{bail, Context, Result};
use sqlx::types::JsonValue;
use std::io::{BufRead, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

/// The Debian release of the image (and of deploy/Containerfile's `DEBIAN`).
const SUITE: &str = "bookworm";
/// Where mmdebstrap fetches the build stage's base from: the sources of Debian's own images.
const SOURCES: [&str; 3] = [
    "deb http://deb.debian.org/debian bookworm main",
    "deb http://deb.debian.org/debian bookworm-updates main",
    "deb http://deb.debian.org/debian-security bookworm-security main",
];
/// The build stage's base in the private storage.
const BASE_IMAGE: &str = "localhost/musubi-debian:bookworm";
/// The build stage itself, tagged so that pruning keeps its cached layers.
const ROOT_STAGE: &str = "localhost/musubi-image-root";
const IMAGE: &str = "localhost/musubi";
/// What the image's configuration must say (deploy/Containerfile).
const USER: &str = "10001:10001";
const ENTRYPOINT: [&str; 1] = ["/usr/local/bin/musubi"];
const CMD: [&str; 1] = ["serve"];
const PORT: &str = "8080/tcp";
/// Debian packages of the tools this task runs, by the program they bring.
const TOOLS: [(&str, &str); 2] = [("mmdebstrap", "mmdebstrap"), ("buildah", "buildah")];
const KEYRING: &str = "/usr/share/keyrings/debian-archive-keyring.gpg";

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Profile {
    Release,
    Debug,
}

#[derive(Debug, PartialEq, Eq)]
struct Options {
    profile: Profile,
    out: Option<PathBuf>,
    check_only: bool,
    fresh: bool,
    no_build: bool,
}

fn parse(args: &[String]) -> Result<Options> {
    let mut opts = Options {
        profile: Profile::Release,
        out: None,
        check_only: false,
        fresh: false,
        no_build: false,
    };
    let mut it = args.iter();
    while let Some(a) = it.next() {
        match a.as_str() {
            "--profile" => {
                opts.profile = match it.next().map(String::as_str) {
                    Some("release") => Profile::Release,
                    Some("debug") => Profile::Debug,
                    other => bail!(
                        "--profile takes release or debug, not {}",
                        other.unwrap_or("nothing")
                    ),
                }
            }
            "--out" => {
                let path = it.next().context("--out takes a path")?;
                opts.out = Some(PathBuf::from(path));
            }
            "--check" => opts.check_only = true,
            "--fresh" => opts.fresh = true,
            "--no-build" => opts.no_build = true,
            other => bail!("unknown argument {other} (see `cargo xtask`)"),
        }
    }
    Ok(opts)
}

/// Where a failed check leaves the unpacked image.
fn kept(dir: &Path) -> String {
    format!(
        "checking the image failed (what was unpacked stays in {})",
        dir.join("check").display()
    )
}

fn say(text: &str) {
    eprintln!("xtask: image: {text}");
}

/// `cargo xtask image [--profile release|debug] [--out PATH] [--check] [--fresh] [--no-build]`.
pub fn image(args: &[String]) -> Result<()> {
    let opts = parse(args)?;
    if !nix::unistd::Uid::effective().is_root() {
        bail!(
            "`cargo xtask image` needs root (mmdebstrap, buildah's storage and the check's chroot \
             do): run `sudo -E env \"PATH=$PATH\" cargo xtask image`"
        );
    }
    let dir = crate::root().join("target/image");
    std::fs::create_dir_all(&dir)?;
    if opts.check_only {
        let archive = match opts.out {
            Some(p) => p,
            None => newest_archive(&dir)?,
        };
        let report = check(&archive, &dir).with_context(|| kept(&dir))?;
        report.print(&archive, None);
        return Ok(());
    }

    let started = Instant::now();
    ensure_tools()?;
    let binary = build_binary(opts.profile, !opts.no_build)?;
    let version = binary_version(&binary)?;
    let tag = match opts.profile {
        Profile::Release => version.clone(),
        Profile::Debug => format!("{version}-debug"),
    };
    let out = match opts.out {
        // Absolute: the path goes into a transport reference (oci-archive:PATH:NAME).
        Some(p) if p.is_relative() => std::env::current_dir()?.join(p),
        Some(p) => p,
        None => dir.join(format!("musubi-{tag}.oci.tar")),
    };
    let buildah = Buildah::new(&dir)?;
    if opts.fresh {
        buildah.reset()?;
    }
    // Working containers a stopped run left behind.
    let _ = buildah.quiet(&["rm", "--all"]);
    let cold = !buildah.has_image(BASE_IMAGE);
    if cold {
        make_base(&buildah, &dir)?;
    } else {
        say(&format!(
            "reusing the build stage's base {BASE_IMAGE} (--fresh makes it anew)"
        ));
    }
    let binary_in_context = match opts.profile {
        Profile::Release => "target/release/musubi",
        Profile::Debug => "target/debug/musubi",
    };
    let context = stage_context(&dir, &binary, binary_in_context)?;
    let refresh = today()?;
    let containerfile = crate::root().join("deploy/Containerfile");
    let bud = |target: Option<&str>, name: &str| -> Result<()> {
        let mut cmd = buildah.cmd();
        cmd.args(["bud", "--isolation", "chroot", "--pull=never", "--layers"])
            .args(["--build-arg", &format!("DEBIAN={BASE_IMAGE}")])
            .args(["--build-arg", &format!("REFRESH={refresh}")])
            .args(["--build-arg", &format!("VERSION={version}")])
            .args(["--build-arg", &format!("BINARY={binary_in_context}")]);
        if let Some(t) = target {
            cmd.args(["--target", t]);
        }
        cmd.arg("-f")
            .arg(&containerfile)
            .args(["-t", name])
            .arg(&context);
        crate::run(&mut cmd)
    };
    // The build stage first, under a name of its own: its cached layers then survive pruning.
    let root_stage = format!("{ROOT_STAGE}:{refresh}");
    bud(Some("root"), &root_stage)?;
    let image = format!("{IMAGE}:{tag}");
    bud(None, &image)?;
    if out.exists() {
        std::fs::remove_file(&out).with_context(|| format!("cannot replace {}", out.display()))?;
    }
    if let Some(parent) = out.parent() {
        std::fs::create_dir_all(parent)?;
    }
    let archive_ref = format!("oci-archive:{}:musubi:{tag}", out.display());
    crate::run(
        buildah
            .cmd()
            .args(["push", "--quiet", &image, &archive_ref]),
    )?;
    buildah.prune(&root_stage);
    let _ = std::fs::remove_dir_all(&context);
    let built = started.elapsed();

    let checking = Instant::now();
    let report = check(&out, &dir).with_context(|| kept(&dir))?;
    report.print(
        &out,
        Some((
            built,
            checking.elapsed(),
            if cold { "cold" } else { "warm" },
        )),
    );
    Ok(())
}

/// mmdebstrap and buildah, installed with apt-get when missing.
fn ensure_tools() -> Result<()> {
    let mut missing: Vec<&str> = TOOLS
        .iter()
        .filter(|(program, _)| crate::setup::find_on_path(program).is_none())
        .map(|(_, package)| *package)
        .collect();
    if !Path::new(KEYRING).is_file() {
        missing.push("debian-archive-keyring");
    }
    if missing.is_empty() {
        return Ok(());
    }
    if crate::setup::find_on_path("apt-get").is_none() {
        bail!(
            "missing {}: install them (they are Debian's; other systems may package them too)",
            missing.join(", ")
        );
    }
    say(&format!(
        "installing the Debian packages {} (a second run will find them)",
        missing.join(" ")
    ));
    let apt = || {
        let mut c = Command::new("apt-get");
        c.env("DEBIAN_FRONTEND", "noninteractive");
        c
    };
    crate::run(apt().args(["update", "-qq"]))?;
    crate::run(
        apt()
            .args(["install", "-y", "-qq", "--no-install-recommends"])
            .args(&missing),
    )?;
    for (program, package) in TOOLS {
        if crate::setup::find_on_path(program).is_none() {
            bail!("{program} is still missing after installing {package}");
        }
    }
    Ok(())
}

/// The binary of `profile`, built first unless `build` is false (`--no-build`).
fn build_binary(profile: Profile, build: bool) -> Result<PathBuf> {
    if build {
        let mut cmd = crate::cargo();
        cmd.current_dir(crate::root())
            .args(["build", "--package", "musubi", "--bin", "musubi"]);
        if profile == Profile::Release {
            cmd.arg("--release");
        }
        crate::run(&mut cmd)?;
    }
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| crate::root().join("target"));
    let binary = target.join(match profile {
        Profile::Release => "release/musubi",
        Profile::Debug => "debug/musubi",
    });
    if !binary.is_file() {
        bail!("cargo built no {}", binary.display());
    }
    Ok(binary)
}

/// `musubi 0.1.0` → `0.1.0`.
fn parse_version(line: &str) -> Option<String> {
    let mut words = line.split_whitespace();
    (words.next()? == "musubi")
        .then(|| words.next().map(str::to_owned))
        .flatten()
        .filter(|v| {
            v.chars()
                .all(|c| c.is_ascii_alphanumeric() || ".-+".contains(c))
        })
}

fn binary_version(binary: &Path) -> Result<String> {
    let out = Command::new(binary)
        .arg("--version")
        .output()
        .with_context(|| format!("cannot run {}", binary.display()))?;
    let text = String::from_utf8_lossy(&out.stdout);
    parse_version(&text).with_context(|| {
        format!(
            "{} --version printed {text:?}, not `musubi VERSION`",
            binary.display()
        )
    })
}

/// Today's date (UTC), which fetches the packages anew once a day.
fn today() -> Result<String> {
    let out = Command::new("date").args(["-u", "+%Y-%m-%d"]).output()?;
    let day = String::from_utf8_lossy(&out.stdout).trim().to_owned();
    if !out.status.success() || day.is_empty() {
        bail!("`date -u` failed");
    }
    Ok(day)
}

/// buildah with the private storage under `target/image`.
struct Buildah {
    storage: PathBuf,
    runroot: PathBuf,
    tmp: PathBuf,
}

impl Buildah {
    fn new(dir: &Path) -> Result<Self> {
        let b = Self {
            storage: dir.join("storage"),
            runroot: dir.join("run"),
            tmp: dir.join("tmp"),
        };
        std::fs::create_dir_all(&b.tmp)?;
        Ok(b)
    }

    fn cmd(&self) -> Command {
        let mut c = Command::new("buildah");
        c.arg("--storage-driver")
            .arg("vfs")
            .arg("--root")
            .arg(&self.storage)
            .arg("--runroot")
            .arg(&self.runroot)
            .env("BUILDAH_ISOLATION", "chroot")
            .env("TMPDIR", &self.tmp);
        c
    }

    fn quiet(&self, args: &[&str]) -> Option<Output> {
        self.cmd()
            .args(args)
            .stdin(Stdio::null())
            .stderr(Stdio::null())
            .output()
            .ok()
            .filter(|o| o.status.success())
    }

    fn has_image(&self, name: &str) -> bool {
        self.quiet(&["inspect", "--type", "image", name]).is_some()
    }

    /// Forgets every image and cached layer.
    fn reset(&self) -> Result<()> {
        say("--fresh: removing the private storage");
        let _ = self.quiet(&["rm", "--all"]);
        let _ = self.quiet(&["rmi", "--all", "--force"]);
        for d in [&self.storage, &self.runroot] {
            let mounts = std::fs::read_to_string("/proc/mounts").unwrap_or_default();
            let prefix = d.display().to_string();
            if mounts
                .lines()
                .filter_map(|l| l.split_whitespace().nth(1))
                .any(|m| m.starts_with(&prefix))
            {
                bail!("something is mounted under {prefix}: unmount it first");
            }
            if d.exists() {
                std::fs::remove_dir_all(d)
                    .with_context(|| format!("cannot remove {}", d.display()))?;
            }
        }
        Ok(())
    }

    /// Drops the build stages of other days and the layers no image needs any more.
    fn prune(&self, keep_root_stage: &str) {
        if let Some(out) = self.quiet(&["images", "--format", "{{.Name}}:{{.Tag}}"]) {
            for name in String::from_utf8_lossy(&out.stdout).lines() {
                if name.starts_with(ROOT_STAGE) && name != keep_root_stage {
                    let _ = self.quiet(&["rmi", name]);
                }
            }
        }
        let _ = self.quiet(&["rmi", "--prune"]);
    }
}

/// The build stage's base: Debian (minbase) from deb.debian.org, into the private storage.
fn make_base(buildah: &Buildah, dir: &Path) -> Result<()> {
    let tar = dir.join(format!("debian-{SUITE}.tar"));
    say(&format!(
        "making the build stage's base: Debian {SUITE} (minbase) with mmdebstrap"
    ));
    crate::run(
        Command::new("mmdebstrap")
            .args(["--variant=minbase", "--format=tar", "--mode=root", SUITE])
            .arg(&tar)
            .args(SOURCES),
    )?;
    let out = buildah
        .cmd()
        .args(["from", "scratch"])
        .output()
        .context("cannot run buildah")?;
    if !out.status.success() {
        bail!(
            "buildah from scratch failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let container = String::from_utf8_lossy(&out.stdout).trim().to_owned();
    crate::run(buildah.cmd().args(["add", &container]).arg(&tar).arg("/"))?;
    crate::run(
        buildah
            .cmd()
            .args(["config", "--cmd", "/bin/sh", &container]),
    )?;
    crate::run(
        buildah
            .cmd()
            .args(["commit", "--quiet", "--rm", &container, BASE_IMAGE]),
    )?;
    std::fs::remove_file(&tar)?;
    Ok(())
}

/// The build context: `deploy/image/` and the binary at `binary_in_context`, laid out as in
/// the repository (which `deploy/Containerfile.dockerignore`, applied by buildah too, expects),
/// nothing else.
fn stage_context(dir: &Path, binary: &Path, binary_in_context: &str) -> Result<PathBuf> {
    let context = dir.join("context");
    if context.exists() {
        std::fs::remove_dir_all(&context)?;
    }
    let files = context.join("deploy/image");
    std::fs::create_dir_all(&files)?;
    let source = crate::root().join("deploy/image");
    for entry in
        std::fs::read_dir(&source).with_context(|| format!("cannot read {}", source.display()))?
    {
        let entry = entry?;
        if entry.file_type()?.is_file() {
            std::fs::copy(entry.path(), files.join(entry.file_name()))?;
        }
    }
    let staged = context.join(binary_in_context);
    if let Some(parent) = staged.parent() {
        std::fs::create_dir_all(parent)?;
    }
    std::fs::copy(binary, &staged).with_context(|| format!("cannot copy {}", binary.display()))?;
    Ok(context)
}

fn newest_archive(dir: &Path) -> Result<PathBuf> {
    let mut found: Vec<(std::time::SystemTime, PathBuf)> = Vec::new();
    for entry in std::fs::read_dir(dir)? {
        let path = entry?.path();
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        if name.starts_with("musubi-") && name.ends_with(".oci.tar") {
            found.push((std::fs::metadata(&path)?.modified()?, path));
        }
    }
    found.sort();
    found
        .pop()
        .map(|(_, p)| p)
        .with_context(|| format!("no musubi-*.oci.tar in {}: build one first", dir.display()))
}

// ---------------------------------------------------------------------------------------------
// The check.

struct Report {
    version_line: String,
    archive_bytes: u64,
    root_bytes: u64,
    packages: usize,
    layers: usize,
}

impl Report {
    fn print(&self, archive: &Path, times: Option<(Duration, Duration, &str)>) {
        let mib = |b: u64| b as f64 / (1024.0 * 1024.0);
        say(&format!("{} passed the check:", archive.display()));
        eprintln!(
            "  archive           {:.1} MiB ({} layers)\n  unpacked root     {:.1} MiB, {} Debian packages\n  musubi --version  {}",
            mib(self.archive_bytes),
            self.layers,
            mib(self.root_bytes),
            self.packages,
            self.version_line
        );
        if let Some((built, checked, kind)) = times {
            eprintln!(
                "  time              built in {:.0} s ({kind}), checked in {:.0} s",
                built.as_secs_f64(),
                checked.as_secs_f64()
            );
        }
        eprintln!("  load it with      podman load -i {}", archive.display());
    }
}

fn read_json(path: &Path) -> Result<JsonValue> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    text.parse::<JsonValue>()
        .with_context(|| format!("{} is not JSON", path.display()))
}

/// The file of a blob of an OCI layout, from its digest (`sha256:<hex>`).
fn blob(layout: &Path, digest: Option<&str>) -> Result<PathBuf> {
    let digest = digest.context("a descriptor without a digest")?;
    let hex = digest
        .strip_prefix("sha256:")
        .filter(|h| h.len() == 64 && h.bytes().all(|b| b.is_ascii_hexdigit()))
        .with_context(|| format!("unexpected digest {digest:?}"))?;
    Ok(layout.join("blobs/sha256").join(hex))
}

fn strings(value: &JsonValue) -> Vec<String> {
    value
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|v| v.as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default()
}

/// Unpacks the archive into `dir/check` and checks the image (see the module's comment).
fn check(archive: &Path, dir: &Path) -> Result<Report> {
    let work = dir.join("check");
    if work.exists() {
        std::fs::remove_dir_all(&work)
            .with_context(|| format!("cannot empty {}", work.display()))?;
    }
    let layout = work.join("oci");
    let root = work.join("root");
    std::fs::create_dir_all(&layout)?;
    std::fs::create_dir_all(&root)?;
    say(&format!(
        "checking {}: unpacking it into {}",
        archive.display(),
        root.display()
    ));
    crate::run(
        Command::new("tar")
            .arg("-xf")
            .arg(archive)
            .arg("-C")
            .arg(&layout),
    )?;
    let index = read_json(&layout.join("index.json"))?;
    let manifest = read_json(&blob(&layout, index["manifests"][0]["digest"].as_str())?)?;
    let config = read_json(&blob(&layout, manifest["config"]["digest"].as_str())?)?;
    let cfg = &config["config"];

    // The configuration the Containerfile sets.
    let mut problems = Vec::new();
    if cfg["User"].as_str() != Some(USER) {
        problems.push(format!("User is {}, not {USER}", cfg["User"]));
    }
    if strings(&cfg["Entrypoint"]) != ENTRYPOINT {
        problems.push(format!("Entrypoint is {}", cfg["Entrypoint"]));
    }
    if strings(&cfg["Cmd"]) != CMD {
        problems.push(format!("Cmd is {}", cfg["Cmd"]));
    }
    if cfg["ExposedPorts"].get(PORT).is_none() {
        problems.push(format!("{PORT} is not exposed"));
    }
    let version = cfg["Labels"]["org.opencontainers.image.version"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    let env = strings(&cfg["Env"]);

    // The layers, in order. Whiteouts (files deleted by a later layer) would need an overlay's
    // rules; an image built FROM scratch has none.
    let layers = manifest["layers"]
        .as_array()
        .context("the manifest lists no layers")?;
    for layer in layers {
        let path = blob(&layout, layer["digest"].as_str())?;
        let list = Command::new("tar").arg("-tf").arg(&path).output()?;
        if !list.status.success() {
            bail!("cannot list the layer {}", path.display());
        }
        if let Some(w) = String::from_utf8_lossy(&list.stdout)
            .lines()
            .find(|l| l.split('/').any(|c| c.starts_with(".wh.")))
        {
            bail!(
                "the layer {} deletes files ({w}): not expected in this image",
                path.display()
            );
        }
        crate::run(
            Command::new("tar")
                .args(["--numeric-owner", "-xpf"])
                .arg(&path)
                .arg("-C")
                .arg(&root),
        )?;
    }

    // What must not be there.
    let mut found = Vec::new();
    walk(&root, &root, &mut |rel, meta| {
        let name = rel.rsplit('/').next().unwrap_or(rel);
        if !meta.is_dir() {
            if let Some(why) = forbidden(rel, name) {
                found.push(format!("/{rel} ({why})"));
            }
        }
        if meta.is_file()
            && std::os::unix::fs::PermissionsExt::mode(&meta.permissions()) & 0o6000 != 0
        {
            found.push(format!("/{rel} (set-user-ID or set-group-ID)"));
        }
    })?;
    problems.extend(found);
    let passwd = std::fs::read_to_string(root.join("etc/passwd")).unwrap_or_default();
    if !passwd
        .lines()
        .any(|l| l.starts_with("musubi:x:10001:10001:"))
    {
        problems.push("/etc/passwd has no user musubi (10001:10001)".into());
    }
    if !problems.is_empty() {
        bail!(
            "the image {} fails the check:\n  {}",
            archive.display(),
            problems.join("\n  ")
        );
    }

    // What must work, as the image's user.
    let chroot = Chroot { root: &root, env };
    let out = chroot.run(&["/usr/local/bin/musubi", "--version"])?;
    let version_line = String::from_utf8_lossy(&out.stdout).trim().to_owned();
    if parse_version(&version_line).as_deref() != Some(version.as_str()) || version.is_empty() {
        bail!("musubi --version in the image printed {version_line:?}, not `musubi {version}`");
    }
    say(&format!("musubi --version in the image: {version_line}"));
    chroot.libraries()?;
    chroot.japanese_pdf()?;
    chroot.heic()?;
    chroot.file_store()?;

    let packages = std::fs::read_to_string(root.join("var/lib/dpkg/status"))
        .unwrap_or_default()
        .lines()
        .filter(|l| l.starts_with("Package: "))
        .count();
    let mut root_bytes = 0;
    walk(&root, &root, &mut |_, meta| {
        if meta.is_file() {
            root_bytes += meta.len();
        }
    })?;
    let report = Report {
        version_line,
        archive_bytes: std::fs::metadata(archive)?.len(),
        root_bytes,
        packages,
        layers: layers.len(),
    };
    std::fs::remove_dir_all(&work)?;
    Ok(report)
}

/// Calls `f` with the path (relative to `base`, without a leading `/`) and the metadata (not
/// followed) of everything under `dir`.
fn walk(base: &Path, dir: &Path, f: &mut dyn FnMut(&str, &std::fs::Metadata)) -> Result<()> {
    for entry in std::fs::read_dir(dir).with_context(|| format!("cannot read {}", dir.display()))? {
        let entry = entry?;
        let path = entry.path();
        let meta = std::fs::symlink_metadata(&path)?;
        let rel = path
            .strip_prefix(base)
            .map(|p| p.to_string_lossy().into_owned())
            .unwrap_or_default();
        f(&rel, &meta);
        if meta.is_dir() {
            walk(base, &path, f)?;
        }
    }
    Ok(())
}

/// Why a file (not a directory) at `rel` named `name` must not be in the image, if it must not.
fn forbidden(rel: &str, name: &str) -> Option<&'static str> {
    const SHELLS: [&str; 12] = [
        "sh", "bash", "dash", "rbash", "ash", "zsh", "ksh", "mksh", "csh", "tcsh", "fish",
        "busybox",
    ];
    const COMPILERS: [&str; 13] = [
        "gcc", "cc", "c++", "g++", "cpp", "clang", "rustc", "cargo", "ld", "ld.bfd", "ld.gold",
        "as", "rustup",
    ];
    const PACKAGE_MANAGERS: [&str; 6] = ["dpkg", "apt", "apt-get", "rpm", "pip", "npm"];
    const INTERPRETERS: [&str; 6] = ["perl", "python", "python3", "ruby", "node", "lua"];
    let program_dir = ["bin/", "sbin/", "usr/bin/", "usr/sbin/", "usr/local/bin/"]
        .iter()
        .any(|d| rel.strip_prefix(d).is_some_and(|n| !n.contains('/')));
    if SHELLS.contains(&name) || (program_dir && name.ends_with("sh")) {
        return Some("a shell");
    }
    if COMPILERS.contains(&name)
        || [
            "gcc-",
            "g++-",
            "clang-",
            "x86_64-linux-gnu-",
            "aarch64-linux-gnu-",
        ]
        .iter()
        .any(|p| name.starts_with(p))
    {
        return Some("a compiler or linker");
    }
    if PACKAGE_MANAGERS.contains(&name) {
        return Some("a package manager");
    }
    if INTERPRETERS.contains(&name) || name.starts_with("python3.") || name.starts_with("perl5") {
        return Some("an interpreter");
    }
    None
}

/// Runs programs inside the unpacked root with `chroot`, as the image's user, with the
/// image's environment.
struct Chroot<'a> {
    root: &'a Path,
    env: Vec<String>,
}

impl Chroot<'_> {
    fn command(&self, args: &[&str]) -> Command {
        // By its path: the image's PATH (set below) applies to finding the program too.
        let chroot = crate::setup::find_on_path("chroot")
            .unwrap_or_else(|| PathBuf::from("/usr/sbin/chroot"));
        let mut cmd = Command::new(chroot);
        cmd.arg(format!("--userspec={USER}"))
            .arg(self.root)
            .args(args)
            .env_clear()
            .stdin(Stdio::null());
        for pair in &self.env {
            if let Some((k, v)) = pair.split_once('=') {
                cmd.env(k, v);
            }
        }
        cmd
    }

    fn run(&self, args: &[&str]) -> Result<Output> {
        let out = self
            .command(args)
            .output()
            .with_context(|| format!("cannot run chroot for {args:?}"))?;
        if !out.status.success() {
            bail!(
                "{} in the image failed with {}:\n{}{}",
                args.join(" "),
                out.status,
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
        }
        Ok(out)
    }

    /// Every program's shared libraries resolve (the dynamic loader's `--list`).
    fn libraries(&self) -> Result<()> {
        let loader = match std::env::consts::ARCH {
            "x86_64" => "/lib64/ld-linux-x86-64.so.2",
            "aarch64" => "/lib/ld-linux-aarch64.so.1",
            other => {
                say(&format!("not checking libraries on {other}"));
                return Ok(());
            }
        };
        let mut programs = Vec::new();
        for d in ["usr/bin", "usr/sbin", "usr/local/bin"] {
            let Ok(entries) = std::fs::read_dir(self.root.join(d)) else {
                continue;
            };
            for entry in entries {
                let path = entry?.path();
                let mut magic = [0u8; 4];
                let elf = std::fs::File::open(&path)
                    .and_then(|mut f| f.read_exact(&mut magic))
                    .is_ok()
                    && &magic == b"\x7fELF";
                if elf {
                    if let Some(name) = path.file_name() {
                        programs.push(format!("/{d}/{}", name.to_string_lossy()));
                    }
                }
            }
        }
        programs.sort();
        let mut broken = Vec::new();
        for p in &programs {
            let out = self.run(&[loader, "--list", p])?;
            let text = String::from_utf8_lossy(&out.stdout);
            for line in text.lines().filter(|l| l.contains("not found")) {
                broken.push(format!("{p}: {}", line.trim()));
            }
        }
        if !broken.is_empty() {
            bail!("libraries missing in the image:\n  {}", broken.join("\n  "));
        }
        say(&format!(
            "the libraries of {} programs are all there",
            programs.len()
        ));
        Ok(())
    }

    /// `pdftotext` reads Japanese in a font that is not embedded (poppler-data's CMaps), as
    /// crates/media's test does.
    fn japanese_pdf(&self) -> Result<()> {
        std::fs::write(self.root.join("tmp/check-japanese.pdf"), japanese_pdf())?;
        let out = self.run(&[
            "/usr/bin/pdftotext",
            "-q",
            "-enc",
            "UTF-8",
            "/tmp/check-japanese.pdf",
            "-",
        ])?;
        let text = String::from_utf8_lossy(&out.stdout);
        if !text.contains("褥瘡") {
            bail!("pdftotext in the image read {text:?}, not 褥瘡: is poppler-data there?");
        }
        say("pdftotext in the image reads Japanese (poppler-data)");
        Ok(())
    }

    /// `heif-enc` makes a HEIC of a PNG and `heif-convert` (what Musubi runs) turns it into a
    /// JPEG.
    fn heic(&self) -> Result<()> {
        std::fs::write(self.root.join("tmp/check.png"), png(64, 64))?;
        self.run(&[
            "/usr/bin/heif-enc",
            "-q",
            "50",
            "-o",
            "/tmp/check.heic",
            "/tmp/check.png",
        ])?;
        self.run(&[
            "/usr/bin/heif-convert",
            "-q",
            "92",
            "/tmp/check.heic",
            "/tmp/check.jpg",
        ])?;
        let jpeg = std::fs::read(self.root.join("tmp/check.jpg")).unwrap_or_default();
        if !jpeg.starts_with(&[0xFF, 0xD8, 0xFF]) {
            bail!("heif-convert in the image wrote no JPEG");
        }
        say("heif-convert in the image turns HEIC into JPEG");
        Ok(())
    }

    /// `musubi file-store` starts as the image's user, answers HTTP (refusing an unsigned
    /// request) and stops cleanly on SIGTERM.
    fn file_store(&self) -> Result<()> {
        let mut child = self
            .command(&[
                "/usr/local/bin/musubi",
                "file-store",
                "--listen",
                "127.0.0.1:0",
                "--data-dir",
                "/tmp/check-store",
            ])
            .env("MUSUBI_S3_ACCESS_KEY_ID", "check")
            .env("MUSUBI_S3_SECRET_ACCESS_KEY", "check-only-not-a-secret")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .context("cannot start musubi file-store in the image")?;
        let result = (|| -> Result<()> {
            let stdout = child.stdout.take().context("no stdout")?;
            let (tx, rx) = std::sync::mpsc::channel();
            std::thread::spawn(move || {
                let mut line = String::new();
                let _ = std::io::BufReader::new(stdout).read_line(&mut line);
                let _ = tx.send(line);
            });
            let line = rx
                .recv_timeout(Duration::from_secs(30))
                .context("musubi file-store said nothing within 30 s")?;
            let address = line
                .trim()
                .rsplit_once(" at http://")
                .map(|(_, a)| a.trim_end_matches('/').to_owned())
                .with_context(|| format!("musubi file-store printed {line:?}"))?;
            let mut stream = std::net::TcpStream::connect(&address)
                .with_context(|| format!("cannot connect to the file store at {address}"))?;
            stream.set_read_timeout(Some(Duration::from_secs(10)))?;
            stream.write_all(b"GET / HTTP/1.1\r\nHost: check\r\nConnection: close\r\n\r\n")?;
            let mut answer = Vec::new();
            let _ = stream.read_to_end(&mut answer);
            let answer = String::from_utf8_lossy(&answer);
            let status = answer.lines().next().unwrap_or_default().to_owned();
            if !status.starts_with("HTTP/1.1 4") {
                bail!("the file store answered an unsigned request with {status:?}, not 4xx");
            }
            say(&format!(
                "musubi file-store in the image answers ({}) as UID 10001",
                status.trim()
            ));
            Ok(())
        })();
        // `musubi file-store` announces its address before it handles SIGTERM: give it a moment,
        // as a SIGTERM in between ends it by the signal's default action (also a stop).
        std::thread::sleep(Duration::from_millis(500));
        let pid = nix::unistd::Pid::from_raw(i32::try_from(child.id())?);
        let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM);
        let deadline = Instant::now() + Duration::from_secs(15);
        let status = loop {
            if let Some(s) = child.try_wait()? {
                break Some(s);
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                break None;
            }
            std::thread::sleep(Duration::from_millis(100));
        };
        result?;
        match status {
            Some(s) if s.success() => Ok(()),
            Some(s) if std::os::unix::process::ExitStatusExt::signal(&s) == Some(15) => {
                say("musubi file-store was ended by SIGTERM before it handled the signal");
                Ok(())
            }
            Some(s) => {
                let mut err = String::new();
                if let Some(mut e) = child.stderr.take() {
                    let _ = e.read_to_string(&mut err);
                }
                bail!("musubi file-store exited with {s} on SIGTERM:\n{err}")
            }
            None => bail!("musubi file-store did not stop within 15 s of SIGTERM"),
        }
    }
}

/// A one-page PDF showing 褥瘡 in a Type0 font of Adobe-Japan1 that is not embedded
/// (crates/media/tests/media.rs makes the same).
fn japanese_pdf() -> Vec<u8> {
    let content = "BT /F1 18 Tf 20 40 Td <89257621> Tj ET";
    let objects = [
        "<< /Type /Catalog /Pages 2 0 R >>".to_owned(),
        "<< /Type /Pages /Kids [3 0 R] /Count 1 >>".to_owned(),
        "<< /Type /Page /Parent 2 0 R /MediaBox [0 0 300 100] \
         /Resources << /Font << /F1 4 0 R >> >> /Contents 5 0 R >>"
            .to_owned(),
        "<< /Type /Font /Subtype /Type0 /BaseFont /KozMinPr6N-Regular \
         /Encoding /UniJIS-UCS2-H /DescendantFonts [6 0 R] >>"
            .to_owned(),
        format!(
            "<< /Length {} >>\nstream\n{content}\nendstream",
            content.len()
        ),
        "<< /Type /Font /Subtype /CIDFontType0 /BaseFont /KozMinPr6N-Regular \
         /CIDSystemInfo << /Registry (Adobe) /Ordering (Japan1) /Supplement 6 >> \
         /FontDescriptor 7 0 R /DW 1000 >>"
            .to_owned(),
        "<< /Type /FontDescriptor /FontName /KozMinPr6N-Regular /Flags 6 \
         /FontBBox [-437 -340 1147 1317] /ItalicAngle 0 /Ascent 1317 /Descent -349 \
         /CapHeight 742 /StemV 80 >>"
            .to_owned(),
    ];
    let mut out = b"%PDF-1.4\n%\xE2\xE3\xCF\xD3\n".to_vec();
    let mut offsets = Vec::new();
    for (i, body) in objects.iter().enumerate() {
        offsets.push(out.len());
        out.extend_from_slice(format!("{} 0 obj\n{body}\nendobj\n", i + 1).as_bytes());
    }
    let xref = out.len();
    out.extend_from_slice(
        format!("xref\n0 {}\n0000000000 65535 f \n", objects.len() + 1).as_bytes(),
    );
    for o in offsets {
        out.extend_from_slice(format!("{o:010} 00000 n \n").as_bytes());
    }
    out.extend_from_slice(
        format!(
            "trailer\n<< /Size {} /Root 1 0 R >>\nstartxref\n{xref}\n%%EOF\n",
            objects.len() + 1
        )
        .as_bytes(),
    );
    out
}

fn crc32(bytes: &[u8]) -> u32 {
    let mut crc = 0xFFFF_FFFFu32;
    for &b in bytes {
        crc ^= u32::from(b);
        for _ in 0..8 {
            crc = if crc & 1 == 1 {
                (crc >> 1) ^ 0xEDB8_8320
            } else {
                crc >> 1
            };
        }
    }
    !crc
}

fn adler32(bytes: &[u8]) -> u32 {
    let (mut a, mut b) = (1u32, 0u32);
    for &x in bytes {
        a = (a + u32::from(x)) % 65521;
        b = (b + a) % 65521;
    }
    (b << 16) | a
}

/// An RGB PNG of a colour gradient, its pixels in stored (uncompressed) deflate blocks.
fn png(width: u32, height: u32) -> Vec<u8> {
    let mut raw = Vec::new();
    for y in 0..height {
        raw.push(0); // no filter
        for x in 0..width {
            let v = |n: u32, of: u32| u8::try_from(n * 255 / of.max(1)).unwrap_or(u8::MAX);
            raw.extend_from_slice(&[v(x, width), v(y, height), 128]);
        }
    }
    let mut zlib = vec![0x78, 0x01];
    let chunks: Vec<&[u8]> = raw.chunks(65535).collect();
    for (i, chunk) in chunks.iter().enumerate() {
        let len = u16::try_from(chunk.len()).unwrap_or(u16::MAX);
        zlib.push(u8::from(i + 1 == chunks.len()));
        zlib.extend_from_slice(&len.to_le_bytes());
        zlib.extend_from_slice(&(!len).to_le_bytes());
        zlib.extend_from_slice(chunk);
    }
    zlib.extend_from_slice(&adler32(&raw).to_be_bytes());
    let mut ihdr = Vec::new();
    ihdr.extend_from_slice(&width.to_be_bytes());
    ihdr.extend_from_slice(&height.to_be_bytes());
    ihdr.extend_from_slice(&[8, 2, 0, 0, 0]);
    let mut out = b"\x89PNG\r\n\x1a\n".to_vec();
    for (kind, data) in [
        (b"IHDR", ihdr.as_slice()),
        (b"IDAT", zlib.as_slice()),
        (b"IEND", &[][..]),
    ] {
        let len = u32::try_from(data.len()).unwrap_or(u32::MAX);
        out.extend_from_slice(&len.to_be_bytes());
        let mut typed = kind.to_vec();
        typed.extend_from_slice(data);
        out.extend_from_slice(&typed);
        out.extend_from_slice(&crc32(&typed).to_be_bytes());
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(a: &[&str]) -> Vec<String> {
        a.iter().map(|s| (*s).to_owned()).collect()
    }

    #[test]
    fn options_parse() {
        let o = parse(&args(&[])).unwrap();
        assert_eq!(o.profile, Profile::Release);
        assert!(!o.check_only && !o.fresh && o.out.is_none());
        let o = parse(&args(&[
            "--profile",
            "debug",
            "--out",
            "x.tar",
            "--check",
            "--fresh",
            "--no-build",
        ]))
        .unwrap();
        assert_eq!(o.profile, Profile::Debug);
        assert_eq!(o.out, Some(PathBuf::from("x.tar")));
        assert!(o.check_only && o.fresh && o.no_build);
        assert!(parse(&args(&["--profile", "fast"])).is_err());
        assert!(parse(&args(&["--out"])).is_err());
        assert!(parse(&args(&["--shell"])).is_err());
    }

    #[test]
    fn versions_parse() {
        assert_eq!(parse_version("musubi 0.1.0\n").as_deref(), Some("0.1.0"));
        assert_eq!(
            parse_version("musubi 1.2.3-rc.1").as_deref(),
            Some("1.2.3-rc.1")
        );
        assert_eq!(parse_version("other 0.1.0"), None);
        assert_eq!(parse_version("musubi ../x"), None);
        assert_eq!(parse_version(""), None);
    }

    #[test]
    fn shells_compilers_and_interpreters_are_forbidden() {
        for (rel, why) in [
            ("bin/sh", "a shell"),
            ("usr/bin/bash", "a shell"),
            ("usr/bin/zsh", "a shell"),
            ("usr/sbin/nologinsh", "a shell"),
            ("usr/lib/busybox", "a shell"),
            ("usr/bin/gcc-12", "a compiler or linker"),
            ("usr/bin/x86_64-linux-gnu-ld", "a compiler or linker"),
            ("usr/local/bin/rustc", "a compiler or linker"),
            ("usr/bin/cc", "a compiler or linker"),
            ("usr/bin/dpkg", "a package manager"),
            ("usr/bin/perl", "an interpreter"),
            ("usr/bin/python3.11", "an interpreter"),
        ] {
            let name = rel.rsplit('/').next().unwrap();
            assert_eq!(forbidden(rel, name), Some(why), "{rel}");
        }
        for rel in [
            "usr/bin/pdftotext",
            "usr/bin/heif-convert",
            "usr/local/bin/musubi",
            "usr/share/zoneinfo/Asia/Tokyo",
            // Only programs' directories count names ending in "sh".
            "usr/share/poppler/cMap/Adobe-Japan1/fresh",
        ] {
            let name = rel.rsplit('/').next().unwrap();
            assert_eq!(forbidden(rel, name), None, "{rel}");
        }
    }

    #[test]
    fn digests_name_blobs_only() {
        let layout = Path::new("/x");
        let hex = "a".repeat(64);
        assert_eq!(
            blob(layout, Some(&format!("sha256:{hex}"))).unwrap(),
            layout.join("blobs/sha256").join(&hex)
        );
        assert!(blob(layout, Some("sha256:../../etc/passwd")).is_err());
        assert!(blob(layout, Some("md5:abc")).is_err());
        assert!(blob(layout, None).is_err());
    }

    #[test]
    fn the_png_is_well_formed() {
        assert_eq!(crc32(b"IEND"), 0xAE42_6082);
        assert_eq!(adler32(b"Wikipedia"), 0x11E6_0398);
        let png = png(4, 2);
        assert!(png.starts_with(b"\x89PNG\r\n\x1a\n"));
        assert!(png.ends_with(&[0, 0, 0, 0, b'I', b'E', b'N', b'D', 0xAE, 0x42, 0x60, 0x82]));
    }

    #[test]
    fn the_pdf_has_a_correct_cross_reference_table() {
        let pdf = japanese_pdf();
        // Offsets count bytes (line 2 is a binary comment): search the bytes.
        let find = |needle: &[u8]| pdf.windows(needle.len()).rposition(|w| w == needle);
        let after = find(b"startxref\n").unwrap() + b"startxref\n".len();
        let xref: usize = String::from_utf8_lossy(&pdf[after..])
            .lines()
            .next()
            .and_then(|n| n.parse().ok())
            .unwrap();
        assert!(pdf[xref..].starts_with(b"xref\n0 8\n"));
        let table = String::from_utf8_lossy(&pdf[xref..]).into_owned();
        let first = table.lines().nth(3).unwrap();
        let offset: usize = first[..10].parse().unwrap();
        assert!(pdf[offset..].starts_with(b"1 0 obj"));
    }
}
