#!/usr/bin/env bash
# Key-value benchmark: a 1-node cluster (n_val 1) and a 3-node cluster
# (n_val 3, w=2, r=2) run side by side, then each gets the same PUT and GET
# load in turn, so their ratio is measured in one run on one machine.
#
# Usage: scripts/bench-kv.sh [seconds per run] [concurrency]
set -euo pipefail
cd "$(dirname "$0")/.."
secs=${1:-15}
conc=${2:-64}
bin=target/release/ringstore
cargo build --release --quiet
work=$(mktemp -d)
trap 'kill $one $three 2>/dev/null || true; wait 2>/dev/null || true; rm -rf "$work"' EXIT

"$bin" dev --nodes 1 --base-port 28098 --data-dir "$work/one" >"$work/one.log" 2>&1 & one=$!
"$bin" dev --nodes 3 --base-port 29098 --data-dir "$work/three" >"$work/three.log" 2>&1 & three=$!
for f in one three; do
  for _ in $(seq 300); do [ -f "$work/$f/cluster.json" ] && break; sleep 0.1; done
  [ -f "$work/$f/cluster.json" ] || { echo "cluster $f did not start"; cat "$work/$f.log"; exit 1; }
done

source scripts/cpu-time.sh

run() {  # name pid workload args...
  local name=$1 pid=$2 workload=$3; shift 3
  local before; before=$(cpu "$pid")
  local start; start=$(date +%s.%N)
  local out; out=$( { /usr/bin/env time -f '%U %S' "$bin" bench --json --workload "$workload" \
      --duration "$secs" --concurrency "$conc" --value-size 1024 --keys 10000 "$@" ; } 2>"$work/time" )
  local end; end=$(date +%s.%N)
  local after; after=$(cpu "$pid")
  local tick; tick=$(getconf CLK_TCK)
  local bench_cpu; bench_cpu=$(tail -1 "$work/time" | awk '{print $1 + $2}')
  local server_cpu; server_cpu=$(echo "($after - $before) / $tick" | bc -l)
  echo "$out" | python3 -c "
import json, sys
r = json.load(sys.stdin)
print(f\"{'$name':<22} {r['ops_per_sec']:>9.0f} ops/s  p50 {r['p50_ms']:6.2f} ms  p99 {r['p99_ms']:6.2f} ms  p999 {r['p999_ms']:6.2f} ms  failed {r['failed']}  server cpu {float('$server_cpu'):5.1f}s  bench cpu {float('$bench_cpu'):5.1f}s\")
print(json.dumps({'name': '$name', **r}), file=open('$work/results.jsonl', 'a'))
"
}

echo "1 KiB values, concurrency $conc, $secs s per run, dw=quorum (fsynced)"
run "1-node N=1 PUT" $one put --node 127.0.0.1:28098 --n-val 1 --bucket b1
run "3-node N=3 PUT w=2" $three put --node 127.0.0.1:29098 --node 127.0.0.1:29108 --node 127.0.0.1:29118 --bucket b3 --query 'w=2&dw=2'
run "1-node N=1 GET" $one get --node 127.0.0.1:28098 --n-val 1 --bucket b1
run "3-node N=3 GET r=2" $three get --node 127.0.0.1:29098 --node 127.0.0.1:29108 --node 127.0.0.1:29118 --bucket b3 --query 'r=2&w=2'
python3 - "$work/results.jsonl" <<'PY'
import json, sys
r = {x['name']: x for x in map(json.loads, open(sys.argv[1]))}
put = r['3-node N=3 PUT w=2']['ops_per_sec'] / r['1-node N=1 PUT']['ops_per_sec']
get = r['3-node N=3 GET r=2']['ops_per_sec'] / r['1-node N=1 GET']['ops_per_sec']
print(f"3-node/1-node: PUT {put:.0%}, GET {get:.0%}")
PY
