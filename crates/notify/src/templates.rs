//! The mails' texts: plain UTF-8, Japanese first and English below, from the files in
//! `templates/`. A file's first line is the subject; the body follows a blank line.
//!
//! What a template may contain is deliberately narrow: the association's name, one link and
//! its expiry. No names of people, no patient information.

use crate::{Mail, MailKind};
use askama::Template;
use chrono::{DateTime, Utc};
use musubi_config::time::jst;

#[derive(Template)]
#[template(path = "invitation.txt", escape = "none")]
struct InvitationText<'a> {
    association: &'a str,
    link: &'a str,
    expires_ja: &'a str,
    expires_en: &'a str,
}

#[derive(Template)]
#[template(path = "password_reset.txt", escape = "none")]
struct PasswordResetText<'a> {
    link: &'a str,
    expires_ja: &'a str,
    expires_en: &'a str,
}

/// (`2026年4月1日 09:05`, `1 Apr 2026, 09:05 JST`)
fn expiry_texts(at: DateTime<Utc>) -> (String, String) {
    let local = at.with_timezone(&jst());
    (
        local.format("%Y年%-m月%-d日 %H:%M").to_string(),
        local.format("%-d %b %Y, %H:%M JST").to_string(),
    )
}

/// Names come from administrators: keep them on one line, whatever they typed.
fn one_line(s: &str) -> String {
    s.chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect::<String>()
        .trim()
        .to_owned()
}

fn split(kind: MailKind, to: &str, link: &str, text: &str) -> Mail {
    let text = text.replace("\r\n", "\n");
    let (subject, body) = text.split_once("\n\n").unwrap_or((text.as_str(), ""));
    Mail {
        kind,
        to: to.to_owned(),
        subject: subject.trim().to_owned(),
        body: format!("{}\n", body.trim_end()),
        link: link.to_owned(),
    }
}

/// The invitation to join `association`, valid until `expires_at`.
pub fn invitation_mail(
    to: &str,
    association: &str,
    link: &str,
    expires_at: DateTime<Utc>,
) -> Result<Mail, crate::MailError> {
    let (expires_ja, expires_en) = expiry_texts(expires_at);
    let association = one_line(association);
    let text = InvitationText {
        association: &association,
        link,
        expires_ja: &expires_ja,
        expires_en: &expires_en,
    }
    .render()
    .map_err(|e| crate::MailError::Build(e.to_string()))?;
    Ok(split(MailKind::Invitation, to, link, &text))
}

/// The link to choose a new password, valid until `expires_at`.
pub fn password_reset_mail(
    to: &str,
    link: &str,
    expires_at: DateTime<Utc>,
) -> Result<Mail, crate::MailError> {
    let (expires_ja, expires_en) = expiry_texts(expires_at);
    let text = PasswordResetText {
        link,
        expires_ja: &expires_ja,
        expires_en: &expires_en,
    }
    .render()
    .map_err(|e| crate::MailError::Build(e.to_string()))?;
    Ok(split(MailKind::PasswordReset, to, link, &text))
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn at() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 3, 31, 15, 4, 0)
            .single()
            .unwrap_or_default()
    }

    #[test]
    fn invitation_is_japanese_first_with_the_link_and_expiry_in_jst() {
        let m = invitation_mail(
            "nurse@example.jp",
            "湊川医師会\r\nBcc: x@evil",
            "https://musubi.example.jp/invite/abc",
            at(),
        )
        .unwrap_or_else(|e| panic!("{e}"));
        assert!(m.subject.starts_with("【結び】湊川医師会"), "{}", m.subject);
        assert!(!m.subject.contains('\n') && !m.subject.contains('\r'));
        assert!(m.body.contains("https://musubi.example.jp/invite/abc"));
        assert!(m.body.contains("2026年4月1日 00:04"), "{}", m.body);
        assert!(m.body.contains("1 Apr 2026, 00:04 JST"));
        let ja = m.body.find("招待").unwrap_or(usize::MAX);
        let en = m.body.find("invited").unwrap_or(0);
        assert!(ja < en, "Japanese comes first");
        assert_eq!(m.kind, MailKind::Invitation);
    }

    #[test]
    fn reset_mail_has_the_link_once_per_language() {
        let m = password_reset_mail("a@example.jp", "http://h/reset/t0k", at())
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(m.body.matches("http://h/reset/t0k").count(), 2);
        assert!(m.subject.contains("パスワード"));
        assert!(!format!("{m:?}").contains("t0k"));
    }
}
