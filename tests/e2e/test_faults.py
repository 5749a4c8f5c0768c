"""The fault matrix: every scenario ends with nothing lost and nothing counted twice.

Real processes throughout: redis-server, worker processes, the CLI, SeaweedFS's S3 gateway over
HTTP behind the fault-injection proxy. After each scenario every source object is at the
destination with the same size and ETag (or is reported failed with its reason), and the
summary's counts equal what is in the destination.
"""

from __future__ import annotations

import json
import signal
import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis

from copy_control.dispatch.listing_log import ListingLog
from copy_core.runs.keys import RunKeys
from copy_core.runs.store import RunStore, connect
from devstack.faultproxy import Fault, FaultProxy, FaultRule, Request, fault_proxy, is_copy_object
from devstack.servers import REPO, RedisServer, redis_server, worker_process
from tests.e2e.conftest import s3fanout, seed, start_cli, wait_for

N = 2000
FAST_RETRIES = {"S3FANOUT_KEY_RETRY_BASE_S": "0.05"}


def objects(s3: Any, bucket: str, prefix: str = "") -> dict[str, tuple[int, str]]:
    """key -> (size, ETag) of every object under ``prefix``."""
    found = {}
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
        for obj in page.get("Contents", []):
            found[obj["Key"][len(prefix) :]] = (obj["Size"], obj["ETag"])
    return found


@pytest.fixture(scope="module")
def source(sw_s3: Any) -> tuple[str, dict[str, tuple[int, str]]]:
    bucket = f"faults-src-{uuid.uuid4().hex[:6]}"
    keys = [f"data/{i % 10}/{i % 7}/object-{i:05d}.bin" for i in range(N)]
    seed(sw_s3, bucket, keys, body=lambda k: k.encode() * (1 + int(k[-9:-4]) % 17))
    return bucket, objects(sw_s3, bucket, "data/")


@pytest.fixture
def dest(sw_s3: Any) -> str:
    bucket = f"faults-dst-{uuid.uuid4().hex[:6]}"
    sw_s3.create_bucket(Bucket=bucket)
    return bucket


_db = iter(range(4, 16))


@pytest.fixture
def redis_url(redis_srv: RedisServer) -> str:
    """A Redis database of this test's own: its own queue and run state."""
    return redis_srv.url.rsplit("/", 1)[0] + f"/{next(_db)}"


@pytest.fixture
def proxy(seaweed: str) -> Iterator[FaultProxy]:
    with fault_proxy(seaweed, seed=7) as running:
        yield running


def start(
    redis_url: str, endpoint: str, bucket: str, dest: str, *args: str
) -> subprocess.Popen[str]:
    """``s3fanout copy`` of ``{bucket}/data/`` to ``{dest}/copy/``, in the background."""
    return start_cli(
        "copy",
        f"s3://{bucket}/data/",
        f"s3://{dest}/copy/",
        "--recursive",
        *args,
        "--redis-url",
        redis_url,
        "--json",
        endpoint=endpoint,
    )


def finish(process: subprocess.Popen[str], timeout: float = 300) -> tuple[int, dict[str, Any]]:
    out, err = process.communicate(timeout=timeout)
    assert out.strip(), f"no summary printed:\n{err[-3000:]}"
    return process.returncode, json.loads(out)


def run_hash(redis_url: str, run_id: str) -> dict[str, str]:
    client = redis.Redis.from_url(redis_url, decode_responses=True)
    found: dict[str, str] = client.hgetall(RunKeys(run_id).run)  # type: ignore[assignment]
    return found


def copied_so_far(redis_url: str, run_id: str) -> int:
    return int(run_hash(redis_url, run_id).get("objects_copied", 0))


def assert_nothing_lost(
    s3: Any,
    dest: str,
    expected: dict[str, tuple[int, str]],
    summary: dict[str, Any],
    missing: frozenset[str] = frozenset(),
) -> None:
    copied = objects(s3, dest, "copy/")
    want = {k: v for k, v in expected.items() if k not in missing}
    assert copied == want, f"{len(set(want) ^ set(copied))} keys differ"
    assert summary["objects_listed"] == len(expected)
    assert summary["objects_copied"] == len(copied)
    assert summary["objects_failed"] == len(missing)
    assert summary["objects_verified"] == len(copied)


def test_throttling_5xx_and_resets_lose_nothing(
    source, dest: str, sw_s3: Any, proxy: FaultProxy, redis_url: str, tmp_path: Path
) -> None:
    bucket, expected = source
    proxy.set_rules(
        [
            FaultRule(Fault.SLOW_DOWN, probability=0.20),
            FaultRule(Fault.INTERNAL_ERROR, probability=0.05),
            FaultRule(Fault.RESET, probability=0.01),
            FaultRule(Fault.RESET, probability=0.01, after_upstream=True),
        ]
    )
    with worker_process(redis_url, proxy.url, tmp_path, extra_env=FAST_RETRIES):
        code, summary = finish(start(redis_url, proxy.url, bucket, dest, "--chunk-size", "100"))
    stats = proxy.stats
    assert code == 0, summary
    assert stats.slow_down > 100 and stats.internal_error > 20 and stats.reset > 10
    assert summary["retries"] >= stats.slow_down // 2  # most faults were retried per key
    assert_nothing_lost(sw_s3, dest, expected, summary)


def test_a_worker_killed_mid_chunk_is_taken_over(
    source, dest: str, sw_s3: Any, proxy: FaultProxy, redis_url: str, tmp_path: Path
) -> None:
    bucket, expected = source
    proxy.set_rules([FaultRule(Fault.DELAY, delay_s=0.02, match=is_copy_object)])
    env = {**FAST_RETRIES, "S3FANOUT_VISIBILITY_TIMEOUT_S": "8", "S3FANOUT_KEYS_IN_FLIGHT": "4"}
    run_id = f"kill-{uuid.uuid4().hex[:6]}"
    with (
        worker_process(
            redis_url, proxy.url, tmp_path / "a", concurrency=1, extra_env=env, name="doomed"
        ) as doomed,
        worker_process(
            redis_url, proxy.url, tmp_path / "b", concurrency=1, extra_env=env, name="survivor"
        ) as survivor,
    ):
        process = start(
            redis_url, proxy.url, bucket, dest, "--chunk-size", "200", "--run-id", run_id
        )
        wait_for(
            lambda: (
                copied_so_far(redis_url, run_id) > 300 and '"chunk finished"' in doomed.log_text()
            ),
            "the doomed worker to work",
        )
        time.sleep(0.7)  # into its next chunk, past the first batch of recorded outcomes
        doomed.kill_all()
        code, summary = finish(process)
        takeover = [
            json.loads(line)
            for line in survivor.log_text().splitlines()
            if '"chunk finished"' in line
        ]
    assert code == 0, summary
    assert_nothing_lost(sw_s3, dest, expected, summary)
    assert any(event["already_recorded"] > 0 for event in takeover), (
        "the survivor took over a chunk the killed worker had started"
    )


def test_redis_restart_mid_run_loses_nothing(
    source, dest: str, sw_s3: Any, proxy: FaultProxy, tmp_path: Path
) -> None:
    bucket, expected = source
    proxy.set_rules([FaultRule(Fault.DELAY, delay_s=0.01, match=is_copy_object)])
    run_id = f"restart-{uuid.uuid4().hex[:6]}"
    # The persistence the README recommends: append-only file, fsync every second.
    with redis_server(
        tmp_path / "redis", "--appendonly", "yes", "--appendfsync", "everysec"
    ) as server:
        env = {**FAST_RETRIES, "S3FANOUT_VISIBILITY_TIMEOUT_S": "20"}
        with worker_process(server.url, proxy.url, tmp_path / "w", extra_env=env):
            process = start(
                server.url, proxy.url, bucket, dest, "--chunk-size", "100", "--run-id", run_id
            )
            wait_for(
                lambda: (
                    run_hash(server.url, run_id).get("listing_done") == "1"
                    and copied_so_far(server.url, run_id) > 400
                ),
                "the run to be under way",
            )
            server.restart()
            code, summary = finish(process)
    assert code == 0, summary
    assert_nothing_lost(sw_s3, dest, expected, summary)


def _cursors_saved(redis_url: str, run_id: str, chunks: int) -> bool:
    """Whether ``chunks`` chunks are registered and the listing's cursors are past them all."""
    store = RunStore(connect(redis_url))
    registered = int(store.client.scard(RunKeys(run_id).dispatched))
    saved = sum(part.cursor.next_chunk for part in ListingLog(store, run_id).load())
    return registered >= chunks and saved >= registered


def _is_later_listing_page(request: Request) -> bool:
    return (
        request.method == "GET"
        and "list-type" in request.query
        and ("start-after" in request.query or "continuation-token" in request.query)
    )


def test_a_killed_dispatcher_resumes_without_copying_anything_twice(
    source, dest: str, sw_s3: Any, proxy: FaultProxy, redis_url: str, tmp_path: Path
) -> None:
    bucket, expected = source
    # A rule that never fires records every CopyObject; the second listing page hangs long
    # enough for the dispatcher (what an Airflow task runs) to be killed after the first page
    # was dispatched.
    copies: list[str] = []

    def record_copy(request: Request) -> bool:
        if is_copy_object(request):
            copies.append(request.target)
        return False

    count_copies = FaultRule(Fault.DELAY, delay_s=1e-6, match=record_copy)
    proxy.set_rules(
        [count_copies, FaultRule(Fault.DELAY, delay_s=30, match=_is_later_listing_page)]
    )
    run_id = f"resume-{uuid.uuid4().hex[:6]}"
    args = (redis_url, proxy.url, bucket, dest, "--chunk-size", "100", "--run-id", run_id)
    with worker_process(redis_url, proxy.url, tmp_path, extra_env=FAST_RETRIES):
        first = start(*args)
        # Killed once the first page's chunks are registered *and* their cursors saved: a
        # dispatcher killed between the two sends the last chunk again on resume (by design,
        # counted once), and a copy of it still in flight would then be copied twice.
        wait_for(lambda: _cursors_saved(redis_url, run_id, 10), "the first page to be dispatched")
        first.send_signal(signal.SIGKILL)
        first.wait(10)
        assert run_hash(redis_url, run_id).get("listing_done") == "0"
        proxy.set_rules([count_copies])
        code, summary = finish(start(*args))
    assert code == 0, summary
    assert_nothing_lost(sw_s3, dest, expected, summary)
    # Every CopyObject the proxy saw is one key's copy, or a retry the summary counted.
    assert len(copies) == len(expected) + summary["retries"], "nothing was copied twice"


def test_a_source_deleted_after_listing_is_one_failed_key(
    sw_s3: Any, dest: str, seaweed: str, redis_url: str, tmp_path: Path
) -> None:
    bucket = f"faults-del-{uuid.uuid4().hex[:6]}"
    seed(sw_s3, bucket, [f"data/k{i:04d}" for i in range(300)])
    expected = objects(sw_s3, bucket, "data/")
    run_id = f"deleted-{uuid.uuid4().hex[:6]}"
    process = start(redis_url, seaweed, bucket, dest, "--chunk-size", "50", "--run-id", run_id)
    # No worker yet: the whole listing is dispatched, then the object goes, then work starts.
    wait_for(lambda: run_hash(redis_url, run_id).get("listing_done") == "1", "the dispatch")
    sw_s3.delete_object(Bucket=bucket, Key="data/k0123")
    with worker_process(redis_url, seaweed, tmp_path):
        code, summary = finish(process)
    assert code == 1, summary  # one failure, --max-failures 0
    assert [(f["key"], f["error_code"]) for f in summary["failures"]] == [
        ("data/k0123", "NoSuchKey")
    ]
    assert summary["status"] == "failed"
    assert_nothing_lost(sw_s3, dest, expected, summary, missing=frozenset({"k0123"}))


def test_cancel_mid_run_stops_with_exact_counts(
    source, dest: str, sw_s3: Any, proxy: FaultProxy, redis_url: str, tmp_path: Path
) -> None:
    bucket, expected = source
    proxy.set_rules([FaultRule(Fault.DELAY, delay_s=0.03, match=is_copy_object)])
    run_id = f"cancel-{uuid.uuid4().hex[:6]}"
    with worker_process(redis_url, proxy.url, tmp_path, extra_env=FAST_RETRIES):
        process = start(
            redis_url, proxy.url, bucket, dest, "--chunk-size", "100", "--run-id", run_id
        )
        wait_for(lambda: copied_so_far(redis_url, run_id) > 200, "copies to start")
        cancel = subprocess.run(
            s3fanout("cancel", run_id, "--redis-url", redis_url, "--json", "--wait", "120"),
            capture_output=True,
            text=True,
            cwd=REPO,
            timeout=180,
            check=False,
        )
        assert cancel.returncode == 0, cancel.stderr
        code, summary = finish(process)
        at_stop = objects(sw_s3, dest, "copy/")
        time.sleep(2)  # a worker that kept copying after the stop would show up here
        later = objects(sw_s3, dest, "copy/")
    assert code == 1 and summary["status"] == "cancelled"
    assert json.loads(cancel.stdout)["status"] == "cancelled"
    assert 200 < summary["objects_copied"] < len(expected)
    assert summary["objects_copied"] + summary["objects_cancelled"] == summary["objects_listed"]
    assert len(at_stop) == len(later) == summary["objects_copied"]
    assert all(expected[key] == value for key, value in later.items())
