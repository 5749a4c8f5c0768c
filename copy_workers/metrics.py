"""Prometheus metrics of a worker: counted in the pool's processes, served by its main process.

Celery's prefork pool copies in child processes, so the metrics use prometheus_client's
multiprocess mode: each process writes its values to memory-mapped files in one directory
(``PROMETHEUS_MULTIPROC_DIR``, set by ``worker_main`` before anything imports
prometheus_client), and the main process serves their sum. Counters of a child that exited stay
in the sum; the in-flight gauge of a dead child is dropped (``mark_process_dead``).

Object and byte counters come from ``ChunkObserver.recorded``: outcomes counted in the run for
the first time, so a key delivered twice is counted once, by whichever worker recorded it. The
sum over all workers of a counter equals the sum over all runs of the summary field it mirrors.
No label carries a run id or a key: those would grow without bound.
"""

from __future__ import annotations

import collections
import logging
import os
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from wsgiref.simple_server import WSGIServer

import redis
from celery.signals import worker_process_init, worker_process_shutdown
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, start_http_server
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.multiprocess import MultiProcessCollector, mark_process_dead
from prometheus_client.registry import Collector

from copy_core.contract import QUEUE, KeyOutcome, KeyStatus
from copy_workers.engine import ChunkObserver
from copy_workers.pool_metrics import PoolStateCollector

log = logging.getLogger(__name__)

UNKNOWN_ERROR = "Unknown"  # what the run store counts a failure without a code as
_ERROR_CODE = re.compile(r"[A-Za-z0-9_.-]{1,64}")
# Seconds: a small object's CopyObject takes milliseconds, a multi-GiB multipart copy minutes.
LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 900)

OBJECTS = Counter(
    "s3fanout_objects",
    "Keys whose final outcome was recorded, once per key, by outcome.",
    ["outcome"],
)
BYTES_COPIED = Counter("s3fanout_bytes_copied", "Bytes of the objects recorded as copied.")
FAILURES = Counter(
    "s3fanout_failures",
    "Keys recorded as failed, by error code (S3's, or the client's).",
    ["error_code"],
)
RETRIES = Counter(
    "s3fanout_retries",
    "Retries spent on recorded keys: botocore's request retries plus whole-key retries.",
)
VERIFIED = Counter(
    "s3fanout_objects_verified", "Copies whose checksum or ETag matched the source's."
)
STREAMED = Counter(
    "s3fanout_objects_streamed", "Copies streamed through the worker instead of copied in S3."
)
COPY_SECONDS = Histogram(
    "s3fanout_copy_seconds",
    "Time to copy one key (one delivery of it, retries included), by outcome.",
    ["outcome"],
    buckets=LATENCY_BUCKETS,
)
CHUNKS = Counter(
    "s3fanout_chunks",
    "Chunk deliveries by what became of them: admitted (taken and copied), duplicate (done, "
    "or held by another live worker), ended (the run is over), rejected (not what the run "
    "dispatched, no such run, or not decodable).",
    ["result"],
)
CHUNKS_IN_FLIGHT = Gauge(
    "s3fanout_chunks_in_flight",
    "Chunks held now by the pool processes of this worker (being copied, or the next ones).",
    multiprocess_mode="livesum",
)

for _status in KeyStatus:
    OBJECTS.labels(_status.value)
for _status in (KeyStatus.COPIED, KeyStatus.SKIPPED, KeyStatus.FAILED):
    COPY_SECONDS.labels(_status.value)
for _result in ("admitted", "duplicate", "ended", "rejected"):
    CHUNKS.labels(_result)


def error_label(code: str | None) -> str:
    """The label of an error code: the code itself, or a fixed word for a missing or odd one."""
    if code is None:
        return UNKNOWN_ERROR
    return code if _ERROR_CODE.fullmatch(code) else "Other"


class MetricsObserver(ChunkObserver):
    """Counts what the engine reports. One instance serves every chunk of a process."""

    def __init__(self) -> None:
        # The histogram's child per status, looked up once: ``labels`` takes a lock and
        # builds a key, for every copied object otherwise.
        self._seconds: dict[KeyStatus, Any] = {}

    def key_finished(self, outcome: KeyOutcome, seconds: float) -> None:
        child = self._seconds.get(outcome.status)
        if child is None:
            child = self._seconds[outcome.status] = COPY_SECONDS.labels(outcome.status.value)
        child.observe(seconds)

    def recorded(self, outcomes: Sequence[KeyOutcome]) -> None:
        # Summed first: one write per counter per batch, not one per key.
        statuses = collections.Counter(o.status.value for o in outcomes)
        codes = collections.Counter(
            error_label(o.error_code) for o in outcomes if o.status is KeyStatus.FAILED
        )
        for status, count in statuses.items():
            OBJECTS.labels(status).inc(count)
        for code, count in codes.items():
            FAILURES.labels(code).inc(count)
        _inc(BYTES_COPIED, sum(o.size for o in outcomes if o.status is KeyStatus.COPIED))
        _inc(RETRIES, sum(o.retries for o in outcomes))
        _inc(VERIFIED, sum(1 for o in outcomes if o.verified))
        _inc(STREAMED, sum(1 for o in outcomes if o.streamed))

    def chunks_held(self, count: int) -> None:
        CHUNKS_IN_FLIGHT.set(count)


def _inc(counter: Counter, amount: int) -> None:
    if amount:
        counter.inc(amount)


OBSERVER = MetricsObserver()


# --- the main process: serving ---------------------------------------------------------------
class QueueDepthCollector(Collector):
    """``s3fanout_queue_depth``: chunks waiting in the queue, read from Redis at scrape time."""

    def __init__(self, redis_url: str, timeout_s: float = 2.0) -> None:
        # Short timeouts and no retries: a scrape must not hang on a Redis that is away.
        self._client = redis.Redis.from_url(
            redis_url, socket_timeout=timeout_s, socket_connect_timeout=timeout_s
        )

    def describe(self) -> Iterable[Metric]:
        return [self._family()]

    def collect(self) -> Iterable[Metric]:
        try:
            depth = int(self._client.llen(QUEUE))
        except redis.RedisError as exc:
            log.warning("queue depth unavailable", extra={"error": str(exc)})
            return []  # absent rather than wrong: alert on absent() if it matters
        family = self._family()
        family.add_metric([], depth)
        return [family]

    @staticmethod
    def _family() -> GaugeMetricFamily:
        return GaugeMetricFamily(
            "s3fanout_queue_depth",
            f"Chunks waiting in the Redis list {QUEUE!r}, not yet taken by any worker.",
        )


class PoolCollector(Collector):
    """The sum over every process's files; first drops the live gauges of vanished processes.

    A child that exits normally drops its own (``worker_process_shutdown``); one killed outright
    (the OOM killer, SIGKILL) cannot, so each scrape checks which writers are gone.
    """

    def __init__(self, directory: Path) -> None:
        self._directory = directory
        # prometheus_client.multiprocess is untyped: typed here, at the one place it is built.
        self._files: Collector = MultiProcessCollector(None, str(directory))  # type: ignore[no-untyped-call]

    def collect(self) -> Iterable[Metric]:
        for pid in dead_writers(self._directory):
            drop_live_gauges(pid, self._directory)
        return self._files.collect()


_LIVE_FILE = re.compile(r"gauge_live\w+_(\d+)\.db")


def dead_writers(directory: Path) -> set[int]:
    """Processes that left live-gauge files in ``directory`` and no longer exist."""
    pids = {int(m[1]) for p in directory.iterdir() if (m := _LIVE_FILE.fullmatch(p.name))}
    return {pid for pid in pids if not _alive(pid)}


def drop_live_gauges(pid: int, directory: Path) -> None:
    """Remove process ``pid``'s live-gauge files: its gauges leave the sum, its counters stay."""
    mark_process_dead(pid, str(directory))  # type: ignore[no-untyped-call]


def _alive(pid: int) -> bool:
    """Whether process ``pid`` exists.

    A pid reused by another process reads as alive until that one ends: a dead child's
    in-flight count then lingers as long, which is rare and harmless.
    """
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by someone else
        return True
    return True


@dataclass
class _Serving:
    """What the main process set up; pool children inherit it when they are forked."""

    directory: Path | None = None
    server: WSGIServer | None = None


_serving = _Serving()


def serve(address: str, port: int, directory: Path, redis_url: str) -> None:
    """Serve the aggregated metrics of ``directory`` on ``address:port`` (a daemon thread).

    Call it in the worker's main process, before the pool starts, with
    ``PROMETHEUS_MULTIPROC_DIR`` already set to ``directory``.
    """
    registry = CollectorRegistry()
    registry.register(PoolCollector(directory))
    registry.register(QueueDepthCollector(redis_url))
    registry.register(PoolStateCollector(redis_url))
    server, _thread = start_http_server(port, addr=address, registry=registry)
    _serving.directory, _serving.server = directory, server
    log.info("serving metrics", extra={"address": address, "port": port})


@worker_process_init.connect
def _forget_listening_socket(**_: object) -> None:
    """A pool child inherits the main process's listening socket by fork: close its copy."""
    if _serving.server is not None:
        _serving.server.socket.close()
        _serving.server = None


@worker_process_shutdown.connect
def _drop_live_gauges(pid: int | None = None, **_: object) -> None:
    """A pool child is exiting: its in-flight gauge must leave the sum (its counters stay)."""
    if _serving.directory is not None:
        drop_live_gauges(pid or os.getpid(), _serving.directory)
