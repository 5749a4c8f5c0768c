"""Runs sharing one pool: fair shares, priorities, rate caps, and the list of runs.

Real processes: a redis-server of this module's own, one worker of 2 pool processes, the CLI,
SeaweedFS behind the fault proxy (every copy delayed, as S3 answers in tens of milliseconds,
and every request seen, for the rate caps). What is checked is behaviour, in the runs' own
progress: how far a large run got while a small one ran, which of two runs finished first,
how many requests a capped run sent in any second, as the proxy saw them.
"""

from __future__ import annotations

import json
import subprocess
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from copy_core.runs.store import RunStore, connect
from devstack.faultproxy import Fault, FaultProxy, FaultRule, Request, fault_proxy, is_copy_object
from devstack.servers import REPO, Worker, redis_server, worker_process
from tests.e2e.conftest import s3fanout, seed, start_cli, wait_for

BIG, SMALL = 3000, 20
DELAY = FaultRule(Fault.DELAY, delay_s=0.02, match=is_copy_object)


@pytest.fixture(scope="module")
def redis_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with redis_server(tmp_path_factory.mktemp("redis-pool")) as server:
        yield server.url


@pytest.fixture(scope="module")
def proxy(seaweed: str) -> Iterator[FaultProxy]:
    with fault_proxy(seaweed, seed=5) as running:
        yield running


@pytest.fixture(scope="module")
def worker(
    redis_url: str, proxy: FaultProxy, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Worker]:
    # A small window, so that the large run's backlog is long next to what it keeps in flight.
    env = {"S3FANOUT_KEYS_IN_FLIGHT": "8", "S3FANOUT_WINDOW_INITIAL": "8"}
    with worker_process(
        redis_url, proxy.url, tmp_path_factory.mktemp("pool-worker"), concurrency=2, extra_env=env
    ) as running:
        yield running


@pytest.fixture(scope="module")
def source(sw_s3: Any) -> str:
    bucket = f"pool-src-{uuid.uuid4().hex[:6]}"
    keys = [f"big/{i:05d}" for i in range(BIG)] + [f"small/{i:03d}" for i in range(SMALL)]
    seed(sw_s3, bucket, keys)
    return bucket


@pytest.fixture
def dest(sw_s3: Any) -> str:
    bucket = f"pool-dst-{uuid.uuid4().hex[:6]}"
    sw_s3.create_bucket(Bucket=bucket)
    return bucket


def copy(
    redis_url: str, proxy: FaultProxy, source: str, dest: str, prefix: str, *args: str
) -> subprocess.Popen[str]:
    return start_cli(
        "copy",
        f"s3://{source}/{prefix}/",
        f"s3://{dest}/{prefix}/",
        "--recursive",
        "--redis-url",
        redis_url,
        "--json",
        *args,
        endpoint=proxy.url,
    )


def done(redis_url: str, run_id: str) -> int:
    summary = RunStore(connect(redis_url)).summary(run_id)
    if summary is None:
        return 0
    return summary.objects_copied + summary.objects_failed + summary.objects_skipped


def finish(process: subprocess.Popen[str]) -> dict[str, Any]:
    out, err = process.communicate(timeout=600)
    assert process.returncode == 0, err[-3000:]
    return dict(json.loads(out))


def test_a_small_run_beside_a_large_one_is_not_queued_behind_it(
    worker: Worker, redis_url: str, proxy: FaultProxy, source: str, dest: str
) -> None:
    proxy.set_rules([DELAY])
    big_id, small_id = f"big-{uuid.uuid4().hex[:6]}", f"small-{uuid.uuid4().hex[:6]}"
    big = copy(redis_url, proxy, source, dest, "big", "--run-id", big_id, "--chunk-size", "50")
    wait_for(lambda: done(redis_url, big_id) >= 200, "the large run to be under way")
    small = copy(redis_url, proxy, source, dest, "small", "--run-id", small_id)
    store = RunStore(connect(redis_url))
    wait_for(lambda: store.outstanding(small_id) > 0, "the small run's chunk to be queued")
    at_start = done(redis_url, big_id)
    small_summary = finish(small)
    at_end = done(redis_url, big_id)
    big_summary = finish(big)
    assert small_summary["objects_copied"] == SMALL
    assert big_summary["objects_copied"] == BIG
    # First in, first out, the small run would wait for the large one's whole backlog; its
    # share of the pool, it waits for no more than the chunks the large run keeps in it
    # (its window: 7 chunks of 50 keys here).
    assert at_end - at_start < BIG // 5, (at_start, at_end)


def test_a_high_priority_run_overtakes_a_low_priority_one(
    worker: Worker, redis_url: str, proxy: FaultProxy, source: str, dest: str
) -> None:
    proxy.set_rules([DELAY])
    low_id, high_id = f"low-{uuid.uuid4().hex[:6]}", f"high-{uuid.uuid4().hex[:6]}"
    common = ("--chunk-size", "50")
    low = copy(
        redis_url, proxy, source, dest, "big", "--run-id", low_id, "--priority", "low", *common
    )
    wait_for(lambda: done(redis_url, low_id) >= 100, "the low-priority run to be under way")
    high = copy(
        redis_url,
        proxy,
        source,
        dest + "",
        "big",
        "--run-id",
        high_id,
        "--priority",
        "high",
        "--overwrite",
        "always",
        *common,
    )
    high_summary = finish(high)
    low_done_when_high_ended = done(redis_url, low_id)
    low_summary = finish(low)
    assert high_summary["objects_copied"] == low_summary["objects_copied"] == BIG
    assert low_done_when_high_ended < BIG, "the high-priority run finished first"
    assert low_done_when_high_ended > 100, "the low-priority run still moved meanwhile"


def test_a_capped_run_never_exceeds_its_cap_in_any_second(
    worker: Worker, redis_url: str, proxy: FaultProxy, source: str, dest: str, tmp_path: Path
) -> None:
    seen: list[float] = []
    lock = threading.Lock()

    def record(request: Request) -> bool:
        if request.target.startswith(f"/{dest}/"):
            with lock:
                seen.append(time.monotonic())
        return False

    proxy.set_rules([FaultRule(Fault.DELAY, delay_s=1e-6, match=record)])
    run_id = f"capped-{uuid.uuid4().hex[:6]}"
    capped = copy(
        redis_url,
        proxy,
        source,
        dest,
        "big",
        "--run-id",
        run_id,
        "--max-requests-per-second",
        "100",
        "--chunk-size",
        "100",
    )
    wait_for(lambda: len(seen) >= 400, "the capped run to be under way")
    raised = subprocess.run(
        s3fanout("limit", run_id, "--redis-url", redis_url, "--max-requests-per-second", "400"),
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=60,
        check=False,
    )
    assert raised.returncode == 0, raised.stderr
    raised_at = time.monotonic()
    summary = finish(capped)
    assert summary["objects_copied"] == BIG
    assert summary["rate_limited_s"] > 0
    before = [t for t in seen if t < raised_at]
    assert max_in_any_second(before) <= 100
    assert max_in_any_second(seen) <= 400
    after = [t for t in seen if t > raised_at + 2]
    assert max_in_any_second(after) > 100, "the raised cap took effect while the run went on"


def max_in_any_second(times: list[float]) -> int:
    """The most requests in any window of one second (sliding, from each request on)."""
    times = sorted(times)
    most, start = 0, 0
    for end, t in enumerate(times):
        while t - times[start] >= 1.0:
            start += 1
        most = max(most, end - start + 1)
    return most


def test_runs_lists_the_runs_of_the_pool_active_first(
    worker: Worker, redis_url: str, proxy: FaultProxy, source: str, dest: str
) -> None:
    proxy.set_rules([DELAY])
    run_id = f"listed-{uuid.uuid4().hex[:6]}"
    running = copy(redis_url, proxy, source, dest, "big", "--run-id", run_id, "--priority", "8")
    wait_for(lambda: done(redis_url, run_id) > 0, "the run to be under way")
    shown = subprocess.run(
        s3fanout("runs", "--redis-url", redis_url, "--json"),
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=60,
        check=False,
    )
    assert shown.returncode == 0, shown.stderr
    views = [json.loads(line) for line in shown.stdout.splitlines()]
    assert views[0]["run_id"] == run_id and views[0]["status"] in ("dispatching", "running")
    assert views[0]["weight"] == 8 and views[0]["owner"].startswith("cli:")
    assert all(v["status"] in ("succeeded", "failed", "cancelled") for v in views[1:])
    table = subprocess.run(
        s3fanout("runs", "--redis-url", redis_url),
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=60,
        check=False,
    )
    assert table.stdout.splitlines()[0].split()[:3] == ["RUN", "STATUS", "OWNER"]
    assert run_id in table.stdout.splitlines()[1]
    finish(running)
