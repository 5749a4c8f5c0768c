"""The naive boto3 baseline, run as its own process so that its CPU can be measured.

List the source prefix, then ``copy_object`` every key from a pool of threads sharing one
client (the way a hand-written script or a mapped Airflow task would do it, minus the task
overhead). Prints ``{"copied": N, "failed": N}``; exits 1 if any copy failed.
"""

from __future__ import annotations

import argparse
import json
from concurrent.futures import ThreadPoolExecutor

import boto3
from botocore.config import Config


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.boto3_copy")
    parser.add_argument("source_bucket")
    parser.add_argument("source_prefix")
    parser.add_argument("dest_bucket")
    parser.add_argument("dest_prefix")
    parser.add_argument("--endpoint-url", default=None)
    parser.add_argument("--threads", type=int, default=64)
    args = parser.parse_args()
    config = Config(max_pool_connections=args.threads, retries={"mode": "standard"})
    s3 = boto3.client("s3", endpoint_url=args.endpoint_url, config=config)
    pages = s3.get_paginator("list_objects_v2").paginate(
        Bucket=args.source_bucket, Prefix=args.source_prefix
    )
    keys = [item["Key"] for page in pages for item in page.get("Contents", [])]

    def copy(key: str) -> bool:
        dest_key = args.dest_prefix + key[len(args.source_prefix) :]
        try:
            s3.copy_object(
                Bucket=args.dest_bucket,
                Key=dest_key,
                CopySource={"Bucket": args.source_bucket, "Key": key},
            )
        except Exception as exc:  # counted and reported, like any copy tool
            print(f"failed: {key}: {exc}")
            return False
        return True

    with ThreadPoolExecutor(args.threads) as pool:
        results = list(pool.map(copy, keys))
    copied = sum(results)
    print(json.dumps({"copied": copied, "failed": len(results) - copied}))
    return 0 if copied == len(results) else 1


if __name__ == "__main__":
    raise SystemExit(main())
