//! Settings through `wasi:config/store`: the values the operator grants the
//! plugin (gridlet.toml `[plugins.<name>.config]`), and the defaults the
//! plugin's manifest declares under `[config]` for keys the operator left out.

use crate::wasi::config::store;
use crate::HandlerError;

/// The value of `key`, or `None` when neither the operator nor the
/// manifest's default sets it.
pub fn get(key: &str) -> Option<String> {
    store::get(key).ok().flatten()
}

/// Every key this plugin can read (values included): its own grant and
/// defaults, never another plugin's.
pub fn all() -> Vec<(String, String)> {
    store::get_all().unwrap_or_default()
}

/// The value of `key`, or a `reject` naming the missing key: a plugin that is
/// not configured can never handle the event, so retrying would not help.
pub fn require(key: &str) -> Result<String, HandlerError> {
    get(key).ok_or_else(|| {
        HandlerError::Reject(format!(
            "config key `{key}` is not set (the operator grants it in gridlet.toml [plugins.<name>.config])"
        ))
    })
}
