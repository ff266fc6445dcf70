//! The plugin's side of the contract: its `handle` export, found and
//! type-checked once per version ([`Handler`]), then taken from each
//! instance by index and called.

use super::bindings::{HandlerError, wit};
use super::store::PluginState;
use wasmtime::Store;
use wasmtime::component::types::ComponentItem;
use wasmtime::component::{ComponentExportIndex, Func, Instance, InstancePre, TypedFunc};

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
