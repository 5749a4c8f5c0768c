"""Chunk planning: pure functions from the entries of one partition to chunks of copy items.

A partition is a key range of a prefix, a data file of a manifest, or the one key of a
single-object copy. Its entries arrive in a fixed order, each with a *position* (the key for a
listing, the row number for a manifest), so a partition read again from a saved cursor yields
the same chunks with the same ids (``<partition>-<n>``): what makes a resumed dispatch
idempotent. The cursor also carries how many entries the selection left out up to it, so the
``objects_filtered`` counter is exact across resumes.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass

from copy_control.listed import ListedObject
from copy_control.listing.partitions import Cursor, Entry
from copy_core.contract import CopyItem


@dataclass(frozen=True)
class PlannedChunk:
    """A chunk ready to dispatch; ``cursor`` is the partition's cursor once it is sent."""

    chunk_id: str
    items: tuple[CopyItem, ...]
    partition: str = ""
    cursor: Cursor = Cursor()
    missing: tuple[int, ...] = ()  # items whose source HeadObject found nothing (manifest rows)

    @property
    def total_bytes(self) -> int:
        return sum(item.size for item in self.items)


@dataclass(frozen=True)
class PartitionEnd:
    """Every entry of the partition is planned; ``cursor`` is its final cursor."""

    partition: str
    cursor: Cursor


@dataclass(frozen=True)
class Plan:
    """What turns listed objects into chunks: the selection, the key mapping, the chunk size."""

    accepts: Callable[[ListedObject], bool]
    dest_for: Callable[[str], str]
    chunk_size: int


def plan_partition(
    entries: Iterable[Entry], partition: str, plan: Plan, start: Cursor = Cursor()
) -> Iterator[PlannedChunk | PartitionEnd]:
    """Group a partition's selected objects into chunks as entries arrive, then say it ended."""
    buffer: list[CopyItem] = []
    missing: list[int] = []
    number, filtered, position = start.next_chunk, start.filtered, start.position
    for position, entry in entries:
        versions = () if entry is None else entry.versions
        accepted = [obj for obj in versions if plan.accepts(obj)]
        filtered += max(len(versions), 1) - len(accepted)
        for obj in accepted:
            if obj.missing:
                missing.append(len(buffer))
            buffer.append(_item(obj, plan))
        # A key's versions stay in one chunk (the worker copies them in order), so a chunk
        # ends at an entry and may hold more than chunk_size items when a key has many.
        if len(buffer) >= plan.chunk_size:
            cursor = Cursor(position, number + 1, filtered)
            yield _chunk(partition, number, buffer, cursor, missing)
            buffer, missing, number = [], [], number + 1
    if buffer:
        # The partition's last chunk: its cursor is past every entry, including those
        # filtered after its last item, which it counts.
        cursor = Cursor(position, number + 1, filtered)
        yield _chunk(partition, number, buffer, cursor, missing)
        number += 1
    yield PartitionEnd(partition, Cursor(position, number, filtered))


def _item(obj: ListedObject, plan: Plan) -> CopyItem:
    dest = plan.dest_for(obj.key)
    return CopyItem(
        obj.key, dest, obj.size, obj.etag, obj.storage_class, obj.version_id, obj.delete_marker
    )


def _chunk(
    partition: str, number: int, items: list[CopyItem], cursor: Cursor, missing: list[int]
) -> PlannedChunk:
    return PlannedChunk(f"{partition}-{number}", tuple(items), partition, cursor, tuple(missing))
