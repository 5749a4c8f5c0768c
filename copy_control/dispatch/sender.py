"""Sending a run's chunks to the worker pool by task name, in an order that makes resuming safe."""

from __future__ import annotations

from typing import TYPE_CHECKING

from copy_control.dispatch.admission import Admission
from copy_control.dispatch.listing_log import ListingLog
from copy_control.dispatch.planning import PartitionEnd, PlannedChunk
from copy_core.broker import send_task
from copy_core.contract import TASK_NAME, ChunkRef, items_wire
from copy_core.runs.store import RunStore

if TYPE_CHECKING:
    from celery import Celery


class ChunkSender:
    """Registers and sends chunks to the worker pool by task name; then saves the cursor.

    Each chunk waits for room in the run's window first (``Admission``: back-pressure and
    fair share). Registration keeps the chunk's items in the run store, and the message only
    names the chunk (``ChunkRef``). Registration comes first and the cursor last, so a
    dispatcher that dies in between sends the same chunk (same id, same keys) again on resume,
    and the run counts it once.
    """

    def __init__(
        self,
        app: Celery,
        store: RunStore,
        run_id: str,
        log: ListingLog,
        admission: Admission | None = None,
    ) -> None:
        self._app, self._store, self._run_id, self._log = app, store, run_id, log
        self._admission = admission
        self.sent = 0

    def chunk(self, chunk: PlannedChunk) -> bool:
        if self._admission is not None:
            self._admission.wait()
        registered = self._store.register_chunk(
            self._run_id,
            chunk.chunk_id,
            len(chunk.items),
            chunk.total_bytes,
            items=items_wire(chunk.items),
        )
        if registered < 0:
            return False
        ref = ChunkRef(self._run_id, chunk.chunk_id)
        send_task(self._app, TASK_NAME, {"chunk": ref.to_wire()}, ref.label)
        self._log.save_cursor(chunk.partition, chunk.cursor, done=False)
        self.sent += 1
        return True

    def partition_end(self, end: PartitionEnd) -> None:
        self._log.save_cursor(end.partition, end.cursor, done=True)
