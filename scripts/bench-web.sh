#!/usr/bin/env bash
# Anonymous 4 KiB GETs, side by side: ringstore's website endpoint (a
# fresh 3-node dev cluster, N=3, the default `web_read = "nearby"`: each
# node answers from its own replica once nothing has gone wrong for
# `web_read_quiet_ms`, else with a quorum read) against nginx serving the
# same files from local disk (Debian's package: one local file read, no
# replication, the physical reference). One load generator (wrk) for
# both, random paths over the same files, runs alternating; it prints
# each run and then the medians.
#
# Usage: scripts/bench-web.sh [RUNS] [SECONDS] [CONNECTIONS] [FILES]
#   defaults: 5 runs of 10 s each, 64 connections, 1000 files
# Needs wrk and nginx (Debian's packages; installed if missing) and the
# .venv with boto3 that .ci/run makes.
set -euo pipefail
runs=${1:-5} secs=${2:-10} conns=${3:-64} files=${4:-1000}
cd "$(dirname "$0")/.."
for tool in wrk nginx; do
  command -v "$tool" >/dev/null || apt-get install -y -q "$tool" >/dev/null ||
    { apt-get update -q >/dev/null && apt-get install -y -q "$tool" >/dev/null; }
done
[ -x .venv/bin/python ] || { echo "no .venv with boto3: run bash .ci/run once"; exit 1; }
cargo build --release --quiet
source scripts/cpu-time.sh
work=$(mktemp -d) dev= ngx=
trap '[ -n "$dev" ] && kill "$dev" 2>/dev/null; [ -n "$ngx" ] && kill "$ngx" 2>/dev/null; rm -rf "$work"; true' EXIT
base=33098 ngx_port=33500

target/release/ringstore dev --nodes 3 --base-port $base --data-dir "$work/dev" >"$work/dev.log" 2>&1 & dev=$!
for _ in $(seq 300); do [ -f "$work/dev/cluster.json" ] && break; sleep 0.1; done
[ -f "$work/dev/cluster.json" ] || { echo "the cluster did not start"; cat "$work/dev.log"; exit 1; }

# The same files on disk (for nginx) and in a public website bucket.
mkdir -p "$work/files/t"
.venv/bin/python - "$work" "$files" <<'EOF'
import concurrent.futures, json, os, sys
import boto3
work, n = sys.argv[1], int(sys.argv[2])
c = json.load(open(f"{work}/dev/cluster.json"))
s3 = boto3.client("s3", endpoint_url=f"http://{c['nodes'][0]['s3']}", region_name="us-east-1",
                  aws_access_key_id=c["s3_access_key_id"], aws_secret_access_key=c["s3_secret_access_key"])
s3.create_bucket(Bucket="thumbs", ACL="public-read")
s3.put_bucket_website(Bucket="thumbs", WebsiteConfiguration={"IndexDocument": {"Suffix": "index.html"}})
def put(i):
    body = os.urandom(4096)
    open(f"{work}/files/t/{i:04d}.jpg", "wb").write(body)
    s3.put_object(Bucket="thumbs", Key=f"t/{i:04d}.jpg", Body=body, ContentType="image/jpeg", ACL="public-read")
with concurrent.futures.ThreadPoolExecutor(8) as ex:
    list(ex.map(put, range(n)))
EOF

# nginx's workers run as an unprivileged user: let them read the files.
chmod 755 "$work" && chmod -R a+rX "$work/files"
cat >"$work/nginx.conf" <<EOF
worker_processes auto;
daemon off;
pid $work/nginx.pid;
error_log $work/nginx.err;
events { worker_connections 4096; }
http {
  access_log off;
  sendfile on;
  default_type image/jpeg;
  server { listen 127.0.0.1:$ngx_port; root $work/files; etag on; }
}
EOF
nginx -c "$work/nginx.conf" & ngx=$!
cat >"$work/paths.lua" <<EOF
math.randomseed(os.time())
request = function()
  return wrk.format("GET", string.format("/t/%04d.jpg", math.random(0, $files - 1)))
end
EOF
web=$(python3 -c "import json; print(json.load(open('$work/dev/cluster.json'))['nodes'][0]['web'])")
for _ in $(seq 100); do curl -sf -o /dev/null "http://127.0.0.1:$ngx_port/t/0000.jpg" && break; sleep 0.1; done
curl -sf -o /dev/null "http://127.0.0.1:$ngx_port/t/0000.jpg" || { echo "nginx does not serve the files"; exit 1; }
curl -sf -o /dev/null -H "Host: thumbs.web.localhost" "http://$web/t/0000.jpg" ||
  { echo "the website endpoint does not serve the files"; exit 1; }

# Warm up until the website answers from local replicas: a fresh node
# reads with quorums for its first web_read_quiet_ms (30 s).
admin=$(python3 -c "import json; print(json.load(open('$work/dev/cluster.json'))['nodes'][0]['http'])")
token=$(python3 -c "import json; print(json.load(open('$work/dev/cluster.json'))['admin_token'])")
local_reads() {
  curl -sf -H "Authorization: Bearer $token" "http://$admin/metrics" |
    awk '/^ringstore_nearby_reads_local /{print $2}'
}
for _ in $(seq 60); do
  wrk -t1 -c4 -d1s -s "$work/paths.lua" -H "Host: thumbs.web.localhost" "http://$web" >/dev/null
  [ "$(local_reads)" != 0 ] && break
done
echo "warm-up done: node 0 answered $(local_reads) reads from its own replica"

echo "anonymous GETs of $files random 4 KiB files, $conns connections, $secs s per run (wrk -t2)"
echo "| run | server | req/s | p50 | p99 | non-2xx | stolen |"
echo "|---:|---|---:|---:|---:|---:|---:|"
: >"$work/results"
for run in $(seq "$runs"); do
  for server in ringstore nginx; do
    if [ "$server" = ringstore ]; then url="http://$web"; else url="http://127.0.0.1:$ngx_port"; fi
    m0=$(machine)
    out=$(wrk -t2 -c"$conns" -d"${secs}s" --latency -s "$work/paths.lua" -H "Host: thumbs.web.localhost" "$url")
    m1=$(machine)
    echo "$out" | python3 scripts/wrk_row.py "$run | $server" "$(stolen "$m0" "$m1")" "$work/results"
  done
done
python3 - "$work/results" <<'EOF'
import statistics, sys
rows = [l.split() for l in open(sys.argv[1])]
med = {}
for s in ("ringstore", "nginx"):
    r = [tuple(map(float, x[1:])) for x in rows if x[0] == s]
    med[s] = [statistics.median(c) for c in zip(*r)]
    print(f"median {s}: {med[s][0]:.0f} req/s, p50 {med[s][1]:.2f} ms, p99 {med[s][2]:.2f} ms")
rs, ng = med["ringstore"], med["nginx"]
print(f"ringstore/nginx: {rs[0] / ng[0]:.0%} of the requests per second; p99 {rs[2] / ng[2]:.1f}x nginx's")
EOF
