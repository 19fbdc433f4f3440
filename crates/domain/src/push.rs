//! Web push (RFC 8030, encrypted per RFC 8291, signed per RFC 8292 VAPID): a phone that added
//! Musubi to its home screen hears that something new arrived.
//!
//! ```text
//! the settings page       browser subscribes with the VAPID public key → subscribe_push
//!                         (endpoint on the push-service allow-list, keys of the right sizes,
//!                          at most 10 browsers a person, the oldest dropped)
//! something to tell       enqueue_push: one notify.push job per browser of the person
//! notify.push             aes128gcm-encrypt {"title","body","url"}, sign a VAPID JWT, POST
//!                         201/200 → done · 404/410 → subscription deleted · 429/5xx/network
//!                         → retried · other 4xx → failed (5 refusals in a row: deleted)
//! ```
//!
//! A push holds nothing but a fixed title and body and an address made of ids ([`PushMessage`]):
//! no patient information, no names, no group names, the same rule as for mail. The push
//! service sees only the encrypted payload; the browser shows it and opens the address when the
//! notification is tapped (same origin only, see `crates/web/static/sw.js`).
//!
//! The endpoint is an address Musubi will POST to, supplied by a browser: only push services on
//! the allow-list (and the origins in `MUSUBI_PUSH_EXTRA_ORIGINS`) are accepted, at subscribe
//! time and again at each delivery, and redirects are never followed — a crafted endpoint
//! cannot make Musubi reach an internal address.

use crate::jobs::{JobError, Outcome, KIND_PUSH};
use crate::sessions::Viewer;
use crate::types::PersonId;
use crate::{AppError, AppResult, Services};
use chrono::{DateTime, Utc};
use data_encoding::BASE64URL_NOPAD;
use musubi_config::{Config, Secret};
use musubi_db::jobs::JobRow;
use musubi_db::push as repo;
use p256::ecdsa::signature::Signer as _;
use p256::ecdsa::{Signature, SigningKey};
use serde::{Deserialize, Serialize};
use sqlx::PgConnection;
use std::sync::{Arc, OnceLock};
use std::time::Duration;
use uuid::Uuid;

/// Browsers one person may have subscribed at once; a new one drops the oldest.
pub const MAX_DEVICES: i64 = 10;
/// How long a push service keeps a message for a phone that is off (the `TTL` header).
pub const TTL_SECS: u64 = 3600;
/// Longest endpoint accepted (real ones are a few hundred characters).
pub const MAX_ENDPOINT_CHARS: usize = 1024;
/// Longest device label kept ("iPhone / Safari").
pub const MAX_LABEL_CHARS: usize = 64;
/// Attempts of one push: with the queue's backoff (30 s, 1, 2 min) about as long as it is
/// worth trying within the TTL.
const ATTEMPTS: i32 = 4;
/// Refusals in a row (4xx other than 404/410) after which a subscription is dropped: the
/// browser has to subscribe again (e.g. after the VAPID key was rotated).
const DROP_AFTER_REFUSALS: i32 = 5;
/// Longest wait for a push service's answer (less if the job lease is shorter).
const SEND_TIMEOUT: Duration = Duration::from_secs(30);
/// A VAPID token is valid this long (RFC 8292 allows at most 24 hours).
const TOKEN_HOURS: i64 = 12;

/// Push services Musubi delivers to, by host: exact names, and suffixes (`.` + domain).
const KNOWN_HOSTS: &[&str] = &["fcm.googleapis.com", "web.push.apple.com"];
const KNOWN_SUFFIXES: &[&str] = &[
    ".push.services.mozilla.com",
    ".notify.windows.com",
    ".push.apple.com",
];

/// The notification's fixed texts.
pub const TITLE: &str = "結び";
pub const BODY_NEWS: &str = "新しい書きこみがあります";
pub const BODY_URGENT: &str = "至急の書きこみがあります";

/// What a push says: news or something urgent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PushKind {
    News,
    Urgent,
}

/// One push: its kind and the address the notification opens. The address must be made of ids
/// only ([`is_ids_only_path`]); the payload ([`PushMessage::payload`]) holds these and the
/// fixed title and body, nothing else.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PushMessage {
    pub kind: PushKind,
    pub url: String,
}

/// The JSON the service worker reads.
#[derive(Serialize)]
struct Payload<'a> {
    title: &'a str,
    body: &'a str,
    url: &'a str,
}

impl PushMessage {
    /// Something new arrived: opens the home page's unread list.
    pub fn news() -> Self {
        Self {
            kind: PushKind::News,
            url: "/home".to_owned(),
        }
    }

    /// An urgent comment: opens it (the comment's address leads to its place in the topic).
    /// `None` for a slug that is not one.
    pub fn urgent(
        slug: &str,
        topic: crate::types::TopicId,
        comment: crate::types::CommentId,
    ) -> Option<Self> {
        let url = format!("/a/{slug}/t/{topic}/c/{comment}");
        is_ids_only_path(&url).then_some(Self {
            kind: PushKind::Urgent,
            url,
        })
    }

    /// The encrypted content: `{"title":"結び","body":"…","url":"…"}`. `None` when the address
    /// is not made of ids only (nothing is sent then).
    pub fn payload(&self) -> Option<String> {
        if !is_ids_only_path(&self.url) {
            return None;
        }
        let body = match self.kind {
            PushKind::News => BODY_NEWS,
            PushKind::Urgent => BODY_URGENT,
        };
        serde_json::to_string(&Payload {
            title: TITLE,
            body,
            url: &self.url,
        })
        .ok()
    }
}

/// Whether `url` is an address of this site made of ids only: `/`, `/home`, or
/// `/a/<slug>` followed by up to three `/<g|t|c>/<uuid>`, with an optional `#c-<uuid or
/// number>` or `#unread`. Nothing else can carry words into a notification.
pub fn is_ids_only_path(url: &str) -> bool {
    if url.len() > 300 {
        return false;
    }
    let (path, fragment) = match url.split_once('#') {
        Some((p, f)) => (p, Some(f)),
        None => (url, None),
    };
    let fragment_ok = match fragment {
        None | Some("unread") => true,
        Some(f) => f.strip_prefix("c-").is_some_and(|id| {
            is_canonical_uuid(id)
                || (!id.is_empty() && id.len() <= 12 && id.bytes().all(|b| b.is_ascii_digit()))
        }),
    };
    if !fragment_ok {
        return false;
    }
    if path == "/" || path == "/home" {
        return true;
    }
    let Some(rest) = path.strip_prefix("/a/") else {
        return false;
    };
    let mut segments = rest.split('/');
    if !segments
        .next()
        .is_some_and(crate::associations::is_valid_slug)
    {
        return false;
    }
    let rest: Vec<&str> = segments.collect();
    rest.len() <= 6
        && rest.len().is_multiple_of(2)
        && rest
            .chunks(2)
            .all(|pair| matches!(pair[0], "g" | "t" | "c") && is_canonical_uuid(pair[1]))
}

fn is_canonical_uuid(s: &str) -> bool {
    Uuid::parse_str(s).is_ok_and(|u| u.hyphenated().to_string() == s)
}

/// Whether Musubi may POST to `endpoint`: https on a known push service's host (default port,
/// no user), or an origin listed in `extra` (`scheme://host[:port]`, as
/// [`origin_of`] writes it). Returns the endpoint as it is kept and used.
pub fn allowed_endpoint(endpoint: &str, extra: &[String]) -> Option<String> {
    let url = url::Url::parse(endpoint.trim()).ok()?;
    if !url.username().is_empty() || url.password().is_some() || url.fragment().is_some() {
        return None;
    }
    let origin = url.origin().ascii_serialization();
    let known = || {
        if url.scheme() != "https" || url.port().is_some() {
            return false;
        }
        let Some(url::Host::Domain(host)) = url.host() else {
            return false;
        };
        KNOWN_HOSTS.contains(&host)
            || KNOWN_SUFFIXES
                .iter()
                .any(|s| host.len() > s.len() && host.ends_with(s))
    };
    (extra.contains(&origin) || known()).then(|| url.as_str().to_owned())
}

/// `scheme://host[:port]` of an address (default ports left out); `None` when it is none.
pub fn origin_of(address: &str) -> Option<String> {
    let url = url::Url::parse(address.trim()).ok()?;
    matches!(url.scheme(), "http" | "https").then(|| url.origin().ascii_serialization())
}

/// Web push's configuration (from [`Config`]).
#[derive(Debug, Clone, Default)]
pub struct PushSettings {
    /// The VAPID private key; `None`: the one kept in the database (made on first use).
    pub private_key: Option<Secret>,
    /// The VAPID `sub`; `None`: the public address when it is https, else a placeholder.
    pub subject: Option<String>,
    /// Push service origins accepted besides the known ones.
    pub extra_origins: Vec<String>,
    /// Longest wait for a push service (at most [`SEND_TIMEOUT`]).
    pub timeout: Option<Duration>,
}

impl PushSettings {
    pub fn from_config(config: &Config) -> Self {
        Self {
            private_key: config.vapid_private_key.clone(),
            subject: Some(config.vapid_subject.clone()),
            extra_origins: config.push_extra_origins.clone(),
            // A push being sent must not look interrupted.
            timeout: Some((config.job_lease * 3 / 4).min(SEND_TIMEOUT)),
        }
    }
}

/// The push state shared by clones of the services: settings, the signing key once read, the
/// HTTP client once built.
#[derive(Clone, Default)]
pub(crate) struct PushState(Arc<PushInner>);

#[derive(Default)]
struct PushInner {
    settings: PushSettings,
    /// Normalised `extra_origins`.
    extra: Vec<String>,
    key: tokio::sync::OnceCell<SigningKey>,
    client: OnceLock<reqwest::Client>,
}

impl PushState {
    pub(crate) fn new(settings: PushSettings) -> Self {
        let extra = settings
            .extra_origins
            .iter()
            .filter_map(|o| origin_of(o))
            .collect();
        Self(Arc::new(PushInner {
            settings,
            extra,
            ..PushInner::default()
        }))
    }
}

/// One of a person's browsers, for the settings page.
#[derive(Debug, Clone)]
pub struct PushDevice {
    pub id: Uuid,
    /// The push service's address for the browser (the page's script recognises its own).
    pub endpoint: String,
    /// "iPhone / Safari", or empty.
    pub label: String,
    pub created_at: DateTime<Utc>,
    pub last_success_at: Option<DateTime<Utc>>,
    /// Deliveries that failed since the last that went through.
    pub failures: i32,
}

/// Base64url, with or without padding.
fn decode_b64url(text: &str) -> Option<Vec<u8>> {
    BASE64URL_NOPAD
        .decode(text.trim().trim_end_matches('=').as_bytes())
        .ok()
}

/// The VAPID `Authorization` header: `vapid t=<ES256 JWT>, k=<public key>`, for pushes to
/// `audience` (the endpoint's origin) until `expires` (seconds since the epoch).
fn vapid_authorization(key: &SigningKey, audience: &str, subject: &str, expires: i64) -> String {
    let header = BASE64URL_NOPAD.encode(br#"{"typ":"JWT","alg":"ES256"}"#);
    let claims = serde_json::json!({ "aud": audience, "exp": expires, "sub": subject });
    let signed = format!(
        "{header}.{}",
        BASE64URL_NOPAD.encode(claims.to_string().as_bytes())
    );
    let signature: Signature = key.sign(signed.as_bytes());
    format!(
        "vapid t={signed}.{}, k={}",
        BASE64URL_NOPAD.encode(&signature.to_bytes()),
        public_key_b64(key)
    )
}

fn public_key_b64(key: &SigningKey) -> String {
    BASE64URL_NOPAD.encode(key.verifying_key().to_sec1_point(false).as_bytes())
}

/// A fresh P-256 private key.
fn generate_key() -> AppResult<[u8; 32]> {
    loop {
        let mut bytes = [0u8; 32];
        getrandom::fill(&mut bytes).map_err(|e| AppError::internal(std::io::Error::other(e)))?;
        // Nearly every 32 bytes are a valid scalar; the rest are drawn again.
        if SigningKey::from_slice(&bytes).is_ok() {
            return Ok(bytes);
        }
    }
}

/// A push that did not go through, as the job records it (never the endpoint: it is a
/// capability, and the console shows job errors).
fn failure(kind: &str, status: Option<reqwest::StatusCode>) -> String {
    match status {
        Some(s) => format!("push service answered {}", s.as_u16()),
        None => format!("push service unreachable ({kind})"),
    }
}

impl Services {
    fn push_settings(&self) -> &PushSettings {
        &self.push.0.settings
    }

    /// The VAPID key: configured, or the deployment's in the database (made on first use).
    async fn vapid_key(&self) -> AppResult<&SigningKey> {
        self.push
            .0
            .key
            .get_or_try_init(|| async {
                let bytes = match &self.push_settings().private_key {
                    Some(secret) => decode_b64url(secret.expose()).ok_or_else(|| {
                        AppError::internal(std::io::Error::other("MUSUBI_VAPID_PRIVATE_KEY"))
                    })?,
                    None => repo::vapid_key_or_insert(self.db().pool(), &generate_key()?).await?,
                };
                SigningKey::from_slice(&bytes).map_err(|_| {
                    AppError::internal(std::io::Error::other("the VAPID key is not a P-256 key"))
                })
            })
            .await
    }

    /// The VAPID public key (uncompressed point, base64url): the browser's
    /// `applicationServerKey`.
    pub async fn push_public_key(&self) -> AppResult<String> {
        Ok(public_key_b64(self.vapid_key().await?))
    }

    fn vapid_subject(&self) -> String {
        self.push_settings().subject.clone().unwrap_or_else(|| {
            match origin_of(self.mailer().public_url()) {
                Some(o) if o.starts_with("https://") => o,
                _ => "mailto:no-reply@localhost".to_owned(),
            }
        })
    }

    fn push_client(&self) -> Result<&reqwest::Client, JobError> {
        if let Some(c) = self.push.0.client.get() {
            return Ok(c);
        }
        let timeout = self
            .push_settings()
            .timeout
            .unwrap_or(SEND_TIMEOUT)
            .min(SEND_TIMEOUT);
        let client = reqwest::Client::builder()
            // A redirect could lead anywhere: the allow-list holds for the endpoint only.
            .redirect(reqwest::redirect::Policy::none())
            .timeout(timeout)
            .connect_timeout(timeout.min(Duration::from_secs(10)))
            .user_agent("Musubi")
            .build()
            .map_err(|e| JobError::Fatal(format!("no HTTP client: {}", e.without_url())))?;
        Ok(self.push.0.client.get_or_init(|| client))
    }

    /// Asks for pushes on the viewer's browser: `endpoint` (a known push service's address),
    /// the browser's `p256dh` public key and `auth` secret (base64url) and a short label of the
    /// device. The same endpoint again renews it; an 11th browser drops the oldest.
    pub async fn subscribe_push(
        &self,
        viewer: &Viewer,
        endpoint: &str,
        p256dh: &str,
        auth: &str,
        user_agent: &str,
    ) -> AppResult<()> {
        let endpoint = endpoint.trim();
        if endpoint.chars().count() > MAX_ENDPOINT_CHARS || endpoint.len() < 12 {
            return Err(AppError::invalid("endpoint", "not a push service address"));
        }
        let endpoint = allowed_endpoint(endpoint, &self.push.0.extra)
            .filter(|e| e.len() <= MAX_ENDPOINT_CHARS)
            .ok_or_else(|| AppError::invalid("endpoint", "not a known push service"))?;
        let p256dh = Some(p256dh)
            .filter(|k| k.len() <= 100)
            .and_then(decode_b64url)
            .filter(|k| k.len() == 65 && k[0] == 4)
            .filter(|k| web_push_native::p256::PublicKey::from_sec1_bytes(k).is_ok())
            .ok_or_else(|| AppError::invalid("p256dh", "not a P-256 public key"))?;
        let auth = Some(auth)
            .filter(|a| a.len() <= 30)
            .and_then(decode_b64url)
            .filter(|a| a.len() == 16)
            .ok_or_else(|| AppError::invalid("auth", "not a 16-byte secret"))?;
        let label = user_agent.trim();
        if label.chars().count() > MAX_LABEL_CHARS || label.chars().any(char::is_control) {
            return Err(AppError::invalid("userAgent", "too long"));
        }
        let me = viewer.user.id;
        let mut tx = self.db().core_tx().await?;
        repo::upsert(
            &mut tx,
            &repo::NewSubscription {
                user: me,
                endpoint: &endpoint,
                p256dh: &p256dh,
                auth: &auth,
                user_agent: label,
            },
            Utc::now(),
        )
        .await?;
        repo::trim(&mut tx, me, MAX_DEVICES).await?;
        tx.commit().await?;
        Ok(())
    }

    /// Stops pushes to the viewer's browser with this endpoint; `false` when they had none
    /// (someone else's endpoint is left alone).
    pub async fn unsubscribe_push(&self, viewer: &Viewer, endpoint: &str) -> AppResult<bool> {
        let endpoint = url::Url::parse(endpoint.trim())
            .map(String::from)
            .unwrap_or_else(|_| endpoint.trim().to_owned());
        let mut conn = self
            .db()
            .pool()
            .acquire()
            .await
            .map_err(AppError::internal)?;
        Ok(repo::delete_for_user(&mut conn, viewer.user.id, &endpoint).await?)
    }

    /// Stops pushes to the viewer's browser `id` (the settings page's 「解除」); `false` when it
    /// is not theirs.
    pub async fn remove_push_device(&self, viewer: &Viewer, id: Uuid) -> AppResult<bool> {
        let mut conn = self
            .db()
            .pool()
            .acquire()
            .await
            .map_err(AppError::internal)?;
        Ok(repo::delete_id_for_user(&mut conn, viewer.user.id, id).await?)
    }

    /// The viewer's browsers that receive pushes, newest first.
    pub async fn push_devices(&self, viewer: &Viewer) -> AppResult<Vec<PushDevice>> {
        let mut conn = self
            .db()
            .pool()
            .acquire()
            .await
            .map_err(AppError::internal)?;
        Ok(repo::list(&mut conn, viewer.user.id)
            .await?
            .into_iter()
            .map(|r| PushDevice {
                id: r.id,
                endpoint: r.endpoint,
                label: r.user_agent,
                created_at: r.created_at,
                last_success_at: r.last_success_at,
                failures: r.failures,
            })
            .collect())
    }

    /// Enqueues `message` for every browser of `user`, on `conn` (a tenant transaction too, so
    /// that the pushes go with the write that caused them). Returns how many.
    pub(crate) async fn enqueue_push(
        &self,
        conn: &mut PgConnection,
        user: PersonId,
        message: &PushMessage,
        now: DateTime<Utc>,
    ) -> AppResult<u64> {
        if message.payload().is_none() {
            return Err(AppError::invalid("url", "not an address made of ids"));
        }
        let message = serde_json::to_value(message).map_err(AppError::internal)?;
        Ok(repo::enqueue_for_user(conn, KIND_PUSH, user, &message, ATTEMPTS, now).await?)
    }

    /// [`Services::enqueue_push`] on a connection of its own: pushes `message` to every browser
    /// of `user` (the operator's test, and callers without a transaction).
    pub async fn push_to(
        &self,
        user: PersonId,
        message: &PushMessage,
        now: DateTime<Utc>,
    ) -> AppResult<u64> {
        let mut conn = self
            .db()
            .pool()
            .acquire()
            .await
            .map_err(AppError::internal)?;
        self.enqueue_push(&mut conn, user, message, now).await
    }

    /// One push (job `notify.push`).
    ///
    /// It does not mark its effects started: a push whose worker died mid-POST runs again. A
    /// duplicate push is harmless where a duplicate mail is not — it says only that something
    /// arrived, news pushes share a `Topic` (the push service keeps the latest) and the service
    /// worker shows them under one tag (the second replaces the first) — while a lost urgent
    /// push is worse than a repeated one.
    pub(crate) async fn run_push(
        &self,
        job: &JobRow,
        now: DateTime<Utc>,
    ) -> Result<Outcome, JobError> {
        let id = job
            .payload
            .get("subscription")
            .and_then(|v| v.as_str())
            .and_then(|s| s.parse::<Uuid>().ok())
            .ok_or_else(|| JobError::Fatal("the job names no subscription".into()))?;
        let message: PushMessage = job
            .payload
            .get("message")
            .cloned()
            .and_then(|m| serde_json::from_value(m).ok())
            .ok_or_else(|| JobError::Fatal("the job holds no message".into()))?;
        let payload = message
            .payload()
            .ok_or_else(|| JobError::Fatal("the message's address is not made of ids".into()))?;
        let pool = self.db().pool();
        let Some(sub) = repo::get(pool, id).await? else {
            // Unsubscribed meanwhile.
            return Ok(Outcome::Done);
        };
        if !repo::user_active(pool, sub.user_id).await? {
            return Ok(Outcome::Done);
        }
        let Some(endpoint) = allowed_endpoint(&sub.endpoint, &self.push.0.extra) else {
            // The allow-list changed since: never sent, and not kept.
            repo::delete_endpoint(pool, &sub.endpoint).await?;
            return Err(JobError::Fatal("the endpoint is no longer allowed".into()));
        };
        let (Ok(ua_public), true) = (
            web_push_native::p256::PublicKey::from_sec1_bytes(&sub.p256dh),
            sub.auth.len() == 16,
        ) else {
            repo::delete_endpoint(pool, &sub.endpoint).await?;
            return Err(JobError::Fatal(
                "the subscription's keys are unusable".into(),
            ));
        };
        let uri: http::Uri = endpoint
            .parse()
            .map_err(|_| JobError::Fatal("the endpoint is not a URI".into()))?;
        let audience = origin_of(&endpoint)
            .ok_or_else(|| JobError::Fatal("the endpoint has no origin".into()))?;
        let key = self.vapid_key().await?;
        let request = web_push_native::WebPushBuilder::new(
            uri,
            ua_public,
            web_push_native::Auth::clone_from_slice(&sub.auth),
        )
        .with_valid_duration(Duration::from_secs(TTL_SECS))
        .build(payload)
        .map_err(|e| JobError::Fatal(format!("encrypting the push: {e}")))?;
        let (parts, body) = request.into_parts();
        let mut headers = parts.headers;
        // reqwest sets the length of the body itself.
        headers.remove(http::header::CONTENT_LENGTH);
        let expires = (Utc::now() + chrono::Duration::hours(TOKEN_HOURS)).timestamp();
        let authorization = vapid_authorization(key, &audience, &self.vapid_subject(), expires);
        let value = |v: &str| {
            http::HeaderValue::from_str(v)
                .map_err(|_| JobError::Fatal("a header that cannot be sent".into()))
        };
        headers.insert(http::header::AUTHORIZATION, value(&authorization)?);
        match message.kind {
            PushKind::Urgent => {
                headers.insert("urgency", value("high")?);
            }
            PushKind::News => {
                headers.insert("urgency", value("normal")?);
                // A phone that was off gets one news push, not one per arrival.
                headers.insert("topic", value("musubi-news")?);
            }
        }
        let sent = self
            .push_client()?
            .post(endpoint.as_str())
            .headers(headers)
            .body(body)
            .send()
            .await;
        let status = match sent {
            Ok(res) => res.status(),
            Err(e) => {
                repo::mark_failure(pool, sub.id).await?;
                let kind = if e.is_timeout() {
                    "timeout"
                } else if e.is_connect() {
                    "connect"
                } else {
                    "request"
                };
                return Err(JobError::Retry(failure(kind, None)));
            }
        };
        match status.as_u16() {
            200..=299 => {
                repo::mark_success(pool, sub.id, now).await?;
                Ok(Outcome::Done)
            }
            // The browser unsubscribed, or the subscription expired.
            404 | 410 => {
                repo::delete_endpoint(pool, &sub.endpoint).await?;
                Ok(Outcome::Done)
            }
            429 | 500..=599 => {
                repo::mark_failure(pool, sub.id).await?;
                Err(JobError::Retry(failure("", Some(status))))
            }
            _ => {
                if repo::mark_failure(pool, sub.id).await? >= DROP_AFTER_REFUSALS {
                    repo::delete_endpoint(pool, &sub.endpoint).await?;
                }
                Err(JobError::Fatal(failure("", Some(status))))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use p256::ecdsa::signature::Verifier as _;
    use p256::ecdsa::VerifyingKey;

    #[test]
    fn the_payload_is_exactly_the_fixed_texts_and_the_address() {
        assert_eq!(
            PushMessage::news().payload().as_deref(),
            Some(r#"{"title":"結び","body":"新しい書きこみがあります","url":"/home"}"#)
        );
        let topic = Uuid::parse_str("0190f5a0-0000-7000-8000-000000000001").unwrap();
        let comment = Uuid::parse_str("0190f5a0-0000-7000-8000-000000000002").unwrap();
        let urgent = PushMessage::urgent("minato", topic.into(), comment.into()).unwrap();
        assert_eq!(
            urgent.payload().as_deref(),
            Some(
                "{\"title\":\"結び\",\"body\":\"至急の書きこみがあります\",\"url\":\
                 \"/a/minato/t/0190f5a0-0000-7000-8000-000000000001/c/0190f5a0-0000-7000-8000-\
                 000000000002\"}"
            )
        );
        assert!(PushMessage::urgent("Not A Slug", topic.into(), comment.into()).is_none());
        let words = PushMessage {
            kind: PushKind::News,
            url: "/home?name=山田".into(),
        };
        assert_eq!(words.payload(), None);
    }

    #[test]
    fn only_addresses_made_of_ids_are_accepted() {
        let g = "0190f5a0-0000-7000-8000-000000000001";
        for ok in [
            "/".to_owned(),
            "/home".to_owned(),
            "/home#unread".to_owned(),
            format!("/a/minato/g/{g}"),
            format!("/a/minato/g/{g}/t/{g}#c-{g}"),
            format!("/a/minato/t/{g}/c/{g}"),
            format!("/a/minato/t/{g}#c-12"),
        ] {
            assert!(is_ids_only_path(&ok), "{ok}");
        }
        for bad in [
            "".to_owned(),
            "https://evil.example/".to_owned(),
            "//evil.example/".to_owned(),
            "/home?q=x".to_owned(),
            "/a/minato/t/yamada-taro".to_owned(),
            format!("/a/minato/x/{g}"),
            format!("/a/minato/g/{}", g.to_uppercase()),
            format!("/a/minato/g/{g}/"),
            format!("/a/minato/g/{g}#c-山田"),
            format!("/a/minato/g/{g}#note"),
            format!("/a/minato/g/{g}/t/{g}/c/{g}/g/{g}"),
            "/a/Minato".to_owned(),
            "javascript:alert(1)".to_owned(),
        ] {
            assert!(!is_ids_only_path(&bad), "{bad}");
        }
    }

    #[test]
    fn only_known_push_services_and_configured_origins_are_endpoints() {
        let extra = vec!["http://127.0.0.1:8090".to_owned()];
        for ok in [
            "https://fcm.googleapis.com/fcm/send/abc:def",
            "https://updates.push.services.mozilla.com/wpush/v2/gAAAA",
            "https://wns2-par02p.notify.windows.com/w/?token=BQYAAA",
            "https://web.push.apple.com/QGuQyavXutnMH",
            "https://api.push.apple.com/3/device/x",
            "HTTPS://FCM.googleapis.com:443/fcm/send/x",
            "http://127.0.0.1:8090/push/1",
        ] {
            assert!(allowed_endpoint(ok, &extra).is_some(), "{ok}");
        }
        for bad in [
            "http://fcm.googleapis.com/fcm/send/x",
            "https://fcm.googleapis.com:8443/fcm/send/x",
            "https://fcm.googleapis.com.evil.example/x",
            "https://evilpush.services.mozilla.com/x",
            "https://push.services.mozilla.com/x",
            "https://user@fcm.googleapis.com/x",
            "https://evil.example/",
            "http://169.254.169.254/latest/meta-data/",
            "https://169.254.169.254/",
            "http://127.0.0.1:8091/push/1",
            "https://127.0.0.1:8090/push/1",
            "https://fcm.googleapis.com/x#frag",
            "file:///etc/passwd",
            "not a url",
        ] {
            assert!(allowed_endpoint(bad, &extra).is_none(), "{bad}");
        }
        assert_eq!(
            origin_of("HTTPS://Push.Example.jp:443/").as_deref(),
            Some("https://push.example.jp")
        );
    }

    #[test]
    fn the_vapid_token_is_an_es256_jwt_for_the_audience_signed_by_the_key() {
        let key = SigningKey::from_slice(&generate_key().unwrap()).unwrap();
        let header = vapid_authorization(&key, "https://fcm.googleapis.com", "mailto:a@b.jp", 99);
        let rest = header.strip_prefix("vapid t=").unwrap();
        let (token, k) = rest.split_once(", k=").unwrap();
        assert_eq!(k, public_key_b64(&key));
        let public = decode_b64url(k).unwrap();
        assert_eq!(public.len(), 65);
        let (signed, signature) = token.rsplit_once('.').unwrap();
        let (head, claims) = signed.split_once('.').unwrap();
        let json = |part: &str| -> serde_json::Value {
            serde_json::from_slice(&decode_b64url(part).unwrap()).unwrap()
        };
        assert_eq!(json(head)["alg"], "ES256");
        assert_eq!(
            json(claims),
            serde_json::json!({"aud": "https://fcm.googleapis.com", "exp": 99, "sub": "mailto:a@b.jp"})
        );
        let signature = Signature::from_slice(&decode_b64url(signature).unwrap()).unwrap();
        let verifying = VerifyingKey::from_sec1_bytes(&public).unwrap();
        assert!(verifying.verify(signed.as_bytes(), &signature).is_ok());
        assert!(verifying.verify(b"another", &signature).is_err());
    }
}
