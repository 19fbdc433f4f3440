//! Mail through the real SMTP server the harness starts (Python's aiosmtpd, delivering to a
//! maildir): the mailer that sends there and the reading of what arrived.
//!
//! Needs `MUSUBI_TEST_SMTP_URL` (an SMTP server accepting any recipient) and
//! `MUSUBI_TEST_MAILDIR` (the maildir it delivers to). `cargo xtask test` sets both.

use data_encoding::BASE64;
use musubi_notify::{Mailer, MailerSettings, SmtpSettings};
use std::collections::HashSet;
use std::path::PathBuf;
use std::time::Duration;

pub const SMTP_ENV: &str = "MUSUBI_TEST_SMTP_URL";
pub const MAILDIR_ENV: &str = "MUSUBI_TEST_MAILDIR";
pub const PUBLIC_URL: &str = "https://musubi.test";

pub fn required_env(name: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| {
        panic!(
            "{name} is not set: run the tests with `cargo xtask test` (it starts an SMTP \
             server), or set {SMTP_ENV} to an SMTP server that accepts any recipient and \
             {MAILDIR_ENV} to the maildir it delivers to"
        )
    })
}

/// A mailer sending through the test SMTP server, links under [`PUBLIC_URL`].
pub fn smtp_mailer() -> Mailer {
    let url = required_env(SMTP_ENV);
    let smtp = SmtpSettings::parse(&url).unwrap_or_else(|e| panic!("{SMTP_ENV}: {e}"));
    Mailer::new(&MailerSettings {
        smtp: Some(smtp),
        from: "結び <no-reply@musubi.test>".into(),
        public_url: PUBLIC_URL.into(),
        timeout: Duration::from_secs(10),
    })
    .unwrap()
}

// ---------------------------------------------------------------------------------------------
// Reading the maildir

/// One delivered mail, decoded.
#[derive(Debug)]
pub struct Received {
    pub file: PathBuf,
    pub to: String,
    pub subject: String,
    pub content_type: String,
    pub body: String,
    /// The raw headers, names lower-cased.
    pub headers: Vec<(String, String)>,
}

pub fn maildir_files() -> Vec<PathBuf> {
    let dir = PathBuf::from(required_env(MAILDIR_ENV));
    let mut files = Vec::new();
    for sub in ["new", "cur"] {
        if let Ok(entries) = std::fs::read_dir(dir.join(sub)) {
            files.extend(entries.filter_map(|e| e.ok().map(|e| e.path())));
        }
    }
    files
}

/// Unfolded headers (name lower-cased) and the body of a raw message.
pub fn split_message(raw: &str) -> (Vec<(String, String)>, String) {
    let raw = raw.replace("\r\n", "\n");
    let (head, body) = raw.split_once("\n\n").unwrap_or((raw.as_str(), ""));
    let mut headers: Vec<(String, String)> = Vec::new();
    for line in head.lines() {
        if line.starts_with([' ', '\t']) {
            if let Some(last) = headers.last_mut() {
                last.1.push_str(line);
            }
        } else if let Some((k, v)) = line.split_once(':') {
            headers.push((k.trim().to_ascii_lowercase(), v.trim().to_owned()));
        }
    }
    (headers, body.to_owned())
}

/// Decodes RFC 2047 encoded words (`=?utf-8?b?…?=`, `=?utf-8?q?…?=`); adjacent words join.
pub fn decode_header(value: &str) -> String {
    let mut bytes = Vec::new();
    let mut rest = value;
    while let Some(start) = rest.find("=?") {
        let plain = &rest[..start];
        if !plain.trim().is_empty() || bytes.is_empty() {
            bytes.extend_from_slice(plain.as_bytes());
        }
        let word = &rest[start + 2..];
        let mut parts = word.splitn(3, '?');
        let (_charset, enc, tail) = (
            parts.next().unwrap(),
            parts.next().unwrap(),
            parts.next().unwrap(),
        );
        let end = tail.find("?=").unwrap();
        let text = &tail[..end];
        if enc.eq_ignore_ascii_case("b") {
            bytes.extend(BASE64.decode(text.as_bytes()).unwrap());
        } else {
            let text = text.replace('_', " ");
            bytes.extend(decode_quoted_printable(&text));
        }
        rest = &tail[end + 2..];
    }
    bytes.extend_from_slice(rest.as_bytes());
    String::from_utf8(bytes).unwrap()
}

fn decode_quoted_printable(s: &str) -> Vec<u8> {
    let b = s.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'=' && i + 2 < b.len() {
            if let Ok(v) = u8::from_str_radix(&s[i + 1..i + 3], 16) {
                out.push(v);
                i += 3;
                continue;
            }
        }
        out.push(b[i]);
        i += 1;
    }
    out
}

pub fn parse_mail(file: PathBuf) -> Received {
    let raw = std::fs::read_to_string(&file).unwrap();
    let (headers, body) = split_message(&raw);
    let header = |name: &str| {
        headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.clone())
            .unwrap_or_default()
    };
    let body = if header("content-transfer-encoding").eq_ignore_ascii_case("base64") {
        let compact: String = body.chars().filter(|c| !c.is_whitespace()).collect();
        String::from_utf8(BASE64.decode(compact.as_bytes()).unwrap()).unwrap()
    } else {
        body
    };
    Received {
        file,
        to: decode_header(&header("to")),
        subject: decode_header(&header("subject")),
        content_type: header("content-type"),
        body,
        headers,
    }
}

pub fn mails_to(address: &str) -> Vec<Received> {
    maildir_files()
        .into_iter()
        .map(parse_mail)
        .filter(|m| m.to.contains(address))
        .collect()
}

/// Waits (up to 15 s) for mail to `address` not among `seen`.
pub async fn next_mail_to(address: &str, seen: &HashSet<PathBuf>) -> Received {
    for _ in 0..150 {
        if let Some(m) = mails_to(address)
            .into_iter()
            .find(|m| !seen.contains(&m.file))
        {
            return m;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!(
        "no mail to {address} arrived in {} within 15 s",
        required_env(MAILDIR_ENV)
    );
}

pub async fn first_mail_to(address: &str) -> Received {
    next_mail_to(address, &HashSet::new()).await
}
