#!/usr/bin/env bash
# Issue 19: what a fresh instance of a Rust plugin costs with fewer imports.
#
# A Rust plugin built for wasm32-wasip2 links std's WASI imports (wasi:cli
# environment, exit, stdio, terminals) whether it uses them or not, and a
# fresh instance wires every import. Built for wasm32-unknown-unknown and
# made a component with `wasm-tools component new`, it imports only what the
# plugin calls; the SDK's allocator for that target starts the heap in the
# memory the instance starts with (sdk/rust/src/heap.rs; linked with
# --initial-heap), so no `memory.grow` per delivery.
#
# `cargo xtask plugins` builds the examples and the `noop` fixture that way;
# this builds the examples for wasm32-wasip2 too (the `noop` fixture already
# is) and times all of them side by side in one process
# (host/benches/components.rs). Results: docs/BENCHMARKS.md §1.
set -euo pipefail
cd "$(dirname "$0")/../.."
cargo xtask plugins >&2
tools="${GRIDLET_TOOLS_DIR:-$HOME/.cache/gridlet-tools}/bin"
out="$PWD/target/experiments/guest-imports"
mkdir -p "$out"
wasm="$PWD/target/experiments/wasm"

echo "guest-imports: building the examples for wasm32-wasip2" >&2
(cd plugins && cargo build --release --target wasm32-wasip2 --target-dir "$wasm")
for p in failed-run-alert model-promotion; do
  cp "$wasm/wasm32-wasip2/release/${p//-/_}.wasm" "$out/$p-wasip2.wasm"
  cp "target/plugins/$p.wasm" "$out/$p-no-wasi.wasm"
done
cp target/test-plugins/noop.wasm "$out/noop-wasip2.wasm"
cp target/test-plugins/noop-no-wasi.wasm "$out/noop-no-wasi.wasm"

for f in "$out"/*.wasm; do
  echo "$(basename "$f"): $("$tools/wasm-tools" print "$f" | grep -c 'canon lower') lowered imports, $("$tools/wasm-tools" print "$f" | grep -c '(core instance') core instances" >&2
done
cargo bench -p gridlet --bench components -- "$out"/*.wasm
