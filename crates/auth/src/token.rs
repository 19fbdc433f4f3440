//! Opaque random tokens for sessions, invitations, password resets and CSRF.
//!
//! The token goes to the user; the database keeps only `hash_token(token)`, so a leaked
//! table cannot be replayed. 256 random bits make a plain SHA-256 sufficient: there is
//! nothing to brute-force, so a slow hash would only cost CPU on every request.

use crate::{random_bytes, RandomError};
use data_encoding::BASE64URL_NOPAD;
use sha2::{Digest, Sha256};
use std::fmt;
use subtle::ConstantTimeEq;

/// Random bytes in a token.
pub const TOKEN_BYTES: usize = 32;
/// Length of a token's text: 32 bytes in unpadded base64url.
pub const TOKEN_LEN: usize = 43;

/// A freshly generated token. `Debug` hides it so it cannot end up in logs.
#[derive(Clone, PartialEq, Eq)]
pub struct Token(String);

impl Token {
    /// 32 bytes from the OS RNG, base64url without padding.
    pub fn generate() -> Result<Self, RandomError> {
        let bytes = random_bytes::<TOKEN_BYTES>()?;
        Ok(Self(BASE64URL_NOPAD.encode(&bytes)))
    }

    /// The text to hand to the user (cookie, link, form field).
    pub fn as_str(&self) -> &str {
        &self.0
    }

    pub fn into_string(self) -> String {
        self.0
    }

    /// What the database stores.
    pub fn hash(&self) -> [u8; 32] {
        hash_token(&self.0)
    }
}

impl fmt::Debug for Token {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Token(<redacted>)")
    }
}

/// SHA-256 of a token's text, for storage and lookup.
pub fn hash_token(token: &str) -> [u8; 32] {
    Sha256::digest(token.as_bytes()).into()
}

/// Whether `candidate` has the shape of a token we issue. Lets callers reject junk
/// before touching the database.
pub fn is_well_formed(candidate: &str) -> bool {
    candidate.len() == TOKEN_LEN
        && candidate
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// A token as it is written into a page: XORed with a fresh random pad that travels with it,
/// so that no two answers carry the same bytes. A compressed page then tells an eavesdropper
/// nothing about the token from its size (BREACH).
pub fn mask(token: &str) -> Result<String, RandomError> {
    let pad = random_bytes::<TOKEN_LEN>()?;
    let mut out = Vec::with_capacity(2 * TOKEN_LEN);
    out.extend_from_slice(&pad);
    out.extend(token.bytes().zip(pad.iter()).map(|(t, p)| t ^ p));
    Ok(BASE64URL_NOPAD.encode(&out))
}

/// The token a [`mask`]ed value carries; `None` when it is not one.
pub fn unmask(masked: &str) -> Option<String> {
    let bytes = BASE64URL_NOPAD.decode(masked.as_bytes()).ok()?;
    if bytes.len() != 2 * TOKEN_LEN {
        return None;
    }
    let (pad, body) = bytes.split_at(TOKEN_LEN);
    let token: Vec<u8> = body.iter().zip(pad).map(|(b, p)| b ^ p).collect();
    String::from_utf8(token).ok().filter(|t| is_well_formed(t))
}

/// Compares two secrets without leaking through timing where they differ (only whether
/// the lengths differ), e.g. a CSRF token from a form against the session's.
pub fn constant_time_eq(a: &str, b: &str) -> bool {
    a.as_bytes().ct_eq(b.as_bytes()).into()
}

#[cfg(test)]
mod tests {

    #[test]
    fn a_masked_token_differs_every_time_and_unmasks_to_the_token() {
        let token = Token::generate().expect("random").into_string();
        let (a, b) = (mask(&token).expect("a"), mask(&token).expect("b"));
        assert_ne!(a, b, "a fresh pad each time");
        assert!(!a.contains(&token));
        assert_eq!(unmask(&a).as_deref(), Some(token.as_str()));
        assert_eq!(unmask(&b).as_deref(), Some(token.as_str()));
        // Not a masked token: the plain token, garbage, a flipped bit.
        assert_eq!(unmask(&token), None);
        assert_eq!(unmask("!!"), None);
        let mut bytes = BASE64URL_NOPAD.decode(a.as_bytes()).expect("decodes");
        bytes[TOKEN_LEN] ^= 0x80;
        assert_eq!(
            unmask(&BASE64URL_NOPAD.encode(&bytes)),
            None,
            "no longer well formed"
        );
    }

    use super::*;

    #[test]
    fn generated_tokens_are_43_url_safe_characters_and_unique() {
        let a = Token::generate().unwrap();
        let b = Token::generate().unwrap();
        assert_eq!(a.as_str().len(), TOKEN_LEN);
        assert!(is_well_formed(a.as_str()));
        assert_ne!(a, b);
    }

    #[test]
    fn hash_is_sha256_of_the_text() {
        let t = Token::generate().unwrap();
        assert_eq!(t.hash(), hash_token(t.as_str()));
        // Known answer: SHA-256("abc").
        assert_eq!(
            hex::encode(hash_token("abc")),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }

    #[test]
    fn debug_output_does_not_reveal_the_token() {
        let t = Token::generate().unwrap();
        assert!(!format!("{t:?}").contains(t.as_str()));
    }

    #[test]
    fn malformed_tokens_are_recognised() {
        assert!(!is_well_formed(""));
        assert!(!is_well_formed(&"a".repeat(44)));
        assert!(!is_well_formed(&format!("{}=", "a".repeat(42))));
        assert!(!is_well_formed(&format!("{}あ", "a".repeat(40))));
    }

    #[test]
    fn constant_time_comparison_matches_equality() {
        assert!(constant_time_eq("abc", "abc"));
        assert!(!constant_time_eq("abc", "abd"));
        assert!(!constant_time_eq("abc", "abcd"));
        assert!(constant_time_eq("", ""));
    }
}
