//! The compile cache: compiled components on disk, keyed by the component's
//! content hash and the engine's configuration, so a restart or a reload of
//! a known version loads in milliseconds instead of compiling again (seconds
//! for Python or JavaScript guests).
//!
//! Files are `<state_dir>/compiled/<sha256 of the .wasm>-<engine key>.cwasm`,
//! written to a temporary name and renamed into place, so a crash never
//! leaves half a file under a real name. The folder is gridlet's own state
//! and is trusted like the journal: loading a `.cwasm` maps native code.

use super::compiler::Compiler;
use crate::runtime::{LoadError, Runtime};
use sha2::{Digest, Sha256};
use std::hash::{Hash, Hasher};
use std::path::{Path, PathBuf};
use wasmtime::component::Component;

/// The SHA-256 of a component's bytes, as lowercase hex: a version's identity.
pub fn content_hash(bytes: &[u8]) -> String {
    Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Where a version's compiled code came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Compiled {
    /// Compiled now (and written to the cache).
    Fresh,
    /// Loaded from the cache on disk.
    FromCache,
    /// The serving version's code, reused (only the manifest changed).
    Reused,
}

impl Compiled {
    /// The word the status uses.
    pub fn as_str(self) -> &'static str {
        match self {
            Compiled::Fresh => "compiled",
            Compiled::FromCache => "cache",
            Compiled::Reused => "reused",
        }
    }
}

/// Compiled components on disk.
pub struct CompileCache {
    dir: PathBuf,
    engine_key: String,
}

impl CompileCache {
    /// A cache in `dir` (created when first written) for `runtime`'s engine.
    pub fn new(dir: PathBuf, runtime: &Runtime) -> Self {
        let mut hasher = std::hash::DefaultHasher::new();
        runtime
            .engine()
            .precompile_compatibility_hash()
            .hash(&mut hasher);
        Self {
            dir,
            engine_key: format!("{:016x}", hasher.finish()),
        }
    }

    fn path(&self, hash: &str) -> PathBuf {
        self.dir.join(format!("{hash}-{}.cwasm", self.engine_key))
    }

    /// The component for `bytes` (whose hash is `hash`): from the cache when
    /// it is there, else compiled (in this process) and stored. A cache that
    /// cannot be read or written only costs a compile; it is never an error.
    pub fn component(
        &self,
        runtime: &Runtime,
        hash: &str,
        bytes: &[u8],
    ) -> Result<(Component, Compiled), LoadError> {
        self.component_with(runtime, hash, bytes, &Compiler::InProcess)
    }

    /// [`CompileCache::component`], compiling with `compiler`: a child
    /// compiler writes the cache file, which is then loaded from disk.
    pub fn component_with(
        &self,
        runtime: &Runtime,
        hash: &str,
        bytes: &[u8],
        compiler: &Compiler,
    ) -> Result<(Component, Compiled), LoadError> {
        let path = self.path(hash);
        if path.exists() {
            // SAFETY: the file was written by `Component::serialize` of an
            // engine with the same configuration (the name says so), through
            // a rename, in gridlet's own state folder; wasmtime checks its
            // header and compatibility again before using it.
            match unsafe { Component::deserialize_file(runtime.engine(), &path) } {
                Ok(component) => return Ok((component, Compiled::FromCache)),
                Err(e) => tracing::warn!(
                    "compile cache {}: unusable ({e:#}); compiling again",
                    path.display()
                ),
            }
        }
        let Compiler::Child(child) = compiler else {
            let component = runtime.compile(bytes)?;
            if let Err(e) = self.store(&path, &component) {
                tracing::warn!("compile cache {}: cannot write: {e:#}", path.display());
            }
            return Ok((component, Compiled::Fresh));
        };
        std::fs::create_dir_all(&self.dir).map_err(|e| {
            LoadError::Compile(format!("compile cache {}: {e}", self.dir.display()))
        })?;
        child.compile(runtime.settings(), bytes, &path)?;
        // SAFETY: as above; the child wrote the file for an engine built
        // from the same settings, and wasmtime checks compatibility.
        let component = unsafe { Component::deserialize_file(runtime.engine(), &path) }
            .map_err(|e| LoadError::Compile(format!("the compiled code does not load: {e:#}")))?;
        Ok((component, Compiled::Fresh))
    }

    /// Write `code` (a compiled component) as the cache file for `hash`.
    pub fn write(&self, hash: &str, code: &[u8]) -> anyhow::Result<()> {
        write_atomically(&self.dir, &self.path(hash), code)
    }

    fn store(&self, path: &Path, component: &Component) -> anyhow::Result<()> {
        write_atomically(&self.dir, path, &component.serialize()?)
    }
}

/// Write `code` to `path` in `dir` through a temporary name unique per
/// writer (two processes may compile the same version at once; each renames
/// a whole file into place).
pub fn write_atomically(dir: &Path, path: &Path, code: &[u8]) -> anyhow::Result<()> {
    std::fs::create_dir_all(dir)?;
    let partial = path.with_extension(format!(
        "partial-{}-{:08x}",
        std::process::id(),
        rand::random::<u32>()
    ));
    std::fs::write(&partial, code)?;
    std::fs::rename(&partial, path)?;
    Ok(())
}
