"""The engine's versions, deletes and moves: in-process moto for S3 and a real redis-server.

- a key's versions in one chunk are copied one after another, oldest first, never two at once;
- a sync's delete chunk deletes its keys with DeleteObjects and records each once;
- a move deletes a source only once its copy is recorded and verified, and the chunk is done
  only when every source is settled; a redelivered move keeps what it cannot know.
"""

from __future__ import annotations

import threading
import uuid
from concurrent.futures import ThreadPoolExecutor

import boto3
import pytest
from moto import mock_aws

from copy_core.aws.request_log import RequestLog
from copy_core.contract import ChunkMessage, CopyItem, CopyJob, KeyOutcome, KeyStatus
from copy_core.runs.store import RunStore, connect
from copy_workers.engine import CopyPaths
from copy_workers.s3.clients import CopyClients
from copy_workers.s3.copier import CopyReport, ObjectCopier
from copy_workers.settings import WorkerSettings
from devstack.servers import RedisServer
from tests.copy_workers.test_engine import admit, engine, settle

SETTINGS = WorkerSettings(keys_in_flight=8, window_initial=8, copy_threads=8)


@pytest.fixture
def store(redis_srv: RedisServer) -> RunStore:
    return RunStore(connect(redis_srv.url), ttl_s=600)


@pytest.fixture
def s3():
    with mock_aws():
        client = boto3.client("s3", region_name="us-east-1")
        for bucket in ("src-bucket", "dst-bucket"):
            client.create_bucket(Bucket=bucket)
            client.put_bucket_versioning(
                Bucket=bucket, VersioningConfiguration={"Status": "Enabled"}
            )
        yield client


def _message(
    store: RunStore, job: CopyJob, items: list[CopyItem], chunk_id: str = "0"
) -> ChunkMessage:
    run_id = f"m-{uuid.uuid4().hex[:10]}"
    store.create_run(run_id, {}, max_failures=None)
    store.register_chunk(run_id, chunk_id, len(items), sum(i.size for i in items))
    store.take_chunk(run_id, chunk_id, "test-worker", 30)
    return ChunkMessage(run_id, chunk_id, job, tuple(items))


def _paths(s3, job: CopyJob) -> CopyPaths:
    copier = ObjectCopier(CopyClients.single(s3), job, ThreadPoolExecutor(4))
    return CopyPaths(
        copy=copier.copy,
        delete=copier.delete_extraneous,
        delete_source=copier.delete_source if job.delete_source else None,
    )


def test_versions_of_a_key_are_copied_oldest_first_one_at_a_time(s3, store: RunStore) -> None:
    items = []
    for key in ("a", "b"):
        for n in range(4):
            put = s3.put_object(Bucket="src-bucket", Key=key, Body=f"{key}{n}".encode())
            items.append(CopyItem(key, key, 2, put["ETag"], version_id=put["VersionId"]))
    job = CopyJob("src-bucket", "dst-bucket")
    message = _message(store, job, items)
    real = _paths(s3, job).copy
    in_flight: set[str] = set()
    order: list[str | None] = []
    lock = threading.Lock()

    def copy(item: CopyItem, requests: RequestLog) -> CopyReport:
        with lock:
            assert item.dest_key not in in_flight, "two versions of one key at once"
            in_flight.add(item.dest_key)
            order.append(item.version_id)
        try:
            return real(item, requests)
        finally:
            with lock:
                in_flight.discard(item.dest_key)

    eng = engine(store, SETTINGS)
    admit(eng, store, message, CopyPaths(copy=copy))
    settle(eng)
    for key in ("a", "b"):
        listed = [i.version_id for i in items if i.source_key == key]
        assert [v for v in order if v in listed] == listed  # oldest first
        versions = s3.list_object_versions(Bucket="dst-bucket", Prefix=key)["Versions"]
        bodies = [
            s3.get_object(Bucket="dst-bucket", Key=key, VersionId=v["VersionId"])["Body"].read()
            for v in reversed(versions)
        ]
        assert bodies == [f"{key}{n}".encode() for n in range(4)]


def test_a_delete_marker_is_written_in_its_place_among_the_versions(s3, store: RunStore) -> None:
    first = s3.put_object(Bucket="src-bucket", Key="k", Body=b"one")
    marker = s3.delete_object(Bucket="src-bucket", Key="k")
    second = s3.put_object(Bucket="src-bucket", Key="k", Body=b"two")
    last = s3.delete_object(Bucket="src-bucket", Key="k")
    items = [
        CopyItem("k", "k", 3, first["ETag"], version_id=first["VersionId"]),
        CopyItem("k", "k", 0, version_id=marker["VersionId"], delete_marker=True),
        CopyItem("k", "k", 3, second["ETag"], version_id=second["VersionId"]),
        CopyItem("k", "k", 0, version_id=last["VersionId"], delete_marker=True),
    ]
    job = CopyJob("src-bucket", "dst-bucket")
    message = _message(store, job, items)
    real = _paths(s3, job).copy
    order: list[tuple[str | None, bool]] = []

    def copy(item: CopyItem, requests: RequestLog) -> CopyReport:
        order.append((item.version_id, item.delete_marker))
        return real(item, requests)

    eng = engine(store, SETTINGS)
    admit(eng, store, message, CopyPaths(copy=copy))
    settle(eng)

    assert order == [(i.version_id, i.delete_marker) for i in items]  # one at a time, in order
    listed = s3.list_object_versions(Bucket="dst-bucket", Prefix="k")
    versions, markers = listed["Versions"], listed["DeleteMarkers"]
    bodies = [
        s3.get_object(Bucket="dst-bucket", Key="k", VersionId=v["VersionId"])["Body"].read()
        for v in reversed(versions)
    ]
    assert bodies == [b"one", b"two"] and len(markers) == 2
    assert [m["IsLatest"] for m in markers] == [True, False]  # the key ends deleted, as it did
    summary = store.summary(message.run_id)
    assert summary is not None and summary.objects_copied == 4
    assert summary.objects_verified == 4


def test_a_delete_chunk_deletes_its_keys_once(s3, store: RunStore) -> None:
    for key in ("x/1", "x/2", "x/3"):
        s3.put_object(Bucket="dst-bucket", Key=key, Body=b"stale")
    items = [CopyItem(k, k, 5) for k in ("x/1", "x/2", "x/3")]
    job = CopyJob("src-bucket", "dst-bucket")
    message = _message(store, job, items, chunk_id="delete-0")
    eng = engine(store, SETTINGS)
    admit(eng, store, message, _paths(s3, job))
    settle(eng)
    assert "Contents" not in s3.list_objects_v2(Bucket="dst-bucket")
    admit(eng, store, message, CopyPaths(copy=lambda i, r: pytest.fail("nothing is left")))
    settle(eng)
    store.finish_listing(message.run_id)
    summary = store.summary(message.run_id)
    assert summary is not None
    assert (summary.status, summary.objects_deleted, summary.objects_copied) == ("succeeded", 3, 0)


def test_a_move_deletes_verified_sources_after_recording_their_copies(s3, store: RunStore) -> None:
    items = []
    for n in range(5):
        put = s3.put_object(Bucket="src-bucket", Key=f"in/{n}", Body=b"data")
        items.append(CopyItem(f"in/{n}", f"out/{n}", 4, put["ETag"]))
    items.append(CopyItem("in/missing", "out/missing", 4, '"0"'))  # fails: its source stays
    job = CopyJob("src-bucket", "dst-bucket", delete_source=True)
    message = _message(store, job, items)
    paths = _paths(s3, job)
    seen_recorded: list[bool] = []
    delete = paths.delete_source
    assert delete is not None

    def checked_delete(item: CopyItem, requests: RequestLog) -> None:
        index = items.index(item)
        recorded = store.chunk_state(message.run_id, "0").recorded
        seen_recorded.append(index in recorded)
        delete(item, requests)

    eng = engine(store, SETTINGS)
    admit(eng, store, message, CopyPaths(copy=paths.copy, delete_source=checked_delete))
    settle(eng)
    assert seen_recorded == [True] * 5  # each copy was recorded before its source went
    left = s3.list_objects_v2(Bucket="src-bucket", Prefix="in/").get("Contents", [])
    assert left == []
    assert store.chunk_state(message.run_id, "0").recorded == frozenset(range(12))
    store.finish_listing(message.run_id)
    summary = store.summary(message.run_id)
    assert summary is not None
    assert (summary.status, summary.objects_copied, summary.objects_failed) == ("succeeded", 5, 1)
    assert (summary.objects_source_deleted, summary.objects_source_kept) == (5, 0)


def test_a_redelivered_move_keeps_a_source_it_cannot_know_was_deleted(s3, store: RunStore) -> None:
    put = s3.put_object(Bucket="src-bucket", Key="in/0", Body=b"data")
    items = [CopyItem("in/0", "out/0", 4, put["ETag"])]
    job = CopyJob("src-bucket", "dst-bucket", delete_source=True)
    message = _message(store, job, items)
    # An earlier delivery recorded the copy, then stopped before settling the source.
    copied = KeyOutcome(0, "in/0", KeyStatus.COPIED, 4, verified=True)
    store.record(message.run_id, "0", 2, [copied])
    eng = engine(store, SETTINGS)
    admit(eng, store, message, CopyPaths(copy=lambda i, r: pytest.fail("it is copied")))
    settle(eng)
    store.finish_listing(message.run_id)
    summary = store.summary(message.run_id)
    assert summary is not None
    assert (summary.status, summary.objects_source_kept, summary.objects_source_deleted) == (
        "succeeded",
        1,
        0,
    )
    assert s3.list_objects_v2(Bucket="src-bucket", Prefix="in/")["KeyCount"] == 1
