//! `wasi:config/store`: the values a plugin's manifest grants it
//! (`[grants.config]`, `${ENV}` already expanded). Values are secrets as far
//! as the host is concerned: they are never logged or printed, only handed
//! to the plugin that was granted them.

use super::bindings::wasi::config::store::{Error, Host};
use super::state::PluginState;
use std::collections::BTreeMap;
use std::fmt;

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
}

impl fmt::Debug for ConfigValues {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_map()
            .entries(self.0.keys().map(|k| (k, "<redacted>")))
            .finish()
    }
}

impl Host for PluginState {
    fn get(&mut self, key: String) -> wasmtime::Result<Result<Option<String>, Error>> {
        Ok(Ok(self.grants.config.get(&key).map(str::to_string)))
    }

    fn get_all(&mut self) -> wasmtime::Result<Result<Vec<(String, String)>, Error>> {
        Ok(Ok(self
            .grants
            .config
            .0
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect()))
    }
}
