//! Plain names for the devices in "my sessions": "iPhone / Safari", "Windows / Chrome".
//!
//! Hand-written rather than a user-agent database: only a coarse system and browser name is
//! shown, so a person can recognise their own phone or office PC; versions do not matter.

/// The system and browser a user agent names, when recognised.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Device {
    pub system: Option<&'static str>,
    pub browser: Option<&'static str>,
}

/// Reads a `User-Agent` header. Order matters: many browsers also claim to be the ones they
/// grew from ("Chrome … Safari", "Edg … Chrome"), so the more specific names come first.
pub(crate) fn from_user_agent(ua: &str) -> Device {
    let system = [
        ("iPhone", "iPhone"),
        ("iPad", "iPad"),
        ("Android", "Android"),
        ("CrOS", "ChromeOS"),
        ("Windows", "Windows"),
        ("Macintosh", "Mac"),
        ("Mac OS X", "Mac"),
        ("Linux", "Linux"),
    ]
    .iter()
    .find(|(needle, _)| ua.contains(needle))
    .map(|(_, name)| *name);
    let browser = [
        (" Line/", "LINE"),
        ("Edg", "Edge"),
        ("OPR/", "Opera"),
        ("SamsungBrowser/", "Samsung Internet"),
        ("Firefox/", "Firefox"),
        ("FxiOS/", "Firefox"),
        ("CriOS/", "Chrome"),
        ("Chrome/", "Chrome"),
        ("Safari/", "Safari"),
    ]
    .iter()
    .find(|(needle, _)| ua.contains(needle))
    .map(|(_, name)| *name);
    Device { system, browser }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(ua: &str) -> (Option<&'static str>, Option<&'static str>) {
        let d = from_user_agent(ua);
        (d.system, d.browser)
    }

    #[test]
    fn common_phones_and_computers_get_short_names() {
        let cases = [
            ("Mozilla/5.0 (iPhone; CPU iPhone OS 17_4 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.4 Mobile/15E148 Safari/604.1", ("iPhone", "Safari")),
            ("Mozilla/5.0 (iPhone; CPU iPhone OS 17_4 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) CriOS/124.0 Mobile/15E148 Safari/604.1", ("iPhone", "Chrome")),
            ("Mozilla/5.0 (Linux; Android 14; SC-51D) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0 Mobile Safari/537.36", ("Android", "Chrome")),
            ("Mozilla/5.0 (Linux; Android 13; SM-S911B) AppleWebKit/537.36 (KHTML, like Gecko) SamsungBrowser/24.0 Chrome/117.0 Mobile Safari/537.36", ("Android", "Samsung Internet")),
            ("Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0 Safari/537.36", ("Windows", "Chrome")),
            ("Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0 Safari/537.36 Edg/124.0", ("Windows", "Edge")),
            ("Mozilla/5.0 (Macintosh; Intel Mac OS X 14_4) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.4 Safari/605.1.15", ("Mac", "Safari")),
            ("Mozilla/5.0 (X11; Linux x86_64; rv:125.0) Gecko/20100101 Firefox/125.0", ("Linux", "Firefox")),
            ("Mozilla/5.0 (iPhone; CPU iPhone OS 17_4 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Mobile/15E148 Safari Line/14.5.0", ("iPhone", "LINE")),
            ("Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) HeadlessChrome/140.0 Safari/537.36", ("Linux", "Chrome")),
        ];
        for (ua, (system, browser)) in cases {
            assert_eq!(names(ua), (Some(system), Some(browser)), "{ua}");
        }
    }

    #[test]
    fn unknown_agents_are_not_guessed() {
        assert_eq!(names(""), (None, None));
        assert_eq!(names("curl/8.5.0"), (None, None));
    }
}
