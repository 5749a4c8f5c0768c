"""The listing's partitions and cursors, kept with the run in Redis, and the chunk sender.

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
from typing import TYPE_CHECKING

from copy_control.dispatch.planning import Cursor, PartitionEnd, PlannedChunk
from copy_control.listing.sources import Part
from copy_control.request import InvalidRequest
from copy_core.contract import QUEUE, TASK_NAME, ChunkMessage, CopyJob
from copy_core.runs.store import RunStore

if TYPE_CHECKING:
    from celery import Celery

_SPEC, _CURSOR = ":spec", ":cursor"


class ListingLog:
    """The partitions of one run, as stored in Redis."""

    def __init__(self, store: RunStore, run_id: str) -> None:
        self._store = store
        self._run_id = run_id
        self._filtered: dict[str, int] = {}

    def load(self) -> list[Part]:
        """The recorded partitions with their cursors (empty if none were recorded)."""
        fields = self._store.listing(self._run_id)
        parts = []
        for name, value in fields.items():
            if not name.endswith(_SPEC):
                continue
            pid = name[: -len(_SPEC)]
            raw = json.loads(fields.get(pid + _CURSOR, "{}"))
            cursor = Cursor(raw.get("position"), raw.get("next_chunk", 0), raw.get("filtered", 0))
            parts.append(Part(pid, json.loads(value), cursor, bool(raw.get("done"))))
            self._filtered[pid] = cursor.filtered
        return sorted(parts, key=lambda part: (len(part.pid), part.pid))

    def save_parts(self, parts: Sequence[Part]) -> None:
        fields = {part.pid + _SPEC: json.dumps(part.spec) for part in parts}
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

    def save_parts(self, parts: Sequence[Part]) -> None:
        pass


class ChunkSender:
    """Registers and sends chunks to the worker pool by task name; then saves the cursor.

    Registration comes first and the cursor last, so a dispatcher that dies in between sends
    the same chunk (same id, same keys) again on resume, and the run counts it once.
    """

    def __init__(
        self, app: Celery, store: RunStore, run_id: str, job: CopyJob, log: ListingLog
    ) -> None:
        self._app, self._store, self._run_id, self._job, self._log = app, store, run_id, job, log
        self.sent = 0

    def chunk(self, chunk: PlannedChunk) -> bool:
        registered = self._store.register_chunk(
            self._run_id, chunk.chunk_id, len(chunk.items), chunk.total_bytes
        )
        if registered < 0:
            return False
        message = ChunkMessage(self._run_id, chunk.chunk_id, self._job, chunk.items)
        self._app.send_task(
            TASK_NAME,
            kwargs={"chunk": message.to_wire()},
            queue=QUEUE,
            # Celery would otherwise repr every key for its logs (~40 ms per 1,000 keys).
            argsrepr="()",
            kwargsrepr=message.label,
        )
        self._log.save_cursor(chunk.partition, chunk.cursor, done=False)
        self.sent += 1
        return True

    def partition_end(self, end: PartitionEnd) -> None:
        self._log.save_cursor(end.partition, end.cursor, done=True)


def refuse_legacy(run_hash: dict[str, str], run_id: str) -> None:
    """A run dispatched by a version with one listing cursor cannot be resumed by this one."""
    if "next_chunk" in run_hash and run_hash.get("listing_done") != "1":
        raise InvalidRequest(
            f"run {run_id!r} was started by an earlier version of s3fanout (one listing "
            "cursor, no partitions): resume it with that version, or start a new run id"
        )
