//! The Extism peer: a plugin function `handle` that takes the event JSON,
//! parses it and returns whether the run failed — the same work as gridlet's
//! trivial plugin, under Extism's calling convention (bytes in, bytes out).

use extism_pdk::{FnResult, plugin_fn};

#[plugin_fn]
pub fn handle(input: Vec<u8>) -> FnResult<String> {
    let events = peer_event::parse(&input)?;
    let failed = events.iter().filter(|e| peer_event::run_failed(e)).count();
    Ok(if failed > 0 { "alert" } else { "ok" }.to_string())
}
