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
//! `target/wasm32-wasip2/release/` is the plugin. For a cheaper instance,
//! build for `wasm32-unknown-unknown` (no WASI imports; the crate brings an
//! allocator for it) and make a component with `wasm-tools component new`:
//! docs/plugins/rust.md, "A cheaper instance".

wit_bindgen::generate!({
    path: "../../wit",
    world: "gridlet:plugin/plugin",
    pub_export_macro: true,
    export_macro_name: "__export_bindings",
    default_bindings_module: "gridlet_plugin",
    generate_all,
});

/// Export a type implementing [`Plugin`] as the component's handler.
#[macro_export]
macro_rules! export {
    ($plugin:ty) => {
        type __GridletPlugin = $crate::Reported<$plugin>;
        $crate::__export_bindings!(__GridletPlugin with_types_in $crate);
    };
}

/// A plugin whose panics reach the host with their message: built for
/// `wasm32-wasip2`, std prints it to stderr (which the host captures); built
/// for `wasm32-unknown-unknown` there is no stderr, so it is logged at error
/// level with the context `panic`. [`export!`] wraps every plugin in it.
#[doc(hidden)]
pub struct Reported<P>(core::marker::PhantomData<P>);

impl<P: Plugin> Plugin for Reported<P> {
    fn handle(event: Event) -> Result<(), HandlerError> {
        #[cfg(all(target_arch = "wasm32", target_os = "unknown"))]
        {
            static HOOK: std::sync::Once = std::sync::Once::new();
            HOOK.call_once(|| {
                std::panic::set_hook(Box::new(|info| {
                    wasi::logging::logging::log(
                        wasi::logging::logging::Level::Error,
                        "panic",
                        &info.to_string(),
                    );
                }));
            });
        }
        P::handle(event)
    }
}

pub mod config;
#[cfg(all(target_arch = "wasm32", target_os = "unknown"))]
mod heap;
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
