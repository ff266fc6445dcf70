//! gridlet: an Azure Event Grid webhook for Azure Machine Learning events that
//! hands every event to sandboxed WebAssembly component plugins.
//!
//! The modules are the stages of an event's trip, left to right:
//! `event` (typed model) → `filter` (which plugins match) → `runtime`
//! (wasmtime sandbox, one module per WIT import) → `plugin` (manifests,
//! loading). A stage uses only the stages to its left.

pub mod admin;
pub mod dispatch;
pub mod event;
pub mod filter;
pub mod ingest;
pub mod journal;
pub mod plugin;
pub mod runtime;
pub mod serve;
