//! The one rule for text people send: every text field of every service goes through one of
//! these kinds before it is used, so a NUL (which PostgreSQL cannot store), another control
//! character or a bidi override never reaches the database or another person's screen.
//!
//! | Kind | Normalised | Control characters |
//! |---|---|---|
//! | [`line`] (names, titles) | trimmed, NFC | refused |
//! | [`lines`] (descriptions, comments) | CR LF → LF, trimmed, NFC | removed (LF and tab kept) |
//! | [`email`] | trimmed, NFKC | refused, and it must be an address |
//! | [`search_term`] (filters) | trimmed, NFKC | refused |
//! | [`secret`] (passwords) | not here: hashed, never stored as text | — |
//!
//! Trimming removes white space at either end, line breaks and tabs included; what is left is
//! checked. Single-line values are short and name something, so a hidden character there is a mistake
//! or a spoof: the person is told (`FORBIDDEN_CHARACTER`). Multi-line text is long and often
//! pasted; dropping a stray control character loses nothing a reader could see. Lengths are
//! counted in characters after normalisation. Refusals are `INVALID_INPUT` naming the field,
//! with one reason code (see [`reason`]). Tokens and one-time codes are not text: they are
//! parsed against their own alphabets in `musubi_auth` and only their hashes reach the database.

use crate::{AppError, AppResult};
use unicode_normalization::UnicodeNormalization;

/// Machine-readable reasons of a refusal, in `AppError::reasons`. Stable: pages pick their
/// words by them.
pub mod reason {
    /// Empty (after trimming) where something is needed.
    pub const REQUIRED: &str = "REQUIRED";
    /// Longer than the field allows.
    pub const TOO_LONG: &str = "TOO_LONG";
    /// A control character, bidi control, line break (single line) or noncharacter.
    pub const FORBIDDEN_CHARACTER: &str = "FORBIDDEN_CHARACTER";
    /// Not an e-mail address a mail could be sent to.
    pub const NOT_AN_EMAIL: &str = "NOT_AN_EMAIL";
}

/// The longest e-mail address (RFC 5321 path limit).
pub const MAX_EMAIL_CHARS: usize = 254;
/// The longest password accepted, in bytes: argon2 work stays bounded.
pub const MAX_SECRET_BYTES: usize = 1024;

fn refuse(field: &'static str, why: &'static str, message: String) -> AppError {
    AppError {
        reasons: vec![why],
        ..AppError::invalid(field, message)
    }
}

/// Characters that change what text means or how it is shown without being seen: C0 and C1
/// controls and DEL, the bidi embeddings, overrides and isolates ("Trojan Source"), the
/// Unicode line and paragraph separators, and noncharacters.
fn is_hidden(c: char) -> bool {
    c.is_control()
        || matches!(c, '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}')
        || matches!(c, '\u{2028}' | '\u{2029}')
        || matches!(c, '\u{FDD0}'..='\u{FDEF}')
        || (c as u32) & 0xFFFE == 0xFFFE
}

fn check_length(field: &'static str, value: &str, max: usize) -> AppResult<()> {
    if value.chars().count() > max {
        return Err(refuse(
            field,
            reason::TOO_LONG,
            format!("{field} must be at most {max} characters"),
        ));
    }
    Ok(())
}

fn required(field: &'static str, value: String) -> AppResult<String> {
    if value.is_empty() {
        return Err(refuse(
            field,
            reason::REQUIRED,
            format!("{field} is required"),
        ));
    }
    Ok(value)
}

/// A single line (a name, a title): trimmed, NFC, at most `max` characters, not empty.
/// Control characters, line breaks and bidi controls are refused.
pub fn line(field: &'static str, raw: &str, max: usize) -> AppResult<String> {
    required(field, optional_line(field, raw, max)?.unwrap_or_default())
}

/// [`line`] that may be left empty (`None`).
pub fn optional_line(field: &'static str, raw: &str, max: usize) -> AppResult<Option<String>> {
    single(field, raw, max, |s| s.nfc().collect())
}

fn single(
    field: &'static str,
    raw: &str,
    max: usize,
    normalize: impl Fn(&str) -> String,
) -> AppResult<Option<String>> {
    let v = raw.trim();
    if v.chars().any(is_hidden) {
        return Err(refuse(
            field,
            reason::FORBIDDEN_CHARACTER,
            format!("{field} contains a control character"),
        ));
    }
    let v = normalize(v);
    check_length(field, &v, max)?;
    Ok((!v.is_empty()).then_some(v))
}

/// Multi-line text (a comment, a description) that must not be empty: see [`optional_lines`].
pub fn lines(field: &'static str, raw: &str, max: usize) -> AppResult<String> {
    required(field, optional_lines(field, raw, max)?)
}

/// Multi-line text: line breaks become LF, other invisible characters (controls other than
/// LF and tab, bidi controls, noncharacters) are removed, the whole is trimmed and NFC, at
/// most `max` characters. May be empty.
pub fn optional_lines(field: &'static str, raw: &str, max: usize) -> AppResult<String> {
    let mut kept = String::with_capacity(raw.len());
    let mut chars = raw.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\r' => {
                // CR LF and a lone CR are one line break.
                chars.next_if_eq(&'\n');
                kept.push('\n');
            }
            '\u{2028}' | '\u{2029}' => kept.push('\n'),
            '\n' | '\t' => kept.push(c),
            c if is_hidden(c) => {}
            c => kept.push(c),
        }
    }
    let v: String = kept.trim().nfc().collect();
    check_length(field, &v, max)?;
    Ok(v)
}

/// An e-mail address: trimmed and NFKC (a full-width address typed on a Japanese keyboard is
/// the ASCII one), at most [`MAX_EMAIL_CHARS`], and one a mail can be sent to. Anything else
/// is refused as `NOT_AN_EMAIL` (or `FORBIDDEN_CHARACTER`). Case is kept: accounts compare
/// addresses regardless of case.
pub fn email(field: &'static str, raw: &str) -> AppResult<String> {
    let v = single(field, raw, MAX_EMAIL_CHARS, |s| s.nfkc().collect())?.unwrap_or_default();
    if !musubi_notify::is_valid_address(&v) {
        return Err(refuse(
            field,
            reason::NOT_AN_EMAIL,
            "not a valid e-mail address".to_owned(),
        ));
    }
    Ok(v)
}

/// A term to search or filter by: trimmed and NFKC (full-width letters find ASCII codes), at
/// most `max` characters; `None` when empty. Control characters are refused.
pub fn search_term(field: &'static str, raw: &str, max: usize) -> AppResult<Option<String>> {
    single(field, raw, max, |s| s.nfkc().collect())
}

/// A password as typed: never normalised here (`musubi_auth` applies NFKC before hashing) and
/// never stored as text; only its size is bounded. Empty or over [`MAX_SECRET_BYTES`] is
/// refused.
pub fn secret<'a>(field: &'static str, raw: &'a str) -> AppResult<&'a str> {
    if raw.is_empty() {
        return Err(refuse(
            field,
            reason::REQUIRED,
            format!("{field} is required"),
        ));
    }
    if raw.len() > MAX_SECRET_BYTES {
        return Err(refuse(
            field,
            reason::TOO_LONG,
            format!("{field} must be at most {MAX_SECRET_BYTES} bytes"),
        ));
    }
    Ok(raw)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn why(r: AppResult<impl std::fmt::Debug>) -> (Option<&'static str>, &'static str) {
        let e = r.expect_err("refused");
        assert_eq!(e.code, crate::ErrorCode::InvalidInput);
        (e.field, e.reasons[0])
    }

    /// Every character a single line refuses, and multi-line text drops.
    const HIDDEN: &[char] = &[
        '\u{0}',
        '\u{1}',
        '\u{7}',
        '\u{8}',
        '\u{b}',
        '\u{c}',
        '\u{1b}',
        '\u{1f}',
        '\u{7f}',
        '\u{80}',
        '\u{85}',
        '\u{9f}',
        '\u{202a}',
        '\u{202e}',
        '\u{2066}',
        '\u{2069}',
        '\u{2028}',
        '\u{fdd0}',
        '\u{fffe}',
        '\u{ffff}',
        '\u{1fffe}',
        '\u{10ffff}',
    ];

    #[test]
    fn a_line_is_trimmed_and_composed() {
        assert_eq!(
            line("name", "  山田 太郎\u{3000}", 10).unwrap(),
            "山田 太郎"
        );
        // e + combining acute, か + combining voiced mark: one character each.
        assert_eq!(line("name", "Cafe\u{301}", 4).unwrap(), "Caf\u{e9}");
        assert_eq!(line("name", "か\u{3099}", 1).unwrap(), "が");
        // NFC, not NFKC: full-width and half-width forms and ① stay as written.
        assert_eq!(line("name", "ＡＢ ｱｲ ①", 10).unwrap(), "ＡＢ ｱｲ ①");
        // Joiners are not hidden: they build emoji and scripts.
        assert_eq!(line("name", "👩\u{200d}⚕️", 10).unwrap(), "👩\u{200d}⚕️");
    }

    #[test]
    fn a_line_refuses_hidden_characters_line_breaks_and_tabs() {
        for c in HIDDEN.iter().chain(&['\n', '\r', '\t']) {
            assert_eq!(
                why(line("title", &format!("a{c}b"), 10)),
                (Some("title"), reason::FORBIDDEN_CHARACTER),
                "{c:?}"
            );
        }
    }

    #[test]
    fn a_line_is_required_and_bounded_in_characters() {
        assert_eq!(
            why(line("name", " \u{3000} ", 10)),
            (Some("name"), reason::REQUIRED)
        );
        assert_eq!(
            why(line("name", &"あ".repeat(11), 10)),
            (Some("name"), reason::TOO_LONG)
        );
        assert_eq!(
            line("name", &"あ".repeat(10), 10).unwrap().chars().count(),
            10
        );
        // Counted after composition: 10 decomposed characters are 10, not 20.
        assert!(line("name", &"か\u{3099}".repeat(10), 10).is_ok());
        assert_eq!(optional_line("area", "  ", 10).unwrap(), None);
        // White space at the ends goes before the check, whatever kind it is.
        assert_eq!(line("name", "\t山田\r\n\u{85}", 10).unwrap(), "山田");
    }

    #[test]
    fn multi_line_text_keeps_lines_and_tabs_and_drops_the_rest() {
        assert_eq!(
            lines(
                "body",
                "\r\n 一行目\r\n\t二行目\r三行目\u{2028}四 \n\n",
                100
            )
            .unwrap(),
            "一行目\n\t二行目\n三行目\n四"
        );
        for c in HIDDEN.iter().filter(|c| !matches!(c, '\u{2028}')) {
            assert_eq!(lines("body", &format!("a{c}b"), 10).unwrap(), "ab", "{c:?}");
        }
        assert_eq!(
            why(lines("body", "\u{0}\u{7} \u{202e}", 10)),
            (Some("body"), reason::REQUIRED)
        );
        assert_eq!(optional_lines("description", "\u{0}", 10).unwrap(), "");
        assert_eq!(
            why(lines("body", &"あ\n".repeat(6), 10)),
            (Some("body"), reason::TOO_LONG)
        );
    }

    #[test]
    fn an_email_is_nfkc_and_must_be_an_address() {
        assert_eq!(
            email("email", " ａｏｋｉ＠ｍｉｎａｔｏｇａｗａ．ｅｘａｍｐｌｅ ").unwrap(),
            "aoki@minatogawa.example"
        );
        assert_eq!(
            email("email", "Aoki@Example.jp").unwrap(),
            "Aoki@Example.jp"
        );
        for bad in ["", "aoki", "a b@example.jp", "@example.jp"] {
            assert_eq!(why(email("email", bad)).1, reason::NOT_AN_EMAIL, "{bad:?}");
        }
        for bad in [
            "aoki@example.jp\u{0}",
            "ao\u{0}ki@example.jp",
            "\u{202e}a@b.jp",
        ] {
            assert_eq!(
                why(email("email", bad)),
                (Some("email"), reason::FORBIDDEN_CHARACTER),
                "{bad:?}"
            );
        }
        let long = format!("{}@example.jp", "a".repeat(250));
        assert_eq!(why(email("email", &long)).1, reason::TOO_LONG);
    }

    #[test]
    fn a_search_term_is_nfkc_and_optional() {
        assert_eq!(
            search_term("action", " ａｕｔｈ ", 64).unwrap().as_deref(),
            Some("auth")
        );
        assert_eq!(search_term("action", "", 64).unwrap(), None);
        assert_eq!(
            why(search_term("action", "auth\u{0}", 64)),
            (Some("action"), reason::FORBIDDEN_CHARACTER)
        );
    }

    #[test]
    fn a_secret_is_bounded_but_untouched() {
        assert_eq!(secret("password", " ｐ\u{0} ").unwrap(), " ｐ\u{0} ");
        assert_eq!(why(secret("password", "")).1, reason::REQUIRED);
        assert_eq!(
            why(secret("password", &"x".repeat(MAX_SECRET_BYTES + 1))).1,
            reason::TOO_LONG
        );
    }

    /// Property over many generated strings: whatever comes in, what is accepted holds no
    /// hidden character, is within its limit, and cleaning it again changes nothing.
    #[test]
    fn accepted_text_is_clean_bounded_and_stable() {
        let alphabet: Vec<char> = HIDDEN
            .iter()
            .copied()
            .chain([
                'a', 'Z', ' ', '\u{3000}', '\n', '\r', '\t', 'あ', 'か', '\u{3099}', 'e',
                '\u{301}', 'Ａ', '＠', '@', '.', '\u{200d}', '😀',
            ])
            .collect();
        // A small deterministic generator (xorshift): no dependency, same cases every run.
        let mut state: u64 = 0x9e37_79b9_7f4a_7c15;
        let mut next = || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        for _ in 0..20_000 {
            let len = (next() % 24) as usize;
            let s: String = (0..len)
                .map(|_| alphabet[(next() % alphabet.len() as u64) as usize])
                .collect();
            if let Ok(v) = line("f", &s, 12) {
                assert!(
                    !v.chars().any(is_hidden) && !v.contains(['\n', '\t']),
                    "{s:?}"
                );
                assert!(v.chars().count() <= 12 && !v.is_empty());
                assert_eq!(line("f", &v, 12).unwrap(), v, "{s:?}");
            }
            if let Ok(v) = optional_lines("f", &s, 12) {
                assert!(!v.chars().any(|c| is_hidden(c) && c != '\n' && c != '\t'));
                assert!(!v.contains('\r') && v.chars().count() <= 12);
                assert_eq!(optional_lines("f", &v, 12).unwrap(), v, "{s:?}");
            }
            if let Ok(v) = email("f", &s) {
                assert!(!v.chars().any(is_hidden) && musubi_notify::is_valid_address(&v));
                assert_eq!(email("f", &v).unwrap(), v, "{s:?}");
            }
        }
    }
}
