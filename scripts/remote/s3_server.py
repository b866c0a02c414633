"""An S3 server on loopback for chunkcache's tests: moto's, with signatures checked.

    python3 s3_server.py serve PORT BUCKET KEYFILE   runs until killed; when ready, writes
                                                     "ACCESS_KEY_ID SECRET" to KEYFILE
    python3 s3_server.py count PORT BUCKET PREFIX    prints how many objects are under PREFIX

moto checks Signature Version 4 (and that the key exists) once its first requests are spent:
INITIAL_NO_AUTH_ACTION_COUNT lets the set-up below (an IAM user with an access key and a
policy, then the bucket) through unsigned; every request after it must be signed right.
"""
import json
import os
import sys
import time

ADMIN = dict(region_name="us-east-1", aws_access_key_id="setup", aws_secret_access_key="setup")


def serve(port, bucket, keyfile):
    os.environ["INITIAL_NO_AUTH_ACTION_COUNT"] = "4"
    import boto3
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    endpoint = f"http://127.0.0.1:{port}"
    iam = boto3.client("iam", endpoint_url=endpoint, **ADMIN)
    iam.create_user(UserName="ci")
    key = iam.create_access_key(UserName="ci")["AccessKey"]
    policy = {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "s3:*", "Resource": "*"}]}
    iam.put_user_policy(UserName="ci", PolicyName="cache", PolicyDocument=json.dumps(policy))
    boto3.client("s3", endpoint_url=endpoint, **ADMIN).create_bucket(Bucket=bucket)
    with open(keyfile + ".tmp", "w") as out:
        out.write(f"{key['AccessKeyId']} {key['SecretAccessKey']}\n")
    os.rename(keyfile + ".tmp", keyfile)
    while True:
        time.sleep(3600)


def count(port, bucket, prefix):
    import boto3

    key, secret = open(os.environ["S3_KEYFILE"]).read().split()
    s3 = boto3.client("s3", endpoint_url=f"http://127.0.0.1:{port}", region_name="us-east-1",
                      aws_access_key_id=key, aws_secret_access_key=secret)
    total = 0
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
        total += page.get("KeyCount", 0)
    print(total)


if __name__ == "__main__":
    command, port = sys.argv[1], int(sys.argv[2])
    if command == "serve":
        serve(port, sys.argv[3], sys.argv[4])
    else:
        count(port, sys.argv[3], sys.argv[4])
