//! The one folding of Japanese text for matching: what a person types into a search box and
//! what is stored are both folded by [`fold`], and only folded forms are compared.
//!
//! Stored tables keep the folded form in a column of its own, written from Rust, so that the
//! Unicode tables of Rust and of PostgreSQL can never disagree about a match.

use unicode_normalization::UnicodeNormalization;

/// Folds text for matching:
///
/// - NFKC: full-width Latin letters and digits become ASCII, half-width katakana become
///   full-width (with their voiced marks composed), compatibility ideographs become their
///   unified forms, and the ideographic space becomes a space;
/// - lower case;
/// - katakana become hiragana (ヤマダ and やまだ match);
/// - white space of every kind is removed (「山田 太郎」 and 「山田太郎」 match);
/// - variation selectors are removed (葛󠄀 with its selector is 葛).
///
/// What NFKC does not fold (異体字 such as 髙 and 高, 﨑 and 崎) stays as typed.
pub fn fold(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.nfkc() {
        if c.is_whitespace() || matches!(c, '\u{FE00}'..='\u{FE0F}' | '\u{E0100}'..='\u{E01EF}') {
            continue;
        }
        for l in c.to_lowercase() {
            out.push(katakana_to_hiragana(l));
        }
    }
    out
}

/// ァ (U+30A1) … ヶ (U+30F6) map to ぁ (U+3041) … ゖ (U+3096); ヽヾ to ゝゞ. ー and ・ are shared
/// by both scripts and stay.
fn katakana_to_hiragana(c: char) -> char {
    match c {
        '\u{30A1}'..='\u{30F6}' | '\u{30FD}' | '\u{30FE}' => {
            char::from_u32(c as u32 - 0x60).unwrap_or(c)
        }
        _ => c,
    }
}

/// The search grams of folded text: every character and every pair of adjacent characters, as
/// integers, sorted and without repeats. A character is its code point (positive); a pair is
/// a hash with the top bit set (negative), so the two never meet. A line break separates
/// segments (a file's name and its text): no pair spans it.
///
/// Stored in the database: changing these numbers requires rebuilding every search index.
pub fn grams(folded: &str) -> Vec<i32> {
    let mut out = Vec::new();
    for segment in folded.split('\n') {
        let mut prev: Option<char> = None;
        for c in segment.chars() {
            out.push(unigram(c));
            if let Some(p) = prev {
                out.push(bigram(p, c));
            }
            prev = Some(c);
        }
    }
    out.sort_unstable();
    out.dedup();
    out
}

/// The grams a folded word needs a text to have: its character if it has one, else its pairs.
pub fn query_grams(word: &str) -> Vec<i32> {
    let chars: Vec<char> = word.chars().collect();
    let mut out: Vec<i32> = match chars.as_slice() {
        [] => Vec::new(),
        [c] => vec![unigram(*c)],
        _ => chars.windows(2).map(|w| bigram(w[0], w[1])).collect(),
    };
    out.sort_unstable();
    out.dedup();
    out
}

fn unigram(c: char) -> i32 {
    // Code points end at U+10FFFF: always positive.
    c as i32
}

fn bigram(a: char, b: char) -> i32 {
    let x = (u64::from(a as u32) << 21) | u64::from(b as u32);
    let h = (x.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 32) as u32;
    (h | 0x8000_0000) as i32
}

/// Whether `text` is kana only (hiragana, katakana, the prolonged sound mark and spaces), as a
/// reading (ふりがな) must be.
pub fn is_kana(text: &str) -> bool {
    text.nfkc().all(|c| {
        c.is_whitespace()
            || matches!(c, '\u{3041}'..='\u{3096}' | '\u{309D}' | '\u{309E}')
            || matches!(c, '\u{30A1}'..='\u{30FA}' | '\u{30FC}'..='\u{30FE}')
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn widths_scripts_case_and_spaces_fold_alike() {
        let forms = ["ｶﾀｶﾅ", "カタカナ", "かたかな", " カタ　カナ "];
        for f in forms {
            assert_eq!(fold(f), "かたかな", "{f}");
        }
        assert_eq!(fold("ﾀﾞｲｽｹ"), "だいすけ");
        assert_eq!(fold("ＳｐＯ２　低下"), "spo2低下");
        assert_eq!(fold("BP １５０"), "bp150");
        assert_eq!(fold("ヤマダ タロウ"), fold("やまだたろう"));
        assert_eq!(fold("葛\u{E0100}飾"), "葛飾");
    }

    #[test]
    fn kanji_stay_and_compatibility_forms_unify() {
        assert_eq!(fold("山田 太郎"), "山田太郎");
        // U+F9DC (a compatibility ideograph) is U+9686 隆 after NFKC.
        assert_eq!(fold("\u{F9DC}"), "隆");
        // ㈱ and ① are compatibility characters too.
        assert_eq!(fold("㈱"), "(株)");
        assert_eq!(fold("①"), "1");
    }

    #[test]
    fn prolonged_mark_and_small_kana() {
        assert_eq!(fold("ケアマネージャー"), "けあまねーじゃー");
        assert_eq!(fold("ヴ"), "ゔ");
        assert_eq!(fold("ヶ"), "ゖ");
    }

    #[test]
    fn grams_are_characters_and_pairs_and_never_span_a_segment() {
        let g = grams("血圧\n測定");
        assert_eq!(g.len(), 6, "4 characters and 2 pairs: {g:?}");
        for word in ["血", "血圧", "測定", "定"] {
            assert!(query_grams(word).iter().all(|q| g.contains(q)), "{word}");
        }
        // The pair across the line break is not there.
        assert!(!query_grams("圧測").iter().all(|q| g.contains(q)));
        assert_eq!(grams("ああああ").len(), 2, "repeats once");
        assert!(query_grams("").is_empty());
        // Characters positive, pairs negative.
        assert!(grams("血圧").iter().filter(|g| **g > 0).count() == 2);
    }

    #[test]
    fn kana_only_readings() {
        assert!(is_kana("やまだ たろう"));
        assert!(is_kana("ヤマダ　タロウ"));
        assert!(is_kana("ｶﾀｶﾅ"));
        assert!(!is_kana("山田"));
        assert!(!is_kana("yamada"));
    }
}
