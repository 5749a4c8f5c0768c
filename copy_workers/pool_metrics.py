"""The pool's state as Prometheus metrics, read from Redis when Prometheus scrapes a worker.

Counters of copies live in each worker (``metrics``); what belongs to the pool as a whole is
read here at scrape time: its live processes and capacity, the runs in it, and per active run
its progress and its chunks waiting in the queue. Every worker serves the same pool figures,
so queries take ``max by (run_id)``; the ``run_id`` label is bounded to the ``MAX_RUNS``
newest active runs (``s3fanout_runs_omitted`` counts the others), so series come and go with
runs and never pile up.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable

import redis
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from copy_core.pool import PoolRegistry
from copy_core.runs.census import RunState, read_runs

log = logging.getLogger(__name__)

MAX_RUNS = 50

_RUN_GAUGES = {
    "s3fanout_run_objects_listed": (
        "Keys the run has listed and dispatched so far.",
        "objects_listed",
    ),
    "s3fanout_run_objects_done": ("Keys of the run with a final outcome.", "objects_done"),
    "s3fanout_run_objects_failed": ("Keys of the run that failed.", "objects_failed"),
    "s3fanout_run_bytes_copied": ("Bytes the run has copied.", "bytes_copied"),
    "s3fanout_run_chunks_in_pool": ("Chunks of the run sent and not done.", "chunks_in_pool"),
    "s3fanout_run_chunks_queued": ("Chunks of the run sent and not yet taken.", "chunks_queued"),
    "s3fanout_run_weight": ("The run's weight (its priority) in the pool's shares.", "weight"),
    "s3fanout_run_queue_oldest_seconds": (
        "How long the run's oldest chunk sent and not yet taken has waited.",
        "oldest_queued_s",
    ),
    "s3fanout_run_created_timestamp_seconds": ("When the run was created.", "created"),
    "s3fanout_run_progress_timestamp_seconds": (
        "When an outcome of the run was last recorded (its creation, before the first).",
        "progressed",
    ),
}


class PoolStateCollector(Collector):
    """Pool-wide and per-run gauges, read from Redis at scrape time."""

    def __init__(self, redis_url: str, timeout_s: float = 2.0) -> None:
        # Short timeouts and no retries: a scrape must not hang on a Redis that is away.
        self._client = redis.Redis.from_url(
            redis_url,
            socket_timeout=timeout_s,
            socket_connect_timeout=timeout_s,
            decode_responses=True,
        )

    def describe(self) -> Iterable[Metric]:
        return []  # read at scrape time only: registering must not touch Redis

    def collect(self) -> Iterable[Metric]:
        try:
            pool = PoolRegistry(self._client)
            processes = pool.live_processes()
            active = pool.active_runs()
            newest = sorted(active, key=lambda r: r.run_id)[-MAX_RUNS:]
            states = read_runs(self._client, [r.run_id for r in newest])
        except redis.RedisError as exc:
            log.warning("pool state unavailable", extra={"error": str(exc)})
            return []  # absent rather than wrong: alert on absent() if it matters
        capacity = sum(int(info.get("slots", 1)) for info in processes.values())
        omitted = len(active) - len(newest)
        return self._families((states, len(processes), capacity, len(active), omitted))

    @staticmethod
    def _families(reading: tuple[dict[str, RunState], int, int, int, int]) -> list[Metric]:
        states, processes, capacity, active, omitted = reading
        pool = [
            (
                "s3fanout_pool_processes",
                "Worker processes of the pool alive (heartbeats).",
                processes,
            ),
            (
                "s3fanout_pool_capacity_chunks",
                "Chunks the pool's live processes take at once.",
                capacity,
            ),
            ("s3fanout_runs_active", "Runs with work in the pool.", active),
            ("s3fanout_runs_omitted", "Active runs beyond the ones exported by run_id.", omitted),
        ]
        families: list[Metric] = []
        for name, text, value in pool:
            family = GaugeMetricFamily(name, text)
            family.add_metric([], value)
            families.append(family)
        oldest = GaugeMetricFamily(
            "s3fanout_queue_oldest_seconds",
            "How long the oldest chunk sent and not yet taken, of any run, has waited.",
        )
        oldest.add_metric([], max((s.oldest_queued_s for s in states.values()), default=0.0))
        families.append(oldest)
        for name, (text, field) in _RUN_GAUGES.items():
            family = GaugeMetricFamily(name, text, labels=["run_id"])
            for state in states.values():
                family.add_metric([state.run_id], _value(state, field))
            families.append(family)
        return families


def _value(state: RunState, field: str) -> float:
    if field == "created":
        return state.created_at
    if field == "progressed":
        return state.progressed_at or state.created_at
    return float(getattr(state, field))
