"""Dispatch: hand chunks to the worker pool by task name, and remember how far it got."""

from __future__ import annotations

import logging

from celery import Celery

from copy_control.planning import PlannedChunk
from copy_workers.broker import celery_settings
from copy_workers.contract import QUEUE, TASK_NAME, ChunkMessage, CopyJob
from copy_workers.runstate import RunStore

log = logging.getLogger(__name__)


def producer_app(redis_url: str) -> Celery:
    """A Celery app that only sends: it never imports the worker's tasks."""
    app = Celery("s3fanout-control", set_as_current=False)
    app.conf.update(celery_settings(redis_url))
    return app


class Dispatcher:
    """Sends the chunks of one run, each exactly once as far as the run's counters go."""

    def __init__(self, app: Celery, store: RunStore, run_id: str, job: CopyJob) -> None:
        self._app = app
        self._store = store
        self._run_id = run_id
        self._job = job

    def send(self, chunk: PlannedChunk) -> bool:
        """Register and send ``chunk``; False if the run was cancelled and takes no more.

        Registration comes first and the cursor last, so a dispatcher that dies in between
        sends the same chunk again on resume, and the run counts it once.
        """
        registered = self._store.register_chunk(
            self._run_id, chunk.chunk_id, len(chunk.items), chunk.total_bytes
        )
        if registered < 0:
            return False
        message = ChunkMessage(self._run_id, chunk.chunk_id, self._job, chunk.items)
        self._app.send_task(TASK_NAME, kwargs={"chunk": message.to_wire()}, queue=QUEUE)
        self._store.save_cursor(self._run_id, chunk.last_key, int(chunk.chunk_id) + 1)
        return True
