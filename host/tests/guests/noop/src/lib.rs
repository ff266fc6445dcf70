//! Handles every event by doing nothing, except one whose subject is
//! `panic`. Built twice by `cargo xtask plugins`: for wasm32-wasip2
//! (`noop.wasm`, with std's WASI imports) and for wasm32-unknown-unknown
//! (`noop-no-wasi.wasm`: no WASI imports, the SDK's heap in its start-up
//! memory, its panics reported through the log) — the floor of a fresh
//! instance's cost, and the SDK's build without WASI under test.

use gridlet_plugin::{Event, HandlerError, Plugin, export};

struct Noop;

impl Plugin for Noop {
    fn handle(event: Event) -> Result<(), HandlerError> {
        if event.subject == "panic" {
            panic!("noop panicked on purpose");
        }
        Ok(())
    }
}

export!(Noop);
