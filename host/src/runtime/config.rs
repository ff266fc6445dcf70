//! `wasi:config/store`: the values the operator granted a plugin
//! (`[plugins.<name>.config]` in gridlet.toml, `${ENV}` already expanded),
//! and the defaults its manifest declared for keys the operator left out.
//! Values are secrets as far as the host is concerned: they are never logged
//! or printed, only handed to the plugin that was granted them.

use super::bindings::wasi::config::store::{Error, Host};
use std::borrow::Cow;
use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;

/// A plugin's config values. `Debug` shows the keys, never the values.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct ConfigValues(BTreeMap<String, String>);

impl ConfigValues {
    /// Set `key` (replacing any earlier value).
    pub fn insert(&mut self, key: impl Into<String>, value: impl Into<String>) {
        self.0.insert(key.into(), value.into());
    }

    /// The value of `key`.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).map(String::as_str)
    }

    /// The keys, sorted.
    pub fn keys(&self) -> impl Iterator<Item = &str> {
        self.0.keys().map(String::as_str)
    }

    /// `text` with every config value of [`MIN_REDACTED_LEN`] or more
    /// characters replaced by `<config:KEY>`. Applied to everything a plugin
    /// logs and to every URL it calls, so a webhook URL or a token granted to
    /// a plugin never reaches the host's logs, even when the plugin prints it.
    pub fn redact<'a>(&self, text: &'a str) -> Cow<'a, str> {
        let mut out = Cow::Borrowed(text);
        for (key, value) in &self.0 {
            if value.chars().count() >= MIN_REDACTED_LEN && out.contains(value.as_str()) {
                out = Cow::Owned(out.replace(value.as_str(), &format!("<config:{key}>")));
            }
        }
        out
    }
}

/// Config values shorter than this are not redacted ("prod", "stage"): they
/// are settings, not secrets, and would garble every line they appear in.
pub const MIN_REDACTED_LEN: usize = 6;

impl fmt::Debug for ConfigValues {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_map()
            .entries(self.0.keys().map(|k| (k, "<redacted>")))
            .finish()
    }
}

/// The `wasi:config` capability's state for one delivery.
pub struct ConfigStore(pub Arc<ConfigValues>);

impl Host for ConfigStore {
    fn get(&mut self, key: String) -> wasmtime::Result<Result<Option<String>, Error>> {
        Ok(Ok(self.0.get(&key).map(str::to_string)))
    }

    fn get_all(&mut self) -> wasmtime::Result<Result<Vec<(String, String)>, Error>> {
        Ok(Ok(self
            .0
            .0
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect()))
    }
}
