"""Celery tasks: thin adapters that decode a chunk message and hand it to the engine."""

from __future__ import annotations

import logging
from typing import Any

from celery import Task
from celery.exceptions import Reject

from copy_workers import logs, metrics
from copy_workers.celery_app import app, settings
from copy_workers.contract import TASK_NAME, ChunkMessage, ContractError
from copy_workers.engine import ChunkIncomplete, copy_chunk
from copy_workers.process import WorkerProcess

log = logging.getLogger(__name__)


PROCESS = WorkerProcess(settings)


@app.task(
    bind=True,
    name=TASK_NAME,
    autoretry_for=(ChunkIncomplete,),
    max_retries=settings.chunk_retries,
    retry_backoff=5,
    retry_backoff_max=300,
    retry_jitter=True,
)
def copy_chunk_task(self: Task[Any, Any], chunk: dict[str, Any]) -> dict[str, Any]:
    """Copy one chunk of a run. Safe to run twice: already recorded keys are skipped."""
    with metrics.chunk_running():
        try:
            message = ChunkMessage.from_wire(chunk)
        except ContractError as exc:
            log.error("rejected malformed chunk message", extra={"reason": str(exc)})
            raise Reject(str(exc), requeue=False) from exc
        final = self.request.retries >= (self.max_retries or 0)
        with logs.bound(message.run_id, message.chunk_id):
            result = copy_chunk(
                message,
                PROCESS.copier(message).copy,
                PROCESS.store,
                settings,
                final_attempt=final,
                observer=metrics.OBSERVER,
                limit=PROCESS.limit,
                lane=PROCESS.lane(message),
            )
    return result.to_wire()
