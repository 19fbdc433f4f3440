//! Security primitives for the account services: password hashing and policy, TOTP,
//! recovery codes, opaque tokens and rate limiting. No database code lives here: the
//! services store what these functions return.
//!
//! Every error is an enum whose `code()` is a stable string the UI translates.

pub mod password;
pub mod ratelimit;
pub mod recovery;
pub mod token;
pub mod totp;

/// The operating system's random number generator failed. Nothing sensible can be done
/// without it, so callers report `INTERNAL`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the operating system random number generator failed")]
pub struct RandomError;

impl RandomError {
    pub fn code(&self) -> &'static str {
        "INTERNAL"
    }
}

/// `N` bytes from the OS RNG (never a userspace PRNG: these become secrets).
pub(crate) fn random_bytes<const N: usize>() -> Result<[u8; N], RandomError> {
    let mut buf = [0u8; N];
    getrandom::fill(&mut buf).map_err(|_| RandomError)?;
    Ok(buf)
}
