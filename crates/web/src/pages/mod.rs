//! One file per page.

pub(crate) mod console;
pub(crate) mod enrol;
pub(crate) mod error;
pub(crate) mod home;
pub(crate) mod invite;
pub(crate) mod landing;
pub(crate) mod language;
pub(crate) mod my_sessions;
pub(crate) mod no_membership;
pub(crate) mod not_found;
pub(crate) mod passkey;
pub(crate) mod reset;
pub(crate) mod security;
pub(crate) mod signin;
pub(crate) mod signin_code;
pub(crate) mod signout;
pub(crate) mod sns;

#[cfg(test)]
mod render_tests;
