//! Subcommands: each turns its arguments into calls on the library and
//! prints for people.

pub mod admin_api;
pub mod dead_letters;
pub mod plugins;
pub mod run;
pub mod send;
pub mod serve;
pub mod sink;

use tracing_subscriber::EnvFilter;

/// Log to stderr; `RUST_LOG` overrides `default`.
pub fn init_logging(default: &str) {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .try_init();
}
