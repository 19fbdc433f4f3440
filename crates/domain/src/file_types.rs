//! What a shared file is, decided from its content (never from the name or the type the browser
//! claims), and how its name is kept and sent back.
//!
//! An allow-list: photos (JPEG, PNG, WebP, GIF, and HEIC from iPhones), PDF, plain text and the
//! Office formats hospitals and care offices send. Active content (HTML, SVG, scripts) is
//! refused outright, so nothing stored can ever run in a reader's browser; a file whose name
//! promises one type but whose content is another (an HTML page named `.jpg`) is refused too.

use unicode_normalization::UnicodeNormalization as _;

/// A type Musubi keeps.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FileType {
    Jpeg,
    Png,
    Webp,
    Gif,
    Heic,
    Pdf,
    Text,
    Docx,
    Xlsx,
    Pptx,
}

/// Why a file is not kept (stable reason codes for the API; the pages explain them).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// Not one of the kept types (an executable, an archive, an unknown format).
    NotAllowed,
    /// HTML, SVG or a script: content that could run in a browser.
    ActiveContent,
    /// The name says one type and the content is another.
    Mismatch,
}

impl Refusal {
    pub fn code(self) -> &'static str {
        match self {
            Refusal::NotAllowed => "FILE_TYPE_NOT_ALLOWED",
            Refusal::ActiveContent => "FILE_ACTIVE_CONTENT",
            Refusal::Mismatch => "FILE_TYPE_MISMATCH",
        }
    }
}

impl FileType {
    pub fn content_type(self) -> &'static str {
        match self {
            FileType::Jpeg => "image/jpeg",
            FileType::Png => "image/png",
            FileType::Webp => "image/webp",
            FileType::Gif => "image/gif",
            FileType::Heic => "image/heic",
            FileType::Pdf => "application/pdf",
            FileType::Text => "text/plain; charset=utf-8",
            FileType::Docx => {
                "application/vnd.openxmlformats-officedocument.wordprocessingml.document"
            }
            FileType::Xlsx => "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
            FileType::Pptx => {
                "application/vnd.openxmlformats-officedocument.presentationml.presentation"
            }
        }
    }

    /// The extension a kept file's name ends with.
    pub fn extension(self) -> &'static str {
        match self {
            FileType::Jpeg => "jpg",
            FileType::Png => "png",
            FileType::Webp => "webp",
            FileType::Gif => "gif",
            FileType::Heic => "heic",
            FileType::Pdf => "pdf",
            FileType::Text => "txt",
            FileType::Docx => "docx",
            FileType::Xlsx => "xlsx",
            FileType::Pptx => "pptx",
        }
    }

    /// Names that may carry this type (what phones and office software write).
    fn extensions(self) -> &'static [&'static str] {
        match self {
            FileType::Jpeg => &["jpg", "jpeg", "jpe", "jfif"],
            FileType::Png => &["png"],
            FileType::Webp => &["webp"],
            FileType::Gif => &["gif"],
            FileType::Heic => &["heic", "heif"],
            FileType::Pdf => &["pdf"],
            FileType::Text => &["txt", "text", "csv", "log", "md"],
            FileType::Docx => &["docx"],
            FileType::Xlsx => &["xlsx"],
            FileType::Pptx => &["pptx"],
        }
    }

    /// The type a kept file's content type names.
    pub fn from_content_type(content_type: &str) -> Option<Self> {
        Self::ALL
            .into_iter()
            .find(|t| t.content_type() == content_type)
    }

    /// A photo a browser shows (HEIC is a photo browsers mostly cannot show).
    pub fn is_viewable_image(self) -> bool {
        matches!(
            self,
            FileType::Jpeg | FileType::Png | FileType::Webp | FileType::Gif
        )
    }

    /// Shown in the browser rather than downloaded: photos and PDF, which cannot run scripts
    /// in Musubi's origin (sent with `nosniff` and a sandboxing CSP).
    pub fn inline(self) -> bool {
        self.is_viewable_image() || self == FileType::Pdf
    }

    const ALL: [FileType; 10] = [
        FileType::Jpeg,
        FileType::Png,
        FileType::Webp,
        FileType::Gif,
        FileType::Heic,
        FileType::Pdf,
        FileType::Text,
        FileType::Docx,
        FileType::Xlsx,
        FileType::Pptx,
    ];
}

/// How many leading bytes [`sniff`] needs.
pub const SNIFF_BYTES: usize = 4096;

/// Decides the type of a file from its first bytes (`head`, up to [`SNIFF_BYTES`]) and the
/// name it came with.
pub fn sniff(head: &[u8], name: &str) -> Result<FileType, Refusal> {
    let found = by_content(head, name)?;
    let ext = extension_of(name);
    if let Some(ext) = ext.as_deref() {
        let claimed = FileType::ALL.iter().find(|t| t.extensions().contains(&ext));
        match claimed {
            Some(c) if *c != found => return Err(Refusal::Mismatch),
            // A name promising a type Musubi refuses (`.html`, `.svg`, `.exe`) over content
            // that looks harmless is still what the sender meant: refuse it.
            None if ACTIVE_EXTENSIONS.contains(&ext) => return Err(Refusal::ActiveContent),
            _ => {}
        }
    }
    Ok(found)
}

const ACTIVE_EXTENSIONS: &[&str] = &[
    "html", "htm", "xhtml", "shtml", "svg", "svgz", "xml", "js", "mjs", "hta", "xht",
];

fn by_content(head: &[u8], name: &str) -> Result<FileType, Refusal> {
    if head.starts_with(&[0xFF, 0xD8, 0xFF]) {
        return Ok(FileType::Jpeg);
    }
    if head.starts_with(b"\x89PNG\r\n\x1a\n") {
        return Ok(FileType::Png);
    }
    if head.starts_with(b"GIF87a") || head.starts_with(b"GIF89a") {
        return Ok(FileType::Gif);
    }
    if head.len() >= 12 && &head[..4] == b"RIFF" && &head[8..12] == b"WEBP" {
        return Ok(FileType::Webp);
    }
    if head.len() >= 12 && &head[4..8] == b"ftyp" {
        return match &head[8..12] {
            b"heic" | b"heix" | b"hevc" | b"hevx" | b"heim" | b"heis" | b"mif1" | b"msf1" => {
                Ok(FileType::Heic)
            }
            _ => Err(Refusal::NotAllowed),
        };
    }
    if head.starts_with(b"%PDF-") {
        return Ok(FileType::Pdf);
    }
    if head.starts_with(b"PK\x03\x04") {
        // Office files are ZIP archives; their name tells which (the archive's parts would
        // too, but a renamed archive is refused by its name not matching one of these).
        return match extension_of(name).as_deref() {
            Some("docx") => Ok(FileType::Docx),
            Some("xlsx") => Ok(FileType::Xlsx),
            Some("pptx") => Ok(FileType::Pptx),
            _ => Err(Refusal::NotAllowed),
        };
    }
    text(head)
}

/// UTF-8 text without control characters other than tabs and line breaks, which is not markup
/// a browser would run.
fn text(head: &[u8]) -> Result<FileType, Refusal> {
    let body = head.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(head);
    if body.is_empty() {
        return Ok(FileType::Text);
    }
    // The sample may end inside a character: judge what decodes.
    let valid = match std::str::from_utf8(body) {
        Ok(s) => s,
        Err(e) if e.error_len().is_none() => {
            std::str::from_utf8(&body[..e.valid_up_to()]).unwrap_or_default()
        }
        Err(_) => return Err(Refusal::NotAllowed),
    };
    if valid
        .chars()
        .any(|c| c.is_control() && !matches!(c, '\t' | '\n' | '\r' | '\u{0C}'))
    {
        return Err(Refusal::NotAllowed);
    }
    let start = valid.trim_start().to_ascii_lowercase();
    let markup = [
        "<!doctype",
        "<html",
        "<svg",
        "<script",
        "<?xml",
        "<head",
        "<body",
        "<iframe",
    ];
    if markup.iter().any(|m| start.starts_with(m)) || start.contains("<script") {
        return Err(Refusal::ActiveContent);
    }
    Ok(FileType::Text)
}

fn extension_of(name: &str) -> Option<String> {
    let base = name.rsplit(['/', '\\']).next().unwrap_or(name);
    let (stem, ext) = base.rsplit_once('.')?;
    (!stem.is_empty() && !ext.is_empty()).then(|| ext.trim().to_ascii_lowercase())
}

/// Longest kept file name, in characters.
pub const MAX_NAME_CHARS: usize = 120;

/// The name a file is kept under: the last path component, NFC, without control or
/// direction-changing characters (which can make `txt.exe` read as `exe.txt`), at most
/// [`MAX_NAME_CHARS`], ending with the extension of its real type.
pub fn clean_name(name: &str, kind: FileType) -> String {
    let base = name.rsplit(['/', '\\']).next().unwrap_or(name);
    let cleaned: String = base
        .nfc()
        .filter(|c| {
            !c.is_control()
                && !matches!(c, '\u{200E}' | '\u{200F}' | '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}')
        })
        .collect();
    let cleaned = cleaned.trim().trim_matches('.').trim();
    let stem = match extension_of(cleaned) {
        Some(ext) if kind.extensions().contains(&ext.as_str()) => cleaned
            [..cleaned.len() - ext.len() - 1]
            .trim_end()
            .to_owned(),
        _ => cleaned.to_owned(),
    };
    let room = MAX_NAME_CHARS - kind.extension().len() - 1;
    let mut stem: String = stem.chars().take(room).collect();
    if stem.trim().is_empty() {
        stem = "ファイル".to_owned();
    }
    format!("{stem}.{}", kind.extension())
}

/// `Content-Disposition` keeping a Japanese name (RFC 6266 with RFC 5987's `filename*`, and
/// an ASCII stand-in for old clients).
pub fn content_disposition(name: &str, inline: bool) -> String {
    let fallback: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_' | ' ') {
                c
            } else {
                '_'
            }
        })
        .collect();
    let encoded: String = name
        .bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b'_' | b'~') {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect();
    format!(
        "{}; filename=\"{fallback}\"; filename*=UTF-8''{encoded}",
        if inline { "inline" } else { "attachment" }
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    const JPEG: &[u8] = &[0xFF, 0xD8, 0xFF, 0xE1, 0x00, 0x10, b'E', b'x', b'i', b'f'];

    #[test]
    fn types_come_from_content_and_names_must_agree() {
        assert_eq!(sniff(JPEG, "褥瘡 11月.JPG"), Ok(FileType::Jpeg));
        assert_eq!(sniff(JPEG, "IMG_0001"), Ok(FileType::Jpeg), "no extension");
        assert_eq!(sniff(b"%PDF-1.7\n", "検査結果.pdf"), Ok(FileType::Pdf));
        assert_eq!(
            sniff(b"\0\0\0\x18ftypheic\0\0\0\0", "IMG_0002.HEIC"),
            Ok(FileType::Heic)
        );
        assert_eq!(
            sniff(b"PK\x03\x04rest", "ケアプラン.xlsx"),
            Ok(FileType::Xlsx)
        );
        assert_eq!(
            sniff(b"PK\x03\x04rest", "archive.zip"),
            Err(Refusal::NotAllowed)
        );
        assert_eq!(
            sniff("申し送り\r\n".as_bytes(), "memo.txt"),
            Ok(FileType::Text)
        );
        // An HTML page named .jpg: the content decides, and the name disagrees.
        assert_eq!(
            sniff(b"<html><script>alert(1)</script>", "photo.jpg"),
            Err(Refusal::ActiveContent)
        );
        assert_eq!(sniff(b"plain words", "photo.jpg"), Err(Refusal::Mismatch));
        assert_eq!(sniff(JPEG, "photo.png"), Err(Refusal::Mismatch));
        // Markup by any name, and harmless-looking text named as markup.
        for (head, name) in [
            (&b"  <!DOCTYPE html><p>x"[..], "a.txt"),
            (b"<svg xmlns='http://www.w3.org/2000/svg'/>", "a.svg"),
            (b"<?xml version='1.0'?><svg/>", "a.txt"),
            (b"hello", "a.html"),
        ] {
            assert_eq!(sniff(head, name), Err(Refusal::ActiveContent), "{name}");
        }
        // Executables and binary junk.
        assert_eq!(
            sniff(b"MZ\x90\0\x03\0", "setup.exe"),
            Err(Refusal::NotAllowed)
        );
        assert_eq!(sniff(b"\x7fELF\x02\x01", "x"), Err(Refusal::NotAllowed));
        // A sample cut inside a character is still text.
        let cut = "あいう".as_bytes();
        assert_eq!(sniff(&cut[..7], "a.txt"), Ok(FileType::Text));
    }

    #[test]
    fn names_are_cleaned_and_end_with_their_real_type() {
        assert_eq!(
            clean_name("C:\\Users\\看護\\褥瘡.jpeg", FileType::Jpeg),
            "褥瘡.jpg"
        );
        assert_eq!(clean_name("../../etc/passwd", FileType::Text), "passwd.txt");
        // Right-to-left override: "invoice\u{202E}gpj.exe" would read as "invoiceexe.jpg".
        assert_eq!(
            clean_name("invoice\u{202E}gpj.exe", FileType::Jpeg),
            "invoicegpj.exe.jpg"
        );
        assert_eq!(clean_name("  ...  ", FileType::Pdf), "ファイル.pdf");
        let long = "あ".repeat(300);
        let kept = clean_name(&format!("{long}.pdf"), FileType::Pdf);
        assert_eq!(kept.chars().count(), MAX_NAME_CHARS);
        assert!(kept.ends_with(".pdf"));
        // Decomposed kana (as macOS writes it) are composed.
        assert_eq!(clean_name("ハ\u{309A}ス.txt", FileType::Text), "パス.txt");
    }

    #[test]
    fn japanese_names_survive_content_disposition() {
        assert_eq!(
            content_disposition("検査結果 2026.pdf", false),
            "attachment; filename=\"____ 2026.pdf\"; \
             filename*=UTF-8''%E6%A4%9C%E6%9F%BB%E7%B5%90%E6%9E%9C%202026.pdf"
        );
        assert!(content_disposition("a\"b.jpg", true).starts_with("inline; filename=\"a_b.jpg\""));
    }
}
