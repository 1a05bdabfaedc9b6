"""What the S3 check scripts share: a boto3 client, awscli, and an
assertion that a call fails with a given S3 error."""
import os
import subprocess
import sys

import boto3
from botocore.config import Config
from botocore.exceptions import ClientError


def client(endpoint, key=None, secret=None):
    """boto3 on `endpoint`, path-style SigV4, with the environment's key
    unless another is given."""
    return boto3.client(
        "s3",
        endpoint_url=f"http://{endpoint}",
        aws_access_key_id=key or os.environ["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=secret or os.environ["AWS_SECRET_ACCESS_KEY"],
        region_name="us-east-1",
        config=Config(signature_version="s3v4", s3={"addressing_style": "path"}, retries={"max_attempts": 2}),
    )


def awscli(endpoint, *args):
    """Run awscli on `endpoint`; its stdout, or an assertion with its output."""
    out = subprocess.run(
        [sys.executable, "-m", "awscli", "--endpoint-url", f"http://{endpoint}", "--region", "us-east-1", *args],
        capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, (args, out.stdout, out.stderr)
    return out.stdout


def expect_error(code, fn, *args, **kwargs):
    """Call `fn`, which must fail with S3 error `code` (a name or an HTTP
    status); the error."""
    try:
        fn(*args, **kwargs)
    except ClientError as e:
        got = e.response["Error"]["Code"]
        status = str(e.response["ResponseMetadata"]["HTTPStatusCode"])
        assert str(code) in (got, status), (code, e.response)
        return e
    raise AssertionError(f"expected {code}")
