//! Where guest code runs: a tokio runtime of its own, so plugins that spin,
//! allocate or flood never take the threads the webhook, the journal and
//! dispatch run on. Its threads run at a lower scheduling priority (nice
//! 10), so on a busy host the kernel serves ingest first; a spinning plugin
//! still yields to other plugins at every epoch tick.

use std::future::Future;

/// A runtime for guest code.
pub struct GuestPool {
    runtime: Option<tokio::runtime::Runtime>,
}

/// The `nice` value of guest threads.
const GUEST_NICENESS: i32 = 10;

impl GuestPool {
    /// A pool of `threads` worker threads.
    pub fn new(threads: usize) -> std::io::Result<Self> {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(threads.max(1))
            .thread_name("gridlet-guest")
            .enable_all()
            .on_thread_start(|| {
                // Best effort: a host that forbids it just runs guests at
                // normal priority. `setpriority` on thread id 0 is this
                // thread (Linux schedules threads individually).
                // SAFETY: setpriority only reads its integer arguments.
                unsafe {
                    libc::setpriority(libc::PRIO_PROCESS, 0, GUEST_NICENESS);
                }
            })
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
