"""Adaptive slow-down: fewer copies in flight while S3 throttles, more again when it stops.

botocore's "adaptive" retry mode is the library's answer, but against an endpoint answering a
fifth of requests with SlowDown its CUBIC rate limiter keeps cutting the send rate on every
throttled response until copying all but stops (docs/performance.md). This limiter is AIMD
on the number of copies in flight instead: each throttled response cuts the limit to 70%
(at most once per cooldown, since many copies in flight see the same burst), and every
success adds 1/limit, so the limit grows by about one per round of copies. botocore's
standard mode still retries each request; this only decides how many run at once.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


class AdaptiveLimit:
    """A semaphore whose size shrinks on throttling and grows back on success."""

    def __init__(
        self,
        maximum: int,
        minimum: int = 1,
        decrease: float = 0.7,
        cooldown_s: float = 0.5,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.maximum = maximum
        self.minimum = minimum
        self._decrease = decrease
        self._cooldown_s = cooldown_s
        self._clock = clock
        self._limit = float(maximum)
        self._in_flight = 0
        self._last_cut = -cooldown_s
        self._cond = threading.Condition()
        self.throttle_events = 0

    @property
    def limit(self) -> int:
        return max(self.minimum, int(self._limit))

    def run(self, operation: Callable[[], T]) -> T:
        """Run ``operation`` once a slot is free; its success widens the limit."""
        with self._cond:
            while self._in_flight >= self.limit:
                self._cond.wait()
            self._in_flight += 1
        ok = False
        try:
            result = operation()
            ok = True
            return result
        finally:
            self.release(succeeded=ok)

    def try_acquire(self) -> bool:
        """Take a slot if one is free now (for callers that cannot block)."""
        with self._cond:
            if self._in_flight >= self.limit:
                return False
            self._in_flight += 1
            return True

    def release(self, succeeded: bool) -> None:
        """Give a slot back; a success widens the limit by 1/limit."""
        with self._cond:
            self._in_flight -= 1
            if succeeded:
                self._limit = min(float(self.maximum), self._limit + 1.0 / self._limit)
            self._cond.notify_all()

    def throttled(self) -> None:
        """S3 said slow down: cut the limit, unless it was cut a moment ago."""
        with self._cond:
            now = self._clock()
            self.throttle_events += 1
            if now - self._last_cut < self._cooldown_s:
                return
            self._last_cut = now
            self._limit = max(float(self.minimum), self._limit * self._decrease)
