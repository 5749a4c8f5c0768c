"""A run's bound of chunks in the pool: back-pressure on its listing, and its fair share.

Every run keeps at most ``window`` chunks in the pool (sent and not done: queued in the broker,
held by a worker, or given back for a retry). The windows of the runs in the pool are shares
of its capacity, the chunks its live worker processes take at a time, in proportion to their
weights (their priorities), plus one chunk of headroom each. So:

- the broker holds about one round of chunks per run, whatever a run's size: Redis memory
  grows with chunks in flight, not keys, and a listing of fifty million keys pauses, its
  cursors saved, until the run's chunks finish;
- a run started beside a large one waits behind the large one's share of the queue, not its
  backlog, and workers serve the runs in proportion to their weights; every run keeps at least
  ``MIN_WINDOW`` chunks in the pool, so a low-priority run still moves.

The dispatcher waits here before each chunk (``wait``), woken by the chunk-done channel the run
store publishes on. Windows are read again every ``REFRESH_S``, as runs and workers come and go.
"""

from __future__ import annotations

import contextlib
import math
import time
from collections.abc import Callable
from types import TracebackType

import redis

from copy_core.pool import PoolRegistry
from copy_core.runs.keys import RunKeys
from copy_core.runs.store import RunStore

MIN_WINDOW = 2
HEADROOM = 1
REFRESH_S = 1.0
_WAKE_S = 0.5


def window_for(weight: int, total_weight: int, capacity: int) -> int:
    """The chunks a run of ``weight`` may keep in a pool of ``capacity`` (pure)."""
    if capacity <= 0 or total_weight <= 0:
        return MIN_WINDOW
    share = capacity * weight / max(total_weight, weight)
    return max(MIN_WINDOW, math.ceil(share) + HEADROOM)


class Admission:
    """Waits until run ``run_id`` has room for another chunk in the pool."""

    def __init__(
        self,
        store: RunStore,
        run_id: str,
        weight: int,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._store = store
        self._pool = PoolRegistry(store.client)
        self._run_id = run_id
        self._weight = weight
        self._clock = clock
        self._window = MIN_WINDOW
        self._read_at: float | None = None
        self._pubsub = store.client.pubsub(ignore_subscribe_messages=True)  # type: ignore[no-untyped-call]
        self.waited_s = 0.0

    def __enter__(self) -> Admission:
        # Without the channel (Redis away), waits just poll: the readings decide.
        with contextlib.suppress(redis.RedisError, OSError):
            self._pubsub.subscribe(RunKeys(self._run_id).chunk_done_channel)
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._pubsub.close()

    def window(self) -> int:
        """The run's window now (read again at most every ``REFRESH_S``)."""
        now = self._clock()
        if self._read_at is None or now - self._read_at >= REFRESH_S:
            runs = self._pool.active_runs()
            # The run's own weight as stored: ``s3fanout limit --priority`` may change it.
            own = next((r.weight for r in runs if r.run_id == self._run_id), self._weight)
            total = sum(run.weight for run in runs if run.run_id != self._run_id) + own
            self._window = window_for(own, total, self._pool.capacity())
            self._read_at = now
        return self._window

    def wait(self) -> None:
        """Return once the run keeps fewer chunks in the pool than its window."""
        started = self._clock()
        while self._store.outstanding(self._run_id) >= self.window():
            try:
                self._pubsub.get_message(timeout=_WAKE_S)
            except (redis.RedisError, OSError):
                time.sleep(_WAKE_S)
        self.waited_s += self._clock() - started
