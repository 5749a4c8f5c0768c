"""End-to-end fixtures: SeaweedFS's S3 gateway, redis-server and a real worker process."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import pytest

from devstack.servers import RedisServer, Worker, worker_process


@pytest.fixture(scope="module")
def sw_worker(
    redis_srv: RedisServer, seaweed: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Worker]:
    with worker_process(
        redis_srv.url, seaweed, tmp_path_factory.mktemp("worker"), concurrency=2
    ) as worker:
        yield worker


def seed(s3, bucket: str, keys: list[str], body=lambda k: k.encode()) -> None:
    """Create ``bucket`` (if needed) and put one object per key, 16 at a time."""
    with contextlib.suppress(s3.exceptions.BucketAlreadyOwnedByYou):
        s3.create_bucket(Bucket=bucket)
    with ThreadPoolExecutor(16) as pool:
        list(pool.map(lambda k: s3.put_object(Bucket=bucket, Key=k, Body=body(k)), keys))


def all_keys(s3, bucket: str, prefix: str = "") -> dict[str, int]:
    """Every key under ``prefix`` with its size."""
    found: dict[str, int] = {}
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
        found.update({o["Key"]: o["Size"] for o in page.get("Contents", [])})
    return found
