#!/usr/bin/env bash
# ceph/s3-tests (the suite Ceph, MinIO-compatible stores and RustFS
# measure themselves with) against a fresh 3-node dev cluster, with the
# selection docs/S3.md reports. Prints pytest's summary and writes the
# per-test results to OUT (default /tmp/s3-tests.log).
#
# Usage: scripts/s3-tests.sh S3_TESTS_CHECKOUT [MARK_EXPR] [OUT]
#   S3_TESTS_CHECKOUT: a clone of https://github.com/ceph/s3-tests (not
#   part of this repository); its requirements are installed into
#   S3_TESTS_CHECKOUT/.venv on first use.
#   MARK_EXPR: a pytest -m expression; the default is the selection of
#   docs/S3.md. Pass e.g. "versioning" to count one feature's tests.
# Environment: S3_TESTS_K, a pytest -k expression to run fewer tests.
set -euo pipefail
[ $# -ge 1 ] || { sed -n 2,14p "$0"; exit 2; }
checkout=$(cd "$1" && pwd)
default="not fails_on_aws and not lifecycle and not versioning and not s3website and not bucket_logging and not encryption and not bucket_policy and not tagging and not object_lock and not appendobject and not sse_s3 and not iam_tenant and not iam_account and not iam_user and not iam_role and not sts and not token_claims_trust_policy_test"
marks=${2:-$default}
out=${3:-/tmp/s3-tests.log}
cd "$(dirname "$0")/.."
cargo build --release --quiet
if [ ! -x "$checkout/.venv/bin/pytest" ]; then
  python3 -m venv "$checkout/.venv"
  "$checkout/.venv/bin/pip" install -q -r "$checkout/requirements.txt"
fi
work=$(mktemp -d) dev=
trap '[ -n "$dev" ] && kill "$dev" 2>/dev/null; rm -rf "$work"; true' EXIT
base=35098
target/release/ringstore dev --nodes 3 --base-port $base --data-dir "$work/dev" >"$work/dev.log" 2>&1 & dev=$!
for _ in $(seq 300); do [ -f "$work/dev/cluster.json" ] && break; sleep 0.1; done
[ -f "$work/dev/cluster.json" ] || { echo "the cluster did not start"; cat "$work/dev.log"; exit 1; }
# Three keys: main, alt and tenant (s3-tests reads all three).
python3 - "$work" <<'EOF'
import json, sys, urllib.request
work = sys.argv[1]
c = json.load(open(f"{work}/dev/cluster.json"))
def key(name):
    req = urllib.request.Request(f"http://{c['nodes'][0]['http']}/admin/keys", method="POST",
                                 data=json.dumps({"name": name}).encode(),
                                 headers={"Authorization": f"Bearer {c['admin_token']}",
                                          "Content-Type": "application/json"})
    k = json.load(urllib.request.urlopen(req))
    return k["access_key_id"], k["secret_access_key"]
host, port = c["nodes"][0]["s3"].split(":")
main = (c["s3_access_key_id"], c["s3_secret_access_key"])
alt, tenant = key("alt"), key("tenant")
def user(section, k, name):
    return f"""[{section}]
display_name = {k[0]}
user_id = {k[0]}
email = {name}@example.com
access_key = {k[0]}
secret_key = {k[1]}
"""
open(f"{work}/s3tests.conf", "w").write(f"""[DEFAULT]
host = {host}
port = {port}
is_secure = False
ssl_verify = False
[fixtures]
bucket prefix = rs-{{random}}-
iam name prefix = s3-tests-
iam path prefix = /s3-tests/
{user("s3 main", main, "main")}api_name = default
{user("s3 alt", alt, "alt")}
{user("s3 tenant", tenant, "tenant")}tenant = testx
{user("iam", main, "iam")}
[iam root]
access_key = AAAAAAAAAAAAAAAAAAaa
secret_key = aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa
user_id = RGW11111111111111111
email = account1@example.com
[iam alt root]
access_key = BBBBBBBBBBBBBBBBBBbb
secret_key = bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb
user_id = RGW22222222222222222
email = account2@example.com
""")
EOF
cd "$checkout"
COLUMNS=400 S3TEST_CONF="$work/s3tests.conf" .venv/bin/pytest -q -p no:cacheprovider \
  s3tests/functional/test_s3.py -m "$marks" ${S3_TESTS_K:+-k "$S3_TESTS_K"} -rf --tb=line -o junit_family=xunit2 >"$out" 2>&1 || true
tail -1 "$out"
