"""Worker metrics: what the observer counts, the chunk gauge, the scrape-time collectors.

The counting tests run in this process (prometheus_client in its ordinary, single-process
mode). The multiprocess tests run writer processes with ``PROMETHEUS_MULTIPROC_DIR`` set, as the
worker's pool children do, and read their files the way the worker's main process serves them.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
from prometheus_client import REGISTRY

from copy_core.contract import QUEUE, KeyOutcome, KeyStatus
from copy_workers import metrics
from devstack.servers import REPO, RedisServer, free_port, redis_server


def sample(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


def outcome(status: KeyStatus, **fields: object) -> KeyOutcome:
    return KeyOutcome(0, "k", status, **fields)  # type: ignore[arg-type]


# --- counting --------------------------------------------------------------------------------
def test_recorded_outcomes_are_counted_by_outcome_code_bytes_and_retries() -> None:
    names = {
        "copied": ("s3fanout_objects_total", {"outcome": "copied"}),
        "skipped": ("s3fanout_objects_total", {"outcome": "skipped"}),
        "failed": ("s3fanout_objects_total", {"outcome": "failed"}),
        "cancelled": ("s3fanout_objects_total", {"outcome": "cancelled"}),
        "bytes": ("s3fanout_bytes_copied_total", {}),
        "retries": ("s3fanout_retries_total", {}),
        "verified": ("s3fanout_objects_verified_total", {}),
        "streamed": ("s3fanout_objects_streamed_total", {}),
        "denied": ("s3fanout_failures_total", {"error_code": "AccessDenied"}),
        "unknown": ("s3fanout_failures_total", {"error_code": "Unknown"}),
    }
    before = {key: sample(name, **labels) for key, (name, labels) in names.items()}
    metrics.OBSERVER.recorded(
        [
            outcome(KeyStatus.COPIED, size=100, retries=2, verified=True),
            outcome(KeyStatus.COPIED, size=50, streamed=True),
            outcome(KeyStatus.SKIPPED, size=7, retries=1),
            outcome(KeyStatus.FAILED, size=9, retries=3, error_code="AccessDenied"),
            outcome(KeyStatus.FAILED, size=9, error_code=None),
            outcome(KeyStatus.CANCELLED, attempts=0),
        ]
    )
    after = {key: sample(name, **labels) for key, (name, labels) in names.items()}
    assert {key: after[key] - before[key] for key in names} == {
        "copied": 2,
        "skipped": 1,
        "failed": 2,
        "cancelled": 1,
        "bytes": 150,  # copied objects only, as in the run summary
        "retries": 6,
        "verified": 1,
        "streamed": 1,
        "denied": 1,
        "unknown": 1,  # what the run store counts a failure without a code as
    }


def test_nothing_recorded_counts_nothing() -> None:
    before = sample("s3fanout_retries_total")
    metrics.OBSERVER.recorded([])
    assert sample("s3fanout_retries_total") == before


def test_each_finished_key_is_timed_by_outcome() -> None:
    name = "s3fanout_copy_seconds_bucket"
    fast = sample(name, outcome="skipped", le="0.005")
    slow = sample(name, outcome="skipped", le="+Inf")
    metrics.OBSERVER.key_finished(outcome(KeyStatus.SKIPPED), 0.001)
    metrics.OBSERVER.key_finished(outcome(KeyStatus.SKIPPED), 1000.0)
    assert sample(name, outcome="skipped", le="0.005") == fast + 1
    assert sample(name, outcome="skipped", le="+Inf") == slow + 2


@pytest.mark.parametrize(
    ("code", "label"),
    [
        ("NoSuchKey", "NoSuchKey"),
        ("PreconditionFailed", "PreconditionFailed"),
        (None, "Unknown"),
        ("weird code\nwith spaces", "Other"),
        ("x" * 65, "Other"),
    ],
)
def test_error_labels_stay_few_and_printable(code: str | None, label: str) -> None:
    assert metrics.error_label(code) == label


def test_chunks_held_is_what_the_engine_says_it_holds() -> None:
    metrics.OBSERVER.chunks_held(3)
    assert sample("s3fanout_chunks_in_flight") == 3
    metrics.OBSERVER.chunks_held(0)
    assert sample("s3fanout_chunks_in_flight") == 0


def test_every_result_of_a_chunk_delivery_is_exported_from_the_start() -> None:
    # A result seen for the first time must not make a series appear: alerts use rates.
    for result in ("admitted", "duplicate", "ended", "rejected"):
        value = REGISTRY.get_sample_value("s3fanout_chunks_total", {"result": result})
        assert value is not None, result


# --- queue depth -----------------------------------------------------------------------------
@pytest.fixture(scope="module")
def private_redis(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    """A redis-server no worker consumes from: its queue holds what the test puts there."""
    with redis_server(tmp_path_factory.mktemp("redis-metrics")) as server:
        yield server


def test_queue_depth_is_the_length_of_the_queue_at_scrape_time(
    private_redis: RedisServer,
) -> None:
    client = redis.Redis.from_url(private_redis.url)
    client.delete(QUEUE)
    collector = metrics.QueueDepthCollector(private_redis.url)
    assert _depth(collector) == 0
    client.rpush(QUEUE, "a", "b", "c")
    assert _depth(collector) == 3


def test_queue_depth_is_absent_when_redis_is_away() -> None:
    collector = metrics.QueueDepthCollector(f"redis://127.0.0.1:{free_port()}/0", timeout_s=0.5)
    started = time.monotonic()
    assert list(collector.collect()) == []
    assert time.monotonic() - started < 5  # a scrape does not hang on Redis


def _depth(collector: metrics.QueueDepthCollector) -> float:
    (family,) = collector.collect()
    assert family.name == "s3fanout_queue_depth"
    (only,) = family.samples
    return only.value


# --- multiprocess: what the main process serves ----------------------------------------------
WRITER = textwrap.dedent(
    """
    import sys
    from copy_workers import metrics
    from copy_core.contract import KeyOutcome, KeyStatus
    metrics.OBSERVER.recorded([KeyOutcome(0, "k", KeyStatus.COPIED, size=10)] * 3)
    metrics.CHUNKS_IN_FLIGHT.inc()
    print("ready", flush=True)
    sys.stdin.read()  # until the test closes stdin, or kills the process
    """
)


def start_writer(directory: Path) -> subprocess.Popen[str]:
    """A process counting 3 copied keys and one chunk in flight, like a pool child."""
    env = {**os.environ, "PROMETHEUS_MULTIPROC_DIR": str(directory)}
    process = subprocess.Popen(
        [sys.executable, "-c", WRITER],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        env=env,
        cwd=REPO,
    )
    assert process.stdout is not None and process.stdout.readline() == "ready\n"
    return process


def served(directory: Path) -> dict[str, float]:
    values = {}
    for family in metrics.PoolCollector(directory).collect():
        for one in family.samples:
            if one.name in ("s3fanout_chunks_in_flight", "s3fanout_bytes_copied_total"):
                values[one.name] = one.value
            elif one.name == "s3fanout_objects_total" and one.labels["outcome"] == "copied":
                values["copied"] = one.value
    return values


def test_the_pool_sums_its_processes_and_forgets_the_gauges_of_killed_ones(
    tmp_path: Path,
) -> None:
    survivor, doomed = start_writer(tmp_path), start_writer(tmp_path)
    try:
        assert served(tmp_path) == {
            "copied": 6,
            "s3fanout_bytes_copied_total": 60,
            "s3fanout_chunks_in_flight": 2,
        }
        doomed.send_signal(signal.SIGKILL)  # as the OOM killer would: no clean-up in the child
        doomed.wait(10)
        assert metrics.dead_writers(tmp_path) == {doomed.pid}
        # Counters of the dead process stay in the sum; its in-flight chunk does not.
        assert served(tmp_path) == {
            "copied": 6,
            "s3fanout_bytes_copied_total": 60,
            "s3fanout_chunks_in_flight": 1,
        }
        assert metrics.dead_writers(tmp_path) == set()
    finally:
        for process in (survivor, doomed):
            process.kill()
            process.communicate()


# --- the pool's state ----------------------------------------------------------------------
def test_the_pool_state_is_read_at_scrape_time_with_one_series_per_active_run(
    private_redis: RedisServer,
) -> None:
    from copy_core.pool import PoolRegistry
    from copy_core.runs.store import RunStore, connect
    from copy_workers.pool_metrics import MAX_RUNS, PoolStateCollector

    store = RunStore(connect(private_redis.url), ttl_s=600)
    pool = PoolRegistry(store.client)
    pool.heartbeat("host:1:a", {"slots": 3})
    pool.heartbeat("host:2:b", {"slots": 3})
    runs = [f"pm-{i:03d}" for i in range(MAX_RUNS + 2)]
    for run_id in runs:
        store.create_run(run_id, {}, max_failures=None)
        store.register_chunk(run_id, "p0-0", 2, 20, items="[]")
        pool.add_run(run_id)
    families = {f.name: f for f in PoolStateCollector(private_redis.url).collect()}
    value = {name: [s.value for s in f.samples] for name, f in families.items()}
    assert value["s3fanout_pool_processes"] == [2]
    assert value["s3fanout_pool_capacity_chunks"] == [6]
    listed = families["s3fanout_run_objects_listed"].samples
    assert len(listed) == MAX_RUNS  # bounded, whatever the number of runs
    assert all(s.value == 2 for s in listed)
    assert value["s3fanout_runs_omitted"] == [value["s3fanout_runs_active"][0] - MAX_RUNS]
    assert families["s3fanout_run_chunks_queued"].samples[0].value == 1
    assert value["s3fanout_queue_oldest_seconds"][0] >= 0


def test_the_pool_state_is_absent_when_redis_is_away() -> None:
    from copy_workers.pool_metrics import PoolStateCollector

    collector = PoolStateCollector(f"redis://127.0.0.1:{free_port()}/0", timeout_s=0.5)
    assert list(collector.collect()) == []
