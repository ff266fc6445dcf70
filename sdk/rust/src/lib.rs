//! Write gridlet plugins in Rust.
//!
//! This crate holds the bindings for the `gridlet:plugin` world (generated
//! from the repository's `wit/` folder) and a few small helpers so that a
//! plugin reads like the reaction it implements:
//!
//! ```ignore
//! use gridlet_plugin::{export, Event, HandlerError, MlEvent, Plugin};
//!
//! struct Alert;
//! impl Plugin for Alert {
//!     fn handle(event: Event) -> Result<(), HandlerError> {
//!         if let MlEvent::RunStatusChanged(run) = &event.data {
//!             gridlet_plugin::log::info(&format!("run {} is {}", run.run_id, run.run_status));
//!         }
//!         Ok(())
//!     }
//! }
//! export!(Alert);
//! ```
//!
//! Build with `cargo build --target wasm32-wasip2 --release`; the `.wasm` in
//! `target/wasm32-wasip2/release/` is the plugin.

wit_bindgen::generate!({
    path: "../../wit",
    world: "gridlet:plugin/plugin",
    pub_export_macro: true,
    export_macro_name: "export",
    default_bindings_module: "gridlet_plugin",
    generate_all,
});

pub mod config;
pub mod http;
pub mod kv;
pub mod log;

pub use exports::gridlet::plugin::handler::Guest as Plugin;
pub use gridlet::plugin::types::{
    DatasetDriftDetected, Event, HandlerError, MlEvent, ModelDeployed, ModelRegistered,
    RunCompleted, RunStatusChanged,
};

/// Look a name up in tags or properties (`run-tags`, `model-tags`, ...),
/// ignoring case in the name.
pub fn tag<'a>(pairs: &'a [(String, String)], name: &str) -> Option<&'a str> {
    pairs
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.as_str())
}
