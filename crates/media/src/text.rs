//! Text for search: decoding plain-text files, and the normalisation every extracted text gets.

use encoding_rs::{Encoding, SHIFT_JIS, UTF_16BE, UTF_16LE};
use unicode_normalization::UnicodeNormalization;

/// The text of a plain-text file: UTF-8 (with or without BOM), UTF-16 LE/BE with a BOM, else
/// Shift_JIS (Windows-31J) when it decodes without errors, else UTF-8 with replacement
/// characters. NFKC-normalised (half-width ｶﾅ become カナ, full-width ＡＢＣ become ABC), control
/// characters other than newline and tab removed, at most `max_chars` characters.
pub fn plain_text(bytes: &[u8], max_chars: usize) -> String {
    let decoded = if let Some(rest) = bytes.strip_prefix(b"\xEF\xBB\xBF") {
        String::from_utf8_lossy(rest)
    } else if let Some(rest) = bytes.strip_prefix(b"\xFF\xFE") {
        decode(UTF_16LE, rest)
    } else if let Some(rest) = bytes.strip_prefix(b"\xFE\xFF") {
        decode(UTF_16BE, rest)
    } else if let Ok(text) = std::str::from_utf8(bytes) {
        text.into()
    } else if let Some(text) = SHIFT_JIS.decode_without_bom_handling_and_without_replacement(bytes)
    {
        text
    } else {
        String::from_utf8_lossy(bytes)
    };
    normalise(&decoded, max_chars)
}

fn decode<'a>(encoding: &'static Encoding, bytes: &'a [u8]) -> std::borrow::Cow<'a, str> {
    encoding.decode_without_bom_handling(bytes).0
}

/// NFKC; CR LF, CR and form feed (a page break) become newlines; other control characters and
/// byte order marks are removed; at most `max_chars` characters.
pub(crate) fn normalise(text: &str, max_chars: usize) -> String {
    let mut previous_cr = false;
    text.nfkc()
        .filter_map(|c| {
            let after_cr = std::mem::replace(&mut previous_cr, c == '\r');
            match c {
                '\n' if after_cr => None,
                '\r' | '\u{c}' => Some('\n'),
                '\n' | '\t' => Some(c),
                '\u{feff}' => None,
                c if c.is_control() => None,
                c => Some(c),
            }
        })
        .take(max_chars)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn line_ends_become_newlines_and_controls_go() {
        assert_eq!(
            normalise("a\r\nb\rc\u{c}d\u{0}e\u{7f}\tf", 100),
            "a\nb\nc\nde\tf"
        );
    }

    #[test]
    fn the_cap_counts_characters_after_normalisation() {
        assert_eq!(normalise("ｶﾞｷﾞｸﾞ", 2), "ガギ");
    }

    #[test]
    fn utf16_with_a_bom_decodes() {
        let mut le = vec![0xFF, 0xFE];
        le.extend("褥瘡".encode_utf16().flat_map(u16::to_le_bytes));
        assert_eq!(plain_text(&le, 10), "褥瘡");
        let mut be = vec![0xFE, 0xFF];
        be.extend("褥瘡".encode_utf16().flat_map(u16::to_be_bytes));
        assert_eq!(plain_text(&be, 10), "褥瘡");
    }
}
