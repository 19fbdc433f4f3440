//! Password hashing (argon2id, PHC strings) and the password policy.
//!
//! Passwords are NFKC-normalised before hashing and checking (NIST SP 800-63B), so a
//! password typed with full-width characters on a Japanese IME still matches.

use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::{Algorithm, Argon2, Params, Version};
use std::collections::HashSet;
use std::sync::OnceLock;
use unicode_normalization::UnicodeNormalization;

use crate::{random_bytes, RandomError};

/// OWASP's argon2id baseline: 19 MiB, 2 passes, 1 lane.
pub const MEMORY_KIB: u32 = 19_456;
pub const ITERATIONS: u32 = 2;
pub const PARALLELISM: u32 = 1;

const PARAMS: Params = match Params::new(MEMORY_KIB, ITERATIONS, PARALLELISM, None) {
    Ok(p) => p,
    // Evaluated at compile time: invalid constants fail the build, not a request.
    Err(_) => panic!("invalid argon2 parameters"),
};

/// Raw input longer than this is refused before normalising or hashing (the policy allows
/// 128 characters; this only bounds work).
const MAX_INPUT_BYTES: usize = 1024;

/// An argon2id hash with the current parameters, of a random password nobody knows. Verifying
/// against it when the e-mail is unknown costs the same as a real check.
const DUMMY_HASH: &str =
    "$argon2id$v=19$m=19456,t=2,p=1$GVjrA5NNXbxdrzCwnvTxPA$C3MH4RbqWSoXM/ujMEaNaa4LVFpj/sWrNDaRXP2JpiE";

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum PasswordError {
    #[error("the password is too long")]
    TooLong,
    /// The stored hash cannot be parsed: a data problem, not the user's.
    #[error("the stored password hash is malformed")]
    InvalidStoredHash,
    /// Hashing failed or its worker task died.
    #[error("password hashing failed")]
    Internal,
    #[error(transparent)]
    Random(#[from] RandomError),
}

impl PasswordError {
    pub fn code(&self) -> &'static str {
        match self {
            Self::TooLong => "TOO_LONG",
            Self::InvalidStoredHash | Self::Internal | Self::Random(_) => "INTERNAL",
        }
    }
}

fn argon2() -> Argon2<'static> {
    Argon2::new(Algorithm::Argon2id, Version::V0x13, PARAMS)
}

fn normalize(password: &str) -> String {
    password.nfkc().collect()
}

/// Hashes a password into a PHC string (`$argon2id$v=19$m=…`). CPU-heavy: in async code
/// use [`hash_password_async`].
pub fn hash_password(password: &str) -> Result<String, PasswordError> {
    if password.len() > MAX_INPUT_BYTES {
        return Err(PasswordError::TooLong);
    }
    let salt =
        SaltString::encode_b64(&random_bytes::<16>()?).map_err(|_| PasswordError::Internal)?;
    argon2()
        .hash_password(normalize(password).as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|_| PasswordError::Internal)
}

/// Whether `password` matches the stored PHC string. The comparison inside the crate is
/// constant-time. Over-long input is simply wrong.
pub fn verify_password(password: &str, stored: &str) -> Result<bool, PasswordError> {
    let parsed = PasswordHash::new(stored).map_err(|_| PasswordError::InvalidStoredHash)?;
    if password.len() > MAX_INPUT_BYTES {
        return Ok(false);
    }
    match argon2().verify_password(normalize(password).as_bytes(), &parsed) {
        Ok(()) => Ok(true),
        Err(argon2::password_hash::Error::Password) => Ok(false),
        Err(_) => Err(PasswordError::InvalidStoredHash),
    }
}

/// Spends the time of a real verification and fails. Call it when the e-mail is unknown (or
/// the account has no password), so that "no such account" and "wrong password" cannot be
/// told apart by timing.
pub fn verify_unknown_account(password: &str) -> bool {
    let _ = verify_password(password, DUMMY_HASH);
    false
}

/// Whether a stored hash should be replaced (after a successful sign-in) because it uses
/// another algorithm or weaker parameters than today's.
pub fn needs_rehash(stored: &str) -> bool {
    let Ok(parsed) = PasswordHash::new(stored) else {
        return true;
    };
    if parsed.algorithm != Algorithm::Argon2id.ident() || parsed.version != Some(0x13) {
        return true;
    }
    match Params::try_from(&parsed) {
        Ok(p) => p.m_cost() < MEMORY_KIB || p.t_cost() < ITERATIONS || p.p_cost() < PARALLELISM,
        Err(_) => true,
    }
}

/// [`hash_password`] on the blocking pool, so hashing does not stall the async workers.
pub async fn hash_password_async(password: String) -> Result<String, PasswordError> {
    tokio::task::spawn_blocking(move || hash_password(&password))
        .await
        .map_err(|_| PasswordError::Internal)?
}

/// [`verify_password`] on the blocking pool.
pub async fn verify_password_async(
    password: String,
    stored: String,
) -> Result<bool, PasswordError> {
    tokio::task::spawn_blocking(move || verify_password(&password, &stored))
        .await
        .map_err(|_| PasswordError::Internal)?
}

/// [`verify_unknown_account`] on the blocking pool.
pub async fn verify_unknown_account_async(password: String) -> bool {
    let _ = tokio::task::spawn_blocking(move || verify_unknown_account(&password)).await;
    false
}

// ---------------------------------------------------------------------------------------
// Policy (MHLW guideline 6.0 Q&A; NIST SP 800-63B for the blocklist and personal data).

/// Minimum length when the account signs in with a second factor.
pub const MIN_LEN_WITH_SECOND_FACTOR: usize = 8;
/// Minimum length when the password is the only factor.
pub const MIN_LEN_WITHOUT_SECOND_FACTOR: usize = 13;
pub const MAX_LEN: usize = 128;
/// Kinds among: lower case, upper case, digits, symbols, other letters (kana, kanji).
pub const MIN_KINDS: usize = 2;

/// What the policy needs to know about the account.
#[derive(Debug, Clone, Copy)]
pub struct PasswordContext<'a> {
    pub email: &'a str,
    /// The user's names as registered: kanji, kana and romaji if given.
    pub names: &'a [&'a str],
    pub has_second_factor: bool,
}

/// Why a password was refused. `code()` is stable; the UI translates it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PasswordProblem {
    TooShort { min: usize },
    TooLong { max: usize },
    TooFewKinds { min: usize },
    ContainsPersonalInfo,
    TooCommon,
}

impl PasswordProblem {
    pub fn code(&self) -> &'static str {
        match self {
            Self::TooShort { .. } => "TOO_SHORT",
            Self::TooLong { .. } => "TOO_LONG",
            Self::TooFewKinds { .. } => "TOO_FEW_KINDS",
            Self::ContainsPersonalInfo => "CONTAINS_PERSONAL_INFO",
            Self::TooCommon => "TOO_COMMON",
        }
    }
}

/// Checks a new password against the policy and returns every problem found.
///
/// The MHLW Q&A asks for letters, digits and symbols mixed in both cases (8 characters with
/// a second factor, 13 without), so the kinds rule applies to both.
pub fn check_password(
    candidate: &str,
    ctx: &PasswordContext<'_>,
) -> Result<(), Vec<PasswordProblem>> {
    if candidate.len() > MAX_INPUT_BYTES {
        return Err(vec![PasswordProblem::TooLong { max: MAX_LEN }]);
    }
    let normalized = normalize(candidate);
    let mut problems = Vec::new();

    let len = normalized.chars().count();
    let min = if ctx.has_second_factor {
        MIN_LEN_WITH_SECOND_FACTOR
    } else {
        MIN_LEN_WITHOUT_SECOND_FACTOR
    };
    if len < min {
        problems.push(PasswordProblem::TooShort { min });
    } else if len > MAX_LEN {
        problems.push(PasswordProblem::TooLong { max: MAX_LEN });
    }
    if count_kinds(&normalized) < MIN_KINDS {
        problems.push(PasswordProblem::TooFewKinds { min: MIN_KINDS });
    }
    let folded = fold(&normalized);
    if contains_personal_info(&folded, ctx) {
        problems.push(PasswordProblem::ContainsPersonalInfo);
    }
    if is_common(&folded) || is_trivial(&folded) {
        problems.push(PasswordProblem::TooCommon);
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(problems)
    }
}

fn count_kinds(s: &str) -> usize {
    let (mut lower, mut upper, mut digit, mut symbol, mut other) =
        (false, false, false, false, false);
    for c in s.chars() {
        if c.is_lowercase() {
            lower = true;
        } else if c.is_uppercase() {
            upper = true;
        } else if c.is_numeric() {
            digit = true;
        } else if c.is_alphabetic() {
            other = true;
        } else {
            symbol = true;
        }
    }
    [lower, upper, digit, symbol, other]
        .iter()
        .filter(|k| **k)
        .count()
}

/// Lower case, and katakana folded to hiragana, so ヤマダ and やまだ compare equal. Input is
/// already NFKC (half-width kana are full-width by then).
fn fold(s: &str) -> String {
    s.chars()
        .flat_map(char::to_lowercase)
        .map(|c| match c {
            '\u{30A1}'..='\u{30F6}' => char::from_u32(c as u32 - 0x60).unwrap_or(c),
            _ => c,
        })
        .collect()
}

fn contains_personal_info(folded: &str, ctx: &PasswordContext<'_>) -> bool {
    let email = fold(&normalize(ctx.email));
    let local = email.rsplit_once('@').map_or(email.as_str(), |(l, _)| l);
    let mut needles: Vec<String> = Vec::new();
    if local.chars().count() >= 3 {
        needles.push(local.to_owned());
    }
    // taro.yamada@… : each longer part on its own too.
    needles.extend(
        local
            .split(['.', '_', '-', '+'])
            .filter(|p| p.chars().count() >= 4)
            .map(str::to_owned),
    );
    for name in ctx.names {
        let name = fold(&normalize(name));
        let parts: Vec<&str> = name
            .split(|c: char| c.is_whitespace() || matches!(c, '・' | '･' | '.' | ',' | '-'))
            .filter(|p| !p.is_empty())
            .collect();
        let joined: String = parts.concat();
        for part in parts
            .iter()
            .copied()
            .chain(std::iter::once(joined.as_str()))
        {
            if long_enough_name_part(part) {
                needles.push(part.to_owned());
            }
        }
    }
    needles.iter().any(|n| folded.contains(n.as_str()))
}

/// Romaji parts need 3 characters to mean something; kanji and kana names are often 2.
fn long_enough_name_part(part: &str) -> bool {
    let n = part.chars().count();
    if part.is_ascii() {
        n >= 3
    } else {
        n >= 2
    }
}

fn common_passwords() -> &'static HashSet<&'static str> {
    static SET: OnceLock<HashSet<&'static str>> = OnceLock::new();
    SET.get_or_init(|| {
        include_str!("../data/common-passwords.txt")
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty() && !l.starts_with('#'))
            .collect()
    })
}

/// In the list as is, or once digits and symbols around a word are stripped
/// ("Dragon2024!") or l33t spelling is undone ("P@ssw0rd").
fn is_common(folded: &str) -> bool {
    let list = common_passwords();
    if list.contains(folded) || list.contains(undo_leet(folded).as_str()) {
        return true;
    }
    let core = folded.trim_matches(|c: char| !c.is_alphabetic());
    core.chars().count() >= 4 && (list.contains(core) || list.contains(undo_leet(core).as_str()))
}

fn undo_leet(s: &str) -> String {
    s.chars()
        .map(|c| match c {
            '@' | '4' => 'a',
            '0' => 'o',
            '1' | '!' => 'i',
            '3' => 'e',
            '$' | '5' => 's',
            '7' => 't',
            _ => c,
        })
        .collect()
}

/// Runs that people type without thinking. A password made only of such runs (each at
/// least 3 long, give or take 2 characters at the ends), or of one short unit repeated, is
/// trivial: "abcdefgh1", "qwerty123", "87654321", "aaaaaaaa", "abcabcabc", "あいうえおかき".
const SEQUENCES: &[&str] = &[
    "abcdefghijklmnopqrstuvwxyz",
    "01234567890",
    "qwertyuiop",
    "asdfghjkl",
    "zxcvbnm",
    "qwertyuiopasdfghjklzxcvbnm",
    "1qaz2wsx3edc4rfv5tgb6yhn7ujm8ik9ol0p",
    "qazwsxedcrfvtgbyhnujmikolp",
    "!@#$%^&*()",
    "あいうえおかきくけこさしすせそたちつてとなにぬねのはひふへほまみむめもやゆよらりるれろわをん",
];
const MIN_RUN: usize = 3;
const SLACK: usize = 2;

fn is_trivial(folded: &str) -> bool {
    let chars: Vec<char> = folded.chars().collect();
    let n = chars.len();
    let repeats_unit = |unit: usize| {
        let chunks = chars.chunks_exact(unit);
        n > unit && chunks.remainder().is_empty() && chunks.into_iter().all(|c| c == &chars[..unit])
    };
    if (1..=4).any(repeats_unit) {
        return true;
    }
    // A sub-run of a simple run is simple, so from each start the simple runs end anywhere
    // up to max_end[start].
    let max_end: Vec<usize> = (0..n)
        .map(|start| {
            let mut end = start + 1;
            while end < n && is_simple_run(&chars[start..=end]) {
                end += 1;
            }
            end
        })
        .collect();
    (0..=SLACK).any(|head| {
        // reach[j]: chars[head..j] splits into simple runs of at least MIN_RUN.
        if head > n {
            return false;
        }
        let mut reach = vec![false; n + 1];
        reach[head] = true;
        for start in head..n {
            if reach[start] && start + MIN_RUN <= max_end[start] {
                reach[start + MIN_RUN..=max_end[start]].fill(true);
            }
        }
        (0..=SLACK - head).any(|tail| n >= head + tail + MIN_RUN && reach[n - tail])
    })
}

fn is_simple_run(run: &[char]) -> bool {
    if run.iter().all(|c| *c == run[0]) {
        return true;
    }
    let forward: String = run.iter().collect();
    let backward: String = run.iter().rev().collect();
    SEQUENCES
        .iter()
        .any(|s| s.contains(forward.as_str()) || s.contains(backward.as_str()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ctx<'a>(
        email: &'a str,
        names: &'a [&'a str],
        has_second_factor: bool,
    ) -> PasswordContext<'a> {
        PasswordContext {
            email,
            names,
            has_second_factor,
        }
    }

    fn problems(pw: &str, c: &PasswordContext<'_>) -> Vec<&'static str> {
        match check_password(pw, c) {
            Ok(()) => Vec::new(),
            Err(ps) => ps.iter().map(PasswordProblem::code).collect(),
        }
    }

    const NAMES: &[&str] = &["山田 太郎", "ヤマダ タロウ", "Yamada Taro"];

    #[test]
    fn hash_then_verify_round_trips_and_wrong_password_fails() {
        let h = hash_password("correct horse battery").unwrap();
        assert!(h.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"));
        assert!(verify_password("correct horse battery", &h).unwrap());
        assert!(!verify_password("correct horse batterY", &h).unwrap());
        assert!(!needs_rehash(&h));
    }

    #[test]
    fn full_width_input_matches_the_half_width_password() {
        let h = hash_password("Musubi-2025x").unwrap();
        assert!(verify_password("Ｍｕｓｕｂｉ－２０２５ｘ", &h).unwrap());
    }

    #[test]
    fn malformed_stored_hash_is_an_internal_error() {
        assert_eq!(
            verify_password("x", "not a hash"),
            Err(PasswordError::InvalidStoredHash)
        );
        assert_eq!(PasswordError::InvalidStoredHash.code(), "INTERNAL");
    }

    #[test]
    fn over_long_input_is_refused_without_hashing() {
        let long = "a".repeat(100_000);
        assert_eq!(hash_password(&long), Err(PasswordError::TooLong));
        assert_eq!(verify_password(&long, DUMMY_HASH), Ok(false));
    }

    #[test]
    fn dummy_hash_uses_todays_parameters() {
        assert!(!needs_rehash(DUMMY_HASH));
    }

    #[test]
    fn weaker_or_foreign_hashes_need_rehash() {
        assert!(needs_rehash(
            "$argon2id$v=19$m=4096,t=3,p=1$c29tZXNhbHQ$RdescudvJCsgt3ub+b+dWRWJTmaaJObG"
        ));
        assert!(needs_rehash(
            "$argon2i$v=19$m=19456,t=2,p=1$c29tZXNhbHQ$RdescudvJCsgt3ub+b+dWRWJTmaaJObG"
        ));
        assert!(needs_rehash(
            "$2b$12$R9h/cIPz0gi.URNNX3kh2OPST9/PgBkqquzi.Ss7KIUgO2t0jWMUW"
        ));
        assert!(needs_rehash("garbage"));
    }

    #[tokio::test]
    async fn async_wrappers_run_on_the_blocking_pool() {
        let h = hash_password_async("Sakura-no-hana-7".into())
            .await
            .unwrap();
        assert!(verify_password_async("Sakura-no-hana-7".into(), h.clone())
            .await
            .unwrap());
        assert!(!verify_password_async("sakura-no-hana-7".into(), h)
            .await
            .unwrap());
    }

    #[tokio::test]
    async fn unknown_account_always_fails() {
        assert!(!verify_unknown_account_async(String::new()).await);
        assert!(!verify_unknown_account("password"));
    }

    #[test]
    fn good_passwords_pass() {
        let c = ctx("taro.yamada@example.jp", NAMES, true);
        assert_eq!(problems("kumo-no-ue7", &c), Vec::<&str>::new());
        assert_eq!(problems("Hoshizora9", &c), Vec::<&str>::new());
        let c = ctx("taro.yamada@example.jp", NAMES, false);
        assert_eq!(problems("kumo no ue de 7", &c), Vec::<&str>::new());
        assert_eq!(
            problems("朝の訪問は毎週9時からです", &c),
            Vec::<&str>::new()
        );
    }

    #[test]
    fn length_depends_on_the_second_factor() {
        let names: &[&str] = &[];
        let with = ctx("a@example.jp", names, true);
        let without = ctx("a@example.jp", names, false);
        assert_eq!(problems("kumo-u7", &with), ["TOO_SHORT"]);
        assert_eq!(problems("kumo-no-ue7", &without), ["TOO_SHORT"]);
        assert_eq!(
            check_password("kumo-no-ue7", &without),
            Err(vec![PasswordProblem::TooShort { min: 13 }])
        );
        let long = format!("{}7", "kumo-no-ue".repeat(13));
        assert_eq!(problems(&long, &with), ["TOO_LONG"]);
        assert_eq!(problems(&"x".repeat(5000), &with), ["TOO_LONG"]);
    }

    #[test]
    fn one_kind_of_character_is_not_enough() {
        let c = ctx("a@example.jp", &[], true);
        assert_eq!(problems("kumonouede", &c), ["TOO_FEW_KINDS"]);
        assert_eq!(problems("84920175", &c), ["TOO_FEW_KINDS"]);
        assert_eq!(problems("KUMONOUEDE", &c), ["TOO_FEW_KINDS"]);
        // Upper and lower case count as two kinds.
        assert_eq!(problems("KumoNoUede", &c), Vec::<&str>::new());
    }

    #[test]
    fn personal_information_is_refused_in_any_script_and_case() {
        let c = ctx("taro.yamada@example.jp", NAMES, true);
        for pw in [
            "my-TARO.YAMADA-1",
            "Yamada-1234x",
            "x9-taro-zz",
            "山田さん2025!",
            "やまだ2025!z",
            "ﾀﾛｳ-2025-zz",
        ] {
            assert!(
                problems(pw, &c).contains(&"CONTAINS_PERSONAL_INFO"),
                "{pw}: {:?}",
                problems(pw, &c)
            );
        }
        // A short local part is not a usable signal.
        let short = ctx("ab@example.jp", &[], true);
        assert_eq!(problems("xab-cd-ef9", &short), Vec::<&str>::new());
    }

    #[test]
    fn common_passwords_and_their_decorations_are_refused() {
        let c = ctx("a@example.jp", &[], true);
        for pw in [
            "password1",
            "Password123!",
            "P@ssw0rd",
            "Dragon2024!",
            "qwerty123",
            "iloveyou!!",
            "Sakura2025",
            "musubi123",
        ] {
            assert!(problems(pw, &c).contains(&"TOO_COMMON"), "{pw}");
        }
        assert!(common_passwords().len() >= 1000);
    }

    #[test]
    fn trivial_patterns_are_refused() {
        let c = ctx("a@example.jp", &[], true);
        for pw in [
            "aaaaaaaa1",
            "12345678a",
            "abcdefgh1",
            "87654321z",
            "qwertyui!",
            "zyxwvu321",
            "abcABCabc",
            "ab12ab12",
            "1qaz2wsx3edc",
            "xyzabc789",
        ] {
            assert!(
                problems(pw, &c).contains(&"TOO_COMMON"),
                "{pw}: {:?}",
                problems(pw, &c)
            );
        }
        assert!(is_trivial("あいうえおかきく"));
        assert!(is_trivial("12345678a"));
        assert!(!is_trivial("kX7qm3pZ"));
        assert!(!is_trivial(""));
        assert!(!is_trivial("kumo-no-ue7"));
    }

    #[test]
    fn problem_codes_are_stable() {
        let codes: Vec<_> = [
            PasswordProblem::TooShort { min: 8 },
            PasswordProblem::TooLong { max: 128 },
            PasswordProblem::TooFewKinds { min: 2 },
            PasswordProblem::ContainsPersonalInfo,
            PasswordProblem::TooCommon,
        ]
        .iter()
        .map(PasswordProblem::code)
        .collect();
        assert_eq!(
            codes,
            [
                "TOO_SHORT",
                "TOO_LONG",
                "TOO_FEW_KINDS",
                "CONTAINS_PERSONAL_INFO",
                "TOO_COMMON"
            ]
        );
    }
}
