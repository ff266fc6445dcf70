#!/usr/bin/env bash
# Issue 19: the pooling allocator's settings beyond the kept-resident ones,
# each against gridlet's defaults on the fresh path, in one process.
#
# The settings are not gridlet options, so this applies
# pool-settings.patch (a temporary `RuntimeSettings::experiment` that
# engine.rs reads, and the variants in host/benches/invoke.rs) to a git
# worktree of HEAD under target/experiments, runs
# `cargo bench -p gridlet --bench invoke` there with POOL_SETTINGS=1, and
# leaves this checkout alone. Dependencies build into this checkout's
# target/ (wasmtime is not built twice; gridlet itself is, here and again
# on the next build of this checkout). Results: docs/BENCHMARKS.md §1.
set -euo pipefail
cd "$(dirname "$0")/../.."
root="$PWD"
cargo xtask plugins >&2
tree="$root/target/experiments/pool-settings"
git worktree remove --force "$tree" 2>/dev/null || rm -rf "$tree"
git worktree add --detach "$tree" HEAD >&2
trap 'git -C "$root" worktree remove --force "$tree"' EXIT
git -C "$tree" apply "$root/bench/experiments/pool-settings.patch"
mkdir -p "$tree/target"
ln -s "$root/target/plugins" "$tree/target/plugins"
echo "pool-settings: building the invoke benchmark with the experiment's settings" >&2
(cd "$tree" && CARGO_TARGET_DIR="$root/target" POOL_SETTINGS=1 \
  cargo bench -p gridlet --bench invoke -- "$@")
