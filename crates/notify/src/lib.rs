//! Musubi's e-mail: a [`Mailer`] that sends through an SMTP server, or — the development and
//! embedded default — writes each mail to the log instead, and the texts of the mails
//! ([`templates`]).
//!
//! **No patient information ever goes into an e-mail.** A mail says who (which association)
//! invited you, or that a password reset was asked for, and carries one link and its expiry.
//! Nothing else: mail leaves the deployment's control the moment it is sent.
//!
//! Operators' guide: `docs/email.md`.

pub mod templates;

use lettre::message::header::{ContentTransferEncoding, ContentType};
use lettre::message::Mailbox;
use lettre::transport::smtp::authentication::Credentials;
use lettre::transport::smtp::client::{Tls, TlsParameters};
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};
use musubi_config::{Config, ConfigError};
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

pub use templates::{
    digest_mail, invitation_mail, password_reset_mail, urgent_mail, DigestGroup, DigestSummary,
    UrgentStage,
};

/// Link paths the web pages serve (see `docs/email.md`).
pub const INVITE_PATH: &str = "/invite/";
pub const RESET_PATH: &str = "/reset/";

/// Used when `MUSUBI_MAIL_FROM` is not set (development only).
pub const DEFAULT_FROM: &str = "Musubi <no-reply@localhost>";
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(15);

/// What a mail is about; stable codes for the log.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MailKind {
    Invitation,
    PasswordReset,
    /// Unread comments: counts only.
    Digest,
    /// A 至急 request: the step and a link.
    Urgent,
}

impl MailKind {
    pub fn as_str(self) -> &'static str {
        match self {
            MailKind::Invitation => "invitation",
            MailKind::PasswordReset => "password_reset",
            MailKind::Digest => "digest",
            MailKind::Urgent => "urgent",
        }
    }
}

/// One plain-text mail, built by [`templates`].
#[derive(Clone, PartialEq, Eq)]
pub struct Mail {
    pub kind: MailKind,
    pub to: String,
    pub subject: String,
    pub body: String,
    /// The one link in the body (written to the log in log mode).
    pub link: String,
    /// A stable `Message-ID` local part, so that the same notification is recognisable
    /// wherever it lands; `None`: a fresh random one.
    pub message_id: Option<String>,
}

impl fmt::Debug for Mail {
    // The link is a credential: keep it out of debug output.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Mail")
            .field("kind", &self.kind)
            .field("subject", &self.subject)
            .finish_non_exhaustive()
    }
}

/// Why a mail was not sent. The services decide whether the person is told.
#[derive(Debug, thiserror::Error)]
pub enum MailError {
    #[error("not a valid e-mail address")]
    InvalidAddress,
    #[error("the message could not be built: {0}")]
    Build(String),
    #[error("the mail server did not answer within {0:?}")]
    Timeout(Duration),
    #[error("the mail server refused or failed: {0}")]
    Send(String),
}

impl MailError {
    /// Stable code, for logs and for clients when a service surfaces the failure.
    pub fn code(&self) -> &'static str {
        match self {
            MailError::InvalidAddress => "MAIL_INVALID_ADDRESS",
            MailError::Build(_) => "MAIL_BUILD_FAILED",
            MailError::Timeout(_) => "MAIL_TIMEOUT",
            MailError::Send(_) => "MAIL_SEND_FAILED",
        }
    }
}

/// Whether `address` is a plain e-mail address (`name@example.jp`) a mail can be sent to.
pub fn is_valid_address(address: &str) -> bool {
    address.len() <= 254
        && !address.contains(|c: char| c.is_whitespace() || c.is_control())
        && address.parse::<lettre::Address>().is_ok()
}

/// How to reach the SMTP server: parsed from `MUSUBI_SMTP_URL`.
#[derive(Clone)]
pub struct SmtpSettings {
    host: String,
    port: u16,
    security: Security,
    credentials: Option<(String, String)>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Security {
    /// `smtps://`: TLS from the first byte (port 465).
    Tls,
    /// `smtp://…?tls=starttls`: the connection must be upgraded with STARTTLS (port 587).
    StartTls,
    /// `smtp://…` to a loopback address, or `?tls=none`: unencrypted (port 25).
    None,
}

impl fmt::Debug for SmtpSettings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SmtpSettings")
            .field("host", &self.host)
            .field("port", &self.port)
            .field("security", &self.security)
            .field("user", &self.credentials.as_ref().map(|(u, _)| u))
            .finish_non_exhaustive()
    }
}

impl SmtpSettings {
    /// Parses `smtps://user:pass@host[:port]`, `smtp://user:pass@host[:port]?tls=starttls`
    /// or `smtp://host[:port]` (plain: only to a loopback host unless `?tls=none` says so).
    /// Errors never repeat the URL: it may hold a password.
    pub fn parse(url: &str) -> Result<Self, String> {
        let u = url::Url::parse(url).map_err(|_| "not a valid URL".to_owned())?;
        let host = match u.host() {
            Some(url::Host::Domain(d)) => d.to_owned(),
            Some(url::Host::Ipv4(a)) => a.to_string(),
            Some(url::Host::Ipv6(a)) => a.to_string(),
            None => return Err("the URL names no host".into()),
        };
        if !matches!(u.path(), "" | "/") || u.fragment().is_some() {
            return Err("the URL must not have a path or fragment".into());
        }
        let mut tls = None;
        for (k, v) in u.query_pairs() {
            match (k.as_ref(), tls) {
                ("tls", None) => tls = Some(v.into_owned()),
                _ => return Err(format!("unknown or repeated parameter `{k}` (only `tls`)")),
            }
        }
        let security = match (u.scheme(), tls.as_deref()) {
            ("smtps", None) => Security::Tls,
            ("smtp", Some("starttls" | "required")) => Security::StartTls,
            ("smtp", Some("none")) => Security::None,
            ("smtp", None) if is_loopback(&host) => Security::None,
            ("smtp", None) => {
                return Err("unencrypted SMTP to another machine: use smtps://, add \
                            ?tls=starttls, or add ?tls=none to allow it on purpose"
                    .into())
            }
            ("smtp", Some(other)) => {
                return Err(format!(
                    "tls must be `starttls` or `none`, got {other:?} (opportunistic TLS can be \
                     stripped by an attacker)"
                ))
            }
            (scheme, _) => return Err(format!("unknown scheme `{scheme}`")),
        };
        let port = u.port().unwrap_or(match security {
            Security::Tls => 465,
            Security::StartTls => 587,
            Security::None => 25,
        });
        let decode = |s: &str| {
            percent_encoding::percent_decode_str(s)
                .decode_utf8()
                .map(|c| c.into_owned())
                .map_err(|_| "the user name or password is not valid UTF-8".to_owned())
        };
        let credentials = match (u.username(), u.password()) {
            ("", None) => None,
            (user, Some(pass)) if !user.is_empty() => Some((decode(user)?, decode(pass)?)),
            _ => return Err("give both a user name and a password, or neither".into()),
        };
        Ok(Self {
            host,
            port,
            security,
            credentials,
        })
    }

    pub fn security(&self) -> Security {
        self.security
    }

    fn transport(&self, timeout: Duration) -> Result<AsyncSmtpTransport<Tokio1Executor>, String> {
        let tls = |host: &str| {
            TlsParameters::new(host.to_owned()).map_err(|_| "TLS set-up failed".to_owned())
        };
        let mut b = AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(self.host.clone())
            .port(self.port)
            .timeout(Some(timeout));
        b = match self.security {
            Security::Tls => b.tls(Tls::Wrapper(tls(&self.host)?)),
            Security::StartTls => b.tls(Tls::Required(tls(&self.host)?)),
            Security::None => b.tls(Tls::None),
        };
        if let Some((user, pass)) = &self.credentials {
            b = b.credentials(Credentials::new(user.clone(), pass.clone()));
        }
        Ok(b.build())
    }
}

fn is_loopback(host: &str) -> bool {
    host == "localhost"
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|a| a.is_loopback())
}

/// Everything a [`Mailer`] needs; [`Mailer::from_config`] fills it from the configuration.
#[derive(Debug, Clone)]
pub struct MailerSettings {
    /// None: write mails to the log.
    pub smtp: Option<SmtpSettings>,
    /// `Name <address>` or a bare address.
    pub from: String,
    /// The base of links, e.g. `https://musubi.example.jp`.
    pub public_url: String,
    /// Longest time one mail may take, connection included.
    pub timeout: Duration,
}

enum Transport {
    Log,
    Smtp {
        transport: Box<AsyncSmtpTransport<Tokio1Executor>>,
        from: Mailbox,
    },
}

struct Inner {
    transport: Transport,
    public_url: String,
    timeout: Duration,
}

/// Sends Musubi's mails. Cheap to clone.
#[derive(Clone)]
pub struct Mailer {
    inner: Arc<Inner>,
}

impl fmt::Debug for Mailer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Mailer")
            .field("smtp", &self.is_smtp())
            .field("public_url", &self.inner.public_url)
            .finish_non_exhaustive()
    }
}

fn setting_error(setting: &str, problem: impl Into<String>) -> ConfigError {
    ConfigError {
        setting: setting.to_owned(),
        problem: problem.into(),
    }
}

impl Mailer {
    /// A mailer that writes every mail to the log and sends nothing (development, tests).
    pub fn log_only(public_url: &str) -> Self {
        Self::build(Transport::Log, public_url, DEFAULT_TIMEOUT)
    }

    /// A mailer from explicit settings. Errors name the setting at fault.
    pub fn new(settings: &MailerSettings) -> Result<Self, ConfigError> {
        let from: Mailbox = settings.from.parse().map_err(|_| {
            setting_error(
                "MUSUBI_MAIL_FROM",
                "expected `Name <address>` or an address",
            )
        })?;
        let transport = match &settings.smtp {
            None => Transport::Log,
            Some(s) => Transport::Smtp {
                transport: Box::new(
                    s.transport(settings.timeout)
                        .map_err(|p| setting_error("MUSUBI_SMTP_URL", p))?,
                ),
                from,
            },
        };
        Ok(Self::build(
            transport,
            &settings.public_url,
            settings.timeout,
        ))
    }

    /// The mailer the configuration asks for, checked at start-up. In production, mail must
    /// really go out: without `MUSUBI_SMTP_URL` (and a real sender and public URL)
    /// invitations and password resets would silently vanish, so Musubi refuses to start.
    pub fn from_config(config: &Config) -> Result<Self, ConfigError> {
        let smtp = match &config.smtp_url {
            Some(url) => Some(
                SmtpSettings::parse(url.expose())
                    .map_err(|p| setting_error("MUSUBI_SMTP_URL", p))?,
            ),
            None => None,
        };
        if config.is_production() {
            let missing = [
                ("MUSUBI_SMTP_URL", smtp.is_none()),
                ("MUSUBI_MAIL_FROM", config.mail_from.is_none()),
                ("MUSUBI_PUBLIC_URL", config.public_url.is_none()),
            ];
            if let Some((name, _)) = missing.iter().find(|(_, m)| *m) {
                return Err(setting_error(
                    name,
                    "is required in production: invitations and password resets are sent by \
                     e-mail with links to this address (see docs/email.md)",
                ));
            }
        }
        let mailer = Self::new(&MailerSettings {
            smtp,
            from: config
                .mail_from
                .clone()
                .unwrap_or_else(|| DEFAULT_FROM.to_owned()),
            public_url: config.public_base_url(),
            timeout: config.smtp_timeout,
        })?;
        if !mailer.is_smtp() {
            tracing::warn!(
                "no mail server configured (MUSUBI_SMTP_URL): mails are written to the log, \
                 not sent"
            );
        }
        Ok(mailer)
    }

    fn build(transport: Transport, public_url: &str, timeout: Duration) -> Self {
        Self {
            inner: Arc::new(Inner {
                transport,
                public_url: public_url.trim_end_matches('/').to_owned(),
                timeout,
            }),
        }
    }

    /// Whether mails really leave (false: they go to the log).
    pub fn is_smtp(&self) -> bool {
        matches!(self.inner.transport, Transport::Smtp { .. })
    }

    /// The base of links, without a trailing slash.
    pub fn public_url(&self) -> &str {
        &self.inner.public_url
    }

    /// `<public URL>/invite/<token>`.
    pub fn invitation_link(&self, token: &str) -> String {
        format!("{}{INVITE_PATH}{token}", self.inner.public_url)
    }

    /// `<public URL>/reset/<token>`.
    pub fn reset_link(&self, token: &str) -> String {
        format!("{}{RESET_PATH}{token}", self.inner.public_url)
    }

    /// Sends one mail, within the configured timeout.
    pub async fn send(&self, mail: &Mail) -> Result<(), MailError> {
        let to: Mailbox = mail
            .to
            .parse::<lettre::Address>()
            .map(|a| Mailbox::new(None, a))
            .map_err(|_| MailError::InvalidAddress)?;
        let (transport, from) = match &self.inner.transport {
            Transport::Log => {
                tracing::info!(
                    mail = mail.kind.as_str(),
                    to = %mail.to,
                    subject = %mail.subject,
                    link = %mail.link,
                    "mail not sent: no mail server is configured (MUSUBI_SMTP_URL)"
                );
                return Ok(());
            }
            Transport::Smtp { transport, from } => (transport, from),
        };
        // Spam filters frown on mail without a Message-ID; the sender's domain names it.
        let local = match &mail.message_id {
            Some(id) => id.clone(),
            None => uuid::Uuid::new_v4().simple().to_string(),
        };
        let message_id = format!("<{local}@{}>", from.email.domain());
        let message = Message::builder()
            .message_id(Some(message_id))
            .from(from.clone())
            .to(to)
            .subject(mail.subject.clone())
            .header(ContentType::TEXT_PLAIN)
            // Base64 keeps Japanese text intact through every relay, whatever it supports.
            .header(ContentTransferEncoding::Base64)
            .body(mail.body.clone())
            .map_err(|e| MailError::Build(e.to_string()))?;
        let timeout = self.inner.timeout;
        match tokio::time::timeout(timeout, transport.send(message)).await {
            Err(_) => Err(MailError::Timeout(timeout)),
            Ok(Err(e)) => Err(MailError::Send(e.to_string())),
            Ok(Ok(_)) => {
                tracing::info!(mail = mail.kind.as_str(), "mail sent");
                Ok(())
            }
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code
    use super::*;
    use std::collections::HashMap;
    use std::io::Write;
    use std::sync::Mutex;

    /// Collects what the log subscriber writes.
    #[derive(Clone, Default)]
    struct Captured(Arc<Mutex<Vec<u8>>>);

    impl Write for Captured {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    fn config(pairs: &[(&str, &str)]) -> Result<Config, ConfigError> {
        let env: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        Config::from_sources(&env, None)
    }

    #[tokio::test]
    async fn log_mode_writes_the_mail_to_the_log_and_sends_nothing() {
        let captured = Captured::default();
        let sink = captured.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_writer(move || sink.clone())
            .with_ansi(false)
            .finish();
        let _guard = tracing::subscriber::set_default(subscriber);

        let mailer = Mailer::log_only("http://127.0.0.1:8080/");
        assert!(!mailer.is_smtp());
        let link = mailer.invitation_link("tok3n");
        assert_eq!(link, "http://127.0.0.1:8080/invite/tok3n");
        let mail =
            invitation_mail("nurse@example.jp", "湊川医師会", &link, chrono::Utc::now()).unwrap();
        mailer.send(&mail).await.unwrap();

        let log = String::from_utf8(captured.0.lock().unwrap().clone()).unwrap();
        assert!(log.contains("mail not sent"), "{log}");
        assert!(log.contains("nurse@example.jp"), "{log}");
        assert!(log.contains(&mail.subject), "{log}");
        assert!(log.contains("http://127.0.0.1:8080/invite/tok3n"), "{log}");
        assert!(!log.contains("mail sent"), "{log}");
        // The body itself is not logged, only what a developer needs to follow the link.
        assert!(!log.contains("破棄"), "{log}");
    }

    #[test]
    fn development_without_smtp_logs_and_production_refuses_to_start() {
        let dev = Mailer::from_config(&config(&[]).unwrap()).unwrap();
        assert!(!dev.is_smtp());
        assert_eq!(dev.public_url(), "http://127.0.0.1:8080");

        let err =
            Mailer::from_config(&config(&[("MUSUBI_ENV", "production")]).unwrap()).unwrap_err();
        assert_eq!(err.setting, "MUSUBI_SMTP_URL");
        assert!(err.problem.contains("required in production"));

        let err = Mailer::from_config(
            &config(&[
                ("MUSUBI_ENV", "production"),
                ("MUSUBI_SMTP_URL", "smtps://u:p@mail.example.jp"),
                ("MUSUBI_MAIL_FROM", "Musubi <no-reply@example.jp>"),
            ])
            .unwrap(),
        )
        .unwrap_err();
        assert_eq!(err.setting, "MUSUBI_PUBLIC_URL");

        let prod = Mailer::from_config(
            &config(&[
                ("MUSUBI_ENV", "production"),
                ("MUSUBI_SMTP_URL", "smtp://u:p@mail.example.jp?tls=starttls"),
                ("MUSUBI_MAIL_FROM", "結び <no-reply@example.jp>"),
                ("MUSUBI_PUBLIC_URL", "https://musubi.example.jp"),
            ])
            .unwrap(),
        )
        .unwrap();
        assert!(prod.is_smtp());
        assert_eq!(
            prod.reset_link("t"),
            "https://musubi.example.jp/reset/t".to_owned()
        );
    }

    #[test]
    fn smtp_urls_are_checked_without_repeating_the_password() {
        let s = SmtpSettings::parse("smtps://user%40x:hunter2@mail.example.jp").unwrap();
        assert_eq!((s.port, s.security), (465, Security::Tls));
        assert_eq!(s.credentials.as_ref().map(|c| c.0.as_str()), Some("user@x"));
        assert!(!format!("{s:?}").contains("hunter2"));
        let s = SmtpSettings::parse("smtp://mail.example.jp?tls=starttls").unwrap();
        assert_eq!((s.port, s.security), (587, Security::StartTls));
        let s = SmtpSettings::parse("smtp://127.0.0.1:2525").unwrap();
        assert_eq!((s.port, s.security), (2525, Security::None));
        assert!(SmtpSettings::parse("smtp://relay.internal?tls=none").is_ok());
        for bad in [
            "smtp://u:hunter2@mail.example.jp",
            "smtp://u:hunter2@mail.example.jp?tls=opportunistic",
            "smtp://u:hunter2@mail.example.jp?tls=starttls&x=1",
            "smtps://u:hunter2@mail.example.jp/ehlo",
            "smtps://:hunter2@mail.example.jp",
            "imap://u:hunter2@mail.example.jp",
        ] {
            let err = SmtpSettings::parse(bad).unwrap_err();
            assert!(!err.contains("hunter2"), "{bad}: {err}");
        }
        let err = Mailer::from_config(
            &config(&[("MUSUBI_SMTP_URL", "smtp://u:hunter2@mail.example.jp")]).unwrap(),
        )
        .unwrap_err();
        assert_eq!(err.setting, "MUSUBI_SMTP_URL");
        let err = Mailer::from_config(
            &config(&[
                ("MUSUBI_SMTP_URL", "smtp://127.0.0.1:25"),
                ("MUSUBI_MAIL_FROM", "not an address"),
            ])
            .unwrap(),
        )
        .unwrap_err();
        assert_eq!(err.setting, "MUSUBI_MAIL_FROM");
    }

    #[tokio::test]
    async fn a_silent_server_gives_a_timeout_with_a_stable_code() {
        // Accepts the connection and never greets.
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let _held = tokio::spawn(async move {
            let mut open = Vec::new();
            while let Ok((sock, _)) = listener.accept().await {
                open.push(sock);
            }
        });
        let mailer = Mailer::new(&MailerSettings {
            smtp: Some(SmtpSettings::parse(&format!("smtp://127.0.0.1:{port}")).unwrap()),
            from: "Musubi <no-reply@example.jp>".into(),
            public_url: "http://localhost".into(),
            timeout: Duration::from_millis(300),
        })
        .unwrap();
        let mail = password_reset_mail(
            "a@example.jp",
            "http://localhost/reset/x",
            chrono::Utc::now(),
        )
        .unwrap();
        let started = std::time::Instant::now();
        let err = mailer.send(&mail).await.unwrap_err();
        assert!(started.elapsed() < Duration::from_secs(5));
        assert!(
            matches!(err.code(), "MAIL_TIMEOUT" | "MAIL_SEND_FAILED"),
            "{err:?}"
        );
    }

    #[test]
    fn addresses_are_checked() {
        assert!(is_valid_address("aoki@minatogawa.example"));
        assert!(!is_valid_address("aoki"));
        assert!(!is_valid_address("a b@example.jp"));
        assert!(!is_valid_address("a@example.jp\r\nBcc: x@y"));
    }
}
