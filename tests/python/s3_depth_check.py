"""S3 beyond the basics, as boto3 and awscli use it: versioning, object
lock and tagging.

Usage: s3_depth_check.py PHASE S3_ENDPOINT [OTHER_S3_ENDPOINT]
Environment: AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY (a key that may
create buckets).

Phases:
  versioning  versioned overwrite keeps both versions; GET by versionId;
              DELETE leaves a delete marker; removing the marker brings
              the object back; suspended buckets write `null` versions;
              ListObjectVersions pages with markers
  lock        a bucket with object lock: default retention refuses a
              delete of the locked version, governance bypass allows it,
              compliance never does; legal hold refuses until released
  tagging     object tags with boto3 and awscli, on versions too; bucket
              tags
  post        browser form uploads (POST with a signed policy) from
              boto3's generate_presigned_post: accepted within the
              policy, refused outside it or with a forged signature
  metadata    non-ASCII user metadata as boto3 sends it (latin-1 bytes,
              signed as UTF-8) comes back as sent, on GET, HEAD and copy
  lifecycle   rules expire current versions (those written before the
              rules too), noncurrent versions and lone delete markers,
              and abort old uploads; needs a cluster whose lifecycle day
              is shortened (lab_lifecycle_day_ms)
Writes go to the first endpoint and reads to the other, so every check
holds across nodes, not on one. Exits non-zero on the first failed check.
"""
import json
import sys
import time
import urllib.error
import urllib.request
from datetime import datetime, timedelta, timezone

from botocore.exceptions import ClientError
from s3util import awscli, client, expect_error








def settled(check, secs=10):
    """Retry `check` until it passes or `secs` pass: a bucket setting
    written through one node holds on another within 2 s (docs/S3.md)."""
    deadline = time.monotonic() + secs
    while True:
        try:
            return check()
        except (AssertionError, ClientError):
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)


def versioning(ep, other_ep):
    s3, rd = client(ep), client(other_ep)
    s3.create_bucket(Bucket="ver")
    # Written before versioning: becomes the `null` version.
    s3.put_object(Bucket="ver", Key="k", Body=b"v0")
    awscli(ep, "s3api", "put-bucket-versioning", "--bucket", "ver",
           "--versioning-configuration", "Status=Enabled")
    settled(lambda: assert_status(rd, "ver", "Enabled"))
    v1 = s3.put_object(Bucket="ver", Key="k", Body=b"v1")["VersionId"]
    v2 = s3.put_object(Bucket="ver", Key="k", Body=b"v2")["VersionId"]
    assert v1 != v2 and "null" not in (v1, v2), (v1, v2)
    got = rd.get_object(Bucket="ver", Key="k")
    assert got["Body"].read() == b"v2" and got["VersionId"] == v2, got
    assert rd.get_object(Bucket="ver", Key="k", VersionId=v1)["Body"].read() == b"v1"
    assert rd.get_object(Bucket="ver", Key="k", VersionId="null")["Body"].read() == b"v0"
    listed = rd.list_object_versions(Bucket="ver")["Versions"]
    assert [v["VersionId"] for v in listed] == [v2, v1, "null"], listed
    assert [v["IsLatest"] for v in listed] == [True, False, False], listed
    # DELETE leaves a delete marker; the versions stay.
    d = s3.delete_object(Bucket="ver", Key="k")
    assert d["DeleteMarker"] and d["VersionId"], d
    expect_error("NoSuchKey", rd.get_object, Bucket="ver", Key="k")
    out = json.loads(awscli(other_ep, "s3api", "list-object-versions", "--bucket", "ver"))
    assert [m["VersionId"] for m in out["DeleteMarkers"]] == [d["VersionId"]], out
    assert len(out["Versions"]) == 3, out
    assert rd.get_object(Bucket="ver", Key="k", VersionId=v2)["Body"].read() == b"v2"
    # Removing the marker brings the newest version back.
    s3.delete_object(Bucket="ver", Key="k", VersionId=d["VersionId"])
    assert rd.get_object(Bucket="ver", Key="k")["Body"].read() == b"v2"
    # Deleting a version by id removes it for good.
    s3.delete_object(Bucket="ver", Key="k", VersionId=v1)
    expect_error("NoSuchVersion", rd.get_object, Bucket="ver", Key="k", VersionId=v1)
    # Copy from an old version.
    c = s3.copy_object(Bucket="ver", Key="copy", CopySource={"Bucket": "ver", "Key": "k", "VersionId": "null"})
    assert c["CopySourceVersionId"] == "null" and c["VersionId"], c
    assert rd.get_object(Bucket="ver", Key="copy")["Body"].read() == b"v0"
    # Paging: 7 versions of one key, 3 per page, with markers.
    for i in range(7):
        s3.put_object(Bucket="ver", Key="paged", Body=str(i).encode())
    seen, kw = [], {}
    while True:
        page = rd.list_object_versions(Bucket="ver", Prefix="paged", MaxKeys=3, **kw)
        seen += [v["VersionId"] for v in page.get("Versions", [])]
        assert len(page.get("Versions", [])) <= 3, page
        if not page["IsTruncated"]:
            break
        kw = {"KeyMarker": page["NextKeyMarker"], "VersionIdMarker": page["NextVersionIdMarker"]}
    assert len(seen) == 7 and len(set(seen)) == 7, seen
    newest = rd.get_object(Bucket="ver", Key="paged")
    assert newest["VersionId"] == seen[0] and newest["Body"].read() == b"6", (seen, newest)
    # Suspended: a write replaces the `null` version, the others stay.
    s3.put_bucket_versioning(Bucket="ver", VersioningConfiguration={"Status": "Suspended"})
    settled(lambda: assert_status(rd, "ver", "Suspended"))
    assert s3.put_object(Bucket="ver", Key="k", Body=b"s1").get("VersionId", "null") == "null"
    s3.put_object(Bucket="ver", Key="k", Body=b"s2")
    ids = [v["VersionId"] for v in rd.list_object_versions(Bucket="ver", Prefix="k")["Versions"]]
    assert ids == ["null", v2], ids
    assert rd.get_object(Bucket="ver", Key="k", VersionId="null")["Body"].read() == b"s2"


def assert_status(c, bucket, status):
    got = c.get_bucket_versioning(Bucket=bucket).get("Status")
    assert got == status, got


def lock(ep, other_ep):
    s3, rd = client(ep), client(other_ep)
    s3.create_bucket(Bucket="locked", ObjectLockEnabledForBucket=True)
    assert rd.get_bucket_versioning(Bucket="locked")["Status"] == "Enabled"
    s3.put_object_lock_configuration(Bucket="locked", ObjectLockConfiguration={
        "ObjectLockEnabled": "Enabled",
        "Rule": {"DefaultRetention": {"Mode": "GOVERNANCE", "Days": 1}}})
    def default_retention():
        got = rd.get_object_lock_configuration(Bucket="locked")["ObjectLockConfiguration"]
        assert "Rule" in got, got
    settled(default_retention)
    v = s3.put_object(Bucket="locked", Key="doc", Body=b"keep me")["VersionId"]
    head = rd.head_object(Bucket="locked", Key="doc")
    assert head["ObjectLockMode"] == "GOVERNANCE", head
    assert head["ObjectLockRetainUntilDate"] > datetime.now(timezone.utc) + timedelta(hours=23), head
    # Deleting the locked version is refused; the data stays.
    expect_error("AccessDenied", s3.delete_object, Bucket="locked", Key="doc", VersionId=v)
    assert rd.get_object(Bucket="locked", Key="doc", VersionId=v)["Body"].read() == b"keep me"
    # A plain DELETE only adds a delete marker, which a lock allows.
    marker = s3.delete_object(Bucket="locked", Key="doc")
    assert marker["DeleteMarker"], marker
    assert rd.get_object(Bucket="locked", Key="doc", VersionId=v)["Body"].read() == b"keep me"
    # The owner may bypass governance.
    s3.delete_object(Bucket="locked", Key="doc", VersionId=v, BypassGovernanceRetention=True)
    expect_error("NoSuchVersion", rd.get_object, Bucket="locked", Key="doc", VersionId=v)
    # Compliance: no bypass, and the retention cannot be shortened.
    until = datetime.now(timezone.utc) + timedelta(days=2)
    c = s3.put_object(Bucket="locked", Key="law", Body=b"x", ObjectLockMode="COMPLIANCE",
                      ObjectLockRetainUntilDate=until)["VersionId"]
    expect_error("AccessDenied", s3.delete_object, Bucket="locked", Key="law", VersionId=c,
                 BypassGovernanceRetention=True)
    expect_error("AccessDenied", s3.put_object_retention, Bucket="locked", Key="law", VersionId=c,
                 Retention={"Mode": "COMPLIANCE", "RetainUntilDate": until - timedelta(days=1)},
                 BypassGovernanceRetention=True)
    # Legal hold (in a bucket with no default retention), set and
    # released with awscli.
    s3.create_bucket(Bucket="holds", ObjectLockEnabledForBucket=True)
    h = s3.put_object(Bucket="holds", Key="held", Body=b"h")["VersionId"]
    s3.delete_object(Bucket="holds", Key="free", VersionId=s3.put_object(
        Bucket="holds", Key="free", Body=b"f")["VersionId"])
    awscli(ep, "s3api", "put-object-legal-hold", "--bucket", "holds", "--key", "held",
           "--version-id", h, "--legal-hold", "Status=ON")
    hold = rd.get_object_legal_hold(Bucket="holds", Key="held", VersionId=h)["LegalHold"]
    assert hold["Status"] == "ON", hold
    expect_error("AccessDenied", s3.delete_object, Bucket="holds", Key="held", VersionId=h,
                 BypassGovernanceRetention=True)
    awscli(ep, "s3api", "put-object-legal-hold", "--bucket", "holds", "--key", "held",
           "--version-id", h, "--legal-hold", "Status=OFF")
    s3.delete_object(Bucket="holds", Key="held", VersionId=h)
    expect_error("NoSuchVersion", rd.get_object, Bucket="holds", Key="held", VersionId=h)
    # Object lock needs versioning: a plain bucket refuses a lock.
    s3.create_bucket(Bucket="plain")
    expect_error("InvalidBucketState", s3.put_object_lock_configuration, Bucket="plain",
                 ObjectLockConfiguration={"ObjectLockEnabled": "Enabled"})


def tagging(ep, other_ep):
    s3, rd = client(ep), client(other_ep)
    s3.create_bucket(Bucket="tags")
    s3.put_object(Bucket="tags", Key="t", Body=b"x", Tagging="colour=blue&size=big")
    tags = rd.get_object_tagging(Bucket="tags", Key="t")["TagSet"]
    assert sorted((t["Key"], t["Value"]) for t in tags) == [("colour", "blue"), ("size", "big")], tags
    assert rd.get_object(Bucket="tags", Key="t")["TagCount"] == 2
    awscli(ep, "s3api", "put-object-tagging", "--bucket", "tags", "--key", "t",
           "--tagging", json.dumps({"TagSet": [{"Key": "only", "Value": "one"}]}))
    out = json.loads(awscli(other_ep, "s3api", "get-object-tagging", "--bucket", "tags", "--key", "t"))
    assert out["TagSet"] == [{"Key": "only", "Value": "one"}], out
    assert rd.get_object(Bucket="tags", Key="t")["Body"].read() == b"x"
    expect_error("InvalidTag", s3.put_object_tagging, Bucket="tags", Key="t",
                 Tagging={"TagSet": [{"Key": f"k{i}", "Value": "v"} for i in range(11)]})
    s3.delete_object_tagging(Bucket="tags", Key="t")
    assert rd.get_object_tagging(Bucket="tags", Key="t")["TagSet"] == []
    expect_error("NoSuchKey", s3.put_object_tagging, Bucket="tags", Key="missing",
                 Tagging={"TagSet": []})
    # Tags belong to a version.
    s3.put_bucket_versioning(Bucket="tags", VersioningConfiguration={"Status": "Enabled"})
    settled(lambda: assert_status(s3, "tags", "Enabled"))
    old = s3.put_object(Bucket="tags", Key="v", Body=b"1", Tagging="gen=1")["VersionId"]
    s3.put_object(Bucket="tags", Key="v", Body=b"2", Tagging="gen=2")
    s3.put_object_tagging(Bucket="tags", Key="v", VersionId=old, Tagging={"TagSet": [{"Key": "gen", "Value": "old"}]})
    assert rd.get_object_tagging(Bucket="tags", Key="v")["TagSet"] == [{"Key": "gen", "Value": "2"}]
    assert rd.get_object_tagging(Bucket="tags", Key="v", VersionId=old)["TagSet"] == [{"Key": "gen", "Value": "old"}]
    # Bucket tags.
    expect_error("NoSuchTagSet", rd.get_bucket_tagging, Bucket="tags")
    s3.put_bucket_tagging(Bucket="tags", Tagging={"TagSet": [{"Key": "team", "Value": "media"}]})
    def bucket_tags():
        got = rd.get_bucket_tagging(Bucket="tags")["TagSet"]
        assert got == [{"Key": "team", "Value": "media"}], got
    settled(bucket_tags)
    s3.delete_bucket_tagging(Bucket="tags")
    expect_error("NoSuchTagSet", s3.get_bucket_tagging, Bucket="tags")


def form_post(url, fields, filename, data):
    """POST a multipart/form-data upload as a browser's form would."""
    boundary = "----ringstoreform7d1c"
    parts = []
    for k, v in fields.items():
        parts.append(f'--{boundary}\r\nContent-Disposition: form-data; name="{k}"\r\n\r\n{v}\r\n'.encode())
    parts.append(f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="{filename}"\r\n'
                 f'Content-Type: application/octet-stream\r\n\r\n'.encode() + data + b"\r\n")
    parts.append(f"--{boundary}--\r\n".encode())
    req = urllib.request.Request(url, data=b"".join(parts), method="POST",
                                 headers={"Content-Type": f"multipart/form-data; boundary={boundary}"})
    try:
        with urllib.request.urlopen(req, timeout=30) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()


def post(ep, other_ep):
    s3, rd = client(ep), client(other_ep)
    s3.create_bucket(Bucket="forms")
    form = s3.generate_presigned_post(
        "forms", "uploads/a.png", Fields={"Content-Type": "image/png"},
        Conditions=[{"Content-Type": "image/png"}, ["content-length-range", 1, 1024]], ExpiresIn=600)
    status, body = form_post(form["url"], form["fields"], "a.png", b"\x89PNG fake")
    assert status == 204, (status, body)
    got = rd.get_object(Bucket="forms", Key="uploads/a.png")
    assert got["Body"].read() == b"\x89PNG fake" and got["ContentType"] == "image/png", got
    # Outside the policy: too large.
    status, body = form_post(form["url"], form["fields"], "a.png", b"x" * 2048)
    assert status == 400 and b"EntityTooLarge" in body, (status, body)
    # A key the policy does not name.
    fields = dict(form["fields"], key="elsewhere.png")
    status, body = form_post(form["url"], fields, "a.png", b"x")
    assert status in (400, 403), (status, body)
    # A forged signature.
    fields = dict(form["fields"], **{"x-amz-signature": "0" * 64})
    status, body = form_post(form["url"], fields, "a.png", b"x")
    assert status == 403, (status, body)
    expect_error("NoSuchKey", rd.get_object, Bucket="forms", Key="elsewhere.png")


def gone(check, secs=60):
    """Wait for the lifecycle sweep: `check` returns True when done."""
    deadline = time.monotonic() + secs
    while not check():
        assert time.monotonic() < deadline, "the lifecycle sweep did not act in time"
        time.sleep(0.2)


def lifecycle(ep, other_ep):
    s3, rd = client(ep), client(other_ep)
    s3.create_bucket(Bucket="life")
    for k in ["logs/a", "logs/b", "keep/c"]:
        s3.put_object(Bucket="life", Key=k, Body=b"x")
    up = s3.create_multipart_upload(Bucket="life", Key="up/big")["UploadId"]
    rules = {"Rules": [
        {"ID": "logs", "Status": "Enabled", "Filter": {"Prefix": "logs/"}, "Expiration": {"Days": 1}},
        {"ID": "tagged", "Status": "Enabled",
         "Filter": {"And": {"Prefix": "t/", "Tags": [{"Key": "tmp", "Value": "yes"}]}},
         "Expiration": {"Days": 1}},
        {"ID": "uploads", "Status": "Enabled", "Filter": {"Prefix": "up/"},
         "AbortIncompleteMultipartUpload": {"DaysAfterInitiation": 1}},
        {"ID": "off", "Status": "Disabled", "Filter": {"Prefix": "keep/"}, "Expiration": {"Days": 1}},
    ]}
    awscli(ep, "s3api", "put-bucket-lifecycle-configuration", "--bucket", "life",
           "--lifecycle-configuration", json.dumps(rules))
    got = rd.get_bucket_lifecycle_configuration(Bucket="life")["Rules"]
    assert [r["ID"] for r in got] == ["logs", "tagged", "uploads", "off"], got
    assert got[0]["Expiration"]["Days"] == 1 and got[0]["Filter"]["Prefix"] == "logs/", got
    s3.put_object(Bucket="life", Key="logs/new", Body=b"x")
    s3.put_object(Bucket="life", Key="t/tmp", Body=b"x", Tagging="tmp=yes")
    s3.put_object(Bucket="life", Key="t/kept", Body=b"x", Tagging="tmp=no")

    def listed():
        return sorted(o["Key"] for o in rd.list_objects_v2(Bucket="life").get("Contents", []))
    gone(lambda: listed() == ["keep/c", "t/kept"])
    gone(lambda: not rd.list_multipart_uploads(Bucket="life").get("Uploads"))
    expect_error("NoSuchUpload", s3.list_parts, Bucket="life", Key="up/big", UploadId=up)
    expect_error("InvalidArgument", s3.put_bucket_lifecycle_configuration, Bucket="life",
                 LifecycleConfiguration={"Rules": [{"ID": "z", "Status": "Enabled", "Filter": {"Prefix": ""},
                                                    "Expiration": {"Days": 0}}]})
    s3.delete_bucket_lifecycle(Bucket="life")
    expect_error("NoSuchLifecycleConfiguration", s3.get_bucket_lifecycle_configuration, Bucket="life")

    # Versioned: noncurrent versions go a day after they were replaced,
    # and the delete marker left alone goes with them.
    s3.create_bucket(Bucket="lifev")
    s3.put_bucket_versioning(Bucket="lifev", VersioningConfiguration={"Status": "Enabled"})
    s3.put_bucket_lifecycle_configuration(Bucket="lifev", LifecycleConfiguration={"Rules": [
        {"ID": "old", "Status": "Enabled", "Filter": {"Prefix": ""},
         "NoncurrentVersionExpiration": {"NoncurrentDays": 1},
         "Expiration": {"ExpiredObjectDeleteMarker": True}}]})
    for body in [b"1", b"2", b"3"]:
        s3.put_object(Bucket="lifev", Key="doc", Body=body)
    s3.put_object(Bucket="lifev", Key="gone", Body=b"g")
    s3.delete_object(Bucket="lifev", Key="gone")

    def versions(key):
        out = rd.list_object_versions(Bucket="lifev", Prefix=key)
        return len(out.get("Versions", [])), len(out.get("DeleteMarkers", []))
    gone(lambda: versions("doc") == (1, 0) and versions("gone") == (0, 0))
    assert rd.get_object(Bucket="lifev", Key="doc")["Body"].read() == b"3"


def metadata(ep, other_ep):
    c, r = client(ep), client(other_ep)
    c.create_bucket(Bucket="meta")
    value = "Hello World\xe9 \xfcber"

    def raw_header(**kwargs):
        kwargs["params"]["headers"]["x-amz-meta-raw"] = value

    c.meta.events.register("before-call.s3.PutObject", raw_header)
    c.put_object(Bucket="meta", Key="k", Body=b"bar", Metadata={"plain": "ascii"})
    c.meta.events.unregister("before-call.s3.PutObject", raw_header)
    got = r.get_object(Bucket="meta", Key="k")["Metadata"]
    assert got == {"raw": value, "plain": "ascii"}, got
    assert r.head_object(Bucket="meta", Key="k")["Metadata"]["raw"] == value
    c.copy_object(Bucket="meta", Key="k2", CopySource={"Bucket": "meta", "Key": "k"})
    assert r.head_object(Bucket="meta", Key="k2")["Metadata"]["raw"] == value


def main():
    phase, ep = sys.argv[1:3]
    other_ep = sys.argv[3] if len(sys.argv) > 3 else ep
    phases = {"versioning": versioning, "lock": lock, "tagging": tagging, "post": post,
              "metadata": metadata, "lifecycle": lifecycle}
    if phase not in phases:
        raise SystemExit(f"unknown phase {phase}")
    phases[phase](ep, other_ep)
    print("ok")


if __name__ == "__main__":
    main()
