from __future__ import annotations

import random
from collections.abc import Callable

import pytest

from copy_core.classify import classify
from copy_core.contract import CopyJob
from copy_workers.retry import (
    CauseBreaker,
    KeyRetryPolicy,
    RetriesExhausted,
    call_with_retries,
)
from tests.fakes import client_error


class _Clock:
    def __init__(self) -> None:
        self.now = 0.0
        self.sleeps: list[float] = []

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


def _flaky(failures: list[Exception]) -> Callable[[], str]:
    def operation() -> str:
        if failures:
            raise failures.pop(0)
        return "done"

    return operation


def test_transient_errors_are_retried_with_full_jitter_backoff() -> None:
    clock = _Clock()
    policy = KeyRetryPolicy(attempts=5, base_s=1.0, cap_s=8.0, rng=random.Random(3))
    errors: list[Exception] = [client_error("SlowDown", 503), client_error("InternalError", 500)]
    seen = []
    result = call_with_retries(
        _flaky(errors),
        policy,
        on_retry=lambda e: seen.append(e.code),
        sleep=clock.sleep,
        clock=lambda: clock.now,
    )
    assert result == "done"
    assert seen == ["SlowDown", "InternalError"]
    assert 0 <= clock.sleeps[0] <= 1.0 and 0 <= clock.sleeps[1] <= 2.0


def test_permanent_errors_are_not_retried() -> None:
    clock = _Clock()
    with pytest.raises(Exception, match="NoSuchKey"):
        call_with_retries(
            _flaky([client_error("NoSuchKey", 404)]),
            KeyRetryPolicy(),
            sleep=clock.sleep,
            clock=lambda: clock.now,
        )
    assert clock.sleeps == []


def test_attempts_are_bounded() -> None:
    clock = _Clock()
    errors: list[Exception] = [client_error("SlowDown", 503) for _ in range(10)]
    with pytest.raises(RetriesExhausted) as exhausted:
        call_with_retries(
            _flaky(errors), KeyRetryPolicy(attempts=3), sleep=clock.sleep, clock=lambda: clock.now
        )
    assert exhausted.value.retries == 2
    assert exhausted.value.error.code == "SlowDown"
    assert len(clock.sleeps) == 2


def test_time_is_bounded() -> None:
    clock = _Clock()
    policy = KeyRetryPolicy(
        attempts=100, base_s=10.0, cap_s=10.0, deadline_s=25.0, rng=random.Random(1)
    )
    errors: list[Exception] = [client_error("InternalError", 500) for _ in range(100)]
    with pytest.raises(RetriesExhausted):
        call_with_retries(_flaky(errors), policy, sleep=clock.sleep, clock=lambda: clock.now)
    assert clock.now <= 25.0


@pytest.mark.parametrize("retry", range(8))
def test_backoff_stays_within_the_full_jitter_envelope(retry: int) -> None:
    policy = KeyRetryPolicy(base_s=0.5, cap_s=20.0, rng=random.Random(retry))
    assert 0.0 <= policy.backoff(retry) <= min(20.0, 0.5 * 2**retry)


def test_the_breaker_gives_up_a_bucket_pair_only_after_a_deadline_of_failures() -> None:
    clock = _Clock()
    breaker = CauseBreaker(60.0, clock=lambda: clock.now)
    gone, other = CopyJob("src", "deleted"), CopyJob("src", "fine")
    error = classify(client_error("InternalError", 500, message="try again"))
    breaker.failed(gone, error)
    clock.now = 59.0
    breaker.failed(gone, error)
    assert not breaker.given_up(gone)
    assert breaker.explain(gone, error) == error
    clock.now = 60.0
    assert breaker.given_up(gone) and not breaker.given_up(other)
    explained = breaker.explain(gone, error).message
    assert explained.startswith("try again") and "failed for 60 s: no more retries" in explained


def test_one_success_resets_the_breaker() -> None:
    clock = _Clock()
    breaker = CauseBreaker(60.0, clock=lambda: clock.now)
    job = CopyJob("src", "dst")
    error = classify(client_error("SlowDown", 503))
    breaker.failed(job, error)
    clock.now = 50.0
    breaker.succeeded(job)
    breaker.failed(job, error)
    clock.now = 100.0
    assert not breaker.given_up(job)  # failing since 50 s, not since 0 s
    clock.now = 110.0
    assert breaker.given_up(job)
