#!/usr/bin/env bash
# The main job: a node on this machine hosting the sample ParaTime in a bubblewrap sandbox,
# laid out as an oasis-node operator would (etc/, runtimes/, data/). Runs until Ctrl-C.
#
#   scripts/local-node.sh [NODE_DIR]        (default: ./localnode; METRICS_PORT: Prometheus
#                                           metrics on 127.0.0.1, default 3000)
#
# As root the node runs as the unprivileged user `nobody` (paratime-node refuses root).
set -euo pipefail
cd "$(dirname "$0")/.."
B=$PWD/target/release/paratime-node
K=$PWD/target/release/paratime-kvstore
# Always (a no-op when nothing changed): a binary left from an older checkout would run stale.
cargo build --release --workspace --locked
N=$(realpath -m "${1:-localnode}")
RID=0000000000000000000000000000000000000000000000000000000000000001

as_node=()
if [ "$(id -u)" -eq 0 ]; then
  as_node=(setpriv --reuid=nobody --regid=nogroup --clear-groups --)
fi

mkdir -p "$N/etc" "$N/runtimes"
chmod 755 "$N"
[ -f "$N/etc/genesis.json" ] || echo '{}' > "$N/etc/genesis.json"
"$B" bundle build --executable "$K" --name kvstore --runtime-id "$RID" --version 0.1.0 \
  --output "$N/runtimes/kvstore.orc"
cat > "$N/etc/config.yml" <<YAML
mode: client
common:
  data_dir: $N/data
  log:
    format: text
    level:
      default: info
genesis:
  file: $N/etc/genesis.json
runtime:
  provisioner: sandboxed
  sandbox_binary: /usr/bin/bwrap
  paths:
    - $N/runtimes/kvstore.orc
metrics:
  mode: pull
  address: 127.0.0.1:${METRICS_PORT:-3000}
YAML
[ "$(id -u)" -ne 0 ] || chown -R nobody:nogroup "$N"

"${as_node[@]}" "$B" config check --config "$N/etc/config.yml"
"${as_node[@]}" "$B" --config "$N/etc/config.yml" &
node=$!
trap 'kill -TERM $node 2>/dev/null; wait $node' INT TERM EXIT

for _ in $(seq 1 100); do
  st=$("${as_node[@]}" "$B" control status -a "unix:$N/data/internal.sock" 2>/dev/null || true)
  if grep -q '"status": "ready"' <<<"$st"; then break; fi
  sleep 0.2
done
echo
echo "== control status =="
echo "$st"
echo
echo "== a transaction and a query through the same bundle, in its sandbox =="
"$B" runtime exec --bundle "$N/runtimes/kvstore.orc" \
  --tx '{"method":"kv.Put","body":{"key":"hello","value":"world"}}' \
  --query '{"method":"kv.Get","body":{"key":"hello"}}'
echo
echo "node running (data dir $N/data); inspect it with:"
echo "  $B control status -a unix:$N/data/internal.sock"
echo "  curl http://127.0.0.1:${METRICS_PORT:-3000}/metrics"
echo "Ctrl-C stops it."
wait $node
