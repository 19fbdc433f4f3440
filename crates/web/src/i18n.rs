//! Languages, message catalogs and choosing the language of a request.
//!
//! Japanese comes first: it is the default and the fallback for every missing string.

use axum::extract::FromRequestParts;
use http::header::{ACCEPT_LANGUAGE, COOKIE};
use http::request::Parts;
use http::HeaderMap;
use std::collections::BTreeMap;
use std::convert::Infallible;
use std::sync::OnceLock;

/// The cookie that remembers the language a user picked.
pub(crate) const LANG_COOKIE: &str = "musubi_lang";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Lang {
    Ja,
    En,
}

impl Lang {
    pub(crate) fn code(self) -> &'static str {
        match self {
            Lang::Ja => "ja",
            Lang::En => "en",
        }
    }

    /// Exact codes only: these come from URLs and cookies.
    pub(crate) fn from_code(code: &str) -> Option<Self> {
        match code {
            "ja" => Some(Lang::Ja),
            "en" => Some(Lang::En),
            _ => None,
        }
    }

    /// Maps a language tag (`ja`, `ja-JP`, `EN-us`) by its primary subtag.
    fn from_tag(tag: &str) -> Option<Self> {
        let primary = tag.split('-').next().unwrap_or_default();
        if primary.eq_ignore_ascii_case("ja") {
            Some(Lang::Ja)
        } else if primary.eq_ignore_ascii_case("en") {
            Some(Lang::En)
        } else {
            None
        }
    }
}

/// The cookie first, then `Accept-Language`, then Japanese.
pub(crate) fn negotiate(headers: &HeaderMap) -> Lang {
    lang_from_cookie(headers)
        .or_else(|| {
            headers
                .get_all(ACCEPT_LANGUAGE)
                .iter()
                .filter_map(|v| v.to_str().ok())
                .find_map(from_accept_language)
        })
        .unwrap_or(Lang::Ja)
}

fn lang_from_cookie(headers: &HeaderMap) -> Option<Lang> {
    // HTTP/2 may split cookies over several headers.
    headers
        .get_all(COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(name, _)| *name == LANG_COOKIE)
        .and_then(|(_, value)| Lang::from_code(value.trim().trim_matches('"')))
}

/// The supported language with the highest q-value; on a tie the one listed first.
/// `None` when the header names neither language (or only with `q=0`).
pub(crate) fn from_accept_language(header: &str) -> Option<Lang> {
    let mut best: Option<(Lang, f32)> = None;
    for item in header.split(',') {
        let mut parts = item.split(';');
        let tag = parts.next().unwrap_or_default().trim();
        let Some(lang) = Lang::from_tag(tag) else {
            continue;
        };
        let Some(q) = quality(parts) else {
            continue;
        };
        if q > 0.0 && best.is_none_or(|(_, b)| q > b) {
            best = Some((lang, q));
        }
    }
    best.map(|(lang, _)| lang)
}

/// The `q` parameter, 1 when absent; `None` when it is malformed.
fn quality<'a>(params: impl Iterator<Item = &'a str>) -> Option<f32> {
    for p in params {
        if let Some((k, v)) = p.split_once('=') {
            if k.trim().eq_ignore_ascii_case("q") {
                let q: f32 = v.trim().parse().ok()?;
                return (0.0..=1.0).contains(&q).then_some(q);
            }
        }
    }
    Some(1.0)
}

impl<S: Send + Sync> FromRequestParts<S> for Lang {
    type Rejection = Infallible;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        Ok(negotiate(&parts.headers))
    }
}

type Catalog = BTreeMap<String, String>;

const JA_SOURCE: &str = include_str!("../locales/ja.toml");
const EN_SOURCE: &str = include_str!("../locales/en.toml");

struct Catalogs {
    ja: Catalog,
    en: Catalog,
}

fn catalogs() -> &'static Catalogs {
    static CATALOGS: OnceLock<Catalogs> = OnceLock::new();
    CATALOGS.get_or_init(|| Catalogs {
        ja: load("ja", JA_SOURCE),
        en: load("en", EN_SOURCE),
    })
}

fn load(name: &str, source: &str) -> Catalog {
    // The catalogs are compiled in and a test parses them, so this only guards a bad build:
    // pages then show keys instead of failing.
    parse_catalog(source).unwrap_or_else(|e| {
        tracing::error!(catalog = name, error = %e, "message catalog is invalid");
        Catalog::new()
    })
}

/// Reads `key = "text"` lines; dotted keys and `[sections]` both become `section.key`.
fn parse_catalog(source: &str) -> Result<Catalog, String> {
    let table: toml::Table = source.parse().map_err(|e: toml::de::Error| e.to_string())?;
    let mut out = Catalog::new();
    flatten("", &table, &mut out)?;
    Ok(out)
}

fn flatten(prefix: &str, table: &toml::Table, out: &mut Catalog) -> Result<(), String> {
    for (k, v) in table {
        let key = if prefix.is_empty() {
            k.clone()
        } else {
            format!("{prefix}.{k}")
        };
        match v {
            toml::Value::String(s) => {
                out.insert(key, s.clone());
            }
            toml::Value::Table(t) => flatten(&key, t, out)?,
            _ => return Err(format!("`{key}` must be a string")),
        }
    }
    Ok(())
}

/// What templates use to look up strings: `{{ t.get("landing.title") }}`.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Translator {
    lang: Lang,
}

impl Translator {
    pub(crate) fn new(lang: Lang) -> Self {
        Self { lang }
    }

    /// The text for `key`; falls back to Japanese, then to the key itself.
    pub(crate) fn get<'a>(&self, key: &'a str) -> &'a str {
        let c = catalogs();
        let own = match self.lang {
            Lang::Ja => &c.ja,
            Lang::En => &c.en,
        };
        if let Some(text) = own.get(key).or_else(|| c.ja.get(key)) {
            return text.as_str();
        }
        tracing::warn!(key, lang = self.lang.code(), "missing message");
        key
    }

    /// The text for `key` with its `{}` replaced by `value` (names, counts). Templates escape
    /// the result like any other text.
    pub(crate) fn format(&self, key: &str, value: &str) -> String {
        self.get(key).replacen("{}", value, 1)
    }

    /// The language code, for `<html lang>`.
    pub(crate) fn lang(&self) -> &'static str {
        self.lang.code()
    }

    /// Whether the page is shown in the language with this code.
    pub(crate) fn is(&self, code: &str) -> bool {
        self.lang.code() == code
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;
    use std::collections::BTreeSet;

    fn headers(pairs: &[(http::HeaderName, &'static str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(k, HeaderValue::from_static(v));
        }
        h
    }

    #[test]
    fn japanese_is_the_default_without_any_hint() {
        assert_eq!(negotiate(&HeaderMap::new()), Lang::Ja);
        assert_eq!(
            negotiate(&headers(&[(ACCEPT_LANGUAGE, "fr, de;q=0.5")])),
            Lang::Ja
        );
        assert_eq!(negotiate(&headers(&[(ACCEPT_LANGUAGE, "")])), Lang::Ja);
    }

    #[test]
    fn accept_language_picks_the_highest_supported_q_value() {
        let cases = [
            ("en-US,en;q=0.9", Some(Lang::En)),
            ("ja-JP,ja;q=0.9,en;q=0.8", Some(Lang::Ja)),
            ("en;q=0.5, ja;q=0.8", Some(Lang::Ja)),
            ("ja;q=0.3, en-GB;q=0.7", Some(Lang::En)),
            ("fr-FR, en;q=0.4", Some(Lang::En)),
            ("JA", Some(Lang::Ja)),
            ("en ; q = 0.2", Some(Lang::En)),
            // Equal weight: the first listed wins.
            ("en, ja", Some(Lang::En)),
            ("ja;q=0.5, en;q=0.5", Some(Lang::Ja)),
            // q=0 means "not acceptable".
            ("en;q=0, ja;q=0.1", Some(Lang::Ja)),
            ("en;q=0", None),
            // Malformed weights are ignored rather than trusted.
            ("en;q=abc, ja;q=0.2", Some(Lang::Ja)),
            ("en;q=2", None),
            // Not Japanese or English, only similar-looking.
            ("jam, eng", None),
            ("*", None),
        ];
        for (header, want) in cases {
            assert_eq!(from_accept_language(header), want, "{header}");
        }
    }

    #[test]
    fn the_language_cookie_wins_over_accept_language() {
        let h = headers(&[
            (COOKIE, "session=abc; musubi_lang=en"),
            (ACCEPT_LANGUAGE, "ja"),
        ]);
        assert_eq!(negotiate(&h), Lang::En);
        let h = headers(&[(COOKIE, "musubi_lang=ja"), (ACCEPT_LANGUAGE, "en")]);
        assert_eq!(negotiate(&h), Lang::Ja);
    }

    #[test]
    fn an_unknown_cookie_value_falls_through_to_accept_language() {
        let h = headers(&[(COOKIE, "musubi_lang=fr"), (ACCEPT_LANGUAGE, "en")]);
        assert_eq!(negotiate(&h), Lang::En);
        let h = headers(&[(COOKIE, "xmusubi_lang=en")]);
        assert_eq!(negotiate(&h), Lang::Ja);
    }

    #[test]
    fn both_catalogs_parse_and_have_exactly_the_same_keys() {
        let ja = parse_catalog(JA_SOURCE).expect("ja.toml parses");
        let en = parse_catalog(EN_SOURCE).expect("en.toml parses");
        let ja_keys: BTreeSet<_> = ja.keys().collect();
        let en_keys: BTreeSet<_> = en.keys().collect();
        let only_ja: Vec<_> = ja_keys.difference(&en_keys).collect();
        let only_en: Vec<_> = en_keys.difference(&ja_keys).collect();
        assert!(only_ja.is_empty(), "missing in en.toml: {only_ja:?}");
        assert!(only_en.is_empty(), "missing in ja.toml: {only_en:?}");
        assert!(ja.values().chain(en.values()).all(|v| !v.trim().is_empty()));
    }

    #[test]
    fn every_key_used_in_templates_and_code_exists() {
        let ja = parse_catalog(JA_SOURCE).expect("ja.toml parses");
        let sources = [
            include_str!("../templates/base.html"),
            include_str!("../templates/landing.html"),
            include_str!("../templates/error.html"),
            include_str!("../templates/signin.html"),
            include_str!("../templates/signin_code.html"),
            include_str!("../templates/enrol.html"),
            include_str!("../templates/recovery_codes.html"),
            include_str!("../templates/home.html"),
            include_str!("../templates/my_sessions.html"),
            include_str!("../templates/security.html"),
            include_str!("pages/error.rs"),
            include_str!("pages/not_found.rs"),
            include_str!("pages/signin.rs"),
            include_str!("pages/signin_code.rs"),
            include_str!("pages/enrol.rs"),
            include_str!("pages/my_sessions.rs"),
            include_str!("csrf.rs"),
            include_str!("../templates/invite.html"),
            include_str!("../templates/invite_invalid.html"),
            include_str!("../templates/invite_password_rules.html"),
            include_str!("../templates/reset.html"),
            include_str!("../templates/reset_password.html"),
            include_str!("pages/invite.rs"),
            include_str!("pages/reset.rs"),
            include_str!("pages/passkey.rs"),
            include_str!("pages/home.rs"),
            include_str!("../templates/sns/comments.html"),
            include_str!("../templates/sns/comment_urgent.html"),
            include_str!("../templates/sns/files.html"),
            include_str!("../templates/sns/flash.html"),
            include_str!("../templates/sns/group.html"),
            include_str!("../templates/sns/group_fields.html"),
            include_str!("../templates/sns/group_join.html"),
            include_str!("../templates/sns/group_list.html"),
            include_str!("../templates/sns/groups.html"),
            include_str!("../templates/sns/home_unread.html"),
            include_str!("../templates/sns/new_group.html"),
            include_str!("../templates/sns/new_topic.html"),
            include_str!("../templates/sns/scope_picker.html"),
            include_str!("../templates/sns/search.html"),
            include_str!("../templates/sns/topic.html"),
            include_str!("../templates/sns/topic_list.html"),
            include_str!("../templates/sns/messages.html"),
            include_str!("../templates/sns/messages_list.html"),
            include_str!("../templates/sns/message_people.html"),
            include_str!("../templates/sns/message_new.html"),
            include_str!("../templates/sns/message_add.html"),
            include_str!("pages/sns/messages.rs"),
            include_str!("pages/sns/mod.rs"),
            include_str!("pages/sns/files.rs"),
            include_str!("pages/sns/search.rs"),
            include_str!("pages/sns/group.rs"),
            include_str!("pages/sns/groups.rs"),
            include_str!("pages/sns/new_topic.rs"),
            include_str!("pages/sns/topic.rs"),
            include_str!("../templates/sns/calendar.html"),
            include_str!("../templates/sns/calendar_month.html"),
            include_str!("../templates/sns/group_calendar.html"),
            include_str!("../templates/sns/event_fields.html"),
            include_str!("../templates/sns/event_edit.html"),
            include_str!("../templates/sns/duty.html"),
            include_str!("pages/sns/calendar.rs"),
            include_str!("pages/sns/duty.rs"),
            include_str!("../templates/notifications.html"),
            include_str!("../templates/help_mail.html"),
            include_str!("pages/notifications.rs"),
            include_str!("pages/push.rs"),
            include_str!("pages/help.rs"),
        ];
        let mut used = 0;
        for src in sources {
            for (i, _) in src.match_indices("\"") {
                // Keys are quoted `section.name` strings; anything else is skipped.
                let rest = &src[i + 1..];
                let Some(end) = rest.find('"') else { continue };
                let candidate = &rest[..end];
                let looks_like_key = candidate.contains('.')
                    && !candidate.contains(' ')
                    && candidate
                        .chars()
                        .all(|c| c.is_ascii_lowercase() || c == '.' || c == '_')
                    && !candidate.ends_with(".html")
                    && !candidate.ends_with(".rs")
                    && !candidate.ends_with(".example");
                if looks_like_key {
                    used += 1;
                    assert!(ja.contains_key(candidate), "no message for `{candidate}`");
                }
            }
        }
        assert!(used > 10, "the key scan found too little: {used}");
    }

    #[test]
    fn a_missing_key_falls_back_to_the_key_itself() {
        let t = Translator::new(Lang::En);
        assert_eq!(t.get("no.such.key"), "no.such.key");
        assert_ne!(
            t.get("landing.title"),
            Translator::new(Lang::Ja).get("landing.title")
        );
    }

    #[test]
    fn catalogs_may_use_sections_or_dotted_keys() {
        let c = parse_catalog("a.b = \"x\"\n[c]\nd = \"y\"\n").expect("parses");
        assert_eq!(c.get("a.b").map(String::as_str), Some("x"));
        assert_eq!(c.get("c.d").map(String::as_str), Some("y"));
        assert!(parse_catalog("a = 1").is_err());
    }
}
