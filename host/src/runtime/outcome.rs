//! How a delivery ended, in the terms the dispatcher and operators use.

use super::activity::Entry;
use super::limits::MemoryLimiter;
use super::store::{MAX_FIELDS_BYTES, MAX_HANDLES};
use std::fmt;
use wasmtime::Trap;
use wasmtime::component::ResourceTableError;
use wasmtime_wasi_http::FieldMapError;

/// The result of one `handle` call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// The plugin returned `ok`.
    Handled,
    /// The plugin returned `retry(reason)`.
    Retry(String),
    /// The plugin returned `reject(reason)`.
    Reject(String),
    /// The plugin did not return: a trap, a limit, or a host failure.
    Failed(Failure),
}

/// Longest reason a plugin's `retry` or `reject` keeps, in bytes (and a
/// trap's message, which quotes the plugin's stderr). A reason is logged,
/// stored with its delivery or dead letter and listed by the admin API, so
/// its size is not the plugin's to choose: an 8 MiB reason
/// on every event wrote 8 MiB per event to the journal (and a message over
/// NATS's 1 MiB payload could not be recorded in cluster mode).
pub const MAX_REASON_BYTES: usize = 2 * 1024;

/// A plugin's reason as the host keeps it, `why` being the reason already
/// redacted and `sent` how many bytes the plugin sent: cut at
/// [`MAX_REASON_BYTES`] (at a character boundary), a cut one ending with
/// how long it was.
pub(super) fn reason(why: &str, sent: usize) -> String {
    if why.len() <= MAX_REASON_BYTES {
        return why.to_string();
    }
    let kept = &why[..why.floor_char_boundary(MAX_REASON_BYTES)];
    format!("{kept}… ({sent} bytes in all)")
}

/// Why a plugin did not return.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    /// Which kind of failure.
    pub kind: FailureKind,
    /// What happened, in words.
    pub message: String,
}

/// The kinds of [`Failure`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailureKind {
    /// The wall-clock deadline passed.
    Deadline,
    /// The memory cap refused a growth.
    Memory,
    /// The fuel ran out.
    Fuel,
    /// The wasm stack overflowed.
    Stack,
    /// Any other trap: a panic, an abort, an unreachable.
    Trap,
    /// The component could not be instantiated or a host call failed.
    Host,
    /// Every slot of the instance pool was taken: nothing ran, and the
    /// delivery waits for one without the attempt counting.
    NoInstance,
}

impl FailureKind {
    /// A short lower-case name (`deadline`, `memory`, ...), for logs and metrics.
    pub fn as_str(self) -> &'static str {
        match self {
            FailureKind::Deadline => "deadline",
            FailureKind::Memory => "memory",
            FailureKind::Fuel => "fuel",
            FailureKind::Stack => "stack",
            FailureKind::Trap => "trap",
            FailureKind::Host => "host",
            FailureKind::NoInstance => "no-instance",
        }
    }
}

impl Outcome {
    /// A short lower-case name: `handled`, `retry`, `reject`, or the failure kind.
    pub fn label(&self) -> &'static str {
        match self {
            Outcome::Handled => "handled",
            Outcome::Retry(_) => "retry",
            Outcome::Reject(_) => "reject",
            Outcome::Failed(f) => f.kind.as_str(),
        }
    }

    /// The host may try again later (retry and every failure; not reject).
    pub fn is_retryable(&self) -> bool {
        matches!(self, Outcome::Retry(_) | Outcome::Failed(_))
    }
}

impl fmt::Display for Outcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Outcome::Handled => write!(f, "handled"),
            Outcome::Retry(why) => write!(f, "retry: {why}"),
            Outcome::Reject(why) => write!(f, "reject: {why}"),
            Outcome::Failed(failure) => write!(f, "{}: {}", failure.kind.as_str(), failure.message),
        }
    }
}

/// The error an epoch callback raises when the deadline has passed.
#[derive(Debug, thiserror::Error)]
#[error("deadline of {0:?} exceeded")]
pub(super) struct DeadlineExceeded(pub std::time::Duration);

/// Name the failure behind a call's error.
pub(super) fn classify(
    error: &wasmtime::Error,
    limiter: &MemoryLimiter,
    entries: &[Entry],
) -> Failure {
    if let Some(d) = error.downcast_ref::<DeadlineExceeded>() {
        return Failure {
            kind: FailureKind::Deadline,
            message: d.to_string(),
        };
    }
    if let Some(full) = error.downcast_ref::<wasmtime::PoolConcurrencyLimitError>() {
        return Failure {
            kind: FailureKind::NoInstance,
            message: format!("no instance free: {full}"),
        };
    }
    if let Some(asked) = limiter.refused {
        return Failure {
            kind: FailureKind::Memory,
            message: format!(
                "memory limit of {} reached (the plugin asked for {})",
                mib(limiter.cap()),
                mib(asked)
            ),
        };
    }
    let (kind, what) = match error.downcast_ref::<Trap>() {
        Some(Trap::OutOfFuel) => (FailureKind::Fuel, "fuel exhausted".to_string()),
        Some(Trap::StackOverflow) => (FailureKind::Stack, "wasm stack exhausted".to_string()),
        Some(trap) => (FailureKind::Trap, trap.to_string()),
        // The plugin's own doing (it created handles without end), so a
        // trap like any other, named by the cap it met.
        None if matches!(
            error.downcast_ref::<ResourceTableError>(),
            Some(ResourceTableError::Full)
        ) =>
        {
            (
                FailureKind::Trap,
                format!("resource table full: the plugin held {MAX_HANDLES} handles (the cap)"),
            )
        }
        None if matches!(
            error.downcast_ref::<FieldMapError>(),
            Some(FieldMapError::TotalSizeTooBig | FieldMapError::TooManyFields)
        ) =>
        {
            (
                FailureKind::Trap,
                format!(
                    "header fields too large: one set of fields may hold {} KiB (the cap)",
                    MAX_FIELDS_BYTES / 1024
                ),
            )
        }
        None => (FailureKind::Host, without_backtrace(error)),
    };
    // A panic's message goes to stderr just before the trap (or, from the
    // Rust SDK built without WASI, to the log with the context `panic`):
    // show the last few lines, without Rust's backtrace hint.
    let mut stderr: Vec<&str> = entries
        .iter()
        .rev()
        .filter_map(|e| match e {
            Entry::Log {
                context, message, ..
            } if context == "stderr" || context == "panic" => Some(message.as_str()),
            _ => None,
        })
        .filter(|line| !line.starts_with("note: run with `RUST_BACKTRACE"))
        .take(3)
        .collect();
    stderr.reverse();
    let message = if kind == FailureKind::Trap && !stderr.is_empty() {
        // Three lines of stderr may be 24 KiB: kept like a reason.
        let message = format!("{what} (stderr: {})", stderr.join(" | "));
        reason(&message, message.len())
    } else {
        what
    };
    Failure { kind, message }
}

/// The error and its causes, without the wasm backtrace wasmtime adds as
/// context (many lines of guest frames that say nothing to an operator).
fn without_backtrace(error: &wasmtime::Error) -> String {
    let parts: Vec<String> = error
        .chain()
        .map(|e| e.to_string())
        .filter(|m| !m.starts_with("error while executing at wasm backtrace"))
        .collect();
    parts.join(": ")
}

fn mib(bytes: usize) -> String {
    format!("{:.1} MiB", bytes as f64 / (1024.0 * 1024.0))
}
