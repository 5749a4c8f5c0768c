"""The window of copies in flight in one worker process: as many as latency needs, fewer while
S3 throttles.

Throughput is copies in flight divided by the time one takes, so at S3's tens to hundreds of
milliseconds a fixed window caps a worker whatever its CPU (and on a loopback store a large
one only queues at the server). The window therefore searches for its size:

- **slow start**: from ``initial``, it doubles every round (a round: as many completions as
  the window holds, about one request time) while the round's throughput grows by at least
  ``GAIN``; the first round that does not grow ends the search, and the window goes back to
  the size that reached the best throughput;
- **steady**: every ``PROBE_ROUNDS`` rounds it tries ``PROBE_STEP`` more, and keeps them only
  if throughput grew (latency that rises, or a store that got faster, are found again);
- only rounds in which some copy waited for a slot are judged: a round that had slots to
  spare measured the supply of work, not the window;
- **throttling** (S3's SlowDown): the window is cut to ``DECREASE`` of itself, at most once per
  cooldown (copies in flight see the same burst), and the search goes on from there.

botocore's "adaptive" retry mode is the library's answer to throttling, but against an endpoint
answering a fifth of requests with SlowDown its CUBIC rate limiter keeps cutting the send rate
until copying all but stops (docs/performance.md); this window acts on copies in flight
instead, and botocore's standard mode still retries each request.

``clock`` is injectable, so the behaviour is tested on a simulated store, never on time.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

GAIN = 1.10  # a round must be this much faster to count as growth
PROBE_ROUNDS = 8
PROBE_STEP = 0.25
DECREASE = 0.7


class AdaptiveWindow:
    """A semaphore whose size follows throughput (see the module's docstring)."""

    def __init__(
        self,
        maximum: int,
        initial: int = 32,
        minimum: int = 1,
        cooldown_s: float = 0.5,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.maximum = maximum
        self.minimum = minimum
        self._clock = clock
        self._cooldown_s = cooldown_s
        self._limit = float(max(minimum, min(initial, maximum)))
        self._cap = max(minimum, int(self._limit))  # ``limit`` as an int: read for every copy
        self._in_flight = 0
        # The lane takes and gives back a slot per copy: under the bare lock (a C context
        # manager), with the condition notified only when a threaded copy waits on it.
        self._mutex = threading.Lock()
        self._cond = threading.Condition(self._mutex)
        self._blocked = 0
        self._last_cut = -cooldown_s
        self._slow_start = True
        self._round_started = clock()
        self._round_done = 0
        self._rounds = 0
        self._best_rate = 0.0
        self._best_limit = self._limit
        self._probe_from: tuple[float, float] | None = None  # (limit, rate) before a probe
        self._wanted_more = False  # a copy waited for a slot in this round
        self.throttle_events = 0

    @property
    def limit(self) -> int:
        return self._cap

    @property
    def in_flight(self) -> int:
        return self._in_flight

    def try_acquire(self) -> bool:
        """Take a slot if one is free now (the fast lane cannot block)."""
        with self._mutex:
            if self._in_flight >= self._cap:
                self._wanted_more = True
                return False
            self._in_flight += 1
            return True

    def acquire(self) -> None:
        """Take a slot, waiting for one (the threaded path)."""
        with self._mutex:
            while self._in_flight >= self._cap:
                self._wanted_more = True
                self._blocked += 1
                try:
                    self._cond.wait()
                finally:
                    self._blocked -= 1
            self._in_flight += 1

    def release(self, succeeded: bool) -> None:
        """Give a slot back; a completed copy counts towards the round."""
        with self._mutex:
            self._in_flight -= 1
            if succeeded:
                self._round_done += 1
                if self._round_done >= self._cap:
                    self._end_round()
            if self._blocked:
                self._cond.notify_all()

    def throttled(self) -> None:
        """S3 said slow down: cut the window, unless it was cut a moment ago."""
        with self._mutex:
            self.throttle_events += 1
            now = self._clock()
            if now - self._last_cut < self._cooldown_s:
                return
            self._last_cut = now
            self._set_limit(max(float(self.minimum), self._limit * DECREASE))
            self._slow_start = False
            self._probe_from = None
            self._best_rate, self._best_limit = 0.0, self._limit
            self._start_round(now)

    def _end_round(self) -> None:
        now = self._clock()
        elapsed = now - self._round_started
        rate = self._round_done / elapsed if elapsed > 0 else float("inf")
        if not self._wanted_more:  # the work ran out before the window did: nothing to learn
            self._start_round(now)
            return
        self._rounds += 1
        if self._slow_start:
            self._slow_start_round(rate)
        else:
            self._steady_round(rate)
        self._start_round(now)

    def _slow_start_round(self, rate: float) -> None:
        if rate >= self._best_rate * GAIN:
            self._best_rate, self._best_limit = rate, self._limit
            self._set_limit(min(float(self.maximum), self._limit * 2))
            if self._limit == self._best_limit:  # at the maximum
                self._slow_start = False
            return
        self._slow_start = False
        self._set_limit(self._best_limit)

    def _steady_round(self, rate: float) -> None:
        if self._probe_from is not None:
            limit, before = self._probe_from
            self._probe_from = None
            if rate < before * GAIN:  # the probe bought nothing: back to where it was
                self._set_limit(limit)
            return
        if self._rounds % PROBE_ROUNDS == 0 and self._limit < self.maximum:
            self._probe_from = (self._limit, rate)
            step = max(1.0, self._limit * PROBE_STEP)
            self._set_limit(min(float(self.maximum), self._limit + step))

    def _set_limit(self, limit: float) -> None:
        self._limit = limit
        self._cap = max(self.minimum, int(limit))
        if self._blocked:  # a larger window may let a waiting copy go
            self._cond.notify_all()

    def _start_round(self, now: float) -> None:
        self._round_started = now
        self._round_done = 0
        self._wanted_more = self._in_flight >= self.limit
