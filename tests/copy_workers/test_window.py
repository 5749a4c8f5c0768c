"""The adaptive window on a simulated store: a fixed latency per copy and a ceiling on copies a
second. Simulated time throughout (the window's clock is injected): behaviour, not speed."""

from __future__ import annotations

import heapq

from copy_workers.window import AdaptiveWindow


class Store:
    """Copies take ``latency_s``, and the store completes at most ``per_s`` a second."""

    def __init__(self, latency_s: float, per_s: float, throttle_above: int | None = None) -> None:
        self.latency_s, self.per_s, self.throttle_above = latency_s, per_s, throttle_above
        self.now = 0.0
        self._free_at = 0.0

    def finish_time(self) -> float:
        self._free_at = max(self.now + self.latency_s, self._free_at + 1 / self.per_s)
        return self._free_at


def drive(window: AdaptiveWindow, store: Store, copies: int) -> float:
    """Keep the window full of copies (there is always more work); throughput of the last half."""
    pending: list[tuple[float, bool]] = []
    done, half_at, half_done = 0, 0.0, 0
    while done < copies:
        while window.try_acquire():
            throttled = store.throttle_above is not None and window.in_flight > store.throttle_above
            heapq.heappush(pending, (store.finish_time(), throttled))
        store.now, throttled = heapq.heappop(pending)
        if throttled:
            window.throttled()
        window.release(succeeded=not throttled)
        done += 1
        if done == copies // 2:
            half_at, half_done = store.now, done
    return (done - half_done) / (store.now - half_at)


def test_the_window_grows_until_latency_no_longer_limits() -> None:
    store = Store(latency_s=0.100, per_s=2000)  # needs ~200 in flight
    window = AdaptiveWindow(maximum=512, initial=32, clock=lambda: store.now)
    rate = drive(window, store, 40_000)
    assert rate > 0.85 * 2000
    assert 150 <= window.limit <= 512


def test_the_window_stays_small_where_the_store_is_the_limit() -> None:
    store = Store(latency_s=0.001, per_s=1000)  # a store on loopback, bound by its CPU
    window = AdaptiveWindow(maximum=512, initial=32, clock=lambda: store.now)
    rate = drive(window, store, 20_000)
    assert rate > 0.95 * 1000
    assert window.limit <= 64  # no growth that buys nothing


def test_the_window_reaches_its_maximum_and_stops_there() -> None:
    store = Store(latency_s=0.250, per_s=100_000)
    window = AdaptiveWindow(maximum=256, initial=32, clock=lambda: store.now)
    rate = drive(window, store, 40_000)
    assert window.limit == 256
    assert rate > 0.95 * 256 / 0.250


def test_throttling_shrinks_the_window() -> None:
    store = Store(latency_s=0.050, per_s=50_000, throttle_above=60)
    window = AdaptiveWindow(maximum=512, initial=32, clock=lambda: store.now)
    drive(window, store, 20_000)
    assert window.throttle_events > 0
    assert window.limit <= 90


def test_a_round_without_waiting_copies_teaches_nothing() -> None:
    now = [0.0]
    window = AdaptiveWindow(maximum=512, initial=8, clock=lambda: now[0])
    for _ in range(100):  # one copy at a time: the work, not the window, is the limit
        assert window.try_acquire()
        now[0] += 1.0
        window.release(succeeded=True)
    assert window.limit == 8
