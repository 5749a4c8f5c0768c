"""A sync's delete phase in the run store (real redis-server): its chunks are held while the
copies run, released when every copy chunk is done, and withheld when the run may not delete."""

from __future__ import annotations

import uuid

import pytest

from copy_core.contract import CopyItem, KeyOutcome, KeyStatus, items_wire
from copy_core.runs.keys import RunKeys
from copy_core.runs.store import RunStore, connect
from devstack.servers import RedisServer

DELETES = items_wire([CopyItem("d/x", "d/x", 1, '"e"'), CopyItem("d/y", "d/y", 1, '"e"')])


@pytest.fixture
def store(redis_srv: RedisServer) -> RunStore:
    return RunStore(connect(redis_srv.url), ttl_s=600)


def _run(store: RunStore, max_failures: int | None = 0) -> str:
    """A run with one copy chunk of two keys ("0") and one held delete chunk ("delete-0")."""
    run_id = f"t-{uuid.uuid4().hex[:12]}"
    store.create_run(run_id, {}, max_failures=max_failures)
    store.register_chunk(run_id, "0", 2, 20, items="[]")
    assert store.register_chunk(run_id, "delete-0", 2, 2, items=DELETES, held=True) == 1
    return run_id


def _copied(index: int) -> KeyOutcome:
    return KeyOutcome(index, f"k{index}", KeyStatus.COPIED, size=10)


def _holder(store: RunStore, run_id: str) -> str | None:
    holder = store.client.hget(RunKeys(run_id).holders, "c:delete-0")
    return None if holder is None else str(holder)


def test_a_held_chunk_is_counted_to_delete_and_never_due(store: RunStore) -> None:
    run_id = _run(store)
    run = store.run_hash(run_id)
    assert (run["objects_listed"], run["objects_to_delete"]) == ("2", "2")
    assert _holder(store, run_id) == "held"
    score = store.client.zscore(RunKeys(run_id).leases, "c:delete-0")
    assert score == float("inf")  # the reaper never sends it while it is held


def test_held_deletes_are_released_by_the_last_copy_once_the_listing_ended(
    store: RunStore,
) -> None:
    run_id = _run(store)
    store.finish_listing(run_id)
    first = store.record(run_id, "0", 2, [_copied(0)])
    assert first.released == () and _holder(store, run_id) == "held"
    last = store.record(run_id, "0", 2, [_copied(1)])
    assert last.released == ("delete-0",)  # the worker that recorded it sends it
    assert _holder(store, run_id) == "queued"
    assert store.run_hash(run_id)["status"] == "running"  # the deletes are still to come
    deleted = [KeyOutcome(i, k, KeyStatus.DELETED) for i, k in enumerate(("d/x", "d/y"))]
    store.record(run_id, "delete-0", 2, deleted)
    summary = store.summary(run_id)
    assert summary is not None
    assert (summary.status, summary.objects_deleted, summary.deletes_withheld) == (
        "succeeded",
        2,
        False,
    )


def test_copies_that_finish_before_the_listing_release_at_its_end(store: RunStore) -> None:
    run_id = _run(store)
    store.record(run_id, "0", 2, [_copied(0), _copied(1)])
    assert _holder(store, run_id) == "held"  # the listing may still plan deletes
    store.finish_listing(run_id)
    assert _holder(store, run_id) == "queued"  # due at once: the reaper sends it


def test_failures_over_the_limit_withhold_every_delete(store: RunStore) -> None:
    run_id = _run(store, max_failures=0)
    store.finish_listing(run_id)
    failed = KeyOutcome(1, "k1", KeyStatus.FAILED, error_code="AccessDenied", message="no")
    done = store.record(run_id, "0", 2, [_copied(0), failed])
    assert done.released == ()
    summary = store.summary(run_id)
    assert summary is not None
    assert (summary.status, summary.objects_deleted, summary.deletes_withheld) == (
        "failed",
        0,
        True,
    )
    assert store.client.hget(RunKeys(run_id).chunk_items, "delete-0") is None


def test_a_cancelled_sync_deletes_nothing(store: RunStore) -> None:
    run_id = _run(store)
    store.request_cancel(run_id)
    store.record(run_id, "0", 2, [_copied(0), KeyOutcome(1, "k1", KeyStatus.CANCELLED)])
    summary = store.summary(run_id)
    assert summary is not None
    assert (summary.status, summary.deletes_withheld, _holder(store, run_id)) == (
        "cancelled",
        True,
        None,
    )


def test_refused_deletes_fail_the_run_once_its_copies_are_done(store: RunStore) -> None:
    run_id = _run(store)
    assert store.refuse_deletes(run_id, 7) == "dispatching"
    assert _holder(store, run_id) is None
    store.finish_listing(run_id)
    store.record(run_id, "0", 2, [_copied(0), _copied(1)])
    summary = store.summary(run_id)
    assert summary is not None
    assert (summary.status, summary.deletes_refused, summary.objects_copied) == ("failed", 7, 2)
    assert store.register_chunk(run_id, "delete-1", 1, 1, items=DELETES, held=True) == -1
