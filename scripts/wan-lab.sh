#!/usr/bin/env bash
# The WAN lab: three data centers of two nodes each on this machine, with
# emulated latency between data centers (node::lab: each node delays what
# it sends to the other zones; this machine's kernel has no sch_netem).
#
#   dc1 <-> dc2  30 ms one way     dc1 <-> dc3  45 ms     dc2 <-> dc3  60 ms
#   jitter +-2 ms, 0.1% of gossip datagrams lost; inside a data center,
#   loopback (well under a millisecond).
#
# Then, from a client in dc1 (talking to a dc1 node), PUT and GET latency
# at each consistency level, and the replication lag to the other data
# centers under a steady local_quorum write load.
#
# Usage: scripts/wan-lab.sh [SECONDS per level] [CONCURRENCY]
set -euo pipefail
cd "$(dirname "$0")/.."
secs=${1:-10}
conc=${2:-8}
bin=target/release/ringstore
cargo build --release --quiet
work=$(mktemp -d)
pids=()
trap 'kill "${pids[@]}" 2>/dev/null || true; wait 2>/dev/null || true; rm -rf "$work"' EXIT

token=wan-lab-admin-token-0123
base=${WAN_LAB_BASE_PORT:-34000}
declare -A latency=(
  [dc1]='dc2 = 30, dc3 = 45'
  [dc2]='dc1 = 30, dc3 = 60'
  [dc3]='dc1 = 45, dc2 = 60'
)
for dc in dc1 dc2 dc3; do
  # SWIM's direct-probe wait must exceed the longest round trip (120 ms).
  cat >"$work/$dc.toml" <<EOF
lab_zone_latency_ms = { ${latency[$dc]} }
lab_latency_jitter_ms = 2
lab_datagram_loss = 0.001
probe_interval_ms = 1000
probe_rtt_ms = 400
suspect_timeout_ms = 3000
EOF
done
port() { echo $((base + 10 * $1 + $2)); }  # node, 0 http / 1 s3 / 2 rpc / 3 web
for i in 0 1 2 3 4 5; do
  dc=dc$((i / 2 + 1))
  join=()
  [ "$i" -gt 0 ] && join=(--join "127.0.0.1:$(port 0 2)")
  RINGSTORE_ADMIN_TOKEN=$token RUST_LOG=error "$bin" server --config "$work/$dc.toml" --zone "$dc" \
    --http "127.0.0.1:$(port $i 0)" --s3 "127.0.0.1:$(port $i 1)" --rpc "127.0.0.1:$(port $i 2)" --web "127.0.0.1:$(port $i 3)" \
    --data-dir "$work/node-$i" --cluster-secret wan-lab "${join[@]}" >"$work/node-$i.log" 2>&1 &
  pids+=($!)
done
members() {
  curl -sf -H "Authorization: Bearer $token" "http://127.0.0.1:$(port 0 0)/admin/cluster" |
    python3 -c 'import json,sys; print(sum(1 for n in json.load(sys.stdin)["nodes"] if n["state"]=="member" and n["liveness"]=="up"))' 2>/dev/null || echo 0
}
for _ in $(seq 600); do [ "$(members)" = 6 ] && break; sleep 0.1; done
[ "$(members)" = 6 ] || { echo "the lab cluster did not form"; tail -5 "$work"/node-*.log; exit 1; }

dc1=(--node "127.0.0.1:$(port 0 0)")
# Replication lag under a steady local_quorum write load, first, so that
# the lag the node reports is this load's alone.
"$bin" bench --node "127.0.0.1:$(port 0 0)" --workload put --json --duration "$secs" \
  --concurrency "$conc" --value-size 1024 --keys 2000 --bucket lab-lag --query "w=local_quorum" >/dev/null 2>&1
echo "replication lag, steady w=local_quorum PUTs (${secs} s, concurrency $conc) through a dc1 node (ack to the remote replica's confirmation):"
curl -sf -H "Authorization: Bearer $token" "http://127.0.0.1:$(port 0 0)/admin/cluster" |
  python3 -c '
import json, sys
for z in json.load(sys.stdin)["replication_lag"]:
    print("  -> %s: p50 %.1f ms, p99 %.1f ms over %d writes" % (z["zone"], z["p50_ms"], z["p99_ms"], z["count"]))'
echo
echo "3 data centers x 2 nodes; client in dc1; ${secs} s per row, concurrency $conc, 1 KiB values"
echo "| level | PUT p50 | PUT p99 | GET p50 | GET p99 |"
echo "|---|---:|---:|---:|---:|"
for level in one local_quorum quorum all; do
  put=$("$bin" bench "${dc1[@]}" --workload put --json --duration "$secs" --concurrency "$conc" \
    --value-size 1024 --keys 2000 --bucket "lab-$level" --query "w=$level" 2>/dev/null)
  get=$("$bin" bench "${dc1[@]}" --workload get --json --duration "$secs" --concurrency "$conc" \
    --value-size 1024 --keys 2000 --bucket "lab-$level" --query "r=$level" 2>/dev/null)
  python3 - "$level" "$put" "$get" <<'EOF'
import json, sys
level, put, get = sys.argv[1], json.loads(sys.argv[2]), json.loads(sys.argv[3])
print(f"| {level} | {put['p50_ms']:.1f} ms | {put['p99_ms']:.1f} ms | {get['p50_ms']:.1f} ms | {get['p99_ms']:.1f} ms |")
EOF
done
