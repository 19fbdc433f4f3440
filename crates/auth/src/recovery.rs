//! Single-use recovery codes for when the second factor is lost.
//!
//! A code is 10 characters of Crockford's base32 (no I, L, O, U), shown as `xxxx-xxxx-xx`:
//! 50 random bits. Only a salted SHA-256 is stored. A slow hash is not needed at this
//! entropy: online guessing is rate-limited, and an offline search of 2^50 per account
//! (the account id salts each hash) costs more than what a stolen database already holds,
//! since the TOTP secret sits next to these hashes.

use crate::{random_bytes, RandomError};
use sha2::{Digest, Sha256};
use std::fmt;
use subtle::ConstantTimeEq;
use uuid::Uuid;

/// Codes issued at a time.
pub const CODE_COUNT: usize = 10;
/// Characters in a code (5 bits each).
pub const CODE_CHARS: usize = 10;
/// Crockford's base32 alphabet, lower case: no i, l, o or u to misread.
const ALPHABET: &[u8; 32] = b"0123456789abcdefghjkmnpqrstvwxyz";
const HASH_DOMAIN: &[u8] = b"musubi recovery code v1\0";

/// Freshly generated codes: show `codes` once, store `hashes`.
pub struct RecoveryCodes {
    pub codes: Vec<String>,
    pub hashes: Vec<[u8; 32]>,
}

impl fmt::Debug for RecoveryCodes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RecoveryCodes")
            .field("codes", &"<redacted>")
            .field("hashes", &self.hashes.len())
            .finish()
    }
}

/// Ten new codes for `account`. Issuing a new set must replace the old one.
pub fn generate(account: Uuid) -> Result<RecoveryCodes, RandomError> {
    let mut codes = Vec::with_capacity(CODE_COUNT);
    let mut hashes = Vec::with_capacity(CODE_COUNT);
    for _ in 0..CODE_COUNT {
        let raw = random_bytes::<CODE_CHARS>()?;
        // 256 is a multiple of 32, so masking keeps every character equally likely.
        let chars: String = raw
            .iter()
            .map(|b| char::from(ALPHABET[usize::from(b & 31)]))
            .collect();
        hashes.push(hash_normalized(account, &chars));
        codes.push(format!("{}-{}-{}", &chars[..4], &chars[4..8], &chars[8..]));
    }
    Ok(RecoveryCodes { codes, hashes })
}

/// Brings typed input to the canonical form: drops spaces and hyphens (also full-width),
/// folds case and full-width letters, and reads I/L as 1 and O as 0 as Crockford intends.
/// `None` if it cannot be a code.
pub fn normalize(input: &str) -> Option<String> {
    if input.len() > 64 {
        return None;
    }
    let mut out = String::with_capacity(CODE_CHARS);
    for c in input.chars() {
        // Full-width ASCII (U+FF01..U+FF5E) maps to ASCII by a fixed offset.
        let c = match c {
            '\u{FF01}'..='\u{FF5E}' => char::from_u32(c as u32 - 0xFEE0).unwrap_or(c),
            _ => c,
        };
        let c = match c.to_ascii_lowercase() {
            ' ' | '\t' | '-' | '\u{3000}' | '\u{2010}' | '\u{2212}' | 'ー' => continue,
            'i' | 'l' => '1',
            'o' => '0',
            c if c.is_ascii() && ALPHABET.contains(&(c as u8)) => c,
            _ => return None,
        };
        out.push(c);
    }
    (out.len() == CODE_CHARS).then_some(out)
}

/// The stored hash of a code as typed, or `None` if the input cannot be a code.
pub fn hash(account: Uuid, input: &str) -> Option<[u8; 32]> {
    normalize(input).map(|code| hash_normalized(account, &code))
}

/// Index of the stored hash that `input` matches, checking every entry so the time does
/// not depend on which one matched. The caller deletes that entry: codes are single-use.
pub fn find_match(account: Uuid, input: &str, stored: &[[u8; 32]]) -> Option<usize> {
    let candidate = hash(account, input)?;
    let mut found = None;
    for (i, h) in stored.iter().enumerate() {
        if bool::from(h.ct_eq(&candidate)) {
            found = Some(i);
        }
    }
    found
}

fn hash_normalized(account: Uuid, code: &str) -> [u8; 32] {
    let mut h = Sha256::new();
    h.update(HASH_DOMAIN);
    h.update(account.as_bytes());
    h.update(code.as_bytes());
    h.finalize().into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ten_distinct_codes_in_the_display_format() {
        let set = generate(Uuid::new_v4()).unwrap();
        assert_eq!(set.codes.len(), 10);
        assert_eq!(set.hashes.len(), 10);
        for code in &set.codes {
            assert_eq!(code.len(), 12);
            let parts: Vec<_> = code.split('-').map(str::len).collect();
            assert_eq!(parts, [4, 4, 2]);
            assert!(code
                .chars()
                .all(|c| c == '-' || ALPHABET.contains(&(c as u8))));
        }
        let mut unique = set.codes.clone();
        unique.sort();
        unique.dedup();
        assert_eq!(unique.len(), 10);
        assert!(!format!("{set:?}").contains(&set.codes[0]));
    }

    #[test]
    fn each_code_matches_its_own_hash_however_it_is_typed() {
        let account = Uuid::new_v4();
        let set = generate(account).unwrap();
        for (i, code) in set.codes.iter().enumerate() {
            assert_eq!(find_match(account, code, &set.hashes), Some(i));
            let sloppy = format!(" {} ", code.to_uppercase().replace('-', " "));
            assert_eq!(find_match(account, &sloppy, &set.hashes), Some(i));
        }
    }

    #[test]
    fn confusable_and_full_width_characters_are_folded() {
        assert_eq!(normalize("abcd-ef01-23").as_deref(), Some("abcdef0123"));
        assert_eq!(normalize("ABCD EFOI 23").as_deref(), Some("abcdef0123"));
        assert_eq!(
            normalize("ＡＢＣＤ－ＥＦＯＬ－２３").as_deref(),
            Some("abcdef0123")
        );
    }

    #[test]
    fn non_codes_are_rejected() {
        for bad in [
            "",
            "abcd-efgh",
            "abcd-efgh-jkm",
            "abcd-efgh-ju",
            "あいうえおかきくけこ",
        ] {
            assert_eq!(normalize(bad), None, "{bad}");
        }
        assert_eq!(find_match(Uuid::new_v4(), &"a".repeat(100_000), &[]), None);
    }

    #[test]
    fn a_code_of_one_account_does_not_match_another() {
        let a = Uuid::new_v4();
        let set = generate(a).unwrap();
        assert_eq!(find_match(Uuid::new_v4(), &set.codes[0], &set.hashes), None);
    }
}
