//! TOTP (RFC 6238) as authenticator apps support it: HMAC-SHA-1, 6 digits, 30-second steps.
//!
//! Written on `hmac` + `sha1` rather than `totp-rs`: the algorithm is a few lines, both
//! crates are already in the dependency tree, `totp-rs` 6 needs a newer Rust than the
//! workspace's, and its `check` answers only yes/no while replay protection needs the
//! matched time step.

use crate::{random_bytes, RandomError};
use data_encoding::BASE32_NOPAD;
use hmac::{Hmac, Mac};
use percent_encoding::{utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};
use qrcode::{render::svg, EcLevel, QrCode};
use sha1::Sha1;
use std::fmt;
use std::time::{SystemTime, UNIX_EPOCH};
use subtle::ConstantTimeEq;

pub const ISSUER: &str = "Musubi";
pub const DIGITS: usize = 6;
pub const STEP_SECONDS: u64 = 30;
/// 160 bits, the HMAC-SHA-1 block-friendly size RFC 4226 recommends.
pub const SECRET_BYTES: usize = 20;
/// Steps accepted either side of now, for clock drift and slow typing.
pub const SKEW_STEPS: u64 = 1;

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum TotpError {
    /// Not six digits.
    #[error("the code is not six digits")]
    Malformed,
    /// Six digits, but not the current code.
    #[error("the code is wrong")]
    Wrong,
    /// The code was right but its time step was already used (or an older one).
    #[error("the code was already used")]
    Reused,
    /// A stored secret of the wrong length.
    #[error("the stored secret is invalid")]
    InvalidSecret,
    #[error("could not render the QR code")]
    QrCode,
    #[error(transparent)]
    Random(#[from] RandomError),
}

impl TotpError {
    pub fn code(&self) -> &'static str {
        match self {
            Self::Malformed | Self::Wrong => "INVALID_CODE",
            Self::Reused => "CODE_ALREADY_USED",
            Self::InvalidSecret | Self::QrCode | Self::Random(_) => "INTERNAL",
        }
    }
}

/// A TOTP shared secret. `Debug` hides it; store it encrypted.
#[derive(Clone, PartialEq, Eq)]
pub struct TotpSecret([u8; SECRET_BYTES]);

impl TotpSecret {
    pub fn generate() -> Result<Self, RandomError> {
        random_bytes::<SECRET_BYTES>().map(Self)
    }

    /// Restores a secret from storage.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, TotpError> {
        bytes
            .try_into()
            .map(Self)
            .map_err(|_| TotpError::InvalidSecret)
    }

    pub fn as_bytes(&self) -> &[u8; SECRET_BYTES] {
        &self.0
    }

    /// Base32 (RFC 4648, no padding), for typing into an app by hand.
    pub fn to_base32(&self) -> String {
        BASE32_NOPAD.encode(&self.0)
    }

    /// `otpauth://` URI (Google's key-URI format) for the enrolment QR code.
    pub fn provisioning_uri(&self, account_email: &str) -> String {
        format!(
            "otpauth://totp/{issuer}:{account}?secret={secret}&issuer={issuer}&algorithm=SHA1&digits={DIGITS}&period={STEP_SECONDS}",
            issuer = encode_uri_component(ISSUER),
            account = encode_uri_component(account_email),
            secret = self.to_base32(),
        )
    }

    /// The code for one time step.
    pub fn code_at_step(&self, step: u64) -> String {
        format!("{:0width$}", hotp(&self.0, step), width = DIGITS)
    }

    /// Checks `code` against the steps around `now`. On success returns the matched step:
    /// the caller stores it and passes it as `last_used_step` next time, so a code (or an
    /// older one) cannot be used twice.
    pub fn verify(
        &self,
        code: &str,
        now: SystemTime,
        last_used_step: Option<u64>,
    ) -> Result<u64, TotpError> {
        let code = normalize_code(code).ok_or(TotpError::Malformed)?;
        let current = time_step(now);
        let mut matched: Option<u64> = None;
        // Compare every candidate, so timing does not tell which step matched.
        for step in current.saturating_sub(SKEW_STEPS)..=current.saturating_add(SKEW_STEPS) {
            let expected = self.code_at_step(step);
            if bool::from(expected.as_bytes().ct_eq(code.as_bytes())) {
                matched = Some(step);
            }
        }
        let step = matched.ok_or(TotpError::Wrong)?;
        if last_used_step.is_some_and(|last| step <= last) {
            return Err(TotpError::Reused);
        }
        Ok(step)
    }
}

impl fmt::Debug for TotpSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("TotpSecret(<redacted>)")
    }
}

/// The RFC 6238 time step containing `now`.
pub fn time_step(now: SystemTime) -> u64 {
    // A clock before 1970 is a broken host, not input; step 0 then simply fails to match.
    now.duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() / STEP_SECONDS)
}

/// Renders `uri` as a standalone SVG document with no script or inline style, so it works
/// under a strict CSP both served as `image/svg+xml` and embedded as markup.
pub fn qr_code_svg(uri: &str) -> Result<String, TotpError> {
    let qr = QrCode::with_error_correction_level(uri.as_bytes(), EcLevel::M)
        .map_err(|_| TotpError::QrCode)?;
    let svg = qr
        .render::<svg::Color<'_>>()
        .min_dimensions(240, 240)
        .quiet_zone(true)
        .build();
    // An XML declaration is invalid inside HTML; the SVG needs none.
    let body = match svg.find("<svg") {
        Some(i) => svg[i..].to_owned(),
        None => svg,
    };
    Ok(body)
}

/// RFC 4226 HOTP value (before zero-padding) for `counter`.
fn hotp(key: &[u8], counter: u64) -> u32 {
    // HMAC takes keys of any length, so this cannot fail; 0 keeps it total without a panic.
    let Ok(mut mac) = <Hmac<Sha1> as Mac>::new_from_slice(key) else {
        return 0;
    };
    mac.update(&counter.to_be_bytes());
    let digest = mac.finalize().into_bytes();
    // Dynamic truncation: the low nibble of the last byte picks four bytes.
    let offset = usize::from(digest[digest.len() - 1] & 0x0f);
    let word = u32::from_be_bytes([
        digest[offset] & 0x7f,
        digest[offset + 1],
        digest[offset + 2],
        digest[offset + 3],
    ]);
    word % 10u32.pow(DIGITS as u32)
}

/// Accepts what people type: spaces and hyphens ("123 456"), full-width digits from a
/// Japanese IME. Returns the six ASCII digits, or `None`.
fn normalize_code(input: &str) -> Option<String> {
    if input.len() > 64 {
        return None;
    }
    let mut out = String::with_capacity(DIGITS);
    for c in input.chars() {
        match c {
            '0'..='9' => out.push(c),
            '０'..='９' => out.push(char::from(b'0' + (c as u32 - '０' as u32) as u8)),
            ' ' | '\u{3000}' | '-' | '\t' => {}
            _ => return None,
        }
    }
    (out.len() == DIGITS).then_some(out)
}

/// Percent-encodes everything but RFC 3986 unreserved characters.
fn encode_uri_component(s: &str) -> String {
    const COMPONENT: &AsciiSet = &NON_ALPHANUMERIC
        .remove(b'-')
        .remove(b'.')
        .remove(b'_')
        .remove(b'~');
    utf8_percent_encode(s, COMPONENT).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn rfc_secret() -> TotpSecret {
        TotpSecret::from_bytes(b"12345678901234567890").unwrap()
    }

    fn at(secs: u64) -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(secs)
    }

    #[test]
    fn codes_match_the_rfc_6238_sha1_test_vectors() {
        // RFC 6238 appendix B gives 8 digits; 6-digit codes are their last six.
        let s = rfc_secret();
        for (t, expected) in [
            (59, "287082"),
            (1_111_111_109, "081804"),
            (1_111_111_111, "050471"),
            (1_234_567_890, "005924"),
            (2_000_000_000, "279037"),
            (20_000_000_000, "353130"),
        ] {
            assert_eq!(s.code_at_step(time_step(at(t))), expected, "t={t}");
        }
    }

    #[test]
    fn current_and_adjacent_steps_are_accepted_and_the_step_is_returned() {
        let s = rfc_secret();
        let now = at(1_234_567_890);
        let step = time_step(now);
        for candidate in [step - 1, step, step + 1] {
            let code = s.code_at_step(candidate);
            assert_eq!(s.verify(&code, now, None), Ok(candidate));
        }
        let stale = s.code_at_step(step - 2);
        assert_eq!(s.verify(&stale, now, None), Err(TotpError::Wrong));
        let future = s.code_at_step(step + 2);
        assert_eq!(s.verify(&future, now, None), Err(TotpError::Wrong));
    }

    #[test]
    fn a_code_cannot_be_used_twice_nor_an_older_one_after_it() {
        let s = rfc_secret();
        let now = at(1_234_567_890);
        let step = time_step(now);
        let used = s.verify(&s.code_at_step(step), now, None).unwrap();
        let again = s.verify(&s.code_at_step(step), now, Some(used));
        assert_eq!(again, Err(TotpError::Reused));
        assert_eq!(again.unwrap_err().code(), "CODE_ALREADY_USED");
        let older = s.verify(&s.code_at_step(step - 1), now, Some(used));
        assert_eq!(older, Err(TotpError::Reused));
        assert_eq!(
            s.verify(&s.code_at_step(step + 1), now, Some(used)),
            Ok(step + 1)
        );
    }

    #[test]
    fn typed_variants_of_a_code_are_accepted() {
        let s = rfc_secret();
        let now = at(59);
        assert_eq!(s.verify("287 082", now, None), Ok(1));
        assert_eq!(s.verify("２８７０８２", now, None), Ok(1));
        assert_eq!(s.verify(" 287-082 ", now, None), Ok(1));
    }

    #[test]
    fn malformed_codes_are_refused_without_panicking() {
        let s = rfc_secret();
        let now = at(59);
        for bad in [
            "",
            "28708",
            "2870821",
            "28708a",
            "二八七〇八二",
            &"1".repeat(10_000),
        ] {
            assert_eq!(s.verify(bad, now, None), Err(TotpError::Malformed), "{bad}");
        }
        assert_eq!(TotpError::Malformed.code(), "INVALID_CODE");
    }

    #[test]
    fn generated_secrets_are_20_random_bytes() {
        let a = TotpSecret::generate().unwrap();
        let b = TotpSecret::generate().unwrap();
        assert_ne!(a, b);
        assert_eq!(a.to_base32().len(), 32);
        assert_eq!(TotpSecret::from_bytes(a.as_bytes()), Ok(a.clone()));
        assert_eq!(
            TotpSecret::from_bytes(&[0; 19]),
            Err(TotpError::InvalidSecret)
        );
        assert!(!format!("{a:?}").contains(&a.to_base32()));
    }

    #[test]
    fn provisioning_uri_names_issuer_and_account() {
        let s = rfc_secret();
        assert_eq!(
            s.provisioning_uri("taro+home@example.jp"),
            "otpauth://totp/Musubi:taro%2Bhome%40example.jp?secret=GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ&issuer=Musubi&algorithm=SHA1&digits=6&period=30"
        );
    }

    #[test]
    fn qr_code_is_plain_svg_markup() {
        let s = rfc_secret();
        let svg = qr_code_svg(&s.provisioning_uri("taro@example.jp")).unwrap();
        assert!(svg.starts_with("<svg xmlns=\"http://www.w3.org/2000/svg\""));
        assert!(svg.ends_with("</svg>"));
        assert!(!svg.contains("<script"));
        assert!(!svg.contains("style"));
    }

    #[test]
    fn oversized_qr_payload_is_an_error_not_a_panic() {
        assert_eq!(qr_code_svg(&"x".repeat(5000)), Err(TotpError::QrCode));
    }
}
