//! The JetStream journal's own runtime.

use super::JournalError;
use std::future::Future;

/// The journal's own runtime: the NATS client's connection and every call
/// run here, so callers on any thread (an async worker included) only wait
/// on a channel.
pub(super) struct Io {
    runtime: Option<tokio::runtime::Runtime>,
}

impl Io {
    pub(super) fn start() -> Result<Self, JournalError> {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name("gridlet-nats")
            .enable_all()
            .build()
            .map_err(|e| JournalError(format!("cannot start the NATS runtime: {e}")))?;
        Ok(Self {
            runtime: Some(runtime),
        })
    }

    fn handle(&self) -> Option<&tokio::runtime::Handle> {
        self.runtime.as_ref().map(|r| r.handle())
    }

    pub(super) fn spawn(&self, f: impl Future<Output = ()> + Send + 'static) {
        if let Some(h) = self.handle() {
            h.spawn(f);
        }
    }

    /// Run `f` and wait for its output.
    pub(super) fn run<T: Send + 'static>(
        &self,
        f: impl Future<Output = T> + Send + 'static,
    ) -> Result<T, JournalError> {
        let (tx, rx) = std::sync::mpsc::sync_channel(1);
        self.spawn(async move {
            let _ = tx.send(f.await);
        });
        rx.recv()
            .map_err(|_| JournalError("the NATS runtime stopped".into()))
    }
}

impl Drop for Io {
    fn drop(&mut self) {
        // Dropping a runtime waits for its tasks and may not happen on an
        // async worker: let them go in the background.
        if let Some(runtime) = self.runtime.take() {
            runtime.shutdown_background();
        }
    }
}
