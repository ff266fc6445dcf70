//! Plugins for the whole cluster: the `gridlet-plugins` object-store bucket.
//! An object per plugin, named after it: its `.wasm` as the data and its
//! manifest (if any) in the object's metadata, so a push changes both at
//! once. Every host mirrors the bucket into a folder and reconciles from
//! there (`plugin::pushed`).

use super::JournalError;
use async_nats::jetstream::{self, object_store, stream};
use futures_util::{Stream, StreamExt, TryStreamExt};
use std::collections::HashMap;
use tokio::io::AsyncReadExt;

/// The bucket.
const BUCKET: &str = "gridlet-plugins";
/// The metadata key holding the manifest's text.
const MANIFEST: &str = "manifest";

/// A pushed plugin as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PushedPlugin {
    /// The `.wasm`.
    pub wasm: Vec<u8>,
    /// The manifest's text, if one was pushed.
    pub manifest: Option<String>,
}

/// What changed in the bucket.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PluginChange {
    /// A plugin was pushed (again).
    Pushed(String),
    /// A plugin was removed.
    Removed(String),
}

/// The cluster's plugin bucket.
#[derive(Clone)]
pub struct PluginStore {
    store: object_store::ObjectStore,
}

fn failed(e: impl std::fmt::Display) -> JournalError {
    JournalError(format!("{BUCKET}: {e}"))
}

impl PluginStore {
    /// The bucket on `js`, created when missing.
    pub async fn open(js: &jetstream::Context, replicas: usize) -> Result<Self, JournalError> {
        if let Ok(store) = js.get_object_store(BUCKET).await {
            return Ok(Self { store });
        }
        let created = js
            .create_object_store(object_store::Config {
                bucket: BUCKET.into(),
                num_replicas: replicas,
                storage: stream::StorageType::File,
                ..Default::default()
            })
            .await;
        let store = match created {
            Ok(store) => store,
            // Another host created it first.
            Err(e) => js.get_object_store(BUCKET).await.map_err(|_| failed(e))?,
        };
        Ok(Self { store })
    }

    /// Store `name`'s files, replacing what was pushed before.
    pub async fn push(
        &self,
        name: &str,
        wasm: &[u8],
        manifest: Option<&str>,
    ) -> Result<(), JournalError> {
        let mut metadata = HashMap::new();
        if let Some(text) = manifest {
            metadata.insert(MANIFEST.to_string(), text.to_string());
        }
        let meta = object_store::ObjectMetadata {
            name: name.to_string(),
            metadata,
            ..Default::default()
        };
        let mut data = wasm;
        self.store.put(meta, &mut data).await.map_err(failed)?;
        Ok(())
    }

    /// Forget `name`; whether it was there.
    pub async fn remove(&self, name: &str) -> Result<bool, JournalError> {
        if self.store.info(name).await.is_err() {
            return Ok(false);
        }
        self.store.delete(name).await.map_err(failed)?;
        Ok(true)
    }

    /// The names pushed.
    pub async fn names(&self) -> Result<Vec<String>, JournalError> {
        let infos: Vec<object_store::ObjectInfo> = self
            .store
            .list()
            .await
            .map_err(failed)?
            .try_collect()
            .await
            .map_err(failed)?;
        Ok(infos
            .into_iter()
            .filter(|i| !i.deleted)
            .map(|i| i.name)
            .collect())
    }

    /// `name`'s files, if pushed.
    pub async fn get(&self, name: &str) -> Result<Option<PushedPlugin>, JournalError> {
        let mut object = match self.store.get(name).await {
            Ok(o) => o,
            Err(e) if e.kind() == object_store::GetErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(failed(e)),
        };
        let manifest = object.info().metadata.get(MANIFEST).cloned();
        let mut wasm = Vec::new();
        object.read_to_end(&mut wasm).await.map_err(failed)?;
        Ok(Some(PushedPlugin { wasm, manifest }))
    }

    /// Changes from now on (push or remove), until the connection fails.
    pub async fn changes(
        &self,
    ) -> Result<impl Stream<Item = Result<PluginChange, JournalError>> + use<>, JournalError> {
        let watch = self.store.watch().await.map_err(failed)?;
        Ok(watch.map(|info| {
            let info = info.map_err(failed)?;
            Ok(if info.deleted {
                PluginChange::Removed(info.name)
            } else {
                PluginChange::Pushed(info.name)
            })
        }))
    }
}
