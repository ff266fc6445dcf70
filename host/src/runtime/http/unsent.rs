//! A request body that is never cut off under the guest.
//!
//! When a request is refused or fails before its body was sent (a host
//! not granted, an address not allowed, a refused connection, a reset),
//! the body's receiving end would be dropped while the guest may still be
//! writing it. The guest's write then fails, which some guest runtimes do
//! not expect before the response future has answered: the JavaScript
//! engine of componentize-js traps ("event loop error, but no exception is
//! pending") instead of rejecting `fetch`. So a body dropped before its end
//! is drained, discarded, until the guest finishes or its instance ends,
//! and the guest learns what happened from the response future, as
//! `wasi:http` means it to.

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use http_body_util::BodyExt;
use std::pin::Pin;
use std::task::{Context, Poll};
use wasmtime_wasi_http::{Error, WasiBody};

/// `body`, drained in the background if dropped before its end.
pub(super) fn guarded(body: WasiBody) -> WasiBody {
    Unsent(Some(body)).boxed_unsync()
}

struct Unsent(Option<WasiBody>);

impl Body for Unsent {
    type Data = Bytes;
    type Error = Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Error>>> {
        match self.0.as_mut() {
            Some(body) => Pin::new(body).poll_frame(cx),
            None => Poll::Ready(None),
        }
    }

    fn is_end_stream(&self) -> bool {
        self.0.as_ref().is_none_or(Body::is_end_stream)
    }

    fn size_hint(&self) -> SizeHint {
        self.0.as_ref().map(Body::size_hint).unwrap_or_default()
    }
}

impl Drop for Unsent {
    fn drop(&mut self) {
        let Some(mut body) = self.0.take() else {
            return;
        };
        if body.is_end_stream() {
            return;
        }
        // Only ever dropped on the runtime that serves the guest; without
        // one there is no guest left to write.
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            runtime.spawn(async move { while let Some(Ok(_)) = body.frame().await {} });
        }
    }
}
