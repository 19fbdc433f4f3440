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
        message_id: None,
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

/// What a digest may say: counts, association names, and the names of groups only where
/// their association allows it and never of patient groups.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DigestSummary {
    pub unread: i64,
    pub important: i64,
    /// (association name, its unread, its groups)
    pub associations: Vec<(String, i64, Vec<DigestGroup>)>,
}

/// One line under an association.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DigestGroup {
    /// A group its association allows to name (never a patient group).
    Named { name: String, unread: i64 },
    /// Groups that must not be named, counted together.
    Others { groups: i64, unread: i64 },
}

/// The digest of unread comments for one person, with links to Musubi, its notification
/// settings and the help page for phones whose carrier filters mail. `base` has no trailing
/// slash.
pub fn digest_mail(to: &str, base: &str, summary: &DigestSummary) -> Mail {
    use std::fmt::Write as _;
    let important_ja = if summary.important > 0 {
        format!("（うち 重要 {} 件）", summary.important)
    } else {
        String::new()
    };
    let important_en = if summary.important > 0 {
        format!(" ({} important)", summary.important)
    } else {
        String::new()
    };
    let mut lines_ja = String::new();
    let mut lines_en = String::new();
    for (association, unread, groups) in &summary.associations {
        let association = one_line(association);
        let _ = writeln!(lines_ja, "■ {association}　未読 {unread} 件");
        let _ = writeln!(lines_en, "- {association}: {unread} unread");
        for g in groups {
            match g {
                DigestGroup::Named { name, unread } => {
                    let name = one_line(name);
                    let _ = writeln!(lines_ja, "　・{name}　{unread} 件");
                    let _ = writeln!(lines_en, "    - {name}: {unread}");
                }
                DigestGroup::Others { groups, unread } => {
                    let _ = writeln!(lines_ja, "　・ほかのグループ {groups} つ　{unread} 件");
                    let _ = writeln!(lines_en, "    - {groups} other groups: {unread}");
                }
            }
        }
    }
    let subject = format!(
        "【結び】未読 {} 件（新しい書きこみがあります）",
        summary.unread
    );
    let body = format!(
        "結び に新しい書きこみがあります。\n\n\
         未読 {unread} 件{important_ja}\n\n\
         {lines_ja}\n\
         結び を開く:\n{base}/\n\n\
         このメールには患者さんの情報を載せていません。内容は 結び にサインインしてご覧ください。\n\
         通知の設定（メールの頻度、グループごとの停止）:\n{base}/settings/notifications\n\
         携帯電話のメールに届かないとき:\n{base}/help/mail\n\n\
         ----\n\
         There are new posts on Musubi.\n\n\
         Unread: {unread}{important_en}\n\n\
         {lines_en}\n\
         Open Musubi: {base}/\n\
         This mail holds no patient information; sign in to read.\n\
         Notification settings: {base}/settings/notifications\n\
         If your phone's mail does not receive this: {base}/help/mail\n",
        unread = summary.unread,
    );
    Mail {
        kind: MailKind::Digest,
        to: to.to_owned(),
        subject,
        body,
        link: format!("{base}/"),
        message_id: None,
    }
}

/// Which step of a 至急 request a mail is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UrgentStage {
    /// You are asked to confirm.
    Asked,
    /// Nobody has confirmed yet: asked again.
    Reminded,
    /// You are the doctor on duty and nobody else confirmed.
    Escalated,
    /// (To the author) it went to the doctor on duty, or there was none.
    AuthorNotice,
}

/// A 至急 mail: the association, the step, and one link to the comment (ids only). Nothing of
/// the patient or of what was written.
pub fn urgent_mail(to: &str, association: &str, link: &str, stage: UrgentStage) -> Mail {
    let association = one_line(association);
    let (subject, ja, en) = match stage {
        UrgentStage::Asked => (
            "【結び】至急の確認をお願いします",
            "至急の確認を求める書きこみがあります。",
            "A post marked urgent asks you to confirm it.",
        ),
        UrgentStage::Reminded => (
            "【結び】至急（再通知）: まだ確認されていません",
            "至急の書きこみが、まだ誰にも確認されていません。",
            "An urgent post has not been confirmed by anyone yet.",
        ),
        UrgentStage::Escalated => (
            "【結び】至急: 当番医として確認をお願いします",
            "確認されていない至急の書きこみを、本日の当番医としてお知らせします。",
            "As today's doctor on duty: an urgent post has not been confirmed.",
        ),
        UrgentStage::AuthorNotice => (
            "【結び】至急の書きこみが確認されていません",
            "あなたの至急の書きこみがまだ確認されていないため、当番医への連絡を試みました。",
            "Your urgent post has not been confirmed; Musubi tried the doctor on duty.",
        ),
    };
    let body = format!(
        "{association}\n\n{ja}\n結び にサインインして確認してください:\n{link}\n\n\
         このメールには患者さんの情報を載せていません。\n\n----\n{association}\n\n{en}\n\
         Sign in to Musubi to read it: {link}\nThis mail holds no patient information.\n"
    );
    Mail {
        kind: MailKind::Urgent,
        to: to.to_owned(),
        subject: subject.to_owned(),
        body,
        link: link.to_owned(),
        message_id: None,
    }
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
    fn digest_names_only_what_it_is_given_and_keeps_names_on_one_line() {
        let summary = DigestSummary {
            unread: 12,
            important: 2,
            associations: vec![(
                "湊川医師会".into(),
                12,
                vec![
                    DigestGroup::Named {
                        name: "在宅医療\r\n連携の会".into(),
                        unread: 5,
                    },
                    DigestGroup::Others {
                        groups: 2,
                        unread: 7,
                    },
                ],
            )],
        };
        let m = digest_mail("a@example.jp", "https://m.example.jp", &summary);
        assert_eq!(m.subject, "【結び】未読 12 件（新しい書きこみがあります）");
        assert!(
            m.body.contains("未読 12 件（うち 重要 2 件）"),
            "{}",
            m.body
        );
        assert!(m.body.contains("・在宅医療  連携の会　5 件"), "{}", m.body);
        assert!(m.body.contains("ほかのグループ 2 つ　7 件"));
        assert!(m
            .body
            .contains("https://m.example.jp/settings/notifications"));
        assert!(m.body.contains("https://m.example.jp/help/mail"));
        assert!(m.body.find("結び に新しい") < m.body.find("There are new posts"));
        assert_eq!(m.kind, MailKind::Digest);
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
