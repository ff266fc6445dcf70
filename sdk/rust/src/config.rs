//! Settings granted in the plugin's manifest (`[grants.config]`), through
//! `wasi:config/store`.

use crate::wasi::config::store;
use crate::HandlerError;

/// The value of `key`, or `None` when the manifest does not set it.
pub fn get(key: &str) -> Option<String> {
    store::get(key).ok().flatten()
}

/// The value of `key`, or a `reject` naming the missing key: a plugin that is
/// not configured can never handle the event, so retrying would not help.
pub fn require(key: &str) -> Result<String, HandlerError> {
    get(key).ok_or_else(|| {
        HandlerError::Reject(format!(
            "config key `{key}` is not set in the plugin's manifest"
        ))
    })
}
