#!/usr/bin/env bash
# "Background work costs what changed": the block collector's work as a
# bucket grows. One fresh 3-node dev cluster; for each COUNT in turn, a
# bucket is filled with COUNT objects of SIZE (over 64 KiB, so each is
# stored as blocks), the collector is let finish, then DELETE of the
# bucket's objects are deleted through boto3. Printed per COUNT: the
# collection log entries the cluster's collectors handled for the fill
# and for the deletes (`collect_handled` in /admin/cluster, summed over
# the nodes), the entries still logged (`collect_log`: collections due a
# grace later), and the cluster's CPU while it was idle for 30 s before
# the deletes. With collection by reference the delete column stays the
# same whatever COUNT is, and the idle CPU does not grow with COUNT.
#
# Usage: scripts/bench-collect.sh SIZE DELETE COUNT...
#   e.g. scripts/bench-collect.sh 128KiB 200 1000 4000
# Needs .venv with boto3 (`bash .ci/run` creates it).
set -euo pipefail
[ $# -ge 3 ] || { sed -n 2,16p "$0"; exit 2; }
size=$1 delete=$2; shift 2
cd "$(dirname "$0")/.."
cargo build --release --quiet
bin=target/release/ringstore py=.venv/bin/python
source scripts/cpu-time.sh
source scripts/dev-cluster.sh
start_dev "$bin" 34098

sum() { # field -> sum over the nodes of /admin/cluster's field
  python3 - "$work/dev/cluster.json" "$1" <<'EOF'
import json, sys, urllib.request
c = json.load(open(sys.argv[1]))
auth = {"Authorization": f"Bearer {c['admin_token']}"}
status = lambda n: json.load(urllib.request.urlopen(
    urllib.request.Request(f"http://{n['http']}/admin/cluster", headers=auth)))
print(sum(status(n)[sys.argv[2]] or 0 for n in c["nodes"]))
EOF
}
settle() { # wait until collect_handled stops moving over two passes (10 s each)
  local a b
  b=$(sum collect_handled)
  while :; do sleep 21; a=$b; b=$(sum collect_handled); [ "$a" = "$b" ] && break; done
}
echo "| objects | handled for the fill | handled for $delete deletes | still logged | idle CPU (30 s, 3 nodes) | stolen |"
echo "|---:|---:|---:|---:|---:|---:|"
for count in "$@"; do
  bucket="collect$count"
  h0=$(sum collect_handled)
  "$bin" bench s3 --cluster-file "$work/dev/cluster.json" --bucket "$bucket" --objects "$count" \
    --size "$size" --workload fill --concurrency 16 --json >/dev/null
  settle
  h1=$(sum collect_handled)
  m0=$(machine); c0=$(cpu "$dev"); sleep 30; c1=$(cpu "$dev"); m1=$(machine)
  "$py" - "$work/dev/cluster.json" "$bucket" "$delete" <<'EOF'
import json, sys, boto3
c = json.load(open(sys.argv[1]))
s3 = boto3.client("s3", endpoint_url=f"http://{c['nodes'][0]['s3']}", region_name="us-east-1",
                  aws_access_key_id=c["s3_access_key_id"],
                  aws_secret_access_key=c["s3_secret_access_key"])
keys = [o["Key"] for o in s3.list_objects_v2(Bucket=sys.argv[2], MaxKeys=int(sys.argv[3]))["Contents"]]
for k in keys:
    s3.delete_object(Bucket=sys.argv[2], Key=k)
EOF
  settle
  h2=$(sum collect_handled)
  echo "| $count | $((h1 - h0)) | $((h2 - h1)) | $(sum collect_log) | $(awk -v a="$c0" -v b="$c1" -v t="$(getconf CLK_TCK)" 'BEGIN { printf "%.1f", (b - a) * 100 / 30 / t }')% | $(stolen "$m0" "$m1") |"
done
