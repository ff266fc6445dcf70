//! Entra ID tokens for the tests: signed with the test key in
//! `tests/fixtures`, whose public half is `entra-jwks.json`.

use jsonwebtoken::{Algorithm, EncodingKey, Header};
use std::path::PathBuf;
use std::time::{SystemTime, UNIX_EPOCH};

/// The issuer the tests configure.
pub const ISSUER: &str =
    "https://login.microsoftonline.com/00000000-0000-0000-0000-00000000000a/v2.0";
/// The audience the tests configure.
pub const AUDIENCE: &str = "api://gridlet-webhook";

/// A file in `host/tests/fixtures`.
pub fn fixture(name: &str) -> PathBuf {
    super::root().join("host/tests/fixtures").join(name)
}

/// `claims` signed with the test key, naming `kid` in the header.
pub fn token(claims: serde_json::Value, kid: Option<&str>) -> String {
    let pem = std::fs::read(fixture("entra-test-key.pem")).expect("key");
    let key = EncodingKey::from_rsa_pem(&pem).expect("pem");
    let mut header = Header::new(Algorithm::RS256);
    header.kid = kid.map(str::to_string);
    jsonwebtoken::encode(&header, &claims, &key).expect("sign")
}

/// Seconds since the epoch.
pub fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock")
        .as_secs()
}

/// Headers carrying `token` as a bearer token.
pub fn bearer(token: &str) -> axum::http::HeaderMap {
    let mut h = axum::http::HeaderMap::new();
    h.insert(
        "authorization",
        format!("Bearer {token}").parse().expect("header"),
    );
    h
}

/// The test key's public half.
pub fn keys() -> jsonwebtoken::jwk::JwkSet {
    serde_json::from_slice(&std::fs::read(fixture("entra-jwks.json")).expect("jwks")).expect("jwks")
}
