//! What a plugin did during one delivery: its log lines, key-value writes and
//! outbound requests, in order. Every entry is also emitted to `tracing`
//! with the plugin's name, the event id and the attempt, so operators see
//! plugin output in the host's log; `gridlet run` prints the entries.
//!
//! Log output is capped per delivery (lines and bytes): a plugin that floods
//! loses its extra lines, never the host's memory, and the number dropped is
//! reported once at the end. Across deliveries, what reaches the host's log
//! is rate-limited per plugin version ([`LogRate`]); lines over the rate
//! stay in the delivery's record but are not written to the log, and are
//! counted.

use super::config::ConfigValues;
pub use crate::lograte::LogRate;
use std::borrow::Cow;
use std::sync::{Arc, Mutex, MutexGuard};

/// Who is speaking: the plugin, its version, its config values (to redact
/// them) and its log rate.
#[derive(Debug)]
pub struct Source {
    /// The plugin's name.
    pub plugin: Arc<str>,
    /// The version's short content hash ("" when not known).
    pub version: Arc<str>,
    /// Its config values, redacted from everything it logs.
    pub config: Arc<ConfigValues>,
    /// Its log rate.
    pub rate: LogRate,
}

/// Severity of a plugin's log line (`wasi:logging` levels).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Level {
    /// Fine-grained tracing.
    Trace,
    /// Debugging detail.
    Debug,
    /// Normal operation.
    Info,
    /// Something odd.
    Warn,
    /// Something failed.
    Error,
    /// Something failed badly.
    Critical,
}

/// One thing a plugin did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Entry {
    /// A log line (from `wasi:logging`, or a line of stdout/stderr).
    Log {
        /// Its level (stdout is info, stderr is warn).
        level: Level,
        /// `wasi:logging` context, or `stdout` / `stderr`.
        context: String,
        /// The text.
        message: String,
    },
    /// A key-value change.
    KeyValue {
        /// The bucket.
        bucket: String,
        /// The key.
        key: String,
        /// `set (N bytes)`, `delete`, `increment by N → M`.
        change: String,
    },
    /// An outbound HTTP request.
    Http {
        /// The method.
        method: String,
        /// The URL.
        url: String,
        /// The status, or why there was none.
        result: Result<u16, String>,
    },
}

impl Entry {
    /// The bytes of text it holds, for the per-delivery caps.
    fn size(&self) -> usize {
        match self {
            Entry::Log {
                context, message, ..
            } => context.len() + message.len(),
            Entry::KeyValue {
                bucket,
                key,
                change,
            } => bucket.len() + key.len() + change.len(),
            Entry::Http {
                method,
                url,
                result,
            } => {
                method.len()
                    + url.len()
                    + match result {
                        Ok(_) => 3,
                        Err(why) => why.len(),
                    }
            }
        }
    }
}

impl std::fmt::Display for Entry {
    /// One line: `log   info  [context] message`, `kv    bucket/key  change`,
    /// `http  POST url → 200`.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Entry::Log {
                level,
                context,
                message,
            } => {
                let level = format!("{level:?}").to_lowercase();
                if context.is_empty() {
                    write!(f, "log   {level:<5} {message}")
                } else {
                    write!(f, "log   {level:<5} [{context}] {message}")
                }
            }
            Entry::KeyValue {
                bucket,
                key,
                change,
            } => write!(f, "kv    {bucket}/{key}  {change}"),
            Entry::Http {
                method,
                url,
                result: Ok(status),
            } => write!(f, "http  {method} {url} → {status}"),
            Entry::Http {
                method,
                url,
                result: Err(why),
            } => write!(f, "http  {method} {url} → {why}"),
        }
    }
}

/// Most key-value and HTTP entries kept per delivery.
const MAX_ENTRIES: usize = 10_000;

/// Most bytes of key-value and HTTP entries kept per delivery: a plugin
/// sending 10,000 requests with 16 KiB URLs would otherwise make the host
/// hold 160 MiB for it.
const MAX_RECORD_BYTES: usize = 1 << 20;

/// Longest URL written to the log or the record; a longer one is cut (at a
/// character boundary) and ends in `…`.
const MAX_URL_BYTES: usize = 2048;

/// `url`, cut to [`MAX_URL_BYTES`].
fn clip(url: &str) -> Cow<'_, str> {
    if url.len() <= MAX_URL_BYTES {
        return Cow::Borrowed(url);
    }
    let mut end = MAX_URL_BYTES;
    while !url.is_char_boundary(end) {
        end -= 1;
    }
    Cow::Owned(format!("{}…", &url[..end]))
}

/// Caps on a plugin's log output per delivery.
#[derive(Debug, Clone, Copy)]
pub struct LogLimits {
    /// Most lines kept.
    pub lines: u32,
    /// Most bytes kept.
    pub bytes: usize,
}

impl Default for LogLimits {
    fn default() -> Self {
        Self {
            lines: 1_000,
            bytes: 256 * 1024,
        }
    }
}

/// The activity of one delivery. Shared by every capability of the store.
#[derive(Debug)]
pub struct Activity {
    source: Arc<Source>,
    /// The delivery being recorded: event id and attempt (changes when a
    /// reused instance takes the next delivery).
    delivery: Mutex<(Arc<str>, u32)>,
    inner: Mutex<Inner>,
}

#[derive(Debug)]
struct Inner {
    entries: Vec<Entry>,
    lines_left: u32,
    bytes_left: usize,
    /// Room left for key-value and HTTP entries ([`MAX_RECORD_BYTES`]).
    record_bytes_left: usize,
    /// Log lines and entries not kept: over a per-delivery cap.
    dropped: u64,
    /// Lines kept in the record but not written to the log (over the rate).
    suppressed: u64,
}

impl Activity {
    /// Start recording for one delivery.
    pub fn new(source: Arc<Source>, event_id: &str, attempt: u32, limits: LogLimits) -> Arc<Self> {
        Arc::new(Self {
            source,
            delivery: Mutex::new((event_id.into(), attempt)),
            inner: Mutex::new(Inner {
                entries: Vec::new(),
                lines_left: limits.lines,
                bytes_left: limits.bytes,
                record_bytes_left: MAX_RECORD_BYTES,
                dropped: 0,
                suppressed: 0,
            }),
        })
    }

    fn inner(&self) -> MutexGuard<'_, Inner> {
        // A poisoned lock only means another thread panicked mid-push; the
        // entries are still usable.
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A log line from the plugin, subject to the per-delivery caps, with
    /// config values redacted. Its context counts against the byte cap like
    /// its message: both are the plugin's text, kept and written to the log.
    pub fn log(&self, level: Level, context: &str, message: &str) {
        // The caps first: a line over them costs a counter, not a copy, a
        // redaction or a log write, however many a plugin sends.
        if !self.room_for(context.len() + message.len()) {
            return;
        }
        let context = &*self.source.config.redact(context);
        let message = &*self.source.config.redact(message);
        let size = context.len() + message.len();
        {
            let mut inner = self.inner();
            if inner.lines_left == 0 || inner.bytes_left < size {
                inner.dropped += 1;
                return;
            }
            inner.lines_left -= 1;
            inner.bytes_left -= size;
            inner.entries.push(Entry::Log {
                level,
                context: context.to_string(),
                message: message.to_string(),
            });
            if !self.source.rate.allow() {
                inner.suppressed += 1;
                return;
            }
        }
        let (event_id, attempt) = self.delivery();
        let (plugin, version, event_id) = (&*self.source.plugin, &*self.source.version, &*event_id);
        match level {
            Level::Trace => {
                tracing::trace!(plugin, version, event_id, attempt, context, "{message}")
            }
            Level::Debug => {
                tracing::debug!(plugin, version, event_id, attempt, context, "{message}")
            }
            Level::Info => tracing::info!(plugin, version, event_id, attempt, context, "{message}"),
            Level::Warn => tracing::warn!(plugin, version, event_id, attempt, context, "{message}"),
            Level::Error | Level::Critical => {
                tracing::error!(plugin, version, event_id, attempt, context, "{message}")
            }
        }
    }

    /// A key-value change.
    pub fn key_value(&self, bucket: &str, key: &str, change: String) {
        let (event_id, attempt) = self.delivery();
        if self.loud() {
            tracing::debug!(
                plugin = &*self.source.plugin,
                version = &*self.source.version,
                event_id = &*event_id,
                attempt,
                bucket,
                key,
                "kv {change}"
            );
        }
        self.record(Entry::KeyValue {
            bucket: bucket.to_string(),
            key: key.to_string(),
            change,
        });
    }

    /// An outbound request and its result, with config values redacted
    /// from the URL (webhook URLs carry their secret in the path).
    pub fn http(&self, method: &str, url: &str, result: Result<u16, String>) {
        let url = clip(&self.source.config.redact(url)).into_owned();
        let url = url.as_str();
        let (event_id, attempt) = self.delivery();
        let (plugin, version, event_id) = (&*self.source.plugin, &*self.source.version, &*event_id);
        match &result {
            _ if !self.loud() => {}
            Ok(status) => {
                tracing::info!(
                    plugin,
                    version,
                    event_id,
                    attempt,
                    method,
                    url,
                    status,
                    "outbound request"
                )
            }
            Err(why) => {
                tracing::warn!(
                    plugin,
                    version,
                    event_id,
                    attempt,
                    method,
                    url,
                    why,
                    "outbound request failed"
                )
            }
        }
        self.record(Entry::Http {
            method: method.to_string(),
            url: url.to_string(),
            result,
        });
    }

    /// An outbound request the sandbox refused: `message` as a warning line
    /// in the plugin's log (capped and rate-limited like its own lines) and
    /// the request in the record, `denied: {short}`.
    pub fn denied(&self, method: &str, url: &str, short: &str, message: &str) {
        self.log(Level::Warn, "gridlet", message);
        let url = clip(&self.source.config.redact(url)).into_owned();
        self.record(Entry::Http {
            method: method.to_string(),
            url,
            result: Err(format!("denied: {short}")),
        });
    }

    /// Is there room for a line of `len` bytes? Counts it as dropped if not.
    pub fn room_for(&self, len: usize) -> bool {
        let mut inner = self.inner();
        if inner.lines_left == 0 || inner.bytes_left < len {
            inner.dropped += 1;
            return false;
        }
        true
    }

    /// May this line go to the host's log? Takes a token from the plugin's
    /// log rate; a line over the rate is counted instead.
    fn loud(&self) -> bool {
        if self.source.rate.allow() {
            return true;
        }
        self.inner().suppressed += 1;
        false
    }

    /// Keep a non-log entry, up to a cap so a looping plugin cannot grow it
    /// without bound.
    /// Keep `entry` if the delivery's record has room for it; count it as
    /// dropped if not.
    fn record(&self, entry: Entry) {
        let size = entry.size();
        let mut inner = self.inner();
        if inner.entries.len() < MAX_ENTRIES && inner.record_bytes_left >= size {
            inner.record_bytes_left -= size;
            inner.entries.push(entry);
        } else {
            inner.dropped += 1;
        }
    }

    fn delivery(&self) -> (Arc<str>, u32) {
        self.delivery
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Start over for another delivery on the same instance: its event id
    /// and attempt, fresh caps, no entries.
    pub fn restart(&self, limits: LogLimits, event_id: &str, attempt: u32) {
        *self.delivery.lock().unwrap_or_else(|e| e.into_inner()) = (event_id.into(), attempt);
        let mut inner = self.inner();
        inner.entries.clear();
        inner.lines_left = limits.lines;
        inner.bytes_left = limits.bytes;
        inner.record_bytes_left = MAX_RECORD_BYTES;
        inner.dropped = 0;
        inner.suppressed = 0;
    }

    /// Finish: the entries, and the number of log lines dropped over the
    /// caps or kept out of the host's log by the rate.
    pub fn finish(&self) -> (Vec<Entry>, u64) {
        let mut inner = self.inner();
        let dropped = inner.dropped + inner.suppressed;
        if dropped > 0 {
            let (event_id, attempt) = self.delivery();
            tracing::warn!(
                plugin = &*self.source.plugin,
                version = &*self.source.version,
                event_id = &*event_id,
                attempt,
                dropped,
                capped = inner.dropped,
                rate_limited = inner.suppressed,
                "plugin log lines not written: over the per-delivery cap or the plugin's log rate"
            );
        }
        (std::mem::take(&mut inner.entries), dropped)
    }
}
