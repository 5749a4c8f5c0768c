"""Chunk planning: pure functions from listed objects to chunks of copy items."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass

from copy_control.listing import ListedObject
from copy_workers.contract import CopyItem


@dataclass(frozen=True)
class PlannedChunk:
    """A chunk ready to dispatch. ``last_key`` is the resume cursor once it is sent."""

    chunk_id: str
    items: tuple[CopyItem, ...]

    @property
    def last_key(self) -> str:
        return self.items[-1].source_key

    @property
    def total_bytes(self) -> int:
        return sum(item.size for item in self.items)


def plan_chunks(
    pages: Iterable[list[ListedObject]],
    dest_for: Callable[[str], str],
    chunk_size: int,
    first_chunk: int = 0,
) -> Iterator[PlannedChunk]:
    """Group listed objects into chunks of ``chunk_size`` as pages arrive.

    Chunk ids are sequence numbers, so the same listing from the same cursor always yields
    the same chunks: what makes a resumed dispatch idempotent.
    """
    buffer: list[CopyItem] = []
    number = first_chunk
    for page in pages:
        for obj in page:
            item = CopyItem(obj.key, dest_for(obj.key), obj.size, obj.etag, obj.storage_class)
            buffer.append(item)
            if len(buffer) == chunk_size:
                yield PlannedChunk(str(number), tuple(buffer))
                buffer, number = [], number + 1
    if buffer:
        yield PlannedChunk(str(number), tuple(buffer))
