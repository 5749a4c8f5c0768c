"""Chunk planning per partition: chunk ids, cursors, filtered counts, resumes."""

from __future__ import annotations

from collections.abc import Iterator

from copy_control.dispatch.planning import PartitionEnd, Plan, PlannedChunk, plan_partition
from copy_control.listed import ListedObject
from copy_control.listing.partitions import Cursor, Entry


def _entries(n: int, start: int = 0) -> list[Entry]:
    return [(f"k{i:04d}", ListedObject(f"k{i:04d}", i, f'"{i}"')) for i in range(start, n)]


def _plan(chunk_size: int = 10, accepts=lambda obj: True) -> Plan:
    return Plan(accepts, lambda key: "d/" + key, chunk_size)


def _chunks(items: list[PlannedChunk | PartitionEnd]) -> list[PlannedChunk]:
    return [c for c in items if isinstance(c, PlannedChunk)]


def test_chunks_are_numbered_per_partition_and_the_last_one_is_partial() -> None:
    out = list(plan_partition(_entries(25), "p3", _plan()))
    chunks = _chunks(out)
    assert [c.chunk_id for c in chunks] == ["p3-0", "p3-1", "p3-2"]
    assert [len(c.items) for c in chunks] == [10, 10, 5]
    assert chunks[1].items[0].source_key == "k0010"
    assert chunks[1].items[0].dest_key == "d/k0010"
    assert chunks[0].cursor == Cursor("k0009", 1, 0)
    assert chunks[2].items[-1].source_key == "k0024"
    assert chunks[0].total_bytes == sum(range(10))
    assert out[-1] == PartitionEnd("p3", Cursor("k0024", 3, 0))


def test_filtered_entries_are_counted_up_to_each_cursor() -> None:
    entries = [*_entries(12), ("k9998", None), ("k9999", ListedObject("k9999", 0, '"x"'))]
    odd = _plan(chunk_size=3, accepts=lambda obj: obj.size % 2 == 1)
    out = list(plan_partition(entries, "f0", odd))
    chunks = _chunks(out)
    assert [[i.source_key for i in c.items] for c in chunks] == [
        ["k0001", "k0003", "k0005"],
        ["k0007", "k0009", "k0011"],
    ]
    # k0000, k0002, k0004 filtered before k0005; six before k0011; then two more at the end.
    assert chunks[0].cursor.filtered == 3
    assert chunks[1].cursor.filtered == 6
    assert out[-1] == PartitionEnd("f0", Cursor("k9999", 2, 8))


def test_planning_from_a_cursor_reproduces_the_same_chunks() -> None:
    first = _chunks(list(plan_partition(_entries(30), "p0", _plan())))
    cursor = first[0].cursor
    resumed_entries = [e for e in _entries(30) if str(e[0]) > str(cursor.position)]
    resumed = _chunks(list(plan_partition(resumed_entries, "p0", _plan(), cursor)))
    assert resumed == first[1:]


def test_an_empty_partition_only_ends() -> None:
    assert list(plan_partition([], "p1", _plan(), Cursor("a", 4, 2))) == [
        PartitionEnd("p1", Cursor("a", 4, 2))
    ]


def test_missing_objects_are_marked_by_their_index_in_the_chunk() -> None:
    entries: list[Entry] = [
        (0, ListedObject("a", 1, '"e"')),
        (1, ListedObject("b", 0, None, missing=True)),
    ]
    (chunk,) = _chunks(list(plan_partition(entries, "f2", _plan())))
    assert chunk.missing == (1,)
    assert chunk.cursor.position == 1


def test_chunks_are_emitted_before_the_listing_ends() -> None:
    def entries() -> Iterator[Entry]:
        yield from _entries(10)
        raise AssertionError("the first chunk should be out before more is read")

    chunks = plan_partition(entries(), "p0", _plan())
    assert len(next(chunks).items) == 10  # type: ignore[union-attr]
