#!/usr/bin/env bash
# S3 benchmark: a 3-node dev cluster (N=3, quorum reads and writes), then
# `ringstore bench s3` PUT and GET runs of 4 KiB, 64 KiB and 64 MiB
# objects through all three nodes, with the key-value API's 4 KiB PUT and
# GET in the same run for a side-by-side ratio (same cluster, same size).
#
# Usage: scripts/bench-s3.sh [seconds per run] [concurrency]
set -euo pipefail
cd "$(dirname "$0")/.."
secs=${1:-15}
conc=${2:-64}
bin=target/release/ringstore
cargo build --release --quiet
work=$(mktemp -d)
trap 'kill $dev 2>/dev/null || true; wait 2>/dev/null || true; rm -rf "$work"' EXIT

"$bin" dev --nodes 3 --base-port 30098 --data-dir "$work/dev" >"$work/dev.log" 2>&1 & dev=$!
for _ in $(seq 300); do [ -f "$work/dev/cluster.json" ] && break; sleep 0.1; done
[ -f "$work/dev/cluster.json" ] || { echo "the cluster did not start"; cat "$work/dev.log"; exit 1; }

source scripts/cpu-time.sh

run() {  # name bench-args...
  local name=$1; shift
  local before; before=$(cpu "$dev")
  local m0; m0=$(machine)
  local out; out=$("$bin" bench "$@" --json --duration "$secs")
  local after; after=$(cpu "$dev")
  local m1; m1=$(machine)
  local stolen; stolen=$(stolen "$m0" "$m1")
  local server_cpu; server_cpu=$(echo "($after - $before) / $(getconf CLK_TCK)" | bc -l)
  echo "$out" | python3 -c "
import json, sys
r = json.load(sys.stdin)
print(f\"| {'$name'} | {r['ops_per_sec']:.1f} | {r['mb_per_sec']:.1f} | {r['p50_ms']:.2f} ms | {r['p99_ms']:.2f} ms | {r['failed']} | {float('$server_cpu'):.1f} s | {r['bench_cpu_share']:.0%} | {float('$stolen'):.1%} |\")
print(json.dumps({'name': '$name', **r}), file=open('$work/results.jsonl', 'a'))
if r['first_error']:
    print(f\"first failure of {'$name'}: {r['first_error']}\", file=sys.stderr)
"
}

s3() { run "$1" s3 --cluster-file "$work/dev/cluster.json" --concurrency "$2" --workload "$3" --size "$4" --objects "$5"; }
# A bucket per workload: GET's preload over keys PUT wrote without a
# context would make siblings, and reads would measure sibling lists.
kv() { run "$1" --node 127.0.0.1:30098 --node 127.0.0.1:30108 --node 127.0.0.1:30118 \
  --concurrency "$conc" --workload "$2" --value-size 4096 --keys 10000 --bucket "kv-$2"; }

echo "3-node dev cluster, N=3, quorum; $secs s per run"
echo "| run | ops/s | MB/s | p50 | p99 | failed | server cpu | bench cpu share | stolen |"
echo "|---|---:|---:|---:|---:|---:|---:|---:|---:|"
kv "KV 4 KiB PUT x$conc" put
s3 "S3 4 KiB PUT x$conc" "$conc" put 4KiB 10000
kv "KV 4 KiB GET x$conc" get
s3 "S3 4 KiB GET x$conc" "$conc" get 4KiB 10000
s3 "S3 64 KiB PUT x$conc" "$conc" put 64KiB 2000
s3 "S3 64 KiB GET x$conc" "$conc" get 64KiB 2000
s3 "S3 64 MiB PUT x4" 4 put 64MiB 8
s3 "S3 64 MiB GET x4" 4 get 64MiB 8
python3 - "$work/results.jsonl" "$conc" <<'PY'
import json, sys
c = sys.argv[2]
r = {x['name']: x for x in map(json.loads, open(sys.argv[1]))}
for op in ("PUT", "GET"):
    s3, kv = r[f"S3 4 KiB {op} x{c}"]["ops_per_sec"], r[f"KV 4 KiB {op} x{c}"]["ops_per_sec"]
    print(f"S3/KV 4 KiB {op}: {s3 / kv:.0%}")
PY
