//! Host-side bindings for the `gridlet:plugin` world: the WIT types every
//! capability implements its imports with, and the conversion of a typed
//! [`Event`] into the WIT `event` record. The export side (finding and
//! calling `handle`) is `handler`, which knows the store; this module does
//! not, so capabilities can use it without importing the store.

use crate::event::{self, Event};

wasmtime::component::bindgen!({
    path: "../wit",
    world: "gridlet:plugin/plugin",
    imports: {
        // Key-value calls wait for the journal (reads on the blocking pool,
        // writes for a group commit): async, so no runtime thread blocks.
        "wasi:keyvalue/store.[method]bucket.get": async | trappable,
        "wasi:keyvalue/store.[method]bucket.set": async | trappable,
        "wasi:keyvalue/store.[method]bucket.delete": async | trappable,
        "wasi:keyvalue/store.[method]bucket.exists": async | trappable,
        "wasi:keyvalue/store.[method]bucket.list-keys": async | trappable,
        "wasi:keyvalue/atomics.increment": async | trappable,
        default: trappable,
    },
    exports: { default: async },
    require_store_data_send: true,
    with: {
        "wasi:http": wasmtime_wasi_http::p2::bindings::http,
        "wasi:io": wasmtime_wasi::p2::bindings::io,
        "wasi:clocks": wasmtime_wasi::p2::bindings::clocks,
        "wasi:keyvalue/store.bucket": BucketHandle,
    },
});

/// The WIT types of the `gridlet:plugin` contract.
pub(super) use self::gridlet::plugin::types as wit;

/// The host side of a `wasi:keyvalue` `bucket` resource: just its name; the
/// namespace comes from the store, so a plugin can only ever open its own.
#[derive(Debug, Clone)]
pub struct BucketHandle {
    /// The bucket's name, as the plugin opened it.
    pub name: String,
}
pub use exports::gridlet::plugin::handler::HandlerError;

/// The WIT `event` record as the generated bindings take it.
pub type WitEvent = wit::Event;

/// The WIT `event` record for one delivery.
pub fn to_wit(event: &Event, attempt: u32) -> wit::Event {
    wit::Event {
        id: event.id.clone(),
        topic: event.topic.clone(),
        subject: event.subject.clone(),
        event_type: event.event_type.clone(),
        event_time: event.event_time.clone(),
        data_version: event.data_version.clone(),
        data: ml_event(&event.data),
        data_json: event.data_json().to_string(),
        attempt,
    }
}

fn ml_event(data: &event::MlEvent) -> wit::MlEvent {
    use event::MlEvent as M;
    match data {
        M::RunCompleted(r) => wit::MlEvent::RunCompleted(run(r)),
        M::RunStatusChanged(s) => {
            let r = run(&s.run);
            wit::MlEvent::RunStatusChanged(wit::RunStatusChanged {
                experiment_id: r.experiment_id,
                experiment_name: r.experiment_name,
                run_id: r.run_id,
                run_type: r.run_type,
                run_tags: r.run_tags,
                run_properties: r.run_properties,
                run_status: s.run_status.clone(),
            })
        }
        M::ModelRegistered(m) => wit::MlEvent::ModelRegistered(wit::ModelRegistered {
            model_name: m.model_name.clone(),
            model_version: m.model_version.clone(),
            model_tags: m.model_tags.clone(),
            model_properties: m.model_properties.clone(),
        }),
        M::ModelDeployed(d) => wit::MlEvent::ModelDeployed(wit::ModelDeployed {
            service_name: d.service_name.clone(),
            service_compute_type: d.service_compute_type.clone(),
            model_ids: d.model_ids.clone(),
            service_tags: d.service_tags.clone(),
            service_properties: d.service_properties.clone(),
        }),
        M::DatasetDriftDetected(d) => {
            wit::MlEvent::DatasetDriftDetected(wit::DatasetDriftDetected {
                data_drift_id: d.data_drift_id.clone(),
                data_drift_name: d.data_drift_name.clone(),
                run_id: d.run_id.clone(),
                base_dataset_id: d.base_dataset_id.clone(),
                target_dataset_id: d.target_dataset_id.clone(),
                drift_coefficient: d.drift_coefficient,
                start_time: d.start_time.clone(),
                end_time: d.end_time.clone(),
            })
        }
        M::Other => wit::MlEvent::Other,
    }
}

fn run(r: &event::RunCompleted) -> wit::RunCompleted {
    wit::RunCompleted {
        experiment_id: r.experiment_id.clone(),
        experiment_name: r.experiment_name.clone(),
        run_id: r.run_id.clone(),
        run_type: r.run_type.clone(),
        run_tags: r.run_tags.clone(),
        run_properties: r.run_properties.clone(),
    }
}
