from __future__ import annotations

import contextlib
import threading
import time

from copy_workers.throttle import AdaptiveLimit


class _Clock:
    now = 0.0

    def __call__(self) -> float:
        return self.now


def test_throttling_cuts_the_limit_once_per_cooldown() -> None:
    clock = _Clock()
    limit = AdaptiveLimit(32, cooldown_s=1.0, clock=clock)
    clock.now = 10.0
    limit.throttled()
    limit.throttled()  # the same burst, seen by another copy
    assert limit.limit == 22
    clock.now = 11.5
    limit.throttled()
    assert limit.limit == 15
    assert limit.throttle_events == 3


def test_the_limit_never_falls_below_the_minimum() -> None:
    clock = _Clock()
    limit = AdaptiveLimit(8, minimum=2, cooldown_s=0.0, clock=clock)
    for step in range(20):
        clock.now = float(step)
        limit.throttled()
    assert limit.limit == 2


def test_successes_grow_the_limit_back_to_the_maximum() -> None:
    limit = AdaptiveLimit(10, cooldown_s=0.0)
    limit.throttled()
    assert limit.limit == 7
    for _ in range(30):  # about one more slot per round of `limit` successes
        limit.run(lambda: None)
    assert limit.limit == 10
    for _ in range(100):
        limit.run(lambda: None)
    assert limit.limit == 10


def test_no_more_than_the_limit_run_at_once() -> None:
    limit = AdaptiveLimit(3)
    running, peak = 0, 0
    lock = threading.Lock()

    def work() -> None:
        nonlocal running, peak
        with lock:
            running += 1
            peak = max(peak, running)
        time.sleep(0.01)
        with lock:
            running -= 1

    threads = [threading.Thread(target=limit.run, args=(work,)) for _ in range(12)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert peak == 3


def test_a_failed_operation_frees_its_slot_without_growing_the_limit() -> None:
    limit = AdaptiveLimit(2, cooldown_s=0.0)
    limit.throttled()
    before = limit.limit

    def fail() -> None:
        raise RuntimeError("boom")

    for _ in range(5):
        with contextlib.suppress(RuntimeError):
            limit.run(fail)
    assert limit.limit == before
    assert limit.run(lambda: "ok") == "ok"
