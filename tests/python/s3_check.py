"""Real S3 clients (boto3, awscli) against a ringstore cluster.

Usage: s3_check.py PHASE ENDPOINT [ENDPOINT...]
Environment: AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY.

Phases:
  main       everything a file-sharing app relies on (see each check)
  mpu-start  start a multipart upload and send part 1; print the upload id
  mpu-finish UPLOAD_ID: send part 2 and complete through another node,
             then read the object back intact
  rclone     copy a directory tree up with rclone and back, byte-identical
  gc-refs SRC PART ABORTED: files; SRC is put as gcrefs/src.bin, copied
             to gcrefs/copy.bin and deleted; PART is part 1 of an upload left
             open; ABORTED is part 1 of an upload then aborted
  big MIB    one single-PUT object of MIB MiB through the first node, read
             back streaming through the last; prints the seconds each took
Exits non-zero on the first failed check.
"""
import hashlib
import os
import subprocess
import sys
import tempfile
import urllib.request

import boto3
from botocore.config import Config
from botocore.exceptions import ClientError

PART = 5 * 1024 * 1024


def client(endpoint, secret=None, style="path"):
    return boto3.client(
        "s3",
        endpoint_url=f"http://{endpoint}",
        aws_access_key_id=os.environ["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=secret or os.environ["AWS_SECRET_ACCESS_KEY"],
        region_name="us-east-1",
        config=Config(signature_version="s3v4", s3={"addressing_style": style}, retries={"max_attempts": 2}),
    )


def expect_error(code, fn, *args, **kwargs):
    try:
        fn(*args, **kwargs)
    except ClientError as e:
        got = e.response["Error"]["Code"]
        assert got == code or e.response["ResponseMetadata"]["HTTPStatusCode"] == code, (code, e)
        return
    raise AssertionError(f"expected {code}")


def blob(seed, n):
    out = bytearray()
    h = hashlib.sha256(seed.encode()).digest()
    while len(out) < n:
        h = hashlib.sha256(h).digest()
        out += h * 64
    return bytes(out[:n])


def bucket_and_objects(s3, other):
    s3.create_bucket(Bucket="files")
    # Its owner creating it again succeeds (us-east-1 semantics), with
    # another ACL it is refused.
    s3.create_bucket(Bucket="files")
    expect_error("BucketAlreadyExists", s3.create_bucket, Bucket="files", ACL="public-read")
    assert "files" in [b["Name"] for b in s3.list_buckets()["Buckets"]]
    s3.head_bucket(Bucket="files")
    expect_error(404, s3.head_bucket, Bucket="nothing-here")

    s3.put_object(Bucket="files", Key="thumb.jpg", Body=b"\xff\xd8jpeg", ContentType="image/jpeg",
                  Metadata={"owner": "web-1"})
    r = other.get_object(Bucket="files", Key="thumb.jpg")
    assert r["Body"].read() == b"\xff\xd8jpeg"
    assert r["ContentType"] == "image/jpeg" and r["Metadata"] == {"owner": "web-1"}, r
    h = other.head_object(Bucket="files", Key="thumb.jpg")
    assert h["ContentLength"] == 6 and h["ETag"] == r["ETag"]

    big = blob("big", 3 * 1024 * 1024 + 17)
    s3.put_object(Bucket="files", Key="media/big.bin", Body=big)
    r = other.get_object(Bucket="files", Key="media/big.bin", ChecksumMode="ENABLED")
    assert r["Body"].read() == big
    for lo, hi in [(0, 0), (1048570, 1048580), (len(big) - 10, len(big) - 1)]:
        got = other.get_object(Bucket="files", Key="media/big.bin", Range=f"bytes={lo}-{hi}")
        assert got["Body"].read() == big[lo:hi + 1], (lo, hi)
        assert got["ContentRange"] == f"bytes {lo}-{hi}/{len(big)}"
    tail = other.get_object(Bucket="files", Key="media/big.bin", Range="bytes=-5")["Body"].read()
    assert tail == big[-5:]

    etag = r["ETag"]
    expect_error(304, other.get_object, Bucket="files", Key="media/big.bin", IfNoneMatch=etag)
    expect_error(412, other.get_object, Bucket="files", Key="media/big.bin", IfMatch='"0000"')
    expect_error(412, s3.put_object, Bucket="files", Key="thumb.jpg", Body=b"x", IfNoneMatch="*")

    s3.copy_object(Bucket="files", Key="media/copy.bin", CopySource={"Bucket": "files", "Key": "media/big.bin"})
    assert other.get_object(Bucket="files", Key="media/copy.bin")["Body"].read() == big

    s3.delete_object(Bucket="files", Key="media/copy.bin")
    expect_error("NoSuchKey", other.get_object, Bucket="files", Key="media/copy.bin")
    expect_error("BucketNotEmpty", s3.delete_bucket, Bucket="files")


def presigned(s3):
    put = s3.generate_presigned_url("put_object", Params={"Bucket": "files", "Key": "pre.txt"}, ExpiresIn=300)
    req = urllib.request.Request(put, data=b"presigned body", method="PUT")
    assert urllib.request.urlopen(req).status == 200
    get = s3.generate_presigned_url("get_object", Params={"Bucket": "files", "Key": "pre.txt"}, ExpiresIn=300)
    assert urllib.request.urlopen(get).read() == b"presigned body"
    # Virtual-host style: BUCKET.localhost, sent to the node's address with
    # that Host header (the machine need not resolve *.localhost).
    port = s3.meta.endpoint_url.rsplit(":", 1)[1]
    vh = client(f"localhost:{port}", style="virtual")
    url = vh.generate_presigned_url("get_object", Params={"Bucket": "files", "Key": "pre.txt"}, ExpiresIn=300)
    assert url.startswith(f"http://files.localhost:{port}/pre.txt"), url
    req = urllib.request.Request(url.replace(f"files.localhost:{port}", f"127.0.0.1:{port}", 1))
    req.add_header("Host", f"files.localhost:{port}")
    assert urllib.request.urlopen(req).read() == b"presigned body"


def refusals(endpoint):
    wrong = client(endpoint, secret="not-the-secret")
    expect_error("SignatureDoesNotMatch", wrong.get_object, Bucket="files", Key="thumb.jpg")
    try:
        urllib.request.urlopen(f"http://{endpoint}/files/thumb.jpg")
        raise AssertionError("an unsigned GET was served")
    except urllib.error.HTTPError as e:
        body = e.read().decode()
        assert e.code == 403 and "AccessDenied" in body, (e.code, body)


def listing(s3):
    keys = [f"many/{i // 500}/k{i:04d}" for i in range(2500)]
    from concurrent.futures import ThreadPoolExecutor
    with ThreadPoolExecutor(16) as pool:
        list(pool.map(lambda k: s3.put_object(Bucket="files", Key=k, Body=k.encode()), keys))
    pages = s3.get_paginator("list_objects_v2").paginate(Bucket="files", Prefix="many/")
    seen = [o["Key"] for p in pages for o in p.get("Contents", [])]
    assert seen == sorted(keys), (len(seen), seen[:3])
    v1 = s3.get_paginator("list_objects").paginate(Bucket="files", Prefix="many/", PaginationConfig={"PageSize": 700})
    assert [o["Key"] for p in v1 for o in p.get("Contents", [])] == sorted(keys)
    top = s3.list_objects_v2(Bucket="files", Prefix="many/", Delimiter="/")
    assert [p["Prefix"] for p in top["CommonPrefixes"]] == [f"many/{i}/" for i in range(5)], top
    assert "Contents" not in top or top["Contents"] == []
    deleted = 0
    for i in range(0, len(keys), 1000):
        r = s3.delete_objects(Bucket="files", Delete={"Objects": [{"Key": k} for k in keys[i:i + 1000]]})
        deleted += len(r.get("Deleted", []))
    assert deleted == 2500
    assert s3.list_objects_v2(Bucket="files", Prefix="many/")["KeyCount"] == 0


def multipart(s3, other):
    data = blob("mpu", 50 * 1024 * 1024)
    with tempfile.NamedTemporaryFile() as f:
        f.write(data)
        f.flush()
        # boto3's transfer manager: 8 MiB parts, CRC32 checksums by default.
        s3.upload_file(f.name, "files", "media/video.mp4")
    r = other.get_object(Bucket="files", Key="media/video.mp4", ChecksumMode="ENABLED")
    body = r["Body"].read()
    assert hashlib.sha256(body).digest() == hashlib.sha256(data).digest()
    assert r["ETag"].endswith('-7"'), r["ETag"]
    with tempfile.NamedTemporaryFile() as f:
        other.download_file("files", "media/video.mp4", f.name)
        assert hashlib.sha256(open(f.name, "rb").read()).digest() == hashlib.sha256(data).digest()
    full_object_multipart(s3, other)
    up = s3.create_multipart_upload(Bucket="files", Key="aborted")
    s3.upload_part(Bucket="files", Key="aborted", UploadId=up["UploadId"], PartNumber=1, Body=b"x")
    assert [u["UploadId"] for u in s3.list_multipart_uploads(Bucket="files").get("Uploads", [])] == [up["UploadId"]]
    assert len(s3.list_parts(Bucket="files", Key="aborted", UploadId=up["UploadId"])["Parts"]) == 1
    s3.abort_multipart_upload(Bucket="files", Key="aborted", UploadId=up["UploadId"])
    expect_error("NoSuchUpload", s3.list_parts, Bucket="files", Key="aborted", UploadId=up["UploadId"])
    uploads_page_in_order(s3)


def uploads_page_in_order(s3):
    """ListMultipartUploads pages in (key, upload id) order with
    MaxUploads, markers and a prefix, as boto3's paginator drives it."""
    started = []
    for key in ["up/b", "up/a", "up/ab", "up/a", "other/x", "up/b"]:
        started.append((key, s3.create_multipart_upload(Bucket="files", Key=key)["UploadId"]))
    expected = sorted(started)
    pages = s3.get_paginator("list_multipart_uploads").paginate(Bucket="files", PaginationConfig={"PageSize": 2})
    listed = [(u["Key"], u["UploadId"]) for p in pages for u in p.get("Uploads", [])]
    assert listed == expected, (listed, expected)
    first = s3.list_multipart_uploads(Bucket="files", MaxUploads=2)
    assert first["IsTruncated"] and first["NextKeyMarker"] == "up/a", first
    mine = s3.list_multipart_uploads(Bucket="files", Prefix="up/a")
    assert [u["Key"] for u in mine["Uploads"]] == ["up/a", "up/a", "up/ab"], mine
    after_a = s3.list_multipart_uploads(Bucket="files", KeyMarker="up/a")
    assert [u["Key"] for u in after_a["Uploads"]] == ["up/ab", "up/b", "up/b"], after_a
    for key, upload_id in started:
        s3.abort_multipart_upload(Bucket="files", Key=key, UploadId=upload_id)
    assert s3.list_multipart_uploads(Bucket="files").get("Uploads", []) == []


def full_object_multipart(s3, other):
    """A FULL_OBJECT CRC32 upload: the server combines the parts' CRCs into
    the whole object's, refuses a completion claiming another, and boto3
    validates the stored value against the bytes on GET."""
    import base64, zlib
    parts = [blob("full1", PART), blob("full2", PART), b"tail of the object"]
    whole = b"".join(parts)
    crc = base64.b64encode(zlib.crc32(whole).to_bytes(4, "big")).decode()
    up = s3.create_multipart_upload(Bucket="files", Key="full.bin", ChecksumAlgorithm="CRC32",
                                    ChecksumType="FULL_OBJECT")
    etags = [s3.upload_part(Bucket="files", Key="full.bin", UploadId=up["UploadId"], PartNumber=n + 1, Body=p,
                            ChecksumAlgorithm="CRC32")["ETag"] for n, p in enumerate(parts)]
    listed = {"Parts": [{"PartNumber": n + 1, "ETag": e} for n, e in enumerate(etags)]}
    wrong = base64.b64encode((zlib.crc32(whole) ^ 1).to_bytes(4, "big")).decode()
    expect_error("BadDigest", s3.complete_multipart_upload, Bucket="files", Key="full.bin",
                 UploadId=up["UploadId"], MultipartUpload=listed, ChecksumCRC32=wrong, ChecksumType="FULL_OBJECT")
    done = s3.complete_multipart_upload(Bucket="files", Key="full.bin", UploadId=up["UploadId"],
                                        MultipartUpload=listed, ChecksumCRC32=crc, ChecksumType="FULL_OBJECT")
    assert done["ChecksumCRC32"] == crc and done["ChecksumType"] == "FULL_OBJECT", done
    r = other.get_object(Bucket="files", Key="full.bin", ChecksumMode="ENABLED")
    assert r["ChecksumCRC32"] == crc and r["ChecksumType"] == "FULL_OBJECT", r
    assert r["Body"].read() == whole


def awscli(endpoint):
    env = dict(os.environ, AWS_DEFAULT_REGION="us-east-1")
    aws = [sys.executable, "-m", "awscli", "--endpoint-url", f"http://{endpoint}"]
    with tempfile.TemporaryDirectory() as d:
        src = os.path.join(d, "up.bin")
        data = blob("cli", 9 * 1024 * 1024)
        open(src, "wb").write(data)
        subprocess.run(aws + ["s3", "cp", src, "s3://files/cli/up.bin"], check=True, env=env, capture_output=True)
        ls = subprocess.run(aws + ["s3", "ls", "s3://files/cli/"], check=True, env=env, capture_output=True, text=True)
        assert "up.bin" in ls.stdout, ls.stdout
        back = os.path.join(d, "back.bin")
        subprocess.run(aws + ["s3", "cp", "s3://files/cli/up.bin", back], check=True, env=env, capture_output=True)
        assert open(back, "rb").read() == data


def rclone(endpoints):
    """rclone (Debian's package) copies a tree up through one node and back
    through another: nested folders, odd names, an empty file, inline, block
    and multipart (5 MiB chunks) sizes; `rclone check` finds no difference."""
    import filecmp
    files = {"empty": 0, "tiny.txt": 10, "thumbs/a b+c&d.jpg": 70_000, "thumbs/ünï/cödé.png": 3_000_000,
             "media/2026/11/clip.mp4": 12 * 1024 * 1024, "media/2026/notes.md": 1234}
    def rc(endpoint, *args):
        base = ["rclone", "--config", "/dev/null", "--s3-provider", "Other", "--s3-endpoint", f"http://{endpoint}",
                "--s3-access-key-id", os.environ["AWS_ACCESS_KEY_ID"],
                "--s3-secret-access-key", os.environ["AWS_SECRET_ACCESS_KEY"], "--s3-force-path-style=true",
                "--s3-upload-cutoff", "5M", "--s3-chunk-size", "5M"]
        env = {k: v for k, v in os.environ.items() if k != "AWS_CA_BUNDLE"}
        r = subprocess.run(base + list(args), env=env, capture_output=True, text=True)
        assert r.returncode == 0, (args, r.stdout, r.stderr)
        return r.stdout
    with tempfile.TemporaryDirectory() as d:
        up, back = os.path.join(d, "up"), os.path.join(d, "back")
        for name, size in files.items():
            path = os.path.join(up, name)
            os.makedirs(os.path.dirname(path), exist_ok=True)
            open(path, "wb").write(blob(name, size))
        rc(endpoints[0], "mkdir", ":s3:tree")
        rc(endpoints[0], "copy", up, ":s3:tree/site")
        listed = sorted(rc(endpoints[1], "lsf", "-R", "--files-only", ":s3:tree/site").split("\n")[:-1])
        assert listed == sorted(files), listed
        rc(endpoints[1], "check", up, ":s3:tree/site")
        rc(endpoints[-1], "copy", ":s3:tree/site", back)
        cmp = filecmp.dircmp(up, back)
        def same(c):
            return not (c.left_only or c.right_only or c.diff_files or c.funny_files) and all(
                same(s) for s in c.subdirs.values())
        assert same(cmp), cmp.report_full_closure()
        for name in files:
            assert open(os.path.join(up, name), "rb").read() == open(os.path.join(back, name), "rb").read(), name


def big(endpoints, mib):
    """A single PUT streamed from a file (boto3 sends it aws-chunked with a
    CRC32 trailer) and a GET read 1 MiB at a time: neither side holds it."""
    import time
    src_hash = hashlib.sha256()
    with tempfile.NamedTemporaryFile() as f:
        for _ in range(mib):
            chunk = os.urandom(1024 * 1024)
            src_hash.update(chunk)
            f.write(chunk)
        f.flush()
        f.seek(0)
        t = time.monotonic()
        client(endpoints[0]).put_object(Bucket="big", Key="object.bin", Body=f)
        put_s = time.monotonic() - t
    t = time.monotonic()
    body = client(endpoints[-1]).get_object(Bucket="big", Key="object.bin")["Body"]
    back, n = hashlib.sha256(), 0
    for chunk in iter(lambda: body.read(1024 * 1024), b""):
        back.update(chunk)
        n += len(chunk)
    get_s = time.monotonic() - t
    assert n == mib * 1024 * 1024 and back.digest() == src_hash.digest(), n
    print(f"mib={mib} put_s={put_s:.1f} get_s={get_s:.1f}")


def main():
    phase, endpoints = sys.argv[1], sys.argv[2:]
    s3 = client(endpoints[0])
    if phase == "main":
        other = client(endpoints[-1])
        bucket_and_objects(s3, other)
        presigned(s3)
        refusals(endpoints[-1])
        listing(s3)
        multipart(s3, other)
        awscli(endpoints[1 % len(endpoints)])
    elif phase == "big":
        mib, endpoints = int(endpoints[0]), endpoints[1:]
        client(endpoints[0]).create_bucket(Bucket="big")
        big(endpoints, mib)
    elif phase == "rclone":
        rclone(endpoints)
    elif phase == "mpu-start":
        s3.create_bucket(Bucket="uploads")
        up = s3.create_multipart_upload(Bucket="uploads", Key="big.bin")
        s3.upload_part(Bucket="uploads", Key="big.bin", UploadId=up["UploadId"], PartNumber=1,
                       Body=blob("part1", PART))
        print(up["UploadId"])
        return
    elif phase == "gc-refs":
        src, part, aborted = (open(p, "rb").read() for p in sys.argv[3:6])
        s3.create_bucket(Bucket="gcrefs")
        s3.put_object(Bucket="gcrefs", Key="src.bin", Body=src)
        s3.copy_object(Bucket="gcrefs", Key="copy.bin", CopySource={"Bucket": "gcrefs", "Key": "src.bin"})
        s3.delete_object(Bucket="gcrefs", Key="src.bin")
        up = s3.create_multipart_upload(Bucket="gcrefs", Key="open.bin")
        s3.upload_part(Bucket="gcrefs", Key="open.bin", UploadId=up["UploadId"], PartNumber=1, Body=part)
        gone = s3.create_multipart_upload(Bucket="gcrefs", Key="gone.bin")
        s3.upload_part(Bucket="gcrefs", Key="gone.bin", UploadId=gone["UploadId"], PartNumber=1, Body=aborted)
        s3.abort_multipart_upload(Bucket="gcrefs", Key="gone.bin", UploadId=gone["UploadId"])
    elif phase == "mpu-finish":
        upload_id = sys.argv[2]
        s3 = client(sys.argv[3])
        p2 = s3.upload_part(Bucket="uploads", Key="big.bin", UploadId=upload_id, PartNumber=2, Body=b"tail")
        parts = s3.list_parts(Bucket="uploads", Key="big.bin", UploadId=upload_id)["Parts"]
        s3.complete_multipart_upload(Bucket="uploads", Key="big.bin", UploadId=upload_id, MultipartUpload={
            "Parts": [{"PartNumber": p["PartNumber"], "ETag": p["ETag"]} for p in parts]})
        assert parts[1]["ETag"] == p2["ETag"]
        body = s3.get_object(Bucket="uploads", Key="big.bin")["Body"].read()
        assert body == blob("part1", PART) + b"tail"
    print("ok")


if __name__ == "__main__":
    main()
