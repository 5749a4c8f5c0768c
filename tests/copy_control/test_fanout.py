"""The fan-out: concurrent key ranges list exactly the keys a sequential listing does,
splits are recorded before their chunks are sent, and a dispatcher that dies resumes with
the same chunks. An in-memory lister stands in for S3 here (the e2e tests use SeaweedFS);
the run state is a real redis-server."""

from __future__ import annotations

import json
import random
import uuid
from collections import Counter
from typing import Any, cast

import pytest

from copy_control.dispatch.fanout import Fanout
from copy_control.dispatch.listing_log import ListingLog, MemoryLog
from copy_control.dispatch.planning import PartitionEnd, Plan, PlannedChunk
from copy_control.dispatch.sender import ChunkSender
from copy_control.listing.partitions import Partition
from copy_control.listing.sources import ListingOrderError, PrefixSource
from copy_core.runs.keys import RunKeys
from copy_core.runs.store import RunStore, connect
from devstack.listing_stub import ListingStub
from devstack.servers import RedisServer


class Collect:
    """A sink that keeps every chunk, optionally failing after some."""

    def __init__(self, fail_after: int | None = None) -> None:
        self.chunks: list[PlannedChunk] = []
        self.ends: list[PartitionEnd] = []
        self.fail_after = fail_after

    def chunk(self, chunk: PlannedChunk) -> bool:
        if self.fail_after is not None and len(self.chunks) >= self.fail_after:
            raise ConnectionError("the dispatcher died")
        self.chunks.append(chunk)
        return True

    def partition_end(self, end: PartitionEnd) -> None:
        self.ends.append(end)


def _keys(n: int, seed: int = 1) -> list[str]:
    rng = random.Random(seed)
    nested = [
        f"data/{d:02d}/{h:02d}/partition-{i:05d}.bin"
        for d in range(20)
        for h in range(5)
        for i in range(n // 100)
    ]
    flat = [f"data/{rng.getrandbits(40):010x}" for _ in range(n // 4)]
    odd = ["data/", "data/é/ü", "data/~", "data/ space", "data/a+b%c"]
    return nested + flat + odd


def _plan(chunk_size: int = 50) -> Plan:
    return Plan(lambda obj: True, lambda key: key, chunk_size)


def _run(keys: list[str], concurrency: int, sink: Collect, partitions=None, log=None) -> Fanout:
    source = PrefixSource(cast(Any, ListingStub(keys)), "b", "data/", page_size=40)
    fanout = Fanout(source, _plan(), sink, log or MemoryLog(), concurrency)
    fanout.run(partitions or source.initial())
    return fanout


def _listed(sink: Collect) -> list[str]:
    return [item.source_key for chunk in sink.chunks for item in chunk.items]


def test_concurrent_listing_yields_exactly_the_sequential_key_set() -> None:
    keys = _keys(4000)
    sequential, concurrent = Collect(), Collect()
    _run(keys, 1, sequential)
    fanout = _run(keys, 8, concurrent)
    assert _listed(sequential) == sorted(keys)
    assert Counter(_listed(concurrent)) == Counter(keys)  # every key once
    assert fanout.splits > 0
    assert len({end.partition for end in concurrent.ends}) > 8


def test_chunks_of_one_partition_arrive_in_order() -> None:
    sink = Collect()
    _run(_keys(3000), 6, sink)
    by_partition: dict[str, list[PlannedChunk]] = {}
    for chunk in sink.chunks:
        by_partition.setdefault(chunk.partition, []).append(chunk)
    for pid, chunks in by_partition.items():
        assert [c.chunk_id for c in chunks] == [f"{pid}-{n}" for n in range(len(chunks))]
        keys = [i.source_key for c in chunks for i in c.items]
        assert keys == sorted(keys)


def test_a_listing_error_reaches_the_caller() -> None:
    class Broken(ListingStub):
        def list_objects_v2(self, **kwargs: Any) -> dict[str, Any]:
            if self.requests > 3:
                raise RuntimeError("listing broke")
            return super().list_objects_v2(**kwargs)

    source = PrefixSource(cast(Any, Broken(_keys(400))), "b", "data/", page_size=40)
    with pytest.raises(RuntimeError, match="listing broke"):
        Fanout(source, _plan(), Collect(), MemoryLog(), 4).run(source.initial())


@pytest.fixture
def store(redis_srv: RedisServer) -> RunStore:
    return RunStore(connect(redis_srv.url), ttl_s=600)


class FakeApp:
    """A Celery app that records what it would send, and can die after some messages."""

    def __init__(self, die_after: int | None = None) -> None:
        self.sent: list[dict[str, Any]] = []
        self.planned: list[tuple[str, list[str]]] = []
        self.reprs: list[str] = []
        self.die_after = die_after

    def send_task(
        self, name: str, kwargs: dict[str, Any], queue: str, argsrepr: str, kwargsrepr: str
    ) -> None:
        if self.die_after is not None and len(self.sent) >= self.die_after:
            raise ConnectionError("the dispatcher died")
        self.sent.append(kwargs["chunk"])
        self.reprs.append(kwargsrepr)


class PlannedSpy:
    """The run store, noting the keys of every chunk the sender registers (the messages only
    name the chunk now: its keys are what the store keeps)."""

    def __init__(self, store: RunStore) -> None:
        self._store = store
        self.planned: list[tuple[str, list[str]]] = []

    def __getattr__(self, name: str) -> Any:
        return getattr(self._store, name)

    def register_chunk(
        self, run_id: str, chunk_id: str, n_items: int, n_bytes: int, items: str = ""
    ) -> int:
        self.planned.append((chunk_id, [item[0] for item in json.loads(items)]))
        return self._store.register_chunk(run_id, chunk_id, n_items, n_bytes, items=items)


def _dispatch(
    store: RunStore,
    run_id: str,
    keys: list[str],
    app: FakeApp,
    plan: Plan | None = None,
    concurrency: int = 8,
) -> list[tuple[str, list[str]]]:
    """What runner.start_run does: the recorded partitions (a resume), or a first one.

    Returns the chunks registered (id and keys), even when the dispatch dies.
    """
    log = ListingLog(store, run_id)
    recorded = log.load()
    partitions = recorded or [Partition("p0", {"after": None, "end": None})]
    if not recorded:
        log.save_partitions(partitions)
    spy = PlannedSpy(store)
    sender = ChunkSender(cast(Any, app), cast(Any, spy), run_id, log)
    source = PrefixSource(cast(Any, ListingStub(keys)), "b", "data/", page_size=40)
    app.planned = spy.planned
    Fanout(source, plan or _plan(), sender, log, concurrency).run(partitions, bool(recorded))
    return spy.planned


def test_a_dispatcher_that_dies_resumes_with_the_same_chunks(store: RunStore) -> None:
    run_id = f"fan-{uuid.uuid4().hex[:8]}"
    keys = _keys(4000)
    store.create_run(run_id, {}, max_failures=0)
    first, second = FakeApp(die_after=25), FakeApp()
    with pytest.raises(ConnectionError):
        _dispatch(store, run_id, keys, first)
    recorded = ListingLog(store, run_id).load()
    assert len(recorded) > 1, "the run had split into several key ranges before it died"
    _dispatch(store, run_id, keys, second)

    by_id: dict[str, list[str]] = {}
    for chunk_id, items in first.planned + second.planned:
        assert by_id.setdefault(chunk_id, items) == items  # planned again = same keys
    assert Counter(k for items in by_id.values() for k in items) == Counter(keys)
    assert int(store.run_hash(run_id)["objects_listed"]) == len(keys)
    assert all(partition.done for partition in ListingLog(store, run_id).load())
    # Messages name the chunk; its keys are in the run store, as registered.
    message, label = second.sent[0], second.reprs[0]
    assert message == {"schema": 2, "run_id": run_id, "chunk_id": message["chunk_id"]}
    assert label == f"run {run_id} chunk {message['chunk_id']}"
    stored = str(store.client.hget(RunKeys(run_id).chunk_items, message["chunk_id"]))
    assert [item[0] for item in json.loads(stored)] == by_id[message["chunk_id"]]


def test_filtered_counts_survive_a_resume(store: RunStore) -> None:
    run_id = f"fan-{uuid.uuid4().hex[:8]}"
    keys = _keys(2000)
    store.create_run(run_id, {}, max_failures=0)
    plan = Plan(lambda obj: not obj.key.endswith(".bin"), lambda key: key, 10)
    with pytest.raises(ConnectionError):
        _dispatch(store, run_id, keys, FakeApp(die_after=20), plan, concurrency=4)
    _dispatch(store, run_id, keys, FakeApp(), plan, concurrency=4)
    filtered = sum(k.endswith(".bin") for k in keys)
    assert int(store.run_hash(run_id)["objects_filtered"]) == filtered
    assert int(store.run_hash(run_id)["objects_listed"]) == len(keys) - filtered


def test_a_resumed_range_is_not_split_inside_the_chunk_it_may_have_sent(store: RunStore) -> None:
    # p0's second chunk spans 200 filtered keys. The first dispatcher (one listing thread, so
    # no splits) registers that chunk and dies before sending it and saving its cursor; the
    # resumed one has idle threads and would split p0 after two pages, inside that chunk.
    # Once seen in CI: the chunk came back shorter under the same id, its other keys went to
    # another partition's chunk, and they were counted (and copied) twice.
    keep = [f"data/a{i:03d}" for i in range(10)] + [f"data/c{i:03d}" for i in range(5)]
    keep += [f"data/e{i:03d}" for i in range(30)]
    keys = sorted(keep + [f"data/b{i:03d}.bin" for i in range(200)])
    plan = Plan(lambda obj: not obj.key.endswith(".bin"), lambda key: key, 10)
    run_id = f"fan-{uuid.uuid4().hex[:8]}"
    store.create_run(run_id, {}, max_failures=0)
    first, second = FakeApp(die_after=1), FakeApp()
    with pytest.raises(ConnectionError):
        _dispatch(store, run_id, keys, first, plan, concurrency=1)
    _dispatch(store, run_id, keys, second, plan, concurrency=4)
    chunks = dict(second.planned)
    assert chunks["p0-1"] == keep[10:20]  # what the first dispatcher registered as p0-1
    planned = dict(first.planned + second.planned)
    assert Counter(key for items in planned.values() for key in items) == Counter(keep)
    assert int(store.run_hash(run_id)["objects_listed"]) == len(keep)


def test_an_endpoint_listing_out_of_order_stops_key_ranges() -> None:
    class Unordered(ListingStub):
        def list_objects_v2(self, **kwargs: Any) -> dict[str, Any]:
            page = super().list_objects_v2(**kwargs)
            page["Contents"].reverse()
            return page

    source = PrefixSource(cast(Any, Unordered(_keys(400))), "b", "data/", page_size=40)
    partition = Partition("p1", {"after": "data/", "end": None})
    with pytest.raises(ListingOrderError, match="--listing-concurrency 1"):
        Fanout(source, _plan(), Collect(), MemoryLog(), 1).run([partition])
