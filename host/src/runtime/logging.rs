//! `wasi:logging` and the plugin's stdout/stderr, both into the delivery's
//! [`Activity`] (and so into `tracing`).

use super::activity::{Activity, Level};
use super::bindings::wasi::logging::logging::{self, Host};
use bytes::Bytes;
use std::io;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use tokio::io::AsyncWrite;
use wasmtime_wasi::cli::{IsTerminal, StdoutStream};
use wasmtime_wasi::p2::{OutputStream, Pollable, StreamResult};

/// The `wasi:logging` capability's state for one delivery.
pub struct PluginLog(pub Arc<Activity>);

impl Host for PluginLog {
    fn log(
        &mut self,
        level: logging::Level,
        context: String,
        message: String,
    ) -> wasmtime::Result<()> {
        let level = match level {
            logging::Level::Trace => Level::Trace,
            logging::Level::Debug => Level::Debug,
            logging::Level::Info => Level::Info,
            logging::Level::Warn => Level::Warn,
            logging::Level::Error => Level::Error,
            logging::Level::Critical => Level::Critical,
        };
        self.0.log(level, &context, &message);
        Ok(())
    }
}

/// Longest partial line kept before it is logged anyway.
const MAX_LINE: usize = 8 * 1024;

/// A plugin's stdout or stderr: complete lines become log entries.
#[derive(Clone)]
pub struct CapturedOutput {
    activity: Arc<Activity>,
    stream: &'static str,
    level: Level,
    partial: Arc<Mutex<Vec<u8>>>,
}

impl CapturedOutput {
    /// Capture stdout (logged at info).
    pub fn stdout(activity: Arc<Activity>) -> Self {
        Self::new(activity, "stdout", Level::Info)
    }

    /// Capture stderr (logged at warn).
    pub fn stderr(activity: Arc<Activity>) -> Self {
        Self::new(activity, "stderr", Level::Warn)
    }

    fn new(activity: Arc<Activity>, stream: &'static str, level: Level) -> Self {
        Self {
            activity,
            stream,
            level,
            partial: Arc::default(),
        }
    }

    /// Split `bytes` into lines, each logged (linear in the bytes written,
    /// however many lines they hold).
    fn write(&self, bytes: &[u8]) {
        let mut partial = self.partial.lock().unwrap_or_else(|e| e.into_inner());
        let mut rest = bytes;
        while let Some(end) = rest.iter().position(|&b| b == b'\n') {
            if partial.is_empty() {
                self.emit(&rest[..end]);
            } else {
                partial.extend_from_slice(&rest[..end]);
                let line = std::mem::take(&mut *partial);
                self.emit(&line);
            }
            rest = &rest[end + 1..];
        }
        partial.extend_from_slice(rest);
        if partial.len() > MAX_LINE {
            let line: Vec<u8> = std::mem::take(&mut *partial);
            self.emit(&line);
        }
    }

    /// Log what is left without a newline (called when the delivery ends).
    pub fn flush_partial(&self) {
        let line = std::mem::take(&mut *self.partial.lock().unwrap_or_else(|e| e.into_inner()));
        if !line.is_empty() {
            self.emit(&line);
        }
    }

    fn emit(&self, line: &[u8]) {
        if !self.activity.room_for(line.len()) {
            return;
        }
        let text = String::from_utf8_lossy(line);
        self.activity
            .log(self.level, self.stream, text.trim_end_matches('\r'));
    }
}

impl IsTerminal for CapturedOutput {
    fn is_terminal(&self) -> bool {
        false
    }
}

impl StdoutStream for CapturedOutput {
    fn async_stream(&self) -> Box<dyn AsyncWrite + Send + Sync> {
        Box::new(self.clone())
    }

    /// Write straight into the activity: the default adapter hands every
    /// write to a background task and back, which costs more than the write.
    fn p2_stream(&self) -> Box<dyn OutputStream> {
        Box::new(self.clone())
    }
}

#[async_trait::async_trait]
impl Pollable for CapturedOutput {
    async fn ready(&mut self) {}
}

impl OutputStream for CapturedOutput {
    fn write(&mut self, bytes: Bytes) -> StreamResult<()> {
        CapturedOutput::write(self, &bytes);
        Ok(())
    }

    fn flush(&mut self) -> StreamResult<()> {
        Ok(())
    }

    fn check_write(&mut self) -> StreamResult<usize> {
        Ok(64 * 1024)
    }
}

impl AsyncWrite for CapturedOutput {
    fn poll_write(
        self: Pin<&mut Self>,
        _: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        self.write(buf);
        Poll::Ready(Ok(buf.len()))
    }

    fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}
