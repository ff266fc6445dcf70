//! Subcommands: each turns its arguments into calls on the library and
//! prints for people.

pub mod admin_api;
pub mod compile;
pub mod dead_letters;
pub mod plugins;
pub mod run;
pub mod send;
pub mod serve;
pub mod sink;

use tracing_subscriber::EnvFilter;

/// Log to stderr for people; `RUST_LOG` overrides `default`.
pub fn init_logging(default: &str) {
    init_logging_as(default, false);
}

/// Log to stderr, as JSON lines (one object per line, fields flattened)
/// when `json`; `RUST_LOG` overrides `default`.
pub fn init_logging_as(default: &str, json: bool) {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let _ = if json {
        builder.json().flatten_event(true).try_init()
    } else {
        builder.try_init()
    };
}
