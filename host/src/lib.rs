//! gridlet: an Azure Event Grid webhook for Azure Machine Learning events that
//! hands every event to sandboxed WebAssembly component plugins.
//!
//! The modules are the stages of an event's trip, left to right:
//! `ingest` (the webhook) → `event` (typed model) → `filter` (which plugins
//! match) → `journal` (durable store) → `dispatch` (retries, dead letters) →
//! `runtime` (wasmtime sandbox, one module per WIT import) → `plugin`
//! (manifests, loading) → `admin`; `serve` wires them together. A stage uses
//! only the stages to its left; where it must hand work rightwards it
//! defines a trait that a later stage implements.

pub mod admin;
pub mod dispatch;
pub mod event;
pub mod filter;
pub mod ingest;
pub mod journal;
pub mod lograte;
pub mod plugin;
pub mod pull;
pub mod runtime;
pub mod serve;
