"""The copy engine with in-process moto for S3 and a real redis-server for the run store."""

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
from copy_core.runs.store import RunStore, connect
from copy_workers.engine import ChunkIncomplete, copy_chunk
from copy_workers.s3.clients import CopyClients
from copy_workers.s3.copier import CopyReport, ObjectCopier
from copy_workers.settings import WorkerSettings
from devstack.servers import RedisServer
from tests.fakes import client_error

SETTINGS = WorkerSettings(
    keys_in_flight=4, max_pool_connections=8, flush_every_keys=3, key_retry_base_s=0.001
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


def _chunk(s3, store: RunStore, n: int, missing: int | None = None) -> ChunkMessage:
    run_id = f"e-{uuid.uuid4().hex[:10]}"
    items = []
    for i in range(n):
        key = f"src/{i}/ключ {i}+%.txt"
        if i != missing:
            put = s3.put_object(Bucket="src-bucket", Key=key, Body=f"body {i}".encode())
            etag = put["ETag"]
        else:
            etag = None
        items.append(CopyItem(key, f"dst/{i}", len(f"body {i}"), etag))
    store.create_run(run_id, {}, max_failures=None)
    store.register_chunk(run_id, "0", n, sum(i.size for i in items))
    store.finish_listing(run_id)
    return ChunkMessage(run_id, "0", CopyJob("src-bucket", "dst-bucket"), tuple(items))


def _copier(s3, message: ChunkMessage):
    return ObjectCopier(CopyClients.single(s3), message.job, ThreadPoolExecutor(4)).copy


def test_copies_every_key_and_records_each_once(s3, store: RunStore) -> None:
    message = _chunk(s3, store, 10)
    result = copy_chunk(message, _copier(s3, message), store, SETTINGS)
    assert (result.copied, result.failed, result.already_recorded) == (10, 0, 0)
    for i in range(10):
        assert (
            s3.get_object(Bucket="dst-bucket", Key=f"dst/{i}")["Body"].read()
            == f"body {i}".encode()
        )
    summary = store.summary(message.run_id)
    assert summary is not None
    assert (summary.status, summary.objects_copied, summary.bytes_copied) == (
        "succeeded",
        10,
        sum(len(f"body {i}") for i in range(10)),
    )


def test_a_redelivered_chunk_copies_and_counts_nothing_again(s3, store: RunStore) -> None:
    message = _chunk(s3, store, 6)
    copy_chunk(message, _copier(s3, message), store, SETTINGS)
    calls = []

    def counting(item: CopyItem, requests: RequestLog) -> CopyReport:
        calls.append(item)
        return CopyReport(KeyStatus.COPIED)

    again = copy_chunk(message, counting, store, SETTINGS)
    assert calls == []
    assert (again.copied, again.already_recorded) == (0, 6)
    summary = store.summary(message.run_id)
    assert summary is not None and summary.objects_copied == 6


def test_a_missing_source_is_one_failed_key_with_its_reason(s3, store: RunStore) -> None:
    message = _chunk(s3, store, 5, missing=2)
    result = copy_chunk(message, _copier(s3, message), store, SETTINGS)
    assert (result.copied, result.failed) == (4, 1)
    [failure] = store.iter_failures(message.run_id)
    assert failure["key"] == message.items[2].source_key
    assert failure["error_code"] == "NoSuchKey"


def _flaky(fail_keys: set[str]):
    def copy(item: CopyItem, requests: RequestLog) -> CopyReport:
        if item.source_key in fail_keys:
            raise client_error("InternalError", 500, message="try again")
        return CopyReport(KeyStatus.COPIED)

    return copy


def test_transient_failures_leave_keys_for_a_chunk_retry(s3, store: RunStore) -> None:
    message = _chunk(s3, store, 4)
    flaky = {message.items[1].source_key}
    with pytest.raises(ChunkIncomplete) as raised:
        copy_chunk(message, _flaky(flaky), store, SETTINGS, final_attempt=False)
    assert raised.value.left == 1
    assert store.chunk_state(message.run_id, "0").recorded == frozenset({0, 2, 3})
    final = copy_chunk(message, _flaky(flaky), store, SETTINGS, final_attempt=True)
    assert (final.failed, final.already_recorded) == (1, 3)
    summary = store.summary(message.run_id)
    assert summary is not None and (summary.objects_copied, summary.objects_failed) == (3, 1)
    assert summary.failures[0]["error_code"] == "InternalError"


def test_a_cancelled_run_drops_its_queued_chunks(s3, store: RunStore) -> None:
    message = _chunk(s3, store, 5)
    store.request_cancel(message.run_id)
    result = copy_chunk(message, _flaky(set()), store, SETTINGS)
    assert (result.copied, result.cancelled) == (0, 5)
    summary = store.summary(message.run_id)
    assert summary is not None and summary.status == "cancelled"


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

    settings = WorkerSettings(keys_in_flight=2, max_pool_connections=2, flush_every_keys=1)
    result = copy_chunk(message, copy, store, settings)
    summary = store.summary(message.run_id)
    assert summary is not None and summary.status == "cancelled"
    assert result.copied == summary.objects_copied == len(copied)
    assert result.copied + result.cancelled == 40
    assert result.copied < 10
