"""Selection end to end on SeaweedFS: filters, dry runs, concurrent listing, resume.

Real processes where the product has them: the ``s3fanout`` CLI, a copy worker, redis-server,
and SeaweedFS's S3 gateway over HTTP.
"""

from __future__ import annotations

import fnmatch
import json
import subprocess
import time
import uuid
from collections import Counter
from datetime import datetime
from typing import Any, cast

import boto3
import pytest
import redis

from copy_control.dispatch.fanout import Fanout
from copy_control.dispatch.listing_log import ListingLog, MemoryLog
from copy_control.dispatch.planning import PartitionEnd, Plan, PlannedChunk
from copy_control.dispatch.producer import producer_app
from copy_control.dispatch.runner import start_run
from copy_control.listing.sources import PrefixSource
from copy_control.request import CopyRequest
from copy_control.runs.waiting import wait_for_run
from copy_core.runs.store import RunStore, connect
from devstack.servers import RedisServer, Worker
from tests.e2e.conftest import all_keys, run_cli, seed

SIZES = (0, 10, 1000, 5000, 20000)


def cli(*args: str, endpoint: str, redis_url: str) -> subprocess.CompletedProcess[str]:
    return run_cli("copy", *args, "--redis-url", redis_url, endpoint=endpoint)


def body(key: str) -> bytes:
    return b"x" * SIZES[sum(key.encode()) % len(SIZES)]


@pytest.fixture(scope="module")
def source(sw_s3) -> dict[str, Any]:
    """``sel-src``: an older batch, then (a second later) a newer one; one key elsewhere."""
    old = [f"sel/{d}/{h}/file-{i}.{ext}" for d in range(3) for h in range(4) for i in range(12)
           for ext in ("csv", "json", "tmp")][:900]  # fmt: skip
    old += ["sel/ spaced name.csv", "sel/plus+sign.csv", "sel/ünïcode/ø.csv", "sel/pct%25.csv"]
    seed(sw_s3, "sel-src", old, body=body)
    seed(sw_s3, "sel-src", ["other/outside.csv"], body=body)
    old_times = [o["LastModified"] for o in _objects(sw_s3, "sel-src", "sel/")]
    time.sleep(1.5)  # LastModified has a resolution of one second
    new = [f"sel/new/n-{i}.csv" for i in range(60)]
    seed(sw_s3, "sel-src", new, body=body)
    objects = {o["Key"]: o for o in _objects(sw_s3, "sel-src", "sel/")}
    cutoff = min(objects[k]["LastModified"] for k in new)
    assert max(old_times) < cutoff
    return {"bucket": "sel-src", "objects": objects, "new": set(new), "cutoff": cutoff}


def _objects(s3, bucket: str, prefix: str) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = []
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
        found += page.get("Contents", [])
    return found


def _new_dest(s3) -> str:
    name = f"sel-dst-{uuid.uuid4().hex[:8]}"
    s3.create_bucket(Bucket=name)
    return name


def _summary(done: subprocess.CompletedProcess[str]) -> dict[str, Any]:
    assert done.returncode == 0, done.stderr
    return cast(dict[str, Any], json.loads(done.stdout))


def test_include_exclude_and_size_filters(
    source, sw_s3, sw_worker: Worker, redis_srv: RedisServer, seaweed: str
) -> None:
    dest = _new_dest(sw_s3)
    done = cli(
        "s3://sel-src/sel/",
        f"s3://{dest}/out/",
        "--recursive",
        *("--include", "*.csv", "--include", "*.json", "--exclude", "1/*"),
        *("--min-size", "10", "--max-size", "5KB", "--json"),
        endpoint=seaweed,
        redis_url=redis_srv.url,
    )
    summary = _summary(done)

    def wanted(rel: str, size: int) -> bool:
        matches = fnmatch.fnmatchcase(rel, "*.csv") or fnmatch.fnmatchcase(rel, "*.json")
        return matches and not fnmatch.fnmatchcase(rel, "1/*") and 10 <= size <= 5000

    objects = source["objects"]
    expected = {"out/" + k[4:]: o["Size"] for k, o in objects.items() if wanted(k[4:], o["Size"])}
    assert all_keys(sw_s3, dest) == expected
    assert summary["objects_listed"] == summary["objects_copied"] == len(expected)
    assert summary["objects_filtered"] == len(objects) - len(expected)
    assert 0 < len(expected) < len(objects)


def test_modified_window(
    source, sw_s3, sw_worker: Worker, redis_srv: RedisServer, seaweed: str
) -> None:
    dest = _new_dest(sw_s3)
    cutoff: datetime = source["cutoff"]
    common = ("--recursive", "--json")
    after = cli(
        "s3://sel-src/sel/",
        f"s3://{dest}/after/",
        *common,
        "--modified-after",
        cutoff.isoformat(),
        endpoint=seaweed,
        redis_url=redis_srv.url,
    )
    assert _summary(after)["objects_copied"] == len(source["new"])
    assert {"sel/" + k[len("after/") :] for k in all_keys(sw_s3, dest, "after/")} == source["new"]
    before = cli(
        "s3://sel-src/sel/",
        f"s3://{dest}/before/",
        *common,
        "--modified-before",
        cutoff.strftime("%Y-%m-%dT%H:%M:%S"),  # no zone: UTC
        endpoint=seaweed,
        redis_url=redis_srv.url,
    )
    summary = _summary(before)
    assert summary["objects_copied"] == len(source["objects"]) - len(source["new"])
    assert summary["objects_filtered"] == len(source["new"])


def test_a_dry_run_copies_nothing_and_counts_what_the_run_then_does(
    source, sw_s3, sw_worker: Worker, redis_srv: RedisServer, seaweed: str
) -> None:
    dest = _new_dest(sw_s3)
    keys = sorted(source["objects"])
    # The destination already holds a third of the keys as the tool copied them (skipped by
    # if-different), a few with other bytes of the same size (copied again) and a few of
    # another size (copied again).
    first = cli("s3://sel-src/sel/", f"s3://{dest}/", "--recursive", "--include", "0/*",
                "--json", endpoint=seaweed, redis_url=redis_srv.url)  # fmt: skip
    assert _summary(first)["objects_copied"] > 0
    for key in keys[:5]:
        sw_s3.put_object(Bucket=dest, Key=key[4:], Body=b"y" * len(body(key)))
    for key in keys[-5:]:
        sw_s3.put_object(Bucket=dest, Key=key[4:], Body=b"different size")
    before = all_keys(sw_s3, dest)
    queue = redis.Redis.from_url(redis_srv.url)
    queued, run_keys = queue.llen("s3copy"), len(queue.keys("s3fanout:*"))

    args = ("s3://sel-src/sel/", f"s3://{dest}/", "--recursive", "--overwrite", "if-different",
            "--exclude", "*.tmp", "--listing-concurrency", "1", "--chunk-size", "70",
            "--json")  # fmt: skip
    dry = _summary(cli(*args, "--dry-run", endpoint=seaweed, redis_url=redis_srv.url))
    assert all_keys(sw_s3, dest) == before, "a dry run writes nothing"
    assert (queue.llen("s3copy"), len(queue.keys("s3fanout:*"))) == (queued, run_keys)
    assert dry["dry_run"] is True and dry["objects_to_skip"] > 0 and dry["objects_to_copy"] > 0

    run_id = f"sel-real-{uuid.uuid4().hex[:6]}"
    real = _summary(cli(*args, "--run-id", run_id, endpoint=seaweed, redis_url=redis_srv.url))
    assert real["objects_listed"] == dry["objects_listed"]
    assert real["objects_filtered"] == dry["objects_filtered"]
    assert real["objects_copied"] == dry["objects_to_copy"]
    assert real["objects_skipped"] == dry["objects_to_skip"]
    assert real["bytes_copied"] == dry["bytes_to_copy"]
    assert real["objects_failed"] == dry["objects_missing"] == 0
    assert queue.scard(f"s3fanout:{{{run_id}}}:dispatched") == dry["chunks"]


def test_a_concurrent_dry_run_counts_the_same_objects(
    source, sw_s3, redis_srv: RedisServer, seaweed: str
) -> None:
    dest = _new_dest(sw_s3)
    args = ("s3://sel-src/sel/", f"s3://{dest}/", "--recursive", "--dry-run", "--json",
            "--include", "*.csv")  # fmt: skip
    one = _summary(cli(*args, "--listing-concurrency", "1", endpoint=seaweed,
                       redis_url=redis_srv.url))  # fmt: skip
    many = _summary(cli(*args, "--listing-concurrency", "8", endpoint=seaweed,
                        redis_url=redis_srv.url))  # fmt: skip
    names = ("objects_listed", "objects_filtered", "objects_to_copy", "bytes_to_copy")
    assert {n: one[n] for n in names} == {n: many[n] for n in names}


# --- listing at scale: partitions -----------------------------------------------------------
MANY = 3000


@pytest.fixture(scope="module")
def many(sw_s3) -> dict[str, int]:
    """3,000 keys: nested and flat, so that key ranges split at several depths."""
    keys = [f"m/{d:02d}/{i:04d}.bin" for d in range(20) for i in range(100)]
    keys += [f"m/{i * 7919 % 100003:05x}-flat" for i in range(MANY - len(keys))]
    seed(sw_s3, "sel-many", keys)
    return all_keys(sw_s3, "sel-many", "m/")


class Collect:
    def __init__(self) -> None:
        self.keys: list[str] = []

    def chunk(self, chunk: PlannedChunk) -> bool:
        self.keys += [item.source_key for item in chunk.items]
        return True

    def partition_end(self, end: PartitionEnd) -> None:
        pass


def test_concurrent_listing_yields_exactly_the_sequential_key_set(many, seaweed: str) -> None:
    client = boto3.client("s3", endpoint_url=seaweed, region_name="us-east-1")
    found = {}
    for concurrency in (1, 8):
        source = PrefixSource(client, "sel-many", "m/", page_size=50)
        sink = Collect()
        fanout = Fanout(source, Plan(lambda o: True, str, 40), sink, MemoryLog(), concurrency)
        fanout.run(source.initial())
        found[concurrency] = sink.keys
    assert found[1] == sorted(many)
    assert Counter(found[8]) == Counter(found[1])
    assert fanout.splits > 0


class DyingApp:
    """The real producer, until the dispatcher 'dies' after ``after`` chunks."""

    def __init__(self, url: str, after: int) -> None:
        self._app = producer_app(url)
        self._left = after

    def send_task(self, *args: Any, **kwargs: Any) -> Any:
        if self._left == 0:
            raise ConnectionError("the dispatcher died")
        self._left -= 1
        return self._app.send_task(*args, **kwargs)


def test_resume_after_a_dispatcher_crash_with_partitions(
    many, sw_s3, sw_worker: Worker, redis_srv: RedisServer, seaweed: str
) -> None:
    dest = _new_dest(sw_s3)
    client = boto3.client("s3", endpoint_url=seaweed, region_name="us-east-1")
    store = RunStore(connect(redis_srv.url))
    request = CopyRequest("sel-many", dest, source_prefix="m/", dest_prefix="c/", chunk_size=60)
    run_id = f"sel-resume-{uuid.uuid4().hex[:6]}"
    with pytest.raises(ConnectionError):
        start_run(request, run_id, client, store, cast(Any, DyingApp(redis_srv.url, 40)))
    parts = ListingLog(store, run_id).load()
    assert len(parts) > 1 and not all(part.done for part in parts)
    assert store.run_hash(run_id)["listing_done"] == "0"

    report = start_run(request, run_id, client, store, producer_app(redis_srv.url))
    assert report.resumed
    summary = wait_for_run(store, run_id, poll_s=0.2, timeout_s=240)
    assert summary.status == "succeeded"
    assert summary.objects_listed == summary.objects_copied == len(many)
    assert all_keys(sw_s3, dest, "c/") == {"c/" + k[2:]: size for k, size in many.items()}


def test_bad_input_fails_before_anything_is_written(
    source, sw_s3, redis_srv: RedisServer, seaweed: str
) -> None:
    client = redis.Redis.from_url(redis_srv.url, decode_responses=True)
    queued = client.llen("s3copy")
    for args, message in [
        (["--manifest", "s3://sel-src/no-such-manifest.csv"], "does not exist"),
        (["--modified-after", "last tuesday"], "not an ISO 8601"),
        (["--min-size", "2MiB", "--max-size", "1MiB"], "above max_size"),
    ]:
        run_id = f"sel-bad-{uuid.uuid4().hex[:6]}"
        done = cli("s3://sel-src/sel/", "s3://sel-src/x/", "--recursive", "--run-id", run_id,
                   *args, endpoint=seaweed, redis_url=redis_srv.url)  # fmt: skip
        assert done.returncode == 2, done.stderr
        assert message in done.stderr and "Traceback" not in done.stderr
        assert client.keys(f"*{run_id}*") == []
    assert client.llen("s3copy") == queued
