//! One bad event or plugin never stops, bloats or slows the rest: poison
//! events, memory that follows event size, compiles, hostile plugins beside
//! a good one, key-value floods, a journal that cannot record, the instance
//! pool, growth over time, counters, and plugins with no version serving.
//! Each test is named after its case; timing bounds live in the benchmarks
//! (`cargo xtask bench`, the neighbours and memory sections), not here.

#[path = "../common/mod.rs"]
mod common;

mod compile;
mod growth;
mod journal;
mod memory;
mod neighbours;
mod plugins;
mod poison;
