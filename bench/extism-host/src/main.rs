//! Time Extism calling the `extism-event` plugin, the peer of gridlet's
//! invocation benchmark: per call on a plugin kept across calls, and on a
//! fresh plugin made from an already compiled one (Extism's cheapest way to
//! isolate calls, as gridlet's fresh instance per event does).
//!
//! `extism-host <plugin.wasm> <event.json> <rounds> <calls>` prints one JSON
//! object: `{"kept": [µs per call of each round], "fresh": [...]}`.

use extism::{CompiledPlugin, Manifest, Plugin, PluginBuilder, Wasm};
use std::time::Instant;

fn main() -> Result<(), extism::Error> {
    let args: Vec<String> = std::env::args().collect();
    let [_, wasm, event, rounds, calls] = args.as_slice() else {
        return Err(extism::Error::msg(
            "usage: extism-host <plugin.wasm> <event.json> <rounds> <calls>",
        ));
    };
    let event = std::fs::read(event)?;
    let rounds: usize = rounds.parse()?;
    let calls: u32 = calls.parse()?;
    let manifest = Manifest::new([Wasm::data(std::fs::read(wasm)?)]);
    let compiled = CompiledPlugin::new(PluginBuilder::new(manifest).with_wasi(true))?;
    let mut kept = Plugin::new_from_compiled(&compiled)?;
    let call = |plugin: &mut Plugin| -> Result<(), extism::Error> {
        let answer = plugin.call::<&[u8], &str>("handle", &event)?;
        assert_eq!(answer, "ok");
        Ok(())
    };
    for _ in 0..calls {
        call(&mut kept)?;
        call(&mut Plugin::new_from_compiled(&compiled)?)?;
    }
    let (mut kept_us, mut fresh_us) = (Vec::new(), Vec::new());
    for _ in 0..rounds {
        let t = Instant::now();
        for _ in 0..calls {
            call(&mut kept)?;
        }
        kept_us.push(t.elapsed().as_secs_f64() * 1e6 / f64::from(calls));
        let t = Instant::now();
        for _ in 0..calls {
            call(&mut Plugin::new_from_compiled(&compiled)?)?;
        }
        fresh_us.push(t.elapsed().as_secs_f64() * 1e6 / f64::from(calls));
    }
    println!(
        "{}",
        serde_json::json!({"kept": kept_us, "fresh": fresh_us})
    );
    Ok(())
}
