#!/usr/bin/env bash
# What secondary indexes cost a write: 1 KiB key-value PUTs with two index
# terms each (one _bin, one _int) against PUTs with none, on one fresh
# 3-node dev cluster (N=3), runs alternating, same load generator
# (`ringstore bench --workload put`, 64 in flight, new keys: random over
# 10^9, so no write meets an older version). Prints each run with
# the host's stolen CPU, then the medians and their ratio.
#
# Usage: scripts/bench-2i.sh [RUNS] [SECONDS]   (defaults: 5 runs of 10 s)
set -euo pipefail
runs=${1:-5} secs=${2:-10}
cd "$(dirname "$0")/.."
cargo build --release --quiet
source scripts/cpu-time.sh
bin=target/release/ringstore
work=$(mktemp -d) dev=
trap '[ -n "$dev" ] && kill "$dev" 2>/dev/null; rm -rf "$work"; true' EXIT
"$bin" dev --nodes 3 --base-port 35098 --data-dir "$work/dev" >"$work/dev.log" 2>&1 & dev=$!
for _ in $(seq 300); do [ -f "$work/dev/cluster.json" ] && break; sleep 0.1; done
[ -f "$work/dev/cluster.json" ] || { echo "the cluster did not start"; cat "$work/dev.log"; exit 1; }
nodes=(--node 127.0.0.1:35098 --node 127.0.0.1:35108 --node 127.0.0.1:35118)

echo "1 KiB PUTs, 64 in flight, $secs s per run, 3 nodes N=3"
echo "| run | indexes | PUT/s | p50 | p99 | stolen |"
echo "|---:|---:|---:|---:|---:|---:|"
: >"$work/results"
for run in $(seq "$runs"); do
  for n in 0 2; do
    m0=$(machine)
    out=$("$bin" bench --json --workload put --duration "$secs" --concurrency 64 \
      --value-size 1024 --keys 1000000000 --bucket "idx$n" --indexes "$n" "${nodes[@]}")
    m1=$(machine)
    echo "$out" | python3 -c "
import json, sys
r = json.load(sys.stdin)
stolen = $(stolen "$m0" "$m1")
print(f\"| $run | $n | {r['ops_per_sec']:.0f} | {r['p50_ms']:.2f} ms | {r['p99_ms']:.2f} ms | {stolen:.1%} |\")
open('$work/results', 'a').write(f\"$n {r['ops_per_sec']} {r['p99_ms']}\n\")
"
  done
done
python3 - "$work/results" <<'PY'
import statistics, sys
rows = [l.split() for l in open(sys.argv[1])]
med = {n: statistics.median(float(r[1]) for r in rows if r[0] == n) for n in ("0", "2")}
p99 = {n: statistics.median(float(r[2]) for r in rows if r[0] == n) for n in ("0", "2")}
print(f"median PUT/s: no indexes {med['0']:.0f} (p99 {p99['0']:.2f} ms), two indexes {med['2']:.0f} (p99 {p99['2']:.2f} ms)")
print(f"two indexes / none: {med['2'] / med['0']:.1%}")
PY
