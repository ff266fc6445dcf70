//! Outbound I/O on the host's runtime. A plugin's connections (connect,
//! TLS, the HTTP exchange) are driven by the host's threads, not the guest
//! thread: a plugin opening and dropping connections in a loop then costs
//! the guest thread only its own calls, and its neighbours' deliveries do
//! not queue behind its sockets. The work stays bounded per plugin by the
//! connection permits, the timeouts and the response cap.

use std::pin::Pin;
use std::task::{Context, Poll};
use tokio::runtime::Handle;
use tokio::task::JoinHandle;
use wasmtime_wasi_http::Error;

/// A future running on the host's runtime, aborted when dropped (the
/// guest dropped its request, or the delivery ended), so a connection never
/// outlives what holds it.
pub(super) struct OnHost<T>(JoinHandle<Result<T, Error>>);

impl<T: Send + 'static> OnHost<T> {
    /// Run `work` on `host`.
    pub(super) fn spawn(
        host: &Handle,
        work: impl Future<Output = Result<T, Error>> + Send + 'static,
    ) -> Self {
        Self(host.spawn(work))
    }
}

impl<T> Future for OnHost<T> {
    type Output = Result<T, Error>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        Pin::new(&mut self.0).poll(cx).map(|joined| {
            // Cancelled only when the host's runtime shuts down.
            joined.unwrap_or_else(|e| Err(Error::InternalError(Some(format!("outbound I/O: {e}")))))
        })
    }
}

impl<T> Drop for OnHost<T> {
    fn drop(&mut self) {
        self.0.abort();
    }
}
