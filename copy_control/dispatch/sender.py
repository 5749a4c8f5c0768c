"""Sending a run's chunks to the worker pool by task name, in an order that makes resuming safe."""

from __future__ import annotations

from typing import TYPE_CHECKING

from copy_control.dispatch.listing_log import ListingLog
from copy_control.dispatch.planning import PartitionEnd, PlannedChunk
from copy_core.contract import QUEUE, TASK_NAME, ChunkMessage, CopyJob
from copy_core.runs.store import RunStore

if TYPE_CHECKING:
    from celery import Celery


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
