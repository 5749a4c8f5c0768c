"""The process engine with in-process moto for S3 and a real redis-server for the run store.

Chunks are admitted as the chunk task admits them; a test then waits for the engine to let go
of them (a generous deadline on a condition, never a measured time).
"""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import boto3
import pytest
from moto import mock_aws

from copy_core.aws.request_log import RequestLog
from copy_core.contract import ChunkMessage, CopyItem, CopyJob, KeyStatus
from copy_core.runs.leases import LeaseStore, chunk_member
from copy_core.runs.store import RunStore, connect
from copy_workers.engine import ChunkObserver, CopyPaths, ProcessEngine
from copy_workers.s3.clients import CopyClients
from copy_workers.s3.copier import CopyReport, ObjectCopier
from copy_workers.settings import WorkerSettings
from copy_workers.window import AdaptiveWindow
from devstack.servers import RedisServer
from tests.fakes import client_error

SETTINGS = WorkerSettings(
    keys_in_flight=4, window_initial=4, flush_every_keys=3, key_retry_base_s=0.001
)


@pytest.fixture
def s3() -> Iterator[object]:
    with mock_aws():
        client = boto3.client("s3", region_name="us-east-1")
        client.create_bucket(Bucket="src-bucket")
        client.create_bucket(Bucket="dst-bucket")
        yield client


@pytest.fixture
def store(redis_srv: RedisServer) -> RunStore:
    return RunStore(connect(redis_srv.url), ttl_s=600)


def engine(store: RunStore, settings: WorkerSettings = SETTINGS) -> ProcessEngine:
    window = AdaptiveWindow(settings.keys_in_flight, settings.window_initial)
    leases = LeaseStore(store.client, 600)
    return ProcessEngine(store, leases, settings, ChunkObserver(), window, "test-worker")


def _chunk(
    s3,
    store: RunStore,
    n: int,
    missing: int | None = None,
    chunk_id: str = "0",
    run_id: str | None = None,
) -> ChunkMessage:
    run_id = run_id or f"e-{uuid.uuid4().hex[:10]}"
    items = []
    for i in range(n):
        key = f"src/{chunk_id}/{i}/ключ {i}+%.txt"
        if i != missing:
            put = s3.put_object(Bucket="src-bucket", Key=key, Body=f"body {i}".encode())
            etag = put["ETag"]
        else:
            etag = None
        items.append(CopyItem(key, f"dst/{chunk_id}/{i}", len(f"body {i}"), etag))
    store.create_run(run_id, {}, max_failures=None)
    store.register_chunk(run_id, chunk_id, n, sum(i.size for i in items))
    store.take_chunk(run_id, chunk_id, "test-worker", 30)
    return ChunkMessage(run_id, chunk_id, CopyJob("src-bucket", "dst-bucket"), tuple(items))


def _copier(s3, message: ChunkMessage) -> CopyPaths:
    copier = ObjectCopier(CopyClients.single(s3), message.job, ThreadPoolExecutor(4))
    return CopyPaths(copy=copier.copy)


def admit(eng: ProcessEngine, store: RunStore, message: ChunkMessage, paths: CopyPaths) -> None:
    state = store.chunk_state(message.run_id, message.chunk_id)
    eng.admit(message, state.recorded, state.accepts_work, paths)


def settle(eng: ProcessEngine, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while eng.chunks_held:
        assert time.monotonic() < deadline, "the engine still holds chunks"
        time.sleep(0.01)


def test_copies_every_key_and_records_each_once(s3, store: RunStore) -> None:
    message = _chunk(s3, store, 10)
    eng = engine(store)
    admit(eng, store, message, _copier(s3, message))
    settle(eng)
    for i in range(10):
        body = s3.get_object(Bucket="dst-bucket", Key=f"dst/0/{i}")["Body"].read()
        assert body == f"body {i}".encode()
    store.finish_listing(message.run_id)
    summary = store.summary(message.run_id)
    assert summary is not None
    assert (summary.status, summary.objects_copied, summary.bytes_copied) == (
        "succeeded",
        10,
        sum(len(f"body {i}") for i in range(10)),
    )


def test_a_redelivered_chunk_copies_and_counts_nothing_again(s3, store: RunStore) -> None:
    message = _chunk(s3, store, 6, chunk_id="0")
    store.register_chunk(message.run_id, "1", 1, 1)  # keeps the run open after chunk 0
    eng = engine(store)
    admit(eng, store, message, _copier(s3, message))
    settle(eng)
    calls = []

    def counting(item: CopyItem, requests: RequestLog) -> CopyReport:
        calls.append(item)
        return CopyReport(KeyStatus.COPIED)

    admit(eng, store, message, CopyPaths(copy=counting))
    settle(eng)
    assert calls == []
    summary = store.summary(message.run_id)
    assert summary is not None and summary.objects_copied == 6


def test_a_missing_source_is_one_failed_key_with_its_reason(s3, store: RunStore) -> None:
    message = _chunk(s3, store, 5, missing=2)
    eng = engine(store)
    admit(eng, store, message, _copier(s3, message))
    settle(eng)
    [failure] = store.iter_failures(message.run_id)
    assert failure["key"] == message.items[2].source_key
    assert failure["error_code"] == "NoSuchKey"


def _flaky(fail_keys: set[str], calls: list[str] | None = None):
    def copy(item: CopyItem, requests: RequestLog) -> CopyReport:
        if calls is not None:
            calls.append(item.source_key)
        if item.source_key in fail_keys:
            raise client_error("InternalError", 500, message="try again")
        return CopyReport(KeyStatus.COPIED)

    return copy


def test_a_key_failing_transiently_is_retried_then_fails_with_its_last_error(
    s3, store: RunStore
) -> None:
    message = _chunk(s3, store, 4)
    flaky, calls = {message.items[1].source_key}, list[str]()
    settings = WorkerSettings(
        keys_in_flight=4, window_initial=4, key_attempts=3, key_retry_base_s=0.001
    )
    eng = engine(store, settings)
    admit(eng, store, message, CopyPaths(copy=_flaky(flaky, calls)))
    settle(eng)
    assert calls.count(message.items[1].source_key) == 3
    summary = store.summary(message.run_id)
    assert summary is not None and (summary.objects_copied, summary.objects_failed) == (3, 1)
    assert summary.failures[0]["error_code"] == "InternalError"


def test_copies_between_buckets_that_only_fail_are_given_up(s3, store: RunStore) -> None:
    # A destination bucket deleted mid-run answers 500 for ever: once every copy between the
    # two buckets has failed for a key deadline, the rest fail at once with the last error.
    # The deadline is a nanosecond, so it has passed by the first failure on any machine
    # (test_retry checks the breaker's timing with a clock of its own).
    message = _chunk(s3, store, 30)
    calls: list[str] = []
    settings = WorkerSettings(
        keys_in_flight=2,
        window_initial=2,
        key_attempts=1000,
        key_retry_base_s=0.001,
        key_retry_deadline_s=1e-9,
    )
    eng = engine(store, settings)
    everything = {item.source_key for item in message.items}
    admit(eng, store, message, CopyPaths(copy=_flaky(everything, calls)))
    settle(eng)
    summary = store.summary(message.run_id)
    assert summary is not None and summary.objects_failed == 30
    assert summary.failures
    for failure in summary.failures:
        assert failure["message"].startswith("try again"), failure
        assert "no more retries" in failure["message"], failure
    assert len(calls) < 2 * len(everything)  # not retried once given up


def test_a_cancelled_run_drops_its_queued_chunks(s3, store: RunStore) -> None:
    message = _chunk(s3, store, 5)
    store.request_cancel(message.run_id)
    eng = engine(store)
    admit(eng, store, message, CopyPaths(copy=_flaky(set())))
    settle(eng)
    summary = store.summary(message.run_id)
    assert summary is not None and summary.status == "cancelled"
    assert (summary.objects_copied, summary.objects_cancelled) == (0, 5)


def test_cancel_mid_chunk_stops_after_the_keys_in_flight(s3, store: RunStore) -> None:
    message = _chunk(s3, store, 40)
    copied: list[str] = []
    lock = threading.Lock()

    def copy(item: CopyItem, requests: RequestLog) -> CopyReport:
        with lock:
            copied.append(item.source_key)
            if len(copied) == 5:
                store.request_cancel(message.run_id)
        time.sleep(0.01)
        return CopyReport(KeyStatus.COPIED)

    settings = WorkerSettings(
        keys_in_flight=2, window_initial=2, copy_threads=2, flush_every_keys=1
    )
    eng = engine(store, settings)
    admit(eng, store, message, CopyPaths(copy=copy))
    settle(eng)
    summary = store.summary(message.run_id)
    assert summary is not None and summary.status == "cancelled"
    assert summary.objects_copied == len(copied)
    assert summary.objects_copied + summary.objects_cancelled == 40
    assert summary.objects_copied < 10


def test_the_window_spans_chunks(s3, store: RunStore) -> None:
    # The first chunk's last key blocks; the second chunk's keys start meanwhile, in the same
    # window: the process took the next chunk before the first had drained. (The second's
    # last key blocks too, so that neither chunk can have ended when they are counted.)
    first = _chunk(s3, store, 3, chunk_id="a")
    second = _chunk(s3, store, 3, chunk_id="b", run_id=first.run_id)
    release, started = threading.Event(), []

    def copy(item: CopyItem, requests: RequestLog) -> CopyReport:
        started.append(item.source_key)
        if item is first.items[-1] or item is second.items[-1]:
            release.wait(30)
        return CopyReport(KeyStatus.COPIED)

    eng = engine(store)
    admit(eng, store, first, CopyPaths(copy=copy))
    assert eng.wait_for_room(timeout_s=30), "no room while the first chunk drains"
    admit(eng, store, second, CopyPaths(copy=copy))
    deadline = time.monotonic() + 30
    while len(started) < 6:
        assert time.monotonic() < deadline, started
        time.sleep(0.01)
    assert eng.chunks_held == 2  # the first is still in flight while the second copies
    release.set()
    settle(eng)
    assert store.chunk_state(first.run_id, "a").recorded == frozenset({0, 1, 2})
    assert store.chunk_state(first.run_id, "b").recorded == frozenset({0, 1, 2})


def test_a_stopping_process_gives_back_what_it_did_not_finish(s3, store: RunStore) -> None:
    message = _chunk(s3, store, 6)
    release = threading.Event()

    def copy(item: CopyItem, requests: RequestLog) -> CopyReport:
        if item is not message.items[0]:
            release.wait(30)
        return CopyReport(KeyStatus.COPIED)

    settings = WorkerSettings(keys_in_flight=1, window_initial=1, copy_threads=2)
    eng = engine(store, settings)
    admit(eng, store, message, CopyPaths(copy=copy))
    threading.Timer(0.5, release.set).start()  # the key in flight finishes after the stop
    assert not eng.drain(timeout_s=0.1)  # not drained: keys were left
    settle(eng)
    leases = LeaseStore(store.client, 600)
    assert leases.holder(message.run_id, chunk_member("0")) == "queued"  # back in the queue
    recorded = store.chunk_state(message.run_id, "0").recorded
    assert 0 in recorded and len(recorded) < 6
