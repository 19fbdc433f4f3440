//! Comment text as HTML: everything escaped, http(s) addresses made into links, nothing else.
//! Line breaks stay as they are; the page shows them with `white-space: pre-wrap`.

/// Escapes `text` for an HTML text node or a quoted attribute value.
pub(crate) fn escape(text: &str, out: &mut String) {
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            _ => out.push(c),
        }
    }
}

/// The escaped text with every `http://` and `https://` address as a link. Only those two
/// schemes: `javascript:`, `data:` and the like stay plain text.
pub(crate) fn linkify(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + text.len() / 8);
    let mut rest = text;
    while let Some((start, end)) = next_link(rest) {
        escape(&rest[..start], &mut out);
        let url = &rest[start..end];
        out.push_str("<a href=\"");
        escape(url, &mut out);
        // A new tab keeps this page, and a reply being written, where it was.
        out.push_str("\" rel=\"noopener noreferrer nofollow\" target=\"_blank\">");
        escape(url, &mut out);
        out.push_str("</a>");
        rest = &rest[end..];
    }
    escape(rest, &mut out);
    out
}

/// The byte range of the first link in `text`, if any.
fn next_link(text: &str) -> Option<(usize, usize)> {
    let lower = text.to_ascii_lowercase();
    let mut from = 0;
    loop {
        let found = ["http://", "https://"]
            .iter()
            .filter_map(|p| lower[from..].find(p).map(|i| (from + i, p.len())))
            .min_by_key(|(i, _)| *i)?;
        let (start, prefix_len) = found;
        // Only at the start of a word: "xhttp://" is not a link.
        let word_start = text[..start]
            .chars()
            .next_back()
            .is_none_or(|c| !c.is_ascii_alphanumeric());
        let end = start + url_len(&text[start..]);
        if word_start && end > start + prefix_len {
            return Some((start, end));
        }
        from = start + prefix_len;
    }
}

/// How much of `s` (which starts with the scheme) belongs to the address: printable ASCII up
/// to a space or a character that cannot be in one, without trailing punctuation (the full
/// stop of the sentence, a closing bracket that was not opened inside the address).
fn url_len(s: &str) -> usize {
    let mut end = s
        .char_indices()
        .find(|(_, c)| !c.is_ascii_graphic() || matches!(c, '<' | '>' | '"' | '\'' | '`'))
        .map_or(s.len(), |(i, _)| i);
    loop {
        let Some(last) = s[..end].chars().next_back() else {
            return end;
        };
        let strip = match last {
            '.' | ',' | ';' | ':' | '!' | '?' => true,
            ')' => s[..end].matches('(').count() < s[..end].matches(')').count(),
            ']' => s[..end].matches('[').count() < s[..end].matches(']').count(),
            _ => false,
        };
        if !strip {
            return end;
        }
        end -= 1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn everything_is_escaped() {
        assert_eq!(
            linkify("<script>alert('x')</script> & \"q\""),
            "&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt; &amp; &quot;q&quot;"
        );
    }

    #[test]
    fn http_and_https_addresses_become_links() {
        let html = linkify("資料: https://example.org/a?b=1&c=2。確認してください");
        assert!(html.starts_with("資料: <a href=\"https://example.org/a?b=1&amp;c=2\""));
        assert!(html.contains(">https://example.org/a?b=1&amp;c=2</a>。確認してください"));
        let html = linkify("see http://example.org/x.");
        assert!(html.contains("href=\"http://example.org/x\""));
        assert!(html.ends_with("</a>."));
        let html = linkify("(https://example.org/wiki/A_(b))");
        assert!(html.contains("href=\"https://example.org/wiki/A_(b)\""));
        assert!(html.ends_with("</a>)"));
        assert!(linkify("HTTPS://EXAMPLE.ORG").contains("<a href=\"HTTPS://EXAMPLE.ORG\""));
    }

    #[test]
    fn other_schemes_and_lookalikes_stay_text() {
        for text in [
            "javascript:alert(1)",
            "data:text/html,<b>x</b>",
            "xhttps://example.org",
            "https://",
            "ftp://example.org",
        ] {
            let html = linkify(text);
            assert!(!html.contains("<a "), "{text} -> {html}");
            assert!(!html.contains('<') || html.contains("&lt;"), "{text}");
        }
        // Markup in the text stays text; only the address inside becomes a link.
        let html = linkify("<a href=\"https://evil.example\">x</a>");
        assert!(html.starts_with("&lt;a href=&quot;<a href=\"https://evil.example\""));
        assert!(html.ends_with("&quot;&gt;x&lt;/a&gt;"));
        // An address cannot break out of its attribute.
        let html = linkify("https://example.org/\"onmouseover=alert(1)");
        assert!(html.contains("href=\"https://example.org/\""));
        assert!(!html.contains("\"onmouseover"));
    }

    #[test]
    fn line_breaks_are_kept() {
        assert_eq!(linkify("一行目\n二行目"), "一行目\n二行目");
    }
}
