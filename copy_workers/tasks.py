"""Celery tasks: thin adapters that decode a chunk message and hand it to the engine."""

from __future__ import annotations

import functools
import logging
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from celery import Task
from celery.exceptions import Reject

from copy_workers import logs, metrics
from copy_workers.aws import ClientFactory
from copy_workers.celery_app import app, settings
from copy_workers.contract import TASK_NAME, ChunkMessage, ContractError
from copy_workers.engine import ChunkIncomplete, copy_chunk
from copy_workers.runstate import RunStore, connect
from copy_workers.s3copy import ObjectCopier
from copy_workers.sides import CopyClients
from copy_workers.stream import BufferBudget
from copy_workers.throttle import AdaptiveLimit

log = logging.getLogger(__name__)


@functools.cache
def _store() -> RunStore:
    return RunStore(connect(settings.redis_url), ttl_s=settings.run_ttl_s)


@functools.cache
def _limit() -> AdaptiveLimit:
    """Copies in flight in this process: fewer while S3 throttles (see throttle.py)."""
    return AdaptiveLimit(settings.keys_in_flight)


@functools.cache
def _clients() -> ClientFactory:
    return ClientFactory(
        max_pool_connections=settings.max_pool_connections,
        max_attempts=settings.max_attempts,
        retry_mode=settings.retry_mode,
        refresh_margin_s=settings.credential_refresh_margin_s,
        on_throttle=_limit().throttled,
    )


@functools.cache
def _buffers() -> BufferBudget:
    """Streamed copies hold at most this many part buffers in memory per process."""
    return BufferBudget(settings.stream_buffers)


@functools.cache
def _parts_pool() -> ThreadPoolExecutor:
    """Parts of multipart copies, shared by every key of this process (bounded)."""
    return ThreadPoolExecutor(settings.part_concurrency, thread_name_prefix="part")


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
        clients = CopyClients.for_job(message.job, _clients())
        copier = ObjectCopier(clients, message.job, _parts_pool(), _buffers())
        with logs.bound(message.run_id, message.chunk_id):
            result = copy_chunk(
                message,
                copier.copy,
                _store(),
                settings,
                final_attempt=final,
                observer=metrics.OBSERVER,
                limit=_limit(),
            )
    return result.to_wire()
