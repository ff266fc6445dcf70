//! The engine every plugin shares, and the clock that ends deadlines.

use super::RuntimeSettings;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::Duration;
use wasmtime::{Config, Engine, InstanceAllocationStrategy, PoolingAllocationConfig};

/// The engine: pooling allocator, copy-on-write memory images, epoch
/// interruption, optional fuel. Keeping memory resident only pays with
/// `PAGEMAP_SCAN` (otherwise every reuse memsets the whole resident part,
/// which costs more than the page faults it saves: docs/BENCHMARKS.md), so
/// without it memory is not kept resident.
pub(super) fn build_engine(settings: &RuntimeSettings) -> anyhow::Result<Engine> {
    let engine = |scan: bool| {
        let mut pool = PoolingAllocationConfig::default();
        pool.total_component_instances(settings.max_instances)
            .total_stacks(settings.max_instances)
            .max_memory_size(settings.max_memory_bytes)
            .table_keep_resident(64 * 1024);
        if scan {
            pool.pagemap_scan(wasmtime::Enabled::Yes)
                .linear_memory_keep_resident(settings.memory_keep_resident);
        }
        let mut config = Config::new();
        config
            .wasm_component_model(true)
            .epoch_interruption(true)
            .consume_fuel(settings.fuel)
            .memory_init_cow(true)
            .allocation_strategy(InstanceAllocationStrategy::Pooling(pool));
        Engine::new(&config)
    };
    if settings.pagemap_scan {
        match engine(true) {
            Ok(engine) => return Ok(engine),
            Err(e) => tracing::info!("PAGEMAP_SCAN unavailable ({e}); not keeping memory resident"),
        }
    }
    Ok(engine(false)?)
}

/// Advances the engine's epoch on a thread of its own until dropped.
pub(super) struct EpochTicker {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl EpochTicker {
    pub(super) fn start(engine: Engine, tick: Duration) -> std::io::Result<Self> {
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let thread = std::thread::Builder::new()
            .name("gridlet-epoch".into())
            .spawn(move || {
                while !flag.load(Ordering::Relaxed) {
                    std::thread::sleep(tick);
                    engine.increment_epoch();
                }
            })?;
        Ok(Self {
            stop,
            thread: Some(thread),
        })
    }
}

impl Drop for EpochTicker {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}
