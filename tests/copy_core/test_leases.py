"""Taking, holding and returning a run's work in the pool, on a real redis-server.

Expiry is made due by giving work back with no delay, not by waiting for a clock: these tests
hold on a slow machine and a fast one alike.
"""

from __future__ import annotations

import uuid

import pytest

from copy_core.contract import (
    ChunkRef,
    CopyItem,
    CopyJob,
    KeyOutcome,
    KeyStatus,
    canonical_json,
    digest,
    items_wire,
)
from copy_core.runs.keys import RunKeys
from copy_core.runs.leases import LISTING, LeaseStore, chunk_member
from copy_core.runs.store import RunStore, connect
from devstack.servers import RedisServer

JOB = CopyJob("src-bucket", "dst-bucket")
ITEMS = (CopyItem("a/1", "b/1", 1, '"e1"'), CopyItem("a/2", "b/2", 2, '"e2"'))


@pytest.fixture
def store(redis_srv: RedisServer) -> RunStore:
    return RunStore(connect(redis_srv.url), ttl_s=600)


@pytest.fixture
def leases(store: RunStore) -> LeaseStore:
    return LeaseStore(store.client, 600)


@pytest.fixture
def run_id(store: RunStore) -> str:
    run_id = f"l-{uuid.uuid4().hex[:10]}"
    store.create_run(run_id, {}, max_failures=None, job=canonical_json(JOB.to_wire()))
    store.register_chunk(run_id, "p0-0", len(ITEMS), 3, items=items_wire(ITEMS))
    return run_id


def _digests(items=ITEMS, job=JOB) -> tuple[str, str]:
    return digest(items_wire(items)), digest(canonical_json(job.to_wire()))


def test_a_registered_chunk_is_queued_and_taken_by_reference(
    store: RunStore, leases: LeaseStore, run_id: str
) -> None:
    assert leases.holder(run_id, chunk_member("p0-0")) == "queued"
    taken = store.take_chunk(run_id, "p0-0", "worker-a", 30)
    assert (taken.verdict, taken.deliveries) == ("taken", 1)
    assert taken.items is not None and taken.job is not None
    assert ChunkRef(run_id, "p0-0").resolve(taken.job, taken.items).items == ITEMS
    assert leases.holder(run_id, chunk_member("p0-0")) == "worker-a"


def test_a_chunk_held_by_a_live_worker_is_not_taken_twice(store: RunStore, run_id: str) -> None:
    assert store.take_chunk(run_id, "p0-0", "worker-a", 30).taken
    assert store.take_chunk(run_id, "p0-0", "worker-b", 30).verdict == "held"
    assert store.take_chunk(run_id, "p0-0", "worker-a", 30).taken  # its own: taken again


@pytest.mark.parametrize(
    ("chunk_id", "digests", "verdict"),
    [
        ("p9-9", ("", ""), "forged"),  # never dispatched
        ("p0-0", _digests(items=ITEMS[:1]), "forged"),  # other keys than the dispatched ones
        ("p0-0", _digests(job=CopyJob("other-bucket", "dst-bucket")), "forged"),  # other job
        ("p0-0", _digests(), "taken"),  # a whole message, the dispatched one
    ],
)
def test_only_what_the_run_dispatched_is_taken(
    store: RunStore, run_id: str, chunk_id: str, digests: tuple[str, str], verdict: str
) -> None:
    assert store.take_chunk(run_id, chunk_id, "worker-a", 30, digests).verdict == verdict


def test_no_run_and_an_ended_run_take_nothing(store: RunStore, run_id: str) -> None:
    assert store.take_chunk("no-such-run", "p0-0", "w", 30).verdict == "unknown"
    store.request_cancel(run_id)
    store.take_chunk(run_id, "p0-0", "w", 30)
    store.record(run_id, "p0-0", 2, [_cancelled(0), _cancelled(1)])
    assert store.take_chunk(run_id, "p0-0", "w", 30).verdict == "ended"


def test_a_done_chunk_leaves_the_pool(store: RunStore, leases: LeaseStore, run_id: str) -> None:
    store.take_chunk(run_id, "p0-0", "worker-a", 30)
    store.record(run_id, "p0-0", 2, [_copied(0), _copied(1)])
    assert leases.members(run_id) == {}
    assert not store.client.hexists(RunKeys(run_id).chunk_items, "p0-0")
    assert store.take_chunk(run_id, "p0-0", "worker-b", 30).verdict == "done"  # listing open


def test_renewing_says_what_is_no_longer_held(
    store: RunStore, leases: LeaseStore, run_id: str
) -> None:
    member = chunk_member("p0-0")
    store.take_chunk(run_id, "p0-0", "worker-a", 30)
    assert leases.renew(run_id, "worker-a", [member], 30) == []
    assert leases.release(run_id, "worker-a", member, 0.0, retry=False)  # due now
    assert store.take_chunk(run_id, "p0-0", "worker-b", 30).taken
    assert leases.renew(run_id, "worker-a", [member], 30) == [member]


def test_expired_work_is_returned_once(store: RunStore, leases: LeaseStore, run_id: str) -> None:
    member = chunk_member("p0-0")
    store.take_chunk(run_id, "p0-0", "worker-a", 30)
    assert leases.reap(run_id, 900) == []  # a live lease is left alone
    leases.release(run_id, "worker-a", member, 0.0, retry=True)  # as if it had expired
    first, second = leases.reap(run_id, 900), leases.reap(run_id, 900)
    assert [(r.member, r.message) for r in first] == [(member, None)]
    assert second == []  # claimed by the first reaper
    assert leases.holder(run_id, member) == "queued"


def test_other_work_carries_its_message(leases: LeaseStore, run_id: str) -> None:
    leases.offer(run_id, LISTING, '{"task": "t", "kwargs": {}}', 900)
    assert leases.take(run_id, LISTING, "worker-a", 30) == 1
    assert leases.take(run_id, LISTING, "worker-b", 30) == 0
    leases.release(run_id, "worker-a", LISTING, 0.0, retry=False)
    [returned] = [r for r in leases.reap(run_id, 900) if r.member == LISTING]
    assert returned.message == '{"task": "t", "kwargs": {}}'
    assert leases.take(run_id, LISTING, "worker-b", 30) == 2
    assert leases.drop(run_id, LISTING, "worker-b")
    assert LISTING not in leases.members(run_id)


def test_a_finished_run_does_not_change(store: RunStore, run_id: str) -> None:
    store.take_chunk(run_id, "p0-0", "w", 30)
    store.record(run_id, "p0-0", 2, [_copied(0), _copied(1)])
    store.finish_listing(run_id)
    before = store.run_hash(run_id)
    assert before["status"] == "succeeded"
    later = store.record(run_id, "p0-0", 2, [_copied(0)])  # a late duplicate
    forged = store.record(run_id, "p7-1", 5, [_copied(0), _copied(1)])  # never dispatched
    assert later.added == forged.added == ()
    assert store.run_hash(run_id) == before


def test_a_chunk_the_run_never_dispatched_counts_nothing(store: RunStore, run_id: str) -> None:
    assert store.record(run_id, "p7-1", 1, [_copied(0)]).added == ()
    summary = store.summary(run_id)
    assert summary is not None and summary.objects_copied == 0
    assert not store.client.sismember(RunKeys(run_id).done, "p7-1")


def _copied(index: int) -> KeyOutcome:
    return KeyOutcome(index, f"a/{index + 1}", KeyStatus.COPIED, size=1)


def _cancelled(index: int) -> KeyOutcome:
    return KeyOutcome(index, f"a/{index + 1}", KeyStatus.CANCELLED, attempts=0)
