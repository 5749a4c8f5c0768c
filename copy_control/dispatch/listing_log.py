"""The listing's partitions and cursors, kept with the run in Redis.

The run's listing hash (``RunKeys.listing``) holds two fields per partition:
``<pid>:spec`` (what the partition is: a key range, a manifest file) and ``<pid>:cursor``
(``{"position", "next_chunk", "filtered", "done"}``, written after each chunk is sent). A
resumed dispatcher reads them back and goes on from each cursor; the run hash's
``objects_filtered`` is set (not incremented) to the sum of the cursors' counts with each
write, so it is exact whatever was repeated.
"""

from __future__ import annotations

import json
from collections.abc import Sequence

from copy_control.listing.partitions import Cursor, Partition
from copy_core.runs.store import RunStore

_SPEC, _CURSOR = ":spec", ":cursor"


class ListingLog:
    """The partitions of one run, as stored in Redis."""

    def __init__(self, store: RunStore, run_id: str) -> None:
        self._store = store
        self._run_id = run_id
        self._filtered: dict[str, int] = {}

    def load(self) -> list[Partition]:
        """The recorded partitions with their cursors (empty if none were recorded)."""
        fields = self._store.listing(self._run_id)
        partitions = []
        for name, value in fields.items():
            if not name.endswith(_SPEC):
                continue
            pid = name[: -len(_SPEC)]
            raw = json.loads(fields.get(pid + _CURSOR, "{}"))
            cursor = Cursor(raw.get("position"), raw.get("next_chunk", 0), raw.get("filtered", 0))
            partitions.append(Partition(pid, json.loads(value), cursor, bool(raw.get("done"))))
            self._filtered[pid] = cursor.filtered
        return sorted(partitions, key=lambda partition: (len(partition.pid), partition.pid))

    def save_partitions(self, partitions: Sequence[Partition]) -> None:
        fields = {partition.pid + _SPEC: json.dumps(partition.spec) for partition in partitions}
        self._store.save_listing(self._run_id, fields)

    def save_cursor(self, pid: str, cursor: Cursor, done: bool) -> None:
        """Record a partition's cursor (after its chunk was sent) and the filtered total."""
        self._filtered[pid] = cursor.filtered
        record = {
            "position": cursor.position,
            "next_chunk": cursor.next_chunk,
            "filtered": cursor.filtered,
            "done": done,
        }
        self._store.save_listing(
            self._run_id,
            {pid + _CURSOR: json.dumps(record)},
            {"objects_filtered": sum(self._filtered.values())},
        )


class MemoryLog:
    """A log that keeps nothing: for a dry run, which writes nothing anywhere."""

    def save_partitions(self, partitions: Sequence[Partition]) -> None:
        pass
