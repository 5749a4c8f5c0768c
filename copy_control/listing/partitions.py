"""A run's listing as partitions: what each one is, and how far it got.

A partition is a key range of a prefix, a data file of a manifest, or the one key of a
single-object copy. Its entries arrive in a fixed order, each with a *position* (the key for a
listing, the row number for a manifest); its cursor says how far it was planned. Both are
stored with the run (``copy_control.dispatch.listing_log``), so a resumed run reads the same
partitions from the same places.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from copy_control.listed import ListedObject

Position = str | int
Entry = tuple[Position, ListedObject | None]  # None: an entry that is not an object to copy


@dataclass(frozen=True)
class Cursor:
    """How far a partition got: its last position, its next chunk number, entries filtered."""

    position: Position | None = None
    next_chunk: int = 0
    filtered: int = 0


@dataclass
class Partition:
    """One partition of a run: its id, its spec, how far it got, and whether it is done."""

    pid: str
    spec: dict[str, Any]
    cursor: Cursor = field(default_factory=Cursor)
    done: bool = False
    pages: int = 0  # full pages listed since it was created or last split (not stored)
