//! Where guest code runs: a tokio runtime of its own, so plugins that spin,
//! allocate or flood never take the threads the webhook, the journal and
//! dispatch run on. It has one thread fewer than the machine has cores, so
//! a core stays free for the webhook and the kernel's own network work; a
//! spinning plugin yields to other plugins at every epoch tick. Its threads
//! keep normal priority: measured on 2 cores, a lower one (nice 10, or
//! `SCHED_IDLE`) let a busy guest thread stall the webhook's ack for 0.5 to
//! 25 s, most likely while it held a lock the host needed (docs/BENCHMARKS.md,
//! neighbours).

use std::future::Future;

/// A runtime for guest code.
pub struct GuestPool {
    runtime: Option<tokio::runtime::Runtime>,
}

impl GuestPool {
    /// A pool of `threads` worker threads.
    pub fn new(threads: usize) -> std::io::Result<Self> {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(threads.max(1))
            .thread_name("gridlet-guest")
            .enable_all()
            .build()?;
        Ok(Self {
            runtime: Some(runtime),
        })
    }

    /// Run `work` on the pool and wait for it from wherever the caller runs.
    pub async fn run<T: Send + 'static>(
        &self,
        work: impl Future<Output = T> + Send + 'static,
    ) -> Result<T, tokio::task::JoinError> {
        match &self.runtime {
            Some(runtime) => runtime.spawn(work).await,
            None => tokio::spawn(work).await,
        }
    }
}

impl Drop for GuestPool {
    fn drop(&mut self) {
        // Dropped from async code too (tests, shutdown): never block there.
        if let Some(runtime) = self.runtime.take() {
            runtime.shutdown_background();
        }
    }
}
