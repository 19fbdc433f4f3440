//! Passkeys (WebAuthn): registered by a signed-in person from their security settings, then
//! used to sign in without typing anything — no e-mail, no password — which is the easiest way
//! in on a phone. A passkey sign-in proves possession of the device and verifies the person on
//! it (fingerprint, face or the device PIN): it counts as two factors, so it opens a full session
//! even where an association requires a second factor.
//!
//! The relying party is the deployment's public URL (`MUSUBI_PUBLIC_URL`): its host is the RP ID.
//! Ceremony state lives in PostgreSQL between the two steps, so any replica can finish what
//! another started; a ceremony can be tried once and lives five minutes.

use crate::audit::{AuditAction, AuditEntry, RequestMeta};
use crate::sessions::{SessionKind, SignIn, SignInStep, Viewer};
use crate::types::PersonId;
use crate::{AppError, AppResult, ErrorCode, Services};
use chrono::{DateTime, Utc};
use data_encoding::BASE64URL_NOPAD;
use musubi_auth::ratelimit::RateLimitClass;
use musubi_db::accounts::{self as accounts_repo, UserRow};
use musubi_db::passkeys::{self as repo, PasskeyRow};
use musubi_db::types::{AccountStatus, CeremonyKind};
use serde::de::DeserializeOwned;
use serde_json::Value;
use std::sync::Arc;
use std::time::Duration;
use uuid::Uuid;
use webauthn_rs::prelude::{
    AuthenticationResult, DiscoverableAuthentication, Passkey, PasskeyRegistration,
    PublicKeyCredential, RegisterPublicKeyCredential, Url, Webauthn, WebauthnBuilder,
};

/// How long a started ceremony can be finished; also the timeout the browser is given.
const CEREMONY_LIFETIME: Duration = Duration::from_secs(5 * 60);
/// Passkey sign-in attempts from one client address.
const PASSKEY_IP: RateLimitClass = RateLimitClass::new("passkey:ip", 30, Duration::from_secs(900));
/// Started sign-in ceremonies from one client address (each stores a row until it expires).
const PASSKEY_START_IP: RateLimitClass =
    RateLimitClass::new("passkey_start:ip", 60, Duration::from_secs(900));
/// The name of a passkey when none is given and the device is not recognised.
const DEFAULT_NAME: &str = "パスキー";
const MAX_NAME_CHARS: usize = 100;

/// The WebAuthn relying party: built once at start-up from the public URL.
#[derive(Clone)]
pub struct RelyingParty {
    webauthn: Arc<Webauthn>,
    rp_id: String,
}

impl std::fmt::Debug for RelyingParty {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RelyingParty")
            .field("rp_id", &self.rp_id)
            .finish()
    }
}

impl RelyingParty {
    /// The relying party of a deployment reached at `public_url`: the URL's host is the RP ID
    /// and its origin the one origin accepted (with any port for `localhost`). `Ok(None)` when
    /// the host is an IP address: WebAuthn refuses those, so passkeys are unavailable.
    pub fn for_public_url(public_url: &str) -> Result<Option<Self>, String> {
        let url = Url::parse(public_url).map_err(|e| format!("not a valid URL: {e}"))?;
        if url.host_str().is_none() {
            return Err("the URL has no host".to_owned());
        }
        // `domain()` is None for IPv4 and IPv6 hosts.
        let Some(rp_id) = url.domain().map(str::to_owned) else {
            return Ok(None);
        };
        let origin = Url::parse(&url.origin().ascii_serialization())
            .map_err(|e| format!("no usable origin: {e}"))?;
        let webauthn = WebauthnBuilder::new(&rp_id, &origin)
            .and_then(|b| {
                b.rp_name("Musubi")
                    .allow_any_port(rp_id == "localhost")
                    .timeout(CEREMONY_LIFETIME)
                    .build()
            })
            .map_err(|e| format!("cannot serve passkeys for {rp_id}: {e}"))?;
        Ok(Some(Self {
            webauthn: Arc::new(webauthn),
            rp_id,
        }))
    }

    /// The RP ID passkeys are bound to (changing it orphans every registered passkey).
    pub fn rp_id(&self) -> &str {
        &self.rp_id
    }
}

/// A started ceremony: `options` go to `navigator.credentials.create()` (registration) or
/// `.get()` (sign-in), and the answer comes back with `id`.
#[derive(Debug, Clone)]
pub struct PasskeyCeremony {
    pub id: Uuid,
    pub options: Value,
}

/// One registered passkey, as its owner sees it.
#[derive(Debug, Clone)]
pub struct PasskeyInfo {
    /// The credential id, base64url without padding (as `PublicKeyCredential.id` in browsers).
    pub id: String,
    pub name: String,
    pub created_at: DateTime<Utc>,
    pub last_used_at: Option<DateTime<Utc>>,
}

impl From<PasskeyRow> for PasskeyInfo {
    fn from(r: PasskeyRow) -> Self {
        Self {
            id: BASE64URL_NOPAD.encode(&r.id),
            name: r.name,
            created_at: r.created_at,
            last_used_at: r.last_used_at,
        }
    }
}

fn unavailable() -> AppError {
    AppError::new(
        ErrorCode::PasskeysUnavailable,
        "passkeys need this server to be reached by a host name, not an IP address",
    )
}

fn sign_in_failed() -> AppError {
    AppError::new(
        ErrorCode::InvalidCredentials,
        "the passkey could not be verified",
    )
}

impl Services {
    /// Whether this deployment can offer passkeys at all (see [`RelyingParty::for_public_url`]).
    pub fn passkeys_available(&self) -> bool {
        self.relying_party.is_some()
    }

    fn webauthn(&self) -> AppResult<&Webauthn> {
        self.relying_party
            .as_ref()
            .map(|rp| rp.webauthn.as_ref())
            .ok_or_else(unavailable)
    }

    async fn store_ceremony(
        &self,
        kind: CeremonyKind,
        user_id: Option<PersonId>,
        state: &impl serde::Serialize,
        options: &impl serde::Serialize,
    ) -> AppResult<PasskeyCeremony> {
        let id = Uuid::new_v4();
        let state = serde_json::to_value(state).map_err(AppError::internal)?;
        let lifetime = chrono::Duration::from_std(CEREMONY_LIFETIME).map_err(AppError::internal)?;
        repo::insert_ceremony(
            self.db().pool(),
            id,
            kind,
            user_id,
            &state,
            Utc::now() + lifetime,
        )
        .await?;
        let options = serde_json::to_value(options).map_err(AppError::internal)?;
        Ok(PasskeyCeremony { id, options })
    }

    /// Takes a ceremony out (whatever happens next, it cannot be used again); `None` unless it
    /// exists, has not expired, is of `kind` and was started by `user_id`.
    async fn take_ceremony<T: DeserializeOwned>(
        &self,
        id: Uuid,
        kind: CeremonyKind,
        user_id: Option<PersonId>,
    ) -> AppResult<Option<T>> {
        let Some(row) = repo::take_ceremony(self.db().pool(), id).await? else {
            return Ok(None);
        };
        if !row.live || row.kind != kind || row.user_id != user_id {
            return Ok(None);
        }
        serde_json::from_value(row.state)
            .map(Some)
            .map_err(AppError::internal)
    }

    /// Starts registering a passkey for the signed-in person. The passkey must be discoverable
    /// (kept on the device with the person's id), because signing in asks for nothing else.
    pub async fn start_passkey_registration(&self, viewer: &Viewer) -> AppResult<PasskeyCeremony> {
        let webauthn = self.webauthn()?;
        let user = &viewer.user;
        let registered = repo::passkeys_of(self.db().pool(), user.id).await?;
        let exclude = registered.into_iter().map(|p| p.id).collect();
        let (options, state) = webauthn
            .start_passkey_registration(user.id.uuid(), &user.email, &user.name, Some(exclude))
            .map_err(AppError::internal)?;
        let mut options = serde_json::to_value(&options).map_err(AppError::internal)?;
        if let Some(selection) = options
            .pointer_mut("/publicKey/authenticatorSelection")
            .and_then(Value::as_object_mut)
        {
            selection.insert("residentKey".into(), "required".into());
            selection.insert("requireResidentKey".into(), true.into());
        }
        self.store_ceremony(CeremonyKind::Registration, Some(user.id), &state, &options)
            .await
    }

    /// Verifies the browser's answer and stores the passkey under `name` (default: the device
    /// named by the user agent, or 「パスキー」).
    pub async fn finish_passkey_registration(
        &self,
        viewer: &Viewer,
        ceremony_id: Uuid,
        credential: Value,
        name: Option<&str>,
        client: &RequestMeta,
    ) -> AppResult<PasskeyInfo> {
        let webauthn = self.webauthn()?;
        let name = passkey_name(name, &client.user_agent)?;
        let state: PasskeyRegistration = self
            .take_ceremony(
                ceremony_id,
                CeremonyKind::Registration,
                Some(viewer.user.id),
            )
            .await?
            .ok_or_else(|| {
                AppError::invalid("ceremonyId", "this registration has expired; start again")
            })?;
        let not_verified = || AppError::invalid("credential", "the passkey could not be verified");
        let answer: RegisterPublicKeyCredential =
            serde_json::from_value(credential).map_err(|_| not_verified())?;
        let passkey = webauthn
            .finish_passkey_registration(&answer, &state)
            .map_err(|e| {
                tracing::info!(error = %e, "passkey registration refused");
                not_verified()
            })?;
        let stored = serde_json::to_value(&passkey).map_err(AppError::internal)?;
        let row = repo::insert_passkey(
            self.db().pool(),
            passkey.cred_id(),
            viewer.user.id,
            &name,
            &stored,
        )
        .await?;
        let info = PasskeyInfo::from(row);
        let entry = AuditEntry::new(AuditAction::AuthPasskeyAdded, client)
            .by(viewer.user.id, viewer.user.name.clone())
            .on("passkey", &info.id);
        self.audit_person(&viewer.memberships, &entry).await?;
        Ok(info)
    }

    /// The viewer's passkeys, oldest first.
    pub async fn my_passkeys(&self, viewer: &Viewer) -> AppResult<Vec<PasskeyInfo>> {
        let rows = repo::passkeys_of(self.db().pool(), viewer.user.id).await?;
        Ok(rows.into_iter().map(PasskeyInfo::from).collect())
    }

    /// Removes one of the viewer's own passkeys; another person's id answers "not found".
    pub async fn delete_passkey(
        &self,
        viewer: &Viewer,
        id: &str,
        client: &RequestMeta,
    ) -> AppResult<()> {
        let Ok(raw) = BASE64URL_NOPAD.decode(id.as_bytes()) else {
            return Err(AppError::not_found());
        };
        if !repo::delete_passkey(self.db().pool(), viewer.user.id, &raw).await? {
            return Err(AppError::not_found());
        }
        let entry = AuditEntry::new(AuditAction::AuthPasskeyRemoved, client)
            .by(viewer.user.id, viewer.user.name.clone())
            .on("passkey", id);
        self.audit_person(&viewer.memberships, &entry).await
    }

    /// Starts a usernameless sign-in: the device offers the passkeys it holds for this site.
    pub async fn start_passkey_sign_in(&self, client: &RequestMeta) -> AppResult<PasskeyCeremony> {
        let webauthn = self.webauthn()?;
        self.limits().hit(&PASSKEY_START_IP, &client.ip).await?;
        let (mut options, state) = webauthn
            .start_discoverable_authentication()
            .map_err(AppError::internal)?;
        // webauthn-rs asks for autofill ("conditional") mediation; a sign-in button wants the
        // browser's ordinary dialog. The page may still ask for autofill itself.
        options.mediation = None;
        self.store_ceremony(CeremonyKind::SignIn, None, &state, &options)
            .await
    }

    /// Finishes a passkey sign-in: finds the person from the passkey's user handle, verifies
    /// the signature and opens a full session. Every failure answers `INVALID_CREDENTIALS`.
    pub async fn finish_passkey_sign_in(
        &self,
        ceremony_id: Uuid,
        credential: Value,
        kind: SessionKind,
        client: &RequestMeta,
    ) -> AppResult<SignIn> {
        let webauthn = self.webauthn()?;
        self.limits().hit(&PASSKEY_IP, &client.ip).await?;
        let state: Option<DiscoverableAuthentication> = self
            .take_ceremony(ceremony_id, CeremonyKind::SignIn, None)
            .await?;
        let answer: Option<PublicKeyCredential> = serde_json::from_value(credential).ok();
        let user = match answer
            .as_ref()
            .and_then(|a| webauthn.identify_discoverable_authentication(a).ok())
        {
            Some((user_id, _)) => {
                accounts_repo::user_by_id(self.db().pool(), PersonId::from_uuid(user_id)).await?
            }
            None => None,
        };
        let verified = match (state, answer.as_ref(), user.as_ref()) {
            (Some(state), Some(answer), Some(user)) => {
                self.verify_assertion(webauthn, state, answer, user).await?
            }
            _ => None,
        };
        let (Some(user), Some((row, result))) = (user.as_ref(), verified) else {
            self.audit_passkey_failure(user.as_ref(), client).await;
            return Err(sign_in_failed());
        };
        if user.status != AccountStatus::Active {
            self.audit_passkey_failure(Some(user), client).await;
            return Err(sign_in_failed());
        }
        let mut passkey: Passkey =
            serde_json::from_value(row.credential).map_err(AppError::internal)?;
        let updated = match passkey.update_credential(&result) {
            Some(true) => Some(serde_json::to_value(&passkey).map_err(AppError::internal)?),
            _ => None,
        };
        repo::record_passkey_use(self.db().pool(), user.id, &row.id, updated.as_ref()).await?;
        let token = self
            .open_verified_session(user, kind, "passkey", client)
            .await?;
        Ok(SignIn {
            token,
            step: SignInStep::Done,
        })
    }

    /// The stored passkey the answer was made with and the verification result, if the
    /// signature, challenge, origin, user verification and counter all check out.
    async fn verify_assertion(
        &self,
        webauthn: &Webauthn,
        state: DiscoverableAuthentication,
        answer: &PublicKeyCredential,
        user: &UserRow,
    ) -> AppResult<Option<(PasskeyRow, AuthenticationResult)>> {
        let Some(row) = repo::passkey_of(self.db().pool(), user.id, &answer.raw_id).await? else {
            return Ok(None);
        };
        let passkey: Passkey =
            serde_json::from_value(row.credential.clone()).map_err(AppError::internal)?;
        match webauthn.finish_discoverable_authentication_v2(answer, state, &passkey) {
            Ok(result) if result.user_verified() => Ok(Some((row, result))),
            Ok(_) => Ok(None),
            Err(e) => {
                tracing::info!(error = %e, "passkey sign-in refused");
                Ok(None)
            }
        }
    }

    /// Best effort, like the password failures: in the person's associations when the passkey
    /// named someone, in the platform log otherwise.
    async fn audit_passkey_failure(&self, user: Option<&UserRow>, client: &RequestMeta) {
        let result = async {
            let entry = AuditEntry::new(AuditAction::AuthSignInFailed, client)
                .with_detail("step", "passkey");
            match user {
                Some(u) => {
                    let memberships = accounts_repo::memberships_of(self.db().pool(), u.id).await?;
                    self.audit_person(&memberships, &entry.on("user", u.id))
                        .await
                }
                None => self.audit_person(&[], &entry).await,
            }
        }
        .await;
        if let Err(e) = result {
            tracing::error!(code = e.code.as_str(), error = ?e.source, "auditing a failed passkey sign-in failed");
        }
    }
}

/// The name given, or the kind of device the passkey was made on.
fn passkey_name(name: Option<&str>, user_agent: &str) -> AppResult<String> {
    match crate::text::optional_line("name", name.unwrap_or_default(), MAX_NAME_CHARS)? {
        Some(n) => Ok(n),
        None => Ok(device_of(user_agent).unwrap_or(DEFAULT_NAME).to_owned()),
    }
}

/// A rough device name from a user agent. Order matters: Android agents also say "Linux".
fn device_of(user_agent: &str) -> Option<&'static str> {
    const DEVICES: &[(&str, &str)] = &[
        ("iPhone", "iPhone"),
        ("iPad", "iPad"),
        ("Android", "Android"),
        ("Windows", "Windows"),
        ("CrOS", "Chromebook"),
        ("Macintosh", "Mac"),
        ("Linux", "Linux"),
    ];
    DEVICES
        .iter()
        .find(|(needle, _)| user_agent.contains(needle))
        .map(|(_, name)| *name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_ip_address_cannot_be_a_relying_party() {
        assert!(RelyingParty::for_public_url("http://127.0.0.1:8080")
            .expect("valid")
            .is_none());
        assert!(RelyingParty::for_public_url("http://[::1]:8080")
            .expect("valid")
            .is_none());
    }

    #[test]
    fn the_host_of_the_public_url_is_the_rp_id() {
        let rp = RelyingParty::for_public_url("https://musubi.example.jp/app")
            .expect("valid")
            .expect("a host name");
        assert_eq!(rp.rp_id(), "musubi.example.jp");
        let rp = RelyingParty::for_public_url("http://localhost:8080")
            .expect("valid")
            .expect("a host name");
        assert_eq!(rp.rp_id(), "localhost");
    }

    #[test]
    fn a_passkey_is_named_after_the_device_unless_named() {
        let iphone = "Mozilla/5.0 (iPhone; CPU iPhone OS 17_4 like Mac OS X) AppleWebKit/605.1.15";
        let android = "Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36";
        assert_eq!(passkey_name(None, iphone).expect("ok"), "iPhone");
        assert_eq!(passkey_name(Some("  "), android).expect("ok"), "Android");
        assert_eq!(passkey_name(None, "curl/8").expect("ok"), "パスキー");
        assert_eq!(
            passkey_name(Some(" 仕事用 "), iphone).expect("ok"),
            "仕事用"
        );
        assert!(passkey_name(Some(&"あ".repeat(101)), iphone).is_err());
    }
}
