#!/usr/bin/env bash
# Query latency on a 3-node dev cluster (N=3) holding RECORDS indexed
# records (`ringstore bench --query-terms`: grp_int = k / 10, seq_int = k,
# at_geo on a grid of points about 110 m apart): an equality query that
# returns 10 keys, a range page of 100, and a radius query returning about
# 100 points, each for SECONDS with 16 concurrent clients (wrk -t2 -c16,
# random terms and centres), RUNS times in turn. Prints p50/p99 per query
# and run with the host's stolen CPU, then each query's medians, and one
# sample answer's size per query.
#
# Usage: scripts/bench-queries.sh [RECORDS] [SECONDS] [RUNS]
#        (defaults: 1000000, 10, 5)
set -euo pipefail
records=${1:-1000000} secs=${2:-10} runs=${3:-5}
cd "$(dirname "$0")/.."
command -v wrk >/dev/null || apt-get install -y -q wrk >/dev/null
cargo build --release --quiet
source scripts/cpu-time.sh
bin=target/release/ringstore
work=$(mktemp -d) dev=
trap '[ -n "$dev" ] && kill "$dev" 2>/dev/null; rm -rf "$work"; true' EXIT
"$bin" dev --nodes 3 --base-port 37098 --data-dir "$work/dev" >"$work/dev.log" 2>&1 & dev=$!
for _ in $(seq 300); do [ -f "$work/dev/cluster.json" ] && break; sleep 0.1; done
[ -f "$work/dev/cluster.json" ] || { echo "the cluster did not start"; cat "$work/dev.log"; exit 1; }
start=$(date +%s)
"$bin" bench --workload get --duration 1 --keys "$records" --query-terms --bucket q \
  --node 127.0.0.1:37098 --node 127.0.0.1:37108 --node 127.0.0.1:37118 >/dev/null
echo "loaded $records records with 3 index terms each in $(( $(date +%s) - start )) s"
rows=$(( records / 1000 ))
cat >"$work/eq.lua" <<LUA
math.randomseed(os.time())
request = function() return wrk.format("GET", "/buckets/q/index/grp_int/" .. math.random(0, $records / 10 - 1)) end
LUA
cat >"$work/range.lua" <<LUA
math.randomseed(os.time())
request = function()
  local s = math.random(0, $records - 1001)
  return wrk.format("GET", "/buckets/q/index/seq_int/" .. s .. "/" .. (s + 1000) .. "?max_results=100")
end
LUA
cat >"$work/geo.lua" <<LUA
math.randomseed(os.time())
request = function()
  local lat = 50.0 + math.random() * ($rows - 1) * 0.001 * 0.8 + ($rows - 1) * 0.001 * 0.1
  local lon = 10.0 + math.random() * 999 * 0.0015 * 0.8 + 999 * 0.0015 * 0.1
  return wrk.format("GET", string.format("/buckets/q/geo/at_geo?lat=%.6f&lon=%.6f&radius_m=615", lat, lon))
end
LUA
echo "sample sizes: eq $(curl -s "http://127.0.0.1:37098/buckets/q/index/grp_int/42" | python3 -c 'import json,sys; print(len(json.load(sys.stdin)["keys"]))') keys," \
  "range $(curl -s "http://127.0.0.1:37098/buckets/q/index/seq_int/5000/6000?max_results=100" | python3 -c 'import json,sys; print(len(json.load(sys.stdin)["keys"]))') keys," \
  "geo $(curl -s "http://127.0.0.1:37098/buckets/q/geo/at_geo?lat=50.0$(( rows / 20 ))&lon=10.7&radius_m=615" | python3 -c 'import json,sys; print(len(json.load(sys.stdin)["results"]))') points"
echo "| run | query | req/s | p50 | p99 | non-2xx | stolen |"
echo "|---:|---|---:|---:|---:|---:|---:|"
: >"$work/results"
for run in $(seq "$runs"); do
  for q in eq range geo; do
    m0=$(machine)
    out=$(wrk -t2 -c16 -d"${secs}s" --latency -s "$work/$q.lua" http://127.0.0.1:37098)
    m1=$(machine)
    echo "$out" | python3 scripts/wrk_row.py "$run | $q" "$(stolen "$m0" "$m1")" "$work/results"
  done
done
python3 - "$work/results" <<'EOF'
import statistics, sys
rows = [l.split() for l in open(sys.argv[1])]
for q in ("eq", "range", "geo"):
    r = [tuple(map(float, x[1:])) for x in rows if x[0] == q]
    rps, p50, p99 = (statistics.median(c) for c in zip(*r))
    print(f"median {q}: {rps:.0f} req/s, p50 {p50:.2f} ms, p99 {p99:.2f} ms")
EOF
