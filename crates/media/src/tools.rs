//! The tools run as separate processes: `heif-convert` (HEIC → JPEG) and `pdftotext`.
//!
//! Each runs with stdin closed, its output capped, and a timeout after which it is killed. A tool
//! is found through its variable ([`HEIF_CONVERT_ENV`], [`PDFTOTEXT_ENV`]: a path) or on `PATH`.

use crate::text::normalise;
use crate::{clean, ImageFormat, MediaError, Orient};
use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;
use tokio::io::AsyncReadExt;
use tokio::process::Command;

/// The path of `pdftotext`, instead of looking on `PATH`.
pub const PDFTOTEXT_ENV: &str = "MUSUBI_PDFTOTEXT";
/// The path of `heif-convert`, instead of looking on `PATH`.
pub const HEIF_CONVERT_ENV: &str = "MUSUBI_HEIF_CONVERT";

/// JPEG quality `heif-convert` writes (the result is then cleaned losslessly).
const HEIF_QUALITY: &str = "92";
/// What `heif-convert` may print (status lines) before it is stopped.
const HEIF_OUTPUT_CAP: usize = 64 * 1024;

/// `pdftotext`: from [`PDFTOTEXT_ENV`] if set (`None` when that is not a file), else on `PATH`.
/// Debian: `poppler-utils`, with `poppler-data` for Japanese fonts that are not embedded.
pub fn pdftotext() -> Option<PathBuf> {
    find_tool(PDFTOTEXT_ENV, "pdftotext")
}

/// `heif-convert`: from [`HEIF_CONVERT_ENV`] if set (`None` when that is not a file), else on
/// `PATH`. Debian: `libheif-examples`.
pub fn heif_convert() -> Option<PathBuf> {
    find_tool(HEIF_CONVERT_ENV, "heif-convert")
}

fn find_tool(variable: &str, name: &str) -> Option<PathBuf> {
    if let Some(path) = std::env::var_os(variable).filter(|v| !v.is_empty()) {
        let path = PathBuf::from(path);
        return path.is_file().then_some(path);
    }
    let dirs = std::env::var_os("PATH")?;
    std::env::split_paths(&dirs)
        .map(|d| d.join(name))
        .find(|p| p.is_file())
}

/// A HEIC/HEIF photo as a JPEG, converted by `heif-convert` (its transforms applied, its primary
/// image) and then cleaned like [`crate::clean_image`] (`heif-convert` copies the EXIF along).
/// `Ok(false)` when `heif-convert` is not installed: the caller keeps the original.
pub async fn heic_to_jpeg(
    input: &Path,
    output: &Path,
    timeout: Duration,
) -> Result<bool, MediaError> {
    let Some(tool) = heif_convert() else {
        return Ok(false);
    };
    heic_to_jpeg_with(&tool, input, output, timeout).await?;
    Ok(true)
}

/// [`heic_to_jpeg`] with the tool given.
pub async fn heic_to_jpeg_with(
    tool: &Path,
    input: &Path,
    output: &Path,
    timeout: Duration,
) -> Result<(), MediaError> {
    // The intermediate file (with its EXIF) stays next to the output, never in a shared /tmp.
    let parent = output
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let dir = tempfile::Builder::new()
        .prefix(".musubi-heic-")
        .tempdir_in(parent)?;
    let converted = dir.path().join("converted.jpg");
    let mut cmd = Command::new(tool);
    cmd.args([OsStr::new("-q"), OsStr::new(HEIF_QUALITY)])
        .arg(safe_arg(input))
        .arg(&converted);
    run(cmd, "heif-convert", timeout, HEIF_OUTPUT_CAP).await?;
    // A file of several images is written as converted-1.jpg, converted-2.jpg…: the first is
    // the primary one.
    let written = [converted.clone(), dir.path().join("converted-1.jpg")]
        .into_iter()
        .find(|p| p.is_file())
        .ok_or_else(|| MediaError::Unreadable("heif-convert wrote no image".into()))?;
    let output = output.to_owned();
    tokio::task::spawn_blocking(move || {
        let bytes = std::fs::read(&written)?;
        // The HEIF transforms are applied already; a copied EXIF orientation is stale.
        let (data, _) = clean(ImageFormat::Jpeg, &bytes, Orient::Ignore)?;
        std::fs::write(&output, data)?;
        drop(dir);
        Ok(())
    })
    .await
    .map_err(|e| MediaError::Io(std::io::Error::other(e)))?
}

/// The text of a PDF, extracted by `pdftotext` (UTF-8, reading order, no layout), NFKC-normalised,
/// control characters other than newline and tab removed (page breaks become newlines), at most
/// `max_chars` characters. `Ok(None)` when `pdftotext` is not installed. A PDF it cannot read
/// (damaged, encrypted) is [`MediaError::Unreadable`]; a scan without text gives an empty string.
pub async fn pdf_text(
    input: &Path,
    timeout: Duration,
    max_chars: usize,
) -> Result<Option<String>, MediaError> {
    let Some(tool) = pdftotext() else {
        return Ok(None);
    };
    pdf_text_with(&tool, input, timeout, max_chars)
        .await
        .map(Some)
}

/// [`pdf_text`] with the tool given.
pub async fn pdf_text_with(
    tool: &Path,
    input: &Path,
    timeout: Duration,
    max_chars: usize,
) -> Result<String, MediaError> {
    let mut cmd = Command::new(tool);
    cmd.args(["-q", "-enc", "UTF-8"])
        .arg(safe_arg(input))
        .arg("-");
    // A character is at most 4 bytes of UTF-8; a little more for what normalisation drops.
    let cap = max_chars.saturating_mul(4).saturating_add(4096);
    let out = run(cmd, "pdftotext", timeout, cap).await?;
    Ok(normalise(&String::from_utf8_lossy(&out), max_chars))
}

/// A relative path starting with `-` would be read as an option.
fn safe_arg(path: &Path) -> PathBuf {
    if path.is_relative() && path.as_os_str().as_encoded_bytes().starts_with(b"-") {
        Path::new(".").join(path)
    } else {
        path.to_owned()
    }
}

/// Runs `cmd` with stdin closed and stderr discarded; returns at most `cap` bytes of its output
/// (a tool that writes more is stopped there). Killed after `timeout`.
async fn run(
    mut cmd: Command,
    name: &str,
    timeout: Duration,
    cap: usize,
) -> Result<Vec<u8>, MediaError> {
    cmd.stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .kill_on_drop(true);
    let mut child = cmd.spawn()?;
    let stdout = child.stdout.take();
    let work = async {
        let mut out = Vec::new();
        if let Some(stdout) = stdout {
            stdout
                .take(u64::try_from(cap).unwrap_or(u64::MAX))
                .read_to_end(&mut out)
                .await?;
        }
        let capped = out.len() >= cap;
        if capped {
            let _ = child.start_kill();
        }
        let status = child.wait().await?;
        Ok::<_, std::io::Error>((out, status, capped))
    };
    let result = tokio::time::timeout(timeout, work).await;
    match result {
        Err(_elapsed) => {
            // Stop it and reap it (kill_on_drop would too, without reaping).
            let _ = child.kill().await;
            Err(MediaError::Timeout)
        }
        Ok(Err(e)) => Err(MediaError::Io(e)),
        Ok(Ok((out, status, capped))) => {
            if status.success() || capped {
                Ok(out)
            } else {
                Err(MediaError::Unreadable(format!("{name} failed ({status})")))
            }
        }
    }
}
