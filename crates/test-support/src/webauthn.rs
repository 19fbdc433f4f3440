//! A software WebAuthn authenticator standing in for a phone: one ES256 (P-256) key, `none`
//! attestation in CBOR, and signed assertions, answering the options the server hands to
//! `navigator.credentials.create()` / `.get()` with the JSON a browser sends back.

use data_encoding::BASE64URL_NOPAD as B64;
use p256::ecdsa::signature::Signer;
use p256::ecdsa::{Signature, SigningKey};
use serde_cbor_2::Value as Cbor;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;

/// The origin the tests' browser is on (`MUSUBI_PUBLIC_URL`); the RP ID is its host.
pub const ORIGIN: &str = "http://localhost:8080";
/// The RP ID signed for when the options do not name one.
const DEFAULT_RP_ID: &str = "localhost";

const UP: u8 = 0x01;
const UV: u8 = 0x04;
const BE: u8 = 0x08;
const BS: u8 = 0x10;
const AT: u8 = 0x40;

/// A synced passkey on a phone, in software: one P-256 key, one credential id, the user handle
/// it was registered with, and a signature counter.
pub struct Authenticator {
    pub key: SigningKey,
    pub credential_id: Vec<u8>,
    pub user_handle: Vec<u8>,
    pub counter: u32,
}

fn sha256(data: &[u8]) -> Vec<u8> {
    Sha256::digest(data).to_vec()
}

/// The string at `pointer` in `v`; panics naming it when missing.
pub fn str_of<'a>(v: &'a Value, pointer: &str) -> &'a str {
    v.pointer(pointer)
        .and_then(Value::as_str)
        .unwrap_or_else(|| panic!("{pointer} missing in {v}"))
}

impl Authenticator {
    /// A device whose key and credential id are derived from `seed`.
    pub fn new(seed: &str) -> Self {
        let key = SigningKey::from_slice(&sha256(format!("key {seed}").as_bytes())).unwrap();
        Self {
            key,
            credential_id: sha256(format!("credential {seed}").as_bytes())[..16].to_vec(),
            user_handle: Vec::new(),
            counter: 0,
        }
    }

    /// The same credential id and user handle with another key: a forgery.
    pub fn impostor_of(other: &Authenticator) -> Self {
        Self {
            key: Authenticator::new("impostor").key,
            credential_id: other.credential_id.clone(),
            user_handle: other.user_handle.clone(),
            counter: other.counter,
        }
    }

    fn client_data(kind: &str, challenge: &str) -> Vec<u8> {
        json!({"type": kind, "challenge": challenge, "origin": ORIGIN, "crossOrigin": false})
            .to_string()
            .into_bytes()
    }

    /// The COSE EC2 public key (kty 2, alg -7 ES256, crv 1 P-256, x, y).
    fn cose_key(&self) -> Vec<u8> {
        let point = self.key.verifying_key().to_sec1_point(false);
        let bytes = point.as_bytes();
        let map: BTreeMap<Cbor, Cbor> = [
            (Cbor::Integer(1), Cbor::Integer(2)),
            (Cbor::Integer(3), Cbor::Integer(-7)),
            (Cbor::Integer(-1), Cbor::Integer(1)),
            (Cbor::Integer(-2), Cbor::Bytes(bytes[1..33].to_vec())),
            (Cbor::Integer(-3), Cbor::Bytes(bytes[33..65].to_vec())),
        ]
        .into_iter()
        .collect();
        serde_cbor_2::to_vec(&Cbor::Map(map)).unwrap()
    }

    /// `navigator.credentials.create()`: a `RegisterPublicKeyCredential` as JSON (as
    /// `static/passkey.js` sends it).
    pub fn register(&mut self, options: &Value) -> Value {
        let rp_id = str_of(options, "/publicKey/rp/id");
        let challenge = str_of(options, "/publicKey/challenge");
        self.user_handle = B64
            .decode(str_of(options, "/publicKey/user/id").as_bytes())
            .unwrap();
        let mut auth_data = sha256(rp_id.as_bytes());
        auth_data.push(UP | UV | BE | BS | AT);
        auth_data.extend_from_slice(&self.counter.to_be_bytes());
        auth_data.extend_from_slice(&[0; 16]); // AAGUID
        auth_data.extend_from_slice(
            &u16::try_from(self.credential_id.len())
                .unwrap()
                .to_be_bytes(),
        );
        auth_data.extend_from_slice(&self.credential_id);
        auth_data.extend_from_slice(&self.cose_key());
        let attestation: BTreeMap<Cbor, Cbor> = [
            (Cbor::Text("fmt".into()), Cbor::Text("none".into())),
            (Cbor::Text("attStmt".into()), Cbor::Map(BTreeMap::new())),
            (Cbor::Text("authData".into()), Cbor::Bytes(auth_data)),
        ]
        .into_iter()
        .collect();
        let attestation = serde_cbor_2::to_vec(&Cbor::Map(attestation)).unwrap();
        let id = B64.encode(&self.credential_id);
        json!({
            "id": id,
            "rawId": id,
            "type": "public-key",
            "response": {
                "attestationObject": B64.encode(&attestation),
                "clientDataJSON": B64.encode(&Self::client_data("webauthn.create", challenge)),
                "transports": ["internal", "hybrid"],
            },
            "clientExtensionResults": {},
        })
    }

    /// `navigator.credentials.get()` with the next counter value.
    pub fn assert(&mut self, options: &Value) -> Value {
        self.counter += 1;
        self.assert_with_counter(options, self.counter)
    }

    /// An assertion (`PublicKeyCredential` as JSON) over the challenge in `options` (sign-in
    /// options carry `rpId`; any other options are signed for the tests' RP ID, `localhost`).
    pub fn assert_with_counter(&self, options: &Value, counter: u32) -> Value {
        let rp_id = options
            .pointer("/publicKey/rpId")
            .and_then(Value::as_str)
            .unwrap_or(DEFAULT_RP_ID);
        let challenge = str_of(options, "/publicKey/challenge");
        let mut auth_data = sha256(rp_id.as_bytes());
        auth_data.push(UP | UV | BE | BS);
        auth_data.extend_from_slice(&counter.to_be_bytes());
        let client_data = Self::client_data("webauthn.get", challenge);
        let mut signed = auth_data.clone();
        signed.extend_from_slice(&sha256(&client_data));
        let signature: Signature = self.key.sign(&signed);
        let id = B64.encode(&self.credential_id);
        json!({
            "id": id,
            "rawId": id,
            "type": "public-key",
            "response": {
                "authenticatorData": B64.encode(&auth_data),
                "clientDataJSON": B64.encode(&client_data),
                "signature": B64.encode(signature.to_der().as_bytes()),
                "userHandle": B64.encode(&self.user_handle),
            },
            "clientExtensionResults": {},
        })
    }
}
