//! Making plugins match their files: the folder read at start-up
//! (`scan`, `declare_found`), one plugin reconciled, and the paths a
//! reconcile ends on when the files cannot serve (`reject`) or are gone
//! (`unload`).

use super::super::cache::{Compiled, content_hash};
use super::super::declared::Declared;
use super::super::files::{self, MAX_MANIFEST_BYTES};
use super::super::grants;
use super::super::{LoadedPlugin, Manifest, PluginTarget, plugin_name, sidecar};
use super::{Change, Registry, Rejection, Serving, short};
use std::path::Path;
use std::sync::Arc;
use std::time::{Instant, SystemTime};

impl Registry {
    /// The folder `name`'s files are read from: the plugins folder when it
    /// has the plugin (the operator's own files on this host win), else the
    /// pushed plugins' folder when that has it.
    fn folder_of(&self, name: &str) -> &Path {
        let wasm = format!("{name}.wasm");
        match &self.pushed {
            Some(pushed)
                if self.dir.join(&wasm).symlink_metadata().is_err()
                    && pushed.join(&wasm).symlink_metadata().is_ok() =>
            {
                pushed
            }
            _ => &self.dir,
        }
    }

    /// Reconcile every plugin in the folder and every plugin known before.
    /// Files whose names are not plugin names are reported and skipped.
    pub fn scan(&self) -> std::io::Result<Vec<(String, Change)>> {
        let (names, misnamed) = self.names()?;
        for why in misnamed {
            tracing::error!("plugin not loaded: {why}");
        }
        Ok(names
            .into_iter()
            .map(|name| {
                let change = self.reconcile(&name);
                (name, change)
            })
            .collect())
    }

    /// Declare every plugin [`scan`](Self::scan) would reconcile, from its
    /// manifest alone (every event when it has none), before anything is
    /// compiled: events that come while the start-up scan compiles (seconds
    /// per Python or JavaScript plugin) are kept for them, not attempted,
    /// instead of finding no plugin. A plugin whose manifest does not parse
    /// is left to the scan, which rejects it. The plugins declared.
    pub fn declare_found(&self) -> std::io::Result<usize> {
        let mut declared = 0;
        for name in self.names()?.0 {
            if self
                .slots()
                .get(&name)
                .is_some_and(|s| s.serving.is_some() || s.declared.is_some())
            {
                continue;
            }
            let dir = self.folder_of(&name);
            let manifest_path = sidecar(&dir.join(format!("{name}.wasm")));
            let manifest = match files::read(dir, &manifest_path, MAX_MANIFEST_BYTES) {
                Ok(None) => Manifest::default(),
                Ok(Some(bytes)) => {
                    let text = String::from_utf8_lossy(&bytes);
                    match Manifest::parse(&text, &manifest_path) {
                        Ok(manifest) => manifest,
                        Err(_) => continue,
                    }
                }
                Err(_) => continue,
            };
            self.publish(&name, None, |slot| {
                slot.declared = Some(Declared::from_manifest(&manifest));
                slot.provisional = true;
            });
            declared += 1;
        }
        Ok(declared)
    }

    /// The plugins in the folders and those the operator names; and why
    /// each `.wasm` file whose name is not a plugin name is skipped.
    fn names(&self) -> std::io::Result<(Vec<String>, Vec<String>)> {
        let mut misnamed = Vec::new();
        let mut names: Vec<String> = self.slots().keys().cloned().collect();
        // Plugins the operator names are declared even before their files come.
        names.extend(self.grants.named().map(str::to_string));
        let pushed = self.pushed.iter().filter(|d| d.is_dir());
        let entries: Vec<_> = std::iter::once(&self.dir)
            .chain(pushed)
            .map(std::fs::read_dir)
            .collect::<std::io::Result<_>>()?;
        for entry in entries.into_iter().flatten() {
            let path = entry?.path();
            // Whatever its kind: reconcile refuses what is not a regular
            // file, and the status says so.
            if path.extension().is_some_and(|x| x == "wasm") {
                match plugin_name(&path) {
                    Ok(name) => names.push(name),
                    Err(e) => misnamed.push(e.to_string()),
                }
            }
        }
        names.sort();
        names.dedup();
        Ok((names, misnamed))
    }

    /// Make plugin `name` match its files: load, replace, keep or unload it.
    pub fn reconcile(&self, name: &str) -> Change {
        let _one = self.reconciling.lock().unwrap_or_else(|e| e.into_inner());
        // A start-up declaration gives way to what the files say now (the
        // published set keeps it until this reconcile publishes).
        if let Some(slot) = self.slots().get_mut(name).filter(|s| s.provisional) {
            slot.provisional = false;
            slot.declared = None;
        }
        let dir = self.folder_of(name);
        let wasm = dir.join(format!("{name}.wasm"));
        let bytes = match files::read(dir, &wasm, self.max_plugin_bytes) {
            Ok(Some(bytes)) => bytes,
            Ok(None) => return self.unload(name),
            Err(why) => return self.reject(name, None, why, None),
        };
        let hash = content_hash(&bytes);
        let manifest_path = sidecar(&wasm);
        let manifest_text = match files::read(dir, &manifest_path, MAX_MANIFEST_BYTES) {
            Ok(None) => None,
            Ok(Some(bytes)) => match String::from_utf8(bytes) {
                Ok(text) => Some(text),
                Err(_) => {
                    let why = format!("{}: not UTF-8 text", manifest_path.display());
                    return self.reject(name, Some(hash), why, None);
                }
            },
            Err(why) => return self.reject(name, Some(hash), why, None),
        };
        let current = self.slots().get(name).and_then(|s| s.serving.clone());
        if let Some(c) = &current
            && c.hash == hash
            && c.manifest_text == manifest_text
        {
            // Back to the serving files (say, a broken copy was reverted).
            self.slots().entry(name.to_string()).or_default().rejected = None;
            return Change::Unchanged;
        }
        let manifest = match &manifest_text {
            Some(text) => Manifest::parse(text, &manifest_path),
            None => Ok(Manifest::default()),
        };
        let manifest = match manifest {
            Ok(manifest) => manifest,
            Err(e) => return self.reject(name, Some(hash), e.to_string(), None),
        };
        // A manifest file that reads declares the plugin while no version
        // serves (no file at all is not a declaration: any file dropped in
        // would then collect every event).
        let declares = manifest_text.is_some().then_some(&manifest);
        let resolved = match grants::resolve(name, &manifest, self.grants.of(name)) {
            Ok(resolved) => within_pool(resolved, self.runtime.settings().max_instances),
            Err(why) => {
                let why = format!("{}: {why}", wasm.display());
                return self.reject(name, Some(hash), why, declares);
            }
        };

        let started = Instant::now();
        let compiled = match &current {
            // Only the manifest changed: new limits, grants and filter on the
            // same compiled code.
            Some(c) if c.hash == hash => Ok((c.component.clone(), Compiled::Reused)),
            _ => self
                .cache
                .component_with(&self.runtime, &hash, &bytes, &self.compiler),
        };
        let prepared = compiled.and_then(|(component, how)| {
            let version = self
                .runtime
                .prepare(name, &component, resolved.limits, resolved.grants)?
                .with_version(short(&hash));
            Ok((component, how, version))
        });
        let (component, how, version) = match prepared {
            Ok(ok) => ok,
            Err(e) => {
                let why = format!("{}: {e}", wasm.display());
                return self.reject(name, Some(hash), why, declares);
            }
        };
        let history = self
            .slots()
            .entry(name.to_string())
            .or_default()
            .history
            .clone();
        let target = Arc::new(PluginTarget::new(
            self.runtime.clone(),
            LoadedPlugin {
                version: Arc::new(version),
                overall_concurrency: manifest.declared_concurrency(),
                filter: manifest.filter,
                retry: manifest.retry,
                source: wasm,
                manifest: manifest_text.is_some().then_some(manifest_path),
                warnings: resolved.warnings,
            },
            history,
        ));
        let serving = Serving {
            hash: hash.clone(),
            target,
            loaded_at: SystemTime::now(),
            compiled: how,
            load_time: started.elapsed(),
            component,
            manifest_text,
        };
        self.publish(name, Some(serving.clone()), |slot| {
            slot.rejected = None;
            slot.unloaded_at = None;
            slot.declared = None;
        });
        metrics::counter!("gridlet_plugin_reloads_total", "plugin" => name.to_string())
            .increment(1);
        let p = serving.target.plugin();
        let change = match current {
            None => Change::Loaded { hash: hash.clone() },
            Some(old) => Change::Replaced {
                old: old.hash,
                new: hash.clone(),
            },
        };
        tracing::info!(
            plugin = name,
            old = match &change {
                Change::Replaced { old, .. } => short(old),
                _ => "-",
            },
            new = short(&hash),
            code = how.as_str(),
            load_ms = serving.load_time.as_secs_f64() * 1000.0,
            filter = %p.filter.summary(),
            hosts = ?p.version.grants().outbound.allowed_hosts.entries(),
            "{} {}",
            if matches!(change, Change::Loaded { .. }) { "plugin loaded from" } else { "plugin reloaded from" },
            p.source.display(),
        );
        for warning in &p.warnings {
            tracing::warn!(
                plugin = name,
                "plugin asks for more than it was granted: {warning}"
            );
        }
        change
    }

    /// Files that cannot become a version: whatever serves keeps serving;
    /// if nothing does, the plugin stays declared (from `manifest` when it
    /// could be read, or because the operator names it) so its deliveries
    /// wait for a good version.
    fn reject(
        &self,
        name: &str,
        hash: Option<String>,
        reason: String,
        manifest: Option<&Manifest>,
    ) -> Change {
        metrics::counter!("gridlet_plugin_rejected_versions_total", "plugin" => name.to_string())
            .increment(1);
        tracing::error!(
            plugin = name,
            rejected = hash.as_deref().map_or("-", short),
            "plugin version rejected, the previous version (if any) keeps serving: {reason}"
        );
        let declared = self.declaration(name, manifest);
        let serving = self.serving(name);
        self.publish(name, serving, |slot| {
            slot.rejected = Some(Rejection {
                hash,
                reason: reason.clone(),
                at: SystemTime::now(),
            });
            if declared.is_some() {
                slot.declared = declared;
            }
        });
        Change::Rejected { reason }
    }

    /// What to declare of `name` while no version serves: its manifest's
    /// filter and policy when it could be read; every event when the
    /// operator names it and nothing better is known; else nothing.
    fn declaration(&self, name: &str, manifest: Option<&Manifest>) -> Option<Declared> {
        match manifest {
            Some(manifest) => Some(Declared::from_manifest(manifest)),
            None if self.grants.named().any(|n| n == name) => {
                Some(Declared::from_manifest(&Manifest::default()))
            }
            None => None,
        }
    }

    fn unload(&self, name: &str) -> Change {
        // A plugin the operator names stays declared without its files.
        let declared = self.declaration(name, None);
        let Some(old) = self.serving(name) else {
            let newly_declared =
                declared.is_some() && self.slots().get(name).is_none_or(|s| s.declared.is_none());
            self.publish(name, None, |slot| {
                // Never served (or already unloaded): forget a stale rejection.
                slot.rejected = None;
                if declared.is_some() {
                    slot.declared = declared;
                }
            });
            if newly_declared {
                tracing::warn!(
                    plugin = name,
                    "plugin named in gridlet.toml has no file yet: its events are kept until one loads"
                );
            }
            return Change::Unchanged;
        };
        self.publish(name, None, |slot| {
            slot.rejected = None;
            slot.unloaded_at = Some(SystemTime::now());
            slot.declared = declared;
        });
        tracing::info!(plugin = name, old = short(&old.hash), "plugin unloaded");
        Change::Unloaded
    }
}

/// A plugin cannot run more instances at once than the pool holds: its
/// concurrency is capped there, with a warning. (Plugins together may still
/// ask for more than the pool; a delivery that finds no free slot waits,
/// uncounted, for one.)
fn within_pool(mut resolved: grants::Resolved, pool: u32) -> grants::Resolved {
    if resolved.limits.max_concurrency > pool {
        resolved.warnings.push(format!(
            "limits.max_concurrency: {} is more than the instance pool holds ({pool}); running with {pool}",
            resolved.limits.max_concurrency
        ));
        resolved.limits.max_concurrency = pool;
    }
    resolved
}
