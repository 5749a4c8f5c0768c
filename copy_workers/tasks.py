"""Celery tasks: thin adapters that decode a message and hand it to the worker process.

A chunk task takes its chunk (a lease, checked against what the run dispatched), admits it to
the process's engine, and returns once the process has room for another: the engine copies in
the background, and the lease, not Celery's acknowledgement, keeps the chunk safe from here
(see ``copy_core.runs.leases``). The task that lists a run in the pool is in ``listing_task``,
the one module of the worker that imports the control plane.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from typing import Any, TypeVar

from celery import Task
from celery.exceptions import Reject
from celery.signals import worker_process_init, worker_process_shutdown

from copy_core import logs
from copy_core.broker import send_task
from copy_core.contract import (
    PARTS_TASK_NAME,
    TASK_NAME,
    ContractError,
    PartsMessage,
    decode_chunk,
)
from copy_workers import metrics, shutdown
from copy_workers.celery_app import app, settings
from copy_workers.process import WorkerProcess

log = logging.getLogger(__name__)

M = TypeVar("M")
# What a take's verdict means for the message (acknowledged in every case).
_OUTCOMES = {
    "taken": "admitted",
    "done": "duplicate",
    "held": "duplicate",
    "ended": "ended",
    "unknown": "rejected",
    "forged": "rejected",
}


def send(name: str, kwargs: dict[str, Any], label: str) -> None:
    """Send a task of the pool by name, riding out a full or restarting Redis."""
    send_task(app, name, kwargs, label)


PROCESS = WorkerProcess(settings, send, metrics.OBSERVER)


@app.task(bind=True, name=TASK_NAME)
def copy_chunk_task(self: Task[Any, Any], chunk: dict[str, Any]) -> str:
    """Take one chunk of a run and admit it to this process's engine."""
    received = _decoded(decode_chunk, chunk, "chunk")
    with logs.bound(received.run_id, received.chunk_id):
        try:
            verdict = PROCESS.take_chunk(received)
        except ContractError as exc:
            metrics.CHUNKS.labels("rejected").inc()
            log.error("rejected chunk", extra={"reason": str(exc)})
            raise Reject(str(exc), requeue=False) from exc
        outcome = _OUTCOMES.get(verdict, "rejected")
        metrics.CHUNKS.labels(outcome).inc()
        if outcome == "rejected":
            # Not what the run dispatched (or no such run): nothing of it is copied.
            log.error("rejected chunk", extra={"verdict": verdict})
        elif outcome != "admitted":
            log.info("chunk not taken", extra={"verdict": verdict})
    return outcome


@app.task(bind=True, name=PARTS_TASK_NAME)
def copy_parts_task(self: Task[Any, Any], parts: dict[str, Any]) -> str:
    """Copy a batch of parts of a split object; the last batch completes and records it."""
    message = _decoded(PartsMessage.from_wire, parts, "parts")
    with logs.bound(message.run_id, message.chunk_id):
        return PROCESS.run_batch(message, lambda done: metrics.OBSERVER.recorded(done.added))


def _decoded(from_wire: Callable[[Mapping[str, Any]], M], raw: Any, kind: str) -> M:
    """The task's message; a malformed one is rejected, not retried: it never gets better."""
    try:
        if not isinstance(raw, Mapping):
            raise ContractError(f"a {kind} message is an object")
        return from_wire(raw)
    except ContractError as exc:
        metrics.CHUNKS.labels("rejected").inc()
        log.error(f"rejected malformed {kind} message", extra={"reason": str(exc)})
        raise Reject(str(exc), requeue=False) from exc


@worker_process_init.connect
def _start_keeper(**_: object) -> None:
    """A new pool process: it counts in the pool's capacity from now on."""
    PROCESS.keeper.start()


@worker_process_shutdown.connect
def _drain(**_: object) -> None:
    """A pool process stops: finish the chunks it holds, or give them back."""
    if not PROCESS.shutdown():
        shutdown.mark_undrained()
