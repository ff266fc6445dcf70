//! Filters as a plugin author can write them, evaluated on events as a
//! sender can shape them: the input is a filter spec (JSON with Event
//! Grid's keys), a NUL byte, then a delivery body. Parsing may refuse
//! either; evaluating a valid filter on a valid event must never panic.

#![no_main]

use gridlet::filter::{Filter, FilterSpec};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|input: &[u8]| {
    let Some(split) = input.iter().position(|&b| b == 0) else {
        return;
    };
    let Ok(spec) = serde_json::from_slice::<FilterSpec>(&input[..split]) else {
        return;
    };
    let Ok(filter) = Filter::from_spec(&spec) else {
        return;
    };
    let Ok(events) = gridlet::event::parse_document(&input[split + 1..]) else {
        return;
    };
    for event in &events {
        let _ = filter.matches(event);
        let _ = filter.summary();
    }
});
