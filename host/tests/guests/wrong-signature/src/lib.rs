//! Test fixture: a component that exports `gridlet:plugin/handler@0.1.0`
//! under the contract's name, but whose `handle` takes a string instead of
//! the `event` record. The host must refuse it when loading it, never call
//! it with the wrong values.

wit_bindgen::generate!({
    inline: r#"
        package gridlet:plugin@0.1.0;
        interface handler {
            handle: func(event: string) -> result<_, string>;
        }
        world impostor {
            export handler;
        }
    "#,
});

struct Impostor;

impl exports::gridlet::plugin::handler::Guest for Impostor {
    fn handle(event: String) -> Result<(), String> {
        Err(event)
    }
}

export!(Impostor);
