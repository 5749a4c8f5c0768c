"""Planning a sync's deletes: the merge of two listings, and the held chunks it registers.

In-process moto for S3 and a real redis-server for the run store.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import boto3
import pytest
from moto import mock_aws

from copy_control.dispatch.deletes import DeletePhase, plan_deletes
from copy_control.dispatch.listing_log import ListingLog
from copy_control.dispatch.planning import PlannedChunk
from copy_control.request import CopyRequest
from copy_control.selection import build_selection
from copy_core.runs.keys import RunKeys
from copy_core.runs.store import RunStore, connect
from devstack.servers import RedisServer


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


def _put(s3, bucket: str, keys: list[str]) -> None:
    for key in keys:
        s3.put_object(Bucket=bucket, Key=key, Body=b"x")


def _request(**more: object) -> CopyRequest:
    return CopyRequest(
        "src-bucket",
        "dst-bucket",
        source_prefix="in/",
        dest_prefix="out/",
        delete_extraneous=True,
        chunk_size=2,
        **more,  # type: ignore[arg-type]
    )


def _planned(s3, request: CopyRequest) -> list[str]:
    return [
        item.dest_key
        for chunk in plan_deletes(request, s3, s3)
        if isinstance(chunk, PlannedChunk)
        for item in chunk.items
    ]


def test_the_merge_finds_exactly_the_keys_the_source_lacks(s3) -> None:
    # "a-b" sorts before "a/b" ("-" is 0x2d, "/" 0x2f), and "é" after "z": S3's order.
    shared = ["a/b", "a-b", "é", "z"]
    _put(s3, "src-bucket", [f"in/{k}" for k in [*shared, "only-source"]])
    _put(s3, "dst-bucket", [f"out/{k}" for k in [*shared, "a", "a/b/c", "é/x", "zz"]])
    _put(s3, "dst-bucket", ["outside/keep", "out"])  # not under the destination prefix
    assert _planned(s3, _request()) == ["out/a", "out/a/b/c", "out/zz", "out/é/x"]


def test_the_filters_decide_which_extraneous_keys_go(s3) -> None:
    _put(s3, "dst-bucket", ["out/x.csv", "out/x.tmp", "out/big.csv"])
    s3.put_object(Bucket="dst-bucket", Key="out/big.csv", Body=b"y" * 100)
    selection = build_selection(exclude=["*.tmp"], max_size="10")
    assert _planned(s3, _request(selection=selection)) == ["out/x.csv"]


def test_planning_again_registers_nothing_twice(s3, store: RunStore) -> None:
    _put(s3, "dst-bucket", [f"out/{i}" for i in range(5)])
    run_id = f"d-{uuid.uuid4().hex[:10]}"
    store.create_run(run_id, {}, max_failures=0)
    for _ in range(2):  # a dispatcher resumed after it planned every delete
        DeletePhase(store, run_id, ListingLog(store, run_id), None).run(_request(), s3, s3)
    run = store.run_hash(run_id)
    assert run["objects_to_delete"] == "5"
    held = store.client.smembers(RunKeys(run_id).held_deletes)
    assert held == {"delete-0", "delete-1", "delete-2"}


def test_a_sync_over_its_max_delete_holds_nothing(s3, store: RunStore) -> None:
    _put(s3, "dst-bucket", [f"out/{i}" for i in range(5)])
    run_id = f"d-{uuid.uuid4().hex[:10]}"
    store.create_run(run_id, {}, max_failures=0)
    phase = DeletePhase(store, run_id, ListingLog(store, run_id), 3)
    phase.run(_request(max_delete=3), s3, s3)
    assert phase.refused
    run = store.run_hash(run_id)
    assert int(run["deletes_refused"]) > 3
    assert store.client.smembers(RunKeys(run_id).held_deletes) == set()
