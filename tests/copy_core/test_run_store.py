"""The run store against a real redis-server."""

from __future__ import annotations

import asyncio
import threading
import time
import uuid

import pytest
import redis
import redis.asyncio

from copy_core.contract import KeyOutcome, KeyStatus, RunSummary
from copy_core.runs.async_reading import read_summary_async
from copy_core.runs.keys import RunKeys
from copy_core.runs.store import RunStore, connect
from devstack.servers import RedisServer


@pytest.fixture
def store(redis_srv: RedisServer) -> RunStore:
    return RunStore(connect(redis_srv.url), ttl_s=600)


@pytest.fixture
def run_id() -> str:
    return f"t-{uuid.uuid4().hex[:12]}"


def _copied(index: int, size: int = 10, retries: int = 0) -> KeyOutcome:
    return KeyOutcome(index, f"k{index}", KeyStatus.COPIED, size=size, retries=retries)


def _failed(index: int, code: str = "NoSuchKey") -> KeyOutcome:
    return KeyOutcome(
        index, f"k{index}", KeyStatus.FAILED, size=5, error_code=code, message="gone", attempts=1
    )


def test_create_run_is_idempotent(store: RunStore, run_id: str) -> None:
    assert store.create_run(run_id, {"a": 1}, max_failures=0) == "created"
    store.register_chunk(run_id, "0", 3, 30)
    assert store.create_run(run_id, {"a": 1}, max_failures=0) == "dispatching"
    assert store.run_hash(run_id)["objects_listed"] == "3"


def test_a_chunk_registered_twice_is_counted_once(store: RunStore, run_id: str) -> None:
    store.create_run(run_id, {}, max_failures=0)
    assert store.register_chunk(run_id, "0", 5, 50) == 1
    assert store.register_chunk(run_id, "0", 5, 50) == 0
    assert store.run_hash(run_id)["objects_listed"] == "5"


def test_outcomes_recorded_twice_are_counted_once(store: RunStore, run_id: str) -> None:
    store.create_run(run_id, {}, max_failures=0)
    store.register_chunk(run_id, "0", 3, 30)
    first = store.record(run_id, "0", 3, [_copied(0, retries=2), _failed(1)])
    again = store.record(run_id, "0", 3, [_copied(0, retries=2), _failed(1), _copied(2)])
    assert len(first.added) == 2
    assert [o.index for o in again.added] == [2]
    summary = store.summary(run_id)
    assert summary is not None
    assert (summary.objects_copied, summary.objects_failed, summary.bytes_copied) == (2, 1, 20)
    assert summary.retries == 2
    assert list(store.iter_failures(run_id)) == [
        {"key": "k1", "size": 5, "error_code": "NoSuchKey", "message": "gone", "attempts": 1}
    ]
    assert summary.errors == {"NoSuchKey": 1}
    assert store.chunk_state(run_id, "0").recorded == frozenset({0, 1, 2})


def test_run_succeeds_when_listing_is_done_and_every_chunk_is_done(
    store: RunStore, run_id: str, redis_srv: RedisServer
) -> None:
    store.create_run(run_id, {}, max_failures=None)
    store.register_chunk(run_id, "0", 2, 20)
    store.register_chunk(run_id, "1", 1, 10)
    store.record(run_id, "0", 2, [_copied(0), _copied(1)])
    assert store.finish_listing(run_id) == "running"
    result = store.record(run_id, "1", 1, [_failed(0)])
    assert result.run_status == "succeeded"  # no failure limit
    summary = store.summary(run_id)
    assert summary is not None and summary.status == "succeeded"
    # The duration ends when the run ended, not when it is read (both may fall in one ms).
    run = redis.Redis.from_url(redis_srv.url, decode_responses=True).hgetall(RunKeys(run_id).run)
    ended = float(run["finished_at"]) - float(run["created_at"])
    assert ended >= 0 and summary.duration_s == round(ended, 3)


def test_run_fails_when_failures_pass_the_limit(store: RunStore, run_id: str) -> None:
    store.create_run(run_id, {}, max_failures=1)
    store.register_chunk(run_id, "0", 2, 20)
    store.record(run_id, "0", 2, [_failed(0), _failed(1)])
    assert store.finish_listing(run_id) == "failed"


def test_empty_run_finishes_when_listing_ends(store: RunStore, run_id: str) -> None:
    store.create_run(run_id, {}, max_failures=0)
    assert store.finish_listing(run_id) == "succeeded"


def test_cancel_stops_dispatch_and_ends_when_chunks_drain(store: RunStore, run_id: str) -> None:
    store.create_run(run_id, {}, max_failures=0)
    store.register_chunk(run_id, "0", 2, 20)
    assert store.request_cancel(run_id) == "cancelling"
    assert store.register_chunk(run_id, "1", 2, 20) == -1
    assert store.chunk_state(run_id, "0").accepts_work is False
    result = store.record(
        run_id, "0", 2, [_copied(0), KeyOutcome(1, "k1", KeyStatus.CANCELLED, attempts=0)]
    )
    assert result.run_status == "cancelled"
    assert store.run_hash(run_id)["objects_cancelled"] == "1"


def test_every_key_of_a_run_expires(store: RunStore, run_id: str, redis_srv: RedisServer) -> None:
    store.create_run(run_id, {}, max_failures=0)
    store.register_chunk(run_id, "0", 2, 20)
    store.record(run_id, "0", 2, [_copied(0), _failed(1)])
    client = redis.Redis.from_url(redis_srv.url)
    keys = client.keys(f"*{{{run_id}}}*")
    assert len(keys) == 6
    assert all(0 < client.ttl(key) <= 600 for key in keys)


def test_unknown_run_has_no_summary_and_records_nothing(store: RunStore, run_id: str) -> None:
    assert store.summary(run_id) is None
    assert store.record(run_id, "0", 1, [_copied(0)]).added == ()
    assert store.chunk_state(run_id, "0").run_status is None


def test_async_reader_sees_the_same_summary(
    store: RunStore, run_id: str, redis_srv: RedisServer
) -> None:
    store.create_run(run_id, {}, max_failures=0)
    store.register_chunk(run_id, "0", 2, 20)
    store.record(run_id, "0", 2, [_copied(0), _failed(1)])

    async def read() -> RunSummary | None:
        client = redis.asyncio.Redis.from_url(redis_srv.url)
        try:
            return await read_summary_async(client, run_id)
        finally:
            await client.aclose()

    sync, via_async = store.summary(run_id), asyncio.run(read())
    assert sync is not None and via_async is not None
    timing = {"duration_s": 0, "objects_per_second": 0, "bytes_per_second": 0}
    assert via_async.to_dict() | timing == sync.to_dict() | timing


def test_keys_are_laid_out_under_the_run_hash_tag(
    store: RunStore, run_id: str, redis_srv: RedisServer
) -> None:
    store.create_run(run_id, {}, max_failures=0)
    client = redis.Redis.from_url(redis_srv.url, decode_responses=True)
    assert client.keys(f"*{{{run_id}}}*") == [RunKeys(run_id).run]


def test_the_end_of_a_run_cuts_short_a_waiters_pause(store: RunStore, run_id: str) -> None:
    store.create_run(run_id, {}, max_failures=0)
    store.register_chunk(run_id, "0", 1, 10)
    store.finish_listing(run_id)
    with store.end_watch(run_id) as pause:
        ends = threading.Timer(0.2, store.record, (run_id, "0", 1, [_copied(0)]))
        ends.start()
        started = time.monotonic()
        pause(20)  # returns when the run ends, not after 20 s
        waited = time.monotonic() - started
        ends.join()
    assert waited < 10
    summary = store.summary(run_id)
    assert summary is not None and summary.status == "succeeded"


def test_a_pause_without_an_end_lasts_its_time(store: RunStore, run_id: str) -> None:
    store.create_run(run_id, {}, max_failures=0)
    store.register_chunk(run_id, "0", 2, 10)
    with store.end_watch(run_id) as pause:
        store.record(run_id, "0", 2, [_copied(0)])  # progress, not the end
        started = time.monotonic()
        pause(0.3)
        assert time.monotonic() - started >= 0.3
