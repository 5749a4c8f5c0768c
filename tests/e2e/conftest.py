"""End-to-end fixtures: SeaweedFS's S3 gateway, redis-server and a real worker process."""

from __future__ import annotations

import contextlib
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor

import pytest

from devstack.servers import AWS_TEST_ENV, REPO, RedisServer, Worker, worker_process


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


def cli_env(endpoint: str, credentials: Mapping[str, str] = AWS_TEST_ENV) -> dict[str, str]:
    """The environment of a CLI process: ``credentials`` and S3 at ``endpoint``, nothing else."""
    return {**credentials, "PATH": "/usr/bin:/bin", "AWS_ENDPOINT_URL": endpoint}


def s3fanout(*args: str) -> list[str]:
    """The command line of ``s3fanout *args``, through the installed command's entry point."""
    return [sys.executable, "-m", "copy_control.console", *args]


def start_cli(*args: str, endpoint: str) -> subprocess.Popen[str]:
    """Start ``s3fanout *args`` against S3 at ``endpoint`` in the background (output piped)."""
    return subprocess.Popen(
        s3fanout(*args),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=cli_env(endpoint),
        cwd=REPO,
    )


def run_cli(
    *args: str, endpoint: str, credentials: Mapping[str, str] = AWS_TEST_ENV
) -> subprocess.CompletedProcess[str]:
    """Run ``s3fanout *args`` to the end against S3 at ``endpoint``."""
    return subprocess.run(
        s3fanout(*args),
        capture_output=True,
        text=True,
        env=cli_env(endpoint, credentials),
        cwd=REPO,
        timeout=300,
        check=False,
    )


def wait_for(check: Callable[[], bool], what: str, timeout: float = 120) -> None:
    """Poll ``check`` until it holds; an assertion failing inside it fails the test at once."""
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)
