//! Who may deliver: a shared secret and/or a Microsoft Entra ID bearer
//! token. Every configured method must pass.
//!
//! A secret (two at once for rotation, compared in constant time) may
//! arrive in any carrier a real sender uses, all accepted by default:
//! the operator's query parameter (`?code=`) and header
//! (`x-gridlet-secret`), the CloudEvents webhook spec's
//! `Authorization: Bearer` and `?access_token=`, and Event Grid's publisher
//! key `aeg-sas-key` (header or query) or a signature made with it,
//! `aeg-sas-token` (see [`super::sas`]).

use crate::lograte::LogRate;
use axum::http::HeaderMap;
use jsonwebtoken::jwk::JwkSet;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use sha2::{Digest, Sha256};
use std::sync::{Arc, OnceLock, RwLock};
use std::time::{Duration, Instant};
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
    /// The secrets as `aeg-sas-token` signing keys (those that are base64).
    sas_keys: Vec<Vec<u8>>,
}

/// Query parameters that carry a secret besides the operator's own: the
/// CloudEvents webhook spec's and Event Grid's publisher key.
const QUERY_CARRIERS: [&str; 2] = ["access_token", "aeg-sas-key"];

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
            sas_keys: secrets.iter().filter_map(|s| super::sas::key(s)).collect(),
        }
    }

    /// Does the request carry an accepted secret, in any carrier?
    pub fn check(&self, query: Option<&str>, headers: &HeaderMap) -> Result<(), String> {
        let from_query = query
            .into_iter()
            .flat_map(|q| q.split('&'))
            .filter_map(|pair| {
                let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
                let name = decode(name);
                (name == self.query_param || QUERY_CARRIERS.contains(&name.as_str()))
                    .then(|| decode(value))
            });
        let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
        let bearer = |v: &str| {
            v.split_once(' ')
                .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
                .map(|(_, token)| token.trim().to_string())
        };
        let from_headers = [
            header(&self.header).map(|v| bearer(v).unwrap_or_else(|| v.to_string())),
            header("authorization").and_then(bearer),
            header("aeg-sas-key").map(str::to_string),
        ];
        let mut accepted = false;
        // Every candidate is compared: which carrier held the secret does
        // not show in the time taken.
        for given in from_query.chain(from_headers.into_iter().flatten()) {
            accepted |= self.accepts(given.as_bytes());
        }
        if accepted {
            return Ok(());
        }
        match header("aeg-sas-token") {
            Some(token) => {
                super::sas::verify(token, &self.sas_keys, time::OffsetDateTime::now_utc())
                    .map_err(|e| e.to_string())
            }
            None => Err("missing or wrong secret".into()),
        }
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
/// JWKS, the issuer and audience (both required in the token), expiry and
/// not-before, and optionally app roles.
#[derive(Clone)]
pub struct EntraAuth {
    issuer: String,
    audience: String,
    required_roles: Vec<String>,
    keys: Arc<RwLock<JwkSet>>,
    /// Where the keys come from, to fetch them again when a token names a
    /// key not in the set (Entra rotates keys); at most once per
    /// [`REFETCH_EVERY`], however many unknown keys arrive.
    source: Option<Arc<KeySource>>,
}

struct KeySource {
    url: String,
    last_fetch: tokio::sync::Mutex<Option<Instant>>,
}

/// The shortest time between two fetches of the key set caused by unknown
/// key ids (Microsoft's guidance: refresh on an unknown `kid`, not more
/// often than every few minutes).
pub const REFETCH_EVERY: Duration = Duration::from_secs(300);

impl std::fmt::Debug for EntraAuth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EntraAuth")
            .field("issuer", &self.issuer)
            .field("audience", &self.audience)
            .field("required_roles", &self.required_roles)
            .finish()
    }
}

impl EntraAuth {
    /// Validate tokens from `issuer` for `audience` against `keys`.
    pub fn new(issuer: &str, audience: &str, keys: JwkSet) -> Self {
        Self {
            issuer: issuer.to_string(),
            audience: audience.to_string(),
            required_roles: Vec::new(),
            keys: Arc::new(RwLock::new(keys)),
            source: None,
        }
    }

    /// Require every one of `roles` in the token's `roles` claim.
    pub fn with_required_roles(mut self, roles: Vec<String>) -> Self {
        self.required_roles = roles;
        self
    }

    /// Fetch the keys again from `url` when a token names an unknown key
    /// (the set was fetched from there `at`).
    pub fn with_key_url(mut self, url: &str, fetched: Option<Instant>) -> Self {
        self.source = Some(Arc::new(KeySource {
            url: url.to_string(),
            last_fetch: tokio::sync::Mutex::new(fetched),
        }));
        self
    }

    /// Replace the signing keys (after a JWKS refresh).
    pub fn set_keys(&self, keys: JwkSet) {
        *self.keys.write().unwrap_or_else(|e| e.into_inner()) = keys;
    }

    /// Fetch the key set from its URL now, if one is configured.
    pub async fn refresh(&self) -> Result<(), String> {
        let Some(source) = &self.source else {
            return Ok(());
        };
        let keys = fetch_jwks(&source.url).await?;
        *source.last_fetch.lock().await = Some(Instant::now());
        self.set_keys(keys);
        Ok(())
    }

    /// Is `Authorization: Bearer <jwt>` present and valid? The error says
    /// why, for the host's log only (the client gets a bare 401).
    pub async fn check(&self, headers: &HeaderMap) -> Result<(), String> {
        let token = headers
            .get("authorization")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .ok_or("no bearer token")?;
        let header =
            jsonwebtoken::decode_header(token).map_err(|e| format!("bad token header: {e}"))?;
        let key = match self.key(header.kid.as_deref()) {
            Ok(key) => key,
            Err(why) => {
                // Perhaps Entra rotated its keys: fetch them again (rate-limited).
                if header.kid.is_some() && self.refetch().await {
                    self.key(header.kid.as_deref())?
                } else {
                    return Err(why);
                }
            }
        };
        let mut validation = Validation::new(Algorithm::RS256);
        validation.set_issuer(&[&self.issuer]);
        validation.set_audience(&[&self.audience]);
        validation.set_required_spec_claims(&["exp", "iss", "aud"]);
        validation.validate_nbf = true;
        let claims = jsonwebtoken::decode::<serde_json::Value>(token, &key, &validation)
            .map_err(|e| format!("token refused: {e}"))?
            .claims;
        let roles: Vec<&str> = claims
            .get("roles")
            .and_then(serde_json::Value::as_array)
            .map(|r| r.iter().filter_map(serde_json::Value::as_str).collect())
            .unwrap_or_default();
        if let Some(missing) = self
            .required_roles
            .iter()
            .find(|r| !roles.contains(&r.as_str()))
        {
            return Err(format!("token refused: it lacks the role `{missing}`"));
        }
        Ok(())
    }

    fn key(&self, kid: Option<&str>) -> Result<DecodingKey, String> {
        let keys = self.keys.read().unwrap_or_else(|e| e.into_inner());
        let jwk = match kid {
            Some(kid) => keys
                .find(kid)
                .ok_or_else(|| format!("no key with kid {kid}"))?,
            None => keys.keys.first().ok_or("the key set is empty")?,
        };
        DecodingKey::from_jwk(jwk).map_err(|e| format!("unusable key: {e}"))
    }

    /// Fetch the key set again unless that was done within
    /// [`REFETCH_EVERY`]; true if a new set was fetched.
    async fn refetch(&self) -> bool {
        let Some(source) = &self.source else {
            return false;
        };
        let mut last = source.last_fetch.lock().await;
        if last.is_some_and(|at| at.elapsed() < REFETCH_EVERY) {
            return false;
        }
        *last = Some(Instant::now());
        match fetch_jwks(&source.url).await {
            Ok(keys) => {
                tracing::info!("fetched the Entra key set again: a token named an unknown key");
                self.set_keys(keys);
                true
            }
            Err(e) => {
                tracing::warn!("cannot fetch the Entra key set again: {e}");
                false
            }
        }
    }
}

/// Fetch a JWKS document.
pub async fn fetch_jwks(url: &str) -> Result<JwkSet, String> {
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .map_err(|e| e.to_string())?;
    let response = client
        .get(url)
        .send()
        .await
        .and_then(reqwest::Response::error_for_status)
        .map_err(|e| format!("{url}: {}", e.without_url()))?;
    let text = response
        .text()
        .await
        .map_err(|e| format!("{url}: {}", e.without_url()))?;
    serde_json::from_str(&text).map_err(|e| format!("{url}: not a JWKS: {e}"))
}

/// Every configured check; none configured means auth is off.
#[derive(Debug, Clone, Default)]
pub struct Auth {
    /// The shared-secret check, if secrets are configured.
    pub secret: Option<SecretAuth>,
    /// The Entra ID check, if configured.
    pub entra: Option<EntraAuth>,
}

/// Refused requests' log lines: an outsider hammering the endpoint with
/// wrong secrets cannot flood the host's log (the metric counts them all).
fn refusals() -> &'static LogRate {
    static RATE: OnceLock<LogRate> = OnceLock::new();
    RATE.get_or_init(|| LogRate::new(5, 50))
}

impl Auth {
    /// True when no check is configured.
    pub fn is_off(&self) -> bool {
        self.secret.is_none() && self.entra.is_none()
    }

    /// Does the request pass every configured check?
    pub async fn check(&self, query: Option<&str>, headers: &HeaderMap) -> bool {
        let refused = |why: &str| {
            if refusals().allow() {
                tracing::warn!(
                    suppressed_before = refusals().suppressed(),
                    "request refused: {why}"
                );
            }
            false
        };
        if let Some(secret) = &self.secret
            && let Err(why) = secret.check(query, headers)
        {
            return refused(&why);
        }
        if let Some(entra) = &self.entra
            && let Err(why) = entra.check(headers).await
        {
            return refused(&why);
        }
        true
    }
}
