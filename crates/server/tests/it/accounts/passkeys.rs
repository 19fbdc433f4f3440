//! Passkeys end to end through the API, against real PostgreSQL, with a software authenticator
//! (ES256, `none` attestation) standing in for a phone: registering, usernameless sign-in,
//! replays, wrong keys, cloned counters, other people's passkeys, association policy and
//! deactivated accounts.

use axum::body::Body;
use data_encoding::BASE64URL_NOPAD as B64;
use http::Request;
use musubi_demo::DEMO_PASSWORD;
use musubi_test_support::demo::{ADMIN, NURSE};
use musubi_test_support::webauthn::{str_of, Authenticator, ORIGIN};
use musubi_test_support::{error_codes, test_config, TestApp, SIGN_IN};
use serde_json::{json, Value};
use std::ops::Deref;

const IPHONE: &str =
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_4 like Mac OS X) AppleWebKit/605.1.15 Mobile/15E148";

const START_REGISTRATION: &str = "mutation { startPasskeyRegistration { id options } }";
const FINISH_REGISTRATION: &str = "mutation($c: ID!, $cred: JSON!, $n: String) { \
     finishPasskeyRegistration(ceremonyId: $c, credential: $cred, name: $n) { id name createdAt lastUsedAt } }";
const START_SIGN_IN: &str = "mutation { startPasskeySignIn { id options } }";
const FINISH_SIGN_IN: &str = "mutation($c: ID!, $cred: JSON!) { \
     finishPasskeySignIn(ceremonyId: $c, credential: $cred) { token next } }";
const MY_PASSKEYS: &str = "{ me { passkeys { id name createdAt lastUsedAt } } }";

// --- The application -------------------------------------------------------------------------

/// The demo app, called as the nurse's iPhone does.
struct App {
    app: TestApp,
}

impl Deref for App {
    type Target = TestApp;

    fn deref(&self) -> &TestApp {
        &self.app
    }
}

impl App {
    /// The demo data, served at `public_url`, with passkeys when its host allows them.
    async fn at(public_url: &str) -> Self {
        let config = test_config(&[("MUSUBI_PUBLIC_URL", public_url)]);
        Self {
            app: TestApp::demo_with_config(config).await,
        }
    }

    async fn new() -> Self {
        Self::at(ORIGIN).await
    }

    async fn gql(&self, query: &str, vars: Value, token: Option<&str>) -> Value {
        self.gql_in(query, vars, token, None).await
    }

    async fn gql_in(
        &self,
        query: &str,
        vars: Value,
        token: Option<&str>,
        association: Option<&str>,
    ) -> Value {
        let mut req = Request::post("/graphql")
            .header("content-type", "application/json")
            .header("user-agent", IPHONE);
        if let Some(t) = token {
            req = req.header("authorization", format!("Bearer {t}"));
        }
        if let Some(a) = association {
            req = req.header("musubi-association", a);
        }
        let body = json!({ "query": query, "variables": vars }).to_string();
        let (_, _, text) = self.send(req.body(Body::from(body)).unwrap()).await;
        serde_json::from_str(&text).unwrap_or_else(|_| panic!("not JSON: {text}"))
    }

    async fn password_sign_in(&self, email: &str) -> Value {
        let r = self
            .gql(SIGN_IN, json!({"e": email, "p": DEMO_PASSWORD}), None)
            .await;
        r["data"]["signIn"].clone()
    }

    async fn token_of(&self, email: &str) -> String {
        let r = self.password_sign_in(email).await;
        assert_eq!(r["next"], "DONE", "{r}");
        r["token"].as_str().unwrap().to_owned()
    }

    /// Registers `device` as a passkey of the person signed in with `token`.
    async fn register(&self, token: &str, device: &mut Authenticator) -> Value {
        let c = self.gql(START_REGISTRATION, json!({}), Some(token)).await;
        let c = &c["data"]["startPasskeyRegistration"];
        let credential = device.register(&c["options"]);
        let r = self
            .gql(
                FINISH_REGISTRATION,
                json!({"c": c["id"], "cred": credential}),
                Some(token),
            )
            .await;
        assert!(r["errors"].is_null(), "{r}");
        r["data"]["finishPasskeyRegistration"].clone()
    }

    /// A started sign-in ceremony: (id, options).
    async fn start_sign_in(&self) -> (Value, Value) {
        let r = self.gql(START_SIGN_IN, json!({}), None).await;
        let c = &r["data"]["startPasskeySignIn"];
        assert!(c["id"].is_string(), "{r}");
        (c["id"].clone(), c["options"].clone())
    }

    async fn finish_sign_in(&self, ceremony: &Value, credential: &Value) -> Value {
        self.gql(
            FINISH_SIGN_IN,
            json!({"c": ceremony, "cred": credential}),
            None,
        )
        .await
    }

    /// A whole passkey sign-in with `device`: the response to `finishPasskeySignIn`.
    async fn passkey_sign_in(&self, device: &mut Authenticator) -> Value {
        let (id, options) = self.start_sign_in().await;
        let assertion = device.assert(&options);
        self.finish_sign_in(&id, &assertion).await
    }

    async fn stored_counter(&self, device: &Authenticator) -> i64 {
        sqlx::query_scalar(
            "SELECT (credential->'cred'->>'counter')::bigint FROM core.passkeys WHERE id = $1",
        )
        .bind(&device.credential_id)
        .fetch_one(self.db.db.pool())
        .await
        .unwrap()
    }

    /// (action, detail) of each record in an association's audit log, oldest first.
    async fn audit(&self, slug: &str) -> Vec<(String, Value)> {
        let tenant = self.db.db.resolve_tenant(slug).await.unwrap();
        let mut tx = self.db.db.tenant_tx(&tenant).await.unwrap();
        sqlx::query_as("SELECT action, detail FROM audit_log ORDER BY seq")
            .fetch_all(&mut *tx)
            .await
            .unwrap()
    }
}

fn token_in(r: &Value) -> String {
    let p = &r["data"]["finishPasskeySignIn"];
    assert_eq!(p["next"], "DONE", "{r}");
    p["token"].as_str().unwrap().to_owned()
}

// --- Tests -----------------------------------------------------------------------------------

#[tokio::test]
async fn a_nurse_registers_a_passkey_then_signs_in_with_it_without_typing_anything() {
    let app = App::new().await;
    let password_token = app.token_of(NURSE).await;
    let nurse_id = app.user_id(NURSE).await;

    // The options are ready for navigator.credentials.create() once decoded.
    let r = app
        .gql(START_REGISTRATION, json!({}), Some(&password_token))
        .await;
    let c = &r["data"]["startPasskeyRegistration"];
    let options = &c["options"];
    assert_eq!(str_of(options, "/publicKey/rp/id"), "localhost", "{r}");
    assert_eq!(str_of(options, "/publicKey/rp/name"), "Musubi");
    assert_eq!(
        str_of(options, "/publicKey/user/id"),
        B64.encode(nurse_id.uuid().as_bytes()),
        "the user handle is the user id"
    );
    assert_eq!(str_of(options, "/publicKey/user/name"), NURSE);
    assert_eq!(
        str_of(options, "/publicKey/authenticatorSelection/residentKey"),
        "required"
    );
    assert_eq!(
        str_of(
            options,
            "/publicKey/authenticatorSelection/userVerification"
        ),
        "required"
    );
    assert_eq!(
        B64.decode(str_of(options, "/publicKey/challenge").as_bytes())
            .unwrap()
            .len(),
        32
    );

    let mut phone = Authenticator::new("nurse phone");
    let r = app
        .gql(
            FINISH_REGISTRATION,
            json!({"c": c["id"], "cred": phone.register(options)}),
            Some(&password_token),
        )
        .await;
    let added = &r["data"]["finishPasskeyRegistration"];
    assert_eq!(added["id"], B64.encode(&phone.credential_id), "{r}");
    assert_eq!(added["name"], "iPhone", "named after the device");
    assert!(added["lastUsedAt"].is_null());

    // Sign-in asks for no one: discoverable credentials, user verification required.
    let (id, options) = app.start_sign_in().await;
    assert_eq!(str_of(&options, "/publicKey/rpId"), "localhost");
    assert_eq!(str_of(&options, "/publicKey/userVerification"), "required");
    assert_eq!(options["publicKey"]["allowCredentials"], json!([]));
    assert!(options.get("mediation").is_none(), "{options}");
    let r = app.finish_sign_in(&id, &phone.assert(&options)).await;
    let token = token_in(&r);
    assert_ne!(token, password_token);

    let r = app.gql("{ me { name } }", json!({}), Some(&token)).await;
    assert_eq!(r["data"]["me"]["name"], "青木 さくら", "{r}");
    let r = app.gql(MY_PASSKEYS, json!({}), Some(&token)).await;
    let list = r["data"]["me"]["passkeys"].as_array().unwrap();
    assert_eq!(list.len(), 1, "{r}");
    assert!(list[0]["lastUsedAt"].is_string(), "{r}");

    let audit = app.audit("minatogawa").await;
    assert!(audit.iter().any(|(a, _)| a == "auth.passkey_added"));
    assert!(
        audit
            .iter()
            .any(|(a, d)| a == "auth.sign_in" && d["method"] == "passkey"),
        "{audit:?}"
    );
}

#[tokio::test]
async fn a_registered_passkey_is_excluded_from_the_next_registration() {
    let app = App::new().await;
    let token = app.token_of(NURSE).await;
    let mut phone = Authenticator::new("phone");
    app.register(&token, &mut phone).await;
    let r = app.gql(START_REGISTRATION, json!({}), Some(&token)).await;
    let excluded =
        &r["data"]["startPasskeyRegistration"]["options"]["publicKey"]["excludeCredentials"];
    assert_eq!(excluded[0]["id"], B64.encode(&phone.credential_id), "{r}");
    assert_eq!(excluded[0]["type"], "public-key");

    // Browsers refuse an excluded authenticator themselves; the server does too.
    let c = &r["data"]["startPasskeyRegistration"];
    let r = app
        .gql(
            FINISH_REGISTRATION,
            json!({"c": c["id"], "cred": phone.register(&c["options"]), "n": "二台目"}),
            Some(&token),
        )
        .await;
    assert_eq!(error_codes(&r), vec!["INVALID_INPUT"], "{r}");

    // Another person cannot take over a credential id that is registered already.
    let admin = app.token_of(ADMIN).await;
    let r = app.gql(START_REGISTRATION, json!({}), Some(&admin)).await;
    let c = &r["data"]["startPasskeyRegistration"];
    let r = app
        .gql(
            FINISH_REGISTRATION,
            json!({"c": c["id"], "cred": phone.register(&c["options"])}),
            Some(&admin),
        )
        .await;
    assert_eq!(error_codes(&r), vec!["CONFLICT"], "{r}");
}

#[tokio::test]
async fn a_replayed_assertion_is_refused() {
    let app = App::new().await;
    let token = app.token_of(NURSE).await;
    let mut phone = Authenticator::new("phone");
    app.register(&token, &mut phone).await;
    let (id, options) = app.start_sign_in().await;
    let assertion = phone.assert(&options);
    token_in(&app.finish_sign_in(&id, &assertion).await);

    // The same ceremony again.
    let r = app.finish_sign_in(&id, &assertion).await;
    assert_eq!(error_codes(&r), vec!["INVALID_CREDENTIALS"], "{r}");
    // The old answer for a new ceremony (another challenge).
    let (fresh, _) = app.start_sign_in().await;
    let r = app.finish_sign_in(&fresh, &assertion).await;
    assert_eq!(error_codes(&r), vec!["INVALID_CREDENTIALS"], "{r}");
    // Nothing is given away about why.
    assert_eq!(
        r["errors"][0]["message"],
        "the passkey could not be verified"
    );
}

#[tokio::test]
async fn a_ceremony_of_the_other_kind_cannot_be_finished() {
    let app = App::new().await;
    let token = app.token_of(NURSE).await;
    let mut phone = Authenticator::new("phone");
    app.register(&token, &mut phone).await;

    // A registration ceremony answered with a sign-in assertion over its challenge.
    let r = app.gql(START_REGISTRATION, json!({}), Some(&token)).await;
    let c = &r["data"]["startPasskeyRegistration"];
    let assertion = phone.assert(&c["options"]);
    let r = app.finish_sign_in(&c["id"], &assertion).await;
    assert_eq!(error_codes(&r), vec!["INVALID_CREDENTIALS"], "{r}");

    // A sign-in ceremony used to register.
    let (id, options) = app.start_sign_in().await;
    let mut other = Authenticator::new("other");
    let r = app
        .gql(
            FINISH_REGISTRATION,
            json!({"c": id, "cred": other.register(&json!({"publicKey": {
                "rp": {"id": "localhost"},
                "challenge": options["publicKey"]["challenge"],
                "user": {"id": B64.encode(app.user_id(NURSE).await.uuid().as_bytes())},
            }}))}),
            Some(&token),
        )
        .await;
    assert_eq!(error_codes(&r), vec!["INVALID_INPUT"], "{r}");
    assert_eq!(r["errors"][0]["extensions"]["field"], "ceremonyId");
}

#[tokio::test]
async fn a_signature_by_a_different_key_is_refused() {
    let app = App::new().await;
    let token = app.token_of(NURSE).await;
    let mut phone = Authenticator::new("phone");
    app.register(&token, &mut phone).await;
    let mut impostor = Authenticator::impostor_of(&phone);
    let r = app.passkey_sign_in(&mut impostor).await;
    assert_eq!(error_codes(&r), vec!["INVALID_CREDENTIALS"], "{r}");
    let audit = app.audit("minatogawa").await;
    assert!(
        audit
            .iter()
            .any(|(a, d)| a == "auth.sign_in_failed" && d["step"] == "passkey"),
        "{audit:?}"
    );
}

#[tokio::test]
async fn a_passkey_nobody_registered_is_refused() {
    let app = App::new().await;
    let nurse_id = app.user_id(NURSE).await;
    let mut stranger = Authenticator::new("never registered");
    stranger.user_handle = nurse_id.uuid().as_bytes().to_vec();
    let r = app.passkey_sign_in(&mut stranger).await;
    assert_eq!(error_codes(&r), vec!["INVALID_CREDENTIALS"], "{r}");
    let r = app
        .finish_sign_in(
            &json!(uuid::Uuid::new_v4().to_string()),
            &json!({"id": "x"}),
        )
        .await;
    assert_eq!(error_codes(&r), vec!["INVALID_CREDENTIALS"], "{r}");
}

#[tokio::test]
async fn the_sign_counter_is_stored_and_a_counter_going_back_is_refused() {
    let app = App::new().await;
    let token = app.token_of(NURSE).await;
    let mut phone = Authenticator::new("phone");
    app.register(&token, &mut phone).await;
    assert_eq!(app.stored_counter(&phone).await, 0);
    phone.counter = 40;
    token_in(&app.passkey_sign_in(&mut phone).await);
    assert_eq!(app.stored_counter(&phone).await, 41);

    // A copy of the key that has not seen the last use: a possible clone.
    let (id, options) = app.start_sign_in().await;
    let r = app
        .finish_sign_in(&id, &phone.assert_with_counter(&options, 41))
        .await;
    assert_eq!(error_codes(&r), vec!["INVALID_CREDENTIALS"], "{r}");
    assert_eq!(app.stored_counter(&phone).await, 41);
    token_in(&app.passkey_sign_in(&mut phone).await);
    assert_eq!(app.stored_counter(&phone).await, 42);
}

#[tokio::test]
async fn only_the_owner_can_remove_a_passkey() {
    let app = App::new().await;
    let nurse = app.token_of(NURSE).await;
    let admin = app.token_of(ADMIN).await;
    let mut phone = Authenticator::new("phone");
    let added = app.register(&nurse, &mut phone).await;
    let del = "mutation($id: ID!) { deletePasskey(id: $id) }";

    for id in [added["id"].clone(), json!("not base64!"), json!("")] {
        let r = app.gql(del, json!({"id": id}), Some(&admin)).await;
        assert_eq!(error_codes(&r), vec!["NOT_FOUND"], "{r}");
    }
    let r = app.gql(MY_PASSKEYS, json!({}), Some(&admin)).await;
    assert_eq!(r["data"]["me"]["passkeys"], json!([]), "{r}");
    let r = app.gql(MY_PASSKEYS, json!({}), Some(&nurse)).await;
    assert_eq!(r["data"]["me"]["passkeys"][0]["id"], added["id"], "{r}");

    let r = app.gql(del, json!({"id": added["id"]}), Some(&nurse)).await;
    assert_eq!(r["data"]["deletePasskey"], true, "{r}");
    let r = app.gql(MY_PASSKEYS, json!({}), Some(&nurse)).await;
    assert_eq!(r["data"]["me"]["passkeys"], json!([]), "{r}");
    // A removed passkey no longer signs anyone in.
    let r = app.passkey_sign_in(&mut phone).await;
    assert_eq!(error_codes(&r), vec!["INVALID_CREDENTIALS"], "{r}");
    let audit = app.audit("minatogawa").await;
    assert!(audit.iter().any(|(a, _)| a == "auth.passkey_removed"));
}

#[tokio::test]
async fn a_passkey_completes_sign_in_where_the_association_requires_a_second_factor() {
    let app = App::new().await;
    let token = app.token_of(NURSE).await;
    let mut phone = Authenticator::new("phone");
    app.register(&token, &mut phone).await;
    let mut tx = app.tenant_tx("minatogawa").await;
    sqlx::query("UPDATE settings SET require_second_factor = true")
        .execute(&mut *tx)
        .await
        .unwrap();
    tx.commit().await.unwrap();

    // A password alone is now not enough …
    let r = app.password_sign_in(NURSE).await;
    assert_eq!(r["next"], "ENROL_SECOND_FACTOR", "{r}");
    // … but a passkey is two factors in one.
    let token = token_in(&app.passkey_sign_in(&mut phone).await);
    let r = app
        .gql_in(
            "{ me { name } }",
            json!({}),
            Some(&token),
            Some("minatogawa"),
        )
        .await;
    assert_eq!(r["data"]["me"]["name"], "青木 さくら", "{r}");
}

#[tokio::test]
async fn a_deactivated_account_cannot_sign_in_with_a_passkey() {
    let app = App::new().await;
    let token = app.token_of(NURSE).await;
    let mut phone = Authenticator::new("phone");
    app.register(&token, &mut phone).await;
    sqlx::query("UPDATE core.users SET status = 'deactivated' WHERE email = $1")
        .bind(NURSE)
        .execute(app.db.db.pool())
        .await
        .unwrap();
    let r = app.passkey_sign_in(&mut phone).await;
    assert_eq!(error_codes(&r), vec!["INVALID_CREDENTIALS"], "{r}");
}

#[tokio::test]
async fn a_deactivated_membership_is_not_restored_by_a_passkey_sign_in() {
    let app = App::new().await;
    let token = app.token_of(NURSE).await;
    let admin = app.token_of(ADMIN).await;
    let mut phone = Authenticator::new("phone");
    app.register(&token, &mut phone).await;
    let r = app
        .gql_in(
            "mutation($u: ID!) { deactivateMember(userId: $u) }",
            json!({"u": app.user_id(NURSE).await}),
            Some(&admin),
            Some("minatogawa"),
        )
        .await;
    assert_eq!(r["data"]["deactivateMember"], true, "{r}");

    // Like a password sign-in: the person gets in, without that association.
    let token = token_in(&app.passkey_sign_in(&mut phone).await);
    let r = app
        .gql_in(
            "{ me { memberships { associationSlug } } }",
            json!({}),
            Some(&token),
            Some("minatogawa"),
        )
        .await;
    assert_eq!(r["data"]["me"]["memberships"], json!([]), "{r}");
    let r = app
        .gql_in(
            "{ facilities { name } }",
            json!({}),
            Some(&token),
            Some("minatogawa"),
        )
        .await;
    // Her only association: nothing is open to her (see docs/security.md, Deactivation).
    assert_eq!(error_codes(&r), vec!["NO_ACTIVE_MEMBERSHIP"], "{r}");
}

#[tokio::test]
async fn passkey_sign_in_attempts_are_rate_limited_per_address() {
    let app = App::new().await;
    let (id, _) = app.start_sign_in().await;
    let mut limited = false;
    for _ in 0..31 {
        let r = app.finish_sign_in(&id, &json!({})).await;
        if error_codes(&r) == vec!["RATE_LIMITED"] {
            limited = true;
            break;
        }
        assert_eq!(error_codes(&r), vec!["INVALID_CREDENTIALS"], "{r}");
    }
    assert!(limited);
}

#[tokio::test]
async fn passkeys_are_unavailable_when_the_server_is_reached_by_an_ip_address() {
    let app = App::at("http://127.0.0.1:8080").await;
    assert!(!app.services().passkeys_available());
    let r = app.gql("{ passkeysAvailable }", json!({}), None).await;
    assert_eq!(r["data"]["passkeysAvailable"], false, "{r}");
    let r = app.gql(START_SIGN_IN, json!({}), None).await;
    assert_eq!(error_codes(&r), vec!["PASSKEYS_UNAVAILABLE"], "{r}");
    let token = app.token_of(NURSE).await;
    let r = app.gql(START_REGISTRATION, json!({}), Some(&token)).await;
    assert_eq!(error_codes(&r), vec!["PASSKEYS_UNAVAILABLE"], "{r}");

    let app = App::new().await;
    let r = app.gql("{ passkeysAvailable }", json!({}), None).await;
    assert_eq!(r["data"]["passkeysAvailable"], true, "{r}");
}
