#!/usr/bin/env python3
"""Known answers for chunkcache's AWS Signature Version 4 signer, computed by botocore.

Writes JSON (to the path given, or stdout): for each request, what it is (endpoint, bucket,
key, addressing, method, headers, body, credentials, region, time) and what botocore's
S3SigV4Auth signs it with (URL, Authorization, X-Amz-Date, X-Amz-Content-SHA256 and
X-Amz-Security-Token). Tests/ChunkCacheTests/Fixtures/sigv4-botocore.json is this script's
output; scripts/test runs it again (--check FIXTURE) with botocore from PyPI and fails if the
two differ.
"""
import datetime
import json
import sys
from unittest import mock

import botocore.auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials
from botocore.utils import percent_encode

CASES = [
    dict(name="GET of a chunk, path-style, on a local endpoint",
         endpoint="http://127.0.0.1:9000", bucket="builds", prefix="", key="cas/" + "ab" * 32,
         path_style=True, method="GET", headers=[["Accept-Encoding", "zstd"]], body="",
         access="AKIDEXAMPLE", secret="wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY", token=None,
         region="us-east-1", time="2026-12-01T20:55:32Z"),
    dict(name="PUT of a compressed chunk with a session token, virtual-hosted on AWS",
         endpoint="https://s3.eu-west-3.amazonaws.com", bucket="team-cache", prefix="go/linux-amd64/",
         key="cas/" + "0f" * 32, path_style=False, method="PUT",
         headers=[["Content-Encoding", "zstd"], ["X-Digest-SizeBytes", "16384"], ["Content-Type", "application/octet-stream"]],
         body="28b52ffd2058450000" + "00" * 20, access="ASIAEXAMPLEKEY123456", secret="s3cr3t+/with=odd+chars",
         token="IQoJb3JpZ2luX2VjEA//////////wEaCXVzLWVhc3QtMSJHMEUCIQ+token==", region="eu-west-3",
         time="2027-02-28T23:59:59Z"),
    dict(name="HEAD with an unusual prefix (spaces, unicode, reserved characters)",
         endpoint="https://minio.example.internal:8443", bucket="ci.builds", prefix="team a/ü+%=&;,!*'()$@/",
         key="cas/" + "99" * 32, path_style=True, method="HEAD", headers=[], body="",
         access="minio", secret="minio123", token=None, region="auto", time="2026-01-01T00:00:00Z"),
    dict(name="PUT of an action entry with an empty body and a token, path-style on AWS",
         endpoint="https://s3.us-west-2.amazonaws.com", bucket="my.dotted.bucket", prefix="cache/",
         key="ac/" + "7e" * 32, path_style=True, method="PUT", headers=[["Content-Type", "application/octet-stream"]],
         body="", access="AKIAIOSFODNN7EXAMPLE", secret="wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
         token="FwoGZXIvYXdzEBYaD", region="us-west-2", time="2026-07-04T12:00:00Z"),
    dict(name="GET with blanks to fold in a header value",
         endpoint="http://localhost:5000", bucket="b12", prefix="", key="ac/" + "00" * 32,
         path_style=True, method="GET", headers=[["X-Custom-Note", "  two   blanks  here "]], body="",
         access="AKID", secret="SECRET", token=None, region="ap-southeast-2", time="2026-12-31T23:59:60Z".replace("60", "59")),
]


def url_of(case):
    scheme, authority = case["endpoint"].split("://", 1)
    key = percent_encode(case["prefix"] + case["key"], safe="/~")
    if case["path_style"]:
        return f"{scheme}://{authority}/{percent_encode(case['bucket'], safe='/~')}/{key}"
    return f"{scheme}://{case['bucket']}.{authority}/{key}"


def sign(case):
    url = url_of(case)
    body = bytes.fromhex(case["body"])
    request = AWSRequest(method=case["method"], url=url, headers=dict(case["headers"]), data=body)
    credentials = Credentials(case["access"], case["secret"], case["token"])
    when = datetime.datetime.strptime(case["time"], "%Y-%m-%dT%H:%M:%SZ")
    with mock.patch.object(botocore.auth, "get_current_datetime", return_value=when):
        botocore.auth.S3SigV4Auth(credentials, "s3", case["region"]).add_auth(request)
    signed = {name: request.headers.get(name) for name in
              ["Authorization", "X-Amz-Date", "X-Amz-Content-SHA256", "X-Amz-Security-Token"]}
    return dict(case, expected=dict(url=url, headers={k: v for k, v in signed.items() if v is not None}))


def main():
    if sys.argv[1:2] == ["--check"]:
        # The committed answers must be what this botocore computes (its version may differ).
        with open(sys.argv[2], encoding="utf-8") as f:
            committed = json.load(f)["cases"]
        computed = json.loads(json.dumps([sign(c) for c in CASES]))
        same = committed == computed
        print(f"  {'ok  ' if same else 'FAIL'} the signer's known answers are botocore {botocore.__version__}'s ({len(computed)} requests)")
        sys.exit(0 if same else 1)
    text = json.dumps({"botocore": botocore.__version__, "cases": [sign(c) for c in CASES]}, indent=1, ensure_ascii=False) + "\n"
    if len(sys.argv) > 1:
        with open(sys.argv[1], "w", encoding="utf-8") as out:
            out.write(text)
    else:
        sys.stdout.write(text)


if __name__ == "__main__":
    main()
