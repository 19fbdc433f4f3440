//! What the shared page header needs to know about the visitor.

/// The account part of the header: the person's name and a sign-out button when signed in,
/// a sign-in button when not, or nothing (error pages, the sign-in pages themselves).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Nav<'a> {
    /// The signed-in person's display name.
    pub user: Option<&'a str>,
    /// The CSRF token for the sign-out form (empty when nobody is signed in).
    pub csrf: &'a str,
    /// Offer 「ログイン」 to a visitor who is not signed in.
    pub show_signin: bool,
    /// Unread comments, next to ホーム (`None`: not counted on this page; `static/live.js`
    /// fills it in when it hears of a change).
    pub unread: Option<i64>,
    /// Where the page is, for `aria-current` in the header's links.
    pub at: Section,
    /// The newest live event when the page was made (pages that update themselves): the
    /// script asks for what happened after it.
    pub live_after: Option<i64>,
}

/// The parts of the app the header links to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Section {
    Home,
    Groups,
    /// The patient register (患者台帳).
    Patients,
    /// The search page: it has its own search box, so the header leaves its box out.
    Search,
    /// The personal calendar (カレンダー).
    Calendar,
    /// Direct messages (メッセージ): the list and a conversation.
    Messages,
    Other,
}

impl<'a> Nav<'a> {
    /// Neither a name nor a sign-in button.
    pub(crate) fn hidden() -> Self {
        Self {
            user: None,
            csrf: "",
            show_signin: false,
            unread: None,
            at: Section::Other,
            live_after: None,
        }
    }

    pub(crate) fn signed_out() -> Self {
        Self {
            show_signin: true,
            ..Self::hidden()
        }
    }

    pub(crate) fn signed_in(name: &'a str, csrf: &'a str) -> Self {
        Self {
            user: Some(name),
            csrf,
            show_signin: false,
            unread: None,
            at: Section::Other,
            live_after: None,
        }
    }

    /// With the newest event id as the page was made (see `static/live.js`).
    pub(crate) fn live_after(self, after: Option<i64>) -> Self {
        Self {
            live_after: after,
            ..self
        }
    }

    /// With the unread count and the part of the app the page belongs to.
    pub(crate) fn with_unread(self, unread: i64, at: Section) -> Self {
        Self {
            unread: Some(unread),
            at,
            ..self
        }
    }

    pub(crate) fn is_at_home(&self) -> bool {
        self.at == Section::Home
    }

    pub(crate) fn is_at_groups(&self) -> bool {
        self.at == Section::Groups
    }

    pub(crate) fn is_at_patients(&self) -> bool {
        self.at == Section::Patients
    }

    pub(crate) fn is_at_search(&self) -> bool {
        self.at == Section::Search
    }

    pub(crate) fn is_at_calendar(&self) -> bool {
        self.at == Section::Calendar
    }

    pub(crate) fn is_at_messages(&self) -> bool {
        self.at == Section::Messages
    }

    /// The header's search box: on every signed-in page but the search page itself.
    pub(crate) fn shows_search(&self) -> bool {
        self.user.is_some() && self.at != Section::Search
    }

    /// The badge's text: the count, "99+" beyond that; empty when nothing is unread.
    pub(crate) fn unread_badge(&self) -> String {
        match self.unread {
            Some(n) if n > 99 => "99+".to_owned(),
            Some(n) if n > 0 => n.to_string(),
            _ => String::new(),
        }
    }
}
