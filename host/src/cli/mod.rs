//! Subcommands: each turns its arguments into calls on the library and
//! prints for people.

pub mod admin_api;
pub mod compile;
pub mod dead_letters;
pub mod one_line;
pub mod plugins;
pub mod run;
pub mod send;
pub mod serve;
pub mod sink;

use std::io::IsTerminal;
use tracing_subscriber::EnvFilter;

/// Log to stderr for people; `RUST_LOG` overrides `default`.
pub fn init_logging(default: &str) {
    init_logging_as(default, false);
}

/// Log to stderr, as JSON lines (one object per line, fields flattened)
/// when `json`; `RUST_LOG` overrides `default`. The human format escapes
/// control characters in every field (a plugin's message cannot forge a
/// line of the host's log) and is coloured only on a terminal.
pub fn init_logging_as(default: &str, json: bool) {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let _ = if json {
        builder.json().flatten_event(true).try_init()
    } else {
        builder
            .with_ansi(std::io::stderr().is_terminal())
            .fmt_fields(one_line::OneLineFields)
            .try_init()
    };
}
