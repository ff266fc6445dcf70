//! Host-side bindings for the `gridlet:plugin` world: the plugin's `handle`
//! export, found and type-checked once per version ([`Handler`]), and the
//! conversion of a typed [`Event`] into the WIT `event` record.

use super::store::PluginState;
use crate::event::{self, Event};
use wasmtime::Store;
use wasmtime::component::types::ComponentItem;
use wasmtime::component::{ComponentExportIndex, Func, Instance, InstancePre, TypedFunc};

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

use self::gridlet::plugin::types as wit;

/// The host side of a `wasi:keyvalue` `bucket` resource: just its name; the
/// namespace comes from the store, so a plugin can only ever open its own.
#[derive(Debug, Clone)]
pub struct BucketHandle {
    /// The bucket's name, as the plugin opened it.
    pub name: String,
}
pub use exports::gridlet::plugin::handler::HandlerError;

/// The contract's export every plugin implements.
const HANDLER_INTERFACE: &str = "gridlet:plugin/handler@0.1.0";

/// The `handle` function, typed as the contract says.
type HandleFunc<'a> = TypedFunc<(&'a wit::Event,), (Result<(), HandlerError>,)>;

/// A plugin version's `handle` export: found and type-checked against the
/// contract once, when the version is prepared (a component that does not
/// fit is refused there). Each instance then takes the function by index,
/// without the generated bindings' per-instance check, which walks the
/// whole `event` record again and cost a fresh delivery ≈ 4 % of its time.
pub(super) struct Handler {
    pre: InstancePre<PluginState>,
    index: ComponentExportIndex,
}

impl Handler {
    /// Find `handle` in `pre`'s component and check its type, or say why
    /// the component does not fit.
    pub(super) fn new(pre: InstancePre<PluginState>) -> Result<Self, String> {
        let component = pre.component();
        let (_, interface) = component
            .get_export(None, HANDLER_INTERFACE)
            .ok_or_else(|| format!("no exported instance named `{HANDLER_INTERFACE}`"))?;
        let (item, index) = component
            .get_export(Some(&interface), "handle")
            .ok_or_else(|| format!("`{HANDLER_INTERFACE}` exports no function `handle`"))?;
        let ComponentItem::ComponentFunc(func) = item else {
            return Err(format!(
                "`{HANDLER_INTERFACE}` export `handle` is not a function"
            ));
        };
        // The type the component is instantiated at, as the generated
        // bindings check it (`instance_type` exists for them).
        func.typecheck::<(&wit::Event,), (Result<(), HandlerError>,)>(&pre.instance_type())
            .map_err(|e| format!("type-checking export func `handle`: {e:#}"))?;
        Ok(Self { pre, index })
    }

    /// A new instance of the component in `store`.
    pub(super) async fn instantiate(
        &self,
        store: &mut Store<PluginState>,
    ) -> wasmtime::Result<Instance> {
        self.pre.instantiate_async(store).await
    }

    /// Call `handle` on `instance` with `event`.
    pub(super) async fn call(
        &self,
        store: &mut Store<PluginState>,
        instance: &Instance,
        event: &wit::Event,
    ) -> wasmtime::Result<Result<(), HandlerError>> {
        self.handle(&mut *store, instance)?.call(store, event).await
    }

    /// `instance`'s `handle`; an error for an instance of another component
    /// (the export index names its component).
    pub(super) fn handle(
        &self,
        store: &mut Store<PluginState>,
        instance: &Instance,
    ) -> wasmtime::Result<Handle> {
        let func = instance
            .get_func(&mut *store, self.index)
            .ok_or_else(|| wasmtime::format_err!("`handle` is not a function"))?;
        Ok(Handle(func))
    }
}

/// An instance's `handle` function, whose type [`Handler::new`] checked:
/// only [`Handler::handle`] makes one.
#[derive(Clone, Copy)]
pub(super) struct Handle(Func);

impl Handle {
    /// Call it with `event`.
    pub(super) async fn call(
        self,
        store: &mut Store<PluginState>,
        event: &wit::Event,
    ) -> wasmtime::Result<Result<(), HandlerError>> {
        // SAFETY: a `Handle` is only made by `Handler::handle`, from an
        // instance of the component whose `handle` export `Handler::new`
        // type-checked for this very type at the type it is instantiated at.
        let func: HandleFunc<'_> = unsafe { TypedFunc::new_unchecked(self.0) };
        let (result,) = func.call_async(store, (event,)).await?;
        Ok(result)
    }
}

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
