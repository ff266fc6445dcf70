//! Event Grid shared access signatures (`aeg-sas-token`), as the Azure SDKs'
//! `generate_sas` makes them: `r=<resource>&e=<expiry>&s=<signature>`, each
//! part percent-encoded, the signature the base64 HMAC-SHA256 of
//! `r=…&e=…` under the base64-decoded access key.
//!
//! gridlet checks the signature against each configured secret and the
//! expiry against the clock. It does not check `r` (the topic endpoint the
//! publisher was configured with): behind proxies and port maps the URL a
//! publisher used is not one gridlet can know, and whoever holds the key can
//! sign any resource anyway.

use hmac::{Hmac, Mac};
use sha2::Sha256;
use time::{OffsetDateTime, PrimitiveDateTime, format_description::well_known::Rfc3339};

/// Why a token was refused (for the rate-limited log line, never the response).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SasError {
    /// Not `r=…&e=…&s=…`.
    #[error("aeg-sas-token is not of the form r=…&e=…&s=…")]
    Shape,
    /// The expiry is not a date gridlet can read.
    #[error("aeg-sas-token's expiry `{0}` is not a date")]
    Expiry(String),
    /// The expiry is in the past.
    #[error("aeg-sas-token expired at {0}")]
    Expired(String),
    /// No configured secret made this signature.
    #[error("aeg-sas-token's signature does not match")]
    Signature,
}

/// Check `token` against `keys` (each a base64 access key) at `now`.
pub fn verify(token: &str, keys: &[Vec<u8>], now: OffsetDateTime) -> Result<(), SasError> {
    let (unsigned, signature) = token.rsplit_once("&s=").ok_or(SasError::Shape)?;
    let expiry = unsigned
        .split('&')
        .find_map(|part| part.strip_prefix("e="))
        .ok_or(SasError::Shape)?;
    if !unsigned.starts_with("r=") {
        return Err(SasError::Shape);
    }
    let expiry = decode(expiry);
    let expires = parse_expiry(&expiry).ok_or_else(|| SasError::Expiry(expiry.clone()))?;
    if expires <= now {
        return Err(SasError::Expired(expiry));
    }
    let signature = decode(signature);
    let mut matched = subtle::Choice::from(0);
    for key in keys {
        let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(key) else {
            continue;
        };
        mac.update(unsigned.as_bytes());
        let expected = base64_encode(&mac.finalize().into_bytes());
        // Compare digests, so the comparison takes the same time whatever
        // the signature's length or content.
        let (expected, given) = (digest(expected.as_bytes()), digest(signature.as_bytes()));
        matched |= subtle::ConstantTimeEq::ct_eq(&expected[..], &given[..]);
    }
    if bool::from(matched) {
        Ok(())
    } else {
        Err(SasError::Signature)
    }
}

/// A secret as an HMAC key: the access key's base64 decoded. A secret that
/// is not base64 cannot sign tokens (Event Grid's keys always are).
pub fn key(secret: &str) -> Option<Vec<u8>> {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD
        .decode(secret.trim())
        .ok()
        .filter(|k| !k.is_empty())
}

/// Sign `resource` until `expires` with `secret` (for tests and tools: what
/// the Azure SDK's `generate_sas` returns for the same inputs).
pub fn sign(resource: &str, expires: &str, secret: &str) -> Option<String> {
    let key = key(secret)?;
    let unsigned = format!("r={}&e={}", encode(resource), encode(expires));
    let mut mac = Hmac::<Sha256>::new_from_slice(&key).ok()?;
    mac.update(unsigned.as_bytes());
    let signature = base64_encode(&mac.finalize().into_bytes());
    Some(format!("{unsigned}&s={}", encode(&signature)))
}

/// The expiry formats the SDKs write: Python's `str(datetime)`
/// (`2026-11-30 01:00:00+00:00`, with or without fractions or offset),
/// RFC 3339, and .NET/Java's invariant `M/d/yyyy h:mm:ss AM` (UTC).
fn parse_expiry(text: &str) -> Option<OffsetDateTime> {
    use time::macros::format_description;
    let text = text.trim();
    if let Ok(t) = OffsetDateTime::parse(text, &Rfc3339) {
        return Some(t);
    }
    let with_offset = [
        format_description!(
            "[year]-[month]-[day] [hour]:[minute]:[second][offset_hour sign:mandatory]:[offset_minute]"
        ),
        format_description!(
            "[year]-[month]-[day] [hour]:[minute]:[second].[subsecond][offset_hour sign:mandatory]:[offset_minute]"
        ),
    ];
    if let Some(t) = with_offset
        .iter()
        .find_map(|f| OffsetDateTime::parse(text, f).ok())
    {
        return Some(t);
    }
    let utc = [
        format_description!("[year]-[month]-[day] [hour]:[minute]:[second]"),
        format_description!("[year]-[month]-[day] [hour]:[minute]:[second].[subsecond]"),
        format_description!(
            "[month padding:none]/[day padding:none]/[year] [hour repr:12 padding:none]:[minute]:[second] [period]"
        ),
    ];
    utc.iter()
        .find_map(|f| PrimitiveDateTime::parse(text, f).ok())
        .map(PrimitiveDateTime::assume_utc)
}

fn base64_encode(bytes: &[u8]) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

fn digest(bytes: &[u8]) -> [u8; 32] {
    use sha2::Digest;
    Sha256::digest(bytes).into()
}

fn decode(s: &str) -> String {
    percent_encoding::percent_decode_str(s)
        .decode_utf8_lossy()
        .into_owned()
}

/// Percent-encode as Python's `quote(…, safe="~()*!.'")` does.
fn encode(s: &str) -> String {
    use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};
    const SAFE: &AsciiSet = &NON_ALPHANUMERIC
        .remove(b'-')
        .remove(b'_')
        .remove(b'.')
        .remove(b'~')
        .remove(b'(')
        .remove(b')')
        .remove(b'*')
        .remove(b'!')
        .remove(b'\'');
    utf8_percent_encode(s, SAFE).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: &str = "c2VjcmV0LWtleS1mb3ItdGVzdHM="; // base64("secret-key-for-tests")

    fn now() -> OffsetDateTime {
        OffsetDateTime::parse("2026-11-29T12:00:00Z", &Rfc3339).expect("date")
    }

    #[test]
    fn a_token_signed_with_the_key_passes_until_it_expires() {
        let keys = vec![key(KEY).expect("base64")];
        for expires in [
            "2026-11-29 13:00:00+00:00",
            "2026-11-29 13:00:00.123456+00:00",
            "2026-11-29 13:00:00",
            "2026-11-29T13:00:00Z",
            "11/29/2026 1:00:00 PM",
        ] {
            let token = sign(
                "https://t.example/api/events?apiVersion=2018-01-01",
                expires,
                KEY,
            )
            .expect("sign");
            assert_eq!(verify(&token, &keys, now()), Ok(()), "{expires}: {token}");
        }
        let old = sign(
            "https://t.example/api/events",
            "2026-11-29 11:59:59+00:00",
            KEY,
        )
        .expect("sign");
        assert!(matches!(
            verify(&old, &keys, now()),
            Err(SasError::Expired(_))
        ));
    }

    #[test]
    fn another_key_a_changed_expiry_or_a_bad_shape_is_refused() {
        let keys = vec![key(KEY).expect("base64")];
        let other = sign("r", "2026-11-29 13:00:00", "b3RoZXIta2V5").expect("sign");
        assert_eq!(verify(&other, &keys, now()), Err(SasError::Signature));
        let good = sign("r", "2026-11-29 13:00:00", KEY).expect("sign");
        let stretched = good.replace("2026-11-29", "2027-11-29");
        assert_eq!(verify(&stretched, &keys, now()), Err(SasError::Signature));
        assert_eq!(verify("garbage", &keys, now()), Err(SasError::Shape));
        let undated = "r=x&e=tomorrow&s=abc";
        assert!(matches!(
            verify(undated, &keys, now()),
            Err(SasError::Expiry(_))
        ));
    }
}
