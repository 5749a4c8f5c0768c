"""A very large object split across workers: parts copied by several, completed by one."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from devstack.faultproxy import Fault, FaultProxy, FaultRule, Request, fault_proxy
from devstack.servers import RedisServer, Worker, worker_process
from tests.e2e.conftest import run_cli, wait_for

MiB = 1024 * 1024
SIZE = 61 * MiB + 12345  # 13 parts of 5 MiB, batches of 2: 7 tasks


@pytest.fixture(scope="module")
def proxy(seaweed: str) -> Iterator[FaultProxy]:
    with fault_proxy(seaweed) as running:
        yield running


@pytest.fixture(scope="module")
def two_workers(
    redis_srv: RedisServer, proxy: FaultProxy, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[str, list[Worker]]]:
    redis_url = redis_srv.url.rsplit("/", 1)[0] + "/15"
    base = tmp_path_factory.mktemp("split")
    with (
        worker_process(redis_url, proxy.url, base / "a", concurrency=1, name="split-a") as a,
        worker_process(redis_url, proxy.url, base / "b", concurrency=1, name="split-b") as b,
    ):
        yield redis_url, [a, b]


def _is_part_copy(request: Request) -> bool:
    return request.header("x-amz-copy-source") is not None and "partNumber" in request.query


def _copy(redis_url: str, seaweed: str, source: str, dest: str, *extra: str) -> dict[str, Any]:
    done = run_cli(
        "copy",
        f"s3://{source}/big/",
        f"s3://{dest}/big/",
        "--recursive",
        "--redis-url",
        redis_url,
        "--multipart-threshold",
        "5MiB",
        "--part-size",
        "5MiB",
        "--split-threshold",
        "16MiB",
        "--parts-per-task",
        "2",
        "--json",
        *extra,
        endpoint=seaweed,
    )
    assert done.stdout, done.stderr
    summary: dict[str, Any] = json.loads(done.stdout)
    return summary


def _batches(worker: Worker) -> list[str]:
    return [
        line
        for line in worker.log_text().splitlines()
        if "s3fanout.copy_parts" in line and "succeeded" in line
    ]


def test_parts_spread_over_workers_and_one_completes_the_object(
    sw_s3: Any, seaweed: str, two_workers: tuple[str, list[Worker]], tmp_path: Path
) -> None:
    redis_url, workers = two_workers
    source, dest = f"split-src-{uuid.uuid4().hex[:6]}", f"split-dst-{uuid.uuid4().hex[:6]}"
    sw_s3.create_bucket(Bucket=source)
    sw_s3.create_bucket(Bucket=dest)
    body = bytes(range(256)) * (SIZE // 256) + b"tail"
    sw_s3.put_object(
        Bucket=source,
        Key="big/object.bin",
        Body=body,
        ChecksumAlgorithm="CRC32C",
        ContentType="application/x-big",
        Metadata={"origin": "split"},
        Tagging="size=large",
    )
    sw_s3.put_object(Bucket=source, Key="big/small.txt", Body=b"small")
    summary = _copy(redis_url, seaweed, source, dest)
    assert (summary["status"], summary["objects_copied"]) == ("succeeded", 2), summary
    assert summary["objects_verified"] == 2
    assert summary["bytes_copied"] == len(body) + 5
    copied = sw_s3.get_object(Bucket=dest, Key="big/object.bin")
    assert copied["Body"].read() == body
    assert copied["ContentType"] == "application/x-big"
    assert copied["Metadata"]["origin"] == "split"
    tags = sw_s3.get_object_tagging(Bucket=dest, Key="big/object.bin")["TagSet"]
    assert tags == [{"Key": "size", "Value": "large"}]
    per_worker = [len(_batches(worker)) for worker in workers]
    assert sum(per_worker) >= 7 and all(count > 0 for count in per_worker), per_worker
    assert not sw_s3.list_multipart_uploads(Bucket=dest).get("Uploads")


def test_a_source_replaced_during_a_split_fails_the_key_and_leaves_no_upload(
    sw_s3: Any, seaweed: str, proxy: FaultProxy, two_workers: tuple[str, list[Worker]]
) -> None:
    redis_url, _ = two_workers
    source, dest = f"split-chg-{uuid.uuid4().hex[:6]}", f"split-cdst-{uuid.uuid4().hex[:6]}"
    sw_s3.create_bucket(Bucket=source)
    sw_s3.create_bucket(Bucket=dest)
    sw_s3.put_object(Bucket=source, Key="big/object.bin", Body=b"a" * SIZE)
    proxy.set_rules([FaultRule(Fault.DELAY, delay_s=0.5, match=_is_part_copy)])
    copies = ThreadPoolExecutor(1).submit(
        _copy, redis_url, seaweed, source, dest, "--max-failures", "1"
    )
    # The split has started: parts are being copied.
    wait_for(lambda: proxy.stats.delay >= 2, "a part to be copied", timeout=60)
    sw_s3.put_object(Bucket=source, Key="big/object.bin", Body=b"b" * SIZE)
    summary = copies.result(timeout=120)
    proxy.set_rules([])
    assert (summary["objects_copied"], summary["objects_failed"]) == (0, 1), summary
    assert summary["failures"][0]["error_code"] == "PreconditionFailed"
    assert "changed after it was listed" in summary["failures"][0]["message"]
    assert not sw_s3.list_multipart_uploads(Bucket=dest).get("Uploads")
    assert sw_s3.list_objects_v2(Bucket=dest).get("KeyCount", 0) == 0
