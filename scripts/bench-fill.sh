#!/usr/bin/env bash
# "Millions of thumbnails": how costs hold up as one bucket grows. One
# fresh 3-node dev cluster (N=3, quorum); for each COUNT in turn, a bucket
# is filled with COUNT objects of SIZE (`ringstore bench s3 --workload
# fill`, names in folders of 4 as a video's thumbnails), then measured at
# that size: PUT and GET ops/s (64 in flight, 10 s each), ListObjectsV2
# page latency (one client, 10 s each: the first page, a page from a
# random point, a page of 1,000 folders from a random point), the dev
# process's RSS (all three nodes), bytes on disk, and space amplification
# (disk / (logical bytes x 3)). Buckets accumulate: the cluster holds the
# sum of the counts so far. Before measuring, it waits (up to 10 min) for
# the cluster to go quiet (under 10% of a core over 5 s): a fill leaves
# compactions behind, and they would be measured too. Last, the dev
# process is killed with -9 and started again on the same data: how soon
# its nodes serve, and how long each takes to rebuild its anti-entropy
# trees beside service (aae_rebuild_ms).
#
# Usage: scripts/bench-fill.sh SIZE COUNT...
#   e.g. scripts/bench-fill.sh 4KiB 10000 1000000
# Environment: RINGSTORE_SERVER, another build's binary to run the cluster
# with (the load generator stays this checkout's), for A/B runs;
# NO_CRASH=1 skips the kill -9 and restart at the end.
set -euo pipefail
[ $# -ge 2 ] || { sed -n 2,22p "$0"; exit 2; }
size=$1; shift
cd "$(dirname "$0")/.."
cargo build --release --quiet
bin=target/release/ringstore server=${RINGSTORE_SERVER:-$bin}
source scripts/cpu-time.sh
source scripts/dev-cluster.sh
start_dev "$server" 33098
bytes=$(python3 -c "
s='$size'.lower()
for u, m in (('kib', 1024), ('mib', 1 << 20), ('k', 1024), ('b', 1)):
    if s.endswith(u): print(int(s[:-len(u)]) * m); break
else: print(int(s))")

run() { # bucket count workload extra... -> JSON line
  "$bin" bench s3 --cluster-file "$work/dev/cluster.json" --bucket "$1" --objects "$2" \
    --size "$size" --workload "$3" --json "${@:4}"
}
echo "| objects | fill PUT/s | settled after | PUT/s | GET/s | list first p50/p99 | list middle p50/p99 | list folders p50/p99 | RSS (3 nodes) | disk | space amp. | stolen |"
echo "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
total=0
for count in "$@"; do
  bucket="fill$count" total=$((total + count))
  fill=$(run "$bucket" "$count" fill --concurrency 64 | sed -n 's/.*(\([0-9]*\) PUT\/s).*/\1/p')
  settle=$(date +%s)
  for _ in $(seq 120); do
    c0=$(cpu "$dev"); sleep 5; c1=$(cpu "$dev")
    [ $((c1 - c0)) -lt $((5 * $(getconf CLK_TCK) / 10)) ] && break
  done
  settle=$(( $(date +%s) - settle ))
  m0=$(machine)
  put=$(run "$bucket" "$count" put --duration 10)
  get=$(run "$bucket" "$count" get --duration 10 --preloaded)
  first=$(run "$bucket" "$count" list --page first --concurrency 1 --duration 10)
  middle=$(run "$bucket" "$count" list --page middle --concurrency 1 --duration 10)
  folders=$(run "$bucket" "$count" list --page folders --concurrency 1 --duration 10)
  m1=$(machine)
  rss=$(awk '/VmRSS/ {print $2 * 1024}' "/proc/$dev/status")
  disk=$(du -sb "$work/dev" | cut -f1)
  fill="$fill | ${settle} s"
  python3 - "$count" "$total" "$bytes" "$fill" "$rss" "$disk" "$(stolen "$m0" "$m1")" \
    "$put" "$get" "$first" "$middle" "$folders" <<'PY'
import json, sys
count, total, size, fill, rss, disk, stolen = sys.argv[1:8]
put, get, first, middle, folders = (json.loads(a) for a in sys.argv[8:13])
lat = lambda r: f"{r['p50_ms']:.1f}/{r['p99_ms']:.1f} ms"
amp = int(disk) / (int(total) * int(size) * 3)
print(f"| {int(count):,} | {fill} | {put['ops_per_sec']:.0f} | {get['ops_per_sec']:.0f} | {lat(first)} "
      f"| {lat(middle)} | {lat(folders)} | {int(rss) / 2**20:.0f} MiB | {int(disk) / 2**30:.2f} GiB "
      f"| {amp:.2f} | {float(stolen):.1%} |")
PY
done

# Crash and restart: time to serve, then the rebuild beside service.
[ -n "${NO_CRASH:-}" ] && exit 0
kill -9 "$dev"; wait "$dev" 2>/dev/null || true
t0=$(date +%s.%N)
"$server" dev --nodes 3 --base-port 33098 --data-dir "$work/dev" >>"$work/dev.log" 2>&1 & dev=$!
python3 - "$work/dev/cluster.json" "$t0" <<'PY'
import json, sys, time, urllib.request
c = json.load(open(sys.argv[1]))
nodes = [n["http"] for n in c["nodes"]]
auth = {"Authorization": f"Bearer {c['admin_token']}"}
t0 = float(sys.argv[2])
def status(h):
    try:
        req = urllib.request.Request(f"http://{h}/admin/cluster", headers=auth)
        return json.load(urllib.request.urlopen(req, timeout=2))
    except Exception:
        return None
served = None
deadline = time.time() + 1800
while time.time() < deadline:
    s = [status(h) for h in nodes]
    if all(s) and served is None:
        served = time.time() - t0
    if all(s) and all(x["aae_partitions_rebuilding"] == 0 for x in s):
        ms = [x["aae_rebuild_ms"] for x in s]
        print(f"after kill -9: all nodes served in {served:.1f} s; anti-entropy rebuild beside service took {max(ms) / 1000:.1f} s (per node: {', '.join(f'{m / 1000:.1f}' for m in ms)} s)")
        break
    time.sleep(0.5)
else:
    print("after kill -9: the rebuild did not finish within 30 min")
PY
