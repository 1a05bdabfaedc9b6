"""Browsers' view of ringstore's S3: public access, CORS and the website
endpoint, driven by boto3, awscli and plain unsigned HTTP.

Usage: s3_web_check.py PHASE S3_ENDPOINT WEB_ENDPOINT [OTHER_S3_ENDPOINT]
Environment: AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY (a key that may
create buckets); OTHER_KEY_ID and OTHER_SECRET (a second key with no
rights) for the `public` phase.

Phases:
  public   canned ACLs, grants and a bucket policy open objects to
           unsigned requests; everything else stays private, with S3's
           status codes; a public access block overrides them
  cors     PutBucketCors with awscli; preflights answered from the rules
           on the S3 and website endpoints; headers on actual responses
  website  index and error documents, redirects, content headers as
           uploaded, conditional GET (304 with the ETag), ranges, HEAD,
           gzip passthrough
  page     set up the pages the Chromium test loads; prints the page URL
  nearby_put  (re)write NEARBY_KEYS public objects near/kI with bodies
           "NEARBY_VERSION-I" in a website bucket `near`
  nearby_new  write a new public object and read it at once through the
           website endpoint: a key no replica had is never a 404
Exits non-zero on the first failed check.
"""
import gzip
import http.client
import json
import os
import struct
import sys
import time
import zlib

from s3util import awscli, client, expect_error




def fetch(endpoint, method, path, headers=None, host=None, body=None):
    """One unsigned request; no redirect followed. (status, headers, body)"""
    h = dict(headers or {})
    if host:
        h["Host"] = host
    conn = http.client.HTTPConnection(endpoint, timeout=30)
    conn.request(method, path, body=body, headers=h)
    r = conn.getresponse()
    data = r.read()
    out = (r.status, {k.lower(): v for k, v in r.getheaders()}, data)
    conn.close()
    return out


def settled(check, secs=10):
    """Retry `check` (which asserts) until it passes or `secs` pass.

    A node trusts its cached view of a bucket's settings for 2 s
    (docs/S3.md), so a setting written through one node holds on another
    within that time: checks through another node wait for it."""
    deadline = time.monotonic() + secs
    while True:
        try:
            return check()
        except AssertionError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)




def png(width, height):
    """A real PNG of one colour, so a browser gives it a natural width."""
    raw = b"".join(b"\x00" + b"\x30\x90\xc0" * width for _ in range(height))

    def chunk(kind, data):
        c = struct.pack(">I", len(data)) + kind + data
        return c + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b"")


def public(s3_ep, web_ep, other_ep):
    s3 = client(s3_ep)
    other = client(other_ep, os.environ["OTHER_KEY_ID"], os.environ["OTHER_SECRET"])
    s3.create_bucket(Bucket="priv")
    s3.put_object(Bucket="priv", Key="secret.txt", Body=b"secret")
    s3.put_object(Bucket="priv", Key="open.txt", Body=b"open", ACL="public-read")
    # Unsigned: a public object reads, a private one is 403, a missing key
    # in an unlistable bucket is 403 (S3 does not tell it exists), a
    # missing bucket is 404.
    st, h, body = fetch(s3_ep, "GET", "/priv/open.txt")
    assert (st, body) == (200, b"open"), (st, body)
    st, _, body = fetch(s3_ep, "GET", "/priv/secret.txt")
    assert st == 403 and b"AccessDenied" in body, (st, body)
    assert fetch(s3_ep, "GET", "/priv/missing.txt")[0] == 403
    st, _, body = fetch(s3_ep, "GET", "/nosuchbucket/x")
    assert st == 404 and b"NoSuchBucket" in body, (st, body)
    assert fetch(s3_ep, "GET", "/priv?list-type=2")[0] == 403
    assert fetch(s3_ep, "PUT", "/priv/new.txt", body=b"x")[0] == 403
    assert fetch(s3_ep, "HEAD", "/priv/open.txt")[0] == 200
    # The ACLs read back as S3 shows them.
    grants = s3.get_object_acl(Bucket="priv", Key="open.txt")["Grants"]
    assert any(g["Grantee"].get("URI", "").endswith("AllUsers") and g["Permission"] == "READ" for g in grants), grants
    s3.put_object_acl(Bucket="priv", Key="open.txt", ACL="private")
    assert fetch(s3_ep, "GET", "/priv/open.txt")[0] == 403
    # A key without rights reads public objects too, and nothing else.
    s3.put_object_acl(Bucket="priv", Key="open.txt", ACL="public-read")
    assert other.get_object(Bucket="priv", Key="open.txt")["Body"].read() == b"open"
    expect_error("AccessDenied", other.get_object, Bucket="priv", Key="secret.txt")
    # A public-read bucket lists (READ on a bucket is listing, as on S3);
    # its objects read by their own ACL, and missing keys are 404.
    s3.create_bucket(Bucket="pub", ACL="public-read")
    s3.put_object(Bucket="pub", Key="a.txt", Body=b"a", ACL="public-read")
    s3.put_object(Bucket="pub", Key="b.txt", Body=b"b")
    assert fetch(s3_ep, "GET", "/pub/a.txt")[:3:2] == (200, b"a")
    assert fetch(s3_ep, "GET", "/pub/b.txt")[0] == 403
    st, _, body = fetch(s3_ep, "GET", "/pub?list-type=2")
    assert st == 200 and b"<Key>a.txt</Key>" in body, (st, body)
    assert fetch(s3_ep, "GET", "/pub/missing")[0] == 404
    assert fetch(s3_ep, "DELETE", "/pub/a.txt")[0] == 403
    acl = s3.get_bucket_acl(Bucket="pub")
    assert any(g["Permission"] == "READ" and g["Grantee"].get("URI", "").endswith("AllUsers") for g in acl["Grants"]), acl
    # The owner's own grant is there and named.
    assert acl["Owner"]["ID"] == os.environ["AWS_ACCESS_KEY_ID"], acl
    # A policy opens one prefix.
    s3.create_bucket(Bucket="pol")
    s3.put_object(Bucket="pol", Key="thumbs/1.jpg", Body=b"t1")
    s3.put_object(Bucket="pol", Key="originals/1.jpg", Body=b"o1")
    policy = {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Principal": "*",
              "Action": "s3:GetObject", "Resource": "arn:aws:s3:::pol/thumbs/*"}]}
    s3.put_bucket_policy(Bucket="pol", Policy=json.dumps(policy))
    assert json.loads(s3.get_bucket_policy(Bucket="pol")["Policy"]) == policy
    assert s3.get_bucket_policy_status(Bucket="pol")["PolicyStatus"]["IsPublic"] is True
    assert fetch(s3_ep, "GET", "/pol/thumbs/1.jpg")[:3:2] == (200, b"t1")
    assert fetch(s3_ep, "GET", "/pol/originals/1.jpg")[0] == 403
    bad = dict(policy, Statement=[dict(policy["Statement"][0], Condition={"IpAddress": {}})])
    expect_error("MalformedPolicy", s3.put_bucket_policy, Bucket="pol", Policy=json.dumps(bad))
    # Only the owner changes settings.
    expect_error("AccessDenied", other.put_bucket_policy, Bucket="pol", Policy=json.dumps(policy))
    # A public access block overrides ACLs and policies at once.
    s3.put_public_access_block(Bucket="pol", PublicAccessBlockConfiguration={
        "BlockPublicAcls": True, "IgnorePublicAcls": True, "BlockPublicPolicy": True, "RestrictPublicBuckets": True})
    assert fetch(s3_ep, "GET", "/pol/thumbs/1.jpg")[0] == 403
    expect_error("AccessDenied", s3.put_object, Bucket="pol", Key="x", Body=b"x", ACL="public-read")
    s3.delete_public_access_block(Bucket="pol")
    assert fetch(s3_ep, "GET", "/pol/thumbs/1.jpg")[0] == 200
    s3.delete_bucket_policy(Bucket="pol")
    assert fetch(s3_ep, "GET", "/pol/thumbs/1.jpg")[0] == 403
    # A deleted bucket's settings do not outlive it.
    s3.delete_objects(Bucket="pub", Delete={"Objects": [{"Key": "a.txt"}, {"Key": "b.txt"}]})
    s3.delete_bucket(Bucket="pub")
    s3.create_bucket(Bucket="pub")
    assert fetch(s3_ep, "GET", "/pub?list-type=2")[0] == 403




def cors(s3_ep, web_ep):
    s3 = client(s3_ep)
    s3.create_bucket(Bucket="cors")
    s3.put_object(Bucket="cors", Key="data.json", Body=b'{"ok": true}', ACL="public-read",
                  ContentType="application/json")
    origin = "http://app.example.com"
    pre = {"Origin": origin, "Access-Control-Request-Method": "GET"}
    st, _, body = fetch(s3_ep, "OPTIONS", "/cors/data.json", pre)
    assert st == 403 and b"CORS" in body, (st, body)
    rules = {"CORSRules": [{"AllowedOrigins": ["http://*.example.com"], "AllowedMethods": ["GET", "PUT"],
                            "AllowedHeaders": ["x-amz-*", "content-type"], "ExposeHeaders": ["ETag"],
                            "MaxAgeSeconds": 600}]}
    awscli(s3_ep, "s3api", "put-bucket-cors", "--bucket", "cors", "--cors-configuration", json.dumps(rules))
    got = s3.get_bucket_cors(Bucket="cors")["CORSRules"][0]
    assert got["AllowedOrigins"] == ["http://*.example.com"] and got["MaxAgeSeconds"] == 600, got
    st, h, _ = fetch(s3_ep, "OPTIONS", "/cors/data.json", dict(pre, **{"Access-Control-Request-Headers": "Content-Type"}))
    assert st == 200, st
    assert h["access-control-allow-origin"] == origin, h
    assert "GET" in h["access-control-allow-methods"] and h["access-control-max-age"] == "600", h
    assert h["access-control-allow-headers"] == "content-type", h
    assert fetch(s3_ep, "OPTIONS", "/cors/data.json", {"Origin": "http://evil.org",
                 "Access-Control-Request-Method": "GET"})[0] == 403
    assert fetch(s3_ep, "OPTIONS", "/cors/data.json", dict(pre, **{"Access-Control-Request-Method": "DELETE"}))[0] == 403
    # Actual requests: the headers ride on the response, signed or not.
    st, h, body = fetch(s3_ep, "GET", "/cors/data.json", {"Origin": origin})
    assert st == 200 and h["access-control-allow-origin"] == origin and h["access-control-expose-headers"] == "ETag", h
    st, h, _ = fetch(s3_ep, "GET", "/cors/data.json", {"Origin": "http://evil.org"})
    assert st == 200 and "access-control-allow-origin" not in h, h
    # The same rules on the website endpoint.
    s3.put_bucket_website(Bucket="cors", WebsiteConfiguration={"IndexDocument": {"Suffix": "index.html"}})
    def preflight_on_web():
        st, h, _ = fetch(web_ep, "OPTIONS", "/data.json", pre, host="cors.web.localhost")
        assert st == 200 and h["access-control-allow-origin"] == origin, (st, h)
    settled(preflight_on_web)
    st, h, body = fetch(web_ep, "GET", "/data.json", {"Origin": origin}, host="cors.web.localhost")
    assert st == 200 and body == b'{"ok": true}' and h["access-control-allow-origin"] == origin, (st, h)
    s3.delete_bucket_cors(Bucket="cors")
    expect_error("NoSuchCORSConfiguration", s3.get_bucket_cors, Bucket="cors")
    assert fetch(s3_ep, "OPTIONS", "/cors/data.json", pre)[0] == 403


def website(s3_ep, web_ep):
    s3 = client(s3_ep)
    site = "site.web.localhost"
    s3.create_bucket(Bucket="site")
    # Not a website yet.
    st, _, body = fetch(web_ep, "GET", "/", host=site)
    assert st == 404 and b"NoSuchWebsiteConfiguration" in body, (st, body)
    awscli(s3_ep, "s3", "website", "s3://site", "--index-document", "index.html", "--error-document", "404.html")
    w = s3.get_bucket_website(Bucket="site")
    assert w["IndexDocument"]["Suffix"] == "index.html" and w["ErrorDocument"]["Key"] == "404.html", w
    pub = {"ACL": "public-read"}
    s3.put_object(Bucket="site", Key="index.html", Body=b"<h1>home</h1>", ContentType="text/html", **pub)
    s3.put_object(Bucket="site", Key="docs/index.html", Body=b"<h1>docs</h1>", ContentType="text/html", **pub)
    s3.put_object(Bucket="site", Key="404.html", Body=b"<h1>not here</h1>", ContentType="text/html", **pub)
    s3.put_object(Bucket="site", Key="private.html", Body=b"no", ContentType="text/html")
    css = b"body { color: red }\n" * 200
    s3.put_object(Bucket="site", Key="style.css", Body=gzip.compress(css), ContentType="text/css",
                  ContentEncoding="gzip", CacheControl="public, max-age=86400",
                  ContentDisposition='inline; filename="style.css"', Expires="Wed, 21 Oct 2037 07:28:00 GMT",
                  Metadata={"origin": "build-42"}, **pub)
    s3.put_object(Bucket="site", Key="old.html", Body=b"", WebsiteRedirectLocation="/docs/", **pub)
    # Index documents, at the root and in a directory; /docs sends the
    # browser to /docs/.
    def home():
        st, h, body = fetch(web_ep, "GET", "/", host=site)
        assert (st, body, h["content-type"]) == (200, b"<h1>home</h1>", "text/html"), (st, h, body)
    settled(home)
    assert fetch(web_ep, "GET", "/docs/", host=site)[2] == b"<h1>docs</h1>"
    st, h, _ = fetch(web_ep, "GET", "/docs", host=site)
    assert st == 302 and h["location"] == "/docs/", (st, h)
    # The error document, with the error's status; private objects too.
    st, _, body = fetch(web_ep, "GET", "/nothing.html", host=site)
    assert (st, body) == (403, b"<h1>not here</h1>"), (st, body)
    assert fetch(web_ep, "GET", "/private.html", host=site)[0] == 403
    # Redirects: per object.
    st, h, _ = fetch(web_ep, "GET", "/old.html", host=site)
    assert st == 301 and h["location"] == "/docs/", (st, h)
    # Headers as uploaded; gzip passes through untouched.
    st, h, body = fetch(web_ep, "GET", "/style.css", {"Accept-Encoding": "gzip"}, host=site)
    assert st == 200 and gzip.decompress(body) == css, st
    assert h["content-encoding"] == "gzip" and h["cache-control"] == "public, max-age=86400", h
    assert h["content-disposition"] == 'inline; filename="style.css"', h
    assert h["expires"] == "Wed, 21 Oct 2037 07:28:00 GMT", h
    assert h["x-amz-meta-origin"] == "build-42" and h["accept-ranges"] == "bytes", h
    etag, modified = h["etag"], h["last-modified"]
    assert etag == s3.head_object(Bucket="site", Key="style.css")["ETag"], etag
    # Conditional GETs: 304 carries the ETag; a changed ETag is a 200.
    st, h, body = fetch(web_ep, "GET", "/style.css", {"If-None-Match": etag}, host=site)
    assert (st, body, h["etag"]) == (304, b"", etag), (st, h)
    assert fetch(web_ep, "GET", "/style.css", {"If-Modified-Since": modified}, host=site)[0] == 304
    assert fetch(web_ep, "GET", "/style.css", {"If-None-Match": '"other"'}, host=site)[0] == 200
    assert fetch(web_ep, "GET", "/style.css", {"If-Match": '"other"'}, host=site)[0] == 412
    # Ranges and HEAD.
    st, h, body = fetch(web_ep, "GET", "/index.html", {"Range": "bytes=4-7"}, host=site)
    assert (st, body, h["content-range"]) == (206, b"home", "bytes 4-7/13"), (st, h, body)
    st, h, _ = fetch(web_ep, "GET", "/index.html", {"Range": "bytes=100-"}, host=site)
    assert st == 416 and h["content-range"] == "bytes */13", (st, h)
    st, h, body = fetch(web_ep, "HEAD", "/index.html", host=site)
    assert (st, body, h["content-length"]) == (200, b"", "13"), (st, h)
    # Only reads; unknown buckets are 404.
    assert fetch(web_ep, "PUT", "/index.html", host=site, body=b"x")[0] == 405
    assert fetch(web_ep, "GET", "/", host="nobucket.web.localhost")[0] == 404
    # Routing rules and redirect-all.
    s3.put_bucket_website(Bucket="site", WebsiteConfiguration={
        "IndexDocument": {"Suffix": "index.html"},
        "RoutingRules": [{"Condition": {"KeyPrefixEquals": "blog/"},
                          "Redirect": {"ReplaceKeyPrefixWith": "docs/", "HttpRedirectCode": "302"}}]})
    def routed():
        st, h, _ = fetch(web_ep, "GET", "/blog/post.html", host=site)
        assert st == 302 and h["location"] == f"http://{site}/docs/post.html", (st, h)
    settled(routed)
    s3.create_bucket(Bucket="moved")
    s3.put_bucket_website(Bucket="moved", WebsiteConfiguration={
        "RedirectAllRequestsTo": {"HostName": "example.com", "Protocol": "https"}})
    def moved():
        st, h, _ = fetch(web_ep, "GET", "/a/b.html", host="moved.web.localhost")
        assert st == 301 and h["location"] == "https://example.com/a/b.html", (st, h)
    settled(moved)
    s3.delete_bucket_website(Bucket="moved")

    def gone():
        assert fetch(web_ep, "GET", "/a/b.html", host="moved.web.localhost")[0] == 404
    settled(gone)


def page(s3_ep, web_ep):
    """The page of the browser test: images from a public bucket and a
    cross-origin fetch of a JSON object through the S3 endpoint."""
    s3 = client(s3_ep)
    web_port = web_ep.rsplit(":", 1)[1]
    s3.create_bucket(Bucket="thumbs", ACL="public-read")
    s3.put_bucket_website(Bucket="thumbs", WebsiteConfiguration={"IndexDocument": {"Suffix": "index.html"}})
    for i, (w, h) in enumerate([(64, 48), (120, 90), (32, 32)]):
        s3.put_object(Bucket="thumbs", Key=f"t{i}.png", Body=png(w, h), ContentType="image/png",
                      ACL="public-read")
    s3.put_object(Bucket="thumbs", Key="meta.json", Body=b'{"count": 3}', ContentType="application/json",
                  ACL="public-read")
    page_origin = f"http://www.web.localhost:{web_port}"
    s3.put_bucket_cors(Bucket="thumbs", CORSConfiguration={"CORSRules": [
        {"AllowedOrigins": [page_origin], "AllowedMethods": ["GET"]}]})
    s3.create_bucket(Bucket="www")
    s3.put_bucket_website(Bucket="www", WebsiteConfiguration={"IndexDocument": {"Suffix": "index.html"}})
    imgs = "".join(f'<img src="http://thumbs.web.localhost:{web_port}/t{i}.png">' for i in range(3))
    html = f"""<!doctype html><html><head><title>thumbs</title></head><body>{imgs}
<pre id="result">waiting</pre>
<script>
async function check() {{
  const imgs = [...document.images];
  await Promise.all(imgs.map(i => i.complete ? null : new Promise(r => {{ i.onload = r; i.onerror = r; }})));
  const loaded = imgs.filter(i => i.naturalWidth > 0).map(i => i.naturalWidth).join(",");
  let cors = "failed";
  try {{
    const r = await fetch("http://{s3_ep}/thumbs/meta.json", {{mode: "cors"}});
    const j = await r.json();
    cors = "count=" + j.count;
  }} catch (e) {{ cors = "error " + e; }}
  document.getElementById("result").textContent = "widths=" + loaded + " cors=" + cors;
}}
window.addEventListener("load", check);
</script></body></html>"""
    s3.put_object(Bucket="www", Key="index.html", Body=html.encode(), ContentType="text/html", ACL="public-read")
    print(f"{page_origin}/")


def nearby_put(s3_ep):
    s3 = client(s3_ep)
    version, n = os.environ["NEARBY_VERSION"], int(os.environ["NEARBY_KEYS"])
    if "near" not in [b["Name"] for b in s3.list_buckets()["Buckets"]]:
        s3.create_bucket(Bucket="near", ACL="public-read")
        s3.put_bucket_website(Bucket="near", WebsiteConfiguration={"IndexDocument": {"Suffix": "index.html"}})
    for i in range(n):
        s3.put_object(Bucket="near", Key=f"k{i}", Body=f"{version}-{i}".encode(), ACL="public-read")


def nearby_new(s3_ep, web_ep):
    s3 = client(s3_ep)
    key = f"new-{time.time_ns()}"
    s3.put_object(Bucket="near", Key=key, Body=b"fresh", ACL="public-read")
    st, _, body = fetch(web_ep, "GET", f"/{key}", host="near.web.localhost")
    assert (st, body) == (200, b"fresh"), (st, body)


def main():
    phase, s3_ep, web_ep = sys.argv[1:4]
    other_ep = sys.argv[4] if len(sys.argv) > 4 else s3_ep
    if phase == "public":
        public(s3_ep, web_ep, other_ep)
    elif phase == "cors":
        cors(s3_ep, web_ep)
    elif phase == "website":
        website(s3_ep, web_ep)
    elif phase == "nearby_put":
        nearby_put(s3_ep)
    elif phase == "nearby_new":
        nearby_new(s3_ep, web_ep)
    elif phase == "page":
        page(s3_ep, web_ep)
        return
    else:
        raise SystemExit(f"unknown phase {phase}")
    print("ok")


if __name__ == "__main__":
    main()
