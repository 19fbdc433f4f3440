//! Free-word search across everything a person may read: topic titles, comments, files (names
//! and text) and patients (name and reading), in every association that hosts a group of
//! theirs.
//!
//! A query is words separated by spaces, all of which must be found (AND); 「"…"」 or 「…」
//! quotes a phrase; a leading `-` excludes a word. Words and text are folded alike
//! ([`musubi_types::japanese::fold`]: width, kana, case), so 「ｹｱﾏﾈ」 finds 「ケアマネ」 and
//! 「１５０」 finds 「150」; one-character words (痰, 咳) are found. Who may read what is
//! decided in the database query itself (`musubi_db::search`), so pages and counts never show
//! what the person may not see. Each search is recorded as `search.query` (with its text) in the
//! audit log of every association it looked in; the text goes nowhere else.

use crate::audit::{AuditAction, RequestMeta};
use crate::groups::viewer_bit;
use crate::sessions::Viewer;
use crate::types::GroupId;
use crate::types::PersonId;
use crate::{Actor, AppError, AppResult, Services};
use chrono::{DateTime, Utc};
use musubi_db::groups as groups_repo;
use musubi_db::search::{self as repo, Cursor, Query};
use musubi_db::types::japanese::fold;
use uuid::Uuid;

pub use musubi_db::search::{DocKind, Hit, Order};

/// The longest query accepted (characters).
pub const MAX_QUERY_CHARS: usize = 200;
/// Most words (and exclusions) in one query.
pub const MAX_WORDS: usize = 10;
/// Most results on one page.
pub const MAX_PAGE: usize = 50;
/// Counts stop here ("1,000 or more").
pub const COUNT_CAP: i64 = 1000;

/// Stable reasons for a refused query (`INVALID_INPUT` on `q`).
pub mod reason {
    /// Nothing to look for: empty, only exclusions, or only spaces and quotes.
    pub const NO_WORDS: &str = "SEARCH_NO_WORDS";
    pub const TOO_LONG: &str = "SEARCH_TOO_LONG";
    pub const TOO_MANY_WORDS: &str = "SEARCH_TOO_MANY_WORDS";
    pub const BAD_CURSOR: &str = "SEARCH_BAD_CURSOR";
}

/// A query's words, folded.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Parsed {
    pub words: Vec<String>,
    pub excluded: Vec<String>,
}

fn invalid(reason: &'static str, message: &str) -> AppError {
    AppError {
        reasons: vec![reason],
        ..AppError::invalid("q", message)
    }
}

/// Splits a query into words (spaces of any width), phrases (「"…"」, 「“…”」 or 「「…」」) and
/// exclusions (a leading `-`, `－` or `−`), each folded.
pub fn parse(text: &str) -> AppResult<Parsed> {
    if text.chars().count() > MAX_QUERY_CHARS {
        return Err(invalid(reason::TOO_LONG, "the query is too long"));
    }
    let mut parsed = Parsed::default();
    let mut chars = text.chars().peekable();
    loop {
        while chars.peek().is_some_and(|c| c.is_whitespace()) {
            chars.next();
        }
        let Some(&first) = chars.peek() else { break };
        let negative = matches!(first, '-' | '－' | '−');
        if negative {
            chars.next();
        }
        let close = match chars.peek() {
            Some('"') => Some('"'),
            Some('“') => Some('”'),
            Some('「') => Some('」'),
            _ => None,
        };
        let mut raw = String::new();
        match close {
            Some(end) => {
                chars.next();
                for c in chars.by_ref() {
                    if c == end {
                        break;
                    }
                    raw.push(c);
                }
            }
            None => {
                while let Some(&c) = chars.peek() {
                    if c.is_whitespace() {
                        break;
                    }
                    raw.push(c);
                    chars.next();
                }
            }
        }
        let word = fold(&raw);
        if word.is_empty() {
            continue;
        }
        let list = if negative {
            &mut parsed.excluded
        } else {
            &mut parsed.words
        };
        if !list.contains(&word) {
            list.push(word);
        }
    }
    if parsed.words.is_empty() {
        return Err(invalid(reason::NO_WORDS, "nothing to look for"));
    }
    if parsed.words.len() + parsed.excluded.len() > MAX_WORDS {
        return Err(invalid(reason::TOO_MANY_WORDS, "too many words"));
    }
    Ok(parsed)
}

/// What to look for and where.
#[derive(Debug, Clone, Default)]
pub struct SearchInput<'a> {
    pub text: &'a str,
    pub kinds: Option<Vec<DocKind>>,
    /// One group (of the association `association`, which is then the only one searched).
    pub group: Option<(&'a str, GroupId)>,
    pub author: Option<PersonId>,
    pub from: Option<DateTime<Utc>>,
    pub until: Option<DateTime<Utc>>,
    pub order: Order,
    /// The `next` of the previous page.
    pub after: Option<&'a str>,
    pub first: usize,
}

/// One piece of a snippet; `matched` pieces are the query's words.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Piece {
    pub text: String,
    pub matched: bool,
}

/// A result, with the association it is in and a snippet.
#[derive(Debug, Clone)]
pub struct SearchHit {
    pub association: String,
    pub association_name: String,
    pub kind: DocKind,
    pub hit: Hit,
    pub snippet: Vec<Piece>,
}

#[derive(Debug, Clone, Default)]
pub struct SearchResults {
    pub hits: Vec<SearchHit>,
    /// How many match in all (at most [`COUNT_CAP`] per association searched).
    pub total: i64,
    /// The total reached the cap somewhere.
    pub more_than_total: bool,
    /// The cursor of the next page, if there is one.
    pub next: Option<String>,
}

/// `rank:at-micros:id`, the last result of a page.
fn encode_cursor(c: &Cursor) -> String {
    format!("{}:{}:{}", c.rank, c.at.timestamp_micros(), c.id.simple())
}

fn decode_cursor(s: &str) -> AppResult<Cursor> {
    let bad = || invalid(reason::BAD_CURSOR, "this page no longer exists");
    let mut parts = s.splitn(3, ':');
    let rank = parts.next().and_then(|p| p.parse().ok()).ok_or_else(bad)?;
    let at = parts
        .next()
        .and_then(|p| p.parse().ok())
        .and_then(DateTime::from_timestamp_micros)
        .ok_or_else(bad)?;
    let id = parts
        .next()
        .and_then(|p| Uuid::parse_str(p).ok())
        .ok_or_else(bad)?;
    Ok(Cursor { rank, at, id })
}

/// Whether `a` comes before `b` in `order` (the database's order, across associations).
fn before(order: Order, a: &Hit, b: &Hit) -> std::cmp::Ordering {
    let key = |h: &Hit| match order {
        Order::Newest => (0, h.at, h.id),
        Order::Relevance => (h.rank, h.at, h.id),
    };
    key(b).cmp(&key(a))
}

impl Services {
    /// Searches everything `viewer` may read (see the module documentation).
    pub async fn search(
        &self,
        viewer: &Viewer,
        meta: &RequestMeta,
        input: &SearchInput<'_>,
    ) -> AppResult<SearchResults> {
        let parsed = parse(input.text)?;
        let after = input.after.map(decode_cursor).transpose()?;
        let first = input.first.clamp(1, MAX_PAGE);
        let query = Query {
            words: parsed.words.clone(),
            excluded: parsed.excluded.clone(),
            kinds: input.kinds.clone(),
            group: input.group.map(|(_, g)| g),
            author: input.author,
            from: input.from,
            until: input.until,
            order: input.order,
            after,
            limit: i64::try_from(first).unwrap_or(50) + 1,
        };
        let me = viewer.user.id;
        let bit = viewer_bit(viewer).bits();
        // Only associations hosting a group of theirs: a search never looks (or leaves a
        // record) anywhere else, whatever group it names.
        let hosts: Vec<(String, String)> = groups_repo::directory_of(self.db().pool(), me)
            .await?
            .into_iter()
            .filter(|d| d.active > 0)
            .filter(|d| input.group.is_none_or(|(slug, _)| slug == d.slug))
            .map(|d| (d.slug, d.name))
            .collect();
        let mut results = SearchResults::default();
        let mut hits: Vec<(String, String, Hit)> = Vec::new();
        for (slug, name) in hosts {
            let Ok(tenant) = self.db().resolve_tenant(&slug).await else {
                continue;
            };
            let actor = Actor::new(viewer, &tenant, meta);
            let mut c = self.change(&actor).await?;
            let found = repo::find(c.conn(), me, bit, &query).await?;
            // The page's rows carry the count; an empty later page has to ask.
            let count = match (found.first(), query.after) {
                (Some(hit), _) => hit.total.min(COUNT_CAP),
                (None, None) => 0,
                (None, Some(_)) => repo::count(c.conn(), me, bit, &query, COUNT_CAP).await?,
            };
            // A read like any other: on record with what was asked, in each association.
            let entry = c
                .entry(AuditAction::Search)
                .with_detail("query", input.text)
                .with_detail("hits", count);
            c.audit(entry);
            c.commit().await?;
            results.total += count;
            results.more_than_total |= count >= COUNT_CAP;
            hits.extend(found.into_iter().map(|h| (slug.clone(), name.clone(), h)));
        }
        hits.sort_by(|a, b| before(input.order, &a.2, &b.2));
        if hits.len() > first {
            hits.truncate(first);
            results.next = hits.last().map(|(_, _, h)| {
                encode_cursor(&Cursor {
                    rank: h.rank,
                    at: h.at,
                    id: h.id,
                })
            });
        }
        let mut words = parsed.words;
        // Longer words first: 「血圧計」 is marked whole, not as 「血圧」 and 「計」.
        words.sort_by_key(|w| std::cmp::Reverse(w.chars().count()));
        results.hits = hits
            .into_iter()
            .filter_map(|(association, association_name, hit)| {
                let kind = DocKind::from_code(&hit.kind)?;
                Some(SearchHit {
                    snippet: snippet(&hit.text, &words, SNIPPET_CHARS),
                    association,
                    association_name,
                    kind,
                    hit,
                })
            })
            .collect();
        Ok(results)
    }
}

/// About how many characters a snippet shows.
pub const SNIPPET_CHARS: usize = 120;

/// Marks that join the character before them when folded: voiced sound marks (half-width and
/// combining) and variation selectors.
fn joins_previous(c: char) -> bool {
    matches!(
        c,
        '\u{FF9E}' | '\u{FF9F}' | '\u{3099}' | '\u{309A}' | '\u{FE00}'..='\u{FE0F}'
            | '\u{E0100}'..='\u{E01EF}'
    )
}

/// The part of `text` around the first match of `words` (folded), with every match marked.
/// Positions are found by folding `text` a character at a time (with the marks that join it,
/// 「ｶﾞ」 as one), so that each folded character knows where it came from.
pub fn snippet(text: &str, words: &[String], max_chars: usize) -> Vec<Piece> {
    let original: Vec<char> = text.chars().collect();
    // Folded characters and the first original character each came from.
    let mut folded: Vec<char> = Vec::with_capacity(original.len());
    let mut from: Vec<usize> = Vec::with_capacity(original.len());
    // And where each original character's unit ends (so a match covers its marks).
    let mut unit_end: Vec<usize> = (0..original.len()).collect();
    let mut i = 0;
    while i < original.len() {
        let mut end = i + 1;
        while end < original.len() && joins_previous(original[end]) {
            end += 1;
        }
        let unit: String = original[i..end].iter().collect();
        for f in fold(&unit).chars() {
            folded.push(f);
            from.push(i);
        }
        for u in &mut unit_end[i..end] {
            *u = end - 1;
        }
        i = end;
    }
    let mut marked = vec![false; original.len()];
    for word in words {
        let w: Vec<char> = word.chars().collect();
        if w.is_empty() || w.len() > folded.len() {
            continue;
        }
        let mut at = 0;
        while at + w.len() <= folded.len() {
            if folded[at..at + w.len()] == w[..] {
                for m in &mut marked[from[at]..=unit_end[from[at + w.len() - 1]]] {
                    *m = true;
                }
                at += w.len();
            } else {
                at += 1;
            }
        }
    }
    let first = marked.iter().position(|m| *m).unwrap_or(0);
    let lead = max_chars / 4;
    let start = first.saturating_sub(lead);
    let end = (start + max_chars).min(original.len());
    let mut pieces: Vec<Piece> = Vec::new();
    if start > 0 {
        pieces.push(Piece {
            text: "…".into(),
            matched: false,
        });
    }
    for i in start..end {
        let c = if original[i] == '\n' {
            ' '
        } else {
            original[i]
        };
        match pieces.last_mut() {
            Some(p) if p.matched == marked[i] && p.text != "…" => p.text.push(c),
            _ => pieces.push(Piece {
                text: c.to_string(),
                matched: marked[i],
            }),
        }
    }
    if end < original.len() {
        pieces.push(Piece {
            text: "…".into(),
            matched: false,
        });
    }
    pieces
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn words_phrases_and_exclusions() {
        let p = parse("血圧 「BP １５０」 -転倒　ｽﾊﾟｲﾛ").unwrap();
        assert_eq!(p.words, vec!["血圧", "bp150", "すぱいろ"]);
        assert_eq!(p.excluded, vec!["転倒"]);
        let p = parse("\"SpO2 低下\" －発熱").unwrap();
        assert_eq!(p.words, vec!["spo2低下"]);
        assert_eq!(p.excluded, vec!["発熱"]);
        assert_eq!(parse("痰 痰").unwrap().words, vec!["痰"], "once");
    }

    #[test]
    fn nothing_to_look_for_or_too_much() {
        for q in ["", "   ", "-転倒", "\"\"", "「　」"] {
            assert_eq!(
                parse(q).unwrap_err().reasons,
                vec![reason::NO_WORDS],
                "{q:?}"
            );
        }
        let long = "あ".repeat(MAX_QUERY_CHARS + 1);
        assert_eq!(parse(&long).unwrap_err().reasons, vec![reason::TOO_LONG]);
        let many = (0..11)
            .map(|i| format!("w{i}"))
            .collect::<Vec<_>>()
            .join(" ");
        assert_eq!(
            parse(&many).unwrap_err().reasons,
            vec![reason::TOO_MANY_WORDS]
        );
    }

    #[test]
    fn cursors_round_trip_and_bad_ones_are_refused() {
        let c = Cursor {
            rank: 2003,
            at: DateTime::from_timestamp_micros(1_700_000_000_123_456).unwrap(),
            id: Uuid::now_v7(),
        };
        assert_eq!(decode_cursor(&encode_cursor(&c)).unwrap(), c);
        for bad in ["", "x", "1:2", "1:2:not-a-uuid", "a:b:c"] {
            assert!(decode_cursor(bad).is_err(), "{bad}");
        }
    }

    fn marked(pieces: &[Piece]) -> Vec<&str> {
        pieces
            .iter()
            .filter(|p| p.matched)
            .map(|p| p.text.as_str())
            .collect()
    }

    #[test]
    fn snippets_mark_words_in_the_text_as_written() {
        let s = snippet(
            "本日のＢＰ　１５０／９０、SpO2 96%。",
            &["bp".into(), "150".into()],
            120,
        );
        assert_eq!(marked(&s), vec!["ＢＰ", "１５０"]);
        let s = snippet("ケアマネージャーさんへ", &["けあまね".into()], 120);
        assert_eq!(marked(&s), vec!["ケアマネ"]);
        let s = snippet("ｶﾞｰｾﾞ交換済", &["がーぜ".into()], 120);
        assert_eq!(marked(&s), vec!["ｶﾞｰｾﾞ"]);
        // A long text is cut around the first match.
        let long = format!("{}褥瘡{}", "あ".repeat(300), "い".repeat(300));
        let s = snippet(&long, &["褥瘡".into()], 40);
        assert_eq!(s.first().unwrap().text, "…");
        assert_eq!(s.last().unwrap().text, "…");
        assert_eq!(marked(&s), vec!["褥瘡"]);
        let shown: usize = s.iter().map(|p| p.text.chars().count()).sum();
        assert!(shown <= 42, "{shown}");
    }
}
