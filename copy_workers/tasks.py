"""Celery tasks: thin adapters that decode a message and hand it to the engine.

The task that lists a run in the pool is in ``listing_task``, the one module of the worker that
imports the control plane.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from typing import Any, TypeVar

from celery import Task
from celery.exceptions import Reject

from copy_core import logs
from copy_core.contract import (
    PARTS_TASK_NAME,
    QUEUE,
    TASK_NAME,
    ChunkMessage,
    ContractError,
    PartsMessage,
)
from copy_workers import metrics
from copy_workers.celery_app import app, settings
from copy_workers.engine import ChunkIncomplete, copy_chunk
from copy_workers.process import WorkerProcess
from copy_workers.s3.split import BatchIncomplete

log = logging.getLogger(__name__)

M = TypeVar("M")


def _send_parts(message: PartsMessage) -> None:
    app.send_task(
        PARTS_TASK_NAME,
        kwargs={"parts": message.to_wire()},
        queue=QUEUE,
        argsrepr="()",
        kwargsrepr=message.label,
    )


PROCESS = WorkerProcess(settings, _send_parts)


# Celery's own retries for a task whose keys (or parts) are not all finished: exponential
# backoff with jitter, redelivered to any worker of the pool.
TASK_RETRIES: dict[str, Any] = {
    "max_retries": settings.chunk_retries,
    "retry_backoff": 5,
    "retry_backoff_max": 300,
    "retry_jitter": True,
}


@app.task(bind=True, name=TASK_NAME, autoretry_for=(ChunkIncomplete,), **TASK_RETRIES)
def copy_chunk_task(self: Task[Any, Any], chunk: dict[str, Any]) -> dict[str, Any]:
    """Copy one chunk of a run. Safe to run twice: already recorded keys are skipped."""
    with metrics.chunk_running():
        message = _decoded(ChunkMessage.from_wire, chunk, "chunk")
        final = _final_attempt(self)
        with logs.bound(message.run_id, message.chunk_id):
            copier = PROCESS.copier(message.job)
            result = copy_chunk(
                message,
                copier.copy,
                PROCESS.store,
                settings,
                final_attempt=final,
                observer=metrics.OBSERVER,
                limit=PROCESS.limit,
                lane=PROCESS.lane(message),
                split_starter=PROCESS.split_starter(copier),
            )
    return result.to_wire()


@app.task(bind=True, name=PARTS_TASK_NAME, autoretry_for=(BatchIncomplete,), **TASK_RETRIES)
def copy_parts_task(self: Task[Any, Any], parts: dict[str, Any]) -> str:
    """Copy a batch of parts of a split object; the last batch completes and records it."""
    message = _decoded(PartsMessage.from_wire, parts, "parts")
    final = _final_attempt(self)
    with logs.bound(message.run_id, message.chunk_id):
        copier = PROCESS.batch_copier(message, lambda done: metrics.OBSERVER.recorded(done.added))
        return copier.run(message, final_attempt=final)


def _decoded(from_wire: Callable[[Mapping[str, Any]], M], raw: dict[str, Any], kind: str) -> M:
    """The task's message; a malformed one is rejected, not retried: it never gets better."""
    try:
        return from_wire(raw)
    except ContractError as exc:
        log.error(f"rejected malformed {kind} message", extra={"reason": str(exc)})
        raise Reject(str(exc), requeue=False) from exc


def _final_attempt(task: Task[Any, Any]) -> bool:
    """Whether this delivery is Celery's last retry: transient failures are then final."""
    return task.request.retries >= (task.max_retries or 0)
