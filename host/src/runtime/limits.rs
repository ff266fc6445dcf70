//! Per-plugin limits, and the memory limiter that enforces the memory cap
//! and remembers that it did, so a failed allocation is reported as a
//! memory-limit hit rather than as whatever trap the guest turned it into.

use std::time::Duration;
use wasmtime::ResourceLimiter;

/// What one plugin may use per delivery.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Most linear memory, in bytes, across the instance's memories.
    pub memory_bytes: usize,
    /// Wall-clock time for one `handle` call, outbound requests included.
    pub deadline: Duration,
    /// Wasm instructions' worth of fuel per delivery; `None` for no fuel cap.
    pub fuel: Option<u64>,
    /// Deliveries of this plugin running at once.
    pub max_concurrency: u32,
    /// Deliveries one instance may serve before it is discarded; 0 (the
    /// default) gives every delivery a fresh instance. See `runtime::reuse`
    /// for the isolation trade-off.
    pub reuse_instance: u32,
    /// Most key-value entries the plugin may keep (across its buckets).
    pub kv_keys: u64,
    /// Most bytes of key-value state (buckets, keys and values).
    pub kv_bytes: u64,
    /// Key-value bytes written per second, across its deliveries (writes
    /// over it wait); 0 for no pace.
    pub kv_write_bytes_per_second: u64,
    /// Key-value bytes read per second, across its deliveries (a read
    /// counts at least [`KV_READ_MIN_BYTES`]; reads over it wait); 0 for no
    /// pace.
    pub kv_read_bytes_per_second: u64,
}

/// What one key-value read counts against the read pace at least (a page
/// of the store): a lookup costs the host work whatever it returns.
pub const KV_READ_MIN_BYTES: usize = 4096;

impl Default for Limits {
    fn default() -> Self {
        Self {
            memory_bytes: 128 * 1024 * 1024,
            deadline: Duration::from_secs(30),
            fuel: None,
            max_concurrency: 4,
            reuse_instance: 0,
            kv_keys: 10_000,
            kv_bytes: 64 * 1024 * 1024,
            kv_write_bytes_per_second: 4 * 1024 * 1024,
            kv_read_bytes_per_second: 16 * 1024 * 1024,
        }
    }
}

/// Most instances a component may create (core modules, adapters).
const MAX_INSTANCES: usize = 64;
/// Most tables, and most elements per table.
const MAX_TABLES: usize = 64;
const MAX_TABLE_ELEMENTS: usize = 1_000_000;

/// Enforces [`Limits::memory_bytes`] over all of a store's memories.
#[derive(Debug)]
pub struct MemoryLimiter {
    cap: usize,
    used: usize,
    /// Set when a growth was refused: the size that was asked for.
    pub refused: Option<usize>,
}

impl MemoryLimiter {
    /// A limiter with `cap` bytes.
    pub fn new(cap: usize) -> Self {
        Self {
            cap,
            used: 0,
            refused: None,
        }
    }

    /// The cap, in bytes.
    pub fn cap(&self) -> usize {
        self.cap
    }

    /// Linear memory the store's instances hold, in bytes.
    pub fn used(&self) -> usize {
        self.used
    }
}

impl ResourceLimiter for MemoryLimiter {
    fn memory_growing(
        &mut self,
        current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        let total = self.used - current.min(self.used) + desired;
        if total > self.cap {
            self.refused = Some(total);
            return Ok(false);
        }
        self.used = total;
        Ok(true)
    }

    fn table_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        Ok(desired <= MAX_TABLE_ELEMENTS)
    }

    fn instances(&self) -> usize {
        MAX_INSTANCES
    }

    fn tables(&self) -> usize {
        MAX_TABLES
    }

    fn memories(&self) -> usize {
        MAX_INSTANCES
    }
}
