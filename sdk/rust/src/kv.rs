//! The plugin's own key-value namespace, through `wasi:keyvalue`.

use crate::wasi::keyvalue::{atomics, store};
use crate::HandlerError;

/// The plugin's default bucket.
pub fn bucket() -> Result<store::Bucket, HandlerError> {
    store::open("default").map_err(retry)
}

/// Read `key` from the default bucket as UTF-8 text.
pub fn get(key: &str) -> Result<Option<String>, HandlerError> {
    let value = bucket()?.get(key).map_err(retry)?;
    Ok(value.map(|v| String::from_utf8_lossy(&v).into_owned()))
}

/// Write `key` in the default bucket.
pub fn set(key: &str, value: &str) -> Result<(), HandlerError> {
    bucket()?.set(key, value.as_bytes()).map_err(retry)
}

/// Add `delta` to the counter at `key` and return the new value.
pub fn increment(key: &str, delta: u64) -> Result<u64, HandlerError> {
    atomics::increment(&bucket()?, key, delta).map_err(retry)
}

fn retry(e: store::Error) -> HandlerError {
    let why = match e {
        store::Error::NoSuchStore => "no such store".to_string(),
        store::Error::AccessDenied => "access denied".to_string(),
        store::Error::Other(s) => s,
    };
    HandlerError::Retry(format!("key-value store: {why}"))
}
