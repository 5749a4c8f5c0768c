"""A run's rate caps, as one worker process spends them: tokens from Redis, in small batches.

Every S3 request of a capped run (the fast lane's and the threaded path's) first takes a
request token, and every copy its object's bytes, from ``RateGate``. The gate asks the run's
shared buckets (``copy_core.runs.rates``) for a batch at a time, so a busy process talks to
Redis a few dozen times a second rather than per request, and drops tokens it has held for
``HOLD_S`` (the buckets are sized for tokens spent that soon). A run without caps costs one
Redis read every ``CAPS_EVERY_S``: its caps can be set while it runs (``s3fanout limit``).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

from copy_core.runs.rates import RateStore

HOLD_S = 0.05
CAPS_EVERY_S = 2.0
BATCH_MAX = 64


class RateGate:
    """One run's caps in this process."""

    def __init__(
        self, rates: RateStore, run_id: str, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._rates = rates
        self._run_id = run_id
        self._clock = clock
        self._lock = threading.Lock()
        self._requests = 0
        self._bytes = 0
        self._got_at = -HOLD_S
        self._not_before = 0.0
        self._capped: bool | None = None
        self._caps_read_at = -CAPS_EVERY_S
        self._batch = 1
        self.waited_s = 0.0

    def try_take(self, requests: int = 1, n_bytes: int = 0) -> float:
        """0 if the request may go now (tokens taken), else how long to wait before trying."""
        with self._lock:
            now = self._clock()
            if not self._is_capped(now):
                return 0.0
            if now - self._got_at > HOLD_S:
                self._requests, self._bytes = 0, 0
            if requests == 0 and n_bytes == 0:
                return 0.0
            if self._requests >= requests and (n_bytes == 0 or self._bytes >= n_bytes):
                self._spend(requests, n_bytes)
                return 0.0
            if now < self._not_before:
                return self._not_before - now
            wanted = max(requests, self._batch) if requests else 0
            grant = self._rates.take(self._run_id, wanted, max(n_bytes - self._bytes, 0))
            self._got_at = now
            self._requests += grant.requests
            self._bytes += grant.bytes
            if self._requests >= requests and (n_bytes == 0 or self._bytes >= n_bytes):
                self._batch = min(BATCH_MAX, self._batch * 2)
                self._spend(requests, n_bytes)
                return 0.0
            self._batch = max(1, self._batch // 2)
            self._not_before = now + grant.wait_s
            return grant.wait_s

    def take(
        self, requests: int = 1, n_bytes: int = 0, sleep: Callable[[float], None] = time.sleep
    ) -> None:
        """Take tokens, waiting for them (the threaded path)."""
        while (wait := self.try_take(requests, n_bytes)) > 0:
            self.waited_s += wait
            sleep(wait)

    def _spend(self, requests: int, n_bytes: int) -> None:
        self._requests -= requests
        self._bytes = max(self._bytes - n_bytes, 0)

    def _is_capped(self, now: float) -> bool:
        if self._capped is None or now - self._caps_read_at >= CAPS_EVERY_S:
            caps = self._rates.caps(self._run_id)
            self._capped = bool(caps.requests_per_second or caps.bytes_per_second)
            self._caps_read_at = now
        return self._capped


class RateGates:
    """The gates of the runs this process works for (few at a time; kept while in use)."""

    def __init__(self, rates: RateStore) -> None:
        self._rates = rates
        self._gates: dict[str, RateGate] = {}
        self._lock = threading.Lock()

    def gate(self, run_id: str) -> RateGate:
        with self._lock:
            gate = self._gates.get(run_id)
            if gate is None:
                gate = self._gates[run_id] = RateGate(self._rates, run_id)
                if len(self._gates) > 256:  # runs come and go: keep the newest
                    self._gates.pop(next(iter(self._gates)))
            return gate
