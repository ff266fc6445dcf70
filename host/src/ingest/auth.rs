//! Who may deliver: a shared secret (query string or header, two at once
//! for rotation, compared in constant time) and/or a Microsoft Entra ID
//! bearer token. Every configured method must pass.

use axum::http::HeaderMap;
use jsonwebtoken::jwk::JwkSet;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use sha2::{Digest, Sha256};
use std::sync::{Arc, RwLock};
use subtle::ConstantTimeEq;

/// The secret check.
#[derive(Clone)]
pub struct SecretAuth {
    /// Digests of the accepted secrets (one or two).
    digests: Vec<[u8; 32]>,
    /// Query parameter that may carry the secret.
    pub query_param: String,
    /// Header that may carry the secret (`Bearer ` is stripped when present).
    pub header: String,
}

impl std::fmt::Debug for SecretAuth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SecretAuth")
            .field("secrets", &self.digests.len())
            .field("query_param", &self.query_param)
            .field("header", &self.header)
            .finish()
    }
}

impl SecretAuth {
    /// Accept any of `secrets` in `?<query_param>=` or the `header`.
    pub fn new(secrets: &[String], query_param: &str, header: &str) -> Self {
        Self {
            digests: secrets.iter().map(|s| digest(s.as_bytes())).collect(),
            query_param: query_param.to_string(),
            header: header.to_ascii_lowercase(),
        }
    }

    /// Does the request carry an accepted secret?
    pub fn check(&self, query: Option<&str>, headers: &HeaderMap) -> bool {
        let from_query = query
            .into_iter()
            .flat_map(|q| q.split('&'))
            .find_map(|pair| {
                let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
                (decode(name) == self.query_param).then(|| decode(value))
            });
        let from_header = headers
            .get(&self.header)
            .and_then(|v| v.to_str().ok())
            .map(|v| v.strip_prefix("Bearer ").unwrap_or(v).to_string());
        [from_query, from_header]
            .into_iter()
            .flatten()
            .any(|given| self.accepts(given.as_bytes()))
    }

    /// Compare digests, so neither the content nor the length of a secret
    /// leaks through timing; every candidate is compared.
    fn accepts(&self, given: &[u8]) -> bool {
        let given = digest(given);
        let mut ok = subtle::Choice::from(0);
        for expected in &self.digests {
            ok |= expected.ct_eq(&given);
        }
        ok.into()
    }
}

fn digest(bytes: &[u8]) -> [u8; 32] {
    Sha256::digest(bytes).into()
}

fn decode(s: &str) -> String {
    percent_encoding::percent_decode_str(&s.replace('+', " "))
        .decode_utf8_lossy()
        .into_owned()
}

/// Microsoft Entra ID bearer-token validation: RS256 signatures against a
/// JWKS, issuer, audience, expiry.
#[derive(Clone)]
pub struct EntraAuth {
    issuer: String,
    audience: String,
    keys: Arc<RwLock<JwkSet>>,
}

impl std::fmt::Debug for EntraAuth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EntraAuth")
            .field("issuer", &self.issuer)
            .field("audience", &self.audience)
            .finish()
    }
}

impl EntraAuth {
    /// Validate tokens from `issuer` for `audience` against `keys`.
    pub fn new(issuer: &str, audience: &str, keys: JwkSet) -> Self {
        Self {
            issuer: issuer.to_string(),
            audience: audience.to_string(),
            keys: Arc::new(RwLock::new(keys)),
        }
    }

    /// Replace the signing keys (after a JWKS refresh).
    pub fn set_keys(&self, keys: JwkSet) {
        *self.keys.write().unwrap_or_else(|e| e.into_inner()) = keys;
    }

    /// Is `Authorization: Bearer <jwt>` present and valid? The error says
    /// why, for the host's log only (the client gets a bare 401).
    pub fn check(&self, headers: &HeaderMap) -> Result<(), String> {
        let token = headers
            .get("authorization")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .ok_or("no bearer token")?;
        let header =
            jsonwebtoken::decode_header(token).map_err(|e| format!("bad token header: {e}"))?;
        let keys = self.keys.read().unwrap_or_else(|e| e.into_inner());
        let jwk = match &header.kid {
            Some(kid) => keys
                .find(kid)
                .ok_or_else(|| format!("no key with kid {kid}"))?,
            None => keys.keys.first().ok_or("the key set is empty")?,
        };
        let key = DecodingKey::from_jwk(jwk).map_err(|e| format!("unusable key: {e}"))?;
        let mut validation = Validation::new(Algorithm::RS256);
        validation.set_issuer(&[&self.issuer]);
        validation.set_audience(&[&self.audience]);
        jsonwebtoken::decode::<serde_json::Value>(token, &key, &validation)
            .map(|_| ())
            .map_err(|e| format!("token refused: {e}"))
    }
}

/// Every configured check; none configured means auth is off.
#[derive(Debug, Clone, Default)]
pub struct Auth {
    /// The shared-secret check, if secrets are configured.
    pub secret: Option<SecretAuth>,
    /// The Entra ID check, if configured.
    pub entra: Option<EntraAuth>,
}

impl Auth {
    /// True when no check is configured.
    pub fn is_off(&self) -> bool {
        self.secret.is_none() && self.entra.is_none()
    }

    /// Does the request pass every configured check?
    pub fn check(&self, query: Option<&str>, headers: &HeaderMap) -> bool {
        if let Some(secret) = &self.secret
            && !secret.check(query, headers)
        {
            tracing::warn!("request refused: missing or wrong secret");
            return false;
        }
        if let Some(entra) = &self.entra
            && let Err(why) = entra.check(headers)
        {
            tracing::warn!("request refused: {why}");
            return false;
        }
        true
    }
}
