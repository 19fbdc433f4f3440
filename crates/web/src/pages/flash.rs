//! The short message at the top of a page after a form was sent (`?done=…` / `?error=…`).

/// A message to show at the top of a page after a form was sent.
pub(crate) struct Flash {
    pub text: String,
    pub success: bool,
}

/// The catalog key for `code` in `table` (code, catalog key). Only codes in the table count,
/// so a crafted link cannot make a page say something of its choosing.
pub(crate) fn lookup(table: &[(&str, &'static str)], code: Option<&str>) -> Option<&'static str> {
    let code = code?;
    table.iter().find(|(c, _)| *c == code).map(|(_, k)| *k)
}
