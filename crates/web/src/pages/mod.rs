//! One file per page.

pub(crate) mod console;
pub(crate) mod enrol;
pub(crate) mod error;
pub(crate) mod feed;
pub(crate) mod flash;
pub(crate) mod help;
pub(crate) mod home;
pub(crate) mod invite;
pub(crate) mod landing;
pub(crate) mod language;
pub(crate) mod my_sessions;
pub(crate) mod no_membership;
pub(crate) mod not_found;
pub(crate) mod notifications;
pub(crate) mod passkey;
pub(crate) mod place;
pub(crate) mod push;
pub(crate) mod reset;
pub(crate) mod security;
pub(crate) mod signin;
pub(crate) mod signin_code;
pub(crate) mod signout;
pub(crate) mod sns;

#[cfg(test)]
mod render_tests;

use crate::i18n::Translator;
use musubi_domain::{text, AppError};

/// The words for a refused field: the form's own (`key`), unless the input-text rule found a
/// character it does not accept, which the person could not otherwise see.
pub(crate) fn field_message(t: Translator, e: &AppError, key: &'static str) -> String {
    if e.reasons.contains(&text::reason::FORBIDDEN_CHARACTER) {
        t.get("error.forbidden_character").to_owned()
    } else {
        t.get(key).to_owned()
    }
}
