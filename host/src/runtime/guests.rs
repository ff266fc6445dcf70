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
use std::panic::AssertUnwindSafe;
use std::task::Poll;

/// A runtime for guest code.
pub struct GuestPool {
    runtime: Option<tokio::runtime::Runtime>,
}

impl GuestPool {
    /// A pool of `threads` worker threads; 0: no pool of its own, guest
    /// code runs on the caller's runtime (an embedder's choice, and the
    /// benchmarks', which time the call itself).
    pub fn new(threads: usize) -> std::io::Result<Self> {
        if threads == 0 {
            return Ok(Self { runtime: None });
        }
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(threads)
            .thread_name("gridlet-guest")
            .enable_all()
            .build()?;
        Ok(Self {
            runtime: Some(runtime),
        })
    }

    /// Run `work` on the pool and wait for it from wherever the caller
    /// runs; on the pool already, run it right here (a hand-off to another
    /// thread and back costs a fresh call's time several times over).
    /// A panic inside `work` is an error, as a spawned task's would be.
    pub async fn run<T: Send + 'static>(
        &self,
        work: impl Future<Output = T> + Send + 'static,
    ) -> Result<T, String> {
        match &self.runtime {
            Some(runtime) if !self.is_current(runtime) => {
                runtime.spawn(work).await.map_err(|e| e.to_string())
            }
            _ => caught(work).await,
        }
    }

    /// The pool's handle, to start tasks on it.
    pub fn handle(&self) -> Option<tokio::runtime::Handle> {
        self.runtime.as_ref().map(|r| r.handle().clone())
    }

    fn is_current(&self, runtime: &tokio::runtime::Runtime) -> bool {
        tokio::runtime::Handle::try_current().is_ok_and(|h| h.id() == runtime.handle().id())
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

/// `work`, with a panic while polling it turned into an error.
async fn caught<T>(work: impl Future<Output = T>) -> Result<T, String> {
    let mut work = std::pin::pin!(work);
    std::future::poll_fn(|cx| {
        match std::panic::catch_unwind(AssertUnwindSafe(|| work.as_mut().poll(cx))) {
            Ok(Poll::Ready(value)) => Poll::Ready(Ok(value)),
            Ok(Poll::Pending) => Poll::Pending,
            Err(panic) => {
                let why = panic
                    .downcast_ref::<&str>()
                    .map(|s| s.to_string())
                    .or_else(|| panic.downcast_ref::<String>().cloned())
                    .unwrap_or_else(|| "a panic".into());
                Poll::Ready(Err(format!("panicked: {why}")))
            }
        }
    })
    .await
}
