#!/usr/bin/env bash
# Side-by-side S3 benchmark of several ringstore binaries: for each binary
# in turn, a fresh 3-node dev cluster (N=3, quorum), one `ringstore bench
# s3` run, the cluster's CPU during that run and the CPU per operation.
# GET runs write their objects in a separate short run first (not
# measured), so "server" is the GETs' CPU alone. List a binary twice or
# more to see the run-to-run noise; compare only figures of one call.
#
# Usage: scripts/bench-s3-ab.sh put|get SIZE SECONDS BINARY...
#   e.g. scripts/bench-s3-ab.sh get 4KiB 10 /tmp/old-ringstore target/release/ringstore
# A BINARY may carry `ringstore dev` flags, quoted as one argument:
#   scripts/bench-s3-ab.sh put 4KiB 10 "target/release/ringstore --internode-encryption false" target/release/ringstore
set -euo pipefail
[ $# -ge 4 ] || { sed -n 2,12p "$0"; exit 2; }
workload=$1 size=$2 secs=$3
shift 3
cd "$(dirname "$0")/.."
cargo build --release --quiet
load=target/release/ringstore  # one load generator for every binary
source scripts/cpu-time.sh
dev=
trap '[ -n "$dev" ] && kill "$dev" 2>/dev/null; true' EXIT

echo "$workload $size objects, $secs s per run"
echo "| binary | ops/s | p50 | p99 | failed | server cpu | per op | bench cpu share | stolen |"
echo "|---|---:|---:|---:|---:|---:|---:|---:|---:|"
for bin in "$@"; do
  work=$(mktemp -d)
  read -ra cmd <<<"$bin"
  "${cmd[0]}" dev "${cmd[@]:1}" --nodes 3 --base-port 32098 --data-dir "$work/dev" >"$work/dev.log" 2>&1 & dev=$!
  for _ in $(seq 300); do [ -f "$work/dev/cluster.json" ] && break; sleep 0.1; done
  [ -f "$work/dev/cluster.json" ] || { echo "$bin: the cluster did not start"; cat "$work/dev.log"; exit 1; }
  bench=("$load" bench s3 --cluster-file "$work/dev/cluster.json" --workload "$workload"
    --size "$size" --objects 10000 --json)
  preloaded=()
  if [ "$workload" = get ]; then
    "${bench[@]}" --duration 1 >/dev/null
    preloaded=(--preloaded)
  fi
  before=$(cpu "$dev") m0=$(machine)
  out=$("${bench[@]}" --duration "$secs" "${preloaded[@]}")
  after=$(cpu "$dev") m1=$(machine)
  stolen=$(stolen "$m0" "$m1")
  echo "$out" | python3 -c "
import json, sys
r = json.load(sys.stdin)
cpu = ($after - $before) / $(getconf CLK_TCK)
ops = max(r['ok'], 1)
print(f\"| $bin | {r['ops_per_sec']:.0f} | {r['p50_ms']:.2f} ms | {r['p99_ms']:.2f} ms | {r['failed']} | {cpu:.1f} s | {1e6 * cpu / ops:.0f} µs | {r['bench_cpu_share']:.0%} | {$stolen:.1%} |\")"
  kill "$dev"; wait "$dev" 2>/dev/null || true; rm -rf "$work"
done
